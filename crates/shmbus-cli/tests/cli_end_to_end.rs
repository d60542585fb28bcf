//! End to end: real producer and consumer processes (this test binary re-spawned in a role),
//! and every `shmbus` subcommand run as a process, its table and JSON checked.

use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::Value;
use shmbus_ring::info::Info;
use shmbus_ring::liveness::Vitality;
use shmbus_ring::observe::Observer;
use shmbus_ring::{Kind, MpmcConfig, MpmcRing, Ring, Role, SegmentOptions, SpscConfig, SpscRing};
use shmbus_testkit::process::{respawn, role, unique_name, ChildGuard};

/// The entry point of the child roles; a no-op in a normal run.
#[test]
fn child() {
    let Some(role) = role() else { return };
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let num = |k: &str| env(k).parse::<u64>().unwrap_or(0);
    match role.as_str() {
        "producer" => producer(
            &env("NAME"),
            &env("KIND"),
            &env("CODEC"),
            num("RATE"),
            num("COUNT"),
        ),
        "consumer" => consumer(&env("NAME"), &env("KIND"), &env("CODEC"), num("COUNT")),
        other => panic!("unknown role {other}"),
    }
}

fn encode(codec: &str, i: u64) -> Vec<u8> {
    match codec {
        "utf8" => format!("msg {i}").into_bytes(),
        "json" => format!("{{\"seq\":{i}}}").into_bytes(),
        _ => i.to_le_bytes().to_vec(),
    }
}

fn decode(codec: &str, b: &[u8]) -> u64 {
    match codec {
        "utf8" => std::str::from_utf8(b).unwrap()[4..].parse().unwrap(),
        "json" => serde_json::from_slice::<Value>(b).unwrap()["seq"]
            .as_u64()
            .unwrap(),
        _ => u64::from_le_bytes(b.try_into().unwrap()),
    }
}

type Push = Box<dyn FnMut(&[u8])>;
type Pop = Box<dyn FnMut(&mut Vec<u8>) -> bool>;

/// A consumer of `ring` as a closure: pops one message into the buffer, or times out.
fn popper<K: Kind>(ring: &Ring<K>) -> Pop {
    let mut rx = ring.consumer().unwrap();
    Box::new(move |b: &mut Vec<u8>| {
        let mut buf = [0u8; 64];
        match rx.pop_timeout(&mut buf, Duration::from_millis(200)) {
            Ok(n) => {
                b.clear();
                b.extend_from_slice(&buf[..n]);
                true
            }
            Err(_) => false,
        }
    })
}

fn consumer_attached(name: &str) -> bool {
    Observer::open(name)
        .and_then(|o| o.endpoints())
        .is_ok_and(|e| e.iter().any(|e| e.role == Role::Consumer))
}

/// Creates the ring, waits for a consumer, then publishes `count` messages (0: for ever) at
/// `rate` a second, paced by absolute deadlines; then idles until killed.
fn producer(name: &str, kind: &str, codec: &str, rate: u64, count: u64) {
    let info = Info::new(if codec == "raw" { "" } else { "test::Msg" }, codec, name);
    let opts = SegmentOptions::default();
    let mut push: Push = if kind == "mpmc" {
        let ring = MpmcRing::create_shm(name, &MpmcConfig::new(64, 64).info(info), &opts).unwrap();
        let mut tx = ring.producer().unwrap();
        Box::new(move |b| tx.push_timeout(b, Duration::from_secs(5)).unwrap())
    } else {
        let ring = SpscRing::create_shm(name, &SpscConfig::new(1 << 14).info(info), &opts).unwrap();
        let mut tx = ring.producer().unwrap();
        Box::new(move |b| tx.push_timeout(b, Duration::from_secs(5)).unwrap())
    };
    while !consumer_attached(name) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let start = Instant::now();
    let mut i = 0;
    while count == 0 || i < count {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        push(&encode(codec, i));
        i += 1;
    }
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Attaches, receives `count` messages (0: for ever) and checks each is the next in order.
fn consumer(name: &str, kind: &str, codec: &str, count: u64) {
    let opts = SegmentOptions::default();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut pop: Pop = loop {
        let attached = if kind == "mpmc" {
            MpmcRing::open_shm(name, &opts).ok().map(|r| popper(&r))
        } else {
            SpscRing::open_shm(name, &opts).ok().map(|r| popper(&r))
        };
        if let Some(p) = attached {
            break p;
        }
        assert!(Instant::now() < deadline, "{name} never appeared");
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut next = 0;
    let mut buf = Vec::new();
    while count == 0 || next < count {
        if pop(&mut buf) {
            let got = decode(codec, &buf);
            assert_eq!(got, next, "message {next} missing or out of order");
            next += 1;
        }
    }
    println!("received {next}");
}

/// A running pair of processes on one segment.
struct Pair {
    name: String,
    producer: ChildGuard,
    consumer: ChildGuard,
}

fn spawn(role: &str, name: &str, kind: &str, codec: &str, rate: u64, count: u64) -> ChildGuard {
    let mut cmd = respawn("child", role);
    cmd.env("NAME", name)
        .env("KIND", kind)
        .env("CODEC", codec)
        .env("RATE", rate.to_string())
        .env("COUNT", count.to_string())
        .stdout(Stdio::piped());
    ChildGuard::spawn(&mut cmd)
}

impl Pair {
    fn start(tag: &str, kind: &str, codec: &str, rate: u64, count: u64) -> Pair {
        let name = unique_name(&format!("cli-{tag}"));
        let producer = spawn("producer", &name, kind, codec, rate, count);
        let consumer = spawn("consumer", &name, kind, codec, rate, count);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = Observer::open(&name)
                .and_then(|o| o.endpoints())
                .is_ok_and(|e| e.iter().filter(|e| e.vitality == Vitality::Alive).count() == 2);
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "{name}: the pair never attached");
            std::thread::sleep(Duration::from_millis(10));
        }
        Pair {
            name,
            producer,
            consumer,
        }
    }

    /// The name without its leading `/` (NAME is accepted either way).
    fn bare(&self) -> &str {
        &self.name[1..]
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = self.producer.kill();
        let _ = self.producer.wait();
        let _ = self.consumer.kill();
        let _ = self.consumer.wait();
        let _ = nix::sys::mman::shm_unlink(self.name.as_str());
    }
}

fn shmbus(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shmbus"));
    c.args(args)
        .env("NO_COLOR", "1")
        .timeout(Duration::from_secs(60));
    c
}

fn json_of(args: &[&str]) -> Value {
    let out = shmbus(args).assert().success().get_output().stdout.clone();
    serde_json::from_slice(&out).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out)
        )
    })
}

fn text_of(args: &[&str]) -> String {
    String::from_utf8(shmbus(args).assert().success().get_output().stdout.clone()).unwrap()
}

/// The roster and endpoint table (bytes 512..4096) as the shm file holds them now.
fn table_bytes(name: &str) -> Vec<u8> {
    std::fs::read(format!("/dev/shm{name}")).unwrap()[512..4096].to_vec()
}

fn segment<'a>(ls: &'a Value, name: &str) -> &'a Value {
    ls["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed: {ls}"))
}

#[test]
fn ls_and_inspect_show_kind_type_and_live_endpoints() {
    let spsc = Pair::start("ls-s", "spsc", "utf8", 200, 0);
    let mpmc = Pair::start("ls-m", "mpmc", "json", 200, 0);
    for (pair, kind, codec) in [(&spsc, "SPSC", "utf8"), (&mpmc, "MPMC", "json")] {
        let ls = json_of(&["ls", "--prefix", pair.bare(), "--json"]);
        assert_eq!(ls["schema"], "shmbus.ls/1");
        let s = segment(&ls, &pair.name);
        assert_eq!(s["kind"], kind);
        assert_eq!(s["type"], "test::Msg");
        assert_eq!(s["codec"], codec);
        assert_eq!(s["state"], "ok");
        assert_eq!(s["producers"]["alive"], 1);
        assert_eq!(s["consumers"]["alive"], 1);
        assert_eq!(s["producers"]["dead"], 0);
        assert_eq!(s["creator"], "alive");
        // The table: one aligned line per segment.
        let table = text_of(&["ls", "--prefix", pair.bare()]);
        let line = table
            .lines()
            .find(|l| l.contains(&pair.name))
            .expect("listed");
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[1], kind, "{line}");
        assert_eq!(cols[2], "test::Msg", "{line}");
        assert!(cols.contains(&"1/0"), "{line}");
        assert_eq!(*cols.last().unwrap(), "ok", "{line}");

        // NAME without the leading `/`.
        let d = json_of(&["inspect", pair.bare(), "--json"]);
        assert_eq!(d["schema"], "shmbus.inspect/1");
        assert_eq!(d["kind"], kind);
        assert_eq!(d["info"]["type"], "test::Msg");
        assert_eq!(d["header"]["layout"], "1.8");
        let eps = d["endpoints"].as_array().unwrap();
        assert_eq!(eps.len(), 2, "{d}");
        for (role, child) in [("producer", &pair.producer), ("consumer", &pair.consumer)] {
            let e = eps.iter().find(|e| e["role"] == role).expect(role);
            assert_eq!(e["pid"], child.id());
            assert_eq!(e["vitality"], "alive");
            assert_eq!(e["phase"], "active");
            // An MPMC ring's one producer and one consumer are each alone in their role
            // (PROTOCOL §5.7); an SPSC ring has no sole words.
            let sole = &d["sole"][format!("{role}s")];
            if kind == "MPMC" {
                assert_eq!(sole["alone"], e["tag"], "{d}");
            } else {
                assert!(sole.is_null(), "{d}");
            }
        }
        let t = text_of(&["inspect", &pair.name]);
        assert!(
            t.contains("producer") && t.contains("consumer") && t.contains("alive"),
            "{t}"
        );
        assert!(t.contains("stalls") && t.contains("sleeps"), "{t}");
    }
    // top's stream form: one `shmbus.ls/1` document per refresh.
    let top = text_of(&[
        "top",
        "--jsonl",
        "--count",
        "2",
        "--interval-ms",
        "200",
        "--prefix",
        "shmbus-cli-ls",
    ]);
    assert_eq!(top.lines().count(), 2, "{top}");
    for l in top.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["schema"], "shmbus.ls/1");
    }
}

#[test]
fn observing_never_registers_an_endpoint() {
    let pair = Pair::start("passive", "spsc", "utf8", 200, 0);
    let before = table_bytes(&pair.name);
    text_of(&["ls", "--prefix", pair.bare()]);
    text_of(&["inspect", pair.bare(), "--json"]);
    text_of(&["hz", pair.bare(), "--period", "0.3", "--count", "1"]);
    text_of(&["bw", pair.bare(), "--period", "0.3", "--count", "1"]);
    text_of(&["echo", pair.bare(), "-n", "3", "--timeout", "10"]);
    let after = table_bytes(&pair.name);
    assert_eq!(
        before, after,
        "the roster or endpoint table changed while observed"
    );
    let eps = Observer::open(&pair.name).unwrap().endpoints().unwrap();
    assert_eq!(eps.len(), 2);
}

#[test]
fn sigkill_shows_dead_and_gc_removes_only_the_stale_segment() {
    let mut doomed = Pair::start("gc-dead", "spsc", "raw", 100, 0);
    let live = Pair::start("gc-live", "spsc", "raw", 100, 0);
    // Kill both processes of one pair: no survivor reaps them, the creator is gone.
    for c in [&mut doomed.producer, &mut doomed.consumer] {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    let d = json_of(&["inspect", &doomed.name, "--json"]);
    let eps = d["endpoints"].as_array().unwrap();
    assert_eq!(eps.len(), 2, "{d}");
    assert!(eps.iter().all(|e| e["vitality"] == "dead"), "{d}");
    assert_eq!(d["creator"], "dead");
    let t = text_of(&["inspect", &doomed.name]);
    assert!(t.contains("dead"), "{t}");
    let ls = json_of(&["ls", "--prefix", "shmbus-cli-gc", "--json"]);
    assert_eq!(segment(&ls, &doomed.name)["state"], "stale");
    assert_eq!(segment(&ls, &doomed.name)["producers"]["dead"], 1);
    assert_eq!(segment(&ls, &live.name)["state"], "ok");

    // `rm` refuses a live segment (exit 4) and says why.
    let out = shmbus(&["rm", &live.name])
        .assert()
        .code(4)
        .get_output()
        .clone();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(&live.name) && err.lines().count() == 1,
        "{err}"
    );

    // Dry run: lists the stale one only, removes nothing.
    let dry = json_of(&["gc", "--prefix", "shmbus-cli-gc", "--json"]);
    assert_eq!(dry["schema"], "shmbus.gc/1");
    assert_eq!(dry["dry_run"], true);
    let names: Vec<&str> = dry["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&doomed.name.as_str()), "{dry}");
    assert!(!names.contains(&live.name.as_str()), "{dry}");
    assert!(std::path::Path::new(&format!("/dev/shm{}", doomed.name)).exists());
    let table = text_of(&["gc", "--prefix", "shmbus-cli-gc"]);
    assert!(
        table.contains(&doomed.name) && table.contains("would remove"),
        "{table}"
    );

    let done = json_of(&["gc", "--yes", "--prefix", "shmbus-cli-gc", "--json"]);
    let removed: Vec<&str> = done["segments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["removed"] == true)
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(removed.contains(&doomed.name.as_str()), "{done}");
    assert!(!removed.contains(&live.name.as_str()), "{done}");
    assert!(!std::path::Path::new(&format!("/dev/shm{}", doomed.name)).exists());
    assert!(std::path::Path::new(&format!("/dev/shm{}", live.name)).exists());
    let ls = json_of(&["ls", "--prefix", live.bare(), "--json"]);
    assert_eq!(segment(&ls, &live.name)["consumers"]["alive"], 1);
    // Gone: inspect says so, exit 3, one line naming it.
    let out = shmbus(&["inspect", &doomed.name])
        .assert()
        .code(3)
        .get_output()
        .clone();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err.trim(),
        format!("shmbus: {}: no such segment", doomed.name)
    );
}

#[test]
fn hz_and_bw_are_within_ten_percent_of_the_producers_rate() {
    const RATE: f64 = 400.0;
    let pair = Pair::start("hz", "spsc", "raw", RATE as u64, 0);
    std::thread::sleep(Duration::from_millis(300));
    let out = text_of(&["hz", &pair.name, "--period", "2", "--count", "2", "--jsonl"]);
    let reports: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reports.len(), 2, "{out}");
    assert_eq!(reports[0]["schema"], "shmbus.hz/1");
    let mean = reports[1]["mean"].as_f64().unwrap();
    assert!(
        (mean - RATE).abs() <= 0.1 * RATE,
        "hz mean {mean} vs {RATE}: {out}"
    );
    // bw: 8-byte messages.
    let bw = json_of(&["bw", pair.bare(), "--period", "2", "--count", "1", "--json"]);
    assert_eq!(bw["schema"], "shmbus.bw/1");
    let b = bw["mean"].as_f64().unwrap();
    assert!((b - 8.0 * RATE).abs() <= 0.1 * 8.0 * RATE, "bw {b}: {bw}");
    let table = text_of(&["hz", pair.bare(), "--period", "0.5", "--count", "1"]);
    assert!(table.contains("msg/s") && table.contains("mean"), "{table}");
}

#[test]
fn echo_shows_messages_while_the_consumer_receives_every_one() {
    const COUNT: u64 = 300;
    for (kind, codec) in [("spsc", "utf8"), ("mpmc", "json")] {
        let mut pair = Pair::start(&format!("echo-{kind}"), kind, codec, 100, COUNT);
        let out = text_of(&[
            "echo",
            pair.bare(),
            "-n",
            "20",
            "--timeout",
            "20",
            "--jsonl",
        ]);
        let items: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let msgs: Vec<u64> = items
            .iter()
            .filter(|i| i["missed"].is_null())
            .map(|i| match codec {
                "utf8" => {
                    assert_eq!(i["encoding"], "text", "{i}");
                    i["data"].as_str().unwrap()[4..].parse().unwrap()
                }
                _ => {
                    assert_eq!(i["encoding"], "json", "{i}");
                    i["data"]["seq"].as_u64().unwrap()
                }
            })
            .collect();
        assert_eq!(msgs.len(), 20, "{out}");
        assert!(
            msgs.windows(2).all(|w| w[1] == w[0] + 1),
            "not consecutive: {msgs:?}"
        );
        // The table form decodes too.
        let t = text_of(&["echo", &pair.name, "-n", "2", "--timeout", "20"]);
        assert_eq!(t.lines().count(), 2, "{t}");
        // ... and the consumer still received every message, in order.
        let status = pair.consumer.wait_within(Duration::from_secs(30));
        assert!(status.success(), "{kind}: the consumer failed");
        let mut got = String::new();
        std::io::Read::read_to_string(pair.consumer.stdout.as_mut().unwrap(), &mut got).unwrap();
        assert!(got.contains(&format!("received {COUNT}\n")), "{got}");
    }
}

#[test]
fn foreign_objects_are_skipped_and_errors_are_one_line() {
    let name = unique_name("cli-foreign");
    let path = format!("/dev/shm{name}");
    std::fs::write(&path, vec![0x5au8; 8192]).unwrap();
    let ls = json_of(&["ls", "--prefix", &name, "--json"]);
    assert!(ls["segments"].as_array().unwrap().is_empty(), "{ls}");
    assert_eq!(ls["skipped"][0], name.as_str());
    let out = shmbus(&["inspect", &name])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&name) && err.contains("not a shmbus segment"),
        "{err}"
    );
    // rm never removes what is not a shmbus segment.
    shmbus(&["rm", &name]).assert().code(1);
    assert!(std::path::Path::new(&path).exists());
    std::fs::remove_file(&path).unwrap();
    // Usage errors are clap's, exit 2.
    shmbus(&["hz"]).assert().code(2);
}

#[test]
fn doctor_reports_the_shm_dir_and_futex_waitv() {
    let d = json_of(&["doctor", "--json"]);
    assert_eq!(d["schema"], "shmbus.doctor/1");
    let checks = d["checks"].as_array().unwrap();
    for want in [
        "shm dir",
        "RemoveIPC (logind)",
        "fs.mqueue.msg_max",
        "kernel.shmmni",
        "futex_waitv",
    ] {
        assert!(
            checks.iter().any(|c| c["check"] == want),
            "{want} missing: {d}"
        );
    }
    let t = text_of(&["doctor"]);
    assert!(t.contains("/dev/shm"), "{t}");
    // bench names the harness when it cannot run it (here: a PATH without it).
    let out = StdCommand::new(env!("CARGO_BIN_EXE_shmbus"))
        .args(["bench", "--", "--list"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    if !out.status.success() {
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("shmbus-bench"), "{err}");
    }
}

#[test]
fn a_segment_of_another_version_or_a_corrupt_header_is_a_clear_error() {
    use shmbus_testkit::images::{mpmc_image, spsc_image};
    let base = unique_name("cli-bad");
    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "major",
            {
                let mut img = spsc_image(4096, 64);
                img[12..14].copy_from_slice(&2u16.to_le_bytes());
                img
            },
            "layout_major",
        ),
        (
            "capacity",
            {
                let mut img = spsc_image(4096, 64);
                img[40..48].copy_from_slice(&1000u64.to_le_bytes());
                img
            },
            "capacity",
        ),
        (
            "kind",
            {
                let mut img = mpmc_image(8, 32);
                img[24..28].copy_from_slice(&9u32.to_le_bytes());
                img
            },
            "ring_kind",
        ),
    ];
    for (tag, img, field) in cases {
        let name = format!("{base}-{tag}");
        let path = format!("/dev/shm{name}");
        std::fs::write(&path, &img).unwrap();
        let out = shmbus(&["inspect", &name])
            .assert()
            .code(1)
            .get_output()
            .clone();
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(&name) && err.contains(field), "{tag}: {err}");
        for cmd in ["hz", "echo"] {
            shmbus(&[cmd, &name, "--count", "1"]).assert().code(1);
        }
        // `ls` lists it as an error row (it has the magic: not foreign), and exits 0.
        let ls = json_of(&["ls", "--prefix", &name, "--json"]);
        let row = segment(&ls, &name);
        assert_eq!(row["state"], "error");
        assert!(row["error"].as_str().unwrap().contains(field), "{row}");
        std::fs::remove_file(&path).unwrap();
    }
}
