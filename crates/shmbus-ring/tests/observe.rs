//! Passive observation (`observe`) and the statistics counters (`stats`, layout 1.3).
// Real memory and processes: not a loom model.
#![cfg(not(loom))]

use std::time::Duration;

use shmbus_ring::observe::{Observer, Peeked, Start};
use shmbus_ring::{stats, Error, MpmcConfig, MpmcRing, PopError, PushError, SegmentOptions};
use shmbus_ring::{SpscConfig, SpscRing};
use shmbus_testkit::hostile::raw_view;
use shmbus_testkit::process::unique_name;

fn drain(peek: &mut shmbus_ring::observe::Peek<'_>) -> (Vec<Vec<u8>>, u64) {
    let mut buf = Vec::new();
    let mut seen = Vec::new();
    let mut missed = 0;
    loop {
        match peek.next(&mut buf).unwrap() {
            Peeked::Message { .. } => seen.push(buf.clone()),
            Peeked::Missed { from, to } => missed += to - from,
            Peeked::Nothing => return (seen, missed),
        }
    }
}

#[test]
fn counters_count_stalls_sleeps_wakes_and_probes_on_their_own_side() {
    let ring = SpscRing::in_heap(&SpscConfig::new(256)).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    rx.set_probe_interval(Duration::from_millis(1));
    // A blocking pop on an empty ring sleeps on the futex (and probes on the way).
    let mut buf = [0u8; 64];
    assert_eq!(
        rx.pop_timeout(&mut buf, Duration::from_millis(30)),
        Err(PopError::Timeout)
    );
    let [p, c] = stats::read(ring.segment()).unwrap();
    assert!(c.sleeps >= 1, "{c:?}");
    assert!(c.probes >= 1, "{c:?}");
    assert_eq!(p.sleeps, 0, "the producer never slept: {p:?}");
    // A sleeper wakes on a push: the producer counts the wake it sent. A sleeper leaves its
    // futex every nap to re-check (and between two naps it is briefly not a waiter), so a push
    // that lands in that gap finds no one to wake and counts nothing; under load the gap is
    // hit now and then. Up to ten rounds: one counted wake is what is asserted.
    for round in 0..10 {
        let [_, before] = stats::read(ring.segment()).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| rx.pop_timeout(&mut buf, Duration::from_secs(5)).unwrap());
            while stats::read(ring.segment()).unwrap()[1].sleeps < before.sleeps + 1 {
                std::thread::sleep(Duration::from_millis(1));
            }
            tx.try_push(b"wake").unwrap();
        });
        if stats::read(ring.segment()).unwrap()[0].wakes >= 1 {
            break;
        }
        assert!(round < 9, "ten sleepers woken by pushes, no wake counted");
    }
    let [p, _] = stats::read(ring.segment()).unwrap();
    assert!(p.wakes >= 1, "{p:?}");
    // Full pushes are the producer's stalls, published when it detaches.
    while tx.try_push(&[0; 40]).is_ok() {}
    assert_eq!(tx.try_push(&[0; 40]), Err(PushError::Full));
    drop(tx);
    drop(rx);
    let [p, c] = stats::read(ring.segment()).unwrap();
    assert!(p.stalls >= 1, "{p:?}");
    assert!(c.stalls >= 1, "{c:?}");
    assert_eq!((p.reaped, c.reaped, p.lapped, c.lapped), (0, 0, 0, 0));
}

#[test]
fn an_observer_reads_a_read_only_map_and_never_registers() {
    let name = unique_name("observe-ro");
    let ring = SpscRing::create_shm(
        &name,
        &SpscConfig::new(4096).info(shmbus_ring::info::Info::new("u64", "raw", &name)),
        &SegmentOptions::default(),
    )
    .unwrap();
    let _tx = ring.producer().unwrap();
    let obs = Observer::open(&name).unwrap();
    assert!(!obs.segment().is_writable());
    assert_eq!(obs.info().unwrap().unwrap().type_name, "u64");
    assert_eq!(obs.endpoints().unwrap().len(), 1);
    let snap = obs.snapshot();
    assert_eq!(snap.roster[0] & 1, 1, "the producer's roster bit");
    assert_eq!(snap.roster[1], 0, "no consumer ever attached");
    assert_eq!(obs.header().layout_minor, shmbus_ring::layout::LAYOUT_MINOR);
    // Not a segment: a typed error naming it.
    let foreign = unique_name("observe-foreign");
    let seg = shmbus_ring::Segment::create(&foreign, 4096, &SegmentOptions::default()).unwrap();
    match Observer::open(&foreign) {
        Err(Error::BadMagic { target, .. }) => assert_eq!(target, foreign),
        other => panic!("{other:?}"),
    }
    drop(seg);
}

#[test]
fn a_spsc_peek_sees_every_message_until_lapped_then_resyncs() {
    let name = unique_name("observe-lap");
    let ring =
        SpscRing::create_shm(&name, &SpscConfig::new(256), &SegmentOptions::default()).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    let obs = Observer::open(&name).unwrap();
    let mut peek = obs.peek(Start::Newest);
    let mut buf = [0u8; 64];
    // Keeping up: every message, in order, and the consumer gets them all too.
    for i in 0u32..200 {
        tx.try_push(&i.to_le_bytes()).unwrap();
        let (seen, missed) = drain(&mut peek);
        assert_eq!((seen, missed), (vec![i.to_le_bytes().to_vec()], 0));
        assert_eq!(rx.try_pop(&mut buf).unwrap(), 4);
    }
    // Falling behind by several laps: a gap, then the messages after it.
    for i in 0u32..100 {
        tx.try_push(&i.to_le_bytes()).unwrap();
        rx.try_pop(&mut buf).unwrap();
    }
    tx.try_push(b"last").unwrap();
    let (seen, missed) = drain(&mut peek);
    assert!(missed > 0);
    assert!(seen.len() <= 2, "{seen:?}");
    assert_eq!(seen.last().unwrap(), b"last");
}

#[test]
fn a_corrupt_header_at_an_unconsumed_position_is_an_error_not_a_crash() {
    let name = unique_name("observe-corrupt");
    let ring =
        SpscRing::create_shm(&name, &SpscConfig::new(4096), &SegmentOptions::default()).unwrap();
    let mut tx = ring.producer().unwrap();
    let obs = Observer::open(&name).unwrap();
    let mut peek = obs.peek(Start::Oldest);
    tx.try_push(b"fine").unwrap();
    let mut buf = Vec::new();
    assert!(matches!(
        peek.next(&mut buf).unwrap(),
        Peeked::Message { position: 0 }
    ));
    // A hostile write: a data header whose length runs past the ring, where no consumer has
    // been.
    let raw = raw_view(ring.segment()).unwrap();
    raw.atomic_u64(4096 + 16)
        .unwrap()
        .store(0xffff | (1 << 32), std::sync::atomic::Ordering::Release);
    match peek.next(&mut buf) {
        Err(Error::Corrupt { target, .. }) => assert_eq!(target, name),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_mpmc_peek_copies_messages_even_after_they_were_consumed() {
    let name = unique_name("observe-mpmc");
    let shm =
        MpmcRing::create_shm(&name, &MpmcConfig::new(8, 32), &SegmentOptions::default()).unwrap();
    let mut stx = shm.producer().unwrap();
    let mut srx = shm.consumer().unwrap();
    let obs = Observer::open(&name).unwrap();
    let mut peek = obs.peek(Start::Newest);
    let mut buf = [0u8; 32];
    for i in 0u8..5 {
        stx.try_push(&[i; 3]).unwrap();
    }
    // Consumed before the observer looked: the slots still hold them until reused.
    for _ in 0..5 {
        srx.try_pop(&mut buf).unwrap();
    }
    let (seen, missed) = drain(&mut peek);
    assert_eq!(missed, 0);
    assert_eq!(seen, (0u8..5).map(|i| vec![i; 3]).collect::<Vec<_>>());
    // Lapped: slots reused by later messages are a gap, then the cursor goes on.
    for i in 0u8..20 {
        stx.try_push(&[i; 2]).unwrap();
        srx.try_pop(&mut buf).unwrap();
    }
    let (seen, missed) = drain(&mut peek);
    assert!(missed > 0);
    assert_eq!(seen.last().unwrap(), &vec![19u8; 2]);
}
