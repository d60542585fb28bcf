//! Two unrelated processes that find each other by name: a producer creates a typed channel
//! under a POSIX shared-memory name, a consumer started separately opens it by that name and
//! checks the type fingerprint, then reads until the producer is gone.
//!
//! Run both ends in one go (the producer starts its consumer itself):
//!     cargo run --release -p shmbus-examples --bin by_name
//! or separately, in two terminals:
//!     cargo run --release -p shmbus-examples --bin by_name -- consumer /shmbus-by-name
//!     cargo run --release -p shmbus-examples --bin by_name -- producer /shmbus-by-name

use serde::{Deserialize, Serialize};
use std::process::Command;
use std::time::{Duration, Instant};

/// What the producer publishes. Both ends are this binary, so the type's name (part of the
/// fingerprint) is the same; separate programs would share it through a library crate or name
/// it with `ChannelBuilder::type_name`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Update {
    Price { symbol: String, micros: i64 },
    Halt { symbol: String, reason: String },
}

const UPDATES: u64 = 200_000;

fn builder() -> shmbus::ChannelBuilder<Update> {
    shmbus::channel::<Update>().capacity(1024).max_message(128)
}

fn update(i: u64) -> Update {
    let symbol = ["ACME", "INIT", "WIDG"][(i % 3) as usize].to_string();
    if i % 10_000 == 9_999 {
        Update::Halt {
            symbol,
            reason: "volatility".into(),
        }
    } else {
        Update::Price {
            symbol,
            micros: 1_000_000 + i as i64,
        }
    }
}

fn produce(name: &str, spawn_consumer: bool) -> Result<(), Box<dyn std::error::Error>> {
    let mut tx = builder().create_sender(name)?;
    println!("producer {}: created {name}", std::process::id());
    let mut child = if spawn_consumer {
        Some(
            Command::new(std::env::current_exe()?)
                .args(["consumer", name])
                .spawn()?,
        )
    } else {
        None
    };
    let start = Instant::now();
    for i in 0..UPDATES {
        // A consumer that never comes would leave the ring full: give up after a while.
        if let Err(e) = tx.send_timeout(update(i), Duration::from_secs(30)) {
            if let Some(c) = child.as_mut() {
                let _ = c.kill();
            }
            return Err(format!("update {i}: {e} (is a consumer reading {name}?)").into());
        }
    }
    println!(
        "producer: sent {UPDATES} updates in {:.3} s",
        start.elapsed().as_secs_f64()
    );
    // Dropping the sender tells the consumer that nothing more will come; the name is
    // unlinked now, but the consumer keeps its mapping and drains what is left.
    drop(tx);
    if let Some(mut c) = child {
        let status = c.wait()?;
        if !status.success() {
            return Err(format!("consumer failed: {status}").into());
        }
    }
    Ok(())
}

fn consume(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    // The producer may not have created the channel yet: retry for a while.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut rx = loop {
        match builder().open_receiver(name) {
            Ok(rx) => break rx,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e.into()),
        }
    };
    println!("consumer {}: opened {name}", std::process::id());
    let (mut received, mut halts) = (0u64, 0u64);
    // `iter` ends when the producer is gone and everything it sent has been read.
    for msg in rx.iter() {
        if msg != update(received) {
            return Err(format!("update {received} arrived as {msg:?}").into());
        }
        if matches!(msg, Update::Halt { .. }) {
            halts += 1;
        }
        received += 1;
    }
    println!("consumer: {received} updates in order ({halts} halts); producer gone");
    if received != UPDATES {
        return Err(format!("expected {UPDATES} updates").into());
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let default_name = format!("/shmbus-by-name-{}", std::process::id());
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => produce(&default_name, true),
        ["producer", name] => produce(name, false),
        ["consumer", name] => consume(name),
        _ => Err("usage: by_name [producer NAME | consumer NAME]".into()),
    };
    if let Err(e) = result {
        eprintln!("by_name: {e}");
        std::process::exit(1);
    }
}
