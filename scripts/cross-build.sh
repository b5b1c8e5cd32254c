#!/usr/bin/env bash
# Builds the release binary for the Raspberry Pi with Debian's cross gcc (linker and cc settings
# in .cargo/config.toml) and reports its size against the 4 MB goal.
# Usage: scripts/cross-build.sh [aarch64|armv7|all]   (default aarch64: 64-bit Raspberry Pi OS;
#        armv7 is for 32-bit Raspberry Pi OS on a Pi 2 or later)
# Output: target/<triple>/release/klinecast (stripped by the release profile).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cross-common.sh

case "${1:-aarch64}" in
all) targets=(aarch64 armv7) ;;
aarch64 | armv7) targets=("${1:-aarch64}") ;;
-h | --help)
    sed -n '2,6p' "$0"
    exit 0
    ;;
*)
    echo "usage: $0 [aarch64|armv7|all]" >&2
    exit 2
    ;;
esac

goal=4000000
for target in "${targets[@]}"; do
    cross_target "$target"
    cross_check
done
for target in "${targets[@]}"; do
    cross_target "$target"
    cargo build --release --locked --target "$TRIPLE" --bin klinecast
    binary="target/$TRIPLE/release/klinecast"
    size=$(stat -c %s "$binary")
    verdict="within"
    if [ "$size" -gt "$goal" ]; then
        verdict="OVER"
    fi
    awk -v b="$binary" -v s="$size" -v v="$verdict" -v g="$goal" \
        'BEGIN { printf "%s: %d bytes (%.2f MB, %s the %d MB goal)\n", b, s, s / 1e6, v, g / 1e6 }'
done
