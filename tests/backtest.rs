//! Process-level tests of `klinecast backtest`: a 3000-row slice of the real sample replayed
//! twice with the same seed prints identical JSON, and the ensemble is not worse than the
//! naive forecast beyond 1%; bad input is refused with exit code 1 or 2.

use std::fs;
use std::path::Path;
use std::process::Output;

mod common;

use common::TempDir;
use klinecast::models::ModelKind;

/// Writes the header and the first `rows` rows of the shipped sample to `path`.
fn write_slice(path: &Path, rows: usize) {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/AVAXUSDT_1m.csv");
    let text = fs::read_to_string(&sample).expect("read data/AVAXUSDT_1m.csv");
    let lines: Vec<&str> = text.lines().take(rows + 1).collect();
    assert_eq!(lines.len(), rows + 1, "the sample has at least {rows} rows");
    fs::write(path, lines.join("\n") + "\n").expect("write slice");
}

/// Runs `klinecast backtest` with the row models only: the recurrent networks are covered by
/// their own tests, and under qemu (the aarch64 run) their fits would dominate these tests.
fn backtest(args: &[&str]) -> Output {
    common::klinecast_command()
        .arg("backtest")
        .args(["--models", "linear,svr,knn,cart,forest,gbdt"])
        .args(args)
        .output()
        .expect("run klinecast")
}

/// Runs `backtest --json --refit-rows 300` on the first `rows` rows of the sample (a slice
/// written into `dir`) with `args` added, asserts that it succeeded, and returns its stdout.
fn backtest_json(dir: &TempDir, rows: usize, args: &[&str]) -> Vec<u8> {
    let data = dir.join("AVAXUSDT_1m.csv");
    write_slice(&data, rows);
    let mut all = vec!["--data", data.to_str().expect("utf-8 path")];
    all.extend(["--json", "--refit-rows", "300"]);
    all.extend(args);
    let out = backtest(&all);
    assert!(
        out.status.success(),
        "backtest failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn row<'a>(json: &'a serde_json::Value, label: &str) -> &'a serde_json::Value {
    json["scoreboard"]
        .as_array()
        .expect("scoreboard array")
        .iter()
        .find(|r| r["label"] == label)
        .unwrap_or_else(|| panic!("no scoreboard row {label}: {json}"))
}

/// Backs README claim [C12]: backtest is deterministic for a seed (two runs give identical JSON).
#[test]
fn backtest_is_deterministic_and_not_worse_than_naive() {
    let dir = TempDir::new("backtest-det");
    let args = ["--svr-rows", "300", "--seed", "7"];
    let first = backtest_json(&dir, 3000, &args);
    let second = backtest_json(&dir, 3000, &args);
    assert_eq!(first, second, "same seed, same JSON");
    let text = String::from_utf8(first).expect("utf-8 output");
    assert_eq!(text.lines().count(), 1, "one JSON object: {text}");
    let json: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(json["rows"], 3000);
    // The first half, less its last 20 % (--holdout 0.2), which warms the ensemble up unscored.
    assert_eq!(json["train_rows"], 1200);
    assert_eq!(json["warm_up_rows"], 300);
    // --holdout 0: no warm-up, the models train on the whole first half.
    let cold = backtest_json(&dir, 3000, &[&args[..], &["--holdout", "0"]].concat());
    let cold: serde_json::Value = serde_json::from_slice(&cold).expect("valid JSON");
    assert_eq!(
        (&cold["train_rows"], &cold["warm_up_rows"]),
        (&1500.into(), &0.into())
    );
    assert_eq!(row(&cold, "naive")["n"], 1500);
    assert_eq!(json["replay_rows"], 1500);
    assert_eq!(json["windows"], 100);
    assert_eq!(json["interval_ms"], 60_000);
    let ensemble = row(&json, "ensemble");
    let naive = row(&json, "naive");
    assert_eq!(ensemble["n"], 1500);
    assert_eq!(naive["n"], 1500);
    let e = ensemble["rmse"].as_f64().expect("ensemble rmse");
    let n = naive["rmse"].as_f64().expect("naive rmse");
    assert!(e <= n * 1.01, "ensemble rmse {e} vs naive {n}");
    assert_eq!(naive["rmse_vs_naive"], 1.0);
    // `--models` chose the six row models: exactly those are trained members.
    for kind in ModelKind::GENERATION.map(ModelKind::name) {
        assert_eq!(row(&json, &format!("trained/{kind}"))["n"], 1500, "{kind}");
    }
    for kind in ["gru", "lstm"] {
        assert!(
            !json["scoreboard"]
                .to_string()
                .contains(&format!("trained/{kind}")),
            "{kind} was not asked for"
        );
    }
    for kind in ModelKind::GENERATION.map(ModelKind::name) {
        assert!(row(&json, &format!("generations/{kind}"))["n"].as_u64() > Some(0));
    }
    for kind in ["gru", "lstm"] {
        assert!(
            json["scoreboard"].as_array().is_some_and(|rows| !rows
                .iter()
                .any(|r| r["label"] == format!("generations/{kind}"))),
            "{kind} is never refitted per window"
        );
    }
    // The bounded pool: naive + 6 trained + 8 generations of 6.
    assert_eq!(json["pool_size"], 55);
}

/// Backs README claim [C12] for the whole pool: with all eight models (the GRU and LSTM
/// included, which draw their initial weights and batches from the seed), two runs with one
/// seed print identical JSON, for each of two seeds, and the two seeds give different results
/// (so the seed reaches the models and determinism is not a constant output). A 500-row slice
/// and one generation keep the four runs short (about 2.5 CPU seconds each here).
#[test]
fn all_eight_models_reproduce_per_seed_and_the_seed_matters() {
    let dir = TempDir::new("backtest-seeds");
    let data = dir.join("AVAXUSDT_1m.csv");
    write_slice(&data, 500);
    let run = |seed: &str| -> Vec<u8> {
        let out = common::klinecast_command()
            .arg("backtest")
            .arg("--data")
            .arg(&data)
            .args(["--models", "linear,svr,knn,cart,forest,gbdt,gru,lstm"])
            .args(["--json", "--refit-rows", "200", "--generations", "1"])
            .args(["--svr-rows", "100", "--seed", seed])
            .output()
            .expect("run klinecast");
        assert!(
            out.status.success(),
            "backtest --seed {seed} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let mut results = Vec::new();
    for seed in ["7", "8"] {
        let first = run(seed);
        assert_eq!(first, run(seed), "seed {seed}: two runs, different JSON");
        let json: serde_json::Value = serde_json::from_slice(&first).expect("one JSON object");
        assert_eq!(json["replay_rows"], 250, "{json}");
        for kind in ModelKind::ALL.map(ModelKind::name) {
            assert_eq!(row(&json, &format!("trained/{kind}"))["n"], 250, "{kind}");
        }
        results.push(json);
    }
    assert_ne!(results[0], results[1], "seeds 7 and 8 gave the same result");
    // The seeded members differ; the unseeded ones (linear, knn) do not.
    let rmse = |json: &serde_json::Value, label: &str| row(json, label)["rmse"].clone();
    for label in ["trained/gru", "trained/lstm", "trained/forest"] {
        assert_ne!(
            rmse(&results[0], label),
            rmse(&results[1], label),
            "{label}: the seed changes nothing"
        );
    }
    for label in ["trained/linear", "trained/knn", "naive"] {
        assert_eq!(
            rmse(&results[0], label),
            rmse(&results[1], label),
            "{label}"
        );
    }
}

#[test]
fn too_short_or_missing_data_is_refused() {
    let dir = TempDir::new("backtest-short");
    let data = dir.join("short.csv");
    write_slice(&data, 120);
    let out = backtest(&[
        "--data",
        data.to_str().expect("utf-8"),
        "--train-frac",
        "0.5",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("training rows, fewer than 100"), "{err}");
    let missing = dir.join("missing.csv");
    let out = backtest(&["--data", missing.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    let out = backtest(&["--data", "x.csv", "--train-frac", "1.5"]);
    assert_eq!(out.status.code(), Some(2));
}

/// `--horizon 5`: every forecast targets the close 5 klines after the one it was made after, so
/// the first 4 replayed klines have nothing to score, and every scoreboard row counts the 596
/// targets of the 600 replayed klines; the default horizon scores all 600.
#[test]
fn horizon_5_scores_each_forecast_five_klines_later() {
    let dir = TempDir::new("backtest-horizon");
    let run = |horizon: &str| {
        let args = [
            "--svr-rows",
            "100",
            "--generations",
            "2",
            "--horizon",
            horizon,
        ];
        let out = backtest_json(&dir, 1200, &args);
        let json: serde_json::Value = serde_json::from_slice(&out).expect("one JSON object");
        json
    };
    let mut naive_rmse = Vec::new();
    for (horizon, scored, windows) in [("5", 596, 39), ("1", 600, 40)] {
        let json = run(horizon);
        assert_eq!(json["horizon"].to_string(), horizon);
        assert_eq!(json["replay_rows"], 600);
        assert_eq!(json["windows"], windows, "{json}");
        assert_eq!(json["dropped_forecasts"], 0);
        for label in ["ensemble", "naive", "trained/linear", "trained/forest"] {
            assert_eq!(row(&json, label)["n"], scored, "{label}: {json}");
        }
        naive_rmse.push(row(&json, "naive")["rmse"].as_f64().expect("naive rmse"));
    }
    // Naive is scored on the 5-kline move at horizon 5: a larger error than on the next kline.
    assert!(naive_rmse[0] > naive_rmse[1], "{naive_rmse:?}");
}

/// `--predictions FILE` writes every scored forecast in the `predictions.csv` layout (what
/// `scripts/bench_vs_garch.py` reads): one row per forecast the intervals scored, each target a
/// replayed kline one interval after the kline it was made after, `lower ≤ forecast ≤ upper`,
/// and the coverage and mean width re-derived from the rows and the closes equal the ones the
/// JSON reports for the ensemble's intervals.
#[test]
fn predictions_file_holds_every_scored_forecast_and_its_interval() {
    let dir = TempDir::new("backtest-predictions");
    let out = dir.join("sub/p.csv");
    let args = [
        "--svr-rows",
        "100",
        "--generations",
        "2",
        "--predictions",
        out.to_str().expect("utf-8"),
    ];
    let json: serde_json::Value =
        serde_json::from_slice(&backtest_json(&dir, 1200, &args)).expect("one JSON object");
    let text = fs::read_to_string(&out).expect("the predictions file was written");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(klinecast::live::predictions::HEADER),
        "{text}"
    );
    let data = fs::read_to_string(dir.join("AVAXUSDT_1m.csv")).expect("slice");
    let closes: std::collections::HashMap<i64, f64> = data
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].parse().expect("time"), f[4].parse().expect("close"))
        })
        .collect();
    let (mut n, mut covered, mut last_target, mut width) = (0u64, 0u64, 0i64, 0.0);
    for line in lines {
        let row = klinecast::live::predictions::PredictionRow::from_csv_line(line)
            .unwrap_or_else(|| panic!("not a prediction row: {line}"));
        assert!(row.target_open_time > last_target, "ascending targets");
        last_target = row.target_open_time;
        assert_eq!(row.made_after_open_time + 60_000, row.target_open_time);
        assert!(
            row.lower <= row.forecast && row.forecast <= row.upper,
            "{line}"
        );
        let actual = closes[&row.target_open_time];
        width += row.upper - row.lower;
        n += 1;
        covered += u64::from(row.lower <= actual && actual <= row.upper);
    }
    let iv = &json["intervals"];
    assert_eq!(n, 600);
    assert_eq!(iv["n"].as_u64(), Some(n), "{iv}");
    let coverage = iv["coverage"].as_f64().expect("coverage");
    assert!(
        (coverage - covered as f64 / n as f64).abs() < 1.5 / n as f64,
        "{coverage} vs {covered}/{n}"
    );
    // The very intervals the ensemble scored (not the static baseline's): the same mean width.
    let mean_width = iv["mean_width"].as_f64().expect("mean width");
    assert!(
        (width / n as f64 / mean_width - 1.0).abs() < 1e-9,
        "{} vs {mean_width}",
        width / n as f64
    );
}
