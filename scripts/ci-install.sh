#!/usr/bin/env bash
# Installs, once, what CI and the Pi cross builds need on Debian/Ubuntu: the cross gcc and libc
# for aarch64 and armv7, qemu-user, the two rustup targets, rustfmt and clippy. Idempotent and
# quiet: it checks first, installs only what is missing, and prints output only on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cross-common.sh

# quiet CMD...: runs CMD with its output kept aside, shown only if it fails.
quiet() {
    local log status=0
    log=$(mktemp)
    "$@" >"$log" 2>&1 || status=$?
    if [ "$status" -ne 0 ]; then
        echo "ci-install: failed ($status): $*" >&2
        cat "$log" >&2
    fi
    rm -f "$log"
    return "$status"
}

packages="qemu-user"
for target in aarch64 armv7; do
    cross_target "$target"
    packages="$packages $APT_PKGS"
done
missing=()
for package in $packages; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        sudo=(sudo)
    fi
    echo "ci-install: apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt_options=(-q -o DPkg::Lock::Timeout=600)
    quiet "${sudo[@]}" apt-get "${apt_options[@]}" update
    quiet "${sudo[@]}" apt-get "${apt_options[@]}" install -y --no-install-recommends "${missing[@]}"
fi

if command -v rustup >/dev/null 2>&1; then
    installed=$(rustup target list --installed)
    for target in aarch64 armv7; do
        cross_target "$target"
        if ! grep -qx "$TRIPLE" <<<"$installed"; then
            echo "ci-install: rustup target add $TRIPLE"
            quiet rustup target add "$TRIPLE"
        fi
    done
    for component in rustfmt clippy; do
        if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
            echo "ci-install: rustup component add $component"
            quiet rustup component add "$component"
        fi
    done
fi

# Fail here, with the exact missing piece, rather than deep inside a build.
for target in aarch64 armv7; do
    cross_target "$target"
    cross_check qemu
done
