//! Loading the correlated symbols' kline stores for `train` and `backtest` (`--corr`, issue 23):
//! each store is read, checked to cover the series' period and aligned to its rows
//! ([`features::align_corr`], the pure rule). I/O only: the features are in `features.rs`.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::features;
use crate::kline::Series;
use crate::store::{self, StoreError};
use crate::time::format_ms;

/// Model kinds that get a variant reading the correlated symbols' columns, beside their own-only
/// member (the other kinds stay own-only): the two whose fit grows only linearly with the
/// columns (least squares, histogram boosting). See src/README.md, "Correlated pairs".
pub(crate) const CORR_KINDS: [crate::models::ModelKind; 2] = [
    crate::models::ModelKind::Linear,
    crate::models::ModelKind::Gbdt,
];

/// One correlated symbol and its kline store.
#[derive(Debug, Clone, PartialEq)]
pub struct CorrSource {
    pub symbol: String,
    pub path: PathBuf,
}

/// Why the correlated stores could not be used.
#[derive(Debug)]
pub enum CorrError {
    /// The store does not read.
    Load { symbol: String, source: StoreError },
    /// The store does not cover the series' period: it must hold a kline at or before the
    /// series' first open time and one at or after its last.
    NotCovered {
        symbol: String,
        path: PathBuf,
        needed: (i64, i64),
        has: Option<(i64, i64)>,
    },
}

impl fmt::Display for CorrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorrError::Load { symbol, source } => {
                write!(f, "correlated symbol {symbol}: {source}")
            }
            CorrError::NotCovered {
                symbol,
                path,
                needed,
                has,
            } => {
                let has = has.map_or("no klines".to_string(), |(a, b)| {
                    format!("klines from {} to {}", format_ms(a), format_ms(b))
                });
                write!(
                    f,
                    "correlated symbol {symbol}: {} holds {has}, but the series runs from {} to \
                     {}; collect {symbol} over that period (`klinecast collect --symbol \
                     {symbol}`) or leave it out of --corr",
                    path.display(),
                    format_ms(needed.0),
                    format_ms(needed.1)
                )
            }
        }
    }
}

impl std::error::Error for CorrError {}

/// Loads every source, checks that it covers `series` and appends its aligned column to
/// `series.corr` (in the order given).
pub(crate) fn attach(series: &mut Series, sources: &[CorrSource]) -> Result<(), CorrError> {
    for source in sources {
        let neighbour = store::load_series(&source.path).map_err(|e| CorrError::Load {
            symbol: source.symbol.clone(),
            source: e,
        })?;
        check_covers(series, &neighbour, &source.symbol, &source.path)?;
        let column = features::align_corr(series, &source.symbol, &neighbour);
        series.corr.push(column);
    }
    Ok(())
}

/// The coverage rule of [`CorrError::NotCovered`].
fn check_covers(
    series: &Series,
    neighbour: &Series,
    symbol: &str,
    path: &Path,
) -> Result<(), CorrError> {
    let (Some(&first), Some(&last)) = (series.open_time.first(), series.open_time.last()) else {
        return Ok(());
    };
    let has = neighbour
        .open_time
        .first()
        .copied()
        .zip(neighbour.open_time.last().copied());
    if has.is_some_and(|(a, b)| a <= first && b >= last) {
        return Ok(());
    }
    Err(CorrError::NotCovered {
        symbol: symbol.to_string(),
        path: path.to_path_buf(),
        needed: (first, last),
        has,
    })
}
