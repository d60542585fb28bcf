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
        sending: Arc::new(AtomicBool::new(false)),
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

/// An exporting bridge restarted under the same Zenoh id (a fixed `id` in a Zenoh config
/// file) numbers its messages from 0 again (D69). Its token went and came back; the importer
/// must not take its new messages for duplicates of the old ones and drop them (each was
/// taken out of the channel on the other host: a loss of up to all the old count).
#[test]
fn an_exporter_back_under_the_same_id_is_not_taken_for_duplicates() {
    let dir = std::env::temp_dir().join(format!("shmbus-zreview-r-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let shared = crate::test_shared(&dir);
    let c = chan(4);
    let mut d = Drain::new(&shared, &c);
    let announce = ChannelAnnounce {
        origin: "e".into(),
        identity: meta("e", 0).identity,
        flavor: shmbus::raw_channel::RawFlavor::Mpmc,
        capacity: 8,
        max_message: 64,
        checksum: false,
        channel: "/jobs".into(),
    };
    d.item(Item::Announce(announce.clone()));
    // Messages of another fingerprint are dropped (mismatched) without a local receiver,
    // and their numbers are kept as those of written ones are.
    let other = |seq| {
        let mut m = meta("e", seq);
        m.identity.fingerprint = 8;
        m
    };
    for seq in 0..4 {
        d.item(Item::Data(other(seq), vec![1]));
    }
    d.item(Item::Gone("e".into()));
    d.item(Item::Announce(announce));
    d.item(Item::Data(other(0), vec![1]));
    assert_eq!(c.stats.duplicates.load(Ordering::Relaxed), 0);
    assert_eq!(c.stats.mismatched.load(Ordering::Relaxed), 5);
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two hosts export `/jobs` with different types (or this host's `/jobs` is of another type
/// than the exporter's). The importer cannot write the other type's messages: it must not
/// grant that exporter credit, or every message it takes out of its channel is dropped here
/// (counted, but lost), and its senders never see back-pressure.
#[test]
fn an_exporter_of_another_type_gets_no_credit() {
    let dir = std::env::temp_dir().join(format!("shmbus-zreview-m-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let shared = crate::test_shared(&dir);
    let c = chan(4);
    let mut d = Drain::new(&shared, &c);
    let announce = |origin: &str, fingerprint| {
        let mut identity = meta(origin, 0).identity;
        identity.fingerprint = fingerprint;
        ChannelAnnounce {
            origin: origin.into(),
            identity,
            flavor: shmbus::raw_channel::RawFlavor::Mpmc,
            capacity: 8,
            max_message: 64,
            checksum: false,
            channel: "/jobs".into(),
        }
    };
    d.item(Item::Announce(announce("a", 7)));
    assert!(
        d.origins["a"].granted.is_some(),
        "the channel's type: granted"
    );
    d.item(Item::Announce(announce("c", 9)));
    assert!(
        d.origins.get("c").is_none_or(|o| o.granted.is_none()),
        "an exporter of another type was granted credit"
    );
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}
