//! Raw shared memory as a slice of atomic words, for a segment that holds no ring: what a
//! caller's own protocol over a plain segment reads and writes (a flag table, a minimal ring
//! to compare against) without `unsafe` of its own.

use super::Segment;
use std::sync::atomic::{AtomicU64, Ordering};

impl Segment {
    /// The `n` 64-bit atomics from byte offset `off` of a writable segment that holds no ring,
    /// bounds-checked once; `None` as for [`Segment::atomic_u64`] (misaligned, out of bounds,
    /// read-only, or a ring's). Relaxed accesses to them are plain loads and stores, so a
    /// loop over the slice copies a message word by word at close to `memcpy`'s speed for
    /// small and mid-size messages.
    ///
    /// ```
    /// use std::sync::atomic::Ordering;
    /// let seg = shmbus_ring::Segment::heap(4096)?;
    /// let words = seg.atomic_words(64, 4).expect("aligned and in bounds");
    /// for (w, v) in words.iter().zip([1u64, 2, 3, 4]) {
    ///     w.store(v, Ordering::Relaxed);
    /// }
    /// assert_eq!(seg.atomic_u64(88).unwrap().load(Ordering::Relaxed), 4);
    /// assert!(seg.atomic_words(4096 - 8, 2).is_none());
    /// # Ok::<(), shmbus_ring::Error>(())
    /// ```
    pub fn atomic_words(&self, off: usize, n: usize) -> Option<&[AtomicU64]> {
        if !self.writable || self.in_ring.load(Ordering::Relaxed) || off % 8 != 0 {
            return None;
        }
        if off.checked_add(n.checked_mul(8)?)? > self.len() {
            return None;
        }
        // `off` is 8-aligned, the mapping page-aligned.
        #[allow(clippy::cast_ptr_alignment)]
        // SAFETY: `off + 8n <= len`: in bounds of the mapping, which lives as long as `&self`.
        let first = unsafe { self.as_ptr().add(off) }.cast::<AtomicU64>();
        // SAFETY: `first` is 8-aligned and `n` words from it are in bounds (above);
        // `AtomicU64` has the size and alignment of `u64`, and every access through the slice
        // is atomic. Handed out only for writable segments that hold no ring, where the caller
        // owns the meaning of the words (as `atomic_u64`).
        Some(unsafe { std::slice::from_raw_parts(first, n) })
    }
}
