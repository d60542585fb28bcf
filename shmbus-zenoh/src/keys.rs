//! Names on the Zenoh side: a topic's data key (`shmbus/<domain>/<topic>`), the liveliness
//! token an exporting bridge declares for it (which also carries the topic's identity), the
//! topic patterns of the configuration, and the attachment every sample carries.

use shmbus::topic::RawIdentity;
use zenoh::key_expr::{keyexpr, OwnedKeyExpr};

/// The first chunk of every data key.
pub const DATA_PREFIX: &str = "shmbus";
/// The first chunk of every liveliness token.
pub const LIVE_PREFIX: &str = "shmbus-live";

/// A key or attachment that does not follow this module's rules.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// A key that is not a well-formed Zenoh key expression.
    #[error("`{0}` is not a valid key expression")]
    KeyExpr(String),
    /// A key outside `shmbus/<domain>/` or `shmbus-live/<domain>/`.
    #[error("key `{0}` is not a shmbus key of this domain")]
    Foreign(String),
    /// A percent-escape that is not two hex digits, or escaped bytes that are not UTF-8.
    #[error("key chunk `{0}` is not escaped as shmbus escapes")]
    Escape(String),
    /// An attachment too short, of another version, or with lengths that overrun it.
    #[error("attachment malformed: {0}")]
    Attachment(&'static str),
}

/// One chunk of a key: the bytes of `s` with `[A-Za-z0-9_.~-]` kept and every other byte
/// percent-encoded (so `*`, `$`, `?`, `#` and `/` never appear); the empty string becomes `%`
/// alone, which no escape produces.
pub fn escape_chunk(s: &str) -> String {
    if s.is_empty() {
        return "%".to_string();
    }
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'~' | b'-') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The inverse of [`escape_chunk`].
///
/// # Errors
///
/// [`KeyError::Escape`] for a chunk no escape produces.
pub fn unescape_chunk(chunk: &str) -> Result<String, KeyError> {
    if chunk == "%" {
        return Ok(String::new());
    }
    let bad = || KeyError::Escape(chunk.to_string());
    let bytes = chunk.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = chunk.get(i + 1..i + 3).ok_or_else(bad)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// A topic's key chunks: its `/`-separated segments, each escaped.
pub fn topic_chunks(topic: &str) -> String {
    topic
        .split('/')
        .map(escape_chunk)
        .collect::<Vec<_>>()
        .join("/")
}

/// The topic of key chunks made by [`topic_chunks`].
///
/// # Errors
///
/// [`KeyError::Escape`].
pub fn topic_of_chunks(chunks: &str) -> Result<String, KeyError> {
    let parts: Result<Vec<_>, _> = chunks.split('/').map(unescape_chunk).collect();
    Ok(parts?.join("/"))
}

fn ke(s: String) -> Result<OwnedKeyExpr, KeyError> {
    OwnedKeyExpr::try_from(s.clone()).map_err(|_| KeyError::KeyExpr(s))
}

/// The data key of `topic` in `domain`: `shmbus/<domain>/<topic chunks>`.
///
/// # Errors
///
/// [`KeyError::KeyExpr`] (not expected: escaped chunks are always valid).
pub fn data_key(domain: &str, topic: &str) -> Result<OwnedKeyExpr, KeyError> {
    ke(format!(
        "{DATA_PREFIX}/{}/{}",
        escape_chunk(domain),
        topic_chunks(topic)
    ))
}

/// The key expression of every data key in `domain`.
///
/// # Errors
///
/// As [`data_key`].
pub fn data_all(domain: &str) -> Result<OwnedKeyExpr, KeyError> {
    ke(format!("{DATA_PREFIX}/{}/**", escape_chunk(domain)))
}

/// The topic of a data key of `domain`.
///
/// # Errors
///
/// [`KeyError::Foreign`], [`KeyError::Escape`].
pub fn topic_of_data_key(domain: &str, key: &str) -> Result<String, KeyError> {
    let prefix = format!("{DATA_PREFIX}/{}/", escape_chunk(domain));
    let rest = key
        .strip_prefix(&prefix)
        .ok_or_else(|| KeyError::Foreign(key.to_string()))?;
    topic_of_chunks(rest)
}

/// What an exporting bridge announces for a topic through its liveliness token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// The exporting bridge's Zenoh id.
    pub origin: String,
    /// The topic's identity.
    pub identity: RawIdentity,
    /// The topic's largest message, in bytes.
    pub max_message: u32,
    /// The topic.
    pub topic: String,
}

/// The liveliness token of an exported topic:
/// `shmbus-live/<domain>/<zid>/<fingerprint hex>/<codec id>/<max message>/<type name>/<topic
/// chunks>`. Liveliness tokens carry no payload, so the identity is in the key.
///
/// # Errors
///
/// As [`data_key`].
pub fn live_key(domain: &str, a: &Announce) -> Result<OwnedKeyExpr, KeyError> {
    ke(format!(
        "{LIVE_PREFIX}/{}/{}/{:016x}/{}/{}/{}/{}",
        escape_chunk(domain),
        escape_chunk(&a.origin),
        a.identity.fingerprint,
        a.identity.codec_id,
        a.max_message,
        escape_chunk(&a.identity.type_name),
        topic_chunks(&a.topic)
    ))
}

/// The key expression of every liveliness token in `domain`.
///
/// # Errors
///
/// As [`data_key`].
pub fn live_all(domain: &str) -> Result<OwnedKeyExpr, KeyError> {
    ke(format!("{LIVE_PREFIX}/{}/**", escape_chunk(domain)))
}

/// Reads a liveliness token's key back (see [`live_key`]).
///
/// # Errors
///
/// [`KeyError::Foreign`], [`KeyError::Escape`].
pub fn parse_live_key(domain: &str, key: &str) -> Result<Announce, KeyError> {
    let foreign = || KeyError::Foreign(key.to_string());
    let prefix = format!("{LIVE_PREFIX}/{}/", escape_chunk(domain));
    let rest = key.strip_prefix(&prefix).ok_or_else(foreign)?;
    let mut it = rest.splitn(6, '/');
    let mut next = || it.next().ok_or_else(foreign);
    let origin = unescape_chunk(next()?)?;
    let fingerprint = u64::from_str_radix(next()?, 16).map_err(|_| foreign())?;
    let codec_id: u32 = next()?.parse().map_err(|_| foreign())?;
    let max_message: u32 = next()?.parse().map_err(|_| foreign())?;
    let type_name = unescape_chunk(next()?)?;
    let topic = topic_of_chunks(next()?)?;
    Ok(Announce {
        origin,
        identity: RawIdentity {
            fingerprint,
            codec_id,
            type_name,
            codec_name: shmbus::codec::codec_name(codec_id)
                .unwrap_or_default()
                .to_string(),
        },
        max_message,
        topic,
    })
}

/// A topic pattern of the configuration (`orders/**`, `md/*`, `prices`): `*` stands for one
/// segment and `**` for any number, as in Zenoh key expressions, which match them.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    expr: OwnedKeyExpr,
}

impl Pattern {
    /// Parses a pattern: its segments `*` and `**` are wildcards, every other one is escaped
    /// as a topic segment is.
    ///
    /// # Errors
    ///
    /// [`KeyError::KeyExpr`] for a pattern Zenoh refuses (`**/**`).
    pub fn new(text: &str) -> Result<Self, KeyError> {
        let chunks: Vec<String> = text
            .split('/')
            .map(|c| match c {
                "*" | "**" => c.to_string(),
                other => escape_chunk(other),
            })
            .collect();
        let expr = ke(chunks.join("/")).map_err(|_| KeyError::KeyExpr(text.to_string()))?;
        Ok(Pattern {
            text: text.to_string(),
            expr,
        })
    }

    /// Whether `topic` matches.
    pub fn matches(&self, topic: &str) -> bool {
        keyexpr::new(&topic_chunks(topic)).is_ok_and(|t| self.expr.includes(t))
    }

    /// The pattern as written.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// The attachment of every sample a bridge puts: who exported it, the position of the
/// message in its topic, and the topic's identity, which the importing bridge checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// The exporting bridge's Zenoh id.
    pub origin: String,
    /// The message's sequence number in its topic on the exporting host.
    pub seq: u64,
    /// The topic's identity.
    pub identity: RawIdentity,
    /// The topic's largest message, in bytes.
    pub max_message: u32,
}

const MAGIC: &[u8; 4] = b"SBZ1";

impl Meta {
    /// The attachment's bytes: `SBZ1`, fingerprint (u64 LE), codec id (u32 LE), sequence
    /// (u64 LE), max message (u32 LE), then origin, type name and codec name, each a u16 LE
    /// length and UTF-8 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(40 + self.identity.type_name.len());
        v.extend_from_slice(MAGIC);
        v.extend_from_slice(&self.identity.fingerprint.to_le_bytes());
        v.extend_from_slice(&self.identity.codec_id.to_le_bytes());
        v.extend_from_slice(&self.seq.to_le_bytes());
        v.extend_from_slice(&self.max_message.to_le_bytes());
        for s in [
            &self.origin,
            &self.identity.type_name,
            &self.identity.codec_name,
        ] {
            let b = &s.as_bytes()[..s.len().min(usize::from(u16::MAX))];
            let len = u16::try_from(b.len()).unwrap_or(u16::MAX);
            v.extend_from_slice(&len.to_le_bytes());
            v.extend_from_slice(b);
        }
        v
    }

    /// Reads an attachment; every length is checked against what is there (it comes from
    /// the network).
    ///
    /// # Errors
    ///
    /// [`KeyError::Attachment`] naming what is wrong.
    pub fn decode(b: &[u8]) -> Result<Self, KeyError> {
        let mut r = Reader(b);
        if r.take(4)? != MAGIC {
            return Err(KeyError::Attachment("not a shmbus v1 attachment"));
        }
        let fingerprint = u64::from_le_bytes(r.array()?);
        let codec_id = u32::from_le_bytes(r.array()?);
        let seq = u64::from_le_bytes(r.array()?);
        let max_message = u32::from_le_bytes(r.array()?);
        let origin = r.string()?;
        let type_name = r.string()?;
        let codec_name = r.string()?;
        Ok(Meta {
            origin,
            seq,
            identity: RawIdentity {
                fingerprint,
                codec_id,
                type_name,
                codec_name,
            },
            max_message,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], KeyError> {
        if self.0.len() < n {
            return Err(KeyError::Attachment("shorter than its fields"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], KeyError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn string(&mut self) -> Result<String, KeyError> {
        let len = u16::from_le_bytes(self.array()?);
        let b = self.take(usize::from(len))?;
        String::from_utf8(b.to_vec()).map_err(|_| KeyError::Attachment("a name is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip_and_are_valid_keys() {
        for topic in [
            "prices", "a/b/c", "/lead", "trail/", "a//b", "*/$?#/**", "é ü%",
        ] {
            let key = data_key("plant-a", topic).unwrap();
            assert_eq!(topic_of_data_key("plant-a", key.as_str()).unwrap(), topic);
        }
        assert_eq!(data_key("d", "x/y").unwrap().as_str(), "shmbus/d/x/y");
        assert!(topic_of_data_key("other", "shmbus/d/x").is_err());
        assert!(unescape_chunk("%4").is_err());
        assert!(unescape_chunk("%zz").is_err());
    }

    #[test]
    fn live_key_carries_the_identity() {
        let a = Announce {
            origin: "abc123".into(),
            identity: RawIdentity {
                fingerprint: 0xdead_beef_0102_0304,
                codec_id: 1,
                type_name: "my::Type<u8>".into(),
                codec_name: "bincode".into(),
            },
            max_message: 4096,
            topic: "orders/eu/*x".into(),
        };
        let key = live_key("d", &a).unwrap();
        assert_eq!(parse_live_key("d", key.as_str()).unwrap(), a);
        assert!(parse_live_key("d", "shmbus-live/d/abc/nothex/1/2/t/x").is_err());
    }

    #[test]
    fn patterns_match_as_key_expressions() {
        let p = Pattern::new("orders/**").unwrap();
        assert!(p.matches("orders/eu/1") && p.matches("orders/x"));
        assert!(!p.matches("fills/x"));
        let p = Pattern::new("md/*").unwrap();
        assert!(p.matches("md/a") && !p.matches("md/a/b"));
        let p = Pattern::new("a.b").unwrap();
        assert!(p.matches("a.b") && !p.matches("a/b"));
        assert!(Pattern::new("**").unwrap().matches("any/thing/at/all"));
    }

    #[test]
    fn meta_round_trips_and_rejects_truncation() {
        let m = Meta {
            origin: "zid".into(),
            seq: 42,
            identity: RawIdentity {
                fingerprint: 7,
                codec_id: 2,
                type_name: "T".into(),
                codec_name: "postcard".into(),
            },
            max_message: 64,
        };
        let b = m.encode();
        assert_eq!(Meta::decode(&b).unwrap(), m);
        for cut in 0..b.len() {
            assert!(Meta::decode(&b[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = b.clone();
        bad[0] = b'X';
        assert!(Meta::decode(&bad).is_err());
    }
}
