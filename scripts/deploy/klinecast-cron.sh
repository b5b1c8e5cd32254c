#!/bin/sh
# Cron wrapper for `klinecast stream` on the Pi: run from the install directory it lives in, and
# keep cron's own output file, log/cron.log, under a size cap. klinecast caps its own logs in log/;
# this file only collects what the process prints to stdout/stderr (start-up errors, a clock that
# is wrong, a panic). Install it next to the binary and add to `crontab -e` (see crontab.example):
#   * * * * * /home/pi/klinecast/klinecast-cron.sh --symbol BTCUSDT
# Arguments are passed to `klinecast stream`. Every minute cron starts it; while a stream runs, the
# new one finds the single-instance lock taken and exits 0 at once, so this is also the watchdog.
# KLINECAST_CRON_LOG_MAX: cap in bytes (default 1 MB); one older copy is kept as log/cron.log.1.
set -eu
cd "$(dirname "$0")"
mkdir -p log
log=log/cron.log
max=${KLINECAST_CRON_LOG_MAX:-1000000}
if [ -f "$log" ] && [ "$(wc -c <"$log")" -gt "$max" ]; then
    # Copy then truncate (not rename): a running stream holds the file open in append mode and
    # goes on writing at the new, short end; after a rename it would fill the old copy forever.
    cp "$log" "$log.1"
    : >"$log"
fi
exec ./klinecast stream "$@" >>"$log" 2>&1
