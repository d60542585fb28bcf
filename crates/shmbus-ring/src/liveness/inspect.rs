//! Inspection (PROTOCOL §7.5): which endpoints of a segment are alive, and removal of stale
//! segments. Looking never touches: these open read-only and never register.

use super::process::{boot_time_s, clock_ticks_per_s, pid_exists, start_time};
use super::registration::judge;
use super::{fields, state_off, Os, State, Vitality, PHASE_ACTIVE, PHASE_REGISTERING};
use crate::conv::offset;
use crate::endpoint::Role;
use crate::error::{Error, Result};
use crate::handshake;
use crate::layout::{DATA_OFFSET, MAGIC, MAX_ENDPOINTS};
use crate::segment::{Backing, Segment, SegmentOptions};
use crate::sync::{fence, Memory, Ordering, RawMem};

/// The phase of an endpoint entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Attaching: the entry is taken, the endpoint not yet live.
    Registering,
    /// Attached.
    Active,
    /// Found dead; a survivor is repairing what it held.
    Reaping,
}

/// One endpoint of a segment, as [`endpoints`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointInfo {
    /// Its tag (entry index + 1).
    pub tag: u32,
    /// Producer or consumer.
    pub role: Role,
    /// Its pid (in its own PID namespace); while [`Phase::Reaping`], the reaper's pid.
    pub pid: u32,
    /// Its process start time in clock ticks after boot (0 if unknown).
    pub start_time: u64,
    /// Whether it holds an OFD lock on its entry.
    pub locked: bool,
    /// Its phase.
    pub phase: Phase,
    /// Whether its process is alive, as far as this process can tell.
    pub vitality: Vitality,
}

/// The endpoints registered in `seg`'s endpoint table, with their vitality.
///
/// # Errors
///
/// [`Error::Truncated`] if the segment is too short to hold the table.
///
/// # Examples
///
/// ```
/// use shmbus_ring::{liveness::{self, Vitality}, SpscConfig, SpscRing, Role};
/// let ring = SpscRing::in_heap(&SpscConfig::new(1 << 10))?;
/// let _tx = ring.producer()?;
/// let eps = liveness::endpoints(ring.segment())?;
/// assert_eq!(eps.len(), 1);
/// assert_eq!(eps[0].role, Role::Producer);
/// assert_eq!(eps[0].pid, std::process::id());
/// assert_eq!(eps[0].vitality, Vitality::Alive);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn endpoints(seg: &Segment) -> Result<Vec<EndpointInfo>> {
    let Some(mem) = seg.raw_mem(offset(DATA_OFFSET)) else {
        return Err(Error::Truncated {
            target: seg.target(),
            actual: seg.len() as u64,
            needed: DATA_OFFSET,
        });
    };
    let os = Os::new(seg);
    let mut out = Vec::new();
    for index in 0..MAX_ENDPOINTS {
        // The fields belong to the holder the state word names only if the word is the same
        // after reading them: re-read, a few times, while it changes under us.
        let mut found = None;
        for _ in 0..4 {
            // L10: Acquire, as in `Registration::probe`: pairs with L4, so the fields read
            // next are at least the holder's.
            // SAFETY: `mem` holds the table (checked above).
            let seen = unsafe { mem.load(state_off(index), Ordering::Acquire) };
            let st = State::decode(seen);
            let Some(role) = st.held() else {
                found = None;
                break;
            };
            // SAFETY: as above.
            let mut info = unsafe { info(&mem, os, index, &st, role) };
            // A seqlock-style re-check (as crossbeam-utils' `SeqLock::validate_read`): the
            // Acquire fence keeps the Relaxed field loads above before the re-load below, so
            // if the state word is unchanged, the fields were read while it held.
            fence(Ordering::Acquire);
            // SAFETY: as above.
            if unsafe { mem.load(state_off(index), Ordering::Relaxed) } == seen {
                found = Some(info);
                break;
            }
            // Changing under us: held by someone, fate unknown (never "dead" on a guess).
            info.vitality = Vitality::Unknown;
            found = Some(info);
        }
        out.extend(found);
    }
    Ok(out)
}

/// What entry `index` (state `st`, held by `role`) says.
///
/// # Safety
///
/// - `mem` holds the endpoint table.
unsafe fn info(mem: &RawMem, os: Os<'_>, index: u64, st: &State, role: Role) -> EndpointInfo {
    let [start_off, _, locked_off] = fields(index);
    // Relaxed: diagnostics, validated by the caller's re-check of the state word.
    // SAFETY: aligned fields of the table, which `mem` holds.
    let (start_time, locked) = unsafe {
        (
            mem.load(start_off, Ordering::Relaxed),
            mem.load_u32(locked_off, Ordering::Relaxed) == 1,
        )
    };
    EndpointInfo {
        tag: u32::try_from(index + 1).unwrap_or(u32::MAX),
        role,
        pid: st.pid,
        start_time,
        locked,
        phase: match st.phase {
            PHASE_REGISTERING => Phase::Registering,
            PHASE_ACTIVE => Phase::Active,
            _ => Phase::Reaping,
        },
        // SAFETY: as above.
        vitality: unsafe { judge(mem, &os, index, st) },
    }
}

/// What [`inspect`] found about a named segment.
#[derive(Debug, Clone)]
pub struct SegmentStatus {
    /// The shm name.
    pub name: String,
    /// What backs it: [`Backing::Shm`], or [`Backing::SysV`] for a System V segment found
    /// through its companion file.
    pub backing: Backing,
    /// The ring kind's raw header value (1 SPSC, 2 MPMC; anything else is not a ring).
    pub ring_kind: u32,
    /// The pid that created it (header field).
    pub creator_pid: u32,
    /// Whether the creator still runs, judged by pid and start time (same PID namespace).
    pub creator: Vitality,
    /// The registered endpoints.
    pub endpoints: Vec<EndpointInfo>,
}

impl SegmentStatus {
    /// Stale: no endpoint is alive or of unknown fate, and the creator is dead.
    pub fn is_stale(&self) -> bool {
        self.creator == Vitality::Dead
            && self.endpoints.iter().all(|e| e.vitality == Vitality::Dead)
    }

    /// The endpoints that are alive (or whose fate cannot be told).
    pub fn live_endpoints(&self) -> impl Iterator<Item = &EndpointInfo> {
        self.endpoints
            .iter()
            .filter(|e| e.vitality != Vitality::Dead)
    }
}

/// Judges the creator of a segment: dead if no process has its pid, or if the process with
/// that pid started after the segment was created (the pid was reused).
pub(crate) fn creator_vitality(pid: u32, created_unix_ns: u64) -> Vitality {
    match pid_exists(pid) {
        Some(false) => return Vitality::Dead,
        None => return Vitality::Unknown,
        Some(true) => {}
    }
    let (Some(ticks), Some(boot), Some(hz)) = (start_time(pid), boot_time_s(), clock_ticks_per_s())
    else {
        return Vitality::Unknown;
    };
    let started_ns = boot
        .saturating_mul(1_000_000_000)
        .saturating_add(ticks.saturating_mul(1_000_000_000 / hz));
    // Start times have tick resolution (10 ms) and btime whole seconds: allow 2 s of slack.
    if started_ns > created_unix_ns.saturating_add(2_000_000_000) {
        Vitality::Dead
    } else {
        Vitality::Alive
    }
}

/// How long an object whose header is not published yet counts as being built.
const BUILDING_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether the segment's object was changed less than [`BUILDING_GRACE`] ago (or its age
/// cannot be told).
fn young(seg: &Segment) -> bool {
    let Some(fd) = seg.fd() else {
        return true;
    };
    let Ok(st) = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&fd)) else {
        return true;
    };
    let changed = std::time::UNIX_EPOCH
        + std::time::Duration::from_secs(u64::try_from(st.st_mtime).unwrap_or(0));
    std::time::SystemTime::now()
        .duration_since(changed)
        .map_or(true, |age| age < BUILDING_GRACE)
}

/// Opens the named shm segment read-only and reports its creator and endpoints.
///
/// # Errors
///
/// Segment errors as for [`Segment::open`]; [`Error::Truncated`], [`Error::BadMagic`] for
/// an object that is not a shmbus segment.
///
/// A System V segment's companion file is judged as its segment; a companion whose segment is
/// gone (what processes that all died leave of a destroy-on-last-detach segment) is reported
/// stale, with no endpoints and `ring_kind` 0.
pub fn inspect(name: &str) -> Result<SegmentStatus> {
    match inspect_open(name) {
        Ok((_, status)) => Ok(status),
        Err(e) => orphan_status(name).map(|(_, s)| s).ok_or(e),
    }
}

/// The status of `name` if it is an orphaned System V companion file.
fn orphan_status(name: &str) -> Option<(std::path::PathBuf, SegmentStatus)> {
    let (path, backing) = crate::segment::orphan_companion(name)?;
    Some((
        path,
        SegmentStatus {
            name: name.to_string(),
            backing,
            ring_kind: 0,
            creator_pid: 0,
            creator: Vitality::Dead,
            endpoints: Vec::new(),
        },
    ))
}

/// [`inspect`], keeping the opened segment (so a removal can make sure the name still refers
/// to the object that was judged).
fn inspect_open(name: &str) -> Result<(Segment, SegmentStatus)> {
    let opts = SegmentOptions::new().read_only(true);
    let seg = match Segment::open(name, &opts) {
        // No such name in the shm directory: a System V segment without a companion file has
        // it in its header (found by key).
        Err(e @ Error::Os { code, .. }) if code.raw() == libc::ENOENT => {
            Segment::open_sysv(name, &opts).map_err(|_| e)?
        }
        other => other?,
    };
    status_of(seg, name)
}

/// The status of the opened segment `seg`, named `name` in reports.
fn status_of(seg: Segment, name: &str) -> Result<(Segment, SegmentStatus)> {
    let header = handshake::read_header(&seg)?;
    if header.magic != MAGIC {
        return Err(Error::BadMagic {
            target: seg.target(),
            found: header.magic,
            expected: MAGIC,
        });
    }
    // A header not yet published (or without a creator pid) may be one its creator is still
    // writing: the creator's fate is unknown while the object is young, not "dead" (pid 0
    // is nobody's). A creator that died mid-initialisation is judged by its pid once the
    // object is older than `BUILDING_GRACE`.
    let building = header.init_state != crate::layout::INIT_READY || header.creator_pid == 0;
    let creator = if building && young(&seg) {
        Vitality::Unknown
    } else {
        creator_vitality(header.creator_pid, header.created_unix_ns)
    };
    let status = SegmentStatus {
        name: name.to_string(),
        backing: seg.backing().clone(),
        ring_kind: header.ring_kind,
        creator_pid: header.creator_pid,
        creator,
        endpoints: endpoints(&seg)?,
    };
    Ok((seg, status))
}

/// Removes the named segment if it is stale ([`SegmentStatus::is_stale`]). Returns the
/// status and whether the name was removed.
///
/// # Errors
///
/// As [`inspect`]; [`Error::Os`] naming `shm_unlink`.
///
/// # Examples
///
/// ```
/// use shmbus_ring::{liveness, SegmentOptions, SpscConfig, SpscRing};
/// let name = format!("/shmbus-doc-stale-{}", std::process::id());
/// let ring = SpscRing::create_shm(&name, &SpscConfig::new(1 << 10), &SegmentOptions::default())?;
/// // Its creator (this process) is alive: not stale, not removed.
/// let (status, removed) = liveness::remove_if_stale(&name)?;
/// assert!(!status.is_stale() && !removed);
/// # drop(ring);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn remove_if_stale(name: &str) -> Result<(SegmentStatus, bool)> {
    let (seg, status) = match inspect_open(name) {
        Ok(found) => found,
        Err(e) => {
            let Some((path, status)) = orphan_status(name) else {
                return Err(e);
            };
            // An orphaned companion: nothing of the segment is left to judge. Looked at again
            // just before removal, so a companion a new creator put there meanwhile stays.
            let removed = crate::segment::orphan_companion(name).is_some()
                && std::fs::remove_file(&path).is_ok();
            return Ok((status, removed));
        }
    };
    // Only the object that was judged: if the name was removed and created again meanwhile,
    // the new segment is left alone.
    if !status.is_stale() {
        return Ok((status, false));
    }
    let removed = seg.unlink_if_ours()?;
    Ok((status, removed))
}

/// [`inspect`] for the System V segment `shmid` (one without a name or companion file, as
/// [`crate::segment::sysv_segments`] lists them).
///
/// # Errors
///
/// As [`Segment::open_sysv_id`]; header errors as for [`inspect`].
pub fn inspect_sysv(shmid: i32) -> Result<SegmentStatus> {
    let seg = Segment::open_sysv_id(shmid, &SegmentOptions::new().read_only(true))?;
    let name = seg.target();
    status_of(seg, &name).map(|(_, s)| s)
}

/// [`remove_if_stale`] for the System V segment `shmid`: removes it (`IPC_RMID`, and its
/// companion file if it has one) if it is stale.
///
/// # Errors
///
/// As [`inspect_sysv`]; [`Error::Os`] naming `shmctl(IPC_RMID)`.
pub fn remove_sysv_if_stale(shmid: i32) -> Result<(SegmentStatus, bool)> {
    let seg = Segment::open_sysv_id(shmid, &SegmentOptions::new().read_only(true))?;
    let name = seg.target();
    let (seg, status) = status_of(seg, &name)?;
    if !status.is_stale() {
        return Ok((status, false));
    }
    let removed = seg.unlink_if_ours()?;
    Ok((status, removed))
}

/// Inspects every shm object in the shm directory ([`crate::segment::shm_dir`]: `/dev/shm`
/// unless `SHMBUS_DIR` says otherwise) whose name starts with `prefix` (without the leading
/// `/`; empty for all). Objects that are not shmbus segments come back as errors. System V
/// segments with a companion file come back under their name, with [`Backing::SysV`];
/// [`crate::segment::sysv_segments`] lists every shmbus System V segment, companion or not.
pub fn scan(prefix: &str) -> Vec<(String, Result<SegmentStatus>)> {
    let Ok(dir) = std::fs::read_dir(crate::segment::shm_dir()) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .map(|n| format!("/{n}"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let r = inspect(&n);
            (n, r)
        })
        .collect()
}
