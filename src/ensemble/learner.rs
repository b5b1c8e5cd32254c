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
//! [`crate::models::fit::fit_models`] on the last `refit_rows` history rows whose target is known,
//! (c) adds it to the bounded pool, evicting the oldest. The forecast made after the kline
//! that ended the window (by the pool as it was before the refit) stays the one in flight: it
//! is the one the caller has already published, and the one scored when its target arrives, so
//! a forecast never waits for a refit and every published forecast is the scored one. The new
//! generation forecasts from the next kline on.
//!
//! The forecasts in flight ([`Learner::in_flight`]) are saved with the ensemble and handed back
//! on restart ([`Learner::resume_in_flight`]), so a resumed learner scores exactly what an
//! uninterrupted one would.
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
use crate::models::fit::{fit_models, FitConfig};
use crate::models::{AnyModel, FitError, ModelKind};

use super::report::{Refit, WindowReport};
use super::{
    Ensemble, FeatureSource, Forecast, GenerationRows, Member, Origin, ScoredForecast, SpecFeatures,
};

/// What one kline did.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The pending forecast this kline's close scored, if one targeted it.
    pub(crate) scored: Option<ScoredForecast>,
    /// The forecast of the next close (`None` when the kline was ignored).
    pub(crate) forecast: Option<Forecast>,
    /// `window` forecasts were scored since the last window: call [`Learner::end_window`].
    pub window_done: bool,
    /// The kline followed a gap (its open time is not the previous one plus the interval).
    pub(crate) gap: bool,
    /// Pending forecasts dropped unscored because their target kline never came.
    pub(crate) dropped: usize,
    /// The kline was not newer than the last one and was ignored.
    pub(crate) ignored: bool,
}

/// Fits the models of one generation. Production code uses [`StandardFitter`].
pub(crate) trait GenerationFitter {
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
/// [`fit_models`] (the same code path as `klinecast train`) with
/// [`FitConfig::for_generation`]: seeded per generation, compact forests.
#[derive(Debug, Clone)]
pub(crate) struct StandardFitter {
    pub(crate) config: FitConfig,
    pub(crate) kinds: Vec<ModelKind>,
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
        let config = self.config.for_generation(generation);
        let fitted = fit_models(&self.kinds, &x, &data.y, &config, &mut |_| {})?;
        Ok((Some(scaler), fitted.into_iter().map(|f| f.model).collect()))
    }
}

/// The [`GenerationRows`] of series rows `rows` (`None` when empty).
fn generation_rows(series: &Series, rows: Range<usize>) -> Option<GenerationRows> {
    let first = *series.open_time.get(rows.start)?;
    let last = *series.open_time.get(rows.end.checked_sub(1)?)?;
    (rows.start < rows.end).then_some(GenerationRows {
        first_open_time: first,
        last_open_time: last,
        rows: rows.len(),
    })
}

/// What [`restore_generations`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Restored {
    /// Generations refitted from the rows they were first fitted on.
    pub refitted: Vec<u64>,
    /// Generations dropped, with the reason (their rows are not in the series, or the refit
    /// failed).
    pub dropped: Vec<(u64, String)>,
}

/// Refits the window generations of a loaded ensemble that were saved without their models
/// (`EnsembleModel.bin` v4 keeps only the rows each was fitted on, [`GenerationRows`]) on
/// `series`, which should hold those rows with their warm-up and targets (the store's newest
/// klines). The refit is the window refit itself, on the same klines with the same generation
/// seed, so the restored generation is the one that was saved (the `kill -9` tests compare the
/// forecasts byte for byte). A generation whose rows `series` does not hold, or whose refit
/// fails, is dropped: its expert's record stays, its next generation joins at the next window.
pub(crate) fn restore_generations(
    ensemble: &mut Ensemble,
    series: &Series,
    fitter: &mut dyn GenerationFitter,
    features: &dyn FeatureSource,
) -> Restored {
    let mut restored = Restored::default();
    for generation in ensemble.generation_numbers() {
        let origin = Origin::Generation(generation);
        let in_gen = |m: &&Member| m.origin == origin;
        if ensemble
            .members
            .iter()
            .filter(in_gen)
            .all(|m| m.model.is_some())
        {
            continue;
        }
        let first = ensemble.members.iter().find(in_gen);
        let spec = first.map_or_else(|| ensemble.config.spec.clone(), |m| m.spec.clone());
        let refit = first
            .and_then(|m| GenerationRows::parse(&m.source))
            .ok_or_else(|| "it does not record the rows it was fitted on".to_string())
            .and_then(|on| {
                let rows = locate_rows(series, on, &spec, features)?;
                fitter
                    .fit(&spec, series, rows, generation)
                    .map_err(|e| format!("its refit failed: {e}"))
            });
        match refit {
            Ok((scaler, models)) => {
                // The refit returns its models in the order add_generation stored them; a member
                // whose kind the refit no longer fits is dropped.
                let mut models = models.into_iter();
                for m in ensemble.members.iter_mut().filter(|m| m.origin == origin) {
                    m.model = models.by_ref().find(|x| Some(x.kind()) == m.kind);
                    m.scaler = scaler.clone();
                }
                ensemble
                    .members
                    .retain(|m| m.origin != origin || m.model.is_some());
                restored.refitted.push(generation);
            }
            Err(reason) => {
                ensemble.members.retain(|m| m.origin != origin);
                restored.dropped.push((generation, reason));
            }
        }
    }
    restored
}

/// The series rows of `on`, checked: the same open times, a full feature row for the first and
/// a target for the last.
fn locate_rows(
    series: &Series,
    on: GenerationRows,
    spec: &FeatureSpec,
    features: &dyn FeatureSource,
) -> Result<Range<usize>, String> {
    let missing = || {
        format!(
            "the kline store no longer holds the {} rows it was fitted on (from {})",
            on.rows,
            crate::time::format_ms(on.first_open_time)
        )
    };
    let start = series
        .open_time
        .binary_search(&on.first_open_time)
        .map_err(|_| missing())?;
    let end = start + on.rows;
    let last_ok = end
        .checked_sub(1)
        .and_then(|i| series.open_time.get(i))
        .is_some_and(|&t| t == on.last_open_time);
    if !last_ok || start < features.warmup(spec) || end + spec.horizon > series.len() {
        return Err(missing());
    }
    Ok(start..end)
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
    pub(crate) fn with_features(
        ensemble: Ensemble,
        mut history: Series,
        interval_ms: i64,
        features: Box<dyn FeatureSource + Send>,
    ) -> Learner {
        let capacity = ensemble.history_capacity(features.as_ref());
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
        // A fresh volatility model warms up on the history; a loaded one already saw it (it is
        // saved with the ensemble) and must not see it twice.
        if learner.ensemble.intervals.volatility.bars() == 0 {
            for t in 0..learner.history.len() {
                learner.ensemble.warm_up(&learner.history, t, interval_ms);
            }
        }
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
    #[cfg(test)]
    pub(crate) fn history(&self) -> &Series {
        &self.history
    }

    /// The newest pending forecast (made before any refit of its kline's window).
    pub(crate) fn latest_forecast(&self) -> Option<&Forecast> {
        self.pending.back()
    }

    /// The forecasts in flight (made, their target not yet arrived), oldest first: saved with
    /// the ensemble so that a restart scores the same forecasts ([`Learner::resume_in_flight`]).
    pub(crate) fn in_flight(&self) -> Vec<Forecast> {
        self.pending.iter().cloned().collect()
    }

    /// Puts back the forecasts that were in flight when the ensemble was saved, in place of
    /// the one [`Learner::new`] made from the history with the loaded pool (after a window
    /// end, that pool already holds the window's refit, which the saved forecast predates).
    /// Only when they were made on the history's newest kline, the one the save was made at;
    /// otherwise (an empty list, or a store older than the save) the new forecast stays.
    /// Returns whether they were put back.
    pub(crate) fn resume_in_flight(&mut self, saved: Vec<Forecast>) -> bool {
        let last_open = self.history.open_time.last().copied();
        let fits = saved
            .last()
            .is_some_and(|f| Some(f.as_of_open_time) == last_open)
            && saved
                .iter()
                .all(|f| last_open.is_some_and(|t| f.target_open_time > t));
        if fits {
            self.pending = saved.into();
        }
        fits
    }

    /// Forecasts scored since the last window.
    #[cfg(test)]
    pub(crate) fn scored_in_window(&self) -> usize {
        self.scored_in_window
    }

    /// Feeds one closed kline (see the module doc for the order of steps).
    pub fn on_kline(&mut self, kline: &KlineValues) -> Step {
        self.on_kline_corr(kline, &[])
    }

    /// [`Learner::on_kline`] with the correlated symbols' closes of the kline's minute, one per
    /// column of the history's `corr` (`None` or missing: not there, the gap rule).
    pub fn on_kline_corr(&mut self, kline: &KlineValues, corr: &[Option<f64>]) -> Step {
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
        self.history.push_with_corr(kline, corr);
        let t = self.history.len() - 1;
        self.ensemble.observe(&self.history, t, self.interval_ms);
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

    /// Closes the window: report its scores, fit and add a generation. The forecasts in flight
    /// are left as they were made (see the module doc).
    pub(crate) fn end_window_with(&mut self, fitter: &mut dyn GenerationFitter) -> WindowReport {
        let forecasters = self.ensemble.window_scores();
        let rows = self.refit_rows();
        let n_rows = rows.len();
        let generation = self.ensemble.next_generation;
        let spec = self.ensemble.config.spec.clone();
        let fitted_on = generation_rows(
            &self.history,
            rows.start.max(self.features.warmup(&spec))..rows.end,
        );
        let refit = match fitter.fit(&spec, &self.history, rows, generation) {
            Ok((scaler, models)) => {
                let before = self.ensemble.generation_numbers();
                let generation = self
                    .ensemble
                    .add_generation(spec, scaler, models, fitted_on);
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
        // Recurrent members learn online from the window's newly known rows (see `online`).
        let known = self.refit_rows();
        let new_rows = known.end.saturating_sub(self.scored_in_window)..known.end;
        self.ensemble
            .online_update(&self.history, new_rows, self.features.as_ref());
        let report = WindowReport {
            window: self.ensemble.windows_done,
            first_open_time: self.window_first.unwrap_or(0),
            last_open_time: self.window_last.unwrap_or(0),
            forecasters,
            weights: self.ensemble.member_weights(),
            experts: self.ensemble.expert_weights(),
            coverage: self.ensemble.interval_report(),
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
        WindowReport {
            version: self.ensemble.version,
            ..report
        }
    }

    /// Replays rows `rows` of `series` (out of sample for every member: klines after the
    /// trained models' training rows) through the learner before it goes live: each kline is
    /// scored and forecast as [`Learner::on_kline`] does, so the experts' gate statistics,
    /// their ML-Poly records, the conformal state and the volatility model learn from it, but
    /// no window is refitted (no generation, no online update) and, at the end, the scores
    /// and window counts are cleared ([`Ensemble::clear_scores`]): the scoreboard counts only
    /// published forecasts. The forecast made on the last row stays in flight, alone (with
    /// `--horizon h` > 1 the h − 1 older ones are dropped, as [`Learner::new`] starts with one),
    /// so it is the first one published. Rows not newer than the history are skipped. Returns
    /// the forecasts scored.
    ///
    /// Why: a trained model's edge over the naive must be seen on out-of-sample klines before
    /// the gate lets it weigh; without this the live ensemble spends its first thousands of
    /// forecasts gathering evidence its trained members' holdout already holds. The regret
    /// bound is unchanged: these are rounds of the same algorithm (src/README.md, "Warm-up").
    pub(crate) fn warm_up(&mut self, series: &Series, rows: Range<usize>) -> u64 {
        let mut scored = 0;
        for i in rows {
            let step =
                self.on_kline_corr(&series.values(i, self.interval_ms), &series.corr_values(i));
            scored += u64::from(step.scored.is_some());
            if step.window_done {
                self.scored_in_window = 0;
            }
        }
        self.scored_in_window = 0;
        self.window_first = None;
        self.window_last = None;
        let newest = self.pending.pop_back();
        self.pending.clear();
        self.pending.extend(newest);
        self.ensemble.clear_scores();
        scored
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::super::testutil::*;
    use super::super::{interval, Combiner, EnsembleConfig, ExpertGroup, Member, Origin};
    use super::*;
    use crate::metrics::Accum;

    const SIGMA: f64 = 0.001;

    fn features() -> FakeFeatures {
        FakeFeatures {
            noise_cols: 8,
            seed: 77,
            ..FakeFeatures::default()
        }
    }

    fn fitter() -> FakeFitter {
        FakeFitter {
            noise_scale: SIGMA,
            noise_cols: 8,
            ..FakeFitter::default()
        }
    }

    fn learner(config: EnsembleConfig, trained: Vec<AnyModel>, history: Series) -> Learner {
        let trained = trained
            .into_iter()
            .map(|m| Member::trained(FeatureSpec::default(), None, m))
            .collect();
        let ens = Ensemble::new(config, trained, MINUTE).expect("valid config");
        Learner::with_features(ens, history, MINUTE, Box::new(features()))
    }

    fn small_config() -> EnsembleConfig {
        EnsembleConfig {
            refit_rows: 100,
            combiner: Combiner::Lcb,
            ..EnsembleConfig::default()
        }
    }

    /// The saved size of an ensemble less its two conformal score windows (which grow to their
    /// fixed capacity of one day of scores).
    fn size_without_score_windows(e: &Ensemble) -> usize {
        let ser = |v: &interval::ScoreWindow| postcard::to_allocvec(v).expect("ser").len();
        postcard::to_allocvec(e).expect("ser").len()
            - ser(&e.intervals.aci.scores)
            - ser(&e.intervals.aci_static.scores)
    }

    /// Feeds rows `range` of `s`, closing windows with `fitter`; returns the reports.
    fn drive(
        l: &mut Learner,
        s: &Series,
        range: Range<usize>,
        fitter: &mut FakeFitter,
    ) -> Vec<WindowReport> {
        let mut reports = Vec::new();
        for i in range {
            let step = l.on_kline(&values(s, i));
            if step.window_done {
                reports.push(l.end_window_with(fitter));
            }
        }
        reports
    }

    #[test]
    fn pool_history_and_saved_size_stay_bounded_over_100_windows() {
        let s = synthetic(15 * 100 + 1, 0.0, SIGMA, 1);
        let trained = (0..5).map(|c| noise_member(c, SIGMA)).collect();
        let mut l = learner(small_config(), trained, Series::default());
        let mut f = fitter();
        let mut size_at_20 = 0;
        let mut reports = Vec::new();
        for i in 0..s.len() {
            let step = l.on_kline(&values(&s, i));
            if step.window_done {
                reports.push(l.end_window_with(&mut f));
                assert!(l.ensemble().members.len() <= 1 + 5 + 5 * 8);
                assert!(l.history().len() <= 2 * (100 + 1 + 1 + 1));
                if reports.len() == 20 {
                    size_at_20 = size_without_score_windows(l.ensemble());
                }
            }
        }
        assert_eq!(reports.len(), 100);
        assert_eq!(l.ensemble().members.len(), 46);
        assert_eq!(reports[99].generations, 8);
        assert_eq!(reports[99].pool_size, 46);
        assert_eq!(
            reports[99].refit,
            Refit::Added {
                generation: 99,
                rows: 100,
                evicted: vec![91]
            }
        );
        let size_at_100 = size_without_score_windows(l.ensemble());
        // The interval's score windows fill up to their fixed capacity, then stay there.
        let iv = &l.ensemble().intervals;
        assert!(iv.aci.scores.len() <= crate::ensemble::interval::DEFAULT_SCORE_WINDOW);
        assert!(iv.aci_static.scores.len() <= crate::ensemble::interval::DEFAULT_SCORE_WINDOW);
        // Only varint counters and label digits grow.
        assert!(
            size_at_100 <= size_at_20 + 256,
            "{size_at_20} -> {size_at_100}"
        );
        assert_eq!(l.ensemble().windows_done, 100);
        // Window indices and bounds are consecutive.
        for (k, r) in reports.iter().enumerate() {
            assert_eq!(r.window, k as u64);
            assert_eq!(r.last_open_time - r.first_open_time, 14 * MINUTE);
            assert_eq!(r.forecasters[0].n, 15);
        }
    }

    #[test]
    fn forecasts_are_scored_by_the_next_kline_before_any_refit_reads_it() {
        let s = synthetic(400, 0.2, SIGMA, 3);
        let mut l = learner(small_config(), Vec::new(), Series::default());
        let mut f = fitter();
        let mut scored: HashSet<i64> = HashSet::new();
        let mut previous: Option<Forecast> = None;
        let mut joining: Option<String> = None;
        for i in 0..s.len() {
            let step = l.on_kline(&values(&s, i));
            match (&previous, &step.scored) {
                (Some(p), Some(sc)) => {
                    // The forecast made one kline earlier, scored with this kline's close.
                    assert_eq!(sc.target_open_time, s.open_time[i]);
                    assert_eq!(p.target_open_time, s.open_time[i]);
                    assert_eq!(sc.ensemble_price.to_bits(), p.ensemble_price.to_bits());
                    assert_eq!(sc.forecast_version, p.version);
                    assert_eq!(sc.actual_close, s.close[i]);
                    scored.insert(sc.target_open_time);
                }
                (None, None) => assert_eq!(i, 0),
                _ => panic!("kline {i}: a pending forecast and a score must go together"),
            }
            previous = step.forecast.clone();
            if step.window_done {
                let calls_before = f.calls.len();
                let report = l.end_window_with(&mut f);
                let call = &f.calls[calls_before];
                // Every close the fit used as a target had already scored its forecast.
                assert!(call.target_open_times.iter().all(|t| scored.contains(t)));
                assert_eq!(call.target_open_times.last(), Some(&s.open_time[i]));
                // The window was scored before its own generation existed.
                let Refit::Added { generation, .. } = report.refit else {
                    panic!("refit failed: {:?}", report.refit)
                };
                let label = format!("gen{generation}/");
                assert!(!report
                    .forecasters
                    .iter()
                    .any(|x| x.label.starts_with(&label)));
                let newcomers: Vec<&Member> = l
                    .ensemble()
                    .members
                    .iter()
                    .filter(|m| m.label.starts_with(&label))
                    .collect();
                assert_eq!(newcomers.len(), 5);
                assert!(newcomers.iter().all(|m| m.stats.n_scored == 0));
                // The forecast in flight is the one made before the refit, bit for bit (the
                // one published): the next kline scores it (checked at the top of the loop).
                let latest = l.latest_forecast().expect("pending").clone();
                assert_eq!(Some(&latest), step.forecast.as_ref());
                assert!(latest.version < report.version);
                assert!(!latest.members.iter().any(|m| m.label.starts_with(&label)));
                joining = Some(label);
            } else if let Some(label) = joining.take() {
                // The new generation forecasts from the next kline on.
                let f = step.forecast.as_ref().expect("a forecast");
                assert!(f.members.iter().any(|m| m.label.starts_with(&label)));
            }
        }
        assert_eq!(scored.len(), 399);
        assert_eq!(f.calls.len(), 399 / 15);
    }

    #[test]
    fn gaps_drop_unscorable_forecasts_and_stale_klines_are_ignored() {
        let s = synthetic(80, 0.0, SIGMA, 4);
        let mut l = learner(small_config(), Vec::new(), s.slice(0..40));
        assert_eq!(
            l.latest_forecast().map(|f| f.target_open_time),
            Some(s.open_time[40])
        );
        // Klines 40..=42 never arrive: the forecast for 40 cannot be scored.
        let step = l.on_kline(&values(&s, 43));
        assert!(step.gap);
        assert_eq!(step.dropped, 1);
        assert_eq!(step.scored, None);
        assert_eq!(l.scored_in_window(), 0);
        let step = l.on_kline(&values(&s, 44));
        assert!(!step.gap);
        assert_eq!(
            step.scored.as_ref().map(|x| x.target_open_time),
            Some(s.open_time[44])
        );
        // A stale or repeated kline changes nothing.
        let version = l.ensemble().version;
        for stale in [44, 10] {
            let step = l.on_kline(&values(&s, stale));
            assert!(step.ignored);
            assert_eq!((step.scored, step.forecast), (None, None));
        }
        assert_eq!(l.ensemble().version, version);
        assert_eq!(l.scored_in_window(), 1);
        assert_eq!(l.history().open_time.last(), Some(&s.open_time[44]));
        assert_eq!(l.ensemble().total_accum.n, 1);
    }

    #[test]
    fn generations_learn_a_signal_and_beat_the_naive() {
        let s = synthetic(8_000, 0.5, SIGMA, 6);
        let config = EnsembleConfig {
            refit_rows: 300,
            combiner: Combiner::Lcb,
            ..EnsembleConfig::default()
        };
        let mut l = learner(config, Vec::new(), s.slice(0..400));
        let mut f = fitter();
        let reports = drive(&mut l, &s, 400..s.len(), &mut f);
        assert_eq!(reports.len(), (s.len() - 400) / 15);
        let board = l.ensemble().scoreboard();
        let ratio = board[0].rmse_vs_naive.expect("scored");
        // The best possible ratio is sqrt(1 − 0.5²) ≈ 0.866.
        assert!(ratio < 0.95, "ensemble / naive rmse {ratio}");
        assert_eq!(board[1].label, "naive");
        assert_eq!(board[2].label, "generations/linear");
    }

    #[test]
    fn a_failed_refit_is_reported_and_leaves_the_pool_unchanged() {
        let s = synthetic(40, 0.0, SIGMA, 8);
        let mut l = learner(small_config(), Vec::new(), Series::default());
        let mut f = FakeFitter {
            fail: true,
            ..fitter()
        };
        let reports = drive(&mut l, &s, 0..s.len(), &mut f);
        assert_eq!(reports.len(), 2);
        assert_eq!(
            reports[0].refit,
            Refit::Failed {
                error: "fake: needs at least 10 rows, got 15".to_string()
            }
        );
        assert_eq!(l.ensemble().members.len(), 1);
        assert_eq!(reports[1].window, 1);
        // The first window closed at kline 15 (kline 0 had no pending forecast): its fit saw
        // rows 0..15, whose targets end at kline 15, the last one scored.
        assert_eq!(f.calls[0].rows, 0..15);
    }

    #[test]
    fn saved_ensembles_leave_out_trained_models_and_reset_them_when_they_changed() {
        let s = synthetic(400, 0.2, SIGMA, 4);
        let trained = vec![linear(vec![0.2], 0.0), noise_member(1, SIGMA)];
        let mut l = learner(small_config(), trained, s.slice(0..100));
        drive(&mut l, &s, 100..300, &mut fitter());
        let with_models = l.ensemble().clone();
        let bytes = postcard::to_allocvec(&with_models).expect("serialises");
        let mut restored: Ensemble = postcard::from_bytes(&bytes).expect("deserialises");
        // Before re-attaching, a trained member abstains (it is not the naive forecast).
        let fake = features();
        let t = l.history().len() - 1;
        let f = restored.forecast_with(l.history(), t, MINUTE, &fake);
        assert!(f.members.iter().all(|m| !m.label.starts_with("trained/")));
        // Re-trained models (another source) replace the saved ones and start afresh.
        let new_models: Vec<Member> =
            vec![
                Member::trained(FeatureSpec::default(), None, linear(vec![0.1], 0.0))
                    .with_source("retrained"),
            ];
        let generations_before = restored.generation_numbers();
        assert!(!restored.attach_trained(new_models).expect("replaces"));
        assert_eq!(restored.trained_count(), 1);
        assert_eq!(restored.generation_numbers(), generations_before);
        let trained = restored
            .members
            .iter()
            .find(|m| m.origin == Origin::Trained)
            .expect("a trained member");
        assert_eq!(
            (trained.source.as_str(), trained.stats.n_scored),
            ("retrained", 0)
        );
    }

    /// A generation saved as its rows is dropped, with the reason, when the klines it was
    /// fitted on are gone; the others are refitted. `GenerationRows` round-trips its text.
    /// Backs README claim [C19].
    #[test]
    fn generations_whose_rows_are_gone_are_dropped() {
        let on = GenerationRows {
            first_open_time: -5,
            last_open_time: 1782899940000,
            rows: 1440,
        };
        assert_eq!(GenerationRows::parse(&on.to_source()), Some(on));
        for bad in [
            "",
            "rows 1..=2",
            "rows 1..=2 (x)",
            "rows a..=2 (3)",
            "gen rows 1..=2 (3)",
        ] {
            assert_eq!(GenerationRows::parse(bad), None, "{bad:?}");
        }
        let s = synthetic(700, 0.2, SIGMA, 9);
        let mut l = learner(small_config(), Vec::new(), s.slice(0..100));
        drive(&mut l, &s, 100..600, &mut fitter());
        let bytes = postcard::to_allocvec(l.ensemble()).expect("serialises");
        let mut restored: Ensemble = postcard::from_bytes(&bytes).expect("deserialises");
        let gens = restored.generation_numbers();
        // Only the klines from 420 on: the oldest generations' rows start before them.
        let done = restore_generations(
            &mut restored,
            &s.slice(420..600),
            &mut fitter(),
            &features(),
        );
        assert!(
            !done.dropped.is_empty() && !done.refitted.is_empty(),
            "{done:?}"
        );
        assert_eq!(done.dropped.len() + done.refitted.len(), gens.len());
        assert!(done.dropped[0].1.contains("no longer holds"), "{done:?}");
        assert_eq!(restored.generation_numbers(), done.refitted);
        assert!(restored
            .members
            .iter()
            .all(|m| m.origin == Origin::Naive || m.model.is_some()));
    }

    /// Backs README claim [C8]: After a kill -9 and a restart no kline or prediction is lost or duplicated (byte for byte against one uninterrupted run), and the experts' records and the conformal state are as of the last save.
    /// Backs README claim [C19] as well.
    #[test]
    fn saved_ensembles_forecast_bit_identically() {
        let s = synthetic(700, 0.2, SIGMA, 9);
        let trained = vec![linear(vec![0.2], 0.0), noise_member(1, SIGMA)];
        let mut l = learner(small_config(), trained, s.slice(0..100));
        drive(&mut l, &s, 100..600, &mut fitter());
        let bytes = postcard::to_allocvec(l.ensemble()).expect("serialises");
        let mut restored: Ensemble = postcard::from_bytes(&bytes).expect("deserialises");
        assert_eq!(postcard::to_allocvec(&restored).expect("serialises"), bytes);
        // Trained models are not in the saved bytes: they come back from their own files.
        let trained_members = |models: Vec<AnyModel>| -> Vec<Member> {
            models
                .into_iter()
                .map(|m| Member::trained(FeatureSpec::default(), None, m))
                .collect()
        };
        assert!(restored
            .members
            .iter()
            .filter(|m| m.origin == Origin::Trained)
            .all(|m| m.model.is_none()));
        let attached = restored
            .attach_trained(trained_members(vec![
                linear(vec![0.2], 0.0),
                noise_member(1, SIGMA),
            ]))
            .expect("attaches");
        assert!(attached, "same models: statistics kept");
        // Window generations are saved as the rows they were fitted on, and refitted from the
        // klines on load: the same models, bit for bit.
        let gens = restored.generation_numbers();
        assert!(gens.len() > 1);
        assert!(restored
            .members
            .iter()
            .filter(|m| matches!(m.origin, Origin::Generation(_)))
            .all(|m| m.model.is_none() && GenerationRows::parse(&m.source).is_some()));
        let fake = features();
        let done = restore_generations(&mut restored, &s.slice(0..600), &mut fitter(), &fake);
        assert_eq!((done.refitted, done.dropped), (gens, Vec::new()));
        let history = l.history().clone();
        let mut original = l.into_ensemble();
        let t = history.len() - 1;
        let a = original.forecast_with(&history, t, MINUTE, &fake);
        let b = restored.forecast_with(&history, t, MINUTE, &fake);
        assert_eq!(a, b);
        assert_eq!(a.ensemble_price.to_bits(), b.ensemble_price.to_bits());
        // The experts' records, the conformal state and the volatility model survive the save,
        // so the restored ensemble's intervals and ML-Poly forecast are the same, bit for bit.
        assert_eq!(original.experts, restored.experts);
        assert_eq!(original.intervals, restored.intervals);
        assert!(original.experts.len() > 1 && original.intervals.aci.scored > 0);
        assert_eq!(a.lower_price.to_bits(), b.lower_price.to_bits());
        assert_eq!(a.upper_price.to_bits(), b.upper_price.to_bits());
        assert_eq!(
            a.ml_poly_log_return.to_bits(),
            b.ml_poly_log_return.to_bits()
        );
        assert!(a
            .members
            .iter()
            .zip(&b.members)
            .all(|(x, y)| x.price.to_bits() == y.price.to_bits()
                && x.weight.to_bits() == y.weight.to_bits()));
        // Both keep learning identically.
        original.score(&a, s.close[600]);
        restored.score(&b, s.close[600]);
        assert_eq!(
            postcard::to_allocvec(&original).expect("serialises"),
            postcard::to_allocvec(&restored).expect("serialises")
        );
        // A learner resumed from the saved ensemble and history continues the same way.
        let mut resumed = Learner::with_features(restored, history, MINUTE, Box::new(features()));
        let step = resumed.on_kline(&values(&s, 601));
        assert_eq!(
            step.scored, None,
            "the resumed learner forecast kline 600, not 601"
        );
        assert_eq!(step.dropped, 1);
    }

    /// What a learner published over rows `live` of `s` (no window is closed: no generation):
    /// the price RMSE of the ensemble, of the trained expert and of the naive over the scored
    /// forecasts.
    fn publish(l: &mut Learner, s: &Series, live: Range<usize>) -> (f64, f64, f64) {
        let expert = ExpertGroup::Trained(crate::models::ModelKind::Linear);
        let (mut ens, mut exp, mut naive) = (Accum::default(), Accum::default(), Accum::default());
        let mut previous = l.latest_forecast().cloned();
        for i in live {
            let step = l.on_kline(&values(s, i));
            if let (Some(sc), Some(p)) = (&step.scored, &previous) {
                let last = sc.last_close;
                let x = p
                    .experts
                    .iter()
                    .find(|x| x.group == expert)
                    .map_or(0.0, |x| x.log_return);
                ens.add(last, sc.ensemble_price, sc.actual_close);
                exp.add(last, last * x.exp(), sc.actual_close);
                naive.add(last, last, sc.actual_close);
            }
            previous = step.forecast;
        }
        (ens.rmse(), exp.rmse(), naive.rmse())
    }

    /// Backs the warm-up (src/README.md, "Warm-up"): a trained expert with a 1 % RMSE edge
    /// (log returns AR(1) with φ = 0.141: √(1 − φ²) = 0.990), warmed up on 10,000 klines it was
    /// not fitted on, is weighed from the first published forecast: over the next 3,999 the
    /// ensemble captures ≥ 90 % of its edge, (1 − ensemble)/(1 − expert) on the same
    /// forecasts; the same learner without the warm-up, on the same forecasts, captures less
    /// (it spends them gathering the evidence). The warm-up publishes nothing: no score, no
    /// window, no generation, and the forecast in flight is the one made on its last kline.
    #[test]
    fn a_warm_up_on_unseen_klines_weighs_an_edge_from_the_first_published_forecast() {
        let phi = 0.141;
        let config = EnsembleConfig {
            combiner: Combiner::MlPoly,
            ..EnsembleConfig::default()
        };
        for seed in [21, 22] {
            let s = synthetic(14_000, phi, SIGMA, seed);
            let members = || vec![linear(vec![phi], 0.0)];
            let mut warm = learner(config.clone(), members(), s.slice(0..1));
            assert_eq!(warm.warm_up(&s, 1..10_001), 10_000);
            let e = warm.ensemble();
            assert_eq!(e.windows_done, 0);
            assert!(e.scoreboard().is_empty(), "{:?}", e.scoreboard());
            assert!(e.generation_numbers().is_empty());
            assert!(e.total_accum.n == 0 && e.intervals.total.n == 0);
            assert!(e.members.iter().all(|m| m.stats.total_accum.n == 0));
            assert_eq!(warm.scored_in_window(), 0);
            assert_eq!(warm.in_flight().len(), 1);
            assert_eq!(warm.in_flight()[0].target_open_time, s.open_time[10_001]);
            // What it learned stays: the naive's record saw every warm-up forecast.
            assert_eq!(e.experts[0].record.rounds, 10_000);
            let (ens, exp, naive) = publish(&mut warm, &s, 10_001..14_000);
            let mut cold = learner(config.clone(), members(), s.slice(0..10_001));
            let (ens_cold, exp_cold, naive_cold) = publish(&mut cold, &s, 10_001..14_000);
            assert_eq!(
                (exp.to_bits(), naive.to_bits()),
                (exp_cold.to_bits(), naive_cold.to_bits())
            );
            let edge = 1.0 - exp / naive;
            let share = (1.0 - ens / naive) / edge;
            let share_cold = (1.0 - ens_cold / naive) / edge;
            eprintln!(
                "seed {seed}: expert {:.5}, warm share {share:.3}, cold {share_cold:.3}",
                exp / naive
            );
            assert!((0.005..0.015).contains(&edge), "seed {seed}: edge {edge}");
            assert!(share >= 0.9, "seed {seed}: {share}");
            assert!(
                share_cold < share - 0.1,
                "seed {seed}: {share_cold} vs {share}"
            );
        }
    }

    /// Noise only: a warm-up wakes no expert and the published forecasts stay within 0.1 %
    /// of the naive's RMSE (the regret bound holds over warm-up and live rounds alike: they
    /// are rounds of the same ML-Poly, `ml_poly_with_only_noise_stays_with_naive`).
    #[test]
    fn a_warm_up_on_noise_leaves_the_naive_in_charge() {
        let config = EnsembleConfig {
            combiner: Combiner::MlPoly,
            ..EnsembleConfig::default()
        };
        for seed in [31, 32] {
            let s = synthetic(14_000, 0.0, SIGMA, seed);
            let members = (0..4)
                .map(|c| noise_member(c, [0.1, 0.3, 1.0, 3.0][c] * SIGMA))
                .collect();
            let mut l = learner(config.clone(), members, s.slice(0..1));
            l.warm_up(&s, 1..10_001);
            let w = l.ensemble().expert_weights();
            assert_eq!(
                w.first().map(|e| (e.label.as_str(), e.weight)),
                Some(("naive", 1.0)),
                "{w:?}"
            );
            let (ens, _, naive) = publish(&mut l, &s, 10_001..14_000);
            assert!(ens / naive <= 1.001, "seed {seed}: {}", ens / naive);
        }
    }
}
