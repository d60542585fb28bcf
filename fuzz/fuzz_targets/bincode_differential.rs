//! `bincode_differential`: shmbus's own bincode decoder against bincode's on arbitrary bytes.
//!
//! `Bincode<LIMIT>` must accept exactly what `bincode::serde::decode_from_slice` with
//! `with_limit::<LIMIT>()` accepts whole, to equal values (DECISIONS D78). The first byte
//! picks type and limit; the rest is the message. The cases are in `shmbus_testkit::decode`,
//! shared with the stable property tests.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmbus_testkit::decode;

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    decode::bincode_agrees(which, bytes);
});
