//! Sole endpoints of the MPMC ring (PROTOCOL §5.7, layout 1.6, DECISIONS D88): who holds the
//! sole words as endpoints attach, detach and die, and that traffic through every transition
//! loses nothing. The memory-model argument is checked by `loom_mpmc_sole.rs`.
// Real memory and processes: not a loom model.
#![cfg(not(loom))]

use std::process::Stdio;
use std::time::Duration;

use shmbus_ring::layout::{RING_FLAG_RECLAIM, RING_FLAG_SOLE, SOLE_JOIN, SOLE_JOINS, SOLE_SHARED};
use shmbus_ring::observe::Observer;
use shmbus_ring::{Error, MpmcConfig, MpmcRing, PopError, SegmentOptions, SpscConfig, SpscRing};
use shmbus_testkit::hostile::raw_view;
use shmbus_testkit::{respawn, role, unique_name, ChildGuard};

/// The sole words `[producers, consumers]` of the ring named `name`, as an observer sees them.
fn sole(name: &str) -> [u64; 2] {
    Observer::open(name).unwrap().snapshot().sole
}

/// A named MPMC ring with the default configuration (sole words on).
fn ring(prefix: &str, slots: u64) -> (String, MpmcRing) {
    let name = unique_name(prefix);
    let ring = MpmcRing::create_shm(
        &name,
        &MpmcConfig::new(slots, 16),
        &SegmentOptions::default(),
    )
    .unwrap();
    (name, ring)
}

#[test]
fn one_producer_and_one_consumer_each_hold_their_roles_sole_word() {
    let (name, ring) = ring("sole-pair", 8);
    assert_ne!(ring.header().ring_flags & RING_FLAG_SOLE, 0);
    assert_eq!(sole(&name), [0, 0]);
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    let [p, c] = sole(&name);
    assert!(
        (1..=55).contains(&p) && (1..=55).contains(&c) && p != c,
        "{p:#x} {c:#x}"
    );
    let mut buf = [0u8; 16];
    for i in 0u64..100 {
        tx.try_push(&i.to_le_bytes()).unwrap();
        let n = rx.try_pop(&mut buf).unwrap();
        assert_eq!(u64::from_le_bytes(buf[..n].try_into().unwrap()), i);
    }
    // The plain raises kept the hints exact.
    let snap = Observer::open(&name).unwrap().snapshot();
    assert_eq!((snap.tail, snap.head), (100, 100));
    // A clean detach gives the word back, and the next endpoint of the role holds it.
    drop(tx);
    assert_eq!(sole(&name)[0], 0);
    let _tx2 = ring.producer().unwrap();
    assert!((1..=55).contains(&sole(&name)[0]));
}

/// The sole word of a role with `joins` joins since it was last alone, `alone` the tag of
/// the endpoint alone then (layout 1.8: every join counts in `SOLE_JOINS`).
fn shared_word(alone: u64, joins: u64) -> u64 {
    SOLE_SHARED | (joins * SOLE_JOIN) | alone
}

#[test]
fn a_second_endpoint_makes_the_role_shared_and_nothing_is_lost() {
    let (name, ring) = ring("sole-join", 4);
    let mut a = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    let alone = sole(&name)[0];
    a.try_push(b"a0").unwrap();
    let mut b = ring.producer().unwrap();
    assert_eq!(
        sole(&name)[0],
        shared_word(alone, 1),
        "shared, naming who was alone, one join"
    );
    // Both push through the join and across several laps of the 4-slot ring.
    let mut got = Vec::new();
    let mut buf = [0u8; 16];
    for i in 0..20u8 {
        a.try_push(&[b'a', i]).unwrap();
        b.try_push(&[b'b', i]).unwrap();
        while let Ok(n) = rx.try_pop(&mut buf) {
            got.push(buf[..n].to_vec());
        }
    }
    let a_seen: Vec<_> = got.iter().filter(|m| m[0] == b'a').collect();
    let b_seen: Vec<_> = got.iter().filter(|m| m[0] == b'b').collect();
    assert_eq!((a_seen.len(), b_seen.len()), (21, 20), "{got:?}");
    // Both live all along: it stayed shared. Both gone: a shared word is not given back (the
    // next endpoint to claim takes it, below).
    assert_eq!(sole(&name)[0], shared_word(alone, 1));
    drop(a);
    drop(b);
    assert_eq!(sole(&name)[0], shared_word(alone, 1));
    // A consumer that joins the sole consumer: the same.
    let c_alone = sole(&name)[1];
    let _rx2 = ring.consumer().unwrap();
    assert_eq!(sole(&name)[1], shared_word(c_alone, 1));
    let _rx3 = ring.consumer().unwrap();
    assert_eq!(sole(&name)[1], shared_word(c_alone, 2), "every join counts");
}

/// Pushes the next number through `tx` and pops it through `rx`, recording it in `got`.
fn pump(
    tx: &mut shmbus_ring::MpmcProducer,
    rx: &mut shmbus_ring::MpmcConsumer,
    got: &mut Vec<u64>,
) {
    let next = got.len() as u64;
    tx.try_push(&next.to_le_bytes()).unwrap();
    let mut buf = [0u8; 16];
    let n = rx.try_pop(&mut buf).unwrap();
    got.push(u64::from_le_bytes(buf[..n].try_into().unwrap()));
}

/// A role made shared by a second endpoint is sole again once the second has gone: the one
/// left takes the word back at its next claim (M26–M27, layout 1.8, DECISIONS D94), and raises
/// with plain stores again. Both roles; every message arrives once, in order, and the hints
/// stay exact.
#[test]
fn the_endpoint_left_alone_in_a_shared_role_is_sole_again_after_its_next_claim() {
    let (name, ring) = ring("sole-reclaim", 4);
    let mut a = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    let [p, c] = sole(&name);
    let mut got = Vec::new();
    pump(&mut a, &mut rx, &mut got);
    // Producers: a second one joins, both push, it leaves.
    let mut b = ring.producer().unwrap();
    for _ in 0..6 {
        pump(&mut a, &mut rx, &mut got);
        pump(&mut b, &mut rx, &mut got);
    }
    assert_ne!(sole(&name)[0] & SOLE_SHARED, 0, "both live: shared");
    drop(b);
    pump(&mut a, &mut rx, &mut got);
    assert_eq!(
        sole(&name)[0],
        p,
        "the producer left alone holds the word again"
    );
    // Consumers: the same.
    let mut rx2 = ring.consumer().unwrap();
    for _ in 0..6 {
        pump(&mut a, &mut rx, &mut got);
        pump(&mut a, &mut rx2, &mut got);
    }
    assert_ne!(sole(&name)[1] & SOLE_SHARED, 0, "both live: shared");
    drop(rx2);
    pump(&mut a, &mut rx, &mut got);
    assert_eq!(
        sole(&name)[1],
        c,
        "the consumer left alone holds the word again"
    );
    // Alone again, through several laps of the 4-slot ring.
    for _ in 0..10 {
        pump(&mut a, &mut rx, &mut got);
    }
    assert_eq!(sole(&name), [p, c]);
    let sent = got.len() as u64;
    assert_eq!(
        got,
        (0..sent).collect::<Vec<_>>(),
        "every message once, in order"
    );
    let snap = Observer::open(&name).unwrap().snapshot();
    assert_eq!((snap.tail, snap.head), (sent, sent), "the hints are exact");
}

/// A role whose endpoints all left while it was shared stays marked shared until the next
/// endpoint claims: that one joins the mark, and is alone after its first push.
#[test]
fn an_endpoint_that_joins_an_empty_shared_role_is_sole_after_its_first_claim() {
    let (name, ring) = ring("sole-rejoin", 4);
    let mut rx = ring.consumer().unwrap();
    let a = ring.producer().unwrap();
    let b = ring.producer().unwrap();
    let shared = sole(&name)[0];
    assert_ne!(shared & SOLE_SHARED, 0);
    drop(a);
    drop(b);
    assert_eq!(sole(&name)[0], shared, "nobody left to take it back");
    let mut c = ring.producer().unwrap();
    assert_ne!(sole(&name)[0] & SOLE_SHARED, 0, "a newcomer joins the mark");
    let mut got = Vec::new();
    pump(&mut c, &mut rx, &mut got);
    let now = sole(&name)[0];
    assert!(
        (1..=55).contains(&now),
        "the newcomer alone holds the word: {now:#x}"
    );
    pump(&mut c, &mut rx, &mut got);
    assert_eq!(got, [0, 1]);
}

#[test]
fn a_ring_made_without_sole_words_has_no_flag_and_no_words() {
    let name = unique_name("sole-off");
    let ring = MpmcRing::create_shm(
        &name,
        &MpmcConfig::new(8, 16).sole(false),
        &SegmentOptions::default(),
    )
    .unwrap();
    assert_eq!(ring.header().ring_flags & RING_FLAG_SOLE, 0);
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    tx.try_push(b"x").unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(rx.try_pop(&mut buf), Ok(1));
    assert_eq!(sole(&name), [0, 0]);
    let raw = raw_view(ring.segment()).unwrap();
    let words = [256 + 8, 384 + 8].map(|off| {
        raw.atomic_u64(off)
            .unwrap()
            .load(std::sync::atomic::Ordering::SeqCst)
    });
    assert_eq!(
        words,
        [0, 0],
        "nothing written where 1.5 readers keep zeros"
    );
}

/// Sets `flag` in the ring header of `seg` and checks that `open` refuses the ring, with a
/// reason that says `why`.
fn assert_flag_refused<T>(
    seg: &shmbus_ring::Segment,
    flag: u32,
    open: impl FnOnce() -> Result<T, Error>,
    why: &str,
) {
    raw_view(seg)
        .unwrap()
        .atomic_u32(112)
        .unwrap()
        .fetch_or(flag, std::sync::atomic::Ordering::SeqCst);
    match open() {
        Err(Error::BadField { field, reason, .. }) => {
            assert_eq!(field, "ring_flags");
            assert!(reason.contains(why), "{reason}");
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn the_sole_flag_is_refused_on_an_spsc_ring() {
    let name = unique_name("sole-spsc");
    let ring =
        SpscRing::create_shm(&name, &SpscConfig::new(4096), &SegmentOptions::default()).unwrap();
    assert_flag_refused(
        ring.segment(),
        RING_FLAG_SOLE,
        || SpscRing::open_shm(&name, &SegmentOptions::default()),
        "MPMC rings only",
    );
}

#[test]
fn the_reclaim_flag_is_refused_without_the_sole_flag() {
    let name = unique_name("reclaim-alone");
    let config = MpmcConfig::new(4, 16).sole(false);
    let ring = MpmcRing::create_shm(&name, &config, &SegmentOptions::default()).unwrap();
    assert_flag_refused(
        ring.segment(),
        RING_FLAG_RECLAIM,
        || MpmcRing::open_shm(&name, &SegmentOptions::default()),
        "only with bit 5 (sole)",
    );
}

/// A ring with sole words but without `RECLAIM` (`reclaim(false)`), as layout 1.6 and 1.7
/// made them: joins mark the word shared without counting, nobody reclaims it, and the role
/// stays shared for good, as those layouts' peers expect.
#[test]
fn without_the_reclaim_flag_a_shared_role_stays_shared() {
    let name = unique_name("sole-1.7");
    let made = MpmcRing::create_shm(
        &name,
        &MpmcConfig::new(4, 16).reclaim(false),
        &SegmentOptions::default(),
    )
    .unwrap();
    assert_eq!(made.header().ring_flags & RING_FLAG_RECLAIM, 0);
    let ring = MpmcRing::open_shm(&name, &SegmentOptions::default()).unwrap();
    let mut a = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    let alone = sole(&name)[0];
    let b = ring.producer().unwrap();
    drop(b);
    let mut got = Vec::new();
    pump(&mut a, &mut rx, &mut got);
    pump(&mut a, &mut rx, &mut got);
    assert_eq!(
        sole(&name)[0],
        SOLE_SHARED | alone,
        "shared for good, no count"
    );
    assert_eq!(got, [0, 1]);
}

/// A forged sole word naming a consumer while another consumer raises too, one thread: the
/// forged one raises with plain stores (M10s), which never lower the hint it just read, and
/// every message is delivered once. (Racing, a forged word can move a hint back, which the
/// audits report as corruption: PROTOCOL §5.7, "Validation".)
#[test]
fn a_forged_sole_word_still_delivers_every_message_once_in_sequence() {
    let (name, ring) = ring("sole-forged", 4);
    let mut tx = ring.producer().unwrap();
    let mut rx1 = ring.consumer().unwrap();
    let mut rx2 = ring.consumer().unwrap();
    let raw = raw_view(ring.segment()).unwrap();
    let word = raw.atomic_u64(384 + 8).unwrap();
    let [_, shared] = sole(&name);
    assert_ne!(shared & SOLE_SHARED, 0);
    // Forge: the consumers' word names rx1 (its tag is the low bits the join recorded).
    word.store(shared & 0xff, std::sync::atomic::Ordering::SeqCst);
    let mut got = Vec::new();
    let mut buf = [0u8; 16];
    for i in 0u64..40 {
        tx.push_timeout(&i.to_le_bytes(), Duration::from_secs(5))
            .unwrap();
        for rx in [&mut rx1, &mut rx2] {
            match rx.try_pop(&mut buf) {
                Ok(n) => got.push(u64::from_le_bytes(buf[..n].try_into().unwrap())),
                Err(PopError::Empty) => {}
                Err(e) => panic!("an honest producer's ring, a forged word: {e}"),
            }
        }
    }
    got.sort_unstable();
    got.dedup();
    assert_eq!(got.len(), 40, "every message once");
}

const NAME: &str = "SHMBUS_SOLE_NAME";

/// In a child: the ring the parent named in [`NAME`].
fn child_ring() -> MpmcRing {
    MpmcRing::open_shm(&std::env::var(NAME).unwrap(), &SegmentOptions::default()).unwrap()
}

/// Starts this test (`test`) again as a child of role `who` on the ring `name`, and waits for
/// it to print `line`.
fn spawn_child(test: &str, who: &str, name: &str, line: &str) -> ChildGuard {
    let mut child = ChildGuard::spawn(respawn(test, who).env(NAME, name).stdout(Stdio::piped()));
    assert!(child.await_line(line), "the {who} did not start");
    child
}

/// Kills the child (`SIGKILL`) and reaps its process.
fn kill(child: &mut ChildGuard) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A sole producer killed (`SIGKILL`): once a consumer's probe reaps it, its word is given back and the
/// next producer is alone again; what it committed is received.
#[test]
fn a_dead_sole_producers_word_is_given_back_by_the_reaper() {
    const TEST: &str = "a_dead_sole_producers_word_is_given_back_by_the_reaper";
    if role().is_some() {
        let ring = child_ring();
        let mut tx = ring.producer().unwrap();
        tx.try_push(b"before").unwrap();
        println!("ready");
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    let (name, ring) = ring("sole-dead", 8);
    let mut rx = ring.consumer().unwrap();
    rx.set_probe_interval(Duration::from_millis(5));
    let mut child = spawn_child(TEST, "producer", &name, "ready");
    let dead = sole(&name)[0];
    assert!((1..=55).contains(&dead), "{dead:#x}");
    kill(&mut child);
    let mut buf = [0u8; 16];
    assert_eq!(rx.pop_timeout(&mut buf, Duration::from_secs(5)), Ok(6));
    assert_eq!(&buf[..6], b"before");
    // The probe of a blocked pop reaps the dead producer: Disconnected once drained.
    assert_eq!(
        rx.pop_timeout(&mut buf, Duration::from_secs(5)),
        Err(PopError::Disconnected)
    );
    assert_eq!(sole(&name)[0], 0, "the reaper gave the word back");
    let mut tx = ring.producer().unwrap();
    assert!((1..=55).contains(&sole(&name)[0]));
    tx.try_push(b"after").unwrap();
    assert_eq!(rx.try_pop(&mut buf), Ok(5));
}

/// A sole endpoint killed (`SIGKILL`) and replaced at once, before any peer's probe has reaped
/// it: a supervisor restarting a crashed process. The replacement reaps the dead holder of its
/// role's sole word when it attaches, and holds the word itself; before, it joined the dead
/// endpoint and the role stayed shared for the ring's life, every raise locked. What the dead
/// one committed is received, and the replacement's messages after it.
#[test]
fn a_replacement_attached_right_after_its_sole_predecessor_died_is_sole() {
    const TEST: &str = "a_replacement_attached_right_after_its_sole_predecessor_died_is_sole";
    if let Some(who) = role() {
        let ring = child_ring();
        // Held until the parent kills this process.
        let _held = if who == "producer" {
            let mut tx = ring.producer().unwrap();
            tx.try_push(b"before").unwrap();
            (Some(tx), None)
        } else {
            (None, Some(ring.consumer().unwrap()))
        };
        println!("ready");
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    for (side, who) in [(0, "producer"), (1, "consumer")] {
        let (name, ring) = ring("sole-replaced", 8);
        // The surviving peer of the other role, attached first; it never waits, so it never
        // probes.
        let mut peer_tx = (side == 1).then(|| ring.producer().unwrap());
        let mut peer_rx = (side == 0).then(|| ring.consumer().unwrap());
        let mut child = spawn_child(TEST, who, &name, "ready");
        let dead = sole(&name)[side];
        assert!((1..=55).contains(&dead), "{who}: {dead:#x}");
        kill(&mut child);
        // The replacement, attached at once; the survivor is the other role's endpoint.
        let (mut tx, mut rx) = match (peer_tx.take(), peer_rx.take()) {
            (None, Some(rx)) => (ring.producer().unwrap(), rx),
            (Some(tx), None) => (tx, ring.consumer().unwrap()),
            _ => unreachable!("one survivor"),
        };
        let word = sole(&name)[side];
        assert!(
            (1..=55).contains(&word) && word != dead,
            "{who}: the replacement does not hold the word: {word:#x} (dead {dead:#x})"
        );
        tx.try_push(b"after").unwrap();
        let mut got = Vec::new();
        let mut buf = Vec::new();
        while rx.try_pop_vec(&mut buf).is_ok() {
            got.push(String::from_utf8_lossy(&buf).into_owned());
        }
        // The dead producer's committed message first, where the producer was replaced.
        let want: &[&str] = if side == 0 {
            &["before", "after"]
        } else {
            &["after"]
        };
        assert_eq!(got, want, "{who}: the messages received");
        assert_eq!(
            sole(&name)[side] & SOLE_SHARED,
            0,
            "{who}: the role became shared"
        );
    }
}

/// A producer that joined the sole one is killed (`SIGKILL`): once a probe reaps it (its roster
/// bit cleared after its claims are repaired, L13), the producer left is alone in the roster
/// and takes the word back at its next push (D94). Everything committed arrives.
#[test]
fn the_survivor_of_a_killed_joiner_is_sole_again_once_the_joiner_is_reaped() {
    const TEST: &str = "the_survivor_of_a_killed_joiner_is_sole_again_once_the_joiner_is_reaped";
    if role().is_some() {
        let ring = child_ring();
        let mut tx = ring.producer().unwrap();
        tx.try_push(b"joiner").unwrap();
        println!("ready");
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    let (name, ring) = ring("sole-survivor", 8);
    let mut a = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    rx.set_probe_interval(Duration::from_millis(5));
    let p = sole(&name)[0];
    a.try_push(b"a0").unwrap();
    let mut child = spawn_child(TEST, "producer", &name, "ready");
    assert_ne!(
        sole(&name)[0] & SOLE_SHARED,
        0,
        "the joiner shared the role"
    );
    kill(&mut child);
    // Received until a pop waits, and its probe reaps the dead joiner.
    let mut got = Vec::new();
    let mut buf = [0u8; 16];
    loop {
        match rx.pop_timeout(&mut buf, Duration::from_millis(50)) {
            Ok(n) => got.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(PopError::Timeout) => break,
            Err(e) => panic!("{e}"),
        }
    }
    a.try_push(b"a1").unwrap();
    assert_eq!(sole(&name)[0], p, "the survivor holds the word again");
    a.try_push(b"a2").unwrap();
    while let Ok(n) = rx.try_pop(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert_eq!(got, ["a0", "joiner", "a1", "a2"]);
}

/// D93's gap, closed by D94: a sole producer dies holding a claim, and its replacement attaches
/// while a consumer's probe is reaping it (between the repair of its claim and its
/// unregistration). The replacement's own probe passes the entry being reaped by, so it joins
/// the dead producer and the role is shared: D93 is best effort. Once the reap is over, the
/// replacement is alone in the roster and takes the word back at its first push.
#[test]
fn a_replacement_attached_mid_reap_is_sole_after_its_first_push() {
    const TEST: &str = "a_replacement_attached_mid_reap_is_sole_after_its_first_push";
    if role().is_some() {
        let ring = child_ring();
        let mut tx = ring.producer().unwrap();
        // Dies holding this claim.
        let _claim = tx.reserve(4).unwrap();
        println!("ready");
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    let (name, ring) = ring("sole-midreap", 8);
    let mut rx = ring.consumer().unwrap();
    rx.set_probe_interval(Duration::from_millis(5));
    let mut child = spawn_child(TEST, "producer", &name, "ready");
    let dead = sole(&name)[0];
    assert!((1..=55).contains(&dead), "{dead:#x}");
    kill(&mut child);
    // The replacement attaches from inside the consumer's reap, at the repair of the claim.
    let replacement = std::sync::Arc::new(std::sync::Mutex::new(None));
    let (slot, attaching) = (replacement.clone(), ring.clone());
    shmbus_ring::crashpoint::on_this_thread("mpmc.repair.slot", move || {
        *slot.lock().unwrap() = Some(attaching.producer().unwrap());
    });
    let mut buf = [0u8; 16];
    assert_eq!(
        rx.pop_timeout(&mut buf, Duration::from_millis(100)),
        Err(PopError::Timeout),
        "the dead producer's claim was never committed"
    );
    let mut tx = replacement
        .lock()
        .unwrap()
        .take()
        .expect("the probe reaped the dead producer and attached the replacement");
    assert_eq!(
        sole(&name)[0] & !SOLE_JOINS,
        SOLE_SHARED | dead,
        "attached mid-reap, it joined the dead producer (D93 is best effort)"
    );
    tx.try_push(b"after").unwrap();
    let word = sole(&name)[0];
    assert!(
        (1..=55).contains(&word) && word != dead,
        "the replacement holds the word after its first push: {word:#x}"
    );
    assert_eq!(rx.pop_timeout(&mut buf, Duration::from_secs(5)), Ok(5));
    assert_eq!(&buf[..5], b"after");
}

/// Found by review (D94): a joiner killed (`SIGKILL`) between its join's count (M22) and its
/// mark (M22m) leaves a word that is no bare tag and has no `SOLE_SHARED`. Once it is reaped,
/// the producer left must still see that word as shared and take it back; it did not when the
/// reclaim looked for the mark, and the role stayed locked until the next join.
#[test]
fn a_joiner_killed_between_its_count_and_its_mark_leaves_the_role_reclaimable() {
    const TEST: &str = "a_joiner_killed_between_its_count_and_its_mark_leaves_the_role_reclaimable";
    if role().is_some() {
        let ring = child_ring();
        shmbus_ring::crashpoint::arm("mpmc.join.counted");
        println!("attaching");
        // Parks at the crash point, between M22 and M22m, until killed.
        let _tx = ring.producer();
        unreachable!("parked at the crash point");
    }
    let (name, ring) = ring("sole-unmarked", 8);
    let mut a = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    rx.set_probe_interval(Duration::from_millis(5));
    let p = sole(&name)[0];
    let mut child = spawn_child(TEST, "producer", &name, "attaching");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sole(&name)[0] != p + SOLE_JOIN {
        assert!(
            std::time::Instant::now() < deadline,
            "the joiner never parked between its count and its mark: {:#x}",
            sole(&name)[0]
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    kill(&mut child);
    // A pop that waits probes, and reaps the dead joiner.
    let mut buf = [0u8; 16];
    assert_eq!(
        rx.pop_timeout(&mut buf, Duration::from_millis(50)),
        Err(PopError::Timeout)
    );
    assert_eq!(sole(&name)[0], p + SOLE_JOIN, "counted, never marked");
    a.try_push(b"a0").unwrap();
    assert_eq!(
        sole(&name)[0],
        p,
        "the producer left alone holds the word again"
    );
    assert_eq!(rx.try_pop(&mut buf), Ok(2));
}

/// Found by the `ring_ops` fuzz target (s12): a consumer that joins a sole one walks from the
/// head hint, a walk of at most `2 × slots + 64` positions per call, and raises no hint. Behind
/// a longer run of abandoned positions that no consumer had passed, its join never reached
/// the message after them, and it answered empty for ever while the message waited. Its join
/// now resumes where its last call stopped.
#[test]
fn a_joiner_behind_a_long_run_of_abandoned_positions_finds_the_message() {
    let ring = MpmcRing::in_heap(&MpmcConfig::new(2, 48)).unwrap();
    let mut tx = ring.producer().unwrap();
    let _sole = ring.consumer().unwrap();
    let mut joiner = ring.consumer().unwrap();
    // 300 abandoned positions: over four walks' worth at two slots.
    for _ in 0..300 {
        drop(tx.reserve(8).unwrap());
    }
    tx.try_push(b"after the run").unwrap();
    let mut got = Vec::new();
    let mut calls = 0;
    while joiner.try_pop_vec(&mut got) == Err(PopError::Empty) {
        calls += 1;
        assert!(calls < 20, "the joiner never found the message");
    }
    assert_eq!(got, b"after the run");
}

/// Real threads, real memory: one producer pushes throughout while another thread attaches a
/// second producer (and a second consumer), uses it and drops it, again and again, so that
/// each role goes from sole to shared and back (D94) hundreds of times under traffic. An
/// observer samples both hints all along: neither may ever move back (a plain store racing a
/// `fetch_max` would show here). Every message arrives exactly once.
#[test]
fn roles_shared_and_reclaimed_under_traffic_never_move_a_hint_back() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
    use std::sync::Arc;
    const CYCLES: u64 = 300;
    const SAMPLES: u64 = 10_000;
    let (name, ring) = ring("sole-churn", 16);
    let mut steady_tx = ring.producer().unwrap();
    let mut steady_rx = ring.consumer().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let (cycles, samples) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let observer = {
        let (name, done, samples) = (name.clone(), done.clone(), samples.clone());
        std::thread::spawn(move || {
            let obs = Observer::open(&name).unwrap();
            let (mut tail, mut head) = (0, 0);
            while !done.load(Relaxed) {
                let snap = obs.snapshot();
                assert!(
                    snap.tail >= tail,
                    "tail hint moved back: {tail} -> {}",
                    snap.tail
                );
                assert!(
                    snap.head >= head,
                    "head hint moved back: {head} -> {}",
                    snap.head
                );
                (tail, head) = (snap.tail, snap.head);
                samples.fetch_add(1, Relaxed);
            }
        })
    };
    let churn = {
        let (ring, done, cycles) = (ring.clone(), done.clone(), cycles.clone());
        std::thread::spawn(move || {
            let (mut sent, mut got) = (0u64, Vec::new());
            let mut buf = [0u8; 16];
            while !done.load(Relaxed) {
                let mut tx = ring.producer().unwrap();
                let mut rx = ring.consumer().unwrap();
                for _ in 0..4 {
                    let msg = (1u64 << 63 | sent).to_le_bytes();
                    if tx.push_timeout(&msg, Duration::from_secs(5)).is_ok() {
                        sent += 1;
                    }
                    if let Ok(n) = rx.try_pop(&mut buf) {
                        got.push(u64::from_le_bytes(buf[..n].try_into().unwrap()));
                    }
                }
                cycles.fetch_add(1, Relaxed);
            }
            (sent, got)
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut got = Vec::new();
    let mut buf = [0u8; 16];
    let mut steady = 0u64;
    while cycles.load(Relaxed) < CYCLES || samples.load(Relaxed) < SAMPLES {
        assert!(
            std::time::Instant::now() < deadline,
            "too slow: {} cycles, {} samples",
            cycles.load(Relaxed),
            samples.load(Relaxed)
        );
        steady_tx
            .push_timeout(&steady.to_le_bytes(), Duration::from_secs(5))
            .unwrap();
        steady += 1;
        if let Ok(n) = steady_rx.try_pop(&mut buf) {
            got.push(u64::from_le_bytes(buf[..n].try_into().unwrap()));
        }
    }
    done.store(true, Relaxed);
    let (sent, churned) = churn.join().unwrap();
    observer.join().unwrap();
    while let Ok(n) = steady_rx.try_pop(&mut buf) {
        got.push(u64::from_le_bytes(buf[..n].try_into().unwrap()));
    }
    got.extend(churned);
    let (mut mine, other): (Vec<u64>, Vec<u64>) = got.into_iter().partition(|m| m >> 63 == 0);
    mine.sort_unstable();
    assert_eq!(
        mine,
        (0..steady).collect::<Vec<_>>(),
        "the steady producer's messages"
    );
    let mut other: Vec<u64> = other.iter().map(|m| m & !(1 << 63)).collect();
    other.sort_unstable();
    assert_eq!(
        other,
        (0..sent).collect::<Vec<_>>(),
        "the churning producers' messages"
    );
    // The steady endpoints are alone at the end: at their next claims they hold the words.
    steady_tx.try_push(b"last").unwrap();
    steady_rx.try_pop(&mut buf).unwrap();
    let [p, c] = sole(&name);
    assert!(
        (1..=55).contains(&p) && (1..=55).contains(&c),
        "{p:#x} {c:#x}"
    );
}
