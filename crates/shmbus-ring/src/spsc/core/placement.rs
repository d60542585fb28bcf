//! Where an aligned ring's producer puts a record (PROTOCOL §4.2 "Aligned payloads"): the skip
//! record before a payload that starts on a line (D67 from 256 bytes, D89 from 192 bytes).

use super::ProducerCore;
use crate::frame::HEADER_SIZE;
use crate::sync::Memory;

/// Where an aligned ring's producer puts payloads (PROTOCOL §4.2): payloads of `from` bytes
/// and more start on a multiple of `boundary` (a power of two from 16 to 64), and so do
/// payloads of `free_from` (at most `from`) bytes up to `from`, on a ring without a message
/// bound whose record limit is at least `from`, where the record then touches no more
/// `boundary`-sized lines than packed (D89).
#[derive(Debug, Clone, Copy)]
pub struct Align {
    // Two `u32`s, so that `Geometry` keeps its size (D89).
    pub(crate) free_from: u32,
    pub(crate) from: u32,
    pub(crate) boundary: u64,
}

impl<M: Memory> ProducerCore<M> {
    /// The bytes of a skip record to put at `at` before a record of `len` payload bytes
    /// (`size` in all), so that
    /// its payload starts on the ring's boundary: 0 for none (not an aligned ring, a small
    /// record, a record below `from` that [`packs_mid_size`](Self::packs_mid_size), already
    /// aligned, or no room in a lap).
    #[inline(always)]
    pub(super) fn skip_before(&self, at: u64, len: u64, size: u64) -> u64 {
        let Some(a) = self.g.aligned else { return 0 };
        if len < u64::from(a.free_from) || self.pack {
            return 0;
        }
        let into = (at + HEADER_SIZE) & (a.boundary - 1);
        let skip = if into == 0 { 0 } else { a.boundary - into };
        // Below `from`, only on a ring without a message bound (a bounded ring is sized for its
        // bound's records without skips below `from`: `Spsc::sized_for`), and only where the
        // record touches no more lines aligned than packed (D89).
        if len < u64::from(a.from) && skip != 0 && self.packs_mid_size(at, len, a) {
            return 0;
        }
        if skip + size + HEADER_SIZE > self.g.cap {
            0
        } else {
            skip
        }
    }

    /// Whether a record of `len` payload bytes (from `free_from` up to `from`) at `at` stays
    /// packed: on a bounded ring, or one whose record limit is below `from` (a ring
    /// `Spsc::sized_for` sized without skip room), always; else where it touches fewer
    /// `boundary`-sized lines packed (its header at `at`, its payload right after) than with
    /// its payload moved onto the next boundary (the skip record and the header in `at`'s
    /// line, the payload on its own lines).
    #[inline(always)]
    fn packs_mid_size(&self, at: u64, len: u64, a: Align) -> bool {
        let packed = ((at & (a.boundary - 1)) + HEADER_SIZE + len).div_ceil(a.boundary);
        let aligned = 1 + len.div_ceil(a.boundary);
        self.g.limit != 0 || self.g.max_record < u64::from(a.from) || packed < aligned
    }
}
