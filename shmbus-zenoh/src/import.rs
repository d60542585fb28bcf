//! Import: Zenoh to local topics. One Zenoh subscriber for the domain's data keys and one
//! for its liveliness tokens hand what arrives to a bounded per-topic queue, without ever
//! waiting (DECISIONS D61); a thread per topic drains the queue into the topic's ring as its
//! publisher ([`RawPublisher`]), created with the identity the exporter announced.

use crate::config::{ImportRule, Overflow};
use crate::keys::{parse_live_key, topic_of_data_key, Meta};
use crate::status::{add, add_drop, Direction, TopicStats};
use crate::topic_credit::ImportGrants;
use crate::Shared;
use shmbus::topic::{RawIdentity, RawPublisher, RawPublisherBuilder};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use zenoh::sample::{Sample, SampleKind};

/// How long a failed publisher creation waits before the next try.
const RETRY: Duration = Duration::from_millis(500);

/// What the Zenoh callbacks hand to a topic's thread.
enum Item {
    /// A remote bridge (its id) announced the topic (its liveliness token).
    Announce(String, RawIdentity, u32),
    /// That bridge's token went.
    Gone(String),
    /// A message.
    Data(Meta, Vec<u8>),
}

/// One imported topic: its queue and its thread's state.
struct Topic {
    name: String,
    rule: ImportRule,
    queue: Mutex<VecDeque<Item>>,
    ready: Condvar,
    stats: Arc<TopicStats>,
    importing: Arc<AtomicBool>,
}

impl Topic {
    /// Queues `item` as the rule's overflow policy says. Never waits beyond the queue's
    /// lock, which the drain thread holds only to pop.
    fn push(&self, item: Item) {
        let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let data = |q: &VecDeque<Item>| q.iter().filter(|i| matches!(i, Item::Data(..))).count();
        if matches!(item, Item::Data(..)) && data(&q) >= self.rule.queue {
            if add_drop(&self.stats.dropped_queue, 1) {
                tracing::warn!(
                    topic = %self.name,
                    dropped = self.stats.dropped_queue.load(Ordering::Relaxed),
                    policy = ?self.rule.overflow,
                    "import queue full, dropping"
                );
            }
            if self.rule.overflow == Overflow::DropOldest {
                if let Some(at) = q.iter().position(|i| matches!(i, Item::Data(..))) {
                    q.remove(at);
                    q.push_back(item);
                }
            }
            // drop_newest and block: the new message is the one dropped.
        } else {
            q.push_back(item);
        }
        drop(q);
        self.ready.notify_one();
    }

    /// The next item, waiting at most 100 ms.
    fn pop(&self) -> Option<Item> {
        let q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let mut q = self
            .ready
            .wait_timeout_while(q, Duration::from_millis(100), |q| q.is_empty())
            .unwrap_or_else(PoisonError::into_inner)
            .0;
        q.pop_front()
    }

    fn queue_empty(&self) -> bool {
        let q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        !q.iter().any(|i| matches!(i, Item::Data(..)))
    }
}

/// The imported topics by name, with their threads.
type Topics = HashMap<String, (Arc<Topic>, JoinHandle<()>)>;

/// The import side of a bridge.
pub(crate) struct Importer {
    shared: Arc<Shared>,
    topics: Mutex<Topics>,
}

impl Importer {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Importer {
            shared,
            topics: Mutex::new(HashMap::new()),
        }
    }

    /// The topic's queue, made (with its thread) on first use; `None` if no import rule
    /// matches it.
    fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        let mut topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((t, _)) = topics.get(name) {
            return Some(t.clone());
        }
        let rule = self.shared.config.import_rule(name)?.clone();
        let topic = Arc::new(Topic {
            name: name.to_string(),
            rule,
            queue: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            stats: self.shared.registry.topic(name, Direction::Import),
            importing: self.shared.registry.importing(name),
        });
        let (t, s) = (topic.clone(), self.shared.clone());
        let handle = std::thread::Builder::new()
            .name(format!("import {name}"))
            .spawn(move || drain(&s, &t));
        match handle {
            Ok(h) => {
                topics.insert(name.to_string(), (topic.clone(), h));
                Some(topic)
            }
            Err(e) => {
                tracing::error!(topic = name, "cannot start an import thread: {e}");
                None
            }
        }
    }

    /// The data subscriber's callback.
    pub(crate) fn on_sample(&self, sample: &Sample) {
        let domain = &self.shared.config.domain;
        let key = sample.key_expr().as_str();
        let name = match topic_of_data_key(domain, key) {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!("ignoring {key}: {e}");
                return;
            }
        };
        let Some(topic) = self.topic(&name) else {
            return;
        };
        let meta = match sample.attachment().map(|a| Meta::decode(&a.to_bytes())) {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                add(&topic.stats.mismatched, 1);
                tracing::warn!(topic = %name, "dropping a sample: {e}");
                return;
            }
            None => {
                add(&topic.stats.mismatched, 1);
                tracing::warn!(topic = %name, "dropping a sample without a shmbus attachment");
                return;
            }
        };
        topic.push(Item::Data(meta, sample.payload().to_bytes().into_owned()));
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
        match sample.kind() {
            SampleKind::Put => {
                tracing::info!(topic = %a.topic, origin = %a.origin, "remote topic appeared");
                registry.remote(&a.origin, &a.topic, Some(&a.identity.type_name));
                if let Some(topic) = self.topic(&a.topic) {
                    topic.push(Item::Announce(a.origin, a.identity, a.max_message));
                }
            }
            SampleKind::Delete => {
                tracing::info!(topic = %a.topic, origin = %a.origin, "remote topic went");
                registry.remote(&a.origin, &a.topic, None);
                if let Some(topic) = self.topic(&a.topic) {
                    topic.push(Item::Gone(a.origin));
                }
            }
        }
    }

    /// Joins the topics' threads (after shutdown was flagged).
    pub(crate) fn join(&self) {
        let topics =
            std::mem::take(&mut *self.topics.lock().unwrap_or_else(PoisonError::into_inner));
        for (_, (t, h)) in topics {
            t.ready.notify_all();
            let _ = h.join();
        }
    }
}

/// A topic thread's state.
struct Drain<'a> {
    shared: &'a Shared,
    topic: &'a Topic,
    publisher: Option<RawPublisher>,
    retry_at: Instant,
    last: Option<(String, u64)>,
    /// Under `block`: the credit granted to each exporter (DECISIONS D69).
    grants: Option<ImportGrants>,
}

impl Drain<'_> {
    /// The topic's publisher, created with `identity` if there is none yet.
    fn publisher(&mut self, identity: &RawIdentity, max: u32) -> Option<&mut RawPublisher> {
        if self.publisher.is_none() && Instant::now() >= self.retry_at {
            let t = self.topic;
            // Flagged before the ring exists, so the exporter never reads a record of ours
            // unflagged (DECISIONS D62).
            t.importing.store(true, Ordering::Relaxed);
            let mut b = RawPublisherBuilder::new(identity.clone())
                .max_message(usize::try_from(max).unwrap_or(usize::MAX))
                .shm_dir(self.shared.config.resolved_shm_dir());
            if let Some(cap) = t.rule.capacity_bytes {
                b = b.capacity_bytes(cap);
            }
            match b.create(&t.name) {
                Ok(p) => {
                    tracing::info!(topic = %t.name, type_name = %identity.type_name, "importing");
                    t.stats.active.store(true, Ordering::Relaxed);
                    self.publisher = Some(p);
                }
                Err(e) => {
                    t.importing.store(false, Ordering::Relaxed);
                    tracing::warn!(topic = %t.name, "cannot publish the imported topic: {e}");
                    self.retry_at = Instant::now() + RETRY;
                }
            }
        }
        self.publisher.as_mut()
    }

    fn data(&mut self, meta: &Meta, bytes: &[u8]) {
        self.write(meta, bytes);
        let empty = self.topic.queue_empty();
        if let Some(g) = self.grants.as_mut() {
            g.done(self.shared, &meta.origin, meta.seq, empty);
        }
    }

    fn write(&mut self, meta: &Meta, bytes: &[u8]) {
        let (topic, shared) = (self.topic, self.shared);
        let stats = &topic.stats;
        if self.publisher(&meta.identity, meta.max_message).is_none() {
            add(&stats.refused, 1);
            return;
        }
        let Some(p) = self.publisher.as_mut() else {
            return;
        };
        let id = p.identity();
        if id.fingerprint != meta.identity.fingerprint || id.codec_id != meta.identity.codec_id {
            add(&stats.mismatched, 1);
            tracing::warn!(
                topic = %topic.name,
                expected = id.fingerprint,
                found = meta.identity.fingerprint,
                "dropping a message of another type"
            );
            return;
        }
        match &self.last {
            Some((origin, seq)) if *origin == meta.origin && meta.seq <= *seq => {
                add(&stats.duplicates, 1);
                return;
            }
            Some((_, seq)) if meta.seq > seq.saturating_add(1) => {
                let missed = meta.seq - seq - 1;
                add(&stats.gaps, missed);
                tracing::warn!(topic = %topic.name, missed, "gap in the exporter's sequence");
            }
            _ => {}
        }
        self.last = Some((meta.origin.clone(), meta.seq));
        let block = topic.rule.overflow == Overflow::Block;
        let wait = if block {
            Duration::from_millis(100)
        } else {
            Duration::from_millis(topic.rule.ring_wait_ms)
        };
        loop {
            match p.send_until(bytes, Some(Instant::now() + wait)) {
                Ok(()) => add(&stats.forwarded, 1),
                // `block`: wait as long as the local subscribers need, but see shutdown.
                Err(e) if e.is_timeout() && block && !shared.stopping() => {
                    if let Some(g) = self.grants.as_mut() {
                        g.heartbeat(shared);
                    }
                    continue;
                }
                Err(e) => {
                    if add_drop(&stats.dropped_ring, 1) {
                        tracing::warn!(
                            topic = %topic.name,
                            dropped = stats.dropped_ring.load(Ordering::Relaxed),
                            "the local ring did not take an imported message: {e}"
                        );
                    }
                }
            }
            break;
        }
    }
}

/// A topic's thread: drains its queue into its ring until shutdown.
fn drain(shared: &Shared, topic: &Topic) {
    let mut d = Drain {
        shared,
        topic,
        publisher: None,
        retry_at: Instant::now(),
        last: None,
        grants: (topic.rule.overflow == Overflow::Block)
            .then(|| ImportGrants::new(&topic.name, topic.rule.queue)),
    };
    while !shared.stopping() {
        match topic.pop() {
            Some(Item::Announce(origin, identity, max)) => {
                d.publisher(&identity, max);
                if let Some(g) = d.grants.as_mut() {
                    g.live(shared, &origin, true);
                }
            }
            Some(Item::Gone(origin)) => {
                if let Some(g) = d.grants.as_mut() {
                    g.live(shared, &origin, false);
                }
            }
            Some(Item::Data(meta, bytes)) => d.data(&meta, &bytes),
            None => {}
        }
        if let Some(g) = d.grants.as_mut() {
            g.heartbeat(shared);
        }
    }
    topic.stats.active.store(false, Ordering::Relaxed);
    // The ring outlives us: its subscribers go on with the next bridge's messages.
    drop(d.publisher.take());
    topic.importing.store(false, Ordering::Relaxed);
}
