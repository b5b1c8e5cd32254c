//! Benchmark of `klinecast train` on a synthetic series as long as 3 years of 1m klines
//! (1.5M rows by default): time of the feature pass and of each fit, and the process's peak
//! memory (VmHWM from /proc/self/status, Linux only). The goal is < 2 GB peak.
//!
//! Run: `cargo bench --bench train -- [--rows N] [--kinds linear,svr,knn,cart,forest,gbdt,gru,lstm|none]`
//! (default: all eight, as `train` does; on 1.5M rows the GRU and LSTM dominate the time)
//! (everything is fitted by default). This is a measurement, not a test: it asserts nothing.

use std::time::Instant;

mod common;
use common::{synthetic, Args};

use klinecast::features::FeatureSpec;
use klinecast::models::ModelKind;
use klinecast::train::{train_series, TrainOptions};

fn main() {
    let args = Args::from_env();
    let value = |flag: &str| args.value(flag);
    let rows: usize = value("--rows")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_500_000);
    let kinds: Vec<ModelKind> = match value("--kinds").as_deref() {
        None => ModelKind::ALL.to_vec(),
        Some("none") | Some("") => Vec::new(),
        Some(list) => ModelKind::ALL
            .into_iter()
            .filter(|k| list.split(',').any(|name| name == k.name()))
            .collect(),
    };

    let clock = Instant::now();
    let series = synthetic(rows, 42);
    println!(
        "synthetic series: {rows} rows in {:.2} s, peak {} MB",
        clock.elapsed().as_secs_f64(),
        peak_mb()
    );

    let spec = FeatureSpec::default();
    let clock = Instant::now();
    let dataset = spec.dataset(&series, 0..series.len());
    let secs = clock.elapsed().as_secs_f64();
    println!(
        "feature pass: {} rows × {} features in {secs:.3} s ({:.0} ns/row), peak {} MB",
        dataset.x.nrows(),
        dataset.x.ncols(),
        secs * 1e9 / dataset.x.nrows().max(1) as f64,
        peak_mb()
    );
    drop(dataset);

    let opts = TrainOptions {
        holdout: 0.2,
        horizon: 1,
        svr_rows: 3000,
        seed: 42,
        threads: klinecast::settings::fit_threads(),
        kinds,
        data_file: "SYNTHETIC_1m.csv".to_string(),
    };
    let clock = Instant::now();
    match train_series(series, &opts, &mut |line| {
        println!("{line} (peak {} MB)", peak_mb())
    }) {
        Ok(outcome) => {
            print!("{}", outcome.report.to_table());
            println!(
                "train total {:.1} s, peak memory (VmHWM) {} MB",
                clock.elapsed().as_secs_f64(),
                peak_mb()
            );
        }
        Err(e) => println!("train failed: {e}"),
    }
}

/// Peak resident set size in MB (VmHWM), or 0 where /proc is not available.
fn peak_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}
