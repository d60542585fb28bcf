//! `floor-ring`: the simplest correct index-based SPSC ring in shared memory, so every run
//! shows shmbus beside a minimal ring between the same two processes.
//!
//! One segment per direction. The producer's index `tail` and the consumer's index `head`
//! (free-running message counts) sit on lines of their own; each side keeps a private copy of
//! the other's index and reads the shared one only when its copy says full (producer) or
//! empty (consumer). Messages have the harness's fixed size and go in slots of the next
//! multiple of 64 bytes; the ring has the largest power-of-two number of slots (at least two)
//! that fits the run's ring size ([`crate::ring::capacity_for`], so `--ring-bytes` applies).
//! Both sides busy-poll. Copy in on push, copy out on pop.
//!
//! No `unsafe` here (the harness forbids it): the slots are read and written as `AtomicU64`
//! words with Relaxed ordering through [`Segment::atomic_words`] (bounds-checked once per
//! message), eight bytes per access, where a C ring would `memcpy`. On x86-64 a Relaxed
//! atomic access is a plain `mov`, but the compiler cannot merge or vectorize them, so from
//! a few KiB up this floor copies slower than `memcpy` would: at large sizes it is a floor
//! for the protocol, not for the copy (`floor-memcpy` is the copy's).

use super::{Class, Endpoint, Listening, Phase, SetupEnv, Transport};
use crate::ring::capacity_for;
use anyhow::{anyhow, ensure, Context, Result};
use shmbus::ring::{Segment, SegmentOptions};
use std::sync::atomic::{AtomicU64, Ordering};

/// The minimal ring.
pub struct FloorRing;

/// Byte offset of the producer's index.
const TAIL: usize = 0;
/// Byte offset of the consumer's index (two lines from `TAIL`: no adjacent-line pairing).
const HEAD: usize = 128;
/// Byte offsets of the geometry the creator writes: slot bytes, slot count.
const SLOT: usize = 256;
const SLOTS: usize = 264;
/// Where the slots begin.
const DATA: usize = 4096;

/// Slot bytes and slot count for `size`-byte messages.
fn geometry(size: usize) -> (usize, usize) {
    let slot = size.next_multiple_of(64);
    let fit = (capacity_for(size) as usize / slot).max(2);
    // The largest power of two not above `fit`.
    let slots = 1usize << (usize::BITS - 1 - fit.leading_zeros());
    (slot, slots)
}

/// One direction: a mapped segment and this side's private state.
struct Ring {
    seg: Segment,
    slot: usize,
    mask: u64,
    /// This side's own index (tail for the producer, head for the consumer).
    mine: u64,
    /// The last value read of the other side's index.
    cached: u64,
}

impl Ring {
    fn create(name: &str, size: usize) -> Result<Ring> {
        let (slot, slots) = geometry(size);
        let seg = Segment::create(
            name,
            (DATA + slot * slots) as u64,
            &SegmentOptions::default().prefault(true),
        )
        .with_context(|| format!("Segment::create({name})"))?;
        let word = |off| {
            seg.atomic_u64(off)
                .ok_or_else(|| anyhow!("{name}: no word at {off}"))
        };
        word(SLOT)?.store(slot as u64, Ordering::Relaxed);
        word(SLOTS)?.store(slots as u64, Ordering::Relaxed);
        Ring::on(seg, size)
    }

    fn open(name: &str, size: usize) -> Result<Ring> {
        let seg = Segment::open(name, &SegmentOptions::default().prefault(true))
            .with_context(|| format!("Segment::open({name})"))?;
        Ring::on(seg, size)
    }

    /// Checks the geometry in the segment against the message size and the mapping.
    fn on(seg: Segment, size: usize) -> Result<Ring> {
        let read = |off| {
            seg.atomic_u64(off)
                .map(|w| w.load(Ordering::Relaxed))
                .ok_or_else(|| anyhow!("{}: no word at {off}", seg.target()))
        };
        let (slot, slots) = (read(SLOT)?, read(SLOTS)?);
        ensure!(
            slot >= size as u64 && slot % 64 == 0 && slots.is_power_of_two() && slots >= 2,
            "{}: bad geometry ({slots} slots of {slot} B for {size}-byte messages)",
            seg.target()
        );
        ensure!(
            slots
                .checked_mul(slot)
                .and_then(|b| b.checked_add(DATA as u64))
                <= Some(seg.len() as u64),
            "{}: {slots} slots of {slot} B do not fit {} bytes",
            seg.target(),
            seg.len()
        );
        Ok(Ring {
            seg,
            slot: slot as usize,
            mask: slots - 1,
            mine: 0,
            cached: 0,
        })
    }

    #[inline(always)]
    fn word(&self, off: usize) -> Result<&AtomicU64> {
        self.seg
            .atomic_u64(off)
            .ok_or_else(|| anyhow!("{}: no word at {off}", self.seg.target()))
    }

    /// The words holding `len` bytes at byte offset `off` (bounds-checked once).
    #[inline(always)]
    fn words(&self, off: usize, len: usize) -> Result<&[AtomicU64]> {
        self.seg
            .atomic_words(off, len.div_ceil(8))
            .ok_or_else(|| anyhow!("{}: no {len} bytes at {off}", self.seg.target()))
    }

    /// The byte offset of the slot of message number `i`.
    #[inline(always)]
    fn slot_at(&self, i: u64) -> usize {
        DATA + (i & self.mask) as usize * self.slot
    }

    #[inline]
    fn push(&mut self, msg: &[u8]) -> Result<()> {
        let slots = self.mask + 1;
        if self.mine - self.cached == slots {
            let head = self.word(HEAD)?;
            let mine = self.mine;
            let cached = loop {
                // Acquire: pairs with the consumer's Release store of `head` in `pop`: the
                // slot it freed has been read before we overwrite it.
                let h = head.load(Ordering::Acquire);
                if mine - h < slots {
                    break h;
                }
                std::hint::spin_loop();
            };
            self.cached = cached;
        }
        let words = self.words(self.slot_at(self.mine), msg.len())?;
        let mut chunks = msg.chunks_exact(8);
        for (w, chunk) in words.iter().zip(&mut chunks) {
            let bytes: [u8; 8] = chunk.try_into().expect("8-byte chunk");
            w.store(u64::from_le_bytes(bytes), Ordering::Relaxed);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            words[msg.len() / 8].store(u64::from_le_bytes(last), Ordering::Relaxed);
        }
        self.mine += 1;
        // Release: pairs with the consumer's Acquire load of `tail` in `pop`: the slot's
        // words are visible before the index that publishes them.
        self.word(TAIL)?.store(self.mine, Ordering::Release);
        Ok(())
    }

    #[inline]
    fn pop(&mut self, buf: &mut [u8]) -> Result<()> {
        if self.mine == self.cached {
            let tail = self.word(TAIL)?;
            let mine = self.mine;
            let cached = loop {
                // Acquire: pairs with the producer's Release store of `tail` in `push`.
                let t = tail.load(Ordering::Acquire);
                if t != mine {
                    break t;
                }
                std::hint::spin_loop();
            };
            self.cached = cached;
        }
        let words = self.words(self.slot_at(self.mine), buf.len())?;
        let whole = buf.len() / 8;
        let (head, rest) = buf.split_at_mut(whole * 8);
        for (w, chunk) in words.iter().zip(head.chunks_exact_mut(8)) {
            chunk.copy_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
        }
        if !rest.is_empty() {
            let last = words[whole].load(Ordering::Relaxed).to_le_bytes();
            rest.copy_from_slice(&last[..rest.len()]);
        }
        self.mine += 1;
        // Release: pairs with the producer's Acquire load of `head` when full: the slot has
        // been read before the producer may reuse it.
        self.word(HEAD)?.store(self.mine, Ordering::Release);
        Ok(())
    }
}

struct FloorRingEndpoint {
    tx: Ring,
    rx: Ring,
}

impl Endpoint for FloorRingEndpoint {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.tx.push(msg)
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.rx.pop(buf)?;
        Ok(buf.len())
    }
}

impl Transport for FloorRing {
    fn name(&self) -> &'static str {
        "floor-ring"
    }

    fn class(&self) -> Class {
        Class::Floor
    }

    fn supports(&self, phase: Phase, _size: usize) -> bool {
        // Both sides spin: no idle phase worth measuring (100 %), as for shmbus-spsc.
        phase != Phase::Idle
    }

    fn ring_bytes(&self, size: usize) -> Option<u64> {
        let (slot, slots) = geometry(size);
        Some((slot * slots) as u64)
    }

    fn listen(&self, env: &SetupEnv, size: usize) -> Result<Listening> {
        let base = format!("/{}", env.unique);
        let ep = FloorRingEndpoint {
            tx: Ring::create(&format!("{base}-down"), size)?,
            rx: Ring::create(&format!("{base}-up"), size)?,
        };
        Ok(Listening {
            arg: base,
            child_stdin: None,
            child_stdout: None,
            finish: Box::new(move || Ok(Box::new(ep) as Box<dyn Endpoint>)),
        })
    }

    fn connect(&self, arg: &str, size: usize) -> Result<Box<dyn Endpoint>> {
        Ok(Box::new(FloorRingEndpoint {
            tx: Ring::open(&format!("{arg}-up"), size)?,
            rx: Ring::open(&format!("{arg}-down"), size)?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(what: &str) -> String {
        format!(
            "/shmbus-bench-floor-ring-test-{what}-{}",
            std::process::id()
        )
    }

    #[test]
    fn messages_come_out_in_order_through_full_rings_and_wrap_around() {
        for size in [8, 24, 64, 100, 4096] {
            let n = name(&format!("order-{size}"));
            let mut tx = Ring::create(&n, size).unwrap();
            let mut rx = Ring::open(&n, size).unwrap();
            let slots = tx.mask + 1;
            let msg =
                |i: u64| -> Vec<u8> { (0..size).map(|b| (i as usize * 31 + b) as u8).collect() };
            let mut buf = vec![0u8; size];
            let mut next = 0u64;
            // Fill the ring three times over, draining it each time: every slot is reused.
            for _ in 0..3 {
                for i in next..next + slots {
                    tx.push(&msg(i)).unwrap();
                }
                for i in next..next + slots {
                    rx.pop(&mut buf).unwrap();
                    assert_eq!(buf, msg(i), "size {size}, message {i}");
                }
                next += slots;
            }
            let _ = tx.seg.unlink();
        }
    }

    #[test]
    fn a_segment_whose_geometry_does_not_fit_is_refused() {
        let n = name("geometry");
        let ring = Ring::create(&n, 64).unwrap();
        ring.word(SLOTS).unwrap().store(1 << 40, Ordering::Relaxed);
        assert!(Ring::open(&n, 64).is_err(), "slots beyond the mapping");
        ring.word(SLOTS).unwrap().store(4, Ordering::Relaxed);
        ring.word(SLOT).unwrap().store(8, Ordering::Relaxed);
        assert!(Ring::open(&n, 64).is_err(), "slots smaller than a message");
        ring.word(SLOT).unwrap().store(64, Ordering::Relaxed);
        assert!(Ring::open(&n, 64).is_ok());
        let _ = ring.seg.unlink();
    }
}
