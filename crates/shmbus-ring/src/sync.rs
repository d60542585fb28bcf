//! The std/loom switch.
//!
//! The ring cores are generic over [`crate::mem::Memory`]. In a normal build that is a raw view
//! of the segment with `std` atomics overlaid on its bytes; under `RUSTFLAGS="--cfg loom"` the
//! model tests use [`crate::mem::LoomMem`], whose words are loom atomics in ordinary heap
//! structures (loom's atomics cannot be overlaid on mapped bytes). This module holds the few
//! primitives whose implementation differs between the two builds.

pub(crate) use std::sync::atomic::Ordering;

/// A hint for a spin-wait loop; under loom, a yield so the model can schedule the other side.
#[inline]
#[cfg_attr(not(loom), allow(dead_code))]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// A sequentially consistent fence (loom's under loom).
#[inline]
pub(crate) fn fence_seqcst() {
    #[cfg(loom)]
    loom::sync::atomic::fence(Ordering::SeqCst);
    #[cfg(not(loom))]
    std::sync::atomic::fence(Ordering::SeqCst);
}
