//! Channels across two "hosts" (mount namespaces with their own /dev/shm): a sender on A, a
//! receiver on B, every message once, in order, type-checked; credit back-pressure (a stalled
//! remote receiver fills the sender's channel on A, nothing is dropped, another channel goes
//! on); a bridge killed and restarted mid-stream costs a counted gap at most, never a
//! duplicate.

mod common;

use common::*;
use shmbus_zenoh::status::Direction;
use std::time::Duration;

fn bridge_args(listen: &str, connect: &str, flags: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ["--listen", listen, "--connect", connect]
        .map(String::from)
        .to_vec();
    v.extend(flags.iter().map(|s| s.to_string()));
    v
}

/// The channel's counters on `host` once `done` holds of them (the status file is rewritten
/// every 200 ms), or the last ones seen after 5 s.
fn settled(
    host: &Host,
    name: &str,
    dir: Direction,
    done: impl Fn(&shmbus_zenoh::TopicStatus) -> bool,
) -> shmbus_zenoh::TopicStatus {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let st = status(host);
        let s = channel_status(&st, name, dir).expect("channel status");
        if done(&s) || std::time::Instant::now() >= deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn channel_once_in_order_typed_spsc_and_mpmc() {
    if !namespaces_available() {
        return;
    }
    const N: u64 = 3000;
    let (a, b) = (Host::new("A"), Host::new("B"));
    let (ea, eb) = (ep(free_port()), ep(free_port()));
    let args_a = bridge_args(&ea, &eb, &["--export-channel", "*"]);
    let args_b = bridge_args(&eb, &ea, &["--import-channel", "*", "--window", "64"]);
    let _ba = bridge(&a, &strs(&args_a));
    let _bb = bridge(&b, &strs(&args_b));
    let n = N.to_string();
    for (name, flavor) in [("/e2e-spsc", None), ("/e2e-mpmc", Some("--mpmc"))] {
        let mut send_args = vec![
            "send",
            "--channel",
            name,
            "--count",
            &n,
            "--interval-us",
            "200",
            "--go-stdin",
        ];
        let mut recv_args = vec!["recv", "--channel", name, "--count", &n];
        let mut wrong_args = vec!["wrong-type-channel", "--channel", name];
        if let Some(f) = flavor {
            send_args.push(f);
            recv_args.push(f);
            wrong_args.push(f);
        }
        let mut sender = a.spawn("send", PEER, &send_args);
        sender.expect("created", Duration::from_secs(10));
        // B has no such channel until its bridge sees A's announcement and creates it.
        let mut receiver = b.spawn("recv", PEER, &recv_args);
        receiver.expect("ready", Duration::from_secs(30));
        // The type crossed with the channel: another type is refused on B.
        let mut wrong = b.spawn("wrong", PEER, &wrong_args);
        let verdict = wrong.expect("", Duration::from_secs(30));
        assert!(verdict.starts_with("refused"), "{verdict}");

        sender.send_line("go");
        let r = report(&mut receiver, Duration::from_secs(120));
        eprintln!("{name}: {r:?}");
        assert!(
            r.complete && r.received == N && r.gaps == 0 && r.duplicates == 0,
            "{name}: {r:?}"
        );
        sender.expect("done", Duration::from_secs(30));
        let imp = settled(&b, name, Direction::Import, |s| s.forwarded >= N);
        assert_eq!(imp.forwarded, N, "{imp:?}");
        assert_eq!(
            imp.dropped_queue + imp.dropped_ring + imp.gaps,
            0,
            "{imp:?}"
        );
        let exp = settled(&a, name, Direction::Export, |s| s.forwarded >= N);
        assert_eq!(exp.forwarded, N, "{exp:?}");
    }
}

#[test]
fn stalled_remote_receiver_back_pressures_the_sender_and_loses_nothing() {
    if !namespaces_available() {
        return;
    }
    const N: u64 = 2000;
    let (a, b) = (Host::new("A"), Host::new("B"));
    let (ea, eb) = (ep(free_port()), ep(free_port()));
    let args_a = bridge_args(&ea, &eb, &["--export-channel", "*"]);
    let args_b = bridge_args(&eb, &ea, &["--import-channel", "*", "--window", "32"]);
    let _ba = bridge(&a, &strs(&args_a));
    let _bb = bridge(&b, &strs(&args_b));
    let n = N.to_string();
    // Both channels hold 32 messages on each host: with the window, at most ~100 of the
    // 2000 can be anywhere but in the sender's hands while B's receiver stalls.
    let send_args = |ch: &'static str| {
        [
            "send",
            "--channel",
            ch,
            "--count",
            n.as_str(),
            "--capacity",
            "32",
            "--size",
            "256",
            "--go-stdin",
        ]
    };
    let mut slow_tx = a.spawn("send-slow", PEER, &send_args("/slow"));
    let mut fast_tx = a.spawn("send-fast", PEER, &send_args("/fast"));
    slow_tx.expect("created", Duration::from_secs(10));
    fast_tx.expect("created", Duration::from_secs(10));
    let mut slow_rx = b.spawn(
        "recv-slow",
        PEER,
        &["recv", "--channel", "/slow", "--count", &n, "--go-stdin"],
    );
    let mut fast_rx = b.spawn(
        "recv-fast",
        PEER,
        &["recv", "--channel", "/fast", "--count", &n],
    );
    slow_rx.expect("ready", Duration::from_secs(30));
    fast_rx.expect("ready", Duration::from_secs(30));
    slow_tx.send_line("go");
    fast_tx.send_line("go");

    // The other channel is not held up by the stalled one.
    let rf = report(&mut fast_rx, Duration::from_secs(120));
    eprintln!("fast: {rf:?}");
    assert!(
        rf.complete && rf.received == N && rf.gaps == 0 && rf.duplicates == 0,
        "{rf:?}"
    );
    fast_tx.expect("done", Duration::from_secs(30));
    // The stalled one back-pressured its sender: it has not finished, long after the fast one.
    assert!(
        slow_tx.try_expect("done", Duration::from_secs(2)).is_none(),
        "the sender finished while the remote receiver was stalled: nothing held it back"
    );
    let exp = settled(&a, "/slow", Direction::Export, |s| s.credit_waits > 0);
    assert!(exp.forwarded < N / 4, "{exp:?}");
    assert!(exp.credit_waits > 0, "{exp:?}");

    // Resume: everything arrives, once, in order, and the sender saw its channel full.
    slow_rx.send_line("go");
    slow_rx.expect("resumed", Duration::from_secs(10));
    let rs = report(&mut slow_rx, Duration::from_secs(120));
    eprintln!("slow: {rs:?}");
    assert!(
        rs.complete && rs.received == N && rs.gaps == 0 && rs.duplicates == 0,
        "{rs:?}"
    );
    let done = slow_tx.expect("done", Duration::from_secs(30));
    let full: u64 = done
        .rsplit("full=")
        .next()
        .and_then(|s| s.parse().ok())
        .expect(&done);
    assert!(full > 0, "{done}");
    let imp = settled(&b, "/slow", Direction::Import, |s| s.forwarded >= N);
    eprintln!("slow import: {imp:?}");
    assert_eq!(imp.forwarded, N, "{imp:?}");
    assert_eq!(
        imp.dropped_queue + imp.dropped_ring + imp.gaps + imp.duplicates + imp.refused,
        0,
        "{imp:?}"
    );
}

/// Kills one side's bridge mid-stream and starts another: the receiver gets every message at
/// most once and in order, and what it missed is exactly the gap it counts.
fn kill_and_restart(kill_importer: bool, channel: &str) {
    if !namespaces_available() {
        return;
    }
    const N: u64 = 4000;
    let (a, b) = (Host::new("A"), Host::new("B"));
    let (ea, eb) = (ep(free_port()), ep(free_port()));
    let args_a = bridge_args(&ea, &eb, &["--export-channel", "*"]);
    let args_b = bridge_args(&eb, &ea, &["--import-channel", "*", "--window", "64"]);
    let (mut ba, _) = bridge(&a, &strs(&args_a));
    let (mut bb, _) = bridge(&b, &strs(&args_b));
    let n = N.to_string();
    let mut tx = a.spawn(
        "send",
        PEER,
        &[
            "send",
            "--channel",
            channel,
            "--count",
            &n,
            "--interval-us",
            "500",
            "--go-stdin",
        ],
    );
    tx.expect("created", Duration::from_secs(10));
    let mut rx = b.spawn("recv", PEER, &["recv", "--channel", channel, "--count", &n]);
    rx.expect("ready", Duration::from_secs(30));
    tx.send_line("go");
    std::thread::sleep(Duration::from_millis(800));
    let (victim, host, args) = if kill_importer {
        (&mut bb, &b, &args_b)
    } else {
        (&mut ba, &a, &args_a)
    };
    victim.signal("KILL");
    victim.wait(Duration::from_secs(5));
    let _again = bridge(host, &strs(args));
    let r = report(&mut rx, Duration::from_secs(120));
    eprintln!("{channel}: {r:?}");
    assert!(r.complete, "{r:?}");
    assert_eq!(r.duplicates, 0, "{r:?}");
    assert_eq!(r.received + r.gaps, N, "{r:?}");
    assert!(r.received > N / 2, "{r:?}");
    tx.expect("done", Duration::from_secs(60));
}

#[test]
fn importing_bridge_killed_mid_stream_gap_never_duplicate() {
    kill_and_restart(true, "/kill-imp");
}

#[test]
fn exporting_bridge_killed_mid_stream_gap_never_duplicate() {
    kill_and_restart(false, "/kill-exp");
}
