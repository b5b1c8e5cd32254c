//! klinecast: forecasts the next Binance kline close and keeps learning while it streams.
//! See README.md, section "Architecture", for the module map and its invariants.
//!
//! Layers, top to bottom: [`run`] dispatches to the [`commands`] (one floor, no command
//! imports another); below them the libraries they share: the pages ([`page`]), a run's files
//! ([`run_files`]), the backtest, the stream ([`live`]), the fake Binance ([`replay`]), the
//! backfill core, training; below those the pure core (features, models, ensemble, metrics,
//! statistics) and the file formats (store, persist, log).
#![forbid(unsafe_code)]

pub mod backfill;
pub(crate) mod backtest;
pub mod binance;
pub mod cli;
pub(crate) mod commands;
pub mod corr;
pub mod ensemble;
pub mod error;
pub mod features;
pub mod fsutil;
pub mod kline;
pub mod layout;
pub mod live;
pub mod log;
pub mod metrics;
pub mod models;
pub mod page;
pub mod persist;
pub mod replay;
pub mod rng;
pub mod run_files;
pub mod settings;
pub(crate) mod stats;
pub mod store;
#[cfg(test)]
pub(crate) mod testutil;
pub mod time;
pub mod train;
pub mod upgrade;

use cli::Command;
pub use error::Error;

/// Runs one parsed command (see [`commands`]).
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
        Command::Collect(args) => commands::collect::run(args),
        Command::Train(args) => commands::train::run(args),
        Command::Stream(args) => commands::stream::run(args),
        Command::Backtest(args) => commands::backtest::run(args),
        Command::ReplayServer(args) => commands::replay_server::run(args),
        Command::Demo(args) => commands::demo::run(args),
        Command::Describe(args) => commands::describe::run(args),
        Command::Report(args) => commands::report::run(args),
        Command::Status(args) => commands::status::run(args),
    }
}
