//! `shmbus bridges` reads the status files that `shmbus-zenoh` bridges write in
//! `shmbus-bridges/` of the shm directory: a running bridge's drops show, for topics and
//! channels, a gone one is marked so, and `shmbus ls` does not take the files for segments.

use assert_cmd::Command;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn shmbus(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_shmbus"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("SHMBUS_DIR", dir)
        .timeout(Duration::from_secs(60))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()
}

fn status(zid: &str, pid: u32, updated: u64, dropped_queue: u64) -> Value {
    json!({
        "version": 1, "zid": zid, "pid": pid, "domain": "default", "updated_unix_ms": updated,
        "topics": [{
            "topic": "orders/eu", "direction": "import", "active": true, "forwarded": 10,
            "dropped_local": 0, "dropped_queue": dropped_queue, "dropped_ring": 2, "gaps": 3,
            "duplicates": 0, "mismatched": 1, "refused": 0, "skipped_own": 0, "put_errors": 0
        }, {
            "topic": "/jobs", "kind": "channel", "direction": "export", "active": true,
            "forwarded": 40, "dropped_local": 1, "dropped_queue": 0, "dropped_ring": 0, "gaps": 0,
            "duplicates": 0, "mismatched": 0, "refused": 0, "skipped_own": 0, "put_errors": 0,
            "credit_waits": 12
        }],
        "remote": []
    })
}

#[test]
fn bridges_lists_status_files_with_their_drops() {
    let dir = std::env::temp_dir().join(format!("shmbus-cli-bridges-{}", std::process::id()));
    let sub = dir.join("shmbus-bridges");
    std::fs::create_dir_all(&sub).unwrap();
    let now = u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    // This test process stands for a running bridge; pid 0x7fff_fff0 for one long gone.
    let live = status("aaaa1111bbbb", std::process::id(), now, 5);
    let gone = status("ffff0000", 0x7fff_fff0, now - 60_000, 0);
    std::fs::write(
        sub.join("shmbus-bridge.aaaa1111bbbb.json"),
        live.to_string(),
    )
    .unwrap();
    std::fs::write(sub.join("shmbus-bridge.ffff0000.json"), gone.to_string()).unwrap();
    std::fs::write(sub.join("shmbus-bridge.broken.json"), "{not json").unwrap();

    let doc: Value = serde_json::from_str(&shmbus(&dir, &["bridges", "--json"])).unwrap();
    assert_eq!(doc["schema"], "shmbus.bridges/1");
    let bridges = doc["bridges"].as_array().unwrap();
    assert_eq!(bridges.len(), 2, "{doc}");
    assert_eq!(bridges[0]["zid"], "aaaa1111bbbb");
    assert_eq!(bridges[0]["running"], true);
    assert_eq!(bridges[0]["topics"][0]["dropped_queue"], 5);
    assert_eq!(bridges[1]["running"], false);

    let text = shmbus(&dir, &["bridges"]);
    let row = text
        .lines()
        .find(|l| l.contains("aaaa1111") && l.contains("orders/eu"))
        .unwrap_or_else(|| panic!("{text}"));
    // Dropped = queue 5 + ring 2; gaps 3; mismatched 1.
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[2], "running", "{row}");
    assert_eq!(cells[3], "topic", "{row}");
    assert_eq!(&cells[6..], ["10", "7", "3", "0", "1", "0"], "{row}");
    // A channel's row: its kind, and the times its export waited for credit.
    let row = text
        .lines()
        .find(|l| l.contains("aaaa1111") && l.contains("/jobs"))
        .unwrap_or_else(|| panic!("{text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[3..6], ["channel", "/jobs", "export"], "{row}");
    assert_eq!(&cells[6..], ["40", "1", "0", "0", "0", "12"], "{row}");
    assert!(text.contains("gone"), "{text}");

    // `ls` lists segments only: the status directory is not one.
    let ls: Value = serde_json::from_str(&shmbus(&dir, &["ls", "--json"])).unwrap();
    assert!(!ls.to_string().contains("shmbus-bridge"), "{ls}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bridges_without_any_says_so() {
    let dir = std::env::temp_dir().join(format!("shmbus-cli-nobridge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    assert_eq!(shmbus(&dir, &["bridges"]).trim(), "no bridges");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A status file is untrusted input (anyone who can write the shm directory can write one):
/// counters at the end of the range must not make `shmbus bridges` panic, and a pid of 0
/// (which `kill(0, 0)` would take for this process group) is no running bridge.
#[test]
fn bridges_survive_hostile_status_files() {
    let dir = std::env::temp_dir().join(format!("shmbus-cli-hostile-{}", std::process::id()));
    let sub = dir.join("shmbus-bridges");
    std::fs::create_dir_all(&sub).unwrap();
    let now = u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let mut v = status("cccc2222", 0, now, u64::MAX);
    v["topics"][0]["dropped_ring"] = json!(u64::MAX);
    std::fs::write(sub.join("shmbus-bridge.cccc2222.json"), v.to_string()).unwrap();
    let text = shmbus(&dir, &["bridges"]);
    let row = text
        .lines()
        .find(|l| l.contains("cccc2222") && l.contains("orders/eu"))
        .unwrap_or_else(|| panic!("{text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[2], "gone", "pid 0 is no bridge: {row}");
    assert_eq!(cells[7], u64::MAX.to_string(), "drops saturate: {row}");
    std::fs::remove_dir_all(&dir).unwrap();
}
