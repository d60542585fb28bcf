//! The one conversion point between the protocol's `u64` positions, lengths and offsets (what
//! shared memory holds, the same in 32-bit and 64-bit processes) and `usize` memory offsets.
//!
//! Every value converted here has been bounded before: a layout constant (below one page), an
//! offset inside a validated mapping, or a length checked against a ring limit. On a 64-bit
//! target these conversions compile to nothing; on a 32-bit target a value that cannot be an
//! offset saturates, so a bounds check downstream refuses it rather than wrapping into range.

/// A layout constant or an offset inside a mapping, as a memory offset.
#[inline]
pub(crate) const fn offset(v: u64) -> usize {
    if v > usize::MAX as u64 {
        usize::MAX
    } else {
        // Lossless: checked just above.
        #[allow(clippy::cast_possible_truncation)]
        let o = v as usize;
        o
    }
}

/// A memory length or offset as a protocol `u64` (lossless on every supported target).
#[inline]
pub(crate) const fn wide(v: usize) -> u64 {
    // `usize` is at most 64 bits on every target Rust supports.
    v as u64
}

/// A payload length already checked against a ring limit (at most `u32::MAX`), as the `u32`
/// a record header or slot holds.
#[inline]
pub(crate) fn len_u32(len: usize) -> u32 {
    debug_assert!(u32::try_from(len).is_ok());
    // Lossless: every caller checked `len` against a ring limit below 2^32 (the hot path keeps
    // no second check).
    #[allow(clippy::cast_possible_truncation)]
    let l = len as u32;
    l
}

/// `a - b` as a signed difference, for sequence words and positions (both below 2^56, so the
/// difference is exact).
#[inline]
pub(crate) fn signed_diff(a: u64, b: u64) -> i64 {
    debug_assert!(a < 1 << 62 && b < 1 << 62);
    // Exact for values below 2^63 (checked above in debug builds; sequence words are 56 bits).
    #[allow(clippy::cast_possible_wrap)]
    let d = (a as i64).wrapping_sub(b as i64);
    d
}
