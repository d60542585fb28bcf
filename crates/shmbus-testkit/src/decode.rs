//! The `decode` target's cases: message types with every serde shape, and the property every
//! decoder must have. Shared by `fuzz/fuzz_targets/decode.rs` and the stable property test
//! `crates/shmbus/tests/decode_arbitrary_bytes.rs`, so a finding and its regression test run
//! the same code.

use serde::{Deserialize, Serialize};
use shmbus::codec::{Bincode, Codec, Plain, Postcard, Raw};
use std::collections::BTreeMap;

/// An enum with unit, tuple, struct and sequence variants.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub enum Shape {
    /// A unit variant.
    Unit,
    /// A tuple variant.
    Point(i32, i32),
    /// A struct variant.
    Rect {
        /// Width.
        w: u32,
        /// Height.
        h: u32,
    },
    /// A sequence inside a variant.
    Path(Vec<(i16, i16)>),
}

/// A struct with strings, vectors, a map, an option of an enum, a tuple and unit.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct Order {
    /// An integer.
    pub id: u64,
    /// A string.
    pub symbol: String,
    /// A vector of strings.
    pub tags: Vec<String>,
    /// A map of byte vectors.
    pub attrs: BTreeMap<String, Vec<u8>>,
    /// An optional enum.
    pub shape: Option<Shape>,
    /// A tuple.
    pub flags: (bool, u8, i64),
    /// Unit.
    pub unit: (),
}

/// Decodes `bytes` with codec `C` as a `T`; if that works, encoding the value again must take
/// exactly `encoded_len` bytes and decode to the same value. Returns whether it decoded.
pub fn round_trip<C: Codec<T>, T: PartialEq + std::fmt::Debug>(bytes: &[u8]) -> bool {
    let Ok(v) = C::decode(bytes) else {
        return false;
    };
    let len = C::encoded_len(&v).expect("a decoded value encodes");
    let mut buf = vec![0u8; len];
    let n = C::encode(&v, &mut buf).expect("encodes into its encoded_len");
    assert_eq!(n, len, "encode wrote encoded_len bytes");
    let again = C::decode(&buf[..n]).expect("a re-encoded value decodes");
    assert_eq!(again, v, "decode(encode(decode(x))) == decode(x)");
    true
}

/// One codec and type, picked by `which`, on `bytes` (the fuzz target's dispatch).
pub fn one(which: u8, bytes: &[u8]) -> bool {
    match which % 8 {
        0 => round_trip::<Bincode, Order>(bytes),
        1 => round_trip::<Bincode<1024>, Order>(bytes),
        2 => round_trip::<Postcard, Order>(bytes),
        3 => round_trip::<Bincode, String>(bytes),
        4 => round_trip::<Bincode, Vec<Vec<u64>>>(bytes),
        5 => round_trip::<Postcard, Vec<String>>(bytes),
        6 => {
            let ok = round_trip::<Plain, [u64; 4]>(bytes);
            assert_eq!(ok, bytes.len() == 32, "Plain decodes exactly its own size");
            ok
        }
        _ => {
            let ok = round_trip::<Raw, Vec<u8>>(bytes);
            assert!(ok, "Raw decodes anything");
            ok
        }
    }
}

/// Every codec and type on `bytes`.
pub fn all(bytes: &[u8]) {
    for which in 0..8 {
        one(which, bytes);
    }
}
