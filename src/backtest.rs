//! `klinecast backtest` (STUB).

use crate::cli::BacktestArgs;
use crate::error::Error;

pub fn run(args: &BacktestArgs) -> Result<(), Error> {
    let _ = args;
    Err(Error::Config("backtest is not built yet".to_string()))
}
