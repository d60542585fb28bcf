//! The std/loom switch, and the one path to shared memory.
//!
//! Every word the protocol shares between processes — ring positions and record headers, MPMC
//! slot words, the endpoint table and roster, the SPSC owner words, the wake sequences and
//! waiter counts, the handshake word — is reached through [`Memory`]. In a normal build that
//! is [`RawMem`], a raw view of a mapped segment with `std` atomics overlaid on its bytes;
//! under `RUSTFLAGS="--cfg loom"` the model tests use [`LoomMem`], whose words are loom
//! atomics in ordinary heap structures (loom's atomics cannot be overlaid on mapped bytes) and
//! whose futex is a loom condition variable, so that loom checks every ordering of the
//! protocol and reports a lost wake-up as a deadlock.
//!
//! This is the only file that names `std::sync::atomic` or `loom`: everything else imports
//! [`Ordering`], [`fence`], [`spin_hint`] and the atomic types from here (as
//! `tokio/src/loom/mod.rs` does for tokio).

pub(crate) use std::sync::atomic::Ordering;
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};

use std::ptr::NonNull;
use std::time::Duration;

/// A hint for a spin-wait loop; under loom, a yield so the model can schedule the other side.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// A memory fence (loom's under loom).
#[inline]
pub(crate) fn fence(order: Ordering) {
    #[cfg(loom)]
    loom::sync::atomic::fence(order);
    #[cfg(not(loom))]
    std::sync::atomic::fence(order);
}

/// A compiler-only fence: the compiler keeps program order across it, the CPU may not
/// (membarrier mode's N1m). Under loom, nothing: loom runs each thread in program order and
/// models only the hardware's reorderings.
#[inline]
pub(crate) fn compiler_fence() {
    #[cfg(not(loom))]
    std::sync::atomic::compiler_fence(Ordering::SeqCst);
}

/// Memory a ring runs over: a region addressed by byte offset, whose aligned 8-byte (and, for
/// a few header and table fields, 4-byte) words the protocol accesses atomically, and whose
/// other bytes carry payload handed to one side at a time.
///
/// # Safety
///
/// Implementations must make the word operations atomic accesses of the addressed word and
/// `read`/`write` byte copies, all in bounds whenever the callers' contracts hold.
pub unsafe trait Memory {
    /// Atomically loads the 8-byte word at `off`.
    ///
    /// # Safety
    ///
    /// - `off % 8 == 0` and `off + 8 <= len` (the same for every `u64` word operation below).
    unsafe fn load(&self, off: usize, order: Ordering) -> u64;

    /// A Relaxed load of the 8-byte word at `off` for a caller that polls a word others
    /// change, and must not go on reading an old value: on hardware a plain Relaxed load
    /// (which sees a newer store within a bounded time); in the loom models an RMW that
    /// changes nothing, because loom lets a load return an older value indefinitely, while
    /// an RMW reads the latest one.
    ///
    /// # Safety
    ///
    /// - As for [`Memory::load`].
    unsafe fn load_latest(&self, off: usize) -> u64;
    /// Atomically stores the 8-byte word at `off`.
    ///
    /// # Safety
    ///
    /// - As for [`Memory::load`].
    unsafe fn store(&self, off: usize, val: u64, order: Ordering);
    /// Atomic compare-and-exchange of the word at `off`.
    ///
    /// # Safety
    ///
    /// - As for [`Memory::load`].
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
    /// - As for [`Memory::load`].
    unsafe fn fetch_max(&self, off: usize, val: u64, order: Ordering) -> u64;
    /// Atomic wrapping add to the word at `off`; returns the previous value.
    ///
    /// # Safety
    ///
    /// - As for [`Memory::load`].
    unsafe fn fetch_add(&self, off: usize, val: u64, order: Ordering) -> u64;
    /// Atomic wrapping subtract from the word at `off`; returns the previous value.
    ///
    /// # Safety
    ///
    /// - As for [`Memory::load`].
    unsafe fn fetch_sub(&self, off: usize, val: u64, order: Ordering) -> u64;
    /// Atomic bitwise or into the word at `off`; returns the previous value.
    ///
    /// # Safety
    ///
    /// - As for [`Memory::load`].
    unsafe fn fetch_or(&self, off: usize, val: u64, order: Ordering) -> u64;
    /// Atomic bitwise and into the word at `off`; returns the previous value.
    ///
    /// # Safety
    ///
    /// - As for [`Memory::load`].
    unsafe fn fetch_and(&self, off: usize, val: u64, order: Ordering) -> u64;
    /// Atomically loads the 4-byte word at `off`.
    ///
    /// # Safety
    ///
    /// - `off % 4 == 0` and `off + 4 <= len`, and the word is never accessed as part of an
    ///   8-byte word (the same for every `u32` operation below).
    unsafe fn load_u32(&self, off: usize, order: Ordering) -> u32;
    /// Atomically stores the 4-byte word at `off`.
    ///
    /// # Safety
    ///
    /// - As for [`Memory::load_u32`].
    unsafe fn store_u32(&self, off: usize, val: u32, order: Ordering);
    /// Atomic compare-and-exchange of the 4-byte word at `off`.
    ///
    /// # Safety
    ///
    /// - As for [`Memory::load_u32`].
    unsafe fn compare_exchange_u32(
        &self,
        off: usize,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32>;
    /// Sleeps while the low 32 bits of the 8-byte word at `off` equal those of `expected`, at
    /// most `timeout` (`None`: until woken). May return early (spuriously); callers re-check.
    ///
    /// # Safety
    ///
    /// - As for [`Memory::load`].
    unsafe fn wait(&self, off: usize, expected: u64, timeout: Option<Duration>);
    /// Wakes every process sleeping on the word at `off` ([`Memory::wait`]).
    ///
    /// # Safety
    ///
    /// - As for [`Memory::load`].
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
    /// Copies `src` to `off` where readers may copy the same bytes at the same time and then
    /// validate their copy (a broadcast ring's payloads, PROTOCOL §8.5). On mapped memory the
    /// same copy as [`Memory::write`]; the loom model makes it word-wise Relaxed atomic stores,
    /// so that its racing readers are defined and their validation is what is checked.
    ///
    /// # Safety
    ///
    /// - As for [`Memory::write`], with `off` 8-aligned.
    unsafe fn write_racy(&self, off: usize, src: &[u8]) {
        // SAFETY: the caller's contract.
        unsafe { self.write(off, src) }
    }
    /// Copies the bytes at `off` into `dst` while a writer may be writing them (see
    /// [`Memory::write_racy`]); the caller validates the copy afterwards.
    ///
    /// # Safety
    ///
    /// - `off + dst.len()` rounded up to 8 is at most `len`, and `off` is 8-aligned.
    unsafe fn read_racy(&self, off: usize, dst: &mut [u8]) {
        // SAFETY: the caller's contract.
        unsafe { self.read(off, dst) }
    }
    /// Rings the doorbell with id `id` (PROTOCOL §6.1 N3): one datagram to its socket, best
    /// effort. A model records it instead.
    fn ring_bell(&self, id: u64) {
        crate::bell::ring(id);
    }
}

/// A raw view of `len` bytes at an 8-byte aligned address.
#[derive(Debug, Clone, Copy)]
pub struct RawMem {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: `RawMem` is a view of memory accessed only through atomics or by the side the ring
// protocol hands bytes to; every handle holding one also holds an `Arc` of the segment, so
// the mapping outlives it.
unsafe impl Send for RawMem {}
// SAFETY: as for `Send`: `&RawMem` gives only atomic word access and raw copies under the
// protocol's hand-over rules.
unsafe impl Sync for RawMem {}

impl RawMem {
    /// # Safety
    ///
    /// - `base` is 8-byte aligned and valid for reads and writes (or, for a read-only mapping,
    ///   reads; callers then only load) of `len` bytes for as long as the returned `RawMem` (or
    ///   a copy) is used.
    pub(crate) unsafe fn from_raw(base: NonNull<u8>, len: usize) -> Self {
        debug_assert_eq!(base.as_ptr() as usize % 8, 0);
        RawMem { base, len }
    }

    /// The atomic view of the 8-byte word at `off`.
    ///
    /// # Safety
    ///
    /// - `off % 8 == 0` and `off + 8 <= len`.
    #[inline]
    unsafe fn word(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off % 8 == 0 && off + 8 <= self.len);
        #[allow(clippy::cast_ptr_alignment)] // 8-aligned by the contract
        // SAFETY: in bounds and 8-aligned by the caller's contract, so valid for an `AtomicU64`;
        // every concurrent access to a word the protocol uses as a word is atomic.
        unsafe {
            AtomicU64::from_ptr(self.base.as_ptr().add(off).cast::<u64>())
        }
    }

    /// The atomic view of the 4-byte word at `off`.
    ///
    /// # Safety
    ///
    /// - `off % 4 == 0` and `off + 4 <= len`.
    #[inline]
    unsafe fn word_u32(&self, off: usize) -> &AtomicU32 {
        debug_assert!(off % 4 == 0 && off + 4 <= self.len);
        #[allow(clippy::cast_ptr_alignment)] // 4-aligned by the contract
        // SAFETY: as in `word`, with 4-byte alignment.
        unsafe {
            AtomicU32::from_ptr(self.base.as_ptr().add(off).cast::<u32>())
        }
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

/// The address of the 32-bit futex word inside a 64-bit wake sequence: its low half.
fn futex_addr(word: &AtomicU64) -> *const u32 {
    let base = word.as_ptr().cast::<u32>();
    if cfg!(target_endian = "big") {
        base.wrapping_add(1)
    } else {
        base
    }
}

/// Shared memory needs the *non-private* futex operations (`FUTEX_WAIT` / `FUTEX_WAKE` without
/// `FUTEX_PRIVATE_FLAG`): the private ones key the wait queue on the process's own address
/// space and never wake another process. std, `parking_lot` and atomic-wait all use the private
/// ones, hence the raw syscall.
fn futex_wait(word: &AtomicU64, expected: u64, timeout: Option<Duration>) {
    // `c_long` is 32 bits on some targets: a fallible conversion there (the nanoseconds, below
    // 10^9, fit either way).
    #[allow(clippy::unnecessary_fallible_conversions)]
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::try_from(d.subsec_nanos()).unwrap_or(0),
    });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| {
        std::ptr::from_ref::<libc::timespec>(t)
    });
    // The futex compares the low 32 bits only.
    #[allow(clippy::cast_possible_truncation)]
    let expected = expected as u32;
    // SAFETY: the address is a valid, 4-aligned u32 inside a live mapping (the low half of an
    // aligned `AtomicU64`); FUTEX_WAIT only reads it. `ts_ptr` is null or points to a timespec
    // that outlives the call. EAGAIN (value changed), EINTR and ETIMEDOUT all just return: the
    // caller re-checks its condition.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            futex_addr(word),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// The most words one `futex_waitv` call takes (`FUTEX_WAITV_MAX`).
pub(crate) const FUTEX_WAITV_MAX: usize = 128;

/// Set once `futex_waitv` failed other than by a changed word, a signal or the timeout
/// (`ENOSYS` before Linux 5.16, `EPERM` under a seccomp filter).
static WAITV_MISSING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// How [`futex_wait_any`] slept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitAny {
    /// On every word at once (`futex_waitv`).
    All,
    /// The kernel has no `futex_waitv` (or there were more than [`FUTEX_WAITV_MAX`] words):
    /// nothing was done; the caller falls back.
    Unsupported,
}

/// Sleeps until any of `words` (each the low half of an 8-byte word of a mapping, with the
/// value it was seen to hold) changes or is woken, or `timeout` passes: `futex_waitv(2)`
/// through rustix, shared futexes (no `FUTEX2_PRIVATE`: other processes wake them). May
/// return early; callers re-check.
///
/// # Safety
///
/// - Each `(mem, off, _)`: `off % 8 == 0`, `off + 8 <= mem.len`, and `mem`'s mapping stays
///   valid for the call.
pub(crate) unsafe fn futex_wait_any(
    words: &[(&RawMem, usize, u64)],
    timeout: Option<Duration>,
) -> WaitAny {
    use rustix::thread::futex::{waitv, Wait, WaitFlags, WaitPtr, WaitvFlags};
    use rustix::time::{clock_gettime, ClockId, Timespec};
    use std::sync::atomic::Ordering::Relaxed;
    if words.is_empty() || words.len() > FUTEX_WAITV_MAX || WAITV_MISSING.load(Relaxed) {
        return WaitAny::Unsupported;
    }
    let waiters: Vec<Wait> = words
        .iter()
        .map(|&(mem, off, expected)| {
            let mut w = Wait::new();
            // The futex compares the low 32 bits only.
            w.val = expected & u64::from(u32::MAX);
            // SAFETY: the caller's contract is `word`'s.
            w.uaddr = WaitPtr::new(futex_addr(unsafe { mem.word(off) }).cast_mut().cast());
            w.flags = WaitFlags::SIZE_U32;
            w
        })
        .collect();
    // futex_waitv takes an absolute CLOCK_MONOTONIC deadline.
    let deadline = timeout.and_then(|d| {
        let now = clock_gettime(ClockId::Monotonic);
        let now = Duration::new(
            u64::try_from(now.tv_sec).ok()?,
            u32::try_from(now.tv_nsec).ok()?,
        );
        let at = now.checked_add(d)?;
        Some(Timespec {
            tv_sec: i64::try_from(at.as_secs()).ok()?,
            tv_nsec: at.subsec_nanos().into(),
        })
    });
    // Every address is a valid, 4-aligned u32 of a live mapping (the caller's contract),
    // which the kernel only reads. EAGAIN (a value changed), EINTR and ETIMEDOUT just return:
    // the caller re-checks.
    match waitv(
        &waiters,
        WaitvFlags::empty(),
        deadline.as_ref(),
        ClockId::Monotonic,
    ) {
        Ok(_)
        | Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR | rustix::io::Errno::TIMEDOUT) => {
            WaitAny::All
        }
        // ENOSYS (before 5.16), EPERM (a seccomp filter), or anything else: the call does not
        // wait here, and returning at once would make callers spin. Fall back for good.
        Err(_) => {
            WAITV_MISSING.store(true, Relaxed);
            WaitAny::Unsupported
        }
    }
}

/// Wakes every sleeper on `word`.
fn futex_wake(word: &AtomicU64) {
    // SAFETY: a valid, aligned u32 address in a live mapping; FUTEX_WAKE does not access it
    // beyond hashing the address.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            futex_addr(word),
            libc::FUTEX_WAKE,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

// SAFETY: the word operations go through `AtomicU64`/`AtomicU32` on aligned in-bounds words;
// `read`/`write` are in-bounds copies, all under the callers' contracts.
unsafe impl Memory for RawMem {
    #[inline]
    unsafe fn load_latest(&self, off: usize) -> u64 {
        // SAFETY: the contract of `Memory::load_latest` is `load`'s.
        unsafe { self.load(off, Ordering::Relaxed) }
    }

    #[inline]
    unsafe fn load(&self, off: usize, order: Ordering) -> u64 {
        // SAFETY: the contract of `Memory::load` is `word`'s.
        unsafe { self.word(off) }.load(order)
    }

    #[inline]
    unsafe fn store(&self, off: usize, val: u64, order: Ordering) {
        // SAFETY: the contract of `Memory::store` is `word`'s.
        unsafe { self.word(off) }.store(val, order);
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
        // SAFETY: the contract of `Memory::compare_exchange` is `word`'s.
        unsafe { self.word(off) }.compare_exchange(current, new, success, failure)
    }

    #[inline]
    unsafe fn fetch_max(&self, off: usize, val: u64, order: Ordering) -> u64 {
        // SAFETY: the contract of `Memory::fetch_max` is `word`'s.
        unsafe { self.word(off) }.fetch_max(val, order)
    }

    #[inline]
    unsafe fn fetch_add(&self, off: usize, val: u64, order: Ordering) -> u64 {
        // SAFETY: the contract of `Memory::fetch_add` is `word`'s.
        unsafe { self.word(off) }.fetch_add(val, order)
    }

    #[inline]
    unsafe fn fetch_sub(&self, off: usize, val: u64, order: Ordering) -> u64 {
        // SAFETY: the contract of `Memory::fetch_sub` is `word`'s.
        unsafe { self.word(off) }.fetch_sub(val, order)
    }

    #[inline]
    unsafe fn fetch_or(&self, off: usize, val: u64, order: Ordering) -> u64 {
        // SAFETY: the contract of `Memory::fetch_or` is `word`'s.
        unsafe { self.word(off) }.fetch_or(val, order)
    }

    #[inline]
    unsafe fn fetch_and(&self, off: usize, val: u64, order: Ordering) -> u64 {
        // SAFETY: the contract of `Memory::fetch_and` is `word`'s.
        unsafe { self.word(off) }.fetch_and(val, order)
    }

    #[inline]
    unsafe fn load_u32(&self, off: usize, order: Ordering) -> u32 {
        // SAFETY: the contract of `Memory::load_u32` is `word_u32`'s.
        unsafe { self.word_u32(off) }.load(order)
    }

    #[inline]
    unsafe fn store_u32(&self, off: usize, val: u32, order: Ordering) {
        // SAFETY: the contract of `Memory::store_u32` is `word_u32`'s.
        unsafe { self.word_u32(off) }.store(val, order);
    }

    #[inline]
    unsafe fn compare_exchange_u32(
        &self,
        off: usize,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32> {
        // SAFETY: the contract of `Memory::compare_exchange_u32` is `word_u32`'s.
        unsafe { self.word_u32(off) }.compare_exchange(current, new, success, failure)
    }

    unsafe fn wait(&self, off: usize, expected: u64, timeout: Option<Duration>) {
        // SAFETY: the contract of `Memory::wait` is `word`'s.
        futex_wait(unsafe { self.word(off) }, expected, timeout);
    }

    #[inline]
    unsafe fn wake(&self, off: usize) {
        // SAFETY: the contract of `Memory::wake` is `word`'s.
        futex_wake(unsafe { self.word(off) });
    }

    #[inline]
    unsafe fn write(&self, off: usize, src: &[u8]) {
        debug_assert!(off + src.len() <= self.len);
        // SAFETY: in bounds by contract; `src` is process-local memory, so cannot overlap.
        unsafe { crate::copy::copy_in(src.as_ptr(), self.base.as_ptr().add(off), src.len()) }
    }

    #[inline]
    unsafe fn read(&self, off: usize, dst: &mut [u8]) {
        debug_assert!(off + dst.len() <= self.len);
        // SAFETY: in bounds by contract; `dst` is process-local memory, so cannot overlap.
        unsafe { crate::copy::copy_out(self.base.as_ptr().add(off), dst.as_mut_ptr(), dst.len()) }
    }
}

#[cfg(loom)]
pub(crate) use loom_mem::LoomMem;

#[cfg(loom)]
mod loom_mem {
    use super::{Duration, Memory, Ordering};
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::{AtomicU32, AtomicU64};
    use loom::sync::{Arc, Condvar, Mutex};

    struct Cells {
        words: Box<[AtomicU64]>,
        halves: Box<[AtomicU32]>,
        bytes: Box<[UnsafeCell<u8>]>,
        /// The futex: one lock and condition variable for the whole region.
        futex: (Mutex<()>, Condvar),
        /// Doorbells: the ids rung and not yet taken (a datagram per entry), and a condition
        /// variable a model's asynchronous waiter blocks on, as on its bell's descriptor.
        rung: (Mutex<Vec<u64>>, Condvar),
    }

    /// A loom model of a region: atomic words and race-checked payload bytes, kept apart (a
    /// model uses each word either as a `u64`, or as two `u32`s, or as payload bytes). The
    /// futex is a condition variable: a sleeper that nobody wakes is a deadlock, which loom
    /// reports, so a lost wake-up fails the model.
    #[derive(Clone)]
    pub(crate) struct LoomMem {
        cells: Arc<Cells>,
    }

    impl LoomMem {
        /// Blocks until bell `id` has been rung, and takes that datagram (a model's poll of
        /// the bell's descriptor, then its drain). A bell that nobody rings blocks for ever:
        /// loom reports the deadlock.
        pub(crate) fn await_bell(&self, id: u64) {
            let (lock, cv) = &self.cells.rung;
            let mut rung = lock.lock().unwrap();
            loop {
                if let Some(at) = rung.iter().position(|&r| r == id) {
                    rung.swap_remove(at);
                    return;
                }
                rung = cv.wait(rung).unwrap();
            }
        }

        /// How many datagrams for bell `id` wait to be taken.
        pub(crate) fn pending_bells(&self, id: u64) -> usize {
            self.cells
                .rung
                .0
                .lock()
                .unwrap()
                .iter()
                .filter(|&&r| r == id)
                .count()
        }

        /// A zeroed model region of `len` bytes (a multiple of 8).
        pub(crate) fn zeroed(len: usize) -> Self {
            assert_eq!(len % 8, 0);
            let words = (0..len / 8).map(|_| AtomicU64::new(0)).collect();
            let halves = (0..len / 4).map(|_| AtomicU32::new(0)).collect();
            let bytes = (0..len).map(|_| UnsafeCell::new(0)).collect();
            LoomMem {
                cells: Arc::new(Cells {
                    words,
                    halves,
                    bytes,
                    futex: (Mutex::new(()), Condvar::new()),
                    rung: (Mutex::new(Vec::new()), Condvar::new()),
                }),
            }
        }
    }

    // SAFETY: words are loom atomics; bytes are loom cells whose accesses loom race-checks;
    // indexing panics (in the model) rather than going out of bounds.
    unsafe impl Memory for LoomMem {
        unsafe fn load_latest(&self, off: usize) -> u64 {
            self.cells.words[off / 8].fetch_or(0, Ordering::Relaxed)
        }

        unsafe fn load(&self, off: usize, order: Ordering) -> u64 {
            self.cells.words[off / 8].load(order)
        }

        unsafe fn store(&self, off: usize, val: u64, order: Ordering) {
            self.cells.words[off / 8].store(val, order);
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

        unsafe fn fetch_sub(&self, off: usize, val: u64, order: Ordering) -> u64 {
            self.cells.words[off / 8].fetch_sub(val, order)
        }

        unsafe fn fetch_or(&self, off: usize, val: u64, order: Ordering) -> u64 {
            self.cells.words[off / 8].fetch_or(val, order)
        }

        unsafe fn fetch_and(&self, off: usize, val: u64, order: Ordering) -> u64 {
            self.cells.words[off / 8].fetch_and(val, order)
        }

        unsafe fn load_u32(&self, off: usize, order: Ordering) -> u32 {
            self.cells.halves[off / 4].load(order)
        }

        unsafe fn store_u32(&self, off: usize, val: u32, order: Ordering) {
            self.cells.halves[off / 4].store(val, order);
        }

        unsafe fn compare_exchange_u32(
            &self,
            off: usize,
            current: u32,
            new: u32,
            success: Ordering,
            failure: Ordering,
        ) -> Result<u32, u32> {
            self.cells.halves[off / 4].compare_exchange(current, new, success, failure)
        }

        unsafe fn wait(&self, off: usize, expected: u64, _timeout: Option<Duration>) {
            // The kernel checks the word and queues the sleeper atomically with respect to
            // FUTEX_WAKE (both under the futex's hash-bucket lock): so does the model, under
            // its mutex. Timeouts are not modelled: a model sleeper waits to be woken.
            let (lock, cv) = &self.cells.futex;
            let guard = lock.lock().unwrap();
            if self.cells.words[off / 8].load(Ordering::Relaxed) as u32 == expected as u32 {
                drop(cv.wait(guard).unwrap());
            }
        }

        fn ring_bell(&self, id: u64) {
            let (lock, cv) = &self.cells.rung;
            lock.lock().unwrap().push(id);
            cv.notify_all();
        }

        unsafe fn wake(&self, _off: usize) {
            let (lock, cv) = &self.cells.futex;
            let _guard = lock.lock().unwrap();
            cv.notify_all();
        }

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

        unsafe fn write_racy(&self, off: usize, src: &[u8]) {
            for (i, chunk) in src.chunks(8).enumerate() {
                let mut word = [0u8; 8];
                word[..chunk.len()].copy_from_slice(chunk);
                self.cells.words[off / 8 + i].store(u64::from_le_bytes(word), Ordering::Relaxed);
            }
        }

        unsafe fn read_racy(&self, off: usize, dst: &mut [u8]) {
            for (i, chunk) in dst.chunks_mut(8).enumerate() {
                let word = self.cells.words[off / 8 + i].load(Ordering::Relaxed);
                chunk.copy_from_slice(&word.to_le_bytes()[..chunk.len()]);
            }
        }
    }
}
