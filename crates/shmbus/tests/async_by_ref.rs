//! The asynchronous endpoints by reference: `AsyncReceiver::recv_into`/`recv_with` (and their
//! `try_` forms) receive what `recv` receives, reuse the caller's allocations, are
//! cancel-safe, and report disconnection and decode failures as `recv` does; a `Permit`
//! encodes in one pass and still refuses a message longer than its room (the message and the
//! room come back) or one that cannot be encoded.

use serde::{Deserialize, Serialize, Serializer};
use shmbus::codec::{Bincode, Codec};
use shmbus::{RecvError, TrySendError};
use std::time::Duration;

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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn recv_into_and_recv_with_receive_in_order_and_reuse_the_allocations() {
    runtime().block_on(async {
        let ch = shmbus::channel::<Msg>()
            .capacity(4)
            .max_message(256)
            .in_process()
            .unwrap();
        let mut tx = ch.sender().unwrap().into_async().unwrap();
        let mut rx = ch.receiver().unwrap().into_async().unwrap();
        let sender = tokio::spawn(async move {
            for seq in 0..300 {
                tx.send(msg(seq, (seq % 7) as usize * 20)).await.unwrap();
            }
        });
        let mut place = Msg {
            seq: 0,
            text: String::with_capacity(64),
            data: Vec::with_capacity(200),
        };
        let (text_at, data_at) = (place.text.as_ptr(), place.data.as_ptr());
        for seq in 0..300u32 {
            let expected = msg(seq, (seq % 7) as usize * 20);
            match seq % 3 {
                0 => {
                    rx.recv_into(&mut place).await.unwrap();
                    assert_eq!(place, expected);
                    // Decoded in place: the same allocations, message after message.
                    assert_eq!(
                        (place.text.as_ptr(), place.data.as_ptr()),
                        (text_at, data_at)
                    );
                }
                1 => {
                    let got = rx.recv_with(Msg::clone).await.unwrap();
                    assert_eq!(got, expected);
                }
                _ => loop {
                    match rx.try_recv_into(&mut place) {
                        Ok(()) => {
                            assert_eq!(place, expected);
                            break;
                        }
                        Err(e) if e.is_empty() => tokio::task::yield_now().await,
                        Err(e) => panic!("try_recv_into: {e}"),
                    }
                },
            }
        }
        sender.await.unwrap();
        // Every sender gone and the channel drained: `Disconnected`, as `recv` says, and
        // `place` untouched.
        let before = place.clone();
        assert_eq!(rx.recv_into(&mut place).await, Err(RecvError::Disconnected));
        assert_eq!(place, before);
        assert_eq!(rx.recv_with(|m| m.seq).await, Err(RecvError::Disconnected));
        assert!(rx.try_recv_with(|m| m.seq).unwrap_err().is_disconnected());
    });
}

/// A pending `recv_into` or `recv_with` that is dropped takes nothing: every message arrives
/// exactly once, and `f` runs exactly once per message.
#[test]
fn cancelled_recv_into_and_recv_with_lose_nothing() {
    runtime().block_on(async {
        let ch = shmbus::channel::<u64>().capacity(8).in_process().unwrap();
        let mut tx = ch.sender().unwrap();
        let mut rx = ch.receiver().unwrap().into_async().unwrap();
        let feeder = std::thread::spawn(move || {
            for i in 0..2_000u64 {
                if i % 64 == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
                tx.send(i).unwrap();
            }
        });
        let (mut next, mut calls, mut place) = (0u64, 0u64, 0u64);
        let mut tick = tokio::time::interval(Duration::from_micros(50));
        while next < 2_000 {
            if next % 2 == 0 {
                tokio::select! {
                    got = rx.recv_into(&mut place) => {
                        got.unwrap();
                        assert_eq!(place, next);
                        next += 1;
                    }
                    _ = tick.tick() => {}
                }
            } else {
                tokio::select! {
                    got = rx.recv_with(|v| { calls += 1; *v }) => {
                        assert_eq!(got.unwrap(), next);
                        next += 1;
                    }
                    _ = tick.tick() => {}
                }
            }
        }
        feeder.join().unwrap();
        assert_eq!(calls, 1_000, "f ran once per lent message");
        assert!(rx.try_recv_into(&mut place).unwrap_err().is_disconnected());
    });
}

#[test]
fn an_undecodable_message_is_a_typed_error_and_the_next_one_arrives() {
    runtime().block_on(async {
        let ch = shmbus::channel::<Msg>().in_process().unwrap();
        let mut rx = ch.receiver().unwrap().into_async().unwrap();
        let encoded = |m: &Msg| {
            let mut buf = vec![0u8; <Bincode as Codec<Msg>>::encoded_len(m).unwrap()];
            <Bincode as Codec<Msg>>::encode(m, &mut buf).unwrap();
            buf
        };
        let mut raw = ch.ring().producer().unwrap();
        for lent in [false, true] {
            // seq 5, a 2-byte text that is not UTF-8, an empty vector; then a good message.
            raw.try_push(&[5, 2, 0xc3, 0x28, 0]).unwrap();
            raw.try_push(&encoded(&msg(9, 3))).unwrap();
            let mut place = Msg::default();
            let got = if lent {
                rx.recv_with(Msg::clone).await
            } else {
                rx.recv_into(&mut place).await.map(|()| place.clone())
            };
            match got {
                Err(RecvError::Decode(e)) => assert_eq!(e.codec(), "bincode"),
                other => panic!("lent {lent}: expected a decode error, got {other:?}"),
            }
            let got = if lent {
                rx.recv_with(Msg::clone).await
            } else {
                rx.recv_into(&mut place).await.map(|()| place.clone())
            };
            assert_eq!(got, Ok(msg(9, 3)), "lent {lent}");
        }
    });
}

/// A message whose `Serialize` fails after writing part of itself.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Refuses(u32);

impl Serialize for Refuses {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == 13 {
            Err(serde::ser::Error::custom("thirteen"))
        } else {
            s.serialize_u32(self.0)
        }
    }
}

#[test]
fn a_permit_sends_in_one_pass_and_gives_back_what_does_not_fit() {
    runtime().block_on(async {
        for mpmc in [false, true] {
            let b = shmbus::channel::<String>().capacity(2).max_message(64);
            let ch = if mpmc {
                None
            } else {
                Some(b.clone().in_process().unwrap())
            };
            let mch = b.mpmc().in_process().unwrap();
            macro_rules! check {
                ($ch:expr) => {{
                    let mut tx = $ch.sender().unwrap().into_async().unwrap();
                    let mut rx = $ch.receiver().unwrap();
                    // Exactly the room: sent.
                    tx.reserve(5).await.unwrap().send("four".into()).unwrap();
                    assert_eq!(rx.try_recv().unwrap(), "four");
                    // One byte over: the message, its exact length and the room come back.
                    let err = tx
                        .reserve(5)
                        .await
                        .unwrap()
                        .send("fives".into())
                        .unwrap_err();
                    assert!(
                        matches!(err, TrySendError::TooLarge { len: 6, max: 5, .. }),
                        "{err:?}"
                    );
                    assert_eq!(err.into_inner(), "fives");
                    let text = "by reference".to_string();
                    let err = tx.reserve(4).await.unwrap().send_ref(&text).unwrap_err();
                    assert!(matches!(
                        err,
                        TrySendError::TooLarge {
                            msg: (),
                            len: 13,
                            max: 4
                        }
                    ));
                    // Nothing became visible, and the room came back: two sends fill it.
                    assert!(rx.try_recv().unwrap_err().is_empty());
                    tx.reserve(64).await.unwrap().send_ref(&text).unwrap();
                    tx.reserve(64).await.unwrap().send("2".into()).unwrap();
                    assert_eq!(rx.try_recv().unwrap(), text);
                    assert_eq!(rx.try_recv().unwrap(), "2");
                    assert!(rx.try_recv().unwrap_err().is_empty());
                }};
            }
            if let Some(ch) = ch {
                check!(ch);
            } else {
                check!(mch);
            }
        }
        // An encoding failure is `Encode`, not `TooLarge`, and leaves nothing behind.
        let ch = shmbus::channel::<Refuses>().in_process().unwrap();
        let mut tx = ch.sender().unwrap().into_async().unwrap();
        let mut rx = ch.receiver().unwrap();
        let err = tx.reserve(8).await.unwrap().send(Refuses(13)).unwrap_err();
        match &err {
            TrySendError::Encode { error, .. } => {
                assert!(error.reason().contains("thirteen"), "{error}");
            }
            other => panic!("expected an encode error, got {other:?}"),
        }
        assert_eq!(err.into_inner(), Refuses(13));
        assert!(rx.try_recv().unwrap_err().is_empty());
        tx.reserve(8).await.unwrap().send(Refuses(14)).unwrap();
        assert_eq!(rx.try_recv().unwrap(), Refuses(14));
    });
}
