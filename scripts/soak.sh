#!/usr/bin/env bash
# Kill-and-restart soak of `klinecast stream` (issue #6).
#
#   scripts/soak.sh [--short] [--bin PATH] [KILLS] [SEED]        (defaults: 60 kills, seed 1)
#
# --short is the CI mode (.ci/run): 5 kills over 300 streamed rows at 600x, about half a minute
# (the full soak streams 600 rows at 240x: a few minutes). --bin runs that klinecast binary
# (e.g. target/debug/klinecast, which `cargo test` has just built) instead of building the
# release binary.
# Builds the release binary, serves a slice of data/AVAXUSDT_1m.csv with `klinecast replay-server`
# (faults on: dropped connections, duplicate finals, garbage frames, 429s) at 240x speed, and runs
# `klinecast stream` against it the way cron does: started again and again, each run killed with
# SIGKILL at a random (seeded) moment; every 5th start also launches a second instance while the
# first runs, which must find the lock taken and exit 0 at once. Then one last run catches up to
# the end of the slice and stops by itself, and the script checks:
#   - the kline CSV equals the served source rows byte for byte;
#   - predictions.csv: the header, every row whole (7 numeric fields, the interval's upper bound
#     possibly inf; newline-terminated), targets
#     strictly ascending (no duplicate, no torn row);
#   - every model file loads with klinecast's own loaders: a final `stream` run must log that it
#     loaded EnsembleModel.bin and all five trained members, and no load failure;
#   - no panic anywhere in the output.
# Prints the figures and exits non-zero on the first failed check. Everything stays on 127.0.0.1
# and in a temp directory that is removed at the end (kept when a check fails).
set -euo pipefail
cd "$(dirname "$0")/.."

short=0
bin=""
while [ $# -gt 0 ]; do
    case "$1" in
    --short) short=1 ;;
    --bin)
        [ $# -ge 2 ] || { echo "soak: --bin needs a path" >&2; exit 2; }
        bin="$2"
        shift
        ;;
    --*) echo "soak: unknown option $1 (usage: scripts/soak.sh [--short] [--bin PATH] [KILLS] [SEED])" >&2; exit 2 ;;
    *) break ;;
    esac
    shift
done
hist=600      # rows in the store before the first start (and training rows)
if [ "$short" = 1 ]; then
    kills="${1:-5}"
    total=900 # rows served; the replay clock starts at row $hist
    speed=600 # virtual ms per real ms: one 1m kline every 0.1 s
else
    kills="${1:-60}"
    total=1200
    speed=240 # one 1m kline every 0.25 s
fi
seed="${2:-1}"
faults="drop-every=7,dup-finals,garbage-every=11,429-every=5"

if [ -z "$bin" ]; then
    cargo build --release --locked --quiet
    bin="target/release/klinecast"
fi
[ -x "$bin" ] || { echo "soak: no klinecast binary at $bin" >&2; exit 2; }
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
work="$(mktemp -d "${TMPDIR:-/tmp}/klinecast-soak.XXXXXX")"
server_pid=""
stream_pid=""
keep=0
cleanup() {
    [ -n "$stream_pid" ] && kill -9 "$stream_pid" 2>/dev/null || true
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    if [ "$keep" = 1 ]; then echo "soak: files kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() {
    keep=1
    echo "soak: FAILED: $*" >&2
    exit 1
}
trap 'fail "line $LINENO: a command failed"' ERR

src="$work/src/AVAXUSDT_1m.csv"
data="$work/data"
store="$data/AVAXUSDT_1m.csv"
mkdir -p "$work/src" "$data" "$work/models" "$work/log"
head -n $((total + 1)) data/AVAXUSDT_1m.csv >"$src"
head -n $((hist + 1)) data/AVAXUSDT_1m.csv >"$store"

echo "soak: training on $hist rows"
"$bin" train --data "$store" --models-dir "$work/models" >/dev/null 2>"$work/train.err" ||
    fail "train: $(cat "$work/train.err")"

"$bin" replay-server --data "$src" --start-row "$hist" --speed "$speed" --faults "$faults" \
    >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
for _ in $(seq 100); do
    grep -q listening "$work/server.out" 2>/dev/null && break
    sleep 0.1
done
line="$(head -n 1 "$work/server.out")"
rest="$(echo "$line" | tr ' ' '\n' | sed -n 's/^rest=//p')"
ws="$(echo "$line" | tr ' ' '\n' | sed -n 's/^ws=//p')"
[ -n "$rest" ] && [ -n "$ws" ] || fail "replay-server did not start: $line $(cat "$work/server.err")"

# One cron start of `klinecast stream` (output appended like the cron wrapper does). It execs,
# so always run it in a subshell: `stream &` (then $! is klinecast itself) or `(stream)`.
stream() {
    KLINECAST_BACKOFF_MS=100 KLINECAST_BACKOFF_MAX_MS=1000 KLINECAST_WS_IDLE_MS=3000 \
        KLINECAST_WS_POLL_MS=100 exec "$bin" stream --symbol AVAXUSDT --interval 1m \
        --data-dir "$data" --models-dir "$work/models" --log-dir "$work/log" \
        --rest-url "$rest" --ws-url "$ws" --window 5 --refit-rows 200 --generations 2 \
        "$@" >>"$work/cron.log" 2>&1
}
rows() { echo $(($(wc -l <"$store") - 1)); }

RANDOM="$seed"
started=$(date +%s)
lock_refusals=0
echo "soak: $kills SIGKILLs at random moments (seed $seed), faults $faults"
for i in $(seq "$kills"); do
    stream &
    stream_pid=$!
    # 50 ms .. 3 s, seeded.
    ms=$((50 + (RANDOM * 32768 + RANDOM) % 2950))
    if [ $((i % 5)) = 0 ]; then
        sleep 0.3
        if (stream); then lock_refusals=$((lock_refusals + 1)); else fail "a second instance failed"; fi
        ms=$((ms > 300 ? ms - 300 : 0))
    fi
    sleep "$(awk -v ms="$ms" 'BEGIN { printf "%.3f", ms / 1000 }')"
    kill -9 "$stream_pid" 2>/dev/null || true
    wait "$stream_pid" 2>/dev/null || true
    stream_pid=""
done
after_kills="$(rows)"
echo "soak: after $kills kills the store holds $after_kills rows (of $total)"

# Last run: catch up to the end of the slice and stop by itself.
left=$((total - after_kills))
if [ "$left" -gt 0 ]; then
    (
        export KLINECAST_MAX_KLINES="$left"
        stream
    ) &
    stream_pid=$!
    for _ in $(seq 600); do
        kill -0 "$stream_pid" 2>/dev/null || break
        sleep 0.2
    done
    kill -0 "$stream_pid" 2>/dev/null && fail "the last run did not finish"
    wait "$stream_pid" || fail "the last run exited with $?"
    stream_pid=""
fi
elapsed=$(($(date +%s) - started))

# 1. The store is the source, byte for byte.
cmp -s "$store" "$src" || fail "the kline CSV differs from the source ($(rows) rows): $(cmp "$store" "$src" 2>&1 || true)"

# 2. predictions.csv: whole rows, strictly ascending targets.
preds="$data/predictions.csv"
[ -s "$preds" ] || fail "no predictions.csv"
[ "$(tail -c 1 "$preds" | od -An -c | tr -d ' ')" = '\n' ] || fail "predictions.csv ends mid-row"
pred_stats="$(awk -F, '
    NR == 1 { if ($0 != "target_open_time,forecast,naive,ensemble_version,made_after_open_time,lower,upper") bad = "header " $0; next }
    NF != 7 { bad = "row " NR " has " NF " fields: " $0; exit }
    { for (i = 1; i <= 5; i++) if ($i !~ /^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/) { bad = "row " NR " field " i ": " $i; exit } }
    { for (i = 6; i <= 7; i++) if ($i !~ /^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/ && $i != "inf") { bad = "row " NR " field " i ": " $i; exit } }
    $6 + 0 > $7 + 0 && $7 != "inf" { bad = "row " NR " interval " $6 " > " $7; exit }
    last != "" && $1 + 0 <= last + 0 { bad = "row " NR " target " $1 " not after " last; exit }
    last != "" && $1 - last > 60000 { holes += ($1 - last) / 60000 - 1 }
    { last = $1; n++ }
    END { if (bad != "") { print "BAD " bad } else { print n + 0, holes + 0 } }' "$preds")"
case "$pred_stats" in BAD*) fail "predictions.csv: ${pred_stats#BAD }" ;; esac
pred_rows="${pred_stats% *}"
pred_holes="${pred_stats#* }"

# 3. Every model file loads with klinecast's own loaders.
(stream --max-runtime 3s) || fail "the check run exited with $?"
ens_log="$work/log/ensemble.log"
last_start="$(grep -n 'loaded .*EnsembleModel.bin' "$ens_log" | tail -n 1 | cut -d: -f1)"
[ -n "$last_start" ] || fail "the ensemble file never loaded"
tail -n +"$last_start" "$ens_log" | grep -q 'trained members: linear, svr, knn, cart, forest, gbdt, gru, lstm' ||
    fail "the check run did not load all eight trained models"
if grep -E 'cannot (load|use)' "$ens_log" "$work/cron.log" >/dev/null; then
    fail "a model file failed to load: $(grep -hE 'cannot (load|use)' "$ens_log" "$work/cron.log" | head -n 3)"
fi

# 4. No panic anywhere.
if grep -l panicked "$work/cron.log" "$work/log"/*.log "$work/server.err" >/dev/null 2>&1; then
    fail "a panic: $(grep -h panicked "$work/cron.log" "$work/log"/*.log | head -n 3)"
fi

repairs="$(cat "$work/cron.log" "$work/log"/*.log | grep -c 'cut off an incomplete last line' || true)"
windows="$(grep -c '"window"' "$work/log/ensemble.jsonl" || true)"
starts="$(grep -c 'klinecast stream pid' "$work/log/stream.log" || true)"
echo "soak: OK: $kills SIGKILLs, $starts runs started, $lock_refusals overlapping starts refused by the lock, ${elapsed} s;"
echo "soak: store = source ($total rows, $((total - hist)) streamed, byte-identical);"
echo "soak: predictions.csv $pred_rows rows, 0 duplicated, 0 torn, $pred_holes targets without a forecast;"
echo "soak: $windows windows logged; $repairs torn tails repaired; all 8 trained models + EnsembleModel.bin load"
