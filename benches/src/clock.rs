//! Clocks: CLOCK_MONOTONIC for timestamps (one clock for every process on the host) and
//! CLOCK_PROCESS_CPUTIME_ID for the CPU a process spends.

use nix::time::{clock_gettime, ClockId};

fn ns(id: ClockId) -> u64 {
    // clock_gettime on these two clocks cannot fail on Linux for a valid id.
    let ts = clock_gettime(id).expect("clock_gettime");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

/// CLOCK_MONOTONIC, nanoseconds.
#[inline(always)]
pub fn now_ns() -> u64 {
    ns(ClockId::CLOCK_MONOTONIC)
}

/// CPU time used by this whole process so far (all threads, user + system), nanoseconds.
pub fn cpu_ns() -> u64 {
    ns(ClockId::CLOCK_PROCESS_CPUTIME_ID)
}
