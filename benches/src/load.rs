//! Did anything else run during the measurement? Compares the host's busy CPU time
//! (`/proc/stat`) with what the harness and its peers used (`getrusage`), so the report can
//! say when other processes or the hypervisor (steal) competed for the cores.

use nix::sys::resource::{getrusage, UsageWho};
use std::time::Instant;

/// A snapshot to compare against later.
pub struct LoadProbe {
    at: Instant,
    host: Option<(f64, f64)>,
    ours: f64,
}

/// Host busy and steal seconds since boot, from the first line of `/proc/stat`.
fn host_busy() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<f64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let get = |i: usize| v.get(i).copied().unwrap_or(0.0);
    let hz = 100.0; // USER_HZ, fixed at 100 on Linux for /proc/stat
    let busy = get(0) + get(1) + get(2) + get(5) + get(6) + get(7);
    Some((busy / hz, get(7) / hz))
}

fn ours() -> f64 {
    let secs = |who| {
        getrusage(who).map_or(0.0, |u| {
            let (a, b) = (u.user_time(), u.system_time());
            a.tv_sec() as f64
                + a.tv_usec() as f64 / 1e6
                + b.tv_sec() as f64
                + b.tv_usec() as f64 / 1e6
        })
    };
    secs(UsageWho::RUSAGE_SELF) + secs(UsageWho::RUSAGE_CHILDREN)
}

impl LoadProbe {
    /// Takes the starting snapshot.
    pub fn start() -> Self {
        LoadProbe {
            at: Instant::now(),
            host: host_busy(),
            ours: ours(),
        }
    }

    /// CPU used since `start` by other processes and the hypervisor (steal), each as a
    /// fraction of one core on average. Peers count as ours once reaped.
    pub fn others(&self) -> Option<(f64, f64)> {
        let (b0, s0) = self.host?;
        let (b1, s1) = host_busy()?;
        let wall = self.at.elapsed().as_secs_f64().max(1e-3);
        let others = ((b1 - b0) - (ours() - self.ours)).max(0.0) / wall;
        Some((others, (s1 - s0).max(0.0) / wall))
    }

    /// A note for the report when others used more than 5 % of a core on average since
    /// `start`.
    pub fn note(&self) -> Option<String> {
        let (others, steal) = self.others()?;
        (others > 0.05 || steal > 0.02).then(|| {
            format!(
                "other load during the run: {:.0} % of a core on average (hypervisor steal {:.0} %); \
                 spinning transports suffer most from it, figures may be contaminated",
                others * 100.0,
                steal * 100.0
            )
        })
    }
}
