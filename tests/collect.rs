//! Process-level tests of `klinecast collect`: usage errors exit 2 before any network use, and
//! a real `klinecast collect` process backfills from a `klinecast replay-server` (and from an
//! in-process replay server with injected faults), survives `kill -9` and resumes to exactly
//! the rows of the source file. Loopback only.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{partial_candle, KillOnDrop, TempDir, SAMPLE};

use klinecast::kline::CSV_HEADER;
use klinecast::replay::{Faults, ReplayServer};
use klinecast::store;

fn collect(rest_url: &str, data_dir: &Path, extra: &[&str]) -> Command {
    let mut cmd = common::klinecast_command();
    cmd.args(["collect", "--symbol", "AVAXUSDT", "--interval", "1m"])
        .args(["--start", "2026-07-01", "--rest-url", rest_url])
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .env_remove("KLINECAST_REST_URL");
    cmd
}

fn run(mut cmd: Command) -> Output {
    cmd.output().expect("run klinecast")
}

/// The stored file must be the sample's header and first rows, byte for byte; returns the row
/// count.
fn assert_prefix_of_sample(path: &Path) -> usize {
    let stored = std::fs::read_to_string(path).expect("read stored file");
    let sample = std::fs::read_to_string(SAMPLE).expect("read sample");
    assert!(stored.starts_with(&format!("{CSV_HEADER}\n")));
    assert!(stored.ends_with('\n'), "stored file ends mid-line");
    assert!(
        sample.starts_with(&stored),
        "{} is not a prefix of the sample",
        path.display()
    );
    stored.lines().count() - 1
}

#[test]
fn usage_errors_exit_2_without_network() {
    let dir = TempDir::new("collect-usage");
    for (args, needle) in [
        (&["collect", "--symbol", "../x"][..], "invalid symbol"),
        (&["collect", "--symbol", "a/b"], "invalid symbol"),
        (&["collect", "--interval", "7m"], "invalid interval"),
        (
            &["collect", "--rest-url", "http://api.binance.com"],
            "only allowed to this machine",
        ),
        (&["collect", "--rest-url", "ftp://127.0.0.1:1"], "scheme"),
    ] {
        let out = run({
            let mut c = common::klinecast_command();
            c.args(args).arg("--data-dir").arg(dir.path());
            c
        });
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    // Nothing was written for the refused symbol.
    assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
}

#[test]
fn collect_against_the_replay_server_process() {
    let dir = TempDir::new("collect-e2e");
    // The replay server needs a <SYMBOL>_<interval>.csv name: the sample already has one.
    let (_server, rest) = common::spawn_replay_server(&[
        "--data",
        SAMPLE,
        "--start-row",
        "20000",
        "--speed",
        "60",
        "--faults",
        "429-every=8,500-every=9,torn-every=10",
    ]);
    let data_dir = dir.join("data");
    let out = run(collect(&rest, &data_dir, &[]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {stderr}\nstdout: {stdout}"
    );
    let path = data_dir.join("AVAXUSDT_1m.csv");
    let rows = assert_prefix_of_sample(&path);
    assert!(rows >= 20_000, "only {rows} rows");
    assert!(stdout.contains(&format!("added {rows} rows")), "{stdout}");
    // The injected 429, 500 and torn bodies were retried and said so.
    assert!(stderr.contains("429"), "{stderr}");
    assert!(stderr.contains("HTTP 500"), "{stderr}");
    // A torn body is a connection closed mid-body.
    assert!(stderr.contains("Peer disconnected"), "{stderr}");
    // A second run resumes: it only adds what closed since, and the file stays a prefix.
    std::thread::sleep(Duration::from_millis(1500));
    let out = run(collect(&rest, &data_dir, &[]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let more = assert_prefix_of_sample(&path);
    assert!(more > rows, "{more} <= {rows}");
    // An end date stops early; a symbol the server does not know is a Binance API error.
    let out = run(collect(&rest, &dir.join("other"), &["--end", "2026-07-02"]));
    assert_eq!(out.status.code(), Some(0));
    let klines = store::load_klines(&dir.join("other/AVAXUSDT_1m.csv")).expect("load");
    assert_eq!(klines.len(), 1440);
    let mut cmd = common::klinecast_command();
    cmd.args(["collect", "--symbol", "BTCUSDT", "--rest-url", &rest])
        .arg("--data-dir")
        .arg(&data_dir);
    let out = run(cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("-1121"), "{stderr}");
}

/// `collect --symbols` of three symbols against one replay server serving two of them
/// (`--data A.csv,B.csv`, with 429s and 500s): both served stores are filled byte for byte from
/// their sources through one REST client, the unknown symbol between them is named with
/// Binance's -1121 and does not stop the next one, and the run exits 1 naming it.
#[test]
fn collect_symbols_fills_each_store_byte_exact_and_names_the_unknown_one() {
    let dir = TempDir::new("collect-symbols");
    let sources = dir.join("sources");
    std::fs::create_dir_all(&sources).expect("mkdir");
    let avax = std::fs::read_to_string(SAMPLE).expect("read sample");
    let avax: String = avax.lines().take(3001).map(|l| format!("{l}\n")).collect();
    let avax_path = sources.join("AVAXUSDT_1m.csv");
    std::fs::write(&avax_path, &avax).expect("write");
    // BTCUSDT 1m of January 2020: wholly before the clock (set by the first file), so all served.
    let btc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/BTCUSDT_1m.csv");
    let data = format!("{},{}", avax_path.display(), btc_path.display());
    let (_server, rest) = common::spawn_replay_server(&[
        "--data",
        &data,
        "--start-row",
        "2500",
        "--faults",
        "429-every=7,500-every=11",
    ]);
    let data_dir = dir.join("data");
    let mut cmd = common::klinecast_command();
    cmd.args(["collect", "--symbols", "AVAXUSDT,NOPEUSDT,BTCUSDT"])
        .args(["--start", "2020-01-01", "--rest-url", &rest])
        .arg("--data-dir")
        .arg(&data_dir)
        .env_remove("KLINECAST_REST_URL");
    let out = run(cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("klinecast: error: NOPEUSDT 1m: ") && stderr.contains("-1121"),
        "{stderr}"
    );
    assert!(
        stderr.contains("collect failed for 1 of 3 symbols: NOPEUSDT"),
        "{stderr}"
    );
    // Its store, created by this run and never filled, is not left behind.
    assert!(!data_dir.join("NOPEUSDT_1m.csv").exists());
    // The still-open kline at row 2500 (and the one that closed less than 2 s before) is not
    // stored: the store is the source's first rows, byte for byte.
    let stored = std::fs::read_to_string(data_dir.join("AVAXUSDT_1m.csv")).expect("read");
    assert!(
        avax.starts_with(&stored),
        "AVAXUSDT is not a prefix of its source"
    );
    let rows = stored.lines().count() - 1;
    assert!(rows >= 2499, "{rows}");
    assert_eq!(
        std::fs::read(data_dir.join("BTCUSDT_1m.csv")).expect("read"),
        std::fs::read(&btc_path).expect("read source"),
        "BTCUSDT store differs from its source"
    );
}

/// Backs README claim [C4]: A collect killed at any moment and rerun leaves the same bytes as one uninterrupted run.
#[test]
fn kill_9_then_rerun_gives_the_same_bytes() {
    let dir = TempDir::new("collect-kill");
    let server = common::replay_server(
        common::sample_klines(usize::MAX),
        12_000,
        1.0,
        "slow-ms=150",
    );
    let rest = server.rest_url();
    let data_dir = dir.join("data");
    let path = data_dir.join("AVAXUSDT_1m.csv");
    // Kill the collector at a few different moments, each time after some pages landed.
    for round in 0..3u64 {
        let child = collect(&rest, &data_dir, &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start collect");
        let mut child = KillOnDrop(child);
        let before = std::fs::metadata(&path).map_or(0, |m| m.len());
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::fs::metadata(&path).map_or(0, |m| m.len()) <= before + round * 7_000 {
            assert!(Instant::now() < deadline, "collect made no progress");
            std::thread::sleep(Duration::from_millis(5));
        }
        child.0.kill().expect("kill -9");
        let _ = child.0.wait();
    }
    // Whatever the kills left (possibly a torn last line), a rerun completes the file.
    server.set_faults(Faults::default());
    let out = run(collect(&rest, &data_dir, &[]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let rows = assert_prefix_of_sample(&path);
    // At 1× the kline before row 12,000 may have closed less than SETTLE_MS ago: not yet stored.
    assert!(rows >= 11_999, "{rows}");
    // Same bytes as one uninterrupted run against the same server.
    let fresh = dir.join("fresh");
    let out = run(collect(&rest, &fresh, &[]));
    assert_eq!(out.status.code(), Some(0));
    let fresh_rows = assert_prefix_of_sample(&fresh.join("AVAXUSDT_1m.csv"));
    let out = run(collect(&rest, &data_dir, &[]));
    assert_eq!(out.status.code(), Some(0));
    let rows = assert_prefix_of_sample(&path);
    assert!(rows >= fresh_rows);
    server.shutdown();
}

/// A replay server over the sample whose clock starts at row 2,500 and runs at 120× (two
/// virtual minutes per real second), with `faults`.
fn boundary_server(faults: &str) -> ReplayServer {
    common::replay_server(common::sample_klines(usize::MAX), 2_500, 120.0, faults)
}

/// Regression for "collect stores a still-open candle" (README: "a kline is stored only if the
/// server time taken before its page was requested is past its close time"): the time request
/// after the last page answers 429 (Retry-After 1 s = two virtual minutes), so the candle that
/// was open when that page was served has closed by the time the retry is answered. Before the
/// fix its partial values were stored as the last row; now every stored row is the sample's.
/// Backs README claim [C2]: A kline is stored only if the server time taken before its page proves it closed, even with a 429 on the time request or a slow answer across the minute boundary.
#[test]
fn a_429_on_the_time_request_never_stores_the_open_candle() {
    let dir = TempDir::new("collect-time429");
    let server = boundary_server("time-429-every=2,retry-after=1");
    let data_dir = dir.join("data");
    let out = run(collect(&server.rest_url(), &data_dir, &[]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("429"), "the fault did not fire: {stderr}");
    let rows = assert_prefix_of_sample(&data_dir.join("AVAXUSDT_1m.csv"));
    assert!(rows >= 2_499, "{rows}");
    server.shutdown();
}

/// Regression for "collect stores a still-open candle": every klines answer arrives 0.7 real
/// seconds (84 virtual seconds) after its page was taken, so the last page's open candle has
/// closed by the time the page arrives. It must still never be stored.
/// Backs README claim [C2]: A kline is stored only if the server time taken before its page proves it closed, even with a 429 on the time request or a slow answer across the minute boundary.
#[test]
fn a_slow_answer_across_the_minute_boundary_never_stores_the_open_candle() {
    let dir = TempDir::new("collect-slow");
    let server = boundary_server("slow-ms=700");
    let data_dir = dir.join("data");
    let started = Instant::now();
    let out = run(collect(&server.rest_url(), &data_dir, &[]));
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let rows = assert_prefix_of_sample(&data_dir.join("AVAXUSDT_1m.csv"));
    assert!(rows >= 2_499, "{rows}");
    // The fault fired: every klines answer (at least one per 1000 rows) was held back 0.7 s,
    // so the run lasted at least that long per answer (a lower bound: a slow machine only
    // adds to it).
    let pages = server.klines_requests();
    assert!(pages >= 3, "{pages} klines requests for {rows} rows");
    assert!(
        elapsed >= Duration::from_millis(700) * pages as u32,
        "{pages} klines answers in {elapsed:?}: the slow-ms fault did not fire"
    );
    server.shutdown();
}

/// README: "`collect` and `stream` check the newest stored klines against REST when they start
/// and repair a difference, logging both versions". A store left by an older version with a
/// partial candle as its last row is repaired, and the rerun continues after it.
/// Backs README claim [C3]: collect and stream check the newest stored klines against REST at start and repair a difference, logging both versions.
#[test]
fn a_planted_partial_row_is_repaired_at_start_and_logged() {
    let dir = TempDir::new("collect-repair");
    let server = boundary_server("");
    let sample = store::load_klines(Path::new(SAMPLE)).expect("sample");
    let good = &sample[1000];
    let planted = partial_candle(good);
    let data_dir = dir.join("data");
    std::fs::create_dir_all(&data_dir).expect("mkdir");
    let path = data_dir.join("AVAXUSDT_1m.csv");
    let mut text = format!("{CSV_HEADER}\n");
    for k in sample[..1000].iter().chain(std::iter::once(&planted)) {
        text.push_str(&k.to_csv_line());
        text.push('\n');
    }
    std::fs::write(&path, text).expect("plant");
    let out = run(collect(&server.rest_url(), &data_dir, &[]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("stored:  {}", planted.to_csv_line()))
            && stderr.contains(&format!("binance: {}", good.to_csv_line())),
        "{stderr}"
    );
    let rows = assert_prefix_of_sample(&path);
    assert!(rows >= 2_499, "{rows}");
    server.shutdown();
}
