//! Review of the broadcast ring (issue 16): attacks on PROTOCOL §8's invariants. The tests
//! under a "Finding N" heading failed until that finding was fixed (they were `#[ignore]`d
//! until then); the others are attacks that held.
#![cfg(not(loom))]

use shmbus_ring::broadcast::{BroadcastConfig, BroadcastRing, SlowSubscribers, StartAt};
use shmbus_ring::layout::DATA_OFFSET;
use shmbus_ring::{Consumer, PopError, PushError, Segment, SegmentOptions, Subscription};
use shmbus_testkit::hostile::raw_view;
use shmbus_testkit::unique_name;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const CAP: u64 = 4096;

/// Offsets in the auxiliary region (PROTOCOL §8.1).
const INTENT: u64 = 0;
const HIST_HEAD: u64 = 8;
const SEEN_GEN: u64 = 16;
const GEN: u64 = 128;
const TETHERED: u64 = 136;
const CURSORS: u64 = 256;
const HISTORY: u64 = 8192;
/// The producer block's position word: the publisher's published tail.
const PRODUCER_TAIL: u64 = 256;

struct Fixture {
    ring: BroadcastRing,
    raw: Segment,
}

impl Fixture {
    fn new(cfg: &BroadcastConfig) -> Self {
        let ring = BroadcastRing::create_shm(&unique_name("rv16"), cfg, &SegmentOptions::default())
            .unwrap();
        let raw = raw_view(ring.segment()).unwrap();
        Fixture { ring, raw }
    }

    fn aux(&self, field: u64) -> u64 {
        DATA_OFFSET + self.ring.data_capacity() + field
    }

    fn poke(&self, off: u64, v: u64) {
        self.raw
            .atomic_u64(usize::try_from(off).unwrap())
            .unwrap()
            .store(v, Ordering::SeqCst);
    }

    fn peek(&self, off: u64) -> u64 {
        self.raw
            .atomic_u64(usize::try_from(off).unwrap())
            .unwrap()
            .load(Ordering::SeqCst)
    }
}

fn msg(i: u64, len: usize) -> Vec<u8> {
    let mut v = i.to_le_bytes().to_vec();
    v.resize(len.max(8), i as u8);
    v
}

fn pop(c: &mut Consumer<shmbus_ring::Broadcast>) -> Result<(u64, usize), PopError> {
    let mut buf = vec![0u8; 8192];
    let n = c.try_pop(&mut buf)?;
    let i = u64::from_le_bytes(buf[..8].try_into().unwrap());
    assert_eq!(&buf[..n], &msg(i, n)[..], "message {i} torn");
    Ok((i, n))
}

// -------------------------------------------------------------------------------------------
// Finding 1: a record that needs padding and more than the rest of the ring deadlocks a
// publisher whose only tethered subscriber has read everything.
// -------------------------------------------------------------------------------------------

/// The tail is at offset 2064; the next record (2040 bytes, the largest: a record takes at
/// most half the ring since this finding) does not fit in the 2032 left in the lap, so a
/// padding record goes first. Before the fix, `place` asked the gate for the padding and a
/// record of up to `capacity − 16` at once, more than a caught-up subscriber's position
/// allows: `Full` for ever (the padding never published, so it could not be passed).
#[test]
fn a_caught_up_subscriber_never_blocks_a_record_that_needs_padding() {
    let ring = BroadcastRing::in_heap(&BroadcastConfig::new(CAP).max_record(CAP / 2 - 16)).unwrap();
    let mut publisher = ring.producer().unwrap();
    let mut sub = ring.consumer().unwrap();
    publisher.try_push(&msg(0, 1024)).unwrap();
    publisher.try_push(&msg(1, 1024)).unwrap(); // two records of 1032: the tail is at 2064
    assert_eq!(pop(&mut sub), Ok((0, 1024)));
    assert_eq!(pop(&mut sub), Ok((1, 1024)));
    assert_eq!(pop(&mut sub), Err(PopError::Empty));
    // The subscriber is confirmed and caught up: the ring is empty for it.
    assert!(sub.is_confirmed());
    let r = publisher.push_timeout(&msg(2, 2032), Duration::from_millis(300));
    assert_eq!(r, Ok(()), "an empty ring refuses a record of half its size");
    assert_eq!(pop(&mut sub), Ok((2, 2032)));
    // The largest record a ring takes is half of it.
    assert!(BroadcastConfig::new(CAP)
        .max_record(CAP / 2 - 15)
        .validate()
        .is_err());
}

/// The same under `Untether`: the subscriber that is caught up must not be ejected.
#[test]
fn a_caught_up_subscriber_is_not_ejected_for_a_record_that_needs_padding() {
    let ring = BroadcastRing::in_heap(&BroadcastConfig::new(CAP).max_record(CAP / 2 - 16)).unwrap();
    let mut publisher = ring.producer().unwrap();
    publisher.set_slow_subscribers(SlowSubscribers::Untether {
        after: Duration::ZERO,
    });
    let mut sub = ring.consumer().unwrap();
    publisher.try_push(&msg(0, 1024)).unwrap();
    publisher.try_push(&msg(1, 1024)).unwrap();
    assert_eq!(pop(&mut sub), Ok((0, 1024)));
    assert_eq!(pop(&mut sub), Ok((1, 1024)));
    publisher.try_push(&msg(2, 2032)).unwrap();
    assert_eq!(
        ring.ejections(),
        0,
        "a subscriber with nothing left to read was ejected"
    );
    assert_eq!(pop(&mut sub), Ok((2, 2032)));
}

// -------------------------------------------------------------------------------------------
// Finding 2: a scribbled hist_head near 2^64 becomes a joiner's sequence number, and
// `consume`'s `seq += 1` overflows (a panic in debug builds).
// -------------------------------------------------------------------------------------------

#[test]
fn a_scribbled_history_count_does_not_overflow_the_sequence() {
    let f = Fixture::new(&BroadcastConfig::new(CAP).max_record(256).history(16));
    let mut publisher = f.ring.producer().unwrap();
    for i in 0..3 {
        publisher.try_push(&msg(i, 16)).unwrap();
    }
    f.poke(f.aux(HIST_HEAD), u64::MAX);
    let mut sub = f.ring.subscriber(&Subscription::untethered()).unwrap();
    // The live publisher stores its own count again at its next push (P5).
    publisher.try_push(&msg(3, 16)).unwrap();
    publisher.try_push(&msg(4, 16)).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut out = Vec::new();
        for _ in 0..4 {
            out.push(pop(&mut sub).map(|m| m.0));
            let _ = sub.sequence();
        }
        out
    }));
    assert!(r.is_ok(), "a scribbled hist_head made the subscriber panic");
}

// -------------------------------------------------------------------------------------------
// Finding 3: `has_committed` (the Disconnected test of `on_empty`, `check_peers`, `is_empty`)
// says "nothing" at a lapped subscriber's position, although it still has messages.
// -------------------------------------------------------------------------------------------

/// An untethered subscriber lapped, its publisher gone: it has a lag and then the latest
/// message to read. `check_peers` (what a probing select runs before it pops) calls
/// `on_empty`, whose `has_committed` sees a word of another lap at the position and answers
/// "nothing committed": `Disconnected`. A select that probes stages it, and the subscriber's
/// remaining messages are never delivered. `is_empty()` likewise says true.
#[test]
fn a_lapped_subscriber_of_a_gone_publisher_is_not_judged_drained() {
    let ring =
        BroadcastRing::in_heap(&BroadcastConfig::new(CAP).max_record(256).history(16)).unwrap();
    let mut publisher = ring.producer().unwrap();
    let mut lossy = ring.subscriber(&Subscription::untethered()).unwrap();
    publisher.try_push(&msg(0, 16)).unwrap();
    assert_eq!(pop(&mut lossy), Ok((0, 16)));
    for i in 1..1000 {
        publisher.try_push(&msg(i, 16)).unwrap();
    }
    drop(publisher);
    assert_eq!(
        lossy.check_peers(),
        Ok(()),
        "judged disconnected with messages left"
    );
    assert!(
        !lossy.is_empty(),
        "a lapped subscriber with messages left says it is empty"
    );
    assert_eq!(pop(&mut lossy), Err(PopError::Lagged { missed: 998 }));
    assert_eq!(pop(&mut lossy), Ok((999, 16)));
    assert_eq!(pop(&mut lossy), Err(PopError::Disconnected));
}

/// The same for a confirmed subscriber that was ejected and whose publisher then went away:
/// `check_peers` says `Disconnected` where the next pop says `Ejected`.
#[test]
fn an_ejected_subscriber_of_a_gone_publisher_is_not_judged_drained() {
    let ring =
        BroadcastRing::in_heap(&BroadcastConfig::new(CAP).max_record(256).history(16)).unwrap();
    let mut publisher = ring.producer().unwrap();
    publisher.set_slow_subscribers(SlowSubscribers::Untether {
        after: Duration::ZERO,
    });
    let mut sub = ring.consumer().unwrap();
    publisher.try_push(&msg(0, 16)).unwrap();
    assert_eq!(pop(&mut sub), Ok((0, 16)));
    assert!(sub.is_confirmed());
    for i in 1..1000 {
        publisher.try_push(&msg(i, 16)).unwrap();
    }
    drop(publisher);
    assert_eq!(
        sub.check_peers(),
        Ok(()),
        "judged disconnected before its ejection"
    );
    assert_eq!(pop(&mut sub), Err(PopError::Ejected));
}

// -------------------------------------------------------------------------------------------
// Finding 4: a confirmed subscriber's in-place read under `Untether` hands the user a `&[u8]`
// the publisher writes over while the user holds it, and the read returns `Ok`.
// -------------------------------------------------------------------------------------------

/// `hand_over`/`view` (endpoint.rs) hand out `&[u8]` into the ring with the SAFETY argument
/// "an honest producer does not write it again until this consumer consumes it". Under
/// `SlowSubscribers::Untether` an honest publisher ejects the reader and writes over those
/// bytes while the closure runs: the shared slice changes under the user (undefined
/// behaviour for a `&[u8]`), and `try_pop_with` returns `Ok` with the torn bytes — the
/// ejection is reported only at the next read.
#[test]
fn an_in_place_read_is_not_written_over_while_the_user_holds_it() {
    let ring =
        BroadcastRing::in_heap(&BroadcastConfig::new(CAP).max_record(256).history(16)).unwrap();
    let mut publisher = ring.producer().unwrap();
    publisher.set_slow_subscribers(SlowSubscribers::Untether {
        after: Duration::ZERO,
    });
    let mut sub = ring.consumer().unwrap();
    publisher.try_push(&msg(0, 16)).unwrap();
    assert_eq!(pop(&mut sub), Ok((0, 16)));
    assert!(sub.is_confirmed());
    publisher.try_push(&msg(1, 200)).unwrap();
    let r = sub.try_pop_with(|bytes| {
        let before = bytes.to_vec();
        for i in 2..200 {
            publisher.try_push(&msg(i, 200)).unwrap();
        }
        (before, bytes.to_vec())
    });
    let (before, after) = r.expect("the in-place read");
    assert_eq!(before, msg(1, 200));
    assert!(
        after == before,
        "the slice handed to the user changed while it held it"
    );
}

// -------------------------------------------------------------------------------------------
// Every wait ends (invariant 6).
// -------------------------------------------------------------------------------------------

#[test]
fn a_blocking_push_waits_for_its_deadline_then_untether_ejects_within_the_policy() {
    let ring =
        BroadcastRing::in_heap(&BroadcastConfig::new(CAP).max_record(256).history(16)).unwrap();
    let mut publisher = ring.producer().unwrap();
    let mut stuck = ring.consumer().unwrap();
    publisher.try_push(&msg(0, 16)).unwrap();
    assert_eq!(pop(&mut stuck), Ok((0, 16)));
    let mut i = 1;
    while publisher.try_push(&msg(i, 100)).is_ok() {
        i += 1;
    }
    // Block: the deadline, no sooner and not much later.
    let started = Instant::now();
    let r = publisher.push_timeout(&msg(i, 100), Duration::from_millis(300));
    let took = started.elapsed();
    assert_eq!(r, Err(PushError::Timeout));
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // Untether after 200 ms: a push without deadline goes through after about that.
    publisher.set_slow_subscribers(SlowSubscribers::Untether {
        after: Duration::from_millis(200),
    });
    let started = Instant::now();
    publisher
        .push_timeout(&msg(i, 100), Duration::from_secs(20))
        .unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(ring.ejections(), 1);
    assert_eq!(pop(&mut stuck), Err(PopError::Ejected));
}

#[test]
fn a_blocked_subscriber_wakes_on_publish_and_on_the_publishers_drop() {
    let ring =
        BroadcastRing::in_heap(&BroadcastConfig::new(CAP).max_record(256).history(16)).unwrap();
    let mut publisher = ring.producer().unwrap();
    let mut tethered = ring.consumer().unwrap();
    let mut lossy = ring.subscriber(&Subscription::untethered()).unwrap();
    let t = std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        let mut got = Vec::new();
        for s in [&mut tethered, &mut lossy] {
            let started = Instant::now();
            let r = s.pop_timeout(&mut buf, Duration::from_secs(20));
            got.push((r.map(|n| buf[..n].to_vec()), started.elapsed()));
        }
        let started = Instant::now();
        let r = tethered.pop_timeout(&mut buf, Duration::from_secs(20));
        got.push((r.map(|n| buf[..n].to_vec()), started.elapsed()));
        let r = lossy.pop_timeout(&mut buf, Duration::from_secs(20));
        got.push((r.map(|n| buf[..n].to_vec()), started.elapsed()));
        got
    });
    std::thread::sleep(Duration::from_millis(100));
    publisher.try_push(&msg(0, 16)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(publisher);
    let got = t.join().unwrap();
    assert_eq!(got[0].0, Ok(msg(0, 16)));
    assert_eq!(got[1].0, Ok(msg(0, 16)));
    assert_eq!(got[2].0, Err(PopError::Disconnected));
    assert_eq!(got[3].0, Err(PopError::Disconnected));
    for (_, took) in &got {
        assert!(*took < Duration::from_secs(5), "{took:?}");
    }
}

// -------------------------------------------------------------------------------------------
// StartAt (invariant 3), across laps and bounded by what the ring holds.
// -------------------------------------------------------------------------------------------

#[test]
fn joiners_start_exactly_where_documented_at_every_point_of_a_lap() {
    let ring =
        BroadcastRing::in_heap(&BroadcastConfig::new(CAP).max_record(512).history(8)).unwrap();
    let mut publisher = ring.producer().unwrap();
    let mut sent = 0u64;
    for round in 0..300u64 {
        let len = 8 + (round * 37 % 300) as usize;
        publisher.try_push(&msg(sent, len)).unwrap();
        sent += 1;
        for (how, tethered) in [
            (StartAt::Next, true),
            (StartAt::Latest, false),
            (StartAt::History(3), true),
            (StartAt::Oldest, false),
            (StartAt::History(u32::MAX), true),
        ] {
            let sub = if tethered {
                Subscription::tethered()
            } else {
                Subscription::untethered()
            };
            let mut s = ring.subscriber(&sub.start_at(how)).unwrap();
            let seq = s.sequence();
            let want = match how {
                StartAt::Next => sent,
                StartAt::Latest => sent - 1,
                StartAt::History(n) => sent - u64::from(n).min(8).min(sent),
                StartAt::Oldest => sent - 8.min(sent),
            };
            // The ring may no longer hold the oldest asked for: never earlier than asked,
            // never later than the latest.
            assert!(
                seq >= want && seq <= sent,
                "{how:?}: seq {seq} want {want} sent {sent}"
            );
            let mut expect = seq;
            loop {
                match pop(&mut s) {
                    Ok((i, _)) => {
                        assert_eq!(i, expect, "{how:?}");
                        expect += 1;
                    }
                    Err(PopError::Empty) => break,
                    Err(e) => panic!("{how:?}: {e:?}"),
                }
            }
            assert_eq!(expect, sent, "{how:?}");
            assert_eq!(s.sequence(), sent);
        }
    }
}

// -------------------------------------------------------------------------------------------
// A publisher killed mid-push (invariant 4): SIGKILLed at a crash point in a child process.
// -------------------------------------------------------------------------------------------

const CHILD_RING: &str = "RV16_RING";
const CHILD_POINT: &str = "RV16_POINT";

/// The child: opens the ring, publishes messages 0..5, then parks at the armed point in the
/// push of message 5.
fn killed_publisher_child() {
    let name = std::env::var(CHILD_RING).unwrap();
    let point = std::env::var(CHILD_POINT).unwrap();
    let ring = BroadcastRing::open_shm(&name, &SegmentOptions::default()).unwrap();
    let mut publisher = ring.producer().unwrap();
    for i in 0..5 {
        publisher.try_push(&msg(i, 16)).unwrap();
    }
    shmbus_ring::crashpoint::arm(&point);
    publisher.try_push(&msg(5, 16)).unwrap();
    panic!("the crash point {point} was not reached");
}

fn shm_name(ring: &BroadcastRing) -> String {
    match ring.segment().backing() {
        shmbus_ring::segment::Backing::Shm(n) => n.clone(),
        other => panic!("{other:?}"),
    }
}

fn kill_publisher_at(f: &Fixture, point: &str) {
    use std::io::{BufRead, BufReader};
    let mut child = shmbus_testkit::ChildGuard::spawn(
        shmbus_testkit::respawn(
            "a_publisher_killed_mid_push_is_drained_and_succeeded",
            "rv16-publisher",
        )
        .env(CHILD_RING, shm_name(&f.ring))
        .env(CHILD_POINT, point)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped()),
    );
    let err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if line.contains("shmbus-crashpoint:") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the child reached its crash point");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_publisher_killed_mid_push_is_drained_and_succeeded() {
    if let Some(role) = shmbus_testkit::role() {
        if role == "rv16-publisher" {
            killed_publisher_child();
        }
        return;
    }
    // (point, whether message 5 is committed, whether to replay P4-P5 as a publisher killed
    // between P5 and P6 would have done them)
    for (point, committed, after_p5) in [
        ("broadcast.push.written", false, false),
        ("broadcast.push.published", true, false),
        ("broadcast.push.published", true, true),
    ] {
        let f = Fixture::new(&BroadcastConfig::new(CAP).max_record(256).history(16));
        let mut tethered = f.ring.consumer().unwrap();
        let mut lossy = f.ring.subscriber(&Subscription::untethered()).unwrap();
        for s in [&mut tethered, &mut lossy] {
            s.set_probe_interval(Duration::from_millis(5));
        }
        kill_publisher_at(&f, point);
        if after_p5 {
            // P4, P5 of message 5 (at position 5 * 24): what the dead one would have stored.
            f.poke(f.aux(HISTORY) + 8 * 5, 5 * 24);
            f.poke(f.aux(HIST_HEAD), 6);
        }
        let last = if committed { 6 } else { 5 };
        let mut buf = [0u8; 256];
        for s in [&mut tethered, &mut lossy] {
            for i in 0..last {
                let n = s.pop_timeout(&mut buf, Duration::from_secs(10)).unwrap();
                assert_eq!(&buf[..n], &msg(i, 16)[..], "{point}: message {i}");
            }
            assert_eq!(s.sequence(), last, "{point}");
            let started = Instant::now();
            assert_eq!(
                s.pop_timeout(&mut buf, Duration::from_secs(10)),
                Err(PopError::Disconnected),
                "{point}"
            );
            assert!(started.elapsed() < Duration::from_secs(5), "{point}");
        }
        // The successor goes on, with the history and sequence numbers the dead one left.
        let mut successor = f.ring.producer().unwrap();
        assert_eq!(f.ring.published(), last, "{point}");
        successor.try_push(&msg(last, 16)).unwrap();
        assert_eq!(f.ring.published(), last + 1, "{point}");
        for s in [&mut tethered, &mut lossy] {
            assert_eq!(pop(s), Ok((last, 16)), "{point}");
            assert_eq!(s.sequence(), last + 1, "{point}");
        }
        let mut late = f
            .ring
            .subscriber(&Subscription::tethered().start_at(StartAt::Oldest))
            .unwrap();
        assert_eq!(late.sequence(), 0, "{point}");
        for i in 0..=last {
            assert_eq!(pop(&mut late), Ok((i, 16)), "{point}");
        }
        let latest = f
            .ring
            .subscriber(&Subscription::untethered().start_at(StartAt::Latest))
            .unwrap();
        assert_eq!(latest.sequence(), last, "{point}");
    }
}

// -------------------------------------------------------------------------------------------
// Shared memory is untrusted (invariant 5): scribble one word, then run honest operations.
// -------------------------------------------------------------------------------------------

const MAX_POS: u64 = 1 << 62;

fn header(len: u64, kind: u64, pos: u64) -> u64 {
    len | (kind << 32) | (((pos >> 12) & 0xFF_FFFF) << 40)
}

/// Honest operations on every endpoint after a scribble: each must return (an error is
/// fine) without a panic, and the whole round must end in bounded time.
fn honest_round(
    f: &Fixture,
    publisher: Option<shmbus_ring::Producer<shmbus_ring::Broadcast>>,
    subs: &mut [Consumer<shmbus_ring::Broadcast>],
) {
    let short = Duration::from_millis(5);
    let mut buf = vec![0u8; 512];
    let mut publisher = publisher;
    for round in 0..3 {
        if let Some(p) = publisher.as_mut() {
            for i in 0..40 {
                let _ = p.try_push(&msg(1000 + i, 8 + (i as usize * 13) % 200));
            }
            let _ = p.push_timeout(&msg(5000, 100), short);
            let _ = p.reserve(64).map(shmbus_ring::WriteGuard::commit);
        }
        for s in subs.iter_mut() {
            for _ in 0..60 {
                let _ = s.try_pop(&mut buf);
            }
            let _ = s.pop_timeout(&mut buf, short);
            let _ = s.try_pop_with(<[u8]>::len);
            let _ = s.check_peers();
            let _ = s.is_empty();
            let _ = s.sequence();
        }
        for how in [
            StartAt::Next,
            StartAt::Latest,
            StartAt::History(5),
            StartAt::Oldest,
        ] {
            for sub in [Subscription::tethered(), Subscription::untethered()] {
                if let Ok(mut s) = f.ring.subscriber(&sub.start_at(how)) {
                    for _ in 0..5 {
                        let _ = s.try_pop(&mut buf);
                    }
                    let _ = s.sequence();
                }
            }
        }
        let _ = f.ring.subscribers();
        let _ = f.ring.published();
        if let Ok(obs) = shmbus_ring::observe::Observer::open(&shm_name(&f.ring)) {
            for start in [
                shmbus_ring::observe::Start::Newest,
                shmbus_ring::observe::Start::Oldest,
            ] {
                let mut peek = obs.peek(start);
                let mut out = Vec::new();
                for _ in 0..20 {
                    let _ = peek.next(&mut out);
                }
            }
        }
        if round == 1 {
            // A successor attaches over what it finds.
            drop(publisher.take());
            publisher = f.ring.producer().ok();
        }
    }
}

#[test]
fn scribbles_between_honest_operations_give_errors_not_panics_or_hangs() {
    use shmbus_ring::layout::{BLOCK_POSITION, PRODUCER_BLOCK};
    let values: Vec<u64> = vec![
        0,
        1,
        7,
        8,
        24,
        CAP - 8,
        CAP,
        CAP + 8,
        1 << 32,
        MAX_POS - 8,
        MAX_POS,
        MAX_POS + 8,
        1 << 63,
        u64::MAX - 7,
        u64::MAX,
    ];
    let cfg = BroadcastConfig::new(CAP).max_record(256).history(16);
    let mut failures = Vec::new();
    // Targets named by what they are, computed on a fresh fixture (positions vary).
    let names = [
        "intent",
        "hist_head",
        "seen_gen",
        "gate",
        "ejections",
        "gen",
        "tethered",
        "tail",
        "cur_t.pos",
        "cur_t.flags",
        "cur_t.joined",
        "cur_t.lapped",
        "cur_u.pos",
        "cur_u.flags",
        "cur_54.pos",
        "cur_54.flags",
        "hist_last",
        "hist_prev",
        "hist_far",
        "hdr_at_t",
        "hdr_at_u",
        "hdr_at_tail",
        "hdr_next_lap",
    ];
    for name in names {
        for (vi, &base) in values.iter().enumerate().chain([(99usize, &0u64)]) {
            let f = Fixture::new(&cfg);
            let mut publisher = f.ring.producer().unwrap();
            let mut t = f.ring.consumer().unwrap();
            let mut u = f.ring.subscriber(&Subscription::untethered()).unwrap();
            for s in [&mut t, &mut u] {
                s.set_probe_interval(Duration::from_millis(1));
            }
            for i in 0..150 {
                let m = msg(i, 8 + (i as usize * 7) % 100);
                while publisher.try_push(&m) == Err(PushError::Full) {
                    while pop(&mut t).is_ok() {}
                }
                if i % 2 == 0 {
                    let _ = pop(&mut t);
                }
                let _ = pop(&mut u);
            }
            let _ = pop(&mut t);
            let infos = f.ring.subscribers();
            let ti = infos[0].tag - 1;
            let ui = infos[1].tag - 1;
            let (tp, up) = (infos[0].position, infos[1].position);
            let tail = f.peek(PRODUCER_BLOCK + BLOCK_POSITION);
            let hh = f.peek(f.aux(HIST_HEAD));
            let cur = |i: u64, field: u64| f.aux(CURSORS + 128 * i + field);
            let data = |p: u64| DATA_OFFSET + (p & (CAP - 1));
            let off = match name {
                "intent" => f.aux(INTENT),
                "hist_head" => f.aux(HIST_HEAD),
                "seen_gen" => f.aux(SEEN_GEN),
                "gate" => f.aux(24),
                "ejections" => f.aux(32),
                "gen" => f.aux(GEN),
                "tethered" => f.aux(TETHERED),
                "tail" => PRODUCER_BLOCK + BLOCK_POSITION,
                "cur_t.pos" => cur(ti, 0),
                "cur_t.flags" => cur(ti, 8),
                "cur_t.joined" => cur(ti, 16),
                "cur_t.lapped" => cur(ti, 24),
                "cur_u.pos" => cur(ui, 0),
                "cur_u.flags" => cur(ui, 8),
                "cur_54.pos" => cur(54, 0),
                "cur_54.flags" => cur(54, 8),
                "hist_last" => f.aux(HISTORY) + 8 * ((hh - 1) & 31),
                "hist_prev" => f.aux(HISTORY) + 8 * ((hh - 2) & 31),
                "hist_far" => f.aux(HISTORY) + 8 * ((hh + 5) & 31),
                "hdr_at_t" => data(tp),
                "hdr_at_u" => data(up),
                "hdr_at_tail" => data(tail),
                "hdr_next_lap" => data(tail + 64),
                _ => unreachable!(),
            };
            // Header targets also get words with the right lap (and wrong lengths/kinds).
            let at = match name {
                "hdr_at_t" => Some(tp),
                "hdr_at_u" => Some(up),
                "hdr_at_tail" => Some(tail),
                "hdr_next_lap" => Some(tail + 64 + CAP),
                _ => None,
            };
            let value = match (at, vi) {
                (Some(p), 99) => header(16, 1, p),
                (Some(p), 0) => header(300, 1, p),
                (Some(p), 1) => header(8, 2, p),
                (Some(p), 2) => header(8, 3, p),
                (Some(p), 3) => header(16, 1, p + CAP),
                (None, 99) => continue,
                (_, _) if name == "tethered" => base | (0xFF << 55),
                _ => base,
            };
            if name == "gen" && value == u64::MAX {
                // Finding 5 (its own test below).
                continue;
            }
            f.poke(off, value);
            let subs = vec![t, u];
            let (tx, rx) = std::sync::mpsc::channel();
            let f = std::sync::Arc::new(f);
            let g = f.clone();
            std::thread::spawn(move || {
                let mut subs = subs;
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    honest_round(&g, Some(publisher), &mut subs);
                }));
                let _ = tx.send(r.err().map(|e| {
                    e.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_string()))
                        .unwrap_or_default()
                }));
            });
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(None) => {}
                Ok(Some(panic)) => failures.push(format!("{name} = {value:#x}: panic: {panic}")),
                Err(_) => failures.push(format!("{name} = {value:#x}: hang")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// -------------------------------------------------------------------------------------------
// Finding 5: a scribbled roster generation of 2^64 - 1 makes a tethered join panic (J2's
// `fetch_add(gen, 1) + 1` overflows).
// -------------------------------------------------------------------------------------------

#[test]
fn a_scribbled_generation_does_not_make_a_join_panic() {
    let f = Fixture::new(&BroadcastConfig::new(CAP).max_record(256).history(16));
    let mut publisher = f.ring.producer().unwrap();
    publisher.try_push(&msg(0, 16)).unwrap();
    f.poke(f.aux(GEN), u64::MAX);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut s = f
            .ring
            .subscriber(&Subscription::tethered().start_at(StartAt::Latest))
            .unwrap();
        publisher.try_push(&msg(1, 16)).unwrap();
        (pop(&mut s), pop(&mut s))
    }));
    assert!(
        r.is_ok(),
        "a scribbled roster generation made a joining subscriber panic"
    );
}

// -------------------------------------------------------------------------------------------
// Finding 6: a history entry scribbled to point inside a published record (8-aligned, below
// the tail, not overrun) starts an untethered joiner on a zero payload word: it waits there
// silently while the publisher is idle, although the published tail is beyond it.
// -------------------------------------------------------------------------------------------

/// `entry` checks alignment, range and the seqlock, `overrun` checks V2; nothing checks that
/// the position is a record boundary. The untethered joiner then reads the record's zero
/// payload word as "empty"; the audit of a validating subscriber is always `Fine`, so a
/// blocking pop waits for ever (here: until its timeout) instead of reporting `Corrupt`
/// (or re-joining), although the publisher's tail is beyond it — as a confirmed
/// subscriber's audit would notice.
#[test]
fn a_joiner_started_inside_a_record_by_a_scribbled_entry_does_not_wait_silently() {
    let f = Fixture::new(&BroadcastConfig::new(CAP).max_record(256).history(16));
    let mut publisher = f.ring.producer().unwrap();
    let mut zeros = vec![0u8; 64];
    zeros[0] = 1;
    publisher.try_push(&zeros).unwrap(); // record 0 at position 0, payload at 8..72
    publisher.try_push(&zeros).unwrap(); // record 1 at position 72
                                         // History entry of record 1 (the latest) points 32 bytes into it: a zero word.
    f.poke(f.aux(HISTORY) + 8, 72 + 32);
    let mut lossy = f
        .ring
        .subscriber(&Subscription::untethered().start_at(StartAt::Latest))
        .unwrap();
    lossy.set_probe_interval(Duration::from_millis(1));
    let mut buf = [0u8; 256];
    let r = lossy.pop_timeout(&mut buf, Duration::from_millis(500));
    assert_ne!(
        r,
        Err(PopError::Timeout),
        "the joiner waits on a zero word below the published tail with the publisher idle"
    );
}

// -------------------------------------------------------------------------------------------
// A dead tethered subscriber stops gating within a probe interval (invariant 4).
// -------------------------------------------------------------------------------------------

/// (An untethered subscriber stays attached in this process: without it, finding 7 makes
/// the blocking push report `Disconnected` once the dead one is reaped.)
#[test]
fn a_killed_tethered_subscriber_stops_gating_within_a_probe_interval() {
    use std::io::{BufRead, BufReader};
    if let Some(role) = shmbus_testkit::role() {
        if role == "rv16-subscriber" {
            let name = std::env::var(CHILD_RING).unwrap();
            let ring = BroadcastRing::open_shm(&name, &SegmentOptions::default()).unwrap();
            let mut sub = ring.consumer().unwrap();
            let mut buf = [0u8; 256];
            // Confirmed once it has read a message published after it joined.
            while !sub.is_confirmed() {
                let _ = sub.pop_timeout(&mut buf, Duration::from_millis(10));
            }
            eprintln!("rv16-confirmed");
            std::thread::sleep(Duration::from_secs(600));
        }
        return;
    }
    let f = Fixture::new(&BroadcastConfig::new(CAP).max_record(256).history(16));
    let mut publisher = f.ring.producer().unwrap();
    publisher.set_probe_interval(Duration::from_millis(10));
    let _lossy = f.ring.subscriber(&Subscription::untethered()).unwrap();
    let mut child = shmbus_testkit::ChildGuard::spawn(
        shmbus_testkit::respawn(
            "a_killed_tethered_subscriber_stops_gating_within_a_probe_interval",
            "rv16-subscriber",
        )
        .env(CHILD_RING, shm_name(&f.ring))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped()),
    );
    let err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if line.contains("rv16-confirmed") {
                let _ = tx.send(());
            }
        }
    });
    let mut i = 0;
    loop {
        // Keep publishing (within the gate) until the child says it is confirmed.
        let _ = publisher.try_push(&msg(i, 16));
        i += 1;
        if rx.recv_timeout(Duration::from_millis(5)).is_ok() {
            break;
        }
        assert!(i < 100_000, "the child never confirmed");
    }
    // Fill the ring: the child gates it.
    while publisher.try_push(&msg(i, 100)).is_ok() {
        i += 1;
    }
    assert_eq!(publisher.try_push(&msg(i, 100)), Err(PushError::Full));
    child.kill().unwrap();
    child.wait().unwrap();
    let started = Instant::now();
    publisher
        .push_timeout(&msg(i, 100), Duration::from_secs(10))
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(f.ring.subscribers().len(), 1);
    for j in 0..1000 {
        publisher.try_push(&msg(j, 100)).unwrap();
    }
}

// -------------------------------------------------------------------------------------------
// Finding 7: a blocking push says `Disconnected` once every subscriber has left (or died),
// although "a publisher never reports Disconnected" (PROTOCOL §8): `wait_room` and
// `on_full` test `gone(Role::Consumer)` without `K::PRODUCER_NEEDS_CONSUMERS`.
// -------------------------------------------------------------------------------------------

#[test]
fn a_blocking_push_after_the_last_subscriber_left_publishes() {
    let ring =
        BroadcastRing::in_heap(&BroadcastConfig::new(CAP).max_record(256).history(16)).unwrap();
    let mut publisher = ring.producer().unwrap();
    let sub = ring.consumer().unwrap();
    publisher.try_push(&msg(0, 16)).unwrap();
    drop(sub);
    // The non-blocking push is fine; the blocking ones are not.
    publisher.try_push(&msg(1, 16)).unwrap();
    assert_eq!(
        publisher.push_timeout(&msg(2, 16), Duration::from_secs(1)),
        Ok(())
    );
    assert_eq!(publisher.push(&msg(3, 16)), Ok(()));
    assert!(publisher
        .reserve_deadline(16, Some(Instant::now() + Duration::from_secs(1)))
        .is_ok());
}

/// The same while the push waits: the slow subscriber leaves, which frees the room, and the
/// waiting push reports `Disconnected` instead of publishing.
#[test]
fn a_push_waiting_on_a_subscriber_that_leaves_publishes() {
    let ring =
        BroadcastRing::in_heap(&BroadcastConfig::new(CAP).max_record(256).history(16)).unwrap();
    let mut publisher = ring.producer().unwrap();
    let mut sub = ring.consumer().unwrap();
    publisher.try_push(&msg(0, 16)).unwrap();
    assert_eq!(pop(&mut sub), Ok((0, 16)));
    let mut i = 1;
    while publisher.try_push(&msg(i, 100)).is_ok() {
        i += 1;
    }
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        drop(sub);
    });
    let r = publisher.push_timeout(&msg(i, 100), Duration::from_secs(10));
    t.join().unwrap();
    assert_eq!(r, Ok(()));
}

// -------------------------------------------------------------------------------------------
// Finding 8: `retether` of a subscriber that has read everything goes back to the latest
// record, which it has already received: a repeat.
// -------------------------------------------------------------------------------------------

#[test]
fn retether_of_a_caught_up_subscriber_does_not_repeat_a_message() {
    let ring =
        BroadcastRing::in_heap(&BroadcastConfig::new(CAP).max_record(256).history(16)).unwrap();
    let mut publisher = ring.producer().unwrap();
    let mut lossy = ring.subscriber(&Subscription::untethered()).unwrap();
    for i in 0..5 {
        publisher.try_push(&msg(i, 16)).unwrap();
    }
    for i in 0..5 {
        assert_eq!(pop(&mut lossy), Ok((i, 16)));
    }
    assert_eq!(lossy.sequence(), 5);
    let skipped = lossy.retether();
    assert_eq!(skipped, 0);
    publisher.try_push(&msg(5, 16)).unwrap();
    assert_eq!(lossy.sequence(), 5, "the sequence went back");
    assert_eq!(pop(&mut lossy), Ok((5, 16)), "message 4 delivered twice");
}

/// Finding 1's untethered face: a caught-up untethered subscriber sits on the padding record
/// the publisher writes over with the record that follows it (padding + record + 8 >
/// capacity), and is told `Lagged { missed: 0 }` although it missed nothing.
#[test]
fn a_caught_up_untethered_subscriber_is_not_lagged_by_a_large_record() {
    let ring = BroadcastRing::in_heap(&BroadcastConfig::new(CAP).max_record(CAP / 2 - 16)).unwrap();
    let mut publisher = ring.producer().unwrap();
    let mut lossy = ring.subscriber(&Subscription::untethered()).unwrap();
    publisher.try_push(&msg(0, 1024)).unwrap();
    publisher.try_push(&msg(1, 1024)).unwrap();
    assert_eq!(pop(&mut lossy), Ok((0, 1024)));
    assert_eq!(pop(&mut lossy), Ok((1, 1024)));
    publisher.try_push(&msg(2, 2032)).unwrap();
    assert_eq!(pop(&mut lossy), Ok((2, 2032)));
}

// -------------------------------------------------------------------------------------------
// The observer (`Peek::next_broadcast`) on hostile words.
// -------------------------------------------------------------------------------------------

/// A word of another lap at the observer's position, the publisher not beyond it: the
/// observer reports `Missed { from: p, to: p }` for ever — no progress and no `Corrupt`
/// (an honest subscriber reports `Corrupt` there).
#[test]
fn an_observer_on_a_stale_word_makes_progress_or_reports_corruption() {
    use shmbus_ring::observe::{Observer, Peeked, Start};
    let f = Fixture::new(&BroadcastConfig::new(CAP).max_record(256).history(16));
    let mut publisher = f.ring.producer().unwrap();
    for i in 0..3 {
        publisher.try_push(&msg(i, 16)).unwrap();
    }
    let obs = Observer::open(&shm_name(&f.ring)).unwrap();
    let mut peek = obs.peek(Start::Newest);
    let p = peek.position();
    assert_eq!(p, 72);
    f.poke(DATA_OFFSET + p, header(16, 1, p + 5 * CAP));
    let mut out = Vec::new();
    let mut stuck = 0;
    for _ in 0..10 {
        match peek.next(&mut out) {
            Ok(Peeked::Missed { from, to }) if from == to => stuck += 1,
            Ok(Peeked::Missed { .. } | Peeked::Message { .. }) => {}
            Ok(Peeked::Nothing) | Err(_) => break,
        }
    }
    assert!(stuck < 2, "{stuck} empty Missed reports in a row");
}

// -------------------------------------------------------------------------------------------
// Invariants 1 and 2 under real concurrency: a publisher thread, tethered and untethered
// subscriber threads, joiners mid-stream; every message intact, every gap counted.
// -------------------------------------------------------------------------------------------

fn follow(mut s: Consumer<shmbus_ring::Broadcast>, last: u64, lossless: bool) -> (u64, u64, u64) {
    let mut buf = vec![0u8; 512];
    let mut expect = s.sequence();
    let (mut got, mut lagged, mut ejected) = (0u64, 0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(60);
    while expect <= last {
        assert!(Instant::now() < deadline, "stuck at {expect}");
        assert_eq!(s.sequence(), expect);
        match s.pop_timeout(&mut buf, Duration::from_millis(50)) {
            Ok(n) => {
                let i = u64::from_le_bytes(buf[..8].try_into().unwrap());
                assert_eq!(&buf[..n], &msg(i, n)[..], "message {i} torn");
                assert_eq!(i, expect, "skipped or repeated");
                expect += 1;
                got += 1;
            }
            Err(PopError::Lagged { missed }) => {
                assert!(
                    !lossless || !s.is_confirmed(),
                    "a confirmed subscriber lagged"
                );
                lagged += 1;
                expect += missed;
                assert_eq!(s.sequence(), expect, "missed does not add up");
            }
            Err(PopError::Ejected) => {
                assert!(!lossless, "ejected under Block");
                ejected += 1;
            }
            Err(PopError::Timeout | PopError::Empty) => {}
            Err(e) => panic!("{e:?} at {expect}"),
        }
    }
    (got, lagged, ejected)
}

#[test]
fn concurrent_subscribers_never_see_torn_skipped_or_repeated_messages() {
    for policy in [
        SlowSubscribers::Block,
        SlowSubscribers::Untether {
            after: Duration::from_millis(1),
        },
    ] {
        let ring =
            BroadcastRing::in_heap(&BroadcastConfig::new(CAP).max_record(256).history(16)).unwrap();
        let last = 30_000u64;
        let mut publisher = ring.producer().unwrap();
        publisher.set_slow_subscribers(policy);
        let lossless = policy == SlowSubscribers::Block;
        let mut handles = Vec::new();
        for k in 0..3 {
            let sub = if k == 2 {
                Subscription::untethered()
            } else {
                Subscription::tethered()
            };
            let s = ring.subscriber(&sub).unwrap();
            handles.push(std::thread::spawn(move || {
                follow(s, last, lossless && k < 2)
            }));
        }
        let joiner_ring = ring.clone();
        let joiners = std::thread::spawn(move || {
            let mut out = Vec::new();
            for j in 0..6u32 {
                std::thread::sleep(Duration::from_millis(3));
                let how = [StartAt::Latest, StartAt::History(5), StartAt::Oldest][j as usize % 3];
                let sub = if j % 2 == 0 {
                    Subscription::untethered()
                } else {
                    Subscription::tethered()
                };
                let mut s = joiner_ring.subscriber(&sub.start_at(how)).unwrap();
                let mut buf = vec![0u8; 512];
                let mut expect = s.sequence();
                for _ in 0..200 {
                    match s.try_pop(&mut buf) {
                        Ok(n) => {
                            let i = u64::from_le_bytes(buf[..8].try_into().unwrap());
                            assert_eq!(&buf[..n], &msg(i, n)[..], "joiner: message {i} torn");
                            assert_eq!(i, expect, "joiner {how:?}: skipped or repeated");
                            expect += 1;
                        }
                        Err(PopError::Lagged { missed }) => {
                            expect += missed;
                            assert_eq!(s.sequence(), expect);
                        }
                        Err(PopError::Ejected | PopError::Empty) => {}
                        Err(e) => panic!("joiner: {e:?}"),
                    }
                }
                out.push(expect);
            }
            out
        });
        for i in 0..=last {
            let m = msg(i, 8 + (i as usize * 31) % 240);
            publisher.push_timeout(&m, Duration::from_secs(30)).unwrap();
        }
        drop(publisher);
        joiners.join().unwrap();
        for h in handles {
            let (got, lagged, ejected) = h.join().unwrap();
            assert!(got > 0);
            let _ = (lagged, ejected);
        }
    }
}

// -------------------------------------------------------------------------------------------
// Finding 10: `Producer::is_full` (a select's readiness check for a send) runs the
// publisher's `ensure`, which under `Untether` ejects: asking ejects a subscriber.
// -------------------------------------------------------------------------------------------

#[test]
fn asking_whether_the_ring_is_full_ejects_nobody() {
    let ring =
        BroadcastRing::in_heap(&BroadcastConfig::new(CAP).max_record(256).history(16)).unwrap();
    let mut publisher = ring.producer().unwrap();
    let mut slow = ring.consumer().unwrap();
    publisher.try_push(&msg(0, 16)).unwrap();
    assert_eq!(pop(&mut slow), Ok((0, 16)));
    let mut i = 1;
    while publisher.try_push(&msg(i, 100)).is_ok() {
        i += 1;
    }
    // To the last byte: empty records (8 bytes each).
    while publisher.try_push(&[]).is_ok() {}
    publisher.set_slow_subscribers(SlowSubscribers::Untether {
        after: Duration::ZERO,
    });
    let full = publisher.is_full();
    let _ = publisher.is_full();
    assert_eq!(ring.ejections(), 0, "is_full() ejected a subscriber");
    assert!(full);
    assert_eq!(pop(&mut slow), Ok((1, 100)));
}

/// Finding 7's select face: the publisher's `check_peers` says `Disconnected` once every
/// subscriber has left.
#[test]
fn a_publishers_check_peers_is_never_disconnected() {
    let ring =
        BroadcastRing::in_heap(&BroadcastConfig::new(CAP).max_record(256).history(16)).unwrap();
    let mut publisher = ring.producer().unwrap();
    drop(ring.consumer().unwrap());
    assert_eq!(publisher.check_peers(), Ok(()));
}

/// A publisher killed right after committing a padding record (P3 of the padding, before its
/// P6): the successor walks over the padding, and history, sequence numbers and joiners are
/// right.
#[test]
fn a_publisher_killed_after_its_padding_is_succeeded() {
    if let Some(role) = shmbus_testkit::role() {
        if role == "rv16-publisher-pad" {
            let name = std::env::var(CHILD_RING).unwrap();
            let ring = BroadcastRing::open_shm(&name, &SegmentOptions::default()).unwrap();
            let mut publisher = ring.producer().unwrap();
            for i in 0..4 {
                publisher.try_push(&msg(i, 1000)).unwrap(); // 1008 bytes each: tail 4032
            }
            shmbus_ring::crashpoint::arm("broadcast.push.published");
            // Needs 64 bytes of padding first: parks after the padding's P3.
            publisher.try_push(&msg(4, 1000)).unwrap();
            panic!("the crash point was not reached");
        }
        return;
    }
    use std::io::{BufRead, BufReader};
    let f = Fixture::new(&BroadcastConfig::new(CAP).max_record(1024).history(16));
    let mut child = shmbus_testkit::ChildGuard::spawn(
        shmbus_testkit::respawn(
            "a_publisher_killed_after_its_padding_is_succeeded",
            "rv16-publisher-pad",
        )
        .env(CHILD_RING, shm_name(&f.ring))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped()),
    );
    let err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if line.contains("shmbus-crashpoint:") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the child reached its crash point");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(f.peek(PRODUCER_TAIL), 4032, "the padding's P6 was not done");
    let mut before = f
        .ring
        .subscriber(&Subscription::untethered().start_at(StartAt::History(2)))
        .unwrap();
    assert_eq!(before.sequence(), 2);
    let mut successor = f.ring.producer().unwrap();
    assert_eq!(
        f.peek(PRODUCER_TAIL),
        4096,
        "the successor walked over the padding"
    );
    assert_eq!(f.ring.published(), 4);
    successor.try_push(&msg(4, 1000)).unwrap();
    assert_eq!(f.ring.published(), 5);
    // Joiners: Latest is message 4; History(3) is 2, 3, 4; Oldest is what the ring holds.
    let mut latest = f
        .ring
        .subscriber(&Subscription::tethered().start_at(StartAt::Latest))
        .unwrap();
    assert_eq!(latest.sequence(), 4);
    assert_eq!(pop(&mut latest), Ok((4, 1000)));
    let mut three = f
        .ring
        .subscriber(&Subscription::untethered().start_at(StartAt::History(3)))
        .unwrap();
    for i in 2..5 {
        assert_eq!(pop(&mut three), Ok((i, 1000)));
    }
    let mut oldest = f
        .ring
        .subscriber(&Subscription::untethered().start_at(StartAt::Oldest))
        .unwrap();
    let first = oldest.sequence();
    assert!((1..=4).contains(&first), "{first}");
    for i in first..5 {
        assert_eq!(pop(&mut oldest), Ok((i, 1000)));
    }
    // The subscriber that joined before the successor reads on, without a gap.
    for i in 2..5 {
        assert_eq!(pop(&mut before), Ok((i, 1000)));
    }
}

// -------------------------------------------------------------------------------------------
// Finding 11: with no tethered subscriber the publisher stores its informational `gate` once
// (the tail when the limit became "none") and never again, so an observer's `used_bytes`
// (`tail − gate`) climbs to the capacity: a ring nobody gates shows as full.
// -------------------------------------------------------------------------------------------

#[test]
fn an_observer_does_not_see_a_ring_nobody_gates_as_full() {
    use shmbus_ring::observe::Observer;
    let f = Fixture::new(&BroadcastConfig::new(CAP).max_record(256).history(16));
    let mut publisher = f.ring.producer().unwrap();
    let mut lossy = f.ring.subscriber(&Subscription::untethered()).unwrap();
    for i in 0..1000 {
        publisher.try_push(&msg(i, 16)).unwrap();
        let _ = pop(&mut lossy);
    }
    let obs = Observer::open(&shm_name(&f.ring)).unwrap();
    assert!(
        obs.used_bytes() < CAP / 2,
        "used_bytes {} of {CAP} with nobody gating",
        obs.used_bytes()
    );
}

#[test]
fn a_full_endpoint_table_refuses_a_subscriber_and_the_rest_go_on() {
    let ring =
        BroadcastRing::in_heap(&BroadcastConfig::new(CAP).max_record(256).history(16)).unwrap();
    let mut publisher = ring.producer().unwrap();
    let mut subs = Vec::new();
    let mut refused = 0;
    for k in 0..60 {
        let how = if k % 2 == 0 {
            Subscription::tethered()
        } else {
            Subscription::untethered()
        };
        match ring.subscriber(&how) {
            Ok(s) => subs.push(s),
            Err(_) => refused += 1,
        }
    }
    assert!(refused > 0);
    assert!(subs.len() <= 55);
    for round in 0..20u64 {
        for j in 0..10 {
            publisher.try_push(&msg(round * 10 + j, 40)).unwrap();
        }
        for s in &mut subs {
            for j in 0..10 {
                assert_eq!(pop(s), Ok((round * 10 + j, 40)));
            }
        }
    }
}

// -------------------------------------------------------------------------------------------
// Joins between the publisher's steps (crash-point hooks on the publishing thread).
// -------------------------------------------------------------------------------------------

/// Subscribers join at each start while the publisher is between P3 (record committed) and
/// P5 (counted), and between writing the payload and P3: each starts where documented, with
/// sequence numbers that match what it then reads.
#[test]
fn joins_between_the_publishers_steps_start_consistently() {
    for point in ["broadcast.push.written", "broadcast.push.published"] {
        let ring =
            BroadcastRing::in_heap(&BroadcastConfig::new(CAP).max_record(256).history(16)).unwrap();
        let mut publisher = ring.producer().unwrap();
        for i in 0..200 {
            publisher.try_push(&msg(i, 40)).unwrap();
        }
        let joined = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (r, j) = (ring.clone(), joined.clone());
        shmbus_ring::crashpoint::on_this_thread(point, move || {
            for how in [
                StartAt::Next,
                StartAt::Latest,
                StartAt::History(3),
                StartAt::Oldest,
            ] {
                for sub in [Subscription::tethered(), Subscription::untethered()] {
                    let s = r.subscriber(&sub.start_at(how)).unwrap();
                    j.lock().unwrap().push((how, s.sequence(), s));
                }
            }
        });
        publisher.try_push(&msg(200, 40)).unwrap();
        publisher.try_push(&msg(201, 40)).unwrap();
        let mut joined = std::mem::take(&mut *joined.lock().unwrap());
        assert_eq!(joined.len(), 8, "{point}: the hook ran");
        for (how, seq, s) in &mut joined {
            let want = match how {
                StartAt::Next => 200,
                StartAt::Latest => 199,
                StartAt::History(n) => 200 - u64::from(*n),
                StartAt::Oldest => 200 - 16,
            };
            assert!(*seq >= want && *seq <= 200, "{point} {how:?}: seq {seq}");
            let mut expect = *seq;
            while let Ok((i, _)) = pop(s) {
                assert_eq!(i, expect, "{point} {how:?}");
                expect += 1;
            }
            assert_eq!(expect, 202, "{point} {how:?}");
        }
    }
}

/// A tethered joiner announced (J2) but not yet reading, while the publisher runs until the
/// ring is full: under `Block` the gate holds it (no lag, nothing lost); under `Untether` it
/// is ejected and told so, then reads on with consistent sequence numbers.
#[test]
fn a_joiner_announced_but_not_reading_is_held_by_the_gate_or_ejected() {
    for untether in [false, true] {
        let ring =
            BroadcastRing::in_heap(&BroadcastConfig::new(CAP).max_record(256).history(16)).unwrap();
        let publisher = std::sync::Arc::new(std::sync::Mutex::new(ring.producer().unwrap()));
        for i in 0..100 {
            publisher.lock().unwrap().try_push(&msg(i, 40)).unwrap();
        }
        if untether {
            publisher
                .lock()
                .unwrap()
                .set_slow_subscribers(SlowSubscribers::Untether {
                    after: Duration::ZERO,
                });
        }
        let p = publisher.clone();
        let pushed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(100));
        let n = pushed.clone();
        shmbus_ring::crashpoint::on_this_thread("broadcast.joined", move || {
            let mut p = p.lock().unwrap();
            let mut i = 100;
            while i < 400 && p.try_push(&msg(i, 40)).is_ok() {
                i += 1;
            }
            n.store(i, Ordering::SeqCst);
        });
        let mut s = ring
            .subscriber(&Subscription::tethered().start_at(StartAt::History(4)))
            .unwrap();
        let last = pushed.load(Ordering::SeqCst);
        assert_eq!(s.sequence(), 96);
        let mut expect = 96;
        let mut ejected = false;
        loop {
            match pop(&mut s) {
                Ok((i, _)) => {
                    assert_eq!(i, expect, "untether {untether}");
                    expect += 1;
                }
                Err(PopError::Ejected) => {
                    assert!(untether);
                    ejected = true;
                }
                Err(PopError::Lagged { missed }) => {
                    assert!(untether && ejected, "a held joiner lagged");
                    expect += missed;
                    assert_eq!(s.sequence(), expect);
                }
                Err(PopError::Empty) => break,
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(expect, last, "untether {untether}");
        if untether {
            assert!(ejected && last == 400);
        } else {
            assert!(last < 400, "the gate did not hold the joiner");
        }
    }
}
