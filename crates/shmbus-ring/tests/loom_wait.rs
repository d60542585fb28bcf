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

// Doorbells (PROTOCOL §6.1, B0–B4 against N1 and N3): an asynchronous waiter arms its bell
// and re-checks; a notifier that follows takes the armed bits and rings each bell once.

#[test]
fn loom_bell_an_async_waiter_is_always_rung_for_the_publication_it_waits_for() {
    model(|| {
        let bell = Doorbell::new();
        let publisher = {
            let bell = bell.clone();
            loom::thread::spawn(move || bell.publish(1))
        };
        let parked = bell.wait_async(1, 0);
        publisher.join().unwrap();
        // One park, at most one datagram, and none left over.
        assert!(parked <= 1);
        assert_eq!(bell.pending(0), 0);
    });
}

#[test]
fn loom_bell_two_publications_ring_a_parked_waiter_at_most_once_per_park() {
    model(|| {
        let bell = Doorbell::new();
        let publisher = {
            let bell = bell.clone();
            loom::thread::spawn(move || {
                bell.publish(1);
                bell.publish(2);
            })
        };
        let parked = bell.wait_async(2, 0);
        publisher.join().unwrap();
        // Each park takes the one datagram that ends it; a second publication finds the bit
        // taken and sends nothing more.
        assert!(parked <= 2);
        assert_eq!(bell.pending(0), 0);
    });
}

#[test]
fn loom_bell_an_async_waiter_and_a_futex_sleeper_are_both_woken() {
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
        bell.wait_async(1, 1);
        sleeper.join().unwrap();
        publisher.join().unwrap();
        assert_eq!(bell.pending(1), 0);
    });
}
