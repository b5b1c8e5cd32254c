//! Rust half of the side-by-side benchmark against XGBoost (`scripts/bench_vs_xgboost.py`
//! drives it): for each case directory `DIR/CASE/` holding `train.csv` and `test.csv` (header,
//! then feature columns and the target in the last column), fits the gradient-boosted trees
//! with their defaults (hist, 100 trees, depth 6) and `--threads T`, predicts the test rows,
//! and prints one JSON object: per case the best-of-`--repeats` fit and predict seconds, test
//! RMSE, node count and model bytes, and the best on-CPU seconds of the calling thread
//! (`fit_cpu_s`, `predict_cpu_s`; Linux, NaN elsewhere: with `--threads 1` the work done even
//! when other processes share the cores). Asserts nothing; never run by `cargo test`.
//!
//! Usage: `cargo bench --bench gbdt -- DIR CASE... [--threads T] [--repeats R]`

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use klinecast::models::gbdt::GbdtParams;
use klinecast::models::Regressor;
use serde_json::{json, Map, Value};

/// The script that writes the CSV files this bench reads.
const SCRIPT: &str = "scripts/bench_vs_xgboost.py";

#[path = "xy_csv.rs"]
mod xy_csv;
use xy_csv::read_csv;

fn option(args: &[String], name: &str, default: usize) -> Result<usize, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(p) => match args.get(p + 1).map(|v| v.parse::<usize>()) {
            Some(Ok(n)) if n > 0 => Ok(n),
            _ => Err(format!("{name} needs a positive integer")),
        },
    }
}

/// Seconds the calling thread has spent on a CPU (Linux `/proc/thread-self/schedstat`), or
/// NaN elsewhere: with `--threads 1` this is the work done, whatever else shares the machine.
fn thread_cpu_s() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns * 1e-9)
}

fn run(dir: &Path, threads: usize, repeats: usize) -> Result<Value, String> {
    let (x, y) = read_csv(&dir.join("train.csv"), SCRIPT)?;
    let (xt, yt) = read_csv(&dir.join("test.csv"), SCRIPT)?;
    let params = GbdtParams {
        threads,
        ..GbdtParams::default()
    };
    let (mut fit_s, mut predict_s) = (f64::INFINITY, f64::INFINITY);
    let (mut fit_cpu_s, mut predict_cpu_s) = (f64::INFINITY, f64::INFINITY);
    let mut out = None;
    for _ in 0..repeats {
        let (t0, c0) = (Instant::now(), thread_cpu_s());
        let model = params.fit(&x, &y).map_err(|e| e.to_string())?;
        fit_s = fit_s.min(t0.elapsed().as_secs_f64());
        fit_cpu_s = fit_cpu_s.min(thread_cpu_s() - c0);
        let (t1, c1) = (Instant::now(), thread_cpu_s());
        let pred = model.predict(&xt);
        predict_s = predict_s.min(t1.elapsed().as_secs_f64());
        predict_cpu_s = predict_cpu_s.min(thread_cpu_s() - c1);
        out = Some((model, pred));
    }
    let (model, pred) = out.ok_or("no repeats")?;
    let rmse = ((&pred - &yt).norm_squared() / yt.len().max(1) as f64).sqrt();
    Ok(json!({
        "fit_s": fit_s,
        "predict_s": predict_s,
        "fit_cpu_s": fit_cpu_s,
        "predict_cpu_s": predict_cpu_s,
        "rmse": rmse,
        "train_rows": x.nrows(),
        "features": x.ncols(),
        "trees": model.n_trees(),
        "nodes": model.node_count(),
        "model_bytes": model.tree_bytes(),
    }))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let (threads, repeats) = match (option(&args, "--threads", 2), option(&args, "--repeats", 3)) {
        (Ok(t), Ok(r)) => (t, r),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut positional = Vec::new();
    let mut skip = false;
    for a in &args {
        if skip {
            skip = false;
        } else if a == "--threads" || a == "--repeats" {
            skip = true;
        } else {
            positional.push(a.as_str());
        }
    }
    let Some((dir, cases)) = positional.split_first() else {
        eprintln!("usage: cargo bench --bench gbdt -- DIR CASE... [--threads T] [--repeats R]");
        return ExitCode::from(2);
    };
    let mut out = Map::new();
    for case in cases {
        let v = run(&Path::new(dir).join(case), threads, repeats)
            .unwrap_or_else(|e| json!({ "error": e }));
        eprintln!("klinecast gbdt {case}: {v}");
        out.insert((*case).to_string(), v);
    }
    println!("{}", Value::Object(out));
    ExitCode::SUCCESS
}
