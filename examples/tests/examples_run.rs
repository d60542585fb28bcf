//! Every example runs to completion on its own, with small sizes: a smoke test that keeps
//! them working. Each run is bounded in time and killed if it overruns.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn runs_to_success(exe: &str, args: &[&str]) {
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {exe}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            assert!(status.success(), "{exe} {args:?}: {status}");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{exe} {args:?} did not finish within 120 s; killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn by_name_finds_its_peer_by_name_and_ends() {
    runs_to_success(env!("CARGO_BIN_EXE_by_name"), &[]);
}

#[test]
fn fork_child_receives_every_reading_from_its_child() {
    runs_to_success(env!("CARGO_BIN_EXE_fork_child"), &[]);
}

#[test]
fn worker_pool_gets_every_job_done_once() {
    runs_to_success(env!("CARGO_BIN_EXE_worker_pool"), &["2", "300"]);
}

#[test]
fn async_service_serves_two_channels_and_a_tcp_socket() {
    runs_to_success(env!("CARGO_BIN_EXE_async_service"), &["2000"]);
}

#[test]
fn request_reply_answers_every_request() {
    runs_to_success(env!("CARGO_BIN_EXE_request_reply"), &["300"]);
}

#[test]
fn large_pod_frames_arrive_intact() {
    runs_to_success(env!("CARGO_BIN_EXE_large_pod"), &["20"]);
}

#[test]
fn channel_vs_raw_measures_both_transports() {
    runs_to_success(env!("CARGO_BIN_EXE_channel_vs_raw"), &["--quick"]);
}

#[test]
fn stream_demo_streams_checked_messages() {
    runs_to_success(env!("CARGO_BIN_EXE_stream_demo"), &["--messages", "20000"]);
}

/// Runs `exe` with `args` (bounded as [`runs_to_success`]) and returns what it printed.
fn output_of(exe: &str, args: &[&str]) -> String {
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {exe}: {e}"));
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut out).map(|_| out)
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{exe} {args:?} did not finish within 120 s; killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = reader.join().expect("reader").expect("read stdout");
    assert!(status.success(), "{exe} {args:?}: {status}\n{out}");
    out
}

#[test]
fn topic_demo_reaches_three_subscriber_processes() {
    let out = output_of(env!("CARGO_BIN_EXE_topic_demo"), &["--messages", "20000"]);
    let line = |prefix: &str| {
        out.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{out}"))
            .to_string()
    };
    assert_eq!(line("live:"), "live: received 20000 of 20000 in order");
    assert_eq!(
        line("late:"),
        "late: first message 9992 (the last 8 before it joined), received 10008 in order"
    );
    // The lossy subscriber's count depends on timing; what it got and what it was told it
    // missed always make up every message.
    let lossy = line("lossy:");
    assert!(lossy.ends_with("together 20000 of 20000"), "{lossy}");
    assert!(
        line("publisher:").contains("published 20000 messages"),
        "{out}"
    );
}
