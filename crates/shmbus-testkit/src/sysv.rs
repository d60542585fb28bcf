//! System V segments in tests: clean-up (whatever a test created is removed when its guard
//! drops, pass or fail), what the system lists, and names that collide on the derived key.

use shmbus_ring::segment::{remove_sysv_id, shm_dir, sysv_key, sysv_segments};
use std::collections::HashMap;
use std::io::Read;

/// Whether `/proc/sysvipc/shm` lists segment `shmid`.
pub fn listed(shmid: i32) -> bool {
    let text = std::fs::read_to_string("/proc/sysvipc/shm").expect("read /proc/sysvipc/shm");
    text.lines().skip(1).any(|l| {
        l.split_whitespace()
            .nth(1)
            .and_then(|v| v.parse::<i32>().ok())
            == Some(shmid)
    })
}

/// Whether `ipcs -m` lists segment `shmid` (`None` if there is no `ipcs`).
pub fn ipcs_lists(shmid: i32) -> Option<bool> {
    let out = std::process::Command::new("ipcs").arg("-m").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let id = shmid.to_string();
    Some(
        text.lines()
            .any(|l| l.split_whitespace().nth(1) == Some(id.as_str())),
    )
}

/// Two names, `{prefix}-{i}` and `{prefix}-{j}`, whose derived keys
/// ([`sysv_key`]) are equal (found by search: 24 bits collide after a few thousand names).
pub fn colliding_names(prefix: &str) -> (String, String) {
    let mut seen = HashMap::new();
    for i in 0u32.. {
        let n = format!("{prefix}-{i}");
        if let Some(other) = seen.insert(sysv_key(&n), n.clone()) {
            return (other, n);
        }
    }
    unreachable!("2^32 names without a collision of 24-bit keys")
}

/// Removes, when dropped, every shmbus System V segment whose recorded name starts with its
/// prefix, every id it was told to [`track`](SysvSweep::track), and the companion files of
/// that prefix in the shm directory. Use a prefix unique to the test ([`crate::unique_name`]).
#[derive(Debug)]
pub struct SysvSweep {
    prefix: String,
    ids: Vec<i32>,
}

impl SysvSweep {
    /// A sweep of the names starting with `prefix` (with its leading `/`).
    pub fn new(prefix: &str) -> SysvSweep {
        SysvSweep {
            prefix: prefix.to_string(),
            ids: Vec::new(),
        }
    }

    /// Also removes segment `shmid` (an `IPC_PRIVATE` one, which has no name).
    pub fn track(&mut self, shmid: i32) {
        self.ids.push(shmid);
    }

    /// The shmbus System V segments of this prefix that still exist.
    pub fn remaining(&self) -> Vec<shmbus_ring::segment::SysvSegment> {
        sysv_segments()
            .into_iter()
            .filter(|s| {
                s.name
                    .as_deref()
                    .is_some_and(|n| n.starts_with(&self.prefix))
                    || self.ids.contains(&s.shmid)
            })
            .collect()
    }
}

impl Drop for SysvSweep {
    fn drop(&mut self) {
        for s in self.remaining() {
            let _ = remove_sysv_id(s.shmid);
        }
        let Ok(dir) = std::fs::read_dir(shm_dir()) else {
            return;
        };
        let stem = self.prefix.trim_start_matches('/');
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with(stem) {
                continue;
            }
            let mut magic = [0u8; 8];
            let is_companion = std::fs::File::open(entry.path())
                .and_then(|mut f| f.read_exact(&mut magic))
                .is_ok()
                && &magic == b"shmbusSV";
            if is_companion {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}
