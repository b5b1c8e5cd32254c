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
    // AVAXUSDT and ETHUSDT: different klines over the same minutes.
    let [own, eth]: [Vec<Kline>; 2] = common::symbol_sources(2, history + 200)
        .try_into()
        .expect("two series");
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

/// Backs README claim [C27]: through the replay server, ETHUSDT's kline of minute 651 comes 4 s
/// late (`hold-final`, past the 3 s bound), its 652 comes 1 s late (within the bound) and its
/// 653 never comes (a gap in the neighbour's feed, on REST too). AVAXUSDT's forecasts of 651
/// and 653 are written at the bound, before the neighbour's kline was on the wire (so they
/// cannot have read it: no leak), and marked `corr_late`; the one of 652 waits for its
/// neighbour and is not marked; exactly those two are marked, and the run ends at its kline
/// limit with status 0, ETHUSDT's store holding what was served (the late kline too, the gap
/// kept).
#[test]
fn a_late_or_missing_neighbour_kline_goes_ahead_at_the_bound_marked() {
    use std::time::{Duration, Instant};
    let dir = TempDir::new("corr-late");
    let history = 650;
    // AVAXUSDT and ETHUSDT: different klines over the same minutes.
    let [own, eth]: [Vec<Kline>; 2] = common::symbol_sources(2, history + 200)
        .try_into()
        .expect("two series");
    let root = dir.join("run");
    seed(&root, "AVAXUSDT", &own[..history]);
    let eth_store = seed(&root, "ETHUSDT", &eth[..history]);
    train_symbols(&root, "ETHUSDT");
    // ETHUSDT lacks minute 653 (a gap Binance has too: REST does not serve it either).
    let (late, within, gap) = (history + 1, history + 2, history + 3);
    let mut served_eth = eth.clone();
    served_eth.remove(gap);
    // 12 virtual ms per real ms: a minute lasts 5 real seconds, longer than any hold.
    let speed = 12.0;
    let srv = common::replay_server_of(
        &[("AVAXUSDT", own.clone()), ("ETHUSDT", served_eth.clone())],
        history,
        speed,
        &format!("hold-final=ETHUSDT:{late}:4000,hold-final=ETHUSDT:{within}:1000"),
    );
    // The clock waits for the stream's connection, so a slow start (qemu, load) still meets
    // the held klines on the socket.
    srv.pause_clock();
    let child = common::stream_command("AVAXUSDT", &srv.rest_url(), &srv.ws_url(), &root)
        .args(["--corr", "ETHUSDT", "--max-runtime", "120s"])
        .env("KLINECAST_MAX_KLINES", "5")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start stream");
    let mut child = common::KillOnDrop(child);
    common::resume_when_connected(&srv, &mut child.0, 0, Duration::from_secs(120));
    // When each forecast row first shows in predictions.csv: real seconds after its kline
    // closed (the server's virtual clock, divided by the speed).
    let preds = root
        .join("data")
        .join("AVAXUSDT_1m")
        .join("predictions.csv");
    let mut written: Vec<(i64, f64)> = Vec::new();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(150),
            "stream did not end"
        );
        let now = srv.now_ms();
        let text = fs::read_to_string(&preds).unwrap_or_default();
        for line in text.lines().skip(1) {
            let Some(row) = klinecast::live::predictions::PredictionRow::from_csv_line(line) else {
                continue; // a row being written
            };
            let t = row.made_after_open_time;
            if !written.iter().any(|&(w, _)| w == t) {
                let closed = t + 60_000;
                written.push((t, (now - closed) as f64 / speed / 1000.0));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |pipe: Option<&mut dyn std::io::Read>| {
        let mut text = String::new();
        if let Some(pipe) = pipe {
            pipe.read_to_string(&mut text).expect("read the pipe");
        }
        text
    };
    let stdout = read(child.0.stdout.as_mut().map(|p| p as &mut dyn std::io::Read));
    let stderr = read(child.0.stderr.as_mut().map(|p| p as &mut dyn std::io::Read));
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("stream stopped (KlineLimit)"), "{stdout}");
    let after = |row: usize| {
        let t = own[row].open_time;
        written
            .iter()
            .find(|&&(w, _)| w == t)
            .map(|&(_, s)| s)
            .unwrap_or_else(|| panic!("no forecast after row {row}: {written:?}"))
    };
    // Late past the bound, and missing: written at the bound (3 s after the kline came), before
    // the neighbour's kline of that minute was sent (4 s; the next minute's, 5 s).
    for (row, sent) in [(late, 4.0), (gap, 5.0)] {
        let s = after(row);
        assert!(
            s >= 2.9 && s < sent,
            "row {row}: written {s:.2} s after its close"
        );
    }
    // Within the bound: it waited for the neighbour's kline (1 s), not for the bound.
    let s = after(within);
    assert!(
        (1.0..2.9).contains(&s),
        "row {within}: written {s:.2} s after its close"
    );
    let s = after(history + 4);
    assert!(
        s < 2.9,
        "row {}: written {s:.2} s after its close",
        history + 4
    );
    common::check_predictions(&preds, 1);

    // Exactly the late and the missing minutes are marked, in ensemble.log and on stdout.
    let log_dir = root.join("log").join("AVAXUSDT_1m");
    let log = fs::read_to_string(log_dir.join("ensemble.log")).expect("ensemble.log");
    let marked: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("forecast made without the kline of its minute of ETHUSDT"))
        .collect();
    let stamp = |row: usize| {
        format!(
            "kline {}.000Z:",
            klinecast::time::format_ms(own[row].open_time)
        )
    };
    assert_eq!(marked.len(), 2, "{log}");
    assert!(marked[0].contains(&stamp(late)), "{log}");
    assert!(marked[1].contains(&stamp(gap)), "{log}");
    assert!(
        stdout.contains("2 forecasts went ahead without a correlated symbol's kline"),
        "{stdout}"
    );
    // ensemble.jsonl lists the marked minutes of its window (650..=654, closed): those two.
    let jsonl = fs::read_to_string(log_dir.join("ensemble.jsonl")).expect("ensemble.jsonl");
    let listed: Vec<i64> = jsonl
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .flat_map(|v| {
            v["corr_late"]
                .as_array()
                .map(|a| a.iter().filter_map(serde_json::Value::as_i64).collect())
                .unwrap_or_else(Vec::new)
        })
        .collect();
    assert_eq!(listed, [own[late].open_time, own[gap].open_time]);
    // ETHUSDT's store: as served, the late kline included, the gap kept.
    let stored = store::load_klines(&eth_store).expect("ETHUSDT's store");
    assert_eq!(stored[..], served_eth[..stored.len()]);
    assert!(stored.iter().any(|k| k.open_time == eth[late].open_time));
    assert!(stored.len() > gap, "{}", stored.len());
    let _ = srv;
}

/// Backs README claim [C28]: after a (re)connect the correlated symbols that are not forecast
/// are filled over REST before the forecast symbols, so a slow fill (every klines answer 3.5 s
/// late, longer than the bound) does not make the filled minutes' forecasts stale: ten klines
/// of each symbol filled after a downtime, ten forecasts, none marked `corr_late`.
#[test]
fn neighbours_are_filled_first_so_a_slow_fill_marks_nothing() {
    let dir = TempDir::new("corr-fill");
    let history = 650;
    // AVAXUSDT and ETHUSDT: different klines over the same minutes.
    let [own, eth]: [Vec<Kline>; 2] = common::symbol_sources(2, history + 200)
        .try_into()
        .expect("two series");
    let root = dir.join("run");
    seed(&root, "AVAXUSDT", &own[..history]);
    let eth_store = seed(&root, "ETHUSDT", &eth[..history]);
    train_symbols(&root, "ETHUSDT");
    // Ten minutes down: rows 650..=659 have closed, the clock (real time) barely moves.
    let srv = common::replay_server_of(
        &[("AVAXUSDT", own.clone()), ("ETHUSDT", eth.clone())],
        history + 10,
        1.0,
        "slow-ms=3500",
    );
    let out = common::stream_command("AVAXUSDT", &srv.rest_url(), &srv.ws_url(), &root)
        .args(["--corr", "ETHUSDT", "--max-runtime", "120s"])
        .env("KLINECAST_MAX_KLINES", "10")
        .output()
        .expect("run stream");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("stream stopped (KlineLimit)"), "{stdout}");
    assert!(!stdout.contains("forecasts went ahead without"), "{stdout}");
    let log_dir = root.join("log").join("AVAXUSDT_1m");
    let log = fs::read_to_string(log_dir.join("ensemble.log")).expect("ensemble.log");
    assert!(!log.contains("forecast made without"), "{log}");
    let stream_log = fs::read_to_string(root.join("log").join("stream.log")).expect("stream.log");
    // Both gaps were filled over REST, the neighbour's first.
    let filled = |sym: &str| {
        stream_log
            .find(&format!("{sym} 1m: 10 klines over rest"))
            .unwrap_or_else(|| panic!("{sym} not filled: {stream_log}"))
    };
    assert!(filled("ETHUSDT") < filled("AVAXUSDT"), "{stream_log}");
    let preds = root
        .join("data")
        .join("AVAXUSDT_1m")
        .join("predictions.csv");
    let rows = common::check_predictions(&preds, 1);
    let made: Vec<i64> = rows.iter().map(|r| r.made_after_open_time).collect();
    for row in own.iter().take(history + 10).skip(history) {
        assert!(made.contains(&row.open_time), "{made:?}");
    }
    let stored = store::load_klines(&eth_store).expect("ETHUSDT's store");
    assert_eq!(stored[..], eth[..history + 10]);
}
