#!/usr/bin/env python3
"""Side-by-side benchmark: klinecast's five models against scikit-learn on the same kline data,
the same features and the same (default) hyperparameters. Prints, per model, fit and predict
seconds of both, the ratio klinecast / scikit-learn (< 1 means klinecast is faster), and test
RMSE of both.

Run from the repository root:

    pip install -r scripts/requirements.txt
    python3 scripts/bench_vs_sklearn.py [CSV] [--rows 10000] [--svr-rows 3000] [--threads 2] [--bench-bin PATH]

CSV defaults to data/AVAXUSDT_1m.csv. The script
  1. reads the last --rows + 6 klines of CSV and builds the documented features of
     scripts/sklearn_fixtures.py (`kline_features`: the last 5 log returns and (high-low)/close,
     target = next log return), in time order; the first 80 % of rows are train, the rest test;
  2. standardizes features with the train mean/std and the target likewise
     (z = (y - mean) / std, so RMSE is in target standard deviations: predicting 0 scores ~1.0,
     and SVR's epsilon = 0.1 means the same thing on both sides);
  3. writes train.csv / test.csv to a temporary directory (17 significant digits: exact);
  4. times scikit-learn in-process (LinearRegression(), SVR(), KNeighborsRegressor(),
     DecisionTreeRegressor(random_state=0), RandomForestRegressor(random_state=0); SVR is fitted
     on the last --svr-rows training rows, as `klinecast train` does);
  5. runs the Rust side, `cargo bench --bench parity -- DIR --svr-rows N` (a release build, see
     scripts/bench/parity.rs), or the prebuilt binary given with --bench-bin, and reads its JSON;
  6. prints the table. A model that fails on either side is shown as "error" and the rest
     still run.

Notes: scikit-learn's defaults are single-threaded except where numpy's BLAS threads;
klinecast's forest uses 2 threads (its default) and SVR predict splits rows over 2 threads.
Timings are wall-clock seconds of one run on a shared machine: repeat for stable numbers.
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque

import numpy as np
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LinearRegression
from sklearn.neighbors import KNeighborsRegressor
from sklearn.svm import SVR
from sklearn.tree import DecisionTreeRegressor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from sklearn_fixtures import kline_features  # noqa: E402  (same feature definition)

MODELS = ["linear", "svr", "knn", "cart", "forest"]


def sklearn_model(name):
    return {
        "linear": lambda: LinearRegression(),
        "svr": lambda: SVR(),
        "knn": lambda: KNeighborsRegressor(),
        "cart": lambda: DecisionTreeRegressor(random_state=0),
        "forest": lambda: RandomForestRegressor(random_state=0),
    }[name]()


def read_tail(path, n):
    """(high, low, close) of the last n klines of a klinecast CSV."""
    with open(path) as f:
        header = f.readline()
        if not header.startswith("open_time"):
            sys.exit(f"{path}: not a klinecast kline CSV (header {header.strip()!r})")
        tail = deque(f, maxlen=n)
    rows = [line.split(",") for line in tail if line.strip()]
    a = np.array([[float(r[2]), float(r[3]), float(r[4])] for r in rows], dtype=np.float64)
    return a[:, 0], a[:, 1], a[:, 2]


def write_csv(path, x, y):
    with open(path, "w") as f:
        f.write(",".join([f"f{j}" for j in range(x.shape[1])] + ["y"]) + "\n")
        for row, target in zip(x, y):
            f.write(",".join(repr(float(v)) for v in row) + "," + repr(float(target)) + "\n")


def rmse(a, b):
    return math.sqrt(float(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def run_sklearn(xtr, ytr, xte, yte, svr_rows):
    out = {}
    for name in MODELS:
        x, y = (xtr[-svr_rows:], ytr[-svr_rows:]) if name == "svr" else (xtr, ytr)
        try:
            m = sklearn_model(name)
            t0 = time.perf_counter()
            m.fit(x, y)
            fit_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            pred = m.predict(xte)
            predict_s = time.perf_counter() - t1
            out[name] = {"fit_s": fit_s, "predict_s": predict_s, "rmse": rmse(pred, yte),
                         "train_rows": len(y)}
            if name == "svr":
                out[name]["n_support"] = int(m.support_.shape[0])
        except Exception as e:  # keep the other models running
            out[name] = {"error": f"{type(e).__name__}: {e}"}
        print(f"scikit-learn {name}: {out[name]}", file=sys.stderr)
    return out


def run_rust(tmp, svr_rows, bench_bin, threads):
    flags = ["--svr-rows", str(svr_rows), "--threads", str(threads)]
    if bench_bin:
        cmd = [bench_bin, tmp] + flags
    else:
        cmd = ["cargo", "bench", "--quiet", "--bench", "parity", "--", tmp] + flags
    print("running: " + " ".join(cmd), file=sys.stderr)
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        return {name: {"error": f"bench exited {proc.returncode}"} for name in MODELS}
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if not lines:
        return {name: {"error": "bench printed no JSON"} for name in MODELS}
    return json.loads(lines[-1])


def fmt(v, spec):
    return format(v, spec) if isinstance(v, (int, float)) else str(v)


def print_table(sk, kc):
    head = f"{'model':<7} {'sk fit s':>9} {'kc fit s':>9} {'fit kc/sk':>9} " \
           f"{'sk pred s':>9} {'kc pred s':>9} {'pred kc/sk':>10} {'sk RMSE':>8} {'kc RMSE':>8}  notes"
    print(head)
    print("-" * len(head))
    for name in MODELS:
        a, b = sk.get(name, {}), kc.get(name, {})
        notes = []
        for side, r in (("sklearn", a), ("klinecast", b)):
            if "error" in r:
                notes.append(f"{side}: {r['error'][:60]}")
        if "n_support" in a or "n_support" in b:
            notes.append(f"n_sv {a.get('n_support', '-')}/{b.get('n_support', '-')}")
        if "train_rows" in a:
            notes.append(f"{a['train_rows']} train rows")

        def ratio(key):
            if key in a and key in b and a[key] > 0:
                return b[key] / a[key]
            return "-"

        print(f"{name:<7} {fmt(a.get('fit_s', 'error'), '9.4f'):>9} "
              f"{fmt(b.get('fit_s', 'error'), '9.4f'):>9} {fmt(ratio('fit_s'), '9.2f'):>9} "
              f"{fmt(a.get('predict_s', 'error'), '9.4f'):>9} "
              f"{fmt(b.get('predict_s', 'error'), '9.4f'):>9} {fmt(ratio('predict_s'), '10.2f'):>10} "
              f"{fmt(a.get('rmse', '-'), '8.5f'):>8} {fmt(b.get('rmse', '-'), '8.5f'):>8}  "
              + "; ".join(notes))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", nargs="?", default=os.path.join(ROOT, "data", "AVAXUSDT_1m.csv"))
    ap.add_argument("--rows", type=int, default=10000, help="feature rows (train + test)")
    ap.add_argument("--svr-rows", type=int, default=3000, help="SVR training rows (most recent)")
    ap.add_argument("--bench-bin", help="prebuilt scripts/bench/parity.rs binary (skips cargo)")
    ap.add_argument("--json", action="store_true", help="also print both result sets as JSON")
    ap.add_argument("--threads", type=int, default=2,
                    help="klinecast forest threads (fit and predict); 1 compares per thread "
                         "with scikit-learn's single-threaded forest")
    args = ap.parse_args()

    high, low, close = read_tail(args.csv, args.rows + 6)
    x, y = kline_features(high, low, close)
    n_train = int(len(y) * 0.8)
    xtr, xte, ytr, yte = x[:n_train], x[n_train:], y[:n_train], y[n_train:]
    mean, std = xtr.mean(axis=0), xtr.std(axis=0)
    std = np.where(std == 0, 1.0, std)
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    ymean, ystd = ytr.mean(), ytr.std()
    ytr, yte = (ytr - ymean) / ystd, (yte - ymean) / ystd
    print(f"{args.csv}: {len(ytr)} train rows, {len(yte)} test rows, {x.shape[1]} features; "
          f"SVR on the last {min(args.svr_rows, len(ytr))} train rows", file=sys.stderr)

    tmp = tempfile.mkdtemp(prefix="klinecast-bench-")
    try:
        write_csv(os.path.join(tmp, "train.csv"), xtr, ytr)
        write_csv(os.path.join(tmp, "test.csv"), xte, yte)
        sk = run_sklearn(xtr, ytr, xte, yte, args.svr_rows)
        kc = run_rust(tmp, args.svr_rows, args.bench_bin, args.threads)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print_table(sk, kc)
    if args.json:
        print(json.dumps({"sklearn": sk, "klinecast": kc}))


if __name__ == "__main__":
    main()
