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

/// Runs the harness with `args` (and `--json` into a scratch file) within 120 s; returns its
/// stdout and the JSON it wrote.
fn run_json(tag: &str, args: &[&str]) -> (String, serde_json::Value) {
    let dir = std::env::temp_dir().join(format!("shmbus-bench-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("out.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_shmbus-bench"))
        .args(args)
        .arg("--json")
        .arg(&json)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the harness");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(&mut stdout).unwrap());
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the harness did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = reader.join().unwrap();
    assert!(status.success(), "harness failed: {status}\n{out}");
    let v = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (out, v)
}

#[test]
fn ring_bytes_reach_every_ring_transport_and_the_json_keeps_every_round() {
    let (out, v) = run_json(
        "rings",
        &[
            "--transports",
            "floor-ring,shmbus-spsc,shmbus-mpmc,shmbus-mpmc-rejoined,shmbus-mpmc-crc,shmbus-channel,shmbus-spsc-zc,pipe-spin",
            "--sizes",
            "64",
            "--rounds",
            "2",
            "--duration-ms",
            "20",
            "--ring-bytes",
            "1MiB,16KiB",
            "--rtt-block",
            "4",
        ],
    );
    assert!(
        out.contains("RATIOS") && out.contains("1 MiB") && out.contains("16 KiB"),
        "{out}"
    );
    let results = v["results"].as_array().unwrap();
    // Every ring transport ran once per ring size, and says so; the kernel row has no ring.
    for t in [
        "floor-ring",
        "shmbus-spsc",
        "shmbus-mpmc",
        "shmbus-mpmc-rejoined",
        "shmbus-mpmc-crc",
        "shmbus-channel",
        "shmbus-spsc-zc",
    ] {
        let mut rings: Vec<u64> = results
            .iter()
            .filter(|r| r["transport"] == t && r["kind"] == "rtt")
            .map(|r| {
                r["ring_bytes"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{t}: {r}"))
            })
            .collect();
        rings.sort_unstable();
        // MPMC rounds its slot count up to a power of two, so its bytes may exceed the ask.
        assert_eq!(rings.len(), 2, "{t}: {rings:?}");
        assert!(
            (16 << 10..32 << 10).contains(&rings[0]) && ((1 << 20)..(2 << 20)).contains(&rings[1]),
            "{t}: {rings:?}"
        );
    }
    let pipe = results
        .iter()
        .find(|r| r["transport"] == "pipe-spin" && r["kind"] == "rtt")
        .expect("the busy-polling kernel row");
    assert!(pipe.get("ring_bytes").is_none(), "{pipe}");

    // Timing: the clock read is calibrated, round trips are block-timed too, and each row
    // has its bracketing floor.
    assert!(v["clock_read_ns"].as_f64().unwrap() > 0.0);
    assert_eq!(v["round_trips_per_block"], 4);
    let block = results
        .iter()
        .find(|r| r["transport"] == "shmbus-spsc" && r["kind"] == "rtt_block")
        .expect("block-timed round trip");
    assert!(block["p50_ns"].as_f64().unwrap() > 0.0);
    assert!(block["bracket_floor_p50_ns"].as_f64().unwrap() > 0.0);
    assert!(block["vs_bracket_floor"].as_f64().unwrap() > 0.0);
    assert!(results
        .iter()
        .any(|r| r["transport"] == "shmbus-spsc" && r["kind"] == "throughput_batch"));

    // Raw: one entry per transport, ring size and round, with that round's own figures.
    let raw = v["raw"].as_array().unwrap();
    let spsc: Vec<&serde_json::Value> = raw
        .iter()
        .filter(|r| r["transport"] == "shmbus-spsc")
        .collect();
    assert_eq!(spsc.len(), 2 * 2, "2 rounds x 2 ring sizes: {spsc:?}");
    for r in spsc {
        for k in [
            "rtt_p50_ns",
            "rtt_block_p50_ns",
            "bracket_floor_before_ns",
            "bracket_floor_after_ns",
            "msgs_per_s",
            "batch_msgs_per_s",
        ] {
            assert!(r[k].as_f64().unwrap() > 0.0, "{k} in {r}");
        }
        assert!([1, 2].contains(&r["round"].as_u64().unwrap()));
    }
    let ratios = v["ratios"].as_array().unwrap();
    assert_eq!(ratios.len(), 2, "one per ring size: {ratios:?}");
    assert!(ratios
        .iter()
        .all(|r| r["spsc_over_floor_ring_msgs"].as_f64().unwrap() > 0.0));
}

#[test]
fn options_are_parsed_by_clap_with_help_and_usage_errors() {
    let help = Command::new(env!("CARGO_BIN_EXE_shmbus-bench"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--quick",
        "--transports",
        "--sizes",
        "--rounds",
        "--duration-ms",
        "--rate",
        "--ring-bytes",
        "--rtt-block",
        "--json",
        "--csv",
        "--svg",
        "--fanout",
        "--list",
    ] {
        assert!(text.contains(flag), "{flag} missing from --help:\n{text}");
    }
    for bad in [
        &["--ring-bytes", "3MiB"][..],
        &["--ring-bytes", "lots"],
        &["--rounds", "zero"],
        &["--frobnicate"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_shmbus-bench"))
            .args(bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(!out.stderr.is_empty(), "{bad:?}");
    }
    let list = Command::new(env!("CARGO_BIN_EXE_shmbus-bench"))
        .arg("--list")
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&list.stdout);
    for t in ["floor-ring", "pipe-spin", "uds-spin", "shmbus-spsc-zc"] {
        assert!(names.lines().any(|l| l == t), "{t} not listed:\n{names}");
    }
}
