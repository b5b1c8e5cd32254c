//! Fitting the model pool with its defaults: the one place the eight models' hyperparameters are
//! chosen, used by `train`, `backtest`, the window generations of the live stream
//! ([`crate::ensemble::learner`]) and the benchmarks. Pure: no I/O, no clock (the callers time
//! the fits).
//!
//! Memory (3 years of 1m klines, 1.5M rows, on a Raspberry Pi): every member has a size bound
//! that does not grow with history: KNN keeps the last [`KNN_MAX_ROWS`] rows, the CART tree at
//! most [`CART_MAX_LEAVES`] leaves, each forest tree at most [`FOREST_MAX_LEAVES`] leaves drawn
//! from at most [`FOREST_MAX_SAMPLES`] rows, the SVR the last `svr_rows` rows. The values were
//! chosen on the real months (README, "Raspberry Pi": accuracy against size); [`bound_note`]
//! says when one applies.

use nalgebra::{DMatrix, DVector};

use super::cart::CartParams;
use super::forest::ForestParams;
use super::gbdt::GbdtParams;
use super::knn::KnnParams;
use super::linear::LinearParams;
use super::rnn::RnnParams;
use super::svr::SvrParams;
use super::{predict_split, AnyModel, FitError, ModelKind};
use crate::rng;

/// Default rows for the SVR fit (it is O(n²)); `--svr-rows`.
pub(crate) const DEFAULT_SVR_ROWS: usize = 3000;
/// Leaf size of the window generations' forests (see [`FitConfig::forest_min_samples_leaf`]).
pub(crate) const GENERATION_FOREST_MIN_LEAF: usize = 5;

/// KNN keeps the most recent this many training rows (one week of 1m klines, ≈ 1.5 MB).
pub(crate) const KNN_MAX_ROWS: usize = 10_000;
/// The GRU and LSTM are trained on at most this many of the most recent rows (about five weeks
/// of 1m klines; at 200k rows a fit took 196 s for the GRU and 255 s for the LSTM).
pub(crate) const RNN_MAX_ROWS: usize = 50_000;
/// Leaf budget of the CART tree (at most 511 nodes of 16 bytes: 8 KB).
pub(crate) const CART_MAX_LEAVES: usize = 256;
/// Leaf budget of each forest tree (100 trees: at most 100·1023 nodes, 1.6 MB).
pub(crate) const FOREST_MAX_LEAVES: usize = 512;

/// The size bound [`fit_models`] applies to `kind` on `n_rows` training rows, as a line for
/// the user, or `None` when the model is fitted as it would be without a bound.
pub(crate) fn bound_note(kind: ModelKind, n_rows: usize, config: &FitConfig) -> Option<String> {
    match kind {
        ModelKind::Knn => (n_rows > KNN_MAX_ROWS).then(|| {
            format!("knn: memory bound: keeps the most recent {KNN_MAX_ROWS} of {n_rows} rows")
        }),
        ModelKind::Cart => {
            let leaf = n_rows.div_ceil(CART_MAX_LEAVES);
            (leaf > 1).then(|| {
                format!(
                    "cart: memory bound: at most {CART_MAX_LEAVES} leaves (leaves of ≥ {leaf} rows)"
                )
            })
        }
        ModelKind::Forest => {
            let p = forest_params(n_rows, config);
            let draws = p.max_samples.unwrap_or(n_rows);
            let leaf = p.min_samples_leaf.max(draws.div_ceil(FOREST_MAX_LEAVES));
            (leaf > 1 || draws < n_rows).then(|| {
                format!(
                    "forest: memory bound: {draws} rows drawn per tree, at most \
                     {FOREST_MAX_LEAVES} leaves per tree (leaves of ≥ {leaf} rows)"
                )
            })
        }
        ModelKind::Svr => (n_rows > config.svr_rows).then(|| {
            format!(
                "svr: fitted on the most recent {} of {n_rows} rows (--svr-rows)",
                config.svr_rows
            )
        }),
        ModelKind::Gru | ModelKind::Lstm => (n_rows > RNN_MAX_ROWS).then(|| {
            format!(
                "{}: time bound: trained on the most recent {RNN_MAX_ROWS} of {n_rows} rows",
                kind.name()
            )
        }),
        ModelKind::Linear | ModelKind::Gbdt => None,
    }
}

/// How to fit the models.
#[derive(Debug, Clone, PartialEq)]
pub struct FitConfig {
    pub seed: u64,
    /// SVR is O(n²): it is fitted on the most recent `svr_rows` rows only.
    pub svr_rows: usize,
    /// Worker threads for the forest.
    pub threads: usize,
    /// Overrides the forest's `min_samples_leaf` (`None`: [`forest_params`] decides). The
    /// window generations use 5: their forests are saved with the ensemble every window, and
    /// leaves of at least 5 rows make them about 5× smaller with the same test error.
    pub forest_min_samples_leaf: Option<usize>,
}

impl FitConfig {
    /// The offline fit (`train`, the backtest's trained members): `svr_rows` for the SVR,
    /// `threads` (at least 1) for the forest, the forest's leaf size by [`forest_params`].
    pub fn new(seed: u64, svr_rows: usize, threads: usize) -> FitConfig {
        FitConfig {
            seed,
            svr_rows,
            threads: threads.max(1),
            forest_min_samples_leaf: None,
        }
    }

    /// The same for window refits on `refit_rows` rows: the SVR cannot use more than those.
    pub(crate) fn for_refits(&self, refit_rows: usize) -> FitConfig {
        FitConfig {
            svr_rows: self.svr_rows.min(refit_rows),
            ..self.clone()
        }
    }

    /// The fit of window generation `generation`: its own seed, derived from `seed` and the
    /// generation number, and compact forests ([`GENERATION_FOREST_MIN_LEAF`]).
    pub(crate) fn for_generation(&self, generation: u64) -> FitConfig {
        let mut seed_state = self.seed ^ generation;
        FitConfig {
            seed: rng::splitmix64(&mut seed_state),
            forest_min_samples_leaf: Some(GENERATION_FOREST_MIN_LEAF),
            ..self.clone()
        }
    }
}

/// One fitted model and how long it took (measured by the caller's clock, passed back).
#[derive(Debug, Clone)]
pub(crate) struct Fitted {
    pub(crate) model: AnyModel,
}

/// The forest draws at most this many rows (bootstrap) per tree.
pub(crate) const FOREST_MAX_SAMPLES: usize = 100_000;
/// Above this many training rows, forest leaves hold at least [`FOREST_LARGE_MIN_LEAF`] rows.
pub(crate) const FOREST_LARGE_ROWS: usize = 50_000;
/// Minimum leaf size of forest trees on large training sets.
pub(crate) const FOREST_LARGE_MIN_LEAF: usize = 5;
/// Forest hyperparameters for `n_rows` training rows: scikit-learn defaults up to
/// [`FOREST_LARGE_ROWS`] rows. Above, a fully grown tree on a bootstrap of n rows has about
/// 1.3·n nodes (≈ 40 bytes each), so 100 trees on 1.2M rows would need ~6 GB; with at most
/// [`FOREST_MAX_SAMPLES`] rows per tree and leaves of ≥ [`FOREST_LARGE_MIN_LEAF`] rows a tree has
/// at most 2·100 000/5 = 40 000 nodes: 100 trees ≈ 4M nodes ≈ 160 MB, whatever n is.
pub fn forest_params(n_rows: usize, config: &FitConfig) -> ForestParams {
    let large = n_rows > FOREST_LARGE_ROWS;
    ForestParams {
        seed: config.seed,
        threads: config.threads.max(1),
        max_samples: large.then_some(FOREST_MAX_SAMPLES.min(n_rows)),
        max_leaves: Some(FOREST_MAX_LEAVES),
        min_samples_leaf: config.forest_min_samples_leaf.unwrap_or(if large {
            FOREST_LARGE_MIN_LEAF
        } else {
            1
        }),
        ..ForestParams::default()
    }
}

/// Fits each of `kinds` on scaled features `x` and targets `y` (rows in time order).
/// `on_model` is called before each fit (for progress output by the caller).
///
/// Defaults: `LinearParams::default()`; `SvrParams::default()` on the last `svr_rows` rows;
/// `KnnParams::default()` on the last [`KNN_MAX_ROWS`] rows; `CartParams { seed, ..default }`
/// with at most [`CART_MAX_LEAVES`] leaves; the forest from [`forest_params`]; the gbdt from
/// [`gbdt_params`] (XGBoost defaults, hist, standardised target); the GRU and LSTM from
/// [`rnn_params`]: the rows of `x` must then be consecutive in time, since sample i is the
/// sequence of rows `i−seq_len+1 ..= i` (the first `seq_len − 1` rows are context only).
pub(crate) fn fit_models(
    kinds: &[ModelKind],
    x: &DMatrix<f64>,
    y: &DVector<f64>,
    config: &FitConfig,
    on_model: &mut dyn FnMut(ModelKind),
) -> Result<Vec<Fitted>, FitError> {
    let mut fitted = Vec::with_capacity(kinds.len());
    for &kind in kinds {
        on_model(kind);
        let model = fit_one(kind, x, y, config)?;
        fitted.push(Fitted { model });
    }
    Ok(fitted)
}

fn fit_one(
    kind: ModelKind,
    x: &DMatrix<f64>,
    y: &DVector<f64>,
    config: &FitConfig,
) -> Result<AnyModel, FitError> {
    let n = x.nrows();
    Ok(match kind {
        ModelKind::Linear => AnyModel::Linear(LinearParams::default().fit(x, y)?),
        ModelKind::Svr => {
            let keep = config.svr_rows.min(n);
            let start = n - keep;
            let x_last = x.rows(start, keep).clone_owned();
            let y_last = y.rows(start, keep).clone_owned();
            AnyModel::Svr(
                SvrParams {
                    standardize_target: true,
                    ..SvrParams::default()
                }
                .fit(&x_last, &y_last)?,
            )
        }
        ModelKind::Knn => AnyModel::Knn(
            KnnParams {
                max_rows: Some(KNN_MAX_ROWS),
                ..KnnParams::default()
            }
            .fit(x, y)?,
        ),
        ModelKind::Cart => AnyModel::Cart(
            CartParams {
                seed: config.seed,
                max_leaves: Some(CART_MAX_LEAVES),
                ..CartParams::default()
            }
            .fit(x, y)?,
        ),
        ModelKind::Forest => AnyModel::Forest(forest_params(n, config).fit(x, y)?),
        ModelKind::Gbdt => AnyModel::Gbdt(gbdt_params(config).fit(x, y)?),
        ModelKind::Gru | ModelKind::Lstm => {
            // Backpropagation through time costs about a second per 1000 rows and epoch: the
            // networks learn from the most recent RNN_MAX_ROWS rows (consecutive, as sequences
            // need), so `train` stays bounded in time whatever the history.
            let keep = n.min(RNN_MAX_ROWS);
            let start = n - keep;
            let x_last = x.rows(start, keep).clone_owned();
            let y_last = y.rows(start, keep).clone_owned();
            let model = rnn_params(kind, config).fit(&x_last, &y_last)?;
            if kind == ModelKind::Gru {
                AnyModel::Gru(model)
            } else {
                AnyModel::Lstm(model)
            }
        }
    })
}

/// Gbdt hyperparameters: XGBoost's `XGBRegressor()` defaults with `tree_method = hist`, seeded,
/// on `config.threads` threads, fitted on the standardised target
/// ([`GbdtParams::standardize_target`]: with raw log returns of ~1e-3 every split's gain is
/// below XGBoost's 1e-6 threshold and λ = 1 outweighs the gradients).
pub(crate) fn gbdt_params(config: &FitConfig) -> GbdtParams {
    GbdtParams {
        seed: config.seed,
        threads: config.threads.max(1),
        standardize_target: true,
        ..GbdtParams::default()
    }
}

/// GRU or LSTM hyperparameters (`kind` must be recurrent; anything else gets the GRU's): the
/// defaults of [`RnnParams::gru`], seeded, on `config.threads` threads.
pub(crate) fn rnn_params(kind: ModelKind, config: &FitConfig) -> RnnParams {
    let base = match kind {
        ModelKind::Lstm => RnnParams::lstm(),
        _ => RnnParams::gru(),
    };
    RnnParams {
        seed: config.seed,
        threads: config.threads.max(1),
        ..base
    }
}

/// Predicts every row of `x` with `model` over `threads` scoped threads (bit-identical to
/// predicting row by row; see [`super::predict_split`]).
pub(crate) fn predict_rows(model: &AnyModel, x: &DMatrix<f64>, threads: usize) -> DVector<f64> {
    predict_split(model, x, 2, threads)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::linear::Linear;
    use crate::models::rnn::Cell;
    use crate::models::Regressor;

    #[test]
    fn bound_notes_name_the_bounds_that_apply() {
        let config = FitConfig::new(3, 3000, 2);
        assert_eq!(bound_note(ModelKind::Knn, KNN_MAX_ROWS, &config), None);
        assert_eq!(
            bound_note(ModelKind::Knn, 1_200_000, &config).as_deref(),
            Some("knn: memory bound: keeps the most recent 10000 of 1200000 rows")
        );
        assert_eq!(bound_note(ModelKind::Cart, CART_MAX_LEAVES, &config), None);
        assert_eq!(
            bound_note(ModelKind::Cart, 1_200_000, &config).as_deref(),
            Some("cart: memory bound: at most 256 leaves (leaves of ≥ 4688 rows)")
        );
        assert_eq!(
            bound_note(ModelKind::Forest, 1_200_000, &config).as_deref(),
            Some(
                "forest: memory bound: 100000 rows drawn per tree, at most 512 leaves per \
                 tree (leaves of ≥ 196 rows)"
            )
        );
        assert_eq!(bound_note(ModelKind::Svr, 3000, &config), None);
        assert!(bound_note(ModelKind::Svr, 3001, &config).is_some());
        assert_eq!(bound_note(ModelKind::Linear, 1_200_000, &config), None);
        assert_eq!(bound_note(ModelKind::Gru, RNN_MAX_ROWS, &config), None);
        assert_eq!(
            bound_note(ModelKind::Lstm, 1_200_000, &config).as_deref(),
            Some("lstm: time bound: trained on the most recent 50000 of 1200000 rows")
        );
    }

    #[test]
    fn forest_stays_bounded_on_large_sets() {
        let config = FitConfig::new(3, 3000, 2);
        let small = forest_params(30_000, &config);
        assert_eq!((small.max_samples, small.min_samples_leaf), (None, 1));
        assert_eq!((small.seed, small.n_trees), (3, 100));
        let large = forest_params(1_200_000, &config);
        assert_eq!(
            (large.max_samples, large.min_samples_leaf),
            (Some(100_000), 5)
        );
        assert_eq!(large.max_leaves, Some(FOREST_MAX_LEAVES));
        let mid = forest_params(60_000, &config);
        assert_eq!(mid.max_samples, Some(60_000));
        // The window generations' override (see ensemble::learner).
        let compact = FitConfig {
            forest_min_samples_leaf: Some(5),
            ..config
        };
        let generation = forest_params(1_440, &compact);
        assert_eq!(
            (generation.max_samples, generation.min_samples_leaf),
            (None, 5)
        );
    }

    #[test]
    fn refit_and_generation_configs_derive_from_one_config() {
        let config = FitConfig::new(9, 3000, 0);
        assert_eq!(
            config,
            FitConfig {
                seed: 9,
                svr_rows: 3000,
                threads: 1,
                forest_min_samples_leaf: None
            }
        );
        assert_eq!(config.for_refits(150).svr_rows, 150);
        assert_eq!(config.for_refits(5000).svr_rows, 3000);
        let g3 = config.for_generation(3);
        let mut state = 9 ^ 3;
        assert_eq!(g3.seed, rng::splitmix64(&mut state));
        assert_eq!(g3.forest_min_samples_leaf, Some(GENERATION_FOREST_MIN_LEAF));
        assert_eq!((g3.svr_rows, g3.threads), (3000, 1));
        assert_ne!(config.for_generation(4).seed, g3.seed);
    }

    /// Backs "fit_models fits gbdt, gru and lstm with their defaults, seeded" and the
    /// recurrent dispatch of `AnyModel`.
    #[test]
    fn new_kinds_fit_with_their_defaults() {
        let mut rng = rng::Rng::new(4);
        let x = DMatrix::from_fn(200, 3, |_, _| rng.next_f64() - 0.5);
        let y = DVector::from_fn(200, |i, _| 1e-3 * x[(i, 0)]);
        let config = FitConfig::new(11, 100, 1);
        let kinds = [ModelKind::Gbdt, ModelKind::Gru, ModelKind::Lstm];
        let mut seen = Vec::new();
        let fitted = fit_models(&kinds, &x, &y, &config, &mut |k| seen.push(k)).expect("fit");
        assert_eq!(seen, kinds);
        assert_eq!(
            fitted.iter().map(|f| f.model.kind()).collect::<Vec<_>>(),
            kinds
        );
        assert_eq!(gbdt_params(&config).seed, 11);
        assert!(gbdt_params(&config).standardize_target);
        let lstm = rnn_params(ModelKind::Lstm, &config);
        assert_eq!((lstm.cell, lstm.seed, lstm.threads), (Cell::Lstm, 11, 1));
        assert_eq!(rnn_params(ModelKind::Gru, &config).cell, Cell::Gru);
        for f in &fitted {
            f.model.check(3).expect("valid");
            let recurrent = f.model.kind().is_recurrent();
            assert_eq!(f.model.as_rnn().is_some(), recurrent);
            assert_eq!(f.model.seq_len(), if recurrent { 60 } else { 1 });
        }
        // A row model's sequence forecast reads the last row only.
        let rows: Vec<f64> = (0..6).map(|v| v as f64 * 0.1).collect();
        let gbdt = &fitted[0].model;
        assert_eq!(
            gbdt.predict_sequence(&rows, 3),
            gbdt.predict_row(&rows[3..])
        );
        let gru = &fitted[1].model;
        let rnn = gru.as_rnn().expect("gru");
        assert_eq!(gru.predict_sequence(&rows, 3), rnn.predict_sequence(&rows));
        // A GRU labelled as an LSTM is refused.
        let mislabelled = AnyModel::Lstm(rnn.clone());
        assert!(mislabelled.check(3).is_err());
        // Generations refit the six row models only.
        assert!(ModelKind::GENERATION.iter().all(|k| !k.is_recurrent()));
    }

    /// Backs README claim [C16] for the members whose bound is their shape: gradient boosting
    /// (100 trees of depth ≤ 6: at most 100·127 nodes of 12 bytes) and the recurrent networks
    /// (a fixed parameter count) keep their size whatever the rows they are fitted on.
    #[test]
    fn gbdt_and_recurrent_sizes_do_not_grow_with_the_rows() {
        let config = FitConfig::new(5, 100, 1);
        let size = |kind: ModelKind, n: usize| -> usize {
            let mut rng = rng::Rng::new(n as u64);
            let x = DMatrix::from_fn(n, 3, |_, _| rng.next_f64() - 0.5);
            let y = DVector::from_fn(n, |i, _| x[(i, 0)] * x[(i, 1)] + 0.1 * rng.next_f64());
            let model = match kind {
                ModelKind::Gbdt => AnyModel::Gbdt(gbdt_params(&config).fit(&x, &y).expect("gbdt")),
                _ => {
                    let params = crate::models::rnn::RnnParams {
                        hidden: 4,
                        seq_len: 5,
                        max_epochs: 1,
                        ..rnn_params(kind, &config)
                    };
                    AnyModel::Gru(params.fit(&x, &y).expect("rnn"))
                }
            };
            postcard::to_allocvec(&model).expect("serialises").len()
        };
        let (small, large) = (size(ModelKind::Gbdt, 500), size(ModelKind::Gbdt, 8000));
        assert!(small <= 100 * 127 * 12 + 1024 && large <= 100 * 127 * 12 + 1024);
        assert!(
            large > small,
            "the larger set grows deeper trees, up to the bound"
        );
        for kind in [ModelKind::Gru, ModelKind::Lstm] {
            assert_eq!(size(kind, 300), size(kind, 3000), "{kind:?}");
        }
    }

    /// Backs README claim [C16] where it is applied: `fit_models`, the one place `train`,
    /// `backtest` and the window refits fit the pool, gives KNN only the last
    /// [`KNN_MAX_ROWS`] rows, CART at most [`CART_MAX_LEAVES`] leaves and the SVR the last
    /// `svr_rows` rows (`--svr-rows`), on more rows than any of the three bounds.
    #[test]
    fn fit_models_applies_the_knn_cart_and_svr_bounds() {
        let n = KNN_MAX_ROWS + 2_000;
        let mut rng = rng::Rng::new(17);
        let x = DMatrix::from_fn(n, 3, |_, _| rng.next_f64() - 0.5);
        let y = DVector::from_fn(n, |i, _| x[(i, 0)] - 0.5 * x[(i, 1)] + 0.3 * rng.next_f64());
        let svr_rows = 150;
        let config = FitConfig::new(5, svr_rows, 1);
        let kinds = [ModelKind::Knn, ModelKind::Cart, ModelKind::Svr];
        let fitted = fit_models(&kinds, &x, &y, &config, &mut |_| {}).expect("fit");
        let last = |keep: usize| {
            (
                x.rows(n - keep, keep).clone_owned(),
                y.rows(n - keep, keep).clone_owned(),
            )
        };
        let queries = DMatrix::from_fn(50, 3, |_, _| rng.next_f64() - 0.5);

        let AnyModel::Knn(knn) = &fitted[0].model else {
            panic!("knn expected")
        };
        assert_eq!(knn.n_rows(), KNN_MAX_ROWS);
        let (xk, yk) = last(KNN_MAX_ROWS);
        let alone = KnnParams::default().fit(&xk, &yk).expect("knn");
        assert_eq!(knn.predict(&queries), alone.predict(&queries));

        let AnyModel::Cart(cart) = &fitted[1].model else {
            panic!("cart expected")
        };
        assert!(
            cart.leaf_count() <= CART_MAX_LEAVES,
            "{} leaves",
            cart.leaf_count()
        );
        assert!(cart.leaf_count() > CART_MAX_LEAVES / 2, "a real tree");

        let AnyModel::Svr(svr) = &fitted[2].model else {
            panic!("svr expected")
        };
        let n_sv = svr.dual_coef.len();
        assert!(n_sv > 0 && n_sv <= svr_rows, "{n_sv} support vectors");
        let (xs, ys) = last(svr_rows);
        let tail: Vec<[u64; 3]> = (0..svr_rows)
            .map(|i| [0, 1, 2].map(|j| xs[(i, j)].to_bits()))
            .collect();
        for sv in svr.support_vectors.chunks(3) {
            let bits = [sv[0].to_bits(), sv[1].to_bits(), sv[2].to_bits()];
            assert!(
                tail.contains(&bits),
                "a support vector from before the last rows"
            );
        }
        let alone = SvrParams {
            standardize_target: true,
            ..SvrParams::default()
        }
        .fit(&xs, &ys)
        .expect("svr");
        assert_eq!(svr.predict(&queries), alone.predict(&queries));
    }

    #[test]
    fn parallel_prediction_keeps_row_order() {
        let model = AnyModel::Linear(Linear {
            coef: vec![1.0, 10.0],
            intercept: 0.5,
        });
        let want: Vec<f64> = (0..7)
            .map(|i| 0.5 + (2 * i) as f64 + 10.0 * (2 * i + 1) as f64)
            .collect();
        for n in [7, 6, 1] {
            let x = DMatrix::from_fn(n, 2, |i, j| (i * 2 + j) as f64);
            for threads in [0, 1, 2, 3, 8] {
                let got = predict_rows(&model, &x, threads);
                assert_eq!(got.as_slice(), &want[..n], "{n} rows, {threads} threads");
            }
        }
        assert!(predict_rows(&model, &DMatrix::zeros(0, 2), 2).is_empty());
    }
}
