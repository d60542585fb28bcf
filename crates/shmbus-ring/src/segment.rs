//! Shared-memory segments: creation, opening, ownership of the name, and the backings.
//!
//! A [`Segment`] is a mapped region of memory that one or more processes share, plus the
//! knowledge of where it came from ([`Backing`]) and whether this handle owns its name. It
//! knows nothing of rings: [`crate::SpscRing`] lays a ring out inside one.
//!
//! | backing | created by | shared with | name |
//! |---|---|---|---|
//! | [`Backing::Shm`] | [`Segment::create`] | any process, by name | `/name` under `/dev/shm` |
//! | [`Backing::Anonymous`] | [`Segment::anonymous`] | children forked after creation | none |
//! | [`Backing::Memfd`] | [`Segment::memfd`] | children, or any process the fd is passed to | none |
//! | [`Backing::File`] | [`Segment::create_file`] | any process, by path; survives reboot | a path |
//! | [`Backing::Heap`] | [`Segment::heap`] | this process only (tests, fuzzing) | none |
//! | [`Backing::SysV`] | [`Segment::create_sysv`] | any process, by name or id; not bounded by the shm directory's size | `/name`, a key and an id |
//!
//! Named segments live in the shm directory: `/dev/shm`, or [`SHM_DIR_ENV`] (`SHMBUS_DIR`), or
//! [`SegmentOptions::shm_dir`]. [`SegmentOptions::huge_pages`] asks for huge pages.

use crate::error::{Error, OsCode, Result};
use crate::sync::{AtomicBool, AtomicU32, AtomicU64, Ordering, RawMem};
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, SealFlag};
use nix::sys::mman::{MapFlags, ProtFlags};
use nix::sys::stat::Mode;
use std::alloc::Layout;
use std::fs::File;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

mod dir;
mod huge;
mod sysv;
mod words;

pub use dir::{shm_dir, validate_name, DEFAULT_SHM_DIR, MAX_NAME_LEN, SHM_DIR_ENV};
pub use huge::{huge_page_info, HugePageInfo, HugePages};
pub(crate) use sysv::orphan_companion;
pub use sysv::{remove_sysv_id, sysv_key, sysv_segments, SysvOptions, SysvSegment, KEY_PROBES};

/// The alignment of a heap-backed segment, and the page size segments are rounded to at least.
const HEAP_ALIGN: usize = 4096;

/// Where a segment's memory comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backing {
    /// A named POSIX shared-memory object (`shm_open`), e.g. `/orders`.
    Shm(String),
    /// An anonymous shared mapping (`MAP_SHARED | MAP_ANONYMOUS`), inherited over `fork`.
    Anonymous,
    /// A `memfd_create` file sealed against shrinking and growing; its fd can be inherited or
    /// passed over a Unix socket. The string is the debugging name the memfd was given.
    Memfd(String),
    /// A regular file mapped shared: a ring that survives the processes and a reboot.
    File(PathBuf),
    /// Process-private heap memory with the same layout (tests, fuzzing, in-process rings).
    Heap,
    /// A System V shared-memory segment (`shmget`/`shmat`): its name (`None` for
    /// `IPC_PRIVATE`), the key it was created at, and its id.
    SysV {
        /// The name, `/x`, recorded in its header; `None` for an `IPC_PRIVATE` segment.
        name: Option<String>,
        /// The key it was created at (0 for `IPC_PRIVATE`).
        key: i32,
        /// Its System V id.
        shmid: i32,
    },
}

impl Backing {
    /// The name used in error messages: the shm name, the path, `memfd:NAME`, `anonymous`, `heap`.
    pub fn target(&self) -> String {
        match self {
            Backing::Shm(n) | Backing::SysV { name: Some(n), .. } => n.clone(),
            Backing::Anonymous => "anonymous".into(),
            Backing::Memfd(n) => format!("memfd:{n}"),
            Backing::File(p) => p.display().to_string(),
            Backing::Heap => "heap".into(),
            Backing::SysV { shmid, .. } => format!("sysv:{shmid}"),
        }
    }
}

/// Options for creating, opening and mapping a segment.
///
/// ```
/// use shmbus_ring::SegmentOptions;
/// let opts = SegmentOptions::new().mode(0o660).prefault(true);
/// # let _ = opts;
/// ```
#[derive(Debug, Clone)]
pub struct SegmentOptions {
    mode: u32,
    prefault: bool,
    mlock: bool,
    read_only: bool,
    dir: Option<PathBuf>,
    huge: HugePages,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        SegmentOptions {
            mode: 0o600,
            prefault: false,
            mlock: false,
            read_only: false,
            dir: None,
            huge: HugePages::Off,
        }
    }
}

impl SegmentOptions {
    /// The defaults: mode `0600`, no prefault, no `mlock`, read-write.
    pub fn new() -> Self {
        Self::default()
    }

    /// Permission bits of a created object or file (default `0o600`); applied exactly,
    /// regardless of the process umask.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o777;
        self
    }

    /// Map with `MAP_POPULATE`, so the first messages do not pay page faults.
    pub fn prefault(mut self, yes: bool) -> Self {
        self.prefault = yes;
        self
    }

    /// `mlock` the mapping, so it is never paged out (needs `RLIMIT_MEMLOCK` or privilege).
    pub fn mlock(mut self, yes: bool) -> Self {
        self.mlock = yes;
        self
    }

    /// Open read-only, for inspection: such a segment can be examined but not attached to.
    pub fn read_only(mut self, yes: bool) -> Self {
        self.read_only = yes;
        self
    }

    /// The shm directory for named segments and System V companion files (default: the
    /// [`SHM_DIR_ENV`] environment variable, else `/dev/shm`), for hosts where `/dev/shm` is
    /// small or shared differently. Every process of a segment must use the same directory.
    pub fn shm_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Back the segment with huge pages ([`HugePages`]; default [`HugePages::Off`]).
    pub fn huge_pages(mut self, huge: HugePages) -> Self {
        self.huge = huge;
        self
    }

    /// The shm directory these options name: the option, else the environment, else
    /// `/dev/shm`.
    pub fn resolved_dir(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(shm_dir)
    }
}

enum Map {
    /// Nothing mapped: an object opened while still 0 bytes long (its creator has not sized it
    /// yet). The handshake maps it again once it has a size.
    Empty,
    Raw(memmap2::MmapRaw),
    Anon {
        ptr: NonNull<u8>,
        len: usize,
    },
    Heap {
        ptr: NonNull<u8>,
        layout: Layout,
    },
    /// A System V segment attached with `shmat`.
    Shmat {
        ptr: NonNull<u8>,
        len: usize,
    },
}

impl Map {
    #[inline]
    fn ptr(&self) -> NonNull<u8> {
        match self {
            Map::Empty => NonNull::<u64>::dangling().cast(),
            Map::Raw(m) => NonNull::new(m.as_mut_ptr()).expect("mmap never returns null"),
            Map::Anon { ptr, .. } | Map::Heap { ptr, .. } | Map::Shmat { ptr, .. } => *ptr,
        }
    }

    #[inline]
    fn len(&self) -> usize {
        match self {
            Map::Empty => 0,
            Map::Raw(m) => m.len(),
            Map::Anon { len, .. } | Map::Shmat { len, .. } => *len,
            Map::Heap { layout, .. } => layout.size(),
        }
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        match self {
            Map::Empty | Map::Raw(_) => {}
            Map::Anon { ptr, len } => {
                // SAFETY: `ptr`/`len` are exactly what `mmap_anonymous` returned, and the mapping
                // is unmapped once, here; no reference into it outlives the `Segment`.
                let _ = unsafe { nix::sys::mman::munmap(ptr.cast(), *len) };
            }
            Map::Heap { ptr, layout } => {
                // SAFETY: allocated by `alloc_zeroed` with this very layout, freed once.
                unsafe { std::alloc::dealloc(ptr.as_ptr(), *layout) }
            }
            Map::Shmat { ptr, .. } => sysv::shmdt(*ptr),
        }
    }
}

/// A mapped shared-memory region and where it came from.
///
/// Exactly one handle owns a name: the one that created it ([`Segment::create`],
/// [`Segment::create_file`]), which unlinks it when dropped unless told to
/// [`keep`](Segment::keep) it. [`unlink`](Segment::unlink) removes the name early; the mapping
/// stays valid for every process that has it.
///
/// # Examples
///
/// ```
/// use shmbus_ring::{Segment, SegmentOptions};
/// let name = format!("/shmbus-doc-seg-{}", std::process::id());
/// let owner = Segment::create(&name, 10_000, &SegmentOptions::default())?;
/// assert_eq!(owner.len() % 4096, 0); // rounded up to whole pages
/// let other = Segment::open(&name, &SegmentOptions::default())?;
/// assert_eq!(other.len(), owner.len());
/// drop(owner); // unlinks the name; `other` stays mapped
/// assert!(Segment::open(&name, &SegmentOptions::default()).is_err());
/// # Ok::<(), shmbus_ring::Error>(())
/// ```
pub struct Segment {
    map: Map,
    fd: Option<OwnedFd>,
    backing: Backing,
    created: bool,
    writable: bool,
    unlink_on_drop: AtomicBool,
    /// Set once a ring is laid out in (or opened on) this segment: from then on only the ring
    /// touches its words, so the raw accessors refuse.
    in_ring: AtomicBool,
    /// The options it was mapped with, to map it again ([`Segment::remapped`]).
    opts: SegmentOptions,
    /// A System V segment's id, record and companion file.
    sysv: Option<Box<sysv::Attached>>,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("backing", &self.backing)
            .field("len", &self.len())
            .field("created", &self.created)
            .field("writable", &self.writable)
            .field(
                "unlink_on_drop",
                &self.unlink_on_drop.load(Ordering::Relaxed),
            )
            .field("in_ring", &self.in_ring.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn os(op: &'static str, target: &str, errno: Errno) -> Error {
    Error::Os {
        op,
        target: target.to_string(),
        code: OsCode::new(errno),
    }
}

fn io_os(op: &'static str, target: &str, e: &std::io::Error) -> Error {
    os(
        op,
        target,
        Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    )
}

/// The system page size.
pub fn page_size() -> usize {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|v| usize::try_from(v).ok())
        .filter(|v| v.is_power_of_two())
        .unwrap_or(4096)
}

fn round_len(len: u64, target: &str) -> Result<usize> {
    let page = page_size() as u64;
    let rounded = len
        .max(1)
        .checked_add(page - 1)
        .map(|v| v / page * page)
        .and_then(|v| usize::try_from(v).ok())
        .filter(|v| isize::try_from(*v).is_ok())
        .ok_or_else(|| {
            Error::InvalidConfig(format!("{target}: segment length {len} is too large"))
        })?;
    Ok(rounded)
}

/// Allocates the object's storage now (`posix_fallocate`), so a full `/dev/shm` or disk is an
/// `ENOSPC` error here rather than a `SIGBUS` in every process at the first write to an
/// unbacked page. Filesystems without `fallocate` (`EOPNOTSUPP`) are left as they are.
fn reserve_space(file: &File, len: usize, target: &str) -> Result<()> {
    let len = libc::off_t::try_from(len).map_err(|_| {
        Error::InvalidConfig(format!(
            "{target}: {len} bytes is more than a file can hold"
        ))
    })?;
    match nix::fcntl::posix_fallocate(file.as_raw_fd(), 0, len) {
        Ok(()) | Err(Errno::EOPNOTSUPP | Errno::ENOSYS) => Ok(()),
        Err(e) => Err(os("posix_fallocate", target, e)),
    }
}

impl Segment {
    /// Creates the named POSIX shared-memory object `name` (`O_CREAT | O_EXCL`), sizes it to
    /// `len` rounded up to whole pages, and maps it shared. This handle owns the name and unlinks
    /// it on drop. The memory starts zeroed.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] for a bad name; [`Error::Os`] naming `shm_open` (`EEXIST` when the
    /// name is taken, `EACCES`), `fchmod`, `ftruncate` or `mmap`. On failure after the object was
    /// created, the name is unlinked again.
    pub fn create(name: &str, len: u64, opts: &SegmentOptions) -> Result<Segment> {
        validate_name(name)?;
        let dir = opts.resolved_dir();
        let opts = &opts.clone().shm_dir(&dir);
        let mut len = round_len(len, name)?;
        if opts.huge == HugePages::Explicit {
            if !huge::is_hugetlbfs(&dir) {
                return Err(huge::error(
                    name,
                    format!(
                        "the shm directory {} is not a hugetlbfs mount (use a System V, memfd or \
                         anonymous segment, or point the shm directory at hugetlbfs)",
                        dir.display()
                    ),
                ));
            }
            len = huge::round(len, name)?;
        }
        let fd = dir::open(
            &dir,
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
            Mode::from_bits_truncate(opts.mode),
        )?;
        let result = (|| {
            nix::sys::stat::fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(opts.mode))
                .map_err(|e| os("fchmod", name, e))?;
            let file = File::from(fd);
            file.set_len(len as u64)
                .map_err(|e| io_os("ftruncate", name, &e))?;
            reserve_space(&file, len, name)?;
            Self::map_fd(file.into(), len, Backing::Shm(name.to_string()), true, opts)
        })();
        if result.is_err() {
            let _ = dir::unlink(&dir, name);
        }
        let seg = result?;
        seg.unlink_on_drop.store(true, Ordering::Relaxed);
        Ok(seg)
    }

    /// Opens the existing named object `name` and maps all of it, read-write unless
    /// [`SegmentOptions::read_only`]. The handle does not own the name.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] naming `shm_open` (`ENOENT` when there is no such object, `EACCES`) or
    /// `mmap`. An object shorter than a segment, even an empty one, opens as it is (its creator
    /// may not have sized it yet): opening a ring in it ([`crate::Ring::open_in`]) waits for the
    /// creator, and only then reports [`Error::Truncated`].
    ///
    /// A System V segment's companion file ([`Segment::create_sysv`]) has the segment's name:
    /// opening it opens that System V segment.
    pub fn open(name: &str, opts: &SegmentOptions) -> Result<Segment> {
        validate_name(name)?;
        let dir = opts.resolved_dir();
        let opts = &opts.clone().shm_dir(&dir);
        let flags = if opts.read_only {
            OFlag::O_RDONLY
        } else {
            OFlag::O_RDWR
        };
        // O_NONBLOCK: a FIFO someone put in the shm directory would otherwise block the open
        // until a writer comes (no effect on a real shared memory object or file).
        let fd = dir::open(&dir, name, flags | OFlag::O_NONBLOCK, Mode::empty())?;
        let file = File::from(fd);
        if sysv::is_companion(&file) {
            return sysv::open_companion(file.into(), name, opts);
        }
        Self::open_fd_as(file.into(), Backing::Shm(name.to_string()), opts)
    }

    /// Creates an anonymous shared mapping of `len` bytes (rounded up to pages). A child
    /// `fork`ed after this call shares it; nothing else can reach it.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] naming `mmap` or `mlock`.
    pub fn anonymous(len: u64, opts: &SegmentOptions) -> Result<Segment> {
        let target = "anonymous";
        let mut len = round_len(len, target)?;
        let mut flags = MapFlags::MAP_SHARED;
        if opts.huge == HugePages::Explicit {
            if let Some(why) = huge::unavailable(len) {
                return Err(huge::error(target, why));
            }
            len = huge::round(len, target)?;
            flags |= MapFlags::MAP_HUGETLB;
        }
        let nz =
            NonZeroUsize::new(len).ok_or_else(|| Error::InvalidConfig("zero length".into()))?;
        if opts.prefault {
            flags |= MapFlags::MAP_POPULATE;
        }
        // SAFETY: a fresh anonymous mapping aliases nothing; we own it until `Map::drop`.
        let ptr = unsafe {
            nix::sys::mman::mmap_anonymous(
                None,
                nz,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                flags,
            )
        }
        .map_err(|e| match e {
            Errno::ENOMEM if opts.huge == HugePages::Explicit => {
                huge::refused(target, "mmap(MAP_HUGETLB)", libc::ENOMEM, len)
            }
            e => os("mmap", target, e),
        })?;
        let map = Map::Anon {
            ptr: ptr.cast(),
            len,
        };
        if opts.huge == HugePages::Transparent {
            huge::advise(map.ptr().as_ptr(), len);
        }
        if opts.mlock {
            // SAFETY: `ptr`/`len` describe the mapping just created.
            unsafe { nix::sys::mman::mlock(ptr, len) }.map_err(|e| os("mlock", target, e))?;
        }
        Ok(Segment {
            map,
            fd: None,
            backing: Backing::Anonymous,
            created: true,
            writable: true,
            unlink_on_drop: AtomicBool::new(false),
            in_ring: AtomicBool::new(false),
            opts: opts.clone(),
            sysv: None,
        })
    }

    /// Creates a `memfd_create` segment of `len` bytes (rounded up to pages), sealed with
    /// `F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL` so no holder of the fd can resize it and make
    /// another process fault. Pass [`Segment::fd`] to other processes (inheritance or
    /// `SCM_RIGHTS`), which open it with [`Segment::open_fd`].
    ///
    /// # Errors
    ///
    /// [`Error::Os`] naming `memfd_create`, `ftruncate`, `fcntl(F_ADD_SEALS)` or `mmap`.
    pub fn memfd(debug_name: &str, len: u64, opts: &SegmentOptions) -> Result<Segment> {
        let target = format!("memfd:{debug_name}");
        let mut len = round_len(len, &target)?;
        let mut mfd = nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC
            | nix::sys::memfd::MemFdCreateFlag::MFD_ALLOW_SEALING;
        if opts.huge == HugePages::Explicit {
            if let Some(why) = huge::unavailable(len) {
                return Err(huge::error(&target, why));
            }
            len = huge::round(len, &target)?;
            mfd |= nix::sys::memfd::MemFdCreateFlag::MFD_HUGETLB;
        }
        let cname = std::ffi::CString::new(debug_name).map_err(|_| Error::InvalidName {
            name: debug_name.into(),
            reason: "must not contain NUL",
        })?;
        let fd = nix::sys::memfd::memfd_create(&cname, mfd)
            .map_err(|e| os("memfd_create", &target, e))?;
        let file = File::from(fd);
        file.set_len(len as u64)
            .map_err(|e| io_os("ftruncate", &target, &e))?;
        reserve_space(&file, len, &target)?;
        nix::fcntl::fcntl(
            file.as_raw_fd(),
            FcntlArg::F_ADD_SEALS(
                SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL,
            ),
        )
        .map_err(|e| os("fcntl(F_ADD_SEALS)", &target, e))?;
        Self::map_fd(
            file.into(),
            len,
            Backing::Memfd(debug_name.to_string()),
            true,
            opts,
        )
    }

    /// Maps a segment from an fd received from another process or inherited: a memfd, a shm
    /// object or a file. A memfd must carry `F_SEAL_SHRINK` (else the sender could truncate it
    /// under us and make this process fault). The handle owns no name.
    ///
    /// # Errors
    ///
    /// [`Error::BadField`] naming `seals` for an unsealed memfd; [`Error::Os`] naming `fstat`,
    /// `fcntl(F_GET_SEALS)` or `mmap`. A short or empty object opens as it is, as for
    /// [`Segment::open`].
    pub fn open_fd(fd: OwnedFd, opts: &SegmentOptions) -> Result<Segment> {
        // What the fd is: `/memfd:NAME (deleted)` for a memfd, a path for a shm object or file.
        let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let backing = if let Some(rest) = link.strip_prefix("/memfd:") {
            let name = rest.strip_suffix(" (deleted)").unwrap_or(rest).to_string();
            let seals = nix::fcntl::fcntl(fd.as_raw_fd(), FcntlArg::F_GET_SEALS)
                .map_err(|e| os("fcntl(F_GET_SEALS)", &format!("memfd:{name}"), e))?;
            let seals = SealFlag::from_bits_truncate(seals);
            if !seals.contains(SealFlag::F_SEAL_SHRINK) {
                return Err(Error::BadField {
                    target: format!("memfd:{name}"),
                    field: "seals",
                    value: u32::try_from(seals.bits()).map_or(0, u64::from),
                    reason: "the memfd is not sealed against shrinking (F_SEAL_SHRINK)".into(),
                });
            }
            Backing::Memfd(name)
        } else if let Some(name) = link.strip_prefix(DEFAULT_SHM_DIR) {
            Backing::Shm(name.to_string())
        } else {
            Backing::File(PathBuf::from(link))
        };
        Self::open_fd_as(fd, backing, opts)
    }

    /// Creates a regular file at `path` (`O_CREAT | O_EXCL`, mode from the options), sized to
    /// `len` rounded up to pages, and maps it shared. The ring in it persists; this handle owns
    /// the path only if [`Segment::set_unlink_on_drop`] is set (by default a file is kept).
    ///
    /// # Errors
    ///
    /// [`Error::Os`] naming `open`, `ftruncate` or `mmap`.
    pub fn create_file(path: impl AsRef<Path>, len: u64, opts: &SegmentOptions) -> Result<Segment> {
        let path = path.as_ref();
        let target = path.display().to_string();
        let len = round_len(len, &target)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(opts.mode)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| io_os("open", &target, &e))?;
        let result = (|| {
            nix::sys::stat::fchmod(file.as_raw_fd(), Mode::from_bits_truncate(opts.mode))
                .map_err(|e| os("fchmod", &target, e))?;
            file.set_len(len as u64)
                .map_err(|e| io_os("ftruncate", &target, &e))?;
            reserve_space(&file, len, &target)?;
            Self::map_fd(
                file.into(),
                len,
                Backing::File(path.to_path_buf()),
                true,
                opts,
            )
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(path);
        }
        result
    }

    /// Opens an existing file segment at `path` and maps all of it.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] naming `open` or `mmap`. A short or empty file opens as it is, as for
    /// [`Segment::open`].
    pub fn open_file(path: impl AsRef<Path>, opts: &SegmentOptions) -> Result<Segment> {
        let path = path.as_ref();
        let target = path.display().to_string();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(!opts.read_only)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| io_os("open", &target, &e))?;
        Self::open_fd_as(file.into(), Backing::File(path.to_path_buf()), opts)
    }

    /// A zeroed, page-aligned heap segment of `len` bytes (rounded up to pages), private to this
    /// process: the same layout and code paths as shared memory, for tests and in-process use.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `len` is too large to allocate.
    pub fn heap(len: u64) -> Result<Segment> {
        let len = round_len(len, "heap")?;
        let layout = Layout::from_size_align(len, HEAP_ALIGN)
            .map_err(|_| Error::InvalidConfig(format!("heap: length {len} is too large")))?;
        // SAFETY: `layout` has a non-zero size (`round_len` gives at least one page).
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr)
            .ok_or_else(|| Error::InvalidConfig(format!("heap: cannot allocate {len} bytes")))?;
        Ok(Segment {
            map: Map::Heap { ptr, layout },
            fd: None,
            backing: Backing::Heap,
            created: true,
            writable: true,
            unlink_on_drop: AtomicBool::new(false),
            in_ring: AtomicBool::new(false),
            opts: SegmentOptions::default(),
            sysv: None,
        })
    }

    /// A heap segment holding a copy of `bytes` (padded with zeros to whole pages), presented
    /// as if another process had built it: opening a ring in it runs every validation. For
    /// fuzzing and corruption tests.
    ///
    /// # Errors
    ///
    /// As [`Segment::heap`].
    pub fn heap_from_bytes(bytes: &[u8]) -> Result<Segment> {
        let mut seg = Segment::heap(bytes.len() as u64)?;
        // SAFETY: the heap segment is at least `bytes.len()` long, freshly allocated and not yet
        // shared with anything, so this copy aliases nothing.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), seg.as_ptr(), bytes.len());
        }
        seg.created = false;
        Ok(seg)
    }

    fn open_fd_as(fd: OwnedFd, backing: Backing, opts: &SegmentOptions) -> Result<Segment> {
        let target = backing.target();
        let file = File::from(fd);
        let size = file
            .metadata()
            .map_err(|e| io_os("fstat", &target, &e))?
            .len();
        Self::map_fd(file.into(), Self::fit(size, &target)?, backing, false, opts)
    }

    /// An object size as a mapping length.
    fn fit(size: u64, target: &str) -> Result<usize> {
        usize::try_from(size)
            .ok()
            .filter(|v| isize::try_from(*v).is_ok())
            .ok_or_else(|| Error::BadField {
                target: target.to_string(),
                field: "object size",
                value: size,
                reason: "it does not fit this process's address space".into(),
            })
    }

    /// The object's current size (`fstat`), for a segment opened from a shm object, file or
    /// fd; `None` for one with nothing behind it that could change size (anonymous, heap).
    pub(crate) fn object_len(&self) -> Result<Option<u64>> {
        let Some(fd) = &self.fd else { return Ok(None) };
        nix::sys::stat::fstat(fd.as_raw_fd())
            .map(|st| Some(u64::try_from(st.st_size).unwrap_or(0)))
            .map_err(|e| os("fstat", &self.target(), e))
    }

    /// Whether the object behind this segment can still grow: not for memory with no fd
    /// (anonymous, heap), nor for a memfd sealed with `F_SEAL_GROW`.
    pub(crate) fn can_grow(&self) -> bool {
        let Some(fd) = &self.fd else { return false };
        if !matches!(self.backing, Backing::Memfd(_)) {
            return true;
        }
        nix::fcntl::fcntl(fd.as_raw_fd(), FcntlArg::F_GET_SEALS).map_or(true, |s| {
            !SealFlag::from_bits_truncate(s).contains(SealFlag::F_SEAL_GROW)
        })
    }

    /// This opened segment mapped again, all `len` bytes of it (the object grew since it was
    /// opened: its creator sized it), with the options it was opened with.
    pub(crate) fn remapped(mut self, len: u64) -> Result<Segment> {
        let target = self.target();
        let Some(fd) = self.fd.take() else {
            return Err(Error::InvalidConfig(format!(
                "{target}: only an fd-backed segment can be mapped again"
            )));
        };
        let len = Self::fit(len, &target)?;
        // The name, if any, stays with whoever owned it; `self` never did (it was opened).
        self.unlink_on_drop.store(false, Ordering::Relaxed);
        Self::map_fd(fd, len, self.backing.clone(), self.created, &self.opts)
    }

    fn map_fd(
        fd: OwnedFd,
        len: usize,
        backing: Backing,
        created: bool,
        opts: &SegmentOptions,
    ) -> Result<Segment> {
        let target = backing.target();
        if len == 0 {
            // An object not sized yet: mmap refuses a 0-byte mapping. Nothing to map (and so
            // nothing to lock or prefault) until the handshake maps it again.
            return Ok(Segment {
                map: Map::Empty,
                fd: Some(fd),
                backing,
                created,
                writable: created || !opts.read_only,
                unlink_on_drop: AtomicBool::new(false),
                in_ring: AtomicBool::new(false),
                opts: opts.clone(),
                sysv: None,
            });
        }
        let mut mo = memmap2::MmapOptions::new();
        mo.len(len);
        if opts.prefault {
            mo.populate();
        }
        let writable = created || !opts.read_only;
        let raw = if writable {
            mo.map_raw(&fd)
        } else {
            mo.map_raw_read_only(&fd)
        }
        .map_err(|e| io_os("mmap", &target, &e))?;
        if opts.huge == HugePages::Transparent {
            huge::advise(raw.as_mut_ptr(), len);
        }
        if opts.mlock {
            raw.lock().map_err(|e| io_os("mlock", &target, &e))?;
        }
        Ok(Segment {
            map: Map::Raw(raw),
            fd: Some(fd),
            backing,
            created,
            writable,
            unlink_on_drop: AtomicBool::new(false),
            in_ring: AtomicBool::new(false),
            opts: opts.clone(),
            sysv: None,
        })
    }

    /// Removes the name (shm object or file) now. Processes that have it mapped keep it; new
    /// opens fail. Afterwards this handle no longer unlinks on drop.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] naming `shm_unlink` or `unlink`. Backings without a name do nothing.
    pub fn unlink(&self) -> Result<()> {
        self.unlink_if_ours().map(drop)
    }

    /// Removes the name if it still refers to the object this handle maps; `Ok(true)` if this
    /// call removed it. The one place that unlinks (a drop, [`Segment::unlink`] and
    /// `liveness::remove_if_stale` all come here).
    pub(crate) fn unlink_if_ours(&self) -> Result<bool> {
        self.unlink_on_drop.store(false, Ordering::Relaxed);
        if !self.name_is_ours() {
            // The name now refers to another object (ours was unlinked and the name reused):
            // leave it alone.
            return Ok(false);
        }
        match &self.backing {
            Backing::SysV { .. } => self.remove_sysv(),
            Backing::Shm(name) => match dir::unlink(&self.opts.resolved_dir(), name) {
                Ok(()) => Ok(true),
                // Removed by someone else since the check.
                Err(nix::errno::Errno::ENOENT) => Ok(false),
                Err(e) => Err(os("shm_unlink", name, e)),
            },
            Backing::File(path) => match std::fs::remove_file(path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(io_os("unlink", &self.backing.target(), &e)),
            },
            _ => Ok(false),
        }
    }

    /// Whether the name still refers to the object this handle maps (same device and inode).
    /// A name that no longer exists, or that refers to another object, is not ours.
    pub(crate) fn name_is_ours(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        if self.sysv.is_some() {
            return self.sysv_name_is_ours();
        }
        let Some(fd) = &self.fd else { return true };
        let Ok(ours) = File::from(match fd.try_clone() {
            Ok(f) => f,
            Err(_) => return true,
        })
        .metadata() else {
            return true;
        };
        let theirs = match &self.backing {
            Backing::Shm(name) => std::fs::metadata(dir::path_in(&self.opts.resolved_dir(), name)),
            Backing::File(path) => std::fs::metadata(path),
            _ => return true,
        };
        match theirs {
            Ok(m) => m.dev() == ours.dev() && m.ino() == ours.ino(),
            Err(_) => false,
        }
    }

    /// Gives up ownership of the name: it outlives this handle (another process, or a later
    /// [`Segment::unlink`], removes it).
    pub fn keep(&self) {
        self.unlink_on_drop.store(false, Ordering::Relaxed);
    }

    /// Sets whether dropping this handle unlinks the name (shm object or file).
    pub fn set_unlink_on_drop(&self, yes: bool) {
        self.unlink_on_drop.store(yes, Ordering::Relaxed);
    }

    /// Whether dropping this handle unlinks the name.
    pub fn unlinks_on_drop(&self) -> bool {
        self.unlink_on_drop.load(Ordering::Relaxed)
    }

    /// Where the memory comes from.
    pub fn backing(&self) -> &Backing {
        &self.backing
    }

    /// The name used in error messages.
    pub fn target(&self) -> String {
        self.backing.target()
    }

    /// Whether this handle created the memory (so it is known to be fresh and zeroed).
    pub fn is_creator(&self) -> bool {
        self.created
    }

    /// Whether the mapping is writable.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// The mapped length in bytes (a whole number of pages for shared backings).
    #[inline]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the mapping is empty: only for an object opened while 0 bytes long, before its
    /// creator sized it (opening a ring in it waits for that).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The base address of the mapping (page-aligned). Another process may write to this
    /// memory at any time: treat what it holds as untrusted.
    #[inline]
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.ptr().as_ptr()
    }

    /// The file descriptor behind the mapping, if any (for passing a memfd to another process).
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(|f| f.as_fd())
    }

    /// The file the endpoints' OFD locks are taken on: the segment's own, or a System V
    /// segment's companion file.
    pub(crate) fn lock_fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd().or_else(|| self.companion_fd())
    }

    /// The 64-bit atomic at byte offset `off` of a writable segment that holds no ring (raw
    /// shared memory, e.g. a flag or a counter shared with another process). `None` if `off` is
    /// not 8-aligned or out of bounds, if the mapping is read-only (a store would fault), or if
    /// a ring has been laid out in or opened on the segment (its words belong to the ring).
    ///
    /// ```
    /// use std::sync::atomic::Ordering;
    /// let seg = shmbus_ring::Segment::heap(4096)?;
    /// let word = seg.atomic_u64(64).expect("aligned and in bounds");
    /// word.store(7, Ordering::Relaxed);
    /// assert_eq!(seg.atomic_u64(64).unwrap().load(Ordering::Relaxed), 7);
    /// assert!(seg.atomic_u64(3).is_none());
    /// # Ok::<(), shmbus_ring::Error>(())
    /// ```
    pub fn atomic_u64(&self, off: usize) -> Option<&AtomicU64> {
        if !self.writable || self.in_ring.load(Ordering::Relaxed) {
            return None;
        }
        self.word_u64(off)
    }

    /// The 32-bit atomic at byte offset `off`; `None` as for [`Segment::atomic_u64`].
    pub fn atomic_u32(&self, off: usize) -> Option<&AtomicU32> {
        if !self.writable || self.in_ring.load(Ordering::Relaxed) {
            return None;
        }
        self.word_u32(off)
    }

    /// Marks the segment as holding a ring: the public raw accessors refuse from now on.
    pub(crate) fn mark_in_ring(&self) {
        self.in_ring.store(true, Ordering::Relaxed);
    }

    /// The whole mapping as the crate's one path to shared memory, if it is at least `min_len`
    /// bytes long. On a read-only mapping, callers only load through it.
    pub(crate) fn raw_mem(&self, min_len: usize) -> Option<RawMem> {
        if self.len() < min_len {
            return None;
        }
        let base = std::ptr::NonNull::new(self.as_ptr())?;
        // SAFETY: the mapping is page-aligned (so 8-aligned) and `len()` bytes long; every ring
        // handle that keeps the returned view also keeps this segment (in an `Arc`), so the
        // mapping outlives the view.
        Some(unsafe { RawMem::from_raw(base, self.len()) })
    }

    /// The 64-bit word at `off`, if aligned and in bounds.
    fn word_u64(&self, off: usize) -> Option<&AtomicU64> {
        if off % 8 != 0 || off.checked_add(8)? > self.len() {
            return None;
        }
        // SAFETY: `off` is 8-aligned and in bounds of a page-aligned mapping that lives as long
        // as `&self`; the public accessors hand it out only for writable segments that hold no
        // ring, where the caller owns the meaning of the words.
        Some(unsafe { AtomicU64::from_ptr(self.as_ptr().add(off).cast()) })
    }

    /// The 32-bit word at `off`, if aligned and in bounds.
    fn word_u32(&self, off: usize) -> Option<&AtomicU32> {
        if off % 4 != 0 || off.checked_add(4)? > self.len() {
            return None;
        }
        // SAFETY: as for `word_u64`, with 4-byte alignment.
        Some(unsafe { AtomicU32::from_ptr(self.as_ptr().add(off).cast()) })
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if self.unlink_on_drop.load(Ordering::Relaxed) {
            let _ = self.unlink();
        }
    }
}

// SAFETY: a `Segment` is a mapping plus an fd; the memory is shared by design and only accessed
// through atomics or by the side the ring protocol hands it to.
unsafe impl Send for Segment {}
// SAFETY: as for `Send`; `&Segment` exposes only atomic views and raw pointers.
unsafe impl Sync for Segment {}
