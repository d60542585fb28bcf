//! In-process micro-benchmarks of the typed channel against the raw ring it is built on (one
//! thread, no cross-core traffic): what the channel adds to a message's send and receive.
//! In a ping-pong every one of these nanoseconds is on the round trip's critical path, twice.
//! `cargo bench -p shmbus-bench --bench channel_ops`.

use criterion::{black_box, criterion_main, BenchmarkId, Criterion, Throughput};
use serde::{Deserialize, Serialize};
use shmbus::codec::Bytes;
use shmbus::ring::WaitStrategy;

/// The harness's message shape: two words and a byte payload (`size - 16` bytes, or none).
#[derive(Serialize, Deserialize, Default, Clone)]
struct Msg {
    word0: u64,
    word1: u64,
    payload: Bytes,
}

const SIZES: [usize; 3] = [8, 64, 1024];

fn message(size: usize) -> Msg {
    Msg {
        word0: 0x0102_0304_0506_0708,
        word1: 0,
        payload: vec![7u8; size.saturating_sub(16)].into(),
    }
}

fn channel(size: usize) -> shmbus::Channel<Msg> {
    shmbus::channel::<Msg>()
        .capacity(1024)
        .max_message(size + 24)
        .notify(false)
        .wait_strategy(WaitStrategy::Spin)
        .in_process()
        .expect("in-process channel")
}

/// `try_send_ref` then `try_recv_into` of one message: the typed path the harness measures.
fn send_recv(c: &mut Criterion) {
    let mut g = c.benchmark_group("channel/send_ref_recv_into");
    for size in SIZES {
        let ch = channel(size);
        let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
        let msg = message(size);
        let mut out = message(size);
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter(|| {
                tx.try_send_ref(black_box(&msg)).unwrap();
                rx.try_recv_into(black_box(&mut out)).unwrap();
            })
        });
    }
    g.finish();
}

/// The raw ring under the same channel, with the bytes the codec would write: the floor the
/// channel's figure is read against.
fn raw_push_pop(c: &mut Criterion) {
    let mut g = c.benchmark_group("channel/raw_push_pop");
    for size in SIZES {
        let ch = channel(size);
        let ring = ch.ring();
        let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        let msg = vec![7u8; size];
        let mut buf = vec![0u8; size];
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter(|| {
                tx.try_push(black_box(&msg)).unwrap();
                black_box(rx.try_pop(&mut buf).unwrap());
            })
        });
    }
    g.finish();
}

/// Every micro-benchmark of this file (what `criterion_group!` would generate, documented).
fn benches() {
    let mut c = Criterion::default().configure_from_args();
    send_recv(&mut c);
    raw_push_pop(&mut c);
}

criterion_main!(benches);
