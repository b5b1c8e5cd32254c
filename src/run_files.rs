//! The files a `stream` run leaves behind, read back for `report` and `status`: the kline store,
//! `predictions.csv`, `ensemble.jsonl` and `stream.log` (rotated parts included). Only reads;
//! each file's format is parsed by its writer's module ([`crate::live::predictions`],
//! [`crate::live::window_log`], [`crate::live::events`]). A backtest fills a [`RunFiles`] in
//! memory for the same page.

use std::path::{Path, PathBuf};

use crate::ensemble::report::WindowReport;
use crate::error::Error;
use crate::kline::{Interval, Symbol};
use crate::layout::{Dirs, Legacy, SymbolLayout};
use crate::live::events::LogEvent;
use crate::live::predictions::{self, PredictionRow};
use crate::live::window_log::LoggedWindow;
use crate::{log, store, upgrade};

/// One forecaster's score in one window.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Score {
    pub(crate) label: String,
    pub(crate) n: u64,
    pub(crate) rmse: Option<f64>,
    pub(crate) mae: Option<f64>,
    pub(crate) directional: Option<f64>,
}

/// What the page uses of one `ensemble.jsonl` line.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub(crate) first_open_time: i64,
    pub(crate) last_open_time: i64,
    /// Wall-clock time the line was logged (ms), when present.
    pub(crate) logged_at: Option<i64>,
    pub(crate) scores: Vec<Score>,
    pub(crate) weights: Vec<(String, f64)>,
    pub(crate) refit_seconds: Option<f64>,
    pub(crate) peak_rss_kib: Option<f64>,
    /// Realised interval coverage of the window, when the ensemble logged it.
    pub(crate) coverage: Option<f64>,
    /// Forecasts with an interval behind `coverage`, when logged.
    pub(crate) coverage_n: Option<u64>,
    /// The nominal coverage the intervals aim at, when logged.
    pub(crate) nominal: Option<f64>,
    /// The experts' standing after the window, when logged.
    pub(crate) experts: Vec<ExpertState>,
}

/// An expert's standing after a window, as `ensemble.jsonl` logs it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ExpertState {
    pub(crate) label: String,
    /// Rounds it has been awake and scored, over its whole record.
    pub(crate) rounds: u64,
    /// Its ML-Poly weight.
    pub(crate) weight: f64,
}

impl Window {
    /// The window a learner just closed, as the page draws it (a backtest has no wall clock:
    /// no log time, refit time or memory).
    pub(crate) fn from_report(r: &WindowReport) -> Window {
        Window {
            first_open_time: r.first_open_time,
            last_open_time: r.last_open_time,
            logged_at: None,
            scores: r
                .forecasters
                .iter()
                .map(|f| Score {
                    label: f.label.clone(),
                    n: f.n,
                    rmse: f.rmse,
                    mae: f.mae,
                    directional: f.directional,
                })
                .collect(),
            weights: r
                .weights
                .iter()
                .map(|w| (w.label.clone(), w.weight))
                .collect(),
            refit_seconds: None,
            peak_rss_kib: None,
            coverage: r.coverage.realised,
            coverage_n: Some(r.coverage.n),
            nominal: Some(r.coverage.nominal).filter(|x| x.is_finite() && *x > 0.0),
            experts: r
                .experts
                .iter()
                .map(|e| ExpertState {
                    label: e.label.clone(),
                    rounds: e.rounds,
                    weight: e.weight,
                })
                .collect(),
        }
    }

    /// A window as logged by a stream, with its log time, refit time and memory.
    pub(crate) fn from_logged(w: &LoggedWindow) -> Window {
        Window {
            logged_at: w.logged_at_ms(),
            refit_seconds: w.refit_save_seconds.filter(|s| s.is_finite()),
            peak_rss_kib: w.peak_rss_kib.map(|k| k as f64),
            ..Window::from_report(&w.report)
        }
    }

    /// Reads one `ensemble.jsonl` line; `None` for a line that is not a window report.
    pub fn parse(line: &str) -> Option<Window> {
        LoggedWindow::parse(line).map(|w| Window::from_logged(&w))
    }
}

/// The events of `stream.log` text: `(wall ms, event)`.
pub(crate) fn parse_stream_log(text: &str) -> Vec<(i64, LogEvent)> {
    text.lines()
        .filter_map(|line| {
            let (t, msg) = log::split_line(line)?;
            Some((t, LogEvent::parse(msg)?))
        })
        .collect()
}

/// Everything read from a run's files (or collected in memory by a backtest).
#[derive(Debug, Clone, Default)]
pub struct RunFiles {
    pub store_path: PathBuf,
    pub symbol: String,
    pub interval_ms: i64,
    /// `(open_time, close)` of the stored klines.
    pub closes: Vec<(i64, f64)>,
    pub forecasts: Vec<PredictionRow>,
    pub windows: Vec<Window>,
    /// `(wall ms, event)` of the `stream.log` lines that record an event.
    pub log: Vec<(i64, LogEvent)>,
}

/// One series' files as `report` and `status` read them: the many-symbols layout's, or, for the
/// symbol that owns them ([`crate::upgrade::legacy_owner`]), the single-symbol layout's where
/// the new ones do not exist yet (an installation `stream` has not upgraded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SeriesFiles {
    pub(crate) symbol: Symbol,
    pub(crate) interval: Interval,
    pub(crate) store: PathBuf,
    pub(crate) predictions: PathBuf,
    pub(crate) window_log: PathBuf,
}

impl SeriesFiles {
    /// `BTCUSDT 1m`.
    pub(crate) fn label(&self) -> String {
        format!("{} {}", self.symbol, self.interval)
    }
}

/// The series to read: `symbols` at `interval`, or, when `symbols` is empty, every kline store
/// (`<SYMBOL>_<interval>.csv`) in the data directory, by name.
pub(crate) fn series_to_read(
    dirs: &Dirs,
    symbols: &[Symbol],
    interval: Interval,
) -> Vec<SeriesFiles> {
    let named: Vec<(Symbol, Interval)> = if symbols.is_empty() {
        stores_in(&dirs.data)
    } else {
        symbols.iter().map(|s| (s.clone(), interval)).collect()
    };
    let owner = match named.as_slice() {
        [(one, _)] => Some(one.clone()),
        [(_, first), rest @ ..] if rest.iter().all(|(_, iv)| iv == first) => {
            let given: Vec<Symbol> = named.iter().map(|(s, _)| s.clone()).collect();
            match upgrade::legacy_owner(dirs, &given, *first) {
                upgrade::Owner::Symbol(s) => Some(s),
                _ => None,
            }
        }
        _ => None,
    };
    let legacy = Legacy::new(dirs);
    named
        .into_iter()
        .map(|(symbol, interval)| {
            let layout = SymbolLayout::new(dirs, &symbol, interval);
            let owns = owner.as_ref() == Some(&symbol);
            let pick = |new: PathBuf, old: &Path| {
                if owns && !new.exists() && old.exists() {
                    old.to_path_buf()
                } else {
                    new
                }
            };
            SeriesFiles {
                predictions: pick(layout.predictions(), &legacy.predictions),
                window_log: pick(layout.window_log(), &legacy.window_log),
                store: layout.store,
                symbol,
                interval,
            }
        })
        .collect()
}

/// Milliseconds since `path` was last written, by the wall clock `now` (ms); `None` when it
/// cannot be told (no such file).
pub(crate) fn age_ms(path: &Path, now: i64) -> Option<i64> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    let ms = modified
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_millis() as i64;
    Some((now - ms).max(0))
}

/// Every `<SYMBOL>_<interval>.csv` in `data_dir`, sorted by name.
fn stores_in(data_dir: &Path) -> Vec<(Symbol, Interval)> {
    let mut found: Vec<(String, Symbol, Interval)> = std::fs::read_dir(data_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            let (symbol, interval) = store::parse_file_name(&path).ok()?;
            path.is_file().then(|| {
                (
                    entry.file_name().to_string_lossy().into_owned(),
                    symbol,
                    interval,
                )
            })
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found.into_iter().map(|(_, s, i)| (s, i)).collect()
}

/// Largest `predictions.csv` or log file `report` reads (1 GiB: predictions.csv grows by about
/// 50 MB a year, the logs are capped at 1 MiB each).
const MAX_TEXT_BYTES: u64 = 1 << 30;

fn read_text(path: &Path) -> Result<String, Error> {
    let io_error = |e| Error::io(format!("reading {}", path.display()), e);
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(io_error(e)),
    };
    let len = file.metadata().map_err(io_error)?.len();
    if len > MAX_TEXT_BYTES {
        return Err(Error::Data(format!(
            "{} is {len} bytes, more than `report` reads ({MAX_TEXT_BYTES}); it is damaged or \
             not klinecast's: stop `klinecast stream`, move the file away and start it again",
            path.display()
        )));
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_TEXT_BYTES), &mut bytes)
        .map_err(io_error)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Text of a log and its rotated predecessors (`x.2`, `x.1`, `x`), oldest first.
fn read_rotated(path: &Path) -> Result<String, Error> {
    let mut text = String::new();
    for n in (1..=log::DEFAULT_KEEP).rev() {
        text.push_str(&read_text(&log::numbered(path, n))?);
    }
    text.push_str(&read_text(path)?);
    Ok(text)
}

/// The lines of `text` that `ok` refuses, as 1-based line numbers, with the number of lines
/// looked at. An unterminated last line is left out: `stream` may be writing it (a torn line
/// left by a kill is cut off at its next start).
fn refused_lines(text: &str, skip: usize, ok: impl Fn(&str) -> bool) -> (Vec<usize>, usize) {
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    let mut refused = Vec::new();
    let mut total = 0;
    for (i, line) in complete.lines().enumerate().skip(skip) {
        total += 1;
        if !ok(line) {
            refused.push(i + 1);
        }
    }
    (refused, total)
}

/// The warning for `refused` lines of `path` (`None` when there are none).
fn skipped_warning(path: &Path, what: &str, refused: &[usize], total: usize) -> Option<String> {
    let first = refused.first()?;
    Some(format!(
        "{}: {} of {total} lines are not {what} and were skipped (the first is line {first}); \
         the file is damaged or was written by another program: the report leaves those lines \
         out; to start it afresh stop `klinecast stream`, move the file away and start it again",
        path.display(),
        refused.len()
    ))
}

/// Reads `predictions.csv` text of `path` as [`predictions::read_rows`] does, with a warning
/// naming the file when its header is not one `read_rows` reads or some rows cannot be read.
pub fn read_predictions(path: &Path, text: &str) -> (Vec<PredictionRow>, Option<String>) {
    if text.is_empty() {
        return (Vec::new(), None);
    }
    let forecasts = predictions::read_rows(text);
    let header = text.lines().next().unwrap_or_default();
    if header != predictions::HEADER && header != predictions::HEADER_V1 {
        let shown: String = header.chars().take(80).collect();
        return (
            forecasts,
            Some(format!(
                "{}: the first line {shown:?} is not a predictions.csv header (this build reads \
                 {:?} and its version 1 without the interval): no forecast is drawn; stop \
                 `klinecast stream`, move the file away and start it again",
                path.display(),
                predictions::HEADER
            )),
        );
    }
    let (refused, total) = refused_lines(text, 1, |line| {
        predictions::read_rows(&format!("{header}\n{line}")).len() == 1
    });
    let warning = skipped_warning(path, "prediction rows", &refused, total);
    (forecasts, warning)
}

/// Reads `ensemble.jsonl` text (with its rotated predecessors) of `path` as [`Window::parse`]
/// does, with a warning naming the file when some lines are not window reports.
pub fn read_windows(path: &Path, text: &str) -> (Vec<Window>, Option<String>) {
    let windows = text.lines().filter_map(Window::parse).collect();
    let (refused, total) = refused_lines(text, 0, |line| Window::parse(line).is_some());
    let warning = skipped_warning(path, "window reports", &refused, total);
    (windows, warning)
}

impl RunFiles {
    /// Reads the files of one series of a run (the stream's log in `log_dir` is shared by every
    /// series); missing files give empty parts, never an error, except a missing kline store. A
    /// warning names each file whose lines could not all be read (they are left out of the run;
    /// the files are only read).
    pub(crate) fn read_with_warnings(
        series: &SeriesFiles,
        log_dir: &Path,
    ) -> Result<(RunFiles, Vec<String>), Error> {
        if !series.store.is_file() {
            return Err(Error::Data(format!(
                "{}: no kline store for {}; give the --data-dir of a stream, or collect it with \
                 `klinecast collect --symbol {} --interval {}`",
                series.store.display(),
                series.label(),
                series.symbol,
                series.interval
            )));
        }
        let data = store::load_series(&series.store)?;
        let closes = data.closes();
        let (forecasts, w1) =
            read_predictions(&series.predictions, &read_text(&series.predictions)?);
        let (windows, w2) = read_windows(&series.window_log, &read_rotated(&series.window_log)?);
        let log = parse_stream_log(&read_rotated(&log_dir.join("stream.log"))?);
        let files = RunFiles {
            store_path: series.store.clone(),
            symbol: series.symbol.to_string(),
            interval_ms: series.interval.ms(),
            closes,
            forecasts,
            windows,
            log,
        };
        Ok((files, w1.into_iter().chain(w2).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The backtest's windows are the ones `report` reads back from `ensemble.jsonl`.
    #[test]
    fn window_from_a_report_equals_its_json_line_read_back() {
        let r = crate::ensemble::report::tests::report();
        let line = serde_json::to_string(&r).expect("json");
        let read = Window::parse(&line).expect("a window line");
        assert_eq!(Window::from_report(&r), read);
        assert_eq!(read.coverage, Some(0.5));
        assert_eq!(read.scores[2].rmse, None);
        assert_eq!(read.weights[1], ("trained/forest".to_string(), 0.25));
        let logged = LoggedWindow {
            report: r,
            logged_at: Some(log::stamp(3_600_000)),
            refit_save_seconds: Some(1.5),
            peak_rss_kib: Some(2048),
            corr_late: Vec::new(),
        };
        let read = Window::parse(&logged.to_line().expect("json")).expect("a window line");
        assert_eq!(
            (read.logged_at, read.refit_seconds, read.peak_rss_kib),
            (Some(3_600_000), Some(1.5), Some(2048.0))
        );
    }

    #[test]
    fn stream_log_events_with_their_times() {
        let text = format!(
            "{} {}\n{} connection lost: read failed: reset\ngarbage\n{} {}\n",
            log::stamp(1000),
            LogEvent::Connected { connects: 1 },
            log::stamp(2000),
            log::stamp(3000),
            LogEvent::RestFailed.line("503")
        );
        assert_eq!(
            parse_stream_log(&text),
            vec![
                (1000, LogEvent::Connected { connects: 1 }),
                (3000, LogEvent::RestFailed)
            ]
        );
    }
}
