//! Command-line options of the harness (hand-parsed: the harness keeps its build light).

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::time::Duration;

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
    /// `--json FILE`.
    pub json: Option<PathBuf>,
    /// `--csv FILE`.
    pub csv: Option<PathBuf>,
    /// `--svg FILE`.
    pub svg: Option<PathBuf>,
    /// `--fanout 1,2,4`: the fan-out comparison with these subscriber counts (empty: the
    /// ordinary 1:1 run).
    pub fanout: Vec<usize>,
}

/// The usage text printed by `--help` and on a bad argument.
pub const USAGE: &str = "\
usage: shmbus-bench [--quick] [--transports a,b,...] [--sizes 8,64,...] [--rounds N]
                    [--duration-ms MS] [--rate MSGS_PER_S] [--json FILE] [--csv FILE] [--svg FILE]
                    [--fanout N,N,...] [--list]

Measures every transport between two real processes pinned to distinct cores, in interleaved
rounds, and reports medians across rounds. Default sizes: 8,64,512,4096,65536.

--fanout 1,2,4: one publisher (the harness) and N subscriber processes per row instead: round
trip (publish, all N replies), publish cost, throughput per subscriber. --transports then names
fan-out transports (see --list); shmbus-spsc in the list is the 1:1 reference row.";

/// Sizes measured when `--sizes` is not given.
pub const DEFAULT_SIZES: [usize; 5] = [8, 64, 512, 4096, 65536];

/// What the command line asked for: a run, the transport list, or the usage text.
#[derive(Debug)]
pub enum Command {
    /// Measure.
    Run(Box<Options>),
    /// `--list`: print the known transports.
    List,
    /// `--help`.
    Help,
}

fn parse_list<T: std::str::FromStr>(flag: &str, value: &str) -> Result<Vec<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    value
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim()
                .parse::<T>()
                .with_context(|| format!("{flag}: cannot parse {s:?}"))
        })
        .collect()
}

/// Parses the arguments that follow the program name.
pub fn parse(args: &[String]) -> Result<Command> {
    let mut quick = false;
    let mut transports = None;
    let mut sizes = None;
    let mut rounds = None;
    let mut phase_ms = None;
    let mut rate = None;
    let (mut json, mut csv, mut svg) = (None, None, None);
    let mut fanout = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || -> Result<String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .cloned()
                    .with_context(|| format!("{flag} needs a value")),
            }
        };
        match flag {
            "--quick" => quick = true,
            "--list" => return Ok(Command::List),
            "-h" | "--help" => return Ok(Command::Help),
            "--transports" => transports = Some(parse_list::<String>(flag, &value()?)?),
            "--sizes" => sizes = Some(parse_list::<usize>(flag, &value()?)?),
            "--rounds" => rounds = Some(value()?.parse::<usize>().context("--rounds")?),
            "--duration-ms" => phase_ms = Some(value()?.parse::<u64>().context("--duration-ms")?),
            "--rate" => rate = Some(value()?.parse::<u64>().context("--rate")?),
            "--json" => json = Some(PathBuf::from(value()?)),
            "--csv" => csv = Some(PathBuf::from(value()?)),
            "--svg" => svg = Some(PathBuf::from(value()?)),
            "--fanout" => fanout = parse_list::<usize>(flag, &value()?)?,
            other => bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    let sizes = sizes.unwrap_or_else(|| DEFAULT_SIZES.to_vec());
    if sizes.is_empty() {
        bail!("--sizes: give at least one size");
    }
    if let Some(bad) = sizes.iter().find(|&&s| !(8..=(1 << 24)).contains(&s)) {
        bail!("--sizes: {bad} is out of range 8..=16777216 (a message carries an 8-byte sequence number)");
    }
    if let Some(bad) = fanout.iter().find(|&&n| !(1..=64).contains(&n)) {
        bail!("--fanout: {bad} subscribers is out of range 1..=64");
    }
    let rounds = rounds.unwrap_or(if quick { 3 } else { 5 });
    if rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let phase = Duration::from_millis(phase_ms.unwrap_or(if quick { 80 } else { 300 }));
    let rate = rate.unwrap_or(10_000);
    if rate == 0 {
        bail!("--rate must be positive");
    }
    Ok(Command::Run(Box::new(Options {
        quick,
        transports: transports.unwrap_or_default(),
        sizes,
        rounds,
        phase,
        warmup: phase / 4,
        rate,
        idle: if quick {
            Duration::from_millis(50)
        } else {
            Duration::from_millis(200)
        },
        json,
        csv,
        svg,
        fanout,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn quick_with_lists_and_inline_values_parses() {
        let Command::Run(o) = parse(&args(
            "--quick --transports pipe,tcp --sizes=8,64 --json out.json",
        ))
        .unwrap() else {
            panic!("expected a run")
        };
        assert!(o.quick);
        assert_eq!(o.transports, ["pipe", "tcp"]);
        assert_eq!(o.sizes, [8, 64]);
        assert_eq!(o.json.unwrap().to_str(), Some("out.json"));
        assert!(o.fanout.is_empty());
    }

    #[test]
    fn fanout_counts_parse_and_zero_is_rejected() {
        let Command::Run(o) = parse(&args("--fanout 1,2,4 --sizes 8")).unwrap() else {
            panic!("expected a run")
        };
        assert_eq!(o.fanout, [1, 2, 4]);
        assert!(parse(&args("--fanout 0")).is_err());
    }

    #[test]
    fn sizes_below_a_sequence_number_are_rejected() {
        assert!(parse(&args("--sizes 4")).is_err());
        assert!(parse(&args("--bogus")).is_err());
    }
}
