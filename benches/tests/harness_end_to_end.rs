//! The harness binary, run for real with tiny phases: peers are spawned, every transport named
//! is measured, and the JSON it writes follows the schema.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_short_run_measures_every_named_transport_and_writes_schema_json() {
    let dir = std::env::temp_dir().join(format!("shmbus-bench-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("out.json");
    let csv = dir.join("out.csv");
    let svg = dir.join("out.svg");
    let mut child = Command::new(env!("CARGO_BIN_EXE_shmbus-bench"))
        .args([
            "--transports",
            "floor-cacheline,floor-memcpy,shmbus-spsc,pipe,uds-seqpacket",
        ])
        .args(["--sizes", "8,4096", "--rounds", "1", "--duration-ms", "20"])
        .arg("--json")
        .arg(&json)
        .arg("--csv")
        .arg(&csv)
        .arg("--svg")
        .arg(&svg)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the harness");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the harness did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = std::io::read_to_string(child.stdout.take().unwrap()).unwrap();
    assert!(status.success(), "harness failed: {status}\n{out}");
    assert!(
        out.contains("ROUND TRIP") && out.contains("shmbus-spsc"),
        "{out}"
    );

    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let m = &v["machine"];
    assert!(
        m["cpu"].is_string()
            && m["cores"].is_u64()
            && m["kernel"].is_string()
            && m["placement"].is_string()
    );
    let results = v["results"].as_array().unwrap();
    let has = |t: &str, size: u64, kind: &str| {
        results
            .iter()
            .any(|r| r["transport"] == t && r["size"] == size && r["kind"] == kind)
    };
    for size in [8, 4096] {
        for t in ["shmbus-spsc", "pipe", "uds-seqpacket"] {
            assert!(
                has(t, size, "rtt") && has(t, size, "throughput"),
                "{t} at {size} missing"
            );
        }
        assert!(has("floor-memcpy", size, "throughput"));
    }
    assert!(has("floor-cacheline", 8, "rtt"));
    for r in results.iter().filter(|r| r["kind"] == "rtt") {
        for k in [
            "samples", "p50_ns", "p90_ns", "p99_ns", "p999_ns", "p9999_ns", "max_ns",
        ] {
            assert!(r[k].is_number(), "{k} in {r}");
        }
        assert!(r["samples"].as_u64().unwrap() > 0);
        assert!(r["p50_ns"].as_f64().unwrap() <= r["p99_ns"].as_f64().unwrap());
    }
    for r in results.iter().filter(|r| r["kind"] == "throughput") {
        for k in ["msgs_per_s", "mb_per_s", "cpu_ns_per_msg"] {
            assert!(r[k].as_f64().unwrap() > 0.0, "{k} in {r}");
        }
    }
    assert!(std::fs::read_to_string(&csv).unwrap().lines().count() > 10);
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unknown_transport_is_refused_before_anything_runs() {
    let out = Command::new(env!("CARGO_BIN_EXE_shmbus-bench"))
        .args(["--transports", "carrier-pigeon"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown transport"));
}

#[test]
fn a_short_fanout_run_reports_every_subscriber_count() {
    let dir = std::env::temp_dir().join(format!("shmbus-bench-fan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("fan.json");
    let out = Command::new(env!("CARGO_BIN_EXE_shmbus-bench"))
        .args(["--fanout", "1,2"])
        .args(["--transports", "shmbus-spsc,shmbus-broadcast,pipe"])
        .args(["--sizes", "8", "--rounds", "1", "--duration-ms", "20"])
        .arg("--json")
        .arg(&json)
        .stderr(Stdio::inherit())
        .output()
        .expect("run the harness");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "harness failed\n{text}");
    assert!(
        text.contains("FAN-OUT ROUND TRIP") && text.contains("1→2"),
        "{text}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let fan = v["fanout"]["results"].as_array().unwrap();
    for (t, n) in [
        ("pipe", 1),
        ("pipe", 2),
        ("shmbus-broadcast", 1),
        ("shmbus-broadcast", 2),
    ] {
        let row = |kind: &str| {
            fan.iter()
                .find(|r| r["transport"] == t && r["subscribers"] == n && r["kind"] == kind)
                .unwrap_or_else(|| panic!("{t} 1→{n} {kind} missing: {v}"))
        };
        assert!(row("fanout_rtt")["p50_ns"].as_f64().unwrap() > 0.0);
        assert!(row("fanout_rtt")["publish_p50_ns"].as_f64().unwrap() > 0.0);
        let t = row("fanout_throughput");
        assert!(t["msgs_per_s_per_subscriber_min"].as_f64().unwrap() > 0.0);
        assert!(t["publisher_msgs_per_s"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(v["fanout"]["placement"].as_array().unwrap().len(), 2);
    let checks = v["fanout"]["checks"].as_array().unwrap();
    assert!(
        checks.iter().any(|c| c["what"]
            .as_str()
            .unwrap()
            .starts_with("shmbus-broadcast 1→1 round trip")),
        "{checks:?}"
    );
    let results = v["results"].as_array().unwrap();
    assert!(results
        .iter()
        .any(|r| r["transport"] == "shmbus-spsc" && r["kind"] == "rtt"));
    let _ = std::fs::remove_dir_all(&dir);
}
