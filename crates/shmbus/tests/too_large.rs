//! A message larger than the channel allows is an error at the call: before anything is
//! written and without waiting, even on a full channel; the message comes back and the
//! channel goes on.

use shmbus::codec::{Bincode, Plain, Raw};
use shmbus::flavor::{Flavor, Mpmc, Spsc};
use shmbus::{ChannelBuilder, SendError, SendTimeoutError, TrySendError};
use std::time::{Duration, Instant};

fn too_large_is_an_error_at_every_send_call<F: Flavor>() {
    let ch = ChannelBuilder::<Vec<u8>, F, Raw>::new()
        .capacity(2)
        .max_message(100)
        .in_process()
        .unwrap();
    let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    assert_eq!(tx.max_message(), 100);
    tx.send(vec![1; 100]).unwrap(); // exactly the maximum fits
    while tx.try_send(vec![2; 10]).is_ok() {}

    // The channel is full now: the size check comes first, nothing waits.
    let start = Instant::now();
    match tx.send(vec![3; 101]) {
        Err(SendError::TooLarge { msg, len, max }) => {
            assert_eq!((msg.len(), len, max), (101, 101, 100));
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    match tx.try_send(vec![3; 500]) {
        Err(TrySendError::TooLarge {
            msg,
            len: 500,
            max: 100,
        }) => assert_eq!(msg, vec![3; 500]),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    let err = tx
        .send_timeout(vec![3; 101], Duration::from_secs(30))
        .unwrap_err();
    assert!(matches!(err, SendTimeoutError::TooLarge { len: 101, .. }));
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "a too-large send waited for room"
    );
    assert_eq!(
        err.to_string(),
        "message of 101 bytes encoded exceeds the channel's maximum of 100 bytes"
    );

    // Nothing of the rejected messages reached the ring.
    assert_eq!(rx.try_recv().unwrap(), vec![1; 100]);
    while let Ok(m) = rx.try_recv() {
        assert_eq!(m, vec![2; 10]);
    }
    tx.send(vec![4; 7]).unwrap();
    assert_eq!(rx.try_recv().unwrap(), vec![4; 7]);
}

#[test]
fn spsc_too_large_is_an_error_at_the_call_even_when_full() {
    too_large_is_an_error_at_every_send_call::<Spsc>();
}

#[test]
fn mpmc_too_large_is_an_error_at_the_call_even_when_full() {
    too_large_is_an_error_at_every_send_call::<Mpmc>();
}

#[test]
fn the_size_checked_is_the_encoded_size() {
    // bincode: a 40-byte string encodes to 41 bytes (1-byte length prefix).
    let ch = ChannelBuilder::<String, Spsc, Bincode>::new()
        .max_message(40)
        .in_process()
        .unwrap();
    let mut tx = ch.sender().unwrap();
    tx.send("x".repeat(39)).unwrap();
    let err = tx.try_send("x".repeat(40)).unwrap_err();
    assert!(
        matches!(
            err,
            TrySendError::TooLarge {
                len: 41,
                max: 40,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_maximum_close_to_the_spsc_capacity_does_not_stall_sends() {
    // Each send reserves only the message's own length, not the maximum: small messages flow
    // beside a large one waiting to be received, up to the exact message capacity (the bytes
    // of 20 largest messages would hold hundreds of small ones: the count is what bounds).
    let ch = ChannelBuilder::<Vec<u8>, Spsc, Raw>::new()
        .capacity(20)
        .max_message(4000)
        .in_process()
        .unwrap();
    let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    tx.try_send(vec![1; 4000]).unwrap();
    let mut small = 0;
    while tx.try_send(vec![2; 8]).is_ok() {
        small += 1;
    }
    assert_eq!(
        small, 19,
        "small messages beside a large one, up to the capacity"
    );
    assert_eq!(rx.try_recv().unwrap().len(), 4000);
    for _ in 0..small {
        assert_eq!(rx.try_recv().unwrap(), vec![2; 8]);
    }
    for round in 0..100u8 {
        tx.send_timeout(vec![round; 4000], Duration::from_secs(10))
            .unwrap();
        assert_eq!(rx.try_recv().unwrap(), vec![round; 4000]);
    }
}

#[test]
fn the_builder_refuses_settings_that_make_no_channel() {
    // A plain-old-data channel whose maximum is smaller than the type.
    let err = ChannelBuilder::<[u64; 8], Spsc, Plain>::new()
        .max_message(32)
        .in_process()
        .unwrap_err();
    assert!(matches!(err, shmbus::Error::Config(_)), "{err}");
    // A bincode channel whose maximum exceeds the decode limit.
    let err = ChannelBuilder::<String, Spsc, Bincode<1024>>::new()
        .max_message(4096)
        .in_process()
        .unwrap_err();
    assert!(err.to_string().contains("decode limit"), "{err}");
    // More than an MPMC slot can hold.
    assert!(ChannelBuilder::<Vec<u8>, Mpmc, Raw>::new()
        .max_message(1 << 30)
        .in_process()
        .is_err());
}
