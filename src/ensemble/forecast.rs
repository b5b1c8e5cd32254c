//! The forecast step: every member's forecast, the LCB gate's and ML-Poly's combinations and
//! the prediction interval, from rows `..= t` only.

use serde::{Deserialize, Serialize};

use crate::features::FeatureSpec;
use crate::kline::Series;

use super::{aggregate, online, Combiner, Ensemble};

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

impl Ensemble {
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
}

/// The price band `last · exp(ŷ ± half)`; `(0, +∞)` when `half` is not finite.
pub(super) fn price_band(last: f64, log_return: f64, half: f64) -> (f64, f64) {
    if half.is_finite() {
        (
            last * (log_return - half).exp(),
            last * (log_return + half).exp(),
        )
    } else {
        (0.0, f64::INFINITY)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::*;

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
}
