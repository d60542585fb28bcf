//! The fuzz targets' invariants as property tests on stable Rust, so CI checks them without a
//! nightly toolchain. The drivers are the fuzz targets' own (`shmbus-testkit`, which the
//! targets in `fuzz/` call): a case that fails here fails the same way under
//! `cargo +nightly fuzz run`, and a fuzz finding becomes a regression test here by writing its
//! case out (`cargo fuzz fmt`).
//!
//! - `ring_ops`: operation sequences on SPSC and MPMC rings agree with a model of positions.
//! - `open_segment`: any image, opened as either ring kind and driven, gives errors only.
//! - `hostile_peer`: arbitrary writes into a live ring through a second mapping give errors,
//!   never a panic, and a poisoned header is reported as `Corrupt`.
#![cfg(not(loom))]

use proptest::prelude::*;
use shmbus_ring::{MpmcRing, Segment, SpscRing};
use shmbus_testkit::honest::Honest;
use shmbus_testkit::hostile::{run_hostile, HostileCase, Step, Target, Value};
use shmbus_testkit::images::{mpmc_image, no_wait, run_open, spsc_image, Base, OpenCase, Patch};
use shmbus_testkit::ops::{run_mpmc, run_spsc, MpmcCase, MpmcOp, SpscCase, SpscOp};

/// Sizes as the fuzzer draws them: mostly small, sometimes anything, sometimes over the limit
/// (`0xF000..` maps to `limit + 1 + low byte`).
fn raw_len() -> impl Strategy<Value = u16> {
    prop_oneof![4 => 0..=24u16, 2 => 0..0xF000u16, 1 => 0xF000..=0xFFFFu16]
}

fn spsc_op() -> impl Strategy<Value = SpscOp> {
    prop_oneof![
        4 => raw_len().prop_map(SpscOp::Push),
        1 => prop::collection::vec(raw_len(), 0..5).prop_map(SpscOp::PushBatch),
        1 => raw_len().prop_map(SpscOp::ReserveCommit),
        1 => (raw_len(), 0..=8u8).prop_map(|(l, s)| SpscOp::ReserveCommitShorter(l, s)),
        1 => raw_len().prop_map(SpscOp::ReserveAbort),
        4 => Just(SpscOp::Pop),
        1 => any::<u8>().prop_map(SpscOp::PopSmallBuffer),
        1 => Just(SpscOp::PopVec),
        1 => Just(SpscOp::PopWith),
        1 => any::<u8>().prop_map(SpscOp::PopBatch),
        1 => Just(SpscOp::Read),
        1 => Just(SpscOp::Read),
        1 => Just(SpscOp::IsEmpty),
    ]
}

fn mpmc_op() -> impl Strategy<Value = MpmcOp> {
    let who = any::<u8>();
    prop_oneof![
        4 => (who, raw_len()).prop_map(|(w, l)| MpmcOp::Push(w, l)),
        1 => (who, prop::collection::vec(raw_len(), 0..6)).prop_map(|(w, v)| MpmcOp::Batch(w, v)),
        1 => (who, prop::collection::vec(raw_len(), 0..6)).prop_map(|(w, v)| MpmcOp::All(w, v)),
        1 => (who, any::<u16>()).prop_map(|(w, l)| MpmcOp::ReserveCommit(w, l)),
        1 => who.prop_map(MpmcOp::ReserveAbort),
        3 => who.prop_map(MpmcOp::Pop),
        1 => (who, any::<u8>()).prop_map(|(w, n)| MpmcOp::PopSmallBuffer(w, n)),
        1 => who.prop_map(MpmcOp::PopVec),
        1 => who.prop_map(MpmcOp::PopWith),
        1 => (who, any::<u8>()).prop_map(|(w, n)| MpmcOp::PopBatch(w, n)),
        1 => who.prop_map(MpmcOp::Read),
        1 => (who, any::<bool>()).prop_map(|(w, p)| MpmcOp::Leave(w, p)),
    ]
}

fn honest() -> impl Strategy<Value = Honest> {
    prop_oneof![
        4 => raw_len().prop_map(Honest::Push),
        1 => (any::<u8>(), raw_len()).prop_map(|(n, l)| Honest::PushMany(n, l)),
        1 => (raw_len(), any::<bool>()).prop_map(|(l, c)| Honest::Reserve(l, c)),
        3 => Just(Honest::Pop),
        1 => Just(Honest::PopVec),
        1 => any::<u8>().prop_map(Honest::PopMany),
        1 => Just(Honest::Read),
        1 => Just(Honest::Probe),
        1 => any::<bool>().prop_map(Honest::Reattach),
        1 => raw_len().prop_map(Honest::TimedPush),
        1 => Just(Honest::TimedPop),
    ]
}

fn base() -> impl Strategy<Value = Base> {
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..600).prop_map(Base::Raw),
        2 => (any::<u8>(), any::<u16>()).prop_map(|(c, l)| Base::Spsc { cap_shift: c, limit: l }),
        2 => (any::<u8>(), any::<u16>())
            .prop_map(|(s, z)| Base::Mpmc { slots_shift: s, slot_size: z }),
    ]
}

/// Patches land mostly in the header and control blocks, where every value is validated.
fn patch() -> impl Strategy<Value = Patch> {
    let offset = prop_oneof![3 => 0..512u16, 1 => any::<u16>()];
    let value = prop_oneof![
        any::<u64>(),
        0..4u64,
        Just(u64::MAX),
        (0..64u32).prop_map(|b| 1u64 << b)
    ];
    (offset, any::<u8>(), value).prop_map(|(offset, width, value)| Patch {
        offset,
        width,
        value,
    })
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        Just(Target::ProducerPosition),
        Just(Target::ConsumerPosition),
        (any::<bool>(), any::<u8>()).prop_map(|(c, n)| Target::BlockWord(c, n)),
        any::<u16>().prop_map(Target::DataWord),
        Just(Target::AtHead),
        Just(Target::AtTail),
        any::<u16>().prop_map(Target::SlotLen),
        any::<u8>().prop_map(Target::Endpoint),
        any::<u8>().prop_map(Target::Header),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(Value::Raw),
        any::<i8>().prop_map(Value::Nudge),
        (any::<u16>(), any::<u8>()).prop_map(|(a, b)| Value::Plausible(a, b)),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => honest().prop_map(Step::Honest),
        2 => (target(), value()).prop_map(|(t, v)| Step::Write(t, v)),
        1 => any::<u8>().prop_map(Step::Poison),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn ring_ops_spsc_matches_the_model_with_over_limit_sizes_and_custom_limits(
        cap_shift in any::<u8>(),
        max_record in prop_oneof![Just(0u16), any::<u16>()],
        ops in prop::collection::vec(spsc_op(), 1..300),
    ) {
        let case = SpscCase { cap_shift, max_record, ops };
        run_spsc(&case).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn ring_ops_mpmc_matches_the_model_for_every_slot_size(
        slots_sel in any::<u8>(),
        slot_size in any::<u8>(),
        ops in prop::collection::vec(mpmc_op(), 1..300),
    ) {
        let case = MpmcCase { slots_sel, slot_size, ops };
        run_mpmc(&case).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn open_segment_any_image_gives_errors_or_a_working_ring_never_a_panic(
        base in base(),
        patches in prop::collection::vec(patch(), 0..6),
        ops in prop::collection::vec(honest(), 0..40),
    ) {
        run_open(&OpenCase { base, patches, ops }).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn hostile_peer_writes_give_errors_and_poisoned_headers_are_reported(
        mpmc in any::<bool>(),
        geometry in any::<u8>(),
        limit in any::<u8>(),
        steps in prop::collection::vec(step(), 1..120),
    ) {
        run_hostile(&HostileCase { mpmc, geometry, limit, steps }).map_err(TestCaseError::fail)?;
    }
}

/// The images the test kit builds by hand from `docs/PROTOCOL.md` open: the document and the
/// code agree on every header field, for both ring kinds and a spread of geometries.
#[test]
fn images_built_from_the_protocol_document_open_as_their_ring_kind_only() {
    for cap in [64u64, 4096, 1 << 16] {
        for limit in [1, cap / 2, cap - 16] {
            let img = spsc_image(cap, limit);
            let ring = SpscRing::open_in(Segment::heap_from_bytes(&img).unwrap(), &no_wait())
                .unwrap_or_else(|e| panic!("spsc cap {cap} limit {limit}: {e}"));
            assert_eq!(
                (ring.data_capacity(), ring.max_record() as u64),
                (cap, limit)
            );
            let mut tx = ring.producer().unwrap();
            let mut rx = ring.consumer().unwrap();
            tx.try_push(&vec![3; limit as usize]).unwrap();
            assert_eq!(rx.try_pop_vec(&mut Vec::new()).unwrap(), limit as usize);
            assert!(
                MpmcRing::open_in(Segment::heap_from_bytes(&img).unwrap(), &no_wait()).is_err()
            );
        }
    }
    for slots in [2u64, 64, 1024] {
        for size in [1u64, 48, 49, 1000] {
            let img = mpmc_image(slots, size);
            let ring = MpmcRing::open_in(Segment::heap_from_bytes(&img).unwrap(), &no_wait())
                .unwrap_or_else(|e| panic!("mpmc {slots}x{size}: {e}"));
            assert_eq!((ring.slots(), ring.slot_size() as u64), (slots, size));
            let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
            for _ in 0..slots {
                tx.try_push(&vec![5; size as usize]).unwrap();
            }
            assert!(tx.try_push(&[1]).is_err(), "full after {slots}");
            assert_eq!(rx.try_pop_vec(&mut Vec::new()).unwrap(), size as usize);
            assert!(
                SpscRing::open_in(Segment::heap_from_bytes(&img).unwrap(), &no_wait()).is_err()
            );
        }
    }
}

/// Every byte of the header and control blocks of a valid image, set to each of a few values,
/// exhaustively: each image opens and works, or is refused with an error; nothing panics.
#[test]
fn every_single_byte_change_in_the_first_page_is_refused_or_harmless() {
    let ops: Vec<Honest> = vec![
        Honest::Push(10),
        Honest::PushMany(3, 7),
        Honest::Pop,
        Honest::PopMany(4),
        Honest::Reserve(5, true),
        Honest::Read,
        Honest::Reattach(true),
        Honest::Push(0xFFFF),
        Honest::PopVec,
    ];
    for base in [
        Base::Spsc {
            cap_shift: 2,
            limit: 100,
        },
        Base::Mpmc {
            slots_shift: 2,
            slot_size: 40,
        },
    ] {
        for offset in 0..640u16 {
            for value in [0u64, 1, 0x80, 0xFF] {
                let case = OpenCase {
                    base: base.clone(),
                    patches: vec![Patch {
                        offset,
                        width: 0,
                        value,
                    }],
                    ops: ops.clone(),
                };
                if let Err(e) = run_open(&case) {
                    panic!("{base:?} byte {offset} = {value:#x}: {e}");
                }
            }
        }
    }
}

/// Finding 1 (`ring_ops`, MPMC), fixed in c2768d7: positions abandoned by honest producers
/// (a dropped `WriteGuard`, a bulk push that did not fit) were skipped by a consumer's walk one
/// by one, and the walk gave up as "empty" after `2 × slots + 64` steps; more abandoned
/// positions than that between the head hint and a committed message wedged every consumer.
#[test]
fn a_message_after_many_abandoned_claims_is_still_delivered() {
    use shmbus_ring::{MpmcConfig, PopError};
    let ring = MpmcRing::in_heap(&MpmcConfig::new(2, 16)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    for _ in 0..2 * 2 + 64 {
        drop(tx.reserve(16).unwrap()); // abandoned: consumers walk past it
    }
    tx.try_push(b"after").unwrap();
    // Each pop walks `2 × slots + 64` positions and moves the head hint past the run, so the
    // message arrives within a couple of calls (the first may still report empty).
    let got = (0..3)
        .map(|_| rx.try_pop_with(<[u8]>::to_vec))
        .find(|r| *r != Err(PopError::Empty));
    assert_eq!(got, Some(Ok(b"after".to_vec())), "consumers wedged");
    assert_eq!(rx.try_pop_with(<[u8]>::to_vec), Err(PopError::Empty));
}

// ---------------------------------------------------------------------------------------------
// `hostile_peer`, broadcast half: scribbles over header words, cursors, intent, history and
// roster words of a live broadcast ring between honest operations.
// ---------------------------------------------------------------------------------------------

mod broadcast {
    use proptest::prelude::*;
    use shmbus_testkit::hostile_broadcast::{
        run_hostile_broadcast, BroadcastCase, Honest, Step, Target, Value,
    };

    fn len() -> impl Strategy<Value = u16> {
        prop_oneof![4 => 0..=64u16, 2 => 0..0xF000u16, 1 => 0xF000..=0xFFFFu16]
    }

    fn honest() -> impl Strategy<Value = Honest> {
        let who = any::<u8>();
        prop_oneof![
            6 => len().prop_map(Honest::Push),
            1 => (any::<u8>(), len()).prop_map(|(n, l)| Honest::PushMany(n, l)),
            1 => (len(), any::<bool>()).prop_map(|(l, c)| Honest::Reserve(l, c)),
            1 => len().prop_map(Honest::TimedPush),
            1 => any::<bool>().prop_map(Honest::Policy),
            1 => Just(Honest::ReattachPublisher),
            5 => who.prop_map(Honest::Pop),
            1 => who.prop_map(Honest::PopVec),
            1 => (who, any::<u8>()).prop_map(|(w, m)| Honest::PopMany(w, m)),
            1 => who.prop_map(Honest::Read),
            1 => who.prop_map(Honest::TimedPop),
            3 => (who, any::<bool>(), any::<u8>()).prop_map(|(w, t, s)| Honest::Join(w, t, s)),
            1 => who.prop_map(Honest::Leave),
            1 => who.prop_map(Honest::Retether),
        ]
    }

    fn target() -> impl Strategy<Value = Target> {
        prop_oneof![
            Just(Target::Tail),
            any::<u8>().prop_map(Target::Publisher),
            Just(Target::Gen),
            Just(Target::Tethered),
            (any::<u8>(), any::<u8>()).prop_map(|(l, f)| Target::Cursor(l, f)),
            any::<u16>().prop_map(Target::History),
            any::<u16>().prop_map(Target::DataWord),
            any::<u8>().prop_map(Target::AtCursor),
            Just(Target::AtTail),
            any::<u8>().prop_map(Target::Endpoint),
            any::<u8>().prop_map(Target::Header),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<u64>().prop_map(Value::Raw),
            Just(Value::Raw(u64::MAX)),
            Just(Value::Raw(0)),
            (0..64u32).prop_map(|b| Value::Raw(1 << b)),
            any::<i8>().prop_map(Value::Nudge),
            (any::<u16>(), any::<u8>(), -2..=2i8).prop_map(|(l, k, d)| Value::Plausible(l, k, d)),
        ]
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            8 => honest().prop_map(Step::Honest),
            2 => (target(), value()).prop_map(|(t, v)| Step::Write(t, v)),
            1 => any::<u8>().prop_map(Step::Poison),
        ]
    }

    proptest! {
        // `SHMBUS_HOSTILE_CASES` runs more (a longer hunt).
        #![proptest_config(ProptestConfig {
            cases: std::env::var("SHMBUS_HOSTILE_CASES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(512),
            ..ProptestConfig::default()
        })]

        #[test]
        fn hostile_peer_broadcast_writes_give_errors_and_poisoned_headers_are_reported(
            geometry in any::<u8>(),
            limit in prop_oneof![Just(0u16), any::<u16>()],
            history in any::<u8>(),
            steps in prop::collection::vec(step(), 1..150),
        ) {
            run_hostile_broadcast(&BroadcastCase { geometry, limit, history, steps })
                .map_err(TestCaseError::fail)?;
        }
    }
}

/// Found by the `hostile_peer` fuzz target (s12): a 255-byte record at position 0 of a ring
/// whose records of 192 bytes and more may be aligned (D89) is committed with a skip record
/// before it. A probe (`is_empty`) reads past the skip without publishing `head`, so a poison
/// written at the published `head` lands on the skip the consumer has already passed. The
/// consumer must still report the poisoned ring as corrupt: the driver poisons the record
/// after a valid skip, which the consumer reads next in either case.
#[test]
fn a_poison_after_a_probe_past_a_skip_record_is_reported() {
    let steps = vec![
        Step::Honest(Honest::Push(255)),
        Step::Honest(Honest::PushMany(16, 10610)),
        Step::Honest(Honest::Push(255)),
        Step::Honest(Honest::Reattach(true)),
        Step::Honest(Honest::Probe),
        Step::Poison(0),
    ];
    for extra in [0, 1] {
        let mut steps = steps.clone();
        *steps.last_mut().unwrap() = Step::Poison(extra);
        run_hostile(&HostileCase {
            mpmc: false,
            geometry: 48,
            limit: 255,
            steps,
        })
        .unwrap();
    }
    // Without the probe the consumer meets the skip itself; the poison is reported too.
    run_hostile(&HostileCase {
        mpmc: false,
        geometry: 48,
        limit: 255,
        steps: vec![Step::Honest(Honest::Push(255)), Step::Poison(0)],
    })
    .unwrap();
}

/// `n` positions abandoned by endpoint `w` (an MPMC fuzz case's run): `ReserveAbort(w)` ×
/// `n`.
fn aborts(w: u8, n: usize) -> Vec<MpmcOp> {
    vec![MpmcOp::ReserveAbort(w); n]
}

/// Runs of `lens` positions abandoned by endpoint `w`, one abandoned by `between` after each
/// run but the last.
fn runs(w: u8, lens: &[usize], between: u8) -> Vec<MpmcOp> {
    let mut ops = Vec::new();
    for (i, &n) in lens.iter().enumerate() {
        if i > 0 {
            ops.push(MpmcOp::ReserveAbort(between));
        }
        ops.extend(aborts(w, n));
    }
    ops
}

/// The `ring_ops` cases below: 4 slots of 53 bytes, packed (`slots_sel` 49, `slot_size` 244).
fn found_case(parts: &[Vec<MpmcOp>]) -> MpmcCase {
    MpmcCase {
        slots_sel: 49,
        slot_size: 244,
        ops: parts.concat(),
    }
}

/// Found by `ring_ops` (s13): a fault of the oracle, not of the ring. The oracle lets a pop
/// retry `2 + n / (2 × slots + 64)` times while the model holds a message (a walk passes that
/// many abandoned positions per call), with `n` the model's length. But a pop that found no
/// message (step 129 here, a `read` while only abandoned positions were held) emptied the
/// model of ~125 abandoned positions, which the ring's walk had passed only 72 of; so at step
/// 184, with the run still ahead of the head hint, the oracle counted a run of ~54 positions
/// where ~190 lay ahead, and allowed two calls where four were needed. `n` now counts from
/// the last message consumed (`MpmcModel::to_walk`). Failed before that change.
#[test]
fn a_pop_after_an_empty_one_gets_the_calls_for_the_whole_run() {
    use MpmcOp::{PopBatch, PopVec, Push, Read, ReserveAbort as Ra, ReserveCommit as Rc};
    let case = found_case(&[
        vec![Push(133, 27499), PopVec(181), Read(255), Read(255)],
        runs(107, &[18, 10, 7, 27, 18, 10, 15, 12], 228),
        vec![Ra(235), Read(107)],
        runs(107, &[19, 5], 47),
        vec![Ra(71)],
        vec![Rc(71, 18247); 5],
        aborts(107, 3),
        vec![Push(0, 27392)],
        runs(107, &[13, 5], 228),
        vec![PopBatch(107, 107)],
        aborts(107, 7),
        vec![Rc(71, 18247); 3],
        vec![Rc(199, 17991), Rc(71, 18247), Rc(156, 27499)],
        aborts(107, 2),
        vec![Push(0, 0)],
        aborts(107, 14),
    ]);
    assert_eq!(run_mpmc(&case), Ok(()));
}

/// Found by `ring_ops` (s13), right after the case above: again the oracle's bound. A consumer
/// that had never been called (rxs[2], a joiner of the sole consumer, D88) was asked for three
/// messages behind ~157 abandoned positions that no walk had passed. It walks them twice: to
/// join (M23, which raises no hint) and then to claim from the head hint, 72 positions per
/// call each, so it needs more calls than the four one walk's bound allowed. The bound counts
/// two walks. The ring could start its claim walk where the join's stopped; it does not, and
/// a joiner's first pop behind a long run takes up to twice the calls (noted, not changed).
#[test]
fn a_joiner_walks_a_run_of_abandoned_positions_twice() {
    use MpmcOp::{Batch, PopBatch, PopSmallBuffer, PopVec, Push, Read};
    let case = found_case(&[
        vec![Push(133, 27499), PopVec(181), Read(255), Read(255)],
        runs(107, &[18, 10, 7, 27, 34, 10, 5], 228),
        vec![PopSmallBuffer(148, 147)],
        runs(107, &[23, 15], 235),
        vec![Batch(107, vec![27499; 12])],
        runs(107, &[12, 22], 235),
        vec![PopBatch(107, 107)],
        aborts(107, 11),
        vec![PopVec(181), Push(0, 0)],
    ]);
    assert_eq!(run_mpmc(&case), Ok(()));
}
