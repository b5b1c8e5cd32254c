//! Scoring: a forecast against the close that arrived, the experts' records, the intervals'
//! state and figures, the windows and the lifetime scoreboard.

use crate::kline::Series;
use crate::metrics::Accum;
use crate::models::ModelKind;

use super::forecast::price_band;
use super::report::{ForecasterScore, ScoreRow};
use super::stats::{GroupTotal, IntervalAccum};
use super::{
    aggregate, interval, Combiner, Ensemble, Expert, ExpertGroup, Forecast, ScoredForecast,
};

impl Ensemble {
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
            if let Some(group) = m.group() {
                group_adds.push((group.to_string(), mf.price));
            }
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
        let mut every = Vec::with_capacity(forecast.experts.len());
        let mut combination = None;
        for x in &forecast.experts {
            let k = match self.experts.iter().position(|e| e.group == x.group) {
                Some(k) => k,
                None => {
                    self.experts.push(Expert::new(x.group));
                    self.experts.len() - 1
                }
            };
            let err = x.log_return - actual_lr;
            self.experts[k].record_gate(&self.config, err * err, actual_lr * actual_lr);
            if x.awake {
                index.push((k, x.log_return));
            }
            if x.group == ExpertGroup::Combination {
                combination = Some(x.log_return);
            } else {
                every.push((k, x.log_return));
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
                self.config.z,
            );
            for (e, r) in self.experts.iter_mut().zip(records) {
                e.record = r;
            }
            // The combination's own ML-Poly: every other expert that forecast, against the
            // combination's forecast.
            if let Some(p) = combination {
                let scaled: Vec<(usize, f64)> = every.iter().map(|&(e, x)| (e, x / sd)).collect();
                let mut records: Vec<aggregate::PolyRecord> =
                    self.experts.iter().map(|e| e.all_record).collect();
                aggregate::record(&mut records, &scaled, p / sd, actual_lr / sd, 0.0);
                for (e, r) in self.experts.iter_mut().zip(records) {
                    e.all_record = r;
                }
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
        self.clear_window();
        self.windows_done += 1;
        self.version += 1;
    }

    fn clear_window(&mut self) {
        self.window_accum = Accum::default();
        self.intervals.window = IntervalAccum::default();
        self.intervals.static_window = IntervalAccum::default();
        for m in &mut self.members {
            m.stats.window_accum = Accum::default();
        }
    }

    /// Clears what the scoreboard, the window reports and the interval figures count (after a
    /// warm-up, [`super::Learner::warm_up`]); keeps what the ensemble learned: the experts'
    /// gate statistics and ML-Poly records, the members' discounted statistics, the conformal
    /// state and the volatility model.
    pub(crate) fn clear_scores(&mut self) {
        self.clear_window();
        self.total_accum = Accum::default();
        self.totals.clear();
        self.intervals.total = IntervalAccum::default();
        self.intervals.static_total = IntervalAccum::default();
        for m in &mut self.members {
            m.stats.total_accum = Accum::default();
        }
        self.windows_done = 0;
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
}

/// Order of scoreboard rows: ensemble, naive, trained by kind, generations by kind, then the
/// combiners. The labels are kept as text in the ensemble file and read back from it.
fn group_rank(label: &str) -> (u8, usize, String) {
    let kind_rank = |kind: ModelKind| {
        ModelKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(ModelKind::ALL.len())
    };
    if label == "ensemble" {
        return (0, 0, String::new());
    }
    if let Some(name) = label.strip_prefix("combiner/") {
        return (5, 0, name.to_string());
    }
    match ExpertGroup::parse(label) {
        Some(ExpertGroup::Naive) => (1, 0, String::new()),
        Some(ExpertGroup::Trained(kind)) => (2, kind_rank(kind), String::new()),
        Some(ExpertGroup::TrainedCorr(kind)) => (2, kind_rank(kind), "+corr".to_string()),
        Some(ExpertGroup::Generations(kind)) => (3, kind_rank(kind), String::new()),
        Some(ExpertGroup::Combination) | None => (4, 0, label.to_string()),
    }
}
