//! **shmbus**: a lock-free message bus over POSIX shared memory, for processes on one Linux
//! host.
//!
//! A producer writes a message straight into a ring that lives in a shared-memory segment; a
//! consumer in another process reads it from there. No kernel call on the hot path, no daemon,
//! no pointers in shared memory.
//!
//! Today this crate re-exports the core ring crate as [`ring`]; typed channels
//! (`Sender<T>` / `Receiver<T>`) are being built on top of it.
//!
//! ```
//! use shmbus::ring::{SegmentOptions, SpscConfig, SpscRing};
//! let name = format!("/shmbus-doc-top-{}", std::process::id());
//! let ring = SpscRing::create_shm(&name, &SpscConfig::new(1 << 16), &SegmentOptions::default())?;
//! let mut tx = ring.producer()?;
//! tx.try_push(b"tick")?;
//! // Another process: SpscRing::open_shm(&name, &SegmentOptions::default())?.consumer()?
//! let mut rx = ring.consumer()?;
//! assert_eq!(rx.try_pop_with(|m| m.to_vec())?, b"tick");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

pub use shmbus_ring as ring;
