//! An MPMC worker pool across processes: the main process creates a jobs channel and a
//! results channel (both MPMC, by name), starts worker processes that open them, sends jobs
//! that any idle worker takes, and collects the results. Each job is taken by exactly one
//! worker. Workers stop when the jobs channel is disconnected (the main process dropped its
//! sender) and drained.
//!
//! Run: cargo run --release -p shmbus-examples --bin worker_pool [-- WORKERS JOBS]

use serde::{Deserialize, Serialize};
use shmbus::flavor::Mpmc;
use shmbus::ChannelBuilder;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

#[derive(Serialize, Deserialize, Debug)]
struct Job {
    id: u64,
    /// Count the primes below this.
    below: u32,
}

#[derive(Serialize, Deserialize, Debug)]
struct Done {
    id: u64,
    worker: u32,
    primes: u32,
}

fn jobs() -> ChannelBuilder<Job, Mpmc> {
    shmbus::channel::<Job>().mpmc().capacity(64).max_message(32)
}

fn results() -> ChannelBuilder<Done, Mpmc> {
    shmbus::channel::<Done>()
        .mpmc()
        .capacity(64)
        .max_message(32)
}

fn primes_below(n: u32) -> u32 {
    (2..n)
        .filter(|&k| (2..).take_while(|d| d * d <= k).all(|d| k % d != 0))
        .count() as u32
}

fn worker(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut jobs = jobs().open_receiver(&format!("{name}-jobs"))?;
    let mut results = results().open_sender(&format!("{name}-results"))?;
    let me = std::process::id();
    for job in jobs.iter() {
        results.send(Done {
            id: job.id,
            worker: me,
            primes: primes_below(job.below),
        })?;
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [role, name] = &args[..] {
        if role == "worker" {
            return worker(name);
        }
    }
    let workers: usize = args.first().map_or(Ok(3), |a| a.parse())?;
    let count: u64 = args.get(1).map_or(Ok(2000), |a| a.parse())?;

    let name = format!("/shmbus-pool-{}", std::process::id());
    let mut tx = jobs().create_sender(&format!("{name}-jobs"))?;
    let mut rx = results().create_receiver(&format!("{name}-results"))?;
    let mut children: Vec<Child> = (0..workers)
        .map(|_| {
            Command::new(std::env::current_exe()?)
                .args(["worker", &name])
                .spawn()
        })
        .collect::<Result<_, _>>()?;

    let start = Instant::now();
    // Send every job from a thread while this one collects (the rings are bounded).
    let feeder = std::thread::spawn(move || -> Result<(), String> {
        for id in 0..count {
            let job = Job {
                id,
                below: 2000 + (id % 7) as u32 * 500,
            };
            tx.send_timeout(job, Duration::from_secs(30))
                .map_err(|e| e.to_string())?;
        }
        Ok(()) // `tx` dropped: workers finish the queue and stop
    });
    let mut seen = vec![false; count as usize];
    let mut per_worker = std::collections::BTreeMap::<u32, u64>::new();
    for _ in 0..count {
        let done = rx.recv_timeout(Duration::from_secs(30))?;
        assert_eq!(done.primes, primes_below(2000 + (done.id % 7) as u32 * 500));
        assert!(
            !std::mem::replace(&mut seen[done.id as usize], true),
            "job {} twice",
            done.id
        );
        *per_worker.entry(done.worker).or_default() += 1;
    }
    feeder.join().expect("feeder")?;
    for c in &mut children {
        let status = c.wait()?;
        if !status.success() {
            return Err(format!("worker {} failed: {status}", c.id()).into());
        }
    }
    println!(
        "{count} jobs done exactly once by {workers} worker processes in {:.3} s; per worker: {per_worker:?}",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
