#!/usr/bin/env python3
"""Prints the correlated-pairs table from scripts/backtest-corr.sh's JSON files
(`<SYMBOL>-<month>-own.json` and `-corr.json`). Standard library only."""
import json
import os
import sys

# Where a least-squares fit gains >= 1 % from the neighbours (issue 23's table).
HELPS = {("ALGOUSDT", "2024-09"), ("FILUSDT", "2026-06")}


def load(path):
    with open(path) as f:
        return json.load(f)


def ratio(d, label):
    return next((r["rmse_vs_naive"] for r in d["scoreboard"] if r["label"] == label), None)


def best(d):
    rows = [r for r in d["scoreboard"] if r["label"] not in ("ensemble", "naive")]
    r = min(rows, key=lambda r: r["rmse_vs_naive"])
    return r["rmse_vs_naive"], r["label"]


def main(out):
    print("| month | ensemble ÷ naive without | with --corr | difference | goal | met | best member without | best member with |")
    print("|---|---|---|---|---|---|---|---|")
    names = sorted(f[:-9] for f in os.listdir(out) if f.endswith("-own.json"))
    for name in names:
        own_p, corr_p = (os.path.join(out, f"{name}-{k}.json") for k in ("own", "corr"))
        if not all(os.path.exists(p) and os.path.getsize(p) > 0 for p in (own_p, corr_p)):
            print(f"| {name} | (not run, or failed: see {name}-*.err) |")
            continue
        own, corr = load(own_p), load(corr_p)
        symbol, month = name.split("-", 1)
        e0, e1 = ratio(own, "ensemble"), ratio(corr, "ensemble")
        goal = -0.01 if (symbol, month) in HELPS else 0.0005
        met = (e1 - e0) <= goal
        b0, b1 = best(own), best(corr)
        print(f"| {symbol} {month} | {e0:.4f} | {e1:.4f} | {e1 - e0:+.4f} | ≤ {goal:+.4f} | "
              f"{'yes' if met else 'no'} | {b0[0]:.4f} {b0[1]} | {b1[0]:.4f} {b1[1]} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "target/corr")
