//! Every backing carries a ring through the same code: anonymous shared mappings, sealed
//! memfds, heap memory, and the prefault / mlock options.
#![cfg(not(loom))]

use shmbus_ring::{
    Backing, Error, MpmcConfig, MpmcRing, OpenOptions, Segment, SegmentOptions, SpscConfig,
    SpscRing,
};

fn round_trip(ring: &SpscRing) {
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    for i in 0u32..1000 {
        tx.try_push(&i.to_le_bytes()).unwrap();
        assert_eq!(rx.try_pop_with(|b| b.to_vec()).unwrap(), i.to_le_bytes());
    }
}

#[test]
fn an_anonymous_shared_mapping_holds_a_ring() {
    let cfg = SpscConfig::new(4096);
    let seg =
        Segment::anonymous(cfg.segment_len(), &SegmentOptions::default().prefault(true)).unwrap();
    assert_eq!(seg.backing(), &Backing::Anonymous);
    assert!(seg.fd().is_none());
    round_trip(&SpscRing::create_in(seg, &cfg).unwrap());
}

#[test]
fn a_memfd_is_sealed_against_resizing() {
    let cfg = SpscConfig::new(4096);
    let seg = Segment::memfd("sealed", cfg.segment_len(), &SegmentOptions::default()).unwrap();
    let file = std::fs::File::from(seg.fd().unwrap().try_clone_to_owned().unwrap());
    let len = seg.len() as u64;
    assert!(
        file.set_len(len / 2).is_err(),
        "shrinking a sealed memfd must fail"
    );
    assert!(
        file.set_len(len * 2).is_err(),
        "growing a sealed memfd must fail"
    );
    round_trip(&SpscRing::create_in(seg, &cfg).unwrap());
}

#[test]
fn mlock_either_locks_or_names_the_failed_call() {
    let opts = SegmentOptions::default().mlock(true).prefault(true);
    match Segment::anonymous(1 << 16, &opts) {
        Ok(seg) => assert_eq!(seg.len(), 1 << 16),
        Err(Error::Os { op, .. }) => assert_eq!(op, "mlock"),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_ring_cannot_be_created_over_a_segment_someone_else_made() {
    let name = format!("/shmbus-backing-{}", std::process::id());
    let cfg = SpscConfig::new(4096);
    let _owner = Segment::create(&name, cfg.segment_len(), &SegmentOptions::default()).unwrap();
    let other = Segment::open(&name, &SegmentOptions::default()).unwrap();
    assert!(matches!(
        SpscRing::create_in(other, &cfg).unwrap_err(),
        Error::NotCreator { .. }
    ));
}

#[test]
fn headers_can_be_inspected_and_a_blank_image_is_not_ready() {
    // read_header inspects without validating; a blank image never became READY.
    let ring = MpmcRing::in_heap(&MpmcConfig::new(8, 24)).unwrap();
    ring.producer().unwrap().try_push(b"kept").unwrap();
    let header = shmbus_ring::layout::read_header(ring.segment()).unwrap();
    assert_eq!(header.ring_kind, shmbus_ring::RingKind::Mpmc as u32);
    let blank = Segment::heap_from_bytes(&[0u8; 8192]).unwrap();
    let err = SpscRing::open_in(
        blank,
        &OpenOptions {
            ready_timeout: std::time::Duration::from_millis(10),
            ..OpenOptions::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::NotReady { .. }), "{err:?}");
}
