//! The memory a ring runs over: a region addressed by byte offset, whose 8-byte words the
//! protocol loads and stores atomically (positions, record headers) and whose other bytes carry
//! payload handed to one side at a time.
//!
//! [`RawMem`] is a raw view of a mapped segment or any 8-byte aligned allocation, so the same
//! ring code runs over shared memory, heap memory in tests, and fuzz inputs. Under loom,
//! [`LoomMem`] keeps one loom `AtomicU64` per word and a loom-tracked cell per payload byte:
//! loom reports any payload access that the protocol's orderings leave unordered.

use crate::sync::Ordering;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;

/// Memory a ring core runs over.
///
/// # Safety
///
/// Implementations must make `load`/`store` atomic 8-byte accesses and `read`/`write` byte
/// copies, all in bounds whenever the callers' contracts hold.
pub(crate) unsafe trait Memory {
    /// Atomically loads the 8-byte word at `off`.
    ///
    /// # Safety
    ///
    /// - `off % 8 == 0` and `off + 8 <= len`.
    unsafe fn load(&self, off: usize, order: Ordering) -> u64;
    /// Atomically stores the 8-byte word at `off`.
    ///
    /// # Safety
    ///
    /// - `off % 8 == 0` and `off + 8 <= len`.
    unsafe fn store(&self, off: usize, val: u64, order: Ordering);
    /// Atomic compare-and-exchange of the word at `off`.
    ///
    /// # Safety
    ///
    /// - `off % 8 == 0` and `off + 8 <= len`.
    unsafe fn compare_exchange(
        &self,
        off: usize,
        current: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u64, u64>;
    /// Atomic maximum of the word at `off` and `val`; returns the previous value.
    ///
    /// # Safety
    ///
    /// - `off % 8 == 0` and `off + 8 <= len`.
    unsafe fn fetch_max(&self, off: usize, val: u64, order: Ordering) -> u64;
    /// Atomic add to the word at `off`; returns the previous value.
    ///
    /// # Safety
    ///
    /// - `off % 8 == 0` and `off + 8 <= len`.
    unsafe fn fetch_add(&self, off: usize, val: u64, order: Ordering) -> u64;
    /// Wakes every process sleeping on the futex word at `off` (no-op in models).
    ///
    /// # Safety
    ///
    /// - `off % 8 == 0` and `off + 8 <= len`.
    unsafe fn wake(&self, off: usize);
    /// Copies `src` to `off`.
    ///
    /// # Safety
    ///
    /// - `off + src.len() <= len`, and the protocol gives these bytes to the caller.
    unsafe fn write(&self, off: usize, src: &[u8]);
    /// Copies the bytes at `off` into `dst`.
    ///
    /// # Safety
    ///
    /// - `off + dst.len() <= len`, and the protocol gives these bytes to the caller.
    unsafe fn read(&self, off: usize, dst: &mut [u8]);
}

/// Copies `len` bytes in pieces of at most 2 KiB. glibc's `memcpy` for large sizes (`rep movsb`
/// on CPUs with ERMS/FSRM) runs an order of magnitude slower on some CPUs (seen on an AMD EPYC
/// VM: 4088 bytes in ~1.7 µs instead of ~0.18 µs) when source and destination sit at certain
/// relative offsets within their pages, which a ring cannot choose; 2 KiB pieces stay on the
/// fast path (measured by `push_pop_4088_by_user_page_offset` in `shmbus-bench`).
///
/// # Safety
///
/// As for [`std::ptr::copy_nonoverlapping`].
#[inline]
unsafe fn copy_chunked(src: *const u8, dst: *mut u8, len: usize) {
    const CHUNK: usize = 2048;
    if len <= CHUNK {
        // SAFETY: the caller's contract.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, len) };
        return;
    }
    let mut done = 0;
    while done < len {
        let n = CHUNK.min(len - done);
        // SAFETY: `done + n <= len`, within the caller's ranges.
        unsafe { std::ptr::copy_nonoverlapping(src.add(done), dst.add(done), n) };
        done += n;
    }
}

/// A raw view of `len` bytes at an 8-byte aligned address.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawMem {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: `RawMem` is a view of memory accessed only through atomics or by the side the ring
// protocol hands bytes to; every handle holding one also holds an `Arc` of the segment, so
// the mapping outlives it.
unsafe impl Send for RawMem {}

impl RawMem {
    /// # Safety
    ///
    /// - `base` is 8-byte aligned and valid for reads and writes of `len` bytes for as long as
    ///   the returned `RawMem` (or a copy) is used.
    pub(crate) unsafe fn from_raw(base: NonNull<u8>, len: usize) -> Self {
        debug_assert_eq!(base.as_ptr() as usize % 8, 0);
        RawMem { base, len }
    }

    #[inline]
    unsafe fn word(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off % 8 == 0 && off + 8 <= self.len);
        // SAFETY: in bounds and 8-aligned by the caller's contract, so valid for an `AtomicU64`;
        // every concurrent access to a word the protocol uses as a word is atomic.
        unsafe { AtomicU64::from_ptr(self.base.as_ptr().add(off).cast::<u64>()) }
    }

    /// A raw pointer to byte offset `off`, for zero-copy slices handed out under the protocol.
    ///
    /// # Safety
    ///
    /// - `off <= len`.
    #[inline]
    pub(crate) unsafe fn ptr(&self, off: usize) -> *mut u8 {
        debug_assert!(off <= self.len);
        // SAFETY: in bounds (one past the end at most) by the caller's contract.
        unsafe { self.base.as_ptr().add(off) }
    }
}

// SAFETY: `load`/`store` go through `AtomicU64` on aligned in-bounds words; `read`/`write` are
// in-bounds copies, all under the callers' contracts.
unsafe impl Memory for RawMem {
    #[inline]
    unsafe fn load(&self, off: usize, order: Ordering) -> u64 {
        // SAFETY: forwarded contract.
        unsafe { self.word(off) }.load(order)
    }

    #[inline]
    unsafe fn store(&self, off: usize, val: u64, order: Ordering) {
        // SAFETY: forwarded contract.
        unsafe { self.word(off) }.store(val, order)
    }

    #[inline]
    unsafe fn compare_exchange(
        &self,
        off: usize,
        current: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u64, u64> {
        // SAFETY: forwarded contract.
        unsafe { self.word(off) }.compare_exchange(current, new, success, failure)
    }

    #[inline]
    unsafe fn fetch_max(&self, off: usize, val: u64, order: Ordering) -> u64 {
        // SAFETY: forwarded contract.
        unsafe { self.word(off) }.fetch_max(val, order)
    }

    #[inline]
    unsafe fn fetch_add(&self, off: usize, val: u64, order: Ordering) -> u64 {
        // SAFETY: forwarded contract.
        unsafe { self.word(off) }.fetch_add(val, order)
    }

    #[inline]
    unsafe fn wake(&self, off: usize) {
        // SAFETY: forwarded contract.
        crate::wait::futex_wake(unsafe { self.word(off) })
    }

    #[inline]
    unsafe fn write(&self, off: usize, src: &[u8]) {
        debug_assert!(off + src.len() <= self.len);
        // SAFETY: in bounds by contract; `src` is process-local memory, so cannot overlap.
        unsafe { copy_chunked(src.as_ptr(), self.base.as_ptr().add(off), src.len()) }
    }

    #[inline]
    unsafe fn read(&self, off: usize, dst: &mut [u8]) {
        debug_assert!(off + dst.len() <= self.len);
        // SAFETY: in bounds by contract; `dst` is process-local memory, so cannot overlap.
        unsafe { copy_chunked(self.base.as_ptr().add(off), dst.as_mut_ptr(), dst.len()) }
    }
}

#[cfg(loom)]
pub use loom_mem::LoomMem;

#[cfg(loom)]
mod loom_mem {
    use super::Memory;
    use crate::sync::Ordering;
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::AtomicU64;
    use std::sync::Arc;

    struct Cells {
        words: Box<[AtomicU64]>,
        bytes: Box<[UnsafeCell<u8>]>,
    }

    /// A loom model of a region: atomic words and race-checked payload bytes, kept apart.
    #[derive(Clone)]
    pub struct LoomMem {
        cells: Arc<Cells>,
    }

    impl LoomMem {
        /// A zeroed model region of `len` bytes (a multiple of 8).
        pub fn zeroed(len: usize) -> Self {
            assert_eq!(len % 8, 0);
            let words = (0..len / 8).map(|_| AtomicU64::new(0)).collect();
            let bytes = (0..len).map(|_| UnsafeCell::new(0)).collect();
            LoomMem {
                cells: Arc::new(Cells { words, bytes }),
            }
        }
    }

    // SAFETY: words are loom atomics; bytes are loom cells whose accesses loom race-checks;
    // indexing panics (in the model) rather than going out of bounds.
    unsafe impl Memory for LoomMem {
        unsafe fn load(&self, off: usize, order: Ordering) -> u64 {
            self.cells.words[off / 8].load(order)
        }

        unsafe fn store(&self, off: usize, val: u64, order: Ordering) {
            self.cells.words[off / 8].store(val, order)
        }

        unsafe fn compare_exchange(
            &self,
            off: usize,
            current: u64,
            new: u64,
            success: Ordering,
            failure: Ordering,
        ) -> Result<u64, u64> {
            self.cells.words[off / 8].compare_exchange(current, new, success, failure)
        }

        unsafe fn fetch_max(&self, off: usize, val: u64, order: Ordering) -> u64 {
            self.cells.words[off / 8].fetch_max(val, order)
        }

        unsafe fn fetch_add(&self, off: usize, val: u64, order: Ordering) -> u64 {
            self.cells.words[off / 8].fetch_add(val, order)
        }

        unsafe fn wake(&self, _off: usize) {}

        unsafe fn write(&self, off: usize, src: &[u8]) {
            for (i, b) in src.iter().enumerate() {
                // SAFETY: loom checks that no access to this cell races with this one.
                self.cells.bytes[off + i].with_mut(|p| unsafe { *p = *b });
            }
        }

        unsafe fn read(&self, off: usize, dst: &mut [u8]) {
            for (i, d) in dst.iter_mut().enumerate() {
                // SAFETY: loom checks that no access to this cell races with this one.
                *d = self.cells.bytes[off + i].with(|p| unsafe { *p });
            }
        }
    }
}
