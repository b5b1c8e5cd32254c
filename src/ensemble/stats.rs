//! The running statistics: a forecaster's paired record against the naive ([`MemberStats`]),
//! the prediction intervals' state and figures, and the scoreboard's lifetime totals.

use serde::{Deserialize, Serialize};

use crate::metrics::Accum;

use super::interval;

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
    pub(super) fn record(&mut self, lambda: f64, sq_err: f64, naive_sq_err: f64) {
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
    pub(super) fn new(coverage: f64, interval_ms: i64) -> Intervals {
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
