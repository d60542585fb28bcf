//! The ring size every shmbus transport (and `floor-ring`) is built with.
//!
//! `--ring-bytes` sets it for the whole run (a list runs each ring transport once per size).
//! The transports read it through [`capacity_for`] when they create their rings; the parent
//! sets it with [`set_ring_bytes`] before each measurement and passes it to the peer on its
//! command line, so both processes agree. Absent the flag the default rule applies: 64 KiB (a
//! pipe's buffer), or room for eight messages when that is more.

use std::sync::atomic::{AtomicU64, Ordering};

/// The smallest ring `--ring-bytes` accepts.
pub const MIN_RING: u64 = 4096;
/// The largest ring `--ring-bytes` accepts.
pub const MAX_RING: u64 = 1 << 30;

/// The ring size asked for (0: the default rule). Relaxed: written by the one thread that
/// drives measurements, before the transport that reads it is set up.
static RING_BYTES: AtomicU64 = AtomicU64::new(0);

/// Sets the ring size of the transports set up from now on (`None`: the default rule).
pub fn set_ring_bytes(bytes: Option<u64>) {
    RING_BYTES.store(bytes.unwrap_or(0), Ordering::Relaxed);
}

/// The ring size asked for, if any.
pub fn ring_bytes() -> Option<u64> {
    match RING_BYTES.load(Ordering::Relaxed) {
        0 => None,
        b => Some(b),
    }
}

/// The bytes one record of a `size`-byte message takes in an SPSC ring (8-byte header,
/// padded to 8).
fn record(size: usize) -> u64 {
    (size as u64 + 8).next_multiple_of(8)
}

/// Ring capacity for messages of `size` bytes. With `--ring-bytes`, that size, raised to
/// the next power of two holding two records when a message would not fit twice; without,
/// at least 64 KiB and room for eight records so streaming never runs in lock-step.
pub fn capacity_for(size: usize) -> u64 {
    capacity(size, ring_bytes())
}

/// [`capacity_for`] with the ring size given rather than read from the run's setting.
pub fn capacity(size: usize, ring: Option<u64>) -> u64 {
    let two = (record(size) * 2).next_power_of_two();
    match ring {
        Some(b) => b.max(two),
        None => (record(size) * 8).next_power_of_two().max(64 * 1024),
    }
}

/// Parses a byte count: plain (`65536`) or with a binary suffix (`64KiB`, `64K`, `1MiB`,
/// `1M`, `1GiB`); a power of two within [`MIN_RING`]..=[`MAX_RING`] is checked by the caller.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a byte count such as 65536, 64KiB or 1MiB"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" | "kb" => 10,
        "m" | "mib" | "mb" => 20,
        "g" | "gib" | "gb" => 30,
        u => return Err(format!("{s:?}: unknown unit {u:?} (use KiB, MiB or GiB)")),
    };
    let bytes = n
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?}: too large"))?;
    if !bytes.is_power_of_two() {
        return Err(format!("{s:?}: a ring size is a power of two"));
    }
    Ok(bytes)
}

/// `64 KiB`, `1 MiB`: a ring size for tables.
pub fn label(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_parse_with_and_without_units() {
        assert_eq!(parse_bytes("65536"), Ok(65536));
        assert_eq!(parse_bytes("64KiB"), Ok(65536));
        assert_eq!(parse_bytes("64k"), Ok(65536));
        assert_eq!(parse_bytes("1MiB"), Ok(1 << 20));
        assert_eq!(parse_bytes("1 MiB"), Ok(1 << 20));
        assert!(parse_bytes("100000").is_err(), "not a power of two");
        assert!(parse_bytes("1TiB").is_err());
        assert!(parse_bytes("KiB").is_err());
        assert_eq!(label(1 << 20), "1 MiB");
        assert_eq!(label(65536), "64 KiB");
    }

    #[test]
    fn the_ring_size_asked_for_reaches_the_capacity_and_holds_two_messages() {
        // The process-wide setting is left alone: other tests read it in parallel.
        for size in [8, 64, 512, 4096, 65536, 100_000] {
            let cap = capacity(size, None);
            assert!(cap.is_power_of_two() && cap >= 64 * 1024);
            assert!(cap >= 8 * (size as u64 + 8), "{size}: {cap}");
            assert_eq!(capacity(size, Some(1 << 20)), 1 << 20, "{size}");
            let cap = capacity(size, Some(4096));
            assert!(cap >= 4096 && cap >= 2 * record(size) && cap.is_power_of_two());
            assert_eq!(capacity(8, Some(4096)), 4096);
        }
    }
}
