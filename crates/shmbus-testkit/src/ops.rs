//! Operation sequences on in-process rings, checked step by step against the reference
//! [`models`](crate::models): what is full, what is empty, which bytes come out in which order,
//! `TooLarge` (with nothing written) for sizes over the limit. The `ring_ops` fuzz target runs
//! [`RingOpsCase`]s; the model tests run [`SpscCase`]s and [`MpmcCase`]s drawn by proptest.

use crate::fuzz_len;
use crate::models::{Entry, MpmcModel, SpscModel};
use shmbus_ring::{MpmcConfig, MpmcRing, PopError, PushError, SpscConfig, SpscRing};

/// Evaluates a pop expression again while it reports `Empty` although the model holds a
/// message, at most [`Retries::calls`] times in all.
macro_rules! retry_empty {
    ($retries:expr, $m:expr, $empty:pat, $e:expr) => {{
        let calls = $retries.calls(&$m);
        let mut r = $e;
        let mut n = 1;
        while matches!(r, $empty) && !$m.is_empty() && n < calls {
            r = $e;
            n += 1;
        }
        r
    }};
}

/// A case of the `ring_ops` fuzz target: one ring kind and its operations.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum RingOpsCase {
    /// An SPSC case.
    Spsc(SpscCase),
    /// An MPMC case.
    Mpmc(MpmcCase),
}

/// Runs a `ring_ops` case: [`run_spsc`] or [`run_mpmc`].
pub fn run_ring_ops(case: &RingOpsCase) -> Result<(), String> {
    match case {
        RingOpsCase::Spsc(c) => run_spsc(c),
        RingOpsCase::Mpmc(c) => run_mpmc(c),
    }
}

// ---------------------------------------------------------------------------------------------
// SPSC operations against the model
// ---------------------------------------------------------------------------------------------

/// One honest SPSC operation. Sizes go through [`fuzz_len`].
#[derive(Debug, Clone)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum SpscOp {
    /// `try_push` of a fresh payload.
    Push(u16),
    /// `try_push_batch`.
    PushBatch(Vec<u16>),
    /// `reserve`, fill, `commit`.
    ReserveCommit(u16),
    /// `reserve`, fill, `commit_len(len - shorter)`.
    ReserveCommitShorter(u16, u8),
    /// `reserve`, then drop uncommitted.
    ReserveAbort(u16),
    /// `try_pop` into a buffer of `max_record` bytes.
    Pop,
    /// `try_pop` into a buffer of the given size.
    PopSmallBuffer(u8),
    /// `try_pop_vec`.
    PopVec,
    /// `try_pop_with`.
    PopWith,
    /// `try_pop_batch(n)`.
    PopBatch(u8),
    /// `read`, then drop the guard (consumed).
    Read,
    /// `is_empty`.
    IsEmpty,
}

/// An SPSC case: ring geometry and the operations.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct SpscCase {
    /// Capacity is `64 << (cap_shift % 6)`: 64 B to 2 KiB, so laps are short.
    pub cap_shift: u8,
    /// Record limit: `1 + max_record % (capacity - 16)`, or the default when 0.
    pub max_record: u16,
    /// The operations, in order.
    pub ops: Vec<SpscOp>,
}

/// Runs an SPSC case on a heap ring against the model.
pub fn run_spsc(case: &SpscCase) -> Result<(), String> {
    let cap = 64u64 << (case.cap_shift % 6);
    // The top bit of `cap_shift` turns payload alignment off (layout 1.5; on by default).
    let aligned = case.cap_shift & 0x80 == 0;
    let mut cfg = SpscConfig::new(cap).aligned(aligned);
    if case.max_record != 0 {
        cfg = cfg.max_record(1 + u64::from(case.max_record) % (cap - 16));
    }
    let ring = SpscRing::in_heap(&cfg).map_err(|e| format!("in_heap: {e}"))?;
    let max = ring.max_record();
    let mut tx = ring.producer().map_err(|e| format!("producer: {e}"))?;
    let mut rx = ring.consumer().map_err(|e| format!("consumer: {e}"))?;
    let mut m = if aligned {
        SpscModel::aligned(cap).record_limit(max as u64)
    } else {
        SpscModel::new(cap)
    };
    let too_large = |len: usize| PushError::TooLarge { len, max };
    for (step, op) in case.ops.iter().enumerate() {
        match *op {
            SpscOp::Push(raw) => {
                let len = fuzz_len(raw, max);
                let data = m.payload(len);
                if len > max {
                    ensure_eq!(tx.try_push(&data), Err(too_large(len)), "step {step} push");
                    continue;
                }
                let expect = m.place(len);
                match tx.try_push(&data) {
                    Ok(()) => {
                        ensure!(expect, "step {step}: push of {len} where the model is full");
                        m.commit(data);
                    }
                    Err(PushError::Full) => {
                        ensure!(!expect, "step {step}: push of {len} full where it fits")
                    }
                    Err(e) => return Err(format!("step {step} push: {e}")),
                }
            }
            SpscOp::PushBatch(ref raws) => {
                let batch: Vec<Vec<u8>> =
                    raws.iter().map(|&r| m.payload(fuzz_len(r, max))).collect();
                if let Some(big) = batch.iter().find(|b| b.len() > max) {
                    let want = too_large(big.len());
                    ensure_eq!(tx.try_push_batch(&batch), Err(want), "step {step} batch");
                    continue;
                }
                let mut fitted = 0;
                for b in &batch {
                    if !m.place_batched(b.len()) {
                        break;
                    }
                    m.commit(b.clone());
                    fitted += 1;
                }
                match tx.try_push_batch(&batch) {
                    Ok(n) => ensure_eq!(n, fitted, "step {step} batch count"),
                    Err(PushError::Full) => ensure_eq!(fitted, 0, "step {step} batch full"),
                    Err(e) => return Err(format!("step {step} batch: {e}")),
                }
            }
            SpscOp::ReserveCommit(raw)
            | SpscOp::ReserveCommitShorter(raw, _)
            | SpscOp::ReserveAbort(raw) => {
                let len = fuzz_len(raw, max);
                if len > max {
                    let got = tx.reserve(len).map(|_| ());
                    ensure_eq!(got, Err(too_large(len)), "step {step} reserve");
                    continue;
                }
                let expect = m.place(len);
                let data = m.payload(len);
                match tx.reserve(len) {
                    Ok(mut r) => {
                        ensure!(
                            expect,
                            "step {step}: reserve of {len} where the model is full"
                        );
                        ensure_eq!(r.len(), len, "step {step} reservation length");
                        r.copy_from_slice(&data);
                        match *op {
                            SpscOp::ReserveCommit(_) => {
                                r.commit();
                                m.commit(data);
                            }
                            SpscOp::ReserveCommitShorter(_, s) => {
                                let keep = len.saturating_sub(usize::from(s));
                                r.commit_len(keep);
                                m.commit(data[..keep].to_vec());
                            }
                            _ => {} // dropped uncommitted: abandoned
                        }
                    }
                    Err(PushError::Full) => {
                        ensure!(!expect, "step {step}: reserve of {len} full where it fits")
                    }
                    Err(e) => return Err(format!("step {step} reserve: {e}")),
                }
            }
            SpscOp::Pop => {
                let mut buf = vec![0u8; max];
                match rx.try_pop(&mut buf) {
                    Ok(n) => ensure_eq!(Some(buf[..n].to_vec()), m.pop(), "step {step} pop"),
                    Err(PopError::Empty) => ensure_eq!(m.pop(), None, "step {step} pop empty"),
                    Err(e) => return Err(format!("step {step} pop: {e}")),
                }
            }
            SpscOp::PopSmallBuffer(n) => {
                let mut buf = vec![0u8; usize::from(n)];
                let front_len = m.front().map(|p| p.len());
                match rx.try_pop(&mut buf) {
                    Ok(k) => ensure_eq!(Some(buf[..k].to_vec()), m.pop(), "step {step} pop"),
                    Err(PopError::BufferTooSmall { needed, len }) => {
                        ensure_eq!(Some(needed), front_len, "step {step} needed");
                        ensure_eq!(len, buf.len(), "step {step} buffer len");
                        ensure!(needed > len, "step {step}: {needed} fits {len}");
                    }
                    Err(PopError::Empty) => ensure_eq!(front_len, None, "step {step} empty"),
                    Err(e) => return Err(format!("step {step} pop: {e}")),
                }
            }
            SpscOp::PopVec => {
                let mut v = vec![9u8; 3];
                match rx.try_pop_vec(&mut v) {
                    Ok(n) => {
                        ensure_eq!(n, v.len(), "step {step} pop_vec length");
                        ensure_eq!(Some(v), m.pop(), "step {step} pop_vec");
                    }
                    Err(PopError::Empty) => ensure_eq!(m.pop(), None, "step {step} empty"),
                    Err(e) => return Err(format!("step {step} pop_vec: {e}")),
                }
            }
            SpscOp::PopWith => match rx.try_pop_with(|b| b.to_vec()) {
                Ok(v) => ensure_eq!(Some(v), m.pop(), "step {step} pop_with"),
                Err(PopError::Empty) => ensure_eq!(m.pop(), None, "step {step} empty"),
                Err(e) => return Err(format!("step {step} pop_with: {e}")),
            },
            SpscOp::PopBatch(n) => {
                let n = usize::from(n % 8);
                let mut got = Vec::new();
                let k = rx
                    .try_pop_batch(n, |b| got.push(b.to_vec()))
                    .map_err(|e| format!("step {step} try_pop_batch: {e}"))?;
                ensure_eq!(k, got.len(), "step {step} pop_batch count");
                let want: Vec<Vec<u8>> = (0..n).map_while(|_| m.pop()).collect();
                ensure_eq!(got, want, "step {step} pop_batch");
            }
            SpscOp::Read => {
                let expect = m.front().cloned();
                match rx.read().map_err(|e| format!("step {step} read: {e}"))? {
                    Some(msg) => {
                        ensure_eq!(Some(msg.to_vec()), expect, "step {step} read");
                        drop(msg);
                        m.pop();
                    }
                    None => ensure_eq!(expect, None, "step {step} read empty"),
                }
            }
            SpscOp::IsEmpty => {
                let expect = m.front().is_none();
                ensure_eq!(rx.is_empty(), expect, "step {step} is_empty");
            }
        }
        ensure_eq!(
            ring.used_bytes(),
            Some(m.used()),
            "step {step} published positions"
        );
    }
    let mut buf = Vec::new();
    while let Some(want) = m.pop() {
        rx.try_pop_vec(&mut buf)
            .map_err(|e| format!("drain: {e}"))?;
        ensure_eq!(buf, want, "drain");
    }
    ensure_eq!(rx.try_pop_vec(&mut buf), Err(PopError::Empty), "drained");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// MPMC operations against the model
// ---------------------------------------------------------------------------------------------

/// Endpoints per side in [`run_mpmc`].
pub const MPMC_ENDPOINTS: usize = 3;

/// One honest MPMC operation; the `u8` picks the endpoint (`% MPMC_ENDPOINTS`).
#[derive(Debug, Clone)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum MpmcOp {
    /// `try_push`.
    Push(u8, u16),
    /// `try_push_batch`.
    Batch(u8, Vec<u16>),
    /// `try_push_all`.
    All(u8, Vec<u16>),
    /// `reserve`, write, `commit`.
    ReserveCommit(u8, u16),
    /// `reserve`, drop uncommitted (abandon).
    ReserveAbort(u8),
    /// `try_pop` into a slot-sized buffer.
    Pop(u8),
    /// `try_pop` into a buffer of the given size.
    PopSmallBuffer(u8, u8),
    /// `try_pop_vec`.
    PopVec(u8),
    /// `try_pop_with`.
    PopWith(u8),
    /// `try_pop_batch(n)`.
    PopBatch(u8, u8),
    /// `read`, look, drop (consumed).
    Read(u8),
    /// The endpoint detaches (a producer if the flag is set, else a consumer), unless it is
    /// the last attached of its role (the other side would then see `Disconnected`); the
    /// next operation naming it attaches a new one, which joins the role (PROTOCOL.md §5.7).
    /// A role left with one endpoint is sole again at its next claim (layout 1.8, D94).
    Leave(u8, bool),
}

/// An MPMC case.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct MpmcCase {
    /// Slots: `[2, 4, 8, 64][slots_sel % 4]`; bit 2 makes the slots aligned (layout 1.7).
    pub slots_sel: u8,
    /// Slot size: `1 + slot_size % 96`, or `768 + slot_size % 96` with bit 2 of `slots_sel`
    /// (aligned slots, whose payload starts on a line).
    pub slot_size: u8,
    /// The operations, in order.
    pub ops: Vec<MpmcOp>,
}

/// How often a pop that reports `Empty` while the model holds a message is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retries {
    /// Never: every call must see what the model says (the model test, whose short sequences
    /// never build runs of abandoned positions longer than one walk).
    Never,
    /// As a consumer's walks need: a walk covers `2 × slots + 64` positions per call and moves
    /// the head hint past runs of abandoned positions as it goes (PROTOCOL.md §5.3), so behind
    /// a longer run a message arrives within a bounded number of calls, not necessarily the
    /// first (the fuzz target, whose cases can abandon any number of positions). The run is
    /// counted from the last message consumed ([`MpmcModel::to_walk`]), where the ring's head
    /// hint is at least, not from the model's head: a pop that finds no message in the model
    /// drops every abandoned position the model holds, where the ring's walk passes a bounded
    /// number of them. And a consumer that has not yet joined the sole one (PROTOCOL.md §5.7)
    /// walks the run twice: to join (M23, which raises no hint and resumes from call to call)
    /// and then to claim, from the hint. So a run of `n` positions takes at most `n / walk + 1`
    /// calls per walk, two walks, and one more call.
    Walk,
}

impl Retries {
    /// The calls a pop may take while the model holds a message.
    fn calls(self, m: &MpmcModel) -> u64 {
        match self {
            Retries::Never => 1,
            Retries::Walk => 3 + 2 * (m.to_walk() / (2 * m.slots() + 64)),
        }
    }
}

/// Runs an MPMC case on a heap ring, through several endpoints, against the model, with
/// [`Retries::Walk`] (the `ring_ops` fuzz target).
pub fn run_mpmc(case: &MpmcCase) -> Result<(), String> {
    run_mpmc_with(case, Retries::Walk)
}

/// Runs an MPMC case on a heap ring, through several endpoints, against the model; a pop that
/// reports `Empty` while the model holds a message is retried as `retries` says.
pub fn run_mpmc_with(case: &MpmcCase, retries: Retries) -> Result<(), String> {
    let slots = [2u64, 4, 8, 64][usize::from(case.slots_sel % 4)];
    let max = if case.slots_sel & 4 == 0 {
        1 + usize::from(case.slot_size % 96)
    } else {
        768 + usize::from(case.slot_size % 96)
    };
    let ring = MpmcRing::in_heap(&MpmcConfig::new(slots, max as u64))
        .map_err(|e| format!("in_heap: {e}"))?;
    ensure_eq!(ring.slot_size(), max, "slot size");
    ensure_eq!(
        ring.header().ring_flags & shmbus_ring::layout::RING_FLAG_ALIGNED != 0,
        case.slots_sel & 4 != 0,
        "aligned slots"
    );
    let mut txs = Vec::new();
    let mut rxs = Vec::new();
    for _ in 0..MPMC_ENDPOINTS {
        txs.push(Some(ring.producer().map_err(|e| format!("producer: {e}"))?));
        rxs.push(Some(ring.consumer().map_err(|e| format!("consumer: {e}"))?));
    }
    // The endpoint an operation names, attached just before it (`Leave` may have detached it).
    macro_rules! tx {
        ($w:expr) => {
            txs[usize::from($w) % MPMC_ENDPOINTS]
                .as_mut()
                .expect("attached before the operation")
        };
    }
    macro_rules! rx {
        ($w:expr) => {
            rxs[usize::from($w) % MPMC_ENDPOINTS]
                .as_mut()
                .expect("attached before the operation")
        };
    }
    let mut m = MpmcModel::new(slots);
    let too_large = |len: usize| PushError::TooLarge { len, max };
    let who = |w: u8| usize::from(w) % MPMC_ENDPOINTS;
    let mut buf = vec![0u8; max];
    for (step, op) in case.ops.iter().enumerate() {
        if let MpmcOp::Leave(w, producer) = *op {
            if producer {
                leave(&mut txs, who(w));
            } else {
                leave(&mut rxs, who(w));
            }
            continue;
        }
        let (w, producer) = op.endpoint();
        if producer && txs[who(w)].is_none() {
            txs[who(w)] = Some(
                ring.producer()
                    .map_err(|e| format!("step {step} attach: {e}"))?,
            );
        } else if !producer && rxs[who(w)].is_none() {
            rxs[who(w)] = Some(
                ring.consumer()
                    .map_err(|e| format!("step {step} attach: {e}"))?,
            );
        }
        match *op {
            MpmcOp::Leave(..) => unreachable!("handled above"),
            MpmcOp::Push(w, raw) => {
                let len = fuzz_len(raw, max);
                let msg = m.msg(len);
                if len > max {
                    ensure_eq!(tx!(w).try_push(&msg), Err(too_large(len)), "step {step}");
                    continue;
                }
                let expect = m.can_claim();
                match tx!(w).try_push(&msg) {
                    Ok(()) => {
                        ensure!(expect, "step {step}: pushed into a full ring");
                        m.push(Entry::Msg(msg));
                    }
                    Err(PushError::Full) => ensure!(!expect, "step {step}: full with room"),
                    Err(e) => return Err(format!("step {step} push: {e}")),
                }
            }
            MpmcOp::Batch(w, ref raws) | MpmcOp::All(w, ref raws) => {
                let msgs: Vec<Vec<u8>> = raws.iter().map(|&r| m.msg(fuzz_len(r, max))).collect();
                let bulk = matches!(op, MpmcOp::All(..));
                if bulk && msgs.len() as u64 > slots {
                    // It could never all fit: refused before anything else is looked at.
                    let want = PushError::TooMany {
                        count: msgs.len(),
                        max: slots as usize,
                    };
                    ensure_eq!(tx!(w).try_push_all(&msgs), Err(want), "step {step} bulk");
                    continue;
                }
                if let Some(big) = msgs.iter().find(|b| b.len() > max) {
                    let want = too_large(big.len());
                    if bulk {
                        ensure_eq!(tx!(w).try_push_all(&msgs), Err(want), "step {step} bulk");
                    } else {
                        ensure_eq!(tx!(w).try_push_batch(&msgs), Err(want), "step {step}");
                    }
                    continue;
                }
                let start = m.len();
                let mut fit = 0;
                for msg in &msgs {
                    if !m.can_claim() {
                        break;
                    }
                    m.push(Entry::Msg(msg.clone()));
                    fit += 1;
                }
                if bulk {
                    let all = fit == msgs.len();
                    if !all {
                        // Claims are abandoned when the ring fills before all are claimed.
                        m.abandon_from(start);
                    }
                    match tx!(w).try_push_all(&msgs) {
                        Ok(()) => ensure!(all, "step {step}: bulk succeeded where it fills"),
                        Err(PushError::Full) => ensure!(!all, "step {step}: bulk full with room"),
                        Err(e) => return Err(format!("step {step} bulk: {e}")),
                    }
                } else {
                    match tx!(w).try_push_batch(&msgs) {
                        Ok(n) => ensure_eq!(n, fit, "step {step} burst count"),
                        Err(PushError::Full) => ensure_eq!(fit, 0, "step {step} burst full"),
                        Err(e) => return Err(format!("step {step} burst: {e}")),
                    }
                }
            }
            MpmcOp::ReserveCommit(w, _) | MpmcOp::ReserveAbort(w) => {
                let expect = m.can_claim();
                let len = match *op {
                    MpmcOp::ReserveCommit(_, raw) => usize::from(raw) % (max + 1),
                    _ => max,
                };
                match tx!(w).reserve(len) {
                    Ok(mut slot) => {
                        ensure!(expect, "step {step}: reserved in a full ring");
                        ensure_eq!(slot.len(), len, "step {step} reservation length");
                        if let MpmcOp::ReserveCommit(..) = *op {
                            let msg = m.msg(len);
                            slot.copy_from_slice(&msg);
                            slot.commit();
                            m.push(Entry::Msg(msg));
                        } else {
                            drop(slot);
                            m.push(Entry::Abandoned);
                        }
                    }
                    Err(PushError::Full) => ensure!(!expect, "step {step}: claim full with room"),
                    Err(e) => return Err(format!("step {step} claim: {e}")),
                }
            }
            MpmcOp::Pop(w) => {
                match retry_empty!(retries, m, Err(PopError::Empty), rx!(w).try_pop(&mut buf)) {
                    Ok(n) => ensure_eq!(Some(buf[..n].to_vec()), m.pop(), "step {step} pop"),
                    Err(PopError::Empty) => ensure_eq!(m.pop(), None, "step {step} empty"),
                    Err(e) => return Err(format!("step {step} pop: {e}")),
                }
            }
            MpmcOp::PopSmallBuffer(w, n) => {
                let mut small = vec![0u8; usize::from(n) % (max + 1)];
                match retry_empty!(retries, m, Err(PopError::Empty), rx!(w).try_pop(&mut small)) {
                    Ok(k) => {
                        ensure!(
                            small.len() >= max,
                            "step {step}: popped into a short buffer"
                        );
                        ensure_eq!(Some(small[..k].to_vec()), m.pop(), "step {step} pop");
                    }
                    // Checked before claiming: nothing consumed.
                    Err(PopError::BufferTooSmall { needed, len }) => {
                        ensure_eq!((needed, len), (max, small.len()), "step {step} too small")
                    }
                    Err(PopError::Empty) => ensure!(m.is_empty(), "step {step}: empty, model not"),
                    Err(e) => return Err(format!("step {step} pop: {e}")),
                }
            }
            MpmcOp::PopVec(w) => {
                let mut v = vec![7u8; 2];
                match retry_empty!(retries, m, Err(PopError::Empty), rx!(w).try_pop_vec(&mut v)) {
                    Ok(n) => {
                        ensure_eq!(n, v.len(), "step {step} pop_vec length");
                        ensure_eq!(Some(v), m.pop(), "step {step} pop_vec");
                    }
                    Err(PopError::Empty) => ensure_eq!(m.pop(), None, "step {step} empty"),
                    Err(e) => return Err(format!("step {step} pop_vec: {e}")),
                }
            }
            MpmcOp::PopWith(w) => match retry_empty!(
                retries,
                m,
                Err(PopError::Empty),
                rx!(w).try_pop_with(|b| b.to_vec())
            ) {
                Ok(v) => ensure_eq!(Some(v), m.pop(), "step {step} pop_with"),
                Err(PopError::Empty) => ensure_eq!(m.pop(), None, "step {step} empty"),
                Err(e) => return Err(format!("step {step} pop_with: {e}")),
            },
            MpmcOp::PopBatch(w, n) => {
                let n = usize::from(n % 8);
                let mut got = Vec::new();
                let k = retry_empty!(
                    retries,
                    m,
                    Ok(0),
                    rx!(w).try_pop_batch(n, |b| got.push(b.to_vec()))
                )
                .map_err(|e| format!("step {step} try_pop_batch: {e}"))?;
                ensure_eq!(k, got.len(), "step {step} try_pop_batch count");
                let want: Vec<Vec<u8>> = (0..n).map_while(|_| m.pop()).collect();
                ensure_eq!(got, want, "step {step} try_pop_batch");
            }
            MpmcOp::Read(w) => {
                // As `retry_empty!`, by hand: the claimed slot borrows the consumer.
                let calls = retries.calls(&m);
                for call in 1..=calls {
                    match rx!(w)
                        .read()
                        .map_err(|e| format!("step {step} read: {e}"))?
                    {
                        Some(msg) => {
                            ensure_eq!(Some(msg.to_vec()), m.pop(), "step {step} claim");
                            break;
                        }
                        None if m.is_empty() || call == calls => {
                            ensure_eq!(m.pop(), None, "step {step} claim empty");
                            break;
                        }
                        None => {}
                    }
                }
            }
        }
    }
    let mut v = Vec::new();
    let mut attached = rxs.iter_mut().flatten();
    let rx = attached.next().ok_or("no consumer attached")?;
    while !m.is_empty() {
        retry_empty!(retries, m, Err(PopError::Empty), rx.try_pop_vec(&mut v))
            .map_err(|e| format!("drain: {e}"))?;
        ensure_eq!(Some(v.clone()), m.pop(), "drain");
    }
    let other = attached.next().unwrap_or(rx);
    ensure_eq!(other.try_pop_vec(&mut v), Err(PopError::Empty), "drained");
    Ok(())
}

/// Detaches endpoint `i` of a role (`Leave`), unless it is the last one attached.
fn leave<E>(endpoints: &mut [Option<E>], i: usize) {
    if endpoints.iter().filter(|e| e.is_some()).count() > 1 {
        endpoints[i] = None;
    }
}

impl MpmcOp {
    /// The endpoint this operation names, and whether it is a producer.
    fn endpoint(&self) -> (u8, bool) {
        match *self {
            MpmcOp::Push(w, _)
            | MpmcOp::Batch(w, _)
            | MpmcOp::All(w, _)
            | MpmcOp::ReserveCommit(w, _)
            | MpmcOp::ReserveAbort(w) => (w, true),
            MpmcOp::Pop(w)
            | MpmcOp::PopSmallBuffer(w, _)
            | MpmcOp::PopVec(w)
            | MpmcOp::PopWith(w)
            | MpmcOp::PopBatch(w, _)
            | MpmcOp::Read(w) => (w, false),
            MpmcOp::Leave(w, producer) => (w, producer),
        }
    }
}
