//! Copies between a ring's memory and a caller's buffer: the one place that chooses how bytes
//! move, by size, by direction and by where source and destination sit in their pages
//! (DECISIONS D9, D66, D79, D84).
//!
//! - Up to 32 bytes: inline, as two overlapping pairs of unaligned loads and stores, so the
//!   small messages of a round trip make no call to `memcpy` (which glibc reaches through the
//!   PLT, with a dispatch on length). Except into a ring from 16 bytes:
//! - Into a ring, from 16 to [`WORDS_IN`] bytes: inline, 8 bytes at a time (D97). A caller
//!   that has just written its message, as callers do, stored it 8 bytes or fewer at a time;
//!   a wider load spanning two of those stores cannot take its bytes from them and waits until
//!   they reach the cache, behind the stores of earlier messages to lines the consumer holds
//!   (D92). Streaming 16 to 192 bytes gained 1.1–1.7× with it.
//! - Mid-size, up to 2 KiB: `memcpy` (glibc's vector loop, below its 2112-byte `rep movsb`
//!   threshold), except into a ring from [`STRING_IN`] bytes, where a `rep movsb` of our own
//!   goes on CPUs with fast string moves (ERMS, D84). Between cores, on the Zen 4 VM, the
//!   ring then streamed 1 KiB at 26.6–28.2 M msgs/s against 20.4–24.0 M (fast placement), and
//!   5.1 M against 4.3–4.5 M (slow placement); its round trip moved by about 2% (fast) or
//!   dropped 5% (slow). Out of a ring `rep movsb` cost the round trip, so copies out keep
//!   `memcpy`.
//! - Larger: one `memcpy` (glibc's `rep movsb` path, which streams between cores best: on the
//!   2-vCPU EPYC VM a 4 KiB message streamed at 8.0–8.5 M msgs/s through one call against
//!   5.8–6.2 M through two 2 KiB calls) **unless** source and destination sit within 64
//!   bytes of each other's page offset *and* this CPU is one where `rep movsb` runs about ten
//!   times slower there (AMD Zen 3, D9): there the copy goes in 2 KiB pieces, each below the
//!   threshold. Whether the CPU is one of those is measured once per process ([`trap`],
//!   D79): on a CPU without the trap the pieces only cost (10–20% of the 4 KiB streaming rate
//!   on the Zen 4 VM, wherever a record met the user's buffer at a near offset). On such a
//!   CPU our own mid-size `rep movsb` gives way to `memcpy` at near offsets too.

mod trap;

/// Below this, glibc (2.36, x86-64) copies with vector loops; at and above its tunable
/// `x86_rep_movsb_threshold` (2112 bytes on the EPYC VM) it uses `rep movsb`.
const PIECE: usize = 2048;

/// Distances of page offsets (either way) under which `rep movsb` is slow (D9 measured it at
/// 8, 16 and 24 bytes, and fast at 0 and 32; 64 keeps a margin).
const NEAR: usize = 64;

/// Into a ring's memory, mid-size copies from this many bytes use `rep movsb` (D84): it
/// lost at 512 bytes (33 against 41 M msgs/s) and won from 768 (30 against 27 M).
pub(crate) const STRING_IN: usize = 768;
/// Out of a ring's memory, never (D84): streaming gained 3–16% from 512 bytes, but the
/// round trip lost about 6% at 512 bytes and the typed channel's about 9% at 1 KiB.
const STRING_OUT: usize = usize::MAX;

/// Into a ring's memory, copies from 16 bytes to this many go 8 bytes at a time (D97): SPSC
/// streaming gained 1.4× at 16 B, 1.7× at 32 and 64 B, 1.3× at 96 and 128 B and 1.1× at
/// 192 B, and was level at 256 and 512 B.
const WORDS_IN: usize = 256;
/// Out of a ring's memory, never: what the consumer loads was stored by another core, and
/// what the caller then loads from its buffer lies inside one of the copy's stores.
const WORDS_OUT: usize = 0;

/// Copies `len` bytes from `src`, a caller's buffer, into `dst`, a ring's memory.
///
/// # Safety
///
/// As for [`std::ptr::copy_nonoverlapping`]: `src` readable and `dst` writable for `len`
/// bytes, the ranges disjoint.
#[inline(always)]
pub(crate) unsafe fn copy_in(src: *const u8, dst: *mut u8, len: usize) {
    // SAFETY: the caller's contract.
    unsafe { copy::<STRING_IN, WORDS_IN>(src, dst, len) }
}

/// Copies `len` bytes from `src`, a ring's memory, into `dst`, a caller's buffer.
///
/// # Safety
///
/// As for [`copy_in`].
#[inline(always)]
pub(crate) unsafe fn copy_out(src: *const u8, dst: *mut u8, len: usize) {
    // SAFETY: the caller's contract.
    unsafe { copy::<STRING_OUT, WORDS_OUT>(src, dst, len) }
}

/// How a copy of some length goes ([`path`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// Inline, [`copy_small`].
    Small,
    /// Inline, [`copy_words`].
    Words,
    /// One `memcpy`.
    Memcpy,
    /// [`copy_mid`]: `rep movsb` where that is fast.
    Mid,
    /// [`copy_large`].
    Large,
}

/// How a copy of `len` bytes goes when mid-size copies take `rep movsb` from `string` bytes
/// and copies from 16 to `words` bytes go 8 bytes at a time.
#[inline(always)]
const fn path(len: usize, string: usize, words: usize) -> Path {
    if len >= 16 && len <= words {
        Path::Words
    } else if len <= 32 {
        Path::Small
    } else if len > PIECE {
        Path::Large
    } else if len >= string {
        Path::Mid
    } else {
        Path::Memcpy
    }
}

/// Copies `len` bytes from `src` to `dst`, mid-size copies by `rep movsb` from `STRING`
/// bytes, copies from 16 to `WORDS` bytes 8 bytes at a time.
///
/// # Safety
///
/// As for [`copy_in`].
#[inline(always)]
unsafe fn copy<const STRING: usize, const WORDS: usize>(src: *const u8, dst: *mut u8, len: usize) {
    match path(len, STRING, WORDS) {
        // SAFETY: the caller's contract, and `len <= 32` (what `Path::Small` means).
        Path::Small => unsafe { copy_small(src, dst, len) },
        // SAFETY: the caller's contract, and `len >= 16` (what `Path::Words` means).
        Path::Words => unsafe { copy_words(src, dst, len) },
        // SAFETY: the caller's contract.
        Path::Memcpy => unsafe { std::ptr::copy_nonoverlapping(src, dst, len) },
        // SAFETY: the caller's contract.
        Path::Mid => unsafe { copy_mid(src, dst, len) },
        // SAFETY: the caller's contract.
        Path::Large => unsafe { copy_large(src, dst, len) },
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

/// `len >= 8` bytes, inline, by 8-byte loads and stores from the start, the last one ending
/// at `len` (overlapping the one before when `len` is not a multiple of 8). Each load but
/// that last overlapping one lies within one 8-byte store of a caller that wrote its message
/// by words from its start, so it takes its bytes from that store (D97).
///
/// # Safety
///
/// As for [`copy`], with `len >= 8`.
#[inline(always)]
unsafe fn copy_words(src: *const u8, dst: *mut u8, len: usize) {
    /// Copies the 8 bytes at `src + at` to `dst + at`, unaligned.
    ///
    /// # Safety
    ///
    /// `at + 8 <= len` for the caller's `len`.
    #[inline(always)]
    unsafe fn word(src: *const u8, dst: *mut u8, at: usize) {
        // SAFETY: in bounds by the contract; unaligned accesses of a plain-data type.
        unsafe {
            let v = load_word(src.add(at));
            std::ptr::write_unaligned(dst.add(at).cast::<u64>(), v);
        }
    }
    let mut at = 0;
    // Four words a turn while 32 bytes remain, then one at a time.
    while at + 32 <= len {
        // SAFETY: `at + 32 <= len`.
        unsafe {
            word(src, dst, at);
            word(src, dst, at + 8);
            word(src, dst, at + 16);
            word(src, dst, at + 24);
        }
        at += 32;
    }
    while at + 8 < len {
        // SAFETY: `at + 8 < len`.
        unsafe { word(src, dst, at) };
        at += 8;
    }
    // SAFETY: `len >= 8` (the contract), so `len - 8` is a start within it.
    unsafe { word(src, dst, len - 8) };
}

/// The 8 bytes at `p`, unaligned, by one 8-byte load: on x86-64 by `asm!`, so that the
/// compiler does not merge neighbouring loads into the wider ones [`copy_words`] exists to
/// avoid.
///
/// # Safety
///
/// `p` readable for 8 bytes.
#[inline(always)]
unsafe fn load_word(p: *const u8) -> u64 {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        let v: u64;
        // SAFETY: the contract makes the 8 bytes readable; `mov` from memory reads them and
        // nothing else (x86-64 allows it unaligned), writes no memory (`readonly`), touches
        // no stack or flags; its result depends only on its input and memory (`pure`).
        unsafe {
            std::arch::asm!(
                "mov {v}, qword ptr [{p}]",
                p = in(reg) p,
                v = out(reg) v,
                options(nostack, preserves_flags, readonly, pure)
            );
        }
        v
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    // SAFETY: the contract; an unaligned read of a plain-data type.
    unsafe {
        std::ptr::read_unaligned(p.cast::<u64>())
    }
}

/// A mid-size copy (up to [`PIECE`] bytes, from the direction's threshold): `rep movsb`
/// where the CPU moves strings fast and its near page offsets are not a trap, else `memcpy`.
///
/// # Safety
///
/// As for [`copy_in`].
#[inline(never)]
unsafe fn copy_mid(src: *const u8, dst: *mut u8, len: usize) {
    if string_moves_fast() && !(pages_near(src, dst) && trap::near_is_slow()) {
        // SAFETY: the caller's contract.
        unsafe { rep_movsb(src, dst, len) };
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, len) };
    }
}

/// Whether `rep movsb` is the CPU's fast string move (ERMS); std caches the answer.
#[inline]
pub(super) fn string_moves_fast() -> bool {
    #[cfg(all(target_arch = "x86_64", not(any(loom, miri))))]
    {
        std::arch::is_x86_feature_detected!("ermsb")
    }
    #[cfg(not(all(target_arch = "x86_64", not(any(loom, miri)))))]
    {
        false
    }
}

/// `len` bytes by one `rep movsb`.
///
/// # Safety
///
/// As for [`copy_in`]. The instruction is valid on every x86-64 CPU; [`string_moves_fast`]
/// says where it is also fast, which is why the copy paths ask it first.
#[inline(always)]
pub(super) unsafe fn rep_movsb(src: *const u8, dst: *mut u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `rep movsb` copies `rcx` bytes from `rsi` to `rdi`, forwards (Rust guarantees
    // the direction flag clear on entry to `asm!`), and only those bytes: the caller's
    // contract makes both ranges valid and disjoint. It touches no stack and changes no
    // flags; the three registers it advances are marked clobbered. No `nomem`/`readonly`: it
    // writes memory, and the block stays a compiler barrier before the publishing store.
    unsafe {
        std::arch::asm!(
            "rep movsb",
            inout("rcx") len => _,
            inout("rsi") src => _,
            inout("rdi") dst => _,
            options(nostack, preserves_flags)
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: the caller's contract.
    unsafe {
        std::ptr::copy_nonoverlapping(src, dst, len)
    };
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
    use super::{
        copy_in, copy_mid, copy_out, copy_pieces, copy_words, pages_near, path, rep_movsb,
        string_moves_fast, Path, STRING_IN, STRING_OUT, WORDS_IN, WORDS_OUT,
    };

    #[test]
    fn every_length_and_offset_copies_exactly_its_bytes() {
        let src: Vec<u8> = (0..13000u32).map(pattern).collect();
        // Both directions, and every way a mid-size or large copy can go, whichever this
        // CPU's features and measured verdict pick.
        let mut ways: Vec<(&str, CopyFn)> = vec![
            ("copy_in", copy_in),
            ("copy_out", copy_out),
            ("mid", copy_mid),
            ("pieces", copy_pieces),
        ];
        if string_moves_fast() {
            ways.push(("rep movsb", rep_movsb));
        }
        for (way, f) in ways {
            every_length_and_offset_by(&src, way, f, 0);
        }
        // Whichever lengths `copy_in` sends it: from 8 bytes.
        every_length_and_offset_by(&src, "words", copy_words, 8);
    }

    /// A copy function under test.
    type CopyFn = unsafe fn(*const u8, *mut u8, usize);

    fn every_length_and_offset_by(src: &[u8], way: &str, f: CopyFn, from: usize) {
        for len in (0..=70)
            .chain([
                71, 72, 73, 127, 128, 129, 191, 192, 200, 255, 256, 257, 511, 512, 513, 767, 768,
                1000, 1024, 2047, 2048, 2049, 2112, 4088, 4096, 8191,
            ])
            .filter(|&len| len >= from)
        {
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
                // Against the pattern itself, not only `src`: a copy that ran backwards
                // (destination into source) would leave the two equal.
                assert!(
                    dst[doff..doff + len]
                        .iter()
                        .zip(so..)
                        .all(|(&b, i)| b == pattern(u32::try_from(i).unwrap())),
                    "{way}: len {len} at {so}/{doff}"
                );
                assert!(
                    src.iter().zip(0..).all(|(&b, i)| b == pattern(i)),
                    "{way}: wrote its source, len {len}"
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

    /// The test bytes: byte `i` of the source.
    fn pattern(i: u32) -> u8 {
        (i * 7 + 3).to_le_bytes()[0]
    }

    #[test]
    fn each_length_takes_its_directions_path() {
        for (len, into, out) in [
            (0, Path::Small, Path::Small),
            (15, Path::Small, Path::Small),
            (16, Path::Words, Path::Small),
            (32, Path::Words, Path::Small),
            (33, Path::Words, Path::Memcpy),
            (WORDS_IN, Path::Words, Path::Memcpy),
            (WORDS_IN + 1, Path::Memcpy, Path::Memcpy),
            (767, Path::Memcpy, Path::Memcpy),
            (768, Path::Mid, Path::Memcpy),
            (2048, Path::Mid, Path::Memcpy),
            (2049, Path::Large, Path::Large),
            (1 << 20, Path::Large, Path::Large),
        ] {
            assert_eq!(
                path(len, STRING_IN, WORDS_IN),
                into,
                "into a ring, {len} bytes"
            );
            assert_eq!(
                path(len, STRING_OUT, WORDS_OUT),
                out,
                "out of a ring, {len} bytes"
            );
        }
    }

    #[test]
    fn page_offsets_are_near_within_64_bytes_either_way() {
        let at = |a: usize, b: usize| pages_near(a as *const u8, b as *mut u8);
        assert!(at(4096, 8192 + 8) && at(8192 + 8, 4096) && at(100, 100) && at(4095, 4096));
        assert!(!at(0, 64) && !at(64, 0) && !at(0, 2048) && !at(40, 4096 + 104));
    }
}
