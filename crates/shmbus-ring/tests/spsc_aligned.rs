//! Aligned SPSC rings (layout 1.5, `RING_FLAG_ALIGNED`): large payloads start on a cache
//! line, after a skip record that is committed with the record it precedes; skip records are
//! validated like every other header, and refused on rings that do not allow them.
#![cfg(not(loom))]

use shmbus_ring::frame::{encode, KIND_DATA, KIND_SKIP};
use shmbus_ring::layout::{DATA_OFFSET, RING_FLAG_ALIGNED};
use shmbus_ring::{
    BroadcastConfig, BroadcastRing, Error, PopError, Segment, SegmentOptions, SpscConfig, SpscRing,
};
use shmbus_testkit::hostile::raw_view;
use shmbus_testkit::unique_name;
use std::sync::atomic::Ordering;

fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
}

/// Lengths around the 256-byte threshold and the 8-byte rounding, so records start at every
/// offset within a line and wrap with padding.
const LENS: [usize; 9] = [5, 300, 17, 1000, 256, 255, 8, 513, 64];

#[test]
fn large_payloads_start_on_cache_lines_in_every_lap_and_arrive_whole() {
    let ring = SpscRing::in_heap(&SpscConfig::new(4096)).unwrap();
    assert!(
        ring.header().ring_flags & RING_FLAG_ALIGNED != 0,
        "aligned by default"
    );
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let mut seen_unaligned_small = false;
    for i in 0..2000 {
        let len = LENS[i % LENS.len()];
        let data = payload(i, len);
        tx.try_push(&data).unwrap();
        let msg = rx.read().unwrap().expect("committed");
        assert_eq!(&*msg, &data[..], "message {i}");
        let line = msg.as_ptr() as usize % 64;
        if len >= 256 {
            assert_eq!(
                line, 0,
                "message {i} of {len} bytes starts {line} bytes into a line"
            );
        } else if line != 0 {
            seen_unaligned_small = true;
        }
    }
    assert!(
        seen_unaligned_small,
        "small messages are packed, not aligned"
    );
    assert_eq!(ring.used_bytes(), Some(0));
}

/// Payloads from 192 to 255 bytes start on a line exactly where the record then touches no
/// more lines than packed (DECISIONS D89); below 192 bytes never unless packing puts them
/// there, from 256 bytes always. Every length from 184 to 264 bytes, from every 8-byte offset
/// within a line.
#[test]
fn mid_size_payloads_start_on_a_line_only_where_that_costs_no_line() {
    // 1 MiB: the whole test stays within the first lap, so no padding moves a record.
    let ring = SpscRing::in_heap(&SpscConfig::new(1 << 20)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    // Where the next header goes, as an offset within its line.
    let mut next = 0usize;
    let mut aligned_by_rule = 0;
    let mut packed_by_rule = 0;
    for len in 184..=264usize {
        for o in (0..64).step_by(8) {
            // Empty messages (8-byte records) until the next header sits `o` bytes into a line.
            while next != o {
                tx.try_push(&[]).unwrap();
                assert_eq!(rx.try_pop(&mut []).unwrap(), 0);
                next = (next + 8) % 64;
            }
            let data = payload(len + o, len);
            tx.try_push(&data).unwrap();
            let msg = rx.read().unwrap().expect("committed");
            assert_eq!(&*msg, &data[..]);
            // The data region starts on a line (the test above relies on it too).
            let at = msg.as_ptr() as usize;
            let packed_lines = (o + 8 + len).div_ceil(64);
            let aligned_lines = 1 + len.div_ceil(64);
            let already = (o + 8) % 64 == 0;
            let rule = len >= 256 || (len >= 192 && aligned_lines <= packed_lines);
            let want_line = already || rule;
            assert_eq!(
                at % 64 == 0,
                want_line,
                "{len} bytes after a header {o} bytes into a line: payload {} bytes into its line",
                at % 64
            );
            if !already && len < 256 {
                if rule {
                    aligned_by_rule += 1;
                } else if len >= 192 {
                    packed_by_rule += 1;
                }
            }
            next = (at + len).next_multiple_of(8) % 64;
            drop(msg);
        }
    }
    assert!(aligned_by_rule > 0 && packed_by_rule > 0);
    assert_eq!(ring.used_bytes(), Some(0));
}

/// A stream of 192-byte messages runs on whole lines; one of 248-byte messages whose first
/// record starts on a line stays packed, four lines a record (D89).
#[test]
fn a_192_byte_stream_aligns_and_a_248_byte_stream_from_a_line_stays_packed() {
    for (len, want) in [(192usize, 0usize), (248, 8)] {
        let ring = SpscRing::in_heap(&SpscConfig::new(1 << 16)).unwrap();
        let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        for i in 0..1000 {
            let data = payload(i, len);
            tx.try_push(&data).unwrap();
            let msg = rx.read().unwrap().expect("committed");
            assert_eq!(&*msg, &data[..]);
            assert_eq!(msg.as_ptr() as usize % 64, want, "{len} bytes, message {i}");
        }
    }
}

#[test]
fn reservations_are_aligned_and_a_shorter_commit_keeps_its_skip() {
    let ring = SpscRing::in_heap(&SpscConfig::new(1 << 12)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    tx.try_push(b"odd").unwrap(); // 16 bytes: the next header sits 16 bytes into a line
    let mut w = tx.reserve(600).unwrap();
    assert_eq!(w.as_ptr() as usize % 64, 0);
    w[..10].copy_from_slice(b"0123456789");
    w.commit_len(10);
    // An abandoned reservation leaves nothing behind, skip included.
    drop(tx.reserve(700).unwrap());
    tx.try_push(&[9u8; 40]).unwrap();
    let mut buf = [0u8; 1024];
    let n = rx.try_pop(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"odd");
    let n = rx.try_pop(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"0123456789");
    let n = rx.try_pop(&mut buf).unwrap();
    assert_eq!(&buf[..n], &[9u8; 40]);
    assert_eq!(rx.try_pop(&mut buf), Err(PopError::Empty));
}

#[test]
fn an_unaligned_ring_packs_every_record() {
    let ring = SpscRing::in_heap(&SpscConfig::new(4096).aligned(false)).unwrap();
    assert_eq!(ring.header().ring_flags & RING_FLAG_ALIGNED, 0);
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    tx.try_push(b"odd").unwrap();
    tx.try_push(&[1u8; 300]).unwrap();
    assert_eq!(ring.used_bytes(), Some(16 + 8 + 304));
    let mut buf = [0u8; 512];
    rx.try_pop(&mut buf).unwrap();
    let msg = rx.read().unwrap().unwrap();
    assert_eq!(msg.as_ptr() as usize % 64, 24);
}

/// An aligned ring in named shared memory and a raw second mapping (a hostile peer's view).
fn shm(cfg: &SpscConfig) -> (SpscRing, Segment) {
    let ring =
        SpscRing::create_shm(&unique_name("aligned"), cfg, &SegmentOptions::default()).unwrap();
    let raw = raw_view(ring.segment()).unwrap();
    (ring, raw)
}

fn poke(raw: &Segment, off: u64, v: u64) {
    raw.atomic_u64(usize::try_from(off).unwrap())
        .unwrap()
        .store(v, Ordering::SeqCst);
}

fn corrupt_what(rx: &mut shmbus_ring::Consumer) -> String {
    let mut buf = vec![0u8; 4096];
    match rx.try_pop(&mut buf) {
        Err(PopError::Corrupt(c)) => c.what.to_string(),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn forged_skip_records_are_corrupt_and_nothing_is_consumed() {
    let next = DATA_OFFSET + 16; // after one 16-byte record
    let cases: [(SpscConfig, &[u64], &str); 5] = [
        // A skip on a ring that does not allow them.
        (
            SpscConfig::new(4096).aligned(false),
            &[encode(8, KIND_SKIP)],
            "unknown record kind",
        ),
        // A length that is not a multiple of 8, or too long.
        (
            SpscConfig::new(4096),
            &[encode(12, KIND_SKIP)],
            "multiple of 8",
        ),
        (
            SpscConfig::new(4096),
            &[encode(56, KIND_SKIP)],
            "multiple of 8",
        ),
        // A skip not followed by a data record: nothing, another skip.
        (
            SpscConfig::new(4096),
            &[encode(8, KIND_SKIP)],
            "not followed",
        ),
        (
            SpscConfig::new(4096),
            &[encode(8, KIND_SKIP), encode(0, KIND_SKIP)],
            "not followed",
        ),
    ];
    for (cfg, words, what) in cases {
        let (ring, raw) = shm(&cfg);
        let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        tx.try_push(b"first").unwrap();
        let mut at = next;
        for &w in words {
            poke(&raw, at, w);
            at += 16;
        }
        let mut buf = [0u8; 64];
        let n = rx.try_pop(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"first");
        let got = corrupt_what(&mut rx);
        assert!(got.contains(what), "{words:x?}: {got}");
        // Stable: nothing was consumed.
        assert_eq!(corrupt_what(&mut rx), got);
        assert_eq!(
            ring.used_bytes(),
            Some(0),
            "no head published past the garbage"
        );
    }
}

#[test]
fn a_forged_skip_before_a_valid_record_is_honoured_on_an_aligned_ring() {
    let (ring, raw) = shm(&SpscConfig::new(4096));
    let (_tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    // What an honest producer's R1s leaves: a record at 24 (payload at 32), then the skip at 0.
    poke(&raw, DATA_OFFSET + 24, encode(4, KIND_DATA));
    poke(
        &raw,
        DATA_OFFSET + 32,
        u64::from(u32::from_le_bytes(*b"abcd")),
    );
    poke(&raw, DATA_OFFSET, encode(16, KIND_SKIP));
    let mut buf = [0u8; 16];
    let n = rx.try_pop(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"abcd");
}

#[test]
fn the_aligned_flag_is_refused_on_a_broadcast_ring() {
    let name = unique_name("aligned-broadcast");
    let ring = BroadcastRing::create_shm(
        &name,
        &BroadcastConfig::new(4096).max_record(256).history(16),
        &SegmentOptions::default(),
    )
    .unwrap();
    let raw = raw_view(ring.segment()).unwrap();
    let flags = raw.atomic_u32(112).unwrap();
    flags.fetch_or(RING_FLAG_ALIGNED, Ordering::SeqCst);
    match BroadcastRing::open_shm(&name, &SegmentOptions::default()) {
        Err(Error::BadField { field, reason, .. }) => {
            assert_eq!(field, "ring_flags");
            assert!(reason.contains("SPSC and (layout 1.7) MPMC"), "{reason}");
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

/// A reservation leaked with `mem::forget` (safe code) leaves its skip record in the producer;
/// a later batch (which never skips) moves `tail` without clearing it, and the next push whose
/// record starts where that stale skip's record would have started commits the stale skip over
/// the batch's first header: the batch's message is lost (the consumer skips over it).
#[test]
fn a_leaked_reservation_skip_never_overwrites_a_later_batch() {
    let ring = SpscRing::in_heap(&SpscConfig::new(1 << 12)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    tx.try_push(&[1u8; 24]).unwrap(); // 32 bytes: the next header sits 32 bytes into a line
                                      // 600 bytes from position 32: a 24-byte skip (len 16) puts the payload at 64.
    let w = tx.reserve(600).unwrap();
    assert_eq!(w.as_ptr() as usize % 64, 0);
    std::mem::forget(w);
    // A 24-byte record at 32, ending at 56: where the leaked reservation's record started.
    assert_eq!(tx.try_push_batch(&[[2u8; 16]]).unwrap(), 1);
    tx.try_push(b"after").unwrap();
    let mut buf = [0u8; 1024];
    let n = rx.try_pop(&mut buf).unwrap();
    assert_eq!(&buf[..n], &[1u8; 24]);
    let n = rx.try_pop(&mut buf).unwrap();
    assert_eq!(&buf[..n], &[2u8; 16], "the batch's message was lost");
    let n = rx.try_pop(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"after");
    assert_eq!(rx.try_pop(&mut buf), Err(PopError::Empty));
}

/// A ring sized by `Kind::config_for(n, max)` with the bound `n` (as the typed channel's
/// `bounded(n)`) takes a push whenever fewer than `n` messages are queued, whatever their
/// lengths up to `max` and wherever the consumer stands: skips (up to 56 bytes before each
/// large record) and the padding of a wrap included (crossbeam's contract).
#[test]
fn a_sized_bounded_ring_never_reports_full_below_its_message_bound() {
    use shmbus_ring::{Identity, Kind, Ring, Spsc};
    let mut rng = shmbus_testkit::rng::Rng::new(0x9E37_79B9_7F4A_7C15u64);
    let mut rand = move |n: u64| rng.below(n);
    for max in [192u64, 200, 248, 255, 256, 257, 300, 1000, 2040, 4096] {
        for n in 1..=9u64 {
            let cfg = Spsc::with_limit(
                Spsc::config_for(n, max, Identity::default(), false).unwrap(),
                n,
            );
            let ring = Ring::<Spsc>::in_heap(&cfg).unwrap();
            let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
            let lens = [0, 1, 7, 192, 200, 255, 256, max - 1, max, max, max].map(|l| l.min(max));
            let mut queued = std::collections::VecDeque::new();
            let mut buf = vec![0u8; max as usize];
            for i in 0..3000u64 {
                if (queued.len() as u64) < n && rand(3) != 0 {
                    let len = lens[rand(lens.len() as u64) as usize] as usize;
                    let data = payload(i as usize, len);
                    tx.try_push(&data).unwrap_or_else(|e| {
                        panic!(
                            "max {max}, bound {n}: push {i} of {len} bytes with {} queued: {e}",
                            queued.len()
                        )
                    });
                    queued.push_back(data);
                } else if let Some(want) = queued.pop_front() {
                    let got = rx.try_pop(&mut buf).unwrap();
                    assert_eq!(&buf[..got], &want[..]);
                }
            }
        }
    }
}

/// `Kind::config_for(n, max)` is "a ring that holds at least `n` messages of up to `max` bytes
/// each" without a bound too: `sized_for` has skip room only from 256 bytes, so a ring whose
/// record limit is below 256 packs payloads of 192 to 255 bytes (D89).
#[test]
fn a_sized_ring_without_a_bound_holds_its_messages_of_the_largest_size() {
    use shmbus_ring::{Identity, Kind, Ring, Spsc};
    let mut short = Vec::new();
    for max in 180u64..=300 {
        for n in 1..=40u64 {
            let cfg = Spsc::config_for(n, max, Identity::default(), false).unwrap();
            let ring = Ring::<Spsc>::in_heap(&cfg).unwrap();
            let mut tx = ring.producer().unwrap();
            let data = payload(0, max as usize);
            let fitted = (0..n).take_while(|_| tx.try_push(&data).is_ok()).count() as u64;
            if fitted < n {
                short.push((max, n, fitted));
            }
        }
    }
    assert!(short.is_empty(), "(max, n, fitted): {short:?}");
}

/// A checksum ring (record length = payload + 4) against the model fed
/// record lengths; pushes, reservations (committed, shorter, abandoned), packed reservations.
#[test]
fn checksum_ring_positions_match_the_model_fed_record_lengths() {
    use shmbus_testkit::models::SpscModel;
    let mut rng = shmbus_testkit::rng::Rng::new(0x9E37_79B9_7F4A_7C15u64);
    let mut rand = move |n: u64| rng.below(n);
    for cap in [256u64, 512, 1024, 4096] {
        let ring = SpscRing::in_heap(&SpscConfig::new(cap).checksum(true)).unwrap();
        let max = ring.max_message();
        let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        let mut m = SpscModel::aligned(cap).record_limit(ring.max_record() as u64);
        for step in 0..20_000 {
            let len = match rand(3) {
                0 => 176 + rand(96) as usize,
                1 => rand(64) as usize,
                _ => rand(max as u64 + 1) as usize,
            }
            .min(max);
            let data = payload(step, len);
            match rand(6) {
                0 | 1 => {
                    let expect = m.place(len + 4);
                    match tx.try_push(&data) {
                        Ok(()) => {
                            assert!(expect, "cap {cap} step {step}: push {len}");
                            let mut rec = data.clone();
                            rec.extend_from_slice(&[0; 4]);
                            m.commit(rec);
                        }
                        Err(e) => assert!(!expect, "cap {cap} step {step}: push {len}: {e}"),
                    }
                }
                2 | 3 => {
                    let packed = rand(4) == 0;
                    let expect = if packed {
                        m.place_batched(len + 4)
                    } else {
                        m.place(len + 4)
                    };
                    let r = if packed {
                        tx.reserve_up_to(len)
                    } else {
                        tx.reserve(len)
                    };
                    match r {
                        Ok(mut w) => {
                            assert!(expect, "cap {cap} step {step}: reserve {len}");
                            w.copy_from_slice(&data);
                            match rand(3) {
                                0 => {
                                    w.commit();
                                    m.commit(vec![0; len + 4]);
                                }
                                1 => {
                                    let keep = len.saturating_sub(rand(250) as usize);
                                    w.commit_len(keep);
                                    m.commit(vec![0; keep + 4]);
                                }
                                _ => drop(w),
                            }
                        }
                        Err(e) => assert!(!expect, "cap {cap} step {step}: reserve {len}: {e}"),
                    }
                }
                _ => {
                    let mut buf = vec![0u8; max];
                    let got = rx.try_pop(&mut buf);
                    let want = m.pop();
                    assert_eq!(got.is_ok(), want.is_some(), "cap {cap} step {step}: pop");
                    if let (Ok(n), Some(w)) = (got, want) {
                        assert_eq!(n + 4, w.len(), "cap {cap} step {step}");
                    }
                }
            }
            assert_eq!(ring.used_bytes(), Some(m.used()), "cap {cap} step {step}");
        }
    }
}
