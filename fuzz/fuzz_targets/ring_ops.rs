//! Arbitrary sequences of SPSC and MPMC operations (push, try_push_batch, try_push_all,
//! reserve/commit/abort, read in place, every pop) on in-process rings, checked
//! against a model of positions and contents (`shmbus_testkit::ops`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmbus_testkit::ops::{run_ring_ops, RingOpsCase};

fuzz_target!(|case: RingOpsCase| {
    if let Err(e) = run_ring_ops(&case) {
        panic!("model mismatch: {e}");
    }
});
