//! The eight regressors, written by hand on nalgebra, and the one object-safe trait the ensemble
//! uses. Six are row models (a forecast reads one feature row); the GRU and LSTM
//! ([`rnn`]) are recurrent: a forecast reads the last `seq_len` feature rows
//! ([`AnyModel::seq_len`], [`AnyModel::predict_sequence`]). Pure code: no I/O, no clock. Every model follows params → `fit` → fitted model; random
//! steps take a seed from their params.
//!
//! Data layout: `x` is an n×d `DMatrix<f64>` (one row per sample), `y` an n-vector.

use std::fmt;

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

pub mod cart;
pub mod fit;
pub mod forest;
pub mod gbdt;
pub mod knn;
pub mod linear;
pub mod rnn;
pub mod svr;

/// A fitted regressor, as the ensemble sees it.
pub trait Regressor: Send + Sync {
    /// Short stable name, such as `linear` or `forest`.
    fn name(&self) -> &'static str;

    /// Predicts one sample (`x.len()` equals the number of training features).
    fn predict_row(&self, x: &[f64]) -> f64;

    /// Predicts every row of `x`.
    fn predict(&self, x: &DMatrix<f64>) -> DVector<f64> {
        let mut row = vec![0.0; x.ncols()];
        DVector::from_iterator(
            x.nrows(),
            (0..x.nrows()).map(|i| {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = x[(i, j)];
                }
                self.predict_row(&row)
            }),
        )
    }
}

/// Why a model could not be fitted.
#[derive(Debug, Clone, PartialEq)]
pub enum FitError {
    /// A hyperparameter is out of range.
    BadParam {
        model: &'static str,
        param: &'static str,
        value: String,
        expected: &'static str,
    },
    /// `x` and `y` disagree in length, or there are too few rows.
    Shape { model: &'static str, detail: String },
    /// The data contains NaN or infinite values.
    NonFinite { model: &'static str },
    /// A finite value is outside the range the model computes in (such as f32).
    Range { model: &'static str, detail: String },
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FitError::BadParam {
                model,
                param,
                value,
                expected,
            } => {
                write!(
                    f,
                    "{model}: parameter {param} = {value} is invalid, expected {expected}"
                )
            }
            FitError::Shape { model, detail } | FitError::Range { model, detail } => {
                write!(f, "{model}: {detail}")
            }
            FitError::NonFinite { model } => {
                write!(
                    f,
                    "{model}: training data contains NaN or infinite values; check the input CSV"
                )
            }
        }
    }
}

impl std::error::Error for FitError {}

/// Common input checks for every model's `fit`.
pub(crate) fn check_xy(
    model: &'static str,
    x: &DMatrix<f64>,
    y: &DVector<f64>,
    min_rows: usize,
) -> Result<(), FitError> {
    if x.nrows() != y.len() {
        return Err(FitError::Shape {
            model,
            detail: format!("x has {} rows but y has {}", x.nrows(), y.len()),
        });
    }
    if x.nrows() < min_rows {
        return Err(FitError::Shape {
            model,
            detail: format!("needs at least {min_rows} rows, got {}", x.nrows()),
        });
    }
    if x.ncols() == 0 {
        return Err(FitError::Shape {
            model,
            detail: "x has no columns".to_string(),
        });
    }
    if !x.iter().chain(y.iter()).all(|v| v.is_finite()) {
        return Err(FitError::NonFinite { model });
    }
    Ok(())
}

/// The eight model kinds, in the order they are trained and shown. New kinds are appended (the
/// variant index is part of the model and ensemble files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ModelKind {
    Linear,
    Svr,
    Knn,
    Cart,
    Forest,
    Gbdt,
    Gru,
    Lstm,
}

impl ModelKind {
    /// Every kind: what `train` fits and the backtest's trained members. The six row models
    /// come first, the recurrent ones last.
    pub const ALL: [ModelKind; 8] = [
        ModelKind::Linear,
        ModelKind::Svr,
        ModelKind::Knn,
        ModelKind::Cart,
        ModelKind::Forest,
        ModelKind::Gbdt,
        ModelKind::Gru,
        ModelKind::Lstm,
    ];

    /// The kinds of each window generation (the live refits): every row model. The GRU and
    /// LSTM take tens of seconds to fit, far beyond a window's time budget; they are never
    /// refitted per window but learn online instead (`ensemble::online`).
    pub const GENERATION: [ModelKind; 6] = match Self::ALL.first_chunk() {
        Some(row_models) => *row_models,
        None => panic!("ModelKind::ALL lists the six row models first"),
    };

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Linear => "linear",
            ModelKind::Svr => "svr",
            ModelKind::Knn => "knn",
            ModelKind::Cart => "cart",
            ModelKind::Forest => "forest",
            ModelKind::Gbdt => "gbdt",
            ModelKind::Gru => "gru",
            ModelKind::Lstm => "lstm",
        }
    }

    /// True for the GRU and LSTM, whose forecasts read a sequence of rows.
    pub(crate) fn is_recurrent(self) -> bool {
        matches!(self, ModelKind::Gru | ModelKind::Lstm)
    }
}

/// Any fitted model: the closed set that model files and the ensemble store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AnyModel {
    Linear(linear::Linear),
    Svr(svr::Svr),
    Knn(knn::Knn),
    Cart(cart::Cart),
    Forest(forest::Forest),
    Gbdt(gbdt::Gbdt),
    Gru(rnn::Rnn),
    Lstm(rnn::Rnn),
}

impl AnyModel {
    pub(crate) fn kind(&self) -> ModelKind {
        match self {
            AnyModel::Linear(_) => ModelKind::Linear,
            AnyModel::Svr(_) => ModelKind::Svr,
            AnyModel::Knn(_) => ModelKind::Knn,
            AnyModel::Cart(_) => ModelKind::Cart,
            AnyModel::Forest(_) => ModelKind::Forest,
            AnyModel::Gbdt(_) => ModelKind::Gbdt,
            AnyModel::Gru(_) => ModelKind::Gru,
            AnyModel::Lstm(_) => ModelKind::Lstm,
        }
    }

    /// The GRU or LSTM inside, if recurrent.
    pub fn as_rnn(&self) -> Option<&rnn::Rnn> {
        match self {
            AnyModel::Gru(m) | AnyModel::Lstm(m) => Some(m),
            _ => None,
        }
    }

    /// The GRU or LSTM inside, mutably (online learning).
    pub(crate) fn as_rnn_mut(&mut self) -> Option<&mut rnn::Rnn> {
        match self {
            AnyModel::Gru(m) | AnyModel::Lstm(m) => Some(m),
            _ => None,
        }
    }

    /// Feature rows a forecast reads: `seq_len` for a recurrent model, 1 for a row model.
    pub fn seq_len(&self) -> usize {
        self.as_rnn().map_or(1, |m| m.seq_len)
    }

    /// Forecast from the last rows `rows` (flattened row by row, oldest first; a multiple of
    /// the feature count, normally [`AnyModel::seq_len`] rows). A recurrent model reads the
    /// whole sequence, a row model only the last row.
    pub fn predict_sequence(&self, rows: &[f64], n_features: usize) -> f64 {
        match self.as_rnn() {
            Some(m) => m.predict_sequence(rows),
            None => {
                let start = rows.len().saturating_sub(n_features);
                self.predict_row(&rows[start..])
            }
        }
    }

    /// Checks that a deserialized model is well formed for `n_features` features (array
    /// lengths, tree structure), so that predicting with it cannot panic or loop. Model files
    /// are checksummed, so this only fails for a file written by a buggy or foreign program.
    pub(crate) fn check(&self, n_features: usize) -> Result<(), String> {
        match self {
            AnyModel::Linear(m) => m.check(n_features),
            AnyModel::Svr(m) => m.check(n_features),
            AnyModel::Knn(m) => m.check(n_features),
            AnyModel::Cart(m) => m.check(n_features),
            AnyModel::Forest(m) => m.check(n_features),
            AnyModel::Gbdt(m) => m.check(n_features),
            AnyModel::Gru(m) | AnyModel::Lstm(m) => {
                let cell = m.net.layout.cell;
                if cell.name() != self.kind().name() {
                    return Err(format!("a {} labelled {}", cell.name(), self.kind().name()));
                }
                m.check(n_features)
            }
        }
    }

    fn inner(&self) -> &dyn Regressor {
        match self {
            AnyModel::Linear(m) => m,
            AnyModel::Svr(m) => m,
            AnyModel::Knn(m) => m,
            AnyModel::Cart(m) => m,
            AnyModel::Forest(m) => m,
            AnyModel::Gbdt(m) => m,
            AnyModel::Gru(m) | AnyModel::Lstm(m) => m,
        }
    }
}

impl Regressor for AnyModel {
    fn name(&self) -> &'static str {
        self.inner().name()
    }

    fn predict_row(&self, x: &[f64]) -> f64 {
        self.inner().predict_row(x)
    }

    fn predict(&self, x: &DMatrix<f64>) -> DVector<f64> {
        self.inner().predict(x)
    }
}

/// Predicts every row of `x` with `model`, splitting the rows over `threads` scoped threads
/// when there are at least `min_rows_for_threads` of them. Each row is predicted independently,
/// so the result is bit-identical to calling `predict_row` row by row, for any thread count.
/// The one parallel row predictor: the models' batch `predict` and [`fit::predict_rows`] use it.
pub(crate) fn predict_split<M: Regressor + ?Sized>(
    model: &M,
    x: &DMatrix<f64>,
    min_rows_for_threads: usize,
    threads: usize,
) -> DVector<f64> {
    let (n_rows, n_cols) = x.shape();
    DVector::from_vec(split_rows(
        n_rows,
        min_rows_for_threads,
        threads,
        |from, to| {
            let mut row = vec![0.0; n_cols];
            (from..to)
                .map(|i| {
                    for (j, v) in row.iter_mut().enumerate() {
                        *v = x[(i, j)];
                    }
                    model.predict_row(&row)
                })
                .collect()
        },
    ))
}

/// Runs `predict_range(from, to)` (the forecasts of items `from..to`: rows, or batches of
/// rows) over `n_rows` items split into contiguous ranges on `threads` scoped threads (one range
/// when there are fewer than `min_rows_for_threads` items), and concatenates the ranges'
/// outputs in order.
pub(crate) fn split_rows(
    n_rows: usize,
    min_rows_for_threads: usize,
    threads: usize,
    predict_range: impl Fn(usize, usize) -> Vec<f64> + Sync,
) -> Vec<f64> {
    let threads = threads.clamp(1, n_rows.max(1));
    if threads == 1 || n_rows < min_rows_for_threads.max(2) {
        return predict_range(0, n_rows);
    }
    let chunk = n_rows.div_ceil(threads);
    let predict_range = &predict_range;
    let parts: Vec<Vec<f64>> = std::thread::scope(|scope| {
        let others: Vec<_> = (1..threads)
            .map(|c| {
                let (from, to) = ((c * chunk).min(n_rows), ((c + 1) * chunk).min(n_rows));
                scope.spawn(move || predict_range(from, to))
            })
            .collect();
        let mut parts = vec![predict_range(0, chunk.min(n_rows))];
        for other in others {
            match other.join() {
                Ok(values) => parts.push(values),
                // A panic in a worker is a bug in a model; re-raise it on the caller.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        parts
    });
    parts.into_iter().flatten().collect()
}
