//! Attacks on the broadcast ring (issue 16): interleavings chosen to break it, in one process.
//! The callbacks and read guards of the in-place read paths let the test run the publisher
//! exactly between two steps of a subscriber's call, as another process could. Each test that
//! found a bug was `#[ignore = "bug: ..."]` until the ring was fixed (all are fixed now); the final report of the
//! branch describes each.
#![cfg(not(loom))]

use shmbus_ring::broadcast::{BroadcastConfig, BroadcastRing, SlowSubscribers, StartAt};
use shmbus_ring::{Broadcast, Consumer, PopError, Producer, PushError, Subscription};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// Message `seq` of `len` (≥ 12) bytes: `[seq][filler][fnv1a]`.
fn message(seq: u64, len: usize) -> Vec<u8> {
    let mut m = vec![0u8; len];
    m[..8].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in m[8..len - 4].iter_mut().enumerate() {
        *b = (seq as u8).wrapping_mul(151).wrapping_add(i as u8);
    }
    let sum = fnv1a(&m[..len - 4]);
    m[len - 4..].copy_from_slice(&sum.to_le_bytes());
    m
}

/// The sequence number of an intact message.
fn parse(got: &[u8]) -> Result<u64, String> {
    if got.len() < 12 {
        return Err(format!("message of {} bytes", got.len()));
    }
    let seq = u64::from_le_bytes(got[..8].try_into().unwrap());
    if message(seq, got.len()) != got {
        return Err(format!("message {seq} ({} bytes) torn", got.len()));
    }
    Ok(seq)
}

fn pop(c: &mut Consumer<Broadcast>) -> Result<u64, PopError> {
    c.try_pop_with(|m| parse(m).unwrap())
}

/// A 4096-byte ring whose records of 1016 payload bytes take exactly a quarter of it.
fn quarters() -> BroadcastRing {
    BroadcastRing::in_heap(&BroadcastConfig::new(4096).max_record(1016).history(16)).unwrap()
}

const QUARTER: usize = 1016;

fn untethering(p: &mut Producer<Broadcast>) {
    p.set_slow_subscribers(SlowSubscribers::Untether {
        after: Duration::ZERO,
    });
}

/// Joining again when already up to date must not deliver a message a second time.
#[test]
fn retether_of_an_up_to_date_subscriber_delivers_nothing_twice() {
    let ring = quarters();
    let mut publisher = ring.producer().unwrap();
    let mut sub = ring.subscriber(&Subscription::untethered()).unwrap();
    for i in 0..3 {
        publisher.try_push(&message(i, 100)).unwrap();
    }
    for i in 0..3 {
        assert_eq!(pop(&mut sub), Ok(i));
    }
    assert_eq!(sub.sequence(), 3);
    let skipped = sub.retether();
    assert_eq!(skipped, 0);
    assert_eq!(
        sub.sequence(),
        3,
        "retether moved the subscriber back to a message it has read"
    );
    assert_eq!(
        pop(&mut sub),
        Err(PopError::Empty),
        "message 2 delivered twice"
    );
}

/// A confirmed subscriber reading in place (a read guard, `try_pop_with`, `try_pop_batch`)
/// reads the ring's bytes after the ejection check: a publisher that ejects it meanwhile
/// writes over the bytes it is reading, and the message is handed out as `Ok`.
#[test]
fn an_ejecting_publisher_never_writes_over_a_message_read_in_place() {
    let ring = quarters();
    let mut publisher = ring.producer().unwrap();
    untethering(&mut publisher);
    let mut sub = ring.consumer().unwrap();
    publisher.try_push(&message(0, QUARTER)).unwrap();
    assert_eq!(pop(&mut sub), Ok(0));
    assert!(sub.is_confirmed());
    publisher.try_push(&message(1, QUARTER)).unwrap();
    // The subscriber holds message 1 in place; another process's publisher goes on.
    let guard = sub.read().unwrap().expect("message 1");
    assert_eq!(parse(&guard), Ok(1));
    for i in 2..8 {
        publisher.try_push(&message(i, QUARTER)).unwrap();
    }
    assert_eq!(ring.ejections(), 1, "the publisher ejected the subscriber");
    // The guard is an `Ok` message: its bytes must still be message 1.
    let now = parse(&guard);
    drop(guard);
    assert_eq!(now, Ok(1), "the bytes of a message held in place changed");

    // The same through `try_pop_with`: the callback runs while the publisher ejects.
    let ring = quarters();
    let mut publisher = ring.producer().unwrap();
    untethering(&mut publisher);
    let mut sub = ring.consumer().unwrap();
    publisher.try_push(&message(0, QUARTER)).unwrap();
    assert_eq!(pop(&mut sub), Ok(0));
    publisher.try_push(&message(1, QUARTER)).unwrap();
    let seen = sub
        .try_pop_with(|m| {
            for i in 2..8 {
                publisher.try_push(&message(i, QUARTER)).unwrap();
            }
            parse(m)
        })
        .expect("an Ok pop");
    assert_eq!(seen, Ok(1), "the bytes handed to try_pop_with changed");
}

/// A batch that meets `Lagged` after handing out messages ends with `Ok(n)`; the subscriber has
/// already moved to the latest record, so the gap must be reported by the next call.
#[test]
fn a_batch_that_meets_lagged_does_not_lose_the_report() {
    let ring = quarters();
    let mut publisher = ring.producer().unwrap();
    let mut sub = ring.subscriber(&Subscription::untethered()).unwrap();
    publisher.try_push(&message(0, 100)).unwrap();
    publisher.try_push(&message(1, 100)).unwrap();
    let mut got = Vec::new();
    let mut sent = 2;
    let n = sub
        .try_pop_batch(2, |m| {
            got.push(parse(m).unwrap());
            // While the subscriber is in its batch, the publisher laps it.
            while sent < 40 {
                publisher.try_push(&message(sent, 300)).unwrap();
                sent += 1;
            }
        })
        .unwrap();
    assert_eq!((n, &got[..]), (1, &[0][..]));
    // Everything after message 0: Lagged first, then what the ring still holds, in order.
    let mut missed_total = 0;
    let mut received = 1;
    let mut next = 1;
    loop {
        match pop(&mut sub) {
            Ok(seq) => {
                assert_eq!(
                    seq,
                    next + missed_total,
                    "a gap of {} messages with no Lagged",
                    seq - next - missed_total
                );
                received += 1;
                next += 1;
            }
            Err(PopError::Lagged { missed }) => missed_total += missed,
            Err(PopError::Empty) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(received + missed_total, sent);
}

/// A confirmed subscriber ejected and lapped so that the publisher's zero-ahead word sits at its
/// position must learn it was ejected, not read `Empty` while messages wait (nor, at the second
/// probe, `Corrupt` from the audit of a zero word below the published tail).
#[test]
fn an_ejected_subscriber_at_the_zero_ahead_word_is_told_it_was_ejected() {
    let ring = quarters();
    let mut publisher = ring.producer().unwrap();
    untethering(&mut publisher);
    let mut sub = ring.consumer().unwrap();
    sub.set_probe_interval(Duration::from_millis(1));
    publisher.try_push(&message(0, QUARTER)).unwrap();
    assert_eq!(pop(&mut sub), Ok(0));
    assert!(sub.is_confirmed());
    // Records 1..=3 fill the ring up to the subscriber (at 1024); record 4 ejects it, and its
    // zero-ahead word lands at 5120, the subscriber's position one lap on.
    for i in 1..=4 {
        publisher.try_push(&message(i, QUARTER)).unwrap();
    }
    assert_eq!(ring.ejections(), 1);
    let mut results = Vec::new();
    let until = Instant::now() + Duration::from_millis(200);
    while Instant::now() < until {
        let r = pop(&mut sub);
        if !results.contains(&r) {
            results.push(r);
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    assert_eq!(
        results[0],
        Err(PopError::Ejected),
        "four messages wait and the subscriber was ejected: {results:?}"
    );
    assert!(
        !results
            .iter()
            .any(|r| matches!(r, Err(PopError::Corrupt(_)))),
        "{results:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Threads: races between a running publisher and subscribers.
// ---------------------------------------------------------------------------------------------

/// How long each race runs (override with `SHMBUS_RACE_MS`).
fn race_time() -> Duration {
    Duration::from_millis(
        std::env::var("SHMBUS_RACE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1500),
    )
}

/// A publisher thread pushing sequence-numbered messages of random sizes until `stop`.
fn spawn_publisher(
    mut publisher: Producer<Broadcast>,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    sizes: (usize, usize),
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut seq = 0u64;
        let mut rng = shmbus_testkit::rng::Rng::new(7);
        let mut msg = message(0, sizes.0);
        while !stop.load(Ordering::Relaxed) {
            match publisher.try_push(&msg) {
                Ok(()) => {
                    seq += 1;
                    sent.store(seq, Ordering::Release);
                    let len = sizes.0 + rng.below((sizes.1 - sizes.0 + 1) as u64) as usize;
                    msg = message(seq, len);
                }
                Err(PushError::Full) => std::thread::yield_now(),
                Err(e) => panic!("publisher: {e}"),
            }
        }
    })
}

/// An untethered subscriber lapped again and again by a running publisher: every `Lagged`
/// counts exactly the messages between the last one it read and the next one it reads.
#[test]
fn lagged_counts_exactly_what_was_skipped_under_a_running_publisher() {
    for history in [1, 64] {
        let ring =
            BroadcastRing::in_heap(&BroadcastConfig::new(4096).max_record(200).history(history))
                .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let publisher = spawn_publisher(
            ring.producer().unwrap(),
            stop.clone(),
            sent.clone(),
            (12, 40),
        );
        let mut sub = ring.subscriber(&Subscription::untethered()).unwrap();
        let mut rng = shmbus_testkit::rng::Rng::new(history.into());
        let (mut next, mut lags, mut wrong) = (sub.sequence(), 0u64, Vec::new());
        let until = Instant::now() + race_time();
        let mut buf = vec![0u8; 200];
        while Instant::now() < until {
            match sub.try_pop(&mut buf) {
                Ok(n) => {
                    let seq = parse(&buf[..n]).unwrap();
                    if seq != next {
                        wrong.push((next, seq));
                    }
                    next = seq + 1;
                    if rng.below(64) == 0 {
                        // Fall behind now and then.
                        for _ in 0..rng.below(2000) {
                            std::hint::spin_loop();
                        }
                    }
                }
                Err(PopError::Lagged { missed }) => {
                    lags += 1;
                    next += missed;
                }
                Err(PopError::Empty) => {}
                Err(e) => panic!("{e}"),
            }
        }
        stop.store(true, Ordering::Relaxed);
        publisher.join().unwrap();
        eprintln!(
            "history {history}: {} sent, {lags} lags, {} wrong counts",
            sent.load(Ordering::Relaxed),
            wrong.len()
        );
        assert!(
            wrong.is_empty(),
            "history {history}: after Lagged, (expected, got) {:?}",
            &wrong[..wrong.len().min(10)]
        );
    }
}

/// A tethered subscriber that joins again (`retether`) over and over while an untethering
/// publisher ejects it: as long as it is tethered and confirmed it reads consecutive, intact
/// messages, never another lap's header (`Corrupt`).
#[test]
fn retethering_while_the_publisher_ejects_never_leaves_an_ungated_confirmed_subscriber() {
    let cfg = BroadcastConfig::new(4096).max_record(1016).history(16);
    let seg = shmbus_ring::Segment::memfd(
        "bcast-retether-race",
        cfg.segment_len(),
        &shmbus_ring::SegmentOptions::default(),
    )
    .unwrap();
    let raw = shmbus_testkit::hostile::raw_view(&seg).unwrap();
    let ring = BroadcastRing::create_in(seg, &cfg).unwrap();
    // The subscriber's state in shared memory, for the failure message.
    let state = |ring: &BroadcastRing| {
        use shmbus_ring::broadcast::aux;
        let bits = raw
            .atomic_u64((shmbus_ring::layout::DATA_OFFSET + 4096 + aux::TETHERED) as usize)
            .unwrap()
            .load(Ordering::Relaxed);
        format!("tethered bits {bits:#b}, cursors {:?}", ring.subscribers())
    };
    let mut publisher = ring.producer().unwrap();
    untethering(&mut publisher);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let mut sub = ring.consumer().unwrap();
    let publisher = spawn_publisher(publisher, stop.clone(), sent.clone(), (500, QUARTER));
    let until = Instant::now() + race_time();
    let (mut ok, mut ejected, mut retethers) = (0u64, 0u64, 0u64);
    let mut next: Option<u64> = None;
    let mut failure = None;
    let mut buf = vec![0u8; QUARTER];
    while Instant::now() < until && failure.is_none() {
        match sub.try_pop(&mut buf) {
            Ok(n) => match parse(&buf[..n]) {
                Ok(seq) => {
                    if sub.is_confirmed() {
                        if let Some(want) = next {
                            if seq != want {
                                failure = Some(format!(
                                    "confirmed: expected {want}, got {seq}; {}",
                                    state(&ring)
                                ));
                            }
                        }
                    }
                    next = Some(seq + 1);
                    ok += 1;
                }
                Err(e) => {
                    failure = Some(format!(
                        "{e}: confirmed {}, tethered {}; {}",
                        sub.is_confirmed(),
                        sub.is_tethered(),
                        state(&ring)
                    ));
                }
            },
            Err(PopError::Ejected) => {
                ejected += 1;
                sub.retether();
                retethers += 1;
                next = None;
            }
            Err(PopError::Lagged { .. }) => {
                next = None;
                if ejected % 2 == 0 {
                    sub.retether();
                    retethers += 1;
                }
            }
            Err(PopError::Empty) => {
                // Join again now and then without having been told (a legitimate call).
                if ok % 7 == 0 {
                    sub.retether();
                    retethers += 1;
                    next = None;
                }
            }
            Err(e) => {
                failure = Some(format!(
                    "{e}: confirmed {}; {}",
                    sub.is_confirmed(),
                    state(&ring)
                ));
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    publisher.join().unwrap();
    eprintln!(
        "{} sent, {ok} read, {ejected} ejections seen, {retethers} retethers, ring says {} \
         ejections",
        sent.load(Ordering::Relaxed),
        ring.ejections()
    );
    assert!(failure.is_none(), "{}", failure.unwrap());
}

/// `StartAt` of a joiner under a running publisher: its first message is the one its
/// `sequence()` names.
#[test]
fn a_joiner_under_a_running_publisher_knows_its_sequence_number() {
    let ring =
        BroadcastRing::in_heap(&BroadcastConfig::new(4096).max_record(200).history(1)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let publisher = spawn_publisher(
        ring.producer().unwrap(),
        stop.clone(),
        sent.clone(),
        (12, 40),
    );
    let until = Instant::now() + race_time();
    let mut wrong = Vec::new();
    let mut joins = 0;
    let mut buf = vec![0u8; 200];
    while Instant::now() < until {
        let start = [StartAt::Next, StartAt::Latest, StartAt::Oldest][joins % 3];
        let mut sub = ring
            .subscriber(&Subscription::untethered().start_at(start))
            .unwrap();
        joins += 1;
        let want = sub.sequence();
        loop {
            match sub.try_pop(&mut buf) {
                Ok(n) => {
                    let seq = parse(&buf[..n]).unwrap();
                    if seq != want {
                        wrong.push((start, want, seq));
                    }
                    break;
                }
                Err(PopError::Empty) => std::hint::spin_loop(),
                Err(PopError::Lagged { .. }) => break,
                Err(e) => panic!("{e}"),
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    publisher.join().unwrap();
    eprintln!("{joins} joins, {} wrong", wrong.len());
    assert!(
        wrong.is_empty(),
        "(start, sequence(), first message) {:?}",
        &wrong[..wrong.len().min(10)]
    );
}

// ---------------------------------------------------------------------------------------------
// Hostile values (found by the `hostile_peer` broadcast driver): a peer writes a word of the
// auxiliary region through its own mapping; the honest side must return errors, not panic.
// ---------------------------------------------------------------------------------------------

/// A broadcast ring in a memfd and a second mapping of it (another process's view).
fn hostile_pair(history: u32) -> (BroadcastRing, shmbus_ring::Segment, BroadcastConfig) {
    let cfg = BroadcastConfig::new(4096).max_record(256).history(history);
    let seg = shmbus_ring::Segment::memfd(
        "bcast-hostile",
        cfg.segment_len(),
        &shmbus_ring::SegmentOptions::default(),
    )
    .unwrap();
    let raw = shmbus_testkit::hostile::raw_view(&seg).unwrap();
    (BroadcastRing::create_in(seg, &cfg).unwrap(), raw, cfg)
}

fn aux_word(raw: &shmbus_ring::Segment, field: u64) -> &AtomicU64 {
    let off = shmbus_ring::layout::DATA_OFFSET + 4096 + field;
    raw.atomic_u64(off as usize).unwrap()
}

#[test]
fn a_roster_generation_of_u64_max_does_not_panic_a_joiner() {
    use shmbus_ring::broadcast::aux;
    let (ring, raw, _) = hostile_pair(16);
    let mut publisher = ring.producer().unwrap();
    aux_word(&raw, aux::GEN).store(u64::MAX, Ordering::Relaxed);
    let joined =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ring.consumer().map(|_| ())));
    assert!(joined.is_ok(), "joining panicked");
    let _ = publisher.try_push(b"after");
}

#[test]
fn a_history_count_of_u64_max_does_not_panic_a_subscriber() {
    use shmbus_ring::broadcast::aux;
    let (ring, raw, _) = hostile_pair(1);
    let mut publisher = ring.producer().unwrap();
    publisher.try_push(&message(0, 100)).unwrap();
    // The count says u64::MAX: entry u64::MAX − 1 is slot 0 of 2, which holds record 0.
    aux_word(&raw, aux::HIST_HEAD).store(u64::MAX, Ordering::Relaxed);
    let mut sub = ring.consumer().unwrap();
    publisher.try_push(&message(1, 100)).unwrap();
    let popped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut buf = [0u8; 256];
        sub.try_pop(&mut buf).map(|_| ())
    }));
    assert!(popped.is_ok(), "popping panicked");
}

/// A publisher blocked on a full ring wakes when the subscriber that gates it leaves (drops),
/// not only at its next probe. (An untethered subscriber stays, so that the ring keeps a
/// subscriber: see the next test.)
#[test]
fn a_blocked_publisher_wakes_when_the_gating_subscriber_leaves() {
    let ring = quarters();
    let mut publisher = ring.producer().unwrap();
    publisher.set_probe_interval(Duration::from_secs(5));
    let _stays = ring.subscriber(&Subscription::untethered()).unwrap();
    let sub = ring.consumer().unwrap();
    let mut i = 0;
    while publisher.try_push(&message(i, QUARTER)).is_ok() {
        i += 1;
    }
    let leaver = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        drop(sub);
        Instant::now()
    });
    publisher
        .push_timeout(&message(i, QUARTER), Duration::from_secs(20))
        .unwrap();
    let woke = Instant::now();
    let left = leaver.join().unwrap();
    let late = woke.saturating_duration_since(left);
    eprintln!("the publisher went on {late:?} after the subscriber left");
    assert!(
        late < Duration::from_secs(1),
        "the publisher slept {late:?} after the subscriber that gated it left"
    );
}

/// A publisher is never disconnected (`a_publisher_alone_is_never_full_nor_disconnected` in
/// `broadcast_basics`): not by its blocking calls either, once its last subscriber has left.
#[test]
fn a_blocking_push_is_not_disconnected_when_the_last_subscriber_left() {
    let ring = quarters();
    let mut publisher = ring.producer().unwrap();
    let sub = ring.consumer().unwrap();
    publisher.try_push(&message(0, 100)).unwrap();
    drop(sub);
    assert_eq!(
        publisher.push_timeout(&message(1, 100), Duration::from_secs(1)),
        Ok(())
    );
    assert_eq!(publisher.try_push(&message(2, 100)), Ok(()));
}

/// The interleaving of an ejection (E1 … E2, publisher.rs `eject_below`) with the ejected
/// subscriber joining again (`retether`: J1, its tethered bit, J2) in the window between the
/// publisher's CAS of its flags (E1) and its clearing of the tethered bit (E2). A scheduler
/// gives that window rarely (a publisher preempted between two instructions); here the
/// publisher's E1 and E2/E3 are performed by hand through a second mapping, exactly as
/// `eject_below` performs them, around the subscriber's real `retether`. Afterwards the
/// subscriber is tethered and, once it confirms, reads without validating, but its tethered
/// bit is clear: the publisher neither waits for it nor ejects it, and writes over what it has
/// not read.
#[test]
fn a_retether_inside_an_ejection_stays_gating() {
    use shmbus_ring::broadcast::aux;
    let cfg = BroadcastConfig::new(4096).max_record(1016).history(16);
    let seg = shmbus_ring::Segment::memfd(
        "bcast-eject-race",
        cfg.segment_len(),
        &shmbus_ring::SegmentOptions::default(),
    )
    .unwrap();
    let raw = shmbus_testkit::hostile::raw_view(&seg).unwrap();
    let ring = BroadcastRing::create_in(seg, &cfg).unwrap();
    let aux_at = |field: u64| {
        let off = shmbus_ring::layout::DATA_OFFSET + 4096 + field;
        raw.atomic_u64(off as usize).unwrap()
    };
    let mut publisher = ring.producer().unwrap();
    untethering(&mut publisher);
    let mut sub = ring.consumer().unwrap();
    publisher.try_push(&message(0, QUARTER)).unwrap();
    assert_eq!(pop(&mut sub), Ok(0));
    assert!(sub.is_confirmed());
    let index = ring.subscribers()[0].tag - 1;
    let flags = aux_at(aux::CURSORS + index * aux::CURSOR_SIZE + aux::CURSOR_FLAGS);
    // E2, as eject_below does it first: the tethered bit.
    let was = flags.load(Ordering::Relaxed);
    assert_eq!(was, aux::FLAG_TETHERED | aux::FLAG_CONFIRMED);
    aux_at(aux::TETHERED).fetch_and(!(1 << index), Ordering::Release);
    // The subscriber joins again (it may just want to be lossless).
    sub.retether();
    // E1: the CAS of the flags it loaded before; it fails (the join changed them), and the
    // publisher gives the bit back (eject_below's order since this finding).
    let ejected = flags
        .compare_exchange(was, aux::FLAG_EJECTED, Ordering::SeqCst, Ordering::Relaxed)
        .is_ok();
    assert!(!ejected);
    aux_at(aux::TETHERED).fetch_or(1 << index, Ordering::Release);
    // Now the publisher goes on, and the subscriber reads.
    publisher.try_push(&message(1, QUARTER)).unwrap();
    let mut next = sub.sequence();
    while let Ok(seq) = pop(&mut sub) {
        assert_eq!(seq, next);
        next += 1;
    }
    assert!(sub.is_tethered());
    assert!(sub.is_confirmed());
    // A confirmed subscriber gates: the publisher must find the ring full, or eject it.
    let mut pushed = 2;
    while pushed < 12 && publisher.try_push(&message(pushed, QUARTER)).is_ok() {
        pushed += 1;
    }
    let r = sub.try_pop_with(parse);
    assert!(
        matches!(r, Ok(Ok(s)) if s == next)
            || r == Err(PopError::Ejected)
            || r == Err(PopError::Empty),
        "{pushed} pushes went through a confirmed subscriber at message {next}: it reads {r:?} \
         (ejections {})",
        ring.ejections()
    );
}

/// A publisher blocked on a full ring wakes when the subscriber that gates it stops gating by
/// joining again further on (`retether`, or a lagged joiner's rejoin), not only at its next
/// probe.
#[test]
fn a_blocked_publisher_wakes_when_the_gating_subscriber_retethers() {
    // Since the fix of finding 6, a retether stays where the subscriber is (skipping nothing),
    // so it frees no room: the publisher stays blocked until the subscriber reads, and wakes
    // then (the reads notify), not at its 3 s probe.
    let ring = quarters();
    let mut publisher = ring.producer().unwrap();
    publisher.set_probe_interval(Duration::from_secs(3));
    let mut sub = ring.consumer().unwrap();
    publisher.try_push(&message(0, QUARTER)).unwrap();
    assert_eq!(pop(&mut sub), Ok(0));
    let mut i = 1;
    while publisher.try_push(&message(i, QUARTER)).is_ok() {
        i += 1;
    }
    let mover = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        let skipped = sub.retether();
        std::thread::sleep(Duration::from_millis(200));
        let read = Instant::now();
        assert_eq!(pop(&mut sub), Ok(1));
        (read, skipped, sub)
    });
    publisher
        .push_timeout(&message(i, QUARTER), Duration::from_secs(20))
        .unwrap();
    let woke = Instant::now();
    let (read, skipped, _sub) = mover.join().unwrap();
    assert_eq!(skipped, 0, "a retether skips nothing");
    assert!(
        woke >= read,
        "the publisher went on before the subscriber read"
    );
    let late = woke.saturating_duration_since(read);
    assert!(
        late < Duration::from_secs(1),
        "the publisher slept {late:?} after the gating subscriber read"
    );
}

/// `is_full` is a snapshot: under `SlowSubscribers::Untether` it must not eject anyone.
#[test]
fn is_full_ejects_nobody() {
    let ring = quarters();
    let mut publisher = ring.producer().unwrap();
    untethering(&mut publisher);
    let _sub = ring.consumer().unwrap();
    // 3 × 1024 + 1016 bytes: 8 bytes left before the subscriber's position one lap on.
    for i in 0..3 {
        publisher.try_push(&message(i, QUARTER)).unwrap();
    }
    publisher.try_push(&message(3, QUARTER - 8)).unwrap();
    assert_eq!(ring.ejections(), 0);
    let full = publisher.is_full();
    assert_eq!(
        ring.ejections(),
        0,
        "asking whether the ring is full ejected a subscriber"
    );
    assert!(full);
}

/// Tethered subscribers joining (at every start) and leaving over and over while a publisher
/// streams: the probation protocol (J1–J4 against G1–G4) under real concurrency. Once a
/// subscriber is confirmed it reads consecutive, intact messages and is never lagged, ejected
/// or told of corruption; before, it may be lagged (a joiner overtaken before the publisher
/// saw it), never handed a torn message.
#[test]
fn tethered_joiners_under_a_running_publisher_lose_nothing_once_confirmed() {
    let ring =
        BroadcastRing::in_heap(&BroadcastConfig::new(4096).max_record(200).history(8)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let publisher = spawn_publisher(
        ring.producer().unwrap(),
        stop.clone(),
        sent.clone(),
        (12, 200),
    );
    let until = Instant::now() + race_time();
    let subscribers: Vec<_> = (0..2u64)
        .map(|k| {
            let ring = ring.clone();
            std::thread::spawn(move || {
                let mut rng = shmbus_testkit::rng::Rng::new(k + 11);
                let mut buf = vec![0u8; 200];
                let (mut joins, mut confirmed_reads, mut probation_lags) = (0u64, 0u64, 0u64);
                while Instant::now() < until {
                    let start = match rng.below(4) {
                        0 => StartAt::Next,
                        1 => StartAt::Latest,
                        2 => StartAt::History(rng.below(10) as u32),
                        _ => StartAt::Oldest,
                    };
                    let mut c = ring
                        .subscriber(&Subscription::tethered().start_at(start))
                        .unwrap();
                    joins += 1;
                    let mut next: Option<u64> = None;
                    let mut reads = 0;
                    let want = 1 + rng.below(3000);
                    while reads < want && Instant::now() < until {
                        let was_confirmed = c.is_confirmed();
                        match c.try_pop(&mut buf) {
                            Ok(n) => {
                                let seq = parse(&buf[..n]).unwrap();
                                if let Some(w) = next {
                                    assert_eq!(
                                        seq, w,
                                        "start {start:?}, confirmed {was_confirmed}"
                                    );
                                }
                                next = Some(seq + 1);
                                reads += 1;
                                if was_confirmed {
                                    confirmed_reads += 1;
                                }
                            }
                            Err(PopError::Lagged { .. }) => {
                                assert!(!was_confirmed, "a confirmed subscriber lagged");
                                probation_lags += 1;
                                next = None;
                            }
                            Err(PopError::Empty) => std::thread::yield_now(),
                            Err(e) => panic!("start {start:?}, confirmed {was_confirmed}: {e}"),
                        }
                    }
                }
                (joins, confirmed_reads, probation_lags)
            })
        })
        .collect();
    let results: Vec<_> = subscribers.into_iter().map(|t| t.join().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    publisher.join().unwrap();
    eprintln!(
        "{} sent; (joins, confirmed reads, probation lags) {results:?}",
        sent.load(Ordering::Relaxed)
    );
    assert!(results.iter().all(|r| r.1 > 0));
}

/// `SlowSubscribers::Untether { after }` ejects only a subscriber that has left the ring full
/// for `after`: the time counts from the first push that found it full *since the last push
/// that found room*.
#[test]
fn the_untether_grace_period_restarts_after_a_push_that_found_room() {
    let ring =
        BroadcastRing::in_heap(&BroadcastConfig::new(4096).max_record(2032).history(16)).unwrap();
    let mut publisher = ring.producer().unwrap();
    let after = Duration::from_millis(300);
    publisher.set_slow_subscribers(SlowSubscribers::Untether { after });
    let mut sub = ring.consumer().unwrap();
    publisher.try_push(&message(0, QUARTER)).unwrap();
    assert_eq!(pop(&mut sub), Ok(0));
    for i in 1..4 {
        publisher.try_push(&message(i, QUARTER)).unwrap();
    }
    // T0: a quarter does not fit; a small message does (room found: the episode ends).
    assert_eq!(
        publisher.try_push(&message(4, QUARTER)),
        Err(PushError::Full)
    );
    publisher.try_push(&message(4, 100)).unwrap();
    std::thread::sleep(after + Duration::from_millis(100));
    // The subscriber keeps reading; a larger message finds the ring full: a new episode.
    assert_eq!(pop(&mut sub), Ok(1));
    let r = publisher.try_push(&message(5, 2000));
    assert_eq!(
        (r, ring.ejections()),
        (Err(PushError::Full), 0),
        "the first push of a new full episode ejected at once"
    );
}
