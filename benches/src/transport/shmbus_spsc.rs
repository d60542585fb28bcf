//! `shmbus-spsc`: two shmbus SPSC record rings in POSIX shared memory (parent→peer and
//! peer→parent), both sides spinning: `try_push` until there is room, `try_pop` until a record
//! is there. No system call on the message path; the rings are created without wake-up
//! notification (no fence per message).
//!
//! `shmbus-spsc-blocking`: the same rings with notification on (the default), both sides using
//! the blocking `push`/`pop` with the default wait strategy: spin 50 µs, then sleep on a futex
//! in the segment.

use super::{Class, Endpoint, Listening, SetupEnv, Transport};
use anyhow::{bail, ensure, Context, Result};
use shmbus::ring::{Consumer, PopError, Producer, PushError, SegmentOptions, SpscConfig, SpscRing};

/// shmbus's SPSC ring, busy-polling (`blocking: false`) or spin-then-futex (`blocking: true`).
pub struct ShmbusSpsc {
    /// Use the blocking calls on a notifying ring.
    pub blocking: bool,
}

/// Ring capacity for messages of `size` bytes: at least 64 KiB (a pipe's buffer), and room for
/// at least eight records of the largest size so streaming never runs in lock-step.
pub fn capacity_for(size: usize) -> u64 {
    let record = (size as u64 + 8).next_multiple_of(8);
    (record * 8).next_power_of_two().max(64 * 1024)
}

fn options() -> SegmentOptions {
    SegmentOptions::default().prefault(true)
}

/// One direction each; the rings are kept so the segments stay mapped (and, on the creating
/// side, so the names are unlinked when the endpoint goes).
struct SpscEndpoint {
    tx: Producer,
    rx: Consumer,
    blocking: bool,
    _rings: [SpscRing; 2],
}

impl Endpoint for SpscEndpoint {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        if self.blocking {
            return self.tx.push(msg).context("push");
        }
        loop {
            match self.tx.try_push(msg) {
                Ok(()) => return Ok(()),
                Err(PushError::Full) => std::hint::spin_loop(),
                Err(e) => bail!("try_push: {e}"),
            }
        }
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.blocking {
            let n = self.rx.pop(buf).context("pop")?;
            ensure!(
                n == buf.len(),
                "pop: {n}-byte record, expected {}",
                buf.len()
            );
            return Ok(n);
        }
        loop {
            match self.rx.try_pop(buf) {
                Ok(n) => {
                    ensure!(
                        n == buf.len(),
                        "try_pop: {n}-byte record, expected {}",
                        buf.len()
                    );
                    return Ok(n);
                }
                Err(PopError::Empty) => std::hint::spin_loop(),
                Err(e) => bail!("try_pop: {e}"),
            }
        }
    }
}

impl Transport for ShmbusSpsc {
    fn name(&self) -> &'static str {
        if self.blocking {
            "shmbus-spsc-blocking"
        } else {
            "shmbus-spsc"
        }
    }

    fn class(&self) -> Class {
        Class::SharedMemory
    }

    fn listen(&self, env: &SetupEnv, size: usize) -> Result<Listening> {
        let base = format!("/{}", env.unique);
        let config = SpscConfig::new(capacity_for(size)).notify(self.blocking);
        let create = |suffix: &str| {
            let name = format!("{base}-{suffix}");
            SpscRing::create_shm(&name, &config, &options())
                .with_context(|| format!("SpscRing::create_shm({name})"))
        };
        let (down, up) = (create("down")?, create("up")?);
        let ep = SpscEndpoint {
            tx: down.producer().context("producer")?,
            rx: up.consumer().context("consumer")?,
            blocking: self.blocking,
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
        Ok(Box::new(SpscEndpoint {
            tx: up.producer().context("producer")?,
            rx: down.consumer().context("consumer")?,
            blocking: self.blocking,
            _rings: [down, up],
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_capacity_is_a_power_of_two_holding_eight_messages() {
        for size in [8, 64, 512, 4096, 65536, 100_000] {
            let cap = capacity_for(size);
            assert!(cap.is_power_of_two() && cap >= 64 * 1024);
            assert!(cap >= 8 * (size as u64 + 8), "{size}: {cap}");
        }
    }
}
