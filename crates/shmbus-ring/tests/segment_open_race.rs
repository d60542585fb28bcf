//! Opening a segment while its creator is still building it (issue 13): an object that is
//! there but not sized yet (between `shm_open(O_CREAT | O_EXCL)` and `ftruncate`) is "not
//! ready yet", waited on like an unpublished header, never `Truncated` at once. Only an object
//! still too short when the ready timeout ends, or one whose header shows it was READY before
//! it was cut, is `Truncated`.
#![cfg(not(loom))]

use shmbus_ring::{Error, OpenOptions, Segment, SegmentOptions, SpscConfig, SpscRing};
use shmbus_testkit::images::spsc_image;
use shmbus_testkit::unique_name;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CAPACITY: u64 = 4096;
/// Offset of `init_state` in the header (PROTOCOL §3).
const INIT_STATE: u64 = 8;

fn with_timeout(t: Duration) -> OpenOptions {
    OpenOptions {
        ready_timeout: t,
        ..OpenOptions::default()
    }
}

/// Builds a valid SPSC segment in `file`, which exists and is empty, the way a creator does
/// but slowly: sleep `delay` (the object is 0 bytes all that time), size it, write every byte
/// but `init_state`, then `init_state = READY` last.
fn build_slowly(file: &File, delay: Duration) {
    std::thread::sleep(delay);
    let img = spsc_image(CAPACITY, 1024);
    file.set_len(img.len() as u64).unwrap();
    let mut blank = img.clone();
    blank[INIT_STATE as usize..INIT_STATE as usize + 4].fill(0);
    file.write_all_at(&blank, 0).unwrap();
    file.write_all_at(
        &img[INIT_STATE as usize..INIT_STATE as usize + 4],
        INIT_STATE,
    )
    .unwrap();
}

/// Creates the shm object `name` exclusively and returns it, still 0 bytes long.
fn shm_create_empty(name: &str) -> File {
    File::from(
        nix::sys::mman::shm_open(
            name,
            nix::fcntl::OFlag::O_CREAT | nix::fcntl::OFlag::O_EXCL | nix::fcntl::OFlag::O_RDWR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .expect("shm_open"),
    )
}

struct Unlink(String);
impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = nix::sys::mman::shm_unlink(self.0.as_str());
    }
}

#[test]
fn an_opener_waits_for_an_shm_object_its_creator_has_not_sized_yet() {
    let name = unique_name("unsized");
    let _unlink = Unlink(name.clone());
    let file = shm_create_empty(&name);
    let creator = std::thread::spawn(move || build_slowly(&file, Duration::from_millis(100)));
    // The object exists and is 0 bytes: opening it now is the reported race, made wide.
    let ring = SpscRing::open_in(
        Segment::open(&name, &SegmentOptions::default()).expect("an empty object opens"),
        &with_timeout(Duration::from_secs(10)),
    )
    .expect("the opener waits for the creator to size and publish the object");
    assert_eq!(ring.header().capacity, CAPACITY);
    assert_eq!(ring.segment().len() as u64, ring.header().total_len);
    creator.join().unwrap();
    // And the ring works.
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    tx.try_push(b"after the wait").unwrap();
    let mut buf = [0u8; 64];
    let n = rx.try_pop(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"after the wait");
}

#[test]
fn an_opener_waits_for_a_file_its_creator_has_not_sized_yet() {
    let path: PathBuf = std::env::temp_dir().join(format!(
        "{}.ring",
        unique_name("unsized-file").trim_start_matches('/')
    ));
    let _ = std::fs::remove_file(&path);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    let creator = std::thread::spawn(move || build_slowly(&file, Duration::from_millis(100)));
    let opened = Segment::open_file(&path, &SegmentOptions::default())
        .and_then(|seg| SpscRing::open_in(seg, &with_timeout(Duration::from_secs(10))));
    creator.join().unwrap();
    let _ = std::fs::remove_file(&path);
    let ring = opened.expect("the opener waits for the creator to size and publish the file");
    assert_eq!(ring.header().capacity, CAPACITY);
}

#[test]
fn an_object_never_sized_is_truncated_once_the_ready_timeout_ends() {
    let name = unique_name("never-sized");
    let _unlink = Unlink(name.clone());
    let _file = shm_create_empty(&name); // a creator that died before `ftruncate`
    let timeout = Duration::from_millis(100);
    let started = Instant::now();
    let err = Segment::open(&name, &SegmentOptions::default())
        .and_then(|seg| SpscRing::open_in(seg, &with_timeout(timeout)))
        .unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err, Error::Truncated { actual: 0, .. }), "{err:?}");
    assert!(
        waited >= timeout,
        "reported after {waited:?}, before the timeout"
    );
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}

#[test]
fn a_ready_object_cut_short_is_truncated_at_once() {
    let name = unique_name("cut");
    let ring =
        SpscRing::create_shm(&name, &SpscConfig::new(4096), &SegmentOptions::default()).unwrap();
    let file = File::from(ring.segment().fd().unwrap().try_clone_to_owned().unwrap());
    // Still holds the header, and its `init_state` says READY: it was cut after publishing.
    file.set_len(300).unwrap();
    let started = Instant::now();
    let err = Segment::open(&name, &SegmentOptions::default())
        .and_then(|seg| SpscRing::open_in(seg, &with_timeout(Duration::from_secs(30))))
        .unwrap_err();
    assert!(
        matches!(err, Error::Truncated { actual: 300, .. }),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a READY header cut short is not waited on"
    );
}

#[test]
fn openers_racing_a_creator_never_see_truncated() {
    // The reported race, unwidened: each round a creator thread creates the ring while opener
    // threads poll for the name and open it as soon as it exists.
    const ROUNDS: usize = 100;
    const OPENERS: usize = 2;
    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        let name = unique_name("race");
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let openers: Vec<_> = (0..OPENERS)
            .map(|_| {
                let name = name.clone();
                std::thread::spawn(move || -> Result<(), Error> {
                    let deadline = Instant::now() + Duration::from_secs(10);
                    loop {
                        match Segment::open(&name, &SegmentOptions::default()) {
                            Ok(seg) => {
                                return SpscRing::open_in(seg, &OpenOptions::default()).map(drop)
                            }
                            Err(Error::Os { code, .. })
                                if code.raw() == libc::ENOENT && Instant::now() < deadline =>
                            {
                                std::hint::spin_loop();
                            }
                            Err(e) => return Err(e),
                        }
                    }
                })
            })
            .collect();
        // The ring (and its name) lives until every opener is done: an opener descheduled for
        // longer than the creator's life must not find the name already gone (seen once on a
        // loaded 2-core machine when the creator dropped the ring after 20 ms).
        let creator = std::thread::spawn(move || {
            go_rx.recv().unwrap();
            SpscRing::create_shm(&name, &SpscConfig::new(1 << 16), &SegmentOptions::default())
                .unwrap()
        });
        go_tx.send(()).unwrap();
        for o in openers {
            if let Err(e) = o.join().unwrap() {
                failures.push(format!("round {round}: {e}"));
            }
        }
        drop(creator.join().unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} of {} opens failed: {failures:#?}",
        failures.len(),
        ROUNDS * OPENERS
    );
}

#[test]
fn a_short_memfd_sealed_against_growing_is_truncated_at_once() {
    use nix::fcntl::{fcntl, FcntlArg, SealFlag};
    use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
    use std::os::fd::AsRawFd;
    for len in [0u64, 100, 1000] {
        let fd = memfd_create(
            c"shmbus-short",
            MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING,
        )
        .unwrap();
        let file = File::from(fd);
        file.set_len(len).unwrap();
        fcntl(
            file.as_raw_fd(),
            FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW),
        )
        .unwrap();
        let started = Instant::now();
        let err = Segment::open_fd(file.into(), &SegmentOptions::default())
            .and_then(|seg| SpscRing::open_in(seg, &with_timeout(Duration::from_secs(30))))
            .unwrap_err();
        assert!(
            matches!(err, Error::Truncated { actual, .. } if actual == len),
            "{len} bytes: {err:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "a memfd that cannot grow is not waited on"
        );
    }
}
