#!/usr/bin/env bash
# Runs `klinecast backtest --json` on every real 1-minute month in ../shared/data (AVAXUSDT
# months limited to their last 20,160 klines, two weeks, to keep the run under an hour on two
# cores) and prints the README's "Ensemble on the real months" tables from the JSON
# (scripts/months_table.py). Usage: scripts/backtest-months.sh [OUT_DIR] (default
# target/months); extra arguments after `--` go to every backtest (e.g. `-- --combiner lcb`).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/months}
shift || true
[ "${1:-}" = "--" ] && shift
mkdir -p "$out"
cargo build --release --locked --quiet
bin=target/release/klinecast
for f in ../shared/data/*-1m-*.csv; do
    name=$(basename "$f" .csv)
    extra=()
    case $name in AVAX*) extra=(--max-rows 20160) ;; esac
    echo "backtest $name" >&2
    "$bin" backtest --data "$f" "${extra[@]}" --json "$@" >"$out/$name.json"
done
python3 scripts/months_table.py "$out"/*.json
