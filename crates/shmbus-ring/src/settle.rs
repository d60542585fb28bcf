//! Settling (MPMC M17, PROTOCOL §5.3): what a non-blocking pop does when it found the head
//! position not committed while a later message is — it waits a moment and retries, so that
//! "empty" is a linearizable answer. Entered from the consumer's fast path (`endpoint.rs`)
//! only when the core says a message is in flight, which an SPSC core never does.

use crate::checksum::next_of;
use crate::endpoint::{Consumer, ReadCore};
use crate::error::PopError;
use crate::ring::Kind;
use crate::wait::Pace;
use std::time::Instant;

/// Spins between two looks at a message being written at the head (`Consumer::settle`):
/// about a microsecond, a writer's copy of a small message.
const SETTLE_SPINS: u32 = 64;

impl<K: Kind> Consumer<K> {
    /// Whether this consumer's non-blocking pops wait out a message being written at the head
    /// while a later one is committed (MPMC M17; the default, which makes "empty" a
    /// linearizable answer), or report `Empty` at once. A caller that waits anyway when told
    /// `Empty` — an asynchronous receiver parked on its doorbell, which the writer's commit
    /// rings — turns it off, so that a pop never spins or yields for a writer that may be a
    /// task of its own thread.
    pub fn set_settle(&mut self, yes: bool) {
        self.att.settles = yes;
    }

    /// [`next_settled`](Self::next_settled) after a first look found a message in flight.
    #[cold]
    #[inline(never)]
    pub(crate) fn next_settling(&mut self) -> Result<Option<(u64, usize)>, PopError> {
        let mut since = None;
        while self.settle(&mut since)? {
            match next_of(&mut self.core, self.att.trailer)? {
                None if self.core.in_flight() => {}
                other => return Ok(other),
            }
        }
        Ok(None)
    }

    /// A non-blocking read found the position at the head not committed while a later one is
    /// (MPMC M17): that later message's send may have returned, so "empty" is not an answer
    /// yet. Waits a moment (spinning, then yielding) and says whether to retry: `false` once
    /// the consumers' head position has stayed where it was for a whole probe interval
    /// (`since`: when it was first seen there, and where), a writer alive but stopped
    /// mid-send: then the read reports empty after all. A head that moved restarts the
    /// interval: the ring makes progress, and a preempted reader that comes back to a ring a
    /// lap further on looks again rather than give up. Probes and audits as an empty read does
    /// when the interval has passed — which repairs a dead writer's claim, and reports a ring
    /// that contradicts itself as `Corrupt`.
    #[cold]
    #[inline(never)]
    pub(crate) fn settle(&mut self, since: &mut Option<(Instant, u64)>) -> Result<bool, PopError> {
        if !self.att.settles {
            return Ok(false);
        }
        let head = self.core.position();
        let start = match *since {
            Some((start, at)) if at == head => start,
            _ => since.insert((Instant::now(), head)).0,
        };
        if start.elapsed() > self.att.clock.interval() {
            return Ok(false);
        }
        if let e @ PopError::Corrupt(_) = self.on_empty(Pace::Waited) {
            return Err(e);
        }
        for _ in 0..SETTLE_SPINS {
            crate::sync::spin_hint();
        }
        std::thread::yield_now();
        Ok(true)
    }
}
