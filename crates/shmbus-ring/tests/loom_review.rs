//! Adversarial review (branch `review`): loom models of MPMC linearizable pops (M17/M18)
//! beyond `loom_mpmc_try_pop_after_push_is_never_empty`.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p shmbus-ring --release --test loom_review`.
#![cfg(loom)]

use shmbus_ring::model::check as model;
use shmbus_ring::model::mpmc::ModelRing;
use shmbus_ring::PopError;

/// M17 treats only `d == -1` (a free or write-claimed word of the very position) as "in
/// flight". A walk can also stop at a *stale* word of the previous lap (`d <= -2`): here
/// consumer D's Acquire loads are ordered after consumer B's release of slot 1 (through its
/// push's claim) and after B's M10, but not after consumer A's release of slot 0, nor after
/// B's later push into slot 0. D's own push has returned (it claimed position 3 after reading
/// the tail hint 3, Relaxed, that B's M4 stored), yet D's pop reads slot 0 as `(1, A)` —
/// A's read claim of position 0 — computes `d = 1 - 3 = -2`, is not "in flight", and reports
/// `Empty` while its own message sits committed at position 3.
///
/// Every pop here must succeed: two messages are in the ring at the start, D pushes before it
/// pops, and only three pops run (A, B, D).
#[test]
fn loom_review_pop_after_push_over_a_stale_previous_lap() {
    model(3, || {
        let ring = ModelRing::new(2, 8);
        let mut main_tx = ring.endpoint(1);
        main_tx.try_push(&[0]).unwrap();
        main_tx.try_push(&[1]).unwrap();
        let mut a_rx = ring.endpoint(2);
        let a = loom::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = a_rx.try_pop_vec(&mut buf);
        });
        let mut b_rx = ring.endpoint(3);
        let mut b_tx = ring.endpoint(4);
        let b = loom::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = b_rx.try_pop_vec(&mut buf);
            let _ = b_tx.try_push(&[2]);
        });
        let mut d_tx = ring.endpoint(5);
        let mut d_rx = ring.endpoint(6);
        let d = loom::thread::spawn(move || {
            if d_tx.try_push(&[3]).is_ok() {
                let mut buf = Vec::new();
                match d_rx.try_pop_vec_settled(&mut buf) {
                    Ok(_) => {}
                    Err(PopError::Empty) => {
                        panic!("try_pop after a returned push found the ring empty (not in flight)")
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        });
        a.join().unwrap();
        b.join().unwrap();
        d.join().unwrap();
    });
}
