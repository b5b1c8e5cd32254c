//! Pure parsers for Binance JSON: REST klines (arrays of 12 elements), `{"code","msg"}` error
//! bodies, `{"serverTime"}`, and WebSocket events (kline, serverShutdown, subscribe replies,
//! errors; raw or wrapped in a combined-stream `{"stream","data"}`). No I/O, no clock: text in,
//! validated values out.

use std::fmt;

use serde_json::{Map, Value};

use crate::kline::{Kline, KlineError};

/// Why a Binance body could not be used.
#[derive(Debug, Clone, PartialEq)]
pub enum WireError {
    /// Not JSON at all (often a body cut off by a dropped connection).
    Json(String),
    /// JSON, but not the expected shape.
    Shape(String),
    /// A kline that fails validation; `index` is its position in the response.
    Kline { index: usize, source: KlineError },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Json(e) => write!(f, "the response is not valid JSON ({e})"),
            WireError::Shape(e) => write!(f, "unexpected response layout: {e}"),
            WireError::Kline { index, source } => {
                write!(f, "kline {index} of the response is invalid: {source}")
            }
        }
    }
}

impl std::error::Error for WireError {}

fn json(body: &str) -> Result<Value, WireError> {
    serde_json::from_str(body).map_err(|e| WireError::Json(e.to_string()))
}

fn shape(msg: impl Into<String>) -> WireError {
    WireError::Shape(msg.into())
}

/// Parses a `GET /api/v3/klines` body: an array of arrays `[openTime, "open", "high", "low",
/// "close", "volume", closeTime, "quoteVolume", trades, "takerBase", "takerQuote", "ignore"]`.
/// Extra trailing elements are tolerated; every kline is validated.
pub fn parse_klines(body: &str) -> Result<Vec<Kline>, WireError> {
    let value = json(body)?;
    let Value::Array(rows) = value else {
        return Err(shape("expected an array of klines"));
    };
    let mut out = Vec::with_capacity(rows.len());
    for (index, row) in rows.iter().enumerate() {
        let Value::Array(cells) = row else {
            return Err(shape(format!("kline {index} is not an array")));
        };
        if cells.len() < 11 {
            return Err(shape(format!(
                "kline {index} has {} elements, expected 12",
                cells.len()
            )));
        }
        let int = |i: usize, name: &str| {
            cells[i]
                .as_i64()
                .ok_or_else(|| shape(format!("kline {index}: {name} is not an integer")))
        };
        let text = |i: usize, name: &str| {
            cells[i]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| shape(format!("kline {index}: {name} is not a string")))
        };
        let trades = cells[8]
            .as_u64()
            .ok_or_else(|| shape(format!("kline {index}: trades is not a count")))?;
        let kline = Kline {
            open_time: int(0, "open time")?,
            open: text(1, "open")?,
            high: text(2, "high")?,
            low: text(3, "low")?,
            close: text(4, "close")?,
            volume: text(5, "volume")?,
            close_time: int(6, "close time")?,
            quote_volume: text(7, "quote volume")?,
            trades,
            taker_buy_base: text(9, "taker buy base volume")?,
            taker_buy_quote: text(10, "taker buy quote volume")?,
        };
        kline
            .validate()
            .map_err(|source| WireError::Kline { index, source })?;
        out.push(kline);
    }
    Ok(out)
}

/// The `(code, msg)` of a Binance error body `{"code":-1121,"msg":"Invalid symbol."}`.
pub(crate) fn parse_error_body(body: &str) -> Option<(i32, String)> {
    let value: Value = serde_json::from_str(body).ok()?;
    let code = value.get("code")?.as_i64()?;
    let msg = value.get("msg")?.as_str()?;
    Some((i32::try_from(code).ok()?, msg.to_string()))
}

/// The `serverTime` of a `GET /api/v3/time` body.
pub(crate) fn parse_server_time(body: &str) -> Result<i64, WireError> {
    json(body)?
        .get("serverTime")
        .and_then(Value::as_i64)
        .ok_or_else(|| shape("expected {\"serverTime\": <ms>}"))
}

/// One WebSocket text frame from a market stream.
// Reason: events are parsed one at a time and consumed at once; boxing the kline would only
// add an allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum WsEvent {
    /// A kline update; `is_final` (`x`) marks the last update of that candle.
    Kline {
        kline: Kline,
        is_final: bool,
        event_time: i64,
        symbol: String,
        interval: String,
    },
    /// The server will close this connection soon: reconnect now.
    ServerShutdown { event_time: i64 },
    /// `{"result":…,"id":…}`: the reply to a SUBSCRIBE or other control message.
    SubscribeReply,
    /// `{"code":…,"msg":…}`: an error about a control message.
    Error { code: i64, msg: String },
    /// Anything else (other event types): ignore.
    Other,
}

/// Parses a WebSocket text frame, raw or combined (`{"stream":…,"data":…}`), branching on the
/// keys present.
pub fn parse_ws_event(text: &str) -> Result<WsEvent, WireError> {
    let value = json(text)?;
    let Value::Object(mut obj) = value else {
        return Err(shape("a WebSocket message is not a JSON object"));
    };
    if obj.contains_key("stream") {
        if let Some(Value::Object(data)) = obj.remove("data") {
            obj = data;
        } else {
            return Err(shape("a combined-stream message has no `data` object"));
        }
    }
    if let Some(kind) = obj.get("e") {
        let event_time = obj.get("E").and_then(Value::as_i64);
        return match kind.as_str() {
            Some("kline") => ws_kline(&obj),
            Some("serverShutdown") => Ok(WsEvent::ServerShutdown {
                event_time: event_time
                    .ok_or_else(|| shape("serverShutdown without an `E` event time"))?,
            }),
            _ => Ok(WsEvent::Other),
        };
    }
    if obj.contains_key("result") && obj.contains_key("id") {
        return Ok(WsEvent::SubscribeReply);
    }
    if let Some(code) = obj.get("code").and_then(Value::as_i64) {
        let msg = obj
            .get("msg")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        return Ok(WsEvent::Error { code, msg });
    }
    Ok(WsEvent::Other)
}

fn ws_kline(obj: &Map<String, Value>) -> Result<WsEvent, WireError> {
    let event_time = obj
        .get("E")
        .and_then(Value::as_i64)
        .ok_or_else(|| shape("kline event without an `E` event time"))?;
    let Some(Value::Object(k)) = obj.get("k") else {
        return Err(shape("kline event without a `k` object"));
    };
    let int = |key: &str| {
        k.get(key)
            .and_then(Value::as_i64)
            .ok_or_else(|| shape(format!("kline event: `k.{key}` is not an integer")))
    };
    let text = |key: &str| {
        k.get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| shape(format!("kline event: `k.{key}` is not a string")))
    };
    let trades = k
        .get("n")
        .and_then(Value::as_u64)
        .ok_or_else(|| shape("kline event: `k.n` is not a count"))?;
    let is_final = k
        .get("x")
        .and_then(Value::as_bool)
        .ok_or_else(|| shape("kline event: `k.x` is not a boolean"))?;
    let kline = Kline {
        open_time: int("t")?,
        open: text("o")?,
        high: text("h")?,
        low: text("l")?,
        close: text("c")?,
        volume: text("v")?,
        close_time: int("T")?,
        quote_volume: text("q")?,
        trades,
        taker_buy_base: text("V")?,
        taker_buy_quote: text("Q")?,
    };
    kline
        .validate()
        .map_err(|source| WireError::Kline { index: 0, source })?;
    let symbol = match obj.get("s").and_then(Value::as_str) {
        Some(s) => s.to_string(),
        None => text("s")?,
    };
    Ok(WsEvent::Kline {
        kline,
        is_final,
        event_time,
        symbol,
        interval: text("i")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `GET /api/v3/klines` body in Binance's layout (BTCUSDT 1m), with a no-trade kline
    /// (zero volume, zero trades, all prices equal) as the last row and an extra element.
    const KLINES: &str = r#"[[1698796800000,"34639.77000000","34665.31000000","34616.60000000","34646.09000000","55.61233000",1698796859999,"1926598.86386280",1871,"33.51522000","1160978.25587870","0"],
[1698796860000,"34646.09000000","34646.10000000","34600.01000000","34611.99000000","37.20416000",1698796919999,"1287918.05627520",1447,"12.47394000","431814.30441270","0"],
[1698796920000,"34611.99000000","34611.99000000","34611.99000000","34611.99000000","0.00000000",1698796979999,"0.00000000",0,"0.00000000","0.00000000","0","extra"]]"#;

    /// Binance's documented example of `/api/v3/klines`.
    const DOC_KLINES: &str = r#"[
  [
    1499040000000,
    "0.01634790",
    "0.80000000",
    "0.01575800",
    "0.01577100",
    "148976.11427815",
    1499644799999,
    "2434.19055334",
    308,
    "1756.87402397",
    "28.46694368",
    "0"
  ]
]"#;

    /// Real 1s kline events captured on 2023-04-23: a no-trade kline (`f`/`L` are -1, no `B`)
    /// and a normal one.
    const WS_NO_TRADE: &str = r#"{"e":"kline","E":1682244928001,"s":"ETHUSDT","k":{"t":1682244927000,"T":1682244927999,"s":"ETHUSDT","i":"1s","f":-1,"L":-1,"o":"1870.76000000","c":"1870.76000000","h":"1870.76000000","l":"1870.76000000","v":"0.00000000","n":0,"x":true,"q":"0.00000000","V":"0.00000000","Q":"0.00000000"}}"#;
    const WS_TRADES: &str = r#"{"e":"kline","E":1682244928001,"s":"BTCUSDT","k":{"t":1682244927000,"T":1682244927999,"s":"BTCUSDT","i":"1s","f":3091449369,"L":3091449370,"o":"27631.01000000","c":"27631.00000000","h":"27631.01000000","l":"27631.00000000","v":"0.23040000","n":2,"x":true,"q":"6366.18251000","V":"0.01100000","Q":"303.94111000"}}"#;
    /// Binance's documented kline event example (open candle, with `B`).
    const WS_DOC: &str = r#"{"e":"kline","E":1672515782136,"s":"BNBBTC","k":{"t":1672515780000,"T":1672515839999,"s":"BNBBTC","i":"1m","f":100,"L":200,"o":"0.0010","c":"0.0020","h":"0.0025","l":"0.0015","v":"1000","n":100,"x":false,"q":"1.0000","V":"500","Q":"0.500","B":"123456"}}"#;

    #[test]
    fn parses_rest_klines_including_a_no_trade_one() {
        let klines = parse_klines(KLINES).expect("valid body");
        assert_eq!(klines.len(), 3);
        assert_eq!(
            klines[0].to_csv_line(),
            "1698796800000,34639.77000000,34665.31000000,34616.60000000,34646.09000000,\
             55.61233000,1698796859999,1926598.86386280,1871,33.51522000,1160978.25587870"
        );
        let quiet = &klines[2];
        assert_eq!(quiet.trades, 0);
        assert_eq!(quiet.volume, "0.00000000");
        assert_eq!(quiet.close_time, 1698796979999);
        let doc = parse_klines(DOC_KLINES).expect("documented example");
        assert_eq!(doc[0].close, "0.01577100");
        assert_eq!(doc[0].trades, 308);
        assert_eq!(parse_klines("[]"), Ok(vec![]));
    }

    #[test]
    fn refuses_bad_kline_bodies() {
        // Torn body (connection dropped mid-way).
        assert!(matches!(
            parse_klines(&KLINES[..100]),
            Err(WireError::Json(_))
        ));
        assert!(matches!(
            parse_klines(r#"{"code":-1121,"msg":"Invalid symbol."}"#),
            Err(WireError::Shape(_))
        ));
        let short = r#"[[1499040000000,"1","1","1","1","1",1499644799999,"1",3,"1"]]"#;
        assert!(matches!(parse_klines(short), Err(WireError::Shape(_))));
        let price_as_number = KLINES.replace(r#""34639.77000000""#, "34639.77");
        assert!(matches!(
            parse_klines(&price_as_number),
            Err(WireError::Shape(_))
        ));
        let nan = KLINES.replace(r#""34646.09000000","55"#, r#""NaN","55"#);
        assert!(matches!(
            parse_klines(&nan),
            Err(WireError::Kline { index: 0, .. })
        ));
        let negative_trades = KLINES.replace(",1871,", ",-1,");
        assert!(parse_klines(&negative_trades).is_err());
    }

    #[test]
    fn error_and_time_bodies() {
        assert_eq!(
            parse_error_body(r#"{"code":-1121,"msg":"Invalid symbol."}"#),
            Some((-1121, "Invalid symbol.".to_string()))
        );
        assert_eq!(parse_error_body("<html>502 Bad Gateway</html>"), None);
        assert_eq!(parse_error_body(r#"{"code":"x","msg":"y"}"#), None);
        assert_eq!(
            parse_server_time(r#"{"serverTime": 1499827319559}"#),
            Ok(1499827319559)
        );
        assert!(parse_server_time("{}").is_err());
        assert!(parse_server_time("{\"serverTi").is_err());
    }

    #[test]
    fn ws_kline_events_raw_and_combined() {
        let Ok(WsEvent::Kline {
            kline,
            is_final,
            event_time,
            symbol,
            interval,
        }) = parse_ws_event(WS_NO_TRADE)
        else {
            panic!("no-trade kline parses")
        };
        assert!(is_final);
        assert_eq!(event_time, 1682244928001);
        assert_eq!((symbol.as_str(), interval.as_str()), ("ETHUSDT", "1s"));
        assert_eq!(
            kline.to_csv_line(),
            "1682244927000,1870.76000000,1870.76000000,1870.76000000,1870.76000000,0.00000000,\
             1682244927999,0.00000000,0,0.00000000,0.00000000"
        );
        let combined = format!(r#"{{"stream":"btcusdt@kline_1s","data":{WS_TRADES}}}"#);
        let Ok(WsEvent::Kline { kline, .. }) = parse_ws_event(&combined) else {
            panic!("combined kline parses")
        };
        assert_eq!((kline.trades, kline.close.as_str()), (2, "27631.00000000"));
        let Ok(WsEvent::Kline {
            kline, is_final, ..
        }) = parse_ws_event(WS_DOC)
        else {
            panic!("documented example parses")
        };
        assert!(!is_final);
        assert_eq!(kline.taker_buy_quote, "0.500");
        let extra = WS_DOC.replace(r#""B":"123456""#, r#""B":"1","zz":[1,{"a":2}]"#);
        assert!(matches!(parse_ws_event(&extra), Ok(WsEvent::Kline { .. })));
    }

    #[test]
    fn ws_control_frames() {
        assert_eq!(
            parse_ws_event(r#"{"e":"serverShutdown","E":1780000000000}"#),
            Ok(WsEvent::ServerShutdown {
                event_time: 1780000000000
            })
        );
        assert_eq!(
            parse_ws_event(r#"{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":17}}"#),
            Ok(WsEvent::ServerShutdown { event_time: 17 })
        );
        assert_eq!(
            parse_ws_event(r#"{"result":null,"id":1}"#),
            Ok(WsEvent::SubscribeReply)
        );
        assert_eq!(
            parse_ws_event(r#"{"code":2,"msg":"Invalid request"}"#),
            Ok(WsEvent::Error {
                code: 2,
                msg: "Invalid request".to_string()
            })
        );
        assert_eq!(parse_ws_event(r#"{"e":"trade","E":1}"#), Ok(WsEvent::Other));
        assert!(matches!(parse_ws_event("[1]"), Err(WireError::Shape(_))));
        assert!(matches!(parse_ws_event("{\"e\":"), Err(WireError::Json(_))));
        let missing_x = WS_TRADES.replace(r#""x":true,"#, "");
        assert!(matches!(
            parse_ws_event(&missing_x),
            Err(WireError::Shape(_))
        ));
    }
}
