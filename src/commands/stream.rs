//! `klinecast stream`: builds the stream's configuration from the command line and the
//! environment, runs [`crate::live`] and prints what the run did.
//!
//! Hidden tuning knobs (environment, for tests and slow links; milliseconds):
//! `KLINECAST_WS_IDLE_MS` (watchdog, default 30000), `KLINECAST_WS_POLL_MS` (socket read
//! timeout, default 1000), `KLINECAST_CONNECT_TIMEOUT_MS` (default 10000),
//! `KLINECAST_BACKOFF_MS` / `KLINECAST_BACKOFF_MAX_MS` (reconnect delay, default 1000 / 60000),
//! `KLINECAST_ROTATE_MS` (planned reconnect, default 23 h 30 m), `KLINECAST_MAX_KLINES`
//! (stop after that many new closed klines of every symbol), `KLINECAST_SAVE_EVERY` (save the ensemble
//! every N windows, default 1; a count, not milliseconds), and `KLINECAST_WS_MAX_STREAMS`
//! (streams per WebSocket connection, 1 to 1024, default 1024: more symbols open more
//! connections; a count).

use std::time::Duration;

use crate::binance::ws::{self, WsConfig};
use crate::cli::StreamArgs;
use crate::ensemble::report::scoreboard_table;
use crate::error::Error;
use crate::layout::Dirs;
use crate::live::{self, run_stream, RunOutcome, StreamConfig, SymbolConfig, Timing};
use crate::settings::{self, LearnSettings};

/// Builds the configuration from the parsed command line and the environment (see the module
/// doc for the knobs; each defaults to the value beside its type, [`WsConfig::default`] and
/// [`Timing::default`]).
pub(crate) fn config(
    args: &StreamArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<StreamConfig, Error> {
    let ms = |name: &str, default: u64| -> Result<u64, Error> {
        match env(name) {
            None => Ok(default),
            Some(text) => match text.trim().parse::<u64>() {
                Ok(v) if v > 0 => Ok(v),
                _ => Err(Error::Config(format!(
                    "{name}={text:?} is invalid: expected a positive number of milliseconds"
                ))),
            },
        }
    };
    let millis = |name: &str, default: Duration| -> Result<Duration, Error> {
        Ok(Duration::from_millis(ms(name, default.as_millis() as u64)?))
    };
    let (ws, timing) = (WsConfig::default(), Timing::default());
    let idle = millis("KLINECAST_WS_IDLE_MS", ws.idle_timeout)?;
    let max_klines = match env("KLINECAST_MAX_KLINES") {
        None => None,
        Some(_) => Some(ms("KLINECAST_MAX_KLINES", 1)?),
    };
    let dirs = Dirs {
        data: args.data_dir.clone(),
        models: args.models_dir.clone(),
        log: args.log_dir.clone(),
    };
    Ok(StreamConfig {
        symbols: SymbolConfig::all(&dirs, &args.symbols, args.interval),
        corr: args.corr.clone(),
        interval: args.interval,
        dirs,
        rest_url: args.rest_url.clone(),
        ws_url: args.ws_url.clone(),
        learn: LearnSettings {
            threads: settings::fit_threads(),
            ..args.learn.clone()
        },
        max_runtime: args.max_runtime,
        max_klines,
        ws: WsConfig {
            connect_timeout: millis("KLINECAST_CONNECT_TIMEOUT_MS", ws.connect_timeout)?,
            poll: millis("KLINECAST_WS_POLL_MS", ws.poll.min(idle))?,
            idle_timeout: idle,
            max_streams: ws::max_streams_from(env(ws::MAX_STREAMS_ENV).as_deref())
                .map_err(Error::Config)?,
            ..ws
        },
        timing: Timing {
            backoff_base: millis("KLINECAST_BACKOFF_MS", timing.backoff_base)?,
            backoff_max: millis("KLINECAST_BACKOFF_MAX_MS", timing.backoff_max)?,
            rotate_after: millis("KLINECAST_ROTATE_MS", timing.rotate_after)?,
        },
        save_every: ms("KLINECAST_SAVE_EVERY", 1)?,
        stderr: true,
    })
}

/// Runs `klinecast stream`.
pub(crate) fn run(args: &StreamArgs) -> Result<(), Error> {
    let config = config(args, &|name| std::env::var(name).ok())?;
    match run_stream(&config, &mut |_| {})? {
        RunOutcome::AlreadyRunning { holder } => {
            eprintln!(
                "klinecast stream: already running for {} ({holder}); exiting",
                config.dirs.data.display()
            );
        }
        RunOutcome::Finished(summary) => {
            println!(
                "stream stopped ({:?}) after {:.0} s: {} klines, {} windows; {}",
                summary.stop,
                summary.seconds,
                summary.ensembler.klines,
                summary.ensembler.windows,
                summary.stream.summary()
            );
            if summary.ensembler.corr_late > 0 {
                println!(
                    "{} forecasts went ahead without a correlated symbol's kline of their minute \
                     (each named in its ensemble.log)",
                    summary.ensembler.corr_late
                );
            }
            if summary.symbols.len() > 1 {
                for (name, s) in &summary.symbols {
                    println!(
                        "{name}: {} klines ({} fed again), {} windows, {} forecasts written",
                        s.klines, s.replayed, s.windows, s.predictions_written
                    );
                }
            }
            println!("{}", live::timing_line(&summary));
            if !summary.ensembler.scoreboard.is_empty() {
                print!("{}", scoreboard_table(&summary.ensembler.scoreboard));
            }
        }
    }
    Ok(())
}
