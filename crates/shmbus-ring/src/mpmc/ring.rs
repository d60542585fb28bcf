//! The MPMC ring in a segment: its geometry, checked at create and open (PROTOCOL §5.1).

use super::core::{repair_claims, vacate, Core, Geometry, Side};
use super::{
    stride_for, Mpmc, MpmcConfig, ALIGNED_PAYLOAD_OFFSET, MAX_SLOTS, MAX_SLOT_SIZE, MIN_SLOTS,
    SLOT_HEADER, TAG_MASK,
};
use crate::checksum::framed;
use crate::conv::offset;
use crate::endpoint::Producer;
use crate::endpoint::Role;
use crate::error::{Corruption, Error, PushError, Result};
use crate::handshake::bad_field;
#[cfg(feature = "layout-experiments")]
use crate::handshake::new_header;
use crate::layout::{
    RingKind, SegmentHeader, BLOCK_SOLE, CONSUMER_BLOCK, DATA_OFFSET, PRODUCER_BLOCK,
    RING_FLAG_ALIGNED, RING_FLAG_RECLAIM, RING_FLAG_SOLE,
};
use crate::liveness::{roster_off, Registration};
use crate::ring::sealed::KindImpl;
use crate::ring::{Kind, Ring, Shape, Shared, Words};
use crate::segment::Segment;
use crate::sync::{Memory, Ordering, RawMem};

/// The geometry of layout 1: slots of `slot_stride(slot_size)` bytes after the first page,
/// each the sequence word, `len`, 4 reserved bytes and the payload; with ring flag `ALIGNED`
/// (layout 1.7), slots of `aligned_slot_stride(slot_size)` bytes whose payload starts on
/// their second line (PROTOCOL §5.1).
fn geometry(slots: u64, slot_size: u64, flags: u32, limit: u64) -> Geometry {
    let aligned = flags & RING_FLAG_ALIGNED != 0;
    Geometry {
        words: Words::segment(flags),
        slots,
        slot_size,
        stride: stride_for(slot_size, aligned),
        len_off: 8,
        payload_off: offset(if aligned {
            ALIGNED_PAYLOAD_OFFSET
        } else {
            SLOT_HEADER
        }),
        // A bound of the slot count is what the slots keep anyway: no check needed.
        limit: if limit == slots { 0 } else { limit },
        sole: (flags & RING_FLAG_SOLE != 0).then(|| {
            [
                offset(PRODUCER_BLOCK + BLOCK_SOLE),
                offset(CONSUMER_BLOCK + BLOCK_SOLE),
            ]
        }),
        // The opener refuses `RECLAIM` without `SOLE`.
        reclaim: (flags & RING_FLAG_SOLE != 0 && flags & RING_FLAG_RECLAIM != 0)
            .then(|| [roster_off(Role::Producer), roster_off(Role::Consumer)]),
    }
}

impl Kind for Mpmc {
    type Config = MpmcConfig;
}

impl KindImpl for Mpmc {
    const RING_KIND: RingKind = RingKind::Mpmc;

    fn sized_for(messages: u64, max_message: u64) -> Result<MpmcConfig> {
        // Checked here, before a segment is allocated for a ring that could not be built in it.
        if max_message > MAX_SLOT_SIZE {
            return Err(Error::InvalidConfig(format!(
                "an MPMC message (slot) is at most {MAX_SLOT_SIZE} bytes, not {max_message}"
            )));
        }
        let slots = messages
            .max(MIN_SLOTS)
            .checked_next_power_of_two()
            .filter(|s| *s <= MAX_SLOTS)
            .ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "an MPMC ring has at most {MAX_SLOTS} slots, not {messages}"
                ))
            })?;
        Ok(MpmcConfig::new(slots, max_message))
    }
    const NAME: &'static str = "MpmcRing";
    type Geometry = Geometry;
    type WriteCore = Core<RawMem>;
    type ReadCore = Core<RawMem>;

    fn lay_out(mem: &RawMem, config: &MpmcConfig) -> Result<(Shape, Geometry)> {
        config.checked()?;
        let g = geometry(
            config.slots,
            config.slot_size,
            crate::ring::sealed::ConfigImpl::header_identity(config).1,
            config.limit.unwrap_or(0),
        );
        // SAFETY: the geometry fits the segment (`mem` is at least `segment_len` bytes, the
        // caller's contract) and nobody else can use the ring before the header is published
        // (H1).
        unsafe { Core::initialize(mem, &g) };
        let shape = Shape {
            capacity: config.slots,
            record_limit: config.slot_size,
            data_len: config.slots * g.stride,
            kind_word: 0,
        };
        Ok((shape, g))
    }

    fn open(seg: &Segment, h: &SegmentHeader) -> Result<Geometry> {
        let bad = bad_field(seg);
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
        if h.message_limit > h.capacity {
            return Err(bad(
                "message_limit",
                h.message_limit,
                format!(
                    "an MPMC ring of {} slots holds at most that many",
                    h.capacity
                ),
            ));
        }
        let g = geometry(h.capacity, h.record_limit, h.ring_flags, h.message_limit);
        // As for SPSC: total for any header, not only a checked one.
        let room = h.total_len.saturating_sub(DATA_OFFSET);
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
        Ok(g)
    }

    fn max_message(g: &Geometry) -> usize {
        offset(g.slot_size)
    }

    fn capacity(g: &Geometry) -> Option<u64> {
        Some(if g.limit == 0 { g.slots } else { g.limit })
    }

    fn len(mem: &RawMem, g: &Geometry) -> Option<u64> {
        // M20: Relaxed, both: a snapshot for observers. The head hint first, for the same
        // reason as SPSC's C5. Positions claimed for writing and not yet for reading: a
        // message being written counts, as in crossbeam's `ArrayQueue::len`.
        // SAFETY: the hint words are in the first page, which `mem` holds.
        let head = unsafe { mem.load(g.words.head, Ordering::Relaxed) };
        // SAFETY: as above.
        let tail = unsafe { mem.load(g.words.tail, Ordering::Relaxed) };
        Self::capacity(g).map(|cap| tail.saturating_sub(head).min(cap))
    }

    fn register(ring: &Shared<Mpmc>, role: Role) -> Result<Registration> {
        ring.register(role)
    }

    fn detach(ring: &Shared<Mpmc>, reg: &Registration) {
        // An endpoint's claims are its own to finish: a clean detach leaves none. A sole
        // endpoint gives its sole word back (M24), after its last raise.
        give_back(ring, reg.tag(), reg.role());
    }

    fn repair(ring: &Shared<Mpmc>, tag: u64, _gen: u16, role: Role) {
        // SAFETY: the geometry was validated against the segment's size at create/open, and
        // `mem` is the whole segment.
        unsafe { repair_claims(&ring.mem, &ring.g, tag) };
        // A dead sole endpoint's word, once its claims are repaired (M24): the next endpoint
        // of its role may be alone again. Its raise, if it died before storing it, never
        // comes: the hint stays below its (repaired) claim, which walks pass.
        give_back(ring, tag, role);
    }

    fn writer(ring: &Shared<Mpmc>, reg: &Registration) -> Result<Core<RawMem>, Corruption> {
        reap_a_dead_holder(ring, reg, Side::Write);
        // SAFETY: as in `repair`; the tag is the endpoint's own (1..=55).
        let mut core = unsafe { Core::new(ring.mem, ring.g, reg.tag()) };
        core.enter(Side::Write);
        Ok(core)
    }

    fn reader(ring: &Shared<Mpmc>, reg: &Registration) -> Result<Core<RawMem>, Corruption> {
        reap_a_dead_holder(ring, reg, Side::Read);
        // SAFETY: as in `writer`.
        let mut core = unsafe { Core::new(ring.mem, ring.g, reg.tag()) };
        core.enter(Side::Read);
        Ok(core)
    }
}

/// Before a new endpoint registers in `side`'s sole word (M22): if another endpoint holds the
/// word alone, probes the endpoint table first, as a waiting endpoint does (PROTOCOL §7.2),
/// so that a holder that died is reaped and its word given back (M24) before M22 reads it.
/// A replacement attached right after its predecessor died (a supervisor restarting a
/// crashed process) is then alone, rather than joining the dead endpoint and leaving the
/// role shared for the ring's life (DECISIONS D93). Best effort: if another endpoint is
/// reaping the holder at that instant, the probe passes its entry by and M22 may still run
/// before that reaper gives the word back; on a `RECLAIM` ring (layout 1.8) the replacement
/// then takes the word back at its first claim after that reap (D94). A live holder is
/// joined as before; a role already shared is left to the reclaim.
fn reap_a_dead_holder(ring: &Shared<Mpmc>, reg: &Registration, side: Side) {
    let Some(words) = ring.g.sole else {
        return;
    };
    // M25: Relaxed: only whether to probe; the probe's own loads and M22 decide the rest.
    // SAFETY: the sole words are in the first page, which `mem` holds.
    let word = unsafe { ring.mem.load(words[side as usize], Ordering::Relaxed) };
    // A bare tag (no mark, no join count): someone alone.
    if word != 0 && word <= TAG_MASK && word != reg.tag() {
        ring.probe(reg, 0);
    }
}

/// Gives the sole word of `role` back if endpoint `tag` holds it (M24).
fn give_back(ring: &Shared<Mpmc>, tag: u64, role: Role) {
    if let Some(words) = ring.g.sole {
        let side = match role {
            Role::Producer => Side::Write,
            Role::Consumer => Side::Read,
        };
        // SAFETY: the sole words are in the first page, which `mem` holds.
        unsafe { vacate(&ring.mem, words[side as usize], tag) };
    }
}

impl Ring<Mpmc> {
    /// Number of slots.
    pub fn slots(&self) -> u64 {
        self.inner.g.slots
    }

    /// The largest message, in bytes (the same as [`Ring::max_message`]).
    pub fn slot_size(&self) -> usize {
        self.max_message()
    }
}

impl Producer<Mpmc> {
    /// Pushes all `records` or none. Positions are claimed first and committed together; if
    /// the ring fills before all are claimed, the claims are abandoned (consumers skip them).
    ///
    /// # Errors
    ///
    /// [`PushError::Full`] (nothing pushed; try again later), [`PushError::TooMany`] for more
    /// records than the ring has slots (it could never fit), [`PushError::TooLarge`],
    /// [`PushError::Disconnected`], [`PushError::Corrupt`].
    ///
    /// ```
    /// # use shmbus_ring::{MpmcConfig, MpmcRing};
    /// let ring = MpmcRing::in_heap(&MpmcConfig::new(8, 16))?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// tx.try_push_all(&[&b"one"[..], b"two"])?;
    /// let mut got = Vec::new();
    /// assert_eq!(rx.try_pop_batch(8, |m| got.push(m.to_vec()))?, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// On a checksum ring each record is framed with its trailer in a private buffer first
    /// (one allocation and copy per record): the batch stays all-or-nothing.
    pub fn try_push_all<R: AsRef<[u8]>>(&mut self, records: &[R]) -> Result<(), PushError> {
        if !self.checksum() {
            return self.once(|core| core.try_push_all(records));
        }
        let max = self.max_message();
        if let Some(len) = records.iter().map(|r| r.as_ref().len()).find(|l| *l > max) {
            return Err(PushError::TooLarge { len, max });
        }
        let framed: Vec<Vec<u8>> = records.iter().map(|r| framed(r.as_ref())).collect();
        self.once(|core| core.try_push_all(&framed))
    }
}

#[cfg(feature = "layout-experiments")]
fn sealed_flags(config: &MpmcConfig) -> u32 {
    crate::ring::sealed::ConfigImpl::header_identity(config).1
}

#[cfg(feature = "layout-experiments")]
impl Ring<Mpmc> {
    /// A heap ring whose slots put the sequence word alone on its own cache line, with `len`
    /// and payload on the following line(s): the layout the protocol did *not* choose, kept
    /// only so the choice can be measured (`cargo run --release -p shmbus-ring --features
    /// layout-experiments --example ring_threads`; DECISIONS D4). Not a wire layout: other
    /// processes could not open it. Only with the `layout-experiments` feature.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a bad geometry.
    #[doc(hidden)]
    pub fn in_heap_with_separate_sequence_line(config: &MpmcConfig) -> Result<Self> {
        use super::SLOT_ALIGN;
        use crate::conv::wide;
        config.checked()?;
        // Its own slot layout: never the aligned one's flag, which would tell an observer to
        // read payloads at +64.
        let config = &config.clone().aligned(false);
        let flags = crate::ring::sealed::ConfigImpl::header_identity(config).1;
        let base = geometry(config.slots, config.slot_size, flags, 0);
        let g = Geometry {
            stride: (SLOT_ALIGN + SLOT_HEADER + config.slot_size).div_ceil(SLOT_ALIGN) * SLOT_ALIGN,
            len_off: offset(SLOT_ALIGN),
            payload_off: offset(SLOT_ALIGN + SLOT_HEADER),
            ..base
        };
        let seg = Segment::heap(DATA_OFFSET + config.slots * g.stride)?;
        let mem = seg
            .raw_mem(seg.len())
            .ok_or_else(|| Error::InvalidConfig("segment too small".into()))?;
        // SAFETY: the heap segment holds `slots` slots of the wider stride after the first
        // page; nothing else uses it yet.
        unsafe { Core::initialize(&mem, &g) };
        let shape = Shape {
            capacity: config.slots,
            record_limit: config.slot_size,
            data_len: config.slots * g.stride,
            kind_word: 0,
        };
        let header = new_header(
            RingKind::Mpmc,
            wide(seg.len()),
            shape.fields(),
            config.identity,
            sealed_flags(config),
        );
        crate::handshake::publish(&seg, header)?;
        Ok(Ring::wrap(seg, header, g))
    }
}
