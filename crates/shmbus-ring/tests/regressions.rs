//! Regression tests for findings of the adversarial review of the SPSC ring and segments.
#![cfg(not(loom))]

use proptest::prelude::*;
use shmbus_ring::frame::encode;
use shmbus_ring::layout::{CONSUMER_BLOCK, DATA_OFFSET, PRODUCER_BLOCK};
use shmbus_ring::{Segment, SegmentOptions, SpscConfig, SpscRing};
use std::sync::atomic::{AtomicU32, Ordering};

/// A ring in named shm plus a raw second mapping (another process's view) to write through.
fn ring(cfg: &SpscConfig) -> (SpscRing, Segment) {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "/shmbus-regress-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let ring = SpscRing::create_shm(&name, cfg, &SegmentOptions::default()).unwrap();
    let raw = Segment::open(&name, &SegmentOptions::default()).unwrap();
    (ring, raw)
}

fn poke(raw: &Segment, off: u64, v: u64) {
    raw.atomic_u64(off as usize)
        .unwrap()
        .store(v, Ordering::SeqCst);
}

#[test]
fn a_successor_producer_attaches_after_the_consumer_passed_a_stale_published_tail() {
    let (ring, raw) = ring(&SpscConfig::new(256));
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    tx.try_push(b"one").unwrap();
    tx.try_push(b"two").unwrap();
    drop(tx);
    // As if the producer died between committing "two" and publishing its tail.
    poke(&raw, PRODUCER_BLOCK, 16);
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
    let (ring, raw) = ring(&SpscConfig::new(256));
    poke(&raw, PRODUCER_BLOCK, 256); // head 0, tail = cap: violates tail - head <= cap - 8
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
fn dropping_an_endpoint_does_not_clear_a_claim_that_is_not_its_own() {
    let (ring, raw) = ring(&SpscConfig::new(256));
    let a = ring.producer().unwrap();
    // Someone clears A's claim (the owner word) and B, a live endpoint, claims the role.
    raw.atomic_u32((PRODUCER_BLOCK + 8) as usize)
        .unwrap()
        .store(0, Ordering::SeqCst);
    let b = ring.producer().unwrap();
    drop(a);
    assert!(
        matches!(
            ring.producer().unwrap_err(),
            shmbus_ring::Error::AlreadyAttached { .. }
        ),
        "B's claim survived A's drop"
    );
    drop(b);
    ring.producer().expect("B's drop released the role");
}

#[test]
fn open_fd_accepts_a_posix_shm_fd_and_names_it() {
    let name = format!("/shmbus-regress-fd-{}", std::process::id());
    let _owner = Segment::create(&name, 8192, &SegmentOptions::default()).unwrap();
    let fd = nix::sys::mman::shm_open(
        name.as_str(),
        nix::fcntl::OFlag::O_RDWR,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    let seg = Segment::open_fd(fd, &SegmentOptions::default()).expect("a shm object's fd opens");
    assert_eq!(seg.target(), name);
}

#[test]
fn open_fd_refuses_an_unsealed_memfd() {
    let fd = nix::sys::memfd::memfd_create(
        c"unsealed",
        nix::sys::memfd::MemFdCreateFlag::MFD_ALLOW_SEALING,
    )
    .unwrap();
    std::fs::File::from(fd.try_clone().unwrap())
        .set_len(8192)
        .unwrap();
    let err = Segment::open_fd(fd, &SegmentOptions::default()).unwrap_err();
    assert!(
        matches!(err, shmbus_ring::Error::BadField { field: "seals", .. }),
        "{err:?}"
    );
}

#[test]
fn the_owner_does_not_unlink_a_newer_object_that_reused_its_name() {
    let name = format!("/shmbus-regress-reuse-{}", std::process::id());
    let a = Segment::create(&name, 4096, &SegmentOptions::default()).unwrap();
    Segment::open(&name, &SegmentOptions::default())
        .unwrap()
        .unlink()
        .unwrap();
    let b = Segment::create(&name, 4096, &SegmentOptions::default()).unwrap();
    drop(a);
    Segment::open(&name, &SegmentOptions::default()).expect("B's object is still reachable");
    drop(b);
    assert!(
        Segment::open(&name, &SegmentOptions::default()).is_err(),
        "B unlinks its own"
    );
}

#[test]
fn a_panic_in_a_pop_batch_callback_does_not_redeliver_records_already_handed_out() {
    let ring = SpscRing::in_heap(&SpscConfig::new(256)).unwrap();
    let mut tx = ring.producer().unwrap();
    for i in 0u8..3 {
        tx.try_push(&[i]).unwrap();
    }
    let r2 = ring.clone();
    let outcome = std::panic::catch_unwind(move || {
        let mut rx = r2.consumer().unwrap();
        let _ = rx.pop_batch(10, |r| {
            assert_ne!(r[0], 2, "callback fails on the third record")
        });
    });
    assert!(outcome.is_err());
    let mut rx = ring.consumer().unwrap();
    let mut buf = Vec::new();
    rx.try_pop_vec(&mut buf).unwrap();
    assert_eq!(buf, [2]);
}

#[test]
fn raw_atomics_are_refused_on_read_only_mappings_and_on_ring_segments() {
    let (ring, _raw) = ring(&SpscConfig::new(4096));
    assert!(
        ring.segment().atomic_u64(256).is_none(),
        "a ring's words belong to the ring"
    );
    let name = match ring.segment().backing() {
        shmbus_ring::Backing::Shm(n) => n.clone(),
        other => panic!("{other:?}"),
    };
    let ro = Segment::open(&name, &SegmentOptions::default().read_only(true)).unwrap();
    assert!(
        ro.atomic_u64(256).is_none() && ro.atomic_u32(8).is_none(),
        "a store would fault"
    );
    let ro_ring = SpscRing::open_shm(&name, &SegmentOptions::default().read_only(true)).unwrap();
    assert_eq!(ro_ring.used_bytes(), Some(0));
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
        let ring = SpscRing::open_in(Segment::heap_from_bytes(&image).unwrap(), &Default::default()).unwrap();
        if let (Ok(mut tx), Ok(mut rx)) = (ring.producer(), ring.consumer()) {
            let mut buf = vec![0u8; 128];
            for n in ops {
                if n % 2 == 0 {
                    let _ = tx.try_push(&vec![1; n.min(100)]);
                } else {
                    let _ = rx.try_pop(&mut buf);
                    let _ = rx.pop_batch(3, |_| ());
                }
            }
        }
    }
}
