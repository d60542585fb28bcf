//! Two-process streaming demo: this process creates an SPSC ring in named shared memory,
//! starts a second copy of itself as the consumer, streams sequence-numbered messages, and the
//! consumer checks every one and prints the rate.
//!
//! Run: `cargo run --release -p shmbus-examples --bin stream_demo [-- --messages N --size BYTES]`

use shmbus::ring::{PopError, PushError, SegmentOptions, SpscConfig, SpscRing};
use std::process::Command;
use std::time::{Duration, Instant};

struct Args {
    messages: u64,
    size: usize,
    role: Option<String>,
    name: Option<String>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        messages: 10_000_000,
        size: 64,
        role: None,
        name: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--messages" => a.messages = val()?.parse().map_err(|e| format!("--messages: {e}"))?,
            "--size" => a.size = val()?.parse().map_err(|e| format!("--size: {e}"))?,
            "--role" => a.role = Some(val()?),
            "--name" => a.name = Some(val()?),
            "-h" | "--help" => {
                println!("stream_demo [--messages N] [--size BYTES (8..=65536)]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if !(8..=65536).contains(&a.size) {
        return Err("--size must be from 8 to 65536".into());
    }
    Ok(a)
}

fn main() {
    let args = parse().unwrap_or_else(|e| {
        eprintln!("stream_demo: {e}");
        std::process::exit(2)
    });
    let result = match args.role.as_deref() {
        Some("consumer") => consume(&args),
        _ => produce(&args),
    };
    if let Err(e) = result {
        eprintln!("stream_demo: {e}");
        std::process::exit(1);
    }
}

fn produce(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("/shmbus-demo-{}", std::process::id());
    let ring = SpscRing::create_shm(
        &name,
        &SpscConfig::new(1 << 20),
        &SegmentOptions::default().prefault(true),
    )?;
    let mut tx = ring.producer()?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--role", "consumer", "--name", &name])
        .args(["--messages", &args.messages.to_string()])
        .args(["--size", &args.size.to_string()])
        .spawn()?;
    println!(
        "producer pid {}: streaming {} messages of {} B through {name} (1 MiB ring) to consumer pid {}",
        std::process::id(),
        args.messages,
        args.size,
        child.id()
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut msg = vec![0u8; args.size];
    for seq in 0..args.messages {
        msg[..8].copy_from_slice(&seq.to_le_bytes());
        let mut spins = 0u32;
        loop {
            match tx.try_push(&msg) {
                Ok(()) => break,
                Err(PushError::Full) => {
                    spins += 1;
                    if spins % 1_000_000 == 0 {
                        if Instant::now() > deadline {
                            let _ = child.kill();
                            return Err("timed out".into());
                        }
                        if let Some(status) = child.try_wait()? {
                            return Err(format!("consumer exited early: {status}").into());
                        }
                    }
                    std::hint::spin_loop();
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("consumer failed: {status}").into());
    }
    Ok(())
}

fn consume(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let name = args.name.as_deref().ok_or("--name is required")?;
    let ring = SpscRing::open_shm(name, &SegmentOptions::default())?;
    let mut rx = ring.consumer()?;
    let mut expected = 0u64;
    let mut started = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut idle = 0u32;
    while expected < args.messages {
        match rx.try_pop_with(|m| {
            (
                m.len(),
                u64::from_le_bytes(m[..8].try_into().unwrap_or_default()),
            )
        }) {
            Ok((len, seq)) => {
                if seq != expected || len != args.size {
                    return Err(format!(
                        "expected message {expected} of {} B, got {seq} of {len} B",
                        args.size
                    )
                    .into());
                }
                started.get_or_insert_with(Instant::now);
                expected += 1;
            }
            Err(PopError::Empty) => {
                idle += 1;
                if idle % 1_000_000 == 0 && Instant::now() > deadline {
                    return Err(format!("timed out after {expected} messages").into());
                }
                std::hint::spin_loop();
            }
            Err(e) => return Err(e.into()),
        }
    }
    let secs = started.map_or(0.0, |t| t.elapsed().as_secs_f64()).max(1e-9);
    let rate = args.messages as f64 / secs;
    println!(
        "consumer: received all {} messages in order in {secs:.3} s: {:.2} M msgs/s, {:.0} MB/s",
        args.messages,
        rate / 1e6,
        rate * args.size as f64 / 1e6
    );
    Ok(())
}
