//! Adversarial review (branch `review`) of the layout 1.2 changes: the SPSC and MPMC message
//! bounds, linearizable MPMC pops, `select::wait_any`, the info region. Each test states the
//! invariant it attacks; a failing test is a finding (see the review report).
#![cfg(not(loom))]

use shmbus_ring::layout::{CONSUMER_BLOCK, PRODUCER_BLOCK};
use shmbus_ring::select::wait_any;
use shmbus_ring::SegmentOptions;
use shmbus_ring::{
    Identity, Kind, Mpmc, MpmcConfig, MpmcRing, OpenOptions, PopError, PushError, Ring, Segment,
    Spsc, SpscConfig, SpscRing,
};
use shmbus_testkit::hostile::raw_view;
use shmbus_testkit::unique_name;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A ring in named shared memory and a second, raw mapping of it (a hostile peer's view).
fn shm<K: Kind>(config: &K::Config) -> (Ring<K>, Segment) {
    let ring =
        Ring::<K>::create_shm(&unique_name("review"), config, &SegmentOptions::default()).unwrap();
    let raw = raw_view(ring.segment()).unwrap();
    (ring, raw)
}

/// `sent` (producer block +32) and `taken` (consumer block +32), PROTOCOL §4.1.
const SENT: u64 = PRODUCER_BLOCK + 32;
const TAKEN: u64 = CONSUMER_BLOCK + 32;

fn poke(seg: &Segment, off: u64, v: u64) {
    seg.atomic_u64(off as usize)
        .unwrap()
        .store(v, Ordering::SeqCst);
}

fn peek(seg: &Segment, off: u64) -> u64 {
    seg.atomic_u64(off as usize).unwrap().load(Ordering::SeqCst)
}

/// Runs `f`, turning a panic into a test failure that says which invariant broke.
fn no_panic<R>(what: &str, f: impl FnOnce() -> R) -> R {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(e) => {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            panic!("{what}: panicked ({msg})");
        }
    }
}

// ---------------------------------------------------------------------------------------
// SPSC `Producer::is_full` (the select's send readiness) on an empty ring.
// ---------------------------------------------------------------------------------------

/// Invariant: no wedge — `is_full` (documented as "a select's readiness check for a send")
/// must not stay true on an empty ring. `ProducerCore::is_full` asks room for the largest
/// record *after the padding it would need*, `to_end + size + 8`, counted from a head that
/// is still before the padding; with the default `max_record = capacity − 16` that is more
/// than the capacity as soon as the tail is off offset 0, so it is true for ever: nothing
/// publishes the padding (only a real push does), so no consumer step ever changes it.
#[test]
fn review_spsc_is_full_is_true_forever_on_an_empty_default_ring() {
    let ring = SpscRing::in_heap(&SpscConfig::new(4096)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    assert!(!tx.is_full(), "fresh ring");
    tx.try_push(b"a").unwrap();
    let mut buf = vec![0u8; 4096];
    assert_eq!(rx.try_pop(&mut buf), Ok(1));
    assert!(rx.is_empty());
    // A small message fits, of course.
    // The select pattern from the select module docs, for a send: it never becomes ready.
    let bells = [tx.doorbell()];
    let start = Instant::now();
    let mut ready = false;
    while start.elapsed() < Duration::from_millis(300) {
        if wait_any(&bells, Some(Duration::from_millis(20)), || !tx.is_full()) {
            ready = true;
            break;
        }
    }
    let push_now = tx.try_push(b"small");
    assert!(
        ready,
        "(a try_push meanwhile: {push_now:?}) a select waiting to send on an EMPTY SPSC ring (4096 bytes, default max_record) \
         never becomes ready: Producer::is_full() stays true"
    );
}

// ---------------------------------------------------------------------------------------
// SPSC message bound arithmetic (`counted_room`, `reload_taken`, attach).
// ---------------------------------------------------------------------------------------

/// Invariant: no wedge / no panic for any bound the API accepts. A bound above what the ring
/// can ever hold (`capacity / 8` records) is refused; the largest accepted one works after a
/// change of producer (found by review: `cached_taken + limit` overflowed for `u64::MAX`).
#[test]
fn review_spsc_huge_message_limit_successor_producer_cannot_push() {
    let err = SpscRing::in_heap(&SpscConfig::new(4096).message_limit(u64::MAX)).unwrap_err();
    assert!(err.to_string().contains("message limit"), "{err}");
    let ring = SpscRing::in_heap(&SpscConfig::new(4096).message_limit(4096 / 8)).unwrap();
    let mut rx = ring.consumer().unwrap();
    {
        let mut tx = ring.producer().unwrap();
        tx.try_push(b"a").unwrap();
    }
    let mut buf = [0u8; 16];
    assert_eq!(rx.try_pop(&mut buf), Ok(1));
    let mut tx = ring.producer().unwrap();
    let got = no_panic("push on a ring bounded to u64::MAX messages", || {
        tx.try_push(b"b")
    });
    assert_eq!(got, Ok(()), "an empty ring refused a push");
}

/// Invariant: a hostile `taken` (huge) gives `Corrupt` or a bounded misbehaviour, never a
/// panic. At the bound, `reload_taken` adopts `taken` (> `sent`) as `sent`, and
/// `counted_room` then adds the limit to it.
#[test]
fn review_spsc_hostile_huge_taken_at_the_bound_panics_the_producer() {
    let (ring, raw) = shm::<Spsc>(&SpscConfig::new(4096).message_limit(2));
    let (mut tx, _rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    tx.try_push(b"a").unwrap();
    tx.try_push(b"b").unwrap();
    poke(&raw, TAKEN, u64::MAX - 1);
    let got = no_panic("push after a hostile taken = 2^64 - 2", || {
        tx.try_push(b"c")
    });
    assert!(
        matches!(got, Err(PushError::Corrupt(_) | PushError::Full) | Ok(())),
        "{got:?}"
    );
}

/// Invariant: as above, for the consumer: attach takes `taken` unvalidated and every pop
/// does `taken += 1`.
#[test]
fn review_spsc_hostile_max_taken_panics_the_consumer() {
    let (ring, raw) = shm::<Spsc>(&SpscConfig::new(4096).message_limit(4));
    let mut tx = ring.producer().unwrap();
    tx.try_push(b"a").unwrap();
    poke(&raw, TAKEN, u64::MAX);
    let mut rx = ring.consumer().unwrap();
    let mut buf = [0u8; 16];
    let got = no_panic("pop after a hostile taken = 2^64 - 1", || {
        rx.try_pop(&mut buf)
    });
    assert!(matches!(got, Ok(1) | Err(PopError::Corrupt(_))), "{got:?}");
}

/// Invariant: as above, for a successor producer: attach adds the records its walk finds to
/// a hostile `sent` (`sent += 1`).
#[test]
fn review_spsc_hostile_max_sent_panics_the_successor_producer_attach() {
    let (ring, raw) = shm::<Spsc>(&SpscConfig::new(4096).message_limit(4));
    let _rx = ring.consumer().unwrap();
    {
        let mut tx = ring.producer().unwrap();
        tx.try_push(b"a").unwrap();
    }
    // A published tail left behind (a producer that died between R1 and S2) and a hostile
    // count: the successor's walk counts the record past the tail.
    poke(&raw, PRODUCER_BLOCK, 0);
    poke(&raw, SENT, u64::MAX);
    let got = no_panic("producer attach with a hostile sent = 2^64 - 1", || {
        ring.producer().map(|_| ())
    });
    let _ = got;
}

/// Invariant: typed errors, never panics, for forged headers: an image whose header says
/// `BOUNDED` with `message_limit = 2^64 − 1` and whose consumer block says one message was
/// taken opens fine, and the first push panics (overflow in `counted_room`).
#[test]
fn review_forged_bounded_image_with_huge_limit_panics_the_first_push() {
    let mut img = shmbus_testkit::images::spsc_image(4096, 64);
    img[112..116].copy_from_slice(&4u32.to_le_bytes()); // ring_flags: BOUNDED
    img[120..128].copy_from_slice(&u64::MAX.to_le_bytes()); // message_limit
                                                            // One record consumed: head = tail = 16 (a zero header word there, as a fresh lap would).
    img[PRODUCER_BLOCK as usize..][..8].copy_from_slice(&16u64.to_le_bytes());
    img[CONSUMER_BLOCK as usize..][..8].copy_from_slice(&16u64.to_le_bytes());
    img[TAKEN as usize..][..8].copy_from_slice(&1u64.to_le_bytes());
    img[SENT as usize..][..8].copy_from_slice(&1u64.to_le_bytes());
    let seg = Segment::heap_from_bytes(&img).unwrap();
    let opts = OpenOptions {
        ready_timeout: Duration::ZERO,
        expect: None,
    };
    // Refused at open, naming the field (found by review: it opened, and the first push
    // overflowed).
    let err = SpscRing::open_in(seg, &opts).unwrap_err().to_string();
    assert!(err.contains("message_limit"), "{err}");
}

/// Invariant: a producer crash never loosens the bound (PROTOCOL §4.6). Review found that a
/// producer killed after a batch's S2 and before its C1 left `sent` short by the whole batch;
/// now C1 comes between R1 and S2, so a kill leaves one of two states, simulated exactly
/// (the memory after the batch, with the published `tail` and `sent` as the kill leaves
/// them): between R1 and C1 (`tail` and `sent` as before the batch: the successor's walk
/// counts the batch), or between C1 and S2 (`sent` counted, `tail` not: the walk counts it
/// again, a tighter bound that the next empty ring resets).
#[test]
fn review_spsc_batch_crash_between_s2_and_c1_exceeds_the_bound_by_the_batch() {
    for counted in [false, true] {
        batch_crash(counted);
    }
}

fn batch_crash(counted: bool) {
    let limit = 4u64;
    let config = Spsc::with_limit(
        Spsc::config_for(limit, 16, Identity::default(), true).unwrap(),
        limit,
    );
    let (ring, raw) = shm::<Spsc>(&config);
    let mut rx = ring.consumer().unwrap();
    {
        let mut tx = ring.producer().unwrap();
        assert_eq!(tx.try_push_batch(&[b"1", b"2", b"3", b"4"]), Ok(4));
    }
    poke(&raw, PRODUCER_BLOCK, 0); // the published tail, before the batch
    poke(&raw, SENT, if counted { 4 } else { 0 });
    let mut tx = ring.producer().unwrap();
    let mut extra = 0;
    while tx.try_push(b"x").is_ok() {
        extra += 1;
    }
    assert_eq!(
        extra,
        0,
        "a crash let {} messages into a ring bounded to {limit}",
        limit + extra
    );
    // Drained, the ring takes `limit` messages again: the over-count is reset.
    let mut buf = [0u8; 16];
    while rx.try_pop(&mut buf).is_ok() {}
    for i in 0..limit {
        assert_eq!(
            tx.try_push(b"y"),
            Ok(()),
            "push {i} after the drain (counted: {counted})"
        );
    }
    assert_eq!(tx.try_push(b"z"), Err(PushError::Full));
}

// ---------------------------------------------------------------------------------------
// MPMC bound.
// ---------------------------------------------------------------------------------------

/// Invariant: "one of more messages than the ring has slots is refused at once (`TooMany`),
/// as it could never fit" (PROTOCOL §5.3). With a bound below the slot count, a
/// `try_push_all` of more than the bound (and not more than the slots) can never fit either,
/// but reports `Full` for ever, even on an empty ring.
#[test]
fn review_mpmc_try_push_all_beyond_the_bound_is_full_for_ever() {
    let ring = MpmcRing::in_heap(&MpmcConfig::new(4, 8).message_limit(3)).unwrap();
    let (mut tx, _rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let got = tx.try_push_all(&[b"1", b"2", b"3", b"4"]);
    assert!(
        matches!(got, Err(PushError::TooMany { .. })),
        "4 messages into an EMPTY ring bounded to 3: {got:?} (retrying can never succeed)"
    );
}

/// Holds: M19 never moves the head hint past an unread message (abandoned positions between
/// committed ones, a bound of 1 and of 2, several rounds).
#[test]
fn review_mpmc_m19_walk_loses_nothing() {
    for limit in 1..=3u64 {
        let config = Mpmc::with_limit(
            Mpmc::config_for(limit, 8, Identity::default(), true).unwrap(),
            limit,
        );
        let ring = Ring::<Mpmc>::in_heap(&config).unwrap();
        let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        let mut buf = [0u8; 8];
        let mut next = 0u8;
        let mut want = std::collections::VecDeque::new();
        for round in 0..50u32 {
            if round % 3 == 0 {
                if let Ok(g) = tx.reserve(1) {
                    drop(g);
                }
            }
            if tx.try_push(&[next]).is_ok() {
                want.push_back(next);
                next = next.wrapping_add(1);
            }
            if round % 2 == 1 {
                match rx.try_pop(&mut buf) {
                    Ok(1) => assert_eq!(Some(buf[0]), want.pop_front(), "limit {limit}"),
                    Err(PopError::Empty) => assert!(want.is_empty(), "limit {limit}: lost"),
                    other => panic!("{other:?}"),
                }
            }
        }
        while let Some(w) = want.pop_front() {
            assert_eq!(rx.try_pop(&mut buf), Ok(1));
            assert_eq!(buf[0], w);
        }
    }
}

// ---------------------------------------------------------------------------------------
// MPMC linearizable pops (M17/M18): how long a non-blocking pop can take.
// ---------------------------------------------------------------------------------------

/// Invariant (performance of a non-blocking call): an honest producer holding a
/// `WriteGuard` (zero-copy send in progress) at the head makes every `try_pop` on an
/// otherwise empty ring spin/yield a whole probe interval before it reports `Empty` — even
/// though no later message is committed, so `Empty` would be linearizable at once.
#[test]
fn review_mpmc_try_pop_waits_a_probe_interval_while_a_write_guard_is_held() {
    let ring = MpmcRing::in_heap(&MpmcConfig::new(4, 8)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    rx.set_probe_interval(Duration::from_millis(300));
    let guard = tx.reserve(8).unwrap();
    let mut buf = [0u8; 8];
    let start = Instant::now();
    assert_eq!(rx.try_pop(&mut buf), Err(PopError::Empty));
    let took = start.elapsed();
    drop(guard);
    assert!(
        took < Duration::from_millis(50),
        "a non-blocking try_pop on a ring with nothing committed took {took:?} \
         (a WriteGuard was held at the head)"
    );
}

/// Invariant: a hostile tail hint gives `Corrupt` or a bounded misbehaviour. A tail hint
/// raised far past anything claimed makes every non-blocking pop on an empty ring wait a
/// whole probe interval (M18 says "in flight"), and the consumer's audit never reports it.
#[test]
fn review_mpmc_hostile_tail_hint_makes_every_try_pop_wait_and_is_never_reported() {
    let (ring, raw) = shm::<Mpmc>(&MpmcConfig::new(4, 8));
    let mut rx = ring.consumer().unwrap();
    rx.set_probe_interval(Duration::from_millis(100));
    poke(&raw, PRODUCER_BLOCK, 1000);
    let mut buf = [0u8; 8];
    let start = Instant::now();
    let mut results = Vec::new();
    for _ in 0..5 {
        results.push(rx.try_pop(&mut buf));
    }
    let took = start.elapsed();
    assert!(
        took < Duration::from_millis(100)
            || results
                .iter()
                .any(|r| matches!(r, Err(PopError::Corrupt(_)))),
        "5 try_pops on an empty ring took {took:?} and reported {results:?}"
    );
}

// ---------------------------------------------------------------------------------------
// select::wait_any.
// ---------------------------------------------------------------------------------------

/// Invariant: P6 always runs (the waiters count is not left incremented). `ready` is the
/// caller's closure (a select's `try` operations, user decoding...); if it panics, unwinding
/// skips P6 and every ring's waiters count stays raised for good: every later publish pays
/// the `SeqCst` fence, the `fetch_add` and a `FUTEX_WAKE` system call.
#[test]
fn review_wait_any_leaves_waiters_raised_when_ready_panics() {
    let (ring, raw) = shm::<Spsc>(&SpscConfig::new(4096));
    let (_tx, rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let bells = [rx.doorbell()];
    // Waiters of "data published" are in the producer block (+24), PROTOCOL §4.1.
    let waiters = PRODUCER_BLOCK + 24;
    assert_eq!(peek(&raw, waiters), 0);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_any(&bells, Some(Duration::from_millis(1)), || {
            panic!("user code")
        })
    }));
    assert!(r.is_err());
    assert_eq!(
        peek(&raw, waiters),
        0,
        "the waiters count was left incremented after `ready` panicked"
    );
}

/// Holds: mixing a notifying and a non-notifying ring, a message on the non-notifying one
/// is seen within a few fallback naps, and a message on the notifying one wakes at once.
#[test]
fn review_wait_any_mixed_notify_rings_see_both() {
    let a = SpscRing::in_heap(&SpscConfig::new(4096)).unwrap();
    let b = SpscRing::in_heap(&SpscConfig::new(4096).notify(false)).unwrap();
    let (mut tx_a, mut rx_a) = (a.producer().unwrap(), a.consumer().unwrap());
    let (mut tx_b, mut rx_b) = (b.producer().unwrap(), b.consumer().unwrap());
    let bells = [rx_a.doorbell(), rx_b.doorbell()];
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        tx_b.push(b"b").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        tx_a.push(b"a").unwrap();
        (tx_a, tx_b)
    });
    let start = Instant::now();
    let mut seen = (false, false);
    while !(seen.0 && seen.1) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "missed a wake-up: {seen:?}"
        );
        wait_any(&bells, Some(Duration::from_secs(5)), || {
            !rx_a.is_empty() || !rx_b.is_empty()
        });
        let mut buf = [0u8; 8];
        seen.0 |= rx_a.try_pop(&mut buf).is_ok();
        seen.1 |= rx_b.try_pop(&mut buf).is_ok();
    }
    let _ = t.join().unwrap();
}

// ---------------------------------------------------------------------------------------
// Info region, forged headers.
// ---------------------------------------------------------------------------------------

/// Holds: forged `info_offset` / `info_len` (overflowing sum, overlapping the data,
/// unaligned, too long, zero length at a nonzero offset) are typed open errors or a typed
/// `Ring::info` error, never a panic.
#[test]
fn review_forged_info_regions_are_typed_errors() {
    let base = shmbus_testkit::images::spsc_image(4096, 64);
    let total = base.len() as u64; // 8192
    let cases: &[(u64, u64)] = &[
        (u64::MAX - 7, 16),
        (8192 - 8, u64::MAX),
        (4096, 64),      // inside the data
        (8192 - 8, 16),  // past the end
        (8192 - 12, 8),  // unaligned
        (8192 - 64, 0),  // zero length
        (0, 64),         // zero offset, nonzero length
        (8192 - 16, 16), // all zero bytes: bad magic
        (4096 + 4096, 0),
    ];
    let opts = OpenOptions {
        ready_timeout: Duration::ZERO,
        expect: None,
    };
    for &(off, len) in cases {
        let mut img = base.clone();
        img[128..136].copy_from_slice(&off.to_le_bytes());
        img[136..144].copy_from_slice(&len.to_le_bytes());
        let seg = Segment::heap_from_bytes(&img).unwrap();
        let r = no_panic(&format!("open with info ({off}, {len})"), || {
            SpscRing::open_in(seg, &opts).map(|ring| ring.info().map(|_| ()))
        });
        let _ = (r, total);
    }
    // A real region with a non-UTF-8 field and a field length past the region.
    let ring =
        SpscRing::in_heap(&SpscConfig::new(4096).info(shmbus_ring::info::Info::new("t", "c", "n")))
            .unwrap();
    let h = ring.header();
    let mut img = vec![0u8; ring.segment().len()];
    // SAFETY: the heap segment is this long and nobody writes it meanwhile.
    unsafe { std::ptr::copy_nonoverlapping(ring.segment().as_ptr(), img.as_mut_ptr(), img.len()) };
    let at = h.info_offset as usize;
    for (patch_at, bytes) in [
        (at + 20, vec![0xffu8]),
        (at + 16, u32::MAX.to_le_bytes().to_vec()),
    ] {
        let mut img = img.clone();
        img[patch_at..patch_at + bytes.len()].copy_from_slice(&bytes);
        let seg = Segment::heap_from_bytes(&img).unwrap();
        let ring = SpscRing::open_in(seg, &opts).unwrap();
        assert!(matches!(
            ring.info(),
            Err(shmbus_ring::Error::BadField { .. })
        ));
    }
}

/// Holds: `try_pop_batch` defers `head` (and `taken` with it); a padding record met in the
/// middle publishes both; a callback that panics mid-batch leaves both unpublished together.
/// Through all of it the bound stays exact: the producer fills to exactly `limit`.
#[test]
fn review_spsc_pop_batch_with_padding_and_a_panicking_callback_keeps_the_count() {
    let limit = 3u64;
    let ring =
        SpscRing::in_heap(&SpscConfig::new(128).max_record(40).message_limit(limit)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let fill = |tx: &mut shmbus_ring::Producer, expect: u64| {
        let mut n = 0;
        while tx.try_push(&[7u8; 20]).is_ok() {
            n += 1;
        }
        assert!(n <= expect, "pushed {n} with room for {expect}");
        n
    };
    let mut held = 0u64;
    for round in 0..40u32 {
        held += fill(&mut tx, limit - held);
        assert!(held <= limit);
        assert_eq!(ring.len(), Some(held as usize), "round {round}");
        let mut seen = 0;
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rx.try_pop_batch(8, |_| {
                seen += 1;
                assert!(!(round % 3 == 0 && seen == 2), "callback");
            })
        }));
        match r {
            Ok(Ok(n)) => held -= n as u64,
            Ok(Err(e)) => panic!("{e}"),
            // The first message counts as consumed (unpublished yet), the second stays.
            Err(_) => {
                held -= 1;
                // Publish what the batch consumed (a single pop does).
                let mut buf = [0u8; 64];
                if rx.try_pop(&mut buf).is_ok() {
                    held -= 1;
                }
            }
        }
        assert_eq!(
            ring.len(),
            Some(held as usize),
            "after the batch, round {round}"
        );
    }
}
