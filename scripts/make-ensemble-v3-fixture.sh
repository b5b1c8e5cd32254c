#!/usr/bin/env bash
# Makes tests/fixtures/ensemble-v3.bin: an EnsembleModel.bin written by the last v3 writer
# (the parent of commit e71b242 "Ensemble file v4"), so that tests can check that v3 files still
# load. It builds that commit in a temporary git worktree under /tmp, trains it on the first 600
# rows of data/AVAXUSDT_1m.csv and streams 15 klines (three windows of 5, two window
# generations of 120 rows, seed 1) from its own replay server, then copies the saved ensemble.
#   scripts/make-ensemble-v3-fixture.sh [COMMIT]     (default: e71b242^)
# CARGO_TARGET_DIR may point at an existing target directory to save the dependency build.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
commit=$(git rev-parse "${1:-e71b242^}")
work=$(mktemp -d /tmp/klinecast-v3.XXXXXX)
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; fi
    git -C "$root" worktree remove --force "$work/src" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
git worktree add --detach "$work/src" "$commit" >/dev/null
target="${CARGO_TARGET_DIR:-$work/target}"
(cd "$work/src" && CARGO_TARGET_DIR="$target" cargo build --locked --bin klinecast)
bin="$target/debug/klinecast"

run="$work/run"
mkdir -p "$run/data" "$run/server"
head -n 601 data/AVAXUSDT_1m.csv >"$run/data/AVAXUSDT_1m.csv"
head -n 901 data/AVAXUSDT_1m.csv >"$run/server/AVAXUSDT_1m.csv"
"$bin" train --data "$run/data/AVAXUSDT_1m.csv" --models-dir "$run/models" --seed 1

"$bin" replay-server --data "$run/server/AVAXUSDT_1m.csv" --port 0 --speed 600 \
    --start-row 600 >"$run/server.out" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
    grep -q '^listening' "$run/server.out" && break
    sleep 0.1
done
rest=$(sed -n 's/^listening rest=\([^ ]*\) ws=.*/\1/p' "$run/server.out")
ws=$(sed -n 's/^listening rest=[^ ]* ws=\(.*\)/\1/p' "$run/server.out")
KLINECAST_MAX_KLINES=15 KLINECAST_BACKOFF_MS=50 "$bin" stream --symbol AVAXUSDT --interval 1m \
    --rest-url "$rest" --ws-url "$ws" --window 5 --refit-rows 120 --generations 2 --seed 1 \
    --data-dir "$run/data" --models-dir "$run/models" --log-dir "$run/log" --max-runtime 120s

file="$run/models/Ensembled/EnsembleModel.bin"
version=$(od -An -tu4 -j12 -N4 "$file" | tr -d ' ')
if [[ "$version" != 3 ]]; then
    echo "commit $commit wrote an ensemble file of version $version, not 3" >&2
    exit 1
fi
cp "$file" tests/fixtures/ensemble-v3.bin
tail -n 3 "$run/log/ensemble.log"
echo "wrote tests/fixtures/ensemble-v3.bin ($(wc -c <tests/fixtures/ensemble-v3.bin) bytes, v3, from $commit)"
