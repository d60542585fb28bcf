//! The shmbus benchmark harness (work in progress).
fn main() {}
