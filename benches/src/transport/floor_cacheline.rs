//! `floor-cacheline`: one cache line (one `AtomicU64` in a shared segment) bounced between the
//! two processes. A round trip here is two cache-line transfers and nothing else: the hardware
//! limit for handing a message from one core to another and back.
//!
//! The word holds `(seq + 1) << 1 | direction`: the parent writes pings (direction 1), the peer
//! answers with pongs (direction 0) carrying the same sequence number. It carries 8-byte
//! messages only, and round trips only.

use super::{Class, Endpoint, Listening, Phase, SetupEnv, Transport};
use anyhow::{anyhow, ensure, Context, Result};
use shmbus::ring::{Segment, SegmentOptions};
use std::sync::atomic::{AtomicU64, Ordering};

/// One cache line shared by the two processes (`floor-cacheline`), or, with `two`, a line per
/// direction (`floor-two-lines`, [`super::floor_two_lines`]).
pub struct FloorCacheline {
    /// A line per direction rather than one line both ways.
    pub two: bool,
}

const PING: u64 = 1;
const PONG: u64 = 0;

struct Line {
    seg: Segment,
    /// The direction bit this side writes; it waits for the other one.
    mine: u64,
}

impl Line {
    #[inline(always)]
    fn word(&self) -> Result<&AtomicU64> {
        self.seg
            .atomic_u64(0)
            .ok_or_else(|| anyhow!("{}: no aligned word at offset 0", self.seg.target()))
    }
}

impl Endpoint for Line {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        ensure!(
            msg.len() == 8,
            "floor-cacheline carries 8-byte messages only"
        );
        let seq = crate::msg::word0(msg);
        // Release: publishes nothing but the word itself; pairs with the Acquire load in the
        // other process's recv (kept for the shape of a real hand-off).
        self.word()?
            .store((seq.wrapping_add(1) << 1) | self.mine, Ordering::Release);
        Ok(())
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        let want = self.mine ^ 1;
        let word = self.word()?;
        loop {
            // Acquire: pairs with the Release store in the other process's send.
            let v = word.load(Ordering::Acquire);
            // The word only ever holds the last write of either side, and each side writes
            // only after it has read the other's: a word in the other direction is new. (The
            // pong for STOP is 0, as `u64::MAX + 1` wraps; the initial 0 is never awaited by
            // the parent, who pings first.)
            if v & 1 == want {
                crate::msg::put_word0(buf, (v >> 1).wrapping_sub(1));
                return Ok(8);
            }
            std::hint::spin_loop();
        }
    }
}

impl Transport for FloorCacheline {
    fn name(&self) -> &'static str {
        if self.two {
            "floor-two-lines"
        } else {
            "floor-cacheline"
        }
    }

    fn class(&self) -> Class {
        Class::Floor
    }

    fn supports(&self, phase: Phase, size: usize) -> bool {
        phase == Phase::RoundTrip && size == 8
    }

    fn listen(&self, env: &SetupEnv, _size: usize) -> Result<Listening> {
        let name = format!("/{}-line", env.unique);
        let seg = Segment::create(&name, 4096, &SegmentOptions::default().prefault(true))
            .with_context(|| format!("Segment::create({name})"))?;
        let two = self.two;
        Ok(Listening {
            arg: name,
            child_stdin: None,
            child_stdout: None,
            finish: Box::new(move || Ok(endpoint(seg, two, true))),
        })
    }

    fn connect(&self, arg: &str, _size: usize) -> Result<Box<dyn Endpoint>> {
        let seg = Segment::open(arg, &SegmentOptions::default().prefault(true))
            .with_context(|| format!("Segment::open({arg})"))?;
        Ok(endpoint(seg, self.two, false))
    }
}

/// The parent's (`parent`) or the peer's endpoint on `seg`.
fn endpoint(seg: Segment, two: bool, parent: bool) -> Box<dyn Endpoint> {
    if two {
        Box::new(super::floor_two_lines::Lines::new(
            seg,
            usize::from(!parent),
        ))
    } else {
        let mine = if parent { PING } else { PONG };
        Box::new(Line { seg, mine })
    }
}
