//! The adversarial review's attacks on the MPMC head hint, written against a lazily raised hint
//! (DECISIONS D73, since reverted): a consumer fed a forged hint and commit that a hostile peer
//! then takes back, `len` / `is_empty` and the observers' figures after consumers took messages,
//! and linearizability on rings of 8 and 64 slots (`mpmc_linearizable.rs` has 4). They hold of
//! the eagerly raised hint too, and guard it.
#![cfg(not(loom))]

use proptest::prelude::*;
use shmbus_ring::layout::{CONSUMER_BLOCK, DATA_OFFSET, PRODUCER_BLOCK};
use shmbus_ring::observe::{Observer, Peeked, Start};
use shmbus_ring::SegmentOptions;
use shmbus_ring::{Consumer, Mpmc, MpmcConfig, MpmcRing, PopError, PushError, Segment};
use shmbus_testkit::hostile::raw_view;
use shmbus_testkit::unique_name;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Barrier;
use std::time::{Duration, Instant};

fn word(raw: &Segment, off: u64) -> &std::sync::atomic::AtomicU64 {
    raw.atomic_u64(off as usize).unwrap()
}

fn head_hint(raw: &Segment) -> u64 {
    word(raw, CONSUMER_BLOCK).load(Ordering::SeqCst)
}

fn tail_hint(raw: &Segment) -> u64 {
    word(raw, PRODUCER_BLOCK).load(Ordering::SeqCst)
}

fn shm(cfg: &MpmcConfig) -> (String, MpmcRing, Segment) {
    let name = unique_name("rv-s5");
    let ring = MpmcRing::create_shm(&name, cfg, &SegmentOptions::default()).unwrap();
    let raw = raw_view(ring.segment()).unwrap();
    (name, ring, raw)
}

/// After a consumer took every message, `len`, the observer's `len` and its `used_bytes`
/// (shown as "bytes in use" by `shmbus stat`) agree that the ring holds nothing (the lazy hint
/// of D73 had `used_bytes` count its lag).
#[test]
fn review_s5_used_bytes_agrees_with_len_after_a_consumer_took_messages() {
    let (name, ring, _raw) = shm(&MpmcConfig::new(64, 32));
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let mut buf = [0u8; 32];
    for i in 0u8..5 {
        tx.try_push(&[i]).unwrap();
    }
    for _ in 0..5 {
        rx.try_pop(&mut buf).unwrap();
    }
    assert_eq!(ring.len(), Some(0));
    let obs = Observer::open(&name).unwrap();
    assert_eq!(obs.snapshot().len, Some(0), "the observer's len walks too");
    assert_eq!(
        obs.used_bytes(),
        0,
        "the ring holds no message, yet used_bytes counts the head hint's lag"
    );
}

/// `Peek` from `Start::Oldest` is documented to start "at the consumers' position: the messages
/// still in the ring". With the hint lagging, it starts at messages consumed already.
#[test]
fn review_s5_peek_oldest_starts_after_the_consumed_messages() {
    let (name, ring, _raw) = shm(&MpmcConfig::new(64, 32));
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let mut buf = [0u8; 32];
    for i in 0u8..5 {
        tx.try_push(&[i]).unwrap();
    }
    for _ in 0..3 {
        rx.try_pop(&mut buf).unwrap();
    }
    let obs = Observer::open(&name).unwrap();
    let mut peek = obs.peek(Start::Oldest);
    let mut out = Vec::new();
    let mut seen = Vec::new();
    while let Peeked::Message { .. } = peek.next(&mut out).unwrap() {
        seen.push(out[0]);
    }
    assert_eq!(seen, vec![3, 4], "Oldest shows messages consumed already");
}

/// A hostile peer moves the head hint far ahead over a forged commit, lets the consumer take
/// it, then puts the hint and the slot back as they were. Before D73 the consumer raised the
/// hint past its claim and started every walk at the hint, so the restored hint healed it.
/// Now its private cursor stays far ahead: it never sees the next honest message, and its next
/// empty walk publishes the forged position as the head hint (M10b), making the hint lead the
/// tail hint (F3 broken by an honest endpoint) for every other consumer too. The bar is a
/// typed error or the message, bounded in time, and no hint written past the tail hint.
#[test]
fn review_s5_a_cursor_poisoned_by_a_forged_hint_heals_or_reports() {
    let slots = 8u64;
    let (_name, ring, raw) = shm(&MpmcConfig::new(slots, 8));
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    rx.set_probe_interval(Duration::from_millis(20));
    let stride = {
        // The data region holds `slots` slots; the stride is its length over the slot count.
        let h = ring.header();
        h.data_len / h.capacity
    };
    let slot = |pos: u64| DATA_OFFSET + (pos & (slots - 1)) * stride;
    let forged = 1000u64;
    // The hostile writes: the hint at `forged`, a commit of `forged` (length 0) in its slot.
    word(&raw, CONSUMER_BLOCK).store(forged, Ordering::SeqCst);
    word(&raw, slot(forged) + 8).store(0, Ordering::SeqCst);
    word(&raw, slot(forged)).store((forged + 1) << 8, Ordering::SeqCst);
    let mut buf = [0u8; 8];
    let took = rx.try_pop(&mut buf);
    // Put back: hint 0, the slot free for position 0 (the ring as created).
    word(&raw, CONSUMER_BLOCK).store(0, Ordering::SeqCst);
    word(&raw, slot(forged)).store(0, Ordering::SeqCst);
    tx.try_push(b"honest").unwrap();
    let start = Instant::now();
    let outcome = loop {
        match rx.try_pop(&mut buf) {
            Ok(n) => break Ok(buf[..n].to_vec()),
            Err(PopError::Empty) if start.elapsed() < Duration::from_secs(2) => {
                assert!(
                    head_hint(&raw) <= tail_hint(&raw),
                    "the consumer raised the head hint to {} past the tail hint {} \
                     (forged claim: {took:?})",
                    head_hint(&raw),
                    tail_hint(&raw)
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => break Err(e),
        }
    };
    match outcome {
        Ok(m) => assert_eq!(m, b"honest"),
        Err(PopError::Corrupt(_)) => {}
        Err(e) => panic!("neither the message nor Corrupt within 2 s: {e:?}"),
    }
}

/// crossbeam's `linearizable` test (`mpmc_linearizable.rs`) on rings where the hint does lag
/// (8 slots: `head_lag` 2; 64 slots: 16), with each thread's consumer dropped and attached
/// again every so often (a fresh cursor behind the others' lag).
#[test]
fn review_s5_try_pop_after_push_never_empty_with_a_lagging_hint_and_reattaches() {
    const THREADS: usize = 4;
    const COUNT: usize = 20_000;
    for slots in [8u64, 64] {
        let ring = MpmcRing::in_heap(&MpmcConfig::new(slots, 8)).unwrap();
        let _keep = ring.producer().unwrap();
        let barrier = Barrier::new(THREADS);
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let (ring, barrier) = (&ring, &barrier);
                s.spawn(move || {
                    let mut tx = ring.producer().unwrap();
                    let mut rx = ring.consumer().unwrap();
                    barrier.wait();
                    let mut buf = [0u8; 8];
                    for i in 0..COUNT {
                        if i % 97 == (t * 13) % 97 {
                            drop(rx);
                            rx = ring.consumer().unwrap();
                        }
                        tx.push(&[t as u8]).unwrap();
                        match rx.try_pop(&mut buf) {
                            Ok(1) => {}
                            other => panic!(
                                "{slots} slots, thread {t}, round {i}: try_pop after a push \
                                 returned {other:?}"
                            ),
                        }
                    }
                });
            }
        });
        let mut rx = ring.consumer().unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(rx.try_pop(&mut buf), Err(PopError::Empty));
        assert_eq!(ring.len(), Some(0));
    }
}

#[derive(Debug, Clone)]
enum Op {
    Push(usize),
    Pop(usize),
    PopBatch(usize, usize),
    /// Consumer `.0` holds a message (in `try_pop_with`) while consumer `.1` pops.
    Nested(usize, usize),
    Reattach(usize),
    IsEmpty(usize),
    /// A reservation dropped unsent: an abandoned position (M6).
    Abort(usize),
    /// `try_push_all` of `.1` messages (abandons its claims if the ring fills first).
    All(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    let who = 0..3usize;
    prop_oneof![
        5 => who.clone().prop_map(Op::Push),
        4 => who.clone().prop_map(Op::Pop),
        1 => (who.clone(), 0..20usize).prop_map(|(w, n)| Op::PopBatch(w, n)),
        2 => (who.clone(), who.clone()).prop_map(|(a, b)| Op::Nested(a, b)),
        1 => who.clone().prop_map(Op::Reattach),
        1 => who.clone().prop_map(Op::IsEmpty),
        1 => who.clone().prop_map(Op::Abort),
        1 => (who, 0..6usize).prop_map(|(w, n)| Op::All(w, n)),
    ]
}

/// Pops through `rx` and checks the answer against the model queue `m`.
fn pop_one(
    rx: &mut Consumer<Mpmc>,
    m: &mut VecDeque<u32>,
    step: usize,
) -> Result<(), TestCaseError> {
    let mut buf = [0u8; 8];
    match rx.try_pop(&mut buf) {
        Ok(4) => {
            let got = u32::from_le_bytes(buf[..4].try_into().unwrap());
            prop_assert_eq!(Some(got), m.pop_front(), "step {}", step);
        }
        Err(PopError::Empty) => prop_assert!(m.is_empty(), "step {}: Empty, model {:?}", step, m),
        other => prop_assert!(false, "step {}: {:?}", step, other),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Single-threaded sequences over 3 producers and 3 consumers that hold messages, take
    /// bursts, and detach and attach again: FIFO, `Empty` exactly when the model is empty,
    /// `is_empty` and `len` (M20a) exact at every step, on unbounded and bounded rings. An
    /// abandoned position counts in `len` (and the bound) until a walk passes it, as before
    /// D73: from an abandon to the next `Empty`, `len` may exceed the model by the abandons.
    #[test]
    fn review_s5_lagging_hint_model(
        slots_log in 1u32..7,
        bound in prop::option::of(1u64..64),
        ops in prop::collection::vec(op(), 1..300),
    ) {
        let slots = 1u64 << slots_log;
        let mut cfg = MpmcConfig::new(slots, 8);
        let cap = match bound {
            Some(b) if b < slots => {
                cfg = cfg.message_limit(b);
                b
            }
            _ => slots,
        };
        let ring = MpmcRing::in_heap(&cfg).unwrap();
        let mut txs: Vec<_> = (0..3).map(|_| ring.producer().unwrap()).collect();
        let mut rxs: Vec<Option<Consumer<Mpmc>>> =
            (0..3).map(|_| Some(ring.consumer().unwrap())).collect();
        let mut m = VecDeque::new();
        let mut next = 0u32;
        // Positions abandoned since a pop last found the ring empty.
        let mut abandoned = 0usize;
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Push(w) => match txs[w].try_push(&next.to_le_bytes()) {
                    Ok(()) => {
                        m.push_back(next);
                        next += 1;
                    }
                    Err(PushError::Full) if abandoned > 0 => prop_assert!(m.len() as u64 <= cap),
                    Err(PushError::Full) => {
                        prop_assert_eq!(m.len() as u64, cap, "step {}: Full", step);
                    }
                    Err(e) => prop_assert!(false, "step {}: {}", step, e),
                },
                Op::Pop(w) => {
                    pop_one(rxs[w].as_mut().unwrap(), &mut m, step)?;
                    if m.is_empty() {
                        // That pop (or an earlier one) found nothing: its walk passed every
                        // abandoned position.
                        let mut buf = [0u8; 8];
                        prop_assert_eq!(rxs[w].as_mut().unwrap().try_pop(&mut buf), Err(PopError::Empty));
                        abandoned = 0;
                    }
                }
                Op::Abort(w) => match txs[w].reserve(4) {
                    Ok(g) => {
                        drop(g);
                        abandoned += 1;
                    }
                    Err(PushError::Full) => prop_assert!(m.len() as u64 + abandoned as u64 >= cap),
                    Err(e) => prop_assert!(false, "step {}: {}", step, e),
                },
                Op::All(w, n) => {
                    let msgs: Vec<[u8; 4]> = (0..n as u32).map(|i| (next + i).to_le_bytes()).collect();
                    match txs[w].try_push_all(&msgs) {
                        Ok(()) => {
                            m.extend(next..next + n as u32);
                            next += n as u32;
                        }
                        Err(PushError::Full) => abandoned += n,
                        Err(PushError::TooMany { .. }) => prop_assert!(n as u64 > cap),
                        Err(e) => prop_assert!(false, "step {}: {}", step, e),
                    }
                }
                Op::PopBatch(w, n) => {
                    let mut got = Vec::new();
                    let r = rxs[w].as_mut().unwrap().try_pop_batch(n, |b| {
                        got.push(u32::from_le_bytes(b[..4].try_into().unwrap()));
                    });
                    match r {
                        Ok(k) => {
                            prop_assert_eq!(k, got.len());
                            prop_assert_eq!(k, n.min(m.len()), "step {}", step);
                            for g in got {
                                prop_assert_eq!(Some(g), m.pop_front(), "step {}", step);
                            }
                        }
                        Err(e) => prop_assert!(false, "step {}: {}", step, e),
                    }
                }
                Op::Nested(a, b) if a != b => {
                    let mut inner = rxs[b].take().unwrap();
                    let mut res = Ok(());
                    let outer = rxs[a].as_mut().unwrap().try_pop_with(|bytes| {
                        let got = u32::from_le_bytes(bytes[..4].try_into().unwrap());
                        let front = m.pop_front();
                        // While `a` holds it, `len` counts it out (a read claim) and `b`
                        // takes the next one.
                        let len = ring.len().unwrap_or(usize::MAX);
                        if len < m.len() || len > m.len() + abandoned {
                            res = Err(TestCaseError::fail(format!(
                                "step {step}: len {:?} while a message is held, model {}",
                                ring.len(), m.len()
                            )));
                        } else if Some(got) != front {
                            res = Err(TestCaseError::fail(format!("step {step}: {got} vs {front:?}")));
                        } else {
                            res = pop_one(&mut inner, &mut m, step);
                        }
                    });
                    rxs[b] = Some(inner);
                    match outer {
                        Ok(()) => res?,
                        Err(PopError::Empty) => prop_assert!(m.is_empty(), "step {}", step),
                        Err(e) => prop_assert!(false, "step {}: {}", step, e),
                    }
                }
                Op::Nested(..) => {}
                Op::Reattach(w) => {
                    rxs[w] = None;
                    rxs[w] = Some(ring.consumer().unwrap());
                }
                Op::IsEmpty(w) => {
                    prop_assert_eq!(rxs[w].as_mut().unwrap().is_empty(), m.is_empty(), "step {}", step);
                }
            }
            let len = ring.len().unwrap();
            prop_assert!(
                len >= m.len() && len <= m.len() + abandoned,
                "step {}: len {} for {} messages and {} abandoned", step, len, m.len(), abandoned
            );
        }
    }
}

/// A peer of the old behaviour (it raises the head hint past every claim: emulated by a raw
/// `fetch_max` after each of its pops, message `i` being at position `i`) shares a ring with
/// consumers that defer their raises: every message arrives exactly once, each consumer's in
/// increasing order, and the drained ring's `len` is 0.
#[test]
fn review_s5_an_eager_peer_and_lazy_consumers_share_a_ring() {
    const N: u32 = 200_000;
    let (_name, ring, raw) = shm(&MpmcConfig::new(64, 8));
    let hint = word(&raw, CONSUMER_BLOCK);
    let done = std::sync::atomic::AtomicU32::new(0);
    let mut tx = ring.producer().unwrap();
    let got: Vec<Vec<u32>> = std::thread::scope(|s| {
        let consumers: Vec<_> = (0..3)
            .map(|c| {
                let (ring, done) = (&ring, &done);
                s.spawn(move || {
                    let mut rx = ring.consumer().unwrap();
                    let mut buf = [0u8; 8];
                    let mut got = Vec::new();
                    while done.load(Ordering::SeqCst) < N {
                        match rx.try_pop(&mut buf) {
                            Ok(4) => {
                                let v = u32::from_le_bytes(buf[..4].try_into().unwrap());
                                if c == 0 {
                                    hint.fetch_max(u64::from(v) + 1, Ordering::Release);
                                }
                                got.push(v);
                                done.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(PopError::Empty) => std::hint::spin_loop(),
                            other => panic!("consumer {c}: {other:?}"),
                        }
                    }
                    got
                })
            })
            .collect();
        for i in 0..N {
            while tx.try_push(&i.to_le_bytes()).is_err() {
                std::hint::spin_loop();
            }
        }
        consumers.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for g in &got {
        assert!(g.windows(2).all(|w| w[0] < w[1]), "a consumer out of order");
    }
    let mut all: Vec<u32> = got.concat();
    all.sort_unstable();
    assert_eq!(all, (0..N).collect::<Vec<_>>());
    assert_eq!(ring.len(), Some(0));
}
