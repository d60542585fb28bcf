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
//! # Zero-copy views
//!
//! [`Producer::reserve`], [`Consumer::peek`], [`Consumer::try_pop_with`] and
//! [`Consumer::pop_batch`] hand out slices of the shared segment itself. The protocol gives the
//! bytes to one side at a time, so between honest peers they do not change under you; but a
//! process that breaks the protocol can write them at any moment. Where the peer is not
//! trusted, use the copying calls ([`Consumer::try_pop`], [`Consumer::try_pop_vec`]) and parse
//! the private copy: never decode in place what a hostile process can rewrite mid-decode.

use crate::error::{Corruption, Error, PopError, PushError, Result, Role};
use crate::frame::{decode, encode, record_size, HEADER_SIZE, KIND_DATA, KIND_PADDING};
use crate::layout::{
    self, Identity, OpenOptions, RingKind, SegmentHeader, BLOCK_OWNER, BLOCK_POSITION,
    BLOCK_WAITERS, BLOCK_WAKE_SEQ, CONSUMER_BLOCK, DATA_OFFSET, PRODUCER_BLOCK, RING_FLAG_NOTIFY,
};
use crate::liveness::{self, Owner, Registration};
use crate::mem::{Memory, RawMem};
use crate::segment::{Segment, SegmentOptions};
use crate::sync::Ordering;
use crate::wait::{wait_for, wake_all, WaitStrategy, WakeWords};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The smallest data capacity of an SPSC ring, in bytes.
pub const MIN_CAPACITY: u64 = 64;
/// The largest data capacity of an SPSC ring, in bytes (1 TiB).
pub const MAX_CAPACITY: u64 = 1 << 40;

/// Positions stay below 2^62 (a century of traffic at 1 TB/s), so sums never overflow; a
/// larger value read from shared memory is corruption.
const MAX_POSITION: u64 = 1 << 62;

/// The geometry and identity of a new SPSC ring.
///
/// ```
/// use shmbus_ring::SpscConfig;
/// let cfg = SpscConfig::new(1 << 16).max_record(4096);
/// assert_eq!(cfg.segment_len(), 4096 + (1 << 16));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpscConfig {
    capacity: u64,
    max_record: Option<u64>,
    identity: Identity,
    notify: bool,
}

impl SpscConfig {
    /// A ring with `capacity` bytes of record space (a power of two, 64 B to 1 TiB); records
    /// of up to `capacity - 16` bytes unless [`max_record`](Self::max_record) says less.
    pub fn new(capacity: u64) -> Self {
        SpscConfig {
            capacity,
            max_record: None,
            identity: Identity::default(),
            notify: true,
        }
    }

    /// Whether endpoints wake sleepers (default `true`): every publish then pays a SeqCst
    /// fence and a check of a waiters count, so that [`WaitStrategy::Block`] can sleep on a
    /// futex. A ring used only by spinning endpoints can turn it off; its blocking calls then
    /// poll with growing sleeps.
    pub fn notify(mut self, yes: bool) -> Self {
        self.notify = yes;
        self
    }

    /// The largest record payload the ring accepts (at most `capacity - 16`).
    pub fn max_record(mut self, max: u64) -> Self {
        self.max_record = Some(max);
        self
    }

    /// The type fingerprint and codec id written into the header (checked by typed openers).
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = identity;
        self
    }

    /// The segment length this ring needs: one page of header and control blocks, then the data.
    pub fn segment_len(&self) -> u64 {
        DATA_OFFSET.saturating_add(self.capacity)
    }

    /// Checks the geometry without allocating anything: what `create_in` would refuse.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the value at fault.
    pub fn validate(&self) -> Result<()> {
        self.checked().map(|_| ())
    }

    fn checked(&self) -> Result<(u64, u64)> {
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
        Ok((cap, max))
    }
}

/// The largest payload a ring of `cap` bytes can carry: the record plus the zero-ahead word
/// must fit in the ring (`record_size(len) + 8 <= cap`), and a header `len` is a `u32`.
fn largest_record(cap: u64) -> u64 {
    (cap - 2 * HEADER_SIZE).min(u32::MAX as u64 & !7)
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
    pub(crate) cap: u64,
    pub(crate) max_record: u64,
    /// The wake words, when the ring notifies sleepers.
    pub(crate) wake: Option<Wake>,
}

/// Offsets of the wake sequences and waiter counts of both directions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wake {
    /// "Data was published": the producer block's wake sequence.
    pub(crate) data_seq: usize,
    /// Consumers asleep on `data_seq`.
    pub(crate) data_waiters: usize,
    /// "Space was freed": the consumer block's wake sequence.
    pub(crate) space_seq: usize,
    /// Producers asleep on `space_seq`.
    pub(crate) space_waiters: usize,
}

impl Wake {
    /// The wake sequence and waiters count of one direction ("data published" if `data`,
    /// else "space freed") as atomics in `seg`.
    pub(crate) fn words<'a>(&self, seg: &'a Segment, data: bool) -> Option<WakeWords<'a>> {
        let (seq, waiters) = if data {
            (self.data_seq, self.data_waiters)
        } else {
            (self.space_seq, self.space_waiters)
        };
        Some(WakeWords {
            seq: seg.raw_atomic_u64(seq)?,
            waiters: seg.raw_atomic_u64(waiters)?,
        })
    }

    pub(crate) fn for_segment() -> Self {
        Wake {
            data_seq: (PRODUCER_BLOCK + BLOCK_WAKE_SEQ) as usize,
            data_waiters: (PRODUCER_BLOCK + BLOCK_WAITERS) as usize,
            space_seq: (CONSUMER_BLOCK + BLOCK_WAKE_SEQ) as usize,
            space_waiters: (CONSUMER_BLOCK + BLOCK_WAITERS) as usize,
        }
    }
}

/// N1–N2 of the sleep/notify protocol ([`crate::wait`]): after a publishing store, wake the
/// other side if any of it sleeps on `seq`.
///
/// # Safety
///
/// - `seq` and `waiters` are in-bounds aligned words of `mem`.
#[inline]
pub(crate) unsafe fn notify<M: Memory>(mem: &M, seq: usize, waiters: usize) {
    // SeqCst: orders the caller's publishing store before the load of the waiters count; pairs
    // with the SeqCst fence a sleeper runs after registering (`wait::wait_for`, P3).
    crate::sync::fence_seqcst();
    // SAFETY: the caller's contract.
    unsafe {
        if mem.load(waiters, Ordering::Relaxed) != 0 {
            // Release: orders the publication before the sequence change a sleeper reads
            // (Acquire, P2) — and the change makes its futex_wait return.
            mem.fetch_add(seq, 1, Ordering::Release);
            mem.wake(seq);
        }
    }
}

impl Geometry {
    fn for_segment(cap: u64, max_record: u64, notify: bool) -> Self {
        Geometry {
            wake: notify.then(Wake::for_segment),
            tail_off: (PRODUCER_BLOCK + BLOCK_POSITION) as usize,
            head_off: (CONSUMER_BLOCK + BLOCK_POSITION) as usize,
            data_off: DATA_OFFSET as usize,
            cap,
            max_record,
        }
    }

    #[inline]
    fn mask(&self) -> u64 {
        self.cap - 1
    }

    /// The memory offset of the word/byte at ring position `pos`.
    #[inline]
    fn at(&self, pos: u64) -> usize {
        self.data_off + (pos & self.mask()) as usize
    }

    /// Validates a header word found at `pos`: returns the bytes to advance and, for data, the
    /// payload length; `Ok(None)` for an empty (zero) word.
    #[inline]
    fn check_header(&self, pos: u64, word: u64) -> Result<Option<(u32, u64)>, Corruption> {
        if word == 0 {
            return Ok(None);
        }
        let off = pos & self.mask();
        let (len, kind) = decode(word);
        let corrupt = |what| Corruption {
            what,
            position: pos,
            value: word,
        };
        match kind {
            KIND_DATA => {
                if u64::from(len) > self.max_record {
                    return Err(corrupt("record length exceeds the ring's record limit"));
                }
                let size = record_size(len.into());
                if off + size > self.cap {
                    return Err(corrupt("record crosses the end of the ring"));
                }
                Ok(Some((KIND_DATA, size)))
            }
            KIND_PADDING => {
                if off == 0 || u64::from(len) != self.cap - off - HEADER_SIZE {
                    return Err(corrupt(
                        "padding record does not end exactly at the end of the ring",
                    ));
                }
                Ok(Some((KIND_PADDING, self.cap - off)))
            }
            _ => Err(corrupt("unknown record kind")),
        }
    }
}

/// The producer's half of the algorithm.
pub(crate) struct ProducerCore<M: Memory> {
    mem: M,
    g: Geometry,
    /// Next position to write (process-local; published to the control block for observers).
    tail: u64,
    /// The consumer's `head` as last read; refreshed only when the ring looks full.
    cached_head: u64,
}

impl<M: Memory> ProducerCore<M> {
    /// Attaches a producer: reads and validates the published positions, then walks forward
    /// over any record committed after the published `tail` (a previous producer may have died
    /// between committing a record and publishing `tail`).
    ///
    /// # Safety
    ///
    /// - `mem` holds `g`'s control words and `g.cap` bytes of data at `g.data_off`.
    pub(crate) unsafe fn attach(mem: M, g: Geometry) -> Result<Self, Corruption> {
        // SAFETY: control words are in bounds and aligned by the caller's contract.
        let mut tail = unsafe { mem.load(g.tail_off, Ordering::Relaxed) };
        // Acquire: pairs with the consumer's Release store of `head`, so its reads of the space
        // it freed happen before we overwrite it.
        // SAFETY: as above.
        let head = unsafe { mem.load(g.head_off, Ordering::Acquire) };
        let corrupt = |what, position, value| Corruption {
            what,
            position,
            value,
        };
        if tail % 8 != 0 || tail > MAX_POSITION {
            return Err(corrupt(
                "producer tail is not 8-byte aligned or beyond 2^62",
                tail,
                tail,
            ));
        }
        // The published tail may be stale: a producer that died between committing records
        // (R1) and publishing `tail` leaves it behind, and the consumer may already have read
        // past it. So `head` may be ahead of `tail`, by less than a lap.
        if head % 8 != 0 || head > MAX_POSITION || head.abs_diff(tail) > g.cap - 8 {
            return Err(corrupt(
                "consumer head is not within one capacity of the tail",
                tail,
                head,
            ));
        }
        // Walk from the later of the two.
        tail = tail.max(head);
        // At most cap / 8 records can lie between the published tail and the true one.
        for _ in 0..=g.cap / 8 {
            // Acquire: pairs with the Release header store of the producer that wrote it.
            // SAFETY: `at` is in the data region and 8-aligned (tail is).
            let word = unsafe { mem.load(g.at(tail), Ordering::Acquire) };
            match g.check_header(tail, word)? {
                None => {
                    return Ok(ProducerCore {
                        mem,
                        g,
                        tail,
                        cached_head: head,
                    })
                }
                Some((_, size)) => {
                    tail += size;
                    if tail - head > g.cap - 8 {
                        return Err(corrupt(
                            "committed records after the tail overrun the ring",
                            tail,
                            word,
                        ));
                    }
                }
            }
        }
        Err(corrupt(
            "no free word after the committed records",
            tail,
            tail,
        ))
    }

    /// Ensures the ring has room up to (not including) position `end`; refreshes the cached
    /// head only when the cached value says there is none.
    #[inline]
    fn ensure(&mut self, end: u64) -> Result<(), PushError> {
        if end - self.cached_head <= self.g.cap {
            return Ok(());
        }
        // Acquire: pairs with the consumer's Release store of `head` (`ConsumerCore::advance`):
        // its reads of the records it consumed happen before our writes over them.
        // SAFETY: `head_off` is an in-bounds aligned control word (attach contract).
        let head = unsafe { self.mem.load(self.g.head_off, Ordering::Acquire) };
        if head % 8 != 0 || head < self.cached_head || head > self.tail {
            return Err(PushError::Corrupt(Corruption {
                what: "consumer head moved backwards, past the tail, or off alignment",
                position: self.tail,
                value: head,
            }));
        }
        self.cached_head = head;
        if end - head <= self.g.cap {
            Ok(())
        } else {
            Err(PushError::Full)
        }
    }

    /// Publishes the record whose header `word` goes at `start` and which ends at `end`.
    #[inline]
    fn publish(&mut self, start: u64, end: u64, word: u64) {
        // SAFETY: `at` gives in-bounds aligned data words; `end` is free space by `ensure`.
        unsafe {
            // Zero-ahead: the next header position reads 0 until that record is committed.
            // Relaxed: ordered before the consumer's view by the Release store just below.
            self.mem.store(self.g.at(end), 0, Ordering::Relaxed);
            // Release: publishes the payload and the zero-ahead word; pairs with the Acquire
            // load of the header word in `ConsumerCore::next`.
            self.mem.store(self.g.at(start), word, Ordering::Release);
        }
        crate::crashpoint::hit("spsc.push.published");
        self.tail = end;
        // Relaxed: `tail` in shared memory is informational (occupancy, a successor producer's
        // starting point, which it re-validates by walking headers); data visibility goes
        // through header words.
        // SAFETY: in-bounds aligned control word.
        unsafe { self.mem.store(self.g.tail_off, end, Ordering::Relaxed) };
        self.notify_data();
    }

    /// Finds room for a record of `len` payload bytes, publishing a padding record first if it
    /// would cross the end. Returns the record's start position.
    #[inline]
    fn place(&mut self, len: usize) -> Result<u64, PushError> {
        if len as u64 > self.g.max_record {
            return Err(PushError::TooLarge {
                len,
                max: self.g.max_record as usize,
            });
        }
        let size = record_size(len as u64);
        let to_end = self.g.cap - (self.tail & self.g.mask());
        if size > to_end {
            // The padding alone, with its zero-ahead word (offset 0 of the next lap).
            self.ensure(self.tail + to_end + 8)?;
            let start = self.tail;
            self.publish(
                start,
                start + to_end,
                encode((to_end - HEADER_SIZE) as u32, KIND_PADDING),
            );
        }
        self.ensure(self.tail + size + 8)?;
        Ok(self.tail)
    }

    /// Copies `payload` in as one record and publishes it.
    #[inline]
    pub(crate) fn try_push(&mut self, payload: &[u8]) -> Result<(), PushError> {
        let start = self.place(payload.len())?;
        // SAFETY: `place` checked the record fits before the end of the data region and is free.
        unsafe {
            self.mem
                .write(self.g.at(start) + HEADER_SIZE as usize, payload)
        };
        crate::crashpoint::hit("spsc.push.written");
        let end = start + record_size(payload.len() as u64);
        self.publish(start, end, encode(payload.len() as u32, KIND_DATA));
        Ok(())
    }

    /// Pushes as many of `records` as fit, in order, publishing them with one Release store.
    pub(crate) fn try_push_batch<R: AsRef<[u8]>>(
        &mut self,
        records: &[R],
    ) -> Result<usize, PushError> {
        for r in records {
            let len = r.as_ref().len();
            if len as u64 > self.g.max_record {
                return Err(PushError::TooLarge {
                    len,
                    max: self.g.max_record as usize,
                });
            }
        }
        let first = self.tail;
        let mut first_word = 0u64;
        let mut tail = self.tail;
        let mut pushed = 0;
        // Headers after the first are stored Relaxed as we go: the consumer cannot reach them
        // before it has seen the first header, which is stored last with Release.
        let mut put_header = |this: &mut Self, at: u64, word: u64| {
            if at == first {
                first_word = word;
            } else {
                // SAFETY: `at` is an in-bounds aligned data word inside space `ensure` granted.
                unsafe { this.mem.store(this.g.at(at), word, Ordering::Relaxed) };
            }
        };
        let mut stopped = None;
        for r in records {
            let payload = r.as_ref();
            let size = record_size(payload.len() as u64);
            let to_end = self.g.cap - (tail & self.g.mask());
            if size > to_end {
                self.tail = tail;
                if let Err(e) = self.ensure(tail + to_end + 8) {
                    stopped = Some(e);
                    break;
                }
                put_header(
                    self,
                    tail,
                    encode((to_end - HEADER_SIZE) as u32, KIND_PADDING),
                );
                tail += to_end;
            }
            self.tail = tail;
            if let Err(e) = self.ensure(tail + size + 8) {
                stopped = Some(e);
                break;
            }
            // SAFETY: in bounds and free, as checked by `ensure` and the `to_end` test.
            unsafe {
                self.mem
                    .write(self.g.at(tail) + HEADER_SIZE as usize, payload)
            };
            put_header(self, tail, encode(payload.len() as u32, KIND_DATA));
            tail += size;
            pushed += 1;
        }
        crate::crashpoint::hit("spsc.batch.written");
        // Whatever was written (records, or a padding record alone) is published, even when
        // the batch stopped early.
        self.tail = first;
        if tail != first {
            // SAFETY: in-bounds aligned words; `tail + 8` is within the space `ensure` granted.
            unsafe {
                // Zero-ahead for the record after the batch; Relaxed, ordered by the Release below.
                self.mem.store(self.g.at(tail), 0, Ordering::Relaxed);
                // Release: publishes every payload and header of the batch; pairs with the
                // Acquire load of the header word in `ConsumerCore::next`.
                self.mem
                    .store(self.g.at(first), first_word, Ordering::Release);
                // Relaxed: informational, as in `publish`.
                self.mem.store(self.g.tail_off, tail, Ordering::Relaxed);
            }
            self.tail = tail;
            self.notify_data();
        }
        match stopped {
            Some(e) if pushed == 0 => Err(e),
            _ => Ok(pushed),
        }
    }

    pub(crate) fn max_record(&self) -> usize {
        self.g.max_record as usize
    }

    #[inline]
    fn notify_data(&self) {
        if let Some(w) = self.g.wake {
            // SAFETY: wake words are in-bounds aligned control words (attach contract).
            unsafe { notify(&self.mem, w.data_seq, w.data_waiters) };
        }
    }
}

/// The consumer's half of the algorithm.
pub(crate) struct ConsumerCore<M: Memory> {
    mem: M,
    g: Geometry,
    /// Next position to read (process-local; published after each consumed record).
    head: u64,
}

impl<M: Memory> ConsumerCore<M> {
    /// Attaches a consumer at the published `head`, which must be within a lap of the published
    /// `tail` (either side: the published tail may be stale, see `ProducerCore::attach`).
    ///
    /// # Safety
    ///
    /// - `mem` holds `g`'s control words and `g.cap` bytes of data at `g.data_off`.
    pub(crate) unsafe fn attach(mem: M, g: Geometry) -> Result<Self, Corruption> {
        // Acquire on `head`: pairs with the previous consumer's Release store of it
        // (`publish_head`), so a successor starts after everything it consumed. Relaxed on
        // `tail`: informational (see `ProducerCore::publish`).
        // SAFETY: in-bounds aligned control words by the caller's contract.
        let (head, tail) = unsafe {
            (
                mem.load(g.head_off, Ordering::Acquire),
                mem.load(g.tail_off, Ordering::Relaxed),
            )
        };
        if head % 8 != 0 || head > MAX_POSITION || head.abs_diff(tail) > g.cap - 8 {
            return Err(Corruption {
                what: "consumer head is misaligned, beyond 2^62, or not within one capacity of the tail",
                position: head,
                value: tail,
            });
        }
        Ok(ConsumerCore { mem, g, head })
    }

    /// The next committed data record: `(start position, payload length)`, skipping (and
    /// consuming) a padding record. `Ok(None)` when nothing is committed.
    #[inline]
    pub(crate) fn next(&mut self) -> Result<Option<(u64, usize)>, Corruption> {
        // Two iterations at most: padding always moves `head` to offset 0, where no padding is
        // valid.
        for _ in 0..2 {
            // Acquire: pairs with the Release header store in `ProducerCore::publish` /
            // `try_push_batch`: the payload and the zero-ahead word are visible once the header is.
            // SAFETY: `at` is an in-bounds aligned data word (head is 8-aligned, validated).
            let word = unsafe { self.mem.load(self.g.at(self.head), Ordering::Acquire) };
            match self.g.check_header(self.head, word)? {
                None => return Ok(None),
                Some((KIND_PADDING, size)) => self.advance(size),
                Some((_, _)) => return Ok(Some((self.head, decode(word).0 as usize))),
            }
        }
        unreachable!("padding is never valid at offset 0")
    }

    /// Marks `size` bytes at `head` consumed and publishes the new head.
    #[inline]
    pub(crate) fn advance(&mut self, size: u64) {
        self.head += size;
        self.publish_head();
    }

    #[inline]
    fn publish_head(&mut self) {
        // Release: our reads of the consumed records happen before the producer reuses the
        // space; pairs with the Acquire load of `head` in `ProducerCore::ensure`.
        // SAFETY: in-bounds aligned control word.
        unsafe {
            self.mem
                .store(self.g.head_off, self.head, Ordering::Release)
        };
        if let Some(w) = self.g.wake {
            // SAFETY: wake words are in-bounds aligned control words (attach contract).
            unsafe { notify(&self.mem, w.space_seq, w.space_waiters) };
        }
    }

    /// Pops one record into `buf`.
    #[inline]
    pub(crate) fn try_pop(&mut self, buf: &mut [u8]) -> Result<usize, PopError> {
        let (start, len) = self.next()?.ok_or(PopError::Empty)?;
        if len > buf.len() {
            return Err(PopError::BufferTooSmall {
                needed: len,
                len: buf.len(),
            });
        }
        // SAFETY: `next` validated the record lies within the data region.
        unsafe {
            self.mem
                .read(self.g.at(start) + HEADER_SIZE as usize, &mut buf[..len])
        };
        crate::crashpoint::hit("spsc.pop.read");
        self.advance(record_size(len as u64));
        Ok(len)
    }

    /// Pops one record, appending its bytes to a cleared `buf`.
    pub(crate) fn try_pop_vec(&mut self, buf: &mut Vec<u8>) -> Result<usize, PopError> {
        let (start, len) = self.next()?.ok_or(PopError::Empty)?;
        buf.clear();
        buf.resize(len, 0);
        // SAFETY: `next` validated the record lies within the data region.
        unsafe { self.mem.read(self.g.at(start) + HEADER_SIZE as usize, buf) };
        crate::crashpoint::hit("spsc.pop.read");
        self.advance(record_size(len as u64));
        Ok(len)
    }

    /// Whether no committed record waits at `head` (padding counts as nothing).
    pub(crate) fn is_empty(&mut self) -> bool {
        !matches!(self.next(), Ok(Some(_)))
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

    fn owner(&self, role: Role) -> &std::sync::atomic::AtomicU32 {
        let block = match role {
            Role::Producer => PRODUCER_BLOCK,
            Role::Consumer => CONSUMER_BLOCK,
        };
        self.seg
            .raw_atomic_u32((block + BLOCK_OWNER) as usize)
            .expect("validated segments hold both control blocks")
    }

    /// Clears `role`'s owner word if it still names endpoint `tag` of generation `gen` (the
    /// repair for a dead SPSC endpoint; idempotent).
    fn clear_owner(&self, role: Role, tag: u64, gen: u16) {
        // Release: pairs with the next claimant's Acquire CAS in `claim`; for a clean detach it
        // publishes the endpoint's last position stores. (A dead holder's last stores are not
        // ordered by it: its successor validates positions and walks record headers with
        // Acquire loads of its own, see `ProducerCore::attach`.) Relaxed on failure: someone
        // else's word, leave it.
        let _ = self.owner(role).compare_exchange(
            liveness::owner_word(tag, gen),
            0,
            Ordering::Release,
            Ordering::Relaxed,
        );
    }

    /// Registers an endpoint of `role` and makes it the ring's one endpoint of that role. An
    /// owner that died is reaped and replaced (producer takeover).
    fn claim(&self, role: Role) -> Result<Registration> {
        let mut reg = Registration::register(&self.seg, role)?;
        let mine = liveness::owner_word(reg.tag(), reg.gen());
        let mut holder_pid = 0;
        // Bounded: a few retries when the owner word changes under us, and up to about a
        // second while a live reaper (or the holder itself, detaching) finishes.
        let waited = Instant::now();
        for _ in 0..64 {
            // Acquire on success: pairs with the Release CAS to 0 in `release` or
            // `clear_owner`, so the previous endpoint's last position store is visible to our
            // attach. Relaxed on failure: we judge the holder next.
            let holder = match self.owner(role).compare_exchange(
                0,
                mine,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(reg),
                Err(holder) => holder,
            };
            let (tag, gen) = (u64::from(holder & 0xff), (holder >> 8) as u16);
            match reg.reap_owner(&self.seg, tag, gen, &mut |t, g, r| {
                self.clear_owner(r, t, g)
            }) {
                Owner::Alive(pid) => {
                    holder_pid = pid;
                    break;
                }
                Owner::BeingReaped => {
                    if waited.elapsed() > Duration::from_secs(1) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Owner::Gone => {
                    // The holder is gone (reaped now, or its word names no live entry):
                    // clear the word if it still holds that value, and try again.
                    // Relaxed: as in `clear_owner`'s failure case; the retry's CAS orders.
                    let _ = self.owner(role).compare_exchange(
                        holder,
                        0,
                        Ordering::Release,
                        Ordering::Relaxed,
                    );
                }
            }
        }
        reg.unregister(&self.seg);
        self.wake_everyone();
        Err(Error::AlreadyAttached {
            target: self.seg.target(),
            role,
            pid: holder_pid,
        })
    }

    /// Detaches `role`'s endpoint: clears the owner word, frees the entry, and wakes sleepers
    /// of both directions so that they re-check for disconnection.
    fn release(&self, role: Role, reg: &mut Registration) {
        if !reg.is_own() {
            // A `fork`ed child dropping an inherited endpoint: the parent's stays attached.
            return;
        }
        self.clear_owner(role, reg.tag(), reg.gen());
        reg.unregister(&self.seg);
        self.wake_everyone();
    }

    /// Wakes every sleeper of both directions.
    fn wake_everyone(&self) {
        for data in [true, false] {
            if let Some(w) = self.wake_words(data) {
                wake_all(w);
            }
        }
    }

    /// Probes the other endpoints, reaping dead ones; wakes sleepers if any was reaped.
    fn probe(&self, reg: &mut Registration) {
        let reaped = reg.probe(&self.seg, &mut |t, g, r| self.clear_owner(r, t, g));
        if reaped > 0 {
            self.wake_everyone();
        }
    }

    /// What a push that found the ring full reports: `Disconnected` if the consumer is gone
    /// (probing for a dead one when the probe interval has passed), else `Full`.
    #[cold]
    fn on_full(&self, reg: &mut Registration, slow: bool) -> PushError {
        if reg.probe_due(slow) {
            self.probe(reg);
        }
        if liveness::side_gone(&self.seg, Role::Consumer) {
            PushError::Disconnected
        } else {
            PushError::Full
        }
    }

    /// What a pop that found the ring empty reports: `Disconnected` if the producer is gone
    /// and the ring is still empty after that was seen, else `Empty`.
    #[cold]
    fn on_empty(
        &self,
        reg: &mut Registration,
        core: &mut ConsumerCore<RawMem>,
        slow: bool,
    ) -> PopError {
        if reg.probe_due(slow) {
            self.probe(reg);
        }
        // `side_gone` is an Acquire load that pairs with the producer's Release detach: every
        // record it committed is visible to the re-check.
        if liveness::gone(&core.mem, Role::Producer) && core.is_empty() {
            PopError::Disconnected
        } else {
            PopError::Empty
        }
    }

    /// The wake words of one direction, if the ring notifies.
    fn wake_words(&self, data: bool) -> Option<WakeWords<'_>> {
        self.g.wake?.words(&self.seg, data)
    }

    fn corrupt(&self, corruption: Corruption) -> Error {
        Error::Corrupt {
            target: self.seg.target(),
            corruption,
        }
    }
}

/// An SPSC ring laid out in a [`Segment`]: a cheap, cloneable handle from which the one
/// [`Producer`] and the one [`Consumer`] are attached.
///
/// # Examples
///
/// ```
/// use shmbus_ring::{SegmentOptions, SpscConfig, SpscRing};
/// let name = format!("/shmbus-doc-spsc-{}", std::process::id());
/// // Process A creates the ring (and owns the name: it is unlinked when `ring` is dropped).
/// let ring = SpscRing::create_shm(&name, &SpscConfig::new(1 << 12), &SegmentOptions::default())?;
/// let mut tx = ring.producer()?;
/// // Process B (here the same process) opens it by name.
/// let other = SpscRing::open_shm(&name, &SegmentOptions::default())?;
/// let mut rx = other.consumer()?;
///
/// tx.try_push(b"hello")?;
/// let mut buf = [0u8; 64];
/// let n = rx.try_pop(&mut buf)?;
/// assert_eq!(&buf[..n], b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SpscRing {
    inner: Arc<RingInner>,
}

impl std::fmt::Debug for SpscRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpscRing")
            .field("segment", &self.inner.seg)
            .field("capacity", &self.inner.g.cap)
            .field("max_record", &self.inner.g.max_record)
            .finish()
    }
}

impl SpscRing {
    /// Creates the named shm object `name`, sized for `config`, and builds the ring in it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a bad geometry; segment errors as for [`Segment::create`].
    pub fn create_shm(name: &str, config: &SpscConfig, opts: &SegmentOptions) -> Result<SpscRing> {
        config.checked()?;
        let seg = Segment::create(name, config.segment_len(), opts)?;
        SpscRing::create_in(seg, config)
    }

    /// Opens the ring in the named shm object `name`, waiting up to 1 s for its creator to
    /// finish and validating the header.
    ///
    /// # Errors
    ///
    /// Segment errors as for [`Segment::open`]; header errors as for [`SpscRing::open_in`].
    pub fn open_shm(name: &str, opts: &SegmentOptions) -> Result<SpscRing> {
        SpscRing::open_in(Segment::open(name, opts)?, &OpenOptions::default())
    }

    /// Builds a ring in a segment this process just created (zeroed), publishing the header
    /// last. The segment must be at least [`SpscConfig::segment_len`] bytes.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a bad geometry or a segment that is too small;
    /// [`Error::NotCreator`] for a segment this handle did not create.
    pub fn create_in(seg: Segment, config: &SpscConfig) -> Result<SpscRing> {
        let (cap, max) = config.checked()?;
        if (seg.len() as u64) < config.segment_len() {
            return Err(Error::InvalidConfig(format!(
                "{}: segment of {} bytes is smaller than the {} bytes the ring needs",
                seg.target(),
                seg.len(),
                config.segment_len()
            )));
        }
        // The word at position 0 is where the first record's header goes: it must read 0
        // (the zero-ahead invariant), so make sure of it rather than trust the fresh object.
        seg.raw_atomic_u64(DATA_OFFSET as usize)
            .ok_or_else(|| Error::InvalidConfig("segment too small".into()))?
            .store(0, Ordering::Relaxed);
        let header = layout::new_header(
            RingKind::Spsc,
            seg.len() as u64,
            cap,
            max,
            cap,
            config.identity,
            if config.notify { RING_FLAG_NOTIFY } else { 0 },
        );
        // The control blocks and data are zero in a fresh segment: head = tail = 0, no owners,
        // and every header word empty. Publishing the header makes the ring openable.
        layout::publish(&seg, header)?;
        Ok(SpscRing {
            inner: Arc::new(RingInner {
                seg,
                header,
                g: Geometry::for_segment(cap, max, config.notify),
            }),
        })
    }

    /// Opens the ring in `seg`: waits (bounded) for `READY`, then checks magic, version, ABI,
    /// kind, identity (if asked) and every size against the segment's real size.
    ///
    /// # Errors
    ///
    /// One variant per failed check: [`Error::Truncated`], [`Error::NotReady`],
    /// [`Error::BadInitState`], [`Error::BadMagic`], [`Error::MajorVersion`],
    /// [`Error::AbiMismatch`], [`Error::WrongKind`], [`Error::BadField`], [`Error::Mismatch`].
    pub fn open_in(seg: Segment, opts: &OpenOptions) -> Result<SpscRing> {
        let h = layout::open_header(&seg, RingKind::Spsc, opts)?;
        let target = seg.target();
        let bad = |field, value, reason: String| Error::BadField {
            target: target.clone(),
            field,
            value,
            reason,
        };
        let cap = h.capacity;
        if !cap.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&cap) {
            return Err(bad(
                "capacity",
                cap,
                format!("an SPSC capacity is a power of two from {MIN_CAPACITY} to {MAX_CAPACITY}"),
            ));
        }
        if cap > h.total_len - DATA_OFFSET {
            return Err(bad(
                "capacity",
                cap,
                format!(
                    "only {} data bytes fit in the {}-byte object",
                    h.total_len - DATA_OFFSET,
                    h.total_len
                ),
            ));
        }
        if h.data_len != cap {
            return Err(bad(
                "data_len",
                h.data_len,
                format!("an SPSC ring's data is its capacity, {cap}"),
            ));
        }
        if h.record_limit == 0 || h.record_limit > largest_record(cap) {
            return Err(bad(
                "record_limit",
                h.record_limit,
                format!(
                    "it must be from 1 to {} for capacity {cap}",
                    largest_record(cap)
                ),
            ));
        }
        Ok(SpscRing {
            inner: Arc::new(RingInner {
                seg,
                header: h,
                g: Geometry::for_segment(cap, h.record_limit, h.ring_flags & RING_FLAG_NOTIFY != 0),
            }),
        })
    }

    /// A ring in process-private heap memory (same layout and code as a shared one).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a bad geometry.
    pub fn in_heap(config: &SpscConfig) -> Result<SpscRing> {
        config.checked()?;
        SpscRing::create_in(Segment::heap(config.segment_len())?, config)
    }

    /// Attaches the ring's producer. There is one: a second attach fails until the first
    /// producer is dropped.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyAttached`], [`Error::ReadOnly`], or [`Error::Corrupt`] if the positions
    /// in the segment are inconsistent.
    pub fn producer(&self) -> Result<Producer> {
        let mut reg = self.inner.claim(Role::Producer)?;
        // SAFETY: the geometry was validated against the segment's size at create/open.
        match unsafe { ProducerCore::attach(self.inner.mem(), self.inner.g) } {
            Ok(core) => Ok(Producer {
                core,
                ring: self.clone(),
                wait: WaitStrategy::default(),
                reg,
            }),
            Err(c) => {
                self.inner.release(Role::Producer, &mut reg);
                Err(self.inner.corrupt(c))
            }
        }
    }

    /// Attaches the ring's consumer. There is one: a second attach fails until the first
    /// consumer is dropped.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyAttached`], [`Error::ReadOnly`], or [`Error::Corrupt`].
    pub fn consumer(&self) -> Result<Consumer> {
        let mut reg = self.inner.claim(Role::Consumer)?;
        // SAFETY: the geometry was validated against the segment's size at create/open.
        match unsafe { ConsumerCore::attach(self.inner.mem(), self.inner.g) } {
            Ok(core) => Ok(Consumer {
                core,
                ring: self.clone(),
                wait: WaitStrategy::default(),
                reg,
            }),
            Err(c) => {
                self.inner.release(Role::Consumer, &mut reg);
                Err(self.inner.corrupt(c))
            }
        }
    }

    /// The segment the ring lives in.
    pub fn segment(&self) -> &Segment {
        &self.inner.seg
    }

    /// The header as validated at create/open.
    pub fn header(&self) -> &SegmentHeader {
        &self.inner.header
    }

    /// Data capacity in bytes.
    pub fn capacity(&self) -> u64 {
        self.inner.g.cap
    }

    /// The largest record payload, in bytes.
    pub fn max_record(&self) -> usize {
        self.inner.g.max_record as usize
    }

    /// Bytes committed and not yet consumed, from the published positions (a racy snapshot,
    /// for monitoring; `None` if the positions are inconsistent). The producer publishes `tail`
    /// just after a record, so the consumer's `head` may briefly be ahead: that reads as 0.
    pub fn used_bytes(&self) -> Option<u64> {
        let seg = &self.inner.seg;
        let tail = seg.raw_atomic_u64((PRODUCER_BLOCK + BLOCK_POSITION) as usize)?;
        let head = seg.raw_atomic_u64((CONSUMER_BLOCK + BLOCK_POSITION) as usize)?;
        // Relaxed: a monitoring snapshot (Relaxed loads are also what a read-only map allows).
        let (t, h) = (tail.load(Ordering::Relaxed), head.load(Ordering::Relaxed));
        if h > t {
            return (h - t <= self.inner.g.cap).then_some(0);
        }
        Some(t - h).filter(|u| *u <= self.inner.g.cap)
    }
}

/// The writing end of an SPSC ring. Not `Clone`: there is one producer per ring.
pub struct Producer {
    core: ProducerCore<RawMem>,
    ring: SpscRing,
    wait: WaitStrategy,
    reg: Registration,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("target", &self.ring.inner.seg.target())
            .field("tail", &self.core.tail)
            .finish()
    }
}

impl Producer {
    /// Sets how often, while the ring is full, this endpoint checks whether the other endpoints are
    /// still alive, reaps dead ones, and so notices a consumer that died (default
    /// [`DEFAULT_PROBE_INTERVAL`](crate::liveness::DEFAULT_PROBE_INTERVAL), 20 ms). A blocked
    /// call also wakes this often to check. (Non-blocking pops that find the ring empty read
    /// the clock only every 16th time, to keep a polling loop fast: a caller that polls
    /// slowly notices a dead peer within 16 polls of the interval.)
    pub fn set_probe_interval(&mut self, interval: Duration) {
        self.reg.set_interval(interval);
    }

    /// Copies `payload` into the ring as one record and publishes it.
    ///
    /// # Errors
    ///
    /// [`PushError::Full`] when there is no room now (nothing was written);
    /// [`PushError::TooLarge`] above [`max_record`](Self::max_record); [`PushError::Corrupt`]
    /// if the consumer's position in shared memory is inconsistent.
    #[inline]
    pub fn try_push(&mut self, payload: &[u8]) -> Result<(), PushError> {
        check_consumers(&self.core.mem)?;
        match self.core.try_push(payload) {
            Err(PushError::Full) => Err(self.ring.inner.on_full(&mut self.reg, true)),
            other => other,
        }
    }

    /// Pushes as many of `records` as fit, in order, and publishes them all with a single
    /// Release store. Returns how many were pushed.
    ///
    /// # Errors
    ///
    /// [`PushError::TooLarge`] (before anything is written) if any record exceeds the limit;
    /// [`PushError::Full`] if not even the first fits; [`PushError::Corrupt`].
    ///
    /// ```
    /// # use shmbus_ring::{SpscConfig, SpscRing};
    /// let ring = SpscRing::in_heap(&SpscConfig::new(1 << 10))?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// assert_eq!(tx.try_push_batch(&[&b"a"[..], b"bc", b"def"])?, 3);
    /// let mut got = Vec::new();
    /// rx.pop_batch(10, |r| got.push(r.to_vec()))?;
    /// assert_eq!(got, vec![b"a".to_vec(), b"bc".to_vec(), b"def".to_vec()]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_push_batch<R: AsRef<[u8]>>(&mut self, records: &[R]) -> Result<usize, PushError> {
        check_consumers(&self.core.mem)?;
        match self.core.try_push_batch(records) {
            Err(PushError::Full) => Err(self.ring.inner.on_full(&mut self.reg, true)),
            other => other,
        }
    }

    /// Reserves a record of `len` bytes in the ring and returns it for writing in place.
    /// [`Reservation::commit`] publishes it; dropping the reservation abandons it (nothing
    /// becomes visible).
    ///
    /// # Errors
    ///
    /// As [`try_push`](Self::try_push).
    ///
    /// ```
    /// # use shmbus_ring::{SpscConfig, SpscRing};
    /// let ring = SpscRing::in_heap(&SpscConfig::new(1 << 10))?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// let mut r = tx.reserve(4)?;
    /// r.copy_from_slice(&7u32.to_le_bytes());
    /// r.commit();
    /// let rec = rx.peek()?.expect("committed");
    /// assert_eq!(&*rec, &7u32.to_le_bytes());
    /// rec.release();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reserve(&mut self, len: usize) -> Result<Reservation<'_>, PushError> {
        check_consumers(&self.core.mem)?;
        let start = match self.core.place(len) {
            Err(PushError::Full) => return Err(self.ring.inner.on_full(&mut self.reg, true)),
            other => other?,
        };
        Ok(Reservation {
            producer: self,
            start,
            len,
        })
    }

    /// Reserves a record of `len` bytes, waiting until `deadline` (`None`: for ever) while
    /// the ring has no room for it; then as [`reserve`](Self::reserve).
    ///
    /// # Errors
    ///
    /// [`PushError::Timeout`], and as [`try_push`](Self::try_push).
    pub fn reserve_deadline(
        &mut self,
        len: usize,
        deadline: Option<Instant>,
    ) -> Result<Reservation<'_>, PushError> {
        let start = self.wait_room(deadline, |core| core.place(len))?;
        Ok(Reservation {
            producer: self,
            start,
            len,
        })
    }

    /// The largest record payload the ring accepts.
    pub fn max_record(&self) -> usize {
        self.core.max_record()
    }

    /// Sets how the blocking calls ([`push`](Self::push) and friends) wait while the ring is
    /// full. Default: [`WaitStrategy::Block`] after 50 µs of spinning.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.wait = strategy;
    }

    /// Pushes `payload`, waiting while the ring is full.
    ///
    /// # Errors
    ///
    /// [`PushError::TooLarge`] at once; [`PushError::Corrupt`]. A peer that never frees space
    /// makes this wait for ever: use [`push_timeout`](Self::push_timeout) where that matters.
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
    /// checking for a gone consumer) until `deadline`: the loop of every blocking push.
    fn wait_room<R>(
        &mut self,
        deadline: Option<Instant>,
        mut op: impl FnMut(&mut ProducerCore<RawMem>) -> Result<R, PushError>,
    ) -> Result<R, PushError> {
        let Producer {
            core,
            ring,
            wait,
            reg,
        } = self;
        let nap = reg.interval();
        wait_for(*wait, deadline, ring.inner.wake_words(false), nap, |slow| {
            if let Err(e) = check_consumers(&core.mem) {
                return Some(Err(e));
            }
            match op(core) {
                Err(PushError::Full) => match ring.inner.on_full(reg, slow) {
                    PushError::Full => None,
                    e => Some(Err(e)),
                },
                other => Some(other),
            }
        })
        .unwrap_or(Err(PushError::Timeout))
    }

    /// The ring this producer writes to.
    pub fn ring(&self) -> &SpscRing {
        &self.ring
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.ring.inner.release(Role::Producer, &mut self.reg);
    }
}

/// Space reserved in the ring by [`Producer::reserve`], written in place. Dereferences to the
/// payload bytes (`&mut [u8]`, in shared memory: their prior content is unspecified).
pub struct Reservation<'a> {
    producer: &'a mut Producer,
    start: u64,
    len: usize,
}

impl Reservation<'_> {
    /// Publishes the whole reserved record.
    pub fn commit(self) {
        let len = self.len;
        self.commit_len(len);
    }

    /// Publishes only the first `len` bytes (for encoders that reserve the maximum and write
    /// less).
    ///
    /// # Panics
    ///
    /// If `len` exceeds the reserved length.
    pub fn commit_len(self, len: usize) {
        assert!(
            len <= self.len,
            "commit_len({len}) exceeds the {} bytes reserved",
            self.len
        );
        let core = &mut self.producer.core;
        let end = self.start + record_size(len as u64);
        core.publish(self.start, end, encode(len as u32, KIND_DATA));
    }
}

impl Deref for Reservation<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let core = &self.producer.core;
        // SAFETY: `place` reserved `len` payload bytes after the header, inside the data region;
        // the consumer does not read them until `commit` publishes the header, and `&self`
        // borrows the only producer.
        unsafe {
            std::slice::from_raw_parts(
                core.mem.ptr(core.g.at(self.start) + HEADER_SIZE as usize),
                self.len,
            )
        }
    }
}

impl DerefMut for Reservation<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        let core = &self.producer.core;
        // SAFETY: as in `deref`; `&mut self` borrows the only producer mutably.
        unsafe {
            std::slice::from_raw_parts_mut(
                core.mem.ptr(core.g.at(self.start) + HEADER_SIZE as usize),
                self.len,
            )
        }
    }
}

/// The reading end of an SPSC ring. Not `Clone`: there is one consumer per ring.
pub struct Consumer {
    core: ConsumerCore<RawMem>,
    ring: SpscRing,
    wait: WaitStrategy,
    reg: Registration,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("target", &self.ring.inner.seg.target())
            .field("head", &self.core.head)
            .finish()
    }
}

impl Consumer {
    /// Sets how often, while the ring is empty, this endpoint checks whether the other endpoints are
    /// still alive, reaps dead ones, and so notices a producer that died (default
    /// [`DEFAULT_PROBE_INTERVAL`](crate::liveness::DEFAULT_PROBE_INTERVAL), 20 ms). A blocked
    /// call also wakes this often to check. (Non-blocking pops that find the ring empty read
    /// the clock only every 16th time, to keep a polling loop fast: a caller that polls
    /// slowly notices a dead peer within 16 polls of the interval.)
    pub fn set_probe_interval(&mut self, interval: Duration) {
        self.reg.set_interval(interval);
    }

    /// Pops the next record into `buf`, returning its length.
    ///
    /// # Errors
    ///
    /// [`PopError::Empty`]; [`PopError::BufferTooSmall`] (the record stays in the ring);
    /// [`PopError::Corrupt`] if the record header in shared memory is inconsistent.
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

    /// Pops the next record into `buf` (cleared and resized to the record), returning its length.
    ///
    /// # Errors
    ///
    /// [`PopError::Empty`] or [`PopError::Corrupt`].
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

    /// Pops the next record and hands its bytes, in place in shared memory, to `f`.
    ///
    /// The bytes are a view of shared memory (see "Zero-copy views" in the module docs): where
    /// the peer is not trusted, copy them before parsing.
    ///
    /// # Errors
    ///
    /// [`PopError::Empty`] or [`PopError::Corrupt`]; `f` is not called then.
    #[inline]
    pub fn try_pop_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Result<R, PopError> {
        let Some((start, len)) = self.core.next()? else {
            return Err(self
                .ring
                .inner
                .on_empty(&mut self.reg, &mut self.core, false));
        };
        let r = f(self.slice(start, len));
        self.core.advance(record_size(len as u64));
        Ok(r)
    }

    /// Pops up to `max` records, handing each to `f` in place, and publishes the consumer's
    /// position once at the end. Returns how many were popped (0 when empty). If `f` panics,
    /// the records before the one it panicked on count as consumed.
    ///
    /// The bytes are a view of shared memory (see "Zero-copy views" in the module docs): where
    /// the peer is not trusted, copy them before parsing.
    ///
    /// # Errors
    ///
    /// [`PopError::Corrupt`] if a record header is inconsistent; the records before it are
    /// consumed and published.
    pub fn pop_batch(&mut self, max: usize, mut f: impl FnMut(&[u8])) -> Result<usize, PopError> {
        let mut n = 0;
        let mut result = Ok(());
        while n < max {
            match self.core.next() {
                Ok(Some((start, len))) => {
                    f(self.slice(start, len));
                    self.core.head += record_size(len as u64);
                    n += 1;
                }
                Ok(None) => break,
                Err(c) => {
                    result = Err(PopError::Corrupt(c));
                    break;
                }
            }
        }
        if n > 0 {
            self.core.publish_head();
        } else if result.is_ok() {
            if let PopError::Disconnected =
                self.ring
                    .inner
                    .on_empty(&mut self.reg, &mut self.core, false)
            {
                return Err(PopError::Disconnected);
            }
        }
        result.map(|()| n)
    }

    /// The next record, in place, without consuming it: [`Peeked::release`] consumes it, and
    /// dropping the guard leaves it in the ring. `Ok(None)` when empty.
    ///
    /// The bytes are a view of shared memory (see "Zero-copy views" in the module docs): where
    /// the peer is not trusted, copy them before parsing.
    ///
    /// # Errors
    ///
    /// [`PopError::Corrupt`] if the record header is inconsistent.
    pub fn peek(&mut self) -> Result<Option<Peeked<'_>>, PopError> {
        match self.core.next()? {
            None => match self
                .ring
                .inner
                .on_empty(&mut self.reg, &mut self.core, false)
            {
                PopError::Disconnected => Err(PopError::Disconnected),
                _ => Ok(None),
            },
            Some((start, len)) => Ok(Some(Peeked {
                consumer: self,
                start,
                len,
            })),
        }
    }

    /// Whether no committed record is waiting now.
    pub fn is_empty(&mut self) -> bool {
        self.core.is_empty()
    }

    /// Sets how the blocking calls ([`pop`](Self::pop) and friends) wait while the ring is
    /// empty. Default: [`WaitStrategy::Block`] after 50 µs of spinning.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.wait = strategy;
    }

    /// Pops the next record into `buf`, waiting while the ring is empty.
    ///
    /// # Errors
    ///
    /// [`PopError::BufferTooSmall`] (the record stays), [`PopError::Corrupt`]. A producer that
    /// never publishes makes this wait for ever: use [`pop_timeout`](Self::pop_timeout) where
    /// that matters.
    pub fn pop(&mut self, buf: &mut [u8]) -> Result<usize, PopError> {
        self.pop_deadline(buf, None)
    }

    /// Pops the next record into `buf`, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`PopError::Timeout`], and as [`pop`](Self::pop).
    ///
    /// ```
    /// use shmbus_ring::{PopError, SpscConfig, SpscRing, WaitStrategy};
    /// use std::time::Duration;
    /// let ring = SpscRing::in_heap(&SpscConfig::new(4096))?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// rx.set_wait_strategy(WaitStrategy::Block { spin: Duration::from_micros(20) });
    /// let mut buf = [0u8; 64];
    /// assert_eq!(rx.pop_timeout(&mut buf, Duration::from_millis(5)), Err(PopError::Timeout));
    /// let sender = std::thread::spawn(move || tx.push(b"later"));
    /// let n = rx.pop_timeout(&mut buf, Duration::from_secs(10))?; // sleeps on the futex
    /// assert_eq!(&buf[..n], b"later");
    /// sender.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pop_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, PopError> {
        self.pop_deadline(buf, Instant::now().checked_add(timeout))
    }

    /// Pops the next record into `buf`, waiting until `deadline` (`None`: for ever).
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

    /// Waits until `deadline` (`None`: for ever) for the next record, then pops it and hands
    /// its bytes, in place, to `f` (a view of shared memory: see the module docs).
    ///
    /// # Errors
    ///
    /// [`PopError::Timeout`] or [`PopError::Corrupt`]; `f` is not called then.
    pub fn pop_with_deadline<R>(
        &mut self,
        deadline: Option<Instant>,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, PopError> {
        let (start, len) = self.wait_data(deadline, |core| core.next()?.ok_or(PopError::Empty))?;
        let r = f(self.slice(start, len));
        self.core.advance(record_size(len as u64));
        Ok(r)
    }

    /// Runs `op` until it does not report `Empty`, waiting as the wait strategy says (and
    /// checking for gone producers) until `deadline`: the loop of every blocking pop.
    fn wait_data<R>(
        &mut self,
        deadline: Option<Instant>,
        mut op: impl FnMut(&mut ConsumerCore<RawMem>) -> Result<R, PopError>,
    ) -> Result<R, PopError> {
        let Consumer {
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

    /// The ring this consumer reads from.
    pub fn ring(&self) -> &SpscRing {
        &self.ring
    }

    fn slice(&self, start: u64, len: usize) -> &[u8] {
        // SAFETY: `next` validated that the record lies inside the data region, and an honest
        // producer does not write it again until `head` moves past it, which needs `&mut self`.
        // This is a view of shared memory: a peer that breaks the protocol can change these
        // bytes while the slice is alive, which the zero-copy API documents (trusted peers
        // only; copy first where the peer is untrusted). No length or offset this crate uses
        // is derived from payload bytes.
        unsafe {
            std::slice::from_raw_parts(
                self.core
                    .mem
                    .ptr(self.core.g.at(start) + HEADER_SIZE as usize),
                len,
            )
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        // Records handed out before a panic in a `pop_batch` callback are consumed: publish
        // the local head so a successor does not see them again.
        if self.reg.is_own() {
            self.core.publish_head();
        }
        self.ring.inner.release(Role::Consumer, &mut self.reg);
    }
}

/// A record read in place by [`Consumer::peek`]. Dereferences to its payload.
pub struct Peeked<'a> {
    consumer: &'a mut Consumer,
    start: u64,
    len: usize,
}

impl Peeked<'_> {
    /// Consumes the record: the producer may reuse its space.
    pub fn release(self) {
        self.consumer.core.advance(record_size(self.len as u64));
    }
}

impl Deref for Peeked<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.consumer.slice(self.start, self.len)
    }
}

/// Model-checking entry points: the SPSC cores over [`crate::mem::LoomMem`].
#[cfg(loom)]
pub mod loom_model {
    use super::*;
    use crate::mem::LoomMem;

    /// A producer over loom memory.
    pub struct ModelProducer(ProducerCore<LoomMem>);
    /// A consumer over loom memory.
    pub struct ModelConsumer(ConsumerCore<LoomMem>);

    /// A ring of `cap` data bytes in loom memory, with control words in front of the data.
    pub fn pair(cap: u64) -> (ModelProducer, ModelConsumer) {
        let g = Geometry {
            tail_off: 0,
            head_off: 8,
            data_off: 16,
            cap,
            max_record: largest_record(cap),
            wake: None,
        };
        let mem = LoomMem::zeroed(16 + cap as usize);
        // SAFETY: the model memory holds the two control words and `cap` data bytes.
        let p = unsafe { ProducerCore::attach(mem.clone(), g) }.expect("fresh ring");
        // SAFETY: as above.
        let c = unsafe { ConsumerCore::attach(mem, g) }.expect("fresh ring");
        (ModelProducer(p), ModelConsumer(c))
    }

    impl ModelProducer {
        /// See [`Producer::try_push`].
        pub fn try_push(&mut self, payload: &[u8]) -> Result<(), PushError> {
            self.0.try_push(payload)
        }
        /// See [`Producer::try_push_batch`].
        pub fn try_push_batch(&mut self, records: &[&[u8]]) -> Result<usize, PushError> {
            self.0.try_push_batch(records)
        }
    }

    impl ModelConsumer {
        /// See [`Consumer::try_pop_vec`].
        pub fn try_pop_vec(&mut self, buf: &mut Vec<u8>) -> Result<usize, PopError> {
            self.0.try_pop_vec(buf)
        }
    }

    /// Spins (yielding to the model) until `f` returns `Some`.
    pub fn spin<T>(mut f: impl FnMut() -> Option<T>) -> T {
        loop {
            if let Some(v) = f() {
                return v;
            }
            crate::sync::spin_hint();
        }
    }
}
