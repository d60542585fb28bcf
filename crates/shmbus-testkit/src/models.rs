//! Reference models of the two rings: executable statements of where records go and what a
//! consumer sees next, written from `docs/PROTOCOL.md` and independent of the ring code. The
//! model tests (`crates/shmbus-ring/tests/spsc_model.rs`, `mpmc_model.rs`) and the `ring_ops`
//! fuzz target check every ring operation against them, through the drivers in
//! [`crate::ops`].

use shmbus_ring::frame::record_size;
use std::collections::VecDeque;

/// The SPSC ring, stated directly: the ring holds the bytes `[head, tail)`; a record that
/// would cross the end of the data area is preceded by padding to the end; a placement needs
/// one free word after it. On an aligned ring (layout 1.5) a record of 256 payload bytes or
/// more placed by a single push or reservation is preceded by a skip record of 8 to 56 bytes
/// that puts its payload on a 64-byte boundary, unless already there or unless the two would
/// not fit in a lap; the skip goes (and is consumed) with its record. From 192 bytes, where
/// the record limit is 256 or more, the same where the record then touches no more lines
/// (D89).
#[derive(Debug, Clone)]
pub struct SpscModel {
    cap: u64,
    head: u64,
    tail: u64,
    /// `Some(payload)` for data, `None` for padding; with the bytes each occupies (a data
    /// record's include the skip before it).
    ring: VecDeque<(Option<Vec<u8>>, u64)>,
    next_seq: u64,
    aligned: bool,
    /// The skip placed before the record being placed.
    skip: u64,
    /// Payloads of 192 to 255 bytes may be aligned: the record limit is 256 or more.
    mid_size: bool,
}

impl SpscModel {
    /// An empty ring of `cap` data bytes.
    pub fn new(cap: u64) -> SpscModel {
        SpscModel {
            cap,
            head: 0,
            tail: 0,
            ring: VecDeque::new(),
            next_seq: 0,
            aligned: false,
            skip: 0,
            mid_size: true,
        }
    }

    /// An empty aligned ring of `cap` data bytes.
    pub fn aligned(cap: u64) -> SpscModel {
        SpscModel {
            aligned: true,
            ..SpscModel::new(cap)
        }
    }

    /// This model with the ring's record limit `max`: below 256 bytes, no payload shorter
    /// than 256 bytes is aligned (a ring `Spsc::sized_for` sized without skip room; D89).
    pub fn record_limit(self, max: u64) -> SpscModel {
        SpscModel {
            mid_size: max >= 256,
            ..self
        }
    }

    /// The skip record before a record of `len` payload bytes (`size` in all) at `at`:
    /// payloads of 256 bytes and more start on a line; from 192 bytes, only where the record
    /// then touches no more lines than packed (DECISIONS D89).
    fn skip_before(&self, at: u64, len: usize, size: u64) -> u64 {
        if !self.aligned || len < 192 {
            return 0;
        }
        let skip = (64 - (at + 8) % 64) % 64;
        // The lines a record touches: from the line of its first byte to that of its last.
        let lines = |first: u64, last: u64| last / 64 - first / 64 + 1;
        let len64 = len as u64;
        if len < 256
            && skip != 0
            && (!self.mid_size
                || lines(at, at + 8 + len64 - 1) < lines(at, at + skip + 8 + len64 - 1))
        {
            return 0;
        }
        if skip + size + 8 > self.cap {
            0
        } else {
            skip
        }
    }

    fn fits(&self, end: u64) -> bool {
        end + 8 - self.head <= self.cap
    }

    /// Places a record of `len` payload bytes as the ring must: padding first if it would
    /// cross the end (the padding stays even when the record itself then does not fit).
    /// Returns whether the record fits; [`SpscModel::commit`] then adds it.
    pub fn place(&mut self, len: usize) -> bool {
        self.place_with(len, true)
    }

    /// As [`SpscModel::place`] for a record of a batch push, which never skips.
    pub fn place_batched(&mut self, len: usize) -> bool {
        self.place_with(len, false)
    }

    fn place_with(&mut self, len: usize, may_skip: bool) -> bool {
        let size = record_size(len as u64);
        let skip_at = |m: &Self| {
            if may_skip {
                m.skip_before(m.tail, len, size)
            } else {
                0
            }
        };
        let mut skip = skip_at(self);
        let to_end = self.cap - self.tail % self.cap;
        self.skip = 0;
        if skip + size > to_end {
            if !self.fits(self.tail + to_end) {
                return false;
            }
            self.ring.push_back((None, to_end));
            self.tail += to_end;
            skip = skip_at(self);
        }
        self.skip = skip;
        self.fits(self.tail + skip + size)
    }

    /// Commits a record at the tail (after a [`SpscModel::place`] that returned true), with
    /// the skip placed before it.
    pub fn commit(&mut self, payload: Vec<u8>) {
        let size = std::mem::take(&mut self.skip) + record_size(payload.len() as u64);
        self.ring.push_back((Some(payload), size));
        self.tail += size;
    }

    /// What a consumer operation sees first (it consumes leading padding); `None` if empty.
    pub fn front(&mut self) -> Option<&Vec<u8>> {
        while let Some((None, size)) = self.ring.front() {
            self.head += *size;
            self.ring.pop_front();
        }
        self.ring.front().and_then(|(p, _)| p.as_ref())
    }

    /// Consumes the next record, and the padding before it.
    pub fn pop(&mut self) -> Option<Vec<u8>> {
        self.front()?;
        let (p, size) = self.ring.pop_front()?;
        self.head += size;
        p
    }

    /// The bytes between the published positions, `tail - head` (what
    /// `SpscRing::used_bytes` must report).
    pub fn used(&self) -> u64 {
        self.tail - self.head
    }

    /// A fresh payload of `len` bytes, different from the previous ones.
    pub fn payload(&mut self, len: usize) -> Vec<u8> {
        let seq = self.next_seq;
        self.next_seq += 1;
        (0..len)
            .map(|i| (seq as u8).wrapping_mul(31).wrapping_add(i as u8))
            .collect()
    }
}

/// What an MPMC position holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A committed message.
    Msg(Vec<u8>),
    /// A position claimed and given up (a dropped `WriteSlot`, a bulk push that did not fit):
    /// consumers walk past it.
    Abandoned,
}

/// The MPMC ring: positions `[head, tail)` and what each holds. A producer at `tail` may
/// claim it when the slot's previous occupant, position `tail - slots`, is consumed or
/// abandoned.
#[derive(Debug, Clone)]
pub struct MpmcModel {
    slots: u64,
    head: u64,
    tail: u64,
    entries: VecDeque<Entry>,
    next: u8,
    /// The position after the last message consumed: the ring's head hint is at least this
    /// (the consumer that claimed it raised the hint past it), wherever the model's `head`.
    after_last: u64,
}

impl MpmcModel {
    /// An empty ring of `slots` slots.
    pub fn new(slots: u64) -> MpmcModel {
        MpmcModel {
            slots,
            head: 0,
            tail: 0,
            entries: VecDeque::new(),
            next: 0,
            after_last: 0,
        }
    }

    /// Positions from the last message consumed to the tail: at most what a consumer's walk
    /// from the head hint has to pass to find the next message. [`MpmcModel::len`] can be
    /// less: a pop that finds no message in the model drops the abandoned positions it holds,
    /// which the ring's walks pass only a bounded number at a time.
    pub fn to_walk(&self) -> u64 {
        self.tail - self.after_last
    }

    /// The number of slots.
    pub fn slots(&self) -> u64 {
        self.slots
    }

    /// Positions between head and tail (messages and abandoned positions).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether a producer can claim the next position now.
    pub fn can_claim(&self) -> bool {
        self.tail < self.head + self.slots
            || self.entries[(self.tail - self.slots - self.head) as usize] == Entry::Abandoned
    }

    /// A fresh message of `len` bytes, different from the previous ones.
    pub fn msg(&mut self, len: usize) -> Vec<u8> {
        self.next = self.next.wrapping_add(1);
        (0..len).map(|i| self.next.wrapping_add(i as u8)).collect()
    }

    /// Claims the next position and fills it with `e` (after [`MpmcModel::can_claim`]).
    pub fn push(&mut self, e: Entry) {
        self.entries.push_back(e);
        self.tail += 1;
    }

    /// Marks every position from the `start`-th one between head and tail on as abandoned
    /// (a bulk push that claimed them and then found the ring full).
    pub fn abandon_from(&mut self, start: usize) {
        for e in self.entries.iter_mut().skip(start) {
            *e = Entry::Abandoned;
        }
    }

    /// Consumes the next message, walking past abandoned positions.
    pub fn pop(&mut self) -> Option<Vec<u8>> {
        while let Some(e) = self.entries.pop_front() {
            self.head += 1;
            if let Entry::Msg(m) = e {
                self.after_last = self.head;
                return Some(m);
            }
        }
        None
    }

    /// Whether no message is left (abandoned positions only, or nothing).
    pub fn is_empty(&self) -> bool {
        self.entries.iter().all(|e| *e == Entry::Abandoned)
    }
}
