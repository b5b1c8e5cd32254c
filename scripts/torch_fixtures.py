#!/usr/bin/python3
"""Writes tests/fixtures/rnn.json: golden values from PyTorch for tests/rnn_parity.rs.

Run with Debian's CPU-only torch (no pip):
    apt-get install -y python3-torch python3-numpy
    /usr/bin/python3 scripts/torch_fixtures.py

For GRU and LSTM (D=4, H=5, T=7, batch 3, float64, torch.manual_seed(0) then default init):
- state_dict (rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0,
  head.weight, head.bias), inputs [B][T][D], targets [B];
- forward: head outputs [B], last hidden h_n [B][H] (and c_n for the LSTM);
- gradients of MSELoss(head(h_T), y) w.r.t. every parameter;
- Adam (lr 0.01, betas (0.9, 0.999), eps 1e-8) for 20 steps from the same weights on a
  fixed data set of 4 batches of 3 sequences, visited in order 0,1,2,3,0,1,...: losses per
  step and the parameters after step 20, without clipping and with clip_grad_norm_(0.05).
Floats are written as repr() strings so the Rust side parses them bit for bit.
"""

import json
import os

import torch
from torch import nn

torch.set_num_threads(1)
D, H, T, B = 4, 5, 7, 3
N_BATCHES, STEPS, LR, CLIP = 4, 20, 0.01, 0.05


class Model(nn.Module):
    def __init__(self, cell):
        super().__init__()
        rnn_cls = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn = rnn_cls(D, H, num_layers=1, batch_first=True)
        self.head = nn.Linear(H, 1)

    def forward(self, x):
        out, state = self.rnn(x)
        return self.head(out[:, -1, :]).squeeze(1), state


def s(t):
    return [repr(float(v)) for v in t.detach().reshape(-1).tolist()]


def nested(t):
    if t.dim() == 0:
        return repr(float(t))
    return [nested(u) for u in t]


def case(cell, seed):
    torch.manual_seed(seed)
    model = Model(cell).double()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(B, T, D, dtype=torch.float64)
    y = torch.randn(B, dtype=torch.float64)
    data = [(torch.randn(B, T, D, dtype=torch.float64), torch.randn(B, dtype=torch.float64))
            for _ in range(N_BATCHES)]

    out, st = model(x)
    loss = nn.functional.mse_loss(out, y)
    model.zero_grad()
    loss.backward()
    h_n = st[0] if cell == "lstm" else st
    result = {
        "state_dict": {k: s(v) for k, v in state.items()},
        "x": nested(x),
        "y": s(y),
        "output": s(out),
        "h_n": nested(h_n[0]),
        "loss": repr(float(loss)),
        "grad": {name: s(p.grad) for name, p in model.named_parameters()},
        "train_x": [nested(bx) for bx, _ in data],
        "train_y": [s(by) for _, by in data],
        "adam": {},
    }
    if cell == "lstm":
        result["c_n"] = nested(st[1][0])

    for label, clip in (("plain", None), ("clipped", CLIP)):
        model.load_state_dict(state)
        opt = torch.optim.Adam(model.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-8)
        losses, norms = [], []
        for step in range(STEPS):
            bx, by = data[step % N_BATCHES]
            opt.zero_grad()
            out, _ = model(bx)
            loss = nn.functional.mse_loss(out, by)
            loss.backward()
            if clip is not None:
                norms.append(repr(float(nn.utils.clip_grad_norm_(model.parameters(), clip))))
            opt.step()
            losses.append(repr(float(loss)))
        result["adam"][label] = {
            "clip": None if clip is None else repr(clip),
            "losses": losses,
            "norms": norms,
            "params": {k: s(v) for k, v in model.state_dict().items()},
        }
    return result


def main():
    fixtures = {
        "torch": torch.__version__,
        "sizes": {"D": D, "H": H, "T": T, "B": B, "batches": N_BATCHES, "steps": STEPS},
        "lr": repr(LR),
        "gru": case("gru", 0),
        "lstm": case("lstm", 1),
    }
    path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "rnn.json")
    with open(path, "w") as f:
        json.dump(fixtures, f, separators=(",", ":"))
        f.write("\n")
    print(path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
