//! Honest operations on a live ring (memfd segment) interleaved with arbitrary writes through
//! a second mapping to positions, record headers, slot sequence and length words, owner words,
//! the endpoint table and the header: the honest side never panics, never hands out more than
//! the limit, and reports `Corrupt` for a poisoned header (`shmbus_testkit::hostile`). The
//! broadcast half writes to cursors, intent, history and roster words as well
//! (`shmbus_testkit::hostile_broadcast`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmbus_testkit::hostile_broadcast::{run_peer, PeerCase};

fuzz_target!(|case: PeerCase| {
    if let Err(e) = run_peer(&case) {
        panic!("{e}");
    }
});
