//! Fuzz harness for the shmbus ring protocol. The drivers and models live in [`harness`],
//! which the stable property tests in `crates/shmbus-ring/tests/fuzz_invariants.rs` include
//! as well, so a fuzz finding and its regression test run the same code. The `decode` target's
//! cases live in [`decode_cases`], which `crates/shmbus/tests/decode_arbitrary_bytes.rs`
//! includes the same way.
#![forbid(unsafe_code)]

pub mod decode_cases;
pub mod harness;
