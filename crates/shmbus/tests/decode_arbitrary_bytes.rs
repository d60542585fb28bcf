//! The `decode` fuzz target's invariants on stable (`fuzz/fuzz_targets/decode.rs`): arbitrary
//! bytes through every codec's decoder give a value or an error — never a panic or an abort
//! on a huge allocation claim — and a decoded value re-encodes to exactly `encoded_len` bytes
//! that decode to the same value. The cases are the fuzz target's own (`shmbus_testkit::decode`).

use proptest::prelude::*;
use shmbus_testkit::decode as decode_cases;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_decode_to_a_value_or_an_error_in_every_codec(
        bytes in proptest::collection::vec(any::<u8>(), 0..512)
    ) {
        decode_cases::all(&bytes);
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
        decode_cases::all(&bytes);
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&bytes);
        decode_cases::all(&shifted);
    }
}
