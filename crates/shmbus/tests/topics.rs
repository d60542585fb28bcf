//! Broadcast topics through the typed layer (issue 16): every subscriber sees every message;
//! the type is checked at subscribe; an untethered subscriber is told how much it missed and
//! an ejected one that it was ejected; `wait_for` finds a topic created later and gives up at
//! its deadline; a successor publisher goes on in the same ring, after a drop and after a
//! SIGKILL; `list` sees topics; a subscriber takes part in a select.

mod common;

use common::{role, unique_name, ChildGuard};
use serde::{Deserialize, Serialize};
use shmbus::topic::{self, RecvError, SlowSubscribers, StartAt, TryRecvError, TrySendError};
use shmbus::Error;
use std::time::{Duration, Instant};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Tick {
    seq: u64,
    symbol: String,
    prices: Vec<f64>,
}

fn tick(seq: u64) -> Tick {
    Tick {
        seq,
        symbol: format!("S{}", seq % 7),
        prices: (0..seq % 5).map(|i| i as f64 * 0.5).collect(),
    }
}

/// A topic name unique to this test run, with a `/` in it (escaped to `.`).
fn name(what: &str) -> String {
    format!("test{}", unique_name(what))
}

/// Removes the topic when dropped, so that a failing test leaves no segment behind.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = topic::remove(&self.0);
    }
}

const LONG: Duration = Duration::from_secs(20);

#[test]
fn typed_messages_reach_every_subscriber_in_order() {
    let t = name("round-trip");
    let _c = Cleanup(t.clone());
    let mut publisher = topic::publisher::<Tick>()
        .capacity_bytes(8192)
        .max_message(256)
        .create(&t)
        .unwrap();
    // Published before any subscriber: kept for a late one that asks.
    for i in 0..3 {
        publisher.send(&tick(i)).unwrap();
    }
    let mut subs = vec![
        topic::subscriber::<Tick>().open(&t).unwrap(),
        topic::subscriber::<Tick>().open(&t).unwrap(),
        topic::subscriber::<Tick>()
            .start_at(StartAt::History(3))
            .open(&t)
            .unwrap(),
    ];
    assert_eq!(publisher.subscribers().len(), 3);
    let n = 3000u64;
    let readers: Vec<_> = subs
        .drain(..)
        .enumerate()
        .map(|(k, mut s)| {
            std::thread::spawn(move || {
                let first = if k == 2 { 0 } else { 3 };
                for i in first..3 + n {
                    assert_eq!(s.recv_timeout(LONG).unwrap(), tick(i), "subscriber {k}");
                }
                assert!(s.is_tethered());
                s
            })
        })
        .collect();
    // The ring holds far fewer than `n` ticks: the tethered subscribers hold the publisher up.
    for i in 3..3 + n {
        publisher.send_timeout(&tick(i), LONG).unwrap();
    }
    let mut subs: Vec<_> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    assert_eq!(publisher.published(), 3 + n);
    drop(publisher);
    for s in &mut subs {
        assert_eq!(s.recv(), Err(RecvError::Disconnected));
        assert_eq!(s.lapped_count(), 0);
    }
}

#[test]
fn a_subscriber_of_another_type_is_refused_naming_both_types() {
    let t = name("wrong-type");
    let _c = Cleanup(t.clone());
    let _publisher = topic::publisher::<u64>().create(&t).unwrap();
    let err = topic::subscriber::<String>().open(&t).unwrap_err();
    assert!(matches!(err, Error::TypeMismatch { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("`u64`"), "{text}");
    assert!(text.contains("alloc::string::String"), "{text}");
    // Same type, another codec: refused too.
    let err = topic::subscriber::<u64>()
        .codec::<shmbus::codec::Plain>()
        .open(&t)
        .unwrap_err();
    assert!(matches!(err, Error::TypeMismatch { .. }), "{err:?}");
    // The right one is accepted.
    topic::subscriber::<u64>().open(&t).unwrap();
}

#[test]
fn an_untethered_subscriber_is_told_how_many_messages_it_missed() {
    let t = name("lagged");
    let _c = Cleanup(t.clone());
    let mut publisher = topic::publisher::<u64>()
        .capacity_bytes(4096)
        .create(&t)
        .unwrap();
    let mut lossy = topic::subscriber::<u64>().tethered(false).open(&t).unwrap();
    assert!(!lossy.is_tethered());
    for i in 0..10 {
        publisher.try_send(&i).unwrap();
    }
    assert_eq!(lossy.try_recv(), Ok(0));
    // Never full: an untethered subscriber does not hold the publisher up.
    for i in 10..1000 {
        publisher.try_send(&i).unwrap();
    }
    assert_eq!(lossy.try_recv(), Err(TryRecvError::Lagged { missed: 998 }));
    assert_eq!(lossy.try_recv(), Ok(999));
    assert_eq!(lossy.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(lossy.lapped_count(), 1);
    // Blocking receives report it too, with the count.
    for i in 1000..2000 {
        publisher.try_send(&i).unwrap();
    }
    let err = lossy.recv_timeout(LONG).unwrap_err();
    assert_eq!(err.missed(), Some(999), "{err}");
    assert_eq!(lossy.recv(), Ok(1999));
    assert!(!err.is_disconnected());
}

#[test]
fn an_ejected_subscriber_is_told_and_can_retether() {
    let t = name("ejected");
    let _c = Cleanup(t.clone());
    let mut publisher = topic::publisher::<u64>()
        .capacity_bytes(4096)
        .slow_subscribers(SlowSubscribers::Untether {
            after: Duration::ZERO,
        })
        .create(&t)
        .unwrap();
    let mut slow = topic::subscriber::<u64>().open(&t).unwrap();
    for i in 0..1000 {
        publisher.try_send(&i).unwrap();
    }
    assert_eq!(slow.try_recv(), Err(TryRecvError::Ejected));
    assert!(!slow.is_tethered());
    assert!(matches!(slow.try_recv(), Err(TryRecvError::Lagged { .. })));
    assert_eq!(slow.try_recv(), Ok(999));
    // Joined again, tethered, where it is: nothing skipped, nothing repeated.
    assert_eq!(slow.retether(), 0);
    assert!(slow.is_tethered());
    publisher.try_send(&1000).unwrap();
    assert_eq!(slow.try_recv(), Ok(1000));

    // Under `Block`, the same subscriber makes the publisher wait: `Full`.
    publisher.set_slow_subscribers(SlowSubscribers::Block);
    let mut sent = 0;
    let full = loop {
        match publisher.try_send(&sent) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 10_000, "never full");
    };
    assert_eq!(full, TrySendError::Full);
    assert!(publisher
        .send_timeout(&0, Duration::from_millis(20))
        .unwrap_err()
        .is_timeout());
}

#[test]
fn wait_for_returns_when_another_thread_creates_the_topic() {
    let t = name("wait-for");
    let _c = Cleanup(t.clone());
    let creator = std::thread::spawn({
        let t = t.clone();
        move || {
            std::thread::sleep(Duration::from_millis(200));
            let mut p = topic::publisher::<String>().create(&t).unwrap();
            let deadline = Instant::now() + LONG;
            while p.subscribers().is_empty() {
                assert!(Instant::now() < deadline, "no subscriber came");
                std::thread::sleep(Duration::from_millis(1));
            }
            p.send(&"found".to_string()).unwrap();
            p
        }
    });
    let started = Instant::now();
    let mut sub = topic::subscriber::<String>()
        .wait_for(&t, started + LONG)
        .unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(150), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    assert_eq!(sub.recv_timeout(LONG).unwrap(), "found");
    drop(creator.join().unwrap());
}

#[test]
fn wait_for_gives_up_at_its_deadline() {
    let t = name("wait-for-none");
    let started = Instant::now();
    let err = topic::subscriber::<u8>()
        .wait_for(&t, started + Duration::from_millis(300))
        .unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err, Error::NoTopic { .. }), "{err:?}");
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    // A deadline already past: one look, then the error.
    let started = Instant::now();
    assert!(matches!(
        topic::subscriber::<u8>().wait_for(&t, started),
        Err(Error::NoTopic { .. })
    ));
    assert!(started.elapsed() < Duration::from_secs(1));
    // And `open` says the same at once.
    assert!(matches!(
        topic::subscriber::<u8>().open(&t),
        Err(Error::NoTopic { .. })
    ));
}

#[test]
fn a_successor_publisher_goes_on_in_the_same_ring() {
    let t = name("successor");
    let _c = Cleanup(t.clone());
    let mut first = topic::publisher::<u64>().create(&t).unwrap();
    let mut sub = topic::subscriber::<u64>().open(&t).unwrap();
    let err = topic::publisher::<u64>().create(&t).unwrap_err();
    assert!(
        matches!(err, Error::PublisherAlive { pid, .. } if pid == std::process::id()),
        "{err:?}"
    );
    // A publisher of another type may not take the topic over, even once it is free.
    first.send(&1).unwrap();
    drop(first);
    assert!(matches!(
        topic::publisher::<String>().create(&t),
        Err(Error::TypeMismatch { .. })
    ));
    assert_eq!(sub.recv(), Ok(1));
    assert_eq!(sub.recv(), Err(RecvError::Disconnected));
    let mut second = topic::publisher::<u64>().create(&t).unwrap();
    second.send(&2).unwrap();
    assert_eq!(sub.recv_timeout(LONG), Ok(2));
    assert_eq!(second.published(), 2);
}

#[test]
fn a_killed_publisher_is_succeeded() {
    if role().as_deref() == Some("publisher") {
        let t = std::env::var(common::CHANNEL).unwrap();
        let mut p = topic::publisher::<u64>().create(&t).unwrap();
        p.send(&7).unwrap();
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    let t = name("killed");
    let _c = Cleanup(t.clone());
    let mut child: ChildGuard = common::spawn("a_killed_publisher_is_succeeded", "publisher", &t);
    let mut sub = topic::subscriber::<u64>()
        .start_at(StartAt::Oldest)
        .wait_for(&t, Instant::now() + LONG)
        .unwrap();
    assert_eq!(sub.recv_timeout(LONG), Ok(7));
    let err = topic::publisher::<u64>().create(&t).unwrap_err();
    assert!(matches!(err, Error::PublisherAlive { .. }), "{err:?}");
    child.kill().unwrap();
    child.wait().unwrap();
    // The dead publisher stops the subscriber once what it published is read...
    assert_eq!(
        sub.recv_timeout(LONG),
        Err(shmbus::topic::RecvTimeoutError::Disconnected)
    );
    // ...and the next publisher takes over.
    let mut successor = topic::publisher::<u64>().create(&t).unwrap();
    successor.send(&8).unwrap();
    assert_eq!(sub.recv_timeout(LONG), Ok(8));
}

#[test]
fn list_sees_the_topics_of_this_host() {
    let t = name("list/a b");
    let _c = Cleanup(t.clone());
    let publisher = topic::publisher::<Tick>().create(&t).unwrap();
    let _s1 = topic::subscriber::<Tick>().open(&t).unwrap();
    let _s2 = topic::subscriber::<Tick>()
        .tethered(false)
        .open(&t)
        .unwrap();
    let found = topic::list().unwrap();
    let info = found
        .iter()
        .find(|i| i.name == t)
        .unwrap_or_else(|| panic!("{t} not in {found:?}"));
    assert_eq!(info.segment, topic::segment_name(&t).unwrap());
    assert!(info.type_name.ends_with("Tick"), "{info:?}");
    assert_eq!(info.codec, "bincode");
    assert!(info.publisher_alive);
    assert_eq!(info.publisher_pid, Some(std::process::id()));
    assert_eq!(info.subscribers, 2);
    drop(publisher);
    let found = topic::list().unwrap();
    let info = found.iter().find(|i| i.name == t).unwrap();
    assert!(!info.publisher_alive);
    topic::remove(&t).unwrap();
    assert!(!topic::list().unwrap().iter().any(|i| i.name == t));
    assert!(matches!(topic::remove(&t), Err(Error::NoTopic { .. })));
}

#[test]
fn long_topic_names_are_hashed_and_checked() {
    let t = format!("{}/{}", name("long"), "x".repeat(400));
    let _c = Cleanup(t.clone());
    let mut publisher = topic::publisher::<u8>().create(&t).unwrap();
    let mut sub = topic::subscriber::<u8>().open(&t).unwrap();
    publisher.send(&1).unwrap();
    assert_eq!(sub.recv(), Ok(1));
    assert!(topic::list().unwrap().iter().any(|i| i.name == t));
}

#[test]
fn a_subscriber_takes_part_in_a_select() {
    let t = name("select");
    let _c = Cleanup(t.clone());
    let mut publisher = topic::publisher::<u32>().create(&t).unwrap();
    let mut sub = topic::subscriber::<u32>().open(&t).unwrap();
    let ch = shmbus::channel::<String>().in_process().unwrap();
    let (_tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        publisher.send(&42).unwrap();
        publisher
    });
    let mut sel = shmbus::Select::new();
    let i_rx = sel.recv(&mut rx);
    let i_sub = sel.recv(&mut sub);
    let op = sel.select_timeout(LONG).unwrap();
    assert_ne!(op.index(), i_rx);
    assert_eq!(op.index(), i_sub);
    assert_eq!(op.recv(&mut sub), Ok(42));
    let mut publisher = sender.join().unwrap();
    // A lag is reported through a select as what it is, with the count.
    drop(sub);
    let mut lossy = topic::subscriber::<u32>().tethered(false).open(&t).unwrap();
    for i in 0..10 {
        publisher.try_send(&i).unwrap();
    }
    assert_eq!(lossy.try_recv(), Ok(0));
    for i in 10..100_000 {
        publisher.try_send(&i).unwrap();
    }
    let mut sel = shmbus::Select::new();
    sel.recv(&mut lossy);
    let op = sel.select_timeout(LONG).unwrap();
    assert_eq!(
        op.recv(&mut lossy),
        Err(RecvError::Lagged { missed: 99_998 })
    );
    assert_eq!(lossy.try_recv(), Ok(99_999));
}

#[test]
fn a_blocking_send_ejects_a_stuck_subscriber_after_the_policys_wait() {
    let t = name("untether-blocking");
    let _c = Cleanup(t.clone());
    let mut publisher = topic::publisher::<u64>()
        .capacity_bytes(4096)
        .slow_subscribers(SlowSubscribers::Untether {
            after: Duration::from_millis(100),
        })
        .create(&t)
        .unwrap();
    let mut stuck = topic::subscriber::<u64>().open(&t).unwrap();
    let started = Instant::now();
    // Far more than the ring holds: `send` waits about 100 ms once, then ejects and goes on.
    for i in 0..2000 {
        publisher.send(&i).unwrap();
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(100), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(publisher.ring().ejections(), 1);
    assert_eq!(stuck.try_recv(), Err(TryRecvError::Ejected));
    assert!(!stuck.is_tethered());
}

#[test]
fn a_message_that_does_not_decode_is_an_error_for_that_message_only() {
    let t = name("decode");
    let _c = Cleanup(t.clone());
    let mut publisher = topic::publisher::<String>().create(&t).unwrap();
    let mut sub = topic::subscriber::<String>().open(&t).unwrap();
    // A loan is the ring's own guard: nothing checks that its bytes decode. Bincode reads
    // 0xfd as "a u64 length follows", and 2^40 bytes is past its limit.
    let mut slot = publisher.loan(9).unwrap();
    slot.copy_from_slice(&[0xfd, 0, 0, 0, 0, 0, 1, 0, 0]);
    slot.commit();
    publisher.send(&"next".to_string()).unwrap();
    assert!(matches!(sub.try_recv(), Err(TryRecvError::Decode(_))));
    assert_eq!(sub.try_recv(), Ok("next".to_string()));
    // Too large for the topic: refused at the call.
    let err = publisher.try_send(&"x".repeat(2000)).unwrap_err();
    assert!(
        matches!(
            err,
            TrySendError::TooLarge {
                len: 2003,
                max: 1024
            }
        ),
        "{err:?}"
    );
    assert!(matches!(
        publisher.loan(1025),
        Err(TrySendError::TooLarge { .. })
    ));
}
