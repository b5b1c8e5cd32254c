//! The command line, parsed by hand (no CLI crate) into a [`Command`]. Only validation of what
//! the user typed happens here: no files are opened and no network is touched. Environment
//! overrides (`KLINECAST_REST_URL`, `KLINECAST_WS_URL`) are passed in, so parsing stays testable.

use std::path::PathBuf;

use crate::corr::CorrSource;
use crate::ensemble::interval::DEFAULT_COVERAGE;
use crate::ensemble::{
    Combiner, DEFAULT_COMBINER, DEFAULT_GENERATIONS, DEFAULT_REFIT_ROWS, DEFAULT_WINDOW,
};
use crate::error::Error;
use crate::features::{DEFAULT_HORIZON, MAX_HORIZON};
use crate::kline::{Interval, Symbol};
use crate::layout::{folder_name, Dirs, SymbolLayout};
use crate::models::fit::DEFAULT_SVR_ROWS;
use crate::models::ModelKind;
use crate::settings::{LearnSettings, DEFAULT_SEED};
use crate::time;

pub const USAGE: &str = "\
klinecast: forecasts the next kline close from Binance klines and keeps learning while it streams

USAGE:
  klinecast demo          [--data FILE] [--speed X] [--klines N] [--work-dir DIR] [--horizon H]
                          [--seed S]
  klinecast collect       [--symbol BTCUSDT | --symbols A,B,…] [--interval 1m]
                          [--start YYYY-MM-DD | --days N] [--end YYYY-MM-DD] [--data-dir DIR]
                          [--rest-url URL]
  klinecast train         [--symbol BTCUSDT | --symbols A,B,… | --data FILE] [--interval 1m]
                          [--data-dir DIR] [--models-dir DIR] [--holdout 0.2] [--max-rows N]
                          [--horizon H] [--svr-rows N] [--seed S] [--json]
                          [--corr SYM,SYM (with --symbols) | --corr FILE,FILE (with --data)]
  klinecast stream        [--symbol BTCUSDT | --symbols A,B,…] [--corr SYM,SYM] [--interval 1m]
                          [--data-dir DIR] [--models-dir DIR]
                          [--log-dir DIR] [--rest-url URL] [--ws-url URL] [--window 15]
                          [--refit-rows 1440] [--generations 8] [--horizon H]
                          [--max-runtime DURATION] [--seed S] [--combiner ml-poly|lcb]
                          [--coverage 0.9]
  klinecast backtest      --data FILE [--corr FILE,FILE] [--train-frac 0.5] [--holdout 0.2] [--window 15] [--refit-rows 1440]
                          [--generations 8] [--horizon H] [--max-rows N] [--svr-rows N] [--seed S]
                          [--combiner ml-poly|lcb] [--coverage 0.9] [--models LIST] [--json]
                          [--hours 24] [--html FILE] [--predictions FILE]
  klinecast replay-server --data FILE[,FILE…] [--port P] [--speed X] [--start-row N]
                          [--faults SPEC]
  klinecast describe      [--data FILE] [--html FILE]
  klinecast report        [--symbols A,B,…] [--interval 1m] [--data-dir DIR] [--log-dir DIR]
                          [--models-dir DIR] [--hours 24] [--html FILE]
  klinecast status        [--symbols A,B,…] [--interval 1m] [--data-dir DIR] [--log-dir DIR]
                          [--models-dir DIR] [--json]   (exit 1 when any symbol is stale)
  klinecast help | --help | -h
  klinecast version | --version | -V

ENVIRONMENT:
  KLINECAST_REST_URL   REST base URL (default https://api.binance.com)
  KLINECAST_WS_URL     WebSocket base URL (default wss://stream.binance.com:9443)

EXIT CODES: 0 ok, 1 runtime failure, 2 usage or configuration error";

/// Default REST base URL.
pub(crate) const DEFAULT_REST_URL: &str = "https://api.binance.com";
/// Default WebSocket base URL.
pub(crate) const DEFAULT_WS_URL: &str = "wss://stream.binance.com:9443";
/// The real sample that ships in `data/` (see README): the offline default for `demo`.
pub(crate) const SAMPLE_DATA: &str = "data/BTCUSDT_1m.csv";

/// A parsed command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Help,
    Version,
    Collect(CollectArgs),
    Train(TrainArgs),
    Stream(StreamArgs),
    Backtest(BacktestArgs),
    ReplayServer(ReplayArgs),
    Demo(DemoArgs),
    Describe(DescribeArgs),
    Report(ReportArgs),
    Status(StatusArgs),
}

#[derive(Debug, Clone, PartialEq)]
pub struct DescribeArgs {
    pub(crate) data: PathBuf,
    pub(crate) html: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReportArgs {
    /// `--symbols`/`--symbol`; empty: every store in the data directory.
    pub(crate) symbols: Vec<Symbol>,
    pub(crate) interval: Interval,
    pub(crate) dirs: Dirs,
    pub(crate) hours: f64,
    pub(crate) html: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StatusArgs {
    /// `--symbols`/`--symbol`; empty: every store in the data directory.
    pub(crate) symbols: Vec<Symbol>,
    pub(crate) interval: Interval,
    pub(crate) dirs: Dirs,
    pub(crate) json: bool,
}

/// Where a backfill starts when the store is empty.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Start {
    /// 00:00 UTC of a date, in ms.
    Date(i64),
    /// This many days before the server's time.
    Days(u32),
}

/// `klinecast stream`: the market, its directories, Binance's URLs, how it learns and for how
/// long.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamArgs {
    /// `--symbol X` (one) or `--symbols A,B,…` (one connection for all up to 1024 streams).
    pub(crate) symbols: Vec<Symbol>,
    pub(crate) interval: Interval,
    pub(crate) data_dir: PathBuf,
    pub(crate) models_dir: PathBuf,
    pub(crate) log_dir: PathBuf,
    pub(crate) rest_url: String,
    pub(crate) ws_url: String,
    /// `--window`, `--refit-rows`, `--generations`, `--horizon`, `--seed`, …
    pub(crate) learn: LearnSettings,
    /// `--max-runtime`, in milliseconds.
    pub(crate) max_runtime: Option<u64>,
    /// `--corr A,B`: the correlated symbols (issue 23), streamed on the same connection; each
    /// symbol's own entry is left out of its list.
    pub(crate) corr: Vec<Symbol>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CollectArgs {
    /// `--symbols A,B` or `--symbol X`: backfilled one after the other, sharing one REST client
    /// (one request-weight budget).
    pub(crate) symbols: Vec<Symbol>,
    pub(crate) interval: Interval,
    pub(crate) start: Start,
    /// Exclusive end (00:00 UTC of the given date), in ms; `None` = up to the server's now.
    pub(crate) end: Option<i64>,
    pub(crate) data_dir: PathBuf,
    pub(crate) rest_url: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrainArgs {
    /// What to train on, and where each set of models goes.
    pub(crate) sets: Vec<TrainSet>,
    pub(crate) holdout: f64,
    pub(crate) max_rows: Option<usize>,
    /// `--horizon`, `--svr-rows`, `--seed`.
    pub(crate) learn: LearnSettings,
    pub(crate) json: bool,
}

/// One set of models `train` fits: a kline file, and the folder whose `Trained/` it replaces.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TrainSet {
    /// `BTCUSDT 1m`, or the file's name when it does not say its symbol.
    pub(crate) label: String,
    pub(crate) data: PathBuf,
    /// `models/<SYMBOL>_<interval>` (the models of that symbol), or `--models-dir` itself with
    /// `--data FILE --models-dir DIR`.
    pub(crate) models: PathBuf,
    /// `--corr`: the correlated symbols' stores (issue 23), without the set's own symbol.
    pub(crate) corr: Vec<CorrSource>,
}

/// `train`, `stream`, `backtest` and `demo` take the learning settings as [`LearnSettings`]:
/// the flags a command does not take stay at their defaults, and `threads` is left at 1 for the
/// command to fill in.

#[derive(Debug, Clone, PartialEq)]
pub struct BacktestArgs {
    pub(crate) data: PathBuf,
    /// `--corr FILE,FILE`: the correlated symbols' stores (issue 23).
    pub(crate) corr: Vec<CorrSource>,
    pub(crate) train_frac: f64,
    /// `--holdout`: share of the first part held out of the offline fit to warm the ensemble
    /// up (0: none).
    pub(crate) holdout: f64,
    /// `--window`, `--refit-rows`, `--generations`, `--horizon`, `--svr-rows`, `--seed`.
    pub(crate) learn: LearnSettings,
    pub(crate) max_rows: Option<usize>,
    pub(crate) json: bool,
    /// The offline models to train (`--models linear,svr,…`; default all eight).
    pub(crate) models: Vec<ModelKind>,
    /// `--html FILE`: the page of charts, with the last `hours` of forecasts drawn.
    pub(crate) html: Option<PathBuf>,
    pub(crate) hours: f64,
    /// `--predictions FILE`: every scored forecast with its interval, in the `predictions.csv`
    /// layout (for `scripts/bench_vs_garch.py`).
    pub(crate) predictions: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReplayArgs {
    /// `--data A.csv,B.csv`: one file per series, each named `<SYMBOL>_<interval>.csv`.
    pub(crate) data: Vec<PathBuf>,
    pub(crate) port: u16,
    pub(crate) speed: f64,
    pub(crate) start_row: Option<usize>,
    /// Fault switches, parsed by the replay server (see README).
    pub(crate) faults: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DemoArgs {
    pub(crate) data: PathBuf,
    pub(crate) speed: f64,
    pub(crate) klines: Option<usize>,
    pub(crate) work_dir: Option<PathBuf>,
    /// `--horizon`, `--seed`.
    pub(crate) learn: LearnSettings,
}

/// Parses the arguments after the program name. `env` looks up environment variables.
pub fn parse(args: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<Command, Error> {
    let Some((name, rest)) = args.split_first() else {
        return Ok(Command::Help);
    };
    let mut flags = Flags::new(rest)?;
    let rest_url = || env("KLINECAST_REST_URL").unwrap_or_else(|| DEFAULT_REST_URL.to_string());
    let ws_url = || env("KLINECAST_WS_URL").unwrap_or_else(|| DEFAULT_WS_URL.to_string());
    let command = match name.as_str() {
        "help" | "--help" | "-h" => Command::Help,
        "version" | "--version" | "-V" => Command::Version,
        "collect" => Command::Collect(collect_args(&mut flags, &rest_url)?),
        "train" => Command::Train(train_args(&mut flags)?),
        "stream" => Command::Stream(stream_args(&mut flags, &rest_url, &ws_url)?),
        "backtest" => Command::Backtest(backtest_args(&mut flags)?),
        "replay-server" => Command::ReplayServer(replay_args(&mut flags)?),
        "demo" => Command::Demo(demo_args(&mut flags)?),
        "describe" => Command::Describe(DescribeArgs {
            data: flags.path("--data", SAMPLE_DATA)?,
            html: flags.take("--html")?.map(PathBuf::from),
        }),
        "report" => Command::Report(ReportArgs {
            symbols: symbols(&mut flags)?.unwrap_or_default(),
            interval: interval(&mut flags)?,
            dirs: dirs(&mut flags)?,
            hours: hours(&mut flags)?,
            html: flags.take("--html")?.map(PathBuf::from),
        }),
        "status" => Command::Status(StatusArgs {
            symbols: symbols(&mut flags)?.unwrap_or_default(),
            interval: interval(&mut flags)?,
            dirs: dirs(&mut flags)?,
            json: flags.switch("--json"),
        }),
        other => return Err(usage(&format!("unknown command {other:?}"))),
    };
    flags.finish()?;
    Ok(command)
}

/// `collect`'s flags; `rest_url` gives the REST URL when `--rest-url` is not given.
fn collect_args(flags: &mut Flags, rest_url: &dyn Fn() -> String) -> Result<CollectArgs, Error> {
    let days = flags.take("--days")?;
    let start_date = flags.take("--start")?;
    let start = match (start_date, days) {
        (Some(_), Some(_)) => return Err(usage("--start and --days cannot be used together")),
        (Some(d), None) => Start::Date(time::parse_date(&d).map_err(Error::Usage)?),
        (None, Some(n)) => Start::Days(number("--days", &n, 1u32..=36_500)?),
        (None, None) => Start::Days(1095),
    };
    let end = flags
        .take("--end")?
        .map(|d| time::parse_date(&d).map_err(Error::Usage))
        .transpose()?;
    if let (Start::Date(s), Some(e)) = (start, end) {
        if e <= s {
            return Err(usage("--end must be after --start"));
        }
    }
    Ok(CollectArgs {
        symbols: symbols(flags)?.unwrap_or_else(|| vec![default_symbol()]),
        interval: interval(flags)?,
        start,
        end,
        data_dir: flags.path("--data-dir", "data")?,
        rest_url: flags.take("--rest-url")?.unwrap_or_else(rest_url),
    })
}

/// `train`'s flags.
fn train_args(flags: &mut Flags) -> Result<TrainArgs, Error> {
    Ok(TrainArgs {
        sets: train_sets(flags)?,
        holdout: fraction(flags, "--holdout", 0.2)?,
        max_rows: max_rows(flags)?,
        learn: LearnSettings {
            horizon: horizon(flags)?,
            svr_rows: svr_rows(flags)?,
            seed: seed(flags)?,
            ..LearnSettings::default()
        },
        json: flags.switch("--json"),
    })
}

/// `stream`'s flags; `rest_url` and `ws_url` give the URLs when their flags are not given.
fn stream_args(
    flags: &mut Flags,
    rest_url: &dyn Fn() -> String,
    ws_url: &dyn Fn() -> String,
) -> Result<StreamArgs, Error> {
    let symbols = symbols(flags)?.unwrap_or_else(|| vec![default_symbol()]);
    let corr = match flags.take("--corr")? {
        Some(text) => symbol_list(&text, "--corr")?,
        None => Vec::new(),
    };
    for symbol in &symbols {
        let n = corr.iter().filter(|c| *c != symbol).count();
        if n > crate::features::MAX_CORR {
            return Err(usage(&format!(
                "--corr takes at most {} symbols besides {symbol}, not {n}",
                crate::features::MAX_CORR
            )));
        }
    }
    Ok(StreamArgs {
        symbols,
        corr,
        interval: interval(flags)?,
        data_dir: flags.path("--data-dir", "data")?,
        models_dir: flags.path("--models-dir", "models")?,
        log_dir: flags.path("--log-dir", "log")?,
        rest_url: flags.take("--rest-url")?.unwrap_or_else(rest_url),
        ws_url: flags.take("--ws-url")?.unwrap_or_else(ws_url),
        learn: learn(flags)?,
        max_runtime: flags
            .take("--max-runtime")?
            .map(|d| time::parse_duration(&d).map_err(Error::Usage))
            .transpose()?,
    })
}

/// `backtest`'s flags.
fn backtest_args(flags: &mut Flags) -> Result<BacktestArgs, Error> {
    Ok(BacktestArgs {
        data: flags
            .take("--data")?
            .map(PathBuf::from)
            .ok_or_else(|| usage("backtest needs --data FILE"))?,
        corr: corr_files(flags)?,
        train_frac: fraction(flags, "--train-frac", 0.5)?,
        holdout: flags.parsed(
            "--holdout",
            0.2,
            |v: &f64| *v >= 0.0 && *v < 1.0,
            "a fraction from 0 up to (not including) 1",
        )?,
        learn: LearnSettings {
            svr_rows: svr_rows(flags)?,
            ..learn(flags)?
        },
        max_rows: max_rows(flags)?,
        json: flags.switch("--json"),
        models: models(flags)?,
        html: flags.take("--html")?.map(PathBuf::from),
        hours: hours(flags)?,
        predictions: flags.take("--predictions")?.map(PathBuf::from),
    })
}

/// `replay-server`'s flags.
fn replay_args(flags: &mut Flags) -> Result<ReplayArgs, Error> {
    Ok(ReplayArgs {
        data: flags
            .take("--data")?
            .map(|list| list.split(',').map(PathBuf::from).collect::<Vec<_>>())
            .filter(|files| files.iter().all(|f| !f.as_os_str().is_empty()))
            .ok_or_else(|| {
                usage("replay-server needs --data FILE or --data FILE,FILE,… (no empty names)")
            })?,
        port: flags.parsed(
            "--port",
            0u16,
            |_: &u16| true,
            "a port number, 0 for any free port",
        )?,
        speed: speed(flags, 1.0)?,
        start_row: flags.optional("--start-row", |_: &usize| true, "a row index")?,
        faults: flags.take("--faults")?.unwrap_or_default(),
    })
}

/// `demo`'s flags.
fn demo_args(flags: &mut Flags) -> Result<DemoArgs, Error> {
    Ok(DemoArgs {
        data: flags.path("--data", SAMPLE_DATA)?,
        speed: speed(flags, 600.0)?,
        klines: flags.optional("--klines", |v: &usize| *v >= 1, "at least 1")?,
        work_dir: flags.take("--work-dir")?.map(PathBuf::from),
        learn: LearnSettings {
            horizon: horizon(flags)?,
            seed: seed(flags)?,
            ..LearnSettings::default()
        },
    })
}

/// A fraction flag strictly between 0 and 1 (`--holdout`, `--train-frac`).
fn fraction(flags: &mut Flags, flag: &str, default: f64) -> Result<f64, Error> {
    flags.parsed(
        flag,
        default,
        |v: &f64| *v > 0.0 && *v < 1.0,
        "a fraction between 0 and 1",
    )
}

fn usage(msg: &str) -> Error {
    Error::Usage(msg.to_string())
}

fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
    flag: &str,
    text: &str,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, Error> {
    match text.parse::<T>() {
        Ok(v) if range.contains(&v) => Ok(v),
        _ => Err(usage(&format!(
            "{flag} {text:?} is invalid: expected {} to {}",
            range.start(),
            range.end()
        ))),
    }
}

fn default_symbol() -> Symbol {
    Symbol::parse("BTCUSDT").unwrap_or_else(|_| unreachable!("BTCUSDT is a valid symbol"))
}

/// `--symbols A,B,C` or `--symbol X` (one); `None` when neither is given. Each symbol once, in
/// the order given; both flags together, an empty entry or a repeated symbol is a usage error.
fn symbols(flags: &mut Flags) -> Result<Option<Vec<Symbol>>, Error> {
    let one = flags.take("--symbol")?;
    let many = flags.take("--symbols")?;
    let text = match (one, many) {
        (Some(_), Some(_)) => {
            return Err(usage(
                "--symbol and --symbols cannot be used together: give --symbols A,B,C",
            ))
        }
        (Some(one), None) => one,
        (None, Some(many)) => many,
        (None, None) => return Ok(None),
    };
    symbol_list(&text, "--symbols").map(Some)
}

/// A comma-separated list of symbols (`flag` names it in errors): each once, none empty.
fn symbol_list(text: &str, flag: &str) -> Result<Vec<Symbol>, Error> {
    let mut list: Vec<Symbol> = Vec::new();
    for name in text.split(',').map(str::trim) {
        let symbol = Symbol::parse(name).map_err(Error::Usage)?;
        if list.contains(&symbol) {
            return Err(usage(&format!("{symbol} is given twice in {flag}")));
        }
        list.push(symbol);
    }
    Ok(list)
}

/// `--corr FILE,FILE` (`backtest`; `train` with `--data`), or none.
fn corr_files(flags: &mut Flags) -> Result<Vec<CorrSource>, Error> {
    flags
        .take("--corr")?
        .as_deref()
        .map_or(Ok(Vec::new()), corr_file_list)
}

/// The stores of `--corr FILE,FILE`, each named by the symbol its file name starts with
/// (`<SYMBOL>_<interval>.csv`, or `<SYMBOL>-…` as the shared monthly files are named).
fn corr_file_list(text: &str) -> Result<Vec<CorrSource>, Error> {
    let mut list: Vec<CorrSource> = Vec::new();
    for file in text.split(',').map(str::trim) {
        let path = PathBuf::from(file);
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let prefix = stem.split(['_', '-']).next().unwrap_or_default();
        let symbol = Symbol::parse(prefix).map_err(|e| {
            usage(&format!(
                "--corr {file}: its name must start with its symbol (SYMBOL_1m.csv or                  SYMBOL-…): {e}"
            ))
        })?;
        if list.iter().any(|c| c.symbol == symbol.as_str()) {
            return Err(usage(&format!("{symbol} is given twice in --corr")));
        }
        list.push(CorrSource {
            symbol: symbol.to_string(),
            path,
        });
    }
    if list.len() > crate::features::MAX_CORR {
        return Err(usage(&format!(
            "--corr takes at most {} symbols",
            crate::features::MAX_CORR
        )));
    }
    Ok(list)
}

/// `--data-dir`, `--models-dir`, `--log-dir` (defaults `data`, `models`, `log`).
fn dirs(flags: &mut Flags) -> Result<Dirs, Error> {
    Ok(Dirs {
        data: flags.path("--data-dir", "data")?,
        models: flags.path("--models-dir", "models")?,
        log: flags.path("--log-dir", "log")?,
    })
}

/// `train`'s sets: `--symbols`/`--symbol` (default BTCUSDT) read each symbol's store in
/// `--data-dir` and write `<models-dir>/<SYMBOL>_<interval>/Trained`. `--data FILE` trains one
/// file: with `--models-dir DIR` into `DIR/Trained` (as before the many-symbols layout),
/// without it into the folder of the symbol the file's name says (`<SYMBOL>_<interval>.csv`).
fn train_sets(flags: &mut Flags) -> Result<Vec<TrainSet>, Error> {
    let symbols = symbols(flags)?;
    let corr_text = flags.take("--corr")?;
    let interval_flag = flags.take("--interval")?;
    let data_dir = flags.take("--data-dir")?;
    let models_dir = flags.take("--models-dir")?;
    if let Some(file) = flags.take("--data")? {
        if symbols.is_some() || interval_flag.is_some() || data_dir.is_some() {
            return Err(usage(
                "--data FILE trains that one file: leave out --symbol(s), --interval and --data-dir (they choose stores in the data directory instead)",
            ));
        }
        let data = PathBuf::from(file);
        let corr = corr_text
            .as_deref()
            .map_or(Ok(Vec::new()), corr_file_list)?;
        let label = data.file_name().map_or_else(
            || data.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        if let Some(dir) = models_dir {
            return Ok(vec![TrainSet {
                label,
                data,
                models: PathBuf::from(dir),
                corr,
            }]);
        }
        let (symbol, interval) = crate::store::parse_file_name(&data).map_err(|e| {
            usage(&format!(
                "{e}; or give --models-dir DIR to write its models to DIR/Trained"
            ))
        })?;
        return Ok(vec![TrainSet {
            label: format!("{symbol} {interval}"),
            data,
            models: PathBuf::from("models").join(folder_name(&symbol, interval)),
            corr,
        }]);
    }
    let interval =
        Interval::parse(interval_flag.as_deref().unwrap_or("1m")).map_err(Error::Usage)?;
    let dirs = Dirs {
        data: PathBuf::from(data_dir.unwrap_or_else(|| "data".to_string())),
        models: PathBuf::from(models_dir.unwrap_or_else(|| "models".to_string())),
        log: PathBuf::from("log"),
    };
    let corr_symbols = match corr_text {
        Some(text) => symbol_list(&text, "--corr")?,
        None => Vec::new(),
    };
    Ok(symbols
        .unwrap_or_else(|| vec![default_symbol()])
        .iter()
        .map(|symbol| {
            let layout = SymbolLayout::new(&dirs, symbol, interval);
            TrainSet {
                label: format!("{symbol} {interval}"),
                data: layout.store,
                models: layout.models,
                corr: corr_symbols
                    .iter()
                    .filter(|c| *c != symbol)
                    .map(|c| CorrSource {
                        symbol: c.to_string(),
                        path: SymbolLayout::new(&dirs, c, interval).store,
                    })
                    .collect(),
            }
        })
        .collect())
}

fn interval(flags: &mut Flags) -> Result<Interval, Error> {
    Interval::parse(
        &flags
            .take("--interval")?
            .unwrap_or_else(|| "1m".to_string()),
    )
    .map_err(Error::Usage)
}

/// `--window`, `--refit-rows`, `--generations`, `--horizon` and `--seed` (`stream`, `backtest`).
fn learn(flags: &mut Flags) -> Result<LearnSettings, Error> {
    Ok(LearnSettings {
        window: flags.ranged("--window", DEFAULT_WINDOW, 2..=10_000)?,
        refit_rows: flags.ranged("--refit-rows", DEFAULT_REFIT_ROWS, 100..=100_000)?,
        generations: flags.ranged("--generations", DEFAULT_GENERATIONS, 1..=64)?,
        horizon: horizon(flags)?,
        seed: seed(flags)?,
        combiner: combiner(flags)?,
        coverage: coverage(flags)?,
        ..LearnSettings::default()
    })
}

fn horizon(flags: &mut Flags) -> Result<usize, Error> {
    flags.ranged("--horizon", DEFAULT_HORIZON, 1..=MAX_HORIZON)
}

fn svr_rows(flags: &mut Flags) -> Result<usize, Error> {
    flags.ranged("--svr-rows", DEFAULT_SVR_ROWS, 50..=50_000)
}

/// `--hours`: how much of the end of a run a page draws forecast by forecast.
fn hours(flags: &mut Flags) -> Result<f64, Error> {
    flags.parsed(
        "--hours",
        24.0,
        |v: &f64| v.is_finite() && *v > 0.0 && *v <= 1e6,
        "a positive number of hours",
    )
}

fn seed(flags: &mut Flags) -> Result<u64, Error> {
    flags.parsed("--seed", DEFAULT_SEED, |_: &u64| true, "an integer")
}

fn max_rows(flags: &mut Flags) -> Result<Option<usize>, Error> {
    flags.optional("--max-rows", |v: &usize| *v >= 100, "at least 100")
}

fn models(flags: &mut Flags) -> Result<Vec<ModelKind>, Error> {
    let Some(text) = flags.take("--models")? else {
        return Ok(ModelKind::ALL.to_vec());
    };
    let names: Vec<&str> = ModelKind::ALL.iter().map(|k| k.name()).collect();
    let mut kinds = Vec::new();
    for name in text.split(',').map(str::trim) {
        let kind = ModelKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "invalid --models entry {name:?}: use a comma-separated list of {}",
                    names.join(", ")
                ))
            })?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    Ok(kinds)
}

fn combiner(flags: &mut Flags) -> Result<Combiner, Error> {
    match flags.take("--combiner")? {
        None => Ok(DEFAULT_COMBINER),
        Some(text) => Combiner::parse(&text).ok_or_else(|| {
            Error::Usage(format!(
                "invalid --combiner {text:?}: use ml-poly (the default) or lcb"
            ))
        }),
    }
}

fn coverage(flags: &mut Flags) -> Result<f64, Error> {
    flags.parsed(
        "--coverage",
        DEFAULT_COVERAGE,
        |v: &f64| *v >= 0.5 && *v <= 0.995,
        "a nominal coverage between 0.5 and 0.995",
    )
}

fn speed(flags: &mut Flags, default: f64) -> Result<f64, Error> {
    flags.parsed(
        "--speed",
        default,
        |v: &f64| v.is_finite() && *v > 0.0 && *v <= 1e7,
        "a positive number up to 1e7",
    )
}

/// `--flag value` / `--flag=value` pairs and bare switches, consumed by name.
struct Flags {
    items: Vec<(String, Option<String>)>,
}

impl Flags {
    fn new(args: &[String]) -> Result<Flags, Error> {
        let mut items: Vec<(String, Option<String>)> = Vec::new();
        let mut it = args.iter().peekable();
        while let Some(arg) = it.next() {
            if !arg.starts_with("--") {
                return Err(usage(&format!("unexpected argument {arg:?}")));
            }
            let (name, value) = match arg.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => match it.peek() {
                    Some(next) if !next.starts_with("--") => (arg.clone(), it.next().cloned()),
                    _ => (arg.clone(), None),
                },
            };
            if items.iter().any(|(n, _)| *n == name) {
                return Err(usage(&format!("{name} given more than once")));
            }
            items.push((name, value));
        }
        Ok(Flags { items })
    }

    /// Removes and returns the value of `--name`; an error if it was given without a value.
    fn take(&mut self, name: &str) -> Result<Option<String>, Error> {
        match self.items.iter().position(|(n, _)| n == name) {
            None => Ok(None),
            Some(i) => match self.items.remove(i).1 {
                Some(v) => Ok(Some(v)),
                None => Err(usage(&format!("{name} needs a value"))),
            },
        }
    }

    fn switch(&mut self, name: &str) -> bool {
        match self
            .items
            .iter()
            .position(|(n, v)| n == name && v.is_none())
        {
            Some(i) => {
                self.items.remove(i);
                true
            }
            None => false,
        }
    }

    fn path(&mut self, name: &str, default: &str) -> Result<PathBuf, Error> {
        Ok(PathBuf::from(
            self.take(name)?.unwrap_or_else(|| default.to_string()),
        ))
    }

    fn optional<T: std::str::FromStr>(
        &mut self,
        name: &str,
        ok: impl Fn(&T) -> bool,
        expected: &str,
    ) -> Result<Option<T>, Error> {
        match self.take(name)? {
            None => Ok(None),
            Some(text) => match text.parse::<T>() {
                Ok(v) if ok(&v) => Ok(Some(v)),
                _ => Err(usage(&format!(
                    "{name} {text:?} is invalid: expected {expected}"
                ))),
            },
        }
    }

    fn parsed<T: std::str::FromStr>(
        &mut self,
        name: &str,
        default: T,
        ok: impl Fn(&T) -> bool,
        expected: &str,
    ) -> Result<T, Error> {
        Ok(self.optional(name, ok, expected)?.unwrap_or(default))
    }

    /// `--name N` within `range` ("expected A to B"), `default` when absent.
    fn ranged(
        &mut self,
        name: &str,
        default: usize,
        range: std::ops::RangeInclusive<usize>,
    ) -> Result<usize, Error> {
        let expected = format!("{} to {}", range.start(), range.end());
        self.parsed(name, default, |v| range.contains(v), &expected)
    }

    fn finish(self) -> Result<(), Error> {
        match self.items.first() {
            None => Ok(()),
            Some((name, _)) => Err(usage(&format!("unknown or misplaced option {name}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_with(args: &[&str], env: &[(&str, &str)]) -> Result<Command, Error> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(&args, &|k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    }

    fn p(args: &[&str]) -> Result<Command, Error> {
        parse_with(args, &[])
    }

    #[test]
    fn collect_defaults_and_overrides() {
        let Ok(Command::Collect(c)) = p(&["collect"]) else {
            panic!("collect parses")
        };
        assert_eq!(c.symbols, [Symbol::parse("BTCUSDT").expect("symbol")]);
        assert_eq!(c.interval, Interval::ONE_MINUTE);
        assert_eq!(c.start, Start::Days(1095));
        assert_eq!(c.rest_url, DEFAULT_REST_URL);
        assert_eq!(c.data_dir, PathBuf::from("data"));
        let Ok(Command::Collect(c)) = parse_with(
            &[
                "collect",
                "--symbol",
                "ethusdt",
                "--start=2024-01-01",
                "--end",
                "2024-02-01",
            ],
            &[("KLINECAST_REST_URL", "http://127.0.0.1:9")],
        ) else {
            panic!("collect parses")
        };
        assert_eq!(c.symbols, [Symbol::parse("ETHUSDT").expect("symbol")]);
        assert_eq!(c.start, Start::Date(1_704_067_200_000));
        assert_eq!(c.end, Some(1_706_745_600_000));
        assert_eq!(c.rest_url, "http://127.0.0.1:9");
    }

    #[test]
    fn flag_beats_env() {
        let Ok(Command::Stream(s)) = parse_with(
            &[
                "stream",
                "--ws-url",
                "ws://127.0.0.1:1",
                "--max-runtime",
                "2h",
            ],
            &[("KLINECAST_WS_URL", "ws://127.0.0.1:2")],
        ) else {
            panic!("stream parses")
        };
        assert_eq!(s.ws_url, "ws://127.0.0.1:1");
        assert_eq!(s.max_runtime, Some(7_200_000));
        assert_eq!(s.learn, LearnSettings::default());
        assert_eq!(s.symbols, [Symbol::parse("BTCUSDT").expect("symbol")]);
    }

    /// `stream --symbols A,B,C` is one list in the given order; `--symbol X` is a list of one;
    /// both at once, a symbol twice or a bad name is a usage error.
    #[test]
    fn stream_takes_one_symbol_or_a_list() {
        let names = |args: &[&str]| match p(args) {
            Ok(Command::Stream(s)) => s.symbols.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            other => panic!("{args:?}: {other:?}"),
        };
        assert_eq!(
            names(&["stream", "--symbols", "ethusdt,BTCUSDT,AVAXUSDT"]),
            ["ETHUSDT", "BTCUSDT", "AVAXUSDT"]
        );
        assert_eq!(names(&["stream", "--symbol", "ETHUSDT"]), ["ETHUSDT"]);
        assert_eq!(names(&["stream", "--symbols", "ETHUSDT"]), ["ETHUSDT"]);
        for bad in [
            &[
                "stream",
                "--symbols",
                "ETHUSDT,BTCUSDT",
                "--symbol",
                "ETHUSDT",
            ][..],
            &["stream", "--symbols", "ETHUSDT,ethusdt"],
            &["stream", "--symbols", "ETHUSDT,,BTCUSDT"],
            &["stream", "--symbols", "ETHUSDT,../x"],
        ] {
            assert!(matches!(p(bad), Err(Error::Usage(_))), "{bad:?}");
        }
    }

    #[test]
    fn bad_input_is_a_usage_error() {
        for bad in [
            &["collect", "--symbol", "../x"][..],
            &["collect", "--symbol", "a/b"],
            &["collect", "--interval", "7m"],
            &["collect", "--days", "0"],
            &["collect", "--days", "3", "--start", "2024-01-01"],
            &["collect", "--start", "2024-02-01", "--end", "2024-01-01"],
            &["train", "--holdout", "1.5"],
            &["train", "--holdout"],
            &["train", "--bogus", "1"],
            &["train", "--seed", "1", "--seed", "2"],
            &["backtest"],
            &["backtest", "--data", "d.csv", "--holdout", "1"],
            &["backtest", "--data", "d.csv", "--holdout", "-0.1"],
            &["replay-server", "--data", "x.csv", "--speed", "-1"],
            &["frobnicate"],
            &["train", "stray"],
            &["collect", "--symbol", "A1", "--symbols", "B1,C1"],
            &["collect", "--symbols", "ETHUSDT,,BTCUSDT"],
            &["collect", "--symbols", "ETHUSDT,ethusdt"],
            &["train", "--data", "x.csv"],
            &[
                "train",
                "--data",
                "d/ETHUSDT_1m.csv",
                "--symbols",
                "ETHUSDT",
            ],
            &["status", "--symbols", "a/b"],
        ] {
            match p(bad) {
                Err(e) => assert_eq!(e.exit_code(), 2, "{bad:?}: {e}"),
                Ok(c) => panic!("{bad:?} parsed as {c:?}"),
            }
        }
    }

    #[test]
    fn symbols_name_each_symbol_s_store_and_models() {
        let sym = |s: &str| Symbol::parse(s).expect("symbol");
        let Ok(Command::Collect(c)) = p(&["collect", "--symbols", "ethusdt, BTCUSDT"]) else {
            panic!("collect parses")
        };
        assert_eq!(c.symbols, [sym("ETHUSDT"), sym("BTCUSDT")]);
        let set = |label: &str, data: &str, models: &str| TrainSet {
            label: label.to_string(),
            data: PathBuf::from(data),
            models: PathBuf::from(models),
            corr: Vec::new(),
        };
        let Ok(Command::Train(t)) = p(&[
            "train",
            "--symbols",
            "ETHUSDT,XRPUSDT",
            "--interval",
            "1h",
            "--data-dir",
            "d",
        ]) else {
            panic!("train parses")
        };
        assert_eq!(
            t.sets,
            [
                set("ETHUSDT 1h", "d/ETHUSDT_1h.csv", "models/ETHUSDT_1h"),
                set("XRPUSDT 1h", "d/XRPUSDT_1h.csv", "models/XRPUSDT_1h"),
            ]
        );
        let Ok(Command::Train(t)) = p(&["train"]) else {
            panic!("train parses")
        };
        assert_eq!(
            t.sets,
            [set(
                "BTCUSDT 1m",
                "data/BTCUSDT_1m.csv",
                "models/BTCUSDT_1m"
            )]
        );
        let Ok(Command::Train(t)) = p(&["train", "--data", "x/ETHUSDT_5m.csv"]) else {
            panic!("train parses")
        };
        assert_eq!(
            t.sets,
            [set("ETHUSDT 5m", "x/ETHUSDT_5m.csv", "models/ETHUSDT_5m")]
        );
        let Ok(Command::Status(s)) = p(&["status"]) else {
            panic!("status parses")
        };
        assert!(s.symbols.is_empty());
        assert_eq!(s.dirs.log, PathBuf::from("log"));
        let Ok(Command::Report(r)) = p(&["report", "--symbol", "ethusdt"]) else {
            panic!("report parses")
        };
        assert_eq!(r.symbols, [sym("ETHUSDT")]);
    }

    #[test]
    fn help_and_version() {
        assert_eq!(p(&[]).ok(), Some(Command::Help));
        assert_eq!(p(&["--help"]).ok(), Some(Command::Help));
        assert_eq!(p(&["-V"]).ok(), Some(Command::Version));
    }

    #[test]
    fn train_and_backtest_values() {
        let Ok(Command::Train(t)) = p(&[
            "train",
            "--data",
            "d.csv",
            "--models-dir",
            "m",
            "--json",
            "--max-rows",
            "5000",
            "--seed",
            "7",
        ]) else {
            panic!("train parses")
        };
        assert_eq!(
            t.sets,
            [TrainSet {
                label: "d.csv".to_string(),
                data: PathBuf::from("d.csv"),
                models: PathBuf::from("m"),
                corr: Vec::new(),
            }]
        );
        assert!(t.json);
        assert_eq!(
            (t.max_rows, t.learn.seed, t.holdout, t.learn.horizon),
            (Some(5000), 7, 0.2, 1)
        );
        let Ok(Command::Backtest(b)) = p(&["backtest", "--data", "d.csv", "--train-frac", "0.6"])
        else {
            panic!("backtest parses")
        };
        assert_eq!((b.train_frac, b.holdout), (0.6, 0.2));
        assert!(!b.json);
        let Ok(Command::Backtest(b)) = p(&["backtest", "--data", "d.csv", "--holdout", "0"]) else {
            panic!("backtest --holdout 0 parses")
        };
        assert_eq!(b.holdout, 0.0);
        assert_eq!((b.html, b.hours), (None, 24.0));
        let Ok(Command::Backtest(b)) = p(&[
            "backtest", "--data", "d.csv", "--html", "b.html", "--hours", "6",
        ]) else {
            panic!("backtest --html parses")
        };
        assert_eq!((b.html, b.hours), (Some(PathBuf::from("b.html")), 6.0));
        assert_eq!(b.learn, LearnSettings::default());
        assert_eq!(b.predictions, None);
        let Ok(Command::Backtest(b)) =
            p(&["backtest", "--data", "d.csv", "--predictions", "p.csv"])
        else {
            panic!("backtest --predictions parses")
        };
        assert_eq!(b.predictions, Some(PathBuf::from("p.csv")));
    }

    #[test]
    fn horizon_is_taken_by_every_learning_command() {
        let learn = |args: &[&str]| match p(args) {
            Ok(Command::Stream(s)) => s.learn,
            Ok(Command::Backtest(b)) => b.learn,
            other => panic!("{args:?} parsed as {other:?}"),
        };
        let expected = LearnSettings {
            window: 5,
            refit_rows: 200,
            generations: 2,
            horizon: 5,
            seed: 7,
            ..LearnSettings::default()
        };
        let flags = [
            "--window",
            "5",
            "--refit-rows",
            "200",
            "--generations",
            "2",
            "--horizon",
            "5",
            "--seed",
            "7",
        ];
        assert_eq!(learn(&[&["stream"][..], &flags].concat()), expected);
        assert_eq!(
            learn(
                &[
                    &["backtest", "--data", "d.csv", "--svr-rows", "60"][..],
                    &flags
                ]
                .concat()
            ),
            LearnSettings {
                svr_rows: 60,
                ..expected
            }
        );
        let Ok(Command::Train(t)) = p(&["train", "--horizon", "5"]) else {
            panic!("train parses")
        };
        assert_eq!(t.learn.horizon, 5);
        let Ok(Command::Demo(d)) = p(&["demo", "--horizon", "3"]) else {
            panic!("demo parses")
        };
        assert_eq!((d.learn.horizon, d.learn.seed), (3, DEFAULT_SEED));
        for bad in [
            &["stream", "--horizon", "0"][..],
            &["backtest", "--data", "d.csv", "--horizon", "1441"],
            &["demo", "--horizon", "x"],
            &["stream", "--svr-rows", "100"],
        ] {
            match p(bad) {
                Err(e) => assert_eq!(e.exit_code(), 2, "{bad:?}: {e}"),
                Ok(c) => panic!("{bad:?} parsed as {c:?}"),
            }
        }
        let Err(e) = p(&["stream", "--horizon", "0"]) else {
            panic!("--horizon 0 is refused")
        };
        assert!(
            e.to_string()
                .starts_with("--horizon \"0\" is invalid: expected 1 to 1440"),
            "{e}"
        );
    }

    #[test]
    fn usage_shows_the_defaults_that_parsing_uses() {
        for shown in [
            format!("[--window {DEFAULT_WINDOW}]"),
            format!("[--refit-rows {DEFAULT_REFIT_ROWS}]"),
            format!("[--generations {DEFAULT_GENERATIONS}]"),
        ] {
            assert_eq!(USAGE.matches(&shown).count(), 2, "{shown}");
        }
    }

    #[test]
    fn corr_lists_of_train_and_backtest() {
        let Ok(Command::Train(t)) = p(&[
            "train",
            "--symbols",
            "ALGOUSDT,FILUSDT",
            "--corr",
            "FILUSDT,NEARUSDT",
        ]) else {
            panic!("train parses")
        };
        let corr = |symbol: &str| CorrSource {
            symbol: symbol.to_string(),
            path: PathBuf::from(format!("data/{symbol}_1m.csv")),
        };
        assert_eq!(t.sets[0].corr, [corr("FILUSDT"), corr("NEARUSDT")]);
        // A symbol is not its own neighbour.
        assert_eq!(t.sets[1].corr, [corr("NEARUSDT")]);
        let Ok(Command::Backtest(b)) = p(&[
            "backtest",
            "--data",
            "a.csv",
            "--corr",
            "x/ETHUSDT-1m-2024-09.csv,BTCUSDT_1m.csv",
        ]) else {
            panic!("backtest parses")
        };
        let names: Vec<&str> = b.corr.iter().map(|c| c.symbol.as_str()).collect();
        assert_eq!(names, ["ETHUSDT", "BTCUSDT"]);
        assert_eq!(b.corr[0].path, PathBuf::from("x/ETHUSDT-1m-2024-09.csv"));
        for bad in [
            &[
                "backtest",
                "--data",
                "a.csv",
                "--corr",
                "ETHUSDT_1m.csv,y/ETHUSDT-1m.csv",
            ][..],
            &["backtest", "--data", "a.csv", "--corr", "_1m.csv"],
            &[
                "train",
                "--symbols",
                "ALGOUSDT",
                "--corr",
                "FILUSDT,FILUSDT",
            ],
        ] {
            assert!(matches!(p(bad), Err(Error::Usage(_))), "{bad:?}");
        }
    }

    #[test]
    fn stream_takes_a_corr_list_of_symbols() {
        let Ok(Command::Stream(st)) = p(&[
            "stream",
            "--symbol",
            "ALGOUSDT",
            "--corr",
            "FILUSDT,NEARUSDT",
        ]) else {
            panic!("stream parses")
        };
        let names: Vec<String> = st.corr.iter().map(|c| c.to_string()).collect();
        assert_eq!(names, ["FILUSDT", "NEARUSDT"]);
        let Ok(Command::Stream(st)) = p(&["stream", "--symbol", "ALGOUSDT"]) else {
            panic!("stream parses")
        };
        assert!(st.corr.is_empty());
        let nine = "A1USDT,A2USDT,A3USDT,A4USDT,A5USDT,A6USDT,A7USDT,A8USDT,A9USDT";
        for bad in [
            &["stream", "--corr", "FILUSDT,FILUSDT"][..],
            &["stream", "--symbol", "ALGOUSDT", "--corr", nine],
        ] {
            assert!(matches!(p(bad), Err(Error::Usage(_))), "{bad:?}");
        }
        // The symbol's own entry does not count against the limit.
        let eight_and_own = format!("ALGOUSDT,{}", &nine[..nine.len() - 7]);
        assert!(p(&["stream", "--symbol", "ALGOUSDT", "--corr", &eight_and_own]).is_ok());
    }
}
