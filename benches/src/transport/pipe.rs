//! `pipe`: two anonymous pipes, handed to the peer as its stdin and stdout. (So a peer never
//! prints to stdout: its messages go to stderr or the control socket.)

use super::{
    peer_stdin, peer_stdout, Class, Endpoint, Listening, SetupEnv, StreamEndpoint, Transport,
};
use anyhow::{Context, Result};
use nix::fcntl::OFlag;
use std::fs::File;

/// Anonymous pipes: parent→peer and peer→parent.
pub struct Pipe;

impl Transport for Pipe {
    fn name(&self) -> &'static str {
        "pipe"
    }

    fn class(&self) -> Class {
        Class::Kernel
    }

    fn listen(&self, _env: &SetupEnv, _size: usize) -> Result<Listening> {
        let (down_r, down_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("pipe2")?;
        let (up_r, up_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("pipe2")?;
        Ok(Listening {
            arg: String::new(),
            child_stdin: Some(down_r),
            child_stdout: Some(up_w),
            finish: Box::new(move || {
                Ok(Box::new(StreamEndpoint {
                    rx: File::from(up_r),
                    tx: File::from(down_w),
                }) as Box<dyn Endpoint>)
            }),
        })
    }

    fn connect(&self, _arg: &str, _size: usize) -> Result<Box<dyn Endpoint>> {
        Ok(Box::new(StreamEndpoint {
            rx: File::from(peer_stdin()?),
            tx: File::from(peer_stdout()?),
        }))
    }
}
