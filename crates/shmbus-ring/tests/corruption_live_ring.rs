//! Shared memory is untrusted: garbage written into a live ring by another process (through a
//! second mapping, here in one process) yields typed errors naming what is wrong, never a
//! panic, an out-of-bounds access or a hang, and committed records before the garbage are
//! still delivered; inconsistent positions are refused at attach, and stale or lowered ones
//! are passed or healed. (Real hostile processes are in `hostile_processes.rs`; the fuzz
//! target's hostile driver in `fuzz_invariants.rs`.)
#![cfg(not(loom))]

use proptest::prelude::*;
use shmbus_ring::frame::{encode, KIND_DATA, KIND_PADDING};
use shmbus_ring::layout::{CONSUMER_BLOCK, DATA_OFFSET, PRODUCER_BLOCK};
use shmbus_ring::{
    Error, MpmcConfig, MpmcRing, OpenOptions, PopError, PushError, Segment, SegmentOptions,
    SpscConfig, SpscRing,
};
use shmbus_testkit::hostile::raw_view;
use shmbus_testkit::unique_name;
use std::sync::atomic::Ordering;

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

/// A `CAP`-byte ring with records up to 100 bytes.
fn ring() -> Fixture {
    spsc(&SpscConfig::new(CAP).max_record(100))
}

fn spsc(cfg: &SpscConfig) -> Fixture {
    let ring =
        SpscRing::create_shm(&unique_name("corrupt"), cfg, &SegmentOptions::default()).unwrap();
    let raw = raw_view(ring.segment()).unwrap();
    Fixture { ring, raw }
}

fn poke(raw: &Segment, off: u64, v: u64) {
    raw.atomic_u64(off as usize)
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
        poke(&ring.raw, DATA_OFFSET + 16, word);
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
    poke(&ring.raw, DATA_OFFSET + 192, encode(88, KIND_DATA));
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
        poke(&ring.raw, CONSUMER_BLOCK, head);
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
        poke(&ring.raw, block, v);
        let err = ring.producer().unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { corruption, .. } if corruption.what.contains(what)),
            "{err:?}"
        );
        // A failed attach leaves the producer slot free.
        poke(&ring.raw, block, 0);
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
    poke(&ring.raw, PRODUCER_BLOCK, 16);
    let mut tx = ring.producer().unwrap();
    tx.try_push(b"three").unwrap();
    let mut got = Vec::new();
    rx.try_pop_batch(10, |r| got.push(r.to_vec())).unwrap();
    assert_eq!(
        got,
        vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
    );
}

#[test]
fn a_successor_producer_attaches_after_the_consumer_passed_a_stale_published_tail() {
    let ring = spsc(&SpscConfig::new(256));
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    tx.try_push(b"one").unwrap();
    tx.try_push(b"two").unwrap();
    drop(tx);
    // As if the producer died between committing "two" and publishing its tail.
    poke(&ring.raw, PRODUCER_BLOCK, 16);
    let mut buf = Vec::new();
    rx.try_pop_vec(&mut buf).unwrap();
    rx.try_pop_vec(&mut buf).unwrap(); // head = 32 > published tail = 16
    assert_eq!(
        ring.used_bytes(),
        Some(0),
        "head past a stale tail reads as empty"
    );
    let mut tx = ring.producer().expect("successor attaches");
    tx.try_push(b"three").unwrap();
    rx.try_pop_vec(&mut buf).unwrap();
    assert_eq!(buf, b"three");
}

#[test]
fn attach_refuses_a_published_tail_a_full_lap_ahead() {
    let ring = spsc(&SpscConfig::new(256));
    poke(&ring.raw, PRODUCER_BLOCK, 256); // head 0, tail = cap: violates tail - head <= cap - 8
    assert!(matches!(
        ring.producer().unwrap_err(),
        shmbus_ring::Error::Corrupt { .. }
    ));
    assert!(matches!(
        ring.consumer().unwrap_err(),
        shmbus_ring::Error::Corrupt { .. }
    ));
}

#[test]
fn a_tail_hint_lowered_by_a_peer_heals_within_a_few_calls() {
    let ring = MpmcRing::create_shm(
        &unique_name("corrupt-mpmc"),
        &MpmcConfig::new(4, 8),
        &SegmentOptions::default(),
    )
    .unwrap();
    let raw = raw_view(ring.segment()).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    for i in 0..800u32 {
        tx.try_push(&i.to_le_bytes()).unwrap();
        rx.try_pop_vec(&mut Vec::new()).unwrap();
    }
    raw.atomic_u64(PRODUCER_BLOCK as usize)
        .unwrap()
        .store(0, Ordering::SeqCst);
    let mut fulls = 0;
    while tx.try_push(b"again").is_err() {
        fulls += 1;
        assert!(fulls < 20, "producer never recovered from a lowered hint");
    }
    assert_eq!(rx.try_pop_with(<[u8]>::to_vec).unwrap(), b"again");
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
                        poke(&ring.raw, off, value);
                    }
                }
                1 => { let _ = tx.try_push(&vec![7; len.min(100)]); }
                2 => { let _ = rx.try_pop(&mut buf); }
                _ => { let _ = rx.try_pop_batch(4, |r| assert!(r.len() <= 100)); }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Arbitrary positions and data words at attach: no panic, no overflow, every call returns.
    #[test]
    fn attach_over_garbage_never_panics(
        tail in prop_oneof![any::<u64>(), (0u64..4096).prop_map(|v| v * 8)],
        head in prop_oneof![any::<u64>(), (0u64..4096).prop_map(|v| v * 8)],
        words in prop::collection::vec(prop_oneof![any::<u64>(), (0u32..300, 0u32..4).prop_map(|(l, k)| encode(l, k))], 32),
        ops in prop::collection::vec(0usize..120, 0..40),
    ) {
        let seg = Segment::heap(4096 + 256).unwrap();
        poke(&seg, PRODUCER_BLOCK, tail);
        poke(&seg, CONSUMER_BLOCK, head);
        for (i, w) in words.iter().enumerate() {
            poke(&seg, DATA_OFFSET + 8 * i as u64, *w);
        }
        // Lay a valid header over the garbage positions by building a ring elsewhere and
        // copying its header page in front of them.
        let good = SpscRing::in_heap(&SpscConfig::new(256).max_record(100)).unwrap();
        let mut image = vec![0u8; seg.len()];
        let hdr = shmbus_ring::layout::read_header(good.segment()).unwrap();
        let hdr_bytes: Vec<u8> = [
            hdr.magic.to_le_bytes().to_vec(), hdr.init_state.to_le_bytes().to_vec(),
            hdr.layout_major.to_le_bytes().to_vec(), hdr.layout_minor.to_le_bytes().to_vec(),
            hdr.abi_flags.to_le_bytes().to_vec(), hdr.block_align.to_le_bytes().to_vec(),
            hdr.ring_kind.to_le_bytes().to_vec(), hdr.header_len.to_le_bytes().to_vec(),
            hdr.total_len.to_le_bytes().to_vec(), hdr.capacity.to_le_bytes().to_vec(),
            hdr.record_limit.to_le_bytes().to_vec(), hdr.producer_offset.to_le_bytes().to_vec(),
            hdr.consumer_offset.to_le_bytes().to_vec(), hdr.data_offset.to_le_bytes().to_vec(),
            hdr.data_len.to_le_bytes().to_vec(),
        ].concat();
        image[..hdr_bytes.len()].copy_from_slice(&hdr_bytes);
        for off in (256..seg.len()).step_by(8) {
            let v = seg.atomic_u64(off).unwrap().load(Ordering::Relaxed);
            image[off..off + 8].copy_from_slice(&v.to_le_bytes());
        }
        let ring = SpscRing::open_in(Segment::heap_from_bytes(&image).unwrap(), &OpenOptions::default()).unwrap();
        if let (Ok(mut tx), Ok(mut rx)) = (ring.producer(), ring.consumer()) {
            let mut buf = vec![0u8; 128];
            for n in ops {
                if n % 2 == 0 {
                    let _ = tx.try_push(&vec![1; n.min(100)]);
                } else {
                    let _ = rx.try_pop(&mut buf);
                    let _ = rx.try_pop_batch(3, |_| ());
                }
            }
        }
    }
}
