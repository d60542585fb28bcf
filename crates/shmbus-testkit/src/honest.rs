//! Honest endpoints that tolerate garbage: a producer and a consumer of either ring kind,
//! driven by [`Honest`] operations on a ring whose shared memory may hold anything (an image
//! opened by [`crate::images::run_open`], a ring written into by
//! [`crate::hostile::run_hostile`]). Errors from the ring are fine; what must never happen is
//! a panic, a hang of a timed call, or a payload longer than the ring's limit.

use crate::fuzz_len;
use shmbus_ring::{
    Consumer, MpmcConsumer, MpmcProducer, MpmcRing, PopError, Producer, PushError, SpscRing,
};
use std::time::{Duration, Instant};

/// One honest operation, meaningful for both ring kinds (see [`Ends::apply`]).
#[derive(Debug, Clone)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Honest {
    /// `try_push`.
    Push(u16),
    /// SPSC `try_push_batch`; MPMC `push_burst` (even count) or `push_bulk` (odd).
    PushMany(u8, u16),
    /// SPSC `reserve`; MPMC `claim`; then commit (true) or abandon.
    Reserve(u16, bool),
    /// `try_pop` into a buffer of the ring's record limit.
    Pop,
    /// `try_pop_vec`.
    PopVec,
    /// SPSC `pop_batch`; MPMC `pop_burst`.
    PopMany(u8),
    /// SPSC `peek` (release or keep); MPMC consumer `claim`.
    Peek(bool),
    /// SPSC `is_empty`; MPMC `try_pop_with`.
    Probe,
    /// Drop the producer (true) or consumer and attach a new one.
    Reattach(bool),
    /// `push_timeout` with a short timeout: must return by then (plus scheduling slack),
    /// whatever a peer wrote into the wake words.
    TimedPush(u16),
    /// `pop_timeout` with a short timeout; as `TimedPush`.
    TimedPop,
}

/// The timeout of [`Honest::TimedPush`] / [`Honest::TimedPop`].
pub const TIMED: Duration = Duration::from_micros(50);
/// How late a timed call may return before it counts as a hang (a loaded 2-vCPU machine can
/// deschedule the caller for a while; a real hang is caught by libFuzzer's -timeout too).
pub const TIMED_SLACK: Duration = Duration::from_secs(2);

fn timed<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let t = Instant::now();
    let r = f();
    let took = t.elapsed();
    ensure!(
        took <= TIMED + TIMED_SLACK,
        "a {TIMED:?} timed call took {took:?}"
    );
    Ok(r)
}

/// What [`Ends`] needs of a ring kind: its endpoints, and the operations whose form differs
/// between the kinds. Methods that check an invariant return `Err(description)` when it is
/// broken, and otherwise the ring's own result.
pub trait HonestRing {
    /// The producer endpoint.
    type Tx;
    /// The consumer endpoint.
    type Rx;
    /// Attaches a producer, if the ring lets one attach.
    fn producer(&self) -> Option<Self::Tx>;
    /// Attaches a consumer, if the ring lets one attach.
    fn consumer(&self) -> Option<Self::Rx>;
    /// The longest payload: the record limit or the slot size.
    fn limit(&self) -> usize;
    /// The payload length of [`Honest::Push`].
    fn push_len(raw: u16, max: usize) -> usize {
        fuzz_len(raw, max)
    }
    /// `try_push`.
    fn try_push(tx: &mut Self::Tx, data: &[u8]) -> Result<(), PushError>;
    /// `push_timeout`.
    fn push_timeout(tx: &mut Self::Tx, data: &[u8], timeout: Duration) -> Result<(), PushError>;
    /// [`Honest::PushMany`] with the batch already made (`n` picks the call).
    fn push_many(
        tx: &mut Self::Tx,
        n: u8,
        batch: &[Vec<u8>],
    ) -> Result<Result<(), PushError>, String>;
    /// [`Honest::Reserve`].
    fn reserve(
        tx: &mut Self::Tx,
        raw: u16,
        commit: bool,
        max: usize,
    ) -> Result<Result<(), PushError>, String>;
    /// `try_pop`.
    fn try_pop(rx: &mut Self::Rx, buf: &mut [u8]) -> Result<usize, PopError>;
    /// `try_pop_vec`.
    fn try_pop_vec(rx: &mut Self::Rx, v: &mut Vec<u8>) -> Result<usize, PopError>;
    /// `pop_timeout`.
    fn pop_timeout(rx: &mut Self::Rx, buf: &mut [u8], timeout: Duration)
        -> Result<usize, PopError>;
    /// The name of [`HonestRing::pop_many`]'s call, for messages.
    const POP_MANY: &'static str;
    /// SPSC `pop_batch`, MPMC `pop_burst`.
    fn pop_many(rx: &mut Self::Rx, n: usize, f: &mut dyn FnMut(&[u8])) -> Result<usize, PopError>;
    /// [`Honest::Peek`].
    fn peek(rx: &mut Self::Rx, release: bool, max: usize) -> Result<Result<(), PopError>, String>;
    /// [`Honest::Probe`]: the length of a popped message, if the probe pops.
    fn probe(rx: &mut Self::Rx) -> Result<Option<usize>, PopError>;
}

impl HonestRing for SpscRing {
    type Tx = Producer;
    type Rx = Consumer;
    const POP_MANY: &'static str = "pop_batch";

    fn producer(&self) -> Option<Producer> {
        SpscRing::producer(self).ok()
    }
    fn consumer(&self) -> Option<Consumer> {
        SpscRing::consumer(self).ok()
    }
    fn limit(&self) -> usize {
        self.max_record()
    }
    fn push_len(raw: u16, max: usize) -> usize {
        fuzz_len(raw, max).min(max + 8)
    }
    fn try_push(tx: &mut Producer, data: &[u8]) -> Result<(), PushError> {
        tx.try_push(data)
    }
    fn push_timeout(tx: &mut Producer, data: &[u8], timeout: Duration) -> Result<(), PushError> {
        tx.push_timeout(data, timeout)
    }
    fn push_many(
        tx: &mut Producer,
        _n: u8,
        batch: &[Vec<u8>],
    ) -> Result<Result<(), PushError>, String> {
        let r = tx.try_push_batch(batch);
        if let Ok(k) = r {
            ensure!(k <= batch.len(), "batch pushed {k} of {}", batch.len());
        }
        Ok(r.map(|_| ()))
    }
    fn reserve(
        tx: &mut Producer,
        raw: u16,
        commit: bool,
        max: usize,
    ) -> Result<Result<(), PushError>, String> {
        let len = fuzz_len(raw, max);
        match tx.reserve(len) {
            Ok(mut r) => {
                ensure_eq!(r.len(), len, "reservation length");
                r.fill(0xA5);
                if commit {
                    r.commit();
                }
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(e)),
        }
    }
    fn try_pop(rx: &mut Consumer, buf: &mut [u8]) -> Result<usize, PopError> {
        rx.try_pop(buf)
    }
    fn try_pop_vec(rx: &mut Consumer, v: &mut Vec<u8>) -> Result<usize, PopError> {
        rx.try_pop_vec(v)
    }
    fn pop_timeout(
        rx: &mut Consumer,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<usize, PopError> {
        rx.pop_timeout(buf, timeout)
    }
    fn pop_many(rx: &mut Consumer, n: usize, f: &mut dyn FnMut(&[u8])) -> Result<usize, PopError> {
        rx.pop_batch(n, f)
    }
    fn peek(rx: &mut Consumer, release: bool, max: usize) -> Result<Result<(), PopError>, String> {
        match rx.peek() {
            Ok(Some(p)) => {
                ensure!(p.len() <= max, "peeked {} bytes, limit {max}", p.len());
                if release {
                    p.release();
                }
                Ok(Ok(()))
            }
            Ok(None) => Ok(Ok(())),
            Err(e) => Ok(Err(e)),
        }
    }
    fn probe(rx: &mut Consumer) -> Result<Option<usize>, PopError> {
        let _ = rx.is_empty();
        Ok(None)
    }
}

impl HonestRing for MpmcRing {
    type Tx = MpmcProducer;
    type Rx = MpmcConsumer;
    const POP_MANY: &'static str = "pop_burst";

    fn producer(&self) -> Option<MpmcProducer> {
        MpmcRing::producer(self).ok()
    }
    fn consumer(&self) -> Option<MpmcConsumer> {
        MpmcRing::consumer(self).ok()
    }
    fn limit(&self) -> usize {
        self.slot_size()
    }
    fn try_push(tx: &mut MpmcProducer, data: &[u8]) -> Result<(), PushError> {
        tx.try_push(data)
    }
    fn push_timeout(
        tx: &mut MpmcProducer,
        data: &[u8],
        timeout: Duration,
    ) -> Result<(), PushError> {
        tx.push_timeout(data, timeout)
    }
    fn push_many(
        tx: &mut MpmcProducer,
        n: u8,
        batch: &[Vec<u8>],
    ) -> Result<Result<(), PushError>, String> {
        if n % 2 == 0 {
            let r = tx.push_burst(batch);
            if let Ok(k) = r {
                ensure!(k <= batch.len(), "burst pushed {k} of {}", batch.len());
            }
            Ok(r.map(|_| ()))
        } else {
            Ok(tx.push_bulk(batch))
        }
    }
    fn reserve(
        tx: &mut MpmcProducer,
        raw: u16,
        commit: bool,
        max: usize,
    ) -> Result<Result<(), PushError>, String> {
        match tx.claim() {
            Ok(mut slot) => {
                ensure_eq!(slot.len(), max, "write slot length");
                let len = usize::from(raw) % (max + 1);
                slot[..len].fill(0x5A);
                if commit {
                    slot.commit(len);
                }
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(e)),
        }
    }
    fn try_pop(rx: &mut MpmcConsumer, buf: &mut [u8]) -> Result<usize, PopError> {
        rx.try_pop(buf)
    }
    fn try_pop_vec(rx: &mut MpmcConsumer, v: &mut Vec<u8>) -> Result<usize, PopError> {
        rx.try_pop_vec(v)
    }
    fn pop_timeout(
        rx: &mut MpmcConsumer,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<usize, PopError> {
        rx.pop_timeout(buf, timeout)
    }
    fn pop_many(
        rx: &mut MpmcConsumer,
        n: usize,
        f: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, PopError> {
        rx.pop_burst(n, f)
    }
    fn peek(
        rx: &mut MpmcConsumer,
        _release: bool,
        max: usize,
    ) -> Result<Result<(), PopError>, String> {
        match rx.claim() {
            Ok(Some(msg)) => {
                ensure!(msg.len() <= max, "claimed {} bytes, limit {max}", msg.len());
                Ok(Ok(()))
            }
            Ok(None) => Ok(Ok(())),
            Err(e) => Ok(Err(e)),
        }
    }
    fn probe(rx: &mut MpmcConsumer) -> Result<Option<usize>, PopError> {
        rx.try_pop_with(|b| b.len()).map(Some)
    }
}

/// A producer and a consumer of one ring, each present if attaching succeeded.
pub struct Ends<R: HonestRing> {
    pub(crate) tx: Option<R::Tx>,
    pub(crate) rx: Option<R::Rx>,
    max: usize,
    seq: u8,
    /// Set once any call returned `Corrupt` (for reporting; not required).
    pub saw_corrupt: bool,
}

/// The honest endpoints of an SPSC ring.
pub type SpscEnds = Ends<SpscRing>;
/// The honest endpoints of an MPMC ring.
pub type MpmcEnds = Ends<MpmcRing>;

impl<R: HonestRing> Ends<R> {
    /// Attaches both ends (either may fail on garbage).
    pub fn attach(ring: &R) -> Ends<R> {
        Ends {
            tx: ring.producer(),
            rx: ring.consumer(),
            max: ring.limit(),
            seq: 0,
            saw_corrupt: false,
        }
    }

    /// Whether both ends are attached.
    pub fn both_attached(&self) -> bool {
        self.tx.is_some() && self.rx.is_some()
    }

    fn payload(&mut self, len: usize) -> Vec<u8> {
        self.seq = self.seq.wrapping_add(1);
        vec![self.seq; len]
    }

    fn push_result<T>(&mut self, r: &Result<T, PushError>) {
        if let Err(PushError::Corrupt(_)) = r {
            self.saw_corrupt = true;
        }
    }

    fn pop_result<T>(&mut self, r: &Result<T, PopError>) {
        if let Err(PopError::Corrupt(_)) = r {
            self.saw_corrupt = true;
        }
    }

    /// Applies one honest operation; `Err` only when the ring hands out something impossible
    /// (more than its limit, a wrong length) or a timed call overstays.
    pub fn apply(&mut self, ring: &R, op: &Honest) -> Result<(), String> {
        let max = self.max;
        match *op {
            Honest::Push(raw) => {
                let data = self.payload(R::push_len(raw, max));
                if let Some(tx) = self.tx.as_mut() {
                    let r = R::try_push(tx, &data);
                    self.push_result(&r);
                }
            }
            Honest::PushMany(n, raw) => {
                let batch: Vec<Vec<u8>> = (0..n % 6)
                    .map(|_| self.payload(fuzz_len(raw, max)))
                    .collect();
                if let Some(tx) = self.tx.as_mut() {
                    let r = R::push_many(tx, n, &batch)?;
                    self.push_result(&r);
                }
            }
            Honest::Reserve(raw, commit) => {
                if let Some(tx) = self.tx.as_mut() {
                    let r = R::reserve(tx, raw, commit, max)?;
                    self.push_result(&r);
                }
            }
            Honest::Pop => {
                let mut buf = vec![0u8; max];
                if let Some(rx) = self.rx.as_mut() {
                    let r = R::try_pop(rx, &mut buf);
                    if let Ok(n) = r {
                        ensure!(n <= max, "popped {n} bytes, limit {max}");
                    }
                    self.pop_result(&r);
                }
            }
            Honest::PopVec => {
                let mut v = Vec::new();
                if let Some(rx) = self.rx.as_mut() {
                    let r = R::try_pop_vec(rx, &mut v);
                    if let Ok(n) = r {
                        ensure!(n <= max && n == v.len(), "popped {n} bytes, limit {max}");
                    }
                    self.pop_result(&r);
                }
            }
            Honest::PopMany(n) => {
                if let Some(rx) = self.rx.as_mut() {
                    let mut bad = None;
                    let r = R::pop_many(rx, usize::from(n % 8), &mut |b| {
                        if b.len() > max {
                            bad = Some(b.len());
                        }
                    });
                    ensure!(
                        bad.is_none(),
                        "{} handed out {bad:?} bytes, limit {max}",
                        R::POP_MANY
                    );
                    self.pop_result(&r);
                }
            }
            Honest::Peek(release) => {
                if let Some(rx) = self.rx.as_mut() {
                    let r = R::peek(rx, release, max)?;
                    self.pop_result(&r);
                }
            }
            Honest::Probe => {
                if let Some(rx) = self.rx.as_mut() {
                    let r = R::probe(rx);
                    if let Ok(Some(n)) = r {
                        ensure!(n <= max, "popped {n} bytes, limit {max}");
                    }
                    self.pop_result(&r);
                }
            }
            Honest::Reattach(producer) => {
                if producer {
                    self.tx = None;
                    self.tx = ring.producer();
                } else {
                    self.rx = None;
                    self.rx = ring.consumer();
                }
            }
            Honest::TimedPush(raw) => {
                let data = self.payload(fuzz_len(raw, max));
                if let Some(tx) = self.tx.as_mut() {
                    let r = timed(|| R::push_timeout(tx, &data, TIMED))?;
                    self.push_result(&r);
                }
            }
            Honest::TimedPop => {
                let mut buf = vec![0u8; max];
                if let Some(rx) = self.rx.as_mut() {
                    let r = timed(|| R::pop_timeout(rx, &mut buf, TIMED))?;
                    if let Ok(n) = r {
                        ensure!(n <= max, "popped {n} bytes, limit {max}");
                    }
                    self.pop_result(&r);
                }
            }
        }
        Ok(())
    }
}
