//! The `decode` fuzz target's invariants on stable (`fuzz/fuzz_targets/decode.rs`): arbitrary
//! bytes through every codec's decoder give a value or an error — never a panic or an abort
//! on a huge allocation claim — and a decoded value re-encodes to exactly `encoded_len` bytes
//! that decode to the same value.

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use shmbus::codec::{Bincode, Codec, Plain, Postcard, Raw};
use std::collections::BTreeMap;

#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Shape {
    Unit,
    Point(i32, i32),
    Rect { w: u32, h: u32 },
    Path(Vec<(i16, i16)>),
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Order {
    id: u64,
    symbol: String,
    tags: Vec<String>,
    attrs: BTreeMap<String, Vec<u8>>,
    shape: Option<Shape>,
    flags: (bool, u8, i64),
    unit: (),
}

/// Decodes `bytes`; if that works, checks the re-encode round trip. Returns whether it decoded.
fn round_trip<C: Codec<T>, T: PartialEq + std::fmt::Debug>(bytes: &[u8]) -> bool {
    let Ok(v) = C::decode(bytes) else {
        return false;
    };
    let len = C::encoded_len(&v).expect("a decoded value encodes");
    let mut buf = vec![0u8; len];
    let n = C::encode(&v, &mut buf).expect("encodes into its encoded_len");
    assert_eq!(n, len);
    assert_eq!(C::decode(&buf[..n]).expect("re-encoded decodes"), v);
    true
}

fn all_codecs(bytes: &[u8]) {
    round_trip::<Bincode, Order>(bytes);
    round_trip::<Bincode<1024>, Order>(bytes);
    round_trip::<Postcard, Order>(bytes);
    round_trip::<Bincode, String>(bytes);
    round_trip::<Bincode, Vec<Vec<u64>>>(bytes);
    round_trip::<Postcard, Vec<String>>(bytes);
    assert_eq!(
        round_trip::<Plain, [u64; 4]>(bytes),
        bytes.len() == 32,
        "Plain decodes exactly its own size"
    );
    assert!(round_trip::<Raw, Vec<u8>>(bytes), "Raw decodes anything");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_decode_to_a_value_or_an_error_in_every_codec(
        bytes in proptest::collection::vec(any::<u8>(), 0..512)
    ) {
        all_codecs(&bytes);
    }

    /// Length prefixes are where decoders go wrong: start with a varint or a fixed-width
    /// length that claims up to 2^64 bytes, then arbitrary bytes.
    #[test]
    fn huge_length_claims_are_errors_not_aborts(
        tag in 0xfbu8..=0xff,
        claim in any::<u64>(),
        rest in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = vec![tag];
        bytes.extend_from_slice(&claim.to_le_bytes());
        bytes.extend_from_slice(&rest);
        all_codecs(&bytes);
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&bytes);
        all_codecs(&shifted);
    }
}
