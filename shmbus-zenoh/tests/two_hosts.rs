//! End to end across two "hosts" (mount namespaces with their own /dev/shm): a publisher on
//! A, subscribers on A and B; every message arrives once, in order, type-checked; a bridge
//! killed and restarted mid-stream costs a counted gap at most, never a duplicate.

mod common;

use common::*;
use shmbus_zenoh::status::Direction;
use std::time::Duration;

const N: u64 = 6000;

#[test]
fn two_hosts_once_in_order_typed_and_restart() {
    if !namespaces_available() {
        return;
    }
    let (a, b) = (Host::new("A"), Host::new("B"));
    let (pa, pb) = (free_port(), free_port());
    let (ea, eb) = (ep(pa), ep(pb));
    let bridge_a_args = [
        "--listen",
        &ea,
        "--connect",
        &eb,
        "--export",
        "e2e/**",
        "--tethered",
        "--congestion",
        "block",
    ];
    let bridge_b_args = [
        "--listen",
        &eb,
        "--connect",
        &ea,
        "--import",
        "e2e/**",
        "--overflow",
        "block",
        "--queue",
        "100000",
    ];
    let _bridge_a = bridge(&a, &bridge_a_args);
    let (mut bridge_b, _) = bridge(&b, &bridge_b_args);

    let n = N.to_string();
    let mut publisher = a.spawn(
        "pub",
        PEER,
        &[
            "pub",
            "--topic",
            "e2e/t",
            "--count",
            &n,
            "--interval-us",
            "500",
            "--go-stdin",
        ],
    );
    publisher.expect("created", Duration::from_secs(10));
    // The segments do not meet: host B has no topic until its bridge makes one.
    let mut sub_a = a.spawn("sub", PEER, &["sub", "--topic", "e2e/t", "--count", &n]);
    let mut sub_b = b.spawn("sub", PEER, &["sub", "--topic", "e2e/t", "--count", &n]);
    sub_a.expect("ready", Duration::from_secs(10));
    // B's topic appears when B's bridge sees A's announcement (liveliness).
    sub_b.expect("ready", Duration::from_secs(30));

    // The type crossed with the topic: another type is refused on B as it would be on A.
    let mut wrong = b.spawn("wrong", PEER, &["wrong-type", "--topic", "e2e/t"]);
    let verdict = wrong.expect("", Duration::from_secs(10));
    assert!(verdict.starts_with("refused"), "{verdict}");

    publisher.send_line("go");
    // Mid-stream (the stream takes about 3 s or more): kill B's bridge, start another.
    std::thread::sleep(Duration::from_millis(800));
    bridge_b.signal("KILL");
    bridge_b.wait(Duration::from_secs(5));
    let (mut bridge_b2, zid_b2) = bridge(&b, &bridge_b_args);

    let ra = report(&mut sub_a, Duration::from_secs(120));
    let rb = report(&mut sub_b, Duration::from_secs(120));
    publisher.expect("done", Duration::from_secs(60));
    eprintln!("A: {ra:?}\nB: {rb:?}");
    // A: local, untouched by B's restart.
    assert!(
        ra.complete && ra.received == N && ra.gaps == 0 && ra.duplicates == 0,
        "{ra:?}"
    );
    // B: in order and never twice; what B's restart cost is counted, and adds up.
    assert!(rb.complete, "{rb:?}");
    assert_eq!(rb.duplicates, 0, "{rb:?}");
    assert_eq!(rb.received + rb.gaps, N, "{rb:?}");
    assert!(rb.received > 0);

    // The status file of B's new bridge shows the import.
    let st = status(&b);
    let imp = topic_status(&st, "e2e/t", Direction::Import).expect("import status");
    assert!(imp.forwarded > 0, "{imp:?}");
    assert_eq!(imp.duplicates, 0);

    // SIGTERM: a clean stop, which removes the bridge's status file (the killed bridge's
    // stays, and `shmbus bridges` shows it gone).
    bridge_b2.signal("TERM");
    let exit = bridge_b2.wait(Duration::from_secs(20));
    assert!(exit.success(), "{exit:?}");
    let left = status(&b);
    assert!(left.iter().all(|s| s.zid != zid_b2), "{left:?}");
    assert_eq!(left.len(), 1, "the killed bridge's file: {left:?}");
}

#[test]
fn exporting_bridge_killed_and_restarted_costs_a_counted_gap_never_a_duplicate() {
    if !namespaces_available() {
        return;
    }
    let (a, b) = (Host::new("A"), Host::new("B"));
    let (ea, eb) = (ep(free_port()), ep(free_port()));
    let bridge_a_args = [
        "--listen",
        &ea,
        "--connect",
        &eb,
        "--export",
        "kill/**",
        "--tethered",
        "--congestion",
        "block",
    ];
    let (mut bridge_a, _) = bridge(&a, &bridge_a_args);
    let _bridge_b = bridge(
        &b,
        &[
            "--listen",
            &eb,
            "--connect",
            &ea,
            "--import",
            "kill/**",
            "--overflow",
            "block",
            "--queue",
            "100000",
        ],
    );
    let n = N.to_string();
    let mut publisher = a.spawn(
        "pub",
        PEER,
        &[
            "pub",
            "--topic",
            "kill/t",
            "--count",
            &n,
            "--interval-us",
            "500",
            "--go-stdin",
        ],
    );
    publisher.expect("created", Duration::from_secs(10));
    let mut sub_b = b.spawn("sub", PEER, &["sub", "--topic", "kill/t", "--count", &n]);
    sub_b.expect("ready", Duration::from_secs(30));
    publisher.send_line("go");
    std::thread::sleep(Duration::from_millis(800));
    // The exporter dies mid-stream; its tethered subscription is reaped by the publisher's
    // probe, and a new bridge exports from the next message on.
    bridge_a.signal("KILL");
    bridge_a.wait(Duration::from_secs(5));
    let _bridge_a2 = bridge(&a, &bridge_a_args);

    let rb = report(&mut sub_b, Duration::from_secs(120));
    eprintln!("B: {rb:?}");
    assert!(rb.complete, "{rb:?}");
    assert_eq!(rb.duplicates, 0, "{rb:?}");
    assert_eq!(rb.received + rb.gaps, N, "{rb:?}");
    // B's bridge counted the same gap from the exporter's sequence numbers.
    let st = status(&b);
    let imp = topic_status(&st, "kill/t", Direction::Import).expect("import status");
    assert_eq!(imp.gaps, rb.gaps, "{imp:?}");
    assert_eq!(imp.duplicates, 0, "{imp:?}");
}
