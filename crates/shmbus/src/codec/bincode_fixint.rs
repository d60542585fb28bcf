//! [`BincodeFixint`]: bincode 2 with fixed-width integers, the faster and larger sibling of
//! [`Bincode`](super::Bincode) (DECISIONS D71).

use super::{in_place, left_over, Codec, CodecError, DEFAULT_DECODE_LIMIT};

/// bincode 2, little-endian with **fixed-width integers** (`standard().with_fixed_int_encoding()`),
/// through serde: every integer takes its full width (a `u64` 8 bytes, a length 8 bytes, an
/// enum variant 4), where [`Bincode`](super::Bincode) writes small values in one byte. Encoding
/// and decoding are plain copies of integers instead of varint branches: on the harness's
/// message (two `u64`s and a byte payload) about 3 ns instead of 8–9 each way, and a channel
/// streaming 64-byte messages between two cores at 0.94× the raw ring against 0.6–0.75× with
/// [`Bincode`](super::Bincode) (one machine, DECISIONS D71). The cost is size: a message of
/// small integers and short strings is two to three times longer.
///
/// A different wire format, so a different codec id (4): a `BincodeFixint` channel and a
/// [`Bincode`](super::Bincode) peer refuse each other at open
/// ([`Error::TypeMismatch`](crate::Error::TypeMismatch)). Decoding runs under `LIMIT` as
/// [`Bincode`](super::Bincode)'s does.
///
/// ```
/// use shmbus::codec::{Bincode, BincodeFixint, Codec};
/// let msg = (7u64, String::from("seven"));
/// let fixed = <BincodeFixint as Codec<(u64, String)>>::encoded_len(&msg)?;
/// let varint = <Bincode as Codec<(u64, String)>>::encoded_len(&msg)?;
/// assert_eq!((fixed, varint), (8 + 8 + 5, 1 + 1 + 5));
///
/// let ch = shmbus::channel::<(u64, String)>().codec::<BincodeFixint>().in_process()?;
/// let (mut tx, mut rx) = (ch.sender()?, ch.receiver()?);
/// tx.send_ref(&msg)?;
/// assert_eq!(rx.recv()?, msg);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BincodeFixint<const LIMIT: usize = DEFAULT_DECODE_LIMIT>;

/// The configuration: bincode's standard one with fixed-width integers.
type Fixint = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Fixint,
    bincode::config::NoLimit,
>;

#[inline]
fn config() -> Fixint {
    bincode::config::standard().with_fixed_int_encoding()
}

/// The codec's name, in errors.
const NAME: &str = "bincode-fixint";

impl<T, const LIMIT: usize> Codec<T> for BincodeFixint<LIMIT>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    const ID: u32 = 4;
    const NAME: &'static str = NAME;

    fn encoded_len(msg: &T) -> Result<usize, CodecError> {
        let mut size = bincode::enc::write::SizeWriter::default();
        bincode::serde::encode_into_writer(msg, &mut size, config())
            .map_err(|e| CodecError::encode(NAME, e))?;
        Ok(size.bytes_written)
    }

    #[inline]
    fn encode(msg: &T, buf: &mut [u8]) -> Result<usize, CodecError> {
        bincode::serde::encode_into_slice(msg, buf, config())
            .map_err(|e| CodecError::encode(NAME, e))
    }

    fn decode(bytes: &[u8]) -> Result<T, CodecError> {
        let (msg, used) = bincode::serde::decode_from_slice(bytes, config().with_limit::<LIMIT>())
            .map_err(|e| CodecError::decode(NAME, bytes.len(), e))?;
        left_over(NAME, bytes.len(), used)?;
        Ok(msg)
    }

    #[inline]
    fn decode_into(bytes: &[u8], place: &mut T) -> Result<(), CodecError> {
        // As `Bincode::decode_into`: borrowed strings and bytes, copied into `place`'s own.
        let ((), used) = bincode::serde::seed_decode_from_slice(
            in_place::InPlace(place),
            bytes,
            config().with_limit::<LIMIT>(),
        )
        .map_err(|e| CodecError::decode(NAME, bytes.len(), e))?;
        left_over(NAME, bytes.len(), used)
    }

    fn decode_limit() -> Option<usize> {
        Some(LIMIT)
    }
}
