//! Waiting on several rings at once, for a select over channels: [`Doorbell`] and
//! [`wait_any`].
//!
//! Every endpoint can hand out a [`Doorbell`]: the wake sequence and waiters count of the
//! direction it waits for (a consumer: "data was published"; a producer: "space was freed").
//! [`wait_any`] runs the sleep side of the sleep/notify protocol ([`crate::wait`], P1–P6) on
//! all of them at once, and sleeps on every wake sequence in one `futex_waitv(2)` call (Linux
//! 5.16+):
//!
//! ```text
//! P1  for each bell: W.fetch_add(1, SeqCst)
//! P2  for each bell: s = S.load(Acquire)
//! P3  fence(SeqCst)
//! P4  ready()? then P6 and return
//! P5  futex_waitv({(S, s)} for each bell)     -- returns when any S != s, or woken
//! P6  for each bell: W.fetch_sub(1)
//! ```
//!
//! The argument of [`crate::wait`] holds per ring, unchanged: a publication on any ring whose
//! N1 fence follows our P3 sees our `W != 0` and bumps its `S`, which `futex_waitv` either
//! finds changed or is woken by; one whose N1 precedes P3 is seen by `ready()` at P4. So no
//! publication on any of the rings is missed.
//!
//! On a kernel without `futex_waitv` (before 5.16, or a seccomp filter that refuses it), and
//! for more than 128 bells, `wait_any` sleeps on the first bell only, for at most
//! [`FALLBACK_NAP`]: the other rings are then polled every millisecond. Rings created without
//! notification ([`RING_FLAG_NOTIFY`](crate::layout::RING_FLAG_NOTIFY) clear) have nothing to
//! sleep on: a wait that includes one sleeps at most [`FALLBACK_NAP`] too.
//!
//! ```
//! use shmbus_ring::select::wait_any;
//! use shmbus_ring::{SpscConfig, SpscRing};
//! use std::time::Duration;
//! let (a, b) = (SpscRing::in_heap(&SpscConfig::new(4096))?, SpscRing::in_heap(&SpscConfig::new(4096))?);
//! let (mut tx_a, mut rx_a) = (a.producer()?, a.consumer()?);
//! let (_tx_b, mut rx_b) = (b.producer()?, b.consumer()?);
//! let bells = [rx_a.doorbell(), rx_b.doorbell()];
//! let t = std::thread::spawn(move || {
//!     std::thread::sleep(Duration::from_millis(10));
//!     tx_a.push(b"hello").unwrap();
//!     tx_a
//! });
//! // Sleeps until either ring has a message (here a's), re-checking after every wake-up.
//! while !wait_any(&bells, Some(Duration::from_secs(10)), || !rx_a.is_empty() || !rx_b.is_empty()) {}
//! let mut buf = [0u8; 16];
//! assert_eq!(rx_a.try_pop(&mut buf)?, 5);
//! t.join().unwrap();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::endpoint::{on_empty, on_full, Consumer, Producer, WriteCore};
use crate::error::{PopError, PushError};
use crate::ring::Kind;
use crate::sync::{futex_wait_any, Memory, Ordering, RawMem, WaitAny};
use crate::wait::Pace;
use crate::wait::{sleeper_barrier, Barrier, Direction, Wake};
use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

/// How long [`wait_any`] sleeps at most when it cannot sleep on every bell at once (no
/// `futex_waitv`, more than 128 bells, or a ring without notification).
pub const FALLBACK_NAP: Duration = Duration::from_millis(1);

/// One endpoint's wake-up source: the wake sequence of the direction it waits for, in its
/// ring's memory. Keeps the ring's mapping alive; cheap to clone.
#[derive(Clone)]
pub struct Doorbell {
    /// The ring the words are in, kept mapped while the bell exists.
    _ring: Arc<dyn Any + Send + Sync>,
    mem: RawMem,
    /// The wake sequence and waiters count, `None` for a ring without notification.
    words: Option<(usize, usize)>,
    /// Who pays for the barrier on that ring (P3 or P3m).
    barrier: Barrier,
}

impl std::fmt::Debug for Doorbell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Doorbell")
            .field("notifies", &self.words.is_some())
            .finish_non_exhaustive()
    }
}

impl Doorbell {
    fn new<K: Kind>(ring: &crate::Ring<K>, mem: RawMem, dir: Direction) -> Self {
        let words = ring.inner.wake.map(|w: Wake| w.words(dir));
        Doorbell {
            _ring: Arc::clone(&ring.inner) as Arc<dyn Any + Send + Sync>,
            mem,
            words,
            barrier: ring.inner.wake.map_or(Barrier::Fence, |w| w.barrier),
        }
    }
}

impl<K: Kind> Consumer<K> {
    /// This consumer's doorbell: it rings when a message is published (or the set of
    /// endpoints changes), for [`wait_any`].
    pub fn doorbell(&self) -> Doorbell {
        Doorbell::new(&self.att.ring, self.att.mem, Direction::Data)
    }

    /// How often this consumer probes its peers while it waits: the longest a select should
    /// sleep before re-checking it.
    pub fn probe_interval(&self) -> Duration {
        self.att.clock.interval()
    }

    /// What a pop that found the ring empty would report now, judged as a blocked pop judges
    /// after a sleep: probes the producers (reaping dead ones) and audits the ring when the
    /// probe interval has passed. `Err(Disconnected)` once every producer is gone and nothing
    /// committed is left, `Err(Corrupt)` for a ring that contradicts itself, else `Ok(())`.
    /// For a select, which sleeps on many rings and must see dead peers as a blocked pop does.
    ///
    /// # Errors
    ///
    /// As above.
    pub fn check_peers(&mut self) -> Result<(), PopError> {
        match on_empty(&mut self.core, &mut self.att, Pace::Waited) {
            PopError::Empty => Ok(()),
            e => Err(e),
        }
    }
}

impl<K: Kind> Producer<K> {
    /// This producer's doorbell: it rings when space is freed (or the set of endpoints
    /// changes), for [`wait_any`].
    pub fn doorbell(&self) -> Doorbell {
        Doorbell::new(&self.att.ring, self.att.mem, Direction::Space)
    }

    /// How often this producer probes its peers while it waits: the longest a select should
    /// sleep before re-checking it.
    pub fn probe_interval(&self) -> Duration {
        self.att.clock.interval()
    }

    /// Whether a push of the largest message would find the ring full now: the message
    /// bound reached, or no room for [`max_message`](Self::max_message) bytes (a snapshot;
    /// consumers free room meanwhile). A select's readiness check for a send.
    ///
    /// ```
    /// use shmbus_ring::{MpmcConfig, MpmcRing};
    /// let ring = MpmcRing::in_heap(&MpmcConfig::new(2, 8).message_limit(1))?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// assert!(!tx.is_full());
    /// tx.try_push(b"x")?;
    /// assert!(tx.is_full());
    /// let mut buf = [0u8; 8];
    /// rx.try_pop(&mut buf)?;
    /// assert!(!tx.is_full());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_full(&mut self) -> bool {
        self.core.is_full()
    }

    /// What a push that found the ring full would report now, judged as a blocked push judges
    /// after a sleep: probes the consumers (reaping dead ones) and audits the ring when the
    /// probe interval has passed. `Err(Disconnected)` once every consumer is gone,
    /// `Err(Corrupt)` for a ring that contradicts itself, else `Ok(())`.
    ///
    /// # Errors
    ///
    /// As above.
    pub fn check_peers(&mut self) -> Result<(), PushError> {
        match on_full(&mut self.core, &mut self.att, Pace::Waited) {
            PushError::Full => Ok(()),
            e => Err(e),
        }
    }
}

/// Registers as a waiter on every bell, runs `ready`, and if it returns `false` sleeps until
/// any bell rings or `timeout` passes (`None`: no limit). Returns `ready`'s answer: `true`
/// means it returned `true` and no sleep happened; `false` means a sleep ended (woken, timed
/// out or spuriously), and the caller checks again. The module docs give the protocol.
///
/// `ready` must check every operation the caller waits for on these bells; a select passes
/// its `try` operations, which also probe peers, so a caller that sleeps at most one probe
/// interval at a time sees dead peers too.
pub fn wait_any(
    bells: &[Doorbell],
    timeout: Option<Duration>,
    ready: impl FnOnce() -> bool,
) -> bool {
    let live: Vec<(&RawMem, usize, usize)> = bells
        .iter()
        .filter_map(|b| b.words.map(|(seq, waiters)| (&b.mem, seq, waiters)))
        .collect();
    let mut seen = Vec::with_capacity(live.len());
    for &(mem, _, waiters) in &live {
        // P1: SeqCst: the increment is in the total order before our P3 fence, so a notifier
        // whose N1 fence follows P3 sees it (N2).
        // SAFETY: the bell's words are in the first page of its ring's validated segment,
        // which `_ring` keeps mapped.
        unsafe { mem.fetch_add(waiters, 1, Ordering::SeqCst) };
    }
    for &(mem, seq, _) in &live {
        // P2: Acquire: pairs with N2's Release increment, so a publication that bumped the
        // sequence before this load is visible to the re-check (P4).
        // SAFETY: as for P1.
        seen.push((mem, seq, unsafe { mem.load(seq, Ordering::Acquire) }));
    }
    // P6 runs however this function is left, `ready` panicking included: a waiters count
    // left raised would make every later publish on that ring pay N2's system call.
    let _p6 = Unregister(&live);
    // P3: SeqCst fence; pairs with every notifier's N1. P3m (PROTOCOL §6.3): one membarrier
    // call serves every membarrier-mode ring among the bells; if it fails, poll.
    let barrier = bells
        .iter()
        .find(|b| b.words.is_some() && b.barrier != Barrier::Fence)
        .map_or(Barrier::Fence, |b| b.barrier);
    let forced = bells
        .first()
        .map_or(true, |b| sleeper_barrier(&b.mem, barrier));
    // P4: re-check.
    let ready = ready();
    if !ready {
        // P5.
        let partial = live.len() < bells.len() || !forced;
        let capped = |t: Option<Duration>| Some(t.map_or(FALLBACK_NAP, |t| t.min(FALLBACK_NAP)));
        let timeout = if partial { capped(timeout) } else { timeout };
        // SAFETY: as for P1.
        let slept = unsafe { futex_wait_any(&seen, timeout) };
        if slept == WaitAny::Unsupported {
            match seen.first() {
                // SAFETY: as for P1.
                Some(&(mem, seq, s)) if seen.len() == 1 => unsafe { mem.wait(seq, s, timeout) },
                // SAFETY: as for P1.
                Some(&(mem, seq, s)) => unsafe { mem.wait(seq, s, capped(timeout)) },
                None => std::thread::sleep(timeout.unwrap_or(FALLBACK_NAP)),
            }
        }
    }
    ready
}

/// P6 for every bell, on drop.
struct Unregister<'a, 'b>(&'a [(&'b RawMem, usize, usize)]);

impl Drop for Unregister<'_, '_> {
    fn drop(&mut self) {
        for &(mem, _, waiters) in self.0 {
            // P6: Relaxed: the count only gates whether notifiers make the syscall.
            // SAFETY: the bell's words are in the first page of its ring's validated segment,
            // which the bell keeps mapped for longer than this guard lives.
            unsafe { mem.fetch_sub(waiters, 1, Ordering::Relaxed) };
        }
    }
}
