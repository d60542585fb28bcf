//! The MPMC slot ring's algorithm, over any [`Memory`] (PROTOCOL §5.2–§5.5): one endpoint's
//! view of Vyukov's bounded queue with owner-tagged claims, and the repair of a dead endpoint's
//! claims.

use super::{join, split, MAX_POSITION, TAG_MASK};
use crate::conv::{len_u32, offset, signed_diff, wide};
use crate::endpoint::{Audit, Publish, ReadCore, ReadInPlace, WriteCore, WriteInPlace};
use crate::error::{Corruption, PopError, PushError};
use crate::ring::Words;
use crate::sync::{Memory, Ordering, RawMem};

mod audit;
mod sole;
use crate::wait::{notify, Direction};
pub(crate) use sole::{vacate, Side};

/// Where a ring's words live inside its memory, and its geometry (validated at open).
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    /// Where the positions, the data and the wake words are.
    pub(crate) words: Words,
    pub(crate) slots: u64,
    pub(crate) slot_size: u64,
    pub(crate) stride: u64,
    /// Offset of `len` within a slot: 8 (packed with the sequence word) in layout 1.0.
    pub(crate) len_off: usize,
    /// Offset of the payload within a slot: [`SLOT_HEADER`](super::SLOT_HEADER) in layout 1.0,
    /// [`ALIGNED_PAYLOAD_OFFSET`](super::ALIGNED_PAYLOAD_OFFSET) on an aligned ring (1.7).
    pub(crate) payload_off: usize,
    /// The message bound when it is below the slot count (layout 1.2), else 0.
    pub(crate) limit: u64,
    /// The sole words of producers and consumers (layout 1.6, ring flag `SOLE`; PROTOCOL
    /// §5.7), indexed by [`Side`].
    pub(crate) sole: Option<[usize; 2]>,
    /// With sole words that the endpoint left alone in a shared role reclaims (layout 1.8,
    /// ring flag `RECLAIM`): the roster words of producers and consumers, indexed by
    /// [`Side`].
    pub(crate) reclaim: Option<[usize; 2]>,
}

impl Geometry {
    /// The memory offset of the slot holding position `pos`.
    #[inline]
    fn slot(&self, pos: u64) -> usize {
        self.words.data + offset((pos & (self.slots - 1)) * self.stride)
    }

    /// How far a producer or consumer walks before it reports full or empty: a whole lap of
    /// busy slots, plus slack for hints that lag.
    #[inline]
    fn walk_limit(&self) -> u64 {
        2 * self.slots + 64
    }

    /// Whether `seq` in the slot of `pos` names a commit or a read claim (of position
    /// `seq − 1`): `seq ≡ pos + 1 (mod cap)`. Free words and write claims have `seq ≡ pos`.
    #[inline]
    fn names_commit(&self, pos: u64, seq: u64) -> bool {
        let mask = self.slots - 1;
        seq & mask == (pos + 1) & mask
    }

    /// Whether `seq` could be in the slot of `pos` at all: honest words of that slot have
    /// `seq ≡ pos` or `seq ≡ pos + 1 (mod cap)` (PROTOCOL §5.2; the repair writes `≡ pos` too).
    #[inline]
    fn fits_slot(&self, pos: u64, seq: u64) -> bool {
        let mask = self.slots - 1;
        seq & mask == pos & mask || self.names_commit(pos, seq)
    }
}

/// How many more times a consumer loads the word of a position being written before it
/// answers "not committed" (`Core::await_commit`): about the time a writer takes to copy a
/// small message and commit it. One under loom: the same loads, fewer interleavings.
const WRITE_SPINS: u32 = if cfg!(loom) { 1 } else { 64 };

/// One endpoint's view of the algorithm; `tag` (1..=255) names it in the slots it claims.
pub struct Core<M: Memory> {
    mem: M,
    g: Geometry,
    tag: u64,
    /// Scratch space for `try_push_all`'s claims (allocated on first use only).
    claimed: Vec<u64>,
    /// Where the last `claim_read` that found nothing stopped, and the word it read there, if
    /// that was not the plain "free for this position" (M17): a message may be on its way
    /// there, and one after it committed already. Judged only when a non-blocking pop is about
    /// to answer "empty" (`ReadCore::in_flight`), so that waiting loops read no other line.
    stopped: Option<(u64, u64)>,
    /// The consumers' head hint as last read, for the message bound (`limit`).
    cached_head: u64,
    /// One past the position this consumer last claimed for reading (`u64::MAX`: none yet):
    /// where its next claim starts with a blind CAS (M8', D58).
    next_read: u64,
    /// Per [`Side`]: the tag of the endpoint that was alone in that role when this one joined
    /// it, while the join (M23) is not over; else 0.
    joining: [u64; 2],
    /// Per [`Side`]: where the join's walk (M23) stopped at its last call, so that the next
    /// resumes there: every position before it was claimed or passed when the walk read it,
    /// and stays so. A walk of `walk_limit` positions from the hint each call, restarting
    /// there, never got past a longer run of abandoned positions (the join raises no hint).
    join_from: [u64; 2],
}

impl<M: Memory> Core<M> {
    /// # Safety
    ///
    /// - `mem` holds the two hint words and `g.slots` slots of `g.stride` bytes at `g.words.data`.
    pub(crate) unsafe fn new(mem: M, g: Geometry, tag: u64) -> Self {
        debug_assert!((1..=TAG_MASK).contains(&tag));
        Core {
            mem,
            g,
            tag,
            claimed: Vec::new(),
            stopped: None,
            cached_head: 0,
            next_read: u64::MAX,
            joining: [0; 2],
            join_from: [0; 2],
        }
    }

    /// Writes the initial sequence words: slot `i` is free for position `i`.
    ///
    /// # Safety
    ///
    /// - As for [`Core::new`], and no other endpoint is using the memory yet.
    pub(crate) unsafe fn initialize(mem: &M, g: &Geometry) {
        for i in 0..g.slots {
            // SAFETY: each slot offset is in bounds and 8-aligned (stride is a multiple of 64).
            unsafe { mem.store(g.slot(i), join(i, 0), Ordering::Relaxed) };
        }
    }

    #[inline]
    fn hint(&self, off: usize) -> Result<u64, Corruption> {
        // M1 (tail hint) and M7 (head hint): Acquire; pair with the Release raises M4 and
        // M10, so an endpoint that starts past positions others claimed knows what those
        // claimers (or the walker that saw them claimed) did before: M17's linearizability
        // argument (PROTOCOL §5.3). SeqCst (layout 1.6): a consumer that starts past positions
        // it did not claim passes them in the total order a joining consumer's fence is in
        // (§5.7, "passed positions"). Plain loads on x86 either way.
        // SAFETY: hint words are in bounds and aligned (constructor contract).
        let v = unsafe { self.mem.load(off, Ordering::SeqCst) };
        if v >= MAX_POSITION {
            return Err(Corruption {
                what: "position hint beyond 2^55",
                position: v,
                value: v,
            });
        }
        Ok(v)
    }

    /// Claims a free position for writing; returns it.
    ///
    /// The first attempt is a blind CAS at the tail hint's position (M2'), expecting the
    /// slot free for it, with no load before: at one producer the slot's line was last held by
    /// the consumer (its release, or its polling of the next position), and a load then a CAS
    /// took it in two synchronous transfers (a read miss, then an upgrade), the CAS alone in one
    /// (D58). Later steps of the walk load first (M2): they pass slots other endpoints hold,
    /// and a CAS there would take their lines exclusive for nothing.
    // Always (D86): the per-message step of every push; left to the heuristics it stayed a
    // call, and so did `claim_read` and `try_pop` (harness A/B: 8 B streaming 2x, round trip
    // -10%).
    #[inline(always)]
    pub(crate) fn claim_write(&mut self) -> Result<u64, PushError> {
        // A producer that joined one that was alone claims nothing before the join is over
        // (PROTOCOL §5.7, M23): its raise could come before the other's, which would then
        // move the hint back.
        if self.joining[Side::Write as usize] != 0 && !self.join(Side::Write)? {
            return Err(PushError::Full);
        }
        let mut pos = self.hint(self.g.words.tail)?;
        if self.g.limit != 0 && pos >= self.cached_head + self.g.limit {
            self.reload_head_for_limit(pos)?;
        }
        let off = self.g.slot(pos);
        // M2': a blind M3. SeqCst on success, as M3; Acquire on failure, as M2, since the
        // word it returns feeds the walk below exactly as M2's load would (a claim it reports
        // must happen before what this producer does next: M17's argument).
        // SAFETY: `off` is an in-bounds aligned slot word.
        let first = unsafe {
            self.mem.compare_exchange(
                off,
                join(pos, 0),
                join(pos, self.tag),
                Ordering::SeqCst,
                Ordering::Acquire,
            )
        };
        let Err(mut word) = first else {
            self.raise_tail(pos);
            return Ok(pos);
        };
        for _ in 0..self.g.walk_limit() {
            let (seq, tag) = split(word);
            let dif = signed_diff(seq, pos);
            if dif == 0 && tag == 0 {
                if self.g.limit != 0 && pos >= self.cached_head + self.g.limit {
                    self.reload_head_for_limit(pos)?;
                }
                let mine = join(pos, self.tag);
                // M3: SeqCst on success: Acquire, as M2, and in the total order a joining
                // producer's fence (M23) is in, so that a claim before it is one the joiner
                // sees, and one after it is followed by an M21 that sees the role shared
                // (PROTOCOL §5.7; a locked RMW on x86 either way). Relaxed on failure: we
                // re-read (M2).
                // SAFETY: an in-bounds aligned slot word.
                if unsafe {
                    self.mem.compare_exchange(
                        self.g.slot(pos),
                        word,
                        mine,
                        Ordering::SeqCst,
                        Ordering::Relaxed,
                    )
                }
                .is_ok()
                {
                    self.raise_tail(pos);
                    return Ok(pos);
                }
            } else if dif == 0 || dif == 1 {
                // Being written by another producer, or committed (maybe being read): taken.
                pos += 1;
            } else if dif < 0 {
                // The slot still holds an earlier lap: the ring is full here.
                return Err(PushError::Full);
            } else {
                // This position was passed long ago: we were lapped. Jump to the hint.
                let hint = self.hint(self.g.words.tail)?;
                if hint <= pos {
                    // M4, as in `raise`.
                    // SAFETY: in-bounds aligned hint word.
                    unsafe {
                        self.mem
                            .fetch_max(self.g.words.tail, pos + 1, Ordering::SeqCst)
                    };
                }
                pos = hint.max(pos + 1);
            }
            if pos >= MAX_POSITION {
                return Err(PushError::Corrupt(Corruption {
                    what: "producer walked beyond 2^55",
                    position: pos,
                    value: word,
                }));
            }
            // M2: Acquire; pairs with the Release store of `(pos, 0)` (M11 in `release`)
            // (or a producer's abandon, M6, or a repair, M13), so the previous lap's reads
            // finish before we write.
            // SAFETY: an in-bounds aligned slot word.
            word = unsafe { self.mem.load(self.g.slot(pos), Ordering::Acquire) };
        }
        Err(PushError::Full)
    }

    /// Raises the tail hint past `pos`, which we just claimed.
    #[inline(always)]
    fn raise_tail(&self, pos: u64) {
        if self.is_sole(Side::Write) {
            self.raise_alone(Side::Write, pos + 1);
        } else {
            self.raise(self.g.words.tail, pos + 1);
        }
    }

    /// Raises the hint at `off` to `to` (M4 for the tail hint, M10 for the head hint), unless
    /// it is there already: a `fetch_max` is a locked read-modify-write even when it changes
    /// nothing, and of several producers (or consumers) the one that claimed last has usually
    /// raised the hint past the others' claims (D58). Skipping is sound: whoever raised the
    /// hint to `to` or beyond claimed or walked past every position below (F3) — ours among
    /// them — before its Release raise, and a load of the hint ordered after this one (through
    /// our commit M5, or our claim M9, say) returns `to` or more (coherence), so F2 holds.
    #[inline]
    fn raise(&self, off: usize, to: u64) {
        // M4a/M10a: Relaxed: only decides whether to raise; see above.
        // SAFETY: in-bounds aligned hint word (constructor contract).
        if unsafe { self.mem.load(off, Ordering::Relaxed) } < to {
            // M4/M10: Release: pairs with M1's/M7's Acquire; SeqCst (layout 1.6) so that a
            // hint a consumer jumps to carries the passes behind it into the total order of
            // §5.7 (a locked RMW on x86 either way).
            // SAFETY: as above.
            unsafe { self.mem.fetch_max(off, to, Ordering::SeqCst) };
        }
    }

    /// The message bound (PROTOCOL §5.6): position `pos` may be claimed only while fewer than
    /// `limit` positions are claimed for writing and not yet for reading, `pos < head + limit`.
    /// Reloads the head hint (M7) into the cache, and reports `Full` if the bound holds.
    #[cold]
    #[inline(never)]
    fn reload_head_for_limit(&mut self, pos: u64) -> Result<(), PushError> {
        // The head hint only moves forward; a smaller value is a stale view of an older cache.
        let mut head = self.cached_head.max(self.hint(self.g.words.head)?);
        // The hint lags positions that no consumer will claim: abandoned writes, and claims a
        // dead consumer made before raising it (repaired to "passed"). Consumers move it past
        // those only when they next claim; a producer held back by the bound moves it itself,
        // as a consumer's walk would (PROTOCOL §5.6), or a blocked producer and an idle
        // consumer would wait for each other.
        for _ in 0..self.g.limit {
            if pos < head + self.g.limit {
                break;
            }
            // M19: Acquire, as M8: a word that says `head` was passed (read or abandoned, or
            // a later lap's) makes the next hint honest. SeqCst as M8 (§5.7, "passed
            // positions"; a plain load on x86).
            // SAFETY: an in-bounds aligned slot word.
            let word = unsafe { self.mem.load(self.g.slot(head), Ordering::SeqCst) };
            let (seq, _) = split(word);
            if signed_diff(seq, head + 1) <= 0 {
                break;
            }
            // M10 (as a consumer's walk): Release.
            // SAFETY: in-bounds aligned hint word.
            unsafe {
                self.mem
                    .fetch_max(self.g.words.head, head + 1, Ordering::SeqCst)
            };
            head += 1;
        }
        self.cached_head = head;
        if pos >= self.cached_head + self.g.limit {
            Err(PushError::Full)
        } else {
            Ok(())
        }
    }

    /// Writes `len` at position `pos` (claimed by us) and commits it.
    #[inline]
    pub(crate) fn commit_write(&mut self, pos: u64, len: usize) {
        self.commit_at(self.g.slot(pos), pos, len);
    }

    /// [`Core::commit_write`] for the slot at memory offset `off` (the slot of `pos`).
    #[inline]
    fn commit_at(&mut self, off: usize, pos: u64, len: usize) {
        // SAFETY: the length field is inside our claimed slot.
        unsafe {
            self.mem
                .write(off + self.g.len_off, &len_u32(len).to_le_bytes());
        };
        // M5: Release; publishes the payload and length; pairs with the Acquire load/CAS of the
        // word in `claim_read`.
        // SAFETY: in-bounds aligned slot word, claimed by us.
        unsafe { self.mem.store(off, join(pos + 1, 0), Ordering::Release) };
        if let Some(w) = self.g.words.wake {
            // SAFETY: wake words are in-bounds aligned control words (constructor contract).
            unsafe { notify(&self.mem, w, Direction::Data) };
        }
    }

    /// Gives up a claimed (written or read) position: the slot becomes free for the next lap,
    /// and consumers walk past the position.
    #[inline]
    pub(crate) fn release(&mut self, pos: u64) {
        // M11: Release; our reads of the slot happen before the next lap's producer writes;
        // pairs with the Acquire load/CAS in `claim_write`.
        self.free(pos, Ordering::Release);
    }

    /// Gives up a position claimed for writing and not committed (M6): as `release`, with a
    /// `SeqCst` store. Consumers pass an abandoned position without claiming it, and a joining
    /// consumer must see that pass wherever a sole consumer made it (PROTOCOL §5.7, "passed
    /// positions"). Rare: an `xchg` on x86 instead of a `mov`.
    #[cold]
    pub(crate) fn abandon_write(&mut self, pos: u64) {
        // M6: SeqCst: Release as M11 (pairs with the Acquire load/CAS in `claim_write`), and in
        // the total order of a joining consumer's fence (§5.7).
        self.free(pos, Ordering::SeqCst);
    }

    /// Stores "free for the next lap" in the slot of `pos` (claimed by us) with `order`, and
    /// wakes producers that wait for space.
    #[inline]
    fn free(&mut self, pos: u64, order: Ordering) {
        // SAFETY: in-bounds aligned slot word, claimed by us.
        unsafe {
            self.mem
                .store(self.g.slot(pos), join(pos + self.g.slots, 0), order);
        };
        if let Some(w) = self.g.words.wake {
            // SAFETY: wake words are in-bounds aligned control words (constructor contract).
            unsafe { notify(&self.mem, w, Direction::Space) };
        }
    }

    /// Claims the next committed position for reading; `Ok(None)` when none is committed.
    // Always (D86), as `claim_write`.
    #[inline(always)]
    pub(crate) fn claim_read(&mut self) -> Result<Option<u64>, Corruption> {
        self.stopped = None;
        // As in `claim_write`: a joining consumer claims nothing before its join is over.
        if self.joining[Side::Read as usize] != 0 && !self.join(Side::Read)? {
            return Ok(None);
        }
        let mut pos = self.hint(self.g.words.head)?;
        // A consumer that took the position before this one tries this one with a blind CAS
        // (M8'): at one consumer the load, then the CAS, took the slot's line in two
        // synchronous steps (a read miss, then an upgrade that invalidates the producer's
        // copy); the CAS alone takes it in one. Only then: of several consumers waiting on an
        // empty ring, at most one (the last to take a message) polls with CASes, which take
        // the line exclusive, while the rest poll with loads (D58).
        let mut blind = pos == self.next_read;
        for _ in 0..self.g.walk_limit() {
            let off = self.g.slot(pos);
            let mut word = if blind {
                blind = false;
                // M8': a blind M9 (SeqCst on success, as M9); SeqCst on failure, as M8,
                // since the word it returns feeds the walk below exactly as M8's load would.
                // SAFETY: `off` is an in-bounds aligned slot word.
                match unsafe {
                    self.mem.compare_exchange(
                        off,
                        join(pos + 1, 0),
                        join(pos + 1, self.tag),
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    )
                } {
                    Ok(_) => return Ok(Some(self.claimed_read(pos))),
                    Err(word) => word,
                }
            } else {
                // M8: Acquire; pairs with the producer's Release store of `(pos + 1, 0)` (M5)
                // in `commit_write`: the payload is visible once the word says committed.
                // SeqCst (layout 1.6; a plain load on x86): a position this walk passes
                // without claiming it (abandoned M6, repaired M13: SeqCst writes) is passed in
                // the total order a joining consumer's fence is in (PROTOCOL §5.7).
                // SAFETY: `off` is an in-bounds aligned slot word.
                unsafe { self.mem.load(off, Ordering::SeqCst) }
            };
            if word >> super::TAG_BITS == pos && word & TAG_MASK != 0 {
                word = self.await_commit(off, word);
            }
            let (seq, tag) = split(word);
            let dif = signed_diff(seq, pos + 1);
            if dif == 0 && tag == 0 {
                let mine = join(pos + 1, self.tag);
                // M9: SeqCst on success: Acquire as M8; Release so that a consumer whose walk
                // reads our claim (M8) knows what we did before it — our own pushes, whose
                // messages it must then find (M17); and in the total order of a joining
                // consumer's fence, as M3 (PROTOCOL §5.7). Free on x86 (a locked RMW either
                // way).
                // SAFETY: as above.
                if unsafe {
                    self.mem
                        .compare_exchange(off, word, mine, Ordering::SeqCst, Ordering::Relaxed)
                }
                .is_ok()
                {
                    return Ok(Some(self.claimed_read(pos)));
                }
            } else if dif == 0 {
                // Another consumer is reading it.
                pos += 1;
            } else if dif < 0 {
                // Not committed yet (free, or being written): nothing to read in order. M17: a
                // write claim of this very position (`(pos, tag)`, tag ≠ 0) means a producer
                // is writing it; a later position may already hold a message whose send has
                // returned, so "empty" would not be linearizable: say so to the caller, who
                // waits for the commit (or for the writer's repair) before reporting empty.
                // The usual empty ring: the slot is free for exactly this position. Then no
                // later message can be committed that this consumer must find: its push would
                // have walked past a claim of `pos` (a word this walk would read, or a newer
                // one) or started from a tail hint raised past `pos` (M4, Release, carrying such
                // a claim): either way this load could not have returned the free word. No
                // look-ahead then, so a consumer polling an empty ring reads no line but its
                // slot's.
                if !(dif == -1 && tag == 0) {
                    self.stopped = Some((pos, word));
                }
                return Ok(None);
            } else {
                // A commit (or read claim) of a later lap than the next one: a lapped walk,
                // rare. Honest only if the producers' tail hint has reached it (PROTOCOL §5.5):
                // else report it rather than walk past, which would lose this position's
                // message silently.
                if dif >= signed_diff(self.g.slots, 0) && self.g.names_commit(pos, seq) {
                    self.check_tail(pos, word, seq)?;
                }
                // Consumed (or abandoned) already; if far behind, jump to the hint. If the hint
                // is not past this position (a run of abandoned positions, which no consumer
                // claims), move it: every position up to `pos` is read or abandoned.
                let hint = self.hint(self.g.words.head)?;
                if hint <= pos {
                    // M10: Release (PROTOCOL §5.3 step 2, `d > 0`; Relaxed before D58): every
                    // write of the head hint is then a Release, so a consumer that skips its
                    // own raise because the hint is past its claim already (`raise`) leaves
                    // it to a raiser that saw that claim, and releases what it saw. SeqCst
                    // as in `raise` (§5.7).
                    // SAFETY: in-bounds aligned hint word.
                    unsafe {
                        self.mem
                            .fetch_max(self.g.words.head, pos + 1, Ordering::SeqCst)
                    };
                }
                pos = hint.max(pos + 1);
            }
            if pos >= MAX_POSITION {
                return Err(Corruption {
                    what: "consumer walked beyond 2^55",
                    position: pos,
                    value: word,
                });
            }
        }
        Ok(None)
    }

    /// What a consumer does once it has claimed `pos` for reading: raises the head hint past it
    /// and remembers where its next claim starts; returns `pos`.
    #[inline]
    fn claimed_read(&mut self, pos: u64) -> u64 {
        // M10 (through `raise`; M10s alone, PROTOCOL §5.7): Release; pairs with M7's Acquire,
        // as M9 does with M8.
        if self.is_sole(Side::Read) {
            self.raise_alone(Side::Read, pos + 1);
        } else {
            self.raise(self.g.words.head, pos + 1);
        }
        self.next_read = pos + 1;
        pos
    }

    /// A producer is writing the position this consumer is at (`word` is its write claim,
    /// read at `off`): loads the word again (M8) while it stays so, a few times, and returns
    /// what it holds then (D58). A small message's writer commits within a line transfer or
    /// two of its claim; answering "not committed" at once sent the endpoint to settle (M17:
    /// a look-ahead, then a yield to the scheduler) whenever a ping-pong's consumer looked
    /// between the producer's claim and its commit, which made the mean round trip several
    /// times the median.
    #[inline(never)]
    #[cold]
    fn await_commit(&self, off: usize, word: u64) -> u64 {
        for _ in 0..WRITE_SPINS {
            crate::sync::spin_hint();
            // M8: SeqCst, as in `claim_read`.
            // SAFETY: an in-bounds aligned slot word (the caller's).
            let now = unsafe { self.mem.load(off, Ordering::SeqCst) };
            if now != word {
                return now;
            }
        }
        word
    }

    /// Whether a message is committed at a position after `pos`, whose slot this consumer
    /// just found not committed (`word`, M17): then "empty" would not be linearizable — that
    /// message's push may have returned — and the caller waits for `pos` (being written, or a
    /// stale view of a slot since written) instead. If none is, "empty" is a linearizable
    /// answer even while `pos` is being written: the pop takes effect before that push.
    ///
    /// M18: the look-ahead reads slot words only, Acquire (as M8), from `pos + 1` on, and stops
    /// at the first word that says "free for exactly this position" `(q, 0)`: a message past
    /// `q` that this consumer must find was pushed by a producer that walked past a claim of
    /// `q`, or started from a tail hint raised past `q` by a walk that did (M1/M4, Acquire and
    /// Release), so that claim happens before this load, which could not then return the free
    /// word. Its loads are not one snapshot, so it answers "nothing committed" only if the
    /// ring stood still meanwhile: no word read is a commit or a read claim of its position or
    /// of a later lap (consumers passed `pos`: the ring moved on), and the word at `pos` is
    /// still `word` after them (M18a). Then `pos` was being written throughout, no consumer
    /// passed it, and when the first word after `pos` that was not committed was read, nothing
    /// from `pos` on was committed: the queue was empty at that instant. Otherwise the caller
    /// looks again. No hint is read: in a ping-pong, the tail hint's line is the producer's on
    /// every push, and reading it here cost a line transfer per message; the slot after `pos`
    /// was last written by a consumer's release, usually this one's.
    #[inline(never)]
    #[cold]
    fn committed_past(&self, pos: u64, word: u64) -> bool {
        for q in pos.saturating_add(1)..pos.saturating_add(self.g.slots) {
            // SAFETY: an in-bounds aligned slot word.
            let seen = unsafe { self.mem.load(self.g.slot(q), Ordering::Acquire) };
            let (seq, tag) = split(seen);
            if signed_diff(seq, q + 1) >= 0 {
                // Committed, claimed for reading, or a later lap's: look again.
                return true;
            }
            if seq == q && tag == 0 {
                break;
            }
        }
        // M18a: Acquire, as M8; the look-ahead's Acquire loads keep it after them.
        // SAFETY: an in-bounds aligned slot word.
        unsafe { self.mem.load(self.g.slot(pos), Ordering::Acquire) != word }
    }

    /// Checks a commit or read-claim word `(seq, ·)` against the producers' tail hint: its
    /// producer raised the hint to at least `seq` (M4), or saw it there already (M4a: its
    /// Relaxed load read a value at least `seq`, and read-read coherence carries that to any
    /// later load ordered after it), before the Release store of the commit
    /// (M5) that the caller's Acquire load of the word synchronised with (directly, or through
    /// a consumer's claiming CAS, which continues M5's release sequence), so a later load of
    /// the hint sees at least `seq` (PROTOCOL §5.5).
    #[inline(never)]
    #[cold]
    fn check_tail(&self, pos: u64, word: u64, seq: u64) -> Result<(), Corruption> {
        // M16: Relaxed; after the caller's Acquire load of the word (M8, M15), which orders
        // the M4 that this load must see.
        // SAFETY: in-bounds aligned hint word (constructor contract).
        let tail = unsafe { self.mem.load(self.g.words.tail, Ordering::Relaxed) };
        if tail < seq {
            return Err(Corruption {
                what: "sequence word names a commit beyond the producers' tail hint",
                position: pos,
                value: word,
            });
        }
        Ok(())
    }

    /// Releases every slot claimed by endpoint `dead`: see [`repair_claims`].
    #[cfg_attr(not(loom), allow(dead_code))]
    pub(crate) fn repair_claims(&mut self, dead: u64) -> usize {
        // SAFETY: `mem` holds the geometry's slots (constructor contract).
        unsafe { repair_claims(&self.mem, &self.g, dead) }
    }

    /// Whether a committed, unclaimed position waits at or after the head hint (what
    /// `claim_read` would take), without claiming it.
    pub(crate) fn has_committed(&self) -> Result<bool, Corruption> {
        let mut pos = self.hint(self.g.words.head)?;
        for _ in 0..self.g.walk_limit() {
            // M14: Acquire, as M8 in `claim_read`.
            // SAFETY: an in-bounds aligned slot word.
            let word = unsafe { self.mem.load(self.g.slot(pos), Ordering::Acquire) };
            let (seq, tag) = split(word);
            let dif = signed_diff(seq, pos + 1);
            if dif == 0 && tag == 0 {
                return Ok(true);
            } else if dif < 0 {
                return Ok(false);
            }
            pos += 1;
            if pos >= MAX_POSITION {
                break;
            }
        }
        Ok(false)
    }

    /// The validated payload length of a position we claimed for reading. On corruption the
    /// slot is released (the garbage is dropped) and the error returned.
    #[inline]
    pub(crate) fn read_len(&mut self, pos: u64) -> Result<usize, Corruption> {
        let mut len = [0u8; 4];
        // SAFETY: the length field is inside our claimed slot.
        unsafe { self.mem.read(self.g.slot(pos) + self.g.len_off, &mut len) };
        let len = u64::from(u32::from_le_bytes(len));
        if len > self.g.slot_size {
            self.release(pos);
            return Err(Corruption {
                what: "slot length exceeds the slot size",
                position: pos,
                value: len,
            });
        }
        Ok(offset(len))
    }

    #[inline]
    fn payload_off(&self, pos: u64) -> usize {
        self.g.slot(pos) + self.g.payload_off
    }

    #[inline]
    fn check_len(&self, len: usize) -> Result<(), PushError> {
        if wide(len) > self.g.slot_size {
            return Err(PushError::TooLarge {
                len,
                max: offset(self.g.slot_size),
            });
        }
        Ok(())
    }

    /// Pushes all records or none: claims a position for each first, abandoning the claims
    /// (consumers skip them) if the ring fills before all are claimed.
    pub(crate) fn try_push_all<R: AsRef<[u8]>>(&mut self, records: &[R]) -> Result<(), PushError> {
        let mut claimed = std::mem::take(&mut self.claimed);
        let done = self.try_push_all_with(records, &mut claimed);
        self.claimed = claimed;
        done
    }

    fn try_push_all_with<R: AsRef<[u8]>>(
        &mut self,
        records: &[R],
        claimed: &mut Vec<u64>,
    ) -> Result<(), PushError> {
        let capacity = if self.g.limit == 0 {
            self.g.slots
        } else {
            self.g.limit
        };
        if wide(records.len()) > capacity {
            // It could never all fit: not a "try again later".
            return Err(PushError::TooMany {
                count: records.len(),
                max: offset(capacity),
            });
        }
        for r in records {
            self.check_len(r.as_ref().len())?;
        }
        claimed.clear();
        for _ in records {
            match self.claim_write() {
                Ok(pos) => claimed.push(pos),
                Err(e) => {
                    for &pos in claimed.iter() {
                        self.abandon_write(pos);
                    }
                    return Err(e);
                }
            }
        }
        crate::crashpoint::hit("mpmc.bulk.claimed");
        for (r, &pos) in records.iter().zip(claimed.iter()) {
            let payload = r.as_ref();
            // SAFETY: fits (checked) and ours.
            unsafe { self.mem.write(self.payload_off(pos), payload) };
            self.commit_write(pos, payload.len());
        }
        Ok(())
    }
}

/// Releases every slot claimed by endpoint `dead` (whose process is gone): a position it
/// was writing is abandoned (consumers walk past it), a position it was reading is freed
/// for producers (that one message, which the dead consumer had taken, is lost). Slots
/// name their claimer, so no other endpoint's claim is touched. Idempotent; returns how
/// many slots were released.
///
/// # Safety
///
/// - `mem` holds `g.slots` slots of `g.stride` bytes at `g.words.data`.
pub(crate) unsafe fn repair_claims<M: Memory>(mem: &M, g: &Geometry, dead: u64) -> usize {
    let mask = g.slots - 1;
    let mut released = 0;
    for i in 0..g.slots {
        let off = g.slot(i);
        // M12: Acquire; pairs with the Release store (M5 or M11) that the dead endpoint's
        // claiming CAS (M3/M9) replaced, through the release sequence that RMW
        // continues: the previous lap's accesses to the slot happen before we free it. The
        // dead endpoint's own payload writes are never read (PROTOCOL §5.4).
        // SAFETY: `off` is an in-bounds aligned slot word.
        let word = unsafe { mem.load(off, Ordering::Acquire) };
        let (seq, tag) = split(word);
        if tag != dead || seq >= MAX_POSITION {
            continue;
        }
        // `(p, k)` in slot p & mask: writing p. `(p + 1, k)` in slot p & mask: reading p.
        let pos = if seq & mask == i {
            seq
        } else if seq > 0 && (seq - 1) & mask == i {
            seq - 1
        } else {
            continue;
        };
        crate::crashpoint::hit("mpmc.repair.slot");
        // M13: Release; pairs with the Acquire load/CAS (M2/M2'/M3) in `claim_write` of the next lap's
        // producer (as `release`). SeqCst (layout 1.6): consumers pass a repaired position
        // without claiming it, as an abandoned one (M6; PROTOCOL §5.7, "passed positions").
        // Relaxed on failure: the slot moved on; not ours to fix.
        // SAFETY: as above.
        if unsafe {
            mem.compare_exchange(
                off,
                word,
                join(pos + g.slots, 0),
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
        }
        .is_ok()
        {
            released += 1;
        }
    }
    released
}

impl<M: Memory> WriteCore for Core<M> {
    /// Copies `payload` into a claimed slot and commits it.
    #[inline(always)]
    fn try_push(&mut self, payload: &[u8]) -> Result<(), PushError> {
        self.check_len(payload.len())?;
        let pos = self.claim_write()?;
        crate::crashpoint::hit("mpmc.push.claimed");
        // The slot's offset once, for the payload, the length and the sequence word.
        let off = self.g.slot(pos);
        // SAFETY: the payload fits the slot (checked) and the slot is ours.
        unsafe { self.mem.write(off + self.g.payload_off, payload) };
        crate::crashpoint::hit("mpmc.push.written");
        self.commit_at(off, pos, payload.len());
        Ok(())
    }

    /// Pushes records until one does not fit; returns how many were pushed.
    fn try_push_batch<R: AsRef<[u8]>>(&mut self, records: &[R]) -> Result<usize, PushError> {
        for r in records {
            self.check_len(r.as_ref().len())?;
        }
        let mut n = 0;
        for r in records {
            match self.try_push(r.as_ref()) {
                Ok(()) => n += 1,
                // Whatever stopped the burst, report what was pushed; the next call reports
                // the error itself (so a caller that retries never sends duplicates).
                Err(_) if n > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    #[inline]
    fn reserve(&mut self, len: usize) -> Result<u64, PushError> {
        self.check_len(len)?;
        self.claim_write()
    }

    #[inline]
    fn commit(&mut self, at: u64, len: usize) {
        self.commit_write(at, len);
    }

    fn abandon(&mut self, at: u64) {
        self.abandon_write(at);
        // An abandoned position also lets consumers waiting behind it go on (they walk past
        // it): N1–N3 for data too (a dropped permit of an asynchronous sender, say).
        if let Some(w) = self.g.words.wake {
            // SAFETY: wake words are in-bounds aligned control words (constructor contract).
            unsafe { notify(&self.mem, w, Direction::Data) };
        }
    }

    fn max_message(&self) -> usize {
        offset(self.g.slot_size)
    }

    fn is_full(&mut self) -> bool {
        let Ok(pos) = self.hint(self.g.words.tail) else {
            return true;
        };
        if self.g.limit != 0
            && pos >= self.cached_head + self.g.limit
            && self.reload_head_for_limit(pos).is_err()
        {
            return true;
        }
        // M2 (as a producer's walk): Acquire. The slot at the tail hint still holding an
        // earlier lap is where a push would stop.
        // SAFETY: an in-bounds aligned slot word.
        let word = unsafe { self.mem.load(self.g.slot(pos), Ordering::Acquire) };
        signed_diff(split(word).0, pos) < 0
    }

    fn position(&self) -> u64 {
        // Relaxed: diagnostics only.
        // SAFETY: the hint word is in bounds (constructor contract).
        unsafe { self.mem.load(self.g.words.tail, Ordering::Relaxed) }
    }

    fn audit(&mut self) -> Audit {
        self.audit_write()
    }
}

impl<M: Memory> ReadCore for Core<M> {
    /// Pops one record into `buf`, which must hold a whole slot.
    #[inline(always)]
    fn try_pop(&mut self, buf: &mut [u8]) -> Result<usize, PopError> {
        if wide(buf.len()) < self.g.slot_size {
            // Checked before claiming: a claimed position cannot be handed back in order.
            return Err(PopError::BufferTooSmall {
                needed: offset(self.g.slot_size),
                len: buf.len(),
            });
        }
        let pos = self.claim_read()?.ok_or(PopError::Empty)?;
        let len = self.read_len(pos)?;
        // SAFETY: `len` is within the slot (validated) and the slot is ours.
        unsafe { self.mem.read(self.payload_off(pos), &mut buf[..len]) };
        self.release(pos);
        Ok(len)
    }

    /// Pops one record into a cleared `buf`.
    fn try_pop_vec(&mut self, buf: &mut Vec<u8>) -> Result<usize, PopError> {
        let pos = self.claim_read()?.ok_or(PopError::Empty)?;
        crate::crashpoint::hit("mpmc.pop.claimed");
        let len = self.read_len(pos)?;
        buf.clear();
        buf.resize(len, 0);
        // SAFETY: `len` is within the slot (validated) and the slot is ours.
        unsafe { self.mem.read(self.payload_off(pos), buf) };
        crate::crashpoint::hit("mpmc.pop.read");
        self.release(pos);
        Ok(len)
    }

    // Always: on the per-message path of every in-place read and batch (a call here cost
    // ~2 ns per message in `spsc/batch32`).
    #[inline(always)]
    fn next(&mut self) -> Result<Option<(u64, usize)>, PopError> {
        let Some(pos) = self.claim_read()? else {
            return Ok(None);
        };
        Ok(Some((pos, self.read_len(pos)?)))
    }

    #[inline]
    fn consume(&mut self, at: u64, _len: usize, _publish: Publish) {
        // A slot is freed at once: other consumers walk on regardless, and producers need it.
        self.release(at);
    }

    fn flush(&mut self) {}

    fn unwind(&mut self, at: u64, _len: usize) {
        // A claimed position cannot be handed back in order: free it (the message is dropped).
        self.release(at);
    }

    fn pop_buffer_min(&self) -> usize {
        offset(self.g.slot_size)
    }

    fn has_committed(&mut self) -> bool {
        matches!(Core::has_committed(self), Ok(true))
    }

    fn in_flight(&self) -> bool {
        self.stopped.is_some_and(|(pos, word)| {
            crate::crashpoint::hit("mpmc.pop.look_ahead");
            self.committed_past(pos, word)
        })
    }

    fn position(&self) -> u64 {
        // Relaxed: diagnostics, and whether the head moved while a pop settles (a change is
        // all that is read from it).
        // SAFETY: the hint word is in bounds (constructor contract).
        unsafe { self.mem.load(self.g.words.head, Ordering::Relaxed) }
    }

    fn audit(&mut self) -> Audit {
        self.audit_read()
    }
}

impl WriteInPlace for Core<RawMem> {
    #[inline]
    fn payload(&self, at: u64) -> *mut u8 {
        // SAFETY: a slot's payload area lies inside the data region (geometry validated).
        unsafe { self.mem.ptr(self.payload_off(at)) }
    }
}

impl ReadInPlace for Core<RawMem> {
    #[inline]
    fn payload(&self, at: u64) -> *const u8 {
        // SAFETY: as in the producer's `payload`.
        unsafe { self.mem.ptr(self.payload_off(at)) }
    }
}
