//! `decode`: arbitrary bytes through each codec's decoder, with its size limit.
//!
//! A message in the ring comes from another process and may be anything. Decoding must return
//! the message or an error — never panic, abort on a huge allocation (bincode 2 without a
//! limit aborts on a 9-byte message that claims a 2^40-byte string), or loop. When a decode
//! succeeds, encoding the value again and decoding that must give the same value.
//!
//! The first byte picks codec and type; the rest is the message. The cases are in
//! `shmbus_testkit::decode`, shared with the stable property test.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmbus_testkit::decode;

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    decode::one(which, bytes);
});
