//! A broadcast subscriber's half (PROTOCOL §8.4–§8.5): joining at a chosen start, probation,
//! reading tethered like an SPSC consumer, copy-and-validate when untethered, and ejection.

use super::aux::{
    CURSOR_FLAGS, CURSOR_JOINED, CURSOR_LAPPED, CURSOR_POSITION, FLAG_CONFIRMED, FLAG_EJECTED,
    FLAG_TETHERED, GEN, HIST_HEAD, INTENT, SEEN_GEN, TETHERED,
};
use super::frame::{Geometry, Word};
use super::{StartAt, MAX_POSITION};
use crate::conv::{offset, wide};
use crate::endpoint::{Audit, Publish, ReadCore, ReadInPlace};
use crate::error::{Corruption, PopError};
use crate::frame::{record_size, HEADER_SIZE, KIND_DATA};
use crate::sync::{fence, Memory, Ordering, RawMem};
use crate::wait::{notify, Direction};

/// How many times a join looks for a start in the history before it takes the tail.
const PICK_ATTEMPTS: usize = 16;

/// How a subscriber reads now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Tethered, and the publisher's gate accounts for it: reads like an SPSC consumer.
    Confirmed,
    /// Tethered, joined at roster generation `.0`, not yet seen by the publisher: validates
    /// every read.
    Probation(u64),
    /// Lossy: validates every read.
    Untethered,
}

/// A subscriber's half of the algorithm.
pub struct SubscriberCore<M: Memory> {
    mem: M,
    g: Geometry,
    /// Its endpoint entry, which indexes its cursor line.
    index: u64,
    /// Next position to read.
    pos: u64,
    /// The sequence number of the next data record (data records published before `pos`).
    seq: u64,
    pub(crate) mode: Mode,
    /// In-place reads are copies (`next`): the last one.
    scratch: Vec<u8>,
    /// Times it was lapped.
    pub(crate) lapped: u64,
}

impl<M: Memory> SubscriberCore<M> {
    /// Joins as entry `index`'s subscriber, starting at `start`.
    ///
    /// # Safety
    ///
    /// `mem` holds the first page, `g.cap` bytes of data at `g.words.data` and the auxiliary
    /// region of `g`; `index` is below 55.
    pub(crate) unsafe fn join(
        mem: M,
        g: Geometry,
        index: u64,
        tethered: bool,
        start: StartAt,
    ) -> Self {
        let mut core = SubscriberCore {
            mem,
            g,
            index,
            pos: 0,
            seq: 0,
            mode: Mode::Untethered,
            scratch: Vec::new(),
            lapped: 0,
        };
        core.enter(tethered, start);
        core
    }

    /// J0–J2: picks the start, stores the cursor, and (tethered) announces it.
    fn enter(&mut self, tethered: bool, start: StartAt) {
        let (pos, seq) = self.pick(start);
        self.enter_at(tethered, pos, seq);
    }

    /// J1–J2 at `pos`, the position of record `seq`.
    fn enter_at(&mut self, tethered: bool, pos: u64, seq: u64) {
        self.pos = pos;
        self.seq = seq;
        let bit = 1u64 << self.index;
        // Every access below: the cursor line of `index` and the aux words are in
        // bounds and aligned (join contract).
        // SAFETY: an offset of the validated geometry: in bounds and aligned (attach contract).
        unsafe {
            // J1: Relaxed, the cursor; ordered before the publisher's view by J2.
            self.mem.store(
                self.g.cursor(self.index, CURSOR_POSITION),
                pos,
                Ordering::Relaxed,
            );
            let flags = if tethered { FLAG_TETHERED } else { 0 };
            self.mem.store(
                self.g.cursor(self.index, CURSOR_FLAGS),
                flags,
                Ordering::Relaxed,
            );
            if tethered {
                self.mem
                    .fetch_or(self.g.aux(TETHERED), bit, Ordering::Relaxed);
                // J2: SeqCst bump of the roster generation; its Release half pairs with the
                // publisher's Acquire load (G1): a rescan that reads this generation (or a
                // later one) sees the cursor.
                let gen = self
                    .mem
                    .fetch_add(self.g.aux(GEN), 1, Ordering::SeqCst)
                    .wrapping_add(1);
                self.mem.store(
                    self.g.cursor(self.index, CURSOR_JOINED),
                    gen,
                    Ordering::Relaxed,
                );
                self.mode = Mode::Probation(gen);
            } else {
                self.mode = Mode::Untethered;
            }
        }
        if tethered {
            if let Some(w) = self.g.words.wake {
                // A publisher asleep on a full ring rescans (a joiner further on may be what
                // it waits for: a retether, a rejoin after a lag).
                // SAFETY: wake words are in-bounds aligned control words (join contract).
                unsafe { notify(&self.mem, w, Direction::Space) };
            }
        }
        crate::crashpoint::hit("broadcast.joined");
    }

    /// J0: the position and sequence number to start at, from the history index. The
    /// position always comes from an entry (or is 0 before the first record), never from the
    /// published tail, so that position and sequence number agree.
    fn pick(&self, start: StartAt) -> (u64, u64) {
        for _ in 0..PICK_ATTEMPTS {
            // J0: Acquire; pairs with P5: the history entries below the count are visible.
            // SAFETY: an aux word (join contract).
            let head = unsafe { self.mem.load(self.g.aux(HIST_HEAD), Ordering::Acquire) };
            if head == 0 {
                // No data record yet: the first one goes at position 0 (a padding record never
                // starts a lap).
                return (0, 0);
            }
            let back = match start {
                StartAt::Next => 0,
                StartAt::Latest => 1,
                StartAt::History(n) => u64::from(n),
                StartAt::Oldest => self.g.history,
            }
            .min(self.g.history)
            .min(head);
            for n in (head - back)..head {
                if let Some(pos) = self.entry(n) {
                    if !self.overrun(pos) {
                        return (pos, n);
                    }
                }
            }
            // `Next`, or nothing asked for is still there: just after the latest record.
            if let Some(pos) = self.entry(head - 1) {
                // V1 (as in `locate`): the latest record's header, then validated.
                // SAFETY: `pos` is 8-aligned (checked by `entry`).
                let word = unsafe { self.mem.load(self.g.at(pos), Ordering::Acquire) };
                if let Word::Record { size, .. } = self.g.check(pos, word) {
                    if !self.overrun(pos) {
                        return (pos + size, head);
                    }
                }
            }
            // The publisher overwrote even its latest record meanwhile: look again.
            crate::sync::spin_hint();
        }
        // A publisher lapping the ring faster than a join can read two words: the published
        // tail, then the count. A6: Acquire, pairs with P6 (the count of every record before
        // the tail is then visible). The count may include records published after the
        // tail was loaded, so this subscriber's sequence numbers may run ahead of the ring's
        // by those; nothing is delivered torn.
        // SAFETY: a control word and an aux word (join contract).
        let tail = unsafe { self.mem.load(self.g.words.tail, Ordering::Acquire) };
        // SAFETY: as above.
        let head = unsafe { self.mem.load(self.g.aux(HIST_HEAD), Ordering::Acquire) };
        if tail % 8 == 0 && tail <= MAX_POSITION {
            (tail, head)
        } else {
            (0, head)
        }
    }

    /// The position of data record `n` from the history index, if the entry still holds it
    /// and is an honest position (J0's seqlock check: the count loaded after the entry shows
    /// that no later record has reused the entry).
    fn entry(&self, n: u64) -> Option<u64> {
        // SAFETY: `hist` gives an in-bounds aligned aux word (join contract).
        let pos = unsafe { self.mem.load(self.g.hist(n), Ordering::Relaxed) };
        // J0: Acquire fence, then the count again: pairs with the Release fence of P1, which
        // orders the count of the push before a reuse of the entry.
        fence(Ordering::Acquire);
        // SAFETY: as above.
        let head = unsafe { self.mem.load(self.g.aux(HIST_HEAD), Ordering::Relaxed) };
        (head.wrapping_sub(n) < self.g.hist_len && pos % 8 == 0 && pos <= MAX_POSITION)
            .then_some(pos)
    }

    /// V2: whether the publisher may have written over the bytes at `pos` (or anything after
    /// them) before now: its intent, loaded after everything read so far, is beyond `pos`'s
    /// lap.
    #[inline]
    fn overrun(&self, pos: u64) -> bool {
        // V2: Acquire fence, then the intent: pairs with the Release fence after the intent
        // store (P1): if any byte this subscriber read was written by a later push, that
        // push's intent is visible here.
        fence(Ordering::Acquire);
        // V2: Acquire as well; pairs with P1's Release store: the history count of every
        // record before that push is visible to a join that follows (`lagged`).
        // SAFETY: an aux word (join contract).
        let intent = unsafe { self.mem.load(self.g.aux(INTENT), Ordering::Acquire) };
        intent > pos + self.g.cap
    }

    /// Whether the publisher ejected this subscriber (V3).
    #[inline]
    fn ejected(&self) -> bool {
        // V3: Acquire fence, then its own flags: pairs with the ejecting publisher's SeqCst
        // CAS (E1) followed by its intent store and Release fence (P1): a read of bytes it
        // wrote after ejecting us sees the ejection here.
        fence(Ordering::Acquire);
        // SAFETY: the cursor line of `index` (join contract).
        let flags = unsafe {
            self.mem
                .load(self.g.cursor(self.index, CURSOR_FLAGS), Ordering::Relaxed)
        };
        flags & FLAG_EJECTED != 0
    }

    /// The subscriber was lapped at its position: counts it, resumes (an untethered reader at
    /// the latest record; a tethered one joins again there) and says how many messages it
    /// missed.
    #[cold]
    #[inline(never)]
    fn lagged(&mut self) -> PopError {
        self.lapped += 1;
        // SAFETY: the cursor line of `index` (join contract). Relaxed: informational.
        unsafe {
            self.mem.store(
                self.g.cursor(self.index, CURSOR_LAPPED),
                self.lapped,
                Ordering::Relaxed,
            );
        };
        let before = self.seq;
        let tethered = self.mode != Mode::Untethered;
        self.enter(tethered, StartAt::Latest);
        PopError::Lagged {
            missed: self.seq.saturating_sub(before),
        }
    }

    /// J3–J4: a probationary subscriber checks whether the publisher has accounted for it.
    #[cold]
    #[inline(never)]
    fn confirm(&mut self, joined: u64) -> Result<(), PopError> {
        // J3: Acquire; pairs with G4.
        // SAFETY: aux words and the cursor line (join contract).
        let seen = unsafe { self.mem.load(self.g.aux(SEEN_GEN), Ordering::Acquire) };
        if seen.wrapping_sub(joined) >= 1 << 63 {
            return Ok(());
        }
        if self.ejected() {
            self.mode = Mode::Untethered;
            return Err(PopError::Ejected);
        }
        // J4: nothing at or after our position was overwritten before the gate held it.
        if self.overrun(self.pos) {
            return Err(self.lagged());
        }
        // J4: Relaxed CAS; fails only if the publisher ejected us meanwhile (E1).
        // SAFETY: the cursor line of `index` (join contract).
        let confirmed = unsafe {
            self.mem.compare_exchange(
                self.g.cursor(self.index, CURSOR_FLAGS),
                FLAG_TETHERED,
                FLAG_TETHERED | FLAG_CONFIRMED,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
        };
        if confirmed.is_ok() {
            self.mode = Mode::Confirmed;
            Ok(())
        } else {
            self.mode = Mode::Untethered;
            Err(PopError::Ejected)
        }
    }

    /// The next data record at or after the position (passing padding): its position and
    /// length, not yet validated for a validating subscriber.
    #[inline]
    fn locate(&mut self) -> Result<Option<(u64, usize)>, PopError> {
        loop {
            if let Mode::Probation(joined) = self.mode {
                self.confirm(joined)?;
            }
            let pos = self.pos;
            // V1: Acquire; pairs with the Release header store (P3).
            // SAFETY: `pos` is 8-aligned (every start and record size is), so `at` is an
            // in-bounds aligned data word.
            let word = unsafe { self.mem.load(self.g.at(pos), Ordering::Acquire) };
            let found = self.g.check(pos, word);
            let confirmed = self.mode == Mode::Confirmed;
            match found {
                Word::Record { kind, len, size } => {
                    if kind == KIND_DATA {
                        return Ok(Some((pos, offset(u64::from(len)))));
                    }
                    if !confirmed && self.overrun(pos) {
                        return Err(self.lagged());
                    }
                    self.pos += size;
                }
                Word::Empty if confirmed => {
                    // An ejected subscriber's position may have been overwritten with the
                    // zero-ahead word of a later lap: it would read "empty" for ever (the loom
                    // model of an ejection found this). Its own flags line: no shared miss.
                    if self.ejected() {
                        self.mode = Mode::Untethered;
                        return Err(PopError::Ejected);
                    }
                    return Ok(None);
                }
                _ if !confirmed => {
                    if self.overrun(pos) {
                        return Err(self.lagged());
                    }
                    return match found {
                        Word::Empty => Ok(None),
                        Word::Invalid(c) => Err(c.into()),
                        _ => Err(stale(pos, word).into()),
                    };
                }
                _ => {
                    if self.ejected() {
                        self.mode = Mode::Untethered;
                        return Err(PopError::Ejected);
                    }
                    return Err(match found {
                        Word::Invalid(c) => c,
                        _ => stale(pos, word),
                    }
                    .into());
                }
            }
        }
    }

    /// After copying the record at `pos`: whether the copy holds (V2 for a validating
    /// subscriber, V3 for a confirmed one).
    #[inline]
    fn check(&mut self, pos: u64) -> Result<(), PopError> {
        if self.mode == Mode::Confirmed {
            if self.ejected() {
                self.mode = Mode::Untethered;
                return Err(PopError::Ejected);
            }
            Ok(())
        } else if self.overrun(pos) {
            Err(self.lagged())
        } else {
            Ok(())
        }
    }

    /// V5: publishes the position (and lets a gated publisher know).
    fn publish_position(&mut self) {
        // V5: Release; our reads of the records before the position happen before the
        // publisher writes over them; pairs with its Acquire load (G3).
        // SAFETY: the cursor line of `index`; wake words are control words (join contract).
        unsafe {
            self.mem.store(
                self.g.cursor(self.index, CURSOR_POSITION),
                self.pos,
                Ordering::Release,
            );
        };
        if self.mode != Mode::Untethered {
            if let Some(w) = self.g.words.wake {
                // SAFETY: as above.
                unsafe { notify(&self.mem, w, Direction::Space) };
            }
        }
    }

    /// Joins again, tethered, where it is (after an ejection, or to turn an untethered
    /// subscriber lossless): on probation, so if the publisher has overwritten its position
    /// meanwhile, its next read is `Lagged` and it goes on from the latest record.
    pub(crate) fn retether(&mut self) {
        self.enter_at(true, self.pos, self.seq);
    }

    /// Where it reads next, and the sequence number of that record.
    pub(crate) fn cursor(&self) -> (u64, u64) {
        (self.pos, self.seq)
    }
}

/// The corruption of a word of another lap where an honest ring has this lap's (or zero).
fn stale(pos: u64, word: u64) -> Corruption {
    Corruption {
        what: "record header of another lap at a subscriber's position",
        position: pos,
        value: word,
    }
}

/// Clears entry `index`'s cursor: it no longer gates the publisher (L1–L3). Idempotent.
///
/// # Safety
///
/// `mem` holds the auxiliary region of `g`; `index` is below 55.
pub(crate) unsafe fn leave<M: Memory>(mem: &M, g: &Geometry, index: u64) {
    // All three: in bounds and aligned by the caller's contract.
    // SAFETY: an offset of the validated geometry: in bounds and aligned (attach contract).
    unsafe {
        // L1: Release: the flags.
        mem.store(g.cursor(index, CURSOR_FLAGS), 0, Ordering::Release);
        // L2: Release: the tethered bit.
        let was = mem.fetch_and(g.aux(TETHERED), !(1u64 << index), Ordering::Release);
        if was & (1 << index) != 0 {
            // L3: Release: the generation, so the publisher rescans (pairs with G1).
            mem.fetch_add(g.aux(GEN), 1, Ordering::Release);
        }
    }
}

impl<M: Memory> SubscriberCore<M> {
    /// Runs a read again (a few times) when it was overtaken without missing anything: a
    /// large record may overwrite the padding record a caught-up validating subscriber was
    /// about to pass, which resumes it at that very record (`Lagged { missed: 0 }` is no news).
    #[inline]
    fn again<R>(
        &mut self,
        mut read: impl FnMut(&mut Self) -> Result<R, PopError>,
    ) -> Result<R, PopError> {
        for _ in 0..4 {
            match read(self) {
                Err(PopError::Lagged { missed: 0 }) => {}
                other => return other,
            }
        }
        read(self)
    }

    fn pop_into(&mut self, buf: &mut [u8]) -> Result<usize, PopError> {
        let (pos, len) = self.locate()?.ok_or(PopError::Empty)?;
        if len > buf.len() {
            self.check(pos)?;
            return Err(PopError::BufferTooSmall {
                needed: len,
                len: buf.len(),
            });
        }
        // SAFETY: `check` (in `locate`) validated the record lies within the data region.
        unsafe {
            self.mem
                .read_racy(self.g.at(pos) + offset(HEADER_SIZE), &mut buf[..len]);
        };
        self.check(pos)?;
        self.consume(pos, len, Publish::Now);
        Ok(len)
    }

    fn pop_vec_into(&mut self, buf: &mut Vec<u8>) -> Result<usize, PopError> {
        let (pos, len) = self.locate()?.ok_or(PopError::Empty)?;
        buf.clear();
        buf.resize(len, 0);
        // SAFETY: as in `try_pop`.
        unsafe {
            self.mem
                .read_racy(self.g.at(pos) + offset(HEADER_SIZE), buf);
        }
        self.check(pos)?;
        self.consume(pos, len, Publish::Now);
        Ok(len)
    }

    fn next_copied(&mut self) -> Result<Option<(u64, usize)>, PopError> {
        let Some((pos, len)) = self.locate()? else {
            return Ok(None);
        };
        // Always a copy, validated after it (V2 or V3): a view of the ring handed to the
        // caller could be written over while it reads, by a publisher that ejects (a
        // confirmed subscriber) or laps (a validating one).
        {
            let mut scratch = std::mem::take(&mut self.scratch);
            scratch.clear();
            scratch.resize(len, 0);
            // SAFETY: as in `try_pop`.
            unsafe {
                self.mem
                    .read_racy(self.g.at(pos) + offset(HEADER_SIZE), &mut scratch);
            };
            self.scratch = scratch;
        }
        self.check(pos)?;
        Ok(Some((pos, len)))
    }
}

impl<M: Memory> ReadCore for SubscriberCore<M> {
    #[inline]
    fn try_pop(&mut self, buf: &mut [u8]) -> Result<usize, PopError> {
        self.again(|this| this.pop_into(buf))
    }

    fn try_pop_vec(&mut self, buf: &mut Vec<u8>) -> Result<usize, PopError> {
        self.again(|this| this.pop_vec_into(buf))
    }

    #[inline]
    fn next(&mut self) -> Result<Option<(u64, usize)>, PopError> {
        self.again(Self::next_copied)
    }

    #[inline]
    fn consume(&mut self, at: u64, len: usize, publish: Publish) {
        self.pos = at + record_size(wide(len));
        self.seq = self.seq.wrapping_add(1);
        if publish == Publish::Now {
            self.publish_position();
        }
    }

    fn flush(&mut self) {
        self.publish_position();
    }

    fn unwind(&mut self, _at: u64, _len: usize) {
        // Not consumed: the position still points at it.
    }

    fn pop_buffer_min(&self) -> usize {
        0
    }

    /// Whether a read at the position would find something: a record, or news of a lag, an
    /// ejection or corruption (a peek: no change of state).
    fn has_committed(&mut self) -> bool {
        // V1 (as in `locate`).
        // SAFETY: as in `locate`.
        let word = unsafe { self.mem.load(self.g.at(self.pos), Ordering::Acquire) };
        match self.g.check(self.pos, word) {
            // Not drained while a read would report something: a record, a lag (and the
            // records after it), an ejection, or corruption.
            Word::Empty if self.mode == Mode::Confirmed => self.ejected(),
            Word::Empty => self.overrun(self.pos),
            _ => true,
        }
    }

    fn position(&self) -> u64 {
        self.pos
    }

    /// A subscriber found nothing at its position: if the published tail is beyond it (and it
    /// was not overtaken), a record was committed there (P3 before P6), so the word must not
    /// be zero — a suspect (a dead publisher's successor republishes the tail it walked to; a
    /// scribbled history entry can start a joiner inside a record).
    fn audit(&mut self) -> Audit {
        // Overtaken or ejected: the next read says so.
        if (self.mode == Mode::Confirmed && self.ejected())
            || (self.mode != Mode::Confirmed && self.overrun(self.pos))
        {
            return Audit::Fine;
        }
        // A1: Acquire; pairs with P6.
        // SAFETY: a control word (join contract).
        let tail = unsafe { self.mem.load(self.g.words.tail, Ordering::Acquire) };
        if tail <= self.pos || tail - self.pos > self.g.cap {
            return Audit::Fine;
        }
        // A1: Acquire, as V1.
        // SAFETY: as in `locate`.
        let word = unsafe { self.mem.load(self.g.at(self.pos), Ordering::Acquire) };
        match self.g.check(self.pos, word) {
            Word::Empty => Audit::Suspect(Corruption {
                what: "record header at the subscriber's position is zero, but the published tail is beyond it",
                position: self.pos,
                value: tail,
            }),
            _ => Audit::Fine,
        }
    }
}

impl ReadInPlace for SubscriberCore<RawMem> {
    /// The copy `next` made (a broadcast subscriber never hands out ring memory).
    #[inline]
    fn payload(&self, _at: u64) -> *const u8 {
        self.scratch.as_ptr()
    }
}
