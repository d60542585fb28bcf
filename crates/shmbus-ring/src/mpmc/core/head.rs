//! The consumers' head hint, published lazily (PROTOCOL §5.3 M10b, M20a; D73): a consumer
//! keeps its own cursor (`next_read`, one past its last claim) and raises the shared hint only
//! when someone could need it — when it finds nothing to take (the ring drained: observers and
//! idle consumers then see it exact), when the hint lags its claim by `head_lag` positions or
//! more (streaming: the lag stays bounded), when its walk passed other consumers' claims
//! (they would walk over its lag), and always on a ring with a message bound (whose producers
//! read the hint to count). At one producer and one consumer this takes the raise, a
//! locked read-modify-write, off the path between a claim and the caller's next send: it runs
//! while the consumer waits for the next message.

use super::{Core, Geometry};
use crate::conv::signed_diff;
use crate::error::Corruption;
use crate::mpmc::{split, MAX_POSITION};
use crate::sync::{Memory, Ordering};

/// The most a consumer lets the head hint lag its own claims while it keeps finding messages,
/// on a large ring (a quarter of the slots on a small one; 1, that is no lag, below 8 slots).
pub(crate) const HEAD_LAG: u64 = 16;

/// How far the head hint may lag a consumer's claim before the consumer raises it (`Core`'s
/// `head_lag`): 1 (every claim raises, as before D73) on a ring with a message bound, whose
/// producers count from the hint (§5.6); else a quarter of the slots, at most [`HEAD_LAG`].
pub(crate) fn head_lag(g: &Geometry) -> u64 {
    if g.limit != 0 {
        1
    } else if cfg!(loom) {
        // The models' rings are small: let the hint lag a whole ring there, so that they
        // check the deferred raise (M10b) rather than the eager one.
        g.slots
    } else {
        (g.slots / 4).clamp(1, HEAD_LAG)
    }
}

impl<M: Memory> Core<M> {
    /// Where a consumer's walk starts: the head hint (M7) or, if further on, this consumer's
    /// own cursor — every position below it was claimed for reading by this consumer or passed
    /// by its walks (F3 holds of it as of the hint). Returns `(start, hint)`.
    ///
    /// The cursor is trusted only within `head_lag` of the hint: an honest hint never falls
    /// that far behind it (`after_claim` raises it first, and a walk that finds nothing raises
    /// it to the cursor or beyond), and the hint never goes back. A cursor further on was set
    /// by a forged hint or commit that a hostile peer then took back; walking from the hint is
    /// then always correct (the positions between are consumed: the walk passes them), where
    /// trusting the cursor would skip every message below it and publish it as the hint
    /// (M10b), making the hint lead the tail for every consumer.
    #[inline]
    pub(super) fn read_start(&self) -> Result<(u64, u64), Corruption> {
        let hint = self.hint(self.g.words.head)?;
        if self.next_read == u64::MAX
            || self.next_read <= hint
            || self.next_read - hint >= self.head_lag
        {
            return Ok((hint, hint));
        }
        if self.next_read >= MAX_POSITION {
            return Err(Corruption {
                what: "consumer cursor beyond 2^55",
                position: self.next_read,
                value: hint,
            });
        }
        Ok((self.next_read, hint))
    }

    /// After a claim of `pos` by a walk that started at `start` and read the head hint as
    /// `hint` (or more): raises the hint past `pos` (M10, through `raise`) if it lags by
    /// `head_lag` or more, or if the walk passed positions (`pos > start`: other consumers
    /// are taking messages, and would walk over this one's lag); else leaves that to the next
    /// time this consumer finds nothing (`publish_head`).
    #[inline]
    pub(super) fn after_claim(&mut self, pos: u64, hint: u64, start: u64) {
        if pos != start || pos + 1 - hint.min(pos + 1) >= self.head_lag {
            self.raise(self.g.words.head, pos + 1);
        }
        self.next_read = pos + 1;
    }

    /// A consumer's walk stopped at `pos` without a claim (nothing committed there, or the
    /// walk's bound): every position below `pos` was claimed for reading or passed (F3), so
    /// the head hint may say so. **M10b**: the deferred raise, `raise(head hint, pos)` — the
    /// M10a load, then a Release `fetch_max` (M10) only if the hint is below `pos`. Skipped
    /// when the walk read the hint at `pos` already (an empty ring polled again).
    #[inline]
    pub(super) fn publish_head(&self, pos: u64, hint: u64) {
        if pos > hint {
            self.raise(self.g.words.head, pos);
        }
    }
}

/// The head position for observers (`len`, **M20a**): from the head hint `head`, passes the
/// positions whose slot says they were claimed for reading or consumed (a word `(s, k)` with
/// `s = p + 1`, `k ≠ 0`, or `s > p + 1`), at most `slots` of them and never past `tail`: a
/// consumer's raise may lag its claims (M10b). A snapshot, like the hints it starts from;
/// slot words are loaded Relaxed (only their values are used, never a payload).
///
/// # Safety
///
/// - `mem` holds `g.slots` slots of `g.stride` bytes at `g.words.data`.
pub(crate) unsafe fn observed_head<M: Memory>(mem: &M, g: &Geometry, head: u64, tail: u64) -> u64 {
    let mut at = head;
    for _ in 0..g.slots {
        if at >= tail || at >= MAX_POSITION {
            break;
        }
        // M20a: Relaxed; a value for a snapshot.
        // SAFETY: an in-bounds aligned slot word (caller's contract).
        let (seq, tag) = split(unsafe { mem.load(g.slot(at), Ordering::Relaxed) });
        let dif = signed_diff(seq, at + 1);
        if dif > 0 || (dif == 0 && tag != 0) {
            at += 1;
        } else {
            break;
        }
    }
    at
}
