//! The `stream.log` lines that other commands read back (`report` charts them, `status` counts
//! them): each one's wording is written and recognised here, and nowhere else. Every other
//! `stream.log` line is free text for people.
//!
//! One `stream.log` serves all the symbols of a run. A line about one symbol names it as
//! `<SYMBOL> <interval>: ` at its start, or, for an event, right after the event's words
//! (`gap fill: ETHUSDT 1m: 5 klines over rest, …`); [`symbol_of`] reads it back. Lines written
//! before several symbols (no name) still parse, as events of no particular symbol.

use std::fmt;

/// A `stream.log` event another command reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogEvent {
    /// A WebSocket connection opened; `connects` counts them since the start (1: the first,
    /// any later one is a reconnect).
    Connected { connects: u64 },
    /// Klines fetched over REST to fill a gap.
    GapFill,
    /// A WebSocket connect failed.
    ConnectFailed,
    /// A gap fill over REST failed.
    RestFailed,
    /// Binance sent an error message on the socket.
    ServerError,
}

impl LogEvent {
    /// The failures, as counted by `status` and charted by `report`.
    pub(crate) fn is_error(self) -> bool {
        matches!(
            self,
            LogEvent::ConnectFailed | LogEvent::RestFailed | LogEvent::ServerError
        )
    }

    /// Whether this is a connect after the first.
    pub(crate) fn is_reconnect(self) -> bool {
        matches!(self, LogEvent::Connected { connects } if connects > 1)
    }

    /// The line's opening words; the writer follows them with `: <detail>` (except for
    /// [`LogEvent::Connected`], whose line is its display alone).
    fn head(self) -> &'static str {
        match self {
            LogEvent::Connected { .. } => "connected",
            LogEvent::GapFill => "gap fill",
            LogEvent::ConnectFailed => "connect failed",
            LogEvent::RestFailed => "gap fill over rest failed",
            LogEvent::ServerError => "server error message",
        }
    }

    /// The line `detail` belongs to: `<head>: <detail>`.
    pub(crate) fn line(self, detail: &str) -> String {
        format!("{self}: {detail}")
    }

    /// Recognises the message of a `stream.log` line (after the time stamp).
    pub(crate) fn parse(msg: &str) -> Option<LogEvent> {
        if let Some(rest) = msg.strip_prefix("connected (") {
            let connects = rest.split(' ').next()?.parse().ok()?;
            return Some(LogEvent::Connected { connects });
        }
        [
            LogEvent::GapFill,
            LogEvent::ConnectFailed,
            LogEvent::RestFailed,
            LogEvent::ServerError,
        ]
        .into_iter()
        .find(|e| {
            msg.strip_prefix(e.head())
                .is_some_and(|rest| rest.starts_with(':'))
        })
    }
}

/// The symbol and interval a `stream.log` message (after the time stamp) is about, as
/// `("ETHUSDT", "1m")`: `<SYMBOL> <interval>: …` or `<event words>: <SYMBOL> <interval>: …`.
/// `None` for a line about the connection or the process, and for lines of older versions.
// Reason: for `status` and `report` per symbol (issue 22, their `--symbols` is another branch's).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn symbol_of(msg: &str) -> Option<(&str, &str)> {
    named(msg).or_else(|| {
        let event = LogEvent::parse(msg)?;
        named(msg.strip_prefix(event.head())?.strip_prefix(": ")?)
    })
}

/// `<SYMBOL> <interval>` at the start of `text`, followed by `: `.
fn named(text: &str) -> Option<(&str, &str)> {
    let (head, _) = text.split_once(": ")?;
    let (symbol, interval) = head.split_once(' ')?;
    let symbol_ok = crate::kline::Symbol::parse(symbol).is_ok_and(|s| s.as_str() == symbol);
    let interval_ok = crate::kline::Interval::parse(interval).is_ok();
    (symbol_ok && interval_ok).then_some((symbol, interval))
}

impl fmt::Display for LogEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogEvent::Connected { connects } => write!(f, "connected ({connects} connects so far)"),
            other => f.write_str(other.head()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event's line is recognised as that event, and free text is not an event.
    #[test]
    fn written_lines_parse_back() {
        let events = [
            LogEvent::Connected { connects: 1 },
            LogEvent::Connected { connects: 12 },
            LogEvent::GapFill,
            LogEvent::ConnectFailed,
            LogEvent::RestFailed,
            LogEvent::ServerError,
        ];
        for e in events {
            let line = match e {
                LogEvent::Connected { .. } => e.to_string(),
                _ => e.line("3 klines over rest: x failed: y"),
            };
            assert_eq!(LogEvent::parse(&line), Some(e), "{line}");
        }
        assert_eq!(
            LogEvent::GapFill.line("5 klines"),
            "gap fill: 5 klines".to_string()
        );
        // A line about one of several connections carries its tag last and still parses.
        assert_eq!(
            LogEvent::parse("connected (4 connects so far) [ws 1/2]"),
            Some(LogEvent::Connected { connects: 4 })
        );
        assert_eq!(
            LogEvent::parse("connect failed: cannot connect to x:1: refused [ws 2/3]"),
            Some(LogEvent::ConnectFailed)
        );
        assert!(LogEvent::Connected { connects: 2 }.is_reconnect());
        assert!(!LogEvent::Connected { connects: 1 }.is_reconnect());
        assert!(LogEvent::RestFailed.is_error() && !LogEvent::GapFill.is_error());
        // A line about one symbol names it; the connection's lines and older lines name none.
        assert_eq!(
            symbol_of("gap fill: ETHUSDT 1m: 5 klines over rest, last stored now x"),
            Some(("ETHUSDT", "1m"))
        );
        assert_eq!(
            symbol_of("gap fill over rest failed: BTCUSDT 1h: timeout; local clock x"),
            Some(("BTCUSDT", "1h"))
        );
        assert_eq!(
            symbol_of("AVAXUSDT 1m: runs degraded: cannot load a trained model: …"),
            Some(("AVAXUSDT", "1m"))
        );
        for none in [
            "gap fill: 5 klines over rest, last stored now 2026-07-01 10:00:00.000Z",
            "gap fill over rest failed: timeout; local clock x",
            "connected (3 connects so far)",
            "connection lost: websocket error: reset",
            "rest: Binance answered 429 (too many requests): waiting 1.0 s as asked",
        ] {
            assert_eq!(symbol_of(none), None, "{none}");
        }
        assert_eq!(
            LogEvent::parse("gap fill: ETHUSDT 1m: 5 klines"),
            Some(LogEvent::GapFill)
        );
        for free in [
            "connection lost: read failed: reset",
            "continuing on the socket; the gap is filled when rest answers again",
            "connected soon",
            "gap filler",
        ] {
            assert_eq!(LogEvent::parse(free), None, "{free}");
        }
    }
}
