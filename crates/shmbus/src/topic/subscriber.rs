//! A topic's subscriber: one reader among many, each seeing every message.

use super::error::{Failure, RecvError, RecvTimeoutError, TryRecvError};
use crate::codec::{Bincode, Codec};
use crate::flavor::{Settings, Wait};
use crate::select::{sealed, SelectRecv};
use shmbus_ring::broadcast::BroadcastRing;
use shmbus_ring::select::Doorbell;
use shmbus_ring::{Broadcast, Consumer, PopError, WaitStrategy};
use std::iter::FusedIterator;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

/// The largest receive buffer a subscriber allocates up front.
const PREALLOCATED_BUFFER: usize = 64 << 10;

/// The receiving end of a topic: made by
/// [`SubscriberBuilder::open`](super::SubscriberBuilder::open) or
/// [`wait_for`](super::SubscriberBuilder::wait_for).
///
/// Every message is **copied** out of shared memory into a buffer the subscriber owns and
/// reuses (the ring's copying pops, which validate an untethered read after the copy: see
/// DECISIONS D45), then decoded from there. Receiving allocates nothing once the buffer has
/// grown to the largest message (64 KiB up front), beyond what decoding `T` itself allocates.
///
/// Besides a channel receiver's errors, a receive reports [`RecvError::Lagged`] (untethered:
/// overtaken, with the number of messages missed) and [`RecvError::Ejected`] (tethered, cut
/// loose by a publisher under [`SlowSubscribers::Untether`](crate::ring::broadcast::SlowSubscribers));
/// neither ends the subscription. A subscriber can take part in a [`Select`](crate::Select).
///
/// ```
/// use shmbus::topic::{RecvError, TryRecvError};
/// let topic = format!("doc/subscriber/{}", std::process::id());
/// let mut publisher = shmbus::topic::publisher::<u64>().capacity_bytes(4096).create(&topic)?;
/// let mut lossless = shmbus::topic::subscriber::<u64>().open(&topic)?;
/// let mut lossy = shmbus::topic::subscriber::<u64>().tethered(false).open(&topic)?;
/// for i in 0..10 {
///     publisher.send(&i)?;
/// }
/// assert_eq!(lossless.try_iter().collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
/// drop(lossless); // it would hold the publisher up once the ring is full
/// // The lossy one does not: 1000 more messages lap it.
/// for i in 10..1010 {
///     publisher.try_send(&i)?;
/// }
/// assert!(matches!(lossy.try_recv(), Err(TryRecvError::Lagged { .. })));
/// assert_eq!(lossy.try_recv()?, 1009); // it resumed at the latest message
/// assert_eq!(lossy.lapped_count(), 1);
/// drop(publisher);
/// assert_eq!(lossy.recv(), Err(RecvError::Disconnected));
/// # drop(lossy); shmbus::topic::remove(&topic)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Subscriber<T, C = Bincode> {
    consumer: Consumer<Broadcast>,
    ring: BroadcastRing,
    topic: String,
    buf: Vec<u8>,
    settings: Settings,
    /// Identity, for [`SelectedOperation::recv`](crate::SelectedOperation::recv).
    id: u64,
    /// What a select took from the ring and the next receive returns.
    staged: Option<Staged>,
    _types: PhantomData<fn() -> (T, C)>,
}

/// A receive a select completed: the message's bytes in `buf[..len]`, or what it met.
#[derive(Debug)]
enum Staged {
    Message(usize),
    Failure(Failure),
}

impl<T, C> std::fmt::Debug for Subscriber<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("topic", &self.topic)
            .field("type", &std::any::type_name::<T>())
            .field("tethered", &self.consumer.is_tethered())
            .field("ring", &self.ring)
            .finish_non_exhaustive()
    }
}

impl<T, C: Codec<T>> Subscriber<T, C> {
    pub(crate) fn new(
        consumer: Consumer<Broadcast>,
        ring: BroadcastRing,
        topic: String,
        settings: Settings,
    ) -> Self {
        Subscriber {
            consumer: settings.consumer(consumer),
            buf: Vec::with_capacity(ring.max_message().min(PREALLOCATED_BUFFER)),
            ring,
            topic,
            settings,
            id: crate::select::next_id(),
            staged: None,
            _types: PhantomData,
        }
    }

    /// Copies the next message into `buf`, waiting as `wait` says; its length.
    fn pop(&mut self, wait: Wait) -> Result<usize, Failure> {
        let Subscriber { consumer, buf, .. } = self;
        // One attempt first: a blocking call that finds a message at once does not read the
        // clock. `try_pop_vec` sizes the buffer to the message (within its capacity).
        match consumer.try_pop_vec(buf) {
            Err(PopError::Empty) if !matches!(wait, Wait::Never) => {}
            Ok(n) => return Ok(n),
            Err(e) => return Err(e.into()),
        }
        let max = consumer.max_message();
        if buf.len() < max {
            buf.resize(max, 0);
        }
        consumer
            .pop_deadline(buf, wait.deadline())
            .map_err(Failure::from)
    }

    fn read(&mut self, wait: Wait) -> Result<T, Failure> {
        let len = match self.staged.take() {
            Some(Staged::Message(len)) => len,
            Some(Staged::Failure(f)) => return Err(f),
            None => self.pop(wait)?,
        };
        C::decode(&self.buf[..len]).map_err(Failure::Decode)
    }

    /// Receives the next message, waiting while there is none.
    ///
    /// # Errors
    ///
    /// [`RecvError::Lagged`] and [`RecvError::Ejected`] (receive again: the subscription goes
    /// on); [`RecvError::Disconnected`] once the publisher is gone and everything it published
    /// was received; [`RecvError::Decode`] for a message that does not decode (consumed);
    /// [`RecvError::Corrupt`]; [`RecvError::Checksum`]. A publisher that stays but never
    /// publishes makes this wait for ever: use [`recv_timeout`](Self::recv_timeout) where
    /// that matters.
    pub fn recv(&mut self) -> Result<T, RecvError> {
        loop {
            match self.read(Wait::Until(None)) {
                Ok(msg) => return Ok(msg),
                Err(Failure::Empty | Failure::Timeout) => {}
                Err(failure) => return Err(RecvError::new(failure)),
            }
        }
    }

    /// Receives the next message if one is waiting.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`], and as [`recv`](Self::recv).
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.read(Wait::Never).map_err(TryRecvError::new)
    }

    /// Receives the next message, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`], and as [`recv`](Self::recv).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.read(Wait::For(timeout)).map_err(RecvTimeoutError::new)
    }

    /// Receives the next message, waiting until `deadline`.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`], and as [`recv`](Self::recv).
    pub fn recv_deadline(&mut self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.read(Wait::Until(Some(deadline)))
            .map_err(RecvTimeoutError::new)
    }

    /// A blocking iterator over messages: each `next` is a [`recv`](Self::recv). A
    /// [`Lagged`](RecvError::Lagged) or [`Ejected`](RecvError::Ejected) report is passed over
    /// (the gap is counted in [`lapped_count`](Self::lapped_count)); it ends at any other
    /// error: the publisher gone, a message that does not decode, corruption.
    pub fn iter(&mut self) -> Iter<'_, T, C> {
        Iter {
            sub: self,
            done: false,
        }
    }

    /// A non-blocking iterator over the messages waiting now: each `next` is a
    /// [`try_recv`](Self::try_recv), passing over `Lagged` and `Ejected` as
    /// [`iter`](Self::iter) does; it ends when none is waiting, or at any other error.
    pub fn try_iter(&mut self) -> TryIter<'_, T, C> {
        TryIter {
            sub: self,
            done: false,
        }
    }

    /// Whether this subscriber is tethered (lossless: the publisher does not overwrite what
    /// it has not read): asked for at subscribe time, and not ejected since.
    pub fn is_tethered(&self) -> bool {
        self.consumer.is_tethered()
    }

    /// Whether the publisher has accounted for this tethered subscriber yet.
    pub fn is_confirmed(&self) -> bool {
        self.consumer.is_confirmed()
    }

    /// How many times this subscriber was lapped ([`RecvError::Lagged`]).
    pub fn lapped_count(&self) -> u64 {
        self.consumer.lapped_count()
    }

    /// The sequence number of the next message it reads: how many messages the topic's
    /// publishers had published before it.
    pub fn sequence(&self) -> u64 {
        self.consumer.sequence()
    }

    /// Joins again, tethered, where it is: after an ejection, or to make an untethered
    /// subscriber lossless from now on. It skips nothing and repeats nothing (a message a
    /// select staged is still the next one received); if the publisher wrote over its
    /// position before it was held again, the next receive reports
    /// [`RecvError::Lagged`] and goes on from the latest message. Returns how many messages
    /// it skipped: 0.
    pub fn retether(&mut self) -> u64 {
        self.consumer.retether()
    }

    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The largest encoded message the topic carries, in bytes.
    pub fn max_message(&self) -> usize {
        self.consumer.max_message()
    }

    /// Sets how blocking receives wait.
    pub fn set_wait_strategy(&mut self, wait: WaitStrategy) {
        self.settings.wait = wait;
        self.consumer.set_wait_strategy(wait);
    }

    /// Sets how often a waiting receive checks that the publisher is alive.
    pub fn set_probe_interval(&mut self, interval: Duration) {
        self.settings.probe = interval;
        self.consumer.set_probe_interval(interval);
    }

    /// The ring underneath, for monitoring and for its own API.
    pub fn ring(&self) -> &BroadcastRing {
        &self.ring
    }
}

impl<T, C: Codec<T>> sealed::Handle for Subscriber<T, C> {
    fn id(&self) -> u64 {
        self.id
    }

    fn try_select(&mut self, probe: bool) -> bool {
        if self.staged.is_some() {
            return true;
        }
        if probe {
            if let Err(e) = self.consumer.check_peers() {
                self.staged = Some(Staged::Failure(e.into()));
                return true;
            }
        }
        self.staged = match self.pop(Wait::Never) {
            Ok(len) => Some(Staged::Message(len)),
            Err(Failure::Empty | Failure::Timeout) => None,
            Err(f) => Some(Staged::Failure(f)),
        };
        self.staged.is_some()
    }

    fn doorbell(&self) -> Option<Doorbell> {
        Some(self.consumer.doorbell())
    }

    fn probe_interval(&self) -> Option<Duration> {
        Some(self.consumer.probe_interval())
    }

    fn deadline(&self) -> Option<Instant> {
        None
    }

    fn wait_strategy(&self) -> Option<WaitStrategy> {
        Some(self.settings.wait)
    }
}

impl<T, C: Codec<T>> SelectRecv for Subscriber<T, C> {
    type Item = T;
    type Error = RecvError;

    fn complete_recv(&mut self, _: sealed::Token) -> Result<T, RecvError> {
        // What the select staged, or (if a receive took it since) the next message.
        self.recv()
    }
}

/// The next message of `next`, passing over `Lagged` and `Ejected`; `None` for ever once an
/// error ended it.
fn next_message<T, E>(
    done: &mut bool,
    mut next: impl FnMut() -> Result<T, E>,
    gap: impl Fn(&E) -> bool,
) -> Option<T> {
    while !*done {
        match next() {
            Ok(msg) => return Some(msg),
            Err(e) if gap(&e) => {}
            Err(_) => *done = true,
        }
    }
    None
}

/// A blocking iterator over a [`Subscriber`]'s messages; see [`Subscriber::iter`].
#[derive(Debug)]
pub struct Iter<'a, T, C = Bincode> {
    sub: &'a mut Subscriber<T, C>,
    done: bool,
}

impl<T, C: Codec<T>> Iterator for Iter<'_, T, C> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        let sub = &mut *self.sub;
        next_message(
            &mut self.done,
            || sub.recv(),
            |e| matches!(e, RecvError::Lagged { .. } | RecvError::Ejected),
        )
    }
}

impl<T, C: Codec<T>> FusedIterator for Iter<'_, T, C> {}

/// A non-blocking iterator over the messages waiting for a [`Subscriber`]; see
/// [`Subscriber::try_iter`].
#[derive(Debug)]
pub struct TryIter<'a, T, C = Bincode> {
    sub: &'a mut Subscriber<T, C>,
    done: bool,
}

impl<T, C: Codec<T>> Iterator for TryIter<'_, T, C> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        let sub = &mut *self.sub;
        next_message(
            &mut self.done,
            || sub.try_recv(),
            |e| matches!(e, TryRecvError::Lagged { .. } | TryRecvError::Ejected),
        )
    }
}

impl<T, C: Codec<T>> FusedIterator for TryIter<'_, T, C> {}
