//! The streaming thread: owns the WebSocket connections, the REST client and one kline store
//! per symbol ([`Feed`]). Up to the per-connection stream limit (Binance's 1024, lowered by
//! `KLINECAST_WS_MAX_STREAMS`) all symbols share one connection (one symbol: a raw stream;
//! several: a combined stream, see [`crate::binance::ws::streams_url`]); past it the symbols
//! are split over `ceil(n / limit)` connections ([`shards::partition`]), each with its own
//! reconnect backoff, rotation age and watchdog, polled round-robin from this one thread
//! ([`shards::next_to_poll`]; each read waits at most the socket's poll timeout), and all
//! under one connection-attempt budget ([`AttemptBudget`]: Binance's 300 per 5 minutes per IP).
//! All symbols share the REST client's request-weight budget. After every (re)connect of a
//! connection it fills the gap of each of that connection's symbols since its last stored kline
//! over REST (the correlated symbols that are not forecast first, see [`Feed::neighbour_only`]),
//! then applies closed (`x: true`) kline events from the socket, each exactly once per symbol,
//! in open-time order, whichever connection they came on: duplicates are counted and dropped, a
//! final that skips ahead triggers a REST gap fill first, malformed frames are counted and
//! logged, never fatal. Each new closed kline is appended to the store and then sent to the
//! ensembling thread. Reconnects use capped exponential backoff with seeded jitter; silence,
//! `serverShutdown` and the planned rotation before Binance's 24 h cut end a connection (only
//! that one). No maths and no model state here.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use crate::backfill::{self, CheckError, EmptyStart, FillRange, Pager, TailProbe};
use crate::binance::shards::{self, AttemptBudget};
use crate::binance::wire::{self, WsEvent};
use crate::binance::ws::{WsError, WsRead};
use crate::binance::BinanceError;
use crate::error::Error;
use crate::kline::{Interval, Kline, Symbol};
use crate::log::{stamp, wall_clock_ms, SharedLogger};
use crate::rng::Rng;
use crate::store::KlineStore;

use super::events::LogEvent;

pub(crate) use crate::backfill::Rest;

/// The message from the streaming thread to the ensembling thread: one closed kline of one
/// symbol, already stored, strictly newer than every kline of that symbol sent before.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedKline {
    /// Which symbol: its place in the stream's list of symbols ([`Feed::id`]).
    pub symbol: usize,
    pub kline: Kline,
    /// True when it came from a REST gap fill, false when from the socket.
    pub from_rest: bool,
    /// When the streaming thread had it (the forecast latency is measured from here).
    pub arrived: Instant,
}

/// One open connection delivering frames (held by the streaming thread, so `Send`).
pub trait Frames: Send {
    fn read(&mut self) -> Result<WsRead, WsError>;
    /// How long the connection has been open.
    fn age(&self) -> Duration;
    /// Closes it politely (best effort).
    fn close(self: Box<Self>);
}

/// Opens connections (to the real socket, or a fake in tests).
pub(crate) trait Connect {
    /// One connection carrying the kline streams of `symbols`.
    fn connect(&mut self, symbols: &[Symbol]) -> Result<Box<dyn Frames>, WsError>;
    /// The URL for `symbols`, for the log.
    fn describe(&self, symbols: &[Symbol]) -> String;
}

/// Timings of the stream thread.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Timing {
    /// First reconnect delay; doubled per failed attempt up to `backoff_max`, with jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// A connection older than this is replaced (Binance cuts at 24 h).
    pub rotate_after: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            rotate_after: Duration::from_secs(23 * 3600 + 30 * 60),
        }
    }
}

/// When the stream thread stops on its own.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Limits {
    /// Wall-clock end of the run.
    pub deadline: Option<Instant>,
    /// Stop once every symbol has handed this many new closed klines to the ensembler (each
    /// symbol stops at this many).
    pub max_klines: Option<u64>,
}

/// What the streaming thread streams and how: everything [`StreamThread::new`] needs besides
/// the resources it takes ownership of.
#[derive(Debug, Clone)]
pub(crate) struct StreamSettings {
    pub interval: Interval,
    pub timing: Timing,
    pub limits: Limits,
    /// Klines fetched before now when a store is empty (the ensemble's warm-up history).
    pub initial_rows: usize,
    /// Seed of the reconnect backoff's jitter.
    pub seed: u64,
    /// Most streams on one connection: more symbols open more connections.
    pub max_streams: usize,
}

/// The stream thread's side of the start-up handshake with the ensembling thread (see
/// [`StreamThread::start_up`]).
#[derive(Debug)]
pub(crate) struct Handshake {
    /// The ensembler's local checks are done: for each symbol (by [`Feed::id`]), how many of
    /// its newest stored klines it needs, or `None` when that symbol could not start (it is
    /// then not streamed). Closed without a message when the ensembler stops the run (then
    /// nothing is written).
    pub go: Receiver<Vec<Option<usize>>>,
    /// Where those klines go (by [`Feed::id`]), once the stores' newest rows have been checked
    /// (or the check could not be made yet).
    pub history: Sender<Vec<(usize, Vec<Kline>)>>,
    /// Told when the start-up requests to REST are answered or failed: the ensembler starts its
    /// CPU-bound loading then (or after a short wait), so on a small machine it does not delay
    /// the first request.
    pub asked: Sender<()>,
}

/// Counters, logged at every reconnect and at the end (all symbols together).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct StreamStats {
    pub connects: u64,
    pub failed_connects: u64,
    pub klines_ws: u64,
    pub klines_rest: u64,
    pub gap_fills: u64,
    pub duplicates: u64,
    pub bad_frames: u64,
    pub idle_timeouts: u64,
    pub server_shutdowns: u64,
    pub rotations: u64,
}

impl StreamStats {
    pub fn summary(&self) -> String {
        format!(
            "connects {}, failed connects {}, klines from ws {}, from rest {}, gap fills {}, \
             duplicates dropped {}, bad frames {}, idle timeouts {}, server shutdowns {}, rotations {}",
            self.connects,
            self.failed_connects,
            self.klines_ws,
            self.klines_rest,
            self.gap_fills,
            self.duplicates,
            self.bad_frames,
            self.idle_timeouts,
            self.server_shutdowns,
            self.rotations
        )
    }
}

/// Why the stream thread ended (without an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    Deadline,
    KlineLimit,
    /// The ensembling thread hung up (it failed or finished).
    EnsemblerGone,
}

/// Capped exponential backoff with seeded jitter: delay in [d/2, d] for d = min(max, base·2^n).
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    base_ms: u64,
    max_ms: u64,
    attempt: u32,
    rng: Rng,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration, seed: u64) -> Backoff {
        let base_ms = (base.as_millis() as u64).max(1);
        Backoff {
            base_ms,
            max_ms: (max.as_millis() as u64).max(base_ms),
            attempt: 0,
            rng: Rng::derive(seed, 0xBAC0),
        }
    }

    pub(crate) fn next_delay(&mut self) -> Duration {
        let exp = self
            .base_ms
            .saturating_mul(1u64 << self.attempt.min(30))
            .min(self.max_ms);
        self.attempt = self.attempt.saturating_add(1);
        let half = exp / 2;
        Duration::from_millis(exp - half + self.rng.below(half as usize + 1) as u64)
    }

    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// One connection of the streaming thread: the symbols it carries and its own reconnect state
/// (its watchdog and pings are in the socket, its age is the socket's).
struct Conn {
    /// Indices into [`StreamThread::feeds`] of the symbols it carries.
    feeds: Vec<usize>,
    /// The open socket; `None` while waiting to (re)connect.
    sock: Option<Box<dyn Frames>>,
    backoff: Backoff,
    /// When it may connect again; `None`: at once.
    retry_at: Option<Instant>,
}

/// Most frames read from one connection in one turn before the next connection's turn, so
/// that a flooded connection cannot starve the others.
const BURST: usize = 256;

/// What one read of a connection brought.
enum Step {
    /// A frame (read on: there may be more waiting).
    Frame,
    /// Nothing within the socket's poll timeout: the next connection's turn.
    Quiet,
    /// The connection ended.
    End(ConnEnd),
}

/// How one connection ended.
enum ConnEnd {
    /// Reconnect after the backoff delay.
    Failed,
    /// Reconnect at once (serverShutdown, planned rotation).
    Now,
    Stop(StopReason),
}

/// One symbol's side of the streaming thread: its store and its exactly-once bookkeeping.
pub(crate) struct Feed {
    /// The symbol's place in the stream's list (what [`ClosedKline::symbol`] carries).
    pub id: usize,
    pub symbol: Symbol,
    pub store: KlineStore,
    /// New closed klines handed on so far.
    sent: u64,
    /// The open time of a partial event already used to check for a missed final.
    checked_partial: Option<i64>,
    /// The start-up check of the newest stored klines could not reach REST: it runs before the
    /// next gap fill, until one succeeds.
    tail_check_pending: bool,
    /// A correlated symbol that is not forecast (`stream --corr`): filled before the forecast
    /// symbols after a (re)connect, so that their filled klines find their neighbours' klines
    /// already there and do not wait out the bound (`corr_gate`).
    pub(crate) neighbour_only: bool,
}

impl Feed {
    pub fn new(id: usize, symbol: Symbol, store: KlineStore) -> Feed {
        Feed {
            id,
            symbol,
            store,
            sent: 0,
            checked_partial: None,
            tail_check_pending: false,
            neighbour_only: false,
        }
    }

    fn last_stored(&self) -> String {
        self.store
            .last_open_time()
            .map_or("none".to_string(), stamp)
    }
}

/// The order in which the feeds `of` one connection (indices into `feeds`) are filled after
/// it (re)connects: the correlated symbols that are not forecast first, then the forecast
/// symbols, each group in the stream's order.
fn fill_order(feeds: &[Feed], of: &[usize]) -> Vec<usize> {
    let (mut first, rest): (Vec<usize>, Vec<usize>) =
        of.iter().partition(|&&i| feeds[i].neighbour_only);
    first.extend(rest);
    first
}

/// The streaming thread's state. Owns the stores; sends to the ensembler.
pub(crate) struct StreamThread<R: Rest, C: Connect> {
    pub feeds: Vec<Feed>,
    pub interval: Interval,
    pub rest: R,
    pub connector: C,
    pub tx: Sender<ClosedKline>,
    pub log: SharedLogger,
    pub timing: Timing,
    pub limits: Limits,
    /// Klines fetched before now when a store is empty (the ensemble's warm-up history).
    pub initial_rows: usize,
    /// Seed of each connection's backoff jitter.
    seed: u64,
    /// Most streams on one connection.
    max_streams: usize,
    /// The connections, once the symbols to stream are known (after the start-up).
    conns: Vec<Conn>,
    /// Connection attempts of all connections together.
    budget: AttemptBudget,
    pub stats: StreamStats,
    /// The start-up handshake, until [`StreamThread::start_up`] has run.
    handshake: Option<Handshake>,
}

impl<R: Rest, C: Connect> StreamThread<R, C> {
    /// The streaming thread over `rest`, `connector` and the symbols' `feeds`, sending to `tx`.
    pub fn new(
        settings: StreamSettings,
        rest: R,
        connector: C,
        feeds: Vec<Feed>,
        tx: Sender<ClosedKline>,
        log: impl Into<SharedLogger>,
    ) -> Self {
        let StreamSettings {
            interval,
            timing,
            limits,
            initial_rows,
            seed,
            max_streams,
        } = settings;
        StreamThread {
            feeds,
            interval,
            rest,
            connector,
            tx,
            log: log.into(),
            timing,
            limits,
            initial_rows,
            seed,
            max_streams,
            conns: Vec::new(),
            budget: AttemptBudget::binance(),
            stats: StreamStats::default(),
            handshake: None,
        }
    }

    /// Starts with the start-up handshake ([`StreamThread::start_up`]).
    pub(crate) fn with_handshake(mut self, handshake: Handshake) -> Self {
        self.handshake = Some(handshake);
        self
    }

    /// The symbols connection `c` carries.
    fn symbols(&self, c: usize) -> Vec<Symbol> {
        self.conns[c]
            .feeds
            .iter()
            .map(|&i| self.feeds[i].symbol.clone())
            .collect()
    }

    /// Splits the feeds over the connections ([`shards::partition`]): one up to
    /// `max_streams`, then `ceil(n / max_streams)`; each with its own backoff (the first one's
    /// jitter is the single connection's).
    fn make_connections(&mut self) {
        let ids: Vec<usize> = (0..self.feeds.len()).collect();
        self.conns = shards::partition(&ids, self.max_streams)
            .into_iter()
            .enumerate()
            .map(|(c, feeds)| Conn {
                feeds,
                sock: None,
                backoff: Backoff::new(
                    self.timing.backoff_base,
                    self.timing.backoff_max,
                    self.seed.wrapping_add(c as u64),
                ),
                retry_at: None,
            })
            .collect();
    }

    /// What follows a log line about connection `c` when there are several: ` [ws c/n]`.
    fn tag(&self, c: usize) -> String {
        if self.conns.len() > 1 {
            format!(" [ws {}/{}]", c + 1, self.conns.len())
        } else {
            String::new()
        }
    }

    /// `<SYMBOL> <interval>`, the head of the log lines about one symbol.
    fn name(&self, i: usize) -> String {
        format!("{} {}", self.feeds[i].symbol, self.interval)
    }

    /// Runs until a limit is reached or the ensembler hangs up; only store failures (disk) are
    /// errors. Returns the counters.
    pub fn run(mut self) -> Result<(StopReason, StreamStats), Error> {
        for i in 0..self.feeds.len() {
            self.log.info(&format!(
                "stream start {}: store {} (last open time {})",
                self.name(i),
                self.feeds[i].store.path().display(),
                self.feeds[i].last_stored(),
            ));
        }
        let started = match self.handshake.take() {
            Some(handshake) => self.start_up(handshake)?,
            None => None,
        };
        let served = match started {
            Some(reason) => Ok(reason),
            None => {
                self.make_connections();
                let n = self.conns.len();
                for c in 0..n {
                    let url = self.connector.describe(&self.symbols(c));
                    let streams = self.conns[c].feeds.len();
                    self.log.info(&if n == 1 {
                        format!("ws {url} ({streams} streams on one connection)")
                    } else {
                        format!(
                            "ws {url} ({streams} streams on connection {} of {n}, at most {} \
                             per connection)",
                            c + 1,
                            self.max_streams
                        )
                    });
                }
                self.serve()
            }
        };
        for conn in &mut self.conns {
            if let Some(sock) = conn.sock.take() {
                sock.close();
            }
        }
        let reason = served?;
        self.log.info(&format!(
            "stream stop ({reason:?}): {}",
            self.stats.summary()
        ));
        Ok((reason, self.stats))
    }

    /// The start: asks REST about the newest stored klines of every symbol at once (one
    /// attempt each, nothing written), waits for the ensembler's local checks (models, saved
    /// ensembles: no store write before they pass, so a run they stop writes nothing), drops
    /// the symbols the ensembler could not start, repairs the stores where REST showed a
    /// difference, then hands the ensembler the newest stored klines it asked for. REST down
    /// holds nothing back: the check runs again before the next gap fill. `Some` ends the run.
    fn start_up(&mut self, handshake: Handshake) -> Result<Option<StopReason>, Error> {
        self.rest.single_attempt(true);
        let mut probes = Vec::with_capacity(self.feeds.len());
        for feed in &mut self.feeds {
            probes.push(backfill::probe_tail(
                &mut self.rest,
                &mut feed.store,
                &feed.symbol,
                self.interval,
            ));
        }
        self.rest.single_attempt(false);
        let _ = handshake.asked.send(());
        self.log_rest_notes();
        let rows = loop {
            if let Some(reason) = self.limit_reached() {
                return Ok(Some(reason));
            }
            match handshake.go.recv_timeout(Duration::from_millis(100)) {
                Ok(rows) => break rows,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(Some(StopReason::EnsemblerGone)),
            }
        };
        let mut histories = Vec::with_capacity(self.feeds.len());
        for (feed, probe) in std::mem::take(&mut self.feeds).into_iter().zip(probes) {
            let Some(&Some(rows)) = rows.get(feed.id) else {
                self.log.warn(&format!(
                    "{} {}: not streamed (the ensembler could not start it; see its log)",
                    feed.symbol, self.interval
                ));
                continue;
            };
            self.feeds.push(feed);
            let i = self.feeds.len() - 1;
            match probe {
                Ok(probe) => self.apply_tail_check(i, probe)?,
                Err(CheckError::Store(e)) => return Err(e.into()),
                Err(CheckError::Rest(e)) => {
                    self.feeds[i].tail_check_pending = true;
                    self.log.warn(&format!(
                        "{}: could not check the newest stored klines against rest ({e}); \
                         streaming goes on, and the check runs at the first rest call that \
                         succeeds",
                        self.name(i)
                    ));
                }
            }
            histories.push((self.feeds[i].id, self.feeds[i].store.tail(rows)?));
        }
        // A closed channel means the ensembler is gone: the first delivery notices.
        let _ = handshake.history.send(histories);
        if self.feeds.is_empty() {
            return Ok(Some(StopReason::EnsemblerGone));
        }
        Ok(None)
    }

    /// Repairs feed `i`'s store as `probe` shows and logs what was replaced.
    fn apply_tail_check(&mut self, i: usize, probe: TailProbe) -> Result<(), Error> {
        let feed = &mut self.feeds[i];
        let check = probe.apply(&mut feed.store)?;
        for line in check.messages(feed.store.path()) {
            self.log.warn(&line);
        }
        Ok(())
    }

    /// The start-up check of feed `i` that could not reach REST, tried before a gap fill:
    /// `Err` when REST failed again (the fill would fail too). A difference found now is
    /// repaired in the store; the ensembler has already read the old rows and learns from the
    /// repaired ones from the next start.
    fn retry_tail_check(&mut self, i: usize) -> Result<Result<(), BinanceError>, Error> {
        let feed = &mut self.feeds[i];
        let probe =
            backfill::probe_tail(&mut self.rest, &mut feed.store, &feed.symbol, self.interval);
        self.log_rest_notes();
        match probe {
            Ok(probe) => {
                let name = self.name(i);
                let feed = &mut self.feeds[i];
                feed.tail_check_pending = false;
                let check = probe.apply(&mut feed.store)?;
                let lines = check.messages(feed.store.path());
                self.log.info(&format!(
                    "{name}: checked the newest {} stored klines against rest (deferred from the \
                     start)",
                    check.checked
                ));
                for line in &lines {
                    self.log.warn(line);
                }
                if !lines.is_empty() {
                    self.log.warn(&format!(
                        "{name}: the ensembler read the replaced rows at the start of this run: \
                         it learns from the repaired ones from the next start"
                    ));
                }
                Ok(Ok(()))
            }
            Err(CheckError::Store(e)) => Err(e.into()),
            Err(CheckError::Rest(e)) => Ok(Err(e)),
        }
    }

    /// True when feed `i` has handed on the most new klines `limits.max_klines` allows.
    fn at_limit(&self, i: usize) -> bool {
        self.limits
            .max_klines
            .is_some_and(|m| self.feeds[i].sent >= m)
    }

    fn limit_reached(&self) -> Option<StopReason> {
        if let Some(m) = self.limits.max_klines {
            if self.feeds.iter().all(|f| f.sent >= m) {
                return Some(StopReason::KlineLimit);
            }
        }
        if self.limits.deadline.is_some_and(|d| Instant::now() >= d) {
            return Some(StopReason::Deadline);
        }
        None
    }

    /// Sleeps `delay`, waking early for the deadline.
    fn sleep(&self, delay: Duration) -> Option<StopReason> {
        let until = Instant::now() + delay;
        loop {
            if let Some(reason) = self.limit_reached() {
                return Some(reason);
            }
            let now = Instant::now();
            if now >= until {
                return None;
            }
            thread::sleep((until - now).min(Duration::from_millis(200)));
        }
    }

    /// Runs the connections until a limit is reached: round-robin, one step of one connection
    /// at a time (a read, or a connect when its backoff is over); when every connection is
    /// waiting to reconnect, sleeps until the first may.
    fn serve(&mut self) -> Result<StopReason, Error> {
        let mut last = None;
        loop {
            if let Some(reason) = self.limit_reached() {
                return Ok(reason);
            }
            if self.conns.iter().all(|c| c.sock.is_none()) {
                let now = Instant::now();
                let first = self.conns.iter().map(|c| c.retry_at.unwrap_or(now)).min();
                if let Some(reason) =
                    first.and_then(|t| self.sleep(t.saturating_duration_since(now)))
                {
                    return Ok(reason);
                }
            }
            let Some(c) = shards::next_to_poll(last, self.conns.len()) else {
                return Ok(StopReason::EnsemblerGone);
            };
            last = Some(c);
            let end = if self.conns[c].sock.is_some() {
                self.poll(c)?
            } else if self.conns[c].retry_at.is_none_or(|t| Instant::now() >= t) {
                self.open(c)?
            } else {
                None
            };
            match end {
                None => {}
                Some(ConnEnd::Stop(reason)) => return Ok(reason),
                Some(ConnEnd::Now) => self.conns[c].retry_at = None,
                Some(ConnEnd::Failed) => {
                    let delay = self.conns[c].backoff.next_delay();
                    self.log.info(&format!(
                        "reconnecting in {} ms{}",
                        delay.as_millis(),
                        self.tag(c)
                    ));
                    self.conns[c].retry_at = Some(Instant::now() + delay);
                }
            }
        }
    }

    /// Connects connection `c` (within the shared attempt budget) and fills the gap of each of
    /// its symbols; `Some` when it ended before reading.
    fn open(&mut self, c: usize) -> Result<Option<ConnEnd>, Error> {
        let now = Instant::now();
        let wait = self.budget.wait_before_attempt(now);
        if !wait.is_zero() || !self.budget.try_attempt(now) {
            self.log.warn(&format!(
                "{} connection attempts in {} s, Binance's limit per IP: the next in {} ms{}",
                self.budget.max(),
                self.budget.window().as_secs(),
                wait.as_millis(),
                self.tag(c)
            ));
            self.conns[c].retry_at = Some(now + wait);
            return Ok(None);
        }
        let sock = match self.connector.connect(&self.symbols(c)) {
            Ok(s) => s,
            Err(e) => {
                self.stats.failed_connects += 1;
                self.log_ws_error(&LogEvent::ConnectFailed.to_string(), c, &e);
                return Ok(Some(ConnEnd::Failed));
            }
        };
        self.stats.connects += 1;
        self.log.info(&format!(
            "{}{}",
            LogEvent::Connected {
                connects: self.stats.connects,
            },
            self.tag(c)
        ));
        // Connect first, then fill: events sent during the fills wait in the socket buffer.
        // The correlated symbols that are not forecast first (see `Feed::neighbour_only`).
        for i in fill_order(&self.feeds, &self.conns[c].feeds) {
            match self.fill(i, None)? {
                None => {}
                // REST failed: keep reading; contiguous finals still apply, and the next final
                // that skips ahead tries the fill again (for this symbol and the ones after).
                Some(ConnEnd::Failed) => {
                    self.log.info(
                        "continuing on the socket; the gap is filled when rest answers again",
                    );
                    break;
                }
                Some(end) => {
                    sock.close();
                    return Ok(Some(end));
                }
            }
        }
        self.conns[c].sock = Some(sock);
        Ok(None)
    }

    /// Connection `c`'s turn: reads what it has waiting (until a read finds nothing within the
    /// poll timeout, at most [`BURST`] frames) and applies it; `Some` when the connection ended
    /// (it is then closed) or the run must stop.
    fn poll(&mut self, c: usize) -> Result<Option<ConnEnd>, Error> {
        let Some(mut sock) = self.conns[c].sock.take() else {
            return Ok(None);
        };
        let mut step = Ok(Step::Frame);
        for _ in 0..BURST {
            if let Some(reason) = self.limit_reached() {
                step = Ok(Step::End(ConnEnd::Stop(reason)));
                break;
            }
            step = self.read_one(c, sock.as_mut());
            if !matches!(step, Ok(Step::Frame)) {
                break;
            }
        }
        match step {
            Ok(Step::Frame | Step::Quiet) => {
                self.conns[c].sock = Some(sock);
                Ok(None)
            }
            Ok(Step::End(end)) => {
                sock.close();
                self.log.info(&format!(
                    "connection ended; {}{}",
                    self.stats.summary(),
                    self.tag(c)
                ));
                Ok(Some(end))
            }
            Err(e) => {
                sock.close();
                Err(e)
            }
        }
    }

    /// The rotation check, then one frame of connection `c`.
    fn read_one(&mut self, c: usize, sock: &mut dyn Frames) -> Result<Step, Error> {
        if sock.age() >= self.timing.rotate_after {
            self.stats.rotations += 1;
            self.log.info(&format!(
                "rotating the connection after {} s (before the server's 24 h cut){}",
                sock.age().as_secs(),
                self.tag(c)
            ));
            return Ok(Step::End(ConnEnd::Now));
        }
        let text = match sock.read() {
            Ok(WsRead::Text(t)) => t,
            Ok(WsRead::Binary(n)) => {
                self.bad_frame(&format!("binary frame of {n} bytes"));
                return Ok(Step::Frame);
            }
            Ok(WsRead::Control) => return Ok(Step::Frame),
            Ok(WsRead::Quiet) => return Ok(Step::Quiet),
            Err(e) => {
                if matches!(e, WsError::Idle { .. }) {
                    self.stats.idle_timeouts += 1;
                }
                self.log_ws_error("connection lost", c, &e);
                return Ok(Step::End(ConnEnd::Failed));
            }
        };
        Ok(match self.on_text(c, &text)? {
            Some(end) => Step::End(end),
            None => Step::Frame,
        })
    }

    /// Handles one text frame of connection `c`; `Some` ends the connection.
    fn on_text(&mut self, c: usize, text: &str) -> Result<Option<ConnEnd>, Error> {
        let event = match wire::parse_ws_event(text) {
            Ok(ev) => ev,
            Err(e) => {
                let excerpt: String = text.chars().take(120).collect();
                self.bad_frame(&format!("{e}: {excerpt:?}"));
                return Ok(None);
            }
        };
        match event {
            WsEvent::Kline {
                kline,
                is_final,
                symbol,
                interval,
                ..
            } => {
                // Only the symbols this connection carries.
                let feed = self.conns[c]
                    .feeds
                    .iter()
                    .copied()
                    .find(|&i| symbol.eq_ignore_ascii_case(self.feeds[i].symbol.as_str()));
                match feed {
                    Some(i) if interval == self.interval.as_str() => {
                        let before = self.stats.klines_ws;
                        let end = self.on_kline(i, kline, is_final);
                        if self.stats.klines_ws > before {
                            // The connection delivers: its next failure starts a fresh backoff.
                            self.conns[c].backoff.reset();
                        }
                        return end;
                    }
                    _ => {
                        let streamed: Vec<&str> = self.conns[c]
                            .feeds
                            .iter()
                            .map(|&i| self.feeds[i].symbol.as_str())
                            .collect();
                        self.bad_frame(&format!(
                            "kline for {symbol} {interval}, expected one of {} {}",
                            streamed.join(","),
                            self.interval
                        ));
                    }
                }
            }
            WsEvent::ServerShutdown { event_time } => {
                self.stats.server_shutdowns += 1;
                self.log.info(&format!(
                    "serverShutdown (event time {}): reconnecting now{}",
                    stamp(event_time),
                    self.tag(c)
                ));
                return Ok(Some(ConnEnd::Now));
            }
            WsEvent::Error { code, msg } => {
                self.log
                    .warn(&LogEvent::ServerError.line(&format!("code {code}: {msg}")));
            }
            WsEvent::SubscribeReply | WsEvent::Other => {}
        }
        Ok(None)
    }

    /// Handles one kline event of feed `i`; `Some` ends the connection.
    fn on_kline(
        &mut self,
        i: usize,
        kline: Kline,
        is_final: bool,
    ) -> Result<Option<ConnEnd>, Error> {
        if self.at_limit(i) {
            // This symbol has all it was to take: nothing more, not even a gap fill.
            return Ok(None);
        }
        let iv = self.interval.ms();
        let last = self.feeds[i].store.last_open_time();
        if !is_final {
            // A partial update of kline t means t - 1 has closed: if its final never came,
            // fetch it now (once per t) rather than waiting for the next final.
            let t = kline.open_time;
            let missed = last.is_some_and(|l| t - iv > l);
            if missed && self.feeds[i].checked_partial != Some(t) {
                self.feeds[i].checked_partial = Some(t);
                self.log.info(&format!(
                    "{}: update for {} but the final of the previous kline is missing: filling",
                    self.name(i),
                    stamp(t)
                ));
                return self.fill(i, Some(t));
            }
            return Ok(None);
        }
        if last.is_some_and(|l| kline.open_time <= l) {
            self.stats.duplicates += 1;
            return Ok(None);
        }
        if last.is_none_or(|l| kline.open_time > l + iv) {
            self.log.info(&format!(
                "{}: final for {} skips ahead of the last stored {}: filling the gap",
                self.name(i),
                stamp(kline.open_time),
                last.map_or("none".to_string(), stamp)
            ));
            if let Some(end) = self.fill(i, Some(kline.open_time))? {
                return Ok(Some(end));
            }
            match self.feeds[i].store.last_open_time() {
                Some(l) if kline.open_time <= l => {
                    self.stats.duplicates += 1;
                    return Ok(None);
                }
                Some(l) if kline.open_time > l + iv => self.log.info(&format!(
                    "{}: rest has no klines between {} and {}: an exchange gap, kept as is",
                    self.name(i),
                    stamp(l),
                    stamp(kline.open_time)
                )),
                _ => {}
            }
        }
        self.stats.klines_ws += 1;
        self.deliver(i, vec![kline], false)
    }

    /// Appends klines to feed `i`'s store and sends them on; `Some` when the run must stop.
    fn deliver(
        &mut self,
        i: usize,
        klines: Vec<Kline>,
        from_rest: bool,
    ) -> Result<Option<ConnEnd>, Error> {
        let arrived = Instant::now();
        let feed = &mut self.feeds[i];
        let mut klines = klines;
        if let Some(max) = self.limits.max_klines {
            let room = max.saturating_sub(feed.sent) as usize;
            klines.truncate(room);
        }
        if !klines.is_empty() {
            feed.store.append(&klines)?;
        }
        for kline in klines {
            feed.sent += 1;
            let msg = ClosedKline {
                symbol: feed.id,
                kline,
                from_rest,
                arrived,
            };
            if self.tx.send(msg).is_err() {
                return Ok(Some(ConnEnd::Stop(StopReason::EnsemblerGone)));
            }
        }
        Ok(self.limit_reached().map(ConnEnd::Stop))
    }

    /// REST gap fill of feed `i` with the shared backfill core ([`Pager`]): every provably
    /// closed kline after the last stored one, before `before` (an open time) or up to the
    /// server's now, appended and handed on page by page. A REST failure ends the connection
    /// (reconnect later). Every symbol's fill goes through the one REST client, so they share
    /// its request-weight budget.
    fn fill(&mut self, i: usize, before: Option<i64>) -> Result<Option<ConnEnd>, Error> {
        if self.at_limit(i) {
            return Ok(None);
        }
        if self.feeds[i].tail_check_pending {
            if let Err(e) = self.retry_tail_check(i)? {
                return Ok(Some(self.rest_failed(i, &e)));
            }
        }
        let range = FillRange {
            symbol: self.feeds[i].symbol.clone(),
            interval: self.interval,
            after: self.feeds[i].store.last_open_time(),
            empty_start: EmptyStart::RowsBeforeNow(self.initial_rows),
            before,
        };
        let started = Pager::start(&mut self.rest, range);
        self.log_rest_notes();
        let mut pager = match started {
            Ok(p) => p,
            Err(e) => return Ok(Some(self.rest_failed(i, &e))),
        };
        let mut fetched = 0usize;
        loop {
            let page = pager.next_page(&mut self.rest);
            self.log_rest_notes();
            let page = match page {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => {
                    self.log_fill(i, fetched);
                    return Ok(Some(self.rest_failed(i, &e)));
                }
            };
            if page.klines.is_empty() {
                continue;
            }
            fetched += page.klines.len();
            self.stats.klines_rest += page.klines.len() as u64;
            if let Some(end) = self.deliver(i, page.klines, true)? {
                self.log_fill(i, fetched);
                return Ok(Some(end));
            }
        }
        self.log_fill(i, fetched);
        Ok(None)
    }

    fn log_rest_notes(&mut self) {
        for note in self.rest.notes() {
            self.log.info(&format!("rest: {note}"));
        }
    }

    fn log_fill(&mut self, i: usize, fetched: usize) {
        if fetched > 0 {
            self.stats.gap_fills += 1;
            self.log.info(&LogEvent::GapFill.line(&format!(
                "{}: {fetched} klines over rest, last stored now {}",
                self.name(i),
                self.feeds[i].last_stored()
            )));
        }
    }

    fn rest_failed(&self, i: usize, e: &BinanceError) -> ConnEnd {
        self.log.warn(&LogEvent::RestFailed.line(&format!(
            "{}: {e}; local clock {}",
            self.name(i),
            stamp(wall_clock_ms())
        )));
        if let BinanceError::Banned { retry_after_secs } = e {
            // Wait out the ban instead of making it longer.
            if self.sleep(Duration::from_secs(*retry_after_secs)).is_some() {
                return ConnEnd::Now;
            }
        }
        ConnEnd::Failed
    }

    fn bad_frame(&mut self, what: &str) {
        self.stats.bad_frames += 1;
        let n = self.stats.bad_frames;
        if n <= 20 || n.is_power_of_two() {
            self.log.info(&format!("bad frame #{n} ignored: {what}"));
        }
    }

    /// Logs `what: e` about connection `c` (its tag last, so the line still reads as its
    /// event, [`LogEvent::parse`]).
    fn log_ws_error(&mut self, what: &str, c: usize, e: &WsError) {
        let tag = self.tag(c);
        if e.is_tls() {
            self.log.warn(&format!(
                "{what}: {e}; local clock is {} (a Raspberry Pi without an RTC may have booted \
                 with a wrong clock: wait for NTP, or check `timedatectl`); retrying with \
                 backoff{tag}",
                stamp(wall_clock_ms())
            ));
        } else if self.stats.failed_connects > 0 && self.stats.failed_connects.is_power_of_two() {
            self.log.warn(&format!(
                "{what}: {e} ({} failed connects so far; retrying with backoff){tag}",
                self.stats.failed_connects
            ));
        } else {
            self.log.info(&format!("{what}: {e}{tag}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backfill::KlinesRequest;
    use crate::testutil::{kline, TempDir};
    use std::collections::VecDeque;
    use std::sync::mpsc;

    const MIN: i64 = 60_000;

    fn event(i: i64, is_final: bool) -> Result<WsRead, WsError> {
        let k = kline(i);
        let symbol = Symbol::parse("AVAXUSDT").expect("valid symbol");
        Ok(WsRead::Text(crate::replay::market::kline_event(
            &symbol,
            Interval::ONE_MINUTE,
            &k,
            1,
            k.close_time + 1,
            is_final,
        )))
    }

    /// An exchange of klines 0..40 whose "now" follows a script (the last value repeats).
    struct FakeRest {
        now: VecDeque<i64>,
    }

    impl Rest for FakeRest {
        fn server_time(&mut self) -> Result<i64, BinanceError> {
            let now = if self.now.len() > 1 {
                self.now.pop_front()
            } else {
                self.now.front().copied()
            };
            now.ok_or_else(|| BinanceError::BadUrl {
                url: String::new(),
                reason: "no time".into(),
            })
        }

        fn klines(&mut self, request: &KlinesRequest<'_>) -> Result<Vec<Kline>, BinanceError> {
            Ok(request.serve((0..40).map(kline)))
        }
    }

    /// A scripted connection whose age grows by `age_per_read` with every frame read
    /// (`Duration::ZERO`: it never ages).
    struct FakeFrames {
        frames: VecDeque<Result<WsRead, WsError>>,
        reads: u32,
        age_per_read: Duration,
    }

    impl Frames for FakeFrames {
        fn read(&mut self) -> Result<WsRead, WsError> {
            self.reads += 1;
            self.frames
                .pop_front()
                .unwrap_or(Err(WsError::Closed("script ended".into())))
        }
        fn age(&self) -> Duration {
            self.age_per_read * self.reads
        }
        fn close(self: Box<Self>) {}
    }

    struct FakeConnect {
        scripts: VecDeque<Vec<Result<WsRead, WsError>>>,
        age_per_read: Duration,
    }

    impl FakeConnect {
        fn new(scripts: Vec<Vec<Result<WsRead, WsError>>>) -> FakeConnect {
            FakeConnect {
                scripts: scripts.into(),
                age_per_read: Duration::ZERO,
            }
        }
    }

    impl Connect for FakeConnect {
        fn connect(&mut self, _: &[Symbol]) -> Result<Box<dyn Frames>, WsError> {
            match self.scripts.pop_front() {
                Some(frames) => Ok(Box::new(FakeFrames {
                    frames: frames.into(),
                    reads: 0,
                    age_per_read: self.age_per_read,
                })),
                None => Err(WsError::Handshake("no more scripted connections".into())),
            }
        }
        fn describe(&self, _: &[Symbol]) -> String {
            "fake".into()
        }
    }

    /// Runs a stream thread for AVAXUSDT 1m over the fakes; returns how it stopped, its stats
    /// and the (minute, from_rest) of every kline it sent on.
    /// The server's time once kline `i` is provably closed (past the settle margin).
    fn closed(i: i64) -> i64 {
        kline(i).close_time + 1 + crate::backfill::SETTLE_MS
    }

    /// The store file under the test's directory.
    const STORE_FILE: &str = "AVAXUSDT_1m.csv";

    /// Runs a stream thread over a store holding klines 0..5, a [`FakeRest`] whose clock reads
    /// `now` and the scripted connections `connect`; returns the handed-on klines as
    /// (number, came over REST).
    fn run_thread(
        dir: &TempDir,
        now: &[i64],
        connect: FakeConnect,
        timing: Timing,
        limits: Limits,
    ) -> (StopReason, StreamStats, Vec<(i64, bool)>) {
        let (mut store, _) = KlineStore::open(&dir.join(STORE_FILE)).expect("store");
        store
            .append(&(0..5).map(kline).collect::<Vec<_>>())
            .expect("seed");
        let rest = FakeRest {
            now: now.iter().copied().collect(),
        };
        let (tx, rx) = mpsc::channel();
        let log = crate::log::Logger::open(&dir.join("stream.log"), "test")
            .expect("log")
            .mirror_stderr(false);
        let settings = StreamSettings {
            interval: Interval::ONE_MINUTE,
            timing,
            limits,
            initial_rows: 100,
            seed: 7,
            max_streams: crate::binance::ws::MAX_STREAMS,
        };
        let feed = Feed::new(0, Symbol::parse("AVAXUSDT").expect("symbol"), store);
        let thread = StreamThread::new(settings, rest, connect, vec![feed], tx, log);
        let (reason, stats) = thread.run().expect("run");
        let got = rx
            .try_iter()
            .map(|m| (m.kline.open_time / MIN, m.from_rest))
            .collect();
        (reason, stats, got)
    }

    fn temp(name: &str) -> TempDir {
        TempDir::new(&format!("streamthread-{name}"))
    }

    /// Klines 5 to 13, each once and in order, `from_socket` over the WebSocket and the others
    /// over REST, as [`run_thread`] reports them.
    fn handed_on(from_socket: &[i64]) -> Vec<(i64, bool)> {
        (5..14).map(|i| (i, !from_socket.contains(&i))).collect()
    }

    /// The store holds klines 0 to 13, each once, in order.
    fn assert_stored_once_in_order(dir: &TempDir) {
        let stored = crate::store::load_klines(&dir.join(STORE_FILE)).expect("load");
        assert_eq!(stored, (0..14).map(kline).collect::<Vec<_>>());
    }

    /// Backs README claim [C6]: Every closed kline is stored and handed on exactly once, in order, through duplicates, gaps and reconnects.
    #[test]
    fn every_closed_kline_once_in_order_through_duplicates_gaps_and_reconnects() {
        let dir = temp("once");
        // Two time requests per fill (the start, then a fresh proof before the page that
        // reaches the present): connect 1 fill, skip-ahead fill, partial-triggered fill,
        // then connect 2 and connect 3 (the last value repeats).
        let now = [closed(6), closed(6), closed(9), closed(9), closed(12)];
        let connect = FakeConnect::new(vec![
            vec![
                event(6, true), // duplicate of the REST fill
                Ok(WsRead::Text("not json".into())),
                Ok(WsRead::Control),
                event(9, true),   // skips 7 and 8: filled over REST first
                event(12, false), // partial of 12: finals of 10 and 11 missing
                event(12, true),
                Ok(WsRead::Binary(3)),
                Ok(WsRead::Quiet),
                Err(WsError::Idle {
                    silent: Duration::from_secs(30),
                }),
            ],
            vec![Ok(WsRead::Text(r#"{"e":"serverShutdown","E":1}"#.into()))],
            vec![event(12, true), event(13, true), event(14, true)],
        ]);
        let timing = Timing {
            backoff_base: Duration::from_millis(1),
            backoff_max: Duration::from_millis(2),
            ..Timing::default()
        };
        let limits = Limits {
            deadline: None,
            max_klines: Some(9),
        };
        let (reason, stats, got) = run_thread(&dir, &now, connect, timing, limits);
        assert_eq!(reason, StopReason::KlineLimit);
        assert_eq!(got, handed_on(&[9, 12, 13]));
        assert_eq!(
            stats,
            StreamStats {
                connects: 3,
                failed_connects: 0,
                klines_ws: 3,
                klines_rest: 6,
                gap_fills: 3,
                duplicates: 2,
                bad_frames: 2,
                idle_timeouts: 1,
                server_shutdowns: 1,
                rotations: 0,
            }
        );
        assert_stored_once_in_order(&dir);
    }

    /// Backs README claim [C7] with the default timing (the other rotation tests shorten it):
    /// a connection is rotated when its age reaches 23 h 30 m, before Binance's 24 h cut, and
    /// not a second before; no kline is lost or duplicated across it.
    #[test]
    fn the_default_rotation_age_is_23_h_30_m() {
        let rotate = Duration::from_secs(23 * 3600 + 30 * 60);
        assert_eq!(Timing::default().rotate_after, rotate);
        assert!(rotate < Duration::from_secs(24 * 3600));
        let run = |name: &str, age_per_read: Duration| {
            let dir = temp(name);
            let mut connect = FakeConnect::new(vec![
                (7..12).map(|i| event(i, true)).collect(),
                (7..14).map(|i| event(i, true)).collect(),
            ]);
            connect.age_per_read = age_per_read;
            let limits = Limits {
                deadline: Some(Instant::now() + Duration::from_secs(20)),
                max_klines: Some(9),
            };
            let now = [closed(6), closed(6), closed(13)];
            let (reason, stats, _) = run_thread(&dir, &now, connect, Timing::default(), limits);
            assert_eq!(reason, StopReason::KlineLimit, "{stats:?}");
            assert_stored_once_in_order(&dir);
            let log = std::fs::read_to_string(dir.join("stream.log")).expect("stream.log");
            (stats.rotations, log)
        };
        // Aged exactly 23 h 30 m before the second read: rotated then.
        let (rotations, log) = run("rotate-default", rotate);
        assert_eq!(rotations, 1, "{log}");
        assert!(
            log.contains("rotating the connection after 84600 s"),
            "{log}"
        );
        // A second younger (23 h 29 m 59 s) before the second read: kept; rotated only before
        // the third, at twice that age.
        let (rotations, log) = run("rotate-default-early", rotate - Duration::from_secs(1));
        assert_eq!(rotations, 1, "{log}");
        assert!(
            log.contains("rotating the connection after 169198 s"),
            "{log}"
        );
        assert!(!log.contains("after 84599 s"), "{log}");
    }

    /// Backs the README claim "The connection is rotated before Binance's 24 h cut (at 23 h
    /// 30 m)": a connection whose age reaches `rotate_after` is closed and replaced at once (no
    /// backoff: the backoff here is an hour and the deadline 20 s, so a backoff would end the
    /// run by the deadline), and the klines the server sent meanwhile on the old socket come
    /// over REST: every closed kline once, in order, none lost or duplicated across it.
    /// Backs README claim [C7]: The WebSocket is rotated before Binance's 24 h cut, with no kline lost or duplicated.
    #[test]
    fn an_old_connection_is_rotated_at_once_and_no_kline_is_lost_or_duplicated() {
        let dir = temp("rotate");
        // connect 1 fill (up to 6), connect 2 fill after the rotation (up to 11); two time
        // requests per fill (the start, then a fresh proof before the page).
        let now = [closed(6), closed(6), closed(11)];
        let mut connect = FakeConnect::new(vec![
            // Ages 0, 10, 20 min before reads 1..3, then 30 min >= 25: rotated before 10, 11
            // are read (they are lost with the old socket, as on a real close).
            (7..12).map(|i| event(i, true)).collect(),
            vec![event(11, true), event(12, true), event(13, true)],
        ]);
        connect.age_per_read = Duration::from_secs(600);
        let timing = Timing {
            backoff_base: Duration::from_secs(3600),
            backoff_max: Duration::from_secs(3600),
            rotate_after: Duration::from_secs(25 * 60),
        };
        let limits = Limits {
            deadline: Some(Instant::now() + Duration::from_secs(20)),
            max_klines: Some(9),
        };
        let (reason, stats, got) = run_thread(&dir, &now, connect, timing, limits);
        assert_eq!(reason, StopReason::KlineLimit, "{stats:?}");
        assert_eq!(got, handed_on(&[7, 8, 9, 12, 13]));
        assert_eq!(
            stats,
            StreamStats {
                connects: 2,
                failed_connects: 0,
                klines_ws: 5,
                klines_rest: 4,
                gap_fills: 2,
                duplicates: 1,
                bad_frames: 0,
                idle_timeouts: 0,
                server_shutdowns: 0,
                rotations: 1,
            }
        );
        assert_stored_once_in_order(&dir);
        let log = std::fs::read_to_string(dir.join("stream.log")).expect("stream.log");
        assert!(
            log.contains("rotating the connection after 1800 s"),
            "{log}"
        );
        assert!(!log.contains("reconnecting in"), "{log}");
    }

    /// A final (or partial) event of kline `i` of `symbol`.
    fn event_of(symbol: &str, i: i64, is_final: bool) -> Result<WsRead, WsError> {
        let k = kline(i);
        let symbol = Symbol::parse(symbol).expect("valid symbol");
        Ok(WsRead::Text(crate::replay::market::kline_event(
            &symbol,
            Interval::ONE_MINUTE,
            &k,
            1,
            k.close_time + 1,
            is_final,
        )))
    }

    /// A scripted connection that, once its script is read, stays quiet (1 ms per read, like a
    /// short poll timeout) instead of ending.
    struct QuietAfter {
        frames: VecDeque<Result<WsRead, WsError>>,
    }

    impl Frames for QuietAfter {
        fn read(&mut self) -> Result<WsRead, WsError> {
            match self.frames.pop_front() {
                Some(frame) => frame,
                None => {
                    thread::sleep(Duration::from_millis(1));
                    Ok(WsRead::Quiet)
                }
            }
        }
        fn age(&self) -> Duration {
            Duration::ZERO
        }
        fn close(self: Box<Self>) {}
    }

    /// The scripts of one connection's successive connects.
    type Scripts = VecDeque<Vec<Result<WsRead, WsError>>>;

    /// Each symbol's handed-on klines as (number, came over REST).
    type Handed = Vec<Vec<(i64, bool)>>;

    /// Scripted connections by the first symbol they carry; records every connect's symbols.
    struct ShareConnect {
        scripts: Vec<(&'static str, Scripts)>,
        asked: std::sync::Arc<std::sync::Mutex<Vec<Vec<String>>>>,
    }

    impl Connect for ShareConnect {
        fn connect(&mut self, symbols: &[Symbol]) -> Result<Box<dyn Frames>, WsError> {
            let names: Vec<String> = symbols.iter().map(|s| s.as_str().to_string()).collect();
            if let Ok(mut asked) = self.asked.lock() {
                asked.push(names.clone());
            }
            let script = self
                .scripts
                .iter_mut()
                .find(|(first, _)| names.first().is_some_and(|n| n == first))
                .and_then(|(_, queue)| queue.pop_front());
            match script {
                Some(frames) => Ok(Box::new(QuietAfter {
                    frames: frames.into(),
                })),
                None => Err(WsError::Handshake("no more scripted connections".into())),
            }
        }
        fn describe(&self, symbols: &[Symbol]) -> String {
            let names: Vec<&str> = symbols.iter().map(|s| s.as_str()).collect();
            format!("fake/{}", names.join("/"))
        }
    }

    const THREE: [&str; 3] = ["AVAXUSDT", "ETHUSDT", "BNBUSDT"];

    /// Runs a stream thread of the three symbols (stores holding klines 0..5, REST's clock at
    /// kline 6 closed) at most `max_streams` per connection over `connect`, with `budget`
    /// connection attempts; returns how it stopped, its stats, each symbol's handed-on
    /// (number, came over REST) and the log.
    fn run_three(
        dir: &TempDir,
        connect: ShareConnect,
        budget: AttemptBudget,
        limits: Limits,
    ) -> (StopReason, StreamStats, Handed, String) {
        let mut feeds = Vec::new();
        for (id, name) in THREE.iter().enumerate() {
            let (mut store, _) =
                KlineStore::open(&dir.join(&format!("{name}_1m.csv"))).expect("store");
            store
                .append(&(0..5).map(kline).collect::<Vec<_>>())
                .expect("seed");
            feeds.push(Feed::new(id, Symbol::parse(name).expect("symbol"), store));
        }
        let rest = FakeRest {
            now: [closed(6)].into_iter().collect(),
        };
        let (tx, rx) = mpsc::channel();
        let log = crate::log::Logger::open(&dir.join("stream.log"), "test")
            .expect("log")
            .mirror_stderr(false);
        let settings = StreamSettings {
            interval: Interval::ONE_MINUTE,
            timing: Timing {
                backoff_base: Duration::from_millis(1),
                backoff_max: Duration::from_millis(2),
                ..Timing::default()
            },
            limits,
            initial_rows: 100,
            seed: 7,
            max_streams: 2,
        };
        let mut thread = StreamThread::new(settings, rest, connect, feeds, tx, log);
        thread.budget = budget;
        let (reason, stats) = thread.run().expect("run");
        let mut got = vec![Vec::new(); THREE.len()];
        for m in rx.try_iter() {
            got[m.symbol].push((m.kline.open_time / MIN, m.from_rest));
        }
        let log = std::fs::read_to_string(dir.join("stream.log")).expect("stream.log");
        (reason, stats, got, log)
    }

    /// Backs README claim [C26]: past the per-connection limit, `ceil(n/limit)` connections,
    /// one reconnecting alone, every kline once per symbol.
    /// Three symbols at most two per connection: two connections, [AVAXUSDT, ETHUSDT] and
    /// [BNBUSDT], polled in turn by the one thread. The first one is dropped and reconnects
    /// alone (its own backoff; the second is never reconnected), and every symbol's klines
    /// come exactly once, in order, whichever connection or REST brought them.
    #[test]
    fn past_the_limit_the_symbols_go_over_two_connections_and_one_reconnects_alone() {
        let dir = temp("two-conns");
        let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let connect = ShareConnect {
            scripts: vec![
                (
                    "AVAXUSDT",
                    VecDeque::from(vec![
                        vec![
                            event_of("AVAXUSDT", 7, true),
                            event_of("ETHUSDT", 7, true),
                            // Not this connection's symbol: a bad frame, not applied.
                            event_of("BNBUSDT", 8, true),
                            Err(WsError::Closed("dropped".into())),
                        ],
                        vec![
                            event_of("AVAXUSDT", 7, true), // a duplicate
                            event_of("AVAXUSDT", 8, true),
                            event_of("ETHUSDT", 8, true),
                            event_of("AVAXUSDT", 9, true),
                            event_of("ETHUSDT", 9, true),
                        ],
                    ]),
                ),
                (
                    "BNBUSDT",
                    VecDeque::from(vec![vec![
                        event_of("BNBUSDT", 7, true),
                        Ok(WsRead::Quiet),
                        event_of("BNBUSDT", 8, true),
                        event_of("BNBUSDT", 9, true),
                    ]]),
                ),
            ],
            asked: std::sync::Arc::clone(&asked),
        };
        let limits = Limits {
            deadline: Some(Instant::now() + Duration::from_secs(20)),
            max_klines: Some(5),
        };
        let (reason, stats, got, log) = run_three(&dir, connect, AttemptBudget::binance(), limits);
        assert_eq!(reason, StopReason::KlineLimit, "{log}");
        let each: Vec<(i64, bool)> = (5..10).map(|i| (i, i < 7)).collect();
        assert_eq!(got, vec![each.clone(), each.clone(), each], "{log}");
        let asked = asked.lock().expect("asked").clone();
        assert_eq!(
            asked,
            vec![
                vec!["AVAXUSDT".to_string(), "ETHUSDT".to_string()],
                vec!["BNBUSDT".to_string()],
                vec!["AVAXUSDT".to_string(), "ETHUSDT".to_string()],
            ]
        );
        assert_eq!(
            stats,
            StreamStats {
                connects: 3,
                failed_connects: 0,
                klines_ws: 9,
                klines_rest: 6,
                gap_fills: 3,
                duplicates: 1,
                bad_frames: 1,
                idle_timeouts: 0,
                server_shutdowns: 0,
                rotations: 0,
            },
            "{log}"
        );
        for name in THREE {
            let stored =
                crate::store::load_klines(&dir.join(&format!("{name}_1m.csv"))).expect("load");
            assert_eq!(stored, (0..10).map(kline).collect::<Vec<_>>(), "{name}");
        }
        assert!(
            log.contains("ws fake/AVAXUSDT/ETHUSDT (2 streams on connection 1 of 2, at most 2 per connection)"),
            "{log}"
        );
        assert!(
            log.contains(
                "ws fake/BNBUSDT (1 streams on connection 2 of 2, at most 2 per connection)"
            ),
            "{log}"
        );
        assert!(
            log.contains("connection lost: server closed the connection: dropped [ws 1/2]"),
            "{log}"
        );
        assert!(
            log.contains("connected (3 connects so far) [ws 1/2]"),
            "{log}"
        );
        assert!(
            !log.lines()
                .any(|l| l.contains("lost") && l.contains("[ws 2/2]")),
            "{log}"
        );
        assert!(
            log.contains("kline for BNBUSDT 1m, expected one of AVAXUSDT,ETHUSDT 1m"),
            "{log}"
        );
    }

    /// Backs README claim [C26]: the connections share one connection-attempt budget.
    /// The connection-attempt budget is shared: with room for two attempts, the two
    /// connections take it, and the first one's reconnect after a drop waits (logged) instead of
    /// connecting; the run ends at its deadline with two connects.
    #[test]
    fn connections_share_one_attempt_budget() {
        let dir = temp("budget");
        let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let connect = ShareConnect {
            scripts: vec![
                (
                    "AVAXUSDT",
                    VecDeque::from(vec![vec![Err(WsError::Closed("dropped".into()))], vec![]]),
                ),
                ("BNBUSDT", VecDeque::from(vec![vec![]])),
            ],
            asked: std::sync::Arc::clone(&asked),
        };
        let limits = Limits {
            deadline: Some(Instant::now() + Duration::from_millis(400)),
            max_klines: None,
        };
        let budget = AttemptBudget::new(2, Duration::from_secs(3600));
        let (reason, stats, _, log) = run_three(&dir, connect, budget, limits);
        assert_eq!(reason, StopReason::Deadline, "{log}");
        assert_eq!(asked.lock().expect("asked").len(), 2, "{log}");
        assert_eq!((stats.connects, stats.failed_connects), (2, 0), "{log}");
        assert!(
            log.contains("2 connection attempts in 3600 s, Binance's limit per IP: the next in"),
            "{log}"
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000), 1);
        let delays: Vec<u64> = (0..6).map(|_| b.next_delay().as_millis() as u64).collect();
        for (d, full) in delays.iter().zip([100u64, 200, 400, 800, 1000, 1000]) {
            assert!((full / 2..=full).contains(d), "{delays:?}");
        }
        b.reset();
        assert!((50..=100).contains(&(b.next_delay().as_millis() as u64)));
        let mut again = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000), 1);
        let replay: Vec<u64> = (0..6)
            .map(|_| again.next_delay().as_millis() as u64)
            .collect();
        assert_eq!(delays, replay, "same seed, same delays");
    }
}
