//! Credit for topics under `block` (DECISIONS D69): every importing bridge whose rule says
//! `overflow = "block"` grants the exporter room for `queue` messages beyond the last one it
//! wrote, on `shmbus-credit-t/<domain>/<exporter zid>/<topic>`; a tethered export with
//! `congestion = "block"` reads the next message only when every importer it has heard from
//! in the last 2 s allows it. So a block import's queue never overflows, and a slow remote
//! subscriber holds the local publisher back through the tethered export instead.

use crate::channel::keys::Grant;
use crate::keys::{escape_chunk, topic_chunks, KeyError};
use crate::status::{add, TopicStats};
use crate::Shared;
use std::collections::HashMap;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};
use zenoh::key_expr::OwnedKeyExpr;
use zenoh::Wait;

/// The first chunk of every topic credit key.
pub const CREDIT_PREFIX: &str = "shmbus-credit-t";

/// An importer unheard of for this long no longer holds the export back.
const FORGET_AFTER: Duration = Duration::from_secs(2);
/// How often an importer grants again.
const HEARTBEAT: Duration = Duration::from_millis(200);

/// Where importers grant the exporting bridge `exporter` credit for `topic`.
///
/// # Errors
///
/// [`KeyError::KeyExpr`] (not expected: escaped chunks are always valid).
pub fn credit_key(domain: &str, exporter: &str, topic: &str) -> Result<OwnedKeyExpr, KeyError> {
    let s = format!(
        "{CREDIT_PREFIX}/{}/{}/{}",
        escape_chunk(domain),
        escape_chunk(exporter),
        topic_chunks(topic)
    );
    OwnedKeyExpr::try_from(s.clone()).map_err(|_| KeyError::KeyExpr(s))
}

struct Peer {
    base: Option<u64>,
    limit: u64,
    window: u64,
    heard: Instant,
}

#[derive(Default)]
struct State {
    peers: HashMap<String, Peer>,
    /// The sequence number after the last message the export sent.
    next: u64,
}

/// The exporter's side: what each importer allows.
#[derive(Default)]
pub(crate) struct ExportCredit {
    state: Mutex<State>,
    changed: Condvar,
}

impl ExportCredit {
    /// The Zenoh callback of the credit key.
    pub(crate) fn grant(&self, g: &Grant) {
        // No import rule grants no room (a queue of 0 is refused by the configuration): such
        // a grant is bogus or foreign, and would hold the export back for good.
        if g.window == 0 {
            return;
        }
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        // A new importer's window counts from the export's position: a message read while
        // no importer held the export back (and sent after this grant) is in it.
        let next = st.next;
        let p = st.peers.entry(g.importer.clone()).or_insert(Peer {
            base: Some(next),
            limit: 0,
            window: g.window,
            heard: Instant::now(),
        });
        p.heard = Instant::now();
        p.window = g.window;
        // A `last` beyond what the export sent (a bogus or replayed grant) opens no more than
        // the window beyond what was really sent.
        if let Some(l) = g.last.filter(|_| next > 0).map(|l| l.min(next - 1)) {
            p.limit = p.limit.max(l.saturating_add(1).saturating_add(g.window));
        }
        drop(st);
        self.changed.notify_all();
    }

    /// The message numbered `seq` was sent.
    pub(crate) fn sent(&self, seq: u64) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.next = st.next.max(seq.saturating_add(1));
    }

    /// Whether the message numbered `next` may be read now; waits at most `wait` for it.
    pub(crate) fn allows(&self, next: u64, wait: Duration, stats: &TopicStats) -> bool {
        let mut peers = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let ok = |st: &mut State| {
            let peers = &mut st.peers;
            peers.retain(|_, p| p.heard.elapsed() < FORGET_AFTER);
            peers.values_mut().all(|p| {
                // The window counts from where the export was when it first (or again) heard
                // the importer, at least: one heard again after a silence has an old `last`,
                // and must not stall the topic for good.
                let base = *p.base.get_or_insert(next);
                p.limit = p.limit.max(base.saturating_add(p.window));
                next < p.limit
            })
        };
        if ok(&mut peers) {
            return true;
        }
        add(&stats.credit_waits, 1);
        peers = self
            .changed
            .wait_timeout(peers, wait)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
        ok(&mut peers)
    }
}

struct Origin {
    last: Option<u64>,
    granted: Option<u64>,
    live: bool,
}

/// The importer's side: what it granted each exporter of one topic.
pub(crate) struct ImportGrants {
    topic: String,
    window: u64,
    origins: HashMap<String, Origin>,
    heartbeat_at: Instant,
}

impl ImportGrants {
    pub(crate) fn new(topic: &str, window: usize) -> Self {
        ImportGrants {
            topic: topic.to_string(),
            window: window as u64,
            origins: HashMap::new(),
            heartbeat_at: Instant::now(),
        }
    }

    /// An exporter announced the topic (`true`) or went (`false`).
    pub(crate) fn live(&mut self, shared: &Shared, origin: &str, live: bool) {
        let o = self.origins.entry(origin.to_string()).or_insert(Origin {
            last: None,
            granted: None,
            live,
        });
        o.live = live;
        if live {
            self.send(shared, origin);
        }
    }

    /// The message `seq` of `origin` was written (or dropped for good); grants again when a
    /// quarter of the window was used, or when nothing more is queued.
    pub(crate) fn done(&mut self, shared: &Shared, origin: &str, seq: u64, queue_empty: bool) {
        let w = self.window;
        let Some(o) = self.origins.get_mut(origin) else {
            return;
        };
        o.last = Some(o.last.map_or(seq, |l| l.max(seq)));
        let limit = seq.saturating_add(1).saturating_add(w);
        if queue_empty
            || o.granted
                .is_none_or(|g| limit >= g.saturating_add((w / 4).max(1)))
        {
            self.send(shared, origin);
        }
    }

    /// Grants every live exporter again, every 200 ms.
    pub(crate) fn heartbeat(&mut self, shared: &Shared) {
        if Instant::now() < self.heartbeat_at {
            return;
        }
        self.heartbeat_at = Instant::now() + HEARTBEAT;
        let live: Vec<String> = self
            .origins
            .iter()
            .filter(|(_, o)| o.live)
            .map(|(k, _)| k.clone())
            .collect();
        for o in live {
            self.send(shared, &o);
        }
    }

    fn send(&mut self, shared: &Shared, origin: &str) {
        let w = self.window;
        let Some(o) = self.origins.get_mut(origin).filter(|o| o.live) else {
            return;
        };
        o.granted = Some(o.last.map_or(0, |l| l.saturating_add(1).saturating_add(w)));
        let g = Grant {
            importer: shared.zid.clone(),
            last: o.last,
            window: w,
        };
        match credit_key(&shared.config.domain, origin, &self.topic) {
            Ok(k) => {
                if let Err(e) = shared.session.put(k, g.encode()).wait() {
                    tracing::debug!(topic = %self.topic, "credit grant not sent: {e}");
                }
            }
            Err(e) => tracing::error!(topic = %self.topic, "no credit key: {e}"),
        }
    }
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

    #[test]
    fn the_slowest_importer_sets_the_pace() {
        let (c, stats) = (ExportCredit::default(), TopicStats::default());
        let z = Duration::ZERO;
        assert!(
            c.allows(1000, z, &stats),
            "no block importer: nothing held back"
        );
        // Two block importers appear (no message of ours written yet): 10 from here.
        c.sent(999);
        c.grant(&grant("fast", None, 10));
        c.grant(&grant("slow", None, 10));
        assert!(c.allows(1000, z, &stats) && c.allows(1009, z, &stats));
        assert!(!c.allows(1010, z, &stats));
        // The export sent 1000..=1009 (a `last` beyond what was sent counts as the last sent).
        c.sent(1009);
        c.grant(&grant("fast", Some(1008), 10));
        c.grant(&grant("slow", Some(1003), 10));
        assert!(c.allows(1013, z, &stats));
        assert!(!c.allows(1014, z, &stats), "slow wrote 1003: up to 1013");
        c.sent(1013);
        c.grant(&grant("slow", Some(1012), 10));
        assert!(c.allows(1018, z, &stats));
        assert!(!c.allows(1019, z, &stats), "fast wrote 1008: up to 1018");
        assert!(
            stats
                .credit_waits
                .load(std::sync::atomic::Ordering::Relaxed)
                >= 2
        );
    }

    #[test]
    fn an_importer_heard_again_with_an_old_last_does_not_stall() {
        let (c, stats) = (ExportCredit::default(), TopicStats::default());
        let z = Duration::ZERO;
        c.sent(99);
        c.grant(&grant("b", None, 4));
        assert!(c.allows(100, z, &stats) && c.allows(103, z, &stats));
        assert!(!c.allows(104, z, &stats));
        // Forgotten after its silence; heard again with the `last` it had.
        c.state.lock().unwrap().peers.get_mut("b").unwrap().heard =
            Instant::now() - FORGET_AFTER - Duration::from_millis(1);
        assert!(
            c.allows(500, z, &stats),
            "a silent importer holds nothing back"
        );
        // Its window counts from where the export is, not from its old `last`.
        c.sent(502);
        c.grant(&grant("b", Some(103), 4));
        assert!(c.allows(503, z, &stats) && c.allows(506, z, &stats));
        assert!(!c.allows(507, z, &stats));
    }
}
