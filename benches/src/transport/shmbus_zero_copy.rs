//! `shmbus-spsc-zc`: the zero-copy row. The same two spinning SPSC rings as `shmbus-spsc`,
//! driven through the in-place API: the sender `reserve`s a record, writes the message into
//! it and `commit`s (the one write a sender constructing its message in place makes: no
//! copy of a finished message); the receiver takes a `ReadGuard` (`read()`), looks at the
//! message where it lies, and consumes it by dropping the guard: nothing is copied out.
//!
//! What "looks at" means: the harness's loops only read the first two words of a message
//! (the sequence number, the one-way phase's stamp), so the receiver copies those 16 bytes
//! (or the 8 of an 8-byte message) into the harness's buffer and leaves the rest in place.
//! `iceoryx2-zc` (feature `iceoryx2`) is the same exchange through iceoryx2's loan API.

use super::shmbus_spsc::{options, pop_failed, push_failed};
use super::{Class, Endpoint, Listening, Phase, SetupEnv, Transport};
use crate::ring::capacity_for;
use anyhow::{ensure, Context, Result};
use shmbus::ring::{Consumer, PopError, Producer, PushError, SpscConfig, SpscRing};

/// Bytes of a received message the harness reads (its header words).
pub const LOOKED_AT: usize = 16;

/// shmbus SPSC through `reserve`/`commit` and `read`.
pub struct ShmbusZeroCopy;

struct ZcEndpoint {
    tx: Producer,
    rx: Consumer,
    _rings: [SpscRing; 2],
}

impl Endpoint for ZcEndpoint {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        loop {
            match self.tx.reserve(msg.len()) {
                Ok(mut w) => {
                    w.copy_from_slice(msg);
                    w.commit();
                    return Ok(());
                }
                Err(PushError::Full) => std::hint::spin_loop(),
                Err(e) => return Err(push_failed(e)),
            }
        }
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        loop {
            match self.rx.read() {
                Ok(Some(msg)) => {
                    ensure!(
                        msg.len() == buf.len(),
                        "read: {}-byte record, expected {}",
                        msg.len(),
                        buf.len()
                    );
                    let n = msg.len().min(LOOKED_AT);
                    buf[..n].copy_from_slice(&msg[..n]);
                    return Ok(buf.len());
                }
                Ok(None) => std::hint::spin_loop(),
                Err(PopError::Empty) => std::hint::spin_loop(),
                Err(e) => return Err(pop_failed(e)),
            }
        }
    }
}

impl Transport for ShmbusZeroCopy {
    fn name(&self) -> &'static str {
        "shmbus-spsc-zc"
    }

    fn class(&self) -> Class {
        Class::SharedMemory
    }

    fn supports(&self, phase: Phase, _size: usize) -> bool {
        phase != Phase::Idle
    }

    fn ring_bytes(&self, size: usize) -> Option<u64> {
        Some(capacity_for(size))
    }

    fn listen(&self, env: &SetupEnv, size: usize) -> Result<Listening> {
        let base = format!("/{}", env.unique);
        let config = SpscConfig::new(capacity_for(size)).notify(false);
        let create = |suffix: &str| {
            let name = format!("{base}-{suffix}");
            SpscRing::create_shm(&name, &config, &options())
                .with_context(|| format!("SpscRing::create_shm({name})"))
        };
        let (down, up) = (create("down")?, create("up")?);
        let ep = ZcEndpoint {
            tx: down.producer().context("producer")?,
            rx: up.consumer().context("consumer")?,
            _rings: [down, up],
        };
        Ok(Listening {
            arg: base,
            child_stdin: None,
            child_stdout: None,
            finish: Box::new(move || Ok(Box::new(ep) as Box<dyn Endpoint>)),
        })
    }

    fn connect(&self, arg: &str, _size: usize) -> Result<Box<dyn Endpoint>> {
        let open = |suffix: &str| {
            let name = format!("{arg}-{suffix}");
            SpscRing::open_shm(&name, &options())
                .with_context(|| format!("SpscRing::open_shm({name})"))
        };
        let (down, up) = (open("down")?, open("up")?);
        Ok(Box::new(ZcEndpoint {
            tx: up.producer().context("producer")?,
            rx: down.consumer().context("consumer")?,
            _rings: [down, up],
        }))
    }
}
