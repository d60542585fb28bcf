//! loom models of the SPSC publish/consume protocol: every interleaving (within loom's bounds)
//! of one producer and one consumer on a tiny ring that wraps, with payload bytes race-checked.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p shmbus-ring --release loom`.
#![cfg(loom)]

use shmbus_ring::model::{spin, spsc::pair};
use shmbus_ring::{PopError, PushError};

use shmbus_ring::model::check as model_with;

fn model(f: impl Fn() + Sync + Send + 'static) {
    model_with(5, f);
}

fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 16 + j) as u8 + 1).collect()
}

/// Sizes chosen so a 32-byte ring wraps and needs padding: records of 16, 24 and 16 bytes.
const LENS: [usize; 3] = [3, 9, 1];

fn consume_all(rx: &mut shmbus_ring::model::spsc::ModelConsumer, lens: &[usize]) {
    let mut buf = Vec::new();
    for (i, &len) in lens.iter().enumerate() {
        spin(|| match rx.try_pop_vec(&mut buf) {
            Ok(_) => Some(()),
            Err(PopError::Empty) => None,
            Err(e) => panic!("consumer saw {e}"),
        });
        assert_eq!(buf, payload(i, len), "record {i}");
    }
    assert!(matches!(rx.try_pop_vec(&mut buf), Err(PopError::Empty)));
}

#[test]
fn loom_spsc_single_records_arrive_whole_and_in_order_across_the_wrap() {
    model(|| {
        let (mut tx, mut rx) = pair(32);
        let producer = loom::thread::spawn(move || {
            for (i, &len) in LENS.iter().enumerate() {
                let data = payload(i, len);
                spin(|| match tx.try_push(&data) {
                    Ok(()) => Some(()),
                    Err(PushError::Full) => None,
                    Err(e) => panic!("producer saw {e}"),
                });
            }
        });
        consume_all(&mut rx, &LENS);
        producer.join().unwrap();
    });
}

#[test]
fn loom_spsc_a_batch_is_published_by_one_store_and_seen_whole() {
    model(|| {
        let (mut tx, mut rx) = pair(64);
        let lens = [1, 2, 3];
        let producer = loom::thread::spawn(move || {
            let recs: Vec<Vec<u8>> = lens
                .iter()
                .enumerate()
                .map(|(i, &l)| payload(i, l))
                .collect();
            let refs: Vec<&[u8]> = recs.iter().map(|r| &r[..]).collect();
            let mut done = 0;
            while done < refs.len() {
                match tx.try_push_batch(&refs[done..]) {
                    Ok(n) => done += n,
                    Err(PushError::Full) => loom::thread::yield_now(),
                    Err(e) => panic!("producer saw {e}"),
                }
            }
        });
        consume_all(&mut rx, &lens);
        producer.join().unwrap();
    });
}

/// Batches on a 64-byte ring where padding lands *inside* a batch (a Relaxed header after the
/// deferred first one), and batches that stop early at Full after that padding.
#[test]
fn loom_spsc_batches_that_wrap_with_padding_inside() {
    // Six records in two batches: bound 4 (bound 5 takes minutes).
    model_with(4, || {
        let (mut tx, mut rx) = pair(64);
        // [1,1,1] fills 0..48; then [0, 9, 1]: 8 bytes at 48, padding at 56, 24 at 64...
        let lens = [1usize, 1, 1, 0, 9, 1];
        let producer = loom::thread::spawn(move || {
            let recs: Vec<Vec<u8>> = lens
                .iter()
                .enumerate()
                .map(|(i, &l)| payload(i, l))
                .collect();
            let refs: Vec<&[u8]> = recs.iter().map(|r| &r[..]).collect();
            let mut done = 0;
            for end in [3, 6] {
                while done < end {
                    match tx.try_push_batch(&refs[done..end]) {
                        Ok(n) => done += n,
                        Err(PushError::Full) => loom::thread::yield_now(),
                        Err(e) => panic!("producer saw {e}"),
                    }
                }
            }
        });
        consume_all(&mut rx, &lens);
        producer.join().unwrap();
    });
}

/// The audits (PROTOCOL §4.4 "Contradictions") of a consumer that finds the ring empty and of
/// a producer that finds it full, run at every such moment while the other side works
/// honestly: never `Corrupt`, and the consumer's rule for a published `tail` beyond its head
/// never even a suspect (exact, because `tail` is stored with Release, S2, and loaded with
/// Acquire, A9). The one suspect an honest ring can show is a *stale* `tail` behind the head
/// (A9 may read an older S2) whose records the producer has since reused; the model counts it.
#[test]
fn loom_spsc_audits_during_honest_traffic_are_fine() {
    use shmbus_ring::model::Audit;
    use std::sync::atomic::{AtomicUsize, Ordering};
    static STALE: AtomicUsize = AtomicUsize::new(0);
    fn judge(who: &str, a: Audit) {
        match a {
            Audit::Fine => {}
            Audit::Suspect(c) if who == "consumer" && c.what.contains("do not lead to it") => {
                STALE.fetch_add(1, Ordering::Relaxed);
            }
            other => panic!("{who}'s audit of an honest ring: {other:?}"),
        }
    }
    model_with(3, || {
        let (mut tx, mut rx) = pair(32);
        let producer = loom::thread::spawn(move || {
            for (i, &len) in LENS.iter().enumerate() {
                let data = payload(i, len);
                spin(|| match tx.try_push(&data) {
                    Ok(()) => Some(()),
                    Err(PushError::Full) => {
                        judge("producer", tx.audit());
                        None
                    }
                    Err(e) => panic!("producer saw {e}"),
                });
            }
        });
        let mut buf = Vec::new();
        for (i, &len) in LENS.iter().enumerate() {
            spin(|| match rx.try_pop_vec(&mut buf) {
                Ok(_) => Some(()),
                Err(PopError::Empty) => {
                    judge("consumer", rx.audit());
                    None
                }
                Err(e) => panic!("consumer saw {e}"),
            });
            assert_eq!(buf, payload(i, len), "record {i}");
        }
        producer.join().unwrap();
    });
    eprintln!("stale-tail suspects: {}", STALE.load(Ordering::Relaxed));
}

/// An aligned ring (layout 1.5): the producer puts a skip record before a record whose
/// payload would not start on the (here 16-byte) boundary, and commits both with the skip
/// header's store (R1s). Records of 16, 24 and 16 bytes in 64 bytes: the first after a skip,
/// the second already aligned, the third after padding and a skip in the next lap. The
/// consumer must never see a skip header without the record after it (it would report
/// `Corrupt`), and every payload must arrive whole, in order, on the boundary.
#[test]
fn loom_spsc_aligned_records_are_committed_with_their_skip() {
    model(|| {
        let (mut tx, mut rx) = shmbus_ring::model::spsc::pair_aligned(64, 1, 16);
        let lens = [3, 9, 1];
        let producer = loom::thread::spawn(move || {
            for (i, &len) in lens.iter().enumerate() {
                let data = payload(i, len);
                spin(|| match tx.try_push(&data) {
                    Ok(()) => Some(()),
                    Err(PushError::Full) => None,
                    Err(e) => panic!("producer saw {e}"),
                });
            }
        });
        consume_all(&mut rx, &lens);
        producer.join().unwrap();
    });
}
