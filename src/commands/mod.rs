//! The commands, on one floor: one module per command, each with a `run` taking its parsed
//! arguments. A command imports no other command; what two commands share lives in a library
//! module below them (the pages in [`crate::page`], a run's files in [`crate::run_files`], the
//! backtest in [`crate::backtest`], the backfill core in [`crate::backfill`], …).

pub(crate) mod backtest;
pub(crate) mod collect;
pub(crate) mod demo;
pub(crate) mod describe;
pub(crate) mod replay_server;
pub(crate) mod report;
pub(crate) mod status;
pub(crate) mod stream;
pub(crate) mod train;
