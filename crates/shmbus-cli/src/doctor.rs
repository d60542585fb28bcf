//! `doctor`: the host's limits that bite shared-memory transports, each with what to do.

use crate::gather;
use crate::out::bytes;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Fine.
    Ok,
    /// Likely to bite: see the note.
    Warn,
    /// Informational.
    Info,
}

impl Level {
    /// The level's name in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Info => "info",
        }
    }
}

/// One check.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked (`sysctl` names where there is one).
    pub name: String,
    /// What was found.
    pub value: String,
    /// The verdict.
    pub level: Level,
    /// What it means, and what to do.
    pub note: String,
}

fn check(name: &str, value: impl Into<String>, level: Level, note: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        value: value.into(),
        level,
        note: note.into(),
    }
}

fn sysctl(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Runs every check.
pub fn checks() -> Vec<Check> {
    let mut out = vec![shm_dir(), remove_ipc()];
    for (name, path, note) in [
        (
            "fs.mqueue.msg_max",
            "/proc/sys/fs/mqueue/msg_max",
            "messages per POSIX queue (the mq baseline of shmbus-bench)",
        ),
        (
            "fs.mqueue.msgsize_max",
            "/proc/sys/fs/mqueue/msgsize_max",
            "largest POSIX mq message, bytes",
        ),
        (
            "fs.mqueue.queues_max",
            "/proc/sys/fs/mqueue/queues_max",
            "POSIX queues on the host",
        ),
        (
            "kernel.shmmax",
            "/proc/sys/kernel/shmmax",
            "largest System V segment, bytes",
        ),
        (
            "kernel.shmall",
            "/proc/sys/kernel/shmall",
            "System V shared memory in total, pages",
        ),
        (
            "kernel.shmmni",
            "/proc/sys/kernel/shmmni",
            "System V segments on the host",
        ),
    ] {
        out.push(match sysctl(path) {
            Some(v) => check(name, v, Level::Info, note),
            None => check(
                name,
                "unreadable",
                Level::Info,
                format!("{path} not readable"),
            ),
        });
    }
    out.push(
        match sysctl("/proc/sys/kernel/shm_rmid_forced").as_deref() {
            Some("1") => check(
                "kernel.shm_rmid_forced",
                "1",
                Level::Warn,
                "System V segments are destroyed when their last user detaches",
            ),
            Some(v) => check(
                "kernel.shm_rmid_forced",
                v,
                Level::Ok,
                "System V segments outlive their users",
            ),
            None => check("kernel.shm_rmid_forced", "unreadable", Level::Info, ""),
        },
    );
    let kernel = sysctl("/proc/sys/kernel/osrelease").unwrap_or_else(|| "?".into());
    out.push(match shmbus_ring::observe::futex_waitv_support() {
        Ok(()) => check(
            "futex_waitv",
            format!("available (kernel {kernel})"),
            Level::Ok,
            "selects over several rings sleep in one call",
        ),
        Err(e) => check(
            "futex_waitv",
            format!("unavailable (kernel {kernel})"),
            Level::Warn,
            format!("{e}: selects poll with 1 ms naps instead"),
        ),
    });
    out.push(match sysctl("/proc/sys/vm/max_map_count") {
        Some(v) => check(
            "vm.max_map_count",
            v,
            Level::Info,
            "mappings per process; each ring is one",
        ),
        None => check("vm.max_map_count", "unreadable", Level::Info, ""),
    });
    let files = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|x| x.starts_with("Max open files"))
                .map(|x| {
                    x.split_whitespace()
                        .skip(3)
                        .take(2)
                        .collect::<Vec<_>>()
                        .join(" / ")
                })
        });
    out.push(check(
        "open files (soft / hard)",
        files.unwrap_or_else(|| "?".into()),
        Level::Info,
        "each endpoint keeps an OFD-lock descriptor",
    ));
    out
}

// `fsblkcnt_t` and `c_ulong` are 32 bits on 32-bit targets: the conversions are not useless there.
#[allow(clippy::useless_conversion)]
fn shm_dir() -> Check {
    let path = gather::shm_dir();
    let dir = path.display();
    let Ok(st) = nix::sys::statvfs::statvfs(&path) else {
        return check(
            "shm dir",
            format!("{dir} missing"),
            Level::Warn,
            "no POSIX shared memory: use the file or memfd backing",
        );
    };
    let frag = u64::from(st.fragment_size());
    let size = u64::from(st.blocks()) * frag;
    let free = u64::from(st.blocks_available()) * frag;
    let used = size.saturating_sub(u64::from(st.blocks_free()) * frag);
    let value = format!(
        "{} size, {} used, {} free",
        bytes(size),
        bytes(used),
        bytes(free)
    );
    if size <= 64 << 20 {
        check(
            "shm dir",
            value,
            Level::Warn,
            format!("{dir} is at most 64 MiB (Docker's default): run the container with --shm-size, or use the file/memfd backing"),
        )
    } else if free < size / 10 {
        check(
            "shm dir",
            value,
            Level::Warn,
            format!("{dir} is over 90% full: `shmbus gc` removes stale segments"),
        )
    } else {
        check("shm dir", value, Level::Ok, format!("{dir} (tmpfs)"))
    }
}

fn remove_ipc() -> Check {
    let mut value = None;
    let mut files = vec![std::path::PathBuf::from("/etc/systemd/logind.conf")];
    if let Ok(d) = std::fs::read_dir("/etc/systemd/logind.conf.d") {
        let mut more: Vec<_> = d.filter_map(|e| e.ok().map(|e| e.path())).collect();
        more.sort();
        files.extend(more);
    }
    for f in files {
        if let Ok(text) = std::fs::read_to_string(&f) {
            for line in text.lines() {
                if let Some(v) = line.trim().strip_prefix("RemoveIPC=") {
                    value = Some(v.trim().to_string());
                }
            }
        }
    }
    let uid = nix::unistd::Uid::current().as_raw();
    let system_user = uid < 1000;
    let on = value
        .as_deref()
        .is_none_or(|v| matches!(v, "yes" | "true" | "1" | "on"));
    let shown = value
        .clone()
        .unwrap_or_else(|| "yes (systemd's default)".into());
    if !std::path::Path::new("/run/systemd/system").exists() {
        check(
            "RemoveIPC (logind)",
            shown,
            Level::Ok,
            "systemd is not running here: nothing removes segments at logout",
        )
    } else if on && !system_user {
        check("RemoveIPC (logind)", shown, Level::Warn, "logind removes this user's segments when their last session ends: set RemoveIPC=no, or run as a system user")
    } else if on {
        check(
            "RemoveIPC (logind)",
            shown,
            Level::Ok,
            format!("applies to regular users only; uid {uid} is a system user"),
        )
    } else {
        check(
            "RemoveIPC (logind)",
            shown,
            Level::Ok,
            "segments survive logout",
        )
    }
}
