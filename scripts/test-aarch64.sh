#!/usr/bin/env bash
# Runs the full test suite (unit, process and doc tests) built for aarch64, under qemu-user on a
# non-ARM machine, so a change that breaks the Pi build or behaves differently on ARM fails.
# The qemu runner is scripts/target-runner.sh (set in .cargo/config.toml); it also exports
# KLINECAST_TEST_RUNNER so process tests start the aarch64 binary through qemu
# (tests/common/mod.rs, klinecast_command). Same dev profile as the x86 tests.
# Usage: scripts/test-aarch64.sh [--armv7] [CARGO TEST ARGS...]
#   e.g. scripts/test-aarch64.sh --test collect
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cross-common.sh

target=aarch64
if [ "${1:-}" = --armv7 ]; then
    target=armv7
    shift
fi
cross_target "$target"
cross_check qemu
exec cargo test --locked --target "$TRIPLE" "$@"
