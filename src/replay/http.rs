//! The replay server's HTTP/1.1 side over a plain `TcpStream`: reads request heads, hands
//! WebSocket upgrades to `ws.rs`, answers the REST endpoints with Binance's headers and bodies,
//! and injects the REST faults. Row selection and JSON live in `market.rs` (pure).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::faults::hits;
use super::market::{self, ApiError};
use super::{lock, ws, Shared};

/// Largest request head accepted: room for a combined-stream URL of 1024 streams of the
/// longest symbols (1024 × `<20 letters>@kline_12h/` is about 31 KiB) and the usual headers.
const MAX_HEAD: usize = 64 * 1024;
/// An idle keep-alive connection is closed after this much real time.
const IDLE_LIMIT: Duration = Duration::from_secs(120);
/// Read poll period, so that a stopping server is noticed.
const POLL: Duration = Duration::from_millis(100);

/// One parsed request head.
#[derive(Debug)]
struct Head {
    method: String,
    target: String,
    version: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.header(name)
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }

    fn keep_alive(&self) -> bool {
        if self.has_token("Connection", "close") {
            return false;
        }
        self.version == "HTTP/1.1" || self.has_token("Connection", "keep-alive")
    }
}

fn parse_head(bytes: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let version = first.next()?.to_string();
    if first.next().is_some() || !version.starts_with("HTTP/1.") {
        return None;
    }
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (k, v) = line.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    Some(Head {
        method,
        target,
        version,
        headers,
    })
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

enum Fill {
    Ok,
    Closed,
}

/// Reads more bytes into `buf`, polling so that a stopping server or an idle connection ends.
fn fill(shared: &Shared, stream: &mut TcpStream, buf: &mut Vec<u8>, idle_since: Instant) -> Fill {
    let mut chunk = [0u8; 4096];
    loop {
        if shared.stopping() || idle_since.elapsed() > IDLE_LIMIT {
            return Fill::Closed;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Fill::Closed,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Fill::Ok;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return Fill::Closed,
        }
    }
}

/// An answer to write.
struct Reply {
    status: u16,
    body: String,
    retry_after: Option<u64>,
    weight: Option<u64>,
    torn: bool,
}

impl Reply {
    fn json(status: u16, body: String) -> Reply {
        Reply {
            status,
            body,
            retry_after: None,
            weight: None,
            torn: false,
        }
    }

    fn error(e: &ApiError) -> Reply {
        Reply::json(e.status, e.body())
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        418 => "I'm a teapot",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    }
}

fn write_reply(stream: &mut TcpStream, reply: &Reply, keep_alive: bool) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: {}\r\n",
        reply.status,
        reason(reply.status),
        reply.body.len()
    );
    if let Some(w) = reply.weight {
        head.push_str(&format!("X-MBX-USED-WEIGHT-1M: {w}\r\n"));
    }
    if let Some(s) = reply.retry_after {
        head.push_str(&format!("Retry-After: {s}\r\n"));
    }
    if !keep_alive {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    if reply.torn {
        bytes.extend_from_slice(&reply.body.as_bytes()[..reply.body.len() / 2]);
    } else {
        bytes.extend_from_slice(reply.body.as_bytes());
    }
    stream.write_all(&bytes)?;
    stream.flush()
}

/// Serves one accepted connection until it closes, is upgraded, or the server stops.
pub(super) fn serve(shared: &Arc<Shared>, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    if stream.set_read_timeout(Some(POLL)).is_err()
        || stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .is_err()
    {
        return;
    }
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let idle_since = Instant::now();
        let head_end = loop {
            if let Some(end) = find_head_end(&buf) {
                break end;
            }
            if buf.len() > MAX_HEAD {
                let e = ApiError::new(431, -1000, "Request header too large.");
                let _ = write_reply(&mut stream, &Reply::error(&e), false);
                return;
            }
            if let Fill::Closed = fill(shared, &mut stream, &mut buf, idle_since) {
                return;
            }
        };
        let Some(head) = parse_head(&buf[..head_end - 4]) else {
            let e = ApiError::new(400, -1000, "Malformed HTTP request.");
            let _ = write_reply(&mut stream, &Reply::error(&e), false);
            return;
        };
        if head.has_token("Upgrade", "websocket") {
            ws::serve(shared, ws::Prefixed::new(buf, stream));
            return;
        }
        let body_len: usize = head
            .header("Content-Length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + body_len {
            if let Fill::Closed = fill(shared, &mut stream, &mut buf, Instant::now()) {
                return;
            }
        }
        buf.drain(..head_end + body_len);
        let keep_alive = head.keep_alive();
        let reply = answer(shared, &head);
        if write_reply(&mut stream, &reply, keep_alive && !reply.torn).is_err() {
            return;
        }
        if reply.torn || !keep_alive {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
    }
}

const WEIGHT_MSG: &str = "Too much request weight used; current limit is 6000 request weight \
per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.";

/// Answers one REST request, faults included.
fn answer(shared: &Shared, head: &Head) -> Reply {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let (path, query) = head
        .target
        .split_once('?')
        .unwrap_or((head.target.as_str(), ""));
    let weight = match path {
        "/api/v3/ping" | "/api/v3/time" => 1,
        "/api/v3/klines" => 2,
        "/api/v3/exchangeInfo" => 20,
        _ => 1,
    };
    let faults = shared.faults();
    if let Some(s) = faults.ban_418_s {
        let until = shared.clock.now_ms() + (s as i64) * 1000;
        let e = ApiError::new(
            418,
            -1003,
            format!(
                "Way too much request weight used; IP banned until {until}. Please use \
                 WebSocket Streams for live updates to avoid bans."
            ),
        );
        return Reply {
            retry_after: Some(s),
            ..Reply::error(&e)
        };
    }
    let elapsed = shared.clock.real_elapsed().as_secs();
    let used = lock(&shared.weight).charge(elapsed / 60, weight);
    let mut reply = if used > faults.weight_limit() {
        Reply {
            retry_after: Some(60 - elapsed % 60),
            ..Reply::error(&ApiError::new(429, -1003, WEIGHT_MSG))
        }
    } else if head.method != "GET" {
        Reply::error(&ApiError::new(
            405,
            -1000,
            format!("Method {} is not supported: use GET.", head.method),
        ))
    } else {
        match path {
            "/api/v3/ping" => Reply::json(200, "{}".to_string()),
            "/api/v3/time" => server_time(shared),
            "/api/v3/exchangeInfo" => exchange_info(shared, query),
            "/api/v3/klines" => klines(shared, query),
            _ => Reply::error(&ApiError::new(
                404,
                -1000,
                format!("Unknown path {path}: this replay server serves /api/v3/ping, /api/v3/time, /api/v3/exchangeInfo and /api/v3/klines."),
            )),
        }
    };
    reply.weight = Some(used);
    reply
}

fn server_time(shared: &Shared) -> Reply {
    let (count, faults) = {
        let mut state = lock(&shared.faults);
        state.time_requests += 1;
        (state.time_requests, state.faults.clone())
    };
    if hits(faults.time_every_429, count) {
        return Reply {
            retry_after: Some(faults.retry_after()),
            ..Reply::error(&ApiError::new(429, -1003, WEIGHT_MSG))
        };
    }
    Reply::json(200, format!("{{\"serverTime\":{}}}", shared.clock.now_ms()))
}

fn exchange_info(shared: &Shared, query: &str) -> Reply {
    let body = market::exchange_info(
        query,
        &shared.keys,
        shared.clock.now_ms(),
        shared.faults().weight_limit(),
    );
    match body {
        Ok(body) => Reply::json(200, body),
        Err(e) => Reply::error(&e),
    }
}

fn klines(shared: &Shared, query: &str) -> Reply {
    let (count, faults) = {
        let mut state = lock(&shared.faults);
        state.klines_requests += 1;
        (state.klines_requests, state.faults.clone())
    };
    if hits(faults.every_429, count) {
        return Reply {
            retry_after: Some(faults.retry_after()),
            ..Reply::error(&ApiError::new(429, -1003, WEIGHT_MSG))
        };
    }
    if hits(faults.every_500, count) {
        return Reply::error(&ApiError::new(
            500,
            -1000,
            "An unknown error occurred while processing the request.",
        ));
    }
    let (series, q) = match market::parse_klines_query(query, &shared.keys) {
        Ok(found) => found,
        Err(e) => return Reply::error(&e),
    };
    let klines = &shared.series[series].klines;
    let now = shared.clock.now_ms();
    let range = market::select(klines, now, &q);
    // A slow link: the page is as of the request, the client gets it later.
    if let Some(ms) = faults.slow_ms {
        shared.sleep(Duration::from_millis(ms));
    }
    Reply {
        torn: hits(faults.torn_every, count),
        ..Reply::json(200, market::rest_body(klines, range, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_parse_and_keep_alive_follows_the_version() {
        let h = parse_head(b"GET /api/v3/time HTTP/1.1\r\nHost: x\r\nConnection: Close")
            .expect("valid head");
        assert_eq!(
            (h.method.as_str(), h.target.as_str()),
            ("GET", "/api/v3/time")
        );
        assert!(!h.keep_alive());
        let h = parse_head(b"GET / HTTP/1.1\r\nHost: x").expect("valid head");
        assert!(h.keep_alive());
        let h = parse_head(b"GET / HTTP/1.0\r\nHost: x").expect("valid head");
        assert!(!h.keep_alive());
        let h =
            parse_head(b"GET / HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade")
                .expect("valid head");
        assert!(h.has_token("upgrade", "websocket"));
        assert!(parse_head(b"GET / SPDY/3").is_none());
        assert!(parse_head(b"GET /\r\nx").is_none());
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
    }
}
