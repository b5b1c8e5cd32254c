//! klinecast: forecasts the next Binance kline close and keeps learning while it streams.
//! See README.md, section "Architecture", for the module map and its invariants.
#![forbid(unsafe_code)]

pub mod backfill;
pub(crate) mod backtest;
pub mod binance;
pub(crate) mod chart;
pub mod cli;
pub(crate) mod collect;
pub(crate) mod demo;
pub(crate) mod describe;
pub mod ensemble;
pub mod error;
pub mod features;
pub mod fsutil;
pub mod kline;
pub mod live;
pub mod log;
pub mod metrics;
pub mod models;
pub mod persist;
pub mod replay;
pub mod report;
pub mod rng;
pub mod settings;
pub(crate) mod status;
pub mod store;
#[cfg(test)]
pub(crate) mod testutil;
pub mod time;
pub mod train;

use cli::Command;
pub use error::Error;

/// Runs one parsed command.
pub fn run(command: &Command) -> Result<(), Error> {
    match command {
        Command::Help => {
            println!("{}", cli::USAGE);
            Ok(())
        }
        Command::Version => {
            println!("klinecast {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Collect(args) => collect::run(args),
        Command::Train(args) => train::run(args),
        Command::Stream(args) => live::run(args),
        Command::Backtest(args) => backtest::run(args),
        Command::ReplayServer(args) => replay::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Describe(args) => describe::run(args),
        Command::Report(args) => report::run(args),
        Command::Status(args) => status::run(args),
    }
}
