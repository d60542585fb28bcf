//! The broadcast publisher's half (PROTOCOL §8.3): the gate over tethered subscribers, the
//! intent, the history index, and a successor's recovery of a dead publisher's tail.

use super::aux::{
    CURSOR_FLAGS, CURSOR_POSITION, EJECTIONS, FLAG_CONFIRMED, FLAG_EJECTED, FLAG_TETHERED, GATE,
    GEN, HIST_HEAD, INTENT, SEEN_GEN, TETHERED,
};
use super::frame::{Geometry, Word};
use super::{SlowSubscribers, MAX_POSITION};
use crate::conv::{len_u32, offset, wide};
use crate::endpoint::{Audit, WriteCore, WriteInPlace};
use crate::error::{Corruption, PushError};
use crate::frame::{record_size, HEADER_SIZE, KIND_DATA, KIND_PADDING};
use crate::layout::MAX_ENDPOINTS;
use crate::sync::{fence, Memory, Ordering, RawMem};
use crate::wait::{notify, Direction};
use std::time::Instant;

/// The publisher's half of the algorithm.
pub struct PublisherCore<M: Memory> {
    mem: M,
    g: Geometry,
    /// Next position to write.
    tail: u64,
    /// The first position the gate forbids writing: the slowest tethered subscriber's
    /// position plus the capacity (`u64::MAX` with no tethered subscriber).
    limit: u64,
    /// The roster generation `limit` accounts for.
    seen_gen: u64,
    /// The intent last stored; never stored lower (a dead predecessor's may be higher).
    intent: u64,
    /// Data records ever published.
    hist_head: u64,
    /// What to do about a subscriber that leaves no room.
    pub(crate) policy: SlowSubscribers,
    /// Since when pushes have found the ring full (for [`SlowSubscribers::Untether`]).
    full_since: Option<Instant>,
}

impl<M: Memory> PublisherCore<M> {
    /// Attaches a publisher: validates the published words, then walks forward over any record
    /// committed after the published `tail` (a predecessor may have died between a commit and
    /// publishing `tail`), adding it to the history if it is not there yet.
    ///
    /// # Safety
    ///
    /// `mem` holds the first page, `g.cap` bytes of data at `g.words.data`, and the auxiliary
    /// region of `g`.
    pub(crate) unsafe fn attach(mem: M, g: Geometry) -> Result<Self, Corruption> {
        // Every access below: the words are in bounds and aligned by the
        // caller's contract; `at` masks positions into the data region.
        // B1: Relaxed, all three: a starting point re-validated by the walk, and counts and an
        // intent that only a live publisher (there is none) moves.
        // SAFETY: an offset of the validated geometry: in bounds and aligned (attach contract).
        let published = unsafe { mem.load(g.words.tail, Ordering::Relaxed) };
        // SAFETY: an offset of the validated geometry: in bounds and aligned (attach contract).
        let intent = unsafe { mem.load(g.aux(INTENT), Ordering::Relaxed) };
        // SAFETY: an offset of the validated geometry: in bounds and aligned (attach contract).
        let mut hist_head = unsafe { mem.load(g.aux(HIST_HEAD), Ordering::Relaxed) };
        let corrupt = |what, value| Corruption {
            what,
            position: published,
            value,
        };
        if published % 8 != 0 || published > MAX_POSITION {
            return Err(corrupt(
                "publisher tail is not 8-byte aligned or beyond 2^62",
                published,
            ));
        }
        if intent > MAX_POSITION || (intent < published + HEADER_SIZE && published != 0) {
            return Err(corrupt(
                "publisher intent is behind its tail or beyond 2^62",
                intent,
            ));
        }
        if hist_head > MAX_POSITION {
            return Err(corrupt("history count beyond 2^62", hist_head));
        }
        // The last record in the history: a record the walk meets at or before it is there.
        let last = if hist_head == 0 {
            None
        } else {
            // SAFETY: an offset of the validated geometry: in bounds and aligned (attach contract).
            Some(unsafe { mem.load(g.hist(hist_head - 1), Ordering::Relaxed) })
        };
        let mut tail = published;
        for _ in 0..=g.cap / 8 {
            // B2: Acquire; pairs with the Release header store (P3) of the publisher that
            // wrote it.
            // SAFETY: an offset of the validated geometry: in bounds and aligned (attach contract).
            let word = unsafe { mem.load(g.at(tail), Ordering::Acquire) };
            match g.check(tail, word) {
                Word::Empty | Word::OtherLap => {
                    if tail != published {
                        // B3: Relaxed entries, then the Release count and tail (as P5, P6).
                        // SAFETY: an offset of the validated geometry: in bounds and aligned (attach contract).
                        unsafe {
                            mem.store(g.aux(HIST_HEAD), hist_head, Ordering::Release);
                            mem.store(g.words.tail, tail, Ordering::Release);
                        }
                    }
                    let mut core = PublisherCore {
                        mem,
                        g,
                        tail,
                        limit: 0,
                        // Not a generation: the first rescan publishes what it accounts for.
                        seen_gen: u64::MAX,
                        intent: intent.max(tail + HEADER_SIZE),
                        hist_head,
                        policy: SlowSubscribers::Block,
                        full_since: None,
                    };
                    core.rescan();
                    return Ok(core);
                }
                Word::Invalid(c) => return Err(c),
                Word::Record { kind, size, .. } => {
                    if kind == KIND_DATA && last.map_or(true, |l| tail > l) {
                        // SAFETY: an offset of the validated geometry: in bounds and aligned (attach contract).
                        unsafe { mem.store(g.hist(hist_head), tail, Ordering::Relaxed) };
                        hist_head += 1;
                    }
                    tail += size;
                    if tail - published > g.cap - 8 {
                        return Err(corrupt(
                            "committed records after the tail overrun the ring",
                            tail,
                        ));
                    }
                }
            }
        }
        Err(corrupt("no free word after the committed records", tail))
    }

    /// G1–G4: recomputes the gate from the tethered subscribers' cursors and publishes the
    /// roster generation it accounts for.
    #[cold]
    #[inline(never)]
    fn rescan(&mut self) {
        // Every access below: aux words and cursor lines of entries below 55
        // are in bounds and aligned (attach contract).
        // G1: Acquire; pairs with the Release part of a subscriber's generation bump (J2, and
        // the RMWs after it, a release sequence): its cursor stores before the bump are
        // visible below.
        // SAFETY: an offset of the validated geometry: in bounds and aligned (attach contract).
        let gen = unsafe { self.mem.load(self.g.aux(GEN), Ordering::Acquire) };
        // G2: Relaxed; ordered by G1.
        // SAFETY: an offset of the validated geometry: in bounds and aligned (attach contract).
        let mut bits = unsafe { self.mem.load(self.g.aux(TETHERED), Ordering::Relaxed) };
        bits &= (1u64 << MAX_ENDPOINTS) - 1;
        let mut gate: Option<u64> = None;
        while bits != 0 {
            let index = u64::from(bits.trailing_zeros());
            bits &= bits - 1;
            // G3: Acquire; pairs with the subscriber's Release store of its position (V5):
            // its reads of the records before that position happen before we overwrite them.
            // SAFETY: an offset of the validated geometry: in bounds and aligned (attach contract).
            let pos = unsafe {
                self.mem
                    .load(self.g.cursor(index, CURSOR_POSITION), Ordering::Acquire)
            };
            // Relaxed: the flags' own writers are the subscriber (J1, before J2) and ejecting
            // publishers (E1, whose RMW we follow in the generation's release sequence).
            // SAFETY: an offset of the validated geometry: in bounds and aligned (attach contract).
            let flags = unsafe {
                self.mem
                    .load(self.g.cursor(index, CURSOR_FLAGS), Ordering::Relaxed)
            };
            // Not gating: not tethered, or a position that is no honest one (unaligned, beyond
            // the tail: that subscriber's own reads will fail, nobody else's). A position a
            // lap or more behind still gates, although its bytes may be overwritten already:
            // this load may be stale (an older position of a subscriber that has moved on and
            // confirmed against it), and a joiner that really started at overwritten bytes
            // fails its confirmation (J4) and joins again further on, which a rescan then
            // sees. (Excluding it let the loom model's confirmed subscriber be overwritten.)
            if flags & FLAG_TETHERED == 0 || pos % 8 != 0 || pos > self.tail {
                continue;
            }
            gate = Some(gate.map_or(pos, |g| g.min(pos)));
        }
        let limit = gate.map_or(u64::MAX, |g| g + self.g.cap);
        // Stored only when they change: a publisher that finds the ring full rescans on every
        // attempt, and its line is what validating subscribers read.
        if gen != self.seen_gen {
            // G4: Release; pairs with a probationary subscriber's Acquire load (J3): the gate
            // that accounts for it is in force before it reads "seen", and every intent stored
            // before is visible to its check.
            // SAFETY: an offset of the validated geometry: in bounds and aligned (attach contract).
            unsafe {
                self.mem.store(self.g.aux(SEEN_GEN), gen, Ordering::Release);
            };
        }
        if limit != self.limit {
            // Relaxed: informational (observers).
            // SAFETY: an offset of the validated geometry: in bounds and aligned (attach contract).
            unsafe {
                self.mem.store(
                    self.g.aux(GATE),
                    gate.unwrap_or(u64::MAX),
                    Ordering::Relaxed,
                );
            };
        }
        self.limit = limit;
        self.seen_gen = gen;
    }

    /// Ensures the gate lets the publisher write every position below `end`; rescans when
    /// the roster changed or the cached gate says no; applies the policy when still short.
    #[inline]
    fn ensure(&mut self, end: u64) -> Result<(), PushError> {
        if self.room(end) {
            return Ok(());
        }
        self.slow(end)
    }

    /// Whether the gate lets the publisher write every position below `end` (rescanning when
    /// the roster changed or the cached gate says no); a push that finds room ends a wait for
    /// room ([`SlowSubscribers::Untether`] counts its deadline from the first push that found
    /// none since).
    #[inline]
    fn room(&mut self, end: u64) -> bool {
        // G0: Relaxed: a change is acted on by `rescan`, whose G1 is the Acquire.
        // SAFETY: an aux word (attach contract).
        let gen = unsafe { self.mem.load(self.g.aux(GEN), Ordering::Relaxed) };
        if gen != self.seen_gen || end > self.limit {
            self.rescan();
            if end > self.limit {
                return false;
            }
        }
        self.full_since = None;
        true
    }

    /// The ring is full for a push up to `end`: under [`SlowSubscribers::Untether`], ejects
    /// the subscribers that gate it once the ring has been full for long enough.
    #[cold]
    #[inline(never)]
    fn slow(&mut self, end: u64) -> Result<(), PushError> {
        let SlowSubscribers::Untether { after } = self.policy else {
            return Err(PushError::Full);
        };
        let since = *self.full_since.get_or_insert_with(Instant::now);
        if since.elapsed() < after {
            return Err(PushError::Full);
        }
        self.eject_below(end.saturating_sub(self.g.cap));
        if self.room(end) {
            Ok(())
        } else {
            Err(PushError::Full)
        }
    }

    /// E1–E3: ejects every tethered subscriber whose position is below `pos`.
    fn eject_below(&mut self, pos: u64) {
        // Every access below: aux words and cursor lines of entries below 55 are in
        // bounds and aligned (attach contract).
        // SAFETY: an offset of the validated geometry: in bounds and aligned (attach contract).
        let bits = unsafe { self.mem.load(self.g.aux(TETHERED), Ordering::Acquire) };
        let mut left = bits & ((1u64 << MAX_ENDPOINTS) - 1);
        let mut ejected = 0;
        while left != 0 {
            let index = u64::from(left.trailing_zeros());
            left &= left - 1;
            // SAFETY: an offset of the validated geometry: in bounds and aligned (attach contract).
            let at = unsafe {
                self.mem
                    .load(self.g.cursor(index, CURSOR_POSITION), Ordering::Relaxed)
            };
            if at >= pos {
                continue;
            }
            // SAFETY: an offset of the validated geometry: in bounds and aligned (attach contract).
            let flags = unsafe {
                self.mem
                    .load(self.g.cursor(index, CURSOR_FLAGS), Ordering::Relaxed)
            };
            if flags & FLAG_TETHERED == 0 {
                continue;
            }
            let new = (flags & !(FLAG_TETHERED | FLAG_CONFIRMED)) | FLAG_EJECTED;
            // E2 first: Release, the tethered bit. Cleared before the flags, so that a
            // subscriber that joins again between the two (its own flags store, bit and
            // generation) either changed its flags, and E1 fails and gives the bit back, or
            // left them as E1 expects, and is ejected with its bit set (a set bit with flags
            // that say EJECTED gates nothing; it learns at its next read). The other order
            // let E2 clear the bit of a join that E1 had not ejected: a confirmed subscriber
            // nothing gated.
            // SAFETY: an offset of the validated geometry: in bounds and aligned (attach contract).
            unsafe {
                self.mem
                    .fetch_and(self.g.aux(TETHERED), !(1 << index), Ordering::Release);
            };
            crate::crashpoint::hit("broadcast.eject.bit");
            // E1: SeqCst CAS of the subscriber's flags, before any write over what it has
            // not read (those follow the intent store and the Release fence of P1): pairs
            // with the subscriber's Acquire fence and flags load after its copy (V3).
            // SAFETY: an offset of the validated geometry: in bounds and aligned (attach contract).
            let done = unsafe {
                self.mem.compare_exchange(
                    self.g.cursor(index, CURSOR_FLAGS),
                    flags,
                    new,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                )
            };
            if done.is_ok() {
                ejected += 1;
            } else {
                // The subscriber changed its flags (confirmed, left, or joined again): not
                // ejected; its bit back. Relaxed: nothing is published with it; the bits are
                // read by this publisher's own rescans (G2, after G1), which follow in program
                // order. (If it left, the bit stays set with flags 0, which gates nothing, until
                // the entry's next subscriber sets it anyway.)
                // SAFETY: an offset of the validated geometry: in bounds and aligned (attach contract).
                unsafe {
                    self.mem
                        .fetch_or(self.g.aux(TETHERED), 1 << index, Ordering::Relaxed);
                };
            }
        }
        if ejected > 0 {
            crate::crashpoint::hit("broadcast.eject");
            // SAFETY: as above.
            unsafe {
                // E3: Release, the generation (a roster change, as J2).
                self.mem.fetch_add(self.g.aux(GEN), 1, Ordering::Release);
                // Relaxed: informational.
                self.mem
                    .fetch_add(self.g.aux(EJECTIONS), ejected, Ordering::Relaxed);
            }
        }
    }

    /// Finds room for a record of `len` payload bytes, publishing a padding record first if
    /// it would cross the end, and stores the intent (P1) before anything is written. Returns
    /// the record's start position.
    #[inline(always)]
    fn place(&mut self, len: usize) -> Result<u64, PushError> {
        if wide(len) > self.g.max_record {
            return Err(PushError::TooLarge {
                len,
                max: offset(self.g.max_record),
            });
        }
        let size = record_size(wide(len));
        let to_end = self.g.cap - (self.tail & self.g.mask());
        if size > to_end {
            // The padding alone first, with its zero-ahead word (offset 0 of the next lap), as
            // SPSC does: room for the padding and the record at once may exceed what a
            // caught-up subscriber's position allows (it cannot pass a padding record that
            // is not published), which would leave the push full for ever. A padding record
            // published by a push that then finds no room stays published: harmless.
            let end = self.tail + to_end + HEADER_SIZE;
            self.ensure(end)?;
            self.intend(end);
            let start = self.tail;
            let word = self
                .g
                .word(len_u32(offset(to_end - HEADER_SIZE)), KIND_PADDING, start);
            self.publish(start, start + to_end, word, false);
        }
        let end = self.tail + size + HEADER_SIZE;
        self.ensure(end)?;
        self.intend(end);
        Ok(self.tail)
    }

    /// P1: announces that the publisher may write every position below `end`, before it
    /// writes any of them.
    #[inline(always)]
    fn intend(&mut self, end: u64) {
        if end > self.intent {
            self.intent = end;
            // P1: Release store of the intent, then a Release fence. The fence orders every
            // write of this push after the intent: pairs with a validating subscriber's Acquire
            // fence after its copy (V2). The same fence orders the last push's history count
            // (P5) before this push's history entry (the seqlock of J0). The store's Release
            // makes the counts of the records before it visible to a subscriber that loads the
            // intent with Acquire (V2) and then joins again (J0).
            // SAFETY: an aux word (attach contract).
            unsafe {
                self.mem.store(self.g.aux(INTENT), end, Ordering::Release);
            };
            fence(Ordering::Release);
        }
    }

    /// P2–P6: publishes the record whose header `word` goes at `start` and which ends at
    /// `end`.
    #[inline(always)]
    fn publish(&mut self, start: u64, end: u64, word: u64, data: bool) {
        // Every store below: `at` gives in-bounds aligned data words, `end` is inside
        // the room `ensure` granted; aux words by the attach contract.
        // SAFETY: an offset of the validated geometry: in bounds and aligned (attach contract).
        unsafe {
            // P2: zero-ahead, Relaxed; ordered before the readers' view by P3.
            self.mem.store(self.g.at(end), 0, Ordering::Relaxed);
            // P3: Release; publishes the payload and the zero-ahead word; pairs with the
            // Acquire load of the header word (V1).
            self.mem.store(self.g.at(start), word, Ordering::Release);
        }
        crate::crashpoint::hit("broadcast.push.published");
        if data {
            // SAFETY: as above.
            unsafe {
                // P4: Relaxed history entry, ordered by P5.
                self.mem
                    .store(self.g.hist(self.hist_head), start, Ordering::Relaxed);
                self.hist_head += 1;
                // P5: Release; pairs with a joiner's Acquire load of the count (J0).
                self.mem
                    .store(self.g.aux(HIST_HEAD), self.hist_head, Ordering::Release);
            }
        }
        self.tail = end;
        // P6: Release: `tail` is informational (a successor's start, which it re-validates,
        // and a joiner's `Next` with no history); pairs with the Acquire loads of J0 and the
        // audit (A1).
        // SAFETY: as above.
        unsafe { self.mem.store(self.g.words.tail, end, Ordering::Release) };
        if let Some(w) = self.g.words.wake {
            // SAFETY: wake words are in-bounds aligned control words (attach contract).
            unsafe { notify(&self.mem, w, Direction::Data) };
        }
    }
}

impl<M: Memory> WriteCore for PublisherCore<M> {
    #[inline]
    fn try_push(&mut self, payload: &[u8]) -> Result<(), PushError> {
        let start = self.place(payload.len())?;
        // SAFETY: `place` checked the record fits before the end of the data region, inside
        // the room the gate grants.
        unsafe {
            self.mem
                .write_racy(self.g.at(start) + offset(HEADER_SIZE), payload);
        };
        crate::crashpoint::hit("broadcast.push.written");
        let end = start + record_size(wide(payload.len()));
        let word = self.g.word(len_u32(payload.len()), KIND_DATA, start);
        self.publish(start, end, word, true);
        Ok(())
    }

    fn try_push_batch<R: AsRef<[u8]>>(&mut self, records: &[R]) -> Result<usize, PushError> {
        let mut pushed = 0;
        for r in records {
            match self.try_push(r.as_ref()) {
                Ok(()) => pushed += 1,
                Err(e) if pushed == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(pushed)
    }

    #[inline]
    fn reserve(&mut self, len: usize) -> Result<u64, PushError> {
        self.place(len)
    }

    #[inline]
    fn commit(&mut self, at: u64, len: usize) {
        let end = at + record_size(wide(len));
        let word = self.g.word(len_u32(len), KIND_DATA, at);
        self.publish(at, end, word, true);
    }

    fn abandon(&mut self, _at: u64) {
        // Nothing was published: the next record is written over the reservation.
    }

    fn max_message(&self) -> usize {
        offset(self.g.max_record)
    }

    /// A snapshot: no room for the smallest record, as the gate stands (the policy is not
    /// applied: asking ejects nobody).
    fn is_full(&mut self) -> bool {
        !self.room(self.tail + 2 * HEADER_SIZE)
    }

    fn position(&self) -> u64 {
        self.tail
    }

    /// A full ring is a slow subscriber's, not a contradiction, as long as the gate is an
    /// honest position (`rescan` ignores dishonest ones): nothing to audit.
    fn audit(&mut self) -> Audit {
        Audit::Fine
    }
}

#[cfg(loom)]
impl<M: Memory> PublisherCore<M> {
    /// Its private state, for a model's diagnostics.
    pub(crate) fn state(&self) -> String {
        format!(
            "tail {} limit {} seen_gen {} intent {} hist {}",
            self.tail, self.limit, self.seen_gen, self.intent, self.hist_head
        )
    }
}

impl WriteInPlace for PublisherCore<RawMem> {
    #[inline]
    fn payload(&self, at: u64) -> *mut u8 {
        // SAFETY: `place` checked that the record lies inside the data region.
        unsafe { self.mem.ptr(self.g.at(at) + offset(HEADER_SIZE)) }
    }
}
