//! A broadcast topic across four processes: one publisher and three subscribers, each
//! started separately (this program re-executes itself with a role), each message written
//! once into shared memory and read by every subscriber.
//!
//! - `live`: tethered (lossless), started before the topic exists: it waits for it
//!   (`wait_for`), then receives every message in order.
//! - `lossy`: untethered, and slow on purpose: it never holds the publisher up, and when it
//!   is lapped it is told how many messages it missed (`Lagged`). What it received plus what
//!   it missed is every message.
//! - `late`: tethered, started when half the messages are out, asking for the last 8 before
//!   it joined (`StartAt::History(8)`).
//!
//! Run: `cargo run --release -p shmbus-examples --bin topic_demo [-- --messages N]`

use serde::{Deserialize, Serialize};
use shmbus::topic::{RecvTimeoutError, StartAt};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Price {
    seq: u64,
    symbol: String,
    micros: i64,
}

fn price(seq: u64) -> Price {
    Price {
        seq,
        symbol: ["ACME", "INIT", "WIDG"][(seq % 3) as usize].to_string(),
        micros: 1_000_000 + seq as i64,
    }
}

/// How many messages the late subscriber asks for from before it joined.
const LATE_HISTORY: u32 = 8;
/// The longest any step waits for another process.
const PATIENCE: Duration = Duration::from_secs(30);

struct Args {
    messages: u64,
    role: Option<String>,
    topic: Option<String>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        messages: 100_000,
        role: None,
        topic: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--messages" => a.messages = val()?.parse().map_err(|e| format!("--messages: {e}"))?,
            "--role" => a.role = Some(val()?),
            "--topic" => a.topic = Some(val()?),
            "-h" | "--help" => {
                println!("topic_demo [--messages N]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.messages < 2 * u64::from(LATE_HISTORY) {
        return Err(format!("--messages must be at least {}", 2 * LATE_HISTORY));
    }
    Ok(a)
}

fn main() {
    let args = parse().unwrap_or_else(|e| {
        eprintln!("topic_demo: {e}");
        std::process::exit(2)
    });
    let result = match (args.role.as_deref(), args.topic.as_deref()) {
        (Some(role), Some(topic)) => subscribe(role, topic, args.messages),
        _ => publish(args.messages),
    };
    if let Err(e) = result {
        eprintln!("topic_demo: {e}");
        std::process::exit(1);
    }
}

fn spawn(role: &str, topic: &str, messages: u64) -> std::io::Result<Child> {
    Command::new(std::env::current_exe()?)
        .args(["--role", role, "--topic", topic])
        .args(["--messages", &messages.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
}

/// Waits until `n` subscribers are attached.
fn await_subscribers(
    publisher: &shmbus::topic::Publisher<Price>,
    n: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let deadline = Instant::now() + PATIENCE;
    while publisher.subscribers().len() < n {
        if Instant::now() > deadline {
            return Err(format!(
                "only {} of {n} subscribers came",
                publisher.subscribers().len()
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

fn publish(messages: u64) -> Result<(), Box<dyn std::error::Error>> {
    let topic = format!("demo/prices/{}", std::process::id());
    // The subscribers start first: the topic does not exist yet, and they wait for it.
    let mut children = vec![
        ("live", spawn("live", &topic, messages)?),
        ("lossy", spawn("lossy", &topic, messages)?),
    ];
    let mut publisher = shmbus::topic::publisher::<Price>()
        .capacity_bytes(16 << 10)
        .max_message(128)
        .history(64)
        .create(&topic)?;
    println!("publisher {}: created topic {topic}", std::process::id());
    await_subscribers(&publisher, 2)?;
    let half = messages / 2;
    let started = Instant::now();
    for seq in 0..half {
        publisher.send_timeout(&price(seq), PATIENCE)?;
    }
    children.push(("late", spawn("late", &topic, messages)?));
    await_subscribers(&publisher, 3)?;
    for seq in half..messages {
        publisher.send_timeout(&price(seq), PATIENCE)?;
    }
    println!(
        "publisher: published {messages} messages in {:.3} s",
        started.elapsed().as_secs_f64()
    );
    // Gone: each subscriber drains what is left, then sees the publisher gone.
    drop(publisher);
    let mut failed = Vec::new();
    for (role, child) in children {
        let out = child.wait_with_output()?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            failed.push(format!("{role}: {}", out.status));
        }
    }
    shmbus::topic::remove(&topic)?;
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("subscribers failed: {}", failed.join(", ")).into())
    }
}

fn subscribe(role: &str, topic: &str, messages: u64) -> Result<(), Box<dyn std::error::Error>> {
    let builder = shmbus::topic::subscriber::<Price>();
    let builder = match role {
        "live" => builder,
        "lossy" => builder.tethered(false),
        "late" => builder.start_at(StartAt::History(LATE_HISTORY)),
        other => return Err(format!("unknown role {other}").into()),
    };
    let mut sub = builder.wait_for(topic, Instant::now() + PATIENCE)?;
    let (mut received, mut missed, mut first, mut next) = (0u64, 0u64, None, None);
    loop {
        match sub.recv_timeout(PATIENCE) {
            Ok(p) => {
                if p != price(p.seq) {
                    return Err(format!("{role}: message {} garbled: {p:?}", p.seq).into());
                }
                if let Some(want) = next {
                    if p.seq != want && role != "lossy" {
                        return Err(format!("{role}: got {} after {}", p.seq, want - 1).into());
                    }
                }
                first.get_or_insert(p.seq);
                next = Some(p.seq + 1);
                received += 1;
                // The lossy subscriber dawdles: the publisher laps it.
                if role == "lossy" && received % 64 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            Err(RecvTimeoutError::Lagged { missed: m }) => missed += m,
            Err(RecvTimeoutError::Disconnected) => break,
            Err(e) => return Err(format!("{role}: {e}").into()),
        }
    }
    let first = first.unwrap_or(0);
    match role {
        "lossy" => println!(
            "lossy: received {received}, missed {missed} in {} gaps; together {} of {messages}",
            sub.lapped_count(),
            received + missed
        ),
        "late" => println!(
            "late: first message {first} (the last {LATE_HISTORY} before it joined), received \
             {received} in order"
        ),
        _ => println!("live: received {received} of {messages} in order"),
    }
    Ok(())
}
