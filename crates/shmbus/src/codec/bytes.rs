//! [`Bytes`]: a byte vector that serde encodes as bytes and decodes in place.

use serde::de::{Deserializer, Error, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::ops::{Deref, DerefMut};

/// A `Vec<u8>` that serde handles as one byte string: encoded as its length and its bytes in
/// one copy (a plain `Vec<u8>` is a sequence, one serde call per byte), and decoded in place
/// by [`Receiver::recv_into`](crate::Receiver::recv_into) and
/// [`recv_with`](crate::Receiver::recv_with), reusing the vector's allocation. For
/// message fields that carry a payload (`serde_bytes::ByteBuf` does the first but not the
/// second: DECISIONS D57).
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use shmbus::codec::Bytes;
///
/// #[derive(Serialize, Deserialize, Debug, Default, PartialEq)]
/// struct Frame { id: u32, payload: Bytes }
///
/// let ch = shmbus::channel::<Frame>().in_process()?;
/// let (mut tx, mut rx) = (ch.sender()?, ch.receiver()?);
/// let mut out = Frame { id: 1, payload: Bytes::from(vec![7; 100]) };
/// let mut got = Frame::default();
/// for id in 1..=3 {
///     out.id = id;
///     tx.send_ref(&out)?;
///     rx.recv_into(&mut got)?;
///     assert_eq!(got, out);
/// }
/// // 100 bytes and a 1-byte length: one copy, not 100 serde calls.
/// use shmbus::codec::{Bincode, Codec};
/// assert_eq!(<Bincode as Codec<Bytes>>::encoded_len(&out.payload)?, 101);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    /// An empty byte vector (no allocation).
    pub const fn new() -> Self {
        Bytes(Vec::new())
    }

    /// The vector.
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl Deref for Bytes {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl DerefMut for Bytes {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Bytes(v)
    }
}

impl From<&[u8]> for Bytes {
    fn from(v: &[u8]) -> Self {
        Bytes(v.to_vec())
    }
}

impl From<Bytes> for Vec<u8> {
    fn from(b: Bytes) -> Self {
        b.0
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Serialize for Bytes {
    #[inline]
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    #[inline]
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut place = Bytes::new();
        Self::deserialize_in_place(d, &mut place)?;
        Ok(place)
    }

    #[inline]
    fn deserialize_in_place<D: Deserializer<'de>>(d: D, place: &mut Self) -> Result<(), D::Error> {
        // A byte buffer asked for; shmbus's decoders hand over borrowed bytes, which are
        // copied into the existing vector.
        d.deserialize_byte_buf(InPlace(&mut place.0))
    }
}

/// Fills a vector with the bytes it is handed, keeping its allocation.
struct InPlace<'a>(&'a mut Vec<u8>);

impl<'de> Visitor<'de> for InPlace<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    #[inline]
    fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<(), E> {
        if self.0.len() == v.len() {
            // The usual case of a receive in place: as long as the last message's payload,
            // copied over it without a call for a short one.
            super::small_copy::copy(self.0, v);
        } else {
            self.0.clear();
            self.0.extend_from_slice(v);
        }
        Ok(())
    }

    #[inline]
    fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<(), E> {
        *self.0 = v;
        Ok(())
    }

    #[inline]
    fn visit_str<E: Error>(self, v: &str) -> Result<(), E> {
        self.visit_bytes(v.as_bytes())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // Formats without byte strings send a sequence of bytes.
        self.0.clear();
        while let Some(b) = seq.next_element()? {
            self.0.push(b);
        }
        Ok(())
    }
}
