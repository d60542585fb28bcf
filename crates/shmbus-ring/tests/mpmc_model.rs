//! Model test for the MPMC ring: random single-threaded sequences of every operation, through
//! several producer and consumer endpoints, against a model of positions (committed messages,
//! abandoned positions, free slots) and a `VecDeque` of messages.
#![cfg(not(loom))]

use proptest::prelude::*;
use shmbus_ring::{MpmcConfig, MpmcRing, PopError, PushError};
use std::collections::VecDeque;

#[derive(Debug, Clone)]
enum Op {
    Push(usize, usize),
    Burst(usize, Vec<usize>),
    Bulk(usize, Vec<usize>),
    ClaimCommit(usize, usize),
    ClaimAbandon(usize),
    Pop(usize),
    PopVec(usize),
    PopWith(usize),
    PopBurst(usize, usize),
    ClaimRead(usize),
}

const SLOT: usize = 40;

fn op() -> impl Strategy<Value = Op> {
    let len = 0..=SLOT;
    let who = 0..3usize;
    prop_oneof![
        4 => (who.clone(), len.clone()).prop_map(|(w, l)| Op::Push(w, l)),
        1 => (who.clone(), prop::collection::vec(len.clone(), 0..6)).prop_map(|(w, v)| Op::Burst(w, v)),
        1 => (who.clone(), prop::collection::vec(len.clone(), 0..6)).prop_map(|(w, v)| Op::Bulk(w, v)),
        1 => (who.clone(), len.clone()).prop_map(|(w, l)| Op::ClaimCommit(w, l)),
        1 => who.clone().prop_map(Op::ClaimAbandon),
        3 => who.clone().prop_map(Op::Pop),
        1 => who.clone().prop_map(Op::PopVec),
        1 => who.clone().prop_map(Op::PopWith),
        1 => (who.clone(), 0..6usize).prop_map(|(w, n)| Op::PopBurst(w, n)),
        1 => who.prop_map(Op::ClaimRead),
    ]
}

#[derive(Debug, Clone, PartialEq)]
enum Entry {
    Msg(Vec<u8>),
    Abandoned,
}

/// Positions `[head, tail)` and what each holds. A producer at `tail` may claim it when the
/// slot's previous occupant, position `tail - slots`, is consumed or abandoned.
struct Model {
    slots: u64,
    head: u64,
    tail: u64,
    entries: VecDeque<Entry>,
    next: u8,
}

impl Model {
    fn can_claim(&self) -> bool {
        self.tail < self.head + self.slots
            || self.entries[(self.tail - self.slots - self.head) as usize] == Entry::Abandoned
    }

    fn msg(&mut self, len: usize) -> Vec<u8> {
        self.next = self.next.wrapping_add(1);
        (0..len).map(|i| self.next.wrapping_add(i as u8)).collect()
    }

    fn push(&mut self, e: Entry) {
        self.entries.push_back(e);
        self.tail += 1;
    }

    fn pop(&mut self) -> Option<Vec<u8>> {
        while let Some(e) = self.entries.pop_front() {
            self.head += 1;
            if let Entry::Msg(m) = e {
                return Some(m);
            }
        }
        None
    }
}

fn run(slots: u64, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let ring = MpmcRing::in_heap(&MpmcConfig::new(slots, SLOT as u64)).unwrap();
    let mut txs: Vec<_> = (0..3).map(|_| ring.producer().unwrap()).collect();
    let mut rxs: Vec<_> = (0..3).map(|_| ring.consumer().unwrap()).collect();
    let mut m = Model {
        slots,
        head: 0,
        tail: 0,
        entries: VecDeque::new(),
        next: 0,
    };
    let mut buf = vec![0u8; SLOT];
    let mut vbuf = Vec::new();
    for op in ops {
        match op {
            Op::Push(w, len) => {
                let msg = m.msg(len);
                let expect = m.can_claim();
                match txs[w].try_push(&msg) {
                    Ok(()) => {
                        prop_assert!(expect, "pushed into a full ring");
                        m.push(Entry::Msg(msg));
                    }
                    Err(PushError::Full) => prop_assert!(!expect, "full where the model has room"),
                    Err(e) => prop_assert!(false, "{e}"),
                }
            }
            Op::Burst(w, lens) => {
                let msgs: Vec<Vec<u8>> = lens.iter().map(|&l| m.msg(l)).collect();
                let mut fit = 0;
                for msg in &msgs {
                    if !m.can_claim() {
                        break;
                    }
                    m.push(Entry::Msg(msg.clone()));
                    fit += 1;
                }
                match txs[w].push_burst(&msgs) {
                    Ok(n) => prop_assert_eq!(n, fit),
                    Err(PushError::Full) => prop_assert_eq!(fit, 0),
                    Err(e) => prop_assert!(false, "{e}"),
                }
            }
            Op::Bulk(w, lens) => {
                let msgs: Vec<Vec<u8>> = lens.iter().map(|&l| m.msg(l)).collect();
                if msgs.len() as u64 > m.slots {
                    let err = txs[w].push_bulk(&msgs).unwrap_err();
                    prop_assert_eq!(
                        err,
                        PushError::TooMany {
                            count: msgs.len(),
                            max: m.slots as usize
                        }
                    );
                    continue;
                }
                // Claim one position per message; on a shortfall, every claim is abandoned.
                let start = m.entries.len();
                let mut all = true;
                for msg in &msgs {
                    if !m.can_claim() {
                        all = false;
                        break;
                    }
                    m.push(Entry::Msg(msg.clone()));
                }
                if !all {
                    for e in m.entries.iter_mut().skip(start) {
                        *e = Entry::Abandoned;
                    }
                }
                match txs[w].push_bulk(&msgs) {
                    Ok(()) => prop_assert!(all, "bulk succeeded where the model fills"),
                    Err(PushError::Full) => {
                        prop_assert!(!all, "bulk full where the model has room")
                    }
                    Err(e) => prop_assert!(false, "{e}"),
                }
            }
            Op::ClaimCommit(w, _) | Op::ClaimAbandon(w) => {
                let expect = m.can_claim();
                match txs[w].claim() {
                    Ok(mut slot) => {
                        prop_assert!(expect);
                        prop_assert_eq!(slot.len(), SLOT);
                        if let Op::ClaimCommit(_, len) = op {
                            let msg = m.msg(len);
                            slot[..len].copy_from_slice(&msg);
                            slot.commit(len);
                            m.push(Entry::Msg(msg));
                        } else {
                            drop(slot);
                            m.push(Entry::Abandoned);
                        }
                    }
                    Err(PushError::Full) => prop_assert!(!expect),
                    Err(e) => prop_assert!(false, "{e}"),
                }
            }
            Op::Pop(w) => match rxs[w].try_pop(&mut buf) {
                Ok(n) => prop_assert_eq!(Some(buf[..n].to_vec()), m.pop()),
                Err(PopError::Empty) => prop_assert_eq!(m.pop(), None),
                Err(e) => prop_assert!(false, "{e}"),
            },
            Op::PopVec(w) => match rxs[w].try_pop_vec(&mut vbuf) {
                Ok(_) => prop_assert_eq!(Some(vbuf.clone()), m.pop()),
                Err(PopError::Empty) => prop_assert_eq!(m.pop(), None),
                Err(e) => prop_assert!(false, "{e}"),
            },
            Op::PopWith(w) => match rxs[w].try_pop_with(|b| b.to_vec()) {
                Ok(v) => prop_assert_eq!(Some(v), m.pop()),
                Err(PopError::Empty) => prop_assert_eq!(m.pop(), None),
                Err(e) => prop_assert!(false, "{e}"),
            },
            Op::PopBurst(w, n) => {
                let mut got = Vec::new();
                let k = rxs[w].pop_burst(n, |b| got.push(b.to_vec())).unwrap();
                prop_assert_eq!(k, got.len());
                let want: Vec<Vec<u8>> = (0..n).map_while(|_| m.pop()).collect();
                prop_assert_eq!(got, want);
            }
            Op::ClaimRead(w) => match rxs[w].claim().unwrap() {
                Some(msg) => prop_assert_eq!(Some(msg.to_vec()), m.pop()),
                None => prop_assert_eq!(m.pop(), None),
            },
        }
    }
    while let Some(want) = m.pop() {
        rxs[0].try_pop_vec(&mut vbuf).unwrap();
        prop_assert_eq!(&vbuf, &want);
    }
    prop_assert_eq!(rxs[1].try_pop_vec(&mut vbuf), Err(PopError::Empty));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn mpmc_matches_the_model_across_laps_full_empty_and_abandoned_claims(
        slots in prop_oneof![Just(2u64), Just(4), Just(8), Just(64)],
        ops in prop::collection::vec(op(), 1..300),
    ) {
        run(slots, ops)?;
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
        tx.push_bulk(&[&[0u8; 3][..], &[0; 17]]),
        Err(PushError::TooLarge { len: 17, max: 16 })
    );
    assert_eq!(
        tx.push_burst(&[&[0u8; 17][..]]),
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
        rx.try_pop_with(|b| b.to_vec()).unwrap(),
        b"ok",
        "nothing was consumed"
    );
}

#[test]
fn the_endpoint_table_bounds_attached_endpoints_and_frees_on_drop() {
    let ring = MpmcRing::in_heap(&MpmcConfig::new(4, 16)).unwrap();
    let held: Vec<_> = (0..55).map(|_| ring.producer().unwrap()).collect();
    assert!(matches!(
        ring.consumer().unwrap_err(),
        shmbus_ring::Error::TooManyEndpoints { max: 55, .. }
    ));
    drop(held);
    ring.consumer().expect("entries freed on drop");
}
