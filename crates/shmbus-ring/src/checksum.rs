//! The per-message checksum of a checksum ring (PROTOCOL §4.2, DECISIONS D24), over the core
//! traits: the endpoint layer calls these instead of the cores' own copy paths when the ring's
//! header carries `RING_FLAG_CHECKSUM`. The producer writes a CRC32C trailer after each
//! payload; the consumer verifies it on its private copy (or, for in-place reads, on the view
//! it hands out).

use crate::conv::len_u32;
use crate::copy;
use crate::endpoint::{Publish, ReadCore, ReadInPlace, WriteCore, WriteInPlace};
use crate::error::{ChecksumMismatch, Corruption, PopError, PushError};
use crate::layout::CHECKSUM_LEN;

/// The CRC32C a checksum ring's trailer holds for `payload`: over the payload bytes, then the
/// payload's length as a little-endian `u32` (PROTOCOL §4.2), so a forged length that still
/// points at a plausible trailer is caught as well.
#[inline]
pub(crate) fn checksum_of(payload: &[u8]) -> u32 {
    crc32c::crc32c_append(
        crc32c::crc32c(payload),
        &len_u32(payload.len()).to_le_bytes(),
    )
}

/// A checksum ring's `try_push`: reserves the payload and its trailer, copies the payload in,
/// writes the CRC32C of the caller's (private) bytes after it, and commits both.
#[inline]
pub(crate) fn push_checked<C: WriteInPlace>(core: &mut C, payload: &[u8]) -> Result<(), PushError> {
    let at = reserve_checked(core, payload.len())?;
    let len = payload.len();
    // SAFETY: `reserve_checked` made room for `len + CHECKSUM_LEN` bytes at `at`'s payload,
    // inside the ring's memory and this producer's until `commit`; `payload` is process-local,
    // so it does not overlap it.
    unsafe {
        copy::copy_in(payload.as_ptr(), core.payload(at), len);
        seal(core, at, len, checksum_of(payload));
    }
    Ok(())
}

/// Writes `crc` as the trailer after the `len` payload bytes reserved at `at`, and commits
/// both: the end of every checksummed write (`push_checked`, a `WriteGuard`'s commit).
///
/// # Safety
///
/// - The reservation at `at` holds at least `len + CHECKSUM_LEN` bytes (`reserve_checked`).
#[inline]
pub(crate) unsafe fn seal<C: WriteInPlace>(core: &mut C, at: u64, len: usize, crc: u32) {
    let trailer = crc.to_le_bytes();
    // SAFETY: the reservation holds the trailer's bytes after the payload (contract);
    // `trailer` is process-local, so it does not overlap them.
    unsafe {
        std::ptr::copy_nonoverlapping(trailer.as_ptr(), core.payload(at).add(len), CHECKSUM_LEN);
    }
    core.commit(at, len + CHECKSUM_LEN);
}

/// Reserves a message of `len` payload bytes and its trailer on a checksum ring; a payload
/// over the limit is `TooLarge` against the payload limit (the record limit less the trailer).
#[inline]
pub(crate) fn reserve_checked<C: WriteCore>(core: &mut C, len: usize) -> Result<u64, PushError> {
    let max = core.max_message() - CHECKSUM_LEN;
    if len > max {
        return Err(PushError::TooLarge { len, max });
    }
    core.reserve(len + CHECKSUM_LEN)
}

/// A checksum ring's `try_push_batch`: every size checked first, then one checked push per
/// record, stopping at the first that does not fit (each record publishes on its own).
pub(crate) fn push_batch_checked<C: WriteInPlace, R: AsRef<[u8]>>(
    core: &mut C,
    records: &[R],
) -> Result<usize, PushError> {
    let max = core.max_message() - CHECKSUM_LEN;
    if let Some(len) = records.iter().map(|r| r.as_ref().len()).find(|l| *l > max) {
        return Err(PushError::TooLarge { len, max });
    }
    let mut n = 0;
    for r in records {
        match push_checked(core, r.as_ref()) {
            Ok(()) => n += 1,
            // As the cores' batches: report what was pushed; the next call reports the error.
            Err(_) if n > 0 => break,
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// `payload` followed by its trailer, as a checksum ring stores it (for the MPMC
/// all-or-nothing batch, which hands whole records to the core).
pub(crate) fn framed(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + CHECKSUM_LEN);
    v.extend_from_slice(payload);
    v.extend_from_slice(&checksum_of(payload).to_le_bytes());
    v
}

/// Compares the trailer `stored` of the message at `at` with the CRC32C of `payload`.
#[inline]
pub(crate) fn verify(at: u64, payload: &[u8], stored: [u8; CHECKSUM_LEN]) -> Result<(), PopError> {
    let stored = u32::from_le_bytes(stored);
    let computed = checksum_of(payload);
    if computed == stored {
        Ok(())
    } else {
        Err(PopError::Checksum(ChecksumMismatch {
            position: at,
            len: payload.len(),
            stored,
            computed,
        }))
    }
}

/// The payload length of a checksum ring's record of `len` bytes; a record too short to hold
/// a trailer is consumed and reported as corrupt.
#[inline]
pub(crate) fn payload_len<C: ReadCore>(
    core: &mut C,
    at: u64,
    len: usize,
) -> Result<usize, PopError> {
    len.checked_sub(CHECKSUM_LEN).ok_or_else(|| {
        core.consume(at, len, Publish::Now);
        PopError::Corrupt(Corruption {
            what: "record shorter than its checksum trailer",
            position: at,
            value: crate::conv::wide(len),
        })
    })
}

/// A checksum ring's `try_pop`: copies the payload into `buf` (the private copy) and the
/// trailer beside it, consumes the message, then verifies the copy. A mismatch is
/// [`PopError::Checksum`], the message consumed.
#[inline]
pub(crate) fn pop_checked<C: ReadInPlace>(core: &mut C, buf: &mut [u8]) -> Result<usize, PopError> {
    let need = core.pop_buffer_min().saturating_sub(CHECKSUM_LEN);
    if buf.len() < need {
        // Checked before taking: an MPMC claim cannot be handed back in order.
        return Err(PopError::BufferTooSmall {
            needed: need,
            len: buf.len(),
        });
    }
    let (at, len) = core.next()?.ok_or(PopError::Empty)?;
    let plen = payload_len(core, at, len)?;
    if plen > buf.len() {
        // SPSC only (MPMC buffers hold a whole payload, checked above): the message stays.
        core.unwind(at, len);
        return Err(PopError::BufferTooSmall {
            needed: plen,
            len: buf.len(),
        });
    }
    let stored = copy_out(core, at, &mut buf[..plen]);
    core.consume(at, len, Publish::Now);
    verify(at, &buf[..plen], stored).map(|()| plen)
}

/// A checksum ring's `try_pop_vec`, as [`pop_checked`].
pub(crate) fn pop_vec_checked<C: ReadInPlace>(
    core: &mut C,
    buf: &mut Vec<u8>,
) -> Result<usize, PopError> {
    let (at, len) = core.next()?.ok_or(PopError::Empty)?;
    let plen = payload_len(core, at, len)?;
    buf.clear();
    buf.resize(plen, 0);
    let stored = copy_out(core, at, buf);
    core.consume(at, len, Publish::Now);
    verify(at, buf, stored).map(|()| plen)
}

/// Copies the payload of the message taken at `at` into `dst` (its length) and returns the
/// trailer that follows it.
#[inline]
pub(crate) fn copy_out<C: ReadInPlace>(core: &C, at: u64, dst: &mut [u8]) -> [u8; CHECKSUM_LEN] {
    let src = core.payload(at);
    let mut stored = [0u8; CHECKSUM_LEN];
    // SAFETY: `next` validated that the record, `dst.len() + CHECKSUM_LEN` bytes (checked by
    // the caller), lies inside the ring's memory, and it is ours until consumed; `dst` and
    // `stored` are process-local, so they do not overlap it.
    unsafe {
        copy::copy_out(src, dst.as_mut_ptr(), dst.len());
        std::ptr::copy_nonoverlapping(src.add(dst.len()), stored.as_mut_ptr(), CHECKSUM_LEN);
    }
    stored
}

/// The next message for reading in place (position, record length): on a checksum ring
/// (`trailer != 0`), verified in place first; a mismatch consumes it and is
/// [`PopError::Checksum`]. (The bytes are shared memory: they can still change after the
/// check; a private copy is what keeps the guarantee.)
#[inline(always)]
pub(crate) fn next_of<C: ReadInPlace>(
    core: &mut C,
    trailer: usize,
) -> Result<Option<(u64, usize)>, PopError> {
    let next = core.next()?;
    if trailer == 0 {
        return Ok(next);
    }
    let Some((at, len)) = next else {
        return Ok(None);
    };
    let plen = payload_len(core, at, len)?;
    let src = core.payload(at);
    // SAFETY: `next` validated the record (`plen + CHECKSUM_LEN` bytes) lies inside the ring's
    // memory; it is ours until consumed. A view of shared memory, as `Consumer::view`.
    let payload = unsafe { std::slice::from_raw_parts(src, plen) };
    let mut stored = [0u8; CHECKSUM_LEN];
    // SAFETY: as above; `stored` is process-local.
    unsafe { std::ptr::copy_nonoverlapping(src.add(plen), stored.as_mut_ptr(), CHECKSUM_LEN) };
    if let Err(e) = verify(at, payload, stored) {
        core.consume(at, len, Publish::Now);
        return Err(e);
    }
    Ok(Some((at, len)))
}
