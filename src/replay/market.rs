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

/// Validates the klines parameters against the served series (`served[i]` is series i's symbol
/// and interval) and returns the index of the series asked for, with Binance's error codes:
/// -1102 missing, -1100 illegal characters, -1121 invalid symbol (no series of that symbol),
/// -1120 invalid interval (the symbol is served, not at that interval), -1130 limit out of
/// 1..=1000, -1101 duplicate parameter, -1023 start after end. Unknown parameters (e.g.
/// `timeZone`) are ignored.
pub(crate) fn parse_klines_query(
    query: &str,
    served: &[(Symbol, Interval)],
) -> Result<(usize, KlinesQuery), ApiError> {
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
    if !served.iter().any(|(s, _)| s.as_str() == sym) {
        return Err(invalid_symbol());
    }
    let iv = get("interval").ok_or_else(|| mandatory("interval"))?;
    let Some(series) = served
        .iter()
        .position(|(s, i)| s.as_str() == sym && i.as_str() == iv)
    else {
        return Err(ApiError::new(400, -1120, "Invalid interval."));
    };
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
    Ok((series, KlinesQuery { start, end, limit }))
}

fn invalid_symbol() -> ApiError {
    ApiError::new(400, -1121, "Invalid symbol.")
}

/// The `GET /api/v3/exchangeInfo` body at virtual time `now`: every served symbol (first
/// appearance order, each once), or only those asked for with `symbol=X` or
/// `symbols=["X","Y"]`; a symbol not served is -1121, as on Binance.
pub(crate) fn exchange_info(
    query: &str,
    served: &[(Symbol, Interval)],
    now: i64,
    weight_limit: u64,
) -> Result<String, ApiError> {
    let mut all: Vec<&str> = Vec::new();
    for (s, _) in served {
        if !all.contains(&s.as_str()) {
            all.push(s.as_str());
        }
    }
    let pairs = query_pairs(query);
    let asked: Option<Vec<String>> = match (
        pairs.iter().find(|(k, _)| k == "symbol"),
        pairs.iter().find(|(k, _)| k == "symbols"),
    ) {
        (Some((_, one)), None) => Some(vec![one.clone()]),
        (None, Some((_, list))) => {
            Some(serde_json::from_str::<Vec<String>>(list).map_err(|_| {
                illegal(
                    "symbols",
                    "^\\[(\"[A-Z0-9-_.]{1,20}\"(,\"[A-Z0-9-_.]{1,20}\"){0,}){0,1}\\]$",
                )
            })?)
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                400,
                -1128,
                "Combination of optional parameters invalid.",
            ))
        }
        (None, None) => None,
    };
    let symbols: Vec<&str> = match &asked {
        None => all,
        Some(list) => {
            if list.iter().any(|a| !all.contains(&a.as_str())) {
                return Err(invalid_symbol());
            }
            list.iter().map(String::as_str).collect()
        }
    };
    let rows: Vec<String> = symbols
        .iter()
        .map(|s| format!("{{\"symbol\":\"{s}\",\"status\":\"TRADING\"}}"))
        .collect();
    Ok(format!(
        "{{\"timezone\":\"UTC\",\"serverTime\":{now},\"rateLimits\":[{{\"rateLimitType\":\
         \"REQUEST_WEIGHT\",\"interval\":\"MINUTE\",\"intervalNum\":1,\"limit\":{weight_limit}}}],\
         \"exchangeFilters\":[],\"symbols\":[{}]}}",
        rows.join(",")
    ))
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

/// At most this many streams on one WebSocket connection (protocol doc §3.6); a server may be
/// set to accept fewer (`KLINECAST_WS_MAX_STREAMS`, [`super::ReplayServer::set_max_streams`]).
pub(crate) const MAX_STREAMS: usize = crate::binance::ws::MAX_STREAMS;
/// At most this many incoming messages per second on one connection (§3.6); one more closes it.
pub(crate) const MAX_MESSAGES_PER_SECOND: usize = 5;

/// The kline stream name of a series: `<lowercase symbol>@kline_<interval>`.
pub(crate) fn stream_name(symbol: &Symbol, interval: Interval) -> String {
    format!("{}@kline_{}", symbol.lower(), interval.as_str())
}

/// A combined-stream message: `{"stream":"<name>","data":<payload>}`.
pub(crate) fn envelope(stream: &str, payload: &str) -> String {
    format!("{{\"stream\":\"{stream}\",\"data\":{payload}}}")
}

/// What a WebSocket connection asked for in its URL: the streams (indices into the served
/// stream names, each once, in URL order) and whether payloads are wrapped (`/stream`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subscriptions {
    pub streams: Vec<usize>,
    pub combined: bool,
}

/// Reads a WebSocket request target against the served stream names: `/ws/<stream>` (raw),
/// `/ws` (raw, subscribe later), `/stream?streams=<s1>/<s2>/…` (combined; `/stream` alone has
/// none yet). Percent-encoded targets are accepted, as Binance does since 2025-12-02. A path or
/// stream this server does not serve, or more than `max` streams (at most [`MAX_STREAMS`]),
/// is refused with the close reason to send.
pub(crate) fn parse_ws_target(
    path: &str,
    query: &str,
    served: &[String],
    max: usize,
) -> Result<Subscriptions, String> {
    let serves = served.join(", ");
    let unknown = |what: &str| format!("unknown stream {what:?}: this server streams {serves}");
    let find = |name: &str| served.iter().position(|s| s == name);
    let raw = match path {
        "/ws" | "/ws/" => {
            return Ok(Subscriptions {
                streams: Vec::new(),
                combined: false,
            })
        }
        "/stream" | "/stream/" => None,
        _ => match path
            .strip_prefix("/ws/")
            .map(percent_decode)
            .as_deref()
            .and_then(find)
        {
            Some(i) => Some(i),
            None => return Err(unknown(path)),
        },
    };
    if let Some(i) = raw {
        return Ok(Subscriptions {
            streams: vec![i],
            combined: false,
        });
    }
    let mut streams = Vec::new();
    for (key, value) in query_pairs(query) {
        if key != "streams" {
            continue;
        }
        for name in value.split('/').filter(|n| !n.is_empty()) {
            let i = find(name).ok_or_else(|| unknown(name))?;
            if !streams.contains(&i) {
                streams.push(i);
            }
        }
    }
    if streams.len() > max {
        return Err(format!(
            "too many streams: {} asked, at most {max} per connection",
            streams.len()
        ));
    }
    Ok(Subscriptions {
        streams,
        combined: true,
    })
}

/// A live control request (protocol doc §3.7).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Request {
    Subscribe(Vec<String>),
    Unsubscribe(Vec<String>),
    List,
    SetCombined(bool),
    GetCombined,
}

/// An error answer to a control message: `{"error":{"code":C,"msg":"…"},"id":ID}` (the wire
/// layout Binance sends; its docs show only the inner `{code,msg}`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ControlError {
    pub id: serde_json::Value,
    pub code: i32,
    pub msg: String,
}

impl ControlError {
    fn new(id: &serde_json::Value, code: i32, msg: impl Into<String>) -> ControlError {
        ControlError {
            id: id.clone(),
            code,
            msg: msg.into(),
        }
    }

    /// The error frame's text.
    pub fn text(&self) -> String {
        format!(
            "{{\"error\":{{\"code\":{},\"msg\":{}}},\"id\":{}}}",
            self.code,
            serde_json::Value::String(self.msg.clone()),
            self.id
        )
    }
}

/// A successful answer: `{"result":RESULT,"id":ID}`.
pub(crate) fn control_result(id: &serde_json::Value, result: &serde_json::Value) -> String {
    format!("{{\"result\":{result},\"id\":{id}}}")
}

/// An `id` Binance accepts: a signed 64-bit integer, an alphanumeric string of at most 36
/// characters, or null.
fn valid_id(id: &serde_json::Value) -> bool {
    match id {
        serde_json::Value::Null => true,
        serde_json::Value::Number(n) => n.is_i64(),
        serde_json::Value::String(s) => {
            s.len() <= 36 && s.bytes().all(|b| b.is_ascii_alphanumeric())
        }
        _ => false,
    }
}

const METHODS: &str =
    "`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`";

/// Parses one control message with Binance's error codes: 3 invalid JSON, 2 invalid request
/// (no object, bad or missing id, missing or unknown method, bad params, too many params),
/// 1 a property value that is not a boolean, 0 an unknown property.
pub(crate) fn parse_control(text: &str) -> Result<(serde_json::Value, Request), ControlError> {
    use serde_json::Value;
    let null = Value::Null;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ControlError::new(&null, 3, format!("Invalid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(ControlError::new(
            &null,
            2,
            "Invalid request: expected an object",
        ));
    };
    let id = match map.get("id") {
        Some(id) if valid_id(id) => id.clone(),
        _ => {
            return Err(ControlError::new(
                &null,
                2,
                "Invalid request: request ID must be a 64-bit integer, an alphanumeric string \
                 of at most 36 characters, or null",
            ))
        }
    };
    let err = |code: i32, msg: &str| ControlError::new(&id, code, msg);
    if map
        .keys()
        .any(|k| !["method", "params", "id"].contains(&k.as_str()))
    {
        return Err(err(2, "Invalid request: too many parameters"));
    }
    let method = match map.get("method") {
        None => return Err(err(2, "Invalid request: missing field `method`")),
        Some(Value::String(m)) => m.as_str(),
        Some(_) => return Err(err(2, "Invalid request: method must be a string")),
    };
    let params: &[Value] = match map.get("params") {
        None => &[],
        Some(Value::Array(list)) => list,
        Some(_) => return Err(err(2, "Invalid request: params must be a list")),
    };
    let names = || -> Result<Vec<String>, ControlError> {
        params
            .iter()
            .map(|p| match p {
                Value::String(s) => Ok(s.clone()),
                _ => Err(err(2, "Invalid request: invalid stream")),
            })
            .collect()
    };
    let property = |max: usize| -> Result<(), ControlError> {
        if params.len() > max {
            return Err(err(2, "Invalid request: too many parameters"));
        }
        match params.first() {
            Some(Value::String(name)) if name == "combined" => Ok(()),
            Some(Value::String(_)) => Err(err(0, "Unknown property")),
            _ => Err(err(2, "Invalid request: property name must be a string")),
        }
    };
    let request = match method {
        "SUBSCRIBE" => Request::Subscribe(names()?),
        "UNSUBSCRIBE" => Request::Unsubscribe(names()?),
        "LIST_SUBSCRIPTIONS" => Request::List,
        "SET_PROPERTY" => {
            property(2)?;
            match params.get(1) {
                Some(Value::Bool(b)) => Request::SetCombined(*b),
                _ => return Err(err(1, "Invalid value type: expected Boolean")),
            }
        }
        "GET_PROPERTY" => {
            property(1)?;
            Request::GetCombined
        }
        other => {
            return Err(err(
                2,
                &format!("Invalid request: unknown variant `{other}`, expected one of {METHODS}"),
            ))
        }
    };
    Ok((id, request))
}

/// What applying a control request changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Applied {
    /// The answer frame's text.
    pub(crate) reply: String,
    /// Streams newly subscribed (indices into the served names), in request order.
    pub added: Vec<usize>,
    /// Streams unsubscribed.
    pub removed: Vec<usize>,
}

impl Subscriptions {
    /// Applies a control message to this connection's subscriptions and returns the answer.
    /// A SUBSCRIBE naming a stream this server does not serve is refused as a whole with
    /// `{"code":2,"msg":"Invalid request: invalid stream"}`, one that would pass
    /// `max` streams (at most [`MAX_STREAMS`]) with code 2 too; subscribing twice or
    /// unsubscribing a stream that is not subscribed is not an error (nothing changes).
    pub(crate) fn apply(&mut self, text: &str, served: &[String], max: usize) -> Applied {
        let (id, request) = match parse_control(text) {
            Ok(parsed) => parsed,
            Err(e) => {
                return Applied {
                    reply: e.text(),
                    ..Applied::default()
                }
            }
        };
        let ok = |added: Vec<usize>, removed: Vec<usize>| Applied {
            reply: control_result(&id, &serde_json::Value::Null),
            added,
            removed,
        };
        let refuse = |msg: &str| Applied {
            reply: ControlError::new(&id, 2, msg).text(),
            ..Applied::default()
        };
        match request {
            Request::Subscribe(names) => {
                let mut added = Vec::new();
                for name in &names {
                    let Some(i) = served.iter().position(|s| s == name) else {
                        return refuse("Invalid request: invalid stream");
                    };
                    if !self.streams.contains(&i) && !added.contains(&i) {
                        added.push(i);
                    }
                }
                if self.streams.len() + added.len() > max {
                    return refuse(&format!(
                        "Invalid request: too many streams (at most {max} per connection)"
                    ));
                }
                self.streams.extend_from_slice(&added);
                ok(added, Vec::new())
            }
            Request::Unsubscribe(names) => {
                let removed: Vec<usize> = self
                    .streams
                    .iter()
                    .copied()
                    .filter(|&i| names.iter().any(|n| *n == served[i]))
                    .collect();
                self.streams.retain(|i| !removed.contains(i));
                ok(Vec::new(), removed)
            }
            Request::List => {
                let list: Vec<serde_json::Value> = self
                    .streams
                    .iter()
                    .map(|&i| serde_json::Value::String(served[i].clone()))
                    .collect();
                Applied {
                    reply: control_result(&id, &serde_json::Value::Array(list)),
                    ..Applied::default()
                }
            }
            Request::SetCombined(on) => {
                self.combined = on;
                ok(Vec::new(), Vec::new())
            }
            Request::GetCombined => Applied {
                reply: control_result(&id, &serde_json::Value::Bool(self.combined)),
                ..Applied::default()
            },
        }
    }
}

/// Counts a connection's incoming messages over a sliding second of real time: the sixth
/// within 1000 ms of the first of five is one too many.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MessageRate {
    /// Real times (ms since any fixed origin) of the counted messages of the last second.
    recent: std::collections::VecDeque<u64>,
}

impl MessageRate {
    /// Counts one message at real time `now_ms`; false when it exceeds the limit.
    pub(crate) fn admit(&mut self, now_ms: u64) -> bool {
        while self
            .recent
            .front()
            .is_some_and(|&t| t.saturating_add(1000) <= now_ms)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= MAX_MESSAGES_PER_SECOND {
            return false;
        }
        self.recent.push_back(now_ms);
        true
    }
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
        let served = vec![(sym(), Interval::ONE_MINUTE)];
        let parse = |query: &str| parse_klines_query(query, &served).map(|(_, q)| q);
        let code = |query: &str| parse(query).map_err(|e| (e.status, e.code));
        assert_eq!(parse("symbol=AVAXUSDT&interval=1m"), Ok(q(None, None, 500)));
        assert_eq!(
            parse("symbol=AVAXUSDT&interval=1m&startTime=60000&endTime=120000&limit=1000"),
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
        let e = parse("symbol=AVAXUSDT&interval=1m&limit=None").expect_err("illegal limit");
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
    #[test]
    fn several_series_answer_invalid_symbol_or_interval() {
        let btc = Symbol::parse("BTCUSDT").expect("symbol");
        let served = vec![
            (sym(), Interval::ONE_MINUTE),
            (btc.clone(), Interval::ONE_MINUTE),
            (btc, Interval::parse("1h").expect("interval")),
        ];
        let series = |query: &str| {
            parse_klines_query(query, &served)
                .map(|(i, _)| i)
                .map_err(|e| e.code)
        };
        assert_eq!(series("symbol=AVAXUSDT&interval=1m"), Ok(0));
        assert_eq!(series("symbol=BTCUSDT&interval=1m"), Ok(1));
        assert_eq!(series("symbol=BTCUSDT&interval=1h"), Ok(2));
        assert_eq!(series("symbol=AVAXUSDT&interval=1h"), Err(-1120));
        assert_eq!(series("symbol=ETHUSDT&interval=1m"), Err(-1121));
        let info = |query: &str| exchange_info(query, &served, 7, 6000).map_err(|e| e.code);
        let listed = |body: String| -> Vec<String> {
            let v: serde_json::Value = serde_json::from_str(&body).expect("json");
            v["symbols"]
                .as_array()
                .expect("symbols")
                .iter()
                .map(|s| s["symbol"].as_str().expect("symbol").to_string())
                .collect()
        };
        assert_eq!(listed(info("").expect("all")), vec!["AVAXUSDT", "BTCUSDT"]);
        assert_eq!(
            listed(info("symbols=%5B%22BTCUSDT%22%5D").expect("one")),
            vec!["BTCUSDT"]
        );
        assert_eq!(info("symbol=ETHUSDT"), Err(-1121));
        assert_eq!(info("symbols=[\"ETHUSDT\"]"), Err(-1121));
        assert_eq!(info("symbols=BTCUSDT"), Err(-1100));
        assert_eq!(info("symbol=BTCUSDT&symbols=[\"BTCUSDT\"]"), Err(-1128));
        assert_eq!(
            exchange_info("", &served[..1], 7, 6000).expect("one"),
            "{\"timezone\":\"UTC\",\"serverTime\":7,\"rateLimits\":[{\"rateLimitType\":\
             \"REQUEST_WEIGHT\",\"interval\":\"MINUTE\",\"intervalNum\":1,\"limit\":6000}],\
             \"exchangeFilters\":[],\"symbols\":[{\"symbol\":\"AVAXUSDT\",\"status\":\"TRADING\"}]}"
        );
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("s{i}usdt@kline_1m")).collect()
    }

    #[test]
    fn ws_targets_raw_combined_and_refused() {
        let served = names(3);
        let subs = |streams: Vec<usize>, combined| Ok(Subscriptions { streams, combined });
        assert_eq!(
            parse_ws_target("/ws/s1usdt@kline_1m", "", &served, MAX_STREAMS),
            subs(vec![1], false)
        );
        assert_eq!(
            parse_ws_target("/ws/s1usdt%40kline_1m", "", &served, MAX_STREAMS),
            subs(vec![1], false)
        );
        assert_eq!(
            parse_ws_target("/ws", "", &served, MAX_STREAMS),
            subs(vec![], false)
        );
        assert_eq!(
            parse_ws_target("/stream", "", &served, MAX_STREAMS),
            subs(vec![], true)
        );
        assert_eq!(
            parse_ws_target(
                "/stream",
                "streams=s2usdt@kline_1m/s0usdt@kline_1m/s2usdt@kline_1m&timeUnit=MILLISECOND",
                &served,
                MAX_STREAMS
            ),
            subs(vec![2, 0], true)
        );
        assert_eq!(
            parse_ws_target(
                "/stream",
                "streams=s2usdt%40kline_1m%2Fs1usdt%40kline_1m",
                &served,
                MAX_STREAMS
            ),
            subs(vec![2, 1], true)
        );
        let refused = |path: &str, query: &str| {
            parse_ws_target(path, query, &served, MAX_STREAMS).expect_err("refused")
        };
        assert_eq!(
            refused("/ws/btcusdt@kline_1m", ""),
            "unknown stream \"/ws/btcusdt@kline_1m\": this server streams s0usdt@kline_1m, \
             s1usdt@kline_1m, s2usdt@kline_1m"
        );
        assert!(
            refused("/stream", "streams=s0usdt@kline_1m/S1USDT@kline_1m")
                .starts_with("unknown stream \"S1USDT@kline_1m\"")
        );
        assert!(refused("/api/v3/time", "").starts_with("unknown stream"));
        let many = names(MAX_STREAMS + 1);
        let all = many.join("/");
        assert_eq!(
            parse_ws_target("/stream", &format!("streams={all}"), &many, MAX_STREAMS),
            Err("too many streams: 1025 asked, at most 1024 per connection".to_string())
        );
        let most = many[..MAX_STREAMS].join("/");
        let ok = parse_ws_target("/stream", &format!("streams={most}"), &many, MAX_STREAMS)
            .expect("1024");
        assert_eq!(ok.streams.len(), MAX_STREAMS);
        // A server set to fewer (KLINECAST_WS_MAX_STREAMS=2) refuses a third, in the URL and
        // in a SUBSCRIBE.
        let three = format!("streams={}", served.join("/"));
        assert_eq!(
            parse_ws_target("/stream", &three, &served, 2),
            Err("too many streams: 3 asked, at most 2 per connection".to_string())
        );
        let two = format!("streams={}", served[..2].join("/"));
        let mut subs = parse_ws_target("/stream", &two, &served, 2).expect("two");
        assert_eq!(subs.streams, vec![0, 1]);
        let a = subs.apply(
            r#"{"method":"SUBSCRIBE","params":["s2usdt@kline_1m"],"id":7}"#,
            &served,
            2,
        );
        assert_eq!(
            a.reply,
            r#"{"error":{"code":2,"msg":"Invalid request: too many streams (at most 2 per connection)"},"id":7}"#
        );
        assert_eq!(subs.streams, vec![0, 1]);
    }

    #[test]
    fn control_messages_use_binance_error_codes() {
        let code = |text: &str| {
            parse_control(text)
                .map(|(_, r)| r)
                .map_err(|e| (e.code, e.id))
        };
        let null = serde_json::Value::Null;
        assert_eq!(
            code(r#"{"method":"SUBSCRIBE","params":["a@kline_1m"],"id":-7}"#),
            Ok(Request::Subscribe(vec!["a@kline_1m".to_string()]))
        );
        assert_eq!(
            code(r#"{"method":"LIST_SUBSCRIPTIONS","id":null}"#),
            Ok(Request::List)
        );
        assert_eq!(
            code(r#"{"method":"SET_PROPERTY","params":["combined",false],"id":"x1"}"#),
            Ok(Request::SetCombined(false))
        );
        assert_eq!(code("{\"method\":"), Err((3, null.clone())));
        assert_eq!(code("[1]"), Err((2, null.clone())));
        assert_eq!(
            code(r#"{"method":"LIST_SUBSCRIPTIONS"}"#),
            Err((2, null.clone()))
        );
        assert_eq!(
            code(r#"{"method":"LIST_SUBSCRIPTIONS","id":1.5}"#),
            Err((2, null.clone()))
        );
        assert_eq!(
            code(r#"{"method":"LIST_SUBSCRIPTIONS","id":"no-dashes"}"#),
            Err((2, null.clone()))
        );
        let id = serde_json::Value::from(4);
        assert_eq!(code(r#"{"params":[],"id":4}"#), Err((2, id.clone())));
        assert_eq!(
            code(r#"{"method":"SUBSCRIBEX","id":4}"#),
            Err((2, id.clone()))
        );
        assert_eq!(
            code(r#"{"method":"LIST_SUBSCRIPTIONS","id":4,"x":1}"#),
            Err((2, id.clone()))
        );
        assert_eq!(
            code(r#"{"method":"SUBSCRIBE","params":"a","id":4}"#),
            Err((2, id.clone()))
        );
        assert_eq!(
            code(r#"{"method":"SET_PROPERTY","params":["combined",1],"id":4}"#),
            Err((1, id.clone()))
        );
        assert_eq!(
            code(r#"{"method":"GET_PROPERTY","params":["colour"],"id":4}"#),
            Err((0, id.clone()))
        );
        assert_eq!(
            code(r#"{"method":"GET_PROPERTY","params":[5],"id":4}"#),
            Err((2, id.clone()))
        );
        assert_eq!(
            code(r#"{"method":"GET_PROPERTY","params":["combined","x"],"id":4}"#),
            Err((2, id))
        );
        let e = parse_control("nope").expect_err("invalid json");
        assert!(
            e.text()
                .starts_with(r#"{"error":{"code":3,"msg":"Invalid JSON: "#),
            "{}",
            e.text()
        );
        assert!(e.text().ends_with(r#""},"id":null}"#), "{}", e.text());
    }

    #[test]
    fn subscriptions_apply_requests() {
        let served = names(3);
        let mut subs = Subscriptions {
            streams: vec![1],
            combined: false,
        };
        let a = subs.apply(
            r#"{"method":"SUBSCRIBE","params":["s2usdt@kline_1m","s1usdt@kline_1m","s2usdt@kline_1m"],"id":1}"#,
            &served,
            MAX_STREAMS,
        );
        assert_eq!(
            a,
            Applied {
                reply: r#"{"result":null,"id":1}"#.to_string(),
                added: vec![2],
                removed: vec![]
            }
        );
        let a = subs.apply(
            r#"{"method":"SUBSCRIBE","params":["s0usdt@kline_1m","x@kline_1m"],"id":2}"#,
            &served,
            MAX_STREAMS,
        );
        assert_eq!(
            a.reply,
            r#"{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":2}"#
        );
        assert!(a.added.is_empty());
        assert_eq!(
            subs.streams,
            vec![1, 2],
            "a refused SUBSCRIBE changes nothing"
        );
        let a = subs.apply(
            r#"{"method":"LIST_SUBSCRIPTIONS","id":"q"}"#,
            &served,
            MAX_STREAMS,
        );
        assert_eq!(
            a.reply,
            r#"{"result":["s1usdt@kline_1m","s2usdt@kline_1m"],"id":"q"}"#
        );
        let a = subs.apply(
            r#"{"method":"UNSUBSCRIBE","params":["s1usdt@kline_1m","s0usdt@kline_1m"],"id":3}"#,
            &served,
            MAX_STREAMS,
        );
        assert_eq!(
            (a.reply.as_str(), a.removed),
            (r#"{"result":null,"id":3}"#, vec![1])
        );
        assert_eq!(subs.streams, vec![2]);
        let a = subs.apply(
            r#"{"method":"GET_PROPERTY","params":["combined"],"id":4}"#,
            &served,
            MAX_STREAMS,
        );
        assert_eq!(a.reply, r#"{"result":false,"id":4}"#);
        subs.apply(
            r#"{"method":"SET_PROPERTY","params":["combined",true],"id":5}"#,
            &served,
            MAX_STREAMS,
        );
        assert!(subs.combined);
        // At most 1024 streams on a connection.
        let many = names(MAX_STREAMS + 1);
        let mut subs = Subscriptions {
            streams: (0..MAX_STREAMS - 1).collect(),
            combined: true,
        };
        let ask = |names: &[String]| {
            format!(
                r#"{{"method":"SUBSCRIBE","params":{},"id":9}}"#,
                serde_json::json!(names)
            )
        };
        let a = subs.apply(&ask(&many[MAX_STREAMS - 1..]), &many, MAX_STREAMS);
        assert!(
            a.reply.contains("\"code\":2") && a.added.is_empty(),
            "{}",
            a.reply
        );
        let a = subs.apply(
            &ask(&many[MAX_STREAMS - 1..MAX_STREAMS]),
            &many,
            MAX_STREAMS,
        );
        assert_eq!(
            (a.reply.as_str(), a.added),
            (r#"{"result":null,"id":9}"#, vec![MAX_STREAMS - 1])
        );
        assert_eq!(
            envelope("s0usdt@kline_1m", "{\"e\":1}"),
            "{\"stream\":\"s0usdt@kline_1m\",\"data\":{\"e\":1}}"
        );
    }

    #[test]
    fn message_rate_allows_five_in_any_second() {
        let mut rate = MessageRate::default();
        for t in [0, 10, 20, 30, 40] {
            assert!(rate.admit(t));
        }
        assert!(!rate.admit(999), "the sixth within a second of the first");
        let mut rate = MessageRate::default();
        for t in [0, 10, 20, 30, 40] {
            assert!(rate.admit(t));
        }
        assert!(rate.admit(1000), "the first has left the window");
        assert!(!rate.admit(1005));
        // A steady 5 a second is fine for ever.
        let mut rate = MessageRate::default();
        assert!((0..100).all(|i| rate.admit(i * 200)));
    }
}
