//! Benchmark for the hand-written regressors: fit and predict times of linear, KNN, CART and a
//! random forest on synthetic n×12 data (seeded). Run with
//! `cargo bench --bench models -- [ROWS ...] [--trees N]` (default 200000 rows, 10 trees).
//! Prints one line per model and size; it asserts nothing and is never run by `cargo test`.

use std::time::Instant;

use nalgebra::{DMatrix, DVector};

use klinecast::models::cart::CartParams;
use klinecast::models::forest::ForestParams;
use klinecast::models::knn::KnnParams;
use klinecast::models::linear::LinearParams;
use klinecast::models::Regressor;
use klinecast::rng::Rng;

const FEATURES: usize = 12;

fn synthetic(n: usize, seed: u64) -> (DMatrix<f64>, DVector<f64>) {
    let mut rng = Rng::new(seed);
    let x = DMatrix::from_fn(n, FEATURES, |_, _| rng.next_f64() * 2.0 - 1.0);
    let y = DVector::from_fn(n, |i, _| {
        let linear: f64 = (0..FEATURES)
            .map(|j| x[(i, j)] * (j as f64 - 5.5) / 10.0)
            .sum();
        linear + (3.0 * x[(i, 0)]).sin() * x[(i, 1)] + 0.2 * (rng.next_f64() - 0.5)
    });
    (x, y)
}

fn peak_rss_mb() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        })
        .unwrap_or_else(|| "?".to_string())
}

fn time<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed().as_secs_f64())
}

fn rmse(model: &dyn Regressor, x: &DMatrix<f64>, y: &DVector<f64>) -> (f64, f64) {
    let (pred, secs) = time(|| model.predict(x));
    (((pred - y).norm_squared() / y.len() as f64).sqrt(), secs)
}

fn main() {
    let mut sizes = Vec::new();
    let mut trees = 10;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--trees" {
            trees = args.next().and_then(|v| v.parse().ok()).unwrap_or(trees);
        } else if let Ok(n) = arg.parse::<usize>() {
            sizes.push(n);
        }
    }
    if sizes.is_empty() {
        sizes.push(200_000);
    }
    let (xt, yt) = synthetic(20_000, 99);
    for n in sizes {
        let (x, y) = synthetic(n, 1);
        println!("rows={n} features={FEATURES} (predict on 20000 rows)");

        let (model, fit_s) = time(|| LinearParams::default().fit(&x, &y));
        let model = model.expect("linear fit");
        let (err, pred_s) = rmse(&model, &xt, &yt);
        println!("  linear  fit {fit_s:8.3}s  predict {pred_s:7.3}s  rmse {err:.4}");

        let (model, fit_s) = time(|| KnnParams::default().fit(&x, &y));
        let model = model.expect("knn fit");
        let (err, pred_s) = rmse(&model, &xt, &yt);
        println!("  knn     fit {fit_s:8.3}s  predict {pred_s:7.3}s  rmse {err:.4}");

        let (model, fit_s) = time(|| CartParams::default().fit(&x, &y));
        let model = model.expect("cart fit");
        let (err, pred_s) = rmse(&model, &xt, &yt);
        println!(
            "  cart    fit {fit_s:8.3}s  predict {pred_s:7.3}s  rmse {err:.4}  nodes {} depth {}",
            model.node_count(),
            model.depth()
        );
        drop(model);

        let params = ForestParams {
            n_trees: trees,
            ..ForestParams::default()
        };
        let (model, fit_s) = time(|| params.fit(&x, &y));
        let model = model.expect("forest fit");
        let (err, pred_s) = rmse(&model, &xt, &yt);
        println!(
            "  forest  fit {fit_s:8.3}s  predict {pred_s:7.3}s  rmse {err:.4}  trees {trees} nodes {} (threads 2)",
            model.node_count()
        );
        drop(model);
        let params = ForestParams {
            n_trees: trees,
            min_samples_leaf: 5,
            max_samples: Some(n.min(200_000)),
            ..ForestParams::default()
        };
        let (model, fit_s) = time(|| params.fit(&x, &y));
        let model = model.expect("forest fit");
        let (err, pred_s) = rmse(&model, &xt, &yt);
        println!(
            "  forest  fit {fit_s:8.3}s  predict {pred_s:7.3}s  rmse {err:.4}  trees {trees} nodes {} (max_samples {}, min_samples_leaf 5)",
            model.node_count(),
            n.min(200_000)
        );
    }
    println!("peak rss {}", peak_rss_mb());
}
