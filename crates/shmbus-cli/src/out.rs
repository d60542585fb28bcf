//! Output: aligned tables on a terminal (colour only on a TTY, never under `NO_COLOR`), one
//! JSON document with `--json`, one JSON object per line with `--jsonl`.

use std::io::IsTerminal;

use comfy_table::{presets, Cell, CellAlignment, Color, Table};
use serde_json::{json, Value};

use crate::doctor::{Check, Level};
use crate::gather::{self, Detail, GcRow, Listing};
use crate::{Failure, Format, EXIT_ERROR};

/// Whether to colour: stdout is a terminal and `NO_COLOR` is unset.
pub fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// A table with a header row, right-aligned numeric columns at `numeric`.
pub fn table(header: &[&str], numeric: &[usize]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::NOTHING);
    if !colour() {
        t.force_no_tty();
    }
    t.set_header(header.iter().map(|h| Cell::new(h).fg(Color::Cyan)));
    for &i in numeric {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

/// Prints a line of JSON.
pub fn print_json(v: &Value) -> Result<(), Failure> {
    let s = serde_json::to_string(v)
        .map_err(|e| Failure::new(EXIT_ERROR, format!("cannot encode JSON: {e}")))?;
    outln!("{s}");
    Ok(())
}

/// `1.5 KiB`-style sizes.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `12.3k`-style rates.
pub fn rate(r: Option<f64>) -> String {
    match r {
        None => "-".into(),
        Some(r) if r >= 1e6 => format!("{:.2}M", r / 1e6),
        Some(r) if r >= 1e4 => format!("{:.1}k", r / 1e3),
        Some(r) => format!("{r:.1}"),
    }
}

/// `3m12s`-style ages.
pub fn age(s: f64) -> String {
    let s = s.max(0.0) as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// A `alive/dead` endpoint cell, red when any is dead.
fn tally_cell(t: gather::Tally) -> Cell {
    let c = Cell::new(format!("{}/{}", t.alive, t.dead));
    if t.dead > 0 {
        c.fg(Color::Red)
    } else {
        c
    }
}

/// The `ls` table.
pub fn list_table(l: &Listing) -> Table {
    let mut t = table(
        &[
            "NAME", "KIND", "TYPE", "CAPACITY", "FILL", "PUB a/d", "SUB a/d", "MSG/S", "BYTES/S",
            "AGE", "STATE",
        ],
        &[3, 4, 7, 8, 9],
    );
    for r in &l.rows {
        if let Some(e) = &r.error {
            t.add_row(vec![
                Cell::new(clean(&r.name)),
                Cell::new("?"),
                Cell::new(""),
                Cell::new(""),
                Cell::new(""),
                Cell::new(""),
                Cell::new(""),
                Cell::new(""),
                Cell::new(""),
                Cell::new(""),
                Cell::new(clean(&format!("error: {e}"))).fg(Color::Red),
            ]);
            continue;
        }
        let capacity = match r.capacity {
            Some(c) => format!("{c} msgs"),
            None => bytes(r.data_bytes),
        };
        let state = if r.stale {
            Cell::new("stale").fg(Color::Yellow)
        } else {
            Cell::new("ok").fg(Color::Green)
        };
        t.add_row(vec![
            Cell::new(clean(&r.name)),
            Cell::new(r.kind),
            Cell::new(clean(&r.type_name)),
            Cell::new(capacity),
            Cell::new(format!("{:.1}%", r.fill_pct())),
            tally_cell(r.producers),
            tally_cell(r.consumers),
            Cell::new(rate(r.msg_rate)),
            Cell::new(rate(r.byte_rate)),
            Cell::new(age(r.age_s)),
            state,
        ]);
    }
    t
}

/// The `shmbus.ls/1` document.
pub fn list_json(l: &Listing) -> Value {
    json!({
        "schema": "shmbus.ls/1",
        "segments": l.rows.iter().map(gather::Row::json).collect::<Vec<_>>(),
        "skipped": l.skipped,
    })
}

/// Prints `ls`.
pub fn print_list(l: &Listing, fmt: Format) -> Result<(), Failure> {
    if fmt.json || fmt.jsonl {
        return print_json(&list_json(l));
    }
    if l.rows.is_empty() {
        outln!("no shmbus segments in {}", gather::shm_dir().display());
    } else {
        outln!("{}", list_table(l));
    }
    if !l.skipped.is_empty() {
        outln!(
            "({} other object(s) in {} skipped: not shmbus segments, or not readable)",
            l.skipped.len(),
            gather::shm_dir().display()
        );
    }
    Ok(())
}

/// Prints `inspect`.
pub fn print_inspect(d: &Detail, fmt: Format) -> Result<(), Failure> {
    let v = d.json();
    if fmt.json || fmt.jsonl {
        return print_json(&v);
    }
    let h = d.obs.header();
    let s = &d.snap;
    outln!(
        "{}  ({} ring, layout {}.{})",
        d.name,
        gather::kind(d.obs.kind()),
        h.layout_major,
        h.layout_minor
    );
    let mut t = table(&["FIELD", "VALUE"], &[]);
    let info = match &d.info {
        Ok(Some(i)) => vec![
            ("type", i.type_name.clone()),
            ("codec", i.codec.clone()),
            ("channel name", i.name.clone()),
            ("creator program", i.creator_program.clone()),
        ],
        Ok(None) => vec![("info region", "none (raw bytes)".to_string())],
        Err(e) => vec![("info region", format!("unreadable: {e}"))],
    };
    let flags = [
        (1, "notify"),
        (2, "checksum"),
        (4, "bounded"),
        (8, "aligned"),
        (16, "membarrier"),
    ]
    .iter()
    .filter(|(b, _)| h.ring_flags & b != 0)
    .map(|(_, n)| *n)
    .collect::<Vec<_>>()
    .join(",");
    let mut rows: Vec<(&str, String)> = vec![
        (
            "creator",
            format!(
                "pid {} ({})",
                h.creator_pid,
                gather::vitality(d.obs.creator())
            ),
        ),
        ("segment size", bytes(h.total_len)),
        (
            "ring flags",
            if flags.is_empty() { "-".into() } else { flags },
        ),
        (
            "capacity",
            format!(
                "{} ({})",
                h.capacity,
                if d.obs.kind() == shmbus_ring::RingKind::Spsc {
                    "data bytes"
                } else {
                    "slots"
                }
            ),
        ),
        ("record limit", format!("{} bytes", h.record_limit)),
        ("max message", format!("{} bytes", d.obs.max_message())),
        (
            "message limit",
            d.obs
                .capacity()
                .map_or("- (bytes only)".into(), |c| c.to_string()),
        ),
        ("type fingerprint", format!("{:#018x}", h.type_fingerprint)),
        ("codec id", h.codec_id.to_string()),
    ];
    rows.extend(info);
    rows.extend([
        ("tail (producer)", s.tail.to_string()),
        ("head (consumer)", s.head.to_string()),
        (
            "messages in ring",
            s.len.map_or("- (not counted)".into(), |n| n.to_string()),
        ),
        ("bytes in use", bytes(d.obs.used_bytes())),
        (
            "waiters data/space",
            format!("{}/{}", s.waiters[0], s.waiters[1]),
        ),
    ]);
    for (k, v) in rows {
        t.add_row(vec![k.to_string(), clean(&v)]);
    }
    outln!("{t}");
    outln!();
    let mut e = table(
        &["TAG", "ROLE", "PID", "PROGRAM", "PHASE", "VITALITY", "LOCK"],
        &[0, 2],
    );
    for (ep, prog) in &d.endpoints {
        let vit = Cell::new(gather::vitality(ep.vitality));
        let vit = match ep.vitality {
            shmbus_ring::liveness::Vitality::Dead => vit.fg(Color::Red),
            shmbus_ring::liveness::Vitality::Alive => vit.fg(Color::Green),
            shmbus_ring::liveness::Vitality::Unknown => vit.fg(Color::Yellow),
        };
        e.add_row(vec![
            Cell::new(ep.tag),
            Cell::new(gather::role(ep.role)),
            Cell::new(ep.pid),
            Cell::new(clean(prog)),
            Cell::new(gather::phase(ep.phase)),
            vit,
            Cell::new(if ep.locked { "ofd" } else { "-" }),
        ]);
    }
    if d.endpoints.is_empty() {
        outln!("no endpoints registered");
    } else {
        outln!("{e}");
    }
    outln!();
    let mut c = table(&["COUNTER", "PRODUCER", "CONSUMER"], &[1, 2]);
    for ((name, p), (_, q)) in s.stats[0].named().iter().zip(s.stats[1].named().iter()) {
        c.add_row(vec![name.to_string(), p.to_string(), q.to_string()]);
    }
    outln!("{c}");
    Ok(())
}

/// Text from shared memory or the shm directory (names, types, programs, message text),
/// made safe for a terminal: control characters (an escape sequence a hostile peer wrote
/// into a type name, say) are shown escaped (`\u{1b}`), not sent to the terminal. JSON output
/// escapes them by itself.
pub fn clean(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Prints `gc` / `rm`.
pub fn print_gc(rows: &[GcRow], yes: bool, fmt: Format) -> Result<(), Failure> {
    if fmt.json || fmt.jsonl {
        return print_json(&json!({
            "schema": "shmbus.gc/1",
            "dry_run": !yes,
            "segments": rows.iter().map(GcRow::json).collect::<Vec<_>>(),
        }));
    }
    if rows.is_empty() {
        outln!("no stale segments");
        return Ok(());
    }
    let mut t = table(&["NAME", "CREATOR", "ENDPOINTS a/d", "ACTION"], &[]);
    for r in rows {
        t.add_row(vec![
            clean(&r.name),
            format!("{} ({})", r.creator_pid, gather::vitality(r.creator)),
            format!("{}/{}", r.alive, r.dead),
            r.why.clone(),
        ]);
    }
    outln!("{t}");
    if !yes && rows.iter().any(|r| r.stale) {
        outln!("dry run: run `shmbus gc --yes` to remove them");
    }
    Ok(())
}

/// Prints `doctor`.
pub fn print_doctor(checks: &[Check], fmt: Format) -> Result<(), Failure> {
    if fmt.json || fmt.jsonl {
        return print_json(&json!({
            "schema": "shmbus.doctor/1",
            "checks": checks.iter().map(|c| json!({
                "check": c.name, "value": c.value, "level": c.level.name(), "note": c.note,
            })).collect::<Vec<_>>(),
        }));
    }
    let mut t = table(&["CHECK", "VALUE", "", "NOTE"], &[]);
    for c in checks {
        let level = Cell::new(c.level.name());
        let level = match c.level {
            Level::Ok => level.fg(Color::Green),
            Level::Warn => level.fg(Color::Yellow),
            Level::Info => level,
        };
        t.add_row(vec![
            Cell::new(&c.name),
            Cell::new(&c.value),
            level,
            Cell::new(&c.note),
        ]);
    }
    outln!("{t}");
    Ok(())
}
