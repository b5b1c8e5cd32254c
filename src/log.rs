//! A small file logger for long unattended runs: timestamped lines appended to one file with a
//! size cap and rotation (`x.log` → `x.log.1` → `x.log.2`, older ones deleted), so an SD card
//! never fills. Important lines are mirrored to stderr. A torn last line left by a kill is cut
//! off when the file is opened, so line-oriented readers (`ensemble.jsonl`) never see half a
//! record. Logging never fails the program: a write error is reported once on stderr and the
//! logger goes on. No other module's state or maths here.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{fsutil, time};

/// Default size cap of one log file before it is rotated: 1 MiB.
pub(crate) const DEFAULT_MAX_BYTES: u64 = 1 << 20;
/// Default number of rotated files kept next to the live one.
pub(crate) const DEFAULT_KEEP: usize = 2;

/// Milliseconds since the Unix epoch from the local wall clock (0 if the clock is before 1970).
pub fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `YYYY-MM-DD HH:MM:SS.mmmZ` for a millisecond timestamp.
pub fn stamp(ms: i64) -> String {
    format!("{}.{:03}Z", time::format_ms(ms), ms.rem_euclid(1000))
}

/// Parses a [`stamp`] (`YYYY-MM-DD HH:MM:SS[.mmm][Z]`, UTC) back into ms.
pub(crate) fn parse_stamp(text: &str) -> Option<i64> {
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

/// Splits a line written by [`Logger::info`] or [`Logger::warn`] into its time (ms) and its
/// message; `None` for a line that does not start with a [`stamp`].
pub(crate) fn split_line(line: &str) -> Option<(i64, &str)> {
    let (stamp, msg) = line.split_at_checked(STAMP_LEN)?;
    Some((parse_stamp(stamp)?, msg.strip_prefix(' ').unwrap_or(msg)))
}

/// The length of a [`stamp`] (`YYYY-MM-DD HH:MM:SS.mmmZ`).
const STAMP_LEN: usize = 24;

/// A [`Logger`] that several owners on one thread write to (the stream thread and its REST
/// client's notifier, which logs a retry when it happens): cloning shares the file. Writes take
/// a lock, so a line is whole even if two threads ever wrote at once.
#[derive(Debug, Clone)]
pub(crate) struct SharedLogger(std::sync::Arc<std::sync::Mutex<Logger>>);

impl SharedLogger {
    pub fn new(logger: Logger) -> SharedLogger {
        SharedLogger(std::sync::Arc::new(std::sync::Mutex::new(logger)))
    }

    fn with(&self, f: impl FnOnce(&mut Logger)) {
        // A panic while holding the lock leaves the logger usable: its state is a file handle.
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard);
    }

    /// [`Logger::info`].
    pub fn info(&self, msg: &str) {
        self.with(|l| l.info(msg));
    }

    /// [`Logger::warn`].
    pub(crate) fn warn(&self, msg: &str) {
        self.with(|l| l.warn(msg));
    }
}

impl From<Logger> for SharedLogger {
    fn from(logger: Logger) -> SharedLogger {
        SharedLogger::new(logger)
    }
}

/// One log file with rotation. Owned by one thread (or shared as a [`SharedLogger`]).
#[derive(Debug)]
pub(crate) struct Logger {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    max_bytes: u64,
    keep: usize,
    /// Prefix of stderr mirror lines, such as `klinecast stream`.
    tag: String,
    /// Mirror `warn` lines to stderr.
    stderr: bool,
    failed: bool,
}

impl Logger {
    /// Opens (creating it and its directory if needed) the log at `path` for appending, with
    /// the default cap and rotation. A torn last line is cut off first.
    pub(crate) fn open(path: &Path, tag: &str) -> io::Result<Logger> {
        Logger::with_limits(path, tag, DEFAULT_MAX_BYTES, DEFAULT_KEEP)
    }

    /// Like [`Logger::open`] with an explicit size cap (at least 1 KiB) and number of rotated
    /// files kept (at least 1).
    pub(crate) fn with_limits(
        path: &Path,
        tag: &str,
        max_bytes: u64,
        keep: usize,
    ) -> io::Result<Logger> {
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        fsutil::repair_torn_tail(path)?;
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(Logger {
            path: path.to_path_buf(),
            file: Some(file),
            size,
            max_bytes: max_bytes.max(1024),
            keep: keep.max(1),
            tag: tag.to_string(),
            stderr: true,
            failed: false,
        })
    }

    /// Turns the stderr mirror of [`Logger::warn`] on or off (on by default).
    pub(crate) fn mirror_stderr(mut self, on: bool) -> Logger {
        self.stderr = on;
        self
    }

    /// A timestamped line in the file only.
    pub(crate) fn info(&mut self, msg: &str) {
        let line = format!("{} {msg}\n", stamp(wall_clock_ms()));
        self.write_line(&line);
    }

    /// A timestamped line in the file, mirrored to stderr.
    pub(crate) fn warn(&mut self, msg: &str) {
        if self.stderr {
            eprintln!("{}: {msg}", self.tag);
        }
        self.info(msg);
    }

    /// A line written as is (no timestamp), such as one JSON object of a `.jsonl` file.
    pub(crate) fn raw(&mut self, line: &str) {
        let mut text = line.replace('\n', " ");
        text.push('\n');
        self.write_line(&text);
    }

    fn write_line(&mut self, line: &str) {
        let len = line.len() as u64;
        if self.size > 0 && self.size + len > self.max_bytes {
            if let Err(e) = self.rotate() {
                self.report(&e);
            }
        }
        let result = match self.file.as_mut() {
            Some(file) => file.write_all(line.as_bytes()),
            None => Err(io::Error::other("log file is not open")),
        };
        match result {
            Ok(()) => self.size += len,
            Err(e) => self.report(&e),
        }
    }

    /// `x` → `x.1` → … → `x.<keep>` (the oldest is replaced), then a fresh `x`.
    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        for i in (1..self.keep).rev() {
            let from = numbered(&self.path, i);
            if from.exists() {
                fs::rename(&from, numbered(&self.path, i + 1))?;
            }
        }
        fs::rename(&self.path, numbered(&self.path, 1))?;
        self.file = Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?,
        );
        self.size = 0;
        Ok(())
    }

    fn report(&mut self, e: &io::Error) {
        if !self.failed {
            self.failed = true;
            eprintln!(
                "{}: cannot write log {}: {e}; logging to this file is skipped until it works again",
                self.tag,
                self.path.display()
            );
        }
        // Reopen on the next write in case the directory came back.
        if self.file.is_none() {
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .ok();
        }
    }
}

/// `x.log` + `n` → `x.log.n`.
pub(crate) fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn stamps_parse_back() {
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
        for ms in [0, 62_345, 1_577_836_800_999, 1_767_225_599_000] {
            assert_eq!(stamp(ms).len(), STAMP_LEN);
            assert_eq!(parse_stamp(&stamp(ms)), Some(ms));
            let line = format!("{} connected (2 connects so far)", stamp(ms));
            assert_eq!(
                split_line(&line),
                Some((ms, "connected (2 connects so far)"))
            );
        }
        assert_eq!(split_line("not a log line"), None);
    }

    #[test]
    fn stamp_format() {
        assert_eq!(stamp(1_785_542_340_123), "2026-07-31 23:59:00.123Z");
    }

    #[test]
    fn lines_are_timestamped_and_torn_tail_is_cut() {
        let dir = TempDir::new("log-torn");
        let path = dir.join("sub").join("a.log");
        {
            let mut log = Logger::open(&path, "t").expect("open").mirror_stderr(false);
            log.info("hello");
            log.raw("{\"a\":1}");
        }
        // Simulate a kill in the middle of a line.
        let mut f = OpenOptions::new().append(true).open(&path).expect("append");
        f.write_all(b"{\"half\":").expect("write");
        drop(f);
        let mut log = Logger::open(&path, "t")
            .expect("reopen")
            .mirror_stderr(false);
        log.raw("{\"b\":2}");
        let text = fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text:?}");
        assert!(lines[0].ends_with("Z hello"), "{}", lines[0]);
        assert_eq!(lines[0].len(), "2026-07-31 23:59:00.123Z hello".len());
        assert_eq!(&lines[1..], ["{\"a\":1}", "{\"b\":2}"]);
    }

    #[test]
    fn rotation_caps_the_size_and_keeps_two_old_files() {
        let dir = TempDir::new("log-rotate");
        let path = dir.join("r.log");
        let mut log = Logger::with_limits(&path, "t", 1024, 2)
            .expect("open")
            .mirror_stderr(false);
        let line = "x".repeat(99); // 100 bytes with the newline
        for _ in 0..45 {
            log.raw(&line);
        }
        // 45 lines of 100 bytes, 10 per file: 10 in .2, 10 in .1 (older were dropped), 5 live.
        let size = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        assert_eq!(size(&path), 500);
        assert_eq!(size(&numbered(&path, 1)), 1000);
        assert_eq!(size(&numbered(&path, 2)), 1000);
        assert!(!numbered(&path, 3).exists());
    }
}
