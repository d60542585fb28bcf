//! The endpoint layer, written once for every ring kind: registration, probing for dead peers,
//! disconnection, the wait loops, and the blocking `push`/`pop` families, over the small core
//! traits [`WriteCore`] and [`ReadCore`] that each kind's algorithm implements.
//!
//! # One vocabulary for every ring
//!
//! | idea | producer | consumer |
//! |---|---|---|
//! | copy one message | `try_push`, `push`, `push_timeout`, `push_deadline` | `try_pop`, `try_pop_vec`, `pop`, `pop_timeout`, `pop_deadline` |
//! | in place | [`Producer::reserve`] → [`WriteGuard`]: `commit` / `commit_len`; dropped: abandoned | [`Consumer::read`] → [`ReadGuard`]; dropped: consumed |
//! | in place, with a callback | — | `try_pop_with`, `pop_with_deadline` |
//! | many at once | `try_push_batch` (as many as fit) | `try_pop_batch` (up to `max`) |
//!
//! Both read guards consume the message when dropped (as an MPMC slot must be freed for the
//! ring to go on); a consumer that wants to look without consuming copies the bytes out.

use crate::checksum::{
    checksum_of, next_of, pop_checked, pop_vec_checked, push_batch_checked, push_checked,
    reserve_checked, seal,
};
use crate::error::{Corruption, PopError, PushError, Result};
use crate::liveness::{side_gone, state_off, Os, ProbeClock, Registration, State};
use crate::ring::{Kind, Ring, Shared};
use crate::sync::{Memory, Ordering, RawMem};
use crate::wait::{wait_for, Direction, Pace, WaitStrategy};
use std::cell::Cell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

mod attach;
mod fast;
mod reservation;
mod slow;
pub use fast::FastPop;
pub use reservation::Reservation;
pub use slow::Audit;
pub(crate) use slow::{on_empty, on_full};

/// Which side of a ring an endpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Writes messages into the ring.
    Producer,
    /// Reads messages out of the ring.
    Consumer,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Producer => "producer",
            Role::Consumer => "consumer",
        })
    }
}

/// A producer's half of a ring algorithm, as the endpoint layer drives it. Positions are the
/// core's own tokens (`at`): an SPSC record's start, an MPMC slot's position.
pub trait WriteCore {
    /// Copies `payload` in as one message and publishes it.
    fn try_push(&mut self, payload: &[u8]) -> Result<(), PushError>;
    /// Whether [`try_push_fast`](Self::try_push_fast) can ever push (so whether the endpoint
    /// makes its checks for it).
    const FAST: bool = false;
    /// [`try_push`](Self::try_push) when it takes the common path, with no error to report:
    /// whether it pushed. `false` changes nothing (D96).
    #[inline(always)]
    fn try_push_fast(&mut self, _payload: &[u8]) -> bool {
        false
    }
    /// [`reserve`](Self::reserve) when it takes the common path: the position (D96). `None`
    /// changes nothing.
    #[inline(always)]
    fn try_reserve_fast(&mut self, _len: usize) -> Option<u64> {
        None
    }
    /// Pushes as many of `records` as fit, in order; how many.
    fn try_push_batch<R: AsRef<[u8]>>(&mut self, records: &[R]) -> Result<usize, PushError>;
    /// Makes room for a message of `len` bytes, written in place; returns its position.
    fn reserve(&mut self, len: usize) -> Result<u64, PushError>;
    /// Publishes the first `len` bytes of the message reserved at `at`.
    fn commit(&mut self, at: u64, len: usize);
    /// Gives up the message reserved at `at` (nothing becomes visible).
    fn abandon(&mut self, at: u64);
    /// The next reservation is a bound, not a size (its commit will be shorter): place it
    /// packed, as a small message (an aligned SPSC ring puts no skip record before it).
    fn pack_next(&mut self) {}
    /// The largest message.
    fn max_message(&self) -> usize;
    /// Whether a push of the largest message would find the ring full now (a snapshot).
    fn is_full(&mut self) -> bool;
    /// The next position this producer writes (diagnostics).
    fn position(&self) -> u64;
    /// Checks, after a push found the ring full, whether the shared state that keeps it full
    /// contradicts itself (PROTOCOL §4.4, §5.5). Slow path only: the endpoint layer calls it
    /// when a probe ran (§6 "Audits").
    fn audit(&mut self) -> Audit;
}

/// A consumer's half of a ring algorithm, as the endpoint layer drives it.
pub trait ReadCore {
    /// Pops one message into `buf`.
    fn try_pop(&mut self, buf: &mut [u8]) -> Result<usize, PopError>;
    /// Whether [`try_pop_fast`](Self::try_pop_fast) can ever pop.
    const FAST: bool = false;
    /// [`try_pop`](Self::try_pop) when it takes the common path (D96). [`FastPop::Empty`]
    /// only on a core whose [`in_flight`](Self::in_flight) is always `false`.
    #[inline(always)]
    fn try_pop_fast(&mut self, _buf: &mut [u8]) -> FastPop {
        FastPop::Other
    }
    /// Pops one message into a cleared `buf`.
    fn try_pop_vec(&mut self, buf: &mut Vec<u8>) -> Result<usize, PopError>;
    /// Takes the next committed message for reading in place: its position and length.
    /// `Ok(None)` when there is none.
    fn next(&mut self) -> Result<Option<(u64, usize)>, PopError>;
    /// Consumes the message taken at `at` of `len` bytes; with [`Publish::Later`] the
    /// consumer's position is published by the next [`ReadCore::flush`] (or consume).
    fn consume(&mut self, at: u64, len: usize, publish: Publish);
    /// Publishes the consumer's position.
    fn flush(&mut self);
    /// The message taken at `at` was handed to a callback that panicked. SPSC leaves it in the
    /// ring (the next pop, or a successor, sees it again); MPMC frees the slot, because a
    /// claimed position cannot be handed back in order (that message is dropped).
    fn unwind(&mut self, at: u64, len: usize);
    /// The smallest buffer [`ReadCore::try_pop`] accepts: 0 where a message can be left in the
    /// ring for a larger buffer (SPSC), the slot size where taking one claims it (MPMC).
    fn pop_buffer_min(&self) -> usize;
    /// Whether a committed message is waiting (a drained ring reports `Disconnected` only
    /// when this is false).
    fn has_committed(&mut self) -> bool;
    /// Whether the last read that found nothing must wait before answering "empty" (MPMC
    /// M17): a message after the head position is committed.
    fn in_flight(&self) -> bool {
        false
    }
    /// The next position this consumer reads (diagnostics).
    fn position(&self) -> u64;
    /// Checks, after a pop found the ring empty, whether the shared state that keeps it empty
    /// contradicts itself (PROTOCOL §4.4, §5.5). Slow path only, as [`WriteCore::audit`].
    fn audit(&mut self) -> Audit;
}

/// A producer's core over mapped memory: its reservations can be written in place.
pub trait WriteInPlace: WriteCore + Send {
    /// The address of the payload of the message reserved at `at`.
    fn payload(&self, at: u64) -> *mut u8;
}

/// A consumer's core over mapped memory: its messages can be read in place.
pub trait ReadInPlace: ReadCore + Send {
    /// The address of the payload of the message taken at `at`.
    fn payload(&self, at: u64) -> *const u8;
}

/// When a consumed message's space is handed back to producers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    /// At once.
    Now,
    /// At the next [`ReadCore::flush`]: a batch publishes once.
    Later,
}

/// What every endpoint holds besides its core.
pub(crate) struct Attachment<K: Kind> {
    /// The ring's memory, for the hot path's roster check (no indirection through the ring).
    pub(crate) mem: RawMem,
    pub(crate) ring: Ring<K>,
    wait: WaitStrategy,
    reg: Registration,
    pub(crate) clock: ProbeClock,
    /// The suspect observation of the last probe's audit, if it found one (see [`Audit`]).
    suspect: Option<Corruption>,
    /// Bytes of checksum trailer per message (`Shared::trailer`): 0, or [`CHECKSUM_LEN`] on a
    /// checksum ring, whose every push writes and every pop verifies it.
    pub(crate) trailer: usize,
    /// Whether a non-blocking MPMC pop waits out a message in flight (`Consumer::set_settle`).
    pub(crate) settles: bool,
    /// An endpoint is `Send` but not `Sync` (as before the reshaping): one thread drives it.
    _not_sync: PhantomData<Cell<()>>,
}

impl<K: Kind> Attachment<K> {
    /// This endpoint's entry in the endpoint table.
    pub(crate) fn index(&self) -> u64 {
        self.reg.tag() - 1
    }

    /// `Err(Disconnected)` if every endpoint of `role` that attached is gone.
    #[inline]
    fn gone(&self, role: Role) -> bool {
        // SAFETY: `mem` covers the whole validated segment, which holds the roster.
        unsafe { side_gone(&self.mem, role) }
    }

    /// What a push reports once every consumer is gone: `Disconnected`, probing first when
    /// the interval has passed, so that an entry a consumer left while dying mid-detach (its
    /// roster bit already cleared) is still reaped (PROTOCOL §7.2).
    #[cold]
    #[inline(never)]
    fn on_gone(&mut self) -> PushError {
        self.maybe_probe(Pace::Spinning);
        PushError::Disconnected
    }

    /// Probes now if the interval has passed; whether it did.
    #[inline]
    fn maybe_probe(&mut self, pace: Pace) -> bool {
        if self.clock.due(pace) {
            self.ring.inner.probe(&self.reg, self.clock.take_stalls());
            true
        } else {
            false
        }
    }

    /// Probes if the interval has passed and, if it did, runs `audit` (the core's check of a
    /// full or empty ring) and judges it: a [`Audit::Corrupt`] at once, a [`Audit::Suspect`]
    /// when the previous probe's audit made the very same observation (nothing moved in a
    /// whole probe interval, so no stale read explains it). Not latched: every probe audits
    /// again, so an endpoint whose ring stays corrupt reports it again at each probe (a
    /// blocked call returns at the first), and one whose ring moves on goes on.
    #[inline]
    fn probe_and_audit(&mut self, pace: Pace, audit: impl FnOnce() -> Audit) -> Option<Corruption> {
        if !self.maybe_probe(pace) {
            return None;
        }
        let audit = match audit() {
            Audit::Claimed { tag, role, found } => {
                if self.holds(tag, role) {
                    Audit::Fine
                } else {
                    Audit::Suspect(found)
                }
            }
            other => other,
        };
        match audit {
            Audit::Claimed { .. } | Audit::Fine => {
                self.suspect = None;
                None
            }
            Audit::Corrupt(c) => Some(c),
            Audit::Suspect(c) => {
                if self.suspect == Some(c) {
                    Some(c)
                } else {
                    self.suspect = Some(c);
                    None
                }
            }
        }
    }

    /// Whether entry `tag − 1` of the endpoint table is held by an endpoint of `role`.
    fn holds(&self, tag: u64, role: Role) -> bool {
        if !(1..=crate::layout::MAX_ENDPOINTS).contains(&tag) {
            return false;
        }
        // L10: Acquire, as the probe's load of a state word (pairs with the holder's L4).
        // SAFETY: `mem` covers the whole validated segment, which holds the endpoint table;
        // `tag − 1` is a valid entry index (checked above).
        let word = unsafe { self.mem.load(state_off(tag - 1), Ordering::Acquire) };
        State::decode(word).held() == Some(role)
    }

    /// The `Debug` text of an endpoint named `name` at `position`.
    fn describe(
        &self,
        f: &mut std::fmt::Formatter<'_>,
        name: &str,
        position: u64,
    ) -> std::fmt::Result {
        f.debug_struct(name)
            .field("kind", &K::NAME)
            .field("target", &self.ring.inner.seg.target())
            .field("endpoint", &self.reg.tag())
            .field("position", &position)
            .finish_non_exhaustive()
    }

    fn wake(&self, dir: Direction) -> Option<(crate::wait::Wake, Direction)> {
        self.ring.inner.wake.map(|w| (w, dir))
    }

    fn detach(&mut self) {
        let os = Os::new(&self.ring.inner.seg);
        if !self.reg.is_own(&os) {
            // A `fork`ed child dropping an inherited endpoint: the parent's stays attached.
            return;
        }
        K::detach(&self.ring.inner, &self.reg);
        Shared::unregister(&self.ring.inner, &mut self.reg, self.clock.take_stalls());
    }
}

/// Registers an endpoint of `role` on `ring` and builds its core; on a corrupt ring, detaches
/// again.
fn attach<K: Kind, C>(
    ring: Ring<K>,
    role: Role,
    core: impl FnOnce(&Ring<K>, &Registration) -> Result<C, crate::error::Corruption>,
) -> Result<(C, Attachment<K>)> {
    let reg = K::register(&ring.inner, role)?;
    let trailer = ring.inner.trailer;
    let mut att = Attachment {
        mem: ring.inner.mem,
        ring,
        wait: WaitStrategy::default(),
        reg,
        clock: ProbeClock::new(),
        suspect: None,
        trailer,
        settles: true,
        _not_sync: PhantomData,
    };
    match core(&att.ring, &att.reg) {
        Ok(c) => Ok((c, att)),
        Err(c) => {
            att.detach();
            Err(att.ring.inner.corrupt(c))
        }
    }
}

/// The writing end of a ring. [`Producer`] alone is the SPSC producer (one per ring);
/// [`MpmcProducer`](crate::MpmcProducer) is `Producer<Mpmc>` (any number, in any processes).
///
/// Every endpoint is registered in the segment's endpoint table from attach to drop; while it
/// waits it probes its peers, repairs what dead ones held, and reports
/// [`PushError::Disconnected`] once every consumer that attached is gone.
pub struct Producer<K: Kind = crate::Spsc> {
    pub(crate) core: K::WriteCore,
    pub(crate) att: Attachment<K>,
    /// A reservation set aside ([`WriteGuard::set_aside`]), until resumed or abandoned.
    aside: Option<reservation::Aside>,
}

impl<K: Kind> std::fmt::Debug for Producer<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.att.describe(f, "Producer", self.core.position())
    }
}

impl<K: Kind> Producer<K> {
    pub(crate) fn attach(ring: Ring<K>) -> Result<Self> {
        let (core, att) = attach(ring, Role::Producer, |ring, reg| {
            K::writer(&ring.inner, reg)
        })?;
        Ok(Producer {
            core,
            att,
            aside: None,
        })
    }

    /// `Err(Disconnected)` if every consumer that attached is gone (one load of the roster).
    #[inline]
    fn check_consumers(&mut self) -> Result<(), PushError> {
        if K::PRODUCER_NEEDS_CONSUMERS && self.att.gone(Role::Consumer) {
            Err(self.att.on_gone())
        } else {
            Ok(())
        }
    }

    /// Runs one non-blocking operation: the disconnection check, then `op`; a full ring is
    /// judged by `on_full` (a full ring is rare on a non-blocking push: the clock is read each
    /// time).
    // Always (D95): as a call, `try_push` and `reserve` paid its entry and exit (11 instructions
    // a push; `--bench instructions`).
    #[inline(always)]
    pub(crate) fn once<R>(
        &mut self,
        op: impl FnOnce(&mut K::WriteCore) -> Result<R, PushError>,
    ) -> Result<R, PushError> {
        self.abandon_aside();
        self.check_consumers()?;
        match op(&mut self.core) {
            Err(PushError::Full) => Err(on_full(&mut self.core, &mut self.att, Pace::Waited)),
            other => other,
        }
    }

    /// Copies `payload` into the ring as one message and publishes it.
    ///
    /// # Errors
    ///
    /// [`PushError::Full`] when there is no room now (nothing was written);
    /// [`PushError::TooLarge`] above [`max_message`](Self::max_message);
    /// [`PushError::Disconnected`] when every consumer is gone; [`PushError::Corrupt`] if the
    /// ring's shared state is inconsistent.
    #[inline]
    pub fn try_push(&mut self, payload: &[u8]) -> Result<(), PushError> {
        if !<K::WriteCore as WriteCore>::FAST {
            return self.try_push_at(payload);
        }
        if self.push_fast(payload) {
            return Ok(());
        }
        // The rare case with a fast step: a call, as in `reserve`.
        self.try_push_general(payload)
    }

    /// Pushes as many of `records` as fit, in order, and returns how many were pushed. An SPSC
    /// ring publishes them all with a single Release store.
    ///
    /// # Errors
    ///
    /// [`PushError::TooLarge`] (before anything is written) if any record exceeds the limit;
    /// [`PushError::Full`] if not even the first fits; [`PushError::Disconnected`];
    /// [`PushError::Corrupt`] if the first push meets corruption (after `n > 0` pushes, an
    /// error ends the batch with `Ok(n)` and the next call reports it).
    ///
    /// ```
    /// # use shmbus_ring::{SpscConfig, SpscRing};
    /// let ring = SpscRing::in_heap(&SpscConfig::new(1 << 10))?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// assert_eq!(tx.try_push_batch(&[&b"a"[..], b"bc", b"def"])?, 3);
    /// let mut got = Vec::new();
    /// rx.try_pop_batch(10, |r| got.push(r.to_vec()))?;
    /// assert_eq!(got, vec![b"a".to_vec(), b"bc".to_vec(), b"def".to_vec()]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_push_batch<R: AsRef<[u8]>>(&mut self, records: &[R]) -> Result<usize, PushError> {
        let checked = self.att.trailer != 0;
        self.once(|core| {
            if checked {
                push_batch_checked(core, records)
            } else {
                core.try_push_batch(records)
            }
        })
    }

    /// Reserves a message of `len` bytes in the ring and returns it for writing in place.
    /// [`WriteGuard::commit`] publishes it; dropping the guard abandons it (nothing becomes
    /// visible; an MPMC ring's consumers skip the position).
    ///
    /// # Errors
    ///
    /// As [`try_push`](Self::try_push).
    ///
    /// ```
    /// # use shmbus_ring::{SpscConfig, SpscRing};
    /// let ring = SpscRing::in_heap(&SpscConfig::new(1 << 10))?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// let mut w = tx.reserve(4)?;
    /// w.copy_from_slice(&7u32.to_le_bytes());
    /// w.commit();
    /// let msg = rx.read()?.expect("committed");
    /// assert_eq!(&*msg, &7u32.to_le_bytes());
    /// drop(msg); // consumed
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn reserve(&mut self, len: usize) -> Result<WriteGuard<'_, K>, PushError> {
        let at = match self.reserve_fast(len) {
            Some(at) => at,
            // With a fast step, the general path is the rare one: a call, so that the common
            // one inlines into the caller (D96).
            None if <K::WriteCore as WriteCore>::FAST => self.reserve_general(len)?,
            None => self.reserve_at(len)?,
        };
        Ok(WriteGuard {
            producer: self,
            at,
            len,
            done: false,
        })
    }

    /// Reserves room for a message of at most `len` bytes whose size is not known yet (an
    /// encoder writing in one pass), to be published with [`WriteGuard::commit_len`]. As
    /// [`reserve`](Self::reserve), except that an aligned SPSC ring places it packed, as it
    /// would the short message it usually turns out to be, rather than on a cache line.
    ///
    /// # Errors
    ///
    /// As [`try_push`](Self::try_push).
    ///
    /// ```
    /// # use shmbus_ring::{SpscConfig, SpscRing};
    /// let ring = SpscRing::in_heap(&SpscConfig::new(1 << 12))?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// let mut w = tx.reserve_up_to(1024)?;
    /// w[..2].copy_from_slice(b"hi");
    /// w.commit_len(2);
    /// assert_eq!(ring.used_bytes(), Some(16)); // one packed 16-byte record, no skip
    /// assert_eq!(&*rx.read()?.expect("committed"), b"hi");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn reserve_up_to(&mut self, len: usize) -> Result<WriteGuard<'_, K>, PushError> {
        self.core.pack_next();
        self.reserve(len)
    }

    /// Reserves a message of `len` bytes, waiting until `deadline` (`None`: for ever) while
    /// the ring has no room for it; then as [`reserve`](Self::reserve).
    ///
    /// # Errors
    ///
    /// [`PushError::Timeout`], and as [`try_push`](Self::try_push).
    pub fn reserve_deadline(
        &mut self,
        len: usize,
        deadline: Option<Instant>,
    ) -> Result<WriteGuard<'_, K>, PushError> {
        let checked = self.att.trailer != 0;
        let at = self.wait_room(deadline, |core| {
            if checked {
                reserve_checked(core, len)
            } else {
                core.reserve(len)
            }
        })?;
        Ok(WriteGuard {
            producer: self,
            at,
            len,
            done: false,
        })
    }

    /// Pushes `payload`, waiting while the ring is full.
    ///
    /// # Errors
    ///
    /// [`PushError::TooLarge`] at once; [`PushError::Disconnected`]; [`PushError::Corrupt`].
    /// A consumer that lives but never frees space makes this wait for ever: use
    /// [`push_timeout`](Self::push_timeout) where that matters.
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
        let checked = self.att.trailer != 0;
        self.wait_room(deadline, |core| {
            if checked {
                push_checked(core, payload)
            } else {
                core.try_push(payload)
            }
        })
    }

    /// Runs `op` until it does not report `Full`, waiting as the wait strategy says (and
    /// checking for gone consumers, repairing dead endpoints' claims) until `deadline`: the
    /// loop of every blocking push.
    fn wait_room<R>(
        &mut self,
        deadline: Option<Instant>,
        mut op: impl FnMut(&mut K::WriteCore) -> Result<R, PushError>,
    ) -> Result<R, PushError> {
        self.abandon_aside();
        let Producer { core, att, .. } = self;
        let (strategy, nap, mem, wake) = (
            att.wait,
            att.clock.interval(),
            att.mem,
            att.wake(Direction::Space),
        );
        wait_for(strategy, deadline, &mem, wake, nap, |pace| {
            if K::PRODUCER_NEEDS_CONSUMERS && att.gone(Role::Consumer) {
                return Some(Err(PushError::Disconnected));
            }
            match op(core) {
                Err(PushError::Full) => match on_full(core, att, pace) {
                    PushError::Full => None,
                    e => Some(Err(e)),
                },
                other => Some(other),
            }
        })
        .unwrap_or(Err(PushError::Timeout))
    }

    /// The largest message the ring accepts, in bytes (on a checksum ring, the record limit
    /// less the 4-byte trailer).
    pub fn max_message(&self) -> usize {
        self.core.max_message() - self.att.trailer
    }

    /// Whether this ring is a checksum ring: every push writes a CRC32C trailer.
    pub(crate) fn checksum(&self) -> bool {
        self.att.trailer != 0
    }

    /// Sets how the blocking calls ([`push`](Self::push) and friends) wait while the ring is
    /// full. Default: [`WaitStrategy::Block`] after 50 µs of spinning.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.att.wait = strategy;
    }

    /// Sets how often, while the ring is full, this endpoint checks whether the other
    /// endpoints are still alive, reaps dead ones and repairs what they held, and so notices a
    /// consumer that died (default
    /// [`DEFAULT_PROBE_INTERVAL`](crate::liveness::DEFAULT_PROBE_INTERVAL), 20 ms). A blocked
    /// call also wakes this often to check.
    pub fn set_probe_interval(&mut self, interval: Duration) {
        self.att.clock.set_interval(interval);
    }

    /// The ring this producer writes to.
    pub fn ring(&self) -> &Ring<K> {
        &self.att.ring
    }
}

impl<K: Kind> Drop for Producer<K> {
    fn drop(&mut self) {
        self.abandon_aside();
        self.att.detach();
    }
}

/// A message reserved in the ring by [`Producer::reserve`], written in place. Dereferences to
/// its payload bytes (`&mut [u8]`, in shared memory: their prior content is unspecified).
/// [`commit`](Self::commit) publishes it; dropped uncommitted, it is abandoned.
pub struct WriteGuard<'a, K: Kind = crate::Spsc> {
    producer: &'a mut Producer<K>,
    at: u64,
    len: usize,
    done: bool,
}

impl<K: Kind> WriteGuard<'_, K> {
    /// Publishes the whole reserved message.
    #[inline]
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
    // Always (D95): a call in the typed channel's send and in `reserve`/`commit` (55
    // instructions a message with its entry and exit; `--bench instructions`).
    #[inline(always)]
    pub fn commit_len(mut self, len: usize) {
        assert!(
            len <= self.len,
            "commit_len({len}) exceeds the {} bytes reserved",
            self.len
        );
        if self.producer.att.trailer == 0 {
            self.producer.core.commit(self.at, len);
        } else {
            // The CRC32C of the bytes as written (this producer's reservation: no honest peer
            // touches them before the commit).
            let crc = checksum_of(&self[..len]);
            // SAFETY: the reservation holds `self.len + CHECKSUM_LEN` bytes (`reserve_checked`),
            // and `len <= self.len`.
            unsafe { seal(&mut self.producer.core, self.at, len, crc) };
        }
        self.done = true;
    }
}

impl<K: Kind> Deref for WriteGuard<'_, K> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: `reserve` made room for `len` payload bytes at this address, inside the
        // ring's memory; no honest endpoint reads or writes them until `commit` publishes (or
        // `abandon` returns) them, and the guard borrows the producer.
        unsafe { std::slice::from_raw_parts(self.producer.core.payload(self.at), self.len) }
    }
}

impl<K: Kind> DerefMut for WriteGuard<'_, K> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` borrows the reservation exclusively.
        unsafe { std::slice::from_raw_parts_mut(self.producer.core.payload(self.at), self.len) }
    }
}

impl<K: Kind> Drop for WriteGuard<'_, K> {
    #[inline]
    fn drop(&mut self) {
        if !self.done {
            self.producer.core.abandon(self.at);
        }
    }
}

/// The reading end of a ring. [`Consumer`] alone is the SPSC consumer (one per ring);
/// [`MpmcConsumer`](crate::MpmcConsumer) is `Consumer<Mpmc>` (any number, in any processes,
/// each message to one of them).
///
/// Once every producer that attached is gone and everything committed has been read, the
/// calls report [`PopError::Disconnected`].
///
/// # Zero-copy views
///
/// [`read`](Self::read), [`try_pop_with`](Self::try_pop_with) and
/// [`try_pop_batch`](Self::try_pop_batch) hand out slices of the shared segment itself. The
/// protocol gives the bytes to one side at a time, so between honest peers they do not change
/// under you; but a process that breaks the protocol can write them at any moment. Where the
/// peer is not trusted, use the copying calls ([`try_pop`](Self::try_pop),
/// [`try_pop_vec`](Self::try_pop_vec)) and parse the private copy: never decode in place what
/// a hostile process can rewrite mid-decode.
///
/// # Checksum rings
///
/// On a ring created with [`SpscConfig::checksum`](crate::SpscConfig::checksum) (or
/// [`MpmcConfig::checksum`](crate::MpmcConfig::checksum); an opener adopts the creator's
/// setting), every pop verifies the message's CRC32C: the copying calls on their private copy,
/// the zero-copy calls on the view when they hand it out (the view can still change after the
/// check: only a copy keeps the guarantee). A message whose bytes do not match is
/// [`PopError::Checksum`]; it is consumed, and the next pop returns the next message.
///
/// ```
/// use shmbus_ring::{PopError, SpscConfig, SpscRing};
/// let ring = SpscRing::in_heap(&SpscConfig::new(4096).checksum(true))?;
/// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
/// tx.try_push(b"intact")?;
/// let mut buf = [0u8; 64];
/// assert_eq!(rx.try_pop(&mut buf), Ok(6));
/// assert_eq!(rx.try_pop(&mut buf), Err(PopError::Empty));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Consumer<K: Kind = crate::Spsc> {
    pub(crate) core: K::ReadCore,
    pub(crate) att: Attachment<K>,
    /// A checksum mismatch found after a `try_pop_batch` had handed out messages: that batch
    /// returned `Ok(n)`, and the next pop of a checksum ring reports it.
    pending: Option<PopError>,
}

impl<K: Kind> std::fmt::Debug for Consumer<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.att.describe(f, "Consumer", self.core.position())
    }
}

impl<K: Kind> Consumer<K> {
    pub(crate) fn attach(ring: Ring<K>) -> Result<Self> {
        Self::attach_with(ring, |ring, reg| K::reader(&ring.inner, reg))
    }

    /// What a pop that found nothing reports: `Corrupt` if the audit after a probe finds the
    /// ring contradicting itself, `Disconnected` if every producer is gone and nothing
    /// committed is left (probing, and repairing dead endpoints' claims, first when the
    /// interval has passed), else `Empty`.
    #[cold]
    pub(crate) fn on_empty(&mut self, pace: Pace) -> PopError {
        on_empty(&mut self.core, &mut self.att, pace)
    }

    /// Runs one non-blocking operation; an empty ring is judged by `on_empty`, after waiting
    /// out a message that is being written at the head (`settle`, MPMC only: for SPSC
    /// `in_flight` is `false`). A loop here, not a cold helper: moving the retries into a
    /// cold function cost the raw SPSC ring's 8 B streaming about 30% in the harness (12.2-13
    /// vs 17.4-18.1 M msgs/s, slow phase), while `next_settled`'s cold helper helped the typed
    /// channel's: code layout, measured both ways.
    #[inline]
    fn once<R>(
        &mut self,
        mut op: impl FnMut(&mut K::ReadCore) -> Result<R, PopError>,
    ) -> Result<R, PopError> {
        let mut since = None;
        loop {
            match op(&mut self.core) {
                Err(PopError::Empty) if self.core.in_flight() && self.settle(&mut since)? => {}
                Err(PopError::Empty) => return Err(self.on_empty(Pace::Spinning)),
                other => return other,
            }
        }
    }

    /// The next message for reading in place, settling as [`once`](Self::once) does.
    // Always (D95): as a call, with `hand_over` and `Taken` out of line too, it made an
    // in-place read 292 instructions a message against `try_pop`'s 227 (`--bench
    // instructions`), and `try_pop_with` 1.2x slower than `try_pop` in criterion; inlined,
    // with `commit_len`, 203 and 0.85x (152 since D96's fast reservation).
    #[inline(always)]
    fn next_settled(&mut self) -> Result<Option<(u64, usize)>, PopError> {
        match next_of(&mut self.core, self.att.trailer)? {
            None if self.core.in_flight() => self.next_settling(),
            other => Ok(other),
        }
    }

    /// Pops the next message into `buf`, returning its length.
    ///
    /// # Errors
    ///
    /// [`PopError::Empty`]; [`PopError::BufferTooSmall`] (the message stays in the ring; an
    /// MPMC consumer's `buf` must hold a whole slot, [`max_message`](Self::max_message)
    /// bytes); [`PopError::Disconnected`] once every producer is gone and the ring is drained;
    /// [`PopError::Corrupt`] if the ring's shared state is inconsistent;
    /// [`PopError::Checksum`] on a checksum ring for a message whose bytes do not match its
    /// CRC32C (consumed: the next call pops the next message).
    // Always (D96): with the general path out of line, what is left is the fast step; left
    // to the heuristics, the typed channel's receive kept it a call (its empty poll 89 -> 144
    // instructions).
    #[inline(always)]
    pub fn try_pop(&mut self, buf: &mut [u8]) -> Result<usize, PopError> {
        if self.att.trailer == 0 && (!K::LOSSY_READS || self.pending.is_none()) {
            if !<K::ReadCore as ReadCore>::FAST || !crate::crashpoint::fast_allowed() {
                return self.once(|core| core.try_pop(buf));
            }
            return match self.core.try_pop_fast(buf) {
                FastPop::Popped(n) => Ok(n),
                FastPop::Empty => Err(self.empty_spinning()),
                FastPop::Other => self.try_pop_general(buf),
            };
        }
        self.take_pending()?;
        self.once(|core| pop_checked(core, buf))
    }

    /// On a checksum ring: the mismatch a batch found after handing out messages, if any.
    #[inline]
    fn take_pending(&mut self) -> Result<(), PopError> {
        self.pending.take().map_or(Ok(()), Err)
    }

    /// Pops the next message into `buf` (cleared and resized to it), returning its length.
    ///
    /// # Errors
    ///
    /// [`PopError::Empty`], [`PopError::Disconnected`] or [`PopError::Corrupt`].
    #[inline]
    pub fn try_pop_vec(&mut self, buf: &mut Vec<u8>) -> Result<usize, PopError> {
        if self.att.trailer == 0 && (!K::LOSSY_READS || self.pending.is_none()) {
            return self.once(|core| core.try_pop_vec(buf));
        }
        self.take_pending()?;
        self.once(|core| pop_vec_checked(core, buf))
    }

    /// Takes the next message for reading in place; the message is consumed when the guard
    /// drops. `Ok(None)` when none is committed.
    ///
    /// The bytes are a view of shared memory (see "Zero-copy views" above).
    ///
    /// # Errors
    ///
    /// [`PopError::Disconnected`]; [`PopError::Corrupt`] for an inconsistent message or
    /// position (an MPMC slot found corrupt is freed, and the ring goes on), or for a ring
    /// whose shared state contradicts itself (found while it looks empty, at a probe).
    #[inline]
    pub fn read(&mut self) -> Result<Option<ReadGuard<'_, K>>, PopError> {
        self.take_pending()?;
        match self.next_settled()? {
            Some((at, len)) => Ok(Some(ReadGuard {
                consumer: self,
                at,
                len,
            })),
            None => match self.on_empty(Pace::Spinning) {
                e @ (PopError::Disconnected | PopError::Corrupt(_)) => Err(e),
                _ => Ok(None),
            },
        }
    }

    /// Pops the next message and hands its bytes, in place, to `f`.
    ///
    /// The bytes are a view of shared memory (see "Zero-copy views" above).
    ///
    /// # Errors
    ///
    /// [`PopError::Empty`], [`PopError::Disconnected`] or [`PopError::Corrupt`]; `f` is not
    /// called then.
    #[inline]
    pub fn try_pop_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Result<R, PopError> {
        self.take_pending()?;
        let Some((at, len)) = self.next_settled()? else {
            return Err(self.on_empty(Pace::Spinning));
        };
        Ok(self.hand_over(at, len, f))
    }

    /// Pops up to `max` messages, handing each to `f` in place, and publishes the consumer's
    /// position once at the end (SPSC). Returns how many were popped (0 when empty). If `f`
    /// panics, the messages before the one it panicked on count as consumed; that one stays in
    /// an SPSC ring (it is seen again) and is dropped from an MPMC ring (a claimed slot cannot
    /// be handed back in order).
    ///
    /// The bytes are a view of shared memory (see "Zero-copy views" above).
    ///
    /// # Errors
    ///
    /// [`PopError::Disconnected`] when nothing was popped and the ring is drained;
    /// [`PopError::Corrupt`] if the first message is inconsistent, or if nothing was popped and
    /// the ring's shared state contradicts itself (after `n > 0` messages, an error ends the
    /// batch with `Ok(n)` and the next call reports it).
    pub fn try_pop_batch(
        &mut self,
        max: usize,
        mut f: impl FnMut(&[u8]),
    ) -> Result<usize, PopError> {
        self.take_pending()?;
        let trailer = self.att.trailer;
        let mut n = 0;
        while n < max {
            // The first message settles as a single read does; later ones end the batch.
            let next = if n == 0 {
                self.next_settled()
            } else {
                next_of(&mut self.core, trailer)
            };
            match next {
                Ok(Some((at, len))) => {
                    let bytes = self.core.payload(at);
                    let taken = Taken::new(&mut self.core, at, len, Publish::Later);
                    // SAFETY: as in `view`: `next` validated the message, which stays ours
                    // until `taken` consumes it; `taken` does not touch the payload bytes.
                    f(unsafe { std::slice::from_raw_parts(bytes, len - trailer) });
                    taken.done();
                    n += 1;
                }
                Ok(None) => break,
                // A mismatch consumed its message, a lag or ejection moved the subscriber on:
                // keep the error for the next call.
                Err(e @ (PopError::Checksum(_) | PopError::Lagged { .. } | PopError::Ejected))
                    if n > 0 =>
                {
                    self.pending = Some(e);
                    break;
                }
                Err(_) if n > 0 => break,
                Err(e) => return Err(e),
            }
        }
        if n > 0 {
            self.core.flush();
        } else if max > 0 {
            if let e @ (PopError::Disconnected | PopError::Corrupt(_)) =
                self.on_empty(Pace::Spinning)
            {
                return Err(e);
            }
        }
        Ok(n)
    }

    /// Whether no committed message is waiting now.
    pub fn is_empty(&mut self) -> bool {
        !self.core.has_committed()
    }

    /// Pops the next message into `buf`, waiting while the ring is empty.
    ///
    /// # Errors
    ///
    /// [`PopError::BufferTooSmall`] (the message stays), [`PopError::Disconnected`],
    /// [`PopError::Corrupt`]. A producer that lives but never publishes makes this wait for
    /// ever: use [`pop_timeout`](Self::pop_timeout) where that matters.
    pub fn pop(&mut self, buf: &mut [u8]) -> Result<usize, PopError> {
        self.pop_deadline(buf, None)
    }

    /// Pops the next message into `buf`, waiting at most `timeout`.
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

    /// Pops the next message into `buf`, waiting until `deadline` (`None`: for ever).
    ///
    /// # Errors
    ///
    /// [`PopError::Timeout`], and as [`pop`](Self::pop).
    pub fn pop_deadline(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<usize, PopError> {
        if self.att.trailer == 0 {
            return self.wait_data(deadline, |core| core.try_pop(buf));
        }
        self.take_pending()?;
        self.wait_data(deadline, |core| pop_checked(core, buf))
    }

    /// Waits until `deadline` (`None`: for ever) for the next message, then pops it and hands
    /// its bytes, in place, to `f` (a view of shared memory: see "Zero-copy views" above).
    ///
    /// # Errors
    ///
    /// [`PopError::Timeout`], [`PopError::Disconnected`] or [`PopError::Corrupt`]; `f` is not
    /// called then.
    pub fn pop_with_deadline<R>(
        &mut self,
        deadline: Option<Instant>,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, PopError> {
        self.take_pending()?;
        let trailer = self.att.trailer;
        let (at, len) = self.wait_data(deadline, |core| {
            next_of(core, trailer)?.ok_or(PopError::Empty)
        })?;
        Ok(self.hand_over(at, len, f))
    }

    /// Runs `op` until it does not report `Empty`, waiting as the wait strategy says (and
    /// checking for gone producers, repairing dead endpoints' claims) until `deadline`: the
    /// loop of every blocking pop.
    fn wait_data<R>(
        &mut self,
        deadline: Option<Instant>,
        mut op: impl FnMut(&mut K::ReadCore) -> Result<R, PopError>,
    ) -> Result<R, PopError> {
        let Consumer { core, att, .. } = self;
        let (strategy, nap, mem, wake) = (
            att.wait,
            att.clock.interval(),
            att.mem,
            att.wake(Direction::Data),
        );
        wait_for(strategy, deadline, &mem, wake, nap, |pace| match op(core) {
            Err(PopError::Empty) => match on_empty(core, att, pace) {
                PopError::Empty => None,
                e => Some(Err(e)),
            },
            other => Some(other),
        })
        .unwrap_or(Err(PopError::Timeout))
    }

    /// Hands the message taken at `at` to `f`, then consumes it. If `f` panics, the core
    /// decides ([`ReadCore::unwind`]: SPSC keeps the message, MPMC drops it).
    // Inline, as `next_settled` (D95).
    #[inline]
    fn hand_over<R>(&mut self, at: u64, len: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        let bytes = self.core.payload(at);
        // The payload, without a checksum ring's trailer.
        let shown = len - self.att.trailer;
        let taken = Taken::new(&mut self.core, at, len, Publish::Now);
        // SAFETY: as in `view`: `next` validated the message, which stays ours until `taken`
        // consumes it; `taken` does not touch the payload bytes.
        let r = f(unsafe { std::slice::from_raw_parts(bytes, shown) });
        taken.done();
        r
    }

    /// The payload of the message taken at `at`.
    #[inline]
    fn view(&self, at: u64, len: usize) -> &[u8] {
        // SAFETY: `next` validated that the message lies inside the ring's memory, and an
        // honest producer does not write it again until this consumer consumes it, which
        // needs `&mut self`. This is a view of shared memory: a peer that breaks the protocol
        // can change these bytes while the slice is alive, which the zero-copy API documents
        // (trusted peers only; copy first where the peer is untrusted). No length or offset
        // this crate uses is derived from payload bytes.
        unsafe { std::slice::from_raw_parts(self.core.payload(at), len) }
    }

    /// The largest message the ring carries, in bytes (on a checksum ring, the record limit
    /// less the 4-byte trailer).
    pub fn max_message(&self) -> usize {
        K::max_message(&self.att.ring.inner.g) - self.att.trailer
    }

    /// Sets how the blocking calls ([`pop`](Self::pop) and friends) wait while the ring is
    /// empty. Default: [`WaitStrategy::Block`] after 50 µs of spinning.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.att.wait = strategy;
    }

    /// Sets how often, while the ring is empty, this endpoint checks whether the other
    /// endpoints are still alive, reaps dead ones and repairs what they held, and so notices a
    /// producer that died (default
    /// [`DEFAULT_PROBE_INTERVAL`](crate::liveness::DEFAULT_PROBE_INTERVAL), 20 ms). A blocked
    /// call also wakes this often to check. (Non-blocking pops that find the ring empty read
    /// the clock only every 16th time, to keep a polling loop fast: a caller that polls
    /// slowly notices a dead peer within 16 polls of the interval.)
    pub fn set_probe_interval(&mut self, interval: Duration) {
        self.att.clock.set_interval(interval);
    }

    /// The ring this consumer reads from.
    pub fn ring(&self) -> &Ring<K> {
        &self.att.ring
    }
}

impl<K: Kind> Drop for Consumer<K> {
    fn drop(&mut self) {
        // Messages handed out before a panic in a `try_pop_batch` callback are consumed:
        // publish the position so a successor does not see them again.
        if self.att.reg.is_own(&Os::new(&self.att.ring.inner.seg)) {
            self.core.flush();
        }
        self.att.detach();
    }
}

/// A message handed to a callback: consumed once the callback returns ([`Taken::done`]); if
/// the callback panics instead, the drop hands it to [`ReadCore::unwind`].
struct Taken<'c, C: ReadCore> {
    core: &'c mut C,
    at: u64,
    len: usize,
    publish: Publish,
}

impl<'c, C: ReadCore> Taken<'c, C> {
    #[inline]
    fn new(core: &'c mut C, at: u64, len: usize, publish: Publish) -> Self {
        Taken {
            core,
            at,
            len,
            publish,
        }
    }

    /// The callback returned: consume the message.
    #[inline]
    fn done(self) {
        self.core.consume(self.at, self.len, self.publish);
        std::mem::forget(self);
    }
}

impl<C: ReadCore> Drop for Taken<'_, C> {
    fn drop(&mut self) {
        // Only while unwinding: `done` forgets the guard.
        self.core.unwind(self.at, self.len);
    }
}

/// A message taken by [`Consumer::read`], in place. Dereferences to its payload; consumed
/// (its space handed back to producers) when dropped.
pub struct ReadGuard<'a, K: Kind = crate::Spsc> {
    consumer: &'a mut Consumer<K>,
    at: u64,
    len: usize,
}

impl<K: Kind> Deref for ReadGuard<'_, K> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.consumer
            .view(self.at, self.len - self.consumer.att.trailer)
    }
}

impl<K: Kind> Drop for ReadGuard<'_, K> {
    #[inline]
    fn drop(&mut self) {
        self.consumer.core.consume(self.at, self.len, Publish::Now);
    }
}
