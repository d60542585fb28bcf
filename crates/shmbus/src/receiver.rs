//! The receiving end of a channel, and its iterators.

use crate::codec::{Bincode, Codec, CodecError};
use crate::error::{RecvError, RecvFailure, RecvTimeoutError, TryRecvError};
use crate::flavor::{self, Flavor, Mpmc, Ring, Settings, Spsc, Wait};
use crate::select::{sealed, SelectRecv};
use shmbus_ring::select::Doorbell;
use shmbus_ring::{Consumer, PopError, WaitStrategy};
use std::iter::FusedIterator;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

/// The largest receive buffer a receiver allocates up front.
const PREALLOCATED_BUFFER: usize = 64 << 10;

/// The receiving end of a channel: one endpoint of the ring.
///
/// A message is copied out of shared memory into a buffer the receiver owns and reuses, and
/// decoded from there: a peer that rewrites the ring cannot change the bytes under the
/// decoder. Decoding runs under the codec's limit. A message that fails to decode is an error
/// for that message ([`RecvError::Decode`]); the next call receives the next one.
/// [`Plain`](crate::codec::Plain) and [`Raw`](crate::codec::Raw) messages are decoded by the
/// copy itself. [`recv_into`](Self::recv_into) decodes into a value the caller reuses, and
/// [`recv_with`](Self::recv_with) lends a value the receiver reuses: with them, messages whose
/// `String` and `Vec` fields own heap memory are received without allocating.
///
/// MPMC receivers are `Clone`, each clone a new endpoint; an SPSC channel has one receiver.
///
/// ```
/// use std::time::Duration;
/// let ch = shmbus::channel::<String>().in_process()?;
/// let (mut tx, mut rx) = (ch.sender()?, ch.receiver()?);
/// assert!(rx.try_recv().unwrap_err().is_empty());
/// assert!(rx.recv_timeout(Duration::from_millis(1)).unwrap_err().is_timeout());
/// tx.send("a".into())?;
/// tx.send("b".into())?;
/// assert_eq!(rx.try_iter().collect::<Vec<_>>(), ["a", "b"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Receiver<T, F: Flavor = Spsc, C = Bincode> {
    consumer: Consumer<F>,
    ring: Ring<F>,
    buf: Vec<u8>,
    settings: Settings,
    /// Identity, for [`SelectedOperation::recv`](crate::SelectedOperation::recv).
    id: u64,
    /// What a select took from the ring for this receiver and the next receive returns.
    staged: Option<Staged>,
    /// The value [`recv_with`](Self::recv_with) decodes into and lends, reused from message
    /// to message: a `T`, type-erased so that the receiver stays `Send` and `Sync` whatever
    /// `T` is (`recv_with` asks `T: Send + Sync + 'static`).
    scratch: Option<Scratch>,
    _types: PhantomData<fn() -> (T, C)>,
}

/// [`Receiver::recv_with`]'s value, allocated once.
type Scratch = Box<dyn std::any::Any + Send + Sync>;

/// A receive a select completed: the message's bytes in `buf[..len]`, or the error it met.
#[derive(Debug)]
enum Staged {
    Message(usize),
    Failure(RecvFailure),
}

impl<T, F: Flavor, C> std::fmt::Debug for Receiver<T, F, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("type", &std::any::type_name::<T>())
            .field("flavor", &<F as Flavor>::NAME)
            .field("ring", &self.ring)
            .finish_non_exhaustive()
    }
}

impl<T, F: Flavor, C: Codec<T>> Receiver<T, F, C> {
    pub(crate) fn new(consumer: Consumer<F>, ring: Ring<F>, settings: Settings) -> Self {
        // Room for any message up to 64 KiB from the start, so that receiving allocates
        // nothing; a channel of larger messages grows the buffer to the largest one seen.
        let buf = if C::DECODES_BY_COPY {
            Vec::new()
        } else {
            vec![0; ring.max_message().min(PREALLOCATED_BUFFER)]
        };
        Receiver {
            consumer,
            ring,
            buf,
            settings,
            id: crate::select::next_id(),
            staged: None,
            scratch: None,
            _types: PhantomData,
        }
    }

    /// Decodes the staged receive with `decode`, if a select left one.
    #[cold]
    fn take_staged<R>(
        &mut self,
        decode: impl FnOnce(&[u8]) -> Result<R, CodecError>,
    ) -> Option<Result<R, RecvFailure>> {
        match self.staged.take()? {
            Staged::Message(len) => Some(decode(&self.buf[..len]).map_err(RecvFailure::Decode)),
            Staged::Failure(f) => Some(Err(f)),
        }
    }

    /// Takes the next message's bytes into `buf` (for a select), waiting as `wait` says.
    fn stage(&mut self, wait: Wait) -> bool {
        if self.staged.is_some() {
            return true;
        }
        let Receiver { consumer, buf, .. } = self;
        self.staged = match copy_out(consumer, wait, buf) {
            Ok(len) => Some(Staged::Message(len)),
            Err(PopError::Empty | PopError::Timeout) => None,
            Err(e) => Some(Staged::Failure(failure(e))),
        };
        self.staged.is_some()
    }

    #[inline]
    pub(crate) fn read(&mut self, wait: Wait) -> Result<T, RecvFailure> {
        self.read_with(wait, C::decode)
    }

    /// Takes the next message (a staged one first), waiting as `wait` says, and decodes it
    /// with `decode`: [`Codec::decode`] for a new value, [`Codec::decode_into`] for an
    /// existing one.
    #[inline]
    fn read_with<R>(
        &mut self,
        wait: Wait,
        mut decode: impl FnMut(&[u8]) -> Result<R, CodecError>,
    ) -> Result<R, RecvFailure> {
        if self.staged.is_some() {
            if let Some(staged) = self.take_staged(&mut decode) {
                return staged;
            }
        }
        let Receiver { consumer, buf, .. } = self;
        let popped = if C::DECODES_BY_COPY && !consumer.ring().checksum() {
            // The decode is the copy out of shared memory.
            flavor::read(consumer, wait, &mut decode)
        } else {
            // Copy out first, by the ring's own copy (small messages inline; a checksum ring
            // verifies the copy, as a view of shared memory could change after its check),
            // then decode the private copy. The ring frees the message's room before the
            // decode starts.
            copy_out(consumer, wait, buf).map(|n| decode(&buf[..n]))
        };
        match popped {
            Ok(decoded) => decoded.map_err(RecvFailure::Decode),
            Err(e) => Err(failure(e)),
        }
    }

    /// Decodes the next message into `place`, waiting as `wait` says.
    #[inline]
    pub(crate) fn read_into(&mut self, place: &mut T, wait: Wait) -> Result<(), RecvFailure> {
        self.read_with(wait, |bytes| C::decode_into(bytes, place))
    }

    /// Decodes the next message into the scratch value (a new value the first time) and lends
    /// it to `f`.
    #[inline]
    pub(crate) fn read_lent<R>(
        &mut self,
        wait: Wait,
        f: impl FnOnce(&T) -> R,
    ) -> Result<R, RecvFailure>
    where
        T: Send + Sync + 'static,
    {
        let mut scratch = self.scratch.take().and_then(|b| b.downcast::<T>().ok());
        let decoded = self.read_with(wait, |bytes| match scratch.take() {
            Some(mut value) => match C::decode_into(bytes, &mut value) {
                Ok(()) => Ok(value),
                Err(e) => {
                    // Kept: `decode_into` leaves a valid value, which the next decode
                    // overwrites.
                    scratch = Some(value);
                    Err(e)
                }
            },
            None => C::decode(bytes).map(Box::new),
        });
        let value = match decoded {
            Ok(value) => value,
            Err(failure) => {
                self.scratch = scratch.map(|b| b as Scratch);
                return Err(failure);
            }
        };
        let lent = f(&value);
        self.scratch = Some(value);
        Ok(lent)
    }

    /// The ring endpoint, for the asynchronous layer's doorbell.
    #[cfg(feature = "tokio")]
    pub(crate) fn consumer_mut(&mut self) -> &mut shmbus_ring::Consumer<F> {
        &mut self.consumer
    }

    /// Receives the next message, waiting while the channel is empty.
    ///
    /// # Errors
    ///
    /// [`RecvError::Disconnected`] once the channel is drained and every sender is gone;
    /// [`RecvError::Decode`] for a message that cannot be decoded (consumed; call again for
    /// the next); [`RecvError::Corrupt`]. A sender that stays attached but never sends makes
    /// this wait for ever: use [`recv_timeout`](Self::recv_timeout) where that matters.
    #[inline]
    pub fn recv(&mut self) -> Result<T, RecvError> {
        loop {
            match self.read(Wait::Until(None)) {
                Ok(msg) => return Ok(msg),
                // Not returned by a wait without a deadline; waiting again is the right answer.
                Err(RecvFailure::Empty | RecvFailure::Timeout) => {}
                Err(failure) => return Err(RecvError::new(failure)),
            }
        }
    }

    /// Receives the next message if one is waiting.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`], and as [`recv`](Self::recv).
    #[inline]
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

    /// Receives the next message into `place`, waiting while the channel is empty:
    /// [`recv`](Self::recv) that reuses what `place` owns. The codec decodes in place
    /// ([`Codec::decode_into`]): with bincode or postcard the `String` and `Vec` fields of a
    /// type whose `Deserialize` is derived keep their allocations, so that a receiver that
    /// reuses one value allocates nothing per message once its fields have grown to the
    /// largest message.
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// #[derive(Serialize, Deserialize, Debug, Default, PartialEq)]
    /// struct Line { no: u32, text: String }
    ///
    /// let ch = shmbus::channel::<Line>().in_process()?;
    /// let (mut tx, mut rx) = (ch.sender()?, ch.receiver()?);
    /// let mut line = Line { no: 0, text: String::with_capacity(64) };
    /// for (no, text) in [(1, "first"), (2, "second")] {
    ///     tx.send(Line { no, text: text.into() })?;
    ///     rx.recv_into(&mut line)?;
    ///     assert_eq!((line.no, line.text.as_str(), line.text.capacity()), (no, text, 64));
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv). After [`RecvError::Decode`] (the message is consumed; the
    /// next call receives the next one) `place` holds a valid but unspecified value; after
    /// any other error it is untouched.
    #[inline]
    pub fn recv_into(&mut self, place: &mut T) -> Result<(), RecvError> {
        loop {
            match self.read_into(place, Wait::Until(None)) {
                // Not returned by a wait without a deadline; waiting again is the right answer.
                Err(RecvFailure::Empty | RecvFailure::Timeout) => {}
                done => return done.map_err(RecvError::new),
            }
        }
    }

    /// Receives the next message into `place` if one is waiting:
    /// [`try_recv`](Self::try_recv) that reuses what `place` owns, as
    /// [`recv_into`](Self::recv_into).
    ///
    /// ```
    /// let ch = shmbus::channel::<Vec<u16>>().in_process()?;
    /// let (mut tx, mut rx) = (ch.sender()?, ch.receiver()?);
    /// let mut got = Vec::with_capacity(8);
    /// assert!(rx.try_recv_into(&mut got).unwrap_err().is_empty());
    /// tx.send(vec![1, 2, 3])?;
    /// rx.try_recv_into(&mut got)?;
    /// assert_eq!((got.as_slice(), got.capacity()), (&[1, 2, 3][..], 8));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`try_recv`](Self::try_recv), and `place` as [`recv_into`](Self::recv_into) says.
    #[inline]
    pub fn try_recv_into(&mut self, place: &mut T) -> Result<(), TryRecvError> {
        self.read_into(place, Wait::Never)
            .map_err(TryRecvError::new)
    }

    /// Receives the next message into `place`, waiting at most `timeout`:
    /// [`recv_timeout`](Self::recv_timeout) that reuses what `place` owns, as
    /// [`recv_into`](Self::recv_into).
    ///
    /// ```
    /// use std::time::Duration;
    /// let ch = shmbus::channel::<String>().in_process()?;
    /// let (mut tx, mut rx) = (ch.sender()?, ch.receiver()?);
    /// let mut got = String::new();
    /// let wait = Duration::from_millis(1);
    /// assert!(rx.recv_into_timeout(&mut got, wait).unwrap_err().is_timeout());
    /// tx.send("late".into())?;
    /// rx.recv_into_timeout(&mut got, wait)?;
    /// assert_eq!(got, "late");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](Self::recv_timeout), and `place` as
    /// [`recv_into`](Self::recv_into) says.
    #[inline]
    pub fn recv_into_timeout(
        &mut self,
        place: &mut T,
        timeout: Duration,
    ) -> Result<(), RecvTimeoutError> {
        self.read_into(place, Wait::For(timeout))
            .map_err(RecvTimeoutError::new)
    }

    /// Receives the next message, waiting while the channel is empty, and lends it to `f`:
    /// no value is handed out, so none is allocated. The receiver decodes into a value it
    /// keeps for the purpose, in place as [`recv_into`](Self::recv_into) does (the first
    /// message makes it), and returns what `f` returns. The value outlives the call only as
    /// storage: it holds the last message received this way until the next one, and is
    /// dropped with the receiver. (It is kept type-erased, allocated once with the first
    /// message, hence the bounds: the receiver stays `Send` and `Sync` whatever `T` is.)
    ///
    /// ```
    /// let ch = shmbus::channel::<(u32, String)>().in_process()?;
    /// let (mut tx, mut rx) = (ch.sender()?, ch.receiver()?);
    /// tx.send((7, "seven".into()))?;
    /// tx.send((8, "eight".into()))?;
    /// let mut total = 0;
    /// for _ in 0..2 {
    ///     total += rx.recv_with(|(n, name)| n + name.len() as u32)?;
    /// }
    /// assert_eq!(total, 7 + 5 + 8 + 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv); `f` is not called.
    #[inline]
    pub fn recv_with<R>(&mut self, f: impl FnOnce(&T) -> R) -> Result<R, RecvError>
    where
        T: Send + Sync + 'static,
    {
        // Waits (through the read's own wait) until a message or an error; `f` runs once.
        let mut f = Some(f);
        loop {
            let lend = |msg: &T| f.take().map(|f| f(msg));
            match self.read_lent(Wait::Until(None), lend) {
                Ok(Some(lent)) => return Ok(lent),
                // Not returned by a wait without a deadline; waiting again is the right answer.
                Ok(None) | Err(RecvFailure::Empty | RecvFailure::Timeout) => {}
                Err(failure) => return Err(RecvError::new(failure)),
            }
        }
    }

    /// Lends the next message to `f` if one is waiting: [`try_recv`](Self::try_recv) as
    /// [`recv_with`](Self::recv_with) lends.
    ///
    /// ```
    /// let ch = shmbus::channel::<Vec<u8>>().in_process()?;
    /// let (mut tx, mut rx) = (ch.sender()?, ch.receiver()?);
    /// assert!(rx.try_recv_with(|v| v.len()).unwrap_err().is_empty());
    /// tx.send(vec![1, 2, 3])?;
    /// assert_eq!(rx.try_recv_with(|v| v.iter().sum::<u8>())?, 6);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`try_recv`](Self::try_recv); `f` is not called.
    #[inline]
    pub fn try_recv_with<R>(&mut self, f: impl FnOnce(&T) -> R) -> Result<R, TryRecvError>
    where
        T: Send + Sync + 'static,
    {
        self.read_lent(Wait::Never, f).map_err(TryRecvError::new)
    }

    /// Lends the next message to `f`, waiting at most `timeout`:
    /// [`recv_timeout`](Self::recv_timeout) as [`recv_with`](Self::recv_with) lends.
    ///
    /// ```
    /// use std::time::Duration;
    /// let ch = shmbus::channel::<u64>().in_process()?;
    /// let (mut tx, mut rx) = (ch.sender()?, ch.receiver()?);
    /// let wait = Duration::from_millis(1);
    /// assert!(rx.recv_with_timeout(|n| *n, wait).unwrap_err().is_timeout());
    /// tx.send(41)?;
    /// assert_eq!(rx.recv_with_timeout(|n| n + 1, wait)?, 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](Self::recv_timeout); `f` is not called.
    #[inline]
    pub fn recv_with_timeout<R>(
        &mut self,
        f: impl FnOnce(&T) -> R,
        timeout: Duration,
    ) -> Result<R, RecvTimeoutError>
    where
        T: Send + Sync + 'static,
    {
        self.read_lent(Wait::For(timeout), f)
            .map_err(RecvTimeoutError::new)
    }

    /// A blocking iterator over messages: each `next` is a [`recv`](Self::recv). It ends when
    /// `recv` returns an error: at disconnection (every sender gone, channel drained), and
    /// also at a message that cannot be decoded or at corruption, which a loop over `recv`
    /// can tell apart and go on from.
    ///
    /// ```
    /// let ch = shmbus::channel::<u8>().in_process()?;
    /// let (mut tx, mut rx) = (ch.sender()?, ch.receiver()?);
    /// let t = std::thread::spawn(move || {
    ///     for i in 0..3 {
    ///         tx.send(i).unwrap();
    ///     }
    /// });
    /// let got: Vec<u8> = rx.iter().take(3).collect();
    /// assert_eq!(got, [0, 1, 2]);
    /// t.join().unwrap();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter(&mut self) -> Iter<'_, T, F, C> {
        Iter {
            rx: self,
            done: false,
        }
    }

    /// A non-blocking iterator over the messages waiting now: each `next` is a
    /// [`try_recv`](Self::try_recv), and it ends at the first error (empty included).
    pub fn try_iter(&mut self) -> TryIter<'_, T, F, C> {
        TryIter {
            rx: self,
            done: false,
        }
    }

    /// The largest encoded message the channel carries, in bytes.
    pub fn max_message(&self) -> usize {
        self.ring.max_message()
    }

    /// Sets how blocking receives wait while the channel is empty (the builder's
    /// [`wait_strategy`](crate::ChannelBuilder::wait_strategy) until then). An MPMC clone made
    /// afterwards inherits it.
    ///
    /// ```
    /// use shmbus::ring::WaitStrategy;
    /// let ch = shmbus::channel::<u32>().in_process()?;
    /// let (mut tx, mut rx) = (ch.sender()?, ch.receiver()?);
    /// rx.set_wait_strategy(WaitStrategy::Spin);
    /// tx.send(1)?;
    /// assert_eq!(rx.recv()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_wait_strategy(&mut self, wait: WaitStrategy) {
        self.settings.wait = wait;
        self.consumer.set_wait_strategy(wait);
    }

    /// Sets how often this receiver, while the channel is empty, checks whether the senders'
    /// processes are alive, reaps dead ones and repairs what they held (the builder's
    /// [`probe_interval`](crate::ChannelBuilder::probe_interval) until then, by default 20 ms).
    /// A blocked receive wakes this often to check, and reports
    /// [`Disconnected`](crate::RecvError::Disconnected) once the last sender is found dead and
    /// everything it sent has been received. An MPMC clone made afterwards inherits it.
    ///
    /// ```
    /// use std::time::Duration;
    /// let ch = shmbus::channel::<u32>().in_process()?;
    /// let (mut tx, mut rx) = (ch.sender()?, ch.receiver()?);
    /// rx.set_probe_interval(Duration::from_millis(5));
    /// tx.send(1)?;
    /// drop(tx); // the last sender is gone: what it sent is still received, then Disconnected
    /// assert_eq!(rx.recv()?, 1);
    /// assert!(rx.recv().is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_probe_interval(&mut self, interval: Duration) {
        self.settings.probe = interval;
        self.consumer.set_probe_interval(interval);
    }
}

/// What a receive reports for a ring's pop error.
#[inline]
fn failure(e: PopError) -> RecvFailure {
    match e {
        PopError::Empty => RecvFailure::Empty,
        PopError::Timeout => RecvFailure::Timeout,
        PopError::Corrupt(c) => RecvFailure::Corrupt(c),
        PopError::Checksum(m) => RecvFailure::Checksum(m),
        // `BufferTooSmall` does not reach here: `pop_private` grows the buffer and pops again,
        // then sizes it to the message. Later variants are treated as the end of the channel.
        _ => RecvFailure::Disconnected,
    }
}

// `is_empty` takes `&mut self` (above); `len` does not need to.
#[allow(clippy::len_without_is_empty)]
impl<T, F: Flavor, C: Codec<T>> Receiver<T, F, C> {
    /// How many messages are waiting now: those in the channel, plus one a select took for
    /// this receiver (staged) and not yet received.
    ///
    /// ```
    /// let ch = shmbus::channel::<u8>().capacity(4).in_process()?;
    /// let (mut tx, mut rx) = (ch.sender()?, ch.receiver()?);
    /// assert_eq!((rx.len(), rx.is_empty(), rx.capacity()), (0, true, Some(4)));
    /// tx.send(1)?;
    /// assert_eq!((rx.len(), rx.is_empty()), (1, false));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        self.ring.len().unwrap_or(0) + usize::from(matches!(self.staged, Some(Staged::Message(_))))
    }

    /// Whether no message is waiting now: [`try_recv`](Self::try_recv) would not return one.
    /// `&mut self`, as the ring's [`Consumer::is_empty`] (it reads this endpoint's position).
    pub fn is_empty(&mut self) -> bool {
        !matches!(self.staged, Some(Staged::Message(_))) && self.consumer.is_empty()
    }

    /// Whether the channel holds [`capacity`](Self::capacity) messages now.
    pub fn is_full(&self) -> bool {
        self.ring
            .capacity()
            .is_some_and(|cap| self.ring.len().is_some_and(|len| len >= cap))
    }

    /// How many messages the channel holds at most: `Some(n)` for the builder's
    /// [`capacity`](crate::ChannelBuilder::capacity) (channels are always bounded). A message
    /// a select staged in this receiver has left the channel and does not count.
    pub fn capacity(&self) -> Option<usize> {
        self.ring.capacity()
    }
}

impl<T, F: Flavor, C: Codec<T>> sealed::Handle for Receiver<T, F, C> {
    fn id(&self) -> u64 {
        self.id
    }

    fn try_select(&mut self, probe: bool) -> bool {
        // After a sleep of about a probe interval, check the senders' liveness as a blocked
        // receive would (a plain non-blocking pop reads the clock only now and then): a dead
        // sender is reaped, and the pop below sees the channel disconnected.
        if probe && self.staged.is_none() {
            if let Err(e) = self.consumer.check_peers() {
                self.staged = Some(Staged::Failure(failure(e)));
                return true;
            }
        }
        self.stage(Wait::Never)
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

impl<T, F: Flavor, C: Codec<T>> SelectRecv for Receiver<T, F, C> {
    type Item = T;
    type Error = RecvError;

    fn complete_recv(&mut self, _: sealed::Token) -> Result<T, RecvError> {
        // What the select staged, or (if a receive took it since) the next message.
        self.recv()
    }
}

impl<T, C: Codec<T>> Receiver<T, Mpmc, C> {
    /// A new receiver endpoint on the same MPMC ring (what [`Clone`] does), or the error that
    /// prevented it.
    ///
    /// # Errors
    ///
    /// [`Error::Ring`](crate::Error::Ring) with `TooManyEndpoints` when the ring's endpoint
    /// table is full.
    pub fn try_clone(&self) -> Result<Self, crate::Error> {
        let consumer = self.settings.consumer(self.ring.consumer()?);
        Ok(Receiver::new(consumer, self.ring.clone(), self.settings))
    }
}

impl<T, C: Codec<T>> Clone for Receiver<T, Mpmc, C> {
    /// A new receiver endpoint on the same ring.
    ///
    /// # Panics
    ///
    /// When the ring's endpoint table is full (55 endpoints, senders and receivers together,
    /// across all processes); [`try_clone`](Receiver::try_clone) returns that as an error.
    fn clone(&self) -> Self {
        self.try_clone()
            .unwrap_or_else(|e| panic!("cloning an MPMC receiver: {e}"))
    }
}

/// A blocking iterator over a [`Receiver`]'s messages; see [`Receiver::iter`].
#[derive(Debug)]
pub struct Iter<'a, T, F: Flavor = Spsc, C = Bincode> {
    rx: &'a mut Receiver<T, F, C>,
    /// Ended: fused, it stays ended.
    done: bool,
}

impl<T, F: Flavor, C: Codec<T>> Iterator for Iter<'_, T, F, C> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        next_until_error(&mut self.done, || self.rx.recv().ok())
    }
}

impl<T, F: Flavor, C: Codec<T>> FusedIterator for Iter<'_, T, F, C> {}

/// The next item, or `None` for ever once one call returned `None`.
#[inline]
fn next_until_error<T>(done: &mut bool, next: impl FnOnce() -> Option<T>) -> Option<T> {
    if *done {
        return None;
    }
    let item = next();
    *done = item.is_none();
    item
}

/// A non-blocking iterator over the messages waiting in a [`Receiver`]; see
/// [`Receiver::try_iter`].
#[derive(Debug)]
pub struct TryIter<'a, T, F: Flavor = Spsc, C = Bincode> {
    rx: &'a mut Receiver<T, F, C>,
    /// Ended (the channel was empty, or an error): fused, it stays ended.
    done: bool,
}

impl<T, F: Flavor, C: Codec<T>> Iterator for TryIter<'_, T, F, C> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        next_until_error(&mut self.done, || self.rx.try_recv().ok())
    }
}

impl<T, F: Flavor, C: Codec<T>> FusedIterator for TryIter<'_, T, F, C> {}

/// A blocking iterator that owns its [`Receiver`]; see [`Receiver::iter`].
#[derive(Debug)]
pub struct IntoIter<T, F: Flavor = Spsc, C = Bincode> {
    rx: Receiver<T, F, C>,
    /// Ended: fused, it stays ended.
    done: bool,
}

impl<T, F: Flavor, C: Codec<T>> Iterator for IntoIter<T, F, C> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        next_until_error(&mut self.done, || self.rx.recv().ok())
    }
}

impl<T, F: Flavor, C: Codec<T>> FusedIterator for IntoIter<T, F, C> {}

impl<T, F: Flavor, C: Codec<T>> IntoIterator for Receiver<T, F, C> {
    type Item = T;
    type IntoIter = IntoIter<T, F, C>;
    fn into_iter(self) -> IntoIter<T, F, C> {
        IntoIter {
            rx: self,
            done: false,
        }
    }
}

// A blocking iterator over received messages, as crossbeam-channel's `&Receiver`; there is
// nothing to iterate mutably (`iter_mut` would hand out the same owned messages).
#[allow(clippy::into_iter_without_iter)]
impl<'a, T, F: Flavor, C: Codec<T>> IntoIterator for &'a mut Receiver<T, F, C> {
    type Item = T;
    type IntoIter = Iter<'a, T, F, C>;
    fn into_iter(self) -> Iter<'a, T, F, C> {
        self.iter()
    }
}

/// Copies the next message out of the ring into the receiver's private buffer (as
/// [`flavor::read`] waits), returning its length. A channel whose largest message fits the
/// buffer allocated up front (64 KiB), and a checksum ring, pop with the ring's own copy
/// ([`pop_private`]). A larger channel copies from a view of the message into the buffer, which
/// grows to the largest message received: an MPMC pop into a buffer needs room for a whole
/// slot, and a receiver of a 64 MiB channel should not hold 64 MiB for 1 KiB messages.
#[inline]
fn copy_out<F: Flavor>(
    consumer: &mut shmbus_ring::Consumer<F>,
    wait: Wait,
    buf: &mut Vec<u8>,
) -> Result<usize, PopError> {
    if consumer.max_message() <= PREALLOCATED_BUFFER || consumer.ring().checksum() {
        pop_private(consumer, wait, buf)
    } else {
        flavor::read(consumer, wait, |bytes| {
            buf.clear();
            buf.extend_from_slice(bytes);
            bytes.len()
        })
    }
}

/// Pops the next message into the receiver's private buffer (as [`flavor::read_copy`] waits),
/// returning its length: the ring's copy, which inlines small messages and verifies a checksum
/// ring's. A message longer than the buffer stays in the ring; the buffer then grows to what the
/// ring asked for and the pop is tried again. That is the record's length as the ring validated
/// it (SPSC), or a whole slot (MPMC, which checks the buffer before it claims): both bounded by
/// the ring's validated geometry.
#[inline]
fn pop_private<F: Flavor>(
    consumer: &mut shmbus_ring::Consumer<F>,
    wait: Wait,
    buf: &mut Vec<u8>,
) -> Result<usize, PopError> {
    match flavor::read_copy(consumer, wait, buf) {
        Err(PopError::BufferTooSmall { needed, .. }) => grow_and_pop(consumer, wait, buf, needed),
        popped => popped,
    }
}

/// [`pop_private`] after a message too long for the buffer: out of line, as it happens once
/// per new largest message. If the second pop finds the message longer still (its header
/// rewritten in between: only a hostile peer does that, as an honest SPSC record stays put and
/// an MPMC pop checks the buffer against the slot size before claiming), the message is popped
/// with `try_pop_vec`, which sizes the buffer to what it reads, rather than reported as an
/// error it is not.
#[cold]
#[inline(never)]
fn grow_and_pop<F: Flavor>(
    consumer: &mut shmbus_ring::Consumer<F>,
    wait: Wait,
    buf: &mut Vec<u8>,
    needed: usize,
) -> Result<usize, PopError> {
    buf.resize(needed.max(buf.len()), 0);
    match flavor::read_copy(consumer, wait, buf) {
        Err(PopError::BufferTooSmall { .. }) => consumer.try_pop_vec(buf),
        popped => popped,
    }
}
