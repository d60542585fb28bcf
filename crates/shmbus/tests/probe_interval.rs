//! The probe interval a channel's endpoints use to notice a peer process that died without
//! detaching (SIGKILL): set on the builder for every endpoint, and per endpoint.
//!
//! Each test runs two phases, each against a child process that is killed with SIGKILL:
//! - the builder's interval is short (5 ms): a call blocked in `recv()` / `send()` when the
//!   peer is killed returns `Disconnected`;
//! - the builder's interval is an hour: after the probe a waiting endpoint makes at once (while
//!   the peer is alive), the peer's death goes unnoticed — a wait of 300 ms ends in `Timeout`,
//!   where the default 20 ms interval would have reported `Disconnected` — until
//!   `set_probe_interval` on the endpoint shortens it, and the next wait reports
//!   `Disconnected`.
//!
//! Nothing here measures time: the outcomes differ in kind between the intervals.

mod common;

use common::{role, ChildGuard, CHANNEL};
use shmbus::flavor::{Flavor, Mpmc};
use shmbus::{ChannelBuilder, RecvError, RecvTimeoutError, TryRecvError};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(5);
const HOUR: Duration = Duration::from_secs(3600);

/// Kills (SIGKILL) and reaps the child: its process is gone when this returns.
fn kill(mut child: ChildGuard) {
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
}

/// The child's side. A sending child sends 1 and waits to be killed; a receiving child
/// receives 1, acknowledges it on `NAME-ack` and waits to be killed.
fn child<F: Flavor>(role: &str, b: &ChannelBuilder<u64, F>) {
    let name = std::env::var(CHANNEL).unwrap();
    // The endpoints stay attached until the process is killed.
    let _attached: Box<dyn std::any::Any> = match role {
        "sender" => {
            let mut tx = b.open_sender(&name).unwrap();
            tx.send(1).unwrap();
            Box::new(tx)
        }
        "receiver" => {
            let mut rx = b.open_receiver(&name).unwrap();
            assert_eq!(rx.recv_timeout(LIMIT), Ok(1));
            let mut ack = shmbus::channel::<u64>()
                .open_sender(&format!("{name}-ack"))
                .unwrap();
            ack.send(1).unwrap();
            Box::new((rx, ack))
        }
        other => panic!("unknown role {other}"),
    };
    std::thread::sleep(LIMIT);
    panic!("the child was not killed");
}

/// A receiver under a new name (from `prefix`), with the builder's probe interval set short.
fn short_receiver<F: Flavor>(
    b: &ChannelBuilder<u64, F>,
    prefix: &str,
) -> (String, shmbus::Receiver<u64, F>) {
    let name = common::unique_name(prefix);
    let rx = b
        .clone()
        .probe_interval(SHORT)
        .create_receiver(&name)
        .unwrap();
    (name, rx)
}

/// A receiver notices its only sender's death as the probe interval says.
fn receiver_case<F: Flavor>(test: &str, b: &ChannelBuilder<u64, F>) {
    if let Some(role) = role() {
        return child(&role, b);
    }
    // Phase 1: a short interval from the builder; recv() blocked at the kill.
    let (name, mut rx) = short_receiver(b, "probe-rx");
    let sender = common::spawn(test, "sender", &name);
    assert_eq!(rx.recv_timeout(LIMIT), Ok(1));
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        kill(sender);
    });
    assert_eq!(rx.recv(), Err(RecvError::Disconnected));
    killer.join().unwrap();

    // Phase 2: an hour from the builder, then a short one set on the receiver.
    let name = common::unique_name("probe-rx-slow");
    let mut rx = b
        .clone()
        .probe_interval(HOUR)
        .create_receiver(&name)
        .unwrap();
    let sender = common::spawn(test, "sender", &name);
    assert_eq!(rx.recv_timeout(LIMIT), Ok(1));
    // A wait while the sender lives: it probes (the first probe is due at once), and the next
    // probe is an hour away.
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(50)),
        Err(RecvTimeoutError::Timeout)
    );
    kill(sender);
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(300)),
        Err(RecvTimeoutError::Timeout),
        "the builder's hour-long interval did not reach the receiver"
    );
    rx.set_probe_interval(SHORT);
    assert_eq!(
        rx.recv_timeout(LIMIT),
        Err(RecvTimeoutError::Disconnected),
        "set_probe_interval did not reach the receiver"
    );
}

/// A sender blocked on a full channel notices its only receiver's death as the probe
/// interval says.
fn sender_case<F: Flavor>(test: &str, b: &ChannelBuilder<u64, F>) {
    if let Some(role) = role() {
        return child(&role, b);
    }
    // Fills the channel (the receiving child takes only the first message).
    let start = |b: ChannelBuilder<u64, F>, name: &str| {
        let mut tx = b.create_sender(name).unwrap();
        let mut ack = shmbus::channel::<u64>()
            .create_receiver(&format!("{name}-ack"))
            .unwrap();
        let receiver = common::spawn(test, "receiver", name);
        tx.send(1).unwrap();
        assert_eq!(ack.recv_timeout(LIMIT), Ok(1));
        let mut n = 2;
        while tx.try_send(n).is_ok() {
            n += 1;
        }
        (tx, receiver)
    };
    // Phase 1: a short interval from the builder; send() blocked at the kill.
    let (mut tx, receiver) = start(
        b.clone().probe_interval(SHORT),
        &common::unique_name("probe-tx"),
    );
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        kill(receiver);
    });
    let err = tx.send(100).unwrap_err();
    assert!(err.is_disconnected(), "{err}");
    killer.join().unwrap();

    // Phase 2: an hour from the builder, then a short one set on the sender.
    let (mut tx, receiver) = start(
        b.clone().probe_interval(HOUR),
        &common::unique_name("probe-tx-slow"),
    );
    // A wait while the receiver lives: it probes once, and the next probe is an hour away.
    let err = tx.send_timeout(100, Duration::from_millis(50)).unwrap_err();
    assert!(err.is_timeout(), "{err}");
    kill(receiver);
    let err = tx
        .send_timeout(100, Duration::from_millis(300))
        .unwrap_err();
    assert!(
        err.is_timeout(),
        "the builder's hour-long interval did not reach the sender: {err}"
    );
    tx.set_probe_interval(SHORT);
    let err = tx.send_timeout(100, LIMIT).unwrap_err();
    assert!(
        err.is_disconnected(),
        "set_probe_interval did not reach the sender: {err}"
    );
}

#[test]
fn spsc_receiver_probe_interval_from_builder_and_setter() {
    receiver_case(
        "spsc_receiver_probe_interval_from_builder_and_setter",
        &shmbus::channel::<u64>().capacity(4),
    );
}

#[test]
fn mpmc_receiver_probe_interval_from_builder_and_setter() {
    receiver_case::<Mpmc>(
        "mpmc_receiver_probe_interval_from_builder_and_setter",
        &shmbus::channel::<u64>().mpmc().capacity(4),
    );
}

#[test]
fn spsc_sender_probe_interval_from_builder_and_setter() {
    sender_case(
        "spsc_sender_probe_interval_from_builder_and_setter",
        &shmbus::channel::<u64>().capacity(4),
    );
}

#[test]
fn mpmc_sender_probe_interval_from_builder_and_setter() {
    sender_case::<Mpmc>(
        "mpmc_sender_probe_interval_from_builder_and_setter",
        &shmbus::channel::<u64>().mpmc().capacity(4),
    );
}

/// An MPMC clone inherits its original's interval (set after the channel made it).
#[test]
fn an_mpmc_clone_inherits_the_probe_interval() {
    let test = "an_mpmc_clone_inherits_the_probe_interval";
    let b = shmbus::channel::<u64>().mpmc().capacity(4);
    if let Some(role) = role() {
        return child(&role, &b);
    }
    let name = common::unique_name("probe-clone");
    let mut rx = b
        .clone()
        .probe_interval(SHORT)
        .create_receiver(&name)
        .unwrap();
    rx.set_probe_interval(HOUR);
    let mut clone = rx.clone();
    drop(rx);
    let sender = common::spawn(test, "sender", &name);
    assert_eq!(clone.recv_timeout(LIMIT), Ok(1));
    assert_eq!(
        clone.recv_timeout(Duration::from_millis(50)),
        Err(RecvTimeoutError::Timeout)
    );
    kill(sender);
    assert_eq!(
        clone.recv_timeout(Duration::from_millis(300)),
        Err(RecvTimeoutError::Timeout),
        "the clone did not inherit the hour-long interval"
    );
}

/// A receiver that only spins on the non-blocking receives (`try_recv`, `try_recv_into`,
/// `try_recv_with`) notices its sender's death (SIGKILL) by the probe, as a blocking receive
/// does: `Disconnected`, never `Empty` for ever. An empty poll that skipped the probe when due
/// (every 16th reads the clock for it) would fail this (DECISIONS D98 tried one that could).
#[test]
fn spinning_try_receivers_notice_a_sigkilled_sender() {
    let test = "spinning_try_receivers_notice_a_sigkilled_sender";
    let b = shmbus::channel::<u64>();
    if let Some(role) = role() {
        return child(&role, &b);
    }
    for path in 0..3 {
        let (name, mut rx) = short_receiver(&b, "probe-spin");
        let poll = move |rx: &mut shmbus::Receiver<u64>| match path {
            0 => rx.try_recv().map(drop),
            1 => rx.try_recv_into(&mut 0),
            _ => rx.try_recv_with(|_| ()),
        };
        let sender = common::spawn(test, "sender", &name);
        assert_eq!(rx.recv_timeout(LIMIT), Ok(1));
        for _ in 0..1000 {
            assert_eq!(poll(&mut rx), Err(TryRecvError::Empty), "path {path}");
        }
        kill(sender);
        let killed = std::time::Instant::now();
        loop {
            match poll(&mut rx) {
                Err(TryRecvError::Empty) => assert!(
                    killed.elapsed() < LIMIT,
                    "path {path}: a spinning receiver missed a SIGKILLed sender"
                ),
                Err(TryRecvError::Disconnected) => break,
                other => panic!("path {path}: {other:?}"),
            }
        }
    }
}
