//! Export: local topics to Zenoh. A scanner looks for local topics that an export rule
//! matches; each gets a thread that subscribes to it ([`RawSubscriber`]) and puts every
//! message on the topic's key, with the [`Meta`] attachment, while a liveliness token
//! announces the topic and its identity to the other bridges.

use crate::channel::keys::Grant;
use crate::config::{Congestion, ExportRule};
use crate::keys::{data_key, live_key, Announce, Meta};
use crate::status::{add, add_drop, Direction};
use crate::topic_credit::{credit_key, ExportCredit};
use crate::Shared;
use shmbus::topic::{RawSubscribeOptions, RawSubscriber, RecvTimeoutError, StartAt};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use zenoh::qos::CongestionControl;
use zenoh::sample::Locality;
use zenoh::Wait;

/// How long a blocked receive waits before it looks at the shutdown flag.
const POLL: Duration = Duration::from_millis(100);

/// Looks for local topics to export until shutdown, then joins their threads.
pub(crate) fn scan(shared: &Arc<Shared>) {
    let mut running: HashMap<String, JoinHandle<()>> = HashMap::new();
    let dir = shared.config.resolved_shm_dir();
    let interval = Duration::from_millis(shared.config.scan_interval_ms.max(1));
    while !shared.stopping() {
        running.retain(|_, h| !h.is_finished());
        match shmbus::topic::list_in(&dir) {
            Ok(topics) => {
                for t in topics {
                    if running.contains_key(&t.name)
                        || shared.registry.importing(&t.name).load(Ordering::Relaxed)
                    {
                        continue;
                    }
                    let Some(rule) = shared.config.export_rule(&t.name).cloned() else {
                        continue;
                    };
                    let (s, name) = (shared.clone(), t.name.clone());
                    let spawned = std::thread::Builder::new()
                        .name(format!("export {name}"))
                        .spawn(move || export_topic(&s, &name, &rule));
                    match spawned {
                        Ok(h) => {
                            running.insert(t.name, h);
                        }
                        Err(e) => {
                            tracing::error!(topic = %t.name, "cannot start an export thread: {e}")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!("cannot list local topics in {}: {e}", dir.display()),
        }
        std::thread::sleep(interval);
    }
    for (_, h) in running {
        let _ = h.join();
    }
}

/// The credit of a lossless export, kept up to date by a subscriber of its credit key.
fn subscribe_credit(
    shared: &Shared,
    topic: &str,
) -> Option<(Arc<ExportCredit>, zenoh::pubsub::Subscriber<()>)> {
    let key = match credit_key(&shared.config.domain, &shared.zid, topic) {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(topic, "no credit key: {e}");
            return None;
        }
    };
    let credit = Arc::new(ExportCredit::default());
    let c = credit.clone();
    let sub = shared
        .session
        .declare_subscriber(key)
        .allowed_origin(Locality::Remote)
        .callback(move |s| match Grant::decode(&s.payload().to_bytes()) {
            Ok(g) => c.grant(&g),
            Err(e) => tracing::warn!("ignoring a credit grant: {e}"),
        })
        .wait();
    match sub {
        Ok(s) => Some((credit, s)),
        Err(e) => {
            tracing::error!(topic, "cannot subscribe to credit: {e}");
            None
        }
    }
}

/// Carries one topic out until shutdown, or until its subscription fails (the scanner then
/// starts it again).
fn export_topic(shared: &Shared, topic: &str, rule: &ExportRule) {
    let stats = shared.registry.topic(topic, Direction::Export);
    let importing = shared.registry.importing(topic);
    let opts = RawSubscribeOptions {
        tethered: rule.tethered,
        start: StartAt::Next,
        shm_dir: Some(shared.config.resolved_shm_dir()),
    };
    let mut sub = match RawSubscriber::open_with(topic, &opts) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(topic, "cannot subscribe for export: {e}");
            return;
        }
    };
    let identity = sub.identity().clone();
    let max_message = u32::try_from(sub.max_message()).unwrap_or(u32::MAX);
    let domain = &shared.config.domain;
    let announce = Announce {
        origin: shared.zid.clone(),
        identity: identity.clone(),
        max_message,
        topic: topic.to_string(),
    };
    let (key, live) = match (data_key(domain, topic), live_key(domain, &announce)) {
        (Ok(k), Ok(l)) => (k, l),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(topic, "no key for the topic: {e}");
            return;
        }
    };
    let congestion = match rule.congestion {
        Congestion::Drop => CongestionControl::Drop,
        Congestion::Block => CongestionControl::Block,
    };
    let publisher = match shared
        .session
        .declare_publisher(key)
        .congestion_control(congestion)
        // Never to this session's own subscribers: an import here does not see it.
        .allowed_destination(Locality::Remote)
        .wait()
    {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(topic, "cannot declare the Zenoh publisher: {e}");
            return;
        }
    };
    // Declared after the publisher, so a bridge that sees the token finds the data.
    let token = match shared.session.liveliness().declare_token(live).wait() {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(topic, "cannot declare the liveliness token: {e}");
            return;
        }
    };
    // A lossless export (tethered, congestion block) reads only with every block importer's
    // credit (DECISIONS D69).
    let credit = (rule.tethered && rule.congestion == Congestion::Block)
        .then(|| subscribe_credit(shared, topic))
        .flatten();
    tracing::info!(topic, type_name = %identity.type_name, tethered = rule.tethered, "exporting");
    stats.active.store(true, Ordering::Relaxed);
    let mut buf = Vec::new();
    while !shared.stopping() {
        if let Some((c, _)) = &credit {
            if !c.allows(sub.sequence(), POLL, &stats) {
                continue;
            }
        }
        match sub.recv_deadline(&mut buf, Instant::now() + POLL) {
            Ok(n) => {
                // What this bridge imported into the topic goes no further (DECISIONS D62).
                if importing.load(Ordering::Relaxed) {
                    add(&stats.skipped_own, 1);
                    continue;
                }
                let seq = sub.sequence().saturating_sub(1);
                if let Some((c, _)) = &credit {
                    c.sent(seq);
                }
                let meta = Meta {
                    origin: shared.zid.clone(),
                    seq,
                    identity: identity.clone(),
                    max_message,
                };
                match publisher
                    .put(buf[..n].to_vec())
                    .attachment(meta.encode())
                    .wait()
                {
                    Ok(()) => add(&stats.forwarded, 1),
                    Err(e) => {
                        if add_drop(&stats.put_errors, 1) {
                            tracing::warn!(topic, "Zenoh put failed: {e}");
                        }
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Lagged { missed }) => {
                if add_drop(&stats.dropped_local, missed) {
                    tracing::warn!(topic, missed, "export lapped by the local publisher");
                }
            }
            // The publisher is gone and all it wrote was read: wait for a successor.
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(POLL),
            Err(e) => {
                tracing::warn!(topic, "export subscription ended: {e}");
                break;
            }
        }
    }
    stats.active.store(false, Ordering::Relaxed);
    drop(token);
    drop(publisher);
}
