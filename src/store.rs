//! The kline store: one CSV per symbol and interval, `<data-dir>/<SYMBOL>_<interval>.csv`,
//! ascending and unique by open_time, crash-safe appends (STUB: to be written).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::kline::{Interval, Kline, Series, Symbol};

/// Errors of the kline store; each names the file (and line) at fault.
#[derive(Debug)]
pub enum StoreError {
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for StoreError {}

/// `<data_dir>/<SYMBOL>_<interval>.csv`.
pub fn kline_path(data_dir: &Path, symbol: &Symbol, interval: Interval) -> PathBuf {
    data_dir.join(format!("{}_{}.csv", symbol.as_str(), interval.as_str()))
}

/// Loads a whole kline CSV as columns of numbers (fast path for training).
pub fn load_series(path: &Path) -> Result<Series, StoreError> {
    let _ = path;
    todo!("load_series")
}

/// Loads a whole kline CSV as klines with their decimal text.
pub fn load_klines(path: &Path) -> Result<Vec<Kline>, StoreError> {
    let _ = path;
    todo!("load_klines")
}
