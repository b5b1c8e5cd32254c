//! The window learner: the pure state machine that `klinecast backtest` and the live
//! ensembling thread both drive, kline by kline. No I/O, no clock: the caller feeds closed
//! klines, saves the ensemble and writes the reports.
//!
//! Per closed kline ([`Learner::on_kline`]), in this order:
//! 1. score the pending forecast whose target open time is this kline's open time (prequential:
//!    the close is used for scoring before anything can learn from it);
//! 2. append the kline to the rolling history;
//! 3. forecast the next close from the history (`Step::forecast`).
//!
//! When `window` forecasts have been scored since the last window, `Step::window_done` is set
//! and the caller calls [`Learner::end_window`], which (a) takes the window's scores, made
//! before the window's own generation exists, (b) fits a new generation with
//! [`crate::train::fit_models`] on the last `refit_rows` history rows whose target is known,
//! (c) adds it to the bounded pool, evicting the oldest, and (d) re-forecasts the pending
//! forecast with the new pool (still from the same history, so nothing leaks).
//!
//! Gaps: a kline whose open time is not the previous one plus the interval follows a gap. The
//! forecasts pending for the missing klines can never be scored and are dropped (counted in
//! `Step::dropped`); only a forecast whose target open time equals the arriving kline's open
//! time is scored. The history is kept across the gap (feed klines fetched to fill the gap in
//! order, before newer ones). A kline not newer than the last one is ignored.

use std::collections::VecDeque;
use std::ops::Range;

use crate::features::{FeatureSpec, Scaler};
use crate::kline::{KlineValues, Series};
use crate::models::{AnyModel, FitError, ModelKind};
use crate::rng;
use crate::train::{fit_models, FitConfig};

use super::report::{Refit, WindowReport};
use super::{Ensemble, FeatureSource, Forecast, ScoredForecast, SpecFeatures};

/// What one kline did.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The pending forecast this kline's close scored, if one targeted it.
    pub scored: Option<ScoredForecast>,
    /// The forecast of the next close (`None` when the kline was ignored).
    pub forecast: Option<Forecast>,
    /// `window` forecasts were scored since the last window: call [`Learner::end_window`].
    pub window_done: bool,
    /// The kline followed a gap (its open time is not the previous one plus the interval).
    pub gap: bool,
    /// Pending forecasts dropped unscored because their target kline never came.
    pub dropped: usize,
    /// The kline was not newer than the last one and was ignored.
    pub ignored: bool,
}

/// Fits the models of one generation. Production code uses [`StandardFitter`].
pub trait GenerationFitter {
    /// Fits on `series` rows `rows` (every row's target is inside `series`). Returns the
    /// scaler the models read through and the fitted models.
    fn fit(
        &mut self,
        spec: &FeatureSpec,
        series: &Series,
        rows: Range<usize>,
        generation: u64,
    ) -> Result<(Option<Scaler>, Vec<AnyModel>), FitError>;
}

/// The real refit: [`FeatureSpec::dataset`], [`Scaler::fit`] on those rows, then
/// [`fit_models`] (the same code path as `klinecast train`), seeded per generation.
#[derive(Debug, Clone)]
pub struct StandardFitter {
    pub config: FitConfig,
    pub kinds: Vec<ModelKind>,
}

impl GenerationFitter for StandardFitter {
    fn fit(
        &mut self,
        spec: &FeatureSpec,
        series: &Series,
        rows: Range<usize>,
        generation: u64,
    ) -> Result<(Option<Scaler>, Vec<AnyModel>), FitError> {
        let data = spec.dataset(series, rows);
        let scaler = Scaler::fit(&data.x);
        let x = scaler.transform(&data.x);
        let mut seed_state = self.config.seed ^ generation;
        let config = FitConfig {
            seed: rng::splitmix64(&mut seed_state),
            ..self.config.clone()
        };
        let fitted = fit_models(&self.kinds, &x, &data.y, &config, &mut |_| {})?;
        Ok((Some(scaler), fitted.into_iter().map(|f| f.model).collect()))
    }
}

/// The window learner (see the module doc).
pub struct Learner {
    ensemble: Ensemble,
    history: Series,
    capacity: usize,
    interval_ms: i64,
    pending: VecDeque<Forecast>,
    scored_in_window: usize,
    window_first: Option<i64>,
    window_last: Option<i64>,
    features: Box<dyn FeatureSource + Send>,
}

impl Learner {
    /// A learner over `ensemble`, seeded with the klines that precede the stream (`history`,
    /// ascending, possibly empty; only the most recent rows that refits need are kept). When
    /// the history is not empty, the next close is forecast at once.
    pub fn new(ensemble: Ensemble, history: Series, interval_ms: i64) -> Learner {
        Learner::with_features(ensemble, history, interval_ms, Box::new(SpecFeatures))
    }

    /// [`Learner::new`] with another feature source (tests).
    pub fn with_features(
        ensemble: Ensemble,
        mut history: Series,
        interval_ms: i64,
        features: Box<dyn FeatureSource + Send>,
    ) -> Learner {
        let c = &ensemble.config;
        let capacity = c.refit_rows + ensemble.max_warmup(features.as_ref()) + c.spec.horizon + 1;
        history.keep_last(capacity);
        let mut learner = Learner {
            ensemble,
            history,
            capacity,
            interval_ms,
            pending: VecDeque::new(),
            scored_in_window: 0,
            window_first: None,
            window_last: None,
            features,
        };
        if !learner.history.is_empty() {
            let f = learner.forecast_last();
            learner.pending.push_back(f);
        }
        learner
    }

    pub fn ensemble(&self) -> &Ensemble {
        &self.ensemble
    }

    pub fn into_ensemble(self) -> Ensemble {
        self.ensemble
    }

    /// The rolling history (at most refit_rows + warm-up + horizon + 1 klines).
    pub fn history(&self) -> &Series {
        &self.history
    }

    /// The newest pending forecast (after [`Learner::end_window`], the re-forecast).
    pub fn latest_forecast(&self) -> Option<&Forecast> {
        self.pending.back()
    }

    /// Forecasts scored since the last window.
    pub fn scored_in_window(&self) -> usize {
        self.scored_in_window
    }

    /// Feeds one closed kline (see the module doc for the order of steps).
    pub fn on_kline(&mut self, kline: &KlineValues) -> Step {
        let last_open = self.history.open_time.last().copied();
        if last_open.is_some_and(|last| kline.open_time <= last) {
            return Step {
                scored: None,
                forecast: None,
                window_done: false,
                gap: false,
                dropped: 0,
                ignored: true,
            };
        }
        let gap = last_open.is_some_and(|last| kline.open_time != last + self.interval_ms);
        let mut scored = None;
        let mut dropped = 0;
        while let Some(front) = self.pending.front() {
            if front.target_open_time > kline.open_time {
                break;
            }
            let Some(f) = self.pending.pop_front() else {
                break;
            };
            if f.target_open_time < kline.open_time {
                dropped += 1;
                continue;
            }
            scored = Some(self.ensemble.score(&f, kline.close));
            self.scored_in_window += 1;
            self.window_first.get_or_insert(kline.open_time);
            self.window_last = Some(kline.open_time);
        }
        self.history.push(kline);
        if self.history.len() > 2 * self.capacity {
            self.history.keep_last(self.capacity);
        }
        let forecast = self.forecast_last();
        self.pending.push_back(forecast.clone());
        Step {
            scored,
            forecast: Some(forecast),
            window_done: self.scored_in_window >= self.ensemble.config.window,
            gap,
            dropped,
            ignored: false,
        }
    }

    /// Closes the window with the real refit ([`StandardFitter`]).
    pub fn end_window(&mut self, config: &FitConfig) -> WindowReport {
        let mut fitter = StandardFitter {
            config: config.clone(),
            kinds: self.ensemble.config.kinds.clone(),
        };
        self.end_window_with(&mut fitter)
    }

    /// Closes the window: report its scores, fit and add a generation, re-forecast.
    pub fn end_window_with(&mut self, fitter: &mut dyn GenerationFitter) -> WindowReport {
        let forecasters = self.ensemble.window_scores();
        let rows = self.refit_rows();
        let n_rows = rows.len();
        let generation = self.ensemble.next_generation;
        let spec = self.ensemble.config.spec.clone();
        let refit = match fitter.fit(&spec, &self.history, rows, generation) {
            Ok((scaler, models)) => {
                let before = self.ensemble.generation_numbers();
                let generation = self.ensemble.add_generation(spec, scaler, models);
                let after = self.ensemble.generation_numbers();
                Refit::Added {
                    generation,
                    rows: n_rows,
                    evicted: before.into_iter().filter(|g| !after.contains(g)).collect(),
                }
            }
            Err(e) => Refit::Failed {
                error: e.to_string(),
            },
        };
        let report = WindowReport {
            window: self.ensemble.windows_done,
            first_open_time: self.window_first.unwrap_or(0),
            last_open_time: self.window_last.unwrap_or(0),
            forecasters,
            weights: self.ensemble.member_weights(),
            refit,
            trained: self.ensemble.trained_count(),
            generations: self.ensemble.generation_numbers().len(),
            pool_size: self.ensemble.members.len(),
            version: 0,
        };
        self.ensemble.close_window();
        self.scored_in_window = 0;
        self.window_first = None;
        self.window_last = None;
        // Re-forecast with the new pool: same history, so the forecast still reads only the past.
        let last_open = self.history.open_time.last().copied();
        if let Some(back) = self.pending.back() {
            if Some(back.as_of_open_time) == last_open {
                let f = self.forecast_last();
                if let Some(slot) = self.pending.back_mut() {
                    *slot = f;
                }
            }
        }
        WindowReport {
            version: self.ensemble.version,
            ..report
        }
    }

    /// History rows whose target is known: the last `refit_rows` of them.
    fn refit_rows(&self) -> Range<usize> {
        let end = self
            .history
            .len()
            .saturating_sub(self.ensemble.config.spec.horizon);
        end.saturating_sub(self.ensemble.config.refit_rows)..end
    }

    fn forecast_last(&self) -> Forecast {
        let t = self.history.len() - 1;
        self.ensemble
            .forecast_with(&self.history, t, self.interval_ms, self.features.as_ref())
    }
}
