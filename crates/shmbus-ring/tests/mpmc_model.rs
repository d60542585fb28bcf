//! The MPMC ring against its model: random single-threaded sequences of every operation,
//! through several producer and consumer endpoints, against a model of positions (committed
//! messages, abandoned positions, free slots) and a `VecDeque` of messages — the test kit's
//! model and driver, which the `ring_ops` fuzz target runs too; and the MPMC calls' edges:
//! messages longer than a slot, bulks larger than the ring, bursts that meet a full ring, long
//! runs of abandoned positions.
#![cfg(not(loom))]

use proptest::prelude::*;
use shmbus_ring::{MpmcConfig, MpmcRing, PopError, PushError};
use shmbus_testkit::ops::{run_mpmc_with, MpmcCase, MpmcOp, Retries, MPMC_ENDPOINTS};

#[derive(Debug, Clone)]
enum Op {
    Push(usize, usize),
    Batch(usize, Vec<usize>),
    All(usize, Vec<usize>),
    ReserveCommit(usize, usize),
    ReserveAbort(usize),
    Pop(usize),
    PopVec(usize),
    PopWith(usize),
    PopBatch(usize, usize),
    Read(usize),
}

const SLOT: usize = 40;
/// Aligned slots (layout 1.7): from 768 bytes, each payload on its slot's second line.
const ALIGNED_SLOT: usize = 800;

fn op(slot: usize) -> impl Strategy<Value = Op> {
    let len = 0..=slot;
    let who = 0..3usize;
    prop_oneof![
        4 => (who.clone(), len.clone()).prop_map(|(w, l)| Op::Push(w, l)),
        1 => (who.clone(), prop::collection::vec(len.clone(), 0..6)).prop_map(|(w, v)| Op::Batch(w, v)),
        1 => (who.clone(), prop::collection::vec(len.clone(), 0..6)).prop_map(|(w, v)| Op::All(w, v)),
        1 => (who.clone(), len.clone()).prop_map(|(w, l)| Op::ReserveCommit(w, l)),
        1 => who.clone().prop_map(Op::ReserveAbort),
        3 => who.clone().prop_map(Op::Pop),
        1 => who.clone().prop_map(Op::PopVec),
        1 => who.clone().prop_map(Op::PopWith),
        1 => (who.clone(), 0..6usize).prop_map(|(w, n)| Op::PopBatch(w, n)),
        1 => who.prop_map(Op::Read),
    ]
}

/// The operations as the shared driver takes them (`shmbus_testkit::ops::run_mpmc_with`, the
/// `ring_ops` fuzz target's MPMC driver): `slot`-byte slots (`SLOT` or `ALIGNED_SLOT`), 3
/// producers and 3 consumers.
fn case(slots: u64, slot: usize, ops: Vec<Op>) -> MpmcCase {
    const _: () = assert!(MPMC_ENDPOINTS == 3);
    let (w, l) = (|w: usize| w as u8, |l: usize| l as u16);
    let ops = ops
        .into_iter()
        .map(|op| match op {
            Op::Push(who, len) => MpmcOp::Push(w(who), l(len)),
            Op::Batch(who, lens) => MpmcOp::Batch(w(who), lens.into_iter().map(l).collect()),
            Op::All(who, lens) => MpmcOp::All(w(who), lens.into_iter().map(l).collect()),
            Op::ReserveCommit(who, len) => MpmcOp::ReserveCommit(w(who), l(len)),
            Op::ReserveAbort(who) => MpmcOp::ReserveAbort(w(who)),
            Op::Pop(who) => MpmcOp::Pop(w(who)),
            Op::PopVec(who) => MpmcOp::PopVec(w(who)),
            Op::PopWith(who) => MpmcOp::PopWith(w(who)),
            Op::PopBatch(who, n) => MpmcOp::PopBatch(w(who), n as u8),
            Op::Read(who) => MpmcOp::Read(w(who)),
        })
        .collect();
    let sel = [2, 4, 8, 64].iter().position(|&s| s == slots).unwrap() as u8;
    let (slots_sel, slot_size) = if slot >= 768 {
        // Bit 2: `768 + slot_size % 96` bytes, aligned.
        (sel | 4, (slot - 768) as u8)
    } else {
        // `1 + slot_size % 96` bytes.
        (sel, slot as u8 - 1)
    };
    MpmcCase {
        slots_sel,
        slot_size,
        ops,
    }
}

/// Checks every operation against the model (`shmbus_testkit::models::MpmcModel`: committed
/// messages, abandoned positions, free slots), each pop exactly (no retry of an `Empty`);
/// then drains: every committed message comes out once, in order.
fn run(slots: u64, slot: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
    run_mpmc_with(&case(slots, slot, ops), Retries::Never).map_err(TestCaseError::fail)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn mpmc_matches_the_model_across_laps_full_empty_and_abandoned_claims(
        slots in prop_oneof![Just(2u64), Just(4), Just(8), Just(64)],
        ops in prop::collection::vec(op(SLOT), 1..300),
    ) {
        run(slots, SLOT, ops)?;
    }

    #[test]
    fn aligned_slots_match_the_model_too(
        slots in prop_oneof![Just(2u64), Just(4), Just(8), Just(64)],
        ops in prop::collection::vec(op(ALIGNED_SLOT), 1..300),
    ) {
        run(slots, ALIGNED_SLOT, ops)?;
    }
}

#[test]
fn a_message_longer_than_the_slot_is_an_error_never_truncated() {
    let ring = MpmcRing::in_heap(&MpmcConfig::new(4, 16)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    assert_eq!(
        tx.try_push(&[0; 17]),
        Err(PushError::TooLarge { len: 17, max: 16 })
    );
    assert_eq!(
        tx.try_push_all(&[&[0u8; 3][..], &[0; 17]]),
        Err(PushError::TooLarge { len: 17, max: 16 })
    );
    assert_eq!(
        tx.try_push_batch(&[&[0u8; 17][..]]),
        Err(PushError::TooLarge { len: 17, max: 16 })
    );
    assert_eq!(
        rx.try_pop_vec(&mut Vec::new()),
        Err(PopError::Empty),
        "nothing was pushed"
    );
    let mut small = [0u8; 8];
    tx.try_push(b"ok").unwrap();
    assert_eq!(
        rx.try_pop(&mut small),
        Err(PopError::BufferTooSmall { needed: 16, len: 8 })
    );
    assert_eq!(
        rx.try_pop_with(<[u8]>::to_vec).unwrap(),
        b"ok",
        "nothing was consumed"
    );
}

#[test]
fn a_long_run_of_abandoned_positions_does_not_wedge_consumers() {
    let ring = MpmcRing::in_heap(&MpmcConfig::new(2, 8)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    // Claim and drop uncommitted far more positions than one walk covers (2 * 2 + 64).
    for _ in 0..10_000 {
        drop(tx.reserve(8).unwrap());
    }
    tx.try_push(b"after").unwrap();
    let mut v = Vec::new();
    let mut empties = 0;
    loop {
        match rx.try_pop_vec(&mut v) {
            Ok(_) => break,
            Err(PopError::Empty) => empties += 1,
            Err(e) => panic!("{e}"),
        }
        assert!(
            empties <= 10_000 / (2 * 2 + 64) + 1,
            "consumer wedged behind abandoned positions"
        );
    }
    assert_eq!(v, b"after");
}

#[test]
fn a_bulk_larger_than_the_ring_is_refused_as_too_many_not_full() {
    let ring = MpmcRing::in_heap(&MpmcConfig::new(64, 8)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let batch: Vec<&[u8]> = vec![b"m"; 65];
    for _ in 0..4 {
        assert_eq!(
            tx.try_push_all(&batch),
            Err(PushError::TooMany { count: 65, max: 64 })
        );
    }
    tx.try_push(b"hello").unwrap();
    assert_eq!(rx.try_pop_with(<[u8]>::to_vec).unwrap(), b"hello");
}

#[test]
fn a_burst_that_meets_an_error_midway_reports_what_it_pushed() {
    let ring = MpmcRing::in_heap(&MpmcConfig::new(4, 8)).unwrap();
    let mut tx = ring.producer().unwrap();
    // Four fit in four slots; the fifth meets Full: the burst reports the four.
    let n = tx
        .try_push_batch(&[&b"a"[..], b"b", b"c", b"d", b"e"])
        .unwrap();
    assert_eq!(n, 4);
    assert_eq!(tx.try_push_batch(&[&b"f"[..]]), Err(PushError::Full));
}
