//! `shmbus-bench`: shmbus against the kernel's IPC transports, in one run.
//!
//! Every transport is measured between two real processes — this binary and a copy of itself
//! started with a hidden role argument — pinned to distinct cores when the machine has them.
//! Every transport goes through the same [`transport::Endpoint`] trait and the same loops in
//! [`driver`], so the comparison is fair by construction. Rounds are interleaved (for each
//! size: the floors, then every transport; then again) and the report gives medians across
//! rounds with their spread, because these VMs' vCPUs move around and only figures measured
//! within seconds of each other compare.
//!
//! ```text
//! cargo run --release -p shmbus-bench -- [--quick] [--transports a,b] [--sizes 8,64,...]
//!     [--rounds N] [--ring-bytes 64KiB,1MiB] [--rtt-block N] [--json FILE] [--csv FILE]
//!     [--svg FILE]
//! cargo run --release -p shmbus-bench -- --fanout 1,2,4 [--transports a,b] [--sizes 8,...]
//! ```
//!
//! `--fanout` switches to the fan-out comparison (one publisher, N subscriber processes):
//! see [`fanout`].
#![forbid(unsafe_code)]

mod chart;
mod cli;
mod clock;
mod driver;
mod fanout;
mod load;
mod measure;
mod msg;
mod peer;
mod placement;
mod ratios;
mod report;
mod ring;
mod stats;
mod table;
mod targets;
mod transport;

use anyhow::{bail, Context, Result};
use cli::{Command, Options};
use indicatif::{ProgressBar, ProgressStyle};
use measure::{memcpy_floor, FLOOR_MEMCPY};
use report::{Machine, Record, Report};
use transport::{Class, Phase, Transport};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(peer::PEER_ROLE) {
        peer::peer_main(&args[1..]);
    }
    let parsed = match cli::parse(&args) {
        Ok(p) => p,
        // Help, or a usage error: clap prints it and picks the exit status (0 or 2).
        Err(e) => e.exit(),
    };
    let code = match parsed {
        Ok(Command::List) => {
            println!("{FLOOR_MEMCPY}");
            for t in transport::all() {
                println!("{}", t.name());
            }
            println!(
                "\nfan-out transports (--fanout N,...; {} is the 1:1 reference):",
                fanout::REFERENCE
            );
            for t in fanout::all() {
                println!("{}", t.name());
            }
            0
        }
        Ok(Command::Run(opts)) => match if opts.fanout.is_empty() {
            run(&opts)
        } else {
            fanout::run(&opts)
        } {
            Ok(true) => 0,
            Ok(false) => 1,
            Err(e) => {
                eprintln!("shmbus-bench: {e:#}");
                2
            }
        },
        Err(e) => {
            eprintln!("shmbus-bench: {e:#}");
            64
        }
    };
    std::process::exit(code);
}

/// The CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    match nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)) {
        Ok(set) => (0..nix::sched::CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn machine(placement: String, cores: usize) -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into());
    Machine {
        cpu,
        cores,
        kernel,
        placement,
    }
}

/// Runs the whole comparison; `Ok(false)` when some transport failed (and was dropped).
fn run(opts: &Options) -> Result<bool> {
    let known = transport::all();
    let (with_memcpy, transports): (bool, Vec<Box<dyn Transport>>) = if opts.transports.is_empty() {
        (true, known)
    } else {
        let mut v = Vec::new();
        for name in &opts.transports {
            if name == FLOOR_MEMCPY {
                continue;
            }
            match transport::by_name(name) {
                Some(t) => v.push(t),
                None => bail!(
                    "unknown transport {name:?} (known: {FLOOR_MEMCPY}, {})",
                    names(&transport::all())
                ),
            }
        }
        (opts.transports.iter().any(|n| n == FLOOR_MEMCPY), v)
    };

    let cpus = allowed_cpus();
    let (parent_cpu, peer_cpu, placement) = if cpus.len() >= 2 {
        (
            Some(cpus[0]),
            Some(cpus[1]),
            format!(
                "harness pinned to cpu{}, peer pinned to cpu{}",
                cpus[0], cpus[1]
            ),
        )
    } else {
        (
            None,
            None,
            format!(
                "not pinned: only {} cpu available, both processes share it",
                cpus.len()
            ),
        )
    };
    if let Some(c) = parent_cpu {
        peer::pin_to(c)?;
    }
    let mut notes = Vec::new();
    for t in &transports {
        for n in t.prepare(&opts.sizes) {
            notes.push(format!("{}: {n}", t.name()));
        }
    }
    let mut env = peer::RunEnv::new(peer_cpu)?;

    let supported = |t: &dyn Transport, size| {
        [Phase::RoundTrip, Phase::Stream, Phase::Rate]
            .iter()
            .any(|&p| t.supports(p, size))
    };
    let per_round: usize = opts
        .sizes
        .iter()
        .map(|&s| {
            usize::from(with_memcpy)
                + transports
                    .iter()
                    .filter(|t| supported(t.as_ref(), s))
                    .map(|t| {
                        if t.ring_bytes(s).is_some() {
                            opts.ring_bytes.len().max(1)
                        } else {
                            1
                        }
                    })
                    .sum::<usize>()
        })
        .sum();
    let bar = ProgressBar::new((per_round * opts.rounds) as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} round {prefix} {msg}")
            .expect("progress template")
            .progress_chars("=> "),
    );

    let rings: Vec<Option<u64>> = if opts.ring_bytes.is_empty() {
        vec![None]
    } else {
        opts.ring_bytes.iter().copied().map(Some).collect()
    };
    let clock_read_ns = clock::read_overhead_ns();
    let load = load::LoadProbe::start();
    let mut records = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    let mut hold = placement::Hold::new(opts.hold_placement);
    for round in 1..=opts.rounds {
        bar.set_prefix(format!("{round}/{}", opts.rounds));
        for (si, &size) in opts.sizes.iter().enumerate() {
            if with_memcpy {
                bar.set_message(format!("{FLOOR_MEMCPY} {size} B"));
                let probe = load::LoadProbe::start();
                let result = memcpy_floor(size, opts.phase);
                records.push(Record {
                    transport: FLOOR_MEMCPY.into(),
                    class: Class::Floor,
                    size,
                    round,
                    ring_bytes: None,
                    other_load: probe.others().map(|(o, steal)| o + steal),
                    result,
                });
                bar.inc(1);
            }
            for (t, ring) in transports.iter().flat_map(|t| {
                let sized = t.ring_bytes(size).is_some();
                rings
                    .iter()
                    .take(if sized { rings.len() } else { 1 })
                    .map(move |&r| (t, r))
            }) {
                if !supported(t.as_ref(), size) {
                    continue;
                }
                bar.inc(1);
                if failed.iter().any(|f| f == t.name()) {
                    continue;
                }
                ring::set_ring_bytes(ring);
                let ring_bytes = t.ring_bytes(size);
                bar.set_message(format!(
                    "{} {size} B{}",
                    t.name(),
                    ring_bytes.map_or(String::new(), |b| format!(", ring {}", ring::label(b)))
                ));
                let label = format!("{} {size} B round {round}", t.name());
                let mut attempt = 0;
                let (measured, probe) = loop {
                    let probe = load::LoadProbe::start();
                    let measured = measure::measure(&mut env, t.as_ref(), size, opts, si == 0);
                    let bracket = measured.as_ref().ok().and_then(|r| r.bracket);
                    if hold.judge(bracket, attempt, &label) == placement::Verdict::Keep {
                        break (measured, probe);
                    }
                    // Placements change on a scale of seconds to minutes: wait 1 s, then
                    // 2, 4 and 8 s at most, before measuring again.
                    bar.set_message(format!("{label}: off the run's placement, again"));
                    std::thread::sleep(placement::pause(attempt));
                    attempt += 1;
                };
                match measured {
                    Ok(result) => records.push(Record {
                        transport: t.name().into(),
                        class: t.class(),
                        size,
                        round,
                        ring_bytes,
                        other_load: probe.others().map(|(o, steal)| o + steal),
                        result,
                    }),
                    Err(e) => {
                        bar.suspend(|| eprintln!("FAILED {}: {e:#}", t.name()));
                        notes.push(format!(
                            "{}: FAILED and dropped from the run: {e:#}",
                            t.name()
                        ));
                        failed.push(t.name().into());
                    }
                }
            }
        }
    }
    bar.finish_and_clear();
    drop(env);
    notes.extend(load.note());
    notes.extend(hold.note());

    let report = Report::build(
        machine(placement, cpus.len()),
        &records,
        notes,
        opts.rounds,
        opts.rate,
        opts.quick,
    )
    .with_timing(clock_read_ns, opts.rtt_block);
    let targets = targets::evaluate(&report);
    print!("{}", report.table());
    print!("{}", targets::table(&targets, targets::ceiling(&report)));
    if let Some(p) = &opts.json {
        let mut doc = report.json();
        doc["targets"] = targets::json(&targets);
        doc["ratios"] = ratios::json(&report);
        let text = serde_json::to_string_pretty(&doc)?;
        std::fs::write(p, text + "\n").with_context(|| format!("writing {}", p.display()))?;
        println!("wrote {}", p.display());
    }
    if let Some(p) = &opts.csv {
        std::fs::write(p, report.csv()).with_context(|| format!("writing {}", p.display()))?;
        println!("wrote {}", p.display());
    }
    if let Some(p) = &opts.svg {
        chart::write_svg(&report, p)?;
        println!("wrote {}", p.display());
    }
    Ok(failed.is_empty())
}

fn names(ts: &[Box<dyn Transport>]) -> String {
    ts.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
}
