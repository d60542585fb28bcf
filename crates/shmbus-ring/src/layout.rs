//! The byte layout of a segment: the versioned header at offset 0 and the control blocks (the
//! handshake that publishes and checks them is `handshake`). `docs/PROTOCOL.md` describes the same map for
//! implementers in other languages; the `const` asserts below keep the two in step.
//!
//! ```text
//! offset     size  what
//! 0          256   SegmentHeader (this module): magic, versions, ABI, kind, geometry, identity
//! 256        128   producer block (position / hint, SPSC owner tag, wake sequence, waiters)
//! 384        128   consumer block (the same fields for the consumer side)
//! 512        64    roster: attached-endpoint bitmaps per role, "ever attached" bits
//! 576        3520  endpoint table: 55 entries of 64 bytes (state, start time, pidns, lock)
//! 4096       ...   ring data (SPSC: `capacity` bytes of records; MPMC: `capacity` slots)
//! ```
//!
//! All fields are fixed-width little-endian integers (no `usize`, no pointers), so a 32-bit
//! and a 64-bit process can share a segment.

use std::mem::{offset_of, size_of};

/// `b"shmbus\0\0"` read as a little-endian `u64`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"shmbus\0\0");
/// The layout major version: a reader refuses any other major.
pub const LAYOUT_MAJOR: u16 = 1;
/// The layout minor version: additions that older readers of the same major may ignore.
pub const LAYOUT_MINOR: u16 = 8;
/// `init_state` while the creator is building the segment (the object starts zeroed).
pub const INIT_BUILDING: u32 = 0;
/// `init_state` once the creator has written everything: `b"REDY"` as little-endian.
pub const INIT_READY: u32 = u32::from_le_bytes(*b"REDY");
/// ABI flag: the segment was laid out by a little-endian process.
pub const ABI_LITTLE_ENDIAN: u32 = 1;
/// The ABI flags this process writes and requires.
pub const ABI_FLAGS: u32 = if cfg!(target_endian = "little") {
    ABI_LITTLE_ENDIAN
} else {
    0
};
/// Alignment of control blocks: two 64-byte cache lines, so the adjacent-line prefetcher does
/// not couple the producer's and consumer's lines.
pub const BLOCK_ALIGN: u32 = 128;
/// Size of the header in bytes.
pub const HEADER_LEN: u32 = 256;
/// Offset of the producer control block.
pub const PRODUCER_BLOCK: u64 = 256;
/// Offset of the consumer control block.
pub const CONSUMER_BLOCK: u64 = 384;
/// Offset of the ring data: the first page is the header, control blocks and reserved space.
pub const DATA_OFFSET: u64 = 4096;

/// Offset of the roster: one cache line, read-mostly, saying which endpoint entries are
/// attached per role (see [`crate::liveness`]).
pub const ROSTER: u64 = 512;
/// Within the roster: bit `i` set while entry `i` holds an attached producer, and bit
/// [`ROSTER_EVER_BIT`] once any producer has attached (`u64`).
pub const ROSTER_PRODUCERS: u64 = 0;
/// Within the roster: bit `i` set while entry `i` holds an attached consumer, and bit
/// [`ROSTER_EVER_BIT`] once any consumer has attached (`u64`).
pub const ROSTER_CONSUMERS: u64 = 8;
/// The "ever attached" bit of a roster bitmap: set together with the first endpoint's bit (one
/// `fetch_or`), never cleared. A side that never had a peer is waiting for one, not
/// disconnected.
pub const ROSTER_EVER_BIT: u32 = 63;
/// Offset of the endpoint table: one 64-byte entry per attached endpoint, both ring kinds.
pub const ENDPOINT_TABLE: u64 = 576;
/// Size of an endpoint table entry.
pub const ENDPOINT_SIZE: u64 = 64;
/// Number of endpoint table entries: the rest of the first page.
pub const MAX_ENDPOINTS: u64 = (DATA_OFFSET - ENDPOINT_TABLE) / ENDPOINT_SIZE;
/// Within an endpoint entry: its state word (`u64`: pid, generation, phase, role, reaper;
/// see [`crate::liveness`]).
pub const ENDPOINT_STATE: u64 = 0;
/// Within an endpoint entry: the holder's process start time, in clock ticks after boot
/// (`/proc/<pid>/stat` field 22; `u64`, diagnostics and pid-reuse detection).
pub const ENDPOINT_START_TIME: u64 = 8;
/// Within an endpoint entry: the inode of the holder's PID namespace (`u64`); its pid means
/// something only to a process in the same namespace.
pub const ENDPOINT_PIDNS: u64 = 16;
/// Within an endpoint entry: 1 if the holder keeps an OFD write lock on the entry's first
/// byte of the segment's file (`u32`).
pub const ENDPOINT_LOCKED: u64 = 24;

/// Within a control block: the free-running position (`tail` for the producer block, `head`
/// for the consumer block), a `u64`.
pub const BLOCK_POSITION: u64 = 0;
/// Within a control block of an SPSC ring: the tag (endpoint entry index + 1) of the attached
/// endpoint of that side, 0 when none (`u32`).
pub const BLOCK_OWNER: u64 = 8;
/// Within a control block: the wake sequence (`u64`; its low 32 bits are the futex word) that
/// waiters sleep on. In the producer block: "data was published"; in the consumer block:
/// "space was freed".
pub const BLOCK_WAKE_SEQ: u64 = 16;
/// Within a control block: how many endpoints are (about to be) asleep on the wake sequence.
pub const BLOCK_WAITERS: u64 = 24;
/// Within a control block of a bounded SPSC ring ([`RING_FLAG_BOUNDED`], layout 1.2): the
/// side's message count (`u64`): in the producer block the data records committed (`sent`),
/// in the consumer block the data records consumed (`taken`). Each on its owner's line: no
/// new cache line crosses cores.
pub const BLOCK_COUNT: u64 = 32;
/// Within a control block (layout 1.3): the armed doorbells of that block's direction, a `u64`
/// bitmap: bit `i` set while endpoint entry `i` waits asynchronously for it (PROTOCOL §6.1). In
/// the producer block: consumers waiting for data; in the consumer block: producers waiting
/// for space. On the line of the waiters count, which the notifier reads already.
pub const BLOCK_BELLS: u64 = 40;
/// Within an endpoint entry (layout 1.3): the id of the holder's doorbell (`u64`, 0 = none),
/// which names a datagram socket in the bell directory (PROTOCOL §6.1).
pub const ENDPOINT_BELL: u64 = 32;
/// Within a control block (layout 1.3, both ring kinds): the first of its [`BLOCK_STATS_WORDS`]
/// statistics counters ([`crate::stats`]), on the block's second cache line (`+64..+128`),
/// which no hot path touches. Bumped only on slow paths, by the side that owns the block.
pub const BLOCK_STATS: u64 = 64;
/// The number of `u64` statistics counters per control block (layout 1.3).
pub const BLOCK_STATS_WORDS: u64 = 8;
/// Ring flag: endpoints notify sleepers (a `SeqCst` fence and a check of the waiters count after
/// every publish or release). Without it, blocking calls poll with growing sleeps instead.
pub const RING_FLAG_NOTIFY: u32 = 1;
/// Ring flag (layout 1.1): every message carries a CRC32C trailer of [`CHECKSUM_LEN`] bytes,
/// written by the producer and verified by the consumer (PROTOCOL §4.2, §5.2). A 1.0 reader
/// refuses the bit (it would read the trailer as payload).
pub const RING_FLAG_CHECKSUM: u32 = 2;
/// Ring flag (layout 1.2): the ring holds at most [`SegmentHeader::message_limit`] messages
/// at once, whatever their size (PROTOCOL §4.6, §5.6). An SPSC ring then counts messages in
/// its control blocks ([`BLOCK_COUNT`]). A reader that does not know the bit refuses it: it
/// would not keep the bound (an SPSC consumer that does not count would wedge its producer).
pub const RING_FLAG_BOUNDED: u32 = 4;
/// Ring flag: aligned payloads.
///
/// - SPSC (layout 1.5): the producer may publish skip records
///   ([`KIND_SKIP`](crate::frame::KIND_SKIP)) to start large payloads on a cache-line boundary
///   (PROTOCOL §4.2). A reader that does not know the bit refuses it: it would take a skip
///   record for corruption.
/// - MPMC (layout 1.7): each slot's payload starts on the slot's second cache line
///   ([`ALIGNED_PAYLOAD_OFFSET`](crate::mpmc::ALIGNED_PAYLOAD_OFFSET)) and slots are
///   [`aligned_slot_stride`](crate::mpmc::aligned_slot_stride) apart (PROTOCOL §5.1). Readers
///   before 1.7 refuse the bit on an MPMC ring, as they must: they would read payloads at
///   the wrong offset.
pub const RING_FLAG_ALIGNED: u32 = 8;
/// Ring flag (PROTOCOL §6.3, with [`RING_FLAG_NOTIFY`]): membarrier mode. Notifiers of a
/// process registered for `MEMBARRIER_CMD_GLOBAL_EXPEDITED` publish without N1's fence, and
/// every sleeper runs `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` after announcing itself.
/// A peer that does not know the bit must refuse the ring: its sleepers would miss wake-ups
/// (layout 1.5, DECISIONS D65).
pub const RING_FLAG_MEMBARRIER: u32 = 16;
/// Ring flag (layout 1.6, MPMC rings only): sole endpoints (PROTOCOL §5.7). Each control
/// block's [`BLOCK_SOLE`] word names the endpoint that is alone in its role, which then raises
/// its hint with a plain store instead of a locked `fetch_max`; an endpoint that joins it
/// marks the word shared and, before it raises the hint itself, waits out the sole one's
/// raise in flight. A peer that does not know the bit must refuse the ring: its raises would
/// race the sole endpoint's plain stores, and a hint could move back (DECISIONS D88).
pub const RING_FLAG_SOLE: u32 = 32;
/// Ring flag (layout 1.8, MPMC rings with [`RING_FLAG_SOLE`] only): reclaimable sole words
/// (PROTOCOL §5.7, "Reclaim"). Every join adds [`SOLE_JOIN`] to the word before it marks it
/// shared, so that the word changes at every join; an endpoint that finds itself alone in
/// the roster of a shared role takes the word back with a CAS of the value it read before it
/// read the roster (M26–M27), and raises with plain stores again. A peer that does not know
/// the bit must refuse the ring: its joins would leave the word as it was, and a reclaim that
/// read it before such a join would succeed after it, making two endpoints raise as if alone
/// (DECISIONS D94).
pub const RING_FLAG_RECLAIM: u32 = 64;
/// Within a control block of an MPMC ring with [`RING_FLAG_SOLE`] (layout 1.6): the *sole
/// word* (`u64`) of that block's role (the producer block: producers; the consumer block:
/// consumers). 0: no endpoint holds it; a tag `k` (1..=55): endpoint `k` is alone in its role;
/// [`SOLE_SHARED`] set: the role is (or was) shared, with the tag of the endpoint that was
/// alone when it became shared in the low bits (0 if none) and, with [`RING_FLAG_RECLAIM`]
/// (layout 1.8), a count of joins in [`SOLE_JOINS`]. The word an SPSC ring uses for
/// [`BLOCK_OWNER`].
pub const BLOCK_SOLE: u64 = 8;
/// In a [`BLOCK_SOLE`] word: the role is shared. Without [`RING_FLAG_RECLAIM`], set once and
/// never cleared; with it, cleared when the endpoint left alone in the role reclaims the word.
pub const SOLE_SHARED: u64 = 1 << 63;
/// In a [`BLOCK_SOLE`] word of a ring with [`RING_FLAG_RECLAIM`]: the join count, bits 8–62
/// (above the tag, below [`SOLE_SHARED`]), which every join raises by [`SOLE_JOIN`]. It
/// would reach `SOLE_SHARED` after 2⁵⁵ joins: never.
pub const SOLE_JOINS: u64 = 0x7fff_ffff_ffff_ff00;
/// One join, in [`SOLE_JOINS`].
pub const SOLE_JOIN: u64 = 1 << 8;
/// Every ring flag this build knows; an opener refuses any other bit.
pub const RING_FLAGS_KNOWN: u32 = RING_FLAG_NOTIFY
    | RING_FLAG_CHECKSUM
    | RING_FLAG_BOUNDED
    | RING_FLAG_ALIGNED
    | RING_FLAG_MEMBARRIER
    | RING_FLAG_SOLE
    | RING_FLAG_RECLAIM;
/// Bytes of the checksum trailer after a message's payload on a checksum ring: the CRC32C
/// (Castagnoli) of the payload followed by its length as a little-endian `u32`, stored as a
/// little-endian `u32`.
pub const CHECKSUM_LEN: usize = 4;

/// What kind of ring a segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum RingKind {
    /// Single producer, single consumer, variable-size records.
    Spsc = 1,
    /// Many producers and consumers, fixed-size slots.
    Mpmc = 2,
    /// One publisher, many subscribers, each reading every record (layout 1.4, PROTOCOL §8).
    Broadcast = 3,
}

impl RingKind {
    /// The kind for a raw header value, or `None` for an unknown value.
    pub fn from_raw(v: u32) -> Option<RingKind> {
        match v {
            1 => Some(RingKind::Spsc),
            2 => Some(RingKind::Mpmc),
            3 => Some(RingKind::Broadcast),
            _ => None,
        }
    }

    pub(crate) fn describe(v: u32) -> String {
        match RingKind::from_raw(v) {
            Some(k) => format!("{k:?} ({v})"),
            None => format!("unknown ({v})"),
        }
    }
}

/// The segment header, as it sits at offset 0. Plain integers only; `init_state` is accessed
/// atomically (it is the handshake word), everything else is written once by the creator
/// before `init_state = READY` and read as a snapshot after it.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// [`MAGIC`].
    pub magic: u64,
    /// [`INIT_BUILDING`] or [`INIT_READY`]; stored last by the creator, with Release.
    pub init_state: u32,
    /// [`LAYOUT_MAJOR`] of the creator.
    pub layout_major: u16,
    /// [`LAYOUT_MINOR`] of the creator.
    pub layout_minor: u16,
    /// [`ABI_FLAGS`] of the creator.
    pub abi_flags: u32,
    /// [`BLOCK_ALIGN`].
    pub block_align: u32,
    /// A [`RingKind`] as `u32`.
    pub ring_kind: u32,
    /// [`HEADER_LEN`].
    pub header_len: u32,
    /// The segment's length in bytes; must equal the object's real size.
    pub total_len: u64,
    /// SPSC: data bytes (a power of two). MPMC: slot count (a power of two).
    pub capacity: u64,
    /// SPSC: the largest record payload. MPMC: the slot payload size.
    pub record_limit: u64,
    /// Offset of the producer control block ([`PRODUCER_BLOCK`]).
    pub producer_offset: u64,
    /// Offset of the consumer control block ([`CONSUMER_BLOCK`]).
    pub consumer_offset: u64,
    /// Offset of the ring data ([`DATA_OFFSET`]).
    pub data_offset: u64,
    /// Length of the ring data in bytes.
    pub data_len: u64,
    /// A fingerprint of the message type carried (0: raw bytes, unchecked).
    pub type_fingerprint: u64,
    /// The codec the messages are encoded with (0: raw bytes).
    pub codec_id: u32,
    /// The pid of the creating process (diagnostics only).
    pub creator_pid: u32,
    /// Creation time, nanoseconds since the Unix epoch (diagnostics only).
    pub created_unix_ns: u64,
    /// Ring flags: [`RING_FLAG_NOTIFY`], [`RING_FLAG_CHECKSUM`]. Unknown bits are refused.
    pub ring_flags: u32,
    /// Zero, except on a broadcast ring (layout 1.4): the number of entries of its history
    /// index, a power of two (PROTOCOL §8.1).
    pub reserved_u32: u32,
    /// Layout 1.2, with [`RING_FLAG_BOUNDED`]: the most messages the ring holds at once
    /// (SPSC: at least 1; MPMC: 1 to the slot count). Zero otherwise.
    pub message_limit: u64,
    /// Layout 1.2: the offset of the info region ([`crate::info`]: type name, codec, creator,
    /// channel name), after the ring data; 0 when there is none. Older 1.x readers ignore it.
    pub info_offset: u64,
    /// Layout 1.2: the length of the info region in bytes (0 when there is none).
    pub info_len: u64,
    /// Zero, except on a System V segment (layout 1.3): its System V record ([`SYSV_RECORD`]).
    pub reserved: [u64; 14],
}

const _: () = {
    assert!(size_of::<SegmentHeader>() == HEADER_LEN as usize);
    assert!(offset_of!(SegmentHeader, magic) == 0);
    assert!(offset_of!(SegmentHeader, init_state) == 8);
    assert!(offset_of!(SegmentHeader, layout_major) == 12);
    assert!(offset_of!(SegmentHeader, layout_minor) == 14);
    assert!(offset_of!(SegmentHeader, abi_flags) == 16);
    assert!(offset_of!(SegmentHeader, block_align) == 20);
    assert!(offset_of!(SegmentHeader, ring_kind) == 24);
    assert!(offset_of!(SegmentHeader, header_len) == 28);
    assert!(offset_of!(SegmentHeader, total_len) == 32);
    assert!(offset_of!(SegmentHeader, capacity) == 40);
    assert!(offset_of!(SegmentHeader, record_limit) == 48);
    assert!(offset_of!(SegmentHeader, producer_offset) == 56);
    assert!(offset_of!(SegmentHeader, consumer_offset) == 64);
    assert!(offset_of!(SegmentHeader, data_offset) == 72);
    assert!(offset_of!(SegmentHeader, data_len) == 80);
    assert!(offset_of!(SegmentHeader, type_fingerprint) == 88);
    assert!(offset_of!(SegmentHeader, codec_id) == 96);
    assert!(offset_of!(SegmentHeader, creator_pid) == 100);
    assert!(offset_of!(SegmentHeader, created_unix_ns) == 104);
    assert!(offset_of!(SegmentHeader, ring_flags) == 112);
    assert!(offset_of!(SegmentHeader, message_limit) == 120);
    assert!(offset_of!(SegmentHeader, info_offset) == 128);
    assert!(offset_of!(SegmentHeader, info_len) == 136);
    assert!(offset_of!(SegmentHeader, reserved) == 144);
    assert!(BLOCK_COUNT >= BLOCK_WAITERS + 8 && BLOCK_COUNT + 8 <= 64);
    assert!(BLOCK_WAITERS + 8 <= BLOCK_ALIGN as u64);
    // The counters fill the second cache line of each block, apart from every hot word.
    assert!(BLOCK_STATS == 64 && BLOCK_STATS + 8 * BLOCK_STATS_WORDS == BLOCK_ALIGN as u64);
    assert!(PRODUCER_BLOCK % BLOCK_ALIGN as u64 == 0 && PRODUCER_BLOCK >= HEADER_LEN as u64);
    assert!(
        CONSUMER_BLOCK % BLOCK_ALIGN as u64 == 0
            && CONSUMER_BLOCK >= PRODUCER_BLOCK + BLOCK_ALIGN as u64
    );
    assert!(
        DATA_OFFSET % BLOCK_ALIGN as u64 == 0 && DATA_OFFSET >= CONSUMER_BLOCK + BLOCK_ALIGN as u64
    );
    assert!(BLOCK_OWNER + 4 <= BLOCK_ALIGN as u64);
    assert!(ROSTER >= CONSUMER_BLOCK + BLOCK_ALIGN as u64);
    assert!(ENDPOINT_TABLE == ROSTER + 64);
    assert!(ENDPOINT_TABLE + MAX_ENDPOINTS * ENDPOINT_SIZE <= DATA_OFFSET);
    assert!(MAX_ENDPOINTS == 55);
};

/// Identity written into a header at creation and checked by openers that ask.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Identity {
    /// Fingerprint of the message type (0: raw bytes).
    pub type_fingerprint: u64,
    /// Codec id (0: raw bytes).
    pub codec_id: u32,
}

/// Layout 1.3: the offset of the *System V record* in the header's reserved bytes (PROTOCOL
/// §3.2): a System V segment ([`crate::Backing::SysV`]) records there its full name, its key
/// and a nonce, so a process probing the keys derived from a name accepts only the segment of
/// that name. Zero on every other backing; older 1.x readers ignore it.
pub const SYSV_RECORD: u64 = 144;
/// The length of the System V record: header bytes 144..256.
pub const SYSV_RECORD_LEN: usize = 112;
/// The record's tag (`u32`, `b"SYSV"` little-endian), stored last, with Release (V1).
pub const SYSV_TAG: u64 = 144;
/// The length of the recorded name in bytes, without its leading `/` (`u16`, at most
/// [`SYSV_NAME_MAX`]; 0 for an `IPC_PRIVATE` segment).
pub const SYSV_NAME_LEN: u64 = 148;
/// The record's flags (`u16`): [`SYSV_FLAG_DESTROY`], [`SYSV_FLAG_COMPANION`].
pub const SYSV_RECORD_FLAGS: u64 = 150;
/// The key the segment was created at (`i32`; 0 for `IPC_PRIVATE`). Followed by 4 zero bytes.
pub const SYSV_KEY: u64 = 152;
/// A nonce the companion file repeats (`u64`), so a companion never names a later segment
/// that reused the id.
pub const SYSV_NONCE: u64 = 160;
/// The name's bytes, without the leading `/` (up to [`SYSV_NAME_MAX`], zero-padded).
pub const SYSV_NAME: u64 = 168;
/// The longest name a System V segment records (bytes after the `/`).
pub const SYSV_NAME_MAX: usize = 88;
/// System V record flag: the segment was marked for destruction (`IPC_RMID`) at creation.
pub const SYSV_FLAG_DESTROY: u16 = 1;
/// System V record flag: the creator wrote a companion file.
pub const SYSV_FLAG_COMPANION: u16 = 2;
/// The length of a System V segment's companion file in the shm directory: one page.
pub const COMPANION_LEN: u64 = 4096;
/// The first 8 bytes of a companion file: `b"shmbusSV"` as a little-endian `u64`.
pub const COMPANION_MAGIC: u64 = u64::from_le_bytes(*b"shmbusSV");

const _: () = {
    assert!(SYSV_RECORD == offset_of!(SegmentHeader, reserved) as u64);
    assert!(SYSV_NAME + SYSV_NAME_MAX as u64 == HEADER_LEN as u64);
    assert!(SYSV_RECORD + SYSV_RECORD_LEN as u64 == HEADER_LEN as u64);
    assert!(SYSV_NONCE % 8 == 0 && SYSV_TAG % 4 == 0);
};

/// Offset of `init_state`, the handshake word.
pub const INIT_STATE: u64 = offset_of!(SegmentHeader, init_state) as u64;

// Kept at its old path; the handshake lives in its own module.
pub use crate::handshake::read_header;
