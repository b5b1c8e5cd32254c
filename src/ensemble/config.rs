//! The ensemble's configuration ([`EnsembleConfig`], [`Combiner`]), its validation and the
//! errors of building an ensemble.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::features::FeatureSpec;
use crate::models::ModelKind;

use super::interval;

/// Default scored forecasts per window (`--window`).
pub(crate) const DEFAULT_WINDOW: usize = 15;
/// Default rows each window generation is fitted on (`--refit-rows`).
pub(crate) const DEFAULT_REFIT_ROWS: usize = 1440;
/// Default window generations kept in the pool (`--generations`).
pub(crate) const DEFAULT_GENERATIONS: usize = 8;

/// Tunable parameters of the ensemble and of the window learner that drives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnsembleConfig {
    /// Features of the window generations; its horizon is the ensemble's horizon.
    pub spec: FeatureSpec,
    /// Scored forecasts per window (one refit per window).
    pub window: usize,
    /// Rows (with a known target) each generation is fitted on.
    pub refit_rows: usize,
    /// Window generations kept in the pool.
    pub generations: usize,
    /// Discount per scored forecast, in (0, 1).
    pub lambda: f64,
    /// The experts' gate: its two memories, a day and a week (discount per scored forecast,
    /// each in (0, 1); see [`super::Expert::awake`]).
    pub gate_lambdas: [f64; 2],
    /// Sharpness of the weights: raw weight = exp(eta · skill).
    pub eta: f64,
    /// Standard errors by which a member must beat the naive to vote.
    pub z: f64,
    /// Scored forecasts a member needs before it may vote.
    pub min_scored: u64,
    /// The model kinds of each generation.
    pub kinds: Vec<ModelKind>,
    /// How the experts' forecasts are combined (`--combiner`).
    pub combiner: Combiner,
    /// Nominal coverage of the prediction intervals (`--coverage`), in (0, 1).
    pub coverage: f64,
}

/// How the ensemble combines its experts' forecasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Combiner {
    /// ML-Poly over expert families with the gradient trick ([`aggregate`]): parameter-free,
    /// with a regret bound against the best expert and the best convex combination.
    MlPoly,
    /// The hard gate: a member votes only when a lower confidence bound on its skill over the
    /// naive is positive (see the module doc).
    Lcb,
}

impl Combiner {
    pub(crate) const ALL: [Combiner; 2] = [Combiner::MlPoly, Combiner::Lcb];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Combiner::MlPoly => "ml-poly",
            Combiner::Lcb => "lcb",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Combiner> {
        Combiner::ALL.into_iter().find(|c| c.name() == text)
    }
}

/// The experts' gate memories (discount per forecast): λ = 0.999 (half-life 693 forecasts, half
/// a day of minutes; effective sample up to 2,000) and λ = 0.9999 (half-life 6,931, five days;
/// up to 20,000). Why: an expert with a 1 % RMSE edge over the naive (2 % of MSE) beats it by
/// z = 2.5 standard errors of its paired record only after about 1,000–3,000 forecasts of
/// heavy-tailed one-minute returns, which the members' memory (λ = 0.995, at most 399) never
/// holds; and on 400 heavy-tailed returns a few large ones make the standard error unreliable,
/// so noise passes by luck (it cost BTCUSDT 2023-11 0.07 %). A strong edge still wakes its
/// expert within the day; a week is short enough to forget a regime that ended.
pub(crate) const GATE_LAMBDAS: [f64; 2] = [0.999, 0.9999];

/// Default combiner: the one that won on the real months (README, "Ensemble").
pub(crate) const DEFAULT_COMBINER: Combiner = Combiner::MlPoly;

impl Default for EnsembleConfig {
    fn default() -> Self {
        EnsembleConfig {
            spec: FeatureSpec::default(),
            window: DEFAULT_WINDOW,
            refit_rows: DEFAULT_REFIT_ROWS,
            generations: DEFAULT_GENERATIONS,
            lambda: 0.995,
            gate_lambdas: GATE_LAMBDAS,
            eta: 50.0,
            z: 2.5,
            min_scored: 60,
            kinds: ModelKind::GENERATION.to_vec(),
            combiner: DEFAULT_COMBINER,
            coverage: interval::DEFAULT_COVERAGE,
        }
    }
}

/// Why an ensemble could not be built.
#[derive(Debug, Clone, PartialEq)]
pub enum EnsembleError {
    /// A configuration value is out of range.
    BadConfig {
        param: &'static str,
        value: String,
        expected: &'static str,
    },
    /// A trained member forecasts another horizon than the ensemble.
    HorizonMismatch {
        label: String,
        member: usize,
        ensemble: usize,
    },
    /// A trained member has no model.
    NoModel { label: String },
}

impl fmt::Display for EnsembleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnsembleError::BadConfig {
                param,
                value,
                expected,
            } => write!(
                f,
                "ensemble setting {param} = {value} is invalid, expected {expected}"
            ),
            EnsembleError::HorizonMismatch {
                label,
                member,
                ensemble,
            } => write!(
                f,
                "trained model {label} forecasts horizon {member} but the ensemble forecasts \
                 horizon {ensemble}; retrain with `klinecast train --horizon {ensemble}`"
            ),
            EnsembleError::NoModel { label } => {
                write!(f, "trained member {label} has no model; retrain it")
            }
        }
    }
}

impl std::error::Error for EnsembleError {}

pub(super) fn validate(c: &EnsembleConfig) -> Result<(), EnsembleError> {
    let bad = |param, value: String, expected| {
        Err(EnsembleError::BadConfig {
            param,
            value,
            expected,
        })
    };
    if !(c.lambda > 0.0 && c.lambda < 1.0) {
        return bad("lambda", c.lambda.to_string(), "a number between 0 and 1");
    }
    if !c.gate_lambdas.iter().all(|l| *l > 0.0 && *l < 1.0) {
        return bad(
            "gate_lambdas",
            format!("{:?}", c.gate_lambdas),
            "two numbers between 0 and 1",
        );
    }
    if !(c.eta.is_finite() && c.eta >= 0.0) {
        return bad("eta", c.eta.to_string(), "a finite number >= 0");
    }
    if !(c.z.is_finite() && c.z >= 0.0) {
        return bad("z", c.z.to_string(), "a finite number >= 0");
    }
    if c.window < 1 {
        return bad("window", c.window.to_string(), "at least 1");
    }
    if c.generations < 1 {
        return bad("generations", c.generations.to_string(), "at least 1");
    }
    if !(c.coverage > 0.0 && c.coverage < 1.0) {
        return bad(
            "coverage",
            c.coverage.to_string(),
            "a number between 0 and 1",
        );
    }
    if c.spec.horizon < 1 {
        return bad("horizon", c.spec.horizon.to_string(), "at least 1");
    }
    Ok(())
}
