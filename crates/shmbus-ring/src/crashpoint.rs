//! Crash points: a test-only hook that parks the process between two steps of the protocol,
//! so a test can SIGKILL it exactly there.
//!
//! Compiled in only with the `crashpoints` feature (this crate's own tests); otherwise every
//! point is an empty inline function and [`arm`] does nothing. Disarmed, a point costs one
//! `Relaxed` load of a process-local flag. Armed with a name, the first thread to reach the
//! point of that name prints `shmbus-crashpoint: NAME` on standard error and sleeps for ever.
//! A test can instead run a closure at a point ([`on_this_thread`]): other endpoints then act
//! exactly between two steps of this thread's call, an interleaving a scheduler gives rarely.

use crate::sync::{AtomicBool, Ordering};
use std::io::Write;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread::ThreadId;

static ARMED: AtomicBool = AtomicBool::new(false);
static POINT: OnceLock<String> = OnceLock::new();

/// A closure to run once, when the given thread reaches the named point.
type Hook = (ThreadId, &'static str, Box<dyn FnOnce() + Send>);
static HOOK: Mutex<Option<Hook>> = Mutex::new(None);

/// Arms the crash point `name` for this process (once; later calls are ignored). For tests.
#[doc(hidden)]
pub fn arm(name: &str) {
    if POINT.set(name.to_string()).is_ok() {
        ARMED.store(true, Ordering::Relaxed);
    }
}

/// Arms the crash point named by the environment variable `SHMBUS_CRASHPOINT`, if set.
#[doc(hidden)]
pub fn arm_from_env() {
    if let Ok(name) = std::env::var("SHMBUS_CRASHPOINT") {
        arm(&name);
    }
}

/// Runs `f` once, when this thread next reaches the point `name` (replacing any closure set
/// before). For tests: `f` drives other endpoints between two steps of this thread's call.
#[doc(hidden)]
pub fn on_this_thread(name: &'static str, f: impl FnOnce() + Send + 'static) {
    *HOOK.lock().unwrap_or_else(PoisonError::into_inner) =
        Some((std::thread::current().id(), name, Box::new(f)));
    ARMED.store(true, Ordering::Relaxed);
}

std::thread_local! {
    static GENERAL_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// While `yes`, endpoints driven by this thread take the general path only, never the common
/// push and pop steps (D96): for tests that compare the two. Does nothing without the
/// `crashpoints` feature.
#[doc(hidden)]
pub fn general_path_only(yes: bool) {
    if cfg!(feature = "crashpoints") {
        GENERAL_ONLY.with(|g| g.set(yes));
    }
}

/// Whether the common steps may run (always, without the `crashpoints` feature).
#[inline(always)]
pub(crate) fn fast_allowed() -> bool {
    !cfg!(feature = "crashpoints") || !GENERAL_ONLY.with(std::cell::Cell::get)
}

/// Marks the point `name` of the protocol.
#[inline(always)]
pub(crate) fn hit(name: &'static str) {
    // Relaxed: a process-local switch set before the protocol runs.
    if cfg!(feature = "crashpoints") && ARMED.load(Ordering::Relaxed) {
        park_if(name);
    }
}

#[cold]
#[inline(never)]
fn park_if(name: &'static str) {
    let hook = {
        let mut slot = HOOK.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.take() {
            Some((thread, at, f)) if thread == std::thread::current().id() && at == name => Some(f),
            other => {
                *slot = other;
                None
            }
        }
    };
    if let Some(f) = hook {
        f();
        return;
    }
    if POINT.get().map(String::as_str) != Some(name) {
        return;
    }
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "shmbus-crashpoint: {name}");
    let _ = err.flush();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
