//! Command-line options of the harness, parsed by clap (derive).

use crate::ring::parse_bytes;
use anyhow::{bail, Result};
use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;

/// Sizes measured when `--sizes` is not given.
pub const DEFAULT_SIZES: [usize; 5] = [8, 64, 512, 4096, 65536];

/// Sizes measured by `--quick` when `--sizes` is not given (the run stays near a minute).
pub const QUICK_SIZES: [usize; 3] = [8, 1024, 65536];

/// Round trips per timed block when `--rtt-block` is not given.
pub const DEFAULT_RTT_BLOCK: usize = 16;

/// The command line as clap sees it.
#[derive(Parser, Debug)]
#[command(
    name = "shmbus-bench",
    about = "Measures every transport between two real processes pinned to distinct cores, in \
             interleaved rounds, and reports medians across rounds.",
    after_help = "--fanout 1,2,4: one publisher (the harness) and N subscriber processes per row \
                  instead: round trip (publish, all N replies), publish cost, throughput per \
                  subscriber. --transports then names fan-out transports (see --list); \
                  shmbus-spsc in the list is the 1:1 reference row."
)]
struct Args {
    /// Short phases (50 ms), 3 rounds, sizes 8,1024,65536: the whole run takes about a
    /// minute on a quiet 2-core machine.
    #[arg(long)]
    quick: bool,
    /// Print the known transports and exit.
    #[arg(long)]
    list: bool,
    /// Transports to measure, in run order (default: all; see --list).
    #[arg(long, value_delimiter = ',', value_name = "A,B,...")]
    transports: Vec<String>,
    /// Message sizes in bytes [default: 8,64,512,4096,65536; --quick 8,1024,65536].
    #[arg(long, value_delimiter = ',', value_name = "N,N,...")]
    sizes: Vec<usize>,
    /// Interleaved rounds; results are medians across rounds [default: 5, --quick 3].
    #[arg(long, value_name = "N")]
    rounds: Option<usize>,
    /// Length of each timed phase, ms [default: 300, --quick 50].
    #[arg(long, value_name = "MS")]
    duration_ms: Option<u64>,
    /// Offered rate of the one-way latency phase, messages per second.
    #[arg(long, value_name = "MSGS_PER_S", default_value_t = 10_000)]
    rate: u64,
    /// Data bytes of every shmbus ring (and of floor-ring), e.g. 65536, 64KiB, 1MiB; a list
    /// runs every ring transport once per ring size [default: 64 KiB, or 8 messages when
    /// larger].
    #[arg(long, value_delimiter = ',', value_name = "BYTES,...", value_parser = parse_bytes)]
    ring_bytes: Vec<u64>,
    /// Round trips per timed block: the round-trip p50 is read from blocks of this many round
    /// trips (one clock pair per block), besides the per-round-trip histogram.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_RTT_BLOCK)]
    rtt_block: usize,
    /// Write the results as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write the results as CSV.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Write the chart as SVG.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// The fan-out comparison with these subscriber counts.
    #[arg(long, value_delimiter = ',', value_name = "N,N,...")]
    fanout: Vec<usize>,
    /// Hold the run to one placement of the two cores: a transport whose bracketing floors
    /// (before or after it) are more than 1.6x off the run's first steady floor is measured
    /// again, up to N more times, and the report counts what was redone. For VMs whose vCPUs
    /// move between placements with different cache-line costs [default: 0, off].
    #[arg(long, value_name = "N", default_value_t = 0)]
    hold_placement: usize,
}

/// Everything one run of the harness is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--quick`: short phases and few rounds; the whole run stays under a minute.
    pub quick: bool,
    /// Transports to measure, in run order (`--transports a,b`); floors are always included
    /// unless the list names transports explicitly and leaves the floors out.
    pub transports: Vec<String>,
    /// Message sizes in bytes (`--sizes 8,64`).
    pub sizes: Vec<usize>,
    /// Interleaved rounds (`--rounds N`); results are medians across rounds.
    pub rounds: usize,
    /// Length of each timed phase (`--duration-ms`).
    pub phase: Duration,
    /// Untimed warm-up before the round-trip phase.
    pub warmup: Duration,
    /// Offered rate of the one-way latency phase, messages per second (`--rate`).
    pub rate: u64,
    /// How long a receiver sits blocked in the idle-CPU phase.
    pub idle: Duration,
    /// `--ring-bytes`: the ring sizes to run (empty: the default rule of
    /// [`crate::ring::capacity_for`]).
    pub ring_bytes: Vec<u64>,
    /// `--rtt-block`: round trips per timed block.
    pub rtt_block: usize,
    /// `--json FILE`.
    pub json: Option<PathBuf>,
    /// `--csv FILE`.
    pub csv: Option<PathBuf>,
    /// `--svg FILE`.
    pub svg: Option<PathBuf>,
    /// `--fanout 1,2,4`: the fan-out comparison with these subscriber counts (empty: the
    /// ordinary 1:1 run).
    pub fanout: Vec<usize>,
    /// `--hold-placement N`: measure a transport again (up to N times) when its bracketing
    /// floors say the cores' placement is not the run's (0: off).
    pub hold_placement: usize,
}

/// What the command line asked for: a run or the transport list (clap prints `--help` and
/// usage errors itself).
#[derive(Debug)]
pub enum Command {
    /// Measure.
    Run(Box<Options>),
    /// `--list`: print the known transports.
    List,
}

/// Parses the arguments that follow the program name; `Err` carries clap's message (help,
/// version or a usage error), which the caller prints and exits with.
pub fn parse(args: &[String]) -> std::result::Result<Result<Command>, clap::Error> {
    let a = Args::try_parse_from(
        std::iter::once("shmbus-bench".to_string()).chain(args.iter().cloned()),
    )?;
    Ok(validate(a))
}

fn validate(a: Args) -> Result<Command> {
    if a.list {
        return Ok(Command::List);
    }
    let sizes = if a.sizes.is_empty() && a.quick {
        QUICK_SIZES.to_vec()
    } else if a.sizes.is_empty() {
        DEFAULT_SIZES.to_vec()
    } else {
        a.sizes
    };
    if let Some(bad) = sizes.iter().find(|&&s| !(8..=(1 << 24)).contains(&s)) {
        bail!("--sizes: {bad} is out of range 8..=16777216 (a message carries an 8-byte sequence number)");
    }
    if let Some(bad) = a.fanout.iter().find(|&&n| !(1..=64).contains(&n)) {
        bail!("--fanout: {bad} subscribers is out of range 1..=64");
    }
    if let Some(bad) = a
        .ring_bytes
        .iter()
        .find(|&&b| !(crate::ring::MIN_RING..=crate::ring::MAX_RING).contains(&b))
    {
        bail!(
            "--ring-bytes: {bad} is out of range {}..={}",
            crate::ring::MIN_RING,
            crate::ring::MAX_RING
        );
    }
    if !a.fanout.is_empty() && a.ring_bytes.len() > 1 {
        bail!("--ring-bytes: the fan-out comparison takes one ring size");
    }
    let rounds = a.rounds.unwrap_or(if a.quick { 3 } else { 5 });
    if rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    if a.rtt_block == 0 {
        bail!("--rtt-block must be at least 1");
    }
    let phase = Duration::from_millis(a.duration_ms.unwrap_or(if a.quick { 50 } else { 300 }));
    if a.rate == 0 {
        bail!("--rate must be positive");
    }
    let mut ring_bytes = a.ring_bytes;
    ring_bytes.dedup();
    Ok(Command::Run(Box::new(Options {
        quick: a.quick,
        transports: a
            .transports
            .into_iter()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect(),
        sizes,
        rounds,
        phase,
        warmup: phase / 4,
        rate: a.rate,
        idle: if a.quick {
            Duration::from_millis(50)
        } else {
            Duration::from_millis(200)
        },
        ring_bytes,
        rtt_block: a.rtt_block,
        json: a.json,
        csv: a.csv,
        svg: a.svg,
        fanout: a.fanout,
        hold_placement: a.hold_placement,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(s: &str) -> Options {
        let args: Vec<String> = s.split_whitespace().map(String::from).collect();
        match parse(&args) {
            Ok(Ok(Command::Run(o))) => *o,
            other => panic!("{s}: expected a run, got {other:?}"),
        }
    }

    fn refused(s: &str) -> bool {
        let args: Vec<String> = s.split_whitespace().map(String::from).collect();
        !matches!(parse(&args), Ok(Ok(_)))
    }

    #[test]
    fn quick_with_lists_and_inline_values_parses() {
        let o = run("--quick --transports pipe,tcp --sizes=8,64 --json out.json");
        assert!(o.quick);
        assert_eq!(o.transports, ["pipe", "tcp"]);
        assert_eq!(o.sizes, [8, 64]);
        assert_eq!(o.json.unwrap().to_str(), Some("out.json"));
        assert!(o.fanout.is_empty());
        assert_eq!(o.rounds, 3);
        assert_eq!(o.phase, Duration::from_millis(50));
        assert_eq!(run("--quick").sizes, QUICK_SIZES);
        assert!(o.ring_bytes.is_empty());
        assert_eq!(o.rtt_block, DEFAULT_RTT_BLOCK);
    }

    #[test]
    fn every_documented_flag_parses() {
        let o = run(
            "--transports a --sizes 8 --rounds 2 --duration-ms 20 --rate 500 \
                     --json j --csv c --svg s --ring-bytes 64KiB,1MiB,4096 --rtt-block 4",
        );
        assert_eq!(o.rounds, 2);
        assert_eq!(o.phase, Duration::from_millis(20));
        assert_eq!(o.rate, 500);
        assert_eq!(o.ring_bytes, [65536, 1 << 20, 4096]);
        assert_eq!(o.rtt_block, 4);
        assert_eq!(o.csv.unwrap().to_str(), Some("c"));
        assert_eq!(o.svg.unwrap().to_str(), Some("s"));
        assert_eq!(run("").sizes, DEFAULT_SIZES);
        assert_eq!(run("").rounds, 5);
        let args = vec!["--list".to_string()];
        assert!(matches!(parse(&args), Ok(Ok(Command::List))));
    }

    #[test]
    fn fanout_counts_parse_and_zero_is_rejected() {
        assert_eq!(run("--fanout 1,2,4 --sizes 8").fanout, [1, 2, 4]);
        assert!(refused("--fanout 0"));
        assert!(refused("--fanout 1 --ring-bytes 64KiB,1MiB"));
    }

    #[test]
    fn bad_values_are_rejected() {
        assert!(refused("--sizes 4"));
        assert!(refused("--bogus"));
        assert!(refused("--rounds 0"));
        assert!(refused("--rounds"));
        assert!(refused("--ring-bytes 12parsecs"));
        assert!(refused("--ring-bytes 100"));
        assert!(refused("--rtt-block 0"));
        assert!(refused("--rate 0"));
    }
}
