//! Pure parsers for Binance JSON: REST klines, `{code,msg}` errors, WebSocket kline events (STUB).
