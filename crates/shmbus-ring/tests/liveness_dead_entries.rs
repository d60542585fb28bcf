//! Dead entries: every entry state a crash can leave is reclaimed, and a table full of dead
//! entries never refuses a new endpoint (issue 13).
//!
//! A child process (this test binary, re-spawned) attaches endpoints and then, optionally, is
//! parked at a crash point of the registration protocol (`shmbus_ring::crashpoint`); the parent
//! SIGKILLs it. The parent, whose process lives on (so `remove_if_stale` cannot help), must then
//! attach as many endpoints as the table has entries, every dead entry reclaimed on the way:
//! by registration itself when no endpoint of the parent's is there to probe, or by a live
//! endpoint's probe.
#![cfg(not(loom))]

use shmbus_ring::layout::MAX_ENDPOINTS;
use shmbus_ring::liveness::{self, Vitality};
use shmbus_ring::segment::SysvOptions;
use shmbus_ring::{crashpoint, MpmcConfig, MpmcRing, SegmentOptions, SpscRing};
use shmbus_testkit::{respawn, role, unique_name, ChildGuard};
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const NAME: &str = "SHMBUS_DEAD_NAME";
const POINT: &str = "SHMBUS_DEAD_POINT";
const COUNT: &str = "SHMBUS_DEAD_COUNT";
const KIND: &str = "SHMBUS_DEAD_KIND";
/// Behaviour, not speed: generous for a loaded 2-core machine (the times are printed).
const BOUND: Duration = Duration::from_secs(10);

/// The child: attaches `COUNT` endpoints (alternately consumers and producers on MPMC; on
/// SPSC, the consumer), then runs into the crash point `POINT` if one is named (a further
/// registration for `register.*`, dropping one endpoint for `unregister.*`), else reports
/// `ready` and waits to be killed.
fn child() {
    let name = std::env::var(NAME).unwrap();
    let point = std::env::var(POINT).unwrap_or_default();
    let count: usize = std::env::var(COUNT).unwrap().parse().unwrap();
    let opts = SegmentOptions::default();
    let mut keep: Vec<Box<dyn std::any::Any>> = Vec::new();
    if std::env::var(KIND).unwrap() == "spsc" {
        let ring = SpscRing::open_shm(&name, &opts).unwrap();
        if point.starts_with("register.") {
            crashpoint::arm(&point);
        }
        let c = ring.consumer().unwrap();
        if point.starts_with("unregister.") {
            crashpoint::arm(&point);
            drop(c);
        } else {
            keep.push(Box::new(c));
        }
    } else {
        let ring = MpmcRing::open_shm(&name, &opts).unwrap();
        let producers_only = std::env::var(KIND).unwrap() == "mpmc-producers";
        for i in 0..count {
            if i % 2 == 0 && !producers_only {
                keep.push(Box::new(ring.consumer().unwrap()));
            } else {
                keep.push(Box::new(ring.producer().unwrap()));
            }
        }
        if point.starts_with("register.") {
            crashpoint::arm(&point);
            keep.push(Box::new(ring.producer().unwrap()));
        } else if point.starts_with("unregister.") {
            crashpoint::arm(&point);
            drop(keep.pop());
        } else if point == "fork" {
            // A grandchild inherits every endpoint's lock descriptor (keeping the OFD locks
            // held) and outlives us by a few seconds, doing nothing.
            // SAFETY: the child of `fork` only calls the async-signal-safe `sleep` and
            // `_exit`.
            unsafe {
                if libc::fork() == 0 {
                    libc::sleep(20);
                    libc::_exit(0);
                }
            }
        }
    }
    println!("ready");
    std::io::stdout().flush().unwrap();
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Spawns the child for `test` and waits until it is parked at its crash point (or ready, with
/// no point); then SIGKILLs it.
fn run_and_kill(test: &str, kind: &str, name: &str, count: usize, point: &str) {
    let mut child = ChildGuard::spawn(
        respawn(test, "victim")
            .env(NAME, name)
            .env(POINT, point)
            .env(COUNT, count.to_string())
            .env(KIND, kind)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let (tx, parked) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            // libtest may print "test NAME ... " on the same line first.
            if line.ends_with("ready") {
                let _ = tx2.send("ready".to_string());
            }
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if line.starts_with("shmbus-crashpoint: ") {
                let _ = tx.send(line);
            } else {
                eprintln!("victim: {line}");
            }
        }
    });
    let marker = parked
        .recv_timeout(Duration::from_secs(60))
        .expect("the victim never reached its crash point");
    if point.is_empty() || point == "fork" {
        assert_eq!(marker, "ready");
    } else {
        assert_eq!(marker, format!("shmbus-crashpoint: {point}"));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// After the victim died: the parent attaches an endpoint in every entry of the table, within
/// the bound, every attach retried only while it reports `TooManyEndpoints`.
fn attach_everything(ring: &MpmcRing, what: &str) {
    let start = Instant::now();
    let mut held = Vec::new();
    for i in 0..MAX_ENDPOINTS {
        loop {
            let r = if i % 2 == 0 {
                ring.consumer()
                    .map(|c| Box::new(c) as Box<dyn std::any::Any>)
            } else {
                ring.producer()
                    .map(|p| Box::new(p) as Box<dyn std::any::Any>)
            };
            match r {
                Ok(ep) => {
                    held.push(ep);
                    break;
                }
                Err(e) => {
                    assert!(
                        start.elapsed() < BOUND,
                        "{what}: endpoint {i} still refused after {:?}: {e}",
                        start.elapsed()
                    );
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    eprintln!(
        "{what}: {} endpoints attached in {:?}",
        held.len(),
        start.elapsed()
    );
    let eps = liveness::endpoints(ring.segment()).unwrap();
    assert_eq!(eps.len(), MAX_ENDPOINTS as usize, "{what}: {eps:?}");
    assert!(
        eps.iter()
            .all(|e| e.vitality == Vitality::Alive && e.pid == std::process::id()),
        "{what}: {eps:?}"
    );
}

#[test]
fn a_table_full_of_dead_endpoints_never_refuses_a_new_one() {
    const TEST: &str = "a_table_full_of_dead_endpoints_never_refuses_a_new_one";
    if role().is_some() {
        return child();
    }
    let name = unique_name("dead-full");
    let ring =
        MpmcRing::create_shm(&name, &MpmcConfig::new(16, 8), &SegmentOptions::default()).unwrap();
    run_and_kill(TEST, "mpmc", &name, MAX_ENDPOINTS as usize, "");
    // The creator lives: the segment is not stale, and nobody else probes. Registration
    // itself must reclaim.
    attach_everything(&ring, "55 dead endpoints");
}

/// Every registration and unregistration step a crash can stop at, with the rest of the table
/// full of dead endpoints: registration must reclaim all of them, including the one left
/// half-registered or half-detached.
#[test]
fn an_endpoint_killed_at_any_registration_step_leaves_a_reclaimable_entry() {
    const TEST: &str = "an_endpoint_killed_at_any_registration_step_leaves_a_reclaimable_entry";
    if role().is_some() {
        return child();
    }
    let points = [
        "register.entry",
        "register.claimed",
        "register.locked",
        "register.active",
        "unregister.start",
        "unregister.leaving",
        "unregister.unlisted",
    ];
    // In POSIX shm, and in System V shm (its endpoints' locks on the companion file).
    for (point, sysv) in points.iter().flat_map(|p| [(*p, false), (*p, true)]) {
        let name = unique_name("dead-step");
        let (cfg, opts) = (MpmcConfig::new(16, 8), SegmentOptions::default());
        let ring = if sysv {
            MpmcRing::create_sysv(&name, &cfg, &opts, &SysvOptions::new())
        } else {
            MpmcRing::create_shm(&name, &cfg, &opts)
        }
        .unwrap();
        let count = if point.starts_with("register.") {
            MAX_ENDPOINTS as usize - 1
        } else {
            MAX_ENDPOINTS as usize
        };
        run_and_kill(TEST, "mpmc", &name, count, point);
        attach_everything(&ring, point);
    }
}

/// The same windows found by a live endpoint's probe: a consumer waiting on an empty ring
/// reaps the dead producer's entry, and sees `Disconnected` once it is gone.
#[test]
fn a_waiting_endpoint_reaps_an_entry_left_at_any_registration_step() {
    const TEST: &str = "a_waiting_endpoint_reaps_an_entry_left_at_any_registration_step";
    if role().is_some() {
        return child();
    }
    for point in [
        "register.entry",
        "register.claimed",
        "register.active",
        "unregister.leaving",
        "unregister.unlisted",
    ] {
        let name = unique_name("dead-probe");
        let ring = MpmcRing::create_shm(&name, &MpmcConfig::new(16, 8), &SegmentOptions::default())
            .unwrap();
        let mut rx = ring.consumer().unwrap();
        rx.set_probe_interval(Duration::from_millis(5));
        let count = usize::from(point.starts_with("unregister."));
        run_and_kill(TEST, "mpmc-producers", &name, count, point);
        let start = Instant::now();
        loop {
            let r = rx.pop_timeout(&mut [0u8; 64], Duration::from_millis(10));
            let eps = liveness::endpoints(ring.segment()).unwrap();
            if eps.len() == 1 {
                assert_eq!(eps[0].pid, std::process::id(), "{point}: {eps:?}");
                break;
            }
            assert!(
                start.elapsed() < BOUND,
                "{point}: the dead entry was never reaped ({r:?}): {eps:?}"
            );
        }
        eprintln!("{point}: reaped in {:?}", start.elapsed());
    }
}

/// A consumer that dies detaching after clearing its roster bit leaves its producer seeing
/// `Disconnected`; the producer still probes (on that path too), so the entry is reaped.
#[test]
fn a_disconnected_producer_still_reaps_an_entry_left_mid_detach() {
    const TEST: &str = "a_disconnected_producer_still_reaps_an_entry_left_mid_detach";
    if role().is_some() {
        return child();
    }
    for point in ["unregister.leaving", "unregister.unlisted"] {
        let name = unique_name("dead-gone");
        let ring = SpscRing::create_shm(
            &name,
            &shmbus_ring::SpscConfig::new(1024),
            &SegmentOptions::default(),
        )
        .unwrap();
        let mut tx = ring.producer().unwrap();
        tx.set_probe_interval(Duration::from_millis(5));
        run_and_kill(TEST, "spsc", &name, 1, point);
        let start = Instant::now();
        loop {
            let r = tx.try_push(&[0u8; 8]);
            let eps = liveness::endpoints(ring.segment()).unwrap();
            if eps.len() == 1 {
                assert_eq!(eps[0].pid, std::process::id(), "{point}: {eps:?}");
                break;
            }
            assert!(
                start.elapsed() < BOUND,
                "{point}: the dead entry was never reaped ({r:?}): {eps:?}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        eprintln!("{point}: reaped in {:?}", start.elapsed());
        assert_eq!(
            tx.try_push(&[0u8; 8]),
            Err(shmbus_ring::PushError::Disconnected)
        );
    }
}

/// Found by review: the dead endpoints' locks are still held, by descriptors a `fork`ed child
/// of theirs inherited, so no registrant can take them; the entries are dead by pid and start
/// time. Registration must still reclaim one (without a lock) rather than refuse.
#[test]
fn a_table_of_dead_entries_whose_locks_a_forked_child_holds_never_refuses() {
    const TEST: &str = "a_table_of_dead_entries_whose_locks_a_forked_child_holds_never_refuses";
    if role().is_some() {
        return child();
    }
    let name = unique_name("dead-fork");
    let ring =
        MpmcRing::create_shm(&name, &MpmcConfig::new(16, 8), &SegmentOptions::default()).unwrap();
    run_and_kill(TEST, "mpmc", &name, MAX_ENDPOINTS as usize, "fork");
    let eps = liveness::endpoints(ring.segment()).unwrap();
    assert!(eps.iter().all(|e| e.vitality == Vitality::Dead), "{eps:?}");
    let start = Instant::now();
    let rx = ring.consumer();
    eprintln!(
        "attach after {:?}: {:?}",
        start.elapsed(),
        rx.as_ref().err()
    );
    assert!(
        rx.is_ok(),
        "a table of dead entries refused: {:?}",
        rx.err()
    );
}
