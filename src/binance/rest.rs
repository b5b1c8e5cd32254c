//! The REST client on ureq: `ping`, server time and klines, with Binance's rate-limit rules
//! (slow down when `X-MBX-USED-WEIGHT-1M` nears 6000, wait `Retry-After` on 429, stop on a 418
//! ban) and retries with capped, jittered exponential backoff for 5xx, timeouts, connection and
//! TLS failures and torn bodies. Sleeping and notices are injectable so tests run fast. It parses
//! bodies with the pure `wire` parsers and holds no maths.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::tls::{self, Endpoint, Timeouts};
use super::wire::{self, WireError};
use super::BinanceError;
use crate::kline::{Interval, Kline, Symbol};
use crate::rng::Rng;

/// Binance's request weight limit per minute and IP.
pub(crate) const WEIGHT_LIMIT_1M: u32 = 6000;
/// Above this used weight the client pauses until the next minute.
pub(crate) const WEIGHT_SLOW_DOWN: u32 = 4800;
/// Largest page `GET /api/v3/klines` serves.
pub(crate) const MAX_LIMIT: u16 = 1000;
/// A 418 without `Retry-After`: Binance's shortest ban.
const DEFAULT_BAN_SECS: u64 = 120;
/// Largest body read (a full klines page is about 150 KB).
const BODY_LIMIT: u64 = 16 << 20;

/// How retries back off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First backoff, doubled on every further attempt.
    pub base_ms: u64,
    /// Backoff never exceeds this.
    pub cap_ms: u64,
    /// Attempts per request (the first try included) before giving up.
    pub max_attempts: u32,
    /// Up to this much random extra wait after a `Retry-After`.
    pub jitter_ms: u64,
    /// Seed of the jitter.
    pub seed: u64,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            base_ms: 1_000,
            cap_ms: 60_000,
            max_attempts: 8,
            jitter_ms: 1_000,
            seed: 0x6b6c_696e_6563_6173,
        }
    }
}

type Sleeper = Box<dyn FnMut(Duration) + Send>;
type Notifier = Box<dyn FnMut(&str) + Send>;

/// A blocking Binance REST client (one per thread; it is `Send`).
pub struct RestClient {
    endpoint: Endpoint,
    agent: ureq::Agent,
    policy: RetryPolicy,
    rng: Rng,
    sleep: Sleeper,
    notify: Notifier,
    used_weight: Option<u32>,
    /// No request, retry wait or pause goes past this instant (the run's `--max-runtime`).
    deadline: Option<Instant>,
    /// One attempt per request, no retry (the stream's start-up check: it must not hold the
    /// stream back; it is tried again at the next gap fill).
    single_attempt: bool,
}

impl std::fmt::Debug for RestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestClient")
            .field("endpoint", &self.endpoint)
            .field("policy", &self.policy)
            .field("used_weight", &self.used_weight)
            .finish_non_exhaustive()
    }
}

/// What one attempt came to.
enum Attempt<T> {
    Done(T),
    Fatal(BinanceError),
    /// 429: wait this many seconds.
    RetryAfter(Option<u64>),
    Transient(Transient),
}

/// A retryable failure, remembered to build the final error.
enum Transient {
    Server(u16),
    Network(String),
    Tls(String),
    Body(String),
}

impl RestClient {
    /// A client for `base_url` (`https://…`, or `http://` to a loopback test server) with
    /// default timeouts and retry policy.
    pub fn new(base_url: &str) -> Result<RestClient, BinanceError> {
        RestClient::with_options(base_url, Timeouts::default(), RetryPolicy::default())
    }

    /// A client with explicit timeouts and retry policy.
    pub fn with_options(
        base_url: &str,
        timeouts: Timeouts,
        policy: RetryPolicy,
    ) -> Result<RestClient, BinanceError> {
        let endpoint = tls::check_base_url(base_url, "https", "http")?;
        let agent = tls::agent(&endpoint, timeouts);
        Ok(RestClient {
            endpoint,
            agent,
            policy,
            rng: Rng::new(policy.seed),
            sleep: Box::new(std::thread::sleep),
            notify: Box::new(|msg| {
                eprintln!(
                    "klinecast: {} {msg}",
                    crate::log::stamp(crate::log::wall_clock_ms())
                )
            }),
            used_weight: None,
            deadline: None,
            single_attempt: false,
        })
    }

    /// Replaces `std::thread::sleep` (tests record the waits instead of waiting).
    pub fn with_sleeper(mut self, sleep: impl FnMut(Duration) + Send + 'static) -> RestClient {
        self.sleep = Box::new(sleep);
        self
    }

    /// Replaces the notice sink (stderr by default): retries, pauses.
    pub fn with_notifier(mut self, notify: impl FnMut(&str) + Send + 'static) -> RestClient {
        self.notify = Box::new(notify);
        self
    }

    /// No request, retry wait or rate-limit pause goes past `deadline`: a retry that would is
    /// not made (the request fails with the last error), and each request's own timeout is cut
    /// to the time left.
    pub(crate) fn with_deadline(mut self, deadline: Option<Instant>) -> RestClient {
        self.deadline = deadline;
        self
    }

    /// One attempt per request, no retry (`true`), or the retry policy's attempts (`false`).
    pub(crate) fn set_single_attempt(&mut self, on: bool) {
        self.single_attempt = on;
    }

    /// Time left before the deadline (`None`: no deadline).
    fn time_left(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// The last `X-MBX-USED-WEIGHT-1M` seen.
    #[cfg(test)]
    pub(crate) fn used_weight(&self) -> Option<u32> {
        self.used_weight
    }

    /// `GET /api/v3/ping`.
    pub fn ping(&mut self) -> Result<(), BinanceError> {
        self.get("/api/v3/ping", |_| Ok(()))
    }

    /// `GET /api/v3/time`: the server's clock in ms.
    pub fn server_time(&mut self) -> Result<i64, BinanceError> {
        self.get("/api/v3/time", wire::parse_server_time)
    }

    /// `GET /api/v3/klines`: up to `limit` (1..=1000, clamped) klines from `start_time` on,
    /// not past `end_time`. The last one may still be open: callers check `close_time`.
    pub fn klines(
        &mut self,
        symbol: &Symbol,
        interval: Interval,
        start_time: i64,
        end_time: Option<i64>,
        limit: u16,
    ) -> Result<Vec<Kline>, BinanceError> {
        let limit = limit.clamp(1, MAX_LIMIT);
        let mut path = format!(
            "/api/v3/klines?symbol={}&interval={}&startTime={start_time}&limit={limit}",
            symbol.as_str(),
            interval.as_str()
        );
        if let Some(end) = end_time {
            path.push_str(&format!("&endTime={end}"));
        }
        self.get(&path, |body| {
            let klines = wire::parse_klines(body)?;
            let ordered = klines.windows(2).all(|w| w[0].open_time < w[1].open_time);
            // A start inside a candle may return that candle: allow one interval before.
            let in_range = klines.iter().all(|k| {
                k.open_time > start_time - interval.ms()
                    && end_time.is_none_or(|e| k.open_time <= e)
            });
            if !ordered || !in_range || klines.len() > usize::from(limit) {
                return Err(WireError::Shape(
                    "klines out of order or outside the requested range".to_string(),
                ));
            }
            Ok(klines)
        })
    }

    /// One GET with retries; `parse` failures count as a torn body and are retried.
    fn get<T>(
        &mut self,
        path: &str,
        parse: impl Fn(&str) -> Result<T, WireError>,
    ) -> Result<T, BinanceError> {
        let url = self.endpoint.url(path);
        let max = if self.single_attempt {
            1
        } else {
            self.policy.max_attempts.max(1)
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = self.attempt(&url, &parse);
            let wait_ms = match outcome {
                Attempt::Done(value) => return Ok(value),
                Attempt::Fatal(err) => return Err(err),
                Attempt::RetryAfter(secs) => {
                    if attempt >= max {
                        return Err(BinanceError::RateLimited { attempts: attempt });
                    }
                    let wait = match secs {
                        Some(s) => s.saturating_mul(1000) + self.jitter(),
                        None => self.backoff_ms(attempt),
                    };
                    if self.past_deadline_after(wait) {
                        return Err(BinanceError::RateLimited { attempts: attempt });
                    }
                    (self.notify)(&format!(
                        "Binance answered 429 (too many requests): waiting {:.1} s as asked",
                        wait as f64 / 1000.0
                    ));
                    wait
                }
                Attempt::Transient(t) => {
                    if attempt >= max {
                        return Err(self.give_up(url, t, attempt));
                    }
                    let wait = self.backoff_ms(attempt);
                    if self.past_deadline_after(wait) {
                        (self.notify)(&format!(
                            "{}; not retrying: the run's time limit comes first",
                            describe(&t)
                        ));
                        return Err(self.give_up(url, t, attempt));
                    }
                    (self.notify)(&format!(
                        "{}; retrying in {:.1} s (attempt {} of {max})",
                        describe(&t),
                        wait as f64 / 1000.0,
                        attempt + 1
                    ));
                    wait
                }
            };
            (self.sleep)(Duration::from_millis(wait_ms));
        }
    }

    fn attempt<T>(
        &mut self,
        url: &str,
        parse: &impl Fn(&str) -> Result<T, WireError>,
    ) -> Attempt<T> {
        let request = match self.time_left() {
            // The request's own timeout never reaches past the deadline.
            Some(left) => self
                .agent
                .get(url)
                .config()
                .timeout_global(Some(left.max(Duration::from_millis(1))))
                .build(),
            None => self.agent.get(url),
        };
        let mut response = match request.call() {
            Ok(r) => r,
            Err(e) => return classify(e, url, &self.endpoint.host),
        };
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_string())
        };
        let retry_after = header("retry-after").and_then(|v| v.parse::<u64>().ok());
        let weight = header("x-mbx-used-weight-1m").and_then(|v| v.parse::<u32>().ok());
        let body = response
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .read_to_string();
        if let Some(w) = weight {
            self.used_weight = Some(w);
            self.throttle(w);
        }
        match status {
            418 => {
                return Attempt::Fatal(BinanceError::Banned {
                    retry_after_secs: retry_after.unwrap_or(DEFAULT_BAN_SECS),
                })
            }
            429 => return Attempt::RetryAfter(retry_after),
            _ => {}
        }
        let body = match body {
            Ok(b) => b,
            Err(e) => return classify(e, url, &self.endpoint.host),
        };
        if status >= 500 {
            return Attempt::Transient(Transient::Server(status));
        }
        if status >= 400 {
            return match wire::parse_error_body(&body) {
                // Binance's own "try again" codes.
                Some((-1001 | -1007 | -1008, msg)) => {
                    Attempt::Transient(Transient::Body(format!("HTTP {status}: {msg}")))
                }
                Some((code, msg)) => Attempt::Fatal(BinanceError::Api { status, code, msg }),
                None => Attempt::Fatal(BinanceError::Http {
                    status,
                    body: body.chars().take(200).collect(),
                }),
            };
        }
        match parse(&body) {
            Ok(value) => Attempt::Done(value),
            Err(e) => Attempt::Transient(Transient::Body(e.to_string())),
        }
    }

    /// Pauses until the next minute (when Binance's weight window restarts) once the used
    /// weight passes [`WEIGHT_SLOW_DOWN`].
    fn throttle(&mut self, used: u32) {
        if used <= WEIGHT_SLOW_DOWN {
            return;
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut pause = 60_000 - now_ms % 60_000 + 1_000;
        if let Some(left) = self.time_left() {
            pause = pause.min(left.as_millis() as u64);
        }
        (self.notify)(&format!(
            "request weight {used} of {WEIGHT_LIMIT_1M} used this minute: pausing {:.1} s",
            pause as f64 / 1000.0
        ));
        (self.sleep)(Duration::from_millis(pause));
    }

    /// True when waiting `wait_ms` from now would pass the deadline.
    fn past_deadline_after(&self, wait_ms: u64) -> bool {
        self.time_left()
            .is_some_and(|left| Duration::from_millis(wait_ms) >= left)
    }

    /// Capped exponential backoff with "equal jitter": half fixed, half random.
    fn backoff_ms(&mut self, attempt: u32) -> u64 {
        let exp = self
            .policy
            .base_ms
            .saturating_mul(1u64 << attempt.saturating_sub(1).min(30));
        let capped = exp.min(self.policy.cap_ms).max(1);
        let half = capped / 2;
        half + (self.rng.next_f64() * (capped - half) as f64) as u64
    }

    fn jitter(&mut self) -> u64 {
        (self.rng.next_f64() * self.policy.jitter_ms as f64) as u64
    }

    fn give_up(&self, url: String, t: Transient, attempts: u32) -> BinanceError {
        match t {
            Transient::Server(status) => BinanceError::Server {
                url,
                status,
                attempts,
            },
            Transient::Network(detail) => BinanceError::Network {
                url,
                detail,
                attempts,
            },
            Transient::Tls(detail) => BinanceError::Tls {
                url,
                detail,
                local_time: local_time(),
                attempts,
            },
            Transient::Body(detail) => BinanceError::BadResponse {
                url,
                detail,
                attempts,
            },
        }
    }
}

fn describe(t: &Transient) -> String {
    match t {
        Transient::Server(status) => format!("server error HTTP {status}"),
        Transient::Network(d) => format!("network error ({d})"),
        Transient::Tls(d) => format!(
            "TLS error ({d}); this machine's clock says {} UTC: check it if this persists",
            local_time()
        ),
        Transient::Body(d) => format!("bad response ({d})"),
    }
}

fn local_time() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    crate::time::format_ms(ms)
}

/// Sorts a ureq error into retryable kinds (the request is a GET, so nearly all are); an
/// untrusted certificate is fatal at once (see [`tls::is_untrusted_certificate`]).
fn classify<T>(err: ureq::Error, url: &str, host: &str) -> Attempt<T> {
    let detail = err.to_string();
    let rustls_error = match &err {
        ureq::Error::Rustls(e) => Some(e),
        ureq::Error::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        _ => None,
    };
    if let Some(e) = rustls_error {
        if tls::is_untrusted_certificate(e) {
            return Attempt::Fatal(BinanceError::Untrusted {
                url: url.to_string(),
                host: host.to_string(),
                detail: e.to_string(),
            });
        }
        return Attempt::Transient(Transient::Tls(detail));
    }
    let t = match err {
        ureq::Error::Tls(_) | ureq::Error::TlsRequired => Transient::Tls(detail),
        ureq::Error::BadUri(_) => {
            return Attempt::Fatal(BinanceError::BadUrl {
                url: String::new(),
                reason: detail,
            })
        }
        ureq::Error::Protocol(_) | ureq::Error::BodyExceedsLimit(_) => Transient::Body(detail),
        _ => Transient::Network(detail),
    };
    Attempt::Transient(t)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    /// One canned answer of the scripted server.
    #[derive(Debug, Clone, Default)]
    pub(crate) struct Reply {
        pub status: u16,
        pub headers: Vec<(String, String)>,
        pub body: String,
        /// Wait this long before answering (trips read timeouts).
        pub(crate) delay_ms: u64,
        /// Send only the first half of the body (Content-Length announces all of it).
        pub torn: bool,
    }

    impl Reply {
        pub fn ok(body: &str) -> Reply {
            Reply::status(200, body)
        }
        pub fn status(status: u16, body: &str) -> Reply {
            Reply {
                status,
                body: body.to_string(),
                ..Reply::default()
            }
        }
        pub fn header(mut self, name: &str, value: &str) -> Reply {
            self.headers.push((name.to_string(), value.to_string()));
            self
        }
    }

    type Handler = Box<dyn FnMut(&str) -> Reply + Send>;

    /// A tiny HTTP/1.1 server on 127.0.0.1: each request's path and query go to `handler`,
    /// one request per connection.
    pub(crate) struct Scripted {
        pub url: String,
        pub requests: Arc<Mutex<Vec<String>>>,
        stop: Arc<AtomicBool>,
        addr: std::net::SocketAddr,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Scripted {
        pub fn start(mut handler: Handler) -> Scripted {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
            let addr = listener.local_addr().expect("local addr");
            let stop = Arc::new(AtomicBool::new(false));
            let requests = Arc::new(Mutex::new(Vec::new()));
            let (stop2, requests2) = (stop.clone(), requests.clone());
            let thread = std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop2.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(mut conn) = conn else { continue };
                    let Some(target) = read_request(&mut conn) else {
                        continue;
                    };
                    requests2.lock().expect("lock").push(target.clone());
                    let reply = handler(&target);
                    // Answer on another thread so that a slow reply does not hold up the next.
                    std::thread::spawn(move || write_reply(&mut conn, &reply));
                }
            });
            Scripted {
                url: format!("http://{addr}"),
                requests,
                stop,
                addr,
                thread: Some(thread),
            }
        }

        /// Serves `replies` in order, then 500s.
        pub(crate) fn queue(replies: Vec<Reply>) -> Scripted {
            let mut it = replies.into_iter();
            Scripted::start(Box::new(move |_| {
                it.next()
                    .unwrap_or_else(|| Reply::status(500, "script exhausted"))
            }))
        }

        pub(crate) fn request_log(&self) -> Vec<String> {
            self.requests.lock().expect("lock").clone()
        }
    }

    impl Drop for Scripted {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect(self.addr);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    fn read_request(conn: &mut TcpStream) -> Option<String> {
        conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut buf = Vec::new();
        let mut byte = [0u8; 1024];
        let mut first = [0u8; 1];
        // A TLS ClientHello (record type 0x16) to this plain server.
        if conn.peek(&mut first).ok()? == 1 && first[0] == 0x16 {
            return Some("TLS".to_string());
        }
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut byte).ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&byte[..n]);
        }
        let text = String::from_utf8_lossy(&buf);
        let line = text.lines().next()?;
        Some(line.split(' ').nth(1)?.to_string())
    }

    fn write_reply(conn: &mut TcpStream, reply: &Reply) {
        if reply.delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(reply.delay_ms));
        }
        let mut head = format!(
            "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            reply.status,
            reply.body.len()
        );
        for (k, v) in &reply.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let body = if reply.torn {
            &reply.body[..reply.body.len() / 2]
        } else {
            &reply.body[..]
        };
        let _ = conn.write_all(head.as_bytes());
        let _ = conn.write_all(body.as_bytes());
        let _ = conn.flush();
    }

    pub(crate) fn fast_policy() -> RetryPolicy {
        RetryPolicy {
            base_ms: 100,
            cap_ms: 400,
            max_attempts: 4,
            jitter_ms: 50,
            seed: 7,
        }
    }

    /// Generous limits: an answer on loopback never gets near them, even under qemu or a loaded
    /// machine, so no test here retries by accident (the retry counts they assert stay exact).
    /// Only `slow_answer_trips_the_read_timeout_and_is_retried` trips a read timeout, with its
    /// own short read limit and a reply held back far longer than it.
    pub(crate) fn test_timeouts() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(20),
            read: Duration::from_secs(20),
            global: Duration::from_secs(60),
        }
    }

    pub(crate) type Log<T> = Arc<Mutex<Vec<T>>>;

    /// A client whose sleeps are recorded (in ms) instead of slept, and whose notices are kept.
    pub(crate) fn client(url: &str) -> (RestClient, Log<u64>, Log<String>) {
        client_with(url, test_timeouts())
    }

    /// [`client`] with other timeouts.
    pub(crate) fn client_with(
        url: &str,
        timeouts: Timeouts,
    ) -> (RestClient, Log<u64>, Log<String>) {
        let sleeps = Arc::new(Mutex::new(Vec::new()));
        let notices = Arc::new(Mutex::new(Vec::new()));
        let (s2, n2) = (sleeps.clone(), notices.clone());
        let c = RestClient::with_options(url, timeouts, fast_policy())
            .expect("loopback url")
            .with_sleeper(move |d| s2.lock().expect("lock").push(d.as_millis() as u64))
            .with_notifier(move |m| n2.lock().expect("lock").push(m.to_string()));
        (c, sleeps, notices)
    }

    const PAGE: &str = r#"[[1698796800000,"34639.77000000","34665.31000000","34616.60000000","34646.09000000","55.61233000",1698796859999,"1926598.86386280",1871,"33.51522000","1160978.25587870","0"]]"#;

    fn symbol() -> Symbol {
        Symbol::parse("BTCUSDT").expect("valid")
    }

    #[test]
    fn klines_request_and_weight_header() {
        let server = Scripted::queue(vec![
            Reply::ok(PAGE).header("X-MBX-USED-WEIGHT-1M", "12"),
            Reply::ok(r#"{"serverTime": 1698796900000}"#),
            Reply::ok("{}"),
        ]);
        let (mut c, sleeps, _) = client(&server.url);
        let k = c
            .klines(
                &symbol(),
                Interval::ONE_MINUTE,
                1698796800000,
                Some(1698796900000),
                1000,
            )
            .expect("page");
        assert_eq!(k.len(), 1);
        assert_eq!(k[0].close, "34646.09000000");
        assert_eq!(c.used_weight(), Some(12));
        assert_eq!(c.server_time().expect("time"), 1698796900000);
        c.ping().expect("ping");
        assert_eq!(
            server.request_log(),
            vec![
                "/api/v3/klines?symbol=BTCUSDT&interval=1m&startTime=1698796800000&limit=1000&endTime=1698796900000",
                "/api/v3/time",
                "/api/v3/ping"
            ]
        );
        assert!(sleeps.lock().expect("lock").is_empty());
    }

    #[test]
    fn heavy_weight_pauses_until_the_next_minute() {
        let server = Scripted::queue(vec![Reply::ok("{}").header("X-MBX-USED-WEIGHT-1M", "4900")]);
        let (mut c, sleeps, notices) = client(&server.url);
        c.ping().expect("ping");
        let sleeps = sleeps.lock().expect("lock").clone();
        assert_eq!(sleeps.len(), 1);
        assert!((1_000..=61_000).contains(&sleeps[0]), "{sleeps:?}");
        assert!(notices.lock().expect("lock")[0].contains("4900 of 6000"));
    }

    #[test]
    fn retries_429_after_retry_after_then_succeeds() {
        let server = Scripted::queue(vec![
            Reply::status(
                429,
                r#"{"code":-1003,"msg":"Too much request weight used"}"#,
            )
            .header("Retry-After", "3"),
            Reply::ok(PAGE),
        ]);
        let (mut c, sleeps, notices) = client(&server.url);
        let k = c
            .klines(&symbol(), Interval::ONE_MINUTE, 0, None, 10)
            .expect("second attempt succeeds");
        assert_eq!(k.len(), 1);
        let sleeps = sleeps.lock().expect("lock").clone();
        assert_eq!(sleeps.len(), 1);
        assert!((3_000..3_050).contains(&sleeps[0]), "{sleeps:?}");
        assert!(notices.lock().expect("lock")[0].contains("429"));
        assert_eq!(server.request_log().len(), 2);
    }

    #[test]
    fn endless_429_gives_up() {
        let replies = (0..4)
            .map(|_| Reply::status(429, "{}").header("Retry-After", "1"))
            .collect();
        let server = Scripted::queue(replies);
        let (mut c, sleeps, _) = client(&server.url);
        let err = c.ping().expect_err("gives up");
        assert!(
            matches!(err, BinanceError::RateLimited { attempts: 4 }),
            "{err:?}"
        );
        assert_eq!(sleeps.lock().expect("lock").len(), 3);
    }

    #[test]
    fn ban_418_stops_at_once() {
        let server = Scripted::queue(vec![Reply::status(
            418,
            r#"{"code":-1003,"msg":"Way too much request weight used; IP banned until 1698797000000."}"#,
        )
        .header("Retry-After", "120")]);
        let (mut c, sleeps, _) = client(&server.url);
        let err = c.server_time().expect_err("banned");
        assert!(
            matches!(
                err,
                BinanceError::Banned {
                    retry_after_secs: 120
                }
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("banned for 120 s"), "{text}");
        assert!(text.contains("do not run"), "{text}");
        assert!(sleeps.lock().expect("lock").is_empty());
        assert_eq!(server.request_log().len(), 1);
    }

    #[test]
    fn server_errors_and_torn_bodies_are_retried_with_backoff() {
        let server = Scripted::queue(vec![
            Reply::status(500, "oops"),
            Reply::status(503, "<html>busy</html>"),
            Reply {
                torn: true,
                ..Reply::ok(PAGE)
            },
            Reply::ok(PAGE),
        ]);
        let (mut c, sleeps, notices) = client(&server.url);
        let k = c
            .klines(&symbol(), Interval::ONE_MINUTE, 0, None, 10)
            .expect("fourth attempt succeeds");
        assert_eq!(k.len(), 1);
        let sleeps = sleeps.lock().expect("lock").clone();
        // base 100 ms doubling, capped at 400 ms, half fixed and half jitter.
        assert_eq!(sleeps.len(), 3);
        assert!((50..=100).contains(&sleeps[0]), "{sleeps:?}");
        assert!((100..=200).contains(&sleeps[1]), "{sleeps:?}");
        assert!((200..=400).contains(&sleeps[2]), "{sleeps:?}");
        let notices = notices.lock().expect("lock").clone();
        assert!(notices[0].contains("HTTP 500"), "{notices:?}");
        assert!(notices[2].contains("attempt 4 of 4"), "{notices:?}");
    }

    #[test]
    fn persistent_500_gives_a_clear_error() {
        let server = Scripted::queue(vec![]);
        let (mut c, _, _) = client(&server.url);
        let err = c.ping().expect_err("always 500");
        assert!(
            matches!(
                err,
                BinanceError::Server {
                    status: 500,
                    attempts: 4,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("try again later"), "{err}");
    }

    #[test]
    fn slow_answer_trips_the_read_timeout_and_is_retried() {
        // The first answer is held back 10 min (its thread is simply abandoned), so it can only
        // end by the 1 s read timeout; the second one comes at once, and 1 s is plenty for it.
        let server = Scripted::queue(vec![
            Reply {
                delay_ms: 600_000,
                ..Reply::ok("{}")
            },
            Reply::ok(r#"{"serverTime": 5}"#),
        ]);
        let timeouts = Timeouts {
            read: Duration::from_secs(1),
            ..test_timeouts()
        };
        let (mut c, sleeps, notices) = client_with(&server.url, timeouts);
        assert_eq!(c.server_time().expect("retried"), 5);
        assert_eq!(sleeps.lock().expect("lock").len(), 1);
        let notices = notices.lock().expect("lock").clone();
        assert!(notices[0].contains("network error"), "{notices:?}");
    }

    #[test]
    fn api_errors_are_shown_with_a_hint() {
        let server = Scripted::queue(vec![
            Reply::status(400, r#"{"code":-1121,"msg":"Invalid symbol."}"#),
            Reply::status(403, "<html>forbidden</html>"),
            Reply::status(
                400,
                r#"{"code":-1007,"msg":"Timeout waiting for response"}"#,
            ),
            Reply::ok("{}"),
        ]);
        let (mut c, _, _) = client(&server.url);
        let err = c
            .klines(&symbol(), Interval::ONE_MINUTE, 0, None, 10)
            .expect_err("invalid symbol");
        assert!(
            matches!(&err, BinanceError::Api { status: 400, code: -1121, msg } if msg == "Invalid symbol."),
            "{err:?}"
        );
        assert!(err.to_string().contains("check --symbol"), "{err}");
        let err = c.ping().expect_err("waf");
        assert!(
            matches!(err, BinanceError::Http { status: 403, .. }),
            "{err:?}"
        );
        // -1007 is Binance's "try again": retried, then fine.
        c.ping().expect("retried after -1007");
    }

    #[test]
    fn refused_connection_is_a_network_error() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let (mut c, sleeps, _) = client(&format!("http://127.0.0.1:{port}"));
        let err = c.ping().expect_err("nothing listens");
        assert!(
            matches!(err, BinanceError::Network { attempts: 4, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("check the network"), "{err}");
        assert_eq!(sleeps.lock().expect("lock").len(), 3);
    }

    #[test]
    fn tls_failure_mentions_the_clock() {
        // A plain-text server behind an https URL: the handshake fails. Only the URL check
        // allows https to loopback, so this exercises the real rustls path offline.
        let server = Scripted::queue(vec![]);
        let url = server.url.replace("http://", "https://");
        let (mut c, _, notices) = client(&url);
        let err = c.ping().expect_err("no TLS there");
        let text = err.to_string();
        assert!(
            matches!(err, BinanceError::Tls { attempts: 4, .. }),
            "{err:?}"
        );
        assert!(text.contains("clock"), "{text}");
        assert!(text.contains("NTP"), "{text}");
        assert!(notices.lock().expect("lock")[0].contains("TLS error"));
    }
}
