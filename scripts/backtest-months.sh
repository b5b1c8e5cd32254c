#!/usr/bin/env bash
# Runs `klinecast backtest --json` (default flags) on every real 1-minute month in ../shared/data
# and prints the README's "Ensemble on the real months" tables from the JSON
# (scripts/months_table.py). Usage: [ROWS=N] scripts/backtest-months.sh [OUT_DIR] (default
# target/months); extra arguments after `--` go to every backtest (e.g. `-- --combiner lcb`).
# Rows: the last ROWS klines of each month (default 8,000: the models train on 3,200, the next
# 800 warm the ensemble up unscored (--holdout 0.2, as stream does on train's holdout), and
# 4,000 are replayed). Why: a 1 % edge needs 1,000–3,000 forecasts to wake its expert and a few hundred
# more to earn its weight, so 2,000 replayed forecasts (ROWS=4000) mostly measure the wait; 4,000
# resolve an RMSE ratio to about ±0.002 (paired against the naive). The cost is one refit of six
# models every 15 klines (≈ 0.35 s of CPU per window): about 15 min per month on the shared,
# loaded 2-core machine, two months at a time. ROWS=4000 halves it.
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
    echo "backtest $name" >&2
    nice -n 10 "$bin" backtest --data "$f" --max-rows "${ROWS:-8000}" --json "$@" >"$out/$name.json"
done
python3 scripts/months_table.py "$out"/*.json
