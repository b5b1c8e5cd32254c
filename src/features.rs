//! Causal features: every feature of row t reads klines up to t only (STUB: to be written).
//! Target: the log return ln(close[t+h] / close[t]).

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use crate::kline::Series;

/// Which features are built, and the horizon; saved with every model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    pub version: u32,
    pub horizon: usize,
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
    /// n log-return targets.
    pub y: DVector<f64>,
    /// Series index t of each row (the last kline the row may read).
    pub t: Vec<usize>,
}

impl FeatureSpec {
    /// The raw feature row at series index `t`, or `None` before the warm-up.
    pub fn row(&self, series: &Series, t: usize) -> Option<Vec<f64>> {
        let _ = (series, t);
        todo!("features")
    }
}
