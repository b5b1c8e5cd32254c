#!/usr/bin/env python3
"""Writes the scikit-learn golden fixtures that tests/parity.rs checks klinecast's models against.

Run from the repository root (needs the pinned environment, no network beyond the install):

    pip install -r scripts/requirements.txt
    python3 scripts/sklearn_fixtures.py            # writes tests/fixtures/*.json

The output is deterministic (fixed numpy seeds, random_state=0), and the generated files are
committed so `cargo test` needs no Python. Re-run only when a fixture must change.

Every model uses the SAME hyperparameters as klinecast's defaults, which are scikit-learn's:
LinearRegression(), KNeighborsRegressor() (k=5, uniform, Euclidean), DecisionTreeRegressor(
random_state=0) (+ a max_depth=4, min_samples_leaf=5 variant), SVR() (rbf, C=1, epsilon=0.1,
gamma="scale", tol=1e-3) and SVR(kernel="linear"), RandomForestRegressor(random_state=0)
(100 trees, bootstrap, all features).

Number encoding: every float is written as a JSON *string* holding Python's repr (the shortest
decimal that round-trips exactly). serde_json without its `float_roundtrip` feature may parse a
17-digit number 1 ULP off, which would break the exact KNN/CART comparisons; Rust's
`str::parse::<f64>` is correctly rounded, so strings give bit-exact float64 on both sides.
Integers (counts, indices) are plain JSON numbers.

Files (all arrays row-major: a matrix is a list of rows):
  linear.json  300x6 train / 100 test, y = X.w + 0.3 + N(0, 0.1): coef, intercept, predictions
  knn.json     500x4 train / 100 test, U(0,1) features (no distance ties): predictions
  cart.json    400x3 train / 100 test, distinct features and targets (no impurity ties):
               predictions (default tree) and predictions_depth4 (max_depth=4, min_samples_leaf=5)
  svr.json     400x5 train / 100 test, standardized features: rbf {gamma, intercept, n_support,
               support, dual_coef, predictions} and linear {...}
  forest.json  1000x5 train / 300 test, Friedman-like nonlinear function + noise: predictions
               and rmse (against the noisy y_test)
  klines.json  real klines (see kline_features below): linear and svr fits

Real-kline features (kline_features): from the first 3000 rows of data/AVAXUSDT_1m.csv, with
c = close, h = high, l = low and r_t = ln(c_t / c_{t-1}), the row for minute t (t >= 5) is
    [r_t, r_{t-1}, r_{t-2}, r_{t-3}, r_{t-4}, (h_t - l_t) / c_t]
and its target is y_t = ln(c_{t+1} / c_t) (the next log return; the last row has none). Rows are
kept in time order; the first 2000 are train, the rest test. Each feature column is standardized
with the TRAIN mean and population std (ddof=0). Linear regression uses y as is. SVR uses the
standardized target z = (y - mean(y_train)) / std(y_train), because raw 1-minute log returns
(~1e-3) all lie inside the epsilon = 0.1 tube and would give no support vectors; its
predictions are in z units. The Rust tests read x/y straight from the fixture and do not
recompute any feature.
"""

import json
import math
import os
import sys

import numpy as np
import sklearn
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LinearRegression
from sklearn.neighbors import KNeighborsRegressor
from sklearn.svm import SVR
from sklearn.tree import DecisionTreeRegressor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures")
KLINES = os.path.join(ROOT, "data", "AVAXUSDT_1m.csv")


def enc(a):
    """Float64 array (any rank) -> nested lists of exact decimal strings."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 0:
        return repr(float(a))
    return [enc(v) for v in a]


def write(name, obj):
    obj = {"sklearn_version": sklearn.__version__, "numpy_version": np.__version__, **obj}
    path = os.path.join(OUT, name)
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes)")


def rmse(a, b):
    return math.sqrt(float(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def data_block(x_train, y_train, x_test, y_test=None):
    d = {"x_train": enc(x_train), "y_train": enc(y_train), "x_test": enc(x_test)}
    if y_test is not None:
        d["y_test"] = enc(y_test)
    return d


def svr_block(model, x_test):
    return {
        "gamma": enc(model._gamma),
        "intercept": enc(model.intercept_[0]),
        "n_support": int(model.support_.shape[0]),
        "support": [int(i) for i in model.support_],
        "dual_coef": enc(model.dual_coef_[0]),
        "predictions": enc(model.predict(x_test)),
    }


def fixture_linear():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 6))
    w = np.array([1.5, -2.0, 0.7, 0.0, 3.1, -0.4])
    y = x @ w + 0.3 + rng.normal(scale=0.1, size=400)
    xtr, ytr, xte = x[:300], y[:300], x[300:]
    m = LinearRegression().fit(xtr, ytr)
    write("linear.json", {
        "description": "LinearRegression() on 300x6 N(0,1) features, y = X.w + 0.3 + N(0,0.1)",
        **data_block(xtr, ytr, xte),
        "coef": enc(m.coef_),
        "intercept": enc(m.intercept_),
        "predictions": enc(m.predict(xte)),
    })


def fixture_knn():
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(600, 4))
    y = np.sin(4 * x[:, 0]) + x[:, 1] * x[:, 2] - x[:, 3] ** 2 + rng.normal(scale=0.05, size=600)
    xtr, ytr, xte = x[:500], y[:500], x[500:]
    m = KNeighborsRegressor().fit(xtr, ytr)
    # Guard: the 5th and 6th nearest neighbours of every test row are not tied.
    dist, _ = m.kneighbors(xte, n_neighbors=6)
    assert np.all(np.diff(dist, axis=1) > 1e-9), "knn fixture has (near) distance ties"
    write("knn.json", {
        "description": "KNeighborsRegressor() (k=5, uniform) on 500x4 U(0,1), 100 test rows",
        **data_block(xtr, ytr, xte),
        "predictions": enc(m.predict(xte)),
    })


def fixture_cart():
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, size=(500, 3))
    y = np.where(x[:, 0] > 0, 2.0, -1.0) + x[:, 1] ** 2 + 0.5 * x[:, 2] + rng.normal(scale=0.1, size=500)
    for j in range(3):
        assert len(np.unique(x[:, j])) == 500, "cart fixture needs distinct feature values"
    assert len(np.unique(y)) == 500, "cart fixture needs distinct targets"
    xtr, ytr, xte = x[:400], y[:400], x[400:]
    full = DecisionTreeRegressor(random_state=0).fit(xtr, ytr)
    small = DecisionTreeRegressor(random_state=0, max_depth=4, min_samples_leaf=5).fit(xtr, ytr)
    write("cart.json", {
        "description": "DecisionTreeRegressor(random_state=0) and (max_depth=4, "
                       "min_samples_leaf=5) on 400x3 tie-free data, 100 test rows",
        **data_block(xtr, ytr, xte),
        "predictions": enc(full.predict(xte)),
        "n_leaves": int(full.get_n_leaves()),
        "depth": int(full.get_depth()),
        "predictions_depth4": enc(small.predict(xte)),
        "n_leaves_depth4": int(small.get_n_leaves()),
    })


def fixture_svr():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(500, 5))
    y = np.sin(x[:, 0]) + 0.5 * x[:, 1] * x[:, 2] - 0.3 * x[:, 3] + 0.2 * np.abs(x[:, 4]) \
        + rng.normal(scale=0.1, size=500)
    mean, std = x[:400].mean(axis=0), x[:400].std(axis=0)
    x = (x - mean) / std
    xtr, ytr, xte = x[:400], y[:400], x[400:]
    rbf = SVR().fit(xtr, ytr)
    lin = SVR(kernel="linear").fit(xtr, ytr)
    write("svr.json", {
        "description": "SVR() (rbf, gamma=scale) and SVR(kernel='linear') on standardized "
                       "400x5 data, 100 test rows",
        **data_block(xtr, ytr, xte),
        "rbf": svr_block(rbf, xte),
        "linear": svr_block(lin, xte),
    })


def fixture_forest():
    rng = np.random.default_rng(5)
    x = rng.uniform(size=(1300, 5))
    y = 10 * np.sin(math.pi * x[:, 0] * x[:, 1]) + 20 * (x[:, 2] - 0.5) ** 2 + 10 * x[:, 3] \
        + 5 * x[:, 4] + rng.normal(scale=1.0, size=1300)
    xtr, ytr, xte, yte = x[:1000], y[:1000], x[1000:], y[1000:]
    m = RandomForestRegressor(random_state=0).fit(xtr, ytr)
    pred = m.predict(xte)
    write("forest.json", {
        "description": "RandomForestRegressor(random_state=0) on Friedman #1-like 1000x5, "
                       "300 noisy test rows",
        **data_block(xtr, ytr, xte, yte),
        "predictions": enc(pred),
        "rmse": enc(rmse(pred, yte)),
    })


def load_klines(path, max_rows=None):
    """Returns (high, low, close) float64 arrays from a klinecast CSV (header row first)."""
    cols = np.loadtxt(path, delimiter=",", skiprows=1, usecols=(2, 3, 4), max_rows=max_rows,
                      dtype=np.float64)
    return cols[:, 0], cols[:, 1], cols[:, 2]


def kline_features(high, low, close):
    """The documented real-kline features: rows t = 5 .. n-2, X (unscaled) and y."""
    r = np.diff(np.log(close))  # r[k] = ln(c[k+1] / c[k]) = r_{k+1}
    n = len(close)
    ts = np.arange(5, n - 1)
    x = np.column_stack([r[ts - 1 - lag] for lag in range(5)] + [(high[ts] - low[ts]) / close[ts]])
    y = r[ts]  # ln(c[t+1] / c[t])
    return x, y


def standardize(x_train, *others):
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std = np.where(std == 0, 1.0, std)
    return [(a - mean) / std for a in (x_train, *others)]


def fixture_klines():
    high, low, close = load_klines(KLINES, max_rows=3000)
    x, y = kline_features(high, low, close)
    n_train = 2000
    xtr, xte = standardize(x[:n_train], x[n_train:])
    ytr, yte = y[:n_train], y[n_train:]
    lin = LinearRegression().fit(xtr, ytr)
    ymean, ystd = ytr.mean(), ytr.std()
    ztr = (ytr - ymean) / ystd
    svr = SVR().fit(xtr, ztr)
    write("klines.json", {
        "description": "first 3000 rows of data/AVAXUSDT_1m.csv: 5 lagged log returns + "
                       "(high-low)/close, standardized on 2000 train rows; see "
                       "scripts/sklearn_fixtures.py",
        **data_block(xtr, ytr, xte, yte),
        "linear": {
            "coef": enc(lin.coef_),
            "intercept": enc(lin.intercept_),
            "predictions": enc(lin.predict(xte)),
        },
        "svr": {"z_train": enc(ztr), **svr_block(svr, xte)},
    })


def main():
    os.makedirs(OUT, exist_ok=True)
    fixture_linear()
    fixture_knn()
    fixture_cart()
    fixture_svr()
    fixture_forest()
    fixture_klines()
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"total {total} bytes")
    if total > 1_500_000:
        sys.exit("fixtures are larger than 1.5 MB: shrink the data sets")


if __name__ == "__main__":
    main()
