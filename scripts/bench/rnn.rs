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
//! With `--band OUT_DIR --files A.csv,B.csv [--seeds S] [--max-rows N] [--threads N]` it instead
//! prepares the comparison against PyTorch over seeds (`scripts/rnn_vs_torch_band.py`): for each
//! real kline file (its last N klines with `--max-rows`, as `train --max-rows N` keeps them) it
//! writes exactly the scaled training rows, targets, holdout rows (with the 59 context rows
//! before them) and closes that `klinecast train` (default holdout 0.2, horizon 1) uses, as
//! `OUT_DIR/STEM.bin` (little-endian f64 arrays) and `OUT_DIR/STEM.json` (their names, shapes and
//! offsets), then runs `train_series` with the GRU and LSTM for seeds 1..=S (default 5) and writes
//! each seed's holdout RMSE ÷ naive (price RMSE, as `train` prints it) to `OUT_DIR/STEM.ours.json`.
//!
//! It asserts nothing and is never run by `cargo test`.

use std::path::Path;
use std::time::Instant;

use nalgebra::{DMatrix, DVector};
use serde_json::json;

use klinecast::features::{FeatureSpec, Scaler};
use klinecast::kline::Series;
use klinecast::models::rnn::MAX_SEQ_LEN;
use klinecast::models::rnn::{gather_sequences, Cell, Forecaster, Layout, Net, RnnParams};
use klinecast::models::ModelKind;
use klinecast::models::Regressor;
use klinecast::rng::Rng;
use klinecast::train::{split_rows, train_series, TrainOptions};

mod common;
use common::{synthetic, Args};

const D: usize = 14;
const T: usize = 60;
const B: usize = 64;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
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

/// `train`'s default holdout share and the horizon of the comparison.
const HOLDOUT: f64 = 0.2;
const HORIZON: usize = 1;

/// Appends `m` row by row (row-major, as numpy reads it) and records it in `arrays`.
fn push_array(
    name: &str,
    rows: usize,
    cols: usize,
    at: impl Fn(usize, usize) -> f64,
    bin: &mut Vec<u8>,
    arrays: &mut Vec<serde_json::Value>,
) {
    arrays.push(json!({"name": name, "shape": [rows, cols], "offset": bin.len() / 8}));
    for i in 0..rows {
        for j in 0..cols {
            bin.extend_from_slice(&at(i, j).to_le_bytes());
        }
    }
}

/// Writes the sequences `train` builds from `series` to `dir/stem.{bin,json}` (see the module
/// doc). Returns the number of training and holdout rows.
fn export(series: &Series, dir: &Path, stem: &str) -> Result<(usize, usize), String> {
    let spec = FeatureSpec {
        horizon: HORIZON,
        ..FeatureSpec::default()
    };
    let n = series.len();
    let split = split_rows(&spec, n, HOLDOUT, stem).map_err(|e| e.to_string())?;
    let mut train = spec.dataset(series, split.train.clone());
    let mut hold = spec.dataset(series, split.holdout.clone());
    // As train_series: context rows just before the holdout (a recurrent model reads the last
    // seq_len − 1 of them; 59 with the defaults).
    let first_row = spec.row_range(n, 0..n).start;
    let context_rows = split
        .holdout
        .start
        .saturating_sub(MAX_SEQ_LEN - 1)
        .max(first_row)..split.holdout.start;
    let mut context = spec.dataset(series, context_rows).x;
    let scaler = Scaler::fit(&train.x);
    scaler.transform_in_place(&mut train.x);
    scaler.transform_in_place(&mut hold.x);
    scaler.transform_in_place(&mut context);
    let keep = (RnnParams::gru().seq_len - 1).min(context.nrows());
    let skip = context.nrows() - keep;
    let d = train.x.ncols();
    let (nt, nh) = (train.x.nrows(), hold.x.nrows());
    let mut bin = Vec::new();
    let mut arrays = Vec::new();
    push_array(
        "train_x",
        nt,
        d,
        |i, j| train.x[(i, j)],
        &mut bin,
        &mut arrays,
    );
    push_array("train_y", nt, 1, |i, _| train.y[i], &mut bin, &mut arrays);
    let joined = |i: usize, j: usize| {
        if i < keep {
            context[(skip + i, j)]
        } else {
            hold.x[(i - keep, j)]
        }
    };
    push_array("hold_x", keep + nh, d, joined, &mut bin, &mut arrays);
    push_array("hold_y", nh, 1, |i, _| hold.y[i], &mut bin, &mut arrays);
    let t = &hold.t;
    let close = |i: usize, offset: usize| series.close[t[i] + offset];
    push_array(
        "last_close",
        nh,
        1,
        |i, _| close(i, 0),
        &mut bin,
        &mut arrays,
    );
    push_array(
        "actual_close",
        nh,
        1,
        |i, _| close(i, HORIZON),
        &mut bin,
        &mut arrays,
    );
    let header = json!({
        "file": stem,
        "klines": n,
        "first_open_time": series.open_time.first(),
        "last_open_time": series.open_time.last(),
        "holdout": HOLDOUT,
        "horizon": HORIZON,
        "context_rows": keep,
        "dtype": "<f8",
        "arrays": arrays,
    });
    let write = |name: String, bytes: &[u8]| {
        klinecast::fsutil::write_atomic(&dir.join(&name), bytes)
            .map_err(|e| format!("cannot write {name}: {e}"))
    };
    write(format!("{stem}.bin"), &bin)?;
    write(format!("{stem}.json"), header.to_string().as_bytes())?;
    Ok((nt, nh))
}

/// `--band` mode: export each file, then fit ours for seeds 1..=`seeds` through `train_series`.
fn band(dir: &Path, files: &[String], seeds: u64, max_rows: Option<usize>, threads: usize) {
    if let Err(e) = std::fs::create_dir_all(dir) {
        println!("cannot create {}: {e}", dir.display());
        return;
    }
    for file in files {
        let path = Path::new(file);
        let stem = path
            .file_stem()
            .map_or_else(|| file.clone(), |s| s.to_string_lossy().into_owned());
        let mut series = match klinecast::store::load_series(path) {
            Ok(s) => s,
            Err(e) => {
                println!("cannot load {file}: {e}");
                continue;
            }
        };
        // The last `max_rows` klines, as `train --max-rows` keeps them.
        if let Some(rows) = max_rows.filter(|&r| r < series.len()) {
            series = series.slice(series.len() - rows..series.len());
        }
        series.quote_volume = Vec::new();
        series.taker_buy_quote = Vec::new();
        match export(&series, dir, &stem) {
            Ok((nt, nh)) => println!(
                "{stem}: {} klines, {nt} training rows, {nh} holdout rows exported",
                series.len()
            ),
            Err(e) => {
                println!("{stem}: {e}");
                continue;
            }
        }
        let mut runs = Vec::new();
        for seed in 1..=seeds {
            let opts = TrainOptions {
                holdout: HOLDOUT,
                horizon: HORIZON,
                svr_rows: 3000,
                seed,
                threads,
                kinds: vec![ModelKind::Gru, ModelKind::Lstm],
                data_file: stem.clone(),
            };
            let clock = Instant::now();
            let outcome = match train_series(series.clone(), &opts, &mut |_| {}) {
                Ok(o) => o,
                Err(e) => {
                    println!("{stem} seed {seed}: {e}");
                    continue;
                }
            };
            let secs = clock.elapsed().as_secs_f64();
            let scores = &outcome.report.models;
            let naive = scores
                .iter()
                .find(|m| m.model == "naive")
                .map_or(f64::NAN, |m| m.accum.rmse());
            for (score, trained) in scores.iter().zip(&outcome.models) {
                let rnn = trained.model.as_rnn();
                let ratio = score.accum.rmse() / naive;
                println!(
                    "{stem} seed {seed} {}: RMSE/naive {ratio:.6} (epochs {}, best {}; {secs:.0} s for both)",
                    score.model,
                    rnn.map_or(0, |r| r.epochs_run),
                    rnn.map_or(0, |r| r.best_epoch),
                );
                runs.push(json!({
                    "model": score.model,
                    "seed": seed,
                    "rmse": score.accum.rmse(),
                    "naive_rmse": naive,
                    "ratio": ratio,
                    "epochs_run": rnn.map(|r| r.epochs_run),
                    "best_epoch": rnn.map(|r| r.best_epoch),
                    "fit_seconds": score.fit_seconds,
                }));
            }
        }
        let body = json!({"file": stem, "runs": runs}).to_string();
        let name = format!("{stem}.ours.json");
        if let Err(e) = klinecast::fsutil::write_atomic(&dir.join(&name), body.as_bytes()) {
            println!("cannot write {name}: {e}");
        }
    }
}

fn main() {
    let args = Args::from_env();
    let value = |flag: &str| args.value(flag);
    if let Some(dir) = value("--band") {
        let files: Vec<String> = value("--files")
            .map(|v| v.split(',').map(str::to_string).collect())
            .unwrap_or_default();
        let seeds = value("--seeds").and_then(|v| v.parse().ok()).unwrap_or(5);
        let max_rows = value("--max-rows").and_then(|v| v.parse().ok());
        let threads = value("--threads").and_then(|v| v.parse().ok()).unwrap_or(1);
        band(Path::new(&dir), &files, seeds, max_rows, threads);
        return;
    }
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
