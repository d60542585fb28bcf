//! Peers are real processes: the harness binary re-spawned with the hidden role argument
//! [`PEER_ROLE`]. The parent talks to a peer over a control socket (one line per command and
//! per reply) and to the transport under test through an [`Endpoint`].
//!
//! Control protocol, parent → peer: `rtt`, `stream`, `stream-lossy` (a fan-out subscriber
//! that may miss messages), `rate`, `idle`, `quit`; the peer answers `GO` when it is about to
//! run the phase, then `DONE key=value ...` when the phase ended (`end_ns` is when, on
//! CLOCK_MONOTONIC), or `ERR message` and exits.
//!
//! Every wait is bounded: the control socket has a read timeout, a [`Watchdog`] kills a peer
//! that outlives its deadline (and ends the harness if the parent stays stuck in a transport
//! call), a peer kills itself at its own deadline, and the kernel kills it if the parent dies
//! (`PR_SET_PDEATHSIG`).

use crate::clock::{cpu_ns, now_ns};
use crate::driver;
use crate::stats::Percentiles;
use crate::transport::{self, Endpoint, SetupEnv, Transport};
use anyhow::{anyhow, bail, Context, Result};
use nix::sched::{sched_setaffinity, CpuSet};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The hidden first argument that makes the binary a peer.
pub const PEER_ROLE: &str = "__shmbus_bench_peer";

/// Pins the calling thread (and threads it starts later) to `cpu`.
pub fn pin_to(cpu: usize) -> Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu)
        .with_context(|| format!("CpuSet::set({cpu})"))?;
    sched_setaffinity(Pid::from_raw(0), &set)
        .with_context(|| format!("sched_setaffinity(cpu {cpu})"))
}

/// Kills a stuck peer at a deadline; if the parent is still stuck a few seconds later (blocked
/// in a transport call that the peer's death does not interrupt), ends the harness.
#[derive(Clone)]
pub struct Watchdog {
    state: Arc<(Mutex<WatchState>, Condvar)>,
}

#[derive(Default)]
struct WatchState {
    generation: u64,
    /// Every peer being watched (one, or a fan-out's subscribers): deadline, pid, description.
    armed: Vec<(Instant, i32, String)>,
}

impl Watchdog {
    /// Starts the watchdog thread; `give_up` runs before it ends the process.
    pub fn start(give_up: impl Fn() + Send + 'static) -> Self {
        let w = Watchdog {
            state: Arc::new((Mutex::new(WatchState::default()), Condvar::new())),
        };
        let state = w.state.clone();
        std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || watch(&state, &give_up))
            .expect("spawn watchdog thread");
        w
    }

    /// Watches peer `pid` until `deadline`, described as `what` in the failure message
    /// (besides any other peer already watched).
    pub fn arm(&self, pid: u32, deadline: Instant, what: String) {
        let (m, cv) = &*self.state;
        let mut s = m.lock().expect("watchdog lock");
        s.generation += 1;
        let pid = pid as i32;
        s.armed.retain(|a| a.1 != pid);
        s.armed.push((deadline, pid, what));
        cv.notify_all();
    }

    /// Kills the peers being watched, if any (on Ctrl-C).
    pub fn kill_armed(&self) {
        let (m, _) = &*self.state;
        if let Ok(s) = m.lock() {
            for (_, pid, _) in &s.armed {
                let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
            }
        }
    }

    /// Stops watching peer `pid`.
    pub fn disarm(&self, pid: u32) {
        let (m, cv) = &*self.state;
        let mut s = m.lock().expect("watchdog lock");
        s.generation += 1;
        s.armed.retain(|a| a.1 != pid as i32);
        cv.notify_all();
    }
}

/// How often an armed watchdog looks whether the peer died (a dead peer leaves a parent that
/// spins on shared memory waiting forever; kernel transports see EOF instead).
const DEATH_POLL: Duration = Duration::from_millis(250);

/// Whether `pid` is a zombie: exited, not yet reaped.
fn exited(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

fn watch(state: &(Mutex<WatchState>, Condvar), give_up: &dyn Fn()) {
    let (m, cv) = state;
    let mut s = m.lock().expect("watchdog lock");
    loop {
        // The peer with the earliest deadline.
        let Some((deadline, pid, what)) = s.armed.iter().min_by_key(|a| a.0).cloned() else {
            s = cv.wait(s).expect("watchdog lock");
            continue;
        };
        let now = Instant::now();
        let generation = s.generation;
        let (pid, what, why) = if now >= deadline {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            (pid, what, "did not finish in time; peer killed")
        } else {
            s = cv
                .wait_timeout(s, (deadline - now).min(DEATH_POLL))
                .expect("watchdog lock")
                .0;
            if s.generation != generation {
                continue;
            }
            let Some((_, pid, what)) = s.armed.iter().find(|a| exited(a.1)).cloned() else {
                continue;
            };
            (pid, what, "lost its peer, which exited unexpectedly")
        };
        // Give the main thread a moment to notice on its own (EOF, a reply, a normal reap).
        s = cv
            .wait_timeout_while(s, Duration::from_secs(3), |s| s.generation == generation)
            .expect("watchdog lock")
            .0;
        if s.generation == generation {
            eprintln!("\nshmbus-bench: {what} {why} (pid {pid}); giving up");
            give_up();
            std::process::exit(2);
        }
    }
}

/// What the parent keeps for the whole run: the scratch directory, the control socket every
/// peer connects to, where peers are pinned, and the watchdog.
pub struct RunEnv {
    /// Scratch directory (sockets, FIFOs), removed on drop.
    pub dir: PathBuf,
    listener: UnixListener,
    /// The core peers are pinned to, if pinning.
    pub peer_cpu: Option<usize>,
    watchdog: Watchdog,
    next_id: Arc<std::sync::atomic::AtomicU64>,
}

impl RunEnv {
    /// Creates the scratch directory and the control socket.
    /// Call before starting any thread: it blocks SIGINT and SIGTERM for the threads to come.
    pub fn new(peer_cpu: Option<usize>) -> Result<Self> {
        termination_signals()
            .thread_block()
            .context("pthread_sigmask")?;
        let dir = std::env::temp_dir().join(format!("shmbus-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
        let ctl = dir.join("ctl.sock");
        let listener =
            UnixListener::bind(&ctl).with_context(|| format!("bind({})", ctl.display()))?;
        listener.set_nonblocking(true)?;
        let next_id: Arc<std::sync::atomic::AtomicU64> = Arc::default();
        let (d, ids) = (dir.clone(), next_id.clone());
        let env = Self {
            dir,
            listener,
            peer_cpu,
            watchdog: Watchdog::start(move || remove_run_objects(&d, &ids)),
            next_id,
        };
        clean_up_on_signals(&env)?;
        Ok(env)
    }

    fn ctl_path(&self) -> PathBuf {
        self.dir.join("ctl.sock")
    }

    /// A name unique to one connection (or one fan-out group) of this run.
    pub fn unique(&self) -> String {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        format!("{}{id}", name_prefix())
    }
}

/// The prefix of every name (shm object, message queue, scratch file) this run creates; the
/// connection number follows it.
pub fn name_prefix() -> String {
    format!("shmbus-bench-{}-", std::process::id())
}

/// Removes what this run created and whose owners' destructors will not run because the
/// process is about to exit: shared-memory objects, message queues, the scratch directory.
fn remove_run_objects(dir: &Path, ids: &std::sync::atomic::AtomicU64) {
    let prefix = name_prefix();
    if let Ok(entries) = std::fs::read_dir("/dev/shm") {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    for id in 1..=ids.load(std::sync::atomic::Ordering::Relaxed) {
        for end in ["down", "up"] {
            let _ = nix::mqueue::mq_unlink(format!("/{prefix}{id}-{end}").as_str());
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// SIGINT and SIGTERM, which the run handles itself (see [`clean_up_on_signals`]).
fn termination_signals() -> nix::sys::signal::SigSet {
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set
}

/// On SIGINT or SIGTERM: kill the running peer, remove this run's shared-memory objects,
/// message queues and scratch directory (their owners' destructors will not run), and exit.
/// The signals are blocked in every thread (the mask is set in [`RunEnv::new`] before any
/// thread starts, and inherited) and taken with `sigwait` by one thread here.
fn clean_up_on_signals(env: &RunEnv) -> Result<()> {
    let set = termination_signals();
    let (watchdog, dir, ids) = (env.watchdog.clone(), env.dir.clone(), env.next_id.clone());
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let Ok(sig) = set.wait() else { return };
            watchdog.kill_armed();
            remove_run_objects(&dir, &ids);
            eprintln!("\nshmbus-bench: {sig:?}: peer killed, shared memory and queues removed");
            std::process::exit(130);
        })
        .context("spawn the signal thread")?;
    Ok(())
}

impl Drop for RunEnv {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running peer process, killed and reaped on drop.
pub struct Peer {
    child: Child,
    ctl_rx: BufReader<UnixStream>,
    ctl_tx: UnixStream,
    watchdog: Watchdog,
    label: String,
}

/// How to start one peer process: see [`Peer::start`].
pub struct PeerSpec<'a> {
    /// The transport name the peer resolves (a fan-out subscriber's is prefixed with
    /// [`crate::fanout::ROLE_PREFIX`]).
    pub role: &'a str,
    /// Message size, bytes.
    pub size: usize,
    /// The CPU to pin the peer to, if pinning.
    pub cpu: Option<usize>,
    /// The transport's argument for the peer.
    pub arg: &'a str,
    /// Becomes the peer's standard input.
    pub stdin: Option<std::os::fd::OwnedFd>,
    /// Becomes the peer's standard output.
    pub stdout: Option<std::os::fd::OwnedFd>,
    /// How failures name this peer.
    pub label: String,
    /// The bracketing floor's shared line the peer attaches to (see [`Peer::spawn`]).
    pub bracket: Option<&'a str>,
}

/// A started peer, the parent's endpoint of the transport, and of the bracketing floor.
pub type Spawned = (Peer, Box<dyn Endpoint>, Box<dyn Endpoint>);

/// Parsed `key=value` fields of a `DONE` reply.
pub type Fields = HashMap<String, String>;

/// Reads a numeric field of a reply.
pub fn field(f: &Fields, key: &str) -> Result<u64> {
    f.get(key)
        .ok_or_else(|| anyhow!("peer reply lacks {key}"))?
        .parse()
        .with_context(|| format!("peer reply field {key}"))
}

impl Peer {
    /// Sets up `transport` for messages of `size` bytes, starts a peer for it, and returns the
    /// peer and the parent's endpoint, or fails (killing the peer) within `budget`.
    ///
    /// Besides the transport, the two processes share a `floor-cacheline` line: the
    /// bracketing floor, a short ping-pong the parent runs before and after the transport's
    /// phases ([`Peer::bracket`]), returned as the third value.
    pub fn spawn(
        env: &mut RunEnv,
        t: &dyn Transport,
        size: usize,
        budget: Duration,
    ) -> Result<Spawned> {
        let unique = env.unique();
        let label = format!("{} at {size} B", t.name());
        let floor = transport::bracket_floor()
            .listen(
                &SetupEnv {
                    dir: env.dir.clone(),
                    unique: format!("{unique}-bracket"),
                },
                8,
            )
            .with_context(|| format!("{label}: setting up the bracketing floor"))?;
        let listening = t
            .listen(
                &SetupEnv {
                    dir: env.dir.clone(),
                    unique,
                },
                size,
            )
            .with_context(|| format!("{label}: setting up"))?;
        let mut peer = Peer::start(
            env,
            PeerSpec {
                role: t.name(),
                size,
                cpu: env.peer_cpu,
                arg: &listening.arg,
                stdin: listening.child_stdin,
                stdout: listening.child_stdout,
                label,
                bracket: Some(&floor.arg),
            },
            budget,
        )?;
        let ep = (listening.finish)().with_context(|| format!("{}: connecting", peer.label))?;
        let floor =
            (floor.finish)().with_context(|| format!("{}: bracketing floor", peer.label))?;
        peer.expect_line("READY")?;
        Ok((peer, ep, floor))
    }

    /// Starts a peer process and accepts its control connection (it answers `READY` once
    /// attached to the transport: see [`Peer::ready`]).
    pub fn start(env: &RunEnv, spec: PeerSpec<'_>, budget: Duration) -> Result<Peer> {
        let PeerSpec {
            role,
            size,
            cpu,
            arg,
            stdin,
            stdout,
            label,
            bracket,
        } = spec;
        let deadline = Instant::now() + budget;
        let mut cmd = Command::new(std::env::current_exe().context("current_exe")?);
        cmd.arg(PEER_ROLE)
            .arg(role)
            .arg(size.to_string())
            .arg(env.ctl_path())
            .arg(cpu.map_or("-".to_string(), |c| c.to_string()))
            .arg((budget + Duration::from_secs(5)).as_millis().to_string())
            .arg(arg)
            .arg(crate::ring::ring_bytes().map_or("-".to_string(), |b| b.to_string()))
            .arg(bracket.unwrap_or("-"))
            .stdin(stdin.map_or_else(Stdio::null, Stdio::from))
            .stdout(stdout.map_or_else(Stdio::null, Stdio::from))
            .stderr(Stdio::inherit());
        let child = cmd
            .spawn()
            .with_context(|| format!("{label}: spawning the peer"))?;
        // The peer's ends of pipes and sockets live in `cmd`: close our copies now.
        drop(cmd);
        env.watchdog.arm(child.id(), deadline, label.clone());
        let mut guard = ChildGuard(Some(child), env.watchdog.clone());
        let ctl = accept_until(&env.listener, deadline, guard.0.as_mut().expect("child"))
            .with_context(|| format!("{label}: waiting for the peer to connect"))?;
        ctl.set_nonblocking(false)?;
        ctl.set_read_timeout(Some(budget))?;
        Ok(Peer {
            child: guard.0.take().expect("child"),
            ctl_rx: BufReader::new(ctl.try_clone()?),
            ctl_tx: ctl,
            watchdog: env.watchdog.clone(),
            label,
        })
    }

    /// Waits until the peer has attached to its transport.
    pub fn ready(&mut self) -> Result<()> {
        self.expect_line("READY")
    }

    fn read_line(&mut self) -> Result<String> {
        let mut line = String::new();
        let n = self
            .ctl_rx
            .read_line(&mut line)
            .with_context(|| format!("{}: reading the control socket", self.label))?;
        if n == 0 {
            bail!(
                "{}: the peer closed its control socket (exited?)",
                self.label
            );
        }
        let line = line.trim_end().to_string();
        if let Some(msg) = line.strip_prefix("ERR ") {
            bail!("{}: peer failed: {msg}", self.label);
        }
        Ok(line)
    }

    fn expect_line(&mut self, want: &str) -> Result<()> {
        let got = self.read_line()?;
        if got != want {
            bail!(
                "{}: expected {want:?} from the peer, got {got:?}",
                self.label
            );
        }
        Ok(())
    }

    /// Sends a command and waits until the peer is about to run it.
    pub fn begin(&mut self, cmd: &str) -> Result<()> {
        writeln!(self.ctl_tx, "{cmd}").with_context(|| format!("{}: sending {cmd}", self.label))?;
        self.expect_line("GO")
    }

    /// Waits for the peer's `DONE` and parses its fields.
    pub fn done(&mut self) -> Result<Fields> {
        let line = self.read_line()?;
        let rest = line
            .strip_prefix("DONE")
            .ok_or_else(|| anyhow!("{}: expected DONE, got {line:?}", self.label))?;
        Ok(rest
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    /// Tells the peer to exit and reaps it.
    pub fn quit(mut self) -> Result<()> {
        let _ = writeln!(self.ctl_tx, "quit");
        let status = wait_bounded(&mut self.child, Duration::from_secs(2));
        match status {
            Some(s) if s.success() => Ok(()),
            Some(s) => bail!("{}: peer exited with {s}", self.label),
            None => bail!("{}: peer did not exit after quit; killed", self.label),
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if wait_bounded(&mut self.child, Duration::from_millis(1)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.watchdog.disarm(self.child.id());
    }
}

/// Kills the child (and disarms the watchdog) if setup fails before a [`Peer`] owns it.
struct ChildGuard(Option<Child>, Watchdog);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
            self.1.disarm(c.id());
        }
    }
}

fn wait_bounded(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let end = Instant::now() + limit;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn accept_until(
    listener: &UnixListener,
    deadline: Instant,
    child: &mut Child,
) -> Result<UnixStream> {
    loop {
        match listener.accept() {
            Ok((s, _)) => return Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e).context("accept on the control socket"),
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!("peer exited before connecting: {status}");
        }
        if Instant::now() >= deadline {
            bail!("peer did not connect in time");
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Entry point of a peer process: `PEER_ROLE transport size ctl-path cpu|- deadline-ms arg`.
pub fn peer_main(args: &[String]) -> ! {
    let [name, size, ctl, cpu, deadline_ms, arg, ring, bracket] = args else {
        eprintln!("shmbus-bench peer: bad arguments {args:?}");
        std::process::exit(64);
    };
    // Die with the parent, and by our own deadline at the latest.
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    if nix::unistd::getppid() == Pid::from_raw(1) {
        std::process::exit(1);
    }
    let limit = Duration::from_millis(deadline_ms.parse().unwrap_or(60_000));
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("shmbus-bench peer: deadline passed, exiting");
        std::process::exit(3);
    });
    let mut ctl = match UnixStream::connect(Path::new(ctl)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("shmbus-bench peer: connect({ctl}): {e}");
            std::process::exit(1);
        }
    };
    if ring != "-" {
        crate::ring::set_ring_bytes(ring.parse().ok());
    }
    let bracket = (bracket != "-").then_some(bracket.as_str());
    let code = match serve(name, size, cpu, arg, bracket, &mut ctl) {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(ctl, "ERR {}", format!("{e:#}").replace('\n', " "));
            1
        }
    };
    std::process::exit(code);
}

fn serve(
    name: &str,
    size: &str,
    cpu: &str,
    arg: &str,
    bracket: Option<&str>,
    ctl: &mut UnixStream,
) -> Result<()> {
    let size: usize = size.parse().context("size")?;
    if cpu != "-" {
        pin_to(cpu.parse().context("cpu")?)?;
    }
    let mut floor = match bracket {
        Some(b) => Some(
            transport::bracket_floor()
                .connect(b, 8)
                .context("bracketing floor: connecting")?,
        ),
        None => None,
    };
    let mut ep = match name.strip_prefix(crate::fanout::ROLE_PREFIX) {
        // A fan-out subscriber: receives from the publisher, replies on its own return path.
        Some(fan) => crate::fanout::by_name(fan)
            .ok_or_else(|| anyhow!("unknown fan-out transport {fan}"))?
            .connect(arg, size)
            .with_context(|| format!("{fan} fan-out subscriber: connecting"))?,
        None => transport::by_name(name)
            .ok_or_else(|| anyhow!("unknown transport {name}"))?
            .connect(arg, size)
            .with_context(|| format!("{name}: connecting"))?,
    };
    writeln!(ctl, "READY")?;
    let mut rx = BufReader::new(ctl.try_clone()?);
    let mut line = String::new();
    loop {
        line.clear();
        if rx.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let cmd = line.trim();
        if cmd == "quit" {
            return Ok(());
        }
        writeln!(ctl, "GO")?;
        let (cpu0, t0) = (cpu_ns(), now_ns());
        let reply = match cmd {
            "rtt" => format!("count={}", driver::rtt_echo(ep.as_mut(), size)?),
            "floor" => match floor.as_mut() {
                Some(f) => format!("count={}", driver::rtt_echo(f.as_mut(), 8)?),
                None => bail!("no bracketing floor"),
            },
            "stream-batch" => format!("count={}", driver::stream_recv_batch(ep.as_mut(), size)?),
            "stream" => format!("count={}", driver::stream_recv(ep.as_mut(), size)?),
            "stream-lossy" => {
                let (count, missed) = driver::stream_recv_lossy(ep.as_mut(), size)?;
                format!("count={count} missed={missed}")
            }
            "rate" => Percentiles::of(&driver::rate_recv(ep.as_mut(), size)?).encode(),
            "idle" => {
                driver::idle_recv(ep.as_mut(), size)?;
                String::new()
            }
            other => bail!("unknown command {other:?}"),
        };
        let (cpu1, t1) = (cpu_ns(), now_ns());
        writeln!(
            ctl,
            "DONE {reply} cpu_ns={} wall_ns={} end_ns={t1}",
            cpu1 - cpu0,
            t1 - t0
        )?;
    }
}
