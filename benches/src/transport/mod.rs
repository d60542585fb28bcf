//! The one trait every transport implements, and the list of transports.
//!
//! A transport is set up in two halves: [`Transport::listen`] runs in the harness (the parent
//! process) and creates whatever the peer attaches to; [`Transport::connect`] runs in the peer
//! (the harness binary re-spawned with a hidden role argument) and attaches. Both halves end up
//! with an [`Endpoint`], and every phase drives endpoints through the same loops in
//! [`crate::driver`], so the comparison is fair by construction.
//!
//! Adding a transport is one more file here with one more line in [`all`].

use anyhow::Result;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

mod eventfd;
mod fifo;
mod floor_cacheline;
mod floor_ring;
mod floor_two_lines;
#[cfg(feature = "iceoryx2")]
pub(crate) mod iceoryx2;
mod kernel_spin;
pub(crate) mod pipe;
mod posix_mq;
mod shmbus_async;
pub(crate) mod shmbus_broadcast;
mod shmbus_channel;
mod shmbus_mpmc;
mod shmbus_select;
mod shmbus_spsc;
mod shmbus_zero_copy;
mod tcp;
mod uds;

/// One side of an established connection carrying fixed-size messages.
///
/// `send` and `recv` block (or spin, for shared-memory transports) until the whole message has
/// gone out or come in; a transport never splits or merges messages as seen through this trait.
pub trait Endpoint {
    /// Sends one message.
    fn send(&mut self, msg: &[u8]) -> Result<()>;
    /// Receives one message into `buf` (whose length is the message size); returns its length.
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize>;
    /// Sends all of `msgs`, as many per call into the transport as it takes (the batched
    /// streaming phase, run for transports whose [`Transport::batches`] is true).
    fn send_batch(&mut self, msgs: &[Vec<u8>]) -> Result<()> {
        for m in msgs {
            self.send(m)?;
        }
        Ok(())
    }
    /// Receives the messages there are (at least one, waiting for it), handing each to `f`
    /// in place; returns how many (the batched streaming phase).
    fn recv_batch(
        &mut self,
        buf: &mut [u8],
        f: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<usize> {
        let n = self.recv(buf)?;
        f(&buf[..n])?;
        Ok(1)
    }
}

/// What a transport is, for the report: kernel paths are what shmbus is compared against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A hardware or memory floor measured by the same harness.
    Floor,
    /// A kernel IPC path (pipes, sockets, message queues).
    Kernel,
    /// A shared-memory transport (shmbus and its peers).
    SharedMemory,
}

/// The phases of a measurement, each of which a transport may or may not support.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Ping-pong round trip.
    RoundTrip,
    /// One-way streaming for a fixed time.
    Stream,
    /// One-way latency at a fixed offered rate.
    Rate,
    /// CPU of a receiver waiting for a message that does not come.
    Idle,
}

/// What the parent hands to a freshly spawned peer: an argument string (a path, a port, a
/// name) and optionally file descriptors that become the peer's stdin and stdout.
pub struct Listening {
    /// Passed to [`Transport::connect`] in the peer.
    pub arg: String,
    /// Becomes the peer's standard input.
    pub child_stdin: Option<OwnedFd>,
    /// Becomes the peer's standard output.
    pub child_stdout: Option<OwnedFd>,
    /// Completes the parent's side once the peer runs (accepts a connection, opens a FIFO).
    pub finish: Box<dyn FnOnce() -> Result<Box<dyn Endpoint>>>,
}

/// Parent-side context for [`Transport::listen`].
pub struct SetupEnv {
    /// A private scratch directory for sockets and FIFOs, removed at the end of the run.
    pub dir: PathBuf,
    /// A name unique to this connection (for shared-memory and message-queue names).
    pub unique: String,
}

/// A way of moving messages between two processes.
pub trait Transport {
    /// The name used on the command line and in every output.
    fn name(&self) -> &'static str;
    /// Floor, kernel path or shared memory.
    fn class(&self) -> Class;
    /// Whether this transport takes part in `phase` at message size `size`.
    fn supports(&self, phase: Phase, size: usize) -> bool {
        let _ = (phase, size);
        true
    }
    /// Whether this transport takes part in the batched streaming phase (its endpoints
    /// override [`Endpoint::send_batch`] and [`Endpoint::recv_batch`]): the ring's ceiling.
    fn batches(&self) -> bool {
        false
    }
    /// The data bytes of the ring(s) this transport creates for `size`-byte messages, for
    /// transports whose ring follows `--ring-bytes` (see [`crate::ring`]); `None` for the
    /// others.
    fn ring_bytes(&self, size: usize) -> Option<u64> {
        let _ = size;
        None
    }
    /// Called once per run before anything is measured: raise limits, and say what was done
    /// (or could not be) as lines for the report.
    fn prepare(&self, sizes: &[usize]) -> Vec<String> {
        let _ = sizes;
        Vec::new()
    }
    /// Parent side: creates what a peer attaches to for messages of `size` bytes.
    fn listen(&self, env: &SetupEnv, size: usize) -> Result<Listening>;
    /// Peer side: attaches to what `listen` created.
    fn connect(&self, arg: &str, size: usize) -> Result<Box<dyn Endpoint>>;
}

/// Every transport the harness knows, in the order rounds run them (floors first).
pub fn all() -> Vec<Box<dyn Transport>> {
    vec![
        Box::new(floor_cacheline::FloorCacheline { two: false }),
        Box::new(floor_cacheline::FloorCacheline { two: true }),
        Box::new(floor_ring::FloorRing),
        Box::new(shmbus_spsc::ShmbusSpsc(shmbus_spsc::Mode::Spin)),
        Box::new(shmbus_spsc::ShmbusSpsc(shmbus_spsc::Mode::Blocking)),
        Box::new(shmbus_spsc::ShmbusSpsc(shmbus_spsc::Mode::Parked)),
        Box::new(shmbus_spsc::ShmbusSpsc(shmbus_spsc::Mode::SpinChecksum)),
        Box::new(shmbus_spsc::ShmbusSpsc(shmbus_spsc::Mode::LargePosix)),
        Box::new(shmbus_spsc::ShmbusSpsc(shmbus_spsc::Mode::LargeSysv)),
        Box::new(shmbus_spsc::ShmbusSpsc(shmbus_spsc::Mode::LargeSysvHuge)),
        Box::new(shmbus_zero_copy::ShmbusZeroCopy),
        Box::new(shmbus_mpmc::ShmbusMpmc {
            checksum: false,
            rejoined: false,
        }),
        Box::new(shmbus_mpmc::ShmbusMpmc {
            checksum: false,
            rejoined: true,
        }),
        Box::new(shmbus_mpmc::ShmbusMpmc {
            checksum: true,
            rejoined: false,
        }),
        Box::new(shmbus_channel::ShmbusChannel),
        Box::new(shmbus_select::ShmbusSelect4),
        Box::new(shmbus_async::ShmbusAsync(false)),
        Box::new(shmbus_async::ShmbusAsync(true)),
        #[cfg(feature = "iceoryx2")]
        Box::new(iceoryx2::Iceoryx2(false)),
        #[cfg(feature = "iceoryx2")]
        Box::new(iceoryx2::Iceoryx2(true)),
        Box::new(eventfd::EventFdTransport),
        Box::new(pipe::Pipe),
        Box::new(kernel_spin::KernelSpin(kernel_spin::Kind::Pipe)),
        Box::new(fifo::Fifo),
        Box::new(uds::UdsStream),
        Box::new(uds::UdsSeqpacket),
        Box::new(kernel_spin::KernelSpin(kernel_spin::Kind::Uds)),
        Box::new(tcp::Tcp),
        Box::new(posix_mq::PosixMq::default()),
    ]
}

/// The floor the harness runs before and after each transport's phases, inside the same
/// process pair: one cache line bounced (see `floor-cacheline`).
pub fn bracket_floor() -> Box<dyn Transport> {
    Box::new(floor_cacheline::FloorCacheline { two: false })
}

/// The transport called `name`.
pub fn by_name(name: &str) -> Option<Box<dyn Transport>> {
    all().into_iter().find(|t| t.name() == name)
}

/// The peer's standard input as an owned descriptor (a duplicate, so it survives `std`'s
/// handle), for transports that pass their descriptors through stdio.
pub fn peer_stdin() -> Result<OwnedFd> {
    use std::os::fd::AsFd;
    Ok(std::io::stdin().as_fd().try_clone_to_owned()?)
}

/// The peer's standard output as an owned descriptor (a duplicate).
pub fn peer_stdout() -> Result<OwnedFd> {
    use std::os::fd::AsFd;
    Ok(std::io::stdout().as_fd().try_clone_to_owned()?)
}

/// An [`Endpoint`] over a byte stream (pipe, FIFO, stream socket): a message is `write_all`
/// of its bytes and `read_exact` of as many.
pub struct StreamEndpoint<R, W> {
    /// Where messages come from.
    pub rx: R,
    /// Where messages go.
    pub tx: W,
}

impl<R: std::io::Read, W: std::io::Write> Endpoint for StreamEndpoint<R, W> {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.tx.write_all(msg)?;
        Ok(())
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        match self.rx.read_exact(buf) {
            Ok(()) => Ok(buf.len()),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                anyhow::bail!("the other side closed the connection (peer exited?)")
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// An [`Endpoint`] over a message-preserving descriptor (SOCK_SEQPACKET): one `write` is one
/// message, one `read` returns one message.
pub struct PacketEndpoint {
    /// The socket.
    pub sock: std::fs::File,
}

impl Endpoint for PacketEndpoint {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        use std::io::Write;
        let n = self.sock.write(msg)?;
        anyhow::ensure!(
            n == msg.len(),
            "short packet write: {n} of {} bytes",
            msg.len()
        );
        Ok(())
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        use std::io::Read;
        let n = self.sock.read(buf)?;
        anyhow::ensure!(
            n == buf.len(),
            "short packet read: {n} of {} bytes (peer gone?)",
            buf.len()
        );
        Ok(n)
    }
}
