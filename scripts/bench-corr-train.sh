#!/bin/sh
# Train time and model size with and without correlated symbols (issue 23's goal: they grow at
# most in proportion to the feature count, 14 → 14 + 5 × neighbours columns).
#
# On one month (SYM of MONTH in DATA_DIR, files `<SYM>-1m-<MONTH>.csv`; defaults FILUSDT,
# 2026-06, ../shared/data) and its neighbours CORR (default AVAXUSDT,NEARUSDT of the same
# month), REPS times (default 3), alternately: `train --data SYM` and `train --data SYM --corr
# CORR`, both on the newest MAX_ROWS klines (default 20 000, svr on 2000: the models of
# bench-stream.sh). Prints, per run, the wall time and each kind's fit time (the "fitted in"
# lines; with --corr the second linear and gbdt are the `+corr` variants), then each model
# file's size, and the load average at the start of each run (the machine may be shared).
#
# usage: [REPS=3] [MAX_ROWS=20000] [SYM=…] [CORR=…] [MONTH=…] [DATA_DIR=…] scripts/bench-corr-train.sh
set -eu
REPS=${REPS:-3}
MAX_ROWS=${MAX_ROWS:-20000}
SYM=${SYM:-FILUSDT}
CORR=${CORR:-AVAXUSDT,NEARUSDT}
MONTH=${MONTH:-2026-06}
DATA_DIR=${DATA_DIR:-../shared/data}
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
BIN=${CARGO_TARGET_DIR:-target}/release/klinecast
. scripts/bench-common.sh
bench_workdir bench-corr-train
OWN=$DATA_DIR/$SYM-1m-$MONTH.csv
FILES=
for s in $(echo "$CORR" | tr ',' ' '); do
    FILES="${FILES:+$FILES,}$DATA_DIR/$s-1m-$MONTH.csv"
done
# train NAME [--corr FILES]: one timed run into $WORK/NAME.
train() {
    name=$1; shift
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    t0=$(date +%s.%N)
    "$BIN" train --data "$OWN" "$@" --models-dir "$WORK/$name" --max-rows "$MAX_ROWS" \
        --svr-rows 2000 > "$WORK/$name.out" 2>&1
    t1=$(date +%s.%N)
    fits=$(sed -n 's/.*\] \([a-z]*\) fitted in \([0-9.]*\) s.*/\1 \2/p' "$WORK/$name.out" | tr '\n' ' ')
    echo "$name: wall $(echo "$t1 - $t0" | bc) s (load average $load); fits: $fits"
}
for rep in $(seq 1 "$REPS"); do
    train "without-$rep"
    train "with-$rep" --corr "$FILES"
done
echo "model files (bytes), without --corr then with:"
ls -l "$WORK/without-1/Trained/" | awk 'NR > 1 {print "  without " $9 ": " $5}'
ls -l "$WORK/with-1/Trained/" | awk 'NR > 1 {print "  with    " $9 ": " $5}'
grep -h "features" "$WORK/with-1.out" | head -n 2
