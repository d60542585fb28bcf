//! `shmbus-select4`: `shmbus-channel` with the peer's (echo side's) receive done by a
//! `shmbus::Select` over four channels, one of which carries the traffic (the third added, so
//! that a biased order would not favour it); the other three have live senders (held by the
//! parent) that never send. Everything else is `shmbus-channel`'s: the same struct, codec,
//! ring size, and both sides spinning (wait strategy `Spin`, no notification), so the
//! difference between the two is the select: four readiness checks per attempt, the shuffle,
//! staging the message's bytes in the receiver, and decoding at `SelectedOperation::recv`.
//!
//! Round trip only: the question is what a select costs per message against a single-channel
//! receive.

use super::shmbus_channel::builder;
use super::shmbus_channel::BenchMessage;
use super::{Class, Endpoint, Listening, Phase, SetupEnv, Transport};
use anyhow::{bail, Context, Result};
use shmbus::{Receiver, Select, Sender};

/// The echo side selects over this many channels.
const CHANNELS: usize = 4;
/// Which of them carries the traffic.
const TRAFFIC: usize = 2;

/// The typed channel, SPSC, bincode, both sides spinning; the echo side selects over four.
pub struct ShmbusSelect4;

/// The parent's side: `shmbus-channel`'s, plus the idle channels' senders.
struct Parent {
    tx: Sender<BenchMessage>,
    rx: Receiver<BenchMessage>,
    _idle: Vec<Sender<BenchMessage>>,
    spare: Vec<u8>,
}

/// The peer's side: receives through a select over all four channels.
struct Peer {
    tx: Sender<BenchMessage>,
    rx: Vec<Receiver<BenchMessage>>,
    spare: Vec<u8>,
}

fn send(tx: &mut Sender<BenchMessage>, spare: &mut Vec<u8>, msg: &[u8]) -> Result<()> {
    let mut m = BenchMessage::from_bytes(msg, std::mem::take(spare));
    loop {
        match tx.try_send(m) {
            Ok(()) => return Ok(()),
            Err(e) if e.is_full() => {
                m = e.into_inner();
                std::hint::spin_loop();
            }
            Err(e) if e.is_disconnected() => {
                bail!("try_send: the receiver detached (peer exited?)")
            }
            Err(e) => bail!("try_send: {e}"),
        }
    }
}

impl Endpoint for Parent {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        send(&mut self.tx, &mut self.spare, msg)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        loop {
            match self.rx.try_recv() {
                Ok(m) => {
                    m.to_bytes(buf)?;
                    self.spare = m.payload.into_vec();
                    return Ok(buf.len());
                }
                Err(e) if e.is_empty() => std::hint::spin_loop(),
                Err(e) if e.is_disconnected() => {
                    bail!("try_recv: the sender detached (peer exited?)")
                }
                Err(e) => bail!("try_recv: {e}"),
            }
        }
    }
}

impl Endpoint for Peer {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        send(&mut self.tx, &mut self.spare, msg)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        // A select per message, as a server over several channels would run it.
        let mut sel = Select::new();
        for rx in &mut self.rx {
            sel.recv(rx);
        }
        let op = sel.select();
        let i = op.index();
        if i != TRAFFIC {
            bail!("select: channel {i} is not the traffic channel");
        }
        match op.recv(&mut self.rx[i]) {
            Ok(m) => {
                m.to_bytes(buf)?;
                self.spare = m.payload.into_vec();
                Ok(buf.len())
            }
            Err(e) if e.is_disconnected() => {
                bail!("select: the sender detached (peer exited?)")
            }
            Err(e) => bail!("select: {e}"),
        }
    }
}

impl Transport for ShmbusSelect4 {
    fn name(&self) -> &'static str {
        "shmbus-select4"
    }

    fn class(&self) -> Class {
        Class::SharedMemory
    }

    fn ring_bytes(&self, size: usize) -> Option<u64> {
        Some(crate::ring::capacity_for(size))
    }

    fn supports(&self, phase: Phase, _size: usize) -> bool {
        phase == Phase::RoundTrip
    }

    fn listen(&self, env: &SetupEnv, size: usize) -> Result<Listening> {
        let base = format!("/{}", env.unique);
        let b = builder(size);
        let mut downs = Vec::new();
        for i in 0..CHANNELS {
            let name = format!("{base}-down{i}");
            downs.push(
                b.create_sender(&name)
                    .with_context(|| format!("create_sender({name})"))?,
            );
        }
        let up = format!("{base}-up");
        let tx = downs.remove(TRAFFIC);
        let ep = Parent {
            tx,
            rx: b
                .create_receiver(&up)
                .with_context(|| format!("create_receiver({up})"))?,
            _idle: downs,
            spare: Vec::new(),
        };
        Ok(Listening {
            arg: base,
            child_stdin: None,
            child_stdout: None,
            finish: Box::new(move || Ok(Box::new(ep) as Box<dyn Endpoint>)),
        })
    }

    fn connect(&self, arg: &str, size: usize) -> Result<Box<dyn Endpoint>> {
        let b = builder(size);
        let mut rx = Vec::new();
        for i in 0..CHANNELS {
            let name = format!("{arg}-down{i}");
            rx.push(
                b.open_receiver(&name)
                    .with_context(|| format!("open_receiver({name})"))?,
            );
        }
        let up = format!("{arg}-up");
        Ok(Box::new(Peer {
            tx: b
                .open_sender(&up)
                .with_context(|| format!("open_sender({up})"))?,
            rx,
            spare: Vec::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::{new_message, put_word0, word0};

    #[test]
    fn the_echo_side_receives_through_the_select_and_sees_a_departed_peer() {
        let size = 64;
        let chans: Vec<_> = (0..=CHANNELS)
            .map(|_| builder(size).in_process().unwrap())
            .collect();
        let mut idle: Vec<_> = chans[..CHANNELS]
            .iter()
            .map(|c| c.sender().unwrap())
            .collect();
        let tx = idle.remove(TRAFFIC);
        let mut parent = Parent {
            tx,
            rx: chans[CHANNELS].receiver().unwrap(),
            _idle: idle,
            spare: Vec::new(),
        };
        let mut peer = Peer {
            tx: chans[CHANNELS].sender().unwrap(),
            rx: chans[..CHANNELS]
                .iter()
                .map(|c| c.receiver().unwrap())
                .collect(),
            spare: Vec::new(),
        };
        let mut msg = new_message(size);
        let mut buf = vec![0u8; size];
        for seq in 0..100 {
            put_word0(&mut msg, seq);
            parent.send(&msg).unwrap();
            peer.recv(&mut buf).unwrap();
            assert_eq!(buf, msg);
            peer.send(&buf).unwrap();
            parent.recv(&mut buf).unwrap();
            assert_eq!(word0(&buf), seq);
        }
        drop(parent);
        // Every channel is disconnected now: a select picks one of them.
        assert!(peer.recv(&mut buf).is_err());
    }
}
