//! **shmbus**: a lock-free message bus over POSIX shared memory, for processes on one Linux
//! host.
//!
//! A producer writes a message straight into a ring that lives in a shared-memory segment; a
//! consumer in another process reads it from there. No kernel call on the hot path, no daemon,
//! no pointers in shared memory.
//!
//! # Typed channels
//!
//! [`Sender<T>`] and [`Receiver<T>`] speak crossbeam-channel's vocabulary across processes:
//! `send`, `try_send`, `send_timeout`, `recv`, `try_recv`, `recv_timeout`, `iter`,
//! `try_iter`, and errors that give an unsent message back. A [`ChannelBuilder`] (start with
//! [`channel`]) picks the flavor ([`Spsc`](flavor::Spsc) or [`Mpmc`](flavor::Mpmc)), the
//! [`codec`] (bincode by default, postcard, plain-old-data by `memcpy`, raw bytes), capacity,
//! maximum message size, permissions, and where the channel lives: named shared memory, an
//! anonymous mapping shared with forked children, a memfd, a file.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! enum Command { Move { x: i32, y: i32 }, Say(String), Stop }
//!
//! let name = format!("/shmbus-doc-top-{}", std::process::id());
//! // Process A
//! let mut tx = shmbus::channel::<Command>().create_sender(&name)?;
//! // Process B: opening checks the type fingerprint and codec written by A.
//! let mut rx = shmbus::channel::<Command>().open_receiver(&name)?;
//!
//! tx.send(Command::Say("hello".into()))?;
//! tx.send(Command::Move { x: 1, y: -1 })?;
//! assert_eq!(rx.recv()?, Command::Say("hello".into()));
//! assert_eq!(rx.try_recv()?, Command::Move { x: 1, y: -1 });
//! assert!(rx.try_recv().unwrap_err().is_empty());
//!
//! // The wrong type is refused at open, naming both sides.
//! let err = shmbus::channel::<String>().open_receiver(&name).unwrap_err();
//! assert!(matches!(err, shmbus::Error::TypeMismatch { .. }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Topics
//!
//! [`topic`] is one publisher and any number of subscribers, in any processes, each message
//! written once and read by every subscriber: lossless (tethered) or lossy subscribers that
//! are told how many messages they missed, a start from history for late ones, a successor
//! for a publisher that died, and [`topic::list`] of the topics on this host.
//!
//! ```
//! let topic = format!("doc/top/{}", std::process::id());
//! let mut publisher = shmbus::topic::publisher::<String>().create(&topic)?;
//! let (mut a, mut b) = (
//!     shmbus::topic::subscriber::<String>().open(&topic)?,
//!     shmbus::topic::subscriber::<String>().open(&topic)?,
//! );
//! publisher.send(&"to all".to_string())?;
//! assert_eq!((a.recv()?, b.recv()?), ("to all".into(), "to all".into()));
//! # drop((publisher, a, b)); shmbus::topic::remove(&topic)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The ring underneath
//!
//! [`ring`] re-exports the core crate: segments, the SPSC record ring and the MPMC slot ring,
//! with zero-copy reservations and waits, for those who want bytes rather than types.
//!
//! ```
//! use shmbus::ring::{SegmentOptions, SpscConfig, SpscRing};
//! let name = format!("/shmbus-doc-ring-{}", std::process::id());
//! let ring = SpscRing::create_shm(&name, &SpscConfig::new(1 << 16), &SegmentOptions::default())?;
//! let mut tx = ring.producer()?;
//! tx.try_push(b"tick")?;
//! // Another process: SpscRing::open_shm(&name, &SegmentOptions::default())?.consumer()?
//! let mut rx = ring.consumer()?;
//! assert_eq!(rx.try_pop_with(|m| m.to_vec())?, b"tick");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
// Lossy casts are refused in library code (tests may use them: Cargo.toml's lint policy).
#![deny(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

#[cfg(feature = "tokio")]
pub mod asynch;
pub mod codec;
pub mod fingerprint;
pub mod flavor;

mod channel;
mod error;
pub mod raw_channel;
mod receiver;
pub mod select;
mod select_macro;
mod sender;
pub mod topic;

#[cfg(feature = "tokio")]
pub use asynch::{AsyncReceiver, AsyncSender, Permit};
pub use channel::{channel, Channel, ChannelBuilder, DEFAULT_CAPACITY, DEFAULT_MAX_MESSAGE};
pub use error::{
    CodecFault, Error, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};
pub use receiver::{IntoIter, Iter, Receiver, TryIter};
pub use select::{
    after, never, tick, After, Never, ReadyTimeoutError, Select, SelectRecv, SelectSend,
    SelectTimeoutError, SelectedOperation, Tick, TryReadyError, TrySelectError,
};
pub use sender::Sender;

pub use bytemuck;
pub use shmbus_ring as ring;
