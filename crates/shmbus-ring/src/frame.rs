//! SPSC record framing: an 8-byte header word `{ len: u32, kind: u32 }` (little-endian, `len`
//! in the low half), then the payload, padded to 8 bytes. The header is written as one atomic
//! `u64`; zero means "nothing committed here yet".

/// Alignment of every record, and the size of the header word.
pub const RECORD_ALIGN: u64 = 8;
/// Size of a record header.
pub const HEADER_SIZE: u64 = 8;
/// Header `kind` of a data record.
pub const KIND_DATA: u32 = 1;
/// Header `kind` of a padding record: it fills the rest of the lap, `len` = bytes after it.
pub const KIND_PADDING: u32 = 2;
/// Header `kind` of a skip record (layout 1.5, rings with
/// [`RING_FLAG_ALIGNED`](crate::layout::RING_FLAG_ALIGNED) only): `len` (a multiple of 8, at
/// most [`MAX_SKIP_LEN`]) bytes follow it that hold nothing, and a data record follows them,
/// committed by the skip header's store (PROTOCOL §4.2). It moves that record's payload onto a
/// cache-line boundary.
pub const KIND_SKIP: u32 = 3;
/// The largest `len` of a skip record: a skip moves the next header at most 56 bytes on.
pub const MAX_SKIP_LEN: u64 = 48;
/// The payload length from which an SPSC producer on an aligned ring starts payloads on a
/// [`PAYLOAD_ALIGN`] boundary (below it, a message shares lines with its neighbours anyway).
pub const ALIGN_FROM: u64 = 256;
/// The payload length from which an SPSC producer on an aligned ring without a message bound
/// starts a payload shorter than [`ALIGN_FROM`] on a [`PAYLOAD_ALIGN`] boundary *where that
/// costs no line*: where the record, skip record included, touches no more cache lines than
/// packed (DECISIONS D89). A stream of 192-byte messages then runs on whole lines, one line for
/// each skip and header and three for each payload; a stream of 248-byte records that start on
/// a line stays packed. A bounded ring (every typed channel), and one whose record limit is
/// below [`ALIGN_FROM`] (`Kind::config_for` sizes those without skip room), packs these sizes.
pub const ALIGN_IF_FREE_FROM: u64 = 192;
/// The boundary an aligned ring's producer puts large payloads on: a cache line.
pub const PAYLOAD_ALIGN: u64 = 64;

/// Rounds `n` up to a multiple of [`RECORD_ALIGN`].
#[inline]
pub const fn align_up(n: u64) -> u64 {
    (n + (RECORD_ALIGN - 1)) & !(RECORD_ALIGN - 1)
}

/// Bytes a data record with a `len`-byte payload occupies in the ring.
#[inline]
pub const fn record_size(len: u64) -> u64 {
    HEADER_SIZE + align_up(len)
}

/// The header word for a record.
#[inline]
pub const fn encode(len: u32, kind: u32) -> u64 {
    (len as u64) | ((kind as u64) << 32)
}

/// `(len, kind)` of a header word.
#[inline]
pub const fn decode(word: u64) -> (u32, u32) {
    // The two halves of the word, by design.
    #[allow(clippy::cast_possible_truncation)]
    let halves = (word as u32, (word >> 32) as u32);
    halves
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_word_round_trips_and_is_never_zero_for_a_real_record() {
        for &(len, kind) in &[(0, KIND_DATA), (7, KIND_DATA), (u32::MAX, KIND_PADDING)] {
            let w = encode(len, kind);
            assert_ne!(w, 0);
            assert_eq!(decode(w), (len, kind));
        }
        assert_eq!(encode(5, KIND_DATA).to_le_bytes()[..4], 5u32.to_le_bytes());
    }

    #[test]
    fn record_sizes_are_aligned() {
        assert_eq!(record_size(0), 8);
        assert_eq!(record_size(1), 16);
        assert_eq!(record_size(8), 16);
        assert_eq!(record_size(9), 24);
    }
}
