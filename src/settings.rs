//! The configuration stage: how the pipeline learns. The commands (`train`, `backtest`,
//! `stream`, `demo`) fill [`LearnSettings`] from their arguments and derive the pure
//! configurations from it: [`EnsembleConfig`] for the ensemble and its window learner,
//! [`FitConfig`] for the offline fit and the window refits.
//!
//! The rule for defaults and bounds: each lives beside the type it configures, and everything
//! else refers to it there ([`crate::ensemble::DEFAULT_WINDOW`],
//! [`crate::models::fit::DEFAULT_SVR_ROWS`], [`crate::features::MAX_HORIZON`],
//! `binance::ws::WsConfig::default`, `live::Timing::default`, …). This module holds only the
//! seed's default, which configures [`LearnSettings`] itself.

use crate::ensemble::{self, EnsembleConfig};
use crate::features::{FeatureSpec, DEFAULT_HORIZON};
use crate::models::fit::{FitConfig, DEFAULT_SVR_ROWS};

/// Default seed for every random step when `--seed` is not given.
pub(crate) const DEFAULT_SEED: u64 = 42;

/// The settings the offline fit, the ensemble and its window refits share.
#[derive(Debug, Clone, PartialEq)]
pub struct LearnSettings {
    /// Scored forecasts per window (`--window`).
    pub window: usize,
    /// Rows each window generation is fitted on (`--refit-rows`).
    pub refit_rows: usize,
    /// Window generations kept in the pool (`--generations`).
    pub generations: usize,
    /// Rows the SVR is fitted on (`--svr-rows`); window refits use at most `refit_rows`.
    pub svr_rows: usize,
    /// Klines ahead the close is forecast (`--horizon`): the feature spec's horizon, shared by
    /// the trained models, the window generations and the ensemble.
    pub horizon: usize,
    /// Seed of every random step (`--seed`).
    pub seed: u64,
    /// Worker threads for fitting and predicting (see [`fit_threads`]).
    pub threads: usize,
    /// How the experts are combined (`--combiner`).
    pub(crate) combiner: ensemble::Combiner,
    /// Nominal coverage of the prediction intervals (`--coverage`).
    pub coverage: f64,
}

impl Default for LearnSettings {
    fn default() -> Self {
        LearnSettings {
            window: ensemble::DEFAULT_WINDOW,
            refit_rows: ensemble::DEFAULT_REFIT_ROWS,
            generations: ensemble::DEFAULT_GENERATIONS,
            svr_rows: DEFAULT_SVR_ROWS,
            horizon: DEFAULT_HORIZON,
            seed: DEFAULT_SEED,
            threads: 1,
            combiner: ensemble::DEFAULT_COMBINER,
            coverage: ensemble::interval::DEFAULT_COVERAGE,
        }
    }
}

impl LearnSettings {
    /// The feature spec of every model: the default features, forecasting `horizon` ahead.
    pub fn spec(&self) -> FeatureSpec {
        FeatureSpec {
            horizon: self.horizon,
            ..FeatureSpec::default()
        }
    }

    /// The ensemble's configuration: these settings, the rest at its defaults.
    pub(crate) fn ensemble_config(&self) -> EnsembleConfig {
        EnsembleConfig {
            spec: self.spec(),
            window: self.window,
            refit_rows: self.refit_rows,
            generations: self.generations,
            combiner: self.combiner,
            coverage: self.coverage,
            ..EnsembleConfig::default()
        }
    }

    /// The offline fit (`train`, the backtest's trained members).
    pub(crate) fn fit_config(&self) -> FitConfig {
        FitConfig::new(self.seed, self.svr_rows, self.threads)
    }

    /// The window refits (the learner derives each generation's seed from this one).
    pub(crate) fn refit_config(&self) -> FitConfig {
        self.fit_config().for_refits(self.refit_rows)
    }
}

/// Worker threads for fitting and predicting: the CPUs this process may use (1 if unknown).
pub fn fit_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_derive_the_pure_configurations() {
        let settings = LearnSettings {
            window: 5,
            refit_rows: 150,
            generations: 2,
            svr_rows: 3000,
            horizon: 5,
            seed: 9,
            threads: 2,
            ..LearnSettings::default()
        };
        let c = settings.ensemble_config();
        assert_eq!((c.window, c.refit_rows, c.generations), (5, 150, 2));
        assert_eq!(c.spec.horizon, 5);
        assert_eq!(
            c,
            EnsembleConfig {
                spec: FeatureSpec {
                    horizon: 5,
                    ..FeatureSpec::default()
                },
                window: 5,
                refit_rows: 150,
                generations: 2,
                ..EnsembleConfig::default()
            }
        );
        assert_eq!(settings.fit_config(), FitConfig::new(9, 3000, 2));
        assert_eq!(settings.refit_config().svr_rows, 150);
        let d = LearnSettings::default();
        assert_eq!(
            (
                d.window,
                d.refit_rows,
                d.generations,
                d.svr_rows,
                d.horizon,
                d.seed
            ),
            (15, 1440, 8, 3000, 1, 42)
        );
        assert_eq!(d.spec(), FeatureSpec::default());
        assert_eq!(d.ensemble_config(), EnsembleConfig::default());
        assert!(fit_threads() >= 1);
    }
}
