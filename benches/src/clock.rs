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

/// The cost of one `CLOCK_MONOTONIC` read, ns: the median over 101 batches of the mean of
/// 1000 back-to-back reads. Every interval timed by a pair of reads includes about one such
/// read; the report prints it so a reader can subtract it.
pub fn read_overhead_ns() -> f64 {
    const READS: u64 = 1000;
    let mut batches: Vec<f64> = (0..101)
        .map(|_| {
            let t0 = now_ns();
            let mut last = t0;
            for _ in 0..READS {
                last = std::hint::black_box(now_ns());
            }
            (last - t0) as f64 / READS as f64
        })
        .collect();
    batches.sort_by(f64::total_cmp);
    batches[batches.len() / 2]
}
