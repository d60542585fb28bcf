//! Segments and their backings: every backing carries a ring through the same code (anonymous
//! shared mappings, sealed memfds, heap memory, the prefault / mlock options); opening by fd;
//! who owns a name and unlinks it; raw atomics only where a store cannot fault or break a
//! ring. (Each way opening can fail is in `segment_open_errors.rs`.)
#![cfg(not(loom))]

use shmbus_ring::{
    Backing, Error, MpmcConfig, MpmcRing, OpenOptions, Segment, SegmentOptions, SpscConfig,
    SpscRing,
};
use shmbus_testkit::unique_name;

fn round_trip(ring: &SpscRing) {
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    for i in 0u32..1000 {
        tx.try_push(&i.to_le_bytes()).unwrap();
        assert_eq!(rx.try_pop_with(<[u8]>::to_vec).unwrap(), i.to_le_bytes());
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
    let name = unique_name("backing");
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

#[test]
fn open_fd_accepts_a_posix_shm_fd_and_names_it() {
    let name = unique_name("fd");
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
    let name = unique_name("reuse");
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
fn raw_atomics_are_refused_on_read_only_mappings_and_on_ring_segments() {
    let shm = unique_name("atomics");
    let ring =
        SpscRing::create_shm(&shm, &SpscConfig::new(4096), &SegmentOptions::default()).unwrap();
    let _raw = Segment::open(&shm, &SegmentOptions::default()).unwrap();
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

#[test]
fn a_heap_ring_too_large_to_allocate_is_an_error_not_an_abort() {
    let err = MpmcRing::in_heap(&MpmcConfig::new(1 << 32, 1 << 24)).unwrap_err();
    assert!(
        matches!(err, shmbus_ring::Error::InvalidConfig(_)),
        "{err:?}"
    );
}
