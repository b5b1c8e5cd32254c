//! The forecast step: every member's forecast, the LCB gate's and ML-Poly's combinations and
//! the prediction interval, from rows `..= t` only.

use serde::{Deserialize, Serialize};

use crate::features::FeatureSpec;
use crate::kline::Series;

use super::{aggregate, online, Combiner, Ensemble, ExpertGroup};

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
    #[serde(rename = "label")]
    pub(crate) group: ExpertGroup,
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

/// The experts' part of one forecast (see [`Ensemble::expert_round`]).
struct ExpertRound {
    /// The experts' groups: the ensemble's experts in order, then those first seen in this
    /// forecast, in forecast order.
    groups: Vec<ExpertGroup>,
    /// The expert index of each member forecast.
    member_expert: Vec<usize>,
    /// Per expert: the sum and the number of its members' forecasts (the combination's
    /// forecast and 1 for the combination).
    sums: Vec<(f64, usize)>,
    /// The combination expert's index, and its weights over the other experts.
    combination: usize,
    inner_weights: Vec<f64>,
    /// Per expert: awake in this forecast.
    awake: Vec<bool>,
    /// `(expert, mean forecast)` of every expert with a forecast.
    forecasts: Vec<(usize, f64)>,
    /// Per expert: its ML-Poly weight.
    weights: Vec<f64>,
    /// The ML-Poly combination (log return).
    ml_poly_log_return: f64,
}

impl Ensemble {
    /// Forecasts the close `h` klines after series index `t` from rows `..= t` only.
    #[cfg(test)]
    pub(crate) fn forecast(&self, series: &Series, t: usize, interval_ms: i64) -> Forecast {
        self.forecast_with(series, t, interval_ms, &SpecFeatures)
    }

    /// [`Ensemble::forecast`] with another feature source (tests): the members' forecasts,
    /// the LCB gate's and ML-Poly's combinations of them, and the interval around the
    /// selected one.
    pub(crate) fn forecast_with(
        &self,
        series: &Series,
        t: usize,
        interval_ms: i64,
        features: &dyn FeatureSource,
    ) -> Forecast {
        let last_close = series.close[t];
        let horizon = self.config.spec.horizon.max(1);
        let forecasts = self.member_forecasts(series, t, features);
        // The LCB combiner: instance weights from the hard gate.
        let raw_weights = self.raw_weights();
        let total: f64 = forecasts.iter().map(|&(i, _, _)| raw_weights[i]).sum();
        let lcb_log_return: f64 = forecasts
            .iter()
            .map(|&(i, _, p)| raw_weights[i] / total * p)
            .sum();
        let round = self.expert_round(&forecasts);
        let ensemble_log_return = match self.config.combiner {
            Combiner::MlPoly => round.ml_poly_log_return,
            Combiner::Lcb => lcb_log_return,
        };
        let members = forecasts
            .iter()
            .zip(&round.member_expert)
            .map(|(&(i, _, p), &e)| {
                let m = &self.members[i];
                let weight = match self.config.combiner {
                    Combiner::Lcb => raw_weights[i] / total,
                    // Its expert's weight, and its expert's share of the combination's.
                    Combiner::MlPoly => {
                        (round.weights[e]
                            + round.weights[round.combination] * round.inner_weights[e])
                            / round.sums[e].1.max(1) as f64
                    }
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
        let experts = round
            .forecasts
            .iter()
            .map(|&(e, x)| ExpertForecast {
                group: round.groups[e],
                log_return: x,
                awake: round.awake[e],
                weight: round.weights[e],
            })
            .collect();
        let target_open_time = series.open_time[t] + horizon as i64 * interval_ms;
        let band = self.interval_at(target_open_time, last_close, ensemble_log_return);
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
            ml_poly_log_return: round.ml_poly_log_return,
            lcb_log_return,
            sigma: band.sigma,
            q: band.q,
            q_static: band.q_static,
            lower_price: band.lower_price,
            upper_price: band.upper_price,
        }
    }

    /// `(member index, its expert group, log return)` of every member that forecasts at `t`,
    /// in pool order. Members sharing a feature spec share one raw row; recurrent members read
    /// their sequences through one cache.
    fn member_forecasts(
        &self,
        series: &Series,
        t: usize,
        features: &dyn FeatureSource,
    ) -> Vec<(usize, ExpertGroup, f64)> {
        let mut rows: Vec<(&FeatureSpec, Option<Vec<f64>>)> = Vec::new();
        let mut sequences = online::SequenceCache::new();
        let mut forecasts = Vec::with_capacity(self.members.len());
        for (idx, m) in self.members.iter().enumerate() {
            // Only a member without a kind (in no valid ensemble, see `Ensemble::check`) has
            // no group; it abstains.
            let Some(group) = m.group() else {
                continue;
            };
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
                forecasts.push((idx, group, p));
            }
        }
        forecasts
    }

    /// The experts' forecasts and ML-Poly's combination of the awake ones. Each expert's
    /// forecast is the mean of its members' forecasts; experts not yet scored get the next
    /// free indices, in forecast order.
    fn expert_round(&self, forecasts: &[(usize, ExpertGroup, f64)]) -> ExpertRound {
        let mut groups: Vec<ExpertGroup> = self.experts.iter().map(|e| e.group).collect();
        let member_expert: Vec<usize> = forecasts
            .iter()
            .map(
                |&(_, group, _)| match groups.iter().position(|g| *g == group) {
                    Some(e) => e,
                    None => {
                        groups.push(group);
                        groups.len() - 1
                    }
                },
            )
            .collect();
        let combination = match groups.iter().position(|g| *g == ExpertGroup::Combination) {
            Some(e) => e,
            None => {
                groups.push(ExpertGroup::Combination);
                groups.len() - 1
            }
        };
        let mut sums = vec![(0.0, 0usize); groups.len()];
        for (&(_, _, p), &e) in forecasts.iter().zip(&member_expert) {
            sums[e].0 += p;
            sums[e].1 += 1;
        }
        // The combination expert: ML-Poly over every expert that forecasts, without the gate,
        // on its own records ([`Expert::all_record`]), and without the evidence margin: the
        // combination has to pass both itself before its inner weights reach the forecast.
        let all_records: Vec<aggregate::PolyRecord> = (0..groups.len())
            .map(|e| {
                self.experts
                    .get(e)
                    .map_or_else(Default::default, |x| x.all_record)
            })
            .collect();
        let forecasting: Vec<bool> = sums.iter().map(|&(_, n)| n > 0).collect();
        let base_forecasts: Vec<(usize, f64)> = sums
            .iter()
            .enumerate()
            .filter(|(_, &(_, n))| n > 0)
            .map(|(e, &(sum, n))| (e, sum / n as f64))
            .collect();
        let inner_weights = aggregate::weights(&all_records, &forecasting, 0, 0.0);
        sums[combination] = (aggregate::combine(&inner_weights, &base_forecasts), 1);
        // Sleeping experts: an expert is awake once its own forecasts beat the naive by the
        // gate's margin on one of its two time scales (the naive always is). Asleep, it
        // neither weighs nor moves its record.
        let c = &self.config;
        let awake: Vec<bool> = sums
            .iter()
            .enumerate()
            .map(|(e, &(_, n))| {
                n > 0 && (e == 0 || self.experts.get(e).is_some_and(|x| x.awake(c)))
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
        let records: Vec<aggregate::PolyRecord> = (0..groups.len())
            .map(|e| {
                self.experts
                    .get(e)
                    .map_or_else(Default::default, |x| x.record)
            })
            .collect();
        // Every expert but the naive needs its regret beyond z standard deviations of its own
        // variation (the evidence margin, see [`aggregate`]).
        let weights = aggregate::weights(&records, &awake, 0, c.z);
        let ml_poly_log_return = aggregate::combine(&weights, &awake_forecasts);
        ExpertRound {
            groups,
            member_expert,
            sums,
            combination,
            inner_weights,
            awake,
            forecasts: expert_forecasts,
            weights,
            ml_poly_log_return,
        }
    }

    /// The prediction interval of the close at `target_open_time` around `log_return`, as the
    /// volatility model and the two ACI states stand now.
    fn interval_at(&self, target_open_time: i64, last_close: f64, log_return: f64) -> Band {
        let iv = &self.intervals;
        let sigma = iv.volatility.sigma(target_open_time);
        let q = iv.aci.multiplier();
        let (lower_price, upper_price) = match sigma {
            Some(sd) => price_band(last_close, log_return, sd * q),
            None => (0.0, f64::INFINITY),
        };
        Band {
            sigma,
            q,
            q_static: iv.aci_static.multiplier(),
            lower_price,
            upper_price,
        }
    }
}

/// A forecast's interval: the volatility scale, the multipliers and the price bounds.
struct Band {
    sigma: Option<f64>,
    q: f64,
    q_static: f64,
    lower_price: f64,
    upper_price: f64,
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
            MINUTE,
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
