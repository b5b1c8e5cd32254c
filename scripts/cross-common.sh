# Sourced by scripts/cross-build.sh, scripts/test-aarch64.sh and scripts/ci-install.sh: what each
# Pi target needs and a check that says what is missing. Defines variables and functions only.

# cross_target NAME: sets TRIPLE, CROSS_GCC, APT_PKGS, QEMU, SYSROOT for aarch64 or armv7.
cross_target() {
    # Debian names the cross gcc, its package and the sysroot after the GNU triplet.
    local gnu
    case "$1" in
    aarch64 | aarch64-unknown-linux-gnu)
        TRIPLE=aarch64-unknown-linux-gnu
        gnu=aarch64-linux-gnu
        APT_PKGS="gcc-$gnu libc6-dev-arm64-cross"
        QEMU=qemu-aarch64
        ;;
    armv7 | armv7-unknown-linux-gnueabihf)
        TRIPLE=armv7-unknown-linux-gnueabihf
        gnu=arm-linux-gnueabihf
        APT_PKGS="gcc-$gnu libc6-dev-armhf-cross"
        QEMU=qemu-arm
        ;;
    *)
        echo "unknown target $1 (expected aarch64 or armv7)" >&2
        return 2
        ;;
    esac
    CROSS_GCC=$gnu-gcc
    SYSROOT=/usr/$gnu
}

# cross_check [qemu]: after cross_target, checks the Rust target, the cross gcc, the cross libc
# and (with "qemu") the emulator; prints what is missing and how to install it, returns 1 then.
cross_check() {
    local missing=() install=() sysroot
    if ! command -v cargo >/dev/null 2>&1; then
        echo "cargo not found: install Rust with rustup (https://rustup.rs)" >&2
        return 1
    fi
    sysroot=$(rustc --print sysroot)
    if [ ! -d "$sysroot/lib/rustlib/$TRIPLE/lib" ]; then
        missing+=("Rust standard library for $TRIPLE")
        install+=("rustup target add $TRIPLE")
    fi
    local apt=()
    if ! command -v "$CROSS_GCC" >/dev/null 2>&1 || [ ! -e "$SYSROOT/lib/crt1.o" ]; then
        missing+=("cross C compiler and libc ($CROSS_GCC, $SYSROOT)")
        apt+=($APT_PKGS)
    fi
    if [ "${1:-}" = qemu ] && ! command -v "$QEMU" >/dev/null 2>&1; then
        missing+=("$QEMU (qemu-user, to run $TRIPLE programs on this machine)")
        apt+=(qemu-user)
    fi
    if [ ${#apt[@]} -gt 0 ]; then
        install+=("sudo apt-get install ${apt[*]}")
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        echo "missing for $TRIPLE:" >&2
        printf '  - %s\n' "${missing[@]}" >&2
        echo "set it up once with:" >&2
        printf '  %s\n' "${install[@]}" >&2
        echo "(or run scripts/ci-install.sh, which installs all of it on Debian/Ubuntu)" >&2
        return 1
    fi
}
