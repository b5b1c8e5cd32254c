//! The `stream.log` lines that other commands read back (`report` charts them, `status` counts
//! them): each one's wording is written and recognised here, and nowhere else. Every other
//! `stream.log` line is free text for people.

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
        assert!(LogEvent::Connected { connects: 2 }.is_reconnect());
        assert!(!LogEvent::Connected { connects: 1 }.is_reconnect());
        assert!(LogEvent::RestFailed.is_error() && !LogEvent::GapFill.is_error());
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
