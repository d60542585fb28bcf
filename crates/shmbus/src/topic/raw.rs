//! Untyped topic endpoints for bridges and tools: a [`RawPublisher`] that writes encoded
//! messages as bytes into a topic of a *given* identity (fingerprint, codec, type name), and a
//! [`RawSubscriber`] that reads any topic's bytes and reports the identity its ring records.
//!
//! A bridge (`shmbus-zenoh`) carries bytes between hosts: it does not know the message types,
//! only what the topic's header says. The identity it writes is checked as a typed endpoint's
//! is: a typed subscriber of a topic made by a `RawPublisher` is refused unless its type and
//! codec give the same fingerprint, and a `RawPublisher` refuses an existing topic of another
//! identity ([`Error::TypeMismatch`]).
//!
//! ```
//! use shmbus::codec::{Bincode, Codec};
//! use shmbus::topic::RawIdentity;
//! use std::time::{Duration, Instant};
//!
//! let topic = format!("doc/raw/{}", std::process::id());
//! // What a typed `u32` topic under bincode carries, as a remote host would announce it.
//! let identity = RawIdentity::of::<u32, shmbus::codec::Bincode>(None);
//! let mut raw = shmbus::topic::RawPublisherBuilder::new(identity.clone()).create(&topic)?;
//! let mut typed = shmbus::topic::subscriber::<u32>().open(&topic)?;
//! let mut bytes = shmbus::topic::RawSubscriber::open(&topic)?;
//! assert_eq!(bytes.identity(), &identity);
//!
//! // Bytes encoded elsewhere (here by bincode, the topic's codec).
//! let mut encoded = vec![0; <Bincode as Codec<u32>>::encoded_len(&7)?];
//! <Bincode as Codec<u32>>::encode(&7, &mut encoded)?;
//! raw.send_deadline(&encoded, Instant::now() + Duration::from_secs(1))?;
//! assert_eq!(typed.recv()?, 7);
//! let mut buf = Vec::new();
//! let len = bytes.recv_deadline(&mut buf, Instant::now() + Duration::from_secs(1))?;
//! assert_eq!(&buf[..len], &encoded[..]);
//!
//! // A typed subscriber of another type is refused, as for a typed publisher's topic.
//! assert!(shmbus::topic::subscriber::<String>().open(&topic).is_err());
//! # drop((raw, typed, bytes)); shmbus::topic::remove(&topic)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::error::{Failure, RecvTimeoutError, SendFailure, SendTimeoutError};
use super::{segment_name, Common, SlowSubscribers, StartAt, ENOENT};
use crate::codec::{codec_name, Codec};
use crate::error::Error;
use crate::fingerprint::TypeIdentity;
use crate::flavor::{self, Wait};
use shmbus_ring::broadcast::{BroadcastConfig, BroadcastRing, Subscription};
use shmbus_ring::{Broadcast, Consumer, Identity, Producer, Segment};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What a topic's messages are, as its ring records it: the fingerprint and codec id in the
/// segment header, and the type and codec names of its info region.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawIdentity {
    /// The type fingerprint ([`TypeIdentity::fingerprint`]; 0 for raw bytes).
    pub fingerprint: u64,
    /// The codec's id ([`Codec::ID`]).
    pub codec_id: u32,
    /// The type's name as its creator recorded it (empty if not recorded).
    pub type_name: String,
    /// The codec's name (empty if not recorded).
    pub codec_name: String,
}

impl RawIdentity {
    /// The identity of a typed topic of `T` under `C` (named `name`, by default
    /// [`std::any::type_name`]), as [`TypeIdentity::of`] computes it.
    pub fn of<T, C: Codec<T>>(name: Option<&str>) -> Self {
        TypeIdentity::of::<T, C>(name).into()
    }
}

impl From<TypeIdentity> for RawIdentity {
    fn from(id: TypeIdentity) -> Self {
        RawIdentity {
            fingerprint: id.fingerprint,
            codec_id: id.codec_id,
            type_name: id.type_name,
            codec_name: id.codec_name.to_string(),
        }
    }
}

/// The ring in `seg`, checked to be `topic`'s, and the identity it records.
fn attach_raw(
    topic: &str,
    seg: Segment,
    ready_timeout: Duration,
) -> Result<(BroadcastRing, RawIdentity), Error> {
    let (ring, info, _) = super::open_named(topic, seg, ready_timeout)?;
    let header = ring.header();
    let identity = RawIdentity {
        fingerprint: header.type_fingerprint,
        codec_id: header.codec_id,
        type_name: info
            .as_ref()
            .map(|i| i.type_name.clone())
            .unwrap_or_default(),
        codec_name: info.map(|i| i.codec).unwrap_or_default(),
    };
    Ok((ring, identity))
}

/// Settings for a [`RawPublisher`]; [`create`](Self::create) makes the topic with the given
/// identity, or succeeds a dead publisher of a topic of that identity.
#[derive(Debug, Clone)]
pub struct RawPublisherBuilder {
    common: Common,
    identity: RawIdentity,
    capacity: u64,
    max_message: usize,
    history: u32,
    slow: SlowSubscribers,
}

impl RawPublisherBuilder {
    /// A publisher of messages of `identity`: a ring of
    /// [`DEFAULT_CAPACITY_BYTES`](super::DEFAULT_CAPACITY_BYTES), messages of up to
    /// [`DEFAULT_MAX_MESSAGE`](super::DEFAULT_MAX_MESSAGE) bytes, a history of
    /// [`DEFAULT_HISTORY`](super::DEFAULT_HISTORY), [`SlowSubscribers::Block`].
    pub fn new(identity: RawIdentity) -> Self {
        RawPublisherBuilder {
            common: Common::new(),
            identity,
            capacity: super::DEFAULT_CAPACITY_BYTES,
            max_message: super::DEFAULT_MAX_MESSAGE,
            history: super::DEFAULT_HISTORY,
            slow: SlowSubscribers::Block,
        }
    }

    /// The ring's size in bytes, rounded as
    /// [`PublisherBuilder::capacity_bytes`](super::PublisherBuilder::capacity_bytes) does.
    pub fn capacity_bytes(mut self, bytes: u64) -> Self {
        self.capacity = bytes;
        self
    }

    /// The largest message, in bytes.
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.max_message = bytes.max(1);
        self
    }

    /// How many of the latest messages a late subscriber may ask for.
    pub fn history(mut self, messages: u32) -> Self {
        self.history = messages;
        self
    }

    /// What a publish does when a tethered subscriber leaves no room.
    pub fn slow_subscribers(mut self, policy: SlowSubscribers) -> Self {
        self.slow = policy;
        self
    }

    /// The shm directory (default: `SHMBUS_DIR`, else `/dev/shm`).
    pub fn shm_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.common.segment = self.common.segment.shm_dir(dir);
        self
    }

    /// Permission bits of a created segment (default `0o600`).
    pub fn mode(mut self, mode: u32) -> Self {
        self.common.segment = self.common.segment.mode(mode);
        self
    }

    /// The identity this publisher writes.
    pub fn identity(&self) -> &RawIdentity {
        &self.identity
    }

    fn config(&self, topic: &str) -> Result<BroadcastConfig, Error> {
        let two = (self.max_message as u64)
            .saturating_add(24)
            .saturating_mul(2);
        let cap = self
            .capacity
            .max(shmbus_ring::broadcast::MIN_CAPACITY)
            .max(two)
            .checked_next_power_of_two()
            .ok_or_else(|| Error::Config(format!("capacity {} is too large", self.capacity)))?;
        let id = &self.identity;
        let info = shmbus_ring::info::Info::new(id.type_name.clone(), id.codec_name.clone(), topic);
        let config = BroadcastConfig::new(cap)
            .max_record(self.max_message as u64)
            .history(self.history)
            .identity(Identity {
                type_fingerprint: id.fingerprint,
                codec_id: id.codec_id,
            })
            .info(info);
        config
            .validate()
            .map_err(|e| Error::Config(format!("topic {topic}: {e}")))?;
        Ok(config)
    }

    fn mismatch(&self, target: String, found: &RawIdentity) -> Error {
        Error::TypeMismatch {
            target,
            expected: Box::new(TypeIdentity {
                type_name: self.identity.type_name.clone(),
                size: 0,
                align: 0,
                codec_id: self.identity.codec_id,
                codec_name: codec_name(self.identity.codec_id).unwrap_or("unknown"),
                fingerprint: self.identity.fingerprint,
            }),
            found_fingerprint: found.fingerprint,
            found_codec_id: found.codec_id,
            found: None,
        }
    }

    fn create_or_open(&self, topic: &str, name: &str) -> Result<BroadcastRing, Error> {
        let config = self.config(topic)?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let ring = match Segment::create(name, config.segment_len(), &self.common.segment) {
                Ok(seg) => BroadcastRing::create_in(seg, &config)?,
                Err(shmbus_ring::Error::Os { code, .. }) if code.raw() == super::EEXIST => {
                    match Segment::open(name, &self.common.segment) {
                        Ok(seg) => {
                            let (ring, found) = attach_raw(topic, seg, self.common.ready_timeout)?;
                            if found.fingerprint != self.identity.fingerprint
                                || found.codec_id != self.identity.codec_id
                            {
                                ring.segment().set_unlink_on_drop(false);
                                return Err(self.mismatch(name.to_string(), &found));
                            }
                            ring
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
            ring.segment().set_unlink_on_drop(false);
            return Ok(ring);
        }
    }

    /// Creates the topic with this identity and becomes its publisher, or succeeds a gone
    /// publisher of an existing topic of the same identity. The segment outlives the
    /// publisher, as a typed one's does.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidTopic`]; [`Error::Config`]; [`Error::PublisherAlive`];
    /// [`Error::TypeMismatch`] for an existing topic of another identity; [`Error::Ring`].
    pub fn create(&self, topic: &str) -> Result<RawPublisher, Error> {
        let name = segment_name(topic)?;
        let ring = self.create_or_open(topic, &name)?;
        let mut producer = match ring.producer() {
            Ok(p) => p,
            Err(shmbus_ring::Error::AlreadyAttached { pid, .. }) => {
                return Err(Error::PublisherAlive {
                    topic: topic.to_string(),
                    target: name,
                    pid,
                });
            }
            Err(e) => return Err(e.into()),
        };
        producer.set_slow_subscribers(self.slow);
        let producer = self.common.endpoints.producer(producer);
        Ok(RawPublisher {
            max: ring.max_message(),
            producer,
            ring,
            topic: topic.to_string(),
            identity: self.identity.clone(),
        })
    }
}

/// A topic's publisher that writes encoded messages as bytes (see the [module docs](self)).
pub struct RawPublisher {
    producer: Producer<Broadcast>,
    ring: BroadcastRing,
    topic: String,
    max: usize,
    identity: RawIdentity,
}

impl std::fmt::Debug for RawPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawPublisher")
            .field("topic", &self.topic)
            .field("identity", &self.identity)
            .field("max_message", &self.max)
            .finish_non_exhaustive()
    }
}

impl RawPublisher {
    /// Publishes `bytes` (one encoded message), waiting until `deadline` (`None`: for ever)
    /// for room, as the topic's [`SlowSubscribers`] policy allows.
    ///
    /// # Errors
    ///
    /// [`SendTimeoutError::Timeout`] when the deadline passed; `TooLarge`; `Corrupt`.
    pub fn send_until(
        &mut self,
        bytes: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError> {
        let len = bytes.len();
        if len > self.max {
            return Err(SendTimeoutError::new(SendFailure::TooLarge {
                len,
                max: self.max,
            }));
        }
        let fill = |buf: &mut [u8]| {
            buf[..len].copy_from_slice(bytes);
            Ok::<usize, std::convert::Infallible>(len)
        };
        match flavor::write(&mut self.producer, len, Wait::Until(deadline), fill) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(never)) => match never {},
            Err(e) => Err(SendTimeoutError::new(SendFailure::from_push(e, self.max))),
        }
    }

    /// [`send_until`](Self::send_until) with a deadline.
    ///
    /// # Errors
    ///
    /// As [`send_until`](Self::send_until).
    pub fn send_deadline(
        &mut self,
        bytes: &[u8],
        deadline: Instant,
    ) -> Result<(), SendTimeoutError> {
        self.send_until(bytes, Some(deadline))
    }

    /// The identity it writes.
    pub fn identity(&self) -> &RawIdentity {
        &self.identity
    }

    /// The largest message it accepts, in bytes.
    pub fn max_message(&self) -> usize {
        self.max
    }

    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// How many messages the topic's publishers have published.
    pub fn published(&self) -> u64 {
        self.ring.published()
    }
}

/// A subscriber that reads any topic's messages as bytes, whatever their type (see the
/// [module docs](self)).
pub struct RawSubscriber {
    consumer: Consumer<Broadcast>,
    ring: BroadcastRing,
    topic: String,
    identity: RawIdentity,
}

impl std::fmt::Debug for RawSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSubscriber")
            .field("topic", &self.topic)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl RawSubscriber {
    /// Subscribes to `topic` tethered, from the next message, in the default shm directory.
    ///
    /// # Errors
    ///
    /// As [`open_with`](Self::open_with).
    pub fn open(topic: &str) -> Result<Self, Error> {
        Self::open_with(topic, &RawSubscribeOptions::default())
    }

    /// Subscribes to an existing topic of any type, as `options` say.
    ///
    /// # Errors
    ///
    /// [`Error::NoTopic`]; [`Error::InvalidTopic`]; [`Error::TopicCollision`]; [`Error::Ring`].
    pub fn open_with(topic: &str, options: &RawSubscribeOptions) -> Result<Self, Error> {
        let name = segment_name(topic)?;
        let mut common = Common::new();
        if let Some(dir) = &options.shm_dir {
            common.segment = common.segment.shm_dir(dir.clone());
        }
        let seg = match Segment::open(&name, &common.segment) {
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
        let (ring, identity) = attach_raw(topic, seg, common.ready_timeout)?;
        let how = if options.tethered {
            Subscription::tethered()
        } else {
            Subscription::untethered()
        }
        .start_at(options.start);
        let consumer = common.endpoints.consumer(ring.subscriber(&how)?);
        Ok(RawSubscriber {
            consumer,
            ring,
            topic: topic.to_string(),
            identity,
        })
    }

    /// Takes the next message into `buf` (resized to hold it), waiting until `deadline`;
    /// returns its length.
    ///
    /// # Errors
    ///
    /// `Timeout` (nothing by the deadline), `Lagged` (an untethered subscriber was overtaken;
    /// not an end), `Ejected`, `Disconnected` (the publisher is gone and everything was
    /// read), `Corrupt`.
    pub fn recv_deadline(
        &mut self,
        buf: &mut Vec<u8>,
        deadline: Instant,
    ) -> Result<usize, RecvTimeoutError> {
        let max = self.consumer.max_message();
        if buf.len() < max {
            buf.resize(max, 0);
        }
        match self.consumer.try_pop_vec(buf) {
            Err(shmbus_ring::PopError::Empty) => {}
            Ok(n) => return Ok(n),
            Err(e) => return Err(RecvTimeoutError::new(Failure::from(e))),
        }
        if buf.len() < max {
            buf.resize(max, 0);
        }
        self.consumer
            .pop_deadline(buf, Some(deadline))
            .map_err(|e| RecvTimeoutError::new(Failure::from(e)))
    }

    /// The sequence number of the next message it reads: how many messages the topic's
    /// publishers had published before it.
    pub fn sequence(&self) -> u64 {
        self.consumer.sequence()
    }

    /// The identity the topic's ring records.
    pub fn identity(&self) -> &RawIdentity {
        &self.identity
    }

    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The largest message of the topic, in bytes.
    pub fn max_message(&self) -> usize {
        self.consumer.max_message()
    }

    /// The topic's ring.
    pub fn ring(&self) -> &BroadcastRing {
        &self.ring
    }
}

/// How a [`RawSubscriber`] subscribes: tethered or not, where it starts, which shm directory.
#[derive(Debug, Clone)]
pub struct RawSubscribeOptions {
    /// Tethered (lossless, holds the publisher up) or untethered (lossy, `Lagged` on a lap).
    pub tethered: bool,
    /// Where it starts.
    pub start: StartAt,
    /// The shm directory (`None`: `SHMBUS_DIR`, else `/dev/shm`).
    pub shm_dir: Option<PathBuf>,
}

impl Default for RawSubscribeOptions {
    /// Tethered, from the next message, the default shm directory.
    fn default() -> Self {
        RawSubscribeOptions {
            tethered: true,
            start: StartAt::Next,
            shm_dir: None,
        }
    }
}
