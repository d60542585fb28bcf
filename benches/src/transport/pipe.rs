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

/// Fan-out over N pairs of anonymous pipes: the publisher writes every message into each of
/// the N pipes (N `write`s per message: the cost a broadcast ring avoids), and reads each
/// subscriber's reply from that subscriber's own pipe back.
pub struct PipeFanout;

struct PipePublisher {
    down: Vec<File>,
    up: Vec<File>,
}

impl crate::fanout::FanPublisher for PipePublisher {
    #[inline]
    fn publish(&mut self, msg: &[u8]) -> Result<()> {
        use std::io::Write;
        for w in &mut self.down {
            w.write_all(msg)?;
        }
        Ok(())
    }

    #[inline]
    fn reply(&mut self, i: usize, buf: &mut [u8]) -> Result<usize> {
        use std::io::Read;
        match self.up[i].read_exact(buf) {
            Ok(()) => Ok(buf.len()),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                anyhow::bail!("subscriber {i} closed its pipe (exited?)")
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl crate::fanout::FanoutTransport for PipeFanout {
    fn name(&self) -> &'static str {
        "pipe"
    }

    fn what(&self) -> String {
        "N pipe pairs (each subscriber's stdin and stdout); the publisher writes each message \
         N times and reads the N replies in subscriber order"
            .into()
    }

    fn listen(
        &self,
        _env: &SetupEnv,
        _size: usize,
        n: usize,
    ) -> Result<crate::fanout::FanListening> {
        let (mut subscribers, mut down, mut up) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            // O_CLOEXEC: subscriber i inherits only its own two ends (as stdin and stdout).
            let (down_r, down_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("pipe2")?;
            let (up_r, up_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("pipe2")?;
            subscribers.push(crate::fanout::SubscriberSetup {
                arg: String::new(),
                stdin: Some(down_r),
                stdout: Some(up_w),
            });
            down.push(File::from(down_w));
            up.push(File::from(up_r));
        }
        Ok(crate::fanout::FanListening {
            subscribers,
            publisher: Box::new(PipePublisher { down, up }),
        })
    }

    fn connect(&self, arg: &str, size: usize) -> Result<Box<dyn Endpoint>> {
        Pipe.connect(arg, size)
    }
}
