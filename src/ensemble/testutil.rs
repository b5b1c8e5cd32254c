//! Test helpers for the ensemble: seeded synthetic klines, a fake feature source with planted
//! columns, hand-built linear members and a fake generation fitter. Compiled for tests only.

use std::collections::HashMap;
use std::ops::Range;

use crate::features::{FeatureSpec, Scaler};
use crate::kline::{KlineValues, Series};
use crate::models::linear::Linear;
use crate::models::{AnyModel, FitError};
use crate::rng::Rng;

use super::learner::GenerationFitter;
use super::{Combiner, EnsembleConfig, FeatureSource, Member};

pub(crate) const MINUTE: i64 = 60_000;
pub(crate) const T0: i64 = 1_782_864_000_000;

/// A standard normal draw (Box–Muller).
pub(crate) fn gaussian(rng: &mut Rng) -> f64 {
    let u1 = rng.next_f64().max(1e-300);
    let u2 = rng.next_f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

pub fn kline(open_time: i64, open: f64, close: f64) -> KlineValues {
    KlineValues {
        open_time,
        open,
        high: open.max(close),
        low: open.min(close),
        close,
        volume: 1.0,
        close_time: open_time + MINUTE - 1,
        quote_volume: close,
        trades: 1.0,
        taker_buy_base: 0.5,
        taker_buy_quote: 0.5 * close,
    }
}

/// `n` one-minute klines whose log returns follow r[t+1] = phi·r[t] + sigma·ε (phi = 0 is a
/// random walk).
pub fn synthetic(n: usize, phi: f64, sigma: f64, seed: u64) -> Series {
    let mut rng = Rng::new(seed);
    let mut s = Series::with_capacity(n);
    let mut close = 20.0;
    let mut r = 0.0;
    for i in 0..n {
        let open = close;
        r = phi * r + sigma * gaussian(&mut rng);
        close = open * f64::exp(r);
        s.push(&kline(T0 + i as i64 * MINUTE, open, close));
    }
    s
}

pub fn values(s: &Series, i: usize) -> KlineValues {
    kline(s.open_time[i], s.open[i], s.close[i])
}

/// Row at t: `[r_t, planted(open_time[t]), noise_1 .. noise_k]` where r_t is the last log
/// return (causal), `planted` is a value the test plants (such as the true next log return:
/// an oracle), and the noise columns are seeded N(0, 1) keyed by open time.
#[derive(Debug, Clone, Default)]
pub(crate) struct FakeFeatures {
    pub planted: HashMap<i64, f64>,
    pub(crate) noise_cols: usize,
    pub seed: u64,
}

impl FakeFeatures {
    pub(crate) fn noise(&self, open_time: i64, col: usize) -> f64 {
        let mut rng = Rng::derive(self.seed ^ (col as u64 + 1), open_time as u64);
        gaussian(&mut rng)
    }

    /// Plants the true next log return of every row of `s` (an oracle column).
    pub(crate) fn with_oracle(mut self, s: &Series) -> FakeFeatures {
        for t in 0..s.len().saturating_sub(1) {
            self.planted
                .insert(s.open_time[t], (s.close[t + 1] / s.close[t]).ln());
        }
        self
    }
}

impl FeatureSource for FakeFeatures {
    fn warmup(&self, _spec: &FeatureSpec) -> usize {
        1
    }

    fn row(&self, _spec: &FeatureSpec, series: &Series, t: usize) -> Option<Vec<f64>> {
        if t < 1 {
            return None;
        }
        let ot = series.open_time[t];
        let mut row = vec![
            (series.close[t] / series.close[t - 1]).ln(),
            self.planted.get(&ot).copied().unwrap_or(0.0),
        ];
        row.extend((0..self.noise_cols).map(|c| self.noise(ot, c)));
        Some(row)
    }
}

pub fn linear(coef: Vec<f64>, intercept: f64) -> AnyModel {
    AnyModel::Linear(Linear { coef, intercept })
}

/// A linear member reading noise column `col` scaled by `scale`.
pub(crate) fn noise_member(col: usize, scale: f64) -> AnyModel {
    let mut coef = vec![0.0; col + 3];
    coef[col + 2] = scale;
    linear(coef, 0.0)
}

/// One fit the fake fitter saw.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FitCall {
    pub generation: u64,
    pub rows: Range<usize>,
    /// Open times of the klines whose closes were used as targets.
    pub(crate) target_open_times: Vec<i64>,
}

/// Fits five linear members per generation: one least-squares slope on column 0 (r_t, through
/// the origin) and four seeded noise readers of scale `noise_scale`. Records every call.
#[derive(Debug, Clone, Default)]
pub(crate) struct FakeFitter {
    pub calls: Vec<FitCall>,
    pub(crate) noise_scale: f64,
    pub(crate) noise_cols: usize,
    pub fail: bool,
}

impl GenerationFitter for FakeFitter {
    fn fit(
        &mut self,
        _spec: &FeatureSpec,
        series: &Series,
        rows: Range<usize>,
        generation: u64,
    ) -> Result<(Option<Scaler>, Vec<AnyModel>), FitError> {
        self.calls.push(FitCall {
            generation,
            rows: rows.clone(),
            target_open_times: rows.clone().map(|t| series.open_time[t + 1]).collect(),
        });
        if self.fail || rows.len() < 10 {
            return Err(FitError::Shape {
                model: "fake",
                detail: format!("needs at least 10 rows, got {}", rows.len()),
            });
        }
        let (mut sxy, mut sxx) = (0.0, 0.0);
        for t in rows.clone().filter(|&t| t >= 1) {
            let x = (series.close[t] / series.close[t - 1]).ln();
            let y = (series.close[t + 1] / series.close[t]).ln();
            sxy += x * y;
            sxx += x * x;
        }
        let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
        let mut models = vec![linear(vec![slope], 0.0)];
        let mut rng = Rng::derive(7, generation);
        for _ in 0..4 {
            let col = rng.below(self.noise_cols.max(1));
            models.push(noise_member(col, self.noise_scale));
        }
        Ok((None, models))
    }
}

/// The synthetic returns' scale in the unit tests.
pub(crate) const SIGMA: f64 = 0.001;

/// The LCB combiner: most unit tests check the gate's documented formula and behaviour.
pub fn config() -> EnsembleConfig {
    EnsembleConfig {
        combiner: Combiner::Lcb,
        ..EnsembleConfig::default()
    }
}

/// Trained members of the default feature spec, unscaled.
pub fn trained(models: Vec<AnyModel>) -> Vec<Member> {
    models
        .into_iter()
        .map(|m| Member::trained(FeatureSpec::default(), None, m))
        .collect()
}
