#!/usr/bin/env bash
# Soak (not in CI): producer and consumer processes on one MPMC ring for a set time, with
# SIGKILLs at any instant, every message checksummed and accounted for exactly. The processes
# are the test binary of crates/shmbus-ring/tests/mpmc_processes.rs re-spawned in roles (test
# `soak_mpmc_processes`, ignored in normal runs; its docs give the accounting in full).
#
#   scripts/soak.sh [--minutes N] [--producers N] [--consumers N] [--kill[=anywhere|between]]
#
#   --minutes N       how long to run (default 10; fractions like 0.5 work)
#   --producers N     producer processes (default 3, at most 16)
#   --consumers N     consumer processes (default 3, at most 16)
#   --kill            SIGKILL a random producer or consumer every 0.1-1 s, wherever it is
#                     (mid-push, mid-pop, mid-bookkeeping), and start a successor that continues
#                     its stream (same as --kill=anywhere). The ring's death repair reaps the
#                     dead endpoint and repairs its claim (PROTOCOL §5.4, §7.3).
#   --kill=between    kill only while the victim is between two ring operations (the soak
#                     SIGSTOPs it and checks its busy flag first): nothing to repair.
#   SHMBUS_SOAK_SEED=N  replays the kill schedule's random choices (the soak prints its seed).
#
# Fails (non-zero exit, a line starting "SOAK FAILED") on: corruption; a duplicate; a message
# received that no producer committed; a loss other than the one the protocol allows (a consumer
# killed while holding the message it was taking loses that message: at most one per consumer
# kill, and the soak attributes each one); a process that dies on its own; 10 s without a
# message received (a stall). Reports at the end: messages acknowledged by producers vs
# received, messages a killed producer may have committed without acknowledging (allowed either
# way), kills of producers and consumers, losses attributed to killed consumers, the largest gap
# between received messages (max stall), and the seed.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=10 producers=3 consumers=3 kill=none
while [ $# -gt 0 ]; do
  case $1 in
    --minutes) minutes=$2; shift 2 ;;
    --producers) producers=$2; shift 2 ;;
    --consumers) consumers=$2; shift 2 ;;
    --kill | --kill=anywhere) kill=anywhere; shift ;;
    --kill=between) kill=between; shift ;;
    -h | --help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "soak.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
secs=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 }')

export SHMBUS_SOAK_SECS=$secs SHMBUS_SOAK_PRODUCERS=$producers SHMBUS_SOAK_CONSUMERS=$consumers
export SHMBUS_SOAK_KILL=$kill
exec cargo test --release -p shmbus-ring --test mpmc_processes soak_mpmc_processes -- \
  --ignored --exact --nocapture --test-threads=1
