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
//!
//! # Files
//!
//! - this file: the state word, the roster and the SPSC owner word — the bits in shared memory;
//! - `process.rs`: process identity (`/proc`, PID namespaces, start times, OFD locks) and the
//!   coarse clock — what the protocol asks of the operating system, behind [`Vitals`] — and the
//!   `ProbeClock` that paces an endpoint's probes by that clock;
//! - `registration.rs`: register, unregister, probe and reap (PROTOCOL §7.1–§7.4), over
//!   [`Memory`] and [`Vitals`], so the loom models run the same code;
//! - `inspect.rs`: [`endpoints`], [`inspect`], [`remove_if_stale`] and [`scan`] (§7.5).

pub(crate) mod inspect;
pub(crate) mod process;
mod registration;

pub use inspect::{
    endpoints, inspect, inspect_sysv, remove_if_stale, remove_sysv_if_stale, scan, EndpointInfo,
    Phase, SegmentStatus,
};
pub(crate) use process::{Os, ProbeClock};
pub(crate) use registration::{Owner, RegisterError, Registration};

use crate::conv::offset;
use crate::endpoint::Role;
use crate::layout::{
    ENDPOINT_LOCKED, ENDPOINT_PIDNS, ENDPOINT_SIZE, ENDPOINT_START_TIME, ENDPOINT_STATE,
    ENDPOINT_TABLE, ROSTER, ROSTER_CONSUMERS, ROSTER_EVER_BIT, ROSTER_PRODUCERS,
};
use crate::sync::{Memory, Ordering};
use std::time::Duration;

/// How often, by default, a waiting endpoint checks whether its peers are still alive (and
/// repairs what dead ones held). Death is noticed within about this much of it becoming
/// detectable (plus the 4 ms resolution of the coarse clock).
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_millis(20);

pub(crate) const PHASE_FREE: u64 = 0;
pub(crate) const PHASE_REGISTERING: u64 = 1;
pub(crate) const PHASE_ACTIVE: u64 = 2;
pub(crate) const PHASE_REAPING: u64 = 3;

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
    pub(crate) fn decode(w: u64) -> State {
        let [_, reaper, gen_lo, gen_hi, p0, p1, p2, p3] = w.to_le_bytes();
        State {
            role: match w & 0xf {
                1 => Some(Role::Producer),
                2 => Some(Role::Consumer),
                _ => None,
            },
            phase: (w >> 4) & 0xf,
            reaper,
            gen: u16::from_le_bytes([gen_lo, gen_hi]),
            pid: u32::from_le_bytes([p0, p1, p2, p3]),
        }
    }

    pub(crate) fn encode(&self) -> u64 {
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

    pub(crate) fn free(gen: u16) -> u64 {
        u64::from(gen) << 16
    }

    /// Whether this is a held entry with a valid role (garbage in a held phase is skipped).
    pub(crate) fn held(&self) -> Option<Role> {
        match self.phase {
            PHASE_REGISTERING | PHASE_ACTIVE | PHASE_REAPING => self.role,
            _ => None,
        }
    }
}

/// The word an SPSC control block's owner field holds for an endpoint (PROTOCOL §4.1): its tag
/// and the low bits of its generation, so a stale owner word is never mistaken for a newer
/// holder. Encoded and decoded here only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OwnerWord {
    pub(crate) tag: u64,
    pub(crate) gen: u16,
}

impl OwnerWord {
    /// The raw `u32`: `tag | gen << 8`.
    pub(crate) fn encode(self) -> u32 {
        let [tag, ..] = self.tag.to_le_bytes();
        u32::from(tag) | u32::from(self.gen) << 8
    }

    /// The owner a raw word names (0: none).
    pub(crate) fn decode(word: u32) -> OwnerWord {
        let [tag, g0, g1, _] = word.to_le_bytes();
        OwnerWord {
            tag: u64::from(tag),
            gen: u16::from_le_bytes([g0, g1]),
        }
    }
}

/// The offset of entry `index`'s field `field` (an `ENDPOINT_*` constant).
pub(crate) fn entry_field(index: u64, field: u64) -> usize {
    offset(ENDPOINT_TABLE + index * ENDPOINT_SIZE + field)
}

/// The offset of entry `index`'s state word.
pub(crate) fn state_off(index: u64) -> usize {
    entry_field(index, ENDPOINT_STATE)
}

/// The offsets of an entry's start time, namespace and lock flag fields.
pub(crate) fn fields(index: u64) -> [usize; 3] {
    [
        entry_field(index, ENDPOINT_START_TIME),
        entry_field(index, ENDPOINT_PIDNS),
        entry_field(index, ENDPOINT_LOCKED),
    ]
}

/// The offset of `role`'s roster bitmap.
#[inline]
pub(crate) fn roster_off(role: Role) -> usize {
    offset(
        ROSTER
            + match role {
                Role::Producer => ROSTER_PRODUCERS,
                Role::Consumer => ROSTER_CONSUMERS,
            },
    )
}

/// The "ever attached" bit of a roster bitmap.
pub(crate) const EVER: u64 = 1 << ROSTER_EVER_BIT;

/// Whether `role`'s side has gone away: some endpoint of that role attached once, and none is
/// attached now. A side that never had an endpoint is still expected, not gone. The hot paths'
/// check (every push; every empty poll): one load of the read-mostly roster line.
///
/// # Safety
///
/// - `mem` holds the roster (every segment of at least `DATA_OFFSET` bytes does).
#[inline]
pub(crate) unsafe fn side_gone<M: Memory>(mem: &M, role: Role) -> bool {
    // L16: Acquire; pairs with the Release `fetch_and` that cleared the last bit (L7 in
    // `Registration::unregister`, L13 in `reap`), so everything that endpoint
    // published (records, releases, repairs) is visible to a caller that concludes "gone" and
    // re-polls the ring.
    // SAFETY: the roster words are 8-aligned inside the first page, which `mem` holds.
    unsafe { mem.load(roster_off(role), Ordering::Acquire) == EVER }
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

/// The outcome of [`Vitals::take_lock`].
#[derive(Debug)]
pub(crate) enum LockTry {
    /// The lock is ours: the open file description holding it (`None` in the loom models,
    /// whose locks live in the model world).
    Taken(Option<std::fs::File>),
    /// Another open file description holds it.
    Busy,
    /// This segment has no file, or its locks cannot be taken here (no `/proc`, no lock
    /// resources): the endpoint goes without.
    Unavailable,
}

/// What the liveness protocol asks of the operating system: who we are, and whether another
/// endpoint's process still lives. [`Os`] asks Linux; the loom models answer from a model
/// process table (and a model lock table), so that the decisions built on these answers are
/// model-checked.
pub(crate) trait Vitals {
    /// This process's pid, as state words record it.
    fn pid(&self) -> u32;
    /// The inode of this process's PID namespace; 0 if unknown.
    fn pidns(&self) -> u64;
    /// The start time of process `pid` in this namespace; `None` if there is none, or if it
    /// cannot be told.
    fn start_time(&self, pid: u32) -> Option<u64>;
    /// Whether a process `pid` exists in this namespace: `Some(false)` when it surely does not.
    fn pid_exists(&self, pid: u32) -> Option<bool>;
    /// Tries to take the OFD lock on entry `index`'s byte (without waiting).
    fn take_lock(&self, index: u64) -> LockTry;
    /// Releases a lock [`take_lock`](Vitals::take_lock) took (the file closes; the model's
    /// lock word is cleared).
    fn release_lock(&self, index: u64, file: Option<std::fs::File>);
    /// Whether another open file description holds the lock on entry `index`; `None` when this
    /// cannot be probed.
    fn lock_held(&self, index: u64) -> Option<bool>;
    /// How many entries of the table are in use: [`MAX_ENDPOINTS`] (the loom models use
    /// fewer, to keep the state space small; the protocol does not depend on the number).
    fn table_len(&self) -> u64 {
        crate::layout::MAX_ENDPOINTS
    }
    /// Lets time pass before a registrant looks at the table again (a lock found busy may be
    /// one a detaching endpoint is about to release).
    fn pause(&self);
    /// A protocol step named `name` (a crash point). `false` when the endpoint "dies" here: only
    /// the loom models say so, to stop an endpoint between two steps.
    fn step(&self, name: &'static str) -> bool;
}

/// The reaper byte of a `registering` state word whose registrant took its entry's lock
/// before claiming the entry (L0, or L17 when adopting a dead entry): such an entry is judged
/// by that lock alone.
pub(crate) const REGISTERING_LOCKED: u8 = 1;

/// Judges the holder of entry `index`, whose state word reads `st` (PROTOCOL §7.2).
///
/// # Safety
///
/// - `mem` holds the endpoint table.
pub(crate) unsafe fn vitality<M: Memory, V: Vitals>(
    mem: &M,
    v: &V,
    index: u64,
    st: &State,
) -> Vitality {
    if st.phase == PHASE_REGISTERING {
        // The entry's fields may still be a previous holder's: a registrant is judged by the
        // lock it took before claiming the entry (L0), or not at all.
        if st.reaper != REGISTERING_LOCKED {
            return Vitality::Unknown;
        }
        return match v.lock_held(index) {
            Some(true) => Vitality::Alive,
            Some(false) => Vitality::Dead,
            None => Vitality::Unknown,
        };
    }
    let [start_off, ns_off, locked_off] = fields(index);
    // Relaxed loads of the fields (§7.2): they were published by L4 (the Release CAS to
    // `active`), which the caller's Acquire load of the state word observed (a later `leaving`
    // word continues its release sequence).
    // SAFETY: the fields are aligned words of the table, which `mem` holds.
    let (locked, recorded_ns, recorded) = unsafe {
        (
            mem.load_u32(locked_off, Ordering::Relaxed) == 1,
            mem.load(ns_off, Ordering::Relaxed),
            mem.load(start_off, Ordering::Relaxed),
        )
    };
    let mut lock = None;
    if locked {
        lock = v.lock_held(index);
        if lock == Some(false) {
            return Vitality::Dead;
        }
    }
    // An active or leaving entry's fields are its holder's own (written at L2, before the L4
    // that published them).
    let ns = v.pidns();
    if ns != 0 && recorded_ns == ns {
        if v.pid_exists(st.pid) == Some(false) {
            return Vitality::Dead;
        }
        return match v.start_time(st.pid) {
            // The same process, or one we cannot tell apart (no start time was recorded).
            Some(t) if t == recorded || recorded == 0 => Vitality::Alive,
            // The pid now belongs to another process: ours is gone.
            Some(_) => Vitality::Dead,
            None => match v.pid_exists(st.pid) {
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
