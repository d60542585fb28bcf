//! MPMC `try_pop` is linearizable (PROTOCOL §5.3, M17): once a push has returned and no other
//! consumer has taken its message, `try_pop` does not report `Empty`. crossbeam-channel's
//! `array::linearizable` test, on the raw ring: threads that each push and then pop at once
//! must always find a message, even while another thread's push is half done at the head.

use shmbus_ring::{Mpmc, MpmcConfig, MpmcRing, PopError};
use std::sync::Barrier;

const THREADS: usize = 4;
const COUNT: usize = 25_000;

fn run(ring: &MpmcRing) {
    let _keep = ring.producer().unwrap();
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                let mut buf = vec![0u8; rx.max_message()];
                for i in 0..COUNT {
                    tx.push(&[t as u8]).unwrap();
                    match rx.try_pop(&mut buf) {
                        Ok(1) => {}
                        other => {
                            panic!("thread {t}, round {i}: try_pop after a push returned {other:?}")
                        }
                    }
                }
            });
        }
    });
    let mut rx = ring.consumer().unwrap();
    let mut buf = vec![0u8; rx.max_message()];
    // Every message was taken by the thread that pushed it or another: none is left.
    assert_eq!(rx.try_pop(&mut buf), Err(PopError::Empty));
}

#[test]
fn try_pop_after_push_never_reports_empty() {
    let ring = shmbus_ring::Ring::<Mpmc>::in_heap(&MpmcConfig::new(THREADS as u64, 8)).unwrap();
    run(&ring);
}
