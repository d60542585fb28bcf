//! `pipe-spin` and `uds-spin`: the kernel paths busy-polled, beside their blocking rows.
//!
//! The same descriptors as `pipe` (two anonymous pipes) and `uds-stream` (a Unix stream
//! socket pair), set `O_NONBLOCK` on both sides: `read` and `write` return `EAGAIN` instead
//! of sleeping, and the endpoint retries in a spin loop. The receiver never sleeps, so no
//! wake-up (scheduler, IPI) is on the path: what remains is the system calls and the kernel's
//! copies, the best a kernel path can do with a spinning core.

use super::{peer_stdin, peer_stdout, Class, Endpoint, Listening, SetupEnv, Transport};
use anyhow::{bail, Context, Result};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

/// Which descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Two anonymous pipes.
    Pipe,
    /// A Unix stream socket pair.
    Uds,
}

/// A kernel byte stream, busy-polled.
pub struct KernelSpin(pub Kind);

fn nonblocking(fd: OwnedFd) -> Result<File> {
    let flags = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL).context("fcntl(F_GETFL)")?;
    fcntl(
        fd.as_raw_fd(),
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    )
    .context("fcntl(F_SETFL, O_NONBLOCK)")?;
    Ok(File::from(fd))
}

struct SpinStream {
    rx: File,
    tx: File,
}

impl Endpoint for SpinStream {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let mut done = 0;
        while done < msg.len() {
            match self.tx.write(&msg[done..]) {
                Ok(n) => done += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => std::hint::spin_loop(),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context("write"),
            }
        }
        Ok(())
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match self.rx.read(&mut buf[got..]) {
                Ok(0) => bail!("the other side closed the connection (peer exited?)"),
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => std::hint::spin_loop(),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context("read"),
            }
        }
        Ok(got)
    }
}

impl Transport for KernelSpin {
    fn name(&self) -> &'static str {
        match self.0 {
            Kind::Pipe => "pipe-spin",
            Kind::Uds => "uds-spin",
        }
    }

    fn class(&self) -> Class {
        Class::Kernel
    }

    fn listen(&self, _env: &SetupEnv, _size: usize) -> Result<Listening> {
        let (child_stdin, child_stdout, rx, tx) = match self.0 {
            Kind::Pipe => {
                let (down_r, down_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("pipe2")?;
                let (up_r, up_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("pipe2")?;
                (Some(down_r), Some(up_w), up_r, down_w)
            }
            Kind::Uds => {
                let (ours, theirs) = std::os::unix::net::UnixStream::pair()
                    .context("socketpair(AF_UNIX, SOCK_STREAM)")?;
                let ours = OwnedFd::from(ours);
                let dup = ours.try_clone()?;
                (Some(theirs.into()), None, ours, dup)
            }
        };
        Ok(Listening {
            arg: String::new(),
            child_stdin,
            child_stdout,
            finish: Box::new(move || {
                Ok(Box::new(SpinStream {
                    rx: nonblocking(rx)?,
                    tx: nonblocking(tx)?,
                }) as Box<dyn Endpoint>)
            }),
        })
    }

    fn connect(&self, _arg: &str, _size: usize) -> Result<Box<dyn Endpoint>> {
        let rx = peer_stdin()?;
        let tx = match self.0 {
            Kind::Pipe => peer_stdout()?,
            Kind::Uds => rx.try_clone()?,
        };
        Ok(Box::new(SpinStream {
            rx: nonblocking(rx)?,
            tx: nonblocking(tx)?,
        }))
    }
}
