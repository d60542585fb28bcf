//! A ring in a segment, whatever its kind: [`Ring`], the sealed [`Kind`] trait every ring kind
//! implements, and what the endpoint layer needs of a kind.
//!
//! A ring kind is an algorithm core (`spsc/core.rs`, `mpmc/core.rs`) plus a ring file
//! (`spsc/ring.rs`, `mpmc/ring.rs`) that lays it out in a segment, checks its geometry when
//! opened, and says how an endpoint of each role attaches, detaches, and is repaired after it
//! died. Everything else — registration, probing, disconnection, waiting, the blocking calls —
//! is written once, here and in the endpoint layer (`endpoint.rs`), so a new kind adds a core
//! and a ring file and nothing more.

use crate::conv::{offset, wide};
use crate::endpoint::Role;
use crate::endpoint::{Consumer, Producer, ReadInPlace, WriteInPlace};
use crate::error::{Corruption, Error, Result};
use crate::handshake::{self, new_header, OpenOptions};
use crate::layout::{RingKind, SegmentHeader, DATA_OFFSET};
use crate::liveness::{Os, RegisterError, Registration};
use crate::segment::{Segment, SegmentOptions};
use crate::sync::RawMem;
use crate::wait::{notify, Direction, Wake};
use std::sync::Arc;

/// A kind of ring: [`Spsc`](crate::Spsc) or [`Mpmc`](crate::Mpmc). Sealed: the kinds are this
/// crate's, and the endpoint layer and the typed channels of `shmbus` are written once over
/// this trait.
pub trait Kind:
    sealed::KindImpl + Copy + Default + std::fmt::Debug + Send + Sync + 'static
{
    /// The geometry and identity of a new ring ([`SpscConfig`](crate::SpscConfig),
    /// [`MpmcConfig`](crate::MpmcConfig)).
    type Config: sealed::ConfigImpl + Clone + std::fmt::Debug + Send + Sync;

    /// The configuration of a ring that holds at least `messages` messages of up to
    /// `max_message` bytes each, with `identity` in its header and notification on or off
    /// (see [`SpscConfig::notify`](crate::SpscConfig::notify)).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when no ring of this kind can hold that.
    ///
    /// ```
    /// use shmbus_ring::{Identity, Kind, Mpmc, Spsc};
    /// let spsc = Spsc::config_for(100, 64, Identity::default(), true)?;
    /// assert!(Spsc::segment_len(&spsc)? >= 4096 + 101 * 72);
    /// let mpmc = Mpmc::config_for(100, 64, Identity::default(), true)?;
    /// assert_eq!(Mpmc::segment_len(&mpmc)?, 4096 + 128 * 128);
    /// # Ok::<(), shmbus_ring::Error>(())
    /// ```
    fn config_for(
        messages: u64,
        max_message: u64,
        identity: crate::Identity,
        notify: bool,
    ) -> Result<Self::Config> {
        let config = sealed::ConfigImpl::with_identity(
            Self::sized_for(messages, max_message)?,
            identity,
            notify,
        );
        Self::segment_len(&config)?;
        Ok(config)
    }

    /// `config` with the per-message checksum on or off (see
    /// [`SpscConfig::checksum`](crate::SpscConfig::checksum)): the ring's records then carry
    /// a [`CHECKSUM_LEN`](crate::layout::CHECKSUM_LEN)-byte trailer, so a configuration from
    /// [`config_for`](Self::config_for) should be asked for `max_message + CHECKSUM_LEN`.
    ///
    /// ```
    /// use shmbus_ring::{layout::CHECKSUM_LEN, Identity, Kind, Mpmc, Ring};
    /// let config = Mpmc::config_for(8, 64 + CHECKSUM_LEN as u64, Identity::default(), true)?;
    /// let ring = Ring::<Mpmc>::in_heap(&Mpmc::with_checksum(config, true))?;
    /// assert_eq!(ring.max_message(), 64);
    /// assert!(ring.checksum());
    /// # Ok::<(), shmbus_ring::Error>(())
    /// ```
    fn with_checksum(config: Self::Config, yes: bool) -> Self::Config {
        sealed::ConfigImpl::with_checksum(config, yes)
    }

    /// `config` with an exact message bound: at most `messages` messages in the ring at once
    /// (see [`SpscConfig::message_limit`](crate::SpscConfig::message_limit),
    /// [`MpmcConfig::message_limit`](crate::MpmcConfig::message_limit)). A configuration from
    /// [`config_for`](Self::config_for) holds that many messages of the maximum size.
    ///
    /// ```
    /// use shmbus_ring::{Identity, Kind, Mpmc, Ring};
    /// let config = Mpmc::with_limit(Mpmc::config_for(5, 64, Identity::default(), true)?, 5);
    /// let ring = Ring::<Mpmc>::in_heap(&config)?;
    /// assert_eq!(ring.capacity(), Some(5));
    /// # Ok::<(), shmbus_ring::Error>(())
    /// ```
    fn with_limit(config: Self::Config, messages: u64) -> Self::Config {
        sealed::ConfigImpl::with_limit(config, messages)
    }

    /// `config` with an info region describing what the ring carries ([`crate::info`]).
    fn with_info(config: Self::Config, info: crate::info::Info) -> Self::Config {
        sealed::ConfigImpl::with_info(config, info)
    }

    /// The segment length `config` needs.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the value at fault.
    fn segment_len(config: &Self::Config) -> Result<u64> {
        sealed::ConfigImpl::checked_len(config)
    }
}

pub(crate) mod sealed {
    use super::{
        Corruption, Kind, RawMem, ReadInPlace, Registration, Result, RingKind, Role, Segment,
        SegmentHeader, Shape, Shared, WriteInPlace,
    };

    /// What [`Kind`] needs of a kind's configuration type.
    pub trait ConfigImpl: Sized {
        /// The segment length, once the geometry is checked.
        fn checked_len(&self) -> Result<u64>;
        /// The same geometry with this identity and notification setting.
        fn with_identity(self, identity: crate::Identity, notify: bool) -> Self;
        /// The identity and ring flags the header will carry.
        fn header_identity(&self) -> (crate::Identity, u32);
        /// The same configuration with the checksum option on or off.
        fn with_checksum(self, yes: bool) -> Self;
        /// The same configuration with a message limit.
        fn with_limit(self, messages: u64) -> Self;
        /// The same configuration with an info region.
        fn with_info(self, info: crate::info::Info) -> Self;
        /// The header's `message_limit` (0: none) and the info region, if any.
        fn extras(&self) -> (u64, Option<&crate::info::Info>);
    }

    /// What the endpoint layer needs of a ring kind. Not nameable outside the crate; its items
    /// are reachable through `K: Kind` but are not API (they take values only this crate
    /// builds, or are total on any input).
    pub trait KindImpl: Sized {
        /// The header's `ring_kind`.
        const RING_KIND: RingKind;
        /// The geometry of a ring for `messages` messages of up to `max_message` bytes
        /// (identity and notification are set by [`Kind::config_for`]).
        fn sized_for(messages: u64, max_message: u64) -> Result<<Self as Kind>::Config>
        where
            Self: Kind;
        /// How the kind's ring type reads in `Debug` output.
        const NAME: &'static str;
        /// Where the ring's words are and how big it is, validated.
        type Geometry: Copy + std::fmt::Debug + Send + Sync + 'static;
        /// The producer's half of the algorithm.
        type WriteCore: WriteInPlace;
        /// The consumer's half of the algorithm.
        type ReadCore: ReadInPlace;

        /// Lays the ring out in the memory of a fresh segment, at least as long as the
        /// configuration needs (everything but the header); returns the header's shape and the
        /// geometry.
        fn lay_out(
            mem: &RawMem,
            config: &<Self as Kind>::Config,
        ) -> Result<(Shape, Self::Geometry)>
        where
            Self: Kind;
        /// Whether a producer reports `Disconnected` once every consumer that attached is
        /// gone (a queue's); a broadcast publisher goes on publishing into its history.
        const PRODUCER_NEEDS_CONSUMERS: bool = true;
        /// Whether a read can report that messages were lost (`Lagged`, `Ejected`), which a
        /// batch that has handed out messages keeps for the next read.
        const LOSSY_READS: bool = false;
        /// Bytes the kind lays out after its data, before the info region (a broadcast
        /// ring's cursors and history index).
        fn aux_len(_g: &Self::Geometry) -> u64 {
            0
        }
        /// Checks the kind-specific header fields of an opened segment.
        fn open(seg: &Segment, header: &SegmentHeader) -> Result<Self::Geometry>;
        /// The largest message.
        fn max_message(g: &Self::Geometry) -> usize;
        /// The most messages the ring holds at once: its message bound, or (MPMC) its slot
        /// count; `None` for an unbounded SPSC ring (bytes bound it).
        fn capacity(g: &Self::Geometry) -> Option<u64>;
        /// The messages in the ring now, from the shared positions or counts (a snapshot,
        /// clamped to the capacity); `None` when the ring does not count them.
        fn len(mem: &RawMem, g: &Self::Geometry) -> Option<u64>;
        /// Registers an endpoint of `role` (and, for SPSC, makes it the role's one endpoint).
        fn register(ring: &Shared<Self>, role: Role) -> Result<Registration>;
        /// Undoes what [`KindImpl::register`] added beyond the table entry (a clean detach).
        fn detach(ring: &Shared<Self>, reg: &Registration);
        /// Repairs what dead endpoint `tag` of generation `gen` and role `role` held.
        /// Idempotent.
        fn repair(ring: &Shared<Self>, tag: u64, gen: u16, role: Role);
        /// The producer's core for a registered endpoint.
        fn writer(ring: &Shared<Self>, reg: &Registration) -> Result<Self::WriteCore, Corruption>;
        /// The consumer's core for a registered endpoint.
        fn reader(ring: &Shared<Self>, reg: &Registration) -> Result<Self::ReadCore, Corruption>;
    }
}

/// The two configuration types answer [`sealed::ConfigImpl`] alike: one definition for both.
macro_rules! config_impl {
    ($($config:ty),*) => {$(
        impl sealed::ConfigImpl for $config {
            fn checked_len(&self) -> Result<u64> {
                self.checked()?;
                Ok(self.segment_len())
            }

            fn with_identity(self, identity: crate::Identity, notify: bool) -> Self {
                self.identity(identity).notify(notify)
            }

            fn header_identity(&self) -> (crate::Identity, u32) {
                let mut flags = 0;
                if self.notify {
                    flags |= crate::layout::RING_FLAG_NOTIFY;
                }
                if self.checksum {
                    flags |= crate::layout::RING_FLAG_CHECKSUM;
                }
                if self.limit.is_some() {
                    flags |= crate::layout::RING_FLAG_BOUNDED;
                }
                (self.identity, flags | self.kind_flags())
            }

            fn with_checksum(self, yes: bool) -> Self {
                self.checksum(yes)
            }

            fn with_limit(self, messages: u64) -> Self {
                self.message_limit(messages)
            }

            fn with_info(self, info: crate::info::Info) -> Self {
                self.info(info)
            }

            fn extras(&self) -> (u64, Option<&crate::info::Info>) {
                (self.limit.unwrap_or(0), self.info.as_ref())
            }
        }
    )*};
}

config_impl!(crate::SpscConfig, crate::MpmcConfig);

impl crate::MpmcConfig {
    /// The ring flags this configuration sets beyond the shared ones: membarrier mode, sole
    /// endpoints (reclaimable or not) and aligned slots.
    pub(crate) fn kind_flags(&self) -> u32 {
        let mut flags = 0;
        if self.is_aligned() {
            flags |= crate::layout::RING_FLAG_ALIGNED;
        }
        if self.notify && self.membarrier {
            flags |= crate::layout::RING_FLAG_MEMBARRIER;
        }
        if self.sole {
            flags |= crate::layout::RING_FLAG_SOLE;
            if self.reclaim {
                flags |= crate::layout::RING_FLAG_RECLAIM;
            }
        }
        flags
    }
}

/// The kind-specific header fields of a new ring.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// SPSC: data bytes. MPMC: slot count.
    pub(crate) capacity: u64,
    /// SPSC: the largest record. MPMC: the slot size.
    pub(crate) record_limit: u64,
    /// Length of the ring data in bytes.
    pub(crate) data_len: u64,
    /// The header's `reserved_u32`: 0, or a broadcast ring's history length.
    pub(crate) kind_word: u32,
}

impl Shape {
    /// The three header fields, in header order.
    pub(crate) fn fields(self) -> [u64; 3] {
        [self.capacity, self.record_limit, self.data_len]
    }
}

/// Where a ring's shared words are inside its memory, whatever its kind: the producer's and the
/// consumer's positions (SPSC `tail`/`head`; MPMC hints), the start of the data, and the wake
/// words when the ring notifies sleepers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Words {
    /// The producer's position (`tail`, or the MPMC tail hint).
    pub(crate) tail: usize,
    /// The consumer's position (`head`, or the MPMC head hint).
    pub(crate) head: usize,
    /// The first byte of the ring's data.
    pub(crate) data: usize,
    /// The wake words, when the ring notifies sleepers.
    pub(crate) wake: Option<Wake>,
}

impl Words {
    /// The words of layout 1 (every kind): the control blocks' position words, data after the
    /// first page, and the wake words in the mode the ring flags say (`NOTIFY`, and
    /// `MEMBARRIER`: PROTOCOL §6.3).
    pub(crate) fn segment(ring_flags: u32) -> Self {
        Words {
            tail: offset(crate::layout::PRODUCER_BLOCK + crate::layout::BLOCK_POSITION),
            head: offset(crate::layout::CONSUMER_BLOCK + crate::layout::BLOCK_POSITION),
            data: offset(DATA_OFFSET),
            wake: Wake::for_ring(ring_flags),
        }
    }
}

/// What every endpoint of a ring shares: the segment, its validated header and geometry, and
/// the view of its memory.
pub struct Shared<K: sealed::KindImpl> {
    pub(crate) seg: Segment,
    pub(crate) header: SegmentHeader,
    pub(crate) mem: RawMem,
    pub(crate) g: K::Geometry,
    /// The wake words, when the ring notifies sleepers.
    pub(crate) wake: Option<Wake>,
    /// Bytes of checksum trailer per message: [`CHECKSUM_LEN`](crate::layout::CHECKSUM_LEN)
    /// on a checksum ring, else 0. (`open_header` checked the record limit holds it.)
    pub(crate) trailer: usize,
}

impl<K: sealed::KindImpl> Drop for Shared<K> {
    fn drop(&mut self) {
        // SAFETY: `mem` covers the whole validated segment, which holds the endpoint table.
        unsafe { crate::bell::sweep(&self.mem) };
    }
}

impl<K: Kind> Shared<K> {
    /// Registers an endpoint of `role` in the table (no ring-specific step).
    pub(crate) fn register(&self, role: Role) -> Result<Registration> {
        if !self.seg.is_writable() {
            return Err(Error::ReadOnly {
                target: self.seg.target(),
            });
        }
        // SAFETY: `mem` covers the whole validated segment, at least `DATA_OFFSET` bytes, so
        // the roster and the endpoint table; the segment is writable.
        let registered = unsafe {
            Registration::register(
                &self.mem,
                &Os::new(&self.seg),
                role,
                &mut |tag, gen, role| {
                    K::repair(self, tag, gen, role);
                },
            )
        };
        match registered {
            Ok((reg, reaped)) => {
                if reaped {
                    // A dead endpoint's entry was reclaimed: its peers re-check.
                    self.wake_everyone();
                }
                Ok(reg)
            }
            Err(RegisterError::Full | RegisterError::Stopped) => Err(Error::TooManyEndpoints {
                target: self.seg.target(),
                max: u32::try_from(crate::layout::MAX_ENDPOINTS).unwrap_or(u32::MAX),
            }),
        }
    }

    /// Frees `reg`'s entry and wakes every sleeper, so that they re-check for disconnection.
    /// `stalls` is the endpoint's last tally of the `stalls` counter ([`crate::stats`]).
    pub(crate) fn unregister(&self, reg: &mut Registration, stalls: u64) {
        self.count(reg.role(), crate::stats::STALLS, stalls);
        // SAFETY: as in `register`.
        unsafe { reg.unregister(&self.mem, &Os::new(&self.seg)) };
        self.wake_everyone();
    }

    /// Probes the other endpoints, reaping dead ones and repairing what they held; wakes
    /// sleepers if any was reaped. `stalls` is the endpoint's tally of full or empty verdicts
    /// since its last probe, added to its block's counter ([`crate::stats`]) with the probe's.
    pub(crate) fn probe(&self, reg: &Registration, stalls: u64) {
        // SAFETY: as in `register`.
        let reaped = unsafe {
            reg.probe(&self.mem, &Os::new(&self.seg), &mut |tag, gen, role| {
                K::repair(self, tag, gen, role);
            })
        };
        self.count(reg.role(), crate::stats::STALLS, stalls);
        self.count(reg.role(), crate::stats::PROBES, 1);
        self.count(reg.role(), crate::stats::REAPED, crate::conv::wide(reaped));
        if reaped > 0 {
            self.wake_everyone();
        }
    }

    /// T1 (layout 1.3): adds `n` to counter `index` of `role`'s block, on a writable segment
    /// (the side's own counter line; slow paths only).
    fn count(&self, role: Role, index: usize, n: u64) {
        if self.seg.is_writable() {
            // SAFETY: the counters are in the first page, which `mem` holds.
            unsafe { crate::stats::bump(&self.mem, crate::stats::block_of(role), index, n) };
        }
    }

    /// Wakes every sleeper of both directions (the set of endpoints changed).
    pub(crate) fn wake_everyone(&self) {
        if let Some(w) = self.wake {
            for dir in [Direction::Data, Direction::Space] {
                // SAFETY: the wake words are in the first page, which `mem` holds.
                unsafe { notify(&self.mem, w, dir) };
            }
        }
    }

    /// The error for corruption found in this ring's memory.
    pub(crate) fn corrupt(&self, corruption: Corruption) -> Error {
        Error::Corrupt {
            target: self.seg.target(),
            corruption,
        }
    }
}

/// A ring of kind `K` laid out in a [`Segment`]: a cheap, cloneable handle from which
/// endpoints attach ([`Ring::producer`], [`Ring::consumer`]). [`SpscRing`](crate::SpscRing)
/// and [`MpmcRing`](crate::MpmcRing) name the two kinds.
///
/// # Examples
///
/// ```
/// use shmbus_ring::{SegmentOptions, SpscConfig, SpscRing};
/// let name = format!("/shmbus-doc-ring-{}", std::process::id());
/// // Process A creates the ring (and owns the name: it is unlinked when `ring` is dropped).
/// let ring = SpscRing::create_shm(&name, &SpscConfig::new(1 << 12), &SegmentOptions::default())?;
/// let mut tx = ring.producer()?;
/// // Process B (here the same process) opens it by name.
/// let other = SpscRing::open_shm(&name, &SegmentOptions::default())?;
/// let mut rx = other.consumer()?;
///
/// tx.try_push(b"hello")?;
/// let mut buf = [0u8; 64];
/// let n = rx.try_pop(&mut buf)?;
/// assert_eq!(&buf[..n], b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Ring<K: Kind> {
    pub(crate) inner: Arc<Shared<K>>,
}

impl<K: Kind> Clone for Ring<K> {
    fn clone(&self) -> Self {
        Ring {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K: Kind> std::fmt::Debug for Ring<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(K::NAME)
            .field("segment", &self.inner.seg)
            .field("geometry", &self.inner.g)
            .finish()
    }
}

impl<K: Kind> Ring<K> {
    /// Creates the named shm object `name`, sized for `config`, and builds the ring in it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a bad geometry; segment errors as for [`Segment::create`].
    pub fn create_shm(name: &str, config: &K::Config, opts: &SegmentOptions) -> Result<Self> {
        let len = K::segment_len(config)?;
        Ring::create_in(Segment::create(name, len, opts)?, config)
    }

    /// Creates a System V segment for `name` ([`Segment::create_sysv`]), sized for `config`,
    /// and builds the ring in it. Other processes open it by name with [`Ring::open_shm`] (or
    /// [`Ring::open_in`] over [`Segment::open_sysv`] / [`Segment::open_sysv_id`]).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a bad geometry; segment errors as for
    /// [`Segment::create_sysv`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shmbus_ring::{segment::SysvOptions, SegmentOptions, SpscConfig, SpscRing};
    /// let name = format!("/shmbus-doc-sysv-ring-{}", std::process::id());
    /// let opts = SegmentOptions::default();
    /// let ring = SpscRing::create_sysv(&name, &SpscConfig::new(1 << 12), &opts, &SysvOptions::new())?;
    /// let peer = SpscRing::open_shm(&name, &opts)?; // found by name, through its companion file
    /// ring.producer()?.try_push(b"hello")?;
    /// let got = peer.consumer()?.try_pop_with(|b| b.to_vec())?;
    /// assert_eq!(got, b"hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_sysv(
        name: &str,
        config: &K::Config,
        opts: &SegmentOptions,
        sysv: &crate::segment::SysvOptions,
    ) -> Result<Self> {
        let len = K::segment_len(config)?;
        Ring::create_in(Segment::create_sysv(name, len, opts, sysv)?, config)
    }

    /// Opens the ring in the named shm object `name`, waiting up to 1 s for its creator to
    /// finish and validating the header.
    ///
    /// # Errors
    ///
    /// Segment errors as for [`Segment::open`]; header errors as for [`Ring::open_in`].
    pub fn open_shm(name: &str, opts: &SegmentOptions) -> Result<Self> {
        Ring::open_in(Segment::open(name, opts)?, &OpenOptions::default())
    }

    /// A ring in process-private heap memory (same layout and code as a shared one).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a bad geometry.
    pub fn in_heap(config: &K::Config) -> Result<Self> {
        let len = K::segment_len(config)?;
        Ring::create_in(Segment::heap(len)?, config)
    }

    /// Builds a ring in a segment this process just created (zeroed): the ring's own words,
    /// then the header, `READY` last. The segment must be at least as long as the
    /// configuration says (`segment_len`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a bad geometry or a segment that is too small;
    /// [`Error::NotCreator`] for a segment this handle did not create.
    pub fn create_in(seg: Segment, config: &K::Config) -> Result<Self> {
        let need = K::segment_len(config)?;
        if wide(seg.len()) < need {
            return Err(Error::InvalidConfig(format!(
                "{}: segment of {} bytes is smaller than the {need} bytes the ring needs",
                seg.target(),
                seg.len(),
            )));
        }
        if !seg.is_creator() {
            return Err(Error::NotCreator {
                target: seg.target(),
            });
        }
        let mem = seg
            .raw_mem(offset(need))
            .ok_or_else(|| Error::InvalidConfig(format!("{}: segment too small", seg.target())))?;
        let (shape, g) = K::lay_out(&mem, config)?;
        let (identity, flags) = sealed::ConfigImpl::header_identity(config);
        let mut header = new_header(
            K::RING_KIND,
            wide(seg.len()),
            shape.fields(),
            identity,
            flags,
        );
        let (limit, info) = sealed::ConfigImpl::extras(config);
        header.message_limit = limit;
        header.reserved_u32 = shape.kind_word;
        if let Some(info) = info {
            let bytes = info.encode();
            let at = DATA_OFFSET + shape.data_len + K::aux_len(&g);
            // `need` (the configuration's segment length) counts the info region after the
            // data, and `mem` holds `need` bytes.
            debug_assert!(at + wide(bytes.len()) <= need);
            // SAFETY: in bounds (above); nobody reads the region before the header is
            // published (H1, which orders this plain write).
            unsafe { crate::sync::Memory::write(&mem, offset(at), &bytes) };
            header.info_offset = at;
            header.info_len = wide(bytes.len());
        }
        handshake::publish(&seg, header)?;
        Ok(Ring::wrap(seg, header, g))
    }

    /// Opens the ring in `seg`: waits (bounded) for `READY`, then checks magic, version, ABI,
    /// kind, identity (if asked) and every size against the segment's real size.
    ///
    /// # Errors
    ///
    /// One variant per failed check: [`Error::Truncated`], [`Error::NotReady`],
    /// [`Error::BadInitState`], [`Error::BadMagic`], [`Error::MajorVersion`],
    /// [`Error::AbiMismatch`], [`Error::WrongKind`], [`Error::BadField`], [`Error::Mismatch`].
    pub fn open_in(seg: Segment, opts: &OpenOptions) -> Result<Self> {
        let (seg, h) = handshake::open_header(seg, K::RING_KIND, opts)?;
        let g = K::open(&seg, &h)?;
        Ok(Ring::wrap(seg, h, g))
    }

    pub(crate) fn wrap(seg: Segment, header: SegmentHeader, g: K::Geometry) -> Self {
        let mem = seg
            .raw_mem(offset(DATA_OFFSET))
            .expect("create and open check the segment holds the first page");
        let wake = Wake::for_ring(header.ring_flags);
        Ring {
            inner: Arc::new(Shared {
                seg,
                header,
                mem,
                g,
                wake,
                trailer: if header.ring_flags & crate::layout::RING_FLAG_CHECKSUM != 0 {
                    crate::layout::CHECKSUM_LEN
                } else {
                    0
                },
            }),
        }
    }

    /// Attaches a producer endpoint. An SPSC ring has one: a second attach fails until the
    /// first producer is dropped (or its process died: it is then taken over).
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyAttached`] (SPSC), [`Error::TooManyEndpoints`] when the endpoint table
    /// is full, [`Error::ReadOnly`], or [`Error::Corrupt`] if the positions in the segment are
    /// inconsistent.
    pub fn producer(&self) -> Result<Producer<K>> {
        Producer::attach(self.clone())
    }

    /// Attaches a consumer endpoint. An SPSC ring has one: a second attach fails until the
    /// first consumer is dropped (or its process died).
    ///
    /// # Errors
    ///
    /// As [`Ring::producer`].
    pub fn consumer(&self) -> Result<Consumer<K>> {
        Consumer::attach(self.clone())
    }

    /// The segment the ring lives in.
    pub fn segment(&self) -> &Segment {
        &self.inner.seg
    }

    /// The header as validated at create/open.
    pub fn header(&self) -> &SegmentHeader {
        &self.inner.header
    }

    /// The largest message, in bytes (on a [`checksum`](Self::checksum) ring, the record
    /// limit less the 4-byte trailer).
    pub fn max_message(&self) -> usize {
        K::max_message(&self.inner.g) - self.inner.trailer
    }

    /// The most messages the ring holds at once: the bound it was created with
    /// ([`SpscConfig::message_limit`](crate::SpscConfig::message_limit),
    /// [`MpmcConfig::message_limit`](crate::MpmcConfig::message_limit)), else an MPMC ring's
    /// slot count; `None` for an SPSC ring without a bound (only bytes bound it).
    pub fn capacity(&self) -> Option<usize> {
        K::capacity(&self.inner.g).map(crate::conv::offset)
    }

    /// How many messages are in the ring now (committed or being written, not yet taken):
    /// a snapshot of the shared positions, which other processes move meanwhile. `None` for an
    /// SPSC ring without a bound, which does not count messages.
    pub fn len(&self) -> Option<usize> {
        K::len(&self.inner.mem, &self.inner.g).map(crate::conv::offset)
    }

    /// Whether [`len`](Self::len) is `Some(0)`.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    /// The segment's info region ([`crate::info`]): what it carries, in words. `None` when
    /// its creator wrote none (raw rings, and segments of layout 1.0/1.1).
    ///
    /// # Errors
    ///
    /// [`Error::BadField`] naming `info` when the region does not decode.
    pub fn info(&self) -> Result<Option<crate::info::Info>> {
        let h = &self.inner.header;
        if h.info_len == 0 {
            return Ok(None);
        }
        // `open_header` (or `create_in`) checked the region lies inside the segment.
        let end = offset(h.info_offset + h.info_len);
        let mem = self.inner.seg.raw_mem(end).ok_or_else(|| {
            self.inner.corrupt(Corruption {
                what: "info region beyond the mapping",
                position: h.info_offset,
                value: h.info_len,
            })
        })?;
        let mut bytes = vec![0u8; offset(h.info_len)];
        // SAFETY: in bounds (above); the region is written once by the creator before READY,
        // which this process has seen, and never again.
        unsafe { crate::sync::Memory::read(&mem, offset(h.info_offset), &mut bytes) };
        crate::info::Info::decode(&bytes)
            .map(Some)
            .map_err(|reason| Error::BadField {
                target: self.inner.seg.target(),
                field: "info",
                value: h.info_offset,
                reason,
            })
    }

    /// Whether the ring's messages carry a CRC32C trailer that consumers verify (the header's
    /// [`RING_FLAG_CHECKSUM`](crate::layout::RING_FLAG_CHECKSUM), set by its creator).
    pub fn checksum(&self) -> bool {
        self.inner.trailer != 0
    }
}
