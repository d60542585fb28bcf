//! Sending and receiving allocate nothing per message in steady state, for plain-old-data
//! and for bincode (encoded in place into the ring, decoded from the receiver's reused
//! buffer), and, through `send_ref` and `recv_into`/`recv_with`, for messages whose `String`
//! and `Vec` fields own heap memory (decoded in place into the receiver's value). A counting global allocator, per thread, is the witness; this file is its own
//! test binary so that the allocator counts nothing else.

use serde::{Deserialize, Serialize};
use shmbus::codec::{Bincode, Bytes, Codec, Plain, Postcard};
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

#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
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

/// A message that owns heap memory in the ways serde decodes in place: strings, byte and
/// string vectors, a byte string ([`Bytes`]), a nested struct and a tuple holding them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
struct Ticket {
    seq: u64,
    owner: String,
    tags: Vec<String>,
    blob: Vec<u8>,
    payload: Bytes,
    meta: Meta,
    pair: (String, u16),
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
struct Meta {
    source: String,
    codes: Vec<u32>,
}

/// Tickets whose fields vary in length from message to message (up to their longest within
/// the first 100, which the warm-up receives); the number of tags stays the same, as reusing
/// their allocations asks.
fn ticket(i: u64) -> Ticket {
    let n = (i % 17) as usize;
    Ticket {
        seq: i,
        owner: "o".repeat(1 + n),
        tags: vec!["t".repeat(n), "u".repeat(16 - n)],
        blob: vec![i as u8; 3 * n],
        payload: Bytes::from(vec![!(i as u8); 40 - 2 * n]),
        meta: Meta {
            source: format!("src {i:05}"),
            codes: (0..n as u32).collect(),
        },
        pair: ("p".repeat(n + 2), i as u16),
    }
}

/// A ticket with what serde does not decode in place: an `Option` and an enum variant, each
/// holding a string, which are decoded new (serde's `Option` and derived enums replace the
/// value).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
struct Annotated {
    ticket: Ticket,
    note: Option<String>,
    kind: Kind,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
enum Kind {
    #[default]
    Empty,
    Named(String),
}

fn annotated(i: u64) -> Annotated {
    Annotated {
        ticket: ticket(i),
        note: Some(format!("note {i}")),
        kind: Kind::Named(format!("kind {i}")),
    }
}

/// How a run receives: into one reused value, or lent by the receiver.
#[derive(Clone, Copy, Debug)]
enum ByRef {
    Into,
    With,
}

/// As [`allocations_per_run`], sending with `send_ref`/`try_send_ref` and receiving with
/// `recv_into`/`try_recv_into` (into one value) or `recv_with`/`try_recv_with`.
fn allocations_per_run_by_ref<T, F, C>(
    make: impl Fn(u64) -> T,
    how: ByRef,
    backing_name: Option<&str>,
) -> u64
where
    T: PartialEq + std::fmt::Debug + Default + Send + Sync + 'static,
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
    let mut place = T::default();
    for i in 0..100 {
        tx.send_ref(&make(i)).unwrap();
        match how {
            ByRef::Into => rx.recv_into(&mut place).unwrap(),
            ByRef::With => rx.recv_with(|got| assert_eq!(*got, make(i))).unwrap(),
        }
    }
    let messages: Vec<T> = (0..MESSAGES).map(&make).collect();
    let mut wrong = 0u64;
    let before = allocations();
    for (i, msg) in messages.iter().enumerate() {
        match (how, i % 2 == 0) {
            (ByRef::Into, true) => {
                tx.send_ref(msg).unwrap();
                rx.recv_into(&mut place).unwrap();
            }
            (ByRef::Into, false) => {
                tx.try_send_ref(msg).unwrap();
                rx.try_recv_into(&mut place).unwrap();
            }
            (ByRef::With, true) => {
                tx.send_ref(msg).unwrap();
                wrong += u64::from(rx.recv_with(|got| got != msg).unwrap());
            }
            (ByRef::With, false) => {
                tx.try_send_ref(msg).unwrap();
                wrong += u64::from(rx.try_recv_with(|got| got != msg).unwrap());
            }
        }
        if matches!(how, ByRef::Into) {
            wrong += u64::from(place != *msg);
        }
    }
    let counted = allocations() - before;
    assert_eq!(wrong, 0, "messages received wrong");
    let probe = std::hint::black_box(Box::new(0u8));
    assert!(
        allocations() > before + counted,
        "the allocator counts nothing"
    );
    drop(probe);
    counted
}

#[test]
fn heap_owning_messages_allocate_nothing_per_message_through_send_ref_and_recv_into() {
    for how in [ByRef::Into, ByRef::With] {
        let spsc = allocations_per_run_by_ref::<Ticket, Spsc, Bincode>(ticket, how, None);
        assert_eq!(spsc, 0, "bincode, SPSC, {how:?}");
        let mpmc = allocations_per_run_by_ref::<Ticket, Mpmc, Bincode>(ticket, how, None);
        assert_eq!(mpmc, 0, "bincode, MPMC, {how:?}");
        let postcard = allocations_per_run_by_ref::<Ticket, Spsc, Postcard>(ticket, how, None);
        assert_eq!(postcard, 0, "postcard, SPSC, {how:?}");
    }
    let name = format!("/shmbus-t-noalloc-ref-{}", std::process::id());
    let named =
        allocations_per_run_by_ref::<Ticket, Spsc, Bincode>(ticket, ByRef::Into, Some(&name));
    assert_eq!(named, 0, "bincode, SPSC, named segment");
    let pod = allocations_per_run_by_ref::<Quote, Spsc, Plain>(quote, ByRef::Into, None);
    assert_eq!(pod, 0, "plain");
}

#[test]
fn options_and_enum_variants_are_decoded_new_and_allocate_only_what_they_hold() {
    // serde's limit, not the channel's: the note and the kind's string, 2 per message.
    let n = allocations_per_run_by_ref::<Annotated, Spsc, Bincode>(annotated, ByRef::Into, None);
    assert_eq!(n, 2 * MESSAGES);
}

#[test]
fn a_ticket_received_by_value_allocates_what_it_owns_which_recv_into_avoids() {
    // The reference point: `recv` makes a new value, allocating each non-empty string and
    // vector (owner, the tag vector and its two tags, blob, payload, source, codes, the
    // pair's string: 9, of which the first tag, the blob and the codes are empty in one in
    // 17).
    let n = allocations_per_run::<Ticket, Spsc, Bincode>(ticket, None);
    assert!(n >= 8 * MESSAGES, "{n} allocations for {MESSAGES} tickets");
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
