//! The replay server's WebSocket side (tungstenite server): one kline stream per connection,
//! partial and final events as the virtual clock advances, pings with a pong deadline, and the
//! WebSocket faults. Event JSON comes from `market.rs` (pure); this file only decides when to
//! send what.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Bytes, Message, WebSocket};

use super::clock::real_until;
use super::faults::hits;
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

/// Per-connection state.
struct Session {
    /// Index of the next candle whose final event has not been sent.
    next: usize,
    partials: u32,
    last_partial_ms: Option<i64>,
    finals: u64,
    data_frames: u64,
    garbage_frames: u64,
    ping_seq: u64,
    next_ping: Instant,
    /// The oldest unanswered ping: its sequence number and when it was sent.
    unanswered: Option<(u64, Instant)>,
}

impl Session {
    fn send_data(&mut self, shared: &Shared, ws: &mut Ws, text: String) -> Result<(), End> {
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
        ws.send(Message::text(text)).map_err(|_| End::Gone)
    }

    fn partial_due(&self, shared: &Shared, now: i64) -> bool {
        let (max, gap) = partial_policy(shared.clock.speed(), shared.interval.ms());
        self.partials < max && self.last_partial_ms.is_none_or(|t| now - t >= gap)
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
    // Reason: the closure's error type is tungstenite's handshake callback signature.
    #[allow(clippy::result_large_err)]
    let callback = |req: &tungstenite::handshake::server::Request,
                    resp: tungstenite::handshake::server::Response| {
        path = req.uri().path().to_string();
        Ok(resp)
    };
    let mut ws = match tungstenite::accept_hdr(stream, callback) {
        Ok(ws) => ws,
        Err(_) => return,
    };
    let expected = format!(
        "/ws/{}@kline_{}",
        shared.symbol.lower(),
        shared.interval.as_str()
    );
    if path != expected {
        close_with(
            &mut ws,
            CloseCode::Policy,
            &format!("unknown stream {path:?}: this server streams {expected}"),
        );
        return;
    }
    let now = shared.clock.now_ms();
    let visible = shared.klines.partition_point(|k| k.open_time <= now);
    let next = match visible.checked_sub(1) {
        Some(i) if market::is_open(&shared.klines[i], now) => i,
        _ => visible,
    };
    let mut session = Session {
        next,
        partials: 0,
        last_partial_ms: None,
        finals: 0,
        data_frames: 0,
        garbage_frames: 0,
        ping_seq: 0,
        next_ping: Instant::now() + ping_period(shared.clock.speed(), shared.faults().ping_ms),
        unanswered: None,
    };
    if run_session(shared, &mut ws, &mut session).is_err() {
        drop_tcp(&mut ws);
    }
}

fn run_session(shared: &Shared, ws: &mut Ws, s: &mut Session) -> Result<(), End> {
    let klines = &shared.klines;
    loop {
        if shared.stopping() {
            drop_tcp(ws);
            return Ok(());
        }
        let faults = shared.faults();
        let now = shared.clock.now_ms();
        // Finals for every candle whose close time has passed.
        while s.next < klines.len() && klines[s.next].close_time < now {
            let k = &klines[s.next];
            let event = market::kline_event(
                &shared.symbol,
                shared.interval,
                k,
                shared.trade_ids[s.next],
                now,
                true,
            );
            if faults.dup_finals {
                s.send_data(shared, ws, event.clone())?;
            }
            s.send_data(shared, ws, event)?;
            s.finals += 1;
            s.next += 1;
            s.partials = 0;
            s.last_partial_ms = None;
            if hits(faults.drop_every, s.finals) {
                drop_tcp(ws);
                return Ok(());
            }
            if faults.shutdown_after.is_some_and(|n| s.finals >= n) {
                s.send_data(shared, ws, market::shutdown_event(now))?;
                close_with(ws, CloseCode::Away, "server shutdown");
                return Ok(());
            }
            if let (Some(ms), 1) = (faults.stall_ms, s.finals) {
                shared.sleep(Duration::from_millis(ms));
                drop_tcp(ws);
                return Ok(());
            }
        }
        // A partial for the open candle.
        if s.next < klines.len() && klines[s.next].open_time <= now && s.partial_due(shared, now) {
            let k = market::partial_kline(&klines[s.next], now);
            let event = market::kline_event(
                &shared.symbol,
                shared.interval,
                &k,
                shared.trade_ids[s.next],
                now,
                false,
            );
            s.send_data(shared, ws, event)?;
            s.partials += 1;
            s.last_partial_ms = Some(now);
        }
        // Pings and the pong deadline.
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
                return Ok(());
            }
        }
        // Wait for the next thing to do, reading what the client sends meanwhile.
        let mut wait = TICK.min(s.next_ping.saturating_duration_since(Instant::now()));
        if let Some(k) = klines.get(s.next) {
            let target = if k.open_time > now {
                k.open_time
            } else {
                k.close_time + 1
            };
            wait = wait.min(real_until(now, target, shared.clock.speed()));
        }
        let wait = wait.max(Duration::from_millis(1));
        ws.get_mut()
            .inner
            .set_read_timeout(Some(wait))
            .map_err(|_| End::Gone)?;
        match ws.read() {
            Ok(Message::Pong(payload)) => {
                let seq = std::str::from_utf8(&payload)
                    .ok()
                    .and_then(|t| t.parse::<u64>().ok());
                if let (Some(seq), Some((oldest, _))) = (seq, s.unanswered) {
                    if seq >= oldest {
                        s.unanswered = None;
                    }
                }
            }
            Ok(Message::Close(_)) => {
                // tungstenite queued the close reply; flush it and leave.
                let _ = ws.flush();
                return Ok(());
            }
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(_) => return Err(End::Gone),
        }
    }
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
