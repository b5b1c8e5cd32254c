//! Binance I/O: the REST client, the WebSocket client, TLS set-up, and the pure JSON wire
//! parsers they share. No maths here.

use std::fmt;

pub mod rest;
pub mod shards;
pub mod tls;
pub mod wire;
pub mod ws;

/// Errors talking to Binance (or the replay server). Retryable trouble (5xx, timeouts, resets,
/// TLS, torn bodies, 429) only surfaces here once the retries are used up.
#[derive(Debug)]
pub enum BinanceError {
    /// A base URL that is malformed or not allowed (plain http/ws to a non-loopback host).
    BadUrl { url: String, reason: String },
    /// HTTP 418: this IP is banned by Binance for `retry_after_secs` seconds.
    Banned { retry_after_secs: u64 },
    /// HTTP 429 kept coming back after waiting the `Retry-After` each time.
    RateLimited { attempts: u32 },
    /// A 4xx answer with a Binance `{"code","msg"}` body.
    Api { status: u16, code: i32, msg: String },
    /// A 4xx answer without a Binance error body (e.g. 403 from the firewall, 404).
    Http { status: u16, body: String },
    /// 5xx answers on every attempt.
    Server {
        url: String,
        status: u16,
        attempts: u32,
    },
    /// Connection, DNS or timeout failures on every attempt.
    Network {
        url: String,
        detail: String,
        attempts: u32,
    },
    /// TLS handshake failures on every attempt; `local_time` is this machine's clock.
    Tls {
        url: String,
        detail: String,
        local_time: String,
        attempts: u32,
    },
    /// The server's certificate is not trusted (see [`tls::is_untrusted_certificate`]): fatal
    /// at once, since retrying cannot change the answer.
    Untrusted {
        url: String,
        host: String,
        detail: String,
    },
    /// Bodies that were cut off or not the expected JSON on every attempt.
    BadResponse {
        url: String,
        detail: String,
        attempts: u32,
    },
}

impl BinanceError {
    /// A hint for well-known Binance error codes.
    fn api_hint(code: i32) -> &'static str {
        match code {
            -1121 => "; the symbol does not exist on this exchange: check --symbol (e.g. BTCUSDT)",
            -1120 => "; the interval is not supported: check --interval",
            -1100 | -1101 | -1102 | -1103 | -1104 | -1105 | -1128 | -1130 => {
                "; this is a bug in klinecast's request, please report it"
            }
            -1003 => "; too much request weight: wait a few minutes before trying again",
            _ => "",
        }
    }
}

impl fmt::Display for BinanceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BinanceError::BadUrl { url, reason } => write!(f, "invalid base URL {url:?}: {reason}"),
            BinanceError::Banned { retry_after_secs } => write!(
                f,
                "Binance answered 418: this IP address is banned for {retry_after_secs} s \
                 (about {} min) for sending too many requests; do not run klinecast against \
                 Binance again before then, or the ban gets longer",
                retry_after_secs.div_ceil(60)
            ),
            BinanceError::RateLimited { attempts } => write!(
                f,
                "Binance kept answering 429 (too many requests) after {attempts} attempts; \
                 another program on this IP may be using the request weight: wait a few \
                 minutes before trying again"
            ),
            BinanceError::Api { status, code, msg } => write!(
                f,
                "Binance refused the request (HTTP {status}, code {code}): {msg}{}",
                Self::api_hint(*code)
            ),
            BinanceError::Http { status, body } => {
                let hint = if *status == 403 {
                    "; 403 means a firewall rule blocked the request: Binance may not serve \
                     your region, or the request rate was too high"
                } else {
                    "; check the base URL (--rest-url or KLINECAST_REST_URL)"
                };
                write!(f, "HTTP {status} from the server: {body:?}{hint}")
            }
            BinanceError::Server {
                url,
                status,
                attempts,
            } => write!(
                f,
                "{url}: the server answered HTTP {status} on all {attempts} attempts; \
                 Binance may be under maintenance: try again later"
            ),
            BinanceError::Network {
                url,
                detail,
                attempts,
            } => write!(
                f,
                "{url}: cannot reach the server after {attempts} attempts ({detail}); \
                 check the network connection and the base URL"
            ),
            BinanceError::Tls {
                url,
                detail,
                local_time,
                attempts,
            } => write!(
                f,
                "{url}: TLS handshake failed after {attempts} attempts ({detail}); this \
                 machine's clock says {local_time} UTC: if that is wrong (a Raspberry Pi \
                 without a real-time clock can boot with an old date, and certificates then \
                 look \"not yet valid\" or expired), fix the clock or enable NTP \
                 (`timedatectl set-ntp true`) and try again"
            ),
            BinanceError::Untrusted { url, host, detail } => {
                write!(f, "{url}: {}", tls::untrusted_message(host, detail))
            }
            BinanceError::BadResponse {
                url,
                detail,
                attempts,
            } => write!(
                f,
                "{url}: unusable response on all {attempts} attempts ({detail}); \
                 check that the base URL points at Binance's REST API"
            ),
        }
    }
}

impl std::error::Error for BinanceError {}
