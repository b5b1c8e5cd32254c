//! K-nearest-neighbours regression (STUB: to be written).

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::{FitError, Regressor};

/// Hyperparameters (scikit-learn `KNeighborsRegressor()` defaults: k = 5, uniform weights,
/// Euclidean distance).
#[derive(Debug, Clone, PartialEq)]
pub struct KnnParams {
    pub k: usize,
}

impl Default for KnnParams {
    fn default() -> Self {
        KnnParams { k: 5 }
    }
}

/// A fitted KNN model (training data plus its k-d tree).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Knn {
    pub k: usize,
}

impl KnnParams {
    pub fn fit(&self, x: &DMatrix<f64>, y: &DVector<f64>) -> Result<Knn, FitError> {
        let _ = (x, y);
        todo!("knn")
    }
}

impl Regressor for Knn {
    fn name(&self) -> &'static str {
        "knn"
    }

    fn predict_row(&self, x: &[f64]) -> f64 {
        let _ = x;
        todo!("knn predict")
    }
}
