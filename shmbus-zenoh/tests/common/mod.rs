//! Two "hosts" on one machine: each a mount namespace with its own tmpfs on `/dev/shm`, so
//! their shmbus segments can meet only through the bridges, which talk over 127.0.0.1.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

pub const BRIDGE: &str = env!("CARGO_BIN_EXE_shmbus-zenoh");
pub const PEER: &str = env!("CARGO_BIN_EXE_shmbus-zenoh-peer");

/// Whether namespaces can be made here; prints why not (the test then skips, saying so).
pub fn namespaces_available() -> bool {
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", "mount -t tmpfs none /dev/shm"])
        .output();
    match out {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            eprintln!(
                "SKIPPED: `unshare -m` + tmpfs mount failed here ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("SKIPPED: `unshare` is not available: {e}");
            false
        }
    }
}

/// A mount namespace with a fresh tmpfs on /dev/shm, kept alive by a sleeping process.
pub struct Host {
    anchor: Child,
    pub name: &'static str,
}

impl Host {
    pub fn new(name: &'static str) -> Host {
        let mut anchor = Command::new("unshare")
            .args([
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                "mount -t tmpfs none /dev/shm && echo up && exec sleep 3600",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("unshare");
        let mut line = String::new();
        BufReader::new(anchor.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "up", "host {name} did not come up");
        Host { anchor, name }
    }

    /// Runs `program args` inside this host's mount namespace.
    pub fn spawn(&self, label: &str, program: &str, args: &[&str]) -> Proc {
        let pid = self.anchor.id().to_string();
        let mut child = Command::new("nsenter")
            .args(["-t", &pid, "-m", "--", program])
            .args(args)
            .env_remove("SHMBUS_DIR")
            .env("RUST_LOG", "info,zenoh=warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nsenter");
        let (tx, rx) = channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            stdin: child.stdin.take(),
            child,
            lines: rx,
            label: format!("{}:{label}", self.name),
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.anchor.kill();
        let _ = self.anchor.wait();
    }
}

/// A process in a host, its stdout read line by line.
pub struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    pub label: String,
}

impl Proc {
    /// The next line that starts with `prefix` (others are skipped), within `timeout`.
    pub fn expect(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "{}: no line starting {prefix:?} within {timeout:?}",
                        self.label
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("{}: exited before printing {prefix:?}", self.label)
                }
            }
        }
    }

    /// The next line that starts with `prefix`, if one comes within `timeout`.
    pub fn try_expect(&mut self, prefix: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the exit, at most `timeout`; its status.
    pub fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{}: did not exit in {timeout:?}",
                self.label
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free on 127.0.0.1 now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn ep(port: u16) -> String {
    format!("tcp/127.0.0.1:{port}")
}

/// A subscriber's JSON report.
#[derive(Debug, serde::Deserialize)]
pub struct Report {
    pub received: u64,
    pub last: Option<u64>,
    pub gaps: u64,
    pub duplicates: u64,
    pub lagged: u64,
    pub disconnects: u64,
    pub complete: bool,
}

pub fn report(p: &mut Proc, timeout: Duration) -> Report {
    let line = p.expect("{", timeout);
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{}: {e}: {line}", p.label))
}

/// The bridges' status files in a host, as `shmbus-zenoh status` prints them.
pub fn status(host: &Host) -> Vec<shmbus_zenoh::BridgeStatus> {
    let p = host.spawn("status", BRIDGE, &["status"]);
    let mut text = String::new();
    while let Ok(l) = p.lines.recv_timeout(Duration::from_secs(10)) {
        text.push_str(&l);
        text.push('\n');
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("status: {e}: {text}"))
}

/// The counters of the channel `name` in `direction` in a status list.
pub fn channel_status(
    all: &[shmbus_zenoh::BridgeStatus],
    name: &str,
    direction: shmbus_zenoh::status::Direction,
) -> Option<shmbus_zenoh::TopicStatus> {
    all.iter()
        .flat_map(|b| &b.topics)
        .find(|t| {
            t.topic == name
                && t.direction == direction
                && t.kind == shmbus_zenoh::status::Kind::Channel
        })
        .cloned()
}

/// The counters of `topic` in `direction` in a status list.
pub fn topic_status(
    all: &[shmbus_zenoh::BridgeStatus],
    topic: &str,
    direction: shmbus_zenoh::status::Direction,
) -> Option<shmbus_zenoh::TopicStatus> {
    all.iter()
        .flat_map(|b| &b.topics)
        .find(|t| t.topic == topic && t.direction == direction)
        .cloned()
}

/// Starts a bridge in `host` with `args` and waits until it is up; the process and its
/// Zenoh id.
pub fn bridge(host: &Host, args: &[&str]) -> (Proc, String) {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    let mut p = host.spawn("bridge", BRIDGE, &all);
    let line = p.expect("ready ", Duration::from_secs(30));
    let zid = line.trim_start_matches("ready ").to_string();
    (p, zid)
}
