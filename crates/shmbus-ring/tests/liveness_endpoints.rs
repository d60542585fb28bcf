//! The endpoint table and the role owner words: what registering and detaching leave behind,
//! that an endpoint frees or clears only what it holds, that a live process half-way through
//! registering is never reaped, that the first peer attaching never looks like a
//! disconnection, takeover of an owner left mid-reaping, `fork`ed children, and the table's
//! bound. (Many are regression tests for findings of the adversarial reviews.)
#![cfg(not(loom))]

use shmbus_ring::layout::{
    ENDPOINT_LOCKED, ENDPOINT_PIDNS, ENDPOINT_SIZE, ENDPOINT_START_TIME, ENDPOINT_TABLE,
    PRODUCER_BLOCK, ROSTER,
};
use shmbus_ring::liveness::{self, Vitality};
use shmbus_ring::{
    MpmcConfig, MpmcRing, PopError, PushError, Segment, SegmentOptions, SpscConfig, SpscRing,
};
use shmbus_testkit::{respawn, role, unique_name, ChildGuard};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The environment variable naming the ring a child opens.
const NAME: &str = "SHMBUS_LIVE_NAME";

fn name(tag: &str) -> String {
    unique_name(&format!("live-{tag}"))
}

fn entry(i: u64) -> usize {
    (ENDPOINT_TABLE + i * ENDPOINT_SIZE) as usize
}

/// State word: role | phase << 4 | reaper << 8 | gen << 16 | pid << 32.
fn state(role: u64, phase: u64, reaper: u64, gen: u64, pid: u32) -> u64 {
    role | phase << 4 | reaper << 8 | gen << 16 | u64::from(pid) << 32
}

/// The pid of a process that has exited (and been reaped by us).
fn dead_pid() -> u32 {
    let mut c = std::process::Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

/// A registrant overwrites every field its predecessor left (start time, namespace, lock
/// flag), so it is never judged by them; a clean detach leaves them in place, so an endpoint
/// that dies while detaching is still judged by its own (issue 13).
#[test]
fn a_registrant_overwrites_every_field_its_predecessor_left() {
    let name = name("fields");
    let ring =
        MpmcRing::create_shm(&name, &MpmcConfig::new(4, 8), &SegmentOptions::default()).unwrap();
    let raw = Segment::open(&name, &SegmentOptions::default()).unwrap();
    let word = |f: u64| raw.atomic_u64(entry(0) + f as usize).unwrap();
    let flag = || raw.atomic_u32(entry(0) + ENDPOINT_LOCKED as usize).unwrap();
    let tx = ring.producer().unwrap();
    let start = word(ENDPOINT_START_TIME).load(Ordering::SeqCst);
    let ns = word(ENDPOINT_PIDNS).load(Ordering::SeqCst);
    assert_ne!(start, 0);
    assert_eq!(flag().load(Ordering::SeqCst), 1);
    drop(tx);
    assert_eq!(
        word(ENDPOINT_START_TIME).load(Ordering::SeqCst),
        start,
        "a clean detach keeps its fields"
    );
    // What a predecessor of another process might have left.
    word(ENDPOINT_START_TIME).store(12_345, Ordering::SeqCst);
    word(ENDPOINT_PIDNS).store(777, Ordering::SeqCst);
    flag().store(0, Ordering::SeqCst);
    let rx = ring.consumer().unwrap();
    assert_eq!(word(ENDPOINT_START_TIME).load(Ordering::SeqCst), start);
    assert_eq!(word(ENDPOINT_PIDNS).load(Ordering::SeqCst), ns);
    assert_eq!(flag().load(Ordering::SeqCst), 1);
    let eps = liveness::endpoints(ring.segment()).unwrap();
    assert_eq!(eps.len(), 1);
    assert_eq!(eps[0].vitality, Vitality::Alive);
    drop(rx);
}

/// Finding 1: a live process in the middle of registering (state written, fields not yet) was
/// judged by its predecessor's start time, found "dead", and reaped.
#[test]
fn a_live_process_in_the_middle_of_registering_is_never_reaped() {
    const TEST: &str = "a_live_process_in_the_middle_of_registering_is_never_reaped";
    if role().is_some() {
        // The previous holder: another process attaches and detaches (entry 1).
        let name = std::env::var(NAME).unwrap();
        let ring = MpmcRing::open_shm(&name, &SegmentOptions::default()).unwrap();
        drop(ring.producer().unwrap());
        return;
    }
    let name = name("registering");
    let ring =
        MpmcRing::create_shm(&name, &MpmcConfig::new(4, 8), &SegmentOptions::default()).unwrap();
    let raw = Segment::open(&name, &SegmentOptions::default()).unwrap();
    let first = ring.producer().unwrap();
    let status = ChildGuard::spawn(
        respawn(TEST, "previous holder")
            .env(NAME, &name)
            .stdout(std::process::Stdio::null()),
    )
    .wait()
    .unwrap();
    assert!(status.success());
    // Now "we" are half-way registered in entry 1: state registering with our pid, the
    // fields not written yet (whatever the previous holder left).
    let word = raw.atomic_u64(entry(1)).unwrap();
    word.store(state(1, 1, 0, 7, std::process::id()), Ordering::SeqCst);
    let mut rx = ring.consumer().unwrap();
    rx.set_probe_interval(Duration::ZERO);
    for _ in 0..10 {
        assert_eq!(rx.try_pop_vec(&mut Vec::new()), Err(PopError::Empty));
    }
    assert_eq!(
        word.load(Ordering::SeqCst) >> 4 & 0xf,
        1,
        "the registering entry of a live process was reaped"
    );
    let eps = liveness::endpoints(ring.segment()).unwrap();
    assert!(eps.iter().all(|e| e.vitality != Vitality::Dead), "{eps:?}");
    drop(first);
}

/// Finding 2: the "ever" bit was set before the endpoint's own bit, so a producer waiting for
/// its first consumer could see "every consumer is gone" in between.
#[test]
fn the_first_peer_attaching_never_looks_like_a_disconnection() {
    for _ in 0..300 {
        let ring = MpmcRing::in_heap(&MpmcConfig::new(64, 8)).unwrap();
        let spsc = SpscRing::in_heap(&SpscConfig::new(1024)).unwrap();
        let mut tx = ring.producer().unwrap();
        let mut rx = spsc.consumer().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let attach = {
            let (ring, spsc, stop) = (ring.clone(), spsc.clone(), stop.clone());
            std::thread::spawn(move || {
                let c = ring.consumer().unwrap();
                let p = spsc.producer().unwrap();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::yield_now();
                }
                drop((c, p));
            })
        };
        let mut buf = Vec::new();
        // Until both peers are attached, every call says Full/Empty or succeeds, never
        // Disconnected.
        for _ in 0..2000 {
            match tx.try_push(b"x") {
                Ok(()) | Err(PushError::Full) => {}
                Err(e) => panic!("producer waiting for its first consumer: {e}"),
            }
            match rx.try_pop_vec(&mut buf) {
                Ok(_) | Err(PopError::Empty) => {}
                Err(e) => panic!("consumer waiting for its first producer: {e}"),
            }
        }
        stop.store(true, Ordering::Relaxed);
        attach.join().unwrap();
    }
}

/// Finding 3: an entry left `reaping` by a dead reaper whose tag is now ours made every
/// attach of ours fail with `AlreadyAttached`, naming the dead owner.
#[test]
fn an_owner_left_mid_reaping_by_a_reaper_whose_tag_is_now_ours_is_taken_over() {
    let name = name("selftag");
    let ring =
        SpscRing::create_shm(&name, &SpscConfig::new(1024), &SegmentOptions::default()).unwrap();
    let raw = Segment::open(&name, &SegmentOptions::default()).unwrap();
    let dead = dead_pid();
    // The producer role is owned by tag 5 (entry 4), generation 3, being reaped by tag 1
    // (entry 0, which we will get) with the dead reaper's pid.
    raw.atomic_u64(entry(4))
        .unwrap()
        .store(state(1, 3, 1, 3, dead), Ordering::SeqCst);
    raw.atomic_u32((PRODUCER_BLOCK + 8) as usize)
        .unwrap()
        .store(5 | 3 << 8, Ordering::SeqCst);
    let tx = ring.producer().expect("the stale owner is taken over");
    drop(tx);
    assert_eq!(liveness::endpoints(ring.segment()).unwrap(), vec![]);
}

/// Finding 5: a `fork`ed child that drops an inherited endpoint must not detach the parent's.
#[test]
fn a_forked_child_dropping_an_inherited_endpoint_leaves_the_parent_attached() {
    let ring = SpscRing::create_in(
        Segment::anonymous(
            SpscConfig::new(1024).segment_len(),
            &SegmentOptions::default(),
        )
        .unwrap(),
        &SpscConfig::new(1024),
    )
    .unwrap();
    let tx = ring.producer().unwrap();
    // SAFETY: the child only drops the inherited producer (a few atomics on shared
    // memory, `getpid`) and exits with `_exit`; it allocates nothing.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            drop(tx);
            // SAFETY: `_exit` is async-signal-safe and ends the child at once.
            unsafe { libc::_exit(0) };
        }
        nix::unistd::ForkResult::Parent { child } => {
            nix::sys::wait::waitpid(child, None).unwrap();
        }
    }
    assert!(
        matches!(
            ring.producer().unwrap_err(),
            shmbus_ring::Error::AlreadyAttached { .. }
        ),
        "the parent's producer is still the producer"
    );
    let eps = liveness::endpoints(ring.segment()).unwrap();
    assert_eq!(eps.len(), 1);
    assert_eq!(eps[0].pid, std::process::id());
    drop(tx);
}

/// This process's PID namespace inode (what a judgeable entry records).
fn own_pidns() -> u64 {
    let p = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let s = p.to_string_lossy().into_owned();
    s.strip_prefix("pid:[")
        .unwrap()
        .strip_suffix(']')
        .unwrap()
        .parse()
        .unwrap()
}

/// Third review of the reshaped crate: a `fork`ed child polling an inherited endpoint must
/// never probe or reap (PROTOCOL §7.1): a reaping state would name the parent's tag and pid,
/// so a child dying mid-reap would leave an entry no one else could take over.
#[test]
fn a_forked_child_polling_an_inherited_endpoint_never_probes_or_reaps() {
    let name = name("fork-probe");
    let ring =
        MpmcRing::create_shm(&name, &MpmcConfig::new(4, 8), &SegmentOptions::default()).unwrap();
    let raw = Segment::open(&name, &SegmentOptions::default()).unwrap();
    let mut rx = ring.consumer().unwrap();
    rx.set_probe_interval(Duration::ZERO);
    // A dead producer's entry (index 10): active, generation 1, a pid that has exited, fields
    // naming our namespace, so any prober can judge it dead by its pid.
    let e = entry(10);
    raw.atomic_u64(e + ENDPOINT_START_TIME as usize)
        .unwrap()
        .store(1, Ordering::SeqCst);
    raw.atomic_u64(e + ENDPOINT_PIDNS as usize)
        .unwrap()
        .store(own_pidns(), Ordering::SeqCst);
    let st = state(1, 2, 0, 1, dead_pid());
    raw.atomic_u64(e).unwrap().store(st, Ordering::SeqCst);
    raw.atomic_u64(ROSTER as usize)
        .unwrap()
        .fetch_or(1 << 63 | 1 << 10, Ordering::SeqCst);
    let mut buf = [0u8; 8];
    // SAFETY: the child only polls the inherited consumer (atomics on shared memory, the vDSO
    // clock, `getpid`: an inherited endpoint does not probe, so nothing reads /proc or
    // allocates) and exits with `_exit`.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            for _ in 0..64 {
                let _ = rx.try_pop(&mut buf);
            }
            // SAFETY: `_exit` is async-signal-safe and ends the child at once.
            unsafe { libc::_exit(0) };
        }
        nix::unistd::ForkResult::Parent { child } => {
            nix::sys::wait::waitpid(child, None).unwrap();
        }
    }
    let now = raw.atomic_u64(e).unwrap().load(Ordering::SeqCst);
    assert_eq!(
        now, st,
        "the child reaped entry 10 under the parent's name (state {now:#x})"
    );
    drop(rx);
}

#[test]
fn dropping_an_endpoint_does_not_clear_a_claim_that_is_not_its_own() {
    let name = name("claim");
    let ring =
        SpscRing::create_shm(&name, &SpscConfig::new(256), &SegmentOptions::default()).unwrap();
    let raw = Segment::open(&name, &SegmentOptions::default()).unwrap();
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
fn an_endpoint_never_frees_a_table_entry_it_does_not_hold() {
    let name = name("entry");
    let ring =
        MpmcRing::create_shm(&name, &MpmcConfig::new(4, 8), &SegmentOptions::default()).unwrap();
    let raw = Segment::open(&name, &SegmentOptions::default()).unwrap();
    let entry0 = raw.atomic_u64(ENDPOINT_TABLE as usize).unwrap();
    // The state word: role in bits 0..4 (1 producer, 2 consumer), phase in bits 4..8
    // (0 free, 2 active).
    let role_phase = |w: u64| (w & 0xf, (w >> 4) & 0xf);
    let a = ring.producer().unwrap();
    assert_eq!(role_phase(entry0.load(Ordering::SeqCst)), (1, 2));
    // A peer frees A's entry (index 0): its lock is still A's, so a registrant passes it by.
    entry0.store(0, Ordering::SeqCst);
    let b = ring.consumer().unwrap();
    let entry1 = raw.atomic_u64(entry(1)).unwrap();
    assert_eq!(role_phase(entry0.load(Ordering::SeqCst)), (0, 0));
    assert_eq!(role_phase(entry1.load(Ordering::SeqCst)), (2, 2));
    // Someone else now holds entry 0 (a consumer, a later generation).
    let other = state(2, 2, 0, 9, std::process::id());
    entry0.store(other, Ordering::SeqCst);
    drop(a);
    assert_eq!(
        entry0.load(Ordering::SeqCst),
        other,
        "the other holder's entry survived the producer's drop"
    );
    drop(b);
    assert_eq!(role_phase(entry1.load(Ordering::SeqCst)).1, 0);
}

#[test]
fn the_endpoint_table_bounds_attached_endpoints_and_frees_on_drop() {
    let ring = MpmcRing::in_heap(&MpmcConfig::new(4, 16)).unwrap();
    let held: Vec<_> = (0..55).map(|_| ring.producer().unwrap()).collect();
    assert!(matches!(
        ring.consumer().unwrap_err(),
        shmbus_ring::Error::TooManyEndpoints { max: 55, .. }
    ));
    drop(held);
    ring.consumer().expect("entries freed on drop");
}

/// Third review: an endpoint whose entry was taken meanwhile (reaped and registered again)
/// touches neither the new holder's roster bit nor its fields when it drops (L6's check).
#[test]
fn a_dropped_endpoint_whose_entry_was_taken_leaves_the_new_holder_alone() {
    let name = name("l6");
    let ring =
        MpmcRing::create_shm(&name, &MpmcConfig::new(4, 8), &SegmentOptions::default()).unwrap();
    let raw = Segment::open(&name, &SegmentOptions::default()).unwrap();
    let a = ring.producer().unwrap();
    let e = entry(0);
    let word = raw.atomic_u64(e).unwrap();
    // The entry now belongs to a new holder: generation 2, another (live) pid.
    let theirs = state(1, 2, 0, 2, std::os::unix::process::parent_id());
    word.store(theirs, Ordering::SeqCst);
    let field = |f: u64| raw.atomic_u64(e + f as usize).unwrap();
    field(ENDPOINT_START_TIME).store(123, Ordering::SeqCst);
    field(ENDPOINT_PIDNS).store(456, Ordering::SeqCst);
    drop(a);
    let roster = raw
        .atomic_u64(ROSTER as usize)
        .unwrap()
        .load(Ordering::SeqCst);
    assert_ne!(roster & 1, 0, "the new holder's roster bit was cleared");
    assert_eq!(field(ENDPOINT_START_TIME).load(Ordering::SeqCst), 123);
    assert_eq!(field(ENDPOINT_PIDNS).load(Ordering::SeqCst), 456);
    assert_eq!(word.load(Ordering::SeqCst), theirs);
    word.store(state(0, 0, 0, 2, 0), Ordering::SeqCst);
}
