//! Broadcast topics: one publisher, any number of subscribers in any processes, each message
//! written once and read by every subscriber (issue 16).
//!
//! A topic is a named broadcast ring ([`shmbus_ring::broadcast`]) in its own shared-memory
//! segment, named by a fixed rule ([`segment_name`]: `sensors/temp` lives in
//! `/shmbus.topic.sensors.temp`). It speaks the channel layer's vocabulary: a
//! [`PublisherBuilder`] (start with [`publisher`]) and a [`SubscriberBuilder`] (start with
//! [`subscriber`]) choose the [codec](crate::codec) and the type, checked by fingerprint when a
//! subscriber opens the topic, as a channel's receiver is.
//!
//! - **One publisher per topic** at a time. A second live one is refused
//!   ([`Error::PublisherAlive`]); one whose process died, or that was dropped, is succeeded
//!   by the next [`create`](PublisherBuilder::create), which goes on in the same ring: the
//!   subscribers stay attached and see the successor's messages. (A topic as a set of rings,
//!   one per publisher, is future work.)
//! - **Subscribers** are *tethered* (the default: lossless, the publisher waits for them as
//!   its [`SlowSubscribers`] policy says) or *untethered* (never slow the publisher; a
//!   lapped one gets [`RecvError::Lagged`] with the number of messages it missed, then goes
//!   on from the latest). A subscriber chooses where it starts ([`StartAt`]): the next
//!   message, the latest, the last `n`, or the oldest still held.
//! - **Finding topics** needs no daemon: [`SubscriberBuilder::wait_for`] waits for a topic to
//!   be created (inotify on the shm directory, DECISIONS D44), and [`list`] reports the topics
//!   on this host.
//! - **Lifetime.** A topic's segment outlives its publisher, so that a successor can go on
//!   where it stopped and late subscribers still find the history; [`remove`] (or
//!   `shmbus rm`) unlinks it. [`PublisherBuilder::remove_on_drop`] makes a publisher remove
//!   its topic when dropped instead.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use shmbus::topic::{StartAt, TryRecvError};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Quote { symbol: String, price: f64 }
//!
//! let topic = format!("doc/quotes/{}", std::process::id());
//! // Process A: the publisher creates the topic.
//! let mut publisher = shmbus::topic::publisher::<Quote>().history(16).create(&topic)?;
//! publisher.send(&Quote { symbol: "ACME".into(), price: 1.5 })?;
//!
//! // Processes B and C: two subscribers, one of them late, starting with the latest quote.
//! let mut live = shmbus::topic::subscriber::<Quote>().open(&topic)?;
//! let mut late = shmbus::topic::subscriber::<Quote>().start_at(StartAt::Latest).open(&topic)?;
//! publisher.send(&Quote { symbol: "ACME".into(), price: 1.75 })?;
//! assert_eq!(live.recv()?.price, 1.75);
//! assert_eq!(late.recv()?.price, 1.5);
//! assert_eq!(late.recv()?.price, 1.75);
//! assert_eq!(live.try_recv(), Err(TryRecvError::Empty));
//!
//! // The wrong type is refused when subscribing, naming both types.
//! let err = shmbus::topic::subscriber::<String>().open(&topic).unwrap_err();
//! assert!(matches!(err, shmbus::Error::TypeMismatch { .. }));
//!
//! // Topics on this host.
//! let found = shmbus::topic::list()?;
//! assert!(found.iter().any(|t| t.name == topic && t.publisher_alive && t.subscribers == 2));
//! # drop((publisher, live, late));
//! shmbus::topic::remove(&topic)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod name;
mod publisher;
mod raw;
mod subscriber;
mod wait;

pub use error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
pub use name::{segment_name, topic_of, MAX_ESCAPED, MAX_TOPIC_LEN, SEGMENT_PREFIX};
pub use publisher::Publisher;
pub use raw::{RawIdentity, RawPublisher, RawPublisherBuilder, RawSubscribeOptions, RawSubscriber};
pub use shmbus_ring::broadcast::{SlowSubscribers, StartAt, SubscriberInfo};
pub use subscriber::{Iter, Subscriber, TryIter};

use crate::codec::{Bincode, Codec};
use crate::error::Error;
use crate::fingerprint::TypeIdentity;
use crate::flavor::Settings;
use shmbus_ring::broadcast::{BroadcastConfig, BroadcastRing, Subscription};
use shmbus_ring::liveness::Vitality;
use shmbus_ring::{Identity, OpenOptions, Role, Segment, SegmentOptions, WaitStrategy};
use std::marker::PhantomData;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The default ring size of a topic, in bytes (256 KiB).
pub const DEFAULT_CAPACITY_BYTES: u64 = 256 << 10;

/// The default maximum message size of a topic, in encoded bytes (for codecs whose messages
/// vary in size; [`Plain`](crate::codec::Plain) topics default to the type's size).
pub const DEFAULT_MAX_MESSAGE: usize = crate::DEFAULT_MAX_MESSAGE;

/// The default number of messages a late subscriber can ask for ([`StartAt::History`]).
pub const DEFAULT_HISTORY: u32 = shmbus_ring::broadcast::DEFAULT_HISTORY;

/// Starts building the publisher of a topic of `T` messages: bincode, a ring of
/// [`DEFAULT_CAPACITY_BYTES`], messages of up to [`DEFAULT_MAX_MESSAGE`] bytes, a history of
/// [`DEFAULT_HISTORY`] messages, [`SlowSubscribers::Block`], mode `0600`.
pub fn publisher<T>() -> PublisherBuilder<T>
where
    Bincode: Codec<T>,
{
    PublisherBuilder::new()
}

/// Starts building a subscriber of a topic of `T` messages: bincode, tethered, from the next
/// message ([`StartAt::Next`]).
pub fn subscriber<T>() -> SubscriberBuilder<T>
where
    Bincode: Codec<T>,
{
    SubscriberBuilder::new()
}

/// The builder's type parameters as a marker that is `Send + Sync` whatever they are.
type Types<T, C> = fn() -> (T, C);

/// Settings shared by both builders.
#[derive(Debug, Clone)]
struct Common {
    segment: SegmentOptions,
    endpoints: Settings,
    type_name: Option<String>,
    ready_timeout: Duration,
}

impl Common {
    fn new() -> Self {
        Common {
            segment: SegmentOptions::default(),
            endpoints: Settings::default(),
            type_name: None,
            ready_timeout: OpenOptions::default().ready_timeout,
        }
    }

    fn identity<T, C: Codec<T>>(&self) -> TypeIdentity {
        TypeIdentity::of::<T, C>(self.type_name.as_deref())
    }

    /// Opens the topic's ring in `seg` and checks that it is `topic`, carrying `T` by `C`.
    fn attach<T, C: Codec<T>>(
        &self,
        topic: &str,
        seg: Segment,
        ready_timeout: Duration,
    ) -> Result<BroadcastRing, Error> {
        let (ring, info, target) = open_named(topic, seg, ready_timeout)?;
        let expected = self.identity::<T, C>();
        let header = ring.header();
        if header.type_fingerprint != expected.fingerprint || header.codec_id != expected.codec_id {
            return Err(Error::TypeMismatch {
                target,
                found_fingerprint: header.type_fingerprint,
                found_codec_id: header.codec_id,
                found: info.map(Box::new),
                expected: Box::new(expected),
            });
        }
        Ok(ring)
    }
}

/// Opens the topic ring in `seg` and checks that its info region (if any) names `topic`: the
/// ring, its info, and the segment's name for errors. Typed and raw endpoints check the
/// recorded type after this, each in their own way.
pub(crate) fn open_named(
    topic: &str,
    seg: Segment,
    ready_timeout: Duration,
) -> Result<(BroadcastRing, Option<shmbus_ring::info::Info>, String), Error> {
    let target = seg.target();
    let opts = OpenOptions {
        ready_timeout,
        expect: None,
    };
    let ring = BroadcastRing::open_in(seg, &opts)?;
    let info = ring.info().ok().flatten();
    if let Some(found) = info.as_ref().map(|i| &i.name) {
        if found != topic {
            return Err(Error::TopicCollision {
                topic: topic.to_string(),
                target,
                found: found.clone(),
            });
        }
    }
    Ok((ring, info, target))
}

/// Settings for a topic's publisher; [`create`](Self::create) makes the topic (or succeeds a
/// dead publisher).
///
/// ```
/// use shmbus::topic::SlowSubscribers;
/// use std::time::Duration;
/// let topic = format!("doc/builder/{}", std::process::id());
/// let publisher = shmbus::topic::publisher::<Vec<u8>>()
///     .capacity_bytes(1 << 20)  // the ring: 1 MiB
///     .max_message(64 << 10)    // messages of up to 64 KiB encoded
///     .history(256)             // late subscribers may ask for the last 256
///     .slow_subscribers(SlowSubscribers::Untether { after: Duration::from_millis(50) })
///     .create(&topic)?;
/// assert_eq!(publisher.max_message(), 64 << 10);
/// # drop(publisher); shmbus::topic::remove(&topic)?;
/// # Ok::<(), shmbus::Error>(())
/// ```
pub struct PublisherBuilder<T, C = Bincode> {
    common: Common,
    capacity: u64,
    max_message: Option<usize>,
    history: u32,
    slow: SlowSubscribers,
    remove_on_drop: bool,
    _types: PhantomData<Types<T, C>>,
}

impl<T, C> std::fmt::Debug for PublisherBuilder<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublisherBuilder")
            .field("type", &std::any::type_name::<T>())
            .field("codec", &std::any::type_name::<C>())
            .field("capacity_bytes", &self.capacity)
            .field("max_message", &self.max_message)
            .field("history", &self.history)
            .field("slow_subscribers", &self.slow)
            .finish_non_exhaustive()
    }
}

impl<T, C> Clone for PublisherBuilder<T, C> {
    fn clone(&self) -> Self {
        PublisherBuilder {
            common: self.common.clone(),
            capacity: self.capacity,
            max_message: self.max_message,
            history: self.history,
            slow: self.slow,
            remove_on_drop: self.remove_on_drop,
            _types: PhantomData,
        }
    }
}

impl<T, C: Codec<T>> Default for PublisherBuilder<T, C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, C: Codec<T>> PublisherBuilder<T, C> {
    /// The defaults (see [`publisher`]).
    pub fn new() -> Self {
        PublisherBuilder {
            common: Common::new(),
            capacity: DEFAULT_CAPACITY_BYTES,
            max_message: None,
            history: DEFAULT_HISTORY,
            slow: SlowSubscribers::Block,
            remove_on_drop: false,
            _types: PhantomData,
        }
    }

    /// Encodes messages with `C2` ([`codec`](crate::codec)) instead of bincode.
    pub fn codec<C2: Codec<T>>(self) -> PublisherBuilder<T, C2> {
        PublisherBuilder {
            common: self.common,
            capacity: self.capacity,
            max_message: self.max_message,
            history: self.history,
            slow: self.slow,
            remove_on_drop: self.remove_on_drop,
            _types: PhantomData,
        }
    }

    /// The ring's size in bytes (default [`DEFAULT_CAPACITY_BYTES`]), rounded up to a power
    /// of two of at least 4 KiB and of twice the largest message (a record takes at most half
    /// a broadcast ring). It bounds how far a tethered subscriber may fall behind
    /// before the publisher waits, and how much history a late subscriber can still find.
    /// A successor publisher keeps the existing ring's size.
    pub fn capacity_bytes(mut self, bytes: u64) -> Self {
        self.capacity = bytes;
        self
    }

    /// The largest encoded message, in bytes (default [`DEFAULT_MAX_MESSAGE`]; for a
    /// fixed-size codec, the type's size). At most the ring's size less 16.
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.max_message = Some(bytes);
        self
    }

    /// How many of the latest messages a late subscriber may ask for with
    /// [`StartAt::History`] or [`StartAt::Oldest`] (default [`DEFAULT_HISTORY`]; a power of
    /// two, at most 2^20), as far as the ring still holds them.
    pub fn history(mut self, messages: u32) -> Self {
        self.history = messages;
        self
    }

    /// What a publish does when a tethered subscriber leaves no room (default
    /// [`SlowSubscribers::Block`]).
    pub fn slow_subscribers(mut self, policy: SlowSubscribers) -> Self {
        self.slow = policy;
        self
    }

    /// How blocking publishes wait (default [`WaitStrategy::default`]).
    pub fn wait_strategy(mut self, wait: WaitStrategy) -> Self {
        self.common.endpoints.wait = wait;
        self
    }

    /// How often a waiting publish checks that the tethered subscribers holding it up are
    /// alive (default 20 ms).
    pub fn probe_interval(mut self, interval: Duration) -> Self {
        self.common.endpoints.probe = interval;
        self
    }

    /// The type name that goes into the fingerprint instead of [`std::any::type_name`] (see
    /// [`fingerprint`](crate::fingerprint)); subscribers must use the same.
    pub fn type_name(mut self, name: impl Into<String>) -> Self {
        self.common.type_name = Some(name.into());
        self
    }

    /// Permission bits of a created segment (default `0o600`).
    pub fn mode(mut self, mode: u32) -> Self {
        self.common.segment = self.common.segment.mode(mode);
        self
    }

    /// The shm directory (default: `SHMBUS_DIR`, else `/dev/shm`).
    pub fn shm_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.common.segment = self.common.segment.shm_dir(dir);
        self
    }

    /// Whether the publisher removes the topic (unlinks its segment) when dropped (default
    /// `false`: the topic stays for a successor and for late subscribers; see the
    /// [module docs](self)). Subscribers attached then keep reading what was published.
    pub fn remove_on_drop(mut self, yes: bool) -> Self {
        self.remove_on_drop = yes;
        self
    }

    /// What this publisher carries: type, codec and fingerprint.
    pub fn identity(&self) -> TypeIdentity {
        self.common.identity::<T, C>()
    }

    fn config(&self, topic: &str) -> Result<BroadcastConfig, Error> {
        let max = self
            .max_message
            .or_else(C::fixed_len)
            .unwrap_or(DEFAULT_MAX_MESSAGE)
            .max(1);
        if let Some(limit) = C::decode_limit() {
            if max > limit {
                return Err(Error::Config(format!(
                    "the maximum message size {max} exceeds the {} decode limit of {limit} bytes",
                    C::NAME
                )));
            }
        }
        // A record takes at most half a broadcast ring (DECISIONS D48): room for two of the
        // largest, with their headers and the checksum trailer.
        let two = (max as u64).saturating_add(24).saturating_mul(2);
        let cap = self
            .capacity
            .max(shmbus_ring::broadcast::MIN_CAPACITY)
            .max(two)
            .checked_next_power_of_two()
            .ok_or_else(|| Error::Config(format!("capacity {} is too large", self.capacity)))?;
        let id = self.identity();
        let info = shmbus_ring::info::Info::new(id.type_name.clone(), id.codec_name, topic);
        let config = BroadcastConfig::new(cap)
            .max_record(max as u64)
            .history(self.history)
            .identity(Identity {
                type_fingerprint: id.fingerprint,
                codec_id: id.codec_id,
            })
            .info(info);
        config.validate().map_err(|e| match e {
            shmbus_ring::Error::InvalidConfig(m) => Error::Config(m),
            other => Error::Ring(other),
        })?;
        Ok(config)
    }

    /// The topic's ring: created, or opened (and checked) if it exists. A topic removed
    /// between the failed create and the open is created again (a few times at most).
    fn create_or_open(
        &self,
        topic: &str,
        name: &str,
        config: &BroadcastConfig,
    ) -> Result<BroadcastRing, Error> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let ring = match Segment::create(name, config.segment_len(), &self.common.segment) {
                Ok(seg) => BroadcastRing::create_in(seg, config)?,
                Err(shmbus_ring::Error::Os { code, .. }) if code.raw() == EEXIST => {
                    match Segment::open(name, &self.common.segment) {
                        Ok(seg) => {
                            self.common
                                .attach::<T, C>(topic, seg, self.common.ready_timeout)?
                        }
                        Err(shmbus_ring::Error::Os { code, .. })
                            if code.raw() == ENOENT && attempts < 3 =>
                        {
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            };
            // Kept until this builder's publisher has attached (`create`): a failed create
            // must not remove a topic that exists.
            ring.segment().set_unlink_on_drop(false);
            return Ok(ring);
        }
    }

    /// Creates the topic and becomes its publisher; or, if the topic exists and its publisher
    /// is gone (dropped, or its process died), opens it — checking that it carries this
    /// builder's type — and succeeds that publisher in the same ring. The topic's segment
    /// then outlives this publisher unless [`remove_on_drop`](Self::remove_on_drop).
    ///
    /// ```
    /// let topic = format!("doc/create/{}", std::process::id());
    /// let first = shmbus::topic::publisher::<u32>().create(&topic)?;
    /// // A live publisher: a second one is refused.
    /// let err = shmbus::topic::publisher::<u32>().create(&topic).unwrap_err();
    /// assert!(matches!(err, shmbus::Error::PublisherAlive { .. }), "{err}");
    /// drop(first);
    /// // Gone: the next one succeeds it.
    /// let second = shmbus::topic::publisher::<u32>().create(&topic)?;
    /// # drop(second); shmbus::topic::remove(&topic)?;
    /// # Ok::<(), shmbus::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidTopic`]; [`Error::Config`] for settings that make no ring;
    /// [`Error::PublisherAlive`]; [`Error::TypeMismatch`] for an existing topic of another
    /// type or codec; [`Error::Ring`] naming the call that failed.
    pub fn create(&self, topic: &str) -> Result<Publisher<T, C>, Error> {
        let name = segment_name(topic)?;
        let config = self.config(topic)?;
        let ring = self.create_or_open(topic, &name, &config)?;
        let mut producer = match ring.producer() {
            Ok(p) => p,
            Err(shmbus_ring::Error::AlreadyAttached { pid, .. }) => {
                // Not ours to remove: the live publisher's.
                ring.segment().set_unlink_on_drop(false);
                return Err(Error::PublisherAlive {
                    topic: topic.to_string(),
                    target: name,
                    pid,
                });
            }
            Err(e) => return Err(e.into()),
        };
        producer.set_slow_subscribers(self.slow);
        ring.segment().set_unlink_on_drop(self.remove_on_drop);
        Ok(Publisher::new(
            producer,
            ring,
            topic.to_string(),
            self.common.endpoints,
        ))
    }
}

/// Settings for a subscriber; [`open`](Self::open) or [`wait_for`](Self::wait_for)
/// subscribes.
///
/// ```
/// use shmbus::topic::StartAt;
/// let topic = format!("doc/sub-builder/{}", std::process::id());
/// let mut publisher = shmbus::topic::publisher::<u32>().create(&topic)?;
/// for i in 0..5 {
///     publisher.send(&i)?;
/// }
/// let mut last3 = shmbus::topic::subscriber::<u32>()
///     .tethered(false)               // lossy: never holds the publisher up
///     .start_at(StartAt::History(3)) // the last 3 messages first
///     .open(&topic)?;
/// assert_eq!(last3.try_iter().collect::<Vec<_>>(), [2, 3, 4]);
/// assert!(!last3.is_tethered());
/// # drop((publisher, last3)); shmbus::topic::remove(&topic)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SubscriberBuilder<T, C = Bincode> {
    common: Common,
    tethered: bool,
    start: StartAt,
    _types: PhantomData<Types<T, C>>,
}

impl<T, C> std::fmt::Debug for SubscriberBuilder<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriberBuilder")
            .field("type", &std::any::type_name::<T>())
            .field("codec", &std::any::type_name::<C>())
            .field("tethered", &self.tethered)
            .field("start", &self.start)
            .finish_non_exhaustive()
    }
}

impl<T, C> Clone for SubscriberBuilder<T, C> {
    fn clone(&self) -> Self {
        SubscriberBuilder {
            common: self.common.clone(),
            tethered: self.tethered,
            start: self.start,
            _types: PhantomData,
        }
    }
}

impl<T, C: Codec<T>> Default for SubscriberBuilder<T, C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, C: Codec<T>> SubscriberBuilder<T, C> {
    /// The defaults (see [`subscriber`]).
    pub fn new() -> Self {
        SubscriberBuilder {
            common: Common::new(),
            tethered: true,
            start: StartAt::Next,
            _types: PhantomData,
        }
    }

    /// Decodes messages with `C2` instead of bincode (the publisher's codec).
    pub fn codec<C2: Codec<T>>(self) -> SubscriberBuilder<T, C2> {
        SubscriberBuilder {
            common: self.common,
            tethered: self.tethered,
            start: self.start,
            _types: PhantomData,
        }
    }

    /// Tethered (`true`, the default: lossless; the publisher does not overwrite what it has
    /// not read, and waits for it as its [`SlowSubscribers`] policy says) or untethered
    /// (`false`: never holds the publisher up; reports [`RecvError::Lagged`] when lapped).
    pub fn tethered(mut self, yes: bool) -> Self {
        self.tethered = yes;
        self
    }

    /// Where to start (default [`StartAt::Next`]: the next message published).
    pub fn start_at(mut self, start: StartAt) -> Self {
        self.start = start;
        self
    }

    /// How blocking receives wait (default [`WaitStrategy::default`]).
    pub fn wait_strategy(mut self, wait: WaitStrategy) -> Self {
        self.common.endpoints.wait = wait;
        self
    }

    /// How often a waiting receive checks that the publisher is alive (default 20 ms).
    pub fn probe_interval(mut self, interval: Duration) -> Self {
        self.common.endpoints.probe = interval;
        self
    }

    /// The type name in the fingerprint (the publisher's; see
    /// [`PublisherBuilder::type_name`]).
    pub fn type_name(mut self, name: impl Into<String>) -> Self {
        self.common.type_name = Some(name.into());
        self
    }

    /// The shm directory (default: `SHMBUS_DIR`, else `/dev/shm`).
    pub fn shm_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.common.segment = self.common.segment.shm_dir(dir);
        self
    }

    /// How long [`open`](Self::open) waits for a publisher still building the topic's
    /// segment (default 1 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.common.ready_timeout = timeout;
        self
    }

    /// What this subscriber expects: type, codec and fingerprint.
    pub fn identity(&self) -> TypeIdentity {
        self.common.identity::<T, C>()
    }

    /// Subscribes to an existing topic, checking that it carries this builder's type and
    /// codec. The topic need not have a live publisher: a subscriber of a topic whose
    /// publisher is gone reads what is left, then [`RecvError::Disconnected`] until a
    /// successor publishes.
    ///
    /// # Errors
    ///
    /// [`Error::NoTopic`]; [`Error::TypeMismatch`] naming both types; [`Error::InvalidTopic`];
    /// [`Error::Ring`] (a segment that is not a broadcast ring, all endpoint entries taken,
    /// ...).
    pub fn open(&self, topic: &str) -> Result<Subscriber<T, C>, Error> {
        let name = segment_name(topic)?;
        self.open_named(topic, &name, self.common.ready_timeout, Duration::ZERO)
    }

    fn open_named(
        &self,
        topic: &str,
        name: &str,
        ready_timeout: Duration,
        waited: Duration,
    ) -> Result<Subscriber<T, C>, Error> {
        let seg = match Segment::open(name, &self.common.segment) {
            Ok(seg) => seg,
            Err(shmbus_ring::Error::Os { code, .. }) if code.raw() == ENOENT => {
                return Err(Error::NoTopic {
                    topic: topic.to_string(),
                    target: name.to_string(),
                    waited,
                })
            }
            Err(e) => return Err(e.into()),
        };
        let ring = self.common.attach::<T, C>(topic, seg, ready_timeout)?;
        let how = if self.tethered {
            Subscription::tethered()
        } else {
            Subscription::untethered()
        }
        .start_at(self.start);
        let consumer = ring.subscriber(&how)?;
        Ok(Subscriber::new(
            consumer,
            ring,
            topic.to_string(),
            self.common.endpoints,
        ))
    }

    /// Waits until `deadline` for the topic to be created, then subscribes as
    /// [`open`](Self::open) does. Without a daemon: it watches the shm directory with
    /// inotify, and polls every 10 ms where inotify is not available (DECISIONS D44). It
    /// returns by the deadline (a segment still being built is waited for at most until
    /// then).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let topic = format!("doc/wait-for/{}", std::process::id());
    /// let t = std::thread::spawn({
    ///     let topic = topic.clone();
    ///     move || {
    ///         std::thread::sleep(Duration::from_millis(50));
    ///         let mut p = shmbus::topic::publisher::<u8>().create(&topic).unwrap();
    ///         // Publish until the subscriber is there to see it.
    ///         while p.subscribers().is_empty() {
    ///             std::thread::sleep(Duration::from_millis(1));
    ///         }
    ///         p.send(&7).unwrap();
    ///     }
    /// });
    /// let deadline = Instant::now() + Duration::from_secs(10);
    /// let mut sub = shmbus::topic::subscriber::<u8>().wait_for(&topic, deadline)?;
    /// assert_eq!(sub.recv_timeout(Duration::from_secs(10))?, 7);
    /// t.join().unwrap();
    /// # drop(sub); shmbus::topic::remove(&topic)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::NoTopic`] (with how long it waited) when the topic did not appear by the
    /// deadline; otherwise as [`open`](Self::open).
    pub fn wait_for(&self, topic: &str, deadline: Instant) -> Result<Subscriber<T, C>, Error> {
        let name = segment_name(topic)?;
        let started = Instant::now();
        let dir = self.common.segment.resolved_dir();
        // Watch first, then look: a topic created between the two is not missed.
        let mut watch = wait::Watch::new(&dir);
        loop {
            let now = Instant::now();
            let ready = self
                .common
                .ready_timeout
                .min(deadline.saturating_duration_since(now));
            match self.open_named(topic, &name, ready, now - started) {
                // Not there yet; or created but not yet built: the creator is still at it
                // (or died mid-way). Look again until the deadline.
                Err(
                    Error::NoTopic { .. }
                    | Error::Ring(
                        shmbus_ring::Error::NotReady { .. } | shmbus_ring::Error::Truncated { .. },
                    ),
                ) => {}
                other => return other,
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::NoTopic {
                    topic: topic.to_string(),
                    target: name,
                    waited: now - started,
                });
            }
            watch.wait(deadline - now);
        }
    }
}

/// `ENOENT` and `EEXIST`, as an `OsCode` holds them.
const ENOENT: i32 = nix::errno::Errno::ENOENT as i32;
const EEXIST: i32 = nix::errno::Errno::EEXIST as i32;

/// A topic on this host, as [`list`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// The topic's name (from the segment's info region, else from its segment name).
    pub name: String,
    /// Its segment (`/shmbus.topic.…`).
    pub segment: String,
    /// The type its messages carry, as its creator named it (empty if not recorded).
    pub type_name: String,
    /// The codec's name.
    pub codec: String,
    /// Whether a publisher is attached and alive (or, in another PID namespace, not known
    /// to be dead).
    pub publisher_alive: bool,
    /// The pid of the attached publisher, alive or not.
    pub publisher_pid: Option<u32>,
    /// How many subscribers are attached and not known to be dead.
    pub subscribers: usize,
    /// How many messages its publishers have published.
    pub published: u64,
}

/// The topics on this host: every segment in the shm directory
/// ([`shmbus_ring::segment::shm_dir`]) whose name starts with [`SEGMENT_PREFIX`], opened
/// read-only without registering ([`Observer`](shmbus_ring::observe::Observer)), sorted by
/// name. A segment that does not open as a broadcast ring (being built, removed meanwhile, or
/// not a topic) is left out.
///
/// # Errors
///
/// [`Error::Ring`] when the shm directory cannot be read.
pub fn list() -> Result<Vec<TopicInfo>, Error> {
    list_in(&shmbus_ring::segment::shm_dir())
}

/// [`list`] for the shm directory `dir`.
///
/// # Errors
///
/// As [`list`].
pub fn list_in(dir: &std::path::Path) -> Result<Vec<TopicInfo>, Error> {
    let prefix = SEGMENT_PREFIX.trim_start_matches('/');
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::Ring(shmbus_ring::Error::Os {
            op: "opendir",
            target: dir.display().to_string(),
            code: shmbus_ring::OsCode::from_raw(e.raw_os_error().unwrap_or(0)),
        })
    })?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some(file) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !file.starts_with(prefix) {
            continue;
        }
        let segment = format!("/{file}");
        if let Some(info) = describe(dir, &segment) {
            out.push(info);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// One topic's entry for [`list`], or `None` if its segment does not open as a topic.
fn describe(dir: &std::path::Path, segment: &str) -> Option<TopicInfo> {
    // Read-only, and no endpoint registered: looking changes nothing (as an `Observer`).
    let seg = Segment::open(segment, &SegmentOptions::new().read_only(true).shm_dir(dir)).ok()?;
    let opts = OpenOptions {
        ready_timeout: Duration::from_millis(50),
        expect: None,
    };
    let ring = BroadcastRing::open_in(seg, &opts).ok()?;
    let info = ring.info().ok().flatten();
    let endpoints = shmbus_ring::liveness::endpoints(ring.segment()).ok()?;
    let publisher = endpoints.iter().find(|e| e.role == Role::Producer);
    let subscribers = endpoints
        .iter()
        .filter(|e| e.role == Role::Consumer && e.vitality != Vitality::Dead)
        .count();
    let name = info
        .as_ref()
        .map(|i| i.name.clone())
        .filter(|n| !n.is_empty())
        .or_else(|| topic_of(segment))
        .unwrap_or_else(|| segment.to_string());
    Some(TopicInfo {
        name,
        segment: segment.to_string(),
        type_name: info
            .as_ref()
            .map(|i| i.type_name.clone())
            .unwrap_or_default(),
        codec: info.map(|i| i.codec).unwrap_or_default(),
        publisher_alive: publisher.is_some_and(|p| p.vitality != Vitality::Dead),
        publisher_pid: publisher.map(|p| p.pid),
        subscribers,
        published: ring.published(),
    })
}

/// Removes the topic: unlinks its segment. Publishers and subscribers attached keep their
/// mapping and go on among themselves; a publisher or subscriber made afterwards makes or
/// waits for a new topic of that name.
///
/// # Errors
///
/// [`Error::NoTopic`] if there is none; [`Error::InvalidTopic`]; [`Error::Ring`].
pub fn remove(topic: &str) -> Result<(), Error> {
    let name = segment_name(topic)?;
    let seg = match Segment::open(&name, &SegmentOptions::new().read_only(true)) {
        Ok(seg) => seg,
        Err(shmbus_ring::Error::Os { code, .. }) if code.raw() == ENOENT => {
            return Err(Error::NoTopic {
                topic: topic.to_string(),
                target: name,
                waited: Duration::ZERO,
            })
        }
        Err(e) => return Err(e.into()),
    };
    seg.unlink()?;
    Ok(())
}
