//! Counts the locked read-modify-writes of a one-producer, one-consumer exchange on the MPMC
//! core (D73): which ones lie between a claim and the caller's next step, and which ones a
//! consumer makes while it waits. A test of the algorithm's shape, not of its speed.

use super::{Core, Geometry};
use crate::endpoint::{ReadCore, WriteCore};
use crate::error::PopError;
use crate::mpmc::{slot_stride, SLOT_HEADER};
use crate::ring::Words;
use crate::sync::{Memory, Ordering, RawMem};
use std::cell::Cell;
use std::ptr::NonNull;
use std::rc::Rc;
use std::time::Duration;

/// [`RawMem`] over a heap buffer, counting the read-modify-writes made through it.
#[derive(Clone)]
struct Counting {
    raw: RawMem,
    rmw: Rc<Cell<u32>>,
}

impl Counting {
    fn rmw(&self) {
        self.rmw.set(self.rmw.get() + 1);
    }
}

// SAFETY: every operation is `RawMem`'s on the same offsets (its contract is ours).
unsafe impl Memory for Counting {
    unsafe fn load(&self, off: usize, order: Ordering) -> u64 {
        // SAFETY: the caller's contract.
        unsafe { self.raw.load(off, order) }
    }
    unsafe fn load_latest(&self, off: usize) -> u64 {
        // SAFETY: the caller's contract.
        unsafe { self.raw.load_latest(off) }
    }
    unsafe fn store(&self, off: usize, val: u64, order: Ordering) {
        // SAFETY: the caller's contract.
        unsafe { self.raw.store(off, val, order) }
    }
    unsafe fn compare_exchange(
        &self,
        off: usize,
        current: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u64, u64> {
        self.rmw();
        // SAFETY: the caller's contract.
        unsafe {
            self.raw
                .compare_exchange(off, current, new, success, failure)
        }
    }
    unsafe fn fetch_max(&self, off: usize, val: u64, order: Ordering) -> u64 {
        self.rmw();
        // SAFETY: the caller's contract.
        unsafe { self.raw.fetch_max(off, val, order) }
    }
    unsafe fn fetch_add(&self, off: usize, val: u64, order: Ordering) -> u64 {
        self.rmw();
        // SAFETY: the caller's contract.
        unsafe { self.raw.fetch_add(off, val, order) }
    }
    unsafe fn fetch_sub(&self, off: usize, val: u64, order: Ordering) -> u64 {
        self.rmw();
        // SAFETY: the caller's contract.
        unsafe { self.raw.fetch_sub(off, val, order) }
    }
    unsafe fn fetch_or(&self, off: usize, val: u64, order: Ordering) -> u64 {
        self.rmw();
        // SAFETY: the caller's contract.
        unsafe { self.raw.fetch_or(off, val, order) }
    }
    unsafe fn fetch_and(&self, off: usize, val: u64, order: Ordering) -> u64 {
        self.rmw();
        // SAFETY: the caller's contract.
        unsafe { self.raw.fetch_and(off, val, order) }
    }
    unsafe fn load_u32(&self, off: usize, order: Ordering) -> u32 {
        // SAFETY: the caller's contract.
        unsafe { self.raw.load_u32(off, order) }
    }
    unsafe fn store_u32(&self, off: usize, val: u32, order: Ordering) {
        // SAFETY: the caller's contract.
        unsafe { self.raw.store_u32(off, val, order) }
    }
    unsafe fn compare_exchange_u32(
        &self,
        off: usize,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32> {
        self.rmw();
        // SAFETY: the caller's contract.
        unsafe {
            self.raw
                .compare_exchange_u32(off, current, new, success, failure)
        }
    }
    unsafe fn wait(&self, off: usize, expected: u64, timeout: Option<Duration>) {
        // SAFETY: the caller's contract.
        unsafe { self.raw.wait(off, expected, timeout) }
    }
    unsafe fn wake(&self, off: usize) {
        // SAFETY: the caller's contract.
        unsafe { self.raw.wake(off) }
    }
    unsafe fn write(&self, off: usize, src: &[u8]) {
        // SAFETY: the caller's contract.
        unsafe { self.raw.write(off, src) }
    }
    unsafe fn read(&self, off: usize, dst: &mut [u8]) {
        // SAFETY: the caller's contract.
        unsafe { self.raw.read(off, dst) }
    }
}

/// Locked operations of each step of `rounds` rounds of `burst` messages: (pushes, pops that
/// take them, the empty poll after them), on a ring of `slots` slots.
fn exchange(slots: u64, rounds: u32, burst: u32) -> Vec<(u32, u32, u32)> {
    let slot_size = 8;
    let stride = slot_stride(slot_size);
    let g = Geometry {
        words: Words {
            tail: 0,
            head: 64,
            data: 128,
            wake: None,
        },
        slots,
        slot_size,
        stride,
        len_off: 8,
        payload_off: crate::conv::offset(SLOT_HEADER),
        limit: 0,
    };
    let words = 128 / 8 + crate::conv::offset(slots * stride) / 8;
    let mut buf = vec![0u64; words];
    let base = NonNull::new(buf.as_mut_ptr().cast::<u8>()).expect("a vector's pointer");
    let mem = Counting {
        // SAFETY: `buf` is 8-aligned, `words * 8` bytes long, and outlives every use below.
        raw: unsafe { RawMem::from_raw(base, words * 8) },
        rmw: Rc::new(Cell::new(0)),
    };
    // SAFETY: the memory holds the hints and the slots; nothing else uses it.
    unsafe { Core::initialize(&mem, &g) };
    // SAFETY: as above.
    let mut tx = unsafe { Core::new(mem.clone(), g, 1) };
    // SAFETY: as above.
    let mut rx = unsafe { Core::new(mem.clone(), g, 2) };
    let mut out = Vec::new();
    let mut got = [0u8; 8];
    let step = |f: &mut dyn FnMut()| {
        let before = mem.rmw.get();
        f();
        mem.rmw.get() - before
    };
    for r in 0..rounds {
        let first = r * burst;
        let push = step(&mut || {
            for i in first..first + burst {
                tx.try_push(&i.to_le_bytes()).expect("room");
            }
        });
        let pop = step(&mut || {
            for i in first..first + burst {
                rx.try_pop(&mut got).expect("the message");
                assert_eq!(got[..4], i.to_le_bytes());
            }
        });
        let poll = step(&mut || assert_eq!(rx.try_pop(&mut got), Err(PopError::Empty)));
        out.push((push, pop, poll));
    }
    drop(buf);
    out
}

/// Ping-pong shape: the producer claims (CAS) and raises the tail hint (M4) before its
/// commit; the consumer claims (CAS) and defers its raise of the head hint (M10b) to its next
/// poll, which finds the ring empty — so three locked operations lie between a send and the
/// consumer's next step, not four (D73), and one more is made while it waits.
#[test]
fn one_way_takes_three_locked_operations_and_the_wait_one() {
    let steps = exchange(64, 40, 1);
    for &(push, pop, poll) in &steps[1..] {
        assert_eq!((push, pop, poll), (2, 1, 2), "{steps:?}");
    }
}

/// Streaming shape: a consumer that keeps finding messages raises the head hint once per
/// `head_lag` claims (16 on a ring of 64 slots), not once per claim.
#[test]
fn a_burst_raises_the_head_hint_once_per_lag() {
    let steps = exchange(64, 8, 32);
    for &(push, pop, _) in &steps[1..] {
        assert_eq!((push, pop), (64, 32 + 2), "{steps:?}");
    }
}
