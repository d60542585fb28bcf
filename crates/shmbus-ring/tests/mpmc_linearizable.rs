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

/// Between a pop's first look (the head position is being written) and its look-ahead for a
/// later committed message, the ring moves on by a lap — a preempted consumer, which CI's
/// loaded runners produce. The queue is never empty meanwhile, so `Empty` is wrong: the
/// look-ahead, reading only later laps' words, must send the pop back to look again, not
/// answer "nothing committed past the head". (Seen in CI: crossbeam's `linearizable` ported
/// to processes failed 4 runs in 40 with both cores busy.)
#[test]
fn a_lap_during_the_look_ahead_is_not_empty() {
    let ring = MpmcRing::in_heap(&MpmcConfig::new(4, 8)).unwrap();
    let (mut first, mut tx) = (ring.producer().unwrap(), ring.producer().unwrap());
    let (mut rx, mut other) = (ring.consumer().unwrap(), ring.consumer().unwrap());
    let (reserved, go) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
    let (done_tx, done) = std::sync::mpsc::channel();
    // Position 0: a send half done, in another thread.
    let writer = std::thread::spawn(move || {
        let mut guard = first.reserve(1).unwrap();
        guard[0] = 0;
        reserved.0.send(()).unwrap();
        go.1.recv().unwrap();
        guard.commit_len(1);
        done_tx.send(()).unwrap();
    });
    reserved.1.recv().unwrap();
    // Position 1: this thread's send, returned.
    tx.push(&[1]).unwrap();
    let mut tx2 = ring.producer().unwrap();
    shmbus_ring::crashpoint::on_this_thread("mpmc.pop.look_ahead", move || {
        let mut buf = [0u8; 8];
        let mut take = |want: u8| {
            assert_eq!(other.try_pop(&mut buf), Ok(1));
            assert_eq!(buf[0], want);
        };
        // The queue holds 1, then 0 and 1, …: never empty. It ends holding 5 alone.
        go.0.send(()).unwrap();
        done.recv().unwrap();
        tx2.push(&[2]).unwrap();
        take(0);
        tx2.push(&[3]).unwrap();
        take(1);
        tx2.push(&[4]).unwrap();
        take(2);
        tx2.push(&[5]).unwrap();
        take(3);
        take(4);
    });
    let mut buf = [0u8; 8];
    assert_eq!(
        rx.try_pop(&mut buf),
        Ok(1),
        "a pop during which the ring was never empty"
    );
    assert_eq!(buf[0], 5);
    writer.join().unwrap();
}
