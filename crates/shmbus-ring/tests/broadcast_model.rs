//! The broadcast ring against a reference model (issue 16, "Show"): one publisher and up to
//! four subscribers of random mode (tethered or not) and random start, a random interleaving of
//! pushes (random sizes up to the record limit, many forcing a padding record at the wrap),
//! reservations committed or abandoned, pops by every read path, joins, leaves and publisher
//! successions, on a 4096-byte ring so that wraps and laps are frequent.
//!
//! The model keeps every record the publisher ever published (its position, size, and for a
//! data record its sequence number), the publisher's tail and intent, the roster generation and
//! the generation the publisher last accounted for; each subscriber's reading position, its
//! published cursor and its next sequence number. It predicts, exactly:
//!
//! - a push is `Full` exactly when the record (with padding and the zero-ahead word) would end
//!   beyond the slowest tethered cursor plus the capacity;
//! - a tethered subscriber reads exactly the published sequence from its start, never lagged;
//! - an untethered subscriber is `Lagged { missed }` exactly when the publisher's intent passed
//!   its position by more than the capacity, resumes at the latest record, and `missed` is the
//!   gap; otherwise it reads the next record;
//! - where each `StartAt` starts, the published count, every cursor in the roster, and each
//!   subscriber's `sequence()`;
//! - under `SlowSubscribers::Untether { after: 0 }` (a random policy switch), which
//!   subscribers a push ejects (exactly those gating below its end less the capacity), the
//!   ring's ejection count, and that each ejected subscriber is told `Ejected` at its next pop
//!   (and reads on untethered), also when its position holds the publisher's zero-ahead word.
//!
//! Every message carries its sequence number and a checksum of its bytes: a torn one is never
//! `Ok`.
#![cfg(not(loom))]

use proptest::prelude::*;
use shmbus_ring::broadcast::{BroadcastConfig, BroadcastRing, SlowSubscribers, StartAt};
use shmbus_ring::frame::record_size;
use shmbus_ring::{Broadcast, Consumer, PopError, Producer, PushError, Subscription};
use std::collections::BTreeMap;
use std::time::Duration;

const CAP: u64 = 4096;
const SLOTS: usize = 4;

// ---------------------------------------------------------------------------------------------
// Messages: [seq: u64][filler][fnv1a of the rest: u32], at least 12 bytes.
// ---------------------------------------------------------------------------------------------

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

fn fill(seq: u64, out: &mut [u8]) {
    let n = out.len();
    out[..8].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in out[8..n - 4].iter_mut().enumerate() {
        *b = (seq as u8).wrapping_mul(151).wrapping_add(i as u8);
    }
    let sum = fnv1a(&out[..n - 4]);
    out[n - 4..].copy_from_slice(&sum.to_le_bytes());
}

fn message(seq: u64, len: usize) -> Vec<u8> {
    let mut m = vec![0u8; len];
    fill(seq, &mut m);
    m
}

/// The sequence number of an intact message, or a description of what is wrong with it.
fn parse(got: &[u8]) -> Result<u64, String> {
    if got.len() < 12 {
        return Err(format!("message of {} bytes", got.len()));
    }
    let seq = u64::from_le_bytes(got[..8].try_into().unwrap());
    let want = message(seq, got.len());
    if want != got {
        return Err(format!("message {seq} ({} bytes) torn", got.len()));
    }
    Ok(seq)
}

// ---------------------------------------------------------------------------------------------
// The reference model.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Rec {
    size: u64,
    /// The sequence number of a data record; `None` for padding.
    seq: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Untethered,
    Probation(u64),
    Confirmed,
}

#[derive(Debug, Clone)]
struct SubModel {
    mode: Mode,
    /// Where it reads next (may be past a padding record its cursor is still before).
    local: u64,
    /// Its published cursor.
    cursor: u64,
    /// The sequence number of the next data record.
    seq: u64,
    /// A publisher ejected it (its cursor's flag): it no longer gates.
    ejected: bool,
}

impl SubModel {
    /// Whether its cursor gates the publisher (tethered, not ejected).
    fn gates(&self) -> bool {
        self.mode != Mode::Untethered && !self.ejected
    }
}

/// What the last write left in a data word (for what an ejected subscriber finds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum W {
    Zero,
    /// The header of the record at this position.
    Header(u64),
    /// Payload bytes.
    Bytes,
}

/// What the model predicts a single pop returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pop {
    Msg(u64),
    Empty,
    Disconnected,
    Lagged(u64),
    Ejected,
}

#[derive(Debug)]
struct Model {
    max: u64,
    /// The checksum trailer's length (0 or 4): a message of `len` bytes is a record of
    /// `len + trailer`.
    trailer: u64,
    history: u64,
    /// Every record ever published, by position.
    recs: BTreeMap<u64, Rec>,
    /// Position and payload length of data record `n`.
    data: Vec<(u64, usize)>,
    tail: u64,
    intent: u64,
    gen: u64,
    seen_gen: u64,
    publisher: bool,
    /// The publisher ejects at once (`SlowSubscribers::Untether { after: 0 }`).
    untether: bool,
    ejections: u64,
    /// What each data word holds.
    words: Vec<W>,
    subs: [Option<SubModel>; SLOTS],
}

impl Model {
    fn new(max: u64, history: u64, trailer: u64) -> Model {
        Model {
            max,
            trailer,
            history,
            recs: BTreeMap::new(),
            data: Vec::new(),
            tail: 0,
            intent: 0,
            gen: 0,
            seen_gen: 0,
            publisher: true,
            untether: false,
            ejections: 0,
            words: vec![W::Zero; (CAP / 8) as usize],
            subs: Default::default(),
        }
    }

    /// The size in the ring of a message of `len` bytes.
    fn size_of(&self, len: usize) -> u64 {
        record_size(len as u64 + self.trailer)
    }

    fn overrun(&self, pos: u64) -> bool {
        self.intent > pos + CAP
    }

    /// The gate: the slowest tethered cursor plus the capacity.
    fn limit(&self) -> u64 {
        self.subs
            .iter()
            .flatten()
            .filter(|s| s.gates())
            .map(|s| s.cursor + CAP)
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Where a joiner starting at `start` starts: (position, sequence number).
    fn pick(&self, start: StartAt) -> (u64, u64) {
        let head = self.data.len() as u64;
        let back = match start {
            StartAt::Next => 0,
            StartAt::Latest => 1,
            StartAt::History(n) => u64::from(n),
            StartAt::Oldest => self.history,
        }
        .min(self.history)
        .min(head);
        for n in head - back..head {
            let pos = self.data[n as usize].0;
            if !self.overrun(pos) {
                return (pos, n);
            }
        }
        if head > 0 {
            let (pos, len) = self.data[head as usize - 1];
            if !self.overrun(pos) {
                return (pos + self.size_of(len), head);
            }
        }
        (self.tail, head)
    }

    fn enter(&mut self, slot: usize, tethered: bool, start: StartAt) {
        let (pos, seq) = self.pick(start);
        let mode = if tethered {
            self.gen += 1;
            Mode::Probation(self.gen)
        } else {
            Mode::Untethered
        };
        self.subs[slot] = Some(SubModel {
            mode,
            local: pos,
            cursor: pos,
            seq,
            ejected: false,
        });
    }

    fn leave(&mut self, slot: usize) {
        if let Some(s) = self.subs[slot].take() {
            if s.gates() {
                self.gen += 1;
            }
        }
    }

    /// `place`: `Err` if too large or full; else publishes padding if needed and returns the
    /// record's start.
    fn place(&mut self, len: usize) -> Result<u64, PushError> {
        if len as u64 + self.trailer > self.max {
            return Err(PushError::TooLarge {
                len,
                max: (self.max - self.trailer) as usize,
            });
        }
        let size = self.size_of(len);
        let to_end = CAP - (self.tail % CAP);
        if size > to_end {
            // The padding alone first (as the ring does since the review's finding 1).
            self.ensure(self.tail + to_end + 8)?;
            self.recs.insert(
                self.tail,
                Rec {
                    size: to_end,
                    seq: None,
                },
            );
            self.write(self.tail, W::Header(self.tail));
            self.write(self.tail + to_end, W::Zero);
            self.tail += to_end;
        }
        self.ensure(self.tail + size + 8)?;
        Ok(self.tail)
    }

    /// The gate for a write up to `end`: `Full`, or (untethering) ejects every gating
    /// subscriber whose cursor is below `end − capacity`; then the intent.
    fn ensure(&mut self, end: u64) -> Result<(), PushError> {
        // Every `ensure` leaves the publisher accounting for the current roster.
        self.seen_gen = self.gen;
        if end > self.limit() {
            if !self.untether {
                return Err(PushError::Full);
            }
            let mut ejected = 0;
            for s in self.subs.iter_mut().flatten() {
                if s.gates() && s.cursor < end - CAP {
                    s.ejected = true;
                    ejected += 1;
                }
            }
            if ejected > 0 {
                self.gen += 1;
                self.ejections += ejected;
            }
            self.seen_gen = self.gen;
            assert!(end <= self.limit(), "model: still full after ejecting");
        }
        self.intent = self.intent.max(end);
        Ok(())
    }

    fn write(&mut self, pos: u64, w: W) {
        self.words[((pos % CAP) / 8) as usize] = w;
    }

    fn word(&self, pos: u64) -> W {
        self.words[((pos % CAP) / 8) as usize]
    }

    /// The payload bytes of a message of `len` at `at` (written by a push, or into a
    /// reservation).
    fn fill(&mut self, at: u64, len: usize) {
        let end = at + 8 + len as u64 + self.trailer;
        let mut p = at + 8;
        while p < end {
            self.write(p, W::Bytes);
            p += 8;
        }
    }

    fn commit(&mut self, at: u64, len: usize) -> u64 {
        assert_eq!(at, self.tail);
        self.fill(at, len);
        self.write(at + self.size_of(len), W::Zero);
        self.write(at, W::Header(at));
        let seq = self.data.len() as u64;
        let size = self.size_of(len);
        self.recs.insert(
            at,
            Rec {
                size,
                seq: Some(seq),
            },
        );
        self.data.push((at, len));
        self.tail += size;
        seq
    }

    fn attach_publisher(&mut self) {
        self.publisher = true;
        self.untether = false;
        self.intent = self.intent.max(self.tail + 8);
        self.seen_gen = self.gen;
    }

    /// One read as the ring's read paths make it: a `Lagged { missed: 0 }` (overtaken at a
    /// padding record without missing a message, resumed at the very record it was about to
    /// read) is no news and is read through, up to four times, then whatever the fifth read
    /// says (`SubscriberCore::again`).
    fn pop_again(&mut self, slot: usize) -> Pop {
        for _ in 0..4 {
            match self.pop(slot) {
                Pop::Lagged(0) => {}
                other => return other,
            }
        }
        self.pop(slot)
    }

    /// One pop by the subscriber in `slot`.
    fn pop(&mut self, slot: usize) -> Pop {
        let mut s = self.subs[slot].clone().expect("a subscriber");
        if s.ejected && s.mode != Mode::Untethered {
            // A probationary subscriber learns it in `confirm`; a confirmed one reads on as
            // before (passing intact padding) and learns it after its copy, or at a zero
            // word.
            let result = loop {
                if let Mode::Probation(_) = s.mode {
                    break Pop::Ejected;
                }
                match self.word(s.local) {
                    // Intact padding: passed.
                    W::Header(p) if p == s.local && self.recs[&s.local].seq.is_none() => {
                        s.local += self.recs[&s.local].size;
                    }
                    // A record, bytes, or a zero word (the ring checks its flags on an empty
                    // read too: the test helper's finding 4, fixed).
                    _ => break Pop::Ejected,
                }
            };
            if result == Pop::Ejected {
                s.mode = Mode::Untethered;
            }
            self.subs[slot] = Some(s);
            return result;
        }
        if let Mode::Probation(joined) = s.mode {
            if self.seen_gen >= joined {
                assert!(
                    !self.overrun(s.local),
                    "model: a tethered joiner overrun before confirmation"
                );
                s.mode = Mode::Confirmed;
            }
        }
        let validating = s.mode != Mode::Confirmed;
        let result = loop {
            if validating && self.overrun(s.local) {
                // Lagged: resumes at the latest record (joining again if tethered).
                let before = s.seq;
                let tethered = s.mode != Mode::Untethered;
                self.enter(slot, tethered, StartAt::Latest);
                let now = self.subs[slot].as_ref().unwrap().seq;
                return Pop::Lagged(now.saturating_sub(before));
            }
            if s.local == self.tail {
                break if self.publisher {
                    Pop::Empty
                } else {
                    Pop::Disconnected
                };
            }
            let rec = self.recs[&s.local];
            s.local += rec.size;
            if let Some(seq) = rec.seq {
                assert_eq!(seq, s.seq, "model: sequence bookkeeping");
                s.seq += 1;
                s.cursor = s.local;
                break Pop::Msg(seq);
            }
        };
        self.subs[slot] = Some(s);
        result
    }

    fn len_of(&self, seq: u64) -> usize {
        self.data[seq as usize].1
    }
}

// ---------------------------------------------------------------------------------------------
// Operations.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum PopHow {
    Pop,
    Vec,
    Read,
    With,
    Batch(u8),
}

#[derive(Debug, Clone)]
enum Op {
    /// Push a message; the length selector picks 12..=max, or just above max.
    Push(u16),
    /// Reserve, fill, then commit or abandon.
    Reserve(u16, bool),
    Pop(usize, PopHow),
    /// Join in a free slot: tethered or not, where.
    Join(usize, bool, StartAt),
    Leave(usize),
    /// Drop the publisher, or attach a successor.
    TogglePublisher,
    /// The publisher's policy: block (false), or eject at once (`Untether { after: 0 }`).
    Policy(bool),
}

fn start() -> impl Strategy<Value = StartAt> {
    prop_oneof![
        Just(StartAt::Next),
        Just(StartAt::Latest),
        (0..80u32).prop_map(StartAt::History),
        Just(StartAt::Oldest),
    ]
}

fn how() -> impl Strategy<Value = PopHow> {
    prop_oneof![
        3 => Just(PopHow::Pop),
        1 => Just(PopHow::Vec),
        1 => Just(PopHow::Read),
        1 => Just(PopHow::With),
        1 => (0..6u8).prop_map(PopHow::Batch),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let slot = 0..SLOTS;
    prop_oneof![
        8 => any::<u16>().prop_map(Op::Push),
        1 => (any::<u16>(), any::<bool>()).prop_map(|(l, c)| Op::Reserve(l, c)),
        10 => (slot.clone(), how()).prop_map(|(s, h)| Op::Pop(s, h)),
        2 => (slot.clone(), any::<bool>(), start()).prop_map(|(s, t, a)| Op::Join(s, t, a)),
        1 => slot.prop_map(Op::Leave),
        1 => Just(Op::TogglePublisher),
        1 => any::<bool>().prop_map(Op::Policy),
    ]
}

/// A length from a selector: mostly 12..=max, one in 32 just above max (`TooLarge`).
fn length(sel: u16, max: u64) -> usize {
    if sel % 32 == 31 {
        (max + 1 + u64::from(sel >> 8) % 16) as usize
    } else {
        (12 + u64::from(sel) % (max - 11)) as usize
    }
}

// ---------------------------------------------------------------------------------------------
// The run.
// ---------------------------------------------------------------------------------------------

struct Real {
    ring: BroadcastRing,
    publisher: Option<Producer<Broadcast>>,
    subs: [Option<Consumer<Broadcast>>; SLOTS],
    max: usize,
}

/// One real pop by `how`: the messages it returned (sequence numbers, checked intact against
/// their model lengths), then its error if any.
fn real_pop(
    c: &mut Consumer<Broadcast>,
    how: PopHow,
    max: usize,
) -> Result<(Vec<Vec<u8>>, Option<PopError>), String> {
    let mut got = Vec::new();
    let err = match how {
        PopHow::Pop => {
            let mut buf = vec![0u8; max];
            match c.try_pop(&mut buf) {
                Ok(n) => {
                    got.push(buf[..n].to_vec());
                    None
                }
                Err(e) => Some(e),
            }
        }
        PopHow::Vec => {
            let mut v = Vec::new();
            match c.try_pop_vec(&mut v) {
                Ok(n) => {
                    if n != v.len() {
                        return Err(format!("try_pop_vec said {n}, vec has {}", v.len()));
                    }
                    got.push(v);
                    None
                }
                Err(e) => Some(e),
            }
        }
        PopHow::Read => match c.read() {
            Ok(Some(g)) => {
                got.push(g.to_vec());
                None
            }
            Ok(None) => Some(PopError::Empty),
            Err(e) => Some(e),
        },
        PopHow::With => match c.try_pop_with(<[u8]>::to_vec) {
            Ok(v) => {
                got.push(v);
                None
            }
            Err(e) => Some(e),
        },
        PopHow::Batch(n) => match c.try_pop_batch(usize::from(n), |m| got.push(m.to_vec())) {
            Ok(k) => {
                if k != got.len() {
                    return Err(format!("try_pop_batch said {k}, handed out {}", got.len()));
                }
                None
            }
            Err(e) => Some(e),
        },
    };
    Ok((got, err))
}

/// How often each outcome occurred in a run (to show a run covers them).
#[derive(Debug, Default)]
struct Seen {
    pushed: u64,
    full: u64,
    padding: u64,
    delivered: u64,
    lagged: u64,
    disconnected: u64,
    confirmed: u64,
    ejections: u64,
    ejected: u64,
}

fn run(max: u64, history: u32, checksum: bool, ops: &[Op]) -> Result<Seen, String> {
    let cfg = BroadcastConfig::new(CAP)
        .max_record(max)
        .history(history)
        .checksum(checksum);
    let trailer = if checksum { 4 } else { 0 };
    let ring = BroadcastRing::in_heap(&cfg).map_err(|e| e.to_string())?;
    let mut real = Real {
        publisher: Some(ring.producer().map_err(|e| e.to_string())?),
        ring,
        subs: Default::default(),
        max: (max - trailer) as usize,
    };
    let mut model = Model::new(max, u64::from(history), trailer);
    let mut seen = Seen::default();
    for (i, op) in ops.iter().enumerate() {
        let ctx = |what: String| format!("op {i} {op:?}: {what}");
        match *op {
            Op::Push(sel) => {
                let Some(tx) = real.publisher.as_mut() else {
                    continue;
                };
                let len = length(sel, max - trailer);
                let seq = model.data.len() as u64;
                let got = tx.try_push(&message(seq, len));
                let want = model.place(len).map(|at| {
                    model.commit(at, len);
                });
                if got != want {
                    return Err(ctx(format!(
                        "push of {len} bytes: real {got:?}, model {want:?} (tail {}, limit {})",
                        model.tail,
                        model.limit()
                    )));
                }
                seen.pushed += u64::from(got.is_ok());
                seen.full += u64::from(got == Err(PushError::Full));
            }
            Op::Reserve(sel, commit) => {
                let Some(tx) = real.publisher.as_mut() else {
                    continue;
                };
                let len = length(sel, max - trailer);
                let seq = model.data.len() as u64;
                let want = model.place(len);
                match (tx.reserve(len), want) {
                    (Ok(mut w), Ok(at)) => {
                        fill(seq, &mut w);
                        model.fill(at, len);
                        if commit {
                            w.commit();
                            model.commit(at, len);
                        }
                    }
                    (Err(e), Err(m)) if e == m => {}
                    (got, want) => {
                        return Err(ctx(format!(
                            "reserve of {len}: real {:?}, model {want:?}",
                            got.map(|w| w.len())
                        )))
                    }
                }
            }
            Op::Pop(slot, how) => {
                let Some(c) = real.subs[slot].as_mut() else {
                    continue;
                };
                let (got, err) = real_pop(c, how, real.max).map_err(ctx)?;
                // The model's pops: one, or up to n for a batch (which stops at the first
                // non-message; a first error is the batch's error, `Empty` is `Ok(0)`).
                let mut want = Vec::new();
                let mut want_err = None;
                let n = match how {
                    PopHow::Batch(n) => usize::from(n),
                    _ => 1,
                };
                while want.len() < n {
                    match model.pop_again(slot) {
                        Pop::Msg(seq) => want.push(seq),
                        Pop::Empty | Pop::Disconnected if !want.is_empty() => break,
                        other => {
                            if !want.is_empty() {
                                return Err(ctx(format!(
                                    "model: a batch met {other:?} after a message"
                                )));
                            }
                            want_err = Some(other);
                            break;
                        }
                    }
                }
                if matches!(how, PopHow::Batch(_)) && !want.is_empty() {
                    // A batch publishes the position once at its end: where the last read
                    // left it (past a padding record that ended the batch).
                    let s = model.subs[slot].as_mut().unwrap();
                    s.cursor = s.local;
                }
                let got_seqs = got
                    .iter()
                    .map(|m| parse(m))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(ctx)?;
                for (m, seq) in got.iter().zip(&got_seqs) {
                    if model.data.get(*seq as usize).map(|d| d.1) != Some(m.len()) {
                        return Err(ctx(format!("message {seq} has {} bytes", m.len())));
                    }
                }
                let want_err = match (how, want_err) {
                    (PopHow::Batch(_), Some(Pop::Empty)) | (PopHow::Batch(0), _) => None,
                    (_, w) => w.map(|p| match p {
                        Pop::Empty => PopError::Empty,
                        Pop::Disconnected => PopError::Disconnected,
                        Pop::Lagged(missed) => PopError::Lagged { missed },
                        Pop::Ejected => PopError::Ejected,
                        Pop::Msg(_) => unreachable!(),
                    }),
                };
                seen.delivered += got.len() as u64;
                seen.lagged += u64::from(matches!(err, Some(PopError::Lagged { .. })));
                seen.disconnected += u64::from(err == Some(PopError::Disconnected));
                seen.ejected += u64::from(err == Some(PopError::Ejected));
                if got_seqs != want || err != want_err {
                    let s = model.subs[slot].as_ref().unwrap();
                    return Err(ctx(format!(
                        "real {got_seqs:?} {err:?}, model {want:?} {want_err:?} \
                         (subscriber {s:?}, tail {}, intent {})",
                        model.tail, model.intent
                    )));
                }
                if let Some(&seq) = got_seqs.last() {
                    debug_assert_eq!(model.len_of(seq), got.last().unwrap().len());
                }
            }
            Op::Join(slot, tethered, start) => {
                if real.subs[slot].is_some() {
                    continue;
                }
                let how = if tethered {
                    Subscription::tethered()
                } else {
                    Subscription::untethered()
                }
                .start_at(start);
                real.subs[slot] = Some(real.ring.subscriber(&how).map_err(|e| ctx(e.to_string()))?);
                model.enter(slot, tethered, start);
            }
            Op::Leave(slot) => {
                real.subs[slot] = None;
                model.leave(slot);
            }
            Op::Policy(untether) => {
                let Some(tx) = real.publisher.as_mut() else {
                    continue;
                };
                tx.set_slow_subscribers(if untether {
                    SlowSubscribers::Untether {
                        after: Duration::ZERO,
                    }
                } else {
                    SlowSubscribers::Block
                });
                model.untether = untether;
            }
            Op::TogglePublisher => {
                if real.publisher.take().is_some() {
                    model.publisher = false;
                } else {
                    real.publisher = Some(real.ring.producer().map_err(|e| ctx(e.to_string()))?);
                    model.attach_publisher();
                }
            }
        }
        // The state both can be asked about.
        if real.ring.ejections() != model.ejections {
            return Err(ctx(format!(
                "ejections {} != model {}",
                real.ring.ejections(),
                model.ejections
            )));
        }
        if real.ring.published() != model.data.len() as u64 {
            return Err(ctx(format!(
                "published {} != model {}",
                real.ring.published(),
                model.data.len()
            )));
        }
        for (slot, (c, s)) in real.subs.iter().zip(&model.subs).enumerate() {
            let (Some(c), Some(s)) = (c, s) else {
                continue;
            };
            if c.sequence() != s.seq
                || c.is_tethered() != (s.mode != Mode::Untethered)
                || c.is_confirmed() != (s.mode == Mode::Confirmed)
            {
                return Err(ctx(format!(
                    "subscriber {slot}: sequence {} tethered {} confirmed {}; model {s:?}",
                    c.sequence(),
                    c.is_tethered(),
                    c.is_confirmed()
                )));
            }
        }
        let mut roster: Vec<(u64, bool)> = real
            .ring
            .subscribers()
            .iter()
            .map(|i| (i.position, i.tethered))
            .collect();
        let mut want: Vec<(u64, bool)> = model
            .subs
            .iter()
            .flatten()
            .map(|s| (s.cursor, s.gates()))
            .collect();
        roster.sort_unstable();
        want.sort_unstable();
        if roster != want {
            return Err(ctx(format!("roster {roster:?}, model {want:?}")));
        }
    }
    seen.ejections = model.ejections;
    seen.padding = model.recs.values().filter(|r| r.seq.is_none()).count() as u64;
    seen.confirmed = model
        .subs
        .iter()
        .flatten()
        .filter(|s| s.mode == Mode::Confirmed)
        .count() as u64;
    Ok(seen)
}

proptest! {
    // `SHMBUS_MODEL_CASES` runs more (a longer hunt).
    #![proptest_config(ProptestConfig {
        cases: std::env::var("SHMBUS_MODEL_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(384),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_broadcast_ring_matches_the_model(
        max in prop_oneof![Just(64u64), Just(300), Just(1024), Just(CAP / 2 - 16), 28..CAP / 2 - 16],
        history in prop_oneof![Just(1u32), Just(2), Just(16), Just(64)],
        checksum in prop::bool::weighted(0.25),
        ops in prop::collection::vec(op(), 1..400),
    ) {
        run(max, history, checksum, &ops).map_err(TestCaseError::fail)?;
    }
}

/// A long fixed-seed run with mostly pushes and pops: many laps, every subscriber kind.
#[test]
fn a_long_run_matches_the_model() {
    let mut rng = shmbus_testkit::rng::Rng::new(0x5eed_b0ad);
    let mut ops = Vec::new();
    for slot in 0..SLOTS {
        ops.push(Op::Join(slot, slot % 2 == 0, StartAt::Oldest));
    }
    for _ in 0..20_000 {
        let r = rng.below(100);
        ops.push(match r {
            0..=44 => Op::Push(rng.below(1 << 16) as u16),
            45..=94 => Op::Pop(rng.below(SLOTS as u64) as usize, PopHow::Pop),
            95..=96 => Op::Reserve(rng.below(1 << 16) as u16, rng.below(2) == 0),
            97 => match rng.below(8) {
                0 => Op::Policy(rng.below(2) == 0),
                _ => Op::Leave(rng.below(SLOTS as u64) as usize),
            },
            _ => {
                let slot = rng.below(SLOTS as u64) as usize;
                Op::Join(
                    slot,
                    rng.below(2) == 0,
                    StartAt::History(rng.below(8) as u32),
                )
            }
        });
    }
    for checksum in [false, true] {
        let seen = run(300, 16, checksum, &ops).unwrap();
        eprintln!("checksum {checksum}: {seen:?}");
        assert!(
            seen.full > 100
                && seen.padding > 100
                && seen.lagged > 10
                && seen.delivered > 3000
                && seen.ejected > 0,
            "{seen:?}"
        );
    }
}
