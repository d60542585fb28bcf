//! Decoding bincode 2's standard format (little-endian, variable-length integers) from a slice:
//! a `serde::Deserializer` that accepts exactly the inputs bincode's own serde decoder accepts,
//! with the same values and the same number of bytes used, under the same decode limit — and
//! hands strings and byte strings to their visitors *borrowed*, so that a decode in place
//! (`Deserialize::deserialize_in_place`) keeps a `String`'s or a `Vec<u8>`'s allocation.
//!
//! Why by hand: a receive's decode is half the typed channel's receive cost, and at 64 bytes
//! the receiver limits streaming once the send is cheap (DECISIONS D71). bincode's serde
//! decoder claims bytes against the limit through a generic decoder per value, takes an
//! out-of-line byte-by-byte path for every varint with fewer than its full width of input left
//! (all of them in a message under 9 bytes), returns a five-word `DecodeError` from every step
//! and decodes an owned `String` for `deserialize_string` (which `codec/in_place.rs` works
//! around for [`BincodeFixint`](super::BincodeFixint)). Here every step is inlined, a varint
//! below 251 is one bounds check and a wider one (up to 64 bits) one masked 8-byte load, the
//! error is one word (boxed on failure only, so results come back in registers), and strings
//! and byte strings are handed out borrowed with no wrapper. Figures in DECISIONS D78. bincode
//! itself is unmaintained (RUSTSEC-2025-0141): its format is what we keep, not its code.
//! `tests/bincode_decoder.rs` compares this decoder with
//! `bincode::serde::decode_from_slice(.., standard().with_limit::<LIMIT>())` over every serde
//! shape, over arbitrary and mutated bytes and under every small limit; the fuzz target
//! `bincode_differential` does the same on arbitrary bytes.
//!
//! The rules, read from bincode 2.0.1's source (`varint/decode_unsigned.rs`,
//! `features/serde/de_borrowed.rs`, `de/impls.rs`):
//!
//! - A varint's first byte up to 250 is the value; 251, 252, 253, 254 announce a
//!   little-endian `u16`, `u32`, `u64`, `u128` after it. A marker wider than the type is an
//!   error (a `u16` refuses 252–254), 255 always is; a value written wider than needed is
//!   accepted (251 followed by `[5, 0]` is a 5). Signed integers are zigzag over the unsigned
//!   varint of their width; `u8`/`i8` are one raw byte.
//! - `bool` and an `Option`'s tag are one byte, 0 or 1. A `char` is its UTF-8 bytes, no
//!   length. Strings and byte strings are a `u64` varint length then the bytes; sequences and
//!   maps a `u64` varint length then the elements; tuples, structs and tuple structs their
//!   fields in order; an enum a `u32` varint variant index then the variant's fields; unit,
//!   unit structs and unit variants nothing.
//! - `deserialize_any`, `deserialize_identifier` and `deserialize_ignored_any` are refused.
//! - The limit: before each read bincode *claims* bytes against `LIMIT`, and a claim beyond it
//!   fails the decode: the type's width for every integer and float (1 for `bool`, an
//!   `Option` tag and `u8`; 2, 4, 8, 16 for the wider integers, whatever the varint's length;
//!   8 for a length, 4 for a variant index), the UTF-8 width for a `char`, and the length for a
//!   string's or byte string's bytes. [`Dec`] makes the same claims, so the same inputs fail.
//!
//! One deliberate difference: bincode would iterate as many times as a sequence or map claims
//! to hold, and elements that read nothing (`()`, unit structs) claim nothing, so a 9-byte
//! `Vec<()>` claiming 2^60 elements would loop for centuries. [`Dec`] refuses a decode whose
//! sequences and maps hold more than `LIMIT` elements (map entries) that read nothing, in
//! total; bincode accepts those, slowly, and every other input is accepted or refused as
//! bincode does. A length is refused when announced if it cannot end otherwise: elements that
//! read anything claim at least a byte each, so at most the limit left of them can, and the
//! rest would read nothing (review s6, DECISIONS D81: counting every announced element
//! instead refused `(Vec<()>, Vec<u8>)` holding 995 units and 10 bytes under a limit of 1000,
//! 26 bytes claimed, which bincode accepts).
//!
//! Sequences and maps tell their visitors a size hint of at most the input left and, over
//! the whole decode, at most the message's length in elements, so that an announced length
//! never makes serde's visitors preallocate more than the message's own bytes could fill
//! (serde's cautious hint alone allowed 1 MiB per sequence whatever the input: a 3-byte
//! message allocated 128 KB under a 1 KiB limit, and 100 nested 3-byte lengths 100 MB).
//! Only the capacity a visitor reserves up front changes, never a value.
//!
//! Values nested more than [`MAX_DEPTH`] (256) levels deep are refused, where bincode
//! recurses until the stack overflows and the process aborts (a 9 KiB message did it on a
//! 2 MiB thread stack; DECISIONS D82). Options, sequences, tuples, maps, structs, enums and
//! newtype structs each count a level.
//!
//! Also different, for hand-written visitors only: bincode hands `deserialize_string` and
//! `deserialize_byte_buf` to `visit_string`/`visit_byte_buf`, [`Dec`] to the borrowed
//! methods, so a visitor implementing only the owned ones is refused here (every serde and std
//! visitor implements the borrowed ones). Neither decoder limits recursion (DECISIONS D81).

use serde::de::{
    self, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess, VariantAccess,
    Visitor,
};
use std::fmt;

use super::bincode_varint::{SINGLE_BYTE_MAX, U128_BYTE, U16_BYTE, U32_BYTE, U64_BYTE};

/// Why a decode failed: one word (a box), so that a `Result<(), DecError>` or
/// `Result<u64, DecError>` comes back in registers from the steps the compiler leaves out of
/// line (serde's per-field `deserialize_in_place`). The box is allocated on failure only, where
/// `CodecError` allocates its reason anyway.
#[derive(Debug)]
pub(super) struct DecError(Box<Kind>);

/// What [`DecError`] holds.
#[derive(Debug)]
enum Kind {
    /// The input ends inside a value.
    End,
    /// The decode would claim more than the limit (bincode's `LimitExceeded`).
    Limit,
    /// Sequences and maps hold more elements that read nothing, in total, than the limit.
    Elements,
    /// Values nested deeper than [`MAX_DEPTH`].
    Depth,
    /// A varint of `bits` bits starts with a marker for a wider one, or with 255.
    Marker {
        /// The width of the integer being decoded.
        bits: u8,
        /// The marker byte.
        found: u8,
    },
    /// A `bool` byte other than 0 or 1.
    Bool(u8),
    /// An `Option` tag other than 0 or 1.
    OptionTag(u8),
    /// A `char` that is not one UTF-8 scalar value; the bytes read.
    Char([u8; 4]),
    /// A string that is not UTF-8.
    Utf8,
    /// A length that does not fit `usize`.
    Usize(u64),
    /// `deserialize_any`: bincode's format does not describe itself.
    Any,
    /// `deserialize_identifier`, refused as bincode does.
    Identifier,
    /// `deserialize_ignored_any`, refused as bincode does.
    IgnoredAny,
    /// The type's `Deserialize` implementation failed.
    Custom(String),
}

const _: () = assert!(size_of::<Result<(), DecError>>() == size_of::<usize>());

impl From<Kind> for DecError {
    #[cold]
    #[inline(never)]
    fn from(kind: Kind) -> Self {
        DecError(Box::new(kind))
    }
}

impl fmt::Display for DecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            Kind::End => f.write_str("the message ends inside a value"),
            Kind::Limit => f.write_str("the decode would claim more than the decode limit"),
            Kind::Elements => f.write_str(
                "the sequences and maps hold more elements that read nothing than the decode limit",
            ),
            Kind::Depth => write!(f, "values nested more than {MAX_DEPTH} levels deep"),
            Kind::Marker { bits, found } => {
                write!(
                    f,
                    "varint marker {found} is not valid for a {bits}-bit integer"
                )
            }
            Kind::Bool(b) => write!(f, "invalid bool byte {b}"),
            Kind::OptionTag(b) => write!(f, "invalid Option tag {b}"),
            Kind::Char(bytes) => write!(f, "invalid char encoding {bytes:?}"),
            Kind::Utf8 => f.write_str("a string is not valid UTF-8"),
            Kind::Usize(v) => write!(f, "length {v} does not fit usize"),
            Kind::Any => f.write_str("bincode's format cannot decode self-describing types"),
            Kind::Identifier => f.write_str("bincode's format has no identifiers"),
            Kind::IgnoredAny => f.write_str("bincode's format cannot skip values"),
            Kind::Custom(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for DecError {}

impl de::Error for DecError {
    #[cold]
    fn custom<M: fmt::Display>(msg: M) -> Self {
        Kind::Custom(msg.to_string()).into()
    }
}

/// How deep values may nest: options, sequences, tuples, maps, structs, enums and newtype
/// structs each count a level. Decoding recurses once per level, so a hostile peer's few
/// bytes of nesting (`enum Tree { Leaf, Node(Box<Tree>) }` nests one level per byte) would
/// otherwise overflow the receiver's stack and abort the process: on a 2 MiB thread stack the
/// simplest recursive type overflowed at 8 192–16 384 levels in an optimized build (review s6,
/// D82), and debug builds and larger types take more stack a level. bincode has no limit;
/// `serde_json`'s is 128, protobuf's 100.
pub(super) const MAX_DEPTH: u32 = 256;

/// The input not yet read, what may still be claimed, how many more sequence and map elements
/// may read nothing, how many more elements serde's visitors may be told to expect, and how
/// many more levels values may nest.
pub(super) struct Dec<'de> {
    rest: &'de [u8],
    budget: usize,
    empties: usize,
    hints: usize,
    depth: u32,
}

/// Decodes a `T` from the start of `bytes` under `limit`; returns it and the bytes used.
#[inline]
pub(super) fn decode<'de, T: de::Deserialize<'de>>(
    bytes: &'de [u8],
    limit: usize,
) -> Result<(T, usize), DecError> {
    let mut dec = Dec::new(bytes, limit);
    let value = T::deserialize(&mut dec)?;
    Ok((value, dec.used(bytes)))
}

/// Decodes a `T` from the start of `bytes` into `place` (serde's `deserialize_in_place`) under
/// `limit`; returns the bytes used.
#[inline]
pub(super) fn decode_into<'de, T: de::Deserialize<'de>>(
    bytes: &'de [u8],
    place: &mut T,
    limit: usize,
) -> Result<usize, DecError> {
    let mut dec = Dec::new(bytes, limit);
    T::deserialize_in_place(&mut dec, place)?;
    Ok(dec.used(bytes))
}

impl<'de> Dec<'de> {
    #[inline]
    fn new(bytes: &'de [u8], limit: usize) -> Self {
        Dec {
            rest: bytes,
            budget: limit,
            empties: limit,
            hints: bytes.len(),
            depth: MAX_DEPTH,
        }
    }

    /// How much of `bytes` (the input this decoder started with) has been read.
    #[inline]
    fn used(&self, bytes: &[u8]) -> usize {
        bytes.len() - self.rest.len()
    }

    /// Claims `n` bytes against the limit, as bincode's `claim_bytes_read` does before a read.
    #[inline(always)]
    fn claim(&mut self, n: usize) -> Result<(), DecError> {
        self.budget = self.budget.checked_sub(n).ok_or(Kind::Limit)?;
        Ok(())
    }

    /// Reads `N` bytes.
    #[inline(always)]
    fn take<const N: usize>(&mut self) -> Result<[u8; N], DecError> {
        let (head, rest) = self.rest.split_first_chunk::<N>().ok_or(Kind::End)?;
        self.rest = rest;
        Ok(*head)
    }

    /// Reads one byte.
    #[inline(always)]
    fn byte(&mut self) -> Result<u8, DecError> {
        let (&b, rest) = self.rest.split_first().ok_or(Kind::End)?;
        self.rest = rest;
        Ok(b)
    }

    /// Reads `n` bytes, borrowed from the input.
    #[inline(always)]
    fn slice(&mut self, n: usize) -> Result<&'de [u8], DecError> {
        if n > self.rest.len() {
            return Err(Kind::End.into());
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    /// A string's or byte string's length and bytes (bincode's `&[u8]` borrow decode): the
    /// length is a `u64` claimed as 8 bytes, then the bytes are claimed.
    #[inline(always)]
    fn bytes(&mut self) -> Result<&'de [u8], DecError> {
        let len = self.len()?;
        self.claim(len)?;
        self.slice(len)
    }

    /// A length (bincode's `usize`/`decode_slice_len`): a `u64` varint, claimed as 8 bytes.
    #[inline(always)]
    fn len(&mut self) -> Result<usize, DecError> {
        self.claim(8)?;
        let v = self.varint_u64()?;
        usize::try_from(v).map_err(|_| Kind::Usize(v).into())
    }

    /// A sequence's or map's announced length and the size hint its visitor gets. At most
    /// `budget` of the elements can read anything (each claims a byte or more), so a length
    /// that leaves more than `empties` to read nothing cannot decode: refused now. The hint is
    /// at most the input left (every element that reads anything reads a byte of it) and
    /// comes out of `hints`, the message's length, for the whole decode.
    #[inline(always)]
    fn elements(&mut self) -> Result<(usize, usize), DecError> {
        let len = self.len()?;
        if len.saturating_sub(self.budget) > self.empties {
            return Err(Kind::Elements.into());
        }
        let hint = len.min(self.hints).min(self.rest.len());
        self.hints -= hint;
        Ok((len, hint))
    }

    /// Runs `f` one level deeper, refusing past [`MAX_DEPTH`].
    #[inline(always)]
    fn nested<R>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<R, DecError>,
    ) -> Result<R, DecError> {
        self.depth = self.depth.checked_sub(1).ok_or(Kind::Depth)?;
        let out = f(self);
        self.depth += 1;
        out
    }

    /// An element (or map entry) that read nothing: counted against the guard.
    #[inline]
    fn empty(&mut self) -> Result<(), DecError> {
        self.empties = self.empties.checked_sub(1).ok_or(Kind::Elements)?;
        Ok(())
    }
}

/// One varint reader per width: the first byte up to 250 is the value (one bounds check);
/// widths up to 64 bits then try [`Dec::wide`] (`$max`: their widest marker); the exact path
/// (a marker with fewer than 8 bytes after it, or an invalid one) reads the markers listed,
/// followed by that many little-endian bytes, and refuses any other. The exact path is
/// inlined too: it is not rare, as every varint in a message's last 8 bytes takes it (the
/// harness's 7-byte round-trip message does at its sequence number); out of line, it cost the
/// 8-byte decode 0.5 ns of its 5.9 in criterion.
macro_rules! varint {
    ($name:ident, $exact:ident -> $ty:ty, $bits:literal, $($max:ident)?;
        $($marker:ident => $wire:ty),*) => {
        impl Dec<'_> {
            #[inline(always)]
            fn $name(&mut self) -> Result<$ty, DecError> {
                let first = self.byte()?;
                if first <= SINGLE_BYTE_MAX {
                    return Ok(<$ty>::from(first));
                }
                $(if let Some(v) = self.wide(first, $max) {
                    return Ok(v);
                })?
                self.$exact(first)
            }

            #[inline]
            fn $exact(&mut self, first: u8) -> Result<$ty, DecError> {
                match first {
                    $($marker => Ok(<$ty>::from(<$wire>::from_le_bytes(self.take()?))),)*
                    found => Err(Kind::Marker { bits: $bits, found }.into()),
                }
            }
        }
    };
}

varint!(varint_u16, exact_u16 -> u16, 16, ; U16_BYTE => u16);
varint!(varint_u32, exact_u32 -> u32, 32, U32_BYTE; U16_BYTE => u16, U32_BYTE => u32);
varint!(varint_u64, exact_u64 -> u64, 64, U64_BYTE;
    U16_BYTE => u16, U32_BYTE => u32, U64_BYTE => u64);
varint!(varint_u128, exact_u128 -> u128, 128, ;
    U16_BYTE => u16, U32_BYTE => u32, U64_BYTE => u64, U128_BYTE => u128);

impl Dec<'_> {
    /// A varint's value after a marker `first` from 251 to `max` (at most 253), read as one
    /// 8-byte load masked to the marker's 2, 4 or 8 bytes, when 8 bytes follow; `None` (and
    /// nothing read) leaves it to the exact path. Branch-free, so that the harness's wide
    /// `u64`s (a timestamp, a sequence number) cost no more than a few instructions.
    #[inline(always)]
    fn wide<T: TryFrom<u64>>(&mut self, first: u8, max: u8) -> Option<T> {
        if first > max {
            return None;
        }
        let (word, _) = self.rest.split_first_chunk::<8>()?;
        let len = 1usize << (first - SINGLE_BYTE_MAX);
        let v = u64::from_le_bytes(*word) & (u64::MAX >> (64 - 8 * len));
        let v = T::try_from(v).ok()?;
        self.rest = self.rest.get(len..)?;
        Some(v)
    }
}

/// Zigzag back: even values are the non-negative half, odd ones `!(n / 2)` (bincode's
/// `decode_signed.rs`), the bits reinterpreted rather than converted.
macro_rules! unzigzag {
    ($name:ident: $u:ty => $i:ty) => {
        #[inline(always)]
        fn $name(n: $u) -> $i {
            let half = <$i>::from_ne_bytes((n >> 1).to_ne_bytes());
            if n & 1 == 0 {
                half
            } else {
                !half
            }
        }
    };
}

unzigzag!(unzigzag16: u16 => i16);
unzigzag!(unzigzag32: u32 => i32);
unzigzag!(unzigzag64: u64 => i64);
unzigzag!(unzigzag128: u128 => i128);

/// The length of the UTF-8 sequence a byte starts (0: it starts none), as bincode's (and
/// `core`'s) `utf8_char_width`.
#[inline]
fn utf8_width(b: u8) -> usize {
    match b {
        0x00..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => 0,
    }
}

impl<'de> de::Deserializer<'de> for &mut Dec<'de> {
    type Error = DecError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DecError> {
        Err(Kind::Any.into())
    }

    #[inline]
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecError> {
        self.claim(1)?;
        match self.byte()? {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            b => Err(Kind::Bool(b).into()),
        }
    }

    #[inline]
    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecError> {
        self.claim(1)?;
        visitor.visit_i8(i8::from_le_bytes(self.take()?))
    }

    #[inline]
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecError> {
        self.claim(2)?;
        visitor.visit_i16(unzigzag16(self.varint_u16()?))
    }

    #[inline]
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecError> {
        self.claim(4)?;
        visitor.visit_i32(unzigzag32(self.varint_u32()?))
    }

    #[inline]
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecError> {
        self.claim(8)?;
        visitor.visit_i64(unzigzag64(self.varint_u64()?))
    }

    #[inline]
    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecError> {
        self.claim(16)?;
        visitor.visit_i128(unzigzag128(self.varint_u128()?))
    }

    #[inline]
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecError> {
        self.claim(1)?;
        visitor.visit_u8(self.byte()?)
    }

    #[inline]
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecError> {
        self.claim(2)?;
        visitor.visit_u16(self.varint_u16()?)
    }

    #[inline]
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecError> {
        self.claim(4)?;
        visitor.visit_u32(self.varint_u32()?)
    }

    #[inline]
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecError> {
        self.claim(8)?;
        visitor.visit_u64(self.varint_u64()?)
    }

    #[inline]
    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecError> {
        self.claim(16)?;
        visitor.visit_u128(self.varint_u128()?)
    }

    #[inline]
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecError> {
        self.claim(4)?;
        visitor.visit_f32(f32::from_le_bytes(self.take()?))
    }

    #[inline]
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecError> {
        self.claim(8)?;
        visitor.visit_f64(f64::from_le_bytes(self.take()?))
    }

    /// bincode reads the first byte before claiming, then claims the sequence's width.
    #[inline]
    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecError> {
        let first = self.byte()?;
        let width = utf8_width(first);
        if width == 0 {
            return Err(Kind::Char([first, 0, 0, 0]).into());
        }
        self.claim(width)?;
        if width == 1 {
            return visitor.visit_char(char::from(first));
        }
        let mut buf = [first, 0, 0, 0];
        buf[1..width].copy_from_slice(self.slice(width - 1)?);
        let c = std::str::from_utf8(&buf[..width])
            .ok()
            .and_then(|s| s.chars().next())
            .ok_or(Kind::Char(buf))?;
        visitor.visit_char(c)
    }

    #[inline]
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecError> {
        let bytes = self.bytes()?;
        visitor.visit_borrowed_str(std::str::from_utf8(bytes).map_err(|_| Kind::Utf8)?)
    }

    /// Borrowed, unlike bincode's (which decodes an owned `String`): every visitor accepts a
    /// borrowed string, the owning ones copy it, and the in-place one keeps its allocation.
    /// bincode's claims are the same (a length, then its bytes).
    #[inline]
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecError> {
        self.deserialize_str(visitor)
    }

    #[inline]
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecError> {
        visitor.visit_borrowed_bytes(self.bytes()?)
    }

    /// Borrowed, as [`deserialize_string`](Self::deserialize_string).
    #[inline]
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecError> {
        self.deserialize_bytes(visitor)
    }

    #[inline]
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecError> {
        self.claim(1)?;
        match self.byte()? {
            0 => visitor.visit_none(),
            1 => self.nested(|d| visitor.visit_some(d)),
            b => Err(Kind::OptionTag(b).into()),
        }
    }

    #[inline]
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecError> {
        visitor.visit_unit()
    }

    #[inline]
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecError> {
        visitor.visit_unit()
    }

    #[inline]
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecError> {
        self.nested(|d| visitor.visit_newtype_struct(d))
    }

    #[inline]
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecError> {
        let (left, hint) = self.elements()?;
        self.nested(|d| visitor.visit_seq(Seq::counted(d, left, hint)))
    }

    #[inline]
    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DecError> {
        self.nested(|d| visitor.visit_seq(Seq::fields(d, len)))
    }

    #[inline]
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DecError> {
        self.nested(|d| visitor.visit_seq(Seq::fields(d, len)))
    }

    #[inline]
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecError> {
        let (left, hint) = self.elements()?;
        self.nested(|d| visitor.visit_map(Seq::counted(d, left, hint)))
    }

    #[inline]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecError> {
        self.nested(|d| visitor.visit_seq(Seq::fields(d, fields.len())))
    }

    #[inline]
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecError> {
        self.nested(|d| visitor.visit_enum(d))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DecError> {
        Err(Kind::Identifier.into())
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DecError> {
        Err(Kind::IgnoredAny.into())
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// A sequence's elements, a tuple's or struct's fields, or a map's entries: `left` more.
/// A sequence's or map's (`counted`) elements that read nothing count against the guard; a
/// tuple's or struct's fields, as many as the type has, do not.
struct Seq<'a, 'de> {
    de: &'a mut Dec<'de>,
    left: usize,
    /// The size hint handed to the visitor ([`Dec::elements`]).
    hint: usize,
    counted: bool,
    /// The input left when the current map entry's key began.
    entry: usize,
}

impl<'a, 'de> Seq<'a, 'de> {
    #[inline(always)]
    fn counted(de: &'a mut Dec<'de>, left: usize, hint: usize) -> Self {
        Seq {
            de,
            left,
            hint,
            counted: true,
            entry: 0,
        }
    }

    #[inline(always)]
    fn fields(de: &'a mut Dec<'de>, left: usize) -> Self {
        Seq {
            de,
            left,
            hint: left,
            counted: false,
            entry: 0,
        }
    }
}

impl<'de> SeqAccess<'de> for Seq<'_, 'de> {
    type Error = DecError;

    #[inline]
    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, DecError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let before = self.de.rest.len();
        let value = seed.deserialize(&mut *self.de)?;
        if self.counted && self.de.rest.len() == before {
            self.de.empty()?;
        }
        Ok(Some(value))
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        Some(self.hint.min(self.left))
    }
}

impl<'de> MapAccess<'de> for Seq<'_, 'de> {
    type Error = DecError;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        self.entry = self.de.rest.len();
        seed.deserialize(&mut *self.de).map(Some)
    }

    /// An entry whose key and value read nothing counts against the guard.
    #[inline]
    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, DecError> {
        let value = seed.deserialize(&mut *self.de)?;
        if self.de.rest.len() == self.entry {
            self.de.empty()?;
        }
        Ok(value)
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        Some(self.hint.min(self.left))
    }
}

impl<'de> EnumAccess<'de> for &mut Dec<'de> {
    type Error = DecError;
    type Variant = Self;

    /// The variant index is a `u32` varint (claimed as 4 bytes), handed to the seed as a `u32`.
    #[inline]
    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self), DecError> {
        self.claim(4)?;
        let index = self.varint_u32()?;
        let value = seed.deserialize(IntoDeserializer::<DecError>::into_deserializer(index))?;
        Ok((value, self))
    }
}

impl<'de> VariantAccess<'de> for &mut Dec<'de> {
    type Error = DecError;

    #[inline]
    fn unit_variant(self) -> Result<(), DecError> {
        Ok(())
    }

    #[inline]
    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, DecError> {
        seed.deserialize(self)
    }

    #[inline]
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, DecError> {
        visitor.visit_seq(Seq::fields(self, len))
    }

    #[inline]
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecError> {
        visitor.visit_seq(Seq::fields(self, fields.len()))
    }
}
