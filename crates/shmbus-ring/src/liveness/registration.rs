//! One endpoint's registration: register, unregister, probe and reap (PROTOCOL §7.1–§7.4).
//!
//! Everything here runs over [`Memory`] and [`Vitals`], so the loom models (`crate::model`)
//! run this very code with a registrant, a reaper and a dying endpoint stopped between any two
//! steps (every [`Vitals::step`]).

use super::{
    fields, roster_off, state_off, vitality, State, Vitality, Vitals, EVER, PHASE_ACTIVE,
    PHASE_FREE, PHASE_REAPING, PHASE_REGISTERING,
};
use crate::endpoint::Role;
use crate::sync::{Memory, Ordering};
use std::fs::File;

/// Why [`Registration::register`] did not register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegisterError {
    /// Every entry of the table is held.
    Full,
    /// The endpoint stopped between two steps (loom models only: [`Vitals::step`]).
    Stopped,
}

/// An endpoint's entry in the table, held from attach to drop.
pub struct Registration {
    index: u64,
    role: Role,
    gen: u16,
    pid: u32,
    /// The open file description holding our OFD lock (closing it releases the lock).
    lock: Option<File>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("tag", &self.tag())
            .field("role", &self.role)
            .field("gen", &self.gen)
            .field("pid", &self.pid)
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

/// Zeroes an entry's fields before it is freed, so that the next registrant is never judged by
/// its predecessor's start time, namespace or lock flag.
///
/// # Safety
///
/// - `mem` holds the endpoint table.
unsafe fn clear_fields<M: Memory>(mem: &M, index: u64) {
    let [start, ns, locked] = fields(index);
    // L8 / L14: Relaxed; ordered before the Release CAS that frees the entry (L9 / L15).
    // SAFETY: aligned fields of the table, which `mem` holds.
    unsafe {
        mem.store(start, 0, Ordering::Relaxed);
        mem.store(ns, 0, Ordering::Relaxed);
        mem.store_u32(locked, 0, Ordering::Relaxed);
    }
}

impl Registration {
    /// Takes a free entry for an endpoint of `role`, records who holds it, locks it, and marks
    /// it attached (L1–L5).
    ///
    /// # Safety
    ///
    /// - `mem` holds the roster and the endpoint table (a segment of at least `DATA_OFFSET`
    ///   bytes), writable.
    pub(crate) unsafe fn register<M: Memory, V: Vitals>(
        mem: &M,
        v: &V,
        role: Role,
    ) -> Result<Registration, RegisterError> {
        let pid = v.pid();
        for index in 0..v.table_len() {
            let word = state_off(index);
            // L1: Relaxed: only a candidate; the CAS decides.
            // SAFETY: the state word is an aligned word of the table (contract).
            let seen = unsafe { mem.load(word, Ordering::Relaxed) };
            let st = State::decode(seen);
            if st.phase != PHASE_FREE {
                continue;
            }
            let gen = st.gen.wrapping_add(1);
            let registering = State {
                pid,
                gen,
                phase: PHASE_REGISTERING,
                reaper: 0,
                role: Some(role),
            };
            // L1: Acquire on success; pairs with the Release CAS that freed the entry
            // (L9 in `unregister`, L15 in `reap`): the previous holder is done
            // with it. Relaxed on failure: try the next entry.
            // SAFETY: as above.
            if unsafe {
                mem.compare_exchange(
                    word,
                    seen,
                    registering.encode(),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
            }
            .is_err()
            {
                continue;
            }
            if !v.step("register.entry") {
                return Err(RegisterError::Stopped);
            }
            // L2: Relaxed: the fields are published by the Release CAS to `active` (L4).
            // Until then a prober judges this entry by its pid alone.
            let [start_off, ns_off, locked_off] = fields(index);
            // SAFETY: aligned fields of the table.
            unsafe {
                mem.store(start_off, v.start_time(pid).unwrap_or(0), Ordering::Relaxed);
                mem.store(ns_off, v.pidns(), Ordering::Relaxed);
            }
            if !v.step("register.claimed") {
                return Err(RegisterError::Stopped);
            }
            // L3: the OFD lock, and its flag, stored either way: a 1 left by anyone else must
            // not outlive this registration. Relaxed: published by L4.
            let lock = v.take_lock(index);
            // SAFETY: as above.
            unsafe { mem.store_u32(locked_off, u32::from(lock.is_some()), Ordering::Relaxed) };
            if !v.step("register.locked") {
                return Err(RegisterError::Stopped);
            }
            let active = State {
                phase: PHASE_ACTIVE,
                ..registering
            };
            // L4: Release; publishes the entry's fields (L2, L3) to probers, whose Acquire load
            // of the state word (L10) pairs with it. A CAS, not a store: if a prober judged
            // us dead meanwhile and took the entry, we must not overwrite its reaping (nor a
            // later holder); we look for another entry. Relaxed on failure: the entry is not
            // ours any more.
            // SAFETY: as above.
            if unsafe {
                mem.compare_exchange(
                    word,
                    registering.encode(),
                    active.encode(),
                    Ordering::Release,
                    Ordering::Relaxed,
                )
            }
            .is_err()
            {
                continue;
            }
            if !v.step("register.active") {
                return Err(RegisterError::Stopped);
            }
            // L5: the "ever" bit goes in with our own bit, in one RMW: a peer never sees
            // "ever" without an attached endpoint. Relaxed: nothing of ours needs publishing to
            // a peer that sees the bit.
            // SAFETY: the roster word is an aligned word of the first page.
            unsafe { mem.fetch_or(roster_off(role), EVER | 1 << index, Ordering::Relaxed) };
            return Ok(Registration {
                index,
                role,
                gen,
                pid,
                lock,
            });
        }
        Err(RegisterError::Full)
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

    /// Detaches (L6–L9): holds the entry, clears the roster bit, zeroes the fields, frees the
    /// entry, releases the lock. In a `fork`ed child that inherited the endpoint, does nothing:
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
            // L8: zero the fields (Relaxed; ordered by L9).
            // SAFETY: the table is in `mem`.
            unsafe { clear_fields(mem, self.index) };
            if !v.step("unregister.cleared") {
                return;
            }
            // L9: Release; our last uses of the entry and the cleared fields happen before the
            // next registrant's Acquire CAS (L1). Relaxed on failure: a prober found our
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
        self.lock = None;
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
            // SAFETY: the table is in `mem` (contract), for `vitality` and `reaper_gone`.
            let dead = unsafe {
                if st.phase == PHASE_REAPING && u64::from(st.reaper) == index + 1 {
                    // The holder is detaching itself (`unregister`): dead only if its
                    // process is.
                    vitality(mem, v, index, &st) == Vitality::Dead
                } else if st.phase == PHASE_REAPING {
                    // Someone is reaping it: take over only if that reaper is gone.
                    self.reaper_gone(mem, v, &st)
                } else {
                    vitality(mem, v, index, &st) == Vitality::Dead
                }
            };
            // SAFETY: as above.
            if dead && unsafe { self.reap(mem, v, index, seen, role, repair) } {
                reaped += 1;
            }
        }
        reaped
    }

    /// Whether the reaper named by a `reaping` state is gone: its tag is out of range or ours
    /// (we are not reaping it: a previous holder of our entry was, and died), its entry is not
    /// held by the reaper's pid any more, or that holder is dead.
    ///
    /// # Safety
    ///
    /// - `mem` holds the endpoint table.
    unsafe fn reaper_gone<M: Memory, V: Vitals>(&self, mem: &M, v: &V, st: &State) -> bool {
        let reaper = u64::from(st.reaper);
        if reaper == 0 || reaper > v.table_len() || reaper == self.tag() {
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
        // L11: Acquire on success; pairs with the last Release CAS on the word (the holder's L4;
        // an Acquire-only L6 or a previous reaper's L11 in between continues its release
        // sequence), so the entry's fields are the holder's. The dead
        // holder's later stores (slot claims, owner words, positions) are not ordered by this;
        // the repair reads and changes them only with RMWs and Acquire loads of their own.
        // Relaxed on failure: the entry changed; nothing to do now.
        // SAFETY: the state word is an aligned word of the table (contract).
        if unsafe {
            mem.compare_exchange(
                word,
                seen,
                reaping.encode(),
                Ordering::Acquire,
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
        unsafe { clear_fields(mem, index) };
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
                if !self.reaper_gone(mem, v, &st) {
                    // A live reaper is on it; the owner word will be cleared shortly.
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
