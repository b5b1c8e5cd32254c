//! The kline store: one CSV per symbol and interval, `<data-dir>/<SYMBOL>_<interval>.csv`,
//! header [`CSV_HEADER`], rows ascending and unique by open_time, only closed klines, values
//! byte-for-byte as Binance sent them. Appends are whole lines in one write plus fsync; a line
//! torn by a kill is cut off when the store is next opened. Also the loaders that read a whole
//! file back ([`load_klines`] with the decimal text, [`load_series`] as fast numeric columns),
//! and the file name ↔ (symbol, interval)
//! mapping ([`kline_path`], [`parse_file_name`]). Every reader of the format lives here.
//! No network and no maths here.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::fsutil;
use crate::kline::{
    Interval, Kline, KlineError, KlineValues, Series, Symbol, CSV_HEADER, FIELD_NAMES as FIELDS,
};

/// What to tell the user about a broken file.
const FIX_HINT: &str =
    "fix or delete that line, or move the file away and run `klinecast collect` again";

/// Errors of the kline store; each names the file (and line) at fault.
#[derive(Debug)]
pub enum StoreError {
    /// A file operation failed.
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    /// The file has zero bytes (not even the header).
    Empty { path: PathBuf },
    /// The first line is not exactly [`CSV_HEADER`].
    Header { path: PathBuf, found: String },
    /// A data line is malformed, out of order or duplicated (`line` is 1-based).
    Line {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    /// An append would break the ascending, unique order of open times.
    OutOfOrder {
        path: PathBuf,
        open_time: i64,
        last: i64,
    },
    /// Another process (a `collect` or a `stream`) has the file open for appending.
    Locked { path: PathBuf },
    /// An append was given a kline that fails [`Kline::validate`].
    BadKline {
        path: PathBuf,
        open_time: i64,
        source: KlineError,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io {
                path,
                action,
                source,
            } => write!(f, "{action} {}: {source}", path.display()),
            StoreError::Empty { path } => write!(
                f,
                "{} is empty (not even the kline header line): it holds no klines; \
                 delete it and run `klinecast collect` to fill it",
                path.display()
            ),
            StoreError::Header { path, found } => write!(
                f,
                "{}: line 1 is {found:?}, not the kline header {CSV_HEADER:?}; \
                 this is not a klinecast kline file: move it away or pick another --data-dir",
                path.display()
            ),
            StoreError::Line { path, line, msg } => {
                write!(f, "{}:{line}: {msg}; {FIX_HINT}", path.display())
            }
            StoreError::Locked { path } => write!(
                f,
                "{} is being written by another klinecast process (collect or stream); \
                 wait for it to finish or stop it, then try again",
                path.display()
            ),
            StoreError::OutOfOrder {
                path,
                open_time,
                last,
            } => write!(
                f,
                "{}: refusing to append open_time {open_time} ({}): the file already ends at \
                 {last} ({}) and rows must be ascending and unique",
                path.display(),
                crate::time::format_ms(*open_time),
                crate::time::format_ms(*last)
            ),
            StoreError::BadKline {
                path,
                open_time,
                source,
            } => write!(
                f,
                "{}: refusing to append the kline at open_time {open_time}: {source}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for StoreError {}

/// `<data_dir>/<SYMBOL>_<interval>.csv`.
pub fn kline_path(data_dir: &Path, symbol: &Symbol, interval: Interval) -> PathBuf {
    data_dir.join(format!("{}_{}.csv", symbol.as_str(), interval.as_str()))
}

/// A data file whose name does not say its symbol and interval (`<SYMBOL>_<interval>.csv`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileNameError {
    pub path: PathBuf,
    /// Why the symbol or interval part was refused, when the shape was right.
    pub reason: Option<String>,
}

impl fmt::Display for FileNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot tell the symbol and interval from the file name {:?}: name it \
             <SYMBOL>_<interval>.csv, such as AVAXUSDT_1m.csv",
            self.path.display().to_string()
        )?;
        match &self.reason {
            Some(reason) => write!(f, ": {reason}"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for FileNameError {}

/// Symbol and interval from a kline file name `<SYMBOL>_<interval>.csv` (the inverse of
/// [`kline_path`]); the symbol must be uppercase as the store writes it.
pub(crate) fn parse_file_name(path: &Path) -> Result<(Symbol, Interval), FileNameError> {
    let bad = |reason: Option<String>| FileNameError {
        path: path.to_path_buf(),
        reason,
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| bad(None))?;
    let stem = name.strip_suffix(".csv").ok_or_else(|| bad(None))?;
    let (sym, iv) = stem.split_once('_').ok_or_else(|| bad(None))?;
    if sym.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(bad(None));
    }
    let symbol = Symbol::parse(sym).map_err(|e| bad(Some(e)))?;
    let interval = Interval::parse(iv).map_err(|e| bad(Some(e)))?;
    Ok((symbol, interval))
}

/// The `map_err` for an I/O failure `action` on the kline file at `path`.
fn io_error(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        path,
        action,
        source,
    }
}

/// What [`KlineStore::open`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// The file did not exist (or was empty) and was created with the header.
    pub created: bool,
    /// Data rows in the file after opening.
    pub rows: usize,
    /// Bytes cut off the end because the last line had no newline (torn by a kill).
    pub(crate) repaired_bytes: usize,
    /// The text that was cut off (lossy UTF-8), empty when nothing was cut.
    pub(crate) torn_text: String,
}

impl OpenReport {
    /// A line for the user when something was repaired, else `None`.
    pub(crate) fn repair_message(&self, path: &Path) -> Option<String> {
        (self.repaired_bytes > 0).then(|| {
            format!(
                "{}: cut off an incomplete last line ({} bytes, {:?}) left by an interrupted \
                 write; it will be fetched again",
                path.display(),
                self.repaired_bytes,
                self.torn_text
            )
        })
    }
}

/// Bytes [`KlineStore::open`] reads at a time while validating.
const OPEN_CHUNK_BYTES: usize = 256 * 1024;

/// An open kline CSV that closed klines are appended to.
#[derive(Debug)]
pub struct KlineStore {
    path: PathBuf,
    file: File,
    /// File length in bytes (always ends with a newline).
    len_bytes: u64,
    last_open_time: Option<i64>,
    /// Data rows, when known (`None` after [`KlineStore::open_recent`]).
    rows: Option<usize>,
}

impl KlineStore {
    /// Opens (creating it with the header if missing) and validates every row of a kline file,
    /// cutting off a torn last line. Takes an exclusive lock for as long as the store lives, so
    /// two processes never append to the same file. Reads the whole file: `collect` uses it;
    /// `stream` uses [`KlineStore::open_recent`], whose cost does not grow with the history.
    pub fn open(path: &Path) -> Result<(KlineStore, OpenReport), StoreError> {
        KlineStore::open_with(path, None)
    }

    /// [`KlineStore::open`], but validates only the header and the newest `rows` rows (parsed,
    /// ascending, each valid), so opening years of history costs the same as opening a day.
    /// The row count is then unknown ([`KlineStore::rows`] is `None`). Klinecast only ever
    /// appends whole, validated rows, and a torn last line is cut as in `open`.
    pub(crate) fn open_recent(
        path: &Path,
        rows: usize,
    ) -> Result<(KlineStore, OpenReport), StoreError> {
        KlineStore::open_with(path, Some(rows))
    }

    fn open_with(
        path: &Path,
        recent: Option<usize>,
    ) -> Result<(KlineStore, OpenReport), StoreError> {
        let mut report = OpenReport::default();
        let file = KlineStore::create_and_lock(path, &mut report)?;
        match recent {
            Some(n) => KlineStore::open_checking_recent(path, file, n, report),
            None => KlineStore::open_checking_all(path, file, report),
        }
    }

    /// Opens `path` for reading and appending under an exclusive lock, first writing the header
    /// (atomically) where the file is missing, empty or holds only a torn header, which
    /// `report.created` then says.
    fn create_and_lock(path: &Path, report: &mut OpenReport) -> Result<File, StoreError> {
        let io = |action: &'static str| io_error(path, action);
        let header_line = format!("{CSV_HEADER}\n");
        // The first header-line's worth of bytes: enough to tell a missing header (below).
        let head = match File::open(path) {
            Ok(f) => {
                let mut head = Vec::with_capacity(header_line.len());
                f.take(header_line.len() as u64)
                    .read_to_end(&mut head)
                    .map_err(io("reading"))?;
                Some(head)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io("reading")(e)),
        };
        // A missing file, an empty one, or a header torn before its newline (only possible if
        // something other than klinecast wrote it) all start afresh. A header prefix without a
        // newline is shorter than `head`'s limit, so `head` is then the whole file.
        let needs_header = match &head {
            None => true,
            Some(b) => !b.contains(&b'\n') && CSV_HEADER.as_bytes().starts_with(b),
        };
        if needs_header {
            fsutil::write_atomic(path, header_line.as_bytes()).map_err(io("creating"))?;
            report.created = true;
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(path)
            .map_err(io("opening"))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    path: path.to_path_buf(),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io("locking")(e)),
        }
        Ok(file)
    }

    /// The store over `file` (locked) after validating every row, cutting a torn last line.
    fn open_checking_all(
        path: &Path,
        file: File,
        mut report: OpenReport,
    ) -> Result<(KlineStore, OpenReport), StoreError> {
        let io = |action: &'static str| io_error(path, action);
        let header_line = format!("{CSV_HEADER}\n");
        // Validate under the lock (another writer may have appended since the first look),
        // streaming through a fixed buffer: memory does not grow with the file (years of rows).
        let mut chunk = vec![0u8; OPEN_CHUNK_BYTES];
        let mut pending: Vec<u8> = Vec::with_capacity(2 * OPEN_CHUNK_BYTES);
        let mut total: u64 = 0;
        let mut header_seen = false;
        let mut rows = 0;
        let mut last: Option<i64> = None;
        loop {
            let n = (&file).read(&mut chunk).map_err(io("reading"))?;
            if n == 0 {
                break;
            }
            total += n as u64;
            pending.extend_from_slice(&chunk[..n]);
            if !header_seen {
                let Some(i) = pending.iter().position(|&b| b == b'\n') else {
                    if pending.len() > header_line.len() {
                        check_header(path, &pending)?;
                    }
                    continue;
                };
                check_header(path, &pending)?;
                pending.drain(..=i);
                header_seen = true;
            }
            if let Some(end) = pending.iter().rposition(|&b| b == b'\n') {
                let previous = last;
                let parsed = parse_rows_after(&pending[..=end], previous, |v| {
                    last = Some(v.open_time);
                })
                .map_err(|e| e.into_store_error(path, 2 + rows))?;
                rows += parsed;
                pending.drain(..=end);
            }
        }
        if !header_seen {
            // No complete header line: empty, or not a kline file.
            check_header(path, &pending)?;
            return Err(StoreError::Empty {
                path: path.to_path_buf(),
            });
        }
        let cut = fsutil::cut_torn_tail(&file).map_err(io("repairing"))?;
        let mut len_bytes = total;
        if cut > 0 {
            // `pending` is what followed the last newline: the torn line.
            let torn = &pending[pending.len().saturating_sub(cut as usize)..];
            report.repaired_bytes = cut as usize;
            report.torn_text = String::from_utf8_lossy(torn).into_owned();
            len_bytes = total - cut;
        }
        report.rows = rows;
        Ok((
            KlineStore::opened(path, file, len_bytes, last, Some(rows)),
            report,
        ))
    }

    /// The store over `file` (locked, `len_bytes` long, ending with a newline).
    fn opened(
        path: &Path,
        file: File,
        len_bytes: u64,
        last_open_time: Option<i64>,
        rows: Option<usize>,
    ) -> KlineStore {
        KlineStore {
            path: path.to_path_buf(),
            file,
            len_bytes,
            last_open_time,
            rows,
        }
    }

    /// The rest of [`KlineStore::open_recent`], under the lock: header, torn tail, newest rows.
    fn open_checking_recent(
        path: &Path,
        file: File,
        n: usize,
        mut report: OpenReport,
    ) -> Result<(KlineStore, OpenReport), StoreError> {
        let io = |action: &'static str| io_error(path, action);
        let header_line = format!("{CSV_HEADER}\n");
        let mut head = Vec::with_capacity(header_line.len());
        (&file)
            .take(header_line.len() as u64)
            .read_to_end(&mut head)
            .map_err(io("reading"))?;
        if !head.contains(&b'\n') {
            check_header(path, &head)?;
            return Err(StoreError::Empty {
                path: path.to_path_buf(),
            });
        }
        check_header(path, &head)?;
        let (cut, torn) = fsutil::cut_torn_tail_text(&file).map_err(io("repairing"))?;
        if cut > 0 {
            report.repaired_bytes = cut as usize;
            report.torn_text = torn;
        }
        let len_bytes = file.metadata().map_err(io("reading"))?.len();
        let rows = tail_rows(path, &file, len_bytes, n)?;
        let mut last = None;
        for (_, k) in &rows {
            if check_order(last, k.open_time).is_err() {
                return Err(StoreError::Line {
                    path: path.to_path_buf(),
                    line: 0,
                    msg: format!(
                        "the newest rows are not ascending (open_time {} after {}): run \
                         `klinecast collect` to find the bad row",
                        k.open_time,
                        last.unwrap_or_default()
                    ),
                });
            }
            last = Some(k.open_time);
        }
        Ok((
            KlineStore::opened(path, file, len_bytes, last, None),
            report,
        ))
    }

    /// Appends closed klines (ascending, all newer than the last stored row) as whole lines in
    /// one write, then fsyncs. Returns how many rows were written.
    pub fn append(&mut self, klines: &[Kline]) -> Result<usize, StoreError> {
        if klines.is_empty() {
            return Ok(0);
        }
        let mut last = self.last_open_time;
        let mut text = String::with_capacity(klines.len() * 96);
        for k in klines {
            self.check_newer(k, last)?;
            k.validate().map_err(|source| StoreError::BadKline {
                path: self.path.clone(),
                open_time: k.open_time,
                source,
            })?;
            text.push_str(&k.to_csv_line());
            text.push('\n');
            last = Some(k.open_time);
        }
        let written = self
            .file
            .write_all(text.as_bytes())
            .and_then(|()| self.file.sync_data());
        if let Err(source) = written {
            // Put the file back as it was so that this store stays consistent; if even that
            // fails, the next open cuts the torn line.
            let _ = self.file.set_len(self.len_bytes);
            return Err(StoreError::Io {
                path: self.path.clone(),
                action: "appending to",
                source,
            });
        }
        self.len_bytes += text.len() as u64;
        self.last_open_time = last;
        self.rows = self.rows.map(|r| r + klines.len());
        Ok(klines.len())
    }

    /// Refuses `k` unless it is newer than the row with open time `last` (if any) before it.
    fn check_newer(&self, k: &Kline, last: Option<i64>) -> Result<(), StoreError> {
        match last {
            Some(l) if k.open_time <= l => Err(StoreError::OutOfOrder {
                path: self.path.clone(),
                open_time: k.open_time,
                last: l,
            }),
            _ => Ok(()),
        }
    }

    /// The newest `n` stored rows (fewer when the store is shorter), ascending, each with the
    /// byte offset where its line starts. Reads only the end of the file.
    fn tail_rows(&self, n: usize) -> Result<Vec<(u64, Kline)>, StoreError> {
        tail_rows(&self.path, &self.file, self.len_bytes, n)
    }

    /// The newest `n` stored klines (fewer when the store is shorter), ascending. Reads only the
    /// end of the file.
    pub fn tail(&self, n: usize) -> Result<Vec<Kline>, StoreError> {
        Ok(self.tail_rows(n)?.into_iter().map(|(_, k)| k).collect())
    }

    /// Replaces every stored row with an open time at or after `from_open_time` (looked for
    /// among the newest `within` rows) by `klines`, which must all be newer than the row kept
    /// before them. Returns the rows removed. Crash-safe as an append-only log: the file is cut
    /// at a line boundary and fsynced, then the new rows are appended and fsynced, so a kill in
    /// between leaves a valid, shorter store whose missing rows the next fill fetches again.
    pub(crate) fn replace_tail(
        &mut self,
        from_open_time: i64,
        within: usize,
        klines: &[Kline],
    ) -> Result<Vec<Kline>, StoreError> {
        let rows = self.tail_rows(within)?;
        let Some(first) = rows.iter().position(|(_, k)| k.open_time >= from_open_time) else {
            self.append(klines)?;
            return Ok(Vec::new());
        };
        if first == 0 && rows.len() == within && rows[0].0 > self.first_row_offset() {
            // The row before the cut is not among those read: read one more to learn it.
            return self.replace_tail(from_open_time, within + 1, klines);
        }
        let cut = rows[first].0;
        let kept_last = first.checked_sub(1).map(|i| rows[i].1.open_time);
        if let Some(k) = klines.first() {
            self.check_newer(k, kept_last)?;
        }
        let cut_io = |source| StoreError::Io {
            path: self.path.clone(),
            action: "cutting the tail of",
            source,
        };
        self.file.set_len(cut).map_err(cut_io)?;
        self.file.sync_all().map_err(|source| StoreError::Io {
            path: self.path.clone(),
            action: "cutting the tail of",
            source,
        })?;
        let removed: Vec<Kline> = rows[first..].iter().map(|(_, k)| k.clone()).collect();
        self.len_bytes = cut;
        self.rows = self.rows.map(|r| r - removed.len());
        self.last_open_time = kept_last;
        self.append(klines)?;
        Ok(removed)
    }

    /// The open time of the newest stored row.
    pub fn last_open_time(&self) -> Option<i64> {
        self.last_open_time
    }

    /// Number of data rows, when known: after [`KlineStore::open`], not after
    /// [`KlineStore::open_recent`] (which does not read the whole file).
    pub fn rows(&self) -> Option<usize> {
        self.rows
    }

    /// Byte offset of the first data row (just after the header line).
    fn first_row_offset(&self) -> u64 {
        CSV_HEADER.len() as u64 + 1
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The last `n` rows of the first `len` bytes of the kline file `file` (at `path`), ascending,
/// each with the byte offset where its line starts. Reads only the end of the file.
fn tail_rows(
    path: &Path,
    file: &File,
    len: u64,
    n: usize,
) -> Result<Vec<(u64, Kline)>, StoreError> {
    let (start, bytes) =
        fsutil::read_last_lines(file, len, n).map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            action: "reading the tail of",
            source,
        })?;
    let mut rows = Vec::with_capacity(n);
    let mut offset = start;
    for raw in bytes.split_inclusive(|&b| b == b'\n') {
        let at = offset;
        offset += raw.len() as u64;
        if at == 0 {
            continue; // the header
        }
        let text = std::str::from_utf8(raw)
            .unwrap_or("")
            .trim_end_matches('\n');
        let k = Kline::from_csv_line(text).map_err(|e| StoreError::Line {
            path: path.to_path_buf(),
            line: 0,
            msg: format!("a row near the end ({text:?}) does not parse: {e}"),
        })?;
        rows.push((at, k));
    }
    Ok(rows)
}

fn check_header(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    if bytes.is_empty() {
        return Err(StoreError::Empty {
            path: path.to_path_buf(),
        });
    }
    let first = match bytes.iter().position(|&b| b == b'\n') {
        Some(i) => &bytes[..i],
        None => bytes,
    };
    if first == CSV_HEADER.as_bytes() && bytes.len() > first.len() {
        Ok(())
    } else {
        let found: String = String::from_utf8_lossy(first).chars().take(200).collect();
        Err(StoreError::Header {
            path: path.to_path_buf(),
            found,
        })
    }
}

fn read_checked(path: &Path) -> Result<Vec<u8>, StoreError> {
    let bytes = fs::read(path).map_err(|source| StoreError::Io {
        path: path.to_path_buf(),
        action: "reading",
        source,
    })?;
    check_header(path, &bytes)?;
    Ok(bytes)
}

/// What a loader does with a last line that has no newline (a write in progress or torn by a
/// kill).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TornLastLine {
    /// Refuse the file, naming the line (what `train` and `collect` want).
    Refuse,
    /// Ignore the line if it does not parse, keep it if it does (the replay server, which may
    /// serve a file a collector is appending to).
    IgnoreIfBad,
}

/// Loads a whole kline CSV as klines with their decimal text.
pub fn load_klines(path: &Path) -> Result<Vec<Kline>, StoreError> {
    load_klines_with(path, TornLastLine::Refuse)
}

/// [`load_klines`] with a choice of what to do with a last line without a newline.
pub(crate) fn load_klines_with(path: &Path, torn: TornLastLine) -> Result<Vec<Kline>, StoreError> {
    let bytes = read_checked(path)?;
    let body = &bytes[CSV_HEADER.len() + 1..];
    let mut out = Vec::with_capacity(body.len() / 90);
    let mut last: Option<i64> = None;
    for (i, raw) in body.split_inclusive(|&b| b == b'\n').enumerate() {
        let line_no = i + 2;
        let fail = |kind: RowErrorKind| RowError { line: i + 1, kind }.into_store_error(path, 2);
        let Some(line) = raw.strip_suffix(b"\n") else {
            if torn == TornLastLine::IgnoreIfBad {
                let parsed = std::str::from_utf8(raw).ok().map(Kline::from_csv_line);
                if let Some(Ok(k)) = parsed {
                    check_order(last, k.open_time).map_err(fail)?;
                    out.push(k);
                }
                break;
            }
            return Err(fail(RowErrorKind::Torn));
        };
        let Ok(text) = std::str::from_utf8(line) else {
            // Report what `load_series` reports for the same line (a field that is not a
            // number, or the field count): only ASCII lines can parse.
            return Err(match parse_line(line) {
                Err(e) => fail(RowErrorKind::Kline(e)),
                Ok(_) => StoreError::Line {
                    path: path.to_path_buf(),
                    line: line_no,
                    msg: "the line is not valid UTF-8".to_string(),
                },
            });
        };
        let k = Kline::from_csv_line(text).map_err(|e| fail(RowErrorKind::Kline(e)))?;
        check_order(last, k.open_time).map_err(fail)?;
        last = Some(k.open_time);
        out.push(k);
    }
    Ok(out)
}

/// Loads a whole kline CSV as columns of numbers (fast path for training). Same validation as
/// [`load_klines`] (it accepts and refuses exactly the same files, with the same values).
pub fn load_series(path: &Path) -> Result<Series, StoreError> {
    let bytes = read_checked(path)?;
    let body = &bytes[CSV_HEADER.len() + 1..];
    // Split at a newline near the middle and parse both halves at once.
    let split = if body.len() < 1 << 20 {
        body.len()
    } else {
        body[body.len() / 2..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.len(), |i| body.len() / 2 + i + 1)
    };
    let (first, second) = body.split_at(split);
    let parse_half = |half: &[u8]| -> Result<Series, RowError> {
        let mut series = Series::with_capacity(count_lines(half));
        parse_rows(half, |v| series.push(&v))?;
        Ok(series)
    };
    let (a, b) = std::thread::scope(|s| {
        let handle = s.spawn(|| parse_half(second));
        let a = parse_half(first);
        let b = handle.join().unwrap_or(Err(RowError {
            line: 1,
            kind: RowErrorKind::Internal,
        }));
        (a, b)
    });
    let first_lines = count_lines(first);
    let mut series = a.map_err(|e| e.into_store_error(path, 2))?;
    let tail = b.map_err(|e| e.into_store_error(path, 2 + first_lines))?;
    if let (Some(&l), Some(&n)) = (series.open_time.last(), tail.open_time.first()) {
        check_order(Some(l), n).map_err(|kind| {
            RowError {
                line: first_lines + 1,
                kind,
            }
            .into_store_error(path, 2)
        })?;
    }
    drop(bytes);
    series.open_time.extend_from_slice(&tail.open_time);
    series.open.extend_from_slice(&tail.open);
    series.high.extend_from_slice(&tail.high);
    series.low.extend_from_slice(&tail.low);
    series.close.extend_from_slice(&tail.close);
    series.volume.extend_from_slice(&tail.volume);
    series.quote_volume.extend_from_slice(&tail.quote_volume);
    series.trades.extend_from_slice(&tail.trades);
    series
        .taker_buy_base
        .extend_from_slice(&tail.taker_buy_base);
    series
        .taker_buy_quote
        .extend_from_slice(&tail.taker_buy_quote);
    Ok(series)
}

fn count_lines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

/// Why a data row was refused; `line` is 1-based within the parsed chunk.
#[derive(Debug)]
struct RowError {
    line: usize,
    kind: RowErrorKind,
}

#[derive(Debug)]
enum RowErrorKind {
    Kline(KlineError),
    Torn,
    Duplicate(i64),
    Backwards { open_time: i64, previous: i64 },
    Internal,
}

impl RowError {
    /// `first_line` is the file line number of the chunk's first line.
    fn into_store_error(self, path: &Path, first_line: usize) -> StoreError {
        let msg = match self.kind {
            RowErrorKind::Kline(e) => e.to_string(),
            RowErrorKind::Torn => "the last line is incomplete (no newline at the end): a write \
                 was interrupted; run `klinecast collect` to repair the file"
                .to_string(),
            RowErrorKind::Duplicate(t) => format!(
                "duplicate open_time {t} ({}), already on the line before",
                crate::time::format_ms(t)
            ),
            RowErrorKind::Backwards {
                open_time,
                previous,
            } => format!(
                "open_time {open_time} ({}) is not after the previous row's {previous} ({}): \
                 rows must be ascending",
                crate::time::format_ms(open_time),
                crate::time::format_ms(previous)
            ),
            RowErrorKind::Internal => "the parser thread failed".to_string(),
        };
        StoreError::Line {
            path: path.to_path_buf(),
            line: first_line + self.line - 1,
            msg,
        }
    }
}

fn check_order(last: Option<i64>, open_time: i64) -> Result<(), RowErrorKind> {
    match last {
        Some(l) if open_time == l => Err(RowErrorKind::Duplicate(open_time)),
        Some(l) if open_time < l => Err(RowErrorKind::Backwards {
            open_time,
            previous: l,
        }),
        _ => Ok(()),
    }
}

/// Parses newline-terminated data rows (no header) and hands each one's values to `on_row`.
/// Accepts exactly what [`Kline::from_csv_line`] accepts, plus the ascending-order rule.
/// Returns the row count.
fn parse_rows(bytes: &[u8], on_row: impl FnMut(KlineValues)) -> Result<usize, RowError> {
    parse_rows_after(bytes, None, on_row)
}

/// [`parse_rows`] for rows that follow a row opened at `last` (the rule of ascending order
/// continues across chunks).
fn parse_rows_after(
    bytes: &[u8],
    mut last: Option<i64>,
    mut on_row: impl FnMut(KlineValues),
) -> Result<usize, RowError> {
    let mut rows = 0;
    let mut start = 0;
    while start < bytes.len() {
        let line_idx = rows + 1;
        let fail = |kind| RowError {
            line: line_idx,
            kind,
        };
        let Some(len) = bytes[start..].iter().position(|&b| b == b'\n') else {
            return Err(fail(RowErrorKind::Torn));
        };
        let line = &bytes[start..start + len];
        start += len + 1;
        let v = parse_line(line).map_err(|e| fail(RowErrorKind::Kline(e)))?;
        check_order(last, v.open_time).map_err(fail)?;
        last = Some(v.open_time);
        on_row(v);
        rows += 1;
    }
    Ok(rows)
}

/// One CSV line to values, with the same rules and the same first error as
/// `Kline::from_csv_line` (trades, then fields in order, then `Kline::validate`).
fn parse_line(line: &[u8]) -> Result<KlineValues, KlineError> {
    let mut fields: [&[u8]; 11] = [&[]; 11];
    let mut n = 0;
    for field in line.split(|&b| b == b',') {
        if n < 11 {
            fields[n] = field;
        }
        n += 1;
    }
    if n != 11 {
        return Err(KlineError::FieldCount(n));
    }
    let bad = |i: usize| KlineError::BadField {
        field: FIELDS[i],
        text: String::from_utf8_lossy(fields[i]).into_owned(),
    };
    let trades = int_field(fields[8]).ok_or_else(|| bad(8))?;
    if trades < 0 {
        return Err(bad(8));
    }
    let open_time = int_field(fields[0]).ok_or_else(|| bad(0))?;
    let mut dec = [0.0f64; 11];
    for i in [1, 2, 3, 4, 5] {
        dec[i] = decimal_field(fields[i]).ok_or_else(|| bad(i))?;
    }
    let close_time = int_field(fields[6]).ok_or_else(|| bad(6))?;
    for i in [7, 9, 10] {
        dec[i] = decimal_field(fields[i]).ok_or_else(|| bad(i))?;
    }
    // Kline::validate, in the same order (a plain decimal of at most 40 chars is finite).
    if open_time < 0 || close_time < open_time {
        return Err(KlineError::Inconsistent(format!(
            "close_time {close_time} before open_time {open_time}"
        )));
    }
    let (open, high, low, close) = (dec[1], dec[2], dec[3], dec[4]);
    if open <= 0.0 || close <= 0.0 || high <= 0.0 || low <= 0.0 {
        return Err(KlineError::Inconsistent("a price is zero".to_string()));
    }
    if high < low {
        return Err(KlineError::Inconsistent(format!(
            "high {} below low {}",
            String::from_utf8_lossy(fields[2]),
            String::from_utf8_lossy(fields[3])
        )));
    }
    Ok(KlineValues {
        open_time,
        open,
        high,
        low,
        close,
        volume: dec[5],
        close_time,
        quote_volume: dec[7],
        trades: trades as f64,
        taker_buy_base: dec[9],
        taker_buy_quote: dec[10],
    })
}

/// Same acceptance as `kline::parse_int`: optional leading `-`, digits, at most 19 chars.
fn int_field(text: &[u8]) -> Option<i64> {
    if text.is_empty() || text.len() > 19 {
        return None;
    }
    let (neg, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: i64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
    }
    Some(if neg { -v } else { v })
}

/// Same acceptance as `kline::is_plain_decimal`, and the same value as `str::parse::<f64>`
/// (exact fast path when the digits fit in 2^53 and the scale is a power of ten up to 1e22,
/// where one correctly rounded division gives the correctly rounded result).
fn decimal_field(text: &[u8]) -> Option<f64> {
    if text.is_empty() || text.len() > 40 {
        return None;
    }
    const POW10: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];
    let mut mantissa: u64 = 0;
    let mut digits = 0usize;
    let mut significant = 0usize;
    let mut dot: Option<usize> = None;
    for (i, &b) in text.iter().enumerate() {
        match b {
            b'0'..=b'9' => {
                digits += 1;
                if mantissa != 0 || b != b'0' {
                    significant += 1;
                }
                if significant <= 19 {
                    mantissa = mantissa * 10 + u64::from(b - b'0');
                }
            }
            b'.' if dot.is_none() => dot = Some(i),
            _ => return None,
        }
    }
    if digits == 0 {
        return None;
    }
    let frac = dot.map_or(0, |d| text.len() - d - 1);
    if significant <= 15 && frac < POW10.len() {
        return Some(mantissa as f64 / POW10[frac]);
    }
    std::str::from_utf8(text).ok()?.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/AVAXUSDT_1m.csv");
    const L1: &str = "1782864000000,6.5340,6.5430,6.5340,6.5400,33013,1782864059999,215829.8910,365,30518,199515.0150";
    const L2: &str = "1782864060000,6.5390,6.5390,6.5310,6.5340,6177,1782864119999,40359.0740,259,2004,13093.1430";

    fn kline(line: &str) -> Kline {
        Kline::from_csv_line(line).expect("fixture line is valid")
    }

    #[test]
    fn open_creates_appends_and_reopens() {
        let dir = TempDir::new("create");
        let path = dir.join("sub").join("AVAXUSDT_1m.csv");
        let (mut store, report) = KlineStore::open(&path).expect("create");
        assert!(report.created);
        assert_eq!(
            (store.rows().expect("counted"), store.last_open_time()),
            (0, None)
        );
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            format!("{CSV_HEADER}\n")
        );
        assert_eq!(store.append(&[kline(L1), kline(L2)]).expect("append"), 2);
        assert_eq!(store.last_open_time(), Some(1782864060000));
        drop(store);
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            format!("{CSV_HEADER}\n{L1}\n{L2}\n")
        );
        let (store, report) = KlineStore::open(&path).expect("reopen");
        assert!(!report.created);
        assert_eq!(report.repaired_bytes, 0);
        let err = KlineStore::open(&path).expect_err("second writer refused");
        assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
        assert_eq!(
            (store.rows().expect("counted"), store.last_open_time()),
            (2, Some(1782864060000))
        );
        assert_eq!(
            load_klines(&path).expect("load"),
            vec![kline(L1), kline(L2)]
        );
    }

    /// Backs the README's "a partial candle stored by an older version is repaired at start":
    /// the store's tail is read from the end and replaced at a line boundary.
    /// Backs README claim [C3]: collect and stream check the newest stored klines against REST at start and repair a difference, logging both versions.
    #[test]
    fn tail_and_replace_tail() {
        let dir = TempDir::new("replace");
        let all = load_klines(Path::new(SAMPLE)).expect("sample");
        let rows = &all[..3000];
        let mut text = format!("{CSV_HEADER}\n");
        for k in rows {
            text.push_str(&k.to_csv_line());
            text.push('\n');
        }
        let path = dir.file("AVAXUSDT_1m.csv", &text);
        let (mut store, _) = KlineStore::open(&path).expect("open");
        assert_eq!(store.tail(3).expect("tail"), rows[2997..].to_vec());
        assert_eq!(store.tail(5000).expect("all"), rows.to_vec());
        // Plant a partial candle as the last row, then replace it and the row before.
        let mut partial = rows[2999].clone();
        partial.high = partial.open.clone();
        partial.low = partial.open.clone();
        partial.close = partial.open.clone();
        let removed = store
            .replace_tail(
                rows[2998].open_time,
                10,
                &[rows[2998].clone(), partial.clone()],
            )
            .expect("replace");
        assert_eq!(removed, rows[2998..].to_vec());
        assert_eq!(store.tail(1).expect("tail"), vec![partial.clone()]);
        assert_eq!(store.rows().expect("counted"), 3000);
        let removed = store
            .replace_tail(partial.open_time, 1, &rows[2999..])
            .expect("repair");
        assert_eq!(removed, vec![partial]);
        drop(store);
        assert_eq!(fs::read_to_string(&path).expect("read"), text);
        // The cut may lie before the rows looked at first: the row before it is still found.
        let (mut store, _) = KlineStore::open(&path).expect("reopen");
        let removed = store
            .replace_tail(rows[2990].open_time, 10, &rows[2990..2995])
            .expect("cut");
        assert_eq!(removed, rows[2990..].to_vec());
        assert_eq!(
            (store.rows().expect("counted"), store.last_open_time()),
            (2995, Some(rows[2994].open_time))
        );
        // A replacement older than the kept rows is refused and changes nothing.
        let err = store
            .replace_tail(rows[2994].open_time, 10, &rows[2990..2991])
            .expect_err("out of order");
        assert!(matches!(err, StoreError::OutOfOrder { .. }), "{err:?}");
        assert_eq!(store.rows().expect("counted"), 2995);
        // Replacing everything leaves the header and the new rows.
        store
            .replace_tail(rows[0].open_time, 5000, &rows[..2])
            .expect("all");
        drop(store);
        assert_eq!(load_klines(&path).expect("load"), rows[..2].to_vec());
    }

    #[test]
    fn append_refuses_duplicates_and_older_rows() {
        let dir = TempDir::new("order");
        let path = dir.file("x.csv", &format!("{CSV_HEADER}\n{L1}\n{L2}\n"));
        let (mut store, _) = KlineStore::open(&path).expect("open");
        match store.append(&[kline(L2)]) {
            Err(StoreError::OutOfOrder {
                open_time, last, ..
            }) => assert_eq!((open_time, last), (1782864060000, 1782864060000)),
            other => panic!("expected OutOfOrder, got {other:?}"),
        }
        let err = store.append(&[kline(L1)]).expect_err("older row refused");
        assert!(err.to_string().contains("x.csv"), "{err}");
        assert!(err.to_string().contains("1782864000000"), "{err}");
        // Nothing was written by the refused appends.
        assert_eq!(load_klines(&path).expect("load").len(), 2);
    }

    #[test]
    fn torn_last_line_is_cut_on_open() {
        let dir = TempDir::new("torn");
        let torn = &L2[..40];
        let path = dir.file("x.csv", &format!("{CSV_HEADER}\n{L1}\n{torn}"));
        let err = load_series(&path).expect_err("torn line refused by the loader");
        assert!(err.to_string().contains(":3:"), "{err}");
        assert!(err.to_string().contains("klinecast collect"), "{err}");
        let (mut store, report) = KlineStore::open(&path).expect("open repairs");
        assert_eq!(report.repaired_bytes, 40);
        assert_eq!(report.torn_text, torn);
        assert!(report
            .repair_message(&path)
            .expect("message")
            .contains("40 bytes"));
        assert_eq!(store.last_open_time(), Some(1782864000000));
        store.append(&[kline(L2)]).expect("append after repair");
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            format!("{CSV_HEADER}\n{L1}\n{L2}\n")
        );
    }

    /// `open_recent` reads only the newest rows: a bad row far back does not stop it (the full
    /// `open` still finds it), a torn last line is cut as by `open`, a bad recent row is refused,
    /// and `replace_tail` works on a store opened this way (it learns whether a row precedes
    /// the rows it read from their offsets, not from a row count).
    #[test]
    fn open_recent_checks_only_the_newest_rows() {
        let dir = TempDir::new("recent");
        let all = load_klines(Path::new(SAMPLE)).expect("sample");
        let rows = &all[..3000];
        let mut lines: Vec<String> = rows.iter().map(Kline::to_csv_line).collect();
        // Row 10 repeats row 9: a duplicate far from the end.
        lines[10] = lines[9].clone();
        let torn = &lines[2999][..30];
        let text = format!("{CSV_HEADER}\n{}\n{torn}", lines[..2999].join("\n"));
        let path = dir.file("AVAXUSDT_1m.csv", &text);
        let (mut store, report) =
            KlineStore::open_recent(&path, 100).expect("recent rows are fine");
        assert_eq!(
            (report.repaired_bytes, report.torn_text.as_str()),
            (30, torn)
        );
        assert_eq!(store.rows(), None);
        assert_eq!(store.last_open_time(), Some(rows[2998].open_time));
        store.append(&rows[2999..]).expect("append");
        // Cut and replace the last two rows: the row before them is kept.
        let removed = store
            .replace_tail(rows[2998].open_time, 2, &rows[2998..])
            .expect("replace");
        assert_eq!(removed, rows[2998..].to_vec());
        assert_eq!(store.tail(3).expect("tail"), rows[2997..].to_vec());
        drop(store);
        let err = KlineStore::open(&path).expect_err("the full check finds the duplicate");
        assert!(err.to_string().contains("duplicate"), "{err}");
        // A bad row among the newest is refused by open_recent too.
        let mut late = lines.clone();
        late[2990] = late[2989].clone();
        let path = dir.file(
            "BTCUSDT_1m.csv",
            &format!("{CSV_HEADER}\n{}\n", late.join("\n")),
        );
        let err = KlineStore::open_recent(&path, 100).expect_err("recent duplicate");
        assert!(err.to_string().contains("not ascending"), "{err}");
    }

    #[test]
    fn torn_header_is_rewritten_and_foreign_header_refused() {
        let dir = TempDir::new("header");
        let path = dir.file("a.csv", &CSV_HEADER[..20]);
        let (store, report) = KlineStore::open(&path).expect("open");
        assert!(report.created);
        assert_eq!(store.rows().expect("counted"), 0);
        assert_eq!(load_series(&path).expect("empty").len(), 0);
        let other = dir.file("b.csv", "time,price\n1,2\n");
        for err in [
            KlineStore::open(&other)
                .map(|_| ())
                .expect_err("foreign file"),
            load_klines(&other).map(|_| ()).expect_err("foreign file"),
        ] {
            assert!(matches!(err, StoreError::Header { .. }), "{err:?}");
            assert!(err.to_string().contains("b.csv"), "{err}");
        }
    }

    #[test]
    fn loaders_report_file_and_line() {
        let dir = TempDir::new("bad");
        let cases = [
            (
                format!("{L1}\n{L1}\n"),
                3,
                "duplicate open_time 1782864000000",
            ),
            (format!("{L2}\n{L1}\n"), 3, "not after the previous row"),
            (
                format!("{L1}\n{}\n", L2.replace("6.5340,6177", "NaN,6177")),
                3,
                "`close`",
            ),
            (format!("{}\n", L1.replace("33013", "inf")), 2, "`volume`"),
            (format!("{L1}\n1,2,3\n"), 3, "found 3"),
            (format!("{L1}\n\n"), 3, "found 1"),
            (
                format!("{}\n{L2}\n", L1.replace(",365,", ",-1,")),
                2,
                "`trades`",
            ),
            (
                format!("{}\n", L1.replace("6.5430,6.5340", "6.5300,6.5340")),
                2,
                "below low",
            ),
        ];
        for (i, (body, line, needle)) in cases.iter().enumerate() {
            let path = dir.file(&format!("c{i}.csv"), &format!("{CSV_HEADER}\n{body}"));
            let errs = [
                load_series(&path).map(|_| ()).expect_err("series refuses"),
                load_klines(&path).map(|_| ()).expect_err("klines refuse"),
                KlineStore::open(&path)
                    .map(|_| ())
                    .expect_err("open refuses"),
            ];
            for err in errs {
                let text = err.to_string();
                assert!(text.contains(&format!("c{i}.csv:{line}:")), "{text}");
                assert!(text.contains(needle), "case {i}: {text}");
            }
        }
    }

    #[test]
    fn parse_line_agrees_with_from_csv_line() {
        // (text in L1, what replaces it): odd decimals, counts and times, a missing field.
        let nines = "9".repeat(41);
        let edits = [
            ("6.5400", "6.54000000000000000001"),
            ("6.5400", "12345678901234567.5"),
            ("6.5400", ".5"),
            ("6.5400", "5."),
            ("6.5400", "."),
            ("6.5400", "1.2.3"),
            ("6.5400", "+6.54"),
            ("6.5400", " 6.54"),
            ("6.5400", "0.1234567890123456789"),
            ("33013", "0"),
            ("33013", &nines),
            ("1782864000000", "-1"),
            ("1782864000000", "-"),
            ("1782864000000", "99999999999999999999"),
            ("1782864059999", "1782863999999"),
            (",365,", ",,"),
            ("6.5340,6.5430", "0,6.5430"),
        ];
        let mut variants = vec![L1.to_string(), format!("{L1},")];
        variants.extend(edits.iter().map(|(from, to)| L1.replace(from, to)));
        for text in variants {
            let slow = Kline::from_csv_line(&text).map(|k| k.values());
            let fast = parse_line(text.as_bytes());
            match (&slow, &fast) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{text}"),
                (Err(a), Err(b)) => assert_eq!(a, b, "{text}"),
                _ => panic!("disagree on {text}: {slow:?} vs {fast:?}"),
            }
        }
    }

    #[test]
    fn load_series_agrees_with_load_klines_on_the_real_sample() {
        let path = Path::new(SAMPLE);
        let klines = load_klines(path).expect("sample loads");
        let series = load_series(path).expect("sample loads");
        assert_eq!(klines.len(), 30_240);
        let mut expected = Series::with_capacity(klines.len());
        for k in &klines {
            expected.push(&k.values());
        }
        assert_eq!(series, expected);
        // `open` may repair a torn tail and creates the file when missing: run it on a copy so
        // the committed sample can never be modified by a test.
        let dir = TempDir::new("sample-open");
        let copy = dir.join("AVAXUSDT_1m.csv");
        fs::copy(path, &copy).expect("copy the sample");
        let original = fs::read(path).expect("read the sample");
        let (store, report) = KlineStore::open(&copy).expect("sample opens");
        assert_eq!(store.rows().expect("counted"), 30_240);
        assert_eq!(store.last_open_time(), klines.last().map(|k| k.open_time));
        assert_eq!(
            report.repair_message(&copy),
            None,
            "the sample needed no repair"
        );
        drop(store);
        assert_eq!(fs::read(&copy).expect("read the copy"), original);
    }

    #[test]
    fn load_series_splits_large_files_and_keeps_line_numbers() {
        // Over 1 MiB so that both threads get work; a duplicate in the second half must still
        // be reported at its true line, and one across the split point too.
        let dir = TempDir::new("split");
        let base = kline(L1);
        let mut lines = Vec::new();
        for i in 0..20_000i64 {
            let mut k = base.clone();
            k.open_time += i * 60_000;
            k.close_time += i * 60_000;
            lines.push(k.to_csv_line());
        }
        let good = format!("{CSV_HEADER}\n{}\n", lines.join("\n"));
        let path = dir.file("big.csv", &good);
        let series = load_series(&path).expect("loads");
        assert_eq!(series.len(), 20_000);
        assert_eq!(series.open_time[19_999], base.open_time + 19_999 * 60_000);
        let mut broken = lines.clone();
        broken[15_000] = broken[14_999].clone();
        let path = dir.file("dup.csv", &format!("{CSV_HEADER}\n{}\n", broken.join("\n")));
        let err = load_series(&path).expect_err("duplicate refused");
        assert!(err.to_string().contains("dup.csv:15002:"), "{err}");
        // The first line of the second half: after the first newline at or past the middle.
        let body = &good[CSV_HEADER.len() + 1..];
        let split = body.len() / 2 + body[body.len() / 2..].find('\n').expect("newline") + 1;
        let at = body[..split].matches('\n').count();
        let mut broken = lines.clone();
        broken[at] = broken[at - 1].clone();
        let path = dir.file(
            "edge.csv",
            &format!("{CSV_HEADER}\n{}\n", broken.join("\n")),
        );
        let err = load_series(&path).expect_err("duplicate at the split refused");
        assert!(
            err.to_string().contains(&format!("edge.csv:{}:", at + 2)),
            "{err}"
        );
    }

    #[test]
    fn file_names_give_symbol_and_interval_and_round_trip() {
        let (s, i) = parse_file_name(Path::new("data/AVAXUSDT_1m.csv")).expect("valid name");
        assert_eq!((s.as_str(), i.as_str()), ("AVAXUSDT", "1m"));
        assert_eq!(
            kline_path(Path::new("data"), &s, i),
            Path::new("data/AVAXUSDT_1m.csv")
        );
        for bad in [
            "AVAXUSDT-1m-2026-07.csv",
            "AVAXUSDT_1m.txt",
            "AVAXUSDT_1m",
            "AVAXUSDT_1x.csv",
            "avaxusdt_1m.csv",
            "_1m.csv",
        ] {
            let e = parse_file_name(Path::new(bad)).expect_err(bad).to_string();
            assert!(e.contains("<SYMBOL>_<interval>.csv"), "{bad}: {e}");
            assert!(e.contains(bad), "{bad}: {e}");
        }
        let e = parse_file_name(Path::new("AVAXUSDT_1x.csv")).expect_err("interval");
        assert!(
            e.to_string()
                .ends_with(&Interval::parse("1x").expect_err("1x")),
            "{e}"
        );
    }

    #[test]
    fn a_torn_last_line_can_be_ignored_by_choice() {
        let dir = TempDir::new("store-torn-choice");
        let ignore = |text: &str| {
            let path = dir.file("AVAXUSDT_1m.csv", &format!("{CSV_HEADER}\n{text}"));
            load_klines_with(&path, TornLastLine::IgnoreIfBad)
        };
        assert_eq!(
            ignore(&format!("{L1}\n{L2}\n")).expect("good"),
            [kline(L1), kline(L2)]
        );
        // A last line without a newline: ignored when it does not parse, kept when it does.
        assert_eq!(
            ignore(&format!("{L1}\n{}", &L2[..11])).expect("torn"),
            [kline(L1)]
        );
        assert_eq!(
            ignore(&format!("{L1}\n{L2}")).expect("whole"),
            [kline(L1), kline(L2)]
        );
        // Only the last line is forgiven, and the order rules still hold for it.
        let err = ignore(&format!("1,2\n{L1}\n")).expect_err("bad middle line");
        assert!(err.to_string().contains("AVAXUSDT_1m.csv:2:"), "{err}");
        let err = ignore(&format!("{L2}\n{L1}")).expect_err("unsorted");
        assert!(err.to_string().contains("not after"), "{err}");
        let path = dir.file("x.csv", &format!("{CSV_HEADER}\n{L1}\n{}", &L2[..11]));
        let err = load_klines(&path).expect_err("refused by default");
        assert!(err.to_string().contains("x.csv:3:"), "{err}");
    }
}
