#!/usr/bin/env bash
# Cold-start benchmark (DRAFT, needs `klinecast replay-server`): under cron `klinecast` is started
# every minute, so exec -> first network request matters. Measures the wall time of
# `klinecast collect --days 1` against a local replay server when the store is already up to
# date: that run is start-up plus about two small requests (server time, one klines page), so it
# is dominated by start-up. Loopback only; the server and temp files are removed at the end.
# Usage: scripts/bench-coldstart.sh [RUNS]      (default 10)
#   KLINECAST_BIN=path   benchmark that binary instead of building target/release/klinecast
#   KLINECAST_BENCH_PORT port for the replay server (default 18673)
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-10}
port=${KLINECAST_BENCH_PORT:-18673}
bin=${KLINECAST_BIN:-target/release/klinecast}
if [ -z "${KLINECAST_BIN:-}" ]; then
    cargo build --release --locked --bin klinecast
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/klinecast-coldstart.XXXXXX")
server=
cleanup() {
    if [ -n "$server" ]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Three days of real klines; the replay clock starts two days in, so `--days 1` has history.
head -n $((1 + 3 * 1440)) data/AVAXUSDT_1m.csv >"$work/slice.csv"
"$bin" replay-server --data "$work/slice.csv" --port "$port" --start-row 2880 \
    >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do
    if ! kill -0 "$server" 2>/dev/null; then
        wait "$server" || true
        server=
        echo "bench-coldstart: replay-server stopped at start-up; its output:" >&2
        sed 's/^/  /' "$work/server.log" >&2
        echo "bench-coldstart: this benchmark needs a working \`klinecast replay-server\`" \
            "(not built yet in this version): nothing measured" >&2
        exit 2
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        break
    fi
    sleep 0.1
done

url="http://127.0.0.1:$port"
collect=("$bin" collect --rest-url "$url" --days 1 --data-dir "$work/data")
if ! "${collect[@]}" >"$work/first.log" 2>&1; then
    echo "bench-coldstart: the first (filling) collect failed:" >&2
    cat "$work/first.log" >&2
    exit 1
fi
for _ in $(seq "$runs"); do
    t0=$(date +%s%N)
    if ! "${collect[@]}" >"$work/run.log" 2>&1; then
        echo "bench-coldstart: an up-to-date collect failed:" >&2
        cat "$work/run.log" >&2
        exit 1
    fi
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000))
done | sort -n >"$work/times"
awk -v runs="$runs" -v bin="$bin" '
    { t[NR] = $1 }
    END {
        printf "collect with an up-to-date store (%s, %d runs): min %.1f ms, median %.1f ms, max %.1f ms\n",
            bin, runs, t[1] / 1000, t[int((NR + 1) / 2)] / 1000, t[NR] / 1000
    }' "$work/times"
