//! The two ring flavors a channel can run on, as types: [`Spsc`] and [`Mpmc`] — the ring
//! crate's kinds themselves.
//!
//! The flavor is a type parameter of [`Sender`](crate::Sender) and
//! [`Receiver`](crate::Receiver), so that MPMC handles are `Clone` (each clone a new endpoint
//! of the ring) and SPSC handles are not. Everything a channel does with its ring goes through
//! the ring crate's common API ([`Ring`], [`Producer`], [`Consumer`], [`Kind`]), written once
//! for both kinds; this module only adds the flavor's name and the two calls every send and
//! receive makes.

use shmbus_ring::{Consumer, Kind, PopError, Producer, PushError, WaitStrategy, WriteGuard};
use std::time::{Duration, Instant};

/// One producer and one consumer, variable-size messages in a byte ring: the fast path.
/// Capacity is counted in bytes; a small message takes only its own length plus 8 bytes
/// (rounded up to 8).
pub use shmbus_ring::Spsc;

/// Any number of senders and receivers in any processes; every message takes one fixed-size
/// slot of the channel's maximum message size.
pub use shmbus_ring::Mpmc;

/// The ring a channel of flavor `F` runs on.
pub use shmbus_ring::Ring;

/// A ring flavor: [`Spsc`] or [`Mpmc`]. Sealed (the ring kinds are the ring crate's).
pub trait Flavor: Kind {
    /// `"spsc"` or `"mpmc"`.
    const NAME: &'static str;
}

impl Flavor for Spsc {
    const NAME: &'static str = "spsc";
}

impl Flavor for Mpmc {
    const NAME: &'static str = "mpmc";
}

/// How a channel's endpoints wait and probe: what the builder sets, the channel passes to
/// every endpoint it attaches, and an MPMC clone inherits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settings {
    /// How blocking calls wait.
    pub(crate) wait: WaitStrategy,
    /// How often a waiting endpoint checks that its peers are alive.
    pub(crate) probe: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            wait: WaitStrategy::default(),
            probe: shmbus_ring::liveness::DEFAULT_PROBE_INTERVAL,
        }
    }
}

impl Settings {
    /// Applies these settings to a producer.
    pub(crate) fn producer<F: Kind>(self, mut p: Producer<F>) -> Producer<F> {
        p.set_wait_strategy(self.wait);
        p.set_probe_interval(self.probe);
        p
    }

    /// Applies these settings to a consumer.
    pub(crate) fn consumer<F: Kind>(self, mut c: Consumer<F>) -> Consumer<F> {
        c.set_wait_strategy(self.wait);
        c.set_probe_interval(self.probe);
        c
    }
}

/// How long an operation may wait.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    /// Not at all: `try_send`, `try_recv`.
    Never,
    /// Until a deadline (`None`: for ever).
    Until(Option<Instant>),
    /// For a timeout from now.
    For(Duration),
}

impl Wait {
    pub(crate) fn deadline(self) -> Option<Instant> {
        match self {
            Wait::Never => Some(Instant::now()),
            Wait::Until(deadline) => deadline,
            Wait::For(timeout) => Instant::now().checked_add(timeout),
        }
    }
}

/// Reserves exactly `len` bytes, waiting as `wait` says, hands them to `f` to encode into, and
/// publishes what it wrote; abandons the reservation if `f` fails.
///
/// Exactly `len` bytes: the codec measured the message first. Reserving the maximum message
/// size instead would make every send wait for room for the largest message (the whole ring,
/// when the maximum is close to the capacity).
#[inline]
pub(crate) fn write<F: Kind, E>(
    p: &mut Producer<F>,
    len: usize,
    wait: Wait,
    f: impl FnOnce(&mut [u8]) -> Result<usize, E>,
) -> Result<Result<(), E>, PushError> {
    // One attempt first: a blocking call that finds room at once does not read the clock.
    match p.reserve(len) {
        Ok(r) => return Ok(fill(r, len, f)),
        Err(PushError::Full) if !matches!(wait, Wait::Never) => {}
        Err(e) => return Err(e),
    }
    let r = p.reserve_deadline(len, wait.deadline())?;
    Ok(fill(r, len, f))
}

/// Takes the next message, waiting as `wait` says, and hands its bytes (in place) to `f`.
#[inline]
pub(crate) fn read<F: Flavor, R>(
    c: &mut Consumer<F>,
    wait: Wait,
    mut f: impl FnMut(&[u8]) -> R,
) -> Result<R, PopError> {
    // One attempt first: a blocking call that finds a message at once does not read the
    // clock.
    match c.try_pop_with(&mut f) {
        Err(PopError::Empty) if !matches!(wait, Wait::Never) => {}
        other => return other,
    }
    c.pop_with_deadline(wait.deadline(), f)
}

/// Pops the next message into `buf` (which holds a whole message), as [`read`] waits:
/// the copying pops, whose private copy a checksum ring verifies.
#[inline]
pub(crate) fn read_copy<F: Flavor>(
    c: &mut Consumer<F>,
    wait: Wait,
    buf: &mut [u8],
) -> Result<usize, PopError> {
    match c.try_pop(buf) {
        Err(PopError::Empty) if !matches!(wait, Wait::Never) => {}
        other => return other,
    }
    c.pop_deadline(buf, wait.deadline())
}

fn fill<F: Kind, E>(
    mut r: WriteGuard<'_, F>,
    len: usize,
    f: impl FnOnce(&mut [u8]) -> Result<usize, E>,
) -> Result<(), E> {
    match f(&mut r) {
        Ok(n) => {
            r.commit_len(n.min(len));
            Ok(())
        }
        // Dropping the reservation abandons it: nothing becomes visible.
        Err(e) => Err(e),
    }
}
