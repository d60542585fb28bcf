//! The byte layout of a segment: the versioned header at offset 0, the control blocks, and the
//! handshake that publishes and checks them. `docs/PROTOCOL.md` describes the same map for
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

use crate::error::{Error, Result};
use crate::segment::Segment;
use std::mem::{offset_of, size_of};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// `b"shmbus\0\0"` read as a little-endian `u64`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"shmbus\0\0");
/// The layout major version: a reader refuses any other major.
pub const LAYOUT_MAJOR: u16 = 1;
/// The layout minor version: additions that older readers of the same major may ignore.
pub const LAYOUT_MINOR: u16 = 0;
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
/// Ring flag: endpoints notify sleepers (a SeqCst fence and a check of the waiters count after
/// every publish or release). Without it, blocking calls poll with growing sleeps instead.
pub const RING_FLAG_NOTIFY: u32 = 1;

/// What kind of ring a segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum RingKind {
    /// Single producer, single consumer, variable-size records.
    Spsc = 1,
    /// Many producers and consumers, fixed-size slots.
    Mpmc = 2,
}

impl RingKind {
    /// The kind for a raw header value, or `None` for an unknown value.
    pub fn from_raw(v: u32) -> Option<RingKind> {
        match v {
            1 => Some(RingKind::Spsc),
            2 => Some(RingKind::Mpmc),
            _ => None,
        }
    }

    fn describe(v: u32) -> String {
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
    /// Ring flags: [`RING_FLAG_NOTIFY`]. Unknown bits are refused.
    pub ring_flags: u32,
    /// Zero.
    pub reserved_u32: u32,
    /// Zero; room for later minor versions.
    pub reserved: [u64; 17],
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
    assert!(offset_of!(SegmentHeader, reserved) == 120);
    assert!(BLOCK_WAITERS + 8 <= BLOCK_ALIGN as u64);
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

/// How an opener waits for and checks a header.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// How long to wait for the creator's `READY` (default 1 s).
    pub ready_timeout: Duration,
    /// If set, the header's `type_fingerprint` and `codec_id` must equal these.
    pub expect: Option<Identity>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            ready_timeout: Duration::from_secs(1),
            expect: None,
        }
    }
}

fn init_word(seg: &Segment) -> &AtomicU32 {
    seg.raw_atomic_u32(offset_of!(SegmentHeader, init_state))
        .expect("callers check the segment holds a header")
}

/// Reads a snapshot of the header. The caller has checked `seg.len() >= HEADER_LEN`.
fn snapshot(seg: &Segment) -> SegmentHeader {
    debug_assert!(seg.len() >= HEADER_LEN as usize);
    // SAFETY: the mapping is page-aligned (so aligned for the header) and at least HEADER_LEN
    // bytes long. A volatile read copies whatever the bytes hold; every field is a plain
    // integer, so any bit pattern is a valid value, and the copy is validated before use.
    unsafe { std::ptr::read_volatile(seg.as_ptr().cast::<SegmentHeader>()) }
}

/// Writes a header into a freshly created (zeroed) segment and publishes it: every field
/// first, then `init_state = READY` with Release, last.
pub(crate) fn publish(seg: &Segment, mut header: SegmentHeader) -> Result<()> {
    if !seg.is_creator() {
        return Err(Error::NotCreator {
            target: seg.target(),
        });
    }
    if seg.len() < DATA_OFFSET as usize || init_word(seg).load(Ordering::Relaxed) != INIT_BUILDING {
        return Err(Error::NotCreator {
            target: seg.target(),
        });
    }
    header.init_state = INIT_BUILDING;
    let bytes: [u8; HEADER_LEN as usize] =
        // SAFETY: `SegmentHeader` is `repr(C)` plain integers of exactly HEADER_LEN bytes with no
        // padding (the const asserts above pin every offset), so its bytes are initialised.
        unsafe { std::mem::transmute::<SegmentHeader, [u8; HEADER_LEN as usize]>(header) };
    let init = offset_of!(SegmentHeader, init_state);
    // SAFETY: the segment was just created by this process and is at least one page long. Every
    // byte but `init_state` (which openers poll atomically, and which stays 0 until the Release
    // store below) is written plainly: no opener reads them before READY. The control blocks and
    // the reserved area are zeroed explicitly rather than trusted to be, in case anything wrote
    // to the fresh object between its creation and now.
    unsafe {
        let base = seg.as_ptr();
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), base, init);
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr().add(init + 4),
            base.add(init + 4),
            bytes.len() - init - 4,
        );
        std::ptr::write_bytes(
            base.add(HEADER_LEN as usize),
            0,
            (DATA_OFFSET - HEADER_LEN as u64) as usize,
        );
    }
    seg.mark_in_ring();
    // Release: publishes every header field and every control-block word written before this
    // call; pairs with the Acquire load of `init_state` in `wait_ready`.
    init_word(seg).store(INIT_READY, Ordering::Release);
    Ok(())
}

/// A header for a new segment of the given kind and geometry, with this process's constants.
#[allow(clippy::too_many_arguments)]
pub(crate) fn new_header(
    kind: RingKind,
    total_len: u64,
    capacity: u64,
    record_limit: u64,
    data_len: u64,
    id: Identity,
    ring_flags: u32,
) -> SegmentHeader {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    SegmentHeader {
        magic: MAGIC,
        init_state: INIT_BUILDING,
        layout_major: LAYOUT_MAJOR,
        layout_minor: LAYOUT_MINOR,
        abi_flags: ABI_FLAGS,
        block_align: BLOCK_ALIGN,
        ring_kind: kind as u32,
        header_len: HEADER_LEN,
        total_len,
        capacity,
        record_limit,
        producer_offset: PRODUCER_BLOCK,
        consumer_offset: CONSUMER_BLOCK,
        data_offset: DATA_OFFSET,
        data_len,
        type_fingerprint: id.type_fingerprint,
        codec_id: id.codec_id,
        creator_pid: std::process::id(),
        created_unix_ns: now,
        ring_flags,
        reserved_u32: 0,
        reserved: [0; 17],
    }
}

/// Waits (bounded) for `READY`, then checks everything that does not depend on the ring kind's
/// geometry: magic, major version, ABI, header length, kind, total length against the real size,
/// block offsets, identity. Returns the snapshot for the kind-specific checks.
pub(crate) fn open_header(
    seg: &Segment,
    kind: RingKind,
    opts: &OpenOptions,
) -> Result<SegmentHeader> {
    let target = seg.target();
    let actual = seg.len() as u64;
    if actual < DATA_OFFSET {
        return Err(Error::Truncated {
            target,
            actual,
            needed: DATA_OFFSET,
        });
    }
    seg.mark_in_ring();
    wait_ready(seg, opts.ready_timeout)?;
    let h = snapshot(seg);
    if h.magic != MAGIC {
        return Err(Error::BadMagic {
            target,
            found: h.magic,
            expected: MAGIC,
        });
    }
    if h.layout_major != LAYOUT_MAJOR {
        return Err(Error::MajorVersion {
            target,
            found: h.layout_major,
            expected: LAYOUT_MAJOR,
        });
    }
    let abi = |field, found: u64, expected: u64| Error::AbiMismatch {
        target: target.clone(),
        field,
        found,
        expected,
    };
    if h.abi_flags != ABI_FLAGS {
        return Err(abi("abi_flags", h.abi_flags.into(), ABI_FLAGS.into()));
    }
    if h.block_align != BLOCK_ALIGN {
        return Err(abi("block_align", h.block_align.into(), BLOCK_ALIGN.into()));
    }
    if h.header_len != HEADER_LEN {
        return Err(abi("header_len", h.header_len.into(), HEADER_LEN.into()));
    }
    if h.ring_kind != kind as u32 {
        return Err(Error::WrongKind {
            target,
            found: RingKind::describe(h.ring_kind),
            expected: RingKind::describe(kind as u32),
        });
    }
    let bad = |field, value, reason: String| Error::BadField {
        target: target.clone(),
        field,
        value,
        reason,
    };
    if h.total_len != actual {
        return Err(bad(
            "total_len",
            h.total_len,
            format!("the object's real size is {actual} bytes"),
        ));
    }
    if h.producer_offset != PRODUCER_BLOCK {
        return Err(bad(
            "producer_offset",
            h.producer_offset,
            format!("layout 1 puts it at {PRODUCER_BLOCK}"),
        ));
    }
    if h.consumer_offset != CONSUMER_BLOCK {
        return Err(bad(
            "consumer_offset",
            h.consumer_offset,
            format!("layout 1 puts it at {CONSUMER_BLOCK}"),
        ));
    }
    if h.data_offset != DATA_OFFSET {
        return Err(bad(
            "data_offset",
            h.data_offset,
            format!("layout 1 puts it at {DATA_OFFSET}"),
        ));
    }
    if h.data_len > actual - DATA_OFFSET {
        return Err(bad(
            "data_len",
            h.data_len,
            format!(
                "only {} bytes follow data_offset in a {actual}-byte object",
                actual - DATA_OFFSET
            ),
        ));
    }
    if h.ring_flags & !RING_FLAG_NOTIFY != 0 {
        return Err(bad(
            "ring_flags",
            h.ring_flags.into(),
            format!("only bit 0 (notify) is defined in layout {LAYOUT_MAJOR}.{LAYOUT_MINOR}"),
        ));
    }
    if let Some(id) = opts.expect {
        if h.type_fingerprint != id.type_fingerprint {
            return Err(Error::Mismatch {
                target,
                field: "type_fingerprint",
                found: h.type_fingerprint,
                expected: id.type_fingerprint,
            });
        }
        if h.codec_id != id.codec_id {
            return Err(Error::Mismatch {
                target,
                field: "codec_id",
                found: h.codec_id.into(),
                expected: id.codec_id.into(),
            });
        }
    }
    Ok(h)
}

fn wait_ready(seg: &Segment, timeout: Duration) -> Result<()> {
    let word = init_word(seg);
    let start = Instant::now();
    let mut spins = 0u32;
    loop {
        // Relaxed, then an Acquire fence once READY is seen: pairs with the Release store of
        // READY in `publish`, so the header and control blocks the creator wrote are visible to
        // the snapshot that follows. (A fence rather than an Acquire load: on a read-only
        // mapping only Relaxed atomic loads are allowed.)
        let state = word.load(Ordering::Relaxed);
        match state {
            INIT_READY => {
                std::sync::atomic::fence(Ordering::Acquire);
                return Ok(());
            }
            INIT_BUILDING => {}
            other => {
                return Err(Error::BadInitState {
                    target: seg.target(),
                    state: other,
                })
            }
        }
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(Error::NotReady {
                target: seg.target(),
                waited,
                state,
            });
        }
        spins += 1;
        if spins < 64 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// Reads the header of a segment without validating its geometry (for inspection tools).
///
/// # Errors
///
/// [`Error::Truncated`] if the segment is shorter than a header.
pub fn read_header(seg: &Segment) -> Result<SegmentHeader> {
    if seg.len() < HEADER_LEN as usize {
        return Err(Error::Truncated {
            target: seg.target(),
            actual: seg.len() as u64,
            needed: HEADER_LEN as u64,
        });
    }
    Ok(snapshot(seg))
}
