//! The endpoint layer's in-place calls, the same for both ring kinds: a write guard dropped
//! uncommitted is abandoned, a read guard consumes when dropped, and a callback that panics
//! leaves an SPSC record in the ring (seen again) and frees an MPMC slot (no wedge).
#![cfg(not(loom))]
use shmbus_ring::{MpmcConfig, MpmcRing, PopError, SpscConfig, SpscRing};
use std::panic::{catch_unwind, AssertUnwindSafe};

#[test]
fn a_panic_in_an_mpmc_try_pop_with_callback_frees_the_slot() {
    let ring = MpmcRing::in_heap(&MpmcConfig::new(2, 8)).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    tx.try_push(b"a").unwrap();
    tx.try_push(b"b").unwrap();
    let r = catch_unwind(AssertUnwindSafe(|| {
        let _ = rx.try_pop_with(|_| panic!("callback"));
    }));
    assert!(r.is_err());
    // "a" was dropped, its slot freed: one more push fits, and "b" then "c" arrive.
    tx.try_push(b"c").expect("the panicked slot was freed");
    let mut v = Vec::new();
    rx.try_pop_vec(&mut v).unwrap();
    assert_eq!(v, b"b");
    rx.try_pop_vec(&mut v).unwrap();
    assert_eq!(v, b"c");
    assert_eq!(rx.try_pop_vec(&mut v), Err(PopError::Empty));
}

#[test]
fn a_panic_in_an_mpmc_try_pop_batch_callback_frees_the_slot() {
    let ring = MpmcRing::in_heap(&MpmcConfig::new(2, 8)).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    tx.try_push(b"a").unwrap();
    tx.try_push(b"b").unwrap();
    let r = catch_unwind(AssertUnwindSafe(|| {
        let _ = rx.try_pop_batch(8, |m| assert_ne!(m, b"b"));
    }));
    assert!(r.is_err());
    tx.try_push(b"c").unwrap();
    tx.try_push(b"d").expect("both slots free again");
}

#[test]
fn a_panic_in_an_spsc_try_pop_with_callback_keeps_the_record() {
    let ring = SpscRing::in_heap(&SpscConfig::new(256)).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    tx.try_push(b"a").unwrap();
    let r = catch_unwind(AssertUnwindSafe(|| {
        let _ = rx.try_pop_with(|_| panic!("callback"));
    }));
    assert!(r.is_err());
    let mut v = Vec::new();
    rx.try_pop_vec(&mut v).unwrap();
    assert_eq!(v, b"a");
}

#[test]
fn an_mpmc_write_guard_dropped_is_skipped_and_a_read_guard_consumes() {
    let ring = MpmcRing::in_heap(&MpmcConfig::new(2, 8)).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    assert_eq!(tx.reserve(3).unwrap().len(), 3);
    assert!(tx.reserve(9).is_err());
    {
        let mut w = tx.reserve(2).unwrap();
        w.copy_from_slice(b"xy");
        w.commit();
    }
    {
        let g = rx.read().unwrap().expect("one");
        assert_eq!(&*g, b"xy");
    }
    tx.try_push(b"1").unwrap();
    tx.try_push(b"2")
        .expect("abandoned and read slots are free");
    let mut v = Vec::new();
    rx.try_pop_vec(&mut v).unwrap();
    assert_eq!(v, b"1");
}
