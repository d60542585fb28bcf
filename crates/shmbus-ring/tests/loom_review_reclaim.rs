//! Review of D94 (layout 1.8, ring flag `RECLAIM`): more races of a reclaim (M26–M27) than
//! `loom_mpmc_sole.rs` has, written by the adversarial review. Its real-process finding (a
//! joiner killed between its count and its mark) is
//! `tests/mpmc_sole.rs::a_joiner_killed_between_its_count_and_its_mark_leaves_the_role_reclaimable`.
//!
//! `RUSTFLAGS="--cfg loom" cargo test -p shmbus-ring --release --test loom_review_reclaim`

#[cfg(loom)]
mod models {
    use shmbus_ring::model::check as model;
    use shmbus_ring::model::mpmc::{ModelEndpoint, ModelRing};
    use shmbus_ring::{PopError, PushError};

    /// Pushes `msg`, yielding while a join answers `Full`.
    fn push_spin(tx: &mut ModelEndpoint, msg: &[u8]) {
        loop {
            match tx.try_push(msg) {
                Ok(()) => return,
                Err(PushError::Full) => loom::thread::yield_now(),
                Err(e) => panic!("producer saw {e}"),
            }
        }
    }

    /// Up to `attempts` pushes; whether one went in.
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

    /// One pop; the message, if one came.
    fn pop_once(rx: &mut ModelEndpoint) -> Option<Vec<u8>> {
        let mut buf = Vec::new();
        match rx.try_pop_vec(&mut buf) {
            Ok(_) => Some(buf),
            Err(PopError::Empty) => None,
            Err(e) => panic!("consumer saw {e}"),
        }
    }

    fn drain(rx: &mut ModelEndpoint) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        while let Some(m) = pop_once(rx) {
            got.push(m);
        }
        got
    }

    /// A departure racing a reclaim, with no join edge between the one that leaves and the
    /// one left's later plain store: producer 2 (sole first) is joined by 1; then, at once, 2
    /// pushes and leaves while 1 pushes twice (its first claim may reclaim, its second then
    /// raises with a plain store). The tail hint ends at the positions claimed.
    #[test]
    fn loom_review_departure_racing_reclaim_then_plain_store_producers() {
        model(3, || {
            let ring = ModelRing::new_reclaim(4, 8);
            let mut rx = ring.endpoint(3);
            rx.register_read();
            let mut leaver = ring.endpoint(2);
            leaver.register_write();
            let mut stays = ring.endpoint(1);
            stays.register_write();
            // 1's join of 2 ends here (2 has no claim).
            stays.try_push(&[1, 9]).unwrap();
            assert_eq!(drain(&mut rx), [vec![1, 9]]);
            let l = loom::thread::spawn(move || {
                leaver.try_push(&[2, 0]).expect("room");
                leaver.unregister_write();
            });
            let s = loom::thread::spawn(move || {
                stays.try_push(&[1, 0]).expect("room");
                stays.try_push(&[1, 1]).expect("room");
                stays
            });
            l.join().unwrap();
            let stays = s.join().unwrap();
            assert_eq!(stays.tail_hint(), 4, "the tail hint moved back");
            let mut got = drain(&mut rx);
            got.sort();
            assert_eq!(got, [vec![1, 0], vec![1, 1], vec![2, 0]]);
        });
    }

    /// The consumers' side: consumer 2 pops once and leaves while consumer 1 pops twice.
    #[test]
    fn loom_review_departure_racing_reclaim_then_plain_store_consumers() {
        model(3, || {
            let ring = ModelRing::new_reclaim(4, 8);
            let mut tx = ring.endpoint(3);
            tx.register_write();
            for i in 0..4 {
                tx.try_push(&[0, i]).unwrap();
            }
            let mut leaver = ring.endpoint(2);
            leaver.register_read();
            let mut stays = ring.endpoint(1);
            stays.register_read();
            let first = pop_once(&mut stays).expect("the join of an idle consumer ends at once");
            let l = loom::thread::spawn(move || {
                let got = pop_once(&mut leaver);
                leaver.unregister_read();
                got
            });
            let s = loom::thread::spawn(move || {
                let got: Vec<_> = (0..2).filter_map(|_| pop_once(&mut stays)).collect();
                (stays, got)
            });
            let by_leaver = l.join().unwrap();
            let (mut stays, by_stayer) = s.join().unwrap();
            let mut got: Vec<Vec<u8>> = by_stayer.into_iter().chain(by_leaver).collect();
            got.push(first);
            assert_eq!(
                stays.head_hint(),
                got.len() as u64,
                "the head hint moved back"
            );
            got.extend(drain(&mut stays));
            got.sort();
            assert_eq!(got, [vec![0, 0], vec![0, 1], vec![0, 2], vec![0, 3]]);
        });
    }

    /// The reclaimer leaves (M24 of the word it took back) while another producer registers:
    /// the newcomer either takes the word from 0, or joins the reclaimer, or makes the
    /// reclaim fail; either way the tail hint ends right and nothing is lost.
    #[test]
    fn loom_review_reclaimer_leaves_while_another_registers() {
        model(3, || {
            let ring = ModelRing::new_reclaim(4, 8);
            let mut rx = ring.endpoint(3);
            rx.register_read();
            let mut alone = ring.endpoint(2);
            alone.register_write();
            let mut first = ring.endpoint(1);
            first.register_write();
            first.try_push(&[1, 9]).unwrap();
            first.unregister_write();
            assert_eq!(drain(&mut rx), [vec![1, 9]]);
            let t = loom::thread::spawn(move || {
                alone.try_push(&[2, 0]).expect("room");
                alone.try_push(&[2, 1]).expect("room");
                alone.unregister_write();
            });
            let mut newcomer = ring.endpoint(4);
            newcomer.register_write();
            let early = push_within(&mut newcomer, &[4, 0], 1);
            t.join().unwrap();
            if !early {
                push_spin(&mut newcomer, &[4, 0]);
            }
            // Once more, alone by now in every execution.
            newcomer.try_push(&[4, 1]).unwrap();
            assert_eq!(newcomer.tail_hint(), 5, "the tail hint moved back");
            let mut got = drain(&mut rx);
            got.sort();
            assert_eq!(got, [vec![2, 0], vec![2, 1], vec![4, 0], vec![4, 1]]);
        });
    }

    /// A joiner that dies holding a claim (its raise a `fetch_max`, landed or not) is reaped
    /// (repair, M24, roster bit cleared) while the endpoint it joined, left alone, pushes
    /// twice and reclaims: the hint ends at the positions claimed (the dead claim among them),
    /// and the repaired position is passed.
    #[test]
    fn loom_review_dead_joiner_reaped_while_the_one_left_reclaims() {
        model(3, || {
            let ring = ModelRing::new_reclaim(4, 8);
            let mut rx = ring.endpoint(3);
            rx.register_read();
            let mut alone = ring.endpoint(2);
            alone.register_write();
            let mut dying = ring.endpoint(4);
            dying.register_write();
            dying.try_push(&[4, 9]).unwrap();
            assert_eq!(drain(&mut rx), [vec![4, 9]]);
            let t = loom::thread::spawn(move || {
                alone.try_push(&[2, 0]).expect("room");
                alone.try_push(&[2, 1]).expect("room");
                alone
            });
            let d = loom::thread::spawn(move || {
                let claimed = dying.claim_write_and_die();
                (dying, claimed)
            });
            let (mut dead, claimed) = d.join().unwrap();
            assert!(claimed.is_some());
            // The reaper (this thread): repair, give the word back if it names 4, clear
            // the bit.
            let mut reaper = ring.endpoint(5);
            reaper.repair_claims(4);
            dead.unregister_write();
            let alone = t.join().unwrap();
            assert_eq!(alone.tail_hint(), 4, "the tail hint moved back");
            let mut got = drain(&mut rx);
            got.sort();
            assert_eq!(got, [vec![2, 0], vec![2, 1]]);
        });
    }

    /// Roster ABA: endpoint 4, joined already, leaves and registers again with the same tag
    /// (its roster bit cleared, then set again, as `adopt_dead` does to an entry), and
    /// pushes, while 2, left alone, pushes twice. A reclaim that saw the bit cleared must be
    /// joined by 4's second registration (or fail).
    #[test]
    fn loom_review_same_tag_leaves_and_registers_again_while_the_other_reclaims() {
        model(3, || {
            let ring = ModelRing::new_reclaim(4, 8);
            let mut rx = ring.endpoint(3);
            rx.register_read();
            let mut alone = ring.endpoint(2);
            alone.register_write();
            let mut again = ring.endpoint(4);
            again.register_write();
            again.try_push(&[4, 9]).unwrap();
            assert_eq!(drain(&mut rx), [vec![4, 9]]);
            let t = loom::thread::spawn(move || {
                alone.try_push(&[2, 0]).expect("room");
                alone.try_push(&[2, 1]).expect("room");
                alone
            });
            again.unregister_write();
            let mut again = ring.endpoint(4);
            again.register_write();
            let early = push_within(&mut again, &[4, 0], 1);
            let alone = t.join().unwrap();
            if !early {
                push_spin(&mut again, &[4, 0]);
            }
            assert_eq!(alone.tail_hint(), 4, "the tail hint moved back");
            let mut got = drain(&mut rx);
            got.sort();
            assert_eq!(got, [vec![2, 0], vec![2, 1], vec![4, 0]]);
        });
    }
}
