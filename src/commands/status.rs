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
use crate::live;
use crate::live::lock::{self, LOCK_FILE};
use crate::log::wall_clock_ms;
use crate::run_files::{find_store, parse_stream_log, Window};
use crate::{store, time};

/// A running stream is stale when its store has not grown for more than this many intervals.
pub(crate) const STALE_INTERVALS: i64 = 3;

/// What `status` found, printed as text or JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct Status {
    pub(crate) data_dir: String,
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

fn age_ms(path: &Path, now: i64) -> Option<i64> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    let ms = modified
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_millis() as i64;
    Some((now - ms).max(0))
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

/// Gathers the status of the stream using `data_dir` and `log_dir` at wall time `now`.
pub(crate) fn gather(data_dir: &Path, log_dir: &Path, now: i64) -> Result<Status, Error> {
    let (running, holder) = lock::probe(data_dir).map_err(|e| {
        Error::io(
            format!("testing the lock {}", data_dir.join(LOCK_FILE).display()),
            e,
        )
    })?;
    let (pid, started) = holder.as_deref().map_or((None, None), lock::parse_whoami);
    let store: Option<PathBuf> = find_store(data_dir);
    let interval = store
        .as_deref()
        .and_then(|p| store::parse_file_name(p).ok())
        .map(|(_, iv)| iv);
    let kline_age = store.as_deref().and_then(|p| age_ms(p, now));
    let last_open = store
        .as_deref()
        .and_then(last_line)
        .and_then(|l| l.split(',').next().and_then(|t| t.parse::<i64>().ok()));
    let log_text = std::fs::read_to_string(log_dir.join("stream.log")).unwrap_or_default();
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
    let jsonl = log_dir.join("ensemble.jsonl");
    let peak = pid
        .filter(|_| running)
        .and_then(|pid| live::peak_rss_kib_of(&pid.to_string()))
        .or_else(|| {
            last_line(&jsonl)
                .and_then(|l| Window::parse(&l))
                .and_then(|w| w.peak_rss_kib)
                .map(|k| k as u64)
        });
    let (healthy, verdict) = assess(running, kline_age, interval.map(|i| i.ms()));
    Ok(Status {
        data_dir: data_dir.display().to_string(),
        running,
        holder,
        pid,
        started,
        store: store.map(|p| p.display().to_string()),
        interval: interval.map(|i| i.to_string()),
        last_kline_open_time: last_open.map(time::format_ms),
        kline_age_s: kline_age.map(|a| a as f64 / 1000.0),
        forecast_age_s: age_ms(&data_dir.join("predictions.csv"), now).map(|a| a as f64 / 1000.0),
        window_age_s: age_ms(&jsonl, now).map(|a| a as f64 / 1000.0),
        reconnects_last_hour: reconnects,
        errors_last_hour: errors,
        peak_memory_kib: peak,
        healthy,
        verdict,
    })
}

/// The screen.
pub(crate) fn to_text(s: &Status) -> String {
    let age = |a: Option<f64>| a.map_or("none".to_string(), |a| format!("{} ago", fmt_age(a)));
    let mut out = format!(
        "klinecast status of {}: {}\n",
        s.data_dir,
        if s.healthy { "OK" } else { "NOT OK" }
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
        "store:        {} ({})\n",
        s.store.as_deref().unwrap_or("none"),
        s.interval.as_deref().unwrap_or("-")
    ));
    out.push_str(&format!(
        "last kline:   {} (stored {})\n",
        s.last_kline_open_time
            .as_deref()
            .map_or("none".to_string(), |t| format!("{t} UTC")),
        age(s.kline_age_s)
    ));
    out.push_str(&format!("last forecast: {}\n", age(s.forecast_age_s)));
    out.push_str(&format!("last window:  {}\n", age(s.window_age_s)));
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
    out.push_str(&format!("verdict:      {}\n", s.verdict));
    out
}

/// Runs `klinecast status`: exit 0 when healthy, 1 otherwise.
pub(crate) fn run(args: &StatusArgs) -> Result<(), Error> {
    let s = gather(&args.dirs.data, &args.dirs.log, wall_clock_ms())?;
    if args.json {
        let json = serde_json::to_string(&s)
            .map_err(|e| Error::Data(format!("cannot encode the status: {e}")))?;
        println!("{json}");
    } else {
        print!("{}", to_text(&s));
    }
    if s.healthy {
        Ok(())
    } else {
        Err(Error::Data(format!(
            "{}; start it with `klinecast stream --data-dir {}` (cron restarts it every minute)",
            s.verdict, s.data_dir
        )))
    }
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
