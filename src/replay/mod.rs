//! The fake Binance server that the project owns: REST and WebSocket from a kline CSV under a
//! virtual clock, with fault switches (STUB).

use crate::cli::ReplayArgs;
use crate::error::Error;

pub fn run(args: &ReplayArgs) -> Result<(), Error> {
    let _ = args;
    Err(Error::Config("replay-server is not built yet".to_string()))
}
