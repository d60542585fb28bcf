//! Instructions per message, counted by Valgrind's Callgrind through `gungraun`: the per-message
//! paths of the raw rings and of the typed channel, in one thread (DECISIONS D95).
//!
//! A count is the same from run to run and from machine to machine of one architecture, where
//! a time is not: on the 2-vCPU VMs this project is measured on, the two cores' placement moves
//! the harness's round trip by up to 4x and a build's code layout moves streaming by up to 20%,
//! so a change worth 5% in time cannot be shown there. What a message costs in instructions is
//! what the fast placement's round trip pays beyond the cache-line transfers: an in-process
//! ping-pong of the raw ring took ~150 ns where a minimal header-committed ring in plain Rust
//! took ~110 ns and two lines ~95 ns, with ~240 instructions per push and pop against ~25
//! (D95). A count is not a time: a change that cuts instructions and adds a line transfer is
//! slower. So counts show where the instructions go and that a trim cut them; the harness
//! (`shmbus-bench`) shows what reaches the wire, A/B.
//!
//! Each benchmark runs [`OPS`] operations on endpoints a setup function made and warmed (not
//! counted); the report's `Instructions` divided by [`OPS`] is the figure per message.
//!
//! Small messages only: from 768 bytes the ring copies by `rep movsb` (D84), which Callgrind
//! counts an iteration at a time, and glibc's `memcpy` takes paths that depend on where the
//! allocator put the user's buffer, so counts of large copies say little.
//!
//! Needs Valgrind and the runner of the same version as the library:
//!
//! ```text
//! apt-get install valgrind
//! cargo install gungraun-runner --version 0.20.0 --locked
//! cargo bench -p shmbus-bench --bench instructions
//! ```

// gungraun's macros generate a module per benchmark, which cannot carry docs.
#![allow(missing_docs)]

use gungraun::{library_benchmark, library_benchmark_group, main};
use serde::{Deserialize, Serialize};
use shmbus::codec::Bytes;
use shmbus::ring::{Consumer, Kind, MpmcConfig, MpmcRing, Producer, Ring, SpscConfig, SpscRing};
use shmbus::{Receiver, Sender};
use std::hint::black_box;

/// Operations per benchmark: counts are per [`OPS`] messages.
const OPS: u64 = 1000;

/// A ring's endpoints, the message and the receive buffer, warmed.
struct Raw<K: Kind> {
    tx: Producer<K>,
    rx: Consumer<K>,
    msg: Vec<u8>,
    buf: Vec<u8>,
    _ring: Ring<K>,
}

type Spsc = Raw<shmbus::ring::Spsc>;
type Mpmc = Raw<shmbus::ring::Mpmc>;

/// `ring`'s endpoints and `size`-byte buffers, a first message pushed and popped.
fn warmed<K: Kind>(ring: Ring<K>, size: usize) -> Raw<K> {
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let (msg, mut buf) = (vec![7u8; size], vec![0u8; size]);
    tx.try_push(&msg).unwrap();
    rx.try_pop(&mut buf).unwrap();
    Raw {
        tx,
        rx,
        msg,
        buf,
        _ring: ring,
    }
}

/// A 64 KiB SPSC ring (the harness's size) without wake-up notification, as the harness's
/// spinning transports.
fn spsc(size: usize) -> Spsc {
    let config = SpscConfig::new(1 << 16).notify(false);
    warmed(SpscRing::in_heap(&config).expect("heap ring"), size)
}

/// An MPMC ring of 1024 slots of `size` bytes, one producer and one consumer (sole).
fn mpmc(size: usize) -> Mpmc {
    let config = MpmcConfig::new(1024, size as u64).notify(false);
    warmed(MpmcRing::in_heap(&config).expect("heap ring"), size)
}

/// `try_push` then `try_pop` of one message, [`OPS`] times.
// Inlined into each benchmark, so that the count has no call of its own.
#[inline(always)]
fn push_pop<K: Kind>(mut s: Raw<K>) -> Raw<K> {
    for i in 0..OPS {
        s.msg[0] = i as u8;
        s.tx.try_push(black_box(&s.msg)).unwrap();
        black_box(s.rx.try_pop(black_box(&mut s.buf)).unwrap());
    }
    s
}

// `try_push` then `try_pop` of one message, [`OPS`] times.
#[library_benchmark]
#[bench::b8(setup = spsc, args = (8))]
#[bench::b64(setup = spsc, args = (64))]
fn spsc_push_pop(s: Spsc) -> Spsc {
    push_pop(s)
}

// `try_pop` on the empty ring, [`OPS`] times: one poll of a spinning consumer.
#[library_benchmark]
#[bench::b8(setup = spsc, args = (8))]
fn spsc_empty_poll(mut s: Spsc) -> Spsc {
    for _ in 0..OPS {
        black_box(s.rx.try_pop(black_box(&mut s.buf)).is_err());
    }
    s
}

// The zero-copy pair: `reserve`, write, `commit`, then `try_pop_with` reading in place.
#[library_benchmark]
#[bench::b8(setup = spsc, args = (8))]
#[bench::b64(setup = spsc, args = (64))]
#[bench::b1k(setup = spsc, args = (1024))]
fn spsc_reserve_peek(mut s: Spsc) -> Spsc {
    let len = s.msg.len();
    for i in 0..OPS {
        let mut w = s.tx.reserve(len).unwrap();
        w[0] = i as u8;
        w.commit();
        black_box(s.rx.try_pop_with(|m| m[0]).unwrap());
    }
    s
}

// `try_push` then `try_pop` of one message through the MPMC ring, [`OPS`] times.
#[library_benchmark]
#[bench::b8(setup = mpmc, args = (8))]
#[bench::b64(setup = mpmc, args = (64))]
fn mpmc_push_pop(s: Mpmc) -> Mpmc {
    push_pop(s)
}

/// The harness's `shmbus-channel` message: a sequence number, a second word and the rest of
/// the message as bytes.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
struct Msg {
    word0: u64,
    word1: u64,
    payload: Bytes,
}

/// A typed SPSC channel's ends, the message sent and the one received into, warmed.
struct Channel {
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
    msg: Msg,
    got: Msg,
    _ch: shmbus::Channel<Msg>,
}

/// The channel as the harness builds it for a `size`-byte message (no notification), a first
/// message sent and received.
fn channel(size: usize) -> Channel {
    let ch = shmbus::channel::<Msg>()
        .capacity(1000)
        .max_message(size + 24)
        .notify(false)
        .in_process()
        .expect("in-process channel");
    let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    let msg = Msg {
        word0: 100_000,
        word1: 0,
        payload: vec![7u8; size.saturating_sub(16)].into(),
    };
    let mut got = Msg::default();
    tx.try_send_ref(&msg).unwrap();
    rx.try_recv_into(&mut got).unwrap();
    Channel {
        tx,
        rx,
        msg,
        got,
        _ch: ch,
    }
}

// `try_send_ref` then `try_recv_into`, [`OPS`] times: the typed layer's per-message path.
#[library_benchmark]
#[bench::b8(setup = channel, args = (8))]
#[bench::b64(setup = channel, args = (64))]
fn channel_send_recv(mut c: Channel) -> Channel {
    for i in 0..OPS {
        c.msg.word0 = 100_000 + i;
        c.tx.try_send_ref(black_box(&c.msg)).unwrap();
        c.rx.try_recv_into(black_box(&mut c.got)).unwrap();
    }
    c
}

// `try_recv_into` on the empty channel, [`OPS`] times: a spinning receiver's poll.
#[library_benchmark]
#[bench::b8(setup = channel, args = (8))]
fn channel_empty_poll(mut c: Channel) -> Channel {
    for _ in 0..OPS {
        black_box(c.rx.try_recv_into(black_box(&mut c.got)).is_err());
    }
    c
}

library_benchmark_group!(
    name = per_message,
    benchmarks = [
        spsc_push_pop,
        spsc_empty_poll,
        spsc_reserve_peek,
        mpmc_push_pop,
        channel_send_recv,
        channel_empty_poll
    ]
);

main!(library_benchmark_groups = per_message);
