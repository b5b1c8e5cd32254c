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
# usage: scripts/bench-stream.sh [KLINES]
set -eu
KLINES=${1:-600}
cd "$(dirname "$0")/.."
cargo build --release --quiet
BIN=${CARGO_TARGET_DIR:-target}/release/klinecast
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
