#!/usr/bin/env python3
"""Prints the README's ensemble and interval tables from `klinecast backtest --json` files (one
per month, as scripts/backtest-months.sh writes them). Standard library only."""
import json
import os
import sys


def ratio(rows, label):
    for r in rows:
        if r["label"] == label:
            return r["rmse_vs_naive"]
    return None


def fmt(v, spec=".5f"):
    return "–" if v is None else format(v, spec)


def main(paths):
    months = []
    for p in paths:
        with open(p) as f:
            d = json.load(f)
        months.append((os.path.basename(p)[:-5], d))
    print("| month | forecasts | best member (÷ naive) | ensemble ÷ naive | share of the edge captured | ml-poly | lcb | final weights |")
    print("|---|---|---|---|---|---|---|---|")
    for name, d in months:
        sb, cb = d["scoreboard"], d["combiners"]
        experts = [r for r in sb if r["label"] not in ("ensemble", "naive") and r["rmse_vs_naive"]]
        best = min(experts, key=lambda r: r["rmse_vs_naive"]) if experts else None
        ens = ratio(sb, "ensemble")
        b = best["rmse_vs_naive"] if best else None
        # An edge month: the best member at most 0.995 × naive (issue 20).
        if b is not None and ens is not None and b <= 0.995:
            share = f"{100 * (1 - ens) / (1 - b):.0f} %"
        else:
            share = "no edge"
        weights = ", ".join(f"{e['label']} {e['weight']:.2f}" for e in d["experts"] if e["weight"] > 0)
        print(
            f"| {name} | {d['replay_rows']} | {best['label'] if best else '–'} {fmt(b)} | "
            f"{fmt(ens)} | {share} | {fmt(ratio(cb, 'combiner/ml-poly'))} | "
            f"{fmt(ratio(cb, 'combiner/lcb'))} | {weights} |"
        )
    print()
    print("| month | coverage % (nominal 90) | by volatility third, low / mid / high | interval score vs static | static coverage % | static by third |")
    print("|---|---|---|---|---|---|")
    for name, d in months:
        iv = d["intervals"]
        pct = lambda v: "–" if v is None else f"{100 * v:.2f}"
        thirds = lambda v: " / ".join(f"{100 * x:.1f}" for x in v)
        gain = iv["gain_vs_static"]
        print(
            f"| {name} | {pct(iv['coverage'])} | {thirds(iv['coverage_by_third'])} | "
            f"{'–' if gain is None else f'{100 * gain:+.1f} %'} | {pct(iv['static_coverage'])} | "
            f"{thirds(iv['static_coverage_by_third'])} |"
        )
    print()
    print("Per expert, RMSE ÷ naive on the same klines (n), and the final ML-Poly weight:")
    for name, d in months:
        w = {e["label"]: e["weight"] for e in d["experts"]}
        cells = [
            f"{r['label']} {fmt(r['rmse_vs_naive'], '.4f')} (n {r['n']}, w {w.get(r['label'], 0):.2f})"
            for r in d["scoreboard"]
            if r["label"] != "ensemble"
        ]
        print(f"- {name}: " + "; ".join(cells))


if __name__ == "__main__":
    main(sys.argv[1:])
