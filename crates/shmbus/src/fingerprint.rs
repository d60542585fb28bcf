//! The type fingerprint: what a channel carries, as one `u64` in the segment header.
//!
//! FNV-1a (64-bit) over a version tag, the type's name, its size and alignment (as
//! little-endian `u64`s) and the codec id (little-endian `u32`). FNV-1a is written out here
//! rather than taken from `std`: `DefaultHasher` may change between Rust releases, and two
//! processes built by different compilers must compute the same fingerprint.
//!
//! The name defaults to [`std::any::type_name`], which includes the crate: a type defined in a
//! library both processes use has the same name in both, but two binaries that each define
//! their own `Order` do not. Such binaries name the type themselves with
//! [`ChannelBuilder::type_name`](crate::ChannelBuilder::type_name).

use crate::codec::{codec_name, Codec};
use std::fmt;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a, 64-bit, continuing from `hash` (start with [`fnv1a`]'s offset basis by calling it
/// on the first bytes).
fn fnv1a_extend(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// The 64-bit FNV-1a hash of `bytes`: stable across builds, platforms and Rust releases.
///
/// ```
/// // The published test vectors of FNV-1a 64.
/// assert_eq!(shmbus::fingerprint::fnv1a(b""), 0xcbf29ce484222325);
/// assert_eq!(shmbus::fingerprint::fnv1a(b"a"), 0xaf63dc4c8601ec8c);
/// assert_eq!(shmbus::fingerprint::fnv1a(b"foobar"), 0x85944171f73967e8);
/// ```
pub fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_extend(FNV_OFFSET, bytes)
}

/// What one end of a channel carries: the type (name, size, alignment) and the codec, and the
/// fingerprint computed from them.
///
/// ```
/// use shmbus::codec::Bincode;
/// use shmbus::fingerprint::TypeIdentity;
/// let a = TypeIdentity::of::<u64, Bincode>(None);
/// let b = TypeIdentity::of::<u64, shmbus::codec::Plain>(None);
/// assert_eq!(a.type_name, "u64");
/// assert_ne!(a.fingerprint, b.fingerprint); // same type, another codec
/// assert_eq!(a.fingerprint, TypeIdentity::of::<u64, Bincode>(None).fingerprint);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeIdentity {
    /// The type's name: [`std::any::type_name`] or the name the builder was given.
    pub type_name: String,
    /// `size_of::<T>()`.
    pub size: u64,
    /// `align_of::<T>()`.
    pub align: u64,
    /// The codec's id.
    pub codec_id: u32,
    /// The codec's name.
    pub codec_name: &'static str,
    /// The fingerprint written into the header (0 for raw bytes).
    pub fingerprint: u64,
}

impl TypeIdentity {
    /// The identity of `T` under codec `C`, named `name` or, by default, by
    /// [`std::any::type_name`]. Raw bytes ([`crate::codec::Raw`], codec id 0) have fingerprint
    /// 0, as a ring made without a type has.
    pub fn of<T, C: Codec<T>>(name: Option<&str>) -> Self {
        let type_name = name.unwrap_or(std::any::type_name::<T>()).to_string();
        let (size, align) = (size_of::<T>() as u64, align_of::<T>() as u64);
        let fingerprint = if C::ID == 0 {
            0
        } else {
            let mut h = fnv1a(b"shmbus type fingerprint v1\0");
            h = fnv1a_extend(h, type_name.as_bytes());
            h = fnv1a_extend(h, b"\0");
            h = fnv1a_extend(h, &size.to_le_bytes());
            h = fnv1a_extend(h, &align.to_le_bytes());
            fnv1a_extend(h, &C::ID.to_le_bytes())
        };
        TypeIdentity {
            type_name,
            size,
            align,
            codec_id: C::ID,
            codec_name: C::NAME,
            fingerprint,
        }
    }
}

impl fmt::Display for TypeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` (size {}, align {}) with codec {} (id {}), fingerprint {:#018x}",
            self.type_name, self.size, self.align, self.codec_name, self.codec_id, self.fingerprint
        )
    }
}

/// The codec of a header's `codec_id`, described for an error message: `bincode (id 1)`.
pub(crate) fn describe_codec(id: u32) -> String {
    match codec_name(id) {
        Some(name) => format!("{name} (id {id})"),
        None => format!("an unknown codec (id {id})"),
    }
}
