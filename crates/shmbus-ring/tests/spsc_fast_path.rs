//! The SPSC common push, reservation and pop (D96) against the general path: two rings of the
//! same configuration driven with the same operations, one by this thread as it is (the fast
//! steps wherever they apply), the other with `crashpoint::general_path_only` set (never),
//! must report the same outcomes and return the same bytes, and after every operation hold the
//! same bytes: the first line of both control blocks (positions, wake sequences, waiters,
//! counts, bells) and the whole data region (headers, zero-ahead words, padding and skip
//! records). Half the cases fake sleepers (waiters set), so every notification shows in the
//! wake sequence a fast step must advance as the general one does; operations include hostile
//! header words at the consumer's head, reservations dropped or forgotten, a reservation set
//! aside, and an endpoint gone and replaced.
//!
//! Mutations caught: the packing request left set by the fast reservation, `fast_max` ignoring
//! the alignment threshold and the room check dropped (tried against this test's first form,
//! which compared outcomes and occupancy only), and the quiet publication taken on a notifying
//! ring, a lost wake-up (which only this form catches).
#![cfg(not(loom))]

use proptest::prelude::*;
use shmbus_ring::crashpoint::general_path_only;
use shmbus_ring::frame::{encode, KIND_DATA, KIND_PADDING, KIND_SKIP};
use shmbus_ring::layout::{BLOCK_WAITERS, CONSUMER_BLOCK, DATA_OFFSET, PRODUCER_BLOCK};
use shmbus_ring::{Consumer, Producer, SpscConfig, SpscRing};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone)]
enum Op {
    Push(usize),
    Reserve(usize),
    Pop(usize),
    PushUpTo(usize, usize),
    Batch(Vec<usize>),
    PopVec,
    Read,
    PopBatch(usize),
    ReserveAbandon(usize),
    ReserveForget(usize),
    SetAsideThenPush(usize, usize),
    /// A hostile header word at the consumer's head (+8*k).
    Corrupt(u8, u64, u32, u8),
    /// Drop the consumer, push once (no consumer), attach a new one.
    NoConsumer(usize),
    /// Drop the producer, pop once (no producer), attach a new one.
    NoProducer(usize),
}

fn len() -> impl Strategy<Value = usize> {
    prop_oneof![0usize..64, 0usize..320, 180usize..270]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => len().prop_map(Op::Push),
        3 => len().prop_map(Op::Reserve),
        6 => (0usize..320).prop_map(Op::Pop),
        1 => (len(), len()).prop_map(|(a, b)| Op::PushUpTo(a.max(b), a.min(b))),
        1 => prop::collection::vec(len(), 1..5).prop_map(Op::Batch),
        1 => Just(Op::PopVec),
        1 => Just(Op::Read),
        1 => (1usize..4).prop_map(Op::PopBatch),
        1 => len().prop_map(Op::ReserveAbandon),
        1 => len().prop_map(Op::ReserveForget),
        1 => (len(), len()).prop_map(|(a, b)| Op::SetAsideThenPush(a, b)),
        1 => len().prop_map(Op::NoConsumer),
        1 => (0usize..320).prop_map(Op::NoProducer),
        1 => (0u8..3, 0u64..6, any::<u32>(), 0u8..6).prop_map(|(k, at, l, which)| Op::Corrupt(k, at, l, which)),
    ]
}

fn config() -> impl Strategy<Value = SpscConfig> {
    (
        prop_oneof![Just(256u64), Just(512), Just(1024), Just(4096)],
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![Just(None), Just(Some(1u64)), Just(Some(3)), Just(Some(16))],
        prop_oneof![
            Just(None),
            Just(Some(64u64)),
            Just(Some(191)),
            Just(Some(192)),
            Just(Some(200)),
            Just(Some(240))
        ],
    )
        .prop_map(|(cap, aligned, notify, mb, limit, max_record)| {
            let mut c = SpscConfig::new(cap)
                .aligned(aligned)
                .notify(notify)
                .membarrier(mb && notify);
            if let Some(n) = limit {
                c = c.message_limit(n);
            }
            if let Some(m) = max_record {
                c = c.max_record(m.min(cap - 16));
            }
            c
        })
}

fn bytes(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 131 + j * 7 + 1) as u8).collect()
}

fn word(ring: &SpscRing, off: u64) -> &AtomicU64 {
    // SAFETY: in-bounds, 8-aligned offset of the live mapping (test only, one thread).
    unsafe { AtomicU64::from_ptr(ring.segment().as_ptr().add(off as usize).cast()) }
}

/// The first cache line of each control block and the whole data region.
fn snapshot(ring: &SpscRing, cap: u64) -> Vec<u64> {
    let mut v = Vec::new();
    for b in [PRODUCER_BLOCK, CONSUMER_BLOCK] {
        for o in (0..64).step_by(8) {
            if o == 8 {
                continue; // owner word: tag|gen, equal anyway
            }
            v.push(word(ring, b + o).load(Ordering::Relaxed));
        }
    }
    for o in (0..cap).step_by(8) {
        v.push(word(ring, DATA_OFFSET + o).load(Ordering::Relaxed));
    }
    v
}

fn run(
    txo: &mut Option<Producer>,
    rxo: &mut Option<Consumer>,
    ring: &SpscRing,
    cap: u64,
    i: usize,
    op: &Op,
) -> String {
    match op {
        Op::NoConsumer(len) => {
            *rxo = None;
            let r = txo.as_mut().unwrap().try_push(&bytes(i, *len));
            let a = ring.consumer().map(|c| *rxo = Some(c));
            return format!("{r:?} {:?}", a.is_ok());
        }
        Op::NoProducer(len) => {
            *txo = None;
            let mut buf = vec![0u8; *len];
            let r = rxo.as_mut().unwrap().try_pop(&mut buf);
            let got = r.as_ref().ok().map(|&n| buf[..n].to_vec());
            let a = ring.producer().map(|c| *txo = Some(c));
            return format!("{r:?} {got:?} {:?}", a.map_err(|e| e.to_string()).is_ok());
        }
        _ => {}
    }
    let tx = txo.as_mut().unwrap();
    let rx = rxo.as_mut().unwrap();
    match op {
        Op::NoConsumer(_) | Op::NoProducer(_) => unreachable!(),
        Op::Push(len) => format!("{:?}", tx.try_push(&bytes(i, *len))),
        Op::Reserve(len) => format!(
            "{:?}",
            tx.reserve(*len).map(|mut w| {
                w.copy_from_slice(&bytes(i, *len));
                w.commit();
            })
        ),
        Op::PushUpTo(max, len) => format!(
            "{:?}",
            tx.reserve_up_to(*max).map(|mut w| {
                w[..*len].copy_from_slice(&bytes(i, *len));
                w.commit_len(*len);
            })
        ),
        Op::Batch(lens) => {
            let recs: Vec<Vec<u8>> = lens.iter().map(|&l| bytes(i, l)).collect();
            format!("{:?}", tx.try_push_batch(&recs))
        }
        Op::Pop(len) => {
            let mut buf = vec![0u8; *len];
            let r = rx.try_pop(&mut buf);
            let got = r.as_ref().ok().map(|&n| buf[..n].to_vec());
            format!("{r:?} {got:?}")
        }
        Op::PopVec => {
            let mut buf = Vec::new();
            let r = rx.try_pop_vec(&mut buf);
            format!("{r:?} {buf:?}")
        }
        Op::Read => format!("{:?}", rx.read().map(|g| g.map(|g| g.to_vec()))),
        Op::PopBatch(n) => {
            let mut got = Vec::new();
            let r = rx.try_pop_batch(*n, |m| got.push(m.to_vec()));
            format!("{r:?} {got:?}")
        }
        Op::ReserveAbandon(len) => format!("{:?}", tx.reserve(*len).map(drop)),
        Op::ReserveForget(len) => format!(
            "{:?}",
            tx.reserve(*len).map(|mut w| {
                w.copy_from_slice(&bytes(i, *len));
                std::mem::forget(w);
            })
        ),
        Op::SetAsideThenPush(a, b) => {
            let r = tx.reserve(*a).map(shmbus_ring::WriteGuard::set_aside);
            let p = tx.try_push(&bytes(i, *b));
            format!("{:?} {p:?}", r.map(|r| r.len()))
        }
        Op::Corrupt(kind, at, l, which) => {
            let head = word(ring, CONSUMER_BLOCK).load(Ordering::Relaxed);
            let pos = (head + 8 * at) & (cap - 1);
            let kind = [KIND_DATA, KIND_PADDING, KIND_SKIP][*kind as usize];
            let len = match which {
                0 => *l,
                1 => *l % 64,
                2 => (*l % 7) * 8,
                3 => (cap - pos).wrapping_sub(8) as u32,
                4 => (cap - pos) as u32,
                _ => *l % 300,
            };
            word(ring, DATA_OFFSET + pos).store(encode(len, kind), Ordering::Relaxed);
            String::new()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]
    #[test]
    fn fast_and_general_leave_the_same_bytes(
        cfg in config(),
        sleepers in any::<bool>(),
        ops in prop::collection::vec(op(), 1..300),
    ) {
        let fast = SpscRing::in_heap(&cfg).expect("config");
        let cap = fast.data_capacity();
        let general = SpscRing::in_heap(&cfg).expect("same config");
        if sleepers {
            for r in [&fast, &general] {
                word(r, PRODUCER_BLOCK + BLOCK_WAITERS).store(1, Ordering::Relaxed);
                word(r, CONSUMER_BLOCK + BLOCK_WAITERS).store(1, Ordering::Relaxed);
            }
        }
        let (mut ftx, mut frx) = (Some(fast.producer().unwrap()), Some(fast.consumer().unwrap()));
        let (mut gtx, mut grx) = (Some(general.producer().unwrap()), Some(general.consumer().unwrap()));
        for (i, op) in ops.iter().enumerate() {
            let a = run(&mut ftx, &mut frx, &fast, cap, i, op);
            general_path_only(true);
            let b = run(&mut gtx, &mut grx, &general, cap, i, op);
            general_path_only(false);
            prop_assert_eq!(&a, &b, "op {}: {:?}", i, op);
            prop_assert!(snapshot(&fast, cap) == snapshot(&general, cap), "op {}: {:?}: bytes differ", i, op);
            if ftx.is_none() || frx.is_none() || gtx.is_none() || grx.is_none() {
                break;
            }
        }
    }
}
