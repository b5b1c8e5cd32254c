//! The replay server's WebSocket side (tungstenite server): raw (`/ws/<stream>`) and combined
//! (`/stream?streams=…`) kline streams, live SUBSCRIBE/UNSUBSCRIBE/LIST_SUBSCRIPTIONS, partial
//! and final events as the virtual clock advances, pings with a pong deadline, Binance's
//! 5-messages-a-second limit, and the WebSocket faults (per connection, across its streams). Event JSON comes from `market.rs` (pure); this file only decides when to
//! send what.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Bytes, Message, WebSocket};

use super::clock::real_until;
use super::faults::{hits, Faults};
use super::{market, Shared};

/// Partial events are sent about every this many virtual milliseconds.
const PARTIAL_EVERY_MS: i64 = 2_000;
/// Above this speed, partials are capped per candle.
const CAP_SPEED: f64 = 10.0;
/// At most this many partials per candle above [`CAP_SPEED`].
const CAPPED_PARTIALS: u32 = 3;
/// Longest wait between two looks at the clock.
const TICK: Duration = Duration::from_millis(50);

/// A TcpStream whose first bytes (the already-read request head) are replayed from memory.
pub(super) struct Prefixed {
    prefix: Vec<u8>,
    pos: usize,
    inner: TcpStream,
}

impl Prefixed {
    pub(super) fn new(prefix: Vec<u8>, inner: TcpStream) -> Prefixed {
        Prefixed {
            prefix,
            pos: 0,
            inner,
        }
    }
}

impl Read for Prefixed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos < self.prefix.len() {
            let n = buf.len().min(self.prefix.len() - self.pos);
            buf[..n].copy_from_slice(&self.prefix[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

impl Write for Prefixed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

type Ws = WebSocket<Prefixed>;

/// Why a session ended early.
enum End {
    /// The socket failed or the peer left: just drop it.
    Gone,
}

fn is_timeout(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(io) if matches!(io.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
}

/// Sends a close frame and waits (briefly) for the peer's answer.
fn close_with(ws: &mut Ws, code: CloseCode, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    if ws.close(Some(frame)).is_err() {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    let _ = ws.get_mut().inner.set_read_timeout(Some(TICK));
    while Instant::now() < deadline {
        match ws.read() {
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(_) => break,
        }
    }
    let _ = ws.get_mut().inner.shutdown(Shutdown::Both);
}

fn drop_tcp(ws: &mut Ws) {
    let _ = ws.get_mut().inner.shutdown(Shutdown::Both);
}

/// The real-time ping period: 20 virtual seconds, clamped to 1..=20 real seconds.
fn ping_period(speed: f64, override_ms: Option<u64>) -> Duration {
    match override_ms {
        Some(ms) => Duration::from_millis(ms),
        None => Duration::from_secs_f64((20.0 / speed).clamp(1.0, 20.0)),
    }
}

/// How many partials a candle may get and their minimum virtual spacing: every 2 virtual
/// seconds, but above speed 10 at most 3 per candle, spaced by a third of the interval.
fn partial_policy(speed: f64, interval_ms: i64) -> (u32, i64) {
    if speed > CAP_SPEED {
        (
            CAPPED_PARTIALS,
            PARTIAL_EVERY_MS.max(interval_ms / CAPPED_PARTIALS as i64),
        )
    } else {
        (u32::MAX, PARTIAL_EVERY_MS)
    }
}

/// One subscribed stream's playback on a connection.
struct Playback {
    /// Index of the served series.
    series: usize,
    /// Index of the next candle whose final event has not been sent.
    next: usize,
    partials: u32,
    last_partial_ms: Option<i64>,
}

impl Playback {
    /// Starts with the candle current at virtual time `now` (nothing from the past is replayed).
    fn new(shared: &Shared, series: usize, now: i64) -> Playback {
        let klines = &shared.series[series].klines;
        let visible = klines.partition_point(|k| k.open_time <= now);
        let next = match visible.checked_sub(1) {
            Some(i) if market::is_open(&klines[i], now) => i,
            _ => visible,
        };
        Playback {
            series,
            next,
            partials: 0,
            last_partial_ms: None,
        }
    }

    fn partial_due(&self, shared: &Shared, now: i64) -> bool {
        let interval = shared.series[self.series].interval;
        let (max, gap) = partial_policy(shared.clock.speed(), interval.ms());
        self.partials < max && self.last_partial_ms.is_none_or(|t| now - t >= gap)
    }

    /// The close time of the next final, when it is due at `now` (a held final, see
    /// `hold-final`, is due that much real time later).
    fn final_due(&self, shared: &Shared, faults: &Faults, now: i64) -> Option<i64> {
        let k = shared.series[self.series].klines.get(self.next)?;
        (k.close_time.saturating_add(self.held_ms(shared, faults)) < now).then_some(k.close_time)
    }

    /// The virtual milliseconds the next final is held by `hold-final` (0: not held).
    fn held_ms(&self, shared: &Shared, faults: &Faults) -> i64 {
        let symbol = shared.series[self.series].symbol.as_str();
        let real = faults.hold_ms(symbol, self.next);
        if real == 0 {
            return 0;
        }
        // Saturating float-to-int cast: a huge hold is "never" within any test.
        (real as f64 * shared.clock.speed()) as i64
    }
}

/// Per-connection state.
struct Session {
    /// The subscribed streams (indices into `Shared::streams`) and the `combined` property.
    subs: market::Subscriptions,
    /// One playback per subscribed stream, in subscription order.
    plays: Vec<Playback>,
    finals: u64,
    data_frames: u64,
    garbage_frames: u64,
    ping_seq: u64,
    /// The highest ping sequence number a pong has answered.
    ponged_seq: u64,
    next_ping: Instant,
    /// The oldest unanswered ping: its sequence number and when it was sent.
    unanswered: Option<(u64, Instant)>,
    /// Incoming messages counted against Binance's per-connection limit.
    rate: market::MessageRate,
    started: Instant,
    /// The drops asked of the server ([`super::ReplayServer::drop_connections_of`]) this
    /// session has looked at.
    kicks_seen: u64,
}

impl Session {
    /// Sends one payload of `series`, wrapped as `{"stream":…,"data":…}` on a combined
    /// connection; the garbage fault may precede it.
    fn send_data(
        &mut self,
        shared: &Shared,
        ws: &mut Ws,
        stream: Option<&str>,
        text: String,
    ) -> Result<(), End> {
        self.data_frames += 1;
        if hits(shared.faults().garbage_every, self.data_frames) {
            self.garbage_frames += 1;
            let junk = if self.garbage_frames % 2 == 1 {
                "{\"e\":\"kline\",\"k\":"
            } else {
                "not json"
            };
            ws.send(Message::text(junk)).map_err(|_| End::Gone)?;
        }
        let text = match (self.subs.combined, stream) {
            (true, Some(name)) => market::envelope(name, &text),
            _ => text,
        };
        ws.send(Message::text(text)).map_err(|_| End::Gone)
    }

    /// Counts one incoming message; false when it is one too many for this second.
    fn admit(&mut self) -> bool {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.rate.admit(ms)
    }

    /// Applies a control message and starts or stops the playbacks it changed.
    fn control(&mut self, shared: &Shared, ws: &mut Ws, text: &str) -> Result<(), End> {
        let applied = self.subs.apply(text, &shared.streams, shared.max_streams());
        let now = shared.clock.now_ms();
        self.plays.retain(|p| !applied.removed.contains(&p.series));
        for series in applied.added {
            self.plays.push(Playback::new(shared, series, now));
        }
        ws.send(Message::text(applied.reply)).map_err(|_| End::Gone)
    }
}

/// Serves one upgraded connection until it ends or the server stops.
pub(super) fn serve(shared: &Arc<Shared>, stream: Prefixed) {
    if stream
        .inner
        .set_write_timeout(Some(Duration::from_secs(10)))
        .is_err()
        || stream
            .inner
            .set_read_timeout(Some(Duration::from_secs(5)))
            .is_err()
    {
        return;
    }
    let mut path = String::new();
    let mut query = String::new();
    // Reason: the closure's error type is tungstenite's handshake callback signature.
    #[allow(clippy::result_large_err)]
    let callback = |req: &tungstenite::handshake::server::Request,
                    resp: tungstenite::handshake::server::Response| {
        path = req.uri().path().to_string();
        query = req.uri().query().unwrap_or("").to_string();
        Ok(resp)
    };
    let mut ws = match tungstenite::accept_hdr(stream, callback) {
        Ok(ws) => ws,
        Err(_) => return,
    };
    let subs = match market::parse_ws_target(&path, &query, &shared.streams, shared.max_streams()) {
        Ok(subs) => subs,
        Err(reason) => {
            close_with(&mut ws, CloseCode::Policy, &reason);
            return;
        }
    };
    shared.ws_sessions.fetch_add(1, Ordering::SeqCst);
    let _open = OpenSession::new(shared);
    let now = shared.clock.now_ms();
    let plays = subs
        .streams
        .iter()
        .map(|&series| Playback::new(shared, series, now))
        .collect();
    let mut session = Session {
        subs,
        plays,
        finals: 0,
        data_frames: 0,
        garbage_frames: 0,
        ping_seq: 0,
        ponged_seq: 0,
        next_ping: Instant::now() + ping_period(shared.clock.speed(), shared.faults().ping_ms),
        unanswered: None,
        rate: market::MessageRate::default(),
        started: Instant::now(),
        kicks_seen: shared.kicks(),
    };
    if run_session(shared, &mut ws, &mut session).is_err() {
        drop_tcp(&mut ws);
    }
}

/// Counts a session as open from its creation until it is dropped (however the session ends).
struct OpenSession<'a>(&'a Shared);

impl<'a> OpenSession<'a> {
    fn new(shared: &'a Shared) -> OpenSession<'a> {
        let now = shared.ws_open.fetch_add(1, Ordering::SeqCst) + 1;
        shared.ws_open_peak.fetch_max(now, Ordering::SeqCst);
        OpenSession(shared)
    }
}

impl Drop for OpenSession<'_> {
    fn drop(&mut self) {
        self.0.ws_open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether the session goes on after one of its steps, or has ended (the connection is closed
/// or dropped).
enum Next {
    Go,
    Done,
}

/// Sends the final of `s.plays[p]`'s next candle and applies the per-connection faults that
/// count finals.
fn send_final(
    shared: &Shared,
    ws: &mut Ws,
    s: &mut Session,
    p: usize,
    now: i64,
) -> Result<Next, End> {
    let faults = shared.faults();
    let play = &s.plays[p];
    let series = &shared.series[play.series];
    let stream = shared.streams[play.series].as_str();
    let event = market::kline_event(
        &series.symbol,
        series.interval,
        &series.klines[play.next],
        series.trade_ids[play.next],
        now,
        true,
    );
    if faults.dup_finals {
        s.send_data(shared, ws, Some(stream), event.clone())?;
    }
    s.send_data(shared, ws, Some(stream), event)?;
    s.finals += 1;
    let play = &mut s.plays[p];
    play.next += 1;
    play.partials = 0;
    play.last_partial_ms = None;
    if hits(faults.drop_every, s.finals) {
        drop_tcp(ws);
        return Ok(Next::Done);
    }
    if faults.shutdown_after.is_some_and(|n| s.finals >= n) {
        let event = market::shutdown_event(now);
        s.send_data(shared, ws, Some("!serverShutdown"), event)?;
        close_with(ws, CloseCode::Away, "server shutdown");
        return Ok(Next::Done);
    }
    if let (Some(ms), 1) = (faults.stall_ms, s.finals) {
        shared.sleep(Duration::from_millis(ms));
        drop_tcp(ws);
        return Ok(Next::Done);
    }
    Ok(Next::Go)
}

/// Serves one connection until it ends: each turn sends the finals and partials that are due,
/// pings, then waits for the next due event while reading what the client sends.
fn run_session(shared: &Shared, ws: &mut Ws, s: &mut Session) -> Result<(), End> {
    loop {
        if shared.stopping() || shared.kicked(&mut s.kicks_seen, s.plays.iter().map(|p| p.series)) {
            drop_tcp(ws);
            return Ok(());
        }
        let now = shared.clock.now_ms();
        if let Next::Done = send_due_finals(shared, ws, s, now)? {
            return Ok(());
        }
        send_partials(shared, ws, s, now)?;
        if let Next::Done = ping(shared, ws, s)? {
            return Ok(());
        }
        let wait = next_wait(shared, s, now);
        ws.get_mut()
            .inner
            .set_read_timeout(Some(wait))
            .map_err(|_| End::Gone)?;
        let message = match ws.read() {
            Ok(message) => message,
            Err(e) if is_timeout(&e) => continue,
            Err(_) => return Err(End::Gone),
        };
        if let Next::Done = receive(shared, ws, s, message)? {
            return Ok(());
        }
    }
}

/// Finals for every candle whose close time has passed, oldest first across the streams (ties
/// in subscription order).
fn send_due_finals(shared: &Shared, ws: &mut Ws, s: &mut Session, now: i64) -> Result<Next, End> {
    loop {
        let faults = shared.faults();
        let due = s
            .plays
            .iter()
            .enumerate()
            .filter_map(|(p, play)| play.final_due(shared, &faults, now).map(|t| (t, p)))
            .min();
        let Some((_, p)) = due else {
            return Ok(Next::Go);
        };
        if let Next::Done = send_final(shared, ws, s, p, now)? {
            return Ok(Next::Done);
        }
    }
}

/// A partial for each open candle whose partial is due.
fn send_partials(shared: &Shared, ws: &mut Ws, s: &mut Session, now: i64) -> Result<(), End> {
    for p in 0..s.plays.len() {
        let play = &s.plays[p];
        let series = &shared.series[play.series];
        let Some(k) = series.klines.get(play.next) else {
            continue;
        };
        // A candle whose close has passed waits for its final (held, see `hold-final`): no
        // partial of it, nor of the next candle, meanwhile.
        if k.open_time > now || k.close_time < now || !play.partial_due(shared, now) {
            continue;
        }
        let event = market::kline_event(
            &series.symbol,
            series.interval,
            &market::partial_kline(k, now),
            series.trade_ids[play.next],
            now,
            false,
        );
        let stream = shared.streams[play.series].as_str();
        s.send_data(shared, ws, Some(stream), event)?;
        let play = &mut s.plays[p];
        play.partials += 1;
        play.last_partial_ms = Some(now);
    }
    Ok(())
}

/// A ping when one is due, and the pong deadline: the connection is closed when the oldest
/// unanswered ping is older than the fault settings allow.
fn ping(shared: &Shared, ws: &mut Ws, s: &mut Session) -> Result<Next, End> {
    let faults = shared.faults();
    let period = ping_period(shared.clock.speed(), faults.ping_ms);
    if Instant::now() >= s.next_ping {
        s.ping_seq += 1;
        let payload = Bytes::from(s.ping_seq.to_string().into_bytes());
        ws.send(Message::Ping(payload)).map_err(|_| End::Gone)?;
        if s.unanswered.is_none() {
            s.unanswered = Some((s.ping_seq, Instant::now()));
        }
        s.next_ping = Instant::now() + period;
    }
    if let Some((_, since)) = s.unanswered {
        if since.elapsed() > Duration::from_millis(faults.pong_timeout_ms()) {
            close_with(ws, CloseCode::Policy, "pong timeout");
            return Ok(Next::Done);
        }
    }
    Ok(Next::Go)
}

/// How long to wait for the client before the next thing to do (a ping, a candle's open or
/// close), at least 1 ms and at most [`TICK`].
fn next_wait(shared: &Shared, s: &Session, now: i64) -> Duration {
    let mut wait = TICK.min(s.next_ping.saturating_duration_since(Instant::now()));
    let faults = shared.faults();
    for play in &s.plays {
        if let Some(k) = shared.series[play.series].klines.get(play.next) {
            let target = if k.open_time > now {
                k.open_time
            } else {
                k.close_time
                    .saturating_add(play.held_ms(shared, &faults))
                    .saturating_add(1)
            };
            wait = wait.min(real_until(now, target, shared.clock.speed()));
        }
    }
    wait.max(Duration::from_millis(1))
}

/// One message from the client: a pong answering our ping, a close, a control request, or
/// anything else; all but a solicited pong and a close count against the incoming message
/// limit, whose breach closes the connection.
fn receive(shared: &Shared, ws: &mut Ws, s: &mut Session, message: Message) -> Result<Next, End> {
    // A pong that answers one of our pings is not counted: this server pings up to 20
    // times as often as Binance (virtual time), whose pings every 20 s make such pongs
    // negligible. Everything else the client sends counts (protocol doc §3.6).
    let solicited = match &message {
        Message::Pong(payload) => std::str::from_utf8(payload)
            .ok()
            .and_then(|t| t.parse::<u64>().ok())
            .filter(|&seq| seq > s.ponged_seq && seq <= s.ping_seq),
        _ => None,
    };
    if let Some(seq) = solicited {
        s.ponged_seq = seq;
        if s.unanswered.is_some_and(|(oldest, _)| seq >= oldest) {
            s.unanswered = None;
        }
    } else if !matches!(message, Message::Close(_) | Message::Frame(_)) && !s.admit() {
        close_with(
            ws,
            CloseCode::Policy,
            "too many messages: at most 5 incoming messages a second per connection",
        );
        return Ok(Next::Done);
    }
    match message {
        Message::Close(_) => {
            // tungstenite queued the close reply; flush it and leave.
            let _ = ws.flush();
            return Ok(Next::Done);
        }
        Message::Text(text) => s.control(shared, ws, text.as_str())?,
        Message::Binary(bytes) => {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            s.control(shared, ws, &text)?;
        }
        _ => {}
    }
    Ok(Next::Go)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_period_is_twenty_virtual_seconds_clamped() {
        assert_eq!(ping_period(1.0, None), Duration::from_secs(20));
        assert_eq!(ping_period(0.5, None), Duration::from_secs(20));
        assert_eq!(ping_period(4.0, None), Duration::from_secs(5));
        assert_eq!(ping_period(1000.0, None), Duration::from_secs(1));
        assert_eq!(ping_period(1000.0, Some(300)), Duration::from_millis(300));
    }

    #[test]
    fn partials_are_capped_at_high_speed() {
        assert_eq!(partial_policy(1.0, 60_000), (u32::MAX, 2_000));
        assert_eq!(partial_policy(10.0, 60_000), (u32::MAX, 2_000));
        assert_eq!(partial_policy(60.0, 60_000), (3, 20_000));
        assert_eq!(partial_policy(1e6, 1_000), (3, 2_000));
    }
}
