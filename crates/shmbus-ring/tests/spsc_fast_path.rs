//! The SPSC common push, reservation and pop (D96) against the general path: two rings of the
//! same configuration driven with the same operations, one by this thread as it is (the fast
//! steps wherever they apply), the other with `crashpoint::general_path_only` set (never), must
//! report the same outcomes, return the same bytes and leave the same occupancy (so the same
//! placement: padding, skip records, packing) after every operation.
#![cfg(not(loom))]

use proptest::prelude::*;
use shmbus_ring::crashpoint::general_path_only;
use shmbus_ring::{Producer, SpscConfig, SpscRing};

#[derive(Debug, Clone)]
enum Op {
    /// Push a message of this many bytes.
    Push(usize),
    /// Reserve a message of this many bytes and commit it.
    Reserve(usize),
    /// Pop into a buffer of this many bytes.
    Pop(usize),
    /// A reservation of at most this many bytes, committed shorter (`reserve_up_to`), on both
    /// rings: it sets the packing request the fast push must not skip over.
    PushUpTo(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..320).prop_map(Op::Push),
        2 => (0usize..320).prop_map(Op::Reserve),
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
        for (i, op) in ops.iter().enumerate() {
            // The same call on both rings, the second on the general path only.
            fn both<R>(
                f: &mut Producer,
                g: &mut Producer,
                mut op: impl FnMut(&mut Producer) -> R,
            ) -> (R, R) {
                let a = op(f);
                general_path_only(true);
                let b = op(g);
                general_path_only(false);
                (a, b)
            }
            match *op {
                Op::Push(len) => {
                    let data = bytes(i, len);
                    let (a, b) = both(&mut ftx, &mut gtx, |tx| tx.try_push(&data));
                    prop_assert_eq!(a, b, "op {}: push {}", i, len);
                }
                Op::Reserve(len) => {
                    let data = bytes(i, len);
                    let (a, b) = both(&mut ftx, &mut gtx, |tx| {
                        tx.reserve(len).map(|mut w| {
                            w.copy_from_slice(&data);
                            w.commit();
                        })
                    });
                    prop_assert_eq!(a, b, "op {}: reserve {}", i, len);
                }
                Op::PushUpTo(max, len) => {
                    let data = bytes(i, len);
                    let (a, b) = both(&mut ftx, &mut gtx, |tx| {
                        tx.reserve_up_to(max).map(|mut w| {
                            w[..len].copy_from_slice(&data);
                            w.commit_len(len);
                        })
                    });
                    prop_assert_eq!(a, b, "op {}: up to {}", i, max);
                }
                Op::Pop(len) => {
                    let mut buf = vec![0u8; len];
                    let mut other = vec![0u8; len];
                    let a = frx.try_pop(&mut buf);
                    general_path_only(true);
                    let b = grx.try_pop(&mut other);
                    general_path_only(false);
                    prop_assert_eq!(a, b, "op {}: pop into {}", i, len);
                    if let Ok(n) = a {
                        prop_assert_eq!(&buf[..n], &other[..n], "op {}: bytes", i);
                    }
                }
            }
            prop_assert_eq!(fast.used_bytes(), general.used_bytes(), "op {}: occupancy", i);
        }
    }
}
