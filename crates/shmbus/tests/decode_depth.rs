//! The typed decoder's nesting limit (DECISIONS D82): a hostile peer's message that nests
//! deeper than `MAX_DEPTH` (256) levels is a decode error, not a stack overflow that aborts the
//! receiving process; anything up to the limit decodes as bincode decodes it.

use serde::{Deserialize, Serialize};
use shmbus::codec::{Bincode, Codec};

/// One level per byte on the wire: variant 1 (`Node`) or 0 (`Leaf`).
#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Tree {
    Leaf,
    Node(Box<Tree>),
}

/// `nodes` nodes over a leaf: `nodes + 1` enum levels.
fn tree_bytes(nodes: usize) -> Vec<u8> {
    let mut bytes = vec![1u8; nodes];
    bytes.push(0);
    bytes
}

/// Decodes on a thread with a 2 MiB stack (the default for spawned threads); the value is
/// dropped there too (dropping a deep chain of boxes recurses as well).
fn decodes_on_a_small_stack<T: Serialize + for<'de> Deserialize<'de> + Send + 'static>(
    bytes: Vec<u8>,
) -> Result<(), String> {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            <Bincode as Codec<T>>::decode(&bytes)
                .map(drop)
                .map_err(|e| e.to_string())
        })
        .unwrap()
        .join()
        .expect("the decoding thread must not die (a stack overflow aborts the whole process)")
}

#[test]
fn nesting_up_to_the_limit_decodes_as_bincode_decodes_it() {
    for nodes in [0, 1, 100, 255] {
        let bytes = tree_bytes(nodes);
        let ours = <Bincode as Codec<Tree>>::decode(&bytes).unwrap();
        let (theirs, used): (Tree, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(ours, theirs, "{nodes} nodes");
    }
}

#[test]
fn one_level_more_is_a_decode_error_naming_the_depth() {
    let err = <Bincode as Codec<Tree>>::decode(&tree_bytes(256)).unwrap_err();
    assert!(err.is_decode(), "{err}");
    assert!(err.to_string().contains("nested more than 256"), "{err}");
}

#[test]
fn a_hostile_deep_message_is_refused_not_a_stack_overflow() {
    // 1 MiB of nesting: bincode's decoder overflows a 2 MiB stack at 8 192-16 384 levels.
    let err = decodes_on_a_small_stack::<Tree>(tree_bytes(1 << 20)).unwrap_err();
    assert!(err.contains("nested more than 256"), "{err}");
    // Every kind of level counts: options, sequences and structs nested in each other.
    #[derive(Serialize, Deserialize)]
    struct Node {
        _next: Option<Vec<Node>>,
    }
    // A `Node` is a struct level, its `Some` an option level and its vector a sequence level:
    // three levels a node. Some(1 element) repeated, then None.
    let mut bytes = Vec::new();
    for _ in 0..100_000 {
        bytes.extend_from_slice(&[1, 1]);
    }
    bytes.push(0);
    let err = decodes_on_a_small_stack::<Node>(bytes).unwrap_err();
    assert!(err.contains("nested more than 256"), "{err}");
}

#[test]
fn the_limit_counts_nesting_not_length() {
    // A long flat sequence of structs is one level deep however long it is.
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Pair(u8, Option<u8>);
    let flat: Vec<Pair> = (0..10_000).map(|i| Pair(i as u8, Some(1))).collect();
    let mut buf = vec![0u8; 64 << 10];
    let n = <Bincode as Codec<Vec<Pair>>>::encode(&flat, &mut buf).unwrap();
    assert_eq!(
        <Bincode as Codec<Vec<Pair>>>::decode(&buf[..n]).unwrap(),
        flat
    );
}
