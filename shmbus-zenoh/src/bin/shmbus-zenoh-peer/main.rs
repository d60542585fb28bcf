//! A typed shmbus publisher and subscriber for the bridge's end-to-end tests and for the
//! README's walkthrough: `pub` publishes numbered messages, `sub` receives them and reports
//! (as one JSON line) what arrived once, in order, and what did not; `bench` measures the
//! bridge against Zenoh alone and a local topic (`bench.rs`).

#![forbid(unsafe_code)]

use clap::Parser;
use serde::{Deserialize, Serialize};
use shmbus::topic::{RecvTimeoutError, StartAt};
use std::io::BufRead;
use std::time::{Duration, Instant};

mod bench;
mod bench_chan;
mod chan;

/// The message the peers exchange; its type name is fixed so that the fingerprint does not
/// depend on this binary's module path.
#[derive(Debug, Serialize, Deserialize)]
pub struct TestMsg {
    /// 0, 1, 2, ... per publisher run.
    pub seq: u64,
    /// Filler of the requested size.
    pub data: Vec<u8>,
}

/// The type name both ends use.
pub const TYPE_NAME: &str = "shmbus_zenoh::TestMsg";

#[derive(Parser)]
#[command(
    name = "shmbus-zenoh-peer",
    about = "Test and benchmark peer for shmbus-zenoh"
)]
enum Cli {
    /// Creates the topic, waits for a line on stdin if `--go-stdin`, then publishes `count`
    /// messages `seq` 0.. and keeps the topic until stdin closes.
    Pub {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Pause between messages, in microseconds.
        #[arg(long, default_value_t = 0)]
        interval_us: u64,
        #[arg(long)]
        go_stdin: bool,
    },
    /// Subscribes (waiting for the topic), prints `ready`, then receives until `seq`
    /// `count - 1` or the timeout, and prints a JSON report.
    Sub {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 60_000)]
        timeout_ms: u64,
        /// Subscribe, print `ready`, and never read (a stalled tethered subscriber).
        #[arg(long)]
        stall: bool,
        /// After the last message, keep receiving this long: anything more is a duplicate.
        #[arg(long, default_value_t = 0)]
        linger_ms: u64,
        /// After `ready`, wait for a line on stdin before receiving (a stalled subscriber
        /// that resumes), then print `resumed`.
        #[arg(long)]
        go_stdin: bool,
    },
    /// Tries to subscribe with another type; prints `refused: <error>` or `accepted`.
    WrongType {
        #[arg(long)]
        topic: String,
    },
    /// Creates a channel, then sends `count` messages `seq` 0.. (see `chan.rs`).
    Send(chan::ChanArgs),
    /// Opens a channel (waiting for it), then receives and reports as `sub` does.
    Recv(chan::ChanArgs),
    /// Tries to open a channel's receiver with another type.
    WrongTypeChannel {
        #[arg(long)]
        channel: String,
        #[arg(long)]
        mpmc: bool,
    },
    /// Latency and throughput: local topic, Zenoh alone, and through two bridges.
    Bench(bench::BenchArgs),
}

/// What a subscriber saw.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Report {
    pub received: u64,
    pub last: Option<u64>,
    pub gaps: u64,
    pub duplicates: u64,
    pub lagged: u64,
    pub disconnects: u64,
    pub complete: bool,
}

fn publish(
    topic: &str,
    count: u64,
    size: usize,
    interval: Duration,
    go: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut p = shmbus::topic::publisher::<TestMsg>()
        .type_name(TYPE_NAME)
        .max_message(size + 64)
        .create(topic)?;
    println!("created");
    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    if go {
        stdin.read_line(&mut line)?;
    }
    for seq in 0..count {
        p.send(&TestMsg {
            seq,
            data: vec![(seq % 251) as u8; size],
        })?;
        if !interval.is_zero() {
            std::thread::sleep(interval);
        }
    }
    println!("done {}", p.published());
    // Keep the topic's publisher alive until told (stdin closed).
    while stdin.read_line(&mut line)? > 0 {}
    Ok(())
}

fn subscribe(
    topic: &str,
    count: u64,
    timeout: Duration,
    stall: bool,
    linger: Duration,
    go_stdin: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let deadline = Instant::now() + timeout;
    let mut s = shmbus::topic::subscriber::<TestMsg>()
        .type_name(TYPE_NAME)
        .start_at(StartAt::Next)
        .wait_for(topic, deadline)?;
    println!("ready");
    if stall {
        std::thread::sleep(timeout);
        return Ok(());
    }
    if go_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        println!("resumed");
    }
    let mut r = Report::default();
    while Instant::now() < deadline && r.last != Some(count - 1) {
        match s.recv_deadline(deadline) {
            Ok(m) => {
                match r.last {
                    Some(l) if m.seq <= l => r.duplicates += 1,
                    Some(l) => r.gaps += m.seq - l - 1,
                    None => r.gaps += m.seq,
                }
                if r.last.is_none_or(|l| m.seq > l) {
                    r.last = Some(m.seq);
                }
                assert!(
                    m.data.iter().all(|&b| b == (m.seq % 251) as u8),
                    "payload of {} corrupt",
                    m.seq
                );
                r.received += 1;
            }
            Err(RecvTimeoutError::Timeout) => break,
            Err(RecvTimeoutError::Lagged { missed }) => r.lagged += missed,
            // The bridge that publishes here went away: its successor goes on.
            Err(RecvTimeoutError::Disconnected) => {
                r.disconnects += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e.into()),
        }
    }
    r.complete = r.last == Some(count - 1);
    let linger_end = Instant::now() + linger;
    while r.complete {
        match s.recv_deadline(linger_end) {
            Ok(_) => r.duplicates += 1,
            Err(RecvTimeoutError::Timeout) => break,
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
        if Instant::now() >= linger_end {
            break;
        }
    }
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}

fn main() -> std::process::ExitCode {
    let result = match Cli::parse() {
        Cli::Pub {
            topic,
            count,
            size,
            interval_us,
            go_stdin,
        } => publish(
            &topic,
            count,
            size,
            Duration::from_micros(interval_us),
            go_stdin,
        ),
        Cli::Sub {
            topic,
            count,
            timeout_ms,
            stall,
            linger_ms,
            go_stdin,
        } => subscribe(
            &topic,
            count,
            Duration::from_millis(timeout_ms),
            stall,
            Duration::from_millis(linger_ms),
            go_stdin,
        ),
        Cli::Send(args) => chan::send(&args),
        Cli::Recv(args) => chan::recv(&args),
        Cli::WrongTypeChannel { channel, mpmc } => chan::wrong_type(&channel, mpmc),
        Cli::Bench(args) => bench::run(&args).map_err(|e| e.to_string().into()),
        Cli::WrongType { topic } => {
            match shmbus::topic::subscriber::<String>().open(&topic) {
                Ok(_) => println!("accepted"),
                Err(e) => println!("refused: {e}"),
            }
            Ok(())
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmbus-zenoh-peer: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
