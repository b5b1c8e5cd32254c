#!/bin/sh
# Cargo's runner for the ARM targets (set in .cargo/config.toml): runs a built test or binary
# natively on an ARM host (a Pi building for itself) and under qemu-user anywhere else.
# Usage (cargo calls it): scripts/target-runner.sh aarch64|armv7 PROGRAM [ARGS...]
# Under qemu it also exports KLINECAST_TEST_RUNNER, so process tests (tests/common/mod.rs,
# klinecast_command) start the ARM klinecast binary through the same qemu: the host kernel
# cannot exec it itself unless binfmt_misc is registered, which CI's container does not have.
set -eu
if [ $# -lt 2 ]; then
    echo "usage: $0 aarch64|armv7 PROGRAM [ARGS...]" >&2
    exit 2
fi
arch=$1
shift
case "$arch" in
aarch64)
    qemu=qemu-aarch64
    sysroot=/usr/aarch64-linux-gnu
    native="aarch64 arm64"
    ;;
armv7)
    qemu=qemu-arm
    sysroot=/usr/arm-linux-gnueabihf
    native="armv7l armv8l"
    ;;
*)
    echo "$0: unknown architecture $arch (expected aarch64 or armv7)" >&2
    exit 2
    ;;
esac
host=$(uname -m)
for m in $native; do
    if [ "$host" = "$m" ]; then
        exec "$@"
    fi
done
if ! command -v "$qemu" >/dev/null 2>&1; then
    echo "$0: $qemu not found: install qemu-user (apt-get install qemu-user) or run scripts/ci-install.sh" >&2
    exit 127
fi
if [ ! -d "$sysroot" ]; then
    echo "$0: $sysroot not found: install the cross libc (scripts/ci-install.sh)" >&2
    exit 127
fi
: "${KLINECAST_TEST_RUNNER:=$qemu -L $sysroot}"
export KLINECAST_TEST_RUNNER
exec "$qemu" -L "$sysroot" "$@"
