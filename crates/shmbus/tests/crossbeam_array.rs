//! crossbeam-channel's `tests/array.rs` (the tests of `bounded(n)`), ported to shmbus for both
//! flavors: `shmbus::channel::<T>().capacity(n)` (SPSC) and `.mpmc()`. A literal port: the
//! same capacities, counts, sleeps and assertions, first with both ends on threads
//! (`in_process()` channels), then with the receiving end in a spawned child process that
//! opens the channel by name (this test binary re-spawned, as `cross_process.rs` does).
//! The scenarios are crossbeam-channel's (MIT OR Apache-2.0); the code is written for shmbus.
//!
//! What had to change everywhere: `send`, `recv` and the `try_`/`timeout` forms take
//! `&mut self`, so where crossbeam shares `&s`/`&r` between scoped threads, each thread gets
//! the handle itself (or `&mut` to it); crossbeam's `SendError(v)` is
//! `SendError::Disconnected(v)` and `RecvError` is `RecvError::Disconnected`. MPMC handles are
//! `Clone`, each clone an endpoint of its own; SPSC handles are not, so the tests with several
//! senders or receivers are MPMC only. In the process versions, each side's timeline starts at
//! a handshake (the child says it has attached), and where crossbeam orders two threads by
//! program order alone, the two processes order themselves with numbered steps on a pair of
//! link channels (`Link`).
//!
//! | crossbeam test | here |
//! |---|---|
//! | `smoke` | ported: threads, process |
//! | `capacity` | ported: threads, process (the child opens with no capacity and reads it from the segment) |
//! | `len_empty_full` | ported: threads, process (the two sides in lockstep) |
//! | `try_recv` | ported: threads, process |
//! | `recv` | ported: threads, process |
//! | `recv_timeout` | ported: threads, process |
//! | `try_send` | ported: threads, process |
//! | `send` | ported: threads, process (the child keeps its receiver until the parent's last send, as crossbeam's scope does) |
//! | `send_timeout` | ported: threads, process |
//! | `send_after_disconnect` | ported: threads, process |
//! | `recv_after_disconnect` | ported: threads, process |
//! | `len` | ported: threads, process |
//! | `disconnect_wakes_sender` | ported: threads, process |
//! | `disconnect_wakes_receiver` | ported: threads, process |
//! | `spsc` | ported: threads, process |
//! | `mpmc` | ported, MPMC only (4 senders, 4 receivers): threads, process (the 4 receivers in the child) |
//! | `stress_oneshot` | ported: threads; process adapted: the child opens each of the 10 000 channels by name as the parent creates it, and acknowledges each message so that the parent may drop (unlink) it |
//! | `stress_iter` | ported: threads, process (the spawned thread's side, request sender and response receiver, in the child) |
//! | `stress_timeout_two_threads` | ported: threads, process |
//! | `drops` | adapted: a channel carries encodings, not values. A send drops its argument once encoded, a receive makes a new value, and a channel dropped with messages in it drops no value (it never decodes them): the counts asserted are those. Threads, process (each side counts its own drops) |
//! | `linearizable` | ported, MPMC only (4 threads each sending and receiving): threads; process adapted: 2 of the 4 workers in each process |
//! | `fairness` | ported with `shmbus::select!`, in `select_parts` |
//! | `fairness_duplicates` | ported with `shmbus::select!`, in `select_parts` (five `recv(r)` arms on one receiver: with `&mut` receivers, five MPMC clones) |
//! | `recv_in_send` | ported with `shmbus::select!`, in `select_parts` |
//! | `channel_through_channel` | adapted: a `Receiver` cannot be encoded, so the next channel's *name* goes through the channel and the receiver opens it; the creator keeps the name, the opener unlinks it. Threads, process |
//! | `panic_on_drop` | not applicable: a channel holds encoded bytes, never values, so no message's destructor runs when a channel is dropped (see `drops`) |
//! | `zero_sender_revival` | adapted: crossbeam's `r.new_sender()` is `channel.sender()` (a new sender attached to the channel): threads, process |
//!
//! Beyond `array.rs`: `capacity(0)`, crossbeam's zero-capacity (rendezvous) flavor, is refused
//! with `Error::Config` (`capacity_zero` below).
//!

mod common;

use common::{role, ChildGuard, CHANNEL};
use serde::{Deserialize, Serialize};
use shmbus::codec::{Bincode, Codec};
use shmbus::flavor::{Flavor, Mpmc};
use shmbus::{
    Channel, ChannelBuilder, Receiver, RecvError, RecvTimeoutError, SendError, SendTimeoutError,
    Sender, TryRecvError, TrySendError,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// How long a child process, or a wait on the link, may take before the test fails.
const LIMIT: Duration = Duration::from_secs(60);

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// crossbeam's `bounded::<T>(cap)` as a builder of flavor `F`.
fn builder<T, F: Flavor>(cap: u64) -> ChannelBuilder<T, F>
where
    Bincode: Codec<T>,
{
    ChannelBuilder::new().capacity(cap)
}

/// crossbeam's `bounded::<T>(cap)`, in this process.
fn bounded<T, F: Flavor>(cap: u64) -> (Sender<T, F>, Receiver<T, F>)
where
    Bincode: Codec<T>,
{
    let ch = builder::<T, F>(cap).in_process().unwrap();
    (ch.sender().unwrap(), ch.receiver().unwrap())
}

/// `mod NAME` with a test per flavor, `spsc` and `mpmc`, that runs `NAME::<Flavor>()`.
macro_rules! thread_tests {
    ($name:ident) => {
        mod $name {
            #[test]
            fn spsc() {
                super::$name::<shmbus::flavor::Spsc>();
            }
            #[test]
            fn mpmc() {
                super::$name::<shmbus::flavor::Mpmc>();
            }
        }
    };
}

/// `mod NAME` with a test per flavor that runs `NAME::<Flavor>(full test name)`: the name is
/// what the child process is re-spawned to run.
macro_rules! process_tests {
    ($name:ident) => {
        mod $name {
            #[test]
            fn spsc() {
                super::$name::<shmbus::flavor::Spsc>(concat!(
                    "process::",
                    stringify!($name),
                    "::spsc"
                ));
            }
            #[test]
            fn mpmc() {
                super::$name::<shmbus::flavor::Mpmc>(concat!(
                    "process::",
                    stringify!($name),
                    "::mpmc"
                ));
            }
        }
    };
}

/// The two sides of crossbeam's tests whose threads are ordered by their sleeps alone: each
/// side as a function of its own end, run on two threads (`threads`) or with the receiving
/// side in a child process (`process`). Each side drops its end when it returns, as
/// crossbeam's `move` closures do.
mod sides {
    use super::*;

    pub mod try_recv {
        use super::*;
        pub const CAP: u64 = 100;
        pub fn receiver<F: Flavor>(mut r: Receiver<i32, F>) {
            assert_eq!(r.try_recv(), Err(TryRecvError::Empty));
            thread::sleep(ms(1500));
            assert_eq!(r.try_recv(), Ok(7));
            thread::sleep(ms(500));
            assert_eq!(r.try_recv(), Err(TryRecvError::Disconnected));
            drop(r);
        }
        pub fn sender<F: Flavor>(mut s: Sender<i32, F>) {
            thread::sleep(ms(1000));
            s.send(7).unwrap();
            drop(s);
        }
    }

    pub mod recv {
        use super::*;
        pub const CAP: u64 = 100;
        pub fn receiver<F: Flavor>(mut r: Receiver<i32, F>) {
            assert_eq!(r.recv(), Ok(7));
            thread::sleep(ms(1000));
            assert_eq!(r.recv(), Ok(8));
            thread::sleep(ms(1000));
            assert_eq!(r.recv(), Ok(9));
            assert_eq!(r.recv(), Err(RecvError::Disconnected));
            drop(r);
        }
        pub fn sender<F: Flavor>(mut s: Sender<i32, F>) {
            thread::sleep(ms(1500));
            s.send(7).unwrap();
            s.send(8).unwrap();
            s.send(9).unwrap();
            drop(s);
        }
    }

    pub mod recv_timeout {
        use super::*;
        pub const CAP: u64 = 100;
        pub fn receiver<F: Flavor>(mut r: Receiver<i32, F>) {
            assert_eq!(r.recv_timeout(ms(1000)), Err(RecvTimeoutError::Timeout));
            assert_eq!(r.recv_timeout(ms(1000)), Ok(7));
            assert_eq!(
                r.recv_timeout(ms(1000)),
                Err(RecvTimeoutError::Disconnected)
            );
            drop(r);
        }
        pub fn sender<F: Flavor>(mut s: Sender<i32, F>) {
            thread::sleep(ms(1500));
            s.send(7).unwrap();
            drop(s);
        }
    }

    pub mod try_send {
        use super::*;
        pub const CAP: u64 = 1;
        pub fn sender<F: Flavor>(mut s: Sender<i32, F>) {
            assert_eq!(s.try_send(1), Ok(()));
            assert_eq!(s.try_send(2), Err(TrySendError::Full(2)));
            thread::sleep(ms(1500));
            assert_eq!(s.try_send(3), Ok(()));
            thread::sleep(ms(500));
            assert_eq!(s.try_send(4), Err(TrySendError::Disconnected(4)));
            drop(s);
        }
        pub fn receiver<F: Flavor>(mut r: Receiver<i32, F>) {
            thread::sleep(ms(1000));
            assert_eq!(r.try_recv(), Ok(1));
            assert_eq!(r.try_recv(), Err(TryRecvError::Empty));
            assert_eq!(r.recv(), Ok(3));
            drop(r);
        }
    }

    /// crossbeam's `send` borrows both ends (they outlive the scope): the sides take `&mut`.
    pub mod send {
        use super::*;
        pub const CAP: u64 = 1;
        pub fn sender<F: Flavor>(s: &mut Sender<i32, F>) {
            s.send(7).unwrap();
            thread::sleep(ms(1000));
            s.send(8).unwrap();
            thread::sleep(ms(1000));
            s.send(9).unwrap();
            thread::sleep(ms(1000));
            s.send(10).unwrap();
        }
        pub fn receiver<F: Flavor>(r: &mut Receiver<i32, F>) {
            thread::sleep(ms(1500));
            assert_eq!(r.recv(), Ok(7));
            assert_eq!(r.recv(), Ok(8));
            assert_eq!(r.recv(), Ok(9));
        }
    }

    pub mod send_timeout {
        use super::*;
        pub const CAP: u64 = 2;
        pub fn sender<F: Flavor>(mut s: Sender<i32, F>) {
            assert_eq!(s.send_timeout(1, ms(1000)), Ok(()));
            assert_eq!(s.send_timeout(2, ms(1000)), Ok(()));
            assert_eq!(
                s.send_timeout(3, ms(500)),
                Err(SendTimeoutError::Timeout(3))
            );
            thread::sleep(ms(1000));
            assert_eq!(s.send_timeout(4, ms(1000)), Ok(()));
            thread::sleep(ms(1000));
            assert_eq!(s.send(5), Err(SendError::Disconnected(5)));
            drop(s);
        }
        pub fn receiver<F: Flavor>(mut r: Receiver<i32, F>) {
            thread::sleep(ms(1000));
            assert_eq!(r.recv(), Ok(1));
            thread::sleep(ms(1000));
            assert_eq!(r.recv(), Ok(2));
            assert_eq!(r.recv(), Ok(4));
            drop(r);
        }
    }

    pub mod disconnect_wakes_sender {
        use super::*;
        pub const CAP: u64 = 1;
        pub fn sender<F: Flavor>(mut s: Sender<(), F>) {
            assert_eq!(s.send(()), Ok(()));
            assert_eq!(s.send(()), Err(SendError::Disconnected(())));
            drop(s);
        }
        pub fn receiver<F: Flavor>(r: Receiver<(), F>) {
            thread::sleep(ms(1000));
            drop(r);
        }
    }

    pub mod disconnect_wakes_receiver {
        use super::*;
        pub const CAP: u64 = 1;
        pub fn receiver<F: Flavor>(mut r: Receiver<(), F>) {
            assert_eq!(r.recv(), Err(RecvError::Disconnected));
            drop(r);
        }
        pub fn sender<F: Flavor>(s: Sender<(), F>) {
            thread::sleep(ms(1000));
            drop(s);
        }
    }

    pub mod spsc {
        use super::*;
        pub const CAP: u64 = 3;
        const COUNT: usize = 100_000;
        pub fn receiver<F: Flavor>(mut r: Receiver<usize, F>) {
            for i in 0..COUNT {
                assert_eq!(r.recv(), Ok(i));
            }
            assert_eq!(r.recv(), Err(RecvError::Disconnected));
            drop(r);
        }
        pub fn sender<F: Flavor>(mut s: Sender<usize, F>) {
            for i in 0..COUNT {
                s.send(i).unwrap();
            }
            drop(s);
        }
    }

    /// crossbeam's `stress_timeout_two_threads` borrows both ends: the sides take `&mut`.
    pub mod stress_timeout_two_threads {
        use super::*;
        pub const CAP: u64 = 2;
        const COUNT: usize = 100;
        pub fn sender<F: Flavor>(s: &mut Sender<usize, F>) {
            for i in 0..COUNT {
                if i % 2 == 0 {
                    thread::sleep(ms(50));
                }
                loop {
                    if let Ok(()) = s.send_timeout(i, ms(10)) {
                        break;
                    }
                }
            }
        }
        pub fn receiver<F: Flavor>(r: &mut Receiver<usize, F>) {
            for i in 0..COUNT {
                if i % 2 == 0 {
                    thread::sleep(ms(50));
                }
                loop {
                    if let Ok(x) = r.recv_timeout(ms(10)) {
                        assert_eq!(x, i);
                        break;
                    }
                }
            }
        }
    }

    /// `drops`: each flavor counts into a counter of its own, since the two run at once.
    pub static DROPS: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

    /// crossbeam's `DropCounter`, carrying the index of its flavor's counter.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    pub struct DropCounter(pub usize);

    impl Drop for DropCounter {
        fn drop(&mut self) {
            DROPS[self.0].fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The counter of flavor `F`.
    pub fn counter<F: Flavor>() -> usize {
        usize::from(<F as Flavor>::NAME == "mpmc")
    }

    pub const DROPS_RUNS: usize = 100;
    pub const DROPS_STEPS: u64 = 10_000;

    /// The random numbers of `drops` (crossbeam uses `fastrand`): the seed is printed, and
    /// `SHMBUS_TEST_SEED` replays it.
    pub fn rng() -> shmbus_testkit::rng::Rng {
        let seed = shmbus_testkit::rng::seed_from_env("SHMBUS_TEST_SEED");
        println!("drops: SHMBUS_TEST_SEED={seed}");
        shmbus_testkit::rng::Rng::new(seed)
    }
}

/// Both ends on threads, `in_process()` channels.
mod threads {
    use super::sides::{self, DropCounter, DROPS};
    use super::*;

    /// Runs a `sides` scenario on two threads.
    fn on_threads<T, F: Flavor>(cap: u64, sender: fn(Sender<T, F>), receiver: fn(Receiver<T, F>))
    where
        Bincode: Codec<T>,
    {
        let (s, r) = bounded::<T, F>(cap);
        thread::scope(|scope| {
            scope.spawn(move || receiver(r));
            scope.spawn(move || sender(s));
        });
    }

    fn smoke<F: Flavor>() {
        let (mut s, mut r) = bounded::<i32, F>(1);
        s.send(7).unwrap();
        assert_eq!(r.try_recv(), Ok(7));

        s.send(8).unwrap();
        assert_eq!(r.recv(), Ok(8));

        assert_eq!(r.try_recv(), Err(TryRecvError::Empty));
        assert_eq!(r.recv_timeout(ms(1000)), Err(RecvTimeoutError::Timeout));
    }
    thread_tests!(smoke);
    fn capacity<F: Flavor>() {
        for i in 1..10 {
            let (s, r) = bounded::<(), F>(i);
            assert_eq!(s.capacity(), Some(i as usize));
            assert_eq!(r.capacity(), Some(i as usize));
        }
    }
    thread_tests!(capacity);
    fn len_empty_full<F: Flavor>() {
        let (mut s, mut r) = bounded::<(), F>(2);

        assert_eq!(s.len(), 0);
        assert!(s.is_empty());
        assert!(!s.is_full());
        assert_eq!(r.len(), 0);
        assert!(r.is_empty());
        assert!(!r.is_full());

        s.send(()).unwrap();

        assert_eq!(s.len(), 1);
        assert!(!s.is_empty());
        assert!(!s.is_full());
        assert_eq!(r.len(), 1);
        assert!(!r.is_empty());
        assert!(!r.is_full());

        s.send(()).unwrap();

        assert_eq!(s.len(), 2);
        assert!(!s.is_empty());
        assert!(s.is_full());
        assert_eq!(r.len(), 2);
        assert!(!r.is_empty());
        assert!(r.is_full());

        r.recv().unwrap();

        assert_eq!(s.len(), 1);
        assert!(!s.is_empty());
        assert!(!s.is_full());
        assert_eq!(r.len(), 1);
        assert!(!r.is_empty());
        assert!(!r.is_full());
    }
    thread_tests!(len_empty_full);

    fn try_recv<F: Flavor>() {
        use sides::try_recv::{receiver, sender, CAP};
        on_threads::<i32, F>(CAP, sender, receiver);
    }
    thread_tests!(try_recv);

    fn recv<F: Flavor>() {
        use sides::recv::{receiver, sender, CAP};
        on_threads::<i32, F>(CAP, sender, receiver);
    }
    thread_tests!(recv);

    fn recv_timeout<F: Flavor>() {
        use sides::recv_timeout::{receiver, sender, CAP};
        on_threads::<i32, F>(CAP, sender, receiver);
    }
    thread_tests!(recv_timeout);

    fn try_send<F: Flavor>() {
        use sides::try_send::{receiver, sender, CAP};
        on_threads::<i32, F>(CAP, sender, receiver);
    }
    thread_tests!(try_send);

    fn send<F: Flavor>() {
        use sides::send::{receiver, sender, CAP};
        let (mut s, mut r) = bounded::<i32, F>(CAP);
        thread::scope(|scope| {
            scope.spawn(|| sender(&mut s));
            scope.spawn(|| receiver(&mut r));
        });
    }
    thread_tests!(send);

    fn send_timeout<F: Flavor>() {
        use sides::send_timeout::{receiver, sender, CAP};
        on_threads::<i32, F>(CAP, sender, receiver);
    }
    thread_tests!(send_timeout);

    fn send_after_disconnect<F: Flavor>() {
        let (mut s, r) = bounded::<i32, F>(100);

        s.send(1).unwrap();
        s.send(2).unwrap();
        s.send(3).unwrap();

        drop(r);

        assert_eq!(s.send(4), Err(SendError::Disconnected(4)));
        assert_eq!(s.try_send(5), Err(TrySendError::Disconnected(5)));
        assert_eq!(
            s.send_timeout(6, ms(500)),
            Err(SendTimeoutError::Disconnected(6))
        );
    }
    thread_tests!(send_after_disconnect);

    fn recv_after_disconnect<F: Flavor>() {
        let (mut s, mut r) = bounded::<i32, F>(100);

        s.send(1).unwrap();
        s.send(2).unwrap();
        s.send(3).unwrap();

        drop(s);

        assert_eq!(r.recv(), Ok(1));
        assert_eq!(r.recv(), Ok(2));
        assert_eq!(r.recv(), Ok(3));
        assert_eq!(r.recv(), Err(RecvError::Disconnected));
    }
    thread_tests!(recv_after_disconnect);
    fn len<F: Flavor>() {
        const COUNT: usize = 25_000;
        const CAP: usize = 1000;

        let (mut s, mut r) = bounded::<usize, F>(CAP as u64);

        assert_eq!(s.len(), 0);
        assert_eq!(r.len(), 0);

        for _ in 0..CAP / 10 {
            for i in 0..50 {
                s.send(i).unwrap();
                assert_eq!(s.len(), i + 1);
            }

            for i in 0..50 {
                r.recv().unwrap();
                assert_eq!(r.len(), 50 - i - 1);
            }
        }

        assert_eq!(s.len(), 0);
        assert_eq!(r.len(), 0);

        for i in 0..CAP {
            s.send(i).unwrap();
            assert_eq!(s.len(), i + 1);
        }

        for _ in 0..CAP {
            r.recv().unwrap();
        }

        assert_eq!(s.len(), 0);
        assert_eq!(r.len(), 0);

        thread::scope(|scope| {
            scope.spawn(|| {
                for i in 0..COUNT {
                    assert_eq!(r.recv(), Ok(i));
                    let len = r.len();
                    assert!(len <= CAP);
                }
            });

            scope.spawn(|| {
                for i in 0..COUNT {
                    s.send(i).unwrap();
                    let len = s.len();
                    assert!(len <= CAP);
                }
            });
        });

        assert_eq!(s.len(), 0);
        assert_eq!(r.len(), 0);
    }
    thread_tests!(len);

    fn disconnect_wakes_sender<F: Flavor>() {
        use sides::disconnect_wakes_sender::{receiver, sender, CAP};
        on_threads::<(), F>(CAP, sender, receiver);
    }
    thread_tests!(disconnect_wakes_sender);

    fn disconnect_wakes_receiver<F: Flavor>() {
        use sides::disconnect_wakes_receiver::{receiver, sender, CAP};
        on_threads::<(), F>(CAP, sender, receiver);
    }
    thread_tests!(disconnect_wakes_receiver);

    fn spsc<F: Flavor>() {
        use sides::spsc::{receiver, sender, CAP};
        on_threads::<usize, F>(CAP, sender, receiver);
    }
    thread_tests!(spsc);

    /// MPMC only: four senders and four receivers on one channel.
    #[test]
    fn mpmc() {
        const COUNT: usize = 25_000;
        const THREADS: usize = 4;

        let (s, r) = bounded::<usize, Mpmc>(3);
        let v = (0..COUNT).map(|_| AtomicUsize::new(0)).collect::<Vec<_>>();

        thread::scope(|scope| {
            for _ in 0..THREADS {
                let (mut r, v) = (r.clone(), &v);
                scope.spawn(move || {
                    for _ in 0..COUNT {
                        let n = r.recv().unwrap();
                        v[n].fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
            for _ in 0..THREADS {
                let mut s = s.clone();
                scope.spawn(move || {
                    for i in 0..COUNT {
                        s.send(i).unwrap();
                    }
                });
            }
        });

        for c in v {
            assert_eq!(c.load(Ordering::SeqCst), THREADS);
        }
    }

    fn stress_oneshot<F: Flavor>() {
        const COUNT: usize = 10_000;

        for _ in 0..COUNT {
            let (mut s, mut r) = bounded::<i32, F>(1);

            thread::scope(|scope| {
                scope.spawn(|| assert_eq!(r.recv(), Ok(0)));
                scope.spawn(|| s.send(0).unwrap());
            });
        }
    }
    thread_tests!(stress_oneshot);

    #[allow(clippy::explicit_iter_loop)] // crossbeam's `request_r.iter()`
    fn stress_iter<F: Flavor>() {
        const COUNT: usize = 100_000;

        let (mut request_s, mut request_r) = bounded::<(), F>(1);
        let (mut response_s, mut response_r) = bounded::<usize, F>(1);

        thread::scope(|scope| {
            scope.spawn(move || {
                let mut count = 0;
                loop {
                    for x in response_r.try_iter() {
                        count += x;
                        if count == COUNT {
                            return;
                        }
                    }
                    request_s.send(()).unwrap();
                }
            });

            for () in request_r.iter() {
                if response_s.send(1).is_err() {
                    break;
                }
            }
        });
    }
    thread_tests!(stress_iter);

    fn stress_timeout_two_threads<F: Flavor>() {
        use sides::stress_timeout_two_threads::{receiver, sender, CAP};
        let (mut s, mut r) = bounded::<usize, F>(CAP);
        thread::scope(|scope| {
            scope.spawn(|| sender(&mut s));
            scope.spawn(|| receiver(&mut r));
        });
    }
    thread_tests!(stress_timeout_two_threads);

    /// Adapted (see the table): crossbeam counts the values the channel holds and drops; a
    /// shmbus channel holds encodings, so a send drops its argument once encoded, each receive
    /// makes a new value (dropped here), and dropping the channel drops no value.
    fn drops<F: Flavor>() {
        let k = sides::counter::<F>();
        let mut rng = sides::rng();

        for _ in 0..sides::DROPS_RUNS {
            let steps = rng.below(sides::DROPS_STEPS) as usize;
            let additional = rng.below(50) as usize;

            DROPS[k].store(0, Ordering::SeqCst);
            let (mut s, mut r) = bounded::<DropCounter, F>(50);

            thread::scope(|scope| {
                scope.spawn(|| {
                    for _ in 0..steps {
                        r.recv().unwrap();
                    }
                });

                scope.spawn(|| {
                    for _ in 0..steps {
                        s.send(DropCounter(k)).unwrap();
                    }
                });
            });

            for _ in 0..additional {
                s.send(DropCounter(k)).unwrap();
            }

            // crossbeam: `steps` (only the received values). Here also every sent argument.
            assert_eq!(DROPS[k].load(Ordering::SeqCst), 2 * steps + additional);
            drop(s);
            drop(r);
            // crossbeam: `steps + additional` (the channel dropped what it held). Here the
            // channel held bytes: nothing more is dropped.
            assert_eq!(DROPS[k].load(Ordering::SeqCst), 2 * steps + additional);
        }
    }
    thread_tests!(drops);

    /// MPMC only: each of four threads sends, then receives, on the same channel.
    #[test]
    fn linearizable() {
        const COUNT: usize = 25_000;
        const THREADS: usize = 4;

        let (s, r) = bounded::<i32, Mpmc>(THREADS as u64);

        thread::scope(|scope| {
            for _ in 0..THREADS {
                let (mut s, mut r) = (s.clone(), r.clone());
                scope.spawn(move || {
                    for _ in 0..COUNT {
                        s.send(0).unwrap();
                        assert_eq!(r.try_recv(), Ok(0));
                    }
                });
            }
        });
    }

    /// Adapted (see the table): the next channel's name goes through the channel.
    fn channel_through_channel<F: Flavor>() {
        const COUNT: usize = 1000;

        let base = common::unique_name("cba-through");
        let (s, r) = bounded::<String, F>(1);

        thread::scope(|scope| {
            let names = base.clone();
            scope.spawn(move || {
                let mut s = s;

                for i in 0..COUNT {
                    let name = format!("{names}-{i}");
                    let new = builder::<String, F>(1).create(&name).unwrap();
                    // The opener unlinks the name, once it has the channel.
                    new.segment().keep();
                    let new_s = new.sender().unwrap();

                    s.send(name).unwrap();
                    s = new_s;
                }
            });

            scope.spawn(move || {
                let mut r = r;

                for i in 0..COUNT {
                    let name = r.recv().unwrap();
                    assert_eq!(name, format!("{base}-{i}"));
                    let new = ChannelBuilder::<String, F>::new().open(&name).unwrap();
                    new.segment().unlink().unwrap();
                    r = new.receiver().unwrap();
                }
            });
        });
    }
    thread_tests!(channel_through_channel);

    /// Adapted: crossbeam's `r.new_sender()` is `channel.sender()`.
    fn zero_sender_revival<F: Flavor>() {
        let ch = builder::<i32, F>(1).in_process().unwrap();
        let (mut s, mut r) = (ch.sender().unwrap(), ch.receiver().unwrap());

        s.send(1).unwrap();

        drop(s);

        assert_eq!(r.recv(), Ok(1));
        assert_eq!(r.recv(), Err(RecvError::Disconnected));

        let mut s = ch.sender().unwrap();

        s.send(1).unwrap();
        assert_eq!(r.recv(), Ok(1));
    }
    thread_tests!(zero_sender_revival);
}

/// The receiving end in a spawned child process that opens the channel by name.
mod process {
    use super::sides::{self, DropCounter, DROPS};
    use super::*;

    /// The first step: the child has opened the channel and attached.
    const READY: u32 = 0;

    /// Two channels between parent and child, one each way, that carry numbered steps: the
    /// order crossbeam's threads get from program order, the processes get from these.
    pub struct Link {
        tx: Sender<u32>,
        rx: Receiver<u32>,
    }

    impl Link {
        /// The parent's end; created before the child is spawned.
        fn parent(name: &str) -> Link {
            Link {
                tx: shmbus::channel::<u32>()
                    .create_sender(&format!("{name}-p2c"))
                    .unwrap(),
                rx: shmbus::channel::<u32>()
                    .create_receiver(&format!("{name}-c2p"))
                    .unwrap(),
            }
        }

        /// The child's end.
        fn child(name: &str) -> Link {
            Link {
                tx: shmbus::channel::<u32>()
                    .open_sender(&format!("{name}-c2p"))
                    .unwrap(),
                rx: shmbus::channel::<u32>()
                    .open_receiver(&format!("{name}-p2c"))
                    .unwrap(),
            }
        }

        /// Tells the other side that `step` is done.
        pub fn signal(&mut self, step: u32) {
            self.tx.send(step).unwrap();
        }

        /// Waits until the other side says `step` is done.
        pub fn wait(&mut self, step: u32) {
            assert_eq!(
                self.rx.recv_timeout(LIMIT),
                Ok(step),
                "the other process did not reach step {step}"
            );
        }
    }

    /// In the parent: the link (before the child exists), then the child, re-spawned to run
    /// `test` only, with the channel's `name`.
    fn spawn_child(test: &str, name: &str) -> (ChildGuard, Link) {
        let link = Link::parent(name);
        (common::spawn(test, "receiver", name), link)
    }

    /// In the child: the channel's name and the link.
    fn child_link() -> (String, Link) {
        let name = std::env::var(CHANNEL).unwrap();
        let link = Link::child(&name);
        (name, link)
    }

    /// Waits for the child to exit, and fails if it failed (its output is above).
    fn join(mut child: ChildGuard) {
        assert!(
            child.wait_within(LIMIT).success(),
            "the child process failed (its output is above)"
        );
    }

    /// Runs a scenario with its receiver in a child process. The parent creates the channel
    /// with `b`, attaches a sender, spawns the child and waits until it has attached, then
    /// runs `parent`; the child opens the channel by name (with a default builder: it knows
    /// only the type and the flavor), attaches a receiver, says so, and runs `child`.
    fn run<T, F: Flavor>(
        test: &str,
        b: &ChannelBuilder<T, F>,
        parent: impl FnOnce(&Channel<T, F>, Sender<T, F>, &mut Link),
        child: impl FnOnce(&Channel<T, F>, Receiver<T, F>, &mut Link),
    ) where
        Bincode: Codec<T>,
    {
        if role().is_some() {
            let (name, mut link) = child_link();
            let ch = ChannelBuilder::<T, F>::new().open(&name).unwrap();
            let r = ch.receiver().unwrap();
            link.signal(READY);
            child(&ch, r, &mut link);
            return;
        }
        let name = common::unique_name("cba");
        let ch = b.create(&name).unwrap();
        let s = ch.sender().unwrap();
        let (child_proc, mut link) = spawn_child(test, &name);
        link.wait(READY);
        parent(&ch, s, &mut link);
        join(child_proc);
    }

    /// Runs a `sides` scenario, its receiver in the child.
    fn run_sides<T, F: Flavor>(
        test: &str,
        cap: u64,
        sender: fn(Sender<T, F>),
        receiver: fn(Receiver<T, F>),
    ) where
        Bincode: Codec<T>,
    {
        run(
            test,
            &builder::<T, F>(cap),
            |_, s, _| sender(s),
            |_, r, _| receiver(r),
        );
    }

    /// Opens `name`, waiting for its creator to create it.
    fn open_when_created<T, F: Flavor>(name: &str) -> Channel<T, F>
    where
        Bincode: Codec<T>,
    {
        let deadline = Instant::now() + LIMIT;
        loop {
            match ChannelBuilder::<T, F>::new().open(name) {
                Ok(ch) => return ch,
                Err(shmbus::Error::Ring(shmbus::ring::Error::Os { code, .. }))
                    if code.raw() == libc::ENOENT && Instant::now() < deadline =>
                {
                    thread::yield_now();
                }
                Err(e) => panic!("opening {name}: {e}"),
            }
        }
    }

    fn smoke<F: Flavor>(test: &str) {
        run(
            test,
            &builder::<i32, F>(1),
            |_, mut s, link| {
                s.send(7).unwrap();
                link.signal(1);
                s.send(8).unwrap();
                // The sender lives until the child is done (else it would see Disconnected).
                link.wait(2);
            },
            |_, mut r, link| {
                link.wait(1);
                assert_eq!(r.try_recv(), Ok(7));

                assert_eq!(r.recv(), Ok(8));

                assert_eq!(r.try_recv(), Err(TryRecvError::Empty));
                assert_eq!(r.recv_timeout(ms(1000)), Err(RecvTimeoutError::Timeout));
                link.signal(2);
            },
        );
    }
    process_tests!(smoke);
    fn capacity<F: Flavor>(test: &str) {
        if role().is_some() {
            let (name, _link) = child_link();
            for i in 1..10 {
                // Opened without a capacity: the child reads it from the segment.
                let ch = ChannelBuilder::<(), F>::new()
                    .open(&format!("{name}-{i}"))
                    .unwrap();
                let r = ch.receiver().unwrap();
                assert_eq!(r.capacity(), Some(i as usize));
            }
            return;
        }
        let name = common::unique_name("cba-capacity");
        let mut channels = Vec::new();
        for i in 1..10 {
            let ch = builder::<(), F>(i).create(&format!("{name}-{i}")).unwrap();
            let s = ch.sender().unwrap();
            assert_eq!(s.capacity(), Some(i as usize));
            channels.push((ch, s));
        }
        let (child, _link) = spawn_child(test, &name);
        join(child);
    }
    process_tests!(capacity);
    fn len_empty_full<F: Flavor>(test: &str) {
        run(
            test,
            &builder::<(), F>(2),
            |_, mut s, link| {
                assert_eq!(s.len(), 0);
                assert!(s.is_empty());
                assert!(!s.is_full());
                link.signal(1);
                link.wait(2);

                s.send(()).unwrap();

                assert_eq!(s.len(), 1);
                assert!(!s.is_empty());
                assert!(!s.is_full());
                link.signal(3);
                link.wait(4);

                s.send(()).unwrap();

                assert_eq!(s.len(), 2);
                assert!(!s.is_empty());
                assert!(s.is_full());
                link.signal(5);
                link.wait(6);

                assert_eq!(s.len(), 1);
                assert!(!s.is_empty());
                assert!(!s.is_full());
            },
            |_, mut r, link| {
                link.wait(1);
                assert_eq!(r.len(), 0);
                assert!(r.is_empty());
                assert!(!r.is_full());
                link.signal(2);
                link.wait(3);

                assert_eq!(r.len(), 1);
                assert!(!r.is_empty());
                assert!(!r.is_full());
                link.signal(4);
                link.wait(5);

                assert_eq!(r.len(), 2);
                assert!(!r.is_empty());
                assert!(r.is_full());

                r.recv().unwrap();

                assert_eq!(r.len(), 1);
                assert!(!r.is_empty());
                assert!(!r.is_full());
                link.signal(6);
            },
        );
    }
    process_tests!(len_empty_full);

    fn try_recv<F: Flavor>(test: &str) {
        use sides::try_recv::{receiver, sender, CAP};
        run_sides::<i32, F>(test, CAP, sender, receiver);
    }
    process_tests!(try_recv);

    fn recv<F: Flavor>(test: &str) {
        use sides::recv::{receiver, sender, CAP};
        run_sides::<i32, F>(test, CAP, sender, receiver);
    }
    process_tests!(recv);

    fn recv_timeout<F: Flavor>(test: &str) {
        use sides::recv_timeout::{receiver, sender, CAP};
        run_sides::<i32, F>(test, CAP, sender, receiver);
    }
    process_tests!(recv_timeout);

    fn try_send<F: Flavor>(test: &str) {
        use sides::try_send::{receiver, sender, CAP};
        run_sides::<i32, F>(test, CAP, sender, receiver);
    }
    process_tests!(try_send);

    fn send<F: Flavor>(test: &str) {
        use sides::send::{receiver, sender, CAP};
        run(
            test,
            &builder::<i32, F>(CAP),
            |_, mut s, link| {
                sender(&mut s);
                link.signal(1);
            },
            |_, mut r, link| {
                receiver(&mut r);
                // crossbeam's receiver lives until the scope ends, after the last send.
                link.wait(1);
            },
        );
    }
    process_tests!(send);

    fn send_timeout<F: Flavor>(test: &str) {
        use sides::send_timeout::{receiver, sender, CAP};
        run_sides::<i32, F>(test, CAP, sender, receiver);
    }
    process_tests!(send_timeout);

    fn send_after_disconnect<F: Flavor>(test: &str) {
        run(
            test,
            &builder::<i32, F>(100),
            |_, mut s, link| {
                s.send(1).unwrap();
                s.send(2).unwrap();
                s.send(3).unwrap();

                link.signal(1);
                link.wait(2);

                assert_eq!(s.send(4), Err(SendError::Disconnected(4)));
                assert_eq!(s.try_send(5), Err(TrySendError::Disconnected(5)));
                assert_eq!(
                    s.send_timeout(6, ms(500)),
                    Err(SendTimeoutError::Disconnected(6))
                );
            },
            |_, r, link| {
                link.wait(1);
                drop(r);
                link.signal(2);
            },
        );
    }
    process_tests!(send_after_disconnect);

    fn recv_after_disconnect<F: Flavor>(test: &str) {
        run(
            test,
            &builder::<i32, F>(100),
            |_, mut s, link| {
                s.send(1).unwrap();
                s.send(2).unwrap();
                s.send(3).unwrap();

                drop(s);
                link.signal(1);
            },
            |_, mut r, link| {
                link.wait(1);
                assert_eq!(r.recv(), Ok(1));
                assert_eq!(r.recv(), Ok(2));
                assert_eq!(r.recv(), Ok(3));
                assert_eq!(r.recv(), Err(RecvError::Disconnected));
            },
        );
    }
    process_tests!(recv_after_disconnect);
    fn len<F: Flavor>(test: &str) {
        const COUNT: usize = 25_000;
        const CAP: usize = 1000;

        run(
            test,
            &builder::<usize, F>(CAP as u64),
            |_, mut s, link| {
                assert_eq!(s.len(), 0);
                // The receiver checks the empty channel before anything is sent (in
                // crossbeam's test, before its thread starts).
                link.wait(0);
                let mut step = 1;
                for _ in 0..CAP / 10 {
                    for i in 0..50 {
                        s.send(i).unwrap();
                        assert_eq!(s.len(), i + 1);
                    }
                    link.signal(step);
                    link.wait(step + 1);
                    step += 2;
                }

                assert_eq!(s.len(), 0);

                for i in 0..CAP {
                    s.send(i).unwrap();
                    assert_eq!(s.len(), i + 1);
                }
                link.signal(step);
                link.wait(step + 1);

                assert_eq!(s.len(), 0);

                for i in 0..COUNT {
                    s.send(i).unwrap();
                    let len = s.len();
                    assert!(len <= CAP);
                }
                link.wait(step + 2);

                assert_eq!(s.len(), 0);
            },
            |_, mut r, link| {
                assert_eq!(r.len(), 0);
                link.signal(0);
                let mut step = 1;
                for _ in 0..CAP / 10 {
                    link.wait(step);
                    for i in 0..50 {
                        r.recv().unwrap();
                        assert_eq!(r.len(), 50 - i - 1);
                    }
                    link.signal(step + 1);
                    step += 2;
                }
                // (crossbeam's `assert_eq!(r.len(), 0)` here is the last round's final check
                // above: after the signal, the sender may already be filling the channel.)

                link.wait(step);
                for _ in 0..CAP {
                    r.recv().unwrap();
                }

                assert_eq!(r.len(), 0);
                link.signal(step + 1);

                for i in 0..COUNT {
                    assert_eq!(r.recv(), Ok(i));
                    let len = r.len();
                    assert!(len <= CAP);
                }

                assert_eq!(r.len(), 0);
                link.signal(step + 2);
            },
        );
    }
    process_tests!(len);

    fn disconnect_wakes_sender<F: Flavor>(test: &str) {
        use sides::disconnect_wakes_sender::{receiver, sender, CAP};
        run_sides::<(), F>(test, CAP, sender, receiver);
    }
    process_tests!(disconnect_wakes_sender);

    fn disconnect_wakes_receiver<F: Flavor>(test: &str) {
        use sides::disconnect_wakes_receiver::{receiver, sender, CAP};
        run_sides::<(), F>(test, CAP, sender, receiver);
    }
    process_tests!(disconnect_wakes_receiver);

    fn spsc<F: Flavor>(test: &str) {
        use sides::spsc::{receiver, sender, CAP};
        run_sides::<usize, F>(test, CAP, sender, receiver);
    }
    process_tests!(spsc);

    /// MPMC only: four sender threads here, four receiver threads in the child.
    #[test]
    fn mpmc() {
        const COUNT: usize = 25_000;
        const THREADS: usize = 4;

        run(
            "process::mpmc",
            &builder::<usize, Mpmc>(3),
            |_, s, _| {
                thread::scope(|scope| {
                    for _ in 0..THREADS {
                        let mut s = s.clone();
                        scope.spawn(move || {
                            for i in 0..COUNT {
                                s.send(i).unwrap();
                            }
                        });
                    }
                });
            },
            |_, r, _| {
                let v = (0..COUNT).map(|_| AtomicUsize::new(0)).collect::<Vec<_>>();
                thread::scope(|scope| {
                    for _ in 0..THREADS {
                        let (mut r, v) = (r.clone(), &v);
                        scope.spawn(move || {
                            for _ in 0..COUNT {
                                let n = r.recv().unwrap();
                                v[n].fetch_add(1, Ordering::SeqCst);
                            }
                        });
                    }
                });

                for c in v {
                    assert_eq!(c.load(Ordering::SeqCst), THREADS);
                }
            },
        );
    }

    /// Adapted: each of the 10 000 channels is created here and opened by name in the child,
    /// which acknowledges its message so that the parent may drop (unlink) the channel.
    fn stress_oneshot<F: Flavor>(test: &str) {
        const COUNT: usize = 10_000;

        if role().is_some() {
            let (name, mut link) = child_link();
            for i in 0..COUNT {
                let ch = open_when_created::<i32, F>(&format!("{name}-{i}"));
                let mut r = ch.receiver().unwrap();
                assert_eq!(r.recv(), Ok(0));
                link.signal(i as u32);
            }
            return;
        }
        let name = common::unique_name("cba-oneshot");
        let (child, mut link) = spawn_child(test, &name);
        for i in 0..COUNT {
            let ch = builder::<i32, F>(1).create(&format!("{name}-{i}")).unwrap();
            let mut s = ch.sender().unwrap();
            s.send(0).unwrap();
            link.wait(i as u32);
        }
        join(child);
    }
    process_tests!(stress_oneshot);

    /// The spawned thread's side (request sender, response receiver) is the child.
    #[allow(clippy::explicit_iter_loop)] // crossbeam's `request_r.iter()`
    fn stress_iter<F: Flavor>(test: &str) {
        const COUNT: usize = 100_000;

        if role().is_some() {
            let (name, _link) = child_link();
            let mut request_s = ChannelBuilder::<(), F>::new()
                .open_sender(&format!("{name}-request"))
                .unwrap();
            let mut response_r = ChannelBuilder::<usize, F>::new()
                .open_receiver(&format!("{name}-response"))
                .unwrap();
            let mut count = 0;
            loop {
                for x in response_r.try_iter() {
                    count += x;
                    if count == COUNT {
                        return;
                    }
                }
                request_s.send(()).unwrap();
            }
        }
        let name = common::unique_name("cba-iter");
        let mut request_r = builder::<(), F>(1)
            .create_receiver(&format!("{name}-request"))
            .unwrap();
        let mut response_s = builder::<usize, F>(1)
            .create_sender(&format!("{name}-response"))
            .unwrap();
        let (child, _link) = spawn_child(test, &name);

        for () in request_r.iter() {
            if response_s.send(1).is_err() {
                break;
            }
        }
        join(child);
    }
    process_tests!(stress_iter);

    fn stress_timeout_two_threads<F: Flavor>(test: &str) {
        use sides::stress_timeout_two_threads::{receiver, sender, CAP};
        run(
            test,
            &builder::<usize, F>(CAP),
            |_, mut s, link| {
                sender(&mut s);
                link.wait(1);
            },
            |_, mut r, link| {
                receiver(&mut r);
                link.signal(1);
            },
        );
    }
    process_tests!(stress_timeout_two_threads);

    /// Adapted, as the thread version: each process counts its own drops. The parent drops
    /// every argument it sends; the child drops every value it receives; dropping the ends
    /// drops nothing more. The child learns each run's `steps` on the link.
    fn drops<F: Flavor>(test: &str) {
        let k = sides::counter::<F>();
        if role().is_some() {
            let (name, mut link) = child_link();
            for run in 0..sides::DROPS_RUNS {
                let steps = link.rx.recv_timeout(LIMIT).unwrap() as usize;
                DROPS[k].store(0, Ordering::SeqCst);
                let ch = open_when_created::<DropCounter, F>(&format!("{name}-{run}"));
                let mut r = ch.receiver().unwrap();
                for _ in 0..steps {
                    r.recv().unwrap();
                }
                assert_eq!(DROPS[k].load(Ordering::SeqCst), steps);
                link.signal(1);
                link.wait(2);
                drop(r);
                assert_eq!(DROPS[k].load(Ordering::SeqCst), steps);
                link.signal(3);
            }
            return;
        }
        let name = common::unique_name("cba-drops");
        let (child, mut link) = spawn_child(test, &name);
        let mut rng = sides::rng();

        for run in 0..sides::DROPS_RUNS {
            let steps = rng.below(sides::DROPS_STEPS) as usize;
            let additional = rng.below(50) as usize;

            DROPS[k].store(0, Ordering::SeqCst);
            let ch = builder::<DropCounter, F>(50)
                .create(&format!("{name}-{run}"))
                .unwrap();
            let mut s = ch.sender().unwrap();
            link.signal(steps as u32);

            for _ in 0..steps {
                s.send(DropCounter(k)).unwrap();
            }
            link.wait(1);

            for _ in 0..additional {
                s.send(DropCounter(k)).unwrap();
            }

            assert_eq!(DROPS[k].load(Ordering::SeqCst), steps + additional);
            drop(s);
            link.signal(2);
            link.wait(3);
            assert_eq!(DROPS[k].load(Ordering::SeqCst), steps + additional);
        }
        join(child);
    }
    process_tests!(drops);

    /// MPMC only, adapted: two of the four workers in each process, each with its own sender
    /// and receiver, on one channel of capacity 4.
    #[test]
    fn linearizable() {
        const COUNT: usize = 25_000;
        const THREADS: usize = 4;

        fn workers(ch: &Channel<i32, Mpmc>) {
            thread::scope(|scope| {
                for _ in 0..THREADS / 2 {
                    let (mut s, mut r) = (ch.sender().unwrap(), ch.receiver().unwrap());
                    scope.spawn(move || {
                        for _ in 0..COUNT {
                            s.send(0).unwrap();
                            assert_eq!(r.try_recv(), Ok(0));
                        }
                    });
                }
            });
        }

        run(
            "process::linearizable",
            &builder::<i32, Mpmc>(THREADS as u64),
            |ch, _s, link| {
                link.signal(1);
                workers(ch);
                link.wait(2);
            },
            |ch, _r, link| {
                link.wait(1);
                workers(ch);
                link.signal(2);
            },
        );
    }

    /// Adapted: the next channel's name goes through the channel; the child opens it.
    fn channel_through_channel<F: Flavor>(test: &str) {
        const COUNT: usize = 1000;

        run(
            test,
            &builder::<String, F>(1),
            |ch, s, _| {
                let base = ch.segment().target();
                let mut s = s;

                for i in 0..COUNT {
                    let name = format!("{base}-{i}");
                    let new = builder::<String, F>(1).create(&name).unwrap();
                    // The opener unlinks the name, once it has the channel.
                    new.segment().keep();
                    let new_s = new.sender().unwrap();

                    s.send(name).unwrap();
                    s = new_s;
                }
            },
            |ch, r, _| {
                let base = ch.segment().target();
                let mut r = r;

                for i in 0..COUNT {
                    let name = r.recv().unwrap();
                    assert_eq!(name, format!("{base}-{i}"));
                    let new = ChannelBuilder::<String, F>::new().open(&name).unwrap();
                    new.segment().unlink().unwrap();
                    r = new.receiver().unwrap();
                }
            },
        );
    }
    process_tests!(channel_through_channel);

    /// Adapted: crossbeam's `r.new_sender()` is `channel.sender()`, here in the parent.
    fn zero_sender_revival<F: Flavor>(test: &str) {
        run(
            test,
            &builder::<i32, F>(1),
            |ch, mut s, link| {
                s.send(1).unwrap();

                drop(s);
                link.signal(1);
                link.wait(2);

                let mut s = ch.sender().unwrap();

                s.send(1).unwrap();
                // crossbeam's receive follows the new sender's send in program order (before
                // it, the channel is disconnected: no sender is attached).
                link.signal(3);
                link.wait(4);
            },
            |_, mut r, link| {
                link.wait(1);
                assert_eq!(r.recv(), Ok(1));
                assert_eq!(r.recv(), Err(RecvError::Disconnected));
                link.signal(2);
                link.wait(3);

                assert_eq!(r.recv(), Ok(1));
                link.signal(4);
            },
        );
    }
    process_tests!(zero_sender_revival);
}

/// `capacity(0)`: crossbeam's `bounded(0)` is a rendezvous channel (its `zero` flavor), which
/// shmbus does not offer across processes: it is refused at create and at open.
mod capacity_zero {
    use super::*;

    fn is_config<T: std::fmt::Debug>(r: Result<T, shmbus::Error>) {
        match r {
            Err(shmbus::Error::Config(msg)) => {
                assert!(msg.contains("capacity 0"), "{msg}");
            }
            other => panic!("expected Error::Config, got {other:?}"),
        }
    }

    fn refused<F: Flavor>() {
        let zero = builder::<i32, F>(0);
        is_config(zero.in_process());
        is_config(zero.anonymous());
        is_config(zero.memfd("cba-zero"));
        let name = common::unique_name("cba-zero");
        is_config(zero.create(&name));
        is_config(zero.create_sender(&name));
        // Nothing was created under the name.
        assert!(matches!(
            ChannelBuilder::<i32, F>::new().open(&name),
            Err(shmbus::Error::Ring(shmbus::ring::Error::Os { code, .. })) if code.raw() == libc::ENOENT
        ));
        // Opening with capacity(0) is refused too, though the channel exists.
        let _ch = builder::<i32, F>(1).create(&name).unwrap();
        is_config(zero.open(&name));
        is_config(zero.open_receiver(&name));
        // A capacity of 1 is a channel.
        assert!(builder::<i32, F>(1).in_process().is_ok());
    }
    thread_tests!(refused);
}

/// crossbeam's tests that need `select!` (issue 14 item 5).
mod select_parts {
    use super::*;

    fn fairness<F: Flavor>() {
        const COUNT: usize = 10_000;

        let (mut s1, mut r1) = bounded::<(), F>(COUNT as u64);
        let (mut s2, mut r2) = bounded::<(), F>(COUNT as u64);

        for _ in 0..COUNT {
            s1.send(()).unwrap();
            s2.send(()).unwrap();
        }

        let mut hits = [0usize; 2];
        for _ in 0..COUNT {
            shmbus::select! {
                recv(r1) -> _ => hits[0] += 1,
                recv(r2) -> _ => hits[1] += 1,
            }
        }
        assert!(hits.iter().all(|x| *x >= COUNT / hits.len() / 2));
    }
    thread_tests!(fairness);

    /// MPMC only: five arms on one channel; with `&mut` receivers, five clones of it.
    #[test]
    fn fairness_duplicates() {
        const COUNT: usize = 10_000;

        let (mut s, r) = bounded::<(), Mpmc>(COUNT as u64);

        for _ in 0..COUNT {
            s.send(()).unwrap();
        }

        let (mut r0, mut r1, mut r2, mut r3, mut r4) =
            (r.clone(), r.clone(), r.clone(), r.clone(), r.clone());
        let mut hits = [0usize; 5];
        for _ in 0..COUNT {
            shmbus::select! {
                recv(r0) -> _ => hits[0] += 1,
                recv(r1) -> _ => hits[1] += 1,
                recv(r2) -> _ => hits[2] += 1,
                recv(r3) -> _ => hits[3] += 1,
                recv(r4) -> _ => hits[4] += 1,
            }
        }
        assert!(hits.iter().all(|x| *x >= COUNT / hits.len() / 2));
    }

    fn recv_in_send<F: Flavor>() {
        let (mut s, _r) = bounded::<(), F>(1);
        s.send(()).unwrap();

        #[allow(unreachable_code, clippy::diverging_sub_expression)]
        {
            shmbus::select! {
                send(s, panic!()) -> _ => panic!(),
                default => {}
            }
        }

        let (mut s, mut r) = bounded::<(), F>(2);
        s.send(()).unwrap();

        shmbus::select! {
            send(s, assert_eq!(r.recv(), Ok(()))) -> _ => {}
        }
    }
    thread_tests!(recv_in_send);
}
