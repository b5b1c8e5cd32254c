#!/usr/bin/python3
"""Our GRU/LSTM against PyTorch's over several seeds, on real klines (README, "GRU and LSTM").

The Rust half, `cargo bench --bench rnn -- --band DIR --files A.csv,B.csv [--seeds S]
[--max-rows N]`, writes for every kline file exactly the scaled training rows, targets and
holdout sequences `klinecast train` builds (default holdout 0.2, horizon 1) as DIR/STEM.bin +
DIR/STEM.json, and our holdout RMSE / naive for seeds 1..=S as DIR/STEM.ours.json.

This script trains torch `nn.GRU` / `nn.LSTM` (one layer, batch_first) + `nn.Linear(H, 1)` on
the same sequences with the same recipe as `RnnParams::fit`: float64 (our default), hidden 32,
T = 60, the last min(rows, 50000) training rows (train's RNN_MAX_ROWS), the most recent 10 % of
sequences (never shuffled) for early stopping, targets divided by the std of the training
targets, a fresh seeded shuffle every epoch (torch.randperm), mini-batches of 64 (the last one
smaller), MSE loss, clip_grad_norm_(1.0), Adam defaults (lr 1e-3), at most 4 epochs, patience 2,
best-validation weights kept. Initialisation is PyTorch's own (U(-1/sqrt(H), 1/sqrt(H)) for the
cell and the head, the distribution ours draws from); the random streams differ from ours, so
the comparison is between two seed distributions. One thread (torch.set_num_threads(1)).
The holdout RMSE is on prices, close * exp(forecast), divided by the naive forecast's, as
`train` prints it.

Band (fixed before any result was seen): ours is "within torch's band" on a month and model
when our mean over the seeds lies in [torch min - 0.0005, torch max + 0.0005], torch's min and
max over the same seeds. The slack of 0.0005 (0.05 % of the naive RMSE) allows for the range of
a handful of seeds underestimating the spread of the seed distribution.

Torch results are cached per (file, model, seed) in DIR/STEM.torch.json, so a run can be
resumed or re-tabulated (--table-only); `--only-seeds 3,4` runs just those seeds and caches
them in DIR/STEM.torch-3,4.json, so two processes can share the work (the table merges every
STEM.torch*.json). Run with Debian's torch:
    /usr/bin/python3 scripts/rnn_vs_torch_band.py DIR [--seeds 5] [--only-seeds S,..] [--table-only]
"""

import argparse
import copy
import glob
import json
import math
import os
import time

import numpy as np
import torch
from torch import nn

HIDDEN, T, BATCH = 32, 60, 64
MAX_EPOCHS, PATIENCE, VAL_FRACTION = 4, 2, 0.1
LR, CLIP = 1e-3, 1.0
RNN_MAX_ROWS = 50_000
PREDICT_BATCH = 256
SLACK = 0.0005


def load(dir_, stem):
    with open(os.path.join(dir_, stem + ".json")) as f:
        header = json.load(f)
    flat = np.fromfile(os.path.join(dir_, stem + ".bin"), dtype="<f8")
    arrays = {}
    for a in header["arrays"]:
        rows, cols = a["shape"]
        block = flat[a["offset"] : a["offset"] + rows * cols].reshape(rows, cols)
        arrays[a["name"]] = block[:, 0].copy() if cols == 1 else block.copy()
    return header, arrays


def windows(x):
    """All length-T windows of the rows of x: window k ends at row k + T - 1 (B x T x D view)."""
    return x.unfold(0, T, 1).transpose(1, 2)


class Net(nn.Module):
    def __init__(self, cell, d):
        super().__init__()
        kind = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn = kind(d, HIDDEN, batch_first=True, dtype=torch.float64)
        self.head = nn.Linear(HIDDEN, 1, dtype=torch.float64)

    def forward(self, xb):
        out, _ = self.rnn(xb)
        return self.head(out[:, -1, :]).squeeze(1)


def predict(net, wins, idx):
    outs = []
    with torch.no_grad():
        for start in range(0, len(idx), PREDICT_BATCH):
            outs.append(net(wins[idx[start : start + PREDICT_BATCH]]))
    return torch.cat(outs)


def fit_and_score(cell, seed, arrays):
    x = torch.from_numpy(arrays["train_x"])
    y = torch.from_numpy(arrays["train_y"])
    keep = min(len(y), RNN_MAX_ROWS)
    x, y = x[len(y) - keep :], y[len(y) - keep :]
    wins = windows(x)
    ys = y[T - 1 :]  # target of window k
    n_samples = len(ys)
    n_val = math.floor(n_samples * VAL_FRACTION)
    n_train = n_samples - n_val
    scale = float(ys[:n_train].std(unbiased=False))
    if not (scale > 0 and math.isfinite(scale)):
        scale = 1.0
    yt = ys / scale
    train_idx = torch.arange(n_train)
    val_idx = torch.arange(n_train, n_samples)

    torch.manual_seed(seed)
    net = Net(cell, x.shape[1])
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    shuffle = torch.Generator().manual_seed(seed)
    best, since_best, epochs_run = None, 0, 0
    for epoch in range(1, MAX_EPOCHS + 1):
        order = train_idx[torch.randperm(n_train, generator=shuffle)]
        net.train()
        for start in range(0, n_train, BATCH):
            chunk = order[start : start + BATCH]
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.mse_loss(net(wins[chunk]), yt[chunk])
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), CLIP)
            opt.step()
        epochs_run = epoch
        val_loss = float(((predict(net, wins, val_idx) - yt[val_idx]) ** 2).mean())
        if best is None or val_loss < best[0]:
            best = (val_loss, copy.deepcopy(net.state_dict()), epoch)
            since_best = 0
        else:
            since_best += 1
            if since_best >= PATIENCE:
                break
    net.load_state_dict(best[1])

    hold = windows(torch.from_numpy(arrays["hold_x"]))
    n_hold = len(arrays["hold_y"])
    # Holdout row k's sequence ends at row context_rows + k of hold_x: window index k.
    assert hold.shape[0] == n_hold
    pred = predict(net, hold, torch.arange(n_hold)).numpy() * scale
    last, actual = arrays["last_close"], arrays["actual_close"]
    rmse = float(np.sqrt(np.mean((last * np.exp(pred) - actual) ** 2)))
    naive = float(np.sqrt(np.mean((last - actual) ** 2)))
    return {
        "model": cell,
        "seed": seed,
        "rmse": rmse,
        "naive_rmse": naive,
        "ratio": rmse / naive,
        "epochs_run": epochs_run,
        "best_epoch": best[2],
    }


def read_json(path, default):
    if not os.path.exists(path):
        return default
    with open(path) as f:
        return json.load(f)


def write_json(path, value):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def torch_cache(dir_, stem):
    """Every cached torch run of `stem`, once per (model, seed)."""
    runs = {}
    for path in sorted(glob.glob(os.path.join(dir_, stem + ".torch*.json"))):
        for r in read_json(path, {"runs": []})["runs"]:
            runs.setdefault((r["model"], r["seed"]), r)
    return list(runs.values())


def stats(values):
    v = np.array(values)
    return v.mean(), v.min(), v.max(), (v.std(ddof=1) if len(v) > 1 else 0.0)


def table(dir_, stems, seeds):
    print(
        "| month (rows) | model | ours: mean (min–max) | torch: mean (min–max), std "
        "| ours − torch mean | within band |"
    )
    print("|---|---|---|---|---|---|")
    for stem in stems:
        header, _ = load(dir_, stem)
        ours = read_json(os.path.join(dir_, stem + ".ours.json"), {"runs": []})["runs"]
        torch_runs = torch_cache(dir_, stem)
        for cell in ("gru", "lstm"):
            o = [r["ratio"] for r in ours if r["model"] == cell and r["seed"] in seeds]
            t = [r["ratio"] for r in torch_runs if r["model"] == cell and r["seed"] in seeds]
            if not o or not t:
                print(f"| {stem} | {cell} | {len(o)} seeds | {len(t)} seeds | | |")
                continue
            om, omin, omax, _ = stats(o)
            tm, tmin, tmax, tsd = stats(t)
            inside = tmin - SLACK <= om <= tmax + SLACK
            print(
                f"| {stem} ({header['klines']}) | {cell} | {om:.4f} ({omin:.4f}–{omax:.4f}) "
                f"| {tm:.4f} ({tmin:.4f}–{tmax:.4f}), {tsd:.4f} | {om - tm:+.4f} "
                f"| {'yes' if inside else 'NO'} ({len(o)}/{len(t)} seeds) |"
            )
        naive_o = {r["naive_rmse"] for r in ours}
        naive_t = {r["naive_rmse"] for r in torch_runs}
        if naive_o and naive_t:
            gap = max(abs(a - b) / b for a in naive_o for b in naive_t)
            if gap > 1e-9:
                print(f"WARNING {stem}: naive RMSE differs between the halves ({gap:.2e})")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--only-seeds", help="comma-separated seeds to train (default 1..=SEEDS)")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    stems = sorted(
        os.path.basename(p)[: -len(".json")]
        for p in glob.glob(os.path.join(args.dir, "*.json"))
        if ".ours." not in p and ".torch" not in p
    )
    seeds = list(range(1, args.seeds + 1))
    run_seeds = seeds
    tag = ""
    if args.only_seeds:
        run_seeds = [int(s) for s in args.only_seeds.split(",")]
        tag = "-" + args.only_seeds
    if not args.table_only:
        data = {stem: load(args.dir, stem)[1] for stem in stems}
        # Seeds outermost: with less time, the first seeds of every month are done first.
        for seed in run_seeds:
            for stem in stems:
                path = os.path.join(args.dir, f"{stem}.torch{tag}.json")
                cached = read_json(path, {"file": stem, "runs": []})
                for cell in ("gru", "lstm"):
                    done = torch_cache(args.dir, stem)
                    if any(r["model"] == cell and r["seed"] == seed for r in done):
                        continue
                    clock = time.perf_counter()
                    run = fit_and_score(cell, seed, data[stem])
                    run["fit_seconds"] = time.perf_counter() - clock
                    print(
                        f"{stem} seed {seed} torch {cell}: RMSE/naive {run['ratio']:.6f} "
                        f"(epochs {run['epochs_run']}, best {run['best_epoch']}; "
                        f"{run['fit_seconds']:.0f} s)",
                        flush=True,
                    )
                    cached["runs"].append(run)
                    write_json(path, cached)
    table(args.dir, stems, seeds)


if __name__ == "__main__":
    main()
