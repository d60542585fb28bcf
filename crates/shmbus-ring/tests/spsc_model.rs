//! Model test: random operation sequences on small rings that wrap often, checked against a
//! `VecDeque` of records and an executable statement of where records go (padding at the wrap,
//! one free word kept after the last record).
#![cfg(not(loom))]

use proptest::prelude::*;
use shmbus_ring::frame::record_size;
use shmbus_ring::{PopError, PushError, SpscConfig, SpscRing};
use std::collections::VecDeque;

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
    PeekRelease,
    PeekKeep,
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
        1 => Just(Op::PeekRelease),
        1 => Just(Op::PeekKeep),
        1 => Just(Op::IsEmpty),
    ]
}

/// Where records go, stated directly: the ring holds `[head, tail)`; a record that would cross
/// the end is preceded by padding to the end; a placement needs one free word after it.
struct Model {
    cap: u64,
    head: u64,
    tail: u64,
    /// `Some(payload)` for data, `None` for padding; with the bytes each occupies.
    ring: VecDeque<(Option<Vec<u8>>, u64)>,
    next_seq: u64,
}

impl Model {
    fn fits(&self, end: u64) -> bool {
        end + 8 - self.head <= self.cap
    }

    /// Places a record of `len` bytes as the ring must: `Some(())` if it fits (padding, if
    /// needed, is recorded even when the record itself then does not fit).
    fn place(&mut self, len: usize) -> bool {
        let size = record_size(len as u64);
        let to_end = self.cap - self.tail % self.cap;
        if size > to_end {
            if !self.fits(self.tail + to_end) {
                return false;
            }
            self.ring.push_back((None, to_end));
            self.tail += to_end;
        }
        self.fits(self.tail + size)
    }

    fn commit(&mut self, payload: Vec<u8>) {
        let size = record_size(payload.len() as u64);
        self.ring.push_back((Some(payload), size));
        self.tail += size;
    }

    /// What a consumer operation sees first: it consumes leading padding.
    fn front(&mut self) -> Option<&Vec<u8>> {
        while let Some((None, size)) = self.ring.front() {
            self.head += *size;
            self.ring.pop_front();
        }
        self.ring.front().map(|(p, _)| p.as_ref().unwrap())
    }

    fn pop(&mut self) -> Option<Vec<u8>> {
        self.front()?;
        let (p, size) = self.ring.pop_front().unwrap();
        self.head += size;
        p
    }

    fn payload(&mut self, len: usize) -> Vec<u8> {
        let seq = self.next_seq;
        self.next_seq += 1;
        (0..len)
            .map(|i| (seq as u8).wrapping_mul(31).wrapping_add(i as u8))
            .collect()
    }
}

fn run(cap: u64, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let ring = SpscRing::in_heap(&SpscConfig::new(cap)).unwrap();
    let max = ring.max_record();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    let mut m = Model {
        cap,
        head: 0,
        tail: 0,
        ring: VecDeque::new(),
        next_seq: 0,
    };
    for op in ops {
        match op {
            Op::Push(len) => {
                let len = len.min(max);
                let data = m.payload(len);
                let expect = m.place(len);
                match tx.try_push(&data) {
                    Ok(()) => {
                        prop_assert!(expect, "push of {len} succeeded where the model is full");
                        m.commit(data);
                    }
                    Err(PushError::Full) => {
                        prop_assert!(!expect, "push of {len} full where the model fits")
                    }
                    Err(e) => prop_assert!(false, "push: {e}"),
                }
            }
            Op::PushBatch(lens) => {
                let batch: Vec<Vec<u8>> = lens.iter().map(|&l| m.payload(l.min(max))).collect();
                let mut fitted = 0;
                for b in &batch {
                    if !m.place(b.len()) {
                        break;
                    }
                    m.commit(b.clone());
                    fitted += 1;
                }
                match tx.try_push_batch(&batch) {
                    Ok(n) => prop_assert_eq!(n, fitted),
                    Err(PushError::Full) => prop_assert_eq!(fitted, 0),
                    Err(e) => prop_assert!(false, "batch: {e}"),
                }
            }
            Op::ReserveCommit(len) | Op::ReserveCommitShorter(len, _) | Op::ReserveAbort(len) => {
                let len = len.min(max);
                let expect = m.place(len);
                let data = m.payload(len);
                match tx.reserve(len) {
                    Ok(mut r) => {
                        prop_assert!(expect, "reserve of {len} succeeded where the model is full");
                        prop_assert_eq!(r.len(), len);
                        r.copy_from_slice(&data);
                        match op {
                            Op::ReserveCommit(_) => {
                                r.commit();
                                m.commit(data);
                            }
                            Op::ReserveCommitShorter(_, s) => {
                                let keep = len.saturating_sub(s);
                                r.commit_len(keep);
                                m.commit(data[..keep].to_vec());
                            }
                            _ => {} // dropped uncommitted: abandoned
                        }
                    }
                    Err(PushError::Full) => {
                        prop_assert!(!expect, "reserve of {len} full where the model fits")
                    }
                    Err(e) => prop_assert!(false, "reserve: {e}"),
                }
            }
            Op::Pop => {
                let mut buf = vec![0u8; max];
                match rx.try_pop(&mut buf) {
                    Ok(n) => prop_assert_eq!(Some(buf[..n].to_vec()), m.pop()),
                    Err(PopError::Empty) => prop_assert_eq!(m.pop(), None),
                    Err(e) => prop_assert!(false, "pop: {e}"),
                }
            }
            Op::PopSmallBuffer(size) => {
                let mut buf = vec![0u8; size];
                let front_len = m.front().map(|p| p.len());
                match rx.try_pop(&mut buf) {
                    Ok(n) => prop_assert_eq!(Some(buf[..n].to_vec()), m.pop()),
                    Err(PopError::BufferTooSmall { needed, len }) => {
                        prop_assert_eq!(Some(needed), front_len);
                        prop_assert_eq!(len, size);
                        prop_assert!(needed > size);
                    }
                    Err(PopError::Empty) => prop_assert_eq!(front_len, None),
                    Err(e) => prop_assert!(false, "pop: {e}"),
                }
            }
            Op::PopWith => match rx.try_pop_with(|b| b.to_vec()) {
                Ok(v) => prop_assert_eq!(Some(v), m.pop()),
                Err(PopError::Empty) => prop_assert_eq!(m.pop(), None),
                Err(e) => prop_assert!(false, "pop_with: {e}"),
            },
            Op::PopBatch(n) => {
                let mut got = Vec::new();
                let k = rx.pop_batch(n, |b| got.push(b.to_vec())).unwrap();
                prop_assert_eq!(k, got.len());
                let want: Vec<Vec<u8>> = (0..n).map_while(|_| m.pop()).collect();
                prop_assert_eq!(got, want);
            }
            Op::PeekRelease | Op::PeekKeep => {
                let expect = m.front().cloned();
                match rx.peek().unwrap() {
                    Some(p) => {
                        prop_assert_eq!(Some(p.to_vec()), expect);
                        if matches!(op, Op::PeekRelease) {
                            p.release();
                            m.pop();
                        }
                    }
                    None => prop_assert_eq!(expect, None),
                }
            }
            Op::IsEmpty => {
                let expect = m.front().is_none();
                prop_assert_eq!(rx.is_empty(), expect);
            }
        }
        prop_assert_eq!(
            ring.used_bytes(),
            Some(m.tail - m.head),
            "published positions"
        );
    }
    // Drain: everything committed comes out, in order.
    let mut buf = Vec::new();
    while let Some(want) = m.pop() {
        rx.try_pop_vec(&mut buf).unwrap();
        prop_assert_eq!(&buf, &want);
    }
    prop_assert_eq!(rx.try_pop_vec(&mut buf), Err(PopError::Empty));
    Ok(())
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
