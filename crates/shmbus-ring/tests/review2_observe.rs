//! Adversarial review of the passive observers (review-cli): tests that demonstrate findings.
// Real memory, threads and processes: not a loom model.
#![cfg(not(loom))]

use std::os::unix::process::ExitStatusExt;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use shmbus_ring::observe::{Observer, Peeked, Start};
use shmbus_ring::{MpmcConfig, MpmcRing, SegmentOptions, SpscConfig, SpscRing};
use shmbus_testkit::process::{respawn, role, unique_name, ChildGuard};

/// Finding: V3 of the MPMC peek compares only the sequence half of the slot word
/// (`again >> 8 != seq`, observe/peek.rs:268). A slot observed "consumed, free for the next
/// lap" (`seq = p + slots`, tag 0) keeps the same sequence when the next lap's producer
/// claims it (M3 stores `(p + slots, tag)`) and starts writing its payload, so a copy the
/// next lap overwrote during V2 passes V3 and is returned as the message at `p`.
/// PROTOCOL §7.6 V3 itself requires "`p + cap` with tag 0"; this is not one of its residuals.
///
/// Honest ring operations only: slots 0 and 1 hold consumed messages A and B; the observer
/// copies position 0 (A, 4 MiB) while a producer thread reserves position 2
/// (the same slot), fills it with C and commits 20 ms later. Every `Message { position: 0 }` must be exactly A.
#[test]
fn review2_mpmc_peek_never_returns_a_copy_the_next_lap_claimed_and_wrote() {
    const LEN: usize = 4 << 20;
    let mut bad = Vec::new();
    for trial in 0..120u64 {
        let name = unique_name("review2-mpmc-torn");
        let ring = MpmcRing::create_shm(
            &name,
            &MpmcConfig::new(2, (LEN + 64) as u64),
            &SegmentOptions::default(),
        )
        .unwrap();
        let obs = Observer::open(&name).unwrap();
        let mut peek = obs.peek(Start::Newest); // position 0
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        let mut tmp = vec![0u8; LEN + 64];
        tx.try_push(&vec![0xAA; LEN]).unwrap(); // position 0, slot 0
        rx.try_pop(&mut tmp).unwrap();
        tx.try_push(&vec![0xBB; LEN]).unwrap(); // position 1, slot 1
        rx.try_pop(&mut tmp).unwrap();
        // Slot 0 now reads (seq 2, tag 0): consumed, free for the next lap.
        let go = Arc::new(Barrier::new(2));
        let go2 = Arc::clone(&go);
        let writer = std::thread::spawn(move || {
            let c = vec![0xCC; LEN];
            go2.wait();
            // Let the observer pass V1 and start its copy (a varying head start).
            let t0 = std::time::Instant::now();
            while t0.elapsed() < Duration::from_micros(10 * trial) {
                std::hint::spin_loop();
            }
            // Position 2, slot 0: claim (M3 stores (2, tag)), write in place, commit (M5) a
            // little later — an honest producer filling a reservation.
            let mut w = tx.reserve(LEN).unwrap();
            w.copy_from_slice(&c);
            std::thread::sleep(Duration::from_millis(20));
            w.commit();
        });
        let mut buf = Vec::new();
        go.wait();
        let got = peek.next(&mut buf).unwrap();
        writer.join().unwrap();
        if let Peeked::Message { position: 0 } = got {
            if buf.len() != LEN || buf.iter().any(|&b| b != 0xAA) {
                let cc = buf.chunks(1).filter(|b| b[0] == 0xCC).count();
                bad.push(format!(
                    "trial {trial}: position 0 returned {} bytes, {cc} of them from position 2",
                    buf.len()
                ));
            }
        }
        drop(rx);
    }
    assert!(
        bad.is_empty(),
        "the peek returned copies overwritten by the next lap as valid messages:\n{}",
        bad.join("\n")
    );
}

/// Child of [`review2_an_observer_survives_a_segment_truncated_under_it`].
#[test]
fn review2_truncate_child() {
    if role().as_deref() != Some("truncate") {
        return;
    }
    let name = std::env::var("NAME").unwrap();
    let obs = Observer::open(&name).unwrap();
    let mut peek = obs.peek(Start::Oldest);
    // Another process (here: a plain file handle) shrinks the object to its first page.
    std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm{name}"))
        .unwrap()
        .set_len(4096)
        .unwrap();
    let _ = obs.snapshot();
    let mut buf = Vec::new();
    let r = peek.next(&mut buf);
    println!("peek after truncation: {r:?}");
}

/// Finding (documented residual, PROTOCOL §4.4, but every observing tool inherits it): a
/// segment truncated while an observer has it mapped kills the observer with SIGBUS at its
/// next load of the ring data — `shmbus ls`/`top`/`echo`/`hz` of *all* segments dies because
/// of one hostile or buggy peer. Invariant 1 asks for a typed error instead.
#[test]
fn review2_an_observer_survives_a_segment_truncated_under_it() {
    let name = unique_name("review2-trunc");
    let ring =
        SpscRing::create_shm(&name, &SpscConfig::new(1 << 16), &SegmentOptions::default()).unwrap();
    let mut tx = ring.producer().unwrap();
    tx.try_push(b"hello").unwrap();
    let mut child = ChildGuard::spawn(
        respawn("review2_truncate_child", "truncate")
            .env("NAME", &name)
            .stdout(std::process::Stdio::null()),
    );
    let status = child.wait_within(Duration::from_secs(20));
    assert!(
        status.signal().is_none(),
        "the observer died of signal {:?} (SIGBUS = 7) after the segment shrank",
        status.signal()
    );
}

/// Holds: a segment already shorter than its header says is refused at open.
#[test]
fn review2_an_already_truncated_segment_is_refused_at_open() {
    let name = unique_name("review2-trunc-open");
    let _ring =
        SpscRing::create_shm(&name, &SpscConfig::new(1 << 16), &SegmentOptions::default()).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm{name}"))
        .unwrap()
        .set_len(8192)
        .unwrap();
    let r = Observer::open(&name);
    assert!(r.is_err(), "{r:?}");
}
