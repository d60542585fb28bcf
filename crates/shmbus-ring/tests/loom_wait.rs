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

// Membarrier mode (PROTOCOL §6.3, DECISIONS D65): a registered publisher skips N1's fence
// (N1m), and a sleeper's membarrier (P3m) makes it execute a barrier wherever it is. loom has
// no interrupts: `shmbus_ring::membarrier::model` lets the publisher serve the sleeper's
// request at every point between its protocol accesses, and at its end (`retire`).

#[test]
fn loom_membarrier_a_sleeper_is_always_woken_by_a_light_publisher() {
    model(|| {
        let bell = Doorbell::membarrier();
        let publisher = {
            let bell = bell.clone();
            loom::thread::spawn(move || {
                bell.publish(1);
                bell.retire();
            })
        };
        bell.wait_for(1);
        publisher.join().unwrap();
    });
}

#[test]
fn loom_membarrier_two_light_publications_wake_a_sleeper_that_waits_for_the_second() {
    model(|| {
        let bell = Doorbell::membarrier();
        let publisher = {
            let bell = bell.clone();
            loom::thread::spawn(move || {
                bell.publish(1);
                bell.publish(2);
                bell.retire();
            })
        };
        bell.wait_for(2);
        publisher.join().unwrap();
    });
}

#[test]
fn loom_membarrier_two_sleepers_are_both_woken_by_one_light_publication() {
    model(|| {
        let bell = Doorbell::membarrier();
        let sleeper = {
            let bell = bell.clone();
            loom::thread::spawn(move || bell.wait_for(1))
        };
        let publisher = {
            let bell = bell.clone();
            loom::thread::spawn(move || {
                bell.publish(1);
                bell.retire();
            })
        };
        bell.wait_for(1);
        sleeper.join().unwrap();
        publisher.join().unwrap();
    });
}

#[test]
fn loom_membarrier_an_unregistered_publisher_keeps_the_fence_and_wakes_the_sleeper() {
    model(|| {
        let bell = Doorbell::membarrier_unregistered();
        let publisher = {
            let bell = bell.clone();
            loom::thread::spawn(move || {
                bell.publish(1);
                bell.retire();
            })
        };
        bell.wait_for(1);
        publisher.join().unwrap();
    });
}

#[test]
fn loom_membarrier_an_async_waiter_is_always_rung_by_a_light_publisher() {
    model(|| {
        let bell = Doorbell::membarrier();
        let publisher = {
            let bell = bell.clone();
            loom::thread::spawn(move || {
                bell.publish(1);
                bell.retire();
            })
        };
        let parked = bell.wait_async(1, 0);
        publisher.join().unwrap();
        assert!(parked <= 1);
        assert_eq!(bell.pending(0), 0);
    });
}

#[test]
fn loom_membarrier_an_async_waiter_and_a_futex_sleeper_are_both_woken_by_a_light_publisher() {
    model(|| {
        let bell = Doorbell::membarrier();
        let sleeper = {
            let bell = bell.clone();
            loom::thread::spawn(move || bell.wait_for(1))
        };
        let publisher = {
            let bell = bell.clone();
            loom::thread::spawn(move || {
                bell.publish(1);
                bell.retire();
            })
        };
        bell.wait_async(1, 1);
        sleeper.join().unwrap();
        publisher.join().unwrap();
        assert_eq!(bell.pending(1), 0);
    });
}

/// The model can fail: without the sleeper's membarrier (P3m), a light publisher's N2 load
/// may miss the sleeper's announcement while the sleeper's re-check misses the publication
/// (store buffering), and the sleeper sleeps for ever: loom reports the deadlock.
#[test]
#[should_panic(expected = "deadlock")]
fn loom_membarrier_without_the_sleepers_barrier_a_wake_up_is_lost() {
    model(|| {
        let bell = Doorbell::unsound();
        let publisher = {
            let bell = bell.clone();
            loom::thread::spawn(move || {
                bell.publish(1);
                bell.retire();
            })
        };
        bell.wait_for(1);
        publisher.join().unwrap();
    });
}

/// Likewise for an asynchronous waiter: without P3m at B2 the bell is never rung.
#[test]
#[should_panic(expected = "deadlock")]
fn loom_membarrier_without_the_waiters_barrier_a_bell_is_lost() {
    model(|| {
        let bell = Doorbell::unsound();
        let publisher = {
            let bell = bell.clone();
            loom::thread::spawn(move || {
                bell.publish(1);
                bell.retire();
            })
        };
        bell.wait_async(1, 0);
        publisher.join().unwrap();
    });
}
