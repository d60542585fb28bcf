//! The handshake (PROTOCOL §3): the creator writes the header and control blocks, then
//! publishes `init_state = READY` (H1); an opener waits, bounded, for READY (H2) and checks
//! every field against what it expects and against the object's real size.

use crate::conv::{offset, wide};
use crate::error::{Error, Result};
use crate::info::MAX_INFO_LEN;
use crate::layout::{
    Identity, RingKind, SegmentHeader, ABI_FLAGS, BLOCK_ALIGN, CHECKSUM_LEN, CONSUMER_BLOCK,
    DATA_OFFSET, HEADER_LEN, INIT_BUILDING, INIT_READY, INIT_STATE, LAYOUT_MAJOR, LAYOUT_MINOR,
    MAGIC, PRODUCER_BLOCK, RING_FLAGS_KNOWN, RING_FLAG_ALIGNED, RING_FLAG_BOUNDED,
    RING_FLAG_CHECKSUM, RING_FLAG_RECLAIM, RING_FLAG_SOLE,
};
use crate::segment::Segment;
use crate::sync::{fence, Memory, Ordering, RawMem};
use std::time::{Duration, Instant};

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

/// The segment as memory, with at least `min` bytes; the handshake word is at
/// [`INIT_STATE`].
fn mem_of(seg: &Segment, min: u64) -> Option<RawMem> {
    seg.raw_mem(offset(min))
}

/// Reads a snapshot of the header. The caller has checked `seg.len() >= HEADER_LEN`.
fn snapshot(seg: &Segment) -> SegmentHeader {
    debug_assert!(seg.len() >= HEADER_LEN as usize);
    #[allow(clippy::cast_ptr_alignment)] // page-aligned, see below
    // SAFETY: the mapping is page-aligned (so aligned for the header) and at least HEADER_LEN
    // bytes long. A volatile read copies whatever the bytes hold; every field is a plain
    // integer, so any bit pattern is a valid value, and the copy is validated before use.
    unsafe {
        std::ptr::read_volatile(seg.as_ptr().cast::<SegmentHeader>())
    }
}

/// Writes a header into a freshly created (zeroed) segment and publishes it: every field
/// first, then `init_state = READY` with Release, last.
pub(crate) fn publish(seg: &Segment, mut header: SegmentHeader) -> Result<()> {
    if !seg.is_creator() {
        return Err(Error::NotCreator {
            target: seg.target(),
        });
    }
    let Some(mem) = mem_of(seg, DATA_OFFSET) else {
        return Err(Error::NotCreator {
            target: seg.target(),
        });
    };
    // SAFETY: `init_state` is a 4-aligned word of the header, inside `mem`.
    if unsafe { mem.load_u32(offset(INIT_STATE), Ordering::Relaxed) } != INIT_BUILDING {
        return Err(Error::NotCreator {
            target: seg.target(),
        });
    }
    header.init_state = INIT_BUILDING;
    if let Some(record) = seg.sysv_record() {
        // Layout 1.3: a System V segment keeps its System V record (header bytes 144..256).
        for (word, bytes) in header.reserved.iter_mut().zip(record.chunks_exact(8)) {
            let mut w = [0u8; 8];
            w.copy_from_slice(bytes);
            *word = u64::from_le_bytes(w);
        }
    }
    let bytes: [u8; HEADER_LEN as usize] =
        // SAFETY: `SegmentHeader` is `repr(C)` plain integers of exactly HEADER_LEN bytes with no
        // padding (the const asserts above pin every offset), so its bytes are initialised.
        unsafe { std::mem::transmute::<SegmentHeader, [u8; HEADER_LEN as usize]>(header) };
    let init = offset(INIT_STATE);
    let header_len = offset(u64::from(HEADER_LEN));
    let zeros = [0u8; offset(DATA_OFFSET - HEADER_LEN as u64)];
    // SAFETY: the segment was just created by this process and holds at least one page. Every
    // byte but `init_state` (which openers poll atomically, and which stays 0 until H1 below)
    // is written plainly: no opener reads them before READY. The control blocks and the
    // reserved area are zeroed explicitly rather than trusted to be, in case anything wrote
    // to the fresh object between its creation and now.
    unsafe {
        mem.write(0, &bytes[..init]);
        mem.write(init + 4, &bytes[init + 4..]);
        mem.write(header_len, &zeros);
    }
    seg.mark_in_ring();
    // H1: Release; publishes every header field and every control-block word written before
    // this call; pairs with the opener's Acquire fence (H3) after its load reads READY (H2, `wait_ready`).
    // SAFETY: as above.
    unsafe { mem.store_u32(init, INIT_READY, Ordering::Release) };
    Ok(())
}

/// The error for a header field of `seg` that fails a check: a `BadField` naming it.
pub(crate) fn bad_field(seg: &Segment) -> impl Fn(&'static str, u64, String) -> Error {
    let target = seg.target();
    move |field, value, reason| Error::BadField {
        target: target.clone(),
        field,
        value,
        reason,
    }
}

/// The checks of a record ring's header (SPSC, broadcast): its data is its capacity, and its
/// record limit is from 1 to `largest` (what a ring of that capacity carries). `kind` names
/// the ring in the error.
pub(crate) fn check_records(
    seg: &Segment,
    h: &SegmentHeader,
    kind: &str,
    largest: u64,
) -> Result<()> {
    let bad = bad_field(seg);
    let cap = h.capacity;
    if h.data_len != cap {
        return Err(bad(
            "data_len",
            h.data_len,
            format!("{kind} ring's data is its capacity, {cap}"),
        ));
    }
    if h.record_limit == 0 || h.record_limit > largest {
        return Err(bad(
            "record_limit",
            h.record_limit,
            format!("it must be from 1 to {largest} for capacity {cap}"),
        ));
    }
    Ok(())
}

/// A header for a new segment of the given kind and shape (`capacity`, `record_limit`,
/// `data_len`), with this process's constants.
pub(crate) fn new_header(
    kind: RingKind,
    total_len: u64,
    [capacity, record_limit, data_len]: [u64; 3],
    id: Identity,
    ring_flags: u32,
) -> SegmentHeader {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
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
        // Set by the ring's creator when it has them (`Ring::create_in`).
        message_limit: 0,
        info_offset: 0,
        info_len: 0,
        reserved: [0; 14],
    }
}

/// Waits (bounded) for the object to be sized and for `READY`, then checks everything that does
/// not depend on the ring kind's geometry: magic, major version, ABI, header length, kind, total
/// length against the real size, block offsets, identity. Returns the segment (mapped again if
/// it was opened before its creator sized it) and the snapshot for the kind-specific checks.
pub(crate) fn open_header(
    seg: Segment,
    kind: RingKind,
    opts: &OpenOptions,
) -> Result<(Segment, SegmentHeader)> {
    let start = Instant::now();
    let seg = wait_sized(seg, start, opts.ready_timeout)?;
    let target = seg.target();
    let actual = seg.len() as u64;
    seg.mark_in_ring();
    wait_ready(&seg, start, opts.ready_timeout)?;
    let h = snapshot(&seg);
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
    if h.ring_flags & !RING_FLAGS_KNOWN != 0 {
        return Err(bad(
            "ring_flags",
            h.ring_flags.into(),
            format!(
                "only bits 0 (notify), 1 (checksum), 2 (bounded), 3 (aligned), 4 \
                 (membarrier), 5 (sole) and 6 (reclaim) are defined in layout \
                 {LAYOUT_MAJOR}.{LAYOUT_MINOR}"
            ),
        ));
    }
    if h.ring_flags & RING_FLAG_ALIGNED != 0 && !matches!(kind, RingKind::Spsc | RingKind::Mpmc) {
        return Err(bad(
            "ring_flags",
            h.ring_flags.into(),
            "bit 3 (aligned) is defined for SPSC and (layout 1.7) MPMC rings only".into(),
        ));
    }
    if h.ring_flags & RING_FLAG_SOLE != 0 && kind != RingKind::Mpmc {
        return Err(bad(
            "ring_flags",
            h.ring_flags.into(),
            "bit 5 (sole) is defined for MPMC rings only".into(),
        ));
    }
    if h.ring_flags & RING_FLAG_RECLAIM != 0 && h.ring_flags & RING_FLAG_SOLE == 0 {
        return Err(bad(
            "ring_flags",
            h.ring_flags.into(),
            "bit 6 (reclaim) is defined only with bit 5 (sole)".into(),
        ));
    }
    let bounded = h.ring_flags & RING_FLAG_BOUNDED != 0;
    if bounded == (h.message_limit == 0) {
        return Err(bad(
            "message_limit",
            h.message_limit,
            "it is nonzero exactly when bit 2 (bounded) of ring_flags is set".into(),
        ));
    }
    if h.info_offset != 0 || h.info_len != 0 {
        let data_end = DATA_OFFSET + h.data_len;
        let fits = h.info_offset % 8 == 0
            && h.info_offset >= data_end
            && h.info_len <= MAX_INFO_LEN
            && h.info_offset
                .checked_add(h.info_len)
                .is_some_and(|end| end <= actual);
        if !fits {
            return Err(bad(
                "info_offset",
                h.info_offset,
                format!(
                    "an info region of {} bytes must start 8-aligned after the data (at or past \
                     {data_end}), end inside the {actual}-byte object, and be at most \
                     {MAX_INFO_LEN} bytes",
                    h.info_len
                ),
            ));
        }
    }
    if h.ring_flags & RING_FLAG_CHECKSUM != 0 && h.record_limit < wide(CHECKSUM_LEN) {
        return Err(bad(
            "record_limit",
            h.record_limit,
            format!("a checksum ring's records hold a {CHECKSUM_LEN}-byte trailer"),
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
    Ok((seg, h))
}

/// How long an opener rests between two looks at a segment that is not ready: a few yields,
/// then short sleeps.
fn rest(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        std::thread::yield_now();
    } else {
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Waits (bounded by `timeout` from `start`) until `seg`'s object holds at least the first
/// page, mapping it again when it has grown, and returns it so mapped (§1, opening step 1).
///
/// A creator makes its object (`shm_open(O_CREAT | O_EXCL)`, `open(O_CREAT | O_EXCL)`) and
/// only then sizes it (`ftruncate`), so an opener can find it empty: that is "not ready yet",
/// waited on like an unpublished header. An object still too short when the wait ends is
/// [`Error::Truncated`]; so, at once, is one that still holds a header whose `init_state` is
/// `READY`: it was published and cut short afterwards, and will not grow back; and one that
/// cannot grow at all (anonymous or heap memory, a memfd sealed against growing).
fn wait_sized(mut seg: Segment, start: Instant, timeout: Duration) -> Result<Segment> {
    let mut spins = 0u32;
    loop {
        let actual = wide(seg.len());
        if actual >= DATA_OFFSET {
            return Ok(seg);
        }
        let truncated = || Error::Truncated {
            target: seg.target(),
            actual,
            needed: DATA_OFFSET,
        };
        if let Some(mem) = mem_of(&seg, u64::from(HEADER_LEN)) {
            // Relaxed: only to tell a published-then-cut object from one not built yet; nothing
            // else is read from it.
            // SAFETY: `init_state` is a 4-aligned word of the header, inside `mem`.
            if unsafe { mem.load_u32(offset(INIT_STATE), Ordering::Relaxed) } == INIT_READY {
                return Err(truncated());
            }
        }
        if start.elapsed() >= timeout || !seg.can_grow() {
            return Err(truncated());
        }
        rest(&mut spins);
        match seg.object_len()? {
            None => return Err(truncated()),
            Some(now) if now != actual => seg = seg.remapped(now)?,
            Some(_) => {}
        }
    }
}

fn wait_ready(seg: &Segment, start: Instant, timeout: Duration) -> Result<()> {
    let mem = mem_of(seg, u64::from(HEADER_LEN)).ok_or_else(|| Error::Truncated {
        target: seg.target(),
        actual: wide(seg.len()),
        needed: u64::from(HEADER_LEN),
    })?;
    let mut spins = 0u32;
    loop {
        // H2: Relaxed, then (H3) an Acquire fence once READY is seen: pairs with the Release store
        // of READY (H1 in `publish`), so the header and control blocks the creator wrote are
        // visible to the snapshot that follows. (A fence rather than an Acquire load: on a
        // read-only mapping only Relaxed atomic loads are allowed.)
        // SAFETY: `init_state` is a 4-aligned word of the header, inside `mem`.
        let state = unsafe { mem.load_u32(offset(INIT_STATE), Ordering::Relaxed) };
        match state {
            INIT_READY => {
                // H3.
                fence(Ordering::Acquire);
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
        rest(&mut spins);
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
            needed: u64::from(HEADER_LEN),
        });
    }
    Ok(snapshot(seg))
}
