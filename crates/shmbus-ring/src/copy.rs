//! Copies between a ring's memory and a caller's buffer: the one place that chooses how bytes
//! move, by size and by where source and destination sit in their pages (DECISIONS D9, D66,
//! D79).
//!
//! - Up to 32 bytes: inline, as two overlapping pairs of unaligned loads and stores, so the
//!   small messages of a round trip make no call to `memcpy` (which glibc reaches through the
//!   PLT, with a dispatch on length).
//! - Up to 2 KiB: `memcpy`, whose vector loop runs below glibc's `rep movsb` threshold.
//! - Larger: one `memcpy` (glibc's `rep movsb` path, which streams between cores best: on the
//!   2-vCPU EPYC VM a 4 KiB message streamed at 8.0–8.5 M msgs/s through one call against
//!   5.8–6.2 M through two 2 KiB calls) **unless** source and destination sit within 64
//!   bytes of each other's page offset *and* this CPU is one where `rep movsb` runs about ten
//!   times slower there (AMD Zen 3, D9): there the copy goes in 2 KiB pieces, each below the
//!   threshold. Whether the CPU is one of those is measured once per process ([`trap`],
//!   D79): on a CPU without the trap the pieces only cost (10–20% of the 4 KiB streaming rate
//!   on the Zen 4 VM, wherever a record met the user's buffer at a near offset).

mod trap;

/// Below this, glibc (2.36, x86-64) copies with vector loops; at and above its tunable
/// `x86_rep_movsb_threshold` (2112 bytes on the EPYC VM) it uses `rep movsb`.
const PIECE: usize = 2048;

/// Distances of page offsets (either way) under which `rep movsb` is slow (D9 measured it at
/// 8, 16 and 24 bytes, and fast at 0 and 32; 64 keeps a margin).
const NEAR: usize = 64;

/// Copies `len` bytes from `src` to `dst`.
///
/// # Safety
///
/// As for [`std::ptr::copy_nonoverlapping`]: `src` readable and `dst` writable for `len`
/// bytes, the ranges disjoint.
#[inline(always)]
pub(crate) unsafe fn copy(src: *const u8, dst: *mut u8, len: usize) {
    if len <= 32 {
        // SAFETY: the caller's contract, `len <= 32`.
        unsafe { copy_small(src, dst, len) };
    } else if len <= PIECE {
        // SAFETY: the caller's contract.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, len) };
    } else {
        // SAFETY: the caller's contract.
        unsafe { copy_large(src, dst, len) };
    }
}

/// `len <= 32` bytes, inline: the first and the last 16 (or 8, 4, 1) bytes of the range,
/// overlapping in the middle when `len` is not a power of two.
///
/// # Safety
///
/// As for [`copy`], with `len <= 32`.
#[inline(always)]
unsafe fn copy_small(src: *const u8, dst: *mut u8, len: usize) {
    /// Copies one `T` at `src + at` to `dst + at`, unaligned.
    ///
    /// # Safety
    ///
    /// `at + size_of::<T>() <= len` for the caller's `len`.
    #[inline(always)]
    unsafe fn pair<T: Copy>(src: *const u8, dst: *mut u8, at: usize) {
        // SAFETY: in bounds by the contract; unaligned accesses of a plain-data type.
        unsafe {
            let v = std::ptr::read_unaligned(src.add(at).cast::<T>());
            std::ptr::write_unaligned(dst.add(at).cast::<T>(), v);
        }
    }
    // SAFETY: in every arm each access lies within `[0, len)`: the first at 0, the second
    // ending exactly at `len`, both of a width at most `len`.
    unsafe {
        if len >= 16 {
            pair::<[u8; 16]>(src, dst, 0);
            pair::<[u8; 16]>(src, dst, len - 16);
        } else if len >= 8 {
            pair::<u64>(src, dst, 0);
            pair::<u64>(src, dst, len - 8);
        } else if len >= 4 {
            pair::<u32>(src, dst, 0);
            pair::<u32>(src, dst, len - 4);
        } else if len > 0 {
            pair::<u8>(src, dst, 0);
            pair::<u8>(src, dst, len / 2);
            pair::<u8>(src, dst, len - 1);
        }
    }
}

/// More than [`PIECE`] bytes: one call, or pieces when the page offsets are near on a CPU
/// where that is slow (see the module docs).
///
/// # Safety
///
/// As for [`copy`].
#[cold]
#[inline(never)]
unsafe fn copy_large(src: *const u8, dst: *mut u8, len: usize) {
    if pages_near(src, dst) && trap::near_is_slow() {
        // SAFETY: the caller's contract.
        unsafe { copy_pieces(src, dst, len) };
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, len) };
    }
}

/// `len` bytes in calls of at most [`PIECE`] bytes.
///
/// # Safety
///
/// As for [`copy`].
unsafe fn copy_pieces(src: *const u8, dst: *mut u8, len: usize) {
    let mut done = 0;
    while done < len {
        let n = PIECE.min(len - done);
        // SAFETY: `done + n <= len`, within the caller's ranges.
        unsafe { std::ptr::copy_nonoverlapping(src.add(done), dst.add(done), n) };
        done += n;
    }
}

/// Whether the page offsets of `a` and `b` lie within [`NEAR`] bytes of each other (either
/// way, wrapping around the page).
#[inline]
fn pages_near(a: *const u8, b: *mut u8) -> bool {
    const PAGE: usize = 4096;
    let d = (b as usize).wrapping_sub(a as usize) % PAGE;
    !(NEAR..=PAGE - NEAR).contains(&d)
}

#[cfg(test)]
mod tests {
    use super::{copy, copy_pieces, pages_near};

    #[test]
    fn every_length_and_offset_copies_exactly_its_bytes() {
        let src: Vec<u8> = (0..13000u32)
            .map(|i| (i * 7 + 3).to_le_bytes()[0])
            .collect();
        // Both ways a large copy can go, whichever this CPU's measured verdict picks.
        let ways: [(&str, CopyFn); 2] = [("copy", copy), ("pieces", copy_pieces)];
        for (way, f) in ways {
            every_length_and_offset_by(&src, way, f);
        }
    }

    /// A copy function under test.
    type CopyFn = unsafe fn(*const u8, *mut u8, usize);

    fn every_length_and_offset_by(src: &[u8], way: &str, f: CopyFn) {
        for len in (0..=70).chain([2047, 2048, 2049, 2112, 4088, 4096, 8191]) {
            for (so, doff) in [(0, 0), (1, 0), (0, 3), (5, 9), (8, 16), (0, 4040), (17, 2)] {
                let mut dst = vec![0xEEu8; 13000];
                // SAFETY: both ranges are inside their vectors (lengths checked by the slices
                // below), and the vectors are distinct.
                unsafe {
                    f(
                        src[so..so + len].as_ptr(),
                        dst[doff..doff + len].as_mut_ptr(),
                        len,
                    );
                };
                assert_eq!(
                    &dst[doff..doff + len],
                    &src[so..so + len],
                    "{way}: len {len} at {so}/{doff}"
                );
                assert!(
                    dst[..doff].iter().all(|&b| b == 0xEE),
                    "{way}: wrote before, len {len}"
                );
                assert!(
                    dst[doff + len..].iter().all(|&b| b == 0xEE),
                    "{way}: wrote after, len {len}"
                );
            }
        }
    }

    #[test]
    fn page_offsets_are_near_within_64_bytes_either_way() {
        let at = |a: usize, b: usize| pages_near(a as *const u8, b as *mut u8);
        assert!(at(4096, 8192 + 8) && at(8192 + 8, 4096) && at(100, 100) && at(4095, 4096));
        assert!(!at(0, 64) && !at(64, 0) && !at(0, 2048) && !at(40, 4096 + 104));
    }
}
