//! Segment names and the shm directory: where named segments (and the companion files of System V segments)
//! live. `/dev/shm` unless [`SHM_DIR_ENV`] or [`super::SegmentOptions::shm_dir`] says otherwise.

use crate::error::{Error, Result};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// The longest name `shm_open` accepts after the leading `/` (`NAME_MAX`).
pub const MAX_NAME_LEN: usize = 255;

/// The environment variable naming the shm directory for named segments (default `/dev/shm`),
/// read when a segment is created or opened without [`super::SegmentOptions::shm_dir`].
pub const SHM_DIR_ENV: &str = "SHMBUS_DIR";

/// The default shm directory, where `shm_open` puts its objects.
pub const DEFAULT_SHM_DIR: &str = "/dev/shm";

/// The shm directory this process uses for named segments: [`SHM_DIR_ENV`] if set and not
/// empty, else `/dev/shm`.
///
/// ```
/// let dir = shmbus_ring::segment::shm_dir();
/// assert!(dir.is_absolute() || std::env::var_os("SHMBUS_DIR").is_some());
/// ```
pub fn shm_dir() -> PathBuf {
    match std::env::var_os(SHM_DIR_ENV) {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(DEFAULT_SHM_DIR),
    }
}

/// The path of the named object `name` (`/x`) in `dir`.
pub(crate) fn path_in(dir: &Path, name: &str) -> PathBuf {
    dir.join(name.trim_start_matches('/'))
}

/// Opens the named object `name` in `dir` as `shm_open` does in `/dev/shm`: `O_NOFOLLOW`,
/// `O_CLOEXEC`, `flags` and `mode`. In `/dev/shm` itself this is `shm_open`.
pub(crate) fn open(dir: &Path, name: &str, flags: OFlag, mode: Mode) -> Result<OwnedFd> {
    let res = if dir == Path::new(DEFAULT_SHM_DIR) {
        nix::sys::mman::shm_open(name, flags | OFlag::O_CLOEXEC, mode)
    } else {
        nix::fcntl::open(
            &path_in(dir, name),
            flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            mode,
        )
        .map(|fd| {
            // SAFETY: `open` returned a fresh descriptor that nothing else owns.
            unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }
        })
    };
    res.map_err(|e| super::os("shm_open", name, e))
}

/// Removes the named object `name` from `dir` (`shm_unlink` in `/dev/shm`).
pub(crate) fn unlink(dir: &Path, name: &str) -> nix::Result<()> {
    if dir == Path::new(DEFAULT_SHM_DIR) {
        nix::sys::mman::shm_unlink(name)
    } else {
        nix::unistd::unlink(&path_in(dir, name))
    }
}

/// Checks that `name` is a portable POSIX shared-memory name: a leading `/`, then 1 to 255
/// bytes with no `/` and no NUL, and not `.` or `..`.
///
/// # Errors
///
/// [`Error::InvalidName`] saying what is wrong with it.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    let Some(rest) = name.strip_prefix('/') else {
        return bad("must start with '/'");
    };
    if rest.is_empty() {
        return bad("must have at least one character after '/'");
    }
    if rest.len() > MAX_NAME_LEN {
        return bad("longer than 255 bytes after '/'");
    }
    if rest.contains('/') {
        return bad("must not contain '/' after the first character");
    }
    if rest.contains('\0') {
        return bad("must not contain NUL");
    }
    if rest == "." || rest == ".." {
        return bad("must not be '.' or '..'");
    }
    Ok(())
}
