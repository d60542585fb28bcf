//! Endpoint liveness: the endpoint table, death detection without heartbeats, and reaping.
//!
//! # The table
//!
//! Every attached producer and consumer, of either ring kind, holds one 64-byte entry of the
//! endpoint table ([`ENDPOINT_TABLE`], [`MAX_ENDPOINTS`] entries). Its index + 1 is the
//! endpoint's **tag**: MPMC slots name the endpoint that claimed them by it, SPSC control
//! blocks name their owner by it. An entry's state word packs:
//!
//! ```text
//! bits 0..4    role     1 producer, 2 consumer
//! bits 4..8    phase    0 free, 1 registering, 2 active, 3 reaping
//! bits 8..16   reaper   the tag of the endpoint reaping this entry (phase 3)
//! bits 16..32  gen      registration generation: bumped by every registration (no ABA)
//! bits 32..64  pid      the holder's pid (meaningful in its PID namespace); while
//!                       reaping, the reaper's pid
//! ```
//!
//! The roster line ([`ROSTER`]) holds one bitmap per role: bit `i` is set while entry `i` is
//! attached, and bit 63 once any endpoint of that role has attached (set with the first bit, in
//! the same `fetch_or`, never cleared). It is the cheap disconnection test: a producer checks the consumer bitmap on every
//! push (one load of a read-mostly line); a consumer checks the producer bitmap when the ring is
//! empty. Bits are set and cleared idempotently (`fetch_or` / `fetch_and`), so a reaper that
//! dies half-way and a second reaper that redoes its work cannot corrupt the count.
//!
//! # Death detection
//!
//! An endpoint in a segment with a file (shm, memfd, file) opens its own open file description
//! of that file and takes an OFD write lock (`F_OFD_SETLK`) on the first byte of its entry. The
//! kernel drops the lock when the last descriptor of that description closes, which a dying
//! process does. Other processes probe it with `F_OFD_GETLK`; this works across PID namespaces.
//! Because a `fork`ed child inherits descriptors (and so keeps a parent's lock alive), the
//! probe also checks, when prober and holder share a PID namespace, that a process with the
//! entry's pid and start time still exists. Segments without a file (anonymous, heap) use that
//! check alone. An endpoint whose fate cannot be told (another namespace, no lock) counts as
//! alive: it is never reaped on a guess.
//!
//! # Reaping
//!
//! A survivor that finds a dead entry moves it, by CAS on the state word, from `active` (or
//! `registering`) to `reaping` with its own tag, so exactly one live reaper works on an entry.
//! The reaper then repairs what the dead endpoint held (the ring kind's job: an SPSC owner word
//! is cleared; MPMC slots tagged with the dead tag are released), clears the roster bit, and
//! frees the entry. If the reaper dies too, the next survivor that finds the reaper dead takes
//! the entry over and redoes the (idempotent) steps. Only a dead endpoint's own claims carry
//! its tag, and its entry is freed only after they are repaired, so a repair never touches a
//! live endpoint's claim.

use crate::crashpoint;
use crate::error::{Error, Result, Role};
use crate::layout::{
    self, ENDPOINT_LOCKED, ENDPOINT_PIDNS, ENDPOINT_SIZE, ENDPOINT_START_TIME, ENDPOINT_STATE,
    ENDPOINT_TABLE, MAX_ENDPOINTS, ROSTER, ROSTER_CONSUMERS, ROSTER_EVER_BIT, ROSTER_PRODUCERS,
};
use crate::segment::{Segment, SegmentOptions};
use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// How often, by default, a waiting endpoint checks whether its peers are still alive (and
/// repairs what dead ones held). Death is noticed within about this much of it becoming
/// detectable (plus the 4 ms resolution of the coarse clock).
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_millis(20);

const PHASE_FREE: u64 = 0;
const PHASE_REGISTERING: u64 = 1;
const PHASE_ACTIVE: u64 = 2;
const PHASE_REAPING: u64 = 3;

/// A decoded entry state word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct State {
    pub(crate) pid: u32,
    pub(crate) gen: u16,
    pub(crate) phase: u64,
    pub(crate) reaper: u8,
    pub(crate) role: Option<Role>,
}

impl State {
    fn decode(w: u64) -> State {
        State {
            role: match w & 0xf {
                1 => Some(Role::Producer),
                2 => Some(Role::Consumer),
                _ => None,
            },
            phase: (w >> 4) & 0xf,
            reaper: (w >> 8) as u8,
            gen: (w >> 16) as u16,
            pid: (w >> 32) as u32,
        }
    }

    fn encode(&self) -> u64 {
        let role = match self.role {
            Some(Role::Producer) => 1,
            Some(Role::Consumer) => 2,
            None => 0,
        };
        role | self.phase << 4
            | u64::from(self.reaper) << 8
            | u64::from(self.gen) << 16
            | u64::from(self.pid) << 32
    }

    fn free(gen: u16) -> u64 {
        u64::from(gen) << 16
    }

    /// Whether this is a held entry with a valid role (garbage in a held phase is skipped).
    fn held(&self) -> Option<Role> {
        match self.phase {
            PHASE_REGISTERING | PHASE_ACTIVE | PHASE_REAPING => self.role,
            _ => None,
        }
    }
}

/// The word an SPSC control block's owner field holds for an endpoint: its tag and the low
/// bits of its generation (so a stale owner word is never mistaken for a newer holder).
pub(crate) fn owner_word(tag: u64, gen: u16) -> u32 {
    tag as u32 | u32::from(gen) << 8
}

fn entry_off(index: u64) -> usize {
    (ENDPOINT_TABLE + index * ENDPOINT_SIZE) as usize
}

fn state_word(seg: &Segment, index: u64) -> &AtomicU64 {
    seg.raw_atomic_u64(entry_off(index) + ENDPOINT_STATE as usize)
        .expect("validated segments hold the endpoint table")
}

fn entry_u64(seg: &Segment, index: u64, field: u64) -> &AtomicU64 {
    seg.raw_atomic_u64(entry_off(index) + field as usize)
        .expect("validated segments hold the endpoint table")
}

fn entry_u32(seg: &Segment, index: u64, field: u64) -> &AtomicU32 {
    seg.raw_atomic_u32(entry_off(index) + field as usize)
        .expect("validated segments hold the endpoint table")
}

#[inline]
fn roster(seg: &Segment, field: u64) -> &AtomicU64 {
    seg.raw_atomic_u64((ROSTER + field) as usize)
        .expect("validated segments hold the roster")
}

fn roster_field(role: Role) -> u64 {
    match role {
        Role::Producer => ROSTER_PRODUCERS,
        Role::Consumer => ROSTER_CONSUMERS,
    }
}

pub(crate) const EVER: u64 = 1 << ROSTER_EVER_BIT;

/// Whether `role`'s side has gone away: some endpoint of that role attached once, and none is
/// attached now. A side that never had an endpoint is still expected, not gone.
#[inline]
pub(crate) fn side_gone(seg: &Segment, role: Role) -> bool {
    // Acquire: pairs with the Release `fetch_and` that cleared the last bit (`unregister`,
    // `reap`), so everything that endpoint published (records, releases) is visible to a
    // caller that then concludes "gone" and re-polls the ring.
    roster(seg, roster_field(role)).load(Ordering::Acquire) == EVER
}

/// [`side_gone`] through a ring's own view of the segment: the hot paths' check (every push;
/// every empty poll), one load of the read-mostly roster line with no bounds checks or
/// indirection.
#[inline]
pub(crate) fn gone(mem: &crate::mem::RawMem, role: Role) -> bool {
    use crate::mem::Memory;
    // SAFETY: a `RawMem` of a ring covers the whole validated segment, at least `DATA_OFFSET`
    // bytes, and the roster words are 8-aligned inside its first page.
    // Acquire: as in `side_gone` (pairs with the Release `fetch_and` of the last detach).
    unsafe { mem.load((ROSTER + roster_field(role)) as usize, Ordering::Acquire) == EVER }
}

// ---------------------------------------------------------------------------------------------
// Process identity: pid namespace, start time, and the probes.
// ---------------------------------------------------------------------------------------------

/// The inode of this process's PID namespace, 0 if unknown: no `/proc`, or a `/proc` mounted
/// from another PID namespace (its `self` is not our pid), where pids cannot be checked. Read
/// each time (no cache): a `fork`ed child may be in a new namespace, even with the same pid
/// (1, in containers).
fn own_pidns() -> u64 {
    let pid = std::process::id();
    let proc_is_ours = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| s.split_ascii_whitespace().next()?.parse::<u32>().ok())
        == Some(pid);
    if !proc_is_ours {
        return 0;
    }
    std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .and_then(|p| {
            let s = p.to_string_lossy().into_owned();
            s.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok()
        })
        .unwrap_or(0)
}

/// The start time (clock ticks after boot) of process `pid` in this PID namespace; `None` if
/// there is no such process (or `/proc` cannot say).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 2 (comm) may contain spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // Field 3 is the first after ')'; field 22 (starttime) is the 20th.
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// Whether a process with `pid` exists in this namespace: `Some(false)` on ESRCH.
fn pid_exists(pid: u32) -> Option<bool> {
    if pid == 0 || pid > i32::MAX as u32 {
        return Some(false);
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None) {
        Ok(()) | Err(nix::errno::Errno::EPERM) => Some(true),
        Err(nix::errno::Errno::ESRCH) => Some(false),
        Err(_) => None,
    }
}

/// Whether some open file description other than `fd`'s holds a write lock on byte `off`.
fn lock_held(fd: BorrowedFd<'_>, off: u64) -> Option<bool> {
    // SAFETY: `flock` is a plain C struct for which all-zero bytes are a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_RDLCK as _;
    fl.l_whence = libc::SEEK_SET as _;
    fl.l_start = off as _;
    fl.l_len = 1;
    nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_OFD_GETLK(&mut fl)).ok()?;
    Some(fl.l_type != libc::F_UNLCK as _)
}

/// Opens a new open file description of `seg`'s file and takes an OFD write lock on byte
/// `off` with it. `None` when the segment has no file, `/proc` is missing, or the byte is
/// locked already (e.g. by a descriptor a forked child inherited).
fn take_lock(seg: &Segment, off: u64) -> Option<File> {
    let fd = seg.fd()?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .ok()?;
    // SAFETY: as in `lock_held`.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as _;
    fl.l_whence = libc::SEEK_SET as _;
    fl.l_start = off as _;
    fl.l_len = 1;
    nix::fcntl::fcntl(file.as_raw_fd(), nix::fcntl::FcntlArg::F_OFD_SETLK(&fl)).ok()?;
    Some(file)
}

/// The resolution of the coarse clock (a scheduler tick, typically 4 ms), read once.
fn coarse_resolution_ns() -> u64 {
    static RES: OnceLock<u64> = OnceLock::new();
    *RES.get_or_init(|| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec.
        let rc = unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
        if rc == 0 {
            ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
        } else {
            4_000_000
        }
    })
}

/// Monotonic time in nanoseconds from the coarse clock (a vDSO read of the last tick, no TSC
/// read: a few ns).
#[inline]
fn coarse_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC_COARSE exists on every Linux
    // this crate supports. On failure `ts` stays zero, which only delays a probe.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Whether an endpoint's process is alive, as far as the caller can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vitality {
    /// Its lock is held, or its process exists with the recorded start time.
    Alive,
    /// Its lock is gone, or no process with its pid and start time exists.
    Dead,
    /// It holds no lock this process can probe and lives in another PID namespace.
    Unknown,
}

/// Zeroes an entry's fields before it is freed, so that the next registrant is never judged by
/// its predecessor's start time, namespace or lock flag.
fn clear_fields(seg: &Segment, index: u64) {
    // Relaxed: ordered before the Release store that frees the entry.
    entry_u64(seg, index, ENDPOINT_START_TIME).store(0, Ordering::Relaxed);
    entry_u64(seg, index, ENDPOINT_PIDNS).store(0, Ordering::Relaxed);
    entry_u32(seg, index, ENDPOINT_LOCKED).store(0, Ordering::Relaxed);
}

/// Judges the holder of entry `index` (state `st`).
fn vitality(seg: &Segment, index: u64, st: &State) -> Vitality {
    let locked = entry_u32(seg, index, ENDPOINT_LOCKED).load(Ordering::Relaxed) == 1;
    let mut lock = None;
    // A registering endpoint may not have taken its lock yet: judge it by its pid alone.
    if locked && st.phase != PHASE_REGISTERING {
        if let Some(fd) = seg.fd() {
            lock = lock_held(fd, entry_off(index) as u64);
            if lock == Some(false) {
                return Vitality::Dead;
            }
        }
    }
    // Entry fields are zeroed before an entry is freed, so they are either 0 (not known) or
    // the current holder's own: a stale value of a previous holder is never compared.
    let ns = own_pidns();
    if ns != 0 && entry_u64(seg, index, ENDPOINT_PIDNS).load(Ordering::Relaxed) == ns {
        if pid_exists(st.pid) == Some(false) {
            return Vitality::Dead;
        }
        let recorded = entry_u64(seg, index, ENDPOINT_START_TIME).load(Ordering::Relaxed);
        return match start_time(st.pid) {
            // The same process, or one we cannot tell apart (no start time was recorded).
            Some(t) if t == recorded || recorded == 0 => Vitality::Alive,
            // The pid now belongs to another process: ours is gone.
            Some(_) => Vitality::Dead,
            None => match pid_exists(st.pid) {
                Some(false) => Vitality::Dead,
                _ => Vitality::Unknown,
            },
        };
    }
    if lock == Some(true) {
        Vitality::Alive
    } else {
        Vitality::Unknown
    }
}

// ---------------------------------------------------------------------------------------------
// One endpoint's registration.
// ---------------------------------------------------------------------------------------------

/// An endpoint's entry in the table, held from attach to drop.
pub(crate) struct Registration {
    index: u64,
    role: Role,
    gen: u16,
    pid: u32,
    /// The open file description holding our OFD lock (closing it releases the lock).
    lock: Option<File>,
    next_probe_ns: u64,
    interval_ns: u64,
    /// Fast-path calls since the last clock read (see `probe_due`).
    polls: u32,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("tag", &self.tag())
            .field("role", &self.role)
            .field("gen", &self.gen)
            .finish()
    }
}

impl Registration {
    /// Takes a free entry for an endpoint of `role`, locks it, and marks it attached.
    pub(crate) fn register(seg: &Segment, role: Role) -> Result<Registration> {
        if !seg.is_writable() {
            return Err(Error::ReadOnly {
                target: seg.target(),
            });
        }
        let pid = std::process::id();
        for index in 0..MAX_ENDPOINTS {
            let word = state_word(seg, index);
            // Relaxed: only a candidate; the CAS decides.
            let seen = word.load(Ordering::Relaxed);
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
            // Acquire on success: pairs with the Release store that freed the entry
            // (`unregister`, `reap`): the previous holder is done with it. Relaxed on
            // failure: try the next entry.
            if word
                .compare_exchange(
                    seen,
                    registering.encode(),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_err()
            {
                continue;
            }
            // Relaxed: the fields are published by the Release CAS to `active` below. Until
            // then a prober judges this entry by its pid alone.
            entry_u64(seg, index, ENDPOINT_START_TIME)
                .store(start_time(pid).unwrap_or(0), Ordering::Relaxed);
            entry_u64(seg, index, ENDPOINT_PIDNS).store(own_pidns(), Ordering::Relaxed);
            crashpoint::hit("register.claimed");
            let lock = take_lock(seg, entry_off(index) as u64);
            // Stored either way: a 1 left by anyone else must not outlive this registration.
            entry_u32(seg, index, ENDPOINT_LOCKED)
                .store(u32::from(lock.is_some()), Ordering::Relaxed);
            crashpoint::hit("register.locked");
            let active = State {
                phase: PHASE_ACTIVE,
                ..registering
            };
            // Release: publishes the entry's fields to probers (Acquire load in `probe`).
            // A CAS, not a store: if a prober judged us dead meanwhile and took the entry, we
            // must not overwrite its reaping (nor a later holder); we look for another entry.
            // Relaxed on failure: the entry is not ours any more.
            if word
                .compare_exchange(
                    registering.encode(),
                    active.encode(),
                    Ordering::Release,
                    Ordering::Relaxed,
                )
                .is_err()
            {
                continue;
            }
            // The "ever" bit goes in with our own bit, in one RMW: a peer never sees "ever"
            // without an attached endpoint. Relaxed: nothing of ours needs publishing to a peer
            // that sees the bit.
            roster(seg, roster_field(role)).fetch_or(EVER | 1 << index, Ordering::Relaxed);
            return Ok(Registration {
                index,
                role,
                gen,
                pid,
                lock,
                next_probe_ns: 0,
                interval_ns: DEFAULT_PROBE_INTERVAL.as_nanos() as u64,
                // The first fast-path call reads the clock.
                polls: 15,
            });
        }
        Err(Error::TooManyEndpoints {
            target: seg.target(),
            max: MAX_ENDPOINTS as u32,
        })
    }

    /// The endpoint's tag: its entry index + 1 (1..=55).
    pub(crate) fn tag(&self) -> u64 {
        self.index + 1
    }

    /// The registration generation (for SPSC owner words).
    pub(crate) fn gen(&self) -> u16 {
        self.gen
    }

    /// Sets how often [`Registration::probe_due`] says yes.
    pub(crate) fn set_interval(&mut self, interval: Duration) {
        self.interval_ns = interval.as_nanos().min(u64::MAX as u128) as u64;
        self.next_probe_ns = 0;
        self.polls = 15;
    }

    /// The probe interval.
    pub(crate) fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval_ns)
    }

    /// Whether the probe interval has passed since the last probe (and if so, starts the next
    /// interval). A caller in a tight loop (`slow == false`: a non-blocking call, or the spin
    /// phase of a blocking one) reads the coarse clock only every 16th time; a caller that just
    /// yielded or slept reads it every time.
    #[inline]
    pub(crate) fn probe_due(&mut self, slow: bool) -> bool {
        if !slow {
            self.polls = self.polls.wrapping_add(1);
            if self.polls % 16 != 0 {
                return false;
            }
        }
        // The coarse clock moves in ticks: allow one tick of slack, so that a caller woken after
        // exactly one interval probes now rather than an interval later.
        let now = coarse_now_ns().saturating_add(coarse_resolution_ns());
        if now < self.next_probe_ns {
            return false;
        }
        self.next_probe_ns = now.saturating_add(self.interval_ns);
        true
    }

    /// Whether this registration was made by the calling process (not inherited over `fork`).
    pub(crate) fn is_own(&self) -> bool {
        std::process::id() == self.pid
    }

    /// Detaches: clears the roster bit, frees the entry, releases the lock. In a `fork`ed child
    /// that inherited the endpoint, does nothing: the parent's endpoint stays attached.
    pub(crate) fn unregister(&mut self, seg: &Segment) {
        if !self.is_own() {
            return;
        }
        crashpoint::hit("unregister.start");
        let active = State {
            pid: self.pid,
            gen: self.gen,
            phase: PHASE_ACTIVE,
            reaper: 0,
            role: Some(self.role),
        };
        // First make sure the entry is still ours, and hold it while we clean up (as a reaper
        // would): if a prober took it meanwhile, its bit and fields may belong to someone else
        // by now, and we touch nothing. Acquire/Relaxed: as in `reap`.
        let leaving = State {
            phase: PHASE_REAPING,
            reaper: self.tag() as u8,
            ..active
        };
        let word = state_word(seg, self.index);
        if word
            .compare_exchange(
                active.encode(),
                leaving.encode(),
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            // Release: everything this endpoint published happens before a peer's Acquire
            // load of the bitmap that finds it empty (`side_gone`, `gone`).
            roster(seg, roster_field(self.role)).fetch_and(!(1 << self.index), Ordering::Release);
            clear_fields(seg, self.index);
            // Release: our last uses of the entry (and the cleared fields) happen before the
            // next registrant's Acquire CAS. Relaxed on failure: a prober found our process
            // dead (it cannot be, while we run this) and freed the entry itself.
            let _ = word.compare_exchange(
                leaving.encode(),
                State::free(self.gen),
                Ordering::Release,
                Ordering::Relaxed,
            );
        }
        self.lock = None;
    }

    /// Looks at every other entry and reaps the dead ones; `repair(tag, gen, role)` undoes
    /// what a dead endpoint held (it must be idempotent). Returns how many entries were reaped.
    pub(crate) fn probe(&mut self, seg: &Segment, repair: &mut dyn FnMut(u64, u16, Role)) -> usize {
        if !self.is_own() {
            // An endpoint inherited over `fork` does not reap under its parent's name.
            return 0;
        }
        let mut reaped = 0;
        for index in 0..MAX_ENDPOINTS {
            if index == self.index {
                continue;
            }
            // Acquire: pairs with the Release store of `active` in `register`, so the entry's
            // fields (pidns, start time, lock flag) are the holder's.
            let seen = state_word(seg, index).load(Ordering::Acquire);
            let st = State::decode(seen);
            let Some(role) = st.held() else { continue };
            let dead = if st.phase == PHASE_REAPING && u64::from(st.reaper) == index + 1 {
                // The holder is detaching itself (`unregister`): dead only if its process is.
                vitality(seg, index, &st) == Vitality::Dead
            } else if st.phase == PHASE_REAPING {
                // Someone is reaping it: take over only if that reaper is gone.
                self.reaper_gone(seg, &st)
            } else {
                vitality(seg, index, &st) == Vitality::Dead
            };
            if dead && self.reap(seg, index, seen, role, repair) {
                reaped += 1;
            }
        }
        reaped
    }

    /// Whether the reaper named by a `reaping` state is gone: its tag is out of range or ours
    /// (we are not reaping it: a previous holder of our entry was, and died), its entry is not
    /// held by the reaper's pid any more, or that holder is dead.
    fn reaper_gone(&self, seg: &Segment, st: &State) -> bool {
        let reaper = u64::from(st.reaper);
        if reaper == 0 || reaper > MAX_ENDPOINTS || reaper == self.tag() {
            return true;
        }
        // Acquire: as in `probe`.
        let rst = State::decode(state_word(seg, reaper - 1).load(Ordering::Acquire));
        rst.held().is_none()
            || rst.phase != PHASE_ACTIVE
            || rst.pid != st.pid
            || vitality(seg, reaper - 1, &rst) == Vitality::Dead
    }

    /// Reaps entry `index`, seen as `seen`: claims it, repairs, clears its bit, frees it.
    fn reap(
        &self,
        seg: &Segment,
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
            reaper: self.tag() as u8,
            pid: self.pid,
            ..st
        };
        let word = state_word(seg, index);
        // Acquire on success: pairs with the Release of whoever last wrote the word (the
        // holder's `active`, or a previous reaper), so the entry's fields are theirs. The dead
        // holder's later stores (slot claims, owner words, positions) are not ordered by this;
        // the repair reads and changes them only with RMWs and Acquire loads of their own.
        // Relaxed on failure: the entry changed; nothing to do now.
        if word
            .compare_exchange(seen, reaping.encode(), Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        crashpoint::hit("reap.claimed");
        repair(index + 1, st.gen, role);
        crashpoint::hit("reap.repaired");
        // Release: the repair happens before a peer's Acquire load that finds the bitmap
        // empty (`side_gone`).
        roster(seg, roster_field(role)).fetch_and(!(1 << index), Ordering::Release);
        crashpoint::hit("reap.unlisted");
        clear_fields(seg, index);
        // Release: the repair and the cleared fields happen before the next registrant's
        // Acquire CAS.
        let _ = word.compare_exchange(
            reaping.encode(),
            State::free(st.gen),
            Ordering::Release,
            Ordering::Relaxed,
        );
        true
    }

    /// Judges the endpoint holding `tag` with generation `gen` (an SPSC owner word), reaping it
    /// if dead.
    pub(crate) fn reap_owner(
        &self,
        seg: &Segment,
        tag: u64,
        gen: u16,
        repair: &mut dyn FnMut(u64, u16, Role),
    ) -> Owner {
        if tag == 0 || tag > MAX_ENDPOINTS {
            return Owner::Gone;
        }
        let index = tag - 1;
        // Acquire: as in `probe`.
        let seen = state_word(seg, index).load(Ordering::Acquire);
        let st = State::decode(seen);
        let Some(role) = st.held() else {
            return Owner::Gone;
        };
        if st.gen != gen {
            return Owner::Gone;
        }
        if st.phase == PHASE_REAPING && u64::from(st.reaper) == tag {
            // Detaching itself: it clears the owner word on its way out, unless it died.
            if vitality(seg, index, &st) != Vitality::Dead {
                return Owner::BeingReaped;
            }
        } else if st.phase == PHASE_REAPING {
            if !self.reaper_gone(seg, &st) {
                // A live reaper is on it; the owner word will be cleared shortly.
                return Owner::BeingReaped;
            }
        } else if vitality(seg, index, &st) != Vitality::Dead {
            return Owner::Alive(st.pid);
        }
        if self.reap(seg, index, seen, role, repair) {
            Owner::Gone
        } else {
            // The entry changed under us: judge again.
            Owner::BeingReaped
        }
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

// ---------------------------------------------------------------------------------------------
// Inspection: which endpoints are alive, and removal of stale segments.
// ---------------------------------------------------------------------------------------------

/// The phase of an endpoint entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Attaching: the entry is taken, the endpoint not yet live.
    Registering,
    /// Attached.
    Active,
    /// Found dead; a survivor is repairing what it held.
    Reaping,
}

/// One endpoint of a segment, as [`endpoints`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointInfo {
    /// Its tag (entry index + 1).
    pub tag: u32,
    /// Producer or consumer.
    pub role: Role,
    /// Its pid (in its own PID namespace); while [`Phase::Reaping`], the reaper's pid.
    pub pid: u32,
    /// Its process start time in clock ticks after boot (0 if unknown).
    pub start_time: u64,
    /// Whether it holds an OFD lock on its entry.
    pub locked: bool,
    /// Its phase.
    pub phase: Phase,
    /// Whether its process is alive, as far as this process can tell.
    pub vitality: Vitality,
}

/// The endpoints registered in `seg`'s endpoint table, with their vitality.
///
/// # Errors
///
/// [`Error::Truncated`] if the segment is too short to hold the table.
///
/// # Examples
///
/// ```
/// use shmbus_ring::{liveness::{self, Vitality}, SpscConfig, SpscRing, Role};
/// let ring = SpscRing::in_heap(&SpscConfig::new(1 << 10))?;
/// let _tx = ring.producer()?;
/// let eps = liveness::endpoints(ring.segment())?;
/// assert_eq!(eps.len(), 1);
/// assert_eq!(eps[0].role, Role::Producer);
/// assert_eq!(eps[0].pid, std::process::id());
/// assert_eq!(eps[0].vitality, Vitality::Alive);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn endpoints(seg: &Segment) -> Result<Vec<EndpointInfo>> {
    if (seg.len() as u64) < layout::DATA_OFFSET {
        return Err(Error::Truncated {
            target: seg.target(),
            actual: seg.len() as u64,
            needed: layout::DATA_OFFSET,
        });
    }
    let mut out = Vec::new();
    for index in 0..MAX_ENDPOINTS {
        // The fields belong to the holder the state word names only if the word is the same
        // after reading them: re-read, a few times, while it changes under us.
        let mut found = None;
        for _ in 0..4 {
            // Acquire: as in `Registration::probe`.
            let seen = state_word(seg, index).load(Ordering::Acquire);
            let st = State::decode(seen);
            let Some(role) = st.held() else {
                found = None;
                break;
            };
            let mut info = info(seg, index, &st, role);
            // Acquire: the fields read above are not older than the state we compare.
            if state_word(seg, index).load(Ordering::Acquire) == seen {
                found = Some(info);
                break;
            }
            // Changing under us: held by someone, fate unknown (never "dead" on a guess).
            info.vitality = Vitality::Unknown;
            found = Some(info);
        }
        out.extend(found);
    }
    Ok(out)
}

fn info(seg: &Segment, index: u64, st: &State, role: Role) -> EndpointInfo {
    EndpointInfo {
        tag: index as u32 + 1,
        role,
        pid: st.pid,
        start_time: entry_u64(seg, index, ENDPOINT_START_TIME).load(Ordering::Relaxed),
        locked: entry_u32(seg, index, ENDPOINT_LOCKED).load(Ordering::Relaxed) == 1,
        phase: match st.phase {
            PHASE_REGISTERING => Phase::Registering,
            PHASE_ACTIVE => Phase::Active,
            _ => Phase::Reaping,
        },
        vitality: vitality(seg, index, st),
    }
}

/// What [`inspect`] found about a named segment.
#[derive(Debug, Clone)]
pub struct SegmentStatus {
    /// The shm name.
    pub name: String,
    /// The ring kind's raw header value (1 SPSC, 2 MPMC; anything else is not a ring).
    pub ring_kind: u32,
    /// The pid that created it (header field).
    pub creator_pid: u32,
    /// Whether the creator still runs, judged by pid and start time (same PID namespace).
    pub creator: Vitality,
    /// The registered endpoints.
    pub endpoints: Vec<EndpointInfo>,
}

impl SegmentStatus {
    /// Stale: no endpoint is alive or of unknown fate, and the creator is dead.
    pub fn is_stale(&self) -> bool {
        self.creator == Vitality::Dead
            && self.endpoints.iter().all(|e| e.vitality == Vitality::Dead)
    }

    /// The endpoints that are alive (or whose fate cannot be told).
    pub fn live_endpoints(&self) -> impl Iterator<Item = &EndpointInfo> {
        self.endpoints
            .iter()
            .filter(|e| e.vitality != Vitality::Dead)
    }
}

/// Judges the creator of a segment: dead if no process has its pid, or if the process with
/// that pid started after the segment was created (the pid was reused).
fn creator_vitality(pid: u32, created_unix_ns: u64) -> Vitality {
    match pid_exists(pid) {
        Some(false) => return Vitality::Dead,
        None => return Vitality::Unknown,
        Some(true) => {}
    }
    let (Some(ticks), Some(boot)) = (start_time(pid), boot_time_s()) else {
        return Vitality::Unknown;
    };
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz <= 0 {
        return Vitality::Unknown;
    }
    let started_ns = boot * 1_000_000_000 + ticks * (1_000_000_000 / hz as u64);
    // Start times have tick resolution (10 ms) and btime whole seconds: allow 2 s of slack.
    if started_ns > created_unix_ns.saturating_add(2_000_000_000) {
        Vitality::Dead
    } else {
        Vitality::Alive
    }
}

fn boot_time_s() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// Opens the named shm segment read-only and reports its creator and endpoints.
///
/// # Errors
///
/// Segment errors as for [`Segment::open`]; [`Error::Truncated`], [`Error::BadMagic`] for
/// an object that is not a shmbus segment.
pub fn inspect(name: &str) -> Result<SegmentStatus> {
    inspect_open(name).map(|(_, status)| status)
}

/// [`inspect`], keeping the opened segment (so a removal can make sure the name still refers
/// to the object that was judged).
fn inspect_open(name: &str) -> Result<(Segment, SegmentStatus)> {
    let seg = Segment::open(name, &SegmentOptions::new().read_only(true))?;
    let header = layout::read_header(&seg)?;
    if header.magic != layout::MAGIC {
        return Err(Error::BadMagic {
            target: seg.target(),
            found: header.magic,
            expected: layout::MAGIC,
        });
    }
    let status = SegmentStatus {
        name: name.to_string(),
        ring_kind: header.ring_kind,
        creator_pid: header.creator_pid,
        creator: creator_vitality(header.creator_pid, header.created_unix_ns),
        endpoints: endpoints(&seg)?,
    };
    Ok((seg, status))
}

/// Removes the named segment if it is stale ([`SegmentStatus::is_stale`]). Returns the
/// status and whether the name was removed.
///
/// # Errors
///
/// As [`inspect`]; [`Error::Os`] naming `shm_unlink`.
///
/// # Examples
///
/// ```
/// use shmbus_ring::{liveness, SegmentOptions, SpscConfig, SpscRing};
/// let name = format!("/shmbus-doc-stale-{}", std::process::id());
/// let ring = SpscRing::create_shm(&name, &SpscConfig::new(1 << 10), &SegmentOptions::default())?;
/// // Its creator (this process) is alive: not stale, not removed.
/// let (status, removed) = liveness::remove_if_stale(&name)?;
/// assert!(!status.is_stale() && !removed);
/// # drop(ring);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn remove_if_stale(name: &str) -> Result<(SegmentStatus, bool)> {
    let (seg, status) = inspect_open(name)?;
    // Only the object that was judged: if the name was removed and created again meanwhile,
    // the new segment is left alone.
    if !status.is_stale() || !seg.name_is_ours() {
        return Ok((status, false));
    }
    match nix::sys::mman::shm_unlink(name) {
        Ok(()) => Ok((status, true)),
        Err(nix::errno::Errno::ENOENT) => Ok((status, false)),
        Err(e) => Err(Error::Os {
            op: "shm_unlink",
            target: name.to_string(),
            code: crate::error::OsCode(e),
        }),
    }
}

/// Inspects every shm object in `/dev/shm` whose name starts with `prefix` (without the
/// leading `/`; empty for all). Objects that are not shmbus segments come back as errors.
pub fn scan(prefix: &str) -> Vec<(String, Result<SegmentStatus>)> {
    let Ok(dir) = std::fs::read_dir("/dev/shm") else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .map(|n| format!("/{n}"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let r = inspect(&n);
            (n, r)
        })
        .collect()
}
