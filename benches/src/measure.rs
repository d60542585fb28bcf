//! One measurement: a transport at one message size between the parent and a fresh peer,
//! through every phase the transport supports; and the in-process memcpy floor.

use crate::cli::Options;
use crate::clock::{cpu_ns, now_ns};
use crate::driver;
use crate::peer::{field, Peer, RunEnv};
use crate::stats::Percentiles;
use crate::transport::Endpoint;
use crate::transport::{Phase, Transport};
use anyhow::{ensure, Context, Result};
use std::hint::black_box;
use std::time::Duration;

/// Streaming results of one round.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    /// Messages per second received.
    pub msgs_per_s: f64,
    /// Payload megabytes (10^6) per second received.
    pub mb_per_s: f64,
    /// CPU time of both processes per message, ns.
    pub cpu_ns_per_msg: f64,
}

/// Everything measured for one transport at one size in one round.
#[derive(Debug, Clone, Default)]
pub struct PairResult {
    /// Ping-pong round trip, each round trip timed on its own.
    pub rtt: Option<Percentiles>,
    /// Ping-pong round trip timed in blocks (one clock pair per block of `--rtt-block`
    /// round trips): the percentiles of the blocks' mean round trips.
    pub rtt_block: Option<Percentiles>,
    /// The bracketing floor's round-trip p50 (blocks), ns, before and after the transport's
    /// phases, in the same process pair.
    pub bracket: Option<(f64, f64)>,
    /// Batched streaming (the ring's ceiling), for transports that batch.
    pub stream_batch: Option<Throughput>,
    /// One-way latency at the offered rate (coordinated-omission corrected).
    pub oneway: Option<Percentiles>,
    /// One-way streaming.
    pub stream: Option<Throughput>,
    /// CPU share (0..1) of a receiver waiting for a message that does not come.
    pub idle_cpu: Option<f64>,
}

/// The name of the in-process copy floor.
pub const FLOOR_MEMCPY: &str = "floor-memcpy";

/// Runs every supported phase of `t` at `size` against a fresh peer.
pub fn measure(
    env: &mut RunEnv,
    t: &dyn Transport,
    size: usize,
    opts: &Options,
    with_idle: bool,
) -> Result<PairResult> {
    let budget = opts.warmup + opts.phase * 3 + opts.idle + Duration::from_secs(20);
    let budget = budget + bracket_phase(opts) * 4;
    let (mut peer, mut ep, mut floor) = Peer::spawn(env, t, size, budget)?;
    let ep = ep.as_mut();
    let mut out = PairResult::default();
    let name = t.name();
    let before = bracket(&mut peer, floor.as_mut(), opts)
        .with_context(|| format!("{name} at {size} B: bracketing floor before"))?;

    if t.supports(Phase::RoundTrip, size) {
        peer.begin("rtt")?;
        let times = driver::rtt_client(ep, size, opts.warmup, opts.phase, opts.rtt_block)
            .with_context(|| format!("{name} at {size} B: round trip"))?;
        peer.done()?;
        out.rtt = Some(Percentiles::of(&times.each));
        out.rtt_block = Some(Percentiles::of(&times.blocks));
    }

    if t.supports(Phase::Stream, size) {
        out.stream = Some(
            stream(
                &mut peer,
                ep,
                "stream",
                size,
                opts.phase,
                driver::stream_send,
            )
            .with_context(|| format!("{name} at {size} B: streaming"))?,
        );
    }

    if t.batches() {
        out.stream_batch = Some(
            stream(
                &mut peer,
                ep,
                "stream-batch",
                size,
                opts.phase,
                driver::stream_send_batch,
            )
            .with_context(|| format!("{name} at {size} B: batched streaming"))?,
        );
    }

    if t.supports(Phase::Rate, size) {
        peer.begin("rate")?;
        let sent = driver::rate_send(ep, size, opts.rate, opts.phase)
            .with_context(|| format!("{name} at {size} B: one-way"))?;
        let p = Percentiles::decode(&peer.done()?)?;
        ensure!(
            p.samples == sent,
            "{name} at {size} B: sent {sent} messages at the offered rate, the peer timed {}",
            p.samples
        );
        out.oneway = Some(p);
    }

    if with_idle && t.supports(Phase::Idle, size) {
        peer.begin("idle")?;
        std::thread::sleep(opts.idle);
        driver::idle_wake(ep, size)?;
        let f = peer.done()?;
        out.idle_cpu = Some(field(&f, "cpu_ns")? as f64 / field(&f, "wall_ns")?.max(1) as f64);
    }

    let after = bracket(&mut peer, floor.as_mut(), opts)
        .with_context(|| format!("{name} at {size} B: bracketing floor after"))?;
    out.bracket = Some((before, after));
    peer.quit()?;
    Ok(out)
}

/// How long each bracketing floor ping-pong runs: an eighth of a phase, at least 10 ms.
fn bracket_phase(opts: &Options) -> Duration {
    (opts.phase / 8).max(Duration::from_millis(10))
}

/// A short `floor-cacheline` ping-pong in the same process pair: its round-trip p50 over
/// blocks, ns.
fn bracket(peer: &mut Peer, floor: &mut dyn Endpoint, opts: &Options) -> Result<f64> {
    let d = bracket_phase(opts);
    peer.begin("floor")?;
    let times = driver::rtt_client(floor, 8, d / 4, d, opts.rtt_block)?;
    peer.done()?;
    Ok(Percentiles::of(&times.blocks).p50)
}

/// One streaming phase: the peer runs `cmd`, the parent sends with `send`.
fn stream(
    peer: &mut Peer,
    ep: &mut dyn Endpoint,
    cmd: &str,
    size: usize,
    phase: Duration,
    send: fn(&mut dyn Endpoint, usize, Duration) -> Result<u64>,
) -> Result<Throughput> {
    peer.begin(cmd)?;
    let (cpu0, t0) = (cpu_ns(), now_ns());
    let sent = send(ep, size, phase)?;
    let f = peer.done()?;
    let (cpu1, t1) = (cpu_ns(), now_ns());
    let got = field(&f, "count")?;
    ensure!(got == sent, "sent {sent} messages, the peer received {got}");
    let secs = (t1 - t0) as f64 / 1e9;
    let cpu = (cpu1 - cpu0 + field(&f, "cpu_ns")?) as f64;
    Ok(Throughput {
        msgs_per_s: got as f64 / secs,
        mb_per_s: (got as f64 * size as f64) / secs / 1e6,
        cpu_ns_per_msg: cpu / got.max(1) as f64,
    })
}

/// Single-core copy bandwidth at the message size: `size`-byte copies between two
/// cache-resident, 64-byte-aligned buffers in this process for `duration`.
///
/// Both buffers start on a cache line on purpose: with glibc 2.36 on AMD Zen 3, `memcpy` of a
/// few KiB and more (`rep movsb`) drops from ~45 GB/s to ~3 GB/s when the destination's page
/// offset is 8 to 24 bytes past the source's; with both on cache lines the distance is a
/// multiple of 64. The floor is the good case.
pub fn memcpy_floor(size: usize, duration: Duration) -> PairResult {
    let src_buf = crate::msg::new_message(size + 64);
    let mut dst_buf = vec![0u8; size + 64];
    let align = |p: *const u8| (64 - (p as usize) % 64) % 64;
    let (so, d) = (align(src_buf.as_ptr()), align(dst_buf.as_ptr()));
    let src = &src_buf[so..so + size];
    let dst = &mut dst_buf[d..d + size];
    let end = now_ns() + duration.as_nanos() as u64;
    let (cpu0, t0) = (cpu_ns(), now_ns());
    let mut n = 0u64;
    loop {
        for _ in 0..64 {
            dst.copy_from_slice(black_box(src));
            black_box(&mut *dst);
        }
        n += 64;
        if now_ns() >= end {
            break;
        }
    }
    let (cpu1, t1) = (cpu_ns(), now_ns());
    let secs = (t1 - t0) as f64 / 1e9;
    PairResult {
        stream: Some(Throughput {
            msgs_per_s: n as f64 / secs,
            mb_per_s: n as f64 * size as f64 / secs / 1e6,
            cpu_ns_per_msg: (cpu1 - cpu0) as f64 / n as f64,
        }),
        ..PairResult::default()
    }
}
