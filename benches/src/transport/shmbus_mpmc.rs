//! `shmbus-mpmc`: two shmbus MPMC slot rings in POSIX shared memory (parent→peer and
//! peer→parent), one producer and one consumer endpoint on each, both sides spinning, rings
//! without wake-up notification. The same workload as `shmbus-spsc`, so the two rings compare
//! at one producer and one consumer.
//!
//! `shmbus-mpmc-crc`: the same on rings created with the per-message checksum
//! (`MpmcConfig::checksum`): slots 4 bytes larger for the CRC32C trailer (at 64-byte messages
//! that takes the stride from one cache line to two), written by every push and verified on
//! every pop's copy.
//!
//! `shmbus-mpmc-rejoined`: `shmbus-mpmc` on rings whose roles were shared once: before the
//! measured endpoints attach, two producers and two consumers attach to each ring (each role
//! shared: a sender and its clone), pass a message each way and leave. The measured
//! endpoints then join a role still marked shared; on a layout 1.8 ring each takes its
//! role's sole word back at its first claim (DECISIONS D94) and raises with plain stores, so
//! this row should match `shmbus-mpmc`. Before 1.8 the roles stayed shared for the ring's
//! life, every raise a locked `fetch_max`.

use super::{Class, Endpoint, Listening, SetupEnv, Transport};
use crate::ring::capacity_for;
use anyhow::{bail, ensure, Context, Result};
use shmbus::ring::{
    MpmcConfig, MpmcConsumer, MpmcProducer, MpmcRing, PopError, PushError, SegmentOptions,
};

/// shmbus's MPMC ring at one producer and one consumer, busy-polling.
pub struct ShmbusMpmc {
    /// With the per-message checksum.
    pub checksum: bool,
    /// On rings whose roles a second producer and consumer shared, then left.
    pub rejoined: bool,
}

/// Slots for messages of `size` bytes (plus the checksum trailer), as many as fit the SPSC
/// ring's capacity for that size (at least 8).
fn geometry(size: usize, checksum: bool) -> (u64, u64) {
    let slot = size.max(1) as u64 + if checksum { 4 } else { 0 };
    // The stride of this slot size as the ring lays it out (aligned from 768 bytes, D90).
    let stride = MpmcConfig::new(8, slot).stride();
    let slots = (capacity_for(size) / stride).max(8).next_power_of_two();
    (slots, slot)
}

fn config(size: usize, checksum: bool) -> MpmcConfig {
    let (slots, slot) = geometry(size, checksum);
    MpmcConfig::new(slots, slot)
        .notify(false)
        .checksum(checksum)
}

fn options() -> SegmentOptions {
    SegmentOptions::default().prefault(true)
}

/// Two producers and two consumers that attach to `ring` (each role shared), pass a message of
/// `size` bytes each and leave, so that each role the measured endpoints then take is marked
/// shared.
fn share_and_leave(ring: &MpmcRing, size: usize) -> Result<()> {
    let producer = || ring.producer().context("transient producer");
    let consumer = || ring.consumer().context("transient consumer");
    let mut txs = [producer()?, producer()?];
    let mut rxs = [consumer()?, consumer()?];
    let mut buf = vec![0u8; size.max(1)];
    for (tx, rx) in txs.iter_mut().zip(&mut rxs) {
        tx.try_push(&buf).context("transient push")?;
        rx.try_pop(&mut buf).context("transient pop")?;
    }
    Ok(())
}

struct MpmcEndpoint {
    tx: MpmcProducer,
    rx: MpmcConsumer,
    _rings: [MpmcRing; 2],
}

impl Endpoint for MpmcEndpoint {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
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
        loop {
            match self.rx.try_pop(buf) {
                Ok(n) => {
                    ensure!(
                        n == buf.len(),
                        "try_pop: {n}-byte message, expected {}",
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

impl Transport for ShmbusMpmc {
    fn name(&self) -> &'static str {
        match (self.checksum, self.rejoined) {
            (true, _) => "shmbus-mpmc-crc",
            (false, true) => "shmbus-mpmc-rejoined",
            (false, false) => "shmbus-mpmc",
        }
    }

    fn class(&self) -> Class {
        Class::SharedMemory
    }

    fn ring_bytes(&self, size: usize) -> Option<u64> {
        Some(config(size, self.checksum).stride() * geometry(size, self.checksum).0)
    }

    fn listen(&self, env: &SetupEnv, size: usize) -> Result<Listening> {
        let base = format!("/{}", env.unique);
        let cfg = config(size, self.checksum);
        let create = |suffix: &str| {
            let name = format!("{base}-{suffix}");
            MpmcRing::create_shm(&name, &cfg, &options())
                .with_context(|| format!("MpmcRing::create_shm({name})"))
        };
        let (down, up) = (create("down")?, create("up")?);
        if self.rejoined {
            for ring in [&down, &up] {
                share_and_leave(ring, size)?;
            }
        }
        // The ring size the report names is the ring's own.
        // (`slot_size` is the largest message: the slot less the checksum trailer.)
        let (slots, _) = geometry(size, self.checksum);
        ensure!(
            down.slots() == slots && up.slots() == slots && down.slot_size() == size.max(1),
            "asked for {slots} slots for {size}-byte messages, got {} for {}-byte ones",
            down.slots(),
            down.slot_size()
        );
        let ep = MpmcEndpoint {
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
            MpmcRing::open_shm(&name, &options())
                .with_context(|| format!("MpmcRing::open_shm({name})"))
        };
        let (down, up) = (open("down")?, open("up")?);
        Ok(Box::new(MpmcEndpoint {
            tx: up.producer().context("producer")?,
            rx: down.consumer().context("consumer")?,
            _rings: [down, up],
        }))
    }
}
