//! System V rings and real processes killed with SIGKILL: what is left afterwards.
//!
//! - Destroy on last detach: a creator and its peers, all killed (SIGKILL) mid-stream, leave no
//!   System V segment behind (`/proc/sysvipc/shm` and `ipcs -m` show nothing of it).
//! - Persistent: the same kill leaves a stale segment, which the stale-segment API reports
//!   (`scan`, `inspect`) and removes (`remove_if_stale`), and a new ring of the name follows.
//! - Larger than the shm directory: with a 1 MiB tmpfs as the shm directory (root only; the
//!   test says it skipped otherwise), a 64 MiB POSIX ring fails with `ENOSPC` at creation and a
//!   64 MiB System V ring (its companion file in that directory) streams across processes.
#![cfg(not(loom))]

use shmbus_ring::liveness;
use shmbus_ring::segment::{SysvOptions, SHM_DIR_ENV};
use shmbus_ring::{
    Backing, Error, MpmcConfig, MpmcRing, PopError, PushError, SegmentOptions, SpscConfig, SpscRing,
};
use shmbus_testkit::sysv::{ipcs_lists, listed};
use shmbus_testkit::{respawn, role, unique_name, ChildGuard, SysvSweep};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

const NAME: &str = "SHMBUS_SYSV_NAME";
const KIND: &str = "SHMBUS_SYSV_KIND";
const DESTROY: &str = "SHMBUS_SYSV_DESTROY";
const COUNT: &str = "SHMBUS_SYSV_COUNT";
const BOUND: Duration = Duration::from_secs(20);

/// A child's part: `creator` makes the ring (printing its shmid) and produces forever; a
/// `producer` opens it by name and produces forever; a `consumer` opens it and consumes
/// forever. The parent kills them all with SIGKILL.
fn child(role: &str) {
    let name = std::env::var(NAME).unwrap();
    let destroy = std::env::var(DESTROY).as_deref() == Ok("1");
    let mpmc = std::env::var(KIND).as_deref() == Ok("mpmc");
    let opts = SegmentOptions::default();
    let sysv = SysvOptions::new().destroy_on_last_detach(destroy);
    enum R {
        S(SpscRing),
        M(MpmcRing),
    }
    let ring = match (role, mpmc) {
        ("creator", false) => {
            R::S(SpscRing::create_sysv(&name, &SpscConfig::new(4096), &opts, &sysv).unwrap())
        }
        ("creator", true) => {
            R::M(MpmcRing::create_sysv(&name, &MpmcConfig::new(64, 32), &opts, &sysv).unwrap())
        }
        (_, false) => R::S(SpscRing::open_shm(&name, &opts).unwrap()),
        (_, true) => R::M(MpmcRing::open_shm(&name, &opts).unwrap()),
    };
    let seg = match &ring {
        R::S(r) => r.segment(),
        R::M(r) => r.segment(),
    };
    if role == "creator" {
        // Nobody removes it on the way out: only SIGKILL ends these processes.
        seg.keep();
    }
    println!("SHMID {}", seg.sysv_id().unwrap());
    let mut i = 0u64;
    if role == "consumer" {
        let mut buf = Vec::new();
        let (mut rx_s, mut rx_m) = match &ring {
            R::S(r) => (Some(r.consumer().unwrap()), None),
            R::M(r) => (None, Some(r.consumer().unwrap())),
        };
        loop {
            let r = match (&mut rx_s, &mut rx_m) {
                (Some(rx), _) => rx.try_pop_vec(&mut buf).map(|_| ()),
                (_, Some(rx)) => rx.try_pop_vec(&mut buf).map(|_| ()),
                _ => unreachable!(),
            };
            match r {
                Ok(()) | Err(PopError::Empty | PopError::Disconnected) => {}
                Err(e) => panic!("consumer: {e}"),
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    let mut tx_s = None;
    let mut tx_m = None;
    match &ring {
        R::S(r) => tx_s = Some(r.producer().unwrap()),
        R::M(r) => tx_m = Some(r.producer().unwrap()),
    }
    loop {
        i += 1;
        let r = match (&mut tx_s, &mut tx_m) {
            (Some(tx), _) => tx.try_push(&i.to_le_bytes()),
            (_, Some(tx)) => tx.try_push(&i.to_le_bytes()),
            _ => unreachable!(),
        };
        match r {
            Ok(()) | Err(PushError::Full | PushError::Disconnected) => {}
            Err(e) => panic!("producer: {e}"),
        }
        std::thread::sleep(Duration::from_micros(20));
    }
}

/// Spawns `role` of `test` on ring `name` and waits for it to print the segment's id.
fn spawn(test: &str, role: &str, name: &str, mpmc: bool, destroy: bool) -> (ChildGuard, i32) {
    let mut c = ChildGuard::spawn(
        respawn(test, role)
            .env(NAME, name)
            .env(KIND, if mpmc { "mpmc" } else { "spsc" })
            .env(DESTROY, if destroy { "1" } else { "0" })
            .stdout(Stdio::piped()),
    );
    let mut out = BufReader::new(c.stdout.take().unwrap());
    let start = Instant::now();
    let mut line = String::new();
    loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "{role} exited early");
        if let Some(at) = line.find("SHMID ") {
            let id = line[at + 6..].trim().parse().unwrap();
            // Keep reading in the background so the child never blocks on a full pipe.
            std::thread::spawn(move || for _ in out.lines() {});
            return (c, id);
        }
        assert!(start.elapsed() < BOUND, "{role} printed no id");
    }
}

/// A creator, a producer and a consumer process on one System V ring of `kind`, left to stream for
/// a while, then all killed with SIGKILL. Returns the segment id and the ring name.
fn kill_them_all(test: &str, mpmc: bool, destroy: bool) -> (i32, String) {
    let name = unique_name("sysv-kill");
    let (creator, id) = spawn(test, "creator", &name, mpmc, destroy);
    let mut all = vec![creator];
    let peers: &[&str] = if mpmc {
        &["consumer", "producer"]
    } else {
        &["consumer"]
    };
    for role in peers {
        let (c, peer_id) = spawn(test, role, &name, mpmc, destroy);
        assert_eq!(
            peer_id, id,
            "the {role} opened the creator's segment by name"
        );
        all.push(c);
    }
    std::thread::sleep(Duration::from_millis(100));
    for mut c in all {
        assert!(
            c.try_wait().unwrap().is_none(),
            "a process exited before the kill"
        );
        c.kill().unwrap();
        c.wait().unwrap();
    }
    (id, name)
}

#[test]
fn destroy_on_last_detach_leaves_no_segment_after_every_process_is_sigkilled() {
    const TEST: &str = "destroy_on_last_detach_leaves_no_segment_after_every_process_is_sigkilled";
    if let Some(r) = role() {
        child(&r);
        return;
    }
    for mpmc in [false, true] {
        let (id, name) = kill_them_all(TEST, mpmc, true);
        let _sweep = SysvSweep::new(&name);
        let start = Instant::now();
        while listed(id) {
            assert!(
                start.elapsed() < BOUND,
                "segment {id} outlived every process"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_ne!(ipcs_lists(id), Some(true), "ipcs -m still shows {id}");
        // The companion file is all that is left: the stale-segment API reports and removes it.
        let (status, removed) = liveness::remove_if_stale(&name).unwrap();
        assert!(status.is_stale() && removed, "{status:?}");
    }
}

#[test]
fn a_persistent_sysv_ring_left_by_sigkilled_processes_is_found_stale_and_reaped() {
    const TEST: &str =
        "a_persistent_sysv_ring_left_by_sigkilled_processes_is_found_stale_and_reaped";
    if let Some(r) = role() {
        child(&r);
        return;
    }
    for mpmc in [false, true] {
        let (id, name) = kill_them_all(TEST, mpmc, false);
        let _sweep = SysvSweep::new(&name);
        assert!(listed(id), "a persistent segment outlives its processes");
        // `shmbus ls`: the scan of the shm directory finds it by name, as a System V segment.
        let found = liveness::scan(name.trim_start_matches('/'));
        assert_eq!(found.len(), 1, "{found:?}");
        let status = found[0].1.as_ref().unwrap();
        assert!(matches!(status.backing, Backing::SysV { shmid, .. } if shmid == id));
        assert!(status.is_stale(), "{status:?}");
        // `shmbus gc`.
        let (_, removed) = liveness::remove_if_stale(&name).unwrap();
        assert!(removed);
        assert!(!listed(id), "IPC_RMID with nobody attached frees it");
        assert!(std::fs::metadata(format!("/dev/shm{name}")).is_err());
        // The name is free again.
        let again = SpscRing::create_sysv(
            &name,
            &SpscConfig::new(4096),
            &SegmentOptions::default(),
            &SysvOptions::new(),
        )
        .unwrap();
        assert_ne!(again.segment().sysv_id(), Some(id));
    }
}

/// Unmounts the directory when dropped.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn a_sysv_ring_larger_than_the_shm_directory_works_where_a_posix_one_fails_with_enospc() {
    const TEST: &str =
        "a_sysv_ring_larger_than_the_shm_directory_works_where_a_posix_one_fails_with_enospc";
    const LEN: u64 = 64 << 20;
    if role().is_some() {
        // The consumer: the shm directory comes from the environment (SHMBUS_DIR).
        let name = std::env::var(NAME).unwrap();
        let count: u64 = std::env::var(COUNT).unwrap().parse().unwrap();
        let ring = SpscRing::open_shm(&name, &SegmentOptions::default()).unwrap();
        let mut rx = ring.consumer().unwrap();
        let mut next = 0u64;
        let start = Instant::now();
        while next < count {
            match rx.try_pop_with(|b| u64::from_le_bytes(b[..8].try_into().unwrap())) {
                Ok(v) => {
                    assert_eq!(v, next);
                    next += 1;
                }
                Err(PopError::Empty) => std::hint::spin_loop(),
                Err(e) => panic!("{e}"),
            }
            assert!(start.elapsed() < BOUND);
        }
        return;
    }
    let dir = std::env::temp_dir().join(format!("shmbus-small-shm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mounted = std::process::Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=1m",
            "shmbus-small",
            dir.to_str().unwrap(),
        ])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        let _ = std::fs::remove_dir(&dir);
        eprintln!("skipped: cannot mount a 1 MiB tmpfs here (needs root, or CAP_SYS_ADMIN)");
        return;
    }
    let _mount = Mount(dir.clone());
    let name = unique_name("sysv-big");
    let _sweep = SysvSweep::new(&name);
    let opts = SegmentOptions::default().shm_dir(&dir);
    let cfg = SpscConfig::new(LEN);
    match SpscRing::create_shm(&name, &cfg, &opts) {
        Err(Error::Os { op, code, .. }) => {
            assert_eq!(code.raw(), libc::ENOSPC, "{op}");
            assert_eq!(op, "posix_fallocate");
        }
        other => panic!("a 64 MiB POSIX ring in a 1 MiB directory: {other:?}"),
    }
    assert!(
        std::fs::read_dir(&dir).unwrap().next().is_none(),
        "the failed create left its object behind"
    );
    let ring = SpscRing::create_sysv(&name, &cfg, &opts, &SysvOptions::new()).unwrap();
    assert!(ring.segment().len() as u64 > LEN);
    let count = 200_000u64;
    let mut child = ChildGuard::spawn(
        respawn(TEST, "consumer")
            .env(NAME, &name)
            .env(COUNT, count.to_string())
            .env(SHM_DIR_ENV, &dir),
    );
    let mut tx = ring.producer().unwrap();
    let start = Instant::now();
    let mut i = 0u64;
    while i < count {
        match tx.try_push(&i.to_le_bytes()) {
            Ok(()) => i += 1,
            Err(PushError::Full) => std::hint::spin_loop(),
            Err(e) => panic!("{e}"),
        }
        assert!(start.elapsed() < BOUND);
    }
    assert!(
        child.wait_within(BOUND).success(),
        "the consumer process failed"
    );
}

#[test]
fn a_process_the_mode_bits_refuse_gets_a_typed_permission_error() {
    const TEST: &str = "a_process_the_mode_bits_refuse_gets_a_typed_permission_error";
    if role().is_some() {
        // The stranger: another user (nobody), opening by name and by id.
        // SAFETY: setuid takes a plain integer; this process runs one thread here (libtest's
        // main thread runs the test with --test-threads=1).
        assert_eq!(unsafe { libc::setuid(65534) }, 0, "setuid(nobody)");
        let name = std::env::var(NAME).unwrap();
        let id: i32 = std::env::var(COUNT).unwrap().parse().unwrap();
        for e in [
            SpscRing::open_shm(&name, &SegmentOptions::default()).unwrap_err(),
            shmbus_ring::Segment::open_sysv_id(id, &SegmentOptions::default()).unwrap_err(),
        ] {
            match e {
                Error::Os { code, op, .. } => {
                    assert_eq!(code.raw(), libc::EACCES, "{op}");
                    println!("REFUSED {op}");
                }
                other => panic!("{other:?}"),
            }
        }
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to run a child as another user");
        return;
    }
    let name = unique_name("sysv-perm");
    let _sweep = SysvSweep::new(&name);
    let ring = SpscRing::create_sysv(
        &name,
        &SpscConfig::new(4096),
        &SegmentOptions::default().mode(0o600),
        &SysvOptions::new(),
    )
    .unwrap();
    let id = ring.segment().sysv_id().unwrap();
    let out = respawn(TEST, "stranger")
        .env(NAME, &name)
        .env(COUNT, id.to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("REFUSED shm_open") && text.contains("REFUSED shmat"),
        "{text}"
    );
}
