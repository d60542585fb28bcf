//! Opening a channel as the wrong type names both types in words (issue 14 item 4): the
//! segment's creator wrote its full type name into the segment (layout 1.1's info region),
//! and the opener's error reads it back, beside its own, rather than a fingerprint alone.
//!
//! The creator is this process, then a spawned child process (the test binary re-spawned):
//! the name must come from the segment, not from anything the opener's process knows.

mod common;

use common::{role, CHANNEL};
use shmbus::flavor::{Flavor, Mpmc, Spsc};
use shmbus::ChannelBuilder;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);

/// Whether `text` holds `word` with no identifier character on either side (so `u64` is not
/// found inside `Vec<u64x>`, and a fingerprint's hex digits never match a type name).
fn has_word(text: &str, word: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

/// The opener's error names the segment's type (`created`) and its own (`expected`) in words.
fn assert_names_both(err: &shmbus::Error, created: &str, expected: &[&str]) {
    assert!(
        matches!(err, shmbus::Error::TypeMismatch { .. }),
        "expected a type mismatch, got {err}"
    );
    let shown = err.to_string();
    assert!(
        has_word(&shown, created),
        "the error does not name the channel's type `{created}` in words: {shown}"
    );
    assert!(
        expected.iter().any(|name| has_word(&shown, name)),
        "the error does not name the opener's type ({expected:?}) in words: {shown}"
    );
}

const STRING: &[&str] = &["alloc::string::String", "String"];

fn opened_in_this_process<F: Flavor>() {
    let name = common::unique_name("mismatch-here");
    let _ch = ChannelBuilder::<u64, F>::new().create(&name).unwrap();
    let err = ChannelBuilder::<String, F>::new().open(&name).unwrap_err();
    assert_names_both(&err, "u64", STRING);
    // The other way round, and from the endpoint calls.
    let name = common::unique_name("mismatch-here-rev");
    let _tx = ChannelBuilder::<String, F>::new()
        .create_sender(&name)
        .unwrap();
    let err = ChannelBuilder::<u64, F>::new()
        .open_receiver(&name)
        .unwrap_err();
    assert_names_both(&err, "alloc::string::String", &["u64"]);
}

#[test]
fn spsc_a_u64_channel_opened_as_string_names_both_types() {
    opened_in_this_process::<Spsc>();
}

#[test]
fn mpmc_a_u64_channel_opened_as_string_names_both_types() {
    opened_in_this_process::<Mpmc>();
}

/// The child's side: creates a `u64` channel under the name it was given, and keeps it (its
/// creator owns the name) until the parent says it is done, on `NAME-done`.
fn creator_child<F: Flavor>() {
    let name = std::env::var(CHANNEL).unwrap();
    let mut done = shmbus::channel::<u8>()
        .create_receiver(&format!("{name}-done"))
        .unwrap();
    let _ch = ChannelBuilder::<u64, F>::new().create(&name).unwrap();
    assert_eq!(done.recv_timeout(LIMIT), Ok(1));
}

/// Opens `name` as a `String` channel, waiting until the child has created it.
fn open_as_string<F: Flavor>(name: &str) -> shmbus::Error {
    let deadline = Instant::now() + LIMIT;
    loop {
        match ChannelBuilder::<String, F>::new().open(name) {
            Err(shmbus::Error::Ring(shmbus::ring::Error::Os { code, .. }))
                if code.raw() == libc::ENOENT && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return e,
            Ok(_) => panic!("a u64 channel opened as String"),
        }
    }
}

fn created_by_a_child_process<F: Flavor>(test: &str) {
    if role().is_some() {
        return creator_child::<F>();
    }
    let name = common::unique_name("mismatch-child");
    let mut child = common::spawn(test, "creator", &name);
    let err = open_as_string::<F>(&name);
    // Let the child go first (it waits on NAME-done, created before the channel), so that
    // it unlinks its segments whatever the verdict.
    let mut done = shmbus::channel::<u8>()
        .open_sender(&format!("{name}-done"))
        .unwrap();
    done.send(1).unwrap();
    assert!(child.wait_within(LIMIT).success());
    assert_names_both(&err, "u64", STRING);
}

#[test]
fn spsc_a_u64_channel_created_by_a_child_process_and_opened_as_string_names_both_types() {
    created_by_a_child_process::<Spsc>(
        "spsc_a_u64_channel_created_by_a_child_process_and_opened_as_string_names_both_types",
    );
}

#[test]
fn mpmc_a_u64_channel_created_by_a_child_process_and_opened_as_string_names_both_types() {
    created_by_a_child_process::<Mpmc>(
        "mpmc_a_u64_channel_created_by_a_child_process_and_opened_as_string_names_both_types",
    );
}

#[test]
fn the_word_test_does_not_match_inside_names_or_fingerprints() {
    assert!(has_word("type `u64` (size 8)", "u64"));
    assert!(has_word("u64", "u64"));
    assert!(!has_word("fingerprint 0xcef6921ab275d7fa", "u64"));
    assert!(!has_word("my_u64 and u64x", "u64"));
    assert!(has_word("`alloc::string::String`", "alloc::string::String"));
}
