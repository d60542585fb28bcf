//! SIGKILL at every step of the protocol, and at random moments.
//!
//! A child process (this test binary, re-spawned) runs one side of a ring with a crash point
//! armed (`shmbus_ring::crashpoint`): when it reaches that step it prints a marker and parks,
//! and the parent SIGKILLs it there. The parent is the surviving side. Afterwards it checks:
//!
//! - **progress within a bound**: a successor endpoint attaches (SPSC takeover), the survivors
//!   get past whatever the dead process held (repair), and the side that lost its peer sees
//!   `Disconnected`;
//! - **accounting**: the child acknowledges, in a separate shm word, every message it finished
//!   pushing (producer) or receiving (consumer). Every acknowledged push is received exactly
//!   once and in order; at most the one message in flight at the kill is extra (committed but
//!   not yet acknowledged) or missing (taken by a consumer that died holding it);
//! - **no leak**: at the end the endpoint table holds only the parent's endpoints.
//!
//! Every scenario runs over each backing a named ring can have ([`Store`]): POSIX shm, System V
//! (persistent), and System V destroyed on last detach. The victim opens the ring by name
//! either way (a System V ring through its companion file, which also carries the OFD locks).
#![cfg(not(loom))]

use shmbus_ring::liveness::{self, Vitality};
use shmbus_ring::segment::SysvOptions;
use shmbus_ring::{
    crashpoint, Consumer, MpmcConfig, MpmcConsumer, MpmcProducer, MpmcRing, PopError, Producer,
    PushError, Role, Segment, SegmentOptions, SpscConfig, SpscRing,
};
use shmbus_testkit::{respawn, role, unique_name, ChildGuard};
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The environment variables telling a victim what to open and where to park.
const KIND: &str = "SHMBUS_CRASH_KIND";
const RING: &str = "SHMBUS_CRASH_RING";
const ACK: &str = "SHMBUS_CRASH_ACK";
const POINT: &str = "SHMBUS_CRASH_POINT";
const ARM_AFTER: &str = "SHMBUS_CRASH_ARM_AFTER";
/// How often waiting endpoints check their peers in these tests.
const PROBE: Duration = Duration::from_millis(5);
/// Survivors must make progress within this after a kill (behaviour, not speed: generous
/// for a loaded 2-core CI machine; the measured times are printed).
const BOUND: Duration = Duration::from_secs(10);
/// A child must reach its crash point within this.
const REACH: Duration = Duration::from_secs(30);
/// Sequence numbers of a successor producer start here.
const SUCCESSOR: u64 = 1 << 40;
const MSG: usize = 24;

// ---------------------------------------------------------------------------------------------
// Messages: [seq][seq * golden][fnv(seq bytes)], so a torn or stale message is detected.
// ---------------------------------------------------------------------------------------------

fn message(seq: u64) -> [u8; MSG] {
    let mut m = [0u8; MSG];
    m[..8].copy_from_slice(&seq.to_le_bytes());
    m[8..16].copy_from_slice(&seq.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
    let h = m[..16].iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    });
    m[16..].copy_from_slice(&h.to_le_bytes());
    m
}

fn parse(bytes: &[u8]) -> u64 {
    assert_eq!(bytes.len(), MSG, "message length");
    let seq = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    assert_eq!(bytes, message(seq), "message {seq} is torn or corrupt");
    seq
}

// ---------------------------------------------------------------------------------------------
// One interface over both ring kinds.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Spsc,
    Mpmc,
}

/// What backs the ring of a trial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Store {
    Shm,
    Sysv,
    SysvDestroy,
}

const STORES: [Store; 3] = [Store::Shm, Store::Sysv, Store::SysvDestroy];

#[derive(Clone)]
enum Ring {
    Spsc(SpscRing),
    Mpmc(MpmcRing),
}

impl Ring {
    fn create(kind: Kind, store: Store, name: &str) -> Ring {
        let opts = SegmentOptions::default();
        let sysv = SysvOptions::new().destroy_on_last_detach(store == Store::SysvDestroy);
        // 1 KiB: 32 records of 24 B; small, so tests wrap around many times.
        let spsc = SpscConfig::new(1024);
        let mpmc = MpmcConfig::new(16, MSG as u64);
        match (kind, store) {
            (Kind::Spsc, Store::Shm) => {
                Ring::Spsc(SpscRing::create_shm(name, &spsc, &opts).unwrap())
            }
            (Kind::Spsc, _) => {
                Ring::Spsc(SpscRing::create_sysv(name, &spsc, &opts, &sysv).unwrap())
            }
            (Kind::Mpmc, Store::Shm) => {
                Ring::Mpmc(MpmcRing::create_shm(name, &mpmc, &opts).unwrap())
            }
            (Kind::Mpmc, _) => {
                Ring::Mpmc(MpmcRing::create_sysv(name, &mpmc, &opts, &sysv).unwrap())
            }
        }
    }

    fn open(kind: Kind, name: &str) -> Ring {
        let opts = SegmentOptions::default();
        match kind {
            Kind::Spsc => Ring::Spsc(SpscRing::open_shm(name, &opts).unwrap()),
            Kind::Mpmc => Ring::Mpmc(MpmcRing::open_shm(name, &opts).unwrap()),
        }
    }

    fn segment(&self) -> &Segment {
        match self {
            Ring::Spsc(r) => r.segment(),
            Ring::Mpmc(r) => r.segment(),
        }
    }

    fn producer(&self) -> shmbus_ring::Result<Tx> {
        let mut tx = match self {
            Ring::Spsc(r) => Tx::Spsc(r.producer()?),
            Ring::Mpmc(r) => Tx::Mpmc(r.producer()?),
        };
        match &mut tx {
            Tx::Spsc(p) => p.set_probe_interval(PROBE),
            Tx::Mpmc(p) => p.set_probe_interval(PROBE),
        }
        Ok(tx)
    }

    fn consumer(&self) -> shmbus_ring::Result<Rx> {
        let mut rx = match self {
            Ring::Spsc(r) => Rx::Spsc(r.consumer()?),
            Ring::Mpmc(r) => Rx::Mpmc(r.consumer()?),
        };
        match &mut rx {
            Rx::Spsc(c) => c.set_probe_interval(PROBE),
            Rx::Mpmc(c) => c.set_probe_interval(PROBE),
        }
        Ok(rx)
    }
}

enum Tx {
    Spsc(Producer),
    Mpmc(MpmcProducer),
}

impl Tx {
    /// Pushes message `seq` by one of three paths (copy, batch/bulk of one, zero-copy), so
    /// every crash point of the producer is reachable.
    fn try_send(&mut self, seq: u64) -> Result<(), PushError> {
        let m = message(seq);
        match (self, seq % 3) {
            (Tx::Spsc(p), 0) => p.try_push(&m),
            (Tx::Spsc(p), 1) => p.try_push_batch(&[&m[..]]).map(|_| ()),
            (Tx::Spsc(p), _) => {
                let mut r = p.reserve(MSG)?;
                r.copy_from_slice(&m);
                r.commit();
                Ok(())
            }
            (Tx::Mpmc(p), 0) => p.try_push(&m),
            (Tx::Mpmc(p), 1) => p.try_push_all(&[&m[..]]),
            (Tx::Mpmc(p), _) => {
                let mut s = p.reserve(MSG)?;
                s.copy_from_slice(&m);
                s.commit();
                Ok(())
            }
        }
    }
}

enum Rx {
    Spsc(Consumer),
    Mpmc(MpmcConsumer),
}

impl Rx {
    fn try_recv(&mut self, buf: &mut Vec<u8>) -> Result<u64, PopError> {
        match self {
            Rx::Spsc(c) => c.try_pop_vec(buf)?,
            Rx::Mpmc(c) => c.try_pop_vec(buf)?,
        };
        Ok(parse(buf))
    }
}

// ---------------------------------------------------------------------------------------------
// The child: one side of the ring, acknowledging as it goes, parked at its crash point.
// ---------------------------------------------------------------------------------------------

/// Runs the child role if this process is one; returns whether it was.
fn child() -> bool {
    let Some(role) = role() else {
        return false;
    };
    let kind = match std::env::var(KIND).unwrap().as_str() {
        "spsc" => Kind::Spsc,
        _ => Kind::Mpmc,
    };
    let ring = Ring::open(kind, &std::env::var(RING).unwrap());
    let ack_seg = Segment::open(&std::env::var(ACK).unwrap(), &SegmentOptions::default()).unwrap();
    let ack = ack_seg.atomic_u64(0).unwrap();
    let point = std::env::var(POINT).unwrap_or_default();
    let arm_after: u64 = std::env::var(ARM_AFTER).unwrap().parse().unwrap();
    // Registration points are reached while attaching, before any message.
    if (arm_after == 0 || point.starts_with("register.")) && !point.is_empty() {
        crashpoint::arm(&point);
    }
    let deadline = Instant::now() + REACH + BOUND;
    if role.as_str() == "producer" {
        let mut tx = ring.producer().unwrap();
        for seq in 0.. {
            if seq == arm_after && !point.is_empty() {
                crashpoint::arm(&point);
                if point.starts_with("unregister.") {
                    drop(tx);
                    unreachable!("parked in unregister");
                }
            }
            loop {
                match tx.try_send(seq) {
                    Ok(()) => break,
                    Err(PushError::Full) => std::thread::sleep(Duration::from_micros(20)),
                    Err(e) => panic!("child producer: {e}"),
                }
                assert!(Instant::now() < deadline, "child producer: deadline");
            }
            // Release: the parent reads it with Acquire after the kill.
            ack.store(seq + 1, Ordering::Release);
        }
    } else {
        let mut rx = ring.consumer().unwrap();
        let mut buf = Vec::new();
        let mut received = 0u64;
        loop {
            if received == arm_after && arm_after > 0 && !point.is_empty() {
                crashpoint::arm(&point);
                if point.starts_with("unregister.") {
                    drop(rx);
                    unreachable!("parked in unregister");
                }
            }
            match rx.try_recv(&mut buf) {
                Ok(seq) => {
                    assert_eq!(seq, ack.load(Ordering::Relaxed), "child consumer: order");
                    received += 1;
                    ack.store(seq + 1, Ordering::Release);
                }
                Err(PopError::Empty | PopError::Disconnected) => {
                    std::thread::sleep(Duration::from_micros(20));
                }
                Err(e) => panic!("child consumer: {e}"),
            }
            assert!(Instant::now() < deadline, "child consumer: deadline");
        }
    }
    true
}

// ---------------------------------------------------------------------------------------------
// The parent's side.
// ---------------------------------------------------------------------------------------------

/// A child parked (or on its way) at a crash point; killed and reaped if the test fails.
struct Victim {
    child: ChildGuard,
    parked: mpsc::Receiver<String>,
}

impl Victim {
    fn spawn(
        test: &str,
        role: &str,
        kind: Kind,
        ring: &str,
        ack: &str,
        point: &str,
        arm_after: u64,
    ) -> Victim {
        let mut child = ChildGuard::spawn(
            respawn(test, role)
                .env(KIND, if kind == Kind::Spsc { "spsc" } else { "mpmc" })
                .env(RING, ring)
                .env(ACK, ack)
                .env(POINT, point)
                .env(ARM_AFTER, arm_after.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        );
        let (tx, parked) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err)
                .lines()
                .map_while(std::result::Result::ok)
            {
                if let Some(point) = line.strip_prefix("shmbus-crashpoint: ") {
                    let _ = tx.send(point.to_string());
                } else {
                    let _ = writeln!(std::io::stderr(), "victim: {line}");
                }
            }
        });
        Victim { child, parked }
    }

    /// Whether the victim has parked at its crash point; panics if it exited instead.
    fn is_parked(&mut self) -> bool {
        if self.parked.try_recv().is_ok() {
            return true;
        }
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("the victim exited ({status}) before reaching its crash point");
        }
        false
    }

    fn kill(mut self) -> Instant {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        Instant::now()
    }
}

/// A fresh ring and acknowledgement word for one trial.
struct Trial {
    kind: Kind,
    ring_name: String,
    ack_name: String,
    ring: Ring,
    ack_seg: Segment,
}

impl Trial {
    fn new(kind: Kind, store: Store, tag: &str) -> Trial {
        let base = unique_name(&format!("crash-{tag}"));
        let ring_name = format!("{base}-ring");
        let ack_name = format!("{base}-ack");
        let ring = Ring::create(kind, store, &ring_name);
        let ack_seg = Segment::create(&ack_name, 4096, &SegmentOptions::default()).unwrap();
        Trial {
            kind,
            ring_name,
            ack_name,
            ring,
            ack_seg,
        }
    }

    fn ack(&self) -> &AtomicU64 {
        self.ack_seg.atomic_u64(0).unwrap()
    }

    fn spawn(&self, test: &str, role: &str, point: &str, arm_after: u64) -> Victim {
        Victim::spawn(
            test,
            role,
            self.kind,
            &self.ring_name,
            &self.ack_name,
            point,
            arm_after,
        )
    }

    /// The endpoints left in the table are exactly `expect` (roles), all alive.
    fn assert_table(&self, expect: &[Role], what: &str) {
        let eps = liveness::endpoints(self.ring.segment()).unwrap();
        let mut roles: Vec<_> = eps.iter().map(|e| e.role).collect();
        roles.sort_by_key(|r| *r as u8);
        let mut want = expect.to_vec();
        want.sort_by_key(|r| *r as u8);
        assert_eq!(roles, want, "{what}: endpoint table {eps:?}");
        assert!(
            eps.iter().all(|e| e.vitality == Vitality::Alive),
            "{what}: {eps:?}"
        );
    }
}

fn within<T>(what: &str, since: Instant, mut f: impl FnMut() -> Option<T>) -> T {
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            since.elapsed() < BOUND,
            "{what}: no progress within {BOUND:?}"
        );
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// The victim is a producer; the parent consumes. Returns the time from the kill to the
/// first message of a successor producer (which needs the dead one reaped and, for MPMC, its
/// claimed slot repaired).
fn producer_dies(test: &str, kind: Kind, store: Store, point: &str, arm_after: u64) -> Duration {
    let t = Trial::new(kind, store, "p");
    let what = format!("{kind:?} on {store:?}: producer killed at {point:?} after {arm_after}");
    let mut rx = t.ring.consumer().unwrap();
    let mut buf = Vec::new();
    let mut got = Vec::new();
    let mut victim = t.spawn(test, "producer", point, arm_after);
    let start = Instant::now();
    // Consume while the victim runs; a random kill (empty point) comes after `arm_after` µs.
    loop {
        match rx.try_recv(&mut buf) {
            Ok(seq) => got.push(seq),
            Err(PopError::Empty) => std::thread::sleep(Duration::from_micros(10)),
            Err(e) => panic!("{what}: consumer before the kill: {e}"),
        }
        if point.is_empty() {
            if start.elapsed() >= Duration::from_micros(arm_after)
                && t.ack().load(Ordering::Acquire) > 0
            {
                break;
            }
            assert!(start.elapsed() < REACH, "{what}: victim made no progress");
        } else if victim.is_parked() {
            break;
        } else {
            assert!(
                start.elapsed() < REACH,
                "{what}: the point was never reached"
            );
        }
    }
    let killed = victim.kill();
    // Acquire: pairs with the victim's Release store after each completed push.
    let acked = t.ack().load(Ordering::Acquire);
    // A successor producer attaches (SPSC: takes over the dead owner) and sends more.
    let mut tx = within(&format!("{what}: successor attach"), killed, || {
        t.ring.producer().ok()
    });
    let extra = 40;
    let (mut sent, mut progress) = (0u64, None);
    while got.last().copied() != Some(SUCCESSOR + extra - 1) {
        if sent < extra {
            match tx.try_send(SUCCESSOR + sent) {
                Ok(()) => sent += 1,
                Err(PushError::Full) => {}
                Err(e) => panic!("{what}: successor push: {e}"),
            }
        }
        match rx.try_recv(&mut buf) {
            Ok(seq) => {
                if seq >= SUCCESSOR && progress.is_none() {
                    progress = Some(killed.elapsed());
                }
                got.push(seq);
            }
            Err(PopError::Empty) => std::thread::sleep(Duration::from_micros(10)),
            Err(e) => panic!("{what}: consumer after the kill: {e}"),
        }
        assert!(
            killed.elapsed() < BOUND,
            "{what}: no progress within {BOUND:?}: got {} messages, acked {acked}",
            got.len()
        );
    }
    // Accounting: the victim's messages are 0..r in order, r = acked or acked + 1 (one
    // committed but not acknowledged); the successor's follow, all of them, in order.
    let old: Vec<u64> = got.iter().copied().filter(|s| *s < SUCCESSOR).collect();
    let new: Vec<u64> = got.iter().copied().filter(|s| *s >= SUCCESSOR).collect();
    assert!(
        old.iter().copied().eq(0..old.len() as u64),
        "{what}: victim's messages lost, duplicated or reordered"
    );
    let r = old.len() as u64;
    assert!(
        r == acked || r == acked + 1,
        "{what}: received {r}, acknowledged {acked}"
    );
    assert!(
        new.iter().copied().eq(SUCCESSOR..SUCCESSOR + extra),
        "{what}: successor"
    );
    // The successor leaves: the consumer sees the stream end.
    drop(tx);
    within(
        &format!("{what}: disconnected"),
        Instant::now(),
        || match rx.try_recv(&mut buf) {
            Err(PopError::Disconnected) => Some(()),
            Err(PopError::Empty) => None,
            other => panic!("{what}: after the successor left: {other:?}"),
        },
    );
    // A victim killed while registering never set its roster bit, so `Disconnected` may come
    // before the consumer's next probe reaps its entry: keep polling until it has.
    within(
        &format!("{what}: dead entry reaped"),
        Instant::now(),
        || {
            let _ = rx.try_recv(&mut buf);
            (liveness::endpoints(t.ring.segment()).unwrap().len() == 1).then_some(())
        },
    );
    t.assert_table(&[Role::Consumer], &what);
    progress.unwrap()
}

/// The victim is a consumer; the parent produces. Returns the time from the kill to the
/// producer's `Disconnected`.
fn consumer_dies(test: &str, kind: Kind, store: Store, point: &str, arm_after: u64) -> Duration {
    let t = Trial::new(kind, store, "c");
    let what = format!("{kind:?} on {store:?}: consumer killed at {point:?} after {arm_after}");
    let mut tx = t.ring.producer().unwrap();
    let mut victim = t.spawn(test, "consumer", point, arm_after);
    let start = Instant::now();
    let mut next = 0u64;
    loop {
        match tx.try_send(next) {
            Ok(()) => next += 1,
            Err(PushError::Full) => std::thread::sleep(Duration::from_micros(10)),
            Err(e) => panic!("{what}: producer before the kill: {e}"),
        }
        if point.is_empty() {
            if start.elapsed() >= Duration::from_micros(arm_after)
                && t.ack().load(Ordering::Acquire) > 0
            {
                break;
            }
            assert!(start.elapsed() < REACH, "{what}: victim made no progress");
        } else if victim.is_parked() {
            break;
        } else {
            assert!(
                start.elapsed() < REACH,
                "{what}: the point was never reached"
            );
        }
    }
    let killed = victim.kill();
    let acked = t.ack().load(Ordering::Acquire);
    // The producer fills the ring, finds the consumer dead, reaps it, and reports it. A
    // victim killed while registering never attached: the producer keeps waiting for a
    // consumer (no `Disconnected`), but the dead entry is reaped all the same.
    let attached = !point.starts_with("register.");
    let disconnected = within(
        &format!("{what}: producer reaps the victim"),
        killed,
        || match tx.try_send(next) {
            Ok(()) => {
                next += 1;
                None
            }
            Err(PushError::Full) if attached => None,
            Err(PushError::Full) => {
                let left = liveness::endpoints(t.ring.segment()).unwrap().len();
                (left == 1).then(|| killed.elapsed())
            }
            Err(PushError::Disconnected) if attached => Some(killed.elapsed()),
            Err(e) => panic!("{what}: producer after the kill: {e}"),
        },
    );
    // A new consumer drains everything the victim had not finished.
    let mut rx = t.ring.consumer().unwrap();
    let mut buf = Vec::new();
    let mut got = Vec::new();
    // Then the ring must still work for several laps (the victim's claim was repaired).
    let total = next + 100;
    while got.last().map_or(true, |s| *s + 1 < total) {
        if next < total {
            match tx.try_send(next) {
                Ok(()) => next += 1,
                Err(PushError::Full) => {}
                Err(e) => panic!("{what}: producer with the new consumer: {e}"),
            }
        }
        match rx.try_recv(&mut buf) {
            Ok(seq) => got.push(seq),
            Err(PopError::Empty) => std::thread::sleep(Duration::from_micros(10)),
            Err(e) => panic!("{what}: new consumer: {e}"),
        }
        assert!(
            killed.elapsed() < BOUND,
            "{what}: no progress within {BOUND:?}"
        );
    }
    // Accounting: the victim received 0..acked; the new consumer gets the rest in order,
    // starting at acked (nothing lost) or acked + 1 (the one message the victim held).
    let first = got[0];
    assert!(
        first == acked || first == acked + 1,
        "{what}: new consumer starts at {first}, victim acknowledged {acked}"
    );
    assert!(
        got.iter().copied().eq(first..total),
        "{what}: messages lost, duplicated or reordered after the kill"
    );
    drop(rx);
    drop(tx);
    t.assert_table(&[], &what);
    disconnected
}

/// A producer dies holding a claimed slot; a consumer that reaps it is killed at a step of
/// the reaping; the parent's consumer takes the reaping over and finishes the stream.
fn reaper_dies(test: &str, store: Store, point: &str, arm_after: u64) -> Duration {
    let t = Trial::new(Kind::Mpmc, store, "r");
    let what = format!("{store:?}: reaper killed at {point:?}, producer after {arm_after}");
    let mut rx = t.ring.consumer().unwrap();
    // The producer parks holding a written, uncommitted slot; the ring fills behind it.
    let mut producer = t.spawn(test, "producer", "mpmc.push.written", arm_after);
    let start = Instant::now();
    while !producer.is_parked() {
        assert!(start.elapsed() < REACH, "{what}: producer never parked");
        std::thread::sleep(Duration::from_micros(100));
    }
    producer.kill();
    let produced = t.ack().load(Ordering::Acquire);
    t.ack().store(0, Ordering::Release);
    // The reaper: a consumer that drains, finds the dead claim, and reaps it.
    let mut reaper = t.spawn(test, "consumer", point, 0);
    while !reaper.is_parked() {
        assert!(
            start.elapsed() < REACH,
            "{what}: reaper never reached the point"
        );
        std::thread::sleep(Duration::from_micros(100));
    }
    let killed = reaper.kill();
    let reaped_by_child = t.ack().load(Ordering::Acquire);
    let mut buf = Vec::new();
    let mut got = Vec::new();
    within(
        &format!("{what}: survivor sees Disconnected"),
        killed,
        || match rx.try_recv(&mut buf) {
            Ok(seq) => {
                got.push(seq);
                None
            }
            Err(PopError::Disconnected) => Some(()),
            Err(PopError::Empty) => None,
            Err(e) => panic!("{what}: survivor: {e}"),
        },
    );
    // The dead producer committed exactly `produced` messages (its last claim was never
    // committed); the reaper took 0..reaped_by_child, the survivor the rest.
    assert!(
        got.iter().copied().eq(reaped_by_child..produced),
        "{what}: survivor got {got:?}, reaper acknowledged {reaped_by_child} of {produced}"
    );
    t.assert_table(&[Role::Consumer], &what);
    killed.elapsed()
}

fn report(what: &str, times: &mut [Duration]) {
    times.sort();
    eprintln!(
        "{what}: {} trials; time to recover after SIGKILL: median {:?}, max {:?}",
        times.len(),
        times[times.len() / 2],
        times[times.len() - 1]
    );
}

const SPSC_PRODUCER_POINTS: &[&str] = &[
    "spsc.push.written",
    "spsc.push.published",
    "spsc.batch.written",
    "register.entry",
    "register.claimed",
    "register.locked",
    "register.active",
    "unregister.start",
    "unregister.leaving",
];
const SPSC_CONSUMER_POINTS: &[&str] = &[
    "spsc.pop.read",
    "register.entry",
    "register.claimed",
    "register.locked",
    "register.active",
    "unregister.start",
    "unregister.leaving",
];
const MPMC_PRODUCER_POINTS: &[&str] = &[
    "mpmc.push.claimed",
    "mpmc.push.written",
    "mpmc.bulk.claimed",
    "register.entry",
    "register.claimed",
    "register.locked",
    "register.active",
    "unregister.start",
    "unregister.leaving",
];
const MPMC_CONSUMER_POINTS: &[&str] = &[
    "mpmc.pop.claimed",
    "mpmc.pop.read",
    "register.entry",
    "register.claimed",
    "register.locked",
    "register.active",
    "unregister.start",
    "unregister.leaving",
];
const REAP_POINTS: &[&str] = &[
    "reap.claimed",
    "mpmc.repair.slot",
    "reap.repaired",
    "reap.unlisted",
];
/// Messages before the point is armed: first message, mid-lap, and after several laps.
const ARM_AFTER_VALUES: &[u64] = &[1, 5, 37, 200];

fn every_point(test: &str, kind: Kind, victim: &str, points: &[&str]) {
    for store in STORES {
        let mut times = Vec::new();
        for point in points {
            for &k in ARM_AFTER_VALUES {
                times.push(match victim {
                    "producer" => producer_dies(test, kind, store, point, k),
                    _ => consumer_dies(test, kind, store, point, k),
                });
            }
        }
        report(
            &format!("{kind:?} on {store:?}: {victim} killed at every step"),
            &mut times,
        );
    }
}

fn random_moments(test: &str, kind: Kind, victim: &str, trials: u64) {
    let mut times = Vec::new();
    let mut x = u64::from(std::process::id()) | 1;
    for i in 0..trials {
        let store = STORES[i as usize % STORES.len()];
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Kill 0–20 ms into the stream (µs).
        let at = x % 20_000;
        times.push(match victim {
            "producer" => producer_dies(test, kind, store, "", at),
            _ => consumer_dies(test, kind, store, "", at),
        });
    }
    report(
        &format!("{kind:?} {victim} killed at random moments (every backing in turn)"),
        &mut times,
    );
}

#[test]
fn spsc_producer_killed_at_every_step_loses_nothing_committed_and_can_be_replaced() {
    if child() {
        return;
    }
    every_point(
        "spsc_producer_killed_at_every_step_loses_nothing_committed_and_can_be_replaced",
        Kind::Spsc,
        "producer",
        SPSC_PRODUCER_POINTS,
    );
}

#[test]
fn spsc_consumer_killed_at_every_step_disconnects_the_producer_and_can_be_replaced() {
    if child() {
        return;
    }
    every_point(
        "spsc_consumer_killed_at_every_step_disconnects_the_producer_and_can_be_replaced",
        Kind::Spsc,
        "consumer",
        SPSC_CONSUMER_POINTS,
    );
}

#[test]
fn mpmc_producer_killed_at_every_step_is_repaired_past_without_losing_commits() {
    if child() {
        return;
    }
    every_point(
        "mpmc_producer_killed_at_every_step_is_repaired_past_without_losing_commits",
        Kind::Mpmc,
        "producer",
        MPMC_PRODUCER_POINTS,
    );
}

#[test]
fn mpmc_consumer_killed_at_every_step_loses_at_most_the_message_it_held() {
    if child() {
        return;
    }
    every_point(
        "mpmc_consumer_killed_at_every_step_loses_at_most_the_message_it_held",
        Kind::Mpmc,
        "consumer",
        MPMC_CONSUMER_POINTS,
    );
}

#[test]
fn a_reaper_killed_at_every_step_of_reaping_is_taken_over() {
    const TEST: &str = "a_reaper_killed_at_every_step_of_reaping_is_taken_over";
    if child() {
        return;
    }
    let mut times = Vec::new();
    for store in STORES {
        for point in REAP_POINTS {
            // The ring has 16 slots and nobody consumes before the producer parks.
            for &k in &[3u64, 11] {
                times.push(reaper_dies(TEST, store, point, k));
            }
        }
    }
    report("reaper killed at every step", &mut times);
}

#[test]
fn producers_and_consumers_killed_at_random_moments_lose_nothing_committed() {
    const TEST: &str = "producers_and_consumers_killed_at_random_moments_lose_nothing_committed";
    if child() {
        return;
    }
    for kind in [Kind::Spsc, Kind::Mpmc] {
        random_moments(TEST, kind, "producer", 40);
        random_moments(TEST, kind, "consumer", 40);
    }
}
