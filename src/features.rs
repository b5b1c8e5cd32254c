//! Causal features (STUB: to be written by the features helper; signatures are the contract).
//! Every feature of row t reads klines up to t only. Target: ln(close[t+h] / close[t]).

use std::ops::Range;

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use crate::kline::Series;

/// Which features are built, and the horizon; saved with every model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    pub version: u32,
    pub horizon: usize,
}

impl Default for FeatureSpec {
    fn default() -> Self {
        FeatureSpec {
            version: 1,
            horizon: 1,
        }
    }
}

/// Standardisation statistics learnt on training rows only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

/// Feature rows and targets for a range of the series.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// n×d raw (unscaled) features.
    pub x: DMatrix<f64>,
    /// n log-return targets ln(close[t+h] / close[t]).
    pub y: DVector<f64>,
    /// Series index t of each row (the last kline the row may read).
    pub t: Vec<usize>,
}

impl FeatureSpec {
    /// Feature names, in column order.
    pub fn names(&self) -> Vec<&'static str> {
        todo!("features")
    }

    pub fn n_features(&self) -> usize {
        self.names().len()
    }

    /// The first series index t that has a full feature row.
    pub fn warmup(&self) -> usize {
        todo!("features")
    }

    /// The raw feature row at series index `t` (reads rows ..= t only), or `None` before warm-up.
    pub fn row(&self, series: &Series, t: usize) -> Option<Vec<f64>> {
        let _ = (series, t);
        todo!("features")
    }

    /// The target at `t`: ln(close[t+h] / close[t]), or `None` when t+h is past the end.
    pub fn target(&self, series: &Series, t: usize) -> Option<f64> {
        let _ = (series, t);
        todo!("features")
    }

    /// Rows for every t in `range` that has both a full feature row and a target.
    pub fn dataset(&self, series: &Series, range: Range<usize>) -> Dataset {
        let _ = (series, range);
        todo!("features")
    }
}

impl Scaler {
    /// Learns column means and standard deviations (a zero std becomes 1).
    pub fn fit(x: &DMatrix<f64>) -> Scaler {
        let _ = x;
        todo!("scaler")
    }

    pub fn transform(&self, x: &DMatrix<f64>) -> DMatrix<f64> {
        let _ = x;
        todo!("scaler")
    }

    pub fn transform_row(&self, row: &[f64]) -> Vec<f64> {
        let _ = row;
        todo!("scaler")
    }
}
