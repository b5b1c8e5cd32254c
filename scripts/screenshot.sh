#!/bin/sh
# Renders a klinecast page (describe / report / backtest --html) to a PNG with headless Chromium,
# for the README and to check the layout, then shrinks it to a 256-colour palette with pngquant
# (lossless-looking on these flat charts; about a third of the size). Installs Chromium and
# pngquant from Debian packages if they are missing.
#   scripts/screenshot.sh PAGE.html OUT.png [WIDTH [HEIGHT]]     (default 1280 x 2000)
# The page is opened from disk; Chromium is told not to touch the network.
set -eu
if [ $# -lt 2 ]; then
    echo "usage: $0 PAGE.html OUT.png [WIDTH [HEIGHT]]" >&2
    exit 2
fi
page=$1
out=$2
width=${3:-1280}
height=${4:-2000}
need() { # need COMMAND PACKAGE: installs the Debian package when the command is missing
    command -v "$1" >/dev/null && return
    echo "installing $2 (apt-get)..." >&2
    apt-get install -y "$2" >&2 || { apt-get update >&2 && apt-get install -y "$2" >&2; }
}
if ! command -v chromium-browser >/dev/null; then
    need chromium chromium
fi
browser=$(command -v chromium || command -v chromium-browser)
need pngquant pngquant
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
abs=$(cd "$(dirname "$page")" && pwd)/$(basename "$page")
case $out in /*) target=$out ;; *) target=$(pwd)/$out ;; esac
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --hide-scrollbars \
    --user-data-dir="$profile" --screenshot="$target" --window-size="$width,$height" \
    "file://$abs" >/dev/null 2>&1
test -s "$target"
pngquant --force --strip --skip-if-larger --output "$target" -- "$target" || true
echo "wrote $target (${width}x${height}, $(wc -c <"$target") bytes)"
