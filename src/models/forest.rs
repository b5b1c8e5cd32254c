//! Random forest regression (STUB: to be written).

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::cart::Cart;
use super::{FitError, Regressor};

/// Hyperparameters (scikit-learn `RandomForestRegressor()` defaults: 100 trees, bootstrap,
/// max_features = all features).
#[derive(Debug, Clone, PartialEq)]
pub struct ForestParams {
    pub n_trees: usize,
    pub max_depth: Option<usize>,
    pub min_samples_split: usize,
    pub min_samples_leaf: usize,
    pub max_features: Option<usize>,
    pub bootstrap: bool,
    /// Rows drawn per tree (scikit-learn `max_samples`); `None` = as many as the training set.
    pub max_samples: Option<usize>,
    /// Worker threads (std::thread::scope); results do not depend on it.
    pub threads: usize,
    pub seed: u64,
}

impl Default for ForestParams {
    fn default() -> Self {
        ForestParams {
            n_trees: 100,
            max_depth: None,
            min_samples_split: 2,
            min_samples_leaf: 1,
            max_features: None,
            bootstrap: true,
            max_samples: None,
            threads: 2,
            seed: 0,
        }
    }
}

/// A fitted forest: the mean of its trees.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Forest {
    pub trees: Vec<Cart>,
}

impl ForestParams {
    pub fn fit(&self, x: &DMatrix<f64>, y: &DVector<f64>) -> Result<Forest, FitError> {
        let _ = (x, y);
        todo!("forest")
    }
}

impl Regressor for Forest {
    fn name(&self) -> &'static str {
        "forest"
    }

    fn predict_row(&self, x: &[f64]) -> f64 {
        self.trees.iter().map(|t| t.predict_row(x)).sum::<f64>() / self.trees.len().max(1) as f64
    }
}
