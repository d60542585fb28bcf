//! The broadcast record header word: the SPSC word (`len`, `kind`) with the record's lap in
//! its top 24 bits (PROTOCOL §8.2).
//!
//! ```text
//! bits 0..32   len    payload bytes
//! bits 32..40  kind   1 data, 2 padding
//! bits 40..64  lap    (position >> log2(capacity)) & 0xFF_FFFF
//! ```

/// The 24-bit lap of position `pos` in a ring of `2^shift` bytes.
#[inline]
pub(crate) const fn lap(pos: u64, shift: u32) -> u64 {
    (pos >> shift) & 0xFF_FFFF
}

/// The header word of a record of `kind` with `len` payload bytes at position `pos`.
#[inline]
pub(crate) const fn encode(len: u32, kind: u32, pos: u64, shift: u32) -> u64 {
    (len as u64) | (((kind & 0xFF) as u64) << 32) | (lap(pos, shift) << 40)
}

/// `(len, kind, lap)` of a header word.
#[inline]
pub(crate) const fn decode(word: u64) -> (u32, u32, u64) {
    #[allow(clippy::cast_possible_truncation)]
    let fields = (word as u32, ((word >> 32) & 0xFF) as u32, word >> 40);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{KIND_DATA, KIND_PADDING};

    #[test]
    fn words_round_trip_and_carry_the_lap() {
        let shift = 12;
        for &(len, kind, pos) in &[
            (0, KIND_DATA, 0),
            (7, KIND_DATA, 4096 * 3 + 8),
            (u32::MAX, KIND_PADDING, (0xFF_FFFF + 2) << 12),
        ] {
            let w = encode(len, kind, pos, shift);
            assert_ne!(w, 0);
            assert_eq!(decode(w), (len, kind, lap(pos, shift)));
        }
        assert_eq!(lap((0xFF_FFFF + 2) << 12, 12), 1);
    }
}

/// Where a broadcast ring's words are inside its memory, and its geometry (validated at
/// create and open).
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    /// The publisher's `tail` (producer block), the data, and the wake words.
    pub(crate) words: crate::ring::Words,
    /// Data bytes, a power of two.
    pub(crate) cap: u64,
    /// `log2(cap)`.
    pub(crate) shift: u32,
    /// The largest record payload.
    pub(crate) max_record: u64,
    /// The offset of the auxiliary region.
    pub(crate) aux: usize,
    /// History records a joiner may ask for, a power of two (the index has twice as many
    /// entries).
    pub(crate) history: u64,
    /// The offset of the history index (`aux + HISTORY` in a segment).
    pub(crate) hist_at: usize,
    /// Its entries: `index_len(history)`, a power of two.
    pub(crate) hist_len: u64,
}

/// What a header word read at a position says (PROTOCOL §8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Word {
    /// Zero: nothing committed there (yet).
    Empty,
    /// A valid record of this lap: its kind, payload length and size in the ring.
    Record { kind: u32, len: u32, size: u64 },
    /// A word of another lap (or bytes that are no header): the position was overwritten,
    /// or never written in this lap.
    OtherLap,
    /// A word of this lap that is no valid record.
    Invalid(crate::error::Corruption),
}

impl Geometry {
    #[inline]
    pub(crate) fn mask(&self) -> u64 {
        self.cap - 1
    }

    /// The memory offset of the word/byte at ring position `pos`.
    #[inline]
    pub(crate) fn at(&self, pos: u64) -> usize {
        self.words.data + crate::conv::offset(pos & self.mask())
    }

    /// The memory offset of `field` of the auxiliary region.
    #[inline]
    pub(crate) fn aux(&self, field: u64) -> usize {
        self.aux + crate::conv::offset(field)
    }

    /// The memory offset of `field` of entry `index`'s cursor line (`index` < 55).
    #[inline]
    pub(crate) fn cursor(&self, index: u64, field: u64) -> usize {
        self.aux(super::aux::CURSORS + index * super::aux::CURSOR_SIZE + field)
    }

    /// The memory offset of the history entry of data record `n`.
    #[inline]
    pub(crate) fn hist(&self, n: u64) -> usize {
        self.hist_at + crate::conv::offset(8 * (n & (self.hist_len - 1)))
    }

    /// The header word this ring's publisher writes for a record at `pos`.
    #[inline]
    pub(crate) fn word(&self, len: u32, kind: u32, pos: u64) -> u64 {
        encode(len, kind, pos, self.shift)
    }

    /// Reads a header word found at `pos` (8-aligned).
    #[inline]
    pub(crate) fn check(&self, pos: u64, word: u64) -> Word {
        use crate::frame::{record_size, HEADER_SIZE, KIND_DATA, KIND_PADDING};
        if word == 0 {
            return Word::Empty;
        }
        let (len, kind, word_lap) = decode(word);
        if word_lap != lap(pos, self.shift) {
            return Word::OtherLap;
        }
        let off = pos & self.mask();
        let invalid = |what| {
            Word::Invalid(crate::error::Corruption {
                what,
                position: pos,
                value: word,
            })
        };
        match kind {
            KIND_DATA => {
                if u64::from(len) > self.max_record {
                    return invalid("record length exceeds the ring's record limit");
                }
                let size = record_size(len.into());
                if off + size > self.cap {
                    return invalid("record crosses the end of the ring");
                }
                Word::Record { kind, len, size }
            }
            KIND_PADDING => {
                if off == 0 || u64::from(len) != self.cap - off - HEADER_SIZE {
                    return invalid("padding record does not end exactly at the end of the ring");
                }
                Word::Record {
                    kind,
                    len,
                    size: self.cap - off,
                }
            }
            _ => invalid("unknown record kind"),
        }
    }
}
