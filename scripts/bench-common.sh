# Sourced by bench-stream.sh and bench-pi-scale.sh (POSIX sh): a work directory removed on exit,
# and a `klinecast replay-server` started and stopped around a run. Needs $BIN set.

# bench_workdir NAME: sets WORK to a new temporary directory, removed (with any server still
# running) when the script exits.
bench_workdir() {
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/klinecast-$1.XXXXXX")
    SERVER_PID=
    trap bench_cleanup EXIT INT TERM
}

bench_cleanup() {
    stop_replay
    rm -rf "$WORK"
}

# start_replay CSV START_ROW SPEED: starts the replay server on CSV from START_ROW at SPEED,
# waits until it listens, and sets ADDR (host:port) and SERVER_PID.
start_replay() {
    "$BIN" replay-server --data "$1" --start-row "$2" --speed "$3" > "$WORK/server.out" &
    SERVER_PID=$!
    i=0
    ADDR=
    # Until the whole `listening rest=… ws=…` line is there (not only its first bytes).
    while [ -z "$ADDR" ]; do
        i=$((i + 1)); [ $i -gt 600 ] && { echo "replay-server did not start" >&2; cat "$WORK/server.out" >&2; exit 1; }
        sleep 0.1
        ADDR=$(sed -n 's/.*rest=http:\/\/\([^ ]*\) ws=.*/\1/p' "$WORK/server.out" 2>/dev/null)
    done
}

# stop_replay: stops the server started by start_replay, if any.
stop_replay() {
    if [ -n "${SERVER_PID:-}" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=
}
