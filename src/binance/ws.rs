//! The kline WebSocket client on tungstenite (STUB).
