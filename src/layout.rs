//! Where one symbol's files live: the one home of the many-symbols directory layout. Pure path
//! arithmetic, no I/O (moving an old single-symbol installation into it is the caller's job).
//!
//! For a symbol and interval, with the default directories:
//!
//! | file | path |
//! |---|---|
//! | kline store | `data/<SYMBOL>_<interval>.csv` |
//! | window buffer | `data/<SYMBOL>_<interval>/Buffer_<window>.csv` |
//! | scored forecasts | `data/<SYMBOL>_<interval>/predictions.csv` |
//! | trained models | `models/<SYMBOL>_<interval>/Trained/` |
//! | saved ensemble | `models/<SYMBOL>_<interval>/Ensembled/EnsembleModel.bin` |
//! | window log | `log/<SYMBOL>_<interval>/ensemble.jsonl` |
//!
//! The process-wide files stay at the top of their directories: the single-instance lock in
//! `data/`, and `log/stream.log` (the connection's log, whose per-symbol lines name the symbol).
//!
//! The single-symbol layout that came before ([`Legacy`]) kept the per-symbol files directly in
//! `data/`, `models/` and `log/`.

use std::path::{Path, PathBuf};

use crate::kline::{Interval, Symbol};

/// The directories a run works in (`--data-dir`, `--models-dir`, `--log-dir`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirs {
    pub data: PathBuf,
    pub models: PathBuf,
    pub log: PathBuf,
}

/// One symbol's files under [`Dirs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolLayout {
    pub symbol: Symbol,
    pub interval: Interval,
    /// `data/<SYMBOL>_<interval>.csv`.
    pub store: PathBuf,
    /// `data/<SYMBOL>_<interval>/`: the buffer and the predictions.
    pub data: PathBuf,
    /// `models/<SYMBOL>_<interval>/`: holds `Trained/` and `Ensembled/`.
    pub models: PathBuf,
    /// `log/<SYMBOL>_<interval>/`: holds `ensemble.jsonl`.
    pub log: PathBuf,
}

impl SymbolLayout {
    pub fn new(dirs: &Dirs, symbol: &Symbol, interval: Interval) -> SymbolLayout {
        let name = folder_name(symbol, interval);
        SymbolLayout {
            symbol: symbol.clone(),
            interval,
            store: dirs.data.join(format!("{name}.csv")),
            data: dirs.data.join(&name),
            models: dirs.models.join(&name),
            log: dirs.log.join(&name),
        }
    }

    /// `data/<SYMBOL>_<interval>/Buffer_<window>.csv`.
    pub fn buffer(&self, window: usize) -> PathBuf {
        buffer_in(&self.data, window)
    }

    /// `data/<SYMBOL>_<interval>/predictions.csv`.
    pub fn predictions(&self) -> PathBuf {
        self.data.join(PREDICTIONS_FILE)
    }

    /// `log/<SYMBOL>_<interval>/ensemble.jsonl`.
    pub(crate) fn window_log(&self) -> PathBuf {
        self.log.join(WINDOW_LOG_FILE)
    }
}

/// `<SYMBOL>_<interval>`: the store's stem, and the name of the symbol's folders.
pub(crate) fn folder_name(symbol: &Symbol, interval: Interval) -> String {
    format!("{}_{}", symbol.as_str(), interval.as_str())
}

/// The single-symbol layout before many symbols: per-symbol files straight in the directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Legacy {
    /// `models/`: held `Trained/` and `Ensembled/`.
    pub models: PathBuf,
    /// `data/Buffer_<window>.csv` is [`Legacy::buffer`].
    pub data: PathBuf,
    /// `data/predictions.csv`.
    pub predictions: PathBuf,
    /// `log/ensemble.jsonl`.
    pub window_log: PathBuf,
}

impl Legacy {
    pub fn new(dirs: &Dirs) -> Legacy {
        Legacy {
            models: dirs.models.clone(),
            data: dirs.data.clone(),
            predictions: dirs.data.join(PREDICTIONS_FILE),
            window_log: dirs.log.join(WINDOW_LOG_FILE),
        }
    }

    /// `data/Buffer_<window>.csv`.
    pub fn buffer(&self, window: usize) -> PathBuf {
        buffer_in(&self.data, window)
    }
}

/// The stream's log, one per process: `log/stream.log`.
pub fn stream_log(dirs: &Dirs) -> PathBuf {
    dirs.log.join(STREAM_LOG_FILE)
}

const PREDICTIONS_FILE: &str = "predictions.csv";
const WINDOW_LOG_FILE: &str = "ensemble.jsonl";
const STREAM_LOG_FILE: &str = "stream.log";

fn buffer_in(dir: &Path, window: usize) -> PathBuf {
    dir.join(format!("Buffer_{window}.csv"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symbol_s_files_are_named_after_it_and_its_interval() {
        let dirs = Dirs {
            data: PathBuf::from("d"),
            models: PathBuf::from("m"),
            log: PathBuf::from("l"),
        };
        let symbol = Symbol::parse("ETHUSDT").expect("symbol");
        let layout = SymbolLayout::new(&dirs, &symbol, Interval::ONE_MINUTE);
        assert_eq!(layout.store, Path::new("d/ETHUSDT_1m.csv"));
        assert_eq!(layout.buffer(15), Path::new("d/ETHUSDT_1m/Buffer_15.csv"));
        assert_eq!(
            layout.predictions(),
            Path::new("d/ETHUSDT_1m/predictions.csv")
        );
        assert_eq!(layout.models, Path::new("m/ETHUSDT_1m"));
        assert_eq!(
            layout.window_log(),
            Path::new("l/ETHUSDT_1m/ensemble.jsonl")
        );
        let legacy = Legacy::new(&dirs);
        assert_eq!(legacy.buffer(15), Path::new("d/Buffer_15.csv"));
        assert_eq!(legacy.predictions, Path::new("d/predictions.csv"));
        assert_eq!(legacy.window_log, Path::new("l/ensemble.jsonl"));
        assert_eq!(stream_log(&dirs), Path::new("l/stream.log"));
    }
}
