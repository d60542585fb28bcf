//! The bridge's configuration: a TOML file (`shmbus-zenoh run --config FILE`), which the
//! command-line flags extend.
//!
//! ```
//! let config: shmbus_zenoh::Config = toml::from_str(r#"
//!     domain = "plant-a"
//!     [zenoh]
//!     listen = ["tcp/127.0.0.1:7447"]
//!     connect = ["tcp/127.0.0.1:7448"]
//!     [[export]]
//!     topics = ["orders/**", "md/*"]
//!     deny = ["md/debug"]
//!     tethered = true
//!     [[import]]
//!     topics = ["fills/**"]
//!     queue = 1024
//!     overflow = "drop_newest"
//!     [[export_channel]]
//!     channels = ["jobs"]
//!     [[import_channel]]
//!     channels = ["results", "*"]
//!     deny = ["private"]
//!     window = 64
//! "#).unwrap();
//! assert_eq!(config.domain, "plant-a");
//! assert!(config.export_rule("orders/eu").is_some());
//! assert!(config.export_rule("md/debug").is_none());
//! assert_eq!(config.import_rule("fills/x").unwrap().queue, 1024);
//! assert!(config.channel_export_rule("/jobs").is_some());
//! assert_eq!(config.channel_import_rule("/results").unwrap().window, 64);
//! assert!(config.channel_import_rule("/private").is_none());
//! ```

use crate::keys::{KeyError, Pattern};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Everything a bridge needs to know.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The deployment: keys are `shmbus/<domain>/<topic>`; bridges of other domains never
    /// meet (default `default`).
    #[serde(default = "default_domain")]
    pub domain: String,
    /// How the Zenoh session is opened.
    #[serde(default)]
    pub zenoh: ZenohSettings,
    /// Which local topics go out, and how (the first rule that matches a topic applies).
    #[serde(default)]
    pub export: Vec<ExportRule>,
    /// Which remote topics come in, and how (the first rule that matches applies).
    #[serde(default)]
    pub import: Vec<ImportRule>,
    /// Which local channels go out (the first rule that matches a channel applies). The
    /// bridge becomes a receiver of each: it *takes* their messages.
    #[serde(default)]
    pub export_channel: Vec<ChannelExportRule>,
    /// Which remote channels come in, and how (the first rule that matches applies). The
    /// bridge becomes a sender of each.
    #[serde(default)]
    pub import_channel: Vec<ChannelImportRule>,
    /// The shm directory of the local topics (default: `SHMBUS_DIR`, else `/dev/shm`).
    #[serde(default)]
    pub shm_dir: Option<PathBuf>,
    /// Where the bridge writes its status file, `shmbus-bridge.<zid>.json`, which `shmbus
    /// bridges` reads (default: `shmbus-bridges` in the shm directory).
    #[serde(default)]
    pub status_dir: Option<PathBuf>,
    /// How often the bridge looks for new local topics to export and rewrites its status
    /// file, in milliseconds (default 200).
    #[serde(default = "default_scan")]
    pub scan_interval_ms: u64,
}

fn default_domain() -> String {
    "default".to_string()
}

fn default_scan() -> u64 {
    200
}

impl Default for Config {
    fn default() -> Self {
        Config {
            domain: default_domain(),
            zenoh: ZenohSettings::default(),
            export: Vec::new(),
            import: Vec::new(),
            export_channel: Vec::new(),
            import_channel: Vec::new(),
            shm_dir: None,
            status_dir: None,
            scan_interval_ms: default_scan(),
        }
    }
}

/// The Zenoh session's settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ZenohSettings {
    /// A Zenoh JSON5 configuration file to start from (default: Zenoh's defaults).
    #[serde(default)]
    pub config_file: Option<PathBuf>,
    /// `peer` (default), `client` or `router`.
    #[serde(default = "default_mode")]
    pub mode: String,
    /// Endpoints to listen on (`tcp/0.0.0.0:7447`).
    #[serde(default)]
    pub listen: Vec<String>,
    /// Endpoints to connect to (`tcp/10.0.0.2:7447`); retried until they answer.
    #[serde(default)]
    pub connect: Vec<String>,
    /// Whether to find peers by UDP multicast scouting (default `false`: only the peers
    /// named in `connect`, and those that connect here).
    #[serde(default)]
    pub multicast_scouting: bool,
}

fn default_mode() -> String {
    "peer".to_string()
}

impl Default for ZenohSettings {
    fn default() -> Self {
        ZenohSettings {
            config_file: None,
            mode: default_mode(),
            listen: Vec::new(),
            connect: Vec::new(),
            multicast_scouting: false,
        }
    }
}

/// Which Zenoh congestion control an export uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Congestion {
    /// Zenoh drops a sample that its transmit queue cannot take (default).
    #[default]
    Drop,
    /// Zenoh waits for room (a slow network then slows the export, and a tethered export
    /// slows the local publisher). Zenoh closes a link blocked for 5 s by default
    /// (`wait_before_close`).
    Block,
}

/// What an import does when its topic's queue is full, or its ring has no room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// The queue drops its oldest message to take the new one; the ring writer drops a
    /// message the ring cannot take within `ring_wait_ms` (default).
    #[default]
    DropOldest,
    /// The queue refuses the new message; the ring writer drops as for `drop_oldest`.
    DropNewest,
    /// The ring writer waits as long as the local subscribers hold it up (this topic's
    /// import stalls, no other), and the importer grants the exporter credit for `queue`
    /// messages beyond the last it wrote: a tethered export with `congestion = "block"` then
    /// waits for it, so the queue never overflows (DECISIONS D69). From an exporter that does
    /// not wait, a full queue refuses new messages. The Zenoh callback never waits (D61).
    Block,
}

/// One export rule.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRule {
    /// Topic patterns (`orders/**`, `md/*`).
    pub topics: Vec<String>,
    /// Patterns left out.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Whether the bridge subscribes tethered (lossless: a slow network slows the local
    /// publisher) or untethered (default: never slows it; laps are counted as drops).
    #[serde(default)]
    pub tethered: bool,
    /// Zenoh's congestion control for this export.
    #[serde(default)]
    pub congestion: Congestion,
}

/// One import rule.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImportRule {
    /// Topic patterns.
    pub topics: Vec<String>,
    /// Patterns left out.
    #[serde(default)]
    pub deny: Vec<String>,
    /// The bound of the queue between Zenoh and the topic's ring, in messages (default 256).
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// What happens when it is full.
    #[serde(default)]
    pub overflow: Overflow,
    /// How long the ring writer waits for room before it drops (not for `block`), in
    /// milliseconds (default 100).
    #[serde(default = "default_ring_wait")]
    pub ring_wait_ms: u64,
    /// The size of a ring the import creates, in bytes (default shmbus's 256 KiB).
    #[serde(default)]
    pub capacity_bytes: Option<u64>,
}

/// One channel export rule. A channel's name is matched without its leading `/`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelExportRule {
    /// Channel name patterns, without the leading `/` (`orders`; `*` matches any name).
    pub channels: Vec<String>,
    /// Patterns left out.
    #[serde(default)]
    pub deny: Vec<String>,
}

/// One channel import rule. Channels are always lossless (DECISIONS D68): the importer grants
/// the exporter credit for `window` messages beyond the last it wrote into the local ring.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelImportRule {
    /// Channel name patterns.
    pub channels: Vec<String>,
    /// Patterns left out.
    #[serde(default)]
    pub deny: Vec<String>,
    /// The credit window, in messages: at most this many are in flight or queued between the
    /// exporter's ring and this host's (default 256).
    #[serde(default = "default_queue")]
    pub window: usize,
    /// The bound of a channel the import creates, in messages (default: the exporting
    /// host's channel's).
    #[serde(default)]
    pub capacity: Option<u64>,
}

impl ChannelImportRule {
    /// A rule for `channels` with the defaults.
    pub fn new(channels: Vec<String>) -> Self {
        ChannelImportRule {
            channels,
            deny: Vec::new(),
            window: default_queue(),
            capacity: None,
        }
    }
}

fn default_queue() -> usize {
    256
}

fn default_ring_wait() -> u64 {
    100
}

impl ImportRule {
    /// A rule for `topics` with the defaults.
    pub fn new(topics: Vec<String>) -> Self {
        ImportRule {
            topics,
            deny: Vec::new(),
            queue: default_queue(),
            overflow: Overflow::default(),
            ring_wait_ms: default_ring_wait(),
            capacity_bytes: None,
        }
    }
}

fn first_match<'a, R>(
    rules: &'a [R],
    topic: &str,
    parts: impl Fn(&R) -> (&[String], &[String]),
) -> Option<&'a R> {
    let hit = |patterns: &[String]| {
        patterns
            .iter()
            .any(|p| Pattern::new(p).is_ok_and(|p| p.matches(topic)))
    };
    rules.iter().find(|r| {
        let (allow, deny) = parts(r);
        hit(allow) && !hit(deny)
    })
}

impl Config {
    /// Reads a TOML file.
    ///
    /// # Errors
    ///
    /// The file cannot be read, or is not a valid configuration.
    pub fn from_file(path: &std::path::Path) -> Result<Self, crate::BridgeError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| crate::BridgeError::Config(format!("{}: {e}", path.display())))?;
        toml::from_str(&text)
            .map_err(|e| crate::BridgeError::Config(format!("{}: {e}", path.display())))
    }

    /// Checks every pattern.
    ///
    /// # Errors
    ///
    /// The first pattern Zenoh refuses; an import queue of 0.
    pub fn validate(&self) -> Result<(), KeyError> {
        let ex = self
            .export
            .iter()
            .flat_map(|r| r.topics.iter().chain(&r.deny));
        let im = self
            .import
            .iter()
            .flat_map(|r| r.topics.iter().chain(&r.deny));
        let exc = self
            .export_channel
            .iter()
            .flat_map(|r| r.channels.iter().chain(&r.deny));
        let imc = self
            .import_channel
            .iter()
            .flat_map(|r| r.channels.iter().chain(&r.deny));
        for p in ex.chain(im).chain(exc).chain(imc) {
            Pattern::new(p)?;
        }
        if self.import.iter().any(|r| r.queue == 0) {
            return Err(KeyError::KeyExpr("an import queue of 0 messages".into()));
        }
        if self.import_channel.iter().any(|r| r.window == 0) {
            return Err(KeyError::KeyExpr("a channel window of 0 messages".into()));
        }
        Ok(())
    }

    /// The export rule of the channel `name` (`/orders`), if it is exported.
    pub fn channel_export_rule(&self, name: &str) -> Option<&ChannelExportRule> {
        let name = name.strip_prefix('/').unwrap_or(name);
        first_match(&self.export_channel, name, |r| (&r.channels, &r.deny))
    }

    /// The import rule of the channel `name` (`/orders`), if it is imported.
    pub fn channel_import_rule(&self, name: &str) -> Option<&ChannelImportRule> {
        let name = name.strip_prefix('/').unwrap_or(name);
        first_match(&self.import_channel, name, |r| (&r.channels, &r.deny))
    }

    /// The export rule of `topic`, if it is exported.
    pub fn export_rule(&self, topic: &str) -> Option<&ExportRule> {
        first_match(&self.export, topic, |r| (&r.topics, &r.deny))
    }

    /// The import rule of `topic`, if it is imported.
    pub fn import_rule(&self, topic: &str) -> Option<&ImportRule> {
        first_match(&self.import, topic, |r| (&r.topics, &r.deny))
    }

    /// The shm directory the bridge works in.
    pub fn resolved_shm_dir(&self) -> PathBuf {
        self.shm_dir
            .clone()
            .unwrap_or_else(shmbus::ring::segment::shm_dir)
    }

    /// The Zenoh configuration these settings make.
    ///
    /// # Errors
    ///
    /// [`crate::BridgeError::Zenoh`] for a file or value Zenoh refuses.
    pub fn zenoh_config(&self) -> Result<zenoh::Config, crate::BridgeError> {
        let z = &self.zenoh;
        let err = |e: zenoh::Error| crate::BridgeError::Zenoh(e.to_string());
        let mut c = match &z.config_file {
            Some(path) => zenoh::Config::from_file(path).map_err(err)?,
            None => zenoh::Config::default(),
        };
        c.insert_json5("mode", &json(&z.mode)).map_err(err)?;
        if !z.listen.is_empty() {
            c.insert_json5("listen/endpoints", &json(&z.listen))
                .map_err(err)?;
        }
        if !z.connect.is_empty() {
            c.insert_json5("connect/endpoints", &json(&z.connect))
                .map_err(err)?;
        }
        c.insert_json5("scouting/multicast/enabled", &json(&z.multicast_scouting))
            .map_err(err)?;
        Ok(c)
    }
}

/// A value as JSON, which Zenoh's JSON5 reader takes.
fn json<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}
