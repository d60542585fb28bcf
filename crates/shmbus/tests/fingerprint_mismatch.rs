//! The type fingerprint and codec are written at creation and checked at open: a mismatch is
//! an error that names both sides.

mod common;

use serde::{Deserialize, Serialize};
use shmbus::codec::{Bincode, Plain, Postcard, Raw};
use shmbus::fingerprint::TypeIdentity;
use shmbus::flavor::{Mpmc, Spsc};
use shmbus::ChannelBuilder;

#[derive(
    Serialize, Deserialize, Debug, PartialEq, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable,
)]
#[repr(C)]
struct Position {
    x: f64,
    y: f64,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Velocity {
    x: f64,
    y: f64,
}

#[test]
fn opening_with_another_type_names_both_fingerprints_and_codecs() {
    let name = common::unique_name("fp-type");
    let _tx = shmbus::channel::<Position>().create_sender(&name).unwrap();
    let err = shmbus::channel::<Velocity>()
        .open_receiver(&name)
        .unwrap_err();
    let created = TypeIdentity::of::<Position, Bincode>(None);
    match &err {
        shmbus::Error::TypeMismatch {
            target,
            expected,
            found_fingerprint,
            found_codec_id,
            ..
        } => {
            assert_eq!(target, &name);
            assert_eq!(*found_fingerprint, created.fingerprint);
            assert_eq!(*found_codec_id, 1);
            assert!(expected.type_name.ends_with("Velocity"));
        }
        other => panic!("expected TypeMismatch, got {other}"),
    }
    let shown = err.to_string();
    assert!(
        shown.contains(&format!("{:#018x}", created.fingerprint)),
        "{shown}"
    );
    assert!(
        shown.contains(&format!(
            "{:#018x}",
            TypeIdentity::of::<Velocity, Bincode>(None).fingerprint
        )),
        "{shown}"
    );
    assert!(
        shown.contains("Velocity") && shown.contains("bincode (id 1)"),
        "{shown}"
    );
    // The right type opens.
    assert!(shmbus::channel::<Position>().open_receiver(&name).is_ok());
}

#[test]
fn opening_with_another_codec_is_a_mismatch_naming_both_codecs() {
    let name = common::unique_name("fp-codec");
    let _ch = shmbus::channel::<Position>().create(&name).unwrap();
    let err = shmbus::channel::<Position>()
        .codec::<Postcard>()
        .open(&name)
        .unwrap_err();
    let shown = err.to_string();
    assert!(matches!(
        err,
        shmbus::Error::TypeMismatch {
            found_codec_id: 1,
            ..
        }
    ));
    assert!(
        shown.contains("bincode (id 1)") && shown.contains("postcard (id 2)"),
        "{shown}"
    );
    let err = shmbus::channel::<Position>()
        .codec::<Plain>()
        .open(&name)
        .unwrap_err();
    assert!(err.to_string().contains("plain (id 3)"), "{err}");
    // A raw opener sees a typed channel as a mismatch too.
    let err = shmbus::channel::<Vec<u8>>()
        .codec::<Raw>()
        .open(&name)
        .unwrap_err();
    assert!(
        matches!(err, shmbus::Error::TypeMismatch { expected, .. } if expected.fingerprint == 0)
    );
}

#[test]
fn a_type_name_given_to_both_builders_lets_differently_named_types_meet() {
    mod producer {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        pub struct Order(pub u32);
    }
    mod consumer {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        pub struct Order(pub u32);
    }
    let name = common::unique_name("fp-named");
    let mut tx = shmbus::channel::<producer::Order>()
        .type_name("orders.v1")
        .create_sender(&name)
        .unwrap();
    // Without the name, the paths differ and so do the fingerprints.
    assert!(shmbus::channel::<consumer::Order>().open(&name).is_err());
    let mut rx = shmbus::channel::<consumer::Order>()
        .type_name("orders.v1")
        .open_receiver(&name)
        .unwrap();
    tx.send(producer::Order(9)).unwrap();
    assert_eq!(rx.recv().unwrap(), consumer::Order(9));
}

#[test]
fn opening_a_channel_of_the_other_flavor_is_refused_by_the_ring_kind() {
    let name = common::unique_name("fp-flavor");
    let _ch = ChannelBuilder::<u32, Mpmc>::new().create(&name).unwrap();
    let err = ChannelBuilder::<u32, Spsc>::new().open(&name).unwrap_err();
    assert!(
        matches!(
            err,
            shmbus::Error::Ring(shmbus::ring::Error::WrongKind { .. })
        ),
        "{err}"
    );
}

#[test]
fn fingerprints_are_stable_across_builds() {
    // FNV-1a over fixed bytes: this value must never change, or processes built by different
    // compilers would refuse each other.
    let id = TypeIdentity::of::<u64, Bincode>(None);
    assert_eq!((id.size, id.align, id.codec_id), (8, 8, 1));
    let mut bytes = b"shmbus type fingerprint v1\0u64\0".to_vec();
    bytes.extend_from_slice(&8u64.to_le_bytes());
    bytes.extend_from_slice(&8u64.to_le_bytes());
    bytes.extend_from_slice(&1u32.to_le_bytes());
    assert_eq!(id.fingerprint, shmbus::fingerprint::fnv1a(&bytes));
    assert_eq!(id.fingerprint, 0xcef6_921a_b275_d7fa);
    assert_eq!(
        TypeIdentity::of::<u64, Bincode>(Some("u64")).fingerprint,
        id.fingerprint
    );
}
