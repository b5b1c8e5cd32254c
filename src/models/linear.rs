//! Ordinary least squares with intercept (STUB: to be written).

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::{FitError, Regressor};

/// Hyperparameters (scikit-learn `LinearRegression()` defaults: fit_intercept = true).
#[derive(Debug, Clone, PartialEq)]
pub struct LinearParams {
    pub fit_intercept: bool,
}

impl Default for LinearParams {
    fn default() -> Self {
        LinearParams {
            fit_intercept: true,
        }
    }
}

/// A fitted linear model: `y = intercept + coef · x`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Linear {
    pub coef: Vec<f64>,
    pub intercept: f64,
}

impl LinearParams {
    pub fn fit(&self, x: &DMatrix<f64>, y: &DVector<f64>) -> Result<Linear, FitError> {
        let _ = (x, y);
        todo!("linear regression")
    }
}

impl Regressor for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn predict_row(&self, x: &[f64]) -> f64 {
        self.intercept + self.coef.iter().zip(x).map(|(c, v)| c * v).sum::<f64>()
    }
}
