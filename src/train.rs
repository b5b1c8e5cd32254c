//! `klinecast train`, and [`fit_models`]: the one place the five models are fitted with their
//! defaults, used by `train`, `backtest` and the live refits (STUB: signatures are the contract).

use nalgebra::{DMatrix, DVector};

use crate::cli::TrainArgs;
use crate::error::Error;
use crate::models::{AnyModel, FitError, ModelKind};

/// How to fit the five models.
#[derive(Debug, Clone, PartialEq)]
pub struct FitConfig {
    pub seed: u64,
    /// SVR is O(n²): it is fitted on the most recent `svr_rows` rows only.
    pub svr_rows: usize,
    /// Worker threads for the forest.
    pub threads: usize,
}

/// One fitted model and how long it took (measured by the caller's clock, passed back).
#[derive(Debug, Clone)]
pub struct Fitted {
    pub kind: ModelKind,
    pub model: AnyModel,
}

/// Fits each of `kinds` on scaled features `x` and targets `y` (rows in time order).
/// `on_model` is called before each fit (for progress output by the caller).
pub fn fit_models(
    kinds: &[ModelKind],
    x: &DMatrix<f64>,
    y: &DVector<f64>,
    config: &FitConfig,
    on_model: &mut dyn FnMut(ModelKind),
) -> Result<Vec<Fitted>, FitError> {
    let _ = (kinds, x, y, config, on_model);
    todo!("fit_models")
}

pub fn run(args: &TrainArgs) -> Result<(), Error> {
    let _ = args;
    Err(Error::Config("train is not built yet".to_string()))
}
