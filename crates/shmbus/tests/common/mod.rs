//! Helpers shared by the test files: unique segment names and child processes that are this
//! test binary re-spawned in a role, bounded in time and killed on failure.

#![allow(dead_code)]

use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The environment variable naming a re-spawned child's role.
pub const ROLE: &str = "SHMBUS_TEST_ROLE";
/// The environment variable naming the channel a child opens.
pub const CHANNEL: &str = "SHMBUS_TEST_CHANNEL";

/// A shm name unique to this process and call.
pub fn unique_name(what: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "/shmbus-t-{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// This process's role, if it is a re-spawned child.
pub fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

/// A child process that is killed (and reaped) when dropped unless it has been waited for.
pub struct ChildGuard {
    child: Option<Child>,
}

impl ChildGuard {
    /// Re-spawns this test binary to run only `test` (the full path, e.g.
    /// `messages_cross_to_a_child`), with `role` and `channel` in its environment.
    pub fn spawn(test: &str, role: &str, channel: &str) -> ChildGuard {
        let child = Command::new(std::env::current_exe().expect("current_exe"))
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(ROLE, role)
            .env(CHANNEL, channel)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn the test binary as a child");
        ChildGuard { child: Some(child) }
    }

    /// Waits at most `limit` for the child to exit; kills it and panics if it does not.
    pub fn wait(mut self, limit: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("not waited yet");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("child did not exit within {limit:?}; killed");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
