//! `klinecast demo`: the whole pipeline offline in about two minutes, on the real klines that
//! ship in `data/`. In a work directory it seeds a kline store with the history before a
//! virtual clock (at 2/3 of the rows), trains the five models on the last part of that history,
//! starts the replay server in-process on 127.0.0.1 at high speed, and runs the very code of
//! `klinecast stream` against it, printing each forecast as it is scored and the scoreboard at
//! the end. It never touches the network beyond 127.0.0.1; no maths of its own.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::binance::ws::WsConfig;
use crate::cli::DemoArgs;
use crate::ensemble::report::scoreboard_table;
use crate::error::Error;
use crate::kline::{price_decimals, Interval, Kline, Series, Symbol};
use crate::layout::Dirs;
use crate::live::ensembler::LiveEvent;
use crate::live::{run_stream, RunOutcome, RunSummary, StreamConfig, SymbolConfig, Timing};
use crate::log::wall_clock_ms;
use crate::metrics::Accum;
use crate::models::ModelKind;
use crate::replay::{Faults, ReplayConfig, ReplayServer};
use crate::settings::{self, LearnSettings};
use crate::store::{self, KlineStore};
use crate::train::{self, TrainOptions};
use crate::{persist, time};

/// Klines streamed when `--klines` is not given (20 windows of 15).
pub(crate) const DEFAULT_KLINES: usize = 300;
/// History rows the demo trains on (the most recent before the clock).
pub(crate) const TRAIN_ROWS: usize = 20_000;
/// Rows the demo's SVR is fitted on.
pub(crate) const SVR_ROWS: usize = 2_000;

/// Runs `klinecast demo`.
pub(crate) fn run(args: &DemoArgs) -> Result<(), Error> {
    let (symbol, interval) = store::parse_file_name(&args.data)?;
    let klines = store::load_klines(&args.data)?;
    let n_stream = args.klines.unwrap_or(DEFAULT_KLINES);
    let clock_row = klines.len() * 2 / 3;
    if clock_row < 1000 || clock_row + 2 >= klines.len() {
        return Err(Error::Data(format!(
            "{}: {} klines are too few for the demo (at least 1500 are needed)",
            args.data.display(),
            klines.len()
        )));
    }
    let work = match &args.work_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!(
            "klinecast-demo-{}-{}",
            std::process::id(),
            wall_clock_ms()
        )),
    };
    let data_dir = work.join("data");
    let models_dir = work.join("models");
    let log_dir = work.join("log");
    println!(
        "klinecast demo: {} {} klines from {} ({} rows, {} .. {})",
        symbol,
        interval,
        args.data.display(),
        klines.len(),
        time::format_ms(klines[0].open_time),
        time::format_ms(klines[klines.len() - 1].open_time)
    );
    println!("work directory: {}", work.display());

    // 1. The store holds the history up to the virtual clock, as `collect` would have left it.
    seed_store(&data_dir, &symbol, interval, &klines[..clock_row])?;
    println!(
        "1/3 seeded {} with {clock_row} klines up to {}",
        store::kline_path(&data_dir, &symbol, interval).display(),
        time::format_ms(klines[clock_row - 1].open_time)
    );

    // 2. Train on the most recent history, as `klinecast train` would.
    let learn = LearnSettings {
        svr_rows: SVR_ROWS,
        threads: settings::fit_threads(),
        ..args.learn.clone()
    };
    train_models(&klines[..clock_row], &models_dir, &learn)?;

    // 3. Stream from the replay server at high speed.
    let table = ForecastTable::new(&klines[..clock_row]);
    let server = ReplayServer::start(ReplayConfig {
        klines,
        symbol: symbol.clone(),
        interval,
        start_row: clock_row,
        speed: args.speed,
        faults: Faults::default(),
        port: 0,
    })
    .map_err(|e| Error::io("starting the replay server on 127.0.0.1", e))?;
    let real_per_kline = interval.ms() as f64 / args.speed;
    println!(
        "3/3 streaming {n_stream} klines from the replay server {} at {}x (one kline per {:.2} s)",
        server.ws_url(),
        args.speed,
        real_per_kline / 1000.0
    );
    println!("{}", table.header());
    let dirs = Dirs {
        data: data_dir.clone(),
        models: models_dir.clone(),
        log: log_dir.clone(),
    };
    let config = fast_stream(
        dirs,
        &symbol,
        interval,
        (&server, args.speed),
        learn,
        n_stream,
    );
    let outcome = stream_printing(&config, &table)?;
    server.shutdown();
    let summary = match outcome {
        RunOutcome::Finished(s) => s,
        RunOutcome::AlreadyRunning { holder } => {
            return Err(Error::Config(format!(
                "{} is in use by a running klinecast stream ({holder}); use another --work-dir",
                data_dir.display()
            )))
        }
    };
    print_summary(&summary, [&data_dir, &models_dir, &log_dir]);
    if args.work_dir.is_none() {
        println!("remove them with: rm -r {}", work.display());
    }
    Ok(())
}

/// The stream of `symbol` from the local replay `server` at `speed`, files in `dirs`: stop
/// after `n_stream` klines (or three times their replayed time plus two minutes), short
/// timeouts and backoffs, save every window, progress on stderr.
fn fast_stream(
    dirs: Dirs,
    symbol: &Symbol,
    interval: Interval,
    (server, speed): (&ReplayServer, f64),
    learn: LearnSettings,
    n_stream: usize,
) -> StreamConfig {
    let real_per_kline = interval.ms() as f64 / speed;
    let budget_ms = (n_stream as f64 * real_per_kline * 3.0) as u64 + 120_000;
    StreamConfig {
        symbols: SymbolConfig::all(&dirs, std::slice::from_ref(symbol), interval),
        corr: Vec::new(),
        interval,
        dirs,
        rest_url: server.rest_url(),
        ws_url: server.ws_url(),
        learn,
        max_runtime: Some(budget_ms),
        max_klines: Some(n_stream as u64),
        ws: WsConfig {
            idle_timeout: Duration::from_secs(10),
            poll: Duration::from_millis(200),
            ..WsConfig::default()
        },
        timing: Timing {
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(5),
            ..Timing::default()
        },
        save_every: 1,
        stderr: true,
    }
}

/// Runs the stream of `config`, printing a row of `table` for every scored forecast and a line
/// for every window.
fn stream_printing(config: &StreamConfig, table: &ForecastTable) -> Result<RunOutcome, Error> {
    let mut ens = Accum::default();
    let mut naive = Accum::default();
    run_stream(config, &mut |event| match event {
        LiveEvent::Kline(k) => {
            let (kline, Some(s)) = (&k.kline, &k.scored) else {
                return;
            };
            ens.add(s.last_close, s.ensemble_price, s.actual_close);
            naive.add(s.last_close, s.naive_price, s.actual_close);
            println!(
                "{}",
                table.row(
                    kline,
                    [
                        s.ensemble_price,
                        s.naive_price,
                        s.lower_price,
                        s.upper_price
                    ],
                    s.covered,
                    [ens.rmse(), naive.rmse()]
                )
            );
        }
        LiveEvent::Window { line, seconds } => {
            println!("  -- {line} ({seconds:.2} s)");
        }
    })
}

/// The closing lines: what was streamed, the timing, the scoreboard and where the files are
/// (`[data, models, log]`).
fn print_summary(summary: &RunSummary, [data, models, log]: [&Path; 3]) {
    println!(
        "\nstreamed {} klines in {:.1} s ({} windows); {}",
        summary.ensembler.klines,
        summary.seconds,
        summary.ensembler.windows,
        summary.stream.summary()
    );
    println!("{}", crate::live::timing_line(summary));
    println!("\nscoreboard (price errors over the streamed klines):");
    print!("{}", scoreboard_table(&summary.ensembler.scoreboard));
    println!(
        "\nfiles: {} (klines, predictions.csv, Buffer_15.csv), {} (Trained/, Ensembled/), {} \
         (stream.log, ensemble.log, ensemble.jsonl)",
        data.display(),
        models.display(),
        log.display()
    );
}

/// The forecast lines the demo prints: prices at the market's own precision
/// ([`price_decimals`] of the history), right-aligned under a header, one column width for
/// every price.
struct ForecastTable {
    /// Decimals of prices.
    decimals: usize,
    /// Width of a price column.
    width: usize,
}

impl ForecastTable {
    const NAMES: [&'static str; 5] = ["close", "forecast", "naive", "90% lower", "90% upper"];

    fn new(history: &[Kline]) -> ForecastTable {
        let decimals = price_decimals(history);
        let widest = history
            .iter()
            .map(|k| k.values().high)
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max);
        // Twice the widest price the history saw leaves room for the stream's prices.
        let digits = format!("{:.decimals$}", 2.0 * widest).len();
        let width = Self::NAMES
            .iter()
            .map(|n| n.len())
            .max()
            .unwrap_or(0)
            .max(digits);
        ForecastTable { decimals, width }
    }

    fn header(&self) -> String {
        let w = self.width;
        let mut line = format!("{:<19}", "kline (UTC)");
        for name in Self::NAMES {
            line.push_str(&format!(" {name:>w$}"));
        }
        let e = self.width + 2;
        line.push_str(&format!(
            " {:>3} | {:>e$} {:>e$}",
            "in", "rmse ens", "rmse naive"
        ));
        line
    }

    /// One scored forecast: the kline's close, the ensemble, naive and interval prices (all at
    /// the table's decimals), whether the close fell inside, and the running RMSEs (two more
    /// decimals).
    fn row(&self, kline: &Kline, prices: [f64; 4], covered: bool, rmse: [f64; 2]) -> String {
        let (w, d) = (self.width, self.decimals);
        let close = kline.values().close;
        let mut line = format!("{:<19} {close:>w$.d$}", time::format_ms(kline.open_time));
        for p in prices {
            line.push_str(&format!(" {p:>w$.d$}"));
        }
        let (e, de) = (self.width + 2, self.decimals + 2);
        line.push_str(&format!(
            " {:>3} | {:>e$.de$} {:>e$.de$}",
            if covered { "in" } else { "out" },
            rmse[0],
            rmse[1]
        ));
        line
    }
}

fn seed_store(
    data_dir: &Path,
    symbol: &Symbol,
    interval: Interval,
    history: &[Kline],
) -> Result<(), Error> {
    let path = store::kline_path(data_dir, symbol, interval);
    std::fs::create_dir_all(data_dir)
        .map_err(|e| Error::io(format!("creating {}", data_dir.display()), e))?;
    let (mut store, _) = KlineStore::open(&path)?;
    if store.last_open_time().is_some() {
        return Err(Error::Config(format!(
            "{} already holds klines; give the demo an empty --work-dir",
            path.display()
        )));
    }
    store.append(history)?;
    Ok(())
}

fn train_models(
    history: &[Kline],
    models_dir: &Path,
    learn: &LearnSettings,
) -> Result<PathBuf, Error> {
    let rows = &history[history.len().saturating_sub(TRAIN_ROWS)..];
    let mut series = Series::with_capacity(rows.len());
    for k in rows {
        series.push(&k.values());
    }
    println!(
        "2/3 training the eight models on the last {} klines (svr on {SVR_ROWS})",
        rows.len()
    );
    let opts = TrainOptions::new(
        learn,
        0.2,
        ModelKind::ALL.to_vec(),
        "demo history".to_string(),
    );
    let outcome = train::train_series(series, &opts, &mut |msg| println!("    {msg}"))?;
    print!("{}", outcome.report.to_table());
    persist::save_trained_set(models_dir, &outcome.models)?;
    Ok(models_dir.join(persist::TRAINED_DIR))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::kline;

    #[test]
    fn forecast_lines_align_under_the_header_at_the_market_precision() {
        let mut k = kline(0);
        (k.open, k.high, k.low, k.close) = (
            "7186.68000000".into(),
            "7190.10000000".into(),
            "7180.00000000".into(),
            "7186.60000000".into(),
        );
        let table = ForecastTable::new(std::slice::from_ref(&k));
        assert_eq!((table.decimals, table.width), (2, 9));
        let header = table.header();
        let row = table.row(&k, [7186.6049, 7186.6, 7170.0, 7203.25], true, [1.5, 2.25]);
        assert_eq!(
            header,
            "kline (UTC)             close  forecast     naive 90% lower 90% upper  in |    rmse ens  rmse naive"
        );
        assert_eq!(
            row,
            format!(
                "{}   7186.60   7186.60   7186.60   7170.00   7203.25  in |      1.5000      2.2500",
                time::format_ms(k.open_time)
            )
        );
        assert_eq!(header.len(), row.len());
    }
}
