//! What the typed layer costs: a typed channel carrying a 64-byte struct with bincode against
//! the raw SPSC ring carrying 64 bytes, measured in the same run. Two processes pinned to CPUs
//! 0 and 1, both spinning (`WaitStrategy::Spin`, rings without notification), interleaved
//! rounds, every transfer a spin on the non-blocking calls; round trip (ping-pong) percentiles and one-way throughput, medians across rounds.
//!
//! Run: cargo run --release -p shmbus-examples --bin channel_vs_raw [-- --rounds 5 --pings 100000 --stream 5000000]
//!      (`--quick` for a smoke run)

use serde::{Deserialize, Serialize};
use shmbus::flavor::Spsc;
use shmbus::ring::{Consumer, Producer, SegmentOptions, SpscConfig, SpscRing, WaitStrategy};
use shmbus::{ChannelBuilder, Receiver, Sender};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// 64 bytes in memory; bincode's variable-length integers make it shorter on the wire.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
struct Tick {
    seq: u64,
    timestamp_ns: u64,
    instrument: u32,
    venue: u16,
    side: u8,
    flags: u8,
    price: f64,
    quantity: u64,
    bid: f64,
    ask: f64,
    order_id: u64,
}

const _: () = assert!(size_of::<Tick>() == 64);

fn tick(seq: u64) -> Tick {
    Tick {
        seq,
        timestamp_ns: 1_700_000_000_000_000_000 + seq,
        instrument: 4711,
        venue: 3,
        side: (seq & 1) as u8,
        flags: 0,
        price: 101.25,
        quantity: 300,
        bid: 101.20,
        ask: 101.30,
        order_id: 9_000_000_000 + seq,
    }
}

#[derive(Clone, Copy)]
struct Params {
    rounds: usize,
    pings: usize,
    stream: u64,
}

fn typed() -> ChannelBuilder<Tick> {
    shmbus::channel::<Tick>()
        .capacity(4096)
        .max_message(128)
        .notify(false)
        .wait_strategy(WaitStrategy::Spin)
        .prefault(true)
}

fn raw_config() -> SpscConfig {
    // The same ring size as the typed channel: (4096 + 1) records of 136 bytes, rounded up.
    SpscConfig::new(1 << 20).max_record(128).notify(false)
}

struct Typed {
    tx: Sender<Tick, Spsc>,
    rx: Receiver<Tick, Spsc>,
}

struct Raw {
    tx: Producer,
    rx: Consumer,
}

fn pin(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    if set.set(cpu).is_ok()
        && nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).is_err()
    {
        eprintln!("could not pin to cpu {cpu}; running unpinned");
    }
}

fn open_raw(
    name: &str,
    producer: bool,
) -> Result<(Option<Producer>, Option<Consumer>), shmbus::ring::Error> {
    let ring = SpscRing::open_shm(name, &SegmentOptions::default())?;
    Ok(if producer {
        let mut p = ring.producer()?;
        p.set_wait_strategy(WaitStrategy::Spin);
        (Some(p), None)
    } else {
        let mut c = ring.consumer()?;
        c.set_wait_strategy(WaitStrategy::Spin);
        (None, Some(c))
    })
}

fn peer(name: &str, p: Params) -> Result<(), Box<dyn std::error::Error>> {
    pin(1);
    let mut t = Typed {
        rx: typed().open_receiver(&format!("{name}-ta"))?,
        tx: typed().open_sender(&format!("{name}-tb"))?,
    };
    let mut r = Raw {
        rx: open_raw(&format!("{name}-ra"), false)?
            .1
            .ok_or("consumer")?,
        tx: open_raw(&format!("{name}-rb"), true)?.0.ok_or("producer")?,
    };
    let mut buf = [0u8; 128];
    for _ in 0..p.rounds {
        for _ in 0..p.pings {
            let m = recv_typed(&mut t.rx)?;
            send_typed(&mut t.tx, m)?;
        }
        for _ in 0..p.pings {
            let n = pop_raw(&mut r.rx, &mut buf)?;
            push_raw(&mut r.tx, &buf[..n])?;
        }
        for seq in 0..p.stream {
            let m = recv_typed(&mut t.rx)?;
            if m.seq != seq {
                return Err(format!("typed stream: {seq} arrived as {}", m.seq).into());
            }
        }
        send_typed(&mut t.tx, tick(p.stream))?;
        for seq in 0..p.stream {
            let n = pop_raw(&mut r.rx, &mut buf)?;
            if n != 64 || buf[..8] != seq.to_le_bytes() {
                return Err(format!("raw stream: record {seq} is wrong").into());
            }
        }
        push_raw(&mut r.tx, &p.stream.to_le_bytes())?;
    }
    Ok(())
}

// Every transfer spins on the non-blocking calls (`try_send`/`try_recv`, `try_push`/`try_pop`),
// as the benchmark harness does, so both transports wait the same way.

fn send_typed(tx: &mut Sender<Tick, Spsc>, mut m: Tick) -> Result<(), shmbus::TrySendError<Tick>> {
    loop {
        match tx.try_send(m) {
            Err(shmbus::TrySendError::Full(back)) => m = back,
            other => return other,
        }
        std::hint::spin_loop();
    }
}

fn recv_typed(rx: &mut Receiver<Tick, Spsc>) -> Result<Tick, shmbus::TryRecvError> {
    loop {
        match rx.try_recv() {
            Err(shmbus::TryRecvError::Empty) => std::hint::spin_loop(),
            other => return other,
        }
    }
}

fn push_raw(tx: &mut Producer, bytes: &[u8]) -> Result<(), shmbus::ring::PushError> {
    loop {
        match tx.try_push(bytes) {
            Err(shmbus::ring::PushError::Full) => std::hint::spin_loop(),
            other => return other,
        }
    }
}

fn pop_raw(rx: &mut Consumer, buf: &mut [u8]) -> Result<usize, shmbus::ring::PopError> {
    loop {
        match rx.try_pop(buf) {
            Err(shmbus::ring::PopError::Empty) => std::hint::spin_loop(),
            other => return other,
        }
    }
}

struct Figures {
    p50: Duration,
    p99: Duration,
    rate: f64,
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q) as usize]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut p = Params {
        rounds: 5,
        pings: 100_000,
        stream: 5_000_000,
    };
    let mut role = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--rounds" => p.rounds = val()?.parse()?,
            "--pings" => p.pings = val()?.parse()?,
            "--stream" => p.stream = val()?.parse()?,
            "--quick" => {
                p = Params {
                    rounds: 1,
                    pings: 1000,
                    stream: 10_000,
                }
            }
            "--peer" => role = Some(val()?.clone()),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if let Some(name) = role {
        return peer(&name, p);
    }
    pin(0);
    let name = format!("/shmbus-cvr-{}", std::process::id());
    let mut t = Typed {
        tx: typed().create_sender(&format!("{name}-ta"))?,
        rx: typed().create_receiver(&format!("{name}-tb"))?,
    };
    let opts = SegmentOptions::default().prefault(true);
    let ra = SpscRing::create_shm(&format!("{name}-ra"), &raw_config(), &opts)?;
    let rb = SpscRing::create_shm(&format!("{name}-rb"), &raw_config(), &opts)?;
    let mut r = Raw {
        tx: ra.producer()?,
        rx: rb.consumer()?,
    };
    r.tx.set_wait_strategy(WaitStrategy::Spin);
    r.rx.set_wait_strategy(WaitStrategy::Spin);
    let mut child: Child = Command::new(std::env::current_exe()?)
        .args(["--peer", &name])
        .args(["--rounds", &p.rounds.to_string()])
        .args(["--pings", &p.pings.to_string()])
        .args(["--stream", &p.stream.to_string()])
        .spawn()?;
    let result = measure(&mut t, &mut r, p);
    if result.is_err() {
        let _ = child.kill();
    }
    let (typed_f, raw_f) = result?;
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("peer failed: {status}").into());
    }
    let encoded = <shmbus::codec::Bincode as shmbus::codec::Codec<Tick>>::encoded_len(&tick(1))?;
    println!(
        "{} rounds, {} round trips and {} one-way messages per round per transport; medians across rounds",
        p.rounds, p.pings, p.stream
    );
    println!("| transport | round trip p50 | round trip p99 | one way |");
    println!("|---|---|---|---|");
    for (label, f) in [
        (
            format!("typed channel, 64 B struct, bincode ({encoded} B encoded)"),
            &typed_f,
        ),
        ("raw SPSC ring, 64 B".to_string(), &raw_f),
    ] {
        println!(
            "| {label} | {:.0} ns | {:.0} ns | {:.2} M msgs/s |",
            f.p50.as_nanos(),
            f.p99.as_nanos(),
            f.rate / 1e6
        );
    }
    Ok(())
}

fn measure(
    t: &mut Typed,
    r: &mut Raw,
    p: Params,
) -> Result<(Figures, Figures), Box<dyn std::error::Error>> {
    let mut typed_rounds = Vec::new();
    let mut raw_rounds = Vec::new();
    let mut lat = Vec::with_capacity(p.pings);
    let mut buf = [0u8; 128];
    for _ in 0..p.rounds {
        // Round trips, typed.
        lat.clear();
        for seq in 0..p.pings as u64 {
            let start = Instant::now();
            send_typed(&mut t.tx, tick(seq))?;
            let back = recv_typed(&mut t.rx)?;
            lat.push(start.elapsed());
            assert_eq!(back.seq, seq);
        }
        lat.sort();
        let typed_rt = (percentile(&lat, 0.5), percentile(&lat, 0.99));
        // Round trips, raw.
        lat.clear();
        let mut msg = [7u8; 64];
        for seq in 0..p.pings as u64 {
            msg[..8].copy_from_slice(&seq.to_le_bytes());
            let start = Instant::now();
            push_raw(&mut r.tx, &msg)?;
            let n = pop_raw(&mut r.rx, &mut buf)?;
            lat.push(start.elapsed());
            assert_eq!(&buf[..n], &msg);
        }
        lat.sort();
        let raw_rt = (percentile(&lat, 0.5), percentile(&lat, 0.99));
        // Streams: from the first send to the peer's acknowledgement of the last message.
        let start = Instant::now();
        for seq in 0..p.stream {
            send_typed(&mut t.tx, tick(seq))?;
        }
        assert_eq!(recv_typed(&mut t.rx)?.seq, p.stream);
        let typed_rate = p.stream as f64 / start.elapsed().as_secs_f64();
        let start = Instant::now();
        for seq in 0..p.stream {
            msg[..8].copy_from_slice(&seq.to_le_bytes());
            push_raw(&mut r.tx, &msg)?;
        }
        pop_raw(&mut r.rx, &mut buf)?;
        let raw_rate = p.stream as f64 / start.elapsed().as_secs_f64();
        typed_rounds.push((typed_rt, typed_rate));
        raw_rounds.push((raw_rt, raw_rate));
    }
    let summarize = |rounds: &[((Duration, Duration), f64)]| Figures {
        p50: Duration::from_nanos(
            median(rounds.iter().map(|r| r.0 .0.as_nanos() as f64).collect()) as u64,
        ),
        p99: Duration::from_nanos(
            median(rounds.iter().map(|r| r.0 .1.as_nanos() as f64).collect()) as u64,
        ),
        rate: median(rounds.iter().map(|r| r.1).collect()),
    };
    Ok((summarize(&typed_rounds), summarize(&raw_rounds)))
}
