//! Adversarial tests of topic credit (issue 19 review): sequence numbers and grants at the
//! end of the range, and an importer that grants no room at all.

use super::*;

/// A message's sequence number comes from the network: one at the end of the range must not
/// panic the import thread (overflow in the next grant's limit).
#[test]
fn an_importer_given_the_last_sequence_number_does_not_panic() {
    let dir = std::env::temp_dir().join(format!("shmbus-zreview-t-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let shared = crate::test_shared(&dir);
    let mut g = ImportGrants::new("t", 8);
    g.live(&shared, "exp", true);
    g.done(&shared, "exp", u64::MAX - 2, false);
    g.done(&shared, "exp", u64::MAX, true);
    let o = &g.origins["exp"];
    assert_eq!(o.last, Some(u64::MAX));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The exporter's `sent` is fed the sequence number it read: u64::MAX must not panic.
#[test]
fn export_credit_at_the_end_of_the_range_does_not_panic() {
    let c = ExportCredit::default();
    c.sent(u64::MAX);
    c.sent(u64::MAX);
}

/// A grant whose `last` is beyond what the export sent must not let the export run more than
/// the window ahead of what was really sent (the importer's block queue would overflow).
#[test]
fn a_grant_claiming_more_than_was_sent_opens_no_more_than_the_window() {
    let (c, stats) = (ExportCredit::default(), TopicStats::default());
    let z = Duration::ZERO;
    c.sent(99);
    c.grant(&Grant {
        importer: "b".into(),
        last: None,
        window: 4,
    });
    assert!(c.allows(103, z, &stats));
    c.sent(103);
    c.grant(&Grant {
        importer: "b".into(),
        last: Some(1_000_000),
        window: 4,
    });
    assert!(c.allows(107, z, &stats));
    assert!(
        !c.allows(108, z, &stats),
        "103 was the last sent: up to 107"
    );
}

/// A grant of no room (a window of 0, which no import rule allows) must not hold the export
/// back: a sender repeating it would stop the topic for good.
#[test]
fn a_grant_of_no_room_holds_nothing_back() {
    let (c, stats) = (ExportCredit::default(), TopicStats::default());
    c.sent(9);
    c.grant(&Grant {
        importer: "ghost".into(),
        last: None,
        window: 0,
    });
    assert!(c.allows(10, Duration::ZERO, &stats));
}
