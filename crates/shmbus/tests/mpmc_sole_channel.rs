//! An MPMC channel with one sender and one receiver gets the ring's sole endpoints (PROTOCOL
//! §5.7, DECISIONS D88): each raises its hint with a plain store. A cloned sender makes the
//! producers' role shared, and every message still arrives.

use shmbus::ring::layout::SOLE_SHARED;
use shmbus::ring::observe::Observer;

#[test]
fn one_sender_and_one_receiver_are_each_alone_until_a_clone_joins() {
    let name = format!("/shmbus-sole-channel-{}", std::process::id());
    let ch = shmbus::channel::<u64>()
        .mpmc()
        .capacity(8)
        .create(&name)
        .unwrap();
    let mut tx = ch.sender().unwrap();
    let mut rx = ch.receiver().unwrap();
    let sole = || Observer::open(&name).unwrap().snapshot().sole;
    let [p, c] = sole();
    assert!(
        (1..=55).contains(&p) && (1..=55).contains(&c),
        "{p:#x} {c:#x}"
    );
    for i in 0..20 {
        tx.send(i).unwrap();
        assert_eq!(rx.recv().unwrap(), i);
    }
    let mut tx2 = tx.clone();
    assert_eq!(
        sole()[0],
        SOLE_SHARED | p,
        "a clone makes the producers shared"
    );
    assert_eq!(sole()[1], c, "the receiver is still alone");
    let mut got = Vec::new();
    for i in 0..20 {
        tx.send(2 * i).unwrap();
        tx2.send(2 * i + 1).unwrap();
        got.push(rx.recv().unwrap());
        got.push(rx.recv().unwrap());
    }
    got.sort_unstable();
    assert_eq!(got, (0..40).collect::<Vec<_>>());
}
