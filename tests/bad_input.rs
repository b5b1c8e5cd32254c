//! The bad-input table of the README, one test per row: each runs the real binary (or, where a
//! process-level run would only wait out retry backoffs, the real client against a real socket)
//! on one kind of bad input and checks the exit code (2 usage or configuration, 1 runtime), that
//! stderr says what is wrong in words a user can act on, and that files saved before are still
//! there byte for byte. Everything runs offline on 127.0.0.1.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::{klinecast_command, TempDir};
use klinecast::binance::rest::{RestClient, RetryPolicy};
use klinecast::binance::tls::{self, Timeouts};
use klinecast::binance::BinanceError;
use klinecast::kline::CSV_HEADER;
use klinecast::models::ModelKind;
use klinecast::persist::{self, PersistError, TRAINED_VERSION};
use klinecast::replay::ReplayServer;

use common::SAMPLE;

fn sample_lines() -> Vec<String> {
    fs::read_to_string(SAMPLE)
        .expect("read data/AVAXUSDT_1m.csv")
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect()
}

/// Writes the header and `lines` as a kline CSV.
fn write_csv(path: &Path, lines: &[String]) {
    let mut text = format!("{CSV_HEADER}\n");
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    fs::write(path, text).expect("write csv");
}

fn run(args: &[&str], paths: &[(&str, &Path)]) -> Output {
    let mut cmd = klinecast_command();
    cmd.args(args)
        .env_remove("KLINECAST_REST_URL")
        .env_remove("KLINECAST_WS_URL");
    for (flag, path) in paths {
        cmd.arg(flag).arg(path);
    }
    cmd.output().expect("run klinecast")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the exit code and that stderr holds every needle.
fn assert_fails(out: &Output, code: i32, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert!(err.contains("klinecast: error:"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "{needle:?} missing from: {err}");
    }
}

/// Every regular file under `dir` (recursively) with its bytes, sorted by path.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            out.extend(snapshot(&path));
        } else {
            let bytes = fs::read(&path).expect("read file");
            out.push((path, bytes));
        }
    }
    out.sort();
    out
}

/// `train --data <data> --models-dir <models>`, which must succeed.
fn train_ok(data: &Path, models: &Path) {
    let out = run(&["train"], &[("--data", data), ("--models-dir", models)]);
    assert!(out.status.success(), "train: {}", stderr(&out));
}

/// Asserts that the store at `store` still begins with the sample's first rows (a failed or
/// recovering `stream` did not rewrite it).
fn assert_store_kept(store: &Path) {
    let stored = fs::read_to_string(store).expect("store");
    assert!(stored.starts_with(&fs::read_to_string(SAMPLE).expect("sample")[..1000]));
}

/// A models directory holding five (fake) model files that must survive a failed command.
fn saved_models(dir: &Path) -> PathBuf {
    let models = dir.join("models");
    for kind in ModelKind::ALL {
        let path = persist::trained_path(&models, kind);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, format!("saved {} model", kind.name())).expect("write model");
    }
    models
}

/// `train --data <data> --models-dir <models>`: exits with `code`, names the problem, and
/// leaves the data file and every saved model byte-identical.
fn train_refuses(data: &Path, code: i32, needles: &[&str]) {
    let dir = data.parent().expect("data dir");
    let models = saved_models(dir);
    let before = snapshot(dir);
    let out = run(
        &["train"],
        &[("--data", data), ("--models-dir", models.as_path())],
    );
    assert_fails(&out, code, needles);
    assert_eq!(snapshot(dir), before, "files changed");
}

/// A replay server on the first 3000 sample rows, clock at row 2000.
fn replay_server() -> ReplayServer {
    common::replay_server(common::sample_klines(3000), 2000, 1.0, "")
}

/// A REST client that retries 3 times without real waits.
fn fast_client(url: &str) -> RestClient {
    let policy = RetryPolicy {
        base_ms: 1,
        cap_ms: 2,
        max_attempts: 3,
        jitter_ms: 1,
        seed: 1,
    };
    let timeouts = Timeouts {
        connect: Duration::from_secs(2),
        read: Duration::from_secs(2),
        ..Timeouts::default()
    };
    RestClient::with_options(url, timeouts, policy)
        .expect("loopback URL accepted")
        .with_sleeper(|_| {})
        .with_notifier(|_| {})
}

/// A port on 127.0.0.1 that nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_symbol_shows_the_binance_error() {
    let dir = TempDir::new("bad-unknown-symbol");
    let server = replay_server();
    let data = dir.path().join("data");
    fs::create_dir_all(&data).expect("mkdir");
    write_csv(&data.join("AVAXUSDT_1m.csv"), &sample_lines()[..10]);
    let before = snapshot(&data);
    let out = run(
        &[
            "collect",
            "--symbol",
            "NOPE1",
            "--start",
            "2026-07-01",
            "--rest-url",
            &server.rest_url(),
        ],
        &[("--data-dir", data.as_path())],
    );
    assert_fails(&out, 1, &["-1121", "Invalid symbol", "check --symbol"]);
    let after: Vec<_> = snapshot(&data)
        .into_iter()
        .filter(|(p, _)| !p.ends_with("NOPE1_1m.csv"))
        .collect();
    assert_eq!(after, before, "existing data changed");
}

#[test]
fn path_traversing_symbol_is_a_usage_error() {
    let dir = TempDir::new("bad-traversal");
    for symbol in ["../x", "a/b", "..", "/etc/passwd", "BTC USDT"] {
        for command in ["collect", "stream"] {
            let out = run(
                &[command, "--symbol", symbol],
                &[("--data-dir", dir.path())],
            );
            assert_fails(&out, 2, &["invalid symbol", "such as BTCUSDT"]);
        }
    }
    assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 0);
}

#[test]
fn bad_interval_is_a_usage_error() {
    let dir = TempDir::new("bad-interval");
    for interval in ["7m", "1M", "", "../1m", "1m/x"] {
        let out = run(
            &["collect", "--interval", interval],
            &[("--data-dir", dir.path())],
        );
        assert_fails(&out, 2, &["invalid interval", "use one of 1s, 1m"]);
    }
    assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 0);
}

#[test]
fn torn_or_non_numeric_line_names_file_and_line() {
    let lines = sample_lines();
    type Spoil = fn(&str) -> String;
    let cases: [(&str, Spoil, &[&str]); 3] = [
        ("torn", |l| l[..30].to_string(), &["found 4"]),
        ("text", |l| l.replacen(',', ",abc", 1), &["`open`", "abc"]),
        ("semicolons", |l| l.replace(',', ";"), &["found 1"]),
    ];
    for (name, spoil, needles) in cases {
        let dir = TempDir::new(&format!("bad-line-{name}"));
        let data = dir.path().join("AVAXUSDT_1m.csv");
        let mut rows = lines[..400].to_vec();
        rows[200] = spoil(&rows[200]);
        write_csv(&data, &rows);
        let mut all = vec!["AVAXUSDT_1m.csv:202:", "fix or delete that line"];
        all.extend_from_slice(needles);
        train_refuses(&data, 1, &all);
    }
    // A torn last line (a kill during a write) is refused by train as well.
    let dir = TempDir::new("bad-line-torn-tail");
    let data = dir.path().join("AVAXUSDT_1m.csv");
    write_csv(&data, &lines[..400]);
    let mut bytes = fs::read(&data).expect("read");
    bytes.extend_from_slice(&lines[400].as_bytes()[..25]);
    fs::write(&data, bytes).expect("write");
    train_refuses(&data, 1, &["AVAXUSDT_1m.csv:402:", "incomplete"]);
}

#[test]
fn nan_or_infinite_values_are_refused() {
    let lines = sample_lines();
    for (i, bad) in ["NaN", "inf", "-inf", "Infinity", "1e309", "1e3", "-1"]
        .iter()
        .enumerate()
    {
        let dir = TempDir::new(&format!("bad-nan-{i}"));
        let data = dir.path().join("AVAXUSDT_1m.csv");
        let mut rows = lines[..400].to_vec();
        // The close column (the 5th field).
        let mut fields: Vec<&str> = rows[300].split(',').collect();
        fields[4] = bad;
        rows[300] = fields.join(",");
        write_csv(&data, &rows);
        train_refuses(&data, 1, &["AVAXUSDT_1m.csv:302:", "`close`"]);
    }
}

#[test]
fn unsorted_data_is_refused() {
    let lines = sample_lines();
    let dir = TempDir::new("bad-unsorted");
    let data = dir.path().join("AVAXUSDT_1m.csv");
    let mut rows = lines[..400].to_vec();
    rows.swap(150, 151);
    write_csv(&data, &rows);
    train_refuses(
        &data,
        1,
        &["AVAXUSDT_1m.csv:153:", "is not after the previous row"],
    );
    let dir = TempDir::new("bad-duplicate");
    let data = dir.path().join("AVAXUSDT_1m.csv");
    let mut rows = lines[..400].to_vec();
    rows[151] = rows[150].clone();
    write_csv(&data, &rows);
    train_refuses(&data, 1, &["AVAXUSDT_1m.csv:153:", "duplicate open_time"]);
}

#[test]
fn empty_data_is_refused() {
    let dir = TempDir::new("bad-empty");
    let data = dir.path().join("AVAXUSDT_1m.csv");
    write_csv(&data, &[]);
    train_refuses(
        &data,
        1,
        &["has 0 klines", "at least 161", "klinecast collect"],
    );
    let dir = TempDir::new("bad-zero-bytes");
    let data = dir.path().join("AVAXUSDT_1m.csv");
    fs::write(&data, b"").expect("write");
    train_refuses(&data, 1, &["AVAXUSDT_1m.csv is empty", "klinecast collect"]);
    let dir = TempDir::new("bad-missing");
    let data = dir.path().join("AVAXUSDT_1m.csv");
    let models = saved_models(dir.path());
    let before = snapshot(dir.path());
    let out = run(
        &["train"],
        &[
            ("--data", data.as_path()),
            ("--models-dir", models.as_path()),
        ],
    );
    assert_fails(&out, 1, &["AVAXUSDT_1m.csv", "No such file"]);
    assert_eq!(snapshot(dir.path()), before);
}

/// Backs README claim [C18]: No trained model file is changed by a failed train, a bad input or a full disk.
#[test]
fn too_few_rows_to_train_says_how_many_are_needed() {
    let dir = TempDir::new("bad-few");
    let data = dir.path().join("AVAXUSDT_1m.csv");
    write_csv(&data, &sample_lines()[..160]);
    train_refuses(&data, 1, &["has 160 klines", "needs at least 161"]);
}

/// Model files that are truncated, foreign or of another format version are refused with the
/// file's name and what to do; nothing is rewritten. (`stream` is the command that loads them;
/// until it exists this row runs the loader it will call.)
#[test]
fn truncated_foreign_or_other_version_model_files_are_refused() {
    let dir = TempDir::new("bad-models");
    let models = dir.path().join("models");
    let good = model_bytes();
    let path = persist::trained_path(&models, ModelKind::Linear);
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let mut other_version = good.clone();
    other_version[12..16].copy_from_slice(&7u32.to_le_bytes());
    let mut flipped = good.clone();
    let last = flipped.len() - 10;
    flipped[last] ^= 1;
    let reads_v7 = format!("format v7, this build reads v{TRAINED_VERSION}");
    let reads_v7: &[&str] = &[&reads_v7];
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            &["is truncated"],
        ),
        ("empty", Vec::new(), &["is truncated"]),
        (
            "foreign",
            b"open_time,open\n1,2\n".to_vec(),
            &["not a klinecast model file"],
        ),
        ("other version", other_version, reads_v7),
        ("corrupt", flipped, &["corrupt", "checksum"]),
    ];
    for (what, bytes, needles) in cases {
        fs::write(&path, &bytes).expect("write model");
        let err = persist::load_trained(&path).expect_err(what);
        let text = err.to_string();
        assert!(text.contains("linear.bin"), "{what}: {text}");
        assert!(
            text.contains("run `klinecast train` again"),
            "{what}: {text}"
        );
        for needle in needles {
            assert!(text.contains(needle), "{what}: {text}");
        }
        assert_eq!(klinecast::Error::from(err).exit_code(), 1);
        assert_eq!(
            fs::read(&path).expect("read"),
            bytes,
            "{what}: file changed"
        );
    }
    let err = persist::load_all_trained(&models).expect_err("a bad file among the models");
    assert!(matches!(err, PersistError::Corrupt { .. }), "{err}");
}

/// A store of the sample's first 600 klines in `<dir>/data` and the models `train` fits on it in
/// `<dir>/models`: the models folder and the store's path.
fn trained_on_600_rows(dir: &TempDir) -> (PathBuf, PathBuf) {
    let lines = sample_lines();
    let data = dir.path().join("data");
    let models = dir.path().join("models");
    fs::create_dir_all(&data).expect("mkdir");
    let store = data.join("AVAXUSDT_1m.csv");
    write_csv(&store, &lines[..600]);
    train_ok(&store, &models);
    (models, store)
}

/// The same files met by `stream`, the command that loads them: it must keep running under
/// cron, so it names each bad file and what to do on stderr and in ensemble.log, goes on with
/// the good models (exit code 0), and leaves the bad trained files as they are; a bad ensemble
/// file is moved aside to `EnsembleModel.bin.bad` and a new ensemble starts.
#[test]
fn stream_names_bad_model_files_and_keeps_the_good_ones() {
    let dir = TempDir::new("bad-models-stream");
    let (models, _store) = trained_on_600_rows(&dir);
    let path = |kind| persist::trained_path(&models, kind);
    let good = fs::read(path(ModelKind::Linear)).expect("read");
    let mut other_version = fs::read(path(ModelKind::Knn)).expect("read");
    other_version[12..16].copy_from_slice(&7u32.to_le_bytes());
    fs::write(path(ModelKind::Linear), &good[..good.len() / 2]).expect("write");
    fs::write(path(ModelKind::Svr), b"open_time,open\n1,2\n").expect("write");
    fs::write(path(ModelKind::Knn), &other_version).expect("write");
    let ensemble = klinecast::persist::ensemble_path(&models);
    fs::create_dir_all(ensemble.parent().expect("parent")).expect("mkdir");
    fs::write(&ensemble, b"KLCAST\0\0ENSM").expect("write");
    let bad_trained = snapshot(&models.join(persist::TRAINED_DIR));

    let server = common::replay_server(common::sample_klines(900), 600, 600.0, "");
    let log = dir.path().join("log");
    let out = common::stream_command("AVAXUSDT", &server.rest_url(), &server.ws_url(), dir.path())
        .args(["--max-runtime", "3s"])
        .env("KLINECAST_BACKOFF_MS", "50")
        .output()
        .expect("run stream");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for needle in [
        "linear.bin is truncated",
        "svr.bin is not a klinecast model file",
        &format!("knn.bin is format v7, this build reads v{TRAINED_VERSION}"),
        "run `klinecast train` again",
        "cannot use the saved ensemble",
        "EnsembleModel.bin.bad",
    ] {
        assert!(err.contains(needle), "{needle:?} missing from: {err}");
    }
    let ens_log = fs::read_to_string(log.join("ensemble.log")).expect("ensemble.log");
    assert!(
        ens_log.contains("trained members: cart, forest"),
        "{ens_log}"
    );
    assert_eq!(
        snapshot(&models.join(persist::TRAINED_DIR)),
        bad_trained,
        "trained model files changed"
    );
    assert_eq!(
        fs::read(ensemble.with_extension("bin.bad")).expect("moved aside"),
        b"KLCAST\0\0ENSM"
    );
}

/// A real (small) trained model file.
fn model_bytes() -> Vec<u8> {
    let dir = TempDir::new("bad-models-train");
    let data = dir.path().join("AVAXUSDT_1m.csv");
    write_csv(&data, &sample_lines()[..400]);
    let models = dir.path().join("models");
    train_ok(&data, &models);
    fs::read(persist::trained_path(&models, ModelKind::Linear)).expect("read linear.bin")
}

/// A disk that fills up while models are saved (simulated with a file-size limit: writes past
/// 8 KiB fail with EFBIG, as they would with ENOSPC): `train` exits 1 naming the file, and the
/// old set is whole: every old model file byte-identical (none replaced, not even the small ones
/// written before the failure), no temporary file or staging directory left.
/// Backs README claim [C18]: No trained model file is changed by a failed train, a bad input or a full disk.
#[test]
fn full_disk_while_saving_keeps_the_old_models() {
    let dir = TempDir::new("bad-full-disk");
    let data = dir.path().join("AVAXUSDT_1m.csv");
    write_csv(&data, &sample_lines()[..400]);
    let models = dir.path().join("models");
    let first = run(
        &["train", "--seed", "1"],
        &[
            ("--data", data.as_path()),
            ("--models-dir", models.as_path()),
        ],
    );
    assert!(first.status.success(), "train: {}", stderr(&first));
    let before = snapshot(&models);
    assert_eq!(before.len(), ModelKind::ALL.len());

    let mut inner = klinecast_command();
    inner
        .args(["train", "--seed", "2", "--data"])
        .arg(&data)
        .arg("--models-dir")
        .arg(&models);
    // SIGXFSZ ignored (inherited through exec): the write fails with EFBIG instead.
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg("trap '' XFSZ; ulimit -f 16 && exec \"$@\"")
        .arg("sh")
        .arg(inner.get_program())
        .args(inner.get_args());
    let out = cmd.output().expect("run klinecast under a file-size limit");
    assert_fails(
        &out,
        1,
        &[
            "saving model file",
            "svr.bin",
            "File too large",
            "unchanged",
        ],
    );

    // The whole old set, byte for byte: the models written before the disk "filled up" (such as
    // the small linear.bin) went to the staging directory, which is gone, not next to the old.
    let after = snapshot(&models);
    let names = |s: &[(PathBuf, Vec<u8>)]| s.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    assert_eq!(names(&after), names(&before), "a temporary file was left");
    for ((path, old), (_, new)) in before.iter().zip(&after) {
        assert!(old == new, "{} changed", path.display());
    }
    let entries: Vec<String> = fs::read_dir(&models)
        .expect("list models")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        entries,
        [persist::TRAINED_DIR],
        "a staging directory was left"
    );
    assert_eq!(
        persist::load_all_trained(&models).expect("all load").len(),
        ModelKind::ALL.len()
    );
}

/// The same at library level: when the temporary file cannot be written, `write_atomic` fails
/// and the old file is intact.
#[test]
fn failed_atomic_write_keeps_the_old_file() {
    let dir = TempDir::new("bad-write-atomic");
    let path = dir.path().join("linear.bin");
    fs::write(&path, b"old model").expect("write");
    // The temporary file's name is taken by a directory.
    let tmp = dir
        .path()
        .join(format!(".linear.bin.tmp.{}", std::process::id()));
    fs::create_dir(&tmp).expect("mkdir");
    let err = klinecast::fsutil::write_atomic(&path, b"new model").expect_err("cannot write");
    assert!(!err.to_string().is_empty());
    assert_eq!(fs::read(&path).expect("read"), b"old model");
    // A models directory that is a file: the error names the model file.
    let models = dir.path().join("models");
    fs::write(&models, b"not a dir").expect("write");
    let data = dir.path().join("AVAXUSDT_1m.csv");
    write_csv(&data, &sample_lines()[..400]);
    let out = run(
        &["train"],
        &[
            ("--data", data.as_path()),
            ("--models-dir", models.as_path()),
        ],
    );
    assert_fails(&out, 1, &["linear.bin"]);
    assert_eq!(fs::read(&models).expect("read"), b"not a dir");
}

/// Nothing listens on the port: retries, then a network error that says what to check, exit
/// code 1. (Run through the real client with millisecond backoffs: the binary would wait out
/// about 90 s of backoff first.)
#[test]
fn unreachable_host_is_a_clear_runtime_error() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let err = fast_client(&url)
        .server_time()
        .expect_err("nothing listens");
    assert!(
        matches!(err, BinanceError::Network { attempts: 3, .. }),
        "{err:?}"
    );
    let err = klinecast::Error::from(err);
    assert_eq!(err.exit_code(), 1);
    let text = err.to_string();
    for needle in [
        "cannot reach the server after 3 attempts",
        "check the network connection and the base URL",
        &url,
    ] {
        assert!(text.contains(needle), "{text}");
    }
}

/// An https URL whose server does not speak TLS (it answers plain HTTP): the handshake fails on
/// every attempt and the message points at the clock (the usual cause on a Pi), exit code 1.
#[test]
fn tls_failure_is_a_clear_runtime_error() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        for stream in listener.incoming().take(3) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 512];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let err = fast_client(&format!("https://127.0.0.1:{port}"))
        .server_time()
        .expect_err("no TLS there");
    assert!(
        matches!(err, BinanceError::Tls { attempts: 3, .. }),
        "{err:?}"
    );
    let err = klinecast::Error::from(err);
    assert_eq!(err.exit_code(), 1);
    let text = err.to_string();
    for needle in ["TLS handshake failed", "clock", "NTP"] {
        assert!(text.contains(needle), "{text}");
    }
    server.join().expect("server thread");
}

/// Plain http:// and ws:// are refused for anything but loopback, before any connection.
#[test]
fn remote_plain_urls_are_refused() {
    let dir = TempDir::new("bad-plain-url");
    for url in [
        "http://api.binance.com",
        "http://10.0.0.1:8080",
        "http://[2001:db8::1]:80",
        "http://127.0.0.1.nip.io",
    ] {
        let out = run(
            &["collect", "--rest-url", url],
            &[("--data-dir", dir.path())],
        );
        assert_fails(&out, 2, &["only allowed to this machine"]);
    }
    assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 0);
    // `stream` refuses before it creates anything (not even its lock file).
    let data = dir.path().join("data");
    for (flag, url) in [
        ("--ws-url", "ws://stream.binance.com:9443"),
        ("--rest-url", "http://10.1.2.3"),
    ] {
        let out = run(&["stream", flag, url], &[("--data-dir", data.as_path())]);
        assert_fails(&out, 2, &["only allowed to this machine"]);
        assert!(!data.exists(), "stream created {}", data.display());
    }
    for (url, secure, plain) in [
        ("ws://stream.binance.com:9443", "wss", "ws"),
        ("ws://192.168.1.2:9443", "wss", "ws"),
        ("http://example.com", "https", "http"),
    ] {
        let err = tls::check_base_url(url, secure, plain).expect_err(url);
        assert!(
            err.to_string().contains("only allowed to this machine"),
            "{err}"
        );
    }
    for (url, secure, plain) in [
        ("ws://127.0.0.1:9443", "wss", "ws"),
        ("http://localhost:8080", "https", "http"),
        ("http://[::1]:8080", "https", "http"),
        ("wss://stream.binance.com:9443", "wss", "ws"),
    ] {
        tls::check_base_url(url, secure, plain).expect(url);
    }
}

/// There is no switch that turns certificate verification off: no source file builds a
/// verifier of its own or uses rustls' `dangerous` API, and the one client configuration
/// trusts exactly the bundled webpki roots.
/// Backs README claim [C5]: Remote hosts are always TLS-verified against the bundled roots; no switch or variable turns that off.
#[test]
fn no_switch_turns_tls_verification_off() {
    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).expect("list src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    assert!(files.len() > 10);
    for file in files {
        let text = fs::read_to_string(&file).expect("read source");
        for needle in [
            "dangerous(",
            "ServerCertVerifier",
            "NoVerifier",
            "danger_accept",
            "disable_verification",
            "with_custom_certificate_verifier",
        ] {
            assert!(
                !text.contains(needle),
                "{} contains {needle:?}",
                file.display()
            );
        }
    }
    let config = tls::client_config();
    assert!(config.enable_sni);
    let usage = klinecast::cli::USAGE.to_ascii_lowercase();
    for word in ["insecure", "no-verify", "verify"] {
        assert!(!usage.contains(word), "usage mentions {word:?}");
    }
}

/// `klinecast describe | head`: stdout closed by its reader is not a crash. The process exits 0
/// without a panic message (regression: `println!` panicked with "Broken pipe").
#[test]
fn a_closed_stdout_ends_quietly() {
    let mut child = klinecast_command()
        .args(["describe", "--data", SAMPLE])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn describe");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("describe ends");
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}

// ---------------------------------------------------------------------------------------------
// The newer file formats: gbdt and GRU/LSTM model files, the ensemble file v4,
// predictions.csv with lower,upper, and ensemble.jsonl as `report` and `status` read it.
// ---------------------------------------------------------------------------------------------

/// The four damages of a framed file (model or ensemble): cut in half, one payload byte
/// flipped, a future format version, an absurd length field, and (sparse, so nothing is
/// written) a file larger than any klinecast file. Each with the words its message must hold.
fn framed_damages(good: &[u8], future: u32) -> Vec<(&'static str, Vec<u8>, String)> {
    let mut flipped = good.to_vec();
    let at = 24 + (good.len() - 28) / 2;
    flipped[at] ^= 0x10;
    let mut future_version = good.to_vec();
    future_version[12..16].copy_from_slice(&future.to_le_bytes());
    let mut huge_length = good.to_vec();
    huge_length[16..24].copy_from_slice(&(1u64 << 60).to_le_bytes());
    vec![
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            "is truncated".to_string(),
        ),
        ("flipped byte", flipped, "checksum".to_string()),
        (
            "future version",
            future_version,
            format!("is format v{future}, this build reads v{}", future - 1),
        ),
        (
            "absurd length field",
            huge_length,
            "the frame needs 115292150460684".to_string(),
        ),
    ]
}

/// A file of `len` bytes that takes no disk space (a hole after the given bytes).
fn sparse_file(path: &Path, head: &[u8], len: u64) {
    fs::write(path, head).expect("write");
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open")
        .set_len(len)
        .expect("set_len");
}

/// The gbdt, GRU and LSTM model files, truncated, with a flipped byte, of a future format
/// version, with an absurd length field or absurdly large: each refused with the file's name
/// and "run `klinecast train` again", exit code 1, the file untouched; a file larger than
/// any model file is refused without being read.
#[test]
fn bad_gbdt_and_recurrent_model_files_are_refused() {
    let dir = TempDir::new("bad-new-models");
    let data = dir.path().join("AVAXUSDT_1m.csv");
    write_csv(&data, &sample_lines()[..400]);
    let models = dir.path().join("models");
    train_ok(&data, &models);
    for kind in [ModelKind::Gbdt, ModelKind::Gru, ModelKind::Lstm] {
        let path = persist::trained_path(&models, kind);
        let good = fs::read(&path).expect("read the model");
        persist::load_trained(&path).expect("the trained file loads");
        let name = format!("{}.bin", kind.name());
        for (what, bytes, needle) in framed_damages(&good, TRAINED_VERSION + 1) {
            fs::write(&path, &bytes).expect("write the damaged file");
            let err = persist::load_trained(&path).expect_err(what);
            let text = err.to_string();
            for part in [&name, "run `klinecast train` again", &needle] {
                assert!(
                    text.contains(part),
                    "{name} {what}: {part:?} missing: {text}"
                );
            }
            assert_eq!(klinecast::Error::from(err).exit_code(), 1);
            assert_eq!(
                fs::read(&path).expect("read"),
                bytes,
                "{what}: file changed"
            );
        }
        sparse_file(&path, &good[..24], persist::MAX_FILE_BYTES + 1);
        let text = persist::load_trained(&path).expect_err("huge").to_string();
        for part in [
            &name,
            "more than any klinecast file",
            "run `klinecast train`",
        ] {
            assert!(text.contains(part), "{name} huge: {part:?} missing: {text}");
        }
        fs::write(&path, &good).expect("restore");
    }
}

/// A real v4 ensemble file (from a short `stream` run) damaged in each way: `load_ensemble`
/// names `EnsembleModel.bin` and says to delete it so that `stream` starts afresh; `stream`
/// itself moves such a file aside to `EnsembleModel.bin.bad` byte for byte, says so, starts
/// a new ensemble and exits 0 (cron keeps it running); the store and the trained models are
/// unchanged.
#[test]
fn bad_v4_ensemble_files_are_moved_aside_and_a_new_one_starts() {
    let dir = TempDir::new("bad-ensemble-v4");
    let (models, store) = trained_on_600_rows(&dir);
    let server = common::replay_server(common::sample_klines(900), 600, 600.0, "");
    let stream = |seconds: &str| {
        common::stream_command("AVAXUSDT", &server.rest_url(), &server.ws_url(), dir.path())
            .args(["--max-runtime", seconds])
            .env("KLINECAST_BACKOFF_MS", "50")
            .output()
            .expect("run stream")
    };
    let out = stream("3s");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let path = persist::ensemble_path(&models);
    let good = fs::read(&path).expect("the saved ensemble");
    assert_eq!(
        u32::from_le_bytes([good[12], good[13], good[14], good[15]]),
        persist::ENSEMBLE_FILE_VERSION
    );
    let future = persist::ENSEMBLE_FILE_VERSION + 1;
    for (what, bytes, needle) in framed_damages(&good, future) {
        fs::write(&path, &bytes).expect("write the damaged file");
        let err = persist::load_ensemble(&path).expect_err(what);
        let text = err.to_string();
        for part in [
            "ensemble file",
            "EnsembleModel.bin",
            "delete it so that `klinecast stream` starts a fresh ensemble",
            &needle,
        ] {
            assert!(text.contains(part), "{what}: {part:?} missing: {text}");
        }
        assert_eq!(klinecast::Error::from(err).exit_code(), 1);
    }
    sparse_file(&path, &good[..24], persist::MAX_FILE_BYTES + 1);
    let text = persist::load_ensemble(&path).expect_err("huge").to_string();
    assert!(text.contains("more than any klinecast file"), "{text}");

    // `stream` meets a file of a future version: moved aside whole, a new ensemble starts.
    let (_, bytes, _) = framed_damages(&good, future).swap_remove(2);
    fs::write(&path, &bytes).expect("write v5");
    let trained = snapshot(&models.join(persist::TRAINED_DIR));
    let out = stream("2s");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for needle in [
        "cannot use the saved ensemble",
        &format!("is format v{future}, this build reads v{}", future - 1),
        "EnsembleModel.bin.bad",
    ] {
        assert!(err.contains(needle), "{needle:?} missing from: {err}");
    }
    assert_eq!(
        fs::read(path.with_extension("bin.bad")).expect("moved aside"),
        bytes
    );
    persist::load_ensemble(&path).expect("a new ensemble was saved");
    assert_eq!(snapshot(&models.join(persist::TRAINED_DIR)), trained);
    assert_store_kept(&store);
}

/// `predictions.csv` that `stream` cannot append to: a header of another (future) version, a
/// last row with a flipped byte, a last line far longer than any row, a foreign file. It is
/// moved aside whole to `predictions.damaged.csv` (byte for byte, never overwriting an earlier
/// one), a new file starts, and `stream` goes on (exit 0: under cron a stop would repeat every
/// minute); the warning names the file, why, and where it went. A torn last row (a kill) is not
/// damage: it is cut and the file goes on.
#[test]
fn damaged_predictions_csv_is_moved_aside_and_stream_goes_on() {
    use klinecast::live::predictions::{PredictionLog, HEADER};
    let dir = TempDir::new("bad-predictions");
    let path = dir.path().join("predictions.csv");
    let row = "1600000060000,12.5,12.4,3,1600000000000,12.3,12.7";
    let future_header = format!("{HEADER},median");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "future header",
            format!("{future_header}\n{row},12.5\n"),
            "is not the header this build writes",
        ),
        (
            "flipped byte in the last row",
            format!("{HEADER}\n{row}\n{}\n", row.replacen("12.5", "12\u{5}5", 1)),
            "is not a prediction row",
        ),
        (
            "absurdly long last line",
            format!("{HEADER}\n{row}\n{}\n", "9".repeat(1 << 20)),
            "longer than 4096 bytes",
        ),
        (
            "not ours at all",
            "\u{7f}ELF\n".to_string(),
            "is not the header",
        ),
        (
            "not ours, without a newline (not taken for a torn line)",
            "\u{7f}ELF\u{1}\u{2}".to_string(),
            "is not the header",
        ),
    ];
    for (n, (what, text, needle)) in cases.iter().enumerate() {
        fs::write(&path, text).expect("write");
        let log = PredictionLog::open(&path).expect(what);
        let moved = log.moved_aside().expect("moved aside").clone();
        assert!(moved.why.contains(needle), "{what}: {}", moved.why);
        assert!(
            moved.why.len() < 400,
            "{what}: quotes too much: {}",
            moved.why
        );
        let to = match n {
            0 => "predictions.damaged.csv".to_string(),
            _ => format!("predictions.damaged.{n}.csv"),
        };
        assert_eq!(moved.to, dir.path().join(to), "{what}");
        assert_eq!(
            fs::read_to_string(&moved.to).expect("moved"),
            *text,
            "{what}"
        );
        assert_eq!(log.last_target(), None, "{what}");
        assert_eq!(
            fs::read_to_string(&path).expect("new"),
            format!("{HEADER}\n"),
            "{what}"
        );
    }
    // A torn last row is cut (crash repair), the file goes on, nothing is moved.
    fs::write(&path, format!("{HEADER}\n{row}\n1600000120000,12.")).expect("write");
    let log = PredictionLog::open(&path).expect("a torn tail is repaired");
    assert_eq!(log.last_target(), Some(1_600_000_060_000));
    assert!(log.moved_aside().is_none());
    drop(log);
    // So is a header torn by a kill while a new file was started.
    fs::write(&path, &HEADER[..11]).expect("write");
    let log = PredictionLog::open(&path).expect("a torn header is repaired");
    assert!(log.moved_aside().is_none());
    assert_eq!(
        fs::read_to_string(&path).expect("read"),
        format!("{HEADER}\n")
    );
    drop(log);

    // The same met by `stream`: it goes on, the damaged file is kept, forecasts start anew.
    let root = TempDir::new("bad-predictions-stream");
    let data = root.path().join("data");
    fs::create_dir_all(&data).expect("mkdir");
    let store = data.join("AVAXUSDT_1m.csv");
    write_csv(&store, &sample_lines()[..600]);
    let text = &cases[0].1;
    fs::write(data.join("predictions.csv"), text).expect("write");
    let server = common::replay_server(common::sample_klines(900), 600, 1e9, "");
    let out = common::stream_command(
        "AVAXUSDT",
        &server.rest_url(),
        &server.ws_url(),
        root.path(),
    )
    .env("KLINECAST_MAX_KLINES", "20")
    .env("KLINECAST_BACKOFF_MS", "50")
    .output()
    .expect("run stream");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fs::read_to_string(data.join("predictions.damaged.csv")).expect("moved aside"),
        *text
    );
    let rows = common::check_predictions(&data.join("predictions.csv"), 1);
    // One forecast after the last stored kline, then one after each of the 20 new ones.
    assert_eq!(rows.len(), 21);
    let logs = log_texts(&root.path().join("log"));
    assert!(
        logs.contains("predictions.csv its first line")
            && logs.contains("is not the header this build writes")
            && logs.contains("predictions.damaged.csv and started a new file"),
        "{logs}"
    );
}

/// Every `*.log` under `dir`, concatenated.
fn log_texts(dir: &Path) -> String {
    let mut text = String::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return text;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            text.push_str(&log_texts(&path));
        } else if path.extension().is_some_and(|e| e == "log") {
            text.push_str(&fs::read_to_string(&path).unwrap_or_default());
        }
    }
    text
}

/// `report` and `status` over a run whose `ensemble.jsonl` holds a torn line, a line with a
/// flipped byte and a line of another program, and whose `predictions.csv` holds an
/// unreadable row: `report` still prints the scoreboard of the good lines (exit 0) and warns,
/// naming each file, how many lines it skipped, the first one, and what to do; `status` gives
/// its verdict without a panic; no file is changed. A file of an absurd size is refused by
/// `report` by name, unread, and `status` reads only its end.
#[test]
fn report_and_status_skip_damaged_lines_and_say_so() {
    use klinecast::live::predictions::HEADER;
    let dir = TempDir::new("bad-report");
    let data = dir.path().join("data");
    let log = dir.path().join("log");
    fs::create_dir_all(&data).expect("mkdir");
    fs::create_dir_all(&log).expect("mkdir");
    let lines = sample_lines();
    write_csv(&data.join("AVAXUSDT_1m.csv"), &lines[..200]);
    let open_time = |i: usize| -> i64 {
        lines[i]
            .split(',')
            .next()
            .and_then(|t| t.parse().ok())
            .expect("open time")
    };
    let window = |i: usize| {
        format!(
            concat!(
                r#"{{"first_open_time":{},"last_open_time":{},"forecasters":["#,
                r#"{{"label":"ensemble","n":5,"rmse":0.02,"mae":0.01,"directional":0.6}},"#,
                r#"{{"label":"naive","n":5,"rmse":0.025,"mae":0.012,"directional":null}}],"#,
                r#""generations":1,"pool_size":2,"#,
                r#""refit":{{"added":{{"evicted":[],"generation":1,"rows":100}}}},"#,
                r#""trained":1,"version":3,"window":0,"#,
                r#""weights":[{{"label":"naive","n_scored":5,"skill":null,"weight":1.0}}]}}"#
            ),
            open_time(i),
            open_time(i + 4)
        )
    };
    let good = window(100);
    let flipped = window(105).replacen("\"n\":5", "\"n\"\u{1a}5", 1);
    let jsonl = format!(
        "{good}\n{}\n{flipped}\nhello from another program\n{}\n{}",
        &good[..40],
        window(110),
        &good[..30]
    );
    fs::write(log.join("ensemble.jsonl"), &jsonl).expect("write");
    let mut predictions = format!("{HEADER}\n");
    for (i, line) in lines.iter().enumerate().take(110).skip(100) {
        let close: &str = line.split(',').nth(4).expect("close");
        predictions.push_str(&format!(
            "{},{close},{close},1,{},{close},{close}\n",
            open_time(i + 1),
            open_time(i)
        ));
    }
    predictions.push_str("1600000,not-a-number,1,1,1,1,1\n");
    fs::write(data.join("predictions.csv"), &predictions).expect("write");
    let before = snapshot(dir.path());

    let out = run(
        &["report"],
        &[("--data-dir", data.as_path()), ("--log-dir", log.as_path())],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("10 forecasts, 2 windows"), "{stdout}");
    for needle in [
        "ensemble.jsonl: 3 of 5 lines are not window reports and were skipped (the first is line 2)",
        "predictions.csv: 1 of 11 lines are not prediction rows and were skipped (the first is line 12)",
        "move the file away",
    ] {
        assert!(err.contains(needle), "{needle:?} missing from: {err}");
    }
    let out = run(
        &["status"],
        &[("--data-dir", data.as_path()), ("--log-dir", log.as_path())],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "not running: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("klinecast stream --data-dir"), "{err}");
    assert_eq!(
        snapshot(dir.path()),
        before,
        "report or status changed a file"
    );

    // Absurd sizes (sparse files, nothing written): an ensemble.jsonl whose last line is 2 GiB
    // long is not read by `status` (it reads the last MiB), and `report` refuses it by name
    // (exit 1) without reading it. Both run with their address space capped at 1 GiB, where
    // reading the file would abort them (not under emulation: qemu needs more than that).
    sparse_file(&log.join("ensemble.jsonl"), jsonl.as_bytes(), 2 << 30);
    let capped = |command: &str| {
        let emulated = std::env::var("KLINECAST_TEST_RUNNER").is_ok_and(|r| !r.trim().is_empty());
        let mut inner = klinecast_command();
        inner
            .arg(command)
            .arg("--data-dir")
            .arg(&data)
            .arg("--log-dir")
            .arg(&log);
        if emulated {
            return inner.output().expect("run klinecast");
        }
        std::process::Command::new("sh")
            .arg("-c")
            .arg("ulimit -v 1048576 && exec \"$@\"")
            .arg("sh")
            .arg(inner.get_program())
            .args(inner.get_args())
            .output()
            .expect("run klinecast with a memory cap")
    };
    let out = capped("status");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"));
    let out = capped("report");
    assert_fails(
        &out,
        1,
        &[
            "ensemble.jsonl is 2147483648 bytes, more than `report` reads",
            "move the file away",
        ],
    );
}
