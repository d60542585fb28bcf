//! Waiting: blocking calls. An idle blocked receiver costs (almost) no CPU and wakes on the
//! next message, across processes too (the futex must be the shared, non-private kind);
//! timeouts return no earlier than asked and soon after; no wake-up is ever lost.
#![cfg(not(loom))]

use nix::time::{clock_gettime, ClockId};
use shmbus_ring::{
    MpmcConfig, MpmcRing, PopError, PushError, SegmentOptions, SpscConfig, SpscRing, WaitStrategy,
};
use shmbus_testkit::{respawn, role, unique_name, ChildGuard};
use std::time::{Duration, Instant};

fn cpu(clock: ClockId) -> Duration {
    Duration::from(clock_gettime(clock).unwrap())
}

const IDLE: Duration = Duration::from_millis(1500);

#[test]
fn an_idle_blocked_spsc_consumer_uses_under_one_percent_of_a_core_and_wakes_on_the_next_message() {
    let ring = SpscRing::in_heap(&SpscConfig::new(4096)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let waiter = std::thread::spawn(move || {
        let before = cpu(ClockId::CLOCK_THREAD_CPUTIME_ID);
        let started = Instant::now();
        let mut buf = [0u8; 16];
        let n = rx.pop_timeout(&mut buf, Duration::from_secs(30)).unwrap();
        (
            buf[..n].to_vec(),
            started.elapsed(),
            cpu(ClockId::CLOCK_THREAD_CPUTIME_ID)
                .checked_sub(before)
                .unwrap(),
        )
    });
    std::thread::sleep(IDLE);
    tx.try_push(b"wake up").unwrap();
    let (msg, waited, used) = waiter.join().unwrap();
    assert_eq!(msg, b"wake up");
    assert!(
        waited >= IDLE.checked_sub(Duration::from_millis(50)).unwrap(),
        "returned after {waited:?}"
    );
    assert!(
        used.as_secs_f64() < 0.01 * waited.as_secs_f64(),
        "used {used:?} of CPU over {waited:?}"
    );
}

#[test]
fn an_idle_blocked_mpmc_consumer_uses_under_one_percent_of_a_core_and_wakes_on_the_next_message() {
    let ring = MpmcRing::in_heap(&MpmcConfig::new(16, 16)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let waiter = std::thread::spawn(move || {
        let before = cpu(ClockId::CLOCK_THREAD_CPUTIME_ID);
        let started = Instant::now();
        let msg = rx.pop_with_deadline(None, <[u8]>::to_vec).unwrap();
        (
            msg,
            started.elapsed(),
            cpu(ClockId::CLOCK_THREAD_CPUTIME_ID)
                .checked_sub(before)
                .unwrap(),
        )
    });
    std::thread::sleep(IDLE);
    tx.try_push(b"wake up").unwrap();
    let (msg, waited, used) = waiter.join().unwrap();
    assert_eq!(msg, b"wake up");
    assert!(
        used.as_secs_f64() < 0.01 * waited.as_secs_f64(),
        "used {used:?} of CPU over {waited:?}"
    );
}

#[test]
fn a_blocked_consumer_in_another_process_is_woken_by_the_shared_futex() {
    const NAME: &str = "SHMBUS_BLOCKING_NAME";
    const TEST: &str = "a_blocked_consumer_in_another_process_is_woken_by_the_shared_futex";
    if role().is_some() {
        let name = std::env::var(NAME).unwrap();
        let ring = SpscRing::open_shm(&name, &SegmentOptions::default()).unwrap();
        let mut rx = ring.consumer().unwrap();
        let before = cpu(ClockId::CLOCK_PROCESS_CPUTIME_ID);
        let started = Instant::now();
        let msg = rx.pop_with_deadline(Instant::now().checked_add(Duration::from_secs(20)), |m| {
            m.to_vec()
        });
        let (waited, used) = (
            started.elapsed(),
            cpu(ClockId::CLOCK_PROCESS_CPUTIME_ID)
                .checked_sub(before)
                .unwrap(),
        );
        assert_eq!(msg.unwrap(), b"across processes");
        assert!(
            used.as_secs_f64() < 0.01 * waited.as_secs_f64(),
            "child used {used:?} over {waited:?}"
        );
        return;
    }
    let name = unique_name("blocking");
    let ring =
        SpscRing::create_shm(&name, &SpscConfig::new(4096), &SegmentOptions::default()).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut child = ChildGuard::spawn(respawn(TEST, "consumer").env(NAME, &name));
    // Wait until the child has attached and gone to sleep, then publish.
    std::thread::sleep(IDLE);
    tx.try_push(b"across processes").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        // the guard kills it
        assert!(Instant::now() <= deadline, "the child was never woken");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "child: {status}");
}

#[test]
fn timeouts_return_no_earlier_than_asked_and_within_a_few_milliseconds_after() {
    let ring = SpscRing::in_heap(&SpscConfig::new(64)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let mut buf = [0u8; 64];
    for timeout in [
        Duration::from_millis(1),
        Duration::from_millis(30),
        Duration::from_millis(120),
    ] {
        let t = Instant::now();
        assert_eq!(rx.pop_timeout(&mut buf, timeout), Err(PopError::Timeout));
        let took = t.elapsed();
        assert!(took >= timeout, "pop returned after {took:?} < {timeout:?}");
        assert!(
            took < timeout + Duration::from_millis(25),
            "pop returned {took:?} for {timeout:?}"
        );
    }
    tx.try_push(&[0; 40]).unwrap(); // full: 48 + 8 of 64 bytes
    let timeout = Duration::from_millis(50);
    let t = Instant::now();
    assert_eq!(tx.push_timeout(&[0; 40], timeout), Err(PushError::Timeout));
    let took = t.elapsed();
    assert!(
        took >= timeout && took < timeout + Duration::from_millis(25),
        "push took {took:?}"
    );

    let ring = MpmcRing::in_heap(&MpmcConfig::new(2, 8)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let t = Instant::now();
    assert_eq!(rx.pop_timeout(&mut buf, timeout), Err(PopError::Timeout));
    assert!(t.elapsed() >= timeout);
    tx.try_push_batch(&[&b"a"[..], b"b"]).unwrap();
    let t = Instant::now();
    assert_eq!(tx.push_timeout(b"c", timeout), Err(PushError::Timeout));
    assert!(t.elapsed() >= timeout);
}

/// Ping-pong where both sides always sleep (no spin phase): a lost wake-up would stall a side
/// until its timeout and fail the test.
fn ping_pong_never_loses_a_wake_up<T: Send + 'static>(
    make: impl Fn() -> (T, T, T, T),
    push: fn(&mut T, &[u8]) -> Result<(), PushError>,
    pop: fn(&mut T, &mut [u8]) -> Result<usize, PopError>,
) {
    let (mut ping_tx, mut ping_rx, mut pong_tx, mut pong_rx) = make();
    const N: u32 = 20_000;
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 16];
        for _ in 0..N {
            let n = pop(&mut ping_rx, &mut buf).expect("echo side: lost wake-up");
            push(&mut pong_tx, &buf[..n]).unwrap();
        }
    });
    let mut buf = [0u8; 16];
    for i in 0..N {
        push(&mut ping_tx, &i.to_le_bytes()).unwrap();
        let n = pop(&mut pong_rx, &mut buf).expect("ping side: lost wake-up");
        assert_eq!(&buf[..n], &i.to_le_bytes());
    }
    echo.join().unwrap();
}

#[test]
fn blocking_spsc_ping_pong_never_loses_a_wake_up() {
    enum End {
        Tx(shmbus_ring::Producer),
        Rx(shmbus_ring::Consumer),
    }
    let sleep_at_once = WaitStrategy::Block {
        spin: Duration::ZERO,
    };
    ping_pong_never_loses_a_wake_up(
        || {
            let pair = || {
                let r = SpscRing::in_heap(&SpscConfig::new(1024)).unwrap();
                let (mut p, mut c) = (r.producer().unwrap(), r.consumer().unwrap());
                p.set_wait_strategy(sleep_at_once);
                c.set_wait_strategy(sleep_at_once);
                (End::Tx(p), End::Rx(c))
            };
            let (a, b) = pair();
            let (c, d) = pair();
            (a, b, c, d)
        },
        |e, m| match e {
            End::Tx(p) => p.push(m),
            End::Rx(_) => unreachable!(),
        },
        |e, b| match e {
            End::Rx(c) => c.pop_timeout(b, Duration::from_secs(10)),
            End::Tx(_) => unreachable!(),
        },
    );
}

#[test]
fn blocking_mpmc_ping_pong_never_loses_a_wake_up() {
    enum End {
        Tx(shmbus_ring::MpmcProducer),
        Rx(shmbus_ring::MpmcConsumer),
    }
    let sleep_at_once = WaitStrategy::Block {
        spin: Duration::ZERO,
    };
    ping_pong_never_loses_a_wake_up(
        || {
            let pair = || {
                let r = MpmcRing::in_heap(&MpmcConfig::new(4, 16)).unwrap();
                let (mut p, mut c) = (r.producer().unwrap(), r.consumer().unwrap());
                p.set_wait_strategy(sleep_at_once);
                c.set_wait_strategy(sleep_at_once);
                (End::Tx(p), End::Rx(c))
            };
            let (a, b) = pair();
            let (c, d) = pair();
            (a, b, c, d)
        },
        |e, m| match e {
            End::Tx(p) => p.push(m),
            End::Rx(_) => unreachable!(),
        },
        |e, b| match e {
            End::Rx(c) => c.pop_timeout(b, Duration::from_secs(10)),
            End::Tx(_) => unreachable!(),
        },
    );
}

#[test]
fn a_producer_blocked_on_a_full_ring_wakes_when_space_is_freed() {
    // 32-byte records in a 128-byte ring: three fit (the fourth needs the word after it free).
    let ring = SpscRing::in_heap(&SpscConfig::new(128)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    for i in 0..3u8 {
        tx.try_push(&[i; 24]).unwrap();
    }
    assert_eq!(tx.try_push(&[3; 24]), Err(PushError::Full));
    let blocked = std::thread::spawn(move || {
        let t = Instant::now();
        tx.push_timeout(&[3; 24], Duration::from_secs(20)).unwrap();
        t.elapsed()
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut buf = [0u8; 64];
    assert_eq!(rx.try_pop(&mut buf), Ok(24));
    let waited = blocked.join().unwrap();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    for i in 1..4u8 {
        assert_eq!(rx.pop_timeout(&mut buf, Duration::from_secs(5)), Ok(24));
        assert_eq!(buf[0], i);
    }
}

#[test]
fn a_ring_without_notification_still_delivers_to_a_blocking_consumer_by_polling() {
    let ring = SpscRing::in_heap(&SpscConfig::new(4096).notify(false)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let waiter = std::thread::spawn(move || rx.pop_with_deadline(None, <[u8]>::to_vec).unwrap());
    std::thread::sleep(Duration::from_millis(100));
    tx.try_push(b"polled").unwrap();
    assert_eq!(waiter.join().unwrap(), b"polled");
}
