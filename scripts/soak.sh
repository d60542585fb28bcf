#!/usr/bin/env bash
# Soak (not in CI): producer and consumer processes on one MPMC ring for a set time, every
# message checksummed and accounted for; exits non-zero on any loss, duplicate, corruption,
# crash or stall. The processes are the test binary of crates/shmbus-ring/tests/mpmc_processes.rs
# re-spawned in roles (test `soak_mpmc_processes`, ignored in normal runs).
#
#   scripts/soak.sh [--minutes N] [--producers N] [--consumers N] [--kill[=between|anywhere]]
#
#   --minutes N       how long to run (default 10; fractions like 0.5 work)
#   --producers N     producer processes (default 3, at most 16)
#   --consumers N     consumer processes (default 3, at most 16)
#   --kill            SIGKILL a random producer or consumer every 0.1-1 s and start a successor,
#                     but only while the victim is between two ring operations (the default,
#                     `between`; the soak SIGSTOPs it and checks its busy flag first).
#   --kill=anywhere   kill wherever the victim is. Needs death repair (a later issue): until
#                     then a producer killed holding a claim wedges the ring and a consumer
#                     killed holding a message loses it, so this mode is EXPECTED TO FAIL.
#   SHMBUS_SOAK_SEED=N  replays the kill schedule's random choices (the soak prints its seed).
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=10 producers=3 consumers=3 kill=none
while [ $# -gt 0 ]; do
  case $1 in
    --minutes) minutes=$2; shift 2 ;;
    --producers) producers=$2; shift 2 ;;
    --consumers) consumers=$2; shift 2 ;;
    --kill | --kill=between) kill=between; shift ;;
    --kill=anywhere) kill=anywhere; shift ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "soak.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
secs=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 }')

export SHMBUS_SOAK_SECS=$secs SHMBUS_SOAK_PRODUCERS=$producers SHMBUS_SOAK_CONSUMERS=$consumers
export SHMBUS_SOAK_KILL=$kill
exec cargo test --release -p shmbus-ring --test mpmc_processes soak_mpmc_processes -- \
  --ignored --exact --nocapture --test-threads=1
