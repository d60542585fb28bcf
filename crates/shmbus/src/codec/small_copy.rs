//! Copies of a few bytes without a call: `copy_from_slice` of a length known only at run time
//! becomes a `memcpy` call (through the PLT, with a dispatch on length), which costs more than
//! the copy for the header fields and short payloads of small messages. Up to 64 bytes this
//! copies the first and the last 32 (16, 8, 4, 1) bytes of the range with fixed-size copies,
//! overlapping in the middle, as the ring's own small copy does (`shmbus-ring`'s `copy.rs`),
//! in safe code. Longer copies call `copy_from_slice`.

/// Copies `src` into `dst`, which must be as long.
///
/// # Panics
///
/// If the lengths differ, as `copy_from_slice`.
#[inline(always)]
pub(super) fn copy(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    assert_eq!(dst.len(), n, "copy between slices of different lengths");
    if n > 64 {
        dst.copy_from_slice(src);
    } else if n >= 32 {
        dst[..32].copy_from_slice(&src[..32]);
        dst[n - 32..].copy_from_slice(&src[n - 32..]);
    } else if n >= 16 {
        dst[..16].copy_from_slice(&src[..16]);
        dst[n - 16..].copy_from_slice(&src[n - 16..]);
    } else if n >= 8 {
        dst[..8].copy_from_slice(&src[..8]);
        dst[n - 8..].copy_from_slice(&src[n - 8..]);
    } else if n >= 4 {
        dst[..4].copy_from_slice(&src[..4]);
        dst[n - 4..].copy_from_slice(&src[n - 4..]);
    } else if n > 0 {
        dst[0] = src[0];
        dst[n / 2] = src[n / 2];
        dst[n - 1] = src[n - 1];
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_length_to_200_copies_exactly_its_bytes() {
        let src: Vec<u8> = (0..200u8)
            .map(|b| b.wrapping_mul(37).wrapping_add(11))
            .collect();
        for n in 0..=200 {
            let mut dst = vec![0xEEu8; n + 2];
            super::copy(&mut dst[1..=n], &src[..n]);
            assert_eq!(dst[0], 0xEE, "{n}: before");
            assert_eq!(&dst[1..=n], &src[..n], "{n}");
            assert_eq!(dst[n + 1], 0xEE, "{n}: after");
        }
    }

    #[test]
    #[should_panic(expected = "different lengths")]
    fn different_lengths_panic() {
        super::copy(&mut [0u8; 3], &[1u8; 4]);
    }
}
