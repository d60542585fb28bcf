//! What travels in a benchmark message, and the receiver's sequence check.
//!
//! Every message is `size` bytes (at least 8). Bytes 0..8 hold `word0`, bytes 8..16 (when the
//! message has them) hold `word1`, both little-endian; the rest is a fixed filler written once.
//!
//! | phase | word0 | word1 |
//! |---|---|---|
//! | round trip | sequence number | — |
//! | streaming | sequence number | — |
//! | one-way at a rate | intended send time, CLOCK_MONOTONIC ns | sequence number |
//!
//! `word0 == STOP` ends a phase.

use std::fmt;

/// `word0` of the message that ends a phase.
pub const STOP: u64 = u64::MAX;

/// Writes `word0` into `msg`.
#[inline(always)]
pub fn put_word0(msg: &mut [u8], v: u64) {
    msg[..8].copy_from_slice(&v.to_le_bytes());
}

/// Reads `word0` from `msg`.
#[inline(always)]
pub fn word0(msg: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&msg[..8]);
    u64::from_le_bytes(w)
}

/// Writes `word1` when the message is long enough to carry it.
#[inline(always)]
pub fn put_word1(msg: &mut [u8], v: u64) {
    if msg.len() >= 16 {
        msg[8..16].copy_from_slice(&v.to_le_bytes());
    }
}

/// Reads `word1`, or `None` for an 8-byte message.
#[inline(always)]
pub fn word1(msg: &[u8]) -> Option<u64> {
    (msg.len() >= 16).then(|| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&msg[8..16]);
        u64::from_le_bytes(w)
    })
}

/// A byte buffer whose first byte sits on a cache line (64-byte aligned), as the C reference's
/// `aligned_alloc(64, ..)` buffers do: every copy a transport makes into or out of the
/// harness's buffers then starts from the same alignment in every transport and in the
/// reference, so a comparison measures the transports, not where the allocator happened to
/// put a buffer (`rep movsb` on a destination off a cache line is measurably slower at 4 KiB).
pub struct Buf {
    bytes: Vec<u8>,
    start: usize,
    len: usize,
}

impl Buf {
    /// `size` zero bytes.
    pub fn zeroed(size: usize) -> Buf {
        let bytes = vec![0u8; size + 63];
        let start = bytes.as_ptr().align_offset(64).min(63);
        Buf {
            bytes,
            start,
            len: size,
        }
    }

    /// A message of `size` bytes with the filler pattern of [`new_message`] in place.
    pub fn message(size: usize) -> Buf {
        let mut buf = Buf::zeroed(size);
        buf.copy_from_slice(&new_message(size));
        buf
    }
}

impl std::ops::Deref for Buf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[self.start..self.start + self.len]
    }
}

impl std::ops::DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[self.start..self.start + self.len]
    }
}

/// A message buffer of `size` bytes with the filler pattern in place.
pub fn new_message(size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| (i as u8).wrapping_mul(31) ^ 0x5a)
        .collect()
}

/// A transport lost, duplicated or reordered a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqError {
    /// The sequence number the receiver expected next.
    pub expected: u64,
    /// The one it received.
    pub got: u64,
}

impl fmt::Display for SeqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.got > self.expected {
            "dropped"
        } else {
            "reordered or duplicated"
        };
        write!(
            f,
            "message sequence broken: expected {}, got {} (messages {what})",
            self.expected, self.got
        )
    }
}

impl std::error::Error for SeqError {}

/// Checks that sequence numbers arrive as 0, 1, 2, ... with nothing missing or out of place.
#[derive(Debug, Default)]
pub struct SeqChecker {
    next: u64,
}

impl SeqChecker {
    /// A checker expecting 0 first.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts `seq` if it is the next one.
    #[inline(always)]
    pub fn check(&mut self, seq: u64) -> Result<(), SeqError> {
        if seq != self.next {
            return Err(SeqError {
                expected: self.next,
                got: seq,
            });
        }
        self.next += 1;
        Ok(())
    }

    /// How many messages were accepted.
    pub fn count(&self) -> u64 {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_checker_accepts_order_and_rejects_reorder_and_drop() {
        let mut c = SeqChecker::new();
        for s in 0..5 {
            c.check(s).unwrap();
        }
        assert_eq!(c.count(), 5);
        let reorder = c.check(3).unwrap_err();
        assert_eq!(
            reorder,
            SeqError {
                expected: 5,
                got: 3
            }
        );
        assert!(reorder.to_string().contains("reordered"));
        let mut c = SeqChecker::new();
        c.check(0).unwrap();
        assert!(c.check(2).unwrap_err().to_string().contains("dropped"));
    }

    #[test]
    fn words_round_trip_and_small_messages_carry_only_word0() {
        let mut m = new_message(8);
        put_word0(&mut m, 42);
        put_word1(&mut m, 7);
        assert_eq!((word0(&m), word1(&m)), (42, None));
        let mut m = new_message(64);
        let b = Buf::message(100);
        assert_eq!(b.as_ptr() as usize % 64, 0);
        assert_eq!(&b[..], &new_message(100)[..]);
        put_word0(&mut m, STOP);
        put_word1(&mut m, 7);
        assert_eq!((word0(&m), word1(&m)), (STOP, Some(7)));
    }
}
