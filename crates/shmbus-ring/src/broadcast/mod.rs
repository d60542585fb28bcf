//! The broadcast record ring: one publisher, any number of subscribers, every subscriber
//! reading every record, each record written once (PROTOCOL §8).
//!
//! # Protocol
//!
//! Records are the SPSC ring's (PROTOCOL §4.2: an 8-byte header word, the payload padded to 8
//! bytes, a padding record at the wrap, the zero-ahead store), with the header word carrying
//! the record's *lap* in its top 24 bits ([`frame`]), so that a reader at position `p`
//! recognises a word written for another lap.
//!
//! Every subscriber keeps its own position in a *cursor line* of the auxiliary region after
//! the data, indexed by its endpoint entry. A subscriber is one of:
//!
//! - **tethered** (lossless, the default): the publisher never writes over bytes a tethered
//!   subscriber has not read. Its position gates the publisher as `head` gates an SPSC
//!   producer; a full ring waits (or, under [`SlowSubscribers::Untether`], the publisher
//!   ejects the subscriber that gates it, which then reads on untethered and is told with
//!   [`PopError::Ejected`](crate::PopError::Ejected)).
//! - **untethered** (lossy, never slows the publisher): it copies a record, then checks the
//!   publisher's *intent* (the highest position it may have begun writing) to see that the
//!   bytes were not overwritten while it copied — Agrona's broadcast receiver. If they were,
//!   it returns [`PopError::Lagged`](crate::PopError::Lagged) with the number of messages it
//!   missed and resumes at the latest record.
//!
//! A joining subscriber picks its start ([`StartAt`]) from the *history index*, the positions
//! of the last `H` data records, with no action by the publisher. A tethered joiner is on
//! probation — it validates like an untethered one — until the publisher has seen it (the
//! roster generation it joined at is the one the publisher last gated with), then checks once
//! more that nothing it has yet to read was overwritten, and reads like an SPSC consumer.
//!
//! # Files
//!
//! - `publisher.rs`: the publisher's half (gate, intent, history);
//! - `subscriber.rs`: the subscriber's half (join, probation, copy-and-validate, ejection);
//! - `ring.rs`: the ring in a segment: geometry checks, the publisher's owner word, cursor
//!   repair, and the broadcast-only endpoint calls.

pub(crate) mod frame;
pub(crate) mod publisher;
mod ring;
pub(crate) mod subscriber;

use crate::conv::wide;
use crate::error::{Error, Result};
use crate::frame::HEADER_SIZE;
use crate::layout::{Identity, CHECKSUM_LEN, DATA_OFFSET, MAX_ENDPOINTS};
use std::time::Duration;

pub use ring::SubscriberInfo;

/// The broadcast ring kind: one publisher, many subscribers, each seeing every record. A type
/// parameter of [`Ring`](crate::Ring), [`Producer`](crate::Producer) (the publisher) and
/// [`Consumer`](crate::Consumer) (a subscriber).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Broadcast;

/// A broadcast ring in a segment.
pub type BroadcastRing = crate::Ring<Broadcast>;

/// The smallest data capacity of a broadcast ring, in bytes (a page: the auxiliary region
/// after the data stays page-aligned).
pub const MIN_CAPACITY: u64 = 4096;
/// The largest data capacity of a broadcast ring, in bytes (1 TiB).
pub const MAX_CAPACITY: u64 = 1 << 40;
/// The most history entries a ring may keep.
pub const MAX_HISTORY: u32 = 1 << 20;
/// The default number of history entries.
pub const DEFAULT_HISTORY: u32 = 64;

/// Positions stay below 2^62, as in SPSC; a larger value read from shared memory is
/// corruption.
pub(crate) const MAX_POSITION: u64 = 1 << 62;

/// Offsets inside the auxiliary region (PROTOCOL §8.1), relative to its start
/// (`DATA_OFFSET + capacity`).
pub mod aux {
    /// The publisher's line: its intent (`u64`), stored before it writes: it may have written
    /// at every position below the intent, so a byte read at position `p` is intact when the
    /// intent loaded after the read is at most `p + capacity`.
    pub const INTENT: u64 = 0;
    /// The publisher's line: the number of data records ever published (`u64`), which indexes
    /// the history.
    pub const HIST_HEAD: u64 = 8;
    /// The publisher's line: the roster generation its gate last accounted for (`u64`).
    pub const SEEN_GEN: u64 = 16;
    /// The publisher's line: the position that gated it at its last rescan, `u64::MAX` when no
    /// tethered subscriber did (`u64`, informational).
    pub const GATE: u64 = 24;
    /// The publisher's line: how many subscribers publishers of this ring have ejected
    /// (`u64`, informational).
    pub const EJECTIONS: u64 = 32;
    /// The roster line: the roster generation (`u64`), bumped by every join, leave, ejection
    /// and repair of a subscriber.
    pub const GEN: u64 = 128;
    /// The roster line: bit `i` set while subscriber entry `i` is tethered (`u64`).
    pub const TETHERED: u64 = 136;
    /// The first cursor line; line `i` belongs to endpoint entry `i`.
    pub const CURSORS: u64 = 256;
    /// The size of a cursor line: two cache lines, so neighbours do not share a prefetch
    /// pair.
    pub const CURSOR_SIZE: u64 = 128;
    /// Within a cursor line: the subscriber's position (`u64`, stored by it with Release).
    pub const CURSOR_POSITION: u64 = 0;
    /// Within a cursor line: its flags (`u64`: [`FLAG_TETHERED`], [`FLAG_CONFIRMED`],
    /// [`FLAG_EJECTED`]).
    pub const CURSOR_FLAGS: u64 = 8;
    /// Within a cursor line: the roster generation the subscriber joined at (`u64`).
    pub const CURSOR_JOINED: u64 = 16;
    /// Within a cursor line: how many times it was lapped (`u64`, informational).
    pub const CURSOR_LAPPED: u64 = 24;
    /// Cursor flag: the publisher must not overwrite what this subscriber has not read.
    pub const FLAG_TETHERED: u64 = 1;
    /// Cursor flag: the publisher has accounted for this tethered subscriber (it left
    /// probation).
    pub const FLAG_CONFIRMED: u64 = 2;
    /// Cursor flag: the publisher ejected this subscriber (it had been tethered).
    pub const FLAG_EJECTED: u64 = 4;
    /// The history index: `E = max(2H, 64)` little-endian `u64` record positions, entry
    /// `n & (E − 1)` holding the position of data record `n`.
    pub const HISTORY: u64 = 8192;
}

const _: () = assert!(aux::CURSORS + MAX_ENDPOINTS * aux::CURSOR_SIZE <= aux::HISTORY);

/// The length of the auxiliary region for a history of `history` records: the two pages of
/// lines, then the history index of `max(2 × history, 64)` entries (a reader can trust an entry only
/// while fewer records than the index holds were published after it, and one may be being
/// published: twice the history keeps the last `history` records always readable), rounded up
/// to a page.
pub(crate) fn aux_len(history: u32) -> u64 {
    (aux::HISTORY + 8 * index_len(u64::from(history))).next_multiple_of(4096)
}

/// The entries of the history index for a history of `history` records: twice as many, and
/// at least 64 (so that a join finds the latest record's entry even under a publisher that
/// publishes dozens of records between two of its loads).
pub(crate) fn index_len(history: u64) -> u64 {
    (2 * history).max(64)
}

/// Where a subscriber starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    /// With the next record published after it joined.
    #[default]
    Next,
    /// With the latest record published before it joined (if any), then what follows.
    Latest,
    /// With the last `n` records published before it joined, as far as the ring still holds
    /// them and the history index reaches.
    History(u32),
    /// With the oldest record the ring still holds (and the history index reaches).
    Oldest,
}

/// How a subscriber reads: [`Subscription::tethered`] or [`Subscription::untethered`], and
/// where it starts.
///
/// ```
/// use shmbus_ring::broadcast::{BroadcastConfig, BroadcastRing, StartAt, Subscription};
/// let ring = BroadcastRing::in_heap(&BroadcastConfig::new(1 << 12))?;
/// let mut publisher = ring.producer()?;
/// publisher.try_push(b"before")?;
/// let mut late = ring.subscriber(&Subscription::tethered().start_at(StartAt::Latest))?;
/// let mut lossy = ring.subscriber(&Subscription::untethered())?;
/// publisher.try_push(b"after")?;
/// let mut buf = [0u8; 64];
/// let n = late.try_pop(&mut buf)?;
/// assert_eq!(&buf[..n], b"before");
/// let n = lossy.try_pop(&mut buf)?;
/// assert_eq!(&buf[..n], b"after");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    pub(crate) tethered: bool,
    pub(crate) start: StartAt,
}

impl Default for Subscription {
    fn default() -> Self {
        Subscription::tethered()
    }
}

impl Subscription {
    /// A lossless subscriber: the publisher does not write over what it has not read.
    pub fn tethered() -> Self {
        Subscription {
            tethered: true,
            start: StartAt::Next,
        }
    }

    /// A lossy subscriber that never slows the publisher: it reports
    /// [`PopError::Lagged`](crate::PopError::Lagged) when it was overtaken.
    pub fn untethered() -> Self {
        Subscription {
            tethered: false,
            start: StartAt::Next,
        }
    }

    /// Where to start (default [`StartAt::Next`]).
    pub fn start_at(mut self, start: StartAt) -> Self {
        self.start = start;
        self
    }

    /// Whether the subscription is tethered.
    pub fn is_tethered(&self) -> bool {
        self.tethered
    }

    /// Where it starts.
    pub fn start(&self) -> StartAt {
        self.start
    }
}

/// What a publisher does when a tethered subscriber leaves it no room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlowSubscribers {
    /// Wait for it (the default): a push is `Full`, a blocking push waits, bounded by its
    /// deadline. A subscriber whose process died stops gating within a probe interval.
    #[default]
    Block,
    /// Wait at most `after` for room, then eject the subscribers that gate the push: they
    /// read on untethered, are told with [`PopError::Ejected`](crate::PopError::Ejected), and
    /// are counted in the ring. `Duration::ZERO` never waits: tethering then only means
    /// "lossless while you keep up".
    Untether {
        /// How long a push may find the ring full before it ejects.
        after: Duration,
    },
}

/// The geometry and identity of a new broadcast ring.
///
/// ```
/// use shmbus_ring::broadcast::BroadcastConfig;
/// let cfg = BroadcastConfig::new(1 << 16).max_record(4096).history(128);
/// // The first page, the data, then cursors and a history index of 2 × 128 entries.
/// assert_eq!(cfg.segment_len(), 4096 + (1 << 16) + 8192 + 4096);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BroadcastConfig {
    capacity: u64,
    max_record: Option<u64>,
    pub(crate) history: u32,
    pub(crate) identity: Identity,
    pub(crate) notify: bool,
    pub(crate) checksum: bool,
    pub(crate) limit: Option<u64>,
    pub(crate) info: Option<crate::info::Info>,
    pub(crate) membarrier: bool,
}

impl BroadcastConfig {
    /// A ring with `capacity` bytes of record space (a power of two, 4 KiB to 1 TiB), records
    /// of up to `capacity / 2 − 16` bytes unless [`max_record`](Self::max_record) says less, and
    /// [`DEFAULT_HISTORY`] history entries.
    pub fn new(capacity: u64) -> Self {
        BroadcastConfig {
            capacity,
            max_record: None,
            history: DEFAULT_HISTORY,
            identity: Identity::default(),
            notify: true,
            checksum: false,
            limit: None,
            info: None,
            membarrier: true,
        }
    }

    /// Whether the ring's wake-ups use membarrier mode (default `true`), as
    /// [`SpscConfig::membarrier`](crate::SpscConfig::membarrier).
    pub fn membarrier(mut self, yes: bool) -> Self {
        self.membarrier = yes;
        self
    }

    /// The largest record payload (at most `capacity / 2 − 16`; on a checksum ring it includes
    /// the 4-byte trailer).
    pub fn max_record(mut self, max: u64) -> Self {
        self.max_record = Some(max);
        self
    }

    /// How many of the latest records a joining subscriber can ask for ([`StartAt`]): a
    /// power of two from 1 to [`MAX_HISTORY`] (default [`DEFAULT_HISTORY`]). Costs 8 bytes
    /// each; the ring's capacity bounds what is still there to read.
    pub fn history(mut self, entries: u32) -> Self {
        self.history = entries;
        self
    }

    /// Whether endpoints wake sleepers (default `true`), as
    /// [`SpscConfig::notify`](crate::SpscConfig::notify).
    pub fn notify(mut self, yes: bool) -> Self {
        self.notify = yes;
        self
    }

    /// Whether every message carries a CRC32C trailer (default `false`), as
    /// [`SpscConfig::checksum`](crate::SpscConfig::checksum).
    pub fn checksum(mut self, yes: bool) -> Self {
        self.checksum = yes;
        self
    }

    /// The type fingerprint and codec id written into the header.
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = identity;
        self
    }

    /// An info region describing what the ring carries ([`crate::info`]).
    pub fn info(mut self, info: crate::info::Info) -> Self {
        self.info = Some(info);
        self
    }

    /// The segment length this ring needs: the first page, the data, the auxiliary region
    /// (cursors and history), then the info region if there is one.
    pub fn segment_len(&self) -> u64 {
        DATA_OFFSET
            .saturating_add(self.capacity)
            .saturating_add(aux_len(self.history.min(MAX_HISTORY)))
            .saturating_add(self.info.as_ref().map_or(0, crate::info::Info::encoded_len))
    }

    /// Checks the geometry without allocating anything.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the value at fault.
    pub fn validate(&self) -> Result<()> {
        self.checked().map(|_| ())
    }

    pub(crate) fn checked(&self) -> Result<(u64, u64)> {
        let cap = self.capacity;
        if !cap.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&cap) {
            return Err(Error::InvalidConfig(format!(
                "broadcast capacity {cap} must be a power of two from {MIN_CAPACITY} to \
                 {MAX_CAPACITY}"
            )));
        }
        let limit = largest_record(cap);
        let max = self.max_record.unwrap_or(limit);
        if max > limit || max == 0 {
            return Err(Error::InvalidConfig(format!(
                "broadcast max_record {max} must be from 1 to capacity / 2 - 16 = {limit}"
            )));
        }
        if self.checksum && max < wide(CHECKSUM_LEN) {
            return Err(Error::InvalidConfig(format!(
                "broadcast max_record {max} cannot hold the {CHECKSUM_LEN}-byte checksum trailer"
            )));
        }
        if !self.history.is_power_of_two() || self.history > MAX_HISTORY {
            return Err(Error::InvalidConfig(format!(
                "broadcast history {} must be a power of two from 1 to {MAX_HISTORY}",
                self.history
            )));
        }
        if self.limit.is_some() {
            return Err(Error::InvalidConfig(
                "a broadcast ring has no message limit: each subscriber holds its own place".into(),
            ));
        }
        Ok((cap, max))
    }
}

/// The largest payload a ring of `cap` bytes can carry: a record (with its zero-ahead word)
/// takes at most half the ring, so that a padding record and the record after it fit in one
/// lap from the padding's start — a subscriber that has read everything never holds a push up
/// (DECISIONS D48) — and a header's length is 32 bits.
pub(crate) fn largest_record(cap: u64) -> u64 {
    (cap / 2 - 2 * HEADER_SIZE).min(u64::from(u32::MAX) & !7)
}
