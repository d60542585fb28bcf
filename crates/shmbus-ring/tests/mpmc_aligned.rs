//! Aligned MPMC slots (layout 1.7, `RING_FLAG_ALIGNED` on an MPMC ring): from 768 bytes a
//! slot's payload starts on its second cache line; the flag is in the header, so an opener,
//! an observer and the zero-copy views all find payloads where the creator put them, and a
//! header whose flag does not match its slots' stride is refused.
#![cfg(not(loom))]

use shmbus_ring::layout::{DATA_OFFSET, RING_FLAG_ALIGNED};
use shmbus_ring::mpmc::{
    aligned_slot_stride, slot_stride, ALIGNED_PAYLOAD_OFFSET, ALIGNED_SLOT_FROM, SLOT_HEADER,
};
use shmbus_ring::observe::{Observer, Peeked, Start};
use shmbus_ring::{Error, MpmcConfig, MpmcRing, SegmentOptions};
use shmbus_testkit::hostile::raw_view;
use shmbus_testkit::unique_name;
use std::sync::atomic::Ordering;

/// Message `i` of `len` bytes: every byte depends on both, so a payload read at the wrong
/// offset or with the wrong length never matches.
fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 131 + j * 7 + len) as u8).collect()
}

fn aligned(ring: &MpmcRing) -> bool {
    ring.header().ring_flags & RING_FLAG_ALIGNED != 0
}

#[test]
fn slots_from_768_bytes_are_aligned_by_default_and_smaller_ones_packed() {
    for (slot_size, expect) in [
        (8, false),
        (64, false),
        (256, false),
        (ALIGNED_SLOT_FROM - 1, false),
        (ALIGNED_SLOT_FROM, true),
        (1024, true),
        (1028, true),
        (65_536, true),
    ] {
        let config = MpmcConfig::new(8, slot_size);
        let ring = MpmcRing::in_heap(&config).unwrap();
        assert_eq!(aligned(&ring), expect, "slot size {slot_size}");
        let stride = if expect {
            aligned_slot_stride(slot_size)
        } else {
            slot_stride(slot_size)
        };
        assert_eq!(config.stride(), stride, "slot size {slot_size}");
        assert_eq!(ring.header().data_len, 8 * stride, "slot size {slot_size}");
        assert_eq!(ring.max_message(), slot_size as usize);
        // Asked not to, no ring is aligned.
        let packed = MpmcRing::in_heap(&config.clone().aligned(false)).unwrap();
        assert!(!aligned(&packed));
        assert_eq!(packed.header().data_len, 8 * slot_stride(slot_size));
    }
}

#[test]
fn every_payload_of_an_aligned_ring_starts_on_a_line_and_a_packed_ones_after_its_header() {
    for (config, line_offset) in [
        (MpmcConfig::new(4, 1024), 0),
        (MpmcConfig::new(4, 800).checksum(true), 0),
        (
            MpmcConfig::new(4, 1024).aligned(false),
            SLOT_HEADER as usize,
        ),
        (MpmcConfig::new(4, 200), SLOT_HEADER as usize),
    ] {
        let ring = MpmcRing::in_heap(&config).unwrap();
        let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        // Three laps of the four slots, through the zero-copy views on both sides.
        for i in 0..12 {
            let msg = payload(i, 100 + i);
            let mut w = tx.reserve(msg.len()).unwrap();
            assert_eq!(
                w.as_ptr() as usize % 64,
                line_offset,
                "{config:?} write {i}"
            );
            w.copy_from_slice(&msg);
            w.commit();
            let r = rx.read().unwrap().unwrap();
            assert_eq!(r.as_ptr() as usize % 64, line_offset, "{config:?} read {i}");
            assert_eq!(&r[..], &msg[..], "{config:?} message {i}");
        }
    }
}

#[test]
fn every_length_up_to_the_slot_goes_through_an_aligned_ring_by_every_call() {
    let ring = MpmcRing::in_heap(&MpmcConfig::new(8, 800)).unwrap();
    assert!(aligned(&ring));
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let mut buf = vec![0u8; 800];
    let mut v = Vec::new();
    for len in 0..=800 {
        let msg = payload(len, len);
        tx.try_push(&msg).unwrap();
        match len % 3 {
            0 => {
                let n = rx.try_pop(&mut buf).unwrap();
                assert_eq!(&buf[..n], &msg[..], "try_pop, {len} bytes");
            }
            1 => {
                rx.try_pop_vec(&mut v).unwrap();
                assert_eq!(v, msg, "try_pop_vec, {len} bytes");
            }
            _ => assert_eq!(rx.try_pop_with(<[u8]>::to_vec).unwrap(), msg, "{len} bytes"),
        }
    }
    let batch: Vec<Vec<u8>> = (0..8).map(|i| payload(i, 793 + i)).collect();
    tx.try_push_all(&batch).unwrap();
    let mut got = Vec::new();
    assert_eq!(rx.try_pop_batch(8, |m| got.push(m.to_vec())), Ok(8));
    assert_eq!(got, batch);
}

#[test]
fn an_opener_and_an_observer_find_the_payloads_where_the_creator_put_them() {
    for checksum in [false, true] {
        let name = unique_name("mpmc-aligned");
        let config = MpmcConfig::new(8, 1028).checksum(checksum);
        let creator = MpmcRing::create_shm(&name, &config, &SegmentOptions::default()).unwrap();
        let opener = MpmcRing::open_shm(&name, &SegmentOptions::default()).unwrap();
        assert!(aligned(&opener));
        assert_eq!(opener.max_message(), creator.max_message());
        let obs = Observer::open(&name).unwrap();
        let mut peek = obs.peek(Start::Oldest);
        let (mut tx, mut rx) = (creator.producer().unwrap(), opener.consumer().unwrap());
        let (mut back_tx, mut back_rx) = (opener.producer().unwrap(), creator.consumer().unwrap());
        let mut buf = vec![0u8; 1028];
        let mut seen = Vec::new();
        for i in 0..20 {
            let len = [0, 1, 63, 64, 65, 500, 1000, creator.max_message()][i % 8];
            let msg = payload(i, len);
            tx.try_push(&msg).unwrap();
            match peek.next(&mut seen).unwrap() {
                Peeked::Message { .. } => assert_eq!(seen, msg, "observer, message {i}"),
                other => panic!("observer, message {i}: {other:?}"),
            }
            let n = rx.try_pop(&mut buf).unwrap();
            assert_eq!(
                &buf[..n],
                &msg[..],
                "opener, message {i}, checksum {checksum}"
            );
            back_tx.try_push(&msg).unwrap();
            let n = back_rx.try_pop(&mut buf).unwrap();
            assert_eq!(
                &buf[..n],
                &msg[..],
                "back, message {i}, checksum {checksum}"
            );
            // The same ring both ways: the observer sees the message sent back too.
            match peek.next(&mut seen).unwrap() {
                Peeked::Message { .. } => assert_eq!(seen, msg, "observer, back message {i}"),
                other => panic!("observer, back message {i}: {other:?}"),
            }
        }
    }
}

/// The flag decides the stride: a header whose flag was flipped no longer matches its
/// `data_len` wherever the two strides differ, and the opener says which field is wrong.
#[test]
fn a_flipped_aligned_flag_is_refused_where_the_strides_differ() {
    for (config, set) in [
        (MpmcConfig::new(8, 1028).aligned(false), true),
        (MpmcConfig::new(8, 1028), false),
        (MpmcConfig::new(8, 800), false),
    ] {
        let name = unique_name("mpmc-aligned-flip");
        let ring = MpmcRing::create_shm(&name, &config, &SegmentOptions::default()).unwrap();
        assert_eq!(aligned(&ring), !set);
        let raw = raw_view(ring.segment()).unwrap();
        let flags = raw.atomic_u32(112).unwrap();
        flags.fetch_xor(RING_FLAG_ALIGNED, Ordering::SeqCst);
        match MpmcRing::open_shm(&name, &SegmentOptions::default()) {
            Err(Error::BadField { field, reason, .. }) => {
                assert_eq!(field, "data_len", "{config:?}");
                assert!(reason.contains("slots of stride"), "{reason}");
            }
            other => panic!("{config:?}: {:?}", other.map(|_| ())),
        }
    }
}

/// An aligned ring's first slot: its sequence word and `len` on the first line, its payload
/// from the second; nothing of the payload is written into the header's line.
#[test]
fn the_header_line_holds_only_the_slot_header() {
    let name = unique_name("mpmc-aligned-line");
    let ring =
        MpmcRing::create_shm(&name, &MpmcConfig::new(2, 768), &SegmentOptions::default()).unwrap();
    let raw = raw_view(ring.segment()).unwrap();
    let mut tx = ring.producer().unwrap();
    tx.try_push(&[0xA5; 768]).unwrap();
    let word = |off: u64| raw.atomic_u64(off as usize).unwrap().load(Ordering::SeqCst);
    assert_eq!(word(DATA_OFFSET) >> 8, 1, "committed position 0");
    assert_eq!(word(DATA_OFFSET + 8) & 0xffff_ffff, 768, "len");
    for off in (16..ALIGNED_PAYLOAD_OFFSET).step_by(8) {
        assert_eq!(word(DATA_OFFSET + off), 0, "header line at {off}");
    }
    for off in (ALIGNED_PAYLOAD_OFFSET..ALIGNED_PAYLOAD_OFFSET + 768).step_by(8) {
        assert_eq!(
            word(DATA_OFFSET + off),
            0xA5A5_A5A5_A5A5_A5A5,
            "payload at {off}"
        );
    }
}
