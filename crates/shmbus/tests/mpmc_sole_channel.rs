//! An MPMC channel with one sender and one receiver gets the ring's sole endpoints (PROTOCOL
//! §5.7, DECISIONS D88): each raises its hint with a plain store. A cloned sender makes the
//! producers' role shared, and every message still arrives; once the clone is dropped, the
//! sender left is alone again (D94).

use shmbus::ring::layout::{SOLE_JOIN, SOLE_SHARED};
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
        SOLE_SHARED | SOLE_JOIN | p,
        "a clone makes the producers shared (one join)"
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

/// A sender cloned for a while (a worker thread's, say) and dropped: the sender left is alone
/// in the producers' role again after its next send, and raises with plain stores again
/// (DECISIONS D94). Before layout 1.8 the role stayed shared for the channel's life.
#[test]
fn a_dropped_clone_leaves_the_sender_alone_again() {
    let name = format!("/shmbus-sole-channel-clone-{}", std::process::id());
    let ch = shmbus::channel::<u64>()
        .mpmc()
        .capacity(16)
        .create(&name)
        .unwrap();
    let mut tx = ch.sender().unwrap();
    let mut rx = ch.receiver().unwrap();
    let sole = || Observer::open(&name).unwrap().snapshot().sole;
    let [p, _] = sole();
    let worker = {
        let mut tx2 = tx.clone();
        std::thread::spawn(move || {
            for i in 100..110 {
                tx2.send(i).unwrap();
            }
        })
    };
    worker.join().unwrap();
    assert_ne!(sole()[0] & SOLE_SHARED, 0, "the clone shared the role");
    tx.send(1).unwrap();
    assert_eq!(sole()[0], p, "alone again after its next send");
    let mut got: Vec<u64> = (0..11).map(|_| rx.recv().unwrap()).collect();
    got.sort_unstable();
    assert_eq!(got, [1, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109]);
}
