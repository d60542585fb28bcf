//! A message that cannot be decoded is an error for that message only: the receiver reports
//! it, the message is consumed, and the next call receives the next message. Hostile
//! encodings (a 9-byte message claiming a 2^40-byte string) are errors, not aborts.

use shmbus::codec::{Bincode, Codec, Plain, Postcard};
use shmbus::flavor::{Flavor, Mpmc, Spsc};
use shmbus::{ChannelBuilder, RecvError, TryRecvError};

/// A bincode (standard configuration) message that claims a string of 2^40 bytes.
const CLAIMS_A_HUGE_STRING: [u8; 9] = [0xfd, 0, 0, 0, 0, 0, 1, 0, 0];

fn encoded<C: Codec<String>>(s: &str) -> Vec<u8> {
    let msg = s.to_string();
    let mut buf = vec![0u8; C::encoded_len(&msg).unwrap()];
    let n = C::encode(&msg, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn assert_decode_error(result: Result<String, RecvError>, codec: &str) {
    match result {
        Err(RecvError::Decode(e)) => {
            assert!(e.is_decode());
            assert_eq!(e.codec(), codec);
            let shown = RecvError::Decode(e).to_string();
            assert!(shown.contains("could not decode"), "{shown}");
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
}

#[test]
fn spsc_undecodable_messages_are_errors_one_by_one_and_the_channel_goes_on() {
    let ch = ChannelBuilder::<String>::new().in_process().unwrap();
    let mut rx = ch.receiver().unwrap();
    {
        // A peer that writes the bytes itself, through the ring.
        let mut raw = ch.ring().producer().unwrap();
        raw.try_push(&encoded::<Bincode>("first")).unwrap();
        raw.try_push(&[0xff, 0xff, 0xff]).unwrap(); // a truncated length
        raw.try_push(&CLAIMS_A_HUGE_STRING).unwrap();
        let mut trailing = encoded::<Bincode>("trailing");
        trailing.push(0);
        raw.try_push(&trailing).unwrap();
        raw.try_push(&[1, 0xc3]).unwrap(); // a 1-byte string that is not UTF-8
        raw.try_push(&encoded::<Bincode>("second")).unwrap();
    }
    assert_eq!(rx.recv().unwrap(), "first");
    for _ in 0..4 {
        assert_decode_error(rx.recv(), "bincode");
    }
    assert_eq!(rx.recv().unwrap(), "second");
    // A typed sender attaches later; the channel works as before.
    let mut tx = ch.sender().unwrap();
    tx.send("third".into()).unwrap();
    assert_eq!(rx.try_recv().unwrap(), "third");
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn mpmc_undecodable_message_between_good_ones_is_one_error_and_the_channel_goes_on() {
    let ch = ChannelBuilder::<String, Mpmc, Postcard>::new()
        .in_process()
        .unwrap();
    let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    let mut raw = ch.ring().producer().unwrap();
    tx.send("before".into()).unwrap();
    raw.try_push(&[0x05, b'a']).unwrap(); // claims 5 bytes, holds 1
    tx.send("after".into()).unwrap();
    assert_eq!(rx.recv().unwrap(), "before");
    assert_decode_error(rx.recv(), "postcard");
    assert_eq!(rx.recv().unwrap(), "after");
}

#[test]
fn a_bincode_string_claim_beyond_the_decode_limit_fails_without_allocating_it() {
    // A 16-byte channel whose codec may claim at most 64 bytes while decoding.
    let ch = ChannelBuilder::<String, Spsc, Bincode<64>>::new()
        .max_message(16)
        .in_process()
        .unwrap();
    let mut rx = ch.receiver().unwrap();
    let mut raw = ch.ring().producer().unwrap();
    raw.try_push(&[200, b'x']).unwrap(); // a 200-byte string in a 2-byte message
    raw.try_push(&CLAIMS_A_HUGE_STRING).unwrap();
    let mut short = vec![10];
    short.extend_from_slice(b"0123456789");
    raw.try_push(&short).unwrap();
    drop(raw);
    assert_decode_error(rx.recv(), "bincode");
    assert_decode_error(rx.recv(), "bincode");
    assert_eq!(rx.recv().unwrap(), "0123456789");
}

#[test]
fn a_plain_message_of_the_wrong_length_is_an_error_for_that_message() {
    fn check<F: RawPush>() {
        let ch = ChannelBuilder::<[u32; 4], F, Plain>::new()
            .max_message(64)
            .in_process()
            .unwrap();
        let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
        tx.send([1, 2, 3, 4]).unwrap();
        drop(tx);
        F::raw_push(&ch, &[0u8; 15]);
        let mut tx = ch.sender().unwrap();
        tx.send([5, 6, 7, 8]).unwrap();
        assert_eq!(rx.recv().unwrap(), [1, 2, 3, 4]);
        match rx.recv() {
            Err(RecvError::Decode(e)) => assert_eq!(e.codec(), "plain"),
            other => panic!("expected a decode error, got {other:?}"),
        }
        assert_eq!(rx.recv().unwrap(), [5, 6, 7, 8]);
    }
    check::<Spsc>();
    check::<Mpmc>();
}

#[test]
fn iter_stops_at_an_undecodable_message_and_recv_goes_on_past_it() {
    let ch = ChannelBuilder::<String>::new().in_process().unwrap();
    let mut rx = ch.receiver().unwrap();
    {
        let mut raw = ch.ring().producer().unwrap();
        raw.try_push(&encoded::<Bincode>("a")).unwrap();
        raw.try_push(&[0xff]).unwrap();
        raw.try_push(&encoded::<Bincode>("b")).unwrap();
    }
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), ["a"]);
    assert_eq!(rx.try_recv().unwrap(), "b");
}

/// Pushes raw bytes into either flavor of channel, as a misbehaving peer would.
trait RawPush: Flavor + Sized {
    fn raw_push<T, C: Codec<T>>(ch: &shmbus::Channel<T, Self, C>, bytes: &[u8]);
}

impl RawPush for Spsc {
    fn raw_push<T, C: Codec<T>>(ch: &shmbus::Channel<T, Self, C>, bytes: &[u8]) {
        ch.ring().producer().unwrap().try_push(bytes).unwrap();
    }
}

impl RawPush for Mpmc {
    fn raw_push<T, C: Codec<T>>(ch: &shmbus::Channel<T, Self, C>, bytes: &[u8]) {
        ch.ring().producer().unwrap().try_push(bytes).unwrap();
    }
}
