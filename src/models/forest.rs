//! Random forest regression, like scikit-learn's `RandomForestRegressor()`. Pure code: no I/O,
//! no clock; randomness only from the seed in the params.
//!
//! Algorithm: grow `n_trees` CART trees ([`super::cart`]), each on a bootstrap sample of
//! `max_samples` (default n) rows drawn with replacement; like scikit-learn, a tree sees each
//! drawn row once with weight = its draw count (so `min_samples_leaf` counts distinct rows), and
//! considers `max_features` features per split (default all, scikit-learn's 1.0). The prediction
//! is the sum of the tree predictions in tree order divided by `n_trees`.
//! Determinism: tree i draws its bootstrap and feature orders from `Rng::derive(seed, i)` only,
//! and trees are collected in index order, so the forest is bit-identical for any `threads`.
//! The bootstrap stream differs from NumPy's, so parity with scikit-learn is statistical
//! (similar error), never tree by tree.
//!
//! Cost: fit O(n_trees · (d·m log m + d·m·depth)) for m = distinct rows per tree, spread over
//! `threads` scoped threads, each holding 8·d·m bytes of sorted entries while growing; the f32
//! copy of `x` (4·d·n bytes) is shared. Predict O(n_trees · depth) per row; `predict` on many
//! rows uses two threads.
//! Memory of the fitted forest: 16 bytes per node and about 2 nodes per distinct bootstrap row
//! when trees are fully grown (≈ 0.63·max_samples distinct rows), i.e. ≈ 20 bytes ×
//! max_samples per tree: 100 full trees on 1.2M rows is ≈ 2.4 GB. For large data the caller
//! caps `max_samples`, `max_depth` or raises `min_samples_leaf` (each leaf then holds at least
//! that many rows, dividing the node count by about that factor).
//!
//! Defaults (scikit-learn): n_trees 100, bootstrap true, max_samples None (= n), max_features
//! None (all), max_depth None, min_samples_split 2, min_samples_leaf 1, seed 0, threads 2.
//!
//! Reference: L. Breiman, "Random Forests", Machine Learning 45(1), 5-32, 2001.

use std::sync::atomic::{AtomicUsize, Ordering};

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::cart::{grow, leaf_size_for_budget, Cart, TrainData, TreeConfig};
use super::{check_xy, split_rows, FitError, Regressor};
use crate::rng::Rng;

/// Hyperparameters (scikit-learn `RandomForestRegressor()` defaults: 100 trees, bootstrap,
/// max_features = all features).
#[derive(Debug, Clone, PartialEq)]
pub struct ForestParams {
    pub n_trees: usize,
    pub max_depth: Option<usize>,
    pub min_samples_split: usize,
    pub min_samples_leaf: usize,
    pub max_features: Option<usize>,
    pub bootstrap: bool,
    /// Rows drawn (with replacement) per tree; `None` = the number of training rows. Only with
    /// `bootstrap` (scikit-learn's `max_samples` as an integer).
    pub max_samples: Option<usize>,
    /// Worker threads (std::thread::scope); results do not depend on it.
    pub threads: usize,
    pub seed: u64,
    /// Memory bound per tree: at most this many leaves (see
    /// [`super::cart::leaf_size_for_budget`], applied to the rows drawn per tree), so the
    /// forest holds at most `n_trees · (2·max_leaves − 1)` nodes whatever the history length.
    /// `None`: unbounded, like scikit-learn.
    pub max_leaves: Option<usize>,
}

impl Default for ForestParams {
    fn default() -> Self {
        ForestParams {
            n_trees: 100,
            max_depth: None,
            min_samples_split: 2,
            min_samples_leaf: 1,
            max_features: None,
            bootstrap: true,
            max_samples: None,
            threads: 2,
            seed: 0,
            max_leaves: None,
        }
    }
}

/// A fitted forest: the mean of its trees.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Forest {
    pub trees: Vec<Cart>,
}

/// Below this many query rows `predict` stays on the calling thread.
const PARALLEL_MIN_ROWS: usize = 500;

/// Bytes of f32 query rows [`Forest::predict_on`] passes through each tree at a time: 256 KiB
/// (10,922 rows of 6 features) sit in a 1 MiB L2 beside one tree of a few hundred KB, so the
/// walk reads the rows from L2 and each tree from memory once per block; a bigger block would
/// push the tree out of L2, a smaller one reads every tree more often (at 2,048 rows, 6,047
/// queries walked a 32 MB forest three times and its speed depended on whether the forest
/// stayed in L3 between passes).
const PREDICT_BLOCK_BYTES: usize = 256 * 1024;

impl ForestParams {
    pub fn fit(&self, x: &DMatrix<f64>, y: &DVector<f64>) -> Result<Forest, FitError> {
        check_xy("forest", x, y, 1)?;
        let n_rows = x.nrows();
        let bad = |param, value: String, expected| FitError::BadParam {
            model: "forest",
            param,
            value,
            expected,
        };
        if self.n_trees == 0 {
            return Err(bad("n_trees", "0".into(), "at least 1"));
        }
        if self.threads == 0 {
            return Err(bad("threads", "0".into(), "at least 1"));
        }
        let draws = match (self.bootstrap, self.max_samples) {
            (_, None) => n_rows,
            (true, Some(m)) if (1..=n_rows).contains(&m) => m,
            (true, Some(m)) => {
                return Err(bad(
                    "max_samples",
                    m.to_string(),
                    "1..=number of training rows, or none",
                ))
            }
            (false, Some(m)) => {
                return Err(bad(
                    "max_samples",
                    m.to_string(),
                    "none when bootstrap is off",
                ))
            }
        };
        let config = TreeConfig::new(
            "forest",
            x.ncols(),
            self.max_depth,
            self.min_samples_split,
            // Distinct rows per tree are at most the draws: the budget holds for every tree.
            leaf_size_for_budget("forest", self.min_samples_leaf, self.max_leaves, draws)?,
            self.max_features,
        )?;
        let data = TrainData::new("forest", x, y)?;

        let grow_tree = |tree_index: usize| -> Cart {
            let mut rng = Rng::derive(self.seed, tree_index as u64);
            if !self.bootstrap {
                let samples: Vec<u32> = (0..n_rows as u32).collect();
                return grow(
                    &data,
                    &samples,
                    &vec![1.0; n_rows],
                    &config,
                    splitter_state(&mut rng),
                );
            }
            let mut counts = vec![0u32; n_rows];
            for _ in 0..draws {
                counts[rng.below(n_rows)] += 1;
            }
            let samples: Vec<u32> = (0..n_rows as u32)
                .filter(|&i| counts[i as usize] > 0)
                .collect();
            let weights: Vec<f64> = counts.iter().map(|&c| f64::from(c)).collect();
            grow(&data, &samples, &weights, &config, splitter_state(&mut rng))
        };

        let threads = self.threads.min(self.n_trees);
        let next_tree = AtomicUsize::new(0);
        let work = || {
            let mut grown = Vec::new();
            loop {
                let tree_index = next_tree.fetch_add(1, Ordering::Relaxed);
                if tree_index >= self.n_trees {
                    return grown;
                }
                grown.push((tree_index, grow_tree(tree_index)));
            }
        };
        let mut grown: Vec<(usize, Cart)> = std::thread::scope(|scope| {
            let workers: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
            let mut all = work();
            for worker in workers {
                match worker.join() {
                    Ok(trees) => all.extend(trees),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            all
        });
        grown.sort_by_key(|(tree_index, _)| *tree_index);
        Ok(Forest {
            trees: grown.into_iter().map(|(_, tree)| tree).collect(),
        })
    }
}

impl Forest {
    /// Total nodes over all trees (each is 16 bytes in memory).
    pub fn node_count(&self) -> usize {
        self.trees.iter().map(Cart::node_count).sum()
    }
}

impl Forest {
    /// Checks a deserialized forest: at least one tree, each passing [`Cart::check`].
    pub(crate) fn check(&self, n_features: usize) -> Result<(), String> {
        if self.trees.is_empty() {
            return Err("the forest has no trees".to_string());
        }
        for (i, tree) in self.trees.iter().enumerate() {
            tree.check(n_features)
                .map_err(|e| format!("tree {i}: {e}"))?;
        }
        Ok(())
    }
}

impl Regressor for Forest {
    fn name(&self) -> &'static str {
        "forest"
    }

    fn predict_row(&self, x: &[f64]) -> f64 {
        let mut sum = 0.0;
        for tree in &self.trees {
            sum += tree.predict_row(x);
        }
        sum / self.trees.len().max(1) as f64
    }

    /// [`Forest::predict_on`] two threads.
    fn predict(&self, x: &DMatrix<f64>) -> DVector<f64> {
        self.predict_on(x, 2)
    }
}

impl Forest {
    /// Bit-identical to `predict_row` on every row, but tree by tree over blocks of at most
    /// [`PREDICT_BLOCK_BYTES`] of rows, a thread's range cut into blocks of near-equal size: the
    /// block's values are rounded through f32 once and kept as f32 (row-major, small enough to
    /// stay in cache beside one tree), every tree in order adds its prediction to each row's sum
    /// ([`Cart::add_predictions`]: 32 rows at once walk the tree's 8-byte steps, a lane taking
    /// the next row as soon as its row is at a leaf), so each tree is read once per block, as
    /// scikit-learn reads it once per call; the rows are split over `threads` when there are
    /// many.
    pub fn predict_on(&self, x: &DMatrix<f64>, threads: usize) -> DVector<f64> {
        self.predict_blocked(x, threads, PREDICT_BLOCK_BYTES)
    }

    /// [`Forest::predict_on`] with the block budget as a parameter (tests use small blocks).
    fn predict_blocked(
        &self,
        x: &DMatrix<f64>,
        threads: usize,
        block_bytes: usize,
    ) -> DVector<f64> {
        let d = x.ncols().max(1);
        let n_trees = self.trees.len().max(1) as f64;
        let max_rows = (block_bytes / (4 * d)).max(32);
        DVector::from_vec(split_rows(
            x.nrows(),
            PARALLEL_MIN_ROWS,
            threads,
            |from, to| {
                let n = to - from;
                // Even blocks: 12,000 rows at 10,922 a block are two of 6,000, not 10,922 + 1,078.
                let block = n.div_ceil(n.div_ceil(max_rows).max(1)).max(1);
                let mut out = Vec::with_capacity(n);
                let mut rows = vec![0f32; block * d];
                let mut sums = vec![0.0; block];
                for start in (from..to).step_by(block) {
                    let m = (to - start).min(block);
                    for j in 0..x.ncols() {
                        for (i, v) in x.column(j).rows(start, m).iter().enumerate() {
                            rows[i * d + j] = *v as f32;
                        }
                    }
                    let sums = &mut sums[..m];
                    sums.fill(0.0);
                    for tree in &self.trees {
                        tree.add_predictions(&rows[..m * d], d, sums);
                    }
                    out.extend(sums.iter().map(|s| s / n_trees));
                }
                out
            },
        ))
    }
}

/// A tree's scikit-learn splitter state (its feature orders), drawn from the tree's own stream.
fn splitter_state(rng: &mut Rng) -> u32 {
    (rng.next_u64() >> 33) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::cart::CartParams;
    use crate::testutil::assert_postcard_round_trip;

    fn noisy_data(seed: u64, n: usize) -> (DMatrix<f64>, DVector<f64>) {
        let mut rng = Rng::new(seed);
        let x = DMatrix::from_fn(n, 3, |_, _| rng.next_f64() * 4.0 - 2.0);
        let y = DVector::from_fn(n, |i, _| {
            (2.0 * x[(i, 0)]).sin() + x[(i, 1)] * x[(i, 2)] + 0.5 * (rng.next_f64() - 0.5)
        });
        (x, y)
    }

    /// The blocked, tree-by-tree batch predict equals `predict_row` row by row, bit for bit, on
    /// 1 and 3 threads, over several blocks and a partial one (and on values that f32 rounds).
    /// Backs README claim [C17].
    #[test]
    fn batch_predict_equals_row_by_row_on_any_thread_count() {
        let (x, y) = noisy_data(11, 400);
        let forest = small(3, 2).fit(&x, &y).expect("fit");
        let (mut q, _) = noisy_data(12, 3 * 2048 + PARALLEL_MIN_ROWS + 7);
        q[(0, 0)] = 1.0 + 1e-12;
        let rows: Vec<u64> = (0..q.nrows())
            .map(|i| {
                let row: Vec<f64> = q.row(i).iter().copied().collect();
                forest.predict_row(&row).to_bits()
            })
            .collect();
        let default: Vec<u64> = forest
            .predict_on(&q, 1)
            .iter()
            .map(|v| v.to_bits())
            .collect();
        assert_eq!(default, rows, "predict_on");
        // One block per thread (the default budget holds 21,845 rows of 3 features), four
        // blocks of 1,663 rows or fewer, and 81 blocks of 83 rows with a short last one.
        for block_bytes in [PREDICT_BLOCK_BYTES, 2048 * 4 * 3, 1000] {
            for threads in [1, 3] {
                let batch: Vec<u64> = forest
                    .predict_blocked(&q, threads, block_bytes)
                    .iter()
                    .map(|v| v.to_bits())
                    .collect();
                assert_eq!(
                    batch, rows,
                    "threads {threads}, {block_bytes} bytes a block"
                );
            }
        }
    }

    /// On a grid the thresholds are the half-way values, so queries that sit exactly on them
    /// (and NaN, which goes right) take the same side in the batch walk as in `predict_row`.
    #[test]
    fn batch_predict_equals_row_by_row_on_thresholds_and_nan() {
        let mut rng = Rng::new(21);
        let x = DMatrix::from_fn(300, 2, |_, _| rng.below(6) as f64);
        let y = DVector::from_fn(300, |i, _| x[(i, 0)] * 2.0 - x[(i, 1)] + rng.next_f64());
        let forest = small(4, 1).fit(&x, &y).expect("fit");
        let q = DMatrix::from_fn(200, 2, |i, j| match (i + j) % 7 {
            6 => f64::NAN,
            k => k as f64 * 0.5 + 0.5 * (j as f64),
        });
        for i in 0..q.nrows() {
            let row: Vec<f64> = q.row(i).iter().copied().collect();
            let one = forest.predict_row(&row).to_bits();
            assert_eq!(
                forest.predict_on(&q.rows(i, 1).into_owned(), 1)[0].to_bits(),
                one
            );
            assert_eq!(forest.predict_on(&q, 1)[i].to_bits(), one, "row {i}");
        }
    }

    fn small(seed: u64, threads: usize) -> ForestParams {
        ForestParams {
            n_trees: 12,
            seed,
            threads,
            ..ForestParams::default()
        }
    }

    fn bits(v: &DVector<f64>) -> Vec<u64> {
        v.iter().map(|p| p.to_bits()).collect()
    }

    /// Backs README claim [C17]: The forest is bit-identical for any number of threads.
    #[test]
    fn identical_for_any_thread_count_and_seed_sensitive() {
        let (x, y) = noisy_data(1, 400);
        let (queries, _) = noisy_data(2, 600);
        let one = small(5, 1).fit(&x, &y).expect("fit").predict(&queries);
        let two = small(5, 2).fit(&x, &y).expect("fit").predict(&queries);
        let three = small(5, 3).fit(&x, &y).expect("fit").predict(&queries);
        assert_eq!(bits(&one), bits(&two));
        assert_eq!(bits(&one), bits(&three));
        let other = small(6, 2).fit(&x, &y).expect("fit").predict(&queries);
        assert_ne!(bits(&one), bits(&other));
    }

    #[test]
    fn beats_a_single_tree_out_of_sample() {
        let (x, y) = noisy_data(3, 800);
        let (xt, yt) = noisy_data(4, 800);
        let rmse = |p: DVector<f64>| ((p - &yt).norm_squared() / yt.len() as f64).sqrt();
        let tree = CartParams::default().fit(&x, &y).expect("fit");
        let forest = ForestParams {
            n_trees: 50,
            ..ForestParams::default()
        }
        .fit(&x, &y)
        .expect("fit");
        let (tree_rmse, forest_rmse) = (rmse(tree.predict(&xt)), rmse(forest.predict(&xt)));
        assert!(
            forest_rmse < 0.85 * tree_rmse,
            "forest {forest_rmse} tree {tree_rmse}"
        );
    }

    #[test]
    fn without_bootstrap_every_tree_is_the_cart_tree() {
        // Trees differ only in their feature orders (which decide exact proxy ties, e.g. at
        // every two-sample node), so with one feature every tree is the cart tree.
        let (x, y) = noisy_data(7, 300);
        let x = x.columns(0, 1).into_owned();
        let (queries, _) = noisy_data(8, 200);
        let queries = queries.columns(0, 1).into_owned();
        let forest = ForestParams {
            n_trees: 2,
            bootstrap: false,
            ..ForestParams::default()
        }
        .fit(&x, &y)
        .expect("fit");
        let tree = CartParams::default().fit(&x, &y).expect("fit");
        assert_eq!(
            bits(&forest.predict(&queries)),
            bits(&tree.predict(&queries))
        );
    }

    #[test]
    fn max_samples_and_min_samples_leaf_bound_the_trees() {
        let (x, y) = noisy_data(9, 1_000);
        let five_trees = ForestParams {
            n_trees: 5,
            ..ForestParams::default()
        };
        let fit = |params: ForestParams| params.fit(&x, &y).expect("fit");
        let forest = fit(ForestParams {
            max_samples: Some(20),
            ..five_trees.clone()
        });
        // At most 20 distinct rows per tree: at most 20 leaves, 39 nodes.
        assert!(forest.trees.iter().all(|t| t.node_count() <= 39));
        let forest = fit(ForestParams {
            min_samples_leaf: 50,
            ..five_trees.clone()
        });
        // At most 1000 / 50 leaves per tree.
        assert!(forest.trees.iter().all(|t| t.node_count() <= 39));
        let forest = fit(ForestParams {
            max_depth: Some(2),
            ..five_trees
        });
        assert!(forest.trees.iter().all(|t| t.depth() <= 2));
    }

    #[test]
    fn bad_params_and_input_are_rejected() {
        let (x, y) = noisy_data(10, 30);
        let cases = [
            (
                ForestParams {
                    n_trees: 0,
                    ..ForestParams::default()
                },
                "n_trees",
            ),
            (
                ForestParams {
                    threads: 0,
                    ..ForestParams::default()
                },
                "threads",
            ),
            (
                ForestParams {
                    min_samples_leaf: 0,
                    ..ForestParams::default()
                },
                "min_samples_leaf",
            ),
            (
                ForestParams {
                    max_samples: Some(31),
                    ..ForestParams::default()
                },
                "max_samples",
            ),
            (
                ForestParams {
                    max_samples: Some(10),
                    bootstrap: false,
                    ..ForestParams::default()
                },
                "max_samples",
            ),
        ];
        for (params, name) in cases {
            let err = params.fit(&x, &y).expect_err("bad param");
            assert!(
                matches!(err, FitError::BadParam { model: "forest", param, .. } if param == name),
                "{err:?}"
            );
        }
        let short = DVector::from_vec(vec![1.0]);
        let err = ForestParams::default().fit(&x, &short).expect_err("shape");
        assert!(matches!(
            err,
            FitError::Shape {
                model: "forest",
                ..
            }
        ));
        let mut nan = x.clone();
        nan[(3, 1)] = f64::NAN;
        let err = ForestParams::default().fit(&nan, &y).expect_err("nan");
        assert_eq!(err, FitError::NonFinite { model: "forest" });
    }

    #[test]
    fn postcard_round_trip_predicts_identically() {
        let (x, y) = noisy_data(11, 300);
        let (queries, _) = noisy_data(12, 700);
        let forest = small(1, 2).fit(&x, &y).expect("fit");
        assert_postcard_round_trip(&forest, &queries);
        let rows: Vec<f64> = (0..3).map(|j| queries[(0, j)]).collect();
        assert_eq!(
            forest.predict_row(&rows).to_bits(),
            forest.predict(&queries)[0].to_bits()
        );
    }

    /// Backs README claim [C16]: Every trained member's size is bounded whatever the history.
    #[test]
    fn max_leaves_bounds_every_tree_whatever_the_rows() {
        for n in [300, 3_000, 12_000] {
            let (x, y) = noisy_data(9, n);
            let forest = ForestParams {
                n_trees: 6,
                max_leaves: Some(32),
                ..ForestParams::default()
            }
            .fit(&x, &y)
            .expect("fit");
            for tree in &forest.trees {
                assert!(tree.leaf_count() <= 32, "{n} rows: {}", tree.leaf_count());
            }
            assert!(forest.node_count() <= 6 * 63, "{n} rows");
            assert_eq!(forest.check(3), Ok(()));
            let size = postcard::to_allocvec(&forest).expect("serialize").len();
            assert!(size <= 6 * 63 * 16 + 100, "{n} rows: {size} bytes");
        }
        // With max_samples, the budget applies to the draws: ⌈500 / 32⌉ = 16 rows per leaf.
        let (x, y) = noisy_data(9, 5_000);
        let capped = |max_leaves| ForestParams {
            n_trees: 3,
            max_samples: Some(500),
            max_leaves,
            ..ForestParams::default()
        };
        let bounded = capped(Some(32)).fit(&x, &y).expect("fit");
        let by_leaf = ForestParams {
            min_samples_leaf: 16,
            ..capped(None)
        }
        .fit(&x, &y)
        .expect("fit");
        let (queries, _) = noisy_data(10, 50);
        assert_eq!(
            bits(&bounded.predict(&queries)),
            bits(&by_leaf.predict(&queries))
        );
    }
}
