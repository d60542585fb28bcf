//! `shmbus`: see, measure and clean the bus from a terminal.
//!
//! Every command but `gc` and `rm` is passive: it maps segments read-only through
//! `shmbus_ring::observe` and never registers an endpoint, so looking never changes what it
//! looks at. `docs/CLI.md` documents the commands, the JSON schemas and the exit codes.
//!
//! Exit codes: 0 success; 1 error (a segment that cannot be read: corrupt, foreign, of another
//! layout version, permission denied; or an I/O error); 2 usage (clap); 3 no such segment;
//! 4 refused (`rm` of a segment that is not stale).

/// `println!` for the command's output: when standard output is closed (the reader of a pipe
/// went away, `shmbus ls | head -1`), the command ends quietly with status 0, as a tool killed
/// by `SIGPIPE` would have ended, instead of `println!`'s panic (Rust ignores `SIGPIPE`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        if writeln!(out, $($arg)*).and_then(|()| out.flush()).is_err() {
            std::process::exit(0);
        }
    }};
}

mod bridges;
mod doctor;
mod gather;
mod out;
mod rates;
mod top;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use shmbus_ring::Error;

/// The `shmbus` command line.
#[derive(Parser, Debug)]
#[command(
    name = "shmbus",
    version,
    about = "See, measure and clean the shmbus bus"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// Output options shared by the commands.
#[derive(Args, Debug, Clone, Copy, Default)]
struct Format {
    /// Print one JSON document (schema `shmbus.<command>/1`, docs/CLI.md).
    #[arg(long, conflicts_with = "jsonl")]
    json: bool,
    /// Print one JSON object per line, as a stream (top, hz, bw, echo).
    #[arg(long)]
    jsonl: bool,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// List every shmbus segment on the host.
    Ls {
        /// Only names starting with this prefix (with or without the leading `/`).
        #[arg(long, default_value = "")]
        prefix: String,
        /// How long to watch each segment for its message rate, in milliseconds.
        #[arg(long, default_value_t = 200)]
        sample_ms: u64,
        #[command(flatten)]
        fmt: Format,
    },
    /// Show one segment: header, geometry, positions, endpoints, counters.
    Inspect {
        /// The segment's name (with or without the leading `/`).
        name: String,
        #[command(flatten)]
        fmt: Format,
    },
    /// A live, refreshing view of `ls` (a terminal UI; `q` quits).
    Top {
        /// Refresh period in milliseconds.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        /// Only names starting with this prefix.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Stop after this many refreshes (0: until `q`).
        #[arg(long, default_value_t = 0)]
        count: u64,
        #[command(flatten)]
        fmt: Format,
    },
    /// Message rate of a segment, with min/mean/max over a window.
    Hz(RateArgs),
    /// Byte rate of a segment, with min/mean/max over a window.
    Bw(RateArgs),
    /// Print messages as they pass, without taking them from the consumers.
    Echo {
        /// The segment's name.
        name: String,
        /// Stop after this many messages (0: never).
        #[arg(short = 'n', long, default_value_t = 0)]
        count: u64,
        /// Stop after this many seconds (0: never).
        #[arg(long, default_value_t = 0.0)]
        timeout: f64,
        /// Start with the messages still in the ring, not only new ones.
        #[arg(long)]
        from_oldest: bool,
        /// How to print payloads: auto (from the segment's codec), hex, text, json.
        #[arg(long, default_value = "auto")]
        decode: String,
        #[command(flatten)]
        fmt: Format,
    },
    /// Remove stale segments (creator and every endpoint dead). Dry run unless `--yes`.
    Gc {
        /// Remove them (otherwise only list them).
        #[arg(long)]
        yes: bool,
        /// Only names starting with this prefix.
        #[arg(long, default_value = "")]
        prefix: String,
        #[command(flatten)]
        fmt: Format,
    },
    /// Remove one segment, only if it is stale.
    Rm {
        /// The segment's name.
        name: String,
        #[command(flatten)]
        fmt: Format,
    },
    /// Check the host's limits that bite shared-memory transports.
    Doctor {
        #[command(flatten)]
        fmt: Format,
    },
    /// The bridges to other hosts (`shmbus-zenoh`) on this host: per topic, what each
    /// forwarded and dropped.
    Bridges {
        #[command(flatten)]
        fmt: Format,
    },
    /// Run the comparison harness (`shmbus-bench`); arguments after `--` go to it.
    Bench {
        /// Arguments for shmbus-bench (e.g. `-- --quick`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// Arguments of `hz` and `bw`.
#[derive(Args, Debug)]
struct RateArgs {
    /// The segment's name.
    name: String,
    /// Seconds per report.
    #[arg(long, default_value_t = 1.0)]
    period: f64,
    /// Reports the min/mean/max window spans (1 to 100 000).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    window: u32,
    /// Stop after this many reports (0: never).
    #[arg(long, default_value_t = 0)]
    count: u64,
    #[command(flatten)]
    fmt: Format,
}

/// A command's failure: the line to print and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// Exit code (module docs).
    pub code: u8,
    /// One line, naming the segment and the cause.
    pub message: String,
}

/// Exit code: error.
pub const EXIT_ERROR: u8 = 1;
/// Exit code: no such segment.
pub const EXIT_NOT_FOUND: u8 = 3;
/// Exit code: refused (`rm` of a segment that is not stale).
pub const EXIT_REFUSED: u8 = 4;

impl Failure {
    /// A failure of `name` caused by `e`.
    pub fn of(name: &str, e: &Error) -> Failure {
        if let Error::Os { op, code, .. } = e {
            if *op == "shm_open" && code.raw() == nix::libc::ENOENT {
                return Failure {
                    code: EXIT_NOT_FOUND,
                    message: format!("{name}: no such segment"),
                };
            }
        }
        let text = e.to_string();
        let message = if text.contains(name) {
            text
        } else {
            format!("{name}: {text}")
        };
        Failure {
            code: EXIT_ERROR,
            message,
        }
    }

    /// A failure with a message of its own.
    pub fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

/// `NAME` with the leading `/` shm names carry.
pub fn shm_name(name: &str) -> String {
    if name.starts_with('/') {
        name.to_string()
    } else {
        format!("/{name}")
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            let _ = std::io::stdout().flush();
            eprintln!("shmbus: {}", out::clean(&f.message));
            ExitCode::from(f.code)
        }
    }
}

fn secs(s: f64, what: &str) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero() || what == "timeout")
        .ok_or_else(|| {
            Failure::new(
                2,
                format!("--{what} {s}: give a positive number of seconds"),
            )
        })
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.cmd {
        Cmd::Ls {
            prefix,
            sample_ms,
            fmt,
        } => {
            let rows = gather::list(&prefix, Duration::from_millis(sample_ms));
            out::print_list(&rows, fmt)
        }
        Cmd::Inspect { name, fmt } => {
            let name = shm_name(&name);
            let detail = gather::inspect(&name)?;
            out::print_inspect(&detail, fmt)
        }
        Cmd::Top {
            interval_ms,
            prefix,
            count,
            fmt,
        } => top::run(
            &prefix,
            Duration::from_millis(interval_ms.max(100)),
            count,
            fmt,
        ),
        Cmd::Hz(a) => rates::run(&a, rates::Measure::Messages),
        Cmd::Bw(a) => rates::run(&a, rates::Measure::Bytes),
        Cmd::Echo {
            name,
            count,
            timeout,
            from_oldest,
            decode,
            fmt,
        } => rates::echo(&rates::EchoArgs {
            name: shm_name(&name),
            count,
            timeout: secs(timeout, "timeout")?,
            from_oldest,
            decode,
            fmt,
        }),
        Cmd::Gc { yes, prefix, fmt } => {
            let rows = gather::gc(&prefix, yes);
            out::print_gc(&rows, yes, fmt)
        }
        Cmd::Rm { name, fmt } => {
            let name = shm_name(&name);
            let row = gather::rm(&name)?;
            let removed = row.removed;
            out::print_gc(std::slice::from_ref(&row), true, fmt)?;
            if removed {
                Ok(())
            } else {
                Err(Failure::new(
                    EXIT_REFUSED,
                    format!("{name}: not removed: {}", row.why),
                ))
            }
        }
        Cmd::Doctor { fmt } => out::print_doctor(&doctor::checks(), fmt),
        Cmd::Bridges { fmt } => bridges::print(fmt),
        Cmd::Bench { args } => bench(&args),
    }
}

/// Runs `shmbus-bench` (next to this executable, else on `PATH`) with `args`.
fn bench(args: &[String]) -> Result<(), Failure> {
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("shmbus-bench")))
        .filter(|p| p.is_file());
    let program = sibling.unwrap_or_else(|| "shmbus-bench".into());
    let status = std::process::Command::new(&program)
        .args(args)
        .status()
        .map_err(|e| {
            Failure::new(
                EXIT_ERROR,
                format!(
                    "bench: cannot run {} ({e}); install the harness with \
                     `cargo install --path benches` (it provides shmbus-bench)",
                    program.display()
                ),
            )
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(Failure::new(
            EXIT_ERROR,
            format!("bench: shmbus-bench exited with {status}"),
        ))
    }
}
