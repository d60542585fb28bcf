//! Channel export: local channels to Zenoh, with credit. A scanner looks for local channel
//! rings that a channel export rule matches; each gets a thread that is a receiver of the
//! channel ([`RawReceiver`]). It takes a message out of the ring only while it holds credit
//! from the importing bridge, so a slow remote receiver leaves the messages in the local ring,
//! and the local senders find it full (DECISIONS D68).

use super::keys::{credit_key, data_key, live_key, ChannelAnnounce, Grant};
use super::{importing_flag, sending_flag};
use crate::keys::Meta;
use crate::status::{add, add_drop, Direction, Kind, TopicStats};
use crate::Shared;
use shmbus::raw_channel::RawReceiver;
use shmbus::ring::PopError;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use zenoh::qos::CongestionControl;
use zenoh::sample::{Locality, Sample};
use zenoh::Wait;

/// How long a blocked receive or a wait for credit lasts before it looks at the shutdown
/// flag.
const POLL: Duration = Duration::from_millis(100);

/// How long the importer the exporter follows may stay silent (it grants every 200 ms)
/// before another importer's grant is followed instead.
const SWITCH_AFTER: Duration = Duration::from_secs(2);

/// The importer an exporter sends to, and how far it may send.
#[derive(Debug)]
struct Peer {
    zid: String,
    /// The exporter's sequence number from which a grant without `last` counts.
    base: Option<u64>,
    /// Messages with sequence numbers below this may be sent.
    limit: u64,
    heard: Instant,
    /// Whether Zenoh sees the importer's data subscriber (its publisher's matching status):
    /// a killed importer's goes false at once, and the exporter stops taking messages for it.
    reachable: Option<Arc<AtomicBool>>,
}

#[derive(Debug, Default)]
struct CreditState {
    peer: Option<Peer>,
    /// The sequence number of the next message this exporter sends.
    next: u64,
}

/// The credit an exporter holds, updated by the Zenoh callback of its credit key.
#[derive(Debug, Default)]
struct Credit {
    state: Mutex<CreditState>,
    changed: Condvar,
}

impl Credit {
    /// A grant arrived: follow its importer if it is the one followed, or if that one went
    /// silent; raise the limit (limits never go down: a late grant changes nothing).
    fn grant(&self, g: &Grant) {
        // No importer grants no room (a window of 0 is refused by the configuration): such a
        // grant is bogus or foreign, and following its sender would stall the channel.
        if g.window == 0 {
            return;
        }
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let follow = match &st.peer {
            Some(p) if p.zid == g.importer => true,
            Some(p) => {
                now.duration_since(p.heard) > SWITCH_AFTER
                    || p.reachable
                        .as_ref()
                        .is_some_and(|r| !r.load(Ordering::Relaxed))
            }
            None => true,
        };
        if !follow {
            return;
        }
        let next = st.next;
        let peer = match &mut st.peer {
            Some(p) if p.zid == g.importer => p,
            other => {
                if let Some(old) = other.as_ref() {
                    tracing::warn!(old = %old.zid, new = %g.importer, "channel importer changed");
                }
                other.insert(Peer {
                    zid: g.importer.clone(),
                    base: None,
                    limit: 0,
                    heard: now,
                    reachable: None,
                })
            }
        };
        peer.heard = now;
        // A grant that arrives after Zenoh reported the importer's subscriber gone proves it
        // is back: its transport was replaced (two peers that both connect to each other keep
        // one of two links), since a dead importer's last grants arrive before its link is
        // seen closed. The matching listener does not always report the return.
        if let Some(r) = &peer.reachable {
            r.store(true, Ordering::Relaxed);
        }
        // The window counts from where this exporter was when it began to follow the
        // importer, at least: an importer followed again after another one has an old `last`,
        // and must not stall the channel for good.
        let base = peer.base.get_or_insert(next).saturating_add(g.window);
        // A `last` beyond what this exporter sent (a bogus or replayed grant, or an importer
        // that kept the count of an earlier exporter of the same id) opens no more than the
        // window beyond what was really sent.
        let last = g.last.filter(|_| next > 0).map(|l| l.min(next - 1));
        let limit = match last {
            Some(last) => last.saturating_add(1).saturating_add(g.window).max(base),
            None => base,
        };
        peer.limit = peer.limit.max(limit);
        drop(st);
        self.changed.notify_all();
    }

    /// Waits (at most `POLL`) for credit to send the next message; the importer to send it
    /// to, and its sequence number.
    fn wait(&self, stats: &TopicStats) -> Option<(String, u64)> {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let ready = |st: &CreditState| st.peer.as_ref().is_some_and(|p| st.next < p.limit);
        let st = if ready(&st) {
            st
        } else {
            add(&stats.credit_waits, 1);
            self.changed
                .wait_timeout_while(st, POLL, |st| !ready(st))
                .unwrap_or_else(PoisonError::into_inner)
                .0
        };
        let p = st.peer.as_ref().filter(|p| st.next < p.limit)?;
        Some((p.zid.clone(), st.next))
    }

    /// Records whether `importer`, if it is the one followed, is reachable.
    fn set_reachable(&self, importer: &str, reachable: Arc<AtomicBool>) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = st.peer.as_mut().filter(|p| p.zid == importer) {
            p.reachable = Some(reachable);
        }
    }

    /// Waits at most `timeout` for a grant.
    fn nap(&self, timeout: Duration) {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        drop(self.changed.wait_timeout(st, timeout));
    }

    /// The message numbered `seq` was taken and sent.
    fn sent(&self, seq: u64) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.next = st.next.max(seq.saturating_add(1));
    }
}

/// The Zenoh publisher of one importer's data key, and whether that importer is reachable.
struct Target {
    importer: String,
    // Dropped before the publisher it listens to (fields drop in order).
    _listener: zenoh::matching::MatchingListener<()>,
    publisher: zenoh::pubsub::Publisher<'static>,
    reachable: Arc<AtomicBool>,
}

impl Target {
    fn declare(shared: &Shared, name: &str, importer: &str) -> Result<Self, String> {
        let key = data_key(&shared.config.domain, importer, name).map_err(|e| e.to_string())?;
        let publisher = shared
            .session
            .declare_publisher(key)
            .congestion_control(CongestionControl::Block)
            .allowed_destination(Locality::Remote)
            .wait()
            .map_err(|e| e.to_string())?;
        let now = publisher
            .matching_status()
            .wait()
            .map_or(true, |m| m.matching());
        let reachable = Arc::new(AtomicBool::new(now));
        let r = reachable.clone();
        let listener = publisher
            .matching_listener()
            .callback(move |m| r.store(m.matching(), Ordering::Relaxed))
            .wait()
            .map_err(|e| e.to_string())?;
        Ok(Target {
            importer: importer.to_string(),
            _listener: listener,
            publisher,
            reachable,
        })
    }
}

/// Looks for local channels to export until shutdown, then joins their threads.
pub(crate) fn scan(shared: &Arc<Shared>) {
    let mut running: HashMap<String, JoinHandle<()>> = HashMap::new();
    let mut not_channels: HashSet<String> = HashSet::new();
    let dir = shared.config.resolved_shm_dir();
    let interval = Duration::from_millis(shared.config.scan_interval_ms.max(1));
    let topic_prefix = shmbus::topic::SEGMENT_PREFIX.trim_start_matches('/');
    while !shared.stopping() {
        running.retain(|_, h| !h.is_finished());
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("cannot list {}: {e}", dir.display());
                std::thread::sleep(interval);
                continue;
            }
        };
        for entry in entries.flatten() {
            let Some(file) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let name = format!("/{file}");
            if file.starts_with(topic_prefix)
                || !entry.file_type().is_ok_and(|t| t.is_file())
                || running.contains_key(&name)
                || not_channels.contains(&name)
                || importing_flag(shared, &name).load(Ordering::Relaxed)
                || shared.config.channel_export_rule(&name).is_none()
            {
                continue;
            }
            if let Err(e) = shmbus::raw_channel::describe_channel(&name, Some(&dir)) {
                tracing::debug!(channel = %name, "not a channel ring: {e}");
                not_channels.insert(name);
                continue;
            }
            let s = shared.clone();
            let n = name.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("export {name}"))
                .spawn(move || export_channel(&s, &n));
            match spawned {
                Ok(h) => {
                    running.insert(name, h);
                }
                Err(e) => tracing::error!(channel = %name, "cannot start an export thread: {e}"),
            }
        }
        std::thread::sleep(interval);
    }
    for (_, h) in running {
        let _ = h.join();
    }
}

/// Carries one channel out until shutdown, or until its receiver fails (the scanner then
/// starts it again).
fn export_channel(shared: &Shared, name: &str) {
    let stats = shared
        .registry
        .counters(Kind::Channel, name, Direction::Export);
    let dir = shared.config.resolved_shm_dir();
    // The file this thread exports: a sender that exits unlinks it, and one that comes back
    // makes a new one of the same name, which the scanner must find (see `replaced`).
    let path = dir.join(name.trim_start_matches('/'));
    let inode = file_id(&path);
    let mut rx = match RawReceiver::open(name, Some(&dir)) {
        Ok(r) if file_id(&path) == inode => r,
        // Replaced while it was opened: the next scan takes the new one.
        Ok(_) => return,
        Err(e) => {
            // An SPSC channel whose receiver is local: not for export (retried next scan).
            tracing::debug!(channel = name, "cannot receive for export: {e}");
            std::thread::sleep(POLL);
            return;
        }
    };
    let info = rx.info().clone();
    let domain = &shared.config.domain;
    let max_message = u32::try_from(info.max_message).unwrap_or(u32::MAX);
    let announce = ChannelAnnounce {
        origin: shared.zid.clone(),
        identity: info.identity.clone(),
        flavor: info.flavor,
        capacity: info.capacity,
        max_message,
        checksum: info.checksum,
        channel: name.to_string(),
    };
    let (credit_ke, live) = match (
        credit_key(domain, &shared.zid, name),
        live_key(domain, &announce),
    ) {
        (Ok(c), Ok(l)) => (c, l),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(channel = name, "no key for the channel: {e}");
            return;
        }
    };
    let credit = Arc::new(Credit::default());
    let c = credit.clone();
    let credit_sub = shared
        .session
        .declare_subscriber(credit_ke)
        .allowed_origin(Locality::Remote)
        .callback(
            move |s: Sample| match Grant::decode(&s.payload().to_bytes()) {
                Ok(g) => c.grant(&g),
                Err(e) => tracing::warn!("ignoring a credit grant: {e}"),
            },
        )
        .wait();
    let credit_sub = match credit_sub {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(channel = name, "cannot subscribe to credit: {e}");
            return;
        }
    };
    // Declared after the credit subscriber, so an importer that sees the token is heard.
    let token = match shared.session.liveliness().declare_token(live).wait() {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(channel = name, "cannot declare the liveliness token: {e}");
            return;
        }
    };
    tracing::info!(channel = name, type_name = %info.identity.type_name, flavor = info.flavor.name(), "exporting channel");
    stats.active.store(true, Ordering::Relaxed);
    let mut publisher: Option<Target> = None;
    let mut buf = Vec::new();
    // This bridge began to import the channel (it sends into it): it no longer exports it, or
    // what it imports would go back (DECISIONS D62); the scanner does not start it again.
    let sending = sending_flag(shared, name);
    while !shared.stopping() && !sending.load(Ordering::Relaxed) {
        // Only with credit is a message taken out of the ring (DECISIONS D68).
        let Some((importer, seq)) = credit.wait(&stats) else {
            continue;
        };
        if publisher.as_ref().is_none_or(|t| t.importer != importer) {
            match Target::declare(shared, name, &importer) {
                Ok(t) => {
                    credit.set_reachable(&importer, t.reachable.clone());
                    publisher = Some(t);
                }
                Err(e) => {
                    tracing::error!(channel = name, "cannot declare the Zenoh publisher: {e}");
                    std::thread::sleep(POLL);
                    continue;
                }
            }
        }
        let Some(t) = publisher.as_ref() else {
            continue;
        };
        // An importer that is gone gets nothing more: what it was granted stays in the ring
        // for the next one (DECISIONS D69).
        if !t.reachable.load(Ordering::Relaxed) {
            add(&stats.credit_waits, 1);
            credit.nap(Duration::from_millis(20));
            continue;
        }
        let p = &t.publisher;
        match rx.recv_deadline(&mut buf, Some(Instant::now() + POLL)) {
            Ok(n) => {
                let meta = Meta {
                    origin: shared.zid.clone(),
                    seq,
                    identity: info.identity.clone(),
                    max_message,
                };
                credit.sent(seq);
                match p.put(buf[..n].to_vec()).attachment(meta.encode()).wait() {
                    Ok(()) => add(&stats.forwarded, 1),
                    Err(e) => {
                        if add_drop(&stats.put_errors, 1) {
                            tracing::warn!(channel = name, "Zenoh put failed: {e}");
                        }
                    }
                }
            }
            Err(PopError::Timeout | PopError::Empty) => {}
            // A message whose bytes fail their CRC32C was taken and is not sent.
            Err(PopError::Checksum(e)) => {
                if add_drop(&stats.dropped_local, 1) {
                    tracing::warn!(channel = name, "dropping a corrupt message: {e}");
                }
            }
            // Every sender is gone and all they sent was taken: wait for another, unless the
            // channel's file was unlinked or replaced (its sender made it and went): the
            // thread ends, and the scanner exports the new channel of the name.
            Err(PopError::Disconnected) => {
                if file_id(&path) != inode {
                    tracing::info!(channel = name, "channel removed or re-created");
                    break;
                }
                std::thread::sleep(POLL);
            }
            Err(e) => {
                tracing::warn!(channel = name, "channel export ended: {e}");
                break;
            }
        }
    }
    stats.active.store(false, Ordering::Relaxed);
    drop(token);
    drop(publisher);
    let _ = credit_sub.undeclare().wait();
}

/// The device and inode of the file at `path`, if there is one.
fn file_id(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(test)]
mod adversarial;

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(importer: &str, last: Option<u64>, window: u64) -> Grant {
        Grant {
            importer: importer.into(),
            last,
            window,
        }
    }

    /// Sends as the exporter thread does until the credit runs out; the sequence numbers sent.
    fn drain(c: &Credit, stats: &TopicStats) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        while let Some((i, seq)) = c.wait(stats) {
            c.sent(seq);
            out.push((i, seq));
        }
        out
    }

    #[test]
    fn credit_bounds_what_is_sent_and_follows_one_importer() {
        let (c, stats) = (Credit::default(), TopicStats::default());
        assert!(c.wait(&stats).is_none(), "no importer, no credit");
        c.grant(&grant("x", None, 3));
        let sent = drain(&c, &stats);
        assert_eq!(sent.iter().map(|s| s.1).collect::<Vec<_>>(), [0, 1, 2]);
        // X wrote 0 and 1: two more.
        c.grant(&grant("x", Some(1), 3));
        assert_eq!(drain(&c, &stats).len(), 2);
        // Another importer is ignored while X is heard and reachable...
        c.grant(&grant("y", None, 10));
        assert!(c.wait(&stats).is_none());
        // ...and followed once Zenoh no longer matches X.
        let reach = Arc::new(AtomicBool::new(false));
        c.set_reachable("x", reach.clone());
        c.grant(&grant("y", None, 10));
        let sent = drain(&c, &stats);
        assert_eq!(sent.len(), 10);
        assert!(sent.iter().all(|s| s.0 == "y" && s.1 >= 5));
        // A late grant of X with its old `last` (it is back) does not stall the channel.
        let reach_y = Arc::new(AtomicBool::new(false));
        c.set_reachable("y", reach_y);
        c.grant(&grant("x", Some(1), 3));
        assert_eq!(
            drain(&c, &stats).len(),
            3,
            "X followed again, from where we are"
        );
        assert!(stats.credit_waits.load(Ordering::Relaxed) > 0);
    }
}
