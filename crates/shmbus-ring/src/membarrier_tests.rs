//! Membarrier mode against the kernel: registration, the sleeper's call, and a real
//! two-process wake-up test (a light notifier in a forked child, a sleeper here).

use super::{global, kernel_register, register};
use crate::layout::{RING_FLAG_MEMBARRIER, RING_FLAG_NOTIFY};
use crate::sync::{Memory, Ordering, RawMem};
use crate::wait::{notify, sleep_once, Barrier, Direction, Wake};
use rustix::thread::{membarrier_query, MembarrierQuery};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

fn offered() -> bool {
    membarrier_query()
        .contains(MembarrierQuery::GLOBAL_EXPEDITED | MembarrierQuery::REGISTER_GLOBAL_EXPEDITED)
}

#[test]
fn register_follows_the_kernels_offer_and_keeps_its_first_answer() {
    let first = register();
    assert_eq!(first, offered());
    assert_eq!(register(), first);
}

#[test]
fn the_sleepers_barrier_succeeds_where_the_kernel_offers_it() {
    let mem = Shared::new();
    assert_eq!(global(&mem.mem), offered());
}

#[test]
fn for_ring_picks_the_mode_from_the_flags() {
    assert_eq!(Wake::for_ring(0), None);
    assert_eq!(Wake::for_ring(RING_FLAG_MEMBARRIER), None);
    assert_eq!(
        Wake::for_ring(RING_FLAG_NOTIFY).map(|w| w.barrier),
        Some(Barrier::Fence)
    );
    assert_eq!(
        Wake::for_ring(RING_FLAG_NOTIFY | RING_FLAG_MEMBARRIER).map(|w| w.barrier),
        Some(Barrier::Membarrier { light: offered() })
    );
}

/// A page-aligned shared anonymous mapping, inherited by a forked child.
struct Shared {
    base: NonNull<u8>,
    len: usize,
    mem: RawMem,
}

impl Shared {
    fn new() -> Self {
        let len = 64 * 1024;
        // SAFETY: a fresh anonymous mapping; no existing memory is touched.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap");
        let base = NonNull::new(p.cast::<u8>()).expect("mmap returned null");
        // SAFETY: `len` bytes mapped at `base`, unmapped only in `drop`, after `mem`'s last use.
        let mem = unsafe { RawMem::from_raw(base, len) };
        Shared { base, len, mem }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, no longer used.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// The published value and the sleeper's acknowledgement: words of the data area, away from
/// the wake words of the first page.
const VALUE: usize = 8192;
const ACK: usize = 8192 + 64;
const ROUNDS: u64 = 100_000;
/// A sleep this long means a lost wake-up: the child publishes within microseconds.
const LOST: Duration = Duration::from_secs(5);

/// The child: for each round, waits (spinning, so the sleeper's membarrier has a running
/// target to interrupt) for the sleeper's acknowledgement of the previous round, publishes
/// the next value with a light notify, and goes on. Exits 0, or 3 if the sleeper stalls.
fn child(mem: &RawMem, wake: Wake) -> ! {
    // The child registers itself (the parent may not have: `register` caches per process).
    let code = if kernel_register() {
        let mut code = 0;
        'rounds: for v in 1..=ROUNDS {
            let start = Instant::now();
            // SAFETY: in-bounds aligned words of the shared mapping.
            while unsafe { mem.load(ACK, Ordering::Acquire) } != v - 1 {
                if start.elapsed() > LOST * 2 {
                    code = 3;
                    break 'rounds;
                }
                std::hint::spin_loop();
            }
            // SAFETY: as above; `wake`'s words are in the first page of the mapping.
            unsafe {
                // Release: the publication (as R1).
                mem.store(VALUE, v, Ordering::Release);
                notify(mem, wake, Direction::Data);
            }
        }
        code
    } else {
        4
    };
    // SAFETY: ends the forked child without running the parent's exit handlers.
    unsafe { libc::_exit(code) }
}

#[test]
fn a_sleeper_is_woken_by_a_light_notifier_in_another_process_every_time() {
    if !offered() {
        eprintln!("membarrier GLOBAL_EXPEDITED not offered here: nothing to test");
        return;
    }
    let shared = Shared::new();
    let wake = Wake {
        barrier: Barrier::Membarrier { light: true },
        ..Wake::SEGMENT
    };
    let child_wake = wake;
    // SAFETY: the child touches only the shared mapping, atomics and system calls (no
    // allocation, no lock another thread of the test harness may hold), then `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        child(&shared.mem, child_wake);
    }
    let mem = &shared.mem;
    let mut slept = 0u64;
    let mut lost = None;
    'rounds: for v in 1..=ROUNDS {
        // Acquire: as A2 (the observing load).
        // SAFETY: in-bounds aligned word of the mapping.
        let check = || (unsafe { mem.load(VALUE, Ordering::Acquire) } >= v).then_some(());
        while check().is_none() {
            let before = Instant::now();
            // SAFETY: `wake`'s words are in the first page of the mapping.
            let woke =
                unsafe { sleep_once(mem, wake, Direction::Data, Some(before + LOST), check) };
            if woke.is_none() {
                slept += 1;
                if before.elapsed() >= LOST {
                    lost = Some(v);
                    break 'rounds;
                }
            }
        }
        // Release: the child's Acquire of the acknowledgement.
        // SAFETY: in-bounds aligned word of the mapping.
        unsafe { mem.store(ACK, v, Ordering::Release) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(
        lost, None,
        "a sleep ran into its {LOST:?} timeout: lost wake-up"
    );
    assert!(libc::WIFEXITED(status), "child status {status}");
    assert_eq!(libc::WEXITSTATUS(status), 0, "child exit code");
    eprintln!("{slept} sleeps in {ROUNDS} rounds");
    // The test is only worth its name if the sleeper really slept, many times: on a quiet
    // machine most rounds end in a futex sleep; under a loaded CI runner (other tests on both
    // cores) a few hundred in 100 000 did, and once 84, so the bar is ten: every one of those
    // sleeps was woken (no round ran into `LOST`), which is what the test is about.
    assert!(
        slept >= ROUNDS / 10_000,
        "slept only {slept} times in {ROUNDS} rounds"
    );
}
