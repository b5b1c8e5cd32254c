//! Accuracy against size of the models' memory bounds, on the real months in `../shared/data`
//! (or the directory in `KLINECAST_BOUNDS_DATA`): for each 1m month, `train`'s split (20 %
//! holdout, horizon 1), each bounded model's holdout RMSE ÷ the naive forecast's, and the
//! model's serialized size on the largest month. Prints one table per model (the README's
//! curve). Run: `cargo bench --bench bounds`.

use std::path::{Path, PathBuf};

use nalgebra::{DMatrix, DVector};

use klinecast::models::cart::CartParams;
use klinecast::models::fit::{forest_params, FitConfig};
use klinecast::models::forest::ForestParams;
use klinecast::models::knn::KnnParams;
use klinecast::models::{AnyModel, ModelKind};
use klinecast::store;
use klinecast::train::{train_series_with, TrainOptions};

type Make = Box<dyn Fn(&DMatrix<f64>, &DVector<f64>) -> Result<AnyModel, String>>;

fn main() {
    let dir = std::env::var_os("KLINECAST_BOUNDS_DATA").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"),
        PathBuf::from,
    );
    let mut months: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.contains("-1m-") && n.ends_with(".csv"))
            })
            .collect(),
        Err(e) => return eprintln!("cannot list {}: {e}", dir.display()),
    };
    months.sort();
    let config = FitConfig::new(42, 3000, 2);
    let knn = |max_rows: Option<usize>| -> Make {
        Box::new(move |x, y| {
            KnnParams { k: 5, max_rows }
                .fit(x, y)
                .map(AnyModel::Knn)
                .map_err(|e| e.to_string())
        })
    };
    let cart = |max_leaves: Option<usize>| -> Make {
        Box::new(move |x, y| {
            CartParams {
                seed: 42,
                max_leaves,
                ..CartParams::default()
            }
            .fit(x, y)
            .map(AnyModel::Cart)
            .map_err(|e| e.to_string())
        })
    };
    let forest_config = config.clone();
    let forest = move |max_leaves: Option<usize>| -> Make {
        let config = forest_config.clone();
        Box::new(move |x, y| {
            ForestParams {
                max_leaves,
                ..forest_params(x.nrows(), &config)
            }
            .fit(x, y)
            .map(AnyModel::Forest)
            .map_err(|e| e.to_string())
        })
    };
    let label = |name: &str, v: Option<usize>| match v {
        Some(v) => format!("{name} {v}"),
        None => format!("{name} unbounded"),
    };
    let mut settings: Vec<(String, ModelKind, Make)> = Vec::new();
    for v in [Some(2_000), Some(5_000), Some(10_000), Some(20_000), None] {
        settings.push((label("knn max_rows", v), ModelKind::Knn, knn(v)));
    }
    for v in [Some(256), Some(1_024), Some(4_096), Some(16_384), None] {
        settings.push((label("cart max_leaves", v), ModelKind::Cart, cart(v)));
    }
    let forest_leaves: Vec<Option<usize>> = std::env::var("KLINECAST_BOUNDS_FOREST")
        .ok()
        .map(|s| s.split(',').map(|v| v.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![Some(256), Some(1_024), Some(4_096), None]);
    for v in forest_leaves {
        settings.push((label("forest max_leaves", v), ModelKind::Forest, forest(v)));
    }

    let mut names = Vec::new();
    let mut ratios = vec![Vec::new(); settings.len()];
    let mut sizes = vec![0usize; settings.len()];
    let mut largest = 0;
    for month in &months {
        let series = match store::load_series(month) {
            Ok(s) => s,
            Err(e) => return eprintln!("cannot load {}: {e}", month.display()),
        };
        let name = month
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().replace(".csv", ""));
        eprintln!("{name}: {} klines", series.len());
        let is_largest = series.len() > largest;
        largest = largest.max(series.len());
        names.push(name);
        for (i, (_, kind, make)) in settings.iter().enumerate() {
            let opts = TrainOptions {
                holdout: 0.2,
                horizon: 1,
                svr_rows: 3000,
                seed: 42,
                threads: 2,
                kinds: vec![*kind],
                data_file: String::new(),
            };
            let mut size = 0;
            let mut fit = |_: ModelKind, x: &DMatrix<f64>, y: &DVector<f64>| {
                let model = make(x, y).map_err(|detail| klinecast::models::FitError::Shape {
                    model: "bench",
                    detail,
                });
                if let Ok(m) = &model {
                    size = postcard::to_allocvec(m).map_or(0, |b| b.len());
                }
                model
            };
            let outcome = match train_series_with(series.clone(), &opts, &mut fit, &mut |_| {}) {
                Ok(o) => o,
                Err(e) => return eprintln!("{e}"),
            };
            let naive = outcome.report.models[1].accum.rmse();
            let ratio = outcome.report.models[0].accum.rmse() / naive;
            ratios[i].push(ratio);
            if is_largest {
                sizes[i] = size;
            }
        }
    }
    println!("RMSE ÷ naive on the 20 % holdout of each real 1m month (lower is better), and the");
    println!("serialized size on the largest month ({largest} klines):");
    print!("{:<26}", "setting");
    for n in &names {
        print!(
            " {:>10}",
            n.split('-')
                .take(3)
                .collect::<Vec<_>>()
                .join("-")
                .chars()
                .take(10)
                .collect::<String>()
        );
    }
    println!(" {:>8} {:>10}", "mean", "bytes");
    for (i, (label, _, _)) in settings.iter().enumerate() {
        print!("{label:<26}");
        for r in &ratios[i] {
            print!(" {r:>10.4}");
        }
        let mean = ratios[i].iter().sum::<f64>() / ratios[i].len().max(1) as f64;
        println!(" {mean:>8.4} {:>10}", sizes[i]);
    }
}
