//! The broadcast ring in a segment: its geometry, checked at create and open; the publisher's
//! owner word (one publisher, taken over when it died, as SPSC's); the subscribers' cursors,
//! cleared when one leaves or is reaped; and the broadcast-only endpoint calls.

use super::aux::{
    CURSOR_FLAGS, CURSOR_LAPPED, CURSOR_POSITION, EJECTIONS, FLAG_CONFIRMED, FLAG_EJECTED,
    FLAG_TETHERED, HIST_HEAD,
};
use super::frame::Geometry;
use super::publisher::PublisherCore;
use super::subscriber::{leave, Mode, SubscriberCore};
use super::{
    aux_len, largest_record, Broadcast, BroadcastConfig, SlowSubscribers, Subscription,
    MAX_CAPACITY, MAX_HISTORY, MIN_CAPACITY,
};
use crate::conv::offset;
use crate::endpoint::{Consumer, Producer, Role};
use crate::error::{Corruption, Error, Result};
use crate::handshake::bad_field;
use crate::layout::{
    RingKind, SegmentHeader, DATA_OFFSET, MAX_ENDPOINTS, RING_FLAG_BOUNDED, RING_FLAG_NOTIFY,
};
use crate::liveness::Registration;
use crate::ring::sealed::{ConfigImpl, KindImpl};
use crate::ring::{Kind, Ring, Shape, Shared, Words};
use crate::segment::Segment;
use crate::spsc::ring::{claim_owner, clear_owner};
use crate::sync::{Memory, Ordering, RawMem};

impl Geometry {
    fn for_segment(cap: u64, max_record: u64, flags: u32, history: u64) -> Self {
        Geometry {
            words: Words::segment(flags),
            cap,
            shift: cap.trailing_zeros(),
            max_record,
            aux: offset(DATA_OFFSET + cap),
            history,
            hist_at: offset(DATA_OFFSET + cap + super::aux::HISTORY),
            hist_len: super::index_len(history),
        }
    }
}

impl ConfigImpl for BroadcastConfig {
    fn checked_len(&self) -> Result<u64> {
        self.checked()?;
        Ok(self.segment_len())
    }

    fn with_identity(self, identity: crate::Identity, notify: bool) -> Self {
        self.identity(identity).notify(notify)
    }

    fn header_identity(&self) -> (crate::Identity, u32) {
        let mut flags = 0;
        if self.notify {
            flags |= RING_FLAG_NOTIFY;
            if self.membarrier {
                flags |= crate::layout::RING_FLAG_MEMBARRIER;
            }
        }
        if self.checksum {
            flags |= crate::layout::RING_FLAG_CHECKSUM;
        }
        (self.identity, flags)
    }

    fn with_checksum(self, yes: bool) -> Self {
        self.checksum(yes)
    }

    fn with_limit(mut self, messages: u64) -> Self {
        // Refused by `checked`: a broadcast ring has no message bound.
        self.limit = Some(messages);
        self
    }

    fn with_info(self, info: crate::info::Info) -> Self {
        self.info(info)
    }

    fn extras(&self) -> (u64, Option<&crate::info::Info>) {
        (0, self.info.as_ref())
    }
}

impl Kind for Broadcast {
    type Config = BroadcastConfig;
}

impl KindImpl for Broadcast {
    const RING_KIND: RingKind = RingKind::Broadcast;
    const NAME: &'static str = "BroadcastRing";
    const PRODUCER_NEEDS_CONSUMERS: bool = false;
    const LOSSY_READS: bool = true;
    type Geometry = Geometry;
    type WriteCore = PublisherCore<RawMem>;
    type ReadCore = SubscriberCore<RawMem>;

    fn sized_for(messages: u64, max_message: u64) -> Result<BroadcastConfig> {
        let record = crate::frame::record_size(max_message);
        let bytes = record
            .checked_mul(messages.saturating_add(1))
            .and_then(|b| b.checked_add(crate::frame::HEADER_SIZE))
            // A record takes at most half the ring (`largest_record`).
            .and_then(|b| {
                b.max(2 * (record + crate::frame::HEADER_SIZE))
                    .checked_next_power_of_two()
            })
            .filter(|b| *b <= MAX_CAPACITY)
            .ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "{messages} messages of {max_message} bytes need more than the 1 TiB a \
                     broadcast ring can hold"
                ))
            })?;
        Ok(BroadcastConfig::new(bytes.max(MIN_CAPACITY)).max_record(max_message))
    }

    fn aux_len(g: &Geometry) -> u64 {
        aux_len(u32::try_from(g.history).unwrap_or(MAX_HISTORY))
    }

    fn lay_out(mem: &RawMem, config: &BroadcastConfig) -> Result<(Shape, Geometry)> {
        let (cap, max) = config.checked()?;
        let flags = ConfigImpl::header_identity(config).1;
        let g = Geometry::for_segment(cap, max, flags, u64::from(config.history));
        // The first header word must read 0 (the zero-ahead invariant); the rest of a fresh
        // segment is zero: no cursor, no history, intent and counts 0. Relaxed: published
        // by the handshake (H1).
        // SAFETY: the data region starts at an aligned offset inside `mem`.
        unsafe { mem.store(g.words.data, 0, Ordering::Relaxed) };
        let shape = Shape {
            capacity: cap,
            record_limit: max,
            data_len: cap,
            kind_word: config.history,
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
                format!(
                    "a broadcast capacity is a power of two from {MIN_CAPACITY} to {MAX_CAPACITY}"
                ),
            ));
        }
        let history = h.reserved_u32;
        if !history.is_power_of_two() || history > MAX_HISTORY {
            return Err(bad(
                "history",
                u64::from(history),
                format!("a broadcast history is a power of two from 1 to {MAX_HISTORY}"),
            ));
        }
        let need = DATA_OFFSET + cap + aux_len(history);
        if need > h.total_len {
            return Err(bad(
                "capacity",
                cap,
                format!(
                    "the data and the auxiliary region need {need} bytes, the object has {}",
                    h.total_len
                ),
            ));
        }
        crate::handshake::check_records(seg, h, "a broadcast", largest_record(cap))?;
        if h.ring_flags & RING_FLAG_BOUNDED != 0 || h.message_limit != 0 {
            return Err(bad(
                "message_limit",
                h.message_limit,
                "a broadcast ring has no message bound".into(),
            ));
        }
        if h.info_len != 0 && h.info_offset < need {
            return Err(bad(
                "info_offset",
                h.info_offset,
                format!("the info region overlaps the auxiliary region, which ends at {need}"),
            ));
        }
        Ok(Geometry::for_segment(
            cap,
            h.record_limit,
            h.ring_flags,
            u64::from(history),
        ))
    }

    fn max_message(g: &Geometry) -> usize {
        offset(g.max_record)
    }

    fn capacity(_g: &Geometry) -> Option<u64> {
        None
    }

    fn len(_mem: &RawMem, _g: &Geometry) -> Option<u64> {
        None
    }

    fn register(ring: &Shared<Broadcast>, role: Role) -> Result<Registration> {
        let mut reg = ring.register(role)?;
        if role == Role::Consumer {
            return Ok(reg);
        }
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

    fn detach(ring: &Shared<Broadcast>, reg: &Registration) {
        Self::repair(ring, reg.tag(), reg.gen(), reg.role());
    }

    fn repair(ring: &Shared<Broadcast>, tag: u64, gen: u16, role: Role) {
        match role {
            Role::Producer => clear_owner(&ring.mem, role, tag, gen),
            Role::Consumer if (1..=MAX_ENDPOINTS).contains(&tag) => {
                // SAFETY: the geometry was validated against the segment's size; the index is
                // below 55.
                unsafe { leave(&ring.mem, &ring.g, tag - 1) };
            }
            Role::Consumer => {}
        }
    }

    fn writer(
        ring: &Shared<Broadcast>,
        _reg: &Registration,
    ) -> Result<PublisherCore<RawMem>, Corruption> {
        // SAFETY: the geometry was validated against the segment's size at create/open, and
        // `mem` is the whole segment.
        unsafe { PublisherCore::attach(ring.mem, ring.g) }
    }

    fn reader(
        ring: &Shared<Broadcast>,
        reg: &Registration,
    ) -> Result<SubscriberCore<RawMem>, Corruption> {
        Ok(subscribe(ring, reg, &Subscription::default()))
    }
}

/// A subscriber's core for registration `reg`.
fn subscribe(
    ring: &Shared<Broadcast>,
    reg: &Registration,
    how: &Subscription,
) -> SubscriberCore<RawMem> {
    // SAFETY: as in `writer`; a registration's tag is 1..=55.
    unsafe { SubscriberCore::join(ring.mem, ring.g, reg.tag() - 1, how.tethered, how.start) }
}

/// What [`Ring::subscribers`] reports of one subscriber (a snapshot of its cursor line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriberInfo {
    /// Its endpoint tag (entry index + 1).
    pub tag: u64,
    /// Its position (the next byte it reads).
    pub position: u64,
    /// Bytes between its position and the publisher's tail.
    pub lag_bytes: u64,
    /// Whether it is tethered (it gates the publisher once confirmed).
    pub tethered: bool,
    /// Whether the publisher has accounted for it (it left probation).
    pub confirmed: bool,
    /// Whether a publisher ejected it.
    pub ejected: bool,
    /// How many times it was lapped.
    pub lapped: u64,
}

impl Ring<Broadcast> {
    /// Attaches a subscriber: tethered or not, starting where `how` says.
    ///
    /// # Errors
    ///
    /// As [`Ring::consumer`] (which is `subscriber(&Subscription::default())`: tethered, from
    /// the next record).
    pub fn subscriber(&self, how: &Subscription) -> Result<Consumer<Broadcast>> {
        let how = *how;
        Consumer::attach_with(self.clone(), move |ring, reg| {
            Ok(subscribe(&ring.inner, reg, &how))
        })
    }

    /// Data capacity in bytes.
    pub fn data_capacity(&self) -> u64 {
        self.inner.g.cap
    }

    /// How many history entries the ring keeps.
    pub fn history_len(&self) -> u64 {
        self.inner.g.history
    }

    /// Data records published so far (a snapshot).
    pub fn published(&self) -> u64 {
        // SAFETY: an aux word of the validated geometry. Relaxed: a snapshot.
        unsafe {
            self.inner
                .mem
                .load(self.inner.g.aux(HIST_HEAD), Ordering::Relaxed)
        }
    }

    /// How many subscribers publishers of this ring have ejected (a snapshot).
    pub fn ejections(&self) -> u64 {
        // SAFETY: as in `published`.
        unsafe {
            self.inner
                .mem
                .load(self.inner.g.aux(EJECTIONS), Ordering::Relaxed)
        }
    }

    /// The attached subscribers, from their cursor lines (a snapshot).
    pub fn subscribers(&self) -> Vec<SubscriberInfo> {
        let (mem, g) = (&self.inner.mem, &self.inner.g);
        // SAFETY: control words, the roster and cursor lines of entries below 55 are in the
        // validated segment. Relaxed: a snapshot for observers.
        let (tail, roster) = unsafe {
            (
                mem.load(g.words.tail, Ordering::Relaxed),
                mem.load(
                    offset(crate::layout::ROSTER + crate::layout::ROSTER_CONSUMERS),
                    Ordering::Relaxed,
                ),
            )
        };
        (0..MAX_ENDPOINTS)
            .filter(|i| roster & (1 << i) != 0)
            .map(|i| {
                // SAFETY: as above.
                let (position, flags, lapped) = unsafe {
                    (
                        mem.load(g.cursor(i, CURSOR_POSITION), Ordering::Relaxed),
                        mem.load(g.cursor(i, CURSOR_FLAGS), Ordering::Relaxed),
                        mem.load(g.cursor(i, CURSOR_LAPPED), Ordering::Relaxed),
                    )
                };
                SubscriberInfo {
                    tag: i + 1,
                    position,
                    lag_bytes: tail.saturating_sub(position),
                    tethered: flags & FLAG_TETHERED != 0,
                    confirmed: flags & FLAG_CONFIRMED != 0,
                    ejected: flags & FLAG_EJECTED != 0,
                    lapped,
                }
            })
            .collect()
    }
}

impl Producer<Broadcast> {
    /// What this publisher does when a tethered subscriber leaves it no room (default
    /// [`SlowSubscribers::Block`]).
    ///
    /// ```
    /// use shmbus_ring::broadcast::{BroadcastConfig, BroadcastRing, SlowSubscribers};
    /// use shmbus_ring::PopError;
    /// use std::time::Duration;
    /// let ring = BroadcastRing::in_heap(&BroadcastConfig::new(4096).max_record(1024))?;
    /// let mut publisher = ring.producer()?;
    /// publisher.set_slow_subscribers(SlowSubscribers::Untether { after: Duration::ZERO });
    /// let mut slow = ring.consumer()?;
    /// for _ in 0..10 {
    ///     publisher.try_push(&[7; 1000])?; // never full: the slow subscriber is ejected
    /// }
    /// let mut buf = [0u8; 1024];
    /// assert_eq!(slow.try_pop(&mut buf), Err(PopError::Ejected));
    /// assert!(matches!(slow.try_pop(&mut buf), Err(PopError::Lagged { .. })));
    /// assert_eq!(ring.ejections(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_slow_subscribers(&mut self, policy: SlowSubscribers) {
        self.core.policy = policy;
    }

    /// The policy for slow subscribers.
    pub fn slow_subscribers(&self) -> SlowSubscribers {
        self.core.policy
    }
}

impl Consumer<Broadcast> {
    /// Whether this subscriber is tethered (lossless): asked for at subscribe time, and not
    /// ejected since.
    pub fn is_tethered(&self) -> bool {
        self.core.mode != Mode::Untethered
    }

    /// Whether the publisher has accounted for this tethered subscriber: from then on it
    /// reads without validating each record.
    pub fn is_confirmed(&self) -> bool {
        self.core.mode == Mode::Confirmed
    }

    /// How many times this subscriber was lapped ([`PopError::Lagged`](crate::PopError)).
    pub fn lapped_count(&self) -> u64 {
        self.core.lapped
    }

    /// The sequence number of the next message it reads: how many data records the ring's
    /// publishers had published before it.
    pub fn sequence(&self) -> u64 {
        self.core.cursor().1
    }

    /// Joins again, tethered, where it is: after an ejection, or to make an untethered
    /// subscriber lossless from now on. It skips and repeats nothing; if the publisher wrote
    /// over its position before the gate held it again, its next read is
    /// [`PopError::Lagged`](crate::PopError) and it goes on from the latest record. Returns
    /// how many messages it skipped: 0 (kept for symmetry with the typed subscriber).
    pub fn retether(&mut self) -> u64 {
        let before = self.core.cursor().1;
        self.core.retether();
        self.core.cursor().1.saturating_sub(before)
    }
}
