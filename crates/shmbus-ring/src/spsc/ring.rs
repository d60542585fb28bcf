//! The SPSC ring in a segment: its geometry, checked at create and open, and the owner words
//! that make each role single (PROTOCOL §4.1, §4.5).

use super::core::{Align, ConsumerCore, Geometry, ProducerCore};
use super::{largest_record, max_messages, Spsc, SpscConfig, MAX_CAPACITY, MIN_CAPACITY};
use crate::conv::offset;
use crate::endpoint::Role;
use crate::error::{Corruption, Error, Result};
use crate::frame::{
    record_size, ALIGN_FROM, ALIGN_IF_FREE_FROM, HEADER_SIZE, MAX_SKIP_LEN, PAYLOAD_ALIGN,
};
use crate::handshake::bad_field;
use crate::layout::{
    RingKind, SegmentHeader, BLOCK_COUNT, BLOCK_OWNER, CONSUMER_BLOCK, DATA_OFFSET, PRODUCER_BLOCK,
    RING_FLAG_ALIGNED,
};
use crate::liveness::{Os, Owner, OwnerWord, Registration};
use crate::ring::sealed::KindImpl;
use crate::ring::{Kind, Ring, Shape, Shared, Words};
use crate::segment::Segment;
use crate::sync::{Memory, Ordering, RawMem};
use std::time::{Duration, Instant};

impl Geometry {
    fn for_segment(cap: u64, max_record: u64, flags: u32, limit: u64) -> Self {
        Geometry {
            words: Words::segment(flags),
            cap,
            max_record,
            limit,
            counts: (
                offset(PRODUCER_BLOCK + BLOCK_COUNT),
                offset(CONSUMER_BLOCK + BLOCK_COUNT),
            ),
            aligned: (flags & RING_FLAG_ALIGNED != 0).then_some(Align {
                from: const { threshold(ALIGN_FROM) },
                boundary: PAYLOAD_ALIGN,
                free_from: const { threshold(ALIGN_IF_FREE_FROM) },
            }),
        }
    }
}

/// An alignment threshold as [`Align`] keeps it (32 bits, so that the geometry keeps its size:
/// D89); both are small constants.
const fn threshold(len: u64) -> u32 {
    assert!(len <= u32::MAX as u64);
    #[allow(clippy::cast_possible_truncation)] // checked just above
    {
        len as u32
    }
}

/// The offset of `role`'s owner word.
fn owner_off(role: Role) -> usize {
    offset(
        match role {
            Role::Producer => PRODUCER_BLOCK,
            Role::Consumer => CONSUMER_BLOCK,
        } + BLOCK_OWNER,
    )
}

/// Clears `role`'s owner word if it still names endpoint `tag` of generation `gen` (a clean
/// detach, and the repair for a dead SPSC endpoint; idempotent).
pub(crate) fn clear_owner(mem: &RawMem, role: Role, tag: u64, gen: u16) {
    // O2: Release; pairs with the next claimant's Acquire CAS (O1 in `claim_owner`); for a
    // clean detach it publishes the endpoint's last position stores. (A dead holder's last
    // stores are not ordered by it: its successor validates positions and walks record headers
    // with Acquire loads of its own, see `ProducerCore::attach`.) Relaxed on failure: someone
    // else's word, leave it.
    // SAFETY: the owner words are 4-aligned inside the first page, which `mem` holds.
    let _ = unsafe {
        mem.compare_exchange_u32(
            owner_off(role),
            OwnerWord { tag, gen }.encode(),
            0,
            Ordering::Release,
            Ordering::Relaxed,
        )
    };
}

/// Makes `reg` the ring's one endpoint of its role: claims the owner word, reaping a dead
/// owner first (takeover). Bounded: a few retries when the owner word changes under us, and up
/// to about a second while a live reaper (or the holder itself, detaching) finishes.
pub(crate) fn claim_owner<K: Kind>(
    ring: &Shared<K>,
    reg: &Registration,
) -> std::result::Result<(), u32> {
    let role = reg.role();
    let mine = OwnerWord {
        tag: reg.tag(),
        gen: reg.gen(),
    }
    .encode();
    let os = Os::new(&ring.seg);
    let waited = Instant::now();
    for _ in 0..64 {
        // O1: Acquire on success; pairs with the Release CAS to 0 (O2, `clear_owner`), so the
        // previous endpoint's last position store is visible to our attach. Relaxed on
        // failure: we judge the holder next.
        // SAFETY: the owner word is 4-aligned inside the first page, which `mem` holds.
        let claimed = unsafe {
            ring.mem.compare_exchange_u32(
                owner_off(role),
                0,
                mine,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
        };
        let Err(holder) = claimed else {
            return Ok(());
        };
        let owner = OwnerWord::decode(holder);
        // SAFETY: `mem` holds the endpoint table.
        let judged = unsafe {
            reg.reap_owner(&ring.mem, &os, owner.tag, owner.gen, &mut |t, g, r| {
                clear_owner(&ring.mem, r, t, g);
            })
        };
        match judged {
            Owner::Alive(pid) => return Err(pid),
            Owner::BeingReaped => {
                if waited.elapsed() > Duration::from_secs(1) {
                    return Err(0);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Owner::Gone => {
                // The holder is gone (reaped now, or its word names no live entry): clear the
                // word if it still holds that value (O3: Release, as O2; Relaxed on failure),
                // and try again (the retry's O1 orders).
                // SAFETY: as above.
                let _ = unsafe {
                    ring.mem.compare_exchange_u32(
                        owner_off(role),
                        holder,
                        0,
                        Ordering::Release,
                        Ordering::Relaxed,
                    )
                };
            }
        }
    }
    Err(0)
}

impl Kind for Spsc {
    type Config = SpscConfig;
}

impl KindImpl for Spsc {
    const RING_KIND: RingKind = RingKind::Spsc;

    fn sized_for(messages: u64, max_message: u64) -> Result<SpscConfig> {
        // Room for `messages` records of the largest size, plus one more for the padding a
        // wrap may cost, plus the zero-ahead word; a power of two.
        // An aligned ring's large records may each need a skip record before them (below
        // `ALIGN_FROM` a bounded ring's producer never skips, D89: sizing for those skips would
        // double some rings for nothing a channel's packed sends use).
        let skip = if max_message >= ALIGN_FROM {
            HEADER_SIZE + MAX_SKIP_LEN
        } else {
            0
        };
        let bytes = (record_size(max_message) + skip)
            .checked_mul(messages.saturating_add(1))
            .and_then(|b| b.checked_add(HEADER_SIZE))
            .and_then(u64::checked_next_power_of_two)
            .filter(|b| *b <= MAX_CAPACITY)
            .ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "{messages} messages of {max_message} bytes need more than the 1 TiB an \
                     SPSC ring can hold"
                ))
            })?;
        Ok(SpscConfig::new(bytes.max(MIN_CAPACITY)).max_record(max_message))
    }
    const NAME: &'static str = "SpscRing";
    type Geometry = Geometry;
    type WriteCore = ProducerCore<RawMem>;
    type ReadCore = ConsumerCore<RawMem>;

    fn lay_out(mem: &RawMem, config: &SpscConfig) -> Result<(Shape, Geometry)> {
        let (cap, max) = config.checked()?;
        let g = Geometry::for_segment(
            cap,
            max,
            crate::ring::sealed::ConfigImpl::header_identity(config).1,
            config.limit.unwrap_or(0),
        );
        // The word at position 0 is where the first record's header goes: it must read 0
        // (the zero-ahead invariant), so make sure of it rather than trust the fresh object.
        // Relaxed: published by the handshake (H1).
        // SAFETY: the data region starts at an aligned offset inside `mem`.
        unsafe { mem.store(g.words.data, 0, Ordering::Relaxed) };
        // The control blocks and data are zero in a fresh segment (and `publish` zeroes the
        // first page again): head = tail = 0, no owners, every header word empty.
        let shape = Shape {
            capacity: cap,
            record_limit: max,
            data_len: cap,
            kind_word: 0,
        };
        Ok((shape, g))
    }

    fn open(seg: &Segment, h: &SegmentHeader) -> Result<Geometry> {
        let bad = bad_field(seg);
        let cap = h.capacity;
        if !cap.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&cap) {
            return Err(bad(
                "capacity",
                cap,
                format!("an SPSC capacity is a power of two from {MIN_CAPACITY} to {MAX_CAPACITY}"),
            ));
        }
        // `open_header` checked `total_len` against the object's size (at least one page); the
        // saturation keeps this check total for any header.
        let room = h.total_len.saturating_sub(DATA_OFFSET);
        if cap > room {
            return Err(bad(
                "capacity",
                cap,
                format!(
                    "only {} data bytes fit in the {}-byte object",
                    room, h.total_len
                ),
            ));
        }
        crate::handshake::check_records(seg, h, "an SPSC", largest_record(cap))?;
        // `open_header` checked `message_limit` is nonzero exactly for a bounded ring.
        if h.message_limit > max_messages(cap) {
            return Err(bad(
                "message_limit",
                h.message_limit,
                format!(
                    "an SPSC ring of {cap} bytes holds at most {} records",
                    max_messages(cap)
                ),
            ));
        }
        Ok(Geometry::for_segment(
            cap,
            h.record_limit,
            h.ring_flags,
            h.message_limit,
        ))
    }

    fn max_message(g: &Geometry) -> usize {
        offset(g.max_record)
    }

    fn capacity(g: &Geometry) -> Option<u64> {
        (g.limit != 0).then_some(g.limit)
    }

    fn len(mem: &RawMem, g: &Geometry) -> Option<u64> {
        if g.limit == 0 {
            return None;
        }
        // C5: Relaxed, both: a snapshot for observers. `taken` first: read the other way, a
        // message consumed between the two loads would make `sent − taken` one too small.
        // SAFETY: the count words are in the first page, which `mem` holds.
        let taken = unsafe { mem.load(g.counts.1, Ordering::Relaxed) };
        // SAFETY: as above.
        let sent = unsafe { mem.load(g.counts.0, Ordering::Relaxed) };
        Some(sent.saturating_sub(taken).min(g.limit))
    }

    fn register(ring: &Shared<Spsc>, role: Role) -> Result<Registration> {
        let mut reg = ring.register(role)?;
        match claim_owner(ring, &reg) {
            Ok(()) => Ok(reg),
            Err(pid) => {
                ring.unregister(&mut reg, 0);
                Err(Error::AlreadyAttached {
                    target: ring.seg.target(),
                    role,
                    pid,
                })
            }
        }
    }

    fn detach(ring: &Shared<Spsc>, reg: &Registration) {
        clear_owner(&ring.mem, reg.role(), reg.tag(), reg.gen());
    }

    fn repair(ring: &Shared<Spsc>, tag: u64, gen: u16, role: Role) {
        clear_owner(&ring.mem, role, tag, gen);
    }

    fn writer(
        ring: &Shared<Spsc>,
        _reg: &Registration,
    ) -> Result<ProducerCore<RawMem>, Corruption> {
        // SAFETY: the geometry was validated against the segment's size at create/open, and
        // `mem` is the whole segment.
        unsafe { ProducerCore::attach(ring.mem, ring.g) }
    }

    fn reader(
        ring: &Shared<Spsc>,
        _reg: &Registration,
    ) -> Result<ConsumerCore<RawMem>, Corruption> {
        // SAFETY: as in `writer`.
        unsafe { ConsumerCore::attach(ring.mem, ring.g) }
    }
}

impl Ring<Spsc> {
    /// Data capacity in bytes (the message capacity, if the ring has a bound, is
    /// [`Ring::capacity`]).
    pub fn data_capacity(&self) -> u64 {
        self.inner.g.cap
    }

    /// The largest record payload, in bytes (the same as [`Ring::max_message`]).
    pub fn max_record(&self) -> usize {
        self.max_message()
    }

    /// Bytes committed and not yet consumed, from the published positions (a racy snapshot,
    /// for monitoring; `None` if the positions are inconsistent). The producer publishes `tail`
    /// just after a record, so the consumer's `head` may briefly be ahead: that reads as 0.
    pub fn used_bytes(&self) -> Option<u64> {
        let g = &self.inner.g;
        // S4: Relaxed: a monitoring snapshot (Relaxed loads are also what a read-only map allows).
        // SAFETY: both positions are aligned control words in the first page, held by `mem`.
        let (t, h) = unsafe {
            (
                self.inner.mem.load(g.words.tail, Ordering::Relaxed),
                self.inner.mem.load(g.words.head, Ordering::Relaxed),
            )
        };
        if h > t {
            return (h - t <= g.cap).then_some(0);
        }
        Some(t - h).filter(|u| *u <= g.cap)
    }
}
