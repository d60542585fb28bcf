//! `send_ref`, `recv_into` and `recv_with` keep the channel's contract: order, full, too
//! large, disconnection and decode failures behave as `send`/`recv` do; and the one-pass
//! send (a reservation of the maximum size) never reports a channel full that has room for
//! the message, checked against a model of a bounded queue.

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use shmbus::codec::{Bincode, Bytes, Codec, Postcard};
use shmbus::flavor::{Flavor, Mpmc, Spsc};
use shmbus::{
    ChannelBuilder, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

const SHORT: Duration = Duration::from_millis(5);

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
struct Msg {
    seq: u32,
    text: String,
    data: Vec<u8>,
}

fn msg(seq: u32, len: usize) -> Msg {
    Msg {
        seq,
        text: format!("#{seq}"),
        data: vec![seq as u8; len],
    }
}

fn order_is_kept<F: Flavor, C: Codec<Msg>>() {
    let ch = ChannelBuilder::<Msg, F, C>::new()
        .capacity(8)
        .max_message(128)
        .in_process()
        .unwrap();
    let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    let mut place = Msg::default();
    for round in 0..20u32 {
        let base = round * 6;
        tx.send_ref(&msg(base, 3)).unwrap();
        tx.try_send_ref(&msg(base + 1, 90)).unwrap();
        tx.send_ref_timeout(&msg(base + 2, 0), SHORT).unwrap();
        tx.send(msg(base + 3, 7)).unwrap();
        tx.send_ref(&msg(base + 4, 50)).unwrap();
        tx.send_ref(&msg(base + 5, 1)).unwrap();
        rx.recv_into(&mut place).unwrap();
        assert_eq!(place, msg(base, 3));
        rx.try_recv_into(&mut place).unwrap();
        assert_eq!(place, msg(base + 1, 90));
        assert_eq!(rx.recv_with(Msg::clone).unwrap(), msg(base + 2, 0));
        rx.recv_into_timeout(&mut place, SHORT).unwrap();
        assert_eq!(place, msg(base + 3, 7));
        assert_eq!(rx.try_recv_with(|m| m.seq).unwrap(), base + 4);
        assert_eq!(
            rx.recv_with_timeout(Msg::clone, SHORT).unwrap(),
            msg(base + 5, 1)
        );
    }
    assert_eq!(rx.try_recv_into(&mut place), Err(TryRecvError::Empty));
}

#[test]
fn messages_arrive_in_order_whichever_calls_send_and_receive_them() {
    order_is_kept::<Spsc, Bincode>();
    order_is_kept::<Mpmc, Bincode>();
    order_is_kept::<Spsc, Postcard>();
    order_is_kept::<Mpmc, Postcard>();
}

fn full_and_timeout<F: Flavor>() {
    let ch = ChannelBuilder::<Msg, F>::new()
        .capacity(2)
        .max_message(64)
        .in_process()
        .unwrap();
    let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    tx.try_send_ref(&msg(1, 1)).unwrap();
    tx.try_send_ref(&msg(2, 1)).unwrap();
    assert_eq!(tx.try_send_ref(&msg(3, 1)), Err(TrySendError::Full(())));
    assert_eq!(
        tx.send_ref_timeout(&msg(3, 1), SHORT),
        Err(SendTimeoutError::Timeout(()))
    );
    // The refused message did not go in, and receiving makes room for it.
    assert_eq!(rx.recv_with(|m| m.seq).unwrap(), 1);
    tx.try_send_ref(&msg(3, 1)).unwrap();
    assert_eq!(rx.recv_with(|m| m.seq).unwrap(), 2);
    assert_eq!(rx.recv_with(|m| m.seq).unwrap(), 3);
    let mut place = msg(9, 9);
    assert_eq!(
        rx.recv_into_timeout(&mut place, SHORT),
        Err(RecvTimeoutError::Timeout)
    );
    assert_eq!(
        place,
        msg(9, 9),
        "untouched by a receive that found nothing"
    );
    assert_eq!(
        rx.recv_with_timeout(|_| panic!("nothing to lend"), SHORT),
        Err(RecvTimeoutError::Timeout)
    );
}

#[test]
fn a_full_channel_is_full_and_a_timeout_a_timeout_by_reference_too() {
    full_and_timeout::<Spsc>();
    full_and_timeout::<Mpmc>();
}

fn too_large<F: Flavor>() {
    let ch = ChannelBuilder::<Msg, F>::new()
        .capacity(2)
        .max_message(64)
        .in_process()
        .unwrap();
    let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    let big = msg(7, 100);
    let len = <Bincode as Codec<Msg>>::encoded_len(&big).unwrap();
    let expected = SendError::TooLarge {
        msg: (),
        len,
        max: 64,
    };
    assert_eq!(tx.send_ref(&big), Err(expected));
    assert!(matches!(
        tx.try_send_ref(&big),
        Err(TrySendError::TooLarge { len: l, max: 64, .. }) if l == len
    ));
    // Nothing went in: the channel still takes `capacity` messages, in order, and then is
    // full; a too-large message into a full channel is refused at once, not waited for.
    tx.send_ref(&msg(1, 60 - 8)).unwrap();
    tx.send_ref(&msg(2, 0)).unwrap();
    assert_eq!(rx.len(), 2);
    assert!(tx.try_send_ref(&msg(3, 0)).unwrap_err().is_full());
    assert!(matches!(tx.send_ref(&big), Err(SendError::TooLarge { .. })));
    assert!(matches!(
        tx.send_ref_timeout(&big, SHORT),
        Err(SendTimeoutError::TooLarge { .. })
    ));
    assert_eq!(rx.recv().unwrap(), msg(1, 52));
    assert_eq!(rx.recv().unwrap(), msg(2, 0));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    // A too-large message to a channel whose receiver is gone: `TooLarge`, as `send` says.
    drop(rx);
    assert!(matches!(
        tx.send(big.clone()),
        Err(SendError::TooLarge { .. })
    ));
    assert!(matches!(tx.send_ref(&big), Err(SendError::TooLarge { .. })));
}

#[test]
fn a_too_large_message_is_refused_whole_and_leaves_nothing_behind() {
    too_large::<Spsc>();
    too_large::<Mpmc>();
}

fn disconnection<F: Flavor>() {
    let ch = ChannelBuilder::<Msg, F>::new().in_process().unwrap();
    let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    tx.send_ref(&msg(1, 4)).unwrap();
    tx.send_ref(&msg(2, 4)).unwrap();
    drop(tx);
    // What was sent is received, then the end.
    let mut place = Msg::default();
    rx.recv_into(&mut place).unwrap();
    assert_eq!(place, msg(1, 4));
    assert_eq!(rx.recv_with(|m| m.seq).unwrap(), 2);
    assert_eq!(rx.recv_into(&mut place), Err(RecvError::Disconnected));
    assert_eq!(
        rx.try_recv_into(&mut place),
        Err(TryRecvError::Disconnected)
    );
    assert_eq!(place, msg(1, 4), "untouched by the end");
    assert_eq!(
        rx.recv_with(|_| panic!("nothing to lend")),
        Err(RecvError::Disconnected)
    );
    assert_eq!(
        rx.recv_with_timeout(|_| panic!("nothing to lend"), SHORT),
        Err(RecvTimeoutError::Disconnected)
    );

    let ch = ChannelBuilder::<Msg, F>::new().in_process().unwrap();
    let (mut tx, rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    drop(rx);
    assert_eq!(tx.send_ref(&msg(1, 1)), Err(SendError::Disconnected(())));
    assert_eq!(
        tx.try_send_ref(&msg(1, 1)),
        Err(TrySendError::Disconnected(()))
    );
    assert_eq!(
        tx.send_ref_timeout(&msg(1, 1), SHORT),
        Err(SendTimeoutError::Disconnected(()))
    );
}

#[test]
fn disconnection_ends_both_ways_after_what_was_sent() {
    disconnection::<Spsc>();
    disconnection::<Mpmc>();
}

/// A bincode `Msg` whose text is not UTF-8.
fn undecodable() -> Vec<u8> {
    // seq 5, a 2-byte text [0xc3, 0x28] (invalid UTF-8), an empty data vector.
    vec![5, 2, 0xc3, 0x28, 0]
}

fn encoded(m: &Msg) -> Vec<u8> {
    let mut buf = vec![0u8; <Bincode as Codec<Msg>>::encoded_len(m).unwrap()];
    <Bincode as Codec<Msg>>::encode(m, &mut buf).unwrap();
    buf
}

#[test]
fn a_message_that_does_not_decode_is_a_typed_error_and_the_next_one_arrives() {
    for lent in [false, true] {
        let ch = ChannelBuilder::<Msg>::new().in_process().unwrap();
        let mut rx = ch.receiver().unwrap();
        {
            let mut raw = ch.ring().producer().unwrap();
            raw.try_push(&encoded(&msg(1, 3))).unwrap();
            raw.try_push(&undecodable()).unwrap();
            raw.try_push(&[0xff, 0xff]).unwrap(); // truncated
            let mut trailing = encoded(&msg(2, 3));
            trailing.push(0);
            raw.try_push(&trailing).unwrap();
            raw.try_push(&encoded(&msg(3, 40))).unwrap();
        }
        let mut place = Msg::default();
        let mut next = |rx: &mut shmbus::Receiver<Msg>| -> Result<Msg, RecvError> {
            if lent {
                rx.recv_with(Msg::clone)
            } else {
                rx.recv_into(&mut place).map(|()| place.clone())
            }
        };
        assert_eq!(next(&mut rx).unwrap(), msg(1, 3));
        for what in ["bad UTF-8", "truncated", "trailing byte"] {
            match next(&mut rx) {
                Err(RecvError::Decode(e)) => {
                    assert!(e.is_decode(), "{what}");
                    assert_eq!(e.codec(), "bincode");
                }
                other => panic!("{what}: expected a decode error, got {other:?}"),
            }
        }
        assert_eq!(next(&mut rx).unwrap(), msg(3, 40), "lent: {lent}");
        let mut tx = ch.sender().unwrap();
        tx.send_ref(&msg(4, 1)).unwrap();
        assert_eq!(next(&mut rx).unwrap(), msg(4, 1));
    }
}

#[test]
fn a_message_a_select_staged_is_what_recv_into_and_recv_with_receive() {
    let ch = shmbus::channel::<Msg>().in_process().unwrap();
    let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    tx.send_ref(&msg(1, 2)).unwrap();
    tx.send_ref(&msg(2, 2)).unwrap();
    {
        let mut sel = shmbus::Select::new();
        sel.recv(&mut rx);
        assert_eq!(sel.ready(), 0);
    }
    // The select took the first message for the receiver: the next receive returns it.
    let mut place = Msg::default();
    rx.recv_into(&mut place).unwrap();
    assert_eq!(place, msg(1, 2));
    {
        let mut sel = shmbus::Select::new();
        sel.recv(&mut rx);
        assert_eq!(sel.ready(), 0);
    }
    assert_eq!(rx.try_recv_with(|m| m.seq).unwrap(), 2);
    assert!(rx.try_recv_with(|m| m.seq).unwrap_err().is_empty());
}

#[test]
fn a_checksum_channel_sends_and_receives_by_reference() {
    let ch = shmbus::channel::<Msg>()
        .checksum(true)
        .capacity(4)
        .max_message(64)
        .in_process()
        .unwrap();
    let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    let mut place = Msg::default();
    for i in 0..50 {
        tx.send_ref(&msg(i, (i % 50) as usize)).unwrap();
        rx.recv_into(&mut place).unwrap();
        assert_eq!(place, msg(i, (i % 50) as usize));
    }
}

/// Everything serde can describe, for the in-place decode against the plain one.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
struct Everything {
    small: (i8, i16, i32, i64, i128),
    unsigned: (u8, u16, u32, u64, u128),
    float: (f32, f64),
    flag: bool,
    letter: char,
    text: String,
    words: Vec<String>,
    nested: Vec<Vec<u8>>,
    raw: Bytes,
    maybe: Option<String>,
    maybe_not: Option<Vec<u16>>,
    shape: Shape,
    shapes: Vec<Shape>,
    map: BTreeMap<String, Vec<u8>>,
    unit: (),
    unit_struct: Unit,
    newtype: Newtype,
    pair: (String, Vec<u32>),
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
enum Shape {
    #[default]
    Nothing,
    Named(String),
    Tuple(u8, String),
    Struct {
        side: u32,
        label: String,
    },
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
struct Unit;

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
struct Newtype(String);

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::Nothing),
        ".{0,6}".prop_map(Shape::Named),
        (any::<u8>(), ".{0,6}").prop_map(|(a, b)| Shape::Tuple(a, b)),
        (any::<u32>(), ".{0,6}").prop_map(|(side, label)| Shape::Struct { side, label }),
    ]
}

fn everything() -> impl Strategy<Value = Everything> {
    (
        (
            any::<(i8, i16, i32, i64, i128)>(),
            any::<(u8, u16, u32, u64, u128)>(),
            any::<(f32, f64)>().prop_filter("NaN is not equal to itself", |(a, b)| {
                !a.is_nan() && !b.is_nan()
            }),
            any::<bool>(),
            any::<char>(),
            ".{0,12}",
        ),
        (
            (
                prop::collection::vec(".{0,5}", 0..4),
                prop::collection::vec(any::<u8>(), 0..9),
            ),
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..5), 0..4),
            prop::option::of(".{0,5}"),
            prop::option::of(prop::collection::vec(any::<u16>(), 0..4)),
            shape(),
            prop::collection::vec(shape(), 0..4),
            prop::collection::btree_map(".{0,4}", prop::collection::vec(any::<u8>(), 0..4), 0..3),
            ".{0,5}",
            (".{0,5}", prop::collection::vec(any::<u32>(), 0..4)),
        ),
    )
        .prop_map(
            |(
                (small, unsigned, float, flag, letter, text),
                ((words, raw), nested, maybe, maybe_not, shape, shapes, map, newtype, pair),
            )| Everything {
                small,
                unsigned,
                float,
                flag,
                letter,
                text,
                words,
                nested,
                raw: Bytes(raw),
                maybe,
                maybe_not,
                shape,
                shapes,
                map,
                unit: (),
                unit_struct: Unit,
                newtype: Newtype(newtype),
                pair,
            },
        )
}

fn in_place_matches_decode<C: Codec<Everything>>(before: &Everything, value: &Everything) {
    let mut buf = vec![0u8; C::encoded_len(value).unwrap()];
    let n = C::encode(value, &mut buf).unwrap();
    let mut place = before.clone();
    C::decode_into(&buf[..n], &mut place).unwrap();
    assert_eq!(place, C::decode(&buf[..n]).unwrap());
    assert_eq!(&place, value);
    // Decoding a prefix fails in place as it does plainly (the wrapper changes no outcome).
    if n > 0 {
        let mut place = before.clone();
        assert_eq!(
            C::decode_into(&buf[..n - 1], &mut place).is_err(),
            C::decode(&buf[..n - 1]).is_err()
        );
    }
}

/// Integers at and around the widths where bincode's varints change length, and lengths
/// across the one-byte boundary.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Ints {
    u: (u16, u32, u64, u128),
    i: (i16, i32, i64, i128),
    bytes: Bytes,
    text: String,
    variant: Option<Shape>,
}

fn edgy() -> impl Strategy<Value = u128> {
    let edges: Vec<u128> = [0u128, 250, 251, 1 << 8, 1 << 16, 1 << 32, 1 << 64, 1 << 127]
        .iter()
        .flat_map(|&e| [e.saturating_sub(1), e, e + 1])
        .chain([u128::MAX])
        .collect();
    prop_oneof![prop::sample::select(edges), any::<u128>(), 0u128..70_000]
}

fn ints() -> impl Strategy<Value = Ints> {
    (
        prop::collection::vec(edgy(), 8),
        0usize..300,
        ".{0,3}",
        prop::option::of(shape()),
        any::<bool>(),
    )
        .prop_map(|(v, len, text, variant, negative)| {
            let s = |x: u128| {
                if negative {
                    (x as i128).wrapping_neg()
                } else {
                    x as i128
                }
            };
            Ints {
                u: (v[0] as u16, v[1] as u32, v[2] as u64, v[3]),
                i: (s(v[4]) as i16, s(v[5]) as i32, s(v[6]) as i64, s(v[7])),
                bytes: Bytes(vec![7; len]),
                text: text.repeat(len % 90),
                variant,
            }
        })
}

/// shmbus's own bincode serializer writes exactly what bincode's does, and refuses a room one
/// byte short (at any length) with an error rather than a panic.
fn encodes_as_bincode_does<T: Serialize + serde::de::DeserializeOwned>(value: &T) {
    let theirs = bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap();
    assert_eq!(
        <Bincode as Codec<T>>::encoded_len(value).unwrap(),
        theirs.len()
    );
    let mut ours = vec![0xa5u8; theirs.len() + 16];
    let n = <Bincode as Codec<T>>::encode(value, &mut ours).unwrap();
    assert_eq!(&ours[..n], &theirs[..]);
    for short in [0, theirs.len() / 2, theirs.len().saturating_sub(1)] {
        if short < theirs.len() {
            let err = <Bincode as Codec<T>>::encode(value, &mut ours[..short]).unwrap_err();
            assert!(!err.is_decode() && err.codec() == "bincode", "{err}");
        }
    }
}

/// A sequence whose length serde cannot tell: bincode needs it first, so encoding fails.
struct Unsized;

impl Serialize for Unsized {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq((0u8..3).filter(|_| true))
    }
}

/// `Codec<T>` asks `Deserialize` too: the unsized sequence inside a field.
#[derive(Serialize, Deserialize)]
struct Wrap(#[serde(serialize_with = "unsized_seq")] Vec<u8>);

fn unsized_seq<S: serde::Serializer>(_: &[u8], s: S) -> Result<S::Ok, S::Error> {
    Unsized.serialize(s)
}

#[test]
fn a_sequence_without_a_length_is_an_encoding_error() {
    let mut buf = [0u8; 16];
    assert!(
        bincode::serde::encode_into_slice(Unsized, &mut buf, bincode::config::standard()).is_err()
    );
    let err = <Bincode as Codec<Wrap>>::encode(&Wrap(vec![]), &mut buf).unwrap_err();
    assert!(err.reason().contains("length"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Decoding in place over any earlier value gives what decoding a new value gives.
    #[test]
    fn decoding_in_place_gives_what_decoding_gives(before in everything(), value in everything()) {
        in_place_matches_decode::<Bincode>(&before, &value);
        in_place_matches_decode::<Postcard>(&before, &value);
    }

    /// The sender's bincode bytes are bincode's, for every serde shape.
    #[test]
    fn shmbus_encodes_every_shape_as_bincode_does(value in everything(), ints in ints()) {
        encodes_as_bincode_does(&value);
        encodes_as_bincode_does(&ints);
    }

    /// The one-pass send reserves the maximum message size; the channel must still be full
    /// exactly when it holds `capacity` messages, whatever their sizes and wherever the ring
    /// wraps. A bounded queue is the model.
    #[test]
    fn the_channel_is_full_exactly_when_a_bounded_queue_is(
        capacity in 1u64..6,
        max in 8usize..200,
        ops in prop::collection::vec((any::<bool>(), any::<u8>()), 1..200),
        checksum in any::<bool>(),
    ) {
        model_run::<Spsc>(capacity, max, &ops, checksum);
        model_run::<Mpmc>(capacity, max, &ops, checksum);
    }
}

fn model_run<F: Flavor>(capacity: u64, max: usize, ops: &[(bool, u8)], checksum: bool) {
    let ch = ChannelBuilder::<Vec<u8>, F>::new()
        .capacity(capacity)
        .max_message(max)
        .checksum(checksum)
        .in_process()
        .unwrap();
    let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    let mut model: VecDeque<Vec<u8>> = VecDeque::new();
    let mut place = Vec::new();
    for (i, &(send, size)) in ops.iter().enumerate() {
        if send {
            // Up to the largest that fits: a bincode `Vec<u8>` is its length's varint and
            // its bytes.
            let largest = max - if max > 250 { 3 } else { 1 };
            let m = vec![i as u8; usize::from(size) % (largest + 1)];
            let got = tx.try_send_ref(&m);
            if model.len() as u64 == capacity {
                assert_eq!(got, Err(TrySendError::Full(())), "op {i}");
            } else {
                assert_eq!(got, Ok(()), "op {i}: {} of {capacity} held", model.len());
                model.push_back(m);
            }
        } else {
            match (rx.try_recv_into(&mut place), model.pop_front()) {
                (Ok(()), Some(expected)) => assert_eq!(place, expected, "op {i}"),
                (Err(TryRecvError::Empty), None) => {}
                (got, expected) => panic!("op {i}: received {got:?}, expected {expected:?}"),
            }
        }
    }
}
