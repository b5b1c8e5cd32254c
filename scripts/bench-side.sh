#!/usr/bin/env bash
# The side-by-side benchmarks in one command (issue 24): klinecast's models against scikit-learn
# (scripts/bench_vs_sklearn.py) and its gradient boosting against XGBoost hist
# (scripts/bench_vs_xgboost.py), one thread each, 7 to 41 interleaved runs per side and case (as
# many as 6 CPU seconds allow: short cases get more), spread over up to 6 rounds of each script
# (round i runs the ith chunk of every case's runs, each chunk in a fresh process pair, at
# least 3 runs a chunk where a run is under a second; the reference in a worker process of its
# own), at 10k, 30k and 100k training rows, both sides pinned to the same CPU (the last;
# BENCH_CPU=N chooses), address randomisation off.
# Saves both runs' JSON in OUT_DIR and prints the tables of scripts/README.md ("Against
# scikit-learn", "Against XGBoost").
#
#   scripts/bench-side.sh OUT_DIR              one run (26-35 min on a quiet 2-core machine:
#                                              scikit-learn's forest fits are 15-25 min of it)
#   scripts/bench-side.sh --compare A_DIR B_DIR  the CPU ratios of two runs side by side with
#                                              their difference (the README's tables) and each
#                                              side's own times; exit 1 if a CPU ratio differs
#                                              by more than 10 %
#
# Installs the pinned Python packages (scripts/requirements-xgboost.txt, which includes
# scikit-learn's pins) into a venv under target/ on first use. Run it on a machine with nothing
# else running: the CPU clocks it reads are much steadier than wall time, but two processes on
# two cores still share caches and memory bandwidth.
set -euo pipefail
# OUT_DIR and the compared directories may be relative to where the script was started.
args=()
for arg in "$@"; do
    case $arg in
        --*) args+=("$arg") ;;
        /*) args+=("$arg") ;;
        *) args+=("$PWD/$arg") ;;
    esac
done
set -- ${args[@]+"${args[@]}"}
cd "$(dirname "$0")/.."
venv=${BENCH_VENV:-target/bench-venv}
py=$venv/bin/python

if [ "${1:-}" = "--compare" ]; then
    [ $# -eq 3 ] || { echo "usage: $0 --compare A_DIR B_DIR" >&2; exit 2; }
    status=0
    for side in sklearn xgboost; do
        echo "## $side: $2 against $3"
        python3 scripts/bench_side.py compare "$2/$side.json" "$3/$side.json" \
            "$(basename "$2")" "$(basename "$3")" || status=1
        echo
    done
    exit $status
fi
[ $# -eq 1 ] || { echo "usage: $0 OUT_DIR | --compare A_DIR B_DIR" >&2; exit 2; }
out=$1
mkdir -p "$out"

if ! "$py" -c 'import sklearn, xgboost' 2>/dev/null; then
    python3 -m venv "$venv"
    "$py" -m pip install --quiet -r scripts/requirements-xgboost.txt
fi

# Address-space randomisation off for both sides (the Rust bench inherits it) and a fixed hash
# seed, so that every run's processes lay out alike. In a short test it evened scikit-learn's
# linear fit between processes; in runs M and N that fit still differed by 36-40 % between the
# two runs (scripts/README.md, "Why more runs" and "Runs M and N").
fixed=(env PYTHONHASHSEED=0)
if setarch "$(uname -m)" -R true 2>/dev/null; then
    fixed=(setarch "$(uname -m)" -R "${fixed[@]}")
fi
"${fixed[@]}" "$py" scripts/bench_vs_sklearn.py --threads 1 --json-out "$out/sklearn.json" \
    >"$out/sklearn.md" 2>"$out/sklearn.err"
"${fixed[@]}" "$py" scripts/bench_vs_xgboost.py --threads 1 --json-out "$out/xgboost.json" \
    >"$out/xgboost.md" 2>"$out/xgboost.err"
cat "$out/sklearn.md"
echo
cat "$out/xgboost.md"
