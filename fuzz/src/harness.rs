//! The invariants the fuzz targets check, shared by the cargo-fuzz targets (`fuzz/`) and the
//! stable property tests (`crates/shmbus-ring/tests/fuzz_invariants.rs`, which includes this
//! file with `#[path]`). It depends on `shmbus-ring` and std only; the `arbitrary` derives are
//! compiled in only where the `arbitrary` feature exists (the fuzz package).
//!
//! Three drivers, one per target:
//!
//! - [`run_spsc`] / [`run_mpmc`]: honest operation sequences on in-process rings, checked
//!   against a model of positions (the same models as `spsc_model.rs` and `mpmc_model.rs`),
//!   including over-limit sizes (`TooLarge`, nothing written).
//! - [`run_open`]: a segment image (a hand-built valid image per `docs/PROTOCOL.md`, patched
//!   with arbitrary bytes, or arbitrary bytes outright), opened as both ring kinds, then
//!   attached and driven: errors only.
//! - [`run_hostile`]: a ring in a memfd segment, honest operations interleaved with arbitrary
//!   writes through a second mapping to positions, record headers, slot words, the endpoint
//!   table and the owner words; the honest side must never panic and must report garbage it
//!   is known to meet.
//!
//! Every driver returns `Err(description)` on a broken invariant; a panic inside the ring
//! crate is a finding by itself.

use shmbus_ring::frame::{encode, record_size, KIND_DATA};
use shmbus_ring::layout::{CONSUMER_BLOCK, DATA_OFFSET, PRODUCER_BLOCK, ROSTER};
use shmbus_ring::mpmc::slot_stride;
use shmbus_ring::{
    MpmcConfig, MpmcRing, OpenOptions, PopError, PushError, Segment, SegmentOptions, SpscConfig,
    SpscRing,
};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(format!($($fmt)*));
        }
    };
}

macro_rules! ensure_eq {
    ($a:expr, $b:expr, $($fmt:tt)*) => {{
        let (a, b) = (&$a, &$b);
        if a != b {
            return Err(format!("{}: {:?} != {:?}", format!($($fmt)*), a, b));
        }
    }};
}

/// Evaluates a pop expression again while it reports `Empty` although the model holds a
/// message: a consumer's walk covers `2 × slots + 64` positions per call and moves the head
/// hint past runs of abandoned positions as it goes (PROTOCOL.md §5.3), so behind a longer
/// run a message arrives within a bounded number of calls, not necessarily the first.
macro_rules! retry_empty {
    ($m:expr, $empty:pat, $e:expr) => {{
        let calls = 2 + $m.entries.len() as u64 / (2 * $m.slots + 64);
        let mut r = $e;
        let mut n = 1;
        while matches!(r, $empty) && !$m.is_empty() && n < calls {
            r = $e;
            n += 1;
        }
        r
    }};
}

/// A length drawn by the fuzzer: mostly within `max`, sometimes just above it (`TooLarge`).
fn size(raw: u16, max: usize) -> usize {
    if raw >= 0xF000 {
        max + 1 + usize::from(raw & 0xff)
    } else {
        usize::from(raw) % (max + 1)
    }
}

// ---------------------------------------------------------------------------------------------
// SPSC operations against a model
// ---------------------------------------------------------------------------------------------

/// One honest SPSC operation. Sizes go through [`size`].
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
    /// `pop_batch(n)`.
    PopBatch(u8),
    /// `peek` then `release`.
    PeekRelease,
    /// `peek` then drop (nothing consumed).
    PeekKeep,
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

/// Where records go, stated directly: the ring holds `[head, tail)`; a record that would cross
/// the end is preceded by padding to the end; a placement needs one free word after it.
struct SpscModel {
    cap: u64,
    head: u64,
    tail: u64,
    /// `Some(payload)` for data, `None` for padding; with the bytes each occupies.
    ring: VecDeque<(Option<Vec<u8>>, u64)>,
    next_seq: u64,
}

impl SpscModel {
    fn fits(&self, end: u64) -> bool {
        end + 8 - self.head <= self.cap
    }

    /// Places a record of `len` bytes as the ring must (padding first if it would cross the
    /// end; the padding stays even when the record then does not fit). True if it fits.
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

    fn front(&mut self) -> Option<&Vec<u8>> {
        while let Some((None, size)) = self.ring.front() {
            self.head += *size;
            self.ring.pop_front();
        }
        self.ring.front().and_then(|(p, _)| p.as_ref())
    }

    fn pop(&mut self) -> Option<Vec<u8>> {
        self.front()?;
        let (p, size) = self.ring.pop_front()?;
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

/// Runs an SPSC case on a heap ring against the model.
pub fn run_spsc(case: &SpscCase) -> Result<(), String> {
    let cap = 64u64 << (case.cap_shift % 6);
    let mut cfg = SpscConfig::new(cap);
    if case.max_record != 0 {
        cfg = cfg.max_record(1 + u64::from(case.max_record) % (cap - 16));
    }
    let ring = SpscRing::in_heap(&cfg).map_err(|e| format!("in_heap: {e}"))?;
    let max = ring.max_record();
    let mut tx = ring.producer().map_err(|e| format!("producer: {e}"))?;
    let mut rx = ring.consumer().map_err(|e| format!("consumer: {e}"))?;
    let mut m = SpscModel {
        cap,
        head: 0,
        tail: 0,
        ring: VecDeque::new(),
        next_seq: 0,
    };
    let too_large = |len: usize| PushError::TooLarge { len, max };
    for (step, op) in case.ops.iter().enumerate() {
        match *op {
            SpscOp::Push(raw) => {
                let len = size(raw, max);
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
                let batch: Vec<Vec<u8>> = raws.iter().map(|&r| m.payload(size(r, max))).collect();
                if let Some(big) = batch.iter().find(|b| b.len() > max) {
                    let want = too_large(big.len());
                    ensure_eq!(tx.try_push_batch(&batch), Err(want), "step {step} batch");
                    continue;
                }
                let mut fitted = 0;
                for b in &batch {
                    if !m.place(b.len()) {
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
                let len = size(raw, max);
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
                    .pop_batch(n, |b| got.push(b.to_vec()))
                    .map_err(|e| format!("step {step} pop_batch: {e}"))?;
                ensure_eq!(k, got.len(), "step {step} pop_batch count");
                let want: Vec<Vec<u8>> = (0..n).map_while(|_| m.pop()).collect();
                ensure_eq!(got, want, "step {step} pop_batch");
            }
            SpscOp::PeekRelease | SpscOp::PeekKeep => {
                let expect = m.front().cloned();
                match rx.peek().map_err(|e| format!("step {step} peek: {e}"))? {
                    Some(p) => {
                        ensure_eq!(Some(p.to_vec()), expect, "step {step} peek");
                        if matches!(op, SpscOp::PeekRelease) {
                            p.release();
                            m.pop();
                        }
                    }
                    None => ensure_eq!(expect, None, "step {step} peek empty"),
                }
            }
            SpscOp::IsEmpty => {
                let expect = m.front().is_none();
                ensure_eq!(rx.is_empty(), expect, "step {step} is_empty");
            }
        }
        ensure_eq!(
            ring.used_bytes(),
            Some(m.tail - m.head),
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
// MPMC operations against a model
// ---------------------------------------------------------------------------------------------

/// Endpoints per side in [`run_mpmc`].
pub const MPMC_ENDPOINTS: usize = 3;

/// One honest MPMC operation; the `u8` picks the endpoint (`% MPMC_ENDPOINTS`).
#[derive(Debug, Clone)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum MpmcOp {
    /// `try_push`.
    Push(u8, u16),
    /// `push_burst`.
    Burst(u8, Vec<u16>),
    /// `push_bulk`.
    Bulk(u8, Vec<u16>),
    /// `claim`, write, `commit`.
    ClaimCommit(u8, u16),
    /// `claim`, drop uncommitted (abandon).
    ClaimAbandon(u8),
    /// `try_pop` into a slot-sized buffer.
    Pop(u8),
    /// `try_pop` into a buffer of the given size.
    PopSmallBuffer(u8, u8),
    /// `try_pop_vec`.
    PopVec(u8),
    /// `try_pop_with`.
    PopWith(u8),
    /// `pop_burst(n)`.
    PopBurst(u8, u8),
    /// consumer `claim`, read, drop.
    ClaimRead(u8),
}

/// An MPMC case.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct MpmcCase {
    /// Slots: `[2, 4, 8, 64][slots_sel % 4]`.
    pub slots_sel: u8,
    /// Slot size: `1 + slot_size % 96`.
    pub slot_size: u8,
    /// The operations, in order.
    pub ops: Vec<MpmcOp>,
}

#[derive(Debug, Clone, PartialEq)]
enum Entry {
    Msg(Vec<u8>),
    Abandoned,
}

/// Positions `[head, tail)` and what each holds. A producer at `tail` may claim it when the
/// slot's previous occupant, position `tail - slots`, is consumed or abandoned.
struct MpmcModel {
    slots: u64,
    head: u64,
    tail: u64,
    entries: VecDeque<Entry>,
    next: u8,
}

impl MpmcModel {
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

    fn is_empty(&self) -> bool {
        self.entries.iter().all(|e| *e == Entry::Abandoned)
    }
}

/// Runs an MPMC case on a heap ring, through several endpoints, against the model.
pub fn run_mpmc(case: &MpmcCase) -> Result<(), String> {
    let slots = [2u64, 4, 8, 64][usize::from(case.slots_sel % 4)];
    let max = 1 + usize::from(case.slot_size % 96);
    let ring = MpmcRing::in_heap(&MpmcConfig::new(slots, max as u64))
        .map_err(|e| format!("in_heap: {e}"))?;
    ensure_eq!(ring.slot_size(), max, "slot size");
    let mut txs = Vec::new();
    let mut rxs = Vec::new();
    for _ in 0..MPMC_ENDPOINTS {
        txs.push(ring.producer().map_err(|e| format!("producer: {e}"))?);
        rxs.push(ring.consumer().map_err(|e| format!("consumer: {e}"))?);
    }
    let mut m = MpmcModel {
        slots,
        head: 0,
        tail: 0,
        entries: VecDeque::new(),
        next: 0,
    };
    let too_large = |len: usize| PushError::TooLarge { len, max };
    let who = |w: u8| usize::from(w) % MPMC_ENDPOINTS;
    let mut buf = vec![0u8; max];
    for (step, op) in case.ops.iter().enumerate() {
        match *op {
            MpmcOp::Push(w, raw) => {
                let len = size(raw, max);
                let msg = m.msg(len);
                if len > max {
                    ensure_eq!(
                        txs[who(w)].try_push(&msg),
                        Err(too_large(len)),
                        "step {step}"
                    );
                    continue;
                }
                let expect = m.can_claim();
                match txs[who(w)].try_push(&msg) {
                    Ok(()) => {
                        ensure!(expect, "step {step}: pushed into a full ring");
                        m.push(Entry::Msg(msg));
                    }
                    Err(PushError::Full) => ensure!(!expect, "step {step}: full with room"),
                    Err(e) => return Err(format!("step {step} push: {e}")),
                }
            }
            MpmcOp::Burst(w, ref raws) | MpmcOp::Bulk(w, ref raws) => {
                let msgs: Vec<Vec<u8>> = raws.iter().map(|&r| m.msg(size(r, max))).collect();
                let bulk = matches!(op, MpmcOp::Bulk(..));
                if bulk && msgs.len() as u64 > slots {
                    // It could never all fit: refused before anything else is looked at.
                    let want = PushError::TooMany {
                        count: msgs.len(),
                        max: slots as usize,
                    };
                    ensure_eq!(txs[who(w)].push_bulk(&msgs), Err(want), "step {step} bulk");
                    continue;
                }
                if let Some(big) = msgs.iter().find(|b| b.len() > max) {
                    let want = too_large(big.len());
                    if bulk {
                        ensure_eq!(txs[who(w)].push_bulk(&msgs), Err(want), "step {step} bulk");
                    } else {
                        ensure_eq!(txs[who(w)].push_burst(&msgs), Err(want), "step {step}");
                    }
                    continue;
                }
                let start = m.entries.len();
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
                        for e in m.entries.iter_mut().skip(start) {
                            *e = Entry::Abandoned;
                        }
                    }
                    match txs[who(w)].push_bulk(&msgs) {
                        Ok(()) => ensure!(all, "step {step}: bulk succeeded where it fills"),
                        Err(PushError::Full) => ensure!(!all, "step {step}: bulk full with room"),
                        Err(e) => return Err(format!("step {step} bulk: {e}")),
                    }
                } else {
                    match txs[who(w)].push_burst(&msgs) {
                        Ok(n) => ensure_eq!(n, fit, "step {step} burst count"),
                        Err(PushError::Full) => ensure_eq!(fit, 0, "step {step} burst full"),
                        Err(e) => return Err(format!("step {step} burst: {e}")),
                    }
                }
            }
            MpmcOp::ClaimCommit(w, _) | MpmcOp::ClaimAbandon(w) => {
                let expect = m.can_claim();
                match txs[who(w)].claim() {
                    Ok(mut slot) => {
                        ensure!(expect, "step {step}: claimed in a full ring");
                        ensure_eq!(slot.len(), max, "step {step} slot length");
                        if let MpmcOp::ClaimCommit(_, raw) = *op {
                            let len = usize::from(raw) % (max + 1);
                            let msg = m.msg(len);
                            slot[..len].copy_from_slice(&msg);
                            slot.commit(len);
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
                match retry_empty!(m, Err(PopError::Empty), rxs[who(w)].try_pop(&mut buf)) {
                    Ok(n) => ensure_eq!(Some(buf[..n].to_vec()), m.pop(), "step {step} pop"),
                    Err(PopError::Empty) => ensure_eq!(m.pop(), None, "step {step} empty"),
                    Err(e) => return Err(format!("step {step} pop: {e}")),
                }
            }
            MpmcOp::PopSmallBuffer(w, n) => {
                let mut small = vec![0u8; usize::from(n) % (max + 1)];
                match retry_empty!(m, Err(PopError::Empty), rxs[who(w)].try_pop(&mut small)) {
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
                match retry_empty!(m, Err(PopError::Empty), rxs[who(w)].try_pop_vec(&mut v)) {
                    Ok(n) => {
                        ensure_eq!(n, v.len(), "step {step} pop_vec length");
                        ensure_eq!(Some(v), m.pop(), "step {step} pop_vec");
                    }
                    Err(PopError::Empty) => ensure_eq!(m.pop(), None, "step {step} empty"),
                    Err(e) => return Err(format!("step {step} pop_vec: {e}")),
                }
            }
            MpmcOp::PopWith(w) => match retry_empty!(
                m,
                Err(PopError::Empty),
                rxs[who(w)].try_pop_with(|b| b.to_vec())
            ) {
                Ok(v) => ensure_eq!(Some(v), m.pop(), "step {step} pop_with"),
                Err(PopError::Empty) => ensure_eq!(m.pop(), None, "step {step} empty"),
                Err(e) => return Err(format!("step {step} pop_with: {e}")),
            },
            MpmcOp::PopBurst(w, n) => {
                let n = usize::from(n % 8);
                let mut got = Vec::new();
                let k = retry_empty!(m, Ok(0), rxs[who(w)].pop_burst(n, |b| got.push(b.to_vec())))
                    .map_err(|e| format!("step {step} pop_burst: {e}"))?;
                ensure_eq!(k, got.len(), "step {step} pop_burst count");
                let want: Vec<Vec<u8>> = (0..n).map_while(|_| m.pop()).collect();
                ensure_eq!(got, want, "step {step} pop_burst");
            }
            MpmcOp::ClaimRead(w) => {
                // As `retry_empty!`, by hand: the claimed slot borrows the consumer.
                let calls = 2 + m.entries.len() as u64 / (2 * m.slots + 64);
                for call in 1..=calls {
                    match rxs[who(w)]
                        .claim()
                        .map_err(|e| format!("step {step} claim: {e}"))?
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
    while !m.is_empty() {
        retry_empty!(m, Err(PopError::Empty), rxs[0].try_pop_vec(&mut v))
            .map_err(|e| format!("drain: {e}"))?;
        ensure_eq!(Some(v.clone()), m.pop(), "drain");
    }
    ensure_eq!(rxs[1].try_pop_vec(&mut v), Err(PopError::Empty), "drained");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Segment images, built by hand from docs/PROTOCOL.md
// ---------------------------------------------------------------------------------------------

const PAGE: usize = 4096;

fn page_round(n: u64) -> usize {
    (n as usize).div_ceil(PAGE) * PAGE
}

fn put(img: &mut [u8], off: usize, bytes: &[u8]) {
    img[off..off + bytes.len()].copy_from_slice(bytes);
}

/// A valid, READY segment image per PROTOCOL.md §3, with zeroed control blocks and data.
fn header_image(kind: u32, total: usize, capacity: u64, limit: u64, data_len: u64) -> Vec<u8> {
    let mut img = vec![0u8; total];
    put(&mut img, 0, b"shmbus\0\0");
    put(&mut img, 8, b"REDY");
    put(&mut img, 12, &1u16.to_le_bytes()); // layout_major
    put(&mut img, 14, &0u16.to_le_bytes()); // layout_minor
    put(&mut img, 16, &1u32.to_le_bytes()); // abi_flags: little-endian
    put(&mut img, 20, &128u32.to_le_bytes()); // block_align
    put(&mut img, 24, &kind.to_le_bytes());
    put(&mut img, 28, &256u32.to_le_bytes()); // header_len
    put(&mut img, 32, &(total as u64).to_le_bytes());
    put(&mut img, 40, &capacity.to_le_bytes());
    put(&mut img, 48, &limit.to_le_bytes());
    put(&mut img, 56, &PRODUCER_BLOCK.to_le_bytes());
    put(&mut img, 64, &CONSUMER_BLOCK.to_le_bytes());
    put(&mut img, 72, &DATA_OFFSET.to_le_bytes());
    put(&mut img, 80, &data_len.to_le_bytes());
    img
}

/// A valid SPSC image: `capacity` data bytes (a power of two >= 64), records up to `limit`.
pub fn spsc_image(capacity: u64, limit: u64) -> Vec<u8> {
    let total = page_round(DATA_OFFSET + capacity);
    header_image(1, total, capacity, limit, capacity)
}

/// A valid MPMC image: `slots` slots (a power of two >= 2) of `slot_size` payload bytes, each
/// slot's sequence word initialised to its position.
pub fn mpmc_image(slots: u64, slot_size: u64) -> Vec<u8> {
    let stride = slot_stride(slot_size);
    let data_len = slots * stride;
    let total = page_round(DATA_OFFSET + data_len);
    let mut img = header_image(2, total, slots, slot_size, data_len);
    for i in 0..slots {
        put(
            &mut img,
            (DATA_OFFSET + i * stride) as usize,
            &(i << 8).to_le_bytes(),
        );
    }
    img
}

/// Where an image comes from.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Base {
    /// Arbitrary bytes, padded with zeros to whole pages (at most 64 KiB are used).
    Raw(Vec<u8>),
    /// [`spsc_image`] with capacity `64 << (cap_shift % 8)` and limit
    /// `1 + limit % (capacity - 16)`.
    Spsc {
        /// Capacity selector.
        cap_shift: u8,
        /// Record limit selector.
        limit: u16,
    },
    /// [`mpmc_image`] with `2 << (slots_shift % 6)` slots of `1 + slot_size % 512` bytes.
    Mpmc {
        /// Slot count selector.
        slots_shift: u8,
        /// Slot size selector.
        slot_size: u16,
    },
}

/// Bytes written into an image: `value`'s low `1 << (width % 4)` bytes at `offset % len`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Patch {
    /// Byte offset (wrapped to the image).
    pub offset: u16,
    /// 1, 2, 4 or 8 bytes.
    pub width: u8,
    /// The bytes, little-endian.
    pub value: u64,
}

/// One honest operation, meaningful for both ring kinds (see [`apply_honest`]).
#[derive(Debug, Clone)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Honest {
    /// `try_push`.
    Push(u16),
    /// SPSC `try_push_batch`; MPMC `push_burst` (even count) or `push_bulk` (odd).
    PushMany(u8, u16),
    /// SPSC `reserve`; MPMC `claim`; then commit (true) or abandon.
    Reserve(u16, bool),
    /// `try_pop` into a buffer of the ring's record limit.
    Pop,
    /// `try_pop_vec`.
    PopVec,
    /// SPSC `pop_batch`; MPMC `pop_burst`.
    PopMany(u8),
    /// SPSC `peek` (release or keep); MPMC consumer `claim`.
    Peek(bool),
    /// SPSC `is_empty`; MPMC `try_pop_with`.
    Probe,
    /// Drop the producer (true) or consumer and attach a new one.
    Reattach(bool),
    /// `push_timeout` with a short timeout: must return by then (plus scheduling slack),
    /// whatever a peer wrote into the wake words.
    TimedPush(u16),
    /// `pop_timeout` with a short timeout; as `TimedPush`.
    TimedPop,
}

/// The timeout of [`Honest::TimedPush`] / [`Honest::TimedPop`].
pub const TIMED: Duration = Duration::from_micros(50);
/// How late a timed call may return before it counts as a hang (a loaded 2-vCPU machine can
/// deschedule the caller for a while; a real hang is caught by libFuzzer's -timeout too).
pub const TIMED_SLACK: Duration = Duration::from_secs(2);

fn timed<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let t = std::time::Instant::now();
    let r = f();
    let took = t.elapsed();
    ensure!(
        took <= TIMED + TIMED_SLACK,
        "a {TIMED:?} timed call took {took:?}"
    );
    Ok(r)
}

/// A case for `open_segment`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct OpenCase {
    /// The image before patches.
    pub base: Base,
    /// Bytes written over it.
    pub patches: Vec<Patch>,
    /// What a ring that opens is then asked to do.
    pub ops: Vec<Honest>,
}

fn base_image(base: &Base) -> Vec<u8> {
    match base {
        Base::Raw(bytes) => {
            let mut b = bytes.clone();
            b.truncate(64 << 10);
            b
        }
        Base::Spsc { cap_shift, limit } => {
            let cap = 64u64 << (cap_shift % 8);
            spsc_image(cap, 1 + u64::from(*limit) % (cap - 16))
        }
        Base::Mpmc {
            slots_shift,
            slot_size,
        } => mpmc_image(2 << (slots_shift % 6), 1 + u64::from(*slot_size) % 512),
    }
}

/// Open options for images: READY is either there or not; never wait for it.
pub fn no_wait() -> OpenOptions {
    OpenOptions {
        ready_timeout: Duration::ZERO,
        expect: None,
    }
}

/// Builds the image, opens it as an SPSC and as an MPMC ring, and drives whatever opens.
/// Any outcome but a panic is acceptable, except payloads longer than the ring's limit.
pub fn run_open(case: &OpenCase) -> Result<(), String> {
    let mut img = base_image(&case.base);
    if !img.is_empty() {
        for p in &case.patches {
            let off = usize::from(p.offset) % img.len();
            let width = 1usize << (p.width % 4);
            let end = (off + width).min(img.len());
            img[off..end].copy_from_slice(&p.value.to_le_bytes()[..end - off]);
        }
    }
    let seg = || Segment::heap_from_bytes(&img).map_err(|e| format!("heap_from_bytes: {e}"));
    if let Ok(ring) = SpscRing::open_in(seg()?, &no_wait()) {
        let mut ends = SpscEnds::attach(&ring);
        for op in &case.ops {
            ends.apply(&ring, op)?;
        }
    }
    if let Ok(ring) = MpmcRing::open_in(seg()?, &no_wait()) {
        let mut ends = MpmcEnds::attach(&ring);
        for op in &case.ops {
            ends.apply(&ring, op)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Honest endpoints that tolerate garbage
// ---------------------------------------------------------------------------------------------

/// An SPSC producer and consumer, each present if attaching succeeded.
pub struct SpscEnds {
    tx: Option<shmbus_ring::Producer>,
    rx: Option<shmbus_ring::Consumer>,
    max: usize,
    seq: u8,
    /// Set once any call returned `Corrupt` (for reporting; not required).
    pub saw_corrupt: bool,
}

impl SpscEnds {
    /// Attaches both ends (either may fail on garbage).
    pub fn attach(ring: &SpscRing) -> SpscEnds {
        SpscEnds {
            tx: ring.producer().ok(),
            rx: ring.consumer().ok(),
            max: ring.max_record(),
            seq: 0,
            saw_corrupt: false,
        }
    }

    fn payload(&mut self, len: usize) -> Vec<u8> {
        self.seq = self.seq.wrapping_add(1);
        vec![self.seq; len]
    }

    fn push_result(&mut self, r: Result<(), PushError>) {
        if let Err(PushError::Corrupt(_)) = r {
            self.saw_corrupt = true;
        }
    }

    fn pop_result<T>(&mut self, r: &Result<T, PopError>) {
        if let Err(PopError::Corrupt(_)) = r {
            self.saw_corrupt = true;
        }
    }

    /// Applies one honest operation; `Err` only when the ring hands out something impossible.
    pub fn apply(&mut self, ring: &SpscRing, op: &Honest) -> Result<(), String> {
        let max = self.max;
        match *op {
            Honest::Push(raw) => {
                let data = self.payload(size(raw, max).min(max + 8));
                if let Some(tx) = self.tx.as_mut() {
                    let r = tx.try_push(&data);
                    self.push_result(r);
                }
            }
            Honest::PushMany(n, raw) => {
                let batch: Vec<Vec<u8>> =
                    (0..n % 6).map(|_| self.payload(size(raw, max))).collect();
                if let Some(tx) = self.tx.as_mut() {
                    let r = tx.try_push_batch(&batch);
                    if let Ok(k) = r {
                        ensure!(k <= batch.len(), "batch pushed {k} of {}", batch.len());
                    }
                    self.push_result(r.map(|_| ()));
                }
            }
            Honest::Reserve(raw, commit) => {
                let len = size(raw, max);
                if let Some(tx) = self.tx.as_mut() {
                    match tx.reserve(len) {
                        Ok(mut r) => {
                            ensure_eq!(r.len(), len, "reservation length");
                            r.fill(0xA5);
                            if commit {
                                r.commit();
                            }
                        }
                        Err(e) => self.push_result(Err(e)),
                    }
                }
            }
            Honest::Pop => {
                let mut buf = vec![0u8; max];
                if let Some(rx) = self.rx.as_mut() {
                    let r = rx.try_pop(&mut buf);
                    if let Ok(n) = r {
                        ensure!(n <= max, "popped {n} bytes, limit {max}");
                    }
                    self.pop_result(&r);
                }
            }
            Honest::PopVec => {
                let mut v = Vec::new();
                if let Some(rx) = self.rx.as_mut() {
                    let r = rx.try_pop_vec(&mut v);
                    if let Ok(n) = r {
                        ensure!(n <= max && n == v.len(), "popped {n} bytes, limit {max}");
                    }
                    self.pop_result(&r);
                }
            }
            Honest::PopMany(n) => {
                if let Some(rx) = self.rx.as_mut() {
                    let mut bad = None;
                    let r = rx.pop_batch(usize::from(n % 8), |b| {
                        if b.len() > max {
                            bad = Some(b.len());
                        }
                    });
                    ensure!(
                        bad.is_none(),
                        "pop_batch handed out {bad:?} bytes, limit {max}"
                    );
                    self.pop_result(&r);
                }
            }
            Honest::Peek(release) => {
                if let Some(rx) = self.rx.as_mut() {
                    let r = rx.peek();
                    match r {
                        Ok(Some(p)) => {
                            ensure!(p.len() <= max, "peeked {} bytes, limit {max}", p.len());
                            if release {
                                p.release();
                            }
                        }
                        Ok(None) => {}
                        Err(e) => self.pop_result::<()>(&Err(e)),
                    }
                }
            }
            Honest::Probe => {
                if let Some(rx) = self.rx.as_mut() {
                    let _ = rx.is_empty();
                }
            }
            Honest::Reattach(producer) => {
                if producer {
                    self.tx = None;
                    self.tx = ring.producer().ok();
                } else {
                    self.rx = None;
                    self.rx = ring.consumer().ok();
                }
            }
            Honest::TimedPush(raw) => {
                let data = self.payload(size(raw, max));
                if let Some(tx) = self.tx.as_mut() {
                    let r = timed(|| tx.push_timeout(&data, TIMED))?;
                    self.push_result(r);
                }
            }
            Honest::TimedPop => {
                let mut buf = vec![0u8; max];
                if let Some(rx) = self.rx.as_mut() {
                    let r = timed(|| rx.pop_timeout(&mut buf, TIMED))?;
                    if let Ok(n) = r {
                        ensure!(n <= max, "popped {n} bytes, limit {max}");
                    }
                    self.pop_result(&r);
                }
            }
        }
        Ok(())
    }
}

/// An MPMC producer and consumer, each present if attaching succeeded.
pub struct MpmcEnds {
    tx: Option<shmbus_ring::MpmcProducer>,
    rx: Option<shmbus_ring::MpmcConsumer>,
    max: usize,
    seq: u8,
    /// Set once any call returned `Corrupt`.
    pub saw_corrupt: bool,
}

impl MpmcEnds {
    /// Attaches both ends (either may fail on garbage).
    pub fn attach(ring: &MpmcRing) -> MpmcEnds {
        MpmcEnds {
            tx: ring.producer().ok(),
            rx: ring.consumer().ok(),
            max: ring.slot_size(),
            seq: 0,
            saw_corrupt: false,
        }
    }

    fn payload(&mut self, len: usize) -> Vec<u8> {
        self.seq = self.seq.wrapping_add(1);
        vec![self.seq; len]
    }

    fn pop_result<T>(&mut self, r: &Result<T, PopError>) {
        if let Err(PopError::Corrupt(_)) = r {
            self.saw_corrupt = true;
        }
    }

    fn push_result<T>(&mut self, r: &Result<T, PushError>) {
        if let Err(PushError::Corrupt(_)) = r {
            self.saw_corrupt = true;
        }
    }

    /// Applies one honest operation; `Err` only when the ring hands out something impossible.
    pub fn apply(&mut self, ring: &MpmcRing, op: &Honest) -> Result<(), String> {
        let max = self.max;
        match *op {
            Honest::Push(raw) => {
                let data = self.payload(size(raw, max));
                if let Some(tx) = self.tx.as_mut() {
                    let r = tx.try_push(&data);
                    self.push_result(&r);
                }
            }
            Honest::PushMany(n, raw) => {
                let batch: Vec<Vec<u8>> =
                    (0..n % 6).map(|_| self.payload(size(raw, max))).collect();
                if let Some(tx) = self.tx.as_mut() {
                    if n % 2 == 0 {
                        let r = tx.push_burst(&batch);
                        if let Ok(k) = r {
                            ensure!(k <= batch.len(), "burst pushed {k} of {}", batch.len());
                        }
                        self.push_result(&r);
                    } else {
                        let r = tx.push_bulk(&batch);
                        self.push_result(&r);
                    }
                }
            }
            Honest::Reserve(raw, commit) => {
                if let Some(tx) = self.tx.as_mut() {
                    match tx.claim() {
                        Ok(mut slot) => {
                            ensure_eq!(slot.len(), max, "write slot length");
                            let len = usize::from(raw) % (max + 1);
                            slot[..len].fill(0x5A);
                            if commit {
                                slot.commit(len);
                            }
                        }
                        Err(e) => self.saw_corrupt |= matches!(e, PushError::Corrupt(_)),
                    }
                }
            }
            Honest::Pop => {
                let mut buf = vec![0u8; max];
                if let Some(rx) = self.rx.as_mut() {
                    let r = rx.try_pop(&mut buf);
                    if let Ok(n) = r {
                        ensure!(n <= max, "popped {n} bytes, limit {max}");
                    }
                    self.pop_result(&r);
                }
            }
            Honest::PopVec => {
                let mut v = Vec::new();
                if let Some(rx) = self.rx.as_mut() {
                    let r = rx.try_pop_vec(&mut v);
                    if let Ok(n) = r {
                        ensure!(n <= max && n == v.len(), "popped {n} bytes, limit {max}");
                    }
                    self.pop_result(&r);
                }
            }
            Honest::PopMany(n) => {
                if let Some(rx) = self.rx.as_mut() {
                    let mut bad = None;
                    let r = rx.pop_burst(usize::from(n % 8), |b| {
                        if b.len() > max {
                            bad = Some(b.len());
                        }
                    });
                    ensure!(
                        bad.is_none(),
                        "pop_burst handed out {bad:?} bytes, limit {max}"
                    );
                    self.pop_result(&r);
                }
            }
            Honest::Peek(_) => {
                if let Some(rx) = self.rx.as_mut() {
                    match rx.claim() {
                        Ok(Some(msg)) => {
                            ensure!(msg.len() <= max, "claimed {} bytes, limit {max}", msg.len())
                        }
                        Ok(None) => {}
                        Err(e) => self.saw_corrupt |= matches!(e, PopError::Corrupt(_)),
                    }
                }
            }
            Honest::Probe => {
                if let Some(rx) = self.rx.as_mut() {
                    let r = rx.try_pop_with(|b| b.len());
                    if let Ok(n) = r {
                        ensure!(n <= max, "popped {n} bytes, limit {max}");
                    }
                    self.pop_result(&r);
                }
            }
            Honest::Reattach(producer) => {
                if producer {
                    self.tx = None;
                    self.tx = ring.producer().ok();
                } else {
                    self.rx = None;
                    self.rx = ring.consumer().ok();
                }
            }
            Honest::TimedPush(raw) => {
                let data = self.payload(size(raw, max));
                if let Some(tx) = self.tx.as_mut() {
                    let r = timed(|| tx.push_timeout(&data, TIMED))?;
                    self.push_result(&r);
                }
            }
            Honest::TimedPop => {
                let mut buf = vec![0u8; max];
                if let Some(rx) = self.rx.as_mut() {
                    let r = timed(|| rx.pop_timeout(&mut buf, TIMED))?;
                    if let Ok(n) = r {
                        ensure!(n <= max, "popped {n} bytes, limit {max}");
                    }
                    self.pop_result(&r);
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// A hostile peer writing into a live ring
// ---------------------------------------------------------------------------------------------

/// Which shared word a hostile write hits.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Target {
    /// Producer block `tail` (SPSC) / tail hint (MPMC).
    ProducerPosition,
    /// Consumer block `head` / head hint.
    ConsumerPosition,
    /// A word in the producer or consumer block other than the position (owner pid, reserved).
    BlockWord(bool, u8),
    /// SPSC: the data word at `(n * 8) % capacity`; MPMC: the sequence word of slot `n`.
    DataWord(u16),
    /// SPSC: the header word at the consumer's current `head`; MPMC: the sequence word of
    /// the slot at the head hint.
    AtHead,
    /// SPSC: the word at the producer's `tail`; MPMC: the slot at the tail hint.
    AtTail,
    /// MPMC: the `len` word of slot `n`; SPSC: a data word as `DataWord`.
    SlotLen(u16),
    /// Word `n` from the roster on: the attached bitmaps, then the endpoint entries (state
    /// words, start times, namespaces, lock flags).
    Endpoint(u8),
    /// The segment header's word `n % 32` (copied at open; later writes must not matter).
    Header(u8),
}

/// What value a hostile write stores.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Value {
    /// Any 64 bits.
    Raw(u64),
    /// The current value plus a small signed delta (off-by-a-little, the sneaky kind).
    Nudge(i8),
    /// A valid-looking SPSC data header (`len | 1 << 32`) / MPMC word (`seq << 8 | tag`).
    Plausible(u16, u8),
}

/// One step of a hostile case.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Step {
    /// The honest side does something.
    Honest(Honest),
    /// The hostile peer writes a word.
    Write(Target, Value),
    /// The hostile peer writes a header word that is invalid beyond doubt at the consumer's
    /// next position: the honest consumer's next pop must then report `Corrupt`.
    Poison(u8),
}

/// A case for `hostile_peer`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct HostileCase {
    /// SPSC (false) or MPMC (true).
    pub mpmc: bool,
    /// Geometry selector.
    pub geometry: u8,
    /// Limit selector.
    pub limit: u8,
    /// The steps.
    pub steps: Vec<Step>,
}

fn word(raw: &Segment, off: u64) -> Result<&std::sync::atomic::AtomicU64, String> {
    raw.atomic_u64(off as usize)
        .ok_or_else(|| format!("raw mapping refuses word at {off}"))
}

/// A ring in a memfd segment and a second, raw mapping of the same memory (the hostile
/// process's view), so writes go through another mapping exactly as another process's would.
fn memfd_pair(len: u64) -> Result<(Segment, Segment), String> {
    let seg = Segment::memfd("shmbus-fuzz", len, &SegmentOptions::default())
        .map_err(|e| format!("memfd: {e}"))?;
    let fd = seg
        .fd()
        .ok_or("memfd has no fd")?
        .try_clone_to_owned()
        .map_err(|e| format!("dup: {e}"))?;
    let raw = Segment::open_fd(fd, &SegmentOptions::default()).map_err(|e| format!("{e}"))?;
    Ok((seg, raw))
}

/// Runs a hostile case. The honest side must not panic, must never hand out more than the
/// limit, and must report `Corrupt` on a poisoned header while the ring was otherwise clean.
pub fn run_hostile(case: &HostileCase) -> Result<(), String> {
    if case.mpmc {
        run_hostile_mpmc(case)
    } else {
        run_hostile_spsc(case)
    }
}

fn value(raw: &Segment, off: u64, v: Value, mpmc: bool) -> Result<u64, String> {
    Ok(match v {
        Value::Raw(x) => x,
        Value::Nudge(d) => word(raw, off)?
            .load(Ordering::Relaxed)
            .wrapping_add(d as i64 as u64),
        Value::Plausible(len, kind) if !mpmc => encode(u32::from(len), u32::from(kind % 4)),
        Value::Plausible(seq, tag) => (u64::from(seq) << 8) | u64::from(tag % 4),
    })
}

fn run_hostile_spsc(case: &HostileCase) -> Result<(), String> {
    let cap = 64u64 << (case.geometry % 5);
    let limit = 1 + u64::from(case.limit) % (cap - 16);
    let cfg = SpscConfig::new(cap).max_record(limit);
    let (seg, raw) = memfd_pair(cfg.segment_len())?;
    let ring = SpscRing::create_in(seg, &cfg).map_err(|e| format!("create_in: {e}"))?;
    let mut ends = SpscEnds::attach(&ring);
    ensure!(
        ends.tx.is_some() && ends.rx.is_some(),
        "attach to a clean ring failed"
    );
    let mut dirty = false;
    let data = |pos: u64| DATA_OFFSET + (pos & (cap - 1) & !7);
    for (i, step) in case.steps.iter().enumerate() {
        match *step {
            Step::Honest(ref op) => ends.apply(&ring, op)?,
            Step::Write(target, v) => {
                let off = match target {
                    Target::ProducerPosition => PRODUCER_BLOCK,
                    Target::ConsumerPosition => CONSUMER_BLOCK,
                    Target::BlockWord(consumer, n) => {
                        let block = if consumer {
                            CONSUMER_BLOCK
                        } else {
                            PRODUCER_BLOCK
                        };
                        block + 8 + 8 * u64::from(n % 15)
                    }
                    Target::DataWord(n) | Target::SlotLen(n) => data(u64::from(n) * 8),
                    Target::AtHead => data(word(&raw, CONSUMER_BLOCK)?.load(Ordering::Relaxed)),
                    Target::AtTail => data(word(&raw, PRODUCER_BLOCK)?.load(Ordering::Relaxed)),
                    // The roster, then the first 31 endpoint entries, word by word.
                    Target::Endpoint(n) => ROSTER + 8 * u64::from(n),
                    Target::Header(n) => 8 * u64::from(n % 32),
                };
                let x = value(&raw, off, v, false)?;
                word(&raw, off)?.store(x, Ordering::Release);
                dirty = true;
            }
            Step::Poison(kind) => {
                // Only meaningful while no earlier write could have moved the consumer's
                // notion of where it is, and while a consumer is attached.
                let head = word(&raw, CONSUMER_BLOCK)?.load(Ordering::Relaxed);
                let off = data(head);
                // An unknown kind (3..=255), or a data record longer than the limit.
                let bad = if kind % 2 == 0 {
                    encode(1, 3 + u32::from(kind / 2))
                } else {
                    encode(limit as u32 + 1 + u32::from(kind / 2), KIND_DATA)
                };
                word(&raw, off)?.store(bad, Ordering::Release);
                if !dirty {
                    if let Some(rx) = ends.rx.as_mut() {
                        let r = rx.try_pop_vec(&mut Vec::new());
                        ensure!(
                            matches!(r, Err(PopError::Corrupt(_))),
                            "step {i}: poisoned header {bad:#x} at head {head}: {r:?}"
                        );
                        // The error is stable: nothing was consumed.
                        let r = rx.try_pop_vec(&mut Vec::new());
                        ensure!(
                            matches!(r, Err(PopError::Corrupt(_))),
                            "step {i}: second pop after poison: {r:?}"
                        );
                    }
                }
                dirty = true;
            }
        }
    }
    Ok(())
}

fn run_hostile_mpmc(case: &HostileCase) -> Result<(), String> {
    let slots = 2u64 << (case.geometry % 5);
    let limit = 1 + u64::from(case.limit) % 128;
    let cfg = MpmcConfig::new(slots, limit);
    let stride = slot_stride(limit);
    let (seg, raw) = memfd_pair(cfg.segment_len())?;
    let ring = MpmcRing::create_in(seg, &cfg).map_err(|e| format!("create_in: {e}"))?;
    let mut ends = MpmcEnds::attach(&ring);
    ensure!(
        ends.tx.is_some() && ends.rx.is_some(),
        "attach to a clean ring failed"
    );
    let slot = |pos: u64| DATA_OFFSET + (pos & (slots - 1)) * stride;
    let mut dirty = false;
    for (i, step) in case.steps.iter().enumerate() {
        match *step {
            Step::Honest(ref op) => ends.apply(&ring, op)?,
            Step::Write(target, v) => {
                let off = match target {
                    Target::ProducerPosition => PRODUCER_BLOCK,
                    Target::ConsumerPosition => CONSUMER_BLOCK,
                    Target::BlockWord(consumer, n) => {
                        let block = if consumer {
                            CONSUMER_BLOCK
                        } else {
                            PRODUCER_BLOCK
                        };
                        block + 8 + 8 * u64::from(n % 15)
                    }
                    Target::DataWord(n) => slot(u64::from(n)),
                    Target::SlotLen(n) => slot(u64::from(n)) + 8,
                    Target::AtHead => slot(word(&raw, CONSUMER_BLOCK)?.load(Ordering::Relaxed)),
                    Target::AtTail => slot(word(&raw, PRODUCER_BLOCK)?.load(Ordering::Relaxed)),
                    // The roster, then the first 31 endpoint entries, word by word.
                    Target::Endpoint(n) => ROSTER + 8 * u64::from(n),
                    Target::Header(n) => 8 * u64::from(n % 32),
                };
                let x = value(&raw, off, v, true)?;
                word(&raw, off)?.store(x, Ordering::Release);
                dirty = true;
            }
            Step::Poison(extra) => {
                // The next message the consumer takes is the slot at the head hint; if it is
                // committed, give it a length beyond the slot size.
                let head = word(&raw, CONSUMER_BLOCK)?.load(Ordering::Relaxed);
                let at = slot(head);
                let seq_word = word(&raw, at)?.load(Ordering::Acquire);
                if head < (1 << 55) && seq_word == (head + 1) << 8 {
                    let bad = limit + 1 + u64::from(extra);
                    // `len` is the low half of the word at +8 (the high half is reserved).
                    word(&raw, at + 8)?.store(bad, Ordering::Release);
                    if !dirty {
                        if let Some(rx) = ends.rx.as_mut() {
                            let r = rx.try_pop_vec(&mut Vec::new());
                            ensure!(
                                matches!(r, Err(PopError::Corrupt(_))),
                                "step {i}: slot len {bad} at position {head}: {r:?}"
                            );
                        }
                    }
                    dirty = true;
                }
            }
        }
    }
    Ok(())
}
