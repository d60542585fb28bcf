//! Real processes on one MPMC ring: 4 producer and 4 consumer processes (more than the cores,
//! on purpose, so processes are preempted mid-operation) pass 10 million tagged, checksummed
//! messages. Every message must be received exactly once, and each consumer must see each
//! producer's messages in increasing order. The same run, shorter, on System V segments.
//!
//! `soak_mpmc_processes` (ignored; run by `scripts/soak.sh`): several producer and consumer
//! processes on one MPMC ring for a set time, every message checksummed and accounted for
//! exactly, optionally with SIGKILLs of producers and consumers at any instant (see the
//! function's docs for the accounting).
#![cfg(not(loom))]

use shmbus_ring::segment::SysvOptions;
use shmbus_ring::{MpmcConfig, MpmcRing, PopError, PushError, Segment, SegmentOptions};
use shmbus_testkit::rng::{seed_from_env, Rng};
use shmbus_testkit::{respawn, role, unique_name, ChildGuard, SysvSweep};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const TEST: &str =
    "four_producer_and_four_consumer_processes_pass_ten_million_messages_exactly_once";
/// The environment variables naming the ring a child opens and how much each producer sends.
const NAME: &str = "SHMBUS_MPMC_NAME";
const PER_PRODUCER: &str = "SHMBUS_MPMC_PER_PRODUCER";
const STORE: &str = "SHMBUS_MPMC_STORE";
const DEADLINE: Duration = Duration::from_secs(300);

fn mix(p: u32, seq: u64) -> u64 {
    let mut x = seq ^ (u64::from(p) << 40) ^ 0x9e37_79b9_7f4a_7c15;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Message: `[producer: u32][seq: u64][filler][checksum: u32]`, 20 to 64 bytes.
fn fill(p: u32, seq: u64, buf: &mut [u8; 64]) -> usize {
    let len = 20 + (mix(p, seq) % 45) as usize;
    buf[..4].copy_from_slice(&p.to_le_bytes());
    buf[4..12].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in buf[12..len - 4].iter_mut().enumerate() {
        *b = (seq as u8) ^ (i as u8) ^ (p as u8);
    }
    let sum = buf[..len - 4]
        .iter()
        .fold(0u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193));
    buf[len - 4..len].copy_from_slice(&sum.to_le_bytes());
    len
}

fn producer(ring: &MpmcRing, p: u32, count: u64) {
    let mut tx = ring.producer().unwrap();
    let deadline = Instant::now() + DEADLINE;
    let mut buf = [0u8; 64];
    for seq in 0..count {
        let len = fill(p, seq, &mut buf);
        let mut spins = 0u32;
        loop {
            match tx.try_push(&buf[..len]) {
                Ok(()) => break,
                Err(PushError::Full) => {
                    spins += 1;
                    if spins % 1024 == 0 {
                        assert!(Instant::now() < deadline, "producer {p}: deadline at {seq}");
                    }
                    std::thread::yield_now();
                }
                Err(e) => panic!("producer {p}: {e}"),
            }
        }
    }
}

/// Consumes until every producer has detached and the ring is drained (`Disconnected`);
/// prints `RESULT producer count seq_sum mix_sum` per producer.
fn consumer(ring: &MpmcRing, producers: u32) {
    let mut rx = ring.consumer().unwrap();
    let deadline = Instant::now() + DEADLINE;
    let n = producers as usize;
    let (mut next, mut count, mut sums, mut mixes) =
        (vec![0u64; n], vec![0u64; n], vec![0u64; n], vec![0u64; n]);
    let mut buf = [0u8; 64];
    let mut idle = 0u32;
    loop {
        match rx.try_pop(&mut buf) {
            Ok(len) => {
                let p = u32::from_le_bytes(buf[..4].try_into().unwrap());
                let seq = u64::from_le_bytes(buf[4..12].try_into().unwrap());
                let mut want = [0u8; 64];
                assert!(p < producers, "unknown producer {p}");
                assert_eq!(
                    fill(p, seq, &mut want),
                    len,
                    "producer {p} seq {seq}: length"
                );
                assert_eq!(
                    &want[..len],
                    &buf[..len],
                    "producer {p} seq {seq}: content or checksum"
                );
                let i = p as usize;
                assert!(
                    seq >= next[i],
                    "producer {p}: seq {seq} after {} (out of order or duplicate)",
                    next[i]
                );
                next[i] = seq + 1;
                count[i] += 1;
                sums[i] = sums[i].wrapping_add(seq);
                mixes[i] = mixes[i].wrapping_add(mix(p, seq));
            }
            // Every producer detached and everything committed is consumed: the stream ended.
            Err(PopError::Disconnected) => break,
            Err(PopError::Empty) => {
                idle += 1;
                if idle % 1024 == 0 {
                    assert!(Instant::now() < deadline, "consumer: deadline");
                }
                std::thread::yield_now();
            }
            Err(e) => panic!("consumer: {e}"),
        }
    }
    for p in 0..n {
        println!("RESULT {p} {} {} {}", count[p], sums[p], mixes[p]);
    }
}

#[test]
fn four_producer_and_four_consumer_processes_pass_ten_million_messages_exactly_once() {
    pass_exactly_once(TEST, Store::Shm, 2_500_000);
}

/// What backs the ring.
#[derive(Clone, Copy, Debug)]
enum Store {
    Shm,
    Sysv,
    SysvDestroy,
}

/// The same run on System V segments (persistent, and destroyed on last detach), opened by
/// name by every child process; fewer messages (1 million per backing).
#[test]
fn four_producer_and_four_consumer_processes_on_sysv_segments_pass_every_message_exactly_once() {
    const SYSV_TEST: &str =
        "four_producer_and_four_consumer_processes_on_sysv_segments_pass_every_message_exactly_once";
    let store = match std::env::var(STORE).as_deref() {
        Ok("sysv-destroy") => Store::SysvDestroy,
        _ => Store::Sysv,
    };
    if role().is_some() {
        pass_exactly_once(SYSV_TEST, store, 0);
        return;
    }
    for store in [Store::Sysv, Store::SysvDestroy] {
        pass_exactly_once(SYSV_TEST, store, 250_000);
    }
}

/// `producers` × `per` messages through a 1024-slot ring in `store`, 4 producer and 4
/// consumer processes; in a child, its role.
fn pass_exactly_once(test: &str, store: Store, per: u64) {
    if let Some(role) = role() {
        let ring =
            MpmcRing::open_shm(&std::env::var(NAME).unwrap(), &SegmentOptions::default()).unwrap();
        let count: u64 = std::env::var(PER_PRODUCER).unwrap().parse().unwrap();
        match role.split_once(':') {
            Some(("producer", p)) => producer(&ring, p.parse().unwrap(), count),
            _ => consumer(&ring, 4),
        }
        return;
    }
    let (producers, consumers) = (4u32, 4);
    let name = unique_name("mpmc-procs");
    let _sweep = SysvSweep::new(&name);
    let cfg = MpmcConfig::new(1024, 64);
    let opts = SegmentOptions::default();
    let sysv = SysvOptions::new().destroy_on_last_detach(matches!(store, Store::SysvDestroy));
    let ring = match store {
        Store::Shm => MpmcRing::create_shm(&name, &cfg, &opts),
        _ => MpmcRing::create_sysv(&name, &cfg, &opts, &sysv),
    }
    .unwrap();
    let spawn = |role: String, out: Stdio| {
        ChildGuard::spawn(
            respawn(test, &role)
                .env(NAME, &name)
                .env(
                    STORE,
                    if matches!(store, Store::SysvDestroy) {
                        "sysv-destroy"
                    } else {
                        "sysv"
                    },
                )
                .env(PER_PRODUCER, per.to_string())
                .stdout(out),
        )
    };
    // The parent holds a producer endpoint until every producer process has finished, so the
    // consumers see "disconnected" only at the real end of the streams (not in a gap between
    // one producer exiting and another attaching).
    let tx = ring.producer().unwrap();
    let mut cons: Vec<ChildGuard> = (0..consumers)
        .map(|_| spawn("consumer".into(), Stdio::piped()))
        .collect();
    let mut prods: Vec<ChildGuard> = (0..producers)
        .map(|p| spawn(format!("producer:{p}"), Stdio::null()))
        .collect();
    for c in &mut prods {
        assert!(c.wait().unwrap().success(), "a producer process failed");
    }
    // All messages are committed: the last producer detaching lets the consumers drain the
    // ring and then end with `Disconnected`.
    drop(tx);
    let (mut count, mut sums, mut mixes) = ([0u64; 4], [0u64; 4], [0u64; 4]);
    for c in &mut cons {
        let out = BufReader::new(c.stdout.take().unwrap());
        for line in out.lines() {
            let line = line.unwrap();
            // libtest prints "test NAME ... " before running it, so a line may start with that.
            let Some(at) = line.find("RESULT ") else {
                continue;
            };
            let rest = &line[at + "RESULT ".len()..];
            let v: Vec<u64> = rest.split(' ').map(|x| x.parse().unwrap()).collect();
            let p = v[0] as usize;
            count[p] += v[1];
            sums[p] = sums[p].wrapping_add(v[2]);
            mixes[p] = mixes[p].wrapping_add(v[3]);
        }
        assert!(c.wait().unwrap().success(), "a consumer process failed");
    }
    for p in 0..producers as usize {
        let want_mix = (0..per).fold(0u64, |a, s| a.wrapping_add(mix(p as u32, s)));
        assert_eq!(count[p], per, "producer {p}: messages received");
        assert_eq!(
            sums[p],
            per * (per - 1) / 2,
            "producer {p}: sequence sum (loss + duplicate)"
        );
        assert_eq!(
            mixes[p], want_mix,
            "producer {p}: hash sum (loss + duplicate)"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The soak: producer and consumer processes on one MPMC ring, with exact accounting and kills
// ---------------------------------------------------------------------------------------------

const SOAK_TEST: &str = "soak_mpmc_processes";
const SOAK_CTL: &str = "SHMBUS_SOAK_CTL";
const SOAK_BITS: &str = "SHMBUS_SOAK_BITS";
const SOAK_BITS_PER: &str = "SHMBUS_SOAK_BITS_PER";
const SOAK_PRODUCERS: &str = "SHMBUS_SOAK_PRODUCERS";
const SOAK_CONSUMERS: &str = "SHMBUS_SOAK_CONSUMERS";
const SOAK_SECS: &str = "SHMBUS_SOAK_SECS";
const SOAK_KILL: &str = "SHMBUS_SOAK_KILL";
const SOAK_SEED: &str = "SHMBUS_SOAK_SEED";
/// Most producer and consumer processes the control segment has room for.
const SOAK_MAX: usize = 16;
/// Messages per producer per second of the run that the received-bitmap has room for (a
/// producer that reaches it idles until the end, and the report says so).
const SOAK_RATE_CAP: u64 = 3_000_000;
/// Control segment words: phase, then one 64-byte block per process slot (producers 0..,
/// consumers `SOAK_MAX..`), then each consumer's last sequence number per producer.
const CTL_PHASE: usize = 0;
const CTL_PROCS: usize = 64;
const CTL_LAST: usize = CTL_PROCS + 2 * SOAK_MAX * 64;
const CTL_LEN: usize = CTL_LAST + SOAK_MAX * SOAK_MAX * 8;
/// Phases: run; producers stop; consumers drain and exit.
const PHASE_RUN: u64 = 0;
const PHASE_STOP: u64 = 1;
const PHASE_DRAIN: u64 = 2;
/// How long a draining consumer must find the ring empty before it exits: several probe
/// intervals, so that a producer killed just before the stop has been reaped and its claim
/// repaired (else the messages behind it would be stranded, and reported lost).
const DRAIN_QUIET: Duration = Duration::from_millis(300);
/// A gap this long between received messages is reported as it ends (with the last kill).
const STALL_NOTE: Duration = Duration::from_millis(250);
/// No message received for this long fails the run as a stall.
const STALL_LIMIT: Duration = Duration::from_secs(10);

/// The control segment (plain shared memory, no ring): written by the soak's processes, read
/// and, between a kill and the successor's start, written by the parent. Every word has one
/// writer at a time.
struct Ctl(Segment);

impl Ctl {
    fn word(&self, off: usize) -> &AtomicU64 {
        self.0.atomic_u64(off).expect("control word")
    }
    fn phase(&self) -> &AtomicU64 {
        self.word(CTL_PHASE)
    }
    /// Slot `s`: 1 while the process is inside one ring operation and its bookkeeping (the
    /// `between` kill mode kills only when it is 0).
    fn busy(&self, s: usize) -> &AtomicU64 {
        self.word(CTL_PROCS + s * 64)
    }
    /// Producer `p`: every sequence number below it was acknowledged (the push returned
    /// `Ok`), except the "maybe" ones the parent skipped after a kill. Where a successor
    /// starts.
    fn next_seq(&self, p: usize) -> &AtomicU64 {
        self.word(CTL_PROCS + p * 64 + 8)
    }
    /// Producer `p`: `seq + 1` while a push of `seq` is under way (it may have committed before
    /// the producer recorded it), else 0.
    fn pending(&self, p: usize) -> &AtomicU64 {
        self.word(CTL_PROCS + p * 64 + 16)
    }
    /// Consumer `c`: the message it popped and has not finished recording
    /// (`hold_code`), else 0.
    fn holding(&self, c: usize) -> &AtomicU64 {
        self.word(CTL_PROCS + (SOAK_MAX + c) * 64 + 8)
    }
    /// Consumer `c`: messages recorded (progress only).
    fn count(&self, c: usize) -> &AtomicU64 {
        self.word(CTL_PROCS + (SOAK_MAX + c) * 64 + 16)
    }
    /// Consumer `c`'s one past the last sequence number of producer `p` it recorded (order
    /// check; a successor continues its predecessor's: a new endpoint claims later positions).
    fn last(&self, c: usize, p: usize) -> &AtomicU64 {
        self.word(CTL_LAST + (c * SOAK_MAX + p) * 8)
    }
}

fn hold_code(p: usize, seq: u64) -> u64 {
    ((p as u64) << 48 | seq) + 1
}

fn hold_decode(code: u64) -> (usize, u64) {
    let v = code - 1;
    ((v >> 48) as usize, v & ((1 << 48) - 1))
}

/// One bit per (producer, sequence number): set by the consumer that received it, with one
/// atomic `fetch_or` (a consumer killed at any instant has either set it or not), which also
/// catches a second delivery.
struct Bits {
    seg: Segment,
    per: u64,
}

impl Bits {
    fn word(&self, p: usize, seq: u64) -> (&AtomicU64, u64) {
        assert!(seq < self.per, "producer {p}: seq {seq} beyond the bitmap");
        let bit = p as u64 * self.per + seq;
        (
            self.seg
                .atomic_u64((bit / 64 * 8) as usize)
                .expect("bitmap word"),
            1 << (bit % 64),
        )
    }
    /// Sets the bit; whether it was set already.
    fn set(&self, p: usize, seq: u64) -> bool {
        let (w, m) = self.word(p, seq);
        w.fetch_or(m, Ordering::SeqCst) & m != 0
    }
    fn get(&self, p: usize, seq: u64) -> bool {
        let (w, m) = self.word(p, seq);
        w.load(Ordering::SeqCst) & m != 0
    }
    /// Producer `p`'s bitmap words (`per` is a multiple of 64).
    fn words(&self, p: usize) -> impl Iterator<Item = u64> + '_ {
        let first = p as u64 * self.per / 64;
        (first..first + self.per / 64).map(|i| {
            self.seg
                .atomic_u64((i * 8) as usize)
                .expect("bitmap word")
                .load(Ordering::SeqCst)
        })
    }
}

/// A soak message: `[producer: u32][seq: u64][filler][checksum: u32]`, 20 to 64 bytes.
fn soak_fill(p: u32, seq: u64, buf: &mut [u8; 64]) -> usize {
    let len = 20 + (mix(p, seq) % 45) as usize;
    buf[..4].copy_from_slice(&p.to_le_bytes());
    buf[4..12].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in buf[12..len - 4].iter_mut().enumerate() {
        *b = (seq as u8) ^ (i as u8).wrapping_mul(7) ^ (p as u8);
    }
    let sum = buf[..len - 4].iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    });
    buf[len - 4..len].copy_from_slice(&sum.to_le_bytes());
    len
}

fn orphaned(ppid: u32) -> bool {
    std::os::unix::process::parent_id() != ppid
}

/// A soak producer: pushes its sequence from where the control segment says (a successor
/// continues its predecessor's stream), until the phase says stop. Around each push it marks
/// the sequence number pending, and after an `Ok` acknowledges it (`next_seq`): killed in
/// between, the message may or may not have been committed, and the parent knows which one.
fn soak_producer(ring: &MpmcRing, ctl: &Ctl, per: u64, p: usize) {
    let ppid = std::os::unix::process::parent_id();
    let mut tx = ring
        .producer()
        .unwrap_or_else(|e| die(&format!("producer {p}: attach: {e}")));
    let mut buf = [0u8; 64];
    let mut n = 0u64;
    while ctl.phase().load(Ordering::SeqCst) == PHASE_RUN {
        n += 1;
        if n % 4096 == 0 && orphaned(ppid) {
            return;
        }
        // SeqCst throughout: the parent reads these words after the process stopped or died.
        let seq = ctl.next_seq(p).load(Ordering::SeqCst);
        if seq >= per {
            // The bitmap is full: idle until the end (reported).
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        ctl.busy(p).store(1, Ordering::SeqCst);
        ctl.pending(p).store(seq + 1, Ordering::SeqCst);
        let len = soak_fill(p as u32, seq, &mut buf);
        let full = match tx.try_push(&buf[..len]) {
            Ok(()) => {
                ctl.next_seq(p).store(seq + 1, Ordering::SeqCst);
                false
            }
            Err(PushError::Full) => true,
            Err(e) => die(&format!("producer {p}: push {seq}: {e}")),
        };
        ctl.pending(p).store(0, Ordering::SeqCst);
        ctl.busy(p).store(0, Ordering::SeqCst);
        if full {
            std::thread::yield_now();
        }
    }
}

/// A soak consumer: checks every message (producer id, length, content, checksum,
/// per-producer order), sets its bit (a bit already set is a duplicate), until the drain phase
/// finds the ring empty for a while. `holding` names the message between the pop and the
/// bit, so a kill there is attributed exactly.
fn soak_consumer(ring: &MpmcRing, ctl: &Ctl, bits: &Bits, c: usize, producers: usize) {
    let ppid = std::os::unix::process::parent_id();
    let slot = SOAK_MAX + c;
    let mut rx = ring
        .consumer()
        .unwrap_or_else(|e| die(&format!("consumer {c}: attach: {e}")));
    let mut buf = [0u8; 64];
    let mut want = [0u8; 64];
    let mut n = 0u64;
    let mut empty_since: Option<Instant> = None;
    loop {
        n += 1;
        if n % 4096 == 0 && orphaned(ppid) {
            return;
        }
        ctl.busy(slot).store(1, Ordering::SeqCst);
        match rx.try_pop(&mut buf) {
            Ok(len) => {
                empty_since = None;
                let p = u32::from_le_bytes(buf[..4].try_into().unwrap()) as usize;
                let seq = u64::from_le_bytes(buf[4..12].try_into().unwrap());
                if p >= producers || seq >= bits.per {
                    die(&format!(
                        "consumer {c}: CORRUPT message: producer {p} seq {seq} (len {len})"
                    ));
                }
                ctl.holding(c).store(hold_code(p, seq), Ordering::SeqCst);
                if soak_fill(p as u32, seq, &mut want) != len || want[..len] != buf[..len] {
                    die(&format!(
                        "consumer {c}: CORRUPT producer {p} seq {seq} (len {len})"
                    ));
                }
                let last = ctl.last(c, p).load(Ordering::SeqCst);
                if seq < last {
                    die(&format!(
                        "consumer {c}: DUPLICATE or out of order: producer {p} seq {seq} after {}",
                        last - 1
                    ));
                }
                if bits.set(p, seq) {
                    die(&format!(
                        "consumer {c}: DUPLICATE: producer {p} seq {seq} was received before"
                    ));
                }
                ctl.last(c, p).store(seq + 1, Ordering::SeqCst);
                let count = ctl.count(c);
                count.store(count.load(Ordering::SeqCst) + 1, Ordering::SeqCst);
                ctl.holding(c).store(0, Ordering::SeqCst);
                ctl.busy(slot).store(0, Ordering::SeqCst);
            }
            Err(PopError::Empty) => {
                ctl.busy(slot).store(0, Ordering::SeqCst);
                if ctl.phase().load(Ordering::SeqCst) == PHASE_DRAIN {
                    let since = *empty_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= DRAIN_QUIET {
                        return;
                    }
                }
                std::thread::yield_now();
            }
            Err(e) => die(&format!("consumer {c}: pop: {e}")),
        }
    }
}

fn die(msg: &str) -> ! {
    eprintln!("SOAK FAILURE: {msg}");
    std::process::exit(3);
}

/// One soak process and what it is.
struct Proc {
    child: ChildGuard,
    role: String,
    slot: usize,
}

fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ...": the state follows the last ')'.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// SIGKILLs the process and reaps it. `anywhere`: at once, wherever it is. Else only while
/// it is between two ring operations: stop it (SIGSTOP), wait until it is stopped, read its
/// busy flag; kill if clear, else let it run and try again (false if it never was).
fn kill_proc(p: &mut Proc, ctl: &Ctl, anywhere: bool, rng: &mut Rng) -> bool {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let pid = Pid::from_raw(p.child.id() as i32);
    if anywhere {
        let _ = kill(pid, Signal::SIGKILL);
        let _ = p.child.wait();
        return true;
    }
    for _ in 0..500 {
        if kill(pid, Signal::SIGSTOP).is_err() {
            return false;
        }
        let t = Instant::now();
        while proc_state(p.child.id()) != Some('T') && t.elapsed() < Duration::from_millis(200) {
            std::thread::yield_now();
        }
        if proc_state(p.child.id()) == Some('T') && ctl.busy(p.slot).load(Ordering::SeqCst) == 0 {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = p.child.wait();
            return true;
        }
        let _ = kill(pid, Signal::SIGCONT);
        std::thread::sleep(Duration::from_micros(100 + rng.below(2000)));
    }
    false
}

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the kills left to account for.
#[derive(Default)]
struct Kills {
    producers: u64,
    consumers: u64,
    gave_up: u64,
    /// Per producer: sequence numbers a killed producer may have committed without
    /// acknowledging them (skipped by its successor).
    maybe: Vec<Vec<u64>>,
    /// Messages killed consumers had popped and not recorded: lost with them.
    lost_known: Vec<(usize, u64)>,
    /// Consumers killed inside a pop (busy, nothing popped yet as far as the soak knows): each
    /// may have lost the one message it was taking.
    lost_unknown_bound: u64,
    /// Consumers killed after recording the message they held (nothing lost).
    recorded_at_kill: u64,
}

impl Kills {
    /// Reads what the dead process in `slot` left, makes the slot ready for its successor.
    fn account(&mut self, ctl: &Ctl, bits: &Bits, slot: usize) {
        if slot < SOAK_MAX {
            let p = slot;
            self.producers += 1;
            let (next, pending) = (
                ctl.next_seq(p).load(Ordering::SeqCst),
                ctl.pending(p).load(Ordering::SeqCst),
            );
            if pending == next + 1 {
                // Killed between starting the push of `next` and acknowledging it: committed or
                // not, the successor starts after it.
                self.maybe[p].push(next);
                ctl.next_seq(p).store(pending, Ordering::SeqCst);
            }
            ctl.pending(p).store(0, Ordering::SeqCst);
        } else {
            let c = slot - SOAK_MAX;
            self.consumers += 1;
            let held = ctl.holding(c).load(Ordering::SeqCst);
            if held != 0 {
                let (p, seq) = hold_decode(held);
                if bits.get(p, seq) {
                    self.recorded_at_kill += 1;
                } else {
                    self.lost_known.push((p, seq));
                }
            } else if ctl.busy(slot).load(Ordering::SeqCst) != 0 {
                self.lost_unknown_bound += 1;
            }
            ctl.holding(c).store(0, Ordering::SeqCst);
        }
        ctl.busy(slot).store(0, Ordering::SeqCst);
    }
}

/// The soak (`scripts/soak.sh`): `SHMBUS_SOAK_PRODUCERS` producer and `SHMBUS_SOAK_CONSUMERS`
/// consumer processes on one 256-slot MPMC ring for `SHMBUS_SOAK_SECS` seconds. Every message
/// is checked by its consumer (content, checksum, per-producer order) and marked in a
/// per-producer bitmap with one atomic `fetch_or`: a bit already set is a duplicate.
///
/// `SHMBUS_SOAK_KILL=anywhere` SIGKILLs a random producer or consumer every 0.1–1 s, at
/// whatever instruction it is, and starts a successor that continues the same stream; the
/// ring's death repair (PROTOCOL §5.4, §7.3) reaps the dead endpoint and repairs its claim.
/// `between` kills only between two ring operations (SIGSTOP, check the busy flag, SIGKILL or
/// SIGCONT). The parent holds an idle producer and an idle consumer endpoint throughout, so
/// neither side is ever "disconnected" while a victim's successor starts.
///
/// Exact accounting, per producer, after the drain:
/// - *acknowledged*: every sequence number below the producer's `next_seq` (its pushes that
///   returned `Ok`), except the "maybe" ones: a producer killed between starting a push and
///   recording its `Ok` (it marks the push pending first) may or may not have committed it,
///   so its successor skips that number, and the message is allowed to be received or not;
/// - a bit set at or above `next_seq` is a message nobody committed (PHANTOM);
/// - an acknowledged message that was never received is lost. The one loss the protocol
///   allows is a consumer killed while holding the message it was taking (PROTOCOL §5.4):
///   a consumer killed after its pop returned names the message (`holding`), which must be
///   missing (if another consumer received it, that is a DUPLICATE); one killed inside a pop
///   may have lost one unknown message. Lost messages beyond those known ones plus one per
///   consumer killed inside a pop fail the run (LOSS).
///
/// Corruption, a duplicate, a process that dies on its own or 10 s without a message
/// received (a stall) fail the run at once. The report gives the largest gap between two
/// received messages seen (sampled every 20 ms).
#[test]
#[ignore = "soak: minutes of processes; run by scripts/soak.sh"]
fn soak_mpmc_processes() {
    let producers: usize = env_or(SOAK_PRODUCERS, 3).clamp(1, SOAK_MAX);
    let consumers: usize = env_or(SOAK_CONSUMERS, 3).clamp(1, SOAK_MAX);
    let open = |var: &str| {
        Segment::open(&std::env::var(var).unwrap(), &SegmentOptions::default())
            .unwrap_or_else(|e| die(&format!("open {var}: {e}")))
    };
    if let Some(role) = role() {
        let ring = MpmcRing::open_shm(&std::env::var(NAME).unwrap(), &SegmentOptions::default())
            .unwrap_or_else(|e| die(&format!("open ring: {e}")));
        let ctl = Ctl(open(SOAK_CTL));
        let bits = Bits {
            seg: open(SOAK_BITS),
            per: env_or(SOAK_BITS_PER, 0),
        };
        match role.split_once(':') {
            Some(("producer", i)) => soak_producer(&ring, &ctl, bits.per, i.parse().unwrap()),
            Some(("consumer", i)) => {
                soak_consumer(&ring, &ctl, &bits, i.parse().unwrap(), producers);
            }
            _ => die(&format!("unknown role {role}")),
        }
        return;
    }
    let secs: u64 = env_or(SOAK_SECS, 60);
    let kill_mode = std::env::var(SOAK_KILL).unwrap_or_default();
    let (kills_on, anywhere) = match kill_mode.as_str() {
        "" | "0" | "none" => (false, false),
        "between" => (true, false),
        "1" | "anywhere" => (true, true),
        other => panic!("{SOAK_KILL}={other}: expected none, between or anywhere"),
    };
    let name = unique_name("soak");
    let ctl_name = format!("{name}-ctl");
    let bits_name = format!("{name}-bits");
    let ring =
        MpmcRing::create_shm(&name, &MpmcConfig::new(256, 64), &SegmentOptions::default()).unwrap();
    // Idle endpoints: the stream never looks ended while a victim's successor starts.
    let hold_tx = ring.producer().unwrap();
    let hold_rx = ring.consumer().unwrap();
    let ctl = Ctl(Segment::create(&ctl_name, CTL_LEN as u64, &SegmentOptions::default()).unwrap());
    let per = (secs.max(1) * SOAK_RATE_CAP).div_ceil(64) * 64;
    let bits = Bits {
        seg: Segment::create(
            &bits_name,
            per / 8 * producers as u64,
            &SegmentOptions::default(),
        )
        .unwrap(),
        per,
    };
    let seed = seed_from_env(SOAK_SEED);
    println!("soak: seed {seed} (replay the kill schedule with {SOAK_SEED}={seed})");
    let mut rng = Rng::new(seed);
    let start_proc = |role: String, slot: usize| Proc {
        child: ChildGuard::spawn(
            respawn(SOAK_TEST, &role)
                .arg("--include-ignored")
                .env(NAME, &name)
                .env(SOAK_CTL, &ctl_name)
                .env(SOAK_BITS, &bits_name)
                .env(SOAK_BITS_PER, per.to_string())
                .env(SOAK_PRODUCERS, producers.to_string())
                .env(SOAK_CONSUMERS, consumers.to_string())
                .stdout(Stdio::null()),
        ),
        role,
        slot,
    };
    // Whatever happens from here, no child outlives the test: each `Proc`'s guard kills it.
    let mut procs: Vec<Proc> = (0..consumers)
        .map(|c| start_proc(format!("consumer:{c}"), SOAK_MAX + c))
        .chain((0..producers).map(|p| start_proc(format!("producer:{p}"), p)))
        .collect();
    let received = |ctl: &Ctl| -> u64 {
        (0..consumers)
            .map(|c| ctl.count(c).load(Ordering::SeqCst))
            .sum()
    };
    let started = Instant::now();
    let end = started + Duration::from_secs(secs);
    let mut next_kill = Instant::now() + Duration::from_millis(100 + rng.below(900));
    let mut kills = Kills {
        maybe: vec![Vec::new(); producers],
        ..Kills::default()
    };
    let mut last_progress = (Instant::now(), 0u64);
    let mut max_stall = Duration::ZERO;
    let mut long_stalls = 0u64;
    let mut last_kill: Option<(Instant, String, u32)> = None;
    let mut last_report = Instant::now();
    println!(
        "soak: {producers} producers, {consumers} consumers, {secs} s, kills: {}",
        if kills_on { kill_mode.as_str() } else { "none" }
    );
    let fail = |msg: String| -> ! { panic!("SOAK FAILED: {msg}") };
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
        for p in &mut procs {
            if let Some(status) = p.child.try_wait().unwrap() {
                fail(format!(
                    "{} exited on its own: {status} (see its stderr above)",
                    p.role
                ));
            }
        }
        let got = received(&ctl);
        let quiet = last_progress.0.elapsed();
        max_stall = max_stall.max(quiet);
        if got != last_progress.1 {
            if quiet >= STALL_NOTE {
                // Say what happened before it: a repair that took long, or a starved machine.
                long_stalls += 1;
                let stall_start = last_progress.0;
                let before = last_kill.as_ref().map_or_else(
                    || "no kill before it".to_string(),
                    |(at, role, pid): &(Instant, String, u32)| {
                        if *at <= stall_start {
                            format!(
                                "{role} (pid {pid}) killed {:?} before it began",
                                stall_start - *at
                            )
                        } else {
                            format!("{role} (pid {pid}) killed {:?} into it", *at - stall_start)
                        }
                    },
                );
                println!(
                    "soak: stall of {quiet:?} ending at {:.1} s; last kill: {before}; load {}",
                    started.elapsed().as_secs_f64(),
                    std::fs::read_to_string("/proc/loadavg")
                        .unwrap_or_default()
                        .split(' ')
                        .next()
                        .unwrap_or("?")
                );
            }
            last_progress = (Instant::now(), got);
        } else if quiet > STALL_LIMIT {
            let state: Vec<String> = (0..producers)
                .map(|p| format!("p{p}:{}", ctl.next_seq(p).load(Ordering::SeqCst)))
                .collect();
            fail(format!(
                "STALL: no message received for {quiet:?} (received {got}; acknowledged up to {}; \
                 kills: {} producers, {} consumers; seed {seed})",
                state.join(" "),
                kills.producers,
                kills.consumers,
            ));
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            last_report = Instant::now();
            println!(
                "soak: {:>4} s: {got} messages received, {} kills, max stall {max_stall:?}",
                started.elapsed().as_secs(),
                kills.producers + kills.consumers,
            );
        }
        if kills_on && Instant::now() >= next_kill {
            let i = rng.below(procs.len() as u64) as usize;
            let victim = &mut procs[i];
            let pid = victim.child.id();
            if kill_proc(victim, &ctl, anywhere, &mut rng) {
                last_kill = Some((Instant::now(), victim.role.clone(), pid));
                kills.account(&ctl, &bits, victim.slot);
                let (role, slot) = (victim.role.clone(), victim.slot);
                *victim = start_proc(role, slot);
            } else {
                kills.gave_up += 1;
            }
            next_kill = Instant::now() + Duration::from_millis(100 + rng.below(900));
        }
    }
    // Producers stop after their current push; then consumers drain the ring and exit.
    ctl.phase().store(PHASE_STOP, Ordering::SeqCst);
    let wait_all = |procs: &mut [Proc], what: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        for p in procs.iter_mut().filter(|p| p.role.starts_with(what)) {
            loop {
                if let Some(status) = p.child.try_wait().unwrap() {
                    assert!(status.success(), "SOAK FAILED: {} exited {status}", p.role);
                    break;
                }
                assert!(
                    Instant::now() <= deadline,
                    "SOAK FAILED: STALL: {} did not finish within 30 s of stop (seed {seed})",
                    p.role
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    };
    wait_all(&mut procs, "producer");
    ctl.phase().store(PHASE_DRAIN, Ordering::SeqCst);
    wait_all(&mut procs, "consumer");
    drop((hold_tx, hold_rx));
    let elapsed = started.elapsed().as_secs_f64();

    let mut problems = Vec::new();
    let (mut acked, mut acked_received, mut maybe, mut maybe_received) = (0u64, 0u64, 0u64, 0u64);
    let mut missing: Vec<(usize, u64)> = Vec::new();
    let mut capped = Vec::new();
    for p in 0..producers {
        let n = ctl.next_seq(p).load(Ordering::SeqCst);
        if n >= per {
            capped.push(p);
        }
        let skipped: std::collections::HashSet<u64> = kills.maybe[p].iter().copied().collect();
        let (mut got_below, mut phantom) = (0u64, 0u64);
        for (w, word) in bits.words(p).enumerate() {
            let base = w as u64 * 64;
            if base >= n && word == 0 {
                continue;
            }
            if base + 64 <= n
                && word == u64::MAX
                && !(base..base + 64).any(|q| skipped.contains(&q))
            {
                got_below += 64;
                continue;
            }
            for b in 0..64 {
                let seq = base + b;
                let set = word >> b & 1 != 0;
                if seq >= n {
                    phantom += u64::from(set);
                } else if skipped.contains(&seq) {
                    maybe_received += u64::from(set);
                } else if set {
                    got_below += 1;
                } else {
                    missing.push((p, seq));
                }
            }
        }
        acked += n - skipped.len() as u64;
        acked_received += got_below;
        maybe += skipped.len() as u64;
        println!(
            "soak: producer {p}: acknowledged {}, received {got_below} of them; maybe-committed {} (received {})",
            n - skipped.len() as u64,
            skipped.len(),
            kills.maybe[p].iter().filter(|s| bits.get(p, **s)).count()
        );
        if phantom != 0 {
            problems.push(format!(
                "producer {p}: PHANTOM: {phantom} messages received at or above its next sequence number {n}"
            ));
        }
    }
    // The messages killed consumers are known to have held must be missing (not delivered to
    // another consumer).
    let missing_set: std::collections::HashSet<(usize, u64)> = missing.iter().copied().collect();
    let mut known_lost = 0u64;
    for &(p, seq) in &kills.lost_known {
        if missing_set.contains(&(p, seq)) {
            known_lost += 1;
        } else if bits.get(p, seq) {
            problems.push(format!(
                "DUPLICATE: producer {p} seq {seq}, held by a killed consumer, was received by another"
            ));
        }
        // Else it was a maybe-committed message of a killed producer: allowed either way.
    }
    let lost = missing.len() as u64;
    let unexplained = lost.saturating_sub(known_lost);
    if unexplained > kills.lost_unknown_bound {
        let known: std::collections::HashSet<(usize, u64)> =
            kills.lost_known.iter().copied().collect();
        let shown: Vec<String> = missing
            .iter()
            .filter(|m| !known.contains(m))
            .take(10)
            .map(|(p, s)| format!("p{p}#{s}"))
            .collect();
        problems.push(format!(
            "LOSS: {lost} acknowledged messages never received; {known_lost} were held by killed \
             consumers and at most {} more can have been taken by consumers killed inside a pop, \
             so {} are unexplained (first: {})",
            kills.lost_unknown_bound,
            unexplained - kills.lost_unknown_bound,
            shown.join(" ")
        ));
    }
    println!(
        "soak: seed {seed}; {:.0} s; kills: {} producers, {} consumers ({} gave up)",
        elapsed, kills.producers, kills.consumers, kills.gave_up
    );
    println!(
        "soak: acknowledged {acked}, received {acked_received} of them ({:.0}/s); \
         maybe-committed (producer killed between commit and ack) {maybe}, received {maybe_received}",
        (acked_received + maybe_received) as f64 / elapsed
    );
    println!(
        "soak: lost with a killed consumer: {lost} ({known_lost} named by the consumer that \
         held it, {unexplained} unnamed; consumers killed inside a pop, each allowed one \
         unnamed loss: {}); consumers killed after recording: {}; duplicates 0, corrupt 0 \
         (either ends the run at once); max stall {max_stall:?} ({long_stalls} gaps of \
         {STALL_NOTE:?} or more, each reported above)",
        kills.lost_unknown_bound, kills.recorded_at_kill
    );
    if !capped.is_empty() {
        println!("soak: producers {capped:?} reached the bitmap's room ({per} messages) and idled");
    }
    assert!(problems.is_empty(), "SOAK FAILED: {}", problems.join("; "));
    println!("soak: OK: no loss but the allowed ones, no duplicate, no corruption");
}
