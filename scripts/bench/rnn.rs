//! Benchmark of the hand-written GRU and LSTM (`src/models/rnn/`). Rust half of
//! `scripts/bench_vs_torch.py` (same sizes, one thread each). Run with
//! `cargo bench --bench rnn -- [--hidden H,H,...] [--train ROWS] [--data CSV] [--cells gru,lstm]`.
//!
//! Prints, per cell and hidden size (default 32; D = 14, T = 60, batch 64):
//! - forward and forward+backward time per batch (median of 20, one thread);
//! - online update: 15 new sequences, 3 Adam steps (default threads);
//! - forecast per kline through [`Forecaster`] (mean of 2000);
//! - with `--train ROWS`: a full `fit` with the default params on the first ROWS feature rows
//!   (synthetic random-walk klines with a 10 % holdout after them, or `--data CSV` with the
//!   rest of the file as holdout), its epochs, time per epoch, and the holdout RMSE against the
//!   naive forecast.
//!
//! It asserts nothing and is never run by `cargo test`.

use std::time::Instant;

use nalgebra::{DMatrix, DVector};

use klinecast::features::{FeatureSpec, Scaler};
use klinecast::kline::{KlineValues, Series};
use klinecast::models::rnn::{gather_sequences, Cell, Forecaster, Layout, Net, RnnParams};
use klinecast::models::Regressor;
use klinecast::rng::Rng;

const D: usize = 14;
const T: usize = 60;
const B: usize = 64;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn synthetic(n: usize, seed: u64) -> Series {
    let mut rng = Rng::new(seed);
    let mut series = Series::with_capacity(n);
    let mut close = 30_000.0;
    for i in 0..n {
        let open = close;
        close *= (0.002 * (rng.next_f64() - 0.5)).exp();
        let volume = (rng.next_f64() * 200.0).round() / 10.0;
        series.push(&KlineValues {
            open_time: 1_600_000_000_000 + i as i64 * 60_000,
            open,
            high: open.max(close) * (1.0 + 0.0005 * rng.next_f64()),
            low: open.min(close) * (1.0 - 0.0005 * rng.next_f64()),
            close,
            volume,
            close_time: 1_600_000_000_000 + i as i64 * 60_000 + 59_999,
            quote_volume: volume * close,
            trades: (rng.next_f64() * 300.0).floor(),
            taker_buy_base: volume * rng.next_f64(),
            taker_buy_quote: 0.0,
        });
    }
    series
}

fn scaled_features(series: &Series) -> (DMatrix<f64>, DVector<f64>) {
    let data = FeatureSpec::default().dataset(series, 0..series.len());
    let mut x = data.x;
    Scaler::fit(&x).transform_in_place(&mut x);
    (x, data.y)
}

fn per_batch(cell: Cell, hidden: usize) {
    let mut rng = Rng::new(1);
    let layout = Layout {
        cell,
        inputs: D,
        hidden,
    };
    let net = Net::new(layout, &mut rng);
    let x = DMatrix::from_fn(B + T, D, |_, _| rng.next_f64() * 2.0 - 1.0);
    let ends: Vec<usize> = (T - 1..T - 1 + B).collect();
    let batch = gather_sequences(&x, &ends, T);
    let y: Vec<f64> = (0..B).map(|_| rng.next_f64() - 0.5).collect();
    let mut fwd = Vec::new();
    let mut both = Vec::new();
    for _ in 0..20 {
        let clock = Instant::now();
        std::hint::black_box(net.forward(&batch));
        fwd.push(clock.elapsed().as_secs_f64());
        let clock = Instant::now();
        std::hint::black_box(net.loss_grad(&batch, &y, 1));
        both.push(clock.elapsed().as_secs_f64());
    }
    println!(
        "{} H={hidden}: {} params ({:.0} KiB with Adam state); per batch (D={D}, T={T}, B={B}, 1 thread): forward {:.2} ms, forward+backward {:.2} ms",
        cell.name(),
        layout.len(),
        (layout.len() * 3 * 8) as f64 / 1024.0,
        median(fwd) * 1e3,
        median(both) * 1e3
    );
}

fn online(cell: Cell, hidden: usize, x: &DMatrix<f64>, y: &DVector<f64>) {
    let params = RnnParams {
        cell,
        hidden,
        max_epochs: 1,
        ..RnnParams::gru()
    };
    let rows = 3000.min(x.nrows());
    let xs = x.rows(0, rows).into_owned();
    let ys = y.rows(0, rows).into_owned();
    let Ok(mut model) = params.fit(&xs, &ys) else {
        println!("fit for the online benchmark failed");
        return;
    };
    // 15 new targets: their sequences need the 59 rows before them.
    let window = T - 1 + 15;
    let mut times = Vec::new();
    for k in 0..10 {
        let start = rows - window - k * 15;
        let xn = xs.rows(start, window).into_owned();
        let yn = ys.rows(start, window).into_owned();
        let clock = Instant::now();
        let _ = std::hint::black_box(model.update(&xn, &yn, 3));
        times.push(clock.elapsed().as_secs_f64());
    }
    let mut forecaster = Forecaster::new(model.seq_len);
    let n = 2000.min(rows);
    let clock = Instant::now();
    for i in 0..n {
        let row: Vec<f64> = (0..D).map(|j| xs[(i, j)]).collect();
        std::hint::black_box(forecaster.push(&model, &row));
    }
    let per_kline = clock.elapsed().as_secs_f64() / n as f64;
    println!(
        "{} H={hidden}: online update (15 sequences, 3 steps, {} threads) {:.1} ms median; forecast per kline {:.3} ms",
        cell.name(),
        params.threads,
        median(times) * 1e3,
        per_kline * 1e3
    );
}

/// Fits on the first `rows` rows and scores the rest (RMSE of the log return, and its ratio to
/// the naive forecast p = 0).
fn train(cell: Cell, hidden: usize, rows: usize, x: &DMatrix<f64>, y: &DVector<f64>) {
    let params = RnnParams {
        cell,
        hidden,
        ..RnnParams::gru()
    };
    let xs = x.rows(0, rows).into_owned();
    let ys = y.rows(0, rows).into_owned();
    let clock = Instant::now();
    match params.fit(&xs, &ys) {
        Ok(model) => {
            let secs = clock.elapsed().as_secs_f64();
            let held = x.nrows() - rows;
            if held > 0 {
                let from = rows + 1 - T;
                let xh = x.rows(from, x.nrows() - from).into_owned();
                let pred = model.predict(&xh);
                let (mut se, mut naive) = (0.0, 0.0);
                for i in rows..x.nrows() {
                    se += (pred[i - from] - y[i]).powi(2);
                    naive += y[i] * y[i];
                }
                println!(
                    "{} H={hidden}: holdout {held} rows: RMSE {:.3e}, naive {:.3e}, ratio {:.4}",
                    cell.name(),
                    (se / held as f64).sqrt(),
                    (naive / held as f64).sqrt(),
                    (se / naive).sqrt()
                );
            }
            println!(
                "{} H={hidden}: fit on {} rows: {} epochs run (best {}), {:.1} s total, {:.1} s per epoch, validation MSE {:.4} (scaled target)",
                cell.name(),
                rows,
                model.epochs_run,
                model.best_epoch,
                secs,
                secs / model.epochs_run.max(1) as f64,
                model.val_loss.unwrap_or(f64::NAN)
            );
        }
        Err(e) => println!("fit failed: {e}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let hiddens: Vec<usize> = value("--hidden")
        .map(|v| v.split(',').filter_map(|h| h.parse().ok()).collect())
        .unwrap_or_else(|| vec![32]);
    let cells: Vec<Cell> = value("--cells")
        .unwrap_or_else(|| "gru,lstm".to_string())
        .split(',')
        .filter_map(|c| match c {
            "gru" => Some(Cell::Gru),
            "lstm" => Some(Cell::Lstm),
            _ => None,
        })
        .collect();
    let train_rows: Option<usize> = value("--train").and_then(|v| v.parse().ok());
    let series = match value("--data") {
        Some(path) => match klinecast::store::load_series(std::path::Path::new(&path)) {
            Ok(s) => s,
            Err(e) => {
                println!("cannot load {path}: {e}");
                return;
            }
        },
        // Training rows plus a 10 % holdout after them, plus the feature warm-up.
        None => synthetic(train_rows.map_or(5000, |r| r + r / 10) + 61, 42),
    };
    let (x, y) = scaled_features(&series);
    for &cell in &cells {
        for &hidden in &hiddens {
            per_batch(cell, hidden);
            online(cell, hidden, &x, &y);
            if let Some(rows) = train_rows {
                train(cell, hidden, rows.min(x.nrows()), &x, &y);
            }
        }
    }
}
