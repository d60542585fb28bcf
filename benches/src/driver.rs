//! The loops every transport runs through: one function per phase and side, written once
//! against [`Endpoint`], so no transport gets a loop of its own.

use crate::clock::now_ns;
use crate::fanout::FanPublisher;
use crate::msg::{new_message, put_word0, put_word1, word0, word1, Buf, SeqChecker, STOP};
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

/// Messages per call of the batched streaming phase.
pub const BATCH: usize = 32;

/// What the round-trip phase measured: every round trip timed on its own (one clock pair
/// each, so each sample carries a clock read), and blocks of round trips timed together (one
/// clock pair per block; each sample is the block's time divided by its length).
pub struct RttTimes {
    /// One sample per round trip, ns.
    pub each: Histogram<u64>,
    /// One sample per block: the mean round trip within the block, ns (rounded).
    pub blocks: Histogram<u64>,
}

/// Round trip, parent side: ping, wait for the echo, for `warmup` untimed; then for
/// `duration / 2` every round trip timed, then for `duration / 2` blocks of `block` round
/// trips timed; ends the peer's echo loop with a STOP message.
pub fn rtt_client(
    ep: &mut dyn Endpoint,
    size: usize,
    warmup: Duration,
    duration: Duration,
    block: usize,
) -> Result<RttTimes> {
    let mut msg = Buf::message(size);
    let mut buf = Buf::zeroed(size);
    let (mut each, mut blocks) = (new_histogram(), new_histogram());
    let mut seq = 0u64;
    let mut one = |seq: u64, msg: &mut [u8], buf: &mut [u8]| -> Result<()> {
        put_word0(msg, seq);
        ep.send(msg)?;
        ep.recv(buf)?;
        let echoed = word0(buf);
        ensure!(
            echoed == seq,
            "round trip: sent #{seq}, echo carries #{echoed}"
        );
        Ok(())
    };
    let warm_end = now_ns() + ns(warmup);
    loop {
        one(seq, &mut msg, &mut buf)?;
        seq += 1;
        if now_ns() >= warm_end {
            break;
        }
    }
    // The later timestamp also serves as "now" for the loop's end check, so this loop reads
    // the clock twice per round trip and no more.
    let end = now_ns() + ns(duration / 2);
    loop {
        let t0 = now_ns();
        one(seq, &mut msg, &mut buf)?;
        let t1 = now_ns();
        each.saturating_record(t1 - t0);
        seq += 1;
        if t1 >= end {
            break;
        }
    }
    let end = now_ns() + ns(duration / 2);
    let per = block as u64;
    loop {
        let t0 = now_ns();
        for _ in 0..block {
            one(seq, &mut msg, &mut buf)?;
            seq += 1;
        }
        let t1 = now_ns();
        blocks.saturating_record((t1 - t0 + per / 2) / per);
        if t1 >= end {
            break;
        }
    }
    one(STOP, &mut msg, &mut buf)?;
    Ok(RttTimes { each, blocks })
}

/// Round trip, peer side: echo every message, STOP included; returns how many were echoed.
pub fn rtt_echo(ep: &mut dyn Endpoint, size: usize) -> Result<u64> {
    let mut buf = Buf::zeroed(size);
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
    let mut msg = Buf::message(size);
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

/// Batched streaming, sender side: as [`stream_send`], [`BATCH`] messages per
/// [`Endpoint::send_batch`].
pub fn stream_send_batch(ep: &mut dyn Endpoint, size: usize, duration: Duration) -> Result<u64> {
    let mut msgs: Vec<Vec<u8>> = (0..BATCH).map(|_| new_message(size)).collect();
    let end = now_ns() + ns(duration);
    let mut seq = 0u64;
    loop {
        for _ in 0..CLOCK_EVERY / BATCH as u64 {
            for m in &mut msgs {
                put_word0(m, seq);
                seq += 1;
            }
            ep.send_batch(&msgs)?;
        }
        if now_ns() >= end {
            break;
        }
    }
    let mut stop = Buf::message(size);
    put_word0(&mut stop, STOP);
    ep.send(&stop)?;
    Ok(seq)
}

/// Batched streaming, receiver side: as [`stream_recv`], through [`Endpoint::recv_batch`].
pub fn stream_recv_batch(ep: &mut dyn Endpoint, size: usize) -> Result<u64> {
    let mut buf = Buf::zeroed(size);
    let mut seq = SeqChecker::new();
    let mut stopped = false;
    while !stopped {
        ep.recv_batch(&mut buf, &mut |m| {
            ensure!(!stopped, "a message after STOP");
            ensure!(m.len() == size, "{}-byte message, expected {size}", m.len());
            let w = word0(m);
            if w == STOP {
                stopped = true;
                Ok(())
            } else {
                seq.check(w)?;
                Ok(())
            }
        })?;
    }
    Ok(seq.count())
}

/// Streaming, receiver side: takes messages until STOP, failing on any gap, duplicate or
/// reordering. Returns how many arrived.
pub fn stream_recv(ep: &mut dyn Endpoint, size: usize) -> Result<u64> {
    let mut buf = Buf::zeroed(size);
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
    let mut buf = Buf::zeroed(size);
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
    let mut msg = Buf::message(size);
    let mut buf = Buf::zeroed(size);
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
    let mut msg = Buf::message(size);
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
    let mut msg = Buf::message(size);
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
    let mut buf = Buf::zeroed(size);
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
    let mut buf = Buf::zeroed(size);
    ep.recv(&mut buf)?;
    ensure!(word0(&buf) == STOP, "idle: expected the wake-up message");
    Ok(())
}

/// Idle, parent side: the wake-up message.
pub fn idle_wake(ep: &mut dyn Endpoint, size: usize) -> Result<()> {
    let mut msg = Buf::message(size);
    put_word0(&mut msg, STOP);
    ep.send(&msg)
}
