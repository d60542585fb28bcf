//! Real processes on one MPMC ring: 4 producer and 4 consumer processes (more than the cores,
//! on purpose, so processes are preempted mid-operation) pass 10 million tagged, checksummed
//! messages. Every message must be received exactly once, and each consumer must see each
//! producer's messages in increasing order.
//!
//! `soak_mpmc_processes` (ignored; run by `scripts/soak.sh`): several producer and consumer
//! processes on one MPMC ring for a set time, every message checksummed and accounted for,
//! optionally with SIGKILLs of producers and consumers (see the function's docs for what a
//! kill may hit).
#![cfg(not(loom))]

use shmbus_ring::layout::{ENDPOINT_SIZE, ENDPOINT_TABLE, MAX_ENDPOINTS};
use shmbus_ring::{MpmcConfig, MpmcRing, PopError, PushError, Segment, SegmentOptions};
use shmbus_testkit::rng::{seed_from_env, Rng};
use shmbus_testkit::{respawn, role, unique_name, ChildGuard};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const TEST: &str =
    "four_producer_and_four_consumer_processes_pass_ten_million_messages_exactly_once";
/// The environment variables naming the ring a child opens and how much each producer sends.
const NAME: &str = "SHMBUS_MPMC_NAME";
const PER_PRODUCER: &str = "SHMBUS_MPMC_PER_PRODUCER";
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
    let (producers, consumers, per) = (4u32, 4, 2_500_000u64);
    let name = unique_name("mpmc-procs");
    let ring = MpmcRing::create_shm(
        &name,
        &MpmcConfig::new(1024, 64),
        &SegmentOptions::default(),
    )
    .unwrap();
    let spawn = |role: String, out: Stdio| {
        ChildGuard::spawn(
            respawn(TEST, &role)
                .env(NAME, &name)
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
// The soak: producer and consumer processes on one MPMC ring, with accounting and kills
// ---------------------------------------------------------------------------------------------

const SOAK_TEST: &str = "soak_mpmc_processes";
const SOAK_CTL: &str = "SHMBUS_SOAK_CTL";
const SOAK_PRODUCERS: &str = "SHMBUS_SOAK_PRODUCERS";
const SOAK_CONSUMERS: &str = "SHMBUS_SOAK_CONSUMERS";
const SOAK_SECS: &str = "SHMBUS_SOAK_SECS";
const SOAK_KILL: &str = "SHMBUS_SOAK_KILL";
const SOAK_SEED: &str = "SHMBUS_SOAK_SEED";
/// Most producer and consumer processes the control segment has room for.
const SOAK_MAX: usize = 16;
/// Control segment words: phase, then one 64-byte block per process slot, then accounting.
const CTL_PHASE: usize = 0;
const CTL_PROCS: usize = 64;
const CTL_ACCT: usize = CTL_PROCS + 2 * SOAK_MAX * 64;
/// Phases: run; producers stop; consumers drain and exit.
const PHASE_RUN: u64 = 0;
const PHASE_STOP: u64 = 1;
const PHASE_DRAIN: u64 = 2;

/// The control segment (plain shared memory, no ring): written by the soak's processes,
/// read by the parent.
struct Ctl(Segment);

impl Ctl {
    fn word(&self, off: usize) -> &AtomicU64 {
        self.0.atomic_u64(off).expect("control word")
    }
    fn phase(&self) -> &AtomicU64 {
        self.word(CTL_PHASE)
    }
    /// Process slot `s` (producers 0.., consumers `SOAK_MAX..)`: +0 busy, +8 next sequence
    /// number (producers: messages committed so far).
    fn busy(&self, s: usize) -> &AtomicU64 {
        self.word(CTL_PROCS + s * 64)
    }
    fn next_seq(&self, s: usize) -> &AtomicU64 {
        self.word(CTL_PROCS + s * 64 + 8)
    }
    /// Consumer `c`'s account of producer `p`: count, sum of sequence numbers, sum of
    /// per-message hashes, and one past the last sequence number seen (order check).
    fn acct(&self, c: usize, p: usize, field: usize) -> &AtomicU64 {
        self.word(CTL_ACCT + ((c * SOAK_MAX + p) * 4 + field) * 8)
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

/// A soak producer: pushes its sequence from where the control segment says it stopped (a
/// restarted producer continues its predecessor's stream), until the phase says stop.
fn soak_producer(ring: &MpmcRing, ctl: &Ctl, p: usize) {
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
        // SeqCst on busy: the parent stops this process and reads the flag; stopping implies a
        // context switch, so every store below is visible once it reads 0.
        ctl.busy(p).store(1, Ordering::SeqCst);
        let seq = ctl.next_seq(p).load(Ordering::SeqCst);
        let len = soak_fill(p as u32, seq, &mut buf);
        let full = match tx.try_push(&buf[..len]) {
            Ok(()) => {
                ctl.next_seq(p).store(seq + 1, Ordering::SeqCst);
                false
            }
            Err(PushError::Full) => true,
            Err(e) => die(&format!("producer {p}: push {seq}: {e}")),
        };
        ctl.busy(p).store(0, Ordering::SeqCst);
        if full {
            std::thread::yield_now();
        }
    }
}

/// A soak consumer: checks every message (producer id, length, content, checksum, per-producer
/// order) and adds it to its account in the control segment, until the drain phase finds the
/// ring empty.
fn soak_consumer(ring: &MpmcRing, ctl: &Ctl, c: usize, producers: usize) {
    let ppid = std::os::unix::process::parent_id();
    let slot = SOAK_MAX + c;
    let mut rx = ring
        .consumer()
        .unwrap_or_else(|e| die(&format!("consumer {c}: attach: {e}")));
    let mut buf = [0u8; 64];
    let mut want = [0u8; 64];
    let mut n = 0u64;
    loop {
        n += 1;
        if n % 4096 == 0 && orphaned(ppid) {
            return;
        }
        ctl.busy(slot).store(1, Ordering::SeqCst);
        match rx.try_pop(&mut buf) {
            Ok(len) => {
                let p = u32::from_le_bytes(buf[..4].try_into().unwrap()) as usize;
                let seq = u64::from_le_bytes(buf[4..12].try_into().unwrap());
                if p >= producers {
                    die(&format!(
                        "consumer {c}: CORRUPT message from unknown producer {p}"
                    ));
                }
                if soak_fill(p as u32, seq, &mut want) != len || want[..len] != buf[..len] {
                    die(&format!(
                        "consumer {c}: CORRUPT producer {p} seq {seq} (len {len})"
                    ));
                }
                let last = ctl.acct(c, p, 3).load(Ordering::Relaxed);
                if seq < last {
                    die(&format!(
                        "consumer {c}: DUPLICATE or out of order: producer {p} seq {seq} after {}",
                        last - 1
                    ));
                }
                let a = |f: usize, v: u64| {
                    let w = ctl.acct(c, p, f);
                    w.store(w.load(Ordering::Relaxed).wrapping_add(v), Ordering::Relaxed);
                };
                a(0, 1);
                a(1, seq);
                a(2, mix(p as u32, seq));
                ctl.acct(c, p, 3).store(seq + 1, Ordering::SeqCst);
                ctl.busy(slot).store(0, Ordering::SeqCst);
            }
            Err(PopError::Empty) => {
                ctl.busy(slot).store(0, Ordering::SeqCst);
                if ctl.phase().load(Ordering::SeqCst) == PHASE_DRAIN {
                    return;
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

/// SIGKILLs a process only while it is between two ring operations: stop it (SIGSTOP), wait
/// until it is stopped, read its busy flag; kill if clear, else let it run and try again.
/// With `anywhere`, kills at once, wherever the process is (needs death repair; see docs).
fn kill_between_ops(p: &mut Proc, ctl: &Ctl, anywhere: bool, rng: &mut Rng) -> bool {
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

/// Frees the endpoint-table entries a killed process left registered (it owned no slot: it
/// was killed between operations), as the liveness work will do on death detection.
fn free_endpoints_of(raw: &Segment, pid: u32) -> u32 {
    let mut freed = 0;
    for i in 0..MAX_ENDPOINTS {
        let entry = (ENDPOINT_TABLE + i * ENDPOINT_SIZE) as usize;
        // The state word: pid in the high half, phase in bits 4..8 (0: free).
        let state = raw.atomic_u64(entry).unwrap();
        let word = state.load(Ordering::SeqCst);
        if (word >> 4) & 0xf != 0 && (word >> 32) as u32 == pid {
            // Whatever the generation was, free it with the phase cleared.
            state.store(word & 0xffff_0000, Ordering::SeqCst);
            freed += 1;
        }
    }
    freed
}

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The soak (`scripts/soak.sh`): `SHMBUS_SOAK_PRODUCERS` producer and `SHMBUS_SOAK_CONSUMERS`
/// consumer processes on one 256-slot MPMC ring for `SHMBUS_SOAK_SECS` seconds. Every message
/// is checked by its consumer (content, checksum, per-producer order); at the end the parent
/// checks, per producer, that the consumers' counts, sequence sums and hash sums equal exactly
/// what the producer committed — any loss, duplicate or corruption fails the run.
///
/// `SHMBUS_SOAK_KILL=between` SIGKILLs a random producer or consumer every 0.1–1 s and starts
/// a successor (which continues the same stream), but only while the victim is between two
/// ring operations (SIGSTOP, check its busy flag, SIGKILL or SIGCONT): death repair does not
/// exist yet, so a process killed holding a claimed slot would wedge the ring. The parent
/// frees the dead process's endpoint-table entry. `SHMBUS_SOAK_KILL=anywhere` kills wherever
/// the victim is; that needs death repair (the liveness issue) and until then is expected to
/// end in a reported stall or a loss.
#[test]
#[ignore = "soak: minutes of processes; run by scripts/soak.sh"]
fn soak_mpmc_processes() {
    let producers: usize = env_or(SOAK_PRODUCERS, 3).clamp(1, SOAK_MAX);
    let consumers: usize = env_or(SOAK_CONSUMERS, 3).clamp(1, SOAK_MAX);
    if let Some(role) = role() {
        let ring = MpmcRing::open_shm(&std::env::var(NAME).unwrap(), &SegmentOptions::default())
            .unwrap_or_else(|e| die(&format!("open ring: {e}")));
        let ctl = Ctl(Segment::open(
            &std::env::var(SOAK_CTL).unwrap(),
            &SegmentOptions::default(),
        )
        .unwrap_or_else(|e| die(&format!("open control: {e}"))));
        match role.split_once(':') {
            Some(("producer", i)) => soak_producer(&ring, &ctl, i.parse().unwrap()),
            Some(("consumer", i)) => soak_consumer(&ring, &ctl, i.parse().unwrap(), producers),
            _ => die(&format!("unknown role {role}")),
        }
        return;
    }
    let secs: u64 = env_or(SOAK_SECS, 60);
    let kill_mode = std::env::var(SOAK_KILL).unwrap_or_default();
    let (kills_on, anywhere) = match kill_mode.as_str() {
        "" | "0" | "none" => (false, false),
        "between" | "1" => (true, false),
        "anywhere" => (true, true),
        other => panic!("{SOAK_KILL}={other}: expected none, between or anywhere"),
    };
    let name = unique_name("soak");
    let ctl_name = format!("{name}-ctl");
    let _ring =
        MpmcRing::create_shm(&name, &MpmcConfig::new(256, 64), &SegmentOptions::default()).unwrap();
    let raw = Segment::open(&name, &SegmentOptions::default()).unwrap();
    let ctl_seg = Segment::create(
        &ctl_name,
        (CTL_ACCT + SOAK_MAX * SOAK_MAX * 32) as u64,
        &SegmentOptions::default(),
    )
    .unwrap();
    let ctl = Ctl(ctl_seg);
    let seed = seed_from_env(SOAK_SEED);
    println!("soak: seed {seed} (replay the kill schedule with {SOAK_SEED}={seed})");
    let mut rng = Rng::new(seed);
    let start_proc = |role: String, slot: usize| Proc {
        child: ChildGuard::spawn(
            respawn(SOAK_TEST, &role)
                .arg("--include-ignored")
                .env(NAME, &name)
                .env(SOAK_CTL, &ctl_name)
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
            .flat_map(|c| (0..producers).map(move |p| (c, p)))
            .map(|(c, p)| ctl.acct(c, p, 0).load(Ordering::Relaxed))
            .sum()
    };
    let started = Instant::now();
    let end = started + Duration::from_secs(secs);
    let mut next_kill = Instant::now() + Duration::from_millis(100 + rng.below(900));
    let (mut kills, mut kill_gaveup, mut freed) = (0u64, 0u64, 0u32);
    let mut last_progress = (Instant::now(), 0u64);
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
        if got != last_progress.1 {
            last_progress = (Instant::now(), got);
        } else if last_progress.0.elapsed() > Duration::from_secs(10) {
            let stuck: Vec<String> = (0..producers)
                .map(|p| format!("p{p}:{}", ctl.next_seq(p).load(Ordering::Relaxed)))
                .collect();
            fail(format!(
                "STALL: no message received for 10 s (received {got}; committed {}; kills {kills}{})",
                stuck.join(" "),
                if anywhere {
                    "; expected with kills anywhere until death repair exists"
                } else {
                    ""
                }
            ));
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            last_report = Instant::now();
            println!(
                "soak: {:>4} s: {got} messages received, {kills} kills",
                started.elapsed().as_secs()
            );
        }
        if kills_on && Instant::now() >= next_kill {
            let i = rng.below(procs.len() as u64) as usize;
            let victim = &mut procs[i];
            let pid = victim.child.id();
            if kill_between_ops(victim, &ctl, anywhere, &mut rng) {
                kills += 1;
                freed += free_endpoints_of(&raw, pid);
                let (role, slot) = (victim.role.clone(), victim.slot);
                *victim = start_proc(role, slot);
            } else {
                kill_gaveup += 1;
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
                    "SOAK FAILED: STALL: {} did not finish within 30 s of stop",
                    p.role
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    };
    wait_all(&mut procs, "producer");
    ctl.phase().store(PHASE_DRAIN, Ordering::SeqCst);
    wait_all(&mut procs, "consumer");
    let elapsed = started.elapsed().as_secs_f64();
    let mut total = 0u64;
    let mut problems = Vec::new();
    for p in 0..producers {
        let n = ctl.next_seq(p).load(Ordering::SeqCst);
        total += n;
        let (mut count, mut sum, mut hash) = (0u64, 0u64, 0u64);
        for c in 0..consumers {
            count += ctl.acct(c, p, 0).load(Ordering::SeqCst);
            sum = sum.wrapping_add(ctl.acct(c, p, 1).load(Ordering::SeqCst));
            hash = hash.wrapping_add(ctl.acct(c, p, 2).load(Ordering::SeqCst));
        }
        let want_sum = (u128::from(n) * u128::from(n).saturating_sub(1) / 2) as u64;
        let want_hash = (0..n).fold(0u64, |a, s| a.wrapping_add(mix(p as u32, s)));
        println!("soak: producer {p}: committed {n}, received {count}");
        if count != n {
            problems.push(format!(
                "producer {p}: {} messages {} (committed {n}, received {count})",
                n.abs_diff(count),
                if count < n { "LOST" } else { "DUPLICATED" }
            ));
        } else if sum != want_sum || hash != want_hash {
            problems.push(format!(
                "producer {p}: same count but a different set (loss + duplicate)"
            ));
        }
    }
    println!(
        "soak: {total} messages in {elapsed:.0} s ({:.0}/s), {kills} kills ({kill_gaveup} gave up), {freed} endpoint entries freed",
        total as f64 / elapsed
    );
    assert!(problems.is_empty(), "SOAK FAILED: {}", problems.join("; "));
    println!("soak: OK: every committed message received exactly once, in order, intact");
}
