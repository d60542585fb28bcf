//! The broadcast ring in one process: every subscriber sees every message; tethered ones gate
//! the publisher, untethered ones are lapped and say by how much; where a joiner starts;
//! ejection; a publisher's successor; leaving.

use shmbus_ring::broadcast::{BroadcastConfig, BroadcastRing, SlowSubscribers, StartAt};
use shmbus_ring::{Consumer, PopError, PushError, Subscription};
use std::time::Duration;

fn ring(cap: u64) -> BroadcastRing {
    BroadcastRing::in_heap(&BroadcastConfig::new(cap).max_record(256).history(16)).unwrap()
}

fn msg(i: u64) -> Vec<u8> {
    let mut v = i.to_le_bytes().to_vec();
    v.resize(8 + (i % 40) as usize, i as u8);
    v
}

fn pop(c: &mut Consumer<shmbus_ring::Broadcast>) -> Result<u64, PopError> {
    let mut buf = [0u8; 256];
    let n = c.try_pop(&mut buf)?;
    let i = u64::from_le_bytes(buf[..8].try_into().unwrap());
    assert_eq!(&buf[..n], &msg(i)[..], "message {i} torn");
    Ok(i)
}

#[test]
fn every_tethered_subscriber_gets_every_message_and_the_slowest_gates() {
    let ring = ring(4096);
    let mut publisher = ring.producer().unwrap();
    let mut subs: Vec<_> = (0..3).map(|_| ring.consumer().unwrap()).collect();
    let mut next = [0u64; 3];
    let mut sent = 0u64;
    for round in 0..2000u64 {
        // Subscriber k reads in every (k+1)-th round: the slowest gates the publisher.
        for (k, s) in subs.iter_mut().enumerate() {
            if round % (k as u64 + 1) == 0 {
                while let Ok(i) = pop(s) {
                    assert_eq!(i, next[k]);
                    next[k] += 1;
                }
            }
        }
        loop {
            match publisher.try_push(&msg(sent)) {
                Ok(()) => sent += 1,
                Err(PushError::Full) => break,
                Err(e) => panic!("{e}"),
            }
        }
    }
    for (k, s) in subs.iter_mut().enumerate() {
        while let Ok(i) = pop(s) {
            assert_eq!(i, next[k]);
            next[k] += 1;
        }
        assert_eq!(next[k], sent, "subscriber {k}");
        assert!(s.is_confirmed());
    }
    assert!(sent > 2000);
}

#[test]
fn an_untethered_subscriber_never_gates_and_counts_what_it_missed() {
    let ring = ring(4096);
    let mut publisher = ring.producer().unwrap();
    let mut lossy = ring.subscriber(&Subscription::untethered()).unwrap();
    for i in 0..10 {
        publisher.try_push(&msg(i)).unwrap();
    }
    assert_eq!(pop(&mut lossy), Ok(0));
    for i in 10..1000 {
        publisher.try_push(&msg(i)).unwrap();
    }
    let Err(PopError::Lagged { missed }) = pop(&mut lossy) else {
        panic!("not lagged")
    };
    // It resumed at the latest record, 999.
    assert_eq!(missed, 998);
    assert_eq!(pop(&mut lossy), Ok(999));
    assert_eq!(pop(&mut lossy), Err(PopError::Empty));
    assert_eq!(lossy.lapped_count(), 1);
}

#[test]
fn joiners_start_where_they_ask() {
    let ring = ring(1 << 16);
    let mut publisher = ring.producer().unwrap();
    for i in 0..100 {
        publisher.try_push(&msg(i)).unwrap();
    }
    let mut next = ring.consumer().unwrap();
    let mut latest = ring
        .subscriber(&Subscription::tethered().start_at(StartAt::Latest))
        .unwrap();
    let mut last5 = ring
        .subscriber(&Subscription::untethered().start_at(StartAt::History(5)))
        .unwrap();
    let mut oldest = ring
        .subscriber(&Subscription::tethered().start_at(StartAt::Oldest))
        .unwrap();
    publisher.try_push(&msg(100)).unwrap();
    assert_eq!(pop(&mut next), Ok(100));
    assert_eq!(pop(&mut latest), Ok(99));
    assert_eq!(pop(&mut latest), Ok(100));
    let got: Vec<_> = std::iter::from_fn(|| pop(&mut last5).ok()).collect();
    assert_eq!(got, vec![95, 96, 97, 98, 99, 100]);
    // The history holds 16 records: the oldest it reaches is record 84.
    assert_eq!(pop(&mut oldest), Ok(84));
    assert_eq!(oldest.sequence(), 85);
}

#[test]
fn history_is_bounded_by_what_the_ring_still_holds() {
    let config = BroadcastConfig::new(4096).max_record(256).history(256);
    let ring = BroadcastRing::in_heap(&config).unwrap();
    let mut publisher = ring.producer().unwrap();
    for i in 0..1000 {
        publisher.try_push(&msg(i)).unwrap();
    }
    let mut oldest = ring
        .subscriber(&Subscription::untethered().start_at(StartAt::Oldest))
        .unwrap();
    let first = pop(&mut oldest).unwrap();
    // 4096 bytes hold about a hundred of these records, fewer than the history's 256.
    assert!((1000 - 150..1000 - 50).contains(&first), "{first}");
    let mut want = first + 1;
    while let Ok(i) = pop(&mut oldest) {
        assert_eq!(i, want);
        want += 1;
    }
    assert_eq!(want, 1000);
}

#[test]
fn a_publisher_that_untethers_ejects_the_subscriber_that_gates_it() {
    let ring = ring(4096);
    let mut publisher = ring.producer().unwrap();
    publisher.set_slow_subscribers(SlowSubscribers::Untether {
        after: Duration::from_millis(20),
    });
    let mut slow = ring.consumer().unwrap();
    let mut sent = 0;
    let started = std::time::Instant::now();
    while sent < 500 {
        match publisher.try_push(&msg(sent)) {
            Ok(()) => sent += 1,
            Err(PushError::Full) => assert!(started.elapsed() < Duration::from_secs(5)),
            Err(e) => panic!("{e}"),
        }
    }
    assert!(started.elapsed() >= Duration::from_millis(20));
    assert_eq!(ring.ejections(), 1);
    assert_eq!(pop(&mut slow), Err(PopError::Ejected));
    assert!(!slow.is_tethered());
    assert!(matches!(pop(&mut slow), Err(PopError::Lagged { .. })));
    assert_eq!(pop(&mut slow), Ok(499));
    slow.retether();
    assert!(slow.is_tethered());
}

#[test]
fn subscribers_drain_then_see_the_publisher_gone_and_a_successor_goes_on() {
    let ring = ring(4096);
    let mut sub = ring.consumer().unwrap();
    let mut publisher = ring.producer().unwrap();
    assert!(matches!(
        ring.producer(),
        Err(shmbus_ring::Error::AlreadyAttached { .. })
    ));
    for i in 0..10 {
        publisher.try_push(&msg(i)).unwrap();
    }
    drop(publisher);
    for i in 0..10 {
        assert_eq!(pop(&mut sub), Ok(i));
    }
    assert_eq!(pop(&mut sub), Err(PopError::Disconnected));
    let mut successor = ring.producer().unwrap();
    successor.try_push(&msg(10)).unwrap();
    assert_eq!(pop(&mut sub), Ok(10));
    assert_eq!(ring.published(), 11);
}

#[test]
fn a_publisher_alone_is_never_full_nor_disconnected_and_a_leaver_stops_gating() {
    let ring = ring(4096);
    let mut publisher = ring.producer().unwrap();
    for i in 0..1000 {
        publisher.try_push(&msg(i)).unwrap();
    }
    let sub = ring.consumer().unwrap();
    let mut sent = 0;
    while publisher.try_push(&msg(sent)).is_ok() {
        sent += 1;
    }
    assert!(sent < 200);
    assert_eq!(ring.subscribers().len(), 1);
    drop(sub);
    assert!(ring.subscribers().is_empty());
    for i in 0..1000 {
        publisher.try_push(&msg(i)).unwrap();
    }
}

#[test]
fn a_blocking_subscriber_wakes_for_the_publisher() {
    let ring = ring(4096);
    let mut sub = ring.consumer().unwrap();
    let mut publisher = ring.producer().unwrap();
    let t = std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        let mut got = 0;
        while got < 5000 {
            let n = sub.pop_timeout(&mut buf, Duration::from_secs(10)).unwrap();
            assert_eq!(&buf[..n], &msg(got)[..]);
            got += 1;
        }
    });
    for i in 0..5000 {
        publisher
            .push_timeout(&msg(i), Duration::from_secs(10))
            .unwrap();
    }
    t.join().unwrap();
}
