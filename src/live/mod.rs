//! The live stream: two threads joined by one `std::sync::mpsc` channel, each piece of state
//! with one owner and nothing shared:
//! - the streaming thread ([`stream_thread`]) owns the WebSocket, the REST client and the kline
//!   store; it appends every closed kline exactly once, in order, then sends it on;
//! - the ensembling thread ([`ensembler`]) owns the learner and the model, prediction and
//!   buffer files;
//! - the calling thread holds the single-instance lock ([`lock`]) and relays the ensembler's
//!   events to an observer (`demo` prints them).
//!
//! `klinecast stream` and `demo` run it with a [`StreamConfig`] they build.
//!
//! Start-up, local first: the ensembling thread loads and checks the saved ensemble and the
//! trained models ([`Ensembler::prepare`]) while the streaming thread asks REST about the
//! newest stored klines (one attempt); the streaming thread writes nothing until those checks
//! pass (`go`; a failure such as a horizon mismatch stops the run with nothing written), then
//! repairs the store if needed, hands the ensembler its history and connects the WebSocket while
//! the ensembler refits the saved generations ([`ensembler::Prepared::finish`]). REST retries and
//! pauses, request timeouts and WebSocket connects all end at `--max-runtime`.
//!
//! Hidden tuning knobs (environment, for tests and slow links; milliseconds):
//! `KLINECAST_WS_IDLE_MS` (watchdog, default 30000), `KLINECAST_WS_POLL_MS` (socket read
//! timeout, default 1000), `KLINECAST_CONNECT_TIMEOUT_MS` (default 10000),
//! `KLINECAST_BACKOFF_MS` / `KLINECAST_BACKOFF_MAX_MS` (reconnect delay, default 1000 / 60000),
//! `KLINECAST_ROTATE_MS` (planned reconnect, default 23 h 30 m), `KLINECAST_MAX_KLINES`
//! (stop after that many new closed klines), and `KLINECAST_SAVE_EVERY` (save the ensemble
//! every N windows, default 1; a count, not milliseconds).

pub mod ensembler;
pub(crate) mod events;
pub mod lock;
pub mod predictions;
pub(crate) mod stream_thread;
pub(crate) mod window_log;

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::backfill::KlinesRequest;
use crate::binance::rest::RestClient;
use crate::binance::ws::{self, KlineSocket, WsConfig, WsError, WsRead};
use crate::binance::{tls, BinanceError};
use crate::error::Error;
use crate::kline::{Interval, Kline, Symbol};
use crate::log::{stamp, wall_clock_ms, Logger, SharedLogger};
use crate::settings::LearnSettings;
use crate::store::{self, KlineStore};

use ensembler::{Ensembler, EnsemblerConfig, EnsemblerSummary, LiveEvent};
use lock::LockOutcome;
use stream_thread::{
    Connect, Frames, Handshake, Limits, Rest, StopReason, StreamSettings, StreamStats, StreamThread,
};

pub(crate) use stream_thread::Timing;

/// What one stream works on: the market, its directories, Binance's URLs, how it learns and for
/// how long (`klinecast stream`'s command line; `demo` fills one for its replay).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSpec {
    pub symbol: Symbol,
    pub interval: Interval,
    pub data_dir: PathBuf,
    pub models_dir: PathBuf,
    pub log_dir: PathBuf,
    pub rest_url: String,
    pub ws_url: String,
    /// How the ensemble learns (`--window`, `--refit-rows`, `--generations`, `--horizon`,
    /// `--seed`, …).
    pub learn: LearnSettings,
    /// Stop after this many milliseconds of wall time.
    pub max_runtime: Option<u64>,
}

/// Everything `klinecast stream` (and `demo`) needs to run.
#[derive(Debug, Clone)]
pub(crate) struct StreamConfig {
    /// Symbol, interval, directories, URLs, learning settings (with the fit threads filled
    /// in) and the run-time limit.
    pub args: StreamSpec,
    pub max_klines: Option<u64>,
    pub ws: WsConfig,
    pub timing: Timing,
    /// Save the ensemble every this many windows.
    pub save_every: u64,
    /// Mirror important log lines to stderr.
    pub stderr: bool,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub(crate) enum RunOutcome {
    /// Another `klinecast stream` holds the lock of this data directory.
    AlreadyRunning {
        holder: String,
    },
    Finished(RunSummary),
}

/// What a finished run did.
#[derive(Debug, Clone)]
pub(crate) struct RunSummary {
    pub stop: StopReason,
    pub stream: StreamStats,
    pub ensembler: EnsemblerSummary,
    pub seconds: f64,
}

/// Newest stored rows `stream` validates at start: more than the start-up check against REST
/// ([`backfill::CHECK_ROWS`]) and the ensembler's history with its replay read (more when
/// `--refit-rows` is larger).
const VERIFY_ROWS: usize = 5000;

/// The REST client behind the stream thread's [`Rest`] trait (delegating to `backfill`'s
/// impl for [`RestClient`]); its notices go to stream.log as they happen (the client's
/// notifier writes them), so a retry carries the time it was made.
struct LiveRest {
    client: RestClient,
}

impl Rest for LiveRest {
    fn server_time(&mut self) -> Result<i64, BinanceError> {
        Rest::server_time(&mut self.client)
    }

    fn klines(&mut self, request: &KlinesRequest<'_>) -> Result<Vec<Kline>, BinanceError> {
        Rest::klines(&mut self.client, request)
    }

    fn single_attempt(&mut self, on: bool) {
        self.client.set_single_attempt(on);
    }
}

struct LiveConnector {
    url: String,
    config: WsConfig,
    /// The run's end: a connect (TCP, TLS and WebSocket handshakes) never waits past it.
    deadline: Option<Instant>,
}

impl Connect for LiveConnector {
    fn connect(&mut self) -> Result<Box<dyn Frames>, WsError> {
        let mut config = self.config;
        if let Some(d) = self.deadline {
            let left = d.saturating_duration_since(Instant::now());
            config.connect_timeout = config
                .connect_timeout
                .min(left.max(Duration::from_millis(1)));
        }
        Ok(Box::new(KlineSocket::connect(&self.url, &config)?))
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}

impl Frames for KlineSocket {
    fn read(&mut self) -> Result<WsRead, WsError> {
        KlineSocket::read(self)
    }

    fn age(&self) -> Duration {
        KlineSocket::age(self)
    }

    fn close(self: Box<Self>) {
        KlineSocket::close(*self)
    }
}

/// Runs the stream until `max_runtime`, `max_klines` or a fatal error; `observer` sees every
/// ensembler event on the calling thread.
pub(crate) fn run_stream(
    config: &StreamConfig,
    observer: &mut dyn FnMut(&LiveEvent),
) -> Result<RunOutcome, Error> {
    let started = Instant::now();
    let deadline = config
        .args
        .max_runtime
        .map(|ms| started + Duration::from_millis(ms));
    let whoami = lock::whoami(std::process::id(), &stamp(wall_clock_ms()));
    // Check both URLs before touching any file: a typo is a configuration error (exit 2).
    tls::check_base_url(&config.args.rest_url, "https", "http")
        .map_err(|e| Error::Config(e.to_string()))?;
    tls::check_base_url(&config.args.ws_url, "wss", "ws")
        .map_err(|e| Error::Config(e.to_string()))?;
    let _lock = match lock::acquire(&config.args.data_dir, &whoami).map_err(|e| {
        Error::io(
            format!(
                "locking {}",
                config.args.data_dir.join(lock::LOCK_FILE).display()
            ),
            e,
        )
    })? {
        LockOutcome::Busy { holder } => return Ok(RunOutcome::AlreadyRunning { holder }),
        LockOutcome::Acquired(l) => l,
    };
    let ws_url = ws::stream_url(
        &config.args.ws_url,
        &config.args.symbol,
        config.args.interval,
    );

    let stream_log = SharedLogger::new(
        Logger::open(&config.args.log_dir.join("stream.log"), "klinecast stream")
            .map_err(|e| Error::io("opening stream.log", e))?
            .mirror_stderr(config.stderr),
    );
    stream_log.info(&format!("klinecast stream {whoami}"));
    let store_path = store::kline_path(
        &config.args.data_dir,
        &config.args.symbol,
        config.args.interval,
    );
    // Only the newest rows are validated: a start costs the same with years of history.
    let (store, report) = KlineStore::open_recent(
        &store_path,
        VERIFY_ROWS.max(config.args.learn.refit_rows + 2 * ensembler::MAX_REPLAY),
    )?;
    if let Some(msg) = report.repair_message(&store_path) {
        stream_log.warn(&msg);
    }
    // Retries are logged when they happen, with their own time.
    let notes = stream_log.clone();
    let client = RestClient::new(&config.args.rest_url)?
        .with_deadline(deadline)
        .with_notifier(move |msg| notes.info(&format!("rest: {msg}")));
    let rest = LiveRest { client };

    // Start-up, local first: the ensembling thread loads and checks the saved ensemble and the
    // trained models while the streaming thread asks REST about the newest stored klines; the
    // streaming thread writes nothing until those checks pass (`go`), then repairs the store if
    // needed and hands the ensembler its history, which it refits while the WebSocket connects.
    let (event_tx, event_rx) = mpsc::channel::<LiveEvent>();
    let ens_config = EnsemblerConfig {
        data_dir: config.args.data_dir.clone(),
        models_dir: config.args.models_dir.clone(),
        log_dir: config.args.log_dir.clone(),
        interval_ms: config.args.interval.ms(),
        ensemble: config.args.learn.ensemble_config(),
        fit: config.args.learn.refit_config(),
        save_every: config.save_every,
    };
    let (go_tx, go_rx) = mpsc::channel::<usize>();
    let (history_tx, history_rx) = mpsc::channel::<Vec<Kline>>();
    let connector = LiveConnector {
        url: ws_url,
        config: config.ws,
        deadline,
    };
    let (kline_tx, kline_rx) = mpsc::channel();
    let settings = StreamSettings {
        symbol: config.args.symbol.clone(),
        interval: config.args.interval,
        timing: config.timing,
        limits: Limits {
            deadline,
            max_klines: config.max_klines,
        },
        initial_rows: 2 * config.args.learn.refit_rows + 500,
        seed: config.args.learn.seed,
    };
    let streamer = StreamThread::new(settings, rest, connector, store, kline_tx, stream_log)
        .with_handshake(Handshake {
            go: go_rx,
            history: history_tx,
        });
    let ensembling = move || -> Result<EnsemblerSummary, Error> {
        // An error here drops `go_tx`: the streaming thread stops without writing.
        let prepared = Ensembler::prepare(&ens_config, event_tx)?;
        if go_tx.send(prepared.rows_needed()).is_err() {
            return Ok(EnsemblerSummary::default());
        }
        drop(go_tx);
        // No history: the streaming thread stopped first (deadline), nothing to learn.
        let Ok(history) = history_rx.recv() else {
            return Ok(EnsemblerSummary::default());
        };
        let (ensembler, replay) = prepared.finish(history)?;
        ensembler.run(replay, kline_rx)
    };

    let (stream_result, ens_result) = thread::scope(|scope| {
        let stream_handle = thread::Builder::new()
            .name("stream".into())
            .spawn_scoped(scope, move || streamer.run());
        let ens_handle = thread::Builder::new()
            .name("ensembler".into())
            .spawn_scoped(scope, ensembling);
        for event in event_rx {
            observer(&event);
        }
        let stream_result = joined(stream_handle, "stream");
        let ens_result = joined(ens_handle, "ensembling");
        (stream_result, ens_result)
    });
    let ensembler = ens_result?;
    let (stop, stream) = stream_result?;
    Ok(RunOutcome::Finished(RunSummary {
        stop,
        stream,
        ensembler,
        seconds: started.elapsed().as_secs_f64(),
    }))
}

/// Joins a scoped thread, turning a failed spawn or a panic into an error.
fn joined<T>(
    handle: std::io::Result<thread::ScopedJoinHandle<'_, Result<T, Error>>>,
    name: &str,
) -> Result<T, Error> {
    match handle {
        Err(e) => Err(Error::io(format!("starting the {name} thread"), e)),
        Ok(h) => h
            .join()
            .unwrap_or_else(|_| Err(Error::Data(format!("the {name} thread panicked")))),
    }
}

/// `(median, p95, max)` of a sample (zeros when empty).
pub(crate) fn spread(values: &[f64]) -> (f64, f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95), v[v.len() - 1])
}

/// The peak resident memory of this process (`VmHWM`, Linux), in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    peak_rss_kib_of("self")
}

/// The peak resident memory (`VmHWM`, Linux) of process `pid` (a number, or `self`), in KiB.
pub(crate) fn peak_rss_kib_of(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// One line with the costs of a run: per-kline step, per-window refit + save, peak memory.
pub(crate) fn timing_line(summary: &RunSummary) -> String {
    let (k50, k95, kmax) = spread(&summary.ensembler.kline_seconds);
    let (w50, w95, wmax) = spread(&summary.ensembler.window_seconds);
    format!(
        "per kline (forecast + files): median {:.2} ms, p95 {:.2} ms, max {:.2} ms; per window \
         (refit + save): median {:.3} s, p95 {:.3} s, max {:.3} s; peak memory (VmHWM) {}",
        k50 * 1e3,
        k95 * 1e3,
        kmax * 1e3,
        w50,
        w95,
        wmax,
        peak_rss_kib().map_or("unknown".to_string(), |k| format!(
            "{:.1} MiB",
            k as f64 / 1024.0
        ))
    )
}
