//! `shmbus-zenoh-peer bench`: latency (ping-pong round trips) and throughput (one-way stream)
//! at each message size, in one run, over three paths:
//!
//! - a local shmbus topic (two threads, one shm directory);
//! - Zenoh's own pub/sub between two sessions over TCP on 127.0.0.1;
//! - the bridge: shmbus topic -> bridge A -> Zenoh (TCP 127.0.0.1) -> bridge B -> shmbus
//!   topic, two shm directories standing for two hosts, and back for the pong.
//!
//! and the same for channels (`bench_chan.rs`): a local SPSC channel, and one through the
//! bridges with their credit flow control.
//!
//! Everything runs in this one process (two Zenoh sessions, two bridges): the figures
//! compare paths on the same machine at the same time, not hosts.

use shmbus::topic::{Publisher, Subscriber};
use shmbus_zenoh::{Bridge, Config, Congestion, ExportRule, ImportRule, Overflow};
use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zenoh::Wait;

pub(crate) type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// The benchmark's settings.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Round trips per size and path.
    #[arg(long, default_value_t = 2000)]
    pub round_trips: usize,
    /// Messages of the throughput stream per size and path.
    #[arg(long, default_value_t = 20_000)]
    pub stream: u64,
    /// Message sizes in bytes.
    #[arg(long, value_delimiter = ',', default_value = "64,4096")]
    pub sizes: Vec<usize>,
}

/// One path's figures at one size.
pub(crate) struct Row {
    path: &'static str,
    size: usize,
    p50_us: f64,
    p99_us: f64,
    msgs_per_s: f64,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map_or(f64::NAN, |d| d.as_secs_f64() * 1e6)
}

pub(crate) fn row(path: &'static str, size: usize, mut rtts: Vec<Duration>, rate: f64) -> Row {
    rtts.sort();
    Row {
        path,
        size,
        p50_us: percentile(&rtts, 0.5),
        p99_us: percentile(&rtts, 0.99),
        msgs_per_s: rate,
    }
}

pub(crate) fn payload(seq: u64, size: usize) -> Vec<u8> {
    let mut v = vec![0xA5; size.max(8)];
    v[..8].copy_from_slice(&seq.to_le_bytes());
    v
}

pub(crate) fn seq_of(v: &[u8]) -> u64 {
    v.get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(u64::MAX, u64::from_le_bytes)
}

fn publisher(dir: &Path, topic: &str, size: usize) -> Res<Publisher<Vec<u8>>> {
    Ok(shmbus::topic::publisher::<Vec<u8>>()
        .shm_dir(dir)
        .max_message(size + 16)
        .capacity_bytes(4 << 20)
        .create(topic)?)
}

fn subscriber(dir: &Path, topic: &str) -> Res<Subscriber<Vec<u8>>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    Ok(shmbus::topic::subscriber::<Vec<u8>>()
        .shm_dir(dir)
        .wait_for(topic, deadline)?)
}

/// Echoes every message of `from` (in `dir_in`) to `to` (in `dir_out`) until 2 s pass
/// without one.
fn echo(
    dir_in: PathBuf,
    from: String,
    dir_out: PathBuf,
    to: String,
    size: usize,
) -> std::thread::JoinHandle<Res<()>> {
    std::thread::spawn(move || -> Res<()> {
        let mut sub = subscriber(&dir_in, &from)?;
        let mut out = publisher(&dir_out, &to, size)?;
        while let Ok(m) = sub.recv_timeout(Duration::from_secs(2)) {
            out.send(&m)?;
        }
        Ok(())
    })
}

/// Round trips through `ping` and `pong` (the echo must be running): warms up until a pong
/// returns, then times `n` round trips.
fn ping_pong(
    ping: &mut Publisher<Vec<u8>>,
    pong: &mut Subscriber<Vec<u8>>,
    size: usize,
    n: usize,
) -> Res<Vec<Duration>> {
    let mut seq = 0;
    let warm = Instant::now() + Duration::from_secs(30);
    loop {
        seq += 1;
        ping.send(&payload(seq, size))?;
        if let Ok(m) = pong.recv_timeout(Duration::from_millis(200)) {
            if seq_of(&m) == seq {
                break;
            }
        }
        if Instant::now() > warm {
            return Err("no pong within 30 s".into());
        }
    }
    let mut rtts = Vec::with_capacity(n);
    for _ in 0..n {
        seq += 1;
        let t = Instant::now();
        ping.send(&payload(seq, size))?;
        loop {
            let m = pong.recv_timeout(Duration::from_secs(10))?;
            if seq_of(&m) == seq {
                break;
            }
        }
        rtts.push(t.elapsed());
    }
    Ok(rtts)
}

/// Streams `n` messages from `tp` to a subscriber of `topic` in `dir_sub`; messages per
/// second from the first send to the last receipt.
fn stream(
    tp: &mut Publisher<Vec<u8>>,
    dir_sub: &Path,
    topic: &str,
    size: usize,
    n: u64,
) -> Res<f64> {
    let mut sub = subscriber(dir_sub, topic)?;
    let counter = std::thread::spawn(move || -> Result<(u64, Instant), String> {
        let mut got = 0;
        while got < n {
            match sub.recv_timeout(Duration::from_secs(10)) {
                Ok(_) => got += 1,
                Err(e) => return Err(format!("stream stopped at {got}: {e}")),
            }
        }
        Ok((got, Instant::now()))
    });
    let msg = payload(0, size);
    let t = Instant::now();
    for _ in 0..n {
        tp.send(&msg)?;
    }
    let (got, end) = counter.join().map_err(|_| "stream thread panicked")??;
    Ok(got as f64 / (end - t).as_secs_f64())
}

fn local(dir: &Path, size: usize, a: &BenchArgs) -> Res<Row> {
    let (ping_t, pong_t, tp_t) = (
        format!("bench/local/ping{size}"),
        format!("bench/local/pong{size}"),
        format!("bench/local/tp{size}"),
    );
    let mut ping = publisher(dir, &ping_t, size)?;
    let e = echo(dir.into(), ping_t.clone(), dir.into(), pong_t.clone(), size);
    let mut pong = subscriber(dir, &pong_t)?;
    let rtts = ping_pong(&mut ping, &mut pong, size, a.round_trips)?;
    let mut tp = publisher(dir, &tp_t, size)?;
    let rate = stream(&mut tp, dir, &tp_t, size, a.stream)?;
    drop(ping);
    let _ = e.join();
    Ok(row("shmbus topic (local)", size, rtts, rate))
}

fn zenoh_config(listen: Option<u16>, connect: Option<u16>) -> Res<zenoh::Config> {
    let mut c = zenoh::Config::default();
    c.insert_json5("mode", "\"peer\"")?;
    c.insert_json5("scouting/multicast/enabled", "false")?;
    if let Some(p) = listen {
        c.insert_json5("listen/endpoints", &format!("[\"tcp/127.0.0.1:{p}\"]"))?;
    }
    if let Some(p) = connect {
        c.insert_json5("connect/endpoints", &format!("[\"tcp/127.0.0.1:{p}\"]"))?;
    }
    Ok(c)
}

pub(crate) fn free_port() -> Res<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn zenoh_only(size: usize, a: &BenchArgs) -> Res<Row> {
    let port = free_port()?;
    let sa = zenoh::open(zenoh_config(Some(port), None)?).wait()?;
    let sb = zenoh::open(zenoh_config(None, Some(port))?).wait()?;
    let pong_pub = sb
        .declare_publisher(format!("bench/z/pong{size}"))
        .congestion_control(zenoh::qos::CongestionControl::Block)
        .wait()?;
    let _echo = sb
        .declare_subscriber(format!("bench/z/ping{size}"))
        .callback(move |s| {
            let _ = pong_pub.put(s.payload().clone()).wait();
        })
        .wait()?;
    let pong = sa
        .declare_subscriber(format!("bench/z/pong{size}"))
        .wait()?;
    let ping = sa
        .declare_publisher(format!("bench/z/ping{size}"))
        .congestion_control(zenoh::qos::CongestionControl::Block)
        .wait()?;
    let mut seq = 0u64;
    let warm = Instant::now() + Duration::from_secs(30);
    loop {
        seq += 1;
        ping.put(payload(seq, size)).wait()?;
        if let Some(s) = pong.recv_timeout(Duration::from_millis(200))? {
            if seq_of(&s.payload().to_bytes()) == seq {
                break;
            }
        }
        if Instant::now() > warm {
            return Err("zenoh: no pong within 30 s".into());
        }
    }
    let mut rtts = Vec::with_capacity(a.round_trips);
    for _ in 0..a.round_trips {
        seq += 1;
        let t = Instant::now();
        ping.put(payload(seq, size)).wait()?;
        loop {
            let s = pong
                .recv_timeout(Duration::from_secs(10))?
                .ok_or("zenoh: pong lost")?;
            if seq_of(&s.payload().to_bytes()) == seq {
                break;
            }
        }
        rtts.push(t.elapsed());
    }
    // Throughput: B counts; A streams with congestion control Block (lossless on loopback).
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    let _tp_sub = sb
        .declare_subscriber(format!("bench/z/tp{size}"))
        .callback(move |_| {
            c.fetch_add(1, Ordering::Relaxed);
        })
        .wait()?;
    let tp = sa
        .declare_publisher(format!("bench/z/tp{size}"))
        .congestion_control(zenoh::qos::CongestionControl::Block)
        .wait()?;
    // The subscriber's declaration reaches A first: put until one arrives.
    while count.load(Ordering::Relaxed) == 0 {
        tp.put(payload(0, size)).wait()?;
        std::thread::sleep(Duration::from_millis(10));
    }
    let start_count = count.load(Ordering::Relaxed);
    let msg = payload(0, size);
    let t = Instant::now();
    for _ in 0..a.stream {
        tp.put(msg.clone()).wait()?;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while count.load(Ordering::Relaxed) < start_count + a.stream && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(200));
    }
    let got = count.load(Ordering::Relaxed) - start_count;
    let rate = got as f64 / t.elapsed().as_secs_f64();
    drop((_echo, _tp_sub));
    sa.close().wait()?;
    sb.close().wait()?;
    Ok(row("zenoh pub/sub (tcp 127.0.0.1)", size, rtts, rate))
}

fn bridge_config(
    dir: &Path,
    status: &Path,
    listen: Option<u16>,
    connect: Option<u16>,
    export: &[String],
    import: &[String],
) -> Config {
    let mut c = Config {
        shm_dir: Some(dir.into()),
        status_dir: Some(status.into()),
        scan_interval_ms: 50,
        ..Config::default()
    };
    c.zenoh.listen = listen
        .map(|p| format!("tcp/127.0.0.1:{p}"))
        .into_iter()
        .collect();
    c.zenoh.connect = connect
        .map(|p| format!("tcp/127.0.0.1:{p}"))
        .into_iter()
        .collect();
    c.export.push(ExportRule {
        topics: export.to_vec(),
        deny: vec![],
        tethered: true,
        congestion: Congestion::Block,
    });
    let mut rule = ImportRule::new(import.to_vec());
    rule.queue = 1 << 20;
    rule.overflow = Overflow::Block;
    rule.capacity_bytes = Some(4 << 20);
    c.import.push(rule);
    c
}

fn bridged(dir_a: &Path, dir_b: &Path, size: usize, a: &BenchArgs) -> Res<Row> {
    let (ping_t, pong_t, tp_t) = (
        format!("bench/bridge/ping{size}"),
        format!("bench/bridge/pong{size}"),
        format!("bench/bridge/tp{size}"),
    );
    let port = free_port()?;
    let status = dir_a.join("status");
    let bridge_a = Bridge::start(bridge_config(
        dir_a,
        &status,
        Some(port),
        None,
        &[ping_t.clone(), tp_t.clone()],
        std::slice::from_ref(&pong_t),
    ))?;
    let bridge_b = Bridge::start(bridge_config(
        dir_b,
        &status,
        None,
        Some(port),
        std::slice::from_ref(&pong_t),
        &[ping_t.clone(), tp_t.clone()],
    ))?;
    let mut ping = publisher(dir_a, &ping_t, size)?;
    let e = echo(
        dir_b.into(),
        ping_t.clone(),
        dir_b.into(),
        pong_t.clone(),
        size,
    );
    let mut pong = subscriber(dir_a, &pong_t)?;
    let rtts = ping_pong(&mut ping, &mut pong, size, a.round_trips)?;
    let mut tp = publisher(dir_a, &tp_t, size)?;
    let rate = stream(&mut tp, dir_b, &tp_t, size, a.stream)?;
    drop((ping, tp));
    let _ = e.join();
    bridge_a.shutdown();
    bridge_b.shutdown();
    Ok(row("bridge shm->zenoh->shm", size, rtts, rate))
}

/// Runs the benchmark and prints a table.
pub fn run(a: &BenchArgs) -> Res<()> {
    let base =
        shmbus::ring::segment::shm_dir().join(format!("shmbus-zenoh-bench-{}", std::process::id()));
    let (dir_a, dir_b) = (base.join("a"), base.join("b"));
    std::fs::create_dir_all(&dir_a)?;
    std::fs::create_dir_all(&dir_b)?;
    let result = (|| -> Res<Vec<Row>> {
        let mut rows = Vec::new();
        for &size in &a.sizes {
            rows.push(local(&dir_a, size, a)?);
            rows.push(zenoh_only(size, a)?);
            rows.push(bridged(&dir_a, &dir_b, size, a)?);
            rows.push(super::bench_chan::local(&dir_a, size, a)?);
            rows.push(super::bench_chan::bridged(&dir_a, &dir_b, size, a)?);
        }
        Ok(rows)
    })();
    let _ = std::fs::remove_dir_all(&base);
    let rows = result?;
    println!(
        "{:>6}  {:<30} {:>12} {:>12} {:>14} {:>10}",
        "size", "path", "rtt p50 us", "rtt p99 us", "stream msg/s", "MB/s"
    );
    for r in &rows {
        println!(
            "{:>6}  {:<30} {:>12.1} {:>12.1} {:>14.0} {:>10.1}",
            r.size,
            r.path,
            r.p50_us,
            r.p99_us,
            r.msgs_per_s,
            r.msgs_per_s * r.size as f64 / 1e6
        );
    }
    println!(
        "({} round trips, {} streamed messages per row; one process, one noisy machine)",
        a.round_trips, a.stream
    );
    Ok(())
}
