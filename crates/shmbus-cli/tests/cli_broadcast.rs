//! The `shmbus` command on a broadcast ring: `ls` and `inspect` name the kind and count the
//! subscribers, and `echo` shows the messages as they pass, without registering.

use assert_cmd::Command;
use serde_json::Value;
use shmbus_ring::broadcast::{BroadcastConfig, BroadcastRing, Subscription};
use shmbus_ring::info::Info;
use shmbus_ring::SegmentOptions;
use shmbus_testkit::process::unique_name;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn shmbus(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_shmbus"))
        .args(args)
        .env("NO_COLOR", "1")
        .timeout(Duration::from_secs(60))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&out).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out)
        )
    })
}

#[test]
fn ls_inspect_and_echo_see_a_broadcast_ring_and_its_subscribers() {
    let name = unique_name("cli-bcast");
    let bare = name.trim_start_matches('/').to_string();
    let info = Info::new("test::Msg", "utf8", &name);
    let config = BroadcastConfig::new(1 << 14).info(info);
    let ring = BroadcastRing::create_shm(&name, &config, &SegmentOptions::default()).unwrap();
    let mut publisher = ring.producer().unwrap();
    let mut reader = ring.consumer().unwrap();
    let _lossy = ring.subscriber(&Subscription::untethered()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let threads = {
        let stop1 = Arc::clone(&stop);
        let stop2 = Arc::clone(&stop);
        [
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop1.load(Ordering::Relaxed) {
                    publisher
                        .push_timeout(format!("msg {i}").as_bytes(), Duration::from_secs(5))
                        .unwrap();
                    i += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }),
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                let mut next = 0u64;
                while !stop2.load(Ordering::Relaxed) {
                    if let Ok(n) = reader.pop_timeout(&mut buf, Duration::from_millis(50)) {
                        let s = std::str::from_utf8(&buf[..n]).unwrap();
                        assert_eq!(s, format!("msg {next}"));
                        next += 1;
                    }
                }
            }),
        ]
    };

    let ls = shmbus(&["ls", "--prefix", &bare, "--json"]);
    let s = ls["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} not listed: {ls}"));
    assert_eq!(s["kind"], "broadcast", "{s}");
    assert_eq!(s["type"], "test::Msg");
    assert_eq!(s["state"], "ok");
    assert_eq!(s["producers"]["alive"], 1, "{s}");
    assert_eq!(s["consumers"]["alive"], 2, "{s}");

    let d = shmbus(&["inspect", &bare, "--json"]);
    assert_eq!(d["kind"], "broadcast");
    assert_eq!(d["header"]["layout"], "1.8");
    assert_eq!(d["endpoints"].as_array().unwrap().len(), 3, "{d}");

    let out = Command::new(env!("CARGO_BIN_EXE_shmbus"))
        .args(["echo", &bare, "-n", "20", "--timeout", "20", "--jsonl"])
        .env("NO_COLOR", "1")
        .timeout(Duration::from_secs(60))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let seqs: Vec<u64> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|i| i["missed"].is_null())
        .map(|i| i["data"].as_str().unwrap()[4..].parse().unwrap())
        .collect();
    assert_eq!(seqs.len(), 20);
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    // Observing registered nothing: still one publisher and two subscribers.
    assert_eq!(ring.subscribers().len(), 2);

    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
}
