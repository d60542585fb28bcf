//! System V shared memory (`shmget`, `shmat`, `shmdt`, `shmctl`): [`Backing::SysV`] segments
//! (PROTOCOL §1.2, DECISIONS D35–D37).
//!
//! A named System V segment is created at a key derived from its name ([`sysv_key`], with
//! linear probing over [`KEY_PROBES`] keys when a key is taken by another name or by a foreign
//! segment) and records its full name in header bytes 144..256 (the *System V record*, layout 1.3),
//! so an opener probing the keys accepts only its own segment. Beside it, a one-page
//! *companion file* with the segment's name in the shm directory holds the shmid and a nonce:
//! it reserves the name in the same namespace as POSIX segments (so [`Segment::open`] and the
//! stale-segment API find System V segments by name too), it is how a segment already marked
//! for destruction (`IPC_RMID`, [`SysvOptions::destroy_on_last_detach`]) is found, and it
//! carries the endpoints' OFD locks (System V memory has no file descriptor).

use super::{huge, os, HugePages, Map, Segment, SegmentOptions};
use crate::conv::{offset, wide};
use crate::error::{Error, Result};
use crate::layout::{
    SYSV_FLAG_COMPANION, SYSV_FLAG_DESTROY, SYSV_KEY, SYSV_NAME, SYSV_NAME_LEN, SYSV_NAME_MAX,
    SYSV_NONCE, SYSV_RECORD, SYSV_RECORD_FLAGS, SYSV_RECORD_LEN, SYSV_TAG,
};
use crate::sync::{fence, AtomicBool, Memory, Ordering, RawMem};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::fs::File;
use std::path::PathBuf;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

mod companion;

pub(crate) use companion::{is_companion, open_companion, orphan_companion};
use companion::{make_companion, same_file};

/// How many consecutive keys a name may take: its derived key and the next ones, tried in
/// order when a key holds another name's segment or a segment that is not shmbus's.
pub const KEY_PROBES: i32 = 8;

/// How long a creator that meets a segment at its key waits for that segment's System V record
/// (its creator writes it right after `shmget`) before taking it for a foreign segment.
const RECORD_WAIT: Duration = Duration::from_millis(200);

/// Options for a System V segment ([`Segment::create_sysv`]).
///
/// ```
/// use shmbus_ring::segment::SysvOptions;
/// let opts = SysvOptions::new().destroy_on_last_detach(true);
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysvOptions {
    destroy: bool,
    companion: bool,
}

impl Default for SysvOptions {
    fn default() -> Self {
        SysvOptions {
            destroy: false,
            companion: true,
        }
    }
}

impl SysvOptions {
    /// The defaults: persistent (the owning handle removes it), with a companion file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Destroy on last detach: the creator marks the segment for removal (`IPC_RMID`) right
    /// after creating it. Linux lets other processes attach it by id until the last one
    /// detaches (or dies, SIGKILL included); then the kernel frees it. A crashed set of
    /// processes leaves no memory behind. Openers find the id through the companion file (the
    /// key is gone after `IPC_RMID`); a companion left by processes that all died names a
    /// segment that no longer exists, and the next create of that name, or
    /// [`crate::liveness::remove_if_stale`], replaces or removes it.
    pub fn destroy_on_last_detach(mut self, yes: bool) -> Self {
        self.destroy = yes;
        self
    }

    /// Whether to keep a companion file in the shm directory (default yes). Without one, the
    /// segment is found by key only ([`Segment::open_sysv`]; a destroy-on-last-detach segment
    /// then only by id, [`Segment::open_sysv_id`]), it does not reserve its name against POSIX
    /// segments, and endpoint liveness falls back to pid and start time (same PID namespace).
    pub fn companion(mut self, yes: bool) -> Self {
        self.companion = yes;
        self
    }
}

/// The System V side of a segment: its id, key, record, and companion file.
pub(crate) struct Attached {
    pub(crate) shmid: i32,
    pub(crate) record: [u8; SYSV_RECORD_LEN],
    /// The companion file's path and the descriptor this process has open on it (its OFD
    /// locks live there).
    pub(crate) companion: Option<(PathBuf, File)>,
}

/// The key a named System V segment is created at first: `0x53` (`S`) in the high byte and the
/// low 24 bits of the FNV-1a hash of the name (with its leading `/`). A taken key moves the
/// name on to the next ones ([`KEY_PROBES`]), within the same `0x53xxxxxx` range.
///
/// ```
/// let k = shmbus_ring::segment::sysv_key("/orders");
/// assert_eq!(k as u32 >> 24, 0x53);
/// assert_eq!(k, shmbus_ring::segment::sysv_key("/orders"));
/// ```
pub fn sysv_key(name: &str) -> i32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    key_from_bits(h)
}

/// `0x53` over the low 24 bits of `bits`.
fn key_from_bits(bits: u32) -> i32 {
    let k = 0x5300_0000 | (bits & 0x00ff_ffff);
    i32::from_ne_bytes(k.to_ne_bytes())
}

/// Probe `i` of the keys starting at `base`.
fn probe_key(base: i32, i: i32) -> i32 {
    let low =
        u32::from_ne_bytes(base.to_ne_bytes()).wrapping_add(u32::from_ne_bytes(i.to_ne_bytes()));
    key_from_bits(low)
}

fn errno() -> Errno {
    Errno::last()
}

/// `shmget(key, len, flags)`.
fn shmget(key: i32, len: usize, flags: i32) -> std::result::Result<i32, Errno> {
    // SAFETY: shmget takes plain integers and touches no memory of ours.
    let id = unsafe { libc::shmget(key, len, flags) };
    if id < 0 {
        Err(errno())
    } else {
        Ok(id)
    }
}

/// `shmctl(id, IPC_STAT)`.
pub(crate) fn stat(id: i32) -> std::result::Result<libc::shmid_ds, Errno> {
    // SAFETY: `shmid_ds` is a plain C struct; all-zero bytes are a valid value.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: `ds` is a valid, writable `shmid_ds` for IPC_STAT to fill.
    if unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) } < 0 {
        Err(errno())
    } else {
        Ok(ds)
    }
}

/// `shmctl(id, IPC_RMID)`: destroy once the last process detaches.
pub(crate) fn rmid(id: i32) -> std::result::Result<(), Errno> {
    // SAFETY: IPC_RMID reads no buffer (a null one is allowed).
    if unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) } < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// `shmat(id, NULL, SHM_RDONLY?)`.
fn shmat(id: i32, read_only: bool) -> std::result::Result<NonNull<u8>, Errno> {
    let flags = if read_only { libc::SHM_RDONLY } else { 0 };
    // SAFETY: a null address lets the kernel choose where to map; nothing of ours is replaced.
    let p = unsafe { libc::shmat(id, std::ptr::null(), flags) };
    if p as isize == -1 {
        return Err(errno());
    }
    NonNull::new(p.cast::<u8>()).ok_or(Errno::EINVAL)
}

/// `shmdt(ptr)`: the mapping `shmat` returned goes away.
pub(crate) fn shmdt(ptr: NonNull<u8>) {
    // SAFETY: `ptr` is an address `shmat` returned and that is detached once, here (Map::drop).
    let _ = unsafe { libc::shmdt(ptr.as_ptr().cast()) };
}

/// What a System V record says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    name: Vec<u8>,
    flags: u16,
    key: i32,
    nonce: u64,
}

impl Record {
    fn encode(&self) -> [u8; SYSV_RECORD_LEN] {
        let mut r = [0u8; SYSV_RECORD_LEN];
        let at = |o: u64| offset(o - SYSV_RECORD);
        r[at(SYSV_TAG)..at(SYSV_TAG) + 4].copy_from_slice(&sysv_tag().to_le_bytes());
        let len = u16::try_from(self.name.len()).unwrap_or(0);
        r[at(SYSV_NAME_LEN)..at(SYSV_NAME_LEN) + 2].copy_from_slice(&len.to_le_bytes());
        r[at(SYSV_RECORD_FLAGS)..at(SYSV_RECORD_FLAGS) + 2]
            .copy_from_slice(&self.flags.to_le_bytes());
        r[at(SYSV_KEY)..at(SYSV_KEY) + 4].copy_from_slice(&self.key.to_le_bytes());
        r[at(SYSV_NONCE)..at(SYSV_NONCE) + 8].copy_from_slice(&self.nonce.to_le_bytes());
        r[at(SYSV_NAME)..at(SYSV_NAME) + self.name.len()].copy_from_slice(&self.name);
        r
    }

    /// The record in `bytes` (header bytes 144..256), if its tag is set and its fields are in
    /// range (shared memory is untrusted: a name length past the record is refused).
    fn decode(bytes: &[u8; SYSV_RECORD_LEN]) -> Option<Record> {
        let at = |o: u64| offset(o - SYSV_RECORD);
        let u16_at = |o| u16::from_le_bytes([bytes[at(o)], bytes[at(o) + 1]]);
        let mut w4 = [0u8; 4];
        w4.copy_from_slice(&bytes[at(SYSV_TAG)..at(SYSV_TAG) + 4]);
        if u32::from_le_bytes(w4) != sysv_tag() {
            return None;
        }
        let len = usize::from(u16_at(SYSV_NAME_LEN));
        if len > SYSV_NAME_MAX {
            return None;
        }
        w4.copy_from_slice(&bytes[at(SYSV_KEY)..at(SYSV_KEY) + 4]);
        let key = i32::from_le_bytes(w4);
        let mut w8 = [0u8; 8];
        w8.copy_from_slice(&bytes[at(SYSV_NONCE)..at(SYSV_NONCE) + 8]);
        Some(Record {
            name: bytes[at(SYSV_NAME)..at(SYSV_NAME) + len].to_vec(),
            flags: u16_at(SYSV_RECORD_FLAGS),
            key,
            nonce: u64::from_le_bytes(w8),
        })
    }
}

fn sysv_tag() -> u32 {
    u32::from_le_bytes(*b"SYSV")
}

/// A nonce no other segment is likely to carry: time, pid and a counter, mixed.
fn nonce() -> u64 {
    use std::sync::atomic::AtomicU64;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let mut x = t
        ^ u64::from(std::process::id()) << 40
        ^ NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (x ^ (x >> 31)) | 1
}

/// The record a mapping of `len` bytes at `ptr` carries, waiting up to `wait` for its tag.
fn read_record(ptr: NonNull<u8>, len: usize, wait: Duration) -> Option<Record> {
    if len < offset(SYSV_RECORD) + SYSV_RECORD_LEN {
        return None;
    }
    // SAFETY: `ptr` is a live mapping of `len` bytes (page-aligned, so 8-aligned), only loaded
    // from here.
    let mem = unsafe { RawMem::from_raw(ptr, len) };
    let start = Instant::now();
    loop {
        // V2: a Relaxed load (the mapping may be read-only, as in H2), then, once it reads the
        // tag, an Acquire fence: together they pair with the creator's Release store of the
        // tag (V1), so the record's other bytes read next are the creator's.
        // SAFETY: the tag is a 4-aligned word inside the first page, which `mem` holds.
        if unsafe { mem.load_u32(offset(SYSV_TAG), Ordering::Relaxed) } == sysv_tag() {
            fence(Ordering::Acquire);
            break;
        }
        if start.elapsed() >= wait {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut bytes = [0u8; SYSV_RECORD_LEN];
    // SAFETY: in bounds (checked above); a plain copy of bytes written before V1.
    unsafe { mem.read(offset(SYSV_RECORD), &mut bytes) };
    Record::decode(&bytes)
}

/// Writes `record` into the fresh segment at `ptr`: every byte, then the tag with Release (V1).
fn write_record(ptr: NonNull<u8>, len: usize, record: &[u8; SYSV_RECORD_LEN]) {
    debug_assert!(len >= offset(SYSV_RECORD) + SYSV_RECORD_LEN);
    // SAFETY: a live, writable mapping of `len` bytes that this process just created.
    let mem = unsafe { RawMem::from_raw(ptr, len) };
    let tag = offset(SYSV_TAG - SYSV_RECORD);
    // SAFETY: in bounds; the record's bytes after the tag, written before V1 publishes them.
    unsafe { mem.write(offset(SYSV_RECORD) + tag + 4, &record[tag + 4..]) };
    // V1: Release; publishes the record's bytes to a creator or opener probing this key (V2).
    // SAFETY: the tag is a 4-aligned word of the first page.
    unsafe {
        mem.store_u32(
            offset(SYSV_TAG),
            u32::from_le_bytes([
                record[tag],
                record[tag + 1],
                record[tag + 2],
                record[tag + 3],
            ]),
            Ordering::Release,
        );
    }
}

/// What a segment met at a key is to a name being created or opened.
enum AtKey {
    /// A shmbus segment of this name (its record).
    Ours(Record),
    /// Another name's segment, a foreign one, or one we may not attach.
    Other,
}

/// Looks at segment `id` (read-only) and tells whether it is `name`'s.
fn look(id: i32, name: &[u8], wait: Duration) -> AtKey {
    let Ok(ds) = stat(id) else {
        return AtKey::Other;
    };
    let Ok(p) = shmat(id, true) else {
        return AtKey::Other;
    };
    let rec = read_record(p, ds.shm_segsz, wait);
    shmdt(p);
    match rec {
        Some(r) if r.name == name => AtKey::Ours(r),
        _ => AtKey::Other,
    }
}

fn name_bytes(name: &str) -> Result<Vec<u8>> {
    super::validate_name(name)?;
    let bytes = name.as_bytes()[1..].to_vec();
    if bytes.len() > SYSV_NAME_MAX {
        return Err(Error::InvalidName {
            name: name.to_string(),
            reason: "longer than 88 bytes after '/' (a System V segment records its full name in its header)",
        });
    }
    Ok(bytes)
}

impl Segment {
    /// Creates a System V segment for `name` (`shmget(IPC_CREAT | IPC_EXCL)` at the key derived
    /// from the name, [`sysv_key`], probing the next keys past other names' segments), `len`
    /// bytes rounded up to pages (huge pages with [`HugePages::Explicit`]), mode bits from the
    /// options, plus its companion file in the shm directory. This handle owns it: dropped, it
    /// removes the segment (`IPC_RMID`) and the companion unless [`Segment::keep`]. Rings are
    /// built in it with [`crate::Ring::create_in`], or [`crate::Ring::create_sysv`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] for a bad name or one over 88 bytes; [`Error::Os`] naming
    /// `shmget` (`EEXIST` when a segment of this name exists; `ENOSPC`: the `SHMMNI`/`SHMALL`
    /// limits; `EINVAL`: over `SHMMAX`; `ENOMEM`), `shmat`, `shmctl` or, for the companion,
    /// `open(O_TMPFILE)`, `write` (`ENOSPC`: a full shm directory) or `link` (`EEXIST`: the
    /// name is taken, by a POSIX segment too);
    /// [`Error::KeyCollision`] when every probed key holds another segment;
    /// [`Error::HugePages`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shmbus_ring::{segment::SysvOptions, Backing, Segment, SegmentOptions};
    /// let name = format!("/shmbus-doc-sysv-{}", std::process::id());
    /// let opts = SegmentOptions::default();
    /// let owner = Segment::create_sysv(&name, 10_000, &opts, &SysvOptions::new())?;
    /// assert!(matches!(owner.backing(), Backing::SysV { .. }));
    /// let other = Segment::open(&name, &opts)?; // by name, like a POSIX segment
    /// assert_eq!(other.sysv_id(), owner.sysv_id());
    /// drop(owner); // IPC_RMID and the companion file removed; `other` stays attached
    /// assert!(Segment::open(&name, &opts).is_err());
    /// # Ok::<(), shmbus_ring::Error>(())
    /// ```
    pub fn create_sysv(
        name: &str,
        len: u64,
        opts: &SegmentOptions,
        sysv: &SysvOptions,
    ) -> Result<Segment> {
        let bytes = name_bytes(name)?;
        create(Some((name, &bytes)), len, opts, sysv)
    }

    /// Creates an anonymous System V segment (`IPC_PRIVATE`): no name, no key, no companion.
    /// Hand [`Segment::sysv_id`] to the processes that are to attach it
    /// ([`Segment::open_sysv_id`]; an integer, so argv, the environment or a socket will do);
    /// any process the mode bits admit can attach it by id.
    ///
    /// # Errors
    ///
    /// As [`Segment::create_sysv`].
    pub fn create_sysv_private(
        len: u64,
        opts: &SegmentOptions,
        sysv: &SysvOptions,
    ) -> Result<Segment> {
        create(None, len, opts, &sysv.companion(false))
    }

    /// Opens the System V segment of `name`: through its companion file in the shm directory if
    /// there is one, else by probing the keys derived from the name for a segment whose header
    /// records this name. [`Segment::open`] also opens a System V segment by name when it finds
    /// its companion.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] naming `shmget` with `ENOENT` when no segment of this name exists, `shmat`
    /// (`EACCES`: the mode bits refuse us; `EINVAL`/`EIDRM`: the segment the companion names is
    /// gone), or [`Error::BadField`] for a companion file that is not one.
    pub fn open_sysv(name: &str, opts: &SegmentOptions) -> Result<Segment> {
        let bytes = name_bytes(name)?;
        let dir = opts.resolved_dir();
        let flags = if opts.read_only {
            OFlag::O_RDONLY
        } else {
            OFlag::O_RDWR
        };
        match super::dir::open(&dir, name, flags, Mode::empty()) {
            Ok(fd) => return open_companion(fd, name, opts),
            Err(Error::Os { code, .. }) if code.raw() == libc::ENOENT => {}
            Err(e) => return Err(e),
        }
        let base = sysv_key(name);
        for i in 0..KEY_PROBES {
            let key = probe_key(base, i);
            let Ok(id) = shmget(key, 0, 0) else { continue };
            if let AtKey::Ours(r) = look(id, &bytes, Duration::ZERO) {
                let backing = super::Backing::SysV {
                    name: Some(name.to_string()),
                    key,
                    shmid: id,
                };
                return attach(id, backing, opts, false, &r, None);
            }
        }
        Err(os("shmget", name, Errno::ENOENT))
    }

    /// Attaches the System V segment with id `shmid` (one made by
    /// [`Segment::create_sysv_private`], or any shmbus System V segment), after checking that
    /// its header carries a System V record.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] naming `shmctl(IPC_STAT)` or `shmat` (`EINVAL`/`EIDRM`: no such segment;
    /// `EACCES`); [`Error::BadField`] naming `sysv record` for a segment that is not shmbus's.
    pub fn open_sysv_id(shmid: i32, opts: &SegmentOptions) -> Result<Segment> {
        let target = format!("sysv:{shmid}");
        let p = shmat(shmid, true).map_err(|e| os("shmat", &target, e))?;
        let len = stat(shmid).map_or(0, |ds| ds.shm_segsz);
        let rec = read_record(p, len, Duration::ZERO);
        shmdt(p);
        let rec = rec.ok_or_else(|| not_ours(&target))?;
        let name =
            (!rec.name.is_empty()).then(|| format!("/{}", String::from_utf8_lossy(&rec.name)));
        let backing = super::Backing::SysV {
            name,
            key: rec.key,
            shmid,
        };
        attach(shmid, backing, opts, false, &rec, None)
    }

    /// The System V id of a [`Backing::SysV`] segment.
    pub fn sysv_id(&self) -> Option<i32> {
        self.sysv.as_ref().map(|s| s.shmid)
    }

    /// The System V record to keep in header bytes 144..256 when a ring is laid out in this segment
    /// (a header publish writes the whole header).
    pub(crate) fn sysv_record(&self) -> Option<[u8; SYSV_RECORD_LEN]> {
        self.sysv.as_ref().map(|s| s.record)
    }

    /// The companion file's descriptor, which carries the endpoints' OFD locks.
    pub(crate) fn companion_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.sysv
            .as_ref()?
            .companion
            .as_ref()
            .map(|(_, f)| f.as_fd())
    }

    /// Removes this System V segment (`IPC_RMID`) and its companion file if the companion still
    /// names it. `Ok(true)` if this call removed the companion or marked the segment.
    pub(crate) fn remove_sysv(&self) -> Result<bool> {
        let Some(s) = &self.sysv else {
            return Ok(false);
        };
        let target = self.target();
        let mut removed = false;
        if let Ok(ds) = stat(s.shmid) {
            if ds.shm_perm.mode & 0o1000 == 0 {
                // Not yet marked (SHM_DEST): mark it. We are attached, so the id is still ours.
                rmid(s.shmid).map_err(|e| os("shmctl(IPC_RMID)", &target, e))?;
                removed = true;
            }
        }
        if let Some((path, file)) = &s.companion {
            if same_file(path, file) {
                match std::fs::remove_file(path) {
                    Ok(()) => removed = true,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(super::io_os("unlink", &target, &e)),
                }
            }
        }
        Ok(removed)
    }

    /// Whether the companion file's name still refers to this segment's companion.
    pub(crate) fn sysv_name_is_ours(&self) -> bool {
        match self.sysv.as_ref().and_then(|s| s.companion.as_ref()) {
            Some((path, file)) => same_file(path, file),
            None => true,
        }
    }
}

fn not_ours(target: &str) -> Error {
    Error::BadField {
        target: target.to_string(),
        field: "sysv record",
        value: 0,
        reason:
            "the segment carries no shmbus System V record (header bytes 144..256): not a shmbus \
                 System V segment"
                .into(),
    }
}

/// The `shmget` flags for a new segment: create, exclusive, the mode bits, huge pages.
fn create_flags(opts: &SegmentOptions) -> i32 {
    let mode = i32::try_from(opts.mode & 0o777).unwrap_or(0o600);
    let huge = if opts.huge == HugePages::Explicit {
        libc::SHM_HUGETLB
    } else {
        0
    };
    libc::IPC_CREAT | libc::IPC_EXCL | mode | huge
}

/// The error for a failed `shmget` of a new segment.
fn create_error(target: &str, e: Errno, len: usize, opts: &SegmentOptions) -> Error {
    if opts.huge == HugePages::Explicit && matches!(e, Errno::EPERM | Errno::ENOMEM | Errno::EINVAL)
    {
        return huge::refused(target, "shmget(SHM_HUGETLB)", e as i32, len);
    }
    os("shmget", target, e)
}

fn create(
    named: Option<(&str, &[u8])>,
    len: u64,
    opts: &SegmentOptions,
    sysv: &SysvOptions,
) -> Result<Segment> {
    let target = named
        .as_ref()
        .map_or_else(|| "sysv:private".to_string(), |(n, _)| (*n).to_string());
    let mut len = super::round_len(len.max(wide(super::HEAP_ALIGN)), &target)?;
    if opts.huge == HugePages::Explicit {
        if let Some(why) = huge::unavailable(len) {
            return Err(huge::error(&target, why));
        }
        len = huge::round(len, &target)?;
    }
    let flags = create_flags(opts);
    let (id, key) = match &named {
        None => (
            shmget(libc::IPC_PRIVATE, len, flags)
                .map_err(|e| create_error(&target, e, len, opts))?,
            libc::IPC_PRIVATE,
        ),
        Some((name, bytes)) => {
            let base = sysv_key(name);
            let mut found = None;
            for i in 0..KEY_PROBES {
                let key = probe_key(base, i);
                match shmget(key, len, flags) {
                    Ok(id) => {
                        found = Some((id, key));
                        break;
                    }
                    Err(Errno::EEXIST) => {
                        let Ok(id) = shmget(key, 0, 0) else { continue };
                        if let AtKey::Ours(_) = look(id, bytes, RECORD_WAIT) {
                            return Err(os("shmget", name, Errno::EEXIST));
                        }
                    }
                    Err(e) => return Err(create_error(name, e, len, opts)),
                }
            }
            found.ok_or_else(|| Error::KeyCollision {
                target: (*name).to_string(),
                first_key: base,
                probes: KEY_PROBES,
            })?
        }
    };
    let mut flags16 = 0;
    if sysv.destroy {
        flags16 |= SYSV_FLAG_DESTROY;
    }
    if sysv.companion && named.is_some() {
        flags16 |= SYSV_FLAG_COMPANION;
    }
    let record = Record {
        name: named.map(|(_, b)| b.to_vec()).unwrap_or_default(),
        flags: flags16,
        key,
        nonce: nonce(),
    };
    let backing = super::Backing::SysV {
        name: named.as_ref().map(|(n, _)| (*n).to_string()),
        key,
        shmid: id,
    };
    let result = (|| {
        let mut seg = attach(id, backing, opts, true, &record, None)?;
        write_record(
            NonNull::new(seg.as_ptr()).ok_or_else(|| not_ours(&target))?,
            seg.len(),
            &record.encode(),
        );
        if let (Some((name, _)), true) = (&named, sysv.companion) {
            let companion = make_companion(&opts.resolved_dir(), name, opts, id, &record, len)?;
            if let Some(s) = seg.sysv.as_mut() {
                s.companion = Some(companion);
            }
        }
        if sysv.destroy {
            rmid(id).map_err(|e| os("shmctl(IPC_RMID)", &target, e))?;
        }
        Ok(seg)
    })();
    match result {
        Ok(seg) => {
            seg.unlink_on_drop.store(true, Ordering::Relaxed);
            Ok(seg)
        }
        Err(e) => {
            let _ = rmid(id);
            Err(e)
        }
    }
}

/// Attaches segment `id` as a [`Segment`] (`created`: this process just made it).
fn attach(
    id: i32,
    backing: super::Backing,
    opts: &SegmentOptions,
    created: bool,
    record: &Record,
    companion: Option<(PathBuf, File)>,
) -> Result<Segment> {
    let target = backing.target();
    let ds = stat(id).map_err(|e| os("shmctl(IPC_STAT)", &target, e))?;
    let len = ds.shm_segsz;
    let read_only = !created && opts.read_only;
    let ptr = shmat(id, read_only).map_err(|e| os("shmat", &target, e))?;
    let map = Map::Shmat { ptr, len };
    if !created && read_record(ptr, len, Duration::ZERO).as_ref() != Some(record) {
        // The id was removed and reused between the look and this attach.
        return Err(not_ours(&target));
    }
    if opts.huge == HugePages::Transparent {
        huge::advise(ptr.as_ptr(), len);
    }
    if opts.prefault {
        populate(ptr, len, !read_only);
    }
    if opts.mlock {
        // SAFETY: `ptr`/`len` describe the mapping just attached.
        unsafe { nix::sys::mman::mlock(ptr.cast(), len) }.map_err(|e| os("mlock", &target, e))?;
    }
    Ok(Segment {
        map,
        fd: None,
        backing,
        created,
        writable: !read_only,
        unlink_on_drop: AtomicBool::new(false),
        in_ring: AtomicBool::new(false),
        opts: opts.clone(),
        sysv: Some(Box::new(Attached {
            shmid: id,
            record: record.encode(),
            companion,
        })),
    })
}

/// Faults the mapping in now (`MADV_POPULATE_WRITE`/`_READ`, Linux 5.14+), so a lack of
/// memory shows at creation rather than at the first message. Best effort on older kernels.
fn populate(ptr: NonNull<u8>, len: usize, write: bool) {
    let advice = if write {
        libc::MADV_POPULATE_WRITE
    } else {
        libc::MADV_POPULATE_READ
    };
    // SAFETY: `ptr`/`len` describe a live mapping of ours; populating changes no contents.
    let _ = unsafe { libc::madvise(ptr.as_ptr().cast(), len, advice) };
}

/// A shmbus System V segment as `/proc/sysvipc/shm` lists it ([`sysv_segments`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysvSegment {
    /// Its id.
    pub shmid: i32,
    /// Its key (0 once marked for destruction, or for `IPC_PRIVATE`).
    pub key: i32,
    /// Its size in bytes.
    pub size: u64,
    /// How many attachments it has.
    pub nattch: u64,
    /// The pid that created it.
    pub cpid: u32,
    /// Its name, `/x`, from its System V record (`None` for `IPC_PRIVATE`).
    pub name: Option<String>,
    /// Whether it is marked for destruction at its last detach.
    pub destroy_on_last_detach: bool,
}

/// Every shmbus System V segment of this IPC namespace that this process may read: the
/// entries of `/proc/sysvipc/shm` whose header carries a System V record. For `shmbus ls`/`gc`:
/// named ones with a companion file are also found by [`crate::liveness::scan`].
///
/// ```
/// for seg in shmbus_ring::segment::sysv_segments() {
///     println!("{} {:?} {} bytes, {} attached", seg.shmid, seg.name, seg.size, seg.nattch);
/// }
/// ```
pub fn sysv_segments() -> Vec<SysvSegment> {
    let Ok(text) = std::fs::read_to_string("/proc/sysvipc/shm") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        // key shmid perms size cpid lpid nattch ...
        let (Some(key), Some(id), Some(perms), Some(size), Some(cpid), Some(nattch)) = (
            f.first().and_then(|v| v.parse::<i32>().ok()),
            f.get(1).and_then(|v| v.parse::<i32>().ok()),
            f.get(2).and_then(|v| v.parse::<u32>().ok()),
            f.get(3).and_then(|v| v.parse::<u64>().ok()),
            f.get(4).and_then(|v| v.parse::<u32>().ok()),
            f.get(6).and_then(|v| v.parse::<u64>().ok()),
        ) else {
            continue;
        };
        let Ok(p) = shmat(id, true) else { continue };
        let rec = read_record(p, usize::try_from(size).unwrap_or(0), Duration::ZERO);
        shmdt(p);
        let Some(rec) = rec else { continue };
        out.push(SysvSegment {
            shmid: id,
            key,
            size,
            nattch,
            cpid,
            name: (!rec.name.is_empty())
                .then(|| format!("/{}", String::from_utf8_lossy(&rec.name))),
            destroy_on_last_detach: perms & 0o1000 != 0 || rec.flags & SYSV_FLAG_DESTROY != 0,
        });
    }
    out
}

/// Removes (`IPC_RMID`) the System V segment `shmid` if it is a shmbus segment (its header
/// carries a System V record): for `shmbus gc` on segments without a companion file, and for test
/// clean-up. `Ok(false)` if there is no such segment or it is not shmbus's. Its companion file,
/// if any, is left (a companion whose segment is gone is removed by
/// [`crate::liveness::remove_if_stale`] or replaced by the next create of its name).
///
/// # Errors
///
/// [`Error::Os`] naming `shmctl(IPC_RMID)` (`EPERM`: not the owner).
pub fn remove_sysv_id(shmid: i32) -> Result<bool> {
    let Ok(p) = shmat(shmid, true) else {
        return Ok(false);
    };
    let len = stat(shmid).map_or(0, |ds| ds.shm_segsz);
    let rec = read_record(p, len, Duration::ZERO);
    shmdt(p);
    if rec.is_none() {
        return Ok(false);
    }
    match rmid(shmid) {
        Ok(()) => Ok(true),
        Err(Errno::EINVAL | Errno::EIDRM) => Ok(false),
        Err(e) => Err(os("shmctl(IPC_RMID)", &format!("sysv:{shmid}"), e)),
    }
}
