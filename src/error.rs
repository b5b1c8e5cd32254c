//! The top-level error: every layer's error, plus the exit code it maps to.
//! Exit codes: 0 ok, 1 runtime failure (network, data, model), 2 usage or configuration error.

use std::fmt;
use std::io;

use crate::{binance, corr, models, persist, store};

/// Anything a command can fail with.
#[derive(Debug)]
pub enum Error {
    /// Bad command line: exit code 2.
    Usage(String),
    /// Bad configuration (paths, URLs, parameter combinations): exit code 2.
    Config(String),
    /// Input data that cannot be used (too few rows, a gap where none may be): exit code 1.
    Data(String),
    /// A file operation failed; `context` says which file and what was being done.
    Io {
        context: String,
        source: io::Error,
    },
    Store(store::StoreError),
    Binance(binance::BinanceError),
    Model(persist::PersistError),
    Fit(models::FitError),
    Corr(corr::CorrError),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Config(_) => 2,
            _ => 1,
        }
    }

    /// Wraps an I/O error with what was being done, e.g. `"reading data/x.csv"`.
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(msg) => write!(f, "{msg}\nrun `klinecast help` for usage"),
            Error::Config(msg) | Error::Data(msg) => f.write_str(msg),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::Store(e) => e.fmt(f),
            Error::Binance(e) => e.fmt(f),
            Error::Model(e) => e.fmt(f),
            Error::Fit(e) => e.fmt(f),
            Error::Corr(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {}

impl From<store::StoreError> for Error {
    fn from(e: store::StoreError) -> Error {
        Error::Store(e)
    }
}

/// A data file name that does not say its symbol and interval is a configuration error.
impl From<store::FileNameError> for Error {
    fn from(e: store::FileNameError) -> Error {
        Error::Config(e.to_string())
    }
}

impl From<binance::BinanceError> for Error {
    fn from(e: binance::BinanceError) -> Error {
        Error::Binance(e)
    }
}

impl From<persist::PersistError> for Error {
    fn from(e: persist::PersistError) -> Error {
        Error::Model(e)
    }
}

impl From<corr::CorrError> for Error {
    fn from(e: corr::CorrError) -> Error {
        Error::Corr(e)
    }
}

impl From<models::FitError> for Error {
    fn from(e: models::FitError) -> Error {
        Error::Fit(e)
    }
}
