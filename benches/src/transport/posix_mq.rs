//! `posix-mq`: two POSIX message queues (parent→peer, peer→parent).
//!
//! The default limits (`/proc/sys/fs/mqueue/msg_max` = 10 messages, `msgsize_max` = 8192 bytes,
//! `RLIMIT_MSGQUEUE` = 800 KiB) are too small for 64 KiB messages; [`PosixMq::prepare`] raises
//! them where allowed (root) and says so, or reports what it could not do and skips the sizes
//! the queue cannot carry.

use super::{Class, Endpoint, Listening, Phase, SetupEnv, Transport};
use anyhow::{ensure, Context, Result};
use nix::mqueue::{mq_close, mq_open, mq_receive, mq_send, mq_unlink, MQ_OFlag, MqAttr, MqdT};
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::stat::Mode;
use std::cell::Cell;

/// Queue depth asked for (messages); capped by `msg_max` when it cannot be raised.
const WANT_DEPTH: i64 = 64;
const MSG_MAX: &str = "/proc/sys/fs/mqueue/msg_max";
const MSGSIZE_MAX: &str = "/proc/sys/fs/mqueue/msgsize_max";

/// POSIX message queues, depth and size limits settled by `prepare`.
pub struct PosixMq {
    /// Deepest queue allowed (`msg_max`, after raising it if we could).
    depth_max: Cell<i64>,
    /// Bytes the queues of one connection may take (`RLIMIT_MSGQUEUE` is per user).
    bytes: Cell<u64>,
    /// Largest message size the kernel accepted.
    max_size: Cell<usize>,
}

impl Default for PosixMq {
    fn default() -> Self {
        Self {
            depth_max: Cell::new(10),
            bytes: Cell::new(819_200),
            max_size: Cell::new(8192),
        }
    }
}

impl PosixMq {
    /// Depth for messages of `size` bytes: as deep as `msg_max` allows, but two queues of it
    /// must fit in `RLIMIT_MSGQUEUE` (the kernel charges about `size` + a pointer per slot).
    fn depth_for(&self, size: usize) -> i64 {
        let fit = self.bytes.get() / 2 / (size as u64 + 128);
        (fit as i64).min(self.depth_max.get())
    }
}

fn read_limit(path: &str) -> Option<i64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Raises the sysctl at `path` to at least `want`; returns a note for the report.
fn raise(path: &str, want: i64) -> (i64, Option<String>) {
    let Some(cur) = read_limit(path) else {
        return (0, Some(format!("cannot read {path}")));
    };
    if cur >= want {
        return (cur, None);
    }
    match std::fs::write(path, want.to_string()) {
        Ok(()) => (want, Some(format!("raised {path} {cur} -> {want}"))),
        Err(e) => (
            cur,
            Some(format!("could not raise {path} from {cur} to {want}: {e}")),
        ),
    }
}

fn try_create(name: &str, depth: i64, size: usize) -> Result<MqdT> {
    let attr = MqAttr::new(0, depth, size as i64, 0);
    mq_open(
        name,
        MQ_OFlag::O_CREAT | MQ_OFlag::O_EXCL | MQ_OFlag::O_RDWR,
        Mode::S_IRUSR | Mode::S_IWUSR,
        Some(&attr),
    )
    .with_context(|| format!("mq_open({name}, O_CREAT|O_EXCL, maxmsg={depth}, msgsize={size})"))
}

/// Two queues; the side that created them unlinks the names when it goes.
struct MqEndpoint {
    tx: Option<MqdT>,
    rx: Option<MqdT>,
    unlink: Vec<String>,
}

impl Endpoint for MqEndpoint {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let tx = self.tx.as_ref().context("mq closed")?;
        mq_send(tx, msg, 0).context("mq_send")?;
        Ok(())
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        let rx = self.rx.as_ref().context("mq closed")?;
        let mut prio = 0;
        let n = mq_receive(rx, buf, &mut prio).context("mq_receive")?;
        ensure!(
            n == buf.len(),
            "mq_receive: {n} bytes, expected {}",
            buf.len()
        );
        Ok(n)
    }
}

impl Drop for MqEndpoint {
    fn drop(&mut self) {
        for q in [self.tx.take(), self.rx.take()].into_iter().flatten() {
            let _ = mq_close(q);
        }
        for name in &self.unlink {
            let _ = mq_unlink(name.as_str());
        }
    }
}

impl Transport for PosixMq {
    fn name(&self) -> &'static str {
        "posix-mq"
    }

    fn class(&self) -> Class {
        Class::Kernel
    }

    fn supports(&self, _phase: Phase, size: usize) -> bool {
        size <= self.max_size.get() && self.depth_for(size) >= 1
    }

    fn prepare(&self, sizes: &[usize]) -> Vec<String> {
        let biggest = sizes.iter().copied().max().unwrap_or(8);
        let mut notes = Vec::new();
        let (msg_max, n1) = raise(MSG_MAX, WANT_DEPTH);
        let (size_max, n2) = raise(MSGSIZE_MAX, biggest as i64);
        notes.extend(n1);
        notes.extend(n2);
        self.depth_max.set(msg_max.clamp(1, WANT_DEPTH));
        // Two queues of depth x size per connection, plus kernel bookkeeping.
        let want_bytes = 2 * WANT_DEPTH as u64 * (biggest as u64 + 128) + 4096;
        if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_MSGQUEUE) {
            self.bytes.set(soft);
            if soft < want_bytes {
                match setrlimit(Resource::RLIMIT_MSGQUEUE, want_bytes, hard.max(want_bytes)) {
                    Ok(()) => {
                        self.bytes.set(want_bytes);
                        notes.push(format!("raised RLIMIT_MSGQUEUE {soft} -> {want_bytes} bytes"));
                    }
                    Err(e) => notes.push(format!(
                        "could not raise RLIMIT_MSGQUEUE from {soft} bytes ({e}): shallower queues for big messages"
                    )),
                }
            }
        }
        // Find out what the kernel really accepts (root may exceed the sysctls anyway).
        let probe = format!("/shmbus-bench-probe-{}", std::process::id());
        let mut max_ok = 0;
        for size in [biggest, size_max.max(8) as usize] {
            let depth = self.depth_for(size);
            if depth < 1 {
                continue;
            }
            if let Ok(q) = try_create(&probe, depth, size) {
                let _ = mq_close(q);
                let _ = mq_unlink(probe.as_str());
                max_ok = size;
                break;
            }
        }
        self.max_size.set(max_ok);
        if max_ok == 0 {
            notes.push("cannot create a message queue here: skipped".into());
            return notes;
        }
        let depths: Vec<String> = sizes
            .iter()
            .filter(|&&s| self.supports(Phase::Stream, s))
            .map(|&s| format!("{} B: {}", s, self.depth_for(s)))
            .collect();
        notes.push(format!("queue depth per size: {}", depths.join(", ")));
        if let Some(s) = sizes.iter().find(|&&s| !self.supports(Phase::Stream, s)) {
            notes.push(format!("sizes from {s} B skipped (message queue limits)"));
        }
        notes
    }

    fn listen(&self, env: &SetupEnv, size: usize) -> Result<Listening> {
        let base = format!("/{}", env.unique);
        let (down, up) = (format!("{base}-down"), format!("{base}-up"));
        let depth = self.depth_for(size);
        let tx = try_create(&down, depth, size)?;
        let rx = match try_create(&up, depth, size) {
            Ok(q) => q,
            Err(e) => {
                let _ = mq_close(tx);
                let _ = mq_unlink(down.as_str());
                return Err(e);
            }
        };
        let ep = MqEndpoint {
            tx: Some(tx),
            rx: Some(rx),
            unlink: vec![down, up],
        };
        Ok(Listening {
            arg: base,
            child_stdin: None,
            child_stdout: None,
            finish: Box::new(move || Ok(Box::new(ep) as Box<dyn Endpoint>)),
        })
    }

    fn connect(&self, arg: &str, _size: usize) -> Result<Box<dyn Endpoint>> {
        let open = |name: String, flag: MQ_OFlag| {
            mq_open(name.as_str(), flag, Mode::empty(), None)
                .with_context(|| format!("mq_open({name})"))
        };
        let rx = open(format!("{arg}-down"), MQ_OFlag::O_RDONLY)?;
        let tx = open(format!("{arg}-up"), MQ_OFlag::O_WRONLY)?;
        Ok(Box::new(MqEndpoint {
            tx: Some(tx),
            rx: Some(rx),
            unlink: Vec::new(),
        }))
    }
}
