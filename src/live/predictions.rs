//! `<data-dir>/predictions.csv`: one row per forecast of the next close, appended as each closed
//! kline arrives. Crash-safe: a torn last line is cut off on open, and the last target is read
//! back so a restart never writes a second row for a target already present (targets only grow).
//! No maths here: rows come from the ensembler.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::fsutil;

/// The header of `predictions.csv`: the forecast, the naive forecast and the central prediction
/// interval `[lower, upper]` of the close (`0` and `inf` while the interval is unbounded).
pub const HEADER: &str =
    "target_open_time,forecast,naive,ensemble_version,made_after_open_time,lower,upper";

/// The header of version 1 files (before intervals). Such a file is moved aside to
/// `predictions.v1.csv` and a new file starts: its rows are never silently misread.
pub(crate) const HEADER_V1: &str =
    "target_open_time,forecast,naive,ensemble_version,made_after_open_time";

/// One forecast: the close of the kline opening at `target_open_time`, made after the kline
/// opening at `made_after_open_time` closed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictionRow {
    pub target_open_time: i64,
    pub forecast: f64,
    pub naive: f64,
    pub ensemble_version: u64,
    pub made_after_open_time: i64,
    pub lower: f64,
    pub upper: f64,
}

impl PredictionRow {
    pub fn to_csv_line(&self) -> String {
        format!(
            "{},{},{},{},{},{},{}",
            self.target_open_time,
            self.forecast,
            self.naive,
            self.ensemble_version,
            self.made_after_open_time,
            self.lower,
            self.upper
        )
    }

    /// The central prediction interval, when it is bounded.
    pub(crate) fn interval(&self) -> Option<(f64, f64)> {
        (self.lower.is_finite() && self.upper.is_finite()).then_some((self.lower, self.upper))
    }

    pub fn from_csv_line(line: &str) -> Option<PredictionRow> {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 7 {
            return None;
        }
        Some(PredictionRow {
            target_open_time: f[0].parse().ok()?,
            forecast: f[1].parse().ok()?,
            naive: f[2].parse().ok()?,
            ensemble_version: f[3].parse().ok()?,
            made_after_open_time: f[4].parse().ok()?,
            lower: f[5].parse().ok()?,
            upper: f[6].parse().ok()?,
        })
    }
}

/// A whole `predictions.csv` text (header and one line per row), for a file written at once
/// (`backtest --predictions`); the live stream appends rows to [`PredictionLog`] instead.
pub(crate) fn to_csv(rows: &[PredictionRow]) -> String {
    let mut out = format!("{HEADER}\n");
    for row in rows {
        out.push_str(&row.to_csv_line());
        out.push('\n');
    }
    out
}

/// Reads the rows of a whole file's text (a torn or malformed line is skipped). A version 1
/// file (one `stream` has not opened since it was written) reads with unbounded intervals; a
/// file with another header reads as no rows.
pub(crate) fn read_rows(text: &str) -> Vec<PredictionRow> {
    let mut lines = text.lines();
    match lines.next() {
        Some(HEADER) => lines.filter_map(PredictionRow::from_csv_line).collect(),
        Some(HEADER_V1) => lines
            .filter_map(|line| {
                PredictionRow::from_csv_line(&format!("{line},0,inf"))
                    .filter(|_| line.split(',').count() == 5)
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The open predictions file.
#[derive(Debug)]
pub struct PredictionLog {
    file: File,
    path: PathBuf,
    last_target: Option<i64>,
    /// The file found at open that could not be appended to, and where it went.
    moved: Option<MovedAside>,
}

/// A `predictions.csv` found at open that this build cannot append to (a version 1 file, a
/// header of another version, a last line that is not a row, a foreign file): it is renamed
/// whole, byte for byte, and a new file starts. Nothing is deleted, and a damaged file does not
/// stop `stream` (which cron would restart into the same error every minute).
#[derive(Debug, Clone, PartialEq)]
pub struct MovedAside {
    /// Where the file went: `predictions.v1.csv` or `predictions.damaged.csv` (`.N` if taken).
    pub to: PathBuf,
    /// Why, for the log: "had the version 1 layout …", "its first line … is not the header …".
    pub why: String,
}

impl PredictionLog {
    /// Opens or creates the file, repairs a torn last line and reads the last target. A file
    /// that cannot be appended to is moved aside first (see [`MovedAside`]).
    pub fn open(path: &Path) -> io::Result<PredictionLog> {
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let mut moved = move_aside_unless(path, "v1", header_problem_v1)?;
        if moved.is_none() {
            moved = move_aside_unless(path, "damaged", damage)?;
        }
        fsutil::repair_torn_tail(path)?;
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        if file.metadata()?.len() == 0 {
            file.write_all(format!("{HEADER}\n").as_bytes())?;
            file.sync_data()?;
        }
        let len = file.metadata()?.len();
        let last_target = last_line_bounded(&file, len)?
            .as_deref()
            .and_then(PredictionRow::from_csv_line)
            .map(|row| row.target_open_time);
        Ok(PredictionLog {
            file,
            path: path.to_path_buf(),
            last_target,
            moved,
        })
    }

    /// The file found at open that was moved aside, if one was.
    pub fn moved_aside(&self) -> Option<&MovedAside> {
        self.moved.as_ref()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The largest target written so far.
    pub fn last_target(&self) -> Option<i64> {
        self.last_target
    }

    /// Appends `row` unless its target is already present (returns false then).
    pub fn append(&mut self, row: &PredictionRow) -> io::Result<bool> {
        if self
            .last_target
            .is_some_and(|last| row.target_open_time <= last)
        {
            return Ok(false);
        }
        self.file
            .write_all(format!("{}\n", row.to_csv_line()).as_bytes())?;
        self.file.sync_data()?;
        self.last_target = Some(row.target_open_time);
        Ok(true)
    }
}

/// Longest line read back from `predictions.csv` (a row is under 200 bytes): a longer first or
/// last line is not one of ours, and is refused without being read whole.
const MAX_LINE: u64 = 4096;

/// The first line of the file at `path` (without its newline), at most [`MAX_LINE`] bytes of it.
fn first_line(path: &Path) -> io::Result<Vec<u8>> {
    let mut head = Vec::new();
    File::open(path)?.take(MAX_LINE).read_to_end(&mut head)?;
    let end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    head.truncate(end);
    Ok(head)
}

/// The last line of the first `len` bytes of `file` (lossy UTF-8, without its newline), or
/// `None` when it is longer than [`MAX_LINE`] bytes.
fn last_line_bounded(file: &File, len: u64) -> io::Result<Option<String>> {
    let start = len.saturating_sub(MAX_LINE);
    let mut reader = file;
    reader.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    reader.take(len - start).read_to_end(&mut buf)?;
    let body = buf.strip_suffix(b"\n").unwrap_or(&buf);
    Ok(match body.iter().rposition(|&b| b == b'\n') {
        Some(i) => Some(String::from_utf8_lossy(&body[i + 1..]).into_owned()),
        None if start == 0 => Some(String::from_utf8_lossy(body).into_owned()),
        None => None,
    })
}

/// Why the file at `path` is a version 1 file (its first line is the v1 header), or `None`.
fn header_problem_v1(path: &Path) -> io::Result<Option<String>> {
    Ok((first_line(path)? == HEADER_V1.as_bytes())
        .then(|| "had the version 1 layout (no interval columns)".to_string()))
}

/// Why the file at `path` cannot be appended to, or `None` when it can: judged on its complete
/// lines (a torn last line is crash debris, cut afterwards): none at all but the start of a
/// header, or this build's header with a prediction row (or nothing) as the last line.
fn damage(path: &Path) -> io::Result<Option<String>> {
    let file = File::open(path)?;
    let complete = fsutil::complete_len(&file)?;
    let first = first_line(path)?;
    let torn_header = complete == 0 && HEADER.as_bytes().starts_with(&first);
    if first != HEADER.as_bytes() && !torn_header {
        let shown = String::from_utf8_lossy(&first[..first.len().min(100)]).into_owned();
        return Ok(Some(format!(
            "its first line {shown:?} is not the header this build writes ({HEADER:?}): damaged \
             or from another klinecast version"
        )));
    }
    if complete == 0 {
        return Ok(None);
    }
    Ok(match last_line_bounded(&file, complete)? {
        Some(line) if line == HEADER || PredictionRow::from_csv_line(&line).is_some() => None,
        Some(line) => {
            let shown: String = line.chars().take(100).collect();
            Some(format!("its last line {shown:?} is not a prediction row"))
        }
        None => Some(format!(
            "its last line is longer than {MAX_LINE} bytes: not a prediction row"
        )),
    })
}

/// Moves the file at `path` aside to `predictions.<tag>.csv` (or `.<tag>.N.csv` if taken; an
/// atomic rename, then a directory fsync) when `problem` finds one; a missing file is fine.
fn move_aside_unless(
    path: &Path,
    tag: &str,
    problem: fn(&Path) -> io::Result<Option<String>>,
) -> io::Result<Option<MovedAside>> {
    let why = match problem(path) {
        Ok(Some(why)) => why,
        Ok(None) => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let dir = fsutil::parent_dir(path);
    let mut to = dir.join(format!("predictions.{tag}.csv"));
    let mut n = 1;
    while to.exists() {
        to = dir.join(format!("predictions.{tag}.{n}.csv"));
        n += 1;
    }
    fs::rename(path, &to)?;
    fsutil::sync_dir(&dir)?;
    Ok(Some(MovedAside { to, why }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    fn row(target: i64) -> PredictionRow {
        PredictionRow {
            target_open_time: target,
            forecast: 12.345678901234,
            naive: 12.3,
            ensemble_version: 3,
            made_after_open_time: target - 60_000,
            lower: 12.1,
            upper: f64::INFINITY,
        }
    }

    #[test]
    fn a_file_reads_back_in_both_versions() {
        let rows = [
            row(120_000),
            PredictionRow {
                upper: 12.6,
                ..row(180_000)
            },
        ];
        let mut text = format!("{HEADER}\n");
        for r in &rows {
            text.push_str(&format!("{}\n", r.to_csv_line()));
        }
        assert_eq!(read_rows(&text), rows);
        assert_eq!(
            read_rows(&format!("{text}180000,1.5")),
            rows,
            "a torn line is skipped"
        );
        assert_eq!(rows[0].interval(), None);
        assert_eq!(rows[1].interval(), Some((12.1, 12.6)));
        let v1 = format!("{HEADER_V1}\n60000,1.5,1,1,0\n60000,1.5,1,1,0,1,2\n");
        let old = read_rows(&v1);
        assert_eq!(old.len(), 1);
        assert_eq!(
            (old[0].forecast, old[0].naive, old[0].interval()),
            (1.5, 1.0, None)
        );
        assert_eq!(read_rows("a,b\n1,2\n"), Vec::new());
        assert_eq!(read_rows(""), Vec::new());
    }

    #[test]
    fn round_trip_skip_duplicates_and_repair_torn_line() {
        let dir = TempDir::new("pred");
        let path = dir.path().join("sub").join("predictions.csv");
        let mut log = PredictionLog::open(&path).expect("open");
        assert_eq!(log.last_target(), None);
        assert!(log.append(&row(120_000)).expect("append"));
        assert!(log.append(&row(180_000)).expect("append"));
        assert!(!log.append(&row(180_000)).expect("dup"));
        drop(log);
        // A kill in the middle of the next row.
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(b"240000,12.").expect("write");
        drop(f);
        let mut log = PredictionLog::open(&path).expect("reopen");
        assert_eq!(log.last_target(), Some(180_000));
        assert!(!log.append(&row(120_000)).expect("old"));
        assert!(log.append(&row(240_000)).expect("new"));
        let text = fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], HEADER);
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(
            PredictionRow::from_csv_line(lines[3]),
            Some(row(240_000)),
            "values round-trip exactly"
        );
    }

    /// Backs the README claim "old predictions.csv files are migrated, never silently
    /// misread": a version 1 file is moved aside whole and a new file with the interval
    /// columns starts.
    /// Backs README claim [C15]: A version 1 predictions.csv is moved aside, never misread.
    #[test]
    fn a_version_1_file_is_moved_aside() {
        let dir = TempDir::new("pred-v1");
        let path = dir.path().join("predictions.csv");
        let old = format!("{HEADER_V1}\n120000,12.3,12.3,1,60000\n");
        fs::write(&path, &old).expect("write");
        let log = PredictionLog::open(&path).expect("open");
        let moved = dir.path().join("predictions.v1.csv");
        assert_eq!(
            log.moved_aside().map(|m| m.to.as_path()),
            Some(moved.as_path())
        );
        assert_eq!(log.last_target(), None);
        assert_eq!(fs::read_to_string(&moved).expect("moved"), old);
        assert_eq!(
            fs::read_to_string(&path).expect("new"),
            format!("{HEADER}\n")
        );
        drop(log);
        // A second v1 file does not overwrite the first.
        fs::write(&path, &old).expect("write");
        let log = PredictionLog::open(&path).expect("open");
        assert_eq!(
            log.moved_aside().map(|m| m.to.as_path()),
            Some(dir.path().join("predictions.v1.1.csv").as_path())
        );
    }
}
