//! Membarrier mode (PROTOCOL §6.3, DECISIONS D65): the notifier's barrier moved to the sleeper.
//!
//! In a ring created with [`crate::layout::RING_FLAG_MEMBARRIER`], a notifier whose process
//! has registered with `membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED)` ([`register`])
//! publishes without N1's hardware fence (only a compiler fence), and every sleeper, after
//! announcing itself (P1) and before its re-check (P4), runs
//! `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` ([`global`]): the kernel interrupts every CPU
//! running a thread of a registered process and has it execute a full barrier at the point of
//! its program where the interrupt lands (a thread not running went through one when it was
//! switched out). That barrier stands in for the fence the notifier skipped.
//!
//! A process where membarrier is missing (an old kernel, a seccomp filter) does not register:
//! its notifiers keep the fence, which pairs with the sleeper's own fence as in fence mode. A
//! sleeper whose `membarrier` call fails cannot force barriers on light notifiers: it sleeps
//! at most [`POLL_NAP`] at a time (a poll, never a hang).

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

/// How long a sleeper sleeps at most when its `membarrier` call failed (it then polls).
pub(crate) const POLL_NAP: Duration = Duration::from_millis(1);

/// This process's registration: not tried yet, registered, or unavailable.
static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);
const UNKNOWN: u8 = 0;
const REGISTERED: u8 = 1;
const UNAVAILABLE: u8 = 2;

/// Registers this process for `MEMBARRIER_CMD_GLOBAL_EXPEDITED` (once per process; later
/// calls return the first outcome): whether its notifiers may publish without N1's fence in
/// a membarrier-mode ring. `false` when the kernel does not offer the command
/// (`MEMBARRIER_CMD_QUERY`) or refuses the registration (a seccomp filter, a container):
/// the process's notifiers then keep the fence.
///
/// Must have returned `true` before the process's first light publish: the attach of a
/// membarrier-mode ring calls it ([`crate::wait::Wake::for_ring`]).
pub(crate) fn register() -> bool {
    // Relaxed: a cache of the kernel's state; the syscall that set it returned before the
    // store, and no memory is published through this word.
    match STATE.load(Ordering::Relaxed) {
        REGISTERED => return true,
        UNAVAILABLE => return false,
        _ => {}
    }
    let ok = kernel_register();
    let state = if ok { REGISTERED } else { UNAVAILABLE };
    // Relaxed: as above. Two racing first calls both make the (idempotent) syscall.
    STATE.store(state, Ordering::Relaxed);
    ok
}

#[cfg(not(loom))]
fn kernel_register() -> bool {
    use rustix::thread::{membarrier, membarrier_query, MembarrierCommand, MembarrierQuery};
    let offered = membarrier_query();
    offered.contains(MembarrierQuery::GLOBAL_EXPEDITED | MembarrierQuery::REGISTER_GLOBAL_EXPEDITED)
        && membarrier(MembarrierCommand::RegisterGlobalExpedited).is_ok()
}

#[cfg(loom)]
fn kernel_register() -> bool {
    true
}

/// P3m: `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`. When it returns `true`, every thread of
/// every registered process has executed a full barrier at some point of its program between
/// the call's start and its return. `false` if the kernel refused (no support, seccomp): the
/// caller must not sleep unboundedly on a membarrier-mode ring.
///
/// Under loom, [`model::barrier`] (`mem` is unused: the model's state is its own).
pub(crate) fn global<M: crate::sync::Memory>(mem: &M) -> bool {
    #[cfg(loom)]
    {
        let _ = mem;
        model::barrier();
        true
    }
    #[cfg(not(loom))]
    {
        let _ = mem;
        rustix::thread::membarrier(rustix::thread::MembarrierCommand::GlobalExpedited).is_ok()
    }
}

/// The loom model of membarrier (DECISIONS D65). loom has no interrupts, so a registered
/// notifier calls [`ipi_point`] between each two of its accesses that the protocol orders
/// (before its publishing store, between it and N2's load, after N3): that is where an
/// interrupt may land. A sleeper's [`barrier`] raises a request and blocks until the notifier
/// has served it at one of those points (a `SeqCst` fence, the interrupt handler's `smp_mb`)
/// or has finished ([`retire`]: a finished thread was switched out, a full barrier).
///
/// The model's lock gives the kernel's guarantee and nothing the proof could abuse: the
/// sleeper's accesses before the call happen before the notifier's after the point that
/// serves it, and the notifier's accesses before any of its points happen before the
/// sleeper's after the call (true of the real barrier, which lands at that point or later).
/// With no registered notifier ([`register`] not called in the model), the call is only the
/// sleeper's own fences, as the kernel interrupts nobody. One registered notifier per model.
#[cfg(loom)]
pub mod model {
    use crate::sync::{fence, Ordering};
    use loom::sync::{Condvar, Mutex};

    #[derive(Default)]
    struct Ipi {
        registered: bool,
        requests: u64,
        served: u64,
        retired: bool,
    }

    loom::lazy_static! {
        static ref IPI: (Mutex<Ipi>, Condvar) = (Mutex::new(Ipi::default()), Condvar::new());
    }

    /// The model's notifier registers (before the model's threads start).
    pub fn register() {
        IPI.0.lock().unwrap().registered = true;
    }

    /// A point of the registered notifier's program where an interrupt may land.
    pub fn ipi_point() {
        let mut ipi = IPI.0.lock().unwrap();
        if ipi.requests > ipi.served {
            // The interrupt handler's smp_mb.
            fence(Ordering::SeqCst);
            ipi.served = ipi.requests;
            IPI.1.notify_all();
        }
    }

    /// The notifier thread finishes: switched out for good, a full barrier.
    pub fn retire() {
        let mut ipi = IPI.0.lock().unwrap();
        fence(Ordering::SeqCst);
        ipi.retired = true;
        IPI.1.notify_all();
    }

    /// The sleeper's `membarrier(GLOBAL_EXPEDITED)`: `smp_mb`, interrupt the registered
    /// notifier and wait for its barrier (or its end), `smp_mb`.
    pub fn barrier() {
        fence(Ordering::SeqCst);
        {
            let mut ipi = IPI.0.lock().unwrap();
            if ipi.registered {
                ipi.requests += 1;
                let mine = ipi.requests;
                while ipi.served < mine && !ipi.retired {
                    ipi = IPI.1.wait(ipi).unwrap();
                }
            }
        }
        fence(Ordering::SeqCst);
    }
}

#[cfg(all(test, not(loom)))]
#[path = "membarrier_tests.rs"]
mod tests;
