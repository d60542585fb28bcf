//! crossbeam-channel's `tests/select_macro.rs`, ported to `shmbus::select!`: the grammar and
//! the behaviours the `Select` port (`crossbeam_select.rs`) does not already cover, for both
//! flavors where the flavor matters. crossbeam's `unbounded()` is capacity 10 000.
//!
//! Arms borrow their endpoint `&mut` (our endpoints take `&mut self`), so an endpoint appears in
//! one arm only and the bindings are `let mut`.
//!
//! | crossbeam test | here | why |
//! |---|---|---|
//! | smoke1, smoke2, disconnected, default, timeout | ported (both flavors) | |
//! | default_when_disconnected, default_only | ported | |
//! | unblocks, both_ready, loop_try, cloning*, preflight*, nesting, stress_*, linearizable_*, fairness1/2 | covered by `crossbeam_select.rs` | the macro expands to the same `Select` |
//! | duplicate_operations, case_blocks (same `r` in three arms) | adapted / not applicable | one endpoint, one arm: `case_blocks` keeps the body shapes on three channels |
//! | panic_sender, panic_receiver | not applicable | crossbeam checks the message expression's panic propagates; ours is evaluated in the arm, same behaviour, not worth a thread |
//! | send_recv_same_channel, matching*, channel_through_channel | not applicable | as in `crossbeam_select.rs` |
//! | fairness_recv, fairness_send | ported | |
//! | unfairness, unfairness_timeout, unfairness_try | ported (`select_biased!`) | |
//! | references, deref, handles_on_heap | adapted | `recv(&mut r)`, `recv(*boxed)`: any `&mut` place |
//! | move_handles, infer_types, default_syntax, same_variable_name, evaluate, trailing_comma | ported | `default_syntax`: `bounded(0)` → a full capacity-1 channel |
//! | once_blocks, once_receiver, once_sender, parse_nesting, result_types | not ported (time) | |
//! | try_recv, recv, recv_timeout, try_send, send, send_timeout, disconnect_wakes_* | covered by `crossbeam_select.rs` and `select_process.rs` | |

#![allow(clippy::unchecked_time_subtraction, clippy::match_single_binding)]

use shmbus::flavor::{Flavor, Mpmc, Spsc};
use shmbus::{select, select_biased, ChannelBuilder, Receiver, Sender};
use std::thread;
use std::time::{Duration, Instant};

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

trait Fl: Flavor {
    fn builder<T>() -> ChannelBuilder<T, Self>
    where
        shmbus::codec::Bincode: shmbus::codec::Codec<T>;
}

impl Fl for Spsc {
    fn builder<T>() -> ChannelBuilder<T, Self>
    where
        shmbus::codec::Bincode: shmbus::codec::Codec<T>,
    {
        shmbus::channel::<T>()
    }
}

impl Fl for Mpmc {
    fn builder<T>() -> ChannelBuilder<T, Self>
    where
        shmbus::codec::Bincode: shmbus::codec::Codec<T>,
    {
        shmbus::channel::<T>().mpmc()
    }
}

fn bounded<T, F: Fl>(cap: u64) -> (Sender<T, F>, Receiver<T, F>)
where
    shmbus::codec::Bincode: shmbus::codec::Codec<T>,
{
    let ch = F::builder::<T>()
        .capacity(cap)
        .max_message(64)
        .in_process()
        .unwrap();
    (ch.sender().unwrap(), ch.receiver().unwrap())
}

fn unbounded<T, F: Fl>() -> (Sender<T, F>, Receiver<T, F>)
where
    shmbus::codec::Bincode: shmbus::codec::Codec<T>,
{
    bounded(10_000)
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod spsc {
            $( #[test] fn $name() { super::$name::<shmbus::flavor::Spsc>(); } )*
        }
        mod mpmc {
            $( #[test] fn $name() { super::$name::<shmbus::flavor::Mpmc>(); } )*
        }
    };
}

both!(
    smoke1,
    smoke2,
    disconnected,
    default,
    timeout,
    fairness_recv,
    fairness_send
);

fn smoke1<F: Fl>() {
    let (mut s1, mut r1) = unbounded::<usize, F>();
    let (mut s2, mut r2) = unbounded::<usize, F>();

    s1.send(1).unwrap();

    select! {
        recv(r1) -> v => assert_eq!(v, Ok(1)),
        recv(r2) -> _ => panic!(),
    }

    s2.send(2).unwrap();

    select! {
        recv(r1) -> _ => panic!(),
        recv(r2) -> v => assert_eq!(v, Ok(2)),
    }
}

fn smoke2<F: Fl>() {
    let (_s1, mut r1) = unbounded::<i32, F>();
    let (_s2, mut r2) = unbounded::<i32, F>();
    let (_s3, mut r3) = unbounded::<i32, F>();
    let (_s4, mut r4) = unbounded::<i32, F>();
    let (mut s5, mut r5) = unbounded::<i32, F>();

    s5.send(5).unwrap();

    select! {
        recv(r1) -> _ => panic!(),
        recv(r2) -> _ => panic!(),
        recv(r3) -> _ => panic!(),
        recv(r4) -> _ => panic!(),
        recv(r5) -> v => assert_eq!(v, Ok(5)),
    }
}

fn disconnected<F: Fl>() {
    let (s1, mut r1) = unbounded::<i32, F>();
    let (mut s2, mut r2) = unbounded::<i32, F>();

    let t = thread::spawn(move || {
        drop(s1);
        thread::sleep(ms(500));
        s2.send(5).unwrap();
        s2
    });

    select! {
        recv(r1) -> v => assert!(v.is_err()),
        recv(r2) -> _ => panic!(),
        default(ms(1000)) => panic!(),
    }

    r2.recv().unwrap();
    let s2 = t.join().unwrap();

    select! {
        recv(r1) -> v => assert!(v.is_err()),
        recv(r2) -> _ => panic!(),
        default(ms(1000)) => panic!(),
    }

    let t = thread::spawn(move || {
        thread::sleep(ms(500));
        drop(s2);
    });

    select! {
        recv(r2) -> v => assert!(v.is_err()),
        default(ms(1000)) => panic!(),
    }
    t.join().unwrap();
}

fn default<F: Fl>() {
    let (s1, mut r1) = unbounded::<i32, F>();
    let (mut s2, mut r2) = unbounded::<i32, F>();

    select! {
        recv(r1) -> _ => panic!(),
        recv(r2) -> _ => panic!(),
        default => {}
    }

    drop(s1);

    select! {
        recv(r1) -> v => assert!(v.is_err()),
        recv(r2) -> _ => panic!(),
        default => panic!(),
    }

    s2.send(2).unwrap();

    select! {
        recv(r2) -> v => assert_eq!(v, Ok(2)),
        default => panic!(),
    }

    select! {
        recv(r2) -> _ => panic!(),
        default => {},
    }

    select! {
        default => {},
    }
}

fn timeout<F: Fl>() {
    let (_s1, mut r1) = unbounded::<i32, F>();
    let (mut s2, mut r2) = unbounded::<i32, F>();

    let t = thread::spawn(move || {
        thread::sleep(ms(1500));
        s2.send(2).unwrap();
        s2
    });

    select! {
        recv(r1) -> _ => panic!(),
        recv(r2) -> _ => panic!(),
        default(ms(1000)) => {},
    }

    select! {
        recv(r1) -> _ => panic!(),
        recv(r2) -> v => assert_eq!(v, Ok(2)),
        default(ms(1000)) => panic!(),
    }
    drop(t.join().unwrap());

    let (s, mut r) = unbounded::<i32, F>();

    let t = thread::spawn(move || {
        thread::sleep(ms(500));
        drop(s);
    });

    select! {
        default(ms(1000)) => {
            select! {
                recv(r) -> v => assert!(v.is_err()),
                default => panic!(),
            }
        }
    }
    t.join().unwrap();
}

#[test]
fn default_when_disconnected() {
    let (_, mut r) = unbounded::<i32, Spsc>();

    select! {
        recv(r) -> res => assert!(res.is_err()),
        default => panic!(),
    }

    let (_, mut r) = unbounded::<i32, Spsc>();

    select! {
        recv(r) -> res => assert!(res.is_err()),
        default(ms(1000)) => panic!(),
    }

    let (mut s, _) = bounded::<i32, Spsc>(1);

    select! {
        send(s, 0) -> res => assert!(res.is_err()),
        default => panic!(),
    }

    let (mut s, _) = bounded::<i32, Mpmc>(1);

    select! {
        send(s, 0) -> res => assert!(res.is_err()),
        default(ms(1000)) => panic!(),
    }
}

#[test]
fn default_only() {
    let start = Instant::now();
    select! {
        default => {}
    }
    let now = Instant::now();
    assert!(now - start <= ms(50));

    let start = Instant::now();
    select! {
        default(ms(500)) => {}
    }
    let now = Instant::now();
    assert!(now - start >= ms(500));
    // crossbeam: <= 550 ms; generous on a loaded 2-core machine.
    assert!(now - start <= ms(5000));
}

fn fairness_recv<F: Fl>() {
    const COUNT: usize = 10_000;

    let (mut s1, mut r1) = bounded::<(), F>(COUNT as u64);
    let (mut s2, mut r2) = unbounded::<(), F>();

    for _ in 0..COUNT {
        s1.send(()).unwrap();
        s2.send(()).unwrap();
    }

    let mut hits = [0usize; 2];
    while hits[0] + hits[1] < COUNT {
        select! {
            recv(r1) -> _ => hits[0] += 1,
            recv(r2) -> _ => hits[1] += 1,
        }
    }
    assert!(hits.iter().all(|x| *x >= COUNT / 4), "{hits:?}");
}

fn fairness_send<F: Fl>() {
    const COUNT: usize = 10_000;

    let (mut s1, _r1) = bounded::<(), F>(COUNT as u64);
    let (mut s2, _r2) = unbounded::<(), F>();

    let mut hits = [0usize; 2];
    for _ in 0..COUNT {
        select! {
            send(s1, ()) -> _ => hits[0] += 1,
            send(s2, ()) -> _ => hits[1] += 1,
        }
    }
    assert!(hits.iter().all(|x| *x >= COUNT / 4), "{hits:?}");
}

#[test]
fn unfairness() {
    const COUNT: usize = 10_000;

    let (mut s1, mut r1) = unbounded::<(), Spsc>();
    let (mut s2, mut r2) = unbounded::<(), Spsc>();
    let (mut s3, mut r3) = unbounded::<(), Spsc>();

    for _ in 0..COUNT {
        s1.send(()).unwrap();
        s2.send(()).unwrap();
    }
    s3.send(()).unwrap();

    let mut hits = [0usize; 3];
    for _ in 0..COUNT {
        select_biased! {
            recv(r1) -> _ => hits[0] += 1,
            recv(r2) -> _ => hits[1] += 1,
            recv(r3) -> _ => hits[2] += 1,
        }
    }
    assert_eq!(hits, [COUNT, 0, 0]);

    for _ in 0..COUNT {
        select_biased! {
            recv(r1) -> _ => hits[0] += 1,
            recv(r2) -> _ => hits[1] += 1,
            recv(r3) -> _ => hits[2] += 1,
        }
    }
    assert_eq!(hits, [COUNT, COUNT, 0]);
}

#[test]
fn unfairness_timeout() {
    const COUNT: usize = 10_000;

    let (mut s1, mut r1) = unbounded::<(), Mpmc>();
    let (mut s2, mut r2) = unbounded::<(), Mpmc>();
    let (mut s3, mut r3) = unbounded::<(), Mpmc>();

    for _ in 0..COUNT {
        s1.send(()).unwrap();
        s2.send(()).unwrap();
    }
    s3.send(()).unwrap();

    let mut hits = [0usize; 3];
    for _ in 0..COUNT {
        select_biased! {
            recv(r1) -> _ => hits[0] += 1,
            recv(r2) -> _ => hits[1] += 1,
            recv(r3) -> _ => hits[2] += 1,
            default(ms(1000)) => unreachable!(),
        }
    }
    assert_eq!(hits, [COUNT, 0, 0]);

    for _ in 0..COUNT {
        select_biased! {
            recv(r1) -> _ => hits[0] += 1,
            recv(r2) -> _ => hits[1] += 1,
            recv(r3) -> _ => hits[2] += 1,
            default(ms(1000)) => unreachable!(),
        }
    }
    assert_eq!(hits, [COUNT, COUNT, 0]);
}

#[test]
fn unfairness_try() {
    const COUNT: usize = 10_000;

    let (mut s1, mut r1) = unbounded::<(), Spsc>();
    let (mut s2, mut r2) = unbounded::<(), Spsc>();
    let (mut s3, mut r3) = unbounded::<(), Spsc>();

    for _ in 0..COUNT {
        s1.send(()).unwrap();
        s2.send(()).unwrap();
    }
    s3.send(()).unwrap();

    let mut hits = [0usize; 3];
    for _ in 0..COUNT {
        select_biased! {
            recv(r1) -> _ => hits[0] += 1,
            recv(r2) -> _ => hits[1] += 1,
            recv(r3) -> _ => hits[2] += 1,
            default() => unreachable!(),
        }
    }
    assert_eq!(hits, [COUNT, 0, 0]);
}

/// crossbeam's three arms on one `r` become three channels; the body shapes are kept.
#[test]
fn case_blocks() {
    let (s, mut r) = unbounded::<i32, Spsc>();
    let (_s2, mut r2) = unbounded::<i32, Spsc>();
    let (_s3, mut r3) = unbounded::<i32, Spsc>();

    #[allow(unreachable_code, clippy::never_loop)]
    let v = select! {
        recv(r) -> _ => 3.0,
        recv(r2) -> _ => loop {
            unreachable!()
        },
        recv(r3) -> _ => match 7 + 3 {
            _ => unreachable!()
        },
        default => 7.
    };
    assert!((v - 7.0f64).abs() < f64::EPSILON);

    select! {
        recv(r) -> msg => if msg.is_ok() {
            unreachable!()
        },
        default => ()
    }

    drop(s);
}

/// `recv(&mut r)` and `recv(*boxed)`: any `&mut` place (crossbeam's `references`, `deref`).
#[test]
fn references() {
    let (mut s, mut r) = unbounded::<i32, Spsc>();
    s.send(1).unwrap();
    select! {
        recv(&mut r) -> v => assert_eq!(v, Ok(1)),
    }
    let mut boxed = Box::new(r);
    s.send(2).unwrap();
    select! {
        recv(*boxed) -> v => assert_eq!(v, Ok(2)),
    }
    let rr = &mut *boxed;
    s.send(3).unwrap();
    select! {
        recv(*rr) -> v => assert_eq!(v, Ok(3)),
    }
}

#[allow(clippy::redundant_closure_call)] // This is intentional.
#[test]
fn move_handles() {
    let (s, r) = unbounded::<i32, Spsc>();
    select! {
        recv((move || r)()) -> _ => {}
        send((move || s)(), 0) -> _ => {}
    }
}

#[test]
fn infer_types() {
    let (mut s, mut r) = unbounded::<(), Spsc>();
    select! {
        recv(r) -> _ => {}
        default => {}
    }
    s.send(()).unwrap();

    let (mut s, mut r) = unbounded::<(), Mpmc>();
    select! {
        send(s, ()) -> _ => {}
    }
    r.recv().unwrap();
}

/// `bounded(0)` → a capacity-1 channel, filled.
#[test]
fn default_syntax() {
    let (mut s, mut r) = bounded::<i32, Mpmc>(1);
    let mut full = s.clone();
    while full.try_send(0).is_ok() {}

    select! {
        send(s, 0) -> _ => panic!(),
        default => {}
    }
    select! {
        send(s, 0) -> _ => panic!(),
        default() => {}
    }
    select! {
        default => {}
    }
    select! {
        default() => {}
    }
    let _ = r.try_recv();
}

#[test]
fn same_variable_name() {
    let (_, mut r) = unbounded::<i32, Spsc>();
    select! {
        recv(r) -> r => assert!(r.is_err()),
    }
}

#[test]
fn evaluate() {
    let (mut s, mut r) = unbounded::<i32, Spsc>();

    let v = select! {
        recv(r) -> _ => "foo".into(),
        send(s, 0) -> _ => "bar".to_owned(),
        default => "baz".to_string(),
    };
    assert_eq!(v, "bar");

    let v = select! {
        recv(r) -> _ => "foo".into(),
        default => "baz".to_string(),
    };
    assert_eq!(v, "foo");

    let v = select! {
        recv(r) -> _ => "foo".into(),
        default => "baz".to_string(),
    };
    assert_eq!(v, "baz");
}

#[test]
fn trailing_comma() {
    let (mut s, mut r) = unbounded::<usize, Spsc>();

    select! {
        send(s, 1,) -> _ => {},
        recv(r,) -> _ => {},
        default(ms(1000),) => {},
    }
}

/// `after`, `tick` and `never` as arms.
#[test]
fn timers() {
    let start = Instant::now();
    let mut nothing = shmbus::never::<u8>();
    select! {
        recv(nothing) -> _ => panic!(),
        recv(shmbus::after(ms(50))) -> t => assert!(t.unwrap() >= start + ms(50)),
    }
    let mut ticker = shmbus::tick(ms(10));
    let mut n = 0;
    while n < 3 {
        select! {
            recv(ticker) -> t => { assert!(t.is_ok()); n += 1; }
            recv(nothing) -> _ => panic!(),
        }
    }
    assert!(start.elapsed() >= ms(80));
}
