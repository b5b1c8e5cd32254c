#!/usr/bin/env bash
# Runs every fuzz target in tests/fuzz.rs for a fixed time each, in release mode.
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [SEED]     (defaults: 60 s, seed 1)
# A panic saves the input under tests/fuzz-regressions/<target>/ and fails the run; keep the
# file (it becomes a regression test) and fix the code it found.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
seed="${2:-1}"
export KLINECAST_FUZZ_SECONDS="$secs" KLINECAST_FUZZ_SEED="$seed"
exec cargo test --release --test fuzz -- --test-threads=1 --nocapture 2>&1
