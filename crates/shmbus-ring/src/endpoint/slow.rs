//! The slow paths of a non-blocking call: what a push that found the ring full, or a pop that
//! found it empty, reports. Out of line, so that they do not grow the fast path of every call.

use super::{Attachment, Kind, Role, WriteCore};
use crate::endpoint::ReadCore;
use crate::error::{PopError, PushError};
use crate::wait::Pace;

/// What a push that found the ring full reports: `Corrupt` if the audit after a probe finds
/// the ring contradicting itself, `Disconnected` if every consumer is gone (probing for dead
/// endpoints, and repairing what they held, when the interval has passed), else `Full`. Out of
/// line, as [`on_empty`].
#[cold]
#[inline(never)]
pub(crate) fn on_full<K: Kind>(
    core: &mut K::WriteCore,
    att: &mut Attachment<K>,
    pace: Pace,
) -> PushError {
    if let Some(c) = att.probe_and_audit(pace, || core.audit()) {
        return PushError::Corrupt(c);
    }
    if K::PRODUCER_NEEDS_CONSUMERS && att.gone(Role::Consumer) {
        PushError::Disconnected
    } else {
        PushError::Full
    }
}

/// [`Consumer::on_empty`] over the split borrows the wait loop holds. Out of line: the empty
/// path must not grow the fast path of every pop.
#[cold]
#[inline(never)]
pub(crate) fn on_empty<K: Kind>(
    core: &mut K::ReadCore,
    att: &mut Attachment<K>,
    pace: Pace,
) -> PopError {
    // Before the disconnection test: a wedged ring whose producers are gone would otherwise
    // read as drained, and its messages be lost silently.
    if let Some(c) = att.probe_and_audit(pace, || core.audit()) {
        return PopError::Corrupt(c);
    }
    // `gone` is an Acquire load that pairs with the last producer's Release detach (or its
    // reaper's): everything it committed is visible to `has_committed`.
    if att.gone(Role::Producer) && !core.has_committed() {
        PopError::Disconnected
    } else {
        PopError::Empty
    }
}
