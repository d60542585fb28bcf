//! The typed channel's per-message cost against the raw ring's, in one thread (an in-process
//! SPSC channel, send then receive): where the typed layer's time goes. The message is the
//! harness's `shmbus-channel` struct (a sequence number, a timestamp, a `codec::Bytes`
//! payload). `cargo bench -p shmbus --bench channel_ops`.

use criterion::{black_box, criterion_main, Criterion, Throughput};
use serde::{Deserialize, Serialize};
use shmbus::codec::{Bincode, Bytes, Codec};
use shmbus::ring::{SpscConfig, SpscRing};

/// The harness's message.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
struct Msg {
    word0: u64,
    word1: u64,
    payload: Bytes,
}

fn msg(size: usize) -> Msg {
    Msg {
        word0: 1 << 40,
        word1: 100_000,
        payload: vec![7u8; size.saturating_sub(16)].into(),
    }
}

fn per_size(c: &mut Criterion, size: usize) {
    let mut g = c.benchmark_group(format!("{size}B"));
    g.throughput(Throughput::Elements(1));
    let m = msg(size);
    let len = <Bincode as Codec<Msg>>::encoded_len(&m).unwrap();
    let mut buf = vec![0u8; len + 32];
    g.bench_function("encoded_len", |b| {
        b.iter(|| <Bincode as Codec<Msg>>::encoded_len(black_box(&m)).unwrap());
    });
    g.bench_function("encode", |b| {
        b.iter(|| <Bincode as Codec<Msg>>::encode(black_box(&m), &mut buf).unwrap());
    });
    let n = <Bincode as Codec<Msg>>::encode(&m, &mut buf).unwrap();
    let bytes = buf[..n].to_vec();
    let mut place = msg(size);
    g.bench_function("decode_into", |b| {
        b.iter(|| <Bincode as Codec<Msg>>::decode_into(black_box(&bytes), &mut place).unwrap());
    });

    // The raw ring: push the harness's bytes, pop them into a buffer.
    let ring = SpscRing::in_heap(&SpscConfig::new(1 << 16)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let raw = vec![7u8; size];
    let mut out = vec![0u8; size];
    g.bench_function("ring push+pop", |b| {
        b.iter(|| {
            tx.try_push(black_box(&raw)).unwrap();
            rx.try_pop(&mut out).unwrap()
        });
    });
    g.bench_function("ring reserve_up_to+encode+commit, pop_with", |b| {
        b.iter(|| {
            let mut w = tx.reserve_up_to(size + 24).unwrap();
            let n = <Bincode as Codec<Msg>>::encode(black_box(&m), &mut w).unwrap();
            w.commit_len(n);
            rx.try_pop_with(<[u8]>::len).unwrap()
        });
    });

    let ch = shmbus::channel::<Msg>()
        .max_message(size + 24)
        .capacity(64)
        .notify(false)
        .in_process()
        .unwrap();
    let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    let mut got = msg(size);
    g.bench_function("channel send_ref+recv_into", |b| {
        b.iter(|| {
            tx.try_send_ref(black_box(&m)).unwrap();
            rx.try_recv_into(&mut got).unwrap();
        });
    });
    // Each side alone: 32 sends timed, then 32 receives timed (not timed in the other).
    let sides = |b: &mut criterion::Bencher,
                 send_side: bool,
                 tx: &mut shmbus::Sender<Msg>,
                 rx: &mut shmbus::Receiver<Msg>,
                 got: &mut Msg| {
        b.iter_custom(|iters| {
            let mut spent = std::time::Duration::ZERO;
            for _ in 0..iters.div_ceil(32) {
                let t = std::time::Instant::now();
                for _ in 0..32 {
                    tx.try_send_ref(black_box(&m)).unwrap();
                }
                if send_side {
                    spent += t.elapsed();
                }
                let t = std::time::Instant::now();
                for _ in 0..32 {
                    rx.try_recv_into(got).unwrap();
                }
                if !send_side {
                    spent += t.elapsed();
                }
            }
            spent
        });
    };
    g.bench_function("channel send_ref alone", |b| {
        sides(b, true, &mut tx, &mut rx, &mut got);
    });
    g.bench_function("channel recv_into alone", |b| {
        sides(b, false, &mut tx, &mut rx, &mut got);
    });
    // A receiver spinning for the next message pays one empty poll per turn, and a hand-off
    // waits about half of one on average: against the raw ring's `spsc/empty_poll`.
    g.bench_function("channel try_recv_into empty", |b| {
        b.iter(|| black_box(rx.try_recv_into(&mut got).is_err()));
    });
    g.finish();
}

/// Every benchmark (what `criterion_group!` would generate, documented).
fn channel_ops() {
    let mut c = Criterion::default().configure_from_args();
    for size in [8, 64, 512] {
        per_size(&mut c, size);
    }
}

criterion_main!(channel_ops);
