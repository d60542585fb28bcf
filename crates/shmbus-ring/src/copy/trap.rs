//! Whether this CPU's `rep movsb` falls into the near-page-offset trap (DECISIONS D9, D79):
//! measured once per process, on the first copy that asks (one of 768 bytes or more between
//! near page offsets).
//!
//! On AMD Zen 3 (D9) glibc's `rep movsb` copy of a few KiB ran about ten times slower when the
//! destination sat 8–24 bytes from the source's page offset; on the Zen 4 VM of D79 the same
//! copy costs at most 1.3× there within one core, and between cores the 2 KiB pieces that
//! avoid the trap cost the ring 10–20% of its 4 KiB streaming rate wherever a record and the
//! user's buffer met at near page offsets. No CPU flag tells the two apart, so the ring times
//! the copy itself: a few dozen 4 KiB copies, once, within one core (the trap is the core's
//! own; it does not need a second core to show).

use std::hint::black_box;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// Not measured yet.
const UNKNOWN: u8 = 0;
/// Measured: near page offsets copy about as fast as far ones.
const FAST: u8 = 1;
/// Measured: near page offsets fall into the trap.
const TRAPPED: u8 = 2;

/// The process's verdict: [`UNKNOWN`], [`FAST`] or [`TRAPPED`].
static VERDICT: AtomicU8 = AtomicU8::new(UNKNOWN);

/// How many times slower a near copy must be than a far one to count as the trap: the trap
/// is ~10× (D9), the harmless slowdown ~1.3× (D79).
const TRAP_RATIO: u32 = 3;

/// Bytes per timed copy: above glibc's `rep movsb` threshold, as the copies that matter.
const LEN: usize = 4096;

/// Copies per timed batch, and batches per distance (the fastest batch counts, so that a
/// preemption or an interrupt during one batch does not decide).
const BATCH: usize = 8;
const ROUNDS: usize = 5;

/// The distances (destination page offset minus source page offset) where D9 found the trap,
/// and a distance far from it.
const NEAR: [usize; 3] = [8, 16, 24];
const FAR: usize = 1024;

/// Whether copies between near page offsets should avoid `rep movsb` (above 2 KiB: go in
/// pieces; from 768 bytes into a ring: `memcpy`, D84): measured the
/// first time it is asked, then cached for the process.
#[inline]
pub(super) fn near_is_slow() -> bool {
    // Relaxed: a cached verdict, publishing no other data; two threads that both find it
    // unknown both measure, and either verdict is a valid one.
    match VERDICT.load(Ordering::Relaxed) {
        FAST => false,
        TRAPPED => true,
        _ => measure_once(),
    }
}

/// Measures, caches and returns the verdict.
#[cold]
#[inline(never)]
fn measure_once() -> bool {
    // Loom and Miri model memory, not time: there the pieces are never needed.
    let trapped = !cfg!(any(loom, miri)) && measure();
    // Relaxed: as in `near_is_slow`.
    VERDICT.store(if trapped { TRAPPED } else { FAST }, Ordering::Relaxed);
    trapped
}

/// Times 4 KiB copies at the near distances and at a far one, and judges them.
fn measure() -> bool {
    let src = vec![0x5Au8; 3 * PAGE];
    let mut dst = vec![0u8; 3 * PAGE];
    let s = to_page(src.as_ptr());
    let d = to_page(dst.as_ptr());
    let mut near = [Duration::MAX; NEAR.len()];
    let mut far = Duration::MAX;
    // Interleaved, so that a burst of other load touches every distance alike.
    for _ in 0..ROUNDS {
        for (best, &distance) in near.iter_mut().zip(&NEAR) {
            *best = (*best).min(time(&src[s..s + LEN], &mut dst[d + distance..]));
        }
        far = far.min(time(&src[s..s + LEN], &mut dst[d + FAR..]));
    }
    judge(&near, far)
}

/// A page's bytes.
const PAGE: usize = 4096;

/// The index of the first page boundary at or after `p`.
fn to_page(p: *const u8) -> usize {
    (p as usize).next_multiple_of(PAGE) - p as usize
}

/// The time of [`BATCH`] copies of `src` into the start of `dst`.
///
/// The copy is our own `rep movsb` where the CPU has fast string moves, as the mid-size copies
/// into a ring use it (D84), and glibc's `memcpy` (which takes `rep movsb` at this length
/// unless tuned otherwise) elsewhere: the verdict must be about the instruction those paths
/// run, whatever glibc chooses.
fn time(src: &[u8], dst: &mut [u8]) -> Duration {
    let dst = &mut dst[..src.len()];
    let own = super::string_moves_fast();
    let start = Instant::now();
    for _ in 0..BATCH {
        let (s, d) = (black_box(src), black_box(&mut *dst));
        if own {
            // SAFETY: `d` is `s.len()` bytes (sliced above), and the two are distinct
            // vectors' bytes, so they do not overlap.
            unsafe { super::rep_movsb(s.as_ptr(), d.as_mut_ptr(), s.len()) };
        } else {
            d.copy_from_slice(s);
        }
    }
    start.elapsed()
}

/// The trap: the slowest near distance at least [`TRAP_RATIO`] times the far one.
fn judge(near: &[Duration], far: Duration) -> bool {
    let slowest = near.iter().copied().max().unwrap_or(Duration::ZERO);
    slowest >= far.saturating_mul(TRAP_RATIO) && !far.is_zero()
}

#[cfg(test)]
mod tests {
    use super::{judge, near_is_slow};
    use std::time::Duration;

    #[test]
    fn the_trap_is_a_near_copy_three_times_slower_than_a_far_one() {
        let ns = Duration::from_nanos;
        // D9's Zen 3: ~10x at one near distance.
        assert!(judge(&[ns(300), ns(1700), ns(300)], ns(170)));
        // D79's Zen 4: 1.3x.
        assert!(!judge(&[ns(37), ns(37), ns(35)], ns(28)));
        assert!(!judge(&[ns(83), ns(80), ns(80)], ns(28)));
        assert!(judge(&[ns(84), ns(80), ns(80)], ns(28)));
        // A clock that did not move judges nothing slow.
        assert!(!judge(&[Duration::ZERO; 3], Duration::ZERO));
    }

    #[test]
    fn the_verdict_is_measured_once_and_kept() {
        let first = near_is_slow();
        for _ in 0..3 {
            assert_eq!(near_is_slow(), first);
        }
    }
}
