#!/usr/bin/env python3
"""Prediction intervals against the field's standard volatility model, month by month.

For each 1-minute month (default: every `*-1m-*.csv` in ../shared/data; a file longer than
--max-rows, by default two weeks, 20,160 klines, is cut to its last --max-rows, as
scripts/backtest-months.sh does for the AVAXUSDT months), it runs

    klinecast backtest --data FILE --json --predictions target/garch/NAME.csv [BACKTEST ARGS]

(release build), then scores three intervals around the very same ensemble forecasts ŷ:

- ours: the `lower`/`upper` columns klinecast wrote (its volatility scale inside its ACI);
- GARCH(1,1) with Student-t errors (constant mean), fitted by the `arch` package on the log
  returns of the training part (the rows `backtest` trains on: the first --train-frac, 0.5),
  its one-step conditional volatility σ_t then filtered through the replay with the fitted
  parameters, wrapped in the same ACI as ours (γ 0.005, the last 1440 scores |y − ŷ|/σ, nominal
  90 %, score windows warmed on the last 1440 training returns as klinecast warms its own);
- static: the same ACI on raw residuals (σ ≡ 1). This is recomputed here and must equal the
  static baseline klinecast reports: the script prints both and fails if they differ, which
  checks that its ACI is klinecast's.

It prints, per month: coverage, coverage per volatility third (ranked by each model's own σ),
the Winkler interval score's gain over the static baseline for ours and for GARCH, and ours
against GARCH (1 − ours / GARCH). `arch` is not a dependency of klinecast: when it cannot be
imported, this script creates target/venv-arch, installs scripts/requirements-arch.txt (pinned)
into it and runs itself again there.

Usage: python3 scripts/bench_vs_garch.py [--out DIR] [--max-rows N] [--reuse] [--no-build]
                                          [FILE ...] [-- BACKTEST ARGS]
  --out DIR     where the backtest outputs NAME.json and NAME.csv go (default target/garch)
  --max-rows N  cut a file longer than N klines to its last N (default 20160)
  --reuse       use DIR/NAME.{json,csv} from an earlier run instead of backtesting again
  --no-build    use target/release/klinecast as it is
"""
import bisect
import csv
import glob
import json
import math
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, "target", "venv-arch")
OUT = [os.path.join(ROOT, "target", "garch")]
COVERAGE, GAMMA, WINDOW = 0.9, 0.005, 1440
MAX_ROWS = [20160]


def ensure_arch():
    try:
        import arch  # noqa: F401
        import numpy  # noqa: F401
    except ImportError:
        py = os.path.join(VENV, "bin", "python")
        if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
            raise
        if not os.path.exists(py):
            subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run(
            [py, "-m", "pip", "install", "-q", "-r", os.path.join(ROOT, "scripts", "requirements-arch.txt")],
            check=True,
        )
        os.execv(py, [py] + sys.argv)


class Aci:
    """klinecast's ensemble::interval::Aci: the ⌈(1 − α_t)(n + 1)⌉-th smallest of the last
    `window` scores, α_{t+1} = α_t + γ(α − err_t)."""

    def __init__(self):
        self.alpha = 1.0 - COVERAGE
        self.alpha_t = self.alpha
        self.ring, self.start, self.sorted = [], 0, []

    def push(self, score):
        if not math.isfinite(score):
            return
        if len(self.ring) < WINDOW:
            self.ring.append(score)
        else:
            old = self.ring[self.start]
            self.ring[self.start] = score
            self.start = (self.start + 1) % WINDOW
            del self.sorted[bisect.bisect_left(self.sorted, old)]
        bisect.insort_left(self.sorted, score)

    def multiplier(self):
        if self.alpha_t <= 0.0:
            return math.inf
        if self.alpha_t >= 1.0:
            return 0.0
        level = 1.0 - self.alpha_t
        n = len(self.sorted)
        rank = math.ceil(level * (n + 1))
        if n == 0 or rank > n:
            return math.inf
        return self.sorted[max(rank, 1) - 1]

    def record(self, q, score):
        covered = score <= q
        self.alpha_t += GAMMA * (self.alpha - (0.0 if covered else 1.0))
        self.push(score)


class Tally:
    """klinecast's IntervalAccum (an unbounded interval counts as covered, without a score)
    plus (σ, covered) for the thirds."""

    def __init__(self):
        self.n = self.covered = 0
        self.score = 0.0
        self.rows = []

    def add(self, lower, upper, y, sigma):
        self.n += 1
        if not (math.isfinite(lower) and math.isfinite(upper)):
            self.covered += 1
            return
        inside = lower <= y <= upper
        self.covered += inside
        out = lower - y if y < lower else (y - upper if y > upper else 0.0)
        self.score += (upper - lower) + 2.0 / (1.0 - COVERAGE) * out
        self.rows.append((sigma, inside))

    def mean(self):
        return self.score / self.n

    def thirds(self):
        rows = sorted(self.rows, key=lambda r: r[0])
        k = len(rows) // 3
        parts = [rows[:k], rows[k : 2 * k], rows[2 * k :]]
        return [100.0 * sum(c for _, c in p) / len(p) for p in parts]


def load(path, max_rows):
    t, c = [], []
    with open(path) as f:
        r = csv.reader(f)
        next(r)
        for row in r:
            t.append(int(row[0]))
            c.append(float(row[4]))
    if max_rows and len(t) > max_rows:
        t, c = t[-max_rows:], c[-max_rows:]
    return t, c


def garch_sigmas(times, closes, split, step):
    """σ_t (log-return units) for every row t ≥ 1, from GARCH(1,1)-t fitted on rows < split."""
    import numpy as np
    from arch import arch_model

    c = np.asarray(closes)
    r = np.log(c[1:] / c[:-1])
    # A return across a gap in open times is not a one-kline return: zero it (klinecast's
    # volatility model does the same).
    r[np.diff(np.asarray(times)) != step] = 0.0
    scale = 1e4  # basis points: arch's optimiser wants values of order 1-1000
    fit = arch_model(r[: split - 1] * scale, mean="Constant", vol="GARCH", p=1, q=1, dist="t", rescale=False).fit(
        disp="off"
    )
    fixed = arch_model(r * scale, mean="Constant", vol="GARCH", p=1, q=1, dist="t", rescale=False).fix(
        fit.params.values
    )
    sd = np.asarray(fixed.conditional_volatility) / scale
    return {times[i + 1]: float(sd[i]) for i in range(len(sd))}, fit.params


def backtest(path, name, max_rows, extra, reuse):
    js, pc = os.path.join(OUT[0], name + ".json"), os.path.join(OUT[0], name + ".csv")
    if not (reuse and os.path.exists(js) and os.path.exists(pc)):
        cmd = [os.path.join(ROOT, "target", "release", "klinecast"), "backtest", "--data", path, "--json"]
        cmd += ["--predictions", pc] + (["--max-rows", str(max_rows)] if max_rows else []) + extra
        with open(js, "w") as out:
            subprocess.run(cmd, check=True, stdout=out)
    with open(js) as f:
        summary = json.load(f)
    with open(pc) as f:
        rows = list(csv.DictReader(f))
    return summary, rows


def month(path, extra, reuse):
    name = os.path.basename(path)[:-4]
    with open(path) as f:
        rows = sum(1 for _ in f) - 1
    max_rows = MAX_ROWS[0] if rows > MAX_ROWS[0] else None
    summary, preds = backtest(path, name, max_rows, extra, reuse)
    times, closes = load(path, max_rows)
    step = summary["interval_ms"]
    split = summary["train_rows"] + summary.get("warm_up_rows", 0)
    assert len(times) == summary["rows"], f"{name}: rows differ from the backtest's"
    sig, params = garch_sigmas(times, closes, split, step)
    close_at = dict(zip(times, closes))
    garch, static = Aci(), Aci()
    for t in range(max(1, split - WINDOW), split):
        if times[t] - times[t - 1] == step:
            r = math.log(closes[t] / closes[t - 1])
            garch.push(abs(r) / sig[times[t]])
            static.push(abs(r))
    ours, g, s = Tally(), Tally(), Tally()
    for p in preds:
        target = int(p["target_open_time"])
        last, price = float(p["naive"]), float(p["forecast"])
        y = close_at[target]
        yhat = math.log(price / last)
        e = math.log(y / last) - yhat
        ours.add(float(p["lower"]), float(p["upper"]), y, 0.0)
        for aci, tally, sd in ((garch, g, sig[target]), (static, s, 1.0)):
            q = aci.multiplier()
            h = sd * q
            lo, up = (last * math.exp(yhat - h), last * math.exp(yhat + h)) if math.isfinite(h) else (0.0, math.inf)
            tally.add(lo, up, y, sd)
            aci.record(q, abs(e) / sd)
    iv = summary["intervals"]
    reported = iv["static_interval_score"]
    if abs(s.mean() / reported - 1.0) > 1e-6 or ours.n != iv["n"]:
        sys.exit(f"{name}: this script's static baseline {s.mean():.6g} differs from klinecast's {reported:.6g}")
    gain = lambda a, b: 100.0 * (1.0 - a / b)
    th = lambda v: " / ".join(f"{x:.1f}" for x in v)
    nu = params.get("nu", float("nan"))
    return (
        f"| {name} | {ours.n} | {100 * iv['coverage']:.2f} | {th(100 * x for x in iv['coverage_by_third'])} | "
        f"{gain(ours.mean(), s.mean()):+.1f} % | {100 * g.covered / g.n:.2f} | {th(g.thirds())} | "
        f"{gain(g.mean(), s.mean()):+.1f} % | **{gain(ours.mean(), g.mean()):+.1f} %** | "
        f"{params['alpha[1]']:.3f} / {params['beta[1]']:.3f} / {nu:.1f} |"
    )


def main():
    ensure_arch()
    args = sys.argv[1:]
    extra = []
    if "--" in args:
        i = args.index("--")
        args, extra = args[:i], args[i + 1 :]
    for flag in ("--out", "--max-rows"):
        if flag in args:
            i = args.index(flag)
            if i + 1 >= len(args):
                sys.exit(f"{flag} needs a value")
            if flag == "--out":
                OUT[0] = os.path.abspath(args[i + 1])
            else:
                MAX_ROWS[0] = int(args[i + 1])
            args = args[:i] + args[i + 2 :]
    reuse, build = "--reuse" in args, "--no-build" not in args
    files = [a for a in args if a not in ("--reuse", "--no-build")]
    bad = [a for a in files if a.startswith("-") or not os.path.isfile(a)]
    if bad:
        sys.exit(f"not a kline file: {bad[0]} (usage: see the top of this script)")
    files = files or sorted(
        glob.glob(os.path.join(ROOT, "..", "shared", "data", "*-1m-*.csv"))
    )
    os.makedirs(OUT[0], exist_ok=True)
    if build and not reuse:
        subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT, check=True)
    print(
        "| month | n | ours: coverage % | by σ third | vs static | GARCH-t: coverage % | by σ third | "
        "vs static | ours vs GARCH-t | GARCH α / β / ν |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for f in files:
        print(month(f, extra, reuse), flush=True)


if __name__ == "__main__":
    main()
