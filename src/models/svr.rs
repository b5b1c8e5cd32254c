//! Epsilon-SVR solved by SMO (STUB: to be written).

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::{FitError, Regressor};

/// Kernel choice. `gamma` for RBF is resolved at fit time ("scale" = 1 / (d · Var(x))).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Kernel {
    Linear,
    Rbf,
}

/// Gamma setting for the RBF kernel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Gamma {
    /// scikit-learn's "scale": 1 / (n_features · X.var()).
    Scale,
    Value(f64),
}

/// Hyperparameters (scikit-learn `SVR()` defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct SvrParams {
    pub kernel: Kernel,
    pub c: f64,
    pub epsilon: f64,
    pub gamma: Gamma,
    pub tol: f64,
    /// Kernel row cache size in megabytes (libsvm's cache_size, default 200).
    pub cache_mb: usize,
    pub max_iter: Option<usize>,
}

impl Default for SvrParams {
    fn default() -> Self {
        SvrParams {
            kernel: Kernel::Rbf,
            c: 1.0,
            epsilon: 0.1,
            gamma: Gamma::Scale,
            tol: 1e-3,
            cache_mb: 200,
            max_iter: None,
        }
    }
}

/// A fitted SVR: `f(x) = Σ coef_i K(sv_i, x) + intercept`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Svr {
    pub kernel: Kernel,
    pub gamma: f64,
    /// Support vectors, row-major, `n_sv × n_features`.
    pub support_vectors: Vec<f64>,
    pub n_features: usize,
    /// Dual coefficients (alpha_i - alpha_i*) of each support vector.
    pub dual_coef: Vec<f64>,
    pub intercept: f64,
}

impl SvrParams {
    pub fn fit(&self, x: &DMatrix<f64>, y: &DVector<f64>) -> Result<Svr, FitError> {
        let _ = (x, y);
        todo!("svr")
    }
}

impl Svr {
    pub fn n_support(&self) -> usize {
        self.dual_coef.len()
    }
}

impl Regressor for Svr {
    fn name(&self) -> &'static str {
        "svr"
    }

    fn predict_row(&self, x: &[f64]) -> f64 {
        let _ = x;
        todo!("svr predict")
    }
}
