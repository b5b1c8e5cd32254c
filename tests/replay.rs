//! Process-level tests of the replay server (`klinecast::replay`): REST layout, limits and
//! errors, gaps, the open candle, the virtual clock, every fault switch, the WebSocket events,
//! and the `klinecast replay-server` command. Only 127.0.0.1 is contacted.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

mod common;

use common::TempDir;

use klinecast::kline::{Interval, Kline, Symbol, CSV_HEADER};
use klinecast::replay::{Faults, ReplayServer, ReplaySetup, Series};
use serde_json::Value;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// The first `n` data lines of the real sample file.
fn csv_lines(n: usize) -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/AVAXUSDT_1m.csv");
    let file = std::fs::File::open(path).expect("sample data file");
    BufReader::new(file)
        .lines()
        .skip(1)
        .take(n)
        .map(|l| l.expect("readable line"))
        .collect()
}

fn parse(lines: &[String]) -> Vec<Kline> {
    lines
        .iter()
        .map(|l| Kline::from_csv_line(l).expect("valid sample line"))
        .collect()
}

/// A line with no trades: volumes zero, all prices equal to the open.
fn no_trade(line: &str) -> String {
    let f: Vec<&str> = line.split(',').collect();
    format!(
        "{},{o},{o},{o},{o},0,{},0.0000,0,0,0.0000",
        f[0],
        f[6],
        o = f[1]
    )
}

fn start(lines: &[String], start_row: usize, speed: f64, faults: &str) -> ReplayServer {
    common::replay_server(parse(lines), start_row, speed, faults)
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("json body")
    }
}

fn read_head(reader: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>) {
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header line");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').expect("header");
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    (status, headers)
}

/// A tiny HTTP/1.1 GET with `Connection: close`; returns the full answer.
fn get(addr: SocketAddr, target: &str) -> Resp {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut reader = BufReader::new(stream);
    let (status, headers) = read_head(&mut reader);
    let mut body = String::new();
    reader.read_to_string(&mut body).expect("body");
    Resp {
        status,
        headers,
        body,
    }
}

fn klines_path(query: &str) -> String {
    format!("/api/v3/klines?symbol=AVAXUSDT&interval=1m{query}")
}

/// The Binance REST row for a CSV line, built independently of the server's code.
fn expected_row(line: &str) -> String {
    let f: Vec<&str> = line.split(',').collect();
    format!(
        "[{},\"{}\",\"{}\",\"{}\",\"{}\",\"{}\",{},\"{}\",{},\"{}\",\"{}\",\"0\"]",
        f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10]
    )
}

fn wait_for_end(server: &ReplayServer, end: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.now_ms() < end {
        assert!(
            Instant::now() < deadline,
            "virtual clock never reached {end}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn klines_rows_are_binance_arrays_with_source_decimals() {
    let lines = csv_lines(30);
    let server = start(&lines, 20, 1e-6, "");
    let t0: i64 = lines[3].split(',').next().expect("t").parse().expect("ms");
    let r = get(
        server.local_addr(),
        &klines_path(&format!("&startTime={t0}&limit=5")),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Type"),
        Some("application/json;charset=UTF-8")
    );
    let expected: Vec<String> = lines[3..8].iter().map(|l| expected_row(l)).collect();
    assert_eq!(r.body, format!("[{}]", expected.join(",")));
    let rows = r.json();
    let row = &rows[0];
    assert!(row[0].is_i64() && row[6].is_i64() && row[8].is_u64());
    assert!(row[1].is_string() && row[11] == Value::String("0".into()));
    assert_eq!(row.as_array().map(|a| a.len()), Some(12));
    assert_eq!(server.requests(), 1);
    server.shutdown();
}

#[test]
fn ping_time_weights_and_unknown_paths() {
    let lines = csv_lines(10);
    let server = start(&lines, 4, 1e-6, "");
    let addr = server.local_addr();
    let ping = get(addr, "/api/v3/ping");
    assert_eq!((ping.status, ping.body.as_str()), (200, "{}"));
    assert_eq!(ping.header("X-MBX-USED-WEIGHT-1M"), Some("1"));
    let open4: i64 = lines[4].split(',').next().expect("t").parse().expect("ms");
    let time = get(addr, "/api/v3/time");
    assert_eq!(time.body, format!("{{\"serverTime\":{open4}}}"));
    assert_eq!(time.header("X-MBX-USED-WEIGHT-1M"), Some("2"));
    let k = get(addr, &klines_path(""));
    assert_eq!(k.header("X-MBX-USED-WEIGHT-1M"), Some("4"));
    let missing = get(addr, "/api/v3/depth?symbol=AVAXUSDT");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["code"], Value::from(-1000));
    let info = get(addr, "/api/v3/exchangeInfo");
    assert_eq!(info.json()["symbols"][0]["symbol"], Value::from("AVAXUSDT"));
    assert_eq!(server.requests(), 5);
}

#[test]
fn limit_rules_and_error_bodies() {
    let lines = csv_lines(600);
    let server = start(&lines, 550, 1e-6, "");
    let addr = server.local_addr();
    let count = |query: &str| {
        let r = get(addr, &klines_path(query));
        assert_eq!(r.status, 200, "{query}: {}", r.body);
        r.json().as_array().map(|a| a.len()).expect("array")
    };
    assert_eq!(count(""), 500);
    assert_eq!(count("&limit=1000"), 551); // rows 0..=550 exist, 550 is open
    assert_eq!(count("&limit=3"), 3);
    let newest = get(addr, &klines_path("&limit=1")).json();
    let open550: i64 = lines[550]
        .split(',')
        .next()
        .expect("t")
        .parse()
        .expect("ms");
    assert_eq!(newest[0][0], Value::from(open550));
    let end: i64 = lines[100]
        .split(',')
        .next()
        .expect("t")
        .parse()
        .expect("ms");
    let tail = get(addr, &klines_path(&format!("&endTime={end}&limit=2")));
    assert_eq!(
        tail.body,
        format!(
            "[{},{}]",
            expected_row(&lines[99]),
            expected_row(&lines[100])
        )
    );
    let err = |query: &str| {
        let r = get(addr, query);
        (r.status, r.body)
    };
    assert_eq!(
        err("/api/v3/klines?symbol=AVAXUSDT&interval=1m&limit=1001"),
        (
            400,
            r#"{"code":-1130,"msg":"Data sent for parameter 'limit' is not valid."}"#.into()
        )
    );
    assert_eq!(
        err("/api/v3/klines?symbol=AVAXUSDT&interval=1m&limit=None"),
        (
            400,
            r#"{"code":-1100,"msg":"Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'."}"#
                .into()
        )
    );
    assert_eq!(
        err("/api/v3/klines?symbol=BTCUSDT&interval=1m"),
        (400, r#"{"code":-1121,"msg":"Invalid symbol."}"#.into())
    );
    assert_eq!(
        err("/api/v3/klines?symbol=AVAXUSDT&interval=5m"),
        (400, r#"{"code":-1120,"msg":"Invalid interval."}"#.into())
    );
    assert_eq!(
        err("/api/v3/klines?interval=1m"),
        (
            400,
            r#"{"code":-1102,"msg":"Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."}"#
                .into()
        )
    );
}

#[test]
fn start_time_inside_a_gap_returns_the_next_rows() {
    let mut lines = csv_lines(20);
    let gap_start: i64 = lines[5].split(',').next().expect("t").parse().expect("ms");
    let after = lines[8].clone();
    let after2 = lines[9].clone();
    lines.drain(5..8);
    let server = start(&lines, 15, 1e-6, "");
    let r = get(
        server.local_addr(),
        &klines_path(&format!("&startTime={}&limit=2", gap_start + 60_000)),
    );
    assert_eq!(
        r.body,
        format!("[{},{}]", expected_row(&after), expected_row(&after2))
    );
}

#[test]
fn open_candle_is_partial_then_final_at_the_end_of_data() {
    let lines = csv_lines(30);
    let server = start(&lines, 29, 1.0, "");
    let addr = server.local_addr();
    let rows = get(addr, &klines_path("&limit=2")).json();
    let last = &rows[1];
    let source = parse(&lines[29..30]).remove(0);
    assert_eq!(last[0], Value::from(source.open_time));
    assert_eq!(last[1], Value::from(source.open.as_str()));
    assert_ne!(last.to_string(), expected_row(&lines[29]));
    let num = |v: &Value| v.as_str().expect("decimal").parse::<f64>().expect("number");
    let (o, h, l, c) = (num(&last[1]), num(&last[2]), num(&last[3]), num(&last[4]));
    assert!(l <= o.min(c) && h >= o.max(c) && h <= num(&Value::from(source.high.as_str())));
    assert!(num(&last[5]) < num(&Value::from(source.volume.as_str())));
    // REST columns 0..=10 are the CSV columns; decimals keep the source's places.
    let src: Vec<&str> = lines[29].split(',').collect();
    let places = |s: &str| s.split('.').nth(1).map_or(0, |f| f.len());
    for i in [2, 3, 4, 5, 7, 9, 10] {
        let served = last[i].as_str().expect("decimal");
        assert_eq!(places(served), places(src[i]), "column {i}");
    }
    // The previous row is closed and served byte for byte.
    assert_eq!(rows[0].to_string(), expected_row(&lines[28]));
    drop(server);

    let fast = start(&lines, 29, 1e7, "");
    let end = source.close_time + 1 + klinecast::backfill::SETTLE_MS;
    wait_for_end(&fast, end);
    let time = get(fast.local_addr(), "/api/v3/time").json();
    assert_eq!(time["serverTime"], Value::from(end));
    let rows = get(fast.local_addr(), &klines_path("&limit=1"));
    assert_eq!(rows.body, format!("[{}]", expected_row(&lines[29])));
}

#[test]
fn virtual_clock_runs_at_the_speed_factor() {
    let lines = csv_lines(2000);
    let speed = 1000.0;
    let server = start(&lines, 0, speed, "");
    let origin = parse(&lines[0..1])[0].open_time;
    let before = Instant::now();
    let v1 = server.now_ms();
    std::thread::sleep(Duration::from_millis(100));
    let v2 = server.now_ms();
    let real = before.elapsed().as_secs_f64() * 1000.0;
    assert!(v1 >= origin);
    assert!(v2 - v1 >= 100_000 - 1, "advanced only {} ms", v2 - v1);
    assert!(((v2 - v1) as f64) <= real * speed + 1.0);
    let served = get(server.local_addr(), "/api/v3/time").json()["serverTime"]
        .as_i64()
        .expect("serverTime");
    assert!(served >= v2 && served <= server.now_ms());
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let lines = csv_lines(10);
    let server = start(&lines, 5, 1e-6, "");
    let stream = TcpStream::connect(server.local_addr()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    for _ in 0..3 {
        write!(writer, "GET /api/v3/ping HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
        let (status, headers) = read_head(&mut reader);
        assert_eq!(status, 200);
        assert!(!headers.iter().any(|(k, _)| k == "Connection"));
        let mut body = [0u8; 2];
        reader.read_exact(&mut body).expect("body");
        assert_eq!(&body, b"{}");
    }
    assert_eq!(server.requests(), 3);
}

#[test]
fn rest_faults_429_418_500_switch_at_runtime() {
    let lines = csv_lines(10);
    let server = start(&lines, 5, 1e-6, "429-every=2,retry-after=3");
    let addr = server.local_addr();
    let statuses: Vec<u16> = (0..4).map(|_| get(addr, &klines_path("")).status).collect();
    assert_eq!(statuses, vec![200, 429, 200, 429]);
    assert_eq!(get(addr, "/api/v3/time").status, 200);
    let limited = get(addr, &klines_path(""));
    assert_eq!(limited.status, 200);
    let limited = get(addr, &klines_path(""));
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("Retry-After"), Some("3"));
    assert_eq!(limited.json()["code"], Value::from(-1003));

    server.set_faults(Faults::parse("418=120").expect("spec"));
    let banned = get(addr, "/api/v3/time");
    assert_eq!(banned.status, 418);
    assert_eq!(banned.header("Retry-After"), Some("120"));
    assert_eq!(banned.json()["code"], Value::from(-1003));
    assert!(banned.body.contains("banned until"), "{}", banned.body);

    server.set_faults(Faults::parse("500-every=1").expect("spec"));
    let broken = get(addr, &klines_path(""));
    assert_eq!(broken.status, 500);
    assert_eq!(broken.json()["code"], Value::from(-1000));
    assert_eq!(get(addr, "/api/v3/ping").status, 200);

    server.set_faults(Faults::default());
    assert_eq!(get(addr, "/api/v3/ping").status, 200);
}

#[test]
fn weight_header_counts_and_limit_answers_429() {
    let lines = csv_lines(10);
    let server = start(&lines, 5, 1e-6, "weight-limit=5");
    let addr = server.local_addr();
    let seen: Vec<(u16, String)> = [
        "/api/v3/ping".to_string(),
        "/api/v3/time".to_string(),
        klines_path(""),
        klines_path(""),
    ]
    .iter()
    .map(|p| {
        let r = get(addr, p);
        (
            r.status,
            r.header("X-MBX-USED-WEIGHT-1M").unwrap_or("").to_string(),
        )
    })
    .collect();
    assert_eq!(
        seen,
        vec![
            (200, "1".to_string()),
            (200, "2".to_string()),
            (200, "4".to_string()),
            (429, "6".to_string())
        ]
    );
}

#[test]
fn torn_answers_stop_half_way_and_close() {
    let lines = csv_lines(10);
    let server = start(&lines, 5, 1e-6, "torn-every=1");
    let r = get(server.local_addr(), &klines_path(""));
    assert_eq!(r.status, 200);
    let declared: usize = r
        .header("Content-Length")
        .and_then(|v| v.parse().ok())
        .expect("length");
    assert_eq!(r.body.len(), declared / 2);
    assert!(serde_json::from_str::<Value>(&r.body).is_err());
    // ureq (the project's HTTP client) sees an error, not a short body.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{}{}", server.rest_url(), klines_path(""));
    let outcome = agent
        .get(&url)
        .call()
        .and_then(|mut resp| resp.body_mut().read_to_string());
    assert!(outcome.is_err(), "{outcome:?}");
    server.set_faults(Faults::default());
    let whole = agent
        .get(&url)
        .call()
        .and_then(|mut resp| resp.body_mut().read_to_string())
        .expect("whole answer through ureq");
    assert_eq!(whole, get(server.local_addr(), &klines_path("")).body);
}

#[test]
fn slow_answers_are_delayed() {
    let lines = csv_lines(10);
    let server = start(&lines, 5, 1e-6, "slow-ms=300");
    let t = Instant::now();
    assert_eq!(get(server.local_addr(), &klines_path("")).status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
}

// ---------------------------------------------------------------- WebSocket

type Client = WebSocket<MaybeTlsStream<TcpStream>>;

fn connect(server: &ReplayServer, stream: &str) -> Client {
    let (mut ws, _) =
        tungstenite::connect(format!("{}/ws/{stream}", server.ws_url())).expect("ws connect");
    if let MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
    }
    ws
}

fn next_text(ws: &mut Client) -> String {
    loop {
        match ws.read().expect("a frame") {
            Message::Text(t) => return t.to_string(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

fn event(text: &str) -> Value {
    serde_json::from_str(text).expect("event json")
}

/// The final event for a CSV line, byte for byte, given the event's E, f and L.
fn expected_final(line: &str, e: i64, first: i64, last: i64) -> String {
    let f: Vec<&str> = line.split(',').collect();
    format!(
        concat!(
            r#"{{"e":"kline","E":{},"s":"AVAXUSDT","k":{{"t":{},"T":{},"s":"AVAXUSDT","i":"1m","#,
            r#""f":{},"L":{},"o":"{}","c":"{}","h":"{}","l":"{}","v":"{}","n":{},"x":true,"#,
            r#""q":"{}","V":"{}","Q":"{}","B":"0"}}}}"#
        ),
        e, f[0], f[6], first, last, f[1], f[4], f[2], f[3], f[5], f[8], f[7], f[9], f[10]
    )
}

#[test]
fn ws_sends_partials_then_the_exact_final() {
    let lines = csv_lines(20);
    let server = start(&lines, 3, 30.0, "");
    let rows = parse(&lines);
    // The candle that is current when the server takes the connection: row 3 unless the
    // connection was slow (a loaded machine, qemu), so it is read off the clock, not assumed.
    let before = server.now_ms();
    let mut ws = connect(&server, "avaxusdt@kline_1m");
    let first_text = next_text(&mut ws);
    let first = event(&first_text);
    let t3 = first["k"]["t"].as_i64().expect("t");
    let after = server.now_ms();
    let row = rows
        .iter()
        .position(|k| k.open_time == t3)
        .expect("the first event is a source candle");
    assert!(
        rows[row].close_time >= before && rows[row].open_time <= after,
        "starts with the current candle: {t3} not current between {before} and {after}"
    );
    let mut partials = Vec::new();
    let mut pending = Some(first_text);
    let final_text = loop {
        let text = pending.take().unwrap_or_else(|| next_text(&mut ws));
        let ev = event(&text);
        assert_eq!(
            ev["k"]["t"],
            Value::from(t3),
            "the current candle until its final"
        );
        if ev["k"]["x"] == Value::Bool(true) {
            break text;
        }
        partials.push(ev);
    };
    assert!(!partials.is_empty() && partials.len() <= 3, "{partials:?}");
    let fin = event(&final_text);
    let ids = |v: &Value, key: &str| v["k"][key].as_i64().expect("id");
    assert_eq!(
        final_text,
        expected_final(
            &lines[row],
            fin["E"].as_i64().expect("E"),
            ids(&fin, "f"),
            ids(&fin, "L")
        )
    );
    assert_eq!(
        ids(&fin, "L") - ids(&fin, "f") + 1,
        fin["k"]["n"].as_i64().expect("n")
    );
    assert!(fin["E"].as_i64().expect("E") > fin["k"]["T"].as_i64().expect("T"));
    assert_ne!(
        partials[0]["k"], fin["k"],
        "a partial differs from the final"
    );
    assert_eq!(partials[0]["k"]["o"], fin["k"]["o"]);
    // The next candle follows, and its first trade id continues the previous one.
    let next = loop {
        let ev = event(&next_text(&mut ws));
        if ev["k"]["x"] == Value::Bool(true) {
            break ev;
        }
    };
    assert_eq!(next["k"]["t"], Value::from(t3 + 60_000));
    assert_eq!(ids(&next, "f"), ids(&fin, "L") + 1);
}

#[test]
fn ws_no_trade_candle_has_minus_one_ids_and_no_b() {
    let mut lines = csv_lines(10);
    lines[4] = no_trade(&lines[4]);
    let server = start(&lines, 4, 60.0, "");
    let mut ws = connect(&server, "avaxusdt@kline_1m");
    let fin = loop {
        let ev = event(&next_text(&mut ws));
        assert_eq!(ev["k"]["f"], Value::from(-1));
        assert_eq!(ev["k"]["L"], Value::from(-1));
        assert!(ev["k"].get("B").is_none());
        if ev["k"]["x"] == Value::Bool(true) {
            break ev;
        }
    };
    assert_eq!(fin["k"]["n"], Value::from(0));
    assert_eq!(fin["k"]["v"], Value::from("0"));
}

#[test]
fn ws_wrong_stream_is_closed_with_1008() {
    let lines = csv_lines(10);
    let server = start(&lines, 4, 1.0, "");
    let mut ws = connect(&server, "btcusdt@kline_1m");
    match ws.read() {
        Ok(Message::Close(Some(frame))) => {
            assert_eq!(frame.code, CloseCode::Policy);
            assert!(frame.reason.contains("avaxusdt@kline_1m"), "{frame}");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
}

fn finals_until_end(ws: &mut Client, finals: usize) -> (Vec<String>, tungstenite::Result<Message>) {
    let mut seen = Vec::new();
    let mut count = 0;
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => {
                let t = t.to_string();
                if t.contains("\"x\":true") {
                    count += 1;
                }
                seen.push(t);
                if count > finals {
                    panic!("more than {finals} finals: {seen:?}");
                }
            }
            Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => {}
            other => return (seen, other),
        }
    }
}

#[test]
fn ws_drop_every_n_finals_drops_without_close() {
    let lines = csv_lines(20);
    let server = start(&lines, 2, 600.0, "drop-every=2");
    let mut ws = connect(&server, "avaxusdt@kline_1m");
    let (seen, end) = finals_until_end(&mut ws, 2);
    assert_eq!(seen.iter().filter(|t| t.contains("\"x\":true")).count(), 2);
    assert!(end.is_err(), "dropped without a close frame, got {end:?}");
}

#[test]
fn ws_dup_finals_sends_each_final_twice() {
    let lines = csv_lines(20);
    let server = start(&lines, 2, 600.0, "dup-finals");
    let mut ws = connect(&server, "avaxusdt@kline_1m");
    let mut finals = Vec::new();
    while finals.len() < 4 {
        let text = next_text(&mut ws);
        if text.contains("\"x\":true") {
            finals.push(text);
        }
    }
    assert_eq!(finals[0], finals[1]);
    assert_eq!(finals[2], finals[3]);
    assert_ne!(finals[0], finals[2]);
}

#[test]
fn ws_garbage_every_n_precedes_frames_with_junk() {
    let lines = csv_lines(20);
    let server = start(&lines, 2, 600.0, "garbage-every=2");
    let mut ws = connect(&server, "avaxusdt@kline_1m");
    let frames: Vec<String> = (0..6).map(|_| next_text(&mut ws)).collect();
    let kinds: Vec<&str> = frames
        .iter()
        .map(|f| match f.as_str() {
            "{\"e\":\"kline\",\"k\":" => "torn",
            "not json" => "junk",
            other => {
                event(other);
                "event"
            }
        })
        .collect();
    assert_eq!(
        kinds,
        vec!["event", "torn", "event", "event", "junk", "event"]
    );
}

#[test]
fn ws_stall_goes_silent_after_the_first_final_then_drops() {
    let lines = csv_lines(20);
    let server = start(&lines, 2, 600.0, "stall-ms=300,ping-ms=20");
    let mut ws = connect(&server, "avaxusdt@kline_1m");
    loop {
        if next_text(&mut ws).contains("\"x\":true") {
            break;
        }
    }
    // Nothing (no data, no ping) arrives after the first final: only the drop.
    let after = ws.read();
    assert!(after.is_err(), "expected the drop, got {after:?}");
}

#[test]
fn ws_shutdown_after_n_sends_server_shutdown_then_closes() {
    let lines = csv_lines(20);
    let server = start(&lines, 2, 600.0, "shutdown-after=1");
    let mut ws = connect(&server, "avaxusdt@kline_1m");
    let (seen, end) = finals_until_end(&mut ws, 1);
    let last = event(seen.last().expect("frames"));
    assert_eq!(last["e"], Value::from("serverShutdown"));
    assert!(last["E"].is_i64());
    assert_eq!(last.as_object().map(|o| o.len()), Some(2));
    match end {
        Ok(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[test]
fn ws_pings_and_closes_when_no_pong_comes() {
    let lines = csv_lines(10);
    let server = start(&lines, 4, 1e-6, "ping-ms=30,pong-timeout-ms=500");
    // A reading client answers pings (tungstenite pongs automatically) and stays connected.
    let mut live = connect(&server, "avaxusdt@kline_1m");
    let mut pings = 0;
    while pings < 12 {
        match live.read().expect("frame") {
            Message::Ping(_) => pings += 1,
            Message::Text(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    // A client that does not read never pongs and gets a close frame.
    let mut deaf = connect(&server, "avaxusdt@kline_1m");
    std::thread::sleep(Duration::from_millis(1200));
    let close = loop {
        match deaf.read() {
            Ok(Message::Close(frame)) => break frame,
            Ok(_) => {}
            Err(e) => panic!("expected a close frame, got {e}"),
        }
    };
    let frame = close.expect("close frame with a code");
    assert_eq!(frame.code, CloseCode::Policy);
    assert_eq!(frame.reason.as_str(), "pong timeout");
}

#[test]
fn ws_after_the_data_ends_only_pings_come() {
    let lines = csv_lines(5);
    let server = start(&lines, 0, 1e7, "ping-ms=20");
    let end = parse(&lines[4..5])[0].close_time + 1 + klinecast::backfill::SETTLE_MS;
    wait_for_end(&server, end);
    let mut ws = connect(&server, "avaxusdt@kline_1m");
    for _ in 0..5 {
        match ws.read().expect("frame") {
            Message::Ping(_) => {}
            other => panic!("only pings after the end, got {other:?}"),
        }
    }
}

// ---------------------------------------------------------------- the command

fn write_data(dir: &TempDir, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    let mut text = format!("{CSV_HEADER}\n");
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    std::fs::write(&path, text).expect("write data");
    path
}

#[test]
fn command_prints_the_listening_line_and_serves() {
    let dir = TempDir::new("replay-command");
    let lines = csv_lines(40);
    let data = write_data(&dir, "AVAXUSDT_1m.csv", &lines);
    let mut args = vec![OsString::from("--data"), data.into_os_string()];
    args.extend(["--speed", "60"].map(OsString::from));
    with_replay_server(&args, |line| {
        let rest = line
            .trim_end()
            .strip_prefix("listening rest=")
            .and_then(|r| r.split_once(" ws="))
            .map(|(rest, ws)| (rest.to_string(), ws.to_string()));
        let (rest, ws) = rest.unwrap_or_else(|| panic!("bad listening line {line:?}"));
        let port = rest.strip_prefix("http://127.0.0.1:").expect("rest url");
        assert_eq!(ws, format!("ws://127.0.0.1:{port}"));
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let time = get(addr, "/api/v3/time").json()["serverTime"]
            .as_i64()
            .expect("serverTime");
        let rows = parse(&lines);
        // Default start row: half the rows.
        assert!(
            time >= rows[20].open_time
                && time <= rows[39].close_time + 1 + klinecast::backfill::SETTLE_MS
        );
    });
}

/// Spawns `klinecast replay-server ARGS`, reads its listening line and runs `check` on it; the
/// server is killed whatever `check` does, and a failed check fails the test.
fn with_replay_server(args: &[OsString], check: impl FnOnce(&str) + std::panic::UnwindSafe) {
    let mut child = common::klinecast_command()
        .arg("replay-server")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn klinecast");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("listening line");
    let result = std::panic::catch_unwind(|| check(&line));
    let _ = child.kill();
    let _ = child.wait();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn command_refuses_bad_faults_and_bad_file_names() {
    let dir = TempDir::new("replay-command");
    let lines = csv_lines(4);
    let good = write_data(&dir, "AVAXUSDT_1m.csv", &lines);
    let bad_name = write_data(&dir, "AVAXUSDT-1m-2026-07.csv", &lines);
    let run = |args: &[&str], data: &PathBuf| {
        let out = common::klinecast_command()
            .arg("replay-server")
            .arg("--data")
            .arg(data)
            .args(args)
            .output()
            .expect("run klinecast");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, err) = run(&["--faults", "explode=1"], &good);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("unknown fault switch `explode`"), "{err}");
    let (code, err) = run(&[], &bad_name);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("<SYMBOL>_<interval>.csv"), "{err}");
    let (code, err) = run(&["--start-row", "4"], &good);
    assert_eq!(code, Some(2), "{err}");
}

// ---------------------------------------------------------------- several symbols

/// The first `n` data lines of the BTCUSDT sample, moved in time so that row 0 opens at
/// `open_ms` (real BTC values, 8 decimals, on the AVAXUSDT sample's minutes).
fn btc_lines_at(n: usize, open_ms: i64) -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/BTCUSDT_1m.csv");
    let file = std::fs::File::open(path).expect("BTC sample data file");
    BufReader::new(file)
        .lines()
        .skip(1)
        .take(n)
        .enumerate()
        .map(|(i, l)| {
            let line = l.expect("readable line");
            let mut f: Vec<String> = line.split(',').map(str::to_string).collect();
            let t = open_ms + 60_000 * i as i64;
            f[0] = t.to_string();
            f[6] = (t + 59_999).to_string();
            f.join(",")
        })
        .collect()
}

fn open_ms(line: &str) -> i64 {
    line.split(',').next().expect("t").parse().expect("ms")
}

/// An in-process server of AVAXUSDT 1m (`avax`) and BTCUSDT 1m (`btc`) under one clock at
/// AVAX row `start_row`.
fn start_two(
    avax: &[String],
    btc: &[String],
    start_row: usize,
    speed: f64,
    faults: &str,
) -> ReplayServer {
    let series = |symbol: &str, lines: &[String]| Series {
        symbol: Symbol::parse(symbol).expect("symbol"),
        interval: Interval::ONE_MINUTE,
        klines: parse(lines),
    };
    ReplayServer::start_setup(ReplaySetup {
        series: vec![series("AVAXUSDT", avax), series("BTCUSDT", btc)],
        start_row,
        speed,
        faults: Faults::parse(faults).expect("fault spec"),
        port: 0,
    })
    .expect("start the replay server")
}

/// The final event of `symbol` for a CSV line, byte for byte, given the event's E, f and L.
fn expected_final_of(symbol: &str, line: &str, e: i64, first: i64, last: i64) -> String {
    expected_final(line, e, first, last).replace("AVAXUSDT", symbol)
}

#[test]
fn several_symbols_over_rest_each_serve_their_own_rows() {
    let avax = csv_lines(30);
    // BTC starts 5 minutes later than AVAX and has a gap (its minutes 8..10 are missing).
    let mut btc = btc_lines_at(25, open_ms(&avax[5]));
    btc.drain(8..10);
    let server = start_two(&avax, &btc, 25, 1e-6, "");
    let addr = server.local_addr();
    let end = open_ms(&avax[24]); // every row up to here is closed
    let rows = |lines: &[String]| {
        let rows: Vec<String> = lines.iter().map(|l| expected_row(l)).collect();
        format!("[{}]", rows.join(","))
    };
    let page = |symbol: &str| {
        get(
            addr,
            &format!(
                "/api/v3/klines?symbol={symbol}&interval=1m&startTime={}&endTime={end}&limit=1000",
                open_ms(&avax[0])
            ),
        )
    };
    let a = page("AVAXUSDT");
    assert_eq!((a.status, a.body.clone()), (200, rows(&avax[..25])));
    assert_eq!(a.header("X-MBX-USED-WEIGHT-1M"), Some("2"));
    let b = page("BTCUSDT");
    // BTC rows up to AVAX minute 24: BTC minutes 0..=19 less the two missing ones.
    assert_eq!((b.status, b.body.clone()), (200, rows(&btc[..18])));
    assert_eq!(
        b.header("X-MBX-USED-WEIGHT-1M"),
        Some("4"),
        "one weight budget for every symbol"
    );
    let unknown = page("ETHUSDT");
    assert_eq!(
        (unknown.status, unknown.body.as_str()),
        (400, r#"{"code":-1121,"msg":"Invalid symbol."}"#)
    );
    assert_eq!(unknown.header("X-MBX-USED-WEIGHT-1M"), Some("6"));
    let wrong_interval = get(addr, "/api/v3/klines?symbol=BTCUSDT&interval=5m");
    assert_eq!(
        (wrong_interval.status, wrong_interval.body.as_str()),
        (400, r#"{"code":-1120,"msg":"Invalid interval."}"#)
    );
    // Newest rows: each symbol's own open candle, at the same virtual time.
    let newest = |symbol: &str| {
        get(
            addr,
            &format!("/api/v3/klines?symbol={symbol}&interval=1m&limit=1"),
        )
        .json()[0][0]
            .as_i64()
            .expect("open time")
    };
    assert_eq!(newest("AVAXUSDT"), open_ms(&avax[25]));
    assert_eq!(newest("BTCUSDT"), open_ms(&btc[18]));
    let info = get(addr, "/api/v3/exchangeInfo").json();
    let listed: Vec<&str> = info["symbols"]
        .as_array()
        .expect("symbols")
        .iter()
        .map(|s| s["symbol"].as_str().expect("symbol"))
        .collect();
    assert_eq!(listed, vec!["AVAXUSDT", "BTCUSDT"]);
    let one = get(addr, "/api/v3/exchangeInfo?symbol=BTCUSDT").json();
    assert_eq!(one["symbols"].as_array().map(Vec::len), Some(1));
    assert_eq!(one["symbols"][0]["symbol"], Value::from("BTCUSDT"));
    let bad = get(addr, "/api/v3/exchangeInfo?symbol=ETHUSDT");
    assert_eq!(
        (bad.status, bad.body.as_str()),
        (400, r#"{"code":-1121,"msg":"Invalid symbol."}"#)
    );
}

/// The next text frame, skipping pings and pongs; a read interrupted by a signal (a stopped
/// and resumed process) is retried.
fn text_frame(ws: &mut Client) -> String {
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => return t.to_string(),
            Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

fn connect_path(server: &ReplayServer, path: &str) -> Client {
    let (mut ws, _) =
        tungstenite::connect(format!("{}{path}", server.ws_url())).expect("ws connect");
    if let MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
    }
    ws
}

/// Splits a combined-stream frame into its stream name and its payload's text, checking the
/// envelope has exactly those two keys and that the payload's symbol is the stream's.
fn unwrap_envelope(text: &str) -> (String, String) {
    let v = event(text);
    let obj = v.as_object().expect("an object");
    assert_eq!(obj.len(), 2, "only stream and data: {text}");
    let stream = v["stream"].as_str().expect("stream").to_string();
    let prefix = format!("{{\"stream\":\"{stream}\",\"data\":");
    let data = text
        .strip_prefix(&prefix)
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or_else(|| panic!("not an envelope: {text}"))
        .to_string();
    let symbol = event(&data)["s"].as_str().expect("s").to_ascii_lowercase();
    assert!(stream.starts_with(&format!("{symbol}@kline_")), "{text}");
    (stream, data)
}

#[test]
fn combined_stream_carries_both_symbols_finals_in_order_in_envelopes() {
    let avax = csv_lines(20);
    // BTC covers AVAX minutes 1.. and lacks its minute 4 (AVAX minute 5).
    let mut btc = btc_lines_at(19, open_ms(&avax[1]));
    btc.remove(4);
    let server = start_two(&avax, &btc, 2, 600.0, "");
    let mut ws = connect_path(
        &server,
        "/stream?streams=avaxusdt@kline_1m/btcusdt@kline_1m",
    );
    let mut finals: Vec<(i64, String, String)> = Vec::new();
    let mut partials = 0;
    while finals.len() < 10 {
        let (stream, data) = unwrap_envelope(&text_frame(&mut ws));
        let ev = event(&data);
        if ev["k"]["x"] == Value::Bool(true) {
            finals.push((ev["k"]["t"].as_i64().expect("t"), stream, data));
        } else {
            partials += 1;
        }
    }
    assert!(partials > 0, "partials come on combined streams too");
    // Oldest first across the symbols, AVAX before BTC within a minute (URL order).
    let order: Vec<(i64, &str)> = finals.iter().map(|(t, s, _)| (*t, s.as_str())).collect();
    let mut sorted = order.clone();
    sorted.sort_by_key(|(t, s)| (*t, *s != "avaxusdt@kline_1m"));
    assert_eq!(order, sorted);
    // Up to the last minute seen (whose BTC final may still be on its way).
    let (first_t, last_t) = (finals[0].0, finals[9].0);
    let expect_lines = |symbol: &str, lines: &[String]| -> Vec<String> {
        lines
            .iter()
            .filter(|l| open_ms(l) >= first_t && open_ms(l) < last_t)
            .map(|l| format!("{symbol}:{}", open_ms(l)))
            .collect()
    };
    let seen = |symbol: &str| -> Vec<String> {
        finals
            .iter()
            .filter(|(t, s, _)| s.starts_with(symbol) && *t < last_t)
            .map(|(t, _, _)| format!("{symbol}:{t}"))
            .collect()
    };
    assert_eq!(seen("avaxusdt"), expect_lines("avaxusdt", &avax));
    // Each symbol serves only the klines it has: BTC's missing minute is not invented.
    assert_eq!(seen("btcusdt"), expect_lines("btcusdt", &btc));
    assert!(seen("btcusdt").len() >= 3, "{order:?}");
    // Every final's payload is the source row byte for byte.
    for (t, stream, data) in &finals {
        let (symbol, lines) = if stream.starts_with("avax") {
            ("AVAXUSDT", &avax)
        } else {
            ("BTCUSDT", &btc)
        };
        let line = lines
            .iter()
            .find(|l| open_ms(l) == *t)
            .expect("a source row");
        let ev = event(data);
        let id = |key: &str| ev["k"][key].as_i64().expect("id");
        assert_eq!(
            *data,
            expected_final_of(symbol, line, ev["E"].as_i64().expect("E"), id("f"), id("L"))
        );
    }
}

/// `hold-final=BTCUSDT:6:600` on a combined connection: BTC's final of row 6 comes 600 real
/// ms after it is due, and BTC sends nothing meanwhile (no partial), while AVAX's finals go on;
/// then BTC's finals follow in order, none lost or repeated, and REST serves the held row as
/// soon as it has closed.
#[test]
fn hold_final_makes_one_symbols_kline_late_and_the_other_goes_on() {
    let avax = csv_lines(30);
    let btc = btc_lines_at(30, open_ms(&avax[0]));
    let server = start_two(&avax, &btc, 2, 600.0, "hold-final=btcusdt:6:600");
    let mut ws = connect_path(
        &server,
        "/stream?streams=avaxusdt@kline_1m/btcusdt@kline_1m",
    );
    // (arrival, symbol, open time, final)
    let mut frames: Vec<(Instant, String, i64, bool)> = Vec::new();
    let mut rest_checked = false;
    loop {
        let (stream, data) = unwrap_envelope(&text_frame(&mut ws));
        let ev = event(&data);
        let t = ev["k"]["t"].as_i64().expect("t");
        let is_final = ev["k"]["x"] == Value::Bool(true);
        let symbol = stream[..4].to_string();
        frames.push((Instant::now(), symbol.clone(), t, is_final));
        if is_final && symbol == "avax" && t == open_ms(&avax[7]) && !rest_checked {
            // BTC's row 6 is held on the socket, but REST has it.
            let page = get(
                server.local_addr(),
                &format!(
                    "/api/v3/klines?symbol=BTCUSDT&interval=1m&startTime={}&limit=1",
                    open_ms(&btc[6])
                ),
            );
            assert_eq!(page.body, format!("[{}]", expected_row(&btc[6])));
            rest_checked = true;
        }
        if is_final && symbol == "btcu" && t == open_ms(&btc[12]) {
            break;
        }
    }
    let at = |symbol: &str, row: &str| {
        frames
            .iter()
            .position(|(_, s, t, f)| *f && s == symbol && *t == open_ms(row))
            .unwrap_or_else(|| panic!("{symbol} final of {row} never came"))
    };
    let (avax6, btc6) = (at("avax", &avax[6]), at("btcu", &btc[6]));
    let late = frames[btc6].0.duration_since(frames[avax6].0);
    assert!(late >= Duration::from_millis(500), "held only {late:?}");
    assert!(rest_checked, "AVAX's minute 7 came while BTC's 6 was held");
    // Meanwhile: AVAX's finals go on, BTC sends nothing at all.
    let between = &frames[avax6 + 1..btc6];
    assert!(
        between.iter().all(|(_, s, _, _)| s == "avax"),
        "{between:?}"
    );
    assert!(
        between.iter().filter(|(_, _, _, f)| *f).count() >= 3,
        "AVAX went on: {between:?}"
    );
    // BTC's finals: every row once, in order, the held one included.
    let btc_finals: Vec<i64> = frames
        .iter()
        .filter(|(_, s, _, f)| *f && s == "btcu")
        .map(|(_, _, t, _)| *t)
        .collect();
    let first = btc
        .iter()
        .position(|l| open_ms(l) == btc_finals[0])
        .expect("row");
    let expected: Vec<i64> = btc[first..=12].iter().map(|l| open_ms(l)).collect();
    assert_eq!(btc_finals, expected);
    assert!(first < 6, "the held row was streamed");
}

/// Sends a control message, then reads frames (skipping events) until the answer with `id`.
fn control(ws: &mut Client, request: &str, id: &str) -> String {
    ws.send(Message::text(request)).expect("send control");
    loop {
        let text = text_frame(ws);
        let v = event(&text);
        if v.get("id").map(|v| v.to_string()).as_deref() == Some(id) {
            return text;
        }
    }
}

#[test]
fn subscribe_list_and_unsubscribe_live() {
    let avax = csv_lines(40);
    let btc = btc_lines_at(40, open_ms(&avax[0]));
    let server = start_two(&avax, &btc, 2, 600.0, "");
    let mut ws = connect_path(&server, "/ws");
    // Binance's limit is 5 incoming messages a second: pace the requests.
    let pace = || std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        control(&mut ws, r#"{"method":"LIST_SUBSCRIPTIONS","id":1}"#, "1"),
        r#"{"result":[],"id":1}"#
    );
    pace();
    assert_eq!(
        control(
            &mut ws,
            r#"{"method":"SUBSCRIBE","params":["btcusdt@kline_1m","avaxusdt@kline_1m"],"id":2}"#,
            "2"
        ),
        r#"{"result":null,"id":2}"#
    );
    pace();
    assert_eq!(
        control(
            &mut ws,
            r#"{"method":"LIST_SUBSCRIPTIONS","id":"abc"}"#,
            "\"abc\""
        ),
        r#"{"result":["btcusdt@kline_1m","avaxusdt@kline_1m"],"id":"abc"}"#
    );
    // A raw connection gets bare payloads, from both symbols.
    let mut symbols = std::collections::BTreeSet::new();
    while symbols.len() < 2 {
        let ev = event(&text_frame(&mut ws));
        assert_eq!(ev["e"], Value::from("kline"), "bare payload: {ev}");
        symbols.insert(ev["s"].as_str().expect("s").to_string());
    }
    pace();
    // A stream the server does not serve: Binance's error, nothing subscribed.
    assert_eq!(
        control(
            &mut ws,
            r#"{"method":"SUBSCRIBE","params":["ethusdt@kline_1m","avaxusdt@kline_1m"],"id":4}"#,
            "4"
        ),
        r#"{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":4}"#
    );
    pace();
    assert_eq!(
        control(
            &mut ws,
            r#"{"method":"UNSUBSCRIBE","params":["btcusdt@kline_1m"],"id":5}"#,
            "5"
        ),
        r#"{"result":null,"id":5}"#
    );
    pace();
    assert_eq!(
        control(&mut ws, r#"{"method":"LIST_SUBSCRIPTIONS","id":6}"#, "6"),
        r#"{"result":["avaxusdt@kline_1m"],"id":6}"#
    );
    pace();
    assert_eq!(
        control(
            &mut ws,
            r#"{"method":"SET_PROPERTY","params":["combined",true],"id":7}"#,
            "7"
        ),
        r#"{"result":null,"id":7}"#
    );
    // After the unsubscribe only AVAX comes, now wrapped (combined was set).
    for _ in 0..6 {
        let (stream, _) = unwrap_envelope(&text_frame(&mut ws));
        assert_eq!(stream, "avaxusdt@kline_1m");
    }
    pace();
    assert_eq!(
        control(
            &mut ws,
            r#"{"method":"GET_PROPERTY","params":["combined"],"id":8}"#,
            "8"
        ),
        r#"{"result":true,"id":8}"#
    );
    pace();
    assert_eq!(
        control(
            &mut ws,
            r#"{"method":"SUBSCRIBE","params":[1],"id":9}"#,
            "9"
        ),
        r#"{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":9}"#
    );
}

#[test]
fn unknown_stream_in_a_combined_url_is_closed_with_1008() {
    let avax = csv_lines(10);
    let btc = btc_lines_at(10, open_ms(&avax[0]));
    let server = start_two(&avax, &btc, 4, 1.0, "");
    let mut ws = connect_path(
        &server,
        "/stream?streams=avaxusdt@kline_1m/ethusdt@kline_1m",
    );
    match ws.read() {
        Ok(Message::Close(Some(frame))) => {
            assert_eq!(frame.code, CloseCode::Policy);
            assert!(frame.reason.contains("\"ethusdt@kline_1m\""), "{frame}");
            assert!(
                frame.reason.contains("avaxusdt@kline_1m, btcusdt@kline_1m"),
                "{frame}"
            );
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
}

/// A server set to accept fewer streams per connection (as `KLINECAST_WS_MAX_STREAMS` sets
/// the command's) closes a connection asking for more with 1008 and the reason, before any
/// event, as Binance does past 1024; one within the limit is served, and the open-session
/// counters see it.
#[test]
fn a_url_with_more_streams_than_the_limit_is_closed_with_1008() {
    let avax = csv_lines(10);
    let btc = btc_lines_at(10, open_ms(&avax[0]));
    let server = start_two(&avax, &btc, 4, 1.0, "");
    server.set_max_streams(1);
    let mut ws = connect_path(
        &server,
        "/stream?streams=avaxusdt@kline_1m/btcusdt@kline_1m",
    );
    match ws.read() {
        Ok(Message::Close(Some(frame))) => {
            assert_eq!(frame.code, CloseCode::Policy);
            assert_eq!(
                frame.reason.as_str(),
                "too many streams: 2 asked, at most 1 per connection"
            );
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    assert_eq!(server.ws_sessions(), 0);
    let mut one = connect_path(&server, "/stream?streams=btcusdt@kline_1m");
    let mut two = connect_path(&server, "/ws/avaxusdt@kline_1m");
    for ws in [&mut one, &mut two] {
        match ws.read() {
            Ok(Message::Text(_)) | Ok(Message::Ping(_)) => {}
            other => panic!("expected an event, got {other:?}"),
        }
    }
    assert_eq!((server.ws_sessions(), server.ws_open()), (2, 2));
    drop(one);
    common::wait_for(Duration::from_secs(10), "the closed session to end", || {
        server.ws_open() == 1
    });
    assert_eq!(server.ws_open_peak(), 2);
}

/// Reads until the connection ends; returns the control answers seen and how it ended.
fn answers_until_close(ws: &mut Client) -> (usize, Option<CloseFrame>) {
    let mut answers = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(
            Instant::now() < deadline,
            "still open after {answers} answers"
        );
        match ws.read() {
            Ok(Message::Text(t)) => {
                if event(t.as_str()).get("id").is_some() {
                    answers += 1;
                }
            }
            Ok(Message::Close(frame)) => return (answers, frame),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("expected a close frame after {answers} answers, got {e}"),
        }
    }
}

#[test]
fn more_than_five_messages_a_second_closes_the_connection() {
    let avax = csv_lines(10);
    let btc = btc_lines_at(10, open_ms(&avax[0]));
    let server = start_two(&avax, &btc, 4, 1e-6, "");
    let mut ws = connect_path(&server, "/stream?streams=btcusdt@kline_1m");
    for id in 0..8 {
        ws.send(Message::text(format!(
            r#"{{"method":"LIST_SUBSCRIPTIONS","id":{id}}}"#
        )))
        .expect("send");
    }
    let (answers, frame) = answers_until_close(&mut ws);
    assert_eq!(answers, 5, "five are answered, the sixth closes");
    let frame = frame.expect("a close frame with a code");
    assert_eq!(frame.code, CloseCode::Policy);
    assert!(frame.reason.contains("at most 5"), "{frame}");
    // Pings count too.
    let mut ws = connect_path(&server, "/ws/avaxusdt@kline_1m");
    for _ in 0..6 {
        ws.send(Message::Ping(Vec::new().into())).expect("ping");
    }
    let (_, frame) = answers_until_close(&mut ws);
    assert_eq!(frame.expect("close frame").code, CloseCode::Policy);
    // Five a second is within the limit.
    let mut ws = connect_path(&server, "/ws/avaxusdt@kline_1m");
    for id in 0..5 {
        let text = control(
            &mut ws,
            &format!(r#"{{"method":"LIST_SUBSCRIPTIONS","id":{id}}}"#),
            &id.to_string(),
        );
        assert_eq!(
            text,
            format!(r#"{{"result":["avaxusdt@kline_1m"],"id":{id}}}"#)
        );
    }
}

#[test]
fn faults_apply_per_connection_on_a_combined_stream() {
    let avax = csv_lines(20);
    let btc = btc_lines_at(20, open_ms(&avax[0]));
    let server = start_two(
        &avax,
        &btc,
        2,
        600.0,
        "dup-finals,drop-every=3,garbage-every=4",
    );
    let mut ws = connect_path(
        &server,
        "/stream?streams=avaxusdt@kline_1m/btcusdt@kline_1m",
    );
    let mut finals = Vec::new();
    let mut garbage = 0;
    let end = loop {
        match ws.read() {
            Ok(Message::Text(t)) => {
                let t = t.to_string();
                if t == "{\"e\":\"kline\",\"k\":" || t == "not json" {
                    garbage += 1;
                    continue;
                }
                let (stream, data) = unwrap_envelope(&t);
                if data.contains("\"x\":true") {
                    finals.push((stream, data));
                }
            }
            Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            other => break other,
        }
    };
    assert!(end.is_err(), "dropped without a close frame, got {end:?}");
    assert!(garbage >= 1, "garbage frames on a combined stream");
    // Three finals counted across both symbols, each sent twice, then the drop.
    assert_eq!(finals.len(), 6, "{finals:?}");
    for pair in finals.chunks(2) {
        assert_eq!(pair[0], pair[1]);
    }
    assert_eq!(finals[0].0, "avaxusdt@kline_1m");
    assert_eq!(finals[2].0, "btcusdt@kline_1m");
}

#[test]
fn command_serves_several_files_and_refuses_one_given_twice() {
    let dir = TempDir::new("replay-command");
    let avax = csv_lines(40);
    let btc = btc_lines_at(30, open_ms(&avax[5]));
    let a = write_data(&dir, "AVAXUSDT_1m.csv", &avax);
    let b = write_data(&dir, "BTCUSDT_1m.csv", &btc);
    let list = format!("{},{}", a.display(), b.display());
    let args = ["--data", &list, "--start-row", "30", "--speed", "0.000001"].map(OsString::from);
    with_replay_server(&args, |line| {
        let port = line
            .trim_end()
            .strip_prefix("listening rest=http://127.0.0.1:")
            .and_then(|r| r.split_once(' '))
            .map(|(port, _)| port.to_string())
            .unwrap_or_else(|| panic!("bad listening line {line:?}"));
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        // The clock is at AVAX row 30 (--start-row counts in the first file): BTC row 25.
        let newest = |symbol: &str| {
            get(
                addr,
                &format!("/api/v3/klines?symbol={symbol}&interval=1m&limit=2"),
            )
            .json()
        };
        assert_eq!(newest("AVAXUSDT")[0].to_string(), expected_row(&avax[29]));
        assert_eq!(newest("BTCUSDT")[0].to_string(), expected_row(&btc[24]));
    });
    let twice = format!("{},{}", a.display(), a.display());
    let out = common::klinecast_command()
        .args(["replay-server", "--data", &twice])
        .output()
        .expect("run klinecast");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("given twice"), "{err}");
}
