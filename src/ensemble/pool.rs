//! The [`Ensemble`] type: its pool of members and experts, built, checked, reconfigured and
//! grown by window generations, and the weights it reports.

use serde::{Deserialize, Serialize};

use crate::features::{FeatureSpec, Scaler, MAX_HORIZON};
use crate::metrics::Accum;
use crate::models::{AnyModel, ModelKind};

use super::config::validate;
use super::report::{self, MemberWeight};
use super::stats::{GroupTotal, Intervals, MemberStats};
use super::{
    aggregate, Combiner, EnsembleConfig, EnsembleError, Expert, ExpertGroup, FeatureSource,
    GenerationRows, Member, Origin,
};

/// The bounded online ensemble.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ensemble {
    /// Changes only through [`Ensemble::reconfigure`]; read it with [`Ensemble::config`].
    pub(super) config: EnsembleConfig,
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
        if c.refit_rows > 10_000_000 || c.spec.horizon > MAX_HORIZON || c.window > 1_000_000 {
            return Err("the configuration is out of range".to_string());
        }
        let iv = &self.intervals;
        iv.volatility.check()?;
        iv.aci.check()?;
        iv.aci_static.check()?;
        if self
            .experts
            .first()
            .is_none_or(|e| e.group != ExpertGroup::Naive)
        {
            return Err("the first expert is not the naive forecast".to_string());
        }
        for m in &self.members {
            let what = |e: String| format!("member {}: {e}", m.label);
            if !m.spec.supported() || !(1..=MAX_HORIZON).contains(&m.spec.horizon) {
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

    /// A pool of the naive member and `trained` (possibly empty), forecasting klines
    /// `interval_ms` apart.
    pub fn new(
        config: EnsembleConfig,
        trained: Vec<Member>,
        interval_ms: i64,
    ) -> Result<Ensemble, EnsembleError> {
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
            experts: vec![Expert::new(ExpertGroup::Naive)],
            intervals: Intervals::new(config.coverage, interval_ms),
            config,
        };
        let naive = Member::naive(ensemble.config.spec.clone());
        ensemble.push(naive);
        ensemble.replace_trained(trained)?;
        Ok(ensemble)
    }

    /// The configuration (see [`Ensemble::reconfigure`]).
    pub fn config(&self) -> &EnsembleConfig {
        &self.config
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
        let saved: Vec<(Option<ModelKind>, &str, &[String])> = self
            .members
            .iter()
            .filter(|m| m.origin == Origin::Trained)
            .map(|m| (m.kind, m.source.as_str(), m.spec.corr.as_slice()))
            .collect();
        let same = saved.len() == trained.len()
            && trained.iter().all(|t| {
                saved.contains(&(t.kind, t.source.as_str(), t.spec.corr.as_slice()))
                    && t.model.is_some()
            });
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
                    && m.spec.corr == t.spec.corr
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

    /// The klines of history a learner keeps: the rows a generation is fitted on, the largest
    /// warm-up before them and the horizon after them (their targets), plus the newest kline.
    pub(crate) fn history_capacity(&self, features: &dyn FeatureSource) -> usize {
        let c = &self.config;
        c.refit_rows + self.max_warmup(features) + c.spec.horizon + 1
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
                e.group == ExpertGroup::Naive
                    || (e.awake(&self.config)
                        && (e.group == ExpertGroup::Combination
                            || self
                                .members
                                .iter()
                                .any(|m| m.model.is_some() && m.group() == Some(e.group))))
            })
            .collect();
        let records: Vec<aggregate::PolyRecord> = self.experts.iter().map(|e| e.record).collect();
        let w = aggregate::weights(&records, &awake, 0, self.config.z);
        self.experts
            .iter()
            .zip(w)
            .map(|(e, weight)| report::ExpertWeight {
                label: e.group.to_string(),
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
                // An expert's weight, and its share of the combination's (ML-Poly without the
                // gate over the experts with a model), shared by its members that have a model.
                let experts = self.expert_weights();
                let forecasting: Vec<bool> = self
                    .experts
                    .iter()
                    .map(|e| {
                        e.group == ExpertGroup::Naive
                            || self
                                .members
                                .iter()
                                .any(|m| m.model.is_some() && m.group() == Some(e.group))
                    })
                    .collect();
                let all_records: Vec<aggregate::PolyRecord> =
                    self.experts.iter().map(|e| e.all_record).collect();
                let inner = aggregate::weights(&all_records, &forecasting, 0, 0.0);
                let combination = self
                    .experts
                    .iter()
                    .position(|e| e.group == ExpertGroup::Combination)
                    .map_or(0.0, |k| experts[k].weight);
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
                        // `experts` is aligned with `self.experts`.
                        let w = self
                            .experts
                            .iter()
                            .position(|e| Some(e.group) == group)
                            .map_or(0.0, |k| experts[k].weight + combination * inner[k]);
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

    fn push(&mut self, mut member: Member) {
        member.id = self.next_id;
        self.next_id += 1;
        self.members.push(member);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::*;
    use crate::features::FeatureSpec;

    #[test]
    fn bad_configs_and_other_horizons_are_refused() {
        let other = FeatureSpec {
            horizon: 5,
            ..FeatureSpec::default()
        };
        let m = Member::trained(other, None, linear(vec![1.0], 0.0));
        let err =
            Ensemble::new(config(), vec![m], MINUTE).expect_err("horizon 5 in a horizon-1 pool");
        assert_eq!(
            err.to_string(),
            "trained model trained/linear forecasts horizon 5 but the ensemble forecasts \
             horizon 1; retrain with `klinecast train --horizon 1`"
        );
        let bad = EnsembleConfig {
            lambda: 1.0,
            ..config()
        };
        let err = Ensemble::new(bad, Vec::new(), MINUTE).expect_err("lambda 1");
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
            Ensemble::new(config(), trained(vec![linear(vec![1.0], 0.0)]), MINUTE).expect("valid");
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
            MINUTE,
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
    fn reconfigure_validates_and_keeps_the_spec() {
        let mut ens = Ensemble::new(config(), Vec::new(), MINUTE).expect("ensemble");
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
