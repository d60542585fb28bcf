//! The passive message cursor (PROTOCOL §7.6, steps V1–V3): copies messages out of a ring as
//! they pass, validating each copy after it is made, and never claims, consumes or writes.
//!
//! A ring's producer reuses space as soon as consumers have passed it, so a message the
//! observer copies can be overwritten during the copy. The cursor therefore works as a
//! seqlock reader: load the word that says what is there (V1), copy (V2), then re-load and
//! check that nothing can have overwritten the copy (V3). A copy that fails the check, or a
//! position the ring has already reused, is reported as [`Peeked::Missed`] and the cursor
//! moves on: an observer that falls behind loses messages, never the consumers.

use super::Observer;
use crate::conv::offset;
use crate::error::{Corruption, Error, Result};
use crate::frame::MAX_SKIP_LEN;
use crate::layout::{
    RingKind, BLOCK_POSITION, CHECKSUM_LEN, CONSUMER_BLOCK, DATA_OFFSET, PRODUCER_BLOCK,
    RING_FLAG_ALIGNED,
};
use crate::sync::{fence, Memory, Ordering, RawMem};

/// Where a [`Peek`] starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At the producer's position: only messages published from now on.
    Newest,
    /// At the consumers' position: the messages still in the ring, then the new ones.
    Oldest,
}

/// What [`Peek::next`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peeked {
    /// A message, copied into the caller's buffer (the checksum trailer, if any, removed).
    Message {
        /// Its position (SPSC: byte position of its record; MPMC: message position).
        position: u64,
    },
    /// Messages passed before they could be copied: the ring reused their space (or a copy
    /// failed its check). The cursor moved on from `from` to `to` (SPSC: bytes; MPMC:
    /// messages).
    Missed {
        /// The cursor's position before.
        from: u64,
        /// Its position now.
        to: u64,
    },
    /// Nothing new yet.
    Nothing,
}

/// A passive cursor over a ring's messages ([`Observer::peek`]).
#[derive(Debug)]
pub struct Peek<'a> {
    obs: &'a Observer,
    pos: u64,
    /// Calls of [`next`](Self::next), for checking the object's size every 64th.
    calls: u32,
}

/// Positions above this are refused as corrupt (as the rings do: §4.4, §5.2).
const MAX_POSITION: u64 = 1 << 62;

impl<'a> Peek<'a> {
    pub(super) fn new(obs: &'a Observer, start: Start) -> Self {
        let mut p = Peek {
            obs,
            pos: 0,
            calls: 0,
        };
        p.pos = match start {
            Start::Newest => p.shared(PRODUCER_BLOCK),
            Start::Oldest => p.shared(CONSUMER_BLOCK),
        };
        p
    }

    /// The cursor's position (SPSC: bytes; MPMC: messages).
    pub fn position(&self) -> u64 {
        self.pos
    }

    fn mem(&self) -> &RawMem {
        self.obs.mem()
    }

    /// V4: a control block's position word, Relaxed (display and resynchronisation only).
    fn position_of(&self, block: u64) -> u64 {
        // SAFETY: an aligned word of the first page, which the observer's memory holds.
        unsafe {
            self.mem()
                .load(offset(block + BLOCK_POSITION), Ordering::Relaxed)
        }
    }

    /// The position to start from or resynchronise to: a valid one, or 0.
    fn shared(&self, block: u64) -> u64 {
        let p = self.position_of(block);
        let aligned = self.obs.kind() == RingKind::Mpmc || p % 8 == 0;
        if p < MAX_POSITION && aligned {
            p
        } else {
            0
        }
    }

    /// V1: the 8-byte word at `off`, loaded Relaxed, then an Acquire fence (a read-only
    /// mapping allows only loads; the fence makes it an acquire, as H2 + H3 do). Pairs with
    /// the Release store that published the word: R1 (an SPSC record header) or M5/M9/M11
    /// (an MPMC sequence word), so the bytes it covers are visible to the copy (V2).
    fn acquire(&self, off: usize) -> u64 {
        // SAFETY: callers pass an aligned offset inside the ring data, which the observer's
        // memory holds (checked against the validated geometry).
        let w = unsafe { self.mem().load(off, Ordering::Relaxed) };
        // V1.
        fence(Ordering::Acquire);
        w
    }

    /// V2: copies `len` bytes at `off` into `out` with Relaxed 8-byte loads (the payload may
    /// be overwritten meanwhile: atomic loads make that a stale or torn copy, which V3
    /// detects, rather than a data race).
    fn copy(&self, off: usize, len: usize, out: &mut Vec<u8>) {
        out.clear();
        let words = len.div_ceil(8);
        for i in 0..words {
            // SAFETY: `off + 8 * words` is inside the ring data (the callers check the record
            // or slot lies within it, and both are padded to 8 bytes); `off` is 8-aligned.
            let w = unsafe { self.mem().load(off + 8 * i, Ordering::Relaxed) };
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.truncate(len);
    }

    /// The next message after the cursor, copied into `out`.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] when the ring holds what no honest peer writes at a position no
    /// producer has reused (a record header out of bounds, a length beyond the limit).
    pub fn next(&mut self, out: &mut Vec<u8>) -> Result<Peeked> {
        // A segment shrunk under us is an error, not SIGBUS (checked every 64th call: an
        // `fstat` per message would cost a fast ring's observer more than the copy).
        if self.calls % 64 == 0 {
            self.obs.check_size()?;
        }
        self.calls = self.calls.wrapping_add(1);
        let r = match self.obs.kind() {
            RingKind::Spsc => self.next_spsc(out),
            RingKind::Mpmc => self.next_mpmc(out),
            RingKind::Broadcast => self.next_broadcast(out),
        };
        r.map_err(|c| Error::Corrupt {
            target: self.obs.segment().target(),
            corruption: c,
        })
    }

    /// Moves the cursor to `to` and reports the gap.
    fn missed(&mut self, to: u64) -> Peeked {
        let from = self.pos;
        self.pos = to.max(from);
        Peeked::Missed { from, to: self.pos }
    }

    fn next_spsc(&mut self, out: &mut Vec<u8>) -> std::result::Result<Peeked, Corruption> {
        let h = *self.obs.header();
        let cap = h.capacity;
        let trailer = if self.obs.checksum() { CHECKSUM_LEN } else { 0 };
        let aligned = h.ring_flags & RING_FLAG_ALIGNED != 0;
        // At most one padding record, one skip record and one data record.
        for _ in 0..3 {
            let pos = self.pos;
            let off = pos & (cap - 1);
            let at = offset(DATA_OFFSET + off);
            let word = self.acquire(at);
            let head = self.shared(CONSUMER_BLOCK);
            if word == 0 {
                // Nothing committed here in this lap — unless the consumers already passed
                // this position: then the producer reused it (a lap), and the cursor resyncs
                // to the consumers' position.
                return Ok(if head > pos {
                    self.missed(head)
                } else {
                    Peeked::Nothing
                });
            }
            let len = word & 0xffff_ffff;
            let kind = word >> 32;
            let size = 8 + len.div_ceil(8) * 8;
            let valid = match kind {
                1 => len <= h.record_limit && off + size <= cap,
                2 => off != 0 && len == cap - off - 8,
                3 => aligned && len % 8 == 0 && len <= MAX_SKIP_LEN && off + len + 16 <= cap,
                _ => false,
            };
            if !valid {
                if head > pos {
                    // Reused space: a stale or overwritten header, not corruption.
                    return Ok(self.missed(head));
                }
                return Err(Corruption {
                    what: "observed record header",
                    position: pos,
                    value: word,
                });
            }
            if kind == 2 {
                self.pos = pos + (cap - off);
                continue;
            }
            if kind == 3 {
                self.pos = pos + 8 + len;
                continue;
            }
            let n = offset(len);
            self.copy(at + 8, n, out);
            // V3: Acquire fence, then the header word and the positions again. The copy is
            // the message if the header is unchanged and either the consumers have not passed
            // `pos` (a producer writes only below head + capacity, so nothing overwrote it) or
            // the producer's published tail is less than half a ring past `pos` (an overwrite
            // would then need one write in flight, a record or a batch, of more than the
            // other half ring: the residual PROTOCOL §7.6 names).
            fence(Ordering::Acquire);
            // SAFETY: as in `acquire`.
            let again = unsafe { self.mem().load(at, Ordering::Relaxed) };
            let head2 = self.shared(CONSUMER_BLOCK);
            let tail2 = self.shared(PRODUCER_BLOCK);
            let safe = head2 <= pos || tail2.saturating_sub(pos) <= cap / 2;
            if again != word || !safe {
                return Ok(self.missed(head2.max(pos + size)));
            }
            if n < trailer {
                return Err(Corruption {
                    what: "observed record shorter than its checksum trailer",
                    position: pos,
                    value: len,
                });
            }
            out.truncate(n - trailer);
            self.pos = pos + size;
            return Ok(Peeked::Message { position: pos });
        }
        Ok(Peeked::Nothing)
    }

    /// A broadcast ring's aux word `field` (Relaxed).
    fn aux_word(&self, field: u64) -> u64 {
        let aux = DATA_OFFSET + self.obs.header().capacity;
        // SAFETY: open validated that the auxiliary region lies inside the segment, which the
        // observer's memory holds; `field` is an aligned word of it.
        unsafe { self.mem().load(offset(aux + field), Ordering::Relaxed) }
    }

    /// Where a broadcast observer resynchronises: the latest record (from the history
    /// index), or the published tail.
    fn broadcast_latest(&self) -> u64 {
        use crate::broadcast::aux::{HISTORY, HIST_HEAD};
        let history = u64::from(self.obs.header().reserved_u32.max(1));
        let head = self.aux_word(HIST_HEAD);
        let latest = if head == 0 {
            0
        } else {
            self.aux_word(HISTORY + 8 * ((head - 1) & (crate::broadcast::index_len(history) - 1)))
        };
        if latest > self.pos && latest % 8 == 0 && latest < MAX_POSITION {
            latest
        } else {
            self.shared(PRODUCER_BLOCK).max(self.pos)
        }
    }

    /// A broadcast observer overtaken at `pos`: on to the latest record, or `Corrupt` if the
    /// ring names none beyond `pos` (an honest publisher that overtook it has published one).
    fn resync(&mut self, pos: u64, word: u64) -> std::result::Result<Peeked, Corruption> {
        let to = self.broadcast_latest();
        if to > pos {
            Ok(self.missed(to))
        } else {
            Err(Corruption {
                what: "observer overtaken, but the ring names no record beyond its position",
                position: pos,
                value: word,
            })
        }
    }

    /// A broadcast ring: an untethered reader that never registers (PROTOCOL §8.5's V1–V2
    /// with the observer's loads).
    fn next_broadcast(&mut self, out: &mut Vec<u8>) -> std::result::Result<Peeked, Corruption> {
        let h = *self.obs.header();
        let cap = h.capacity;
        let shift = cap.trailing_zeros();
        let trailer = if self.obs.checksum() { CHECKSUM_LEN } else { 0 };
        let overrun = |this: &Self, pos: u64| {
            fence(Ordering::Acquire);
            this.aux_word(crate::broadcast::aux::INTENT) > pos + cap
        };
        for _ in 0..2 {
            let pos = self.pos;
            let off = pos & (cap - 1);
            let at = offset(DATA_OFFSET + off);
            let word = self.acquire(at);
            if word == 0 {
                return if overrun(self, pos) {
                    self.resync(pos, word)
                } else {
                    Ok(Peeked::Nothing)
                };
            }
            let len = word & 0xffff_ffff;
            let kind = (word >> 32) & 0xff;
            let size = 8 + len.div_ceil(8) * 8;
            let valid = (word >> 40) == (pos >> shift) & 0xFF_FFFF
                && match kind {
                    1 => len <= h.record_limit && off + size <= cap,
                    2 => off != 0 && len == cap - off - 8,
                    _ => false,
                };
            if !valid {
                if overrun(self, pos) {
                    return self.resync(pos, word);
                }
                return Err(Corruption {
                    what: "observed record header",
                    position: pos,
                    value: word,
                });
            }
            if kind == 2 {
                self.pos = pos + (cap - off);
                continue;
            }
            let n = offset(len);
            self.copy(at + 8, n, out);
            if overrun(self, pos) {
                return self.resync(pos, word);
            }
            if n < trailer {
                return Err(Corruption {
                    what: "observed record shorter than its checksum trailer",
                    position: pos,
                    value: len,
                });
            }
            out.truncate(n - trailer);
            self.pos = pos + size;
            return Ok(Peeked::Message { position: pos });
        }
        Ok(Peeked::Nothing)
    }

    fn next_mpmc(&mut self, out: &mut Vec<u8>) -> std::result::Result<Peeked, Corruption> {
        let h = *self.obs.header();
        let slots = h.capacity;
        let stride = h.data_len / slots;
        let trailer = if self.obs.checksum() { CHECKSUM_LEN } else { 0 };
        let pos = self.pos;
        let at = offset(DATA_OFFSET + (pos & (slots - 1)) * stride);
        let word = self.acquire(at);
        let seq = word >> 8;
        let tag = word & 0xff;
        // The message at `pos` is in its slot while the word says "committed" or "being
        // read" (seq = pos + 1), or "consumed, free for the next lap" and not claimed again
        // (seq = pos + slots, tag 0): the next lap's producer writes only after its claim.
        let holds = seq == pos + 1 || (seq == pos + slots && tag == 0);
        if !holds {
            if seq > pos + 1 {
                // Reused: the cursor has been lapped. Resync to the oldest position whose
                // slot may still hold its message (one lap behind the tail hint, less one
                // slot a producer may be claiming now).
                let tail = self.shared(PRODUCER_BLOCK);
                return Ok(self.missed(tail.saturating_sub(slots - 1).max(pos + 1)));
            }
            return Ok(Peeked::Nothing);
        }
        // SAFETY: `len` is the low half of the slot's second word, inside the slot.
        let len = unsafe { self.mem().load(at + 8, Ordering::Relaxed) } & 0xffff_ffff;
        if len > h.record_limit {
            if seq == pos + 1 {
                return Err(Corruption {
                    what: "observed slot length",
                    position: pos,
                    value: len,
                });
            }
            return Ok(self.missed(pos + 1));
        }
        let n = offset(len);
        // Aligned slots (layout 1.7) start their payload on their second line.
        let payload = if h.ring_flags & RING_FLAG_ALIGNED != 0 {
            crate::mpmc::ALIGNED_PAYLOAD_OFFSET
        } else {
            crate::mpmc::SLOT_HEADER
        };
        self.copy(at + offset(payload), n, out);
        // V3: Acquire fence, then the sequence word again: it must still say the slot holds
        // position `pos` — committed or being read (`pos + 1`, any tag), or consumed and not
        // claimed again (`pos + slots` with tag 0). A next-lap producer's claim keeps the
        // sequence `pos + slots` and changes only the tag (M3): a copy during its write is
        // torn. No word goes back to `(pos + slots, 0)` once claimed (an abandon or a repair
        // moves it a lap on), so the re-read proves no claim happened during the copy.
        fence(Ordering::Acquire);
        // SAFETY: as in `acquire`.
        let again = unsafe { self.mem().load(at, Ordering::Relaxed) };
        let (seq2, tag2) = (again >> 8, again & 0xff);
        let still = seq2 == pos + 1 || (seq2 == pos + slots && tag2 == 0);
        if !still || n < trailer {
            return Ok(self.missed(pos + 1));
        }
        out.truncate(n - trailer);
        self.pos = pos + 1;
        Ok(Peeked::Message { position: pos })
    }
}
