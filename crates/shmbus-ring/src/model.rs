//! Entry points for the loom models (`RUSTFLAGS="--cfg loom"`): the very code of the ring
//! cores, of registration and reaping, and of the sleep/notify protocol, over [`LoomMem`].
//! Compiled only under `cfg(loom)`; never part of the public API of a normal build.

use crate::sync::{LoomMem, Memory, Ordering};

pub use crate::endpoint::Audit;

/// Runs loom's exhaustive search of `f`, bounded to `bound` preemptions unless
/// `LOOM_MAX_PREEMPTIONS` says otherwise (bugs that need more are rare; the bound keeps CI
/// within minutes).
pub fn check(bound: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(bound);
    }
    builder.check(f);
}

/// [`check`] with room for `branches` branch points per execution (loom's default is 1000):
/// for models whose threads spin on each other through many atomic operations per round.
pub fn check_long(bound: usize, branches: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(bound);
    }
    builder.max_branches = branches;
    builder.check(f);
}

/// Spins (yielding to the model) until `f` returns `Some`.
pub fn spin<T>(mut f: impl FnMut() -> Option<T>) -> T {
    loop {
        if let Some(v) = f() {
            return v;
        }
        crate::sync::spin_hint();
    }
}

/// The SPSC cores over loom memory.
pub mod spsc {
    use super::LoomMem;
    use crate::conv::offset;
    use crate::endpoint::{FastPop, ReadCore, WriteCore};
    use crate::error::{PopError, PushError};
    use crate::ring::Words;
    use crate::spsc::core::{ConsumerCore, Geometry, ProducerCore};
    use crate::spsc::largest_record;

    /// A producer over loom memory.
    pub struct ModelProducer(ProducerCore<LoomMem>);
    /// A consumer over loom memory, with the ring's record limit (the buffer its fast pop
    /// reads into).
    pub struct ModelConsumer(ConsumerCore<LoomMem>, usize);

    /// A ring of `cap` data bytes in loom memory, with control words in front of the data.
    pub fn pair(cap: u64) -> (ModelProducer, ModelConsumer) {
        pair_bounded(cap, 0)
    }

    /// A ring of `cap` data bytes holding at most `limit` messages (0: no bound), with the
    /// positions and the message counts in front of the data.
    pub fn pair_bounded(cap: u64, limit: u64) -> (ModelProducer, ModelConsumer) {
        pair_with(cap, limit, None)
    }

    /// An aligned ring (layout 1.5) of `cap` data bytes: payloads of `from` bytes and more
    /// start on a multiple of `boundary` (16 to 64), after a skip record where needed.
    pub fn pair_aligned(cap: u64, from: u64, boundary: u64) -> (ModelProducer, ModelConsumer) {
        assert!(boundary.is_power_of_two() && (16..=64).contains(&boundary));
        pair_with(
            cap,
            0,
            Some(crate::spsc::core::Align {
                from: u32::try_from(from).expect("a model's threshold fits 32 bits"),
                boundary,
                // The loom models check the skip record's commit, not where it goes.
                free_from: u32::try_from(from).expect("a model's threshold fits 32 bits"),
            }),
        )
    }

    fn pair_with(
        cap: u64,
        limit: u64,
        aligned: Option<crate::spsc::core::Align>,
    ) -> (ModelProducer, ModelConsumer) {
        let g = Geometry {
            words: Words {
                tail: 0,
                head: 8,
                data: 32,
                wake: None,
            },
            cap,
            max_record: largest_record(cap),
            limit,
            counts: (16, 24),
            aligned,
        };
        let mem = LoomMem::zeroed(32 + crate::conv::offset(cap));
        // SAFETY: the model memory holds the two control words and `cap` data bytes.
        let p = unsafe { ProducerCore::attach(mem.clone(), g) }.expect("fresh ring");
        // SAFETY: as above.
        let c = unsafe { ConsumerCore::attach(mem, g) }.expect("fresh ring");
        (ModelProducer(p), ModelConsumer(c, offset(g.max_record)))
    }

    impl ModelProducer {
        /// See [`crate::Producer::try_push`]: as the endpoint, the fast step first and the
        /// general one when it does not take the message (D96), so the models check both.
        pub fn try_push(&mut self, payload: &[u8]) -> Result<(), PushError> {
            if self.0.try_push_fast(payload) {
                return Ok(());
            }
            self.0.try_push(payload)
        }
        /// See [`crate::Producer::try_push_batch`].
        pub fn try_push_batch(&mut self, records: &[&[u8]]) -> Result<usize, PushError> {
            self.0.try_push_batch(records)
        }
        /// The audit a producer that found the ring full runs at a probe.
        pub fn audit(&mut self) -> super::Audit {
            self.0.audit()
        }
    }

    impl ModelConsumer {
        /// See [`crate::Consumer::try_pop`]: as the endpoint, the fast step first (into a
        /// buffer of the record limit) and the general one when it leaves the record (D96),
        /// so the models check both; `buf` holds the message.
        pub fn try_pop_vec(&mut self, buf: &mut Vec<u8>) -> Result<usize, PopError> {
            buf.clear();
            buf.resize(self.1, 0);
            match self.0.try_pop_fast(buf) {
                FastPop::Popped(n) => {
                    buf.truncate(n);
                    Ok(n)
                }
                FastPop::Empty => Err(PopError::Empty),
                FastPop::Other => self.0.try_pop_vec(buf),
            }
        }
        /// The audit a consumer that found the ring empty runs at a probe.
        pub fn audit(&mut self) -> super::Audit {
            self.0.audit()
        }
    }
}

/// The broadcast cores over loom memory.
pub mod broadcast {
    use super::LoomMem;
    use crate::broadcast::frame::Geometry;
    use crate::broadcast::publisher::PublisherCore;
    use crate::broadcast::subscriber::{leave, Mode, SubscriberCore};
    pub use crate::broadcast::{SlowSubscribers, StartAt};
    use crate::conv::offset;
    use crate::endpoint::{ReadCore, WriteCore};
    use crate::error::{PopError, PushError};
    use crate::ring::Words;

    /// A broadcast ring in loom memory: the tail word, the data, then the publisher's and the
    /// roster's lines, two cursor lines and the history index.
    #[derive(Clone)]
    pub struct ModelRing {
        mem: LoomMem,
        g: Geometry,
    }
    /// A publisher over loom memory.
    pub struct ModelPublisher(PublisherCore<LoomMem>);
    /// A subscriber over loom memory.
    pub struct ModelSubscriber(SubscriberCore<LoomMem>);

    impl ModelRing {
        /// A ring of `cap` data bytes (a power of two, at least 32) keeping `history`
        /// records (a power of two), with room for subscribers 0 and 1.
        pub fn new(cap: u64, history: u64) -> Self {
            let data = 64;
            let aux = data + cap;
            let hist_at =
                aux + crate::broadcast::aux::CURSORS + 2 * crate::broadcast::aux::CURSOR_SIZE;
            let g = Geometry {
                words: Words {
                    tail: 0,
                    head: 8,
                    data: offset(data),
                    wake: None,
                },
                cap,
                shift: cap.trailing_zeros(),
                max_record: crate::broadcast::largest_record(cap),
                aux: offset(aux),
                history,
                hist_at: offset(hist_at),
                hist_len: crate::broadcast::index_len(history),
            };
            ModelRing {
                mem: LoomMem::zeroed(offset(hist_at + 8 * crate::broadcast::index_len(history))),
                g,
            }
        }

        /// Attaches the publisher (a successor walks what a predecessor committed).
        pub fn publisher(&self) -> ModelPublisher {
            // SAFETY: the model memory holds every word of the geometry.
            ModelPublisher(
                unsafe { PublisherCore::attach(self.mem.clone(), self.g) }.expect("honest ring"),
            )
        }

        /// Joins subscriber `index` (0 or 1).
        pub fn subscriber(&self, index: u64, tethered: bool, start: StartAt) -> ModelSubscriber {
            assert!(index < 2);
            // SAFETY: as in `publisher`; the index has a cursor line.
            ModelSubscriber(unsafe {
                SubscriberCore::join(self.mem.clone(), self.g, index, tethered, start)
            })
        }

        /// Subscriber `index` leaves (or is repaired after its death).
        pub fn leave(&self, index: u64) {
            assert!(index < 2);
            // SAFETY: as in `subscriber`.
            unsafe { leave(&self.mem, &self.g, index) };
        }
    }

    impl ModelPublisher {
        /// See [`crate::Producer::try_push`].
        pub fn try_push(&mut self, payload: &[u8]) -> Result<(), PushError> {
            self.0.try_push(payload)
        }
        /// See [`crate::Producer::set_slow_subscribers`].
        pub fn set_slow_subscribers(&mut self, policy: SlowSubscribers) {
            self.0.policy = policy;
        }
        /// Its private state, for a model's diagnostics.
        pub fn state(&self) -> String {
            self.0.state()
        }
    }

    impl ModelSubscriber {
        /// See [`crate::Consumer::try_pop_vec`].
        pub fn try_pop_vec(&mut self, buf: &mut Vec<u8>) -> Result<usize, PopError> {
            self.0.try_pop_vec(buf)
        }
        /// Whether it left probation.
        pub fn is_confirmed(&self) -> bool {
            self.0.mode == Mode::Confirmed
        }
        /// Whether it is (still) tethered.
        pub fn is_tethered(&self) -> bool {
            self.0.mode != Mode::Untethered
        }
        /// The sequence number of the next message it reads.
        pub fn sequence(&self) -> u64 {
            self.0.cursor().1
        }
        /// The position it reads next.
        pub fn position(&self) -> u64 {
            self.0.cursor().0
        }
    }
}

/// The MPMC core over loom memory.
pub mod mpmc {
    use super::{LoomMem, Memory, Ordering};
    use crate::endpoint::{ReadCore, WriteCore};
    use crate::error::{PopError, PushError};
    use crate::mpmc::core::{Core, Geometry, Side};
    use crate::mpmc::{slot_stride, SLOT_HEADER};
    use crate::ring::Words;

    /// Where a model ring keeps the producers' and the consumers' roster words (its first 64
    /// bytes: the hints at 0 and 8, the sole words at 16 and 24).
    const ROSTER_WORDS: [usize; 2] = [32, 40];

    /// An endpoint over loom memory.
    pub struct ModelEndpoint(Core<LoomMem>, LoomMem, u64);

    /// A ring of `slots` slots of `slot_size` bytes in loom memory, and a factory of endpoints.
    pub struct ModelRing {
        mem: LoomMem,
        g: Geometry,
    }

    impl ModelRing {
        /// A fresh ring.
        pub fn new(slots: u64, slot_size: u64) -> Self {
            Self::build(slots, slot_size, false, false)
        }

        /// A fresh ring with sole words (layout 1.6, PROTOCOL §5.7): an endpoint that
        /// [enters](ModelEndpoint::enter_write) a role first is alone in it until another
        /// enters.
        pub fn new_sole(slots: u64, slot_size: u64) -> Self {
            Self::build(slots, slot_size, true, false)
        }

        /// A fresh ring with reclaimable sole words (layout 1.8, PROTOCOL §5.7 "Reclaim"):
        /// the endpoint left alone in a shared role's roster takes the word back. Endpoints
        /// [register](ModelEndpoint::register_write) in a model roster (tags 1..=62).
        pub fn new_reclaim(slots: u64, slot_size: u64) -> Self {
            Self::build(slots, slot_size, true, true)
        }

        fn build(slots: u64, slot_size: u64, sole: bool, reclaim: bool) -> Self {
            let stride = slot_stride(slot_size);
            let g = Geometry {
                words: Words {
                    tail: 0,
                    head: 8,
                    data: 64,
                    wake: None,
                },
                slots,
                slot_size,
                stride,
                len_off: 8,
                payload_off: crate::conv::offset(SLOT_HEADER),
                limit: 0,
                sole: sole.then_some([16, 24]),
                reclaim: reclaim.then_some([ROSTER_WORDS[0], ROSTER_WORDS[1]]),
            };
            let mem = LoomMem::zeroed(64 + crate::conv::offset(slots * stride));
            // SAFETY: the model memory holds the hints and the slots; nothing else uses it yet.
            unsafe { Core::initialize(&mem, &g) };
            ModelRing { mem, g }
        }

        /// An endpoint with tag `tag` (1..=255).
        pub fn endpoint(&self, tag: u64) -> ModelEndpoint {
            // SAFETY: as in `new`.
            ModelEndpoint(
                unsafe { Core::new(self.mem.clone(), self.g, tag) },
                self.mem.clone(),
                tag,
            )
        }
    }

    impl ModelEndpoint {
        /// See [`crate::Producer::try_push`].
        pub fn try_push(&mut self, payload: &[u8]) -> Result<(), PushError> {
            self.0.try_push(payload)
        }
        /// See [`crate::Producer::try_push_all`].
        pub fn try_push_all(&mut self, records: &[&[u8]]) -> Result<(), PushError> {
            self.0.try_push_all(records)
        }
        /// See [`crate::Producer::try_push_batch`].
        pub fn try_push_batch(&mut self, records: &[&[u8]]) -> Result<usize, PushError> {
            self.0.try_push_batch(records)
        }
        /// See [`crate::Consumer::try_pop_vec`].
        pub fn try_pop_vec(&mut self, buf: &mut Vec<u8>) -> Result<usize, PopError> {
            self.0.try_pop_vec(buf)
        }
        /// [`crate::Consumer::try_pop_vec`] as the endpoint runs it: a read that stops at a
        /// message being written (M17) waits for it (here: yields, as loom needs of a spin
        /// loop) instead of reporting `Empty`.
        pub fn try_pop_vec_settled(&mut self, buf: &mut Vec<u8>) -> Result<usize, PopError> {
            loop {
                match self.0.try_pop_vec(buf) {
                    Err(PopError::Empty) if self.0.in_flight() => loom::thread::yield_now(),
                    other => return other,
                }
            }
        }
        /// Claims a position for writing and stops there: a producer that dies holding it.
        pub fn claim_write_and_die(&mut self) -> Option<u64> {
            self.0.claim_write().ok()
        }
        /// Claims the next committed position for reading and stops there: a consumer that
        /// dies holding it.
        pub fn claim_read_and_die(&mut self) -> Option<u64> {
            self.0.claim_read().ok().flatten()
        }
        /// Releases every slot claimed by the dead endpoint `tag` (the reaper's repair).
        pub fn repair_claims(&mut self, tag: u64) -> usize {
            self.0.repair_claims(tag)
        }
        /// The consumers' head hint (a Relaxed load, as an observer's).
        pub fn head_hint(&self) -> u64 {
            ReadCore::position(&self.0)
        }
        /// The producers' tail hint (a Relaxed load, as an observer's).
        pub fn tail_hint(&self) -> u64 {
            WriteCore::position(&self.0)
        }
        /// Registers this endpoint as a producer in the ring's sole word (PROTOCOL §5.7, M22),
        /// as attaching a producer does.
        pub fn enter_write(&mut self) {
            self.0.enter(Side::Write);
        }
        /// Registers this endpoint as a consumer in the ring's sole word (M22).
        pub fn enter_read(&mut self) {
            self.0.enter(Side::Read);
        }
        /// Gives the producers' sole word back if this endpoint holds it (M24), as detaching
        /// does.
        pub fn leave_write(&mut self) {
            self.0.leave(Side::Write);
        }
        /// Registers this endpoint as a producer as attaching does: its bit in the model
        /// roster (L5), then the sole word (M22).
        pub fn register_write(&mut self) {
            self.roster(Side::Write, true);
            self.0.enter(Side::Write);
        }
        /// Registers this endpoint as a consumer (L5, M22).
        pub fn register_read(&mut self) {
            self.roster(Side::Read, true);
            self.0.enter(Side::Read);
        }
        /// Detaches this producer as detaching does: M24, then its roster bit cleared (L7).
        pub fn unregister_write(&mut self) {
            self.0.leave(Side::Write);
            self.roster(Side::Write, false);
        }
        /// Detaches this consumer (M24, L7).
        pub fn unregister_read(&mut self) {
            self.0.leave(Side::Read);
            self.roster(Side::Read, false);
        }
        /// The sole word of producers (a `SeqCst` load, as an observer's after the threads
        /// joined).
        pub fn producers_word(&self) -> u64 {
            // SAFETY: the model ring's sole words are in its first 64 bytes.
            unsafe { self.1.load(16, Ordering::SeqCst) }
        }
        /// Sets (L5, `SeqCst`) or clears (L7, `Release`) this endpoint's bit in the roster of
        /// `side`, with the "ever" bit, as registration does.
        fn roster(&self, side: Side, on: bool) {
            let off = ROSTER_WORDS[side as usize];
            let bit = 1u64 << (self.2 - 1);
            // SAFETY: the roster words are in the model ring's first 64 bytes.
            unsafe {
                if on {
                    self.1
                        .fetch_or(off, crate::liveness::EVER | bit, Ordering::SeqCst);
                } else {
                    self.1.fetch_and(off, !bit, Ordering::Release);
                }
            }
        }
        /// The audit a consumer that found the ring empty runs at a probe.
        pub fn audit_read(&self) -> super::Audit {
            self.0.audit_read()
        }
        /// The audit a producer that found the ring full runs at a probe.
        pub fn audit_write(&self) -> super::Audit {
            self.0.audit_write()
        }
    }
}

/// Registration, unregistration, probing and reaping (PROTOCOL §7) over a model endpoint table
/// and a model process table.
pub mod liveness {
    use super::{LoomMem, Memory, Ordering};
    use crate::conv::offset;
    use crate::endpoint::Role;
    use crate::layout::DATA_OFFSET;
    use crate::liveness::{
        roster_off, state_off, LockTry, RegisterError, Registration, State, Vitals,
    };

    /// Entries the model's table has (the protocol does not depend on the number).
    pub const ENTRIES: u64 = 3;
    /// Pids the model's process table knows (1..PIDS).
    const PIDS: usize = 8;

    /// A model segment (the roster and the endpoint table), a model process table (process
    /// `pid` lives while its word holds its start time, non-zero) and a model lock table (entry
    /// `i`'s lock is held while its word holds the holder's pid; a process's locks go when it
    /// dies, as OFD locks do).
    #[derive(Clone)]
    pub struct World {
        mem: LoomMem,
        procs: LoomMem,
        locks: LoomMem,
    }

    impl Default for World {
        fn default() -> Self {
            World::new()
        }
    }

    impl World {
        /// An empty table; no process lives.
        pub fn new() -> Self {
            World {
                mem: LoomMem::zeroed(offset(DATA_OFFSET)),
                procs: LoomMem::zeroed(PIDS * 8),
                locks: LoomMem::zeroed(offset(ENTRIES * 8)),
            }
        }

        /// Starts process `pid` (1..8), with start time `pid * 100`.
        pub fn spawn(&self, pid: u32) -> Process {
            // SeqCst: the kernel's process table is strongly ordered.
            // SAFETY: `pid < PIDS` words are in the process table.
            unsafe {
                self.procs
                    .store(word(pid), u64::from(pid) * 100, Ordering::SeqCst);
            }
            Process {
                world: self.clone(),
                pid,
                die_at: None,
            }
        }

        /// The decoded state word of entry `index`.
        pub fn entry(&self, index: u64) -> (Option<Role>, u64, u32) {
            // SAFETY: the table is in `mem`.
            let st = State::decode(unsafe { self.mem.load(state_off(index), Ordering::SeqCst) });
            (st.held(), st.phase, st.pid)
        }

        /// The roster bitmap of `role`.
        pub fn roster(&self, role: Role) -> u64 {
            // SAFETY: the roster is in `mem`.
            unsafe { self.mem.load(roster_off(role), Ordering::SeqCst) }
        }
    }

    fn lock_word(index: u64) -> usize {
        assert!(index < ENTRIES, "model entries are 0..{ENTRIES}");
        offset(index * 8)
    }

    fn word(pid: u32) -> usize {
        assert!((1..PIDS as u32).contains(&pid), "model pids are 1..{PIDS}");
        offset(u64::from(pid) * 8)
    }

    /// A model process: its pid, and the step at which it dies (if any).
    #[derive(Clone)]
    pub struct Process {
        world: World,
        pid: u32,
        die_at: Option<&'static str>,
    }

    /// What a model endpoint holds.
    pub struct Endpoint {
        reg: Registration,
    }

    impl Endpoint {
        /// Its tag.
        pub fn tag(&self) -> u64 {
            self.reg.tag()
        }

        /// Its registration generation.
        pub fn gen(&self) -> u16 {
            self.reg.gen()
        }
    }

    impl Process {
        /// The same process, dying when it reaches the protocol step `step` (a crash point
        /// name: `register.entry`, `register.claimed`, `register.locked`, `register.active`,
        /// `unregister.start`, `unregister.leaving`, `unregister.unlisted`,
        /// `unregister.cleared`, `reap.claimed`, `reap.repaired`, `reap.unlisted`).
        pub fn dying_at(mut self, step: &'static str) -> Self {
            self.die_at = Some(step);
            self
        }

        /// Its pid.
        pub fn pid(&self) -> u32 {
            self.pid
        }

        /// The process dies: its locks are released and its table word goes to 0 (after
        /// everything it did).
        pub fn die(&self) {
            for index in 0..ENTRIES {
                // SeqCst: the kernel's lock table is strongly ordered, and a prober that finds
                // the lock gone also finds everything the process did before.
                // SAFETY: the lock words are in `locks`.
                let _ = unsafe {
                    self.world.locks.compare_exchange(
                        lock_word(index),
                        u64::from(self.pid),
                        0,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    )
                };
            }
            // SeqCst: as in `spawn`; a prober that finds it dead also finds everything it did
            // before (a process's death is observed through the kernel, a full barrier).
            // SAFETY: as in `spawn`.
            unsafe { self.world.procs.store(word(self.pid), 0, Ordering::SeqCst) };
        }

        /// Registers an endpoint of `role`; `None` if the table is full or the process died
        /// on the way.
        pub fn register(&self, role: Role) -> Option<Endpoint> {
            // SAFETY: `mem` holds the roster and the table.
            let registered =
                unsafe { Registration::register(&self.world.mem, self, role, &mut |_, _, _| {}) };
            match registered {
                Ok((reg, _)) => Some(Endpoint { reg }),
                Err(RegisterError::Full | RegisterError::Stopped) => None,
            }
        }

        /// Detaches `ep` (or dies on the way).
        pub fn unregister(&self, mut ep: Endpoint) {
            // SAFETY: as in `register`.
            unsafe { ep.reg.unregister(&self.world.mem, self) };
        }

        /// Probes every other entry through `ep`, reaping dead ones; returns the registrations
        /// repaired, as `(tag, generation)`.
        pub fn probe(&self, ep: &Endpoint) -> Vec<(u64, u16)> {
            let mut repaired = Vec::new();
            // SAFETY: as in `register`.
            unsafe {
                ep.reg.probe(&self.world.mem, self, &mut |tag, gen, _| {
                    repaired.push((tag, gen))
                })
            };
            repaired
        }
    }

    impl Vitals for Process {
        fn pid(&self) -> u32 {
            self.pid
        }

        fn pidns(&self) -> u64 {
            1
        }

        fn start_time(&self, pid: u32) -> Option<u64> {
            // SeqCst: as in `World::spawn`.
            // SAFETY: as in `spawn`.
            let t = unsafe { self.world.procs.load(word(pid), Ordering::SeqCst) };
            (t != 0).then_some(t)
        }

        fn pid_exists(&self, pid: u32) -> Option<bool> {
            Some(self.start_time(pid).is_some())
        }

        fn take_lock(&self, index: u64) -> LockTry {
            // SeqCst: as in `die`.
            // SAFETY: the lock words are in `locks`.
            let taken = unsafe {
                self.world.locks.compare_exchange(
                    lock_word(index),
                    0,
                    u64::from(self.pid),
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                )
            };
            match taken {
                Ok(_) => LockTry::Taken(None),
                Err(_) => LockTry::Busy,
            }
        }

        fn release_lock(&self, index: u64, _file: Option<std::fs::File>) {
            // SeqCst: as in `die`.
            // SAFETY: as in `take_lock`.
            let _ = unsafe {
                self.world.locks.compare_exchange(
                    lock_word(index),
                    u64::from(self.pid),
                    0,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                )
            };
        }

        fn lock_held(&self, index: u64) -> Option<bool> {
            // An RMW, not a load: loom models SeqCst loads as Acquire ones, which may read an
            // older value, while the kernel's lock table (behind its own lock) answers with
            // the latest; an RMW reads the latest value in modification order.
            // SAFETY: as in `take_lock`.
            Some(
                unsafe {
                    self.world
                        .locks
                        .fetch_or(lock_word(index), 0, Ordering::SeqCst)
                } != 0,
            )
        }

        fn pause(&self) {
            loom::thread::yield_now();
        }

        fn table_len(&self) -> u64 {
            ENTRIES
        }

        fn step(&self, name: &'static str) -> bool {
            self.die_at != Some(name)
        }
    }
}

/// The sleep/notify protocol (N1–N2 against P1–P6) over loom memory whose futex is a loom
/// condition variable: a lost wake-up leaves the sleeper blocked for ever, which loom reports
/// as a deadlock.
pub mod wait {
    use super::{LoomMem, Memory, Ordering};
    use crate::wait::{notify, sleep_once, Barrier, Direction, Wake};

    const WAKE: Wake = Wake {
        data_seq: 8,
        data_waiters: 16,
        space_seq: 24,
        space_waiters: 32,
        data_bells: 40,
        space_bells: 48,
        bell_ids: 56,
        entries: 2,
        barrier: Barrier::Fence,
    };
    const DATA: usize = 0;

    /// A word that a publisher sets and a sleeper waits for.
    #[derive(Clone)]
    pub struct Doorbell {
        mem: LoomMem,
        wake: Wake,
    }

    impl Default for Doorbell {
        fn default() -> Self {
            Doorbell::new()
        }
    }

    impl Doorbell {
        /// A fresh doorbell (the word reads 0).
        pub fn new() -> Self {
            Doorbell::with(Barrier::Fence)
        }

        /// A fresh doorbell of a membarrier-mode ring (PROTOCOL §6.3) whose publisher is
        /// registered (light: no N1 fence). The publisher thread must end with
        /// [`Doorbell::retire`].
        pub fn membarrier() -> Self {
            crate::membarrier::model::register();
            Doorbell::with(Barrier::Membarrier { light: true })
        }

        /// As [`Doorbell::membarrier`], but a publisher that is not registered (keeps N1).
        pub fn membarrier_unregistered() -> Self {
            Doorbell::with(Barrier::Membarrier { light: false })
        }

        /// As [`Doorbell::membarrier`], but sleepers skip P3m: the models must fail.
        pub fn unsound() -> Self {
            crate::membarrier::model::register();
            Doorbell::with(Barrier::Unsound)
        }

        fn with(barrier: Barrier) -> Self {
            Doorbell {
                mem: LoomMem::zeroed(192),
                wake: Wake { barrier, ..WAKE },
            }
        }

        /// The end of the publisher thread of a membarrier-mode model (a full barrier, as a
        /// thread switched out goes through).
        pub fn retire(&self) {
            if self.light() {
                crate::membarrier::model::retire();
            }
        }

        /// Whether the publisher is a registered one (runs the interrupt points).
        fn light(&self) -> bool {
            matches!(
                self.wake.barrier,
                Barrier::Membarrier { light: true } | Barrier::Unsound
            )
        }

        /// Publishes `v` (a Release store, as a commit is), then runs N1–N2.
        pub fn publish(&self, v: u64) {
            if self.light() {
                // An interrupt may land before the store too.
                crate::membarrier::model::ipi_point();
            }
            // SAFETY: the words are in the model memory.
            unsafe {
                // Release: as R1/M5 (the publication a sleeper waits for).
                self.mem.store(DATA, v, Ordering::Release);
                notify(&self.mem, self.wake, Direction::Data);
            }
        }

        /// Waits as an asynchronous waiter of entry `index` does (§6.1), until the word reads
        /// `v`: check; arm (B1–B2); re-check (B3), and if that succeeds disarm (B4) and
        /// return; else block on the bell (a model of polling its descriptor), take the
        /// datagram, and start over. A lost ring blocks for ever (loom: deadlock). Returns
        /// how many times it parked.
        pub fn wait_async(&self, v: u64, index: u64) -> usize {
            let id = index + 1;
            let bells = WAKE.data_bells;
            let word = WAKE.bell_ids + crate::conv::offset(index * crate::layout::ENDPOINT_SIZE);
            // B0: the bell id, Relaxed (published by B1).
            // SAFETY: the words are in the model memory.
            unsafe { self.mem.store(word, id, Ordering::Relaxed) };
            // Acquire: as A2/M8 (the observing load).
            // SAFETY: as above.
            let check = || unsafe { self.mem.load(DATA, Ordering::Acquire) } == v;
            let mut parked = 0;
            loop {
                if check() {
                    return parked;
                }
                // SAFETY: as above.
                unsafe { crate::bell::arm(&self.mem, bells, index, self.wake.barrier) };
                if check() {
                    // SAFETY: as above.
                    if !unsafe { crate::bell::disarm(&self.mem, bells, index) } {
                        // A notifier took the bit: its datagram must come (or the model
                        // deadlocks); take it, as a later poll would.
                        self.mem.await_bell(id);
                    }
                    return parked;
                }
                parked += 1;
                self.mem.await_bell(id);
            }
        }

        /// Datagrams for entry `index`'s bell not yet taken.
        pub fn pending(&self, index: u64) -> usize {
            self.mem.pending_bells(index + 1)
        }

        /// Waits, sleeping on the futex between checks (P1–P6, no timeout), until the word
        /// reads `v`.
        pub fn wait_for(&self, v: u64) {
            // Acquire: as A2/M8 (the observing load).
            // SAFETY: the words are in the model memory.
            let check = || (unsafe { self.mem.load(DATA, Ordering::Acquire) } == v).then_some(());
            while check().is_none() {
                // SAFETY: as above.
                if unsafe { sleep_once(&self.mem, self.wake, Direction::Data, None, check) }
                    .is_some()
                {
                    return;
                }
            }
        }
    }
}
