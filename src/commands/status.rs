//! `klinecast status`: one screen for a Pi user, and an exit code for cron or a monitor. Is a
//! stream running (does a process hold `<data-dir>/.klinecast.lock`, and which), how old are the
//! last stored kline, the last forecast and the last window, how many reconnects and errors in
//! the last hour, the peak memory. Exit 0 when healthy; 1 when stale: not running, or running
//! but no new kline stored for more than [`STALE_INTERVALS`] intervals.
//!
//! Ages are wall-clock ages of the files (their modification times), so they mean the same
//! against Binance and against the replay server, whose klines carry old market times. Only
//! reads: the lock is tested with a non-blocking `try_lock` on the existing file (never
//! created), released at once. [`assess`] is the pure verdict.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cli::StatusArgs;
use crate::error::Error;
use crate::layout::Dirs;
use crate::live;
use crate::live::lock::{self, LOCK_FILE};
use crate::log::wall_clock_ms;
use crate::run_files::{age_ms, parse_stream_log, series_to_read, SeriesFiles, Window};
use crate::time;

/// A running stream is stale when its store has not grown for more than this many intervals.
pub(crate) const STALE_INTERVALS: i64 = 3;

/// What `status` found, printed as text or JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct Status {
    pub(crate) data_dir: String,
    /// The series' symbol (`None`: no kline store found).
    pub(crate) symbol: Option<String>,
    pub(crate) running: bool,
    /// The lock holder's own words: `pid N started TIME`.
    pub(crate) holder: Option<String>,
    pub(crate) pid: Option<u32>,
    pub(crate) started: Option<String>,
    pub(crate) store: Option<String>,
    pub(crate) interval: Option<String>,
    pub(crate) last_kline_open_time: Option<String>,
    /// Wall-clock ages in seconds (file modification times).
    pub(crate) kline_age_s: Option<f64>,
    pub(crate) forecast_age_s: Option<f64>,
    pub(crate) window_age_s: Option<f64>,
    pub(crate) reconnects_last_hour: usize,
    pub(crate) errors_last_hour: usize,
    pub(crate) peak_memory_kib: Option<u64>,
    pub(crate) healthy: bool,
    pub(crate) verdict: String,
}

/// The verdict from the facts: `(healthy, why)`.
pub(crate) fn assess(
    running: bool,
    kline_age_ms: Option<i64>,
    interval_ms: Option<i64>,
) -> (bool, String) {
    if !running {
        return (false, "stopped: no stream holds the lock".to_string());
    }
    match (kline_age_ms, interval_ms) {
        (Some(age), Some(iv)) if age > STALE_INTERVALS * iv => (
            false,
            format!(
                "stale: running, but no kline stored for {} (more than {STALE_INTERVALS} intervals)",
                fmt_age(age as f64 / 1000.0)
            ),
        ),
        (None, _) | (_, None) => (false, "stale: running, but no kline store yet".to_string()),
        _ => (true, "healthy".to_string()),
    }
}

/// `42 s`, `3 min 5 s`, `2 h 10 min`, `3 d 4 h`.
pub(crate) fn fmt_age(s: f64) -> String {
    let s = s.max(0.0) as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        3600..=86_399 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// The last line of the file at `path` (trimmed; `None` when empty or unreadable). Only the
/// last [`MAX_LAST_LINE`] bytes are read: a longer last line (a damaged file) gives `None`.
fn last_line(path: &Path) -> Option<String> {
    let mut file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let start = len.saturating_sub(MAX_LAST_LINE);
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut bytes = Vec::new();
    file.take(len - start).read_to_end(&mut bytes).ok()?;
    let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    let line = match body.iter().rposition(|&b| b == b'\n') {
        Some(i) => &body[i + 1..],
        None if start == 0 => body,
        None => return None,
    };
    let text = String::from_utf8_lossy(line).trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// The longest last line [`last_line`] reads (a kline row is about 150 bytes, a window report
/// a few KB).
const MAX_LAST_LINE: u64 = 1 << 20;

/// What `status` finds of the process: is a stream running, its log's last hour, its memory.
struct Process {
    running: bool,
    holder: Option<String>,
    pid: Option<u32>,
    started: Option<String>,
    reconnects: usize,
    errors: usize,
    peak: Option<u64>,
}

/// The stream process of `dirs` at wall time `now` (its peak memory from `/proc` while it runs,
/// else from the last window report of the first of `window_logs` that has one).
fn gather_process(dirs: &Dirs, window_logs: &[PathBuf], now: i64) -> Result<Process, Error> {
    let (running, holder) = lock::probe(&dirs.data).map_err(|e| {
        Error::io(
            format!("testing the lock {}", dirs.data.join(LOCK_FILE).display()),
            e,
        )
    })?;
    let (pid, started) = holder.as_deref().map_or((None, None), lock::parse_whoami);
    let log_text = std::fs::read_to_string(dirs.log.join("stream.log")).unwrap_or_default();
    let hour_ago = now - 3_600_000;
    let mut reconnects = 0;
    let mut errors = 0;
    for (_, event) in parse_stream_log(&log_text)
        .into_iter()
        .filter(|(t, _)| *t >= hour_ago)
    {
        reconnects += usize::from(event.is_reconnect());
        errors += usize::from(event.is_error());
    }
    let peak = pid
        .filter(|_| running)
        .and_then(|pid| live::peak_rss_kib_of(&pid.to_string()))
        .or_else(|| {
            window_logs.iter().find_map(|jsonl| {
                last_line(jsonl)
                    .and_then(|l| Window::parse(&l))
                    .and_then(|w| w.peak_rss_kib)
                    .map(|k| k as u64)
            })
        });
    Ok(Process {
        running,
        holder,
        pid,
        started,
        reconnects,
        errors,
        peak,
    })
}

/// The status of one series (`None`: no series at all) of the stream process `p`.
fn series_status(dirs: &Dirs, p: &Process, series: Option<&SeriesFiles>, now: i64) -> Status {
    let store = series.map(|s| s.store.clone()).filter(|s| s.is_file());
    let kline_age = store.as_deref().and_then(|p| age_ms(p, now));
    let last_open = store
        .as_deref()
        .and_then(last_line)
        .and_then(|l| l.split(',').next().and_then(|t| t.parse::<i64>().ok()));
    let interval = series.map(|s| s.interval);
    let (healthy, verdict) = assess(p.running, kline_age, interval.map(|i| i.ms()));
    let age_s = |path: Option<&Path>| {
        path.and_then(|path| age_ms(path, now))
            .map(|a| a as f64 / 1000.0)
    };
    Status {
        data_dir: dirs.data.display().to_string(),
        symbol: series.map(|s| s.symbol.to_string()),
        running: p.running,
        holder: p.holder.clone(),
        pid: p.pid,
        started: p.started.clone(),
        store: store.map(|p| p.display().to_string()),
        interval: interval.map(|i| i.to_string()),
        last_kline_open_time: last_open.map(time::format_ms),
        kline_age_s: kline_age.map(|a| a as f64 / 1000.0),
        forecast_age_s: age_s(series.map(|s| s.predictions.as_path())),
        window_age_s: age_s(series.map(|s| s.window_log.as_path())),
        reconnects_last_hour: p.reconnects,
        errors_last_hour: p.errors,
        peak_memory_kib: p.peak,
        healthy,
        verdict,
    }
}

/// Gathers the status of every series in `series` (one status without a series when there is
/// none) of the stream using `dirs`, at wall time `now`.
pub(crate) fn gather(dirs: &Dirs, series: &[SeriesFiles], now: i64) -> Result<Vec<Status>, Error> {
    let logs: Vec<PathBuf> = series.iter().map(|s| s.window_log.clone()).collect();
    let process = gather_process(dirs, &logs, now)?;
    if series.is_empty() {
        return Ok(vec![series_status(dirs, &process, None, now)]);
    }
    Ok(series
        .iter()
        .map(|s| series_status(dirs, &process, Some(s), now))
        .collect())
}

/// The screen: the process, then one line per series.
pub(crate) fn to_text(all: &[Status]) -> String {
    let Some(s) = all.first() else {
        return String::new();
    };
    let age = |a: Option<f64>| a.map_or("none".to_string(), |a| format!("{} ago", fmt_age(a)));
    let healthy = all.iter().all(|s| s.healthy);
    let mut out = format!(
        "klinecast status of {}: {}\n",
        s.data_dir,
        if healthy { "OK" } else { "NOT OK" }
    );
    out.push_str(&format!(
        "stream:       {}\n",
        match (s.running, &s.holder) {
            (true, Some(h)) => format!("running ({h})"),
            (true, None) => "running".to_string(),
            (false, Some(h)) => format!("not running (last: {h})"),
            (false, None) => "not running (never started here)".to_string(),
        }
    ));
    out.push_str(&format!(
        "last hour:    {} reconnects, {} errors\n",
        s.reconnects_last_hour, s.errors_last_hour
    ));
    out.push_str(&format!(
        "peak memory:  {}\n",
        s.peak_memory_kib.map_or("unknown".to_string(), |k| format!(
            "{:.1} MiB",
            k as f64 / 1024.0
        ))
    ));
    out.push_str(&format!(
        "{:<12} {:<4} {:<21} {:<16} {:<16} {:<16} verdict\n",
        "symbol", "int.", "last kline (UTC)", "stored", "last forecast", "last window"
    ));
    for s in all {
        out.push_str(&format!(
            "{:<12} {:<4} {:<21} {:<16} {:<16} {:<16} {}\n",
            s.symbol.as_deref().unwrap_or("(no store)"),
            s.interval.as_deref().unwrap_or("-"),
            s.last_kline_open_time.as_deref().unwrap_or("none"),
            age(s.kline_age_s),
            age(s.forecast_age_s),
            age(s.window_age_s),
            s.verdict
        ));
    }
    out
}

/// Runs `klinecast status`: exit 0 when every series is healthy, 1 otherwise (naming the
/// stale ones). `--json` prints one object per series, one a line.
pub(crate) fn run(args: &StatusArgs) -> Result<(), Error> {
    let series = series_to_read(&args.dirs, &args.symbols, args.interval);
    let all = gather(&args.dirs, &series, wall_clock_ms())?;
    if args.json {
        for s in &all {
            let json = serde_json::to_string(s)
                .map_err(|e| Error::Data(format!("cannot encode the status: {e}")))?;
            println!("{json}");
        }
    } else {
        print!("{}", to_text(&all));
    }
    let bad: Vec<&Status> = all.iter().filter(|s| !s.healthy).collect();
    let Some(first) = bad.first() else {
        return Ok(());
    };
    let verdict = if all.len() == 1 {
        first.verdict.clone()
    } else {
        format!(
            "{} of {} symbols not healthy: {}",
            bad.len(),
            all.len(),
            bad.iter()
                .map(|s| format!("{} ({})", s.symbol.as_deref().unwrap_or("-"), s.verdict))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let symbols = if all.len() > 1 {
        let names: Vec<&str> = all.iter().filter_map(|s| s.symbol.as_deref()).collect();
        format!("--symbols {} ", names.join(","))
    } else {
        String::new()
    };
    Err(Error::Data(format!(
        "{verdict}; start it with `klinecast stream {symbols}--data-dir {}` (cron restarts it \
         every minute)",
        first.data_dir
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        assert!(!assess(false, Some(0), Some(60_000)).0);
        assert_eq!(
            assess(true, Some(180_000), Some(60_000)),
            (true, "healthy".to_string())
        );
        let (ok, why) = assess(true, Some(180_001), Some(60_000));
        assert!(!ok);
        assert!(
            why.starts_with("stale: running, but no kline stored for 3 min 0 s"),
            "{why}"
        );
        assert!(!assess(true, None, None).0);
        assert_eq!(fmt_age(7_500.0), "2 h 5 min");
    }
}
