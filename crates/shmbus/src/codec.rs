//! How a message becomes bytes in the ring and back: the [`Codec`] trait and its five
//! implementations.
//!
//! | codec | messages | id | decode limit |
//! |---|---|---|---|
//! | [`Bincode`] (default) | `T: Serialize + DeserializeOwned`, bincode 2 standard configuration | 1 | `LIMIT` bytes claimed (default [`DEFAULT_DECODE_LIMIT`]) |
//! | `Postcard` (feature `postcard`) | `T: Serialize + DeserializeOwned` | 2 | the message's length |
//! | [`Plain`] | `T: bytemuck::Pod`, copied as its bytes, no codec | 3 | exactly `size_of::<T>()` |
//! | [`Raw`] | `Vec<u8>`, the bytes as they are | 0 | the message's length |
//! | [`BincodeFixint`] | as [`Bincode`], fixed-width integers: faster, larger | 4 | as [`Bincode`] |
//!
//! A sender reserves the channel's maximum message size in the ring and encodes into the
//! reservation in one pass ([`Codec::encode`]), then publishes what was written: no
//! intermediate buffer, no measuring pass. Only when that does not fit (a ring too full for
//! the maximum, or a message larger than it) does it ask the codec for the exact encoded
//! length ([`Codec::encoded_len`]) and reserve exactly that; codecs whose length is known
//! without a pass ([`Plain`], [`Raw`]: [`Codec::MEASURE_FIRST`]) always do. A receiver copies
//! the message out of shared memory into a buffer it owns and decodes from there
//! ([`Codec::decode`], or [`Codec::decode_into`] to reuse a value's allocations), so a peer
//! that rewrites the bytes mid-decode cannot make the decoder see two different messages.
//! [`Plain`] and [`Raw`] decode *by* copying, in one pass that accepts any bytes, so they copy
//! only once.

use std::fmt;

mod bincode_dec;
mod bincode_enc;
mod bincode_fixint;
mod bincode_varint;
mod bytes;
mod in_place;
mod small_copy;

pub use bincode_fixint::BincodeFixint;
pub use bytes::Bytes;

/// The decode limit of [`Bincode`] unless its `LIMIT` parameter says otherwise: 64 MiB.
pub const DEFAULT_DECODE_LIMIT: usize = 64 << 20;

/// Turns messages of type `T` into bytes and back.
///
/// Implemented by marker types ([`Bincode`], `Postcard`, [`Plain`], [`Raw`]) that a channel
/// names as a type parameter. An implementation for another format provides the four
/// functions below and a codec id that no other codec uses (ids below 256 are reserved for
/// shmbus).
///
/// ```
/// use shmbus::codec::{Codec, Bincode};
/// let msg = (7u8, String::from("seven"));
/// let len = <Bincode as Codec<(u8, String)>>::encoded_len(&msg)?;
/// let mut buf = vec![0u8; len];
/// assert_eq!(<Bincode as Codec<(u8, String)>>::encode(&msg, &mut buf)?, len);
/// assert_eq!(<Bincode as Codec<(u8, String)>>::decode(&buf)?, msg);
/// # Ok::<(), shmbus::codec::CodecError>(())
/// ```
pub trait Codec<T>: 'static {
    /// The codec id written into the segment header and checked by openers (0: raw bytes).
    const ID: u32;
    /// The codec's name, for error messages.
    const NAME: &'static str;
    /// Whether [`decode`](Self::decode) may be handed the message in place in shared memory:
    /// only for codecs whose decode is a single copy that accepts any bytes ([`Plain`],
    /// [`Raw`]). Parsing codecs leave it `false` and are handed a private copy.
    const DECODES_BY_COPY: bool = false;
    /// Whether a sender measures every message with [`encoded_len`](Self::encoded_len) and
    /// reserves exactly that much, rather than reserving the channel's maximum message size,
    /// encoding in one pass and measuring only when that does not fit (the default, `false`).
    /// `true` for codecs whose length is known without a pass over the message ([`Plain`],
    /// [`Raw`]).
    ///
    /// ```
    /// use shmbus::codec::{Bincode, Codec, Plain};
    /// assert!(!<Bincode as Codec<String>>::MEASURE_FIRST);
    /// assert!(<Plain as Codec<u64>>::MEASURE_FIRST);
    /// ```
    const MEASURE_FIRST: bool = false;

    /// The exact number of bytes [`encode`](Self::encode) will write for `msg`.
    ///
    /// # Errors
    ///
    /// When `msg` cannot be encoded (a `Serialize` implementation that fails).
    fn encoded_len(msg: &T) -> Result<usize, CodecError>;

    /// Encodes `msg` into `buf`, which is at least [`encoded_len`](Self::encoded_len) bytes,
    /// and returns the number of bytes written (at most `buf.len()`).
    ///
    /// # Errors
    ///
    /// When `msg` cannot be encoded, or needs more than `buf.len()` bytes.
    fn encode(msg: &T, buf: &mut [u8]) -> Result<usize, CodecError>;

    /// Decodes one whole message from `bytes`.
    ///
    /// # Errors
    ///
    /// When `bytes` are not exactly one valid encoding of a `T`, or decoding would need more
    /// memory than the codec's limit.
    fn decode(bytes: &[u8]) -> Result<T, CodecError>;

    /// Decodes one whole message from `bytes` into `place`, reusing what `place` owns where
    /// the codec can: [`Bincode`] and `Postcard` decode through serde's
    /// `Deserialize::deserialize_in_place`, which keeps the capacity of `String` and `Vec`
    /// fields (of types whose `Deserialize` is derived: this crate turns on `serde_derive`'s
    /// `deserialize_in_place` feature, the default feature `deserialize-in-place`). The default
    /// implementation assigns [`decode`](Self::decode)'s result.
    ///
    /// ```
    /// use shmbus::codec::{Bincode, Codec};
    /// let mut buf = [0u8; 16];
    /// let n = <Bincode as Codec<String>>::encode(&"hello".to_string(), &mut buf)?;
    /// let mut place = String::with_capacity(64);
    /// <Bincode as Codec<String>>::decode_into(&buf[..n], &mut place)?;
    /// assert_eq!((place.as_str(), place.capacity()), ("hello", 64)); // the same allocation
    /// # Ok::<(), shmbus::codec::CodecError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`decode`](Self::decode). After an error `place` holds a valid value that is
    /// otherwise unspecified (partly overwritten).
    #[inline]
    fn decode_into(bytes: &[u8], place: &mut T) -> Result<(), CodecError> {
        *place = Self::decode(bytes)?;
        Ok(())
    }

    /// The length of every message, for codecs where it is fixed ([`Plain`]): the default
    /// maximum message size of a channel.
    fn fixed_len() -> Option<usize> {
        None
    }

    /// The most memory one decode may claim, where the codec enforces a limit.
    fn decode_limit() -> Option<usize> {
        None
    }
}

/// A message could not be encoded or decoded: which codec, which direction, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError {
    codec: &'static str,
    decoding: bool,
    len: usize,
    reason: String,
}

impl CodecError {
    /// An encoding failure of `codec`.
    pub fn encode(codec: &'static str, reason: impl fmt::Display) -> Self {
        CodecError {
            codec,
            decoding: false,
            len: 0,
            reason: reason.to_string(),
        }
    }

    /// A decoding failure of `codec` on a message of `len` bytes.
    pub fn decode(codec: &'static str, len: usize, reason: impl fmt::Display) -> Self {
        CodecError {
            codec,
            decoding: true,
            len,
            reason: reason.to_string(),
        }
    }

    /// The codec's name.
    pub fn codec(&self) -> &'static str {
        self.codec
    }

    /// Whether decoding (rather than encoding) failed.
    pub fn is_decode(&self) -> bool {
        self.decoding
    }

    /// What the codec reported.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.decoding {
            write!(
                f,
                "{} could not decode a {}-byte message: {}",
                self.codec, self.len, self.reason
            )
        } else {
            write!(
                f,
                "{} could not encode the message: {}",
                self.codec, self.reason
            )
        }
    }
}

impl std::error::Error for CodecError {}

/// bincode 2, standard configuration (little-endian, variable-length integers), through serde.
/// The default codec.
///
/// A send writes bincode's bytes with shmbus's own serde serializer and a receive reads them
/// with shmbus's own deserializer, every step inlined (DECISIONS D71, D78). The format is
/// bincode's: peers built with bincode read and write the same bytes, and tests check the
/// encoder against `bincode::serde::encode_to_vec` and the decoder against
/// `bincode::serde::decode_from_slice` (same inputs accepted, same values) over every serde
/// shape and over arbitrary bytes.
///
/// Decoding applies `LIMIT` as bincode's `with_limit::<LIMIT>()` does: a decode that would
/// claim more than `LIMIT` bytes (every integer its width, every string and byte string its
/// length) fails with an error, and a length prefix beyond the message is an error before
/// anything is allocated; strings and byte strings are borrowed from the message, sequences
/// preallocated only by serde's cautious hint. Without a limit, bincode 2's own decoder
/// aborts the process on a 9-byte message that claims a 2^40-byte string. A channel refuses
/// to be built with a maximum message size above `LIMIT`; raise it for channels of larger
/// messages: `Bincode<{ 1 << 30 }>`. Sequences and maps holding more than `LIMIT` elements
/// that read nothing (`()`, unit structs), in total, are refused too (bincode would loop over
/// a `Vec<()>` claiming 2^60 elements), and an announced length never makes a visitor
/// preallocate for more elements than the message has bytes.
///
/// bincode is unmaintained upstream (RUSTSEC-2025-0141); it is the default because users ask
/// for it, pinned at `=2.0.1`. `Postcard` is the maintained alternative.
///
/// ```
/// use shmbus::codec::{Bincode, Codec};
/// // A 9-byte message that claims a string of 2^40 bytes: an error, not an abort.
/// let hostile = [0xfd, 0, 0, 0, 0, 0, 1, 0, 0];
/// assert!(<Bincode as Codec<String>>::decode(&hostile).is_err());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bincode<const LIMIT: usize = DEFAULT_DECODE_LIMIT>;

impl<T, const LIMIT: usize> Codec<T> for Bincode<LIMIT>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    const ID: u32 = 1;
    const NAME: &'static str = "bincode";

    fn encoded_len(msg: &T) -> Result<usize, CodecError> {
        let mut size = bincode::enc::write::SizeWriter::default();
        bincode::serde::encode_into_writer(msg, &mut size, bincode::config::standard())
            .map_err(|e| CodecError::encode("bincode", e))?;
        Ok(size.bytes_written)
    }

    /// bincode's format, written by shmbus's own serializer (`codec/bincode_enc.rs`, every
    /// step inlined; DECISIONS D71): the bytes `bincode::serde::encode_into_slice` writes.
    #[inline]
    fn encode(msg: &T, buf: &mut [u8]) -> Result<usize, CodecError> {
        bincode_enc::encode(msg, buf).map_err(|e| CodecError::encode("bincode", e))
    }

    /// bincode's format, read by shmbus's own deserializer (`codec/bincode_dec.rs`, every step
    /// inlined; DECISIONS D78): the inputs `bincode::serde::decode_from_slice` accepts under
    /// `with_limit::<LIMIT>()`, to the same values.
    #[inline]
    fn decode(bytes: &[u8]) -> Result<T, CodecError> {
        let (msg, used) = bincode_dec::decode(bytes, LIMIT)
            .map_err(|e| CodecError::decode("bincode", bytes.len(), e))?;
        left_over("bincode", bytes.len(), used)?;
        Ok(msg)
    }

    /// As [`decode`](Self::decode), into `place`: the deserializer hands strings and byte
    /// strings over borrowed, which serde's in-place visitors copy into the existing
    /// allocation.
    #[inline]
    fn decode_into(bytes: &[u8], place: &mut T) -> Result<(), CodecError> {
        let used = bincode_dec::decode_into(bytes, place, LIMIT)
            .map_err(|e| CodecError::decode("bincode", bytes.len(), e))?;
        left_over("bincode", bytes.len(), used)
    }

    fn decode_limit() -> Option<usize> {
        Some(LIMIT)
    }
}

/// The error for a message with bytes left over after the `used` that decoded.
#[inline]
fn left_over(codec: &'static str, len: usize, used: usize) -> Result<(), CodecError> {
    if used == len {
        Ok(())
    } else {
        Err(CodecError::decode(
            codec,
            len,
            format_args!("{} bytes left over after the message", len - used),
        ))
    }
}

/// postcard 1 through serde: compact, maintained, `no_std`-friendly (cargo feature
/// `postcard`).
///
/// postcard never allocates more for a string or byte vector than the message holds, and
/// preallocates sequences only cautiously, so the message length (bounded by the channel's
/// maximum message size) is its decode limit.
///
/// ```
/// use shmbus::codec::{Codec, Postcard};
/// let msg = vec![Some(1u32), None];
/// let mut buf = [0u8; 16];
/// let n = <Postcard as Codec<Vec<Option<u32>>>>::encode(&msg, &mut buf)?;
/// assert_eq!(<Postcard as Codec<Vec<Option<u32>>>>::decode(&buf[..n])?, msg);
/// # Ok::<(), shmbus::codec::CodecError>(())
/// ```
#[cfg(feature = "postcard")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Postcard;

#[cfg(feature = "postcard")]
impl<T> Codec<T> for Postcard
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    const ID: u32 = 2;
    const NAME: &'static str = "postcard";

    fn encoded_len(msg: &T) -> Result<usize, CodecError> {
        postcard::serialize_with_flavor(msg, postcard::ser_flavors::Size::default())
            .map_err(|e| CodecError::encode("postcard", e))
    }

    fn encode(msg: &T, buf: &mut [u8]) -> Result<usize, CodecError> {
        postcard::to_slice(msg, buf)
            .map(|used| used.len())
            .map_err(|e| CodecError::encode("postcard", e))
    }

    fn decode(bytes: &[u8]) -> Result<T, CodecError> {
        let (msg, rest) = postcard::take_from_bytes(bytes)
            .map_err(|e| CodecError::decode("postcard", bytes.len(), e))?;
        left_over("postcard", bytes.len(), bytes.len() - rest.len())?;
        Ok(msg)
    }

    #[inline]
    fn decode_into(bytes: &[u8], place: &mut T) -> Result<(), CodecError> {
        // postcard hands string and byte visitors borrowed slices already.
        let mut de = postcard::Deserializer::from_bytes(bytes);
        T::deserialize_in_place(&mut de, place)
            .map_err(|e| CodecError::decode("postcard", bytes.len(), e))?;
        let rest = de
            .finalize()
            .map_err(|e| CodecError::decode("postcard", bytes.len(), e))?;
        left_over("postcard", bytes.len(), bytes.len() - rest.len())
    }
}

/// Plain-old-data messages (`T: bytemuck::Pod`) go as their bytes: one `memcpy` in, one out,
/// no encoding. Both ends must agree on the layout, which the type fingerprint (name, size,
/// alignment) and the segment's ABI check (endianness) guard.
///
/// ```
/// use shmbus::codec::{Codec, Plain};
/// let mut buf = [0u8; 8];
/// <Plain as Codec<[u32; 2]>>::encode(&[1, 2], &mut buf)?;
/// assert_eq!(<Plain as Codec<[u32; 2]>>::decode(&buf)?, [1, 2]);
/// assert!(<Plain as Codec<[u32; 2]>>::decode(&buf[..7]).is_err());
/// # Ok::<(), shmbus::codec::CodecError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Plain;

impl<T: bytemuck::Pod> Codec<T> for Plain {
    const ID: u32 = 3;
    const NAME: &'static str = "plain";
    const DECODES_BY_COPY: bool = true;
    const MEASURE_FIRST: bool = true;

    fn encoded_len(_: &T) -> Result<usize, CodecError> {
        Ok(size_of::<T>())
    }

    fn encode(msg: &T, buf: &mut [u8]) -> Result<usize, CodecError> {
        let bytes = bytemuck::bytes_of(msg);
        let room = buf.len();
        let dst = buf.get_mut(..bytes.len()).ok_or_else(|| {
            CodecError::encode(
                "plain",
                format_args!("{} bytes do not fit {room} bytes", bytes.len()),
            )
        })?;
        dst.copy_from_slice(bytes);
        Ok(bytes.len())
    }

    fn decode(bytes: &[u8]) -> Result<T, CodecError> {
        if bytes.len() != size_of::<T>() {
            return Err(CodecError::decode(
                "plain",
                bytes.len(),
                format_args!("the type is {} bytes", size_of::<T>()),
            ));
        }
        // One copy out of the ring into the value; any bytes are a valid `Pod`.
        Ok(bytemuck::pod_read_unaligned(bytes))
    }

    fn fixed_len() -> Option<usize> {
        Some(size_of::<T>())
    }
}

/// Raw bytes: a `Vec<u8>` goes into the ring as it is. A raw channel carries type fingerprint
/// and codec id 0, like a ring made with [`crate::ring`] directly, so either end can be a
/// plain ring endpoint.
///
/// ```
/// use shmbus::codec::{Codec, Raw};
/// let mut buf = [0u8; 3];
/// assert_eq!(Raw::encode(&b"abc".to_vec(), &mut buf)?, 3);
/// assert_eq!(Raw::decode(&buf)?, b"abc");
/// # Ok::<(), shmbus::codec::CodecError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Raw;

impl Codec<Vec<u8>> for Raw {
    const ID: u32 = 0;
    const NAME: &'static str = "raw";
    const DECODES_BY_COPY: bool = true;
    const MEASURE_FIRST: bool = true;

    fn encoded_len(msg: &Vec<u8>) -> Result<usize, CodecError> {
        Ok(msg.len())
    }

    fn encode(msg: &Vec<u8>, buf: &mut [u8]) -> Result<usize, CodecError> {
        let room = buf.len();
        let dst = buf.get_mut(..msg.len()).ok_or_else(|| {
            CodecError::encode(
                "raw",
                format_args!("{} bytes do not fit {room} bytes", msg.len()),
            )
        })?;
        dst.copy_from_slice(msg);
        Ok(msg.len())
    }

    fn decode(bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
        Ok(bytes.to_vec())
    }

    #[inline]
    fn decode_into(bytes: &[u8], place: &mut Vec<u8>) -> Result<(), CodecError> {
        place.clear();
        place.extend_from_slice(bytes);
        Ok(())
    }
}

/// The name of the codec with id `id`, if it is one of shmbus's.
pub fn codec_name(id: u32) -> Option<&'static str> {
    match id {
        0 => Some("raw"),
        1 => Some("bincode"),
        2 => Some("postcard"),
        3 => Some("plain"),
        4 => Some("bincode-fixint"),
        _ => None,
    }
}
