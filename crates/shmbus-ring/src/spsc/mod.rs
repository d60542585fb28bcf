//! The SPSC record ring: one producer, one consumer, variable-size records.
//!
//! # Protocol
//!
//! Positions are free-running byte counters (`u64`, never wrapping in practice), masked by
//! `capacity - 1`. The producer owns `tail` (next byte to write), the consumer owns `head`
//! (next byte to read); each keeps its own position in process-local memory and publishes it
//! in its control block. A record is an 8-byte header word `{ len, kind }` and the payload,
//! padded to 8 bytes ([`crate::frame`]).
//!
//! A commit is published *through the record header itself*: the producer writes the payload,
//! then stores the header word with Release; the consumer polls the header word at `head` with
//! Acquire. So a small message crosses cores as one cache line, with no separate index to
//! fetch. For that to work, the word at `head` must read zero until the record there is
//! committed, even though earlier laps left bytes there. The producer keeps that invariant with
//! a *zero-ahead* store: before publishing a record that ends at position `e`, it zeroes the
//! word at `e`, where the next record's header will go. That word is free space (the producer
//! never lets `tail - head` exceed `capacity - 8`, so the word after the last record is never
//! unread data). Hence:
//!
//! > **Invariant.** The word at the producer's `tail` is zero whenever no record is being
//! > published; every word a consumer polls is either zero or the header of a record committed
//! > in the current lap.
//!
//! A record that would cross the end of the data region is preceded by a padding record that
//! fills the lap; it is published like any record (zero-ahead to offset 0, then its header).
//!
//! The consumer publishes `head` with Release after it has finished with a record; the
//! producer reads it with Acquire only when its cached copy says the ring may be full.
//!
//! Everything the consumer reads from the ring (header words) and everything the producer
//! reads (the consumer's `head`) is validated before use: a value another process scribbled
//! there yields [`Corruption`], never an out-of-bounds access.
//!
//! # Files
//!
//! - `core.rs`: the algorithm over [`Memory`](crate::sync) — the producer's and the
//!   consumer's halves;
//! - `ring.rs`: the ring in a segment — geometry checks at create and open, and the owner
//!   words that make each role single (O1–O2), with takeover of a dead owner.
//!
//! The endpoints are the generic [`Producer`](crate::Producer) and
//! [`Consumer`](crate::Consumer) (`endpoint.rs`), whose zero-copy views are documented there.

pub(crate) mod core;
pub(crate) mod ring;

use crate::conv::wide;
use crate::error::{Error, Result};
use crate::frame::HEADER_SIZE;
use crate::layout::{Identity, CHECKSUM_LEN, DATA_OFFSET};

/// The SPSC ring kind: one producer, one consumer, variable-size records. A type parameter of
/// [`Ring`](crate::Ring), [`Producer`](crate::Producer) and [`Consumer`](crate::Consumer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Spsc;

/// An SPSC ring in a segment.
pub type SpscRing = crate::Ring<Spsc>;

/// The smallest data capacity of an SPSC ring, in bytes.
pub const MIN_CAPACITY: u64 = 64;
/// The largest data capacity of an SPSC ring, in bytes (1 TiB).
pub const MAX_CAPACITY: u64 = 1 << 40;

/// Positions stay below 2^62 (a century of traffic at 1 TB/s), so sums never overflow; a
/// larger value read from shared memory is corruption.
pub(crate) const MAX_POSITION: u64 = 1 << 62;

/// The geometry and identity of a new SPSC ring.
///
/// ```
/// use shmbus_ring::SpscConfig;
/// let cfg = SpscConfig::new(1 << 16).max_record(4096);
/// assert_eq!(cfg.segment_len(), 4096 + (1 << 16));
/// ```
// Four independent switches, each one ring flag: a bit set would only rename them.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpscConfig {
    capacity: u64,
    max_record: Option<u64>,
    pub(crate) identity: Identity,
    pub(crate) notify: bool,
    pub(crate) checksum: bool,
    pub(crate) limit: Option<u64>,
    pub(crate) info: Option<crate::info::Info>,
    pub(crate) aligned: bool,
    pub(crate) membarrier: bool,
}

impl SpscConfig {
    /// A ring with `capacity` bytes of record space (a power of two, 64 B to 1 TiB); records
    /// of up to `capacity - 16` bytes unless [`max_record`](Self::max_record) says less.
    ///
    /// # What ring size buys
    ///
    /// A message takes `8 + len` bytes rounded up to 8 (plus up to 56 before a message of 256
    /// bytes or more on an [`aligned`](Self::aligned) ring, or of 192 bytes or more on one
    /// without a message bound whose record limit is 256 or more). The ring is the backlog a
    /// producer
    /// may run ahead of its consumer; what it buys beyond holding the largest burst depends on
    /// the machine: on an Intel Xeon VM a minimal ring streamed 1 KiB messages 2.5× faster
    /// with 1 MiB than with 64 KiB (more messages in flight hide more of each cache-line
    /// hand-off), on an AMD EPYC VM the two were within 10% at every size from 8 B to 64 KiB.
    /// Give a streaming ring at least 16 messages of the typical size, prefer 1 MiB where
    /// memory allows, and measure with `shmbus-bench --ring-bytes 64KiB,1MiB,4MiB`. The memory
    /// is committed at creation (DECISIONS D5), so a ring costs its size in every host it runs
    /// on, whether used or not. For messages of 4 KiB and more, where the buffers you push from
    /// and pop into sit in their pages matters as much as the ring: on the EPYC VM a 64 KiB
    /// ring streamed 4 KiB messages 15–20% slower with both buffers at page offsets 128–512
    /// than at 1024 and above (DECISIONS D75).
    pub fn new(capacity: u64) -> Self {
        SpscConfig {
            capacity,
            max_record: None,
            identity: Identity::default(),
            notify: true,
            checksum: false,
            limit: None,
            info: None,
            aligned: true,
            membarrier: true,
        }
    }

    /// At most `messages` messages in the ring at once, whatever their size (layout 1.2,
    /// [`RING_FLAG_BOUNDED`](crate::layout::RING_FLAG_BOUNDED)): a push beyond it is
    /// [`PushError::Full`](crate::PushError::Full) even when bytes are free. Both ends count
    /// messages in their control blocks. Without it (the default) only the bytes bound.
    ///
    /// ```
    /// use shmbus_ring::{PushError, SpscConfig, SpscRing};
    /// let ring = SpscRing::in_heap(&SpscConfig::new(4096).message_limit(2))?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// tx.try_push(b"a")?;
    /// tx.try_push(b"b")?;
    /// assert_eq!(tx.try_push(b"c"), Err(PushError::Full));
    /// assert_eq!((ring.len(), ring.capacity()), (Some(2), Some(2)));
    /// let mut buf = [0u8; 8];
    /// rx.try_pop(&mut buf)?;
    /// tx.try_push(b"c")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn message_limit(mut self, messages: u64) -> Self {
        self.limit = Some(messages);
        self
    }

    /// An info region describing what the ring carries ([`crate::info`]), written after the
    /// data; [`Ring::info`](crate::Ring::info) reads it back.
    pub fn info(mut self, info: crate::info::Info) -> Self {
        self.info = Some(info);
        self
    }

    /// Whether every message carries a CRC32C trailer (default `false`; layout 1.1,
    /// [`RING_FLAG_CHECKSUM`](crate::layout::RING_FLAG_CHECKSUM)): the producer writes it, the
    /// consumer verifies it, and a message whose bytes do not match is
    /// [`PopError::Checksum`](crate::PopError::Checksum) instead of `Ok`. The trailer takes
    /// [`CHECKSUM_LEN`] bytes of each record, so
    /// [`max_message`](crate::Ring::max_message) is [`max_record`](Self::max_record) − 4.
    /// Recorded in the header: every opener verifies without being told.
    ///
    /// ```
    /// use shmbus_ring::{SpscConfig, SpscRing};
    /// let ring = SpscRing::in_heap(&SpscConfig::new(4096).max_record(68).checksum(true))?;
    /// assert_eq!(ring.max_message(), 64);
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// tx.try_push(b"checked")?;
    /// let mut buf = [0u8; 64];
    /// let n = rx.try_pop(&mut buf)?;
    /// assert_eq!(&buf[..n], b"checked");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn checksum(mut self, yes: bool) -> Self {
        self.checksum = yes;
        self
    }

    /// Whether endpoints wake sleepers (default `true`): every publish then pays a `SeqCst`
    /// fence and a check of a waiters count, so that [`WaitStrategy::Block`] can sleep on a
    /// futex. A ring used only by spinning endpoints can turn it off; its blocking calls then
    /// poll with growing sleeps.
    pub fn notify(mut self, yes: bool) -> Self {
        self.notify = yes;
        self
    }

    /// Whether payloads of [`ALIGN_FROM`](crate::frame::ALIGN_FROM) bytes and more start on a
    /// cache-line boundary (default `true`; layout 1.5,
    /// [`RING_FLAG_ALIGNED`](crate::layout::RING_FLAG_ALIGNED)). The producer then puts a
    /// skip record of up to 56 bytes before such a message where its payload would straddle
    /// lines: copies in and out run on whole lines (a 1 KiB message streamed about 1.2x faster
    /// between two cores, DECISIONS D67). Payloads from
    /// [`ALIGN_IF_FREE_FROM`](crate::frame::ALIGN_IF_FREE_FROM) bytes are aligned too, on a
    /// ring without a message bound whose record limit is 256 bytes or more, where that
    /// touches no more lines than packing them (192-byte messages streamed about 1.6–1.8x
    /// faster, DECISIONS D89). Readers of layout 1.4 and older refuse an aligned ring; turn it
    /// off for them.
    ///
    /// ```
    /// use shmbus_ring::{SpscConfig, SpscRing};
    /// let ring = SpscRing::in_heap(&SpscConfig::new(1 << 16))?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// tx.try_push(b"small")?; // 16 bytes: the next header is 8 bytes into a line
    /// tx.try_push(&[7u8; 1024])?;
    /// rx.try_pop(&mut [0u8; 8])?;
    /// let msg = rx.read()?.expect("committed");
    /// assert_eq!(msg.as_ptr() as usize % 64, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn aligned(mut self, yes: bool) -> Self {
        self.aligned = yes;
        self
    }

    /// Whether a notifying ring's wake-ups use membarrier mode (default `true`; PROTOCOL §6.3,
    /// [`RING_FLAG_MEMBARRIER`](crate::layout::RING_FLAG_MEMBARRIER), DECISIONS D65): a
    /// publish then pays no fence (8-byte streaming in blocking mode about 1.3x faster), and a
    /// consumer or producer that goes to sleep pays instead, with a
    /// `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` call (about 8 µs, an interrupt on each
    /// core running a registered process). Where the kernel refuses membarrier, endpoints
    /// fall back to the fence and to polling sleeps. Builds of layout 1.4 and older refuse
    /// such a ring; turn it off for them, or for cores that must never be interrupted.
    ///
    /// ```
    /// use shmbus_ring::{layout::RING_FLAG_MEMBARRIER, SpscConfig, SpscRing};
    /// let ring = SpscRing::in_heap(&SpscConfig::new(4096).membarrier(false))?;
    /// assert_eq!(ring.header().ring_flags & RING_FLAG_MEMBARRIER, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn membarrier(mut self, yes: bool) -> Self {
        self.membarrier = yes;
        self
    }

    /// The ring flags this configuration sets beyond the ones both ring kinds share.
    pub(crate) fn kind_flags(&self) -> u32 {
        let mut flags = 0;
        if self.aligned {
            flags |= crate::layout::RING_FLAG_ALIGNED;
        }
        if self.notify && self.membarrier {
            flags |= crate::layout::RING_FLAG_MEMBARRIER;
        }
        flags
    }

    /// The largest record payload the ring accepts (at most `capacity - 16`); on a
    /// [`checksum`](Self::checksum) ring this includes the 4-byte trailer.
    pub fn max_record(mut self, max: u64) -> Self {
        self.max_record = Some(max);
        self
    }

    /// The type fingerprint and codec id written into the header (checked by typed openers).
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = identity;
        self
    }

    /// The segment length this ring needs: one page of header and control blocks, then the
    /// data, then the info region if there is one.
    pub fn segment_len(&self) -> u64 {
        DATA_OFFSET
            .saturating_add(self.capacity)
            .saturating_add(self.info.as_ref().map_or(0, crate::info::Info::encoded_len))
    }

    /// Checks the geometry without allocating anything: what [`Ring::create_in`](crate::Ring::create_in) would refuse.
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
                "SPSC capacity {cap} must be a power of two from {MIN_CAPACITY} to {MAX_CAPACITY}"
            )));
        }
        let limit = largest_record(cap);
        let max = self.max_record.unwrap_or(limit);
        if max > limit || max == 0 {
            return Err(Error::InvalidConfig(format!(
                "SPSC max_record {max} must be from 1 to capacity - 16 = {limit}"
            )));
        }
        if self.checksum && max < wide(CHECKSUM_LEN) {
            return Err(Error::InvalidConfig(format!(
                "SPSC max_record {max} cannot hold the {CHECKSUM_LEN}-byte checksum trailer"
            )));
        }
        if let Some(limit) = self.limit {
            if !(1..=max_messages(cap)).contains(&limit) {
                return Err(Error::InvalidConfig(format!(
                    "SPSC message limit {limit} must be from 1 to {} (a record takes at least \
                     8 of the {cap} bytes)",
                    max_messages(cap)
                )));
            }
        }
        Ok((cap, max))
    }
}

/// The most records a ring of `cap` bytes can hold (each takes at least 8 bytes, and one
/// word stays free): the largest message bound worth having, and the largest accepted.
pub(crate) fn max_messages(cap: u64) -> u64 {
    cap / 8
}

/// The largest payload a ring of `cap` bytes can carry: the record plus the zero-ahead word
/// must fit in the ring (`record_size(len) + 8 <= cap`), and a header `len` is a `u32`.
pub(crate) fn largest_record(cap: u64) -> u64 {
    (cap - 2 * HEADER_SIZE).min(u64::from(u32::MAX) & !7)
}
