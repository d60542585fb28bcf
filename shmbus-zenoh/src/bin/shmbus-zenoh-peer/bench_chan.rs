//! The channel rows of `shmbus-zenoh-peer bench`: a local shmbus SPSC channel (two threads,
//! one shm directory) and the same through two bridges (channel -> bridge A -> Zenoh -> bridge
//! B -> channel, with credit flow control, and back for the pong), measured as the topic rows
//! are (`bench.rs`).

use super::bench::{free_port, payload, row, seq_of, BenchArgs, Res, Row};
use shmbus::{Receiver, RecvTimeoutError, Sender};
use shmbus_zenoh::{Bridge, ChannelExportRule, ChannelImportRule, Config};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn sender(dir: &Path, name: &str, size: usize) -> Res<Sender<Vec<u8>>> {
    Ok(shmbus::channel::<Vec<u8>>()
        .shm_dir(dir)
        .capacity(1024)
        .max_message(size + 16)
        .create_sender(name)?)
}

/// Opens `name`'s receiver, waiting up to 30 s for the channel (a bridge creates it).
fn receiver(dir: &Path, name: &str) -> Res<Receiver<Vec<u8>>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match shmbus::channel::<Vec<u8>>()
            .shm_dir(dir)
            .open_receiver(name)
        {
            Ok(r) => return Ok(r),
            Err(e) if Instant::now() >= deadline => return Err(e.into()),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Round trips and a stream over channels: `ping` (sent here) is echoed into `pong`.
fn measure(
    dirs: (&Path, &Path),
    names: (&str, &str, &str),
    size: usize,
    a: &BenchArgs,
) -> Res<(Vec<Duration>, f64)> {
    let (dir_a, dir_b) = dirs;
    let (ping_n, pong_n, tp_n) = names;
    let mut ping = sender(dir_a, ping_n, size)?;
    let (db, pi, po) = (PathBuf::from(dir_b), ping_n.to_string(), pong_n.to_string());
    let stop = Arc::new(AtomicBool::new(false));
    let halt = stop.clone();
    // Echoes until told to stop: a slow round trip must not end it.
    let echo = std::thread::spawn(move || -> Res<()> {
        let mut rx = receiver(&db, &pi)?;
        let mut tx = sender(&db, &po, size)?;
        while !halt.load(Ordering::Relaxed) {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(m) => tx.send(m)?,
                Err(RecvTimeoutError::Timeout) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    });
    let mut pong = receiver(dir_a, pong_n)?;
    let mut seq = 0;
    ping.send(payload(seq, size))?;
    pong.recv_timeout(Duration::from_secs(30))?;
    let mut rtts = Vec::with_capacity(a.round_trips);
    for _ in 0..a.round_trips {
        seq += 1;
        let t = Instant::now();
        ping.send(payload(seq, size))?;
        let m = pong.recv_timeout(Duration::from_secs(10))?;
        if seq_of(&m) != seq {
            return Err(format!("pong {} for ping {seq}", seq_of(&m)).into());
        }
        rtts.push(t.elapsed());
    }
    drop(ping);
    stop.store(true, Ordering::Relaxed);
    let _ = echo.join();
    let mut tp = sender(dir_a, tp_n, size)?;
    let (db, name, n) = (PathBuf::from(dir_b), tp_n.to_string(), a.stream);
    let counter = std::thread::spawn(move || -> Result<Instant, String> {
        let mut rx = receiver(&db, &name).map_err(|e| e.to_string())?;
        for got in 0..n {
            rx.recv_timeout(Duration::from_secs(10))
                .map_err(|e| format!("stream stopped at {got}: {e}"))?;
        }
        Ok(Instant::now())
    });
    let msg = payload(0, size);
    let t = Instant::now();
    for _ in 0..n {
        tp.send(msg.clone())?;
    }
    let end = counter.join().map_err(|_| "stream thread panicked")??;
    Ok((rtts, n as f64 / (end - t).as_secs_f64()))
}

/// A local SPSC channel.
pub fn local(dir: &Path, size: usize, a: &BenchArgs) -> Res<Row> {
    let names = (
        format!("/bench-lc-ping{size}"),
        format!("/bench-lc-pong{size}"),
        format!("/bench-lc-tp{size}"),
    );
    let (rtts, rate) = measure((dir, dir), (&names.0, &names.1, &names.2), size, a)?;
    Ok(row("shmbus channel (local)", size, rtts, rate))
}

fn config(
    dir: &Path,
    listen: Option<u16>,
    connect: Option<u16>,
    ex: &str,
    im: &[String],
) -> Config {
    let mut c = Config {
        shm_dir: Some(dir.into()),
        status_dir: Some(dir.join("status")),
        scan_interval_ms: 50,
        ..Config::default()
    };
    c.zenoh.listen = listen
        .map(|p| format!("tcp/127.0.0.1:{p}"))
        .into_iter()
        .collect();
    c.zenoh.connect = connect
        .map(|p| format!("tcp/127.0.0.1:{p}"))
        .into_iter()
        .collect();
    c.export_channel.push(ChannelExportRule {
        channels: vec![ex.to_string()],
        deny: vec![],
    });
    let mut rule = ChannelImportRule::new(im.to_vec());
    rule.window = 1024;
    c.import_channel.push(rule);
    c
}

/// SPSC channels through two bridges.
pub fn bridged(dir_a: &Path, dir_b: &Path, size: usize, a: &BenchArgs) -> Res<Row> {
    let (ping, pong, tp) = (
        format!("bench-bc-ping{size}"),
        format!("bench-bc-pong{size}"),
        format!("bench-bc-tp{size}"),
    );
    let port = free_port()?;
    let ba = Bridge::start(config(
        dir_a,
        Some(port),
        None,
        "*",
        std::slice::from_ref(&pong),
    ))?;
    let bb = Bridge::start(config(
        dir_b,
        None,
        Some(port),
        &pong,
        &[ping.clone(), tp.clone()],
    ))?;
    // Bridge A exports every channel of its directory but the pong it imports (it skips
    // what it imports); bridge B exports the pong only.
    let names = (format!("/{ping}"), format!("/{pong}"), format!("/{tp}"));
    let r = measure((dir_a, dir_b), (&names.0, &names.1, &names.2), size, a);
    ba.shutdown();
    bb.shutdown();
    let (rtts, rate) = r?;
    Ok(row("bridge channel (credit)", size, rtts, rate))
}
