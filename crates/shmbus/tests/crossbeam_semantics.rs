//! The semantics of crossbeam-channel's bounded flavor that apply across processes, for both
//! ring flavors: order, `try_*` on full and empty, timeouts, disconnection when every sender
//! or every receiver is gone, `iter` ending at disconnection, `Clone` endpoints (MPMC).
//! The cross-process variants are in `cross_process.rs`.

mod common;

use shmbus::flavor::{Flavor, Mpmc, Spsc};
use shmbus::{
    ChannelBuilder, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};
use std::collections::HashSet;
use std::time::{Duration, Instant};

fn builder<F: Flavor>(capacity: u64) -> ChannelBuilder<u64, F> {
    ChannelBuilder::new().capacity(capacity).max_message(16)
}

/// Runs `f` on a thread and fails the test if it has not finished within `limit` (a hang is a
/// failure, not a stuck test run).
fn within<R: Send + 'static>(limit: Duration, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(f());
    });
    result
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("did not finish within {limit:?}"))
}

fn messages_arrive_in_send_order<F: Flavor>() {
    let ch = builder::<F>(8).in_process().unwrap();
    let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    let sender = std::thread::spawn(move || {
        for i in 0..20_000u64 {
            tx.send(i).unwrap();
        }
    });
    for i in 0..20_000u64 {
        assert_eq!(rx.recv_timeout(Duration::from_secs(20)).unwrap(), i);
    }
    sender.join().unwrap();
}

#[test]
fn spsc_messages_arrive_in_send_order_through_a_small_ring() {
    messages_arrive_in_send_order::<Spsc>();
}

#[test]
fn mpmc_messages_arrive_in_send_order_through_a_small_ring() {
    messages_arrive_in_send_order::<Mpmc>();
}

fn try_send_on_a_full_channel_gives_the_message_back<F: Flavor>() {
    let ch = builder::<F>(4).in_process().unwrap();
    let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    let mut sent = 0u64;
    let rejected = loop {
        match tx.try_send(sent) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 10_000, "a bounded channel never filled");
    };
    assert!(sent >= 4, "room for at least the capacity: {sent}");
    assert!(rejected.is_full(), "{rejected:?}");
    assert!(matches!(rejected, TrySendError::Full(m) if m == sent));
    // One receive makes room for one more.
    assert_eq!(rx.try_recv().unwrap(), 0);
    tx.try_send(sent).unwrap();
    for i in 1..=sent {
        assert_eq!(rx.try_recv().unwrap(), i);
    }
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn spsc_try_send_on_a_full_channel_returns_full_and_the_message() {
    try_send_on_a_full_channel_gives_the_message_back::<Spsc>();
}

#[test]
fn mpmc_try_send_on_a_full_channel_returns_full_and_the_message() {
    try_send_on_a_full_channel_gives_the_message_back::<Mpmc>();
}

fn try_recv_on_an_empty_channel_is_empty<F: Flavor>() {
    let ch = builder::<F>(4).in_process().unwrap();
    let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    tx.send(5).unwrap();
    assert_eq!(rx.try_recv(), Ok(5));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(rx.try_iter().count(), 0);
}

#[test]
fn spsc_try_recv_on_an_empty_channel_returns_empty() {
    try_recv_on_an_empty_channel_is_empty::<Spsc>();
}

#[test]
fn mpmc_try_recv_on_an_empty_channel_returns_empty() {
    try_recv_on_an_empty_channel_is_empty::<Mpmc>();
}

fn timeouts<F: Flavor>() {
    let ch = builder::<F>(2).in_process().unwrap();
    let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    let wait = Duration::from_millis(30);

    let start = Instant::now();
    assert_eq!(rx.recv_timeout(wait), Err(RecvTimeoutError::Timeout));
    assert!(start.elapsed() >= wait, "returned before the timeout");
    let deadline = Instant::now() + wait;
    assert_eq!(rx.recv_deadline(deadline), Err(RecvTimeoutError::Timeout));
    assert!(Instant::now() >= deadline);

    while tx.try_send(1).is_ok() {}
    let start = Instant::now();
    match tx.send_timeout(99, wait) {
        Err(SendTimeoutError::Timeout(99)) => {}
        other => panic!("expected Timeout(99), got {other:?}"),
    }
    assert!(start.elapsed() >= wait, "returned before the timeout");
    let deadline = Instant::now() + wait;
    assert!(tx.send_deadline(98, deadline).unwrap_err().is_timeout());
    assert!(Instant::now() >= deadline);
}

#[test]
fn spsc_send_and_recv_time_out_on_full_and_empty() {
    timeouts::<Spsc>();
}

#[test]
fn mpmc_send_and_recv_time_out_on_full_and_empty() {
    timeouts::<Mpmc>();
}

fn blocking_calls_wake_up<F: Flavor>() {
    let ch = builder::<F>(2).in_process().unwrap();
    let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    // recv_timeout returns a message that arrives while it waits.
    let late = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        tx.send(7).unwrap();
        tx
    });
    assert_eq!(rx.recv_timeout(Duration::from_secs(20)), Ok(7));
    let mut tx = late.join().unwrap();
    // send blocks while the channel is full, until the receiver makes room.
    while tx.try_send(1).is_ok() {}
    let drain = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        rx.recv().unwrap();
        rx
    });
    tx.send_timeout(2, Duration::from_secs(20)).unwrap();
    let mut rx = drain.join().unwrap();
    let rest: Vec<u64> = rx.try_iter().collect();
    assert_eq!(rest.last(), Some(&2));
}

#[test]
fn spsc_blocked_send_and_recv_wake_when_the_other_side_acts() {
    blocking_calls_wake_up::<Spsc>();
}

#[test]
fn mpmc_blocked_send_and_recv_wake_when_the_other_side_acts() {
    blocking_calls_wake_up::<Mpmc>();
}

fn receiver_disconnects_after_draining<F: Flavor>() {
    let ch = builder::<F>(8).in_process().unwrap();
    let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    for i in 0..3 {
        tx.send(i).unwrap();
    }
    drop(tx);
    // Everything sent before the drop is still delivered, then the end is reported.
    for i in 0..3 {
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(i));
    }
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)),
        Err(RecvTimeoutError::Disconnected)
    );
    assert_eq!(
        within(Duration::from_secs(20), move || rx.recv()),
        Err(RecvError::Disconnected)
    );
}

#[test]
fn spsc_receiver_is_disconnected_after_draining_once_the_sender_is_dropped() {
    receiver_disconnects_after_draining::<Spsc>();
}

#[test]
fn mpmc_receiver_is_disconnected_after_draining_once_the_sender_is_dropped() {
    receiver_disconnects_after_draining::<Mpmc>();
}

fn iter_ends_at_disconnection<F: Flavor>() {
    let ch = builder::<F>(4).in_process().unwrap();
    let (mut tx, rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    let sender = std::thread::spawn(move || {
        for i in 0..500u64 {
            tx.send(i).unwrap();
        }
    });
    let got: Vec<u64> = within(Duration::from_secs(20), move || rx.into_iter().collect());
    sender.join().unwrap();
    assert_eq!(got, (0..500).collect::<Vec<_>>());
}

#[test]
fn spsc_iter_ends_when_the_sender_is_dropped() {
    iter_ends_at_disconnection::<Spsc>();
}

#[test]
fn mpmc_iter_ends_when_the_sender_is_dropped() {
    iter_ends_at_disconnection::<Mpmc>();
}

fn sender_disconnects_when_receivers_are_gone<F: Flavor>() {
    let ch = builder::<F>(2).in_process().unwrap();
    let (mut tx, rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    tx.send(1).unwrap();
    drop(rx);
    assert!(matches!(tx.try_send(2), Err(TrySendError::Disconnected(2))));
    assert!(matches!(
        tx.send_timeout(3, Duration::from_secs(5)),
        Err(SendTimeoutError::Disconnected(3))
    ));
    // Even with the ring full, a blocking send does not wait for a receiver that is gone.
    let result = within(Duration::from_secs(20), move || {
        let mut last = Ok(());
        for i in 0..16 {
            last = tx.send(i);
            if last.is_err() {
                break;
            }
        }
        last
    });
    assert!(matches!(result, Err(SendError::Disconnected(_))));
}

#[test]
fn spsc_send_fails_with_the_message_once_the_receiver_is_dropped() {
    sender_disconnects_when_receivers_are_gone::<Spsc>();
}

#[test]
fn mpmc_send_fails_with_the_message_once_every_receiver_is_dropped() {
    sender_disconnects_when_receivers_are_gone::<Mpmc>();
}

#[test]
fn mpmc_disconnects_only_when_the_last_cloned_sender_is_dropped() {
    let ch = builder::<Mpmc>(8).in_process().unwrap();
    let (tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    let mut tx2 = tx.clone();
    drop(tx);
    tx2.send(1).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(1));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    drop(tx2);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)),
        Err(RecvTimeoutError::Disconnected)
    );
}

#[test]
fn mpmc_cloned_receivers_share_the_messages_each_exactly_once() {
    let ch = builder::<Mpmc>(16).in_process().unwrap();
    let (mut tx, rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    const N: u64 = 20_000;
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let mut rx = rx.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    match rx.recv_timeout(Duration::from_secs(20)) {
                        Ok(u64::MAX) => return got,
                        Ok(v) => got.push(v),
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    drop(rx);
    for i in 0..N {
        tx.send(i).unwrap();
    }
    for _ in 0..3 {
        tx.send(u64::MAX).unwrap();
    }
    let mut seen = HashSet::new();
    for w in workers {
        let got = w.join().unwrap();
        // Each receiver sees the sender's messages in order.
        assert!(got.windows(2).all(|p| p[0] < p[1]));
        for v in got {
            assert!(seen.insert(v), "{v} received twice");
        }
    }
    assert_eq!(seen.len() as u64, N);
}

#[test]
fn mpmc_cloned_senders_are_new_endpoints_whose_messages_all_arrive_in_their_order() {
    let ch = builder::<Mpmc>(16).in_process().unwrap();
    let (tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    const PER: u64 = 5_000;
    let senders: Vec<_> = (0..3u64)
        .map(|k| {
            let mut tx = tx.try_clone().unwrap();
            std::thread::spawn(move || {
                for i in 0..PER {
                    tx.send(k << 32 | i).unwrap();
                }
            })
        })
        .collect();
    let mut next = [0u64; 3];
    for _ in 0..3 * PER {
        let v = rx.recv_timeout(Duration::from_secs(20)).unwrap();
        let (k, i) = ((v >> 32) as usize, v & 0xffff_ffff);
        assert_eq!(i, next[k], "sender {k} out of order");
        next[k] += 1;
    }
    for s in senders {
        s.join().unwrap();
    }
    assert_eq!(next, [PER; 3]);
}

#[test]
fn an_spsc_channel_attaches_one_sender_and_one_receiver_at_a_time() {
    let ch = builder::<Spsc>(4).in_process().unwrap();
    let tx = ch.sender().unwrap();
    let err = ch.sender().unwrap_err();
    assert!(
        matches!(
            err,
            shmbus::Error::Ring(shmbus::ring::Error::AlreadyAttached { .. })
        ),
        "{err}"
    );
    drop(tx);
    let _tx = ch.sender().unwrap();
    let _rx = ch.receiver().unwrap();
    assert!(ch.receiver().is_err());
}

#[test]
fn a_channel_opened_by_name_reaches_its_creator_in_both_directions_of_ownership() {
    let name = common::unique_name("byname");
    // The creator receives; the opener sends.
    let mut rx = builder::<Spsc>(4).create_receiver(&name).unwrap();
    let mut tx = builder::<Spsc>(4).open_sender(&name).unwrap();
    tx.send(41).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(41));
    drop((tx, rx));
    // Everything the creator attached is gone: the name is unlinked.
    assert!(builder::<Spsc>(4).open(&name).is_err());

    let name = common::unique_name("byname-mpmc");
    let mut tx = builder::<Mpmc>(4).create_sender(&name).unwrap();
    let mut rx = builder::<Mpmc>(4).open_receiver(&name).unwrap();
    tx.send(42).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(42));
}
