//! Adversarial tests of the exporter's credit (issue 19 review): grants that claim more than
//! was sent, and an importer followed again while it still holds what it was sent before.

use super::*;

fn grant(importer: &str, last: Option<u64>, window: u64) -> Grant {
    Grant {
        importer: importer.into(),
        last,
        window,
    }
}

/// Sends as the exporter thread does until the credit runs out (at most `cap` messages).
fn drain(c: &Credit, stats: &TopicStats, cap: usize) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    while out.len() < cap {
        let Some((i, seq)) = c.wait(stats) else { break };
        c.sent(seq);
        out.push((i, seq));
    }
    out
}

/// A grant whose `last` is beyond anything the exporter sent (a bogus or replayed grant, or
/// an importer that kept an old exporter's count) must not open more than `window` beyond
/// what was really sent.
#[test]
fn a_grant_claiming_more_than_was_sent_opens_no_more_than_the_window() {
    let (c, stats) = (Credit::default(), TopicStats::default());
    c.grant(&grant("x", None, 4));
    assert_eq!(drain(&c, &stats, 100).len(), 4);
    // X claims it wrote message 1000; the exporter sent 0..=3 only.
    c.grant(&grant("x", Some(1000), 4));
    let more = drain(&c, &stats, 10_000).len();
    assert!(
        more <= 4,
        "{more} messages sent on a window of 4 (nothing was acknowledged)"
    );
}

/// X is followed and stalls (its local receiver stopped: it writes nothing, its grants keep
/// `last = None`); it holds 4 of a window of 4. Its link is replaced (matching goes false for
/// a moment), Y takes over, Y dies, and X is followed again. X still holds its 4 messages, so
/// it has no room: the exporter must not send it another window (X's queue would drop it).
#[test]
#[ignore = "issue 19 review finding: fails on main, not fixed (credit counted in the exporter's global sequence)"]
fn an_importer_followed_again_gets_no_more_than_its_window_outstanding() {
    let (c, stats) = (Credit::default(), TopicStats::default());
    c.grant(&grant("x", None, 4));
    let to_x = drain(&c, &stats, 100);
    assert_eq!(to_x.len(), 4);
    c.set_reachable("x", Arc::new(AtomicBool::new(false)));
    c.grant(&grant("y", None, 4));
    assert_eq!(drain(&c, &stats, 100).len(), 4);
    c.set_reachable("y", Arc::new(AtomicBool::new(false)));
    // X's heartbeat: still nothing written.
    c.grant(&grant("x", None, 4));
    let again = drain(&c, &stats, 100);
    assert!(
        again.is_empty(),
        "X holds 4 unwritten messages of a window of 4, yet was sent {} more",
        again.len()
    );
}

/// A grant of no room (a window of 0, which no importer's configuration allows: a bogus or
/// foreign grant) must not make the exporter follow its sender: the real importer would wait
/// for that one's silence, and a sender that repeats it would hold the channel for good.
#[test]
fn a_grant_of_no_room_is_not_followed() {
    let (c, stats) = (Credit::default(), TopicStats::default());
    c.grant(&grant("ghost", None, 0));
    c.grant(&grant("x", None, 4));
    let sent = drain(&c, &stats, 100);
    assert_eq!(sent.len(), 4, "the real importer is followed");
    assert!(sent.iter().all(|s| s.0 == "x"));
}
