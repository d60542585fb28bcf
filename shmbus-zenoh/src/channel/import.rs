//! Channel import: Zenoh to local channels, with credit. One Zenoh subscriber for the
//! channel liveliness tokens of the domain and one for the data keys addressed to this bridge
//! hand what arrives to a per-channel queue without waiting; a thread per channel writes the
//! queue into the channel as its sender ([`RawSender`]) and grants each exporter credit for
//! `window` messages beyond the last it wrote, so the queue never holds more than `window`
//! (DECISIONS D68).

use super::keys::{channel_of_data_key, credit_key, parse_live_key, ChannelAnnounce, Grant};
use super::{importing_flag, sending_flag};
use crate::config::ChannelImportRule;
use crate::keys::Meta;
use crate::status::{add, add_drop, Direction, Kind, TopicStats};
use crate::Shared;
use shmbus::raw_channel::{RawChannelBuilder, RawSender};
use shmbus::ring::PushError;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use zenoh::sample::{Sample, SampleKind};
use zenoh::Wait;

/// How often every live exporter is granted again (a lost grant costs at most this).
const HEARTBEAT: Duration = Duration::from_millis(200);
/// How long a write into a full ring, or a wait on an empty queue, lasts before the thread
/// grants again and looks at the shutdown flag.
const POLL: Duration = Duration::from_millis(100);
/// How long a failed sender creation waits before the next try.
const RETRY: Duration = Duration::from_millis(500);

enum Item {
    Announce(ChannelAnnounce),
    Gone(String),
    Data(Meta, Vec<u8>),
}

/// One imported channel: its queue, counters and flag.
struct Chan {
    name: String,
    rule: ChannelImportRule,
    queue: Mutex<VecDeque<Item>>,
    ready: Condvar,
    stats: Arc<TopicStats>,
    importing: Arc<AtomicBool>,
    /// Up while this bridge holds a sender of the channel.
    sending: Arc<AtomicBool>,
}

impl Chan {
    /// Queues `item`; never waits beyond the lock. Credit keeps each exporter's data items
    /// within its window (each exporter of the channel is granted a window of its own); one
    /// beyond it (an exporter that ignored its credit) is dropped and counted.
    fn push(&self, item: Item) {
        let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let beyond = match &item {
            Item::Data(meta, _) => {
                let queued = q
                    .iter()
                    .filter(|i| matches!(i, Item::Data(m, _) if m.origin == meta.origin))
                    .count();
                queued >= self.rule.window
            }
            _ => false,
        };
        if beyond {
            drop(q);
            if add_drop(&self.stats.dropped_queue, 1) {
                tracing::warn!(channel = %self.name, "a message beyond the granted credit, dropped");
            }
            return;
        }
        q.push_back(item);
        drop(q);
        self.ready.notify_one();
    }

    /// The next item, waiting at most `POLL`.
    fn pop(&self) -> Option<Item> {
        let q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let mut q = self
            .ready
            .wait_timeout_while(q, POLL, |q| q.is_empty())
            .unwrap_or_else(PoisonError::into_inner)
            .0;
        q.pop_front()
    }

    fn has_data(&self) -> bool {
        let q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        q.iter().any(|i| matches!(i, Item::Data(..)))
    }
}

type Chans = HashMap<String, (Arc<Chan>, JoinHandle<()>)>;

/// The channel import side of a bridge.
pub(crate) struct ChannelImporter {
    shared: Arc<Shared>,
    chans: Mutex<Chans>,
}

impl ChannelImporter {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        ChannelImporter {
            shared,
            chans: Mutex::new(HashMap::new()),
        }
    }

    fn chan(&self, name: &str) -> Option<Arc<Chan>> {
        let mut chans = self.chans.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((c, _)) = chans.get(name) {
            return Some(c.clone());
        }
        let rule = self.shared.config.channel_import_rule(name)?.clone();
        let chan = Arc::new(Chan {
            name: name.to_string(),
            rule,
            queue: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            stats: self
                .shared
                .registry
                .counters(Kind::Channel, name, Direction::Import),
            importing: importing_flag(&self.shared, name),
            sending: sending_flag(&self.shared, name),
        });
        let (c, s) = (chan.clone(), self.shared.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("import {name}"))
            .spawn(move || Drain::new(&s, &c).run());
        match spawned {
            Ok(h) => {
                chans.insert(name.to_string(), (chan.clone(), h));
                Some(chan)
            }
            Err(e) => {
                tracing::error!(channel = name, "cannot start an import thread: {e}");
                None
            }
        }
    }

    /// The data subscriber's callback.
    pub(crate) fn on_sample(&self, sample: &Sample) {
        let (domain, zid) = (&self.shared.config.domain, &self.shared.zid);
        let key = sample.key_expr().as_str();
        let name = match channel_of_data_key(domain, zid, key) {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!("ignoring {key}: {e}");
                return;
            }
        };
        let Some(chan) = self.chan(&name) else {
            return;
        };
        match sample.attachment().map(|a| Meta::decode(&a.to_bytes())) {
            Some(Ok(meta)) => chan.push(Item::Data(meta, sample.payload().to_bytes().into_owned())),
            Some(Err(e)) => {
                add(&chan.stats.mismatched, 1);
                tracing::warn!(channel = %name, "dropping a sample: {e}");
            }
            None => {
                add(&chan.stats.mismatched, 1);
                tracing::warn!(channel = %name, "dropping a sample without a shmbus attachment");
            }
        }
    }

    /// The liveliness subscriber's callback.
    pub(crate) fn on_token(&self, sample: &Sample) {
        let key = sample.key_expr().as_str();
        let a = match parse_live_key(&self.shared.config.domain, key) {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!("ignoring token {key}: {e}");
                return;
            }
        };
        if a.origin == self.shared.zid {
            return;
        }
        let registry = &self.shared.registry;
        let Some(chan) = self.chan(&a.channel) else {
            return;
        };
        match sample.kind() {
            SampleKind::Put => {
                tracing::info!(channel = %a.channel, origin = %a.origin, "remote channel appeared");
                registry.remote(&a.origin, &a.channel, Some(&a.identity.type_name));
                chan.push(Item::Announce(a));
            }
            SampleKind::Delete => {
                tracing::info!(channel = %a.channel, origin = %a.origin, "remote channel went");
                registry.remote(&a.origin, &a.channel, None);
                chan.push(Item::Gone(a.origin));
            }
        }
    }

    /// Joins the channels' threads (after shutdown was flagged).
    pub(crate) fn join(&self) {
        let chans = std::mem::take(&mut *self.chans.lock().unwrap_or_else(PoisonError::into_inner));
        for (_, (c, h)) in chans {
            c.ready.notify_all();
            let _ = h.join();
        }
    }
}

/// What the importer knows of one exporter of the channel.
struct Origin {
    announce: Option<ChannelAnnounce>,
    /// The sequence number of its last message written (or dropped for good).
    last: Option<u64>,
    /// The limit last granted (`last + 1 + window`), to grant again only when it moved.
    granted: Option<u64>,
    live: bool,
}

/// A channel thread's state.
struct Drain<'a> {
    shared: &'a Shared,
    chan: &'a Chan,
    sender: Option<RawSender>,
    retry_at: Instant,
    origins: HashMap<String, Origin>,
    heartbeat_at: Instant,
}

/// What became of a message.
enum Outcome {
    Written,
    /// Dropped for good (counted): too large for the ring.
    Dropped,
    /// Refused for good (counted): a message of another type than the channel here, or a
    /// channel here that this bridge cannot send into. Its exporter gets no more credit.
    Refused,
    /// Shutting down before it was written.
    Stopped,
}

impl<'a> Drain<'a> {
    fn new(shared: &'a Shared, chan: &'a Chan) -> Self {
        Drain {
            shared,
            chan,
            sender: None,
            retry_at: Instant::now(),
            origins: HashMap::new(),
            heartbeat_at: Instant::now(),
        }
    }

    fn run(mut self) {
        while !self.shared.stopping() {
            if let Some(item) = self.chan.pop() {
                self.item(item);
            }
            self.heartbeat();
        }
        self.chan.stats.active.store(false, Ordering::Relaxed);
        drop(self.sender.take());
        self.chan.sending.store(false, Ordering::Relaxed);
        self.chan.importing.store(false, Ordering::Relaxed);
    }

    /// Handles one item of the queue.
    fn item(&mut self, item: Item) {
        match item {
            Item::Announce(a) => {
                let origin = a.origin.clone();
                // Made now, so that receivers here can open the channel before its first
                // message; an attempt that is not possible now is retried with the data.
                let refused = match self.ensure_sender(&a) {
                    Ok(()) => self.sender.as_ref().is_some_and(|s| {
                        let id = &s.info().identity;
                        id.fingerprint != a.identity.fingerprint
                            || id.codec_id != a.identity.codec_id
                    }),
                    Err(permanent) => permanent,
                };
                if refused {
                    // Its messages could not be written here: it gets no credit, so they stay
                    // in its channel on its host, where its senders feel the back-pressure.
                    add(&self.chan.stats.refused, 1);
                    tracing::warn!(channel = %self.chan.name, origin = %origin, type_name = %a.identity.type_name, "an exporter of another type than the channel here: no credit");
                    if let Some(o) = self.origins.get_mut(&origin) {
                        o.live = false;
                    }
                    return;
                }
                let o = self.origins.entry(origin.clone()).or_insert(Origin {
                    announce: None,
                    last: None,
                    granted: None,
                    live: true,
                });
                // Back after its token went: a bridge restarted under the same Zenoh id (a
                // fixed `id`) numbers from 0 again; its old numbers must not make its new
                // messages duplicates. (Its old messages all came before its token went.)
                if !o.live {
                    o.last = None;
                    o.granted = None;
                }
                o.announce = Some(a);
                o.live = true;
                self.grant(&origin);
            }
            Item::Gone(origin) => {
                if let Some(o) = self.origins.get_mut(&origin) {
                    o.live = false;
                }
            }
            Item::Data(meta, bytes) => self.data(&meta, &bytes),
        }
    }

    /// The channel's sender, made (or the channel created) with the announced identity if
    /// there is none yet. `Err(true)`: refused for good (another type or flavor);
    /// `Err(false)`: not now (an SPSC channel whose sender is alive here), retried.
    fn ensure_sender(&mut self, a: &ChannelAnnounce) -> Result<(), bool> {
        if self.sender.is_some() {
            return Ok(());
        }
        if Instant::now() < self.retry_at {
            return Err(false);
        }
        let c = self.chan;
        // Flagged before the channel exists: the export scanner never takes it up.
        c.importing.store(true, Ordering::Relaxed);
        let capacity = c
            .rule
            .capacity
            .or((a.capacity > 0).then_some(a.capacity))
            .unwrap_or(shmbus::DEFAULT_CAPACITY);
        let b = RawChannelBuilder::new(a.identity.clone(), a.flavor)
            .capacity(capacity)
            .max_message(usize::try_from(a.max_message).unwrap_or(usize::MAX))
            .checksum(a.checksum)
            .shm_dir(self.shared.config.resolved_shm_dir());
        match b.sender(&c.name) {
            Ok(s) => {
                tracing::info!(channel = %c.name, type_name = %a.identity.type_name, "importing channel");
                c.stats.active.store(true, Ordering::Relaxed);
                c.sending.store(true, Ordering::Relaxed);
                self.sender = Some(s);
                Ok(())
            }
            Err(e) => {
                let permanent = matches!(
                    e,
                    shmbus::Error::TypeMismatch { .. }
                        | shmbus::Error::Ring(shmbus::ring::Error::WrongKind { .. })
                );
                // Not importing after all: the scanner may export the channel (a local one
                // of another type, say), as for topics (DECISIONS D62).
                c.importing.store(false, Ordering::Relaxed);
                tracing::warn!(channel = %c.name, "cannot send into the imported channel: {e}");
                self.retry_at = Instant::now() + RETRY;
                Err(permanent)
            }
        }
    }

    fn data(&mut self, meta: &Meta, bytes: &[u8]) {
        let stats = &self.chan.stats;
        let o = self.origins.entry(meta.origin.clone()).or_insert(Origin {
            announce: None,
            last: None,
            granted: None,
            live: false,
        });
        match o.last {
            Some(l) if meta.seq <= l => {
                add(&stats.duplicates, 1);
                return;
            }
            Some(l) if meta.seq > l.saturating_add(1) => {
                add(&stats.gaps, meta.seq - l - 1);
                tracing::warn!(channel = %self.chan.name, missed = meta.seq - l - 1, "gap in the exporter's sequence");
            }
            _ => {}
        }
        let announce = o.announce.clone();
        match self.write(meta, bytes, announce.as_ref()) {
            Outcome::Stopped => return,
            Outcome::Written => add(&stats.forwarded, 1),
            Outcome::Dropped => {}
            Outcome::Refused => {
                // No more credit: what it has not sent yet stays in its channel (DECISIONS D68).
                if let Some(o) = self.origins.get_mut(&meta.origin) {
                    o.live = false;
                }
            }
        }
        if let Some(o) = self.origins.get_mut(&meta.origin) {
            o.last = Some(meta.seq);
        }
        // Grant again when a quarter of the window was used, or when the queue ran dry (so
        // that a slow stream is never left waiting for a heartbeat).
        let window = self.chan.rule.window as u64;
        let moved = self.origins.get(&meta.origin).is_some_and(|o| {
            let limit = o
                .last
                .map_or(0, |l| l.saturating_add(1).saturating_add(window));
            o.granted
                .is_none_or(|g| limit >= g.saturating_add((window / 4).max(1)))
        });
        if moved || !self.chan.has_data() {
            self.grant(&meta.origin);
        }
    }

    /// Writes one message into the channel, waiting as long as its receivers need.
    fn write(&mut self, meta: &Meta, bytes: &[u8], a: Option<&ChannelAnnounce>) -> Outcome {
        let stats = &self.chan.stats;
        loop {
            if self.shared.stopping() {
                return Outcome::Stopped;
            }
            if self.sender.is_none() {
                let refused = match a {
                    Some(a) => self.ensure_sender(a).err(),
                    None => Some(true),
                };
                match refused {
                    Some(true) => {
                        add(&stats.refused, 1);
                        return Outcome::Refused;
                    }
                    Some(false) => {
                        self.heartbeat();
                        std::thread::sleep(POLL);
                        continue;
                    }
                    None => {}
                }
            }
            let Some(s) = self.sender.as_mut() else {
                continue;
            };
            let id = &s.info().identity;
            if id.fingerprint != meta.identity.fingerprint || id.codec_id != meta.identity.codec_id
            {
                add(&stats.mismatched, 1);
                tracing::warn!(channel = %self.chan.name, expected = id.fingerprint, found = meta.identity.fingerprint, "dropping a message of another type");
                return Outcome::Refused;
            }
            match s.send_deadline(bytes, Some(Instant::now() + POLL)) {
                Ok(()) => return Outcome::Written,
                // Full, or no receiver attached now: wait (lossless), granting meanwhile.
                Err(PushError::Timeout | PushError::Full) => self.heartbeat(),
                Err(PushError::Disconnected) => {
                    std::thread::sleep(POLL);
                    self.heartbeat();
                }
                Err(e) => {
                    if add_drop(&stats.dropped_ring, 1) {
                        tracing::warn!(channel = %self.chan.name, "the local channel did not take an imported message: {e}");
                    }
                    return Outcome::Dropped;
                }
            }
        }
    }

    /// Grants `origin` room for `window` messages beyond the last written.
    fn grant(&mut self, origin: &str) {
        let window = self.chan.rule.window as u64;
        let Some(o) = self.origins.get_mut(origin) else {
            return;
        };
        if !o.live {
            return;
        }
        let g = Grant {
            importer: self.shared.zid.clone(),
            last: o.last,
            window,
        };
        o.granted = Some(
            o.last
                .map_or(0, |l| l.saturating_add(1).saturating_add(window)),
        );
        let key = match credit_key(&self.shared.config.domain, origin, &self.chan.name) {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(channel = %self.chan.name, "no credit key: {e}");
                return;
            }
        };
        if let Err(e) = self.shared.session.put(key, g.encode()).wait() {
            tracing::debug!(channel = %self.chan.name, "credit grant not sent: {e}");
        }
    }

    /// Grants every live exporter again, every `HEARTBEAT`.
    fn heartbeat(&mut self) {
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
        for origin in live {
            self.grant(&origin);
        }
    }
}

#[cfg(test)]
mod adversarial;
