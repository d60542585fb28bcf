//! The core of [shmbus]: shared-memory segments, the versioned layout, and lock-free rings
//! synchronised with atomics only. All of the project's `unsafe` code lives in this crate.
//!
//! # The shared-memory map
//!
//! ```text
//! offset  size   what                                               module
//! 0       256    header: magic, layout version, ABI, ring kind,     layout, handshake
//!                geometry, type fingerprint, codec, creation time;
//!                System V record (layout 1.3, System V segments only)
//! 256     128    producer block: SPSC tail, SPSC owner word,        layout, spsc, mpmc,
//!                wake sequence, waiters, SPSC message count;        wait
//!                MPMC tail hint
//! 384     128    consumer block: the same for the consumer side     layout, spsc, mpmc, wait
//!                (both blocks, +64..+128, layout 1.3: statistics     stats
//!                counters, bumped on slow paths)
//! 512     64     roster: attached endpoints per role                liveness
//! 576     3520   endpoint table (55 × 64 B), both ring kinds        liveness
//! 4096    ...    SPSC: records {len: u32, kind: u32} + payload,     frame, spsc/core
//!                8-byte aligned, padding record at the wrap
//!                MPMC: slots [seq << 8 | tag: u64][len: u32]       mpmc/core
//!                [reserved: u32][payload], 64-byte aligned
//!                broadcast (layout 1.4): SPSC records whose header   broadcast
//!                word carries the lap; then, after the data, the
//!                publisher's line, the roster generation, 55 cursor
//!                lines and the history index
//! after   ...    info region (layout 1.2): type name, codec, name,  info
//! data           creator
//! ```
//!
//! # The modules
//!
//! | module | concern |
//! |---|---|
//! | `sync` | the std/loom switch and [the one path to shared memory](crate::sync): every shared word goes through its `Memory` |
//! | `layout` | offsets, constants and the header struct, checked at compile time |
//! | `handshake` | publishing a header (`READY` last) and checking one at open |
//! | `segment` | segments: named shm, anonymous, memfd, file, heap; the one place that unlinks. `segment/sysv` (and `sysv/companion`): System V segments; `segment/huge`: huge pages; `segment/dir`: names and the shm directory |
//! | `frame` | the SPSC record header word |
//! | `spsc/core`, `mpmc/core`, `broadcast/{publisher,subscriber}` | the lock-free algorithms over `Memory`, nothing else |
//! | `spsc/ring`, `mpmc/ring`, `broadcast/ring` | each ring in a segment: geometry checks, role claims, repair |
//! | `ring` | [`Ring`] and the sealed [`Kind`] trait: what every kind provides |
//! | `endpoint` | [`Producer`] and [`Consumer`], written once: registration, probing, disconnection, waiting, the blocking calls, the guards |
//! | `wait` | the wait strategies and the sleep/notify protocol (N1–N2, P1–P6) |
//! | `select` | waiting on several rings at once: doorbells, `wait_any` over `futex_waitv` |
//! | `settle` | a non-blocking MPMC pop that meets a message in flight (linearizable "empty") |
//! | `info` | the info region: what a segment carries, in words |
//! | `stats` | the statistics counters in the control blocks (layout 1.3), bumped on slow paths |
//! | `observe` | passive observation for tools: read-only maps, snapshots, copy-and-validate peeks |
//! | `liveness` | the endpoint table: state words, process identity, registration and reaping, inspection |
//! | `error` | typed errors |
//! | `conv` | the one conversion point between `u64` positions and `usize` offsets |
//!
//! `docs/PROTOCOL.md` in the repository describes the bytes and the ordering protocols in full,
//! enough to write a compatible peer in C.
//!
//! # Rings
//!
//! - [`SpscRing`] (`Ring<Spsc>`): one [`Producer`], one [`Consumer`], variable-size
//!   records; the fast path.
//! - [`MpmcRing`] (`Ring<Mpmc>`): any number of [`MpmcProducer`]s and [`MpmcConsumer`]s in
//!   any processes, messages up to a fixed slot size.
//!
//! Both kinds have the same endpoint API (see [`Producer`] and [`Consumer`] for the
//! vocabulary), so code written over `K: Kind` works with either.
//!
//! Both run over any [`Segment`]: named POSIX shared memory, System V shared memory, an
//! anonymous shared mapping inherited over `fork`, a sealed memfd, a file, or process-private
//! heap memory.
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
#![deny(clippy::undocumented_unsafe_blocks)]
// Lossy casts only in `conv.rs`, the one conversion point between protocol `u64`s and memory
// `usize`s (each allowed there, with the reason it is lossless).
#![deny(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

pub mod bell;
pub mod broadcast;
mod checksum;
mod conv;
mod copy;
#[doc(hidden)]
pub mod crashpoint;
mod endpoint;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod info;
pub mod layout;
pub mod liveness;
#[cfg(not(loom))]
mod membarrier;
#[cfg(loom)]
#[doc(hidden)]
pub mod membarrier;
#[cfg(loom)]
#[doc(hidden)]
pub mod model;
pub mod mpmc;
pub mod observe;
mod ring;
pub mod segment;
pub mod select;
mod settle;
pub mod spsc;
pub mod stats;
mod sync;
pub mod wait;

pub use broadcast::{
    Broadcast, BroadcastConfig, BroadcastRing, SlowSubscribers, StartAt, Subscription,
};
pub use endpoint::{Consumer, Producer, ReadGuard, Reservation, Role, WriteGuard};
pub use error::{ChecksumMismatch, Corruption, Error, OsCode, PopError, PushError, Result};
pub use handshake::OpenOptions;
pub use layout::{Identity, RingKind, SegmentHeader};
pub use mpmc::{Mpmc, MpmcConfig, MpmcConsumer, MpmcProducer, MpmcRing};
pub use ring::{Kind, Ring};
pub use segment::{Backing, Segment, SegmentOptions};
pub use spsc::{Spsc, SpscConfig, SpscRing};
pub use wait::WaitStrategy;
