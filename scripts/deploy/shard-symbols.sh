#!/bin/sh
# Prints the symbols of shard K of N (0-based) of a comma-separated list: every Nth symbol,
# starting with the Kth, so that each symbol is in exactly one shard and N machines (or pods)
# share the list without talking to each other. Used by the Kubernetes StatefulSet (K = the
# pod's ordinal) and by the plain cron line per Pi (see README.md, "Beyond one Pi").
#   shard-symbols.sh 1 3 BTCUSDT,ETHUSDT,SOLUSDT,XRPUSDT   ->   ETHUSDT
set -eu
if [ $# -ne 3 ]; then
    echo "usage: shard-symbols.sh K N SYMBOL,SYMBOL,..." >&2
    exit 2
fi
k=$1
n=$2
case "$k$n" in *[!0-9]*|"") echo "shard-symbols.sh: K and N must be numbers" >&2; exit 2 ;; esac
if [ "$n" -lt 1 ] || [ "$k" -ge "$n" ]; then
    echo "shard-symbols.sh: need 0 <= K < N, got K=$k N=$n" >&2
    exit 2
fi
shard=$(printf '%s\n' "$3" | tr ',' '\n' | awk -v k="$k" -v n="$n" 'NF && (NR - 1) % n == k' | paste -sd, -)
if [ -z "$shard" ]; then
    echo "shard-symbols.sh: shard $k of $n is empty: fewer symbols than shards" >&2
    exit 1
fi
printf '%s\n' "$shard"
