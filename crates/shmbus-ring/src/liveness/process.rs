//! Process identity as Linux tells it: PID namespaces, start times, OFD locks on the
//! segment's file (a System V segment's companion file), and the coarse clock the probes are
//! paced by.

use super::{entry_field, LockTry, Vitals};
use crate::layout::ENDPOINT_STATE;
use crate::segment::Segment;
use crate::wait::Pace;
use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::OnceLock;
use std::time::Duration;

/// The operating system's answers for one segment (the one whose file carries the locks).
#[derive(Clone, Copy)]
pub(crate) struct Os<'a> {
    seg: &'a Segment,
}

impl<'a> Os<'a> {
    /// The answers for endpoints of `seg`.
    pub(crate) fn new(seg: &'a Segment) -> Self {
        Os { seg }
    }
}

impl Vitals for Os<'_> {
    fn pid(&self) -> u32 {
        std::process::id()
    }

    fn pidns(&self) -> u64 {
        own_pidns()
    }

    fn start_time(&self, pid: u32) -> Option<u64> {
        start_time(pid)
    }

    fn pid_exists(&self, pid: u32) -> Option<bool> {
        pid_exists(pid)
    }

    fn take_lock(&self, index: u64) -> LockTry {
        take_lock(self.seg, lock_byte(index))
    }

    fn release_lock(&self, _index: u64, file: Option<File>) {
        // Closing the last descriptor of the open file description releases its lock.
        drop(file);
    }

    fn lock_held(&self, index: u64) -> Option<bool> {
        lock_held(self.seg.lock_fd()?, lock_byte(index))
    }

    fn pause(&self) {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }

    #[inline]
    fn step(&self, name: &'static str) -> bool {
        crate::crashpoint::hit(name);
        true
    }
}

/// The byte of the segment's file an endpoint locks: the first byte of its entry.
fn lock_byte(index: u64) -> u64 {
    entry_field(index, ENDPOINT_STATE) as u64
}

/// The inode of this process's PID namespace, 0 if unknown: no `/proc`, or a `/proc` mounted
/// from another PID namespace (its `self` is not our pid), where pids cannot be checked. Read
/// each time (no cache): a `fork`ed child may be in a new namespace with any pid, even its
/// parent's. Two `readlink`s (no file is opened): a probe of a live peer costs about half what
/// it did when `/proc/self/stat` was read for the pid.
pub(crate) fn own_pidns() -> u64 {
    read_pidns(std::process::id())
}

/// [`own_pidns`] for this process, whose pid is `pid`.
fn read_pidns(pid: u32) -> u64 {
    // `/proc/self` is a link to our pid as that `/proc`'s namespace numbers it.
    let proc_is_ours = std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str()?.parse::<u32>().ok())
        == Some(pid);
    if !proc_is_ours {
        return 0;
    }
    std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .and_then(|p| {
            let s = p.to_string_lossy().into_owned();
            s.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok()
        })
        .unwrap_or(0)
}

/// The start time (clock ticks after boot) of process `pid` in this PID namespace; `None` if
/// there is no such process (or `/proc` cannot say).
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 2 (comm) may contain spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // Field 3 is the first after ')'; field 22 (starttime) is the 20th.
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// Whether a process with `pid` exists in this namespace: `Some(false)` on ESRCH.
pub(crate) fn pid_exists(pid: u32) -> Option<bool> {
    let Ok(raw) = i32::try_from(pid) else {
        return Some(false);
    };
    if raw == 0 {
        return Some(false);
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
        Ok(()) | Err(nix::errno::Errno::EPERM) => Some(true),
        Err(nix::errno::Errno::ESRCH) => Some(false),
        Err(_) => None,
    }
}

/// A one-byte `flock` request at `off`.
fn flock_at(kind: libc::c_int, off: u64) -> Option<libc::flock> {
    // SAFETY: `flock` is a plain C struct for which all-zero bytes are a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::c_short::try_from(kind).ok()?;
    fl.l_whence = libc::c_short::try_from(libc::SEEK_SET).ok()?;
    fl.l_start = libc::off_t::try_from(off).ok()?;
    fl.l_len = 1;
    Some(fl)
}

/// Whether some open file description other than `fd`'s holds a write lock on byte `off`.
fn lock_held(fd: BorrowedFd<'_>, off: u64) -> Option<bool> {
    let mut fl = flock_at(libc::F_RDLCK, off)?;
    nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_OFD_GETLK(&mut fl)).ok()?;
    Some(libc::c_int::from(fl.l_type) != libc::F_UNLCK)
}

/// Opens a new open file description of `seg`'s file and takes an OFD write lock on byte
/// `off` with it, without waiting. [`LockTry::Busy`] when another open file description holds
/// the byte (a live endpoint, one detaching, or a descriptor a `fork`ed child inherited);
/// [`LockTry::Unavailable`] when the segment has no file, `/proc` is missing, or the kernel
/// refuses the lock for another reason.
fn take_lock(seg: &Segment, off: u64) -> LockTry {
    let Some(fd) = seg.lock_fd() else {
        return LockTry::Unavailable;
    };
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/self/fd/{}", fd.as_raw_fd()))
    else {
        return LockTry::Unavailable;
    };
    let Some(fl) = flock_at(libc::F_WRLCK, off) else {
        return LockTry::Unavailable;
    };
    match nix::fcntl::fcntl(file.as_raw_fd(), nix::fcntl::FcntlArg::F_OFD_SETLK(&fl)) {
        Ok(_) => LockTry::Taken(Some(file)),
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES) => LockTry::Busy,
        Err(_) => LockTry::Unavailable,
    }
}

fn timespec_ns(ts: &libc::timespec) -> u64 {
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// The resolution of the coarse clock (a scheduler tick, typically 4 ms), read once.
pub(crate) fn coarse_resolution_ns() -> u64 {
    static RES: OnceLock<u64> = OnceLock::new();
    *RES.get_or_init(|| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec.
        let rc = unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
        if rc == 0 {
            timespec_ns(&ts)
        } else {
            4_000_000
        }
    })
}

/// Monotonic time in nanoseconds from the coarse clock (a vDSO read of the last tick, no TSC
/// read: a few ns).
#[inline]
pub(crate) fn coarse_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC_COARSE exists on every Linux
    // this crate supports. On failure `ts` stays zero, which only delays a probe.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    timespec_ns(&ts)
}

/// The system's boot time, seconds since the Unix epoch (`btime` in `/proc/stat`).
pub(crate) fn boot_time_s() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), if positive.
pub(crate) fn clock_ticks_per_s() -> Option<u64> {
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).ok().filter(|h| *h > 0)
}

/// When an endpoint probes its peers: at most once an interval, on slow paths only.
#[derive(Debug)]
pub(crate) struct ProbeClock {
    next_probe_ns: u64,
    interval_ns: u64,
    /// Fast-path calls since the last clock read.
    polls: u32,
    /// Full or empty verdicts since the last [`ProbeClock::take_stalls`]: the endpoint's tally
    /// of the `stalls` counter (layout 1.3, [`crate::stats`]), kept here, in its own memory.
    stalls: u64,
}

impl ProbeClock {
    pub(crate) fn new() -> Self {
        let mut c = ProbeClock {
            next_probe_ns: 0,
            interval_ns: 0,
            polls: 0,
            stalls: 0,
        };
        c.set_interval(crate::liveness::DEFAULT_PROBE_INTERVAL);
        c
    }

    pub(crate) fn set_interval(&mut self, interval: Duration) {
        self.interval_ns = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
        self.next_probe_ns = 0;
        // The first fast-path call reads the clock.
        self.polls = 15;
    }

    pub(crate) fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval_ns)
    }

    /// Whether the probe interval has passed since the last probe (and if so, starts the next
    /// interval). A caller in a tight loop ([`Pace::Spinning`]) reads the coarse clock only
    /// every 16th time; a caller that just yielded or slept reads it every time.
    #[inline]
    pub(crate) fn due(&mut self, pace: Pace) -> bool {
        // Every call is an endpoint's slow path (a full or empty ring, or a gone peer): tally.
        self.stalls = self.stalls.wrapping_add(1);
        if pace == Pace::Spinning {
            self.polls = self.polls.wrapping_add(1);
            if self.polls % 16 != 0 {
                return false;
            }
        }
        // The coarse clock moves in ticks: allow one tick of slack, so that a caller woken
        // after exactly one interval probes now rather than an interval later. The slack is on
        // the test only: the next probe is due an interval after the clock as read (with the
        // slack added there too, a sleeper woken after one interval found the probe not due
        // about half the time, and probed only after two).
        let now = coarse_now_ns();
        if now.saturating_add(coarse_resolution_ns()) < self.next_probe_ns {
            return false;
        }
        self.next_probe_ns = now.saturating_add(self.interval_ns);
        true
    }

    /// A spinning caller's empty poll that needs no clock read: tallied as [`due`](Self::due)
    /// tallies it (and then `true`), unless this poll is the one that reads the clock (then
    /// `false`, nothing tallied: the caller calls `due`, which does both).
    #[inline(always)]
    pub(crate) fn quiet_poll(&mut self) -> bool {
        if self.polls.wrapping_add(1) % 16 == 0 {
            return false;
        }
        self.polls = self.polls.wrapping_add(1);
        self.stalls = self.stalls.wrapping_add(1);
        true
    }

    /// The stalls tallied since the last call, for the shared counter (reset to 0).
    pub(crate) fn take_stalls(&mut self) -> u64 {
        std::mem::take(&mut self.stalls)
    }
}
