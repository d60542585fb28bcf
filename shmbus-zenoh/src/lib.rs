//! `shmbus-zenoh`: carries shmbus topics between hosts over [Zenoh](https://zenoh.io).
//!
//! A bridge runs on each host. It **exports** local topics that its rules match: it
//! subscribes to each as any shmbus subscriber does and puts every message on the Zenoh key
//! `shmbus/<domain>/<topic>`, with the topic's type fingerprint, codec and type name in the
//! sample's attachment, and announces the topic through a Zenoh liveliness token. It
//! **imports** remote topics that its rules match: it becomes the publisher of the local
//! topic, created with the identity the exporter announced, so that typed subscribers on this
//! host are checked against the remote publisher's type as they would be against a local one.
//!
//! ```no_run
//! use shmbus_zenoh::{Bridge, Config, ExportRule, ImportRule};
//! let mut config = Config::default();
//! config.zenoh.listen = vec!["tcp/127.0.0.1:7447".into()];
//! config.export.push(ExportRule {
//!     topics: vec!["orders/**".into()],
//!     deny: vec![],
//!     tethered: false,
//!     congestion: Default::default(),
//! });
//! config.import.push(ImportRule::new(vec!["fills/**".into()]));
//! let bridge = Bridge::start(config)?;
//! println!("bridge {} running", bridge.zid());
//! bridge.shutdown();
//! # Ok::<(), shmbus_zenoh::BridgeError>(())
//! ```

#![forbid(unsafe_code)]

pub mod channel;
pub mod config;
mod export;
mod import;
pub mod keys;
pub mod status;
mod topic_credit;

pub use config::{
    ChannelExportRule, ChannelImportRule, Config, Congestion, ExportRule, ImportRule, Overflow,
    ZenohSettings,
};
pub use status::{BridgeStatus, TopicStatus};

use status::Registry;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use zenoh::key_expr::OwnedKeyExpr;
use zenoh::sample::{Locality, Sample};
use zenoh::Wait;

/// What can stop a bridge from starting.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The configuration is not valid.
    #[error("configuration: {0}")]
    Config(String),
    /// Zenoh refused the configuration, or a declaration.
    #[error("zenoh: {0}")]
    Zenoh(String),
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// What the bridge's threads share.
pub(crate) struct Shared {
    pub(crate) session: zenoh::Session,
    pub(crate) config: config::Config,
    pub(crate) zid: String,
    pub(crate) registry: Registry,
    shutdown: AtomicBool,
}

impl Shared {
    pub(crate) fn stopping(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }
}

/// A running bridge: its Zenoh session, its export scanner, its import subscribers, and the
/// thread that rewrites its status file.
pub struct Bridge {
    shared: Arc<Shared>,
    importer: Option<Arc<import::Importer>>,
    channel_importer: Option<Arc<channel::import::ChannelImporter>>,
    subscribers: Vec<zenoh::pubsub::Subscriber<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("zid", &self.shared.zid)
            .field("domain", &self.shared.config.domain)
            .finish_non_exhaustive()
    }
}

impl Bridge {
    /// Opens the Zenoh session and starts exporting and importing as `config` says.
    ///
    /// # Errors
    ///
    /// [`BridgeError::Config`] for a pattern Zenoh refuses; [`BridgeError::Zenoh`] when the
    /// session does not open (an endpoint it cannot listen on, ...).
    pub fn start(config: Config) -> Result<Self, BridgeError> {
        config
            .validate()
            .map_err(|e| BridgeError::Config(e.to_string()))?;
        let zc = config.zenoh_config()?;
        let session = zenoh::open(zc)
            .wait()
            .map_err(|e| BridgeError::Zenoh(e.to_string()))?;
        let zid = session.zid().to_string();
        let shared = Arc::new(Shared {
            session,
            config,
            zid,
            registry: Registry::default(),
            shutdown: AtomicBool::new(false),
        });
        let mut bridge = Bridge {
            shared: shared.clone(),
            importer: None,
            channel_importer: None,
            subscribers: Vec::new(),
            threads: Vec::new(),
        };
        if !shared.config.import.is_empty() {
            bridge.start_import()?;
        }
        if !shared.config.import_channel.is_empty() {
            bridge.start_channel_import()?;
        }
        if !shared.config.export_channel.is_empty() {
            let s = shared.clone();
            bridge.threads.push(
                std::thread::Builder::new()
                    .name("channel export scan".into())
                    .spawn(move || channel::export::scan(&s))?,
            );
        }
        if !shared.config.export.is_empty() {
            let s = shared.clone();
            bridge.threads.push(
                std::thread::Builder::new()
                    .name("export scan".into())
                    .spawn(move || export::scan(&s))?,
            );
        }
        let s = shared.clone();
        bridge.threads.push(
            std::thread::Builder::new()
                .name("status".into())
                .spawn(move || status_loop(&s))?,
        );
        tracing::info!(zid = %shared.zid, domain = %shared.config.domain, "bridge started");
        Ok(bridge)
    }

    fn start_import(&mut self) -> Result<(), BridgeError> {
        let shared = &self.shared;
        let importer = Arc::new(import::Importer::new(shared.clone()));
        let domain = &shared.config.domain;
        let err = |e: &dyn std::fmt::Display| BridgeError::Zenoh(e.to_string());
        let data = keys::data_all(domain).map_err(|e| err(&e))?;
        let live = keys::live_all(domain).map_err(|e| err(&e))?;
        let (i, j) = (importer.clone(), importer.clone());
        self.subscribe_import(
            data,
            live,
            move |s| i.on_sample(&s),
            move |s| j.on_token(&s),
        )?;
        self.importer = Some(importer);
        Ok(())
    }

    /// Declares an importer's two subscribers: its data key (remote puts only: an export of
    /// this session's does not come back) and its exporters' liveliness tokens, with history.
    fn subscribe_import(
        &mut self,
        data: OwnedKeyExpr,
        live: OwnedKeyExpr,
        on_sample: impl Fn(Sample) + Send + Sync + 'static,
        on_token: impl Fn(Sample) + Send + Sync + 'static,
    ) -> Result<(), BridgeError> {
        let err = |e: &dyn std::fmt::Display| BridgeError::Zenoh(e.to_string());
        let session = &self.shared.session;
        let sub = session
            .declare_subscriber(data)
            .allowed_origin(Locality::Remote)
            .callback(on_sample)
            .wait()
            .map_err(|e| err(&e))?;
        self.subscribers.push(sub);
        let tokens = session
            .liveliness()
            .declare_subscriber(live)
            .history(true)
            .callback(on_token)
            .wait()
            .map_err(|e| err(&e))?;
        self.subscribers.push(tokens);
        Ok(())
    }

    fn start_channel_import(&mut self) -> Result<(), BridgeError> {
        let shared = &self.shared;
        let importer = Arc::new(channel::import::ChannelImporter::new(shared.clone()));
        let domain = &shared.config.domain;
        let err = |e: &dyn std::fmt::Display| BridgeError::Zenoh(e.to_string());
        let data = channel::keys::data_all(domain, &shared.zid).map_err(|e| err(&e))?;
        let live = channel::keys::live_all(domain).map_err(|e| err(&e))?;
        let (i, j) = (importer.clone(), importer.clone());
        self.subscribe_import(
            data,
            live,
            move |s| i.on_sample(&s),
            move |s| j.on_token(&s),
        )?;
        self.channel_importer = Some(importer);
        Ok(())
    }

    /// The bridge's Zenoh id.
    pub fn zid(&self) -> &str {
        &self.shared.zid
    }

    /// Its counters now.
    pub fn status(&self) -> BridgeStatus {
        self.shared
            .registry
            .snapshot(&self.shared.zid, &self.shared.config.domain)
    }

    /// Stops: no new messages are taken, the threads end, the imported topics' publishers
    /// are dropped (their rings stay for the next bridge), the status file is removed and
    /// the Zenoh session closed.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if self.shared.shutdown.swap(true, Ordering::Relaxed) {
            return;
        }
        for s in self.subscribers.drain(..) {
            let _ = s.undeclare().wait();
        }
        if let Some(i) = self.importer.take() {
            i.join();
        }
        if let Some(i) = self.channel_importer.take() {
            i.join();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let dir = status_dir(&self.shared.config);
        let _ = std::fs::remove_file(status::status_path(&dir, &self.shared.zid));
        if let Err(e) = self.shared.session.close().wait() {
            tracing::warn!("closing the Zenoh session: {e}");
        }
        tracing::info!(zid = %self.shared.zid, "bridge stopped");
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where the status file goes.
pub fn status_dir(config: &Config) -> std::path::PathBuf {
    config
        .status_dir
        .clone()
        .unwrap_or_else(|| config.resolved_shm_dir().join(status::STATUS_SUBDIR))
}

/// Rewrites the status file every scan interval until shutdown.
fn status_loop(shared: &Shared) {
    let dir = status_dir(&shared.config);
    let interval = Duration::from_millis(shared.config.scan_interval_ms.max(1));
    let mut warned = false;
    while !shared.stopping() {
        let snap = shared.registry.snapshot(&shared.zid, &shared.config.domain);
        match status::write(&dir, &snap) {
            Ok(()) => warned = false,
            Err(e) if !warned => {
                warned = true;
                tracing::warn!("cannot write the status file in {}: {e}", dir.display());
            }
            Err(_) => {}
        }
        std::thread::sleep(interval);
    }
}

/// A `Shared` for unit tests: a Zenoh peer session that listens on 127.0.0.1 only and
/// connects to nothing, and a shm directory of the test's own.
#[cfg(test)]
pub(crate) fn test_shared(shm_dir: &std::path::Path) -> Shared {
    let mut config = Config {
        shm_dir: Some(shm_dir.to_path_buf()),
        ..Config::default()
    };
    config.zenoh.listen = vec!["tcp/127.0.0.1:0".into()];
    let session = zenoh::open(config.zenoh_config().expect("zenoh config"))
        .wait()
        .expect("zenoh session");
    let zid = session.zid().to_string();
    Shared {
        session,
        config,
        zid,
        registry: Registry::default(),
        shutdown: AtomicBool::new(false),
    }
}
