#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 60), one after another on a single
# worker, and exits non-zero if any target found something (crash, panic, timeout, OOM).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Each target's corpus
# grows in fuzz/corpus/<target> (git-ignored), seeded from fuzz/seeds/<target> (committed);
# findings land in fuzz/artifacts/<target>/ and the full libFuzzer output in
# fuzz/logs/<target>.log. The last line printed per target carries libFuzzer's figures:
# executions, coverage (cov: edges, ft: features), corpus size, exec/s.
set -uo pipefail
cd "$(dirname "$0")/../fuzz"

secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(ring_ops open_segment hostile_peer decode bincode_differential)
fi
case $secs in
  '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac

mkdir -p logs
cargo +nightly fuzz build || exit 2

failed=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "seeds/$t"
  before=$(find "artifacts/$t" -type f 2>/dev/null | wc -l)
  echo "=== $t: ${secs}s ($(date +%T))"
  # -timeout: one input running longer than 10 s is a hang (the rings bound every walk).
  cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"logs/$t.log" 2>&1
  rc=$?
  after=$(find "artifacts/$t" -type f 2>/dev/null | wc -l)
  grep -E '^#[0-9]+[[:space:]]+DONE' "logs/$t.log" | tail -1
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "logs/$t.log"
  if [ $rc -ne 0 ] || [ "$after" -gt "$before" ]; then
    echo "!!! $t: finding (exit $rc); see fuzz/logs/$t.log and fuzz/artifacts/$t/"
    grep -E 'panicked at|ERROR: libFuzzer|^SUMMARY' "logs/$t.log" | head -5
    failed+=("$t")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "findings in: ${failed[*]}"
  exit 1
fi
echo "no findings in ${targets[*]} (${secs}s each)"
