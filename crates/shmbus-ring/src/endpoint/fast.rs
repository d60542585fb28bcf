//! The endpoint's side of the common push and pop (D96): the checks `once` makes before a
//! core's step, made inline, around the cores' fast steps (`try_push_fast`, `try_pop_fast`).
//! Whatever a fast step does not take goes the general way, unchanged.

use super::{Consumer, Producer, ReadCore, Role, WriteCore};
use crate::checksum::{push_checked, reserve_checked};
use crate::error::PopError;
use crate::error::PushError;
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

    /// [`try_push_at`](Self::try_push_at) out of line.
    #[inline(never)]
    pub(super) fn try_push_general(&mut self, payload: &[u8]) -> Result<(), PushError> {
        self.try_push_at(payload)
    }

    /// The general push.
    #[inline(always)]
    pub(super) fn try_push_at(&mut self, payload: &[u8]) -> Result<(), PushError> {
        let checked = self.att.trailer != 0;
        self.once(|core| {
            if checked {
                push_checked(core, payload)
            } else {
                core.try_push(payload)
            }
        })
    }

    /// [`reserve_at`](Self::reserve_at) out of line.
    #[inline(never)]
    pub(super) fn reserve_general(&mut self, len: usize) -> Result<u64, PushError> {
        self.reserve_at(len)
    }

    /// The general reservation: the position of the message reserved.
    #[inline(always)]
    pub(super) fn reserve_at(&mut self, len: usize) -> Result<u64, PushError> {
        let checked = self.att.trailer != 0;
        self.once(|core| {
            if checked {
                reserve_checked(core, len)
            } else {
                core.reserve(len)
            }
        })
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

    /// The general pop of a plain ring, out of line: after a fast step that did not take the
    /// message.
    #[inline(never)]
    pub(super) fn try_pop_general(&mut self, buf: &mut [u8]) -> Result<usize, PopError> {
        self.once(|core| core.try_pop(buf))
    }
}
