//! Every backing a ring shared between processes can have, times the three ring kinds, each through
//! the same cycle with real processes (this test binary, re-spawned). The backings ([`Store`]):
//! POSIX shm, a memfd whose descriptor the children inherit, a regular file, System V
//! (persistent; destroyed on last detach; and without a companion file at a key its name
//! collides on, found by probing). The cycle:
//!
//! 1. **create**: the parent creates the ring and attaches the consumer;
//! 2. **stream**: a producer process opens it (by name for POSIX shm and System V, by path for
//!    a file, through the inherited descriptor for a memfd) and streams `n` sequence-numbered,
//!    checksummed messages of varying length; the parent checks every one, in order, then sees
//!    the stream end (`Disconnected`) when the producer exits;
//! 3. **SIGKILL**: a second producer process streams on from `n` and is killed mid-stream
//!    (while the parent consumes); the parent's consumer reaps it (probe interval [`PROBE`])
//!    within [`REAP_BOUND`] of the kill, and has by then received every message the victim
//!    acknowledged, intact and in order (plus at most the batch in flight at the kill);
//! 4. **takeover**: a successor producer process attaches and continues the sequence where the
//!    received stream stopped; the parent receives all of it, in order, then `Disconnected`;
//! 5. **the other side**: the parent produces to a consumer process, which is killed
//!    mid-stream; the parent's producer reaps it (`Disconnected` within [`REAP_BOUND`]), and a
//!    successor consumer process receives everything from where the victim's acknowledgements
//!    stopped (or one further, the message a consumer killed inside a receive may take with it,
//!    PROTOCOL §5.4) to the end of the stream, in order (a broadcast ring instead: the parent
//!    publishes to a tethered subscriber process, which is killed; its cursor gates the
//!    publisher until a probe reaps it, within [`REAP_BOUND`], and the publisher goes on);
//! 6. **nothing left**: no file of the case's names in the shm directory (rings, System V
//!    companions, the acknowledgement word), no System V segment of them, no ring file, no
//!    open memfd. For System V destroyed on last detach, the parent detaches first without
//!    removing anything, and the last two processes attached are killed (SIGKILL): the
//!    segment leaves `/proc/sysvipc/shm` (and `ipcs -m`), and its companion is found stale and
//!    removed.
//!
//! Each SPSC case streams ten million messages (one million over the collided key), each MPMC
//! case [`ONE_MILLION`] (the variable `SHMBUS_MATRIX_MESSAGES` overrides both): about 30 s in
//! all on a busy 2-core machine. The MPMC cycle with ten million messages per store is an
//! ignored test (38 s there, alone):
//!
//! ```text
//! cargo test -p shmbus-ring --test backing_matrix -- --ignored
//! ```
#![cfg(not(loom))]

use shmbus_ring::liveness::{self, Vitality};
use shmbus_ring::segment::{shm_dir, sysv_key, SysvOptions};
use shmbus_ring::{
    Backing, Broadcast, Consumer, Identity, Kind, Mpmc, OpenOptions, PopError, PushError, Ring,
    Role, Segment, SegmentOptions, Spsc,
};
use shmbus_testkit::stream::{self, MAX_LEN};
use shmbus_testkit::sysv::{colliding_names, ipcs_lists, listed};
use shmbus_testkit::{respawn, role, unique_name, ChildGuard, SysvSweep};
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// What a child opens, and how.
const STORE: &str = "SHMBUS_MATRIX_STORE";
const KIND: &str = "SHMBUS_MATRIX_KIND";
/// A name (POSIX shm, System V), a path (file) or a descriptor number (memfd).
const TARGET: &str = "SHMBUS_MATRIX_TARGET";
/// The POSIX shm object holding the acknowledgement word.
const ACK: &str = "SHMBUS_MATRIX_ACK";
/// The first sequence number a producer sends, and how many (absent: until killed).
const START: &str = "SHMBUS_MATRIX_START";
const COUNT: &str = "SHMBUS_MATRIX_COUNT";
/// Overrides the number of messages of the first stream of every case.
const MESSAGES: &str = "SHMBUS_MATRIX_MESSAGES";

/// Messages streamed per case: ten million for SPSC (except over the collided key), one
/// million for MPMC (ten million in the ignored test).
const TEN_MILLION: u64 = 10_000_000;
const ONE_MILLION: u64 = 1_000_000;
/// Messages the victim must have delivered before it is killed.
const BEFORE_KILL: u64 = 5_000;
/// Messages the successor sends.
const SUCCESSOR: u64 = 10_000;
/// How often the endpoints probe their peers.
const PROBE: Duration = Duration::from_millis(5);
/// The reap of a producer killed with SIGKILL, from the kill to the consumer's `Disconnected`
/// with the dead entry gone: a few probe intervals, and slack for a loaded 2-core machine (the
/// measured times are printed).
const REAP_BOUND: Duration = Duration::from_secs(2);
/// A segment must leave the system within this once its last process is gone (another test's
/// `sysv_segments()` may attach it for a moment).
const GONE_BOUND: Duration = Duration::from_secs(5);
/// No stream may take longer than this.
const DEADLINE: Duration = Duration::from_secs(300);
/// A batch pushes at most this many messages: the victim may have committed this many that
/// it never acknowledged.
const MAX_BATCH: u64 = 3;

/// What backs the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Store {
    /// A named POSIX shared-memory object.
    Shm,
    /// A sealed memfd; the children inherit its descriptor.
    Memfd,
    /// A regular file in a temporary directory.
    File,
    /// A named System V segment (persistent until its owner removes it).
    Sysv,
    /// A named System V segment destroyed when its last process detaches.
    SysvDestroy,
    /// A named System V segment without a companion file, whose name's derived key a segment
    /// of another name already holds: it is created at the next key, the children find it by
    /// probing the keys for its recorded name, and the endpoints have no OFD lock to judge
    /// each other by (process identity only).
    SysvCollided,
}

const STORES: [Store; 6] = [
    Store::Shm,
    Store::Memfd,
    Store::File,
    Store::Sysv,
    Store::SysvDestroy,
    Store::SysvCollided,
];

impl Store {
    fn parse(s: &str) -> Store {
        STORES
            .into_iter()
            .find(|b| format!("{b:?}") == s)
            .unwrap_or_else(|| panic!("unknown store {s}"))
    }

    /// Whether `backing` is this store's.
    fn is(self, backing: &Backing) -> bool {
        match (self, backing) {
            (Store::Shm, Backing::Shm(_))
            | (Store::Memfd, Backing::Memfd(_))
            | (Store::File, Backing::File(_)) => true,
            (Store::Sysv | Store::SysvDestroy, Backing::SysV { name, .. }) => name.is_some(),
            // At the key after its own, which the other name's segment holds.
            (Store::SysvCollided, Backing::SysV { name, key, .. }) => name
                .as_deref()
                .is_some_and(|n| *key == sysv_key(n).wrapping_add(1)),
            _ => false,
        }
    }
}

/// The ring's geometry: room for 64 messages of up to [`MAX_LEN`] bytes (it wraps often).
fn config<K: Kind>() -> K::Config {
    K::config_for(64, MAX_LEN as u64, Identity::default(), true).unwrap()
}

fn kind_name<K: Kind>() -> &'static str {
    let name = std::any::type_name::<K>();
    if name.ends_with("Spsc") {
        "spsc"
    } else if name.ends_with("Broadcast") {
        "broadcast"
    } else {
        "mpmc"
    }
}

// ---------------------------------------------------------------------------------------------
// The children.
// ---------------------------------------------------------------------------------------------

/// Runs this process's role if it is a child; returns whether it was.
fn child() -> bool {
    let Some(role) = role() else {
        return false;
    };
    match std::env::var(KIND).unwrap().as_str() {
        "spsc" => run_child::<Spsc>(&role),
        "broadcast" => run_child::<Broadcast>(&role),
        _ => run_child::<Mpmc>(&role),
    }
    true
}

/// Opens the ring the parent made, as its store says.
fn open<K: Kind>(store: Store, target: &str) -> Ring<K> {
    let opts = SegmentOptions::default();
    let ring = match store {
        Store::Shm | Store::Sysv | Store::SysvDestroy => Ring::open_shm(target, &opts).unwrap(),
        Store::SysvCollided => Ring::open_in(
            Segment::open_sysv(target, &opts).unwrap(),
            &OpenOptions::default(),
        )
        .unwrap(),
        Store::File => Ring::open_in(
            Segment::open_file(target, &opts).unwrap(),
            &OpenOptions::default(),
        )
        .unwrap(),
        Store::Memfd => {
            let raw: RawFd = target.parse().unwrap();
            // SAFETY: the parent cleared FD_CLOEXEC on its memfd's descriptor `raw` in this
            // process just before exec (`Fixture::spawn`), so `raw` is open here, refers to
            // that memfd, and nothing else in this process owns or closes it.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            Ring::open_in(
                Segment::open_fd(fd, &opts).unwrap(),
                &OpenOptions::default(),
            )
            .unwrap()
        }
    };
    let backing = ring.segment().backing();
    assert!(store.is(backing), "{store:?} opened as {backing:?}");
    ring
}

/// A consumer process: receives from `START` (or one further, see [`consumer_dies`]) until
/// the stream ends, checking each message and its order; acknowledges in the word at 0 the
/// next sequence number it expects, and in the word at 8 the first it received, plus one.
fn consume<K: Kind>(ring: &Ring<K>, ack_seg: &Segment, parent: u32, deadline: Instant) {
    let start: u64 = std::env::var(START).unwrap().parse().unwrap();
    let ack = ack_seg.atomic_u64(0).unwrap();
    let first = ack_seg.atomic_u64(8).unwrap();
    let mut rx = ring.consumer().unwrap();
    rx.set_probe_interval(PROBE);
    println!("ATTACHED");
    let mut buf = [0u8; MAX_LEN];
    let mut next = None;
    let mut idle = 0u64;
    loop {
        match pop(&mut rx, &mut buf, next.unwrap_or(start)) {
            Ok(seq) => {
                let want = *next.get_or_insert_with(|| {
                    assert!(seq == start || seq == start + 1, "consumer: began at {seq}");
                    first.store(seq + 1, Ordering::Relaxed);
                    seq
                });
                assert_eq!(seq, want, "consumer: lost, duplicated or reordered");
                next = Some(seq + 1);
                // Release: the parent reads it with Acquire.
                ack.store(seq + 1, Ordering::Release);
            }
            Err(PopError::Empty) => {
                idle += 1;
                if idle % 1024 == 0 {
                    assert!(Instant::now() < deadline, "consumer: deadline");
                    orphaned_exit(parent);
                    std::thread::yield_now();
                }
            }
            Err(PopError::Disconnected) => return,
            Err(e) => panic!("consumer: {e}"),
        }
    }
}

/// Exits if the parent test process is gone (killed before it could kill this child).
fn orphaned_exit(parent: u32) {
    if std::os::unix::process::parent_id() != parent {
        std::process::exit(3);
    }
}

fn run_child<K: Kind>(role: &str) {
    let store = Store::parse(&std::env::var(STORE).unwrap());
    let ring = open::<K>(store, &std::env::var(TARGET).unwrap());
    let ack_seg = Segment::open(&std::env::var(ACK).unwrap(), &SegmentOptions::default()).unwrap();
    let ack = ack_seg.atomic_u64(0).unwrap();
    let deadline = Instant::now() + DEADLINE;
    let parent = std::os::unix::process::parent_id();
    if role == "sink" {
        // Consumes for ever (until killed).
        let mut rx = ring.consumer().unwrap();
        println!("ATTACHED");
        loop {
            match rx.try_pop_with(|m| stream::check(m).map(|_| ())) {
                Ok(r) => r.unwrap(),
                Err(PopError::Empty | PopError::Disconnected) => {
                    orphaned_exit(parent);
                    std::thread::sleep(Duration::from_micros(50));
                }
                Err(e) => panic!("sink: {e}"),
            }
        }
    }
    if role == "consumer" {
        consume(&ring, &ack_seg, parent, deadline);
        return;
    }
    assert_eq!(role, "producer");
    let start: u64 = std::env::var(START).unwrap().parse().unwrap();
    let end = std::env::var(COUNT)
        .ok()
        .map_or(u64::MAX, |c| start + c.parse::<u64>().unwrap());
    let mut tx = ring.producer().unwrap();
    tx.set_probe_interval(PROBE);
    println!("ATTACHED");
    let mut seq = start;
    let mut buf = [0u8; MAX_LEN];
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut spins = 0u64;
    while seq < end {
        // Copy, zero-copy, and batches of 1 to MAX_BATCH, in turn.
        let pushed = match seq % 3 {
            0 => {
                let n = stream::fill(seq, &mut buf);
                tx.try_push(&buf[..n]).map(|()| 1)
            }
            1 => tx.reserve(stream::len_of(seq)).map(|mut w| {
                stream::fill(seq, &mut buf);
                let n = w.len();
                w.copy_from_slice(&buf[..n]);
                w.commit();
                1
            }),
            _ => {
                let k = (end - seq).min(1 + seq / 3 % MAX_BATCH);
                batch.clear();
                batch.extend((seq..seq + k).map(stream::message));
                tx.try_push_batch(&batch).map(|n| n as u64)
            }
        };
        match pushed {
            Ok(n) => {
                seq += n;
                // Release: the parent reads it with Acquire after the kill.
                ack.store(seq, Ordering::Release);
                if end == u64::MAX {
                    // A victim: slower than the consumer, so that the ring is mostly empty and
                    // the kill finds it streaming rather than waiting on a full ring.
                    for _ in 0..seq % 64 * 16 {
                        std::hint::spin_loop();
                    }
                }
            }
            // Full; Disconnected only for the holders of the last phase (the parent has left).
            Err(e @ (PushError::Full | PushError::Disconnected)) => {
                assert!(
                    matches!(e, PushError::Full) || end == u64::MAX,
                    "producer at {seq}: {e}"
                );
                spins += 1;
                if spins % 64 == 0 {
                    assert!(Instant::now() < deadline, "producer: deadline at {seq}");
                    orphaned_exit(parent);
                    std::thread::yield_now();
                }
            }
            Err(e) => panic!("producer at {seq}: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The parent.
// ---------------------------------------------------------------------------------------------

/// A ring of one store, its acknowledgement word, and what the children need to open them.
struct Fixture<K: Kind> {
    store: Store,
    /// The unique stem of every name of this case (`/shmbus-matrix-PID-N`).
    stem: String,
    ring: Option<Ring<K>>,
    /// What a child opens (see [`TARGET`]).
    target: String,
    ack_name: String,
    ack: Segment,
    /// The file store's directory.
    dir: Option<PathBuf>,
    /// The memfd's debugging name.
    memfd: Option<String>,
    /// The segment at the derived key of the collided store's name.
    _squatter: Option<Segment>,
    /// Removes the case's System V segments and companions if the test fails (taken out
    /// before the final check, so that it cannot hide a leftover).
    sweep: Option<SysvSweep>,
}

/// A failed case leaves no directory behind either (a passing one has taken `dir` out to
/// check that it is empty).
impl<K: Kind> Drop for Fixture<K> {
    fn drop(&mut self) {
        self.ring = None;
        if let Some(d) = self.dir.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

impl<K: Kind> Fixture<K> {
    fn new(store: Store) -> Fixture<K> {
        let stem = unique_name("matrix");
        let sweep = SysvSweep::new(&stem);
        let cfg = config::<K>();
        let len = K::segment_len(&cfg).unwrap();
        let opts = SegmentOptions::default();
        let name = format!("{stem}-ring");
        let (mut dir, mut memfd, mut squatter) = (None, None, None);
        let (ring, target) = match store {
            Store::Shm => (Ring::create_shm(&name, &cfg, &opts).unwrap(), name),
            Store::Sysv | Store::SysvDestroy => {
                let sysv = SysvOptions::new().destroy_on_last_detach(store == Store::SysvDestroy);
                (Ring::create_sysv(&name, &cfg, &opts, &sysv).unwrap(), name)
            }
            Store::SysvCollided => {
                let (first, name) = colliding_names(&format!("{stem}-key"));
                let bare = SysvOptions::new().companion(false);
                squatter = Some(Segment::create_sysv(&first, 4096, &opts, &bare).unwrap());
                (Ring::create_sysv(&name, &cfg, &opts, &bare).unwrap(), name)
            }
            Store::File => {
                let d = std::env::temp_dir().join(stem.trim_start_matches('/'));
                std::fs::create_dir(&d).unwrap();
                let path = d.join("ring");
                let seg = Segment::create_file(&path, len, &opts).unwrap();
                seg.set_unlink_on_drop(true);
                dir = Some(d);
                (
                    Ring::create_in(seg, &cfg).unwrap(),
                    path.to_str().unwrap().to_string(),
                )
            }
            Store::Memfd => {
                let debug = stem.trim_start_matches('/').to_string();
                let seg = Segment::memfd(&debug, len, &opts).unwrap();
                let fd = seg.fd().unwrap().as_raw_fd();
                memfd = Some(debug);
                (Ring::create_in(seg, &cfg).unwrap(), fd.to_string())
            }
        };
        assert!(store.is(ring.segment().backing()));
        let ack_name = format!("{stem}-ack");
        let ack = Segment::create(&ack_name, 4096, &opts).unwrap();
        Fixture {
            store,
            stem,
            ring: Some(ring),
            target,
            ack_name,
            ack,
            dir,
            memfd,
            _squatter: squatter,
            sweep: Some(sweep),
        }
    }

    fn ring(&self) -> &Ring<K> {
        self.ring.as_ref().unwrap()
    }

    /// The word the producers acknowledge into: the next sequence number they will send.
    fn acked(&self) -> u64 {
        // Acquire: pairs with the producer's Release store after each completed push.
        self.ack.atomic_u64(0).unwrap().load(Ordering::Acquire)
    }

    /// Spawns `role` of `test` and waits until it has attached its endpoint; a producer sends
    /// from `start`, `count` messages (`None`: until killed).
    fn spawn(&self, test: &str, role: &str, start: u64, count: Option<u64>) -> ChildGuard {
        let mut cmd = respawn(test, role);
        // The long runs are ignored tests: the child runs its one test all the same.
        cmd.arg("--include-ignored")
            .env(STORE, format!("{:?}", self.store))
            .env(KIND, kind_name::<K>())
            .env(TARGET, &self.target)
            .env(ACK, &self.ack_name)
            .env(START, start.to_string())
            .stdout(Stdio::piped());
        if let Some(c) = count {
            cmd.env(COUNT, c.to_string());
        }
        if self.store == Store::Memfd {
            let fd: RawFd = self.target.parse().unwrap();
            // SAFETY: the closure runs in the forked child before exec and only calls
            // fcntl(2), which is async-signal-safe, on a descriptor the child inherited
            // (`fd`, the memfd, open in the parent for the fixture's lifetime). It allocates
            // nothing and takes no lock.
            unsafe {
                cmd.pre_exec(move || {
                    // The memfd is made close-on-exec; this child alone keeps it across exec.
                    if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = ChildGuard::spawn(&mut cmd);
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "{role} exited before attaching"
            );
            // libtest prints `test NAME ... ` before the test runs, without a newline.
            if line.trim_end().ends_with("ATTACHED") {
                break;
            }
        }
        // Keep reading, so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in out.lines() {});
        child
    }
}

/// Waits (up to [`GONE_BOUND`]) for `f` to hold; whether it did.
fn soon(mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > GONE_BOUND {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// Pops one message, by one of two paths (in place, or copied out); its sequence number.
fn pop<K: Kind>(rx: &mut Consumer<K>, buf: &mut [u8; MAX_LEN], seq: u64) -> Result<u64, PopError> {
    let checked = if seq % 2 == 0 {
        rx.try_pop_with(stream::check)?
    } else {
        let n = rx.try_pop(buf)?;
        stream::check(&buf[..n])
    };
    Ok(checked.unwrap_or_else(|e| panic!("at {seq}: {e}")))
}

/// Receives messages `*next..until` in order from `child`'s stream, checking each.
fn receive<K: Kind>(
    what: &str,
    rx: &mut Consumer<K>,
    next: &mut u64,
    until: u64,
    child: &mut ChildGuard,
) {
    let deadline = Instant::now() + DEADLINE;
    let mut buf = [0u8; MAX_LEN];
    let mut idle = 0u32;
    while *next < until {
        match pop(rx, &mut buf, *next) {
            Ok(seq) => {
                assert_eq!(seq, *next, "{what}: lost, duplicated or reordered");
                *next += 1;
            }
            Err(PopError::Empty) => {
                idle += 1;
                if idle % 1024 == 0 {
                    assert!(Instant::now() < deadline, "{what}: deadline at {next}");
                    if let Some(status) = child.try_wait().unwrap() {
                        assert!(status.success(), "{what}: the producer failed: {status}");
                    }
                    std::thread::yield_now();
                }
            }
            Err(e) => panic!("{what}: at {next} of {until}: {e}"),
        }
    }
}

/// Polls until the stream ends (`Disconnected`); `Empty` until then, no message.
fn until_disconnected<K: Kind>(what: &str, rx: &mut Consumer<K>, since: Instant, bound: Duration) {
    let mut buf = [0u8; MAX_LEN];
    loop {
        match rx.try_pop(&mut buf) {
            Err(PopError::Disconnected) => return,
            Err(PopError::Empty) => {
                assert!(
                    since.elapsed() < bound,
                    "{what}: no Disconnected within {bound:?}"
                );
                std::thread::sleep(Duration::from_micros(100));
            }
            other => panic!("{what}: after the last message: {other:?}"),
        }
    }
}

/// The endpoint table holds exactly one endpoint: the parent's, of `role`, alive.
fn only_the_parents<K: Kind>(what: &str, ring: &Ring<K>, role: Role) {
    let eps = liveness::endpoints(ring.segment()).unwrap();
    assert!(
        eps.len() == 1
            && eps[0].role == role
            && eps[0].pid == std::process::id()
            && eps[0].vitality == Vitality::Alive,
        "{what}: endpoint table {eps:?}"
    );
}

/// The parent produces from `from`; a consumer process receives, acknowledging each message,
/// and is killed mid-stream; the parent's producer reaps it (`Disconnected` within
/// [`REAP_BOUND`]); a successor consumer process receives everything from where the victim
/// stopped (or one further: a consumer killed inside a receive may take that message with it,
/// PROTOCOL §5.4) to the end of the stream, in order. Returns what it measured.
fn consumer_dies<K: Kind>(test: &str, what: &str, fx: &Fixture<K>, from: u64) -> String {
    let ack = fx.ack.atomic_u64(0).unwrap();
    let first = fx.ack.atomic_u64(8).unwrap();
    let mut tx = fx.ring().producer().unwrap();
    tx.set_probe_interval(PROBE);
    let mut buf = [0u8; MAX_LEN];
    let mut next = from;
    let deadline = Instant::now() + DEADLINE;
    let mut victim = fx.spawn(test, "consumer", from, None);
    let kill_at = from + BEFORE_KILL + u64::from(std::process::id()) % 1000;
    // Relaxed: a progress hint only; the count is read with Acquire after the kill.
    while ack.load(Ordering::Relaxed) < kill_at {
        let len = stream::fill(next, &mut buf);
        match tx.try_push(&buf[..len]) {
            Ok(()) => next += 1,
            Err(PushError::Full) => std::hint::spin_loop(),
            Err(e) => panic!("{what}: producing to the victim at {next}: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the victim consumer stalled"
        );
    }
    victim.kill().unwrap();
    let killed = Instant::now();
    let status = victim.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "{what}: the victim consumer ended before the kill: {status}"
    );
    // Acquire: pairs with the victim's Release store after each message it received.
    let acked = ack.load(Ordering::Acquire);
    // The producer fills the ring, probes, reaps the victim: Disconnected.
    let reaped = loop {
        let len = stream::fill(next, &mut buf);
        match tx.try_push(&buf[..len]) {
            Ok(()) => next += 1,
            Err(PushError::Full) => std::thread::sleep(Duration::from_micros(20)),
            Err(PushError::Disconnected) => break killed.elapsed(),
            Err(e) => panic!("{what}: producing after the kill at {next}: {e}"),
        }
        assert!(
            killed.elapsed() < REAP_BOUND,
            "{what}: the dead consumer was not reaped within {REAP_BOUND:?}"
        );
    };
    only_the_parents(
        &format!("{what}: after the consumer's reap"),
        fx.ring(),
        Role::Producer,
    );
    // A successor consumer: everything left, then SUCCESSOR more, in order.
    first.store(0, Ordering::Relaxed);
    let mut successor = fx.spawn(test, "consumer", acked, None);
    let end = next + SUCCESSOR;
    while next < end {
        let len = stream::fill(next, &mut buf);
        match tx.try_push(&buf[..len]) {
            Ok(()) => next += 1,
            Err(PushError::Full) => std::hint::spin_loop(),
            Err(e) => panic!("{what}: producing to the successor at {next}: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the successor consumer stalled"
        );
    }
    drop(tx);
    // It receives to the end of the stream, sees Disconnected, and exits.
    assert!(
        successor.wait_within(DEADLINE).success(),
        "{what}: the successor consumer failed"
    );
    // Acquire: pairs with the successor's Release stores.
    let (got_first, got_end) = (
        first.load(Ordering::Acquire).checked_sub(1),
        ack.load(Ordering::Acquire),
    );
    assert!(
        got_first == Some(acked) || got_first == Some(acked + 1),
        "{what}: the successor consumer began at {got_first:?}, the victim acknowledged {acked}"
    );
    assert_eq!(got_end, end, "{what}: the successor consumer stopped short");
    assert!(
        liveness::endpoints(fx.ring().segment()).unwrap().is_empty(),
        "{what}: endpoints left after the consumer phase"
    );
    format!(
        "consumer SIGKILLed after {} messages, reaped by the producer {reaped:?} after the kill; \
         the successor consumer began at {}",
        acked - from,
        got_first.map_or(0, |f| f - from)
    )
}

/// The other side for a broadcast ring, whose publisher is never disconnected and whose new
/// subscribers start at the next message: the parent publishes to a tethered subscriber
/// process, which is killed; the dead subscriber gates the parent's publisher (the ring fills)
/// until a probe reaps it, within [`REAP_BOUND`] of the kill; then the publisher goes on.
fn subscriber_dies<K: Kind>(test: &str, what: &str, fx: &Fixture<K>, from: u64) -> String {
    let ack = fx.ack.atomic_u64(0).unwrap();
    let mut tx = fx.ring().producer().unwrap();
    tx.set_probe_interval(PROBE);
    let mut buf = [0u8; MAX_LEN];
    let mut next = from;
    let deadline = Instant::now() + DEADLINE;
    let mut victim = fx.spawn(test, "consumer", from, None);
    // Wait until it receives (it joined at the next message: publish until it acknowledges).
    let kill_at = from + BEFORE_KILL;
    // Relaxed: a progress hint only.
    while ack.load(Ordering::Relaxed) < kill_at {
        let len = stream::fill(next, &mut buf);
        match tx.try_push(&buf[..len]) {
            Ok(()) => next += 1,
            Err(PushError::Full) => std::hint::spin_loop(),
            Err(e) => panic!("{what}: publishing to the victim at {next}: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the victim subscriber stalled"
        );
    }
    victim.kill().unwrap();
    let killed = Instant::now();
    let status = victim.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{what}: {status}");
    // Twice the ring's worth of messages: more than fit while the dead cursor gates.
    let ring_worth = fx.ring().header().capacity / 8;
    let mut full_seen = false;
    for _ in 0..2 * ring_worth {
        let len = stream::fill(next, &mut buf);
        loop {
            match tx.try_push(&buf[..len]) {
                Ok(()) => break,
                Err(PushError::Full) => {
                    full_seen = true;
                    std::thread::sleep(Duration::from_micros(50));
                }
                Err(e) => panic!("{what}: publishing after the kill at {next}: {e}"),
            }
            assert!(
                killed.elapsed() < REAP_BOUND,
                "{what}: the dead subscriber still gates the publisher after {REAP_BOUND:?}"
            );
        }
        next += 1;
    }
    let reaped = killed.elapsed();
    assert!(
        full_seen,
        "{what}: the dead subscriber never gated the publisher"
    );
    only_the_parents(
        &format!("{what}: after the subscriber's reap"),
        fx.ring(),
        Role::Producer,
    );
    drop(tx);
    format!(
        "tethered subscriber SIGKILLed after {} messages; the publisher, gated by it, went on          {reaped:?} after the kill",
        ack.load(Ordering::Acquire).saturating_sub(from)
    )
}

/// The whole cycle for one store and ring kind; `n` messages in the first stream.
fn cycle<K: Kind>(test: &str, store: Store, n: u64) {
    let what = format!("{} over {store:?}", kind_name::<K>());
    let mut fx = Fixture::<K>::new(store);
    let mut rx = fx.ring().consumer().unwrap();
    rx.set_probe_interval(PROBE);

    // Stream: 0..n from a producer process, which then exits (detaching).
    let t = Instant::now();
    let mut next = 0u64;
    let mut producer = fx.spawn(test, "producer", 0, Some(n));
    receive(
        &format!("{what}: stream"),
        &mut rx,
        &mut next,
        n,
        &mut producer,
    );
    let streamed = t.elapsed();
    assert!(producer.wait_within(DEADLINE).success());
    until_disconnected(&format!("{what}: stream end"), &mut rx, t, DEADLINE);
    only_the_parents(
        &format!("{what}: after the stream"),
        fx.ring(),
        Role::Consumer,
    );

    // SIGKILL: a second producer continues from n and is killed mid-stream.
    let mut victim = fx.spawn(test, "producer", n, None);
    // A kill point of its own per process and case.
    let kill_at = n + BEFORE_KILL + u64::from(std::process::id()) % 1000 + next % 997;
    receive(
        &format!("{what}: victim"),
        &mut rx,
        &mut next,
        kill_at,
        &mut victim,
    );
    // Killed while the parent was consuming: the victim is mid-stream (pushing, or waiting
    // for room a moment), not parked on a ring the parent stopped draining.
    victim.kill().unwrap();
    let killed = Instant::now();
    let status = victim.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "{what}: the victim ended before the kill: {status}"
    );
    let acked = fx.acked();
    let at_kill = next;
    // Everything it committed arrives, intact and in order; then its reap ends the stream.
    let mut buf = [0u8; MAX_LEN];
    let reaped = loop {
        match pop(&mut rx, &mut buf, next) {
            Ok(seq) => {
                assert_eq!(seq, next, "{what}: after the kill");
                next += 1;
            }
            Err(PopError::Empty) => std::thread::sleep(Duration::from_micros(20)),
            Err(PopError::Disconnected) => break killed.elapsed(),
            Err(e) => panic!("{what}: after the kill: {e}"),
        }
        assert!(
            killed.elapsed() < REAP_BOUND,
            "{what}: the dead producer was not reaped within {REAP_BOUND:?} ({next} received)"
        );
    };
    only_the_parents(
        &format!("{what}: after the reap"),
        fx.ring(),
        Role::Consumer,
    );
    assert!(
        (acked..=acked + MAX_BATCH).contains(&next),
        "{what}: received up to {next}, the victim acknowledged up to {acked}"
    );

    // Takeover: a successor producer process continues the sequence where it stopped.
    let from = next;
    let mut successor = fx.spawn(test, "producer", from, Some(SUCCESSOR));
    receive(
        &format!("{what}: successor"),
        &mut rx,
        &mut next,
        from + SUCCESSOR,
        &mut successor,
    );
    assert!(successor.wait_within(DEADLINE).success());
    until_disconnected(
        &format!("{what}: successor end"),
        &mut rx,
        Instant::now(),
        DEADLINE,
    );
    only_the_parents(
        &format!("{what}: after the successor"),
        fx.ring(),
        Role::Consumer,
    );
    eprintln!(
        "{what}: {n} messages in {streamed:?} ({:.0}/s); SIGKILLed producer reaped {reaped:?} \
         after the kill ({} of its messages received, {} of them after the kill; {} \
         acknowledged); successor continued from {from}",
        n as f64 / streamed.as_secs_f64(),
        from - n,
        from - at_kill,
        acked - n,
    );

    // The other side: the parent produces, a consumer process is killed mid-stream, the
    // parent's producer reaps it, and a successor consumer process receives the rest.
    drop(rx);
    let consumers = if kind_name::<K>() == "broadcast" {
        subscriber_dies(test, &what, &fx, next)
    } else {
        consumer_dies(test, &what, &fx, next)
    };
    eprintln!("{what}: {consumers}");

    // Destroy on last detach: the parent detaches first, removing nothing (`keep`, as if it
    // had died too), and leaves the segment to two more processes attached to it, which are
    // then killed with SIGKILL: the segment goes with the last of them.
    if store == Store::SysvDestroy {
        let ring = fx.ring.take().unwrap();
        let id = ring.segment().sysv_id().unwrap();
        let name = ring.segment().target();
        let holders = [
            fx.spawn(test, "producer", 0, None),
            fx.spawn(test, "sink", 0, None),
        ];
        ring.segment().keep();
        drop(ring);
        assert!(listed(id), "{what}: the children still have it attached");
        for mut c in holders {
            assert!(c.try_wait().unwrap().is_none(), "{what}: a holder exited");
            c.kill().unwrap();
            c.wait().unwrap();
        }
        assert!(
            soon(|| !listed(id)),
            "{what}: segment {id} outlived every process attached to it"
        );
        assert_ne!(
            ipcs_lists(id),
            Some(true),
            "{what}: ipcs -m still shows {id}"
        );
        // Left: the companion file, naming a segment that is gone: stale, and removable.
        let (status, removed) = liveness::remove_if_stale(&name).unwrap();
        assert!(status.is_stale() && removed, "{what}: {status:?}");
    }

    // Nothing left.
    let id = fx.ring.as_ref().and_then(|r| r.segment().sysv_id());
    let memfd = fx.memfd.take();
    let dir = fx.dir.take();
    let sweep = fx.sweep.take().unwrap();
    let stem = fx.stem.clone();
    let ack_name = fx.ack_name.clone();
    drop(fx);
    assert!(
        Segment::open(&ack_name, &SegmentOptions::default()).is_err(),
        "{what}: the acknowledgement word was not unlinked"
    );
    assert!(
        soon(|| sweep.remaining().is_empty()),
        "{what}: System V segments of {stem} left: {:?}",
        sweep.remaining()
    );
    let leftovers: Vec<String> = std::fs::read_dir(shm_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(stem.trim_start_matches('/')))
        .collect();
    assert!(
        leftovers.is_empty(),
        "{what}: left in the shm directory: {leftovers:?}"
    );
    if let Some(id) = id {
        assert!(
            soon(|| !listed(id)),
            "{what}: segment {id} outlived its owner"
        );
    }
    if let Some(d) = dir {
        assert!(
            std::fs::read_dir(&d).unwrap().next().is_none(),
            "{what}: the ring file outlived its owner"
        );
        std::fs::remove_dir(&d).unwrap();
    }
    if let Some(debug) = memfd {
        let open = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .any(|l| l.to_string_lossy().starts_with(&format!("/memfd:{debug}")));
        assert!(!open, "{what}: the memfd is still open");
    }
}

/// `n`, unless [`MESSAGES`] says otherwise.
fn messages(n: u64) -> u64 {
    std::env::var(MESSAGES).map_or(n, |v| v.parse().unwrap())
}

macro_rules! matrix {
    ($($test:ident: $kind:ty, $store:expr, $n:expr;)*) => {$(
        #[test]
        fn $test() {
            if child() {
                return;
            }
            cycle::<$kind>(stringify!($test), $store, messages($n));
        }
    )*};
}

matrix! {
    spsc_over_posix_shm: Spsc, Store::Shm, TEN_MILLION;
    spsc_over_memfd: Spsc, Store::Memfd, TEN_MILLION;
    spsc_over_file: Spsc, Store::File, TEN_MILLION;
    spsc_over_sysv: Spsc, Store::Sysv, TEN_MILLION;
    spsc_over_sysv_destroyed_on_last_detach: Spsc, Store::SysvDestroy, TEN_MILLION;
    spsc_over_sysv_at_a_colliding_key: Spsc, Store::SysvCollided, ONE_MILLION;
    mpmc_over_posix_shm: Mpmc, Store::Shm, ONE_MILLION;
    mpmc_over_memfd: Mpmc, Store::Memfd, ONE_MILLION;
    mpmc_over_file: Mpmc, Store::File, ONE_MILLION;
    mpmc_over_sysv: Mpmc, Store::Sysv, ONE_MILLION;
    mpmc_over_sysv_destroyed_on_last_detach: Mpmc, Store::SysvDestroy, ONE_MILLION;
    mpmc_over_sysv_at_a_colliding_key: Mpmc, Store::SysvCollided, ONE_MILLION;
    broadcast_over_posix_shm: Broadcast, Store::Shm, ONE_MILLION;
    broadcast_over_memfd: Broadcast, Store::Memfd, ONE_MILLION;
    broadcast_over_file: Broadcast, Store::File, ONE_MILLION;
    broadcast_over_sysv: Broadcast, Store::Sysv, ONE_MILLION;
    broadcast_over_sysv_destroyed_on_last_detach: Broadcast, Store::SysvDestroy, ONE_MILLION;
    broadcast_over_sysv_at_a_colliding_key: Broadcast, Store::SysvCollided, ONE_MILLION;
}

/// The MPMC cycle with ten million messages over every store in turn (38 s alone on a busy
/// 2-core machine; the default run streams [`ONE_MILLION`]).
#[test]
#[ignore = "ten million MPMC messages per store, about 40 s: run on its own (see the file's docs)"]
fn ten_million_mpmc_messages_over_every_store() {
    if child() {
        return;
    }
    for store in STORES {
        cycle::<Mpmc>(
            "ten_million_mpmc_messages_over_every_store",
            store,
            TEN_MILLION,
        );
    }
}
