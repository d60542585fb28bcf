//! The SPSC common push and pop (D96) against the general path: `try_push`/`try_pop`, which
//! take the fast steps wherever they apply, and `reserve`+`commit`/`try_pop_vec`, which never
//! do, driven with the same operations on two rings of the same configuration, must report the
//! same outcomes, return the same bytes and leave the same occupancy (so the same placement:
//! padding, skip records, packing) after every operation.
#![cfg(not(loom))]

use proptest::prelude::*;
use shmbus_ring::{PopError, PushError, SpscConfig, SpscRing};

#[derive(Debug, Clone)]
enum Op {
    /// Push a message of this many bytes.
    Push(usize),
    /// Pop into a buffer of this many bytes.
    Pop(usize),
    /// A reservation of at most this many bytes, committed shorter (`reserve_up_to`), on both
    /// rings: it sets the packing request the fast push must not skip over.
    PushUpTo(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..320).prop_map(Op::Push),
        4 => (0usize..320).prop_map(Op::Pop),
        1 => (0usize..320, 0usize..320).prop_map(|(a, b)| Op::PushUpTo(a.max(b), a.min(b))),
    ]
}

fn config() -> impl Strategy<Value = SpscConfig> {
    (
        prop_oneof![Just(512u64), Just(1024), Just(4096)],
        any::<bool>(),
        any::<bool>(),
        prop_oneof![Just(None), Just(Some(3u64)), Just(Some(16))],
        prop_oneof![Just(None), Just(Some(64u64)), Just(Some(200))],
    )
        .prop_map(|(cap, aligned, notify, limit, max_record)| {
            let mut c = SpscConfig::new(cap).aligned(aligned).notify(notify);
            if let Some(n) = limit {
                c = c.message_limit(n);
            }
            if let Some(m) = max_record {
                c = c.max_record(m);
            }
            c
        })
}

fn bytes(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 131 + j * 7 + 1) as u8).collect()
}

/// The kinds of two push outcomes, compared (a `TooLarge` names the same limit).
fn same_push(a: &Result<(), PushError>, b: &Result<(), PushError>) -> bool {
    a == b
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn the_fast_steps_do_what_the_general_path_does(
        cfg in config(),
        ops in prop::collection::vec(op(), 1..400),
    ) {
        let fast = SpscRing::in_heap(&cfg).expect("config");
        let general = SpscRing::in_heap(&cfg).expect("same config");
        let (mut ftx, mut frx) = (fast.producer().unwrap(), fast.consumer().unwrap());
        let (mut gtx, mut grx) = (general.producer().unwrap(), general.consumer().unwrap());
        let mut big = vec![0u8; 1 << 12];
        let mut got = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            match *op {
                Op::Push(len) => {
                    let data = bytes(i, len);
                    let a = ftx.try_push(&data);
                    let b = gtx.reserve(len).map(|mut w| {
                        w.copy_from_slice(&data);
                        w.commit();
                    });
                    prop_assert!(same_push(&a, &b), "op {}: push {}: {:?} against {:?}", i, len, a, b);
                }
                Op::PushUpTo(max, len) => {
                    let data = bytes(i, len);
                    let one = |tx: &mut shmbus_ring::Producer| {
                        tx.reserve_up_to(max).map(|mut w| {
                            w[..len].copy_from_slice(&data);
                            w.commit_len(len);
                        })
                    };
                    let (a, b) = (one(&mut ftx), one(&mut gtx));
                    prop_assert!(same_push(&a, &b), "op {}: up to {}: {:?} against {:?}", i, max, a, b);
                }
                Op::Pop(len) => {
                    let mut buf = vec![0u8; len];
                    let a = frx.try_pop(&mut buf);
                    let b = grx.try_pop_vec(&mut got);
                    match (a, b) {
                        (Ok(n), Ok(m)) => {
                            prop_assert_eq!(n, m, "op {}: lengths", i);
                            prop_assert_eq!(&buf[..n], &got[..], "op {}: bytes", i);
                        }
                        (Err(PopError::BufferTooSmall { needed, len: l }), Ok(m)) => {
                            prop_assert_eq!((needed, l), (m, len), "op {}: short buffer", i);
                            // The message stayed: the fast ring pops it now.
                            let n = frx.try_pop(&mut big).expect("left in the ring");
                            prop_assert_eq!(&big[..n], &got[..], "op {}: bytes after", i);
                        }
                        (a, b) => prop_assert_eq!(a, b, "op {}: pop", i),
                    }
                }
            }
            prop_assert_eq!(fast.used_bytes(), general.used_bytes(), "op {}: occupancy", i);
        }
    }
}
