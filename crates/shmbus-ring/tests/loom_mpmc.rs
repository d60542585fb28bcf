//! loom models of the MPMC protocol: producers and consumers racing on a ring of 2 slots, every
//! message received exactly once and in each producer's order, payloads race-checked.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p shmbus-ring --release loom`.
#![cfg(loom)]

use shmbus_ring::model::mpmc::{ModelEndpoint, ModelRing};
use shmbus_ring::{PopError, PushError};

use shmbus_ring::model::check as model;

/// Tries once to push `[p, s]` for each `s` in order, stopping at the first `Full` (loom explores
/// bounded loops only); returns how many went in. The rest are pushed after the race.
fn push_some(tx: &mut ModelEndpoint, p: u8, per: u8) -> u8 {
    for s in 0..per {
        match tx.try_push(&[p, s]) {
            Ok(()) => {}
            Err(PushError::Full) => return s,
            Err(e) => panic!("producer saw {e}"),
        }
    }
    per
}

/// A bounded number of pop attempts.
fn pop_some(rx: &mut ModelEndpoint, attempts: usize) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = Vec::new();
    for _ in 0..attempts {
        match rx.try_pop_vec(&mut buf) {
            Ok(_) => got.push(buf.clone()),
            Err(PopError::Empty) => {}
            Err(e) => panic!("consumer saw {e}"),
        }
    }
    got
}

/// After the race, single-threaded: push what producers did not get in, draining as we go.
fn finish(
    tx: &mut ModelEndpoint,
    rx: &mut ModelEndpoint,
    rest: &[(u8, u8)],
    per: u8,
) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = Vec::new();
    for &(p, sent) in rest {
        for s in sent..per {
            while tx.try_push(&[p, s]).is_err() {
                rx.try_pop_vec(&mut buf).expect("a full ring has a message");
                got.push(buf.clone());
            }
        }
    }
    while rx.try_pop_vec(&mut buf).is_ok() {
        got.push(buf.clone());
    }
    got
}

/// Messages are `[producer, seq]`; each consumer must see each producer's in increasing order,
/// and all consumers together every message exactly once.
fn check(all: Vec<Vec<Vec<u8>>>, producers: u8, per: u8) {
    let mut seen = Vec::new();
    for got in &all {
        for p in 0..producers {
            let seqs: Vec<u8> = got.iter().filter(|m| m[0] == p).map(|m| m[1]).collect();
            assert!(
                seqs.windows(2).all(|w| w[0] < w[1]),
                "producer {p} out of order: {seqs:?}"
            );
        }
        seen.extend(got.iter().cloned());
    }
    seen.sort();
    let want: Vec<Vec<u8>> = (0..producers)
        .flat_map(|p| (0..per).map(move |s| vec![p, s]))
        .collect();
    assert_eq!(seen, want, "not every message exactly once");
}

#[test]
fn loom_mpmc_two_producers_two_consumers_capacity_two_exactly_once() {
    // Four racing threads: bounded to 2 preemptions (about 10 s); a bound of 3 takes hours.
    model(2, || {
        let ring = ModelRing::new(2, 8);
        let producers: Vec<_> = (0..2u8)
            .map(|p| {
                let mut tx = ring.endpoint(1 + p as u64);
                loom::thread::spawn(move || push_some(&mut tx, p, 2))
            })
            .collect();
        let mut rx2 = ring.endpoint(4);
        let consumer2 = loom::thread::spawn(move || pop_some(&mut rx2, 2));
        let mut rx1 = ring.endpoint(3);
        let got1 = pop_some(&mut rx1, 2);
        let sent: Vec<(u8, u8)> = producers
            .into_iter()
            .enumerate()
            .map(|(p, t)| (p as u8, t.join().unwrap()))
            .collect();
        let got2 = consumer2.join().unwrap();
        let rest = finish(&mut ring.endpoint(5), &mut rx1, &sent, 2);
        check(vec![got1, got2, rest], 2, 2);
    });
}

#[test]
fn loom_mpmc_bulk_is_all_or_nothing_and_burst_keeps_order() {
    model(3, || {
        let ring = ModelRing::new(2, 8);
        let mut bulk = ring.endpoint(1);
        let mut single = ring.endpoint(2);
        let mut rx = ring.endpoint(3);
        // Two messages at once into a 2-slot ring, racing a burst from another producer and a
        // consumer: the bulk goes in whole, in order, or not at all.
        let t = loom::thread::spawn(move || bulk.try_push_all(&[&[0u8, 0][..], &[0, 1]]).is_ok());
        let s = loom::thread::spawn(move || single.try_push_batch(&[&[1u8, 0][..]]).is_ok());
        let mut got = pop_some(&mut rx, 2);
        let bulk_in = t.join().unwrap();
        let single_in = s.join().unwrap();
        let mut buf = Vec::new();
        while rx.try_pop_vec(&mut buf).is_ok() {
            got.push(buf.clone());
        }
        let mut want = Vec::new();
        if bulk_in {
            want.extend([vec![0, 0], vec![0, 1]]);
        }
        if single_in {
            want.push(vec![1, 0]);
        }
        let zeros: Vec<&Vec<u8>> = got.iter().filter(|m| m[0] == 0).collect();
        assert!(
            zeros.windows(2).all(|w| w[0][1] < w[1][1]),
            "bulk out of order: {got:?}"
        );
        got.sort();
        assert_eq!(got, want, "bulk_in {bulk_in}, single_in {single_in}");
    });
}

/// A producer dies holding a claimed position (it stops between claiming and committing),
/// racing a live producer; after its death a reaper repairs its claims while the live producer
/// and a consumer go on. Every message of the live producer arrives exactly once, in order,
/// and the ring is not wedged.
#[test]
fn loom_mpmc_repair_of_a_dead_producers_claim_loses_and_wedges_nothing() {
    model(2, || {
        let ring = ModelRing::new(2, 8);
        let mut live = ring.endpoint(1);
        let mut victim = ring.endpoint(2);
        let producer = loom::thread::spawn(move || push_some(&mut live, 0, 2));
        let dying = loom::thread::spawn(move || victim.claim_write_and_die());
        // Death is detected only after the victim's last step (the kernel drops its lock): the
        // join stands for that happens-before.
        let _held = dying.join().unwrap();
        let mut reaper = ring.endpoint(3);
        let repair = loom::thread::spawn(move || {
            reaper.repair_claims(2);
            pop_some(&mut reaper, 2)
        });
        let mut rx = ring.endpoint(4);
        let got1 = pop_some(&mut rx, 1);
        let sent = producer.join().unwrap();
        let got2 = repair.join().unwrap();
        let rest = finish(&mut ring.endpoint(5), &mut rx, &[(0, sent)], 2);
        check(vec![got1, got2, rest], 1, 2);
    });
}

/// A consumer dies holding a message it claimed; the reaper's repair frees that slot for
/// producers. Only that message may be lost; every other arrives exactly once and in order,
/// and producers can fill the ring again.
#[test]
fn loom_mpmc_repair_of_a_dead_consumers_claim_loses_only_its_message() {
    model(2, || {
        let ring = ModelRing::new(2, 8);
        let mut tx = ring.endpoint(1);
        let mut victim = ring.endpoint(2);
        let producer = loom::thread::spawn(move || push_some(&mut tx, 0, 2));
        let dying = loom::thread::spawn(move || victim.claim_read_and_die());
        let held = dying.join().unwrap();
        let mut reaper = ring.endpoint(3);
        let repaired = loom::thread::spawn(move || reaper.repair_claims(2));
        let mut rx = ring.endpoint(4);
        let mut got = pop_some(&mut rx, 2);
        let sent = producer.join().unwrap();
        assert_eq!(repaired.join().unwrap(), usize::from(held.is_some()));
        let mut tx = ring.endpoint(5);
        got.extend(finish(&mut tx, &mut rx, &[(0, sent)], 2));
        let seqs: Vec<u8> = got.iter().map(|m| m[1]).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "order: {seqs:?}");
        // The victim held position `p` = message `p` (one producer, in order): exactly that one
        // is missing.
        let want: Vec<u8> = (0..2u8).filter(|s| Some(u64::from(*s)) != held).collect();
        assert_eq!(seqs, want, "held {held:?}");
        // Not wedged: the ring takes a full lap again.
        for s in 0..2u8 {
            tx.try_push(&[9, s]).expect("slot freed by the repair");
        }
    });
}

/// The audits (PROTOCOL §5.5 "contradictions") of a consumer that finds a 2-slot ring empty
/// and of a producer that finds it full, run at every such moment while the other side works
/// honestly: never `Corrupt`. (`Suspect` is possible — the hints are Relaxed — and is what
/// the two-probe rule is for; the model counts how often it is seen.)
#[test]
fn loom_mpmc_audits_during_honest_traffic_never_report_corrupt() {
    audits_during_honest_traffic(false);
}

/// The same with sole endpoints (PROTOCOL §5.7): each side alone in its role raises its hint
/// with a plain store (M4s before M5, so F2 holds), and the hints end exact.
#[test]
fn loom_mpmc_audits_of_sole_endpoints_never_report_corrupt() {
    audits_during_honest_traffic(true);
}

fn audits_during_honest_traffic(sole: bool) {
    use shmbus_ring::model::{spin, Audit};
    use std::sync::atomic::{AtomicUsize, Ordering};
    static SUSPECTS: AtomicUsize = AtomicUsize::new(0);
    static AUDITS: AtomicUsize = AtomicUsize::new(0);
    fn judge(who: &str, a: Audit) {
        AUDITS.fetch_add(1, Ordering::Relaxed);
        match a {
            Audit::Corrupt(c) => panic!("{who}'s audit of an honest ring: {c}"),
            Audit::Suspect(_) => {
                SUSPECTS.fetch_add(1, Ordering::Relaxed);
            }
            Audit::Fine | Audit::Claimed { .. } => {}
        }
    }
    model(2, move || {
        let ring = if sole {
            ModelRing::new_sole(2, 8)
        } else {
            ModelRing::new(2, 8)
        };
        let mut tx = ring.endpoint(1);
        let mut rx = ring.endpoint(2);
        if sole {
            tx.enter_write();
            rx.enter_read();
        }
        let producer = loom::thread::spawn(move || {
            for s in 0..3u8 {
                spin(|| match tx.try_push(&[0, s]) {
                    Ok(()) => Some(()),
                    Err(PushError::Full) => {
                        judge("producer", tx.audit_write());
                        None
                    }
                    Err(e) => panic!("producer saw {e}"),
                });
            }
        });
        let mut buf = Vec::new();
        for s in 0..3u8 {
            spin(|| match rx.try_pop_vec(&mut buf) {
                Ok(_) => Some(()),
                Err(PopError::Empty) => {
                    judge("consumer", rx.audit_read());
                    None
                }
                Err(e) => panic!("consumer saw {e}"),
            });
            assert_eq!(buf, [0, s]);
        }
        producer.join().unwrap();
        assert_eq!(
            (rx.head_hint(), rx.tail_hint()),
            (3, 3),
            "the hints end exact"
        );
    });
    eprintln!(
        "audits: {}, suspects among them: {}",
        AUDITS.load(Ordering::Relaxed),
        SUSPECTS.load(Ordering::Relaxed)
    );
}

/// crossbeam-channel's `linearizable` test, exactly, on the core: threads that each push and
/// then pop at once always find a message (M17), whatever the interleaving: a read that stops
/// at another thread's half-written message waits for it instead of reporting `Empty`.
#[test]
fn loom_mpmc_try_pop_after_push_is_never_empty() {
    model(3, || {
        let ring = ModelRing::new(2, 8);
        let threads: Vec<_> = (0..2u8)
            .map(|t| {
                let mut tx = ring.endpoint(1 + u64::from(t));
                let mut rx = ring.endpoint(3 + u64::from(t));
                loom::thread::spawn(move || {
                    tx.try_push(&[t]).expect("a ring of 2 slots has room for 2");
                    let mut buf = Vec::new();
                    rx.try_pop_vec_settled(&mut buf)
                        .expect("try_pop after a returned push found the ring empty");
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut buf = Vec::new();
        assert_eq!(
            ring.endpoint(5).try_pop_vec(&mut buf),
            Err(PopError::Empty),
            "both messages were taken"
        );
    });
}

/// The blind first claim of a consumer (M8', D58) reads with Acquire when it fails: a consumer
/// that took the position before, and whose blind CAS at the next one finds another consumer's
/// read claim there, must then see what that consumer did before its claim — here its push of a
/// message at the position after — and take that message rather than report `Empty` (the queue
/// was never empty: `m1` is taken only after `x` was pushed). With M8' Relaxed on failure, the
/// walk's load of the next slot may return the word before that push (free for exactly that
/// position), and the pop reports `Empty`: this model fails.
#[test]
fn loom_mpmc_blind_read_claim_sees_what_the_claimer_did_before() {
    model(3, || {
        let ring = ModelRing::new(2, 8);
        let mut tx = ring.endpoint(1);
        let mut c1 = ring.endpoint(3);
        let mut buf = Vec::new();
        tx.try_push(&[0]).expect("room");
        c1.try_pop_vec(&mut buf).expect("m0");
        // c1 took position 0, so its next claim, at position 1, is a blind CAS.
        tx.try_push(&[1]).expect("room");
        let mut tx2 = ring.endpoint(2);
        let mut c2 = ring.endpoint(4);
        let other = loom::thread::spawn(move || {
            tx2.try_push(&[9]).expect("a slot is free for x");
            let mut buf = Vec::new();
            c2.try_pop_vec_settled(&mut buf)
                .expect("m1 or x is there for the second consumer");
            buf
        });
        c1.try_pop_vec_settled(&mut buf)
            .expect("the queue held m1, then x, never nothing");
        let theirs = other.join().unwrap();
        let mut got = vec![buf, theirs];
        got.sort();
        assert_eq!(got, vec![vec![1], vec![9]], "each message exactly once");
    });
}

/// The blind first claim of a producer (M2', D58) acquires on success, as M3: the previous
/// lap's consumer read the slot's payload before its release (M11), and the producer writes the
/// payload after its claim. With M2' Relaxed on success, loom finds the payload write racing with
/// that read: this model fails.
#[test]
fn loom_mpmc_blind_write_claim_follows_the_previous_laps_read() {
    model(3, || {
        let ring = ModelRing::new(2, 8);
        let mut tx = ring.endpoint(1);
        let mut rx = ring.endpoint(2);
        tx.try_push(&[0]).expect("room");
        tx.try_push(&[1]).expect("room");
        let consumer = loom::thread::spawn(move || {
            let mut buf = Vec::new();
            rx.try_pop_vec_settled(&mut buf).expect("two messages wait");
            (rx, buf)
        });
        // The ring is full until the consumer releases position 0's slot; then position 2
        // takes it (a blind CAS at the tail hint).
        let mut pushed = false;
        for _ in 0..3 {
            match tx.try_push(&[2]) {
                Ok(()) => {
                    pushed = true;
                    break;
                }
                Err(PushError::Full) => loom::thread::yield_now(),
                Err(e) => panic!("producer saw {e}"),
            }
        }
        let (mut rx, first) = consumer.join().unwrap();
        assert_eq!(first, vec![0], "the first message first");
        if !pushed {
            tx.try_push(&[2]).expect("the slot is free after the join");
        }
        let mut rest = Vec::new();
        let mut buf = Vec::new();
        while rx.try_pop_vec(&mut buf).is_ok() {
            rest.push(buf.clone());
        }
        assert_eq!(rest, vec![vec![1], vec![2]], "the rest in order, once");
    });
}
