//! Binance I/O: the REST client, the WebSocket client, TLS set-up, and the pure JSON wire
//! parsers they share. No maths here.

use std::fmt;

pub mod rest;
pub mod tls;
pub mod wire;
pub mod ws;

/// Errors talking to Binance (or the replay server).
#[derive(Debug)]
pub enum BinanceError {
    /// Placeholder until the client lands.
    Other(String),
}

impl fmt::Display for BinanceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BinanceError::Other(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for BinanceError {}
