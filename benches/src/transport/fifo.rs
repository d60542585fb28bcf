//! `fifo`: two named pipes (mkfifo) in the run's scratch directory.

use super::{Class, Endpoint, Listening, SetupEnv, StreamEndpoint, Transport};
use anyhow::{Context, Result};
use nix::sys::stat::Mode;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// Named pipes: `<dir>/<unique>.down` (parent→peer) and `.up` (peer→parent).
pub struct Fifo;

fn paths(base: &Path) -> (PathBuf, PathBuf) {
    (base.with_extension("down"), base.with_extension("up"))
}

impl Transport for Fifo {
    fn name(&self) -> &'static str {
        "fifo"
    }

    fn class(&self) -> Class {
        Class::Kernel
    }

    fn listen(&self, env: &SetupEnv, _size: usize) -> Result<Listening> {
        let base = env.dir.join(&env.unique);
        let (down, up) = paths(&base);
        for p in [&down, &up] {
            nix::unistd::mkfifo(p, Mode::S_IRUSR | Mode::S_IWUSR)
                .with_context(|| format!("mkfifo({})", p.display()))?;
        }
        Ok(Listening {
            arg: base.to_string_lossy().into_owned(),
            child_stdin: None,
            child_stdout: None,
            // Opening a FIFO blocks until the other end opens too: the parent opens `down` then
            // `up`, the peer in the same order, so neither waits for the other forever.
            finish: Box::new(move || {
                let tx = OpenOptions::new()
                    .write(true)
                    .open(&down)
                    .with_context(|| format!("open({})", down.display()))?;
                let rx = File::open(&up).with_context(|| format!("open({})", up.display()))?;
                let _ = std::fs::remove_file(&down);
                let _ = std::fs::remove_file(&up);
                Ok(Box::new(StreamEndpoint { rx, tx }) as Box<dyn Endpoint>)
            }),
        })
    }

    fn connect(&self, arg: &str, _size: usize) -> Result<Box<dyn Endpoint>> {
        let (down, up) = paths(Path::new(arg));
        let rx = File::open(&down).with_context(|| format!("open({})", down.display()))?;
        let tx = OpenOptions::new()
            .write(true)
            .open(&up)
            .with_context(|| format!("open({})", up.display()))?;
        Ok(Box::new(StreamEndpoint { rx, tx }))
    }
}
