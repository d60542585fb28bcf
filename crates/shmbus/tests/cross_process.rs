//! Typed channels between real processes: the test binary re-spawns itself (with the test's
//! name as filter and a role in the environment) as the peer. Every child is bounded in time
//! and killed if the test fails.

mod common;

use common::{role, CHANNEL};
use serde::{Deserialize, Serialize};
use shmbus::flavor::Mpmc;
use shmbus::RecvTimeoutError;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Event {
    Tick { seq: u64, label: String },
    Batch(Vec<u32>),
    Done,
}

fn event(seq: u64) -> Event {
    if seq % 3 == 0 {
        Event::Batch((0..(seq % 17) as u32).collect())
    } else {
        Event::Tick {
            seq,
            label: format!("tick-{seq}"),
        }
    }
}

const EVENTS: u64 = 50_000;

/// Parent sends; a child process opens the channel by name, checks every message in order
/// and answers with the count on a second channel (request–reply across processes).
#[test]
fn typed_messages_reach_a_child_process_in_order_and_it_replies_on_a_second_channel() {
    let requests = shmbus::channel::<Event>().capacity(64).max_message(256);
    let replies = shmbus::channel::<u64>();
    if let Some(role) = role() {
        assert_eq!(role, "checker");
        let name = std::env::var(CHANNEL).unwrap();
        let mut rx = requests.open_receiver(&format!("{name}-req")).unwrap();
        let mut tx = replies.open_sender(&format!("{name}-rep")).unwrap();
        let mut seq = 0;
        loop {
            match rx.recv_timeout(LIMIT).unwrap() {
                Event::Done => break,
                got => {
                    assert_eq!(got, event(seq));
                    seq += 1;
                }
            }
        }
        tx.send(seq).unwrap();
        return;
    }
    let name = common::unique_name("xproc");
    let mut tx = requests.create_sender(&format!("{name}-req")).unwrap();
    let mut rx = replies.create_receiver(&format!("{name}-rep")).unwrap();
    let mut child = common::spawn(
        "typed_messages_reach_a_child_process_in_order_and_it_replies_on_a_second_channel",
        "checker",
        &name,
    );
    for seq in 0..EVENTS {
        tx.send_timeout(event(seq), LIMIT).unwrap();
    }
    tx.send(Event::Done).unwrap();
    assert_eq!(rx.recv_timeout(LIMIT), Ok(EVENTS));
    assert!(child.wait_within(LIMIT).success());
}

/// A child process sends and exits; the parent's `iter` yields everything it sent, in order,
/// and ends when the child's sender is gone.
#[test]
fn iter_in_the_parent_ends_when_the_sending_child_process_exits() {
    let builder = shmbus::channel::<u64>().mpmc().capacity(16);
    if role().is_some() {
        let name = std::env::var(CHANNEL).unwrap();
        let mut tx = builder.open_sender(&name).unwrap();
        for i in 0..10_000u64 {
            tx.send_timeout(i, LIMIT).unwrap();
        }
        return;
    }
    let name = common::unique_name("xproc-iter");
    let ch = builder.create(&name).unwrap();
    let mut rx = ch.receiver().unwrap();
    let mut child = common::spawn(
        "iter_in_the_parent_ends_when_the_sending_child_process_exits",
        "sender",
        &name,
    );
    // Until the child has attached, an empty channel with no sender is not yet
    // "disconnected": wait for the first message.
    let first = rx.recv_timeout(LIMIT).unwrap();
    assert_eq!(first, 0);
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(rx.iter().collect::<Vec<u64>>());
    });
    let rest = result
        .recv_timeout(LIMIT)
        .expect("iter did not end after the child exited");
    assert_eq!(rest, (1..10_000).collect::<Vec<_>>());
    assert!(child.wait_within(LIMIT).success());
}

/// A receiving child process exits early; the parent's next send fails with the message back.
#[test]
fn send_in_the_parent_fails_once_the_receiving_child_process_exits() {
    let builder = shmbus::channel::<String>().mpmc().capacity(4);
    if role().is_some() {
        let name = std::env::var(CHANNEL).unwrap();
        let mut rx: shmbus::Receiver<String, Mpmc> = builder.open_receiver(&name).unwrap();
        assert_eq!(rx.recv_timeout(LIMIT).unwrap(), "one");
        return;
    }
    let name = common::unique_name("xproc-rxgone");
    let mut tx = builder.create_sender(&name).unwrap();
    let mut child = common::spawn(
        "send_in_the_parent_fails_once_the_receiving_child_process_exits",
        "receiver",
        &name,
    );
    tx.send("one".into()).unwrap();
    assert!(child.wait_within(LIMIT).success());
    // The ring may still hold room; the first send after the child is gone reports it.
    let err = tx.send_timeout("two".into(), LIMIT).unwrap_err();
    assert!(err.is_disconnected(), "{err}");
    assert_eq!(err.into_inner(), "two");
}

/// With no sender ever attached, a receiver waits (a channel nobody has sent on yet is not
/// disconnected).
#[test]
fn a_receiver_waits_for_a_sender_that_has_not_attached_yet() {
    let ch = shmbus::channel::<u8>().in_process().unwrap();
    let mut rx = ch.receiver().unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(20)),
        Err(RecvTimeoutError::Timeout)
    );
}
