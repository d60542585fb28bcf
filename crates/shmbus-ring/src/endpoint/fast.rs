//! The endpoint's side of the common push and pop (D96): the checks `once` makes before a
//! core's step, made inline, around the cores' fast steps (`try_push_fast`, `try_pop_fast`).
//! Whatever a fast step does not take goes the general way, unchanged.

use super::{Consumer, Producer, Role, WriteCore};
use crate::error::PopError;
use crate::ring::Kind;
use crate::wait::Pace;

/// What a core's fast pop found (`ReadCore::try_pop_fast`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FastPop {
    /// It popped a message of this many bytes.
    Popped(usize),
    /// Nothing is committed at the consumer's position.
    Empty,
    /// Anything else: nothing was done, and the general pop decides.
    Other,
}

impl<K: Kind> Producer<K> {
    /// The common push: on a plain ring (no checksum trailer) with no reservation set aside
    /// and a consumer attached, the core's fast step. Whether it pushed; `false` changes
    /// nothing, and the caller runs the general push (whose own checks then report what
    /// stopped this one).
    #[inline(always)]
    pub(super) fn push_fast(&mut self, payload: &[u8]) -> bool {
        self.plain() && self.core.try_push_fast(payload)
    }

    /// The common reservation, as [`push_fast`](Self::push_fast): its position, or `None`
    /// (nothing changed).
    #[inline(always)]
    pub(super) fn reserve_fast(&mut self, len: usize) -> Option<u64> {
        if self.plain() {
            self.core.try_reserve_fast(len)
        } else {
            None
        }
    }

    /// What `once` checks before a core's step, when it finds nothing to do: a core with fast
    /// steps, no reservation set aside, a plain ring (no checksum trailer), a consumer
    /// attached.
    #[inline(always)]
    fn plain(&self) -> bool {
        <K::WriteCore as WriteCore>::FAST
            && crate::crashpoint::fast_allowed()
            && self.aside.is_none()
            && self.att.trailer == 0
            && !(K::PRODUCER_NEEDS_CONSUMERS && self.att.gone(Role::Consumer))
    }
}

impl<K: Kind> Consumer<K> {
    /// What a non-blocking pop that found nothing reports, as [`on_empty`](super::on_empty)
    /// decides it, with its common case inline: a producer attached and no probe due by the
    /// poll count (the clock is read every 16th poll), so `Empty` without a call. Otherwise
    /// `on_empty` itself: the probe, the audit, the drained-and-disconnected test.
    #[inline(always)]
    pub(super) fn empty_spinning(&mut self) -> PopError {
        if !self.att.gone(Role::Producer) && self.att.clock.quiet_poll() {
            PopError::Empty
        } else {
            self.on_empty(Pace::Spinning)
        }
    }
}
