//! A channel whose sender exits (its segment is unlinked with it) and comes back (a new
//! segment of the same name) goes on across hosts, without restarting the bridges: the
//! exporting bridge must not stay attached to the old, unlinked ring (issue 19 review).

mod common;

use common::*;
use std::time::Duration;

#[test]
fn a_channel_recreated_by_a_restarted_sender_is_exported_again() {
    if !namespaces_available() {
        return;
    }
    const N: u64 = 200;
    let n = N.to_string();
    let (a, b) = (Host::new("A"), Host::new("B"));
    let (ea, eb) = (ep(free_port()), ep(free_port()));
    let _ba = bridge(
        &a,
        &["--listen", &ea, "--connect", &eb, "--export-channel", "*"],
    );
    let _bb = bridge(
        &b,
        &[
            "--listen",
            &eb,
            "--connect",
            &ea,
            "--import-channel",
            "*",
            "--window",
            "64",
        ],
    );
    let send = [
        "send",
        "--channel",
        "/again",
        "--mpmc",
        "--count",
        &n,
        "--interval-us",
        "200",
        "--go-stdin",
    ];
    let recv = ["recv", "--channel", "/again", "--mpmc", "--count", &n];
    for round in 0..2 {
        let mut tx = a.spawn("send", PEER, &send);
        tx.expect("created", Duration::from_secs(10));
        let mut rx = b.spawn("recv", PEER, &recv);
        rx.expect("ready", Duration::from_secs(30));
        tx.send_line("go");
        let r = report(&mut rx, Duration::from_secs(30));
        eprintln!("round {round}: {r:?}");
        assert!(
            r.complete && r.received == N && r.duplicates == 0,
            "round {round}: {r:?}"
        );
        tx.expect("done", Duration::from_secs(30));
        // The sender exits; its segment goes with it.
        tx.close_stdin();
        tx.wait(Duration::from_secs(10));
    }
}
