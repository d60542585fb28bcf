//! A ring's message bound (layout 1.2, `RING_FLAG_BOUNDED`): at most `limit` messages at once,
//! exactly, for both kinds, against a `VecDeque` reference; `len` agrees with the reference;
//! an MPMC bound need not be a power of two; the count survives a change of producer.

use proptest::prelude::*;
use shmbus_ring::{Identity, Kind, Mpmc, PopError, PushError, Ring, Spsc};
use std::collections::VecDeque;

#[derive(Debug, Clone)]
enum Op {
    Push(usize),
    Pop,
    Batch(Vec<usize>),
    Abandon,
}

/// The operations; `abandon` adds dropped reservations, which take nothing from an SPSC
/// ring. (An MPMC ring's abandoned position stays in `len` and the bound until a walk passes
/// it: `mpmc_abandoned_position_counts_until_passed` pins that down.)
fn op(abandon: bool) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..=64).prop_map(Op::Push),
        3 => Just(Op::Pop),
        1 => proptest::collection::vec(0usize..=64, 1..5).prop_map(Op::Batch),
        u32::from(abandon) => Just(Op::Abandon),
    ]
}

/// Runs `ops` on a ring of kind `K` bounded to `limit` messages of up to 64 bytes, checking
/// every answer against the reference.
fn check<K: Kind>(limit: u64, ops: &[Op]) {
    let config = K::with_limit(
        K::config_for(limit, 64, Identity::default(), true).unwrap(),
        limit,
    );
    let ring = Ring::<K>::in_heap(&config).unwrap();
    assert_eq!(ring.capacity(), Some(limit as usize));
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let mut reference: VecDeque<Vec<u8>> = VecDeque::new();
    let mut n = 0u8;
    let mut next = |len: usize| {
        n = n.wrapping_add(1);
        vec![n; len]
    };
    let mut buf = vec![0u8; 64];
    for op in ops {
        match op {
            Op::Push(len) => {
                let msg = next(*len);
                let got = tx.try_push(&msg);
                if reference.len() as u64 == limit {
                    assert_eq!(got, Err(PushError::Full), "push at the bound {limit}");
                } else {
                    assert_eq!(
                        got,
                        Ok(()),
                        "push below the bound, {} held",
                        reference.len()
                    );
                    reference.push_back(msg);
                }
            }
            Op::Pop => {
                let got = rx.try_pop(&mut buf);
                match reference.pop_front() {
                    Some(want) => assert_eq!(got.map(|n| buf[..n].to_vec()), Ok(want)),
                    None => assert_eq!(got, Err(PopError::Empty)),
                }
            }
            Op::Batch(lens) => {
                let msgs: Vec<Vec<u8>> = lens.iter().map(|&l| next(l)).collect();
                let room = (limit as usize - reference.len()).min(msgs.len());
                match tx.try_push_batch(&msgs) {
                    Ok(k) => {
                        assert_eq!(k, room, "a batch takes what the bound leaves");
                        reference.extend(msgs.into_iter().take(k));
                    }
                    Err(e) => {
                        assert_eq!((e, room), (PushError::Full, 0), "a batch at the bound");
                    }
                }
            }
            Op::Abandon => {
                // A reservation dropped unpublished takes nothing from the bound.
                if let Ok(guard) = tx.reserve(8) {
                    drop(guard);
                } else {
                    assert_eq!(reference.len() as u64, limit);
                }
            }
        }
        assert_eq!(ring.len(), Some(reference.len()), "len after {op:?}");
        assert_eq!(
            tx.is_full(),
            reference.len() as u64 == limit,
            "is_full after {op:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn spsc_holds_exactly_limit_messages(limit in 1u64..=9, ops in proptest::collection::vec(op(true), 1..120)) {
        check::<Spsc>(limit, &ops);
    }

    #[test]
    fn mpmc_holds_exactly_limit_messages(limit in 1u64..=9, ops in proptest::collection::vec(op(false), 1..120)) {
        check::<Mpmc>(limit, &ops);
    }
}

#[test]
fn spsc_count_survives_a_new_producer() {
    let config = Spsc::with_limit(
        Spsc::config_for(3, 16, Identity::default(), true).unwrap(),
        3,
    );
    let ring = Ring::<Spsc>::in_heap(&config).unwrap();
    let mut rx = ring.consumer().unwrap();
    {
        let mut tx = ring.producer().unwrap();
        for i in 0..3u8 {
            tx.try_push(&[i]).unwrap();
        }
    }
    let mut tx = ring.producer().unwrap();
    assert_eq!(
        tx.try_push(b"x"),
        Err(PushError::Full),
        "the successor counts the 3 held"
    );
    assert_eq!(ring.len(), Some(3));
    let mut buf = [0u8; 16];
    assert_eq!(rx.try_pop(&mut buf), Ok(1));
    tx.try_push(b"x").unwrap();
    assert_eq!(tx.try_push(b"y"), Err(PushError::Full));
}

#[test]
fn mpmc_bound_below_the_slot_count_wedges_nothing_after_abandoned_writes() {
    // Bound 1 in 2 slots: an abandoned reservation leaves a position no consumer claims; the
    // producer must move the head hint past it itself, or it would wait for ever.
    let config = Mpmc::with_limit(
        Mpmc::config_for(1, 8, Identity::default(), true).unwrap(),
        1,
    );
    let ring = Ring::<Mpmc>::in_heap(&config).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    for _ in 0..5 {
        drop(tx.reserve(8).unwrap());
    }
    tx.try_push(b"one").unwrap();
    assert_eq!(tx.try_push(b"two"), Err(PushError::Full));
    let mut buf = [0u8; 8];
    assert_eq!(rx.try_pop(&mut buf), Ok(3));
    tx.try_push(b"two").unwrap();
}

#[test]
fn a_bound_is_refused_where_it_cannot_hold() {
    let mpmc = Mpmc::with_limit(
        Mpmc::config_for(4, 8, Identity::default(), true).unwrap(),
        5,
    );
    let err = Ring::<Mpmc>::in_heap(&mpmc).unwrap_err().to_string();
    assert!(err.contains("message limit 5"), "{err}");
    let spsc = Spsc::with_limit(
        Spsc::config_for(4, 8, Identity::default(), true).unwrap(),
        0,
    );
    let err = Ring::<Spsc>::in_heap(&spsc).unwrap_err().to_string();
    assert!(err.contains("message limit"), "{err}");
}

#[test]
fn mpmc_abandoned_position_counts_until_passed() {
    let config = Mpmc::with_limit(
        Mpmc::config_for(3, 8, Identity::default(), true).unwrap(),
        3,
    );
    let ring = Ring::<Mpmc>::in_heap(&config).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    tx.try_push(b"a").unwrap();
    drop(tx.reserve(8).unwrap());
    tx.try_push(b"b").unwrap();
    // Three positions taken, two messages: the abandoned one between them counts.
    assert_eq!(ring.len(), Some(3));
    assert_eq!(tx.try_push(b"c"), Err(PushError::Full));
    let mut buf = [0u8; 8];
    assert_eq!(rx.try_pop(&mut buf), Ok(1));
    // The next receive walks past the abandoned position.
    assert_eq!(rx.try_pop(&mut buf), Ok(1));
    assert_eq!(&buf[..1], b"b");
    assert_eq!(ring.len(), Some(0));
    for m in [b"c", b"d", b"e"] {
        tx.try_push(m).unwrap();
    }
    assert_eq!(tx.try_push(b"f"), Err(PushError::Full));
}
