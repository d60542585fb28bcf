//! Arbitrary sequences of SPSC and MPMC operations (push, batch, reserve/commit/abort,
//! peek/release, pops; claim/commit/abandon, bulk, burst) on in-process rings, checked
//! against a model of positions and contents.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmbus_fuzz::harness::{run_mpmc, run_spsc, MpmcCase, SpscCase};

#[derive(Debug, arbitrary::Arbitrary)]
enum Case {
    Spsc(SpscCase),
    Mpmc(MpmcCase),
}

fuzz_target!(|case: Case| {
    let r = match &case {
        Case::Spsc(c) => run_spsc(c),
        Case::Mpmc(c) => run_mpmc(c),
    };
    if let Err(e) = r {
        panic!("model mismatch: {e}");
    }
});
