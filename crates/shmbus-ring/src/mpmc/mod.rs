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
//! A claim where an endpoint is likely alone (a producer at the tail hint, a consumer right after
//! its last claim) is a blind CAS, without a load before it (PROTOCOL M2', M8'; D58).
//!
//! Orderings: the producer's Release store of `(p + 1, 0)` publishes the payload to the
//! consumer's Acquire load (and CAS) of the word; the consumer's Release store of
//! `(p + cap, 0)` orders its reads before the next lap's producer, whose Acquire load of the
//! word observes it.

//!
//! # Files
//!
//! - `core.rs`: the algorithm over [`Memory`](crate::sync): claim, commit, read, release,
//!   and the repair of a dead endpoint's claims;
//! - `core/audit.rs`: the audits a waiting endpoint runs at a probe (contradictions, §5.5);
//! - `ring.rs`: the ring in a segment — geometry checks at create and open.
//!
//! The endpoints are the generic [`Producer`](crate::Producer) and
//! [`Consumer`](crate::Consumer) (`endpoint.rs`) with `K = Mpmc`.

pub(crate) mod core;
mod ring;

use crate::conv::wide;
use crate::error::{Error, Result};
use crate::layout::{Identity, CHECKSUM_LEN, DATA_OFFSET};

/// The MPMC ring kind: any number of producers and consumers, fixed-size slots. A type
/// parameter of [`Ring`](crate::Ring), [`Producer`](crate::Producer) and
/// [`Consumer`](crate::Consumer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Mpmc;

/// An MPMC ring in a segment.
pub type MpmcRing = crate::Ring<Mpmc>;
/// A producer endpoint of an MPMC ring.
pub type MpmcProducer = crate::Producer<Mpmc>;
/// A consumer endpoint of an MPMC ring.
pub type MpmcConsumer = crate::Consumer<Mpmc>;

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

pub(crate) const TAG_BITS: u32 = 8;
pub(crate) const TAG_MASK: u64 = (1 << TAG_BITS) - 1;
/// Positions stay below 2^55 so `seq` (56 bits) never wraps and differences fit an `i64`; a
/// hint at or above this is corruption.
pub(crate) const MAX_POSITION: u64 = 1 << 55;

#[inline]
pub(crate) const fn join(seq: u64, tag: u64) -> u64 {
    (seq << TAG_BITS) | tag
}

#[inline]
pub(crate) const fn split(word: u64) -> (u64, u64) {
    (word >> TAG_BITS, word & TAG_MASK)
}

/// The distance between slots for a payload of `slot_size` bytes, in a ring without
/// [`RING_FLAG_ALIGNED`](crate::layout::RING_FLAG_ALIGNED): the payload follows the
/// [`SLOT_HEADER`].
pub const fn slot_stride(slot_size: u64) -> u64 {
    (SLOT_HEADER + slot_size).div_ceil(SLOT_ALIGN) * SLOT_ALIGN
}

/// Slots from this payload size up are aligned by default ([`MpmcConfig::aligned`]): where
/// copies into a ring are `rep movsb` (from 768 bytes on CPUs with fast string moves, D84),
/// which runs faster to a destination on a line. Measured (DECISIONS D90): from 768 bytes
/// aligned slots shortened the round trip by 4–9%; at 256 and 512 bytes they shortened
/// nothing and streamed up to 40% slower.
pub const ALIGNED_SLOT_FROM: u64 = 768;
// The reason for the threshold is the copy's: keep the two together.
const _: () = assert!(ALIGNED_SLOT_FROM == crate::copy::STRING_IN as u64);

/// Where a slot's payload starts in a ring with
/// [`RING_FLAG_ALIGNED`](crate::layout::RING_FLAG_ALIGNED) (layout 1.7): on the slot's
/// second cache line, so that it starts on a line.
pub const ALIGNED_PAYLOAD_OFFSET: u64 = SLOT_ALIGN;

/// The distance between slots for a payload of `slot_size` bytes, in a ring with
/// [`RING_FLAG_ALIGNED`](crate::layout::RING_FLAG_ALIGNED): a line for the slot's header,
/// then the payload's lines.
///
/// ```
/// use shmbus_ring::mpmc::{aligned_slot_stride, slot_stride};
/// assert_eq!((slot_stride(1024), aligned_slot_stride(1024)), (1088, 1088));
/// assert_eq!((slot_stride(1028), aligned_slot_stride(1028)), (1088, 1152));
/// ```
pub const fn aligned_slot_stride(slot_size: u64) -> u64 {
    ALIGNED_PAYLOAD_OFFSET + slot_size.div_ceil(SLOT_ALIGN) * SLOT_ALIGN
}

/// The distance between slots for a payload of `slot_size` bytes: [`aligned_slot_stride`]
/// in a ring with [`RING_FLAG_ALIGNED`](crate::layout::RING_FLAG_ALIGNED), else
/// [`slot_stride`]. The one place the flag chooses a stride: the opener's geometry and
/// [`MpmcConfig::stride`] both ask it.
pub(crate) const fn stride_for(slot_size: u64, aligned: bool) -> u64 {
    if aligned {
        aligned_slot_stride(slot_size)
    } else {
        slot_stride(slot_size)
    }
}

/// The geometry and identity of a new MPMC ring.
///
/// ```
/// use shmbus_ring::MpmcConfig;
/// let cfg = MpmcConfig::new(1024, 48); // 1024 slots of up to 48 bytes: one cache line each
/// assert_eq!(cfg.segment_len(), 4096 + 1024 * 64);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
// Each flag is an independent header bit or wake-up mode, as in `SpscConfig`.
#[allow(clippy::struct_excessive_bools)]
pub struct MpmcConfig {
    slots: u64,
    slot_size: u64,
    pub(crate) identity: Identity,
    pub(crate) notify: bool,
    pub(crate) membarrier: bool,
    pub(crate) sole: bool,
    pub(crate) reclaim: bool,
    pub(crate) aligned: bool,
    pub(crate) checksum: bool,
    pub(crate) limit: Option<u64>,
    pub(crate) info: Option<crate::info::Info>,
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
            membarrier: true,
            sole: true,
            reclaim: true,
            aligned: true,
            checksum: false,
            limit: None,
            info: None,
        }
    }

    /// At most `messages` messages in the ring at once (1 to the slot count; layout 1.2,
    /// [`RING_FLAG_BOUNDED`](crate::layout::RING_FLAG_BOUNDED)): an exact bound that need not
    /// be a power of two. Without it (the default) the slot count bounds.
    ///
    /// ```
    /// use shmbus_ring::{MpmcConfig, MpmcRing, PushError};
    /// let ring = MpmcRing::in_heap(&MpmcConfig::new(4, 8).message_limit(3))?;
    /// let (mut tx, _rx) = (ring.producer()?, ring.consumer()?);
    /// for i in 0..3u8 {
    ///     tx.try_push(&[i])?;
    /// }
    /// assert_eq!(tx.try_push(&[3]), Err(PushError::Full));
    /// assert_eq!((ring.len(), ring.capacity()), (Some(3), Some(3)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn message_limit(mut self, messages: u64) -> Self {
        self.limit = Some(messages);
        self
    }

    /// An info region describing what the ring carries ([`crate::info`]).
    pub fn info(mut self, info: crate::info::Info) -> Self {
        self.info = Some(info);
        self
    }

    /// Whether every message carries a CRC32C trailer (default `false`); see
    /// [`SpscConfig::checksum`](crate::SpscConfig::checksum). The trailer takes 4 bytes of
    /// each slot: [`max_message`](crate::Ring::max_message) is `slot_size` − 4.
    ///
    /// ```
    /// use shmbus_ring::{MpmcConfig, MpmcRing};
    /// let ring = MpmcRing::in_heap(&MpmcConfig::new(8, 68).checksum(true))?;
    /// assert_eq!(ring.max_message(), 64);
    /// # Ok::<(), shmbus_ring::Error>(())
    /// ```
    pub fn checksum(mut self, yes: bool) -> Self {
        self.checksum = yes;
        self
    }

    /// Whether a notifying ring's wake-ups use membarrier mode (default `true`); see
    /// [`crate::SpscConfig::membarrier`].
    pub fn membarrier(mut self, yes: bool) -> Self {
        self.membarrier = yes;
        self
    }

    /// Whether an endpoint alone in its role raises its hint with a plain store (default
    /// `true`; ring flag [`RING_FLAG_SOLE`](crate::layout::RING_FLAG_SOLE), layout 1.6,
    /// PROTOCOL §5.7). One producer and one consumer then pay no locked operation beyond their
    /// claims per message; a second endpoint of a role that joins makes that role shared, and
    /// every raise locked, until it leaves: the endpoint left alone then takes the word back
    /// at its next claim (see [`reclaim`](Self::reclaim)). An endpoint that replaces a dead
    /// sole one (killed, and not yet reaped by a peer) reaps it as it attaches and is alone in
    /// turn (DECISIONS D93; if a peer is reaping it at that instant, at its first claim after
    /// that reap, D94). `false` makes a ring that peers of layout 1.5 and older can open.
    ///
    /// ```
    /// use shmbus_ring::{layout::RING_FLAG_SOLE, MpmcConfig, MpmcRing};
    /// let ring = MpmcRing::in_heap(&MpmcConfig::new(8, 64))?;
    /// assert_ne!(ring.header().ring_flags & RING_FLAG_SOLE, 0);
    /// let old = MpmcRing::in_heap(&MpmcConfig::new(8, 64).sole(false))?;
    /// assert_eq!(old.header().ring_flags & RING_FLAG_SOLE, 0);
    /// # Ok::<(), shmbus_ring::Error>(())
    /// ```
    pub fn sole(mut self, yes: bool) -> Self {
        self.sole = yes;
        self
    }

    /// Whether, with [`sole`](Self::sole) endpoints, a role that became shared is sole again
    /// once one endpoint is left in it (default `true`; ring flag
    /// [`RING_FLAG_RECLAIM`](crate::layout::RING_FLAG_RECLAIM), layout 1.8, PROTOCOL §5.7
    /// "Reclaim", DECISIONS D94). A sender cloned for a while and dropped, or a second
    /// producer that attached and left, then costs the one left no locked raise after its next
    /// message. `false` makes a ring whose shared roles stay shared for good, which peers of
    /// layout 1.6 and 1.7 can open. No effect without sole endpoints.
    ///
    /// ```
    /// use shmbus_ring::{layout::RING_FLAG_RECLAIM, MpmcConfig, MpmcRing};
    /// let ring = MpmcRing::in_heap(&MpmcConfig::new(8, 64))?;
    /// assert_ne!(ring.header().ring_flags & RING_FLAG_RECLAIM, 0);
    /// let for_1_7_peers = MpmcRing::in_heap(&MpmcConfig::new(8, 64).reclaim(false))?;
    /// assert_eq!(for_1_7_peers.header().ring_flags & RING_FLAG_RECLAIM, 0);
    /// # Ok::<(), shmbus_ring::Error>(())
    /// ```
    pub fn reclaim(mut self, yes: bool) -> Self {
        self.reclaim = yes;
        self
    }

    /// Whether slots of [`ALIGNED_SLOT_FROM`] (768) payload bytes or more start their payload
    /// on a cache line (default `true`; ring flag
    /// [`RING_FLAG_ALIGNED`](crate::layout::RING_FLAG_ALIGNED), layout 1.7, PROTOCOL §5.1).
    /// The slot's header then has a line of its own, and copies in and out run line to line
    /// (DECISIONS D90). A slot may take one line more: [`aligned_slot_stride`] against
    /// [`slot_stride`] (the same at 1024 bytes, 1152 against 1088 at 1028). Smaller slots
    /// are never aligned. `false` makes a ring that peers of layout 1.6 can open (1.5 and
    /// older need [`sole(false)`](Self::sole) too).
    ///
    /// ```
    /// use shmbus_ring::{layout::RING_FLAG_ALIGNED, MpmcConfig, MpmcRing};
    /// let ring = MpmcRing::in_heap(&MpmcConfig::new(8, 1024))?;
    /// assert_ne!(ring.header().ring_flags & RING_FLAG_ALIGNED, 0);
    /// let small = MpmcRing::in_heap(&MpmcConfig::new(8, 512))?;
    /// assert_eq!(small.header().ring_flags & RING_FLAG_ALIGNED, 0);
    /// let old = MpmcRing::in_heap(&MpmcConfig::new(8, 1024).aligned(false))?;
    /// assert_eq!(old.header().ring_flags & RING_FLAG_ALIGNED, 0);
    /// # Ok::<(), shmbus_ring::Error>(())
    /// ```
    pub fn aligned(mut self, yes: bool) -> Self {
        self.aligned = yes;
        self
    }

    /// Whether this ring's slots are aligned: asked for, and at least [`ALIGNED_SLOT_FROM`].
    pub(crate) fn is_aligned(&self) -> bool {
        self.aligned && self.slot_size >= ALIGNED_SLOT_FROM
    }

    /// The distance between this ring's slots: [`aligned_slot_stride`] or [`slot_stride`].
    ///
    /// ```
    /// use shmbus_ring::MpmcConfig;
    /// assert_eq!(MpmcConfig::new(8, 1028).stride(), 1152);
    /// assert_eq!(MpmcConfig::new(8, 1028).aligned(false).stride(), 1088);
    /// assert_eq!(MpmcConfig::new(8, 200).stride(), 256);
    /// ```
    pub fn stride(&self) -> u64 {
        stride_for(self.slot_size.min(MAX_SLOT_SIZE), self.is_aligned())
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
        DATA_OFFSET
            .saturating_add(self.slots.saturating_mul(self.stride()))
            .saturating_add(self.info.as_ref().map_or(0, crate::info::Info::encoded_len))
    }

    /// Checks the geometry without allocating anything: what [`Ring::create_in`](crate::Ring::create_in) would refuse.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the value at fault.
    pub fn validate(&self) -> Result<()> {
        self.checked()
    }

    pub(crate) fn checked(&self) -> Result<()> {
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
        if self.checksum && self.slot_size < wide(CHECKSUM_LEN) {
            return Err(Error::InvalidConfig(format!(
                "MPMC slot size {} cannot hold the {CHECKSUM_LEN}-byte checksum trailer",
                self.slot_size
            )));
        }
        if let Some(limit) = self.limit {
            if !(1..=self.slots).contains(&limit) {
                return Err(Error::InvalidConfig(format!(
                    "MPMC message limit {limit} must be from 1 to the slot count {}",
                    self.slots
                )));
            }
        }
        Ok(())
    }
}
