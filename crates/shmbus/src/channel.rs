//! Making channels: the [`ChannelBuilder`] and the [`Channel`] it creates or opens.

use crate::codec::{Bincode, Codec};
use crate::error::Error;
use crate::fingerprint::TypeIdentity;
use crate::flavor::{Flavor, Mpmc, Ring, Settings, Spsc};
use crate::{Receiver, Sender};
use shmbus_ring::{Identity, OpenOptions, Segment, SegmentOptions, WaitStrategy};
use std::marker::PhantomData;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;

/// The default capacity of a channel, in messages of the maximum size.
pub const DEFAULT_CAPACITY: u64 = 1024;

/// The default maximum message size of a channel, in encoded bytes, for codecs whose messages
/// vary in size ([`Plain`](crate::codec::Plain) channels default to the type's size).
pub const DEFAULT_MAX_MESSAGE: usize = 1024;

/// Starts building a channel of `T` messages: SPSC, bincode, [`DEFAULT_CAPACITY`] messages of
/// up to [`DEFAULT_MAX_MESSAGE`] bytes, mode `0600`.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// #[derive(Serialize, Deserialize, Debug, PartialEq)]
/// struct Order { id: u64, item: String }
///
/// let name = format!("/shmbus-doc-channel-{}", std::process::id());
/// // Process A creates the channel under a name and keeps the sending end.
/// let mut tx = shmbus::channel::<Order>().capacity(256).max_message(512).create_sender(&name)?;
/// // Process B (here the same one) opens it by name and takes the receiving end.
/// let mut rx = shmbus::channel::<Order>().open_receiver(&name)?;
/// tx.send(Order { id: 1, item: "tea".into() })?;
/// assert_eq!(rx.recv()?, Order { id: 1, item: "tea".into() });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn channel<T>() -> ChannelBuilder<T>
where
    Bincode: Codec<T>,
{
    ChannelBuilder::new()
}

/// The builder's type parameters as a marker that is `Send + Sync` whatever they are.
type Types<T, F, C> = fn() -> (T, F, C);

/// Settings for a new channel, or for opening an existing one: flavor, codec, capacity,
/// maximum message size, permissions and how endpoints wait. The last call says where the
/// channel lives: [`create`](Self::create) (named shared memory), [`anonymous`](Self::anonymous)
/// (shared with children forked later), [`memfd`](Self::memfd), [`create_file`](Self::create_file),
/// [`in_process`](Self::in_process); or [`open`](Self::open), [`open_file`](Self::open_file),
/// [`open_fd`](Self::open_fd) for the other end.
///
/// ```
/// use shmbus::codec::Plain;
/// use shmbus::flavor::Mpmc;
/// let builder = shmbus::channel::<[u64; 4]>()
///     .mpmc()                 // any number of senders and receivers; handles are Clone
///     .codec::<Plain>()       // plain-old-data by memcpy
///     .capacity(64)           // 64 messages
///     .mode(0o660)            // group may open it
///     .prefault(true);
/// let ch: shmbus::Channel<[u64; 4], Mpmc, Plain> = builder.in_process()?;
/// assert_eq!(ch.max_message(), 32);
/// # Ok::<(), shmbus::Error>(())
/// ```
pub struct ChannelBuilder<T, F = Spsc, C = Bincode> {
    capacity: u64,
    max_message: Option<usize>,
    segment: SegmentOptions,
    notify: bool,
    checksum: bool,
    endpoints: Settings,
    type_name: Option<String>,
    ready_timeout: Duration,
    _types: PhantomData<Types<T, F, C>>,
}

impl<T, F, C> std::fmt::Debug for ChannelBuilder<T, F, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelBuilder")
            .field("type", &std::any::type_name::<T>())
            .field("flavor", &std::any::type_name::<F>())
            .field("codec", &std::any::type_name::<C>())
            .field("capacity", &self.capacity)
            .field("max_message", &self.max_message)
            .field("segment", &self.segment)
            .field("notify", &self.notify)
            .field("checksum", &self.checksum)
            .field("wait", &self.endpoints.wait)
            .field("probe_interval", &self.endpoints.probe)
            .field("type_name", &self.type_name)
            .finish_non_exhaustive()
    }
}

impl<T, F, C> Clone for ChannelBuilder<T, F, C> {
    fn clone(&self) -> Self {
        ChannelBuilder {
            capacity: self.capacity,
            max_message: self.max_message,
            segment: self.segment.clone(),
            notify: self.notify,
            checksum: self.checksum,
            endpoints: self.endpoints,
            type_name: self.type_name.clone(),
            ready_timeout: self.ready_timeout,
            _types: PhantomData,
        }
    }
}

impl<T, F: Flavor, C: Codec<T>> Default for ChannelBuilder<T, F, C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, F: Flavor, C: Codec<T>> ChannelBuilder<T, F, C> {
    /// The defaults: [`DEFAULT_CAPACITY`] messages of up to [`DEFAULT_MAX_MESSAGE`] bytes (a
    /// fixed-size codec: its size), mode `0600`, endpoints that notify, wait by
    /// [`WaitStrategy::default`] and probe their peers every
    /// [`DEFAULT_PROBE_INTERVAL`](crate::ring::liveness::DEFAULT_PROBE_INTERVAL) (20 ms).
    pub fn new() -> Self {
        ChannelBuilder {
            capacity: DEFAULT_CAPACITY,
            max_message: None,
            segment: SegmentOptions::default(),
            notify: true,
            checksum: false,
            endpoints: Settings::default(),
            type_name: None,
            ready_timeout: OpenOptions::default().ready_timeout,
            _types: PhantomData,
        }
    }

    fn with<F2, C2>(self) -> ChannelBuilder<T, F2, C2> {
        ChannelBuilder {
            capacity: self.capacity,
            max_message: self.max_message,
            segment: self.segment,
            notify: self.notify,
            checksum: self.checksum,
            endpoints: self.endpoints,
            type_name: self.type_name,
            ready_timeout: self.ready_timeout,
            _types: PhantomData,
        }
    }

    /// One sender, one receiver, variable-size messages (the default; the fastest).
    pub fn spsc(self) -> ChannelBuilder<T, Spsc, C> {
        self.with()
    }

    /// Any number of senders and receivers, each message in a slot of the maximum size;
    /// handles are `Clone`.
    pub fn mpmc(self) -> ChannelBuilder<T, Mpmc, C> {
        self.with()
    }

    /// Encodes messages with `C2` ([`codec`](crate::codec)) instead of bincode.
    pub fn codec<C2: Codec<T>>(self) -> ChannelBuilder<T, F, C2> {
        self.with()
    }

    /// At most `messages` messages in the channel at once, whatever their size (default
    /// [`DEFAULT_CAPACITY`]): crossbeam-channel's `bounded(n)`. A `try_send` into a channel
    /// holding `messages` is [`TrySendError::Full`](crate::TrySendError::Full) with the
    /// message back, and a blocking send waits for a receive. The ring underneath is sized to
    /// hold that many messages of the maximum size (MPMC: that many slots rounded up to a power
    /// of two, the bound kept below it; SPSC: a byte ring for `messages + 1` records of the
    /// maximum size, rounded up to a power of two). The bound is recorded in the segment, so
    /// every end, in every process, keeps it (PROTOCOL §4.6, §5.6).
    ///
    /// A larger ring also buys streaming rate. In a small ring every line the sender writes
    /// is one the receiver's core read a lap before and probably still holds, so each write
    /// must take the line back; in a ring of a megabyte or more that core has let it go. On
    /// an AMD EPYC VM, a 64-byte struct streamed between two threads at 16–17 M msgs/s with
    /// capacity 681 (a 64 KiB ring), 18 M with 5448 (512 KiB) and 38–42 M with 10922
    /// (1 MiB); the defaults (1024 messages of up to 1 KiB, a 2 MiB ring) streamed it at 38 M
    /// (DECISIONS D100). What counts is the ring's size in bytes, which the maximum message
    /// sets too. Round trips do not change: one message at a time never fills a ring. Where
    /// the step lies depends on the CPU's caches, so measure with your message on your CPU.
    ///
    /// ```
    /// use shmbus::TrySendError;
    /// let ch = shmbus::channel::<u8>().capacity(1).in_process()?;
    /// let (mut tx, mut rx) = (ch.sender()?, ch.receiver()?);
    /// tx.try_send(1)?;
    /// assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
    /// assert_eq!(rx.recv()?, 1);
    /// tx.try_send(2)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// `capacity(0)` is refused: crossbeam-channel's `bounded(0)` is a rendezvous (a send
    /// waits for a receiver to take the message from it), which a ring in shared memory
    /// between processes does not offer. Creating or opening a channel with it is an
    /// [`Error::Config`], rather than a channel that holds one message.
    ///
    /// ```
    /// let err = shmbus::channel::<u32>().capacity(0).in_process().unwrap_err();
    /// assert!(matches!(err, shmbus::Error::Config(_)));
    /// assert!(err.to_string().contains("capacity 0"), "{err}");
    /// ```
    pub fn capacity(mut self, messages: u64) -> Self {
        self.capacity = messages;
        self
    }

    /// The largest encoded message, in bytes (default [`DEFAULT_MAX_MESSAGE`]; for a
    /// fixed-size codec, the type's size). Sending a larger one is an error at the call.
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.max_message = Some(bytes);
        self
    }

    /// Permission bits of a created segment (default `0o600`), applied regardless of umask.
    pub fn mode(mut self, mode: u32) -> Self {
        self.segment = self.segment.mode(mode);
        self
    }

    /// Map with `MAP_POPULATE` so the first messages do not pay page faults.
    pub fn prefault(mut self, yes: bool) -> Self {
        self.segment = self.segment.prefault(yes);
        self
    }

    /// `mlock` the mapping (needs `RLIMIT_MEMLOCK` or privilege).
    pub fn mlock(mut self, yes: bool) -> Self {
        self.segment = self.segment.mlock(yes);
        self
    }

    /// The shm directory for named channels (default: `SHMBUS_DIR`, else `/dev/shm`). See
    /// [`SegmentOptions::shm_dir`](crate::ring::SegmentOptions::shm_dir).
    pub fn shm_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.segment = self.segment.shm_dir(dir);
        self
    }

    /// Huge pages for a created segment. See
    /// [`SegmentOptions::huge_pages`](crate::ring::SegmentOptions::huge_pages).
    pub fn huge_pages(mut self, huge: shmbus_ring::segment::HugePages) -> Self {
        self.segment = self.segment.huge_pages(huge);
        self
    }

    /// Whether a created ring wakes sleeping endpoints (default `true`); a channel whose
    /// endpoints only spin can turn it off to take a fence off every message. See
    /// [`SpscConfig::notify`](crate::ring::SpscConfig::notify).
    pub fn notify(mut self, yes: bool) -> Self {
        self.notify = yes;
        self
    }

    /// Whether a created ring carries a CRC32C per message (default `false`): every send
    /// writes it, every receive verifies it on the receiver's private copy before decoding,
    /// and a message whose bytes do not match is [`RecvError::Checksum`](crate::RecvError)
    /// (dropped; the next receive gets the next message) instead of a decode of bytes the
    /// sender never sent. Costs 4 bytes of ring space and a CRC32C pass per message on each
    /// side (DECISIONS D24). Opening adopts whatever the segment says, whatever this is set to.
    /// See [`SpscConfig::checksum`](crate::ring::SpscConfig::checksum).
    ///
    /// ```
    /// let ch = shmbus::channel::<String>().checksum(true).in_process()?;
    /// assert!(ch.ring().checksum());
    /// let (mut tx, mut rx) = (ch.sender()?, ch.receiver()?);
    /// tx.send("checked".into())?;
    /// assert_eq!(rx.recv()?, "checked");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn checksum(mut self, yes: bool) -> Self {
        self.checksum = yes;
        self
    }

    /// How the endpoints this builder attaches wait in blocking calls (default
    /// [`WaitStrategy::default`]: spin 50 µs, then sleep on a futex). Every sender and
    /// receiver of the channel starts with it (MPMC clones too); each can change its own with
    /// [`Sender::set_wait_strategy`] and [`Receiver::set_wait_strategy`].
    ///
    /// ```
    /// use shmbus::ring::WaitStrategy;
    /// let ch = shmbus::channel::<u32>().wait_strategy(WaitStrategy::Spin).in_process()?;
    /// let (mut tx, mut rx) = (ch.sender()?, ch.receiver()?);
    /// tx.send(1)?;
    /// assert_eq!(rx.recv()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_strategy(mut self, wait: WaitStrategy) -> Self {
        self.endpoints.wait = wait;
        self
    }

    /// How often the endpoints this builder attaches check, while they wait (a full channel
    /// for a sender, an empty one for a receiver), whether the endpoints of other processes
    /// are still alive, reap the dead ones and repair what they held (default
    /// [`DEFAULT_PROBE_INTERVAL`](crate::ring::liveness::DEFAULT_PROBE_INTERVAL), 20 ms).
    /// A peer killed without detaching is noticed, and reported as `Disconnected` if it was
    /// the last of its side, within about one interval of the first wait after its death; a
    /// shorter interval notices sooner and costs a few more system calls per interval while
    /// waiting (none on the fast path). Every sender and receiver of the channel starts with
    /// it (MPMC clones too); each can change its own with [`Sender::set_probe_interval`] and
    /// [`Receiver::set_probe_interval`].
    ///
    /// ```
    /// use std::time::Duration;
    /// let ch = shmbus::channel::<u32>()
    ///     .mpmc()
    ///     .probe_interval(Duration::from_millis(5))
    ///     .in_process()?;
    /// let (mut tx, mut rx) = (ch.sender()?, ch.receiver()?);
    /// tx.send(1)?;
    /// assert_eq!(rx.recv()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn probe_interval(mut self, interval: Duration) -> Self {
        self.endpoints.probe = interval;
        self
    }

    /// The type name that goes into the fingerprint instead of [`std::any::type_name`]: for
    /// processes built from different crates that each define the message type (see
    /// [`fingerprint`](crate::fingerprint)). Both ends must use the same name.
    pub fn type_name(mut self, name: impl Into<String>) -> Self {
        self.type_name = Some(name.into());
        self
    }

    /// How long an opener waits for the creator to finish building the segment (default 1 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// What this end carries: type, codec and fingerprint.
    pub fn identity(&self) -> TypeIdentity {
        TypeIdentity::of::<T, C>(self.type_name.as_deref())
    }

    /// `capacity(0)` makes no channel (see [`capacity`](Self::capacity)).
    fn check_capacity(&self) -> Result<(), Error> {
        if self.capacity == 0 {
            return Err(Error::Config(
                "capacity 0 (a rendezvous channel, crossbeam's bounded(0)) is not supported \
                 across processes: use a capacity of at least 1"
                    .into(),
            ));
        }
        Ok(())
    }

    fn max(&self) -> Result<usize, Error> {
        let max = self
            .max_message
            .or_else(C::fixed_len)
            .unwrap_or(DEFAULT_MAX_MESSAGE);
        if let Some(fixed) = C::fixed_len() {
            if max < fixed {
                return Err(Error::Config(format!(
                    "the maximum message size {max} is smaller than the {fixed} bytes of every {} message",
                    C::NAME
                )));
            }
        }
        if let Some(limit) = C::decode_limit() {
            if max > limit {
                return Err(Error::Config(format!(
                    "the maximum message size {max} exceeds the {} decode limit of {limit} bytes \
                     (raise it: Bincode<{{ LIMIT }}>)",
                    C::NAME
                )));
            }
        }
        Ok(max.max(1))
    }

    /// The length of a segment for this channel, named `name` in its info region.
    fn segment_len(&self, name: &str) -> Result<u64, Error> {
        F::segment_len(&self.ring_config(Identity::default(), name)?).map_err(config_error)
    }

    /// What a created segment says it carries, in words (its info region): the type name, the
    /// codec and the channel's `name`; the ring crate adds the creating program and pid.
    fn info(&self, name: &str) -> shmbus_ring::info::Info {
        let id = self.identity();
        shmbus_ring::info::Info::new(id.type_name, id.codec_name, name)
    }

    /// The ring configuration: room for `max()` payload bytes, plus the trailer on a checksum
    /// ring.
    fn ring_config(&self, identity: Identity, name: &str) -> Result<F::Config, Error> {
        self.check_capacity()?;
        let trailer = if self.checksum {
            shmbus_ring::layout::CHECKSUM_LEN
        } else {
            0
        };
        let config = F::config_for(
            self.capacity,
            (self.max()? + trailer) as u64,
            identity,
            self.notify,
        )
        .map_err(config_error)?;
        // The capacity is an exact bound in messages (layout 1.2's `BOUNDED`), as crossbeam's
        // `bounded(n)`: the ring is sized to hold that many of the largest message.
        let config = F::with_limit(F::with_checksum(config, self.checksum), self.capacity);
        Ok(F::with_info(config, self.info(name)))
    }

    fn build(&self, seg: Segment, name: &str) -> Result<Channel<T, F, C>, Error> {
        let id = self.identity();
        let identity = Identity {
            type_fingerprint: id.fingerprint,
            codec_id: id.codec_id,
        };
        let config = self.ring_config(identity, name)?;
        let ring = Ring::<F>::create_in(seg, &config)?;
        Ok(Channel::new(ring, self.endpoints))
    }

    fn attach(&self, seg: Segment) -> Result<Channel<T, F, C>, Error> {
        self.check_capacity()?;
        let target = seg.target();
        let opts = OpenOptions {
            ready_timeout: self.ready_timeout,
            // The identity is compared below, both fields at once, so that a mismatch names
            // both sides completely.
            expect: None,
        };
        let ring = Ring::<F>::open_in(seg, &opts)?;
        let expected = self.identity();
        let header = ring.header();
        if header.type_fingerprint != expected.fingerprint || header.codec_id != expected.codec_id {
            return Err(Error::TypeMismatch {
                target,
                found_fingerprint: header.type_fingerprint,
                found_codec_id: header.codec_id,
                // What the creator wrote in words; none before layout 1.2 (and an info region
                // that does not decode names nothing either: the mismatch is the error).
                found: ring.info().ok().flatten().map(Box::new),
                expected: Box::new(expected),
            });
        }
        Ok(Channel::new(ring, self.endpoints))
    }

    /// Creates the channel in the named POSIX shared-memory object `name` (`/orders`). The
    /// returned channel owns the name: it is unlinked when the channel and every endpoint
    /// attached through it are dropped (or kept with `channel.segment().keep()`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for settings that make no channel; [`Error::Ring`] naming the call
    /// that failed (`shm_open("/orders"): File exists (EEXIST)`, ...).
    pub fn create(&self, name: &str) -> Result<Channel<T, F, C>, Error> {
        let seg = Segment::create(name, self.segment_len(name)?, &self.segment)?;
        self.build(seg, name)
    }

    /// Creates the channel in a System V shared-memory segment for `name`
    /// ([`Segment::create_sysv`]): not bounded by the shm directory's size, and with
    /// [`SysvOptions::destroy_on_last_detach`](shmbus_ring::segment::SysvOptions::destroy_on_last_detach)
    /// gone with its last process. Other processes open it by name with
    /// [`open`](Self::open), as a POSIX channel.
    ///
    /// ```
    /// use shmbus::ring::segment::SysvOptions;
    /// let name = format!("/shmbus-doc-ch-sysv-{}", std::process::id());
    /// let ch = shmbus::channel::<u64>().create_sysv(&name, &SysvOptions::new())?;
    /// let mut tx = ch.sender()?;
    /// let mut rx = shmbus::channel::<u64>().open_receiver(&name)?;
    /// tx.send(7)?;
    /// assert_eq!(rx.recv()?, 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create) (`shmget`, `shmat`, the companion file's `link`).
    pub fn create_sysv(
        &self,
        name: &str,
        sysv: &shmbus_ring::segment::SysvOptions,
    ) -> Result<Channel<T, F, C>, Error> {
        let seg = Segment::create_sysv(name, self.segment_len(name)?, &self.segment, sysv)?;
        self.build(seg, name)
    }

    /// [`create`](Self::create)s the channel and attaches its sender. The sender keeps the
    /// segment, and owns its name until it is dropped.
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create).
    pub fn create_sender(&self, name: &str) -> Result<Sender<T, F, C>, Error> {
        self.create(name)?.sender()
    }

    /// [`create`](Self::create)s the channel and attaches its receiver.
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create).
    pub fn create_receiver(&self, name: &str) -> Result<Receiver<T, F, C>, Error> {
        self.create(name)?.receiver()
    }

    /// Creates the channel in an anonymous shared mapping: children `fork`ed afterwards share
    /// it, and nothing else can reach it. Attach endpoints *after* the fork, in the process
    /// that uses them: `channel.sender()` in one, `channel.receiver()` in the other.
    ///
    /// ```
    /// use nix::sys::wait::waitpid;
    /// use nix::unistd::{fork, ForkResult};
    /// let ch = shmbus::channel::<String>().anonymous()?;
    /// // SAFETY: no thread has been started, so the child may run ordinary code.
    /// match unsafe { fork() }? {
    ///     ForkResult::Child => {
    ///         let mut tx = ch.sender()?;
    ///         tx.send("from the child".into())?;
    ///         std::process::exit(0);
    ///     }
    ///     ForkResult::Parent { child } => {
    ///         let mut rx = ch.receiver()?;
    ///         assert_eq!(rx.recv_timeout(std::time::Duration::from_secs(30))?, "from the child");
    ///         waitpid(child, None)?;
    ///     }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create) (`mmap`).
    pub fn anonymous(&self) -> Result<Channel<T, F, C>, Error> {
        let seg = Segment::anonymous(self.segment_len("anonymous")?, &self.segment)?;
        self.build(seg, "anonymous")
    }

    /// Creates the channel in a sealed memfd: pass `channel.segment().fd()` to another
    /// process (inheritance or `SCM_RIGHTS`), which opens it with [`open_fd`](Self::open_fd).
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create) (`memfd_create`, `fcntl(F_ADD_SEALS)`).
    pub fn memfd(&self, debug_name: &str) -> Result<Channel<T, F, C>, Error> {
        let name = format!("memfd:{debug_name}");
        let seg = Segment::memfd(debug_name, self.segment_len(&name)?, &self.segment)?;
        self.build(seg, &name)
    }

    /// Creates the channel in a new regular file at `path` (a channel that survives reboot;
    /// the file is kept when the channel is dropped).
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create) (`open` with `EEXIST` when the file exists).
    pub fn create_file(&self, path: impl AsRef<Path>) -> Result<Channel<T, F, C>, Error> {
        let name = path.as_ref().display().to_string();
        let seg = Segment::create_file(path, self.segment_len(&name)?, &self.segment)?;
        self.build(seg, &name)
    }

    /// Creates the channel in this process's heap: the same code and layout as shared memory,
    /// for threads, tests and examples.
    ///
    /// # Errors
    ///
    /// [`Error::Config`]; [`Error::Ring`] if the memory cannot be allocated.
    pub fn in_process(&self) -> Result<Channel<T, F, C>, Error> {
        let seg = Segment::heap(self.segment_len("heap")?)?;
        self.build(seg, "heap")
    }

    /// Opens the channel another process created under `name`, waiting up to the
    /// [`ready_timeout`](Self::ready_timeout) for its creator to finish, and checks that it
    /// carries this builder's type and codec.
    ///
    /// # Errors
    ///
    /// [`Error::TypeMismatch`] naming both sides' type fingerprints and codecs;
    /// [`Error::Ring`] for a missing object (`ENOENT`), a segment of the other flavor
    /// (`WrongKind`), or a header that fails validation.
    pub fn open(&self, name: &str) -> Result<Channel<T, F, C>, Error> {
        self.attach(Segment::open(name, &self.segment)?)
    }

    /// [`open`](Self::open)s the channel and attaches a sender.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open), and [`Error::Ring`] with `AlreadyAttached` if an SPSC
    /// channel's sender is taken.
    pub fn open_sender(&self, name: &str) -> Result<Sender<T, F, C>, Error> {
        self.open(name)?.sender()
    }

    /// [`open`](Self::open)s the channel and attaches a receiver.
    ///
    /// # Errors
    ///
    /// As [`open_sender`](Self::open_sender).
    pub fn open_receiver(&self, name: &str) -> Result<Receiver<T, F, C>, Error> {
        self.open(name)?.receiver()
    }

    /// Opens a channel in the file at `path`.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub fn open_file(&self, path: impl AsRef<Path>) -> Result<Channel<T, F, C>, Error> {
        self.attach(Segment::open_file(path, &self.segment)?)
    }

    /// Opens a channel from a file descriptor another process passed (a memfd, shm object or
    /// file).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open); an unsealed memfd is refused.
    pub fn open_fd(&self, fd: OwnedFd) -> Result<Channel<T, F, C>, Error> {
        self.attach(Segment::open_fd(fd, &self.segment)?)
    }
}

/// A channel's ring, created or opened, with no endpoint attached: attach them with
/// [`sender`](Self::sender) and [`receiver`](Self::receiver). Cheap to clone (the ring is
/// shared).
///
/// ```
/// let ch = shmbus::channel::<u32>().mpmc().capacity(8).in_process()?;
/// let (mut tx, mut rx) = (ch.sender()?, ch.receiver()?);
/// tx.send(7)?;
/// assert_eq!(rx.recv()?, 7);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Channel<T, F: Flavor = Spsc, C = Bincode> {
    ring: Ring<F>,
    endpoints: Settings,
    _types: PhantomData<fn() -> (T, C)>,
}

impl<T, F: Flavor, C> Clone for Channel<T, F, C> {
    fn clone(&self) -> Self {
        Channel {
            ring: self.ring.clone(),
            endpoints: self.endpoints,
            _types: PhantomData,
        }
    }
}

impl<T, F: Flavor, C> std::fmt::Debug for Channel<T, F, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("type", &std::any::type_name::<T>())
            .field("flavor", &<F as Flavor>::NAME)
            .field("ring", &self.ring)
            .finish_non_exhaustive()
    }
}

impl<T, F: Flavor, C: Codec<T>> Channel<T, F, C> {
    fn new(ring: Ring<F>, endpoints: Settings) -> Self {
        Channel {
            ring,
            endpoints,
            _types: PhantomData,
        }
    }

    /// Attaches a sender. SPSC: one at a time. MPMC: a new endpoint each call. It waits and
    /// probes as the builder said ([`ChannelBuilder::wait_strategy`],
    /// [`ChannelBuilder::probe_interval`]).
    ///
    /// # Errors
    ///
    /// [`Error::Ring`]: `AlreadyAttached` (SPSC), `TooManyEndpoints` (MPMC), `ReadOnly`.
    pub fn sender(&self) -> Result<Sender<T, F, C>, Error> {
        let producer = self.endpoints.producer(self.ring.producer()?);
        Ok(Sender::new(producer, self.ring.clone(), self.endpoints))
    }

    /// Attaches a receiver. SPSC: one at a time. MPMC: a new endpoint each call. It waits and
    /// probes as the builder said.
    ///
    /// # Errors
    ///
    /// As [`sender`](Self::sender).
    pub fn receiver(&self) -> Result<Receiver<T, F, C>, Error> {
        let consumer = self.endpoints.consumer(self.ring.consumer()?);
        Ok(Receiver::new(consumer, self.ring.clone(), self.endpoints))
    }

    /// The segment the channel lives in (its name, fd, and whether it unlinks on drop).
    pub fn segment(&self) -> &Segment {
        self.ring.segment()
    }

    /// The largest encoded message, in bytes.
    pub fn max_message(&self) -> usize {
        self.ring.max_message()
    }

    /// The ring underneath, for monitoring and for its own API.
    pub fn ring(&self) -> &Ring<F> {
        &self.ring
    }
}

/// A configuration the ring crate refused, as the channel's error.
fn config_error(e: shmbus_ring::Error) -> Error {
    match e {
        shmbus_ring::Error::InvalidConfig(msg) => Error::Config(msg),
        other => Error::Ring(other),
    }
}
