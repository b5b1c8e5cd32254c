//! `klinecast report`: a page of charts from the files `stream` writes, and the scoreboard on
//! stdout. The reading and the maths are split: [`RunFiles::read`] loads the kline store,
//! `predictions.csv`, `ensemble.jsonl` and `stream.log` (only reads them); [`html`] draws
//! them and [`scoreboard_rows`] pools the scoreboard. The forecast, score, weight and coverage
//! charts ([`run_charts`]) and the scoreboard table ([`score_table`]) also draw the page of
//! `backtest --html`, from a [`RunFiles`] the backtest fills in memory.
//!
//! The reader is lenient about what it does not know: `ensemble.jsonl` is read as JSON values,
//! so fields added later (prediction intervals, per-expert weights) are picked up when present
//! and ignored otherwise; `predictions.csv` columns are found by header name, and `lower` /
//! `upper` columns are drawn as an interval when they exist. Generation members (`gen7/knn`)
//! are grouped by kind (`generations/knn`), as on the scoreboard.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::chart::html::Page;
use crate::chart::svg::{self, Axis, Chart, Mark, Scale};
use crate::cli::ReportArgs;
use crate::ensemble::report::{scoreboard_table, ScoreRow, WindowReport};
use crate::error::Error;
use crate::kline::Interval;
use crate::{describe, store, time};

/// One forecast from `predictions.csv`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    pub target_open_time: i64,
    pub forecast: f64,
    pub naive: f64,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
}

/// One forecaster's score in one window.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub label: String,
    pub n: u64,
    pub rmse: Option<f64>,
    pub mae: Option<f64>,
    pub directional: Option<f64>,
}

/// What the report uses of one `ensemble.jsonl` line.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub first_open_time: i64,
    pub last_open_time: i64,
    /// Wall-clock time the line was logged (ms), when present.
    pub logged_at: Option<i64>,
    pub scores: Vec<Score>,
    pub weights: Vec<(String, f64)>,
    pub refit_seconds: Option<f64>,
    pub peak_rss_kib: Option<f64>,
    /// Realised interval coverage of the window, when the ensemble logged it.
    pub coverage: Option<f64>,
}

impl Window {
    /// The window a learner just closed, as the page draws it (a backtest has no wall clock:
    /// no log time, refit time or memory).
    pub fn from_report(r: &WindowReport) -> Window {
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
        }
    }
}

/// Parses `YYYY-MM-DD HH:MM:SS[.mmm][Z]` (UTC) into ms.
pub fn parse_stamp(text: &str) -> Option<i64> {
    let day = time::parse_date(text.get(..10)?).ok()?;
    let rest = text.get(11..)?.trim_end_matches('Z');
    let (hms, ms) = match rest.split_once('.') {
        Some((a, b)) => (a, b.parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let mut parts = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
    // Range checks first (a damaged line may hold any number: no overflow below).
    if !(0..=23).contains(&h) || !(0..=59).contains(&m) || !(0..=60).contains(&s) {
        return None;
    }
    if !(0..=999).contains(&ms) {
        return None;
    }
    day.checked_add(((h * 60 + m) * 60 + s) * 1000 + ms)
}

fn num_field(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64).filter(|x| x.is_finite())
}

/// Reads one `ensemble.jsonl` line; `None` for a line that is not a window report.
pub fn parse_window(line: &str) -> Option<Window> {
    let v: Value = serde_json::from_str(line).ok()?;
    let scores = v
        .get("forecasters")?
        .as_array()?
        .iter()
        .filter_map(|f| {
            Some(Score {
                label: f.get("label")?.as_str()?.to_string(),
                n: f.get("n").and_then(Value::as_u64).unwrap_or(0),
                rmse: num_field(f, "rmse"),
                mae: num_field(f, "mae"),
                directional: num_field(f, "directional"),
            })
        })
        .collect();
    let weights = v
        .get("weights")
        .and_then(Value::as_array)
        .map(|ws| {
            ws.iter()
                .filter_map(|w| {
                    Some((
                        w.get("label")?.as_str()?.to_string(),
                        num_field(w, "weight")?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let coverage = match v.get("coverage") {
        Some(Value::Number(n)) => n.as_f64(),
        Some(obj @ Value::Object(_)) => num_field(obj, "realised")
            .or_else(|| num_field(obj, "realized"))
            .or_else(|| num_field(obj, "window")),
        _ => None,
    };
    Some(Window {
        first_open_time: v.get("first_open_time")?.as_i64()?,
        last_open_time: v.get("last_open_time")?.as_i64()?,
        logged_at: v
            .get("logged_at")
            .and_then(Value::as_str)
            .and_then(parse_stamp),
        scores,
        weights,
        refit_seconds: num_field(&v, "refit_save_seconds"),
        peak_rss_kib: num_field(&v, "peak_rss_kib"),
        coverage,
    })
}

/// Reads `predictions.csv` text (columns found by header name).
pub fn parse_predictions(text: &str) -> Vec<Forecast> {
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let cols: Vec<&str> = header.split(',').collect();
    let at = |name: &str| cols.iter().position(|c| c.trim() == name);
    let (Some(t), Some(f), Some(n)) = (at("target_open_time"), at("forecast"), at("naive")) else {
        return Vec::new();
    };
    let (lo, hi) = (at("lower"), at("upper"));
    lines
        .filter_map(|line| {
            let v: Vec<&str> = line.split(',').collect();
            let get =
                |i: Option<usize>| i.and_then(|i| v.get(i)).and_then(|s| s.parse::<f64>().ok());
            Some(Forecast {
                target_open_time: v.get(t)?.parse().ok()?,
                forecast: get(Some(f))?,
                naive: get(Some(n))?,
                lower: get(lo).filter(|x| x.is_finite()),
                upper: get(hi).filter(|x| x.is_finite()),
            })
        })
        .collect()
}

/// `generations/<kind>` for `gen<N>/<kind>`, the label itself otherwise.
pub fn group(label: &str) -> String {
    match label.split_once('/') {
        Some((g, kind)) if g.starts_with("gen") && g[3..].chars().all(|c| c.is_ascii_digit()) => {
            format!("generations/{kind}")
        }
        _ => label.to_string(),
    }
}

/// A timestamped event from `stream.log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogEvent {
    Connect,
    GapFill,
    Error,
}

/// Classifies `stream.log` lines: `(wall ms, event)`.
pub fn parse_stream_log(text: &str) -> Vec<(i64, LogEvent)> {
    text.lines()
        .filter_map(|line| {
            let t = parse_stamp(line.get(..24)?)?;
            let msg = line.get(25..).unwrap_or_default();
            let ev = if msg.starts_with("connected (") {
                LogEvent::Connect
            } else if msg.starts_with("gap fill:") {
                LogEvent::GapFill
            } else if msg.contains("failed:") || msg.starts_with("server error") {
                LogEvent::Error
            } else {
                return None;
            };
            Some((t, ev))
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
    pub forecasts: Vec<Forecast>,
    pub windows: Vec<Window>,
    pub log: Vec<(i64, LogEvent)>,
}

/// The kline store of a data directory: `--symbol`/`--interval` when given, else the most
/// recently modified `<SYMBOL>_<interval>.csv`.
pub fn find_store(data_dir: &Path) -> Option<PathBuf> {
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(data_dir).ok()?.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("csv")
            || crate::store::parse_file_name(&path).is_err()
        {
            continue;
        }
        let modified = entry
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        if best.as_ref().is_none_or(|(t, _)| modified > *t) {
            best = Some((modified, path));
        }
    }
    best.map(|(_, p)| p)
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
    for n in (1..=crate::log::DEFAULT_KEEP).rev() {
        text.push_str(&read_text(&crate::log::numbered(path, n))?);
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

/// Reads `predictions.csv` text of `path` as [`parse_predictions`] does, with a warning naming
/// the file when its header lacks the needed columns or some rows cannot be read.
pub fn read_predictions(path: &Path, text: &str) -> (Vec<Forecast>, Option<String>) {
    if text.is_empty() {
        return (Vec::new(), None);
    }
    let forecasts = parse_predictions(text);
    let header = text.lines().next().unwrap_or_default();
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    if !["target_open_time", "forecast", "naive"]
        .iter()
        .all(|c| cols.contains(c))
    {
        let shown: String = header.chars().take(80).collect();
        return (
            forecasts,
            Some(format!(
                "{}: the first line {shown:?} is not a predictions.csv header (it needs \
                 target_open_time, forecast and naive): no forecast is drawn; stop \
                 `klinecast stream`, move the file away and start it again",
                path.display()
            )),
        );
    }
    let (refused, total) = refused_lines(text, 1, |line| {
        parse_predictions(&format!("{header}\n{line}")).len() == 1
    });
    let warning = skipped_warning(path, "prediction rows", &refused, total);
    (forecasts, warning)
}

/// Reads `ensemble.jsonl` text (with its rotated predecessors) of `path` as [`parse_window`]
/// does, with a warning naming the file when some lines are not window reports.
pub fn read_windows(path: &Path, text: &str) -> (Vec<Window>, Option<String>) {
    let windows = text.lines().filter_map(parse_window).collect();
    let (refused, total) = refused_lines(text, 0, |line| parse_window(line).is_some());
    let warning = skipped_warning(path, "window reports", &refused, total);
    (windows, warning)
}

impl RunFiles {
    /// Reads the files of a run; missing files give empty parts, never an error.
    pub fn read(data_dir: &Path, log_dir: &Path) -> Result<RunFiles, Error> {
        RunFiles::read_with_warnings(data_dir, log_dir).map(|(files, _)| files)
    }

    /// [`RunFiles::read`], with a warning for each file whose lines could not all be read
    /// (they are left out of the run; the files are only read).
    pub fn read_with_warnings(
        data_dir: &Path,
        log_dir: &Path,
    ) -> Result<(RunFiles, Vec<String>), Error> {
        let store_path = find_store(data_dir).ok_or_else(|| {
            Error::Data(format!(
                "{}: no kline store (<SYMBOL>_<interval>.csv) found; give the --data-dir of a \
                 stream",
                data_dir.display()
            ))
        })?;
        let (symbol, interval) = crate::store::parse_file_name(&store_path)?;
        let series = store::load_series(&store_path)?;
        let closes = series
            .open_time
            .iter()
            .copied()
            .zip(series.close.iter().copied())
            .collect();
        let predictions = data_dir.join("predictions.csv");
        let (forecasts, w1) = read_predictions(&predictions, &read_text(&predictions)?);
        let jsonl = log_dir.join("ensemble.jsonl");
        let (windows, w2) = read_windows(&jsonl, &read_rotated(&jsonl)?);
        let log = parse_stream_log(&read_rotated(&log_dir.join("stream.log"))?);
        let files = RunFiles {
            store_path,
            symbol: symbol.to_string(),
            interval_ms: interval.ms(),
            closes,
            forecasts,
            windows,
            log,
        };
        Ok((files, w1.into_iter().chain(w2).collect()))
    }
}

/// The per-window coverage: the logged figure when present, else the share of the window's
/// forecasts with an interval whose `lower ≤ actual close ≤ upper`.
pub fn window_coverage(
    w: &Window,
    forecasts: &[Forecast],
    closes: &BTreeMap<i64, f64>,
) -> Option<f64> {
    if w.coverage.is_some() {
        return w.coverage;
    }
    let (mut n, mut hit) = (0u32, 0u32);
    for f in forecasts.iter().filter(|f| {
        f.target_open_time >= w.first_open_time && f.target_open_time <= w.last_open_time
    }) {
        if let (Some(lo), Some(hi), Some(&c)) = (f.lower, f.upper, closes.get(&f.target_open_time))
        {
            n += 1;
            hit += u32::from(lo <= c && c <= hi);
        }
    }
    (n > 0).then(|| f64::from(hit) / f64::from(n))
}

/// Cumulative RMSE ÷ naive per group after each window, on the windows where the group was
/// scored: `sqrt(Σ n·rmse² / Σ n·rmse_naive²)`.
pub fn cumulative_ratios(windows: &[Window]) -> BTreeMap<String, Vec<(i64, f64)>> {
    let mut sums: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    let mut out: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for w in windows {
        let Some(naive) = w
            .scores
            .iter()
            .find(|s| s.label == "naive")
            .and_then(|s| s.rmse)
        else {
            continue;
        };
        let mut touched: Vec<String> = Vec::new();
        for s in &w.scores {
            let (Some(r), true) = (s.rmse, s.n > 0) else {
                continue;
            };
            if s.label == "naive" {
                continue;
            }
            let g = group(&s.label);
            let e = sums.entry(g.clone()).or_insert((0.0, 0.0));
            e.0 += s.n as f64 * r * r;
            e.1 += s.n as f64 * naive * naive;
            if !touched.contains(&g) {
                touched.push(g);
            }
        }
        for g in touched {
            if let Some(&(a, b)) = sums.get(&g) {
                if b > 0.0 {
                    out.entry(g)
                        .or_default()
                        .push((w.last_open_time, (a / b).sqrt()));
                }
            }
        }
    }
    out
}

/// The scoreboard over all windows: rows per group, pooled.
pub fn scoreboard_rows(windows: &[Window]) -> Vec<ScoreRow> {
    #[derive(Default)]
    struct Acc {
        n: u64,
        sse: f64,
        sae: f64,
        dir: f64,
        naive_sse: f64,
    }
    let mut acc: Vec<(String, Acc)> = Vec::new();
    for w in windows {
        let naive = w
            .scores
            .iter()
            .find(|s| s.label == "naive")
            .and_then(|s| s.rmse);
        for s in &w.scores {
            let Some(r) = s.rmse.filter(|_| s.n > 0) else {
                continue;
            };
            let g = group(&s.label);
            let i = match acc.iter().position(|(l, _)| *l == g) {
                Some(i) => i,
                None => {
                    acc.push((g, Acc::default()));
                    acc.len() - 1
                }
            };
            let a = &mut acc[i].1;
            let nf = s.n as f64;
            // Saturating: `n` comes from the file (a damaged line may hold any count).
            a.n = a.n.saturating_add(s.n);
            a.sse += nf * r * r;
            a.sae += nf * s.mae.unwrap_or(f64::NAN);
            a.dir += nf * s.directional.unwrap_or(f64::NAN);
            a.naive_sse += nf * naive.map_or(f64::NAN, |x| x * x);
        }
    }
    acc.into_iter()
        .map(|(label, a)| {
            let nf = a.n as f64;
            let fin = |v: f64| v.is_finite().then_some(v);
            ScoreRow {
                label,
                n: a.n,
                rmse: fin((a.sse / nf).sqrt()),
                mae: fin(a.sae / nf),
                mape: None,
                directional: fin(a.dir / nf),
                rmse_vs_naive: fin((a.sse / a.naive_sse).sqrt()),
                weight: None,
            }
        })
        .collect()
}

/// Stacked weight shares per window, grouped: labels and one series per label.
pub fn weight_shares(windows: &[Window]) -> (Vec<String>, Vec<f64>, Vec<Vec<f64>>) {
    let mut labels: Vec<String> = Vec::new();
    for w in windows {
        for (l, _) in &w.weights {
            let g = group(l);
            if !labels.contains(&g) {
                labels.push(g);
            }
        }
    }
    let xs: Vec<f64> = windows.iter().map(|w| w.last_open_time as f64).collect();
    let mut shares = vec![vec![0.0; windows.len()]; labels.len()];
    for (i, w) in windows.iter().enumerate() {
        let total: f64 = w.weights.iter().map(|(_, v)| v.max(0.0)).sum();
        for (l, v) in &w.weights {
            if let Some(k) = labels.iter().position(|g| *g == group(l)) {
                if total > 0.0 {
                    shares[k][i] += v.max(0.0) / total;
                }
            }
        }
    }
    (labels, xs, shares)
}

fn time_axis(xs: impl IntoIterator<Item = f64>) -> Axis {
    let (a, b) = svg::extent(xs);
    Axis::new(a, b, Scale::Time, "")
}

/// Cumulative count of `event` in the log, as a step line over wall time.
fn cumulative(log: &[(i64, LogEvent)], event: LogEvent) -> (Vec<f64>, Vec<f64>) {
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    let mut k = 0.0;
    for &(t, _) in log.iter().filter(|(_, e)| *e == event) {
        xs.push(t as f64);
        ys.push(k);
        k += 1.0;
        xs.push(t as f64);
        ys.push(k);
    }
    (xs, ys)
}

/// The interval of a run's klines (1 minute when unknown).
fn interval_of(files: &RunFiles) -> i64 {
    if files.interval_ms > 0 {
        files.interval_ms
    } else {
        Interval::parse("1m").map_or(60_000, |i| i.ms())
    }
}

/// The charts `report` and `backtest --html` share, added to `page`: the last `hours` of
/// closes with the forecast, its interval and the naive forecast; cumulative RMSE ÷ naive; the
/// weights, stacked; the realised coverage per window as bars `bar_ms` wide.
pub fn run_charts(page: &mut Page, files: &RunFiles, hours: f64, bar_ms: f64) {
    let closes: BTreeMap<i64, f64> = files.closes.iter().copied().collect();
    let last = files
        .forecasts
        .last()
        .map(|f| f.target_open_time)
        .or_else(|| files.closes.last().map(|c| c.0))
        .unwrap_or(0);
    // Saturating: the times come from the files (a damaged row may hold any number).
    let from = last.saturating_sub((hours * 3_600_000.0) as i64);

    // 1. Close, forecast, interval and naive over the last hours.
    let recent: Vec<&Forecast> = files
        .forecasts
        .iter()
        .filter(|f| f.target_open_time > from)
        .collect();
    let actual: Vec<(i64, f64)> = closes
        .range(from + 1..=last)
        .map(|(&t, &c)| (t, c))
        .collect();
    let xs_f: Vec<f64> = recent.iter().map(|f| f.target_open_time as f64).collect();
    let values = actual
        .iter()
        .map(|a| a.1)
        .chain(recent.iter().map(|f| f.forecast))
        .chain(recent.iter().filter_map(|f| f.lower))
        .chain(recent.iter().filter_map(|f| f.upper));
    let mut c = Chart::new(
        "forecast",
        time_axis(
            xs_f.iter()
                .copied()
                .chain(actual.iter().map(|a| a.0 as f64)),
        ),
        Axis::fit(values, "price"),
    );
    let with_interval: Vec<&&Forecast> = recent
        .iter()
        .filter(|f| f.lower.is_some() && f.upper.is_some())
        .collect();
    if !with_interval.is_empty() {
        c.add(Mark::Band {
            label: "interval".to_string(),
            color: svg::color(0).to_string(),
            xs: with_interval
                .iter()
                .map(|f| f.target_open_time as f64)
                .collect(),
            lo: with_interval
                .iter()
                .map(|f| f.lower.unwrap_or(f64::NAN))
                .collect(),
            hi: with_interval
                .iter()
                .map(|f| f.upper.unwrap_or(f64::NAN))
                .collect(),
            opacity: 0.2,
        });
    }
    c.add(Mark::line(
        "close",
        "#222",
        actual.iter().map(|a| a.0 as f64).collect(),
        actual.iter().map(|a| a.1).collect(),
    ));
    c.add(Mark::Line {
        label: "naive".to_string(),
        color: svg::color(9).to_string(),
        xs: xs_f.clone(),
        ys: recent.iter().map(|f| f.naive).collect(),
        width: 1.2,
        dashed: true,
    });
    c.add(Mark::line(
        "forecast",
        svg::color(0),
        xs_f,
        recent.iter().map(|f| f.forecast).collect(),
    ));
    page.heading(&format!("The last {hours} hours"));
    page.figure(
        "Close, ensemble forecast and naive forecast",
        &c.render(),
        &format!(
            "{} forecasts of the next close (each drawn at the kline it forecasts) and {} closes, \
             up to {} UTC; {} with a prediction interval.",
            recent.len(),
            actual.len(),
            time::format_ms(last),
            with_interval.len()
        ),
    );

    // 2. Cumulative RMSE / naive.
    let ratios = cumulative_ratios(&files.windows);
    let all = ratios.values().flatten();
    let mut c = Chart::new(
        "ratio",
        time_axis(all.clone().map(|p| p.0 as f64)),
        Axis::fit(all.map(|p| p.1).chain([1.0]), "RMSE / naive"),
    );
    c.add(Mark::Rule {
        label: String::new(),
        color: "#888".to_string(),
        y: 1.0,
        dashed: true,
    });
    let mut order: Vec<&String> = ratios.keys().collect();
    order.sort_by_key(|l| (l.as_str() != "ensemble", (*l).clone()));
    for (k, label) in order.into_iter().enumerate() {
        let pts = &ratios[label];
        c.add(Mark::Line {
            label: label.clone(),
            color: if label == "ensemble" {
                "#000".to_string()
            } else {
                svg::color(k).to_string()
            },
            xs: pts.iter().map(|p| p.0 as f64).collect(),
            ys: pts.iter().map(|p| p.1).collect(),
            width: if label == "ensemble" { 2.5 } else { 1.3 },
            dashed: false,
        });
    }
    page.heading("Scores and weights, whole run");
    page.figure(
        "Cumulative RMSE ÷ naive",
        &c.render(),
        "After each window, the RMSE of all forecasts so far divided by the naive forecast's \
         RMSE on the same klines; below 1 beats naive. Generations are pooled by kind.",
    );

    // 3. Weights, stacked.
    let (labels, xs, shares) = weight_shares(&files.windows);
    let mut c = Chart::new(
        "weights",
        time_axis(xs.iter().copied()),
        Axis::new(0.0, 1.0, Scale::Linear, "weight"),
    );
    for m in svg::stacked(&labels, &xs, &shares) {
        c.add(m);
    }
    page.figure(
        "Ensemble weights",
        &c.render(),
        "The share of each member group in the ensemble forecast after each window.",
    );

    // 4. Coverage.
    let cov: Vec<(i64, f64)> = files
        .windows
        .iter()
        .filter_map(|w| {
            window_coverage(w, &files.forecasts, &closes).map(|c| (w.last_open_time, c))
        })
        .collect();
    let mut c = Chart::new(
        "coverage",
        time_axis(cov.iter().map(|p| p.0 as f64)),
        Axis::new(0.0, 1.0, Scale::Linear, "coverage"),
    );
    c.add(Mark::Bars {
        label: "realised coverage".to_string(),
        color: svg::color(2).to_string(),
        xs: cov.iter().map(|p| p.0 as f64).collect(),
        ys: cov.iter().map(|p| p.1).collect(),
        width: bar_ms,
    });
    let mean_cov = if cov.is_empty() {
        "no interval yet".to_string()
    } else {
        format!(
            "mean {:.3}",
            cov.iter().map(|p| p.1).sum::<f64>() / cov.len() as f64
        )
    };
    page.figure(
        "Realised interval coverage per window",
        &c.render(),
        &format!("{} windows with intervals; {mean_cov}.", cov.len()),
    );
}

/// Builds the page for a run's files: the last `hours` of forecasts, and the whole run's
/// scores, weights, coverage and health. `title` names the source.
pub fn html(files: &RunFiles, hours: f64, title: &str) -> String {
    let iv = interval_of(files);
    let mut page = Page::new(
        &format!("{}: forecasts and health", files.symbol),
        &format!(
            "{title}: {} forecasts, {} windows; store {}",
            files.forecasts.len(),
            files.windows.len(),
            files.store_path.display()
        ),
    );
    run_charts(&mut page, files, hours, iv as f64 * 10.0);

    // 5. Health.
    page.heading("Health");
    let mut per_hour: BTreeMap<i64, f64> = BTreeMap::new();
    for w in &files.windows {
        if let (Some(t), Some(e)) = (w.logged_at, w.scores.iter().find(|s| s.label == "ensemble")) {
            *per_hour
                .entry(t.div_euclid(3_600_000) * 3_600_000)
                .or_default() += e.n as f64;
        }
    }
    let mut c = Chart::new(
        "klines-per-hour",
        time_axis(
            per_hour
                .keys()
                .map(|&t| t as f64)
                .chain(per_hour.keys().map(|&t| (t + 3_600_000) as f64)),
        ),
        Axis::fit(per_hour.values().copied().chain([0.0]), "klines"),
    );
    c.add(Mark::Bars {
        label: "klines scored per hour".to_string(),
        color: svg::color(0).to_string(),
        xs: per_hour.keys().map(|&t| (t + 1_800_000) as f64).collect(),
        ys: per_hour.values().copied().collect(),
        width: 3_600_000.0,
    });
    page.figure(
        "Klines per hour (wall clock)",
        &c.render(),
        &format!(
            "Expected at full speed: {} per hour.",
            3_600_000 / iv.max(1)
        ),
    );
    let (cx, cy) = cumulative(&files.log, LogEvent::Connect);
    let (gx, gy) = cumulative(&files.log, LogEvent::GapFill);
    let (ex, ey) = cumulative(&files.log, LogEvent::Error);
    let mut c = Chart::new(
        "events",
        time_axis(files.log.iter().map(|e| e.0 as f64)),
        Axis::fit(
            cy.iter().chain(&gy).chain(&ey).copied().chain([0.0, 1.0]),
            "count",
        ),
    );
    c.add(Mark::line("connects", svg::color(0), cx, cy));
    c.add(Mark::line("gap fills", svg::color(2), gx, gy));
    c.add(Mark::line("errors", svg::color(1), ex, ey));
    page.figure(
        "Connects, gap fills and errors (cumulative)",
        &c.render(),
        "From stream.log: every connect after the first is a reconnect.",
    );
    let refit: Vec<(f64, f64)> = files
        .windows
        .iter()
        .filter_map(|w| Some((w.logged_at? as f64, w.refit_seconds?)))
        .collect();
    let mut c = Chart::new(
        "refit",
        time_axis(refit.iter().map(|p| p.0)),
        Axis::fit(refit.iter().map(|p| p.1).chain([0.0]), "seconds"),
    );
    c.add(Mark::line(
        "refit + save per window",
        svg::color(3),
        refit.iter().map(|p| p.0).collect(),
        refit.iter().map(|p| p.1).collect(),
    ));
    page.figure("Refit time per window", &c.render(), "");
    let mem: Vec<(f64, f64)> = files
        .windows
        .iter()
        .filter_map(|w| Some((w.logged_at? as f64, w.peak_rss_kib? / 1024.0)))
        .collect();
    let mut c = Chart::new(
        "memory",
        time_axis(mem.iter().map(|p| p.0)),
        Axis::fit(mem.iter().map(|p| p.1).chain([0.0]), "MiB"),
    );
    c.add(Mark::line(
        "peak resident memory",
        svg::color(4),
        mem.iter().map(|p| p.0).collect(),
        mem.iter().map(|p| p.1).collect(),
    ));
    page.figure(
        "Peak memory",
        &c.render(),
        &match mem.iter().map(|p| p.1).reduce(f64::max) {
            Some(m) => format!("VmHWM of the stream process; at most {m:.1} MiB."),
            None => "not logged by this stream".to_string(),
        },
    );

    page.heading("Scoreboard");
    score_table(&mut page, "scoreboard", &scoreboard_rows(&files.windows));
    page.finish()
}

/// A scoreboard as a page table: n, RMSE, MAE, directional accuracy and RMSE ÷ naive per row.
pub fn score_table(page: &mut Page, id: &str, rows: &[ScoreRow]) {
    page.table(
        id,
        &["forecaster", "n", "rmse", "mae", "dir %", "rmse / naive"],
        &rows
            .iter()
            .map(|r| {
                vec![
                    r.label.clone(),
                    r.n.to_string(),
                    describe::num(r.rmse.unwrap_or(f64::NAN)),
                    describe::num(r.mae.unwrap_or(f64::NAN)),
                    r.directional
                        .map_or("-".to_string(), |d| format!("{:.2}", 100.0 * d)),
                    r.rmse_vs_naive
                        .map_or("-".to_string(), |v| format!("{v:.5}")),
                ]
            })
            .collect::<Vec<_>>(),
    );
}

/// Runs `klinecast report`.
pub fn run(args: &ReportArgs) -> Result<(), Error> {
    let (files, warnings) = RunFiles::read_with_warnings(&args.data_dir, &args.log_dir)?;
    for warning in &warnings {
        eprintln!("klinecast report: warning: {warning}");
    }
    println!(
        "{}: {} klines stored, {} forecasts, {} windows",
        files.store_path.display(),
        files.closes.len(),
        files.forecasts.len(),
        files.windows.len()
    );
    println!(
        "\nscoreboard (price errors over all windows in {}):",
        args.log_dir.display()
    );
    print!("{}", scoreboard_table(&scoreboard_rows(&files.windows)));
    if let Some(out) = &args.html {
        let page = html(&files, args.hours, &args.data_dir.display().to_string());
        describe::write_page(out, &page)?;
        println!("\nwrote {}", out.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_parse() {
        assert_eq!(parse_stamp("1970-01-01 00:01:02.345Z"), Some(62_345));
        assert_eq!(parse_stamp("2020-01-01 00:00:00"), Some(1_577_836_800_000));
        assert_eq!(parse_stamp("2020-01-01 25:00:00"), None);
        // Found by the ensemble_jsonl fuzz target: out-of-range fields are refused, never
        // overflowed.
        for bad in [
            "2026-07-01 10:-9223372036854775808:00.204Z",
            "2026-07-01 -1:00:00",
            "2026-07-01 10:00:00.9223372036854775807Z",
            "2026-07-01 10:00:00.-5Z",
        ] {
            assert_eq!(parse_stamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn groups_generations_by_kind() {
        assert_eq!(group("gen12/knn"), "generations/knn");
        assert_eq!(group("trained/knn"), "trained/knn");
        assert_eq!(group("general/x"), "general/x");
    }

    #[test]
    fn predictions_by_header_name_with_optional_interval() {
        let old = "target_open_time,forecast,naive,ensemble_version,made_after_open_time\n60000,1.5,1.0,1,0\n";
        let f = parse_predictions(old);
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].forecast, f[0].lower), (1.5, None));
        let new = "target_open_time,forecast,lower,upper,naive\n60000,1.5,1.25,1.75,1.0\n";
        let f = parse_predictions(new);
        assert_eq!(
            (f[0].lower, f[0].upper, f[0].naive),
            (Some(1.25), Some(1.75), 1.0)
        );
    }

    fn window(t: i64, scores: &[(&str, u64, f64)]) -> Window {
        Window {
            first_open_time: t,
            last_open_time: t,
            logged_at: None,
            scores: scores
                .iter()
                .map(|&(l, n, r)| Score {
                    label: l.to_string(),
                    n,
                    rmse: Some(r),
                    mae: Some(r),
                    directional: Some(0.5),
                })
                .collect(),
            weights: vec![
                ("naive".into(), 0.75),
                ("gen1/knn".into(), 0.125),
                ("gen2/knn".into(), 0.125),
            ],
            refit_seconds: None,
            peak_rss_kib: None,
            coverage: None,
        }
    }

    #[test]
    fn cumulative_ratio_pools_squared_errors() {
        let w = [
            window(1, &[("ensemble", 10, 1.0), ("naive", 10, 2.0)]),
            window(
                2,
                &[
                    ("ensemble", 10, 3.0),
                    ("naive", 10, 2.0),
                    ("gen1/knn", 10, 4.0),
                ],
            ),
        ];
        let r = cumulative_ratios(&w);
        assert_eq!(r["ensemble"], vec![(1, 0.5), (2, (100.0f64 / 80.0).sqrt())]);
        assert_eq!(r["generations/knn"], vec![(2, 2.0)]);
        let rows = scoreboard_rows(&w);
        assert_eq!(rows[0].label, "ensemble");
        assert_eq!(rows[0].rmse, Some(5f64.sqrt()));
        assert_eq!(rows[1].rmse_vs_naive, Some(1.0));
        let (labels, _, shares) = weight_shares(&w);
        assert_eq!(labels, ["naive", "generations/knn"]);
        assert_eq!(shares[1], vec![0.25, 0.25]);
    }

    /// The backtest's windows are the ones `report` reads back from `ensemble.jsonl`.
    #[test]
    fn window_from_a_report_equals_its_json_line_read_back() {
        let r = crate::ensemble::report::tests::report();
        let line = serde_json::to_string(&r).expect("json");
        let read = parse_window(&line).expect("a window line");
        assert_eq!(Window::from_report(&r), read);
        assert_eq!(read.coverage, Some(0.5));
        assert_eq!(read.scores[2].rmse, None);
        assert_eq!(read.weights[1], ("trained/forest".to_string(), 0.25));
    }

    #[test]
    fn coverage_from_intervals_when_not_logged() {
        let w = window(60_000, &[]);
        let f = [
            Forecast {
                target_open_time: 60_000,
                forecast: 1.0,
                naive: 1.0,
                lower: Some(0.5),
                upper: Some(1.5),
            },
            Forecast {
                target_open_time: 120_000,
                forecast: 1.0,
                naive: 1.0,
                lower: Some(0.5),
                upper: Some(1.5),
            },
        ];
        let closes: BTreeMap<i64, f64> = [(60_000, 2.0), (120_000, 1.0)].into_iter().collect();
        assert_eq!(window_coverage(&w, &f, &closes), Some(0.0));
        let mut w2 = w.clone();
        w2.last_open_time = 120_000;
        assert_eq!(window_coverage(&w2, &f, &closes), Some(0.5));
        w2.coverage = Some(0.9);
        assert_eq!(window_coverage(&w2, &f, &closes), Some(0.9));
    }
}
