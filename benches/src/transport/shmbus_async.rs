//! `shmbus-async` and `shmbus-async-spin`: the typed channel of `shmbus-channel` (SPSC,
//! bincode, the same struct and ring size) with the ring's wake-up notification on, both sides
//! asynchronous endpoints (`into_async`, feature `tokio`) driven by a current-thread tokio
//! runtime of their own: each `send`/`recv` of the harness is one `block_on` of the endpoint's
//! `send().await` / `recv().await`.
//!
//! `shmbus-async` parks at once when the channel is empty or full (spin budget 0, the
//! default): every wait is an armed doorbell and a datagram, the asynchronous counterpart of
//! `shmbus-spsc-parked` (a futex per wait) and of `eventfd`. `shmbus-async-spin` first retries
//! for up to 20 µs, which catches a reply that is on its way without a kernel wake-up, as
//! `shmbus-spsc-blocking` does with its 50 µs spin.

use super::shmbus_channel::{builder, BenchMessage};
use super::{Class, Endpoint, Listening, SetupEnv, Transport};
use anyhow::{bail, Context, Result};
use shmbus::{AsyncReceiver, AsyncSender};
use std::time::Duration;

/// Spin budget before parking: 0, or 20 µs.
pub struct ShmbusAsync(pub bool);

struct AsyncEndpoint {
    rt: tokio::runtime::Runtime,
    tx: AsyncSender<BenchMessage>,
    rx: AsyncReceiver<BenchMessage>,
    spare: Vec<u8>,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("a current-thread tokio runtime")
}

impl AsyncEndpoint {
    fn new(
        spin: bool,
        rt: tokio::runtime::Runtime,
        make: impl FnOnce() -> Result<(shmbus::Sender<BenchMessage>, shmbus::Receiver<BenchMessage>)>,
    ) -> Result<Self> {
        let (tx, rx) = make()?;
        let (mut tx, mut rx) =
            rt.block_on(async { Ok::<_, shmbus::Error>((tx.into_async()?, rx.into_async()?)) })?;
        if spin {
            tx.set_spin(Duration::from_micros(20));
            rx.set_spin(Duration::from_micros(20));
        }
        Ok(AsyncEndpoint {
            rt,
            tx,
            rx,
            spare: Vec::new(),
        })
    }
}

impl Endpoint for AsyncEndpoint {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let m = BenchMessage::from_bytes(msg, std::mem::take(&mut self.spare));
        match self.rt.block_on(self.tx.send(m)) {
            Ok(()) => Ok(()),
            Err(e) if e.is_disconnected() => bail!("send: the receiver detached (peer exited?)"),
            Err(e) => bail!("send: {e}"),
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        match self.rt.block_on(self.rx.recv()) {
            Ok(m) => {
                m.to_bytes(buf)?;
                self.spare = m.payload.into_vec();
                Ok(buf.len())
            }
            Err(e) if e.is_disconnected() => bail!("recv: the sender detached (peer exited?)"),
            Err(e) => bail!("recv: {e}"),
        }
    }
}

/// The channel builder of a size, with notification on (doorbells need it) and the default
/// (blocking) wait strategy, which asynchronous endpoints do not use.
fn async_builder(size: usize) -> shmbus::ChannelBuilder<BenchMessage> {
    builder(size)
        .notify(true)
        .wait_strategy(shmbus::ring::WaitStrategy::default())
}

impl Transport for ShmbusAsync {
    fn name(&self) -> &'static str {
        if self.0 {
            "shmbus-async-spin"
        } else {
            "shmbus-async"
        }
    }

    fn class(&self) -> Class {
        Class::SharedMemory
    }

    fn ring_bytes(&self, size: usize) -> Option<u64> {
        Some(crate::ring::capacity_for(size))
    }

    fn listen(&self, env: &SetupEnv, size: usize) -> Result<Listening> {
        let base = format!("/{}", env.unique);
        let b = async_builder(size);
        let down = format!("{base}-down");
        let up = format!("{base}-up");
        let spin = self.0;
        let tx = b
            .create_sender(&down)
            .with_context(|| format!("create_sender({down})"))?;
        let rx = b
            .create_receiver(&up)
            .with_context(|| format!("create_receiver({up})"))?;
        Ok(Listening {
            arg: base,
            child_stdin: None,
            child_stdout: None,
            finish: Box::new(move || {
                let ep = AsyncEndpoint::new(spin, runtime()?, || Ok((tx, rx)))?;
                Ok(Box::new(ep) as Box<dyn Endpoint>)
            }),
        })
    }

    fn connect(&self, arg: &str, size: usize) -> Result<Box<dyn Endpoint>> {
        let b = async_builder(size);
        let down = format!("{arg}-down");
        let up = format!("{arg}-up");
        let ep = AsyncEndpoint::new(self.0, runtime()?, || {
            let rx = b
                .open_receiver(&down)
                .with_context(|| format!("open_receiver({down})"))?;
            let tx = b
                .open_sender(&up)
                .with_context(|| format!("open_sender({up})"))?;
            Ok((tx, rx))
        })?;
        Ok(Box::new(ep))
    }
}
