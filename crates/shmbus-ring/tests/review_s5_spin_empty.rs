//! The adversarial review's tests of the empty poll, written against an inline fast path (D76,
//! since reverted) and kept: a consumer that only ever spins on non-blocking pops (never
//! blocks) must still notice a `SIGKILLed` producer process within its probe interval, and a
//! producer's clean detach must turn the very next empty poll into `Disconnected`
//! (crossbeam's `try_recv` contract), on every non-blocking read path, whichever poll of the
//! 16 it falls on. Also a consumer process `SIGKILLed` while it holds a claim (written against
//! the lazy head hint of D73, also reverted).
#![cfg(not(loom))]

use shmbus_ring::{Kind, Mpmc, MpmcConfig, PopError, Ring, SegmentOptions, Spsc, SpscConfig};
use shmbus_testkit::{respawn, role, unique_name, ChildGuard};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

const NAME: &str = "SHMBUS_REVIEW_S5_SPIN";

/// The four non-blocking read paths, each reduced to "a message, or this error".
fn poll<K: Kind>(rx: &mut shmbus_ring::Consumer<K>, path: usize) -> Result<(), PopError> {
    let mut buf = vec![0u8; rx.max_message()];
    match path {
        0 => rx.try_pop(&mut buf).map(drop),
        1 => rx.try_pop_with(|_| ()),
        2 => match rx.try_pop_batch(4, |_| ()) {
            Ok(0) => Err(PopError::Empty),
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        },
        _ => match rx.read() {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(PopError::Empty),
            Err(e) => Err(e),
        },
    }
}

/// A clean drop of the last producer after `k` empty polls (every `k` of 0..40, so every
/// phase of the 16-poll cycle): the next poll reports `Disconnected`, never `Empty`.
fn clean_drop<K: Kind>(ring: impl Fn() -> Ring<K>) {
    for path in 0..4 {
        for k in 0..40 {
            let ring = ring();
            let tx = ring.producer().unwrap();
            let mut rx = ring.consumer().unwrap();
            for _ in 0..k {
                assert_eq!(poll(&mut rx, path), Err(PopError::Empty));
            }
            drop(tx);
            assert_eq!(
                poll(&mut rx, path),
                Err(PopError::Disconnected),
                "path {path}, after {k} empty polls"
            );
        }
    }
}

#[test]
fn review_s5_a_dropped_producer_disconnects_the_next_spinning_poll() {
    clean_drop(|| Ring::<Spsc>::in_heap(&SpscConfig::new(256)).unwrap());
    clean_drop(|| Ring::<Mpmc>::in_heap(&MpmcConfig::new(64, 8)).unwrap());
}

/// The producer is a child process that attaches, sends nothing and sleeps; it is `SIGKILLed`
/// while the consumer spins on `try_pop` (never a blocking call): the consumer must report
/// `Disconnected` within a few probe intervals.
fn sigkill<K: Kind>(test: &str, make: impl Fn(&str) -> Ring<K>, open: impl Fn(&str) -> Ring<K>) {
    if role().is_some() {
        let ring = open(&std::env::var(NAME).unwrap());
        let _tx = ring.producer().unwrap();
        println!("attached");
        std::thread::sleep(Duration::from_secs(120));
        return;
    }
    for path in 0..4 {
        let name = unique_name("rv-spin");
        let ring = make(&name);
        let mut rx = ring.consumer().unwrap();
        rx.set_probe_interval(Duration::from_millis(5));
        let mut child = ChildGuard::spawn(
            respawn(test, "producer")
                .env(NAME, &name)
                .stdout(Stdio::piped()),
        );
        // Wait until the child is attached: it says so once its producer is registered.
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        while !line.contains("attached") {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "the child exited");
        }
        // Spin a while with the producer alive: Empty only.
        for _ in 0..1000 {
            assert_eq!(poll(&mut rx, path), Err(PopError::Empty));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let killed = Instant::now();
        let mut polls = 0u64;
        loop {
            match poll(&mut rx, path) {
                Err(PopError::Empty) => {
                    polls += 1;
                    assert!(
                        killed.elapsed() < Duration::from_secs(5),
                        "path {path}: a spinning consumer missed a `SIGKILLed` producer for 5 s \
                         ({polls} polls)"
                    );
                }
                Err(PopError::Disconnected) => break,
                other => panic!("path {path}: {other:?}"),
            }
        }
    }
}

#[test]
fn review_s5_spinning_spsc_consumer_notices_a_sigkilled_producer() {
    sigkill(
        "review_s5_spinning_spsc_consumer_notices_a_sigkilled_producer",
        |n| {
            Ring::<Spsc>::create_shm(n, &SpscConfig::new(4096), &SegmentOptions::default()).unwrap()
        },
        |n| Ring::<Spsc>::open_shm(n, &SegmentOptions::default()).unwrap(),
    );
}

#[test]
fn review_s5_spinning_mpmc_consumer_notices_a_sigkilled_producer() {
    sigkill(
        "review_s5_spinning_mpmc_consumer_notices_a_sigkilled_producer",
        |n| {
            Ring::<Mpmc>::create_shm(n, &MpmcConfig::new(64, 8), &SegmentOptions::default())
                .unwrap()
        },
        |n| Ring::<Mpmc>::open_shm(n, &SegmentOptions::default()).unwrap(),
    );
}

/// A consumer process takes messages, then dies (SIGKILL) holding one more in a read guard.
/// `len` counts neither its taken messages nor the one it held; a new consumer walks over the
/// dead claim to the rest, in order; the dead claim is repaired (a whole lap fits again).
#[test]
fn review_s5_a_consumer_killed_holding_a_claim_loses_only_that_message() {
    const TEST: &str = "review_s5_a_consumer_killed_holding_a_claim_loses_only_that_message";
    if role().is_some() {
        let ring =
            Ring::<Mpmc>::open_shm(&std::env::var(NAME).unwrap(), &SegmentOptions::default())
                .unwrap();
        let mut rx = ring.consumer().unwrap();
        let mut buf = [0u8; 16];
        for i in 0u8..5 {
            assert_eq!(rx.try_pop(&mut buf), Ok(1));
            assert_eq!(buf[0], i);
        }
        let held = rx.read().unwrap().unwrap();
        assert_eq!(held[0], 5);
        println!("holding");
        std::thread::sleep(Duration::from_secs(120));
        return;
    }
    let name = unique_name("rv-lag-kill");
    let ring =
        Ring::<Mpmc>::create_shm(&name, &MpmcConfig::new(64, 16), &SegmentOptions::default())
            .unwrap();
    let raw = shmbus_testkit::hostile::raw_view(ring.segment()).unwrap();
    let hint = || {
        raw.atomic_u64(shmbus_ring::layout::CONSUMER_BLOCK as usize)
            .unwrap()
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    let mut tx = ring.producer().unwrap();
    for i in 0u8..10 {
        tx.try_push(&[i]).unwrap();
    }
    let mut child = ChildGuard::spawn(
        respawn(TEST, "consumer")
            .env(NAME, &name)
            .stdout(Stdio::piped()),
    );
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("holding") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "the child exited");
    }
    assert_eq!(
        hint(),
        6,
        "the child raised the head hint past each claim (M10)"
    );
    assert_eq!(
        ring.len(),
        Some(4),
        "taken and held messages are not in the ring"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(ring.len(), Some(4));
    let mut rx = ring.consumer().unwrap();
    rx.set_probe_interval(Duration::from_millis(5));
    let mut buf = [0u8; 16];
    for i in 6u8..10 {
        assert_eq!(rx.try_pop(&mut buf), Ok(1));
        assert_eq!(buf[0], i);
    }
    assert_eq!(ring.len(), Some(0));
    // Empty polls probe, reap the dead consumer and repair its claim of position 5: its
    // slot becomes free for position 69 (PROTOCOL §5.4).
    let stride = ring.header().data_len / 64;
    let slot5 = raw
        .atomic_u64((shmbus_ring::layout::DATA_OFFSET + 5 * stride) as usize)
        .unwrap();
    let start = Instant::now();
    while slot5.load(std::sync::atomic::Ordering::SeqCst) != 69 << 8 {
        assert_eq!(rx.try_pop(&mut buf), Err(PopError::Empty));
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the dead consumer's claim was never repaired: {:#x}",
            slot5.load(std::sync::atomic::Ordering::SeqCst)
        );
    }
    for i in 0u8..64 {
        tx.try_push(&[100 + i]).unwrap();
    }
    for i in 0u8..64 {
        assert_eq!(rx.try_pop(&mut buf), Ok(1), "{i}");
        assert_eq!(buf[0], 100 + i);
    }
    assert_eq!(rx.try_pop(&mut buf), Err(PopError::Empty));
}
