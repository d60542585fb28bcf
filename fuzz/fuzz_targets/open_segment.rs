//! Arbitrary bytes presented as a whole segment (a raw image, or a valid image built from
//! docs/PROTOCOL.md with arbitrary patches), opened as an SPSC and as an MPMC ring, then
//! attached and driven: typed errors only, never a panic, an out-of-bounds access or a hang
//! (`shmbus_testkit::images`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmbus_testkit::images::{run_open, OpenCase};

fuzz_target!(|case: OpenCase| {
    if let Err(e) = run_open(&case) {
        panic!("{e}");
    }
});
