//! Shared memory is untrusted: garbage written into a live ring by another process yields
//! typed errors naming what is wrong, never a panic, an out-of-bounds access or a hang, and
//! committed records before the garbage are still delivered.
#![cfg(not(loom))]

use proptest::prelude::*;
use shmbus_ring::frame::{encode, KIND_DATA, KIND_PADDING};
use shmbus_ring::layout::{CONSUMER_BLOCK, DATA_OFFSET, PRODUCER_BLOCK};
use shmbus_ring::{Error, PopError, PushError, Segment, SegmentOptions, SpscConfig, SpscRing};
use std::sync::atomic::{AtomicU32, Ordering};

const CAP: u64 = 256;

/// A ring in named shared memory, and a second, raw mapping of the same object: the hostile
/// process's view.
struct Fixture {
    ring: SpscRing,
    raw: Segment,
}

impl std::ops::Deref for Fixture {
    type Target = SpscRing;
    fn deref(&self) -> &SpscRing {
        &self.ring
    }
}

fn ring() -> Fixture {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "/shmbus-corrupt-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let cfg = SpscConfig::new(CAP).max_record(100);
    let ring = SpscRing::create_shm(&name, &cfg, &SegmentOptions::default()).unwrap();
    let raw = Segment::open(&name, &SegmentOptions::default()).unwrap();
    Fixture { ring, raw }
}

fn poke(f: &Fixture, off: u64, v: u64) {
    f.raw
        .atomic_u64(off as usize)
        .unwrap()
        .store(v, Ordering::SeqCst);
}

#[test]
fn a_garbage_record_header_is_reported_and_earlier_records_still_arrive() {
    let bad_headers = [
        (encode(5, 77), "unknown record kind"),
        (encode(101, KIND_DATA), "record limit"),
        (encode(8, KIND_PADDING), "padding"),
    ];
    for (word, what) in bad_headers {
        let ring = ring();
        let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        tx.try_push(b"first").unwrap();
        // The next header position is DATA_OFFSET + 16; a hostile peer writes garbage there.
        poke(&ring, DATA_OFFSET + 16, word);
        let mut buf = Vec::new();
        rx.try_pop_vec(&mut buf).unwrap();
        assert_eq!(buf, b"first");
        match rx.try_pop_vec(&mut buf) {
            Err(PopError::Corrupt(c)) => {
                assert!(c.what.contains(what), "{c}");
                assert_eq!((c.position, c.value), (16, word));
            }
            other => panic!("{word:#x}: {other:?}"),
        }
        // The error is stable (nothing was consumed) and names the position.
        assert!(matches!(
            rx.try_pop_vec(&mut buf),
            Err(PopError::Corrupt(_))
        ));
    }
}

#[test]
fn a_record_claiming_to_cross_the_end_is_corrupt() {
    let ring = ring();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    for _ in 0..3 {
        tx.try_push(&[0; 56]).unwrap();
        rx.try_pop_vec(&mut Vec::new()).unwrap();
    }
    // head is now at offset 192; a 96-byte record there would end at 296 > 256.
    poke(&ring, DATA_OFFSET + 192, encode(88, KIND_DATA));
    let err = rx.try_pop_vec(&mut Vec::new()).unwrap_err();
    assert!(
        matches!(err, PopError::Corrupt(c) if c.what.contains("crosses the end")),
        "{err:?}"
    );
}

#[test]
fn a_consumer_head_out_of_range_stops_the_producer_with_an_error() {
    for head in [3u64, 1 << 40, u64::MAX - 7] {
        let ring = ring();
        let mut tx = ring.producer().unwrap();
        // Fill the ring so the producer must read the consumer's head.
        while tx.try_push(&[1; 40]).is_ok() {}
        poke(&ring, CONSUMER_BLOCK, head);
        let err = tx.try_push(&[1; 40]).unwrap_err();
        assert!(
            matches!(err, PushError::Corrupt(c) if c.value == head),
            "head {head}: {err:?}"
        );
    }
}

#[test]
fn attaching_to_inconsistent_positions_is_a_corrupt_error() {
    let cases = [
        (PRODUCER_BLOCK, 5u64, "not 8-byte aligned"),
        (CONSUMER_BLOCK, 1024, "within one capacity"),
    ];
    for (block, v, what) in cases {
        let ring = ring();
        poke(&ring, block, v);
        let err = ring.producer().unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { corruption, .. } if corruption.what.contains(what)),
            "{err:?}"
        );
        // A failed attach leaves the producer slot free.
        poke(&ring, block, 0);
        ring.producer().expect("attach after repair");
    }
}

#[test]
fn a_successor_producer_skips_records_committed_after_the_published_tail() {
    let ring = ring();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    tx.try_push(b"one").unwrap();
    tx.try_push(b"two").unwrap();
    drop(tx);
    // As if the producer died between committing "two" and publishing its tail.
    poke(&ring, PRODUCER_BLOCK, 16);
    let mut tx = ring.producer().unwrap();
    tx.try_push(b"three").unwrap();
    let mut got = Vec::new();
    rx.pop_batch(10, |r| got.push(r.to_vec())).unwrap();
    assert_eq!(
        got,
        vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary words written anywhere in the control blocks or data, interleaved with honest
    /// operations: every call returns (Ok or a typed error) and nothing panics.
    #[test]
    fn scribbles_anywhere_give_errors_not_crashes(
        steps in prop::collection::vec(
            (0u8..4, 0u64..(CAP + 256) / 8, any::<u64>(), 0usize..120), 1..200),
    ) {
        let ring = ring();
        let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        let mut buf = vec![0u8; 200];
        for (what, word, value, len) in steps {
            match what {
                0 => {
                    // Scribble over a control block (words 0..32) or the data (words 32..).
                    let off = if word < 32 { PRODUCER_BLOCK + word * 8 } else { DATA_OFFSET + (word - 32) * 8 };
                    if off + 8 <= DATA_OFFSET + CAP && off != PRODUCER_BLOCK + 8 && off != CONSUMER_BLOCK + 8 {
                        poke(&ring, off, value);
                    }
                }
                1 => { let _ = tx.try_push(&vec![7; len.min(100)]); }
                2 => { let _ = rx.try_pop(&mut buf); }
                _ => { let _ = rx.pop_batch(4, |r| assert!(r.len() <= 100)); }
            }
        }
    }
}
