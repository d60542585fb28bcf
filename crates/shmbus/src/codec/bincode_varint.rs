//! bincode 2's varint markers, one definition for shmbus's encoder (`bincode_enc`) and decoder
//! (`bincode_dec`): a byte up to 250 is the value itself; 251–254 announce a `u16`, `u32`,
//! `u64` or `u128` in the little-endian bytes that follow (255 is never valid).

/// The largest value written as its own single byte.
pub(super) const SINGLE_BYTE_MAX: u8 = 250;
/// A `u16` follows.
pub(super) const U16_BYTE: u8 = 251;
/// A `u32` follows.
pub(super) const U32_BYTE: u8 = 252;
/// A `u64` follows.
pub(super) const U64_BYTE: u8 = 253;
/// A `u128` follows.
pub(super) const U128_BYTE: u8 = 254;
