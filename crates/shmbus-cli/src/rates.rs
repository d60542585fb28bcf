//! `hz`, `bw` and `echo`: watching messages pass, passively (a read-only
//! `shmbus_ring::observe::Peek`; the consumers are never touched).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shmbus_ring::observe::{Observer, Peeked, Start};

use crate::gather::Meter;
use crate::out::print_json;
use crate::{shm_name, Failure, Format, RateArgs, EXIT_ERROR};

/// What `hz`/`bw` report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Messages per second (`hz`).
    Messages,
    /// Payload bytes per second (`bw`).
    Bytes,
}

/// How often a watcher looks for new messages.
const POLL: Duration = Duration::from_millis(1);

/// Runs `hz` or `bw`.
pub fn run(a: &RateArgs, what: Measure) -> Result<(), Failure> {
    let name = shm_name(&a.name);
    let period = Duration::try_from_secs_f64(a.period)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            Failure::new(
                2,
                format!("--period {}: give a positive number of seconds", a.period),
            )
        })?;
    let window = a.window.max(1);
    // One document needs an end: `--json` without `--count` reports one window.
    let count = if a.fmt.json && a.count == 0 {
        window as u64
    } else {
        a.count
    };
    let obs = Observer::open(&name).map_err(|e| Failure::of(&name, &e))?;
    let mut meter = Meter::new(&obs);
    let (schema, unit) = match what {
        Measure::Messages => ("shmbus.hz/1", "msg/s"),
        Measure::Bytes => ("shmbus.bw/1", "B/s"),
    };
    let mut rates: VecDeque<f64> = VecDeque::with_capacity(window);
    let mut reports = Vec::new();
    let mut last = Instant::now();
    meter.pump();
    let (mut msgs0, mut bytes0) = (meter.total(), meter.total_bytes());
    let mut n = 0u64;
    while count == 0 || n < count {
        let end = last + period;
        while Instant::now() < end {
            std::thread::sleep(POLL.min(end.saturating_duration_since(Instant::now())));
            meter.pump();
        }
        meter.pump();
        let now = Instant::now();
        if let Some(e) = &meter.error {
            return Err(Failure::new(EXIT_ERROR, format!("{name}: {e}")));
        }
        let dt = now.duration_since(last).as_secs_f64();
        last = now;
        let (msgs, bytes) = (meter.total() - msgs0, meter.total_bytes() - bytes0);
        (msgs0, bytes0) = (meter.total(), meter.total_bytes());
        let r = match what {
            Measure::Messages => msgs as f64 / dt,
            Measure::Bytes => bytes as f64 / dt,
        };
        if rates.len() == window {
            rates.pop_front();
        }
        rates.push_back(r);
        let min = rates.iter().copied().fold(f64::INFINITY, f64::min);
        let max = rates.iter().copied().fold(0.0, f64::max);
        let mean = rates.iter().sum::<f64>() / rates.len() as f64;
        let report = json!({
            "schema": schema, "name": name, "period_s": crate::gather::round2(dt),
            "messages": msgs, "bytes": bytes, "missed_total": meter.missed,
            "rate": round3(r), "min": round3(min), "mean": round3(mean), "max": round3(max),
            "window": rates.len(),
        });
        if a.fmt.jsonl {
            print_json(&report)?;
        } else if a.fmt.json {
            reports.push(report);
        } else {
            let missed = if meter.missed > 0 {
                format!(
                    "  (missed {} since start: the ring lapped the observer)",
                    meter.missed
                )
            } else {
                String::new()
            };
            println!(
                "{name}: {} {unit}  min {} mean {} max {} over {} report(s){missed}",
                fmt_rate(r),
                fmt_rate(min),
                fmt_rate(mean),
                fmt_rate(max),
                rates.len()
            );
        }
        n += 1;
    }
    if a.fmt.json {
        let mean = rates.iter().sum::<f64>() / rates.len().max(1) as f64;
        print_json(&json!({
            "schema": schema, "name": name, "reports": reports,
            "mean": round3(mean),
        }))?;
    }
    Ok(())
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn fmt_rate(r: f64) -> String {
    format!("{r:.1}")
}

/// What `echo` takes.
pub struct EchoArgs {
    /// The shm name.
    pub name: String,
    /// Stop after this many messages (0: never).
    pub count: u64,
    /// Stop after this long (0: never).
    pub timeout: Duration,
    /// Start at the consumers' position.
    pub from_oldest: bool,
    /// `auto`, `hex`, `text`, `json`.
    pub decode: String,
    /// Output format.
    pub fmt: Format,
}

/// How a payload is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decode {
    Hex,
    Text,
    Json,
}

fn decoder(arg: &str, codec: &str) -> Result<Decode, Failure> {
    let pick = |c: &str| match c.to_ascii_lowercase().as_str() {
        "utf8" | "utf-8" | "text" | "string" | "str" => Some(Decode::Text),
        "json" => Some(Decode::Json),
        "hex" | "raw" | "" | "bytes" => Some(Decode::Hex),
        _ => None,
    };
    if arg == "auto" {
        // A codec the tool does not know (bincode, postcard, plain): hex.
        return Ok(pick(codec).unwrap_or(Decode::Hex));
    }
    pick(arg).ok_or_else(|| Failure::new(2, format!("--decode {arg}: use auto, hex, text or json")))
}

/// The payload shown as `d` says: `(encoding, value)`; what does not decode falls back to hex.
fn show(d: Decode, bytes: &[u8]) -> (&'static str, Value) {
    match d {
        Decode::Text => {
            if let Ok(s) = std::str::from_utf8(bytes) {
                return ("text", Value::String(s.to_string()));
            }
        }
        Decode::Json => {
            if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
                return ("json", v);
            }
        }
        Decode::Hex => {}
    }
    ("hex", Value::String(hex(bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `echo`.
pub fn echo(a: &EchoArgs) -> Result<(), Failure> {
    let name = &a.name;
    let obs = Observer::open(name).map_err(|e| Failure::of(name, &e))?;
    let codec = obs
        .info()
        .ok()
        .flatten()
        .map(|i| i.codec)
        .unwrap_or_default();
    let d = decoder(&a.decode, &codec)?;
    let mut peek = obs.peek(if a.from_oldest {
        Start::Oldest
    } else {
        Start::Newest
    });
    let start = Instant::now();
    let mut buf = Vec::new();
    let mut seen = 0u64;
    let mut doc = Vec::new();
    while a.count == 0 || seen < a.count {
        if !a.timeout.is_zero() && start.elapsed() >= a.timeout {
            break;
        }
        match peek.next(&mut buf).map_err(|e| Failure::of(name, &e))? {
            Peeked::Message { position } => {
                seen += 1;
                let (enc, v) = show(d, &buf);
                let item = json!({
                    "schema": "shmbus.echo/1", "position": position, "len": buf.len(),
                    "encoding": enc, "data": v,
                });
                if a.fmt.jsonl {
                    print_json(&item)?;
                } else if a.fmt.json {
                    doc.push(item);
                } else {
                    let text = match v {
                        Value::String(s) if enc != "json" => s,
                        other => other.to_string(),
                    };
                    println!("[{position}] {} B {enc}: {text}", buf.len());
                }
            }
            Peeked::Missed { from, to } => {
                let item = json!({"schema": "shmbus.echo/1", "missed": {"from": from, "to": to}});
                if a.fmt.jsonl {
                    print_json(&item)?;
                } else if a.fmt.json {
                    doc.push(item);
                } else {
                    println!(
                        "[{from}..{to}] missed: the ring reused this space before it was copied"
                    );
                }
            }
            Peeked::Nothing => std::thread::sleep(Duration::from_micros(200)),
        }
    }
    if a.fmt.json {
        print_json(&json!({"schema": "shmbus.echo/1", "name": name, "messages": doc}))?;
    }
    Ok(())
}
