//! loom models of the MPMC ring's sole endpoints (PROTOCOL §5.7, DECISIONS D88): an endpoint
//! alone in its role raises its hint with a plain store, and one that joins it waits out that
//! raise (M23) before it raises the hint itself. If the join let the newcomer raise first, the
//! sole endpoint's store would move the hint back, below a commit (or a read claim) that the
//! newcomer made: these models end with the hint below the positions claimed.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p shmbus-ring --release loom`.
#![cfg(loom)]

use shmbus_ring::model::check as model;
use shmbus_ring::model::mpmc::{ModelEndpoint, ModelRing};
use shmbus_ring::{PopError, PushError};

/// Up to `attempts` pushes of `msg`, stopping at the first that goes in; whether one did.
/// `Full` is what a joining producer answers while the other's raise may be in flight.
fn push_within(tx: &mut ModelEndpoint, msg: &[u8], attempts: usize) -> bool {
    for _ in 0..attempts {
        match tx.try_push(msg) {
            Ok(()) => return true,
            Err(PushError::Full) => loom::thread::yield_now(),
            Err(e) => panic!("producer saw {e}"),
        }
    }
    false
}

/// Up to `attempts` pops; the message, if one came.
fn pop_within(rx: &mut ModelEndpoint, attempts: usize) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    for _ in 0..attempts {
        match rx.try_pop_vec(&mut buf) {
            Ok(_) => return Some(buf),
            Err(PopError::Empty) if attempts > 1 => loom::thread::yield_now(),
            Err(PopError::Empty) => {}
            Err(e) => panic!("consumer saw {e}"),
        }
    }
    None
}

/// Pops everything left, single-threaded.
fn drain(rx: &mut ModelEndpoint) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = Vec::new();
    loop {
        match rx.try_pop_vec(&mut buf) {
            Ok(_) => got.push(buf.clone()),
            Err(PopError::Empty) => return got,
            Err(e) => panic!("draining: {e}"),
        }
    }
}

/// A producer alone in its role pushes while a second producer registers and pushes: the tail
/// hint ends at the number of positions claimed (a plain store that landed after the joiner's
/// raise would leave it one lower), and the consumer gets both messages, in each producer's
/// order.
#[test]
fn loom_mpmc_sole_producer_joined_mid_push_never_moves_the_tail_hint_back() {
    model(3, || {
        let ring = ModelRing::new_sole(4, 8);
        let mut alone = ring.endpoint(1);
        alone.enter_write();
        let mut rx = ring.endpoint(3);
        rx.enter_read();
        let first = loom::thread::spawn(move || {
            alone.try_push(&[0, 0]).expect("room for it");
            alone
        });
        let mut joiner = ring.endpoint(2);
        joiner.enter_write();
        let early = push_within(&mut joiner, &[1, 0], 2);
        let _alone = first.join().unwrap();
        if !early {
            // The join waited for the other's raise: over now.
            joiner
                .try_push(&[1, 0])
                .expect("the join ends once the raise landed");
        }
        assert_eq!(joiner.tail_hint(), 2, "the tail hint moved back");
        let mut got = drain(&mut rx);
        got.sort();
        assert_eq!(got, [vec![0, 0], vec![1, 0]]);
        assert_eq!(rx.head_hint(), 2);
    });
}

/// A consumer alone in its role pops while a second consumer registers and pops: the head hint
/// ends at the number of positions claimed, and every message is received exactly once.
#[test]
fn loom_mpmc_sole_consumer_joined_mid_pop_never_moves_the_head_hint_back() {
    model(3, || {
        let ring = ModelRing::new_sole(4, 8);
        let mut tx = ring.endpoint(1);
        tx.enter_write();
        tx.try_push(&[0, 0]).unwrap();
        tx.try_push(&[0, 1]).unwrap();
        let mut alone = ring.endpoint(2);
        alone.enter_read();
        let first = loom::thread::spawn(move || {
            // One attempt each (a yield between attempts hides the interleaving that matters
            // from loom's search).
            let got = pop_within(&mut alone, 1);
            (alone, got)
        });
        let mut joiner = ring.endpoint(3);
        joiner.enter_read();
        let early = pop_within(&mut joiner, 1);
        let (_alone, got_first) = first.join().unwrap();
        let mut got: Vec<Vec<u8>> = got_first.into_iter().chain(early).collect();
        // Before the drain: its walk would raise a hint that moved back past what it passes.
        assert_eq!(
            joiner.head_hint(),
            got.len() as u64,
            "the head hint moved back"
        );
        got.extend(drain(&mut joiner));
        got.sort();
        assert_eq!(
            got,
            [vec![0, 0], vec![0, 1]],
            "not every message exactly once"
        );
    });
}

/// A sole producer that detaches (M24) while another registers: the newcomer is either alone
/// (it took the word back) or joined; either way the hint never moves back, and a third
/// producer after them joins whichever holds it.
#[test]
fn loom_mpmc_sole_word_given_back_while_another_registers() {
    model(3, || {
        let ring = ModelRing::new_sole(4, 8);
        let mut alone = ring.endpoint(1);
        alone.enter_write();
        let first = loom::thread::spawn(move || {
            alone.try_push(&[0, 0]).expect("room for it");
            alone.leave_write();
        });
        let mut next = ring.endpoint(2);
        next.enter_write();
        let early = push_within(&mut next, &[1, 0], 2);
        first.join().unwrap();
        if !early {
            next.try_push(&[1, 0])
                .expect("the join ends once the raise landed");
        }
        let mut third = ring.endpoint(4);
        third.enter_write();
        third.try_push(&[2, 0]).expect("nothing in flight");
        assert_eq!(third.tail_hint(), 3, "the tail hint moved back");
        let mut rx = ring.endpoint(3);
        let mut got = drain(&mut rx);
        got.sort();
        assert_eq!(got, [vec![0, 0], vec![1, 0], vec![2, 0]]);
    });
}

/// Reclaim (layout 1.8, PROTOCOL §5.7 "Reclaim", DECISIONS D94) racing a registration. Producer
/// 1 was alone, producer 2 joined it (the word shared, naming 1), and 1 left: 2 is alone in a
/// shared role. 2 pushes twice — its first claim finds itself alone in the roster and takes
/// the word back (M26–M27), its second raises with a plain store — while producer 4 registers
/// (L5, M22) and pushes. Whichever comes first, 4 either joins 2 (and waits out its raise) or
/// makes 2's reclaim fail: the tail hint ends at the positions claimed, and every message
/// arrives once. Were a join into a shared role to leave the word as it was (as before 1.8),
/// 2's reclaim could succeed after 4's join, and 4, having joined the departed 1, would not
/// wait for 2's plain store.
#[test]
fn loom_mpmc_sole_reclaim_racing_a_join_never_moves_the_tail_hint_back() {
    model(3, || {
        let ring = ModelRing::new_reclaim(4, 8);
        let mut first = ring.endpoint(1);
        first.register_write();
        let mut left_alone = ring.endpoint(2);
        left_alone.register_write();
        first.unregister_write();
        let mut rx = ring.endpoint(3);
        rx.register_read();
        let alone = loom::thread::spawn(move || {
            left_alone.try_push(&[2, 0]).expect("room for it");
            left_alone.try_push(&[2, 1]).expect("room for it");
            left_alone
        });
        let mut joiner = ring.endpoint(4);
        joiner.register_write();
        let early = push_within(&mut joiner, &[4, 0], 1);
        let _alone = alone.join().unwrap();
        if !early {
            joiner
                .try_push(&[4, 0])
                .expect("the join ends once the raise landed");
        }
        assert_eq!(joiner.tail_hint(), 3, "the tail hint moved back");
        let mut got = drain(&mut rx);
        got.sort();
        assert_eq!(got, [vec![2, 0], vec![2, 1], vec![4, 0]]);
    });
}

/// The endpoint left alone in a shared role takes the word back at its next claim (M26–M27),
/// and a producer that leaves while it claims never lets it: the word ends naming it only if
/// the other had gone (its roster bit cleared) when it looked.
#[test]
fn loom_mpmc_sole_reclaim_only_once_the_other_has_left() {
    model(3, || {
        let ring = ModelRing::new_reclaim(4, 8);
        let mut a = ring.endpoint(1);
        a.register_write();
        let mut b = ring.endpoint(2);
        b.register_write();
        let mut rx = ring.endpoint(3);
        rx.register_read();
        let leaver = loom::thread::spawn(move || {
            b.try_push(&[2, 0]).expect("room for it");
            b.unregister_write();
        });
        a.try_push(&[1, 0]).expect("room for it");
        leaver.join().unwrap();
        a.try_push(&[1, 1]).expect("room for it");
        assert_eq!(a.producers_word(), 1, "alone, and not holding the word");
        assert_eq!(a.tail_hint(), 3, "the tail hint moved back");
        let mut got = drain(&mut rx);
        got.sort();
        assert_eq!(got, [vec![1, 0], vec![1, 1], vec![2, 0]]);
    });
}

/// The consumers' side of the race above: consumer 2, left alone in a shared role, pops twice
/// (reclaiming the word at its first claim) while consumer 4 registers and pops. The head
/// hint ends at the positions claimed, and every message is received exactly once.
#[test]
fn loom_mpmc_sole_consumer_reclaim_racing_a_join_never_moves_the_head_hint_back() {
    model(3, || {
        let ring = ModelRing::new_reclaim(4, 8);
        let mut tx = ring.endpoint(3);
        tx.register_write();
        for i in 0..3 {
            tx.try_push(&[0, i]).unwrap();
        }
        let mut first = ring.endpoint(1);
        first.register_read();
        let mut left_alone = ring.endpoint(2);
        left_alone.register_read();
        first.unregister_read();
        let alone = loom::thread::spawn(move || {
            let got: Vec<_> = (0..2)
                .filter_map(|_| pop_within(&mut left_alone, 1))
                .collect();
            (left_alone, got)
        });
        let mut joiner = ring.endpoint(4);
        joiner.register_read();
        let early = pop_within(&mut joiner, 1);
        let (_alone, got_alone) = alone.join().unwrap();
        let mut got: Vec<Vec<u8>> = got_alone.into_iter().chain(early).collect();
        assert_eq!(
            joiner.head_hint(),
            got.len() as u64,
            "the head hint moved back"
        );
        got.extend(drain(&mut joiner));
        got.sort();
        assert_eq!(
            got,
            [vec![0, 0], vec![0, 1], vec![0, 2]],
            "not every message exactly once"
        );
    });
}
