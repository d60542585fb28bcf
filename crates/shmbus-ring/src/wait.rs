//! Waiting: busy-spin, spin-then-yield, and blocking on a futex word in the segment.
//!
//! Shared memory needs the *non-private* futex operations (`FUTEX_WAIT` / `FUTEX_WAKE` without
//! `FUTEX_PRIVATE_FLAG`): the private ones key the wait queue on the process's own address
//! space and never wake another process. std, parking_lot and atomic-wait all use the private
//! ones, hence the raw syscall here.
//!
//! # The sleep/notify protocol (no lost wake-up)
//!
//! Each direction has a wake sequence `S` and a waiters count `W` in the segment (data: the
//! producer block; space: the consumer block). A side that publishes (a record, a commit, a
//! freed slot) runs, after its publishing store:
//!
//! ```text
//! N1  fence(SeqCst)
//! N2  if W.load(Relaxed) != 0 { S.fetch_add(1, Release); futex_wake(S, all) }
//! ```
//!
//! A side that wants to sleep runs:
//!
//! ```text
//! P1  W.fetch_add(1, SeqCst)
//! P2  s = S.load(Acquire)
//! P3  fence(SeqCst)
//! P4  retry the operation; if it succeeds: W.fetch_sub(1), done
//! P5  futex_wait(S, s)          -- returns at once if S != s
//! P6  W.fetch_sub(1); start over
//! ```
//!
//! The two SeqCst fences N1 and P3 are totally ordered. If N1 comes first, the publishing
//! store precedes it and P4 (after P3) sees the publication: no sleep. If P3 comes first, W's
//! increment (P1) precedes it, so N2's load sees `W != 0` and bumps `S` after P2 read it: the
//! `futex_wait` at P5 either finds `S != s` and returns, or is woken by N2's wake. Either way
//! no publication is missed. Rings created without [`crate::layout::RING_FLAG_NOTIFY`] skip N1
//! and N2 (no fence on the hot path); their blocking calls poll with growing sleeps instead.

use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How a blocking call waits when the ring is full (push) or empty (pop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitStrategy {
    /// Busy-spin: lowest latency, one core at 100% while waiting.
    Spin,
    /// Spin for `spin`, then `sched_yield` in a loop: still busy, but gives the core to other
    /// runnable threads.
    SpinYield {
        /// How long to spin before yielding.
        spin: Duration,
    },
    /// Spin for `spin`, then sleep on the futex until notified (no CPU while idle). On these
    /// VMs a cross-core futex wake-up costs tens of microseconds, so the spin phase is what
    /// keeps a busy ring fast: tune it to the message gaps you expect.
    Block {
        /// How long to spin before sleeping.
        spin: Duration,
    },
}

impl Default for WaitStrategy {
    /// [`WaitStrategy::Block`] after 50 µs of spinning.
    fn default() -> Self {
        WaitStrategy::Block {
            spin: Duration::from_micros(50),
        }
    }
}

/// The wake words of one direction, when the ring notifies.
#[derive(Clone, Copy)]
pub(crate) struct WakeWords<'a> {
    pub(crate) seq: &'a AtomicU64,
    pub(crate) waiters: &'a AtomicU64,
}

/// The address of the 32-bit futex word inside a 64-bit wake sequence: its low half.
fn futex_addr(word: &AtomicU64) -> *const u32 {
    let base = word.as_ptr().cast::<u32>();
    if cfg!(target_endian = "big") {
        base.wrapping_add(1)
    } else {
        base
    }
}

/// Sleeps while the low 32 bits of `word` equal those of `expected`, at most `timeout`.
fn futex_wait(word: &AtomicU64, expected: u64, timeout: Option<Duration>) {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: the address is a valid, 4-aligned u32 inside a live mapping (the low half of an
    // aligned `AtomicU64`); FUTEX_WAIT only reads it. `ts_ptr` is null or points to a timespec
    // that outlives the call. EAGAIN (value changed), EINTR and ETIMEDOUT all just return: the
    // caller re-checks its condition.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            futex_addr(word),
            libc::FUTEX_WAIT,
            expected as u32,
            ts_ptr,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes every sleeper on `word`.
pub(crate) fn futex_wake(word: &AtomicU64) {
    // SAFETY: a valid, aligned u32 address in a live mapping; FUTEX_WAKE does not access it
    // beyond hashing the address.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            futex_addr(word),
            libc::FUTEX_WAKE,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes every sleeper of one direction, whatever it waits for: used when the set of
/// endpoints changes (a detach, a reaped peer), so that sleepers re-check for disconnection.
pub(crate) fn wake_all(w: WakeWords<'_>) {
    // SeqCst: as N1 of the protocol (module docs): orders the caller's change (roster bit,
    // repaired slots) before the load of the waiters count; pairs with the sleeper's P3 fence.
    fence(Ordering::SeqCst);
    if w.waiters.load(Ordering::Relaxed) != 0 {
        // Release: as N2; the sleeper's Acquire load of the sequence (P2) pairs with it.
        w.seq.fetch_add(1, Ordering::Release);
        futex_wake(w.seq);
    }
}

/// Runs `attempt` until it returns `Some` (the operation's outcome) or `deadline` passes
/// (`None`), waiting between attempts as `strategy` says. A futex sleep lasts at most `nap`,
/// so that `attempt` runs (and checks peer liveness) at least that often. `attempt(slow)` is
/// told whether it runs after a yield or a sleep (`true`) or in the spin phase (`false`), so
/// that it can afford a clock read each time.
pub(crate) fn wait_for<R>(
    strategy: WaitStrategy,
    deadline: Option<Instant>,
    wake: Option<WakeWords<'_>>,
    nap: Duration,
    mut attempt: impl FnMut(bool) -> Option<R>,
) -> Option<R> {
    // The common case, a call that succeeds at once, reads no clock.
    if let Some(r) = attempt(false) {
        return Some(r);
    }
    let start = Instant::now();
    let expired = |now: Instant| deadline.is_some_and(|d| now >= d);
    let spin = match strategy {
        WaitStrategy::Spin => Duration::MAX,
        WaitStrategy::SpinYield { spin } | WaitStrategy::Block { spin } => spin,
    };
    // Spin phase: check the clock only every 64 attempts.
    let mut n = 0u32;
    loop {
        if let Some(r) = attempt(false) {
            return Some(r);
        }
        n = n.wrapping_add(1);
        if spin.is_zero() {
            // No spin phase: straight to yielding or sleeping after one attempt.
            break;
        }
        if n % 64 == 0 {
            let now = Instant::now();
            if expired(now) {
                return None;
            }
            if now.duration_since(start) >= spin {
                break;
            }
        }
        std::hint::spin_loop();
    }
    match (strategy, wake) {
        (WaitStrategy::Block { .. }, Some(w)) => loop {
            if let Some(r) = attempt(true) {
                return Some(r);
            }
            let now = Instant::now();
            if expired(now) {
                return None;
            }
            // P1..P3: register, read the sequence, fence. SeqCst: pairs with the SeqCst fence
            // of the notifying side (see the module docs).
            w.waiters.fetch_add(1, Ordering::SeqCst);
            let seq = w.seq.load(Ordering::Acquire);
            fence(Ordering::SeqCst);
            let outcome = attempt(true);
            if outcome.is_none() {
                let left = deadline.map_or(nap, |d| d.saturating_duration_since(now).min(nap));
                futex_wait(w.seq, seq, Some(left));
            }
            // Relaxed: the count only gates whether notifiers make the syscall.
            w.waiters.fetch_sub(1, Ordering::Relaxed);
            if outcome.is_some() {
                return outcome;
            }
        },
        (WaitStrategy::Block { .. }, None) => {
            // A ring without notification: poll with growing sleeps (1 µs .. 1 ms).
            let mut nap = Duration::from_micros(1);
            loop {
                if let Some(r) = attempt(true) {
                    return Some(r);
                }
                let now = Instant::now();
                if expired(now) {
                    return None;
                }
                let nap_now = deadline.map_or(nap, |d| nap.min(d.saturating_duration_since(now)));
                std::thread::sleep(nap_now);
                nap = (nap * 2).min(Duration::from_millis(1));
            }
        }
        _ => loop {
            if let Some(r) = attempt(true) {
                return Some(r);
            }
            if expired(Instant::now()) {
                return None;
            }
            std::thread::yield_now();
        },
    }
}
