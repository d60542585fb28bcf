//! Attaching a consumer whose core the caller builds (a broadcast subscriber's options).

use super::{attach, Consumer, Role};
use crate::error::{Corruption, Result};
use crate::liveness::Registration;
use crate::ring::{Kind, Ring};

impl<K: Kind> Consumer<K> {
    /// Registers a consumer on `ring` with the core `core` builds for its registration.
    pub(crate) fn attach_with(
        ring: Ring<K>,
        core: impl FnOnce(&Ring<K>, &Registration) -> std::result::Result<K::ReadCore, Corruption>,
    ) -> Result<Self> {
        let (core, att) = attach(ring, Role::Consumer, core)?;
        Ok(Consumer {
            core,
            att,
            pending: None,
        })
    }
}
