//! The fake Binance server that the project owns (`klinecast replay-server`): it serves one or
//! more kline CSVs (one series per symbol and interval, see [`ReplaySetup`]) over Binance's REST
//! and WebSocket protocols under one virtual clock, with fault switches,
//! so that the REST client, the collector, the streaming client and the demo can be tested
//! against 127.0.0.1 only. It holds no maths beyond presenting rows (see `market.rs`).
//!
//! # Virtual clock
//! `now = open_time(klines[start_row]) + real elapsed ms × speed` (the first series' rows),
//! clamped at the latest last row's `close_time + 1 + SETTLE_MS` (so every row ends up closed, and provably so to a client that
//! allows Binance's settle margin, [`crate::backfill::SETTLE_MS`]). Only rows with `open_time <= now` exist; the
//! row with `open_time <= now <= close_time` is the still-open candle, served with partial
//! values (close interpolated from open towards the final close by the elapsed fraction,
//! high/low growing towards the final ones, volumes and trades scaled by the fraction, decimals
//! with the source's number of places). Closed rows are served byte for byte as in the CSV.
//! Gaps in the source data are reproduced as they are (a `startTime` inside a gap returns the
//! next existing rows).
//!
//! # One port, two protocols
//! Each connection's first request head is read; `Upgrade: websocket` hands the connection
//! (head included) to the WebSocket side, anything else is HTTP/1.1 with keep-alive,
//! `Content-Length` bodies and `Connection: close` honoured.
//!
//! REST: `GET /api/v3/ping` (weight 1), `/api/v3/time` (1), `/api/v3/klines` (2),
//! `/api/v3/exchangeInfo` (20). Klines answer from the series of the `symbol` and `interval`
//! asked for (-1121 for a symbol not served, -1120 for an interval not served). Every answer
//! carries `X-MBX-USED-WEIGHT-1M`, counted per real minute since the server started, one budget
//! for all symbols (one IP); over the limit (6000, see `weight-limit`) the answer is 429
//! with code -1003 and `Retry-After` = seconds to the next minute. Unknown paths: 404 with
//! code -1000. Parameter errors: 400 with Binance's codes (see [`market::parse_klines_query`]).
//!
//! WebSocket: raw `/ws/<lowercasesymbol>@kline_<interval>` (or `/ws`), combined
//! `/stream?streams=<s1>/<s2>/…` whose events are wrapped as `{"stream":..,"data":..}`; a path
//! or stream not served gets a close frame with code 1008. Live SUBSCRIBE, UNSUBSCRIBE,
//! LIST_SUBSCRIPTIONS, SET_PROPERTY/GET_PROPERTY (`combined`) as on Binance (see
//! [`market::Subscriptions::apply`]); at most 1024 streams (fewer with
//! [`ReplayServer::set_max_streams`], or `KLINECAST_WS_MAX_STREAMS` for the command: a URL
//! asking more is closed with 1008, a SUBSCRIBE past it refused with code 2) and 5 incoming
//! messages a second per connection (pongs answering our pings excepted), the sixth closes it
//! with 1008. Each
//! stream starts with the candle current when it was subscribed (nothing from the past is
//! replayed); finals go out oldest first across a connection's streams. Partial events (`"x":false`) are sent about every 2 virtual seconds; above
//! speed 10 at most 3 per candle, spaced by a third of the interval. A final event (`"x":true`,
//! the exact source values) follows once the candle's close time has passed. Event time `E` is
//! the virtual time of sending. Pings go out every `20 s / speed` real time, clamped to 1–20
//! real seconds (`ping-ms` overrides); a connection whose pong is 60 real seconds late
//! (`pong-timeout-ms`) is closed with a close frame (1008). When the data is exhausted the
//! connection stays open with pings only, like a quiet live market.
//!
//! # Fault switches (`--faults`, comma-separated; [`Faults::parse`])
//! Counters are 1-based and count since the faults were last set.
//! - `429-every=N`: every Nth klines request answers 429, code -1003, `Retry-After: S`.
//! - `retry-after=S`: the seconds of that `Retry-After` (default 1).
//! - `418=S`: every REST request answers 418 ("IP banned until …", code -1003), `Retry-After: S`.
//! - `500-every=N`: every Nth klines request answers 500 (code -1000).
//! - `torn-every=N`: every Nth klines request gets its headers and half its body, then the
//!   socket is closed.
//! - `time-429-every=N`: every Nth `/api/v3/time` request answers 429, code -1003,
//!   `Retry-After: S`.
//! - `slow-ms=MS`: every klines answer is delayed by MS real milliseconds after its page was
//!   taken (a slow link: the page is as of the request, the client gets it later).
//! - `weight-limit=W`: the per-minute weight limit instead of 6000.
//! - `drop-every=N`: a WebSocket connection is dropped (TCP shutdown, no close frame) after N
//!   final events were sent on it (all its streams counted together; so do the other per
//!   connection counters).
//! - `dup-finals`: every final event is sent twice.
//! - `garbage-every=N`: every Nth data frame on a connection is preceded by a garbage text frame
//!   (alternately `{"e":"kline","k":` and `not json`).
//! - `stall-ms=MS`: after the first final on a connection, nothing is sent (no data, no pings)
//!   for MS real milliseconds, then the connection is dropped.
//! - `shutdown-after=N`: after N finals on a connection, `{"e":"serverShutdown","E":..}` is sent
//!   (on a combined connection wrapped as `{"stream":"!serverShutdown","data":..}`),
//!   then a close frame (1001).
//! - `ping-ms=MS`, `pong-timeout-ms=MS`: WebSocket ping period and pong allowance (real ms).
//! - `hold-final=SYMBOL:ROW:MS` (may be given several times): the final event of row ROW of
//!   SYMBOL's series goes out MS real milliseconds after it is due; meanwhile that stream sends
//!   nothing (no partial; its later finals wait behind it), the other streams go on. A late
//!   kline of one symbol on a combined connection (`stream --corr`'s waiting rule). REST is not
//!   affected: the row is served as soon as it has closed.
//!
//! REST faults are checked in this order: 418, weight limit, 429-every, 500-every, slow-ms,
//! parameter errors, torn-every. WebSocket faults are read afresh on every tick, so
//! [`ReplayServer::set_faults`] affects open connections too.
//!
//! # The command
//! `klinecast replay-server --data <SYMBOL>_<interval>.csv[,…] [--port P] [--speed X]
//! [--start-row N] [--faults SPEC]` starts at row N of the first file (default: half its rows), prints one line
//! `listening rest=http://127.0.0.1:PORT ws=ws://127.0.0.1:PORT` and serves until killed (after
//! the data is exhausted it keeps answering, with a clock stopped at the end).

mod clock;
mod faults;
mod http;
pub mod market;
mod ws;

pub(crate) use clock::VirtualClock;
pub use faults::Faults;

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::kline::{Interval, Kline, Symbol};

/// What the replay server serves and how: one series (see [`ReplaySetup`] for several).
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    /// The rows, ascending by open time (gaps allowed, duplicates not).
    pub klines: Vec<Kline>,
    pub symbol: Symbol,
    pub interval: Interval,
    /// The row whose open time is the virtual clock's origin.
    pub start_row: usize,
    /// Virtual milliseconds per real millisecond (> 0).
    pub speed: f64,
    pub faults: Faults,
    /// Port on 127.0.0.1; 0 picks any free port.
    pub port: u16,
}

/// One served series: a symbol's klines at one interval.
#[derive(Debug, Clone)]
pub struct Series {
    pub symbol: Symbol,
    pub interval: Interval,
    /// The rows, ascending by open time (gaps allowed, duplicates not).
    pub klines: Vec<Kline>,
}

/// What the replay server serves and how: several series under one virtual clock.
#[derive(Debug, Clone)]
pub struct ReplaySetup {
    /// At least one; no two with the same symbol and interval.
    pub series: Vec<Series>,
    /// The row of the first series whose open time is the virtual clock's origin.
    pub start_row: usize,
    /// Virtual milliseconds per real millisecond (> 0).
    pub speed: f64,
    pub faults: Faults,
    /// Port on 127.0.0.1; 0 picks any free port.
    pub port: u16,
}

impl From<ReplayConfig> for ReplaySetup {
    fn from(c: ReplayConfig) -> ReplaySetup {
        ReplaySetup {
            series: vec![Series {
                symbol: c.symbol,
                interval: c.interval,
                klines: c.klines,
            }],
            start_row: c.start_row,
            speed: c.speed,
            faults: c.faults,
            port: c.port,
        }
    }
}

/// A served series with what is derived from it once.
pub(crate) struct Served {
    klines: Vec<Kline>,
    trade_ids: Vec<i64>,
    symbol: Symbol,
    interval: Interval,
}

/// State shared by the accept loop and every connection thread.
pub(crate) struct Shared {
    series: Vec<Served>,
    /// `(symbol, interval)` of every series, in series order.
    keys: Vec<(Symbol, Interval)>,
    /// The stream name of every series (`<symbol>@kline_<interval>`), in series order.
    streams: Vec<String>,
    clock: VirtualClock,
    faults: Mutex<FaultState>,
    requests: AtomicU64,
    /// WebSocket sessions begun (upgraded and subscribed).
    ws_sessions: AtomicU64,
    /// WebSocket sessions open now.
    ws_open: AtomicU64,
    /// The most WebSocket sessions open at once since the start.
    ws_open_peak: AtomicU64,
    /// Most streams one connection may ask for (1 to [`market::MAX_STREAMS`]).
    max_streams: AtomicUsize,
    /// The last [`ReplayServer::drop_connections_of`]: how many there were, and the series
    /// whose connections it dropped.
    kick: Mutex<(u64, Vec<usize>)>,
    weight: Mutex<market::WeightWindow>,
    stop: AtomicBool,
    conns: Mutex<HashMap<u64, TcpStream>>,
}

struct FaultState {
    faults: Faults,
    /// Klines requests since the faults were last set.
    klines_requests: u64,
    /// Time requests since the faults were last set.
    time_requests: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The virtual clock's origin and end for `series` played from `start_row` of the first: the
/// origin is that row's open time, the end is past every series' last close by the settle
/// margin, so that every row ends up provably closed to a client that asks the server's time
/// (as real Binance's clock would move on). Refuses no series, a series with no rows, one not
/// strictly ascending, two with the same symbol and interval, and a start row past the end.
fn clock_span(series: &[Series], start_row: usize) -> io::Result<(i64, i64)> {
    let Some(first) = series.first() else {
        return Err(invalid(
            "the replay server needs at least one series".to_string(),
        ));
    };
    let mut end_ms = i64::MIN;
    for (n, s) in series.iter().enumerate() {
        let name = format!("{}_{}", s.symbol.as_str(), s.interval.as_str());
        let Some(last) = s.klines.last() else {
            return Err(invalid(format!("the replay data {name} has no rows")));
        };
        if let Some(w) = s
            .klines
            .windows(2)
            .find(|w| w[1].open_time <= w[0].open_time)
        {
            return Err(invalid(format!(
                "the replay data {name} is not strictly ascending at open time {}",
                w[1].open_time
            )));
        }
        if series[..n]
            .iter()
            .any(|o| o.symbol == s.symbol && o.interval == s.interval)
        {
            return Err(invalid(format!("the replay data {name} is given twice")));
        }
        end_ms = end_ms.max(
            last.close_time
                .saturating_add(1 + crate::backfill::SETTLE_MS),
        );
    }
    if start_row >= first.klines.len() {
        return Err(invalid(format!(
            "start row {start_row} is past the last row ({})",
            first.klines.len() - 1
        )));
    }
    Ok((first.klines[start_row].open_time, end_ms))
}

impl Shared {
    /// The state every connection shares: `series` served under `clock`, with `faults` on and
    /// no request counted yet.
    fn new(series: Vec<Series>, clock: VirtualClock, faults: Faults) -> Shared {
        let keys = series
            .iter()
            .map(|s| (s.symbol.clone(), s.interval))
            .collect();
        let streams = series
            .iter()
            .map(|s| market::stream_name(&s.symbol, s.interval))
            .collect();
        Shared {
            series: series
                .into_iter()
                .map(|s| Served {
                    trade_ids: market::first_trade_ids(&s.klines),
                    klines: s.klines,
                    symbol: s.symbol,
                    interval: s.interval,
                })
                .collect(),
            keys,
            streams,
            clock,
            faults: Mutex::new(FaultState {
                faults,
                klines_requests: 0,
                time_requests: 0,
            }),
            requests: AtomicU64::new(0),
            ws_sessions: AtomicU64::new(0),
            ws_open: AtomicU64::new(0),
            ws_open_peak: AtomicU64::new(0),
            max_streams: AtomicUsize::new(market::MAX_STREAMS),
            kick: Mutex::new((0, Vec::new())),
            weight: Mutex::new(market::WeightWindow::default()),
            stop: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
        }
    }

    fn faults(&self) -> Faults {
        lock(&self.faults).faults.clone()
    }

    fn max_streams(&self) -> usize {
        self.max_streams.load(Ordering::SeqCst)
    }

    /// How many drops were asked so far (a session started now is not affected by them).
    fn kicks(&self) -> u64 {
        lock(&self.kick).0
    }

    /// True when a drop asked after the `seen`th concerns one of `series`; `seen` moves on.
    fn kicked(&self, seen: &mut u64, mut series: impl Iterator<Item = usize>) -> bool {
        let kick = lock(&self.kick);
        if kick.0 == *seen {
            return false;
        }
        *seen = kick.0;
        let hit = kick.1.clone();
        drop(kick);
        series.any(|i| hit.contains(&i))
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Sleeps `total` real time in short slices; false when the server is stopping.
    fn sleep(&self, total: Duration) -> bool {
        let deadline = std::time::Instant::now() + total;
        loop {
            if self.stopping() {
                return false;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return true;
            }
            thread::sleep(left.min(Duration::from_millis(20)));
        }
    }
}

/// A running replay server. Dropping it (or [`ReplayServer::shutdown`]) stops every thread.
pub struct ReplayServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
    workers: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

impl ReplayServer {
    /// Binds 127.0.0.1:`port` (0 = any free port), spawns the accept thread and returns at once.
    /// Refuses (InvalidInput) empty or unsorted data, a start row past the end, a bad speed.
    pub fn start(config: ReplayConfig) -> io::Result<ReplayServer> {
        ReplayServer::start_setup(config.into())
    }

    /// [`ReplayServer::start`] for several series under one clock: its origin is the open time
    /// of `start_row` of the first series, and it stops once every series' last row is
    /// provably closed. Also refuses no series and two series with the same symbol and
    /// interval.
    pub fn start_setup(setup: ReplaySetup) -> io::Result<ReplayServer> {
        let ReplaySetup {
            series,
            start_row,
            speed,
            faults,
            port,
        } = setup;
        let (origin, end_ms) = clock_span(&series, start_row)?;
        if !(speed.is_finite() && speed > 0.0) {
            return Err(invalid(format!("speed {speed} must be a positive number")));
        }
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        let clock = VirtualClock::start(origin, end_ms, speed);
        let shared = Arc::new(Shared::new(series, clock, faults));
        let workers: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let shared = Arc::clone(&shared);
            let workers = Arc::clone(&workers);
            thread::Builder::new()
                .name("replay-accept".to_string())
                .spawn(move || accept_loop(listener, shared, workers))?
        };
        Ok(ReplayServer {
            shared,
            addr,
            accept: Some(accept),
            workers,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn rest_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://127.0.0.1:PORT` (same port as REST).
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the fault switches and restarts their counters.
    pub fn set_faults(&self, faults: Faults) {
        let mut state = lock(&self.shared.faults);
        state.faults = faults;
        state.klines_requests = 0;
        state.time_requests = 0;
    }

    /// REST requests served so far (WebSocket upgrades are not counted).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Klines requests received since the start (or the last [`ReplayServer::set_faults`]):
    /// the count the `*-every` faults and `slow-ms` act on.
    pub fn klines_requests(&self) -> u64 {
        lock(&self.shared.faults).klines_requests
    }

    /// WebSocket sessions begun since the start (upgraded, with a valid stream list).
    pub fn ws_sessions(&self) -> u64 {
        self.shared.ws_sessions.load(Ordering::SeqCst)
    }

    /// WebSocket sessions open now (upgraded with a valid stream list, not yet ended).
    pub fn ws_open(&self) -> u64 {
        self.shared.ws_open.load(Ordering::SeqCst)
    }

    /// The most WebSocket sessions that were open at once since the start.
    pub fn ws_open_peak(&self) -> u64 {
        self.shared.ws_open_peak.load(Ordering::SeqCst)
    }

    /// Accept at most `max` streams on one connection from now on (Binance: 1024; `max` is
    /// clamped to 1..=1024). A connection asking more in its URL is closed with 1008 and the
    /// reason, a SUBSCRIBE past it is refused with code 2, as Binance does past 1024.
    pub fn set_max_streams(&self, max: usize) {
        self.shared
            .max_streams
            .store(max.clamp(1, market::MAX_STREAMS), Ordering::SeqCst);
    }

    /// Drops (TCP shutdown, no close frame, as `drop-every` does) every WebSocket connection
    /// open now that carries a stream of `symbol`, once: connections opened afterwards are
    /// served as usual. Returns false when `symbol` is not served. For tests of one
    /// connection among several failing alone.
    pub fn drop_connections_of(&self, symbol: &Symbol) -> bool {
        let series: Vec<usize> = self
            .shared
            .keys
            .iter()
            .enumerate()
            .filter(|(_, (s, _))| s == symbol)
            .map(|(i, _)| i)
            .collect();
        if series.is_empty() {
            return false;
        }
        let mut kick = lock(&self.shared.kick);
        kick.0 += 1;
        kick.1 = series;
        true
    }

    /// The current virtual time in ms.
    pub fn now_ms(&self) -> i64 {
        self.shared.clock.now_ms()
    }

    /// Stops the virtual clock: no candle closes until [`ReplayServer::resume_clock`]; REST,
    /// pings and open connections go on. Tests use it around steps whose real duration depends
    /// on the machine (a restart under qemu), so the klines a step meets do not.
    pub fn pause_clock(&self) {
        self.shared.clock.pause();
    }

    /// Starts the virtual clock again where [`ReplayServer::pause_clock`] stopped it.
    pub fn resume_clock(&self) {
        self.shared.clock.resume();
    }

    /// Stops every thread and closes every socket.
    pub fn shutdown(self) {
        // Drop does the work.
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept() with one connection of our own.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(handle) = self.accept.take() {
            let _ = handle.join();
        }
        for stream in lock(&self.shared.conns).values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let handles: Vec<JoinHandle<()>> = lock(&self.workers).drain(..).collect();
        for handle in handles {
            let _ = handle.join();
        }
    }
}

impl Drop for ReplayServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    workers: Arc<Mutex<Vec<JoinHandle<()>>>>,
) {
    let mut next_id: u64 = 0;
    for stream in listener.incoming() {
        if shared.stopping() {
            break;
        }
        let Ok(stream) = stream else {
            // Out of file descriptors and the like: back off a little and keep serving.
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        next_id += 1;
        let id = next_id;
        if let Ok(clone) = stream.try_clone() {
            lock(&shared.conns).insert(id, clone);
        }
        let conn_shared = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name(format!("replay-conn-{id}"))
            .spawn(move || {
                http::serve(&conn_shared, stream);
                lock(&conn_shared.conns).remove(&id);
            });
        let mut list = lock(&workers);
        list.retain(|h| !h.is_finished());
        match spawned {
            Ok(handle) => list.push(handle),
            Err(_) => {
                lock(&shared.conns).remove(&id);
            }
        }
    }
}
