//! What the commands show, gathered from the segments (passively, but for `gc`/`rm`), and its
//! JSON form (the `shmbus.<command>/1` schemas of docs/CLI.md).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use shmbus_ring::liveness::{self, EndpointInfo, Phase, Vitality};
use shmbus_ring::observe::{Observer, Peeked, Snapshot, Start};
use shmbus_ring::{Error, RingKind, Role};

use crate::Failure;

/// The shm directory this process uses (`$SHMBUS_DIR`, else `/dev/shm`), as the library
/// does for named segments.
pub fn shm_dir() -> std::path::PathBuf {
    shmbus_ring::segment::shm_dir()
}

/// Alive and dead endpoints of one role.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tally {
    /// Alive, or of unknown fate (counted as alive, as the protocol does).
    pub alive: u32,
    /// Dead (not reaped yet).
    pub dead: u32,
}

impl Tally {
    fn json(self) -> Value {
        json!({"alive": self.alive, "dead": self.dead})
    }
}

/// One line of `ls` / `top`.
#[derive(Debug, Clone)]
pub struct Row {
    /// The shm name, with its leading `/`.
    pub name: String,
    /// `None` when the segment could be read; else why not (one line).
    pub error: Option<String>,
    /// `SPSC` or `MPMC`.
    pub kind: &'static str,
    /// The message type's name from the info region (`raw` when none).
    pub type_name: String,
    /// The codec from the info region (empty when none).
    pub codec: String,
    /// The ring's data bytes.
    pub data_bytes: u64,
    /// The most messages it holds (`None`: only bytes bound it).
    pub capacity: Option<u64>,
    /// Messages in it now, when the ring counts them.
    pub len: Option<u64>,
    /// Bytes of ring data in use.
    pub used_bytes: u64,
    /// Producers.
    pub producers: Tally,
    /// Consumers.
    pub consumers: Tally,
    /// Messages per second over the sampling window (`None` if not measured).
    pub msg_rate: Option<f64>,
    /// Payload bytes per second over the window.
    pub byte_rate: Option<f64>,
    /// Seconds since creation.
    pub age_s: f64,
    /// The creating pid.
    pub creator_pid: u32,
    /// Whether the creator runs.
    pub creator: Vitality,
    /// Creator dead and every endpoint dead.
    pub stale: bool,
}

impl Row {
    /// Fill level in percent of the ring's capacity (messages if counted, else bytes).
    pub fn fill_pct(&self) -> f64 {
        match (self.len, self.capacity) {
            (Some(n), Some(c)) if c > 0 => 100.0 * n as f64 / c as f64,
            _ if self.data_bytes > 0 => 100.0 * self.used_bytes as f64 / self.data_bytes as f64,
            _ => 0.0,
        }
    }

    /// The row's JSON object.
    pub fn json(&self) -> Value {
        if let Some(e) = &self.error {
            return json!({"name": self.name, "state": "error", "error": e});
        }
        json!({
            "name": self.name,
            "state": if self.stale { "stale" } else { "ok" },
            "kind": self.kind,
            "type": self.type_name,
            "codec": self.codec,
            "data_bytes": self.data_bytes,
            "capacity_messages": self.capacity,
            "len": self.len,
            "used_bytes": self.used_bytes,
            "fill_pct": round2(self.fill_pct()),
            "producers": self.producers.json(),
            "consumers": self.consumers.json(),
            "msg_per_s": self.msg_rate.map(round2),
            "bytes_per_s": self.byte_rate.map(round2),
            "age_s": round2(self.age_s),
            "creator_pid": self.creator_pid,
            "creator": vitality(self.creator),
        })
    }
}

/// `x` rounded to 2 decimals (JSON readability).
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A vitality as the JSON and tables spell it.
pub fn vitality(v: Vitality) -> &'static str {
    match v {
        Vitality::Alive => "alive",
        Vitality::Dead => "dead",
        Vitality::Unknown => "unknown",
    }
}

/// A role as the JSON and tables spell it.
pub fn role(r: Role) -> &'static str {
    match r {
        Role::Producer => "producer",
        Role::Consumer => "consumer",
    }
}

/// A ring kind as the JSON and tables spell it.
pub fn kind(k: RingKind) -> &'static str {
    match k {
        RingKind::Spsc => "SPSC",
        RingKind::Mpmc => "MPMC",
        RingKind::Broadcast => "broadcast",
    }
}

/// Whether an open error means "not a shmbus segment" (skipped by `ls`), or that the object
/// went away meanwhile.
fn foreign(e: &Error) -> bool {
    match e {
        Error::BadMagic { .. } | Error::Truncated { .. } | Error::InvalidName { .. } => true,
        Error::Os { code, .. } => {
            code.raw() == nix::libc::ENOENT
                || code.raw() == nix::libc::EACCES
                || code.raw() == nix::libc::ENODEV
                || code.raw() == nix::libc::EINVAL
        }
        _ => false,
    }
}

/// The names in the shm directory starting with `prefix` (leading `/` optional), sorted.
pub fn names(prefix: &str) -> Vec<String> {
    let prefix = prefix.trim_start_matches('/');
    let Ok(dir) = std::fs::read_dir(shm_dir()) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| {
            let e = e.ok()?;
            // Only regular files are shm objects; directories and sockets are foreign.
            e.file_type().ok()?.is_file().then_some(())?;
            e.file_name().into_string().ok()
        })
        .filter(|n| n.starts_with(prefix))
        .map(|n| format!("/{n}"))
        .collect();
    names.sort();
    names
}

/// Counts messages and bytes passing a ring, passively (a [`shmbus_ring::observe::Peek`]).
pub struct Meter<'a> {
    peek: shmbus_ring::observe::Peek<'a>,
    kind: RingKind,
    buf: Vec<u8>,
    /// Messages seen (copied).
    pub messages: u64,
    /// Payload bytes seen.
    pub bytes: u64,
    /// Messages passed before they could be copied (exact on MPMC, estimated from the mean
    /// record size on SPSC).
    pub missed: u64,
    record_bytes: u64,
    /// Why the meter stopped, if it did.
    pub error: Option<String>,
}

impl<'a> Meter<'a> {
    /// A meter starting at the ring's newest message.
    pub fn new(obs: &'a Observer) -> Self {
        Meter {
            peek: obs.peek(Start::Newest),
            kind: obs.kind(),
            buf: Vec::new(),
            messages: 0,
            bytes: 0,
            missed: 0,
            record_bytes: 0,
            error: None,
        }
    }

    /// Reads everything published since the last call.
    pub fn pump(&mut self) {
        if self.error.is_some() {
            return;
        }
        // Bounded: a ring publishing faster than this loop copies is caught up next call.
        for _ in 0..100_000 {
            match self.peek.next(&mut self.buf) {
                Ok(Peeked::Message { .. }) => {
                    self.messages += 1;
                    self.bytes += self.buf.len() as u64;
                    self.record_bytes += 8 + (self.buf.len() as u64).div_ceil(8) * 8;
                }
                Ok(Peeked::Missed { from, to }) => {
                    self.missed = self.missed.saturating_add(match self.kind {
                        RingKind::Mpmc => to.saturating_sub(from),
                        RingKind::Spsc | RingKind::Broadcast => {
                            let mean = self
                                .record_bytes
                                .checked_div(self.messages)
                                .unwrap_or(16)
                                .max(8);
                            to.saturating_sub(from).div_ceil(mean)
                        }
                    });
                }
                Ok(Peeked::Nothing) => return,
                Err(e) => {
                    self.error = Some(e.to_string());
                    return;
                }
            }
        }
    }

    /// Messages seen or missed.
    pub fn total(&self) -> u64 {
        // Saturating: `missed` counts jumps of positions a hostile peer can write.
        self.messages.saturating_add(self.missed)
    }

    /// Payload bytes seen, plus an estimate for the missed messages (their mean size).
    pub fn total_bytes(&self) -> u64 {
        let mean = self.bytes.checked_div(self.messages).unwrap_or(0);
        self.bytes.saturating_add(mean.saturating_mul(self.missed))
    }
}

fn tally(eps: &[EndpointInfo], r: Role) -> Tally {
    let mut t = Tally::default();
    for e in eps.iter().filter(|e| e.role == r) {
        if e.vitality == Vitality::Dead {
            t.dead += 1;
        } else {
            t.alive += 1;
        }
    }
    t
}

fn age_s(created_unix_ns: u64) -> f64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    now.saturating_sub(created_unix_ns) as f64 / 1e9
}

/// A row for an observed segment (rates filled in by the caller).
pub fn row(name: &str, obs: &Observer) -> Row {
    // Shrunk since it was opened: loads past the end would be SIGBUS.
    if let Err(e) = obs.check_size() {
        return error_row(name, &e);
    }
    let h = obs.header();
    let info = obs.info().ok().flatten();
    let eps = obs.endpoints().unwrap_or_default();
    let creator = obs.creator();
    let snap = obs.snapshot();
    let stale = creator == Vitality::Dead && eps.iter().all(|e| e.vitality == Vitality::Dead);
    Row {
        name: name.to_string(),
        error: None,
        kind: kind(obs.kind()),
        type_name: info
            .as_ref()
            .map(|i| i.type_name.clone())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "raw".into()),
        codec: info.map(|i| i.codec).unwrap_or_default(),
        data_bytes: h.data_len,
        capacity: obs.capacity().map(|c| c as u64),
        len: snap.len,
        used_bytes: obs.used_bytes(),
        producers: tally(&eps, Role::Producer),
        consumers: tally(&eps, Role::Consumer),
        msg_rate: None,
        byte_rate: None,
        age_s: age_s(h.created_unix_ns),
        creator_pid: h.creator_pid,
        creator,
        stale,
    }
}

/// An error row.
fn error_row(name: &str, e: &Error) -> Row {
    Row {
        name: name.to_string(),
        error: Some(Failure::of(name, e).message),
        kind: "?",
        type_name: String::new(),
        codec: String::new(),
        data_bytes: 0,
        capacity: None,
        len: None,
        used_bytes: 0,
        producers: Tally::default(),
        consumers: Tally::default(),
        msg_rate: None,
        byte_rate: None,
        age_s: 0.0,
        creator_pid: 0,
        creator: Vitality::Unknown,
        stale: false,
    }
}

/// What `ls` found: rows, and the objects skipped as foreign.
pub struct Listing {
    /// One per shmbus segment (including unreadable ones, with their error).
    pub rows: Vec<Row>,
    /// Objects in the shm directory that are not shmbus segments (or not readable).
    pub skipped: Vec<String>,
}

/// Opens every shmbus segment under `prefix` and watches them for `sample` to measure rates.
pub fn list(prefix: &str, sample: Duration) -> Listing {
    list_with(prefix, sample, || {
        std::thread::sleep(Duration::from_millis(1));
        true
    })
    .unwrap_or(Listing {
        rows: Vec::new(),
        skipped: Vec::new(),
    })
}

/// [`list`], calling `wait` between looks during the sample (it waits about a millisecond,
/// and returns `false` to stop: then `None`).
pub fn list_with(
    prefix: &str,
    sample: Duration,
    mut wait: impl FnMut() -> bool,
) -> Option<Listing> {
    let mut opened = Vec::new();
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for name in names(prefix) {
        match Observer::open(&name) {
            Ok(obs) => opened.push((name, obs)),
            Err(e) if foreign(&e) => skipped.push(name),
            Err(e) => rows.push(error_row(&name, &e)),
        }
    }
    let mut meters: Vec<Meter<'_>> = opened.iter().map(|(_, o)| Meter::new(o)).collect();
    let start = Instant::now();
    if !sample.is_zero() {
        while start.elapsed() < sample {
            meters.iter_mut().for_each(Meter::pump);
            if !wait() {
                return None;
            }
        }
        meters.iter_mut().for_each(Meter::pump);
    }
    let secs = start.elapsed().as_secs_f64();
    for ((name, obs), m) in opened.iter().zip(&meters) {
        let mut r = row(name, obs);
        if !sample.is_zero() && m.error.is_none() {
            r.msg_rate = Some(m.total() as f64 / secs);
            r.byte_rate = Some(m.total_bytes() as f64 / secs);
        }
        rows.push(r);
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Some(Listing { rows, skipped })
}

/// Everything `inspect` shows.
pub struct Detail {
    /// The shm name.
    pub name: String,
    /// The observer.
    pub obs: Observer,
    /// The snapshot.
    pub snap: Snapshot,
    /// Endpoints with their program names.
    pub endpoints: Vec<(EndpointInfo, String)>,
    /// The info region, or why it does not decode.
    pub info: Result<Option<shmbus_ring::info::Info>, String>,
}

/// The program name of `pid` (`/proc/<pid>/comm`), or `?`.
pub fn program(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Gathers `inspect NAME`.
pub fn inspect(name: &str) -> Result<Detail, Failure> {
    let obs = Observer::open(name).map_err(|e| Failure::of(name, &e))?;
    obs.check_size().map_err(|e| Failure::of(name, &e))?;
    let endpoints = obs
        .endpoints()
        .map_err(|e| Failure::of(name, &e))?
        .into_iter()
        .map(|e| {
            let p = if e.vitality == Vitality::Dead {
                "-".to_string()
            } else {
                program(e.pid)
            };
            (e, p)
        })
        .collect();
    Ok(Detail {
        name: name.to_string(),
        snap: obs.snapshot(),
        info: obs.info().map_err(|e| e.to_string()),
        obs,
        endpoints,
    })
}

/// An MPMC sole word (PROTOCOL §5.7) for JSON: `null` when nobody holds it, the tag of the
/// endpoint alone in the role, or `"shared"` (with the tag that was alone then, if any, and,
/// on a layout 1.8 `RECLAIM` ring, the joins counted since it was last alone).
fn sole(word: u64) -> Value {
    use shmbus_ring::layout::{SOLE_JOIN, SOLE_JOINS, SOLE_SHARED};
    let tag = word & 0xff;
    if word & (SOLE_SHARED | SOLE_JOINS) != 0 {
        json!({
            "shared": true,
            "was_alone": (tag != 0).then_some(tag),
            "joins": (word & SOLE_JOINS) / SOLE_JOIN,
        })
    } else if word == 0 {
        Value::Null
    } else {
        json!({"alone": word})
    }
}

/// An endpoint phase as the JSON and tables spell it.
pub fn phase(p: Phase) -> &'static str {
    match p {
        Phase::Registering => "registering",
        Phase::Active => "active",
        Phase::Reaping => "reaping",
    }
}

impl Detail {
    /// The `shmbus.inspect/1` document.
    pub fn json(&self) -> Value {
        let h = self.obs.header();
        let s = &self.snap;
        let stats = |i: usize| {
            let m: serde_json::Map<String, Value> = s.stats[i]
                .named()
                .iter()
                .map(|(k, v)| ((*k).to_string(), json!(v)))
                .collect();
            Value::Object(m)
        };
        json!({
            "schema": "shmbus.inspect/1",
            "name": self.name,
            "kind": kind(self.obs.kind()),
            "header": {
                "layout": format!("{}.{}", h.layout_major, h.layout_minor),
                "ring_flags": h.ring_flags,
                "notify": h.ring_flags & 1 != 0,
                "checksum": h.ring_flags & 2 != 0,
                "bounded": h.ring_flags & 4 != 0,
                "aligned": h.ring_flags & 8 != 0,
                "membarrier": h.ring_flags & 16 != 0,
                "total_len": h.total_len,
                "capacity": h.capacity,
                "record_limit": h.record_limit,
                "data_len": h.data_len,
                "message_limit": h.message_limit,
                "type_fingerprint": format!("{:#018x}", h.type_fingerprint),
                "codec_id": h.codec_id,
                "creator_pid": h.creator_pid,
                "created_unix_ns": h.created_unix_ns,
                "info_offset": h.info_offset,
                "info_len": h.info_len,
            },
            "info": match &self.info {
                Ok(Some(i)) => json!({
                    "type": i.type_name, "codec": i.codec, "name": i.name,
                    "creator_program": i.creator_program, "creator_pid": i.creator_pid,
                }),
                Ok(None) => Value::Null,
                Err(e) => json!({"error": e}),
            },
            "creator": vitality(self.obs.creator()),
            "max_message": self.obs.max_message(),
            "capacity_messages": self.obs.capacity(),
            "positions": {
                "tail": s.tail, "head": s.head, "len": s.len,
                "sent": s.sent, "taken": s.taken,
                "used_bytes": self.obs.used_bytes(),
            },
            "owners": {"producer": s.owners[0], "consumer": s.owners[1]},
            "sole": {"producers": sole(s.sole[0]), "consumers": sole(s.sole[1])},
            "waiters": {"data": s.waiters[0], "space": s.waiters[1]},
            "wake_seq": {"data": s.wake_seq[0], "space": s.wake_seq[1]},
            "roster": {"producers": format!("{:#018x}", s.roster[0]),
                       "consumers": format!("{:#018x}", s.roster[1])},
            "counters": {"producer": stats(0), "consumer": stats(1)},
            "endpoints": self.endpoints.iter().map(|(e, prog)| json!({
                "tag": e.tag, "role": role(e.role), "pid": e.pid, "program": prog,
                "phase": phase(e.phase), "vitality": vitality(e.vitality),
                "locked": e.locked, "start_time": e.start_time,
            })).collect::<Vec<_>>(),
        })
    }
}

/// One segment `gc` or `rm` judged.
#[derive(Debug, Clone)]
pub struct GcRow {
    /// The shm name.
    pub name: String,
    /// Creator and every endpoint dead.
    pub stale: bool,
    /// Whether it was removed.
    pub removed: bool,
    /// The creator's pid.
    pub creator_pid: u32,
    /// The creator's vitality.
    pub creator: Vitality,
    /// Endpoints dead / alive.
    pub dead: usize,
    /// Endpoints alive (or of unknown fate).
    pub alive: usize,
    /// Why it was (not) removed.
    pub why: String,
}

impl GcRow {
    fn of(status: &liveness::SegmentStatus, removed: bool, yes: bool) -> GcRow {
        let alive = status.live_endpoints().count();
        let stale = status.is_stale();
        let why = if removed {
            "removed".to_string()
        } else if stale && !yes {
            "stale: would remove (dry run)".to_string()
        } else if stale {
            "stale, but the name now refers to another object: kept".to_string()
        } else if status.creator != Vitality::Dead {
            format!(
                "creator pid {} is {}",
                status.creator_pid,
                vitality(status.creator)
            )
        } else {
            format!("{alive} endpoint(s) alive")
        };
        GcRow {
            name: status.name.clone(),
            stale,
            removed,
            creator_pid: status.creator_pid,
            creator: status.creator,
            dead: status.endpoints.len() - alive,
            alive,
            why,
        }
    }

    /// The row's JSON object.
    pub fn json(&self) -> Value {
        json!({
            "name": self.name, "stale": self.stale, "removed": self.removed,
            "creator_pid": self.creator_pid, "creator": vitality(self.creator),
            "endpoints_dead": self.dead, "endpoints_alive": self.alive, "reason": self.why,
        })
    }
}

/// `gc`: the stale segments under `prefix`, removed if `yes`.
pub fn gc(prefix: &str, yes: bool) -> Vec<GcRow> {
    let mut out = Vec::new();
    for name in names(prefix) {
        let Ok(status) = liveness::inspect(&name) else {
            continue; // foreign, or gone meanwhile
        };
        if !status.is_stale() {
            continue;
        }
        if yes {
            match liveness::remove_if_stale(&name) {
                Ok((status, removed)) => out.push(GcRow::of(&status, removed, yes)),
                Err(e) => {
                    let mut r = GcRow::of(&status, false, yes);
                    r.why = Failure::of(&name, &e).message;
                    out.push(r);
                }
            }
        } else {
            out.push(GcRow::of(&status, false, yes));
        }
    }
    out
}

/// `rm NAME`: removes it if stale.
pub fn rm(name: &str) -> Result<GcRow, Failure> {
    let (status, removed) = liveness::remove_if_stale(name).map_err(|e| Failure::of(name, &e))?;
    Ok(GcRow::of(&status, removed, true))
}

#[cfg(test)]
mod tests {
    use super::sole;
    use serde_json::json;
    use shmbus_ring::layout::{SOLE_JOIN, SOLE_SHARED};

    #[test]
    fn sole_words_read_as_nobody_alone_or_shared_with_their_joins() {
        assert_eq!(sole(0), serde_json::Value::Null);
        assert_eq!(sole(7), json!({"alone": 7}));
        assert_eq!(
            sole(SOLE_SHARED | (3 * SOLE_JOIN) | 2),
            json!({"shared": true, "was_alone": 2, "joins": 3})
        );
        // Layout 1.7: no count.
        assert_eq!(
            sole(SOLE_SHARED),
            json!({"shared": true, "was_alone": null, "joins": 0})
        );
    }
}
