//! The bounded online ensemble: pure maths, no I/O, no clock. It must not read files, the
//! network or the time; the I/O layer saves it (it is `Serialize`) and writes its reports.
//!
//! # Pool
//! The pool is flat and bounded: the naive member ("next close = last close", always present),
//! the offline-trained members (`trained/<kind>`, possibly none) and at most
//! [`EnsembleConfig::generations`] window generations of the row models (`gen<N>/<kind>`,
//! the oldest generation is evicted). A member is never an ensemble itself, so the cost of a
//! forecast stays flat however long the stream runs.
//!
//! # Experts and combiners
//! The members are grouped into experts, the forecasting rules whose records ML-Poly keeps
//! ([`aggregate`]): `naive`, each `trained/<kind>` and each `generations/<kind>` (the kind
//! refitted every window; its forecast is the mean of its generations in the pool). A refit
//! replaces an expert's parameters, never its record. An expert is awake once its own forecasts
//! pass the LCB gate below (the naive always is); the default combiner, [`Combiner::MlPoly`],
//! weighs the awake experts by ML-Poly on volatility-scaled returns. [`Combiner::Lcb`] uses the
//! gate's weights directly. Both are scored on every forecast (`combiner/<name>` totals).
//! Every forecast also carries an ACI prediction interval ([`interval`]).
//!
//! # The LCB gate and combiner
//! Every member forecasts the log return `p = ln(close[t+h] / close[t])`. When the actual log
//! return `a` is known, member `i` gets the squared error `e = (p − a)²` and the paired
//! difference with the naive forecast (which predicts 0) `d = e − a²`. With the discount
//! `λ` applied once per scored forecast (age 0 = the latest):
//!
//! ```text
//! W = Σ λ^age   W2 = Σ λ^(2·age)   S = Σ λ^age·e   D = Σ λ^age·d   Q = Σ λ^age·d²
//! MSE_i   = S / W                     discounted mean squared error of the member
//! N_i     = (S − D) / W               the naive's discounted MSE over the same klines
//! m_i     = D / W                     mean advantage over the naive (< 0 is better)
//! se_i    = sqrt((Q/W − m_i²) · W2 / W²)   its standard error (W²/W2 = effective sample size)
//! skill_i = −m_i / N_i = 1 − MSE_i / N_i                    (reported)
//! lcb_i   = (−m_i − z·se_i) / N_i, clamped to [0, 1]        (pessimistic skill)
//! votes_i = n_scored ≥ min_scored  and  lcb_i > 0           (beats naive by z std errors)
//! raw_i   = exp(η · lcb_i) − 1 if votes_i, else 0;   raw_naive = 1 (always)
//! w_i     = raw_i / Σ raw over the members that produced a forecast for this kline
//! ensemble log return = Σ w_i·p_i (the naive adds 0);  price = last_close · exp(that)
//! ```
//!
//! Defaults: `λ = 0.995` (half-life ≈ 138 forecasts, effective sample ≤ 399), `z = 2.5`,
//! `η = 50`, `min_scored = 60`. Why this shape: a member whose forecast is noise relative to
//! the target always hurts, since `E[(w·p − a)²] = w²·E[p²] + E[a²]` when `p` is independent
//! of `a`. So a member votes only once it beats the naive by `z` standard errors over the
//! klines both forecast (a paired test: the noise of `a²` cancels), and its weight grows from 0
//! with the lower confidence bound of its skill, so a noise member admitted by luck (which
//! barely passes) gets a tiny weight. A newcomer has no evidence (`m = 0`): it starts neutral
//! and out of the vote. The naive always keeps a weight > 0, and with no voting member the
//! ensemble *is* the naive forecast.
//!
//! Measured (seeded synthetic data, a pool of 5 noise members plus 8 generations of 5 noise
//! members, 10,000 forecasts, 4 seeds): RMSE ratio to the naive 0.99994..1.00001 on a random
//! walk; 0.972..0.983 with an AR(1) signal of φ = 0.3 (optimum 0.954). On real AVAXUSDT 1m
//! klines the fitted models have no detectable skill and the ensemble stays within 0.1% of the
//! naive. The price of the protection: a weak real signal (skill below ~5%) needs hundreds of
//! forecasts before it is trusted, and a generation (alive for `generations × window`
//! forecasts) rarely earns a vote unless its skill is large.
//!
//! Scoring is prequential: [`Ensemble::score`] is called with the close that arrives after the
//! forecast, and only afterwards may that close be used for fitting (see [`learner`]).

pub mod aggregate;
pub mod interval;
pub mod learner;
pub(crate) mod online;
pub(crate) mod report;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::features::{FeatureSpec, Scaler};
use crate::kline::Series;
use crate::metrics::Accum;
use crate::models::{AnyModel, ModelKind, Regressor};

use report::{ForecasterScore, MemberWeight, ScoreRow};

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

/// The feature rows a window generation was fitted on: `rows` consecutive series rows, the
/// first with open time `first_open_time`, the last with `last_open_time`. Kept in the
/// generation members' `source` (`rows <first>..=<last> (<rows>)`), so a loaded ensemble can
/// refit them from the same klines ([`learner::restore_generations`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GenerationRows {
    pub first_open_time: i64,
    pub last_open_time: i64,
    pub rows: usize,
}

impl GenerationRows {
    /// The text kept in [`Member::source`].
    pub fn to_source(self) -> String {
        format!(
            "rows {}..={} ({})",
            self.first_open_time, self.last_open_time, self.rows
        )
    }

    /// The inverse of [`GenerationRows::to_source`]; `None` for any other text.
    pub fn parse(source: &str) -> Option<GenerationRows> {
        let rest = source.strip_prefix("rows ")?;
        let (range, count) = rest.split_once(" (")?;
        let (first, last) = range.split_once("..=")?;
        let rows = count.strip_suffix(')')?.parse().ok()?;
        Some(GenerationRows {
            first_open_time: first.parse().ok()?,
            last_open_time: last.parse().ok()?,
            rows,
        })
    }
}

/// Where a member comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Origin {
    /// Fitted offline by `klinecast train` (models/Trained/).
    Trained,
    /// Fitted at the end of window generation N.
    Generation(u64),
    /// The naive forecast: next close = last close.
    Naive,
}

/// A forecaster's running error statistics (see the module doc for the formulas).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct MemberStats {
    /// S = Σ λ^age · e.
    pub(crate) discounted_sq_err: f64,
    /// W = Σ λ^age (normalises the sums).
    pub(crate) discounted_weight: f64,
    /// W2 = Σ λ^(2·age), for the effective sample size.
    pub(crate) discounted_weight_sq: f64,
    /// D = Σ λ^age · (e − a²), the advantage over the naive.
    pub(crate) discounted_diff: f64,
    /// Q = Σ λ^age · (e − a²)².
    pub(crate) discounted_diff_sq: f64,
    pub(crate) n_scored: u64,
    /// Price errors in the current window.
    pub(crate) window_accum: Accum,
    /// Price errors since the member joined.
    pub(crate) total_accum: Accum,
}

impl MemberStats {
    /// Adds one scored forecast: squared log-return errors of the member and of the naive.
    fn record(&mut self, lambda: f64, sq_err: f64, naive_sq_err: f64) {
        let d = sq_err - naive_sq_err;
        self.discounted_sq_err = lambda * self.discounted_sq_err + sq_err;
        self.discounted_weight = lambda * self.discounted_weight + 1.0;
        self.discounted_weight_sq = lambda * lambda * self.discounted_weight_sq + 1.0;
        self.discounted_diff = lambda * self.discounted_diff + d;
        self.discounted_diff_sq = lambda * self.discounted_diff_sq + d * d;
        self.n_scored += 1;
    }

    /// The discounted mean squared log-return error, `None` before the first score.
    pub(crate) fn mse(&self) -> Option<f64> {
        (self.discounted_weight > 0.0).then(|| self.discounted_sq_err / self.discounted_weight)
    }

    /// The naive's discounted MSE over the klines this member was scored on.
    pub(crate) fn naive_mse(&self) -> Option<f64> {
        (self.discounted_weight > 0.0)
            .then(|| (self.discounted_sq_err - self.discounted_diff) / self.discounted_weight)
    }

    /// `1 − MSE / naive MSE` over the same klines; `None` before the first score or when the
    /// naive was perfect.
    pub(crate) fn skill(&self) -> Option<f64> {
        let naive = self.naive_mse()?;
        let mse = self.mse()?;
        (naive > 0.0).then(|| 1.0 - mse / naive)
    }

    /// The skill's lower confidence bound: `(−m − z·se) / N`, or `None` when the member does
    /// not vote (see [`MemberStats::votes`]).
    pub(crate) fn skill_lower_bound(&self, z: f64, min_scored: u64) -> Option<f64> {
        if !self.votes(z, min_scored) {
            return None;
        }
        let w = self.discounted_weight;
        let mean = self.discounted_diff / w;
        let var = (self.discounted_diff_sq / w - mean * mean).max(0.0);
        let se = (var * self.discounted_weight_sq / (w * w)).sqrt();
        let naive = self.naive_mse()?;
        Some(((-mean - z * se) / naive).clamp(0.0, 1.0))
    }

    /// True when the member beats the naive by `z` standard errors after `min_scored` scores.
    pub(crate) fn votes(&self, z: f64, min_scored: u64) -> bool {
        if self.n_scored < min_scored.max(2) || self.discounted_weight <= 0.0 {
            return false;
        }
        let w = self.discounted_weight;
        let mean = self.discounted_diff / w;
        let var = (self.discounted_diff_sq / w - mean * mean).max(0.0);
        let ess = w * w / self.discounted_weight_sq;
        let se = (var / ess).sqrt();
        let naive_positive = self.naive_mse().is_some_and(|n| n > 0.0);
        naive_positive && mean + z * se < 0.0
    }
}

/// One forecaster in the pool.
///
/// Serialised without the model of a trained member: those live in `models/Trained/` and can
/// be large (a forest on a year of klines is tens of megabytes), so the saved ensemble keeps
/// only their identity (`source`) and statistics, and [`Ensemble::attach_trained`] puts the
/// models back after loading. A window generation is serialised without its model too: its
/// `source` names the feature rows it was fitted on ([`GenerationRows`]), and
/// [`learner::restore_generations`] refits it from the kline store after loading (eight
/// generations of six kinds are megabytes; rewriting them every window would cost the SD card
/// hundreds of megabytes a day). The saved file therefore stays small however big the models
/// are, and is cheap to rewrite every window. Only the recurrent trained members, which learn
/// online, are saved with their model.
#[derive(Debug, Clone, Deserialize)]
pub struct Member {
    /// Unique within its ensemble; forecasts refer to members by id.
    pub(crate) id: u64,
    /// `naive`, `trained/<kind>` or `gen<N>/<kind>`.
    pub(crate) label: String,
    pub(crate) origin: Origin,
    pub(crate) kind: Option<ModelKind>,
    pub(crate) spec: FeatureSpec,
    /// `None`: the model reads raw features.
    pub(crate) scaler: Option<Scaler>,
    /// `None` for the naive member, and for a trained member between loading a saved ensemble
    /// and [`Ensemble::attach_trained`] (it abstains until then).
    pub model: Option<AnyModel>,
    pub(crate) stats: MemberStats,
    /// What a trained member was built from (its model file's training range, rows and seed),
    /// so a re-attached model is known to be the same one; empty for other members.
    pub(crate) source: String,
}

/// The serialised form of a [`Member`]: field for field, with a trained member's model left out.
#[derive(Serialize)]
struct MemberOut<'a> {
    id: u64,
    label: &'a str,
    origin: &'a Origin,
    kind: &'a Option<ModelKind>,
    spec: &'a FeatureSpec,
    scaler: &'a Option<Scaler>,
    model: Option<&'a AnyModel>,
    stats: &'a MemberStats,
    source: &'a str,
}

impl Serialize for Member {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        MemberOut {
            id: self.id,
            label: &self.label,
            origin: &self.origin,
            kind: &self.kind,
            spec: &self.spec,
            scaler: &self.scaler,
            // A trained recurrent member learns online: its model is saved (see `online`).
            model: match self.origin {
                Origin::Trained if self.model.as_ref().is_some_and(|m| m.as_rnn().is_some()) => {
                    self.model.as_ref()
                }
                _ => None,
            },
            stats: &self.stats,
            source: &self.source,
        }
        .serialize(serializer)
    }
}

impl Member {
    /// A member trained offline; its id is assigned by [`Ensemble::new`].
    pub fn trained(spec: FeatureSpec, scaler: Option<Scaler>, model: AnyModel) -> Member {
        let kind = model.kind();
        Member {
            id: 0,
            label: format!("trained/{}", kind.name()),
            origin: Origin::Trained,
            kind: Some(kind),
            spec,
            scaler,
            model: Some(model),
            stats: MemberStats::default(),
            source: String::new(),
        }
    }

    /// Records what a trained member was built from (see [`Member::source`]).
    pub fn with_source(mut self, source: impl Into<String>) -> Member {
        self.source = source.into();
        self
    }

    fn naive(spec: FeatureSpec) -> Member {
        Member {
            id: 0,
            label: "naive".to_string(),
            origin: Origin::Naive,
            kind: None,
            spec,
            scaler: None,
            model: None,
            stats: MemberStats::default(),
            source: String::new(),
        }
    }

    /// The label of the scoreboard group the member's lifetime errors add to:
    /// `naive`, `trained/<kind>` or `generations/<kind>`.
    pub(crate) fn group(&self) -> String {
        let kind = self.kind.map_or("?", ModelKind::name);
        match self.origin {
            Origin::Naive => "naive".to_string(),
            Origin::Trained => format!("trained/{kind}"),
            Origin::Generation(_) => format!("generations/{kind}"),
        }
    }

    /// The member's forecast of the log return from its raw feature row.
    fn predict(&self, raw: Option<&[f64]>) -> Option<f64> {
        let Some(model) = &self.model else {
            // The naive member forecasts no change; a trained member whose model is not
            // attached (yet) abstains.
            return (self.origin == Origin::Naive).then_some(0.0);
        };
        let raw = raw?;
        let p = match &self.scaler {
            Some(scaler) => model.predict_row(&scaler.transform_row(raw)),
            None => model.predict_row(raw),
        };
        p.is_finite().then_some(p)
    }
}

/// Builds raw feature rows. Production code uses [`SpecFeatures`]; tests plug in fakes.
pub(crate) trait FeatureSource {
    /// The first series index with a full row.
    fn warmup(&self, spec: &FeatureSpec) -> usize;
    /// The raw row at `t` (reads rows `..= t` only), or `None`.
    fn row(&self, spec: &FeatureSpec, series: &Series, t: usize) -> Option<Vec<f64>>;
    /// The `n` raw rows `t−n+1 ..= t`, oldest first (for recurrent members), or `None` when
    /// one of them does not exist.
    fn rows(
        &self,
        spec: &FeatureSpec,
        series: &Series,
        t: usize,
        n: usize,
    ) -> Option<Vec<Vec<f64>>> {
        let first = (t + 1).checked_sub(n)?;
        (first..=t).map(|i| self.row(spec, series, i)).collect()
    }
}

/// The real features: [`FeatureSpec::row`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SpecFeatures;

impl FeatureSource for SpecFeatures {
    fn warmup(&self, spec: &FeatureSpec) -> usize {
        spec.warmup()
    }

    fn row(&self, spec: &FeatureSpec, series: &Series, t: usize) -> Option<Vec<f64>> {
        spec.row(series, t)
    }
}

/// One member's part of a forecast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct MemberForecast {
    pub(crate) id: u64,
    pub(crate) label: String,
    pub(crate) log_return: f64,
    pub(crate) price: f64,
    /// Its weight in this forecast (0 when it does not vote).
    pub(crate) weight: f64,
}

/// The forecast of the close of the kline opening at `target_open_time`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    /// Open time of the last kline the forecast read.
    pub(crate) as_of_open_time: i64,
    pub(crate) target_open_time: i64,
    pub(crate) last_close: f64,
    pub(crate) ensemble_log_return: f64,
    pub(crate) ensemble_price: f64,
    /// Always `last_close`.
    pub(crate) naive_price: f64,
    /// Every member that produced a forecast (members before warm-up or with a non-finite
    /// output abstain and are not listed).
    pub(crate) members: Vec<MemberForecast>,
    /// The ensemble version that made it.
    pub(crate) version: u64,
    /// Each awake expert's forecast: the mean of its members' forecasts, and its weight.
    pub(crate) experts: Vec<ExpertForecast>,
    /// The two combiners' forecasts (log returns); `ensemble_log_return` is the selected one.
    pub(crate) ml_poly_log_return: f64,
    pub(crate) lcb_log_return: f64,
    /// The volatility scale for the target kline (`None` before any kline was seen).
    pub(crate) sigma: Option<f64>,
    /// The interval's half-width multipliers (units of `sigma`; of raw log returns for the
    /// static baseline), as used at forecast time.
    pub(crate) q: f64,
    pub(crate) q_static: f64,
    /// The central prediction interval of the target close (0 and +∞ when unbounded).
    pub(crate) lower_price: f64,
    pub(crate) upper_price: f64,
}

impl Forecast {
    /// `(label, price)` of each member that forecast.
    #[cfg(test)]
    pub(crate) fn member_prices(&self) -> Vec<(&str, f64)> {
        self.members
            .iter()
            .map(|m| (m.label.as_str(), m.price))
            .collect()
    }
}

/// One expert's part of a forecast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ExpertForecast {
    pub(crate) label: String,
    pub(crate) log_return: f64,
    /// Awake: it has passed its gate (the naive always is); only awake experts are weighed
    /// and have their ML-Poly record moved.
    pub(crate) awake: bool,
    /// Its ML-Poly weight in this forecast.
    pub(crate) weight: f64,
}

/// The outcome of scoring one forecast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredForecast {
    pub(crate) target_open_time: i64,
    pub(crate) last_close: f64,
    pub(crate) actual_close: f64,
    pub(crate) ensemble_price: f64,
    pub(crate) naive_price: f64,
    /// Version of the ensemble that made the forecast.
    pub(crate) forecast_version: u64,
    pub(crate) lower_price: f64,
    pub(crate) upper_price: f64,
    /// The close fell inside the interval.
    pub(crate) covered: bool,
    pub(crate) sigma: Option<f64>,
    /// The static baseline's interval (ACI on raw residuals) and whether it covered.
    pub(crate) static_lower_price: f64,
    pub(crate) static_upper_price: f64,
    pub(crate) static_covered: bool,
}

/// One expert: a forecasting rule whose record accumulates across refits (`naive`,
/// `trained/<kind>`, `generations/<kind>`: the kind refitted every window, its forecast the mean
/// of the generations in the pool).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Expert {
    pub(crate) label: String,
    pub(crate) record: aggregate::PolyRecord,
    /// The expert's paired record against the naive (the LCB gate's statistics), kept on every
    /// forecast it makes, awake or not: it decides when the expert is awake.
    pub(crate) stats: MemberStats,
}

/// Interval figures: realised coverage, mean width and interval score (price units).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct IntervalAccum {
    pub(crate) n: u64,
    pub(crate) covered: u64,
    pub(crate) width_sum: f64,
    pub(crate) score_sum: f64,
}

impl IntervalAccum {
    pub(crate) fn add(&mut self, lower: f64, upper: f64, actual: f64, alpha: f64) {
        if !(lower.is_finite() && upper.is_finite()) {
            // An unbounded interval (ACI's α_t ≤ 0) covers and is counted, but has no width.
            self.n += 1;
            self.covered += 1;
            return;
        }
        self.n += 1;
        if actual >= lower && actual <= upper {
            self.covered += 1;
        }
        self.width_sum += upper - lower;
        self.score_sum += interval::interval_score(lower, upper, actual, alpha);
    }

    pub(crate) fn coverage(&self) -> Option<f64> {
        (self.n > 0).then(|| self.covered as f64 / self.n as f64)
    }

    pub(crate) fn mean_width(&self) -> Option<f64> {
        (self.n > 0).then(|| self.width_sum / self.n as f64)
    }

    pub(crate) fn mean_score(&self) -> Option<f64> {
        (self.n > 0).then(|| self.score_sum / self.n as f64)
    }
}

/// The interval state and figures of an ensemble.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Intervals {
    pub(crate) volatility: interval::Volatility,
    pub(crate) aci: interval::Aci,
    pub(crate) aci_static: interval::Aci,
    pub(crate) window: IntervalAccum,
    pub(crate) total: IntervalAccum,
    pub(crate) static_window: IntervalAccum,
    pub(crate) static_total: IntervalAccum,
}

impl Intervals {
    fn new(coverage: f64, interval_ms: i64) -> Intervals {
        let aci = || {
            interval::Aci::new(
                coverage,
                interval::DEFAULT_GAMMA,
                interval::DEFAULT_SCORE_WINDOW,
            )
        };
        Intervals {
            volatility: interval::Volatility::new(interval_ms),
            aci: aci(),
            aci_static: aci(),
            window: IntervalAccum::default(),
            total: IntervalAccum::default(),
            static_window: IntervalAccum::default(),
            static_total: IntervalAccum::default(),
        }
    }
}

/// Lifetime errors of one scoreboard group (`ensemble`, `naive`, `trained/<kind>`,
/// `generations/<kind>`), kept across evictions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct GroupTotal {
    pub(crate) label: String,
    pub(crate) accum: Accum,
    /// The naive forecast scored on exactly the same forecasts as `accum`, so that a group
    /// that joined late (a generation, a member past its warm-up) is compared like for like.
    pub(crate) naive: Accum,
}

/// The bounded online ensemble.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ensemble {
    pub config: EnsembleConfig,
    /// Naive first, then trained members, then generations from oldest to newest.
    pub members: Vec<Member>,
    /// Increments on every change (score, new generation, new trained members).
    pub(crate) version: u64,
    /// Windows closed so far.
    pub windows_done: u64,
    /// The number the next generation gets.
    pub(crate) next_generation: u64,
    next_id: u64,
    /// The ensemble's own price errors in the current window and in total.
    pub(crate) window_accum: Accum,
    pub(crate) total_accum: Accum,
    /// Lifetime errors per group.
    pub(crate) totals: Vec<GroupTotal>,
    /// The experts (families) ML-Poly weighs, naive first.
    pub(crate) experts: Vec<Expert>,
    pub(crate) intervals: Intervals,
}

impl Ensemble {
    /// Checks a deserialized ensemble before use: a valid configuration, and members whose
    /// feature specs, scalers and models fit together ([`AnyModel::check`]), so forecasting
    /// with it cannot panic or loop. Saved files are checksummed, so this only fails for a
    /// file written by a buggy or foreign program.
    pub(crate) fn check(&self) -> Result<(), String> {
        let c = &self.config;
        validate(c).map_err(|e| e.to_string())?;
        // Far beyond any command-line value, small enough that buffer sizes cannot overflow.
        if c.refit_rows > 10_000_000 || c.spec.horizon > 1440 || c.window > 1_000_000 {
            return Err("the configuration is out of range".to_string());
        }
        let iv = &self.intervals;
        iv.volatility.check()?;
        iv.aci.check()?;
        iv.aci_static.check()?;
        if self.experts.first().is_none_or(|e| e.label != "naive") {
            return Err("the first expert is not the naive forecast".to_string());
        }
        for m in &self.members {
            let what = |e: String| format!("member {}: {e}", m.label);
            if m.spec.version != crate::features::FEATURE_VERSION
                || !(1..=1440).contains(&m.spec.horizon)
            {
                return Err(what(format!("unsupported feature spec {:?}", m.spec)));
            }
            let d = m.spec.n_features();
            if let Some(scaler) = &m.scaler {
                if scaler.mean.len() != d || scaler.std.len() != d {
                    return Err(what(format!("the scaler does not have {d} columns")));
                }
            }
            match (&m.model, m.origin) {
                (Some(_), Origin::Naive) => {
                    return Err(what("the naive member holds a model".to_string()))
                }
                (Some(model), _) => {
                    if m.kind != Some(model.kind()) {
                        return Err(what("its kind and its model differ".to_string()));
                    }
                    model.check(d).map_err(what)?;
                }
                (None, _) => {}
            }
        }
        Ok(())
    }

    /// A pool of the naive member and `trained` (possibly empty).
    pub fn new(config: EnsembleConfig, trained: Vec<Member>) -> Result<Ensemble, EnsembleError> {
        validate(&config)?;
        let mut ensemble = Ensemble {
            members: Vec::new(),
            version: 0,
            windows_done: 0,
            next_generation: 0,
            next_id: 0,
            window_accum: Accum::default(),
            total_accum: Accum::default(),
            totals: Vec::new(),
            experts: vec![Expert {
                label: "naive".to_string(),
                record: aggregate::PolyRecord::default(),
                stats: MemberStats::default(),
            }],
            intervals: Intervals::new(config.coverage, 60_000),
            config,
        };
        let naive = Member::naive(ensemble.config.spec.clone());
        ensemble.push(naive);
        ensemble.replace_trained(trained)?;
        Ok(ensemble)
    }

    /// Changes the configuration of a running or loaded ensemble (the command line may change
    /// `window`, `refit_rows` and `generations` between runs; the pool adapts at the next
    /// window). The new configuration is validated first, and the feature spec, which the
    /// members' forecasts depend on, cannot change. On an error nothing changes.
    pub(crate) fn reconfigure(&mut self, config: EnsembleConfig) -> Result<(), EnsembleError> {
        validate(&config)?;
        if config.spec != self.config.spec {
            return Err(EnsembleError::BadConfig {
                param: "spec",
                value: format!("{:?}", config.spec),
                expected: "the feature spec (horizon) the ensemble was built with",
            });
        }
        self.config = config;
        Ok(())
    }

    /// Replaces the trained members (after a new `klinecast train`), keeping the generations.
    pub(crate) fn replace_trained(&mut self, trained: Vec<Member>) -> Result<(), EnsembleError> {
        let horizon = self.config.spec.horizon;
        for m in &trained {
            if m.spec.horizon != horizon {
                return Err(EnsembleError::HorizonMismatch {
                    label: m.label.clone(),
                    member: m.spec.horizon,
                    ensemble: horizon,
                });
            }
            if m.model.is_none() {
                return Err(EnsembleError::NoModel {
                    label: m.label.clone(),
                });
            }
        }
        let rest: Vec<Member> = std::mem::take(&mut self.members)
            .into_iter()
            .filter(|m| m.origin != Origin::Trained)
            .collect();
        let (naive, generations): (Vec<Member>, Vec<Member>) =
            rest.into_iter().partition(|m| m.origin == Origin::Naive);
        self.members = naive;
        for mut m in trained {
            m.origin = Origin::Trained;
            m.stats = MemberStats::default();
            self.push(m);
        }
        self.members.extend(generations);
        self.version += 1;
        Ok(())
    }

    /// Puts the trained models back into a loaded ensemble (they are not saved in it, see
    /// [`Member`]). When `trained` holds exactly the models the ensemble was saved with (same
    /// kinds and `source`), they are attached and every statistic is kept. Otherwise the
    /// offline models changed since the save (a new `klinecast train`), so the trained members
    /// are replaced and start afresh, while the generations are kept. Returns whether the saved
    /// trained members were kept.
    pub(crate) fn attach_trained(&mut self, trained: Vec<Member>) -> Result<bool, EnsembleError> {
        let saved: Vec<(Option<ModelKind>, &str)> = self
            .members
            .iter()
            .filter(|m| m.origin == Origin::Trained)
            .map(|m| (m.kind, m.source.as_str()))
            .collect();
        let same = saved.len() == trained.len()
            && trained
                .iter()
                .all(|t| saved.contains(&(t.kind, t.source.as_str())) && t.model.is_some());
        if !same {
            self.replace_trained(trained)?;
            return Ok(false);
        }
        // Pair them in order: two members may share a kind and a source.
        for t in trained {
            if let Some(m) = self.members.iter_mut().find(|m| {
                m.origin == Origin::Trained
                    && m.model.is_none()
                    && m.kind == t.kind
                    && m.source == t.source
            }) {
                m.model = t.model;
                m.scaler = t.scaler;
                m.spec = t.spec;
            }
        }
        // Restoring what was saved is not a change: the version stays.
        Ok(true)
    }

    /// Adds one window generation (its members share `spec` and `scaler`; `fitted_on`: the
    /// rows they were fitted on, which lets a saved ensemble refit them) and evicts the oldest
    /// generations beyond [`EnsembleConfig::generations`]. Returns its number.
    pub(crate) fn add_generation(
        &mut self,
        spec: FeatureSpec,
        scaler: Option<Scaler>,
        models: Vec<AnyModel>,
        fitted_on: Option<GenerationRows>,
    ) -> u64 {
        let generation = self.next_generation;
        self.next_generation += 1;
        for model in models {
            let kind = model.kind();
            self.push(Member {
                id: 0,
                label: format!("gen{generation}/{}", kind.name()),
                origin: Origin::Generation(generation),
                kind: Some(kind),
                spec: spec.clone(),
                scaler: scaler.clone(),
                model: Some(model),
                stats: MemberStats::default(),
                source: fitted_on.map(GenerationRows::to_source).unwrap_or_default(),
            });
        }
        let mut gens = self.generation_numbers();
        while gens.len() > self.config.generations {
            let oldest = gens.remove(0);
            self.members
                .retain(|m| m.origin != Origin::Generation(oldest));
        }
        self.version += 1;
        generation
    }

    /// The distinct generations in the pool, oldest first.
    pub(crate) fn generation_numbers(&self) -> Vec<u64> {
        let mut gens: Vec<u64> = self
            .members
            .iter()
            .filter_map(|m| match m.origin {
                Origin::Generation(g) => Some(g),
                _ => None,
            })
            .collect();
        gens.sort_unstable();
        gens.dedup();
        gens
    }

    /// Number of trained members in the pool.
    pub fn trained_count(&self) -> usize {
        self.members
            .iter()
            .filter(|m| m.origin == Origin::Trained)
            .count()
    }

    /// The largest warm-up of any member's features (and of new generations'), plus the
    /// `seq_len − 1` earlier rows a recurrent member reads.
    pub(crate) fn max_warmup(&self, features: &dyn FeatureSource) -> usize {
        let mut specs: Vec<(&FeatureSpec, usize)> = vec![(&self.config.spec, 1)];
        for m in &self.members {
            if let Some(model) = &m.model {
                let n = model.seq_len();
                if !specs.contains(&(&m.spec, n)) {
                    specs.push((&m.spec, n));
                }
            }
        }
        specs
            .iter()
            .map(|(s, n)| features.warmup(s) + n - 1)
            .max()
            .unwrap_or(0)
    }

    /// Raw (unnormalised) voting weight of each member, aligned with `members`.
    pub(crate) fn raw_weights(&self) -> Vec<f64> {
        let c = &self.config;
        self.members
            .iter()
            .map(|m| match m.origin {
                Origin::Naive => 1.0,
                _ => m
                    .stats
                    .skill_lower_bound(c.z, c.min_scored)
                    .map_or(0.0, |s| (c.eta * s).exp_m1()),
            })
            .collect()
    }

    /// Normalised weights when every member forecasts, aligned with `members`.
    pub(crate) fn weights(&self) -> Vec<f64> {
        let raw = self.raw_weights();
        let sum: f64 = raw.iter().sum();
        raw.iter().map(|w| w / sum).collect()
    }

    /// The experts' ML-Poly weights when every expert with a model forecasts (the naive
    /// always does).
    pub(crate) fn expert_weights(&self) -> Vec<report::ExpertWeight> {
        let awake: Vec<bool> = self
            .experts
            .iter()
            .map(|e| {
                e.label == "naive"
                    || (e.stats.votes(self.config.z, self.config.min_scored)
                        && self
                            .members
                            .iter()
                            .any(|m| m.model.is_some() && m.group() == e.label))
            })
            .collect();
        let records: Vec<aggregate::PolyRecord> = self.experts.iter().map(|e| e.record).collect();
        let w = aggregate::weights(&records, &awake, 0);
        self.experts
            .iter()
            .zip(w)
            .map(|(e, weight)| report::ExpertWeight {
                label: e.label.clone(),
                rounds: e.record.rounds,
                regret: e.record.regret,
                weight,
            })
            .collect()
    }

    /// The current window's prediction intervals.
    pub(crate) fn interval_report(&self) -> report::IntervalReport {
        let iv = &self.intervals;
        report::IntervalReport {
            nominal: self.config.coverage,
            n: iv.window.n,
            realised: iv.window.coverage(),
            mean_width: iv.window.mean_width(),
            interval_score: iv.window.mean_score(),
            static_realised: iv.static_window.coverage(),
            static_mean_width: iv.static_window.mean_width(),
            static_interval_score: iv.static_window.mean_score(),
        }
    }

    /// Weights with labels and skill, for reports.
    pub(crate) fn member_weights(&self) -> Vec<MemberWeight> {
        let weights = match self.config.combiner {
            Combiner::Lcb => self.weights(),
            Combiner::MlPoly => {
                // An expert's weight shared by its members that have a model.
                let experts = self.expert_weights();
                self.members
                    .iter()
                    .map(|m| {
                        let group = m.group();
                        let size = self
                            .members
                            .iter()
                            .filter(|o| {
                                o.group() == group
                                    && (o.model.is_some() || o.origin == Origin::Naive)
                            })
                            .count()
                            .max(1);
                        let w = experts
                            .iter()
                            .find(|e| e.label == group)
                            .map_or(0.0, |e| e.weight);
                        if m.model.is_some() || m.origin == Origin::Naive {
                            w / size as f64
                        } else {
                            0.0
                        }
                    })
                    .collect()
            }
        };
        self.members
            .iter()
            .zip(weights)
            .map(|(m, weight)| MemberWeight {
                label: m.label.clone(),
                weight,
                skill: m.stats.skill(),
                n_scored: m.stats.n_scored,
            })
            .collect()
    }

    /// Forecasts the close `h` klines after series index `t` from rows `..= t` only.
    #[cfg(test)]
    pub(crate) fn forecast(&self, series: &Series, t: usize, interval_ms: i64) -> Forecast {
        self.forecast_with(series, t, interval_ms, &SpecFeatures)
    }

    /// [`Ensemble::forecast`] with another feature source (tests).
    pub(crate) fn forecast_with(
        &self,
        series: &Series,
        t: usize,
        interval_ms: i64,
        features: &dyn FeatureSource,
    ) -> Forecast {
        let last_close = series.close[t];
        let horizon = self.config.spec.horizon.max(1);
        // One raw row per distinct feature spec.
        let mut rows: Vec<(&FeatureSpec, Option<Vec<f64>>)> = Vec::new();
        let mut sequences = online::SequenceCache::new();
        let raw_weights = self.raw_weights();
        let mut forecasts: Vec<(usize, f64)> = Vec::with_capacity(self.members.len());
        for (idx, m) in self.members.iter().enumerate() {
            let p = if m.model.is_none() {
                m.predict(None)
            } else if m.model.as_ref().is_some_and(|a| a.seq_len() > 1) {
                online::sequence_forecast(m, series, t, features, &mut sequences)
            } else {
                let pos = match rows.iter().position(|(s, _)| *s == &m.spec) {
                    Some(pos) => pos,
                    None => {
                        rows.push((&m.spec, features.row(&m.spec, series, t)));
                        rows.len() - 1
                    }
                };
                m.predict(rows[pos].1.as_deref())
            };
            if let Some(p) = p {
                forecasts.push((idx, p));
            }
        }
        // The LCB combiner: instance weights from the hard gate.
        let total: f64 = forecasts.iter().map(|&(i, _)| raw_weights[i]).sum();
        let lcb_log_return: f64 = forecasts
            .iter()
            .map(|&(i, p)| raw_weights[i] / total * p)
            .sum();
        // The experts: each family's forecast is the mean of its members' forecasts. Experts
        // not yet scored get the next free indices, in forecast order.
        let mut labels: Vec<String> = self.experts.iter().map(|e| e.label.clone()).collect();
        let member_expert: Vec<usize> = forecasts
            .iter()
            .map(|&(i, _)| {
                let group = self.members[i].group();
                match labels.iter().position(|l| *l == group) {
                    Some(e) => e,
                    None => {
                        labels.push(group);
                        labels.len() - 1
                    }
                }
            })
            .collect();
        let mut sums = vec![(0.0, 0usize); labels.len()];
        for (&(_, p), &e) in forecasts.iter().zip(&member_expert) {
            sums[e].0 += p;
            sums[e].1 += 1;
        }
        // Sleeping experts: an expert is awake once its own forecasts beat the naive by the
        // gate's margin (the naive always is). Asleep, it neither weighs nor moves its record.
        let c = &self.config;
        let awake: Vec<bool> = sums
            .iter()
            .enumerate()
            .map(|(e, &(_, n))| {
                n > 0
                    && (e == 0
                        || self
                            .experts
                            .get(e)
                            .is_some_and(|x| x.stats.votes(c.z, c.min_scored)))
            })
            .collect();
        let expert_forecasts: Vec<(usize, f64)> = sums
            .iter()
            .enumerate()
            .filter(|(_, &(_, n))| n > 0)
            .map(|(e, &(sum, n))| (e, sum / n as f64))
            .collect();
        let awake_forecasts: Vec<(usize, f64)> = expert_forecasts
            .iter()
            .copied()
            .filter(|&(e, _)| awake[e])
            .collect();
        let records: Vec<aggregate::PolyRecord> = (0..labels.len())
            .map(|e| {
                self.experts
                    .get(e)
                    .map_or_else(Default::default, |x| x.record)
            })
            .collect();
        let expert_weights = aggregate::weights(&records, &awake, 0);
        let ml_poly_log_return = aggregate::combine(&expert_weights, &awake_forecasts);
        let ensemble_log_return = match self.config.combiner {
            Combiner::MlPoly => ml_poly_log_return,
            Combiner::Lcb => lcb_log_return,
        };
        let members = forecasts
            .iter()
            .zip(&member_expert)
            .map(|(&(i, p), &e)| {
                let m = &self.members[i];
                let weight = match self.config.combiner {
                    Combiner::Lcb => raw_weights[i] / total,
                    Combiner::MlPoly => expert_weights[e] / sums[e].1.max(1) as f64,
                };
                MemberForecast {
                    id: m.id,
                    label: m.label.clone(),
                    log_return: p,
                    price: last_close * p.exp(),
                    weight,
                }
            })
            .collect();
        let experts = expert_forecasts
            .iter()
            .map(|&(e, x)| ExpertForecast {
                label: labels[e].clone(),
                log_return: x,
                awake: awake[e],
                weight: expert_weights[e],
            })
            .collect();
        let target_open_time = series.open_time[t] + horizon as i64 * interval_ms;
        let iv = &self.intervals;
        let sigma = iv.volatility.sigma(target_open_time);
        let q = iv.aci.multiplier();
        let q_static = iv.aci_static.multiplier();
        let (lower_price, upper_price) = match sigma {
            Some(sd) => price_band(last_close, ensemble_log_return, sd * q),
            None => (0.0, f64::INFINITY),
        };
        Forecast {
            as_of_open_time: series.open_time[t],
            target_open_time,
            last_close,
            ensemble_log_return,
            ensemble_price: last_close * ensemble_log_return.exp(),
            naive_price: last_close,
            members,
            version: self.version,
            experts,
            ml_poly_log_return,
            lcb_log_return,
            sigma,
            q,
            q_static,
            lower_price,
            upper_price,
        }
    }

    /// Feeds one kline of the history that precedes a fresh ensemble: the volatility model
    /// learns from it and the conformal score windows get the naive forecast's score, so the
    /// first intervals are already calibrated (no forecast is scored and α_t does not move).
    pub(crate) fn warm_up(&mut self, series: &Series, t: usize, interval_ms: i64) {
        if t > 0 && series.open_time[t] - series.open_time[t - 1] == interval_ms {
            let r = (series.close[t] / series.close[t - 1]).ln();
            let iv = &mut self.intervals;
            if let (true, Some(sd)) = (r.is_finite(), iv.volatility.sigma(series.open_time[t])) {
                iv.aci.scores.push(r.abs() / sd);
                iv.aci_static.scores.push(r.abs());
                iv.volatility.learn(series.open_time[t], r);
            }
        }
        self.observe(series, t, interval_ms);
    }

    /// Feeds one closed kline (row `t` of `series`) to the volatility estimate. The learner
    /// calls it after scoring the forecasts that targeted this kline, before forecasting on.
    pub(crate) fn observe(&mut self, series: &Series, t: usize, interval_ms: i64) {
        let log_return = if t > 0 && series.open_time[t] - series.open_time[t - 1] == interval_ms {
            (series.close[t] / series.close[t - 1]).ln()
        } else {
            0.0
        };
        self.intervals.volatility.observe(&interval::Bar {
            open_time: series.open_time[t],
            high: series.high[t],
            low: series.low[t],
            log_return: if log_return.is_finite() {
                log_return
            } else {
                0.0
            },
            trades: series.trades[t],
        });
    }

    /// Scores `forecast` against the close that arrived for its target kline: updates every
    /// member that forecast (and is still in the pool) and the ensemble's accumulators.
    pub(crate) fn score(&mut self, forecast: &Forecast, actual_close: f64) -> ScoredForecast {
        let last = forecast.last_close;
        let actual_lr = (actual_close / last).ln();
        self.score_experts_and_interval(forecast, actual_lr);
        let naive_sq = actual_lr * actual_lr;
        let lambda = self.config.lambda;
        let mut group_adds: Vec<(String, f64)> = Vec::new();
        for mf in &forecast.members {
            let Some(m) = self.members.iter_mut().find(|m| m.id == mf.id) else {
                continue; // evicted since the forecast
            };
            let err = mf.log_return - actual_lr;
            m.stats.record(lambda, err * err, naive_sq);
            m.stats.window_accum.add(last, mf.price, actual_close);
            m.stats.total_accum.add(last, mf.price, actual_close);
            group_adds.push((m.group(), mf.price));
        }
        group_adds.push(("ensemble".to_string(), forecast.ensemble_price));
        group_adds.push((
            format!("combiner/{}", Combiner::MlPoly.name()),
            last * forecast.ml_poly_log_return.exp(),
        ));
        group_adds.push((
            format!("combiner/{}", Combiner::Lcb.name()),
            last * forecast.lcb_log_return.exp(),
        ));
        for (label, price) in group_adds {
            let total = self.group_total(&label);
            total.accum.add(last, price, actual_close);
            total.naive.add(last, last, actual_close);
        }
        let (static_lower, static_upper) =
            price_band(last, forecast.ensemble_log_return, forecast.q_static);
        self.window_accum
            .add(last, forecast.ensemble_price, actual_close);
        self.total_accum
            .add(last, forecast.ensemble_price, actual_close);
        self.version += 1;
        ScoredForecast {
            target_open_time: forecast.target_open_time,
            last_close: last,
            actual_close,
            ensemble_price: forecast.ensemble_price,
            naive_price: forecast.naive_price,
            forecast_version: forecast.version,
            lower_price: forecast.lower_price,
            upper_price: forecast.upper_price,
            covered: actual_close >= forecast.lower_price && actual_close <= forecast.upper_price,
            sigma: forecast.sigma,
            static_lower_price: static_lower,
            static_upper_price: static_upper,
            static_covered: actual_close >= static_lower && actual_close <= static_upper,
        }
    }

    /// The ML-Poly records (on volatility-scaled returns), the two ACI states, the interval
    /// figures and the volatility model learn from one outcome. The records move only for the
    /// experts awake in that forecast (the others sleep).
    fn score_experts_and_interval(&mut self, forecast: &Forecast, actual_lr: f64) {
        let alpha = 1.0 - self.config.coverage;
        let last = forecast.last_close;
        let actual_close = last * actual_lr.exp();
        let residual = actual_lr - forecast.ensemble_log_return;
        // Experts are resolved by label: one first seen in this forecast joins with an
        // empty record.
        let mut index = Vec::with_capacity(forecast.experts.len());
        for x in &forecast.experts {
            let k = match self.experts.iter().position(|e| e.label == x.label) {
                Some(k) => k,
                None => {
                    self.experts.push(Expert {
                        label: x.label.clone(),
                        record: aggregate::PolyRecord::default(),
                        stats: MemberStats::default(),
                    });
                    self.experts.len() - 1
                }
            };
            let err = x.log_return - actual_lr;
            self.experts[k]
                .stats
                .record(self.config.lambda, err * err, actual_lr * actual_lr);
            if x.awake {
                index.push((k, x.log_return));
            }
        }
        // Before the volatility model has seen a kline, the regrets are kept on raw returns
        // (the guarantee holds for any scaling, as long as each round is scaled consistently).
        let sd = forecast
            .sigma
            .filter(|sd| *sd > 0.0 && sd.is_finite())
            .unwrap_or(1.0);
        {
            let scaled: Vec<(usize, f64)> = index.iter().map(|&(e, x)| (e, x / sd)).collect();
            let mut records: Vec<aggregate::PolyRecord> =
                self.experts.iter().map(|e| e.record).collect();
            aggregate::record(
                &mut records,
                &scaled,
                forecast.ml_poly_log_return / sd,
                actual_lr / sd,
            );
            for (e, r) in self.experts.iter_mut().zip(records) {
                e.record = r;
            }
        }
        if let Some(sd) = forecast.sigma.filter(|sd| *sd > 0.0 && sd.is_finite()) {
            self.intervals.aci.record(forecast.q, residual.abs() / sd);
            self.intervals
                .volatility
                .learn(forecast.target_open_time, residual);
        }
        self.intervals
            .aci_static
            .record(forecast.q_static, residual.abs());
        let iv = &mut self.intervals;
        for acc in [&mut iv.window, &mut iv.total] {
            acc.add(
                forecast.lower_price,
                forecast.upper_price,
                actual_close,
                alpha,
            );
        }
        let (sl, su) = price_band(last, forecast.ensemble_log_return, forecast.q_static);
        for acc in [&mut iv.static_window, &mut iv.static_total] {
            acc.add(sl, su, actual_close, alpha);
        }
    }

    /// Window scores of the ensemble, the naive and every member, in pool order.
    pub(crate) fn window_scores(&self) -> Vec<ForecasterScore> {
        let mut out = vec![ForecasterScore::from_accum("ensemble", &self.window_accum)];
        out.extend(
            self.members
                .iter()
                .map(|m| ForecasterScore::from_accum(&m.label, &m.stats.window_accum)),
        );
        out
    }

    /// Clears the window accumulators and counts the window as done.
    pub(crate) fn close_window(&mut self) {
        self.window_accum = Accum::default();
        self.intervals.window = IntervalAccum::default();
        self.intervals.static_window = IntervalAccum::default();
        for m in &mut self.members {
            m.stats.window_accum = Accum::default();
        }
        self.windows_done += 1;
        self.version += 1;
    }

    /// Lifetime scoreboard: `ensemble`, `naive`, `trained/<kind>`, `generations/<kind>`.
    /// `rmse_vs_naive` compares each group with the naive forecast on the same klines.
    pub fn scoreboard(&self) -> Vec<ScoreRow> {
        let mut groups: Vec<&GroupTotal> = self
            .totals
            .iter()
            .filter(|g| !g.label.starts_with("combiner/"))
            .collect();
        groups.sort_by_key(|g| group_rank(&g.label));
        let weights = self.expert_weights();
        groups
            .into_iter()
            .map(|g| ScoreRow {
                weight: weights
                    .iter()
                    .find(|e| e.label == g.label)
                    .map(|e| e.weight),
                ..ScoreRow::new(&g.label, &g.accum, Some(g.naive.rmse()))
            })
            .collect()
    }

    /// Both combiners scored on every forecast (`combiner/ml-poly`, `combiner/lcb`), whichever
    /// one the ensemble uses, so `backtest` can show them side by side.
    pub(crate) fn combiner_scores(&self) -> Vec<ScoreRow> {
        Combiner::ALL
            .iter()
            .filter_map(|c| {
                let label = format!("combiner/{}", c.name());
                let g = self.totals.iter().find(|g| g.label == label)?;
                Some(ScoreRow::new(&label, &g.accum, Some(g.naive.rmse())))
            })
            .collect()
    }

    fn group_total(&mut self, label: &str) -> &mut GroupTotal {
        let pos = match self.totals.iter().position(|g| g.label == label) {
            Some(pos) => pos,
            None => {
                self.totals.push(GroupTotal {
                    label: label.to_string(),
                    accum: Accum::default(),
                    naive: Accum::default(),
                });
                self.totals.len() - 1
            }
        };
        &mut self.totals[pos]
    }

    fn push(&mut self, mut member: Member) {
        member.id = self.next_id;
        self.next_id += 1;
        self.members.push(member);
    }
}

/// The price band `last · exp(ŷ ± half)`; `(0, +∞)` when `half` is not finite.
fn price_band(last: f64, log_return: f64, half: f64) -> (f64, f64) {
    if half.is_finite() {
        (
            last * (log_return - half).exp(),
            last * (log_return + half).exp(),
        )
    } else {
        (0.0, f64::INFINITY)
    }
}

/// Order of scoreboard rows: ensemble, naive, trained by kind, generations by kind.
fn group_rank(label: &str) -> (u8, usize, String) {
    let kind_rank = |name: &str| {
        ModelKind::ALL
            .iter()
            .position(|k| k.name() == name)
            .unwrap_or(ModelKind::ALL.len())
    };
    match label.split_once('/') {
        None if label == "ensemble" => (0, 0, String::new()),
        None if label == "naive" => (1, 0, String::new()),
        Some(("trained", kind)) => (2, kind_rank(kind), String::new()),
        Some(("generations", kind)) => (3, kind_rank(kind), String::new()),
        Some(("combiner", name)) => (5, 0, name.to_string()),
        _ => (4, 0, label.to_string()),
    }
}

fn validate(c: &EnsembleConfig) -> Result<(), EnsembleError> {
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

#[cfg(test)]
mod testutil;

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use crate::rng::Rng;

    const SIGMA: f64 = 0.001;

    /// The LCB combiner: most tests below check the gate's documented formula and behaviour.
    fn config() -> EnsembleConfig {
        EnsembleConfig {
            combiner: Combiner::Lcb,
            ..EnsembleConfig::default()
        }
    }

    fn trained(models: Vec<AnyModel>) -> Vec<Member> {
        models
            .into_iter()
            .map(|m| Member::trained(FeatureSpec::default(), None, m))
            .collect()
    }

    /// Forecasts at every t and scores with close[t+1]; optionally adds a generation of five
    /// seeded noise members every `window` scores. Returns (ensemble, naive) price accumulators.
    fn replay(
        ens: &mut Ensemble,
        s: &Series,
        features: &FakeFeatures,
        noise_generations: Option<u64>,
    ) -> (Accum, Accum) {
        let (mut ea, mut na) = (Accum::default(), Accum::default());
        let mut rng = Rng::new(noise_generations.unwrap_or(0));
        for t in 0..s.len() - 1 {
            let f = ens.forecast_with(s, t, MINUTE, features);
            let actual = s.close[t + 1];
            ens.score(&f, actual);
            ea.add(f.last_close, f.ensemble_price, actual);
            na.add(f.last_close, f.naive_price, actual);
            if noise_generations.is_some() && (t + 1) % ens.config.window == 0 {
                let models = (0..5)
                    .map(|_| {
                        let scale = SIGMA * [0.01, 0.1, 0.3, 1.0, 3.0][rng.below(5)];
                        noise_member(rng.below(features.noise_cols), scale)
                    })
                    .collect();
                ens.add_generation(FeatureSpec::default(), None, models, None);
                ens.close_window();
            }
        }
        (ea, na)
    }

    #[test]
    fn weights_follow_the_documented_formula() {
        let pinned = EnsembleConfig {
            lambda: 0.995,
            eta: 50.0,
            z: 2.0,
            min_scored: 30,
            ..config()
        };
        let mut ens = Ensemble::new(
            pinned,
            trained(vec![linear(vec![1.0], 0.0), linear(vec![2.0], 0.0)]),
        )
        .expect("valid");
        // Member 1: 40 scores, each with e = 1, naive a² = 2 (d = −1 every time: zero variance).
        for _ in 0..40 {
            ens.members[1].stats.record(0.98, 1.0, 2.0);
        }
        // Member 2: the same advantage but too few scores to vote.
        for _ in 0..10 {
            ens.members[2].stats.record(0.98, 1.0, 2.0);
        }
        let s1 = &ens.members[1].stats;
        let w: f64 = (0..40).map(|k| 0.98f64.powi(k)).sum();
        assert!((s1.discounted_weight - w).abs() < 1e-12);
        assert!((s1.mse().expect("scored") - 1.0).abs() < 1e-12);
        assert!((s1.naive_mse().expect("scored") - 2.0).abs() < 1e-12);
        assert!((s1.skill().expect("scored") - 0.5).abs() < 1e-12);
        assert!(s1.votes(2.0, 30));
        assert!(!ens.members[2].stats.votes(2.0, 30));
        let raw = ens.raw_weights();
        assert_eq!(raw[0], 1.0);
        // d is constant, so se = 0 and the lower bound is the skill itself.
        assert_eq!(s1.skill_lower_bound(2.0, 30), Some(0.5));
        assert_eq!(ens.members[2].stats.skill_lower_bound(2.0, 30), None);
        assert!((raw[1] - (50.0f64 * 0.5).exp_m1()).abs() < 1e-3);
        assert_eq!(raw[2], 0.0);
        let weights = ens.weights();
        let total = (25.0f64).exp();
        assert!((weights[0] - 1.0 / total).abs() < 1e-15);
        assert!((weights.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        // A member worse than the naive never votes.
        let mut worse = MemberStats::default();
        for _ in 0..100 {
            worse.record(0.98, 3.0, 2.0);
        }
        assert!(!worse.votes(0.0, 30));
        // A noisy advantage must clear z standard errors.
        let mut noisy = MemberStats::default();
        for k in 0..100 {
            let e = if k % 2 == 0 { 0.0 } else { 3.9 };
            noisy.record(0.98, e, 2.0); // d alternates −2, +1.9: mean −0.05
        }
        assert!(noisy.votes(0.0, 30));
        assert!(!noisy.votes(2.0, 30));
        let w = noisy.discounted_weight;
        let mean = noisy.discounted_diff / w;
        let var = noisy.discounted_diff_sq / w - mean * mean;
        let se = (var * noisy.discounted_weight_sq / (w * w)).sqrt();
        let naive = noisy.naive_mse().expect("scored");
        let lcb = noisy.skill_lower_bound(0.1, 30).expect("votes at z = 0.1");
        assert!(lcb > 0.0);
        assert!((lcb - (-mean - 0.1 * se) / naive).abs() < 1e-12);
    }

    #[test]
    fn weights_move_toward_the_better_member() {
        let s = synthetic(400, 0.0, SIGMA, 1);
        let features = FakeFeatures {
            noise_cols: 4,
            seed: 3,
            ..FakeFeatures::default()
        }
        .with_oracle(&s);
        let oracle = linear(vec![0.0, 1.0], 0.0);
        let bias = linear(vec![], 0.5 * SIGMA);
        let mut ens = Ensemble::new(
            config(),
            trained(vec![oracle, noise_member(0, SIGMA), bias]),
        )
        .expect("valid");
        let (ea, na) = replay(&mut ens, &s, &features, None);
        let w = ens.weights();
        assert!(w[1] > 0.99, "oracle weight {w:?}");
        assert!(w[0] > 0.0, "naive keeps a weight: {w:?}");
        assert_eq!(
            (w[2], w[3]),
            (0.0, 0.0),
            "noise and bias do not vote: {w:?}"
        );
        assert!(
            ea.rmse() < 0.5 * na.rmse(),
            "{} vs {}",
            ea.rmse(),
            na.rmse()
        );
        // Every member was scored on every forecast after warm-up (t = 0 has no row).
        assert_eq!(ens.members[0].stats.n_scored, 399);
        assert_eq!(ens.members[1].stats.n_scored, 398);
    }

    #[test]
    fn noise_only_pool_is_never_worse_than_naive() {
        for seed in [11, 12, 13] {
            let s = synthetic(12_000, 0.0, SIGMA, seed);
            let features = FakeFeatures {
                noise_cols: 16,
                seed: seed + 100,
                ..FakeFeatures::default()
            };
            let members = vec![
                noise_member(0, 0.01 * SIGMA),
                noise_member(1, 0.1 * SIGMA),
                noise_member(2, 0.3 * SIGMA),
                noise_member(3, SIGMA),
                linear(vec![], 0.05 * SIGMA),
            ];
            let mut ens = Ensemble::new(config(), trained(members)).expect("valid");
            let (ea, na) = replay(&mut ens, &s, &features, Some(seed));
            let ratio = ea.rmse() / na.rmse();
            assert!(ratio <= 1.0 + 1e-3, "seed {seed}: rmse ratio {ratio}");
            assert_eq!(ens.generation_numbers().len(), 8);
        }
    }

    fn ml_poly() -> EnsembleConfig {
        EnsembleConfig {
            combiner: Combiner::MlPoly,
            ..EnsembleConfig::default()
        }
    }

    /// Backs the README's "the ensemble learns": with ML-Poly, an expert with a real edge
    /// (the AR(1) coefficient, φ = 0.3: best ratio ≈ 0.954) among noise generations earns its
    /// weight and the ensemble beats the naive clearly; the expert's record is positive and
    /// the noise family's is not.
    /// Backs README claim [C10]: ML-Poly's regret bound holds against every expert, and the ensemble stays within it of naive.
    #[test]
    fn ml_poly_learns_a_signal_among_noise_generations() {
        let s = synthetic(6_000, 0.3, SIGMA, 5);
        let features = FakeFeatures {
            noise_cols: 16,
            seed: 9,
            ..FakeFeatures::default()
        };
        let mut ens = Ensemble::new(ml_poly(), trained(vec![linear(vec![0.3], 0.0)])).expect("ok");
        let (ea, na) = replay(&mut ens, &s, &features, Some(5));
        let ratio = ea.rmse() / na.rmse();
        assert!(ratio < 0.975, "rmse ratio {ratio}");
        let w = ens.expert_weights();
        let get = |l: &str| w.iter().find(|e| e.label == l).map(|e| e.weight);
        assert!(get("trained/linear").unwrap_or(0.0) > 0.9, "{w:?}");
        assert!(get("generations/linear").unwrap_or(1.0) < 0.1, "{w:?}");
    }

    /// Backs the README's "never worse than doing nothing": with ML-Poly and only noise
    /// members (trained and window generations), the ensemble stays within 0.1 % of naive.
    /// Backs README claim [C10]: ML-Poly's regret bound holds against every expert, and the ensemble stays within it of naive.
    #[test]
    fn ml_poly_with_only_noise_stays_with_naive() {
        for seed in [11, 12] {
            let s = synthetic(12_000, 0.0, SIGMA, seed);
            let features = FakeFeatures {
                noise_cols: 16,
                seed: seed + 100,
                ..FakeFeatures::default()
            };
            let members = vec![noise_member(0, 0.3 * SIGMA)];
            let mut ens = Ensemble::new(ml_poly(), trained(members)).expect("valid");
            let (ea, na) = replay(&mut ens, &s, &features, Some(seed));
            let ratio = ea.rmse() / na.rmse();
            assert!(ratio <= 1.001, "seed {seed}: rmse ratio {ratio}");
        }
    }

    #[test]
    fn a_learnable_signal_beats_the_naive() {
        // Log returns are AR(1) with phi = 0.3: the best possible RMSE ratio is about 0.954.
        let s = synthetic(6_000, 0.3, SIGMA, 5);
        let features = FakeFeatures {
            noise_cols: 16,
            seed: 9,
            ..FakeFeatures::default()
        };
        let members = vec![
            linear(vec![0.3], 0.0),
            noise_member(0, SIGMA),
            noise_member(1, 0.1 * SIGMA),
        ];
        let mut ens = Ensemble::new(config(), trained(members)).expect("valid");
        let (ea, na) = replay(&mut ens, &s, &features, Some(5));
        let ratio = ea.rmse() / na.rmse();
        assert!(ratio < 0.985, "rmse ratio {ratio}");
        // Directional accuracy counts the moves a forecast called; the naive calls none.
        assert!(ea.directional() > 0.5, "{}", ea.directional());
        assert!(na.directional().is_nan());
    }

    #[test]
    fn a_naive_only_pool_is_the_naive_forecast() {
        let s = synthetic(200, 0.0, SIGMA, 2);
        let mut ens = Ensemble::new(config(), Vec::new()).expect("valid");
        let (ea, na) = replay(&mut ens, &s, &FakeFeatures::default(), None);
        assert_eq!(ea, na);
        assert_eq!(ens.total_accum, na);
        let board = ens.scoreboard();
        assert_eq!(board.len(), 2);
        assert_eq!(board[0].label, "ensemble");
        assert_eq!(board[1].label, "naive");
        assert_eq!(board[0].rmse_vs_naive, Some(1.0));
        // "No change" is its own case: no directional accuracy, not 0 %.
        assert_eq!(board[1].directional, None);
    }

    #[test]
    fn scoreboard_compares_a_late_group_with_naive_on_the_same_klines() {
        // Regression: generations join after the first window. Their RMSE was divided by the
        // naive's RMSE over the whole run, so a volatile first window (which only naive saw)
        // made the generations look better than naive when they were exactly naive.
        let mut s = synthetic(200, 0.0, SIGMA, 3);
        for t in 1..20 {
            s.close[t] = s.close[t - 1] * if t % 2 == 0 { 1.05 } else { 0.95 };
        }
        let mut ens = Ensemble::new(config(), Vec::new()).expect("valid");
        let features = FakeFeatures::default();
        for t in 0..s.len() - 1 {
            if t == 40 {
                // A generation that always forecasts no change: the naive forecast itself.
                ens.add_generation(
                    FeatureSpec::default(),
                    None,
                    vec![linear(vec![0.0], 0.0)],
                    None,
                );
            }
            let f = ens.forecast_with(&s, t, MINUTE, &features);
            ens.score(&f, s.close[t + 1]);
        }
        let board = ens.scoreboard();
        let generation = board
            .iter()
            .find(|r| r.label == "generations/linear")
            .expect("a generation row");
        assert_eq!(generation.n, 159);
        assert_eq!(generation.rmse_vs_naive, Some(1.0));
        let naive = board.iter().find(|r| r.label == "naive").expect("naive");
        assert!(generation.rmse.expect("rmse") < 0.5 * naive.rmse.expect("rmse"));
    }

    #[test]
    fn members_abstain_before_warm_up_and_on_non_finite_output() {
        let s = synthetic(5, 0.0, SIGMA, 2);
        let ens = Ensemble::new(
            config(),
            trained(vec![linear(vec![1.0], 0.0), linear(vec![], f64::NAN)]),
        )
        .expect("valid");
        let f = ens.forecast_with(&s, 0, MINUTE, &FakeFeatures::default());
        assert_eq!(f.members.len(), 1);
        assert_eq!(f.members[0].label, "naive");
        assert_eq!(f.ensemble_price, s.close[0]);
        assert_eq!(f.target_open_time, s.open_time[0] + MINUTE);
        let f = ens.forecast_with(&s, 3, MINUTE, &FakeFeatures::default());
        assert_eq!(
            f.member_prices().iter().map(|p| p.0).collect::<Vec<_>>(),
            ["naive", "trained/linear"]
        );
        // A new member has no evidence: it forecasts but does not vote.
        assert_eq!(f.members[1].weight, 0.0);
        assert_eq!(f.ensemble_price, s.close[3]);
        let lr = (s.close[3] / s.close[2]).ln();
        assert_eq!(f.members[1].price, s.close[3] * lr.exp());
    }

    #[test]
    fn bad_configs_and_other_horizons_are_refused() {
        let other = FeatureSpec {
            horizon: 5,
            ..FeatureSpec::default()
        };
        let m = Member::trained(other, None, linear(vec![1.0], 0.0));
        let err = Ensemble::new(config(), vec![m]).expect_err("horizon 5 in a horizon-1 pool");
        assert_eq!(
            err.to_string(),
            "trained model trained/linear forecasts horizon 5 but the ensemble forecasts \
             horizon 1; retrain with `klinecast train --horizon 1`"
        );
        let bad = EnsembleConfig {
            lambda: 1.0,
            ..config()
        };
        let err = Ensemble::new(bad, Vec::new()).expect_err("lambda 1");
        assert_eq!(
            err.to_string(),
            "ensemble setting lambda = 1 is invalid, expected a number between 0 and 1"
        );
    }

    /// The number of distinct member ids (sorted first: `dedup` only drops adjacent repeats).
    fn distinct_ids(ens: &Ensemble) -> usize {
        let mut ids: Vec<u64> = ens.members.iter().map(|m| m.id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }

    /// Regression: duplicates that are not next to each other are still found. Members of two
    /// generations interleaved in the pool give each generation once, and an id repeated two
    /// members apart is counted once.
    #[test]
    fn non_adjacent_duplicates_are_found() {
        let mut ens =
            Ensemble::new(config(), trained(vec![linear(vec![1.0], 0.0)])).expect("valid");
        for g in 0..2 {
            let models = (0..2).map(|c| noise_member(c, SIGMA)).collect();
            assert_eq!(
                ens.add_generation(FeatureSpec::default(), None, models, None),
                g
            );
        }
        let origins =
            |ens: &Ensemble| -> Vec<Origin> { ens.members.iter().map(|m| m.origin).collect() };
        // naive, trained, gen0, gen0, gen1, gen1 -> naive, trained, gen0, gen1, gen0, gen1.
        ens.members.swap(3, 4);
        assert_eq!(
            origins(&ens)[2..],
            [0, 1, 0, 1].map(Origin::Generation),
            "generations interleaved"
        );
        assert_eq!(ens.generation_numbers(), vec![0, 1]);
        assert_eq!(distinct_ids(&ens), 6);
        let first_gen_id = ens.members[2].id;
        ens.members[4].id = first_gen_id;
        assert_eq!(distinct_ids(&ens), 5, "an id repeated two members apart");
    }

    #[test]
    fn generations_are_bounded_and_evicted_oldest_first() {
        let mut ens = Ensemble::new(
            EnsembleConfig {
                generations: 3,
                ..config()
            },
            trained(vec![linear(vec![1.0], 0.0)]),
        )
        .expect("valid");
        for g in 0..10 {
            let models = (0..5).map(|c| noise_member(c, SIGMA)).collect();
            assert_eq!(
                ens.add_generation(FeatureSpec::default(), None, models, None),
                g
            );
            assert!(ens.members.len() <= 1 + 1 + 5 * 3);
        }
        assert_eq!(ens.generation_numbers(), vec![7, 8, 9]);
        assert_eq!(ens.members.len(), 17);
        assert_eq!(ens.members[0].label, "naive");
        assert_eq!(ens.members[1].label, "trained/linear");
        assert_eq!(ens.members[2].label, "gen7/linear");
        // Ids are unique.
        assert_eq!(distinct_ids(&ens), 17);
        // New trained members replace the old ones and keep the generations.
        ens.replace_trained(trained(vec![linear(vec![0.5], 0.0), linear(vec![], 0.0)]))
            .expect("same horizon");
        assert_eq!(ens.trained_count(), 2);
        assert_eq!(ens.members.len(), 18);
        assert_eq!(ens.generation_numbers(), vec![7, 8, 9]);
    }

    #[test]
    fn lifetime_totals_survive_eviction() {
        let s = synthetic(400, 0.0, SIGMA, 4);
        let features = FakeFeatures {
            noise_cols: 8,
            seed: 1,
            ..FakeFeatures::default()
        };
        let mut ens = Ensemble::new(config(), Vec::new()).expect("valid");
        replay(&mut ens, &s, &features, Some(1));
        let board = ens.scoreboard();
        let labels: Vec<&str> = board.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, ["ensemble", "naive", "generations/linear"]);
        // 26 generations of 5 members were added; each forecast after its birth (t ≥ 1 always
        // has a row) was scored once per member alive, including the evicted ones.
        let gen_scores: u64 = (0..s.len() as u64 - 1).map(|t| 5 * (t / 15).min(8)).sum();
        assert_eq!(board[2].n, gen_scores);
        assert_eq!(board[0].n, 399);
    }

    #[test]
    fn reconfigure_validates_and_keeps_the_spec() {
        let mut ens = Ensemble::new(config(), Vec::new()).expect("ensemble");
        let before = ens.config.clone();
        let bad = EnsembleConfig {
            window: 0,
            ..before.clone()
        };
        let err = ens.reconfigure(bad).expect_err("window 0");
        assert!(
            matches!(
                err,
                EnsembleError::BadConfig {
                    param: "window",
                    ..
                }
            ),
            "{err}"
        );
        let other_spec = EnsembleConfig {
            spec: FeatureSpec {
                horizon: before.spec.horizon + 1,
                ..before.spec.clone()
            },
            ..before.clone()
        };
        let err = ens.reconfigure(other_spec).expect_err("spec change");
        assert!(
            matches!(err, EnsembleError::BadConfig { param: "spec", .. }),
            "{err}"
        );
        assert_eq!(
            ens.config, before,
            "a refused configuration changes nothing"
        );
        let wanted = EnsembleConfig {
            window: 7,
            refit_rows: 300,
            generations: 3,
            ..before
        };
        ens.reconfigure(wanted.clone()).expect("valid");
        assert_eq!(ens.config, wanted);
    }
}
