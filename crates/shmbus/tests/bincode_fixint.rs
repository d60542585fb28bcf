//! `BincodeFixint`: bincode's bytes with fixed-width integers, through a channel by value and
//! by reference; a peer with the varint `Bincode` codec is refused at open (another wire
//! format, another codec id), both ways.

mod common;

use serde::{Deserialize, Serialize};
use shmbus::codec::{Bincode, BincodeFixint, Bytes, Codec};

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
struct Tick {
    seq: u64,
    small: u16,
    delta: i32,
    venue: Option<String>,
    payload: Bytes,
}

fn tick(seq: u64) -> Tick {
    Tick {
        seq,
        small: 3,
        delta: -2,
        venue: (seq % 2 == 0).then(|| format!("v{seq}")),
        payload: Bytes(vec![seq as u8; (seq % 40) as usize]),
    }
}

#[test]
fn integers_take_their_width_and_the_bytes_are_bincode_s() {
    let t = tick(1);
    let fixed = bincode::config::standard().with_fixed_int_encoding();
    let theirs = bincode::serde::encode_to_vec(&t, fixed).unwrap();
    let mut ours = vec![0u8; 128];
    let n = <BincodeFixint as Codec<Tick>>::encode(&t, &mut ours).unwrap();
    assert_eq!(&ours[..n], &theirs[..]);
    // seq 8, small 2, delta 4, None 1, the payload's length 8 and its byte.
    assert_eq!(n, 8 + 2 + 4 + 1 + 8 + 1);
    assert!(<Bincode as Codec<Tick>>::encoded_len(&t).unwrap() < n);
    assert_eq!(<BincodeFixint as Codec<Tick>>::decode(&theirs).unwrap(), t);
    // The varint codec does not read it as the same message.
    assert_ne!(<Bincode as Codec<Tick>>::decode(&theirs).ok(), Some(t));
}

#[test]
fn a_fixint_channel_carries_messages_by_value_and_by_reference() {
    let ch = shmbus::channel::<Tick>()
        .codec::<BincodeFixint>()
        .capacity(8)
        .max_message(128)
        .in_process()
        .unwrap();
    let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    let mut place = Tick::default();
    for seq in 0..100 {
        if seq % 2 == 0 {
            tx.send(tick(seq)).unwrap();
        } else {
            tx.try_send_ref(&tick(seq)).unwrap();
        }
        if seq % 3 == 0 {
            assert_eq!(rx.recv().unwrap(), tick(seq));
        } else {
            rx.recv_into(&mut place).unwrap();
            assert_eq!(place, tick(seq));
        }
    }
    // A truncated message is a typed decode error naming the codec.
    drop(tx);
    let mut raw = ch.ring().producer().unwrap();
    raw.try_push(&[1, 2, 3]).unwrap();
    match rx.recv() {
        Err(shmbus::RecvError::Decode(e)) => assert_eq!(e.codec(), "bincode-fixint"),
        other => panic!("expected a decode error, got {other:?}"),
    }
}

#[test]
fn fixint_and_varint_peers_refuse_each_other() {
    let name = common::unique_name("fixint");
    let _tx = shmbus::channel::<Tick>()
        .codec::<BincodeFixint>()
        .create_sender(&name)
        .unwrap();
    match shmbus::channel::<Tick>().open_receiver(&name) {
        Err(shmbus::Error::TypeMismatch { found_codec_id, .. }) => assert_eq!(found_codec_id, 4),
        other => panic!("expected TypeMismatch, got {other:?}"),
    }
    let name = common::unique_name("varint");
    let _tx = shmbus::channel::<Tick>().create_sender(&name).unwrap();
    match shmbus::channel::<Tick>()
        .codec::<BincodeFixint>()
        .open_receiver(&name)
    {
        Err(
            e @ shmbus::Error::TypeMismatch {
                found_codec_id: 1, ..
            },
        ) => {
            assert!(e.to_string().contains("bincode"), "{e}");
        }
        other => panic!("expected TypeMismatch, got {other:?}"),
    }
}
