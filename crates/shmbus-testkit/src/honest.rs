//! Honest endpoints that tolerate garbage: a producer and a consumer of either ring kind,
//! driven by [`Honest`] operations on a ring whose shared memory may hold anything (an image
//! opened by [`crate::images::run_open`], a ring written into by
//! [`crate::hostile::run_hostile`]). Errors from the ring are fine; what must never happen is
//! a panic, a hang of a timed call, or a payload longer than the ring's limit.

use crate::fuzz_len;
use shmbus_ring::{Consumer, Kind, Mpmc, PopError, Producer, PushError, Ring, Spsc};
use std::time::{Duration, Instant};

/// One honest operation, meaningful for both ring kinds (see [`Ends::apply`]).
#[derive(Debug, Clone)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Honest {
    /// `try_push`.
    Push(u16),
    /// `try_push_batch`; MPMC: `try_push_all` for an odd count.
    PushMany(u8, u16),
    /// `reserve`, then commit (true) or abandon.
    Reserve(u16, bool),
    /// `try_pop` into a buffer of the ring's record limit.
    Pop,
    /// `try_pop_vec`.
    PopVec,
    /// `try_pop_batch`.
    PopMany(u8),
    /// `read`, in place (consumed when the guard drops).
    Read,
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

/// What [`Ends`] needs of a ring kind beyond the ring crate's common API: the two calls whose
/// form differs between the kinds.
pub trait HonestKind: Kind {
    /// The payload length of [`Honest::Push`].
    fn push_len(raw: u16, max: usize) -> usize {
        fuzz_len(raw, max)
    }
    /// [`Honest::PushMany`] with the batch already made (`n` picks the call).
    fn push_many(
        tx: &mut Producer<Self>,
        n: u8,
        batch: &[Vec<u8>],
    ) -> Result<Result<(), PushError>, String> {
        let _ = n;
        let r = tx.try_push_batch(batch);
        if let Ok(k) = r {
            ensure!(k <= batch.len(), "batch pushed {k} of {}", batch.len());
        }
        Ok(r.map(|_| ()))
    }
    /// [`Honest::Probe`]: the length of a popped message, if the probe pops.
    fn probe(rx: &mut Consumer<Self>) -> Result<Option<usize>, PopError>;
}

impl HonestKind for Spsc {
    fn push_len(raw: u16, max: usize) -> usize {
        fuzz_len(raw, max).min(max + 8)
    }
    fn probe(rx: &mut Consumer<Spsc>) -> Result<Option<usize>, PopError> {
        let _ = rx.is_empty();
        Ok(None)
    }
}

impl HonestKind for Mpmc {
    fn push_many(
        tx: &mut Producer<Mpmc>,
        n: u8,
        batch: &[Vec<u8>],
    ) -> Result<Result<(), PushError>, String> {
        if n % 2 == 0 {
            let r = tx.try_push_batch(batch);
            if let Ok(k) = r {
                ensure!(k <= batch.len(), "batch pushed {k} of {}", batch.len());
            }
            Ok(r.map(|_| ()))
        } else {
            Ok(tx.try_push_all(batch))
        }
    }
    fn probe(rx: &mut Consumer<Mpmc>) -> Result<Option<usize>, PopError> {
        rx.try_pop_with(<[u8]>::len).map(Some)
    }
}

/// [`Honest::Reserve`]: reserve, fill, then commit or abandon.
fn reserve<K: Kind>(
    tx: &mut Producer<K>,
    raw: u16,
    commit: bool,
    max: usize,
) -> Result<Result<(), PushError>, String> {
    let len = fuzz_len(raw, max);
    match tx.reserve(len) {
        Ok(mut w) => {
            ensure_eq!(w.len(), len, "reservation length");
            w.fill(0xA5);
            if commit {
                w.commit();
            }
            Ok(Ok(()))
        }
        Err(e) => Ok(Err(e)),
    }
}

/// [`Honest::Read`]: read in place (consumed when the guard drops).
fn read<K: Kind>(rx: &mut Consumer<K>, max: usize) -> Result<Result<(), PopError>, String> {
    match rx.read() {
        Ok(Some(msg)) => {
            ensure!(msg.len() <= max, "read {} bytes, limit {max}", msg.len());
            Ok(Ok(()))
        }
        Ok(None) => Ok(Ok(())),
        Err(e) => Ok(Err(e)),
    }
}

/// A producer and a consumer of one ring, each present if attaching succeeded.
pub struct Ends<K: HonestKind> {
    pub(crate) tx: Option<Producer<K>>,
    pub(crate) rx: Option<Consumer<K>>,
    max: usize,
    seq: u8,
    /// Set once any call returned `Corrupt` (for reporting; not required).
    pub saw_corrupt: bool,
}

/// The honest endpoints of an SPSC ring.
pub type SpscEnds = Ends<Spsc>;
/// The honest endpoints of an MPMC ring.
pub type MpmcEnds = Ends<Mpmc>;

impl<K: HonestKind> Ends<K> {
    /// Attaches both ends (either may fail on garbage).
    pub fn attach(ring: &Ring<K>) -> Ends<K> {
        Ends {
            tx: ring.producer().ok(),
            rx: ring.consumer().ok(),
            max: ring.max_message(),
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
    pub fn apply(&mut self, ring: &Ring<K>, op: &Honest) -> Result<(), String> {
        let max = self.max;
        match *op {
            Honest::Push(raw) => {
                let data = self.payload(K::push_len(raw, max));
                if let Some(tx) = self.tx.as_mut() {
                    let r = tx.try_push(&data);
                    self.push_result(&r);
                }
            }
            Honest::PushMany(n, raw) => {
                let batch: Vec<Vec<u8>> = (0..n % 6)
                    .map(|_| self.payload(fuzz_len(raw, max)))
                    .collect();
                if let Some(tx) = self.tx.as_mut() {
                    let r = K::push_many(tx, n, &batch)?;
                    self.push_result(&r);
                }
            }
            Honest::Reserve(raw, commit) => {
                if let Some(tx) = self.tx.as_mut() {
                    let r = reserve(tx, raw, commit, max)?;
                    self.push_result(&r);
                }
            }
            Honest::Pop => {
                let mut buf = vec![0u8; max];
                if let Some(rx) = self.rx.as_mut() {
                    let r = rx.try_pop(&mut buf);
                    if let Ok(n) = r {
                        ensure!(n <= max, "popped {n} bytes, limit {max}");
                    }
                    self.pop_result(&r);
                }
            }
            Honest::PopVec => {
                let mut v = Vec::new();
                if let Some(rx) = self.rx.as_mut() {
                    let r = rx.try_pop_vec(&mut v);
                    if let Ok(n) = r {
                        ensure!(n <= max && n == v.len(), "popped {n} bytes, limit {max}");
                    }
                    self.pop_result(&r);
                }
            }
            Honest::PopMany(n) => {
                if let Some(rx) = self.rx.as_mut() {
                    let mut bad = None;
                    let r = rx.try_pop_batch(usize::from(n % 8), |b| {
                        if b.len() > max {
                            bad = Some(b.len());
                        }
                    });
                    ensure!(
                        bad.is_none(),
                        "try_pop_batch handed out {bad:?} bytes, limit {max}"
                    );
                    self.pop_result(&r);
                }
            }
            Honest::Read => {
                if let Some(rx) = self.rx.as_mut() {
                    let r = read(rx, max)?;
                    self.pop_result(&r);
                }
            }
            Honest::Probe => {
                if let Some(rx) = self.rx.as_mut() {
                    let r = K::probe(rx);
                    if let Ok(Some(n)) = r {
                        ensure!(n <= max, "popped {n} bytes, limit {max}");
                    }
                    self.pop_result(&r);
                }
            }
            Honest::Reattach(producer) => {
                if producer {
                    self.tx = None;
                    self.tx = ring.producer().ok();
                } else {
                    self.rx = None;
                    self.rx = ring.consumer().ok();
                }
            }
            Honest::TimedPush(raw) => {
                let data = self.payload(fuzz_len(raw, max));
                if let Some(tx) = self.tx.as_mut() {
                    let r = timed(|| tx.push_timeout(&data, TIMED))?;
                    self.push_result(&r);
                }
            }
            Honest::TimedPop => {
                let mut buf = vec![0u8; max];
                if let Some(rx) = self.rx.as_mut() {
                    let r = timed(|| rx.pop_timeout(&mut buf, TIMED))?;
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
