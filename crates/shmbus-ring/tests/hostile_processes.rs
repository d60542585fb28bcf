//! Real hostile processes: a second process (this test binary, re-spawned with a role in the
//! environment — never a `fork` of the threaded test process) maps a live segment and
//! scribbles random words into its header, control blocks, endpoint table and data, while
//! honest senders and receivers keep working on the ring in this process. The honest side must
//! get errors, never crash or hang; the run is bounded and the child is killed if anything
//! fails. After the scribbler stopped, every honest endpoint must within `SETTLE` either make
//! progress or report something (`Corrupt`, `Disconnected`, a refused attach): never only
//! `Full`/`Empty` on a ring wedged by the garbage (issue 13, item 2). (Garbage written from within the test process is in `corruption_live_ring.rs`; the
//! fuzz target's hostile driver in `fuzz_invariants.rs`.)
#![cfg(not(loom))]

use shmbus_ring::{
    MpmcConfig, MpmcRing, PopError, PushError, Segment, SegmentOptions, SpscConfig, SpscRing,
};
use shmbus_testkit::rng::{seed_from_env, Rng};
use shmbus_testkit::{respawn, role, unique_name, ChildGuard};
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const NAME: &str = "SHMBUS_HOSTILE_NAME";
const SEED: &str = "SHMBUS_HOSTILE_SEED";
const MILLIS: &str = "SHMBUS_HOSTILE_MILLIS";

/// How long the honest side runs while the scribbler writes (it runs on after it, too).
const SCRIBBLE: Duration = Duration::from_millis(2500);
/// After the scribbler stopped (and the honest side ran on a while), how long each honest
/// endpoint has to make progress or report something.
const SETTLE: Duration = Duration::from_secs(2);
/// The whole test, child included, must finish within this.
const DEADLINE: Duration = Duration::from_secs(60);

fn seed() -> u64 {
    seed_from_env(SEED)
}

/// The hostile process: maps the segment by name and, for `millis`, stores random words at
/// random 8-byte-aligned offsets — a quarter into the first page (header, control blocks,
/// endpoint table), the rest into the data — some random, some small, some valid-looking.
fn scribbler() {
    let name = std::env::var(NAME).unwrap();
    let millis: u64 = std::env::var(MILLIS).unwrap().parse().unwrap();
    let mut rng = Rng::new(seed());
    let seg = Segment::open(&name, &SegmentOptions::default()).expect("hostile open");
    let words = seg.len() as u64 / 8;
    let end = Instant::now() + Duration::from_millis(millis);
    let mut writes = 0u64;
    while Instant::now() < end {
        for _ in 0..64 {
            let word = if rng.below(4) == 0 {
                rng.below(512)
            } else {
                512 + rng.below(words - 512)
            };
            // The SPSC owner words: garbage there only refuses attaching (tested elsewhere),
            // and would keep the honest side from exercising the ring at all.
            if word == 33 || word == 49 {
                continue;
            }
            let value = match rng.below(4) {
                0 => rng.next_u64(),
                1 => rng.below(4096),
                2 => rng.below(200) | (1 + rng.below(3)) << 32, // a plausible record header
                _ => rng.below(1 << 16) << 8 | rng.below(4),    // a plausible slot word
            };
            seg.atomic_u64(word as usize * 8)
                .expect("aligned, in bounds, writable")
                .store(value, Ordering::Relaxed);
            writes += 1;
        }
        std::thread::sleep(Duration::from_micros(50));
    }
    println!("SCRIBBLES {writes}");
}

/// What the honest side saw.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    /// Full, Empty, `TooLarge`, `BufferTooSmall`, or Disconnected (the roster can be scribbled on).
    empty_or_full: u64,
    corrupt: u64,
    other: u64,
    attach_errors: u64,
    /// How the endpoint ended the settle phase, and when.
    settled: Option<(Settled, Duration)>,
}

/// What an honest endpoint answered after the scribbler stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    /// A message went through.
    Progress,
    /// `Corrupt`.
    Corrupt,
    /// `Disconnected`: the roster was scribbled on, or every peer left.
    Disconnected,
    /// Attaching anew was refused (the endpoint had been dropped).
    AttachRefused,
    /// Only `Full` / `Empty` for the whole settle bound: a wedge nobody reports.
    Silent,
}

/// The settle phase: runs `attempt` until it gives an answer or `SETTLE` passes.
fn settle(mut attempt: impl FnMut() -> Option<Settled>) -> (Settled, Duration) {
    let start = Instant::now();
    while start.elapsed() < SETTLE {
        if let Some(s) = attempt() {
            return (s, start.elapsed());
        }
        std::thread::yield_now();
    }
    (Settled::Silent, start.elapsed())
}

fn settled_push(r: Result<(), PushError>) -> Option<Settled> {
    match r {
        Ok(()) => Some(Settled::Progress),
        Err(PushError::Corrupt(_)) => Some(Settled::Corrupt),
        Err(PushError::Disconnected) => Some(Settled::Disconnected),
        Err(_) => None,
    }
}

fn settled_pop(r: Result<usize, PopError>) -> Option<Settled> {
    match r {
        Ok(_) => Some(Settled::Progress),
        Err(PopError::Corrupt(_)) => Some(Settled::Corrupt),
        Err(PopError::Disconnected) => Some(Settled::Disconnected),
        Err(_) => None,
    }
}

fn honest_run(
    label: &'static str,
    until: Instant,
    f: impl FnOnce(Instant) -> Tally + Send + 'static,
) -> mpsc::Receiver<Tally> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(label.into())
        .spawn(move || {
            let t = f(until);
            let _ = tx.send(t);
        })
        .unwrap();
    rx
}

/// Waits for an honest thread's tally; a thread that panics (channel closed) or does not
/// finish by the deadline fails the test (the child's guard then removes the scribbler).
fn collect(rx: &mpsc::Receiver<Tally>, what: &str, deadline: Instant) -> Tally {
    let left = deadline.saturating_duration_since(Instant::now());
    match rx.recv_timeout(left) {
        Ok(t) => t,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what} hung (no return by the deadline)"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

fn run_against_scribbler(
    test: &str,
    name: &str,
    start: impl FnOnce(Instant) -> Vec<(&'static str, mpsc::Receiver<Tally>)>,
) {
    let deadline = Instant::now() + DEADLINE;
    let seed = seed();
    eprintln!("{test}: seed {seed} (replay with {SEED}={seed})");
    let mut child = ChildGuard::spawn(
        respawn(test, "scribbler")
            .env(NAME, name)
            .env(SEED, seed.to_string())
            .env(MILLIS, SCRIBBLE.as_millis().to_string())
            .stdout(Stdio::null()),
    );
    // The honest side starts with the scribbler and goes on a while after it stopped, on
    // whatever the ring then holds.
    let honest = start(Instant::now() + SCRIBBLE + Duration::from_millis(500));
    let mut total = Tally::default();
    let mut silent = Vec::new();
    for (what, rx) in &honest {
        let t = collect(rx, what, deadline);
        eprintln!("{test}: {what}: {t:?}");
        if matches!(t.settled, None | Some((Settled::Silent, _))) {
            silent.push(*what);
        }
        total.ok += t.ok;
        total.empty_or_full += t.empty_or_full;
        total.corrupt += t.corrupt;
        total.other += t.other;
        total.attach_errors += t.attach_errors;
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "the scribbler itself failed: {status}");
    assert!(
        total.corrupt + total.attach_errors > 0,
        "the honest side never noticed garbage: {total:?}"
    );
    assert_eq!(
        total.other, 0,
        "errors other than Corrupt/Full/Empty/TooLarge: {total:?}"
    );
    assert!(
        silent.is_empty(),
        "after the scribbler stopped, {silent:?} neither made progress nor reported anything within {SETTLE:?}"
    );
}

#[test]
fn a_process_scribbling_into_a_live_spsc_ring_gets_the_honest_side_errors_not_crashes() {
    const TEST: &str =
        "a_process_scribbling_into_a_live_spsc_ring_gets_the_honest_side_errors_not_crashes";
    if role().as_deref() == Some("scribbler") {
        return scribbler();
    }
    let name = unique_name("hostile-spsc");
    let limit = 200usize;
    let ring = SpscRing::create_shm(
        &name,
        &SpscConfig::new(1 << 12).max_record(limit as u64),
        &SegmentOptions::default(),
    )
    .unwrap();
    let (r1, r2) = (ring.clone(), ring.clone());
    run_against_scribbler(TEST, &name, move |until| {
        let sender = honest_run("spsc sender", until, move |until| {
            let mut t = Tally::default();
            let mut tx = r1.producer().ok();
            let mut n = 0u64;
            while Instant::now() < until {
                n += 1;
                if n % 512 == 0 || tx.is_none() {
                    drop(tx.take());
                    tx = r1.producer().ok();
                    if tx.is_none() {
                        t.attach_errors += 1;
                        std::thread::yield_now();
                        continue;
                    }
                }
                let Some(p) = tx.as_mut() else { continue };
                let len = (n % 220) as usize;
                let r = if n % 3 == 0 {
                    p.reserve(len).map(|mut r| {
                        r.fill(n as u8);
                        r.commit();
                    })
                } else {
                    p.try_push(&vec![n as u8; len])
                };
                match r {
                    Ok(()) => t.ok += 1,
                    // Disconnected: the scribbler may clear the roster's attached bits.
                    Err(PushError::Full | PushError::TooLarge { .. } | PushError::Disconnected) => {
                        t.empty_or_full += 1;
                    }
                    Err(PushError::Corrupt(_)) => t.corrupt += 1,
                    Err(_) => t.other += 1,
                }
            }
            t.settled = Some(settle(|| {
                if tx.is_none() {
                    tx = Some(match r1.producer() {
                        Ok(p) => p,
                        Err(_) => return Some(Settled::AttachRefused),
                    });
                }
                settled_push(tx.as_mut()?.try_push(&[5; 8]))
            }));
            t
        });
        let receiver = honest_run("spsc receiver", until, move |until| {
            let mut t = Tally::default();
            let mut rx = r2.consumer().ok();
            let mut buf = vec![0u8; limit];
            let mut n = 0u64;
            while Instant::now() < until {
                n += 1;
                if n % 512 == 0 || rx.is_none() {
                    drop(rx.take());
                    rx = r2.consumer().ok();
                    if rx.is_none() {
                        t.attach_errors += 1;
                        std::thread::yield_now();
                        continue;
                    }
                }
                let Some(c) = rx.as_mut() else { continue };
                let r = match n % 3 {
                    0 => c.try_pop(&mut buf),
                    1 => c.try_pop_batch(4, |b| assert!(b.len() <= limit, "record over the limit")),
                    _ => c.read().map(|p| {
                        p.map_or(0, |p| {
                            assert!(p.len() <= limit, "record read in place over the limit");
                            1
                        })
                    }),
                };
                match r {
                    Ok(k) => {
                        assert!(k <= limit);
                        t.ok += 1;
                    }
                    Err(
                        PopError::Empty | PopError::BufferTooSmall { .. } | PopError::Disconnected,
                    ) => t.empty_or_full += 1,
                    Err(PopError::Corrupt(_)) => t.corrupt += 1,
                    Err(_) => t.other += 1,
                }
            }
            t.settled = Some(settle(|| {
                if rx.is_none() {
                    rx = Some(match r2.consumer() {
                        Ok(c) => c,
                        Err(_) => return Some(Settled::AttachRefused),
                    });
                }
                settled_pop(rx.as_mut()?.try_pop(&mut buf))
            }));
            t
        });
        vec![("spsc sender", sender), ("spsc receiver", receiver)]
    });
}

#[test]
fn a_process_scribbling_into_a_live_mpmc_ring_gets_the_honest_side_errors_not_crashes() {
    const TEST: &str =
        "a_process_scribbling_into_a_live_mpmc_ring_gets_the_honest_side_errors_not_crashes";
    if role().as_deref() == Some("scribbler") {
        return scribbler();
    }
    let name = unique_name("hostile-mpmc");
    let limit = 100usize;
    let ring = MpmcRing::create_shm(
        &name,
        &MpmcConfig::new(64, limit as u64),
        &SegmentOptions::default(),
    )
    .unwrap();
    let handles: Vec<MpmcRing> = (0..4).map(|_| ring.clone()).collect();
    run_against_scribbler(TEST, &name, move |until| {
        let mut out = Vec::new();
        for (i, r) in handles.into_iter().enumerate() {
            let producer = i % 2 == 0;
            let label = if producer {
                "mpmc sender"
            } else {
                "mpmc receiver"
            };
            out.push((
                label,
                honest_run(label, until, move |until| {
                    let mut t = Tally::default();
                    let mut tx = None;
                    let mut rx = None;
                    let mut buf = vec![0u8; limit];
                    let mut n = 0u64;
                    while Instant::now() < until {
                        n += 1;
                        if n % 256 == 1 {
                            // Re-register now and then: the endpoint table is being scribbled on.
                            tx = None;
                            rx = None;
                            let ok = if producer {
                                tx = r.producer().ok();
                                tx.is_some()
                            } else {
                                rx = r.consumer().ok();
                                rx.is_some()
                            };
                            if !ok {
                                t.attach_errors += 1;
                            }
                        }
                        if let Some(p) = tx.as_mut() {
                            let len = (n % 110) as usize;
                            let r = match n % 3 {
                                0 => p.try_push(&vec![n as u8; len]),
                                1 => p
                                    .try_push_batch(&[vec![1u8; len], vec![2; len / 2]])
                                    .map(|_| ()),
                                _ => p.try_push_all(&[vec![3u8; len / 2], vec![4; 7]]),
                            };
                            match r {
                                Ok(()) => t.ok += 1,
                                Err(
                                    PushError::Full
                                    | PushError::TooLarge { .. }
                                    | PushError::Disconnected,
                                ) => t.empty_or_full += 1,
                                Err(PushError::Corrupt(_)) => t.corrupt += 1,
                                Err(_) => t.other += 1,
                            }
                        }
                        if let Some(c) = rx.as_mut() {
                            let r = match n % 3 {
                                0 => c.try_pop(&mut buf),
                                1 => c.try_pop_batch(4, |b| assert!(b.len() <= limit)),
                                _ => c.read().map(|m| m.map_or(0, |m| m.len())),
                            };
                            match r {
                                Ok(k) => {
                                    assert!(k <= limit);
                                    t.ok += 1;
                                }
                                Err(
                                    PopError::Empty
                                    | PopError::BufferTooSmall { .. }
                                    | PopError::Disconnected,
                                ) => t.empty_or_full += 1,
                                Err(PopError::Corrupt(_)) => t.corrupt += 1,
                                Err(_) => t.other += 1,
                            }
                        }
                        if tx.is_none() && rx.is_none() {
                            std::thread::yield_now();
                        }
                    }
                    t.settled = Some(settle(|| {
                        if producer {
                            if tx.is_none() {
                                tx = Some(match r.producer() {
                                    Ok(p) => p,
                                    Err(_) => return Some(Settled::AttachRefused),
                                });
                            }
                            settled_push(tx.as_mut()?.try_push(&[5; 8]))
                        } else {
                            if rx.is_none() {
                                rx = Some(match r.consumer() {
                                    Ok(c) => c,
                                    Err(_) => return Some(Settled::AttachRefused),
                                });
                            }
                            settled_pop(rx.as_mut()?.try_pop(&mut buf))
                        }
                    }));
                    t
                }),
            ));
        }
        out
    });
}
