//! The per-message checksum (issue 13; PROTOCOL §4.2, §5.2; DECISIONS D24): a byte flipped in a
//! committed message, through a second mapping as a hostile or faulty process would, is
//! `PopError::Checksum` for that message on a checksum ring, by every pop call, and the next
//! message pops fine; the same flip on a ring without the option is `Ok` with the flipped byte
//! (the option is what catches it). An opener of a checksum ring verifies without being told,
//! and honest traffic round-trips every size, by every push and pop call, across wraparound.
#![cfg(not(loom))]

use proptest::prelude::*;
use shmbus_ring::layout::{CHECKSUM_LEN, DATA_OFFSET, RING_FLAG_ALIGNED, RING_FLAG_CHECKSUM};
use shmbus_ring::mpmc::{ALIGNED_PAYLOAD_OFFSET, SLOT_HEADER};
use shmbus_ring::{
    ChecksumMismatch, Consumer, Kind, MpmcConfig, MpmcRing, PopError, PushError, Ring, Segment,
    SegmentOptions, SpscConfig, SpscRing,
};
use shmbus_testkit::hostile::raw_view;
use shmbus_testkit::unique_name;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Flips the lowest bit of the byte at `off` of the segment, through the raw mapping.
fn flip(raw: &Segment, off: u64) {
    let word = off & !7;
    let shift = (off - word) * 8;
    raw.atomic_u64(word as usize)
        .expect("raw mapping")
        .fetch_xor(1 << shift, Ordering::SeqCst);
}

/// Every way a consumer pops one message, each returning the bytes it was given.
#[derive(Debug, Clone, Copy)]
enum PopBy {
    TryPop,
    TryPopVec,
    Read,
    TryPopWith,
    TryPopBatch,
    PopTimeout,
    PopWithDeadline,
}

const POPS: [PopBy; 7] = [
    PopBy::TryPop,
    PopBy::TryPopVec,
    PopBy::Read,
    PopBy::TryPopWith,
    PopBy::TryPopBatch,
    PopBy::PopTimeout,
    PopBy::PopWithDeadline,
];

fn pop<K: Kind>(rx: &mut Consumer<K>, how: PopBy) -> Result<Vec<u8>, PopError> {
    let mut buf = vec![0u8; rx.max_message()];
    match how {
        PopBy::TryPop => rx.try_pop(&mut buf).map(|n| buf[..n].to_vec()),
        PopBy::TryPopVec => rx.try_pop_vec(&mut buf).map(|_| buf),
        PopBy::Read => rx.read().map(|g| g.expect("a message").to_vec()),
        PopBy::TryPopWith => rx.try_pop_with(<[u8]>::to_vec),
        PopBy::TryPopBatch => {
            let mut got = Vec::new();
            let n = rx.try_pop_batch(1, |m| got.push(m.to_vec()))?;
            assert_eq!(n, 1);
            Ok(got.pop().unwrap())
        }
        PopBy::PopTimeout => rx
            .pop_timeout(&mut buf, Duration::from_secs(5))
            .map(|n| buf[..n].to_vec()),
        PopBy::PopWithDeadline => rx.pop_with_deadline(
            Some(Instant::now() + Duration::from_secs(5)),
            <[u8]>::to_vec,
        ),
    }
}

/// Pushes two messages, flips byte `at` (an offset from the first message's payload) of the
/// first, pops twice with `how`: what each pop returned.
fn flip_first<K: Kind>(
    ring: &Ring<K>,
    payload_at: u64,
    at: u64,
    how: PopBy,
) -> [Result<Vec<u8>, PopError>; 2] {
    let raw = raw_view(ring.segment()).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    tx.try_push(b"hello, checksum").unwrap();
    tx.try_push(b"second").unwrap();
    flip(&raw, payload_at + at);
    [pop(&mut rx, how), pop(&mut rx, how)]
}

fn spsc(checksum: bool) -> SpscRing {
    let config = SpscConfig::new(4096).max_record(256).checksum(checksum);
    SpscRing::create_shm(&unique_name("crc"), &config, &SegmentOptions::default()).unwrap()
}

/// An MPMC ring of 768-byte slots: aligned (layout 1.7), each payload on its slot's second
/// line.
fn mpmc(checksum: bool) -> MpmcRing {
    let config = MpmcConfig::new(8, 768).checksum(checksum);
    let ring =
        MpmcRing::create_shm(&unique_name("crc"), &config, &SegmentOptions::default()).unwrap();
    assert_ne!(ring.header().ring_flags & RING_FLAG_ALIGNED, 0);
    ring
}

/// The same ring with packed slots: each payload right after its slot's 16-byte header.
fn mpmc_packed(checksum: bool) -> MpmcRing {
    let config = MpmcConfig::new(8, 768).checksum(checksum).aligned(false);
    MpmcRing::create_shm(&unique_name("crc"), &config, &SegmentOptions::default()).unwrap()
}

/// The first SPSC record's payload follows its 8-byte header; the first MPMC slot's, its
/// slot header: 16 bytes, or a line in an aligned ring.
const SPSC_PAYLOAD: u64 = DATA_OFFSET + 8;
const MPMC_PAYLOAD: u64 = DATA_OFFSET + ALIGNED_PAYLOAD_OFFSET;
const MPMC_PACKED_PAYLOAD: u64 = DATA_OFFSET + SLOT_HEADER;

fn assert_caught(got: &[Result<Vec<u8>, PopError>; 2], how: PopBy) {
    match &got[0] {
        Err(PopError::Checksum(ChecksumMismatch {
            position: 0,
            len: 15,
            stored,
            computed,
        })) => assert_ne!(stored, computed),
        other => panic!("{how:?}: a flipped byte gave {other:?}, not a checksum mismatch"),
    }
    assert_eq!(
        got[1].as_deref(),
        Ok(&b"second"[..]),
        "{how:?}: the next message"
    );
}

#[test]
fn spsc_flipped_payload_byte_is_a_checksum_error_by_every_pop() {
    for how in POPS {
        for at in [0, 7, 14] {
            assert_caught(&flip_first(&spsc(true), SPSC_PAYLOAD, at, how), how);
        }
    }
}

#[test]
fn mpmc_flipped_payload_byte_is_a_checksum_error_by_every_pop() {
    for how in POPS {
        for at in [0, 7, 14] {
            assert_caught(&flip_first(&mpmc(true), MPMC_PAYLOAD, at, how), how);
            assert_caught(
                &flip_first(&mpmc_packed(true), MPMC_PACKED_PAYLOAD, at, how),
                how,
            );
        }
    }
}

#[test]
fn a_flipped_trailer_byte_is_caught_too() {
    // The trailer sits right after the 15 payload bytes.
    for at in 15..15 + CHECKSUM_LEN as u64 {
        assert_caught(
            &flip_first(&spsc(true), SPSC_PAYLOAD, at, PopBy::TryPop),
            PopBy::TryPop,
        );
        assert_caught(
            &flip_first(&mpmc(true), MPMC_PAYLOAD, at, PopBy::TryPop),
            PopBy::TryPop,
        );
    }
}

#[test]
fn without_the_option_the_same_flip_is_ok_with_the_flipped_byte() {
    for how in POPS {
        for [first, second] in [
            flip_first(&spsc(false), SPSC_PAYLOAD, 0, how),
            flip_first(&mpmc(false), MPMC_PAYLOAD, 0, how),
            flip_first(&mpmc_packed(false), MPMC_PACKED_PAYLOAD, 0, how),
        ] {
            assert_eq!(first.as_deref(), Ok(&b"iello, checksum"[..]), "{how:?}");
            assert_eq!(second.as_deref(), Ok(&b"second"[..]), "{how:?}");
        }
    }
}

#[test]
fn an_opener_sees_the_flag_and_verifies_without_being_told() {
    let name = unique_name("crc-open");
    let config = SpscConfig::new(4096).max_record(256).checksum(true);
    let creator = SpscRing::create_shm(&name, &config, &SegmentOptions::default()).unwrap();
    assert!(creator.header().ring_flags & RING_FLAG_CHECKSUM != 0);
    let opener = SpscRing::open_shm(&name, &SegmentOptions::default()).unwrap();
    assert!(opener.checksum());
    assert_eq!(opener.max_message(), 252);
    // The opener's consumer verifies what the creator's producer wrote...
    assert_caught(
        &flip_first_across(&creator, &opener, SPSC_PAYLOAD),
        PopBy::TryPop,
    );

    let name = unique_name("crc-open");
    let creator = MpmcRing::create_shm(
        &name,
        &MpmcConfig::new(8, 64).checksum(true),
        &SegmentOptions::default(),
    )
    .unwrap();
    let opener = MpmcRing::open_shm(&name, &SegmentOptions::default()).unwrap();
    assert!(opener.checksum());
    assert_eq!(opener.max_message(), 60);
    assert_caught(
        &flip_first_across(&creator, &opener, MPMC_PACKED_PAYLOAD),
        PopBy::TryPop,
    );
    // ...and the opener's producer writes the trailer the creator's consumer checks.
    let (mut tx, mut rx) = (opener.producer().unwrap(), creator.consumer().unwrap());
    tx.try_push(b"back").unwrap();
    let mut buf = [0u8; 60];
    assert_eq!(rx.try_pop(&mut buf), Ok(4));
    assert_eq!(&buf[..4], b"back");
}

fn flip_first_across<K: Kind>(
    creator: &Ring<K>,
    opener: &Ring<K>,
    payload_at: u64,
) -> [Result<Vec<u8>, PopError>; 2] {
    let raw = raw_view(creator.segment()).unwrap();
    let (mut tx, mut rx) = (creator.producer().unwrap(), opener.consumer().unwrap());
    tx.try_push(b"hello, checksum").unwrap();
    tx.try_push(b"second").unwrap();
    flip(&raw, payload_at);
    [pop(&mut rx, PopBy::TryPop), pop(&mut rx, PopBy::TryPop)]
}

#[test]
fn a_batch_that_meets_a_mismatch_returns_what_it_had_and_the_next_call_reports_it() {
    for ring in [spsc(true)] {
        let raw = raw_view(ring.segment()).unwrap();
        let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        for m in [&b"one"[..], b"two", b"three"] {
            tx.try_push(m).unwrap();
        }
        // "two" starts at byte 16 (8 header + 3 payload + 4 trailer, padded to 16).
        flip(&raw, DATA_OFFSET + 16 + 8);
        let mut got = Vec::new();
        assert_eq!(rx.try_pop_batch(10, |m| got.push(m.to_vec())), Ok(1));
        assert!(matches!(
            rx.try_pop_batch(10, |m| got.push(m.to_vec())),
            Err(PopError::Checksum(ChecksumMismatch {
                position: 16,
                len: 3,
                ..
            }))
        ));
        assert_eq!(rx.try_pop_batch(10, |m| got.push(m.to_vec())), Ok(1));
        assert_eq!(got, [b"one".to_vec(), b"three".to_vec()]);
    }
    let ring = mpmc(true);
    let raw = raw_view(ring.segment()).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    tx.try_push_all(&[&b"one"[..], b"two", b"three"]).unwrap();
    flip(
        &raw,
        DATA_OFFSET + mpmc::aligned_slot_stride(768) + ALIGNED_PAYLOAD_OFFSET,
    );
    let mut got = Vec::new();
    assert_eq!(rx.try_pop_batch(10, |m| got.push(m.to_vec())), Ok(1));
    let mut buf = [0u8; 764];
    assert!(matches!(
        rx.try_pop(&mut buf),
        Err(PopError::Checksum(ChecksumMismatch {
            position: 1,
            len: 3,
            ..
        }))
    ));
    assert_eq!(rx.try_pop(&mut buf), Ok(5));
}

use shmbus_ring::mpmc;

#[test]
fn limits_shrink_by_the_trailer() {
    let ring = SpscRing::in_heap(&SpscConfig::new(1024).max_record(100).checksum(true)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    assert_eq!(tx.max_message(), 96);
    assert_eq!(rx.max_message(), 96);
    assert_eq!(
        tx.try_push(&[0u8; 97]),
        Err(PushError::TooLarge { len: 97, max: 96 })
    );
    assert!(matches!(
        tx.reserve(97),
        Err(PushError::TooLarge { len: 97, max: 96 })
    ));
    tx.try_push(&[7u8; 96]).unwrap();
    let mut small = [0u8; 10];
    assert_eq!(
        rx.try_pop(&mut small),
        Err(PopError::BufferTooSmall {
            needed: 96,
            len: 10
        })
    );
    let mut buf = [0u8; 96];
    assert_eq!(rx.try_pop(&mut buf), Ok(96));
    let mpmc = MpmcRing::in_heap(&MpmcConfig::new(4, 20).checksum(true)).unwrap();
    let mut rx = mpmc.consumer().unwrap();
    assert_eq!(
        rx.try_pop(&mut [0u8; 15]),
        Err(PopError::BufferTooSmall {
            needed: 16,
            len: 15
        })
    );
    assert!(SpscRing::in_heap(&SpscConfig::new(1024).max_record(3).checksum(true)).is_err());
    assert!(MpmcRing::in_heap(&MpmcConfig::new(4, 3).checksum(true)).is_err());
    let zero = MpmcRing::in_heap(&MpmcConfig::new(4, 4).checksum(true)).unwrap();
    assert_eq!(zero.max_message(), 0);
}

/// How a message is pushed in the round-trip model.
#[derive(Debug, Clone, Copy)]
enum PushBy {
    TryPush,
    Batch,
    Reserve,
    ReserveShorter,
}

fn push_any<K: Kind>(
    tx: &mut shmbus_ring::Producer<K>,
    msg: &[u8],
    how: PushBy,
) -> Result<(), PushError> {
    match how {
        PushBy::TryPush => tx.try_push(msg),
        PushBy::Batch => tx.try_push_batch(&[msg]).map(|n| assert_eq!(n, 1)),
        PushBy::Reserve => {
            let mut w = tx.reserve(msg.len())?;
            w.copy_from_slice(msg);
            w.commit();
            Ok(())
        }
        PushBy::ReserveShorter => {
            let max = tx.max_message();
            let mut w = tx.reserve(max)?;
            w[..msg.len()].copy_from_slice(msg);
            w.commit_len(msg.len());
            Ok(())
        }
    }
}

fn round_trip<K: Kind>(ring: &Ring<K>, ops: &[(usize, u8, u8)]) {
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let max = tx.max_message();
    let pushes = [
        PushBy::TryPush,
        PushBy::Batch,
        PushBy::Reserve,
        PushBy::ReserveShorter,
    ];
    let mut sent = std::collections::VecDeque::new();
    for (i, &(len, push, popk)) in ops.iter().enumerate() {
        // Sizes from 0 to max_message, with both ends often.
        let len = match len % 4 {
            0 => 0,
            1 => max,
            _ => len % (max + 1),
        };
        let msg: Vec<u8> = (0..len).map(|j| (i + j) as u8).collect();
        match push_any(&mut tx, &msg, pushes[usize::from(push) % 4]) {
            Ok(()) => sent.push_back(msg),
            Err(PushError::Full) => {}
            Err(e) => panic!("push: {e}"),
        }
        if popk % 3 != 0 || sent.len() > 3 {
            let how = POPS[usize::from(popk) % POPS.len()];
            if let Some(want) = sent.pop_front() {
                assert_eq!(pop(&mut rx, how).unwrap(), want, "{how:?}");
            }
        }
    }
    while let Some(want) = sent.pop_front() {
        assert_eq!(pop(&mut rx, PopBy::TryPop).unwrap(), want);
    }
    assert_eq!(rx.try_pop(&mut vec![0; max]), Err(PopError::Empty));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Honest traffic on a checksum ring round-trips every message: sizes 0 to max_message,
    /// every push and pop call, many laps of a small ring (wraparound and padding records).
    #[test]
    fn honest_traffic_round_trips_with_the_checksum_on(
        ops in proptest::collection::vec((0usize..1000, 0u8..4, 0u8..21), 1..300),
    ) {
        round_trip(&SpscRing::in_heap(&SpscConfig::new(512).max_record(100).checksum(true)).unwrap(), &ops);
        round_trip(&SpscRing::in_heap(&SpscConfig::new(256).checksum(true)).unwrap(), &ops);
        round_trip(&MpmcRing::in_heap(&MpmcConfig::new(4, 37).checksum(true)).unwrap(), &ops);
    }
}
