//! Huge pages: explicit ones back System V, memfd and anonymous rings where the host has a
//! pool (`vm.nr_hugepages`), and are refused with a typed error saying why where it has none
//! (the test then reports itself skipped, with that reason); transparent ones are a request
//! that never fails; a named POSIX segment gets explicit huge pages only from a hugetlbfs shm
//! directory.
#![cfg(not(loom))]

use shmbus_ring::segment::{huge_page_info, HugePages, SysvOptions};
use shmbus_ring::{Error, Segment, SegmentOptions, SpscConfig, SpscRing};
use shmbus_testkit::{unique_name, SysvSweep};

/// Streams a few thousand records through `ring` and checks them.
fn stream(ring: &SpscRing) {
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    for i in 0u64..5000 {
        tx.try_push(&i.to_le_bytes()).unwrap();
        assert_eq!(rx.try_pop_with(<[u8]>::to_vec).unwrap(), i.to_le_bytes());
    }
}

#[test]
fn explicit_huge_pages_back_sysv_memfd_and_anonymous_rings_where_the_host_has_them() {
    let name = unique_name("huge");
    let _sweep = SysvSweep::new(&name);
    let cfg = SpscConfig::new(1 << 20);
    let opts = SegmentOptions::default().huge_pages(HugePages::Explicit);
    let info = huge_page_info();
    // Three segments of one huge page each, plus room for a parallel test.
    let have = info.is_some_and(|i| i.free >= 4 && (i.size as usize) >= 1 << 21);
    let sysv = Segment::create_sysv(&name, cfg.segment_len(), &opts, &SysvOptions::new());
    if !have {
        let reason = match &info {
            None => "no hugetlb support in /proc/meminfo".to_string(),
            Some(i) => format!("HugePages_Total {}, HugePages_Free {}", i.total, i.free),
        };
        // Where there are none, the request is refused, saying why.
        match sysv {
            Err(Error::HugePages { reason: why, .. }) => {
                assert!(
                    why.contains("HugePages") || why.contains("hugetlb"),
                    "{why}"
                );
            }
            other => panic!("explicit huge pages on a host without them: {other:?}"),
        }
        assert!(matches!(
            Segment::anonymous(cfg.segment_len(), &opts),
            Err(Error::HugePages { .. })
        ));
        eprintln!("skipped: the host has no explicit huge pages to give ({reason}); the typed refusal was checked");
        return;
    }
    let size = info.unwrap().size as usize;
    let seg = sysv.unwrap();
    assert_eq!(seg.len() % size, 0, "whole huge pages");
    stream(&SpscRing::create_in(seg, &cfg).unwrap());
    let seg = Segment::memfd("shmbus-huge", cfg.segment_len(), &opts).unwrap();
    assert_eq!(seg.len() % size, 0);
    stream(&SpscRing::create_in(seg, &cfg).unwrap());
    let seg = Segment::anonymous(cfg.segment_len(), &opts).unwrap();
    assert_eq!(seg.len() % size, 0);
    stream(&SpscRing::create_in(seg, &cfg).unwrap());
    eprintln!("ran with explicit huge pages of {} KiB", size / 1024);
}

#[test]
fn transparent_huge_pages_are_a_request_that_never_fails() {
    let name = unique_name("thp");
    let _sweep = SysvSweep::new(&name);
    let cfg = SpscConfig::new(4 << 20);
    let opts = SegmentOptions::default().huge_pages(HugePages::Transparent);
    stream(&SpscRing::create_shm(&format!("{name}-posix"), &cfg, &opts).unwrap());
    stream(
        &SpscRing::create_sysv(&format!("{name}-sysv"), &cfg, &opts, &SysvOptions::new()).unwrap(),
    );
    stream(
        &SpscRing::create_in(Segment::anonymous(cfg.segment_len(), &opts).unwrap(), &cfg).unwrap(),
    );
}

#[test]
fn a_posix_segment_asks_for_explicit_huge_pages_only_from_a_hugetlbfs_directory() {
    let name = unique_name("huge-posix");
    let opts = SegmentOptions::default().huge_pages(HugePages::Explicit);
    match Segment::create(&name, 1 << 20, &opts) {
        Err(Error::HugePages { reason, .. }) => assert!(reason.contains("hugetlbfs"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(
        Segment::open(&name, &SegmentOptions::default()).is_err(),
        "nothing left behind"
    );
}
