//! One endpoint's registration: register, unregister, probe and reap (PROTOCOL §7.1–§7.4).
//!
//! Everything here runs over [`Memory`] and [`Vitals`], so the loom models (`crate::model`)
//! run this very code with a registrant, a reaper and a dying endpoint stopped between any two
//! steps (every [`Vitals::step`]).

use super::{
    fields, roster_off, state_off, vitality, LockTry, State, Vitality, Vitals, EVER, PHASE_ACTIVE,
    PHASE_FREE, PHASE_REAPING, PHASE_REGISTERING, REGISTERING_LOCKED,
};
use crate::endpoint::Role;
use crate::sync::{Memory, Ordering};
use std::fs::File;

/// Why [`Registration::register`] did not register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegisterError {
    /// Every entry of the table is held, by endpoints alive or of unknown fate.
    Full,
    /// The endpoint stopped between two steps (loom models only: [`Vitals::step`]).
    Stopped,
}

/// How many times a registrant looks over the table when the only free entries it found have
/// their lock held (by an endpoint that freed its entry and is about to close its lock's
/// descriptor), pausing in between, before it settles for an entry without a lock.
const ATTEMPTS: u32 = 20;

/// The lock a registrant took on its entry's byte (L0), if any.
struct EntryLock {
    /// Whether the lock is ours.
    held: bool,
    /// The open file description holding it (`None` in the loom models).
    file: Option<File>,
}

impl EntryLock {
    const NONE: EntryLock = EntryLock {
        held: false,
        file: None,
    };

    /// Lets go of the lock (if held) on entry `index`.
    fn release<V: Vitals>(self, v: &V, index: u64) {
        if self.held {
            v.release_lock(index, self.file);
        }
    }
}

/// What [`Registration::adopt_dead`] found.
enum Adopt {
    /// A dead entry, reaped and registered in.
    Adopted(Registration),
    /// None now, but a live process is freeing one: look again.
    Transient,
    /// None.
    Nothing,
}

/// An endpoint's entry in the table, held from attach to drop.
pub struct Registration {
    index: u64,
    role: Role,
    gen: u16,
    pid: u32,
    /// Whether we hold the OFD lock on our entry's byte.
    locked: bool,
    /// The open file description holding it (closing it releases the lock).
    lock: Option<File>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("tag", &self.tag())
            .field("role", &self.role)
            .field("gen", &self.gen)
            .field("pid", &self.pid)
            .field("locked", &self.locked)
            .finish_non_exhaustive()
    }
}

/// What [`Registration::reap_owner`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// The owner lives (or its fate cannot be told): its pid.
    Alive(u32),
    /// The owner is being reaped, or its entry just changed: look again shortly.
    BeingReaped,
    /// The owner is gone (reaped now, or the word names no held entry of that generation).
    Gone,
}

/// Zeroes a reaped entry's fields before it is freed (L14). Nothing depends on it (a
/// registrant overwrites them at L2 before anyone judges its entry by them); it keeps a dead
/// holder's start time and namespace from lingering in a free entry.
///
/// # Safety
///
/// - `mem` holds the endpoint table.
unsafe fn clear_fields<M: Memory>(mem: &M, index: u64, holder: u32) {
    // SAFETY: the caller's contract.
    unsafe { forget_bell(mem, index, holder) };
    let [start, ns, locked] = fields(index);
    // L14: Relaxed; ordered before the Release CAS that frees the entry (L15).
    // SAFETY: aligned fields of the table, which `mem` holds.
    unsafe {
        mem.store(start, 0, Ordering::Relaxed);
        mem.store(ns, 0, Ordering::Relaxed);
        mem.store_u32(locked, 0, Ordering::Relaxed);
    }
}

/// A dead holder's doorbell (§6.1): removes the socket path it left — if the id names the
/// holder's pid `holder` as its creator — and zeroes the id (L14, and an adopter's L12). A live
/// process may share a bell between endpoints, and a holder that detaches leaves its id for
/// the next registrant to overwrite: an id another process made is not removed.
///
/// # Safety
///
/// - `mem` holds the endpoint table.
unsafe fn forget_bell<M: Memory>(mem: &M, index: u64, holder: u32) {
    let word = crate::bell::id_word(index);
    // Relaxed: the entry is held by this reaper; ordered by L15 (or L4) as the other fields.
    // SAFETY: an aligned field of the table, which `mem` holds.
    let id = unsafe { mem.load(word, Ordering::Relaxed) };
    if id != 0 {
        crate::bell::remove(id, holder);
        // SAFETY: as above.
        unsafe { mem.store(word, 0, Ordering::Relaxed) };
    }
}

/// Records who holds entry `index`: our start time, PID namespace and lock flag (L2–L3).
/// Relaxed stores, published by the Release CAS to `active` (L4).
///
/// # Safety
///
/// - `mem` holds the endpoint table.
unsafe fn stamp<M: Memory, V: Vitals>(mem: &M, v: &V, index: u64, locked: bool) {
    let [start_off, ns_off, locked_off] = fields(index);
    // SAFETY: aligned fields of the table, which `mem` holds.
    unsafe {
        mem.store(
            start_off,
            v.start_time(v.pid()).unwrap_or(0),
            Ordering::Relaxed,
        );
        mem.store(ns_off, v.pidns(), Ordering::Relaxed);
        mem.store_u32(locked_off, u32::from(locked), Ordering::Relaxed);
        // L3 (layout 1.3): no doorbell yet; a previous holder's id does not survive.
        mem.store(crate::bell::id_word(index), 0, Ordering::Relaxed);
    }
}

/// Whether the reaper named by a `reaping` state is gone: its tag is out of range, 0 or
/// `own_tag` (we are not reaping it: a previous holder of our entry was, and died), its entry
/// is not held by the reaper's pid any more, or that holder is dead.
///
/// # Safety
///
/// - `mem` holds the endpoint table.
unsafe fn reaper_gone<M: Memory, V: Vitals>(mem: &M, v: &V, st: &State, own_tag: u64) -> bool {
    let reaper = u64::from(st.reaper);
    if reaper == 0 || reaper > v.table_len() || reaper == own_tag {
        return true;
    }
    // L10: Acquire, as in `probe`.
    // SAFETY: the reaper's state word is an aligned word of the table.
    let rst = State::decode(unsafe { mem.load(state_off(reaper - 1), Ordering::Acquire) });
    rst.held().is_none()
        || rst.phase != PHASE_ACTIVE
        || rst.pid != st.pid
        // SAFETY: the table is in `mem`.
        || unsafe { vitality(mem, v, reaper - 1, &rst) } == Vitality::Dead
}

/// Whether the held entry `index`, whose state word reads `st`, is to be reaped: its holder
/// (or, while it is being reaped, its reaper) is gone (§7.2, §7.3). `own_tag` is the prober's
/// tag (0 for a registrant that holds no entry yet).
///
/// # Safety
///
/// - `mem` holds the endpoint table.
unsafe fn reapable<M: Memory, V: Vitals>(
    mem: &M,
    v: &V,
    index: u64,
    st: &State,
    own_tag: u64,
) -> bool {
    // SAFETY: the table is in `mem` (contract).
    unsafe {
        if st.phase == PHASE_REAPING && u64::from(st.reaper) == index + 1 {
            // The holder is detaching itself (`unregister`): dead only if its process is.
            vitality(mem, v, index, st) == Vitality::Dead
        } else if st.phase == PHASE_REAPING {
            // Someone is reaping it: take over only if that reaper is gone.
            reaper_gone(mem, v, st, own_tag)
        } else {
            vitality(mem, v, index, st) == Vitality::Dead
        }
    }
}

/// How `inspect` judges entry `index`, whose state word reads `st`: as a prober would, and an
/// entry being reaped by a reaper that is gone as dead.
///
/// # Safety
///
/// - `mem` holds the endpoint table.
pub(crate) unsafe fn judge<M: Memory, V: Vitals>(
    mem: &M,
    v: &V,
    index: u64,
    st: &State,
) -> Vitality {
    // SAFETY: the table is in `mem` (contract).
    unsafe {
        if st.phase == PHASE_REAPING && u64::from(st.reaper) != index + 1 {
            if reaper_gone(mem, v, st, 0) {
                Vitality::Dead
            } else {
                Vitality::Alive
            }
        } else {
            vitality(mem, v, index, st)
        }
    }
}

impl Registration {
    /// Takes an entry for an endpoint of `role` (L0–L5): a free one, or, when none is free, one
    /// whose holder is dead, which it reaps first (L17–L19, with `repair` as the ring kind's
    /// L12). Returns the registration and whether a dead entry was reaped on the way.
    ///
    /// # Safety
    ///
    /// - `mem` holds the roster and the endpoint table (a segment of at least `DATA_OFFSET`
    ///   bytes), writable.
    pub(crate) unsafe fn register<M: Memory, V: Vitals>(
        mem: &M,
        v: &V,
        role: Role,
        repair: &mut dyn FnMut(u64, u16, Role),
    ) -> Result<(Registration, bool), RegisterError> {
        for attempt in 0..ATTEMPTS {
            let last = attempt + 1 == ATTEMPTS;
            let mut busy = false;
            for index in 0..v.table_len() {
                // L1: Relaxed: only a candidate; the CAS decides. The latest value: a registrant
                // that looks again after a pause must see entries freed meanwhile.
                // SAFETY: the state word is an aligned word of the table (contract).
                let seen = unsafe { mem.load_latest(state_off(index)) };
                if State::decode(seen).phase != PHASE_FREE {
                    continue;
                }
                // L0: the entry's lock first, so that whoever sees the entry `registering`
                // can judge us by it. A busy lock is usually a detaching holder's, released
                // just after it freed the entry: look again later, and only on the last
                // attempt settle for the entry without a lock.
                let lock = match v.take_lock(index) {
                    LockTry::Taken(file) => EntryLock { held: true, file },
                    LockTry::Busy if !last => {
                        busy = true;
                        continue;
                    }
                    LockTry::Busy | LockTry::Unavailable => EntryLock::NONE,
                };
                // SAFETY: as above.
                match unsafe { Self::claim_free(mem, v, index, seen, role, lock)? } {
                    Some(reg) => return Ok((reg, false)),
                    // Taken first, or taken from us: the table changed, look again.
                    None => busy = true,
                }
            }
            // No free entry to be had: take one whose holder is dead.
            // SAFETY: as above.
            match unsafe { Self::adopt_dead(mem, v, role, last, repair)? } {
                Adopt::Adopted(reg) => return Ok((reg, true)),
                // An entry is being freed (reaped, or detached) by a live process.
                Adopt::Transient => busy = true,
                Adopt::Nothing => {}
            }
            if !busy {
                break;
            }
            v.pause();
        }
        Err(RegisterError::Full)
    }

    /// Claims the free entry `index`, seen as `seen`, holding its lock if `lock` is `Some`
    /// (L1), and completes the registration (L2–L5). `None` if the entry was taken first.
    ///
    /// # Safety
    ///
    /// - As for [`Registration::register`].
    unsafe fn claim_free<M: Memory, V: Vitals>(
        mem: &M,
        v: &V,
        index: u64,
        seen: u64,
        role: Role,
        lock: EntryLock,
    ) -> Result<Option<Registration>, RegisterError> {
        let registering = State {
            pid: v.pid(),
            gen: State::decode(seen).gen.wrapping_add(1),
            phase: PHASE_REGISTERING,
            reaper: if lock.held { REGISTERING_LOCKED } else { 0 },
            role: Some(role),
        };
        // L1: AcqRel on success. Acquire pairs with the Release CAS that freed the entry (L9
        // in `unregister`, L15 in `reap`): the previous holder is done with it. Release: a
        // prober whose L10 reads this word also sees what we did before it — our L0 lock, and
        // the registration of our own other endpoints (which a reaper's tag refers to).
        // Relaxed on failure: try the next entry.
        // SAFETY: the state word is an aligned word of the table (contract).
        if unsafe {
            mem.compare_exchange(
                state_off(index),
                seen,
                registering.encode(),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
        }
        .is_err()
        {
            lock.release(v, index);
            return Ok(None);
        }
        if !v.step("register.entry") {
            return Err(RegisterError::Stopped);
        }
        // SAFETY: as above.
        unsafe { Self::complete(mem, v, index, registering, role, lock) }
    }

    /// Completes the registration of entry `index`, which we hold as `registering` (L2–L5).
    /// `None` if a prober took the entry meanwhile (the lock, if any, is released).
    ///
    /// # Safety
    ///
    /// - As for [`Registration::register`].
    unsafe fn complete<M: Memory, V: Vitals>(
        mem: &M,
        v: &V,
        index: u64,
        registering: State,
        role: Role,
        lock: EntryLock,
    ) -> Result<Option<Registration>, RegisterError> {
        // L2–L3: who we are, and whether we hold the lock (stored either way: a 1 left by
        // anyone else must not outlive this registration). Relaxed: published by L4.
        // SAFETY: the table is in `mem` (contract).
        unsafe { stamp(mem, v, index, lock.held) };
        if !v.step("register.claimed") {
            return Err(RegisterError::Stopped);
        }
        if !v.step("register.locked") {
            return Err(RegisterError::Stopped);
        }
        let active = State {
            phase: PHASE_ACTIVE,
            reaper: 0,
            ..registering
        };
        // L4: Release; publishes the entry's fields (L2, L3) to probers, whose Acquire load
        // of the state word (L10) pairs with it. A CAS, not a store: if a prober judged us dead
        // meanwhile and took the entry (only a peer that does not judge a locked registrant by
        // its lock can), we must not overwrite its reaping (nor a later holder). Relaxed on
        // failure: the entry is not ours any more.
        // SAFETY: the state word is an aligned word of the table (contract).
        if unsafe {
            mem.compare_exchange(
                state_off(index),
                registering.encode(),
                active.encode(),
                Ordering::Release,
                Ordering::Relaxed,
            )
        }
        .is_err()
        {
            lock.release(v, index);
            return Ok(None);
        }
        if !v.step("register.active") {
            return Err(RegisterError::Stopped);
        }
        // L5: the "ever" bit goes in with our own bit, in one RMW: a peer never sees "ever"
        // without an attached endpoint. SeqCst (a locked RMW on x86 whatever the ordering):
        // before our M22 (MPMC sole words) in the total order, so that an endpoint whose
        // reclaim's roster load (M26, SeqCst) does not see our bit comes before our M22 there,
        // and its reclaim (M27) fails or our join sees it (PROTOCOL §5.7, "Reclaim"). Nothing
        // of ours needs publishing to a peer that sees the bit.
        // SAFETY: the roster word is an aligned word of the first page.
        unsafe { mem.fetch_or(roster_off(role), EVER | 1 << index, Ordering::SeqCst) };
        Ok(Some(Registration {
            index,
            role,
            gen: active.gen,
            pid: active.pid,
            locked: lock.held,
            lock: lock.file,
        }))
    }

    /// With no free entry: finds an entry whose holder is dead (or whose reaper is), takes its
    /// lock, and reaps it for ourselves (L17–L19, with L12–L13 as a reaper's), then registers
    /// in it (L2–L5). `None` if
    /// there is none we can take.
    ///
    /// # Safety
    ///
    /// - As for [`Registration::register`].
    unsafe fn adopt_dead<M: Memory, V: Vitals>(
        mem: &M,
        v: &V,
        role: Role,
        last: bool,
        repair: &mut dyn FnMut(u64, u16, Role),
    ) -> Result<Adopt, RegisterError> {
        let pid = v.pid();
        let mut transient = Adopt::Nothing;
        for index in 0..v.table_len() {
            let word = state_off(index);
            // L10: Acquire, as in `probe`: the fields we judge by are the holder's.
            // SAFETY: the state word is an aligned word of the table (contract).
            let seen = unsafe { mem.load(word, Ordering::Acquire) };
            let st = State::decode(seen);
            let Some(held_role) = st.held() else {
                if st.phase == PHASE_FREE {
                    // Freed since our pass: take it on the next.
                    transient = Adopt::Transient;
                }
                continue;
            };
            // SAFETY: the table is in `mem` (contract).
            if !unsafe { reapable(mem, v, index, &st, 0) } {
                // A live reaper or a live detaching holder frees it shortly; an entry that
                // changed while we judged it (its fields zeroed by a reaper, say) is judged
                // again on the next pass.
                // SAFETY: as above.
                if st.phase == PHASE_REAPING || unsafe { mem.load_latest(word) } != seen {
                    transient = Adopt::Transient;
                }
                continue;
            }
            // L17: the entry's lock, or nothing: while we reap the entry it is judged by this
            // lock alone, and the lock keeps a second adopter off.
            let lock = match v.take_lock(index) {
                LockTry::Taken(file) => EntryLock { held: true, file },
                // Another adopter has it, or a process that inherited the dead holder's lock
                // descriptor over `fork` (the holder was judged dead by pid and start time):
                // look again, and on the last pass adopt without the lock, as L0 settles for
                // a free entry without one.
                LockTry::Busy if !last => {
                    transient = Adopt::Transient;
                    continue;
                }
                LockTry::Busy | LockTry::Unavailable => EntryLock::NONE,
            };
            // Adopting, the entry is `registering` with the dead holder's role and generation
            // (so that, should we die too, our reaper repairs what the dead holder held) and
            // our pid, judged by our lock.
            let adopting = State {
                phase: PHASE_REGISTERING,
                reaper: if lock.held { REGISTERING_LOCKED } else { 0 },
                pid,
                ..st
            };
            // L18: AcqRel on success, as L11: Acquire, the holder's Release CAS on the word (L4,
            // whose release sequence later RMWs continue) happens before our repair; Release,
            // a prober's L10 that reads this word sees our L17 lock. Relaxed on failure: the
            // entry changed (a prober reaped it, or another adopter won); let go of the lock.
            // SAFETY: as above.
            if unsafe {
                mem.compare_exchange(
                    word,
                    seen,
                    adopting.encode(),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
            }
            .is_err()
            {
                lock.release(v, index);
                // Reaped (and maybe freed) meanwhile: look again.
                transient = Adopt::Transient;
                continue;
            }
            if !v.step("adopt.claimed") {
                return Err(RegisterError::Stopped);
            }
            // L12: the ring kind's repair of what the dead holder held (idempotent), and
            // its doorbell's path.
            repair(index + 1, st.gen, held_role);
            // SAFETY: as above.
            unsafe { forget_bell(mem, index, st.pid) };
            if !v.step("adopt.repaired") {
                return Err(RegisterError::Stopped);
            }
            // L13: Release, as in `reap`: the repair happens before a peer's L16 that finds
            // the bitmap empty.
            // SAFETY: the roster word is an aligned word of the first page.
            unsafe { mem.fetch_and(roster_off(held_role), !(1 << index), Ordering::Release) };
            if !v.step("adopt.unlisted") {
                return Err(RegisterError::Stopped);
            }
            let registering = State {
                gen: st.gen.wrapping_add(1),
                role: Some(role),
                ..adopting
            };
            // L19: Relaxed: the entry is ours (we hold it `registering` and hold its lock); L4
            // publishes what follows. A failure means a peer that does not judge a locked
            // registrant by its lock took it: let go.
            // SAFETY: as above.
            if unsafe {
                mem.compare_exchange(
                    word,
                    adopting.encode(),
                    registering.encode(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
            }
            .is_err()
            {
                lock.release(v, index);
                transient = Adopt::Transient;
                continue;
            }
            // SAFETY: as above.
            if let Some(reg) = unsafe { Self::complete(mem, v, index, registering, role, lock)? } {
                return Ok(Adopt::Adopted(reg));
            }
            transient = Adopt::Transient;
        }
        Ok(transient)
    }

    /// The endpoint's tag: its entry index + 1 (1..=55).
    pub(crate) fn tag(&self) -> u64 {
        self.index + 1
    }

    /// The endpoint's role.
    pub(crate) fn role(&self) -> Role {
        self.role
    }

    /// The registration generation (for SPSC owner words).
    pub(crate) fn gen(&self) -> u16 {
        self.gen
    }

    /// Whether this registration was made by the calling process (not inherited over `fork`).
    pub(crate) fn is_own<V: Vitals>(&self, v: &V) -> bool {
        v.pid() == self.pid
    }

    /// Detaches (L6–L9): holds the entry, clears the roster bit, frees the entry, releases the
    /// lock. The fields stay as they were until the next holder overwrites them: should we die
    /// half-way, the entry is judged by them (and by the lock) like any other. In a `fork`ed child that inherited the endpoint, does nothing:
    /// the parent's endpoint stays attached.
    ///
    /// # Safety
    ///
    /// - As for [`Registration::register`].
    pub(crate) unsafe fn unregister<M: Memory, V: Vitals>(&mut self, mem: &M, v: &V) {
        if !self.is_own(v) {
            return;
        }
        if !v.step("unregister.start") {
            return;
        }
        let active = State {
            pid: self.pid,
            gen: self.gen,
            phase: PHASE_ACTIVE,
            reaper: 0,
            role: Some(self.role),
        };
        // First make sure the entry is still ours, and hold it while we clean up (as a reaper
        // would): if a prober took it meanwhile, its bit and fields may belong to someone else
        // by now, and we touch nothing.
        let leaving = State {
            phase: PHASE_REAPING,
            reaper: u8::try_from(self.tag()).unwrap_or(0),
            ..active
        };
        let word = state_off(self.index);
        // L6: Acquire on success: as L11, the entry's last writer was us. Relaxed on
        // failure: a prober found us dead and took the entry; it is not ours to touch.
        // SAFETY: the state word is an aligned word of the table (contract).
        let held = unsafe {
            mem.compare_exchange(
                word,
                active.encode(),
                leaving.encode(),
                Ordering::Acquire,
                Ordering::Relaxed,
            )
        }
        .is_ok();
        if held {
            if !v.step("unregister.leaving") {
                return;
            }
            // L7: Release; everything this endpoint published happens before a peer's Acquire
            // load of the bitmap that finds it empty (L16, `side_gone`).
            // SAFETY: the roster word is an aligned word of the first page.
            unsafe { mem.fetch_and(roster_off(self.role), !(1 << self.index), Ordering::Release) };
            if !v.step("unregister.unlisted") {
                return;
            }
            // L9: Release; our last uses of the entry happen before the next registrant's
            // Acquire CAS (L1). Relaxed on failure: a prober found our
            // process dead (it cannot be, while we run this) and freed the entry itself.
            // SAFETY: as above.
            let _ = unsafe {
                mem.compare_exchange(
                    word,
                    leaving.encode(),
                    State::free(self.gen),
                    Ordering::Release,
                    Ordering::Relaxed,
                )
            };
        }
        if self.locked {
            self.locked = false;
            v.release_lock(self.index, self.lock.take());
        }
    }

    /// Looks at every other entry and reaps the dead ones; `repair(tag, gen, role)` undoes
    /// what a dead endpoint held (it must be idempotent). Returns how many entries were reaped.
    /// In a `fork`ed child that inherited the endpoint, does nothing.
    ///
    /// # Safety
    ///
    /// - As for [`Registration::register`].
    pub(crate) unsafe fn probe<M: Memory, V: Vitals>(
        &self,
        mem: &M,
        v: &V,
        repair: &mut dyn FnMut(u64, u16, Role),
    ) -> usize {
        if !self.is_own(v) {
            // An endpoint inherited over `fork` never probes or reaps: a reaping state would
            // name the parent's tag and pid, so if this child died mid-reap, every other
            // prober would take the reaper for alive while the parent lives (PROTOCOL §7.1).
            return 0;
        }
        let mut reaped = 0;
        for index in 0..v.table_len() {
            if index == self.index {
                continue;
            }
            // L10: Acquire; pairs with the Release CAS to `active` (L4) (and L9/L15 for a freed
            // entry), so the entry's fields (pidns, start time, lock flag) are the holder's.
            // SAFETY: the state word is an aligned word of the table (contract).
            let seen = unsafe { mem.load(state_off(index), Ordering::Acquire) };
            let st = State::decode(seen);
            let Some(role) = st.held() else { continue };
            // SAFETY: the table is in `mem` (contract).
            let dead = unsafe { reapable(mem, v, index, &st, self.tag()) };
            // SAFETY: as above.
            if dead && unsafe { self.reap(mem, v, index, seen, role, repair) } {
                reaped += 1;
            }
        }
        reaped
    }

    /// Reaps entry `index`, seen as `seen` (L11–L15): claims it, repairs, clears its bit,
    /// zeroes its fields, frees it. `false` if the entry changed before the claim.
    ///
    /// # Safety
    ///
    /// - `mem` holds the roster and the endpoint table.
    unsafe fn reap<M: Memory, V: Vitals>(
        &self,
        mem: &M,
        v: &V,
        index: u64,
        seen: u64,
        role: Role,
        repair: &mut dyn FnMut(u64, u16, Role),
    ) -> bool {
        let st = State::decode(seen);
        // While reaping, the state names the reaper: its tag and its pid (so a later holder of
        // the reaper's entry is not taken for it).
        let reaping = State {
            phase: PHASE_REAPING,
            reaper: u8::try_from(self.tag()).unwrap_or(0),
            pid: self.pid,
            ..st
        };
        let word = state_off(index);
        // L11: AcqRel on success. Acquire pairs with the last Release CAS on the word (the
        // holder's L4; an L6 or a previous reaper's L11 in between continues its release
        // sequence), so the entry's fields are the holder's. Release: a prober whose L10 reads
        // this reaping word, naming us by tag and pid, also sees our own registration (our
        // L4), so `reaper_gone` never takes us for gone while we reap. The dead
        // holder's later stores (slot claims, owner words, positions) are not ordered by this;
        // the repair reads and changes them only with RMWs and Acquire loads of their own.
        // Relaxed on failure: the entry changed; nothing to do now.
        // SAFETY: the state word is an aligned word of the table (contract).
        if unsafe {
            mem.compare_exchange(
                word,
                seen,
                reaping.encode(),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
        }
        .is_err()
        {
            return false;
        }
        if !v.step("reap.claimed") {
            return true;
        }
        // L12: the ring kind's repair (idempotent): SPSC O2, MPMC M12–M13.
        repair(index + 1, st.gen, role);
        if !v.step("reap.repaired") {
            return true;
        }
        // L13: Release; the repair happens before a peer's Acquire load that finds the bitmap
        // empty (L16).
        // SAFETY: the roster word is an aligned word of the first page.
        unsafe { mem.fetch_and(roster_off(role), !(1 << index), Ordering::Release) };
        if !v.step("reap.unlisted") {
            return true;
        }
        // L14: zero the fields (Relaxed; ordered by L15).
        // SAFETY: the table is in `mem`.
        unsafe { clear_fields(mem, index, st.pid) };
        // L15: Release; the repair and the cleared fields happen before the next registrant's
        // Acquire CAS (L1). Relaxed on failure: a later reaper took over and freed it.
        // SAFETY: as above.
        let _ = unsafe {
            mem.compare_exchange(
                word,
                reaping.encode(),
                State::free(st.gen),
                Ordering::Release,
                Ordering::Relaxed,
            )
        };
        true
    }

    /// Judges the endpoint holding `tag` with generation `gen` (an SPSC owner word), reaping it
    /// if dead.
    ///
    /// # Safety
    ///
    /// - As for [`Registration::register`].
    pub(crate) unsafe fn reap_owner<M: Memory, V: Vitals>(
        &self,
        mem: &M,
        v: &V,
        tag: u64,
        gen: u16,
        repair: &mut dyn FnMut(u64, u16, Role),
    ) -> Owner {
        if tag == 0 || tag > v.table_len() {
            return Owner::Gone;
        }
        let index = tag - 1;
        // L10: Acquire, as in `probe`.
        // SAFETY: the state word is an aligned word of the table (contract).
        let seen = unsafe { mem.load(state_off(index), Ordering::Acquire) };
        let st = State::decode(seen);
        let Some(role) = st.held() else {
            return Owner::Gone;
        };
        if st.gen != gen {
            return Owner::Gone;
        }
        // SAFETY: the table is in `mem` (contract).
        unsafe {
            if st.phase == PHASE_REAPING && u64::from(st.reaper) == tag {
                // Detaching itself: it clears the owner word on its way out, unless it died.
                if vitality(mem, v, index, &st) != Vitality::Dead {
                    return Owner::BeingReaped;
                }
            } else if st.phase == PHASE_REAPING {
                if !reaper_gone(mem, v, &st, self.tag()) {
                    // A live reaper is on it; the owner word will be cleared shortly.
                    return Owner::BeingReaped;
                }
            } else if st.phase == PHASE_REGISTERING {
                // An owner word names a registration that completed (owners are claimed after
                // L5), so a `registering` entry of its generation is an adopter (L18), about to
                // repair — clear — this very word, unless it died too.
                if vitality(mem, v, index, &st) != Vitality::Dead {
                    return Owner::BeingReaped;
                }
            } else if vitality(mem, v, index, &st) != Vitality::Dead {
                return Owner::Alive(st.pid);
            }
            if self.reap(mem, v, index, seen, role, repair) {
                Owner::Gone
            } else {
                // The entry changed under us: judge again.
                Owner::BeingReaped
            }
        }
    }
}
