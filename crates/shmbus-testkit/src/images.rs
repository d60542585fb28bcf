//! Segment images built by hand from `docs/PROTOCOL.md` (so the document and the code are
//! checked against each other), patched with arbitrary bytes, and the `open_segment` driver:
//! any image, opened as either ring kind and driven by honest endpoints, gives typed errors
//! or a working ring, never a panic, an out-of-bounds access or a hang.

use crate::honest::{Ends, Honest};
use shmbus_ring::layout::{CONSUMER_BLOCK, DATA_OFFSET, PRODUCER_BLOCK};
use shmbus_ring::mpmc::slot_stride;
use shmbus_ring::{MpmcRing, OpenOptions, Segment, SpscRing};
use std::time::Duration;

const PAGE: usize = 4096;

fn page_round(n: u64) -> usize {
    (n as usize).div_ceil(PAGE) * PAGE
}

fn put(img: &mut [u8], off: usize, bytes: &[u8]) {
    img[off..off + bytes.len()].copy_from_slice(bytes);
}

/// A valid, READY segment image per PROTOCOL.md §3, with zeroed control blocks and data.
fn header_image(kind: u32, total: usize, capacity: u64, limit: u64, data_len: u64) -> Vec<u8> {
    let mut img = vec![0u8; total];
    put(&mut img, 0, b"shmbus\0\0");
    put(&mut img, 8, b"REDY");
    put(&mut img, 12, &1u16.to_le_bytes()); // layout_major
    put(&mut img, 14, &0u16.to_le_bytes()); // layout_minor
    put(&mut img, 16, &1u32.to_le_bytes()); // abi_flags: little-endian
    put(&mut img, 20, &128u32.to_le_bytes()); // block_align
    put(&mut img, 24, &kind.to_le_bytes());
    put(&mut img, 28, &256u32.to_le_bytes()); // header_len
    put(&mut img, 32, &(total as u64).to_le_bytes());
    put(&mut img, 40, &capacity.to_le_bytes());
    put(&mut img, 48, &limit.to_le_bytes());
    put(&mut img, 56, &PRODUCER_BLOCK.to_le_bytes());
    put(&mut img, 64, &CONSUMER_BLOCK.to_le_bytes());
    put(&mut img, 72, &DATA_OFFSET.to_le_bytes());
    put(&mut img, 80, &data_len.to_le_bytes());
    img
}

/// A valid SPSC image: `capacity` data bytes (a power of two >= 64), records up to `limit`.
pub fn spsc_image(capacity: u64, limit: u64) -> Vec<u8> {
    let total = page_round(DATA_OFFSET + capacity);
    header_image(1, total, capacity, limit, capacity)
}

/// A valid MPMC image: `slots` slots (a power of two >= 2) of `slot_size` payload bytes, each
/// slot's sequence word initialised to its position.
pub fn mpmc_image(slots: u64, slot_size: u64) -> Vec<u8> {
    let stride = slot_stride(slot_size);
    let data_len = slots * stride;
    let total = page_round(DATA_OFFSET + data_len);
    let mut img = header_image(2, total, slots, slot_size, data_len);
    for i in 0..slots {
        put(
            &mut img,
            (DATA_OFFSET + i * stride) as usize,
            &(i << 8).to_le_bytes(),
        );
    }
    img
}

/// Where an image comes from.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Base {
    /// Arbitrary bytes, padded with zeros to whole pages (at most 64 KiB are used).
    Raw(Vec<u8>),
    /// [`spsc_image`] with capacity `64 << (cap_shift % 8)` and limit
    /// `1 + limit % (capacity - 16)`.
    Spsc {
        /// Capacity selector.
        cap_shift: u8,
        /// Record limit selector.
        limit: u16,
    },
    /// [`mpmc_image`] with `2 << (slots_shift % 6)` slots of `1 + slot_size % 512` bytes.
    Mpmc {
        /// Slot count selector.
        slots_shift: u8,
        /// Slot size selector.
        slot_size: u16,
    },
}

/// Bytes written into an image: `value`'s low `1 << (width % 4)` bytes at `offset % len`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Patch {
    /// Byte offset (wrapped to the image).
    pub offset: u16,
    /// 1, 2, 4 or 8 bytes.
    pub width: u8,
    /// The bytes, little-endian.
    pub value: u64,
}

impl Patch {
    /// Writes the patch into `img` (nothing into an empty image).
    pub fn apply(&self, img: &mut [u8]) {
        if img.is_empty() {
            return;
        }
        let off = usize::from(self.offset) % img.len();
        let width = 1usize << (self.width % 4);
        let end = (off + width).min(img.len());
        img[off..end].copy_from_slice(&self.value.to_le_bytes()[..end - off]);
    }
}

/// A case for `open_segment`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct OpenCase {
    /// The image before patches.
    pub base: Base,
    /// Bytes written over it.
    pub patches: Vec<Patch>,
    /// What a ring that opens is then asked to do.
    pub ops: Vec<Honest>,
}

impl Base {
    /// The image this base stands for.
    pub fn image(&self) -> Vec<u8> {
        match self {
            Base::Raw(bytes) => {
                let mut b = bytes.clone();
                b.truncate(64 << 10);
                b
            }
            Base::Spsc { cap_shift, limit } => {
                let cap = 64u64 << (cap_shift % 8);
                spsc_image(cap, 1 + u64::from(*limit) % (cap - 16))
            }
            Base::Mpmc {
                slots_shift,
                slot_size,
            } => mpmc_image(2 << (slots_shift % 6), 1 + u64::from(*slot_size) % 512),
        }
    }
}

impl OpenCase {
    /// The base image with the patches written over it, in order.
    pub fn image(&self) -> Vec<u8> {
        let mut img = self.base.image();
        for p in &self.patches {
            p.apply(&mut img);
        }
        img
    }
}

/// Open options for images: READY is either there or not; never wait for it.
pub fn no_wait() -> OpenOptions {
    OpenOptions {
        ready_timeout: Duration::ZERO,
        expect: None,
    }
}

/// Builds the image, opens it as an SPSC and as an MPMC ring, and drives whatever opens.
/// Any outcome but a panic is acceptable, except payloads longer than the ring's limit.
pub fn run_open(case: &OpenCase) -> Result<(), String> {
    let img = case.image();
    let seg = || Segment::heap_from_bytes(&img).map_err(|e| format!("heap_from_bytes: {e}"));
    if let Ok(ring) = SpscRing::open_in(seg()?, &no_wait()) {
        let mut ends = Ends::attach(&ring);
        for op in &case.ops {
            ends.apply(&ring, op)?;
        }
    }
    if let Ok(ring) = MpmcRing::open_in(seg()?, &no_wait()) {
        let mut ends = Ends::attach(&ring);
        for op in &case.ops {
            ends.apply(&ring, op)?;
        }
    }
    Ok(())
}
