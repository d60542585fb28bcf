//! SPSC rings between real processes: the test binary re-spawns itself as the producer (no
//! `fork` in a threaded test process), streams sequence-numbered, checksummed records of
//! random sizes through a small ring (named shm, a memfd reached through its fd, a file that
//! outlives the producer, System V segments opened by name), and the parent checks order,
//! content and count.
#![cfg(not(loom))]

use shmbus_ring::frame::record_size;
use shmbus_ring::segment::SysvOptions;
use shmbus_ring::Backing;
use shmbus_ring::{
    OpenOptions, PopError, PushError, Segment, SegmentOptions, SpscConfig, SpscRing,
};
use shmbus_testkit::{respawn, role, unique_name, ChildGuard, SysvSweep};
use std::time::{Duration, Instant};

/// The environment variables telling the producer process what to open and how much to send.
const TARGET: &str = "SHMBUS_XPROC_TARGET";
const COUNT: &str = "SHMBUS_XPROC_COUNT";
/// No run may take longer than this; both sides give up (and fail) after it.
const DEADLINE: Duration = Duration::from_secs(240);

fn spawn_producer(test: &str, target: &str, count: u64) -> ChildGuard {
    ChildGuard::spawn(
        respawn(test, "producer")
            .env(TARGET, target)
            .env(COUNT, count.to_string()),
    )
}

/// The payload length of record `seq`: 12 to 140 bytes, from a fixed pseudo-random sequence.
fn len_of(seq: u64) -> usize {
    let mut x = seq.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    12 + ((x ^ (x >> 31)) % 129) as usize
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// Record `seq`: `[seq: u64 LE][pattern bytes][fnv1a of the rest: u32 LE]`.
fn fill(seq: u64, out: &mut [u8]) {
    let n = out.len();
    out[..8].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in out[8..n - 4].iter_mut().enumerate() {
        *b = (seq as u8).wrapping_mul(131).wrapping_add(i as u8);
    }
    let sum = fnv1a(&out[..n - 4]);
    out[n - 4..].copy_from_slice(&sum.to_le_bytes());
}

fn check(seq: u64, got: &[u8], scratch: &mut Vec<u8>) {
    let n = got.len();
    assert_eq!(n, len_of(seq), "record {seq}: wrong length");
    let found_seq = u64::from_le_bytes(got[..8].try_into().unwrap());
    assert_eq!(found_seq, seq, "records out of order, lost or duplicated");
    let sum = u32::from_le_bytes(got[n - 4..].try_into().unwrap());
    assert_eq!(
        sum,
        fnv1a(&got[..n - 4]),
        "record {seq}: checksum mismatch (torn record)"
    );
    scratch.resize(n, 0);
    fill(seq, scratch);
    assert_eq!(&scratch[..], got, "record {seq}: content differs");
}

/// Spin, yielding now and then: with more runnable processes than cores (a loaded CI machine),
/// a pure spin would burn whole time slices while the peer cannot run.
fn backoff() {
    use std::cell::Cell;
    thread_local!(static SPINS: Cell<u32> = const { Cell::new(0) });
    SPINS.with(|s| {
        s.set(s.get().wrapping_add(1));
        if s.get() % 64 == 0 {
            std::thread::yield_now();
        }
    });
    std::hint::spin_loop();
}

/// The producer process: pushes `count` records, mixing the copy, zero-copy and batch paths.
fn run_producer(ring: &SpscRing, count: u64) {
    let mut tx = ring.producer().expect("attach producer");
    let deadline = Instant::now() + DEADLINE;
    let mut seq = 0u64;
    let mut batch: Vec<Vec<u8>> = Vec::new();
    while seq < count {
        assert!(
            Instant::now() < deadline,
            "producer: deadline passed at record {seq}"
        );
        match seq % 3 {
            0 => {
                let mut rec = vec![0u8; len_of(seq)];
                fill(seq, &mut rec);
                loop {
                    match tx.try_push(&rec) {
                        Ok(()) => break,
                        Err(PushError::Full) => backoff(),
                        Err(e) => panic!("producer: {e}"),
                    }
                }
                seq += 1;
            }
            1 => loop {
                match tx.reserve(len_of(seq)) {
                    Ok(mut r) => {
                        fill(seq, &mut r);
                        r.commit();
                        seq += 1;
                        break;
                    }
                    Err(PushError::Full) => backoff(),
                    Err(e) => panic!("producer: {e}"),
                }
            },
            _ => {
                let k = (count - seq).min(1 + seq % 5);
                batch.clear();
                for s in seq..seq + k {
                    let mut rec = vec![0u8; len_of(s)];
                    fill(s, &mut rec);
                    batch.push(rec);
                }
                let mut done = 0;
                while done < batch.len() {
                    match tx.try_push_batch(&batch[done..]) {
                        Ok(n) => done += n,
                        Err(PushError::Full) => backoff(),
                        Err(e) => panic!("producer: {e}"),
                    }
                }
                seq += k;
            }
        }
    }
}

/// The consumer (this process): receives `count` records, mixing pop paths; returns the bytes
/// the records occupied in the ring.
fn run_consumer(ring: &SpscRing, child: &mut ChildGuard, count: u64) -> u64 {
    let mut rx = ring.consumer().unwrap();
    let deadline = Instant::now() + DEADLINE;
    let (mut seq, mut bytes, mut idle) = (0u64, 0u64, 0u32);
    let mut scratch = Vec::new();
    let mut buf = vec![0u8; ring.max_record()];
    while seq < count {
        let got = match seq % 3 {
            0 => match rx.try_pop(&mut buf) {
                Ok(n) => {
                    check(seq, &buf[..n], &mut scratch);
                    bytes += record_size(n as u64);
                    1
                }
                Err(PopError::Empty) => 0,
                Err(e) => panic!("consumer: {e}"),
            },
            1 => match rx.read().expect("read") {
                Some(p) => {
                    check(seq, &p, &mut scratch);
                    bytes += record_size(p.len() as u64);
                    drop(p);
                    1
                }
                None => 0,
            },
            _ => {
                let mut s = seq;
                let n = rx
                    .try_pop_batch(7, |r| {
                        check(s, r, &mut scratch);
                        bytes += record_size(r.len() as u64);
                        s += 1;
                    })
                    .expect("pop_batch");
                n as u64
            }
        };
        seq += got;
        if got == 0 {
            idle += 1;
            if idle % 4096 == 0 {
                assert!(
                    Instant::now() < deadline,
                    "consumer: deadline passed at record {seq}"
                );
                if let Some(status) = child.try_wait().unwrap() {
                    // The producer exited; drain what it committed, then judge.
                    assert!(status.success(), "producer process failed: {status}");
                    assert!(
                        !rx.is_empty() || seq == count,
                        "producer exited after {seq} of {count} records"
                    );
                }
            }
            if idle % 64 == 0 {
                std::thread::yield_now();
            }
            std::hint::spin_loop();
        }
    }
    assert!(rx.is_empty(), "more records than were sent");
    let status = child.wait().unwrap();
    assert!(status.success(), "producer process failed: {status}");
    bytes
}

#[test]
fn ten_million_random_size_records_cross_processes_in_order_and_intact() {
    const TEST: &str = "ten_million_random_size_records_cross_processes_in_order_and_intact";
    if role().is_some() {
        let name = std::env::var(TARGET).unwrap();
        let count = std::env::var(COUNT).unwrap().parse().unwrap();
        run_producer(
            &SpscRing::open_shm(&name, &SegmentOptions::default()).unwrap(),
            count,
        );
        return;
    }
    let count = 10_000_000;
    let cap = 8192;
    let name = unique_name("xproc");
    let ring = SpscRing::create_shm(
        &name,
        &SpscConfig::new(cap),
        &SegmentOptions::default().prefault(true),
    )
    .unwrap();
    let mut child = spawn_producer(TEST, &name, count);
    let bytes = run_consumer(&ring, &mut child, count);
    let laps = bytes / cap;
    eprintln!("{count} records, {bytes} bytes, {laps} laps of a {cap}-byte ring");
    assert!(laps >= 100_000, "the ring wrapped only {laps} times");
}

/// The same stream, shorter, through System V rings (persistent, and destroyed on last
/// detach), which the producer process opens by name.
#[test]
fn a_million_records_cross_processes_through_sysv_rings_in_order_and_intact() {
    const TEST: &str = "a_million_records_cross_processes_through_sysv_rings_in_order_and_intact";
    if role().is_some() {
        let name = std::env::var(TARGET).unwrap();
        let count = std::env::var(COUNT).unwrap().parse().unwrap();
        let ring = SpscRing::open_shm(&name, &SegmentOptions::default()).unwrap();
        assert!(matches!(ring.segment().backing(), Backing::SysV { .. }));
        run_producer(&ring, count);
        return;
    }
    for destroy in [false, true] {
        let count = 1_000_000;
        let name = unique_name("xproc-sysv");
        let _sweep = SysvSweep::new(&name);
        let ring = SpscRing::create_sysv(
            &name,
            &SpscConfig::new(8192),
            &SegmentOptions::default().prefault(true),
            &SysvOptions::new().destroy_on_last_detach(destroy),
        )
        .unwrap();
        let mut child = spawn_producer(TEST, &name, count);
        let bytes = run_consumer(&ring, &mut child, count);
        assert!(
            bytes / 8192 >= 10_000,
            "the ring wrapped only {} times",
            bytes / 8192
        );
    }
}

#[test]
fn a_memfd_ring_reaches_a_process_that_opens_its_fd() {
    const TEST: &str = "a_memfd_ring_reaches_a_process_that_opens_its_fd";
    if role().is_some() {
        // Reopen the parent's memfd through /proc, as a process that was passed the fd would.
        let path = std::env::var(TARGET).unwrap();
        let fd = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let seg = Segment::open_fd(fd.into(), &SegmentOptions::default()).unwrap();
        let count = std::env::var(COUNT).unwrap().parse().unwrap();
        run_producer(
            &SpscRing::open_in(seg, &OpenOptions::default()).unwrap(),
            count,
        );
        return;
    }
    let cfg = SpscConfig::new(4096);
    let seg = Segment::memfd("shmbus-test", cfg.segment_len(), &SegmentOptions::default()).unwrap();
    let fd = {
        use std::os::fd::AsRawFd;
        seg.fd().unwrap().as_raw_fd()
    };
    let ring = SpscRing::create_in(seg, &cfg).unwrap();
    let path = format!("/proc/{}/fd/{fd}", std::process::id());
    let mut child = spawn_producer(TEST, &path, 200_000);
    run_consumer(&ring, &mut child, 200_000);
}

#[test]
fn a_file_backed_ring_keeps_committed_records_for_a_later_process() {
    const TEST: &str = "a_file_backed_ring_keeps_committed_records_for_a_later_process";
    if role().is_some() {
        let path = std::env::var(TARGET).unwrap();
        let seg = Segment::open_file(&path, &SegmentOptions::default()).unwrap();
        run_producer(
            &SpscRing::open_in(seg, &OpenOptions::default()).unwrap(),
            100,
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("shmbus-file-{}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    let cfg = SpscConfig::new(1 << 14);
    let seg = Segment::create_file(&dir, cfg.segment_len(), &SegmentOptions::default()).unwrap();
    seg.set_unlink_on_drop(true);
    let ring = SpscRing::create_in(seg, &cfg).unwrap();
    // The producer process writes 100 records and exits before anyone reads them.
    let mut child = spawn_producer(TEST, dir.to_str().unwrap(), 100);
    assert!(child.wait().unwrap().success());
    // A fresh mapping of the file (a "later process") finds them all.
    let later = SpscRing::open_in(
        Segment::open_file(&dir, &SegmentOptions::default()).unwrap(),
        &OpenOptions::default(),
    )
    .unwrap();
    let mut rx = later.consumer().unwrap();
    let mut scratch = Vec::new();
    for seq in 0..100 {
        rx.try_pop_with(|r| check(seq, r, &mut scratch)).unwrap();
    }
    // The producer detached when it exited: drained, the ring reports it.
    assert_eq!(rx.try_pop_with(|_| ()), Err(PopError::Disconnected));
    drop(ring);
}
