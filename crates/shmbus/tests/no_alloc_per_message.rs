//! Sending and receiving allocate nothing per message in steady state, for plain-old-data
//! and for bincode (encoded in place into the ring, decoded from the receiver's reused
//! buffer). A counting global allocator, per thread, is the witness; this file is its own
//! test binary so that the allocator counts nothing else.

use serde::{Deserialize, Serialize};
use shmbus::codec::{Bincode, Codec, Plain, Postcard};
use shmbus::flavor::{Flavor, Mpmc, Spsc};
use shmbus::ChannelBuilder;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; the count is a
// thread-local `Cell` with a const initialiser and no destructor, which allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Quote {
    seq: u64,
    bid: f64,
    ask: f64,
    size: [u32; 4],
    venue: [u8; 16],
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
enum Side {
    Buy,
    Sell,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Order {
    seq: u64,
    price: f64,
    qty: u32,
    side: Side,
    account: [u8; 12],
    limit: Option<i64>,
}

const MESSAGES: u64 = 20_000;

/// Sends and receives `MESSAGES` messages made by `make`, through blocking and non-blocking
/// calls, after a warm-up that lets the receiver's buffer reach its size; returns the
/// allocations counted on this thread during the measured part.
fn allocations_per_run<T, F, C>(make: impl Fn(u64) -> T, backing_name: Option<&str>) -> u64
where
    T: PartialEq + std::fmt::Debug,
    F: Flavor,
    C: Codec<T>,
{
    let builder = ChannelBuilder::<T, F, C>::new()
        .capacity(64)
        .max_message(256);
    let ch = match backing_name {
        Some(name) => builder.create(name).unwrap(),
        None => builder.in_process().unwrap(),
    };
    let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    for i in 0..100 {
        tx.send(make(i)).unwrap();
        assert_eq!(rx.recv().unwrap(), make(i));
    }
    // The messages are made before counting starts, so only the channel is measured.
    let messages: Vec<T> = (0..MESSAGES).map(&make).collect();
    let before = allocations();
    for (i, msg) in messages.into_iter().enumerate() {
        let got = if i % 2 == 0 {
            tx.send(msg).unwrap();
            rx.recv().unwrap()
        } else {
            tx.try_send(msg).unwrap();
            rx.try_recv().unwrap()
        };
        // Dropping a received message frees it; dropping allocates nothing.
        drop(got);
    }
    let counted = allocations() - before;
    // The counter itself works: an allocation after the run is seen.
    let probe = std::hint::black_box(Box::new(0u8));
    assert!(
        allocations() > before + counted,
        "the allocator counts nothing"
    );
    drop(probe);
    counted
}

fn quote(i: u64) -> Quote {
    Quote {
        seq: i,
        bid: i as f64,
        ask: i as f64 + 0.5,
        size: [i as u32; 4],
        venue: *b"XLON-----------\0",
    }
}

fn order(i: u64) -> Order {
    Order {
        seq: i,
        price: 100.0 + i as f64,
        qty: (i % 1000) as u32,
        side: if i % 2 == 0 { Side::Buy } else { Side::Sell },
        account: *b"ACC-00000001",
        limit: (i % 3 == 0).then_some(-(i as i64)),
    }
}

#[test]
fn plain_old_data_messages_allocate_nothing_per_message_on_either_flavor() {
    assert_eq!(allocations_per_run::<Quote, Spsc, Plain>(quote, None), 0);
    assert_eq!(allocations_per_run::<Quote, Mpmc, Plain>(quote, None), 0);
    let name = format!("/shmbus-t-noalloc-pod-{}", std::process::id());
    assert_eq!(
        allocations_per_run::<Quote, Spsc, Plain>(quote, Some(&name)),
        0
    );
}

#[test]
fn bincode_messages_allocate_nothing_per_message_with_the_reused_buffer() {
    assert_eq!(allocations_per_run::<Order, Spsc, Bincode>(order, None), 0);
    assert_eq!(allocations_per_run::<Order, Mpmc, Bincode>(order, None), 0);
    let name = format!("/shmbus-t-noalloc-bincode-{}", std::process::id());
    assert_eq!(
        allocations_per_run::<Order, Mpmc, Bincode>(order, Some(&name)),
        0
    );
}

#[test]
fn postcard_messages_allocate_nothing_per_message_either() {
    assert_eq!(allocations_per_run::<Order, Spsc, Postcard>(order, None), 0);
}

#[test]
fn a_message_that_owns_heap_memory_costs_only_its_own_allocation_on_receipt() {
    // A `String` field must be allocated by the decoder; that is the only allocation.
    let n = allocations_per_run::<(u64, String), Spsc, Bincode>(|i| (i, format!("{i:08}")), None);
    assert_eq!(n, MESSAGES);
}

/// As [`allocations_per_run`], through a topic: one publisher, a tethered and an untethered
/// subscriber, both receiving every message.
fn topic_allocations_per_run<T, C>(make: impl Fn(u64) -> T, topic: &str) -> u64
where
    T: PartialEq + std::fmt::Debug,
    C: Codec<T>,
{
    let mut publisher = shmbus::topic::PublisherBuilder::<T, C>::new()
        .capacity_bytes(1 << 16)
        .max_message(256)
        .remove_on_drop(true)
        .create(topic)
        .unwrap();
    let builder = shmbus::topic::SubscriberBuilder::<T, C>::new();
    let mut tethered = builder.open(topic).unwrap();
    let mut untethered = builder.clone().tethered(false).open(topic).unwrap();
    for i in 0..100 {
        publisher.send(&make(i)).unwrap();
        assert_eq!(tethered.recv().unwrap(), make(i));
        assert_eq!(untethered.recv().unwrap(), make(i));
    }
    let messages: Vec<T> = (0..MESSAGES).map(&make).collect();
    let before = allocations();
    for (i, msg) in messages.iter().enumerate() {
        if i % 2 == 0 {
            publisher.send(msg).unwrap();
            drop(tethered.recv().unwrap());
            drop(untethered.recv().unwrap());
        } else {
            publisher.try_send(msg).unwrap();
            drop(tethered.try_recv().unwrap());
            drop(untethered.try_recv().unwrap());
        }
    }
    let counted = allocations() - before;
    let probe = std::hint::black_box(Box::new(0u8));
    assert!(
        allocations() > before + counted,
        "the allocator counts nothing"
    );
    drop(probe);
    counted
}

#[test]
fn topics_allocate_nothing_per_message_for_the_publisher_or_either_kind_of_subscriber() {
    let name = format!("test/noalloc/pod/{}", std::process::id());
    assert_eq!(topic_allocations_per_run::<Quote, Plain>(quote, &name), 0);
    let name = format!("test/noalloc/bincode/{}", std::process::id());
    assert_eq!(topic_allocations_per_run::<Order, Bincode>(order, &name), 0);
}
