//! Huge pages for a segment: explicit ones (`SHM_HUGETLB`, `MAP_HUGETLB`, `MFD_HUGETLB`, or a
//! shm directory on hugetlbfs) and transparent ones (`madvise(MADV_HUGEPAGE)`), and what the
//! host has of them (`/proc/meminfo`).

use crate::error::{Error, Result};
use std::path::Path;

/// Whether, and how, a segment asks for huge pages ([`super::SegmentOptions::huge_pages`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HugePages {
    /// Base pages (the default).
    #[default]
    Off,
    /// Transparent huge pages: the mapping is advised with `madvise(MADV_HUGEPAGE)`, and the
    /// kernel uses huge pages if it can. Never an error: on a host whose THP setting for the
    /// memory kind is `never` (`/sys/kernel/mm/transparent_hugepage/enabled` for anonymous
    /// mappings, `.../shmem_enabled` for shm, memfd and System V), the segment simply keeps
    /// base pages. This is the documented fallback.
    Transparent,
    /// Explicit huge pages from the host's pool (`vm.nr_hugepages`): `SHM_HUGETLB` for System
    /// V, `MAP_HUGETLB` for anonymous, `MFD_HUGETLB` for memfd, and for a named segment a shm
    /// directory on a hugetlbfs mount. The length is rounded up to whole huge pages. Fails with
    /// [`Error::HugePages`] saying why when the host has none to give.
    Explicit,
}

/// The host's explicit huge pages, from `/proc/meminfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HugePageInfo {
    /// `Hugepagesize`, in bytes.
    pub size: u64,
    /// `HugePages_Total`: the pool (`vm.nr_hugepages`).
    pub total: u64,
    /// `HugePages_Free`.
    pub free: u64,
}

/// What `/proc/meminfo` says of the default huge page pool; `None` if it cannot be read or the
/// kernel has no hugetlb support.
///
/// ```
/// if let Some(info) = shmbus_ring::segment::huge_page_info() {
///     assert!(info.size.is_power_of_two());
///     assert!(info.free <= info.total);
/// }
/// ```
pub fn huge_page_info() -> Option<HugePageInfo> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |key: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(key))?
            .trim_start_matches(':')
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some(HugePageInfo {
        size: field("Hugepagesize")?.checked_mul(1024)?,
        total: field("HugePages_Total")?,
        free: field("HugePages_Free")?,
    })
}

/// Why explicit huge pages of `len` bytes cannot be had on this host, if that can be told
/// before asking (`None`: try, and let the kernel say).
pub(crate) fn unavailable(len: usize) -> Option<String> {
    let Some(info) = huge_page_info() else {
        return Some("/proc/meminfo shows no hugetlb support (no Hugepagesize)".into());
    };
    if info.total == 0 {
        return Some(
            "the host has no explicit huge pages (HugePages_Total is 0 in /proc/meminfo; an \
             administrator sets vm.nr_hugepages)"
                .into(),
        );
    }
    let need = (len as u64).div_ceil(info.size.max(1));
    if need > info.free {
        return Some(format!(
            "{need} huge pages of {} KiB are needed, {} of {} are free (HugePages_Free)",
            info.size / 1024,
            info.free,
            info.total
        ));
    }
    None
}

/// The error for explicit huge pages refused on `target`.
pub(crate) fn error(target: &str, reason: String) -> Error {
    Error::HugePages {
        target: target.to_string(),
        reason,
    }
}

/// The error for a kernel refusal (`errno`) of explicit huge pages in call `op`.
pub(crate) fn refused(target: &str, op: &str, errno: i32, len: usize) -> Error {
    let why = match errno {
        libc::EPERM => "EPERM: System V huge pages need CAP_IPC_LOCK or membership of the group \
                        in /proc/sys/vm/hugetlb_shm_group"
            .to_string(),
        libc::ENOMEM | libc::ENOSPC => unavailable(len)
            .unwrap_or_else(|| "not enough free huge pages in the pool (ENOMEM)".to_string()),
        libc::EINVAL => "EINVAL: the length is not a multiple of the huge page size, or the \
                         kernel has no hugetlb support"
            .to_string(),
        e => format!("errno {e}"),
    };
    error(target, format!("{op}: {why}"))
}

/// `len` rounded up to whole huge pages, for [`HugePages::Explicit`].
pub(crate) fn round(len: usize, target: &str) -> Result<usize> {
    let size = huge_page_info()
        .and_then(|i| usize::try_from(i.size).ok())
        .filter(|s| s.is_power_of_two())
        .ok_or_else(|| error(target, "/proc/meminfo gives no huge page size".into()))?;
    len.checked_next_multiple_of(size)
        .filter(|v| isize::try_from(*v).is_ok())
        .ok_or_else(|| Error::InvalidConfig(format!("{target}: length {len} is too large")))
}

/// Whether `dir` is on a hugetlbfs mount (so files in it are backed by explicit huge pages).
pub(crate) fn is_hugetlbfs(dir: &Path) -> bool {
    nix::sys::statfs::statfs(dir)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::HUGETLBFS_MAGIC)
}

/// Advises the mapping `[ptr, ptr + len)` to use transparent huge pages. Best effort: a kernel
/// without THP (`EINVAL`) leaves it as it is.
pub(crate) fn advise(ptr: *mut u8, len: usize) {
    let Some(p) = std::ptr::NonNull::new(ptr.cast::<std::ffi::c_void>()) else {
        return;
    };
    // SAFETY: `ptr`/`len` describe a live mapping of the calling segment; MADV_HUGEPAGE changes
    // no contents, only how the kernel backs the pages.
    let _ = unsafe { nix::sys::mman::madvise(p, len, nix::sys::mman::MmapAdvise::MADV_HUGEPAGE) };
}
