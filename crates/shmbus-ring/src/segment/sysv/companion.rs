//! The companion file of a named System V segment: one page in the shm directory, under the
//! segment's name, holding its id, key, size and nonce (PROTOCOL §1.2). It reserves the name
//! beside POSIX segments, finds a segment whose key is gone (`IPC_RMID`), and carries the
//! endpoints' OFD locks.

use super::super::{dir, io_os, os, Backing, Segment, SegmentOptions};
use super::{attach, name_bytes, not_ours, read_record, shmat, shmdt, stat, Record, RECORD_WAIT};
use crate::conv::{offset, wide};
use crate::error::{Error, Result};
use crate::layout::{COMPANION_LEN, COMPANION_MAGIC};
use nix::errno::Errno;
use nix::sys::stat::Mode;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Whether `path` names the file `file` has open (same device and inode).
pub(super) fn same_file(path: &Path, file: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::symlink_metadata(path), file.metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Writes the companion file of segment `id` into `dir` under `name`, complete before the
/// name appears (`O_TMPFILE` then `linkat`). A companion already there whose segment is gone
/// (its processes all died after `IPC_RMID`) is replaced; any other means the name is taken.
pub(super) fn make_companion(
    dir: &Path,
    name: &str,
    opts: &SegmentOptions,
    id: i32,
    record: &Record,
    len: usize,
) -> Result<(PathBuf, File)> {
    let path = dir::path_in(dir, name);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
        .mode(opts.mode)
        .open(dir)
        .map_err(|e| io_os("open(O_TMPFILE)", &dir.display().to_string(), &e))?;
    let fd = file.as_raw_fd();
    nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(opts.mode))
        .map_err(|e| os("fchmod", name, e))?;
    let mut page = vec![0u8; offset(COMPANION_LEN)];
    page[0..8].copy_from_slice(&COMPANION_MAGIC.to_le_bytes());
    page[8..12].copy_from_slice(&1u32.to_le_bytes());
    page[12..16].copy_from_slice(&id.to_le_bytes());
    page[16..20].copy_from_slice(&record.key.to_le_bytes());
    page[20..24].copy_from_slice(&u32::from(record.flags).to_le_bytes());
    page[24..32].copy_from_slice(&wide(len).to_le_bytes());
    page[32..40].copy_from_slice(&record.nonce.to_le_bytes());
    let nlen = u32::try_from(record.name.len()).unwrap_or(0);
    page[40..44].copy_from_slice(&nlen.to_le_bytes());
    page[44..44 + record.name.len()].copy_from_slice(&record.name);
    file.write_all_at(&page, 0)
        .map_err(|e| io_os("write", name, &e))?;
    let proc_path = format!("/proc/self/fd/{fd}");
    for attempt in 0..2 {
        match nix::unistd::linkat(
            None,
            Path::new(&proc_path),
            None,
            path.as_path(),
            nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
        ) {
            Ok(()) => return Ok((path, file)),
            Err(Errno::EEXIST) if attempt == 0 && companion_is_orphan(&path) => {
                let _ = std::fs::remove_file(&path);
            }
            Err(e) => return Err(os("link", name, e)),
        }
    }
    Err(os("link", name, Errno::EEXIST))
}

/// What a companion file says: shmid and nonce (after checking magic, version and lengths).
pub(crate) fn read_companion(file: &File, target: &str) -> Result<(i32, u64)> {
    let bad = |field: &'static str, value: u64, reason: &str| Error::BadField {
        target: target.to_string(),
        field,
        value,
        reason: reason.to_string(),
    };
    let mut head = [0u8; 44];
    file.read_exact_at(&mut head, 0)
        .map_err(|e| io_os("read", target, &e))?;
    let u32_at = |o: usize| u32::from_le_bytes([head[o], head[o + 1], head[o + 2], head[o + 3]]);
    let mut w8 = [0u8; 8];
    w8.copy_from_slice(&head[0..8]);
    let magic = u64::from_le_bytes(w8);
    if magic != COMPANION_MAGIC {
        return Err(bad(
            "companion magic",
            magic,
            "not a shmbus System V companion file",
        ));
    }
    if u32_at(8) != 1 {
        return Err(bad(
            "companion version",
            u64::from(u32_at(8)),
            "this build reads version 1",
        ));
    }
    w8.copy_from_slice(&head[32..40]);
    let id = i32::from_le_bytes([head[12], head[13], head[14], head[15]]);
    Ok((id, u64::from_le_bytes(w8)))
}

/// Opens `path` for reading if it is a regular file: without blocking (a FIFO someone put in
/// the shm directory would block a plain open until a writer came), and `None` for anything
/// that is not a regular file.
fn open_regular(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    file.metadata().ok()?.is_file().then_some(file)
}

/// Whether the file at `path` is a companion whose segment no longer exists (or now is another
/// segment): what processes that all died leave of a destroy-on-last-detach segment.
pub(crate) fn companion_is_orphan(path: &Path) -> bool {
    let Some(file) = open_regular(path) else {
        return false;
    };
    let Ok((id, nonce)) = read_companion(&file, &path.display().to_string()) else {
        return false;
    };
    match shmat(id, true) {
        Err(Errno::EINVAL | Errno::EIDRM) => true,
        Err(_) => false,
        Ok(p) => {
            let len = stat(id).map_or(0, |ds| ds.shm_segsz);
            let rec = read_record(p, len, Duration::ZERO);
            shmdt(p);
            !matches!(rec, Some(r) if r.nonce == nonce)
        }
    }
}

/// Whether the object `fd` refers to is a companion file (one page, starting with its magic).
pub(crate) fn is_companion(file: &File) -> bool {
    let mut m = [0u8; 8];
    file.metadata().is_ok_and(|md| md.len() == COMPANION_LEN)
        && file.read_exact_at(&mut m, 0).is_ok()
        && u64::from_le_bytes(m) == COMPANION_MAGIC
}

/// Opens the System V segment `name` through its companion file `fd`.
pub(crate) fn open_companion(fd: OwnedFd, name: &str, opts: &SegmentOptions) -> Result<Segment> {
    let file = File::from(fd);
    let (id, nonce) = read_companion(&file, name)?;
    let bytes = name_bytes(name)?;
    let target = name.to_string();
    let p = shmat(id, true).map_err(|e| os("shmat", &target, e))?;
    let len = stat(id).map_or(0, |ds| ds.shm_segsz);
    let rec = read_record(p, len, RECORD_WAIT);
    shmdt(p);
    let rec = rec.ok_or_else(|| not_ours(&target))?;
    if rec.name != bytes || rec.nonce != nonce {
        return Err(Error::BadField {
            target,
            field: "sysv record",
            value: rec.nonce,
            reason: "the segment the companion file names records another name or nonce (the \
                     companion is stale)"
                .into(),
        });
    }
    let backing = Backing::SysV {
        name: Some(name.to_string()),
        key: rec.key,
        shmid: id,
    };
    let path = dir::path_in(&opts.resolved_dir(), name);
    attach(id, backing, opts, false, &rec, Some((path, file)))
}

/// If the shm directory's entry `name` is a companion file whose segment no longer exists (its
/// processes all died after `IPC_RMID`, or it was removed by hand), its path and the backing it
/// named.
pub(crate) fn orphan_companion(name: &str) -> Option<(PathBuf, Backing)> {
    let path = dir::path_in(&super::super::shm_dir(), name);
    let file = open_regular(&path)?;
    if !is_companion(&file) || !companion_is_orphan(&path) {
        return None;
    }
    let (shmid, _) = read_companion(&file, name).ok()?;
    let mut k = [0u8; 4];
    file.read_exact_at(&mut k, 16).ok()?;
    Some((
        path,
        Backing::SysV {
            name: Some(name.to_string()),
            key: i32::from_le_bytes(k),
            shmid,
        },
    ))
}
