#!/usr/bin/env bash
# CI of the shmbus-zenoh workspace (its own workspace, so that the main `cargo test
# --workspace` never compiles Zenoh): format, lints, tests, and cargo-deny when it is on
# PATH (`.ci/run` installs it). `.ci/run` calls it; it also runs alone.
# The end-to-end tests make mount namespaces (`unshare -m`, root): without them they print
# SKIPPED and pass.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TERM_COLOR=never
export CARGO_INCREMENTAL=0
export CARGO_TARGET_DIR="${SHMBUS_ZENOH_TARGET:-$PWD/target}"

step() { printf '\n=== shmbus-zenoh: %s ===\n' "$*"; }

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --locked --all-targets -- -D warnings

step "cargo test"
cargo test --locked

if command -v cargo-deny >/dev/null 2>&1; then
  step "cargo deny check licenses bans sources"
  cargo deny check licenses bans sources
fi
