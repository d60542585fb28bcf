//! Adversarial tests of the channel importer (issue 19 review): two exporters of one channel,
//! each within its own credit, and sequence numbers at the end of the range.

use super::*;
use shmbus::topic::RawIdentity;

fn chan(window: usize) -> Chan {
    let mut rule = ChannelImportRule::new(vec!["/jobs".into()]);
    rule.window = window;
    Chan {
        name: "/jobs".into(),
        rule,
        queue: Mutex::new(VecDeque::new()),
        ready: Condvar::new(),
        stats: Arc::new(TopicStats::default()),
        importing: Arc::new(AtomicBool::new(false)),
    }
}

fn meta(origin: &str, seq: u64) -> Meta {
    Meta {
        origin: origin.into(),
        seq,
        identity: RawIdentity {
            fingerprint: 7,
            codec_id: 1,
            type_name: "T".into(),
            codec_name: "bincode".into(),
        },
        max_message: 64,
    }
}

/// The importer grants each exporter of a channel its own `window` (hosts A and C both
/// export `/jobs`, this host imports it). Both may then have `window` messages in flight at
/// once, each within its credit: the queue must take them all (D68: "the import queue never
/// overflows"; a message dropped here was taken out of a channel on another host).
#[test]
fn two_exporters_each_within_their_credit_lose_nothing() {
    let c = chan(4);
    for seq in 0..4 {
        c.push(Item::Data(meta("a", seq), vec![1]));
        c.push(Item::Data(meta("c", seq), vec![2]));
    }
    assert_eq!(
        c.stats.dropped_queue.load(Ordering::Relaxed),
        0,
        "messages sent within their exporter's credit were dropped"
    );
}

/// A sample's sequence number comes from the network: one at the end of the range must not
/// make the channel's thread panic (overflow) and stop importing the channel.
#[test]
fn a_sequence_number_at_the_end_of_the_range_does_not_panic() {
    let dir = std::env::temp_dir().join(format!("shmbus-zreview-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let shared = crate::test_shared(&dir);
    let c = chan(4);
    let mut d = Drain::new(&shared, &c);
    // An exporter nobody announced: its message is refused (counted), its number kept.
    d.data(&meta("z", u64::MAX - 1), &[1]);
    d.data(&meta("z", u64::MAX), &[1]);
    d.data(&meta("z", 3), &[1]);
    assert_eq!(c.stats.refused.load(Ordering::Relaxed), 2);
    assert_eq!(c.stats.duplicates.load(Ordering::Relaxed), 1);
    let _ = std::fs::remove_dir_all(&dir);
}
