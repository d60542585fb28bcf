//! Child processes for tests that need a real second process: the test binary re-spawned
//! (never a `fork` of the threaded test process) to run one test in a role, and a guard that
//! kills and reaps the child whatever happens to the test. Also unique segment names, so tests
//! running in parallel, and runs left behind by a killed test, never meet.

use std::ops::{Deref, DerefMut};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The environment variable naming a re-spawned child's role (see [`respawn`]).
pub const ROLE: &str = "SHMBUS_TEST_ROLE";

/// This process's role, if it is a child made by [`respawn`].
pub fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

/// A command that runs this test binary again, with only the test `test` (its full name, as
/// libtest prints it; top-level tests are their function name), in one thread, output not
/// captured, with `role` in [`ROLE`] and no standard input. The caller adds what else the
/// child needs (environment, `stdout`, further libtest options such as `--include-ignored`)
/// and spawns it, usually with [`ChildGuard::spawn`].
pub fn respawn(test: &str, role: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .stdin(Stdio::null());
    cmd
}

/// A shm name unique to this process and call: `/shmbus-{prefix}-{pid}-{n}`.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "/shmbus-{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A child process that is killed (SIGKILL) and reaped when the guard is dropped, so a
/// failing test leaves none behind. It dereferences to the [`Child`]: `wait`, `try_wait`,
/// `kill` and the pipes are the child's own (killing a child that was already waited for is
/// a no-op, never a signal to a recycled pid).
#[derive(Debug)]
pub struct ChildGuard(Child);

impl ChildGuard {
    /// Guards `child`.
    pub fn new(child: Child) -> ChildGuard {
        ChildGuard(child)
    }

    /// Spawns `cmd` and guards the child; panics if it cannot be spawned.
    pub fn spawn(cmd: &mut Command) -> ChildGuard {
        ChildGuard(cmd.spawn().expect("spawn a child process"))
    }

    /// Waits at most `limit` for the child to exit and returns its status; kills it and
    /// panics if it does not exit in time.
    pub fn wait_within(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.0.kill();
                let _ = self.0.wait();
                panic!("child did not exit within {limit:?}; killed");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl ChildGuard {
    /// Reads the child's piped standard output until a line containing `needle` (taking the
    /// pipe); whether one came before the output ended. The child's "I am set up" handshake.
    pub fn await_line(&mut self, needle: &str) -> bool {
        use std::io::BufRead;
        let Some(out) = self.0.stdout.take() else {
            return false;
        };
        std::io::BufReader::new(out)
            .lines()
            .map_while(std::result::Result::ok)
            .any(|l| l.contains(needle))
    }
}

impl Deref for ChildGuard {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
