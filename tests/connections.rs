//! Process-level tests of `klinecast stream` past the per-connection stream limit (issue 22: "a
//! second connection only past 1024 streams"), against the in-process replay server on
//! 127.0.0.1 with the limit lowered to 2 on both sides (`KLINECAST_WS_MAX_STREAMS=2` for the
//! client, `ReplayServer::set_max_streams` for the server, which closes a connection asking
//! for more): three symbols go over exactly two connections, one of them dropped reconnects
//! alone while the other keeps delivering, every store is its source byte for byte and every
//! symbol's forecasts are whole, each target once. And the knob's bad values exit 2.

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use klinecast::kline::{Kline, Symbol};

mod common;

use common::{
    check_predictions, csv_text, seed_store, stored_rows, wait_showing, wait_success, TempDir,
};

/// The three symbols, in the order given to `--symbols`: with two streams per connection,
/// AVAXUSDT and ETHUSDT share connection 1 and BNBUSDT has connection 2.
const SYMBOLS: [&str; 3] = ["AVAXUSDT", "ETHUSDT", "BNBUSDT"];

/// The three symbols' series ([`common::symbol_sources`]).
fn sources(n: usize) -> Vec<Vec<Kline>> {
    common::symbol_sources(SYMBOLS.len(), n)
}

/// Backs README claim [C26]: past the per-connection limit, exactly `ceil(n/limit)`
/// connections; a lost one reconnects alone; every store exact.
/// Three symbols, at most two streams per connection on both sides: exactly two connections
/// open at once (never more), `[AVAXUSDT, ETHUSDT]` combined and `BNBUSDT` raw. The server
/// drops connection 1 once mid-run: it reconnects alone (connection 2 is never lost or
/// reconnected, and BNBUSDT is never filled over REST after that, so all its later klines came
/// over connection 2), and the run ends at its kline limit with every store its source byte
/// for byte and every symbol's forecasts whole, each target once.
#[test]
fn three_symbols_two_per_connection_use_two_connections_and_one_reconnects_alone() {
    let tmp = TempDir::new("connections-two");
    let root = tmp.path();
    let (history, new) = (600, 80);
    let served = sources(history + new + 3000);
    let stores: Vec<PathBuf> = SYMBOLS
        .iter()
        .zip(&served)
        .map(|(s, k)| seed_store(root, s, &k[..history]))
        .collect();
    let series: Vec<(&str, Vec<Kline>)> = SYMBOLS
        .iter()
        .zip(&served)
        .map(|(s, k)| (*s, k.clone()))
        .collect();
    // 100 real ms a minute; pings every 300 ms keep quiet sockets alive.
    let srv = Arc::new(common::replay_server_of(
        &series,
        history,
        600.0,
        "ping-ms=300",
    ));
    srv.set_max_streams(2);
    // Watch how many connections are open at once, all along.
    let done = Arc::new(AtomicBool::new(false));
    let most = Arc::new(AtomicU64::new(0));
    let watcher = {
        let (srv, done, most) = (Arc::clone(&srv), Arc::clone(&done), Arc::clone(&most));
        thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                most.fetch_max(srv.ws_open(), Ordering::SeqCst);
                thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let mut cmd =
        common::quick_stream_command(&SYMBOLS.join(","), &srv.rest_url(), &srv.ws_url(), root);
    cmd.env("KLINECAST_WS_MAX_STREAMS", "2")
        .env("KLINECAST_WS_IDLE_MS", "5000")
        .env("KLINECAST_MAX_KLINES", new.to_string());
    // The clock stands still until both connections are open, so however slow the start,
    // the klines come over the sockets, not all over REST before the drop.
    srv.pause_clock();
    let child = cmd.spawn().expect("spawn stream");
    let stream_log = root.join("log").join("stream.log");
    wait_showing(
        &stream_log,
        Duration::from_secs(120),
        "two connections",
        || srv.ws_open() == 2,
    );
    srv.resume_clock();
    let least = || stores.iter().map(|p| stored_rows(p)).min().unwrap_or(0);
    wait_showing(
        &stream_log,
        Duration::from_secs(120),
        "klines from both connections",
        || least() >= history + 15,
    );
    assert_eq!(srv.ws_sessions(), 2, "two sessions so far");
    let bnb_before = stored_rows(&stores[2]);
    let log_before = fs::read_to_string(&stream_log).expect("stream.log");
    assert!(srv.drop_connections_of(&Symbol::parse("ETHUSDT").expect("symbol")));
    wait_showing(
        &stream_log,
        Duration::from_secs(60),
        "connection 1 to reconnect",
        || srv.ws_sessions() == 3 && srv.ws_open() == 2,
    );
    let out = wait_success(child, Duration::from_secs(300));
    done.store(true, Ordering::SeqCst);
    watcher.join().expect("watcher");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("stream stopped (KlineLimit)"), "{stdout}");
    let log = fs::read_to_string(&stream_log).expect("stream.log");

    // Exactly two connections open at once, three sessions in all (the reconnect of 1).
    assert_eq!(most.load(Ordering::SeqCst), 2, "{log}");
    assert_eq!(srv.ws_open_peak(), 2, "{log}");
    assert_eq!(srv.ws_sessions(), 3, "{log}");
    for line in [
        "/stream?streams=avaxusdt@kline_1m/ethusdt@kline_1m (2 streams on connection 1 of 2, at \
         most 2 per connection)",
        "/ws/bnbusdt@kline_1m (1 streams on connection 2 of 2, at most 2 per connection)",
        "connected (1 connects so far) [ws 1/2]",
        "connected (2 connects so far) [ws 2/2]",
        "connected (3 connects so far) [ws 1/2]",
    ] {
        assert!(log.contains(line), "stream.log lacks {line:?}:\n{log}");
    }
    // Connection 1 was lost once; connection 2 never.
    let lost = |tag: &str| {
        log.lines()
            .filter(|l| l.contains("connection lost: ") && l.ends_with(tag))
            .count()
    };
    assert_eq!((lost("[ws 1/2]"), lost("[ws 2/2]")), (1, 0), "{log}");
    assert_eq!(log.matches("connected (").count(), 3, "{log}");
    // BNBUSDT went on on connection 2: no REST fill of it after the drop, and it grew.
    let after = log
        .strip_prefix(log_before.as_str())
        .expect("the log grows");
    for not in [
        "gap fill: BNBUSDT",
        "BNBUSDT 1m: final for",
        "BNBUSDT 1m: update for",
    ] {
        assert!(!after.contains(not), "{not:?} after the drop:\n{after}");
    }
    assert!(
        bnb_before < history + new,
        "the drop came before BNBUSDT's end"
    );

    // Every store is its source byte for byte, each with exactly `new` new klines; every
    // symbol's forecasts ascend by one minute with no duplicate, one after each kline.
    for ((symbol, path), src) in SYMBOLS.iter().zip(&stores).zip(&served) {
        assert_eq!(
            fs::read_to_string(path).expect("the store"),
            csv_text(&src[..history + new]),
            "{symbol}: the store is not its source; stream.log:\n{log}"
        );
        let predictions = root
            .join("data")
            .join(format!("{symbol}_1m"))
            .join("predictions.csv");
        let rows = check_predictions(&predictions, 1);
        assert_eq!(rows.len(), new + 1, "{symbol}");
        assert_eq!(rows[0].target_open_time, src[history].open_time, "{symbol}");
        assert_eq!(
            rows.last().map(|r| r.made_after_open_time),
            Some(src[history + new - 1].open_time),
            "{symbol}"
        );
    }
}

/// `KLINECAST_WS_MAX_STREAMS` outside 1..=1024 is a configuration error: exit 2 naming the
/// variable, before anything is written (no data directory is made).
#[test]
fn a_bad_streams_per_connection_knob_exits_2() {
    let tmp = TempDir::new("connections-knob");
    for bad in ["0", "1025", "two", ""] {
        let root = tmp.path().join(format!("run-{}", bad.len()));
        let out = common::stream_command(
            "AVAXUSDT,ETHUSDT",
            "http://127.0.0.1:9",
            "ws://127.0.0.1:9",
            &root,
        )
        .env("KLINECAST_WS_MAX_STREAMS", bad)
        .output()
        .expect("run stream");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {stderr}");
        assert!(
            stderr.contains(&format!("KLINECAST_WS_MAX_STREAMS={bad:?} is invalid"))
                && stderr.contains("from 1 to 1024"),
            "{bad:?}: {stderr}"
        );
        assert!(!root.join("data").exists(), "{bad:?}: nothing written");
    }
    // The replay server reads the same knob the same way.
    let data = tmp.path().join("AVAXUSDT_1m.csv");
    fs::write(&data, csv_text(&common::sample_klines(10))).expect("write the data");
    let out = common::klinecast_command()
        .arg("replay-server")
        .arg("--data")
        .arg(&data)
        .env("KLINECAST_WS_MAX_STREAMS", "0")
        .output()
        .expect("run replay-server");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("KLINECAST_WS_MAX_STREAMS=\"0\" is invalid"),
        "{stderr}"
    );
}
