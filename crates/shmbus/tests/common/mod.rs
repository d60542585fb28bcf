//! Helpers shared by the test files: unique segment names and child processes that are this
//! test binary re-spawned in a role, bounded in time and killed on failure (the test kit's,
//! with the channel a child opens in its environment).

#![allow(dead_code, unused_imports)]

use shmbus_testkit::respawn;
pub use shmbus_testkit::{role, unique_name, ChildGuard};

/// The environment variable naming the channel a child opens.
pub const CHANNEL: &str = "SHMBUS_TEST_CHANNEL";

/// Re-spawns this test binary to run only `test` (the full path, e.g.
/// `messages_cross_to_a_child`), with `role` and `channel` in its environment; the child is
/// killed and reaped when the guard drops unless it has exited (see
/// [`ChildGuard::wait_within`]).
pub fn spawn(test: &str, role: &str, channel: &str) -> ChildGuard {
    ChildGuard::spawn(respawn(test, role).env(CHANNEL, channel))
}
