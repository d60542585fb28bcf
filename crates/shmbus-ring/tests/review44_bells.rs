//! Review of 1b152b7 (doorbells): a dead holder's recorded bell id is trusted by its reaper,
//! and hostile bits in the bitmap.
#![cfg(not(loom))]
use shmbus_ring::bell::Bell;
use shmbus_ring::layout::{ENDPOINT_SIZE, ENDPOINT_TABLE, MAX_ENDPOINTS, PRODUCER_BLOCK};
use shmbus_ring::{PushError, SegmentOptions, SpscConfig, SpscRing};
use shmbus_testkit::{respawn, role, unique_name, ChildGuard};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(30);

/// A peer records a bell id that is not its own (a hostile peer, or a `fork`ed child that
/// uses a `Bell` it inherited from its parent: "a bell shared by endpoints") and dies. Its
/// reaper must not remove the socket path of the bell's LIVE owner, which would leave that
/// owner's async endpoints with no wake-up but their probe timer for the rest of their life.
#[test]
fn review44_the_reaper_does_not_remove_a_live_processs_bell() {
    const TEST: &str = "review44_the_reaper_does_not_remove_a_live_processs_bell";
    if role().is_some() {
        let name = std::env::var("REVIEW44_RING").unwrap();
        let id = u64::from_str_radix(&std::env::var("REVIEW44_ID").unwrap(), 16).unwrap();
        let ring = SpscRing::open_shm(&name, &SegmentOptions::default()).unwrap();
        let mut rx = ring.consumer().unwrap();
        rx.set_bell_id(id);
        println!("ready");
        std::fs::write(std::env::var("REVIEW44_OUT").unwrap(), "ready").unwrap();
        std::thread::sleep(LIMIT);
        return;
    }
    let name = unique_name("rv44-reap-bell");
    let ring =
        SpscRing::create_shm(&name, &SpscConfig::new(1 << 12), &SegmentOptions::default()).unwrap();
    let mut tx = ring.producer().unwrap();
    tx.set_probe_interval(Duration::from_millis(10));
    // The victim: a live bell of this process (an async endpoint's, on any ring).
    let victim = Bell::new().unwrap();
    assert!(victim.path().exists());
    let out = std::env::temp_dir().join(format!("rv44-reap-{}", std::process::id()));
    let _ = std::fs::remove_file(&out);
    let mut child = ChildGuard::spawn(
        respawn(TEST, "peer")
            .env("REVIEW44_RING", &name)
            .env("REVIEW44_ID", format!("{:x}", victim.id()))
            .env("REVIEW44_OUT", &out),
    );
    let deadline = Instant::now() + LIMIT;
    while std::fs::read_to_string(&out).map_or(true, |s| s != "ready") {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = std::fs::remove_file(&out);
    child.kill().unwrap();
    child.wait().unwrap();
    // The producer's probe reaps the dead consumer.
    while tx.try_push(b"x") != Err(PushError::Disconnected) {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        victim.path().exists(),
        "the reaper of a dead peer removed {:?}, the bell of a live process",
        victim.path()
    );
}

/// Hostile bits: every bit of the data bitmap set over and over and arbitrary ids in every
/// entry (one of them a live bell's) cost the honest producer datagrams but no panic, hang
/// or error, and at most a full socket for the bell (non-blocking sends).
#[test]
fn review44_hostile_bitmap_and_ids_cause_no_failure() {
    let name = unique_name("rv44-hostile-bits");
    let ring =
        SpscRing::create_shm(&name, &SpscConfig::new(1 << 12), &SegmentOptions::default()).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    let victim = Bell::new().unwrap();
    // A second mapping of the segment, as a hostile process would have.
    let path = format!("/dev/shm/{}", name.trim_start_matches('/'));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let len = file.metadata().unwrap().len() as usize;
    // SAFETY: a shared mapping of a file we opened read-write; only atomics touch it.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            std::os::fd::AsRawFd::as_raw_fd(&file),
            0,
        )
    };
    assert_ne!(base, libc::MAP_FAILED);
    // The offsets are multiples of 8 from a page-aligned base (below): aligned.
    #[allow(clippy::cast_ptr_alignment)]
    // SAFETY: `base` maps the whole segment (page-aligned), and every `off` used below is a
    // multiple of 8 inside the first page: an aligned, live `AtomicU64`.
    let word = |off: u64| unsafe {
        &*base
            .cast::<u8>()
            .add(off as usize)
            .cast::<std::sync::atomic::AtomicU64>()
    };
    let ids = [0u64, 1, u64::MAX, victim.id(), 0x2e2e_2f2e_2e2f_2e2e];
    let start = Instant::now();
    let mut buf = [0u8; 64];
    for n in 0..2000u64 {
        for i in 0..MAX_ENDPOINTS {
            // Leave the honest endpoints' own entries alone except for their bell id.
            word(ENDPOINT_TABLE + i * ENDPOINT_SIZE + 32).store(
                ids[((i + n) % ids.len() as u64) as usize],
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        word(PRODUCER_BLOCK + 40).store(u64::MAX, std::sync::atomic::Ordering::Relaxed);
        tx.try_push(b"hello").unwrap();
        assert_eq!(rx.try_pop(&mut buf).unwrap(), 5);
    }
    assert!(victim.path().exists());
    assert!(victim.drain());
    eprintln!("2000 hostile pushes in {:?}", start.elapsed());
    // SAFETY: our mapping.
    unsafe { libc::munmap(base, len) };
}

/// A ring shared between users (`SegmentOptions::mode(0o666)`): a producer running as
/// another user must be able to ring a consumer's bell. The bell's socket is bound with the
/// process umask (typically 022: `srwxr-xr-x`), and sending to a Unix socket needs write
/// permission on it, so the other user's datagram fails with EACCES (ignored) and the parked
/// async consumer sleeps until its probe timer (1 s).
#[test]
fn review44_a_peer_of_another_user_can_ring_the_bell() {
    const TEST: &str = "review44_a_peer_of_another_user_can_ring_the_bell";
    if role().is_some() {
        // SAFETY: plain syscalls; this process runs only this test, on one thread.
        unsafe {
            assert_eq!(libc::setgid(65534), 0);
            assert_eq!(libc::setuid(65534), 0);
        }
        let name = std::env::var("REVIEW44_RING").unwrap();
        let ring = SpscRing::open_shm(&name, &SegmentOptions::default()).unwrap();
        let mut tx = ring.producer().unwrap();
        tx.try_push(b"x").unwrap();
        return;
    }
    // SAFETY: a plain syscall.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("needs root to run a child as another user: skipped");
        return;
    }
    let name = unique_name("rv44-other-user");
    let ring = SpscRing::create_shm(
        &name,
        &SpscConfig::new(1 << 12),
        &SegmentOptions::new().mode(0o666),
    )
    .unwrap();
    let mut rx = ring.consumer().unwrap();
    let bell = Bell::new().unwrap();
    rx.set_bell(&bell);
    assert!(rx.arm_bell());
    let mut buf = [0u8; 8];
    assert!(matches!(
        rx.try_pop(&mut buf),
        Err(shmbus_ring::PopError::Empty)
    ));
    let mut child = ChildGuard::spawn(respawn(TEST, "other-user").env("REVIEW44_RING", &name));
    assert!(child.wait_within(LIMIT).success());
    assert_eq!(
        rx.try_pop(&mut buf).unwrap(),
        1,
        "the other user's message arrived"
    );
    assert!(
        bell.drain(),
        "the other user's producer published while the bell was armed, but could not ring \
         it (bell socket mode {:o})",
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(bell.path()).unwrap().permissions()
        )
    );
}

/// A bell path is resolved with symlinks followed: a peer that records an id whose
/// `shmbus-bell.<id>` name it made a symlink (in world-writable `/dev/shm`) makes every
/// honest notifier send datagrams to any Unix datagram socket the notifier may write to
/// (syslog's `/dev/log`, journald, another program's socket), as the notifier's user.
#[test]
fn review44_notifiers_do_not_follow_a_symlinked_bell_name() {
    let dir = std::env::temp_dir().join(format!("rv44-symlink-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let target_path = dir.join("someone-elses.sock");
    let target = std::os::unix::net::UnixDatagram::bind(&target_path).unwrap();
    target.set_nonblocking(true).unwrap();
    let id: u64 = 0x5eed_0000_0000_0000 | u64::from(std::process::id());
    let link = shmbus_ring::bell::path_of(&shmbus_ring::bell::directory(), id);
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&target_path, &link).unwrap();

    let ring = SpscRing::in_heap(&SpscConfig::new(1 << 12)).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    // The "peer": its entry names the symlink and is armed.
    rx.set_bell_id(id);
    assert!(rx.arm_bell());
    tx.try_push(b"x").unwrap();
    let mut buf = [0u8; 8];
    let got = target.recv(&mut buf).is_ok();
    let _ = std::fs::remove_file(&link);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        !got,
        "the notifier sent a datagram through the symlink to {target_path:?}"
    );
}

/// `own_pidns` is cached by pid (44c81e3), on the ground that a forked child "has another
/// pid — except pid 1". Not so: a child in a new PID namespace can have any pid, including
/// its parent's (pids in a new namespace count from 1; here we jump with `ns_last_pid`, as a
/// container supervisor with a small pid gets there by forking). That child inherits the
/// cache, stamps its entry with its PARENT's namespace (not 0, "unknown", as `read_pidns`
/// says: the mounted /proc is not its namespace's), and a peer in the parent's namespace then
/// judges the LIVE child by the parent's pid and start time: dead. Its entry is reaped
/// under it.
#[test]
fn review44_a_child_in_a_new_pid_namespace_with_its_parents_pid_is_not_reaped_alive() {
    const TEST: &str =
        "review44_a_child_in_a_new_pid_namespace_with_its_parents_pid_is_not_reaped_alive";
    if role().as_deref() == Some("nsparent") {
        return ns_parent();
    }
    // SAFETY: a plain syscall.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("needs CAP_SYS_ADMIN: skipped");
        return;
    }
    let name = unique_name("rv44-pidns");
    let ring =
        SpscRing::create_shm(&name, &SpscConfig::new(1 << 12), &SegmentOptions::default()).unwrap();
    let mut tx = ring.producer().unwrap();
    tx.set_probe_interval(Duration::from_millis(5));
    let out = std::env::temp_dir().join(format!("rv44-pidns-{}", std::process::id()));
    let _ = std::fs::remove_file(&out);
    let mut parent = ChildGuard::spawn(
        respawn(TEST, "nsparent")
            .env("REVIEW44_RING", &name)
            .env("REVIEW44_OUT", &out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Ok(s) = std::fs::read_to_string(&out) {
            if s.ends_with('\n') {
                break s;
            }
        }
        if let Some(st) = parent.try_wait().unwrap() {
            panic!("the namespace parent exited early: {st:?}");
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = std::fs::remove_file(&out);
    if status.starts_with("skip") {
        eprintln!("{status}");
        return;
    }
    assert!(status.starts_with("ready"), "{status}");
    eprintln!("{status}");
    let pids: Vec<i32> = status
        .split_whitespace()
        .skip(1)
        .take(2)
        .map(|p| p.parse().unwrap())
        .collect();
    // Kills the grandchild and the namespace's init (host pids) whatever happens.
    struct Kill(Vec<i32>);
    impl Drop for Kill {
        fn drop(&mut self) {
            for &p in &self.0 {
                // SAFETY: plain syscalls on processes this test made.
                unsafe {
                    libc::kill(p, libc::SIGKILL);
                    libc::waitpid(p, std::ptr::null_mut(), libc::WNOHANG);
                }
            }
        }
    }
    let _kill = Kill(pids.clone());
    // R (the grandchild's parent, whose pid the grandchild shares) has exited.
    assert!(parent.wait_within(LIMIT).success());
    // The grandchild (pid N in the new namespace, = its parent's pid outside) holds the
    // consumer and is alive. Probe for a while: it must stay attached.
    let until = Instant::now() + Duration::from_millis(300);
    let mut pushed = 0;
    let mut outcome = Ok(());
    while Instant::now() < until {
        // Fill the ring: a push that finds it full probes the consumers.
        match tx.try_push(b"x") {
            Ok(()) => pushed += 1,
            Err(PushError::Full) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    // Still alive?
    // SAFETY: a plain syscall.
    let alive = unsafe { libc::kill(pids[0], 0) } == 0;
    assert!(alive, "the grandchild died on its own");
    assert_eq!(
        outcome,
        Ok(()),
        "a LIVE consumer in a child PID namespace ({status:?}) was judged dead after {pushed} pushes"
    );
}

/// The respawned process R (pid N): registers an endpoint (filling the `own_pidns` cache),
/// makes a new PID namespace for its children, and forks a child there whose pid is N.
fn ns_parent() {
    let name = std::env::var("REVIEW44_RING").unwrap();
    let out = std::env::var("REVIEW44_OUT").unwrap();
    let report = |s: String| std::fs::write(&out, s + "\n").unwrap();
    let ring = SpscRing::open_shm(&name, &SegmentOptions::default()).unwrap();
    {
        // Registration stamps our PID namespace: the cache now holds (N, ns of R).
        let _probe = ring.consumer().unwrap();
    }
    let n = std::process::id() as i32;
    // SAFETY: plain syscalls; this process runs one test on one thread; children only make
    // syscalls, open the ring and sleep.
    unsafe {
        if libc::unshare(libc::CLONE_NEWPID) != 0 {
            return report(format!(
                "skip: unshare: {}",
                std::io::Error::last_os_error()
            ));
        }
        // The namespace's init: sets the next pid to N and waits.
        let (r, w) = {
            let mut fds = [0; 2];
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            (fds[0], fds[1])
        };
        let init = libc::fork();
        if init == 0 {
            let ok = std::fs::write("/proc/sys/kernel/ns_last_pid", format!("{}", n - 1)).is_ok();
            libc::write(w, [u8::from(ok)].as_ptr().cast(), 1);
            loop {
                libc::pause();
            }
        }
        let mut ok = [0u8];
        libc::read(r, ok.as_mut_ptr().cast(), 1);
        if ok[0] != 1 {
            libc::kill(init, libc::SIGKILL);
            return report("skip: cannot write ns_last_pid".into());
        }
        let (r2, w2) = {
            let mut fds = [0; 2];
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            (fds[0], fds[1])
        };
        let child = libc::fork();
        if child == 0 {
            let me = libc::getpid();
            if me != n {
                libc::write(w2, [0u8].as_ptr().cast(), 1);
                libc::_exit(0);
            }
            let ring = SpscRing::open_shm(&name, &SegmentOptions::default()).unwrap();
            let _rx = ring.consumer().unwrap();
            libc::write(w2, [1u8].as_ptr().cast(), 1);
            std::thread::sleep(LIMIT);
            libc::_exit(0);
        }
        let mut ok = [0u8];
        libc::read(r2, ok.as_mut_ptr().cast(), 1);
        if ok[0] != 1 {
            libc::kill(init, libc::SIGKILL);
            libc::kill(child, libc::SIGKILL);
            return report(format!("skip: the child did not get pid {n}"));
        }
        // R exits now; its child (pid N in the new namespace) lives on, holding the consumer.
        report(format!(
            "ready {child} {init} (child pid {n} in a new namespace = its parent's pid)"
        ));
    }
}

/// `bell::ring` makes its sending socket once per process (a `OnceLock<Option<_>>`): if
/// that first `socket()` fails (EMFILE for a moment), the `None` is kept for good and this
/// process never rings another bell: every async peer it publishes to then waits for its
/// probe timer (1 s) on every message.
#[test]
fn review44_a_failed_first_ring_does_not_disable_ringing_for_good() {
    const TEST: &str = "review44_a_failed_first_ring_does_not_disable_ringing_for_good";
    if role().is_none() {
        let mut child = ChildGuard::spawn(&mut respawn(TEST, "rlimit"));
        assert!(child.wait_within(LIMIT).success(), "see the child's output");
        return;
    }
    let bell = Bell::new().unwrap();
    // SAFETY: plain syscalls on this process's own limit; this process runs one test on one
    // thread.
    unsafe {
        let mut old: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut old), 0);
        // The lowest free descriptor is the number of descriptors we may have: none left.
        let probe = libc::dup(0);
        assert!(probe >= 0);
        libc::close(probe);
        let tight = libc::rlimit {
            rlim_cur: probe as libc::rlim_t,
            rlim_max: old.rlim_max,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &tight), 0);
        // A notifier's first ring, while the process is out of descriptors for a moment.
        shmbus_ring::bell::ring(bell.id());
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &old), 0);
    }
    assert!(!bell.drain());
    // Descriptors are available again: the next ring must arrive.
    shmbus_ring::bell::ring(bell.id());
    assert!(
        bell.drain(),
        "ring() stays disabled after one failed socket()"
    );
}

/// "A holder that detaches leaves its id for the next registrant to overwrite" (L3): but a
/// registrant that dies after claiming the entry and before its stamp (L2–L3) is reaped with
/// the PREVIOUS holder's id still in the entry, and `forget_bell` removes that bell's path.
/// The previous holder detached but lives on, and its bell serves its other endpoints ("a
/// live process may share a bell between endpoints", bell.rs / registration.rs).
#[test]
fn review44_reaping_a_dead_registrant_does_not_remove_the_previous_holders_bell() {
    const TEST: &str =
        "review44_reaping_a_dead_registrant_does_not_remove_the_previous_holders_bell";
    if role().is_some() {
        shmbus_ring::crashpoint::arm_from_env();
        let name = std::env::var("REVIEW44_RING").unwrap();
        let ring = SpscRing::open_shm(&name, &SegmentOptions::default()).unwrap();
        // Parks for ever at the crash point.
        let _rx = ring.consumer();
        unreachable!("the crash point was not reached");
    }
    let name = unique_name("rv44-registrant");
    let ring =
        SpscRing::create_shm(&name, &SpscConfig::new(1 << 12), &SegmentOptions::default()).unwrap();
    let mut tx = ring.producer().unwrap();
    tx.set_probe_interval(Duration::from_millis(5));
    // This process's bell, shared by two of its consumers; one of them detaches.
    let bell = Bell::new().unwrap();
    let other_ring = SpscRing::in_heap(&SpscConfig::new(1 << 12)).unwrap();
    let mut keeps_it = other_ring.consumer().unwrap();
    keeps_it.set_bell(&bell);
    {
        let mut rx = ring.consumer().unwrap();
        rx.set_bell(&bell);
    }
    let mut child = ChildGuard::spawn(
        respawn(TEST, "registrant")
            .env("REVIEW44_RING", &name)
            .env("SHMBUS_CRASHPOINT", "register.entry")
            .stderr(std::process::Stdio::piped()),
    );
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    loop {
        let line = lines.next().expect("the child's stderr").unwrap();
        if line.starts_with("shmbus-crashpoint: register.entry") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The producer's probe (on a full ring) reaps the dead registrant.
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline {
        match tx.try_push(b"x") {
            Ok(()) | Err(PushError::Full | PushError::Disconnected) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(
        bell.path().exists(),
        "reaping a dead registrant removed {:?}, a live process's bell",
        bell.path()
    );
}
