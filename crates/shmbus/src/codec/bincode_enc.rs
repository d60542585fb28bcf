//! Encoding in bincode 2's standard format (little-endian, variable-length integers) straight
//! into a slice: a `serde::Serializer` that writes the bytes bincode's own serde encoder writes
//! for every serde shape, with every step inlined and an error of two words.
//!
//! Why not bincode's encoder: a send's encode is on the sender's critical path, and a slower
//! sender lets the receiver catch up and fight it for the lines it is writing. bincode's serde
//! encoder calls its varint writer out of line, returns a five-word `EncodeError` from every
//! step, and took 8.3 ns for the harness's 64-byte message (two `u64`s and a byte payload)
//! against 2.5 ns here (criterion, one core). Streaming 64-byte messages between two cores went
//! from 0.6–0.75× the raw ring to the figure in DECISIONS D71. The format is bincode's:
//! `tests/by_ref.rs` checks byte for byte against `bincode::serde::encode_to_vec` over every
//! serde shape. Decoding is `bincode_dec.rs`'s, the same format read back (DECISIONS D78).

use serde::ser::{
    self, Serialize, SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant,
    SerializeTuple, SerializeTupleStruct, SerializeTupleVariant,
};
use std::fmt;

use super::bincode_varint::{SINGLE_BYTE_MAX, U128_BYTE, U16_BYTE, U32_BYTE, U64_BYTE};

/// Why an encoding failed.
#[derive(Debug)]
pub(super) enum EncError {
    /// The message needs more than the slice holds.
    Full,
    /// A sequence or map whose length serde does not know (bincode writes the length first).
    NoLength,
    /// The message's `Serialize` implementation failed.
    Custom(Box<str>),
}

impl fmt::Display for EncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncError::Full => f.write_str("the message does not fit the room given"),
            EncError::NoLength => f.write_str("a sequence or map must know its length"),
            EncError::Custom(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for EncError {}

impl ser::Error for EncError {
    #[cold]
    fn custom<M: fmt::Display>(msg: M) -> Self {
        EncError::Custom(msg.to_string().into_boxed_str())
    }
}

/// The slice being written and how much of it is.
pub(super) struct Enc<'b> {
    buf: &'b mut [u8],
    at: usize,
}

/// Encodes `msg` into `buf`; returns the number of bytes written.
#[inline]
pub(super) fn encode<T: Serialize + ?Sized>(msg: &T, buf: &mut [u8]) -> Result<usize, EncError> {
    let mut enc = Enc { buf, at: 0 };
    msg.serialize(&mut enc)?;
    Ok(enc.at)
}

impl Enc<'_> {
    /// Appends `N` bytes.
    #[inline(always)]
    fn put<const N: usize>(&mut self, bytes: [u8; N]) -> Result<(), EncError> {
        let dst = self
            .buf
            .get_mut(self.at..self.at + N)
            .ok_or(EncError::Full)?;
        dst.copy_from_slice(&bytes);
        self.at += N;
        Ok(())
    }

    /// Appends a byte string of any length.
    #[inline(always)]
    fn put_slice(&mut self, bytes: &[u8]) -> Result<(), EncError> {
        let end = self.at.checked_add(bytes.len()).ok_or(EncError::Full)?;
        let dst = self.buf.get_mut(self.at..end).ok_or(EncError::Full)?;
        super::small_copy::copy(dst, bytes);
        self.at = end;
        Ok(())
    }

    /// A `u64` varint, written with one bounds check.
    #[inline(always)]
    fn varint_u64(&mut self, v: u64) -> Result<(), EncError> {
        let b = v.to_le_bytes();
        if v <= u64::from(SINGLE_BYTE_MAX) {
            self.put([b[0]])
        } else if u16::try_from(v).is_ok() {
            self.put([U16_BYTE, b[0], b[1]])
        } else if u32::try_from(v).is_ok() {
            self.put([U32_BYTE, b[0], b[1], b[2], b[3]])
        } else {
            self.put([U64_BYTE, b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
        }
    }

    #[inline(always)]
    fn varint_u128(&mut self, v: u128) -> Result<(), EncError> {
        if let Ok(v) = u64::try_from(v) {
            self.varint_u64(v)
        } else {
            self.put([U128_BYTE])?;
            self.put(v.to_le_bytes())
        }
    }

    /// A length (`usize`, as bincode writes it: a `u64` varint).
    #[inline(always)]
    fn len(&mut self, n: usize) -> Result<(), EncError> {
        // Exact wherever `usize` is at most 64 bits.
        self.varint_u64(u64::try_from(n).map_err(|_| EncError::Full)?)
    }
}

/// Zigzag, as bincode maps a signed integer onto an unsigned one before its varint (the bits
/// reinterpreted, not converted).
#[inline(always)]
fn zigzag(v: i64) -> u64 {
    u64::from_ne_bytes((v << 1).to_ne_bytes()) ^ u64::from_ne_bytes((v >> 63).to_ne_bytes())
}

impl ser::Serializer for &mut Enc<'_> {
    type Ok = ();
    type Error = EncError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<(), EncError> {
        self.put([u8::from(v)])
    }
    #[inline]
    fn serialize_i8(self, v: i8) -> Result<(), EncError> {
        self.put(v.to_le_bytes())
    }
    // The varints of i16 and i32 switch widths at the same values as i64's (the zigzag value
    // of an i16 never exceeds u16::MAX), so one function serves all three, as for u16/u32.
    #[inline]
    fn serialize_i16(self, v: i16) -> Result<(), EncError> {
        self.varint_u64(zigzag(i64::from(v)))
    }
    #[inline]
    fn serialize_i32(self, v: i32) -> Result<(), EncError> {
        self.varint_u64(zigzag(i64::from(v)))
    }
    #[inline]
    fn serialize_i64(self, v: i64) -> Result<(), EncError> {
        self.varint_u64(zigzag(v))
    }
    #[inline]
    fn serialize_i128(self, v: i128) -> Result<(), EncError> {
        let zigzag = u128::from_ne_bytes((v << 1).to_ne_bytes())
            ^ u128::from_ne_bytes((v >> 127).to_ne_bytes());
        self.varint_u128(zigzag)
    }
    #[inline]
    fn serialize_u8(self, v: u8) -> Result<(), EncError> {
        self.put([v])
    }
    #[inline]
    fn serialize_u16(self, v: u16) -> Result<(), EncError> {
        self.varint_u64(u64::from(v))
    }
    #[inline]
    fn serialize_u32(self, v: u32) -> Result<(), EncError> {
        self.varint_u64(u64::from(v))
    }
    #[inline]
    fn serialize_u64(self, v: u64) -> Result<(), EncError> {
        self.varint_u64(v)
    }
    #[inline]
    fn serialize_u128(self, v: u128) -> Result<(), EncError> {
        self.varint_u128(v)
    }
    #[inline]
    fn serialize_f32(self, v: f32) -> Result<(), EncError> {
        self.put(v.to_le_bytes())
    }
    #[inline]
    fn serialize_f64(self, v: f64) -> Result<(), EncError> {
        self.put(v.to_le_bytes())
    }
    #[inline]
    fn serialize_char(self, v: char) -> Result<(), EncError> {
        // bincode 2 writes a char as its UTF-8 bytes, no length.
        self.put_slice(v.encode_utf8(&mut [0; 4]).as_bytes())
    }
    #[inline]
    fn serialize_str(self, v: &str) -> Result<(), EncError> {
        self.serialize_bytes(v.as_bytes())
    }
    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> Result<(), EncError> {
        self.len(v.len())?;
        self.put_slice(v)
    }
    #[inline]
    fn serialize_none(self) -> Result<(), EncError> {
        self.put([0])
    }
    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), EncError> {
        self.put([1])?;
        value.serialize(self)
    }
    #[inline]
    fn serialize_unit(self) -> Result<(), EncError> {
        Ok(())
    }
    #[inline]
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), EncError> {
        Ok(())
    }
    #[inline]
    fn serialize_unit_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
    ) -> Result<(), EncError> {
        self.serialize_u32(index)
    }
    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), EncError> {
        value.serialize(self)
    }
    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), EncError> {
        self.varint_u64(u64::from(index))?;
        value.serialize(self)
    }
    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Result<Self, EncError> {
        self.len(len.ok_or(EncError::NoLength)?)?;
        Ok(self)
    }
    #[inline]
    fn serialize_tuple(self, _: usize) -> Result<Self, EncError> {
        Ok(self)
    }
    #[inline]
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, EncError> {
        Ok(self)
    }
    #[inline]
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, EncError> {
        self.varint_u64(u64::from(index))?;
        Ok(self)
    }
    #[inline]
    fn serialize_map(self, len: Option<usize>) -> Result<Self, EncError> {
        self.len(len.ok_or(EncError::NoLength)?)?;
        Ok(self)
    }
    #[inline]
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, EncError> {
        Ok(self)
    }
    #[inline]
    fn serialize_struct_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, EncError> {
        self.varint_u64(u64::from(index))?;
        Ok(self)
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The compound forms: each element, field, key or value is encoded in turn, nothing between
/// them and nothing at the end (bincode's layout).
macro_rules! compound {
    ($($trait:ident :: $method:ident ($($key:ty)?)),* $(,)?) => {$(
        impl $trait for &mut Enc<'_> {
            type Ok = ();
            type Error = EncError;
            #[inline]
            fn $method<T: Serialize + ?Sized>(
                &mut self,
                $(_: $key,)?
                value: &T,
            ) -> Result<(), EncError> {
                value.serialize(&mut **self)
            }
            #[inline]
            fn end(self) -> Result<(), EncError> {
                Ok(())
            }
        }
    )*};
}

compound!(
    SerializeSeq::serialize_element(),
    SerializeTuple::serialize_element(),
    SerializeTupleStruct::serialize_field(),
    SerializeTupleVariant::serialize_field(),
    SerializeStruct::serialize_field(&'static str),
    SerializeStructVariant::serialize_field(&'static str),
);

impl SerializeMap for &mut Enc<'_> {
    type Ok = ();
    type Error = EncError;
    #[inline]
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), EncError> {
        key.serialize(&mut **self)
    }
    #[inline]
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncError> {
        value.serialize(&mut **self)
    }
    #[inline]
    fn end(self) -> Result<(), EncError> {
        Ok(())
    }
}
