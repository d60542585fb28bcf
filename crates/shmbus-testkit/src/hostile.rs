//! A hostile peer writing into a live ring (the `hostile_peer` target): a ring in a memfd
//! segment and a second mapping of the same memory (another process's view), honest
//! operations interleaved with arbitrary writes through that mapping to the positions, record
//! headers, slot words, the endpoint table, the owner words and the header. The honest side
//! must never panic, never hand out more than the limit, and must report garbage it is known
//! to meet (a poisoned header in an otherwise clean ring) as `Corrupt`.

use crate::honest::{Ends, Honest, HonestKind};
use shmbus_ring::frame::{decode, encode, HEADER_SIZE, KIND_DATA, KIND_SKIP, MAX_SKIP_LEN};
use shmbus_ring::layout::{CONSUMER_BLOCK, DATA_OFFSET, PRODUCER_BLOCK, ROSTER};
use shmbus_ring::{
    Backing, MpmcConfig, MpmcRing, PopError, Ring, Segment, SegmentOptions, SpscConfig, SpscRing,
};
use std::sync::atomic::{AtomicU64, Ordering};

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
    /// Geometry selector: the ring's size (`% 5`); on MPMC, from 128 on, slots of 768 bytes
    /// and more, which are aligned.
    pub geometry: u8,
    /// Limit selector.
    pub limit: u8,
    /// The steps.
    pub steps: Vec<Step>,
}

fn word(raw: &Segment, off: u64) -> Result<&AtomicU64, String> {
    raw.atomic_u64(off as usize)
        .ok_or_else(|| format!("raw mapping refuses word at {off}"))
}

/// A second, raw mapping of the shared memory `seg` maps (a hostile process's view), so writes
/// go through another mapping exactly as another process's would: a named shm object opened
/// again by name, a memfd or file through a duplicate of its fd. Its words are open to
/// `Segment::atomic_u64` even where `seg` holds a ring. Anonymous and heap segments have no
/// second view.
pub fn raw_view(seg: &Segment) -> Result<Segment, String> {
    let opts = SegmentOptions::default();
    if let Backing::Shm(name) = seg.backing() {
        return Segment::open(name, &opts).map_err(|e| format!("open {name}: {e}"));
    }
    let fd = seg
        .fd()
        .ok_or_else(|| format!("{} has no fd", seg.backing().target()))?
        .try_clone_to_owned()
        .map_err(|e| format!("dup: {e}"))?;
    Segment::open_fd(fd, &opts).map_err(|e| format!("{e}"))
}

/// A memfd segment of `len` bytes for a ring, and its [`raw_view`].
fn memfd_pair(len: u64) -> Result<(Segment, Segment), String> {
    let seg = Segment::memfd("shmbus-fuzz", len, &SegmentOptions::default())
        .map_err(|e| format!("memfd: {e}"))?;
    let raw = raw_view(&seg)?;
    Ok((seg, raw))
}

/// Where a ring kind keeps what the hostile writes aim at.
#[derive(Clone, Copy)]
enum Geometry {
    /// `cap` data bytes, records up to `limit`.
    Spsc { cap: u64, limit: u64 },
    /// `slots` slots of `stride` bytes, payloads up to `limit`.
    Mpmc { slots: u64, stride: u64, limit: u64 },
}

impl Geometry {
    fn is_mpmc(self) -> bool {
        matches!(self, Geometry::Mpmc { .. })
    }

    /// SPSC: the data word at byte position `pos`; MPMC: the sequence word of position `pos`'s
    /// slot.
    fn at(self, pos: u64) -> u64 {
        match self {
            Geometry::Spsc { cap, .. } => DATA_OFFSET + (pos & (cap - 1) & !7),
            Geometry::Mpmc { slots, stride, .. } => DATA_OFFSET + (pos & (slots - 1)) * stride,
        }
    }

    /// The offset of the word `target` names.
    fn offset(self, raw: &Segment, target: Target) -> Result<u64, String> {
        Ok(match target {
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
            Target::DataWord(n) | Target::SlotLen(n) if !self.is_mpmc() => {
                self.at(u64::from(n) * 8)
            }
            Target::DataWord(n) => self.at(u64::from(n)),
            Target::SlotLen(n) => self.at(u64::from(n)) + 8,
            Target::AtHead => self.at(word(raw, CONSUMER_BLOCK)?.load(Ordering::Relaxed)),
            Target::AtTail => self.at(word(raw, PRODUCER_BLOCK)?.load(Ordering::Relaxed)),
            // The roster, then the first 31 endpoint entries, word by word.
            Target::Endpoint(n) => ROSTER + 8 * u64::from(n),
            Target::Header(n) => 8 * u64::from(n % 32),
        })
    }

    /// The value `v` stands for at `off`.
    fn value(self, raw: &Segment, off: u64, v: Value) -> Result<u64, String> {
        Ok(match v {
            Value::Raw(x) => x,
            Value::Nudge(d) => word(raw, off)?
                .load(Ordering::Relaxed)
                .wrapping_add(d as i64 as u64),
            Value::Plausible(len, kind) if !self.is_mpmc() => {
                encode(u32::from(len), u32::from(kind % 4))
            }
            Value::Plausible(seq, tag) => (u64::from(seq) << 8) | u64::from(tag % 4),
        })
    }

    /// Writes a word that is invalid beyond doubt where the consumer takes its next message.
    /// Returns what it wrote and where (the consumer's position), or `None` when there is
    /// nothing to poison (MPMC: the slot at the head hint holds no committed message).
    fn poison(self, raw: &Segment, extra: u8) -> Result<Option<(u64, u64)>, String> {
        let mut head = word(raw, CONSUMER_BLOCK)?.load(Ordering::Relaxed);
        let mut at = self.at(head);
        match self {
            Geometry::Spsc { limit, .. } => {
                // A valid skip record at the published head: the consumer may already have
                // read past it (a peek such as `is_empty` does, and publishes `head` only with
                // the record it commits), so poison that record instead, which the consumer
                // reads next either way (found by the `hostile_peer` fuzz target).
                // Relaxed, as the head above: the driver runs between honest operations, on
                // the thread that made them.
                let (len, kind) = decode(word(raw, at)?.load(Ordering::Relaxed));
                if kind == KIND_SKIP && len % 8 == 0 && u64::from(len) <= MAX_SKIP_LEN {
                    head += HEADER_SIZE + u64::from(len);
                    at = self.at(head);
                }
                // A kind of 3..=255 with a length of 1 (unknown, or a skip record of a
                // length no skip has), or a data record longer than the limit.
                let bad = if extra % 2 == 0 {
                    encode(1, 3 + u32::from(extra / 2))
                } else {
                    encode(limit as u32 + 1 + u32::from(extra / 2), KIND_DATA)
                };
                word(raw, at)?.store(bad, Ordering::Release);
                Ok(Some((bad, head)))
            }
            Geometry::Mpmc { limit, .. } => {
                // The next message the consumer takes is the slot at the head hint; if it is
                // committed, give it a length beyond the slot size.
                let seq_word = word(raw, at)?.load(Ordering::Acquire);
                if head < (1 << 55) && seq_word == (head + 1) << 8 {
                    let bad = limit + 1 + u64::from(extra);
                    // `len` is the low half of the word at +8 (the high half is reserved).
                    word(raw, at + 8)?.store(bad, Ordering::Release);
                    Ok(Some((bad, head)))
                } else {
                    Ok(None)
                }
            }
        }
    }
}

/// Runs a hostile case. The honest side must not panic, must never hand out more than the
/// limit, and must report `Corrupt` on a poisoned header while the ring was otherwise clean.
pub fn run_hostile(case: &HostileCase) -> Result<(), String> {
    if case.mpmc {
        let slots = 2u64 << (case.geometry % 5);
        // From geometry 128 on, slots of 768 bytes and more: aligned (layout 1.7).
        let limit = u64::from(case.limit) % 128 + if case.geometry >= 128 { 768 } else { 1 };
        let cfg = MpmcConfig::new(slots, limit);
        let (seg, raw) = memfd_pair(cfg.segment_len())?;
        let ring = MpmcRing::create_in(seg, &cfg).map_err(|e| format!("create_in: {e}"))?;
        let stride = cfg.stride();
        drive(
            &ring,
            &raw,
            Geometry::Mpmc {
                slots,
                stride,
                limit,
            },
            &case.steps,
        )
    } else {
        let cap = 64u64 << (case.geometry % 5);
        let limit = 1 + u64::from(case.limit) % (cap - 16);
        let cfg = SpscConfig::new(cap).max_record(limit);
        let (seg, raw) = memfd_pair(cfg.segment_len())?;
        let ring = SpscRing::create_in(seg, &cfg).map_err(|e| format!("create_in: {e}"))?;
        drive(&ring, &raw, Geometry::Spsc { cap, limit }, &case.steps)
    }
}

/// The steps of a hostile case on `ring`, written into through `raw`.
fn drive<K: HonestKind>(
    ring: &Ring<K>,
    raw: &Segment,
    geometry: Geometry,
    steps: &[Step],
) -> Result<(), String> {
    let mut ends = Ends::attach(ring);
    ensure!(ends.both_attached(), "attach to a clean ring failed");
    // Set by the first hostile write: from then on, the ring may hold anything.
    let mut dirty = false;
    for (i, step) in steps.iter().enumerate() {
        match *step {
            Step::Honest(ref op) => ends.apply(ring, op)?,
            Step::Write(target, v) => {
                let off = geometry.offset(raw, target)?;
                let x = geometry.value(raw, off, v)?;
                word(raw, off)?.store(x, Ordering::Release);
                dirty = true;
            }
            Step::Poison(extra) => {
                let Some((bad, head)) = geometry.poison(raw, extra)? else {
                    continue;
                };
                // Only meaningful while no earlier write could have moved the consumer's
                // notion of where it is, and while a consumer is attached.
                if !dirty {
                    if let Some(rx) = ends.rx.as_mut() {
                        let r = rx.try_pop_vec(&mut Vec::new());
                        ensure!(
                            matches!(r, Err(PopError::Corrupt(_))),
                            "step {i}: poisoned word {bad:#x} at position {head}: {r:?}"
                        );
                        if !geometry.is_mpmc() {
                            // The error is stable: nothing was consumed.
                            let r = rx.try_pop_vec(&mut Vec::new());
                            ensure!(
                                matches!(r, Err(PopError::Corrupt(_))),
                                "step {i}: second pop after poison: {r:?}"
                            );
                        }
                    }
                }
                dirty = true;
            }
        }
    }
    Ok(())
}
