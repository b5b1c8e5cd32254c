#!/usr/bin/env python3
"""Side-by-side benchmark: klinecast's five models against scikit-learn on the same kline
features and the same (default) hyperparameters, at several training sizes. Prints the
Markdown tables of scripts/README.md ("Against scikit-learn"): per model and size the
calling thread's CPU seconds of both, and the ratios klinecast / scikit-learn (< 1 means
klinecast is faster) of the best and the median run, in CPU and in wall time; test RMSE of both.

Run from the repository root:

    pip install -r scripts/requirements.txt
    python3 scripts/bench_vs_sklearn.py [CSV ...] [--train-rows 10000,30000,100000] \
        [--repeats 7] [--budget 6] [--max-repeats 41] [--min-run 0.1] [--processes 6] \
        [--threads 1] [--models linear,svr,knn,cart,forest] \
        [--svr-rows 3000] \
        [--json-out FILE] [--bench-bin PATH]

CSV defaults to every real 1-minute month in ../shared/data (`*-1m-*.csv`, in name order), else
data/*_1m.csv. The script
  1. builds the documented features of scripts/sklearn_fixtures.py (`kline_features`: the last
     5 log returns and (high-low)/close, target = next log return) of each CSV and concatenates
     the rows in file order (no return spans two files);
  2. per size S takes the last S + S/4 rows: the first S train, the rest test; standardizes
     features with the train mean/std and the target likewise (RMSE in target standard
     deviations; SVR's epsilon = 0.1 means the same on both sides);
  3. writes train.csv / test.csv to a temporary directory (17 significant digits: exact);
  4. starts the Rust half once (`cargo bench --bench parity --no-run`, a release build, run
     directly with `--serve` so that its CPU clock is its own, or
     the prebuilt binary of --bench-bin) and scikit-learn in a worker process (this script
     with `--worker`, reading the same CSVs) and, per size and model, runs one fit + predict
     of scikit-learn and one of klinecast in turn, --repeats times each or more
     (as many as --budget CPU seconds a side allow, at most --max-repeats), the runs spread
     over up to --processes rounds of the whole bench (default 6), each round a fresh
     process pair per case (at least 3 runs each where a run is under a second)
     (LinearRegression(), SVR(), KNeighborsRegressor(), DecisionTreeRegressor(random_state=0),
     RandomForestRegressor(random_state=0); SVR on the last --svr-rows training rows, as
     `klinecast train` does); a phase shorter than --min-run CPU seconds (default 0.1) is
     repeated within each run and timed per call, the count set from a first single-call pair
     of runs (then discarded); see scripts/bench_side.py (`run_rounds`);
  5. prints the tables. A model that fails on either side shows its error; the rest still run.

--threads 1 (the default) compares per thread: scikit-learn's estimators are single-threaded
(numpy's BLAS is pinned to one thread too) and klinecast fits and predicts on the calling
thread. --threads 2 gives klinecast's forest two threads (its default); the CPU columns then
count the calling thread only.
"""

import argparse
import glob
import math
import os
import shutil
import sys
import tempfile
from collections import deque

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import bench_side  # noqa: E402

bench_side.pin_blas_threads(sys.argv)

import numpy as np  # noqa: E402
import sklearn  # noqa: E402
from sklearn.ensemble import RandomForestRegressor  # noqa: E402
from sklearn.linear_model import LinearRegression  # noqa: E402
from sklearn.neighbors import KNeighborsRegressor  # noqa: E402
from sklearn.svm import SVR  # noqa: E402
from sklearn.tree import DecisionTreeRegressor  # noqa: E402

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


def default_csvs():
    shared = sorted(glob.glob(os.path.join(ROOT, "..", "shared", "data", "*-1m-*.csv")))
    return shared or sorted(glob.glob(os.path.join(ROOT, "data", "*_1m.csv")))


def read_klines(path):
    """(high, low, close) of a klinecast CSV."""
    with open(path) as f:
        header = f.readline()
        if not header.startswith("open_time"):
            sys.exit(f"{path}: not a klinecast kline CSV (header {header.strip()!r})")
        rows = [line.split(",") for line in deque(f) if line.strip()]
    a = np.array([[float(r[2]), float(r[3]), float(r[4])] for r in rows], dtype=np.float64)
    return a[:, 0], a[:, 1], a[:, 2]


def write_csv(path, x, y):
    with open(path, "w") as f:
        f.write(",".join([f"f{j}" for j in range(x.shape[1])] + ["y"]) + "\n")
        for row, target in zip(x, y):
            f.write(",".join(repr(float(v)) for v in row) + "," + repr(float(target)) + "\n")


def rmse(a, b):
    return math.sqrt(float(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def sklearn_run(name, xtr, ytr, xte, yte, reps=None):
    """One run (`bench_side.fit_predict`): times per call, test RMSE."""
    try:
        m, pred, out = bench_side.fit_predict(lambda: sklearn_model(name).fit(xtr, ytr),
                                              lambda m: m.predict(xte), reps)
    except Exception as e:  # keep the other models running
        return {"error": f"{type(e).__name__}: {e}"}
    out.update({"rmse": rmse(pred, yte), "train_rows": len(ytr)})
    if name == "svr":
        out["n_support"] = int(m.support_.shape[0])
    return out


def worker_run(request):
    """A reference run in the worker process (`bench_side.Reference`): the case's rows as the
    driver wrote them (exactly), SVR on the last `svr_rows` training rows, then `sklearn_run`."""
    xtr, ytr, xte, yte = bench_side.load_case(request["case_dir"])
    name = request["model"]
    if name == "svr":
        xtr, ytr = xtr[-request["svr_rows"]:], ytr[-request["svr_rows"]:]
    return sklearn_run(name, xtr, ytr, xte, yte, request["reps"])


def split(x, y, size):
    """The last size + size/4 rows, standardized on the first size (train)."""
    test = size // 4
    if size + test > len(y):
        sys.exit(f"{size} train rows need {size + test} feature rows; the CSVs have {len(y)}")
    x, y = x[-(size + test):], y[-(size + test):]
    xtr, xte, ytr, yte = x[:size], x[size:], y[:size], y[size:]
    mean, std = xtr.mean(axis=0), xtr.std(axis=0)
    std = np.where(std == 0, 1.0, std)
    ymean, ystd = ytr.mean(), ytr.std()
    return ((xtr - mean) / std, (ytr - ymean) / ystd, (xte - mean) / std, (yte - ymean) / ystd)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", nargs="*", help="kline CSVs (default: see above)")
    ap.add_argument("--train-rows", default="10000,30000,100000",
                    help="training sizes, comma-separated (test rows = a quarter of each)")
    bench_side.add_run_args(ap)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--svr-rows", type=int, default=3000, help="SVR training rows (most recent)")
    ap.add_argument("--threads", type=int, default=1,
                    help="klinecast threads (forest fit and predict, batch predicts)")
    ap.add_argument("--bench-bin", help="prebuilt scripts/bench/parity.rs binary (skips cargo)")
    ap.add_argument("--json-out", help="save every summary here (for bench_side.py compare)")
    args = ap.parse_args()
    models = [m for m in args.models.split(",") if m]
    for m in models:
        if m not in MODELS:
            sys.exit(f"unknown model {m}; one of {','.join(MODELS)}")
    sizes = [int(s) for s in args.train_rows.split(",") if s]

    csvs = args.csv or default_csvs()
    parts = [kline_features(*read_klines(p)) for p in csvs]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    load_before = bench_side.load_average()
    print(f"{len(csvs)} CSV(s), {len(y)} feature rows; sizes {sizes}; "
          f"{args.repeats}-{args.max_repeats} runs per side (--budget {args.budget} s); "
          f"load average {load_before}", file=sys.stderr)

    tmp = tempfile.mkdtemp(prefix="klinecast-bench-")
    ours = bench_side.Ours("parity", args.bench_bin)
    theirs = bench_side.Reference(os.path.abspath(__file__), ["--threads", str(args.threads)])
    cases = []
    try:
        for size in sizes:
            xtr, ytr, xte, yte = split(x, y, size)
            case_dir = os.path.join(tmp, str(size))
            os.makedirs(case_dir)
            write_csv(os.path.join(case_dir, "train.csv"), xtr, ytr)
            write_csv(os.path.join(case_dir, "test.csv"), xte, yte)
            for name in models:
                cases.append(bench_side.Case(
                    name, size,
                    lambda reps, d=case_dir, m=name: theirs.run(
                        {"case_dir": d, "model": m, "svr_rows": args.svr_rows, "reps": reps}),
                    lambda reps, d=case_dir, m=name: ours.run(
                        d, m, args.threads, args.svr_rows, reps["fit"], reps["predict"])))
        bench_side.run_rounds(args, cases, restart=lambda: (theirs.restart(), ours.restart()))
    finally:
        ours.close()
        theirs.close()
        shutil.rmtree(tmp, ignore_errors=True)
    results = [c.result() for c in cases]

    load_after = bench_side.load_average()
    meta = {"reference": f"scikit-learn {sklearn.__version__}", "threads": args.threads,
            **bench_side.run_args_meta(args), "csvs": [os.path.basename(p) for p in csvs],
            "load_before": load_before, "load_after": load_after, "cpu": bench_side.PINNED_CPU}
    print(f"scikit-learn {sklearn.__version__} vs klinecast, {args.threads} thread(s), "
          f"{args.repeats}-{args.max_repeats} interleaved runs per side "
          f"(--budget {args.budget} s); test rows = train rows / 4; "
          f"load average (1, 5, 15 min) before {load_before}, after {load_after}\n")

    print(bench_side.rmse_tables(results, "sklearn", ".4f", extra=[
        ("fitted on", lambda a, b: a.get("train_rows", "")),
    ]))
    if args.json_out:
        bench_side.save(args.json_out, meta, results)


if __name__ == "__main__":
    if "--worker" in sys.argv:
        bench_side.serve_worker(worker_run)
    else:
        main()
