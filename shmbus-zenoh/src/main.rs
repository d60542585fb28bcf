//! The `shmbus-zenoh` command: `shmbus-zenoh run --config FILE` (see the README).

#![forbid(unsafe_code)]

use clap::{Args, Parser, Subcommand};
use shmbus_zenoh::{
    Bridge, ChannelExportRule, ChannelImportRule, Config, Congestion, ExportRule, ImportRule,
    Overflow,
};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "shmbus-zenoh",
    version,
    about = "Bridges shmbus topics and channels across hosts over Zenoh"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a bridge until SIGINT or SIGTERM.
    Run(Box<RunArgs>),
    /// Prints the status files of the bridges on this host (JSON).
    Status {
        /// The status directory (default: `shmbus-bridges` in the shm directory).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Args)]
struct RunArgs {
    /// A TOML configuration file; the flags below add to it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The domain (default `default`, or the file's).
    #[arg(long)]
    domain: Option<String>,
    /// A Zenoh endpoint to listen on (repeatable), e.g. `tcp/0.0.0.0:7447`.
    #[arg(long)]
    listen: Vec<String>,
    /// A Zenoh endpoint to connect to (repeatable), e.g. `tcp/10.0.0.2:7447`.
    #[arg(long)]
    connect: Vec<String>,
    /// Find peers by UDP multicast scouting too (off by default).
    #[arg(long)]
    multicast_scouting: bool,
    /// A local topic pattern to export (repeatable): `orders/**`, `md/*`, `prices`.
    #[arg(long)]
    export: Vec<String>,
    /// Export tethered: lossless, a slow network slows the local publisher.
    #[arg(long)]
    tethered: bool,
    /// Zenoh congestion control of the flag exports.
    #[arg(long, value_enum, default_value_t = Congestion::Drop)]
    congestion: Congestion,
    /// A remote topic pattern to import (repeatable).
    #[arg(long)]
    import: Vec<String>,
    /// The per-topic import queue, in messages.
    #[arg(long, default_value_t = 256)]
    queue: usize,
    /// What an import does when its queue is full.
    #[arg(long, value_enum, default_value_t = Overflow::DropOldest)]
    overflow: Overflow,
    /// A local channel to export, by name without the leading `/` or pattern (repeatable):
    /// the bridge becomes one of its receivers.
    #[arg(long)]
    export_channel: Vec<String>,
    /// A remote channel to import (repeatable): the bridge becomes one of its senders here.
    #[arg(long)]
    import_channel: Vec<String>,
    /// The credit window of the flag channel imports, in messages.
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// The shm directory of the local topics and channels.
    #[arg(long)]
    shm_dir: Option<PathBuf>,
    /// Where to write the status file (default: `shmbus-bridges` in the shm directory).
    #[arg(long)]
    status_dir: Option<PathBuf>,
}

impl RunArgs {
    fn config(self) -> Result<Config, shmbus_zenoh::BridgeError> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(d) = self.domain {
            c.domain = d;
        }
        c.zenoh.listen.extend(self.listen);
        c.zenoh.connect.extend(self.connect);
        c.zenoh.multicast_scouting |= self.multicast_scouting;
        if !self.export.is_empty() {
            c.export.push(ExportRule {
                topics: self.export,
                deny: Vec::new(),
                tethered: self.tethered,
                congestion: self.congestion,
            });
        }
        if !self.import.is_empty() {
            let mut rule = ImportRule::new(self.import);
            rule.queue = self.queue;
            rule.overflow = self.overflow;
            c.import.push(rule);
        }
        if !self.export_channel.is_empty() {
            c.export_channel.push(ChannelExportRule {
                channels: self.export_channel,
                deny: Vec::new(),
            });
        }
        if !self.import_channel.is_empty() {
            let mut rule = ChannelImportRule::new(self.import_channel);
            rule.window = self.window;
            c.import_channel.push(rule);
        }
        if self.shm_dir.is_some() {
            c.shm_dir = self.shm_dir;
        }
        if self.status_dir.is_some() {
            c.status_dir = self.status_dir;
        }
        Ok(c)
    }
}

/// Waits for SIGINT or SIGTERM.
fn wait_for_signal() -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    })
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,zenoh=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Status { dir } => {
            let dir = dir.unwrap_or_else(|| {
                shmbus::ring::segment::shm_dir().join(shmbus_zenoh::status::STATUS_SUBDIR)
            });
            let all = shmbus_zenoh::status::read_all(&dir);
            match serde_json::to_string_pretty(&all) {
                Ok(s) => println!("{s}"),
                Err(e) => {
                    eprintln!("shmbus-zenoh: {e}");
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Command::Run(args) => {
            let bridge = match args.config().and_then(Bridge::start) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            // Printed for scripts and tests: the bridge is up.
            println!("ready {}", bridge.zid());
            if let Err(e) = wait_for_signal() {
                tracing::error!("cannot wait for signals: {e}");
            }
            tracing::info!("signal received, shutting down");
            bridge.shutdown();
            ExitCode::SUCCESS
        }
    }
}
