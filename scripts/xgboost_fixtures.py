#!/usr/bin/env python3
"""Golden fixtures for the gradient-boosted trees (src/models/gbdt.rs) from the real XGBoost.

Writes tests/fixtures/gbdt.json, read by tests/gbdt_parity.rs. Run by hand from the repository
root, never by tests or CI (it needs PyPI):

    python3 -m venv /tmp/xgbvenv
    /tmp/xgbvenv/bin/pip install -r scripts/requirements-xgboost.txt
    /tmp/xgbvenv/bin/python scripts/xgboost_fixtures.py

Every XGBoost parameter is set explicitly (no library default is relied on), with
nthread=1 and an explicit base_score. Cases:
  * "exact_default": synthetic data (seed 7), 300 train rows x 5 features, 100 test rows;
    tree_method="exact" with XGBRegressor's default hyperparameters but 30 trees.
  * "exact_regularized": the same data, eta 0.1, max_depth 4, lambda 2, alpha 0.5, gamma 0.3
    (so the bottom-up pruning acts), min_child_weight 3, 20 trees.
  * "hist_discrete": data whose features have at most 41 distinct values each; tree_method
    "hist" (max_bin 256). The script asserts that XGBoost's hist and exact grow the same trees
    here (features and leaf values; hist thresholds are the upper value of the gap, exact ones
    the midpoint), which is the claim the Rust hist == exact test relies on.
  * "klines": test RMSE of XGBoost hist and exact with defaults (100 trees) on the real kline
    features of data/AVAXUSDT_1m.csv (all rows: the 5 lagged log returns and (high-low)/close of
    scripts/sklearn_fixtures.py, target = next log return, unscaled), first 80 % train, rest test.
    The Rust test rebuilds the same features from the CSV.

Trees are exported from get_booster().get_dump(dump_format="json") flattened to preorder
(the "yes" = `x < split_condition` child first): per tree, "feature" (-1 for a leaf) and
"value" (split_condition or leaf, printed by XGBoost with 9 significant digits, so exact f32).
"""

import json
import os

import numpy as np
import xgboost as xgb

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, "tests", "fixtures", "gbdt.json")
KLINES = os.path.join(ROOT, "data", "AVAXUSDT_1m.csv")

DEFAULTS = dict(
    n_estimators=100,
    learning_rate=0.3,
    max_depth=6,
    reg_lambda=1.0,
    reg_alpha=0.0,
    gamma=0.0,
    min_child_weight=1.0,
    subsample=1.0,
    colsample_bytree=1.0,
    colsample_bylevel=1.0,
    colsample_bynode=1.0,
    max_delta_step=0.0,
    max_bin=256,
    grow_policy="depthwise",
    max_leaves=0,
    objective="reg:squarederror",
    booster="gbtree",
    n_jobs=1,
    random_state=0,
    missing=np.nan,
    num_parallel_tree=1,
    importance_type=None,
    validate_parameters=True,
)


def model(tree_method, base_score, **over):
    params = dict(DEFAULTS, tree_method=tree_method, base_score=base_score)
    params.update(over)
    return xgb.XGBRegressor(**params)


def flatten(dump):
    """Preorder (yes child first) feature / value lists of one JSON tree dump."""
    feature, value = [], []

    def walk(node):
        if "leaf" in node:
            feature.append(-1)
            value.append(float(node["leaf"]))
            return
        feature.append(int(node["split"][1:]))
        value.append(float(node["split_condition"]))
        kids = {c["nodeid"]: c for c in node["children"]}
        assert node["missing"] in (node["yes"], node["no"])
        walk(kids[node["yes"]])
        walk(kids[node["no"]])

    walk(json.loads(dump))
    return {"feature": feature, "value": value}


def trees_of(m):
    return [flatten(t) for t in m.get_booster().get_dump(dump_format="json")]


def rounded(a, digits=6):
    return [[round(float(v), digits) for v in row] for row in a]


def synthetic():
    rng = np.random.default_rng(7)
    n, n_test, d = 300, 100, 5
    x = np.round(rng.uniform(-2, 2, size=(n + n_test, d)), 6)
    y = (np.sin(2 * x[:, 0]) + x[:, 1] * x[:, 2] + 0.5 * (x[:, 3] > 0.3)
         + 0.2 * rng.standard_normal(n + n_test))
    y = np.round(y, 6)
    return x[:n], y[:n], x[n:]


def discrete():
    rng = np.random.default_rng(11)
    n, n_test, d = 400, 100, 4
    x = rng.integers(-20, 21, size=(n + n_test, d)) / 8.0  # 41 distinct values per feature
    y = np.round(np.cos(x[:, 0]) + 0.5 * x[:, 1] - 0.3 * x[:, 2] * x[:, 3]
                 + 0.1 * rng.standard_normal(n + n_test), 6)
    return x[:n], y[:n], x[n:]


def case(tree_method, x, y, x_test, **over):
    base = float(np.mean(y))
    m = model(tree_method, base, **over).fit(x, y)
    params = dict(DEFAULTS, tree_method=tree_method, base_score=base, **over)
    params = {k: v for k, v in params.items()
              if k not in ("missing", "importance_type")}
    return m, {
        "params": params,
        "pred_train": [float(v) for v in m.predict(x)],
        "pred_test": [float(v) for v in m.predict(x_test)],
        "trees": trees_of(m),
    }


def kline_features(high, low, close):
    """Same as scripts/sklearn_fixtures.py: rows t = 5 .. n-2, X (unscaled) and y."""
    r = np.diff(np.log(close))
    n = len(close)
    ts = np.arange(5, n - 1)
    x = np.column_stack([r[ts - 1 - lag] for lag in range(5)] + [(high[ts] - low[ts]) / close[ts]])
    y = r[ts]
    return x, y


def klines():
    cols = np.loadtxt(KLINES, delimiter=",", skiprows=1, usecols=(2, 3, 4), dtype=np.float64)
    x, y = kline_features(cols[:, 0], cols[:, 1], cols[:, 2])
    n_train = int(0.8 * len(y))
    xtr, ytr, xte, yte = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    out = {"klines_rows": int(len(cols)), "n_train": n_train, "n_test": int(len(yte)),
           "base_score": float(np.mean(ytr))}
    for method in ("hist", "exact"):
        m = model(method, float(np.mean(ytr))).fit(xtr, ytr)
        pred = m.predict(xte).astype(np.float64)
        out[f"{method}_rmse"] = float(np.sqrt(np.mean((pred - yte) ** 2)))
    out["mean_rmse"] = float(np.sqrt(np.mean((np.mean(ytr) - yte) ** 2)))
    return out


def main():
    x, y, x_test = synthetic()
    _, default = case("exact", x, y, x_test, n_estimators=30)
    _, regularized = case("exact", x, y, x_test, n_estimators=20, learning_rate=0.1,
                          max_depth=4, reg_lambda=2.0, reg_alpha=0.5, gamma=0.3,
                          min_child_weight=3.0)
    xd, yd, xd_test = discrete()
    _, hist = case("hist", xd, yd, xd_test, n_estimators=20)
    _, exact = case("exact", xd, yd, xd_test, n_estimators=20)
    for th, te in zip(hist["trees"], exact["trees"]):
        assert th["feature"] == te["feature"], "xgboost hist and exact differ in structure"
        leaves_h = [v for f, v in zip(th["feature"], th["value"]) if f < 0]
        leaves_e = [v for f, v in zip(te["feature"], te["value"]) if f < 0]
        assert np.allclose(leaves_h, leaves_e, rtol=1e-5, atol=1e-7), "leaves differ"
    fixture = {
        "description": "golden values from XGBoost; made by scripts/xgboost_fixtures.py",
        "xgboost_version": xgb.__version__,
        "synthetic": {"x": rounded(x), "y": [float(v) for v in y], "x_test": rounded(x_test)},
        "discrete": {"x": xd.tolist(), "y": [float(v) for v in yd], "x_test": xd_test.tolist()},
        "exact_default": default,
        "exact_regularized": regularized,
        "hist_discrete": hist,
        "klines": klines(),
    }
    with open(OUT, "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")
    print(json.dumps(fixture["klines"], indent=1))


if __name__ == "__main__":
    main()
