//! `eventfd`: the "one kernel wake-up per message" baseline for blocking shared-memory
//! transports. Every message is signalled with a `write(2)` of 1 to an eventfd in semaphore
//! mode, and the receiver blocks in `read(2)` on that eventfd before it takes the message: one
//! `read` per message, which sleeps whenever the message is not there yet (always, in a
//! ping-pong). Nothing spins.
//!
//! The payload travels through a shmbus SPSC ring per direction, created *without* wake-up
//! notification and used only through `try_push`/`try_pop` — the data path of `shmbus-spsc`,
//! so that against `shmbus-spsc-parked` (futex) this compares the wake-up mechanism alone.
//!
//! Back-pressure, which only streaming reaches: a sender that finds the ring full blocks in
//! `read` on a credit pipe; the receiver writes one byte to it for every quarter of a ring it
//! consumed (non-blocking: a full credit pipe already holds a wake-up), so the return path
//! costs one `write` per batch, not per message. A credit is a hint to retry, never a count.
//!
//! Descriptors reach the peer without `unsafe` (the harness forbids it): the two eventfds as
//! its stdin and stdout; the credit pipes and a liveness pipe are inherited (the parent makes
//! non-close-on-exec copies for the spawn and closes them once the peer runs) and the peer
//! reopens the credit pipes through `/proc/self/fd`. A parent thread waits for EOF on the
//! liveness pipe (the peer exited) and then wakes the parent's blocked eventfd `read`, which
//! fails instead of waiting for ever; a parent blocked for credits sees EOF itself.

use super::{peer_stdin, peer_stdout, Class, Endpoint, Listening, SetupEnv, Transport};
use crate::ring::capacity_for;
use anyhow::{anyhow, bail, ensure, Context, Result};
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::sys::eventfd::{EfdFlags, EventFd};
use shmbus::ring::{Consumer, PopError, Producer, PushError, SegmentOptions, SpscConfig, SpscRing};
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Shmbus rings for the payload, an eventfd write and a blocking eventfd read per message.
pub struct EventFdTransport;

/// What the liveness thread adds to the parent's eventfd when the peer is gone: more
/// wake-ups than any run sends messages.
const DEAD_WAKE: u64 = 1 << 40;

/// How many messages the receiver takes between two credit bytes: a quarter of what a full
/// ring holds (at least one), so a sender blocked on a full ring is always woken.
fn credit_batch(size: usize) -> u64 {
    let record = 8 + (size as u64).next_multiple_of(8);
    (capacity_for(size) / record / 4).max(1)
}

fn ring_config(size: usize) -> SpscConfig {
    SpscConfig::new(capacity_for(size)).notify(false)
}

fn options() -> SegmentOptions {
    SegmentOptions::default().prefault(true)
}

fn read_u64(f: &File) -> Result<u64> {
    let mut b = [0u8; 8];
    (&*f).read_exact(&mut b).context("read(eventfd)")?;
    Ok(u64::from_ne_bytes(b))
}

fn write_u64(f: &File, v: u64) -> Result<()> {
    (&*f).write_all(&v.to_ne_bytes()).context("write(eventfd)")
}

struct EfdEndpoint {
    tx: Producer,
    rx: Consumer,
    /// Written once per message sent.
    tx_data: File,
    /// Read (blocking) when the ring is full; EOF: the other side is gone.
    tx_credit: File,
    /// Read (blocking) once per message received.
    rx_data: File,
    /// Written (non-blocking) once per `batch` messages received.
    rx_credit: File,
    batch: u64,
    unreturned: u64,
    /// Parent side: set when the peer has exited.
    dead: Option<Arc<AtomicBool>>,
    _rings: [SpscRing; 2],
}

impl EfdEndpoint {
    #[inline]
    fn check_alive(&self) -> Result<()> {
        match &self.dead {
            // Acquire: pairs with the liveness thread's Release store before its wake-up.
            Some(d) if d.load(Ordering::Acquire) => {
                bail!("the peer exited (its end of the liveness pipe closed)")
            }
            _ => Ok(()),
        }
    }

    /// Blocks until the receiver hands back space (or at once if a hint is pending).
    #[cold]
    fn wait_for_credit(&mut self) -> Result<()> {
        let mut b = [0u8; 4096];
        match self.tx_credit.read(&mut b) {
            Ok(0) => bail!("the credit pipe closed (peer exited?)"),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(anyhow!(e).context("read(credit pipe)")),
        }
    }
}

impl Endpoint for EfdEndpoint {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        loop {
            match self.tx.try_push(msg) {
                Ok(()) => break,
                Err(PushError::Full) => self.wait_for_credit()?,
                Err(PushError::Disconnected) => {
                    bail!("try_push: the consumer detached (peer exited?)")
                }
                Err(e) => bail!("try_push: {e}"),
            }
        }
        write_u64(&self.tx_data, 1)
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        // The one blocking read per message (semaphore mode: takes exactly one).
        read_u64(&self.rx_data)?;
        self.check_alive()?;
        let n = match self.rx.try_pop(buf) {
            Ok(n) => n,
            Err(PopError::Empty) => bail!("woken by the eventfd, but the ring is empty"),
            Err(PopError::Disconnected) => bail!("try_pop: the producer detached (peer exited?)"),
            Err(e) => bail!("try_pop: {e}"),
        };
        ensure!(
            n == buf.len(),
            "try_pop: {n}-byte record, expected {}",
            buf.len()
        );
        self.unreturned += 1;
        if self.unreturned >= self.batch {
            match (&self.rx_credit).write(&[1]) {
                // A full credit pipe already holds wake-ups for the sender.
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == ErrorKind::BrokenPipe => {
                    bail!("the credit pipe closed (peer exited?)")
                }
                Err(e) => return Err(anyhow!(e).context("write(credit pipe)")),
            }
            self.unreturned = 0;
        }
        Ok(n)
    }
}

fn new_eventfd() -> Result<OwnedFd> {
    Ok(
        EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_SEMAPHORE)
            .context("eventfd")?
            .into(),
    )
}

fn set_cloexec(fd: &impl AsFd, yes: bool) -> Result<()> {
    let flags = if yes {
        FdFlag::FD_CLOEXEC
    } else {
        FdFlag::empty()
    };
    fcntl(fd.as_fd().as_raw_fd(), FcntlArg::F_SETFD(flags)).context("fcntl(F_SETFD)")?;
    Ok(())
}

fn set_nonblocking(fd: &impl AsFd) -> Result<()> {
    fcntl(fd.as_fd().as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
        .context("fcntl(F_SETFL)")?;
    Ok(())
}

/// Peer side: a new descriptor on the pipe inherited as descriptor `raw` (opened through
/// `/proc/self/fd`, for reading or writing), close-on-exec.
fn reopen_pipe(raw: &str, write: bool) -> Result<File> {
    let fd: u32 = raw.parse().with_context(|| format!("descriptor {raw:?}"))?;
    let path = format!("/proc/self/fd/{fd}");
    let link =
        std::fs::read_link(&path).with_context(|| format!("descriptor {fd} was not inherited"))?;
    let link = link.to_string_lossy();
    ensure!(
        link.starts_with("pipe:"),
        "descriptor {fd} is {link}, expected a pipe"
    );
    std::fs::OpenOptions::new()
        .read(!write)
        .write(write)
        .open(&path)
        .with_context(|| format!("open({path})"))
}

/// Parent side: waits for EOF on the liveness pipe (every copy of its write end closed: the
/// peer exited), then marks the endpoint dead and wakes a `recv` blocked on `wake`.
fn watch_peer(alive: OwnedFd, dead: Arc<AtomicBool>, wake: File) -> Result<()> {
    std::thread::Builder::new()
        .name("eventfd-liveness".into())
        .spawn(move || {
            let mut pipe = File::from(alive);
            let mut b = [0u8; 1];
            loop {
                match pipe.read(&mut b) {
                    Ok(0) => break,
                    Err(e) if e.kind() != ErrorKind::Interrupted => break,
                    _ => {}
                }
            }
            // Release: pairs with the Acquire load in `check_alive` after the woken read.
            dead.store(true, Ordering::Release);
            let _ = write_u64(&wake, DEAD_WAKE);
        })
        .context("spawn the liveness thread")?;
    Ok(())
}

impl Transport for EventFdTransport {
    fn name(&self) -> &'static str {
        "eventfd"
    }

    fn class(&self) -> Class {
        Class::SharedMemory
    }

    fn listen(&self, env: &SetupEnv, size: usize) -> Result<Listening> {
        let base = format!("/{}-efd", env.unique);
        let config = ring_config(size);
        let create = |suffix: &str| {
            let name = format!("{base}-{suffix}");
            SpscRing::create_shm(&name, &config, &options())
                .with_context(|| format!("SpscRing::create_shm({name})"))
        };
        let (down, up) = (create("down")?, create("up")?);
        let tx = down.producer().context("producer")?;
        let rx = up.consumer().context("consumer")?;
        // Down: parent → peer; up: peer → parent. The data eventfds become the peer's stdin
        // (it reads down) and stdout (it writes up).
        let (down_data, up_data) = (new_eventfd()?, new_eventfd()?);
        let (peer_in, peer_out) = (down_data.try_clone()?, up_data.try_clone()?);
        // Credits for down: the peer writes, we read. Credits for up: we write (never
        // blocking), the peer reads. Liveness: only the peer holds a write end.
        let (down_credit_r, down_credit_w) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC).context("pipe2")?;
        let (up_credit_r, up_credit_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("pipe2")?;
        let (alive_r, alive_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("pipe2")?;
        set_nonblocking(&up_credit_w)?;
        // For the spawn only: closed (in `finish`) as soon as the peer runs, so that no later
        // peer inherits them.
        let inherited = [down_credit_w, up_credit_r, alive_w];
        for fd in &inherited {
            set_cloexec(fd, false)?;
        }
        let arg = format!(
            "{base},{},{},{}",
            inherited[0].as_raw_fd(),
            inherited[1].as_raw_fd(),
            inherited[2].as_raw_fd()
        );
        Ok(Listening {
            arg,
            child_stdin: Some(peer_in),
            child_stdout: Some(peer_out),
            finish: Box::new(move || {
                drop(inherited);
                let dead = Arc::new(AtomicBool::new(false));
                let rx_data = File::from(up_data);
                watch_peer(alive_r, dead.clone(), rx_data.try_clone()?)?;
                Ok(Box::new(EfdEndpoint {
                    tx,
                    rx,
                    tx_data: File::from(down_data),
                    tx_credit: File::from(down_credit_r),
                    rx_data,
                    rx_credit: File::from(up_credit_w),
                    batch: credit_batch(size),
                    unreturned: 0,
                    dead: Some(dead),
                    _rings: [down, up],
                }) as Box<dyn Endpoint>)
            }),
        })
    }

    fn connect(&self, arg: &str, size: usize) -> Result<Box<dyn Endpoint>> {
        let parts: Vec<&str> = arg.split(',').collect();
        // The liveness pipe's write end (parts[3]) needs nothing: it stays open, unowned,
        // until this process exits.
        let [base, down_credit_w, up_credit_r, _alive_w] = parts[..] else {
            bail!("eventfd: bad peer argument {arg:?}");
        };
        let open = |suffix: &str| {
            let name = format!("{base}-{suffix}");
            SpscRing::open_shm(&name, &options())
                .with_context(|| format!("SpscRing::open_shm({name})"))
        };
        let (down, up) = (open("down")?, open("up")?);
        let rx_credit = reopen_pipe(down_credit_w, true)?;
        set_nonblocking(&rx_credit)?;
        let data = |fd: OwnedFd| -> Result<File> {
            let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
            ensure!(
                link.to_string_lossy() == "anon_inode:[eventfd]",
                "stdin/stdout is {}, expected an eventfd",
                link.display()
            );
            Ok(File::from(fd))
        };
        Ok(Box::new(EfdEndpoint {
            tx: up.producer().context("producer")?,
            rx: down.consumer().context("consumer")?,
            tx_data: data(peer_stdout()?)?,
            tx_credit: reopen_pipe(up_credit_r, false)?,
            rx_data: data(peer_stdin()?)?,
            rx_credit,
            batch: credit_batch(size),
            unreturned: 0,
            dead: None,
            _rings: [down, up],
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_batch_wakes_a_sender_blocked_on_a_full_ring() {
        for size in [1, 8, 64, 512, 1024, 4096, 65536, 100_000] {
            let record = 8 + (size as u64).next_multiple_of(8);
            // A full ring holds at least capacity / record - 2 records (one may be lost to
            // the padding at the end of a lap): the receiver takes that many after the
            // sender blocked, so it writes a credit byte meanwhile.
            let full = capacity_for(size) / record - 2;
            assert!(
                credit_batch(size) >= 1 && credit_batch(size) <= full,
                "{size}"
            );
        }
    }

    #[test]
    fn stream_through_a_full_ring_in_one_process() {
        // Both endpoints in one process: rings on the heap, the same eventfds and pipes.
        let size = 64;
        let name = format!("/shmbus-bench-test-efd-{}", std::process::id());
        let cfg = ring_config(size);
        let down = SpscRing::create_shm(&format!("{name}-down"), &cfg, &options()).unwrap();
        let up = SpscRing::create_shm(&format!("{name}-up"), &cfg, &options()).unwrap();
        let (dd, ud) = (new_eventfd().unwrap(), new_eventfd().unwrap());
        let (dc_r, dc_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        let (uc_r, uc_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        set_nonblocking(&dc_w).unwrap();
        set_nonblocking(&uc_w).unwrap();
        let f = |fd: &OwnedFd| File::from(fd.try_clone().unwrap());
        let mut a = EfdEndpoint {
            tx: down.producer().unwrap(),
            rx: up.consumer().unwrap(),
            tx_data: f(&dd),
            tx_credit: File::from(dc_r),
            rx_data: f(&ud),
            rx_credit: File::from(uc_w),
            batch: credit_batch(size),
            unreturned: 0,
            dead: None,
            _rings: [down.clone(), up.clone()],
        };
        let mut b = EfdEndpoint {
            tx: up.producer().unwrap(),
            rx: down.consumer().unwrap(),
            tx_data: f(&ud),
            tx_credit: File::from(uc_r),
            rx_data: f(&dd),
            rx_credit: File::from(dc_w),
            batch: credit_batch(size),
            unreturned: 0,
            dead: None,
            _rings: [down, up],
        };
        let n = 20 * capacity_for(size) / 72;
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            for i in 0..n {
                b.recv(&mut buf).unwrap();
                assert_eq!(u64::from_le_bytes(buf[..8].try_into().unwrap()), i);
                if i % 1000 == 0 {
                    // Let the sender fill the ring and block on credits now and then.
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
            b.send(&buf).unwrap();
        });
        let mut msg = [0u8; 64];
        for i in 0..n {
            msg[..8].copy_from_slice(&i.to_le_bytes());
            a.send(&msg).unwrap();
        }
        a.recv(&mut msg).unwrap();
        t.join().unwrap();
    }
}
