//! Waiting: busy-spin, spin-then-yield, and blocking on a futex word in the segment.
//!
//! Shared memory needs the *non-private* futex operations (`FUTEX_WAIT` / `FUTEX_WAKE` without
//! `FUTEX_PRIVATE_FLAG`): the private ones key the wait queue on the process's own address
//! space and never wake another process. std, `parking_lot` and atomic-wait all use the private
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
//! The two `SeqCst` fences N1 and P3 are totally ordered. If N1 comes first, the publishing
//! store precedes it and P4 (after P3) sees the publication: no sleep. If P3 comes first, W's
//! increment (P1) precedes it, so N2's load sees `W != 0` and bumps `S` after P2 read it: the
//! `futex_wait` at P5 either finds `S != s` and returns, or is woken by N2's wake. Either way
//! no publication is missed. Rings created without [`crate::layout::RING_FLAG_NOTIFY`] skip N1
//! and N2 (no fence on the hot path); their blocking calls poll with growing sleeps instead.
//!
//! # Membarrier mode (PROTOCOL §6.3, DECISIONS D65)
//!
//! N1's fence waits for the publishing store to leave the store buffer, i.e. for the line the
//! polling peer holds: it halves streaming. A ring with
//! [`crate::layout::RING_FLAG_MEMBARRIER`] moves that cost to the sleeper:
//!
//! ```text
//! N1m compiler fence only                      (a notifier of a registered process)
//! P3m after P3: membarrier(GLOBAL_EXPEDITED)   (every sleeper)
//! ```
//!
//! The membarrier call makes every registered notifier execute a full barrier at some point
//! X of its program during the call. X is after the notifier's publishing store, so P4 sees
//! the publication, or before its N2 load, so N2 sees P1's increment: the store precedes
//! the load in program order (the compiler fence keeps it so), and X cannot be neither. A
//! notifier of an unregistered process keeps N1 ([`Barrier::Membarrier`]'s `light` false),
//! which pairs with P3 as in fence mode. A sleeper whose membarrier call fails polls
//! ([`crate::membarrier::POLL_NAP`]).

use crate::layout::{
    BLOCK_BELLS, BLOCK_STATS, BLOCK_WAITERS, BLOCK_WAKE_SEQ, CONSUMER_BLOCK, ENDPOINT_BELL,
    ENDPOINT_TABLE, MAX_ENDPOINTS, PRODUCER_BLOCK,
};
use crate::sync::{compiler_fence, fence, spin_hint, Memory, Ordering};
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

/// Which way a wake-up goes: to consumers waiting for data, or to producers waiting for space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// "Data was published": consumers sleep on it.
    Data,
    /// "Space was freed": producers sleep on it.
    Space,
}

/// Where a ring's wake sequences and waiter counts live, for both directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wake {
    /// "Data was published": the producer block's wake sequence.
    pub(crate) data_seq: usize,
    /// Consumers asleep on `data_seq`.
    pub(crate) data_waiters: usize,
    /// "Space was freed": the consumer block's wake sequence.
    pub(crate) space_seq: usize,
    /// Producers asleep on `space_seq`.
    pub(crate) space_waiters: usize,
    /// Consumers waiting asynchronously for data: the producer block's bell bitmap (1.3).
    pub(crate) data_bells: usize,
    /// Producers waiting asynchronously for space: the consumer block's bell bitmap (1.3).
    pub(crate) space_bells: usize,
    /// Entry 0's bell id word; entry `i`'s is `ENDPOINT_SIZE × i` further.
    pub(crate) bell_ids: usize,
    /// How many entries the table has.
    pub(crate) entries: u64,
    /// Who pays for the barrier between a publication and a sleeper's announcement.
    pub(crate) barrier: Barrier,
}

/// Who pays for the barrier that orders a publication against a sleeper's announcement
/// (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Barrier {
    /// Fence mode: every notifier runs N1's `SeqCst` fence.
    Fence,
    /// Membarrier mode ([`crate::layout::RING_FLAG_MEMBARRIER`]): sleepers run P3m; `light`:
    /// this process is registered, so its notifiers skip N1's hardware fence (N1m).
    Membarrier {
        /// This process registered ([`crate::membarrier::register`]).
        light: bool,
    },
    /// loom only: light notifiers, but sleepers without P3m. The models must fail with it.
    #[cfg(loom)]
    Unsound,
}

impl Wake {
    /// The wake words of a segment laid out as layout 1 says (both ring kinds).
    pub(crate) const SEGMENT: Wake = Wake {
        data_seq: to_usize(PRODUCER_BLOCK + BLOCK_WAKE_SEQ),
        data_waiters: to_usize(PRODUCER_BLOCK + BLOCK_WAITERS),
        space_seq: to_usize(CONSUMER_BLOCK + BLOCK_WAKE_SEQ),
        space_waiters: to_usize(CONSUMER_BLOCK + BLOCK_WAITERS),
        data_bells: to_usize(PRODUCER_BLOCK + BLOCK_BELLS),
        space_bells: to_usize(CONSUMER_BLOCK + BLOCK_BELLS),
        bell_ids: to_usize(ENDPOINT_TABLE + ENDPOINT_BELL),
        entries: MAX_ENDPOINTS,
        barrier: Barrier::Fence,
    };

    /// The wake words of a segment whose header carries `ring_flags`: `None` without
    /// [`crate::layout::RING_FLAG_NOTIFY`]; in membarrier mode
    /// ([`crate::layout::RING_FLAG_MEMBARRIER`]) this registers the process
    /// ([`crate::membarrier::register`]), once, before any notify can use the result.
    pub(crate) fn for_ring(ring_flags: u32) -> Option<Wake> {
        use crate::layout::{RING_FLAG_MEMBARRIER, RING_FLAG_NOTIFY};
        if ring_flags & RING_FLAG_NOTIFY == 0 {
            return None;
        }
        let barrier = if ring_flags & RING_FLAG_MEMBARRIER == 0 {
            Barrier::Fence
        } else {
            Barrier::Membarrier {
                light: crate::membarrier::register(),
            }
        };
        Some(Wake {
            barrier,
            ..Wake::SEGMENT
        })
    }

    /// The bell bitmap of one direction.
    #[inline]
    pub(crate) fn bells(self, dir: Direction) -> usize {
        match dir {
            Direction::Data => self.data_bells,
            Direction::Space => self.space_bells,
        }
    }

    /// The wake sequence and waiters count of one direction: `(seq, waiters)` offsets.
    #[inline]
    pub(crate) fn words(self, dir: Direction) -> (usize, usize) {
        match dir {
            Direction::Data => (self.data_seq, self.data_waiters),
            Direction::Space => (self.space_seq, self.space_waiters),
        }
    }

    /// The statistics counters (layout 1.3, [`crate::stats`]) of the side that publishes in
    /// direction `dir` (`notifier`) or sleeps on it (not `notifier`): data is published by
    /// producers and waited for by consumers. Derived from the wake sequence's offset (each
    /// block's counters sit at a fixed distance from its wake sequence); the loom models' words
    /// have no counters, and `stats::bump` does nothing under loom.
    #[inline]
    pub(crate) fn stats(self, dir: Direction, notifier: bool) -> usize {
        let seq = if (dir == Direction::Data) == notifier {
            self.data_seq
        } else {
            self.space_seq
        };
        seq + to_usize(BLOCK_STATS) - to_usize(BLOCK_WAKE_SEQ)
    }
}

/// N1–N2 of the sleep/notify protocol (module docs): after a publishing store (a record, a
/// commit, a freed slot) or a change of the set of endpoints (a detach, a reaped peer), wake
/// the sleepers of direction `dir` if there are any.
///
/// # Safety
///
/// - `wake`'s words of `dir` are in-bounds aligned words of `mem`.
#[inline]
pub(crate) unsafe fn notify<M: Memory>(mem: &M, wake: Wake, dir: Direction) {
    let (seq, waiters) = wake.words(dir);
    match wake.barrier {
        Barrier::Membarrier { light: true } => {
            // N1m: compiler fence only: the publishing store stays before the load of the
            // waiters count in program order, which is all a sleeper's P3m needs.
            compiler_fence();
            #[cfg(loom)]
            crate::membarrier::model::ipi_point();
        }
        #[cfg(loom)]
        Barrier::Unsound => crate::membarrier::model::ipi_point(),
        // N1: SeqCst fence. Orders the caller's publishing store before the load of the
        // waiters count; pairs with the sleeper's P3 fence (`sleep_once`).
        _ => fence(Ordering::SeqCst),
    }
    // SAFETY: the caller's contract.
    unsafe {
        // N2: Relaxed load of W; the fences (N1 and P3, or P3m's barrier) order it.
        if mem.load(waiters, Ordering::Relaxed) != 0 {
            // N2: Release: orders the publication before the sequence change a sleeper reads
            // (its Acquire load, P2) — and the change makes its futex wait (P5) return.
            mem.fetch_add(seq, 1, Ordering::Release);
            mem.wake(seq);
            // T1 (layout 1.3): a wake sent, on the publishing side's own counter line.
            crate::stats::bump(mem, wake.stats(dir, true), crate::stats::WAKES, 1);
        }
        // N3 (layout 1.3, §6.1): Relaxed load of the bell bitmap, on W's line; the fences
        // order it as N2's load. Armed asynchronous waiters are rung in a cold path.
        let bells = wake.bells(dir);
        if mem.load(bells, Ordering::Relaxed) != 0 {
            crate::bell::ring_armed(mem, bells, wake.bell_ids, wake.entries);
        }
    }
    #[cfg(loom)]
    if matches!(
        wake.barrier,
        Barrier::Membarrier { light: true } | Barrier::Unsound
    ) {
        crate::membarrier::model::ipi_point();
    }
}

/// P3 (and P3m in membarrier mode) of a sleeper, B2 of an asynchronous waiter: after
/// announcing itself, before its re-check. `false` if the ring is in membarrier mode and the
/// membarrier call failed: light notifiers may then miss the announcement, so the caller
/// must not wait unboundedly (it polls, at most [`crate::membarrier::POLL_NAP`] a sleep).
pub(crate) fn sleeper_barrier<M: Memory>(mem: &M, barrier: Barrier) -> bool {
    // P3: SeqCst fence; pairs with a fence-mode notifier's N1 (in membarrier mode too: a
    // notifier of an unregistered process keeps N1).
    fence(Ordering::SeqCst);
    match barrier {
        // P3m: every registered notifier executes a full barrier during the call.
        Barrier::Membarrier { .. } => crate::membarrier::global(mem),
        Barrier::Fence => true,
        #[cfg(loom)]
        Barrier::Unsound => true,
    }
}

/// One round of P1–P6 (module docs): registers as a waiter of direction `dir`, re-runs
/// `attempt`, and if it still fails sleeps on the wake sequence until `until` at the latest (`None`:
/// until woken). Returns `attempt`'s outcome if it succeeded; `None` after a sleep (woken, timed
/// out or spuriously: the caller re-checks).
///
/// # Safety
///
/// - `wake`'s words of `dir` are in-bounds aligned words of `mem`.
pub(crate) unsafe fn sleep_once<M: Memory, R>(
    mem: &M,
    wake: Wake,
    dir: Direction,
    until: Option<Instant>,
    attempt: impl FnOnce() -> Option<R>,
) -> Option<R> {
    let (seq_off, waiters) = wake.words(dir);
    // SAFETY: the caller's contract.
    unsafe {
        // P1: SeqCst: the increment is in the total order before our P3 fence, so a notifier
        // whose N1 fence follows P3 sees it (N2).
        mem.fetch_add(waiters, 1, Ordering::SeqCst);
        // P2: Acquire: pairs with N2's Release increment, so a publication that bumped the
        // sequence before this load is visible to the re-check (P4).
        let seq = mem.load(seq_off, Ordering::Acquire);
        // P3 (P3m): pairs with the notifier's N1 (or stands in for it).
        let forced = sleeper_barrier(mem, wake.barrier);
        // P4: re-check.
        let outcome = attempt();
        if outcome.is_none() {
            // P5: sleep while the sequence is still `seq`.
            // The timeout is taken now, after P4 (which may have probed peers, or been
            // descheduled): the sleep ends at `until`, not that long after it.
            let mut timeout = until.map(|u| u.saturating_duration_since(Instant::now()));
            if !forced {
                // No P3m: a light notifier may miss us. Poll instead of sleeping for good.
                let nap = crate::membarrier::POLL_NAP;
                timeout = Some(timeout.map_or(nap, |t| t.min(nap)));
            }
            // T1 (layout 1.3): a futex sleep, on the sleeping side's own counter line.
            crate::stats::bump(mem, wake.stats(dir, false), crate::stats::SLEEPS, 1);
            mem.wait(seq_off, seq, timeout);
        }
        // P6: Relaxed: the count only gates whether notifiers make the syscall.
        mem.fetch_sub(waiters, 1, Ordering::Relaxed);
        outcome
    }
}

/// How an attempt inside [`wait_for`] is paced: whether it may afford a clock read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pace {
    /// A non-blocking call, or the spin phase of a blocking one: a tight loop, which reads the
    /// clock only now and then.
    Spinning,
    /// After a yield or a sleep: reading the clock costs nothing in comparison.
    Waited,
}

/// Runs `attempt` until it returns `Some` (the operation's outcome) or `deadline` passes
/// (`None`), waiting between attempts as `strategy` says. `wake` names the direction to sleep
/// on, when the ring notifies (`None`: poll with growing sleeps). A futex sleep lasts at most
/// `nap`, so that `attempt` runs (and checks peer liveness) at least that often.
pub(crate) fn wait_for<M: Memory, R>(
    strategy: WaitStrategy,
    deadline: Option<Instant>,
    mem: &M,
    wake: Option<(Wake, Direction)>,
    nap: Duration,
    mut attempt: impl FnMut(Pace) -> Option<R>,
) -> Option<R> {
    // The common case, a call that succeeds at once, reads no clock.
    if let Some(r) = attempt(Pace::Spinning) {
        return Some(r);
    }
    let start = Instant::now();
    let expired = |now: Instant| deadline.is_some_and(|d| now >= d);
    let spin = match strategy {
        WaitStrategy::Spin => Duration::MAX,
        WaitStrategy::SpinYield { spin } | WaitStrategy::Block { spin } => spin,
    };
    // Spin phase: one spin hint between attempts (not an exponential backoff: DECISIONS D17),
    // and a clock read only every 64 attempts.
    let mut n = 0u32;
    loop {
        if let Some(r) = attempt(Pace::Spinning) {
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
        spin_hint();
    }
    match (strategy, wake) {
        (WaitStrategy::Block { .. }, Some((wake, dir))) => loop {
            if let Some(r) = attempt(Pace::Waited) {
                return Some(r);
            }
            let now = Instant::now();
            if expired(now) {
                return None;
            }
            let left = deadline.map_or(nap, |d| d.saturating_duration_since(now).min(nap));
            // SAFETY: `wake` comes from the ring's validated geometry, whose words `mem` holds.
            let outcome =
                unsafe { sleep_once(mem, wake, dir, Some(now + left), || attempt(Pace::Waited)) };
            if outcome.is_some() {
                return outcome;
            }
        },
        (WaitStrategy::Block { .. }, None) => {
            // A ring without notification: poll with growing sleeps (1 µs .. 1 ms).
            let mut nap = Duration::from_micros(1);
            loop {
                if let Some(r) = attempt(Pace::Waited) {
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
            if let Some(r) = attempt(Pace::Waited) {
                return Some(r);
            }
            if expired(Instant::now()) {
                return None;
            }
            std::thread::yield_now();
        },
    }
}

const fn to_usize(v: u64) -> usize {
    crate::conv::offset(v)
}
