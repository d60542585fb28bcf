//! The common push and pop, each in one piece (D96): the steps of `try_push` and `try_pop`
//! for the case that nearly every message takes, with every other case left to them.
//!
//! A fast step either does exactly what the full step would (the same stores in the same
//! order, the same checks of what it reads) or does nothing and says so; the endpoint then
//! runs the full step, which decides afresh from its own reads. So the fast steps add no
//! state and no outcome: they only keep the common case off the general path's branches
//! (placement, padding, skip records, bound reloads, error values), which cost the round trip
//! a third in the fast placement (DECISIONS D96).

use super::{ConsumerCore, ProducerCore};
use crate::conv::{len_u32, offset, wide};
use crate::endpoint::FastPop;
use crate::frame::{decode, encode, record_size, HEADER_SIZE, KIND_DATA};
use crate::sync::{Memory, Ordering};

impl<M: Memory> ProducerCore<M> {
    /// Whether the ring has neither a message bound nor wake words: then a publication is
    /// its stores alone (`quiet` in both cores).
    pub(super) fn is_quiet(g: &super::Geometry) -> bool {
        g.limit == 0 && g.words.wake.is_none()
    }

    /// The largest payload the fast push takes: the record limit, and on an aligned ring
    /// only payloads below `free_from`, which `skip_before` always places packed.
    pub(super) fn fast_limit(g: &super::Geometry) -> u64 {
        match g.aligned {
            Some(a) => g.max_record.min(u64::from(a.free_from).saturating_sub(1)),
            None => g.max_record,
        }
    }

    /// Places a record of `len` payload bytes, at most `max`, at the tail if that is the
    /// common case: no skip record pending, a record that ends at or before the end of the
    /// ring (no padding), room that the cached `head` already grants, and (bounded rings) a
    /// count under the bound by the cached `taken`. Its start and end; `None` changes nothing,
    /// and the caller takes the general path, which handles every other case. `max` is where
    /// the ring places every payload packed (below [`fast_limit`](Self::fast_limit), or any
    /// size under a packing request).
    #[inline(always)]
    fn fast_place(&self, len: u64, max: u64) -> Option<(u64, u64)> {
        if len > max || self.skip.is_some() {
            return None;
        }
        // No overflow: `len` is at most the record limit, below the capacity.
        let size = record_size(len);
        let start = self.tail;
        let off = start & self.g.mask();
        let end = start + size;
        // As `place_inner`: no padding needed (`size <= to_end`), and `ensure(end + 8)` holds
        // by the cached head (the zero-ahead word included).
        if off + size > self.g.cap || end + HEADER_SIZE - self.cached_head > self.g.cap {
            return None;
        }
        // As `counted_room(0)` without its reload.
        if self.g.limit != 0 && self.sent.wrapping_sub(self.cached_taken) >= self.g.limit {
            return None;
        }
        Some((start, end))
    }

    /// `try_push` when [`fast_place`](Self::fast_place) places the record: whether it pushed
    /// (`false` changes nothing).
    #[inline(always)]
    pub(crate) fn try_push_fast(&mut self, payload: &[u8]) -> bool {
        // Not under a packing request, which only a reservation answers (`place` resets it).
        if self.pack {
            return false;
        }
        let Some((start, end)) = self.fast_place(wide(payload.len()), self.fast_max) else {
            return false;
        };
        // SAFETY: `fast_place` checked, as `place` does, that the record `[start, end)` lies
        // inside the data region and is free space, as is the zero-ahead word at `end` (the
        // consumer's validated `head` at most a lap behind it).
        unsafe {
            self.mem
                .write(self.g.at(start) + offset(HEADER_SIZE), payload);
        };
        crate::crashpoint::hit("spsc.push.written");
        let word = encode(len_u32(payload.len()), KIND_DATA);
        // No skip record is pending (`fast_place`).
        if self.quiet {
            self.publish_quiet(start, end, word);
        } else {
            self.publish(start, end, word, 1);
        }
        true
    }

    /// `reserve` when [`fast_place`](Self::fast_place) places the record: its start.
    #[inline(always)]
    pub(crate) fn try_reserve_fast(&mut self, len: usize) -> Option<u64> {
        let max = if self.pack {
            self.g.max_record
        } else {
            self.fast_max
        };
        let (start, _) = self.fast_place(wide(len), max)?;
        // As `place`: the request is answered.
        self.pack = false;
        Some(start)
    }

    /// Publishes the data record of `len` payload bytes from `start` to `end`: `publish`, with
    /// the stores alone on a ring without a message bound and wake words (`quiet`), whose
    /// count and notification are nothing, and without a skip record pending (the common
    /// case, taken without `publish`'s branches for the others).
    #[inline(always)]
    pub(super) fn publish_data(&mut self, start: u64, end: u64, len: u32) {
        let word = encode(len, KIND_DATA);
        if self.quiet && self.skip.is_none() {
            self.publish_quiet(start, end, word);
        } else {
            self.publish(start, end, word, 1);
        }
    }

    /// `publish` of the data record with header `word` on a `quiet` ring, with no skip record
    /// pending: its stores alone.
    #[inline(always)]
    fn publish_quiet(&mut self, start: u64, end: u64, word: u64) {
        // SAFETY: `end` is free space and `start` this record's header word (the caller's
        // placement: `place` or `fast_place`); both in-bounds aligned data words by `at`.
        unsafe {
            // S1: Relaxed; ordered before the consumer's view by R1 just below.
            self.mem.store(self.g.at(end), 0, Ordering::Relaxed);
            // R1: Release; publishes the payload and the zero-ahead word; pairs with the
            // Acquire load of the header word (A2) in `ConsumerCore::next` / `try_pop_fast`.
            self.mem.store(self.g.at(start), word, Ordering::Release);
        }
        crate::crashpoint::hit("spsc.push.published");
        self.tail = end;
        // S2: Release, as in `publish` (pairs with A9 of the consumer's audit).
        // SAFETY: in-bounds aligned control word (attach contract).
        unsafe { self.mem.store(self.g.words.tail, end, Ordering::Release) };
    }
}

impl<M: Memory> ConsumerCore<M> {
    /// Pops the record at `head` into `buf` if it is the common case: a data record that
    /// `check_header` accepts (within the record limit, not crossing the end of the ring) and
    /// that fits in `buf`. [`FastPop::Empty`] when its header word is 0 (nothing committed);
    /// [`FastPop::Other`] for anything else (padding, a skip record, corruption, a short
    /// buffer), having changed nothing: the caller runs `try_pop`, which reads the header
    /// again and decides.
    #[inline(always)]
    pub(crate) fn try_pop_fast(&mut self, buf: &mut [u8]) -> FastPop {
        let off = self.head & self.g.mask();
        // A2: Acquire; pairs with the producer's Release header store (R1), as in `next`: the
        // payload and the zero-ahead word are visible once the header is.
        // SAFETY: `head` is 8-aligned and validated, so this is an in-bounds aligned data word.
        let word = unsafe {
            self.mem
                .load(self.g.words.data + offset(off), Ordering::Acquire)
        };
        if word == 0 {
            return FastPop::Empty;
        }
        let (len, kind) = decode(word);
        let len = u64::from(len);
        // As `check_header` for a data record, and `try_pop`'s buffer check.
        if kind != KIND_DATA || len > self.g.max_record {
            return FastPop::Other;
        }
        let size = record_size(len);
        let n = offset(len);
        if off + size > self.g.cap || n > buf.len() {
            return FastPop::Other;
        }
        // SAFETY: the record lies inside the data region (`off + size <= cap`), committed by
        // R1 (A2 above); `n` bytes fit in `buf`.
        unsafe {
            self.mem
                .read(self.g.words.data + offset(off + HEADER_SIZE), &mut buf[..n]);
        };
        crate::crashpoint::hit("spsc.pop.read");
        if self.quiet {
            // `advance` for a ring with no message bound (no count) and no wake words.
            self.head += size;
            // R2: Release, as in `publish_head`; pairs with the producer's A1.
            // SAFETY: in-bounds aligned control word (attach contract).
            unsafe {
                self.mem
                    .store(self.g.words.head, self.head, Ordering::Release);
            };
        } else {
            self.taken = self.taken.wrapping_add(1);
            // R2 (and C2, and the notification), as `try_pop`.
            self.advance(size);
        }
        FastPop::Popped(n)
    }
}
