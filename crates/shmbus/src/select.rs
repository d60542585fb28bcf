//! Waiting on several channel operations at once: [`Select`], the [`select!`](crate::select!)
//! macro, and the timer operations [`never`], [`after`] and [`tick`], in crossbeam-channel's
//! vocabulary.
//!
//! # How a select waits
//!
//! A select first tries every operation (in random order, unless biased). If none is ready it
//! spins for the endpoints' spin phase (their [`WaitStrategy`]), then sleeps on the doorbells
//! of all the channels at once ([`shmbus_ring::select::wait_any`]: one `futex_waitv(2)` call,
//! Linux 5.16+; before that, a 1 ms polling fallback). Every sleep lasts at most the shortest
//! probe interval of the endpoints involved (so that a peer that died is found within about one
//! probe interval), and at most until the next timer fires or the deadline passes. After every
//! wake-up each operation is tried again: a select never returns a stale ready. A process
//! blocked in a select uses no CPU between wake-ups.
//!
//! # Differences from crossbeam-channel
//!
//! - **Borrows.** Our [`Sender`](crate::Sender) and [`Receiver`](crate::Receiver) take
//!   `&mut self`, so a [`Select`] holds `&mut` borrows of its operations, and a
//!   [`SelectedOperation`] borrows nothing: after `let op = sel.select();` the select is no
//!   longer used, its borrows end, and `op.recv(&mut rx)` completes the operation. A `Select`
//!   is therefore built anew for each wait (it is cheap: a vector of references), and the same
//!   endpoint cannot be added twice.
//! - **Receives complete at selection.** When a receive operation is selected, its message has
//!   already been taken from the ring and *staged* in the receiver (its raw bytes; decoding
//!   happens in [`SelectedOperation::recv`]). Dropping the [`SelectedOperation`] without
//!   completing it is allowed and loses nothing: the staged message is what the receiver's
//!   next `recv`, `try_recv`, `recv_timeout` or iterator returns. (crossbeam panics on such a
//!   drop.) The `ready` family stages too, so a `ready` receive is really ready: the next
//!   `try_recv` on it succeeds, and on an MPMC channel no other receiver can take that message
//!   any more.
//! - **Sends are checked, not reserved.** A send operation is ready when a message of the
//!   channel's maximum size would fit now, or the channel is disconnected (the send then
//!   returns the error). On SPSC nobody else can take the room, so
//!   [`SelectedOperation::send`] never waits. On MPMC another sender may take the room between
//!   the selection and the send; the send then waits for room as [`Sender::send`] does.
//! - **Timers are their own types**: [`After`], [`Tick`] and [`Never`], not receivers of
//!   `Instant`; they have `recv`, `try_recv`, `recv_timeout` and take part in selects.
//!
//! [`Sender::send`]: crate::Sender::send

use crate::error::{RecvError, RecvTimeoutError, SendError, TryRecvError};
use shmbus_ring::select::{wait_any, Doorbell};
use shmbus_ring::WaitStrategy;
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A fresh identity for an endpoint or timer, so that a [`SelectedOperation`] can tell
/// whether it is completed with the endpoint it selected.
pub(crate) fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

pub(crate) mod sealed {
    use super::{Doorbell, Duration, Instant, WaitStrategy};

    /// What a select needs of an operation. Sealed: implemented in this crate only.
    pub trait Handle {
        /// The endpoint's identity.
        fn id(&self) -> u64;
        /// Tries the operation now: a receive stages the next message (or the error it
        /// met); a send checks for room. `true` if it is ready. `probe`: the select slept
        /// since the last probing attempt; check the peers' liveness now.
        fn try_select(&mut self, probe: bool) -> bool;
        /// The doorbell to sleep on, if the operation has one.
        fn doorbell(&self) -> Option<Doorbell>;
        /// How often the endpoint probes its peers (the longest a select may sleep).
        fn probe_interval(&self) -> Option<Duration>;
        /// When a timer is next ready.
        fn deadline(&self) -> Option<Instant>;
        /// How the endpoint waits.
        fn wait_strategy(&self) -> Option<WaitStrategy>;
    }

    impl<H: Handle + ?Sized> Handle for &mut H {
        fn id(&self) -> u64 {
            (**self).id()
        }
        fn try_select(&mut self, probe: bool) -> bool {
            (**self).try_select(probe)
        }
        fn doorbell(&self) -> Option<Doorbell> {
            (**self).doorbell()
        }
        fn probe_interval(&self) -> Option<Duration> {
            (**self).probe_interval()
        }
        fn deadline(&self) -> Option<Instant> {
            (**self).deadline()
        }
        fn wait_strategy(&self) -> Option<WaitStrategy> {
            (**self).wait_strategy()
        }
    }

    /// Proof that a call comes from this crate: only it can make one.
    #[derive(Debug)]
    pub struct Token(pub(crate) ());
}

use sealed::{Handle, Token};

/// The receiving side of a select: [`Receiver`](crate::Receiver), [`After`], [`Tick`],
/// [`Never`], a topic's [`Subscriber`](crate::topic::Subscriber), and `&mut` of any of them.
/// Sealed.
pub trait SelectRecv: Handle {
    /// What a receive yields.
    type Item;
    /// Why a receive failed: [`RecvError`] for channels and timers, the topic's
    /// [`RecvError`](crate::topic::RecvError) (which adds `Lagged` and `Ejected`) for a
    /// subscriber.
    type Error;
    /// Completes a selected receive (see [`SelectedOperation::recv`]).
    #[doc(hidden)]
    fn complete_recv(&mut self, token: Token) -> Result<Self::Item, Self::Error>;
}

/// The sending side of a select: [`Sender`](crate::Sender) and `&mut Sender`. Sealed.
pub trait SelectSend: Handle {
    /// What a send takes.
    type Item;
    /// Completes a selected send (see [`SelectedOperation::send`]).
    #[doc(hidden)]
    fn complete_send(&mut self, msg: Self::Item, token: Token)
        -> Result<(), SendError<Self::Item>>;
}

impl<R: SelectRecv + ?Sized> SelectRecv for &mut R {
    type Item = R::Item;
    type Error = R::Error;
    fn complete_recv(&mut self, token: Token) -> Result<Self::Item, Self::Error> {
        (**self).complete_recv(token)
    }
}

impl<S: SelectSend + ?Sized> SelectSend for &mut S {
    type Item = S::Item;
    fn complete_send(&mut self, msg: Self::Item, token: Token) -> Result<(), SendError<S::Item>> {
        (**self).complete_send(msg, token)
    }
}

macro_rules! unit_error {
    ($(#[$doc:meta])* $name:ident, $msg:literal) => {
        $(#[$doc])*
        #[derive(PartialEq, Eq, Clone, Copy, Debug)]
        pub struct $name;

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($msg)
            }
        }

        impl std::error::Error for $name {}
    };
}

unit_error!(
    /// [`Select::try_select`] found no operation ready.
    TrySelectError,
    "all operations in select would block"
);
unit_error!(
    /// [`Select::select_timeout`] found no operation ready before the deadline.
    SelectTimeoutError,
    "timed out waiting on select"
);
unit_error!(
    /// [`Select::try_ready`] found no operation ready.
    TryReadyError,
    "all operations in select would block"
);
unit_error!(
    /// [`Select::ready_timeout`] found no operation ready before the deadline.
    ReadyTimeoutError,
    "timed out waiting on ready"
);

/// A set of channel operations to wait on: receives and sends on channels of any flavor,
/// codec and message type, in this process or backed by other processes, and timers.
///
/// Add operations with [`recv`](Self::recv) and [`send`](Self::send) (each returns the
/// operation's index), then either
///
/// - **select** one with [`try_select`](Self::try_select), [`select`](Self::select),
///   [`select_timeout`](Self::select_timeout) or [`select_deadline`](Self::select_deadline),
///   and complete it with [`SelectedOperation::recv`] or [`SelectedOperation::send`]; or
/// - wait until one is **ready** with [`try_ready`](Self::try_ready), [`ready`](Self::ready),
///   [`ready_timeout`](Self::ready_timeout) or [`ready_deadline`](Self::ready_deadline), and
///   then run it yourself (a ready receive has its message staged: `try_recv` returns it).
///
/// When several operations are ready, one is picked at random ([`new_biased`](Self::new_biased):
/// the first added). An operation is ready also when it would return an error at once (a
/// disconnected channel, corruption).
///
/// The select holds `&mut` borrows of its endpoints; once it has returned, it is dropped (or
/// simply not used again) and the endpoints are free for the completion. Build one per wait.
/// The [module docs](crate::select) list what differs from crossbeam-channel.
///
/// ```
/// use shmbus::Select;
/// let (a, b) = (shmbus::channel::<u32>().in_process()?, shmbus::channel::<String>().in_process()?);
/// let (mut tx_a, mut rx_a) = (a.sender()?, a.receiver()?);
/// let (_tx_b, mut rx_b) = (b.sender()?, b.receiver()?);
/// tx_a.send(7)?;
///
/// let mut sel = Select::new();
/// let ia = sel.recv(&mut rx_a);
/// let ib = sel.recv(&mut rx_b);
/// let op = sel.select(); // `sel` is not used again: its borrows end here
/// match op.index() {
///     i if i == ia => assert_eq!(op.recv(&mut rx_a)?, 7),
///     i if i == ib => println!("{}", op.recv(&mut rx_b)?),
///     _ => unreachable!(),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Select<'a> {
    /// The operations and their indices, in the order they are tried.
    handles: Vec<(&'a mut (dyn Handle + Send + 'a), usize)>,
    next_index: usize,
    biased: bool,
}

impl fmt::Debug for Select<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Select")
            .field("operations", &self.handles.len())
            .field("biased", &self.biased)
            .finish()
    }
}

impl Default for Select<'_> {
    fn default() -> Self {
        Self::new()
    }
}

/// A deadline for a select: none (wait for ever) or an instant (the past: do not wait).
type Deadline = Option<Instant>;

impl<'a> Select<'a> {
    /// An empty select that picks at random among ready operations.
    ///
    /// ```
    /// let mut sel = shmbus::Select::new();
    /// assert!(sel.try_select().is_err());
    /// ```
    pub fn new() -> Self {
        Select {
            handles: Vec::with_capacity(4),
            next_index: 0,
            biased: false,
        }
    }

    /// An empty select that, among ready operations, picks the one added first.
    ///
    /// ```
    /// let ch = shmbus::channel::<u8>().in_process()?;
    /// let (mut tx, mut rx) = (ch.sender()?, ch.receiver()?);
    /// let mut t = shmbus::after(std::time::Duration::ZERO);
    /// tx.send(1)?;
    /// let mut sel = shmbus::Select::new_biased();
    /// let i = sel.recv(&mut rx);
    /// sel.recv(&mut t);
    /// assert_eq!(sel.select().index(), i);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new_biased() -> Self {
        Select {
            biased: true,
            ..Self::new()
        }
    }

    /// Adds a receive: from a [`Receiver`](crate::Receiver) or a timer ([`After`], [`Tick`],
    /// [`Never`]). Returns its index.
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut timer = shmbus::after(Duration::from_millis(1));
    /// let mut sel = shmbus::Select::new();
    /// let i = sel.recv(&mut timer);
    /// let op = sel.select();
    /// assert_eq!(op.index(), i);
    /// assert!(op.recv(&mut timer).is_ok());
    /// ```
    pub fn recv<R: SelectRecv + Send>(&mut self, r: &'a mut R) -> usize {
        self.add(r)
    }

    /// Adds a send on a [`Sender`](crate::Sender). Returns its index. The message is given
    /// when the operation is completed ([`SelectedOperation::send`]).
    ///
    /// ```
    /// let ch = shmbus::channel::<u8>().capacity(1).in_process()?;
    /// let (mut tx, mut rx) = (ch.sender()?, ch.receiver()?);
    /// let mut sel = shmbus::Select::new();
    /// let i = sel.send(&mut tx);
    /// let op = sel.select();
    /// assert_eq!(op.index(), i);
    /// op.send(&mut tx, 5)?;
    /// assert_eq!(rx.recv()?, 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send<S: SelectSend + Send>(&mut self, s: &'a mut S) -> usize {
        self.add(s)
    }

    fn add(&mut self, h: &'a mut (dyn Handle + Send + 'a)) -> usize {
        let i = self.next_index;
        self.handles.push((h, i));
        self.next_index += 1;
        i
    }

    /// Removes the operation with this index (its endpoint stays borrowed until the select is
    /// dropped).
    ///
    /// # Panics
    ///
    /// If no operation has this index (never added, or already removed).
    ///
    /// ```
    /// let ch = shmbus::channel::<u8>().in_process()?;
    /// let (mut tx, mut rx) = (ch.sender()?, ch.receiver()?);
    /// let mut sel = shmbus::Select::new();
    /// let i = sel.send(&mut tx);
    /// sel.remove(i);
    /// assert!(sel.try_select().is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove(&mut self, index: usize) {
        assert!(
            index < self.next_index,
            "index out of bounds; {index} >= {}",
            self.next_index
        );
        let at = self
            .handles
            .iter()
            .position(|(_, i)| *i == index)
            .expect("no operation with this index");
        // Keep the order: a biased select tries operations in the order they were added.
        self.handles.remove(at);
    }

    /// Selects an operation that is ready now.
    ///
    /// # Errors
    ///
    /// [`TrySelectError`] if none is.
    pub fn try_select(&mut self) -> Result<SelectedOperation, TrySelectError> {
        self.run(Some(Instant::now()))
            .map(|(index, id)| SelectedOperation { index, id })
            .ok_or(TrySelectError)
    }

    /// Waits until an operation is ready and selects it.
    ///
    /// # Panics
    ///
    /// If the select has no operations (it would wait for ever).
    pub fn select(&mut self) -> SelectedOperation {
        assert!(
            !self.handles.is_empty(),
            "no operations have been added to `Select`"
        );
        let (index, id) = self
            .run(None)
            .expect("a select without deadline returns an operation");
        SelectedOperation { index, id }
    }

    /// Waits at most `timeout` for an operation to be ready and selects it.
    ///
    /// # Errors
    ///
    /// [`SelectTimeoutError`] if none was ready in time.
    ///
    /// ```
    /// use std::time::Duration;
    /// let ch = shmbus::channel::<u8>().in_process()?;
    /// let (_tx, mut rx) = (ch.sender()?, ch.receiver()?);
    /// let mut sel = shmbus::Select::new();
    /// sel.recv(&mut rx);
    /// assert!(sel.select_timeout(Duration::from_millis(10)).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn select_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<SelectedOperation, SelectTimeoutError> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.select_deadline(deadline),
            None => Ok(self.select()),
        }
    }

    /// Waits until `deadline` for an operation to be ready and selects it.
    ///
    /// # Errors
    ///
    /// [`SelectTimeoutError`] if none was ready in time.
    pub fn select_deadline(
        &mut self,
        deadline: Instant,
    ) -> Result<SelectedOperation, SelectTimeoutError> {
        self.run(Some(deadline))
            .map(|(index, id)| SelectedOperation { index, id })
            .ok_or(SelectTimeoutError)
    }

    /// The index of an operation that is ready now (a receive has its message staged).
    ///
    /// # Errors
    ///
    /// [`TryReadyError`] if none is.
    ///
    /// ```
    /// let ch = shmbus::channel::<u8>().in_process()?;
    /// let (mut tx, mut rx) = (ch.sender()?, ch.receiver()?);
    /// tx.send(3)?;
    /// let mut sel = shmbus::Select::new();
    /// let i = sel.recv(&mut rx);
    /// assert_eq!(sel.try_ready(), Ok(i));
    /// assert_eq!(rx.try_recv()?, 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_ready(&mut self) -> Result<usize, TryReadyError> {
        self.run(Some(Instant::now()))
            .map(|(index, _)| index)
            .ok_or(TryReadyError)
    }

    /// Waits until an operation is ready and returns its index.
    ///
    /// # Panics
    ///
    /// If the select has no operations.
    pub fn ready(&mut self) -> usize {
        assert!(
            !self.handles.is_empty(),
            "no operations have been added to `Select`"
        );
        self.run(None).expect("a wait without deadline returns").0
    }

    /// Waits at most `timeout` until an operation is ready and returns its index.
    ///
    /// # Errors
    ///
    /// [`ReadyTimeoutError`] if none was ready in time.
    pub fn ready_timeout(&mut self, timeout: Duration) -> Result<usize, ReadyTimeoutError> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.ready_deadline(deadline),
            None => Ok(self.ready()),
        }
    }

    /// Waits until `deadline` for an operation to be ready and returns its index.
    ///
    /// # Errors
    ///
    /// [`ReadyTimeoutError`] if none was ready in time.
    pub fn ready_deadline(&mut self, deadline: Instant) -> Result<usize, ReadyTimeoutError> {
        self.run(Some(deadline))
            .map(|(index, _)| index)
            .ok_or(ReadyTimeoutError)
    }

    /// Tries every operation once, in order; the position of the first that is ready.
    fn attempt(&mut self, probe: bool) -> Option<usize> {
        self.handles
            .iter_mut()
            .position(|(h, _)| h.try_select(probe))
    }

    /// Runs the select until an operation is ready (its index and endpoint identity) or
    /// `deadline` passes.
    fn run(&mut self, deadline: Deadline) -> Option<(usize, u64)> {
        if !self.biased {
            shuffle(&mut self.handles);
        }
        let found = self.wait(deadline)?;
        let (h, index) = &self.handles[found];
        Some((*index, h.id()))
    }

    fn wait(&mut self, deadline: Deadline) -> Option<usize> {
        if let Some(found) = self.attempt(false) {
            return Some(found);
        }
        let expired = |now: Instant| deadline.is_some_and(|d| now >= d);
        let start = Instant::now();
        if expired(start) {
            // A second pass, as crossbeam's (it registers and re-checks): an operation found
            // not ready in the first pass because another thread completed something, which
            // it could do only after making another operation ready, is seen ready now.
            return self.attempt(false);
        }
        // Spin phase: as long as the most patient endpoint spins, checking the clock every
        // 64 attempts.
        let (spin, after_spin) = self.strategy();
        let mut n = 0u32;
        while !spin.is_zero() {
            if let Some(found) = self.attempt(false) {
                return Some(found);
            }
            n = n.wrapping_add(1);
            if n % 64 == 0 {
                let now = Instant::now();
                if expired(now) {
                    return None;
                }
                if now.duration_since(start) >= spin {
                    break;
                }
            }
            std::hint::spin_loop();
        }
        if after_spin == AfterSpin::Yield {
            loop {
                // The endpoints' non-blocking calls probe their peers every 16th time.
                if let Some(found) = self.attempt(false) {
                    return Some(found);
                }
                if expired(Instant::now()) {
                    return None;
                }
                std::thread::yield_now();
            }
        }
        self.sleep(deadline)
    }

    /// The sleeping phase: one `wait_any` over every doorbell per round, each round at most a
    /// probe interval, until the next timer, or until the deadline.
    fn sleep(&mut self, deadline: Deadline) -> Option<usize> {
        let bells: Vec<Doorbell> = self
            .handles
            .iter()
            .filter_map(|(h, _)| h.doorbell())
            .collect();
        let probe = self
            .handles
            .iter()
            .filter_map(|(h, _)| h.probe_interval())
            .min();
        // The endpoints probe their peers when an attempt follows a sleep of about a probe
        // interval (a spinning attempt reads the clock only now and then).
        let mut last_probe = Instant::now();
        loop {
            if bells.is_empty() {
                // Timers only (or nothing): no doorbell to sleep on, just the clock.
                return self.sleep_on_timers(deadline);
            }
            let now = Instant::now();
            let probing = probe.is_some_and(|p| now.duration_since(last_probe) >= p);
            if probing {
                last_probe = now;
            }
            let mut until = deadline;
            for (h, _) in &self.handles {
                if let Some(t) = h.deadline() {
                    until = Some(until.map_or(t, |u| u.min(t)));
                }
            }
            let mut timeout = until.map(|u| u.saturating_duration_since(now));
            if let Some(p) = probe {
                timeout = Some(timeout.map_or(p, |t| t.min(p)));
            }
            let mut found = None;
            let handles = &mut self.handles;
            wait_any(&bells, timeout, || {
                found = handles.iter_mut().position(|(h, _)| h.try_select(probing));
                found.is_some()
            });
            if found.is_some() {
                return found;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                // One last look: a timer or message due at the deadline counts.
                return self.attempt(true);
            }
        }
    }

    /// Sleeps until the next timer is due or the deadline passes, then tries again.
    fn sleep_on_timers(&mut self, deadline: Deadline) -> Option<usize> {
        loop {
            if let Some(found) = self.attempt(true) {
                return Some(found);
            }
            let mut until = deadline;
            for (h, _) in &self.handles {
                if let Some(t) = h.deadline() {
                    until = Some(until.map_or(t, |u| u.min(t)));
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return None;
            }
            sleep_until(Some(
                until.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)),
            ));
        }
    }

    /// The spin phase and what follows it, from the endpoints' wait strategies: the longest
    /// spin of any; then yielding if any endpoint spins or yields for ever, else sleeping.
    fn strategy(&self) -> (Duration, AfterSpin) {
        let mut spin = Duration::ZERO;
        let mut after = AfterSpin::Sleep;
        for s in self.handles.iter().filter_map(|(h, _)| h.wait_strategy()) {
            match s {
                WaitStrategy::Block { spin: d } => spin = spin.max(d),
                WaitStrategy::SpinYield { spin: d } => {
                    spin = spin.max(d);
                    after = AfterSpin::Yield;
                }
                // Busy-wait for ever.
                WaitStrategy::Spin => spin = Duration::MAX,
            }
        }
        (spin, after)
    }
}

/// What a select does once its spin phase is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterSpin {
    Sleep,
    Yield,
}

/// Shuffles the operations (Fisher–Yates with a per-thread xorshift generator), for fairness.
fn shuffle<T>(v: &mut [T]) {
    thread_local! {
        static RNG: Cell<u64> = Cell::new({
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new().build_hasher().finish() | 1
        });
    }
    if v.len() < 2 {
        return;
    }
    RNG.with(|rng| {
        let mut x = rng.get();
        for i in (1..v.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bound = u64::try_from(i + 1).unwrap_or(u64::MAX);
            let j = usize::try_from(x % bound).unwrap_or(0);
            v.swap(i, j);
        }
        rng.set(x);
    });
}

/// An operation a [`Select`] selected. Complete it with [`recv`](Self::recv) or
/// [`send`](Self::send), passing the endpoint that was selected.
///
/// It borrows nothing. A receive has already taken its message from the channel (it is
/// staged in the receiver): dropping the `SelectedOperation` without completing it loses
/// nothing, the receiver's next receive returns that message. A send has only been checked:
/// dropping it sends nothing.
#[must_use = "complete the operation with `recv` or `send`"]
#[derive(Debug)]
pub struct SelectedOperation {
    index: usize,
    id: u64,
}

impl SelectedOperation {
    /// The index [`Select::recv`] or [`Select::send`] returned for this operation.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Completes a selected receive: the message staged at selection, decoded (or the error
    /// the receive met: disconnection, a message that does not decode, corruption).
    ///
    /// # Errors
    ///
    /// As [`Receiver::recv`](crate::Receiver::recv), or for a topic's subscriber as
    /// [`Subscriber::recv`](crate::topic::Subscriber::recv).
    ///
    /// # Panics
    ///
    /// If `r` is not the endpoint that was selected (as crossbeam-channel).
    pub fn recv<R: SelectRecv + ?Sized>(self, r: &mut R) -> Result<R::Item, R::Error> {
        assert!(r.id() == self.id, "passed a receiver that wasn't selected");
        r.complete_recv(Token(()))
    }

    /// Completes a selected send: sends `msg`. On SPSC no one else can take the room found at
    /// selection, so this does not wait (unless `msg` needs more room than the selection
    /// found: readiness is the ring's `is_full`); on MPMC another sender may have taken the
    /// room since, and this then waits for room as [`Sender::send`](crate::Sender::send) does.
    ///
    /// # Errors
    ///
    /// As [`Sender::send`](crate::Sender::send); the message comes back.
    ///
    /// # Panics
    ///
    /// If `s` is not the endpoint that was selected (as crossbeam-channel).
    pub fn send<S: SelectSend + ?Sized>(
        self,
        s: &mut S,
        msg: S::Item,
    ) -> Result<(), SendError<S::Item>> {
        assert!(s.id() == self.id, "passed a sender that wasn't selected");
        s.complete_send(msg, Token(()))
    }
}

/// Sleeps until `deadline` (`None`: for ever).
fn sleep_until(deadline: Option<Instant>) {
    loop {
        let now = Instant::now();
        match deadline {
            Some(d) if now >= d => return,
            Some(d) => std::thread::sleep(d - now),
            None => std::thread::sleep(Duration::from_secs(3600)),
        }
    }
}

/// What [`After`] and [`Tick`] share: the next due instant, how often after it (`None`:
/// once), and a due instant a select has taken for it.
#[derive(Debug)]
struct Timer {
    id: u64,
    next: Option<Instant>,
    every: Option<Duration>,
    staged: Option<Instant>,
}

impl Timer {
    fn new(first: Duration, every: Option<Duration>) -> Self {
        Timer {
            id: next_id(),
            next: Instant::now().checked_add(first),
            every,
            staged: None,
        }
    }

    /// The staged instant, or the due one if it has passed at `now` (the next then due
    /// `every` after `now`: late ticks do not pile up).
    fn take(&mut self, now: Instant) -> Option<Instant> {
        if let Some(t) = self.staged.take() {
            return Some(t);
        }
        match self.next {
            Some(due) if now >= due => {
                self.next = self.every.and_then(|every| now.checked_add(every));
                Some(due)
            }
            _ => None,
        }
    }

    fn try_recv(&mut self) -> Result<Instant, TryRecvError> {
        self.take(Instant::now()).ok_or(TryRecvError::Empty)
    }

    fn recv(&mut self) -> Result<Instant, RecvError> {
        loop {
            if let Ok(t) = self.recv_deadline(None) {
                return Ok(t);
            }
        }
    }

    fn recv_deadline(&mut self, deadline: Option<Instant>) -> Result<Instant, RecvTimeoutError> {
        let due = if self.staged.is_some() {
            Some(Instant::now())
        } else {
            self.next
        };
        match (due, deadline) {
            (Some(t), Some(d)) if d < t => {
                sleep_until(Some(d));
                Err(RecvTimeoutError::Timeout)
            }
            (Some(t), _) => {
                sleep_until(Some(t));
                self.take(Instant::now().max(t))
                    .ok_or(RecvTimeoutError::Timeout)
            }
            (None, d) => {
                sleep_until(d);
                Err(RecvTimeoutError::Timeout)
            }
        }
    }
}

/// A timer that delivers one message, the [`Instant`] it was due, once `duration` has passed;
/// made by [`after`]. Afterwards it never delivers again (never disconnects).
#[derive(Debug)]
pub struct After(Timer);

/// A timer that delivers the [`Instant`] it was due, once after `duration` has passed, as
/// crossbeam-channel's `after`: in a [`Select`] or [`select!`](crate::select!) it is a timeout
/// among other operations.
///
/// ```
/// use std::time::{Duration, Instant};
/// let start = Instant::now();
/// let mut timer = shmbus::after(Duration::from_millis(20));
/// let due = timer.recv()?;
/// assert!(due >= start + Duration::from_millis(20) && Instant::now() >= due);
/// assert!(timer.try_recv().unwrap_err().is_empty()); // only once
/// # Ok::<(), shmbus::RecvError>(())
/// ```
///
/// A duration too long to represent (`Duration::MAX`) makes a timer that never fires: an
/// optional timeout is `after(timeout.unwrap_or(Duration::MAX))`.
pub fn after(duration: Duration) -> After {
    After(Timer::new(duration, None))
}

/// A timer that delivers the [`Instant`] it was due every `duration`; made by [`tick`].
#[derive(Debug)]
pub struct Tick(Timer);

/// A timer that delivers the [`Instant`] it was due every `duration` (the first after one
/// `duration`), as crossbeam-channel's `tick`. A tick that is late is delivered at once and
/// the next is due `duration` after it was received: ticks do not pile up.
///
/// ```
/// use std::time::Duration;
/// let mut ticker = shmbus::tick(Duration::from_millis(5));
/// let first = ticker.recv()?;
/// let second = ticker.recv()?;
/// assert!(second >= first + Duration::from_millis(5));
/// # Ok::<(), shmbus::RecvError>(())
/// ```
pub fn tick(duration: Duration) -> Tick {
    Tick(Timer::new(duration, Some(duration)))
}

/// The receiving calls of the two timers, and their select operation: one definition.
macro_rules! timer_api {
    ($($timer:ident: $what:literal),*) => {$(
        impl $timer {
            #[doc = concat!("The due instant of ", $what, " that is due and not received yet.")]
            ///
            /// # Errors
            ///
            /// [`TryRecvError::Empty`] otherwise.
            pub fn try_recv(&mut self) -> Result<Instant, TryRecvError> {
                self.0.try_recv()
            }

            #[doc = concat!("Waits for ", $what, " and returns the instant it was due.")]
            ///
            /// # Errors
            ///
            /// None in practice (a timer does not disconnect); the type is the channels'.
            pub fn recv(&mut self) -> Result<Instant, RecvError> {
                self.0.recv()
            }

            #[doc = concat!("Waits at most `timeout` for ", $what, ".")]
            ///
            /// # Errors
            ///
            /// [`RecvTimeoutError::Timeout`].
            pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Instant, RecvTimeoutError> {
                self.0.recv_deadline(Instant::now().checked_add(timeout))
            }

            #[doc = concat!("Waits until `deadline` for ", $what, ".")]
            ///
            /// # Errors
            ///
            /// [`RecvTimeoutError::Timeout`].
            pub fn recv_deadline(&mut self, deadline: Instant) -> Result<Instant, RecvTimeoutError> {
                self.0.recv_deadline(Some(deadline))
            }
        }

        impl Handle for $timer {
            fn id(&self) -> u64 {
                self.0.id
            }
            fn try_select(&mut self, _probe: bool) -> bool {
                if self.0.staged.is_none() {
                    self.0.staged = self.0.take(Instant::now());
                }
                self.0.staged.is_some()
            }
            fn doorbell(&self) -> Option<Doorbell> {
                None
            }
            fn probe_interval(&self) -> Option<Duration> {
                None
            }
            fn deadline(&self) -> Option<Instant> {
                self.0.next
            }
            fn wait_strategy(&self) -> Option<WaitStrategy> {
                None
            }
        }

        impl SelectRecv for $timer {
            type Item = Instant;
            type Error = RecvError;
            fn complete_recv(&mut self, _: Token) -> Result<Instant, RecvError> {
                self.0.recv()
            }
        }
    )*};
}

timer_api!(After: "the timer", Tick: "the next tick");

/// An operation that is never ready; made by [`never`].
pub struct Never<T> {
    id: u64,
    _type: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Never<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Never { .. }")
    }
}

/// A receive that never delivers, as crossbeam-channel's `never`: an arm of a
/// [`select!`](crate::select!) that is never selected (a select on `never` alone waits for
/// ever, or until its `default(timeout)`).
///
/// ```
/// use std::time::Duration;
/// let mut nothing = shmbus::never::<u32>();
/// let timed_out = shmbus::select! {
///     recv(nothing) -> _ => false,
///     default(Duration::from_millis(5)) => true,
/// };
/// assert!(timed_out);
/// ```
///
/// An optional timeout needs no `never`: `after(Duration::MAX)` never fires.
pub fn never<T>() -> Never<T> {
    Never {
        id: next_id(),
        _type: PhantomData,
    }
}

impl<T> Never<T> {
    /// Always [`TryRecvError::Empty`].
    ///
    /// # Errors
    ///
    /// Always.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        Err(TryRecvError::Empty)
    }

    /// Waits for ever.
    ///
    /// # Errors
    ///
    /// Never returns.
    pub fn recv(&mut self) -> Result<T, RecvError> {
        sleep_until(None);
        Err(RecvError::Disconnected)
    }

    /// Waits `timeout`, then [`RecvTimeoutError::Timeout`].
    ///
    /// # Errors
    ///
    /// Always.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        sleep_until(Instant::now().checked_add(timeout));
        Err(RecvTimeoutError::Timeout)
    }

    /// Waits until `deadline`, then [`RecvTimeoutError::Timeout`].
    ///
    /// # Errors
    ///
    /// Always.
    pub fn recv_deadline(&mut self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        sleep_until(Some(deadline));
        Err(RecvTimeoutError::Timeout)
    }
}

impl<T> Handle for Never<T> {
    fn id(&self) -> u64 {
        self.id
    }
    fn try_select(&mut self, _probe: bool) -> bool {
        false
    }
    fn doorbell(&self) -> Option<Doorbell> {
        None
    }
    fn probe_interval(&self) -> Option<Duration> {
        None
    }
    fn deadline(&self) -> Option<Instant> {
        None
    }
    fn wait_strategy(&self) -> Option<WaitStrategy> {
        None
    }
}

impl<T> SelectRecv for Never<T> {
    type Item = T;
    type Error = RecvError;
    fn complete_recv(&mut self, _: Token) -> Result<T, RecvError> {
        self.recv()
    }
}
