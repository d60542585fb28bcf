//! The codecs of the typed channel layer, in process: what measuring, encoding and decoding a
//! message costs, per codec. The typed channel pays `encoded_len` + `encode` on send and a copy
//! + `decode` on receive, on top of the ring. `cargo bench -p shmbus-bench --bench codecs`.

use criterion::{black_box, criterion_main, Criterion, Throughput};
use serde::{Deserialize, Serialize};
use shmbus::codec::{Bincode, Codec, Plain, Postcard};

/// A 64-byte market-data tick (the message of `examples/src/bin/channel_vs_raw.rs`).
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable,
)]
#[repr(C)]
struct Tick {
    seq: u64,
    timestamp_ns: u64,
    instrument: u32,
    venue: u16,
    side: u8,
    flags: u8,
    price: f64,
    quantity: u64,
    bid: f64,
    ask: f64,
    order_id: u64,
}

/// A message with heap parts: what a serde codec costs beyond plain fields.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Order {
    id: u64,
    symbol: String,
    legs: Vec<(u32, i64)>,
    note: Option<String>,
}

fn tick() -> Tick {
    Tick {
        seq: 1_234_567,
        timestamp_ns: 1_700_000_000_123_456_789,
        instrument: 4711,
        venue: 3,
        side: 1,
        flags: 0,
        price: 101.25,
        quantity: 300,
        bid: 101.2,
        ask: 101.3,
        order_id: 987_654_321,
    }
}

fn order() -> Order {
    Order {
        id: 42,
        symbol: "EURUSD".into(),
        legs: vec![(1, -5), (2, 7), (3, 11)],
        note: Some("hedge".into()),
    }
}

fn codec<C: Codec<T>, T: Clone>(c: &mut Criterion, group: &str, name: &str, msg: &T) {
    let len = C::encoded_len(msg).unwrap();
    let mut buf = vec![0u8; len];
    C::encode(msg, &mut buf).unwrap();
    let mut g = c.benchmark_group(format!("{group}/{name}"));
    g.throughput(Throughput::Elements(1));
    g.bench_function("encoded_len", |b| {
        b.iter(|| C::encoded_len(black_box(msg)).unwrap())
    });
    g.bench_function("encode", |b| {
        b.iter(|| C::encode(black_box(msg), &mut buf).unwrap())
    });
    let bytes = buf.clone();
    g.bench_function("decode", |b| {
        b.iter(|| C::decode(black_box(&bytes)).unwrap())
    });
    g.finish();
}

/// Every codec micro-benchmark (what `criterion_group!` would generate, documented).
fn codecs() {
    let mut c = Criterion::default().configure_from_args();
    let c = &mut c;
    let t = tick();
    codec::<Bincode, Tick>(c, "tick64", "bincode", &t);
    codec::<Postcard, Tick>(c, "tick64", "postcard", &t);
    codec::<Plain, Tick>(c, "tick64", "plain", &t);
    let o = order();
    codec::<Bincode, Order>(c, "order", "bincode", &o);
    codec::<Postcard, Order>(c, "order", "postcard", &o);
}

criterion_main!(codecs);
