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

use super::shmbus_spsc::capacity_for;
use super::{Class, Endpoint, Listening, SetupEnv, Transport};
use anyhow::{anyhow, bail, ensure, Result};
use iceoryx2::port::backpressure_strategy::BackpressureStrategy;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory;
use iceoryx2::service::port_factory::PortFactory as _;

/// iceoryx2 publish-subscribe, both sides polling.
pub struct Iceoryx2;

type Factory = PortFactory<ipc::Service, [u8], ()>;

/// How many empty polls between two looks at the service's publisher count.
const LIVENESS_EVERY: u32 = 1 << 14;

/// The subscriber buffer: as many messages as `shmbus-spsc`'s ring holds at this size.
fn buffer_for(size: usize) -> usize {
    let record = 8 + (size as u64).next_multiple_of(8);
    (capacity_for(size) / record).clamp(2, 4096) as usize
}

struct IceEndpoint {
    publisher: Publisher<ipc::Service, [u8], ()>,
    subscriber: Subscriber<ipc::Service, [u8], ()>,
    /// The service this side receives on (for its publisher count).
    rx_service: Factory,
    _tx_service: Factory,
    _node: Node<ipc::Service>,
}

fn service(node: &Node<ipc::Service>, name: &str, size: usize) -> Result<Factory> {
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
        .max_subscribers(1)
        .max_nodes(2)
        .open_or_create()
        .map_err(|e| anyhow!("iceoryx2 service {name}: {e:?}"))
}

fn endpoint(base: &str, size: usize, parent: bool) -> Result<IceEndpoint> {
    let node = NodeBuilder::new()
        // The harness handles its own signals.
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()
        .map_err(|e| anyhow!("iceoryx2 node: {e:?}"))?;
    let down = service(&node, &format!("{base}/down"), size)?;
    let up = service(&node, &format!("{base}/up"), size)?;
    let (tx, rx) = if parent { (down, up) } else { (up, down) };
    let publisher = tx
        .publisher_builder()
        .initial_max_slice_len(size)
        .allocation_strategy(AllocationStrategy::Static)
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .max_loaned_samples(1)
        .create()
        .map_err(|e| anyhow!("iceoryx2 publisher: {e:?}"))?;
    let subscriber = rx
        .subscriber_builder()
        .buffer_size(buffer_for(size))
        .create()
        .map_err(|e| anyhow!("iceoryx2 subscriber: {e:?}"))?;
    Ok(IceEndpoint {
        publisher,
        subscriber,
        rx_service: rx,
        _tx_service: tx,
        _node: node,
    })
}

impl Endpoint for IceEndpoint {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        loop {
            match self.publisher.loan_slice_uninit(msg.len()) {
                Ok(sample) => {
                    let delivered = sample
                        .write_from_slice(msg)
                        .send()
                        .map_err(|e| anyhow!("iceoryx2 send: {e:?}"))?;
                    ensure!(
                        delivered > 0,
                        "iceoryx2 send: no subscriber took the sample (peer exited?)"
                    );
                    return Ok(());
                }
                // Every sample is in flight: wait for the subscriber to release one.
                Err(iceoryx2::port::LoanError::OutOfMemory) => std::hint::spin_loop(),
                Err(e) => bail!("iceoryx2 loan: {e:?}"),
            }
        }
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut empty = 0u32;
        loop {
            match self.subscriber.receive() {
                Ok(Some(sample)) => {
                    let payload = sample.payload();
                    ensure!(
                        payload.len() == buf.len(),
                        "iceoryx2 receive: {}-byte sample, expected {}",
                        payload.len(),
                        buf.len()
                    );
                    buf.copy_from_slice(payload);
                    return Ok(buf.len());
                }
                Ok(None) => {
                    empty += 1;
                    if empty == LIVENESS_EVERY {
                        empty = 0;
                        ensure!(
                            self.rx_service.dynamic_config().number_of_publishers() > 0,
                            "iceoryx2 receive: the publisher left (peer exited?)"
                        );
                    }
                    std::hint::spin_loop();
                }
                Err(e) => bail!("iceoryx2 receive: {e:?}"),
            }
        }
    }
}

impl Transport for Iceoryx2 {
    fn name(&self) -> &'static str {
        "iceoryx2"
    }

    fn class(&self) -> Class {
        Class::SharedMemory
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
        let ep = endpoint(&base, size, true)?;
        Ok(Listening {
            arg: base,
            child_stdin: None,
            child_stdout: None,
            finish: Box::new(move || Ok(Box::new(ep) as Box<dyn Endpoint>)),
        })
    }

    fn connect(&self, arg: &str, size: usize) -> Result<Box<dyn Endpoint>> {
        set_log_level(LogLevel::Error);
        Ok(Box::new(endpoint(arg, size, false)?))
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
