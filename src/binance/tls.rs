//! TLS and base URLs: the one rustls client configuration (ring provider, bundled webpki
//! roots, verification always on) shared by the REST and WebSocket clients, the base-URL check
//! (secure schemes anywhere, plain http/ws only to loopback hosts), and the ureq agent with
//! explicit timeouts. There is deliberately no way to turn certificate verification off.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore};
use ureq::tls::{RootCerts, TlsConfig, TlsProvider};

use super::BinanceError;

/// The ring crypto provider, created once.
pub(crate) fn crypto_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The shared rustls client configuration: ring, safe default protocol versions, the
/// webpki-roots trust anchors bundled in the binary. Built once; the WebSocket client passes it
/// to tungstenite (`Connector::Rustls(client_config())`).
pub fn client_config() -> Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let config = ClientConfig::builder_with_provider(crypto_provider())
                .with_safe_default_protocol_versions()
                .expect("the ring provider supports the default TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

/// True when a TLS error says the server's certificate is not trusted: no bundled root vouches
/// for it, its signature is bad, it names another host, and the like. Such a failure repeats
/// identically on every attempt, so callers give up at once instead of retrying. Expired and
/// not-yet-valid certificates are left out on purpose: a wrong local clock (a Raspberry Pi
/// without a real-time clock before NTP syncs) causes those, and a retry after the clock is
/// fixed succeeds.
pub(crate) fn is_untrusted_certificate(err: &rustls::Error) -> bool {
    use rustls::CertificateError as C;
    match err {
        rustls::Error::InvalidCertificate(cert) => !matches!(
            cert,
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. }
        ),
        _ => false,
    }
}

/// The explanation shared by the REST and WebSocket errors for an untrusted certificate.
pub(crate) fn untrusted_message(host: &str, detail: &str) -> String {
    format!(
        "the TLS certificate of {host} is not trusted ({detail}); klinecast verifies every \
         https:// and wss:// server against the root certificates built into it, and no flag, \
         environment variable or system CA file turns that check off: check that the URL \
         points at Binance (plain http:// and ws:// are allowed for a test server on \
         127.0.0.1)"
    )
}

/// A checked base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The base URL without a trailing slash, e.g. `https://api.binance.com`.
    pub base: String,
    /// TLS (`https`/`wss`) or plain (`http`/`ws`, loopback only).
    pub secure: bool,
    /// Host name or address as written (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// True for 127.0.0.0/8, `localhost` and `::1`.
    pub loopback: bool,
}

impl Endpoint {
    /// `base` + `path` (path starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Checks a base URL: `<secure>://` is accepted for any host, `<plain>://` only for loopback
/// hosts (127.0.0.0/8, `localhost`, `[::1]`); no credentials, query or fragment.
/// Use `("https", "http")` for REST and `("wss", "ws")` for WebSocket.
pub fn check_base_url(url: &str, secure: &str, plain: &str) -> Result<Endpoint, BinanceError> {
    let bad = |reason: String| BinanceError::BadUrl {
        url: url.to_string(),
        reason,
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad(format!("expected {secure}://host[:port]")))?;
    let scheme = scheme.to_ascii_lowercase();
    let is_secure = if scheme == secure {
        true
    } else if scheme == plain {
        false
    } else {
        return Err(bad(format!(
            "the scheme must be {secure}:// (or {plain}:// for a local test server)"
        )));
    };
    if rest.contains(['?', '#', '@', ' ', '\\']) {
        return Err(bad(
            "credentials, spaces, queries and fragments are not allowed in a base URL".to_string(),
        ));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let (host, port_text) = if let Some(inner) = authority.strip_prefix('[') {
        let (h, after) = inner
            .split_once(']')
            .ok_or_else(|| bad("unclosed [ in the host".to_string()))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| bad("unexpected text after ]".to_string()))?,
            ),
        };
        if h.parse::<Ipv6Addr>().is_err() {
            return Err(bad(format!("{h:?} is not an IPv6 address")));
        }
        (h, port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b));
    if !host_ok {
        return Err(bad(
            "the host is missing or has invalid characters".to_string()
        ));
    }
    let port = match port_text {
        None => {
            if is_secure {
                443
            } else {
                80
            }
        }
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(bad(format!("invalid port {p:?}"))),
        },
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<Ipv4Addr>().is_ok_and(|a| a.is_loopback())
        || host.parse::<Ipv6Addr>().is_ok_and(|a| a.is_loopback());
    if !is_secure && !loopback {
        return Err(bad(format!(
            "plain {plain}:// is only allowed to this machine (127.0.0.1, localhost, [::1]); \
             use {secure}://"
        )));
    }
    let shown_host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_ascii_lowercase()
    };
    Ok(Endpoint {
        base: format!("{scheme}://{shown_host}:{port}{path}"),
        secure: is_secure,
        host: host.to_string(),
        port,
        loopback,
    })
}

/// Timeouts for one HTTP client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// Longest wait for any single read (headers or body).
    pub read: Duration,
    /// Longest a whole request may take, body included.
    pub global: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(10),
            read: Duration::from_secs(20),
            global: Duration::from_secs(60),
        }
    }
}

/// A ureq agent for `endpoint`: rustls on the shared ring provider with the bundled webpki
/// roots, non-2xx statuses returned as responses (so 429/418 headers and `{code,msg}` bodies
/// stay readable), explicit timeouts, no redirects, no proxy for loopback hosts.
pub fn agent(endpoint: &Endpoint, timeouts: Timeouts) -> ureq::Agent {
    let tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(RootCerts::WebPki)
        .unversioned_rustls_crypto_provider(crypto_provider())
        .build();
    let mut config = ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_connect(Some(timeouts.connect))
        .timeout_per_read(Some(timeouts.read))
        .timeout_global(Some(timeouts.global))
        .user_agent(concat!("klinecast/", env!("CARGO_PKG_VERSION")));
    if endpoint.loopback {
        config = config.proxy(None);
    }
    config.build().new_agent()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rest(url: &str) -> Result<Endpoint, BinanceError> {
        check_base_url(url, "https", "http")
    }

    #[test]
    fn secure_urls_anywhere_plain_only_on_loopback() {
        let e = rest("https://api.binance.com").expect("https ok");
        assert_eq!(e.base, "https://api.binance.com:443");
        assert!(e.secure && !e.loopback);
        assert_eq!(
            e.url("/api/v3/time"),
            "https://api.binance.com:443/api/v3/time"
        );
        let e = rest("http://127.0.0.1:8080/").expect("loopback http ok");
        assert_eq!((e.base.as_str(), e.port), ("http://127.0.0.1:8080", 8080));
        assert!(rest("http://127.5.6.7:1").is_ok());
        assert!(rest("http://localhost:9000").is_ok());
        assert_eq!(
            rest("http://[::1]:9000").expect("ipv6 loopback").base,
            "http://[::1]:9000"
        );
        let ws = check_base_url("wss://stream.binance.com:9443", "wss", "ws").expect("wss");
        assert_eq!(ws.port, 9443);
        assert!(check_base_url("ws://127.0.0.1:1", "wss", "ws").is_ok());
        for bad in [
            "http://api.binance.com",
            "http://10.0.0.1",
            "http://128.0.0.1",
            "http://[::2]:1",
            "http://localhost.evil.com",
            "ftp://127.0.0.1",
            "wss://stream.binance.com",
            "api.binance.com",
            "https://",
            "https://user@api.binance.com",
            "https://api.binance.com?x=1",
            "https://api.binance.com:0",
            "https://api.binance.com:99999",
            "https://[::1",
        ] {
            let err = rest(bad).expect_err(bad);
            assert!(err.to_string().contains("invalid base URL"), "{bad}: {err}");
        }
        let err = rest("http://api.binance.com").expect_err("plain remote");
        assert!(err.to_string().contains("use https://"), "{err}");
    }

    /// Backs the README's "Remote hosts are always TLS-verified" together with tests/tls.rs:
    /// which certificate failures are final (refused at once) and which are left to retries
    /// because a wrong local clock causes them.
    #[test]
    fn untrusted_certificates_are_final_clock_problems_are_not() {
        use rustls::CertificateError as C;
        for final_error in [
            C::UnknownIssuer,
            C::BadSignature,
            C::NotValidForName,
            C::BadEncoding,
        ] {
            let e = rustls::Error::InvalidCertificate(final_error.clone());
            assert!(is_untrusted_certificate(&e), "{final_error:?}");
        }
        for clock in [C::Expired, C::NotValidYet] {
            let e = rustls::Error::InvalidCertificate(clock.clone());
            assert!(!is_untrusted_certificate(&e), "{clock:?}");
        }
        assert!(!is_untrusted_certificate(
            &rustls::Error::HandshakeNotComplete
        ));
        let msg = untrusted_message("example.org", "invalid peer certificate: UnknownIssuer");
        assert!(msg.starts_with(
            "the TLS certificate of example.org is not trusted (invalid peer certificate: \
             UnknownIssuer); "
        ));
    }

    #[test]
    fn one_shared_client_config() {
        let a = client_config();
        let b = client_config();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(Arc::ptr_eq(&crypto_provider(), &crypto_provider()));
    }
}
