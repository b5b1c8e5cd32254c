#!/bin/sh
# Benchmark of `klinecast stream --symbols` (issue 22; release build): for 1, 5 and 20 symbols
# on one combined connection, on both cores and on one (`taskset -c 0`):
# - peak memory (VmHWM, as `stream` prints it when it stops);
# - the forecast latency: from a kline's arrival in the streaming thread to its forecast
#   written, window refits and waiting behind other symbols included (median, p99, max, as
#   `stream` prints them);
# - start → first request: from the exec of `stream` to its last "stream start" line in
#   stream.log, which is written just before the first REST request goes out;
# - bytes written per symbol per day: the process's write(2) bytes (`wchar` of /proc/PID/io,
#   sampled until it exits; the start's rewrites included), per streamed kline, × 1440 klines
#   a day, ÷ symbols.
#
# Data: each symbol gets a store of ROWS klines (default 110 000: at least 100 000) made from
# the real sample data/AVAXUSDT_1m.csv, tiled with consecutive minutes and started at a
# different row per symbol (so no two symbols are the same series). Models: trained once on
# the first symbol's newest 20 000 rows (svr on 2000, the size bounds of `bench-stream.sh`) and
# copied into every symbol's folder (training 20 symbols would take an hour; the models'
# sizes, and so the memory and refit costs, are the same). The replay server's clock starts at
# the end of the stores and runs at SPEED (default 30: one kline every 2 s of wall time, with
# the refits of 20 symbols' aligned windows within the 15 minutes they have on average). Each
# run streams KLINES klines per symbol (default 60: 4 windows of 15).
#
# SPEED compresses time: each minute's forecasts and refits get 60/SPEED s of wall time, where
# a real stream has 60 s. Since every forecast of a minute is written before any refit of that
# minute, a forecast is late only when the previous minute's refits (up to one per symbol, as
# the windows of symbols started together end on the same minute) outlast that wall time; so
# the latency goal is a real-time goal, and a SPEED at which N refits do not fit in 60/SPEED s
# measures the queue, not the stream. Each run prints the load average (1, 5, 15 min) at its
# start: the machine may be shared.
#
# usage: [CPUS="all 0"] scripts/bench-symbols.sh [COUNTS] [KLINES] [SPEED]
#        e.g. scripts/bench-symbols.sh "1 5"; CPUS=0 scripts/bench-symbols.sh 20 30 6
set -eu
CPUS=${CPUS:-all 0}
COUNTS=${1:-1 5 20}
KLINES=${2:-60}
SPEED=${3:-30}
ROWS=${ROWS:-110000}
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
BIN=${CARGO_TARGET_DIR:-target}/release/klinecast
. scripts/bench-common.sh
bench_workdir bench-symbols
MAXN=0
for n in $COUNTS; do [ "$n" -gt "$MAXN" ] && MAXN=$n; done

# Stores: SYM00USDT … with ROWS rows each, plus KLINES + 100 more for the server to stream.
mkdir -p "$WORK/src"
python3 - "$WORK/src" "$MAXN" "$ROWS" "$((ROWS + KLINES + 100))" <<'EOF'
import sys
out, n, rows, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
lines = open("data/AVAXUSDT_1m.csv").read().splitlines()
header, body = lines[0], [l.split(",") for l in lines[1:]]
t0 = int(body[0][0])
for s in range(n):
    with open(f"{out}/SYM{s:02d}USDT_1m.csv", "w") as f:
        f.write(header + "\n")
        for j in range(total):
            row = list(body[(j + 1500 * s) % len(body)])
            row[0] = str(t0 + 60000 * j)
            row[6] = str(t0 + 60000 * j + 59999)
            f.write(",".join(row) + "\n")
EOF
echo "stores: $MAXN symbols x $ROWS klines"
mkdir -p "$WORK/train"
head -n $((ROWS + 1)) "$WORK/src/SYM00USDT_1m.csv" > "$WORK/train/SYM00USDT_1m.csv"
echo "training once on the newest 20000 of $ROWS rows (svr on 2000)..."
"$BIN" train --data "$WORK/train/SYM00USDT_1m.csv" --models-dir "$WORK/train" \
    --max-rows 20000 --svr-rows 2000 > "$WORK/train.out"

# run N CPUS: one measured run of N symbols; CPUS is "all" or a taskset list.
run() {
    n=$1; cpus=$2
    root="$WORK/run-$n-$cpus"
    mkdir -p "$root/data" "$root/models"
    symbols=; files=
    for s in $(seq 0 $((n - 1))); do
        sym=$(printf 'SYM%02dUSDT' "$s")
        head -n $((ROWS + 1)) "$WORK/src/${sym}_1m.csv" > "$root/data/${sym}_1m.csv"
        mkdir -p "$root/models/${sym}_1m"
        cp -r "$WORK/train/Trained" "$root/models/${sym}_1m/Trained"
        symbols="${symbols:+$symbols,}$sym"
        files="${files:+$files,}$WORK/src/${sym}_1m.csv"
    done
    # With one symbol, a 1-element list: the symbol's own folders are used all the same.
    start_replay "$files" "$ROWS" "$SPEED"
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    set -- env KLINECAST_MAX_KLINES="$KLINES" "$BIN" stream --symbols "$symbols" \
        --data-dir "$root/data" --models-dir "$root/models" --log-dir "$root/log" \
        --rest-url "http://$ADDR" --ws-url "ws://$ADDR"
    [ "$cpus" = all ] || set -- taskset -c "$cpus" "$@"
    t0=$(date +%s.%N)
    "$@" > "$root/stream.out" 2> "$root/stream.err" &
    pid=$!
    wchar=0
    while kill -0 "$pid" 2>/dev/null; do
        w=$(sed -n 's/^wchar: //p' "/proc/$pid/io" 2>/dev/null || true)
        [ -n "$w" ] && wchar=$w
        sleep 0.2
    done
    wait "$pid" || { cat "$root/stream.err" >&2; exit 1; }
    stop_replay
    python3 - "$n" "$cpus" "$t0" "$wchar" "$KLINES" "$root" "$SPEED" "$load" <<'EOF'
import re, sys, datetime
n, cpus, t0, wchar, klines, root, speed, load = sys.argv[1:9]
n, t0, wchar, klines = int(n), float(t0), int(wchar), int(klines)
out = open(f"{root}/stream.out").read()
log = open(f"{root}/log/stream.log").read().splitlines()
starts = [l for l in log if " stream start " in l]
stamp = datetime.datetime.strptime(starts[-1][:23], "%Y-%m-%d %H:%M:%S.%f")
first = stamp.replace(tzinfo=datetime.timezone.utc).timestamp() - t0
lat = re.search(r"arrival: median ([\d.]+) s, p99 ([\d.]+) s, max ([\d.]+) s", out)
rss = re.search(r"peak memory \(VmHWM\) ([\d.]+) MiB", out)
win = re.search(r"per window \(refit \+ save\): median ([\d.]+) s, p95 ([\d.]+) s, max ([\d.]+) s", out)
day = wchar / (klines * n) * 1440 / 1e6
print(f"{n:>3} symbols cpus {cpus:>3}: peak RSS {rss.group(1)} MiB; forecast latency median "
      f"{lat.group(1)} s, p99 {lat.group(2)} s, max {lat.group(3)} s; refit+save median "
      f"{win.group(1)} s, max {win.group(3)} s; start -> first request {first:.3f} s; "
      f"written {day:.1f} MB per symbol per day (speed {speed}, load average {load})")
EOF
}

for n in $COUNTS; do
    for cpus in $CPUS; do
        run "$n" "$cpus"
    done
done
