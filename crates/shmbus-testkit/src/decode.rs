//! The `decode` target's cases: message types with every serde shape, and the property every
//! decoder must have; and the `bincode_differential` target's, shmbus's bincode decoder against
//! bincode's. Shared by `fuzz/fuzz_targets/decode.rs`, `fuzz/fuzz_targets/bincode_differential.rs`
//! and the stable property test `crates/shmbus/tests/decode_arbitrary_bytes.rs`, so a finding
//! and its regression test run the same code.

use serde::{Deserialize, Serialize};
use shmbus::codec::{Bincode, Codec, Plain, Postcard, Raw};
use std::cell::Cell;
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

/// shmbus's bincode decoder (`Bincode<LIMIT>`) against bincode's own
/// (`decode_from_slice` with `with_limit::<LIMIT>()`) on `bytes`: both accept it whole with
/// equal values, or both refuse it. Returns whether it decoded.
pub fn bincode_agrees_on<T, const LIMIT: usize>(bytes: &[u8]) -> bool
where
    T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let ours = <Bincode<LIMIT> as Codec<T>>::decode(bytes).ok();
    let config = bincode::config::standard().with_limit::<LIMIT>();
    let theirs = bincode::serde::decode_from_slice::<T, _>(bytes, config)
        .ok()
        .filter(|(_, used)| *used == bytes.len())
        .map(|(v, _)| v);
    assert_eq!(
        ours, theirs,
        "shmbus's bincode decoder and bincode's disagree"
    );
    ours.is_some()
}

thread_local! {
    /// How many more [`Nothing`]s a decode may produce; `None`: no bound.
    static NOTHINGS_LEFT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// A unit struct (it reads nothing) that counts itself while [`NOTHINGS_LEFT`] is set:
/// bincode's decoder made to stop where shmbus's element guard does, so that it can be the
/// oracle on any input (bare, it would loop over a `Vec<()>` claiming 2^60 elements).
#[derive(Serialize, Clone, Debug, PartialEq, Default)]
pub struct Nothing;

impl<'de> Deserialize<'de> for Nothing {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <()>::deserialize(d)?;
        if let Some(left) = NOTHINGS_LEFT.get() {
            let left = left
                .checked_sub(1)
                .ok_or_else(|| serde::de::Error::custom("more nothings than the limit"))?;
            NOTHINGS_LEFT.set(Some(left));
        }
        Ok(Nothing)
    }
}

/// Elements that read nothing (the `Nothing`s, directly in sequences) next to elements and
/// map entries that read bytes.
pub type Mixed = (
    Vec<Nothing>,
    Vec<u8>,
    Option<Vec<Option<()>>>,
    BTreeMap<(), u8>,
    Vec<Vec<Nothing>>,
);

/// shmbus's `Bincode<LIMIT>` against bincode's decoder stopped after `LIMIT` `Nothing`s, on
/// `bytes` as a [`Mixed`]: the same verdict and value, except that where bincode would read
/// more than `LIMIT` elements that read nothing shmbus refuses (the one documented difference,
/// DECISIONS D78, D81), and shmbus's guard refuses nothing bincode accepts. Returns whether
/// shmbus decoded it.
pub fn bincode_agrees_on_mixed<const LIMIT: usize>(bytes: &[u8]) -> bool {
    NOTHINGS_LEFT.set(None);
    let ours = <Bincode<LIMIT> as Codec<Mixed>>::decode(bytes);
    NOTHINGS_LEFT.set(Some(LIMIT));
    let config = bincode::config::standard().with_limit::<LIMIT>();
    let theirs = bincode::serde::decode_from_slice::<Mixed, _>(bytes, config);
    NOTHINGS_LEFT.set(None);
    let too_many = matches!(&theirs, Err(e) if e.to_string().contains("more nothings"));
    let theirs = theirs
        .ok()
        .filter(|(_, used)| *used == bytes.len())
        .map(|(v, _)| v);
    match ours {
        Err(e) if e.reason().contains("elements that read nothing") => {
            assert!(
                theirs.is_none(),
                "shmbus's guard refused {bytes:?} under {LIMIT}, bincode accepts it"
            );
            false
        }
        ours => {
            assert!(
                !too_many,
                "{bytes:?} under {LIMIT}: bincode reads more elements that read nothing"
            );
            let ours = ours.ok();
            assert_eq!(
                ours, theirs,
                "shmbus's bincode decoder and bincode's disagree"
            );
            ours.is_some()
        }
    }
}

/// The differential target's dispatch: one type and limit, picked by `which`.
pub fn bincode_agrees(which: u8, bytes: &[u8]) -> bool {
    match which % 7 {
        0 => bincode_agrees_on::<Order, { 64 << 20 }>(bytes),
        1 => bincode_agrees_on::<Order, 40>(bytes),
        2 => bincode_agrees_on::<String, 8>(bytes),
        3 => bincode_agrees_on::<Vec<Vec<u64>>, 64>(bytes),
        4 => bincode_agrees_on::<Shape, { 64 << 20 }>(bytes),
        5 => bincode_agrees_on::<(i16, u32, i64, u128, char, Option<bool>), 30>(bytes),
        // Elements that read nothing next to ones that read bytes, under a limit they meet
        // (review s6: the element guard once counted both).
        _ => bincode_agrees_on_mixed::<40>(bytes),
    }
}

/// Every codec and type on `bytes`.
pub fn all(bytes: &[u8]) {
    for which in 0..8 {
        one(which, bytes);
    }
    for which in 0..7 {
        bincode_agrees(which, bytes);
    }
}
