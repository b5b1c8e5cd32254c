//! Process-level tests of `klinecast train`: the binary on a slice of the real AVAXUSDT sample
//! writes five model files that load back, prints a JSON report of the agreed shape, and refuses
//! too little data with exit code 1 without touching the models already saved.

use std::fs;
use std::path::Path;
use std::process::Output;

mod common;

use common::TempDir;

use klinecast::models::ModelKind;
use klinecast::persist;

/// Writes the header and the last `rows` klines of the sample data to `path`.
fn slice_of_sample(path: &Path, rows: usize) {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/AVAXUSDT_1m.csv");
    let text = fs::read_to_string(&sample).expect("read data/AVAXUSDT_1m.csv");
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    out.push_str(lines[0]);
    out.push('\n');
    for line in &lines[lines.len() - rows..] {
        out.push_str(line);
        out.push('\n');
    }
    fs::write(path, out).expect("write slice");
}

fn train(args: &[&str]) -> Output {
    common::klinecast_command()
        .arg("train")
        .args(args)
        .output()
        .expect("run klinecast")
}

/// `train --data DATA --models-dir MODELS` and `extra`.
fn train_into(data: &Path, models: &Path, extra: &[&str]) -> Output {
    common::klinecast_command()
        .args(["train", "--data"])
        .arg(data)
        .arg("--models-dir")
        .arg(models)
        .args(extra)
        .output()
        .expect("run klinecast")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn train_writes_eight_models_that_load_and_reports_json() {
    let dir = TempDir::new("train-ok");
    let data = dir.join("AVAXUSDT_1m.csv");
    slice_of_sample(&data, 4000);
    let models = dir.join("models");
    let out = train_into(&data, &models, &["--json", "--max-rows", "3000"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "train failed: {stderr}");
    assert!(stderr.contains("fitting svr on the last"), "{stderr}");

    let report: serde_json::Value =
        serde_json::from_str(text(&out.stdout).trim()).expect("stdout is one JSON object");
    assert_eq!(report["rows"], 3000);
    assert_eq!(report["horizon"], 1);
    assert_eq!(report["seed"], 42);
    // 3000 − 60 warm-up − 1 horizon = 2939 rows; 588 held out.
    assert_eq!(report["holdout_rows"], 588);
    assert_eq!(report["train_rows"], 2351);
    let rows = report["models"].as_array().expect("models array");
    let names: Vec<&str> = rows.iter().filter_map(|m| m["model"].as_str()).collect();
    assert_eq!(
        names,
        ["linear", "svr", "knn", "cart", "forest", "gbdt", "gru", "lstm", "naive"]
    );
    for m in rows {
        for key in ["rmse", "mae", "mape", "rmse_vs_naive"] {
            let v = m[key].as_f64().unwrap_or(f64::NAN);
            assert!(v.is_finite() && v >= 0.0, "{key} of {m}");
        }
        // The naive calls no direction: its directional accuracy is null, not 0.
        if m["model"] == "naive" {
            assert!(m["directional"].is_null(), "{m}");
        } else {
            let dir_acc = m["directional"].as_f64().unwrap_or(f64::NAN);
            assert!((0.0..=1.0).contains(&dir_acc), "{m}");
        }
        assert!(m["fit_seconds"].as_f64().is_some(), "{m}");
    }
    assert_eq!(rows[8]["rmse_vs_naive"], 1.0);

    let loaded = persist::load_all_trained(&models).expect("models load");
    assert_eq!(loaded.len(), 8);
    let series = klinecast::store::load_series(&data).expect("load slice");
    for (model, kind) in loaded.iter().zip(ModelKind::ALL) {
        assert_eq!(model.kind, kind);
        assert_eq!(model.meta.train_rows, 2351);
        assert_eq!(model.meta.data_file, "AVAXUSDT_1m.csv");
        let rmse = rows[kind as usize]["rmse"].as_f64().expect("rmse");
        assert_eq!(model.meta.holdout.rmse, rmse);
        let t = series.len() - 1;
        let price = model.predict_price(&series, t).expect("forecast");
        assert!((price / series.close[t] - 1.0).abs() < 0.2, "{price}");
    }
    for file in ["forest.bin", "gbdt.bin", "gru.bin", "lstm.bin"] {
        assert!(models.join("Trained").join(file).is_file(), "{file}");
    }

    // A second run on too little data fails with exit 1 and leaves the saved models alone.
    let before = fs::read(models.join("Trained/linear.bin")).expect("read model");
    let small = dir.join("small.csv");
    slice_of_sample(&small, 120);
    let out = train_into(&small, &models, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("has 120 klines"), "{stderr}");
    assert!(stderr.contains("at least 161"), "{stderr}");
    assert_eq!(
        fs::read(models.join("Trained/linear.bin")).expect("read model"),
        before
    );
    assert_eq!(persist::load_all_trained(&models).expect("load").len(), 8);
}

#[test]
fn empty_file_is_refused_with_exit_1() {
    let dir = TempDir::new("train-empty");
    let data = dir.join("EMPTY_1m.csv");
    fs::write(&data, format!("{}\n", klinecast::kline::CSV_HEADER)).expect("write");
    let models = dir.join("models");
    let out = train_into(&data, &models, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("klinecast: error:"));
    assert!(!models.join("Trained").exists());
    let missing = train(&["--data", dir.join("NOPE_1m.csv").to_str().expect("utf-8")]);
    assert_eq!(missing.status.code(), Some(1));
    // A file whose name does not say its symbol needs --models-dir: which models it replaces.
    let unnamed = train(&["--data", dir.join("nope.csv").to_str().expect("utf-8")]);
    assert_eq!(unnamed.status.code(), Some(2));
    assert!(
        text(&unnamed.stderr).contains("or give --models-dir DIR"),
        "{}",
        text(&unnamed.stderr)
    );
}

/// The first `rows` data lines of the sample after skipping `skip`, under `name` in `dir`.
fn store_of(dir: &Path, name: &str, skip: usize, rows: usize) -> std::path::PathBuf {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/AVAXUSDT_1m.csv");
    let text = fs::read_to_string(&sample).expect("read data/AVAXUSDT_1m.csv");
    let lines: Vec<&str> = text.lines().collect();
    let body: Vec<&str> = lines[1 + skip..1 + skip + rows].to_vec();
    let path = dir.join(name);
    fs::write(&path, format!("{}\n{}\n", lines[0], body.join("\n"))).expect("write store");
    path
}

/// `train --symbols` of three symbols, the middle one's store corrupt: the two good ones are
/// trained from their own stores into their own folders (`models/<SYMBOL>_1m/Trained`), the bad
/// one is named with its line and leaves no folder, and the run exits 1 naming it at the end.
#[test]
fn train_symbols_writes_each_folder_and_names_a_corrupt_store() {
    let dir = TempDir::new("train-symbols");
    let data = dir.join("data");
    fs::create_dir_all(&data).expect("mkdir");
    store_of(&data, "ETHUSDT_1m.csv", 0, 400);
    let bad = store_of(&data, "XRPUSDT_1m.csv", 0, 400);
    let mut text_bad = fs::read_to_string(&bad).expect("read");
    text_bad = text_bad.replacen("\n", "\nnot,a,kline\n", 5);
    fs::write(&bad, text_bad).expect("corrupt");
    store_of(&data, "SOLUSDT_1m.csv", 1000, 300);
    let models = dir.join("models");
    let out = common::klinecast_command()
        .args([
            "train",
            "--symbols",
            "ETHUSDT,XRPUSDT,SOLUSDT",
            "--svr-rows",
            "100",
        ])
        .arg("--data-dir")
        .arg(&data)
        .arg("--models-dir")
        .arg(&models)
        .output()
        .expect("run klinecast");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("klinecast: error: XRPUSDT 1m: ") && stderr.contains("XRPUSDT_1m.csv:2:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("training failed for 1 of 3 symbols: XRPUSDT 1m"),
        "{stderr}"
    );
    assert!(!models.join("XRPUSDT_1m").exists());
    let mut train_rows = Vec::new();
    for symbol in ["ETHUSDT", "SOLUSDT"] {
        let loaded =
            persist::load_all_trained(&models.join(format!("{symbol}_1m"))).expect("models load");
        assert_eq!(loaded.len(), 8, "{symbol}");
        for model in &loaded {
            assert_eq!(model.meta.data_file, format!("{symbol}_1m.csv"));
        }
        train_rows.push(loaded[0].meta.train_rows);
    }
    // Each from its own store: 400 klines and 300.
    assert!(train_rows[0] > train_rows[1] + 50, "{train_rows:?}");
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("ETHUSDT 1m:\n") && stdout.contains("SOLUSDT 1m:\n"),
        "{stdout}"
    );
}
