//! Untyped channel endpoints for bridges and tools: a [`RawReceiver`] that opens any SPSC or
//! MPMC channel ring by name and takes its messages as bytes, reporting what its ring records
//! ([`RawChannelInfo`]: flavor, identity, bound, maximum message), and a [`RawSender`] that
//! writes encoded messages as bytes into a channel of a *given* identity, creating the ring if
//! it does not exist ([`RawChannelBuilder`]).
//!
//! A bridge (`shmbus-zenoh`) carries a channel's bytes between hosts without knowing the
//! message type. The identity it writes is checked as a typed endpoint's is: a typed receiver
//! of a channel made by a `RawSender` is refused unless its type and codec give the same
//! fingerprint, and a `RawSender` refuses an existing channel of another identity or flavor.
//!
//! ```
//! use shmbus::codec::{Bincode, Codec};
//! use shmbus::raw_channel::{RawChannelBuilder, RawFlavor, RawReceiver};
//! use shmbus::topic::RawIdentity;
//! use std::time::{Duration, Instant};
//!
//! fn encode(v: u32) -> Vec<u8> {
//!     let mut b = vec![0; <Bincode as Codec<u32>>::encoded_len(&v).unwrap()];
//!     <Bincode as Codec<u32>>::encode(&v, &mut b).unwrap();
//!     b
//! }
//!
//! let name = format!("/shmbus-doc-rawch-{}", std::process::id());
//! // What a typed `u32` channel under bincode carries, as a remote host would announce it.
//! let identity = RawIdentity::of::<u32, Bincode>(None);
//! let mut raw_tx = RawChannelBuilder::new(identity.clone(), RawFlavor::Spsc)
//!     .capacity(16)
//!     .max_message(64)
//!     .sender(&name)?;
//! let mut typed_rx = shmbus::channel::<u32>().open_receiver(&name)?;
//! // A typed receiver of another type is refused.
//! assert!(shmbus::channel::<String>().open(&name).is_err());
//!
//! // Bytes encoded elsewhere (here by bincode, the channel's codec).
//! raw_tx.send_deadline(&encode(7), Some(Instant::now() + Duration::from_secs(1)))?;
//! assert_eq!(typed_rx.recv()?, 7);
//!
//! // The other way: a typed sender, a raw receiver.
//! drop(typed_rx);
//! let mut raw_rx = RawReceiver::open(&name, None)?;
//! assert_eq!(raw_rx.info().identity, identity);
//! assert_eq!(raw_rx.info().flavor, RawFlavor::Spsc);
//! drop(raw_tx);
//! let mut typed_tx = shmbus::channel::<u32>().open_sender(&name)?;
//! typed_tx.send(9)?;
//! let mut buf = Vec::new();
//! let n = raw_rx.recv_deadline(&mut buf, Some(Instant::now() + Duration::from_secs(1)))?;
//! assert_eq!(&buf[..n], &encode(9)[..]);
//! # drop((typed_tx, raw_rx)); shmbus::ring::Segment::open(&name, &Default::default())?.unlink()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::codec::codec_name;
use crate::error::Error;
use crate::fingerprint::TypeIdentity;
use crate::topic::RawIdentity;
use shmbus_ring::{
    Consumer, Identity, Kind, Mpmc, OpenOptions, PopError, Producer, PushError, Ring, Segment,
    SegmentOptions, Spsc,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long an opener waits for a ring's creator to finish building it.
const READY_TIMEOUT: Duration = Duration::from_secs(1);

const EEXIST: i32 = nix::errno::Errno::EEXIST as i32;
const ENOENT: i32 = nix::errno::Errno::ENOENT as i32;

/// A channel's ring flavor, as a value (the typed channels have it as a type parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RawFlavor {
    /// One sender, one receiver ([`Spsc`]).
    Spsc,
    /// Any number of senders and receivers ([`Mpmc`]).
    Mpmc,
}

impl RawFlavor {
    /// `"spsc"` or `"mpmc"`.
    pub fn name(self) -> &'static str {
        match self {
            RawFlavor::Spsc => "spsc",
            RawFlavor::Mpmc => "mpmc",
        }
    }

    /// The flavor named `name` (`"spsc"`, `"mpmc"`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "spsc" => Some(RawFlavor::Spsc),
            "mpmc" => Some(RawFlavor::Mpmc),
            _ => None,
        }
    }
}

/// What a channel's ring records about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawChannelInfo {
    /// SPSC or MPMC.
    pub flavor: RawFlavor,
    /// The messages' type fingerprint, codec, and their names.
    pub identity: RawIdentity,
    /// The bound in messages (`0` for a ring that records none, before layout 1.2).
    pub capacity: u64,
    /// The largest message, in bytes.
    pub max_message: usize,
    /// Whether every message carries a CRC32C.
    pub checksum: bool,
}

/// A channel ring of either flavor.
enum AnyRing {
    Spsc(Ring<Spsc>),
    Mpmc(Ring<Mpmc>),
}

fn describe<K: Kind>(ring: &Ring<K>, flavor: RawFlavor) -> RawChannelInfo {
    let header = ring.header();
    let info = ring.info().ok().flatten();
    RawChannelInfo {
        flavor,
        identity: RawIdentity {
            fingerprint: header.type_fingerprint,
            codec_id: header.codec_id,
            type_name: info
                .as_ref()
                .map(|i| i.type_name.clone())
                .unwrap_or_default(),
            codec_name: info.map(|i| i.codec).unwrap_or_default(),
        },
        capacity: ring.capacity().map_or(0, |c| c as u64),
        max_message: ring.max_message(),
        checksum: ring.checksum(),
    }
}

/// Opens the channel ring `name`, of whichever flavor it is.
fn open_any(name: &str, opts: &SegmentOptions) -> Result<(AnyRing, RawChannelInfo), Error> {
    let oo = OpenOptions {
        ready_timeout: READY_TIMEOUT,
        expect: None,
    };
    match Ring::<Spsc>::open_in(Segment::open(name, opts)?, &oo) {
        Ok(r) => {
            let info = describe(&r, RawFlavor::Spsc);
            return Ok((AnyRing::Spsc(r), info));
        }
        Err(shmbus_ring::Error::WrongKind { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let r = Ring::<Mpmc>::open_in(Segment::open(name, opts)?, &oo)?;
    let info = describe(&r, RawFlavor::Mpmc);
    Ok((AnyRing::Mpmc(r), info))
}

fn segment_options(shm_dir: Option<&Path>) -> SegmentOptions {
    match shm_dir {
        Some(d) => SegmentOptions::new().shm_dir(d),
        None => SegmentOptions::new(),
    }
}

/// Reads what the channel ring `name` records, without attaching an endpoint (read-only).
///
/// # Errors
///
/// [`Error::Ring`]: no such segment (`ENOENT`), or not a channel ring (`WrongKind`: a topic).
pub fn describe_channel(name: &str, shm_dir: Option<&Path>) -> Result<RawChannelInfo, Error> {
    let opts = segment_options(shm_dir).read_only(true);
    open_any(name, &opts).map(|(_, info)| info)
}

enum Rx {
    Spsc(Consumer<Spsc>),
    Mpmc(Consumer<Mpmc>),
}

/// A channel's receiving end that takes encoded messages as bytes (see the
/// [module docs](self)). On an SPSC channel it is *the* receiver; on an MPMC channel, one
/// more.
pub struct RawReceiver {
    rx: Rx,
    info: RawChannelInfo,
    name: String,
}

impl std::fmt::Debug for RawReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawReceiver")
            .field("name", &self.name)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl RawReceiver {
    /// Opens the channel ring `name` (`/orders`) in `shm_dir` (default: `SHMBUS_DIR`, else
    /// `/dev/shm`), whatever its flavor and type, and attaches a receiver.
    ///
    /// # Errors
    ///
    /// [`Error::Ring`]: no such segment, not a channel ring (`WrongKind`), `AlreadyAttached`
    /// (an SPSC channel whose receiver is taken), a header that fails validation.
    pub fn open(name: &str, shm_dir: Option<&Path>) -> Result<Self, Error> {
        let (ring, info) = open_any(name, &segment_options(shm_dir))?;
        let rx = match ring {
            AnyRing::Spsc(r) => Rx::Spsc(r.consumer()?),
            AnyRing::Mpmc(r) => Rx::Mpmc(r.consumer()?),
        };
        Ok(RawReceiver {
            rx,
            info,
            name: name.to_string(),
        })
    }

    /// What the ring records.
    pub fn info(&self) -> &RawChannelInfo {
        &self.info
    }

    /// Takes the next message into `buf` (grown to the maximum message), waiting until
    /// `deadline` (`None`: for ever); its length. A checksum ring's message is verified on
    /// this copy.
    ///
    /// # Errors
    ///
    /// [`PopError::Timeout`], [`PopError::Disconnected`] (every sender gone and the channel
    /// drained), `Corrupt`, `Checksum`.
    pub fn recv_deadline(
        &mut self,
        buf: &mut Vec<u8>,
        deadline: Option<Instant>,
    ) -> Result<usize, PopError> {
        if buf.len() < self.info.max_message {
            buf.resize(self.info.max_message, 0);
        }
        match &mut self.rx {
            Rx::Spsc(c) => c.pop_deadline(buf, deadline),
            Rx::Mpmc(c) => c.pop_deadline(buf, deadline),
        }
    }
}

enum Tx {
    Spsc(Producer<Spsc>),
    Mpmc(Producer<Mpmc>),
}

/// A channel's sending end that writes encoded messages as bytes (see the
/// [module docs](self)), made by [`RawChannelBuilder::sender`].
pub struct RawSender {
    tx: Tx,
    info: RawChannelInfo,
    name: String,
}

impl std::fmt::Debug for RawSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSender")
            .field("name", &self.name)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl RawSender {
    /// What the ring records.
    pub fn info(&self) -> &RawChannelInfo {
        &self.info
    }

    /// Sends `bytes` (one encoded message), waiting until `deadline` (`None`: for ever) for
    /// room.
    ///
    /// # Errors
    ///
    /// [`PushError::Timeout`], [`PushError::Disconnected`] (every receiver that attached is
    /// gone), [`PushError::TooLarge`], `Corrupt`.
    pub fn send_deadline(
        &mut self,
        bytes: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), PushError> {
        match &mut self.tx {
            Tx::Spsc(p) => p.push_deadline(bytes, deadline),
            Tx::Mpmc(p) => p.push_deadline(bytes, deadline),
        }
    }
}

/// Settings for a [`RawSender`] of a channel of a given identity and flavor.
#[derive(Debug, Clone)]
pub struct RawChannelBuilder {
    identity: RawIdentity,
    flavor: RawFlavor,
    capacity: u64,
    max_message: usize,
    checksum: bool,
    segment: SegmentOptions,
}

impl RawChannelBuilder {
    /// A channel of `identity` and `flavor`: [`DEFAULT_CAPACITY`](crate::DEFAULT_CAPACITY)
    /// messages of up to [`DEFAULT_MAX_MESSAGE`](crate::DEFAULT_MAX_MESSAGE) bytes, no
    /// checksum, mode `0600`.
    pub fn new(identity: RawIdentity, flavor: RawFlavor) -> Self {
        RawChannelBuilder {
            identity,
            flavor,
            capacity: crate::DEFAULT_CAPACITY,
            max_message: crate::DEFAULT_MAX_MESSAGE,
            checksum: false,
            segment: SegmentOptions::new(),
        }
    }

    /// The bound of a created channel, in messages (at least 1).
    pub fn capacity(mut self, messages: u64) -> Self {
        self.capacity = messages.max(1);
        self
    }

    /// The largest message of a created channel, in bytes.
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.max_message = bytes.max(1);
        self
    }

    /// Whether a created channel carries a CRC32C per message.
    pub fn checksum(mut self, yes: bool) -> Self {
        self.checksum = yes;
        self
    }

    /// The shm directory (default: `SHMBUS_DIR`, else `/dev/shm`).
    pub fn shm_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.segment = self.segment.shm_dir(dir);
        self
    }

    /// Permission bits of a created segment (default `0o600`).
    pub fn mode(mut self, mode: u32) -> Self {
        self.segment = self.segment.mode(mode);
        self
    }

    fn config<K: Kind>(&self, name: &str) -> Result<K::Config, Error> {
        let trailer = if self.checksum {
            shmbus_ring::layout::CHECKSUM_LEN
        } else {
            0
        };
        let identity = Identity {
            type_fingerprint: self.identity.fingerprint,
            codec_id: self.identity.codec_id,
        };
        let max = (self.max_message + trailer) as u64;
        let config = K::config_for(self.capacity, max, identity, true)
            .map_err(|e| Error::Config(format!("channel {name}: {e}")))?;
        let config = K::with_limit(K::with_checksum(config, self.checksum), self.capacity);
        let id = &self.identity;
        let info = shmbus_ring::info::Info::new(id.type_name.clone(), id.codec_name.clone(), name);
        Ok(K::with_info(config, info))
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

    /// The ring `name` of flavor `K`: created with this identity, or opened and checked to
    /// carry it. A created ring outlives this process (its receivers read on across a
    /// bridge's restart).
    fn ring<K: Kind>(&self, name: &str) -> Result<(Ring<K>, RawChannelInfo), Error> {
        let config = self.config::<K>(name)?;
        let len = K::segment_len(&config).map_err(|e| Error::Config(e.to_string()))?;
        for _ in 0..3 {
            let ring = match Segment::create(name, len, &self.segment) {
                Ok(seg) => Ring::<K>::create_in(seg, &config)?,
                Err(shmbus_ring::Error::Os { code, .. }) if code.raw() == EEXIST => {
                    let seg = match Segment::open(name, &self.segment) {
                        Ok(s) => s,
                        // Unlinked between the two calls: create it again.
                        Err(shmbus_ring::Error::Os { code, .. }) if code.raw() == ENOENT => {
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                    };
                    let oo = OpenOptions {
                        ready_timeout: READY_TIMEOUT,
                        expect: None,
                    };
                    Ring::<K>::open_in(seg, &oo)?
                }
                Err(e) => return Err(e.into()),
            };
            ring.segment().set_unlink_on_drop(false);
            let info = describe(&ring, self.flavor);
            if info.identity.fingerprint != self.identity.fingerprint
                || info.identity.codec_id != self.identity.codec_id
            {
                return Err(self.mismatch(ring.segment().target(), &info.identity));
            }
            return Ok((ring, info));
        }
        Err(Error::Config(format!(
            "channel {name}: created and removed by others three times over"
        )))
    }

    /// Creates the channel `name` (`/orders`) with this identity and flavor, or opens an
    /// existing one of the same, and attaches a sender.
    ///
    /// # Errors
    ///
    /// [`Error::TypeMismatch`] for a channel of another identity; [`Error::Ring`] with
    /// `WrongKind` for one of another flavor, `AlreadyAttached` for an SPSC channel whose
    /// sender is alive; [`Error::Config`] for settings that make no ring.
    pub fn sender(&self, name: &str) -> Result<RawSender, Error> {
        let (tx, info) = match self.flavor {
            RawFlavor::Spsc => {
                let (r, i) = self.ring::<Spsc>(name)?;
                (Tx::Spsc(r.producer()?), i)
            }
            RawFlavor::Mpmc => {
                let (r, i) = self.ring::<Mpmc>(name)?;
                (Tx::Mpmc(r.producer()?), i)
            }
        };
        Ok(RawSender {
            tx,
            info,
            name: name.to_string(),
        })
    }
}
