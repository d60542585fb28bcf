//! Waiting for a topic to appear, without a daemon (DECISIONS D44): an inotify watch on the
//! shm directory wakes the waiter when a name is created there; where inotify is not
//! available (no such directory yet, the per-user watch limit reached, a kernel without it),
//! the waiter polls every 10 ms.

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

/// How often a waiter without inotify looks.
const POLL_EVERY: Duration = Duration::from_millis(10);

/// The longest a waiter with inotify sleeps before looking anyway: a safety net for events it
/// cannot see (the directory replaced, the event queue overflowed).
const WATCHED_NAP: Duration = Duration::from_millis(100);

/// A watch on the shm directory, or none (then [`Watch::wait`] sleeps [`POLL_EVERY`]).
pub(super) struct Watch {
    inotify: Option<Inotify>,
}

impl Watch {
    /// Watches `dir` for names created in it or moved into it.
    pub(super) fn new(dir: &Path) -> Self {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .ok()
            .filter(|i| {
                i.add_watch(
                    dir,
                    AddWatchFlags::IN_CREATE
                        | AddWatchFlags::IN_MOVED_TO
                        | AddWatchFlags::IN_MODIFY
                        | AddWatchFlags::IN_ATTRIB,
                )
                .is_ok()
            });
        Watch { inotify }
    }

    /// Whether an inotify watch is in place.
    #[cfg(test)]
    pub(super) fn is_watching(&self) -> bool {
        self.inotify.is_some()
    }

    /// Sleeps until something happens in the directory, or at most `limit` (and at most
    /// [`WATCHED_NAP`]; without a watch, at most [`POLL_EVERY`]).
    pub(super) fn wait(&mut self, limit: Duration) {
        let Some(inotify) = &self.inotify else {
            std::thread::sleep(limit.min(POLL_EVERY));
            return;
        };
        // Rounded up to a whole millisecond, so that a short remainder is not a busy loop.
        let nap = limit.min(WATCHED_NAP) + Duration::from_micros(999);
        let timeout = PollTimeout::try_from(nap).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            // Drain the events: which name does not matter, the caller looks for its own.
            Ok(n) if n > 0 => while matches!(inotify.read_events(), Ok(e) if !e.is_empty()) {},
            Ok(_) => {}
            // EINTR and the like: look again, and sleep as a poller would.
            Err(_) => std::thread::sleep(limit.min(POLL_EVERY)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_watch_wakes_for_a_new_name_and_otherwise_sleeps_at_most_its_limit() {
        let dir = std::env::temp_dir().join(format!("shmbus-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut watch = Watch::new(&dir);
        assert!(watch.is_watching());
        let started = Instant::now();
        watch.wait(Duration::from_millis(30));
        let slept = started.elapsed();
        assert!(
            slept >= Duration::from_millis(29) && slept < Duration::from_secs(2),
            "{slept:?}"
        );
        let file = dir.join("x");
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            std::fs::write(file, b"x").unwrap();
        });
        let started = Instant::now();
        watch.wait(Duration::from_secs(5));
        assert!(started.elapsed() < Duration::from_secs(1));
        t.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        // No such directory: no watch, and waits are polls.
        let mut none = Watch::new(&dir);
        assert!(!none.is_watching());
        let started = Instant::now();
        none.wait(Duration::from_secs(5));
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
