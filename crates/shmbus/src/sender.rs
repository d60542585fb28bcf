//! The sending end of a channel.

use crate::codec::{Bincode, Codec};
use crate::error::{SendError, SendFailure, SendTimeoutError, TrySendError};
use crate::flavor::{self, Flavor, Mpmc, Ring, Settings, Spsc, Wait};
use crate::select::{sealed, SelectSend};
use shmbus_ring::select::Doorbell;
use shmbus_ring::{Producer, PushError, WaitStrategy};
use std::marker::PhantomData;
use std::time::{Duration, Instant};

/// The sending end of a channel: one endpoint of the ring.
///
/// A message is encoded in one pass straight into space reserved in the ring, with no
/// intermediate buffer and no allocation (for codecs that do not allocate while encoding); see
/// [`codec`](crate::codec). [`send_ref`](Self::send_ref) and its variants send from a
/// reference, so that one value, with what it owns, serves for every message. Sending takes `&mut self`: a sender is one endpoint, used by one thread at a
/// time. MPMC senders are `Clone`, each clone a new endpoint; an SPSC channel has one sender.
///
/// ```
/// let ch = shmbus::channel::<Vec<u32>>().capacity(2).max_message(64).in_process()?;
/// let (mut tx, mut rx) = (ch.sender()?, ch.receiver()?);
/// tx.send(vec![1, 2, 3])?;
/// assert_eq!(rx.recv()?, vec![1, 2, 3]);
/// // Too large for the channel: an error at the call, and the message comes back.
/// let err = tx.try_send(vec![7; 100]).unwrap_err();
/// assert!(matches!(err, shmbus::TrySendError::TooLarge { len: 101, max: 64, .. }));
/// assert_eq!(err.into_inner().len(), 100);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Sender<T, F: Flavor = Spsc, C = Bincode> {
    producer: Producer<F>,
    ring: Ring<F>,
    max: usize,
    settings: Settings,
    /// Identity, for [`SelectedOperation::send`](crate::SelectedOperation::send).
    id: u64,
    _types: PhantomData<fn(T) -> C>,
}

impl<T, F: Flavor, C> std::fmt::Debug for Sender<T, F, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("type", &std::any::type_name::<T>())
            .field("flavor", &<F as Flavor>::NAME)
            .field("ring", &self.ring)
            .field("max_message", &self.max)
            .finish_non_exhaustive()
    }
}

impl<T, F: Flavor, C> Sender<T, F, C> {
    /// The ring endpoint, for the asynchronous layer's doorbell and permits.
    #[cfg(feature = "tokio")]
    pub(crate) fn producer_mut(&mut self) -> &mut Producer<F> {
        &mut self.producer
    }
}

impl<T, F: Flavor, C: Codec<T>> Sender<T, F, C> {
    pub(crate) fn new(producer: Producer<F>, ring: Ring<F>, settings: Settings) -> Self {
        Sender {
            producer,
            max: ring.max_message(),
            ring,
            settings,
            id: crate::select::next_id(),
            _types: PhantomData,
        }
    }

    /// Encodes `msg` into the ring in one pass: reserves the largest message the channel
    /// takes, encodes into the reservation and publishes what was written. Anything else (no
    /// room for the largest message, a message larger than it, an encoding error, a
    /// disconnected or corrupt ring) goes to the measuring path, which decides exactly as a
    /// send always has: measure, `TooLarge` before anything is waited for, reserve exactly
    /// the encoded length, wait as `wait` says. Codecs whose length is known without a pass
    /// ([`Codec::MEASURE_FIRST`]) take the measuring path directly.
    ///
    /// A full reservation never makes the channel look full when the message itself fits:
    /// a channel's SPSC ring has room for `capacity + 1` records of the maximum size
    /// (`Kind::config_for`) and the ring refuses a message beyond `capacity` before it
    /// looks for room, so with fewer than `capacity` messages in it there is always room for
    /// the largest (with the padding of a wrap); an MPMC slot is the maximum size whatever
    /// the message (DECISIONS D56).
    #[inline]
    pub(crate) fn write(&mut self, msg: &T, wait: Wait) -> Result<(), SendFailure> {
        if C::MEASURE_FIRST {
            return self.write_measured(msg, wait);
        }
        if let Ok(mut r) = self.producer.reserve_up_to(self.max) {
            if let Ok(n) = C::encode(msg, &mut r) {
                r.commit_len(n);
                return Ok(());
            }
            // Dropping the reservation abandons it: nothing becomes visible.
        }
        self.write_fallback(msg, wait)
    }

    /// The measuring path when the one-pass attempt did not succeed: out of line, so that the
    /// hot path stays small.
    #[cold]
    #[inline(never)]
    fn write_fallback(&mut self, msg: &T, wait: Wait) -> Result<(), SendFailure> {
        self.write_measured(msg, wait)
    }

    /// Encodes `msg` into the ring: its exact encoded length is reserved and written in place.
    #[inline]
    fn write_measured(&mut self, msg: &T, wait: Wait) -> Result<(), SendFailure> {
        let len = C::encoded_len(msg).map_err(SendFailure::Encode)?;
        if len > self.max {
            return Err(SendFailure::TooLarge { len, max: self.max });
        }
        match flavor::write(&mut self.producer, len, wait, |buf| C::encode(msg, buf)) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(SendFailure::Encode(e)),
            Err(e) => Err(match e {
                PushError::Full => SendFailure::Full,
                PushError::Timeout => SendFailure::Timeout,
                PushError::Disconnected => SendFailure::Disconnected,
                PushError::TooLarge { len, max } => SendFailure::TooLarge { len, max },
                PushError::Corrupt(c) => SendFailure::Corrupt(c),
                // `TooMany` is for batches; a single message can only be too large.
                _ => SendFailure::TooLarge { len, max: self.max },
            }),
        }
    }

    /// A blocking send without a deadline: waits while the channel is full.
    #[inline]
    fn write_blocking(&mut self, msg: &T) -> Result<(), SendFailure> {
        loop {
            match self.write(msg, Wait::Until(None)) {
                // Not returned by a wait without a deadline; waiting again is the right answer.
                Err(SendFailure::Full | SendFailure::Timeout) => {}
                done => return done,
            }
        }
    }

    /// Sends `msg`, waiting while the channel is full.
    ///
    /// # Errors
    ///
    /// [`SendError::Disconnected`] when every receiver is gone; [`SendError::TooLarge`] at
    /// once, without waiting; [`SendError::Encode`]; [`SendError::Corrupt`]. The message comes
    /// back in every case. A receiver that stays attached but never receives makes this wait
    /// for ever: use [`send_timeout`](Self::send_timeout) where that matters.
    #[inline]
    pub fn send(&mut self, msg: T) -> Result<(), SendError<T>> {
        self.write_blocking(&msg)
            .map_err(|failure| SendError::new(failure, msg))
    }

    /// Sends a copy of `*msg`, waiting while the channel is full: [`send`](Self::send)
    /// without taking the message, so that the caller keeps it, and what it owns, for the next
    /// one (a sender that reuses one value allocates nothing per message). The errors carry
    /// `()` where [`send`](Self::send)'s carry the message.
    ///
    /// ```
    /// let ch = shmbus::channel::<(u32, String)>().max_message(32).in_process()?;
    /// let (mut tx, mut rx) = (ch.sender()?, ch.receiver()?);
    /// let mut msg = (0, String::with_capacity(16));
    /// for i in 1..=3 {
    ///     msg.0 = i;
    ///     msg.1.clear();
    ///     msg.1.push_str("tick");
    ///     tx.send_ref(&msg)?; // the same String each time
    /// }
    /// assert_eq!(rx.recv()?, (1, "tick".to_string()));
    /// msg.1 = "x".repeat(40);
    /// assert!(matches!(tx.send_ref(&msg), Err(shmbus::SendError::TooLarge { msg: (), .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    #[inline]
    pub fn send_ref(&mut self, msg: &T) -> Result<(), SendError<()>> {
        self.write_blocking(msg)
            .map_err(|failure| SendError::new(failure, ()))
    }

    /// Sends a copy of `*msg` if there is room now: [`try_send`](Self::try_send) without
    /// taking the message, as [`send_ref`](Self::send_ref).
    ///
    /// ```
    /// let ch = shmbus::channel::<Vec<u8>>().capacity(1).in_process()?;
    /// let mut tx = ch.sender()?;
    /// let msg = vec![1, 2, 3];
    /// tx.try_send_ref(&msg)?;
    /// assert!(tx.try_send_ref(&msg).unwrap_err().is_full());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`try_send`](Self::try_send).
    #[inline]
    pub fn try_send_ref(&mut self, msg: &T) -> Result<(), TrySendError<()>> {
        self.write(msg, Wait::Never)
            .map_err(|failure| TrySendError::new(failure, ()))
    }

    /// Sends a copy of `*msg`, waiting at most `timeout` while the channel is full:
    /// [`send_timeout`](Self::send_timeout) without taking the message, as
    /// [`send_ref`](Self::send_ref).
    ///
    /// ```
    /// use std::time::Duration;
    /// let ch = shmbus::channel::<u64>().capacity(1).in_process()?;
    /// let mut tx = ch.sender()?;
    /// tx.send_ref_timeout(&1, Duration::from_millis(1))?;
    /// let late = tx.send_ref_timeout(&2, Duration::from_millis(1));
    /// assert!(late.unwrap_err().is_timeout());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`send_timeout`](Self::send_timeout).
    #[inline]
    pub fn send_ref_timeout(
        &mut self,
        msg: &T,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<()>> {
        self.write(msg, Wait::For(timeout))
            .map_err(|failure| SendTimeoutError::new(failure, ()))
    }

    /// Sends `msg` if there is room now.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`], and as [`send`](Self::send).
    ///
    /// ```
    /// let ch = shmbus::channel::<u64>().mpmc().capacity(2).in_process()?;
    /// let mut tx = ch.sender()?;
    /// tx.try_send(1)?;
    /// tx.try_send(2)?;
    /// let full = tx.try_send(3).unwrap_err();
    /// assert!(full.is_full());
    /// assert_eq!(full.into_inner(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_send(&mut self, msg: T) -> Result<(), TrySendError<T>> {
        self.write(&msg, Wait::Never)
            .map_err(|failure| TrySendError::new(failure, msg))
    }

    /// Sends `msg`, waiting at most `timeout` while the channel is full.
    ///
    /// # Errors
    ///
    /// [`SendTimeoutError::Timeout`], and as [`send`](Self::send).
    pub fn send_timeout(&mut self, msg: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.write(&msg, Wait::For(timeout))
            .map_err(|failure| SendTimeoutError::new(failure, msg))
    }

    /// Sends `msg`, waiting until `deadline` while the channel is full.
    ///
    /// # Errors
    ///
    /// [`SendTimeoutError::Timeout`], and as [`send`](Self::send).
    pub fn send_deadline(&mut self, msg: T, deadline: Instant) -> Result<(), SendTimeoutError<T>> {
        self.write(&msg, Wait::Until(Some(deadline)))
            .map_err(|failure| SendTimeoutError::new(failure, msg))
    }

    /// The largest encoded message the channel takes, in bytes.
    pub fn max_message(&self) -> usize {
        self.max
    }

    /// Sets how blocking sends wait while the channel is full (the builder's
    /// [`wait_strategy`](crate::ChannelBuilder::wait_strategy) until then). An MPMC clone made
    /// afterwards inherits it.
    ///
    /// ```
    /// use shmbus::ring::WaitStrategy;
    /// let ch = shmbus::channel::<u32>().in_process()?;
    /// let mut tx = ch.sender()?;
    /// tx.set_wait_strategy(WaitStrategy::Spin);
    /// tx.send(1)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_wait_strategy(&mut self, wait: WaitStrategy) {
        self.settings.wait = wait;
        self.producer.set_wait_strategy(wait);
    }

    /// Sets how often this sender, while the channel is full, checks whether the receivers'
    /// processes are alive, reaps dead ones and repairs what they held (the builder's
    /// [`probe_interval`](crate::ChannelBuilder::probe_interval) until then, by default 20 ms).
    /// A blocked send wakes this often to check, and reports
    /// [`Disconnected`](crate::SendError::Disconnected) once the last receiver is found dead.
    /// An MPMC clone made afterwards inherits it.
    ///
    /// ```
    /// use std::time::Duration;
    /// let ch = shmbus::channel::<u32>().mpmc().capacity(2).in_process()?;
    /// let (mut tx, rx) = (ch.sender()?, ch.receiver()?);
    /// tx.set_probe_interval(Duration::from_millis(5));
    /// tx.send(1)?;
    /// drop(rx); // the last receiver is gone
    /// assert!(tx.send(2).unwrap_err().is_disconnected());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_probe_interval(&mut self, interval: Duration) {
        self.settings.probe = interval;
        self.producer.set_probe_interval(interval);
    }
}

impl<T, F: Flavor, C: Codec<T>> Sender<T, F, C> {
    /// How many messages are in the channel now.
    ///
    /// ```
    /// let ch = shmbus::channel::<u8>().capacity(2).in_process()?;
    /// let mut tx = ch.sender()?;
    /// assert_eq!((tx.len(), tx.is_empty(), tx.is_full(), tx.capacity()), (0, true, false, Some(2)));
    /// tx.send(1)?;
    /// tx.send(2)?;
    /// assert_eq!((tx.len(), tx.is_empty(), tx.is_full()), (2, false, true));
    /// assert!(tx.try_send(3).unwrap_err().is_full());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        self.ring.len().unwrap_or(0)
    }

    /// Whether the channel holds no message now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the channel is full now: it holds [`capacity`](Self::capacity) messages, or has
    /// no room for another (the ring's [`Producer::is_full`](shmbus_ring::Producer::is_full)),
    /// so that [`try_send`](Self::try_send) would return [`Full`](crate::TrySendError::Full).
    pub fn is_full(&mut self) -> bool {
        self.producer.is_full()
    }

    /// How many messages the channel holds at most: `Some(n)` for the builder's
    /// [`capacity`](crate::ChannelBuilder::capacity) (channels are always bounded).
    pub fn capacity(&self) -> Option<usize> {
        self.ring.capacity()
    }
}

impl<T, F: Flavor, C: Codec<T>> sealed::Handle for Sender<T, F, C> {
    fn id(&self) -> u64 {
        self.id
    }

    fn try_select(&mut self, _probe: bool) -> bool {
        // Room, or a channel whose receivers are gone or whose ring is corrupt: the send is
        // ready (in the last two cases it returns the error). `check_peers` probes and audits
        // as a blocked send does when the probe interval has passed.
        !self.producer.is_full() || self.producer.check_peers().is_err()
    }

    fn doorbell(&self) -> Option<Doorbell> {
        Some(self.producer.doorbell())
    }

    fn probe_interval(&self) -> Option<Duration> {
        Some(self.producer.probe_interval())
    }

    fn deadline(&self) -> Option<Instant> {
        None
    }

    fn wait_strategy(&self) -> Option<WaitStrategy> {
        Some(self.settings.wait)
    }
}

impl<T, F: Flavor, C: Codec<T>> SelectSend for Sender<T, F, C> {
    type Item = T;

    fn complete_send(&mut self, msg: T, _: sealed::Token) -> Result<(), SendError<T>> {
        self.send(msg)
    }
}

impl<T, C: Codec<T>> Sender<T, Mpmc, C> {
    /// A new sender endpoint on the same MPMC ring (what [`Clone`] does), or the error that
    /// prevented it.
    ///
    /// # Errors
    ///
    /// [`Error::Ring`](crate::Error::Ring) with `TooManyEndpoints` when the ring's endpoint
    /// table is full.
    pub fn try_clone(&self) -> Result<Self, crate::Error> {
        let producer = self.settings.producer(self.ring.producer()?);
        Ok(Sender::new(producer, self.ring.clone(), self.settings))
    }
}

impl<T, C: Codec<T>> Clone for Sender<T, Mpmc, C> {
    /// A new sender endpoint on the same ring.
    ///
    /// # Panics
    ///
    /// When the ring's endpoint table is full (55 endpoints, senders and receivers together,
    /// across all processes); [`try_clone`](Sender::try_clone) returns that as an error.
    fn clone(&self) -> Self {
        self.try_clone()
            .unwrap_or_else(|e| panic!("cloning an MPMC sender: {e}"))
    }
}
