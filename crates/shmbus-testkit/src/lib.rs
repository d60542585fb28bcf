//! The test kit of shmbus, written once and shared by the ring crate's tests, the typed
//! channel crate's tests and the cargo-fuzz targets (`fuzz/`), so a fuzz finding and its
//! regression test run the same code. It uses only the public API of `shmbus-ring` (and of
//! `shmbus`, for the [`decode`] cases).
//!
//! - [`models`]: the reference models of the SPSC and MPMC rings.
//! - [`ops`]: operation sequences on in-process rings checked against the models (the
//!   `ring_ops` target, and the model tests).
//! - [`images`]: segment images built by hand from `docs/PROTOCOL.md`, with patches, and the
//!   `open_segment` driver.
//! - [`honest`]: honest endpoints of either ring kind that tolerate garbage in the ring.
//! - [`hostile`]: a hostile peer writing into a live ring through a second mapping (the
//!   `hostile_peer` target).
//! - [`hostile_broadcast`]: the same for a broadcast ring (publisher, subscribers, cursors,
//!   intent, history); [`hostile_broadcast::PeerCase`] is the target's input.
//! - [`process`]: child processes (the test binary re-spawned in a role), killed and reaped
//!   when dropped, and unique segment names.
//! - [`sysv`]: a guard that removes a test's System V segments, pass or fail.
//! - [`stream`]: sequence-numbered, checksummed messages of varying length for streams
//!   between processes.
//! - [`rng`]: a small deterministic random generator for tests that replay by seed.
//! - [`decode`] (feature `decode`): the typed channels' codec cases (the `decode` target).
//!
//! Every driver returns `Err(description)` on a broken invariant; a panic inside the ring
//! crate is a finding by itself. With the feature `arbitrary`, every case and operation type
//! derives `arbitrary::Arbitrary` (the fuzz targets decode their inputs into them).
//!
//! Nothing here is built under `--cfg loom` (the loom models use none of it).
#![cfg(not(loom))]
#![forbid(unsafe_code)]

/// Returns `Err(format!(..))` from the enclosing function unless `$cond` holds.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(format!($($fmt)*));
        }
    };
}

/// Returns `Err` naming both values from the enclosing function unless `$a == $b`.
macro_rules! ensure_eq {
    ($a:expr, $b:expr, $($fmt:tt)*) => {{
        let (a, b) = (&$a, &$b);
        if a != b {
            return Err(format!("{}: {:?} != {:?}", format!($($fmt)*), a, b));
        }
    }};
}

#[cfg(feature = "decode")]
pub mod decode;
pub mod honest;
pub mod hostile;
pub mod hostile_broadcast;
pub mod images;
pub mod models;
pub mod ops;
pub mod process;
pub mod rng;
pub mod stream;
pub mod sysv;

pub use process::{respawn, role, unique_name, ChildGuard, ROLE};
pub use sysv::SysvSweep;

/// A length drawn by the fuzzer: mostly within `max`, sometimes just above it (`0xF000..`
/// maps to `max + 1 + (raw & 0xff)`, for `TooLarge`).
pub fn fuzz_len(raw: u16, max: usize) -> usize {
    if raw >= 0xF000 {
        max + 1 + usize::from(raw & 0xff)
    } else {
        usize::from(raw) % (max + 1)
    }
}
