//! Asynchronous endpoints for tokio (feature `tokio`): [`AsyncReceiver`] and [`AsyncSender`],
//! with futures' [`Stream`] and [`Sink`].
//!
//! No thread of shmbus's own, and no CPU while parked. An asynchronous endpoint owns a
//! doorbell ([`shmbus_ring::bell::Bell`]: a Unix datagram socket whose descriptor tokio's
//! reactor watches) and records it in its entry of the ring's endpoint table. When it finds
//! the channel empty (receiver) or full (sender), it **arms** the bell — a bit in shared
//! memory — checks once more, and returns `Pending`. The other side's next publication (or
//! release of space) takes the armed bits and sends one datagram to each bell: the kernel
//! wakes the task once per park, and nothing is sent while messages flow and nobody is
//! parked. The peer may be blocking, spinning or asynchronous, in any process
//! (PROTOCOL §6.1).
//!
//! Liveness works as in the blocking calls: while parked, an endpoint also wakes once a probe
//! interval to look for dead peers, so a receiver whose last sender was killed reports
//! `Disconnected` after draining, within about one interval. A parked task should cost
//! nothing, and a probe costs some 30 µs (it reads `/proc` for each live peer), so an
//! asynchronous endpoint whose probe interval is the library's default (20 ms) probes once
//! per [`ASYNC_PROBE_INTERVAL`] (1 s) instead: 100 parked receivers then use about 0.3 % of a
//! core. Set another interval on the builder or with `set_probe_interval` (before or after
//! `into_async`) where a dead peer must be noticed sooner.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let ch = shmbus::channel::<String>().in_process()?;
//! let mut tx = ch.sender()?.into_async()?;
//! let mut rx = ch.receiver()?.into_async()?;
//! let task = tokio::spawn(async move { rx.recv().await });
//! tx.send("hello".to_string()).await?;
//! assert_eq!(task.await?, Ok("hello".to_string()));
//! # Ok(())
//! # }
//! ```
//!
//! # Cancel safety
//!
//! - [`AsyncReceiver::recv`] is cancel-safe: a message is taken only in the poll that returns
//!   it, so dropping a pending `recv` (in `tokio::select!`, on a timeout) loses nothing.
//! - [`AsyncSender::send`] is not: a pending `send` that is dropped drops its message, never
//!   having sent any of it (as tokio's `mpsc::Sender::send`).
//! - [`AsyncSender::reserve`] is cancel-safe: dropping a pending `reserve` reserves nothing,
//!   and dropping a [`Permit`] gives its room back.
//!
//! A dropped pending call may leave its bell armed: the next publication sends it one
//! datagram, which the next wait absorbs (one spurious wake-up, no lost message).

use crate::codec::{Bincode, Codec, CodecError};
use crate::error::{
    RecvError, RecvFailure, RecvTimeoutError, SendError, SendFailure, SendTimeoutError,
    TryRecvError, TrySendError,
};
use crate::flavor::{Flavor, Spsc, Wait};
use crate::{Error, Receiver, Sender};
use futures_core::Stream;
use futures_sink::Sink;
use shmbus_ring::bell::{Bell, BellName};
use shmbus_ring::{PushError, Reservation};
use std::future::poll_fn;
use std::future::Future;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::UnixDatagram;
use tokio::time::{Instant, Sleep};

/// The probe interval of a parked asynchronous endpoint whose interval is the library's
/// default ([`DEFAULT_PROBE_INTERVAL`](shmbus_ring::liveness::DEFAULT_PROBE_INTERVAL)).
pub const ASYNC_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// How long a ring without the `NOTIFY` flag is polled between looks (nothing rings a bell
/// there).
const POLL_WITHOUT_NOTIFY: Duration = Duration::from_millis(1);

/// The waiting state both kinds of endpoint share: the bell, whether it is armed, and the
/// timer that makes a parked endpoint probe its peers once an interval.
#[derive(Debug)]
struct Parking {
    /// The doorbell's socket, registered with tokio's reactor (`None` only while dropping).
    bell: Option<UnixDatagram>,
    /// The process that made it: a `fork`ed child that drops an inherited endpoint must not
    /// deregister the socket from the epoll instance it shares with its parent.
    pid: u32,
    /// Its id and path (removed when the endpoint is dropped).
    name: BellName,
    armed: bool,
    /// The ring rings bells (`NOTIFY`); if not, a parked endpoint polls.
    notifies: bool,
    timer: Pin<Box<Sleep>>,
    /// Between probes while parked (or between looks on a ring that does not notify).
    interval: Duration,
    /// How long to retry before parking.
    spin: Duration,
}

impl Drop for Parking {
    fn drop(&mut self) {
        if std::process::id() != self.pid {
            // A `fork`ed child: deregistering would remove the parent's interest from the
            // epoll instance they share. The descriptor is this process's copy: leave it.
            std::mem::forget(self.bell.take());
        }
    }
}

/// `now + after`, or a year from now if that overflows (`Duration::MAX` means "never").
fn deadline(after: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(after)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

/// What a parked endpoint should do next.
enum Next {
    /// Look at the ring again.
    Retry,
    /// Probe the peers (the interval passed), then look again.
    Probe,
}

impl Parking {
    fn new(probe_interval: Duration) -> Result<Self, Error> {
        let probe_interval = if probe_interval == shmbus_ring::liveness::DEFAULT_PROBE_INTERVAL {
            ASYNC_PROBE_INTERVAL
        } else {
            probe_interval
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::Config(
                "into_async needs a tokio runtime (call it from within one)".into(),
            ));
        }
        let (sock, name) = Bell::new().map_err(Error::Bell)?.into_parts();
        let bell = UnixDatagram::from_std(sock).map_err(Error::Bell)?;
        Ok(Parking {
            bell: Some(bell),
            pid: std::process::id(),
            name,
            armed: false,
            notifies: true,
            timer: Box::pin(tokio::time::sleep_until(deadline(probe_interval))),
            interval: probe_interval,
            spin: Duration::ZERO,
        })
    }

    fn set_interval(&mut self, interval: Duration) {
        self.interval = interval;
        self.timer.as_mut().reset(deadline(interval));
    }

    /// After an attempt found nothing: the first time, arm (the caller then looks once more,
    /// B3); afterwards, wait for the bell or the timer.
    fn park(&mut self, cx: &mut Context<'_>, arm: impl FnOnce() -> bool) -> Poll<Next> {
        if !self.armed {
            self.notifies = arm();
            self.armed = true;
            if !self.notifies {
                // Nothing will ring: look again soon.
                let nap = POLL_WITHOUT_NOTIFY.min(self.interval);
                self.timer.as_mut().reset(deadline(nap));
            }
            return Poll::Ready(Next::Retry);
        }
        if let (true, Some(bell)) = (self.notifies, &self.bell) {
            match bell.poll_recv_ready(cx) {
                Poll::Ready(Ok(())) => {
                    // Drained until `WouldBlock`, which clears tokio's readiness.
                    let mut buf = [0u8; 8];
                    while bell.try_recv(&mut buf).is_ok() {}
                    self.armed = false;
                    return Poll::Ready(Next::Retry);
                }
                // The reactor failed us: fall back to the timer, at polling pace.
                Poll::Ready(Err(_)) => self.notifies = false,
                Poll::Pending => {}
            }
        }
        if self.timer.as_mut().poll(cx).is_ready() {
            let pace = if self.notifies {
                self.interval
            } else {
                POLL_WITHOUT_NOTIFY.min(self.interval)
            };
            self.timer.as_mut().reset(deadline(pace));
            self.armed = false;
            return Poll::Ready(Next::Probe);
        }
        Poll::Pending
    }

    /// The attempt succeeded (or failed for good): give the bit back if armed.
    fn unpark(&mut self, disarm: impl FnOnce() -> bool) {
        if self.armed {
            self.armed = false;
            // If a notifier took the bit, its datagram makes the descriptor readable once
            // more; the next park drains it (a spurious wake-up).
            let _ = disarm();
        }
    }
}

/// The endpoint steps a parked side needs: arm and disarm its bell (PROTOCOL §6.1 B1–B2,
/// B4), and probe its peers.
trait Bellringer {
    fn arm(&mut self) -> bool;
    fn disarm(&mut self) -> bool;
    /// Reaps dead peers; the next attempt then reports `Disconnected` or `Corrupt` as a
    /// blocking call would.
    fn probe(&mut self);
}

impl<T, F: Flavor, C: Codec<T>> Bellringer for Receiver<T, F, C> {
    fn arm(&mut self) -> bool {
        self.consumer_mut().arm_bell()
    }
    fn disarm(&mut self) -> bool {
        self.consumer_mut().disarm_bell()
    }
    fn probe(&mut self) {
        let _ = self.consumer_mut().check_peers();
    }
}

impl<T, F: Flavor, C> Bellringer for Sender<T, F, C> {
    fn arm(&mut self) -> bool {
        self.producer_mut().arm_bell()
    }
    fn disarm(&mut self) -> bool {
        self.producer_mut().disarm_bell()
    }
    fn probe(&mut self) {
        let _ = self.producer_mut().check_peers();
    }
}

/// Runs `attempt` (`Some` once it is done, `None` on an empty or full channel) until it is
/// done, spinning first if a budget is set, then arming the bell, looking once more (B3), and
/// parking: `Pending` with the task's waker registered through the bell and the probe timer.
fn drive<E: Bellringer, R>(
    parking: &mut Parking,
    endpoint: &mut E,
    cx: &mut Context<'_>,
    mut attempt: impl FnMut(&mut E) -> Option<R>,
) -> Poll<R> {
    let mut spun = None;
    loop {
        if let Some(done) = attempt(endpoint) {
            parking.unpark(|| endpoint.disarm());
            return Poll::Ready(done);
        }
        if !parking.armed && spin_on(&mut spun, parking.spin) {
            continue;
        }
        match parking.park(cx, || endpoint.arm()) {
            Poll::Ready(Next::Retry) => {}
            Poll::Ready(Next::Probe) => endpoint.probe(),
            Poll::Pending => return Poll::Pending,
        }
    }
}

/// A [`Receiver`] that waits asynchronously: [`Receiver::into_async`].
pub struct AsyncReceiver<T, F: Flavor = Spsc, C = Bincode> {
    rx: Receiver<T, F, C>,
    parking: Parking,
}

impl<T, F: Flavor, C> std::fmt::Debug for AsyncReceiver<T, F, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncReceiver")
            .field("rx", &self.rx)
            .field("bell", &self.parking.name)
            .finish_non_exhaustive()
    }
}

// No field is pinned: the timer is boxed, and the rest moves freely.
impl<T, F: Flavor, C> Unpin for AsyncReceiver<T, F, C> {}
impl<T, F: Flavor, C> Unpin for AsyncSender<T, F, C> {}

impl<T, F: Flavor, C: Codec<T>> Receiver<T, F, C> {
    /// This receiver, waiting asynchronously: makes its doorbell and records it in the ring.
    /// Call it within a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] outside a tokio runtime; [`Error::Bell`] if the doorbell's socket
    /// cannot be made (the bell directory, `/dev/shm` or `$SHMBUS_DIR`, must be writable).
    ///
    /// # Panics
    ///
    /// In a runtime without its IO or time driver (build it with `enable_all`), as tokio's own
    /// `from_std` constructors and timers do.
    ///
    /// An asynchronous endpoint belongs to its runtime: a `fork`ed child cannot use one it
    /// inherited (dropping it there is safe, and leaves the parent's bell alone).
    pub fn into_async(mut self) -> Result<AsyncReceiver<T, F, C>, Error> {
        let parking = Parking::new(self.consumer_mut().probe_interval())?;
        self.consumer_mut().set_bell_id(parking.name.id());
        // A read that meets a message in flight (MPMC) reports empty at once, and the receiver
        // parks: the writer's commit rings the bell. Waiting it out would hold the runtime's
        // thread, where the writer may be another task.
        self.consumer_mut().set_settle(false);
        Ok(AsyncReceiver { rx: self, parking })
    }
}

impl<T, F: Flavor, C: Codec<T>> AsyncReceiver<T, F, C> {
    /// Receives the next message, waiting (asynchronously) while the channel is empty.
    /// Cancel-safe.
    ///
    /// # Errors
    ///
    /// As [`Receiver::recv`]: [`RecvError::Disconnected`] once drained with every sender
    /// gone, and the decode, checksum and corruption errors.
    pub async fn recv(&mut self) -> Result<T, RecvError> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Receives the next message, waiting at most `timeout` (tokio's timer). Cancel-safe.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`], and as [`recv`](Self::recv).
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        match tokio::time::timeout(timeout, self.recv()).await {
            Ok(r) => r.map_err(|e| match e {
                RecvError::Disconnected => RecvTimeoutError::Disconnected,
                RecvError::Decode(f) => RecvTimeoutError::Decode(f),
                RecvError::Corrupt(c) => RecvTimeoutError::Corrupt(c),
                RecvError::Checksum(m) => RecvTimeoutError::Checksum(m),
            }),
            Err(_) => Err(RecvTimeoutError::Timeout),
        }
    }

    /// Receives a message if one is waiting, without waiting.
    ///
    /// # Errors
    ///
    /// As [`Receiver::try_recv`].
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        // Linearizable, as the blocking receiver's (MPMC: may wait out a message in flight).
        self.rx.consumer_mut().set_settle(true);
        let got = self.rx.try_recv();
        self.rx.consumer_mut().set_settle(false);
        got
    }

    /// Polls for the next message: `Ready` with a message or an error, or `Pending` with the
    /// task's waker registered (through the doorbell and the probe timer).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, RecvError>> {
        drive(&mut self.parking, &mut self.rx, cx, |rx| {
            match rx.read(Wait::Never) {
                Err(RecvFailure::Empty) => None,
                done => Some(done.map_err(RecvError::new)),
            }
        })
    }

    /// Receives the next message into `place`, waiting (asynchronously) while the channel is
    /// empty: [`recv`](Self::recv) that reuses what `place` owns, as [`Receiver::recv_into`]
    /// (a receiver that reuses one value allocates nothing per message). Cancel-safe: a
    /// message is taken, and `place` written, only in the poll that completes.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let ch = shmbus::channel::<(u32, String)>().in_process()?;
    /// let mut tx = ch.sender()?.into_async()?;
    /// let mut rx = ch.receiver()?.into_async()?;
    /// let mut got = (0, String::with_capacity(32));
    /// for (n, text) in [(1, "one"), (2, "two")] {
    ///     tx.send((n, text.to_string())).await?;
    ///     rx.recv_into(&mut got).await?;
    ///     assert_eq!((got.0, got.1.as_str(), got.1.capacity()), (n, text, 32));
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv); `place` as [`Receiver::recv_into`] says.
    pub async fn recv_into(&mut self, place: &mut T) -> Result<(), RecvError> {
        poll_fn(|cx| self.poll_recv_into(cx, place)).await
    }

    /// Receives a message into `place` if one is waiting, without waiting, as
    /// [`Receiver::try_recv_into`].
    ///
    /// # Errors
    ///
    /// As [`Receiver::try_recv_into`].
    pub fn try_recv_into(&mut self, place: &mut T) -> Result<(), TryRecvError> {
        self.rx.consumer_mut().set_settle(true);
        let got = self.rx.try_recv_into(place);
        self.rx.consumer_mut().set_settle(false);
        got
    }

    /// Polls for the next message into `place`: `Ready` once decoded into it (or with an
    /// error), `Pending` with the task's waker registered, as [`poll_recv`](Self::poll_recv).
    pub fn poll_recv_into(
        &mut self,
        cx: &mut Context<'_>,
        place: &mut T,
    ) -> Poll<Result<(), RecvError>> {
        drive(&mut self.parking, &mut self.rx, cx, |rx| {
            match rx.read_into(place, Wait::Never) {
                Err(RecvFailure::Empty) => None,
                done => Some(done.map_err(RecvError::new)),
            }
        })
    }

    /// Receives the next message, waiting (asynchronously) while the channel is empty, and
    /// lends it to `f`, as [`Receiver::recv_with`]: the receiver decodes in place into a
    /// value it keeps, and returns what `f` returns. Cancel-safe, as [`recv`](Self::recv);
    /// `f` runs once, in the poll that completes.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let ch = shmbus::channel::<Vec<u16>>().in_process()?;
    /// let mut tx = ch.sender()?.into_async()?;
    /// let mut rx = ch.receiver()?.into_async()?;
    /// tx.send(vec![1, 2, 3]).await?;
    /// let sum = rx.recv_with(|v| v.iter().sum::<u16>()).await?;
    /// assert_eq!(sum, 6);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv); `f` is not called.
    pub async fn recv_with<R>(&mut self, f: impl FnOnce(&T) -> R) -> Result<R, RecvError>
    where
        T: Send + Sync + 'static,
    {
        let mut f = Some(f);
        poll_fn(|cx| {
            drive(&mut self.parking, &mut self.rx, cx, |rx| {
                let lend = |msg: &T| f.take().map(|f| f(msg));
                match rx.read_lent(Wait::Never, lend) {
                    Ok(Some(lent)) => Some(Ok(lent)),
                    // `f` was taken by an earlier poll that completed: not reached, since a
                    // completed future is not polled again; look again rather than panic.
                    Ok(None) | Err(RecvFailure::Empty) => None,
                    Err(failure) => Some(Err(RecvError::new(failure))),
                }
            })
        })
        .await
    }

    /// Lends the next message to `f` if one is waiting, without waiting, as
    /// [`Receiver::try_recv_with`].
    ///
    /// # Errors
    ///
    /// As [`Receiver::try_recv_with`]; `f` is not called.
    pub fn try_recv_with<R>(&mut self, f: impl FnOnce(&T) -> R) -> Result<R, TryRecvError>
    where
        T: Send + Sync + 'static,
    {
        self.rx.consumer_mut().set_settle(true);
        let got = self.rx.try_recv_with(f);
        self.rx.consumer_mut().set_settle(false);
        got
    }

    /// Retry for up to `spin` before parking (default zero: a spinning task holds its worker
    /// thread). A few microseconds catch a reply that is on its way without a kernel wake-up.
    pub fn set_spin(&mut self, spin: Duration) {
        self.parking.spin = spin;
    }

    /// How often to probe the peers while parked (and at most how often otherwise), as
    /// [`Receiver::set_probe_interval`].
    pub fn set_probe_interval(&mut self, interval: Duration) {
        self.rx.set_probe_interval(interval);
        self.parking.set_interval(interval);
    }

    /// The blocking receiver back (its doorbell is dropped).
    pub fn into_inner(mut self) -> Receiver<T, F, C> {
        self.parking.unpark(|| self.rx.consumer_mut().disarm_bell());
        self.rx.consumer_mut().set_settle(true);
        self.rx
    }

    /// The blocking receiver, for its other methods (`len`, `capacity`, …).
    pub fn get_mut(&mut self) -> &mut Receiver<T, F, C> {
        &mut self.rx
    }
}

impl<T, F: Flavor, C> AsRawFd for AsyncReceiver<T, F, C> {
    /// The doorbell's descriptor: readable when a notifier rang it. For event loops other
    /// than tokio; drain it by reading until `EAGAIN`.
    fn as_raw_fd(&self) -> RawFd {
        self.parking.bell.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }
}

impl<T, F: Flavor, C: Codec<T>> Stream for AsyncReceiver<T, F, C> {
    type Item = Result<T, RecvError>;

    /// The messages, ending (`None`) at [`RecvError::Disconnected`]; decode and corruption
    /// errors are items.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx).map(|r| match r {
            Err(RecvError::Disconnected) => None,
            other => Some(other),
        })
    }
}

/// A [`Sender`] that waits asynchronously: [`Sender::into_async`].
pub struct AsyncSender<T, F: Flavor = Spsc, C = Bincode> {
    tx: Sender<T, F, C>,
    parking: Parking,
    /// A message [`Sink::start_send`] accepted and the ring had no room for yet.
    buffered: Option<T>,
}

impl<T, F: Flavor, C> std::fmt::Debug for AsyncSender<T, F, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncSender")
            .field("tx", &self.tx)
            .field("bell", &self.parking.name)
            .field("buffered", &self.buffered.is_some())
            .finish_non_exhaustive()
    }
}

impl<T, F: Flavor, C: Codec<T>> Sender<T, F, C> {
    /// This sender, waiting asynchronously for room: makes its doorbell and records it in the
    /// ring. Call it within a tokio runtime.
    ///
    /// # Errors
    ///
    /// As [`Receiver::into_async`].
    ///
    /// # Panics
    ///
    /// As [`Receiver::into_async`].
    pub fn into_async(mut self) -> Result<AsyncSender<T, F, C>, Error> {
        let parking = Parking::new(self.producer_mut().probe_interval())?;
        self.producer_mut().set_bell_id(parking.name.id());
        Ok(AsyncSender {
            tx: self,
            parking,
            buffered: None,
        })
    }
}

impl<T, F: Flavor, C: Codec<T>> AsyncSender<T, F, C> {
    /// Sends `msg`, waiting (asynchronously) while the channel is full. Not cancel-safe: a
    /// pending `send` that is dropped drops the message (none of it was sent).
    ///
    /// # Errors
    ///
    /// As [`Sender::send`]; the message comes back.
    pub async fn send(&mut self, msg: T) -> Result<(), SendError<T>> {
        let mut msg = Some(msg);
        poll_fn(|cx| self.poll_send(cx, &mut msg)).await
    }

    /// Sends `msg`, waiting at most `timeout` (tokio's timer).
    ///
    /// # Errors
    ///
    /// [`SendTimeoutError::Timeout`] with the message, and as [`send`](Self::send).
    pub async fn send_timeout(
        &mut self,
        msg: T,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<T>> {
        let mut msg = Some(msg);
        let sent = tokio::time::timeout(timeout, poll_fn(|cx| self.poll_send(cx, &mut msg))).await;
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(match e {
                SendError::Disconnected(m) => SendTimeoutError::Disconnected(m),
                SendError::TooLarge { msg, len, max } => {
                    SendTimeoutError::TooLarge { msg, len, max }
                }
                SendError::Encode { msg, error } => SendTimeoutError::Encode { msg, error },
                SendError::Corrupt { msg, error } => SendTimeoutError::Corrupt { msg, error },
            }),
            Err(_) => match msg {
                Some(msg) => Err(SendTimeoutError::Timeout(msg)),
                // Unreachable: the message is taken only by a poll that returns `Ready`.
                None => Ok(()),
            },
        }
    }

    /// Sends `msg` if there is room now.
    ///
    /// # Errors
    ///
    /// As [`Sender::try_send`].
    pub fn try_send(&mut self, msg: T) -> Result<(), TrySendError<T>> {
        self.tx.try_send(msg)
    }

    /// One attempt to send `*msg`, then parking: `Ready` once sent (or failed for good, the
    /// message in the error), `Pending` while full. `*msg` is taken only on `Ready`.
    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        msg: &mut Option<T>,
    ) -> Poll<Result<(), SendError<T>>> {
        if msg.is_none() {
            // Nothing to send (a `Sink` with nothing buffered).
            return Poll::Ready(Ok(()));
        }
        drive(&mut self.parking, &mut self.tx, cx, |tx| {
            let m = msg.as_ref()?;
            match tx.write(m, Wait::Never) {
                Err(SendFailure::Full) => None,
                Ok(()) => {
                    *msg = None;
                    Some(Ok(()))
                }
                Err(failure) => msg.take().map(|m| Err(SendError::new(failure, m))),
            }
        })
    }

    /// Waits for room for a message of up to `len` encoded bytes and reserves it: the
    /// returned [`Permit`] sends without waiting. Cancel-safe: a pending `reserve` that is
    /// dropped reserves nothing; a permit that is dropped gives the room back.
    ///
    /// # Errors
    ///
    /// [`SendError::TooLarge`] if `len` exceeds the channel's maximum message size;
    /// [`SendError::Disconnected`]; [`SendError::Corrupt`].
    pub async fn reserve(&mut self, len: usize) -> Result<Permit<'_, T, F, C>, SendError<()>> {
        let max = self.tx.max_message();
        if len > max {
            return Err(SendError::TooLarge { msg: (), len, max });
        }
        let set_aside = poll_fn(|cx| self.poll_reserve(cx, len)).await?;
        Ok(Permit {
            tx: self,
            reservation: Some(set_aside),
            len,
        })
    }

    fn poll_reserve(
        &mut self,
        cx: &mut Context<'_>,
        len: usize,
    ) -> Poll<Result<Reservation, SendError<()>>> {
        drive(&mut self.parking, &mut self.tx, cx, |tx| {
            match tx.producer_mut().reserve(len) {
                Ok(guard) => Some(Ok(guard.set_aside())),
                Err(PushError::Full) => None,
                Err(e) => Some(Err(SendError::new(push_failure(e, len), ()))),
            }
        })
    }

    /// Retry for up to `spin` before parking (default zero), as
    /// [`AsyncReceiver::set_spin`].
    pub fn set_spin(&mut self, spin: Duration) {
        self.parking.spin = spin;
    }

    /// How often to probe the peers while parked, as [`AsyncReceiver::set_probe_interval`].
    pub fn set_probe_interval(&mut self, interval: Duration) {
        self.tx.set_probe_interval(interval);
        self.parking.set_interval(interval);
    }

    /// The blocking sender back (its doorbell is dropped). A message buffered by the
    /// [`Sink`] and not yet flushed is dropped: flush first.
    pub fn into_inner(mut self) -> Sender<T, F, C> {
        self.parking.unpark(|| self.tx.producer_mut().disarm_bell());
        self.tx
    }

    /// The blocking sender, for its other methods.
    pub fn get_mut(&mut self) -> &mut Sender<T, F, C> {
        &mut self.tx
    }
}

impl<T, F: Flavor, C> AsRawFd for AsyncSender<T, F, C> {
    /// The doorbell's descriptor, as [`AsyncReceiver`]'s.
    fn as_raw_fd(&self) -> RawFd {
        self.parking.bell.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }
}

impl<T: Unpin, F: Flavor, C: Codec<T>> Sink<T> for AsyncSender<T, F, C> {
    type Error = SendError<T>;

    /// Ready once the message buffered by the last `start_send` is in the ring.
    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        let mut msg = this.buffered.take();
        let r = this.poll_send(cx, &mut msg);
        this.buffered = msg;
        r
    }

    /// Buffers `item`; the next `poll_ready` or `poll_flush` sends it.
    fn start_send(self: Pin<&mut Self>, item: T) -> Result<(), Self::Error> {
        let this = self.get_mut();
        debug_assert!(this.buffered.is_none(), "start_send without poll_ready");
        this.buffered = Some(item);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.poll_ready(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.poll_ready(cx)
    }
}

/// Room reserved in the channel by [`AsyncSender::reserve`]: [`send`](Permit::send) encodes a
/// message into it and publishes it without waiting. Dropping the permit gives the room back.
pub struct Permit<'a, T, F: Flavor = Spsc, C = Bincode> {
    tx: &'a mut AsyncSender<T, F, C>,
    reservation: Option<Reservation>,
    len: usize,
}

impl<T, F: Flavor, C> std::fmt::Debug for Permit<'_, T, F, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<T, F: Flavor, C: Codec<T>> Permit<'_, T, F, C> {
    /// Encodes `msg` into the reserved room and publishes it, in one pass: the codec writes
    /// straight into the room and the permit publishes what it wrote. Only an encoding that
    /// fails is measured ([`Codec::encoded_len`]), to tell a message longer than the room from
    /// one that cannot be encoded at all.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let ch = shmbus::channel::<String>().in_process()?;
    /// let mut tx = ch.sender()?.into_async()?;
    /// let mut rx = ch.receiver()?;
    /// tx.reserve(16).await?.send("fits".to_string())?;
    /// assert_eq!(rx.try_recv()?, "fits");
    /// // Longer than the room: the message comes back, and so does the room.
    /// let err = tx.reserve(4).await?.send("does not fit".to_string()).unwrap_err();
    /// assert!(matches!(err, shmbus::TrySendError::TooLarge { len: 13, max: 4, .. }));
    /// assert_eq!(err.into_inner(), "does not fit");
    /// assert!(rx.try_recv().unwrap_err().is_empty());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`TrySendError::TooLarge`] if its encoding is longer than the reserved length, and
    /// [`TrySendError::Encode`]: the message comes back, and the room is given back.
    pub fn send(self, msg: T) -> Result<(), TrySendError<T>> {
        self.write(&msg)
            .map_err(|failure| TrySendError::new(failure, msg))
    }

    /// Encodes a copy of `*msg` into the reserved room and publishes it:
    /// [`send`](Self::send) without taking the message, as [`Sender::send_ref`]. The errors
    /// carry `()` where [`send`](Self::send)'s carry the message.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let ch = shmbus::channel::<Vec<u32>>().in_process()?;
    /// let mut tx = ch.sender()?.into_async()?;
    /// let mut rx = ch.receiver()?;
    /// let msg = vec![1, 2, 3];
    /// tx.reserve(8).await?.send_ref(&msg)?;
    /// tx.reserve(8).await?.send_ref(&msg)?; // the same vector again
    /// assert_eq!((rx.try_recv()?, rx.try_recv()?), (msg.clone(), msg));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn send_ref(self, msg: &T) -> Result<(), TrySendError<()>> {
        self.write(msg)
            .map_err(|failure| TrySendError::new(failure, ()))
    }

    /// The one pass: encode into the room, publish what was written; measure only a failure.
    fn write(mut self, msg: &T) -> Result<(), SendFailure> {
        let room = self.len;
        let Some(r) = self.reservation.take() else {
            return Err(SendFailure::Disconnected);
        };
        let Ok(mut guard) = self.tx.tx.producer_mut().resume(r) else {
            return Err(SendFailure::Disconnected);
        };
        let failed = match C::encode(msg, &mut guard[..room]) {
            Ok(n) if n <= room => {
                guard.commit_len(n);
                return Ok(());
            }
            Ok(n) => CodecError::encode(
                C::NAME,
                format_args!("wrote {n} bytes into a {room}-byte room"),
            ),
            Err(e) => e,
        };
        drop(guard); // abandons the room
        match C::encoded_len(msg) {
            Ok(len) if len > room => Err(SendFailure::TooLarge { len, max: room }),
            Ok(_) => Err(SendFailure::Encode(failed)),
            Err(e) => Err(SendFailure::Encode(e)),
        }
    }

    /// The number of bytes reserved.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether zero bytes were reserved.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<T, F: Flavor, C> Drop for Permit<'_, T, F, C> {
    fn drop(&mut self) {
        if let Some(r) = self.reservation.take() {
            // Resumed and dropped: the guard abandons the room.
            drop(self.tx.tx.producer_mut().resume(r));
        }
    }
}

/// Whether to retry once more before parking: within the spin budget, started at the first
/// call.
fn spin_on(started: &mut Option<std::time::Instant>, budget: Duration) -> bool {
    if budget.is_zero() {
        return false;
    }
    let start = *started.get_or_insert_with(std::time::Instant::now);
    std::hint::spin_loop();
    start.elapsed() < budget
}

fn push_failure(e: PushError, len: usize) -> SendFailure {
    match e {
        PushError::Full => SendFailure::Full,
        PushError::Timeout => SendFailure::Timeout,
        PushError::Disconnected => SendFailure::Disconnected,
        PushError::TooLarge { len, max } => SendFailure::TooLarge { len, max },
        PushError::Corrupt(c) => SendFailure::Corrupt(c),
        _ => SendFailure::TooLarge { len, max: len },
    }
}
