//! Real processes on one MPMC ring: 4 producer and 4 consumer processes (more than the cores,
//! on purpose, so processes are preempted mid-operation) pass 10 million tagged, checksummed
//! messages. Every message must be received exactly once, and each consumer must see each
//! producer's messages in increasing order.
#![cfg(not(loom))]

use shmbus_ring::{MpmcConfig, MpmcRing, PopError, PushError, SegmentOptions};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TEST: &str =
    "four_producer_and_four_consumer_processes_pass_ten_million_messages_exactly_once";
const ROLE: &str = "SHMBUS_MPMC_ROLE";
const NAME: &str = "SHMBUS_MPMC_NAME";
const PER_PRODUCER: &str = "SHMBUS_MPMC_PER_PRODUCER";
const DEADLINE: Duration = Duration::from_secs(300);

struct Kill(Vec<Child>);

impl Drop for Kill {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn mix(p: u32, seq: u64) -> u64 {
    let mut x = seq ^ (u64::from(p) << 40) ^ 0x9e37_79b9_7f4a_7c15;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Message: `[producer: u32][seq: u64][filler][checksum: u32]`, 20 to 64 bytes.
fn fill(p: u32, seq: u64, buf: &mut [u8; 64]) -> usize {
    let len = 20 + (mix(p, seq) % 45) as usize;
    buf[..4].copy_from_slice(&p.to_le_bytes());
    buf[4..12].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in buf[12..len - 4].iter_mut().enumerate() {
        *b = (seq as u8) ^ (i as u8) ^ (p as u8);
    }
    let sum = buf[..len - 4]
        .iter()
        .fold(0u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193));
    buf[len - 4..len].copy_from_slice(&sum.to_le_bytes());
    len
}

fn producer(ring: &MpmcRing, p: u32, count: u64) {
    let mut tx = ring.producer().unwrap();
    let deadline = Instant::now() + DEADLINE;
    let mut buf = [0u8; 64];
    for seq in 0..count {
        let len = fill(p, seq, &mut buf);
        let mut spins = 0u32;
        loop {
            match tx.try_push(&buf[..len]) {
                Ok(()) => break,
                Err(PushError::Full) => {
                    spins += 1;
                    if spins % 1024 == 0 {
                        assert!(Instant::now() < deadline, "producer {p}: deadline at {seq}");
                    }
                    std::thread::yield_now();
                }
                Err(e) => panic!("producer {p}: {e}"),
            }
        }
    }
}

/// Consumes until every producer has detached and the ring is drained (`Disconnected`);
/// prints `RESULT producer count seq_sum mix_sum` per producer.
fn consumer(ring: &MpmcRing, producers: u32) {
    let mut rx = ring.consumer().unwrap();
    let deadline = Instant::now() + DEADLINE;
    let n = producers as usize;
    let (mut next, mut count, mut sums, mut mixes) =
        (vec![0u64; n], vec![0u64; n], vec![0u64; n], vec![0u64; n]);
    let mut buf = [0u8; 64];
    let mut idle = 0u32;
    loop {
        match rx.try_pop(&mut buf) {
            Ok(len) => {
                let p = u32::from_le_bytes(buf[..4].try_into().unwrap());
                let seq = u64::from_le_bytes(buf[4..12].try_into().unwrap());
                let mut want = [0u8; 64];
                assert!(p < producers, "unknown producer {p}");
                assert_eq!(
                    fill(p, seq, &mut want),
                    len,
                    "producer {p} seq {seq}: length"
                );
                assert_eq!(
                    &want[..len],
                    &buf[..len],
                    "producer {p} seq {seq}: content or checksum"
                );
                let i = p as usize;
                assert!(
                    seq >= next[i],
                    "producer {p}: seq {seq} after {} (out of order or duplicate)",
                    next[i]
                );
                next[i] = seq + 1;
                count[i] += 1;
                sums[i] = sums[i].wrapping_add(seq);
                mixes[i] = mixes[i].wrapping_add(mix(p, seq));
            }
            // Every producer detached and everything committed is consumed: the stream ended.
            Err(PopError::Disconnected) => break,
            Err(PopError::Empty) => {
                idle += 1;
                if idle % 1024 == 0 {
                    assert!(Instant::now() < deadline, "consumer: deadline");
                }
                std::thread::yield_now();
            }
            Err(e) => panic!("consumer: {e}"),
        }
    }
    for p in 0..n {
        println!("RESULT {p} {} {} {}", count[p], sums[p], mixes[p]);
    }
}

#[test]
fn four_producer_and_four_consumer_processes_pass_ten_million_messages_exactly_once() {
    if let Ok(role) = std::env::var(ROLE) {
        let ring =
            MpmcRing::open_shm(&std::env::var(NAME).unwrap(), &SegmentOptions::default()).unwrap();
        let count: u64 = std::env::var(PER_PRODUCER).unwrap().parse().unwrap();
        match role.split_once(':') {
            Some(("producer", p)) => producer(&ring, p.parse().unwrap(), count),
            _ => consumer(&ring, 4),
        }
        return;
    }
    let (producers, consumers, per) = (4u32, 4, 2_500_000u64);
    let name = format!("/shmbus-mpmc-procs-{}", std::process::id());
    let ring = MpmcRing::create_shm(
        &name,
        &MpmcConfig::new(1024, 64),
        &SegmentOptions::default(),
    )
    .unwrap();
    let spawn = |role: String, out: Stdio| {
        Command::new(std::env::current_exe().unwrap())
            .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
            .env(ROLE, role)
            .env(NAME, &name)
            .env(PER_PRODUCER, per.to_string())
            .stdout(out)
            .spawn()
            .unwrap()
    };
    // The parent holds a producer endpoint until every producer process has finished, so the
    // consumers see "disconnected" only at the real end of the streams (not in a gap between
    // one producer exiting and another attaching).
    let tx = ring.producer().unwrap();
    let mut cons = Kill(
        (0..consumers)
            .map(|_| spawn("consumer".into(), Stdio::piped()))
            .collect(),
    );
    let mut prods = Kill(
        (0..producers)
            .map(|p| spawn(format!("producer:{p}"), Stdio::null()))
            .collect(),
    );
    for c in &mut prods.0 {
        assert!(c.wait().unwrap().success(), "a producer process failed");
    }
    // All messages are committed: the last producer detaching lets the consumers drain the
    // ring and then end with `Disconnected`.
    drop(tx);
    let (mut count, mut sums, mut mixes) = ([0u64; 4], [0u64; 4], [0u64; 4]);
    for c in &mut cons.0 {
        let out = BufReader::new(c.stdout.take().unwrap());
        for line in out.lines() {
            let line = line.unwrap();
            // libtest prints "test NAME ... " before running it, so a line may start with that.
            let Some(at) = line.find("RESULT ") else {
                continue;
            };
            let rest = &line[at + "RESULT ".len()..];
            let v: Vec<u64> = rest.split(' ').map(|x| x.parse().unwrap()).collect();
            let p = v[0] as usize;
            count[p] += v[1];
            sums[p] = sums[p].wrapping_add(v[2]);
            mixes[p] = mixes[p].wrapping_add(v[3]);
        }
        assert!(c.wait().unwrap().success(), "a consumer process failed");
    }
    for p in 0..producers as usize {
        let want_mix = (0..per).fold(0u64, |a, s| a.wrapping_add(mix(p as u32, s)));
        assert_eq!(count[p], per, "producer {p}: messages received");
        assert_eq!(
            sums[p],
            per * (per - 1) / 2,
            "producer {p}: sequence sum (loss + duplicate)"
        );
        assert_eq!(
            mixes[p], want_mix,
            "producer {p}: hash sum (loss + duplicate)"
        );
    }
}
