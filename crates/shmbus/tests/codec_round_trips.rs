//! Property tests: varied serde types (enums, nested structs, strings, vectors, maps, options,
//! unit) go through a channel and come out equal, through each codec and both flavors;
//! plain-old-data and raw bytes likewise.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde::{Deserialize, Serialize};
use shmbus::codec::{Bincode, Codec, Plain, Postcard, Raw};
use shmbus::flavor::{Flavor, Mpmc, Spsc};
use shmbus::ChannelBuilder;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Shape {
    Empty,
    Circle { radius: f64 },
    Polygon(Vec<(i32, i32)>),
    Labelled(String, Option<Box<Shape>>),
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Inner {
    x: i16,
    y: Option<u32>,
    flags: Vec<Option<bool>>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct UnitStruct;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Record {
    id: u64,
    name: String,
    tags: Vec<String>,
    attributes: BTreeMap<String, i64>,
    counts: HashMap<u16, Vec<u8>>,
    inner: Option<Inner>,
    shape: Shape,
    unit: (),
    marker: UnitStruct,
    letter: char,
    tiny: i8,
    huge: u128,
    pair: (bool, f32),
}

fn shape() -> impl Strategy<Value = Shape> {
    let leaf = prop_oneof![
        Just(Shape::Empty),
        (-1e9..1e9f64).prop_map(|radius| Shape::Circle { radius }),
        prop::collection::vec(any::<(i32, i32)>(), 0..8).prop_map(Shape::Polygon),
    ];
    leaf.prop_recursive(3, 8, 2, |inner| {
        (".{0,12}", prop::option::of(inner))
            .prop_map(|(s, next)| Shape::Labelled(s, next.map(Box::new)))
    })
}

fn record() -> impl Strategy<Value = Record> {
    let inner = (
        any::<i16>(),
        any::<Option<u32>>(),
        prop::collection::vec(any::<Option<bool>>(), 0..10),
    )
        .prop_map(|(x, y, flags)| Inner { x, y, flags });
    (
        (
            any::<u64>(),
            ".{0,40}",
            prop::collection::vec("[a-z]{0,6}", 0..6),
            prop::collection::btree_map(".{0,8}", any::<i64>(), 0..6),
            prop::collection::hash_map(
                any::<u16>(),
                prop::collection::vec(any::<u8>(), 0..12),
                0..4,
            ),
        ),
        (
            prop::option::of(inner),
            shape(),
            any::<char>(),
            any::<i8>(),
            any::<u128>(),
            (any::<bool>(), -1e6..1e6f32),
        ),
    )
        .prop_map(
            |((id, name, tags, attributes, counts), (inner, shape, letter, tiny, huge, pair))| {
                Record {
                    id,
                    name,
                    tags,
                    attributes,
                    counts,
                    inner,
                    shape,
                    unit: (),
                    marker: UnitStruct,
                    letter,
                    tiny,
                    huge,
                    pair,
                }
            },
        )
}

/// Every generated value, sent through one channel of flavor `F` and codec `C`, is received
/// equal. One channel serves all cases, so the ring wraps many times.
fn round_trips<T, F, C>(strategy: impl Strategy<Value = T>, max_message: usize)
where
    T: Clone + Debug + PartialEq,
    F: Flavor,
    C: Codec<T>,
{
    let ch = ChannelBuilder::<T, F, C>::new()
        .capacity(4)
        .max_message(max_message)
        .in_process()
        .unwrap();
    let tx = RefCell::new(ch.sender().unwrap());
    let rx = RefCell::new(ch.receiver().unwrap());
    let mut runner = TestRunner::new(Config::with_cases(300));
    runner
        .run(&strategy, |value| {
            tx.borrow_mut()
                .try_send(value.clone())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let got = rx
                .borrow_mut()
                .try_recv()
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(got, value);
            Ok(())
        })
        .unwrap();
}

#[test]
fn varied_serde_types_round_trip_through_bincode_on_spsc() {
    round_trips::<Record, Spsc, Bincode>(record(), 16 << 10);
}

#[test]
fn varied_serde_types_round_trip_through_bincode_on_mpmc() {
    round_trips::<Record, Mpmc, Bincode>(record(), 16 << 10);
}

#[test]
fn varied_serde_types_round_trip_through_postcard_on_spsc() {
    round_trips::<Record, Spsc, Postcard>(record(), 16 << 10);
}

#[test]
fn varied_serde_types_round_trip_through_postcard_on_mpmc() {
    round_trips::<Record, Mpmc, Postcard>(record(), 16 << 10);
}

#[test]
fn enums_options_and_maps_alone_round_trip_through_both_serde_codecs() {
    round_trips::<Shape, Spsc, Bincode>(shape(), 4096);
    round_trips::<Shape, Spsc, Postcard>(shape(), 4096);
    let opt = prop::option::of(".{0,20}");
    round_trips::<Option<String>, Spsc, Bincode>(opt.clone(), 256);
    round_trips::<Option<String>, Mpmc, Postcard>(opt, 256);
    let map = prop::collection::btree_map(any::<u32>(), any::<Option<i8>>(), 0..20);
    round_trips::<BTreeMap<u32, Option<i8>>, Mpmc, Bincode>(map.clone(), 1024);
    round_trips::<BTreeMap<u32, Option<i8>>, Spsc, Postcard>(map, 1024);
}

#[test]
fn unit_messages_encode_to_nothing_and_still_arrive_one_by_one() {
    for_unit::<Spsc, Bincode>();
    for_unit::<Mpmc, Bincode>();
    for_unit::<Spsc, Postcard>();
    for_unit::<Mpmc, Postcard>();

    fn for_unit<F: Flavor, C: Codec<()>>() {
        assert_eq!(C::encoded_len(&()).unwrap(), 0);
        let ch = ChannelBuilder::<(), F, C>::new().in_process().unwrap();
        let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
        tx.send(()).unwrap();
        tx.send(()).unwrap();
        assert_eq!(rx.try_recv(), Ok(()));
        assert_eq!(rx.try_recv(), Ok(()));
        assert!(rx.try_recv().unwrap_err().is_empty());
    }
}

#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Sample {
    t: u64,
    values: [f32; 6],
    channel: u16,
    flags: u16,
    _pad: u32,
}

#[test]
fn plain_old_data_round_trips_bit_for_bit_on_both_flavors() {
    let sample = (any::<u64>(), any::<[u32; 6]>(), any::<u16>(), any::<u16>()).prop_map(
        |(t, bits, channel, flags)| Sample {
            t,
            // Any finite value (no NaN, which would not compare equal to itself).
            values: bits.map(|b| f32::from_bits(b & 0x7f7f_ffff)),
            channel,
            flags,
            _pad: 0,
        },
    );
    round_trips::<Sample, Spsc, Plain>(sample.clone(), size_of::<Sample>());
    round_trips::<Sample, Mpmc, Plain>(sample, size_of::<Sample>());
}

#[test]
fn raw_bytes_round_trip_with_every_length_up_to_the_maximum() {
    let bytes = prop::collection::vec(any::<u8>(), 0..=300);
    round_trips::<Vec<u8>, Spsc, Raw>(bytes.clone(), 300);
    round_trips::<Vec<u8>, Mpmc, Raw>(bytes, 300);
}

#[test]
fn a_raw_channel_opens_a_ring_made_without_types() {
    use shmbus::ring::{SegmentOptions, SpscConfig, SpscRing};
    let name = format!("/shmbus-t-raw-interop-{}", std::process::id());
    let ring =
        SpscRing::create_shm(&name, &SpscConfig::new(1024), &SegmentOptions::default()).unwrap();
    let mut producer = ring.producer().unwrap();
    producer.try_push(b"untyped").unwrap();
    // Raw channels carry fingerprint and codec 0, like a ring made with the ring API.
    let mut rx = shmbus::channel::<Vec<u8>>()
        .codec::<Raw>()
        .open_receiver(&name)
        .unwrap();
    assert_eq!(rx.try_recv().unwrap(), b"untyped");
}
