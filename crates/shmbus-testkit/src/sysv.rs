//! Clean-up of System V segments for tests: whatever a test created is removed when its guard
//! drops, pass or fail.

use shmbus_ring::segment::{remove_sysv_id, shm_dir, sysv_segments};
use std::io::Read;

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
