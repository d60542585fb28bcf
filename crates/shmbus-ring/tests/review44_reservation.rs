//! Review of 44c81e3: `WriteGuard::set_aside` / `Producer::resume` let safe code break the
//! invariant the guard's borrow of the producer used to enforce (one reservation per
//! producer, used only by the producer that made it, in the ring that made it).
#![cfg(not(loom))]
use shmbus_ring::{MpmcConfig, MpmcRing, PopError, SpscConfig, SpscRing};

/// Two reservations set aside by one SPSC producer sat at the ring's tail together, and the
/// first commit was lost under the second. Now the producer holds one set-aside reservation at
/// most: its next write (here the second `reserve`) abandons the first, whose token then
/// resumes nothing; what is committed all arrives, in order.
#[test]
fn review44_two_set_aside_spsc_reservations_both_arrive() {
    let ring = SpscRing::in_heap(&SpscConfig::new(4096)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let r1 = tx.reserve(8).unwrap().set_aside();
    let r2 = tx.reserve(4).unwrap().set_aside();
    assert!(
        tx.resume(r1).is_err(),
        "the first reservation was abandoned by the second"
    );
    let mut g = tx.resume(r2).unwrap();
    g.copy_from_slice(b"BBBB");
    g.commit();
    tx.try_push(b"CC").unwrap();
    let mut got = Vec::new();
    let mut v = Vec::new();
    loop {
        match rx.try_pop_vec(&mut v) {
            Ok(_) => got.push(String::from_utf8_lossy(&v).into_owned()),
            Err(PopError::Empty) => break,
            Err(e) => {
                got.push(format!("error: {e:?}"));
                break;
            }
        }
    }
    assert_eq!(got, ["BBBB", "CC"]);
}

/// A reservation made by a producer that was dropped must not resume in the producer that
/// re-registered the same entry of the same ring: its position is stale (the successor has
/// pushed past it), and committing it rewrites published records.
#[test]
fn review44_a_dead_producers_reservation_does_not_resume_in_its_successor() {
    let ring = SpscRing::in_heap(&SpscConfig::new(4096)).unwrap();
    let mut rx = ring.consumer().unwrap();
    let r = {
        let mut tx = ring.producer().unwrap();
        tx.reserve(8).unwrap().set_aside()
    };
    let mut tx2 = ring.producer().unwrap();
    tx2.try_push(b"first").unwrap();
    match tx2.resume(r) {
        Err(_) => {}
        Ok(mut g) => {
            g.copy_from_slice(b"stale!!!");
            g.commit();
            let mut v = Vec::new();
            let mut got = Vec::new();
            while rx.try_pop_vec(&mut v).is_ok() {
                got.push(String::from_utf8_lossy(&v).into_owned());
            }
            panic!("the stale reservation resumed; the consumer then read {got:?}");
        }
    };
}

/// A reservation that outlives its producer and ring must not resume in another ring whose
/// shared state happens to be allocated at the same address (the check compares an `Arc`
/// pointer and an entry index): the guard would span `len` bytes of a ring that has far
/// fewer — out-of-bounds writes from safe code.
#[test]
fn review44_a_reservation_does_not_resume_in_another_ring_at_a_reused_address() {
    for _ in 0..200 {
        let r = {
            let ring = SpscRing::in_heap(&SpscConfig::new(1 << 16)).unwrap();
            let mut tx = ring.producer().unwrap();
            tx.reserve(60_000).unwrap().set_aside()
        };
        let small = SpscRing::in_heap(&SpscConfig::new(64)).unwrap();
        let mut tx = small.producer().unwrap();
        let max = tx.max_message();
        let resumed = match tx.resume(r) {
            Err(_) => false,
            Ok(g) => {
                // Do not touch it: its Deref would be a 60 000-byte slice of a 64-byte ring.
                std::mem::forget(g);
                true
            }
        };
        assert!(
            !resumed,
            "a 60 000-byte reservation of a dropped 64 KiB ring resumed in a new \
             64-byte ring (max message {max}): out-of-bounds slice from safe code"
        );
    }
}

/// The same with MPMC: a slot-size check is all that bounds a guard.
#[test]
fn review44_an_mpmc_reservation_does_not_resume_in_another_ring_at_a_reused_address() {
    for _ in 0..200 {
        let r = {
            let ring = MpmcRing::in_heap(&MpmcConfig::new(4, 4096)).unwrap();
            let mut tx = ring.producer().unwrap();
            tx.reserve(4000).unwrap().set_aside()
        };
        let small = MpmcRing::in_heap(&MpmcConfig::new(2, 8)).unwrap();
        let mut tx = small.producer().unwrap();
        let max = tx.max_message();
        let resumed = match tx.resume(r) {
            Err(_) => false,
            Ok(g) => {
                std::mem::forget(g);
                true
            }
        };
        assert!(
            !resumed,
            "a 4000-byte MPMC reservation resumed in a ring of 8-byte slots (max message {max})"
        );
    }
}
