//! `iceoryx2` (cargo feature `iceoryx2`): Eclipse iceoryx2, the zero-copy shared-memory IPC
//! middleware, as the leading peer. Two publish-subscribe services of `[u8]` slices, one per
//! direction (`<unique>/down`, `<unique>/up`), each with one publisher and one subscriber;
//! both sides poll like `shmbus-spsc`: the publisher loans a sample in the data segment
//! (`loan_slice_uninit`), copies the message in and sends it; the subscriber polls
//! `receive()` until a sample is there and copies it out. No event service, no waitset.
//!
//! Settings, so that iceoryx2 is measured on the same terms as `shmbus-spsc`: no safe
//! overflow (a full subscriber buffer holds the publisher back —
//! `BackpressureStrategy::RetryUntilDelivered` — instead of overwriting an unread sample,
//! which the sequence checks would fail), history 0, a subscriber buffer of as many messages
//! as `shmbus-spsc`'s ring holds at that size (2 to 4096), statically sized samples.
//!
//! A peer that leaves: `send` reports it delivered to no subscriber, and a polling receiver
//! checks every 2^14 empty polls whether the service still has a publisher; either ends the
//! phase with an error. A peer that is killed leaves its ports registered (iceoryx2 notices
//! dead nodes only when asked to clean up), so a receiver can keep polling: the harness's
//! watchdog ends that run.
//!
//! [`Iceoryx2Fanout`] is the fan-out mode's iceoryx2 (one publisher, N subscribers).

use super::shmbus_zero_copy::LOOKED_AT;
use super::{Class, Endpoint, Listening, SetupEnv, Transport};
use crate::ring::capacity_for;
use anyhow::{anyhow, bail, ensure, Result};
use iceoryx2::port::backpressure_strategy::BackpressureStrategy;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory;
use iceoryx2::service::port_factory::PortFactory as _;

/// iceoryx2 publish-subscribe, both sides polling; `Iceoryx2(true)` is `iceoryx2-zc`, which
/// reads a received sample in place (its first [`LOOKED_AT`] bytes) instead of copying it
/// out, as `shmbus-spsc-zc` does with a `ReadGuard`. Both loan a sample and write the message
/// into it to send.
pub struct Iceoryx2(pub bool);

type Factory = PortFactory<ipc::Service, [u8], ()>;
type Pub = Publisher<ipc::Service, [u8], ()>;
type Sub = Subscriber<ipc::Service, [u8], ()>;

/// How many empty polls between two looks at the service's publisher count.
const LIVENESS_EVERY: u32 = 1 << 14;

/// The subscriber buffer: as many messages as `shmbus-spsc`'s ring holds at this size.
fn buffer_for(size: usize) -> usize {
    let record = 8 + (size as u64).next_multiple_of(8);
    (capacity_for(size) / record).clamp(2, 4096) as usize
}

struct IceEndpoint {
    publisher: Pub,
    subscriber: Sub,
    /// The service this side receives on (for its publisher count).
    rx_service: Factory,
    /// How many bytes of a received sample are copied into the harness's buffer: all of
    /// them, or (zero-copy) the header words the harness reads.
    look: usize,
    _tx_service: Factory,
    _node: Node<ipc::Service>,
}

fn service(node: &Node<ipc::Service>, name: &str, size: usize) -> Result<Factory> {
    service_for(node, name, size, 1)
}

/// A service with one publisher and `subscribers` subscribers (each in its own node).
fn service_for(
    node: &Node<ipc::Service>,
    name: &str,
    size: usize,
    subscribers: usize,
) -> Result<Factory> {
    let service_name: ServiceName = name
        .try_into()
        .map_err(|e| anyhow!("service name {name}: {e:?}"))?;
    node.service_builder(&service_name)
        .publish_subscribe::<[u8]>()
        .enable_safe_overflow(false)
        .history_size(0)
        .subscriber_max_buffer_size(buffer_for(size))
        .subscriber_max_borrowed_samples(2)
        .max_publishers(1)
        .max_subscribers(subscribers)
        .max_nodes(subscribers + 1)
        .open_or_create()
        .map_err(|e| anyhow!("iceoryx2 service {name}: {e:?}"))
}

fn endpoint(base: &str, size: usize, parent: bool, zero_copy: bool) -> Result<IceEndpoint> {
    let node = node()?;
    let down = service(&node, &format!("{base}/down"), size)?;
    let up = service(&node, &format!("{base}/up"), size)?;
    let (tx, rx) = if parent { (down, up) } else { (up, down) };
    Ok(IceEndpoint {
        publisher: publisher(&tx, size)?,
        subscriber: subscriber(&rx, size)?,
        rx_service: rx,
        look: if zero_copy { LOOKED_AT } else { usize::MAX },
        _tx_service: tx,
        _node: node,
    })
}

fn node() -> Result<Node<ipc::Service>> {
    NodeBuilder::new()
        // The harness handles its own signals.
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()
        .map_err(|e| anyhow!("iceoryx2 node: {e:?}"))
}

fn publisher(service: &Factory, size: usize) -> Result<Pub> {
    service
        .publisher_builder()
        .initial_max_slice_len(size)
        .allocation_strategy(AllocationStrategy::Static)
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .max_loaned_samples(1)
        .create()
        .map_err(|e| anyhow!("iceoryx2 publisher: {e:?}"))
}

fn subscriber(service: &Factory, size: usize) -> Result<Sub> {
    service
        .subscriber_builder()
        .buffer_size(buffer_for(size))
        .create()
        .map_err(|e| anyhow!("iceoryx2 subscriber: {e:?}"))
}

/// Loans a sample, copies `msg` in and sends it; returns to how many subscribers it went.
#[inline]
fn publish(publisher: &Pub, msg: &[u8]) -> Result<usize> {
    loop {
        match publisher.loan_slice_uninit(msg.len()) {
            Ok(sample) => {
                return sample
                    .write_from_slice(msg)
                    .send()
                    .map_err(|e| anyhow!("iceoryx2 send: {e:?}"));
            }
            // Every sample is in flight: wait for a subscriber to release one.
            Err(iceoryx2::port::LoanError::OutOfMemory) => std::hint::spin_loop(),
            Err(e) => bail!("iceoryx2 loan: {e:?}"),
        }
    }
}

/// Polls `subscriber` until a sample is there and copies it into `buf`; every
/// [`LIVENESS_EVERY`] empty polls, fails if `service` has lost its publisher.
#[inline]
fn take(subscriber: &Sub, service: &Factory, buf: &mut [u8], look: usize) -> Result<usize> {
    let mut empty = 0u32;
    loop {
        match subscriber.receive() {
            Ok(Some(sample)) => {
                let payload = sample.payload();
                ensure!(
                    payload.len() == buf.len(),
                    "iceoryx2 receive: {}-byte sample, expected {}",
                    payload.len(),
                    buf.len()
                );
                let n = buf.len().min(look);
                buf[..n].copy_from_slice(&payload[..n]);
                return Ok(buf.len());
            }
            Ok(None) => {
                empty += 1;
                if empty == LIVENESS_EVERY {
                    empty = 0;
                    ensure!(
                        service.dynamic_config().number_of_publishers() > 0,
                        "iceoryx2 receive: the publisher left (peer exited?)"
                    );
                }
                std::hint::spin_loop();
            }
            Err(e) => bail!("iceoryx2 receive: {e:?}"),
        }
    }
}

impl Endpoint for IceEndpoint {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let delivered = publish(&self.publisher, msg)?;
        ensure!(
            delivered > 0,
            "iceoryx2 send: no subscriber took the sample (peer exited?)"
        );
        Ok(())
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        take(&self.subscriber, &self.rx_service, buf, self.look)
    }
}

impl Transport for Iceoryx2 {
    fn name(&self) -> &'static str {
        if self.0 {
            "iceoryx2-zc"
        } else {
            "iceoryx2"
        }
    }

    fn class(&self) -> Class {
        Class::SharedMemory
    }

    fn ring_bytes(&self, size: usize) -> Option<u64> {
        // The subscriber buffer holds as many messages as shmbus's ring of this size.
        Some(capacity_for(size))
    }

    fn prepare(&self, _sizes: &[usize]) -> Vec<String> {
        // iceoryx2 logs at Info by default ("no config file was loaded"): keep the table clean.
        set_log_level(LogLevel::Error);
        vec![
            "publish-subscribe of [u8], loan/write/send, polling receive, no safe overflow"
                .to_string(),
        ]
    }

    fn listen(&self, env: &SetupEnv, size: usize) -> Result<Listening> {
        let base = format!("shmbus-bench/{}", env.unique);
        let ep = endpoint(&base, size, true, self.0)?;
        Ok(Listening {
            arg: base,
            child_stdin: None,
            child_stdout: None,
            finish: Box::new(move || Ok(Box::new(ep) as Box<dyn Endpoint>)),
        })
    }

    fn connect(&self, arg: &str, size: usize) -> Result<Box<dyn Endpoint>> {
        set_log_level(LogLevel::Error);
        Ok(Box::new(endpoint(arg, size, false, self.0)?))
    }
}

/// Fan-out (`--fanout`): one publish-subscribe service `<unique>/down` with the harness's
/// publisher and N subscribers (one node per subscriber process), and one return service per
/// subscriber, `<unique>/up/<i>` (that subscriber's publisher, the harness's subscriber), set
/// up as the 1:1 transport's services are (no safe overflow, `RetryUntilDelivered`, history
/// 0, the same buffer sizes). The harness polls the N return subscribers in turn.
pub struct Iceoryx2Fanout;

struct IceFanPublisher {
    publisher: Pub,
    n: usize,
    replies: Vec<(Sub, Factory)>,
    _down: Factory,
    _node: Node<ipc::Service>,
}

impl crate::fanout::FanPublisher for IceFanPublisher {
    #[inline]
    fn publish(&mut self, msg: &[u8]) -> Result<()> {
        let delivered = publish(&self.publisher, msg)?;
        ensure!(
            delivered == self.n,
            "iceoryx2 send: {delivered} of {} subscribers took the sample (one exited?)",
            self.n
        );
        Ok(())
    }

    #[inline]
    fn reply(&mut self, i: usize, buf: &mut [u8]) -> Result<usize> {
        let (sub, service) = &self.replies[i];
        take(sub, service, buf, usize::MAX)
    }
}

impl crate::fanout::FanoutTransport for Iceoryx2Fanout {
    fn name(&self) -> &'static str {
        "iceoryx2"
    }

    fn what(&self) -> String {
        "one publish-subscribe service with N subscribers, and one return service per \
         subscriber; loan/write/send, polling receive, no safe overflow, RetryUntilDelivered"
            .into()
    }

    fn listen(&self, env: &SetupEnv, size: usize, n: usize) -> Result<crate::fanout::FanListening> {
        set_log_level(LogLevel::Error);
        let base = format!("shmbus-bench/{}", env.unique);
        let node = node()?;
        let down = service_for(&node, &format!("{base}/down"), size, n)?;
        let publisher = publisher(&down, size)?;
        let mut replies = Vec::with_capacity(n);
        let mut subscribers = Vec::with_capacity(n);
        for i in 0..n {
            let up = service(&node, &format!("{base}/up/{i}"), size)?;
            replies.push((subscriber(&up, size)?, up));
            subscribers.push(crate::fanout::SubscriberSetup {
                arg: format!("{base} {i} {n}"),
                stdin: None,
                stdout: None,
            });
        }
        Ok(crate::fanout::FanListening {
            subscribers,
            publisher: Box::new(IceFanPublisher {
                publisher,
                n,
                replies,
                _down: down,
                _node: node,
            }),
        })
    }

    fn connect(&self, arg: &str, size: usize) -> Result<Box<dyn Endpoint>> {
        set_log_level(LogLevel::Error);
        let mut it = arg.split(' ');
        let (Some(base), Some(i), Some(n)) = (it.next(), it.next(), it.next()) else {
            bail!("iceoryx2 fan-out subscriber: bad argument {arg:?}");
        };
        let n: usize = n.parse()?;
        let node = node()?;
        let down = service_for(&node, &format!("{base}/down"), size, n)?;
        let up = service(&node, &format!("{base}/up/{i}"), size)?;
        Ok(Box::new(IceEndpoint {
            publisher: publisher(&up, size)?,
            subscriber: subscriber(&down, size)?,
            rx_service: down,
            look: usize::MAX,
            _tx_service: up,
            _node: node,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_hold_what_the_spsc_ring_holds() {
        assert_eq!(buffer_for(8), 4096);
        assert_eq!(buffer_for(64), 65536 / 72);
        assert_eq!(buffer_for(65536), (1 << 20) / 65544);
    }
}
