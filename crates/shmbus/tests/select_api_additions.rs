//! The small API additions that came with `Select`: fused iterators, and `len`/`is_empty`/
//! `is_full`/`capacity` on both ends (consistent with `try_send`/`try_recv`).

use std::iter::FusedIterator;

fn is_fused<I: FusedIterator>(_: &I) {}

/// Once `next` returned `None`, it keeps returning `None`, even when messages arrive later
/// (a new `try_iter()` sees them).
#[test]
fn try_iter_is_fused() {
    let ch = shmbus::channel::<u8>().in_process().unwrap();
    let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    tx.send(1).unwrap();
    {
        let mut it = rx.try_iter();
        is_fused(&it);
        assert_eq!(it.next(), Some(1));
        assert_eq!(it.next(), None);
    }
    tx.send(2).unwrap();
    {
        let mut it = rx.try_iter();
        assert_eq!(it.next(), Some(2));
        assert_eq!(it.next(), None);
        tx.send(3).unwrap();
        assert_eq!(it.next(), None, "fused: stays ended");
    }
    assert_eq!(rx.try_recv().unwrap(), 3);
}

/// A blocking iterator ends at an error (here: a message that cannot be decoded, which the
/// channel goes on from) and stays ended.
#[test]
fn iter_is_fused_after_an_error() {
    // A bincode channel of `bool`, and a raw ring producer writing a byte that is no bool.
    let ch = shmbus::channel::<bool>().mpmc().in_process().unwrap();
    let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    let mut raw = ch.ring().producer().unwrap();
    tx.send(true).unwrap();
    raw.try_push(&[7]).unwrap(); // not a bool
    tx.send(false).unwrap();
    {
        let mut it = rx.iter();
        is_fused(&it);
        assert_eq!(it.next(), Some(true));
        assert_eq!(it.next(), None); // the undecodable message ends it
        assert_eq!(it.next(), None, "fused: stays ended");
    }
    assert!(!rx.recv().unwrap());
    let into = rx.into_iter();
    is_fused(&into);
}
