//! `shmbus bridges`: the bridges to other hosts (`shmbus-zenoh`) running here, and what
//! each topic and channel they carry has forwarded and dropped (and, for a channel export,
//! how often it waited for the remote side's credit). Read from the status files each bridge
//! rewrites (by write-then-rename) in `shmbus-bridges/` of the shm directory; the bridge is
//! never asked.

use serde_json::{json, Value};

use crate::out::{print_json, table};
use crate::{Failure, Format};

/// The bridges' status directory: `shmbus-bridges` in the shm directory.
pub fn dir() -> std::path::PathBuf {
    crate::gather::shm_dir().join("shmbus-bridges")
}

/// How old a status file may be while its bridge still counts as running, in milliseconds
/// (the bridge rewrites it every 200 ms by default).
const FRESH_MS: u64 = 5_000;

/// Every status file in `dir` that parses, sorted by bridge id.
pub fn read(dir: &std::path::Path) -> Vec<Value> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut all: Vec<Value> = entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with("shmbus-bridge.") && n.ends_with(".json"))
        })
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice::<Value>(&b).ok())
        .filter(|v| v["version"] == 1)
        .collect();
    all.sort_by(|a, b| a["zid"].as_str().cmp(&b["zid"].as_str()));
    all
}

/// Whether the bridge of status `v` is running: its process exists and its file is fresh.
fn running(v: &Value, now_ms: u64) -> bool {
    let pid_alive = v["pid"]
        .as_u64()
        .and_then(|p| i32::try_from(p).ok())
        // `kill(0, 0)` would ask about this process group: pid 0 is no bridge.
        .filter(|&p| p > 0)
        .is_some_and(|p| nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_ok());
    let fresh = v["updated_unix_ms"]
        .as_u64()
        .is_some_and(|t| now_ms.saturating_sub(t) <= FRESH_MS);
    pid_alive && fresh
}

/// Prints the bridges and their topics' counters.
pub fn print(fmt: Format) -> Result<(), Failure> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let all = read(&dir());
    if fmt.json || fmt.jsonl {
        let bridges: Vec<Value> = all
            .iter()
            .map(|v| {
                let mut v = v.clone();
                v["running"] = json!(running(&v, now_ms));
                v
            })
            .collect();
        return print_json(&json!({ "schema": "shmbus.bridges/1", "bridges": bridges }));
    }
    if all.is_empty() {
        outln!("no bridges");
        return Ok(());
    }
    let mut t = table(
        &[
            "BRIDGE",
            "PID",
            "STATE",
            "KIND",
            "NAME",
            "DIR",
            "FORWARDED",
            "DROPPED",
            "GAPS",
            "DUPS",
            "MISMATCHED",
            "CREDIT_WAITS",
        ],
        &[1, 6, 7, 8, 9, 10, 11],
    );
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
    for b in &all {
        let zid: String = b["zid"].as_str().unwrap_or("?").chars().take(8).collect();
        let state = if running(b, now_ms) {
            "running"
        } else {
            "gone"
        };
        let pid = n(b, "pid").to_string();
        let topics = b["topics"].as_array().cloned().unwrap_or_default();
        if topics.is_empty() {
            t.add_row(vec![zid.clone(), pid.clone(), state.into(), "-".into()]);
        }
        for tp in &topics {
            // A status file is untrusted input: its counters saturate.
            let dropped = n(tp, "dropped_local")
                .saturating_add(n(tp, "dropped_queue"))
                .saturating_add(n(tp, "dropped_ring"))
                .saturating_add(n(tp, "refused"));
            t.add_row(vec![
                zid.clone(),
                pid.clone(),
                state.into(),
                // Files of bridges from before channels have topics only.
                tp["kind"].as_str().unwrap_or("topic").into(),
                tp["topic"].as_str().unwrap_or("?").into(),
                tp["direction"].as_str().unwrap_or("?").into(),
                n(tp, "forwarded").to_string(),
                dropped.to_string(),
                n(tp, "gaps").to_string(),
                n(tp, "duplicates").to_string(),
                n(tp, "mismatched").to_string(),
                n(tp, "credit_waits").to_string(),
            ]);
        }
    }
    outln!("{t}");
    Ok(())
}
