//! `uds-stream` and `uds-seqpacket`: a Unix socket pair, one end handed to the peer as stdin.

use super::{
    peer_stdin, Class, Endpoint, Listening, PacketEndpoint, SetupEnv, StreamEndpoint, Transport,
};
use anyhow::{Context, Result};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

/// `socketpair(AF_UNIX, SOCK_STREAM)`.
pub struct UdsStream;

/// `socketpair(AF_UNIX, SOCK_SEQPACKET)`: message boundaries kept by the kernel.
pub struct UdsSeqpacket;

fn stream_endpoint(fd: OwnedFd) -> Result<Box<dyn Endpoint>> {
    let s = UnixStream::from(fd);
    Ok(Box::new(StreamEndpoint {
        rx: s.try_clone()?,
        tx: s,
    }))
}

impl Transport for UdsStream {
    fn name(&self) -> &'static str {
        "uds-stream"
    }

    fn class(&self) -> Class {
        Class::Kernel
    }

    fn listen(&self, _env: &SetupEnv, _size: usize) -> Result<Listening> {
        let (ours, theirs) = UnixStream::pair().context("socketpair(AF_UNIX, SOCK_STREAM)")?;
        Ok(Listening {
            arg: String::new(),
            child_stdin: Some(theirs.into()),
            child_stdout: None,
            finish: Box::new(move || stream_endpoint(ours.into())),
        })
    }

    fn connect(&self, _arg: &str, _size: usize) -> Result<Box<dyn Endpoint>> {
        stream_endpoint(peer_stdin()?)
    }
}

impl Transport for UdsSeqpacket {
    fn name(&self) -> &'static str {
        "uds-seqpacket"
    }

    fn class(&self) -> Class {
        Class::Kernel
    }

    fn listen(&self, _env: &SetupEnv, _size: usize) -> Result<Listening> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .context("socketpair(AF_UNIX, SOCK_SEQPACKET)")?;
        Ok(Listening {
            arg: String::new(),
            child_stdin: Some(theirs),
            child_stdout: None,
            finish: Box::new(move || {
                Ok(Box::new(PacketEndpoint {
                    sock: File::from(ours),
                }) as Box<dyn Endpoint>)
            }),
        })
    }

    fn connect(&self, _arg: &str, _size: usize) -> Result<Box<dyn Endpoint>> {
        Ok(Box::new(PacketEndpoint {
            sock: File::from(peer_stdin()?),
        }))
    }
}
