//! Statistics counters in shared memory (layout 1.3, PROTOCOL §6.2): what tools such as the
//! `shmbus` command read to tell a ring that fills, a consumer that sleeps, or a peer that
//! died, without joining the ring.
//!
//! Each control block holds [`BLOCK_STATS_WORDS`](crate::layout::BLOCK_STATS_WORDS) `u64`
//! counters on its second cache line (block offsets `+64..+128`), which no hot path touches.
//! The side that owns the block bumps them (the producer block's by producers, the consumer
//! block's by consumers), and only on slow paths:
//!
//! | word | index | producer block | consumer block |
//! |---|---|---|---|
//! | `+64` | [`STALLS`] | push attempts that found the ring full | pop attempts that found it empty |
//! | `+72` | [`SLEEPS`] | futex sleeps waiting for space | futex sleeps waiting for data |
//! | `+80` | [`WAKES`] | `FUTEX_WAKE` calls for "data published" | `FUTEX_WAKE` calls for "space freed" |
//! | `+88` | [`PROBES`] | liveness probes run by producers | liveness probes run by consumers |
//! | `+96` | [`REAPED`] | dead endpoints reaped by producers | dead endpoints reaped by consumers |
//! | `+104` | [`LAPPED`] | reserved for broadcast rings (0) | reserved for broadcast rings (0) |
//! | `+112`, `+120` | | reserved, 0 | reserved, 0 |
//!
//! Every bump is a Relaxed `fetch_add` (**T1**): a counter publishes nothing and orders
//! nothing, and readers load it Relaxed (**T2**). [`STALLS`] is tallied in the endpoint's own
//! memory on the empty/full path and added to the block when the endpoint probes (at most one
//! probe interval late) and when it detaches, so that even a spinning `try_pop` adds no
//! atomic operation per poll. Counters wrap; a reader takes differences with
//! `wrapping_sub`. A hostile peer can write any value: a counter only informs.
//!
//! ```
//! use shmbus_ring::{stats, SpscConfig, SpscRing, PopError};
//! let ring = SpscRing::in_heap(&SpscConfig::new(1 << 12))?;
//! let _tx = ring.producer()?;
//! let mut rx = ring.consumer()?;
//! assert_eq!(rx.try_pop(&mut [0u8; 64]), Err(PopError::Empty));
//! drop(rx); // a detach publishes the endpoint's tally
//! let [_producer, consumer] = stats::read(ring.segment())?;
//! assert_eq!(consumer.stalls, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::conv::offset;
use crate::endpoint::Role;
use crate::error::{Error, Result};
use crate::layout::{BLOCK_STATS, CONSUMER_BLOCK, DATA_OFFSET, PRODUCER_BLOCK};
use crate::segment::Segment;
use crate::sync::{Memory, Ordering};

/// Index of the counter of push attempts that found the ring full (producer block) or pop
/// attempts that found it empty (consumer block); each poll of a spinning wait counts.
pub const STALLS: usize = 0;
/// Index of the counter of futex sleeps (P5) of the block's side.
pub const SLEEPS: usize = 1;
/// Index of the counter of `FUTEX_WAKE` calls (N2) in the block's direction.
pub const WAKES: usize = 2;
/// Index of the counter of liveness probes run by the block's side.
pub const PROBES: usize = 3;
/// Index of the counter of dead endpoints reaped by the block's side.
pub const REAPED: usize = 4;
/// Index reserved for broadcast rings: subscribers lapped by the publisher (0 on SPSC and
/// MPMC rings).
pub const LAPPED: usize = 5;

/// The statistics counters of one control block, as read by [`read`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// [`STALLS`]: full pushes (producer block) or empty pops (consumer block).
    pub stalls: u64,
    /// [`SLEEPS`]: futex sleeps.
    pub sleeps: u64,
    /// [`WAKES`]: `FUTEX_WAKE` calls made.
    pub wakes: u64,
    /// [`PROBES`]: liveness probes run.
    pub probes: u64,
    /// [`REAPED`]: dead endpoints reaped.
    pub reaped: u64,
    /// [`LAPPED`]: reserved for broadcast rings.
    pub lapped: u64,
}

impl Counters {
    /// The counters as `(name, value)` pairs, in word order (for tools).
    pub fn named(&self) -> [(&'static str, u64); 6] {
        [
            ("stalls", self.stalls),
            ("sleeps", self.sleeps),
            ("wakes", self.wakes),
            ("probes", self.probes),
            ("reaped", self.reaped),
            ("lapped", self.lapped),
        ]
    }
}

/// The offset of the first counter of `role`'s control block.
pub(crate) const fn block_of(role: Role) -> usize {
    match role {
        Role::Producer => offset(PRODUCER_BLOCK + BLOCK_STATS),
        Role::Consumer => offset(CONSUMER_BLOCK + BLOCK_STATS),
    }
}

/// T1: adds `n` to counter `index` of the block whose counters start at `base`.
///
/// # Safety
///
/// - `base + 8 * index + 8` is within `mem`, `base` 8-aligned (a block's counters).
#[inline]
pub(crate) unsafe fn bump<M: Memory>(mem: &M, base: usize, index: usize, n: u64) {
    // Under loom the counters are left out: they order nothing, and each RMW would multiply
    // the interleavings the models explore.
    #[cfg(not(loom))]
    if n != 0 {
        // T1: Relaxed: a statistic, which publishes nothing.
        // SAFETY: the caller's contract.
        unsafe { mem.fetch_add(base + 8 * index, n, Ordering::Relaxed) };
    }
    #[cfg(loom)]
    let _ = (mem, base, index, n);
}

/// Reads both control blocks' counters, `[producer, consumer]`, from a segment that holds a
/// ring (a read-only mapping is enough).
///
/// # Errors
///
/// [`Error::Truncated`] if the segment is shorter than its first page.
pub fn read(seg: &Segment) -> Result<[Counters; 2]> {
    let mem = seg.raw_mem(offset(DATA_OFFSET)).ok_or(Error::Truncated {
        target: seg.target(),
        actual: crate::conv::wide(seg.len()),
        needed: DATA_OFFSET,
    })?;
    let one = |role| {
        let base = block_of(role);
        // T2: Relaxed: statistics only.
        // SAFETY: the counters are in the first page, which `mem` holds (checked above).
        let w = |i: usize| unsafe { mem.load(base + 8 * i, Ordering::Relaxed) };
        Counters {
            stalls: w(STALLS),
            sleeps: w(SLEEPS),
            wakes: w(WAKES),
            probes: w(PROBES),
            reaped: w(REAPED),
            lapped: w(LAPPED),
        }
    };
    Ok([one(Role::Producer), one(Role::Consumer)])
}
