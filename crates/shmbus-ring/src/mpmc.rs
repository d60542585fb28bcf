//! The MPMC slot ring: any number of producers and consumers, in any processes, on one ring of
//! fixed-size slots.
//!
//! # Protocol
//!
//! The ring is Vyukov's bounded queue (as crossbeam's `ArrayQueue`) with one change that makes
//! ownership visible: a position is claimed by a compare-and-swap on **the slot's own sequence
//! word**, which then names the claiming endpoint, rather than by a CAS on a shared `tail`.
//!
//! Each slot starts with a 64-bit word `seq << 8 | tag`. For position `p` (slot `p & (cap-1)`):
//!
//! | word | meaning |
//! |---|---|
//! | `(p, 0)` | free: a producer may claim position `p` |
//! | `(p, k)` | endpoint `k` is writing position `p` |
//! | `(p + 1, 0)` | committed: a consumer may claim it |
//! | `(p + 1, k)` | endpoint `k` is reading position `p` |
//! | `(p + cap, 0)` | consumed (or abandoned): free for position `p + cap`, the next lap |
//!
//! `tail` and `head` in the control blocks are only *hints* (the highest position claimed,
//! plus one), advanced with `fetch_max`. A producer starts at the tail hint and walks forward
//! over positions that are claimed or committed until it claims a free one; it reports `Full`
//! when a slot still holds an earlier lap. A consumer starts at the head hint, walks over
//! positions being read or already consumed, and reports empty at the first position that is
//! not committed. Every claim is by one endpoint, so a slot left claimed by an endpoint that
//! died names its owner: liveness repair can free it without guessing.
//!
//! Orderings: the producer's Release store of `(p + 1, 0)` publishes the payload to the
//! consumer's Acquire load (and CAS) of the word; the consumer's Release store of
//! `(p + cap, 0)` orders its reads before the next lap's producer, whose Acquire load of the
//! word observes it.

use crate::error::{Corruption, Error, PopError, PushError, Result, Role};
use crate::layout::{
    self, Identity, OpenOptions, RingKind, SegmentHeader, CONSUMER_BLOCK, DATA_OFFSET,
    PRODUCER_BLOCK,
};
use crate::liveness::{self, Registration};
use crate::mem::{Memory, RawMem};
use crate::segment::{Segment, SegmentOptions};
use crate::sync::Ordering;
use crate::wait::{wait_for, wake_all, WaitStrategy, WakeWords};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The fewest slots an MPMC ring can have.
pub const MIN_SLOTS: u64 = 2;
/// The most slots an MPMC ring can have.
pub const MAX_SLOTS: u64 = 1 << 32;
/// The largest slot payload, in bytes (16 MiB).
pub const MAX_SLOT_SIZE: u64 = 1 << 24;
/// Bytes before a slot's payload: the sequence word, then `len: u32` and 4 reserved bytes.
pub const SLOT_HEADER: u64 = 16;
/// Slots are laid out at multiples of this stride alignment (a cache line).
pub const SLOT_ALIGN: u64 = 64;

const TAG_BITS: u32 = 8;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;
/// Positions stay below 2^55 so `seq` (56 bits) never wraps and differences fit an `i64`; a
/// hint at or above this is corruption.
const MAX_POSITION: u64 = 1 << 55;

#[inline]
const fn join(seq: u64, tag: u64) -> u64 {
    (seq << TAG_BITS) | tag
}

#[inline]
const fn split(word: u64) -> (u64, u64) {
    (word >> TAG_BITS, word & TAG_MASK)
}

/// The distance between slots for a payload of `slot_size` bytes.
pub const fn slot_stride(slot_size: u64) -> u64 {
    (SLOT_HEADER + slot_size).div_ceil(SLOT_ALIGN) * SLOT_ALIGN
}

/// The geometry and identity of a new MPMC ring.
///
/// ```
/// use shmbus_ring::MpmcConfig;
/// let cfg = MpmcConfig::new(1024, 48); // 1024 slots of up to 48 bytes: one cache line each
/// assert_eq!(cfg.segment_len(), 4096 + 1024 * 64);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpmcConfig {
    slots: u64,
    slot_size: u64,
    identity: Identity,
    notify: bool,
}

impl MpmcConfig {
    /// `slots` slots (a power of two, 2 to 2^32) of up to `slot_size` payload bytes each
    /// (1 B to 16 MiB).
    pub fn new(slots: u64, slot_size: u64) -> Self {
        MpmcConfig {
            slots,
            slot_size,
            identity: Identity::default(),
            notify: true,
        }
    }

    /// Whether endpoints wake sleepers (default `true`); see [`crate::SpscConfig::notify`].
    pub fn notify(mut self, yes: bool) -> Self {
        self.notify = yes;
        self
    }

    /// The type fingerprint and codec id written into the header.
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = identity;
        self
    }

    /// The segment length this ring needs.
    pub fn segment_len(&self) -> u64 {
        DATA_OFFSET.saturating_add(
            self.slots
                .saturating_mul(slot_stride(self.slot_size.min(MAX_SLOT_SIZE))),
        )
    }

    /// Checks the geometry without allocating anything: what `create_in` would refuse.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the value at fault.
    pub fn validate(&self) -> Result<()> {
        self.checked()
    }

    fn checked(&self) -> Result<()> {
        if !self.slots.is_power_of_two() || !(MIN_SLOTS..=MAX_SLOTS).contains(&self.slots) {
            return Err(Error::InvalidConfig(format!(
                "MPMC slot count {} must be a power of two from {MIN_SLOTS} to {MAX_SLOTS}",
                self.slots
            )));
        }
        if !(1..=MAX_SLOT_SIZE).contains(&self.slot_size) {
            return Err(Error::InvalidConfig(format!(
                "MPMC slot size {} must be from 1 to {MAX_SLOT_SIZE}",
                self.slot_size
            )));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The algorithm, over any `Memory`.
// ---------------------------------------------------------------------------------------------

/// Where a ring's words live inside its memory, and its geometry (validated at open).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub(crate) tail_off: usize,
    pub(crate) head_off: usize,
    pub(crate) data_off: usize,
    pub(crate) slots: u64,
    pub(crate) slot_size: u64,
    pub(crate) stride: u64,
    /// Offset of `len` within a slot: 8 (packed with the sequence word) in layout 1.0.
    pub(crate) len_off: usize,
    /// Offset of the payload within a slot: [`SLOT_HEADER`] in layout 1.0.
    pub(crate) payload_off: usize,
    /// The wake words, when the ring notifies sleepers.
    pub(crate) wake: Option<crate::spsc::Wake>,
}

impl Geometry {
    /// The memory offset of the slot holding position `pos`.
    #[inline]
    fn slot(&self, pos: u64) -> usize {
        self.data_off + ((pos & (self.slots - 1)) * self.stride) as usize
    }

    /// How far a producer or consumer walks before it reports full or empty: a whole lap of
    /// busy slots, plus slack for hints that lag.
    #[inline]
    fn walk_limit(&self) -> u64 {
        2 * self.slots + 64
    }
}

/// One endpoint's view of the algorithm; `tag` (1..=255) names it in the slots it claims.
pub(crate) struct Core<M: Memory> {
    mem: M,
    g: Geometry,
    tag: u64,
}

impl<M: Memory> Core<M> {
    /// # Safety
    ///
    /// - `mem` holds the two hint words and `g.slots` slots of `g.stride` bytes at `g.data_off`.
    pub(crate) unsafe fn new(mem: M, g: Geometry, tag: u64) -> Self {
        debug_assert!((1..=TAG_MASK).contains(&tag));
        Core { mem, g, tag }
    }

    /// Writes the initial sequence words: slot `i` is free for position `i`.
    ///
    /// # Safety
    ///
    /// - As for [`Core::new`], and no other endpoint is using the memory yet.
    pub(crate) unsafe fn initialize(mem: &M, g: &Geometry) {
        for i in 0..g.slots {
            // SAFETY: each slot offset is in bounds and 8-aligned (stride is a multiple of 64).
            unsafe { mem.store(g.slot(i), join(i, 0), Ordering::Relaxed) };
        }
    }

    #[inline]
    fn hint(&self, off: usize) -> Result<u64, Corruption> {
        // Relaxed: a hint only says where to start looking; the slot words decide.
        // SAFETY: hint words are in bounds and aligned (constructor contract).
        let v = unsafe { self.mem.load(off, Ordering::Relaxed) };
        if v >= MAX_POSITION {
            return Err(Corruption {
                what: "position hint beyond 2^55",
                position: v,
                value: v,
            });
        }
        Ok(v)
    }

    /// Claims a free position for writing; returns it.
    pub(crate) fn claim_write(&mut self) -> Result<u64, PushError> {
        let mut pos = self.hint(self.g.tail_off)?;
        for _ in 0..self.g.walk_limit() {
            let off = self.g.slot(pos);
            // Acquire: pairs with the consumer's Release store of `(pos, 0)` in `release_read`
            // (or a producer's abandon), so the previous lap's reads finish before we write.
            // SAFETY: `off` is an in-bounds aligned slot word.
            let word = unsafe { self.mem.load(off, Ordering::Acquire) };
            let (seq, tag) = split(word);
            let dif = seq as i64 - pos as i64;
            if dif == 0 && tag == 0 {
                let mine = join(pos, self.tag);
                // Acquire on success: as for the load above. Relaxed on failure: we re-read.
                // SAFETY: as above.
                if unsafe {
                    self.mem
                        .compare_exchange(off, word, mine, Ordering::Acquire, Ordering::Relaxed)
                }
                .is_ok()
                {
                    // Relaxed: the hint orders nothing.
                    // SAFETY: in-bounds aligned hint word.
                    unsafe {
                        self.mem
                            .fetch_max(self.g.tail_off, pos + 1, Ordering::Relaxed)
                    };
                    return Ok(pos);
                }
            } else if dif == 0 || dif == 1 {
                // Being written by another producer, or committed (maybe being read): taken.
                pos += 1;
            } else if dif < 0 {
                // The slot still holds an earlier lap: the ring is full here.
                return Err(PushError::Full);
            } else {
                // This position was passed long ago: we were lapped. Jump to the hint.
                let hint = self.hint(self.g.tail_off)?;
                if hint <= pos {
                    // SAFETY: in-bounds aligned hint word.
                    unsafe {
                        self.mem
                            .fetch_max(self.g.tail_off, pos + 1, Ordering::Relaxed)
                    };
                }
                pos = hint.max(pos + 1);
            }
            if pos >= MAX_POSITION {
                return Err(PushError::Corrupt(Corruption {
                    what: "producer walked beyond 2^55",
                    position: pos,
                    value: word,
                }));
            }
        }
        Err(PushError::Full)
    }

    /// Writes `len` at position `pos` (claimed by us) and commits it.
    #[inline]
    pub(crate) fn commit_write(&mut self, pos: u64, len: usize) {
        let off = self.g.slot(pos);
        // SAFETY: the length field is inside our claimed slot.
        unsafe {
            self.mem
                .write(off + self.g.len_off, &(len as u32).to_le_bytes())
        };
        // Release: publishes the payload and length; pairs with the Acquire load/CAS of the
        // word in `claim_read`.
        // SAFETY: in-bounds aligned slot word, claimed by us.
        unsafe { self.mem.store(off, join(pos + 1, 0), Ordering::Release) };
        if let Some(w) = self.g.wake {
            // SAFETY: wake words are in-bounds aligned control words (constructor contract).
            unsafe { crate::spsc::notify(&self.mem, w.data_seq, w.data_waiters) };
        }
    }

    /// Gives up a claimed (written or read) position: the slot becomes free for the next lap,
    /// and consumers walk past the position.
    #[inline]
    pub(crate) fn release(&mut self, pos: u64) {
        // Release: our reads of the slot (or nothing, for an abandoned write) happen before
        // the next lap's producer writes; pairs with the Acquire load/CAS in `claim_write`.
        // SAFETY: in-bounds aligned slot word, claimed by us.
        unsafe {
            self.mem.store(
                self.g.slot(pos),
                join(pos + self.g.slots, 0),
                Ordering::Release,
            )
        };
        if let Some(w) = self.g.wake {
            // SAFETY: wake words are in-bounds aligned control words (constructor contract).
            unsafe { crate::spsc::notify(&self.mem, w.space_seq, w.space_waiters) };
        }
    }

    /// Claims the next committed position for reading; `Ok(None)` when none is committed.
    pub(crate) fn claim_read(&mut self) -> Result<Option<u64>, Corruption> {
        let mut pos = self.hint(self.g.head_off)?;
        for _ in 0..self.g.walk_limit() {
            let off = self.g.slot(pos);
            // Acquire: pairs with the producer's Release store of `(pos + 1, 0)` in
            // `commit_write`: the payload is visible once the word says committed.
            // SAFETY: `off` is an in-bounds aligned slot word.
            let word = unsafe { self.mem.load(off, Ordering::Acquire) };
            let (seq, tag) = split(word);
            let dif = seq as i64 - (pos + 1) as i64;
            if dif == 0 && tag == 0 {
                let mine = join(pos + 1, self.tag);
                // Acquire on success: as for the load above.
                // SAFETY: as above.
                if unsafe {
                    self.mem
                        .compare_exchange(off, word, mine, Ordering::Acquire, Ordering::Relaxed)
                }
                .is_ok()
                {
                    // Relaxed: the hint orders nothing.
                    // SAFETY: in-bounds aligned hint word.
                    unsafe {
                        self.mem
                            .fetch_max(self.g.head_off, pos + 1, Ordering::Relaxed)
                    };
                    return Ok(Some(pos));
                }
            } else if dif == 0 {
                // Another consumer is reading it.
                pos += 1;
            } else if dif < 0 {
                // Not committed yet (free, or being written): nothing to read in order.
                return Ok(None);
            } else {
                // Consumed (or abandoned) already; if far behind, jump to the hint. If the hint
                // is not past this position (a run of abandoned positions, which no consumer
                // claims), move it: every position up to `pos` is read or abandoned.
                let hint = self.hint(self.g.head_off)?;
                if hint <= pos {
                    // SAFETY: in-bounds aligned hint word.
                    unsafe {
                        self.mem
                            .fetch_max(self.g.head_off, pos + 1, Ordering::Relaxed)
                    };
                }
                pos = hint.max(pos + 1);
            }
            if pos >= MAX_POSITION {
                return Err(Corruption {
                    what: "consumer walked beyond 2^55",
                    position: pos,
                    value: word,
                });
            }
        }
        Ok(None)
    }

    /// Releases every slot claimed by endpoint `dead` (whose process is gone): a position it
    /// was writing is abandoned (consumers walk past it), a position it was reading is freed
    /// for producers (that one message, which the dead consumer had taken, is lost). Slots
    /// name their claimer, so no other endpoint's claim is touched. Idempotent; returns how
    /// many slots were released.
    pub(crate) fn repair_claims(&mut self, dead: u64) -> usize {
        let mask = self.g.slots - 1;
        let mut released = 0;
        for i in 0..self.g.slots {
            let off = self.g.slot(i);
            // Acquire: the dead endpoint's stores to the slot are visible before we free it
            // (pairs with its claiming CAS; its payload writes are never read).
            // SAFETY: `off` is an in-bounds aligned slot word.
            let word = unsafe { self.mem.load(off, Ordering::Acquire) };
            let (seq, tag) = split(word);
            if tag != dead || seq >= MAX_POSITION {
                continue;
            }
            // `(p, k)` in slot p & mask: writing p. `(p + 1, k)` in slot p & mask: reading p.
            let pos = if seq & mask == i {
                seq
            } else if seq > 0 && (seq - 1) & mask == i {
                seq - 1
            } else {
                continue;
            };
            crate::crashpoint::hit("mpmc.repair.slot");
            // Release: pairs with the Acquire load/CAS in `claim_write` of the next lap's
            // producer (as `release`). Relaxed on failure: the slot moved on; not ours to fix.
            // SAFETY: as above.
            if unsafe {
                self.mem.compare_exchange(
                    off,
                    word,
                    join(pos + self.g.slots, 0),
                    Ordering::Release,
                    Ordering::Relaxed,
                )
            }
            .is_ok()
            {
                released += 1;
            }
        }
        released
    }

    /// Whether a committed, unclaimed position waits at or after the head hint (what
    /// `claim_read` would take), without claiming it.
    pub(crate) fn has_committed(&self) -> Result<bool, Corruption> {
        let mut pos = self.hint(self.g.head_off)?;
        for _ in 0..self.g.walk_limit() {
            // Acquire: as in `claim_read`.
            // SAFETY: an in-bounds aligned slot word.
            let word = unsafe { self.mem.load(self.g.slot(pos), Ordering::Acquire) };
            let (seq, tag) = split(word);
            let dif = seq as i64 - (pos + 1) as i64;
            if dif == 0 && tag == 0 {
                return Ok(true);
            } else if dif < 0 {
                return Ok(false);
            }
            pos += 1;
            if pos >= MAX_POSITION {
                break;
            }
        }
        Ok(false)
    }

    /// The validated payload length of a position we claimed for reading. On corruption the
    /// slot is released (the garbage is dropped) and the error returned.
    #[inline]
    pub(crate) fn read_len(&mut self, pos: u64) -> Result<usize, Corruption> {
        let mut len = [0u8; 4];
        // SAFETY: the length field is inside our claimed slot.
        unsafe { self.mem.read(self.g.slot(pos) + self.g.len_off, &mut len) };
        let len = u32::from_le_bytes(len) as u64;
        if len > self.g.slot_size {
            self.release(pos);
            return Err(Corruption {
                what: "slot length exceeds the slot size",
                position: pos,
                value: len,
            });
        }
        Ok(len as usize)
    }

    #[inline]
    fn payload_off(&self, pos: u64) -> usize {
        self.g.slot(pos) + self.g.payload_off
    }

    #[inline]
    fn check_len(&self, len: usize) -> Result<(), PushError> {
        if len as u64 > self.g.slot_size {
            return Err(PushError::TooLarge {
                len,
                max: self.g.slot_size as usize,
            });
        }
        Ok(())
    }

    /// Copies `payload` into a claimed slot and commits it.
    #[inline]
    pub(crate) fn try_push(&mut self, payload: &[u8]) -> Result<(), PushError> {
        self.check_len(payload.len())?;
        let pos = self.claim_write()?;
        crate::crashpoint::hit("mpmc.push.claimed");
        // SAFETY: the payload fits the slot (checked) and the slot is ours.
        unsafe { self.mem.write(self.payload_off(pos), payload) };
        crate::crashpoint::hit("mpmc.push.written");
        self.commit_write(pos, payload.len());
        Ok(())
    }

    /// Pushes records until one does not fit; returns how many were pushed.
    pub(crate) fn push_burst<R: AsRef<[u8]>>(&mut self, records: &[R]) -> Result<usize, PushError> {
        for r in records {
            self.check_len(r.as_ref().len())?;
        }
        let mut n = 0;
        for r in records {
            match self.try_push(r.as_ref()) {
                Ok(()) => n += 1,
                // Whatever stopped the burst, report what was pushed; the next call reports
                // the error itself (so a caller that retries never sends duplicates).
                Err(_) if n > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// Pushes all records or none: claims a position for each first, abandoning the claims
    /// (consumers skip them) if the ring fills before all are claimed.
    pub(crate) fn push_bulk<R: AsRef<[u8]>>(
        &mut self,
        records: &[R],
        claimed: &mut Vec<u64>,
    ) -> Result<(), PushError> {
        if records.len() as u64 > self.g.slots {
            // It could never all fit: not a "try again later".
            return Err(PushError::TooMany {
                count: records.len(),
                max: self.g.slots as usize,
            });
        }
        for r in records {
            self.check_len(r.as_ref().len())?;
        }
        claimed.clear();
        for _ in records {
            match self.claim_write() {
                Ok(pos) => claimed.push(pos),
                Err(e) => {
                    for &pos in claimed.iter() {
                        self.release(pos);
                    }
                    return Err(e);
                }
            }
        }
        crate::crashpoint::hit("mpmc.bulk.claimed");
        for (r, &pos) in records.iter().zip(claimed.iter()) {
            let payload = r.as_ref();
            // SAFETY: fits (checked) and ours.
            unsafe { self.mem.write(self.payload_off(pos), payload) };
            self.commit_write(pos, payload.len());
        }
        Ok(())
    }

    /// Pops one record into a cleared `buf`.
    pub(crate) fn try_pop_vec(&mut self, buf: &mut Vec<u8>) -> Result<usize, PopError> {
        let pos = self.claim_read()?.ok_or(PopError::Empty)?;
        crate::crashpoint::hit("mpmc.pop.claimed");
        let len = self.read_len(pos)?;
        buf.clear();
        buf.resize(len, 0);
        // SAFETY: `len` is within the slot (validated) and the slot is ours.
        unsafe { self.mem.read(self.payload_off(pos), buf) };
        crate::crashpoint::hit("mpmc.pop.read");
        self.release(pos);
        Ok(len)
    }

    /// Pops one record into `buf`, which must hold a whole slot.
    pub(crate) fn try_pop(&mut self, buf: &mut [u8]) -> Result<usize, PopError> {
        if (buf.len() as u64) < self.g.slot_size {
            // Checked before claiming: a claimed position cannot be handed back in order.
            return Err(PopError::BufferTooSmall {
                needed: self.g.slot_size as usize,
                len: buf.len(),
            });
        }
        let pos = self.claim_read()?.ok_or(PopError::Empty)?;
        let len = self.read_len(pos)?;
        // SAFETY: `len` is within the slot (validated) and the slot is ours.
        unsafe { self.mem.read(self.payload_off(pos), &mut buf[..len]) };
        self.release(pos);
        Ok(len)
    }
}

// ---------------------------------------------------------------------------------------------
// Rings in segments, and the endpoint handles.
// ---------------------------------------------------------------------------------------------

struct RingInner {
    seg: Segment,
    header: SegmentHeader,
    g: Geometry,
}

/// `Err(Disconnected)` if every consumer that attached is gone (one load of the roster).
#[inline]
fn check_consumers(mem: &RawMem) -> Result<(), PushError> {
    if liveness::gone(mem, Role::Consumer) {
        Err(PushError::Disconnected)
    } else {
        Ok(())
    }
}

impl RingInner {
    fn mem(&self) -> RawMem {
        let base = NonNull::new(self.seg.as_ptr()).expect("a mapping is never at address 0");
        // SAFETY: the segment is page-aligned and `len()` bytes long; it lives in this `Arc`,
        // which every handle built on this `RawMem` holds.
        unsafe { RawMem::from_raw(base, self.seg.len()) }
    }

    /// The wake words of one direction, if the ring notifies.
    fn wake_words(&self, data: bool) -> Option<WakeWords<'_>> {
        self.g.wake?.words(&self.seg, data)
    }

    /// Wakes every sleeper of both directions (the set of endpoints changed).
    fn wake_everyone(&self) {
        for data in [true, false] {
            if let Some(w) = self.wake_words(data) {
                wake_all(w);
            }
        }
    }

    /// Detaches an endpoint and wakes sleepers so that they re-check for disconnection.
    fn detach(&self, reg: &mut Registration) {
        if !reg.is_own() {
            // A `fork`ed child dropping an inherited endpoint: the parent's stays attached.
            return;
        }
        reg.unregister(&self.seg);
        self.wake_everyone();
    }

    /// Probes the other endpoints, reaping dead ones and releasing the slots they claimed.
    fn probe(&self, reg: &mut Registration, core: &mut Core<RawMem>) {
        let reaped = reg.probe(&self.seg, &mut |tag, _, _| {
            core.repair_claims(tag);
        });
        if reaped > 0 {
            self.wake_everyone();
        }
    }

    /// What a push that found the ring full reports: `Disconnected` if every consumer is gone
    /// (probing for dead endpoints, and repairing their slots, when the interval has passed).
    #[cold]
    fn on_full(&self, reg: &mut Registration, core: &mut Core<RawMem>, slow: bool) -> PushError {
        if reg.probe_due(slow) {
            self.probe(reg, core);
        }
        if liveness::gone(&core.mem, Role::Consumer) {
            PushError::Disconnected
        } else {
            PushError::Full
        }
    }

    /// What a pop that found nothing reports: `Disconnected` if every producer is gone and
    /// nothing committed is left (probing and repairing first when the interval has passed).
    #[cold]
    fn on_empty(&self, reg: &mut Registration, core: &mut Core<RawMem>, slow: bool) -> PopError {
        if reg.probe_due(slow) {
            self.probe(reg, core);
        }
        // `side_gone` is an Acquire load pairing with the last producer's Release detach (or
        // its reaper's): everything it committed is visible to `has_committed`.
        if liveness::gone(&core.mem, Role::Producer) && !matches!(core.has_committed(), Ok(true)) {
            PopError::Disconnected
        } else {
            PopError::Empty
        }
    }
}

/// An MPMC ring laid out in a [`Segment`]: a cheap, cloneable handle from which any number of
/// [`MpmcProducer`]s and [`MpmcConsumer`]s attach (up to 55 at a time), in any processes.
///
/// # Examples
///
/// ```
/// use shmbus_ring::{MpmcConfig, MpmcRing, SegmentOptions};
/// let name = format!("/shmbus-doc-mpmc-{}", std::process::id());
/// let ring = MpmcRing::create_shm(&name, &MpmcConfig::new(64, 32), &SegmentOptions::default())?;
/// let (mut a, mut b) = (ring.producer()?, ring.producer()?);
/// a.try_push(b"from a")?;
/// b.try_push(b"from b")?;
/// // Any process: MpmcRing::open_shm(&name, &SegmentOptions::default())?.consumer()?
/// let mut rx = ring.consumer()?;
/// let mut buf = Vec::new();
/// rx.try_pop_vec(&mut buf)?;
/// assert_eq!(buf, b"from a");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct MpmcRing {
    inner: Arc<RingInner>,
}

impl std::fmt::Debug for MpmcRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpmcRing")
            .field("segment", &self.inner.seg)
            .field("slots", &self.inner.g.slots)
            .field("slot_size", &self.inner.g.slot_size)
            .finish()
    }
}

fn geometry(slots: u64, slot_size: u64, notify: bool) -> Geometry {
    Geometry {
        wake: notify.then(crate::spsc::Wake::for_segment),
        tail_off: PRODUCER_BLOCK as usize,
        head_off: CONSUMER_BLOCK as usize,
        data_off: DATA_OFFSET as usize,
        slots,
        slot_size,
        stride: slot_stride(slot_size),
        len_off: 8,
        payload_off: SLOT_HEADER as usize,
    }
}

impl MpmcRing {
    /// Creates the named shm object `name`, sized for `config`, and builds the ring in it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a bad geometry; segment errors as for [`Segment::create`].
    pub fn create_shm(name: &str, config: &MpmcConfig, opts: &SegmentOptions) -> Result<MpmcRing> {
        config.checked()?;
        MpmcRing::create_in(Segment::create(name, config.segment_len(), opts)?, config)
    }

    /// Opens the ring in the named shm object `name` (waiting up to 1 s for its creator).
    ///
    /// # Errors
    ///
    /// As for [`Segment::open`] and [`MpmcRing::open_in`].
    pub fn open_shm(name: &str, opts: &SegmentOptions) -> Result<MpmcRing> {
        MpmcRing::open_in(Segment::open(name, opts)?, &OpenOptions::default())
    }

    /// A ring in process-private heap memory (same layout and code as a shared one).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a bad geometry.
    pub fn in_heap(config: &MpmcConfig) -> Result<MpmcRing> {
        config.checked()?;
        MpmcRing::create_in(Segment::heap(config.segment_len())?, config)
    }

    /// Builds a ring in a segment this process just created: every slot's sequence word, then
    /// the header, `READY` last.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`], [`Error::NotCreator`].
    pub fn create_in(seg: Segment, config: &MpmcConfig) -> Result<MpmcRing> {
        config.checked()?;
        if (seg.len() as u64) < config.segment_len() {
            return Err(Error::InvalidConfig(format!(
                "{}: segment of {} bytes is smaller than the {} bytes the ring needs",
                seg.target(),
                seg.len(),
                config.segment_len()
            )));
        }
        if !seg.is_creator() {
            return Err(Error::NotCreator {
                target: seg.target(),
            });
        }
        let g = geometry(config.slots, config.slot_size, config.notify);
        let inner = RingInner {
            header: layout::new_header(
                RingKind::Mpmc,
                seg.len() as u64,
                config.slots,
                config.slot_size,
                config.slots * g.stride,
                config.identity,
                if config.notify {
                    layout::RING_FLAG_NOTIFY
                } else {
                    0
                },
            ),
            seg,
            g,
        };
        // SAFETY: the geometry fits the segment (checked above) and nobody else can use the
        // ring before the header is published.
        unsafe { Core::initialize(&inner.mem(), &g) };
        layout::publish(&inner.seg, inner.header)?;
        Ok(MpmcRing {
            inner: Arc::new(inner),
        })
    }

    /// Opens the ring in `seg`, validating the header (as [`crate::SpscRing::open_in`]) and the
    /// MPMC geometry: slot count, slot size, and data length against the object's size.
    ///
    /// # Errors
    ///
    /// One variant per failed check, as for [`crate::SpscRing::open_in`].
    pub fn open_in(seg: Segment, opts: &OpenOptions) -> Result<MpmcRing> {
        let h = layout::open_header(&seg, RingKind::Mpmc, opts)?;
        let target = seg.target();
        let bad = |field, value, reason: String| Error::BadField {
            target: target.clone(),
            field,
            value,
            reason,
        };
        if !h.capacity.is_power_of_two() || !(MIN_SLOTS..=MAX_SLOTS).contains(&h.capacity) {
            return Err(bad(
                "capacity",
                h.capacity,
                format!("an MPMC slot count is a power of two from {MIN_SLOTS} to {MAX_SLOTS}"),
            ));
        }
        if !(1..=MAX_SLOT_SIZE).contains(&h.record_limit) {
            return Err(bad(
                "record_limit",
                h.record_limit,
                format!("an MPMC slot size is from 1 to {MAX_SLOT_SIZE}"),
            ));
        }
        let g = geometry(
            h.capacity,
            h.record_limit,
            h.ring_flags & layout::RING_FLAG_NOTIFY != 0,
        );
        let room = h.total_len - DATA_OFFSET;
        let need = h
            .capacity
            .checked_mul(g.stride)
            .filter(|n| *n <= room)
            .ok_or_else(|| {
                bad(
                    "capacity",
                    h.capacity,
                    format!(
                        "{} slots of stride {} do not fit the {}-byte object",
                        h.capacity, g.stride, h.total_len
                    ),
                )
            })?;
        if h.data_len != need {
            return Err(bad(
                "data_len",
                h.data_len,
                format!(
                    "{} slots of stride {} take {need} bytes",
                    h.capacity, g.stride
                ),
            ));
        }
        Ok(MpmcRing {
            inner: Arc::new(RingInner { seg, header: h, g }),
        })
    }

    /// A heap ring whose slots put the sequence word alone on its own cache line, with `len`
    /// and payload on the following line(s): the layout the protocol did *not* choose, kept
    /// only so the choice can be measured (`cargo run --release -p shmbus-ring --example
    /// ring_threads`). Not a wire layout: other processes could not open it.
    #[doc(hidden)]
    pub fn in_heap_with_separate_sequence_line(config: &MpmcConfig) -> Result<MpmcRing> {
        let ring = MpmcRing::in_heap(config)?;
        let mut inner = Arc::into_inner(ring.inner).expect("just created");
        let g = Geometry {
            stride: (SLOT_ALIGN + SLOT_HEADER + config.slot_size).div_ceil(SLOT_ALIGN) * SLOT_ALIGN,
            len_off: SLOT_ALIGN as usize,
            payload_off: (SLOT_ALIGN + SLOT_HEADER) as usize,
            ..inner.g
        };
        let seg = Segment::heap(DATA_OFFSET + config.slots * g.stride)?;
        inner.header.data_len = config.slots * g.stride;
        inner.header.total_len = seg.len() as u64;
        layout::publish(&seg, inner.header)?;
        inner.seg = seg;
        inner.g = g;
        // SAFETY: the new heap segment holds `slots` slots of the wider stride after the first
        // page; nothing else uses it yet.
        unsafe { Core::initialize(&inner.mem(), &g) };
        Ok(MpmcRing {
            inner: Arc::new(inner),
        })
    }

    fn core(&self, role: Role) -> Result<(Core<RawMem>, Registration)> {
        let reg = Registration::register(&self.inner.seg, role)?;
        // SAFETY: the geometry was validated against the segment's size at create/open.
        let core = unsafe { Core::new(self.inner.mem(), self.inner.g, reg.tag()) };
        Ok((core, reg))
    }

    /// Attaches a new producer endpoint.
    ///
    /// # Errors
    ///
    /// [`Error::TooManyEndpoints`] when the endpoint table is full; [`Error::ReadOnly`].
    pub fn producer(&self) -> Result<MpmcProducer> {
        let (core, reg) = self.core(Role::Producer)?;
        Ok(MpmcProducer {
            core,
            ring: self.clone(),
            claimed: Vec::new(),
            wait: WaitStrategy::default(),
            reg,
        })
    }

    /// Attaches a new consumer endpoint.
    ///
    /// # Errors
    ///
    /// [`Error::TooManyEndpoints`] when the endpoint table is full; [`Error::ReadOnly`].
    pub fn consumer(&self) -> Result<MpmcConsumer> {
        let (core, reg) = self.core(Role::Consumer)?;
        Ok(MpmcConsumer {
            core,
            ring: self.clone(),
            wait: WaitStrategy::default(),
            reg,
        })
    }

    /// The segment the ring lives in.
    pub fn segment(&self) -> &Segment {
        &self.inner.seg
    }

    /// The header as validated at create/open.
    pub fn header(&self) -> &SegmentHeader {
        &self.inner.header
    }

    /// Number of slots.
    pub fn slots(&self) -> u64 {
        self.inner.g.slots
    }

    /// The largest message, in bytes.
    pub fn slot_size(&self) -> usize {
        self.inner.g.slot_size as usize
    }
}

/// A producer endpoint of an MPMC ring. Each endpoint is registered in the segment; create one
/// per thread with [`MpmcRing::producer`].
pub struct MpmcProducer {
    core: Core<RawMem>,
    ring: MpmcRing,
    claimed: Vec<u64>,
    wait: WaitStrategy,
    reg: Registration,
}

impl std::fmt::Debug for MpmcProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpmcProducer")
            .field("target", &self.ring.inner.seg.target())
            .field("endpoint", &self.core.tag)
            .finish()
    }
}

impl MpmcProducer {
    /// Sets how often, while the ring is full, this endpoint checks whether the other endpoints are
    /// still alive, reaps dead ones and repairs the slots they held, and so notices a consumer that died (default
    /// [`DEFAULT_PROBE_INTERVAL`](crate::liveness::DEFAULT_PROBE_INTERVAL), 20 ms). A blocked
    /// call also wakes this often to check. (Non-blocking pops that find the ring empty read
    /// the clock only every 16th time, to keep a polling loop fast: a caller that polls
    /// slowly notices a dead peer within 16 polls of the interval.)
    pub fn set_probe_interval(&mut self, interval: Duration) {
        self.reg.set_interval(interval);
    }

    /// Copies `payload` into a slot and commits it.
    ///
    /// # Errors
    ///
    /// [`PushError::Full`]; [`PushError::TooLarge`] above the slot size (never truncated);
    /// [`PushError::Corrupt`] if the tail hint in shared memory is out of range.
    #[inline]
    pub fn try_push(&mut self, payload: &[u8]) -> Result<(), PushError> {
        check_consumers(&self.core.mem)?;
        match self.core.try_push(payload) {
            Err(PushError::Full) => {
                Err(self.ring.inner.on_full(&mut self.reg, &mut self.core, true))
            }
            other => other,
        }
    }

    /// Pushes records in order until the ring is full; returns how many were pushed.
    ///
    /// # Errors
    ///
    /// [`PushError::TooLarge`] (before anything is pushed); [`PushError::Full`] if none fits;
    /// [`PushError::Corrupt`] if the first push meets corruption (after `n > 0` pushes, any
    /// error ends the burst with `Ok(n)` and the next call reports it).
    pub fn push_burst<R: AsRef<[u8]>>(&mut self, records: &[R]) -> Result<usize, PushError> {
        check_consumers(&self.core.mem)?;
        match self.core.push_burst(records) {
            Err(PushError::Full) => {
                Err(self.ring.inner.on_full(&mut self.reg, &mut self.core, true))
            }
            other => other,
        }
    }

    /// Pushes all `records` or none. Positions are claimed first and committed together; if
    /// the ring fills before all are claimed, the claims are abandoned (consumers skip them).
    ///
    /// # Errors
    ///
    /// [`PushError::Full`] (nothing pushed; try again later), [`PushError::TooMany`] for more
    /// records than the ring has slots (it could never fit), [`PushError::TooLarge`],
    /// [`PushError::Corrupt`].
    pub fn push_bulk<R: AsRef<[u8]>>(&mut self, records: &[R]) -> Result<(), PushError> {
        check_consumers(&self.core.mem)?;
        match self.core.push_bulk(records, &mut self.claimed) {
            Err(PushError::Full) => {
                Err(self.ring.inner.on_full(&mut self.reg, &mut self.core, true))
            }
            other => other,
        }
    }

    /// Claims a slot for writing in place; [`WriteSlot::commit`] publishes it, and dropping it
    /// uncommitted abandons the position (consumers skip it).
    ///
    /// # Errors
    ///
    /// [`PushError::Full`], [`PushError::Corrupt`].
    ///
    /// ```
    /// # use shmbus_ring::{MpmcConfig, MpmcRing};
    /// let ring = MpmcRing::in_heap(&MpmcConfig::new(8, 64))?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// let mut slot = tx.claim()?;
    /// slot[..5].copy_from_slice(b"hello");
    /// slot.commit(5);
    /// let msg = rx.claim()?.expect("committed");
    /// assert_eq!(&*msg, b"hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn claim(&mut self) -> Result<WriteSlot<'_>, PushError> {
        check_consumers(&self.core.mem)?;
        let pos = match self.core.claim_write() {
            Err(PushError::Full) => {
                return Err(self.ring.inner.on_full(&mut self.reg, &mut self.core, true))
            }
            other => other?,
        };
        Ok(WriteSlot {
            producer: self,
            pos,
            committed: false,
        })
    }

    /// Claims a free slot, waiting until `deadline` (`None`: for ever) while the ring is
    /// full; then as [`claim`](Self::claim).
    ///
    /// # Errors
    ///
    /// [`PushError::Timeout`], and as [`claim`](Self::claim).
    pub fn claim_deadline(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<WriteSlot<'_>, PushError> {
        let pos = self.wait_room(deadline, |core| core.claim_write())?;
        Ok(WriteSlot {
            producer: self,
            pos,
            committed: false,
        })
    }

    /// The largest message, in bytes.
    pub fn slot_size(&self) -> usize {
        self.core.g.slot_size as usize
    }

    /// Sets how the blocking calls wait while the ring is full (default
    /// [`WaitStrategy::Block`] after 50 µs of spinning).
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.wait = strategy;
    }

    /// Pushes `payload`, waiting while the ring is full.
    ///
    /// # Errors
    ///
    /// [`PushError::TooLarge`] at once; [`PushError::Corrupt`].
    pub fn push(&mut self, payload: &[u8]) -> Result<(), PushError> {
        self.push_deadline(payload, None)
    }

    /// Pushes `payload`, waiting at most `timeout` while the ring is full.
    ///
    /// # Errors
    ///
    /// [`PushError::Timeout`], and as [`push`](Self::push).
    pub fn push_timeout(&mut self, payload: &[u8], timeout: Duration) -> Result<(), PushError> {
        self.push_deadline(payload, Instant::now().checked_add(timeout))
    }

    /// Pushes `payload`, waiting until `deadline` (`None`: for ever) while the ring is full.
    ///
    /// # Errors
    ///
    /// [`PushError::Timeout`], and as [`push`](Self::push).
    pub fn push_deadline(
        &mut self,
        payload: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), PushError> {
        self.wait_room(deadline, |core| core.try_push(payload))
    }

    /// Runs `op` until it does not report `Full`, waiting as the wait strategy says (and
    /// checking for gone consumers, repairing dead endpoints' slots) until `deadline`: the loop
    /// of every blocking push.
    fn wait_room<R>(
        &mut self,
        deadline: Option<Instant>,
        mut op: impl FnMut(&mut Core<RawMem>) -> Result<R, PushError>,
    ) -> Result<R, PushError> {
        let MpmcProducer {
            core,
            ring,
            wait,
            reg,
            ..
        } = self;
        let nap = reg.interval();
        wait_for(*wait, deadline, ring.inner.wake_words(false), nap, |slow| {
            if let Err(e) = check_consumers(&core.mem) {
                return Some(Err(e));
            }
            match op(core) {
                Err(PushError::Full) => match ring.inner.on_full(reg, core, slow) {
                    PushError::Full => None,
                    e => Some(Err(e)),
                },
                other => Some(other),
            }
        })
        .unwrap_or(Err(PushError::Timeout))
    }
}

impl Drop for MpmcProducer {
    fn drop(&mut self) {
        self.ring.inner.detach(&mut self.reg);
    }
}

/// A slot claimed by [`MpmcProducer::claim`]; dereferences to the whole slot payload area.
pub struct WriteSlot<'a> {
    producer: &'a mut MpmcProducer,
    pos: u64,
    committed: bool,
}

impl WriteSlot<'_> {
    /// Commits the first `len` bytes as the message.
    ///
    /// # Panics
    ///
    /// If `len` exceeds the slot size.
    pub fn commit(mut self, len: usize) {
        assert!(
            len <= self.producer.slot_size(),
            "commit({len}) exceeds the slot size"
        );
        self.producer.core.commit_write(self.pos, len);
        self.committed = true;
    }
}

impl Deref for WriteSlot<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let core = &self.producer.core;
        // SAFETY: we claimed this slot; its payload area is `slot_size` bytes inside the
        // segment, and no honest endpoint touches it until we commit or abandon it.
        unsafe {
            std::slice::from_raw_parts(
                core.mem.ptr(core.payload_off(self.pos)),
                core.g.slot_size as usize,
            )
        }
    }
}

impl DerefMut for WriteSlot<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        let core = &self.producer.core;
        // SAFETY: as in `deref`; `&mut self` borrows the claim exclusively.
        unsafe {
            std::slice::from_raw_parts_mut(
                core.mem.ptr(core.payload_off(self.pos)),
                core.g.slot_size as usize,
            )
        }
    }
}

impl Drop for WriteSlot<'_> {
    fn drop(&mut self) {
        if !self.committed {
            self.producer.core.release(self.pos);
        }
    }
}

/// A consumer endpoint of an MPMC ring. Each endpoint is registered in the segment; create one
/// per thread with [`MpmcRing::consumer`].
pub struct MpmcConsumer {
    core: Core<RawMem>,
    ring: MpmcRing,
    wait: WaitStrategy,
    reg: Registration,
}

impl std::fmt::Debug for MpmcConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpmcConsumer")
            .field("target", &self.ring.inner.seg.target())
            .field("endpoint", &self.core.tag)
            .finish()
    }
}

impl MpmcConsumer {
    /// Sets how often, while the ring is empty, this endpoint checks whether the other endpoints are
    /// still alive, reaps dead ones and repairs the slots they held, and so notices a producer that died (default
    /// [`DEFAULT_PROBE_INTERVAL`](crate::liveness::DEFAULT_PROBE_INTERVAL), 20 ms). A blocked
    /// call also wakes this often to check. (Non-blocking pops that find the ring empty read
    /// the clock only every 16th time, to keep a polling loop fast: a caller that polls
    /// slowly notices a dead peer within 16 polls of the interval.)
    pub fn set_probe_interval(&mut self, interval: Duration) {
        self.reg.set_interval(interval);
    }

    /// Pops the next message into `buf`, which must hold a whole slot
    /// ([`MpmcRing::slot_size`] bytes).
    ///
    /// # Errors
    ///
    /// [`PopError::Empty`]; [`PopError::BufferTooSmall`] (checked first, nothing consumed);
    /// [`PopError::Corrupt`] for a garbage slot (that message is dropped, the ring goes on).
    #[inline]
    pub fn try_pop(&mut self, buf: &mut [u8]) -> Result<usize, PopError> {
        match self.core.try_pop(buf) {
            Err(PopError::Empty) => {
                Err(self
                    .ring
                    .inner
                    .on_empty(&mut self.reg, &mut self.core, false))
            }
            other => other,
        }
    }

    /// Pops the next message into `buf` (cleared and resized to it).
    ///
    /// # Errors
    ///
    /// [`PopError::Empty`] or [`PopError::Corrupt`].
    #[inline]
    pub fn try_pop_vec(&mut self, buf: &mut Vec<u8>) -> Result<usize, PopError> {
        match self.core.try_pop_vec(buf) {
            Err(PopError::Empty) => {
                Err(self
                    .ring
                    .inner
                    .on_empty(&mut self.reg, &mut self.core, false))
            }
            other => other,
        }
    }

    /// Pops the next message and hands it, in place, to `f`.
    ///
    /// # Errors
    ///
    /// [`PopError::Empty`] or [`PopError::Corrupt`]; `f` is not called then.
    pub fn try_pop_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Result<R, PopError> {
        match self.claim()? {
            Some(msg) => Ok(f(&msg)),
            None => Err(PopError::Empty),
        }
    }

    /// Pops up to `max` messages, handing each to `f` in place; returns how many.
    ///
    /// # Errors
    ///
    /// [`PopError::Corrupt`] if the first message is corrupt; after `n > 0` messages were
    /// delivered, an error ends the burst with `Ok(n)` and the next call reports it.
    pub fn pop_burst(&mut self, max: usize, mut f: impl FnMut(&[u8])) -> Result<usize, PopError> {
        let mut n = 0;
        while n < max {
            match self.claim() {
                Ok(Some(msg)) => f(&msg),
                Ok(None) => break,
                Err(_) if n > 0 => break,
                Err(e) => return Err(e),
            }
            n += 1;
        }
        if n == 0 && max > 0 {
            if let PopError::Disconnected =
                self.ring
                    .inner
                    .on_empty(&mut self.reg, &mut self.core, false)
            {
                return Err(PopError::Disconnected);
            }
        }
        Ok(n)
    }

    /// Sets how the blocking calls wait while the ring is empty (default
    /// [`WaitStrategy::Block`] after 50 µs of spinning).
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.wait = strategy;
    }

    /// Pops the next message into `buf` (a whole slot), waiting while the ring is empty.
    ///
    /// # Errors
    ///
    /// [`PopError::BufferTooSmall`], [`PopError::Corrupt`].
    pub fn pop(&mut self, buf: &mut [u8]) -> Result<usize, PopError> {
        self.pop_deadline(buf, None)
    }

    /// Pops the next message into `buf`, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`PopError::Timeout`], and as [`pop`](Self::pop).
    pub fn pop_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, PopError> {
        self.pop_deadline(buf, Instant::now().checked_add(timeout))
    }

    /// Pops the next message into `buf`, waiting until `deadline` (`None`: for ever).
    ///
    /// # Errors
    ///
    /// [`PopError::Timeout`], and as [`pop`](Self::pop).
    pub fn pop_deadline(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<usize, PopError> {
        self.wait_data(deadline, |core| core.try_pop(buf))
    }

    /// Waits until `deadline` (`None`: for ever) for the next message and hands it, in place,
    /// to `f`.
    ///
    /// # Errors
    ///
    /// [`PopError::Timeout`] or [`PopError::Corrupt`]; `f` is not called then.
    pub fn pop_with_deadline<R>(
        &mut self,
        deadline: Option<Instant>,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, PopError> {
        let pos = self.wait_data(deadline, |core| core.claim_read()?.ok_or(PopError::Empty))?;
        let len = self.core.read_len(pos)?;
        let msg = ReadSlot {
            consumer: self,
            pos,
            len,
        };
        Ok(f(&msg))
    }

    /// Claims the next message for reading in place; dropping the guard releases the slot.
    /// `Ok(None)` when none is committed.
    ///
    /// # Errors
    ///
    /// [`PopError::Corrupt`] for a garbage slot (released) or hint.
    pub fn claim(&mut self) -> Result<Option<ReadSlot<'_>>, PopError> {
        let Some(pos) = self.core.claim_read()? else {
            return match self
                .ring
                .inner
                .on_empty(&mut self.reg, &mut self.core, false)
            {
                PopError::Disconnected => Err(PopError::Disconnected),
                _ => Ok(None),
            };
        };
        let len = self.core.read_len(pos)?;
        Ok(Some(ReadSlot {
            consumer: self,
            pos,
            len,
        }))
    }

    /// Runs `op` until it does not report `Empty`, waiting as the wait strategy says (and
    /// checking for gone producers, repairing dead endpoints' slots) until `deadline`: the
    /// loop of every blocking pop.
    fn wait_data<R>(
        &mut self,
        deadline: Option<Instant>,
        mut op: impl FnMut(&mut Core<RawMem>) -> Result<R, PopError>,
    ) -> Result<R, PopError> {
        let MpmcConsumer {
            core,
            ring,
            wait,
            reg,
        } = self;
        let nap = reg.interval();
        wait_for(
            *wait,
            deadline,
            ring.inner.wake_words(true),
            nap,
            |slow| match op(core) {
                Err(PopError::Empty) => match ring.inner.on_empty(reg, core, slow) {
                    PopError::Empty => None,
                    e => Some(Err(e)),
                },
                other => Some(other),
            },
        )
        .unwrap_or(Err(PopError::Timeout))
    }
}

impl Drop for MpmcConsumer {
    fn drop(&mut self) {
        self.ring.inner.detach(&mut self.reg);
    }
}

/// A message claimed by [`MpmcConsumer::claim`]; dereferences to its bytes. Dropping it frees
/// the slot for producers.
pub struct ReadSlot<'a> {
    consumer: &'a mut MpmcConsumer,
    pos: u64,
    len: usize,
}

impl Deref for ReadSlot<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let core = &self.consumer.core;
        // SAFETY: we claimed this slot and validated `len <= slot_size`; honest producers do
        // not write it until we release it.
        unsafe { std::slice::from_raw_parts(core.mem.ptr(core.payload_off(self.pos)), self.len) }
    }
}

impl Drop for ReadSlot<'_> {
    fn drop(&mut self) {
        self.consumer.core.release(self.pos);
    }
}

/// Model-checking entry points: the MPMC core over [`crate::mem::LoomMem`].
#[cfg(loom)]
pub mod loom_model {
    use super::*;
    use crate::mem::LoomMem;

    /// An endpoint over loom memory.
    pub struct ModelEndpoint(Core<LoomMem>, Vec<u64>);

    /// A ring of `slots` slots of `slot_size` bytes in loom memory, and a factory of endpoints.
    pub struct ModelRing {
        mem: LoomMem,
        g: Geometry,
    }

    impl ModelRing {
        /// A fresh ring.
        pub fn new(slots: u64, slot_size: u64) -> Self {
            let stride = slot_stride(slot_size);
            let g = Geometry {
                tail_off: 0,
                head_off: 8,
                data_off: 64,
                slots,
                slot_size,
                stride,
                len_off: 8,
                payload_off: SLOT_HEADER as usize,
                wake: None,
            };
            let mem = LoomMem::zeroed(64 + (slots * stride) as usize);
            // SAFETY: the model memory holds the hints and the slots; nothing else uses it yet.
            unsafe { Core::initialize(&mem, &g) };
            ModelRing { mem, g }
        }

        /// An endpoint with tag `tag` (1..=255).
        pub fn endpoint(&self, tag: u64) -> ModelEndpoint {
            // SAFETY: as in `new`.
            ModelEndpoint(
                unsafe { Core::new(self.mem.clone(), self.g, tag) },
                Vec::new(),
            )
        }
    }

    impl ModelEndpoint {
        /// See [`MpmcProducer::try_push`].
        pub fn try_push(&mut self, payload: &[u8]) -> Result<(), PushError> {
            self.0.try_push(payload)
        }
        /// See [`MpmcProducer::push_bulk`].
        pub fn push_bulk(&mut self, records: &[&[u8]]) -> Result<(), PushError> {
            self.0.push_bulk(records, &mut self.1)
        }
        /// See [`MpmcProducer::push_burst`].
        pub fn push_burst(&mut self, records: &[&[u8]]) -> Result<usize, PushError> {
            self.0.push_burst(records)
        }
        /// See [`MpmcConsumer::try_pop_vec`].
        pub fn try_pop_vec(&mut self, buf: &mut Vec<u8>) -> Result<usize, PopError> {
            self.0.try_pop_vec(buf)
        }
        /// Claims a position for writing and stops there: a producer that dies holding it.
        pub fn claim_write_and_die(&mut self) -> Option<u64> {
            self.0.claim_write().ok()
        }
        /// Claims the next committed position for reading and stops there: a consumer that
        /// dies holding it.
        pub fn claim_read_and_die(&mut self) -> Option<u64> {
            self.0.claim_read().ok().flatten()
        }
        /// Releases every slot claimed by the dead endpoint `tag` (the reaper's repair).
        pub fn repair_claims(&mut self, tag: u64) -> usize {
            self.0.repair_claims(tag)
        }
    }
}
