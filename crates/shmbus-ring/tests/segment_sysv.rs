//! System V segments in one process: created and opened by name, mode bits, ownership and
//! removal, the name shared with POSIX segments, collisions on the derived key, foreign
//! segments at a key, `IPC_PRIVATE` hand-off by id, destroy on last detach, bad companion
//! files, the stale-segment API, and the configurable shm directory. Every test sweeps its
//! segments away when it ends, pass or fail (`SysvSweep`).
#![cfg(not(loom))]

use shmbus_ring::liveness;
use shmbus_ring::segment::{sysv_key, sysv_segments, SysvOptions, KEY_PROBES};
use shmbus_ring::{
    Backing, Error, MpmcConfig, MpmcRing, OpenOptions, Segment, SegmentOptions, SpscConfig,
    SpscRing,
};
use shmbus_testkit::sysv::colliding_names;
use shmbus_testkit::{unique_name, SysvSweep};

/// Whether segment `id` leaves `/proc/sysvipc/shm` within 5 s. Other tests of this binary list
/// System V segments (`sysv_segments` attaches each one read-only for a moment), so the last
/// detach may be one of theirs, a moment later.
fn gone_soon(id: i32) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while proc_entry(id).is_some() {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    true
}

/// Segment `id`'s attach count once it reads `want` (within 5 s), else the last one read:
/// other tests of this binary attach every listed segment for a moment (`gone_soon`), so a
/// count read once may include one of theirs (it failed once in CI reading 4 for 3).
fn nattch_soon(id: i32, want: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let n = proc_entry(id).map(|f| f[6].clone()).unwrap_or_default();
        if n == want || std::time::Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// The `/proc/sysvipc/shm` line of segment `shmid`, split into fields, if it exists.
fn proc_entry(shmid: i32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string("/proc/sysvipc/shm").unwrap();
    text.lines().skip(1).find_map(|l| {
        let f: Vec<String> = l.split_whitespace().map(str::to_string).collect();
        (f.get(1)?.parse::<i32>().ok()? == shmid).then_some(f)
    })
}

fn os_code(e: &Error) -> Option<i32> {
    match e {
        Error::Os { code, .. } => Some(code.raw()),
        _ => None,
    }
}

/// A foreign (non-shmbus) System V segment at `key`, removed when dropped.
struct Foreign(i32);

impl Foreign {
    fn at(key: i32) -> Foreign {
        // SAFETY: shmget takes plain integers.
        let id = unsafe { libc::shmget(key, 8192, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
        assert!(
            id >= 0,
            "shmget({key:#x}): {}",
            std::io::Error::last_os_error()
        );
        Foreign(id)
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        // SAFETY: IPC_RMID reads no buffer.
        unsafe { libc::shmctl(self.0, libc::IPC_RMID, std::ptr::null_mut()) };
    }
}

#[test]
fn a_sysv_segment_is_created_and_opened_by_name_with_its_mode_bits_and_removed_by_its_owner() {
    let name = unique_name("sysv-basic");
    let _sweep = SysvSweep::new(&name);
    let opts = SegmentOptions::default().mode(0o640);
    let owner = Segment::create_sysv(&name, 10_000, &opts, &SysvOptions::new()).unwrap();
    let id = owner.sysv_id().unwrap();
    assert_eq!(owner.len(), 12_288, "rounded up to pages");
    let Backing::SysV {
        name: n,
        key,
        shmid,
    } = owner.backing().clone()
    else {
        panic!("backing {:?}", owner.backing());
    };
    assert_eq!((n.as_deref(), shmid), (Some(name.as_str()), id));
    assert_eq!(
        key,
        sysv_key(&name),
        "the first key probed is the derived one"
    );
    // The kernel's view: the key, the mode bits, one attachment.
    let f = proc_entry(id).expect("listed in /proc/sysvipc/shm");
    assert_eq!(f[0].parse::<i32>().unwrap(), key);
    assert_eq!(
        u32::from_str_radix(&f[2], 8).unwrap() & 0o777,
        0o640,
        "mode bits"
    );
    assert_eq!(nattch_soon(id, "1"), "1", "nattch");
    // The companion file has the same mode bits and the segment's name.
    let companion = format!("/dev/shm{name}");
    let md = std::fs::metadata(&companion).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&md.permissions()) & 0o777,
        0o640
    );
    assert_eq!(md.len(), 4096);
    // Opened by name (the companion), and by key alone.
    let a = Segment::open(&name, &SegmentOptions::default()).unwrap();
    let b = Segment::open_sysv(&name, &SegmentOptions::default()).unwrap();
    assert_eq!((a.sysv_id(), b.sysv_id()), (Some(id), Some(id)));
    assert_eq!(nattch_soon(id, "3"), "3", "nattch");
    // Memory is shared.
    owner
        .atomic_u64(4096)
        .unwrap()
        .store(42, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        b.atomic_u64(4096)
            .unwrap()
            .load(std::sync::atomic::Ordering::Relaxed),
        42
    );
    assert!(sysv_segments()
        .iter()
        .any(|s| s.shmid == id && s.name.as_deref() == Some(&name)));
    // The owner removes it: the name is gone, the attached handles keep the memory.
    drop(owner);
    assert!(std::fs::metadata(&companion).is_err(), "companion removed");
    let e = Segment::open(&name, &SegmentOptions::default()).unwrap_err();
    assert_eq!(os_code(&e), Some(libc::ENOENT), "{e}");
    assert_eq!(
        b.atomic_u64(4096)
            .unwrap()
            .load(std::sync::atomic::Ordering::Relaxed),
        42
    );
    let f = proc_entry(id).expect("still attached twice");
    assert_eq!(f[0], "0", "IPC_RMID resets the key");
    assert_ne!(
        u32::from_str_radix(&f[2], 8).unwrap() & 0o1000,
        0,
        "marked SHM_DEST"
    );
    drop((a, b));
    assert!(gone_soon(id), "freed at the last detach");
}

#[test]
fn every_ring_kind_runs_in_a_sysv_segment_opened_by_name() {
    let name = unique_name("sysv-rings");
    let _sweep = SysvSweep::new(&name);
    let opts = SegmentOptions::default();
    let spsc = format!("{name}-spsc");
    let ring =
        SpscRing::create_sysv(&spsc, &SpscConfig::new(4096), &opts, &SysvOptions::new()).unwrap();
    let peer = SpscRing::open_shm(&spsc, &opts).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = peer.consumer().unwrap();
    for i in 0u32..1000 {
        tx.try_push(&i.to_le_bytes()).unwrap();
        assert_eq!(rx.try_pop_with(<[u8]>::to_vec).unwrap(), i.to_le_bytes());
    }
    // The OFD locks live on the companion file.
    let eps = liveness::endpoints(peer.segment()).unwrap();
    assert_eq!(eps.len(), 2);
    assert!(eps.iter().all(|e| e.locked), "{eps:?}");
    // The header is layout 1.3 and keeps the SysV record after the ring was laid out.
    assert_eq!(
        peer.header().layout_minor,
        shmbus_ring::layout::LAYOUT_MINOR
    );
    assert_ne!(peer.header().reserved[0], 0);

    let mpmc = format!("{name}-mpmc");
    let ring = MpmcRing::create_sysv(
        &mpmc,
        &MpmcConfig::new(64, 64),
        &opts,
        &SysvOptions::new().destroy_on_last_detach(true),
    )
    .unwrap();
    let peer = MpmcRing::open_in(
        Segment::open(&mpmc, &opts).unwrap(),
        &OpenOptions::default(),
    )
    .unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = peer.consumer().unwrap();
    tx.try_push(b"m").unwrap();
    assert_eq!(rx.try_pop_with(<[u8]>::to_vec).unwrap(), b"m");
}

#[test]
fn a_name_is_one_segment_whatever_its_backing() {
    let name = unique_name("sysv-taken");
    let _sweep = SysvSweep::new(&name);
    let opts = SegmentOptions::default();
    let sysv = Segment::create_sysv(&name, 4096, &opts, &SysvOptions::new()).unwrap();
    let e = Segment::create_sysv(&name, 4096, &opts, &SysvOptions::new()).unwrap_err();
    assert_eq!(os_code(&e), Some(libc::EEXIST), "{e}");
    let e = Segment::create(&name, 4096, &opts).unwrap_err();
    assert_eq!(os_code(&e), Some(libc::EEXIST), "{e}");
    drop(sysv);
    let posix = Segment::create(&name, 4096, &opts).unwrap();
    let e = Segment::create_sysv(&name, 4096, &opts, &SysvOptions::new()).unwrap_err();
    assert_eq!(os_code(&e), Some(libc::EEXIST), "{e}");
    // Without a companion the name is only taken among System V segments (by key).
    let e = Segment::create_sysv(&name, 4096, &opts, &SysvOptions::new().companion(false));
    assert!(e.is_ok(), "{e:?}");
    drop(posix);
    // A name too long to record is refused up front.
    let long = format!("/{}", "x".repeat(89));
    assert!(matches!(
        Segment::create_sysv(&long, 4096, &opts, &SysvOptions::new()),
        Err(Error::InvalidName { .. })
    ));
}

#[test]
fn names_colliding_on_the_derived_key_each_find_their_own_segment() {
    let prefix = unique_name("sysv-coll");
    let _sweep = SysvSweep::new(&prefix);
    let (a, b) = colliding_names(&prefix);
    assert_eq!(sysv_key(&a), sysv_key(&b));
    let opts = SegmentOptions::default();
    // No companions: the keys and the recorded names are all there is to tell them apart.
    let no_companion = SysvOptions::new().companion(false);
    let sa = Segment::create_sysv(&a, 4096, &opts, &no_companion).unwrap();
    let sb = Segment::create_sysv(&b, 4096, &opts, &no_companion).unwrap();
    let key_of = |s: &Segment| match s.backing() {
        Backing::SysV { key, .. } => *key,
        other => panic!("{other:?}"),
    };
    assert_eq!(key_of(&sa), sysv_key(&a));
    assert_eq!(
        key_of(&sb),
        sysv_key(&a).wrapping_add(1),
        "the second name probed on"
    );
    assert_eq!(
        Segment::open_sysv(&a, &opts).unwrap().sysv_id(),
        sa.sysv_id()
    );
    assert_eq!(
        Segment::open_sysv(&b, &opts).unwrap().sysv_id(),
        sb.sysv_id()
    );
    // The second name's segment is also reached by the stale-segment API, by name.
    let st = liveness::inspect(&b).unwrap_err();
    assert!(matches!(st, Error::BadMagic { .. }), "no ring in it: {st}");
    // Once the first is gone, the second is still found past the empty key.
    drop(sa);
    assert_eq!(
        Segment::open_sysv(&b, &opts).unwrap().sysv_id(),
        sb.sysv_id()
    );
    assert_eq!(
        os_code(&Segment::open_sysv(&a, &opts).unwrap_err()),
        Some(libc::ENOENT)
    );
}

#[test]
fn foreign_segments_at_the_derived_keys_are_skipped_and_a_full_probe_range_is_a_typed_error() {
    let name = unique_name("sysv-foreign");
    let _sweep = SysvSweep::new(&name);
    let base = sysv_key(&name);
    let opts = SegmentOptions::default();
    let first = Foreign::at(base);
    let seg =
        Segment::create_sysv(&name, 4096, &opts, &SysvOptions::new().companion(false)).unwrap();
    assert!(matches!(seg.backing(), Backing::SysV { key, .. } if *key == base.wrapping_add(1)));
    assert_eq!(
        Segment::open_sysv(&name, &opts).unwrap().sysv_id(),
        seg.sysv_id()
    );
    drop(seg);
    // Every key of the range taken by foreign segments: a KeyCollision naming the first key.
    let _rest: Vec<Foreign> = (1..KEY_PROBES)
        .map(|i| Foreign::at(base.wrapping_add(i)))
        .collect();
    match Segment::create_sysv(&name, 4096, &opts, &SysvOptions::new()) {
        Err(Error::KeyCollision {
            first_key, probes, ..
        }) => {
            assert_eq!((first_key, probes), (base, KEY_PROBES));
        }
        other => panic!("{other:?}"),
    }
    // A foreign segment opened by id is refused, not misread.
    match Segment::open_sysv_id(first.0, &opts) {
        Err(Error::BadField { field, .. }) => assert_eq!(field, "sysv record"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_private_segment_is_handed_over_by_id() {
    let mut sweep = SysvSweep::new("/shmbus-private-none");
    let opts = SegmentOptions::default();
    let cfg = SpscConfig::new(4096);
    let seg = Segment::create_sysv_private(cfg.segment_len(), &opts, &SysvOptions::new()).unwrap();
    let id = seg.sysv_id().unwrap();
    sweep.track(id);
    assert_eq!(proc_entry(id).unwrap()[0], "0", "IPC_PRIVATE");
    let ring = SpscRing::create_in(seg, &cfg).unwrap();
    let peer = SpscRing::open_in(
        Segment::open_sysv_id(id, &opts).unwrap(),
        &OpenOptions::default(),
    )
    .unwrap();
    assert_eq!(peer.segment().target(), format!("sysv:{id}"));
    ring.producer().unwrap().try_push(b"by id").unwrap();
    assert_eq!(
        peer.consumer()
            .unwrap()
            .try_pop_with(<[u8]>::to_vec)
            .unwrap(),
        b"by id"
    );
    let status = liveness::inspect_sysv(id).unwrap();
    assert!(!status.is_stale());
    drop((ring, peer));
    assert!(gone_soon(id), "the owner removed it");
}

#[test]
fn a_destroy_on_last_detach_segment_dies_with_its_last_attachment_and_its_companion_is_reclaimed() {
    let name = unique_name("sysv-destroy");
    let _sweep = SysvSweep::new(&name);
    let opts = SegmentOptions::default();
    let destroy = SysvOptions::new().destroy_on_last_detach(true);
    let seg = Segment::create_sysv(&name, 4096, &opts, &destroy).unwrap();
    let id = seg.sysv_id().unwrap();
    let f = proc_entry(id).unwrap();
    assert_eq!(f[0], "0", "marked at creation: the key is gone");
    let peer = Segment::open(&name, &opts).unwrap();
    seg.keep(); // even a creator that leaves its name behind
    drop(seg);
    assert!(proc_entry(id).is_some(), "the peer still has it");
    drop(peer);
    assert!(gone_soon(id), "freed at the last detach");
    // What is left is a companion naming a segment that is gone: stale, and removable.
    let status = liveness::inspect(&name).unwrap();
    assert!(status.is_stale() && matches!(status.backing, Backing::SysV { .. }));
    // The next create of the name replaces it.
    let again = Segment::create_sysv(&name, 4096, &opts, &destroy).unwrap();
    assert_ne!(again.sysv_id(), Some(id));
    again.keep();
    drop(again);
    let (status, removed) = liveness::remove_if_stale(&name).unwrap();
    assert!(status.is_stale() && removed, "{status:?}");
    assert!(std::fs::metadata(format!("/dev/shm{name}")).is_err());
}

#[test]
fn bad_companion_files_are_typed_errors() {
    let name = unique_name("sysv-badcomp");
    let _sweep = SysvSweep::new(&name);
    let path = format!("/dev/shm{name}");
    let mut page = vec![0u8; 4096];
    page[..8].copy_from_slice(b"shmbusSV");
    page[8..12].copy_from_slice(&7u32.to_le_bytes());
    std::fs::write(&path, &page).unwrap();
    let _rm = RemoveOnDrop(path.clone());
    match Segment::open(&name, &SegmentOptions::default()) {
        Err(Error::BadField { field, .. }) => assert_eq!(field, "companion version"),
        other => panic!("{other:?}"),
    }
    // Version 1, naming a segment that does not exist.
    page[8..12].copy_from_slice(&1u32.to_le_bytes());
    page[12..16].copy_from_slice(&i32::MAX.to_le_bytes());
    std::fs::write(&path, &page).unwrap();
    let e = Segment::open(&name, &SegmentOptions::default()).unwrap_err();
    assert!(
        matches!(os_code(&e), Some(libc::EINVAL | libc::EIDRM)),
        "{e}"
    );
}

struct RemoveOnDrop(String);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn named_segments_live_in_the_configured_shm_directory() {
    let dir = std::env::temp_dir().join(format!("shmbus-dir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let name = unique_name("dir");
    let _sweep = SysvSweep::new(&name);
    let opts = SegmentOptions::default().shm_dir(&dir);
    let posix = SpscRing::create_shm(&name, &SpscConfig::new(4096), &opts).unwrap();
    assert!(dir.join(name.trim_start_matches('/')).exists());
    assert!(std::fs::metadata(format!("/dev/shm{name}")).is_err());
    let peer = SpscRing::open_shm(&name, &opts).unwrap();
    posix.producer().unwrap().try_push(b"x").unwrap();
    assert_eq!(
        peer.consumer()
            .unwrap()
            .try_pop_with(<[u8]>::to_vec)
            .unwrap(),
        b"x"
    );
    drop((posix, peer));
    assert!(
        !dir.join(name.trim_start_matches('/')).exists(),
        "unlinked by its owner"
    );
    // A System V segment's companion goes there too.
    let sysv = Segment::create_sysv(&name, 4096, &opts, &SysvOptions::new()).unwrap();
    assert!(dir.join(name.trim_start_matches('/')).exists());
    assert_eq!(
        Segment::open(&name, &opts).unwrap().sysv_id(),
        sysv.sysv_id()
    );
    drop(sysv);
    std::fs::remove_dir_all(&dir).unwrap();
}
