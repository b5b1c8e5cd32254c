#!/usr/bin/python3
"""PyTorch half of the GRU/LSTM benchmark (the Rust half is `cargo bench --bench rnn`).

Times nn.GRU / nn.LSTM (one layer, batch_first) + nn.Linear(H, 1) in float64 on one thread, at
the sizes the Rust bench uses: D = 14, T = 60, batch 64, hidden 32 (or --hidden H,H,...):
forward, and forward + MSE backward, per batch (median of 20 after 3 warm-up runs).
Then run `cargo bench --bench rnn` and compare the lines. Run with Debian's torch:
    /usr/bin/python3 scripts/bench_vs_torch.py [--hidden 16,32,64]
"""

import argparse
import statistics
import time

import torch
from torch import nn

D, T, B = 14, 60, 64


def bench(cell, hidden):
    torch.manual_seed(0)
    rnn = (nn.GRU if cell == "gru" else nn.LSTM)(D, hidden, batch_first=True).double()
    head = nn.Linear(hidden, 1).double()
    x = torch.rand(B, T, D, dtype=torch.float64) * 2 - 1
    y = torch.rand(B, dtype=torch.float64) - 0.5
    params = list(rnn.parameters()) + list(head.parameters())

    def forward():
        out, _ = rnn(x)
        return head(out[:, -1, :]).squeeze(1)

    def both():
        for p in params:
            p.grad = None
        loss = nn.functional.mse_loss(forward(), y)
        loss.backward()

    fwd, full = [], []
    for i in range(23):
        with torch.no_grad():
            start = time.perf_counter()
            forward()
            t_fwd = time.perf_counter() - start
        start = time.perf_counter()
        both()
        t_full = time.perf_counter() - start
        if i >= 3:
            fwd.append(t_fwd)
            full.append(t_full)
    n_params = sum(p.numel() for p in params)
    print(
        f"torch {cell} H={hidden}: {n_params} params; per batch (D={D}, T={T}, B={B}, 1 thread): "
        f"forward {statistics.median(fwd) * 1e3:.2f} ms, "
        f"forward+backward {statistics.median(full) * 1e3:.2f} ms"
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden", default="32")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for cell in ("gru", "lstm"):
        for hidden in (int(h) for h in args.hidden.split(",")):
            bench(cell, hidden)


if __name__ == "__main__":
    main()
