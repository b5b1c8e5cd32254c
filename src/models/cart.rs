//! CART regression tree (STUB: to be written).

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::{FitError, Regressor};

/// Hyperparameters (scikit-learn `DecisionTreeRegressor()` defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct CartParams {
    pub max_depth: Option<usize>,
    pub min_samples_split: usize,
    pub min_samples_leaf: usize,
    /// Features considered per split; `None` = all.
    pub max_features: Option<usize>,
    pub seed: u64,
}

impl Default for CartParams {
    fn default() -> Self {
        CartParams {
            max_depth: None,
            min_samples_split: 2,
            min_samples_leaf: 1,
            max_features: None,
            seed: 0,
        }
    }
}

/// A fitted regression tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cart {
    pub n_features: usize,
}

impl CartParams {
    pub fn fit(&self, x: &DMatrix<f64>, y: &DVector<f64>) -> Result<Cart, FitError> {
        let _ = (x, y);
        todo!("cart")
    }
}

impl Regressor for Cart {
    fn name(&self) -> &'static str {
        "cart"
    }

    fn predict_row(&self, x: &[f64]) -> f64 {
        let _ = x;
        todo!("cart predict")
    }
}
