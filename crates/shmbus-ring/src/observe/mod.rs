//! Passive observation, for tools (PROTOCOL §7.6): look at a ring without joining it.
//!
//! An [`Observer`] maps a segment **read-only** and never registers an endpoint, takes no
//! lock, bumps no counter and wakes no one: looking never changes what it looks at. It reads
//! the validated header, the info region, a [`Snapshot`] of the shared words (positions,
//! owner words, waiters, roster, [statistics counters](crate::stats)), the endpoint table
//! with each endpoint's vitality, and — through a [`Peek`] cursor — copies of the messages as
//! they pass, validated after the copy (steps V1–V4), without taking them from the consumers.
//!
//! Everything read is untrusted: the header is checked as an opener checks it, every position
//! and length read from the ring is bounded before use, and what fails is a typed error or a
//! [`Peeked::Missed`] gap, never an access outside the mapping.
//!
//! ```
//! use shmbus_ring::observe::{Observer, Peeked, Start};
//! use shmbus_ring::{RingKind, SegmentOptions, SpscConfig, SpscRing};
//! let name = format!("/shmbus-doc-observe-{}", std::process::id());
//! let ring = SpscRing::create_shm(&name, &SpscConfig::new(1 << 12), &SegmentOptions::default())?;
//! let mut tx = ring.producer()?;
//! let obs = Observer::open(&name)?;
//! assert_eq!(obs.kind(), RingKind::Spsc);
//! let mut peek = obs.peek(Start::Newest);
//! tx.try_push(b"hello")?;
//! let mut buf = Vec::new();
//! assert!(matches!(peek.next(&mut buf)?, Peeked::Message { .. }));
//! assert_eq!(buf, b"hello");
//! assert_eq!(obs.endpoints()?.len(), 1); // the producer; the observer did not register
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod peek;

pub use peek::{Peek, Peeked, Start};

use std::time::Duration;

use crate::conv::offset;
use crate::error::{Error, Result};
use crate::handshake::{read_header, OpenOptions};
use crate::info::Info;
use crate::layout::{
    RingKind, SegmentHeader, BLOCK_OWNER, BLOCK_POSITION, BLOCK_SOLE, BLOCK_WAITERS,
    BLOCK_WAKE_SEQ, CONSUMER_BLOCK, DATA_OFFSET, HEADER_LEN, MAGIC, PRODUCER_BLOCK, RING_FLAG_SOLE,
    ROSTER, ROSTER_CONSUMERS, ROSTER_PRODUCERS,
};
use crate::liveness::{EndpointInfo, Vitality};
use crate::segment::{Segment, SegmentOptions};
use crate::stats::Counters;
use crate::sync::{Memory, Ordering, RawMem};
use crate::{MpmcRing, SpscRing};

/// How long [`Observer::open`] waits for a segment still being built: briefly (a tool lists
/// what is there; a segment not ready yet is reported, not waited for).
const READY_WAIT: Duration = Duration::from_millis(50);

/// The ring an observer looks at, opened read-only.
#[derive(Debug)]
enum Rings {
    Spsc(SpscRing),
    Mpmc(MpmcRing),
    Broadcast(crate::BroadcastRing),
}

/// A read-only view of one ring (module docs).
#[derive(Debug)]
pub struct Observer {
    ring: Rings,
}

/// The shared words of a ring at one moment (each loaded Relaxed, V4: a snapshot for
/// display, whose words other processes move meanwhile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// The producer block's position: SPSC the published `tail` (bytes), MPMC the tail hint
    /// (messages).
    pub tail: u64,
    /// The consumer block's position: SPSC `head` (bytes), MPMC the head hint (messages).
    pub head: u64,
    /// Messages in the ring (SPSC: bounded rings only; MPMC: tail hint − head hint).
    pub len: Option<u64>,
    /// SPSC bounded rings: data records committed (`sent`, producer block +32); else 0.
    pub sent: u64,
    /// SPSC bounded rings: data records consumed (`taken`, consumer block +32); else 0.
    pub taken: u64,
    /// SPSC owner words `[producer, consumer]` (`tag | gen << 8`, 0 for none); 0 on MPMC.
    pub owners: [u32; 2],
    /// MPMC sole words `[producers, consumers]` (layout 1.6, PROTOCOL §5.7): 0 for none, the
    /// tag of the endpoint alone in the role, or [`SOLE_SHARED`](crate::layout::SOLE_SHARED)
    /// set while the role is shared (with a join count in
    /// [`SOLE_JOINS`](crate::layout::SOLE_JOINS) on a layout 1.8 `RECLAIM` ring, whose endpoint
    /// left alone clears it); 0 on other rings and on MPMC rings without the `SOLE` flag.
    pub sole: [u64; 2],
    /// Wake sequences `[data published, space freed]`.
    pub wake_seq: [u64; 2],
    /// Waiters `[consumers asleep for data, producers asleep for space]`.
    pub waiters: [u64; 2],
    /// Roster bitmaps `[producers, consumers]` (bit 63: "ever attached").
    pub roster: [u64; 2],
    /// Statistics counters `[producer block, consumer block]` (layout 1.3).
    pub stats: [Counters; 2],
}

impl Observer {
    /// Opens the named POSIX shm segment read-only and checks it as an opener would (header,
    /// then the ring kind's geometry), waiting at most 50 ms for a segment still being built.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] naming `shm_open` (`ENOENT`: no such segment; `EACCES`: permission
    /// denied) or `mmap`; [`Error::InvalidName`]; [`Error::Truncated`] or [`Error::BadMagic`]
    /// for an object that is not a shmbus segment; [`Error::WrongKind`] for an unknown ring
    /// kind; [`Error::NotReady`], [`Error::MajorVersion`], [`Error::AbiMismatch`],
    /// [`Error::BadField`] as [`crate::Ring::open_in`].
    pub fn open(name: &str) -> Result<Observer> {
        Observer::open_segment(Segment::open(name, &SegmentOptions::new().read_only(true))?)
    }

    /// Observes a segment already mapped (read-only or not: the observer only loads).
    ///
    /// # Errors
    ///
    /// As [`Observer::open`], without the `shm_open` errors.
    pub fn open_segment(seg: Segment) -> Result<Observer> {
        if seg.len() < HEADER_LEN as usize {
            return Err(Error::Truncated {
                target: seg.target(),
                actual: crate::conv::wide(seg.len()),
                needed: DATA_OFFSET,
            });
        }
        let h = read_header(&seg)?;
        if h.magic != MAGIC {
            return Err(Error::BadMagic {
                target: seg.target(),
                found: h.magic,
                expected: MAGIC,
            });
        }
        let opts = OpenOptions {
            ready_timeout: READY_WAIT,
            expect: None,
        };
        let ring = match RingKind::from_raw(h.ring_kind) {
            Some(RingKind::Spsc) => Rings::Spsc(SpscRing::open_in(seg, &opts)?),
            Some(RingKind::Mpmc) => Rings::Mpmc(MpmcRing::open_in(seg, &opts)?),
            Some(RingKind::Broadcast) => {
                Rings::Broadcast(crate::BroadcastRing::open_in(seg, &opts)?)
            }
            None => {
                return Err(Error::WrongKind {
                    target: seg.target(),
                    found: RingKind::describe(h.ring_kind),
                    expected: "SPSC (1), MPMC (2) or broadcast (3)".into(),
                })
            }
        };
        Ok(Observer { ring })
    }

    /// The ring's kind.
    pub fn kind(&self) -> RingKind {
        match self.ring {
            Rings::Spsc(_) => RingKind::Spsc,
            Rings::Mpmc(_) => RingKind::Mpmc,
            Rings::Broadcast(_) => RingKind::Broadcast,
        }
    }

    /// The header, as validated at open.
    pub fn header(&self) -> &SegmentHeader {
        match &self.ring {
            Rings::Spsc(r) => r.header(),
            Rings::Mpmc(r) => r.header(),
            Rings::Broadcast(r) => r.header(),
        }
    }

    /// The segment.
    pub fn segment(&self) -> &Segment {
        match &self.ring {
            Rings::Spsc(r) => r.segment(),
            Rings::Mpmc(r) => r.segment(),
            Rings::Broadcast(r) => r.segment(),
        }
    }

    /// The info region (type name, codec, name, creator), if the creator wrote one.
    ///
    /// # Errors
    ///
    /// [`Error::BadField`] naming `info` when it does not decode.
    pub fn info(&self) -> Result<Option<Info>> {
        self.check_size()?;
        match &self.ring {
            Rings::Spsc(r) => r.info(),
            Rings::Mpmc(r) => r.info(),
            Rings::Broadcast(r) => r.info(),
        }
    }

    /// The largest message, in bytes (less the checksum trailer on a checksum ring).
    pub fn max_message(&self) -> usize {
        match &self.ring {
            Rings::Spsc(r) => r.max_message(),
            Rings::Mpmc(r) => r.max_message(),
            Rings::Broadcast(r) => r.max_message(),
        }
    }

    /// The most messages the ring holds (its bound, or an MPMC ring's slot count); `None`
    /// for an unbounded SPSC ring.
    pub fn capacity(&self) -> Option<usize> {
        match &self.ring {
            Rings::Spsc(r) => r.capacity(),
            Rings::Mpmc(r) => r.capacity(),
            Rings::Broadcast(r) => r.capacity(),
        }
    }

    /// Whether messages carry a checksum trailer (which [`Peek`] strips, unverified).
    pub fn checksum(&self) -> bool {
        match &self.ring {
            Rings::Spsc(r) => r.checksum(),
            Rings::Mpmc(r) => r.checksum(),
            Rings::Broadcast(r) => r.checksum(),
        }
    }

    /// The registered endpoints and their vitality (PROTOCOL §7.2, judged from outside).
    ///
    /// # Errors
    ///
    /// [`Error::Truncated`] (not after a successful open).
    pub fn endpoints(&self) -> Result<Vec<EndpointInfo>> {
        crate::liveness::endpoints(self.segment())
    }

    /// Whether the creating process still runs (pid and start time; same PID namespace).
    pub fn creator(&self) -> Vitality {
        let h = self.header();
        crate::liveness::inspect::creator_vitality(h.creator_pid, h.created_unix_ns)
    }

    /// Whether the object is still as long as its header says: another process can shrink it
    /// (`ftruncate`) while it is mapped, and a load past the new end is `SIGBUS`. Checked
    /// (`fstat`) before every peek and info read, and by tools before a snapshot; a shrink
    /// between the check and the loads remains (PROTOCOL §7.6), but a segment already cut
    /// short is a typed error instead of a dead tool.
    ///
    /// # Errors
    ///
    /// [`Error::Truncated`] with the object's current size.
    pub fn check_size(&self) -> Result<()> {
        let seg = self.segment();
        let Some(fd) = seg.fd() else {
            // Not a file: nobody can shrink it.
            return Ok(());
        };
        let actual = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&fd))
            .ok()
            .and_then(|st| u64::try_from(st.st_size).ok())
            .unwrap_or(0);
        let needed = self.header().total_len;
        if actual < needed {
            return Err(Error::Truncated {
                target: seg.target(),
                actual,
                needed,
            });
        }
        Ok(())
    }

    /// The memory of the first page and the ring data (checked at open).
    fn mem(&self) -> &RawMem {
        match &self.ring {
            Rings::Spsc(r) => &r.inner.mem,
            Rings::Mpmc(r) => &r.inner.mem,
            Rings::Broadcast(r) => &r.inner.mem,
        }
    }

    /// Loads the shared words (V4: each Relaxed; a snapshot for display).
    pub fn snapshot(&self) -> Snapshot {
        let mem = self.mem();
        // V4: Relaxed, every word: statistics and positions for display; nothing read here
        // is used to read other memory (the peek validates its own positions).
        // SAFETY: every word below is an aligned word of the first page, which `mem` holds.
        let w = |off: u64| unsafe { mem.load(offset(off), Ordering::Relaxed) };
        // SAFETY: as above (the owner words are 4-byte words, never accessed as 8).
        let w32 = |off: u64| unsafe { mem.load_u32(offset(off), Ordering::Relaxed) };
        let spsc = self.kind() == RingKind::Spsc;
        let count = crate::layout::BLOCK_COUNT;
        // `taken` before `sent` and head before tail, as C5 and M20 (the same snapshot order).
        let taken = if spsc { w(CONSUMER_BLOCK + count) } else { 0 };
        let head = w(CONSUMER_BLOCK + BLOCK_POSITION);
        let sent = if spsc { w(PRODUCER_BLOCK + count) } else { 0 };
        let tail = w(PRODUCER_BLOCK + BLOCK_POSITION);
        let len = match &self.ring {
            Rings::Spsc(r) => r.len(),
            Rings::Mpmc(r) => r.len(),
            Rings::Broadcast(r) => r.len(),
        };
        Snapshot {
            tail,
            head,
            len: len.map(crate::conv::wide),
            sent,
            taken,
            owners: if spsc {
                [
                    w32(PRODUCER_BLOCK + BLOCK_OWNER),
                    w32(CONSUMER_BLOCK + BLOCK_OWNER),
                ]
            } else {
                [0, 0]
            },
            sole: if self.header().ring_flags & RING_FLAG_SOLE != 0 {
                [
                    w(PRODUCER_BLOCK + BLOCK_SOLE),
                    w(CONSUMER_BLOCK + BLOCK_SOLE),
                ]
            } else {
                [0, 0]
            },
            wake_seq: [
                w(PRODUCER_BLOCK + BLOCK_WAKE_SEQ),
                w(CONSUMER_BLOCK + BLOCK_WAKE_SEQ),
            ],
            waiters: [
                w(PRODUCER_BLOCK + BLOCK_WAITERS),
                w(CONSUMER_BLOCK + BLOCK_WAITERS),
            ],
            roster: [w(ROSTER + ROSTER_PRODUCERS), w(ROSTER + ROSTER_CONSUMERS)],
            stats: crate::stats::read(self.segment()).unwrap_or_default(),
        }
    }

    /// A cursor over the messages as they pass, starting at `start`; it copies each message
    /// out and never takes it from the consumers ([`Peek`]).
    pub fn peek(&self, start: Start) -> Peek<'_> {
        Peek::new(self, start)
    }

    /// The gate of a broadcast ring's publisher at its last rescan (its slowest tethered
    /// subscriber's position), 0 for other kinds.
    fn broadcast_gate(&self) -> u64 {
        match &self.ring {
            // SAFETY: an aux word of the validated geometry. Relaxed: a snapshot.
            Rings::Broadcast(r) => unsafe {
                r.inner.mem.load(
                    r.inner.g.aux(crate::broadcast::aux::GATE),
                    Ordering::Relaxed,
                )
            },
            _ => 0,
        }
    }

    /// The bytes of the ring data in use: SPSC `tail − head` (bytes, clamped to the
    /// capacity), MPMC messages × slot stride, broadcast `tail − gate` (what the slowest
    /// tethered subscriber has yet to read).
    pub fn used_bytes(&self) -> u64 {
        let s = self.snapshot();
        let h = self.header();
        match self.kind() {
            RingKind::Spsc => s.tail.saturating_sub(s.head).min(h.capacity),
            RingKind::Broadcast => s.tail.saturating_sub(self.broadcast_gate()).min(h.capacity),
            RingKind::Mpmc => {
                let stride = h.data_len / h.capacity.max(1);
                s.tail.saturating_sub(s.head).min(h.capacity) * stride
            }
        }
    }
}

/// Whether this kernel lets the process call `futex_waitv(2)` (Linux 5.16+, not refused by a
/// seccomp filter), which a select over several rings sleeps in ([`crate::select`]); the
/// error names the errno otherwise. Asks the kernel with an empty list, which a kernel that
/// has the call refuses with `EINVAL` and one that does not with `ENOSYS`.
///
/// # Errors
///
/// The errno's name and what it means, when the call is unavailable.
///
/// ```
/// // Either answer is fine; the call never sleeps.
/// let _ = shmbus_ring::observe::futex_waitv_support();
/// ```
pub fn futex_waitv_support() -> std::result::Result<(), String> {
    use rustix::thread::futex::{waitv, WaitvFlags};
    match waitv(
        &[],
        WaitvFlags::empty(),
        None,
        rustix::time::ClockId::Monotonic,
    ) {
        Ok(_) | Err(rustix::io::Errno::INVAL) => Ok(()),
        Err(rustix::io::Errno::NOSYS) => {
            Err("ENOSYS: the kernel has no futex_waitv (Linux < 5.16)".into())
        }
        Err(rustix::io::Errno::PERM) => Err("EPERM: a seccomp filter refuses futex_waitv".into()),
        Err(e) => Err(format!("errno {}", e.raw_os_error())),
    }
}
