//! A reservation set aside from its guard, so that code which must wait before it can hold a
//! reservation — an asynchronous sender's `reserve().await`, which cannot return a borrow from
//! inside its retry loop — can keep one without borrowing the producer.

use super::{Producer, WriteGuard};
use crate::ring::Kind;
use std::sync::Arc;

/// A reservation taken out of its [`WriteGuard`] ([`WriteGuard::set_aside`]): the claimed room
/// stays claimed, and only the producer that made it can take it back
/// ([`Producer::resume`]) to write and commit it, or drop it (abandoning it).
///
/// Like a leaked guard, a reservation that is never resumed keeps its room claimed until its
/// producer's process exits (an MPMC slot claim then waits for the repair): resume every one.
///
/// ```
/// use shmbus_ring::{SpscConfig, SpscRing};
/// let ring = SpscRing::in_heap(&SpscConfig::new(4096))?;
/// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
/// let set_aside = tx.reserve(5)?.set_aside();
/// let mut guard = tx.resume(set_aside).expect("this producer's reservation");
/// guard.copy_from_slice(b"hello");
/// guard.commit();
/// let mut buf = [0u8; 16];
/// assert_eq!(rx.try_pop(&mut buf)?, 5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[must_use = "a reservation that is never resumed keeps its room claimed"]
pub struct Reservation {
    at: u64,
    len: usize,
    /// The producer's ring and entry: `resume` refuses another producer's reservation.
    ring: usize,
    tag: u64,
}

impl<K: Kind> WriteGuard<'_, K> {
    /// Sets the reservation aside without committing or abandoning it, releasing the borrow
    /// of the producer. [`Producer::resume`] gives the guard back.
    pub fn set_aside(mut self) -> Reservation {
        self.done = true;
        Reservation {
            at: self.at,
            len: self.len,
            ring: Arc::as_ptr(&self.producer.att.ring.inner).cast::<()>() as usize,
            tag: self.producer.att.index() + 1,
        }
    }
}

impl<K: Kind> Producer<K> {
    /// Takes back a reservation this producer set aside, as the guard it came from.
    ///
    /// # Errors
    ///
    /// The reservation itself, if another producer made it.
    pub fn resume(&mut self, r: Reservation) -> Result<WriteGuard<'_, K>, Reservation> {
        let ring = Arc::as_ptr(&self.att.ring.inner).cast::<()>() as usize;
        if r.ring != ring || r.tag != self.att.index() + 1 {
            return Err(r);
        }
        Ok(WriteGuard {
            producer: self,
            at: r.at,
            len: r.len,
            done: false,
        })
    }
}
