//! Disconnection by drop, in one process and across processes, for both ring kinds; blocked
//! callers woken by a detach; a `SIGKILLed` peer process; the stale-segment API. (SIGKILL of
//! either side at every step of the protocol is in `liveness_crash_points.rs`; the endpoint
//! table itself in `liveness_endpoints.rs`.)
#![cfg(not(loom))]

use shmbus_ring::liveness::{self, Vitality};
use shmbus_ring::{
    MpmcConfig, MpmcRing, PopError, PushError, Role, SegmentOptions, SpscConfig, SpscRing,
    WaitStrategy,
};
use shmbus_testkit::{respawn, role, unique_name, ChildGuard};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn spsc_consumer_drains_then_sees_disconnected_when_the_producer_drops() {
    let ring = SpscRing::in_heap(&SpscConfig::new(1024)).unwrap();
    let mut rx = ring.consumer().unwrap();
    let mut buf = [0u8; 16];
    // No producer ever attached: waiting for one, not disconnected.
    assert_eq!(rx.try_pop(&mut buf), Err(PopError::Empty));
    let mut tx = ring.producer().unwrap();
    for i in 0u8..3 {
        tx.try_push(&[i]).unwrap();
    }
    drop(tx);
    for i in 0u8..3 {
        assert_eq!(rx.try_pop(&mut buf), Ok(1));
        assert_eq!(buf[0], i, "committed records survive the producer's drop");
    }
    assert_eq!(rx.try_pop(&mut buf), Err(PopError::Disconnected));
    assert_eq!(rx.read().err(), Some(PopError::Disconnected));
    // A new producer ends the disconnection.
    let mut tx = ring.producer().unwrap();
    assert_eq!(rx.try_pop(&mut buf), Err(PopError::Empty));
    tx.try_push(b"x").unwrap();
    assert_eq!(rx.try_pop(&mut buf), Ok(1));
}

#[test]
fn spsc_producer_sees_disconnected_when_the_consumer_drops_and_not_before_one_attached() {
    let ring = SpscRing::in_heap(&SpscConfig::new(1024)).unwrap();
    let mut tx = ring.producer().unwrap();
    tx.try_push(b"before any consumer").unwrap();
    let rx = ring.consumer().unwrap();
    tx.try_push(b"while attached").unwrap();
    drop(rx);
    assert_eq!(tx.try_push(b"gone"), Err(PushError::Disconnected));
    assert_eq!(tx.try_push_batch(&[b"gone"]), Err(PushError::Disconnected));
    assert_eq!(tx.reserve(4).err(), Some(PushError::Disconnected));
    assert_eq!(
        tx.push_timeout(b"gone", Duration::from_secs(5)),
        Err(PushError::Disconnected)
    );
    let _rx = ring.consumer().unwrap();
    tx.try_push(b"back").unwrap();
}

#[test]
fn mpmc_consumers_see_disconnected_only_when_every_producer_is_gone() {
    let ring = MpmcRing::in_heap(&MpmcConfig::new(8, 16)).unwrap();
    let mut rx = ring.consumer().unwrap();
    let mut buf = Vec::new();
    let (mut a, mut b) = (ring.producer().unwrap(), ring.producer().unwrap());
    a.try_push(b"a").unwrap();
    b.try_push(b"b").unwrap();
    drop(a);
    assert_eq!(rx.try_pop_vec(&mut buf), Ok(1));
    assert_eq!(rx.try_pop_vec(&mut buf), Ok(1));
    assert_eq!(
        rx.try_pop_vec(&mut buf),
        Err(PopError::Empty),
        "one producer is still attached"
    );
    b.try_push(b"last").unwrap();
    drop(b);
    assert_eq!(rx.try_pop_vec(&mut buf), Ok(4), "drained first");
    assert_eq!(buf, b"last");
    assert_eq!(rx.try_pop_vec(&mut buf), Err(PopError::Disconnected));
    assert_eq!(rx.read().err(), Some(PopError::Disconnected));
    assert_eq!(
        rx.try_pop_batch(4, |_| {}).err(),
        Some(PopError::Disconnected)
    );
}

#[test]
fn mpmc_producers_see_disconnected_only_when_every_consumer_is_gone() {
    let ring = MpmcRing::in_heap(&MpmcConfig::new(8, 16)).unwrap();
    let mut tx = ring.producer().unwrap();
    let (c1, c2) = (ring.consumer().unwrap(), ring.consumer().unwrap());
    drop(c1);
    tx.try_push(b"c2 is here").unwrap();
    drop(c2);
    assert_eq!(tx.try_push(b"x"), Err(PushError::Disconnected));
    assert_eq!(tx.try_push_all(&[b"x"]), Err(PushError::Disconnected));
    assert_eq!(tx.try_push_batch(&[b"x"]), Err(PushError::Disconnected));
    assert_eq!(tx.reserve(1).err(), Some(PushError::Disconnected));
}

/// A receiver blocked on the futex (no spinning) is woken by the producer's drop and reports
/// `Disconnected` long before its timeout.
#[test]
fn a_blocked_pop_wakes_with_disconnected_when_the_last_producer_drops() {
    let spsc = SpscRing::in_heap(&SpscConfig::new(1024)).unwrap();
    let mpmc = MpmcRing::in_heap(&MpmcConfig::new(8, 16)).unwrap();
    let (tx1, tx2) = (spsc.producer().unwrap(), mpmc.producer().unwrap());
    let mut rx1 = spsc.consumer().unwrap();
    let mut rx2 = mpmc.consumer().unwrap();
    let park = WaitStrategy::Block {
        spin: Duration::ZERO,
    };
    rx1.set_wait_strategy(park);
    rx2.set_wait_strategy(park);
    // Probe rarely: the wake-up must come from the detach, not from a periodic check.
    rx1.set_probe_interval(Duration::from_secs(600));
    rx2.set_probe_interval(Duration::from_secs(600));
    let t1 = std::thread::spawn(move || {
        let start = Instant::now();
        let r = rx1.pop_timeout(&mut [0u8; 16], Duration::from_secs(60));
        (r, start.elapsed())
    });
    let t2 = std::thread::spawn(move || {
        let start = Instant::now();
        let r = rx2.pop_timeout(&mut [0u8; 16], Duration::from_secs(60));
        (r, start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(100));
    drop(tx1);
    drop(tx2);
    for t in [t1, t2] {
        let (r, took) = t.join().unwrap();
        assert_eq!(r, Err(PopError::Disconnected));
        assert!(
            took < Duration::from_secs(30),
            "woken by the drop, not the timeout"
        );
    }
}

#[test]
fn a_blocked_push_wakes_with_disconnected_when_the_last_consumer_drops() {
    let ring = MpmcRing::in_heap(&MpmcConfig::new(2, 16)).unwrap();
    let mut tx = ring.producer().unwrap();
    let rx = ring.consumer().unwrap();
    tx.try_push(b"1").unwrap();
    tx.try_push(b"2").unwrap();
    tx.set_wait_strategy(WaitStrategy::Block {
        spin: Duration::ZERO,
    });
    tx.set_probe_interval(Duration::from_secs(600));
    let t = std::thread::spawn(move || tx.push_timeout(b"3", Duration::from_secs(60)));
    std::thread::sleep(Duration::from_millis(100));
    drop(rx);
    assert_eq!(t.join().unwrap(), Err(PushError::Disconnected));
}

// ---------------------------------------------------------------------------------------------
// Across processes: the peer is the test binary, re-spawned.
// ---------------------------------------------------------------------------------------------

/// The environment variable naming the ring a child opens or creates.
const NAME: &str = "SHMBUS_DISCONNECT_NAME";

/// This test binary, re-spawned to run `test` in `role` on the ring `name`, output discarded.
fn spawn(test: &str, role: &str, name: &str) -> ChildGuard {
    ChildGuard::spawn(respawn(test, role).env(NAME, name).stdout(Stdio::null()))
}

#[test]
fn a_producer_process_that_exits_disconnects_a_blocked_consumer_after_the_drain() {
    const TEST: &str =
        "a_producer_process_that_exits_disconnects_a_blocked_consumer_after_the_drain";
    if role().is_some() {
        let ring =
            MpmcRing::open_shm(&std::env::var(NAME).unwrap(), &SegmentOptions::default()).unwrap();
        let mut tx = ring.producer().unwrap();
        for i in 0u32..1000 {
            tx.push_timeout(&i.to_le_bytes(), Duration::from_secs(30))
                .unwrap();
        }
        return;
    }
    let name = unique_name("disc-exit");
    let ring =
        MpmcRing::create_shm(&name, &MpmcConfig::new(16, 8), &SegmentOptions::default()).unwrap();
    let mut rx = ring.consumer().unwrap();
    let mut child = spawn(TEST, "producer", &name);
    let mut next = 0u32;
    let mut buf = [0u8; 8];
    loop {
        match rx.pop_timeout(&mut buf, Duration::from_secs(30)) {
            Ok(n) => {
                assert_eq!(u32::from_le_bytes(buf[..n].try_into().unwrap()), next);
                next += 1;
            }
            Err(PopError::Disconnected) => break,
            Err(e) => panic!("consumer: {e} after {next}"), // the guard kills the child
        }
    }
    assert_eq!(
        next, 1000,
        "everything committed was received before Disconnected"
    );
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_segment_whose_creator_and_endpoints_died_is_reported_stale_and_removed() {
    const TEST: &str = "a_segment_whose_creator_and_endpoints_died_is_reported_stale_and_removed";
    if role().is_some() {
        let name = std::env::var(NAME).unwrap();
        let ring = SpscRing::create_shm(&name, &SpscConfig::new(1024), &SegmentOptions::default())
            .unwrap();
        ring.segment().keep();
        let _tx = ring.producer().unwrap();
        println!("ready");
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    let name = unique_name("disc-stale");
    let mut child = ChildGuard::spawn(
        respawn(TEST, "creator")
            .env(NAME, &name)
            .stdout(Stdio::piped()),
    );
    assert!(child.await_line("ready"), "creator did not start");
    // Alive: its producer is live, and so is the creator.
    let status = liveness::inspect(&name).unwrap();
    assert_eq!(status.endpoints.len(), 1);
    assert_eq!(status.endpoints[0].role, Role::Producer);
    assert_eq!(status.endpoints[0].vitality, Vitality::Alive);
    assert!(status.endpoints[0].locked, "shm endpoints hold an OFD lock");
    assert_eq!(status.creator, Vitality::Alive);
    assert!(!liveness::remove_if_stale(&name).unwrap().1);
    // SIGKILL: the kernel drops the lock; the segment is stale and gets removed.
    child.kill().unwrap();
    child.wait().unwrap();
    let status = liveness::inspect(&name).unwrap();
    assert_eq!(status.endpoints[0].vitality, Vitality::Dead);
    assert_eq!(status.creator, Vitality::Dead);
    assert!(status.is_stale());
    assert!(liveness::scan("shmbus-disc-stale-")
        .iter()
        .any(|(n, s)| n == &name
            && s.as_ref()
                .is_ok_and(shmbus_ring::liveness::SegmentStatus::is_stale)));
    let (_, removed) = liveness::remove_if_stale(&name).unwrap();
    assert!(removed);
    assert!(
        liveness::inspect(&name).is_err(),
        "the name is gone after removal"
    );
}

#[test]
fn a_sigkilled_producer_process_disconnects_the_consumer_after_the_drain() {
    const TEST: &str = "a_sigkilled_producer_process_disconnects_the_consumer_after_the_drain";
    if role().is_some() {
        let ring =
            SpscRing::open_shm(&std::env::var(NAME).unwrap(), &SegmentOptions::default()).unwrap();
        let mut tx = ring.producer().unwrap();
        for i in 0u32..100 {
            tx.push_timeout(&i.to_le_bytes(), Duration::from_secs(30))
                .unwrap();
        }
        // Still attached, never detaching: only death ends this producer.
        std::thread::sleep(Duration::from_secs(120));
        return;
    }
    let name = unique_name("disc-kill");
    let ring =
        SpscRing::create_shm(&name, &SpscConfig::new(4096), &SegmentOptions::default()).unwrap();
    let mut rx = ring.consumer().unwrap();
    rx.set_probe_interval(Duration::from_millis(5));
    let mut child = spawn(TEST, "producer", &name);
    let mut buf = [0u8; 8];
    for i in 0u32..100 {
        let n = rx.pop_timeout(&mut buf, Duration::from_secs(30)).unwrap();
        assert_eq!(u32::from_le_bytes(buf[..n].try_into().unwrap()), i);
    }
    // The producer is alive and attached: empty, not disconnected.
    assert_eq!(
        rx.pop_timeout(&mut buf, Duration::from_millis(50)),
        Err(PopError::Timeout)
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = Instant::now();
    // A blocked pop notices the death within its probe interval and reports it.
    assert_eq!(
        rx.pop_timeout(&mut buf, Duration::from_secs(10)),
        Err(PopError::Disconnected)
    );
    assert!(killed.elapsed() < Duration::from_secs(5));
    // A new producer takes over the dead one's role.
    let mut tx = ring.producer().unwrap();
    tx.try_push(b"again").unwrap();
    assert_eq!(rx.try_pop(&mut buf), Ok(5));
}
