//! A receiver copies each message into a private buffer with the ring's own copy before it
//! decodes it (D83). The buffer starts at the channel's largest message or 64 KiB, whichever is
//! smaller, and grows when a longer message arrives: that message must stay in the ring until
//! the buffer has room, then be received whole. Checked here through every receive call, on
//! both flavors, with and without checksums, with messages from 0 bytes to well past 64 KiB in
//! an order that makes the buffer grow more than once, each one's contents compared.

use shmbus::codec::{Bincode, Bytes, Codec, Raw};
use shmbus::flavor::Flavor;
use shmbus::ring::{Mpmc, Spsc};
use shmbus::{ChannelBuilder, Receiver, Select};
use std::time::Duration;

/// A message type and its codec: `Bytes` through bincode (a length, then the bytes, decoded
/// from the private copy), or `Vec<u8>` through `Raw` (which decodes by copying out of the
/// ring, so only a select's staging goes through the buffer).
trait Payload: Sized + Clone + std::fmt::Debug + 'static + Send + Sync {
    type C: Codec<Self>;
    fn from_vec(v: Vec<u8>) -> Self;
    fn bytes(&self) -> &[u8];
    fn empty() -> Self;
}

impl Payload for Bytes {
    type C = Bincode;
    fn from_vec(v: Vec<u8>) -> Self {
        v.into()
    }
    fn bytes(&self) -> &[u8] {
        self
    }
    fn empty() -> Self {
        Bytes::new()
    }
}

impl Payload for Vec<u8> {
    type C = Raw;
    fn from_vec(v: Vec<u8>) -> Self {
        v
    }
    fn bytes(&self) -> &[u8] {
        self
    }
    fn empty() -> Self {
        Vec::new()
    }
}

/// Message `i` of length `len`: every byte depends on both, so a message cut short, padded,
/// or taken from another position fails the comparison.
fn message(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|k| (k * 31 + i * 7) as u8).collect()
}

/// Lengths that start small, jump past the preallocation, and grow again.
const LENGTHS: [usize; 9] = [
    0,
    5,
    70 << 10,
    3,
    (64 << 10) + 1,
    200 << 10,
    1,
    300 << 10,
    200 << 10,
];

/// The receive call `how` takes the next message.
fn receive<P: Payload, F: Flavor>(rx: &mut Receiver<P, F, P::C>, how: usize, place: &mut P) -> P {
    let wait = Duration::from_secs(10);
    match how {
        0 => rx.recv().unwrap(),
        1 => rx.try_recv().unwrap(),
        2 => rx.recv_timeout(wait).unwrap(),
        3 => {
            rx.recv_into(place).unwrap();
            place.clone()
        }
        4 => {
            rx.try_recv_into(place).unwrap();
            place.clone()
        }
        5 => rx.recv_with(P::clone).unwrap(),
        6 => rx.try_recv_with(P::clone).unwrap(),
        _ => {
            let mut sel = Select::new();
            let op = sel.recv(rx);
            let oper = sel.select_timeout(wait).unwrap();
            assert_eq!(oper.index(), op);
            oper.recv(rx).unwrap()
        }
    }
}

fn every_length_arrives_whole<P: Payload, F: Flavor>(checksum: bool) {
    let ch = ChannelBuilder::<P, F, P::C>::new()
        .max_message((300 << 10) + 16)
        .capacity(2)
        .checksum(checksum)
        .in_process()
        .unwrap();
    for how in 0..8 {
        // A new receiver each time: a new buffer, grown again from the start.
        let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
        let mut place = P::empty();
        for (i, &len) in LENGTHS.iter().enumerate() {
            tx.send(P::from_vec(message(i, len))).unwrap();
            let got = receive(&mut rx, how, &mut place);
            assert_eq!(got.bytes().len(), len, "call {how}, message {i}: length");
            assert!(
                got.bytes() == message(i, len),
                "call {how}, message {i} ({len} bytes): contents differ"
            );
        }
        assert!(
            rx.try_recv().unwrap_err().is_empty(),
            "call {how}: a message left behind"
        );
    }
}

#[test]
fn spsc_messages_longer_than_the_buffer_arrive_whole_through_every_receive_call() {
    every_length_arrives_whole::<Bytes, Spsc>(false);
    every_length_arrives_whole::<Vec<u8>, Spsc>(false);
}

#[test]
fn mpmc_messages_longer_than_the_buffer_arrive_whole_through_every_receive_call() {
    every_length_arrives_whole::<Bytes, Mpmc>(false);
    every_length_arrives_whole::<Vec<u8>, Mpmc>(false);
}

#[test]
fn checksum_rings_grow_the_buffer_too() {
    every_length_arrives_whole::<Bytes, Spsc>(true);
    every_length_arrives_whole::<Bytes, Mpmc>(true);
    every_length_arrives_whole::<Vec<u8>, Spsc>(true);
}

/// Two long messages queued behind a short one: the one that makes the buffer grow is not
/// lost or reordered, and neither is the one after it.
#[test]
fn a_message_that_grows_the_buffer_keeps_its_place_in_line() {
    let ch = shmbus::channel::<Bytes>()
        .max_message(1 << 20)
        .capacity(4)
        .in_process()
        .unwrap();
    let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    let lens = [7, 500 << 10, 900 << 10, 9];
    for (i, &len) in lens.iter().enumerate() {
        tx.send(message(i, len).into()).unwrap();
    }
    for (i, &len) in lens.iter().enumerate() {
        let got = rx.try_recv().unwrap();
        assert!(*got == message(i, len), "message {i} ({len} bytes)");
    }
}

/// Whatever the largest message, on either flavor, with or without checksums, the buffer a
/// receiver starts with (or grows to) holds what the ring asks for: an MPMC pop needs room for
/// a whole slot, which can be longer than the largest message (slots are rounded up).
#[test]
fn any_maximum_message_size_is_received_on_both_flavors() {
    fn check<F: Flavor>(max: usize, checksum: bool) {
        let ch = ChannelBuilder::<Vec<u8>, F, Raw>::new()
            .max_message(max)
            .capacity(2)
            .checksum(checksum)
            .in_process()
            .unwrap();
        let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
        for len in [0, 1, max / 2, max] {
            tx.send(message(len, len)).unwrap();
            assert_eq!(
                rx.try_recv().unwrap(),
                message(len, len),
                "max {max}, len {len}"
            );
        }
        // Bincode through a private copy too.
        let cb = ChannelBuilder::<Bytes, F, Bincode>::new()
            .max_message(max + 8)
            .capacity(2)
            .checksum(checksum)
            .in_process()
            .unwrap();
        let (mut tx, mut rx) = (cb.sender().unwrap(), cb.receiver().unwrap());
        for len in [0, 1, max / 2, max] {
            tx.send(message(len, len).into()).unwrap();
            let got = rx.try_recv().unwrap();
            assert_eq!(
                &got[..],
                &message(len, len)[..],
                "bincode, max {max}, len {len}"
            );
        }
    }
    for max in (1..=72).chain([
        99,
        100,
        101,
        1001,
        4095,
        4097,
        (64 << 10) - 1,
        (64 << 10) + 3,
    ]) {
        for checksum in [false, true] {
            check::<Spsc>(max, checksum);
            check::<Mpmc>(max, checksum);
        }
    }
}

/// Review s7: a hostile peer rewrites a committed record's length between the pop that makes
/// the buffer grow and the pop after it. The receive may fail as a checksum, decode or
/// corruption error, or return the bytes it read; it must never say `Disconnected` while the
/// sender is attached (it did: the second `BufferTooSmall` fell through to the catch-all).
#[test]
fn a_length_rewritten_between_two_pops_is_never_reported_as_a_disconnection() {
    use shmbus::ring::frame::{encode, KIND_DATA};
    use shmbus::ring::layout::DATA_OFFSET;
    use shmbus::TryRecvError;
    use shmbus_testkit::hostile::raw_view;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    const LEN: usize = 100 << 10;
    // A checksum record carries a 4-byte trailer after the payload.
    let honest = encode(u32::try_from(LEN + 4).unwrap(), KIND_DATA);
    let longer = encode(u32::try_from(2 * LEN + 4).unwrap(), KIND_DATA);
    let end = Instant::now() + Duration::from_secs(5);
    let mut attempts = 0;
    while Instant::now() < end {
        attempts += 1;
        // `Raw` on a checksum ring: the receiver's buffer starts empty and grows on the first
        // message.
        let ch = ChannelBuilder::<Vec<u8>, Spsc, Raw>::new()
            .max_message(1 << 20)
            .capacity(2)
            .checksum(true)
            .memfd("receive-buffer-race")
            .unwrap();
        let raw = raw_view(ch.segment()).unwrap();
        let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
        tx.send(vec![5u8; LEN]).unwrap();
        // The record's header: at the start of the data region, or after a skip record.
        let at = (0..8)
            .map(|w| DATA_OFFSET as usize + 8 * w)
            .find(|&off| raw.atomic_u64(off).unwrap().load(Ordering::SeqCst) == honest)
            .expect("the record's header");
        let word = raw.atomic_u64(at).unwrap();
        let stop = AtomicBool::new(false);
        let got = std::thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    word.store(longer, Ordering::SeqCst);
                    word.store(honest, Ordering::SeqCst);
                }
            });
            let got = rx.try_recv();
            stop.store(true, Ordering::Relaxed);
            got
        });
        match got {
            Ok(_)
            | Err(TryRecvError::Checksum(_) | TryRecvError::Corrupt(_) | TryRecvError::Decode(_)) =>
                {}
            Err(e) => panic!("attempt {attempts}: {e:?} with the sender attached"),
        }
    }
}
