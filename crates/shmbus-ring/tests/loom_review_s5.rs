//! The adversarial review's loom model, written against a lazily raised head hint (D73, since
//! reverted) and kept for the eager one: a consumer races a consumer that dies holding a
//! claim, the reaper's repair, and a producer lapping the ring. Only the dead consumer's message may be lost; the rest
//! arrive exactly once, each consumer's in order; the drained ring's hint is exact.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p shmbus-ring --release --test loom_review_s5`.
#![cfg(loom)]

use shmbus_ring::model::check as model;
use shmbus_ring::model::mpmc::{ModelEndpoint, ModelRing};
use shmbus_ring::{PopError, PushError};

fn pop_some(rx: &mut ModelEndpoint, attempts: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = Vec::new();
    for _ in 0..attempts {
        match rx.try_pop_vec_settled(&mut buf) {
            Ok(_) => got.push(buf[0]),
            Err(PopError::Empty) => {}
            Err(e) => panic!("consumer saw {e}"),
        }
    }
    got
}

#[test]
fn loom_review_s5_cursor_ahead_of_the_hint_races_a_dying_consumer_and_its_repair() {
    model(2, || {
        let ring = ModelRing::new(2, 8);
        let mut tx = ring.endpoint(1);
        let mut c1 = ring.endpoint(2);
        let mut buf = Vec::new();
        tx.try_push(&[0]).expect("room");
        c1.try_pop_vec(&mut buf).expect("m0");
        // c1 has taken m0: its cursor and the head hint are at 1.
        tx.try_push(&[1]).expect("room");
        tx.try_push(&[2]).expect("room");
        let mut victim = ring.endpoint(3);
        let dying = loom::thread::spawn(move || victim.claim_read_and_die());
        let mine = loom::thread::spawn(move || {
            let got = pop_some(&mut c1, 1);
            (c1, got)
        });
        // The producer laps the ring while they race.
        let mut sent = vec![];
        match tx.try_push(&[3]) {
            Ok(()) => sent.push(3u8),
            Err(PushError::Full) => {}
            Err(e) => panic!("producer saw {e}"),
        }
        let held = dying.join().unwrap();
        let (mut c1, mut got1) = mine.join().unwrap();
        let mut reaper = ring.endpoint(4);
        let repaired = reaper.repair_claims(3);
        assert_eq!(repaired, usize::from(held.is_some()));
        if sent.is_empty() {
            // Room now: c1 or the victim took a message (or the repair freed its slot).
            while tx.try_push(&[3]).is_err() {
                got1.extend(pop_some(&mut c1, 1));
            }
        }
        // Drain with c1 (stale cursor, maybe) and a fresh consumer.
        let mut c2 = ring.endpoint(5);
        let mut got2 = Vec::new();
        loop {
            match c1.try_pop_vec(&mut buf) {
                Ok(_) => got1.push(buf[0]),
                Err(PopError::Empty) => break,
                Err(e) => panic!("{e}"),
            }
            match c2.try_pop_vec(&mut buf) {
                Ok(_) => got2.push(buf[0]),
                Err(PopError::Empty) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(c2.try_pop_vec(&mut buf), Err(PopError::Empty));
        for g in [&got1, &got2] {
            assert!(g.windows(2).all(|w| w[0] < w[1]), "order: {g:?}");
        }
        let mut all = [got1, got2].concat();
        all.sort_unstable();
        // Message m is at position m (one producer); the victim held position `held`.
        let want: Vec<u8> = (1..4u8).filter(|m| Some(u64::from(*m)) != held).collect();
        assert_eq!(all, want, "held {held:?}");
        assert_eq!(c1.head_hint(), 4, "a drained ring's hint is exact");
        // Not wedged: a whole lap goes in again and comes out in order.
        tx.try_push(&[4]).expect("room");
        tx.try_push(&[5]).expect("room");
        let mut last = Vec::new();
        for rx in [&mut c1, &mut c2] {
            if rx.try_pop_vec(&mut buf).is_ok() {
                last.push(buf[0]);
            }
        }
        while c2.try_pop_vec(&mut buf).is_ok() {
            last.push(buf[0]);
        }
        assert_eq!(last, vec![4, 5]);
    });
}
