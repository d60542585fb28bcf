//! The bridge's counters, per topic and direction, and the status file that shows them to
//! the `shmbus` command (`shmbus bridges`) without talking to the bridge: JSON, rewritten
//! whole every scan interval by write-then-rename, so a reader never sees half of it. The
//! files live in [`STATUS_SUBDIR`] of the shm directory, where `shmbus ls` (which lists
//! regular files only) does not take them for segments.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The status file's name prefix: `shmbus-bridge.<zid>.json` in the status directory.
pub const STATUS_PREFIX: &str = "shmbus-bridge.";

/// The default status directory, under the shm directory: `<shm dir>/shmbus-bridges`.
pub const STATUS_SUBDIR: &str = "shmbus-bridges";

/// Which way a topic crosses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Local topic to Zenoh.
    Export,
    /// Zenoh to a local topic.
    Import,
}

/// What is carried: a topic (broadcast) or a channel (SPSC or MPMC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A topic: `shmbus::topic`.
    #[default]
    Topic,
    /// A channel: `shmbus::channel`, named by its shm name (`/orders`).
    Channel,
}

/// One topic's counters. Relaxed atomics: each is a count read for display, ordering
/// nothing else.
#[derive(Debug, Default)]
pub struct TopicStats {
    /// Messages carried (put to Zenoh, or written into the local ring).
    pub forwarded: AtomicU64,
    /// Export: messages an untethered export subscriber was lapped over.
    pub dropped_local: AtomicU64,
    /// Import: messages the full queue dropped.
    pub dropped_queue: AtomicU64,
    /// Import: messages the local ring did not take in time.
    pub dropped_ring: AtomicU64,
    /// Import: messages missing between two the exporter sent (by its sequence numbers).
    pub gaps: AtomicU64,
    /// Import: messages received twice (dropped).
    pub duplicates: AtomicU64,
    /// Import: messages of another identity than the local topic's (dropped).
    pub mismatched: AtomicU64,
    /// Import: messages dropped because the local topic could not be published (it has
    /// another live publisher, or another type).
    pub refused: AtomicU64,
    /// Export: messages this bridge wrote itself (imported), not sent back.
    pub skipped_own: AtomicU64,
    /// Export: Zenoh put errors.
    pub put_errors: AtomicU64,
    /// Channel export: how many times the exporter waited for the importer's credit (a slow
    /// remote receiver back-pressures the local senders).
    pub credit_waits: AtomicU64,
    /// Whether the topic is being carried now.
    pub active: AtomicBool,
}

/// A counter plus `n`.
pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// A drop counter plus `n`; whether this is one to log (the first, then one in 1000, so a
/// stalled topic does not flood the log).
pub fn add_drop(c: &AtomicU64, n: u64) -> bool {
    let before = c.fetch_add(n, Ordering::Relaxed);
    before == 0 || before / 1000 != (before + n) / 1000
}

/// One topic's line in the status file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct TopicStatus {
    pub topic: String,
    #[serde(default)]
    pub kind: Kind,
    pub direction: Direction,
    pub active: bool,
    pub forwarded: u64,
    pub dropped_local: u64,
    pub dropped_queue: u64,
    pub dropped_ring: u64,
    pub gaps: u64,
    pub duplicates: u64,
    pub mismatched: u64,
    pub refused: u64,
    pub skipped_own: u64,
    pub put_errors: u64,
    #[serde(default)]
    pub credit_waits: u64,
}

/// A remote topic seen through liveliness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteTopic {
    /// The exporting bridge's Zenoh id.
    pub origin: String,
    /// The topic.
    pub topic: String,
    /// Its type's name.
    pub type_name: String,
}

/// The status file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeStatus {
    /// Format version (1).
    pub version: u32,
    /// The bridge's Zenoh id.
    pub zid: String,
    /// Its process.
    pub pid: u32,
    /// Its domain.
    pub domain: String,
    /// When the file was written, in milliseconds since the Unix epoch.
    pub updated_unix_ms: u64,
    /// Per topic and direction.
    pub topics: Vec<TopicStatus>,
    /// Remote topics announced by other bridges.
    pub remote: Vec<RemoteTopic>,
}

/// The live counters of one bridge.
#[derive(Debug, Default)]
pub struct Registry {
    topics: Mutex<BTreeMap<(Kind, String, Direction), Arc<TopicStats>>>,
    remote: Mutex<BTreeMap<(String, String), String>>,
    importing: Mutex<BTreeMap<String, Arc<AtomicBool>>>,
}

impl Registry {
    /// The counters of `topic` in `dir`, made on first use.
    pub fn topic(&self, topic: &str, dir: Direction) -> Arc<TopicStats> {
        self.counters(Kind::Topic, topic, dir)
    }

    /// The counters of `name` of `kind` in `dir`, made on first use.
    pub fn counters(&self, kind: Kind, name: &str, dir: Direction) -> Arc<TopicStats> {
        let mut map = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry((kind, name.to_string(), dir))
            .or_default()
            .clone()
    }

    /// The counters of `topic` in `dir`, if any.
    pub fn get(&self, topic: &str, dir: Direction) -> Option<Arc<TopicStats>> {
        let map = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(&(Kind::Topic, topic.to_string(), dir)).cloned()
    }

    /// The flag set while this bridge publishes `topic` (imports into it): its exporter
    /// then skips what it reads there (DECISIONS D62).
    pub fn importing(&self, topic: &str) -> Arc<AtomicBool> {
        let mut map = self
            .importing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.entry(topic.to_string()).or_default().clone()
    }

    /// A remote topic appeared (`Some(type name)`) or went (`None`).
    pub fn remote(&self, origin: &str, topic: &str, type_name: Option<&str>) {
        let mut map = self.remote.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (origin.to_string(), topic.to_string());
        match type_name {
            Some(t) => {
                map.insert(key, t.to_string());
            }
            None => {
                map.remove(&key);
            }
        }
    }

    /// A snapshot of everything.
    pub fn snapshot(&self, zid: &str, domain: &str) -> BridgeStatus {
        let topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let topics = topics
            .iter()
            .map(|((kind, topic, direction), s)| TopicStatus {
                topic: topic.clone(),
                kind: *kind,
                direction: *direction,
                active: s.active.load(Ordering::Relaxed),
                forwarded: get(&s.forwarded),
                dropped_local: get(&s.dropped_local),
                dropped_queue: get(&s.dropped_queue),
                dropped_ring: get(&s.dropped_ring),
                gaps: get(&s.gaps),
                duplicates: get(&s.duplicates),
                mismatched: get(&s.mismatched),
                refused: get(&s.refused),
                skipped_own: get(&s.skipped_own),
                put_errors: get(&s.put_errors),
                credit_waits: get(&s.credit_waits),
            })
            .collect();
        let remote = self
            .remote
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|((origin, topic), t)| RemoteTopic {
                origin: origin.clone(),
                topic: topic.clone(),
                type_name: t.clone(),
            })
            .collect();
        BridgeStatus {
            version: 1,
            zid: zid.to_string(),
            pid: std::process::id(),
            domain: domain.to_string(),
            updated_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .unwrap_or(0),
            topics,
            remote,
        }
    }
}

/// The status file of bridge `zid` in `dir`.
pub fn status_path(dir: &Path, zid: &str) -> PathBuf {
    dir.join(format!("{STATUS_PREFIX}{zid}.json"))
}

/// Writes `status` to its file atomically: a temporary file in the same directory, then
/// renamed over the old one.
///
/// # Errors
///
/// The directory is not writable.
pub fn write(dir: &Path, status: &BridgeStatus) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let path = status_path(dir, &status.zid);
    let tmp = dir.join(format!(".{STATUS_PREFIX}{}.json.tmp", status.zid));
    let text = serde_json::to_vec_pretty(status).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &path)
}

/// Reads every bridge status file in `dir` (files that do not parse are left out).
pub fn read_all(dir: &Path) -> Vec<BridgeStatus> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<BridgeStatus> = entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(STATUS_PREFIX) && n.ends_with(".json"))
        })
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect();
    out.sort_by(|a, b| a.zid.cmp(&b.zid));
    out
}
