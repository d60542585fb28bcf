//! The loops every transport runs through: one function per phase and side, written once
//! against [`Endpoint`], so no transport gets a loop of its own.

use crate::clock::now_ns;
use crate::fanout::FanPublisher;
use crate::msg::{new_message, put_word0, put_word1, word0, word1, SeqChecker, STOP};
use crate::stats::new_histogram;
use crate::transport::Endpoint;
use anyhow::{ensure, Result};
use hdrhistogram::Histogram;
use std::time::Duration;

/// How many messages the streaming sender sends between two looks at the clock.
const CLOCK_EVERY: u64 = 64;

fn ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

/// Round trip, parent side: ping, wait for the echo, record, for `warmup` untimed then
/// `duration` timed; ends the peer's echo loop with a STOP message.
pub fn rtt_client(
    ep: &mut dyn Endpoint,
    size: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<Histogram<u64>> {
    let mut msg = new_message(size);
    let mut buf = vec![0u8; size];
    let mut hist = new_histogram();
    let mut seq = 0u64;
    // Returns the two timestamps around one round trip; the later one also serves as "now"
    // for the loop's end check, so the loop reads the clock twice per message and no more.
    let mut one = |seq: u64, msg: &mut [u8], buf: &mut [u8]| -> Result<(u64, u64)> {
        put_word0(msg, seq);
        let t0 = now_ns();
        ep.send(msg)?;
        ep.recv(buf)?;
        let t1 = now_ns();
        let echoed = word0(buf);
        ensure!(
            echoed == seq,
            "round trip: sent #{seq}, echo carries #{echoed}"
        );
        Ok((t0, t1))
    };
    let warm_end = now_ns() + ns(warmup);
    loop {
        let (_, t1) = one(seq, &mut msg, &mut buf)?;
        seq += 1;
        if t1 >= warm_end {
            break;
        }
    }
    let end = now_ns() + ns(duration);
    loop {
        let (t0, t1) = one(seq, &mut msg, &mut buf)?;
        hist.saturating_record(t1 - t0);
        seq += 1;
        if t1 >= end {
            break;
        }
    }
    one(STOP, &mut msg, &mut buf)?;
    Ok(hist)
}

/// Round trip, peer side: echo every message, STOP included; returns how many were echoed.
pub fn rtt_echo(ep: &mut dyn Endpoint, size: usize) -> Result<u64> {
    let mut buf = vec![0u8; size];
    let mut n = 0;
    loop {
        ep.recv(&mut buf)?;
        ep.send(&buf)?;
        if word0(&buf) == STOP {
            return Ok(n);
        }
        n += 1;
    }
}

/// Streaming, sender side: sequence-numbered messages as fast as the transport takes them for
/// `duration`, then STOP. Returns how many were sent (STOP not counted).
pub fn stream_send(ep: &mut dyn Endpoint, size: usize, duration: Duration) -> Result<u64> {
    let mut msg = new_message(size);
    let end = now_ns() + ns(duration);
    let mut seq = 0u64;
    loop {
        for _ in 0..CLOCK_EVERY {
            put_word0(&mut msg, seq);
            ep.send(&msg)?;
            seq += 1;
        }
        if now_ns() >= end {
            break;
        }
    }
    put_word0(&mut msg, STOP);
    ep.send(&msg)?;
    Ok(seq)
}

/// Streaming, receiver side: takes messages until STOP, failing on any gap, duplicate or
/// reordering. Returns how many arrived.
pub fn stream_recv(ep: &mut dyn Endpoint, size: usize) -> Result<u64> {
    let mut buf = vec![0u8; size];
    let mut seq = SeqChecker::new();
    loop {
        ep.recv(&mut buf)?;
        let w = word0(&buf);
        if w == STOP {
            return Ok(seq.count());
        }
        seq.check(w)?;
    }
}

/// Streaming, receiver side, for a subscriber that may miss messages (an untethered broadcast
/// subscriber that fell a lap behind): sequence numbers must rise, gaps are counted. Returns
/// how many arrived and how many were missed.
pub fn stream_recv_lossy(ep: &mut dyn Endpoint, size: usize) -> Result<(u64, u64)> {
    let mut buf = vec![0u8; size];
    let (mut count, mut missed, mut next) = (0u64, 0u64, 0u64);
    loop {
        ep.recv(&mut buf)?;
        let w = word0(&buf);
        if w == STOP {
            return Ok((count, missed));
        }
        ensure!(
            w >= next,
            "message sequence broken: expected {next} or later, got {w} (reordered or duplicated)"
        );
        missed += w - next;
        next = w + 1;
        count += 1;
    }
}

/// Fan-out round trip, publisher side: publish one message, wait for every subscriber's echo,
/// record; `warmup` untimed, then `duration` timed. Then, for `duration / 2`, the same
/// exchange with only the `publish` call timed (the publisher's cost per message, replies
/// excluded). Ends with STOP. Returns (round trips, publish calls).
pub fn fan_rtt(
    p: &mut dyn FanPublisher,
    n: usize,
    size: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<(Histogram<u64>, Histogram<u64>)> {
    let mut msg = new_message(size);
    let mut buf = vec![0u8; size];
    let (mut rtt, mut publish) = (new_histogram(), new_histogram());
    let mut seq = 0u64;
    let replies = |p: &mut dyn FanPublisher, seq: u64, buf: &mut [u8]| -> Result<()> {
        for i in 0..n {
            p.reply(i, buf)?;
            let echoed = word0(buf);
            ensure!(
                echoed == seq,
                "fan-out round trip: published #{seq}, subscriber {i} echoed #{echoed}"
            );
        }
        Ok(())
    };
    let warm_end = now_ns() + ns(warmup);
    loop {
        put_word0(&mut msg, seq);
        p.publish(&msg)?;
        replies(p, seq, &mut buf)?;
        seq += 1;
        if now_ns() >= warm_end {
            break;
        }
    }
    let end = now_ns() + ns(duration);
    loop {
        put_word0(&mut msg, seq);
        let t0 = now_ns();
        p.publish(&msg)?;
        replies(p, seq, &mut buf)?;
        let t1 = now_ns();
        rtt.saturating_record(t1 - t0);
        seq += 1;
        if t1 >= end {
            break;
        }
    }
    let end = now_ns() + ns(duration / 2);
    loop {
        put_word0(&mut msg, seq);
        let t0 = now_ns();
        p.publish(&msg)?;
        let t1 = now_ns();
        publish.saturating_record(t1 - t0);
        replies(p, seq, &mut buf)?;
        seq += 1;
        if t1 >= end {
            break;
        }
    }
    put_word0(&mut msg, STOP);
    p.publish(&msg)?;
    replies(p, STOP, &mut buf)?;
    Ok((rtt, publish))
}

/// Fan-out streaming, publisher side: as [`stream_send`] through `publish`.
pub fn fan_stream(p: &mut dyn FanPublisher, size: usize, duration: Duration) -> Result<u64> {
    let mut msg = new_message(size);
    let end = now_ns() + ns(duration);
    let mut seq = 0u64;
    loop {
        for _ in 0..CLOCK_EVERY {
            put_word0(&mut msg, seq);
            p.publish(&msg)?;
            seq += 1;
        }
        if now_ns() >= end {
            break;
        }
    }
    put_word0(&mut msg, STOP);
    p.publish(&msg)?;
    Ok(seq)
}

/// One-way at a fixed offered rate, sender side: message `i` is due at `start + i / rate` and
/// carries that *intended* time, so a sender held up by a slow transport does not hide the
/// delay (coordinated-omission correction: the receiver measures from when the message should
/// have left). Returns how many were sent.
pub fn rate_send(ep: &mut dyn Endpoint, size: usize, rate: u64, duration: Duration) -> Result<u64> {
    let mut msg = new_message(size);
    let period = 1e9 / rate as f64;
    let start = now_ns();
    let end = start + ns(duration);
    let mut i = 0u64;
    loop {
        let due = start + (i as f64 * period) as u64;
        if due >= end {
            break;
        }
        while now_ns() < due {
            std::hint::spin_loop();
        }
        put_word0(&mut msg, due);
        put_word1(&mut msg, i);
        ep.send(&msg)?;
        i += 1;
    }
    put_word0(&mut msg, STOP);
    ep.send(&msg)?;
    Ok(i)
}

/// One-way at a fixed rate, receiver side: latency from intended send time to arrival.
pub fn rate_recv(ep: &mut dyn Endpoint, size: usize) -> Result<Histogram<u64>> {
    let mut buf = vec![0u8; size];
    let mut hist = new_histogram();
    let mut seq = SeqChecker::new();
    let mut last_due = 0;
    loop {
        ep.recv(&mut buf)?;
        let now = now_ns();
        let due = word0(&buf);
        if due == STOP {
            return Ok(hist);
        }
        match word1(&buf) {
            Some(s) => seq.check(s)?,
            None => ensure!(
                due >= last_due,
                "one-way: message stamped {due} after one stamped {last_due}: reordered"
            ),
        }
        last_due = due;
        hist.saturating_record(now.saturating_sub(due));
    }
}

/// Idle, receiver side: waits for one message that the parent sends only after a while.
pub fn idle_recv(ep: &mut dyn Endpoint, size: usize) -> Result<()> {
    let mut buf = vec![0u8; size];
    ep.recv(&mut buf)?;
    ensure!(word0(&buf) == STOP, "idle: expected the wake-up message");
    Ok(())
}

/// Idle, parent side: the wake-up message.
pub fn idle_wake(ep: &mut dyn Endpoint, size: usize) -> Result<()> {
    let mut msg = new_message(size);
    put_word0(&mut msg, STOP);
    ep.send(&msg)
}
