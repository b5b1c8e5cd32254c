//! Helpers shared by the process-level tests in `tests/*.rs` (each test file says `mod common;`):
//! start the built `klinecast` binary, make unique temporary directories, kill children on drop,
//! poll for a condition, and the sample data and replay servers the tests share. They hold no
//! test logic, contact only 127.0.0.1, and write only inside their own temp directories.
//!
//! Always start the binary with [`klinecast_command`], never `Command::new(env!(..))`: when the
//! tests are built for another architecture (`cargo test --target aarch64-unknown-linux-gnu` on
//! an x86 machine, as `scripts/test-aarch64.sh` and CI do), cargo runs the test process under
//! qemu-user, but a child it spawns is exec'd by the host kernel, which cannot run an aarch64
//! binary unless binfmt_misc is registered (CI's container has none). So the command is prefixed
//! with the emulator named in `KLINECAST_TEST_RUNNER` (e.g. `qemu-aarch64 -L /usr/aarch64-linux-gnu`)
//! when that is set; `scripts/target-runner.sh` sets it. Natively the variable is unset and the
//! binary runs directly. Killing the child kills the emulated program too.
#![allow(dead_code)] // Reason: each test crate uses only some of these helpers.

pub mod fixtures;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use klinecast::kline::{Interval, Kline, Symbol};
use klinecast::replay::{Faults, ReplayConfig, ReplayServer, ReplaySetup, Series};

/// The real klines that ship with the repository (AVAXUSDT 1m, 30,240 rows).
pub const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/AVAXUSDT_1m.csv");

/// The environment variable holding the emulator command line that prefixes the binary.
pub const RUNNER_VAR: &str = "KLINECAST_TEST_RUNNER";

/// Path of the `klinecast` binary cargo built for these tests.
pub fn klinecast_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_klinecast"))
}

/// A `Command` that runs the built `klinecast` binary, through `KLINECAST_TEST_RUNNER` when it is
/// set. Add arguments, environment and stdio to it as to any `Command`.
pub fn klinecast_command() -> Command {
    let runner = std::env::var(RUNNER_VAR).ok();
    command_with_runner(runner.as_deref(), klinecast_bin())
}

/// A `Command` for `program`, prefixed by `runner` split on whitespace (program, then its
/// arguments); `None` or a blank runner runs `program` directly.
pub fn command_with_runner(runner: Option<&str>, program: &Path) -> Command {
    let mut words = runner.unwrap_or("").split_whitespace();
    match words.next() {
        Some(emulator) => {
            let mut command = Command::new(emulator);
            command.args(words).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// A fresh, empty directory under the system temp dir, removed with everything in it on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<temp>/klinecast-<name>-<pid>-<n>`; `name` should be the test's name.
    pub fn new(name: &str) -> TempDir {
        TempDir::new_in(&std::env::temp_dir(), name)
    }

    /// Like [`TempDir::new`], under /dev/shm when there is one (for tests that write and fsync
    /// many small files), else the system temp dir.
    pub fn new_in_memory(name: &str) -> TempDir {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            TempDir::new_in(shm, name)
        } else {
            TempDir::new(name)
        }
    }

    fn new_in(base: &Path, name: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = base.join(format!("klinecast-{name}-{}-{n}", std::process::id()));
        // A leftover from a killed run with the same pid would make the test see stale files.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("creating the test's temp dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `<dir>/<name>` (not created).
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Kills a child process when dropped (a failing test must not leave servers behind).
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `cond` every 50 ms; panics with `what` after `limit` (a liveness bound, not a timing
/// assertion: the limits are far above what the steps need).
pub fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `cond` every 20 ms; after `limit`, panics with `what` and the log file at `log` (the
/// process's stream.log), so a timeout shows what the stream did.
pub fn wait_showing(log: &Path, limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > limit {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            panic!("timed out waiting for {what}; stream.log:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The first `rows` klines of [`SAMPLE`].
pub fn sample_klines(rows: usize) -> Vec<Kline> {
    let mut klines = klinecast::store::load_klines(Path::new(SAMPLE)).expect("the sample loads");
    klines.truncate(rows);
    klines
}

/// `count` different series over the same minutes, `n` rows each: series `i` is the sample's
/// rows from `i × 5000` on, carrying the open and close times of its first `n` rows, so a kline
/// that reached the wrong symbol's store cannot go unnoticed (tests/symbols.rs,
/// tests/connections.rs).
pub fn symbol_sources(count: usize, n: usize) -> Vec<Vec<Kline>> {
    let skip = count.saturating_sub(1) * 5000;
    let sample = sample_klines(skip + n);
    assert_eq!(sample.len(), skip + n, "the sample is long enough");
    (0..count)
        .map(|i| {
            sample[i * 5000..i * 5000 + n]
                .iter()
                .zip(&sample[..n])
                .map(|(k, at)| Kline {
                    open_time: at.open_time,
                    close_time: at.close_time,
                    ..k.clone()
                })
                .collect()
        })
        .collect()
}

/// `root/data/<SYMBOL>_1m.csv`.
pub fn store_path(root: &Path, symbol: &str) -> PathBuf {
    let symbol = Symbol::parse(symbol).expect("symbol");
    klinecast::store::kline_path(&root.join("data"), &symbol, Interval::ONE_MINUTE)
}

/// Creates `root`'s store of `symbol` holding `history`; its path.
pub fn seed_store(root: &Path, symbol: &str, history: &[Kline]) -> PathBuf {
    let path = store_path(root, symbol);
    let (mut store, _) = klinecast::store::KlineStore::open(&path).expect("open the store");
    store.append(history).expect("seed the store");
    path
}

/// Complete data rows in a store file (0 when it cannot be read).
pub fn stored_rows(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.matches('\n').count().saturating_sub(1))
        .unwrap_or(0)
}

/// An in-process replay server on 127.0.0.1 serving `klines` as AVAXUSDT 1m, its clock at
/// `start_row`, `speed` virtual ms per real ms, with the fault switches `faults`.
pub fn replay_server(
    klines: Vec<Kline>,
    start_row: usize,
    speed: f64,
    faults: &str,
) -> ReplayServer {
    replay_server_on(0, klines, start_row, speed, faults)
}

/// [`replay_server`] on 127.0.0.1:`port` (0: any free port).
pub fn replay_server_on(
    port: u16,
    klines: Vec<Kline>,
    start_row: usize,
    speed: f64,
    faults: &str,
) -> ReplayServer {
    ReplayServer::start(ReplayConfig {
        klines,
        symbol: Symbol::parse("AVAXUSDT").expect("symbol"),
        interval: Interval::ONE_MINUTE,
        start_row,
        speed,
        faults: Faults::parse(faults).expect("fault spec"),
        port,
    })
    .expect("start the replay server")
}

/// An in-process replay server on 127.0.0.1 serving each `(symbol, klines)` at 1m under one
/// clock at row `start_row` of the first, `speed` virtual ms per real ms, with `faults`.
pub fn replay_server_of(
    series: &[(&str, Vec<Kline>)],
    start_row: usize,
    speed: f64,
    faults: &str,
) -> ReplayServer {
    ReplayServer::start_setup(ReplaySetup {
        series: series
            .iter()
            .map(|(symbol, klines)| Series {
                symbol: Symbol::parse(symbol).expect("symbol"),
                interval: Interval::ONE_MINUTE,
                klines: klines.clone(),
            })
            .collect(),
        start_row,
        speed,
        faults: Faults::parse(faults).expect("fault spec"),
        port: 0,
    })
    .expect("start the replay server")
}

/// Spawns `klinecast replay-server ARGS` (its stderr discarded) and waits for its listening
/// line; returns the process (killed when dropped) and its REST base URL.
pub fn spawn_replay_server<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (KillOnDrop, String) {
    use std::io::BufRead;
    let child = klinecast_command()
        .arg("replay-server")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start replay-server");
    let mut server = KillOnDrop(child);
    let stdout = server.0.stdout.take().expect("piped stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("listening line");
    let rest = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("rest="))
        .unwrap_or_else(|| panic!("no rest= in {line:?}"))
        .to_string();
    (server, rest)
}

/// A port on 127.0.0.1 that nothing listens on (bound once by the OS's choice, then released):
/// connections to it are refused, as with the network down, until a server is started on it.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// `good` as an older version could have stored it while the candle was still open: open =
/// high = low = close, no volume and no trades.
pub fn partial_candle(good: &Kline) -> Kline {
    Kline {
        high: good.open.clone(),
        low: good.open.clone(),
        close: good.open.clone(),
        volume: "0".into(),
        quote_volume: "0".into(),
        trades: 0,
        taker_buy_base: "0".into(),
        taker_buy_quote: "0".into(),
        ..good.clone()
    }
}

/// `klinecast stream --symbols SYMBOLS --interval 1m` (one symbol or a list) against `rest_url`
/// and `ws_url`, with the small test ensemble (window 5, refit on 200 rows, 2 generations) and
/// its files in `root/data`, `root/models` and `root/log`. Add limits, environment and stdio as
/// the test needs.
pub fn stream_command(symbols: &str, rest_url: &str, ws_url: &str, root: &Path) -> Command {
    let mut cmd = klinecast_command();
    cmd.args(["stream", "--symbols", symbols, "--interval", "1m"])
        .args(["--rest-url", rest_url, "--ws-url", ws_url])
        .args(["--window", "5", "--refit-rows", "200", "--generations", "2"])
        .arg("--data-dir")
        .arg(root.join("data"))
        .arg("--models-dir")
        .arg(root.join("models"))
        .arg("--log-dir")
        .arg(root.join("log"));
    cmd
}

/// The store's CSV text of `klines`: the header, then one line per kline.
pub fn csv_text(klines: &[Kline]) -> String {
    let mut text = format!("{}\n", klinecast::kline::CSV_HEADER);
    for k in klines {
        text.push_str(&k.to_csv_line());
        text.push('\n');
    }
    text
}

/// Waits up to `limit` for `stream` to end, asserts that it exited with status 0, and returns
/// its output.
pub fn wait_success(mut child: Child, limit: Duration) -> std::process::Output {
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            let out = child.wait_with_output().expect("output");
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            return out;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "klinecast stream did not finish: stderr {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `kill -9` of a running `stream` with the replay server's clock stopped at that instant: no
/// candle closes until [`resume_when_connected`], so a restart meets the same klines however
/// slow the machine is (qemu, load). Without the pause a slow restart could catch up to its
/// kline limit over REST alone and never meet the WebSocket faults it is there to meet.
pub fn kill_and_pause(srv: &ReplayServer, mut child: Child) {
    child.kill().expect("kill -9");
    srv.pause_clock();
    let _ = child.wait();
}

/// Waits until the restarted `child` has opened a WebSocket session (more than `before` since
/// the server started: past its start-up refits), then starts the server's clock again.
/// Panics with the child's stderr if it exits first, or after `limit`.
pub fn resume_when_connected(srv: &ReplayServer, child: &mut Child, before: u64, limit: Duration) {
    let start = Instant::now();
    while srv.ws_sessions() <= before {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
            }
            panic!("the restarted stream exited ({status}) before it connected: {stderr}");
        }
        assert!(
            start.elapsed() < limit,
            "timed out waiting for the restarted stream to connect"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    srv.resume_clock();
}

/// The rows of a predictions.csv at `path`, checked: the current header, then targets that
/// ascend by one minute with no duplicate and no hole, each `horizon` minutes after the kline
/// it was made after, with finite positive prices.
pub fn check_predictions(
    path: &Path,
    horizon: i64,
) -> Vec<klinecast::live::predictions::PredictionRow> {
    use klinecast::live::predictions::{PredictionRow, HEADER};
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(HEADER));
    let rows: Vec<PredictionRow> = lines
        .map(|l| PredictionRow::from_csv_line(l).unwrap_or_else(|| panic!("bad row {l:?}")))
        .collect();
    for w in rows.windows(2) {
        assert_eq!(
            w[1].target_open_time,
            w[0].target_open_time + 60_000,
            "{}: targets ascend by one kline, no duplicate, no hole",
            path.display()
        );
    }
    for r in &rows {
        assert_eq!(
            r.made_after_open_time + horizon * 60_000,
            r.target_open_time
        );
        assert!(r.forecast.is_finite() && r.forecast > 0.0 && r.naive > 0.0);
    }
    rows
}

/// `train --data <store_path> --models-dir <models>` and `extra`, which must succeed.
pub fn train(store_path: &Path, models: &Path, extra: &[&str]) {
    let out = klinecast_command()
        .arg("train")
        .arg("--data")
        .arg(store_path)
        .arg("--models-dir")
        .arg(models)
        .args(extra)
        .output()
        .expect("run train");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The last phase of the fault tests: `srv` sends a serverShutdown after 3 finals and
/// duplicates finals again, and the `stream` in `child` must then end at its kline limit with
/// status 0 within `limit`.
pub fn shutdown_then_limit(srv: &ReplayServer, child: Child, limit: Duration) {
    srv.set_faults(Faults::parse("shutdown-after=3,dup-finals,ping-ms=300").expect("faults"));
    let out = wait_success(child, limit);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("stream stopped (KlineLimit)"), "{stdout}");
}

/// Asserts that a stream.log shows each fault of the fault tests was met: a bad frame, a stall,
/// a serverShutdown, a gap fill (its line begins with `gap_fill`), a REST notice and at least
/// one dropped duplicate.
pub fn assert_faults_met(stream_log: &str, gap_fill: &str) {
    for needle in [
        "bad frame #1 ignored",
        "connection lost: no data or ping",
        "serverShutdown",
        gap_fill,
        "rest: ",
    ] {
        assert!(
            stream_log.contains(needle),
            "stream.log lacks {needle:?}:\n{stream_log}"
        );
    }
    assert!(
        stream_log
            .lines()
            .any(|l| l.contains("duplicates dropped") && !l.contains("duplicates dropped 0,")),
        "no duplicate was counted"
    );
}

/// [`stream_command`] with the fault tests' short WebSocket idle and poll times and backoffs, no
/// kline limit, stdout and stderr piped.
pub fn quick_stream_command(symbols: &str, rest_url: &str, ws_url: &str, root: &Path) -> Command {
    let mut cmd = stream_command(symbols, rest_url, ws_url, root);
    cmd.env("KLINECAST_WS_IDLE_MS", "900")
        .env("KLINECAST_WS_POLL_MS", "100")
        .env("KLINECAST_BACKOFF_MS", "50")
        .env("KLINECAST_BACKOFF_MAX_MS", "400")
        .env_remove("KLINECAST_MAX_KLINES")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd
}
