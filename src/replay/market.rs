//! The replay server's market logic, pure: which rows a klines query returns at a virtual time,
//! the still-open candle's partial values, request-parameter validation with Binance's error
//! codes, the per-minute weight window, and the exact Binance JSON (REST rows, WebSocket
//! events). No I/O and no clock here: callers pass the virtual and real times in.

use std::ops::Range;

use crate::kline::{Interval, Kline, Symbol};

/// Binance's default and maximum `limit` for klines.
pub(crate) const DEFAULT_LIMIT: usize = 500;
pub(crate) const MAX_LIMIT: usize = 1000;
/// The first synthetic trade id; candle i's first trade id is this plus all earlier trades.
pub(crate) const FIRST_TRADE_ID: i64 = 1_000_000;

/// An answer with a Binance `{code,msg}` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: u16,
    pub code: i32,
    pub msg: String,
}

impl ApiError {
    pub(crate) fn new(status: u16, code: i32, msg: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            msg: msg.into(),
        }
    }

    /// The JSON body `{"code":..,"msg":".."}`.
    pub(crate) fn body(&self) -> String {
        format!(
            "{{\"code\":{},\"msg\":{}}}",
            self.code,
            serde_json::Value::String(self.msg.clone())
        )
    }
}

/// A validated `GET /api/v3/klines` query (times in ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KlinesQuery {
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub limit: usize,
}

/// Decodes `%XX` and `+` in a query component; invalid escapes are kept literally.
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits a query string into decoded `(key, value)` pairs, in order.
pub(crate) fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

fn mandatory(name: &str) -> ApiError {
    ApiError::new(
        400,
        -1102,
        format!("Mandatory parameter '{name}' was not sent, was empty/null, or malformed."),
    )
}

fn illegal(name: &str, range: &str) -> ApiError {
    ApiError::new(
        400,
        -1100,
        format!("Illegal characters found in parameter '{name}'; legal range is '{range}'."),
    )
}

const DIGITS_RANGE: &str = "^[0-9]{1,20}$";

fn digits(name: &str, text: &str) -> Result<u64, ApiError> {
    let ok = (1..=20).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
    match ok.then(|| text.parse::<u64>().ok()).flatten() {
        Some(v) => Ok(v),
        None => Err(illegal(name, DIGITS_RANGE)),
    }
}

/// A time parameter: ms, or µs when it has 16 or more digits' worth of magnitude (Binance
/// accepts µs for startTime/endTime since 2024-12-17).
fn time_param(name: &str, text: &str) -> Result<i64, ApiError> {
    let v = digits(name, text)?;
    let ms = if v >= 1_000_000_000_000_000 {
        v / 1000
    } else {
        v
    };
    i64::try_from(ms).map_err(|_| illegal(name, DIGITS_RANGE))
}

/// Validates the klines parameters against the served symbol and interval, with Binance's
/// error codes: -1102 missing, -1100 illegal characters, -1121 invalid symbol, -1120 invalid
/// interval, -1130 limit out of 1..=1000, -1101 duplicate parameter, -1023 start after end.
/// Unknown parameters (e.g. `timeZone`) are ignored.
pub(crate) fn parse_klines_query(
    query: &str,
    symbol: &Symbol,
    interval: Interval,
) -> Result<KlinesQuery, ApiError> {
    let pairs = query_pairs(query);
    for (i, (k, _)) in pairs.iter().enumerate() {
        if pairs[..i].iter().any(|(k2, _)| k2 == k) {
            return Err(ApiError::new(
                400,
                -1101,
                format!("Duplicate values for parameter '{k}'."),
            ));
        }
    }
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let sym = get("symbol").ok_or_else(|| mandatory("symbol"))?;
    let sym_ok = (1..=20).contains(&sym.len())
        && sym
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if !sym_ok {
        return Err(illegal("symbol", "^[A-Z0-9-_.]{1,20}$"));
    }
    if sym != symbol.as_str() {
        return Err(ApiError::new(400, -1121, "Invalid symbol."));
    }
    let iv = get("interval").ok_or_else(|| mandatory("interval"))?;
    if iv != interval.as_str() {
        return Err(ApiError::new(400, -1120, "Invalid interval."));
    }
    let start = get("startTime")
        .map(|t| time_param("startTime", t))
        .transpose()?;
    let end = get("endTime")
        .map(|t| time_param("endTime", t))
        .transpose()?;
    let limit = match get("limit") {
        None => DEFAULT_LIMIT,
        Some(t) => {
            let v = digits("limit", t)?;
            if v == 0 || v > MAX_LIMIT as u64 {
                return Err(ApiError::new(
                    400,
                    -1130,
                    "Data sent for parameter 'limit' is not valid.",
                ));
            }
            v as usize
        }
    };
    if let (Some(s), Some(e)) = (start, end) {
        if s > e {
            return Err(ApiError::new(
                400,
                -1023,
                "Start time is greater than end time.",
            ));
        }
    }
    Ok(KlinesQuery { start, end, limit })
}

/// The rows a klines query returns at virtual time `now`, as an index range into `klines`
/// (ascending by open time). Only rows with `open_time <= now` exist. Binance semantics:
/// start only → oldest rows at/after start; end only → most recent rows up to end; both →
/// from start, never past end; neither → the most recent `limit` rows.
pub(crate) fn select(klines: &[Kline], now: i64, q: &KlinesQuery) -> Range<usize> {
    let visible = klines.partition_point(|k| k.open_time <= now);
    let upper = match q.end {
        Some(end) => klines.partition_point(|k| k.open_time <= end).min(visible),
        None => visible,
    };
    match q.start {
        Some(start) => {
            let lo = klines.partition_point(|k| k.open_time < start).min(upper);
            lo..(lo + q.limit).min(upper)
        }
        None => upper.saturating_sub(q.limit)..upper,
    }
}

/// True when the candle is still open at `now` (its close time has not passed).
pub(crate) fn is_open(k: &Kline, now: i64) -> bool {
    k.close_time >= now
}

fn places(text: &str) -> usize {
    text.split_once('.').map_or(0, |(_, frac)| frac.len())
}

/// Formats `value` with as many decimals as `like` has (never negative).
fn format_like(value: f64, like: &str) -> String {
    let v = if value.is_finite() && value > 0.0 {
        value
    } else {
        0.0
    };
    format!("{:.*}", places(like), v)
}

/// The part of a candle elapsed at `now`, in 0..=1.
pub(crate) fn fraction(k: &Kline, now: i64) -> f64 {
    let len = (k.close_time + 1 - k.open_time).max(1) as f64;
    ((now - k.open_time) as f64 / len).clamp(0.0, 1.0)
}

/// The still-open candle as it looks at `now`: close interpolated between open and the final
/// close by the elapsed fraction f, high/low growing from open/close towards the final high and
/// low by f, volumes and trade count scaled by f. Decimals keep the source's number of places.
pub(crate) fn partial_kline(k: &Kline, now: i64) -> Kline {
    let f = fraction(k, now);
    let v = k.values();
    let close = v.open + (v.close - v.open) * f;
    let top = v.open.max(close);
    let bottom = v.open.min(close);
    let high = top + (v.high - v.open.max(v.close)).max(0.0) * f;
    let low = bottom - (v.open.min(v.close) - v.low).max(0.0) * f;
    Kline {
        open_time: k.open_time,
        open: k.open.clone(),
        high: format_like(high, &k.high),
        low: format_like(low, &k.low),
        close: format_like(close, &k.close),
        volume: format_like(v.volume * f, &k.volume),
        close_time: k.close_time,
        quote_volume: format_like(v.quote_volume * f, &k.quote_volume),
        trades: (k.trades as f64 * f).floor() as u64,
        taker_buy_base: format_like(v.taker_buy_base * f, &k.taker_buy_base),
        taker_buy_quote: format_like(v.taker_buy_quote * f, &k.taker_buy_quote),
    }
}

/// The row as Binance serves it at `now`: the source row when closed, else the partial one.
pub(crate) fn row_at(k: &Kline, now: i64) -> Kline {
    if is_open(k, now) {
        partial_kline(k, now)
    } else {
        k.clone()
    }
}

/// One REST klines row: Binance's 12-element array (numbers for times and trades, strings for
/// decimals, `"0"` last).
pub(crate) fn rest_row(k: &Kline) -> String {
    format!(
        "[{},\"{}\",\"{}\",\"{}\",\"{}\",\"{}\",{},\"{}\",{},\"{}\",\"{}\",\"0\"]",
        k.open_time,
        k.open,
        k.high,
        k.low,
        k.close,
        k.volume,
        k.close_time,
        k.quote_volume,
        k.trades,
        k.taker_buy_base,
        k.taker_buy_quote
    )
}

/// The REST klines body for `range` at virtual time `now`.
pub fn rest_body(klines: &[Kline], range: Range<usize>, now: i64) -> String {
    let rows: Vec<String> = klines[range]
        .iter()
        .map(|k| rest_row(&row_at(k, now)))
        .collect();
    format!("[{}]", rows.join(","))
}

/// Synthetic first trade id of every row: [`FIRST_TRADE_ID`] plus all earlier trade counts.
pub(crate) fn first_trade_ids(klines: &[Kline]) -> Vec<i64> {
    let mut next = FIRST_TRADE_ID;
    klines
        .iter()
        .map(|k| {
            let id = next;
            next = next.saturating_add(k.trades as i64);
            id
        })
        .collect()
}

/// A WebSocket kline event exactly as Binance sends it (protocol doc §3.4). A candle with no
/// trades gets `"f":-1,"L":-1` and no `B` field.
pub fn kline_event(
    symbol: &Symbol,
    interval: Interval,
    k: &Kline,
    first_trade_id: i64,
    event_ms: i64,
    closed: bool,
) -> String {
    let (first, last, ignore) = if k.trades == 0 {
        (-1, -1, String::new())
    } else {
        (
            first_trade_id,
            first_trade_id + k.trades as i64 - 1,
            ",\"B\":\"0\"".to_string(),
        )
    };
    format!(
        "{{\"e\":\"kline\",\"E\":{event_ms},\"s\":\"{sym}\",\"k\":{{\"t\":{},\"T\":{},\"s\":\"{sym}\",\
         \"i\":\"{interval}\",\"f\":{first},\"L\":{last},\"o\":\"{}\",\"c\":\"{}\",\"h\":\"{}\",\
         \"l\":\"{}\",\"v\":\"{}\",\"n\":{},\"x\":{closed},\"q\":\"{}\",\"V\":\"{}\",\"Q\":\"{}\"\
         {ignore}}}}}",
        k.open_time,
        k.close_time,
        k.open,
        k.close,
        k.high,
        k.low,
        k.volume,
        k.trades,
        k.quote_volume,
        k.taker_buy_base,
        k.taker_buy_quote,
        sym = symbol.as_str(),
    )
}

/// The `serverShutdown` event.
pub fn shutdown_event(event_ms: i64) -> String {
    format!("{{\"e\":\"serverShutdown\",\"E\":{event_ms}}}")
}

/// Request weight used in the current real minute, as Binance counts it per IP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct WeightWindow {
    minute: u64,
    used: u64,
}

impl WeightWindow {
    /// Adds `weight` in real minute number `minute` (a new minute resets the count) and
    /// returns the weight used so far in this minute.
    pub(crate) fn charge(&mut self, minute: u64, weight: u64) -> u64 {
        if minute != self.minute {
            self.minute = minute;
            self.used = 0;
        }
        self.used = self.used.saturating_add(weight);
        self.used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(open_time: i64, close: &str, trades: u64) -> Kline {
        Kline {
            open_time,
            open: "6.5340".to_string(),
            high: "6.5430".to_string(),
            low: "6.5300".to_string(),
            close: close.to_string(),
            volume: "33013".to_string(),
            close_time: open_time + 59_999,
            quote_volume: "215829.8910".to_string(),
            trades,
            taker_buy_base: "30518".to_string(),
            taker_buy_quote: "199515.0150".to_string(),
        }
    }

    fn sym() -> Symbol {
        Symbol::parse("AVAXUSDT").expect("symbol")
    }

    /// Rows at minutes 0,1,2, then a gap, then 5,6,7,8,9.
    fn data() -> Vec<Kline> {
        [0, 1, 2, 5, 6, 7, 8, 9]
            .iter()
            .map(|m| row(m * 60_000, "6.5400", 365))
            .collect()
    }

    fn q(start: Option<i64>, end: Option<i64>, limit: usize) -> KlinesQuery {
        KlinesQuery { start, end, limit }
    }

    #[test]
    fn selection_follows_binance_semantics() {
        let d = data();
        let now = 7 * 60_000 + 30_000; // rows 0..=5 exist (minute 7 is open)
        assert_eq!(select(&d, now, &q(None, None, 500)), 0..6);
        assert_eq!(select(&d, now, &q(None, None, 2)), 4..6);
        assert_eq!(select(&d, now, &q(Some(60_000), None, 2)), 1..3);
        // start inside the gap: the next existing rows
        assert_eq!(select(&d, now, &q(Some(3 * 60_000), None, 2)), 3..5);
        assert_eq!(select(&d, now, &q(None, Some(5 * 60_000), 2)), 2..4);
        assert_eq!(select(&d, now, &q(Some(0), Some(60_000), 500)), 0..2);
        assert_eq!(select(&d, now, &q(Some(60_000), Some(60_000), 500)), 1..2);
        // the future does not exist yet
        assert_eq!(select(&d, now, &q(Some(8 * 60_000), None, 500)), 6..6);
        assert_eq!(select(&d, now, &q(None, Some(99 * 60_000), 3)), 3..6);
    }

    #[test]
    fn query_validation_uses_binance_codes() {
        let s = sym();
        let i = Interval::ONE_MINUTE;
        let code = |query: &str| parse_klines_query(query, &s, i).map_err(|e| (e.status, e.code));
        assert_eq!(
            parse_klines_query("symbol=AVAXUSDT&interval=1m", &s, i),
            Ok(q(None, None, 500))
        );
        assert_eq!(
            parse_klines_query(
                "symbol=AVAXUSDT&interval=1m&startTime=60000&endTime=120000&limit=1000",
                &s,
                i
            ),
            Ok(q(Some(60_000), Some(120_000), 1000))
        );
        assert_eq!(
            code("symbol=AVAXUSDT&interval=1m&startTime=1782864000000000"),
            Ok(q(Some(1_782_864_000_000), None, 500))
        );
        assert_eq!(code("interval=1m"), Err((400, -1102)));
        assert_eq!(code("symbol=BTCUSDT&interval=1m"), Err((400, -1121)));
        assert_eq!(code("symbol=avaxusdt&interval=1m"), Err((400, -1100)));
        assert_eq!(code("symbol=AVAXUSDT"), Err((400, -1102)));
        assert_eq!(code("symbol=AVAXUSDT&interval=1M"), Err((400, -1120)));
        assert_eq!(
            code("symbol=AVAXUSDT&interval=1m&limit=1001"),
            Err((400, -1130))
        );
        assert_eq!(
            code("symbol=AVAXUSDT&interval=1m&limit=0"),
            Err((400, -1130))
        );
        assert_eq!(
            code("symbol=AVAXUSDT&interval=1m&limit=None"),
            Err((400, -1100))
        );
        assert_eq!(
            code("symbol=AVAXUSDT&interval=1m&limit=-5"),
            Err((400, -1100))
        );
        assert_eq!(
            code("symbol=AVAXUSDT&interval=1m&startTime=1e9"),
            Err((400, -1100))
        );
        assert_eq!(
            code("symbol=AVAXUSDT&interval=1m&startTime=2&endTime=1"),
            Err((400, -1023))
        );
        assert_eq!(
            code("symbol=AVAXUSDT&symbol=AVAXUSDT&interval=1m"),
            Err((400, -1101))
        );
        let e = parse_klines_query("symbol=AVAXUSDT&interval=1m&limit=None", &s, i)
            .expect_err("illegal limit");
        assert_eq!(
            e.body(),
            r#"{"code":-1100,"msg":"Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'."}"#
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(
            query_pairs("symbol=AVAX%55SDT&x"),
            vec![
                ("symbol".to_string(), "AVAXUSDT".to_string()),
                ("x".to_string(), String::new())
            ]
        );
    }

    #[test]
    fn rest_row_is_binance_layout_with_source_decimals() {
        let k = row(1_782_864_000_000, "6.5400", 365);
        assert_eq!(
            rest_row(&k),
            r#"[1782864000000,"6.5340","6.5430","6.5300","6.5400","33013",1782864059999,"215829.8910",365,"30518","199515.0150","0"]"#
        );
    }

    #[test]
    fn partial_candle_interpolates_and_keeps_decimal_places() {
        let k = row(0, "6.5400", 365);
        let half = partial_kline(&k, 30_000);
        assert_eq!(half.open, "6.5340");
        assert_eq!(half.close, "6.5370");
        assert_eq!(half.high, "6.5385"); // 6.5370 + (6.5430-6.5400)/2
        assert_eq!(half.low, "6.5320"); // 6.5340 - (6.5340-6.5300)/2
        assert_eq!(half.volume, "16506"); // 16506.5, ties round to even
        assert_eq!(half.quote_volume, "107914.9455");
        assert_eq!(half.trades, 182);
        assert_ne!(half, k);
        let start = partial_kline(&k, 0);
        assert_eq!(
            (start.close.as_str(), start.volume.as_str(), start.trades),
            ("6.5340", "0", 0)
        );
        assert_eq!(row_at(&k, 59_999), partial_kline(&k, 59_999));
        assert_eq!(row_at(&k, 60_000), k);
        let v = partial_kline(&k, 45_000).values();
        assert!(v.low <= v.open.min(v.close) && v.high >= v.open.max(v.close));
    }

    #[test]
    fn kline_event_is_binance_layout() {
        let k = row(0, "6.5400", 365);
        assert_eq!(
            kline_event(&sym(), Interval::ONE_MINUTE, &k, 1_000_000, 60_001, true),
            concat!(
                r#"{"e":"kline","E":60001,"s":"AVAXUSDT","k":{"t":0,"T":59999,"s":"AVAXUSDT","i":"1m","#,
                r#""f":1000000,"L":1000364,"o":"6.5340","c":"6.5400","h":"6.5430","l":"6.5300","#,
                r#""v":"33013","n":365,"x":true,"q":"215829.8910","V":"30518","Q":"199515.0150","B":"0"}}"#
            )
        );
        let quiet = row(0, "6.5400", 0);
        let text = kline_event(&sym(), Interval::ONE_MINUTE, &quiet, 7, 5, false);
        assert!(text.contains(r#""f":-1,"L":-1,"#), "{text}");
        assert!(text.ends_with(r#""Q":"199515.0150"}}"#), "{text}");
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("valid json");
        assert_eq!(parsed["k"]["x"], serde_json::Value::Bool(false));
        assert!(parsed["k"].get("B").is_none());
        assert_eq!(shutdown_event(9), r#"{"e":"serverShutdown","E":9}"#);
    }

    #[test]
    fn trade_ids_are_prefix_sums() {
        let d = vec![
            row(0, "6.5400", 3),
            row(60_000, "6.5400", 0),
            row(120_000, "6.5400", 2),
        ];
        assert_eq!(first_trade_ids(&d), vec![1_000_000, 1_000_003, 1_000_003]);
    }

    #[test]
    fn weight_window_resets_each_minute() {
        let mut w = WeightWindow::default();
        assert_eq!(w.charge(0, 2), 2);
        assert_eq!(w.charge(0, 1), 3);
        assert_eq!(w.charge(1, 2), 2);
        for _ in 0..2999 {
            w.charge(1, 2);
        }
        assert_eq!(w.charge(1, 0), 6000);
        assert_eq!(w.charge(1, 2), 6002);
    }
}
