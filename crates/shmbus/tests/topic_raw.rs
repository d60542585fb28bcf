//! Raw topic endpoints (`topic::raw`): a `RawPublisher` writes a given identity, which typed
//! endpoints check as they check a typed publisher's; a `RawSubscriber` reads any topic and
//! reports its identity; succession and refusal work as for typed publishers.

use shmbus::codec::Bincode;
use shmbus::topic::{
    RawIdentity, RawPublisherBuilder, RawSubscribeOptions, RawSubscriber, StartAt,
};
use shmbus::Error;
use shmbus_testkit::process::unique_name;
use std::time::{Duration, Instant};

fn topic(prefix: &str) -> String {
    unique_name(prefix)
        .trim_start_matches('/')
        .replace('.', "/")
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

#[test]
fn raw_subscriber_reads_a_typed_topic_and_reports_its_identity() {
    let t = topic("raw-typed");
    let mut p = shmbus::topic::publisher::<String>().create(&t).unwrap();
    let opts = RawSubscribeOptions {
        tethered: true,
        start: StartAt::Oldest,
        shm_dir: None,
    };
    p.send(&"before".to_string()).unwrap();
    let mut raw = RawSubscriber::open_with(&t, &opts).unwrap();
    assert_eq!(
        raw.identity(),
        &RawIdentity::of::<String, Bincode>(None),
        "the ring's identity is the typed publisher's"
    );
    p.send(&"after".to_string()).unwrap();
    let mut buf = Vec::new();
    for want in ["before", "after"] {
        let n = raw.recv_deadline(&mut buf, soon()).unwrap();
        let got: String = bincode::serde::decode_from_slice(&buf[..n], bincode::config::standard())
            .unwrap()
            .0;
        assert_eq!(got, want);
    }
    assert_eq!(raw.sequence(), 2);
    assert!(raw
        .recv_deadline(&mut buf, Instant::now() + Duration::from_millis(20))
        .unwrap_err()
        .is_timeout());
    drop((p, raw));
    shmbus::topic::remove(&t).unwrap();
}

#[test]
fn raw_publisher_refuses_another_identity_and_a_live_publisher_and_succeeds_a_gone_one() {
    let t = topic("raw-refuse");
    let u32_id = RawIdentity::of::<u32, Bincode>(None);
    let first = RawPublisherBuilder::new(u32_id.clone()).create(&t).unwrap();
    // A live publisher: refused.
    let err = RawPublisherBuilder::new(u32_id.clone())
        .create(&t)
        .unwrap_err();
    assert!(matches!(err, Error::PublisherAlive { .. }), "{err}");
    // Another identity: refused, naming both fingerprints.
    let other = RawIdentity::of::<String, Bincode>(None);
    let err = RawPublisherBuilder::new(other.clone())
        .create(&t)
        .unwrap_err();
    match &err {
        Error::TypeMismatch {
            expected,
            found_fingerprint,
            ..
        } => {
            assert_eq!(expected.fingerprint, other.fingerprint);
            assert_eq!(*found_fingerprint, u32_id.fingerprint);
        }
        e => panic!("{e}"),
    }
    // A typed subscriber of the raw publisher's identity is accepted; another type is not.
    let mut typed = shmbus::topic::subscriber::<u32>().open(&t).unwrap();
    assert!(matches!(
        shmbus::topic::subscriber::<u64>().open(&t),
        Err(Error::TypeMismatch { .. })
    ));
    drop(first);
    // Gone: the next raw publisher goes on in the same ring; the subscriber stays.
    let mut second = RawPublisherBuilder::new(u32_id).create(&t).unwrap();
    second.send_deadline(&[9], soon()).unwrap();
    assert_eq!(typed.recv_timeout(Duration::from_secs(5)).unwrap(), 9);
    // Too large: refused with the limit.
    let big = vec![0; second.max_message() + 1];
    assert!(second.send_deadline(&big, soon()).is_err());
    drop((second, typed));
    shmbus::topic::remove(&t).unwrap();
}

#[test]
fn raw_subscriber_of_no_topic_is_no_topic() {
    let t = topic("raw-none");
    assert!(matches!(
        RawSubscriber::open(&t),
        Err(Error::NoTopic { .. })
    ));
}
