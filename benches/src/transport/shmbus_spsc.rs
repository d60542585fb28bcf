//! `shmbus-spsc`: two shmbus SPSC record rings in POSIX shared memory (parent→peer and
//! peer→parent), both sides spinning: `try_push` until there is room, `try_pop` until a record
//! is there. No system call on the message path; the rings are created without wake-up
//! notification (no fence per message).
//!
//! `shmbus-spsc-blocking`: the same rings with notification on (the default), both sides using
//! the blocking `push`/`pop` with the default wait strategy: spin 50 µs, then sleep on a futex
//! in the segment. A ping-pong answers well within 50 µs, so its round trips spin; the futex
//! is taken when gaps are longer (the one-way phase at 10 000 msgs/s, idle).
//!
//! `shmbus-spsc-parked`: the same as `-blocking` with `WaitStrategy::Block { spin: 0 }` on both
//! sides, meant as the honest comparison with `eventfd` (a futex wake-up per message). With a
//! zero spin the wait loop tries twice (once before the wait, once in the spin phase) and then
//! sleeps on the futex, so nearly every hand-off parks.
//!
//! `shmbus-spsc-crc`: the same as `shmbus-spsc` on rings created with the per-message
//! checksum (`SpscConfig::checksum`): every push writes a CRC32C trailer, every pop verifies
//! the copy. The difference from `shmbus-spsc` is the checksum's cost.
//!
//! `shmbus-spsc-large`, `shmbus-spsc-sysv-large`, `shmbus-spsc-sysv-huge` (streaming only):
//! as `shmbus-spsc`, on 64 MiB rings, so the stream sweeps through far more memory than the
//! TLB covers with 4 KiB pages: in POSIX shm, in System V shm, and in System V shm backed by
//! explicit huge pages (`SHM_HUGETLB`). Where the host has no explicit huge pages (or too few:
//! two rings need 64 of 2 MiB), `-sysv-huge` falls back to transparent huge pages
//! (`madvise(MADV_HUGEPAGE)`, which the host's `shmem_enabled` setting may ignore) and the
//! report says so.
//!
//! The other side detaching (or dying: the ring reaps it) turns `Full`/`Empty` into
//! `Disconnected`, which ends the phase with an error rather than a wait for ever.

use super::Phase;
use super::{Class, Endpoint, Listening, SetupEnv, Transport};
use crate::ring::capacity_for;
use anyhow::{ensure, Context, Result};
use shmbus::ring::segment::{HugePages, SysvOptions};
use shmbus::ring::{
    Consumer, PopError, Producer, PushError, SegmentOptions, SpscConfig, SpscRing, WaitStrategy,
};
use std::time::Duration;

/// How the two sides wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `try_push`/`try_pop` in a spin loop, rings without notification.
    Spin,
    /// Blocking `push`/`pop`, default wait strategy (spin 50 µs, then futex).
    Blocking,
    /// Blocking `push`/`pop`, futex at once (`Block { spin: 0 }`).
    Parked,
    /// As [`Mode::Spin`], on checksum rings.
    SpinChecksum,
    /// As [`Mode::Spin`], on 64 MiB rings: POSIX shm.
    LargePosix,
    /// As [`Mode::Spin`], on 64 MiB rings: System V shm.
    LargeSysv,
    /// As [`Mode::Spin`], on 64 MiB rings: System V shm with explicit huge pages (or, where
    /// the host has none, transparent ones).
    LargeSysvHuge,
}

/// The ring capacity of the large-ring modes.
const LARGE: u64 = 64 << 20;

impl Mode {
    fn spins(self) -> bool {
        !matches!(self, Mode::Blocking | Mode::Parked)
    }

    fn large(self) -> bool {
        matches!(
            self,
            Mode::LargePosix | Mode::LargeSysv | Mode::LargeSysvHuge
        )
    }

    /// The huge pages the large System V mode gets on this host: explicit if the pool has room
    /// for both rings, else transparent.
    fn huge(self) -> HugePages {
        if self != Mode::LargeSysvHuge {
            return HugePages::Off;
        }
        match shmbus::ring::segment::huge_page_info() {
            Some(i) if i.free * i.size >= 2 * (LARGE + (4 << 20)) => HugePages::Explicit,
            _ => HugePages::Transparent,
        }
    }
}

/// shmbus's SPSC ring, in one of three waiting [`Mode`]s.
pub struct ShmbusSpsc(pub Mode);

impl ShmbusSpsc {
    /// The ring's data bytes for `size`-byte messages: the run's ring size (with the
    /// checksum each record is 4 bytes longer), or 64 MiB for the large-ring modes.
    fn capacity(&self, size: usize) -> u64 {
        let checksum = self.0 == Mode::SpinChecksum;
        let capacity = capacity_for(size + if checksum { 4 } else { 0 });
        if self.0.large() {
            capacity.max(LARGE)
        } else {
            capacity
        }
    }
}

pub(super) fn options() -> SegmentOptions {
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

impl SpscEndpoint {
    fn new(tx: Producer, rx: Consumer, mode: Mode, rings: [SpscRing; 2]) -> Self {
        let (mut tx, mut rx) = (tx, rx);
        if mode == Mode::Parked {
            let parked = WaitStrategy::Block {
                spin: Duration::ZERO,
            };
            tx.set_wait_strategy(parked);
            rx.set_wait_strategy(parked);
        }
        SpscEndpoint {
            tx,
            rx,
            blocking: !mode.spins(),
            _rings: rings,
        }
    }
}

pub(super) fn push_failed(e: PushError) -> anyhow::Error {
    match e {
        PushError::Disconnected => {
            anyhow::anyhow!("push: the consumer detached (peer exited?)")
        }
        e => anyhow::anyhow!("push: {e}"),
    }
}

pub(super) fn pop_failed(e: PopError) -> anyhow::Error {
    match e {
        PopError::Disconnected => {
            anyhow::anyhow!("pop: the producer detached (peer exited?)")
        }
        e => anyhow::anyhow!("pop: {e}"),
    }
}

impl Endpoint for SpscEndpoint {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        if self.blocking {
            return self.tx.push(msg).map_err(push_failed);
        }
        loop {
            match self.tx.try_push(msg) {
                Ok(()) => return Ok(()),
                Err(PushError::Full) => std::hint::spin_loop(),
                Err(e) => return Err(push_failed(e)),
            }
        }
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.blocking {
            let n = self.rx.pop(buf).map_err(pop_failed)?;
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
                Err(e) => return Err(pop_failed(e)),
            }
        }
    }

    fn send_batch(&mut self, msgs: &[Vec<u8>]) -> Result<()> {
        let mut done = 0;
        while done < msgs.len() {
            match self.tx.try_push_batch(&msgs[done..]) {
                Ok(n) => done += n,
                Err(PushError::Full) => std::hint::spin_loop(),
                Err(e) => return Err(push_failed(e)),
            }
        }
        Ok(())
    }

    fn recv_batch(
        &mut self,
        _buf: &mut [u8],
        f: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<usize> {
        let mut failed = None;
        loop {
            let got = self.rx.try_pop_batch(crate::driver::BATCH, |m| {
                if failed.is_none() {
                    if let Err(e) = f(m) {
                        failed = Some(e);
                    }
                }
            });
            if let Some(e) = failed {
                return Err(e);
            }
            match got {
                Ok(0) => std::hint::spin_loop(),
                Ok(n) => return Ok(n),
                Err(e) => return Err(pop_failed(e)),
            }
        }
    }
}

impl Transport for ShmbusSpsc {
    fn name(&self) -> &'static str {
        match self.0 {
            Mode::Spin => "shmbus-spsc",
            Mode::Blocking => "shmbus-spsc-blocking",
            Mode::Parked => "shmbus-spsc-parked",
            Mode::SpinChecksum => "shmbus-spsc-crc",
            Mode::LargePosix => "shmbus-spsc-large",
            Mode::LargeSysv => "shmbus-spsc-sysv-large",
            Mode::LargeSysvHuge => "shmbus-spsc-sysv-huge",
        }
    }

    fn class(&self) -> Class {
        Class::SharedMemory
    }

    fn ring_bytes(&self, size: usize) -> Option<u64> {
        Some(self.capacity(size))
    }

    fn supports(&self, phase: Phase, _size: usize) -> bool {
        !self.0.large() || phase == Phase::Stream
    }

    fn batches(&self) -> bool {
        // The batch path is the ring's ceiling: measured on the plain spinning ring.
        self.0 == Mode::Spin
    }

    fn prepare(&self, _sizes: &[usize]) -> Vec<String> {
        if self.0 != Mode::LargeSysvHuge {
            return Vec::new();
        }
        let info = shmbus::ring::segment::huge_page_info();
        vec![match (self.0.huge(), info) {
            (HugePages::Explicit, Some(i)) => format!(
                "explicit huge pages of {} KiB ({} free)",
                i.size / 1024,
                i.free
            ),
            (_, Some(i)) => format!(
                "too few explicit huge pages (HugePages_Free {} of {} KiB; \
                 set vm.nr_hugepages): transparent huge pages instead (madvise), subject to \
                 /sys/kernel/mm/transparent_hugepage/shmem_enabled",
                i.free,
                i.size / 1024
            ),
            _ => "no hugetlb support: transparent huge pages instead".into(),
        }]
    }

    fn listen(&self, env: &SetupEnv, size: usize) -> Result<Listening> {
        let base = format!("/{}", env.unique);
        let checksum = self.0 == Mode::SpinChecksum;
        let capacity = self.capacity(size);
        let config = SpscConfig::new(capacity)
            .notify(!self.0.spins())
            .checksum(checksum);
        let mode = self.0;
        let create = |suffix: &str| {
            let name = format!("{base}-{suffix}");
            if matches!(mode, Mode::LargeSysv | Mode::LargeSysvHuge) {
                let opts = options().huge_pages(mode.huge());
                SpscRing::create_sysv(&name, &config, &opts, &SysvOptions::new())
                    .with_context(|| format!("SpscRing::create_sysv({name})"))
            } else {
                SpscRing::create_shm(&name, &config, &options())
                    .with_context(|| format!("SpscRing::create_shm({name})"))
            }
        };
        let (down, up) = (create("down")?, create("up")?);
        // The ring size the report names is the ring's own.
        ensure!(
            down.data_capacity() == capacity && up.data_capacity() == capacity,
            "asked for {capacity}-byte rings, got {} and {}",
            down.data_capacity(),
            up.data_capacity()
        );
        let ep = SpscEndpoint::new(
            down.producer().context("producer")?,
            up.consumer().context("consumer")?,
            self.0,
            [down, up],
        );
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
        Ok(Box::new(SpscEndpoint::new(
            up.producer().context("producer")?,
            down.consumer().context("consumer")?,
            self.0,
            [down, up],
        )))
    }
}
