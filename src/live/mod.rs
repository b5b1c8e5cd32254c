//! The live stream of one or more symbols: two threads joined by `std::sync::mpsc` channels,
//! each piece of state with one owner and nothing shared:
//! - the streaming thread ([`stream_thread`]) owns the WebSocket connection (all symbols'
//!   streams on one up to the per-connection limit, 1024; past it `ceil(n / 1024)`
//!   connections polled in turn), the REST client and one kline store per symbol; it appends
//!   every closed kline exactly once per symbol, in order, then sends it on;
//! - the ensembling thread ([`schedule`]) owns one [`ensembler`] per symbol (its learner and its
//!   model, prediction and buffer files), forecasts first and refits between batches;
//! - the calling thread holds the single-instance lock ([`lock`]) and relays the ensemblers'
//!   events to an observer (`demo` prints them).
//!
//! `klinecast stream` and `demo` run it with a [`StreamConfig`] they build: the symbols and the
//! places of their files ([`SymbolConfig`], from [`crate::layout`]).
//!
//! Start-up, local first: the ensembling thread loads and checks every symbol's saved ensemble
//! and trained models ([`Ensembler::prepare`]) while the streaming thread asks REST about the
//! newest stored klines (one attempt each); the streaming thread writes nothing until those
//! checks are done (`go`; when no symbol passes, such as on a horizon mismatch of the only
//! one, the run stops with nothing written), then repairs the stores if needed, hands the
//! ensemblers their history and connects the WebSocket while the ensemblers refit the saved
//! generations ([`ensembler::Prepared::finish`]). REST retries and pauses, request timeouts and
//! WebSocket connects all end at `--max-runtime`. One symbol's trouble stays its own: a store
//! that does not open or an ensembler that cannot start leaves that symbol out (named in
//! `stream.log` and on stderr), a bad model file makes it run without that model; the others
//! go on.
//!
//! Hidden tuning knobs (environment, for tests and slow links; milliseconds):
//! `KLINECAST_WS_IDLE_MS` (watchdog, default 30000), `KLINECAST_WS_POLL_MS` (socket read
//! timeout, default 1000), `KLINECAST_CONNECT_TIMEOUT_MS` (default 10000),
//! `KLINECAST_BACKOFF_MS` / `KLINECAST_BACKOFF_MAX_MS` (reconnect delay, default 1000 / 60000),
//! `KLINECAST_ROTATE_MS` (planned reconnect, default 23 h 30 m), `KLINECAST_MAX_KLINES`
//! (stop after that many new closed klines of every symbol), `KLINECAST_SAVE_EVERY` (save
//! the ensemble every N windows, default 1; a count, not milliseconds), and
//! `KLINECAST_WS_MAX_STREAMS` (streams per connection, 1 to 1024, default 1024; a count).

pub(crate) mod corr_gate;
pub mod ensembler;
pub(crate) mod events;
pub mod lock;
pub mod predictions;
pub(crate) mod schedule;
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
use crate::layout::{self, Dirs, Legacy, SymbolLayout};
use crate::log::{stamp, wall_clock_ms, Logger, SharedLogger};
use crate::persist;
use crate::settings::LearnSettings;
use crate::store::KlineStore;

use ensembler::{EnsemblerConfig, EnsemblerSummary, LiveEvent};
use lock::LockOutcome;
use schedule::{Startup, Wiring};
use stream_thread::{
    Connect, Feed, Frames, Handshake, Limits, Rest, StopReason, StreamSettings, StreamStats,
    StreamThread,
};

pub(crate) use stream_thread::Timing;

/// One symbol of a stream and where its files are.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SymbolConfig {
    /// The symbol's files in its own folders.
    pub layout: SymbolLayout,
    /// The single-symbol layout its files may still be in (only when the run has this one
    /// symbol): read where they are when its own folders do not exist yet (see
    /// [`files_in_use`]).
    pub legacy: Option<Legacy>,
}

impl SymbolConfig {
    /// The symbols of a run under `dirs`: one symbol may still have its files in the
    /// single-symbol layout; several always use their own folders.
    pub fn all(dirs: &Dirs, symbols: &[Symbol], interval: Interval) -> Vec<SymbolConfig> {
        symbols
            .iter()
            .map(|symbol| SymbolConfig {
                layout: SymbolLayout::new(dirs, symbol, interval),
                legacy: (symbols.len() == 1).then(|| Legacy::new(dirs)),
            })
            .collect()
    }

    /// `<SYMBOL> <interval>`.
    pub fn name(&self) -> String {
        format!("{} {}", self.layout.symbol, self.layout.interval)
    }
}

/// Everything `klinecast stream` (and `demo`) needs to run.
#[derive(Debug, Clone)]
pub(crate) struct StreamConfig {
    /// The symbols, at least one, all at one interval; with the correlated ones more than
    /// `ws.max_streams` go over several connections.
    pub symbols: Vec<SymbolConfig>,
    /// `--corr`: the correlated symbols, streamed on the same connection (their klines stored
    /// in their stores) and given to each symbol's features, the symbol itself left out of its
    /// own list. A symbol in both lists is forecast and is also a neighbour.
    pub corr: Vec<Symbol>,
    pub interval: Interval,
    /// The process-wide places: the single-instance lock in `dirs.data`, `stream.log` in
    /// `dirs.log`.
    pub dirs: Dirs,
    pub rest_url: String,
    pub ws_url: String,
    /// How the ensembles learn (`--window`, `--refit-rows`, `--generations`, `--horizon`,
    /// `--seed`, …), with the fit threads filled in.
    pub learn: LearnSettings,
    /// Stop after this many milliseconds of wall time.
    pub max_runtime: Option<u64>,
    /// Stop once every symbol has this many new closed klines.
    pub max_klines: Option<u64>,
    pub ws: WsConfig,
    pub timing: Timing,
    /// Save each ensemble every this many windows.
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
    Finished(Box<RunSummary>),
}

/// What a finished run did.
#[derive(Debug, Clone)]
pub(crate) struct RunSummary {
    pub stop: StopReason,
    pub stream: StreamStats,
    /// All symbols together (the scoreboard is the symbol's when there is one).
    pub ensembler: EnsemblerSummary,
    /// Each symbol that ran to the end, with what its ensembler did.
    pub symbols: Vec<(String, EnsemblerSummary)>,
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
    /// The WebSocket base URL (`--ws-url`).
    base: String,
    interval: Interval,
    config: WsConfig,
    /// The run's end: a connect (TCP, TLS and WebSocket handshakes) never waits past it.
    deadline: Option<Instant>,
}

impl Connect for LiveConnector {
    fn connect(&mut self, symbols: &[Symbol]) -> Result<Box<dyn Frames>, WsError> {
        let mut config = self.config;
        if let Some(d) = self.deadline {
            let left = d.saturating_duration_since(Instant::now());
            config.connect_timeout = config
                .connect_timeout
                .min(left.max(Duration::from_millis(1)));
        }
        Ok(Box::new(KlineSocket::connect(
            &self.describe(symbols),
            &config,
        )?))
    }

    fn describe(&self, symbols: &[Symbol]) -> String {
        ws::streams_url(&self.base, symbols, self.interval)
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

/// Where one symbol's files are read and written in this run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SymbolFiles {
    pub store: PathBuf,
    /// `predictions.csv` and `Buffer_<window>.csv`.
    pub data: PathBuf,
    /// `Trained/` and `Ensembled/`.
    pub models: PathBuf,
    /// `ensemble.log` and `ensemble.jsonl`.
    pub log: PathBuf,
}

/// The symbol's own folders, unless it may use the single-symbol layout (`legacy`), its own
/// folders (data and models) do not exist yet and the single-symbol layout holds an
/// installation (trained models, a saved ensemble or `predictions.csv`): then its files are
/// read and written where they are. (The upgrade that moves them into the symbol's folders,
/// once, runs before this, under the lock; after it this finds the symbol's folders.)
pub(crate) fn files_in_use(config: &SymbolConfig) -> (SymbolFiles, bool) {
    let own = &config.layout;
    let legacy = config.legacy.as_ref().filter(|l| {
        !own.data.exists()
            && !own.models.exists()
            && (l.models.join(persist::TRAINED_DIR).exists()
                || persist::ensemble_path(&l.models).exists()
                || l.predictions.exists())
    });
    match legacy {
        Some(l) => (
            SymbolFiles {
                store: own.store.clone(),
                data: l.data.clone(),
                models: l.models.clone(),
                log: l
                    .window_log
                    .parent()
                    .map_or_else(|| own.log.clone(), PathBuf::from),
            },
            true,
        ),
        None => (
            SymbolFiles {
                store: own.store.clone(),
                data: own.data.clone(),
                models: own.models.clone(),
                log: own.log.clone(),
            },
            false,
        ),
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
        .max_runtime
        .map(|ms| started + Duration::from_millis(ms));
    let whoami = lock::whoami(std::process::id(), &stamp(wall_clock_ms()));
    check_config(config)?;
    let _lock = match lock::acquire(&config.dirs.data, &whoami).map_err(|e| {
        Error::io(
            format!(
                "locking {}",
                config.dirs.data.join(lock::LOCK_FILE).display()
            ),
            e,
        )
    })? {
        LockOutcome::Busy { holder } => return Ok(RunOutcome::AlreadyRunning { holder }),
        LockOutcome::Acquired(l) => l,
    };
    let stream_log = SharedLogger::new(
        Logger::open(&layout::stream_log(&config.dirs), "klinecast stream")
            .map_err(|e| Error::io("opening stream.log", e))?
            .mirror_stderr(config.stderr),
    );
    stream_log.info(&format!("klinecast stream {whoami}"));
    let (feeds, ens_configs) = open_symbols(config, &stream_log)?;
    let n_feeds = feeds.len();
    // Retries are logged when they happen, with their own time.
    let notes = stream_log.clone();
    let client = RestClient::new(&config.rest_url)?
        .with_deadline(deadline)
        .with_notifier(move |msg| notes.info(&format!("rest: {msg}")));
    let connector = LiveConnector {
        base: config.ws_url.clone(),
        interval: config.interval,
        config: poll_shared(config.ws, n_feeds),
        deadline,
    };
    let settings = StreamSettings {
        interval: config.interval,
        timing: config.timing,
        limits: Limits {
            deadline,
            max_klines: config.max_klines,
        },
        initial_rows: 2 * config.learn.refit_rows + 500,
        seed: config.learn.seed,
        max_streams: config.ws.max_streams,
    };
    let (kline_tx, kline_rx) = mpsc::channel();
    let streamer = StreamThread::new(
        settings,
        LiveRest { client },
        connector,
        feeds,
        kline_tx,
        stream_log.clone(),
    );
    let (stop, stream, summaries) = run_threads(
        streamer,
        kline_rx,
        &ens_configs,
        n_feeds,
        stream_log,
        observer,
    )?;
    let mut total = EnsemblerSummary::default();
    let mut symbols = Vec::new();
    for (config, summary) in ens_configs.iter().zip(summaries) {
        if let Some(summary) = summary {
            total.absorb(&summary);
            symbols.push((config.name.clone(), summary));
        }
    }
    if let [(_, one)] = &symbols[..] {
        total.scoreboard = one.scoreboard.clone();
    }
    Ok(RunOutcome::Finished(Box::new(RunSummary {
        stop,
        stream,
        ensembler: total,
        symbols,
        seconds: started.elapsed().as_secs_f64(),
    })))
}

/// Checks what can be checked before touching any file: both URLs (a typo is a configuration
/// error, exit 2) and the number of symbols.
fn check_config(config: &StreamConfig) -> Result<(), Error> {
    tls::check_base_url(&config.rest_url, "https", "http")
        .map_err(|e| Error::Config(e.to_string()))?;
    tls::check_base_url(&config.ws_url, "wss", "ws").map_err(|e| Error::Config(e.to_string()))?;
    if config.symbols.is_empty() {
        return Err(Error::Config(
            "stream takes at least one symbol".to_string(),
        ));
    }
    if !(1..=ws::MAX_STREAMS).contains(&config.ws.max_streams) {
        return Err(Error::Config(format!(
            "{} streams per connection: use 1 to {}",
            config.ws.max_streams,
            ws::MAX_STREAMS
        )));
    }
    Ok(())
}

/// The socket settings of each connection when `streams` streams are split over
/// `ceil(streams / max_streams)` connections polled in turn by one thread: each read waits at
/// most `poll / connections` (at least 1 ms), so that a quiet connection holds a busy one back
/// no longer than one connection's poll did.
fn poll_shared(ws: WsConfig, streams: usize) -> WsConfig {
    let connections = streams.div_ceil(ws.max_streams.max(1)).max(1);
    let per = u32::try_from(connections).unwrap_or(u32::MAX);
    WsConfig {
        poll: (ws.poll / per).max(Duration::from_millis(1)),
        ..ws
    }
}

/// The correlated symbols (`--corr`) that are not forecast: streamed and stored only.
fn neighbour_only(config: &StreamConfig) -> Vec<&Symbol> {
    config
        .corr
        .iter()
        .filter(|c| !config.symbols.iter().any(|s| &s.layout.symbol == *c))
        .collect()
}

/// Opens each symbol's store (only its newest rows are validated: a start costs the same with
/// years of history) and lays out its ensembler's files. A store that does not open leaves
/// its symbol out, named; the run fails only when none opens.
fn open_symbols(
    config: &StreamConfig,
    log: &SharedLogger,
) -> Result<(Vec<Feed>, Vec<EnsemblerConfig>), Error> {
    let rows = VERIFY_ROWS.max(config.learn.refit_rows + 2 * ensembler::MAX_REPLAY);
    let mut feeds = Vec::new();
    let mut ens_configs = Vec::new();
    let mut first_error = None;
    for symbol in &config.symbols {
        let name = symbol.name();
        let (files, legacy) = files_in_use(symbol);
        if legacy {
            log.info(&format!(
                "{name}: its files are in the single-symbol layout ({}, {}): used where they are",
                files.data.display(),
                files.models.display()
            ));
        }
        let (store, report) = match KlineStore::open_recent(&files.store, rows) {
            Ok(opened) => opened,
            Err(e) => {
                let e = Error::from(e);
                if config.symbols.len() > 1 {
                    log.warn(&format!("{name}: not streamed: {e}"));
                }
                first_error.get_or_insert(e);
                continue;
            }
        };
        if let Some(msg) = report.repair_message(&files.store) {
            log.warn(&msg);
        }
        feeds.push(Feed::new(feeds.len(), symbol.layout.symbol.clone(), store));
        ens_configs.push(EnsemblerConfig {
            name,
            data_dir: files.data,
            models_dir: files.models,
            log_dir: files.log,
            interval_ms: config.interval.ms(),
            ensemble: config.learn.ensemble_config(),
            fit: config.learn.refit_config(),
            save_every: config.save_every,
            // Filled below, once every feed's place is known.
            corr: Vec::new(),
            corr_feeds: Vec::new(),
        });
    }
    if let Some(e) = first_error.filter(|_| feeds.is_empty()) {
        return Err(e);
    }
    // The correlated symbols that are not forecast: streamed on the same connection after the
    // forecast symbols, each into its own store. One whose store does not open is named and
    // left out: the symbols that read it get the gap rule on its columns.
    for symbol in neighbour_only(config) {
        let layout = SymbolLayout::new(&config.dirs, symbol, config.interval);
        let name = format!("{symbol} {}", config.interval);
        match KlineStore::open_recent(&layout.store, rows) {
            Ok((store, report)) => {
                if let Some(msg) = report.repair_message(&layout.store) {
                    log.warn(&msg);
                }
                let mut feed = Feed::new(feeds.len(), symbol.clone(), store);
                feed.neighbour_only = true;
                feeds.push(feed);
            }
            Err(e) => log.warn(&format!(
                "{name}: correlated symbol not streamed: {}; the symbols reading it carry its \
                 last close (the gap rule)",
                Error::from(e)
            )),
        }
    }
    for (ens, feed) in ens_configs.iter_mut().zip(&feeds) {
        let own = &feed.symbol;
        let list: Vec<&Symbol> = config.corr.iter().filter(|c| *c != own).collect();
        ens.corr = list.iter().map(|c| c.to_string()).collect();
        ens.corr_feeds = list
            .iter()
            .map(|c| feeds.iter().position(|f| &f.symbol == *c))
            .collect();
    }
    Ok((feeds, ens_configs))
}

/// Runs the streaming thread (`streamer`, sending to `klines`) and the ensembling thread over
/// `ens_configs`, relaying the ensemblers' events to `observer` on this thread.
fn run_threads<R: Rest + Send, C: Connect + Send>(
    streamer: StreamThread<R, C>,
    klines: mpsc::Receiver<stream_thread::ClosedKline>,
    ens_configs: &[EnsemblerConfig],
    feeds: usize,
    stream_log: SharedLogger,
    observer: &mut dyn FnMut(&LiveEvent),
) -> Result<(StopReason, StreamStats, Vec<Option<EnsemblerSummary>>), Error> {
    // Start-up, local first (see the module doc): `go` after the ensemblers' local checks,
    // then the stores' newest klines as their history.
    let (event_tx, event_rx) = mpsc::channel::<LiveEvent>();
    let (go_tx, go_rx) = mpsc::channel();
    let (history_tx, history_rx) = mpsc::channel();
    let (asked_tx, asked_rx) = mpsc::channel();
    let streamer = streamer.with_handshake(Handshake {
        go: go_rx,
        history: history_tx,
        asked: asked_tx,
    });
    let wiring = Wiring {
        startup: Startup {
            asked: asked_rx,
            go: go_tx,
            history: history_rx,
        },
        klines,
        events: event_tx,
        notes: stream_log,
    };
    let (stream_result, ens_result) = thread::scope(|scope| {
        let stream_handle = thread::Builder::new()
            .name("stream".into())
            .spawn_scoped(scope, move || streamer.run());
        let ens_handle = thread::Builder::new()
            .name("ensembler".into())
            .spawn_scoped(scope, move || {
                schedule::ensembling_thread(ens_configs, feeds, wiring)
            });
        for event in event_rx {
            observer(&event);
        }
        let stream_result = joined(stream_handle, "stream");
        let ens_result = joined(ens_handle, "ensembling");
        (stream_result, ens_result)
    });
    let summaries = ens_result?;
    let (stop, stream) = stream_result?;
    Ok((stop, stream, summaries))
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

/// The value at quantile `q` (0..=1, nearest rank) of a sample (zero when empty).
pub(crate) fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize]
}

/// `(median, p95, max)` of a sample (zeros when empty).
pub(crate) fn spread(values: &[f64]) -> (f64, f64, f64) {
    (
        quantile(values, 0.5),
        quantile(values, 0.95),
        quantile(values, 1.0),
    )
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

/// One line with the costs of a run: per-kline step, per-window refit + save, the forecast
/// latency after a kline's arrival, peak memory.
pub(crate) fn timing_line(summary: &RunSummary) -> String {
    let (k50, k95, kmax) = spread(&summary.ensembler.kline_seconds);
    let (w50, w95, wmax) = spread(&summary.ensembler.window_seconds);
    let latency = &summary.ensembler.forecast_latency;
    format!(
        "per kline (forecast + files): median {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms; \
         per window \
         (refit + save): median {:.3} s, p95 {:.3} s, max {:.3} s; forecast written after the \
         kline's arrival: median {:.3} s, p99 {:.3} s, max {:.3} s; peak memory (VmHWM) {}",
        k50 * 1e3,
        k95 * 1e3,
        quantile(&summary.ensembler.kline_seconds, 0.99) * 1e3,
        kmax * 1e3,
        w50,
        w95,
        wmax,
        quantile(latency, 0.5),
        quantile(latency, 0.99),
        quantile(latency, 1.0),
        peak_rss_kib().map_or("unknown".to_string(), |k| format!(
            "{:.1} MiB",
            k as f64 / 1024.0
        ))
    )
}
