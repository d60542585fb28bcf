//! Doorbells: how an endpoint waits for its ring without a thread (PROTOCOL §6.1, layout 1.3).
//!
//! A futex cannot be polled by an event loop, so an asynchronous waiter owns a [`Bell`]: a
//! non-blocking Unix datagram socket bound to a path in the bell directory, whose file
//! descriptor any event loop can watch. The endpoint records the bell's id in its entry of the
//! endpoint table (B0). To wait, it **arms**: it sets its bit in the direction's bell bitmap
//! (B1) and issues a `SeqCst` fence (B2), then checks the ring once more (B3). Every publishing
//! step already ends with N1 (a `SeqCst` fence); after it, a notifier that finds bits in the
//! bitmap takes them all in one RMW (N3) and sends one datagram to each armed bell. So a parked
//! waiter is woken by the kernel once per park, only while it is parked: nothing is sent while
//! messages flow and nobody waits, and a bell's socket never holds more than a few datagrams.
//!
//! The bell directory is `/dev/shm`, or the directory named by the environment variable
//! `SHMBUS_DIR`; every process of a ring must agree on it (they share `/dev/shm` whenever they
//! share POSIX shared memory). Bells are Unix datagram sockets rather than FIFOs: a send to a
//! bell whose owner died fails with `ECONNREFUSED`/`ENOENT` instead of raising `SIGPIPE`.

use crate::endpoint::{Consumer, Producer};
use crate::layout::{BLOCK_BELLS, CONSUMER_BLOCK, ENDPOINT_BELL, PRODUCER_BLOCK};
use crate::liveness::entry_field;
use crate::ring::Kind;
use crate::sync::{Memory, Ordering};
use crate::wait::{Barrier, Direction};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;

/// The directory bells live in: the process's shm directory ([`crate::segment::shm_dir`]:
/// `$SHMBUS_DIR`, else `/dev/shm`).
#[must_use]
pub fn directory() -> PathBuf {
    crate::segment::shm_dir()
}

/// The path of the bell with id `id` in `dir`. Any id read from shared memory gives a name in
/// `dir` (16 hex digits): a hostile peer can name no other file.
#[must_use]
pub fn path_of(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("shmbus-bell.{id:016x}"))
}

/// A waiter's doorbell: a bound, non-blocking Unix datagram socket. Its file descriptor
/// becomes readable when a notifier rings it; [`drain`](Bell::drain) empties it. Dropping the
/// bell closes the socket and removes its path.
///
/// ```
/// use shmbus_ring::bell::Bell;
/// let bell = Bell::new()?;
/// assert!(!bell.drain()); // nothing rang yet
/// shmbus_ring::bell::ring(bell.id());
/// assert!(bell.drain());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Bell {
    sock: UnixDatagram,
    name: BellName,
}

/// A bell's id and socket path; dropping it removes the path (so that notifiers get `ENOENT`
/// rather than ring a closed socket). Held apart from the socket by code that hands the
/// socket to an event loop ([`Bell::into_parts`]).
#[derive(Debug)]
pub struct BellName {
    id: u64,
    path: PathBuf,
    /// The process that bound it: only that process removes the path (a `fork`ed child that
    /// drops an inherited bell leaves its parent's alone).
    pid: u32,
}

impl BellName {
    /// The id recorded in the endpoint table (never 0).
    #[must_use]
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The socket's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for BellName {
    fn drop(&mut self) {
        if std::process::id() == self.pid {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Bell {
    /// Binds a new bell in the bell directory ([`directory`]).
    ///
    /// # Errors
    ///
    /// The socket or bind error (e.g. the directory does not exist or is not writable).
    pub fn new() -> io::Result<Bell> {
        let dir = directory();
        let mut last = None;
        for _ in 0..16 {
            let id = fresh_id();
            let path = path_of(&dir, id);
            match UnixDatagram::bind(&path) {
                Ok(sock) => {
                    sock.set_nonblocking(true)?;
                    return Ok(Bell {
                        sock,
                        name: BellName {
                            id,
                            path,
                            pid: std::process::id(),
                        },
                    });
                }
                // Another bell has this id (vanishingly rare): draw another.
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrInUse)))
    }

    /// The id recorded in the endpoint table (never 0).
    #[must_use]
    pub fn id(&self) -> u64 {
        self.name.id
    }

    /// The socket's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.name.path
    }

    /// The socket (non-blocking), to hand to an event loop, and the name, which keeps the
    /// path until dropped.
    #[must_use]
    pub fn into_parts(self) -> (UnixDatagram, BellName) {
        (self.sock, self.name)
    }

    /// Reads every datagram waiting on the socket; whether there was any.
    pub fn drain(&self) -> bool {
        let mut buf = [0u8; 8];
        let mut any = false;
        while self.sock.recv(&mut buf).is_ok() {
            any = true;
        }
        any
    }
}

impl AsRawFd for Bell {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

impl AsFd for Bell {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

/// A fresh id: this process's pid in the high 32 bits (the reaper removes a dead holder's bell
/// only if it names the holder's pid, [`creator`]), and in the low 32 bits a nonzero mix of the
/// time and a counter by a randomly keyed hash. Uniqueness is checked by the exclusive bind,
/// not assumed.
fn fresh_id() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    // Relaxed: a process-local counter; only distinctness matters.
    h.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    let low = h.finish() & 0xffff_ffff;
    u64::from(std::process::id()) << 32 | low.max(1)
}

/// The pid of the process that made bell `id` (as that process numbered itself).
#[must_use]
pub fn creator(id: u64) -> u32 {
    u32::try_from(id >> 32).unwrap_or(0)
}

/// Rings the bell with id `id`: one datagram, best effort. A bell whose owner is gone
/// (`ENOENT`, `ECONNREFUSED`) or whose socket is full (`EAGAIN`: it has datagrams to read
/// already) needs nothing more.
///
/// Only a socket is rung: a name that is a symbolic link (a hostile peer's, pointing at some
/// other socket) is left alone — checked just before the send, so a peer that can replace the
/// name in between still could; the bell directory should not be writable by peers that are
/// not trusted with the ring.
pub fn ring(id: u64) {
    static SENDER: OnceLock<UnixDatagram> = OnceLock::new();
    let sender = if let Some(s) = SENDER.get() {
        s
    } else {
        // A failure (say, EMFILE for a moment) is not cached: the next ring tries again.
        let Ok(s) = UnixDatagram::unbound() else {
            return;
        };
        if s.set_nonblocking(true).is_err() {
            return;
        }
        SENDER.get_or_init(|| s)
    };
    let path = path_of(&directory(), id);
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_socket()) {
        // std sends with MSG_NOSIGNAL.
        let _ = sender.send_to(&[1], path);
    }
}

/// Removes the socket path of bell `id`, which the dead endpoint of process `pid` left (the
/// reaper, §7.3): only if `id` names `pid` as its creator and nothing is bound to the socket
/// any more ([`remove_if_closed`]). An id in a dead entry may be a live process's (a bell
/// shared between endpoints, or a previous holder's, left in an entry whose next registrant
/// died before its L3): that bell stays.
pub(crate) fn remove(id: u64, pid: u32) {
    if id != 0 && creator(id) == pid {
        remove_if_closed(id);
    }
}

/// Removes the path of bell `id` if no socket is bound to it any more: a `connect` to it is
/// refused (`ECONNREFUSED`) once its owner closed it or died. A live bell is never removed.
pub(crate) fn remove_if_closed(id: u64) {
    let path = path_of(&directory(), id);
    let Ok(probe) = UnixDatagram::unbound() else {
        return;
    };
    if matches!(probe.connect(&path), Err(e) if e.kind() == io::ErrorKind::ConnectionRefused) {
        let _ = std::fs::remove_file(&path);
    }
}

/// When this process lets go of a ring: the bells of its table whose owners are gone (an
/// asynchronous endpoint killed with nobody left to reap its entry) are removed, so that they
/// do not outlive the ring. Cold, at most one `connect` per recorded id.
///
/// # Safety
///
/// - `mem` holds the endpoint table.
pub(crate) unsafe fn sweep<M: Memory>(mem: &M) {
    for index in 0..crate::layout::MAX_ENDPOINTS {
        // Relaxed: a hint; the connect decides.
        // SAFETY: the caller's contract.
        let id = unsafe { mem.load(id_word(index), Ordering::Relaxed) };
        if id != 0 {
            remove_if_closed(id);
        }
    }
}

/// Whoever may open the segment may ring its endpoints' bells: a bell this process made gets
/// the read and write bits of the segment's file mode (a ring shared between users, created
/// with mode `0o666`, is rung by all of them). Best effort: a segment without a file (heap,
/// anonymous) leaves the bell as bound (the umask's mode, the owner's).
fn share_like_segment(id: u64, seg: &crate::Segment) {
    use std::os::unix::fs::PermissionsExt;
    if creator(id) != std::process::id() {
        return;
    }
    let Some(mode) = seg
        .fd()
        .and_then(|fd| fd.try_clone_to_owned().ok())
        .and_then(|fd| std::fs::File::from(fd).metadata().ok())
        .map(|m| m.permissions().mode() & 0o666)
    else {
        return;
    };
    let _ = std::fs::set_permissions(
        path_of(&directory(), id),
        std::fs::Permissions::from_mode(mode | 0o600),
    );
}

/// The bitmap of armed bells of direction `dir`.
pub(crate) fn bitmap(dir: Direction) -> usize {
    crate::conv::offset(match dir {
        Direction::Data => PRODUCER_BLOCK + BLOCK_BELLS,
        Direction::Space => CONSUMER_BLOCK + BLOCK_BELLS,
    })
}

/// The offset of entry `index`'s bell id.
pub(crate) fn id_word(index: u64) -> usize {
    entry_field(index, ENDPOINT_BELL)
}

/// N3, after N1's fence (`wait::notify`): takes every armed bit of `bells` and rings each
/// entry's bell. Cold: only an asynchronous waiter sets a bit.
///
/// # Safety
///
/// - `bells` is the aligned bitmap word and `table + 64 × i` entry `i`'s bell id word, for
///   every `i` below `entries`, all in `mem`.
#[cold]
#[inline(never)]
pub(crate) unsafe fn ring_armed<M: Memory>(mem: &M, bells: usize, table: usize, entries: u64) {
    // N3: Acquire; pairs with an armer's Release (B1): the bell id it stored (B0) before
    // arming is visible to the load below. An RMW, so each arm is taken by one notifier: one
    // datagram per park.
    // SAFETY: the caller's contract.
    let armed = unsafe { mem.fetch_and(bells, 0, Ordering::Acquire) };
    let mut bits = armed;
    while bits != 0 {
        let i = u64::from(bits.trailing_zeros());
        bits &= bits - 1;
        // Bits past the table are a hostile peer's: ignore them.
        if i < entries {
            let off = table + crate::conv::offset(i * crate::layout::ENDPOINT_SIZE);
            // Relaxed: ordered by the Acquire above.
            // SAFETY: the caller's contract (`i < entries`).
            let id = unsafe { mem.load(off, Ordering::Relaxed) };
            if id != 0 {
                mem.ring_bell(id);
            }
        }
    }
}

/// B1–B2 on `mem` for entry `index` waiting in direction `dir`, on a ring whose notifiers
/// use `barrier`. `false` if B2 could not force the notifiers' barrier (membarrier mode, the
/// call failed): a notifier may then miss the bit, so the caller disarms and polls.
///
/// # Safety
///
/// - `bells` is the aligned bitmap word of `dir` in `mem`.
pub(crate) unsafe fn arm<M: Memory>(mem: &M, bells: usize, index: u64, barrier: Barrier) -> bool {
    // B1: Release; pairs with N3's Acquire: the bell id stored at B0 is seen by the notifier
    // that takes this bit.
    // SAFETY: the caller's contract.
    unsafe { mem.fetch_or(bells, 1 << index, Ordering::Release) };
    // B2: as P3 (and P3m) does (PROTOCOL §6, §6.3): either the notifier's N3 finds the bit,
    // or the caller's re-check (B3) finds what it published.
    crate::wait::sleeper_barrier(mem, barrier)
}

/// B4: takes entry `index`'s bit back; whether it was still set (if not, a notifier took it
/// and a datagram is on its way: a spurious wake-up to come, which draining absorbs).
///
/// # Safety
///
/// - As for [`arm`].
pub(crate) unsafe fn disarm<M: Memory>(mem: &M, bells: usize, index: u64) -> bool {
    // B4: Relaxed: only the bit matters; nothing is published by giving it back.
    // SAFETY: the caller's contract.
    let before = unsafe { mem.fetch_and(bells, !(1 << index), Ordering::Relaxed) };
    before & (1 << index) != 0
}

macro_rules! bell_methods {
    ($endpoint:ident, $dir:expr, $what:literal) => {
        impl<K: Kind> $endpoint<K> {
            /// Records `bell` as this endpoint's doorbell (B0, PROTOCOL §6.1): notifiers
            /// ring it while this endpoint is armed ([`arm_bell`](Self::arm_bell)). Replaces
            /// any bell recorded before.
            pub fn set_bell(&mut self, bell: &Bell) {
                self.set_bell_id(bell.id());
            }

            /// [`set_bell`](Self::set_bell) by id, for a bell taken apart
            /// ([`Bell::into_parts`]): `id` is [`BellName::id`].
            pub fn set_bell_id(&mut self, id: u64) {
                let word = id_word(self.att.index());
                // B0: Relaxed; published by B1's Release.
                // SAFETY: the entry is ours (registered) and in the first page.
                unsafe { self.att.mem.store(word, id, Ordering::Relaxed) };
                share_like_segment(id, &self.att.ring.inner.seg);
            }

            /// Arms this endpoint's bell (B1–B2): until it is disarmed or a notifier rings
            #[doc = concat!("it, the next ", $what, " rings it. Then check the ring once more")]
            /// (B3) before waiting on the bell's descriptor: what was published before the
            /// arm is not rung for. `false` if the ring does not notify (no `NOTIFY` flag),
            /// or is in membarrier mode and this process cannot call membarrier (the bell is
            /// disarmed again): then nothing rings, and the caller must poll.
            pub fn arm_bell(&mut self) -> bool {
                let Some(wake) = self.att.ring.inner.wake else {
                    return false;
                };
                // SAFETY: the bitmap word is in the first page, which `mem` holds.
                if unsafe { arm(&self.att.mem, bitmap($dir), self.att.index(), wake.barrier) } {
                    return true;
                }
                // B2 failed (membarrier mode without membarrier): nothing may ring; poll.
                // SAFETY: as above.
                unsafe { disarm(&self.att.mem, bitmap($dir), self.att.index()) };
                false
            }

            /// Disarms this endpoint's bell (B4), after its re-check succeeded or when it
            /// gives up waiting. Whether it was still armed: if not, a notifier rang it, and
            /// its descriptor will be readable once more (drain it then).
            pub fn disarm_bell(&mut self) -> bool {
                if self.att.ring.inner.wake.is_none() {
                    return false;
                }
                // SAFETY: as in `arm_bell`.
                unsafe { disarm(&self.att.mem, bitmap($dir), self.att.index()) }
            }
        }
    };
}

bell_methods!(Consumer, Direction::Data, "publication of a message");
bell_methods!(Producer, Direction::Space, "release of space");
