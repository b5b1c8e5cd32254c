#!/usr/bin/env python3
"""Side-by-side benchmark: klinecast's gradient-boosted trees (src/models/gbdt.rs) against
XGBoost `tree_method="hist"` on the same rows, the same features, the same defaults
(100 trees, eta 0.3, depth 6, 256 bins, base_score = train mean) and the same thread count.
Prints, per case, the best-of-R fit and predict seconds of both, the ratio klinecast / XGBoost
(< 1 means klinecast is faster), test RMSE of both, and the fitted model size.

Run from the repository root (never by tests or CI):

    python3 -m venv /tmp/xgbvenv
    /tmp/xgbvenv/bin/pip install -r scripts/requirements-xgboost.txt
    /tmp/xgbvenv/bin/python scripts/bench_vs_xgboost.py [--threads 2] [--repeats 3] \
        [--large-rows 200000] [--bench-bin PATH]

Cases:
  * klines: all of data/AVAXUSDT_1m.csv with the 6 documented features of
    scripts/sklearn_fixtures.py (5 lagged log returns, (high-low)/close; target the next log
    return), first 80 % train, rest test;
  * window: the refit the stream does, 1440 rows (one day of 1m klines) x 14 features
    (13 lagged log returns and (high-low)/close) from the end of the same CSV, the next 200
    rows test;
  * large: synthetic, --large-rows x 14 (numpy seed 3), 20 % more rows as test: shows the
    threads.
The Rust side is `cargo bench --bench gbdt -- DIR CASE... --threads T --repeats R` (a release
build, scripts/bench/gbdt.rs) or the prebuilt binary given with --bench-bin. Timings are
wall-clock on a shared machine: repeat for stable numbers. With --threads 1 the script also
prints both sides' CPU seconds of the calling thread (Python's time.thread_time, the bench's
/proc/thread-self/schedstat; XGBoost's single OpenMP thread is the caller): the work done,
much less sensitive to other load (Linux; the scheduler updates it in ticks of a few ms, so
the sub-millisecond predicts read 0 there).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import xgboost as xgb

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
KLINES = os.path.join(ROOT, "data", "AVAXUSDT_1m.csv")


def lagged_features(high, low, close, lags):
    """Rows t = lags .. n-2: the last `lags` log returns and (high-low)/close; y = next return."""
    r = np.diff(np.log(close))
    n = len(close)
    ts = np.arange(lags, n - 1)
    x = np.column_stack([r[ts - 1 - lag] for lag in range(lags)]
                        + [(high[ts] - low[ts]) / close[ts]])
    return x, r[ts]


def cases(large_rows):
    cols = np.loadtxt(KLINES, delimiter=",", skiprows=1, usecols=(2, 3, 4), dtype=np.float64)
    high, low, close = cols[:, 0], cols[:, 1], cols[:, 2]
    x, y = lagged_features(high, low, close, 5)
    n = int(0.8 * len(y))
    out = {"klines": (x[:n], y[:n], x[n:], y[n:])}
    x, y = lagged_features(high, low, close, 13)
    out["window"] = (x[-1640:-200], y[-1640:-200], x[-200:], y[-200:])
    if large_rows > 0:
        rng = np.random.default_rng(3)
        m = large_rows + large_rows // 5
        x = rng.uniform(-1, 1, size=(m, 14))
        y = np.sin(3 * x[:, 0]) * x[:, 1] + x[:, 2:].sum(axis=1) * 0.1 \
            + 0.2 * rng.standard_normal(m)
        out["large"] = (x[:large_rows], y[:large_rows], x[large_rows:], y[large_rows:])
    return out


def write_csv(path, x, y):
    with open(path, "w") as f:
        f.write(",".join([f"x{j}" for j in range(x.shape[1])] + ["y"]) + "\n")
        for row, t in zip(x, y):
            f.write(",".join(repr(float(v)) for v in row) + "," + repr(float(t)) + "\n")


def time_xgboost(xtr, ytr, xte, yte, threads, repeats):
    fit_s = predict_s = fit_cpu_s = predict_cpu_s = float("inf")
    for _ in range(repeats):
        m = xgb.XGBRegressor(tree_method="hist", n_estimators=100, learning_rate=0.3,
                             max_depth=6, reg_lambda=1.0, reg_alpha=0.0, gamma=0.0,
                             min_child_weight=1.0, subsample=1.0, colsample_bytree=1.0,
                             max_bin=256, base_score=float(np.mean(ytr)), n_jobs=threads,
                             random_state=0)
        t0, c0 = time.perf_counter(), time.thread_time()
        m.fit(xtr, ytr)
        fit_s = min(fit_s, time.perf_counter() - t0)
        fit_cpu_s = min(fit_cpu_s, time.thread_time() - c0)
        t1, c1 = time.perf_counter(), time.thread_time()
        pred = m.predict(xte)
        predict_s = min(predict_s, time.perf_counter() - t1)
        predict_cpu_s = min(predict_cpu_s, time.thread_time() - c1)
    rmse = float(np.sqrt(np.mean((pred.astype(np.float64) - yte) ** 2)))
    return {"fit_s": fit_s, "predict_s": predict_s, "rmse": rmse, "fit_cpu_s": fit_cpu_s,
            "predict_cpu_s": predict_cpu_s}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--large-rows", type=int, default=200000)
    ap.add_argument("--bench-bin", help="prebuilt `gbdt` bench binary instead of cargo bench")
    args = ap.parse_args()

    data = cases(args.large_rows)
    tmp = tempfile.mkdtemp(prefix="klinecast-xgb-bench-")
    try:
        for name, (xtr, ytr, xte, yte) in data.items():
            os.makedirs(os.path.join(tmp, name))
            write_csv(os.path.join(tmp, name, "train.csv"), xtr, ytr)
            write_csv(os.path.join(tmp, name, "test.csv"), xte, yte)
        xgb_results = {name: time_xgboost(*d, args.threads, args.repeats)
                       for name, d in data.items()}
        rust_args = [tmp, *data.keys(), "--threads", str(args.threads),
                     "--repeats", str(args.repeats)]
        if args.bench_bin:
            cmd = [args.bench_bin, *rust_args]
        else:
            cmd = ["cargo", "bench", "--locked", "--bench", "gbdt", "--", *rust_args]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"rust side failed:\n{proc.stderr}")
        ours = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"xgboost {xgb.__version__} hist vs klinecast gbdt, {args.threads} thread(s), "
          f"best of {args.repeats}")
    head = (f"{'case':8} {'rows x d':>13} {'fit xgb':>9} {'fit ours':>9} {'ratio':>6} "
            f"{'pred xgb':>9} {'pred ours':>9} {'ratio':>6} {'rmse xgb':>10} {'rmse ours':>10} "
            f"{'nodes':>6} {'bytes':>7}")
    print(head)
    for name, (xtr, _, xte, _) in data.items():
        a, b = xgb_results[name], ours[name]
        if "error" in b:
            print(f"{name:8} error: {b['error']}")
            continue
        print(f"{name:8} {xtr.shape[0]:>7}x{xtr.shape[1]:<5} {a['fit_s']:9.4f} {b['fit_s']:9.4f} "
              f"{b['fit_s'] / a['fit_s']:6.2f} {a['predict_s']:9.4f} {b['predict_s']:9.4f} "
              f"{b['predict_s'] / a['predict_s']:6.2f} {a['rmse']:10.4e} {b['rmse']:10.4e} "
              f"{b['nodes']:6} {b['model_bytes']:7}")
    if args.threads == 1:
        # One thread: both run on the calling thread, so its CPU seconds are the work done,
        # whatever else shares the machine (wall-clock best-of-R is only as good as the load).
        print("calling thread's CPU seconds (best of R), ours / xgboost:")
        for name in data:
            a, b = xgb_results[name], ours[name]
            if "error" in b:
                continue
            # A reading of 0 is below the scheduler's tick: no ratio.
            fit = (b["fit_cpu_s"] / a["fit_cpu_s"] if a["fit_cpu_s"] > 0 < b["fit_cpu_s"]
                   else float("nan"))
            pred = (b["predict_cpu_s"] / a["predict_cpu_s"]
                    if a["predict_cpu_s"] > 0 < b["predict_cpu_s"] else float("nan"))
            print(f"{name:8} fit {a['fit_cpu_s']:8.4f} {b['fit_cpu_s']:8.4f} {fit:6.2f}   "
                  f"predict {a['predict_cpu_s']:8.4f} {b['predict_cpu_s']:8.4f} {pred:6.2f}")


if __name__ == "__main__":
    main()
