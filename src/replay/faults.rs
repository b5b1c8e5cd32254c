//! Fault switches of the replay server and their parser. Pure: parsing a spec such as
//! `429-every=3,retry-after=2,dup-finals` into [`Faults`]; the servers (`http.rs`, `ws.rs`) act
//! on them. The keys and their meaning are listed in the module doc of `replay/mod.rs`.

/// Which faults the replay server injects. `Faults::default()` injects none.
///
/// Counters ("every Nth") are 1-based: `429-every=3` fails requests 3, 6, 9, …
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// `429-every=N`: every Nth klines request answers 429 with `Retry-After`.
    pub(crate) every_429: Option<u64>,
    /// `retry-after=S`: the `Retry-After` seconds of the injected 429 (default 1).
    pub(crate) retry_after_s: Option<u64>,
    /// `418=S`: every REST request answers 418 (IP banned) with `Retry-After: S`.
    pub(crate) ban_418_s: Option<u64>,
    /// `500-every=N`: every Nth klines request answers 500.
    pub(crate) every_500: Option<u64>,
    /// `torn-every=N`: every Nth klines request gets the headers and half the body, then the
    /// socket is closed.
    pub(crate) torn_every: Option<u64>,
    /// `slow-ms=MS`: every klines answer is delayed by MS real milliseconds after its page was
    /// taken (a slow link: the page is as of the request, it arrives later).
    pub(crate) slow_ms: Option<u64>,
    /// `time-429-every=N`: every Nth `/api/v3/time` request answers 429 with `Retry-After`.
    pub(crate) time_every_429: Option<u64>,
    /// `weight-limit=W`: the per-minute request weight limit (default 6000).
    pub(crate) weight_limit: Option<u64>,
    /// `drop-every=N`: a WebSocket connection is dropped (TCP shutdown, no close frame) after
    /// N final klines were sent on it.
    pub(crate) drop_every: Option<u64>,
    /// `dup-finals`: every final kline event is sent twice.
    pub(crate) dup_finals: bool,
    /// `garbage-every=N`: every Nth data frame on a connection is preceded by a garbage text
    /// frame (alternately a truncated event and `not json`).
    pub(crate) garbage_every: Option<u64>,
    /// `stall-ms=MS`: after the first final on a connection, send nothing (no data, no pings)
    /// for MS real milliseconds, then drop the connection.
    pub(crate) stall_ms: Option<u64>,
    /// `shutdown-after=N`: after N finals on a connection, send `serverShutdown` and close.
    pub(crate) shutdown_after: Option<u64>,
    /// `ping-ms=MS`: the WebSocket ping period in real milliseconds (overrides the default).
    pub(crate) ping_ms: Option<u64>,
    /// `pong-timeout-ms=MS`: close a WebSocket connection whose pong is this late (real ms;
    /// default 60 000).
    pub(crate) pong_timeout_ms: Option<u64>,
    /// `hold-final=SYMBOL:ROW:MS` (may be given several times): the final event of row ROW of
    /// SYMBOL's series is sent MS real milliseconds after it is due, and that stream sends
    /// nothing else meanwhile (no partial of the next candle; its later finals wait behind it,
    /// as a feed is in order); the other streams go on. A late kline of one symbol only.
    pub(crate) hold_finals: Vec<HoldFinal>,
}

/// One `hold-final` switch: which final is held back, and for how long.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HoldFinal {
    /// The symbol, upper case.
    pub(crate) symbol: String,
    /// The row of that symbol's series.
    pub(crate) row: usize,
    /// Real milliseconds after it is due.
    pub(crate) ms: u64,
}

/// Default `Retry-After` seconds of an injected 429.
pub(crate) const DEFAULT_RETRY_AFTER_S: u64 = 1;
/// Binance's request weight limit per minute.
pub(crate) const DEFAULT_WEIGHT_LIMIT: u64 = 6000;
/// Default time a WebSocket client has to answer a ping (Binance: one minute).
pub(crate) const DEFAULT_PONG_TIMEOUT_MS: u64 = 60_000;

/// Every key `Faults::parse` accepts, for the error message.
const KEYS: &str =
    "429-every=N, time-429-every=N, retry-after=S, 418=S, 500-every=N, torn-every=N, slow-ms=MS, \
weight-limit=W, drop-every=N, dup-finals, garbage-every=N, stall-ms=MS, shutdown-after=N, \
ping-ms=MS, pong-timeout-ms=MS, hold-final=SYMBOL:ROW:MS";

impl Faults {
    /// Parses a comma-separated spec such as `429-every=3,retry-after=2,dup-finals`.
    /// An empty (or all-blank) spec means no faults. Unknown keys, missing or non-numeric
    /// values, zero counts and repeated keys are refused with a message naming the item.
    pub fn parse(spec: &str) -> Result<Faults, String> {
        let mut faults = Faults::default();
        if spec.trim().is_empty() {
            return Ok(faults);
        }
        let mut seen: Vec<&str> = Vec::new();
        for item in spec.split(',') {
            let item = item.trim();
            let (key, value) = match item.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (item, None),
            };
            if key.is_empty() {
                return Err(format!(
                    "empty item in fault spec {spec:?}: separate switches with single commas"
                ));
            }
            if seen.contains(&key) && key != "hold-final" {
                return Err(format!("fault switch `{key}` is given twice"));
            }
            seen.push(key);
            let number = |min: u64| -> Result<u64, String> {
                let text = value.ok_or_else(|| format!("fault switch `{key}` needs a value"))?;
                match text.parse::<u64>() {
                    Ok(n) if n >= min && text.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
                    _ => Err(format!(
                        "fault switch `{key}` needs a whole number of at least {min}, got {text:?}"
                    )),
                }
            };
            match key {
                "429-every" => faults.every_429 = Some(number(1)?),
                "time-429-every" => faults.time_every_429 = Some(number(1)?),
                "retry-after" => faults.retry_after_s = Some(number(0)?),
                "418" => faults.ban_418_s = Some(number(0)?),
                "500-every" => faults.every_500 = Some(number(1)?),
                "torn-every" => faults.torn_every = Some(number(1)?),
                "slow-ms" => faults.slow_ms = Some(number(0)?),
                "weight-limit" => faults.weight_limit = Some(number(1)?),
                "drop-every" => faults.drop_every = Some(number(1)?),
                "dup-finals" => {
                    if value.is_some() {
                        return Err("fault switch `dup-finals` takes no value".to_string());
                    }
                    faults.dup_finals = true;
                }
                "garbage-every" => faults.garbage_every = Some(number(1)?),
                "stall-ms" => faults.stall_ms = Some(number(0)?),
                "shutdown-after" => faults.shutdown_after = Some(number(1)?),
                "ping-ms" => faults.ping_ms = Some(number(1)?),
                "pong-timeout-ms" => faults.pong_timeout_ms = Some(number(1)?),
                "hold-final" => faults.hold_finals.push(parse_hold(value)?),
                _ => {
                    return Err(format!(
                        "unknown fault switch `{key}`: use a comma-separated list of {KEYS}"
                    ))
                }
            }
        }
        Ok(faults)
    }

    /// Real milliseconds the final of row `row` of `symbol`'s series is held (0: not held).
    pub(crate) fn hold_ms(&self, symbol: &str, row: usize) -> u64 {
        self.hold_finals
            .iter()
            .filter(|h| h.row == row && h.symbol == symbol)
            .map(|h| h.ms)
            .max()
            .unwrap_or(0)
    }

    /// The `Retry-After` seconds of an injected 429.
    pub(crate) fn retry_after(&self) -> u64 {
        self.retry_after_s.unwrap_or(DEFAULT_RETRY_AFTER_S)
    }

    /// The request weight limit per minute.
    pub(crate) fn weight_limit(&self) -> u64 {
        self.weight_limit.unwrap_or(DEFAULT_WEIGHT_LIMIT)
    }

    /// The pong timeout in real milliseconds.
    pub(crate) fn pong_timeout_ms(&self) -> u64 {
        self.pong_timeout_ms.unwrap_or(DEFAULT_PONG_TIMEOUT_MS)
    }
}

/// The value of a `hold-final` switch, `SYMBOL:ROW:MS`.
fn parse_hold(value: Option<&str>) -> Result<HoldFinal, String> {
    let text = value.ok_or_else(|| "fault switch `hold-final` needs a value".to_string())?;
    let bad = || {
        format!(
            "fault switch `hold-final` needs SYMBOL:ROW:MS (letters or digits, then two whole \
             numbers), got {text:?}"
        )
    };
    let mut parts = text.split(':');
    let (Some(symbol), Some(row), Some(ms), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let whole = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if symbol.is_empty() || !symbol.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(bad());
    }
    if !(whole(row) && whole(ms)) {
        return Err(bad());
    }
    Ok(HoldFinal {
        symbol: symbol.to_ascii_uppercase(),
        row: row.parse().map_err(|_| bad())?,
        ms: ms.parse().map_err(|_| bad())?,
    })
}

/// True when the `count`-th event (1-based) is hit by an "every N" switch.
pub(super) fn hits(every: Option<u64>, count: u64) -> bool {
    matches!(every, Some(n) if n > 0 && count > 0 && count.is_multiple_of(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_spec_is_no_faults() {
        assert_eq!(Faults::parse(""), Ok(Faults::default()));
        assert_eq!(Faults::parse("  "), Ok(Faults::default()));
    }

    #[test]
    fn every_key_parses() {
        let f = Faults::parse(
            "429-every=3, retry-after=2,418=120,500-every=4,torn-every=5,slow-ms=10,\
             time-429-every=11,weight-limit=50,drop-every=6,dup-finals,garbage-every=7,stall-ms=800,\
             shutdown-after=9,ping-ms=300,pong-timeout-ms=900,hold-final=ethusdt:651:4000,\
             hold-final=ETHUSDT:652:1000",
        )
        .expect("valid spec");
        assert_eq!(
            f,
            Faults {
                every_429: Some(3),
                retry_after_s: Some(2),
                ban_418_s: Some(120),
                every_500: Some(4),
                torn_every: Some(5),
                slow_ms: Some(10),
                time_every_429: Some(11),
                weight_limit: Some(50),
                drop_every: Some(6),
                dup_finals: true,
                garbage_every: Some(7),
                stall_ms: Some(800),
                shutdown_after: Some(9),
                ping_ms: Some(300),
                pong_timeout_ms: Some(900),
                hold_finals: vec![
                    HoldFinal {
                        symbol: "ETHUSDT".to_string(),
                        row: 651,
                        ms: 4000
                    },
                    HoldFinal {
                        symbol: "ETHUSDT".to_string(),
                        row: 652,
                        ms: 1000
                    },
                ],
            }
        );
        assert_eq!(f.hold_ms("ETHUSDT", 651), 4000);
        assert_eq!(f.hold_ms("ETHUSDT", 652), 1000);
        assert_eq!(f.hold_ms("ETHUSDT", 653), 0);
        assert_eq!(f.hold_ms("AVAXUSDT", 651), 0);
        assert_eq!(f.retry_after(), 2);
        assert_eq!(f.weight_limit(), 50);
        assert_eq!(Faults::default().retry_after(), 1);
        assert_eq!(Faults::default().weight_limit(), 6000);
        assert_eq!(Faults::default().pong_timeout_ms(), 60_000);
    }

    #[test]
    fn bad_specs_are_refused_with_the_item_named() {
        for (spec, needle) in [
            ("frobnicate=1", "unknown fault switch `frobnicate`"),
            ("429-every", "needs a value"),
            ("429-every=0", "at least 1"),
            ("429-every=x", "got \"x\""),
            ("429-every=-3", "got \"-3\""),
            ("429-every=+3", "got \"+3\""),
            ("dup-finals=1", "takes no value"),
            ("slow-ms=1,slow-ms=2", "given twice"),
            ("dup-finals,,slow-ms=1", "empty item"),
            ("hold-final", "needs a value"),
            ("hold-final=ETHUSDT:651", "SYMBOL:ROW:MS"),
            ("hold-final=ETHUSDT:651:10:2", "SYMBOL:ROW:MS"),
            ("hold-final=ETH/USDT:651:10", "SYMBOL:ROW:MS"),
            ("hold-final=ETHUSDT:-1:10", "SYMBOL:ROW:MS"),
            ("hold-final=ETHUSDT:1:1e3", "SYMBOL:ROW:MS"),
            ("hold-final=:1:10", "SYMBOL:ROW:MS"),
        ] {
            match Faults::parse(spec) {
                Err(e) => assert!(e.contains(needle), "{spec:?}: {e}"),
                Ok(f) => panic!("{spec:?} parsed as {f:?}"),
            }
        }
    }

    #[test]
    fn every_n_hits_multiples_only() {
        let hit: Vec<u64> = (1..=9).filter(|&c| hits(Some(3), c)).collect();
        assert_eq!(hit, vec![3, 6, 9]);
        assert!(!hits(None, 3));
        assert!(!hits(Some(3), 0));
        assert!(hits(Some(1), 1));
    }
}
