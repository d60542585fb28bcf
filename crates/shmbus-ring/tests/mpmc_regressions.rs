//! Regression tests for findings of the adversarial review of the MPMC ring.
#![cfg(not(loom))]

use shmbus_ring::layout::{ENDPOINT_TABLE, PRODUCER_BLOCK};
use shmbus_ring::{MpmcConfig, MpmcRing, PopError, PushError, Segment, SegmentOptions};
use std::sync::atomic::{AtomicU32, Ordering};

fn shm_ring(slots: u64) -> (MpmcRing, Segment) {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "/shmbus-mpmc-regress-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let ring = MpmcRing::create_shm(
        &name,
        &MpmcConfig::new(slots, 8),
        &SegmentOptions::default(),
    )
    .unwrap();
    let raw = Segment::open(&name, &SegmentOptions::default()).unwrap();
    (ring, raw)
}

#[test]
fn a_long_run_of_abandoned_positions_does_not_wedge_consumers() {
    let ring = MpmcRing::in_heap(&MpmcConfig::new(2, 8)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    // Claim and drop uncommitted far more positions than one walk covers (2 * 2 + 64).
    for _ in 0..10_000 {
        drop(tx.claim().unwrap());
    }
    tx.try_push(b"after").unwrap();
    let mut v = Vec::new();
    let mut empties = 0;
    loop {
        match rx.try_pop_vec(&mut v) {
            Ok(_) => break,
            Err(PopError::Empty) => empties += 1,
            Err(e) => panic!("{e}"),
        }
        assert!(
            empties <= 10_000 / (2 * 2 + 64) + 1,
            "consumer wedged behind abandoned positions"
        );
    }
    assert_eq!(v, b"after");
}

#[test]
fn a_bulk_larger_than_the_ring_is_refused_as_too_many_not_full() {
    let ring = MpmcRing::in_heap(&MpmcConfig::new(64, 8)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let batch: Vec<&[u8]> = vec![b"m"; 65];
    for _ in 0..4 {
        assert_eq!(
            tx.push_bulk(&batch),
            Err(PushError::TooMany { count: 65, max: 64 })
        );
    }
    tx.try_push(b"hello").unwrap();
    assert_eq!(rx.try_pop_with(|b| b.to_vec()).unwrap(), b"hello");
}

#[test]
fn a_tail_hint_lowered_by_a_peer_heals_within_a_few_calls() {
    let (ring, raw) = shm_ring(4);
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    for i in 0..800u32 {
        tx.try_push(&i.to_le_bytes()).unwrap();
        rx.try_pop_vec(&mut Vec::new()).unwrap();
    }
    raw.atomic_u64(PRODUCER_BLOCK as usize)
        .unwrap()
        .store(0, Ordering::SeqCst);
    let mut fulls = 0;
    while tx.try_push(b"again").is_err() {
        fulls += 1;
        assert!(fulls < 20, "producer never recovered from a lowered hint");
    }
    assert_eq!(rx.try_pop_with(|b| b.to_vec()).unwrap(), b"again");
}

#[test]
fn a_burst_that_meets_an_error_midway_reports_what_it_pushed() {
    let ring = MpmcRing::in_heap(&MpmcConfig::new(4, 8)).unwrap();
    let mut tx = ring.producer().unwrap();
    // Four fit in four slots; the fifth meets Full: the burst reports the four.
    let n = tx.push_burst(&[&b"a"[..], b"b", b"c", b"d", b"e"]).unwrap();
    assert_eq!(n, 4);
    assert_eq!(tx.push_burst(&[&b"f"[..]]), Err(PushError::Full));
}

#[test]
fn an_endpoint_never_frees_a_table_entry_it_does_not_hold() {
    let (ring, raw) = shm_ring(4);
    let entry = raw.atomic_u64(ENDPOINT_TABLE as usize).unwrap();
    // The state word: role in bits 0..4 (1 producer, 2 consumer), phase in bits 4..8
    // (0 free, 2 active).
    let role_phase = |w: u64| (w & 0xf, (w >> 4) & 0xf);
    let a = ring.producer().unwrap();
    assert_eq!(role_phase(entry.load(Ordering::SeqCst)), (1, 2));
    // A peer frees A's entry (index 0) and a consumer registers in it.
    entry.store(0, Ordering::SeqCst);
    let b = ring.consumer().unwrap();
    assert_eq!(role_phase(entry.load(Ordering::SeqCst)), (2, 2));
    drop(a);
    assert_eq!(
        role_phase(entry.load(Ordering::SeqCst)),
        (2, 2),
        "the consumer's entry survived the producer's drop"
    );
    drop(b);
    assert_eq!(role_phase(entry.load(Ordering::SeqCst)).1, 0);
}

#[test]
fn a_heap_ring_too_large_to_allocate_is_an_error_not_an_abort() {
    let err = MpmcRing::in_heap(&MpmcConfig::new(1 << 32, 1 << 24)).unwrap_err();
    assert!(
        matches!(err, shmbus_ring::Error::InvalidConfig(_)),
        "{err:?}"
    );
}
