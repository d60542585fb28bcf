//! The slow paths of a non-blocking call: what a push that found the ring full, or a pop that
//! found it empty, reports. Out of line, so that they do not grow the fast path of every call.

use super::{Attachment, Kind, Role, WriteCore};
use crate::endpoint::ReadCore;
use crate::error::Corruption;
use crate::error::{PopError, PushError};
use crate::wait::Pace;

/// What an audit of a waiting endpoint's ring found (PROTOCOL §6 "Audits", §4.4, §5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audit {
    /// Nothing contradicts itself (or the ring moved on: the caller retries).
    Fine,
    /// A contradiction that a stale read of an honest state could explain for a moment (the
    /// relaxed position hints, or records of a dead predecessor): the ring is corrupt if the
    /// same observation (positions and word) is made again at the next probe.
    Suspect(Corruption),
    /// A contradiction no honest state explains.
    Corrupt(Corruption),
    /// The ring waits on a claim (MPMC) that endpoint `tag` holds as a `role`: fine while an
    /// endpoint of that role is registered under that tag (it, or the reaper of its dead
    /// process, releases the claim); a suspect otherwise, since no one ever will.
    Claimed {
        /// The claimer's tag (1..=55 for a real endpoint).
        tag: u64,
        /// The role that makes such a claim.
        role: Role,
        /// What to report if no such endpoint is registered.
        found: Corruption,
    },
}

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
