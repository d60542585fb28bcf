//! The info region (layout 1.2): what a segment carries, in words — the full type name, the
//! codec, the channel or topic name, and the creator's program and pid — for error messages
//! and tools. It sits after the ring data (`info_offset`, `info_len` in the header), so no
//! existing offset moves and older 1.x readers, which ignore those fields, still open the
//! segment (PROTOCOL §2.3).
//!
//! ```text
//! offset  size  what
//! 0       4     magic b"INFO"
//! 4       4     version (1)
//! 8       4     creator pid
//! 12      4     field count (4; a reader ignores fields after those it knows)
//! 16      ...   fields, each a u32 length then that many UTF-8 bytes: type name, codec,
//!               name, creator program; then zeros to a multiple of 8
//! ```
//!
//! The region is written by the creator before the header's `READY` (H1 publishes it) and
//! never changed. Read from shared memory it is untrusted: every length is checked against
//! the region, and text that is not UTF-8 is refused by field name.
//!
//! ```
//! use shmbus_ring::info::Info;
//! use shmbus_ring::{SpscConfig, SpscRing};
//! let info = Info::new("alloc::string::String", "bincode", "/orders");
//! let ring = SpscRing::in_heap(&SpscConfig::new(4096).info(info))?;
//! let found = ring.info()?.expect("the ring was created with an info region");
//! assert_eq!(found.type_name, "alloc::string::String");
//! assert_eq!(found.codec, "bincode");
//! assert_eq!(found.name, "/orders");
//! assert_eq!(found.creator_pid, std::process::id());
//! # Ok::<(), shmbus_ring::Error>(())
//! ```

use crate::conv::{offset, wide};

/// `b"INFO"` as a little-endian `u32`.
pub const INFO_MAGIC: u32 = u32::from_le_bytes(*b"INFO");
/// The info format version this build writes.
pub const INFO_VERSION: u32 = 1;
/// The longest field, in bytes: longer text is cut (at a character boundary) when written.
pub const MAX_FIELD: usize = 4096;
/// The longest info region a reader accepts: the fixed part and four fields of
/// [`MAX_FIELD`] bytes, rounded to 8.
pub const MAX_INFO_LEN: u64 = (16 + 4 * (4 + MAX_FIELD as u64)).div_ceil(8) * 8;
/// The number of fields this build writes and reads.
const FIELDS: u32 = 4;

/// What a segment carries, in words.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Info {
    /// The full type name of the messages (`std::any::type_name`), empty for raw bytes.
    pub type_name: String,
    /// The codec's name (`bincode`, `postcard`, `plain`, `raw`), empty for raw bytes.
    pub codec: String,
    /// The channel's or topic's name (a shm name, a path, or a name the creator chose).
    pub name: String,
    /// The file name of the creating program (`/proc/self/exe`), filled in by [`Info::new`].
    pub creator_program: String,
    /// The pid of the creating process, filled in by [`Info::new`].
    pub creator_pid: u32,
}

impl Info {
    /// An info region for messages of `type_name` encoded by `codec`, under `name`, created
    /// by this process.
    pub fn new(
        type_name: impl Into<String>,
        codec: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        let creator_program = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        Info {
            type_name: type_name.into(),
            codec: codec.into(),
            name: name.into(),
            creator_program,
            creator_pid: std::process::id(),
        }
    }

    fn fields(&self) -> [&str; FIELDS as usize] {
        [
            &self.type_name,
            &self.codec,
            &self.name,
            &self.creator_program,
        ]
    }

    /// The encoded region: the layout in the module docs, padded to a multiple of 8.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        for word in [INFO_MAGIC, INFO_VERSION, self.creator_pid, FIELDS] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        for field in self.fields() {
            let text = cut(field, MAX_FIELD);
            out.extend_from_slice(&u32::try_from(text.len()).unwrap_or(0).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        out.resize(out.len().div_ceil(8) * 8, 0);
        out
    }

    /// The encoded length, a multiple of 8.
    pub(crate) fn encoded_len(&self) -> u64 {
        let fields: usize = self
            .fields()
            .iter()
            .map(|f| 4 + cut(f, MAX_FIELD).len())
            .sum();
        wide(16 + fields).div_ceil(8) * 8
    }

    /// Decodes a region read out of a segment; the error names what is wrong.
    ///
    /// # Errors
    ///
    /// A description of the first check that failed: magic, version, a length beyond the
    /// region, or text that is not UTF-8.
    pub fn decode(bytes: &[u8]) -> Result<Info, String> {
        let word = |at: usize| -> Result<u32, String> {
            bytes
                .get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_le_bytes)
                .ok_or_else(|| format!("the region ends at byte {} inside a length", bytes.len()))
        };
        if word(0)? != INFO_MAGIC {
            return Err(format!("magic {:#010x} is not b\"INFO\"", word(0)?));
        }
        let version = word(4)?;
        if version != INFO_VERSION {
            return Err(format!(
                "version {version} (this build reads {INFO_VERSION})"
            ));
        }
        let creator_pid = word(8)?;
        let count = word(12)?;
        if count < FIELDS {
            return Err(format!(
                "{count} fields, fewer than the {FIELDS} of version 1"
            ));
        }
        let names = ["type name", "codec", "name", "creator program"];
        let mut at = 16;
        let mut text = Vec::with_capacity(names.len());
        for name in names {
            let len = offset(u64::from(word(at)?));
            let field = bytes
                .get(at + 4..)
                .and_then(|rest| rest.get(..len))
                .ok_or_else(|| {
                    format!(
                        "the {name} ({len} bytes at {}) runs past the region",
                        at + 4
                    )
                })?;
            let field =
                std::str::from_utf8(field).map_err(|e| format!("the {name} is not UTF-8 ({e})"))?;
            text.push(field.to_owned());
            at += 4 + len;
        }
        let mut text = text.into_iter();
        let mut next = || text.next().unwrap_or_default();
        Ok(Info {
            type_name: next(),
            codec: next(),
            name: next(),
            creator_program: next(),
            creator_pid,
        })
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_cuts_long_fields_at_char_boundaries() {
        let mut info = Info::new("u64", "bincode", "/x");
        info.name = "é".repeat(MAX_FIELD); // 2 bytes each
        let bytes = info.encode();
        assert_eq!(wide(bytes.len()), info.encoded_len());
        assert!(wide(bytes.len()) <= MAX_INFO_LEN);
        let back = Info::decode(&bytes).unwrap();
        assert_eq!(back.type_name, "u64");
        assert_eq!(back.name, "é".repeat(MAX_FIELD / 2));
        assert_eq!(back.creator_pid, std::process::id());
    }

    #[test]
    fn every_truncation_and_bad_length_is_an_error_not_a_panic() {
        let bytes = Info::new("alloc::string::String", "bincode", "/orders").encode();
        for n in 0..bytes.len() - 7 {
            // Cutting into the fields (not the zero padding) must fail cleanly.
            let r = Info::decode(&bytes[..n]);
            assert!(r.is_err(), "decoded a region cut at {n}: {r:?}");
        }
        let mut bad = bytes.clone();
        bad[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Info::decode(&bad).unwrap_err().contains("type name"));
        let mut bad = bytes.clone();
        bad[20] = 0xff;
        assert!(Info::decode(&bad).unwrap_err().contains("UTF-8"));
        let mut bad = bytes;
        bad[0] = b'X';
        assert!(Info::decode(&bad).unwrap_err().contains("magic"));
    }
}
