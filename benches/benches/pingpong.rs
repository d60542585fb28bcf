//! In-process round trips between two threads pinned to cpu0 and cpu1: the raw SPSC ring
//! against two floors that cost the same cache-line transfers and no more (DECISIONS D95).
//!
//! - `lines`: a line each way (a message word and a Release count), as the harness's
//!   `floor-two-lines`.
//! - `records`: a minimal header-committed ring in plain Rust, shmbus's protocol with none of
//!   its checks: 8-byte messages in 16-byte records (a header word committed by a Release store,
//!   then the payload word), the zero-ahead word, `head` and `tail` published per message on
//!   lines of their own, 64 KiB of records. It does what the ring does to the cache lines, so
//!   what the ring takes beyond it is its own path: checks, layering, instructions.
//! - `shmbus-spsc`: a pair of 64 KiB SPSC rings in the heap, `try_push`/`try_pop`, no
//!   notification, 8 and 64 bytes.
//!
//! Rounds alternate the transports so that a placement change hits all of them; each line is
//! one round: ns per round trip, the mean of 10^6. `cargo bench -p shmbus-bench --bench
//! pingpong [-- ROUNDS]`. Nothing else may run meanwhile. On a VM whose vCPUs move between
//! placements, compare rows of one round only.

use shmbus::ring::{SpscConfig, SpscRing};
use std::hint::spin_loop;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Round trips per measurement.
const N: u64 = 1_000_000;

/// Pins the calling thread to `cpu` (best effort: an unpinned run is still a run).
fn pin(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    if set.set(cpu).is_ok() {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
    }
}

/// Runs `echo` on cpu1 and `ping` on cpu0, returning ns per round trip.
fn run(ping: impl FnOnce(), echo: impl FnOnce() + Send + 'static) -> f64 {
    let peer = std::thread::spawn(move || {
        pin(1);
        echo();
    });
    pin(0);
    let t = Instant::now();
    ping();
    let spent = t.elapsed();
    peer.join().expect("echo thread");
    spent.as_nanos() as f64 / N as f64
}

/// A word on a line of its own (and apart from the next line, for the adjacent-line
/// prefetcher).
#[repr(align(128))]
#[derive(Default)]
struct Line {
    word: AtomicU64,
    count: AtomicU64,
}

fn lines() -> f64 {
    let l: Arc<[Line; 2]> = Arc::default();
    let peer = l.clone();
    run(
        move || {
            for i in 1..=N {
                l[0].word.store(i, Ordering::Relaxed);
                l[0].count.store(i, Ordering::Release);
                while l[1].count.load(Ordering::Acquire) != i {
                    spin_loop();
                }
            }
        },
        move || {
            for i in 1..=N {
                while peer[0].count.load(Ordering::Acquire) != i {
                    spin_loop();
                }
                let w = peer[0].word.load(Ordering::Relaxed);
                peer[1].word.store(w, Ordering::Relaxed);
                peer[1].count.store(i, Ordering::Release);
            }
        },
    )
}

/// The minimal header-committed ring: 64 KiB of words; a record is a header word (the
/// payload length, odd: committed) and one payload word.
struct Records {
    words: Vec<AtomicU64>,
    head: Line,
    tail: Line,
}

const WORDS: u64 = 8192;

impl Records {
    fn new() -> Arc<Self> {
        Arc::new(Records {
            words: (0..WORDS).map(|_| AtomicU64::new(0)).collect(),
            head: Line::default(),
            tail: Line::default(),
        })
    }

    fn word(&self, pos: u64) -> &AtomicU64 {
        &self.words[(pos & (WORDS - 1)) as usize]
    }

    /// Zero-ahead, payload, then the header's Release store; `tail` published.
    fn push(&self, tail: &mut u64, v: u64) {
        self.word(*tail + 2).store(0, Ordering::Relaxed);
        self.word(*tail + 1).store(v, Ordering::Relaxed);
        self.word(*tail).store((8 << 1) | 1, Ordering::Release);
        *tail += 2;
        self.tail.word.store(*tail, Ordering::Release);
    }

    /// The header's Acquire load; the payload; `head` published.
    fn pop(&self, head: &mut u64) -> Option<u64> {
        if self.word(*head).load(Ordering::Acquire) == 0 {
            return None;
        }
        let v = self.word(*head + 1).load(Ordering::Relaxed);
        *head += 2;
        self.head.word.store(*head, Ordering::Release);
        Some(v)
    }
}

fn records() -> f64 {
    let (a, b) = (Records::new(), Records::new());
    let (pa, pb) = (a.clone(), b.clone());
    run(
        move || {
            let (mut head, mut tail) = (0, 0);
            for i in 0..N {
                a.push(&mut tail, i);
                while b.pop(&mut head).is_none() {
                    spin_loop();
                }
            }
        },
        move || {
            let (mut head, mut tail) = (0, 0);
            for _ in 0..N {
                let v = loop {
                    if let Some(v) = pa.pop(&mut head) {
                        break v;
                    }
                    spin_loop();
                };
                pb.push(&mut tail, v);
            }
        },
    )
}

fn spsc(size: usize) -> f64 {
    let config = SpscConfig::new(1 << 16).notify(false);
    let (a, b) = (
        SpscRing::in_heap(&config).expect("heap ring"),
        SpscRing::in_heap(&config).expect("heap ring"),
    );
    let (mut atx, mut arx) = (a.producer().unwrap(), a.consumer().unwrap());
    let (mut btx, mut brx) = (b.producer().unwrap(), b.consumer().unwrap());
    run(
        move || {
            let mut buf = vec![0u8; size];
            for i in 0..N {
                buf[..8].copy_from_slice(&i.to_le_bytes());
                while atx.try_push(&buf).is_err() {
                    spin_loop();
                }
                while brx.try_pop(&mut buf).is_err() {
                    spin_loop();
                }
            }
        },
        move || {
            let mut buf = vec![0u8; size];
            for _ in 0..N {
                while arx.try_pop(&mut buf).is_err() {
                    spin_loop();
                }
                while btx.try_push(&buf).is_err() {
                    spin_loop();
                }
            }
        },
    )
}

fn main() {
    // `cargo bench` passes `--bench`; a number among the arguments is the round count.
    let rounds = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3);
    println!("ns per round trip, threads on cpu0/cpu1, 10^6 round trips each");
    println!("round | lines | records | shmbus-spsc 8 B | shmbus-spsc 64 B");
    for round in 0..rounds {
        println!(
            "{round} | {:.1} | {:.1} | {:.1} | {:.1}",
            lines(),
            records(),
            spsc(8),
            spsc(64)
        );
    }
}
