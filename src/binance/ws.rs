//! The kline WebSocket client on tungstenite over rustls: connects the TCP socket itself (with
//! a connect timeout), sets socket read/write timeouts so a blocking read can never hang, and
//! performs the TLS + WebSocket handshake with small message limits. [`KlineSocket::read`]
//! answers pings (tungstenite queues the pong; we flush it), and a watchdog turns silence longer
//! than the idle timeout into [`WsError::Idle`]. Transport only: it returns text frames and
//! never parses JSON, keeps no kline state, and never reconnects (the stream thread does that).

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use tungstenite::handshake::HandshakeError;
use tungstenite::http::Uri;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Connector, Message, WebSocket};

use crate::binance::tls;
use crate::kline::{Interval, Symbol};

/// Timeouts and limits of one connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct WsConfig {
    /// TCP connect, and then the whole TLS + WebSocket handshake, each within this.
    pub(crate) connect_timeout: Duration,
    /// Socket read timeout: how often a quiet [`KlineSocket::read`] returns [`WsRead::Quiet`].
    pub poll: Duration,
    /// Watchdog: no frame at all (data or ping) for this long means a dead connection.
    pub(crate) idle_timeout: Duration,
    /// Largest accepted message and frame (a kline event is about 400 bytes).
    pub(crate) max_message_bytes: usize,
    /// Most streams on one connection: 1 to [`MAX_STREAMS`] (lowered with
    /// [`MAX_STREAMS_ENV`]); more symbols are spread over more connections.
    pub(crate) max_streams: usize,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            connect_timeout: Duration::from_secs(10),
            poll: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(30),
            max_message_bytes: 64 * 1024,
            max_streams: MAX_STREAMS,
        }
    }
}

/// Why a connection could not be opened or was lost. Every variant is a reason to reconnect.
#[derive(Debug)]
pub(crate) enum WsError {
    /// The URL is malformed, or plain `ws://` to a host that is not loopback.
    Url(String),
    /// DNS or TCP connect failed.
    Connect { addr: String, source: io::Error },
    /// TLS failed (protocol, or a certificate that is expired or not yet valid: the local clock
    /// may be wrong). `detail` is rustls's message.
    Tls { detail: String },
    /// The server's certificate is not trusted (see [`tls::is_untrusted_certificate`]): it is
    /// refused on every attempt, whatever the environment says.
    Untrusted { host: String, detail: String },
    /// The WebSocket upgrade failed (HTTP status, timeout, bad response).
    Handshake(String),
    /// Nothing arrived for longer than the idle timeout.
    Idle { silent: Duration },
    /// The server closed the connection (with its reason, if any).
    Closed(String),
    /// Any other read or protocol error on an open connection.
    Transport(String),
}

impl WsError {
    /// True for TLS failures: the caller logs the local clock with them (a Pi without an RTC
    /// that booted with a wrong clock sees every certificate as not yet valid).
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, WsError::Tls { .. } | WsError::Untrusted { .. })
    }
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WsError::Url(msg) => write!(f, "invalid websocket url: {msg}"),
            WsError::Connect { addr, source } => {
                write!(f, "cannot connect to {addr}: {source}; check the network")
            }
            WsError::Tls { detail } => write!(
                f,
                "tls error: {detail}; check the system clock (certificates look invalid when it is wrong)"
            ),
            WsError::Untrusted { host, detail } => {
                f.write_str(&tls::untrusted_message(host, detail))
            }
            WsError::Handshake(msg) => write!(f, "websocket handshake failed: {msg}"),
            WsError::Idle { silent } => write!(
                f,
                "no data or ping for {} ms: connection presumed dead",
                silent.as_millis()
            ),
            WsError::Closed(why) => write!(f, "server closed the connection: {why}"),
            WsError::Transport(msg) => write!(f, "websocket error: {msg}"),
        }
    }
}

impl std::error::Error for WsError {}

/// What one [`KlineSocket::read`] produced.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WsRead {
    /// A text frame: one JSON message for the wire parser.
    Text(String),
    /// A binary frame (Binance sends none): its length, for the bad-frame count.
    Binary(usize),
    /// A ping or pong (the pong to a ping has been sent).
    Control,
    /// Nothing arrived within the poll interval, and the watchdog has not fired.
    Quiet,
}

/// Most streams Binance serves on one connection (protocol notes §3.6).
pub(crate) const MAX_STREAMS: usize = 1024;

/// The environment knob that lowers the streams per connection, for tests and operations: read
/// by `stream` (its connections) and `replay-server` (what it accepts), 1 to [`MAX_STREAMS`].
pub(crate) const MAX_STREAMS_ENV: &str = "KLINECAST_WS_MAX_STREAMS";

/// Reads [`MAX_STREAMS_ENV`]: unset is [`MAX_STREAMS`]; anything but a whole number from 1 to
/// [`MAX_STREAMS`] is refused with a message naming the variable.
pub(crate) fn max_streams_from(value: Option<&str>) -> Result<usize, String> {
    let Some(text) = value else {
        return Ok(MAX_STREAMS);
    };
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_STREAMS).contains(&n) => Ok(n),
        _ => Err(format!(
            "{MAX_STREAMS_ENV}={text:?} is invalid: expected a whole number of streams per \
             connection from 1 to {MAX_STREAMS} (Binance's limit)"
        )),
    }
}

/// The URL of one connection carrying the kline streams of `symbols` (at least one, at most
/// [`MAX_STREAMS`]): one symbol is the raw stream `<base>/ws/<symbol>@kline_<interval>` (no
/// envelope, no control messages); several are one combined stream,
/// `<base>/stream?streams=<a>@kline_<interval>/<b>@kline_<interval>/…`, whose events come
/// wrapped as `{"stream":…,"data":…}`. A base already ending in `/ws` or `/stream` is kept.
pub(crate) fn streams_url(base: &str, symbols: &[Symbol], interval: Interval) -> String {
    let base = base.trim_end_matches('/');
    let base = base
        .strip_suffix("/ws")
        .or_else(|| base.strip_suffix("/stream"))
        .unwrap_or(base);
    let stream = |s: &Symbol| format!("{}@kline_{}", s.lower(), interval.as_str());
    match symbols {
        [one] => format!("{base}/ws/{}", stream(one)),
        many => {
            let names: Vec<String> = many.iter().map(stream).collect();
            format!("{base}/stream?streams={}", names.join("/"))
        }
    }
}

/// True for hosts that never leave the machine.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// Checks a WebSocket URL: `wss://` anywhere, `ws://` only to a loopback host.
/// Returns (is_tls, host, port).
pub(crate) fn check_url(url: &str) -> Result<(bool, String, u16), WsError> {
    let uri: Uri = url
        .parse()
        .map_err(|e| WsError::Url(format!("{url:?}: {e}")))?;
    let tls = match uri.scheme_str() {
        Some("wss") => true,
        Some("ws") => false,
        _ => {
            return Err(WsError::Url(format!(
                "{url:?}: use a wss:// url (ws:// only for 127.0.0.1)"
            )))
        }
    };
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| WsError::Url(format!("{url:?} has no host")))?
        .to_string();
    if !tls && !is_loopback_host(&host) {
        return Err(WsError::Url(format!(
            "{url:?}: plain ws:// is only allowed to a loopback host; use wss://"
        )));
    }
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    Ok((tls, host, port))
}

/// One open kline stream connection.
#[derive(Debug)]
pub(crate) struct KlineSocket {
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    config: WsConfig,
    opened: Instant,
    last_frame: Instant,
}

impl KlineSocket {
    /// Connects to `url` (see [`stream_url`]) and completes the TLS + WebSocket handshakes.
    pub(crate) fn connect(url: &str, config: &WsConfig) -> Result<KlineSocket, WsError> {
        let (tls, host, port) = check_url(url)?;
        let addr_text = format!("{host}:{port}");
        let addrs: Vec<SocketAddr> = (host.trim_matches(|c| c == '[' || c == ']'), port)
            .to_socket_addrs()
            .map_err(|source| WsError::Connect {
                addr: addr_text.clone(),
                source,
            })?
            .collect();
        let mut last_err = io::Error::new(io::ErrorKind::NotFound, "the name resolved to nothing");
        let mut stream = None;
        for addr in &addrs {
            match TcpStream::connect_timeout(addr, config.connect_timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last_err = e,
            }
        }
        let stream = stream.ok_or(WsError::Connect {
            addr: addr_text,
            source: last_err,
        })?;
        let io_err = |source| WsError::Connect {
            addr: format!("{host}:{port}"),
            source,
        };
        stream.set_nodelay(true).map_err(io_err)?;
        stream
            .set_read_timeout(Some(config.connect_timeout))
            .map_err(io_err)?;
        stream
            .set_write_timeout(Some(config.connect_timeout))
            .map_err(io_err)?;
        let connector = if tls {
            Connector::Rustls(tls::client_config())
        } else {
            Connector::Plain
        };
        let limits = WebSocketConfig::default()
            .read_buffer_size(16 * 1024)
            .write_buffer_size(0)
            .max_message_size(Some(config.max_message_bytes))
            .max_frame_size(Some(config.max_message_bytes));
        let ws =
            match tungstenite::client_tls_with_config(url, stream, Some(limits), Some(connector)) {
                Ok((ws, _response)) => ws,
                Err(HandshakeError::Interrupted(_)) => {
                    return Err(WsError::Handshake(format!(
                        "no answer within {} ms",
                        config.connect_timeout.as_millis()
                    )))
                }
                Err(HandshakeError::Failure(e)) => return Err(classify(e, Some(&host))),
            };
        let tcp = match ws.get_ref() {
            MaybeTlsStream::Plain(s) => s,
            MaybeTlsStream::Rustls(s) => &s.sock,
            _ => return Err(WsError::Transport("unexpected stream type".to_string())),
        };
        tcp.set_read_timeout(Some(config.poll.max(Duration::from_millis(1))))
            .map_err(|e| WsError::Transport(e.to_string()))?;
        let now = Instant::now();
        Ok(KlineSocket {
            ws,
            config: *config,
            opened: now,
            last_frame: now,
        })
    }

    /// How long this connection has been open.
    pub(crate) fn age(&self) -> Duration {
        self.opened.elapsed()
    }

    /// Reads the next frame, waiting at most the poll interval.
    pub(crate) fn read(&mut self) -> Result<WsRead, WsError> {
        match self.ws.read() {
            Ok(Message::Text(text)) => {
                self.last_frame = Instant::now();
                Ok(WsRead::Text(text.as_str().to_string()))
            }
            Ok(Message::Binary(bytes)) => {
                self.last_frame = Instant::now();
                Ok(WsRead::Binary(bytes.len()))
            }
            Ok(Message::Ping(_)) | Ok(Message::Pong(_)) | Ok(Message::Frame(_)) => {
                self.last_frame = Instant::now();
                // The pong is queued by tungstenite; push it out now rather than on the next read.
                match self.ws.flush() {
                    Ok(()) => Ok(WsRead::Control),
                    Err(tungstenite::Error::Io(e)) if is_timeout(&e) => Ok(WsRead::Control),
                    Err(e) => Err(classify(e, None)),
                }
            }
            Ok(Message::Close(frame)) => Err(WsError::Closed(match frame {
                Some(f) => format!("code {} {}", u16::from(f.code), f.reason.as_str()),
                None => "no reason given".to_string(),
            })),
            Err(tungstenite::Error::Io(e)) if is_timeout(&e) => {
                let silent = self.last_frame.elapsed();
                if silent >= self.config.idle_timeout {
                    Err(WsError::Idle { silent })
                } else {
                    Ok(WsRead::Quiet)
                }
            }
            Err(e) => Err(classify(e, None)),
        }
    }

    /// Sends a close frame, best effort (used before a planned rotation or at shutdown).
    pub(crate) fn close(mut self) {
        let _ = self.ws.close(None);
        let _ = self.ws.flush();
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Maps a tungstenite error to a [`WsError`], finding rustls errors wrapped in I/O errors.
/// `handshake_host` is the host during the TLS + WebSocket handshake, `None` afterwards.
fn classify(e: tungstenite::Error, handshake_host: Option<&str>) -> WsError {
    let handshake = handshake_host.is_some();
    let rustls_error = match &e {
        tungstenite::Error::Tls(tungstenite::error::TlsError::Rustls(r)) => Some(&**r),
        tungstenite::Error::Io(io_err) => io_err
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        _ => None,
    };
    if let Some(r) = rustls_error {
        return match handshake_host {
            Some(host) if tls::is_untrusted_certificate(r) => WsError::Untrusted {
                host: host.to_string(),
                detail: r.to_string(),
            },
            _ => WsError::Tls {
                detail: r.to_string(),
            },
        };
    }
    match e {
        tungstenite::Error::Tls(t) => WsError::Tls {
            detail: t.to_string(),
        },
        tungstenite::Error::Io(io_err) if handshake && is_timeout(&io_err) => {
            WsError::Handshake("timed out".to_string())
        }
        tungstenite::Error::Io(io_err) if handshake => WsError::Handshake(io_err.to_string()),
        tungstenite::Error::Io(io_err) => WsError::Transport(io_err.to_string()),
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            WsError::Closed("connection closed".to_string())
        }
        tungstenite::Error::Http(response) => {
            WsError::Handshake(format!("http status {}", response.status()))
        }
        other if handshake => WsError::Handshake(other.to_string()),
        other => WsError::Transport(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::thread;

    #[test]
    fn max_streams_knob_is_1_to_1024() {
        assert_eq!(max_streams_from(None), Ok(1024));
        assert_eq!(max_streams_from(Some("2")), Ok(2));
        assert_eq!(max_streams_from(Some(" 1024 ")), Ok(1024));
        assert_eq!(max_streams_from(Some("1")), Ok(1));
        for bad in ["0", "1025", "-1", "", "two", "2.5"] {
            let e = max_streams_from(Some(bad)).expect_err(bad);
            assert!(e.starts_with("KLINECAST_WS_MAX_STREAMS="), "{e}");
            assert!(e.contains("from 1 to 1024"), "{e}");
        }
    }

    #[test]
    fn urls() {
        let s = Symbol::parse("BTCUSDT").expect("symbol");
        let m = Interval::ONE_MINUTE;
        assert_eq!(
            streams_url("wss://stream.binance.com:9443", std::slice::from_ref(&s), m),
            "wss://stream.binance.com:9443/ws/btcusdt@kline_1m"
        );
        assert_eq!(
            streams_url("ws://127.0.0.1:5000/ws/", std::slice::from_ref(&s), m),
            "ws://127.0.0.1:5000/ws/btcusdt@kline_1m"
        );
        let e = Symbol::parse("ETHUSDT").expect("symbol");
        assert_eq!(
            streams_url("wss://stream.binance.com:9443/stream", &[s.clone(), e], m),
            "wss://stream.binance.com:9443/stream?streams=btcusdt@kline_1m/ethusdt@kline_1m"
        );
        assert_eq!(
            check_url("wss://stream.binance.com:9443/ws/x").ok(),
            Some((true, "stream.binance.com".to_string(), 9443))
        );
        assert_eq!(
            check_url("ws://127.0.0.1:81/ws/x").ok(),
            Some((false, "127.0.0.1".to_string(), 81))
        );
        assert!(check_url("ws://localhost/ws/x").is_ok());
        assert!(check_url("ws://[::1]:9/ws/x").is_ok());
        for bad in [
            "ws://stream.binance.com/ws/x",
            "http://127.0.0.1/ws",
            "wss:///nohost",
            "not a url",
        ] {
            assert!(
                matches!(check_url(bad), Err(WsError::Url(_))),
                "{bad} accepted"
            );
        }
    }

    /// A one-connection server: sends a ping, then the given texts, then goes silent until
    /// told to stop; reports whether the pong came back.
    fn server(texts: Vec<&'static str>) -> (String, mpsc::Receiver<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let (tcp, _) = listener.accept().expect("accept");
            let mut ws = tungstenite::accept(tcp).expect("ws accept");
            ws.send(Message::Ping(b"hi".to_vec().into())).expect("ping");
            for t in texts {
                ws.send(Message::text(t)).expect("text");
            }
            ws.get_mut()
                .set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let mut pong = false;
            while let Ok(msg) = ws.read() {
                if let Message::Pong(p) = msg {
                    pong = p.as_ref() == b"hi";
                    break;
                }
            }
            let _ = tx.send(pong);
            // Stay silent (connection open) until the client gives up.
            let _ = ws.read();
        });
        (format!("ws://127.0.0.1:{port}/ws/btcusdt@kline_1m"), rx)
    }

    #[test]
    fn reads_text_answers_ping_and_watchdog_fires_on_silence() {
        let (url, pong_rx) = server(vec!["{\"a\":1}", "{\"b\":2}"]);
        let config = WsConfig {
            poll: Duration::from_millis(50),
            idle_timeout: Duration::from_millis(400),
            ..WsConfig::default()
        };
        let mut sock = KlineSocket::connect(&url, &config).expect("connect");
        let mut texts = Vec::new();
        let mut controls = 0;
        let err = loop {
            match sock.read() {
                Ok(WsRead::Text(t)) => texts.push(t),
                Ok(WsRead::Control) => controls += 1,
                Ok(WsRead::Quiet) | Ok(WsRead::Binary(_)) => {}
                Err(e) => break e,
            }
        };
        assert_eq!(texts, ["{\"a\":1}", "{\"b\":2}"]);
        assert_eq!(controls, 1);
        assert!(matches!(err, WsError::Idle { .. }), "{err}");
        assert_eq!(
            pong_rx.recv_timeout(Duration::from_secs(10)).ok(),
            Some(true)
        );
    }

    #[test]
    fn refused_connection_is_a_connect_error() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let err = KlineSocket::connect(
            &format!("ws://127.0.0.1:{port}/ws/x@kline_1m"),
            &WsConfig::default(),
        )
        .err();
        assert!(matches!(err, Some(WsError::Connect { .. })), "{err:?}");
    }

    #[test]
    fn http_server_that_is_not_websocket_fails_the_handshake() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut tcp, _) = listener.accept().expect("accept");
            let mut buf = [0u8; 1024];
            let _ = tcp.read(&mut buf);
            let _ = tcp.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
        });
        let err = KlineSocket::connect(
            &format!("ws://127.0.0.1:{port}/ws/x@kline_1m"),
            &WsConfig::default(),
        )
        .err();
        assert!(matches!(err, Some(WsError::Handshake(_))), "{err:?}");
    }
}
