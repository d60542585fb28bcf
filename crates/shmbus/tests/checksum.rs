//! A typed channel built with `checksum(true)` (issue 13): a byte flipped in a sent message, in
//! shared memory through a second mapping, is a typed `Checksum` error from every receive call
//! (not a decode of bytes the sender never sent, nor a decode error), and the next message is
//! received; without the option the same flip decodes to the altered value. An opener adopts
//! the creator's setting whatever its own builder says.

use shmbus::ring::layout::DATA_OFFSET;
use shmbus::ring::mpmc::ALIGNED_PAYLOAD_OFFSET;
use shmbus::ring::{ChecksumMismatch, Mpmc, Segment, Spsc};
use shmbus::{Channel, RecvError, RecvTimeoutError, TryRecvError};
use shmbus_testkit::hostile::raw_view;
use shmbus_testkit::unique_name;
use std::sync::atomic::Ordering;
use std::time::Duration;

fn flip(raw: &Segment, off: u64) {
    let word = off & !7;
    raw.atomic_u64(word as usize)
        .expect("raw mapping")
        .fetch_xor(1 << ((off - word) * 8), Ordering::SeqCst);
}

/// The first message's payload: after an SPSC record header (8 bytes) or an MPMC slot's
/// header line (a channel's default slots are aligned, layout 1.7). A bincode `String` is its
/// length (one byte here), then the bytes: `+ 1` is the `h`.
const SPSC_H: u64 = DATA_OFFSET + 8 + 1;
const MPMC_H: u64 = DATA_OFFSET + ALIGNED_PAYLOAD_OFFSET + 1;

/// Sends "hello" and "next", flips the `h`, receives twice with `recv`: what each returned.
fn flipped<F: shmbus::flavor::Flavor>(
    sender_side: &Channel<String, F>,
    receiver_side: &Channel<String, F>,
    h: u64,
    how: usize,
) -> [Result<String, String>; 2] {
    let raw = raw_view(sender_side.segment()).unwrap();
    let (mut tx, mut rx) = (
        sender_side.sender().unwrap(),
        receiver_side.receiver().unwrap(),
    );
    tx.send("hello".into()).unwrap();
    tx.send("next".into()).unwrap();
    flip(&raw, h);
    let mut recv = || -> Result<String, String> {
        match how {
            0 => rx.recv().map_err(|e| match e {
                RecvError::Checksum(m) => checked(m),
                e => format!("other: {e:?}"),
            }),
            1 => rx.try_recv().map_err(|e| match e {
                TryRecvError::Checksum(m) => checked(m),
                e => format!("other: {e:?}"),
            }),
            _ => rx
                .recv_timeout(Duration::from_secs(5))
                .map_err(|e| match e {
                    RecvTimeoutError::Checksum(m) => checked(m),
                    e => format!("other: {e:?}"),
                }),
        }
    };
    [recv(), recv()]
}

fn checked(m: ChecksumMismatch) -> String {
    assert_ne!(m.stored, m.computed);
    assert_eq!(m.position, 0);
    "checksum".into()
}

#[test]
fn a_flipped_byte_is_a_typed_checksum_error_from_every_recv() {
    for how in 0..3 {
        let name = unique_name("crc-ch");
        let ch = shmbus::channel::<String>()
            .checksum(true)
            .create(&name)
            .unwrap();
        assert!(ch.ring().checksum());
        let got = flipped::<Spsc>(&ch, &ch, SPSC_H, how);
        assert_eq!(
            got,
            [Err("checksum".into()), Ok("next".into())],
            "spsc {how}"
        );

        let name = unique_name("crc-ch");
        let ch = shmbus::channel::<String>()
            .mpmc()
            .checksum(true)
            .create(&name)
            .unwrap();
        let got = flipped::<Mpmc>(&ch, &ch, MPMC_H, how);
        assert_eq!(
            got,
            [Err("checksum".into()), Ok("next".into())],
            "mpmc {how}"
        );
    }
}

#[test]
fn without_the_option_the_flip_decodes_to_what_the_sender_never_sent() {
    let name = unique_name("crc-ch");
    let ch = shmbus::channel::<String>().create(&name).unwrap();
    assert!(!ch.ring().checksum());
    let got = flipped::<Spsc>(&ch, &ch, SPSC_H, 0);
    assert_eq!(got, [Ok("iello".into()), Ok("next".into())]);
    let name = unique_name("crc-ch");
    let ch = shmbus::channel::<String>().mpmc().create(&name).unwrap();
    let got = flipped::<Mpmc>(&ch, &ch, MPMC_H, 0);
    assert_eq!(got, [Ok("iello".into()), Ok("next".into())]);
}

#[test]
fn an_opener_adopts_the_segments_checksum_setting() {
    let name = unique_name("crc-ch");
    let created = shmbus::channel::<String>()
        .checksum(true)
        .create(&name)
        .unwrap();
    // The opener's builder says nothing about checksums (or says false): the segment decides.
    let opened = shmbus::channel::<String>()
        .checksum(false)
        .open(&name)
        .unwrap();
    assert!(opened.ring().checksum());
    assert_eq!(opened.max_message(), created.max_message());
    let got = flipped::<Spsc>(&created, &opened, SPSC_H, 0);
    assert_eq!(got, [Err("checksum".into()), Ok("next".into())]);
}

#[test]
fn the_message_limit_is_the_same_with_the_option() {
    let plain = shmbus::channel::<Vec<u8>>()
        .max_message(100)
        .in_process()
        .unwrap();
    let checked = shmbus::channel::<Vec<u8>>()
        .max_message(100)
        .checksum(true)
        .in_process()
        .unwrap();
    assert_eq!(checked.max_message(), plain.max_message());
    let (mut tx, mut rx) = (checked.sender().unwrap(), checked.receiver().unwrap());
    // bincode: one length byte, then the bytes: 99 fill the 100-byte limit.
    tx.send(vec![7; 99]).unwrap();
    assert_eq!(rx.recv().unwrap(), vec![7; 99]);
    assert!(tx.try_send(vec![7; 100]).is_err());
}
