//! The adversarial review of sole endpoints (PROTOCOL §5.7): a joining consumer whose walk
//! meets a position the sole consumer passed without claiming it — a dead producer's claim that
//! the sole consumer's own probe repaired (M13) before it walked past it and claimed the next
//! message.
//!
//! The review found that §5.7's first argument covered the sole endpoint's *claims* (`SeqCst`, so
//! a joiner's walk after its fence sees them) but not a position the sole consumer *passed*,
//! last written by a Release store or CAS of another role (M6, M13): in C++20 terms the joiner
//! could read the dead claim, end its join there and later raise the head hint past the sole
//! consumer's pending plain store (M10s), which would then move it back. Those writes and the
//! loads that pass them (M7, M8, M19) are now `SeqCst` ("passed positions" in §5.7). loom cannot
//! tell that from the gap: it treats `SeqCst` accesses as `AcqRel`, and its `fence(SeqCst)` joins
//! the causality of earlier `SeqCst` fences (stronger than the C++20 fence), so under loom the
//! model passes either way; without the join it fails (the hint moved back), so the model has
//! teeth for the join itself.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p shmbus-ring --release --test loom_review_sole`.
#![cfg(loom)]

use shmbus_ring::model::check as model;
use shmbus_ring::model::mpmc::{ModelEndpoint, ModelRing};
use shmbus_ring::PopError;

/// Up to `attempts` pops, yielding after each `Empty`; the first byte of each message received.
fn pop_some(rx: &mut ModelEndpoint, attempts: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = Vec::new();
    for _ in 0..attempts {
        match rx.try_pop_vec(&mut buf) {
            Ok(_) => got.push(buf[0]),
            Err(PopError::Empty) => loom::thread::yield_now(),
            Err(e) => panic!("consumer saw {e}"),
        }
    }
    got
}

/// Position 0 is claimed by a producer that dies; positions 1 and 2 hold messages `[1]` and
/// `[2]`. The sole consumer reaps the dead producer and pops while a second consumer joins
/// and pops. Each message arrives once, and the head hint, read before anything else
/// raises it, is past every position a message was taken from: a hint that moved back would
/// sit at or below one of them.
#[test]
fn loom_review_sole_joiner_meets_a_position_the_sole_consumer_passed_unclaimed() {
    model(2, || {
        let ring = ModelRing::new_sole(4, 8);
        let mut dead = ring.endpoint(1);
        dead.enter_write();
        assert_eq!(dead.claim_write_and_die(), Some(0));
        let mut tx = ring.endpoint(5);
        tx.enter_write();
        tx.try_push(&[1])
            .expect("the dead producer's raise is in: joined");
        tx.try_push(&[2]).expect("room");
        let mut alone = ring.endpoint(2);
        alone.enter_read();
        let mut joiner = ring.endpoint(3);
        let sole = loom::thread::spawn(move || {
            // The sole consumer's probe reaps the dead producer (L12: its claim of 0 becomes
            // "passed", M13, a Release CAS in no SeqCst order), then it pops: it walks past 0
            // and claims 1. One attempt: a second would walk past what the joiner took and
            // raise the hint again, hiding a hint that moved back.
            assert_eq!(alone.repair_claims(1), 1);
            let got = pop_some(&mut alone, 1);
            (alone, got)
        });
        joiner.enter_read();
        let mut got = pop_some(&mut joiner, 2);
        let (_alone, got_alone) = sole.join().unwrap();
        got.extend(got_alone);
        // Read before the drain, whose walk would raise the hint again.
        let head = joiner.head_hint();
        if let Some(&last) = got.iter().max() {
            assert!(
                head > u64::from(last),
                "the head hint moved back: {head} with {got:?} taken"
            );
        }
        let mut buf = Vec::new();
        while joiner.try_pop_vec(&mut buf).is_ok() {
            got.push(buf[0]);
        }
        got.sort_unstable();
        assert_eq!(got, [1, 2], "not every message exactly once");
    });
}
