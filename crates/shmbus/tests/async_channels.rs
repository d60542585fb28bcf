//! Asynchronous endpoints (feature `tokio`, PROTOCOL §6.1): async against blocking peers in
//! other processes both ways, many parked receivers in one runtime, cancelled receives that
//! lose nothing, `Disconnected` after a SIGKILL, permits that give their room back, and the
//! CPU that parked receivers use (none to speak of: nothing wakes them but a datagram or the
//! probe timer).

mod common;

use common::{role, CHANNEL};
use futures::{SinkExt, StreamExt};
use shmbus::flavor::{Mpmc, Spsc};
use shmbus::{RecvError, SendError};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);
const COUNT: u64 = 20_000;

fn spsc() -> shmbus::ChannelBuilder<u64, Spsc> {
    shmbus::channel::<u64>().capacity(16)
}

fn mpmc() -> shmbus::ChannelBuilder<u64, Mpmc> {
    shmbus::channel::<u64>().mpmc().capacity(16)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// CPU time this thread used so far (user + system): a current-thread runtime's timers,
/// reactor and tasks all run on the thread that blocks on it, and other tests run on others.
fn cpu_time() -> Duration {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_THREAD).unwrap();
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    tv(usage.user_time()) + tv(usage.system_time())
}

#[test]
fn in_process_async_send_and_recv_with_a_small_ring_stay_in_order() {
    runtime().block_on(async {
        let ch = spsc().in_process().unwrap();
        let mut tx = ch.sender().unwrap().into_async().unwrap();
        let mut rx = ch.receiver().unwrap().into_async().unwrap();
        let consumer = tokio::spawn(async move {
            let mut next = 0;
            while let Some(v) = rx.next().await {
                assert_eq!(v.unwrap(), next);
                next += 1;
            }
            next
        });
        for i in 0..COUNT {
            tx.send(i).await.unwrap();
        }
        drop(tx);
        // The stream ends at disconnection, after the last message.
        assert_eq!(consumer.await.unwrap(), COUNT);
    });
}

#[test]
fn the_sink_sends_everything_and_the_stream_ends_when_senders_are_gone() {
    runtime().block_on(async {
        let ch = mpmc().in_process().unwrap();
        let mut tx = ch.sender().unwrap().into_async().unwrap();
        let rx = ch.receiver().unwrap().into_async().unwrap();
        let consumer = tokio::spawn(rx.collect::<Vec<_>>());
        let mut items = futures::stream::iter((0..1000u64).map(Ok));
        tx.send_all(&mut items).await.unwrap();
        tx.close().await.unwrap();
        drop(tx);
        let got: Vec<u64> = consumer
            .await
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
    });
}

/// A ring built without wake-up notification rings no bells: asynchronous endpoints poll it
/// (every millisecond) and still get everything.
#[test]
fn a_channel_without_notification_is_polled() {
    runtime().block_on(async {
        let ch = spsc().notify(false).in_process().unwrap();
        let mut tx = ch.sender().unwrap().into_async().unwrap();
        let mut rx = ch.receiver().unwrap().into_async().unwrap();
        let consumer = tokio::spawn(async move {
            let mut next = 0;
            while let Ok(v) = rx.recv().await {
                assert_eq!(v, next);
                next += 1;
            }
            next
        });
        for i in 0..500 {
            tx.send(i).await.unwrap();
            if i % 100 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        drop(tx);
        let got = tokio::time::timeout(LIMIT, consumer)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, 500);
    });
}

/// Cancelled receives lose nothing: a `select!` between `recv()` and a timer that is almost
/// always ready drops the pending receive 100 000 times; every message still arrives once,
/// in order.
#[test]
fn cancelling_recv_in_a_select_loop_100_000_times_loses_nothing() {
    runtime().block_on(async {
        let ch = spsc().in_process().unwrap();
        let mut tx = ch.sender().unwrap().into_async().unwrap();
        let mut rx = ch.receiver().unwrap().into_async().unwrap();
        const N: u64 = 2_000;
        let producer = tokio::spawn(async move {
            for i in 0..N {
                tx.send(i).await.unwrap();
                if i % 16 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        });
        let mut next = 0;
        let mut cancelled = 0u64;
        while next < N || cancelled < 100_000 {
            tokio::select! {
                biased;
                () = std::future::ready(()), if cancelled < 100_000 => cancelled += 1,
                got = rx.recv() => {
                    assert_eq!(got.unwrap(), next);
                    next += 1;
                }
            }
            if cancelled % 64 == 0 {
                tokio::task::yield_now().await;
            }
        }
        producer.await.unwrap();
        assert_eq!(next, N);
        assert!(rx.try_recv().unwrap_err().is_disconnected());
    });
}

/// A permit holds room; dropping it (or a pending `reserve`) gives the room back.
#[test]
fn a_permit_holds_room_and_dropping_it_gives_the_room_back() {
    runtime().block_on(async {
        for flavor in ["spsc", "mpmc"] {
            let ch = shmbus::channel::<u64>()
                .mpmc()
                .capacity(2)
                .in_process()
                .unwrap();
            let spsc_ch = shmbus::channel::<u64>().capacity(2).in_process().unwrap();
            macro_rules! check {
                ($ch:expr) => {{
                    let mut tx = $ch.sender().unwrap().into_async().unwrap();
                    let mut rx = $ch.receiver().unwrap();
                    let permit = tx.reserve(8).await.unwrap();
                    drop(permit);
                    let p = tx.reserve(8).await.unwrap();
                    p.send(1).unwrap();
                    tx.send(2).await.unwrap();
                    // Full: a pending reserve, dropped after a while, reserves nothing.
                    let pending = tokio::time::timeout(Duration::from_millis(30), tx.reserve(8));
                    assert!(
                        pending.await.is_err(),
                        "{flavor}: reserved on a full channel"
                    );
                    assert_eq!(rx.try_recv(), Ok(1));
                    let p = tx.reserve(8).await.unwrap();
                    p.send(3).unwrap();
                    assert_eq!(rx.try_recv(), Ok(2));
                    assert_eq!(rx.try_recv(), Ok(3));
                    assert!(rx.try_recv().unwrap_err().is_empty());
                    // A message longer than the permit comes back.
                    let p = tx.reserve(1).await.unwrap();
                    let err = p.send(u64::MAX).unwrap_err();
                    assert_eq!(err.into_inner(), u64::MAX);
                    assert!(rx.try_recv().unwrap_err().is_empty());
                }};
            }
            if flavor == "spsc" {
                check!(spsc_ch);
            } else {
                check!(ch);
            }
        }
    });
}

/// One thousand tasks in one runtime, each parked on its own channel, each woken by its own
/// message (sent from a plain thread, blocking).
#[test]
fn a_thousand_tasks_each_receive_from_their_own_channel() {
    // Each channel holds a few descriptors (segment, lock descriptions, the bell).
    let (_, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    let _ = nix::sys::resource::setrlimit(
        nix::sys::resource::Resource::RLIMIT_NOFILE,
        hard.min(65_536),
        hard,
    );
    const TASKS: u64 = 1000;
    let rt = runtime();
    let channels: Vec<_> = (0..TASKS).map(|_| spsc().in_process().unwrap()).collect();
    let mut senders: Vec<_> = channels.iter().map(|c| c.sender().unwrap()).collect();
    let handles: Vec<_> = rt.block_on(async {
        channels
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut rx = c.receiver().unwrap().into_async().unwrap();
                tokio::spawn(async move {
                    let got = rx.recv().await.unwrap();
                    assert_eq!(got, i as u64);
                    let again = rx.recv().await.unwrap();
                    assert_eq!(again, i as u64 + TASKS);
                })
            })
            .collect()
    });
    let feeder = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        for (i, tx) in senders.iter_mut().enumerate() {
            tx.send(i as u64).unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
        for (i, tx) in senders.iter_mut().enumerate() {
            tx.send(i as u64 + TASKS).unwrap();
        }
        senders
    });
    rt.block_on(async {
        for h in handles {
            tokio::time::timeout(LIMIT, h).await.unwrap().unwrap();
        }
    });
    drop(feeder.join().unwrap());
}

/// 100 receivers parked for three seconds cost their thread less than 0.5 % of a core: they
/// wake only for the liveness probe (once per `ASYNC_PROBE_INTERVAL`, the default).
#[test]
fn a_hundred_parked_receivers_use_almost_no_cpu() {
    let rt = runtime();
    let channels: Vec<_> = (0..100).map(|_| spsc().in_process().unwrap()).collect();
    let senders: Vec<_> = channels.iter().map(|c| c.sender().unwrap()).collect();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for c in &channels {
            let mut rx = c.receiver().unwrap().into_async().unwrap();
            tasks.push(tokio::spawn(async move { rx.recv().await }));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (cpu0, t0) = (cpu_time(), Instant::now());
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (cpu, wall) = (cpu_time().saturating_sub(cpu0), t0.elapsed());
        let share = cpu.as_secs_f64() / wall.as_secs_f64();
        eprintln!(
            "100 parked receivers: {cpu:?} of CPU in {wall:?} ({:.3} % of a core)",
            share * 100.0
        );
        assert!(
            share < 0.005,
            "parked receivers used {:.2} % of a core",
            share * 100.0
        );
        drop(senders);
        for t in tasks {
            assert_eq!(t.await.unwrap(), Err(RecvError::Disconnected));
        }
    });
}

/// An async receiver against a blocking sender in another process, then an async sender
/// against a blocking receiver in another process; both flavors. Small rings, so that both
/// sides wait for each other often.
#[test]
fn async_and_blocking_endpoints_in_two_processes_exchange_everything_both_ways() {
    const TEST: &str =
        "async_and_blocking_endpoints_in_two_processes_exchange_everything_both_ways";
    if let Some(r) = role() {
        let name = std::env::var(CHANNEL).unwrap();
        match r.as_str() {
            "spsc-blocking-sender" => {
                let mut tx = spsc().open_sender(&name).unwrap();
                for i in 0..COUNT {
                    tx.send_timeout(i, LIMIT).unwrap();
                }
            }
            "mpmc-blocking-sender" => {
                let mut tx = mpmc().open_sender(&name).unwrap();
                for i in 0..COUNT {
                    tx.send_timeout(i, LIMIT).unwrap();
                }
            }
            "spsc-blocking-receiver" => {
                let mut rx = spsc().open_receiver(&name).unwrap();
                for i in 0..COUNT {
                    assert_eq!(rx.recv_timeout(LIMIT).unwrap(), i);
                }
            }
            "mpmc-blocking-receiver" => {
                let mut rx = mpmc().open_receiver(&name).unwrap();
                for i in 0..COUNT {
                    assert_eq!(rx.recv_timeout(LIMIT).unwrap(), i);
                }
            }
            other => panic!("unknown role {other}"),
        }
        return;
    }
    let rt = runtime();
    rt.block_on(async {
        // Async receivers.
        {
            let name = common::unique_name("async-rx-s");
            let mut rx = spsc().create_receiver(&name).unwrap().into_async().unwrap();
            let mut child = common::spawn(TEST, "spsc-blocking-sender", &name);
            for i in 0..COUNT {
                let got = tokio::time::timeout(LIMIT, rx.recv()).await.unwrap();
                assert_eq!(got.unwrap(), i);
            }
            assert!(child.wait_within(LIMIT).success());
            assert_eq!(rx.recv().await, Err(RecvError::Disconnected));
        }
        {
            let name = common::unique_name("async-rx-m");
            let mut rx = mpmc().create_receiver(&name).unwrap().into_async().unwrap();
            let mut child = common::spawn(TEST, "mpmc-blocking-sender", &name);
            for i in 0..COUNT {
                let got = tokio::time::timeout(LIMIT, rx.recv()).await.unwrap();
                assert_eq!(got.unwrap(), i);
            }
            assert!(child.wait_within(LIMIT).success());
            assert_eq!(rx.recv().await, Err(RecvError::Disconnected));
        }
        // Async senders.
        {
            let name = common::unique_name("async-tx-s");
            let mut tx = spsc().create_sender(&name).unwrap().into_async().unwrap();
            let mut child = common::spawn(TEST, "spsc-blocking-receiver", &name);
            for i in 0..COUNT {
                tokio::time::timeout(LIMIT, tx.send(i))
                    .await
                    .unwrap()
                    .unwrap();
            }
            assert!(child.wait_within(LIMIT).success());
            // The receiver is gone: a send reports it (after the probe finds it).
            let err = tokio::time::timeout(LIMIT, async {
                loop {
                    match tx.send(0).await {
                        Err(e) => return e,
                        Ok(()) => tokio::time::sleep(Duration::from_millis(1)).await,
                    }
                }
            })
            .await
            .unwrap();
            assert!(matches!(err, SendError::Disconnected(0)), "{err:?}");
        }
        {
            let name = common::unique_name("async-tx-m");
            let mut tx = mpmc().create_sender(&name).unwrap().into_async().unwrap();
            let mut child = common::spawn(TEST, "mpmc-blocking-receiver", &name);
            for i in 0..COUNT {
                tokio::time::timeout(LIMIT, tx.send(i))
                    .await
                    .unwrap()
                    .unwrap();
            }
            assert!(child.wait_within(LIMIT).success());
        }
    });
}

/// A parked async receiver whose only sender, in another process, is killed with SIGKILL
/// reports `Disconnected` within about a probe interval (100 ms here): nothing rings its bell,
/// but its probe timer does.
#[test]
fn a_parked_async_receiver_sees_a_sigkilled_sender_within_a_probe_interval() {
    const TEST: &str = "a_parked_async_receiver_sees_a_sigkilled_sender_within_a_probe_interval";
    if role().is_some() {
        let name = std::env::var(CHANNEL).unwrap();
        let mut tx = spsc().open_sender(&name).unwrap();
        tx.send(7).unwrap();
        std::thread::sleep(LIMIT);
        return;
    }
    let rt = runtime();
    rt.block_on(async {
        let name = common::unique_name("async-kill");
        let interval = Duration::from_millis(100);
        let mut rx = spsc()
            .probe_interval(interval)
            .create_receiver(&name)
            .unwrap()
            .into_async()
            .unwrap();
        let mut child = common::spawn(TEST, "sender", &name);
        assert_eq!(tokio::time::timeout(LIMIT, rx.recv()).await.unwrap(), Ok(7));
        let pending = tokio::spawn(async move {
            let got = rx.recv().await;
            (got, Instant::now())
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        child.kill().unwrap();
        let killed = Instant::now();
        child.wait().unwrap();
        let (got, at) = tokio::time::timeout(LIMIT, pending).await.unwrap().unwrap();
        assert_eq!(got, Err(RecvError::Disconnected));
        let took = at.duration_since(killed);
        eprintln!("Disconnected {took:?} after the SIGKILL (probe interval {interval:?})");
        // One interval, plus scheduling slack on a loaded machine.
        assert!(
            took < interval * 2 + Duration::from_millis(400),
            "took {took:?}"
        );
    });
}
