//! The broadcast ring between real processes (issue 16, "Show"): the test binary re-spawns
//! itself as a publisher and as subscribers (no `fork` in a threaded test process).
//!
//! - One publisher process streams sequence-numbered, checksummed messages of random sizes to
//!   four subscriber processes: two tethered (each receives every message once, in order) and
//!   two untethered, throttled at random (each receives a gap-free sequence but for its
//!   `Lagged { missed }` reports, and received + missed adds up to the total).
//! - A tethered subscriber process killed (SIGKILL) while the publisher is blocked on it: the
//!   publisher goes on within a couple of probe intervals.
//! - The publisher process killed mid-stream (parked at a crash point inside a push, or at a
//!   random moment): the subscribers get every committed message, in order and intact, then
//!   `Disconnected`; a successor publisher process attaches and they receive its messages.
#![cfg(not(loom))]

use shmbus_ring::broadcast::{BroadcastConfig, BroadcastRing, StartAt};
use shmbus_ring::{
    crashpoint, Broadcast, Consumer, PopError, PushError, SegmentOptions, Subscription,
};
use shmbus_testkit::{respawn, role, unique_name, ChildGuard};
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The environment of a child: the ring's name, how many messages, the first sequence number,
/// a crash point and after how many pushes to arm it, and a subscriber's mode.
const RING: &str = "SHMBUS_BCAST_RING";
const COUNT: &str = "SHMBUS_BCAST_COUNT";
const FIRST: &str = "SHMBUS_BCAST_FIRST";
const POINT: &str = "SHMBUS_BCAST_POINT";
const ARM_AFTER: &str = "SHMBUS_BCAST_ARM_AFTER";
const SUBS: &str = "SHMBUS_BCAST_SUBS";
/// No child may run longer than this.
const DEADLINE: Duration = Duration::from_secs(120);
const MAX: usize = 160;

fn env<T: std::str::FromStr>(name: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    std::env::var(name).unwrap().parse().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Messages: [seq: u64][pattern][fnv1a of the rest: u32], 12 to 140 bytes by sequence number.
// ---------------------------------------------------------------------------------------------

fn len_of(seq: u64) -> usize {
    let mut x = seq.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    12 + ((x ^ (x >> 31)) % 129) as usize
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

fn fill(seq: u64, out: &mut [u8]) {
    let n = out.len();
    out[..8].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in out[8..n - 4].iter_mut().enumerate() {
        *b = (seq as u8).wrapping_mul(131).wrapping_add(i as u8);
    }
    let sum = fnv1a(&out[..n - 4]);
    out[n - 4..].copy_from_slice(&sum.to_le_bytes());
}

fn message(seq: u64) -> Vec<u8> {
    let mut m = vec![0u8; len_of(seq)];
    fill(seq, &mut m);
    m
}

/// The sequence number of an intact message; panics on a torn one.
fn parse(got: &[u8], who: &str) -> u64 {
    assert!(got.len() >= 12, "{who}: a message of {} bytes", got.len());
    let seq = u64::from_le_bytes(got[..8].try_into().unwrap());
    assert_eq!(got.len(), len_of(seq), "{who}: message {seq}: wrong length");
    let n = got.len();
    let sum = u32::from_le_bytes(got[n - 4..].try_into().unwrap());
    assert_eq!(sum, fnv1a(&got[..n - 4]), "{who}: message {seq} torn");
    assert_eq!(
        &message(seq)[..],
        got,
        "{who}: message {seq}: content differs"
    );
    seq
}

fn open(name: &str) -> BroadcastRing {
    BroadcastRing::open_shm(name, &SegmentOptions::default()).unwrap()
}

fn create(name: &str, cap: u64) -> BroadcastRing {
    BroadcastRing::create_shm(
        name,
        &BroadcastConfig::new(cap).max_record(MAX as u64),
        &SegmentOptions::default(),
    )
    .unwrap()
}

/// A small deterministic generator per process.
fn rng() -> shmbus_testkit::rng::Rng {
    shmbus_testkit::rng::Rng::new(u64::from(std::process::id()) * 0x9e37_79b9)
}

// ---------------------------------------------------------------------------------------------
// The publisher process.
// ---------------------------------------------------------------------------------------------

/// Pushes messages `first..first + count` (mixing `try_push`, blocking `push`, reservations
/// and batches), after waiting for `SUBS` subscribers to join; arms `POINT` after
/// `ARM_AFTER` pushes if set.
fn run_publisher(ring: &BroadcastRing) {
    let count: u64 = env(COUNT);
    let first: u64 = std::env::var(FIRST).map_or(0, |v| v.parse().unwrap());
    let subs: usize = std::env::var(SUBS).map_or(0, |v| v.parse().unwrap());
    let point = std::env::var(POINT).unwrap_or_default();
    let arm_after: u64 = std::env::var(ARM_AFTER).map_or(u64::MAX, |v| v.parse().unwrap());
    let deadline = Instant::now() + DEADLINE;
    while ring.subscribers().len() < subs {
        assert!(
            Instant::now() < deadline,
            "publisher: subscribers never came"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut tx = ring.producer().expect("attach publisher");
    // A successor continues the numbering where the ring's count says (its walk counted any
    // message its predecessor committed without publishing it).
    let first = if first == u64::MAX {
        ring.published()
    } else {
        first
    };
    let mut rng = rng();
    let mut seq = first;
    let mut batch: Vec<Vec<u8>> = Vec::new();
    while seq < first + count {
        if seq - first == arm_after && !point.is_empty() {
            crashpoint::arm(&point);
        }
        assert!(Instant::now() < deadline, "publisher: deadline at {seq}");
        // With a crash point armed, only the paths that reach it once per message.
        let path = if point.is_empty() {
            rng.below(8)
        } else {
            3 + rng.below(2)
        };
        if path == 4 && !point.is_empty() {
            tx.push_timeout(&message(seq), DEADLINE).expect("push");
            seq += 1;
            continue;
        }
        match path {
            0 => {
                tx.push_timeout(&message(seq), DEADLINE).expect("push");
                seq += 1;
            }
            1 => match tx.reserve(len_of(seq)) {
                Ok(mut w) => {
                    fill(seq, &mut w);
                    w.commit();
                    seq += 1;
                }
                Err(PushError::Full) => std::thread::yield_now(),
                Err(e) => panic!("publisher: {e}"),
            },
            2 => {
                let k = (first + count - seq).min(1 + rng.below(5));
                batch.clear();
                batch.extend((seq..seq + k).map(message));
                match tx.try_push_batch(&batch) {
                    Ok(n) => seq += n as u64,
                    Err(PushError::Full) => std::thread::yield_now(),
                    Err(e) => panic!("publisher: {e}"),
                }
            }
            _ => match tx.try_push(&message(seq)) {
                Ok(()) => seq += 1,
                Err(PushError::Full) => std::thread::yield_now(),
                Err(e) => panic!("publisher: {e}"),
            },
        }
    }
    eprintln!("publisher: pushed {first}..{seq}");
}

// ---------------------------------------------------------------------------------------------
// Subscribers (child processes, and the parent's own in the crash tests).
// ---------------------------------------------------------------------------------------------

/// What a subscriber saw.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    received: u64,
    missed: u64,
    lags: u64,
    /// The next sequence number it expects.
    next: u64,
}

/// How long [`subscribe`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Until {
    /// Until it expects this sequence number.
    Seq(u64),
    /// Until the ring is empty.
    Empty,
    /// Until `Disconnected`.
    Disconnected,
}

/// Reads until `until`, checking every message: a tethered subscriber gets the next sequence
/// number every time; an untethered one the next but for the `missed` it was told of.
/// `throttle`: fall behind now and then.
fn subscribe(
    c: &mut Consumer<Broadcast>,
    tally: &mut Tally,
    throttle: bool,
    who: &str,
    until: Until,
) {
    let deadline = Instant::now() + DEADLINE;
    let mut rng = rng();
    let mut buf = vec![0u8; MAX];
    let mut idle = 0u32;
    loop {
        if let Until::Seq(s) = until {
            if tally.next >= s {
                return;
            }
        }
        let r = if until != Until::Empty && rng.below(4) == 0 {
            c.pop_timeout(&mut buf, Duration::from_millis(20))
        } else {
            c.try_pop(&mut buf)
        };
        match r {
            Ok(n) => {
                let seq = parse(&buf[..n], who);
                assert_eq!(
                    seq, tally.next,
                    "{who}: expected message {}, got {seq} (lags {}, missed {})",
                    tally.next, tally.lags, tally.missed
                );
                tally.next += 1;
                tally.received += 1;
                if throttle && rng.below(256) == 0 {
                    std::thread::sleep(Duration::from_micros(rng.below(3000)));
                }
                idle = 0;
            }
            Err(PopError::Lagged { missed }) => {
                assert!(
                    !c.is_tethered() || throttle,
                    "{who}: a tethered subscriber lagged"
                );
                tally.lags += 1;
                tally.missed += missed;
                tally.next += missed;
            }
            Err(PopError::Empty) if until == Until::Empty => return,
            Err(PopError::Empty | PopError::Timeout) => {
                idle += 1;
                if idle % 64 == 0 {
                    assert!(
                        Instant::now() < deadline,
                        "{who}: deadline at {}",
                        tally.next
                    );
                    std::thread::yield_now();
                }
            }
            // Waiting for a successor publisher: none yet.
            Err(PopError::Disconnected) if matches!(until, Until::Seq(_)) => {
                assert!(Instant::now() < deadline, "{who}: no publisher came");
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(PopError::Disconnected) => return,
            Err(e) => panic!("{who}: {e} at {}", tally.next),
        }
    }
}

/// The subscriber process: joins, then reads to `Disconnected`; checks the totals.
fn run_subscriber(ring: &BroadcastRing, tethered: bool) {
    let count: u64 = env(COUNT);
    let how = if tethered {
        Subscription::tethered()
    } else {
        Subscription::untethered()
    };
    let mut c = ring.subscriber(&how).unwrap();
    assert_eq!(c.sequence(), 0, "joined before the first message");
    println!("JOINED");
    std::io::stdout().flush().unwrap();
    let who = format!(
        "{} subscriber {}",
        if tethered { "tethered" } else { "untethered" },
        std::process::id()
    );
    let mut tally = Tally::default();
    subscribe(&mut c, &mut tally, !tethered, &who, Until::Disconnected);
    eprintln!("{who}: {tally:?}");
    assert_eq!(tally.next, count, "{who}: stopped early");
    if tethered {
        assert_eq!(tally.received, count, "{who}: lost messages");
        assert_eq!(tally.lags, 0);
    } else {
        assert_eq!(
            tally.received + tally.missed,
            count,
            "{who}: counts do not add up"
        );
    }
}

/// Runs this process's child role, if it has one; returns whether it had.
fn child() -> bool {
    let Some(role) = role() else {
        return false;
    };
    let ring = open(&std::env::var(RING).unwrap());
    match role.as_str() {
        "publisher" => run_publisher(&ring),
        "tethered" => run_subscriber(&ring, true),
        "untethered" => run_subscriber(&ring, false),
        "stuck" => {
            // A tethered subscriber that reads ten messages, says so, and reads no more; or,
            // with a crash point, one that parks inside its join (cursor and tether stored).
            if let Ok(point) = std::env::var(POINT) {
                crashpoint::arm(&point);
            }
            let mut c = ring.consumer().unwrap();
            let mut buf = vec![0u8; MAX];
            let mut got = 0;
            while got < 10 {
                match c.pop_timeout(&mut buf, DEADLINE) {
                    Ok(n) => {
                        assert_eq!(parse(&buf[..n], "stuck"), got);
                        got += 1;
                    }
                    Err(e) => panic!("stuck: {e}"),
                }
            }
            assert!(c.is_confirmed());
            println!("READY");
            std::io::stdout().flush().unwrap();
            std::thread::sleep(DEADLINE);
        }
        other => panic!("unknown role {other}"),
    }
    true
}

fn spawn(test: &str, role: &str, ring: &str, vars: &[(&str, String)]) -> ChildGuard {
    let mut cmd = respawn(test, role);
    cmd.env(RING, ring);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    ChildGuard::spawn(&mut cmd)
}

/// How many messages the streaming test sends: a million (fewer with `SHMBUS_BCAST_N`).
fn stream_count() -> u64 {
    std::env::var("SHMBUS_BCAST_N").map_or(1_000_000, |v| v.parse().unwrap())
}

#[test]
fn a_million_messages_reach_tethered_and_untethered_subscriber_processes() {
    const TEST: &str = "a_million_messages_reach_tethered_and_untethered_subscriber_processes";
    if child() {
        return;
    }
    let count = stream_count();
    let name = unique_name("bcast");
    let ring = create(&name, 1 << 14);
    let started = Instant::now();
    let mut subs: Vec<ChildGuard> = ["tethered", "tethered", "untethered", "untethered"]
        .iter()
        .map(|role| {
            let mut cmd = respawn(TEST, role);
            cmd.env(RING, &name).env(COUNT, count.to_string());
            let mut child = ChildGuard::spawn(cmd.stdout(Stdio::piped()));
            // Its first line after the harness's: it has joined.
            let out = child.stdout.take().unwrap();
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let mut lines = BufReader::new(out).lines().map_while(Result::ok);
                let _ = tx.send(lines.any(|l| l.trim_end().ends_with("JOINED")));
                lines.for_each(drop);
            });
            assert_eq!(rx.recv_timeout(DEADLINE), Ok(true), "{role} never joined");
            child
        })
        .collect();
    let mut publisher = spawn(
        TEST,
        "publisher",
        &name,
        &[(COUNT, count.to_string()), (SUBS, "4".into())],
    );
    assert!(
        publisher.wait_within(DEADLINE).success(),
        "publisher failed"
    );
    for (i, s) in subs.iter_mut().enumerate() {
        assert!(s.wait_within(DEADLINE).success(), "subscriber {i} failed");
    }
    let took = started.elapsed();
    eprintln!(
        "{count} messages to 4 subscriber processes in {took:?}; {} published",
        ring.published()
    );
    assert_eq!(ring.published(), count);
}

/// A tethered subscriber that stops reading (or dies inside its join) holds the publisher;
/// killed (SIGKILL), it stops gating once a probe of the publisher finds it dead and clears its
/// cursor.
#[test]
fn a_killed_tethered_subscriber_stops_gating_within_a_few_probe_intervals() {
    const TEST: &str = "a_killed_tethered_subscriber_stops_gating_within_a_few_probe_intervals";
    const PROBE: Duration = Duration::from_millis(50);
    if child() {
        return;
    }
    for parked_in_join in [false, true] {
        kill_a_gating_subscriber(TEST, PROBE, parked_in_join);
    }
}

fn kill_a_gating_subscriber(test: &str, probe: Duration, parked_in_join: bool) {
    let name = unique_name("bcast-kill-sub");
    let ring = create(&name, 4096);
    let mut publisher = ring.producer().unwrap();
    publisher.set_probe_interval(probe);
    // A tethered subscriber of our own keeps up throughout.
    let mut ours = ring.consumer().unwrap();
    let mut tally = Tally::default();
    let mut cmd = respawn(test, "stuck");
    cmd.env(RING, &name).stdout(Stdio::piped());
    if parked_in_join {
        cmd.env(POINT, "broadcast.joined").stderr(Stdio::null());
    }
    let mut stuck = ChildGuard::spawn(&mut cmd);
    // Both joined (the child's cursor line says tethered once it picked its start).
    while ring.subscribers().iter().filter(|s| s.tethered).count() < 2 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut seq = 0;
    for _ in 0..10 {
        publisher
            .push_timeout(&message(seq), Duration::from_secs(10))
            .unwrap();
        seq += 1;
    }
    if !parked_in_join {
        let ready = BufReader::new(stuck.stdout.take().unwrap())
            .lines()
            .map_while(Result::ok)
            .any(|l| l.trim_end().ends_with("READY"));
        assert!(ready, "the stuck subscriber never read its ten messages");
    }
    // Fill the ring: the stuck subscriber (confirmed at message 10, or on probation at
    // message 0) gates.
    loop {
        match publisher.try_push(&message(seq)) {
            Ok(()) => seq += 1,
            Err(PushError::Full) => break,
            Err(e) => panic!("{e}"),
        }
        subscribe(&mut ours, &mut tally, false, "ours", Until::Seq(seq));
    }
    subscribe(&mut ours, &mut tally, false, "ours", Until::Seq(seq));
    assert_eq!(
        publisher.push_timeout(&message(seq), Duration::from_millis(300)),
        Err(PushError::Timeout),
        "the stuck subscriber does not gate"
    );
    stuck.kill().unwrap();
    stuck.wait().unwrap();
    let killed = Instant::now();
    publisher
        .push_timeout(&message(seq), Duration::from_secs(10))
        .expect("the publisher goes on");
    let took = killed.elapsed();
    seq += 1;
    eprintln!(
        "parked in its join: {parked_in_join}: the publisher went on {took:?} after the kill \
         (probe interval {probe:?})"
    );
    assert!(
        took < Duration::from_secs(2),
        "took {took:?}, expected about 2 probe intervals of {probe:?}"
    );
    // Our subscriber still gets everything, in order.
    for _ in 0..1000 {
        publisher
            .push_timeout(&message(seq), Duration::from_secs(10))
            .unwrap();
        seq += 1;
        subscribe(&mut ours, &mut tally, false, "ours", Until::Seq(seq));
    }
    assert_eq!(tally.received, seq);
    assert_eq!(ring.subscribers().len(), 1);
}

/// A publisher child, its crash-point marker read from its standard error.
struct Victim {
    child: ChildGuard,
    parked: mpsc::Receiver<String>,
}

impl Victim {
    fn spawn(test: &str, ring: &str, vars: &[(&str, String)]) -> Victim {
        let mut cmd = respawn(test, "publisher");
        cmd.env(RING, ring).stderr(Stdio::piped());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let mut child = ChildGuard::spawn(&mut cmd);
        let (tx, parked) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if let Some(point) = line.strip_prefix("shmbus-crashpoint: ") {
                    let _ = tx.send(point.to_string());
                } else {
                    let _ = writeln!(std::io::stderr(), "publisher: {line}");
                }
            }
        });
        Victim { child, parked }
    }
}

/// The publisher process dies mid-stream: parked at a crash point of a push (the message
/// written but not committed; committed but not counted nor published) or at a random moment.
/// The subscribers (here) read every committed message, then `Disconnected`; a successor
/// publisher process continues the numbering and they read its messages too.
#[test]
fn a_killed_publisher_leaves_every_committed_message_and_a_successor_goes_on() {
    const TEST: &str = "a_killed_publisher_leaves_every_committed_message_and_a_successor_goes_on";
    const PROBE: Duration = Duration::from_millis(10);
    if child() {
        return;
    }
    let mut rng = rng();
    for (point, arm_after) in [
        ("broadcast.push.written", 3000),
        ("broadcast.push.published", 2500),
        ("", 0),
        ("broadcast.push.written", 20),
        ("broadcast.push.published", 7),
    ] {
        let name = unique_name("bcast-kill-pub");
        let ring = create(&name, 4096);
        let mut tethered = ring.consumer().unwrap();
        let mut lossy = ring
            .subscriber(&Subscription::untethered().start_at(StartAt::Oldest))
            .unwrap();
        tethered.set_probe_interval(PROBE);
        lossy.set_probe_interval(PROBE);
        let (mut t, mut l) = (Tally::default(), Tally::default());
        let mut victim = Victim::spawn(
            TEST,
            &name,
            &[
                (COUNT, "1000000000".into()),
                (POINT, point.into()),
                (ARM_AFTER, arm_after.to_string()),
            ],
        );
        // Read along until the victim parks (or, unarmed, for a random while), then kill it.
        let until = Instant::now() + Duration::from_millis(200 + rng.below(300));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            subscribe(&mut tethered, &mut t, false, "tethered", Until::Empty);
            subscribe(&mut lossy, &mut l, true, "untethered", Until::Empty);
            let parked = victim.parked.try_recv().is_ok();
            if parked || (point.is_empty() && Instant::now() > until) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{point}: the victim never parked"
            );
        }
        victim.child.kill().unwrap();
        victim.child.wait().unwrap();
        // Everything committed, then Disconnected.
        subscribe(
            &mut tethered,
            &mut t,
            false,
            "tethered",
            Until::Disconnected,
        );
        subscribe(&mut lossy, &mut l, true, "untethered", Until::Disconnected);
        let committed = t.next;
        match point {
            "broadcast.push.written" => assert_eq!(committed, arm_after, "{point}"),
            // The point is also reached by a padding record published before the message.
            "broadcast.push.published" => assert!(
                committed == arm_after || committed == arm_after + 1,
                "{point}: {committed} committed"
            ),
            _ => {}
        }
        assert_eq!(
            t.received, committed,
            "{point}: the tethered subscriber lost messages"
        );
        assert_eq!(
            l.next, committed,
            "{point}: the untethered subscriber stopped short"
        );
        assert_eq!(l.received + l.missed, committed, "{point}: {l:?}");
        // A successor publisher process continues the numbering from the ring's count.
        let mut successor = spawn(
            TEST,
            "publisher",
            &name,
            &[(COUNT, "5000".into()), (FIRST, u64::MAX.to_string())],
        );
        subscribe(
            &mut tethered,
            &mut t,
            false,
            "tethered",
            Until::Seq(committed + 5000),
        );
        subscribe(
            &mut lossy,
            &mut l,
            true,
            "untethered",
            Until::Seq(committed + 5000),
        );
        assert!(successor.wait_within(DEADLINE).success());
        subscribe(
            &mut tethered,
            &mut t,
            false,
            "tethered",
            Until::Disconnected,
        );
        subscribe(&mut lossy, &mut l, true, "untethered", Until::Disconnected);
        assert_eq!(ring.published(), committed + 5000, "{point}");
        assert_eq!(t.received, committed + 5000, "{point}");
        assert_eq!(l.received + l.missed, committed + 5000, "{point}: {l:?}");
        eprintln!(
            "{point:?} after {arm_after}: {committed} committed; tethered {t:?}, untethered {l:?}"
        );
    }
}
