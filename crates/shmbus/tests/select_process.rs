//! `Select` and `select!` beyond crossbeam's tests: channels fed by another process, a sender
//! killed with SIGKILL under a blocked select, cancel safety (a dropped `SelectedOperation`
//! loses nothing), and the CPU a process blocked in a select uses (none to speak of: it sleeps
//! on the channels' futex words, it does not spin).

mod common;

use common::{role, CHANNEL};
use shmbus::flavor::{Mpmc, Spsc};
use shmbus::{Receiver, Select};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);
const PER_CHANNEL: u64 = 20_000;

/// The four channels of the cross-process tests: two SPSC, two MPMC, small capacities so that
/// the sender often waits for the select to drain them.
fn names(base: &str) -> [String; 4] {
    [0, 1, 2, 3].map(|i| format!("{base}-{i}"))
}

fn spsc() -> shmbus::ChannelBuilder<(u8, u64), Spsc> {
    shmbus::channel::<(u8, u64)>().capacity(8)
}

fn mpmc() -> shmbus::ChannelBuilder<(u8, u64), Mpmc> {
    shmbus::channel::<(u8, u64)>().mpmc().capacity(8)
}

/// A child process sends `PER_CHANNEL` messages on each of four channels (interleaved in a
/// pseudo-random order); the parent receives all of them through one `Select` over the four
/// receivers, each channel's messages in order, and sees every channel disconnect when the
/// child exits.
#[test]
fn a_select_over_four_channels_receives_everything_a_child_process_sends() {
    const TEST: &str = "a_select_over_four_channels_receives_everything_a_child_process_sends";
    if role().is_some() {
        let base = std::env::var(CHANNEL).unwrap();
        let n = names(&base);
        let mut s0 = spsc().open_sender(&n[0]).unwrap();
        let mut s1 = spsc().open_sender(&n[1]).unwrap();
        let mut m2 = mpmc().open_sender(&n[2]).unwrap();
        let mut m3 = mpmc().open_sender(&n[3]).unwrap();
        let mut next = [0u64; 4];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        while next.iter().any(|&n| n < PER_CHANNEL) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let c = (x % 4) as usize;
            if next[c] == PER_CHANNEL {
                continue;
            }
            let msg = (c as u8, next[c]);
            match c {
                0 => s0.send_timeout(msg, LIMIT).unwrap(),
                1 => s1.send_timeout(msg, LIMIT).unwrap(),
                2 => m2.send_timeout(msg, LIMIT).unwrap(),
                _ => m3.send_timeout(msg, LIMIT).unwrap(),
            }
            next[c] += 1;
        }
        return;
    }
    let base = common::unique_name("sel4");
    let n = names(&base);
    let mut r0 = spsc().create_receiver(&n[0]).unwrap();
    let mut r1 = spsc().create_receiver(&n[1]).unwrap();
    let mut r2 = mpmc().create_receiver(&n[2]).unwrap();
    let mut r3 = mpmc().create_receiver(&n[3]).unwrap();
    let mut child = common::spawn(TEST, "sender", &base);
    // A channel no sender has attached to yet is not disconnected: wait for one message on
    // each before relying on disconnection.
    let mut next = [0u64; 4];
    let mut open = [true; 4];
    let deadline = Instant::now() + LIMIT;
    while open.iter().any(|&o| o) {
        let mut sel = Select::new();
        let mut idx = [usize::MAX; 4];
        if open[0] {
            idx[0] = sel.recv(&mut r0);
        }
        if open[1] {
            idx[1] = sel.recv(&mut r1);
        }
        if open[2] {
            idx[2] = sel.recv(&mut r2);
        }
        if open[3] {
            idx[3] = sel.recv(&mut r3);
        }
        let op = sel
            .select_deadline(deadline)
            .expect("the select timed out: a message or a disconnection was missed");
        let c = idx.iter().position(|&i| i == op.index()).unwrap();
        let got = match c {
            0 => op.recv(&mut r0),
            1 => op.recv(&mut r1),
            2 => op.recv(&mut r2),
            _ => op.recv(&mut r3),
        };
        match got {
            Ok((tag, seq)) => {
                assert_eq!((tag as usize, seq), (c, next[c]), "out of order");
                next[c] += 1;
            }
            Err(e) => {
                assert!(e.is_disconnected(), "{e}");
                assert_eq!(next[c], PER_CHANNEL, "disconnected before the end");
                open[c] = false;
            }
        }
    }
    assert_eq!(next, [PER_CHANNEL; 4]);
    assert!(child.wait_within(LIMIT).success());
}

/// A select blocked (no deadline) on two channels whose only sender, a child process, is
/// killed with SIGKILL returns a disconnected receive within a bounded time: the select sleeps
/// at most a probe interval at a time and its re-check probes the senders' liveness.
#[test]
fn a_select_blocked_on_channels_whose_sender_is_sigkilled_returns_disconnected() {
    const TEST: &str =
        "a_select_blocked_on_channels_whose_sender_is_sigkilled_returns_disconnected";
    if role().is_some() {
        let base = std::env::var(CHANNEL).unwrap();
        let n = names(&base);
        let mut s0 = spsc().open_sender(&n[0]).unwrap();
        let _m1 = mpmc().open_sender(&n[1]).unwrap();
        s0.send((0, 0)).unwrap();
        // Wait to be killed.
        std::thread::sleep(LIMIT);
        return;
    }
    let base = common::unique_name("selkill");
    let n = names(&base);
    let mut r0 = spsc().create_receiver(&n[0]).unwrap();
    let mut r1 = mpmc().create_receiver(&n[1]).unwrap();
    let mut child = common::spawn(TEST, "sender", &base);
    assert_eq!(r0.recv_timeout(LIMIT).unwrap(), (0, 0)); // both senders attached
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let mut disconnected = 0;
        let mut blocked_for = Duration::ZERO;
        // Both channels, one select at a time, each without deadline.
        let mut open = [true, true];
        while open.iter().any(|&o| o) {
            let mut sel = Select::new();
            let i0 = if open[0] {
                sel.recv(&mut r0)
            } else {
                usize::MAX
            };
            if open[1] {
                sel.recv(&mut r1);
            }
            let start = Instant::now();
            let op = sel.select();
            blocked_for = blocked_for.max(start.elapsed());
            let err = if op.index() == i0 {
                open[0] = false;
                op.recv(&mut r0).unwrap_err()
            } else {
                open[1] = false;
                op.recv(&mut r1).unwrap_err()
            };
            assert!(err.is_disconnected(), "{err}");
            disconnected += 1;
            let _ = tx.send(Instant::now());
        }
        disconnected
    });
    std::thread::sleep(Duration::from_millis(200)); // the select is asleep by now
    let killed = Instant::now();
    child.kill().unwrap();
    child.wait().unwrap();
    // Generous: the default probe interval is 20 ms.
    let bound = Duration::from_secs(5);
    let first = rx.recv_timeout(LIMIT).expect("the select did not return");
    let second = rx
        .recv_timeout(LIMIT)
        .expect("the second select did not return");
    assert!(
        first.duration_since(killed) < bound && second.duration_since(killed) < bound,
        "disconnection seen {:?} / {:?} after the kill",
        first.duration_since(killed),
        second.duration_since(killed)
    );
    assert_eq!(t.join().unwrap(), 2);
}

/// A selected receive already holds its message: dropping the `SelectedOperation` (or using
/// `try_ready`/`ready` and not receiving) loses nothing, and the receiver's next receive, of
/// any kind, returns it, in order.
#[test]
fn a_dropped_selected_operation_loses_no_message() {
    fn check<F: shmbus::flavor::Flavor>(
        mut rx_a: Receiver<u64, F>,
        mut rx_b: Receiver<u64, F>,
        mut send: impl FnMut(usize, u64) + Send + 'static,
    ) {
        const N: u64 = 2_000;
        let t = std::thread::spawn(move || {
            for i in 0..N {
                send((i % 2) as usize, i);
            }
        });
        let mut got = [Vec::new(), Vec::new()];
        let mut open = [true, true];
        let mut round = 0u64;
        while open.iter().any(|&o| o) {
            round += 1;
            let mut sel = Select::new();
            let ia = if open[0] {
                sel.recv(&mut rx_a)
            } else {
                usize::MAX
            };
            if open[1] {
                sel.recv(&mut rx_b);
            }
            let op = sel.select_timeout(LIMIT).unwrap();
            let which = usize::from(op.index() != ia);
            let rx = if which == 0 { &mut rx_a } else { &mut rx_b };
            // Complete a third of the selections; drop the others and receive by other means.
            let v = match round % 3 {
                0 => op.recv(rx).ok(),
                1 => {
                    drop(op);
                    match rx.try_recv() {
                        Ok(v) => Some(v),
                        Err(e) => {
                            assert!(e.is_disconnected(), "{e}");
                            None
                        }
                    }
                }
                _ => {
                    drop(op);
                    // The staged message is first in an iterator too.
                    rx.iter().next()
                }
            };
            match v {
                Some(v) => got[which].push(v),
                None => open[which] = false,
            }
        }
        t.join().unwrap();
        assert_eq!(got[0], (0..N).step_by(2).collect::<Vec<_>>());
        assert_eq!(got[1], (1..N).step_by(2).collect::<Vec<_>>());
        assert!(rx_a.try_recv().unwrap_err().is_disconnected());
    }
    let (a, b) = (
        shmbus::channel::<u64>().capacity(4).in_process().unwrap(),
        shmbus::channel::<u64>().capacity(4).in_process().unwrap(),
    );
    let (mut ta, mut tb) = (a.sender().unwrap(), b.sender().unwrap());
    check(a.receiver().unwrap(), b.receiver().unwrap(), move |c, i| {
        if c == 0 { ta.send(i) } else { tb.send(i) }.unwrap();
    });
    let (a, b) = (
        shmbus::channel::<u64>()
            .mpmc()
            .capacity(4)
            .in_process()
            .unwrap(),
        shmbus::channel::<u64>()
            .mpmc()
            .capacity(4)
            .in_process()
            .unwrap(),
    );
    let (mut ta, mut tb) = (a.sender().unwrap(), b.sender().unwrap());
    check(a.receiver().unwrap(), b.receiver().unwrap(), move |c, i| {
        if c == 0 { ta.send(i) } else { tb.send(i) }.unwrap();
    });
}

/// `try_ready` stages the message of the receive it reports ready; dropping the select, the
/// message is still the receiver's next.
#[test]
fn try_ready_stages_and_the_next_try_recv_returns_the_message() {
    let ch = shmbus::channel::<String>().mpmc().in_process().unwrap();
    let (mut tx, mut rx, mut other) = (
        ch.sender().unwrap(),
        ch.receiver().unwrap(),
        ch.receiver().unwrap(),
    );
    tx.send("one".into()).unwrap();
    let mut sel = Select::new();
    let i = sel.recv(&mut rx);
    assert_eq!(sel.try_ready(), Ok(i));
    // Staged in `rx`: another receiver of the MPMC channel cannot take it any more.
    assert!(other.try_recv().unwrap_err().is_empty());
    assert!(!rx.is_empty());
    assert_eq!(rx.try_recv().unwrap(), "one");
    assert!(rx.is_empty());
}

/// CPU time this thread has used, from /proc (`schedstat`: nanoseconds on the CPU).
fn thread_cpu_time() -> Duration {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").expect("read schedstat");
    let ns: u64 = s.split_whitespace().next().unwrap().parse().unwrap();
    Duration::from_nanos(ns)
}

/// A thread blocked in a select for a second, on four channels whose senders live but do not
/// send (SPSC and MPMC), uses almost no CPU: it sleeps on the channels' futex words, waking
/// once per probe interval, instead of spinning.
#[test]
fn a_thread_blocked_in_a_select_uses_almost_no_cpu() {
    let a = spsc().in_process().unwrap();
    let b = spsc().in_process().unwrap();
    let c = mpmc().in_process().unwrap();
    let d = mpmc().in_process().unwrap();
    let _senders = (
        a.sender().unwrap(),
        b.sender().unwrap(),
        c.sender().unwrap(),
        d.sender().unwrap(),
    );
    let (mut ra, mut rb, mut rc, mut rd) = (
        a.receiver().unwrap(),
        b.receiver().unwrap(),
        c.receiver().unwrap(),
        d.receiver().unwrap(),
    );
    let cpu_before = thread_cpu_time();
    let start = Instant::now();
    let mut sel = Select::new();
    sel.recv(&mut ra);
    sel.recv(&mut rb);
    sel.recv(&mut rc);
    sel.recv(&mut rd);
    assert!(sel.select_timeout(Duration::from_secs(1)).is_err());
    let wall = start.elapsed();
    let cpu = thread_cpu_time().saturating_sub(cpu_before);
    assert!(wall >= Duration::from_secs(1));
    assert!(
        cpu < Duration::from_millis(50),
        "a select blocked for {wall:?} used {cpu:?} of CPU"
    );
    eprintln!("blocked in a select for {wall:?}: {cpu:?} of CPU");
}

/// The same for a select on timers only (no doorbell: it sleeps on the clock).
#[test]
fn a_thread_blocked_on_timers_uses_almost_no_cpu() {
    let cpu_before = thread_cpu_time();
    let mut late = shmbus::after(Duration::from_secs(1));
    let mut nothing = shmbus::never::<u8>();
    let start = Instant::now();
    let mut sel = Select::new();
    let i = sel.recv(&mut late);
    sel.recv(&mut nothing);
    let op = sel.select();
    assert_eq!(op.index(), i);
    assert!(op.recv(&mut late).is_ok());
    assert!(start.elapsed() >= Duration::from_secs(1));
    let cpu = thread_cpu_time().saturating_sub(cpu_before);
    assert!(cpu < Duration::from_millis(50), "{cpu:?}");
}

/// For comparison (printed, not asserted): the CPU of a single-channel `recv_timeout` blocked
/// for a second.
#[test]
fn a_thread_blocked_in_recv_timeout_for_comparison() {
    let a = spsc().in_process().unwrap();
    let _tx = a.sender().unwrap();
    let mut rx = a.receiver().unwrap();
    let cpu_before = thread_cpu_time();
    assert!(rx.recv_timeout(Duration::from_secs(1)).is_err());
    let cpu = thread_cpu_time().saturating_sub(cpu_before);
    assert!(cpu < Duration::from_millis(50), "{cpu:?}");
    eprintln!("blocked in recv_timeout for 1 s: {cpu:?} of CPU");
}
