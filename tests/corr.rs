//! Process-level tests of correlated pairs (`--corr`, issue 23): `backtest --corr` adds the
//! correlated variants of linear and gbdt beside the own-only members and refuses a neighbour
//! store that does not cover the series (exit 1, naming the symbol, the file and both periods);
//! `train --corr` saves `<kind>+corr.bin` recording the list, and `stream` refuses such models
//! (exit 2, naming the file and both lists) before writing anything.

use std::fs;
use std::path::{Path, PathBuf};

mod common;

use common::TempDir;
use klinecast::kline::{Interval, Kline, Symbol};
use klinecast::persist;
use klinecast::store::{self, KlineStore};

/// The sample's first `rows` klines as `symbol`'s store in `dir`: its own rows (`shift` 0), or a
/// neighbour whose kline at row i has row i's times and row (i + shift)'s values; `skip` rows
/// are left out at the start.
fn write_store(dir: &Path, symbol: &str, rows: usize, shift: usize, skip: usize) -> PathBuf {
    let all = common::sample_klines(rows + shift);
    let klines: Vec<Kline> = (skip..rows)
        .map(|i| Kline {
            open_time: all[i].open_time,
            close_time: all[i].close_time,
            ..all[i + shift].clone()
        })
        .collect();
    let sym = Symbol::parse(symbol).expect("symbol");
    fs::create_dir_all(dir).expect("dir");
    let path = store::kline_path(dir, &sym, Interval::ONE_MINUTE);
    let (mut st, _) = KlineStore::open(&path).expect("open the store");
    st.append(&klines).expect("write the store");
    path
}

fn text(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Backs README claim [C23]: backtest --corr keeps the own-only members and adds the
/// correlated variants of linear and gbdt; a neighbour store that does not cover the series is
/// refused with exit 1, naming the symbol, its file and both periods.
#[test]
fn backtest_corr_adds_variants_and_refuses_a_short_neighbour() {
    let dir = TempDir::new("corr-backtest");
    let rows = 1200;
    let own = write_store(dir.path(), "AVAXUSDT", rows, 0, 0);
    let eth = write_store(dir.path(), "ETHUSDT", rows, 3, 0);
    let btc = write_store(dir.path(), "BTCUSDT", rows, 11, 0);
    let corr = format!("{},{}", text(&eth), text(&btc));
    let out = common::klinecast_command()
        .args([
            "backtest",
            "--models",
            "linear,gbdt",
            "--json",
            "--refit-rows",
            "300",
        ])
        .args(["--data", text(&own), "--corr", &corr])
        .output()
        .expect("run backtest");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["corr"], serde_json::json!(["ETHUSDT", "BTCUSDT"]));
    let labels: Vec<&str> = json["scoreboard"]
        .as_array()
        .expect("scoreboard")
        .iter()
        .filter_map(|r| r["label"].as_str())
        .collect();
    for label in [
        "trained/linear",
        "trained/gbdt",
        "trained+corr/linear",
        "trained+corr/gbdt",
    ] {
        assert!(labels.contains(&label), "{label} in {labels:?}");
    }
    assert!(stderr.contains("training linear+corr on"), "{stderr}");
    assert!(stderr.contains("24 features"), "{stderr}");

    // A neighbour that starts 100 klines late does not cover the series.
    let short_dir = dir.join("short");
    let short = write_store(&short_dir, "ETHUSDT", rows, 3, 100);
    let out = common::klinecast_command()
        .args([
            "backtest",
            "--models",
            "linear",
            "--json",
            "--refit-rows",
            "300",
        ])
        .args(["--data", text(&own), "--corr", text(&short)])
        .output()
        .expect("run backtest");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let first = common::sample_klines(rows);
    let fmt = klinecast::time::format_ms;
    assert!(
        stderr.contains(&format!(
            "correlated symbol ETHUSDT: {} holds klines from {} to {}, but the series runs from \
             {} to {}",
            short.display(),
            fmt(first[100].open_time),
            fmt(first[rows - 1].open_time),
            fmt(first[0].open_time),
            fmt(first[rows - 1].open_time)
        )),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

/// Backs README claim [C24]: train --corr saves `<kind>+corr.bin` beside the own-only models,
/// recording the correlated symbols, and stream refuses a model made with another list (exit
/// 2, naming the file and both lists) before it writes anything.
#[test]
fn stream_refuses_models_trained_with_other_correlated_symbols() {
    let dir = TempDir::new("corr-stream");
    let rows = 700;
    let data = dir.join("data");
    let models = dir.join("models");
    let own = write_store(&data, "AVAXUSDT", rows, 0, 0);
    let others = dir.join("others");
    let eth = write_store(&others, "ETHUSDT", rows, 3, 0);
    let btc = write_store(&others, "BTCUSDT", rows, 11, 0);
    let corr = format!("{},{}", text(&eth), text(&btc));
    common::train(
        &own,
        &models,
        &["--svr-rows", "100", "--seed", "3", "--corr", &corr],
    );
    let trained = models.join("Trained");
    let loaded = persist::load_all_trained(&models).expect("the set loads");
    let with_corr: Vec<_> = loaded.iter().filter(|m| !m.spec.corr.is_empty()).collect();
    assert_eq!(with_corr.len(), 2, "linear and gbdt variants");
    for m in &with_corr {
        assert_eq!(m.spec.corr, ["ETHUSDT", "BTCUSDT"]);
        assert_eq!(m.spec.version, 2);
        assert_eq!(m.scaler.mean.len(), 24);
    }
    assert_eq!(loaded.len(), 10, "eight own-only kinds and two variants");
    assert!(trained.join("gbdt+corr.bin").exists());

    let klines = common::sample_klines(rows + 5);
    let srv = common::replay_server(klines, rows + 4, 1e9, "");
    let out = common::stream_command("AVAXUSDT", &srv.rest_url(), &srv.ws_url(), dir.path())
        .args(["--max-runtime", "60s"])
        .output()
        .expect("run stream");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{} was trained with --corr ETHUSDT,BTCUSDT but stream runs with --corr none",
            trained.join("linear+corr.bin").display()
        )),
        "{stderr}"
    );
    assert!(!persist::ensemble_path(&models).exists());
}

/// `root/data/<SYMBOL>_1m.csv` holding `klines`.
fn seed(root: &Path, symbol: &str, klines: &[Kline]) -> PathBuf {
    let sym = Symbol::parse(symbol).expect("symbol");
    let data = root.join("data");
    fs::create_dir_all(&data).expect("dir");
    let path = store::kline_path(&data, &sym, Interval::ONE_MINUTE);
    let (mut st, _) = KlineStore::open(&path).expect("open the store");
    st.append(klines).expect("write the store");
    path
}

/// `train --symbols AVAXUSDT --corr CORR` on the stores in `root/data`, models in `root/models`.
fn train_symbols(root: &Path, corr: &str) {
    let out = common::klinecast_command()
        .args(["train", "--symbols", "AVAXUSDT", "--corr", corr])
        .args(["--svr-rows", "100", "--seed", "3", "--max-rows", "600"])
        .arg("--data-dir")
        .arg(root.join("data"))
        .arg("--models-dir")
        .arg(root.join("models"))
        .output()
        .expect("run train");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Backs README claim [C25]: `stream --symbol AVAXUSDT --corr ETHUSDT` follows both symbols on
/// one combined connection, stores ETHUSDT's klines too, forecasts AVAXUSDT only, with the
/// models `train --corr ETHUSDT` made (the `+corr` members are scored); a model trained with
/// another list is refused (exit 2, naming both lists) before anything is written.
#[test]
fn stream_corr_forecasts_with_the_neighbours_on_one_connection() {
    let dir = TempDir::new("corr-stream-live");
    let (history, streamed) = (650, 12);
    let sample = common::sample_klines(5000 + history + 200);
    let own: Vec<Kline> = sample[..history + 200].to_vec();
    let eth: Vec<Kline> = (0..history + 200)
        .map(|i| Kline {
            open_time: sample[i].open_time,
            close_time: sample[i].close_time,
            ..sample[5000 + i].clone()
        })
        .collect();
    let root = dir.join("run");
    seed(&root, "AVAXUSDT", &own[..history]);
    let eth_store = seed(&root, "ETHUSDT", &eth[..history]);
    train_symbols(&root, "ETHUSDT");
    let trained = root.join("models").join("AVAXUSDT_1m").join("Trained");
    assert!(trained.join("linear+corr.bin").exists());

    let srv = common::replay_server_of(
        &[("AVAXUSDT", own.clone()), ("ETHUSDT", eth.clone())],
        history,
        600.0,
        "",
    );

    // Models trained with another list are refused, naming both lists; nothing is written.
    let other = dir.join("other");
    seed(&other, "AVAXUSDT", &own[..history]);
    seed(&other, "ETHUSDT", &eth[..history]);
    seed(&other, "BNBUSDT", &eth[..history]);
    train_symbols(&other, "BNBUSDT");
    let out = common::stream_command("AVAXUSDT", &srv.rest_url(), &srv.ws_url(), &other)
        .args(["--corr", "ETHUSDT", "--max-runtime", "60s"])
        .output()
        .expect("run stream");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("was trained with --corr BNBUSDT but stream runs with --corr ETHUSDT"),
        "{stderr}"
    );
    assert!(!persist::ensemble_path(&other.join("models").join("AVAXUSDT_1m")).exists());

    // The same list: both symbols on one connection, AVAXUSDT forecast with its neighbour.
    let out = common::stream_command("AVAXUSDT", &srv.rest_url(), &srv.ws_url(), &root)
        .args(["--corr", "ETHUSDT", "--max-runtime", "240s"])
        .env("KLINECAST_MAX_KLINES", streamed.to_string())
        .output()
        .expect("run stream");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("stream stopped (KlineLimit)"), "{stdout}");
    let log = fs::read_to_string(root.join("log").join("stream.log")).expect("stream.log");
    assert!(
        log.contains("/stream?streams=avaxusdt@kline_1m/ethusdt@kline_1m"),
        "{log}"
    );
    let stored = store::load_klines(&eth_store).expect("ETHUSDT's store");
    assert!(stored.len() >= history + streamed, "{}", stored.len());
    assert_eq!(stored[..], eth[..stored.len()], "ETHUSDT stored as served");
    let preds = root
        .join("data")
        .join("AVAXUSDT_1m")
        .join("predictions.csv");
    let rows = common::check_predictions(&preds, 1);
    assert!(rows.len() > streamed, "{} rows", rows.len());
    assert!(
        !root
            .join("data")
            .join("ETHUSDT_1m")
            .join("predictions.csv")
            .exists(),
        "ETHUSDT is only a neighbour"
    );
    assert!(
        persist::ensemble_path(&root.join("models").join("AVAXUSDT_1m")).exists(),
        "the ensemble is saved"
    );
    // The +corr members are in the pool and scored (the stream's scoreboard names them).
    assert!(stdout.contains("trained+corr/linear"), "{stdout}");
}
