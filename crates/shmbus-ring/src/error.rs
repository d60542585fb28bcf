//! Typed errors: what failed, on which segment, and why.

use std::fmt;
use std::time::Duration;

use crate::endpoint::Role;
use nix::errno::Errno;

/// The result type of segment and ring setup operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An errno, rendered as `Permission denied (EACCES)`. Compare with the `libc` constants:
/// `code.raw() == libc::EACCES`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct OsCode(Errno);

impl OsCode {
    /// The errno as the raw number (`libc::EACCES`, ...).
    pub fn raw(self) -> i32 {
        self.0 as i32
    }

    /// The code for a raw errno.
    pub fn from_raw(errno: i32) -> Self {
        OsCode(Errno::from_raw(errno))
    }

    /// The symbolic name: `"EACCES"`.
    pub fn name(self) -> String {
        format!("{:?}", self.0)
    }

    pub(crate) fn new(errno: Errno) -> Self {
        OsCode(errno)
    }
}

impl fmt::Debug for OsCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OsCode({:?})", self.0)
    }
}

impl fmt::Display for OsCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:?})", self.0.desc(), self.0)
    }
}

/// Errors from creating, opening, validating and attaching to segments and rings.
///
/// Every variant names the segment (`target`: the shm name, file path, `memfd:NAME`,
/// `anonymous` or `heap`) and, where a header field is at fault, the field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Every key a System V segment's name may take (its derived key and the next ones) holds
    /// another name's segment or a segment that is not shmbus's.
    #[error("{target}: the {probes} System V keys from {first_key:#010x} on are all taken by other segments (ipcs -m lists them)")]
    KeyCollision {
        /// The segment name.
        target: String,
        /// The key derived from the name.
        first_key: i32,
        /// How many keys were tried.
        probes: i32,
    },
    /// Explicit huge pages were asked for and the host cannot give them.
    #[error("{target}: explicit huge pages unavailable: {reason}")]
    HugePages {
        /// The segment.
        target: String,
        /// Why: the pool is empty, too small, or the call was refused.
        reason: String,
    },
    /// A system call failed: `shm_open("/orders"): Permission denied (EACCES)`.
    #[error("{op}(\"{target}\"): {code}")]
    Os {
        /// The system call or operation (`shm_open`, `ftruncate`, `mmap`, ...).
        op: &'static str,
        /// The segment it was applied to.
        target: String,
        /// The errno it returned.
        code: OsCode,
    },
    /// The name cannot be a POSIX shared-memory object name.
    #[error("invalid segment name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The object is too small to hold even the header and control blocks: it was cut short
    /// after its header was published, or it stayed too short for the whole ready wait (its
    /// creator died before sizing it, or it is not a shmbus segment). An object found short
    /// while its creator may still be sizing it is waited on, not reported at once.
    #[error("{target}: object is {actual} bytes, smaller than the {needed}-byte header (cut short, never sized by its creator, or not a shmbus segment)")]
    Truncated {
        /// The segment.
        target: String,
        /// Its real size (`fstat`).
        actual: u64,
        /// The smallest size a segment can have.
        needed: u64,
    },
    /// The creator never published `READY` within the wait bound.
    #[error("{target}: header not ready after {waited:?} (init_state = {state:#x}); the creator may have died mid-initialisation")]
    NotReady {
        /// The segment.
        target: String,
        /// How long the opener waited.
        waited: Duration,
        /// The last `init_state` seen.
        state: u32,
    },
    /// `init_state` holds a value that is neither "being built" nor `READY`.
    #[error(
        "{target}: header field `init_state` is {state:#x}, neither 0 (being built) nor READY"
    )]
    BadInitState {
        /// The segment.
        target: String,
        /// The value found.
        state: u32,
    },
    /// The magic number is wrong: this is not a shmbus segment.
    #[error("{target}: header field `magic` is {found:#018x}, expected {expected:#018x}: not a shmbus segment")]
    BadMagic {
        /// The segment.
        target: String,
        /// The value found.
        found: u64,
        /// The value shmbus writes.
        expected: u64,
    },
    /// The layout's major version differs from this build's.
    #[error(
        "{target}: header field `layout_major` is {found}, this build speaks layout {expected}.x"
    )]
    MajorVersion {
        /// The segment.
        target: String,
        /// The version found.
        found: u16,
        /// The version this build writes and reads.
        expected: u16,
    },
    /// The ABI flags (endianness, block alignment) differ from this process's.
    #[error("{target}: header field `{field}` is {found:#x}, this process needs {expected:#x}")]
    AbiMismatch {
        /// The segment.
        target: String,
        /// `abi_flags`, `block_align` or `header_len`.
        field: &'static str,
        /// The value found.
        found: u64,
        /// The value this process needs.
        expected: u64,
    },
    /// The segment holds another kind of ring.
    #[error("{target}: header field `ring_kind` is {found}, expected {expected}")]
    WrongKind {
        /// The segment.
        target: String,
        /// The kind found, by name or number.
        found: String,
        /// The kind asked for.
        expected: String,
    },
    /// A size or offset in the header disagrees with the object or with another field.
    #[error("{target}: header field `{field}` is {value}, but {reason}")]
    BadField {
        /// The segment.
        target: String,
        /// The field at fault.
        field: &'static str,
        /// Its value.
        value: u64,
        /// What it disagrees with.
        reason: String,
    },
    /// The type fingerprint or codec of the segment is not what the opener expects.
    #[error("{target}: header field `{field}` is {found:#x}, the opener expects {expected:#x}")]
    Mismatch {
        /// The segment.
        target: String,
        /// `type_fingerprint` or `codec_id`.
        field: &'static str,
        /// The value in the segment.
        found: u64,
        /// The value the opener expects.
        expected: u64,
    },
    /// The ring's single producer or consumer slot is taken.
    #[error("{target}: a {role} is already attached (pid {pid}); an SPSC ring takes one of each")]
    AlreadyAttached {
        /// The segment.
        target: String,
        /// The role asked for.
        role: Role,
        /// The pid recorded by the current holder.
        pid: u32,
    },
    /// Every entry of the ring's endpoint table is taken.
    #[error("{target}: all {max} endpoint slots are taken")]
    TooManyEndpoints {
        /// The segment.
        target: String,
        /// The size of the endpoint table.
        max: u32,
    },
    /// An endpoint was asked of a segment mapped read-only.
    #[error("{target}: mapped read-only; endpoints need a read-write mapping")]
    ReadOnly {
        /// The segment.
        target: String,
    },
    /// A ring was created in a segment this handle did not create (it may be in use).
    #[error("{target}: a ring can only be created in a segment this process just created")]
    NotCreator {
        /// The segment.
        target: String,
    },
    /// The ring state in shared memory is inconsistent.
    #[error("{target}: {corruption}")]
    Corrupt {
        /// The segment.
        target: String,
        /// What was found.
        #[source]
        corruption: Corruption,
    },
}

/// Corrupt state found in shared memory by a ring operation: what, where, and the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("corrupt ring state: {what} (position {position}, value {value:#x})")]
pub struct Corruption {
    /// What was inconsistent.
    pub what: &'static str,
    /// The ring position (byte position for SPSC) at which it was found.
    pub position: u64,
    /// The offending value.
    pub value: u64,
}

/// Why a push did not happen. Nothing was written when this is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The ring has no room for the record now.
    #[error("ring is full")]
    Full,
    /// A blocking push reached its deadline with the ring still full.
    #[error("timed out waiting for room in the ring")]
    Timeout,
    /// The record is larger than the ring's record limit.
    #[error("record of {len} bytes exceeds the ring's limit of {max} bytes")]
    TooLarge {
        /// The record's length.
        len: usize,
        /// The ring's record limit.
        max: usize,
    },
    /// An all-or-nothing batch has more records than the ring has slots: it can never fit.
    #[error("batch of {count} records exceeds the ring's {max} slots")]
    TooMany {
        /// Records in the batch.
        count: usize,
        /// Slots in the ring.
        max: usize,
    },
    /// Every consumer that attached to the ring is gone (dropped, or its process died) and
    /// none is attached now: nothing would ever read the record. A consumer attaching again
    /// ends this state.
    #[error("no consumer is attached to the ring any more")]
    Disconnected,
    /// The consumer's position in shared memory is inconsistent.
    #[error(transparent)]
    Corrupt(#[from] Corruption),
}

/// A message of a checksum ring ([`SpscConfig::checksum`](crate::SpscConfig::checksum)) whose
/// bytes do not match the CRC32C its producer wrote: torn, overwritten, or forged in shared
/// memory. The message was consumed (the ring goes on, and the next message is unaffected);
/// only its bytes are lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("checksum mismatch: the {len}-byte message at position {position} carries CRC32C {stored:#010x}, its bytes give {computed:#010x} (message dropped)")]
pub struct ChecksumMismatch {
    /// The ring position of the message (a byte position for SPSC, a slot position for MPMC).
    pub position: u64,
    /// The payload length the message claims (its record length less the trailer).
    pub len: usize,
    /// The CRC32C stored in the message's trailer.
    pub stored: u32,
    /// The CRC32C of the bytes read (payload, then its length as a little-endian `u32`).
    pub computed: u32,
}

/// Why a pop did not return a record. Nothing was consumed when this is returned, except with
/// [`PopError::Checksum`] (the bad message is dropped) and a [`PopError::Corrupt`] MPMC slot
/// (freed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PopError {
    /// No committed record is waiting.
    #[error("ring is empty")]
    Empty,
    /// A blocking pop reached its deadline with the ring still empty.
    #[error("timed out waiting for a record")]
    Timeout,
    /// The caller's buffer is smaller than the next record.
    #[error("buffer of {len} bytes is too small for a {needed}-byte record")]
    BufferTooSmall {
        /// The record's length.
        needed: usize,
        /// The buffer's length.
        len: usize,
    },
    /// The ring is empty and every producer that attached to it is gone (dropped, or its
    /// process died): no record will ever arrive. Returned only after everything committed
    /// has been consumed. A producer attaching again ends this state.
    #[error("ring is empty and no producer is attached any more")]
    Disconnected,
    /// The record header at the consumer's position is inconsistent.
    #[error(transparent)]
    Corrupt(#[from] Corruption),
    /// On a checksum ring: the next message's bytes do not match its CRC32C. That message was
    /// consumed; the next pop reads the one after it.
    #[error(transparent)]
    Checksum(#[from] ChecksumMismatch),
    /// A broadcast subscriber that validates its reads (untethered, or tethered and not yet
    /// confirmed) was overtaken by the publisher: `missed` messages were written over before
    /// it read them. It resumed at the latest record, which the next pop returns.
    #[error("subscriber was overtaken by the publisher and missed {missed} messages")]
    Lagged {
        /// How many messages it skipped.
        missed: u64,
    },
    /// A tethered broadcast subscriber was ejected by its publisher, whose policy
    /// ([`SlowSubscribers::Untether`](crate::broadcast::SlowSubscribers)) does not wait for a
    /// subscriber that leaves it no room. It reads on untethered from where it was (the next
    /// pop may report [`PopError::Lagged`]); `retether` joins again.
    #[error("subscriber was ejected by the publisher for gating it too long")]
    Ejected,
}
