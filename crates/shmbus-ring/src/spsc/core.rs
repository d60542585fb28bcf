//! The SPSC record ring's algorithm, over any [`Memory`]: the producer's and the consumer's
//! halves (PROTOCOL §4.2–§4.5). No segment, no liveness, no waiting: those are the ring file's
//! and the endpoint layer's.

use super::MAX_POSITION;
use crate::conv::{len_u32, offset, wide};
use crate::endpoint::{Audit, FastPop, Publish, ReadCore, ReadInPlace, WriteCore, WriteInPlace};
use crate::error::{Corruption, PopError, PushError};
use crate::frame::{
    decode, encode, record_size, HEADER_SIZE, KIND_DATA, KIND_PADDING, KIND_SKIP, MAX_SKIP_LEN,
};
use crate::ring::Words;
use crate::sync::RawMem;
use crate::sync::{Memory, Ordering};
use crate::wait::{notify, Direction};

mod fast;
mod placement;
pub use placement::Align;

/// Where a ring's words live inside its memory, and its geometry (validated at open).
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    /// Where the positions, the data and the wake words are.
    pub(crate) words: Words,
    pub(crate) cap: u64,
    pub(crate) max_record: u64,
    /// The message bound (layout 1.2), 0 for none: then no message is counted.
    pub(crate) limit: u64,
    /// The message counts (`sent` in the producer block, `taken` in the consumer block),
    /// meaningful when `limit != 0`.
    pub(crate) counts: (usize, usize),
    /// An aligned ring (layout 1.5): skip records are valid, and this is where the producer
    /// puts payloads. `None`: skip records are corruption.
    pub(crate) aligned: Option<Align>,
}

impl Geometry {
    #[inline]
    fn mask(&self) -> u64 {
        self.cap - 1
    }

    /// The memory offset of the word/byte at ring position `pos`.
    #[inline]
    fn at(&self, pos: u64) -> usize {
        self.words.data + offset(pos & self.mask())
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
            KIND_SKIP if self.aligned.is_some() => {
                let size = HEADER_SIZE + u64::from(len);
                if u64::from(len) > MAX_SKIP_LEN || len % 8 != 0 {
                    return Err(corrupt(
                        "skip record length is not a multiple of 8 up to 48",
                    ));
                }
                if off + size + HEADER_SIZE > self.cap {
                    return Err(corrupt(
                        "skip record leaves no room for its data record before the end of the ring",
                    ));
                }
                Ok(Some((KIND_SKIP, size)))
            }
            _ => Err(corrupt("unknown record kind")),
        }
    }
}

/// The producer's half of the algorithm.
pub struct ProducerCore<M: Memory> {
    mem: M,
    g: Geometry,
    /// Next position to write (process-local; published to the control block for observers).
    tail: u64,
    /// The consumer's `head` as last read; refreshed only when the ring looks full.
    cached_head: u64,
    /// The producer's position at attach: every record from here on was committed by this
    /// producer (its own stores, which its own loads see), records before it by a predecessor.
    own_from: u64,
    /// Data records committed (bounded rings; process-local, published to `sent`).
    sent: u64,
    /// The consumer's `taken` as last read; refreshed only when the bound looks reached.
    cached_taken: u64,
    /// A skip record placed before the record being written: its position and header word,
    /// stored by the record's commit (PROTOCOL §4.2, R1s).
    skip: Option<(u64, u64)>,
    /// The next placement is packed, whatever its length (`pack_next`).
    pack: bool,
    /// The largest payload `try_push_fast` takes (`fast_limit`).
    fast_max: u64,
    /// No message bound and no wake words (`is_quiet`).
    quiet: bool,
}

impl<M: Memory> ProducerCore<M> {
    /// Attaches a producer: reads and validates the published positions, then walks forward
    /// over any record committed after the published `tail` (a previous producer may have died
    /// between committing a record and publishing `tail`).
    ///
    /// # Safety
    ///
    /// - `mem` holds `g`'s control words and `g.cap` bytes of data at `g.words.data`.
    pub(crate) unsafe fn attach(mem: M, g: Geometry) -> Result<Self, Corruption> {
        // S4: Relaxed; the published tail is only a starting point, re-validated by the walk.
        // SAFETY: control words are in bounds and aligned by the caller's contract.
        let mut tail = unsafe { mem.load(g.words.tail, Ordering::Relaxed) };
        // A5: Acquire; pairs with the consumer's Release store of `head` (R2), so its reads of
        // the space it freed happen before we overwrite it.
        // SAFETY: as above.
        let head = unsafe { mem.load(g.words.head, Ordering::Acquire) };
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
        // C4: Relaxed, both: a successor's starting counts. `taken` is stored before the
        // consumer's Release of `head` (C2 before R2), which A5 read. A count a dead producer
        // left behind is made good whenever the ring is seen empty (`reload_taken`).
        let (mut sent, taken) = if g.limit == 0 {
            (0, 0)
        } else {
            // SAFETY: the count words are in-bounds aligned control words (caller's contract).
            unsafe {
                (
                    mem.load(g.counts.0, Ordering::Relaxed),
                    mem.load(g.counts.1, Ordering::Relaxed),
                )
            }
        };
        // Walk from the later of the two.
        tail = tail.max(head);
        // At most cap / 8 records can lie between the published tail and the true one.
        for _ in 0..=g.cap / 8 {
            // A6: Acquire; pairs with the Release header store (R1) of the producer that wrote it.
            // SAFETY: `at` is in the data region and 8-aligned (tail is).
            let word = unsafe { mem.load(g.at(tail), Ordering::Acquire) };
            match g.check_header(tail, word)? {
                None => {
                    return Ok(ProducerCore {
                        mem,
                        g,
                        tail,
                        cached_head: head,
                        own_from: tail,
                        sent: sent.max(taken),
                        cached_taken: taken,
                        skip: None,
                        pack: false,
                        fast_max: Self::fast_limit(&g),
                        quiet: Self::is_quiet(&g),
                    })
                }
                Some((kind, size)) => {
                    // A record committed after the published tail was not counted either.
                    sent = sent.wrapping_add(u64::from(kind == KIND_DATA));
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
        let head = self.reload_head()?;
        if end - head <= self.g.cap {
            Ok(())
        } else {
            Err(PushError::Full)
        }
    }

    /// Reloads and validates the consumer's `head` (step 3 of PROTOCOL §4.3) into
    /// `cached_head`.
    #[inline]
    fn reload_head(&mut self) -> Result<u64, Corruption> {
        // A1: Acquire; pairs with the consumer's Release store of `head` (R2, `publish_head`):
        // its reads of the records it consumed happen before our writes over them.
        // SAFETY: `head_off` is an in-bounds aligned control word (attach contract).
        let head = unsafe { self.mem.load(self.g.words.head, Ordering::Acquire) };
        if head % 8 != 0 || head < self.cached_head || head > self.tail {
            return Err(Corruption {
                what: "consumer head moved backwards, past the tail, or off alignment",
                position: self.tail,
                value: head,
            });
        }
        self.cached_head = head;
        Ok(head)
    }

    /// Whether one more message fits under the message bound (always, unbounded), after
    /// `extra` placed but not yet counted (a batch's); reloads the consumer's count only when
    /// the cached one says it does not.
    #[inline]
    fn counted_room(&mut self, extra: u64) -> Result<(), PushError> {
        // Wrapping: the counts come from shared memory (a successor's start, a peer's
        // `taken`); after a crash `sent` may trail `taken`, which reads as "full" here until
        // `reload_taken` resynchronises.
        let held = |this: &Self| {
            this.sent
                .wrapping_sub(this.cached_taken)
                .wrapping_add(extra)
        };
        if self.g.limit == 0 || held(self) < self.g.limit {
            return Ok(());
        }
        self.reload_taken()?;
        if held(self) < self.g.limit {
            Ok(())
        } else {
            Err(PushError::Full)
        }
    }

    /// Reloads the consumer's `head` and `taken` (PROTOCOL §4.6). `taken` never moves back;
    /// whenever the ring is seen empty (`head == tail`), every committed record was consumed,
    /// so `sent` is set to `taken`: that makes good the count of a producer that died between
    /// a commit and its count (C1), or of a consumer that counted a record twice after a
    /// takeover.
    #[cold]
    #[inline(never)]
    fn reload_taken(&mut self) -> Result<(), Corruption> {
        let head = self.reload_head()?;
        // C3: Relaxed; after A1 (the Acquire load of `head` in `reload_head`), so it sees at
        // least the count the consumer stored before that head (C2 before R2).
        // SAFETY: in-bounds aligned control word (attach contract).
        let taken = unsafe { self.mem.load(self.g.counts.1, Ordering::Relaxed) };
        if taken < self.cached_taken {
            return Err(Corruption {
                what: "consumer's message count moved backwards",
                position: self.tail,
                value: taken,
            });
        }
        self.cached_taken = taken;
        if head == self.tail || taken > self.sent {
            self.sent = taken;
        }
        Ok(())
    }

    /// Counts `n` committed data records and publishes the count (bounded rings): after
    /// their commit (R1) and before the published `tail` (S2), so that a producer killed in
    /// between leaves the count ahead, never behind (its successor's walk from the stale
    /// `tail` counts those records again): the bound is then tighter, never looser, until the
    /// ring is next seen empty.
    #[inline]
    fn count_sent(&mut self, n: u64) {
        if self.g.limit != 0 {
            self.sent = self.sent.wrapping_add(n);
            // C1: Relaxed: informational (occupancy for observers, a successor's starting
            // count); the bound itself is kept by this producer's own `sent`.
            // SAFETY: in-bounds aligned control word (attach contract).
            unsafe {
                self.mem
                    .store(self.g.counts.0, self.sent, Ordering::Relaxed);
            };
        }
    }

    /// Publishes the record whose header `word` goes at `start` and which ends at `end`, a
    /// data record (`data == 1`, counted) or padding (`data == 0`).
    // Always (as `place`): the per-record path of every push.
    #[inline(always)]
    fn publish(&mut self, start: u64, end: u64, word: u64, data: u64) {
        // SAFETY: `at` gives in-bounds aligned data words; `end` is free space by `ensure`, and
        // so is a placed skip record before `start` (`place`).
        unsafe {
            // Zero-ahead: the next header position reads 0 until that record is committed.
            // S1: Relaxed; ordered before the consumer's view by the Release store just below.
            self.mem.store(self.g.at(end), 0, Ordering::Relaxed);
            if self.skip.is_none() {
                // R1: Release; publishes the payload and the zero-ahead word; pairs with the
                // Acquire load of the header word (A2) in `ConsumerCore::next`.
                self.mem.store(self.g.at(start), word, Ordering::Release);
            } else {
                self.publish_skipped(start, word);
            }
        }
        crate::crashpoint::hit("spsc.push.published");
        // C1 (bounded rings): between R1 and S2.
        self.count_sent(data);
        self.tail = end;
        // S2: Release: `tail` in shared memory is informational (occupancy, a successor
        // producer's starting point, which it re-validates by walking headers); data
        // visibility goes through header words. Release (a plain store on x86) only for the
        // consumer's audit: pairs with its Acquire load of `tail` (A9, `ConsumerCore::audit`),
        // so every header before `end` is visible to it.
        // SAFETY: in-bounds aligned control word.
        unsafe { self.mem.store(self.g.words.tail, end, Ordering::Release) };
        self.notify_data();
    }

    /// Stores the header `word` of the record at `start` and commits it with the skip record
    /// `place` put before it; a skip placed for another position (stale: a reservation never
    /// committed) is dropped, and the record committed alone.
    #[cold]
    #[inline(never)]
    fn publish_skipped(&mut self, start: u64, word: u64) {
        let skip = self.skip.take();
        // SAFETY: `at` gives in-bounds aligned data words: `start` from `place`/`ensure`, and
        // the skip's position, free space `place` granted with it.
        unsafe {
            // A skip is current only at the tail: a reservation never committed (its guard
            // leaked with `mem::forget`) left one behind, and a batch, which never skips, may
            // since have moved the tail so that the stale skip's record would start at `start`.
            let tail = self.tail;
            match skip
                .filter(|&(at, w)| at == tail && at + HEADER_SIZE + u64::from(decode(w).0) == start)
            {
                Some((at, skip)) => {
                    // S5: Relaxed; the consumer reaches this header only through the skip
                    // header, whose Release store just below orders it.
                    self.mem.store(self.g.at(start), word, Ordering::Relaxed);
                    // R1s: Release; commits the skip and the record after it at once: publishes
                    // the payload, the record's header and the zero-ahead word; pairs with the
                    // Acquire load of the header word (A2) in `ConsumerCore::next`.
                    self.mem.store(self.g.at(at), skip, Ordering::Release);
                }
                // R1: as in `publish`.
                None => self.mem.store(self.g.at(start), word, Ordering::Release),
            }
        }
    }

    /// Finds room for a record of `len` payload bytes, publishing a padding record first if it
    /// would cross the end. Returns the record's start position.
    // Always: left to the heuristics it stayed a call in `try_push` once `try_push` became a
    // trait method, which cost the streaming rate at 8 B about a fifth (harness A/B).
    #[inline(always)]
    fn place(&mut self, len: usize) -> Result<u64, PushError> {
        let placed = self.place_inner(len);
        self.pack = false;
        placed
    }

    /// [`place`](Self::place), before the one-shot `pack` is reset.
    #[inline(always)]
    fn place_inner(&mut self, len: usize) -> Result<u64, PushError> {
        if wide(len) > self.g.max_record {
            return Err(PushError::TooLarge {
                len,
                max: offset(self.g.max_record),
            });
        }
        self.counted_room(0)?;
        let size = record_size(wide(len));
        let mut skip = self.skip_before(self.tail, wide(len), size);
        let to_end = self.g.cap - (self.tail & self.g.mask());
        if skip + size > to_end {
            // The padding alone, with its zero-ahead word (offset 0 of the next lap).
            self.ensure(self.tail + to_end + 8)?;
            let start = self.tail;
            self.publish(
                start,
                start + to_end,
                encode(len_u32(offset(to_end - HEADER_SIZE)), KIND_PADDING),
                0,
            );
            skip = self.skip_before(self.tail, wide(len), size);
        }
        self.ensure(self.tail + skip + size + 8)?;
        if skip != 0 {
            // Stored by this record's commit (`publish_skipped`); a stale one, of a reservation
            // never committed, is recognised there by its position.
            self.skip = Some((
                self.tail,
                encode(len_u32(offset(skip - HEADER_SIZE)), KIND_SKIP),
            ));
        }
        Ok(self.tail + skip)
    }

    #[inline]
    fn notify_data(&self) {
        if let Some(w) = self.g.words.wake {
            // SAFETY: wake words are in-bounds aligned control words (attach contract).
            unsafe { notify(&self.mem, w, Direction::Data) };
        }
    }
}

/// The consumer's half of the algorithm.
pub struct ConsumerCore<M: Memory> {
    mem: M,
    g: Geometry,
    /// Next position to read (process-local; published after each consumed record).
    head: u64,
    /// Data records consumed (bounded rings; process-local, published with `head`).
    taken: u64,
    /// No message bound and no wake words (`ProducerCore::is_quiet`).
    quiet: bool,
}

impl<M: Memory> ConsumerCore<M> {
    /// Attaches a consumer at the published `head`, which must be within a lap of the published
    /// `tail` (either side: the published tail may be stale, see `ProducerCore::attach`).
    ///
    /// # Safety
    ///
    /// - `mem` holds `g`'s control words and `g.cap` bytes of data at `g.words.data`.
    pub(crate) unsafe fn attach(mem: M, g: Geometry) -> Result<Self, Corruption> {
        // A7: Acquire on `head`; pairs with the previous consumer's Release store of it (R2,
        // `publish_head`), so a successor starts after everything it consumed. S4: Relaxed on
        // `tail`: informational (see `ProducerCore::publish`).
        // SAFETY: in-bounds aligned control words by the caller's contract.
        let (head, tail) = unsafe {
            (
                mem.load(g.words.head, Ordering::Acquire),
                mem.load(g.words.tail, Ordering::Relaxed),
            )
        };
        if head % 8 != 0 || head > MAX_POSITION || head.abs_diff(tail) > g.cap - 8 {
            return Err(Corruption {
                what: "consumer head is misaligned, beyond 2^62, or not within one capacity of the tail",
                position: head,
                value: tail,
            });
        }
        // C4: Relaxed; after A7, whose Acquire of `head` orders the predecessor's C2.
        let taken = if g.limit == 0 {
            0
        } else {
            // SAFETY: in-bounds aligned control word by the caller's contract.
            unsafe { mem.load(g.counts.1, Ordering::Relaxed) }
        };
        Ok(ConsumerCore {
            mem,
            g,
            head,
            taken,
            quiet: ProducerCore::<M>::is_quiet(&g),
        })
    }

    /// The next committed data record: `(start position, payload length)`, skipping (and
    /// consuming) a padding record. `Ok(None)` when nothing is committed.
    // Always: the per-record step of every pop (left to the heuristics, it stayed a call in
    // `try_pop_batch`, ~2 ns a record).
    #[inline(always)]
    pub(crate) fn next(&mut self) -> Result<Option<(u64, usize)>, Corruption> {
        // A2: Acquire; pairs with the Release header store (R1, R1s) in `ProducerCore::publish`
        // / `publish_skipped` / `try_push_batch`: the payload, the record's header after a skip
        // and the zero-ahead word are visible once the header is.
        // SAFETY: `at` is an in-bounds aligned data word (head is 8-aligned, validated).
        let word = unsafe { self.mem.load(self.g.at(self.head), Ordering::Acquire) };
        match self.g.check_header(self.head, word)? {
            None => Ok(None),
            Some((KIND_DATA, _)) => Ok(Some((self.head, offset(u64::from(decode(word).0))))),
            Some((kind, size)) => self.next_after(kind, size),
        }
    }

    /// [`next`](Self::next) past a padding or skip record of `size` bytes at `head`: padding
    /// moves `head` to offset 0, where no padding is valid; a skip record must be followed by
    /// the data record it was committed with (and is consumed with it: `head` is published
    /// when that is).
    #[cold]
    #[inline(never)]
    fn next_after(
        &mut self,
        mut kind: u32,
        mut size: u64,
    ) -> Result<Option<(u64, usize)>, Corruption> {
        if kind == KIND_PADDING {
            self.advance(size);
            // A2, as in `next`.
            // SAFETY: as in `next`.
            let word = unsafe { self.mem.load(self.g.at(self.head), Ordering::Acquire) };
            match self.g.check_header(self.head, word)? {
                None => return Ok(None),
                Some((KIND_DATA, _)) => {
                    return Ok(Some((self.head, offset(u64::from(decode(word).0)))))
                }
                Some((k, s)) => (kind, size) = (k, s),
            }
        }
        let at = self.head;
        if kind == KIND_SKIP {
            self.head += size;
            // A2, as in `next` (the record's header is ordered by the skip header's R1s, which
            // the caller's A2 read).
            // SAFETY: as in `next`.
            let word = unsafe { self.mem.load(self.g.at(self.head), Ordering::Acquire) };
            if let Some((KIND_DATA, _)) = self.g.check_header(self.head, word)? {
                return Ok(Some((self.head, offset(u64::from(decode(word).0)))));
            }
            self.head = at;
            return Err(Corruption {
                what: "skip record not followed by the data record it commits",
                position: at,
                value: word,
            });
        }
        Err(Corruption {
            what: "padding where the ring's layout allows none",
            position: at,
            value: size,
        })
    }

    /// Marks `size` bytes at `head` consumed and publishes the new head.
    #[inline]
    pub(crate) fn advance(&mut self, size: u64) {
        self.head += size;
        self.publish_head();
    }

    #[inline]
    fn publish_head(&mut self) {
        if self.g.limit != 0 {
            // C2: Relaxed; ordered before the producer's view by R2 just below, so a producer
            // that reads this `head` (A1) reads at least this count (C3).
            // SAFETY: in-bounds aligned control word.
            unsafe {
                self.mem
                    .store(self.g.counts.1, self.taken, Ordering::Relaxed);
            };
        }
        // R2: Release; our reads of the consumed records happen before the producer reuses the
        // space; pairs with the Acquire load of `head` (A1) in `ProducerCore::ensure`.
        // SAFETY: in-bounds aligned control word.
        unsafe {
            self.mem
                .store(self.g.words.head, self.head, Ordering::Release);
        };
        if let Some(w) = self.g.words.wake {
            // SAFETY: wake words are in-bounds aligned control words (attach contract).
            unsafe { notify(&self.mem, w, Direction::Space) };
        }
    }

    /// Whether no committed record waits at `head` (padding counts as nothing).
    pub(crate) fn is_empty(&mut self) -> bool {
        !matches!(self.next(), Ok(Some(_)))
    }
}

impl<M: Memory> WriteCore for ProducerCore<M> {
    const FAST: bool = true;

    #[inline(always)]
    fn try_push_fast(&mut self, payload: &[u8]) -> bool {
        ProducerCore::try_push_fast(self, payload)
    }

    #[inline(always)]
    fn try_reserve_fast(&mut self, len: usize) -> Option<u64> {
        ProducerCore::try_reserve_fast(self, len)
    }

    /// Copies `payload` in as one record and publishes it.
    // Always (D86): left to the heuristics it became a call from the endpoint layer's
    // `try_push` once an unrelated change elsewhere moved the inlining budget, and the raw
    // ring streamed 8 B messages at half the rate (harness A/B).
    #[inline(always)]
    fn try_push(&mut self, payload: &[u8]) -> Result<(), PushError> {
        let start = self.place(payload.len())?;
        // SAFETY: `place` checked the record fits before the end of the data region and is free.
        unsafe {
            self.mem
                .write(self.g.at(start) + offset(HEADER_SIZE), payload);
        };
        crate::crashpoint::hit("spsc.push.written");
        let end = start + record_size(wide(payload.len()));
        self.publish(start, end, encode(len_u32(payload.len()), KIND_DATA), 1);
        Ok(())
    }

    /// Pushes as many of `records` as fit, in order, publishing them with one Release store.
    fn try_push_batch<R: AsRef<[u8]>>(&mut self, records: &[R]) -> Result<usize, PushError> {
        for r in records {
            let len = r.as_ref().len();
            if wide(len) > self.g.max_record {
                return Err(PushError::TooLarge {
                    len,
                    max: offset(self.g.max_record),
                });
            }
        }
        let first = self.tail;
        let mut first_word = 0u64;
        let mut tail = self.tail;
        let mut pushed = 0;
        // S3: headers after the first are stored Relaxed as we go: the consumer cannot reach them
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
            if let Err(e) = self.counted_room(wide(pushed)) {
                stopped = Some(e);
                break;
            }
            let size = record_size(wide(payload.len()));
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
                    encode(len_u32(offset(to_end - HEADER_SIZE)), KIND_PADDING),
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
                    .write(self.g.at(tail) + offset(HEADER_SIZE), payload);
            };
            put_header(self, tail, encode(len_u32(payload.len()), KIND_DATA));
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
                // S1: zero-ahead for the record after the batch; Relaxed, ordered by R1 below.
                self.mem.store(self.g.at(tail), 0, Ordering::Relaxed);
                // R1: Release; publishes every payload and header of the batch; pairs with the
                // Acquire load of the header word (A2) in `ConsumerCore::next`.
                self.mem
                    .store(self.g.at(first), first_word, Ordering::Release);
            }
            // C1, between R1 and S2 as in `publish`.
            self.count_sent(wide(pushed));
            // S2: Release, as in `publish` (pairs with A9 of the consumer's audit).
            // SAFETY: in-bounds aligned control word.
            unsafe { self.mem.store(self.g.words.tail, tail, Ordering::Release) };
            self.tail = tail;
            self.notify_data();
        }
        match stopped {
            Some(e) if pushed == 0 => Err(e),
            _ => Ok(pushed),
        }
    }

    // Always, as `place` and `publish`: left to the heuristics, each stayed a call on the
    // typed channel's send path (the one-pass encode reserves, then commits).
    #[inline(always)]
    fn reserve(&mut self, len: usize) -> Result<u64, PushError> {
        self.place(len)
    }

    #[inline(always)]
    fn commit(&mut self, at: u64, len: usize) {
        let end = at + record_size(wide(len));
        self.publish_data(at, end, len_u32(len));
    }

    fn abandon(&mut self, _at: u64) {
        // Nothing was published: the next record is written over the reservation (and its
        // skip record, if it had one).
        self.skip = None;
    }

    #[inline]
    fn pack_next(&mut self) {
        self.pack = true;
    }

    fn max_message(&self) -> usize {
        offset(self.g.max_record)
    }

    /// The bound reached, or no room for the smallest record (an empty payload, 8 bytes,
    /// which never needs padding). Not the largest: with the default record limit
    /// (`capacity − 16`) a largest record fits only after a padding record that a push
    /// publishes and the consumer passes, so "full for the largest" would stay true on an
    /// empty ring until something pushed.
    fn is_full(&mut self) -> bool {
        self.counted_room(0).is_err() || self.ensure(self.tail + HEADER_SIZE + 8).is_err()
    }

    fn position(&self) -> u64 {
        self.tail
    }

    /// The ring is full: the consumer's `head` is at least a record behind `tail`. Every record
    /// in `[head, tail)` was committed (its header word stored nonzero and valid, R1 or S3)
    /// and consumers never clear a header, so the word at `head` must be a valid header
    /// (PROTOCOL §4.4, "contradictions").
    fn audit(&mut self) -> Audit {
        let head = match self.reload_head() {
            Ok(h) => h,
            Err(c) => return Audit::Corrupt(c),
        };
        if head >= self.tail {
            // Empty (head == tail): there is room now.
            return Audit::Fine;
        }
        // A8: Acquire; pairs with the R1 of the producer that committed the record at `head`
        // (a predecessor's, as A6 does; our own stores we see anyway).
        // SAFETY: `head` is 8-aligned (validated), so `at` is an in-bounds aligned data word.
        let word = unsafe { self.mem.load(self.g.at(head), Ordering::Acquire) };
        let found = match self.g.check_header(head, word) {
            Ok(Some(_)) => return Audit::Fine,
            Ok(None) => Corruption {
                what: "record header at the consumer's head is zero, but the producer committed a record there",
                position: head,
                value: word,
            },
            Err(c) => c,
        };
        if head >= self.own_from {
            // Our own record: our own loads see our stores. Certain.
            Audit::Corrupt(found)
        } else {
            // A predecessor's record, which nothing but its commit orders before our load.
            Audit::Suspect(found)
        }
    }
}

impl<M: Memory> ConsumerCore<M> {
    /// The audit's case of a published `tail` behind `head`: legal when a producer died
    /// between a commit (R1) and publishing `tail` (S2), or has not published since it took
    /// over (§4.5), and also when A9 read an older S2 than the latest. The records in
    /// `[tail, head)` were committed and read, and no producer writes over them before it
    /// publishes a `tail` beyond them, so their headers, walked from `tail`, lead exactly to
    /// `head` — unless `tail` was such a stale read, and the producer has since reused the
    /// space (the loom model finds this). So anything else is a suspect, never corrupt at
    /// once: a stale read does not last a probe interval.
    fn audit_behind(&self, tail: u64) -> Audit {
        let head = self.head;
        let mut pos = tail;
        for _ in 0..=self.g.cap / 8 {
            if pos == head {
                return Audit::Fine;
            }
            if pos > head {
                break;
            }
            // A10: Acquire, as below (pairs with the R1 that committed the record at `pos`).
            // SAFETY: `pos` is 8-aligned (tail was checked, sizes are multiples of 8), so `at`
            // is an in-bounds aligned data word.
            let word = unsafe { self.mem.load(self.g.at(pos), Ordering::Acquire) };
            match self.g.check_header(pos, word) {
                Ok(Some((_, size))) => pos += size,
                _ => break,
            }
        }
        Audit::Suspect(Corruption {
            what: "consumer head is beyond the published tail, and the records after the tail do not lead to it",
            position: head,
            value: tail,
        })
    }
}

impl<M: Memory> ReadCore for ConsumerCore<M> {
    const FAST: bool = true;

    #[inline(always)]
    fn try_pop_fast(&mut self, buf: &mut [u8]) -> FastPop {
        ConsumerCore::try_pop_fast(self, buf)
    }

    /// Pops one record into `buf`.
    // Always (D86), as `ProducerCore::try_push`: the consumer's half of the same halving.
    #[inline(always)]
    fn try_pop(&mut self, buf: &mut [u8]) -> Result<usize, PopError> {
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
                .read(self.g.at(start) + offset(HEADER_SIZE), &mut buf[..len]);
        };
        crate::crashpoint::hit("spsc.pop.read");
        self.taken = self.taken.wrapping_add(1);
        self.advance(record_size(wide(len)));
        Ok(len)
    }

    /// Pops one record, appending its bytes to a cleared `buf`.
    fn try_pop_vec(&mut self, buf: &mut Vec<u8>) -> Result<usize, PopError> {
        let (start, len) = self.next()?.ok_or(PopError::Empty)?;
        buf.clear();
        buf.resize(len, 0);
        // SAFETY: `next` validated the record lies within the data region.
        unsafe { self.mem.read(self.g.at(start) + offset(HEADER_SIZE), buf) };
        crate::crashpoint::hit("spsc.pop.read");
        self.taken = self.taken.wrapping_add(1);
        self.advance(record_size(wide(len)));
        Ok(len)
    }

    // Always: on the per-message path of every in-place read and batch (a call here cost
    // ~2 ns per message in `spsc/batch32`).
    #[inline(always)]
    fn next(&mut self) -> Result<Option<(u64, usize)>, PopError> {
        Ok(ConsumerCore::next(self)?)
    }

    #[inline]
    fn consume(&mut self, _at: u64, len: usize, publish: Publish) {
        self.head += record_size(wide(len));
        self.taken = self.taken.wrapping_add(1);
        if publish == Publish::Now {
            self.publish_head();
        }
    }

    fn flush(&mut self) {
        self.publish_head();
    }

    fn unwind(&mut self, _at: u64, _len: usize) {
        // Not consumed: `head` still points at it.
    }

    fn pop_buffer_min(&self) -> usize {
        0
    }

    fn has_committed(&mut self) -> bool {
        !self.is_empty()
    }

    fn position(&self) -> u64 {
        self.head
    }

    /// The ring is empty at `head`. If the published `tail` is beyond `head`, a record was
    /// committed at `head` before that `tail` was published (R1 before S2, in program order),
    /// so the header word there must be valid; and the published `tail` is never more than
    /// `capacity − 8` beyond any `head` the consumer published (PROTOCOL §4.4,
    /// "contradictions").
    fn audit(&mut self) -> Audit {
        let head = self.head;
        // A9: Acquire; pairs with the Release store of the published `tail` (S2): every header
        // stored before it (R1, S3) is visible to the load below.
        // SAFETY: in-bounds aligned control word (attach contract).
        let tail = unsafe { self.mem.load(self.g.words.tail, Ordering::Acquire) };
        let corrupt = |what, value| Corruption {
            what,
            position: head,
            value,
        };
        if tail % 8 != 0 || tail > MAX_POSITION {
            return Audit::Corrupt(corrupt(
                "published tail is not 8-byte aligned or beyond 2^62",
                tail,
            ));
        }
        if tail < head {
            return self.audit_behind(tail);
        }
        if tail == head {
            return Audit::Fine;
        }
        if tail - head > self.g.cap - 8 {
            return Audit::Corrupt(corrupt(
                "published tail is more than a lap beyond the consumer's head",
                tail,
            ));
        }
        // A10: Acquire; pairs with the R1 that committed the record at `head` (ordered before
        // this load by A9 already; Acquire as A2, whose view it checks).
        // SAFETY: `head` is 8-aligned, so `at` is an in-bounds aligned data word.
        let word = unsafe { self.mem.load(self.g.at(head), Ordering::Acquire) };
        match self.g.check_header(head, word) {
            Ok(Some(_)) => Audit::Fine,
            Err(c) => Audit::Corrupt(c),
            // Certain for records of the producer whose S2 we read (R1 → S2 → A9), but a
            // record of a predecessor that died is ordered before its successor's S2 only if
            // the successor's attach walked it (A6); the ones below the published tail it
            // started from are ordered by nothing (S4 is Relaxed): two probes, not one.
            Ok(None) => Audit::Suspect(corrupt(
                "record header at the consumer's head is zero, but the published tail is beyond it",
                tail,
            )),
        }
    }
}

impl WriteInPlace for ProducerCore<RawMem> {
    #[inline]
    fn payload(&self, at: u64) -> *mut u8 {
        // SAFETY: `place` checked that the record lies inside the data region.
        unsafe { self.mem.ptr(self.g.at(at) + offset(HEADER_SIZE)) }
    }
}

impl ReadInPlace for ConsumerCore<RawMem> {
    #[inline]
    fn payload(&self, at: u64) -> *const u8 {
        // SAFETY: `next` validated that the record lies inside the data region.
        unsafe { self.mem.ptr(self.g.at(at) + offset(HEADER_SIZE)) }
    }
}
