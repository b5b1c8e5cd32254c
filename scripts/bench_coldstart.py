#!/usr/bin/env python3
"""Cold-start benchmark for cron: time from exec of `klinecast stream` to its first network
request, with trained models and a saved ensemble present: stream opens the kline store, then its
ensembling thread loads and checks the models while its streaming thread makes the first request
(the start-up check of the newest stored klines against REST).

Set-up (once, in a temp dir): `klinecast demo --work-dir W --klines 30` leaves W/data (kline
store), W/models/Trained (five trained models) and W/models/Ensembled (a saved ensemble). Then,
RUNS times: a TCP listener on 127.0.0.1 stands in for Binance; `klinecast stream` is started with
both base URLs pointing at it; the time from just before exec to the listener's first accepted
connection is recorded, and the process is killed. Loopback only.

Usage: python3 scripts/bench_coldstart.py [--runs 10] [--bin target/release/klinecast]
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/klinecast"))
    ap.add_argument("--klines", type=int, default=30, help="demo klines streamed in the set-up")
    args = ap.parse_args()
    if not os.path.exists(args.bin):
        sys.exit(f"{args.bin} not found: run `cargo build --release --locked` first")
    work = tempfile.mkdtemp(prefix="klinecast-coldstart-")
    try:
        subprocess.run(
            [args.bin, "demo", "--work-dir", work, "--klines", str(args.klines)],
            cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        store = [f for f in os.listdir(os.path.join(work, "data")) if f.endswith("_1m.csv")]
        symbol = store[0].split("_")[0]
        rows = sum(1 for _ in open(os.path.join(work, "data", store[0]))) - 1
        sizes = {
            d: sum(os.path.getsize(os.path.join(work, "models", d, f))
                   for f in os.listdir(os.path.join(work, "models", d)))
            for d in ("Trained", "Ensembled")
        }
        times = []
        for _ in range(args.runs):
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen(8)
            listener.settimeout(30)
            port = listener.getsockname()[1]
            url = f"127.0.0.1:{port}"
            start = time.monotonic()
            proc = subprocess.Popen(
                [args.bin, "stream", "--symbol", symbol,
                 "--data-dir", os.path.join(work, "data"),
                 "--models-dir", os.path.join(work, "models"),
                 "--log-dir", os.path.join(work, "log"),
                 "--rest-url", "http://" + url, "--ws-url", "ws://" + url],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            try:
                conn, _ = listener.accept()
                times.append(time.monotonic() - start)
                conn.close()
            finally:
                proc.kill()
                proc.wait()
                listener.close()
        ms = sorted(1000 * t for t in times)
        print(f"store: {rows} klines; trained models {sizes['Trained'] / 1e6:.1f} MB; "
              f"saved ensemble {sizes['Ensembled'] / 1e6:.1f} MB")
        print(f"exec -> first request, {len(ms)} runs: median {statistics.median(ms):.1f} ms, "
              f"min {ms[0]:.1f} ms, max {ms[-1]:.1f} ms (goal <= 100 ms)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
