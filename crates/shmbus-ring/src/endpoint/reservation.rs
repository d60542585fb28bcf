//! A reservation set aside from its guard, so that code which must wait before it can hold a
//! reservation — an asynchronous sender's `reserve().await`, which cannot return a borrow from
//! inside its retry loop — can keep one without borrowing the producer.
//!
//! The producer keeps the set-aside reservation itself (one at most); the caller holds only a
//! token naming it. So a token resumes only in the producer that made it, only while that
//! reservation is still there: a token of another producer, of a dropped producer, or of a
//! ring since freed (whatever its address) names nothing, and the producer's next write (or
//! its drop) abandons what was set aside, as dropping the guard would have.

use super::{Producer, WriteGuard};
use crate::ring::Kind;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a producer keeps of a reservation set aside.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Aside {
    at: u64,
    len: usize,
    token: u64,
}

/// A token for a reservation taken out of its [`WriteGuard`] ([`WriteGuard::set_aside`]): the
/// room stays claimed, held by the producer, and only that producer can take it back
/// ([`Producer::resume`]) to write and commit it. The producer's next write operation (push,
/// reserve, batch), or its drop, abandons it first — as dropping the guard would have — and the
/// token then resumes nothing.
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
/// // A token whose reservation a later write abandoned resumes nothing.
/// let stale = tx.reserve(5)?.set_aside();
/// tx.try_push(b"next")?;
/// assert!(tx.resume(stale).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[must_use = "a reservation set aside is abandoned by the producer's next write"]
pub struct Reservation {
    token: u64,
    len: usize,
}

impl Reservation {
    /// The reserved length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether zero bytes were reserved.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Tokens are unique in the process: a token never names another reservation.
fn next_token() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    // Relaxed: only uniqueness matters.
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl<K: Kind> WriteGuard<'_, K> {
    /// Sets the reservation aside without committing or abandoning it, releasing the borrow
    /// of the producer: the producer keeps it until [`Producer::resume`] gives the guard back,
    /// or its next write operation or its drop abandons it.
    pub fn set_aside(mut self) -> Reservation {
        self.done = true;
        let token = next_token();
        self.producer.aside = Some(Aside {
            at: self.at,
            len: self.len,
            token,
        });
        Reservation {
            token,
            len: self.len,
        }
    }
}

impl<K: Kind> Producer<K> {
    /// Takes back the reservation this producer set aside, as the guard it came from.
    ///
    /// # Errors
    ///
    /// The token itself if it names no reservation this producer holds: another producer's,
    /// or one a later write (or [`abandon`](Self::abandon_aside)) abandoned.
    pub fn resume(&mut self, r: Reservation) -> Result<WriteGuard<'_, K>, Reservation> {
        match self.aside {
            Some(a) if a.token == r.token => {
                self.aside = None;
                Ok(WriteGuard {
                    producer: self,
                    at: a.at,
                    len: a.len,
                    done: false,
                })
            }
            _ => Err(r),
        }
    }

    /// Abandons a reservation set aside, if there is one (as dropping its guard would).
    #[inline]
    pub fn abandon_aside(&mut self) {
        if self.aside.is_some() {
            self.abandon_aside_cold();
        }
    }

    #[cold]
    #[inline(never)]
    fn abandon_aside_cold(&mut self) {
        if let Some(a) = self.aside.take() {
            drop(WriteGuard {
                producer: self,
                at: a.at,
                len: a.len,
                done: false,
            });
        }
    }
}
