//! The naming rule: a topic name to the name of its shared-memory segment, and back
//! (DECISIONS D43).

use crate::error::Error;
use crate::fingerprint::fnv1a;
use std::fmt::Write as _;

/// The prefix of every topic's segment name: `/shmbus.topic.` then the escaped topic name.
pub const SEGMENT_PREFIX: &str = "/shmbus.topic.";

/// The longest escaped topic name kept whole in a segment name; a longer one is cut and ends
/// with `~` and a hash of the whole name.
pub const MAX_ESCAPED: usize = 200;

/// The longest topic name, in bytes (the whole name is kept in the segment's info region).
pub const MAX_TOPIC_LEN: usize = 4096;

/// The segment name of `topic`: [`SEGMENT_PREFIX`], then the name with `[A-Za-z0-9_-]` kept,
/// `/` mapped to `.`, and every other byte percent-encoded (`%2E` for `.`, `%25` for `%`), so
/// that two topic names never share a segment. An escaped name longer than [`MAX_ESCAPED`]
/// bytes is cut at 160 bytes and followed by `~` and the 16 hex digits of the FNV-1a hash of
/// the whole topic name (`~` never appears in an escaped name); the whole name is in the
/// segment's info region, which opening checks.
///
/// ```
/// use shmbus::topic::segment_name;
/// assert_eq!(segment_name("prices")?, "/shmbus.topic.prices");
/// assert_eq!(segment_name("sensors/temp.1")?, "/shmbus.topic.sensors.temp%2E1");
/// assert_eq!(segment_name("a b%")?, "/shmbus.topic.a%20b%25");
/// let long = "x".repeat(300);
/// let seg = segment_name(&long)?;
/// assert!(seg.len() < 200 && seg.contains('~'));
/// assert!(segment_name("").is_err());
/// # Ok::<(), shmbus::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::InvalidTopic`] for an empty name or one longer than [`MAX_TOPIC_LEN`] bytes.
pub fn segment_name(topic: &str) -> Result<String, Error> {
    if topic.is_empty() {
        return Err(invalid(topic, "a topic name must not be empty"));
    }
    if topic.len() > MAX_TOPIC_LEN {
        return Err(invalid(topic, "a topic name is at most 4096 bytes"));
    }
    let mut escaped = String::with_capacity(topic.len() + 8);
    for b in topic.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' => escaped.push(char::from(b)),
            b'/' => escaped.push('.'),
            _ => {
                let _ = write!(escaped, "%{b:02X}");
            }
        }
    }
    if escaped.len() > MAX_ESCAPED {
        // Cut at 160 bytes, not inside a `%XX`.
        let mut cut = 160;
        while escaped.as_bytes()[cut - 1] == b'%' || escaped.as_bytes()[cut - 2] == b'%' {
            cut -= 1;
        }
        escaped.truncate(cut);
        let _ = write!(escaped, "~{:016x}", fnv1a(topic.as_bytes()));
    }
    Ok(format!("{SEGMENT_PREFIX}{escaped}"))
}

/// The topic name a segment name stands for, when it is not a hashed one: the inverse of
/// [`segment_name`]. `None` for a name without the prefix, a hashed name (its topic is in
/// the segment's info region), or one that is not an escape.
///
/// ```
/// use shmbus::topic::{segment_name, topic_of};
/// let seg = segment_name("sensors/temp.1 ü")?;
/// assert_eq!(topic_of(&seg).as_deref(), Some("sensors/temp.1 ü"));
/// assert_eq!(topic_of("/orders"), None);
/// # Ok::<(), shmbus::Error>(())
/// ```
pub fn topic_of(segment: &str) -> Option<String> {
    let escaped = segment.strip_prefix(SEGMENT_PREFIX)?;
    if escaped.contains('~') {
        return None;
    }
    let mut out = Vec::with_capacity(escaped.len());
    let mut bytes = escaped.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'.' => out.push(b'/'),
            b'%' => {
                let hi = char::from(bytes.next()?).to_digit(16)?;
                let lo = char::from(bytes.next()?).to_digit(16)?;
                out.push(u8::try_from(hi * 16 + lo).ok()?);
            }
            _ => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

fn invalid(topic: &str, reason: &'static str) -> Error {
    let mut shown: String = topic.chars().take(80).collect();
    if shown.len() < topic.len() {
        shown.push('…');
    }
    Error::InvalidTopic {
        topic: shown,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_never_collide() {
        let names = [
            "a", "a/b", "a.b", "a%2Eb", "/a", ".a", "a~b", "é", "a b", "A_-9",
        ];
        let segs: Vec<_> = names.iter().map(|n| segment_name(n).unwrap()).collect();
        for (n, s) in names.iter().zip(&segs) {
            assert_eq!(topic_of(s).as_deref(), Some(*n), "{s}");
            shmbus_ring::segment::validate_name(s).unwrap();
        }
        let mut unique = segs.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), segs.len());
    }

    #[test]
    fn long_names_are_hashed_and_stay_valid() {
        for n in [
            "%".repeat(100),
            "x".repeat(4096),
            format!("{}y", "x".repeat(300)),
        ] {
            let s = segment_name(&n).unwrap();
            shmbus_ring::segment::validate_name(&s).unwrap();
            assert!(s.len() <= SEGMENT_PREFIX.len() + 160 + 17, "{s}");
            assert_eq!(topic_of(&s), None);
        }
        assert_ne!(
            segment_name(&format!("{}a", "x".repeat(300))).unwrap(),
            segment_name(&format!("{}b", "x".repeat(300))).unwrap()
        );
        assert!(segment_name(&"x".repeat(4097)).is_err());
    }
}
