//! Process-level tests of the README claim "Remote hosts are always TLS-verified against the
//! bundled webpki roots, and no switch turns that off" (section `klinecast collect`, URLs; and
//! the bad-input table row "turning TLS verification off"). A TLS server on 127.0.0.1 presents
//! a self-signed certificate for `localhost` and `127.0.0.1` (tests/fixtures/self-signed-*.pem,
//! made by scripts/make-test-cert.sh); the real `klinecast collect` and `klinecast stream`
//! processes must refuse it, name the host, say the certificate is not trusted, and never
//! complete a handshake, also with every environment variable that could plausibly turn
//! verification off or add the certificate to a trust store. Loopback only.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

mod common;

use common::{klinecast_command, TempDir};
use klinecast::kline::{Interval, Symbol, CSV_HEADER};
use klinecast::store;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Environment variables that other tools read to skip verification or to trust extra
/// certificates. klinecast must ignore all of them; the CA-file ones point at the very
/// certificate the server presents.
fn plausible_overrides() -> Vec<(&'static str, String)> {
    let cert = fixture("self-signed-cert.pem").display().to_string();
    let dir = fixture("").display().to_string();
    vec![
        ("SSL_CERT_FILE", cert.clone()),
        ("SSL_CERT_DIR", dir),
        ("CURL_CA_BUNDLE", cert.clone()),
        ("REQUESTS_CA_BUNDLE", cert.clone()),
        ("NODE_EXTRA_CA_CERTS", cert),
        ("NODE_TLS_REJECT_UNAUTHORIZED", "0".to_string()),
        ("PYTHONHTTPSVERIFY", "0".to_string()),
        ("GIT_SSL_NO_VERIFY", "1".to_string()),
        ("KLINECAST_INSECURE", "1".to_string()),
        ("KLINECAST_NO_VERIFY", "1".to_string()),
        ("KLINECAST_TLS_VERIFY", "0".to_string()),
        ("KLINECAST_TLS_INSECURE", "1".to_string()),
        ("KLINECAST_DANGER_ACCEPT_INVALID_CERTS", "1".to_string()),
        (
            "KLINECAST_CA_FILE",
            fixture("self-signed-cert.pem").display().to_string(),
        ),
    ]
}

/// A TLS server on 127.0.0.1 that presents the self-signed certificate, runs the handshake on
/// every connection and records how each one ended.
struct SelfSignedServer {
    port: u16,
    /// One entry per accepted connection: "completed" or the server-side error. In TLS 1.3 the
    /// server completes only on the client's Finished, which a client that refused the
    /// certificate never sends; whether its alert arrives first depends on the client flushing
    /// it, so refusals show as `AlertReceived(..)` or an unexpected end of file.
    outcomes: Arc<Mutex<Vec<String>>>,
}

impl SelfSignedServer {
    fn start() -> SelfSignedServer {
        let cert = CertificateDer::from_pem_file(fixture("self-signed-cert.pem")).expect("cert");
        let key = PrivateKeyDer::from_pem_file(fixture("self-signed-key.pem")).expect("key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("protocol versions")
                .with_no_client_auth()
                .with_single_cert(vec![cert], key)
                .expect("server config"),
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&outcomes);
        // The accept loop lives until the test process ends.
        thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { continue };
                let config = Arc::clone(&config);
                let record = Arc::clone(&record);
                thread::spawn(move || {
                    let outcome = handshake(tcp, config);
                    record.lock().expect("outcomes").push(outcome);
                });
            }
        });
        SelfSignedServer { port, outcomes }
    }

    /// The outcomes once at least `n` connections have ended (or after 10 s).
    fn outcomes_after(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let seen = self.outcomes.lock().expect("outcomes").clone();
            if seen.len() >= n || Instant::now() >= deadline {
                return seen;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Runs the server side of one handshake; "completed" if the client accepted the certificate.
fn handshake(mut tcp: TcpStream, config: Arc<rustls::ServerConfig>) -> String {
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    let mut conn = match rustls::ServerConnection::new(config) {
        Ok(c) => c,
        Err(e) => return format!("server set-up failed: {e}"),
    };
    while conn.is_handshaking() {
        match conn.complete_io(&mut tcp) {
            Ok((0, 0)) => return "eof".to_string(),
            Ok(_) => {}
            Err(e) => return describe(&e),
        }
    }
    "completed".to_string()
}

/// The rustls error inside an I/O error (e.g. `AlertReceived(UnknownCA)`), or the I/O error.
fn describe(e: &io::Error) -> String {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(r) => format!("{r:?}"),
        None => format!("io: {e}"),
    }
}

/// Every connection ended in a refused handshake.
fn assert_no_handshake_completed(outcomes: &[String]) {
    for o in outcomes {
        assert!(
            o.starts_with("AlertReceived(") || o == "io: unexpected end of file",
            "a handshake ended otherwise: {outcomes:?}"
        );
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Kline rows (not counting the header) in the BTCUSDT 1m store of `data_dir`.
fn stored_rows(data_dir: &Path) -> usize {
    let symbol = Symbol::parse("BTCUSDT").expect("symbol");
    let path = store::kline_path(data_dir, &symbol, Interval::ONE_MINUTE);
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| *l != CSV_HEADER)
        .count()
}

fn collect(rest_url: &str, data_dir: &Path) -> Command {
    let mut cmd = klinecast_command();
    cmd.args(["collect", "--symbol", "BTCUSDT", "--interval", "1m"])
        .args(["--start", "2024-01-01", "--end", "2024-01-02"])
        .args(["--rest-url", rest_url])
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("KLINECAST_REST_URL");
    for (name, _) in plausible_overrides() {
        cmd.env_remove(name);
    }
    cmd
}

/// Backs "Remote hosts are always TLS-verified against the bundled webpki roots, and no switch
/// turns that off" for `collect`: `https://localhost:PORT` and `https://127.0.0.1:PORT` with a
/// self-signed certificate are refused at the first attempt (a trust failure is not retried),
/// exit 1 with a message naming the host and saying the certificate is not trusted, with and
/// without every plausible override variable; the server never completes a handshake and no
/// kline is stored.
/// Backs README claim [C5]: Remote hosts are always TLS-verified against the bundled roots; no switch or variable turns that off.
#[test]
fn collect_refuses_a_self_signed_certificate() {
    let server = SelfSignedServer::start();
    let mut runs = 0;
    for host in ["localhost", "127.0.0.1"] {
        for with_overrides in [false, true] {
            let dir = TempDir::new("tls-collect");
            let url = format!("https://{host}:{}", server.port);
            let mut cmd = collect(&url, dir.path());
            if with_overrides {
                cmd.envs(plausible_overrides());
            }
            let started = Instant::now();
            let out = cmd.output().expect("run collect");
            runs += 1;
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{host} {with_overrides}: {err}");
            assert!(
                err.contains(&format!("the TLS certificate of {host} is not trusted")),
                "{host} {with_overrides}: {err}"
            );
            assert!(err.contains("UnknownIssuer"), "{err}");
            assert!(
                err.contains(&format!("https://{host}:{}/", server.port)),
                "{err}"
            );
            assert!(
                err.contains("no flag, environment variable or system CA file"),
                "{err}"
            );
            assert!(
                !err.contains("retrying"),
                "a trust failure was retried: {err}"
            );
            assert!(started.elapsed() < Duration::from_secs(30));
            assert_eq!(stored_rows(dir.path()), 0, "klines stored: {err}");
            let outcomes = server.outcomes_after(runs);
            assert_eq!(outcomes.len(), runs, "one connection per run: {outcomes:?}");
            assert_no_handshake_completed(&outcomes);
        }
    }
}

fn stream(rest_url: &str, ws_url: &str, dir: &Path, symbol: &str) -> Command {
    let mut cmd = common::stream_command(symbol, rest_url, ws_url, dir);
    cmd.args(["--max-runtime", "3s"])
        .env("KLINECAST_BACKOFF_MS", "100")
        .env("KLINECAST_BACKOFF_MAX_MS", "300")
        .env("KLINECAST_CONNECT_TIMEOUT_MS", "3000")
        .env_remove("KLINECAST_MAX_KLINES")
        .envs(plausible_overrides());
    cmd
}

/// Backs "Remote hosts are always TLS-verified … no switch turns that off" for `stream` over
/// `wss://`: with both URLs on the self-signed server and every plausible override variable
/// set, each WebSocket connect is refused with a message naming the host and saying the
/// certificate is not trusted, the stream keeps retrying with backoff until `--max-runtime`,
/// never counts a connection, never completes a handshake and stores nothing.
/// Backs README claim [C5]: Remote hosts are always TLS-verified against the bundled roots; no switch or variable turns that off.
#[test]
fn stream_refuses_a_self_signed_certificate_over_wss() {
    let server = SelfSignedServer::start();
    let dir = TempDir::new("tls-stream-wss");
    let rest = format!("https://localhost:{}", server.port);
    let ws = format!("wss://localhost:{}/ws", server.port);
    let out = stream(&rest, &ws, dir.path(), "BTCUSDT")
        .output()
        .expect("run stream");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let log = std::fs::read_to_string(dir.path().join("log/stream.log")).expect("stream.log");
    let refused = log
        .lines()
        .filter(|l| l.contains("connect failed: the TLS certificate of localhost is not trusted"))
        .count();
    assert!(refused >= 2, "expected repeated refusals:\n{log}");
    assert!(
        err.contains("the TLS certificate of localhost is not trusted"),
        "not on stderr: {err}"
    );
    assert!(
        !log.contains("connected ("),
        "a connection was accepted:\n{log}"
    );
    assert!(log.contains("stream stop (Deadline)"), "{log}");
    assert_eq!(stored_rows(&dir.path().join("data")), 0);
    let outcomes = server.outcomes_after(refused);
    assert!(outcomes.len() >= refused, "{outcomes:?}");
    assert_no_handshake_completed(&outcomes);
}

/// Backs "Remote hosts are always TLS-verified … no switch turns that off" for the REST side of
/// `stream`: the WebSocket is a plain `ws://` replay server on 127.0.0.1 (allowed for loopback),
/// REST is `https://localhost` on the self-signed server; every gap fill is refused at the first
/// attempt with a message naming the host and saying the certificate is not trusted, with every
/// plausible override variable set, and the server never completes a handshake.
/// Backs README claim [C5]: Remote hosts are always TLS-verified against the bundled roots; no switch or variable turns that off.
#[test]
fn stream_refuses_a_self_signed_certificate_over_https() {
    let server = SelfSignedServer::start();
    let replay = common::replay_server(common::sample_klines(900), 600, 600.0, "");
    let dir = TempDir::new("tls-stream-https");
    let rest = format!("https://localhost:{}", server.port);
    let out = stream(&rest, &replay.ws_url(), dir.path(), "AVAXUSDT")
        .output()
        .expect("run stream");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let log = std::fs::read_to_string(dir.path().join("log/stream.log")).expect("stream.log");
    let needle = format!(
        "gap fill over rest failed: AVAXUSDT 1m: https://localhost:{}/api/v3/time: the TLS certificate of \
         localhost is not trusted",
        server.port
    );
    let refused = log.lines().filter(|l| l.contains(&needle)).count();
    assert!(refused >= 1, "{needle:?} missing:\n{log}");
    assert!(
        !log.contains("retrying in"),
        "a trust failure was retried:\n{log}"
    );
    let outcomes = server.outcomes_after(refused);
    assert!(outcomes.len() >= refused, "{outcomes:?}");
    assert_no_handshake_completed(&outcomes);
}

/// Backs "no switch turns that off" (README, `klinecast collect` URLs and the bad-input row
/// "turning TLS verification off"): the switches other tools use for it are unknown options to
/// `collect` and `stream` (exit 2) and nothing is contacted.
/// Backs README claim [C5]: Remote hosts are always TLS-verified against the bundled roots; no switch or variable turns that off.
#[test]
fn no_command_line_switch_turns_verification_off() {
    let server = SelfSignedServer::start();
    let url = format!("https://localhost:{}", server.port);
    let dir = TempDir::new("tls-switches");
    for switch in [
        "--insecure",
        "--no-verify",
        "--no-check-certificate",
        "--danger-accept-invalid-certs",
        "--tls-verify",
        "--ca-file",
        "-k",
    ] {
        for command in ["collect", "stream"] {
            let out = klinecast_command()
                .args([command, switch, "--rest-url", &url])
                .arg("--data-dir")
                .arg(dir.path())
                .output()
                .expect("run klinecast");
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{command} {switch}: {err}");
            let refused = [
                format!("unknown or misplaced option {switch}"),
                format!("unexpected argument \"{switch}\""),
            ];
            assert!(
                refused.iter().any(|r| err.contains(r)),
                "{command} {switch}: {err}"
            );
        }
    }
    thread::sleep(Duration::from_millis(200));
    assert_eq!(server.outcomes_after(0), Vec::<String>::new());
}
