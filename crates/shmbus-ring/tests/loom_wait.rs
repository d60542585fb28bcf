//! loom models of the sleep/notify protocol (PROTOCOL §6: N1–N2 against P1–P6), the very
//! code of `wait.rs`, over loom memory whose futex is a condition variable: a sleeper that no
//! notifier wakes blocks for ever, and loom reports the deadlock. So a lost wake-up fails the
//! model.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p shmbus-ring --release loom`.
#![cfg(loom)]

use shmbus_ring::model::wait::Doorbell;

fn model(f: impl Fn() + Sync + Send + 'static) {
    shmbus_ring::model::check(3, f);
}

#[test]
fn loom_wake_sleep_a_sleeper_is_always_woken_by_the_publication_it_waits_for() {
    model(|| {
        let bell = Doorbell::new();
        let publisher = {
            let bell = bell.clone();
            loom::thread::spawn(move || bell.publish(1))
        };
        bell.wait_for(1);
        publisher.join().unwrap();
    });
}

#[test]
fn loom_wake_sleep_two_publications_in_a_row_wake_a_sleeper_that_waits_for_the_second() {
    model(|| {
        let bell = Doorbell::new();
        let publisher = {
            let bell = bell.clone();
            loom::thread::spawn(move || {
                bell.publish(1);
                bell.publish(2);
            })
        };
        bell.wait_for(2);
        publisher.join().unwrap();
    });
}

#[test]
fn loom_wake_sleep_two_sleepers_are_both_woken_by_one_publication() {
    model(|| {
        let bell = Doorbell::new();
        let sleeper = {
            let bell = bell.clone();
            loom::thread::spawn(move || bell.wait_for(1))
        };
        let publisher = {
            let bell = bell.clone();
            loom::thread::spawn(move || bell.publish(1))
        };
        bell.wait_for(1);
        sleeper.join().unwrap();
        publisher.join().unwrap();
    });
}
