#!/usr/bin/env python3
"""Side-by-side benchmark: klinecast's gradient-boosted trees (src/models/gbdt/) against
XGBoost `tree_method="hist"` on the same rows, the same features, the same defaults
(100 trees, eta 0.3, depth 6, 256 bins, base_score = train mean) and the same thread count.
Prints the Markdown tables of scripts/README.md ("Against XGBoost"): per case the calling
thread's CPU seconds of both and the ratios klinecast / XGBoost (< 1: klinecast is faster) of
the best and the median run, in CPU and in wall time; test RMSE of both, nodes and bytes.

Run from the repository root (never by tests or CI):

    python3 -m venv /tmp/xgbvenv
    /tmp/xgbvenv/bin/pip install -r scripts/requirements-xgboost.txt
    /tmp/xgbvenv/bin/python scripts/bench_vs_xgboost.py [--threads 1] [--repeats 7] \
        [--budget 6] [--max-repeats 41] [--min-run 0.1] [--processes 6] \
        [--large-rows 10000,30000,100000] \
        [--explain] [--json-out FILE] [--bench-bin PATH]

(`scripts/bench-side.sh OUT_DIR` runs this and bench_vs_sklearn.py in a venv of its own.)

Cases:
  * klines: all of data/AVAXUSDT_1m.csv with the 6 documented features of
    scripts/sklearn_fixtures.py (5 lagged log returns, (high-low)/close; target the next log
    return), first 80 % train, rest test;
  * window: the refit the stream does, 1440 rows (one day of 1m klines) x 14 features
    (13 lagged log returns and (high-low)/close) from the end of the same CSV, the next 200
    rows test;
  * large-N: synthetic, N x 14 (numpy seed 3, y = sin(3 x0)·x1 + 0.1·Σ x2.. + 0.2·noise),
    N/5 more rows as test, for each N of --large-rows.
The Rust side is `cargo bench --bench gbdt --no-run` (a release build, scripts/bench/gbdt.rs, then
run directly with `--serve`: its CPU clock must be its own, not cargo's)
or the prebuilt binary given with --bench-bin; runs alternate with XGBoost's, which runs in a
worker process (this script with `--worker`, reading the same CSVs), the runs of a case spread
over up to --processes rounds of the whole bench, each in a fresh process pair (method in
scripts/bench_side.py, `run_rounds`; a phase shorter than --min-run CPU seconds is repeated
within each run and timed per call, see `Case.calibrate`). With --threads 1 (the default) XGBoost's
single OpenMP thread is the caller, so both CPU columns are the work done.

--explain adds one fit per side with `tree_method="exact"` on every large case: where the
test RMSE of ours and XGBoost's differ in hist but agree in exact, the gap comes from the
histogram cuts, not from the boosting.
"""

import argparse
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import bench_side  # noqa: E402

bench_side.pin_blas_threads(sys.argv)

import numpy as np  # noqa: E402
import xgboost as xgb  # noqa: E402

KLINES = os.path.join(ROOT, "data", "AVAXUSDT_1m.csv")


def lagged_features(high, low, close, lags):
    """Rows t = lags .. n-2: the last `lags` log returns and (high-low)/close; y = next return."""
    r = np.diff(np.log(close))
    n = len(close)
    ts = np.arange(lags, n - 1)
    x = np.column_stack([r[ts - 1 - lag] for lag in range(lags)]
                        + [(high[ts] - low[ts]) / close[ts]])
    return x, r[ts]


def data_cases(large_rows):
    cols = np.loadtxt(KLINES, delimiter=",", skiprows=1, usecols=(2, 3, 4), dtype=np.float64)
    high, low, close = cols[:, 0], cols[:, 1], cols[:, 2]
    x, y = lagged_features(high, low, close, 5)
    n = int(0.8 * len(y))
    out = {"klines": (x[:n], y[:n], x[n:], y[n:])}
    x, y = lagged_features(high, low, close, 13)
    out["window"] = (x[-1640:-200], y[-1640:-200], x[-200:], y[-200:])
    for rows in large_rows:
        rng = np.random.default_rng(3)
        m = rows + rows // 5
        x = rng.uniform(-1, 1, size=(m, 14))
        y = np.sin(3 * x[:, 0]) * x[:, 1] + x[:, 2:].sum(axis=1) * 0.1 \
            + 0.2 * rng.standard_normal(m)
        out[f"large-{rows // 1000}k"] = (x[:rows], y[:rows], x[rows:], y[rows:])
    return out


def write_csv(path, x, y):
    with open(path, "w") as f:
        f.write(",".join([f"x{j}" for j in range(x.shape[1])] + ["y"]) + "\n")
        for row, t in zip(x, y):
            f.write(",".join(repr(float(v)) for v in row) + "," + repr(float(t)) + "\n")


def xgboost_run(xtr, ytr, xte, yte, threads, method="hist", reps=None):
    """One run (`bench_side.fit_predict`): times per call, test RMSE."""
    def fit_once():
        return xgb.XGBRegressor(tree_method=method, n_estimators=100, learning_rate=0.3,
                                max_depth=6, reg_lambda=1.0, reg_alpha=0.0, gamma=0.0,
                                min_child_weight=1.0, subsample=1.0, colsample_bytree=1.0,
                                max_bin=256, base_score=float(np.mean(ytr)), n_jobs=threads,
                                random_state=0).fit(xtr, ytr)

    _, pred, out = bench_side.fit_predict(fit_once, lambda m: m.predict(xte), reps)
    out["rmse"] = float(np.sqrt(np.mean((pred.astype(np.float64) - yte) ** 2)))
    return out


def worker_run(request):
    """An XGBoost run in the worker process (`bench_side.Reference`) on the case's rows as the
    driver wrote them (exactly)."""
    return xgboost_run(*bench_side.load_case(request["case_dir"]), request["threads"],
                       reps=request["reps"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    bench_side.add_run_args(ap)
    ap.add_argument("--large-rows", default="10000,30000,100000",
                    help="sizes of the synthetic cases, comma-separated (empty: none)")
    ap.add_argument("--explain", action="store_true",
                    help="also fit both sides with tree_method exact on the large cases")
    ap.add_argument("--bench-bin", help="prebuilt `gbdt` bench binary instead of cargo bench")
    ap.add_argument("--json-out", help="save every summary here (for bench_side.py compare)")
    args = ap.parse_args()

    data = data_cases([int(s) for s in args.large_rows.split(",") if s])
    load_before = bench_side.load_average()
    tmp = tempfile.mkdtemp(prefix="klinecast-xgb-bench-")
    ours = bench_side.Ours("gbdt", args.bench_bin)
    theirs = bench_side.Reference(os.path.abspath(__file__), ["--threads", str(args.threads)])
    cases, explained = [], []
    try:
        for name, (xtr, ytr, xte, yte) in data.items():
            case_dir = os.path.join(tmp, name)
            os.makedirs(case_dir)
            write_csv(os.path.join(case_dir, "train.csv"), xtr, ytr)
            write_csv(os.path.join(case_dir, "test.csv"), xte, yte)
            cases.append(bench_side.Case(
                name, len(ytr),
                lambda reps, d=case_dir: theirs.run({"case_dir": d, "threads": args.threads,
                                                     "reps": reps}),
                lambda reps, d=case_dir: ours.run(d, args.threads, "hist", reps["fit"],
                                                  reps["predict"])))
        bench_side.run_rounds(args, cases, restart=lambda: (theirs.restart(), ours.restart()))
        for case in cases:
            if args.explain and case.name.startswith("large"):
                case_dir = os.path.join(tmp, case.name)
                ref_exact = xgboost_run(*data[case.name], args.threads, "exact")
                our_exact = ours.run(case_dir, args.threads, "exact")
                _, _, ref, mine = case.result()
                explained.append((case.name, ref.get("rmse"), mine.get("rmse"),
                                  ref_exact["rmse"], our_exact.get("rmse")))
    finally:
        ours.close()
        theirs.close()
        shutil.rmtree(tmp, ignore_errors=True)
    results = [c.result() for c in cases]

    load_after = bench_side.load_average()
    print(f"xgboost {xgb.__version__} hist vs klinecast gbdt, {args.threads} thread(s), "
          f"{args.repeats}-{args.max_repeats} interleaved runs per side "
          f"(--budget {args.budget} s); load average (1, 5, 15 min) before {load_before}, "
          f"after {load_after}\n")
    print(bench_side.rmse_tables(results, "xgb", ".4e", extra=[
        ("nodes", lambda a, b: b.get("nodes", "")),
        ("bytes", lambda a, b: b.get("model_bytes", "")),
    ]))
    if explained:
        print("\n**test RMSE by split finder** (hist: 256 quantile bins; exact: every value)\n")
        print(bench_side.markdown(
            ["case", "xgb hist", "ours hist", "xgb exact", "ours exact"],
            [[c] + [bench_side.fmt(v, ".4f") for v in vals] for c, *vals in explained]))
    if args.json_out:
        meta = {"reference": f"xgboost {xgb.__version__}", "threads": args.threads,
                **bench_side.run_args_meta(args), "load_before": load_before,
                "load_after": load_after, "cpu": bench_side.PINNED_CPU}
        bench_side.save(args.json_out, meta, results)


if __name__ == "__main__":
    if "--worker" in sys.argv:
        bench_side.serve_worker(worker_run)
    else:
        main()
