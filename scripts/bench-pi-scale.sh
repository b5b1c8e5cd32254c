#!/bin/sh
# Raspberry Pi scale benchmark (README, "Raspberry Pi"): three years of 1m klines.
#
# 1. Generates 1.5 M klines (data/BTCUSDT_1m.csv's rows repeated with shifted times, as
#    scripts/bench/load.rs does) plus 2 000 more for the replay server. The repeats make the
#    holdout scores of `train` meaningless (the holdout repeats training rows): this measures
#    time, memory and bytes, not accuracy. PI_SCALE_DIR=DIR keeps the generated klines in DIR
#    for the next run.
# 2. `klinecast train` with default flags under /usr/bin/time -v: wall time, peak RSS.
# 3. Model sizes (everything under models/).
# 4. Cold start: exec of `stream` (1.5 M-row store, those models) → first TCP connection to a
#    loopback listener, median of 5.
# 5. `stream` for STREAM_KLINES klines (default 600, 60 s at --speed 600) against
#    `klinecast replay-server`: its timing line (per kline, per window, peak RSS) and the bytes it
#    passed to write() (/proc/PID/io wchar, polled: ensemble saves, predictions, logs, kline
#    store, stdout), per window and per day of klines.
# 6. The restart after that stream: the time ensemble.log reports for refitting the saved
#    window generations from the store (the ensemble file keeps only their rows).
# All of it twice: on every core, and under `taskset -c 0`. Prints one table.
#
# usage: scripts/bench-pi-scale.sh [ROWS]        (default 1500000)
set -eu
ROWS=${1:-1500000}
STREAM_KLINES=${STREAM_KLINES:-600}
SPEED=${SPEED:-600}
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
BIN=$(pwd)/${CARGO_TARGET_DIR:-target}/release/klinecast
. scripts/bench-common.sh
bench_workdir pi-scale
SRC=data/BTCUSDT_1m.csv
SYMBOL=BTCUSDT
GEN=${PI_SCALE_DIR:-$WORK/gen}
mkdir -p "$GEN"
if [ -s "$GEN/replay/${SYMBOL}_1m.csv" ] && [ -s "$GEN/data.orig/${SYMBOL}_1m.csv" ] &&
    [ "$(cat "$GEN/rows" 2>/dev/null)" = "$ROWS" ]; then
    echo "reusing the klines in $GEN" >&2
else

echo "generating $ROWS + 2000 klines in $GEN..." >&2
awk -F, -v total=$((ROWS + 2000)) 'NR == 1 { next } { line[n++] = $0 }
END {
    span = n * 60000
    for (i = 0; i < total; i++) {
        split(line[i % n], f, ",")
        shift = int(i / n) * span
        printf "%.0f", f[1] + shift
        for (j = 2; j <= 6; j++) printf ",%s", f[j]
        printf ",%.0f", f[7] + shift
        for (j = 8; j <= 11; j++) printf ",%s", f[j]
        printf "\n"
    }
}' "$SRC" > "$GEN/rows.csv"
HEADER=$(head -n 1 "$SRC")
mkdir -p "$GEN/replay" "$GEN/data.orig"
{ echo "$HEADER"; cat "$GEN/rows.csv"; } > "$GEN/replay/${SYMBOL}_1m.csv"
rm "$GEN/rows.csv"
head -n $((ROWS + 1)) "$GEN/replay/${SYMBOL}_1m.csv" > "$GEN/data.orig/${SYMBOL}_1m.csv"
echo "$ROWS" > "$GEN/rows"
fi

field() { sed -n "s/.*$1[^0-9]*\([0-9.]*\).*/\1/p" "$2" | head -n 1; }

run() { # $1 = label, $2 = cpu prefix ("" or "taskset -c 0")
    LABEL=$1
    PREFIX=$2
    rm -rf "$WORK/models" "$WORK/log" "$WORK/data"
    cp -r "$GEN/data.orig" "$WORK/data"
    echo "[$LABEL] train..." >&2
    /usr/bin/time -v $PREFIX "$BIN" train --data "$WORK/data/${SYMBOL}_1m.csv" \
        --models-dir "$WORK/models" > "$WORK/train.out" 2> "$WORK/train.err"
    TRAIN_WALL=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$WORK/train.err" |
        awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%.1f", s }')
    TRAIN_RSS=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/train.err")
    MODELS=$(du -sb "$WORK/models" | cut -f1)
    SIZES=$(for f in "$WORK"/models/Trained/*.bin; do
        printf '%s %.1f MB; ' "$(basename "$f" .bin)" "$(($(stat -c %s "$f")))e-6"; done)

    echo "[$LABEL] cold start..." >&2
    COLD=$(python3 - "$BIN" "$WORK" "$PREFIX" <<'PY'
import os, socket, statistics, subprocess, sys, time
bin_, work, prefix = sys.argv[1], sys.argv[2], sys.argv[3].split()
times = []
for _ in range(5):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
    url = "127.0.0.1:%d" % s.getsockname()[1]
    cmd = prefix + [bin_, "stream", "--symbol", "BTCUSDT", "--interval", "1m",
        "--data-dir", work + "/data", "--models-dir", work + "/models", "--log-dir", work + "/log",
        "--rest-url", "http://" + url, "--ws-url", "ws://" + url]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    s.settimeout(30)
    try:
        c, _ = s.accept(); times.append(time.perf_counter() - t0); c.close()
    except OSError:
        pass
    p.kill(); p.wait(); s.close()
print("%.1f" % (statistics.median(times) * 1e3) if times else "none")
PY
)
    echo "[$LABEL] stream $STREAM_KLINES klines at speed $SPEED..." >&2
    rm -rf "$WORK/data" "$WORK/log"
    cp -r "$GEN/data.orig" "$WORK/data"
    start_replay "$GEN/replay/${SYMBOL}_1m.csv" "$ROWS" "$SPEED"
    KLINECAST_MAX_KLINES=$STREAM_KLINES $PREFIX "$BIN" stream --symbol "$SYMBOL" --interval 1m \
        --data-dir "$WORK/data" --models-dir "$WORK/models" --log-dir "$WORK/log" \
        --rest-url "http://$ADDR" --ws-url "ws://$ADDR" > "$WORK/stream.out" 2> "$WORK/stream.err" &
    STREAM_PID=$!
    WCHAR=0
    while kill -0 $STREAM_PID 2>/dev/null; do
        W=$(sed -n 's/^wchar: //p' /proc/$STREAM_PID/io 2>/dev/null || true)
        [ -n "$W" ] && WCHAR=$W
        sleep 0.1
    done
    wait $STREAM_PID || echo "[$LABEL] stream exited with $?" >&2
    stop_replay
    TIMING=$(grep 'per kline' "$WORK/stream.out" "$WORK/stream.err" | head -n 1 | sed 's/^[^:]*://')
    [ -z "$TIMING" ] && { echo "[$LABEL] no timing line; stream said:" >&2; tail -5 "$WORK/stream.err" >&2; }
    echo "[$LABEL] restart (refits the saved window generations)..." >&2
    start_replay "$GEN/replay/${SYMBOL}_1m.csv" $((ROWS + STREAM_KLINES)) "$SPEED"
    KLINECAST_MAX_KLINES=5 $PREFIX "$BIN" stream --symbol "$SYMBOL" --interval 1m \
        --data-dir "$WORK/data" --models-dir "$WORK/models" --log-dir "$WORK/log" \
        --rest-url "http://$ADDR" --ws-url "ws://$ADDR" > "$WORK/restart.out" 2>&1 ||
        echo "[$LABEL] the restart exited with $?" >&2
    RESTART_RSS=$(sed -n 's/.*peak memory (VmHWM) \([0-9.]* MiB\).*/\1/p' "$WORK/restart.out" | head -n 1)
    stop_replay
    RESTORE=$(sed -n 's/.*\(refitted [0-9]* window generations from the kline store in [0-9.]* s\).*/\1/p' \
        "$WORK/log/ensemble.log" | tail -n 1)
    WINDOWS=$((STREAM_KLINES / 15))
    ENSEMBLE=$(stat -c %s "$WORK/models/Ensembled/EnsembleModel.bin" 2>/dev/null || echo 0)
    MODELS_AFTER=$(du -sb "$WORK/models" | cut -f1)
    printf '%s\n' \
        "== $LABEL ==" \
        "train wall                  ${TRAIN_WALL} s" \
        "train peak RSS              $((TRAIN_RSS / 1024)) MiB" \
        "models/ after train         $(awk "BEGIN{printf \"%.1f\", $MODELS/1e6}") MB ($SIZES)" \
        "models/ after stream        $(awk "BEGIN{printf \"%.1f\", $MODELS_AFTER/1e6}") MB (EnsembleModel.bin $(awk "BEGIN{printf \"%.2f\", $ENSEMBLE/1e6}") MB)" \
        "stream cold start           ${COLD} ms (exec -> first connection, median of 5)" \
        "stream timing               ${TIMING}" \
        "restart                     ${RESTORE:-no refit line in ensemble.log}, peak memory ${RESTART_RSS:-?}" \
        "stream bytes written        $WCHAR over $STREAM_KLINES klines ($WINDOWS windows)" \
        "  per window                $(awk "BEGIN{printf \"%.2f\", $WCHAR/$WINDOWS/1e6}") MB" \
        "  per day (1440 klines)     $(awk "BEGIN{printf \"%.1f\", $WCHAR/$STREAM_KLINES*1440/1e6}") MB" \
        >> "$WORK/table"
    grep -A20 '^model' "$WORK/train.out" > "$WORK/train-$LABEL.table" || true
    grep 'memory bound' "$WORK/train.err" >> "$WORK/train-$LABEL.table" || true
}

run "2 cores" ""
run "taskset -c 0" "taskset -c 0"
echo
echo "klinecast at scale: $ROWS klines, $(nproc) cores, defaults"
cat "$WORK/table"
echo
echo "train's holdout table and bounds (2 cores):"
cat "$WORK/train-2 cores.table"
