//! No loops (both bridges export and import the same topics) and no head-of-line blocking
//! (one topic's stalled subscriber does not hold up another topic).

mod common;

use common::*;
use shmbus_zenoh::status::Direction;
use std::time::Duration;

#[test]
fn both_bridges_export_and_import_each_message_arrives_once() {
    if !namespaces_available() {
        return;
    }
    const N: u64 = 2000;
    let (a, b) = (Host::new("A"), Host::new("B"));
    let (ea, eb) = (ep(free_port()), ep(free_port()));
    let both = |listen: &str, connect: &str| -> Vec<String> {
        [
            "--listen",
            listen,
            "--connect",
            connect,
            "--export",
            "loop/**",
            "--tethered",
            "--congestion",
            "block",
            "--import",
            "loop/**",
            "--overflow",
            "block",
            "--queue",
            "100000",
        ]
        .map(String::from)
        .to_vec()
    };
    let args_a = both(&ea, &eb);
    let args_b = both(&eb, &ea);
    let _ba = bridge(&a, &args_a.iter().map(String::as_str).collect::<Vec<_>>());
    let _bb = bridge(&b, &args_b.iter().map(String::as_str).collect::<Vec<_>>());

    let n = N.to_string();
    let mut publisher = a.spawn(
        "pub",
        PEER,
        &[
            "pub",
            "--topic",
            "loop/t",
            "--count",
            &n,
            "--interval-us",
            "200",
            "--go-stdin",
        ],
    );
    publisher.expect("created", Duration::from_secs(10));
    let sub_args = [
        "sub",
        "--topic",
        "loop/t",
        "--count",
        &n,
        "--linger-ms",
        "1500",
    ];
    let mut sub_a = a.spawn("sub", PEER, &sub_args);
    let mut sub_b = b.spawn("sub", PEER, &sub_args);
    sub_a.expect("ready", Duration::from_secs(10));
    sub_b.expect("ready", Duration::from_secs(30));
    publisher.send_line("go");

    let ra = report(&mut sub_a, Duration::from_secs(120));
    let rb = report(&mut sub_b, Duration::from_secs(120));
    eprintln!("A: {ra:?}\nB: {rb:?}");
    for r in [&ra, &rb] {
        // Once each, in order, and nothing more for 1.5 s after the last.
        assert!(
            r.complete && r.received == N && r.gaps == 0 && r.duplicates == 0,
            "{r:?}"
        );
    }
    // B's bridge publishes the topic there: it did not send it back.
    let st = status(&b);
    let imp = topic_status(&st, "loop/t", Direction::Import).expect("B imports");
    assert_eq!(imp.forwarded, N, "{imp:?}");
    let exported_back = topic_status(&st, "loop/t", Direction::Export).map_or(0, |e| e.forwarded);
    assert_eq!(exported_back, 0);
    // And A's bridge received nothing to import.
    let st = status(&a);
    let back = topic_status(&st, "loop/t", Direction::Import).map_or(0, |i| i.forwarded);
    assert_eq!(back, 0);
}

#[test]
fn a_stalled_topic_does_not_hold_up_another() {
    if !namespaces_available() {
        return;
    }
    const N: u64 = 3000;
    let (a, b) = (Host::new("A"), Host::new("B"));
    let (ea, eb) = (ep(free_port()), ep(free_port()));
    let _ba = bridge(
        &a,
        &[
            "--listen",
            &ea,
            "--connect",
            &eb,
            "--export",
            "hol/**",
            "--tethered",
            "--congestion",
            "block",
        ],
    );
    let _bb = bridge(
        &b,
        &[
            "--listen",
            &eb,
            "--connect",
            &ea,
            "--import",
            "hol/**",
            "--overflow",
            "drop-newest",
            "--queue",
            "64",
        ],
    );
    let n = N.to_string();
    let pub_args = |topic: &'static str| {
        [
            "pub",
            "--topic",
            topic,
            "--count",
            n.as_str(),
            "--size",
            "1024",
            "--interval-us",
            "300",
            "--go-stdin",
        ]
    };
    let mut p_stalled = a.spawn("pub-stalled", PEER, &pub_args("hol/stalled"));
    let mut p_fast = a.spawn("pub-fast", PEER, &pub_args("hol/fast"));
    p_stalled.expect("created", Duration::from_secs(10));
    p_fast.expect("created", Duration::from_secs(10));
    // On B: the stalled topic's one subscriber is tethered and never reads; its ring fills
    // after about 200 messages of 1 KiB, and then B's import of it can only drop.
    let mut stall = b.spawn(
        "stall",
        PEER,
        &["sub", "--topic", "hol/stalled", "--count", &n, "--stall"],
    );
    let mut sub_fast = b.spawn(
        "sub-fast",
        PEER,
        &["sub", "--topic", "hol/fast", "--count", &n],
    );
    stall.expect("ready", Duration::from_secs(30));
    sub_fast.expect("ready", Duration::from_secs(30));
    p_stalled.send_line("go");
    p_fast.send_line("go");

    let r = report(&mut sub_fast, Duration::from_secs(120));
    eprintln!("fast: {r:?}");
    assert!(
        r.complete && r.received == N && r.gaps == 0 && r.duplicates == 0,
        "{r:?}"
    );
    // The stalled topic did stall: its import dropped, and said so.
    p_stalled.expect("done", Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(500));
    let st = status(&b);
    let s = topic_status(&st, "hol/stalled", Direction::Import).expect("stalled import");
    eprintln!("stalled: {s:?}");
    assert!(s.dropped_queue + s.dropped_ring > 0, "{s:?}");
    assert!(s.forwarded < N, "{s:?}");
}
