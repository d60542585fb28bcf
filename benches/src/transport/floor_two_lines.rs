//! `floor-two-lines`: two cache lines in a shared segment, one per direction: the parent
//! writes pings into its line, the peer answers into the other. It is the floor of any
//! transport made of two one-way channels (a ring each way, as every shmbus transport and
//! iceoryx2 are), where `floor-cacheline` bounces a single line both ways, which no pair of
//! one-way rings can do. On the EPYC VM a C ping-pong over two lines took about 1.5× as long
//! as over one in the slow vCPU placement (640–660 ns against 400–427 ns).
//!
//! Each line holds the message word at +0 (Relaxed) and a count at +8 (Release, the commit):
//! the reader waits for the count to move, then reads the word. The lines are 128 bytes apart,
//! so the adjacent-line prefetcher does not pair them. 8-byte messages, round trips only.

use super::Endpoint;
use anyhow::{anyhow, ensure, Result};
use shmbus::ring::Segment;
use std::sync::atomic::{AtomicU64, Ordering};

/// Byte offset of the parent's line, and of the peer's.
const LINES: [usize; 2] = [0, 128];

/// One side's end: the transport (set up as `floor-cacheline`'s, [`super::floor_cacheline`])
/// hands the parent line 0 and the peer line 1.
pub(super) struct Lines {
    seg: Segment,
    /// Which line this side writes (0: parent, 1: peer); it reads the other.
    mine: usize,
    /// Messages sent by this side, and seen from the other.
    sent: u64,
    seen: u64,
}

impl Lines {
    /// The end that writes line `mine` of `seg`.
    pub(super) fn new(seg: Segment, mine: usize) -> Self {
        Lines {
            seg,
            mine,
            sent: 0,
            seen: 0,
        }
    }

    #[inline(always)]
    fn word(&self, off: usize) -> Result<&AtomicU64> {
        self.seg
            .atomic_u64(off)
            .ok_or_else(|| anyhow!("{}: no aligned word at offset {off}", self.seg.target()))
    }
}

impl Endpoint for Lines {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        ensure!(
            msg.len() == 8,
            "floor-two-lines carries 8-byte messages only"
        );
        let line = LINES[self.mine];
        self.word(line)?
            .store(crate::msg::word0(msg), Ordering::Relaxed);
        self.sent += 1;
        // Release: publishes the message word; pairs with the Acquire load of the count in the
        // other process's recv.
        self.word(line + 8)?.store(self.sent, Ordering::Release);
        Ok(())
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        let line = LINES[self.mine ^ 1];
        let seen = self.seen;
        let (count, word) = (self.word(line + 8)?, self.word(line)?);
        let n = loop {
            // Acquire: pairs with the Release store of the count in the other's send.
            let n = count.load(Ordering::Acquire);
            if n != seen {
                crate::msg::put_word0(buf, word.load(Ordering::Relaxed));
                break n;
            }
            std::hint::spin_loop();
        };
        self.seen = n;
        Ok(8)
    }
}
