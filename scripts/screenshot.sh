#!/bin/sh
# Renders a klinecast page (describe / report / backtest --html) to a PNG with headless Chromium,
# for the README and to check the layout. Installs Chromium from Debian packages if it is missing.
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
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
    echo "installing chromium (apt-get)..." >&2
    apt-get install -y chromium >&2 || { apt-get update >&2 && apt-get install -y chromium >&2; }
    browser=$(command -v chromium)
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
abs=$(cd "$(dirname "$page")" && pwd)/$(basename "$page")
case $out in /*) target=$out ;; *) target=$(pwd)/$out ;; esac
"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --hide-scrollbars \
    --user-data-dir="$profile" --screenshot="$target" --window-size="$width,$height" \
    "file://$abs" >/dev/null 2>&1
test -s "$target" && echo "wrote $target (${width}x${height})"
