//! Sequence-numbered, checksummed messages for streams between processes: a producer
//! [`fill`]s message `seq`, a consumer [`check`]s what it received and learns its sequence
//! number, so a lost, duplicated, reordered, torn or stale message is caught. Lengths vary
//! with the sequence number ([`len_of`], [`MIN_LEN`]..=[`MAX_LEN`]), so records of a
//! byte ring wrap at every offset.

/// The shortest message: the sequence number, one pattern byte and the checksum.
pub const MIN_LEN: usize = 13;
/// The longest message.
pub const MAX_LEN: usize = 96;

/// A fixed pseudo-random mix of `seq` (splitmix64's finaliser).
fn mix(seq: u64) -> u64 {
    let mut x = seq.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The length of message `seq`, from [`MIN_LEN`] to [`MAX_LEN`].
pub fn len_of(seq: u64) -> usize {
    MIN_LEN + (mix(seq) % (MAX_LEN - MIN_LEN + 1) as u64) as usize
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// Writes message `seq` into `buf` and returns its length ([`len_of`]): `[seq: u64 LE]
/// [pattern bytes derived from seq][fnv1a of the rest: u32 LE]`.
pub fn fill(seq: u64, buf: &mut [u8; MAX_LEN]) -> usize {
    let n = len_of(seq);
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    let m = mix(seq) as u8;
    for (i, b) in buf[8..n - 4].iter_mut().enumerate() {
        *b = m.wrapping_mul(131).wrapping_add(i as u8);
    }
    let sum = fnv1a(&buf[..n - 4]);
    buf[n - 4..n].copy_from_slice(&sum.to_le_bytes());
    n
}

/// Message `seq` as a vector.
pub fn message(seq: u64) -> Vec<u8> {
    let mut buf = [0u8; MAX_LEN];
    let n = fill(seq, &mut buf);
    buf[..n].to_vec()
}

/// The sequence number of `got` if it is an intact message (the length its sequence number
/// gives, the checksum, and every byte as [`fill`] writes it); a description otherwise.
pub fn check(got: &[u8]) -> Result<u64, String> {
    ensure!(
        (MIN_LEN..=MAX_LEN).contains(&got.len()),
        "a message of {} bytes",
        got.len()
    );
    let seq = u64::from_le_bytes(got[..8].try_into().expect("8 bytes"));
    ensure_eq!(got.len(), len_of(seq), "message {seq}: length");
    let n = got.len();
    let sum = u32::from_le_bytes(got[n - 4..].try_into().expect("4 bytes"));
    ensure_eq!(sum, fnv1a(&got[..n - 4]), "message {seq}: checksum (torn)");
    let mut want = [0u8; MAX_LEN];
    fill(seq, &mut want);
    ensure!(&want[..n] == got, "message {seq}: content differs");
    Ok(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_check_and_damage_is_caught() {
        for seq in [0, 1, 2, 1000, u64::MAX / 3] {
            let mut m = message(seq);
            assert_eq!(check(&m), Ok(seq));
            let last = m.len() - 5;
            m[last] ^= 1;
            assert!(check(&m).is_err(), "{seq}");
        }
        let lens: std::collections::HashSet<_> = (0..10_000).map(len_of).collect();
        assert_eq!(lens.len(), MAX_LEN - MIN_LEN + 1, "every length occurs");
    }
}
