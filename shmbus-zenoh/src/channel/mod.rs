//! Channels (SPSC and MPMC) across hosts, lossless by credit: the exporting bridge is a
//! receiver of the local channel and takes a message out of it only while the importing
//! bridge has granted room; the importing bridge is a sender of the channel on its host
//! (DECISIONS D68, D69).

pub(crate) mod export;
pub(crate) mod import;
pub mod keys;

use crate::Shared;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// The flag set while this bridge sends into the channel `name` (imports it): its export
/// scanner then leaves the channel alone (DECISIONS D62).
pub(crate) fn importing_flag(shared: &Shared, name: &str) -> Arc<AtomicBool> {
    // Channel and topic names live apart: a NUL can be in neither.
    shared.registry.importing(&format!("channel\0{name}"))
}

/// The flag set while this bridge holds a sender of the channel `name` (it imports it for
/// real, not only tries to): a running export of the channel then ends, or what this bridge
/// writes into the channel would go back (DECISIONS D62).
pub(crate) fn sending_flag(shared: &Shared, name: &str) -> Arc<AtomicBool> {
    shared
        .registry
        .importing(&format!("channel-sending\0{name}"))
}
