//! The SPSC ring against its model: random operation sequences on small rings that wrap
//! often, checked against a `VecDeque` of records and an executable statement of where records
//! go (padding at the wrap, one free word kept after the last record) — the test kit's model
//! and driver, which the `ring_ops` fuzz target runs too; every record size at every offset;
//! and the consumer's batch pop when its callback panics.
#![cfg(not(loom))]

use proptest::prelude::*;
use shmbus_ring::{PushError, SpscConfig, SpscRing};
use shmbus_testkit::ops::{run_spsc, SpscCase, SpscOp};

#[derive(Debug, Clone)]
enum Op {
    Push(usize),
    PushBatch(Vec<usize>),
    ReserveCommit(usize),
    ReserveCommitShorter(usize, usize),
    ReserveAbort(usize),
    Pop,
    PopSmallBuffer(usize),
    PopWith,
    PopBatch(usize),
    Read,
    IsEmpty,
}

fn op(max: usize) -> impl Strategy<Value = Op> {
    let len = prop_oneof![4 => 0..=24usize, 2 => 0..=max, 1 => Just(max)];
    prop_oneof![
        4 => len.clone().prop_map(Op::Push),
        1 => prop::collection::vec(len.clone(), 0..5).prop_map(Op::PushBatch),
        1 => len.clone().prop_map(Op::ReserveCommit),
        1 => (len.clone(), 0..=8usize).prop_map(|(l, s)| Op::ReserveCommitShorter(l, s)),
        1 => len.clone().prop_map(Op::ReserveAbort),
        4 => Just(Op::Pop),
        1 => (0..=16usize).prop_map(Op::PopSmallBuffer),
        1 => Just(Op::PopWith),
        1 => (0..6usize).prop_map(Op::PopBatch),
        2 => Just(Op::Read),
        1 => Just(Op::IsEmpty),
    ]
}

/// The operations as the shared driver takes them (`shmbus_testkit::ops::run_spsc`, the
/// `ring_ops` fuzz target's SPSC driver), with every length clamped to the ring's limit `max`
/// first (the driver maps lengths within the limit to themselves).
fn case(cap: u64, max: usize, ops: Vec<Op>) -> SpscCase {
    let len = |l: usize| l.min(max) as u16;
    let ops = ops
        .into_iter()
        .map(|op| match op {
            Op::Push(l) => SpscOp::Push(len(l)),
            Op::PushBatch(ls) => SpscOp::PushBatch(ls.into_iter().map(len).collect()),
            Op::ReserveCommit(l) => SpscOp::ReserveCommit(len(l)),
            Op::ReserveCommitShorter(l, s) => SpscOp::ReserveCommitShorter(len(l), s as u8),
            Op::ReserveAbort(l) => SpscOp::ReserveAbort(len(l)),
            Op::Pop => SpscOp::Pop,
            Op::PopSmallBuffer(size) => SpscOp::PopSmallBuffer(size as u8),
            Op::PopWith => SpscOp::PopWith,
            Op::PopBatch(n) => SpscOp::PopBatch(n as u8),
            Op::Read => SpscOp::Read,
            Op::IsEmpty => SpscOp::IsEmpty,
        })
        .collect();
    SpscCase {
        cap_shift: cap.trailing_zeros() as u8 - 6,
        max_record: 0,
        ops,
    }
}

/// Checks every operation against the model (`shmbus_testkit::models::SpscModel`: where
/// records go, padding at the wrap, one free word kept after the last record) and the
/// published positions after each step; then drains: everything committed comes out, in
/// order.
fn run(cap: u64, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let max = SpscRing::in_heap(&SpscConfig::new(cap))
        .unwrap()
        .max_record();
    run_spsc(&case(cap, max, ops)).map_err(TestCaseError::fail)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn spsc_matches_the_model_across_wraparound_full_and_empty(
        cap in prop_oneof![Just(64u64), Just(128), Just(256), Just(1024)],
        ops in prop::collection::vec(op(1008), 1..400),
    ) {
        run(cap, ops)?;
    }
}

#[test]
fn every_record_size_round_trips_at_every_offset() {
    // Deterministic sweep: each payload length from 0 to the limit, starting at each 8-byte
    // offset of a 128-byte ring.
    let cap = 128;
    for start in (0..cap).step_by(8) {
        let ring = SpscRing::in_heap(&SpscConfig::new(cap)).unwrap();
        let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        let mut buf = Vec::new();
        if start > 0 {
            tx.try_push(&vec![0; start as usize - 8]).unwrap();
            rx.try_pop_vec(&mut buf).unwrap();
        }
        for len in 0..=ring.max_record() {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            if let Err(e) = tx.try_push(&data) {
                // A record longer than the rest of the lap waits for the consumer to pass the
                // padding published in front of it; in an empty ring, one retry succeeds.
                assert_eq!(e, PushError::Full, "len {len} after offset {start}");
                assert!(rx.is_empty());
                tx.try_push(&data).unwrap();
            }
            rx.try_pop_vec(&mut buf).unwrap();
            assert_eq!(buf, data, "len {len} after offset {start}");
        }
    }
}

#[test]
fn a_panic_in_a_pop_batch_callback_does_not_redeliver_records_already_handed_out() {
    let ring = SpscRing::in_heap(&SpscConfig::new(256)).unwrap();
    let mut tx = ring.producer().unwrap();
    for i in 0u8..3 {
        tx.try_push(&[i]).unwrap();
    }
    let r2 = ring.clone();
    let outcome = std::panic::catch_unwind(move || {
        let mut rx = r2.consumer().unwrap();
        let _ = rx.try_pop_batch(10, |r| {
            assert_ne!(r[0], 2, "callback fails on the third record");
        });
    });
    assert!(outcome.is_err());
    let mut rx = ring.consumer().unwrap();
    let mut buf = Vec::new();
    rx.try_pop_vec(&mut buf).unwrap();
    assert_eq!(buf, [2]);
}

/// D89: many deterministic random cases through the shared driver, with
/// lengths clustered around the 192/256 thresholds and the limit, small rings and record
/// limits.
#[test]
fn mid_size_records_match_the_model_on_small_rings_and_record_limits() {
    let mut rng = shmbus_testkit::rng::Rng::new(0x2545_F491_4F6C_DD1Du64);
    let mut rand = move |n: u64| rng.below(n);
    for case_no in 0..20_000u32 {
        let cap_shift = 2 + rand(4) as u8; // 256 .. 2048
        let max_record = if rand(3) == 0 { rand(2048) as u16 } else { 0 };
        let mut ops = Vec::new();
        for _ in 0..rand(200) {
            fn len(rand: &mut impl FnMut(u64) -> u64) -> u16 {
                match rand(4) {
                    0 => (176 + rand(96)) as u16,
                    1 => rand(48) as u16,
                    2 => (rand(2048)) as u16,
                    _ => (184 + 8 * rand(10) + rand(8)) as u16,
                }
            }
            let op = match rand(12) {
                0..=2 => SpscOp::Push(len(&mut rand)),
                3 => {
                    let k = rand(4);
                    SpscOp::PushBatch((0..k).map(|_| len(&mut rand)).collect())
                }
                4 => SpscOp::ReserveCommit(len(&mut rand)),
                5 => SpscOp::ReserveCommitShorter(len(&mut rand), rand(250) as u8),
                6 => SpscOp::ReserveAbort(len(&mut rand)),
                7 | 8 => SpscOp::Pop,
                9 => SpscOp::Read,
                10 => SpscOp::PopBatch(rand(4) as u8),
                _ => SpscOp::PopWith,
            };
            ops.push(op);
        }
        let case = SpscCase {
            cap_shift,
            max_record,
            ops,
        };
        if let Err(e) = run_spsc(&case) {
            panic!("case {case_no}: {e}\n{case:?}");
        }
    }
}
