//! Sole endpoints (PROTOCOL §5.7, layout 1.6, ring flag `SOLE`): an endpoint alone in its role
//! raises its hint with a plain store (M4s, M10s) instead of a locked `fetch_max` (M4, M10),
//! and an endpoint that joins it waits out the raise it may have in flight before it raises
//! the hint itself (M23), so that the hint never moves back (DECISIONS D88).
//!
//! Each role's *sole word* says who, if anyone, is alone: 0 (nobody), a tag (that endpoint),
//! or [`SOLE_SHARED`] with the tag that was alone when the role became shared. An endpoint
//! takes the word at registration if it is 0 (M22), else marks it shared and joins; a sole
//! endpoint gives it back when it detaches, and the reaper when it was dead (M24).
//!
//! Why the join is sound, in the memory model's terms (the loom models in
//! `tests/loom_mpmc_sole.rs` check both roles):
//!
//! - A sole endpoint claims its position with a `SeqCst` RMW (M2'/M3, M8'/M9; a locked
//!   instruction on x86 whatever the ordering), then loads its sole word (M21, `SeqCst`: a plain
//!   load on x86), then stores the hint.
//! - The joiner marks the word shared (M22, `SeqCst` RMW), then runs a `SeqCst` fence, once, at
//!   registration; its walks load slot words after that fence.
//! - In the single total order S of `SeqCst` operations, a sole claim either comes before the
//!   joiner's fence, and then every load of that slot after the fence sees the claim or a
//!   later word; or after it, and then so does the claimer's M21, which then sees the mark
//!   (an SC load sees the last SC write before it in S, or a later one) and raises with
//!   `fetch_max`.
//! - So every plain store that can still come is for a claim the joiner's walk sees. It walks
//!   from the hint past claimed and committed positions to the first one nobody has claimed
//!   (the sole endpoint claims in order and cannot have claimed past it), and where the
//!   former sole endpoint's claim sits at or past the hint, waits until the hint is past it
//!   (its store landed: every later RMW of the hint comes after it in modification order).
//!   A sole endpoint preempted between its claim and its store makes the joiner answer
//!   `Full` (empty) meanwhile: the one case the walk cannot settle at once.
//! - A sole consumer also passes positions it never claims (abandoned, repaired, below a hint
//!   it jumps to). The writes that make a position passable (M6, M13, the raises) and the
//!   loads a consumer passes it by (M7, M8, M19) are `SeqCst` too, so such a pass also comes
//!   before the joiner's fence in the total order, and the joiner's walk sees it (PROTOCOL
//!   §5.7, "passed positions").
//!
//! # Reclaim (layout 1.8, ring flag `RECLAIM`; DECISIONS D94)
//!
//! Before 1.8 a shared word stayed shared for the ring's life: a sender cloned once and
//! dropped left every raise locked. On a `RECLAIM` ring the endpoint left alone in a shared
//! role takes the word back, and a join always changes the word, so that it cannot take it
//! from under a joiner:
//!
//! - A join adds [`SOLE_JOIN`] to the word (M22, `SeqCst` RMW), then sets `SOLE_SHARED`; the
//!   word is different after every join, even into a role already shared.
//! - After a claim, an endpoint whose M21 finds the word no bare tag — shared, or a join's
//!   count whose mark has not come (its joiner killed between the two) — and which is not
//!   joining loads its role's roster (M26, `SeqCst`). If its own bit is the only one, it CASes the word
//!   from the value M21 read to its tag (M27, `SeqCst`); its next claim's M21 finds the word
//!   its own, and it raises with plain stores.
//! - A registrant sets its roster bit (L5, `SeqCst` RMW) before its M22. If M26 does not see
//!   that bit, M26 comes before L5 in the total order S, so M21 (before M26) comes before the
//!   registrant's M22 there: the M22 add is later in the word's modification order than the
//!   value M21 read, and changes it. M27 then either comes before the add in modification
//!   order — and the joiner's M22 reads our tag and joins us, waiting out our raise in flight
//!   as any join does — or after it, and fails: the role stays shared.
//! - The role's other endpoints have all gone when M26 sees the roster: each cleared its bit
//!   (L7 after its last raise, or the reaper's L13 after repairing its claims) with a Release
//!   RMW, which M26's load synchronizes with. Their raises happen before ours, so our plain
//!   store's load of the hint (M4a/M10a) sees them and never lowers it.
//! - Without the add (a join of an older peer: `fetch_or` of a set bit changes nothing) M27
//!   could succeed after a join that named someone else as the former sole endpoint; that is
//!   why older peers must refuse the flag. The loom models in `tests/loom_mpmc_sole.rs`
//!   (`..._reclaim_...`) fail with the add replaced by the old `fetch_or`.
//! - The argument also holds without S, on acquire/release alone, which loom models exactly:
//!   every write of a sole word is an RMW, so if M21 read the add's value or a later one, it
//!   read from the add's release sequence, the registrant's L5 happens before M26, and M26
//!   sees its bit; if M21 read an earlier value, M27 succeeds only directly after it in
//!   modification order, and the add then reads our tag. What is relied on: no plain store
//!   to a sole word, M21 at least Acquire, M22 at least Release (DECISIONS D94, "Review").

use super::Core;
use crate::conv::signed_diff;
use crate::error::Corruption;
use crate::layout::{SOLE_JOIN, SOLE_SHARED};
use crate::liveness::EVER;
use crate::mpmc::{split, MAX_POSITION, TAG_MASK};
use crate::sync::{Memory, Ordering};

/// Which role's sole word and hint: the index into `Geometry::sole` and `Core::joining`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// Producers: the producer block's sole word and the tail hint.
    Write = 0,
    /// Consumers: the consumer block's sole word and the head hint.
    Read = 1,
}

/// How many times a joiner reloads the hint while a sole endpoint's claim sits at or past it,
/// before it reports `Full` or empty: the sole endpoint stores the hint two instructions after
/// its claim. One under loom: the same loads, fewer interleavings.
const RAISE_SPINS: u32 = if cfg!(loom) { 1 } else { 64 };

/// What a joiner's walk found at one position.
enum Step {
    /// Conclusive: no raise of the former sole endpoint can be in flight any more.
    Joined,
    /// Not conclusive yet; the caller reports full (empty) and the walk is made again.
    Wait,
    /// Move on to this position.
    Next(u64),
}

impl<M: Memory> Core<M> {
    /// The hint word of `side`.
    fn hint_word(&self, side: Side) -> usize {
        match side {
            Side::Write => self.g.words.tail,
            Side::Read => self.g.words.head,
        }
    }

    /// Registers this endpoint in `side`'s sole word (M22), if the ring has them: takes it if
    /// nobody holds it, else marks the role shared and, if an endpoint was alone in it, starts
    /// the join that waits out that endpoint's raise in flight (`join`).
    pub(crate) fn enter(&mut self, side: Side) {
        let Some(words) = self.g.sole else {
            return;
        };
        let off = words[side as usize];
        // M22: AcqRel on success: Acquire, so that the raises of an endpoint that held the word
        // before (and gave it back, M24, Release) happen before ours; Acquire on failure, as
        // the value decides. A plain RMW on x86.
        // SAFETY: the sole words are in the first page (geometry contract).
        let taken = unsafe {
            self.mem
                .compare_exchange(off, 0, self.tag, Ordering::AcqRel, Ordering::Acquire)
        };
        if taken.is_ok() {
            return;
        }
        let before = if self.g.reclaim.is_some() {
            // M22 (join, layout 1.8): SeqCst, as below; an add, so that the word changes at
            // every join, even one into a role already shared: a reclaim (M27) that read the
            // word before this join then fails (module docs, "Reclaim").
            // SAFETY: as above.
            let before = unsafe { self.mem.fetch_add(off, SOLE_JOIN, Ordering::SeqCst) };
            crate::crashpoint::hit("mpmc.join.counted");
            // M22m: Relaxed: the mark, for observers; the add above is what orders the join,
            // and from it on the word is no bare tag, so no endpoint takes it for its own
            // (M21), gives it back (M24) or takes it from 0 (M22) meanwhile. A joiner killed
            // before this leaves the count alone, which M25 and M26 treat as shared.
            // SAFETY: as above.
            unsafe { self.mem.fetch_or(off, SOLE_SHARED, Ordering::Relaxed) };
            before
        } else {
            // M22 (join): SeqCst, then a SeqCst fence: with the sole endpoint's SeqCst claim
            // and M21, a claim of its that this walk cannot see is followed by an M21 that sees
            // the mark (module docs). Also Acquire, as above.
            // SAFETY: as above.
            unsafe { self.mem.fetch_or(off, SOLE_SHARED, Ordering::SeqCst) }
        };
        crate::sync::fence(Ordering::SeqCst);
        let former = before & TAG_MASK;
        if former != 0 {
            self.joining[side as usize] = former;
            self.join_from[side as usize] = 0;
        }
    }

    /// Gives `side`'s sole word back if this endpoint holds it (M24): at a clean detach,
    /// after its last raise.
    #[cfg_attr(not(loom), allow(dead_code))]
    pub(crate) fn leave(&self, side: Side) {
        if let Some(words) = self.g.sole {
            // SAFETY: in-bounds aligned sole word (geometry contract).
            unsafe { vacate(&self.mem, words[side as usize], self.tag) };
        }
    }

    /// Whether this endpoint is alone in `side` now (M21): it then raises with a plain store.
    #[inline(always)]
    pub(super) fn is_sole(&self, side: Side) -> bool {
        let Some(words) = self.g.sole else {
            return false;
        };
        // M21: SeqCst (a plain load on x86): after this endpoint's claim (SeqCst) in the total
        // order; it sees a joiner's mark that comes before it there, and a joiner whose mark
        // comes after it sees the claim (module docs).
        // loom models SeqCst loads and RMWs as AcqRel (tokio-rs/loom#180) but SeqCst fences
        // as the standard says, and its fences also carry happens-before: with a fence here
        // the model checks a stronger program than the real one. It checks the claims; the
        // positions a sole consumer passes without claiming them are covered in the real
        // program by SeqCst writes (M6, M13) and loads (M7, M8, M19), which the model cannot
        // tell from AcqRel ones (PROTOCOL §5.7, "passed positions").
        #[cfg(loom)]
        crate::sync::fence(Ordering::SeqCst);
        // SAFETY: in-bounds aligned sole word (geometry contract).
        let word = unsafe { self.mem.load(words[side as usize], Ordering::SeqCst) };
        if word == self.tag {
            return true;
        }
        if let Some(rosters) = self.g.reclaim {
            // Not a bare tag: shared, or a join's count (M22) whose mark (M22m) has not come,
            // or never will (the joiner killed between them, and reaped since).
            if word & !TAG_MASK != 0 && self.joining[side as usize] == 0 {
                // M26: SeqCst (a plain load on x86): after M21 in the total order, so that a
                // registrant whose roster bit this does not see joins after M21 read the
                // word, and M27 fails; and Acquire, pairing with the Release of the L7/L13
                // that cleared the roster bits of the role's other endpoints, so that their
                // raises happen before ours (module docs, "Reclaim"). The roster line is
                // read-mostly, and held already (every push checks the consumers' roster).
                // SAFETY: the roster words are in the first page (geometry contract).
                let roster = unsafe { self.mem.load(rosters[side as usize], Ordering::SeqCst) };
                if Some(roster) == alone_in_roster(self.tag) {
                    self.reclaim(words[side as usize], word);
                }
            }
        }
        false
    }

    /// Takes the sole word of a shared role back (M27), this endpoint being the only one in
    /// its role's roster (M26) when the word read `word` (M21). This claim's raise stays a
    /// `fetch_max`; the next claim's M21 finds the word this endpoint's.
    #[cold]
    #[inline(never)]
    fn reclaim(&self, off: usize, word: u64) {
        // M27: SeqCst on success: after M26 in the total order (module docs, "Reclaim"), and
        // Release, so that a later joiner's M22 (Acquire) is ordered after it. Relaxed on
        // failure: a join (or another change) came first, and the role stays shared.
        // SAFETY: in-bounds aligned sole word (geometry contract).
        let _ = unsafe {
            self.mem
                .compare_exchange(off, word, self.tag, Ordering::SeqCst, Ordering::Relaxed)
        };
    }

    /// Raises `side`'s hint to `to` by a plain store (M4s, M10s), as `raise` would but
    /// without a locked instruction: only the sole endpoint of a role writes that role's hint
    /// by a plain store, and every other writer of it (a producer's walk past consumed
    /// positions, M10 in `reload_head_for_limit`) never raises it past a position the sole
    /// endpoint has claimed and not yet raised past.
    #[inline(always)]
    pub(super) fn raise_alone(&self, side: Side, to: u64) {
        let off = self.hint_word(side);
        // M4a/M10a: Relaxed, as in `raise`.
        // SAFETY: in-bounds aligned hint word (constructor contract).
        if unsafe { self.mem.load(off, Ordering::Relaxed) } < to {
            // M4s/M10s: Release: pairs with M1's/M7's Acquire, as M4/M10.
            // SAFETY: as above.
            unsafe { self.mem.store(off, to, Ordering::Release) };
        }
    }

    /// The join (M23) of an endpoint that registered while another was alone in `side`:
    /// `Ok(true)` once no raise of that endpoint can be in flight (the join is over and this
    /// endpoint raises as any shared one); `Ok(false)` if the caller must answer full (empty)
    /// now and try again.
    #[cold]
    #[inline(never)]
    pub(super) fn join(&mut self, side: Side) -> Result<bool, Corruption> {
        let former = self.joining[side as usize];
        let hint = self.hint_word(side);
        // From the hint, or from where the last call's walk stopped if that is further: the
        // positions before it were claimed or passed when read, and a position's word only
        // moves on, so the walk goes on as if it had not stopped.
        let mut pos = self.hint(hint)?.max(self.join_from[side as usize]);
        for _ in 0..self.g.walk_limit() {
            let off = self.g.slot(pos);
            // M23: Acquire, as M2/M8 (a commit or release it reads carries what came before);
            // after the fence of `enter`.
            // SAFETY: an in-bounds aligned slot word.
            let word = unsafe { self.mem.load(off, Ordering::Acquire) };
            let step = match side {
                Side::Write => self.join_write_step(pos, word, former)?,
                Side::Read => self.join_read_step(pos, word, former)?,
            };
            match step {
                Step::Joined => {
                    self.joining[side as usize] = 0;
                    return Ok(true);
                }
                Step::Wait => {
                    self.join_from[side as usize] = pos;
                    if side == Side::Read {
                        // What a pop that stops here answers is M17's to judge: a message
                        // committed past `pos` means "wait", not "empty".
                        self.stopped = Some((pos, word));
                    }
                    return Ok(false);
                }
                Step::Next(next) => pos = next,
            }
            if pos >= MAX_POSITION {
                return Err(Corruption {
                    what: "joining endpoint walked beyond 2^55",
                    position: pos,
                    value: word,
                });
            }
        }
        self.join_from[side as usize] = pos;
        Ok(false)
    }

    /// One step of a joining producer's walk at `pos`, whose slot holds `word`.
    fn join_write_step(&self, pos: u64, word: u64, former: u64) -> Result<Step, Corruption> {
        let (seq, tag) = split(word);
        let dif = signed_diff(seq, pos);
        Ok(if dif < 0 || (dif == 0 && tag == 0) {
            // Free, or an earlier lap still (full here): nobody has claimed this position, so
            // neither has the former sole producer any later one.
            Step::Joined
        } else if dif == 0 && tag == former && !self.hint_passes(Side::Write, pos)? {
            // Being written by the former sole producer, whose raise is not in yet.
            Step::Wait
        } else if dif <= 1 {
            // Being written (its raise is in), committed or being read: claimed.
            Step::Next(pos + 1)
        } else {
            // Passed (abandoned, or a later lap): on to the hint, or the next position.
            Step::Next(self.hint(self.g.words.tail)?.max(pos + 1))
        })
    }

    /// One step of a joining consumer's walk at `pos`, whose slot holds `word`.
    fn join_read_step(&self, pos: u64, word: u64, former: u64) -> Result<Step, Corruption> {
        let (seq, tag) = split(word);
        let dif = signed_diff(seq, pos + 1);
        Ok(if dif < 0 || (dif == 0 && tag == 0) {
            // Not committed, or committed and unclaimed: nobody has claimed this position for
            // reading, so neither has the former sole consumer any later one.
            Step::Joined
        } else if dif == 0 && tag == former && !self.hint_passes(Side::Read, pos)? {
            // Being read by the former sole consumer, whose raise is not in yet.
            Step::Wait
        } else if dif == 0 {
            // Being read by another, or by the former with its raise in.
            Step::Next(pos + 1)
        } else {
            // Consumed (or abandoned): on to the hint, or the next position.
            Step::Next(self.hint(self.g.words.head)?.max(pos + 1))
        })
    }

    /// Whether `side`'s hint is past `pos` (a sole endpoint's raise for its claim of `pos` has
    /// landed), reloading it a few times (M1/M7) while it is not.
    fn hint_passes(&self, side: Side, pos: u64) -> Result<bool, Corruption> {
        let off = self.hint_word(side);
        for _ in 0..RAISE_SPINS {
            if self.hint(off)? > pos {
                return Ok(true);
            }
            crate::sync::spin_hint();
        }
        Ok(self.hint(off)? > pos)
    }
}

/// The roster word of a role in which endpoint `tag` alone is attached: its bit and the
/// "ever attached" bit. `None` for a tag with no roster bit (above 63: model tags only).
fn alone_in_roster(tag: u64) -> Option<u64> {
    let bit = 1u64.checked_shl(u32::try_from(tag.checked_sub(1)?).ok()?)?;
    (bit != EVER).then_some(EVER | bit)
}

/// Gives the sole word at `off` back if it names `tag` (M24): a clean detach, or the reaper of
/// a dead endpoint after its claims are repaired. A shared word stays shared.
///
/// # Safety
///
/// - `off` is an in-bounds aligned word of `mem`.
pub(crate) unsafe fn vacate<M: Memory>(mem: &M, off: usize, tag: u64) {
    // M24: Release on success: the endpoint's raises (or, for the reaper, its repair) happen
    // before the next taker's M22 (Acquire). Relaxed on failure: nothing to give back.
    // SAFETY: the caller's contract.
    let _ = unsafe { mem.compare_exchange(off, tag, 0, Ordering::Release, Ordering::Relaxed) };
}
