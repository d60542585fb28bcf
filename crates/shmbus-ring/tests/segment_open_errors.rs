//! Opening a segment: one test per way it can be wrong, each asserting the typed error that
//! names what failed.
#![cfg(not(loom))]

use shmbus_ring::layout::{SegmentHeader, INIT_READY};
use shmbus_ring::{Error, OpenOptions, Segment, SegmentOptions, SpscConfig, SpscRing};
use shmbus_testkit::{respawn, role, unique_name};
use std::mem::offset_of;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn opts() -> SegmentOptions {
    SegmentOptions::default()
}

/// A ring created under `name`, kept alive by the returned handle (which unlinks on drop).
fn make_ring(name: &str) -> SpscRing {
    SpscRing::create_shm(name, &SpscConfig::new(4096), &opts()).expect("create")
}

/// Writes a header field through a second mapping, as a foreign or buggy process would.
fn poke_u32(name: &str, off: usize, v: u32) {
    let seg = Segment::open(name, &opts()).unwrap();
    seg.atomic_u32(off).unwrap().store(v, Ordering::SeqCst);
}

fn poke_u64(name: &str, off: usize, v: u64) {
    let seg = Segment::open(name, &opts()).unwrap();
    seg.atomic_u64(off).unwrap().store(v, Ordering::SeqCst);
}

fn open(name: &str) -> Result<SpscRing, Error> {
    SpscRing::open_shm(name, &opts())
}

#[test]
fn opening_a_missing_name_is_enoent_naming_shm_open_and_the_name() {
    let name = unique_name("missing");
    let err = open(&name).unwrap_err();
    assert!(
        matches!(&err, Error::Os { op: "shm_open", target, code } if *target == name && code.raw() == libc::ENOENT),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("shm_open(\"{name}\"): No such file or directory (ENOENT)")
    );
}

#[test]
fn creating_a_taken_name_is_eexist_and_leaves_the_first_intact() {
    let name = unique_name("taken");
    let ring = make_ring(&name);
    let mut tx = ring.producer().unwrap();
    tx.try_push(b"committed").unwrap();
    let err = SpscRing::create_shm(&name, &SpscConfig::new(4096), &opts()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Os {
                op: "shm_open",
                code,
                ..
            } if code.raw() == libc::EEXIST
        ),
        "{err:?}"
    );
    // The failed create did not unlink or reinitialise the existing ring.
    let mut rx = open(&name).unwrap().consumer().unwrap();
    let mut buf = Vec::new();
    rx.try_pop_vec(&mut buf).unwrap();
    assert_eq!(buf, b"committed");
}

#[test]
fn a_foreign_object_has_bad_magic() {
    let name = unique_name("magic");
    let _ring = make_ring(&name);
    poke_u64(&name, offset_of!(SegmentHeader, magic), 0x1234_5678);
    let err = open(&name).unwrap_err();
    assert!(
        matches!(
            err,
            Error::BadMagic {
                found: 0x1234_5678,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("`magic`"), "{err}");
}

#[test]
fn another_major_version_is_refused_and_a_newer_minor_accepted() {
    let name = unique_name("major");
    let _ring = make_ring(&name);
    let off = offset_of!(SegmentHeader, layout_major);
    poke_u32(&name, off, u32::from_le_bytes([2, 0, 7, 0])); // major 2, minor 7
    let err = open(&name).unwrap_err();
    assert!(
        matches!(
            err,
            Error::MajorVersion {
                found: 2,
                expected: 1,
                ..
            }
        ),
        "{err:?}"
    );
    poke_u32(&name, off, u32::from_le_bytes([1, 0, 9, 0])); // major 1, minor 9: additive
    open(&name).expect("a newer minor of the same major opens");
}

#[test]
fn an_object_shorter_than_the_header_is_truncated() {
    let name = unique_name("trunc");
    let ring = make_ring(&name);
    let file = std::fs::File::from(ring.segment().fd().unwrap().try_clone_to_owned().unwrap());
    file.set_len(100).unwrap();
    let err = open(&name).unwrap_err();
    assert!(
        matches!(err, Error::Truncated { actual: 100, .. }),
        "{err:?}"
    );
}

#[test]
fn an_object_resized_after_creation_disagrees_with_total_len() {
    let name = unique_name("resized");
    let ring = make_ring(&name);
    let real = ring.segment().len() as u64;
    let file = std::fs::File::from(ring.segment().fd().unwrap().try_clone_to_owned().unwrap());
    file.set_len(real + 4096).unwrap();
    let err = open(&name).unwrap_err();
    assert!(
        matches!(err, Error::BadField { field: "total_len", value, .. } if value == real),
        "{err:?}"
    );
}

#[test]
fn header_sizes_that_disagree_with_the_object_name_the_field() {
    let cases: &[(&str, usize, u64)] = &[
        ("capacity", offset_of!(SegmentHeader, capacity), 1 << 20),
        ("capacity", offset_of!(SegmentHeader, capacity), 3000),
        ("data_len", offset_of!(SegmentHeader, data_len), 1 << 30),
        (
            "record_limit",
            offset_of!(SegmentHeader, record_limit),
            1 << 40,
        ),
        ("record_limit", offset_of!(SegmentHeader, record_limit), 0),
        ("data_offset", offset_of!(SegmentHeader, data_offset), 128),
        (
            "producer_offset",
            offset_of!(SegmentHeader, producer_offset),
            4096,
        ),
        (
            "consumer_offset",
            offset_of!(SegmentHeader, consumer_offset),
            0,
        ),
    ];
    for &(field, off, value) in cases {
        let name = unique_name("field");
        let _ring = make_ring(&name);
        poke_u64(&name, off, value);
        let err = open(&name).unwrap_err();
        assert!(
            matches!(&err, Error::BadField { field: f, .. } if *f == field),
            "poking {field} = {value}: {err:?}"
        );
        assert!(err.to_string().contains(&format!("`{field}`")), "{err}");
    }
}

#[test]
fn a_ring_of_another_kind_is_wrong_kind() {
    let name = unique_name("kind");
    let _ring = make_ring(&name);
    poke_u32(&name, offset_of!(SegmentHeader, ring_kind), 2);
    let err = open(&name).unwrap_err();
    assert!(
        matches!(&err, Error::WrongKind { found, .. } if found.contains("Mpmc")),
        "{err:?}"
    );
    poke_u32(&name, offset_of!(SegmentHeader, ring_kind), 99);
    let err = open(&name).unwrap_err();
    assert!(
        matches!(&err, Error::WrongKind { found, .. } if found.contains("unknown (99)")),
        "{err:?}"
    );
}

#[test]
fn abi_fields_that_differ_are_refused_by_name() {
    for (field, off) in [
        ("abi_flags", offset_of!(SegmentHeader, abi_flags)),
        ("block_align", offset_of!(SegmentHeader, block_align)),
        ("header_len", offset_of!(SegmentHeader, header_len)),
    ] {
        let name = unique_name("abi");
        let _ring = make_ring(&name);
        poke_u32(&name, off, 0xdead);
        let err = open(&name).unwrap_err();
        assert!(
            matches!(&err, Error::AbiMismatch { field: f, .. } if *f == field),
            "{err:?}"
        );
    }
}

#[test]
fn a_header_never_published_times_out_as_not_ready_within_the_bound() {
    let name = unique_name("notready");
    // A creator that died before publishing: the object exists, the header is all zero.
    let seg = Segment::create(&name, 8192, &opts()).unwrap();
    let started = Instant::now();
    let err = SpscRing::open_in(
        Segment::open(&name, &opts()).unwrap(),
        &OpenOptions {
            ready_timeout: Duration::from_millis(50),
            ..OpenOptions::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::NotReady { state: 0, .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Garbage in init_state is reported at once rather than waited on.
    seg.atomic_u32(offset_of!(SegmentHeader, init_state))
        .unwrap()
        .store(7, Ordering::SeqCst);
    assert!(matches!(
        open(&name).unwrap_err(),
        Error::BadInitState { state: 7, .. }
    ));
    seg.atomic_u32(offset_of!(SegmentHeader, init_state))
        .unwrap()
        .store(INIT_READY, Ordering::SeqCst);
    assert!(matches!(
        open(&name).unwrap_err(),
        Error::BadMagic { found: 0, .. }
    ));
}

#[test]
fn a_second_producer_or_consumer_is_refused_until_the_first_detaches() {
    let name = unique_name("attach");
    let ring = make_ring(&name);
    let other = open(&name).unwrap();
    let tx = ring.producer().unwrap();
    let rx = ring.consumer().unwrap();
    let pid = std::process::id();
    for role in [shmbus_ring::Role::Producer, shmbus_ring::Role::Consumer] {
        let err = match role {
            shmbus_ring::Role::Producer => other.producer().map(drop),
            shmbus_ring::Role::Consumer => other.consumer().map(drop),
        }
        .unwrap_err();
        assert!(
            matches!(err, Error::AlreadyAttached { role: r, pid: p, .. } if r == role && p == pid),
            "{err:?}"
        );
    }
    drop((tx, rx));
    other.producer().expect("free again after drop");
    other.consumer().expect("free again after drop");
}

#[test]
fn a_read_only_mapping_can_be_inspected_but_not_attached() {
    let name = unique_name("ro");
    let ring = make_ring(&name);
    ring.producer().unwrap().try_push(b"abc").unwrap();
    let ro = SpscRing::open_shm(&name, &opts().read_only(true)).unwrap();
    assert!(!ro.segment().is_writable());
    assert_eq!(ro.used_bytes(), Some(16));
    assert!(matches!(ro.producer().unwrap_err(), Error::ReadOnly { .. }));
    assert!(matches!(ro.consumer().unwrap_err(), Error::ReadOnly { .. }));
}

#[test]
fn a_fingerprint_or_codec_mismatch_names_the_field() {
    use shmbus_ring::Identity;
    let name = unique_name("fp");
    let id = Identity {
        type_fingerprint: 0xabc,
        codec_id: 2,
    };
    let _ring = SpscRing::create_shm(&name, &SpscConfig::new(4096).identity(id), &opts()).unwrap();
    let with = |expect| {
        SpscRing::open_in(
            Segment::open(&name, &opts()).unwrap(),
            &OpenOptions {
                expect: Some(expect),
                ..OpenOptions::default()
            },
        )
    };
    with(id).expect("same identity opens");
    let err = with(Identity {
        type_fingerprint: 0xdef,
        ..id
    })
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Mismatch {
                field: "type_fingerprint",
                found: 0xabc,
                expected: 0xdef,
                ..
            }
        ),
        "{err:?}"
    );
    let err = with(Identity { codec_id: 1, ..id }).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Mismatch {
                field: "codec_id",
                found: 2,
                expected: 1,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn invalid_names_are_refused_before_any_system_call() {
    for (name, why) in [
        ("orders", "start with '/'"),
        ("/", "at least one character"),
        ("/a/b", "must not contain '/'"),
        ("/..", "'.' or '..'"),
    ] {
        let err = Segment::create(name, 4096, &opts()).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidName { reason, .. } if reason.contains(why)),
            "{name}: {err:?}"
        );
    }
    let long = format!("/{}", "x".repeat(256));
    assert!(matches!(
        Segment::open(&long, &opts()).unwrap_err(),
        Error::InvalidName { .. }
    ));
}

#[test]
fn invalid_geometry_is_refused_at_create() {
    for cfg in [
        SpscConfig::new(100),
        SpscConfig::new(32),
        SpscConfig::new(4096).max_record(4096),
        SpscConfig::new(4096).max_record(0),
    ] {
        assert!(
            matches!(
                SpscRing::in_heap(&cfg).unwrap_err(),
                Error::InvalidConfig(_)
            ),
            "{cfg:?}"
        );
    }
}

#[test]
fn the_creator_unlinks_on_drop_unless_kept() {
    let name = unique_name("own");
    let ring = make_ring(&name);
    let opened = open(&name).unwrap();
    assert!(!opened.segment().unlinks_on_drop());
    drop(opened);
    open(&name).expect("an opener's drop leaves the name");
    ring.segment().keep();
    drop(ring);
    let kept = open(&name).expect("kept past the creator's drop");
    kept.segment().unlink().unwrap();
    assert!(matches!(
        open(&name).unwrap_err(),
        Error::Os { code, .. } if code.raw() == libc::ENOENT
    ));
}

#[test]
fn permission_denied_is_eacces_naming_shm_open() {
    const NAME: &str = "SHMBUS_TEST_EACCES_NAME";
    if role().is_some() {
        let name = std::env::var(NAME).unwrap();
        // In the unprivileged child: the owner-only object must be refused.
        let err = open(&name).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Os {
                    op: "shm_open",
                    code,
                    ..
                } if code.raw() == libc::EACCES
            ),
            "{err:?}"
        );
        return;
    }
    let name = unique_name("eacces");
    if nix::unistd::geteuid().is_root() {
        // Root bypasses permission bits: check from an unprivileged child instead.
        let _ring =
            SpscRing::create_shm(&name, &SpscConfig::new(4096), &opts().mode(0o600)).unwrap();
        let status = respawn(
            "permission_denied_is_eacces_naming_shm_open",
            "unprivileged",
        )
        .env(NAME, &name)
        .uid(65534)
        .gid(65534)
        .status()
        .expect("spawn unprivileged child");
        assert!(status.success(), "child: {status}");
    } else {
        let _ring =
            SpscRing::create_shm(&name, &SpscConfig::new(4096), &opts().mode(0o000)).unwrap();
        let err = open(&name).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Os {
                    op: "shm_open",
                    code,
                    ..
                } if code.raw() == libc::EACCES
            ),
            "{err:?}"
        );
    }
}

use std::os::unix::process::CommandExt;

#[test]
fn opening_one_ring_kind_as_the_other_is_wrong_kind() {
    use shmbus_ring::{MpmcConfig, MpmcRing};
    let name = unique_name("kinds");
    let _spsc = make_ring(&name);
    let err = MpmcRing::open_shm(&name, &opts()).unwrap_err();
    assert!(
        matches!(&err, Error::WrongKind { found, expected, .. } if found.contains("Spsc") && expected.contains("Mpmc")),
        "{err:?}"
    );
    let name = unique_name("kinds");
    let _mpmc = MpmcRing::create_shm(&name, &MpmcConfig::new(16, 48), &opts()).unwrap();
    let err = open(&name).unwrap_err();
    assert!(
        matches!(&err, Error::WrongKind { found, .. } if found.contains("Mpmc")),
        "{err:?}"
    );
}

#[test]
fn mpmc_slot_geometry_that_disagrees_with_the_object_names_the_field() {
    use shmbus_ring::{MpmcConfig, MpmcRing};
    let cases: &[(&str, usize, u64)] = &[
        ("capacity", offset_of!(SegmentHeader, capacity), 24),
        ("capacity", offset_of!(SegmentHeader, capacity), 1 << 20),
        ("record_limit", offset_of!(SegmentHeader, record_limit), 0),
        (
            "record_limit",
            offset_of!(SegmentHeader, record_limit),
            1 << 30,
        ),
        ("data_len", offset_of!(SegmentHeader, record_limit), 200),
        ("data_len", offset_of!(SegmentHeader, data_len), 4096),
    ];
    for &(field, off, value) in cases {
        let name = unique_name("mpmcfield");
        let _ring = MpmcRing::create_shm(&name, &MpmcConfig::new(16, 48), &opts()).unwrap();
        poke_u64(&name, off, value);
        let err = MpmcRing::open_shm(&name, &opts()).unwrap_err();
        assert!(
            matches!(&err, Error::BadField { field: f, .. } if *f == field),
            "poking offset {off} = {value}: {err:?}"
        );
    }
}
