//! Fan-out (`--fanout`): `shmbus-broadcast` and `shmbus-broadcast-untethered`, shmbus's
//! broadcast ring in POSIX shared memory (`<unique>-down`) with the harness as its publisher
//! and N subscriber processes, each replying on an SPSC ring of its own (`<unique>-up-<i>`,
//! the same rings as `shmbus-spsc`'s). Everything spins like `shmbus-spsc`: `try_push` until
//! there is room, `try_pop` until a record is there, rings without wake-up notification.
//!
//! The broadcast ring has `shmbus-spsc`'s capacity at each size (so the 1-subscriber row
//! compares with the SPSC ring on the same geometry), records of up to the message size.
//!
//! - `shmbus-broadcast`: tethered subscribers (lossless: the publisher waits for the slowest).
//! - `shmbus-broadcast-untethered`: untethered subscribers (lossy, never slow the publisher):
//!   a subscriber overtaken by the publisher gets `PopError::Lagged`, resumes at the latest
//!   record, and its streaming phase counts the messages it missed instead of failing.

use super::{Endpoint, SetupEnv};
use crate::fanout::{FanListening, FanPublisher, FanoutTransport, SubscriberSetup};
use crate::ring::capacity_for;
use anyhow::{bail, ensure, Context, Result};
use shmbus::ring::{
    Broadcast, BroadcastConfig, BroadcastRing, Consumer, Kind, PopError, Producer, PushError,
    SegmentOptions, SpscConfig, SpscRing, Subscription,
};

/// shmbus's broadcast ring, tethered (`false`) or untethered (`true`) subscribers.
pub struct ShmbusBroadcast(pub bool);

fn options() -> SegmentOptions {
    SegmentOptions::default().prefault(true)
}

#[inline]
fn push_spin<K: Kind>(p: &mut Producer<K>, msg: &[u8]) -> Result<()> {
    loop {
        match p.try_push(msg) {
            Ok(()) => return Ok(()),
            Err(PushError::Full) => std::hint::spin_loop(),
            Err(PushError::Disconnected) => bail!("push: the other side detached (exited?)"),
            Err(e) => bail!("push: {e}"),
        }
    }
}

struct BroadcastPublisher {
    tx: Producer<Broadcast>,
    replies: Vec<Consumer>,
    _down: BroadcastRing,
    _up: Vec<SpscRing>,
}

impl FanPublisher for BroadcastPublisher {
    #[inline]
    fn publish(&mut self, msg: &[u8]) -> Result<()> {
        push_spin(&mut self.tx, msg)
    }

    #[inline]
    fn reply(&mut self, i: usize, buf: &mut [u8]) -> Result<usize> {
        let rx = &mut self.replies[i];
        loop {
            match rx.try_pop(buf) {
                Ok(n) => {
                    ensure!(
                        n == buf.len(),
                        "reply: {n}-byte record, expected {}",
                        buf.len()
                    );
                    return Ok(n);
                }
                Err(PopError::Empty) => std::hint::spin_loop(),
                Err(PopError::Disconnected) => {
                    bail!("reply: subscriber {i} detached (exited?)")
                }
                Err(e) => bail!("reply from subscriber {i}: {e}"),
            }
        }
    }
}

/// A subscriber: the broadcast ring in, its own SPSC ring back.
struct BroadcastSubscriber {
    rx: Consumer<Broadcast>,
    tx: Producer,
    _rings: (BroadcastRing, SpscRing),
}

impl Endpoint for BroadcastSubscriber {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        push_spin(&mut self.tx, msg)
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
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
                // Untethered and overtaken: it resumed at the latest record; the sequence
                // check of the streaming phase counts what was missed.
                Err(PopError::Lagged { .. }) => {}
                Err(PopError::Disconnected) => bail!("try_pop: the publisher detached"),
                Err(e) => bail!("try_pop: {e}"),
            }
        }
    }
}

impl FanoutTransport for ShmbusBroadcast {
    fn name(&self) -> &'static str {
        if self.0 {
            "shmbus-broadcast-untethered"
        } else {
            "shmbus-broadcast"
        }
    }

    fn what(&self) -> String {
        format!(
            "one broadcast ring ({} subscribers), one SPSC ring back per subscriber; \
             try_push/try_pop spinning, no notification, shmbus-spsc's capacity",
            if self.0 { "untethered" } else { "tethered" }
        )
    }

    fn lossy(&self) -> bool {
        self.0
    }

    fn listen(&self, env: &SetupEnv, size: usize, n: usize) -> Result<FanListening> {
        let base = format!("/{}", env.unique);
        let down_name = format!("{base}-down");
        let config = BroadcastConfig::new(capacity_for(size))
            .max_record(size as u64)
            .notify(false);
        let down = BroadcastRing::create_shm(&down_name, &config, &options())
            .with_context(|| format!("BroadcastRing::create_shm({down_name})"))?;
        let tx = down.producer().context("broadcast producer")?;
        let spsc = SpscConfig::new(capacity_for(size)).notify(false);
        let (mut up, mut replies, mut subscribers) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            let name = format!("{base}-up-{i}");
            let ring = SpscRing::create_shm(&name, &spsc, &options())
                .with_context(|| format!("SpscRing::create_shm({name})"))?;
            replies.push(ring.consumer().context("reply consumer")?);
            up.push(ring);
            subscribers.push(SubscriberSetup {
                arg: format!("{base} {i}"),
                stdin: None,
                stdout: None,
            });
        }
        Ok(FanListening {
            subscribers,
            publisher: Box::new(BroadcastPublisher {
                tx,
                replies,
                _down: down,
                _up: up,
            }),
        })
    }

    fn connect(&self, arg: &str, _size: usize) -> Result<Box<dyn Endpoint>> {
        let Some((base, i)) = arg.split_once(' ') else {
            bail!("shmbus-broadcast subscriber: bad argument {arg:?}");
        };
        let down_name = format!("{base}-down");
        let down = BroadcastRing::open_shm(&down_name, &options())
            .with_context(|| format!("BroadcastRing::open_shm({down_name})"))?;
        let how = if self.0 {
            Subscription::untethered()
        } else {
            Subscription::tethered()
        };
        let rx = down.subscriber(&how).context("subscribe")?;
        let up_name = format!("{base}-up-{i}");
        let up = SpscRing::open_shm(&up_name, &options())
            .with_context(|| format!("SpscRing::open_shm({up_name})"))?;
        let tx = up.producer().context("reply producer")?;
        Ok(Box::new(BroadcastSubscriber {
            rx,
            tx,
            _rings: (down, up),
        }))
    }
}
