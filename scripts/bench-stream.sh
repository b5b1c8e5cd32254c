#!/bin/sh
# Benchmark of `klinecast stream` (release build): per-kline forecast cost, per-window refit +
# save cost, and the process's peak memory (VmHWM), on the real sample in data/.
#
# It seeds a store with the first 2/3 of data/AVAXUSDT_1m.csv, trains on the last 20 000 rows
# of it (svr on 2000), starts `klinecast replay-server` at the clock row, and streams N klines
# (default 600 = 40 windows of 15, refit on 1440 rows) at speed 600 (one kline per 0.1 s: the
# ensembler queues while it refits, which does not change the costs measured). The numbers are
# the line "per kline ... per window ... peak memory" that `stream` prints when it stops.
#
# With --corr (issue 23): the per-kline cost with and without correlated symbols, on real
# months. SYM (default FILUSDT) of MONTH (default 2026-06) in DATA_DIR (default ../shared/data,
# files `<SYM>-1m-<MONTH>.csv`) with its neighbours CORR (default AVAXUSDT,NEARUSDT of the same
# month): stores of the first 2/3 of each month, `train --symbols SYM --corr CORR` on the
# newest 20 000 rows (svr on 2000; its stdout, with each kind's fit time, and every model
# file's size are printed), then two runs of KLINES klines (default 300) at speed 600 against
# one replay server of the three months: SYM alone (the same models less the `+corr` ones)
# and SYM with `--corr CORR` (the three symbols on one connection, the waiting rule on). Each
# run prints the load average at its start and its timing line (per kline: median, p95, p99,
# max), then one summary line per run.
#
# usage: scripts/bench-stream.sh [KLINES]
#        [SYM=…] [CORR=…] [MONTH=…] [DATA_DIR=…] scripts/bench-stream.sh --corr [KLINES]
set -eu
MODE=plain
if [ "${1:-}" = --corr ]; then MODE=corr; shift; fi
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
BIN=${CARGO_TARGET_DIR:-target}/release/klinecast
if [ "$MODE" = corr ]; then
    KLINES=${1:-300}
    SYM=${SYM:-FILUSDT}
    CORR=${CORR:-AVAXUSDT,NEARUSDT}
    MONTH=${MONTH:-2026-06}
    DATA_DIR=${DATA_DIR:-../shared/data}
    . scripts/bench-common.sh
    bench_workdir bench-stream-corr
    mkdir -p "$WORK/src"
    FILES=
    for s in $SYM $(echo "$CORR" | tr ',' ' '); do
        cp "$DATA_DIR/$s-1m-$MONTH.csv" "$WORK/src/${s}_1m.csv"
        FILES="${FILES:+$FILES,}$WORK/src/${s}_1m.csv"
    done
    ROWS=$(($(wc -l < "$WORK/src/${SYM}_1m.csv") - 1))
    CLOCK=$((ROWS * 2 / 3))
    seed_stores() { # DIR: every symbol's store, the first CLOCK rows
        mkdir -p "$1"
        for f in "$WORK"/src/*_1m.csv; do
            head -n $((CLOCK + 1)) "$f" > "$1/$(basename "$f")"
        done
    }
    seed_stores "$WORK/train-data"
    echo "train --symbols $SYM --corr $CORR on the newest 20000 of $CLOCK rows of $MONTH" \
        "(load average $(cut -d' ' -f1-3 /proc/loadavg))..."
    t0=$(date +%s.%N)
    "$BIN" train --symbols "$SYM" --corr "$CORR" --data-dir "$WORK/train-data" \
        --models-dir "$WORK/trained" --max-rows 20000 --svr-rows 2000 > "$WORK/train.out"
    t1=$(date +%s.%N)
    cat "$WORK/train.out"
    echo "train wall time: $(echo "$t1 - $t0" | bc) s"
    ls -l "$WORK/trained/${SYM}_1m/Trained/" | awk 'NR > 1 {print "  " $9 ": " $5 " bytes"}'
    # run NAME [--corr LIST]: one stream of KLINES klines of SYM on fresh stores.
    run() {
        name=$1; shift
        root="$WORK/run-$name"
        seed_stores "$root/data"
        mkdir -p "$root/models/${SYM}_1m"
        cp -r "$WORK/trained/${SYM}_1m/Trained" "$root/models/${SYM}_1m/Trained"
        [ $# -gt 0 ] || rm -f "$root/models/${SYM}_1m/Trained/"*+corr.bin
        start_replay "$FILES" "$CLOCK" 600
        echo "$name: streaming $KLINES klines of $SYM $* (load average" \
            "$(cut -d' ' -f1-3 /proc/loadavg))..."
        KLINECAST_MAX_KLINES=$KLINES "$BIN" stream --symbol "$SYM" "$@" --interval 1m \
            --data-dir "$root/data" --models-dir "$root/models" --log-dir "$root/log" \
            --rest-url "http://$ADDR" --ws-url "ws://$ADDR" > "$root/stream.out"
        stop_replay
        sed -n '1,3p' "$root/stream.out"
    }
    run without
    run with --corr "$CORR"
    for name in without with; do
        sed -n "s/.*per kline (forecast + files): median \([0-9.]*\) ms, p95 [0-9.]* ms, p99 \([0-9.]*\) ms.*/$name neighbours: per kline p50 \1 ms, p99 \2 ms/p" \
            "$WORK/run-$name/stream.out"
    done
    exit 0
fi
KLINES=${1:-600}
DATA=data/AVAXUSDT_1m.csv
. scripts/bench-common.sh
bench_workdir bench-stream
ROWS=$(($(wc -l < "$DATA") - 1))
CLOCK=$((ROWS * 2 / 3))
mkdir -p "$WORK/data"
head -n $((CLOCK + 1)) "$DATA" > "$WORK/data/AVAXUSDT_1m.csv"
echo "training on the last 20000 of $CLOCK history rows..."
"$BIN" train --data "$WORK/data/AVAXUSDT_1m.csv" --models-dir "$WORK/models" \
    --max-rows 20000 --svr-rows 2000 > "$WORK/train.out"
start_replay "$DATA" "$CLOCK" 600
echo "streaming $KLINES klines from $ADDR..."
KLINECAST_MAX_KLINES=$KLINES "$BIN" stream --symbol AVAXUSDT --interval 1m \
    --data-dir "$WORK/data" --models-dir "$WORK/models" --log-dir "$WORK/log" \
    --rest-url "http://$ADDR" --ws-url "ws://$ADDR" | sed -n '1,2p'
ls -l "$WORK/models/Ensembled/EnsembleModel.bin" | awk '{print "EnsembleModel.bin: " $5 " bytes"}'
