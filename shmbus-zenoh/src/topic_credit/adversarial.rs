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
