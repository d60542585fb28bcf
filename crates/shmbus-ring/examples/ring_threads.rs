//! In-process reading of the rings, two threads pinned to two cores: SPSC against MPMC at one
//! producer and one consumer, MPMC 2×2, the MPMC slot layout (sequence word packed with the
//! payload, as shipped, against the sequence word alone on its own cache line), and the cost of
//! wake-up notification (rings are measured with it off, and SPSC once more with it on).
//!
//! Threads in one process pinned to distinct cores move cache lines between cores exactly as
//! two processes do; the cross-process comparison against the kernel's IPC is the `shmbus-bench`
//! harness. Rounds are interleaved and the median of 5 rounds is reported, since the VM's vCPUs
//! move around.
//!
//! Run: `cargo run --release -p shmbus-ring --example ring_threads`

use nix::sched::{sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use shmbus_ring::{MpmcConfig, MpmcRing, PopError, PushError, SpscConfig, SpscRing};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Online CPUs, read once: `available_parallelism` follows the calling thread's affinity, so
/// after the first pin it would say 1.
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
}

fn pin(cpu: usize) {
    let cores = cores();
    let mut set = CpuSet::new();
    if set.set(cpu % cores).is_ok() {
        let _ = sched_setaffinity(Pid::from_raw(0), &set);
    }
}

/// A one-way channel for the measurement loops.
trait Tx: Send {
    fn push(&mut self, m: &[u8]) -> bool;
}
trait Rx: Send {
    fn pop(&mut self, buf: &mut [u8]) -> bool;
}

impl Tx for shmbus_ring::Producer {
    fn push(&mut self, m: &[u8]) -> bool {
        match self.try_push(m) {
            Ok(()) => true,
            Err(PushError::Full) => false,
            Err(e) => panic!("{e}"),
        }
    }
}
impl Rx for shmbus_ring::Consumer {
    fn pop(&mut self, buf: &mut [u8]) -> bool {
        match self.try_pop(buf) {
            Ok(_) => true,
            Err(PopError::Empty) => false,
            Err(e) => panic!("{e}"),
        }
    }
}
impl Tx for shmbus_ring::MpmcProducer {
    fn push(&mut self, m: &[u8]) -> bool {
        match self.try_push(m) {
            Ok(()) => true,
            Err(PushError::Full) => false,
            Err(e) => panic!("{e}"),
        }
    }
}
impl Rx for shmbus_ring::MpmcConsumer {
    fn pop(&mut self, buf: &mut [u8]) -> bool {
        match self.try_pop(buf) {
            Ok(_) => true,
            Err(PopError::Empty) => false,
            Err(e) => panic!("{e}"),
        }
    }
}

type Pair = (Box<dyn Tx>, Box<dyn Rx>);
type Endpoints = (Vec<Box<dyn Tx>>, Vec<Box<dyn Rx>>);

fn spsc() -> Pair {
    let r = SpscRing::in_heap(&SpscConfig::new(1 << 16).notify(false)).unwrap();
    (
        Box::new(r.producer().unwrap()),
        Box::new(r.consumer().unwrap()),
    )
}

/// The default ring: notification on (a `SeqCst` fence and a waiters check per publish).
fn spsc_notify() -> Pair {
    let r = SpscRing::in_heap(&SpscConfig::new(1 << 16)).unwrap();
    (
        Box::new(r.producer().unwrap()),
        Box::new(r.consumer().unwrap()),
    )
}

fn mpmc(separate: bool) -> Pair {
    let cfg = MpmcConfig::new(1024, 64).notify(false);
    let r = if separate {
        MpmcRing::in_heap_with_separate_sequence_line(&cfg).unwrap()
    } else {
        MpmcRing::in_heap(&cfg).unwrap()
    };
    (
        Box::new(r.producer().unwrap()),
        Box::new(r.consumer().unwrap()),
    )
}

/// Median round trip of `size`-byte messages, ping on core 0, pong on core 1.
fn rtt(make: fn() -> Pair, size: usize) -> f64 {
    let (mut ping_tx, mut ping_rx) = make();
    let (mut pong_tx, mut pong_rx) = make();
    const N: usize = 100_000;
    let echo = std::thread::spawn(move || {
        pin(1);
        let mut buf = vec![0u8; 1 << 12];
        for _ in 0..N + 1000 {
            while !ping_rx.pop(&mut buf) {
                std::hint::spin_loop();
            }
            while !pong_tx.push(&buf[..size]) {
                std::hint::spin_loop();
            }
        }
    });
    pin(0);
    let msg = vec![7u8; size];
    let mut buf = vec![0u8; 1 << 12];
    let mut samples = Vec::with_capacity(N);
    for i in 0..N + 1000 {
        let t = Instant::now();
        while !ping_tx.push(&msg) {
            std::hint::spin_loop();
        }
        while !pong_rx.pop(&mut buf) {
            std::hint::spin_loop();
        }
        if i >= 1000 {
            samples.push(t.elapsed().as_nanos() as f64);
        }
    }
    echo.join().unwrap();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// One-way messages per second with `p` producer and `c` consumer threads (threads alternate
/// between the two cores), for `dur`.
fn throughput(make_ring: impl Fn() -> Endpoints, size: usize, dur: Duration) -> f64 {
    let (txs, rxs) = make_ring();
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for (i, mut tx) in txs.into_iter().enumerate() {
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            pin(2 * i);
            let msg = vec![1u8; size];
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..64 {
                    if !tx.push(&msg) {
                        std::hint::spin_loop();
                    }
                }
            }
        }));
    }
    for (i, mut rx) in rxs.into_iter().enumerate() {
        let (stop, received) = (stop.clone(), received.clone());
        threads.push(std::thread::spawn(move || {
            pin(2 * i + 1);
            let mut buf = vec![0u8; 1 << 12];
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..64 {
                    if rx.pop(&mut buf) {
                        n += 1;
                    }
                }
            }
            received.fetch_add(n, Ordering::Relaxed);
        }));
    }
    std::thread::sleep(dur);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    received.load(Ordering::Relaxed) as f64 / dur.as_secs_f64()
}

fn one(make: fn() -> Pair) -> Endpoints {
    let (tx, rx) = make();
    (vec![tx], vec![rx])
}

fn mpmc_n(p: usize, c: usize) -> Endpoints {
    let r = MpmcRing::in_heap(&MpmcConfig::new(1024, 64).notify(false)).unwrap();
    let txs = (0..p)
        .map(|_| Box::new(r.producer().unwrap()) as Box<dyn Tx>)
        .collect();
    let rxs = (0..c)
        .map(|_| Box::new(r.consumer().unwrap()) as Box<dyn Rx>)
        .collect();
    (txs, rxs)
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    println!(
        "CPU: {cpu}; {} cores; threads pinned to cores 0 and 1",
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    );
    let rounds = 5;
    let dur = Duration::from_millis(500);
    let names = [
        "spsc 1x1",
        "spsc 1x1 (notify on: the default)",
        "mpmc 1x1 (packed: shipped)",
        "mpmc 1x1 (sequence on its own line)",
        "mpmc 2x2 (packed)",
    ];
    let mut rtt8 = vec![Vec::new(); 4];
    let mut tput64 = vec![Vec::new(); 5];
    for _ in 0..rounds {
        rtt8[0].push(rtt(spsc, 8));
        rtt8[1].push(rtt(spsc_notify, 8));
        rtt8[2].push(rtt(|| mpmc(false), 8));
        rtt8[3].push(rtt(|| mpmc(true), 8));
        tput64[0].push(throughput(|| one(spsc), 64, dur));
        tput64[1].push(throughput(|| one(spsc_notify), 64, dur));
        tput64[2].push(throughput(|| one(|| mpmc(false)), 64, dur));
        tput64[3].push(throughput(|| one(|| mpmc(true)), 64, dur));
        tput64[4].push(throughput(|| mpmc_n(2, 2), 64, dur));
    }
    println!(
        "{:<38} {:>22} {:>26}",
        "ring", "round trip 8 B, p50", "one-way 64 B, M msgs/s"
    );
    for (i, name) in names.iter().enumerate() {
        let r = if i < 4 {
            let (m, lo, hi) = median(rtt8[i].clone());
            format!("{m:>7.0} ns ({lo:.0}-{hi:.0})")
        } else {
            "-".into()
        };
        let (m, lo, hi) = median(tput64[i].clone());
        println!(
            "{name:<38} {r:>22} {:>10.2} ({:.2}-{:.2})",
            m / 1e6,
            lo / 1e6,
            hi / 1e6
        );
    }
    println!("median of {rounds} interleaved rounds (min-max in parentheses)");
}
