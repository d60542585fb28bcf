//! `decode`: arbitrary bytes through each codec's decoder, with its size limit.
//!
//! A message in the ring comes from another process and may be anything. Decoding must return
//! the message or an error — never panic, abort on a huge allocation (bincode 2 without a
//! limit aborts on a 9-byte message that claims a 2^40-byte string), or loop. When a decode
//! succeeds, encoding the value again and decoding that must give the same value.
//!
//! The first byte picks codec and type; the rest is the message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};
use shmbus::codec::{Bincode, Codec, Plain, Postcard, Raw};
use std::collections::BTreeMap;

#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Shape {
    Unit,
    Point(i32, i32),
    Rect { w: u32, h: u32 },
    Path(Vec<(i16, i16)>),
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Order {
    id: u64,
    symbol: String,
    tags: Vec<String>,
    attrs: BTreeMap<String, Vec<u8>>,
    shape: Option<Shape>,
    flags: (bool, u8, i64),
    unit: (),
}

/// A small limit, so that limit handling is exercised with short inputs.
type SmallBincode = Bincode<1024>;

fn round_trip<C: Codec<T>, T: PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    let Ok(v) = C::decode(bytes) else { return };
    let len = C::encoded_len(&v).expect("a decoded value encodes");
    let mut buf = vec![0u8; len];
    let n = C::encode(&v, &mut buf).expect("encodes into its encoded_len");
    assert_eq!(n, len, "encode wrote encoded_len bytes");
    let again = C::decode(&buf[..n]).expect("a re-encoded value decodes");
    assert_eq!(again, v, "decode(encode(decode(x))) == decode(x)");
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 8 {
        0 => round_trip::<Bincode, Order>(bytes),
        1 => round_trip::<SmallBincode, Order>(bytes),
        2 => round_trip::<Postcard, Order>(bytes),
        3 => round_trip::<Bincode, String>(bytes),
        4 => round_trip::<Bincode, Vec<Vec<u64>>>(bytes),
        5 => round_trip::<Postcard, Vec<String>>(bytes),
        6 => round_trip::<Plain, [u64; 4]>(bytes),
        _ => round_trip::<Raw, Vec<u8>>(bytes),
    }
});
