//! A topic's publisher: the one endpoint that writes, each message once for every subscriber.

use super::error::{SendError, SendFailure, SendTimeoutError, TrySendError};
use crate::codec::{Bincode, Codec};
use crate::flavor::{self, Settings, Wait};
use shmbus_ring::broadcast::{BroadcastRing, SlowSubscribers, SubscriberInfo};
use shmbus_ring::{Broadcast, Producer, PushError, WaitStrategy, WriteGuard};
use std::marker::PhantomData;
use std::time::{Duration, Instant};

/// The publishing end of a topic: made by
/// [`PublisherBuilder::create`](super::PublisherBuilder::create). Every message is encoded
/// once, straight into the topic's ring, and every subscriber reads it from there.
///
/// A publish waits only for *tethered* subscribers that have not read what it would
/// overwrite, and only as its [`SlowSubscribers`] policy says; with no subscriber it never
/// waits and never fails for want of one.
///
/// ```
/// let topic = format!("doc/publisher/{}", std::process::id());
/// let mut publisher = shmbus::topic::publisher::<String>().create(&topic)?;
/// let mut sub = shmbus::topic::subscriber::<String>().open(&topic)?;
/// publisher.send(&"hello".to_string())?;
/// assert_eq!(sub.recv()?, "hello");
/// assert_eq!(publisher.subscribers().len(), 1);
/// assert_eq!(publisher.topic(), topic);
/// # drop(sub); shmbus::topic::remove(&topic)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Publisher<T, C = Bincode> {
    producer: Producer<Broadcast>,
    ring: BroadcastRing,
    topic: String,
    max: usize,
    settings: Settings,
    _types: PhantomData<fn(&T) -> C>,
}

impl<T, C> std::fmt::Debug for Publisher<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("topic", &self.topic)
            .field("type", &std::any::type_name::<T>())
            .field("ring", &self.ring)
            .field("max_message", &self.max)
            .finish_non_exhaustive()
    }
}

impl<T, C: Codec<T>> Publisher<T, C> {
    pub(crate) fn new(
        producer: Producer<Broadcast>,
        ring: BroadcastRing,
        topic: String,
        settings: Settings,
    ) -> Self {
        Publisher {
            producer: settings.producer(producer),
            max: ring.max_message(),
            ring,
            topic,
            settings,
            _types: PhantomData,
        }
    }

    fn write(&mut self, msg: &T, wait: Wait) -> Result<(), SendFailure> {
        let len = C::encoded_len(msg).map_err(SendFailure::Encode)?;
        if len > self.max {
            return Err(SendFailure::TooLarge { len, max: self.max });
        }
        match flavor::write(&mut self.producer, len, wait, |buf| C::encode(msg, buf)) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(SendFailure::Encode(e)),
            Err(e) => Err(SendFailure::from_push(e, self.max)),
        }
    }

    /// Publishes `msg`, waiting while a tethered subscriber leaves no room (under
    /// [`SlowSubscribers::Untether`], at most its `after`, then that subscriber is ejected).
    ///
    /// # Errors
    ///
    /// [`SendError::TooLarge`] at once, without waiting; [`SendError::Encode`];
    /// [`SendError::Corrupt`]. Under [`SlowSubscribers::Block`], a tethered subscriber that
    /// stays attached but never reads makes this wait for ever: use
    /// [`send_timeout`](Self::send_timeout) where that matters. One whose process died stops
    /// holding it up within a probe interval.
    pub fn send(&mut self, msg: &T) -> Result<(), SendError> {
        loop {
            match self.write(msg, Wait::Until(None)) {
                Ok(()) => return Ok(()),
                Err(SendFailure::Full | SendFailure::Timeout) => {}
                Err(failure) => return Err(SendError::new(failure)),
            }
        }
    }

    /// Publishes `msg` if there is room now.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`], and as [`send`](Self::send).
    pub fn try_send(&mut self, msg: &T) -> Result<(), TrySendError> {
        self.write(msg, Wait::Never).map_err(TrySendError::new)
    }

    /// Publishes `msg`, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`SendTimeoutError::Timeout`], and as [`send`](Self::send).
    pub fn send_timeout(&mut self, msg: &T, timeout: Duration) -> Result<(), SendTimeoutError> {
        self.write(msg, Wait::For(timeout))
            .map_err(SendTimeoutError::new)
    }

    /// Publishes `msg`, waiting until `deadline` for room.
    ///
    /// # Errors
    ///
    /// [`SendTimeoutError::Timeout`], and as [`send`](Self::send).
    pub fn send_deadline(&mut self, msg: &T, deadline: Instant) -> Result<(), SendTimeoutError> {
        self.write(msg, Wait::Until(Some(deadline)))
            .map_err(SendTimeoutError::new)
    }

    /// Zero-copy publishing: `len` bytes of the ring, reserved now (no wait), to be filled
    /// with **one encoding of a `T` by the topic's codec `C`** and published with
    /// [`WriteGuard::commit`] (or [`WriteGuard::commit_len`] for fewer bytes). Dropping the
    /// guard publishes nothing. This is the ring's own guard: nothing checks that the bytes
    /// decode, and a subscriber receives [`RecvError::Decode`](super::RecvError::Decode) for
    /// bytes that do not. Natural with [`Plain`](crate::codec::Plain) (a `T` by `memcpy`)
    /// and [`Raw`](crate::codec::Raw) topics.
    ///
    /// ```
    /// use shmbus::codec::Plain;
    /// let topic = format!("doc/loan/{}", std::process::id());
    /// let mut publisher = shmbus::topic::publisher::<[u32; 4]>().codec::<Plain>().create(&topic)?;
    /// let mut sub = shmbus::topic::subscriber::<[u32; 4]>().codec::<Plain>().open(&topic)?;
    /// let mut slot = publisher.loan(16)?;
    /// slot.copy_from_slice(shmbus::bytemuck::bytes_of(&[1u32, 2, 3, 4]));
    /// slot.commit();
    /// assert_eq!(sub.recv()?, [1, 2, 3, 4]);
    /// # drop(sub); shmbus::topic::remove(&topic)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`], [`TrySendError::TooLarge`] for more than the maximum message,
    /// [`TrySendError::Corrupt`].
    pub fn loan(&mut self, len: usize) -> Result<WriteGuard<'_, Broadcast>, TrySendError> {
        let max = self.max;
        self.reserve(len, None)
            .map_err(|e| TrySendError::new(SendFailure::from_push(e, max)))
    }

    /// As [`loan`](Self::loan), waiting until `deadline` for room.
    ///
    /// # Errors
    ///
    /// [`SendTimeoutError::Timeout`], and as [`loan`](Self::loan).
    pub fn loan_deadline(
        &mut self,
        len: usize,
        deadline: Instant,
    ) -> Result<WriteGuard<'_, Broadcast>, SendTimeoutError> {
        let max = self.max;
        self.reserve(len, Some(deadline))
            .map_err(|e| SendTimeoutError::new(SendFailure::from_push(e, max)))
    }

    fn reserve(
        &mut self,
        len: usize,
        deadline: Option<Instant>,
    ) -> Result<WriteGuard<'_, Broadcast>, PushError> {
        if len > self.max {
            return Err(PushError::TooLarge { len, max: self.max });
        }
        match deadline {
            None => self.producer.reserve(len),
            Some(d) => self.producer.reserve_deadline(len, Some(d)),
        }
    }

    /// The subscribers attached now, from their cursor lines: tethered or not, how far
    /// behind, how often lapped (a snapshot).
    pub fn subscribers(&self) -> Vec<SubscriberInfo> {
        self.ring.subscribers()
    }

    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The largest encoded message the topic takes, in bytes.
    pub fn max_message(&self) -> usize {
        self.max
    }

    /// Messages published on the topic so far, by this publisher and its predecessors.
    pub fn published(&self) -> u64 {
        self.ring.published()
    }

    /// The policy for tethered subscribers that leave no room.
    pub fn slow_subscribers(&self) -> SlowSubscribers {
        self.producer.slow_subscribers()
    }

    /// Changes the policy for tethered subscribers that leave no room.
    pub fn set_slow_subscribers(&mut self, policy: SlowSubscribers) {
        self.producer.set_slow_subscribers(policy);
    }

    /// Sets how blocking publishes wait.
    pub fn set_wait_strategy(&mut self, wait: WaitStrategy) {
        self.settings.wait = wait;
        self.producer.set_wait_strategy(wait);
    }

    /// Sets how often a waiting publish checks that the subscribers holding it up are alive.
    pub fn set_probe_interval(&mut self, interval: Duration) {
        self.settings.probe = interval;
        self.producer.set_probe_interval(interval);
    }

    /// The ring underneath, for monitoring and for its own API.
    pub fn ring(&self) -> &BroadcastRing {
        &self.ring
    }
}
