//! The core of [shmbus]: shared-memory segments, the versioned layout, and lock-free rings
//! synchronised with atomics only. All of the project's `unsafe` code lives in this crate.
//!
//! # The shared-memory map
//!
//! ```text
//! offset  size   what                                               module
//! 0       256    header: magic, layout version, ABI, ring kind,     layout
//!                geometry, type fingerprint, codec, creation time
//! 256     128    producer block: SPSC tail + producer pid;          layout / spsc / mpmc
//!                MPMC tail hint
//! 384     128    consumer block: SPSC head + consumer pid;          layout / spsc / mpmc
//!                MPMC head hint
//! 512     64     roster: attached endpoints per role                liveness
//! 576     3520   endpoint table (55 × 64 B), both ring kinds        liveness
//! 4096    ...    SPSC: records {len: u32, kind: u32} + payload,     frame / spsc
//!                8-byte aligned, padding record at the wrap
//!                MPMC: slots [seq << 8 | tag: u64][len: u32]       mpmc
//!                [reserved: u32][payload], 64-byte aligned
//! ```
//!
//! `docs/PROTOCOL.md` in the repository describes the bytes and the ordering protocols in full,
//! enough to write a compatible peer in C.
//!
//! # Rings
//!
//! - [`SpscRing`]: one [`Producer`], one [`Consumer`], variable-size records; the fast path.
//! - [`MpmcRing`]: any number of [`MpmcProducer`]s and [`MpmcConsumer`]s in any processes,
//!   messages up to a fixed slot size.
//!
//! Both run over any [`Segment`]: named POSIX shared memory, an anonymous shared mapping
//! inherited over `fork`, a sealed memfd, a file, or process-private heap memory.
//!
//! # Example
//!
//! ```
//! use shmbus_ring::{PopError, SegmentOptions, SpscConfig, SpscRing};
//! let name = format!("/shmbus-doc-lib-{}", std::process::id());
//! let ring = SpscRing::create_shm(&name, &SpscConfig::new(1 << 16), &SegmentOptions::default())?;
//! let mut tx = ring.producer()?;
//! // ... in another process: SpscRing::open_shm(&name, &SegmentOptions::default())?.consumer()?
//! let mut rx = ring.consumer()?;
//! for i in 0u32..100 {
//!     tx.try_push(&i.to_le_bytes())?;
//! }
//! let mut seen = 0;
//! loop {
//!     match rx.try_pop_with(|bytes| u32::from_le_bytes(bytes.try_into().unwrap())) {
//!         Ok(v) => { assert_eq!(v, seen); seen += 1; }
//!         Err(PopError::Empty) => break,
//!         Err(e) => return Err(e.into()),
//!     }
//! }
//! assert_eq!(seen, 100);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [shmbus]: https://docs.rs/shmbus

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[doc(hidden)]
pub mod crashpoint;
pub mod error;
pub mod frame;
pub mod layout;
pub mod liveness;
mod mem;
pub mod mpmc;
pub mod segment;
pub mod spsc;
mod sync;
pub mod wait;

pub use error::{Corruption, Errno, Error, OsCode, PopError, PushError, Result, Role};
pub use layout::{Identity, OpenOptions, RingKind, SegmentHeader};
#[cfg(loom)]
pub use mem::LoomMem;
pub use mpmc::{MpmcConfig, MpmcConsumer, MpmcProducer, MpmcRing, ReadSlot, WriteSlot};
pub use segment::{Backing, Segment, SegmentOptions};
pub use spsc::{Consumer, Peeked, Producer, Reservation, SpscConfig, SpscRing};
pub use wait::WaitStrategy;
