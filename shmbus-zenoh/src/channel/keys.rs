//! Names on the Zenoh side for channels: the data key of a channel as one importing bridge
//! receives it, the credit key on which an importer grants an exporter room, the liveliness
//! token an exporting bridge declares for a channel (carrying its identity, flavor and bound),
//! and the credit grant's bytes. Channel names are shm names (`/orders`); their key chunks are
//! the name without its leading `/`, escaped as topic segments are ([`topic_chunks`]).

use crate::keys::{escape_chunk, topic_chunks, topic_of_chunks, unescape_chunk, KeyError};
use shmbus::raw_channel::RawFlavor;
use shmbus::topic::RawIdentity;
use zenoh::key_expr::OwnedKeyExpr;

/// The first chunk of every channel data key.
pub const DATA_PREFIX: &str = "shmbus-ch";
/// The first chunk of every credit key.
pub const CREDIT_PREFIX: &str = "shmbus-credit";
/// The first chunk of every channel liveliness token.
pub const LIVE_PREFIX: &str = "shmbus-live-ch";

fn ke(s: String) -> Result<OwnedKeyExpr, KeyError> {
    OwnedKeyExpr::try_from(s.clone()).map_err(|_| KeyError::KeyExpr(s))
}

/// A channel's key chunks: its name without the leading `/`, escaped.
pub fn channel_chunks(name: &str) -> String {
    topic_chunks(name.strip_prefix('/').unwrap_or(name))
}

/// The channel name (with its leading `/`) of chunks made by [`channel_chunks`].
///
/// # Errors
///
/// [`KeyError::Escape`].
pub fn channel_of_chunks(chunks: &str) -> Result<String, KeyError> {
    Ok(format!("/{}", topic_of_chunks(chunks)?))
}

/// Where the exporter puts the messages of `channel` for the importing bridge `importer`:
/// `shmbus-ch/<domain>/<importer zid>/<channel chunks>`. Each message goes to one importer.
///
/// # Errors
///
/// [`KeyError::KeyExpr`] (not expected: escaped chunks are always valid).
pub fn data_key(domain: &str, importer: &str, channel: &str) -> Result<OwnedKeyExpr, KeyError> {
    ke(format!(
        "{DATA_PREFIX}/{}/{}/{}",
        escape_chunk(domain),
        escape_chunk(importer),
        channel_chunks(channel)
    ))
}

/// Every channel data key addressed to `importer`.
///
/// # Errors
///
/// As [`data_key`].
pub fn data_all(domain: &str, importer: &str) -> Result<OwnedKeyExpr, KeyError> {
    ke(format!(
        "{DATA_PREFIX}/{}/{}/**",
        escape_chunk(domain),
        escape_chunk(importer)
    ))
}

/// The channel of a data key addressed to `importer`.
///
/// # Errors
///
/// [`KeyError::Foreign`], [`KeyError::Escape`].
pub fn channel_of_data_key(domain: &str, importer: &str, key: &str) -> Result<String, KeyError> {
    let prefix = format!(
        "{DATA_PREFIX}/{}/{}/",
        escape_chunk(domain),
        escape_chunk(importer)
    );
    let rest = key
        .strip_prefix(&prefix)
        .ok_or_else(|| KeyError::Foreign(key.to_string()))?;
    channel_of_chunks(rest)
}

/// Where importers grant the exporting bridge `exporter` credit for `channel`:
/// `shmbus-credit/<domain>/<exporter zid>/<channel chunks>`.
///
/// # Errors
///
/// As [`data_key`].
pub fn credit_key(domain: &str, exporter: &str, channel: &str) -> Result<OwnedKeyExpr, KeyError> {
    ke(format!(
        "{CREDIT_PREFIX}/{}/{}/{}",
        escape_chunk(domain),
        escape_chunk(exporter),
        channel_chunks(channel)
    ))
}

/// What an exporting bridge announces for a channel through its liveliness token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelAnnounce {
    /// The exporting bridge's Zenoh id.
    pub origin: String,
    /// The channel's identity.
    pub identity: RawIdentity,
    /// SPSC or MPMC.
    pub flavor: RawFlavor,
    /// The channel's bound, in messages (0: none recorded).
    pub capacity: u64,
    /// The largest message, in bytes.
    pub max_message: u32,
    /// Whether its messages carry a CRC32C.
    pub checksum: bool,
    /// The channel (`/orders`).
    pub channel: String,
}

/// The liveliness token of an exported channel: `shmbus-live-ch/<domain>/<zid>/<fingerprint
/// hex>/<codec id>/<max message>/<flavor>/<capacity>/<checksum 0|1>/<type name>/<channel
/// chunks>`.
///
/// # Errors
///
/// As [`data_key`].
pub fn live_key(domain: &str, a: &ChannelAnnounce) -> Result<OwnedKeyExpr, KeyError> {
    ke(format!(
        "{LIVE_PREFIX}/{}/{}/{:016x}/{}/{}/{}/{}/{}/{}/{}",
        escape_chunk(domain),
        escape_chunk(&a.origin),
        a.identity.fingerprint,
        a.identity.codec_id,
        a.max_message,
        a.flavor.name(),
        a.capacity,
        u8::from(a.checksum),
        escape_chunk(&a.identity.type_name),
        channel_chunks(&a.channel)
    ))
}

/// Every channel liveliness token of `domain`.
///
/// # Errors
///
/// As [`data_key`].
pub fn live_all(domain: &str) -> Result<OwnedKeyExpr, KeyError> {
    ke(format!("{LIVE_PREFIX}/{}/**", escape_chunk(domain)))
}

/// Reads a channel liveliness token's key back (see [`live_key`]).
///
/// # Errors
///
/// [`KeyError::Foreign`], [`KeyError::Escape`].
pub fn parse_live_key(domain: &str, key: &str) -> Result<ChannelAnnounce, KeyError> {
    let foreign = || KeyError::Foreign(key.to_string());
    let prefix = format!("{LIVE_PREFIX}/{}/", escape_chunk(domain));
    let rest = key.strip_prefix(&prefix).ok_or_else(foreign)?;
    let mut it = rest.splitn(9, '/');
    let mut next = || it.next().ok_or_else(foreign);
    let origin = unescape_chunk(next()?)?;
    let fingerprint = u64::from_str_radix(next()?, 16).map_err(|_| foreign())?;
    let codec_id: u32 = next()?.parse().map_err(|_| foreign())?;
    let max_message: u32 = next()?.parse().map_err(|_| foreign())?;
    let flavor = RawFlavor::from_name(next()?).ok_or_else(foreign)?;
    let capacity: u64 = next()?.parse().map_err(|_| foreign())?;
    let checksum = match next()? {
        "0" => false,
        "1" => true,
        _ => return Err(foreign()),
    };
    let type_name = unescape_chunk(next()?)?;
    let channel = channel_of_chunks(next()?)?;
    Ok(ChannelAnnounce {
        origin,
        identity: RawIdentity {
            fingerprint,
            codec_id,
            type_name,
            codec_name: shmbus::codec::codec_name(codec_id)
                .unwrap_or_default()
                .to_string(),
        },
        flavor,
        capacity,
        max_message,
        checksum,
        channel,
    })
}

/// A credit grant, from an importing bridge to an exporting one: "I have written into my
/// ring every message of yours up to sequence number `last`; you may send up to `last +
/// window`". `last` is `None` before the importer wrote any message of this exporter: the
/// exporter then counts the window from the next message it sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The importing bridge's Zenoh id.
    pub importer: String,
    /// The sequence number of the exporter's last message the importer wrote (or dropped as
    /// a mismatch or duplicate).
    pub last: Option<u64>,
    /// How many messages beyond `last` it has room for.
    pub window: u64,
}

const GRANT_MAGIC: &[u8; 4] = b"SBC1";

impl Grant {
    /// The grant's bytes: `SBC1`, flags u8 (1: `last` is present), `last` u64 LE, `window`
    /// u64 LE, then the importer's id as a u16 LE length and UTF-8 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(23 + self.importer.len());
        v.extend_from_slice(GRANT_MAGIC);
        v.push(u8::from(self.last.is_some()));
        v.extend_from_slice(&self.last.unwrap_or(0).to_le_bytes());
        v.extend_from_slice(&self.window.to_le_bytes());
        let b = &self.importer.as_bytes()[..self.importer.len().min(usize::from(u16::MAX))];
        v.extend_from_slice(&u16::try_from(b.len()).unwrap_or(u16::MAX).to_le_bytes());
        v.extend_from_slice(b);
        v
    }

    /// Reads a grant; every length is checked (it comes from the network).
    ///
    /// # Errors
    ///
    /// [`KeyError::Attachment`] naming what is wrong.
    pub fn decode(b: &[u8]) -> Result<Self, KeyError> {
        let short = KeyError::Attachment("credit grant shorter than its fields");
        if b.len() < 23 {
            return Err(short);
        }
        if &b[..4] != GRANT_MAGIC {
            return Err(KeyError::Attachment("not a shmbus v1 credit grant"));
        }
        let word = |at: usize| {
            let mut a = [0; 8];
            a.copy_from_slice(&b[at..at + 8]);
            u64::from_le_bytes(a)
        };
        let last = match b[4] {
            0 => None,
            1 => Some(word(5)),
            _ => return Err(KeyError::Attachment("credit grant flags unknown")),
        };
        let window = word(13);
        let len = usize::from(u16::from_le_bytes([b[21], b[22]]));
        let name = b.get(23..23 + len).ok_or(short)?;
        let importer = String::from_utf8(name.to_vec())
            .map_err(|_| KeyError::Attachment("importer id is not UTF-8"))?;
        Ok(Grant {
            importer,
            last,
            window,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_keys_round_trip() {
        let k = data_key("d", "zid1", "/orders.eu").unwrap();
        assert_eq!(k.as_str(), "shmbus-ch/d/zid1/orders.eu");
        assert_eq!(
            channel_of_data_key("d", "zid1", k.as_str()).unwrap(),
            "/orders.eu"
        );
        assert!(channel_of_data_key("d", "zid2", k.as_str()).is_err());
        let c = credit_key("d", "exp", "/a b").unwrap();
        assert_eq!(c.as_str(), "shmbus-credit/d/exp/a%20b");
    }

    #[test]
    fn live_key_carries_identity_flavor_and_bound() {
        let a = ChannelAnnounce {
            origin: "abc".into(),
            identity: RawIdentity {
                fingerprint: 0x0102_0304_0506_0708,
                codec_id: 1,
                type_name: "my::Job".into(),
                codec_name: "bincode".into(),
            },
            flavor: RawFlavor::Mpmc,
            capacity: 64,
            max_message: 512,
            checksum: true,
            channel: "/jobs".into(),
        };
        let key = live_key("d", &a).unwrap();
        assert_eq!(parse_live_key("d", key.as_str()).unwrap(), a);
        assert!(parse_live_key("d", "shmbus-live-ch/d/abc/01/1/2/lifo/3/0/t/x").is_err());
        assert!(parse_live_key("e", key.as_str()).is_err());
    }

    #[test]
    fn grant_round_trips_and_rejects_truncation() {
        for last in [None, Some(0), Some(u64::MAX - 1)] {
            let g = Grant {
                importer: "imp".into(),
                last,
                window: 256,
            };
            let b = g.encode();
            assert_eq!(Grant::decode(&b).unwrap(), g);
            for cut in 0..b.len() {
                assert!(Grant::decode(&b[..cut]).is_err(), "cut at {cut}");
            }
        }
        let mut bad = Grant {
            importer: String::new(),
            last: None,
            window: 1,
        }
        .encode();
        bad[4] = 7;
        assert!(Grant::decode(&bad).is_err());
    }
}
