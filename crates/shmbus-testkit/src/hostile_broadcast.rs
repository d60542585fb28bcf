//! A hostile peer writing into a live broadcast ring (the `hostile_peer` target's broadcast
//! half): a broadcast ring in a memfd segment and a second mapping of it, honest operations of
//! a publisher and up to four subscribers (tethered or not, any start, joining, leaving,
//! retethering, an untethering publisher) interleaved with arbitrary writes through the second
//! mapping to record header words, the publisher's tail, intent, history count and index,
//! the roster generation and tethered bits, the cursor lines, the endpoint table and the
//! header.
//!
//! Every call must return one of the errors it documents (`Lagged`, `Ejected`, `Corrupt`,
//! `Empty`, `Full`, and the like): never a panic, a hang of a timed call, or a payload longer
//! than the limit. A header poisoned beyond doubt at the only subscriber's position in an
//! otherwise clean ring must be reported (`Corrupt`; `Lagged`/`Ejected` where those come
//! first).

use crate::fuzz_len;
use crate::honest::{TIMED, TIMED_SLACK};
use crate::hostile::{raw_view, HostileCase};
use shmbus_ring::broadcast::{aux, BroadcastConfig, BroadcastRing, SlowSubscribers, StartAt};
use shmbus_ring::layout::{DATA_OFFSET, PRODUCER_BLOCK, ROSTER};
use shmbus_ring::{
    Broadcast, Consumer, PopError, Producer, PushError, Segment, SegmentOptions, Subscription,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Whether writes to the words of [`KNOWN_PANICS`] keep below 2^62, so that a run goes past
/// known panics to find others (the ring crate's `broadcast_attacks` tests reproduce each).
/// `false`: the overflows on these words are fixed, so scribbles reach them in full.
pub const AVOID_KNOWN_PANICS: bool = false;

/// Auxiliary words whose values near `u64::MAX` made the ring panic (an overflowing `+ 1`,
/// fixed).
pub const KNOWN_PANICS: &[u64] = &[aux::GEN, aux::HIST_HEAD];

/// How many subscribers a case drives.
pub const SUBSCRIBERS: usize = 4;

/// Which shared word a hostile write hits.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Target {
    /// The publisher's published `tail`.
    Tail,
    /// The publisher's line: intent, history count, seen generation, gate, ejections (`n % 5`).
    Publisher(u8),
    /// The roster generation.
    Gen,
    /// The roster's tethered bits.
    Tethered,
    /// Word `field % 4` (position, flags, joined generation, lapped) of cursor line `line % 8`.
    Cursor(u8, u8),
    /// History index entry `n` (modulo its length).
    History(u16),
    /// The data word at `(n * 8) % capacity`.
    DataWord(u16),
    /// The data word at the position of cursor line `line % 8`.
    AtCursor(u8),
    /// The data word at the published tail.
    AtTail,
    /// Word `n` from the roster on (attached bitmaps, endpoint entries).
    Endpoint(u8),
    /// The segment header's word `n % 32`.
    Header(u8),
}

/// What value a hostile write stores.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Value {
    /// Any 64 bits.
    Raw(u64),
    /// The current value plus a small signed delta.
    Nudge(i8),
    /// A record header word of the published tail's lap (plus `lap` laps): `len`, kind
    /// `kind % 4`.
    Plausible(u16, u8, i8),
}

/// An honest operation.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Honest {
    /// `try_push` of a length selector.
    Push(u16),
    /// `try_push_batch` of `n % 6` messages.
    PushMany(u8, u16),
    /// `reserve`, then commit (true) or abandon.
    Reserve(u16, bool),
    /// `push_timeout` with a short timeout.
    TimedPush(u16),
    /// The publisher's policy: block (false) or untether at once.
    Policy(bool),
    /// Drop the publisher and attach a successor.
    ReattachPublisher,
    /// Subscriber `n % 4`: `try_pop`.
    Pop(u8),
    /// `try_pop_vec`.
    PopVec(u8),
    /// `try_pop_batch` of up to `m % 8`.
    PopMany(u8, u8),
    /// `read` in place.
    Read(u8),
    /// `pop_timeout` with a short timeout.
    TimedPop(u8),
    /// Join in slot `n % 4` (if free): tethered or not, a start selector.
    Join(u8, bool, u8),
    /// Leave slot `n % 4`.
    Leave(u8),
    /// `retether` slot `n % 4`.
    Retether(u8),
}

/// One step of a broadcast hostile case.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Step {
    /// The honest side does something.
    Honest(Honest),
    /// The hostile peer writes a word.
    Write(Target, Value),
    /// The hostile peer writes a header word of the right lap but an unknown kind (or a length
    /// beyond the limit) at the position of the only subscriber, which must then report it.
    Poison(u8),
}

/// A broadcast case for `hostile_peer`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct BroadcastCase {
    /// Capacity selector (4, 8 or 16 KiB).
    pub geometry: u8,
    /// Record limit selector.
    pub limit: u16,
    /// History length selector (1 to 64).
    pub history: u8,
    /// The steps.
    pub steps: Vec<Step>,
}

/// A case of the `hostile_peer` target: an SPSC or MPMC ring, or a broadcast ring.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum PeerCase {
    /// [`crate::hostile::run_hostile`].
    Ring(HostileCase),
    /// [`run_hostile_broadcast`].
    Broadcast(BroadcastCase),
}

/// Runs a case of either kind.
pub fn run_peer(case: &PeerCase) -> Result<(), String> {
    match case {
        PeerCase::Ring(c) => crate::hostile::run_hostile(c),
        PeerCase::Broadcast(c) => run_hostile_broadcast(c),
    }
}

fn word(raw: &Segment, off: u64) -> Result<&AtomicU64, String> {
    raw.atomic_u64(off as usize)
        .ok_or_else(|| format!("raw mapping refuses word at {off}"))
}

struct Geo {
    cap: u64,
    shift: u32,
    max: u64,
    history: u64,
}

impl Geo {
    fn aux(&self, field: u64) -> u64 {
        DATA_OFFSET + self.cap + field
    }

    fn cursor(&self, line: u8, field: u8) -> u64 {
        self.aux(aux::CURSORS + u64::from(line % 8) * aux::CURSOR_SIZE + 8 * u64::from(field % 4))
    }

    fn at(&self, pos: u64) -> u64 {
        DATA_OFFSET + (pos & (self.cap - 1) & !7)
    }

    fn header(&self, len: u64, kind: u64, pos: u64) -> u64 {
        (len & 0xFFFF_FFFF) | ((kind & 0xFF) << 32) | (((pos >> self.shift) & 0xFF_FFFF) << 40)
    }

    fn offset(&self, raw: &Segment, t: Target) -> Result<u64, String> {
        let tail = || word(raw, PRODUCER_BLOCK).map(|w| w.load(Ordering::Relaxed));
        Ok(match t {
            Target::Tail => PRODUCER_BLOCK,
            Target::Publisher(n) => self.aux(8 * u64::from(n % 5)),
            Target::Gen => self.aux(aux::GEN),
            Target::Tethered => self.aux(aux::TETHERED),
            Target::Cursor(line, field) => self.cursor(line, field),
            Target::History(n) => self.aux(aux::HISTORY + 8 * (u64::from(n) % (2 * self.history))),
            Target::DataWord(n) => self.at(u64::from(n) * 8),
            Target::AtCursor(line) => {
                self.at(word(raw, self.cursor(line, 0))?.load(Ordering::Relaxed))
            }
            Target::AtTail => self.at(tail()?),
            Target::Endpoint(n) => ROSTER + 8 * u64::from(n),
            Target::Header(n) => 8 * u64::from(n % 32),
        })
    }

    fn value(&self, raw: &Segment, off: u64, v: Value) -> Result<u64, String> {
        Ok(match v {
            Value::Raw(x) => x,
            Value::Nudge(d) => word(raw, off)?
                .load(Ordering::Relaxed)
                .wrapping_add(d as i64 as u64),
            Value::Plausible(len, kind, laps) => {
                let tail = word(raw, PRODUCER_BLOCK)?.load(Ordering::Relaxed);
                let pos = tail.wrapping_add((laps as i64 as u64).wrapping_mul(self.cap));
                self.header(u64::from(len), u64::from(kind % 4), pos)
            }
        })
    }
}

fn timed<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let t = Instant::now();
    let r = f();
    let took = t.elapsed();
    ensure!(
        took <= TIMED + TIMED_SLACK,
        "a {TIMED:?} timed call took {took:?}"
    );
    Ok(r)
}

fn start(sel: u8) -> StartAt {
    match sel % 4 {
        0 => StartAt::Next,
        1 => StartAt::Latest,
        2 => StartAt::History(u32::from(sel / 4)),
        _ => StartAt::Oldest,
    }
}

fn push_ok(r: &Result<(), PushError>, len: usize, max: usize) -> Result<(), String> {
    match r {
        Ok(()) if len <= max => Ok(()),
        Ok(()) => Err(format!("pushed {len} bytes, limit {max}")),
        Err(PushError::TooLarge { .. }) if len > max => Ok(()),
        Err(PushError::TooLarge { .. }) => Err(format!("{len} bytes too large, limit {max}")),
        Err(
            PushError::Full | PushError::Corrupt(_) | PushError::Disconnected | PushError::Timeout,
        ) => Ok(()),
        Err(e) => Err(format!("push: {e:?}")),
    }
}

fn pop_ok(r: &Result<usize, PopError>, max: usize) -> Result<(), String> {
    match r {
        Ok(n) if *n <= max => Ok(()),
        Ok(n) => Err(format!("popped {n} bytes, limit {max}")),
        Err(
            PopError::Empty
            | PopError::Lagged { .. }
            | PopError::Ejected
            | PopError::Corrupt(_)
            | PopError::Disconnected
            | PopError::Timeout,
        ) => Ok(()),
        Err(e) => Err(format!("pop: {e:?}")),
    }
}

struct Ends {
    tx: Option<Producer<Broadcast>>,
    subs: [Option<Consumer<Broadcast>>; SUBSCRIBERS],
    max: usize,
    seq: u8,
}

impl Ends {
    fn payload(&mut self, len: usize) -> Vec<u8> {
        self.seq = self.seq.wrapping_add(1);
        vec![self.seq; len]
    }

    fn apply(&mut self, ring: &BroadcastRing, op: Honest) -> Result<(), String> {
        let max = self.max;
        let slot = |n: u8| usize::from(n) % SUBSCRIBERS;
        match op {
            Honest::Push(raw) => {
                let data = self.payload(fuzz_len(raw, max));
                if let Some(tx) = self.tx.as_mut() {
                    push_ok(&tx.try_push(&data), data.len(), max)?;
                }
            }
            Honest::PushMany(n, raw) => {
                let batch: Vec<Vec<u8>> = (0..n % 6)
                    .map(|_| self.payload(fuzz_len(raw, max)))
                    .collect();
                if let Some(tx) = self.tx.as_mut() {
                    match tx.try_push_batch(&batch) {
                        Ok(k) => ensure!(k <= batch.len(), "batch pushed {k} of {}", batch.len()),
                        Err(e) => {
                            let len = batch.first().map_or(0, Vec::len);
                            push_ok(&Err(e), len, max)?;
                        }
                    }
                }
            }
            Honest::Reserve(raw, commit) => {
                let len = fuzz_len(raw, max);
                if let Some(tx) = self.tx.as_mut() {
                    match tx.reserve(len) {
                        Ok(mut w) => {
                            ensure!(len <= max, "reserved {len}, limit {max}");
                            w.fill(0xA5);
                            if commit {
                                w.commit();
                            }
                        }
                        Err(e) => push_ok(&Err(e), len, max)?,
                    }
                }
            }
            Honest::TimedPush(raw) => {
                let data = self.payload(fuzz_len(raw, max));
                if let Some(tx) = self.tx.as_mut() {
                    let r = timed(|| tx.push_timeout(&data, TIMED))?;
                    push_ok(&r, data.len(), max)?;
                }
            }
            Honest::Policy(untether) => {
                if let Some(tx) = self.tx.as_mut() {
                    tx.set_slow_subscribers(if untether {
                        SlowSubscribers::Untether {
                            after: Duration::ZERO,
                        }
                    } else {
                        SlowSubscribers::Block
                    });
                }
            }
            Honest::ReattachPublisher => {
                self.tx = None;
                self.tx = ring.producer().ok();
            }
            Honest::Pop(n) => {
                if let Some(c) = self.subs[slot(n)].as_mut() {
                    let mut buf = vec![0u8; max];
                    pop_ok(&c.try_pop(&mut buf), max)?;
                }
            }
            Honest::PopVec(n) => {
                if let Some(c) = self.subs[slot(n)].as_mut() {
                    let mut v = Vec::new();
                    let r = c.try_pop_vec(&mut v);
                    if let Ok(k) = r {
                        ensure!(k == v.len(), "try_pop_vec said {k}, vec has {}", v.len());
                    }
                    pop_ok(&r, max)?;
                }
            }
            Honest::PopMany(n, m) => {
                if let Some(c) = self.subs[slot(n)].as_mut() {
                    let mut longest = 0;
                    let r = c.try_pop_batch(usize::from(m % 8), |b| longest = longest.max(b.len()));
                    ensure!(
                        longest <= max,
                        "batch handed out {longest} bytes, limit {max}"
                    );
                    pop_ok(&r.map(|_| 0), max)?;
                }
            }
            Honest::Read(n) => {
                if let Some(c) = self.subs[slot(n)].as_mut() {
                    match c.read() {
                        Ok(Some(g)) => ensure!(g.len() <= max, "read {} bytes", g.len()),
                        Ok(None) => {}
                        Err(e) => pop_ok(&Err(e), max)?,
                    }
                }
            }
            Honest::TimedPop(n) => {
                if let Some(c) = self.subs[slot(n)].as_mut() {
                    let mut buf = vec![0u8; max];
                    let r = timed(|| c.pop_timeout(&mut buf, TIMED))?;
                    pop_ok(&r, max)?;
                }
            }
            Honest::Join(n, tethered, sel) => {
                if self.subs[slot(n)].is_none() {
                    let how = if tethered {
                        Subscription::tethered()
                    } else {
                        Subscription::untethered()
                    };
                    self.subs[slot(n)] = ring.subscriber(&how.start_at(start(sel))).ok();
                }
            }
            Honest::Leave(n) => self.subs[slot(n)] = None,
            Honest::Retether(n) => {
                if let Some(c) = self.subs[slot(n)].as_mut() {
                    let _ = c.retether();
                }
            }
        }
        Ok(())
    }
}

/// Runs a broadcast hostile case: no panic, no overlong payload, no overstaying timed call,
/// and a poisoned header at the only subscriber's position is reported.
pub fn run_hostile_broadcast(case: &BroadcastCase) -> Result<(), String> {
    let cap = 4096u64 << (case.geometry % 3);
    let max = 1 + u64::from(case.limit) % (cap / 2 - 16);
    let history = 1u32 << (case.history % 7);
    let cfg = BroadcastConfig::new(cap).max_record(max).history(history);
    let seg = Segment::memfd(
        "shmbus-fuzz-bcast",
        cfg.segment_len(),
        &SegmentOptions::default(),
    )
    .map_err(|e| format!("memfd: {e}"))?;
    let raw = raw_view(&seg)?;
    let ring = BroadcastRing::create_in(seg, &cfg).map_err(|e| format!("create_in: {e}"))?;
    let geo = Geo {
        cap,
        shift: cap.trailing_zeros(),
        max,
        history: u64::from(history),
    };
    let mut ends = Ends {
        tx: ring.producer().ok(),
        subs: Default::default(),
        max: ring.max_message(),
        seq: 0,
    };
    ensure!(
        ends.tx.is_some(),
        "attach a publisher to a clean ring failed"
    );
    let mut dirty = false;
    for (i, step) in case.steps.iter().enumerate() {
        match *step {
            Step::Honest(op) => ends
                .apply(&ring, op)
                .map_err(|e| format!("step {i}: {e}"))?,
            Step::Write(t, v) => {
                let off = geo.offset(&raw, t)?;
                let mut x = geo.value(&raw, off, v)?;
                if AVOID_KNOWN_PANICS && KNOWN_PANICS.iter().any(|&f| off == geo.aux(f)) {
                    x &= (1 << 62) - 1;
                }
                word(&raw, off)?.store(x, Ordering::Release);
                dirty = true;
            }
            Step::Poison(extra) => {
                if dirty {
                    continue;
                }
                let attached: Vec<usize> = (0..SUBSCRIBERS)
                    .filter(|&s| ends.subs[s].is_some())
                    .collect();
                let info = ring.subscribers();
                let ([slot], [sub]) = (&attached[..], &info[..]) else {
                    continue;
                };
                let pos = sub.position;
                // Only over the header of the data record it reads next (a cursor before a
                // padding record it has already passed is not where it reads).
                let there = word(&raw, geo.at(pos))?.load(Ordering::Acquire);
                if there & !0xFFFF_FFFF != geo.header(0, 1, pos) {
                    continue;
                }
                let bad = if extra % 2 == 0 {
                    geo.header(1, 3 + u64::from(extra / 2) % 253, pos)
                } else {
                    geo.header(geo.max + 1 + u64::from(extra / 2), 1, pos)
                };
                word(&raw, geo.at(pos))?.store(bad, Ordering::Release);
                dirty = true;
                let c = ends.subs[*slot].as_mut().unwrap();
                let r = c.try_pop_vec(&mut Vec::new());
                ensure!(
                    matches!(
                        r,
                        Err(PopError::Corrupt(_) | PopError::Lagged { .. } | PopError::Ejected)
                    ),
                    "step {i}: poisoned word {bad:#x} at position {pos}: {r:?}"
                );
            }
        }
    }
    Ok(())
}
