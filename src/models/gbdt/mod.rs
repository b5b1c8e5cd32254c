//! Gradient-boosted regression trees, like XGBoost's `XGBRegressor()` (squared error). Pure
//! code: no I/O, no clock; randomness only from the seed in the params.
//!
//! Algorithm (XGBoost's second-order boosting, `reg:squarederror`): start every row at
//! `base_score`; each round computes the gradient `g = prediction − y` (hessian `h = 1`) and
//! grows one tree depth-wise (level by level, like XGBoost's `exact` and `depthwise` growth).
//! For a node with sums G, H the weight is `w = −T(G)/(H+λ)` with `T` XGBoost's `ThresholdL1`
//! (`T(G) = sign(G)·max(|G|−α, 0)`), and its gain score is `T(G)²/(H+λ)`. A split's loss change
//! is `score(left) + score(right) − score(node)` — *without* the ½ of the XGBoost paper, as
//! XGBoost's code (`split_evaluator.h`, `CalcGain`) computes it. A split needs both children's
//! hessian sums `≥ min_child_weight` and a loss change above XGBoost's `kRtEps = 1e-6`; the best
//! one per node wins, and on equal loss changes the lower feature index (XGBoost's
//! `SplitEntry::NeedReplace`); within a feature the first candidate scanned wins (scans run from
//! the largest value down, XGBoost's dense "backward" enumeration). A node at `max_depth`, or
//! without a valid split, becomes a leaf of value `eta·w`. After growing, leaves are pruned
//! bottom-up while their parent's loss change is below `gamma` (XGBoost's `prune` updater).
//! Rows go left when `x < threshold`, compared in `f32`.
//!
//! XGBoost's arithmetic is copied so that trees match it node for node: features, labels,
//! predictions, gradients, weights, gains and thresholds are `f32`; gradient sums are `f64`;
//! each child score is rounded to `f32` before the two are added (in `f32`), and the loss change
//! is that sum minus the node's `f32` score. Predictions add the leaves to `base_score` in tree
//! order in `f32` (so a target should be scaled so that f32's 7 significant digits suffice:
//! log returns or standardized values are fine; raw prices lose their last digits).
//!
//! Split finders ([`TreeMethod`]):
//! * `Exact` (XGBoost `tree_method="exact"`): every feature is sorted once; each level scans
//!   every sorted feature once from the top, and a candidate split lies between consecutive
//!   distinct values `a < b` present in the node, at the `f32` midpoint `(a+b)·0.5` (or `b` if
//!   that rounds to `a`), exactly as XGBoost's `ColMaker`. Cost O(d·n log n) once plus O(d·n)
//!   per level.
//! * `Hist` (the default, for speed): before training each feature gets at most `max_bin` (256)
//!   bins at quantiles of its values, each cut being the `f32` midpoint rule above between two
//!   adjacent distinct values; a feature with at most `max_bin` distinct values gets one bin per
//!   value, so `Hist` then grows exactly the trees `Exact` grows (same splits of the training
//!   rows, same leaves; a threshold may differ inside a gap without training values in the
//!   node). Per level, the smaller child of each split gets its gradient histogram from its rows
//!   and its sibling the parent's histogram minus it; split search scans the bins upwards like
//!   XGBoost `hist` (the split lies at the upper cut of the left side's highest non-empty bin;
//!   among equal loss changes in one feature the lowest wins). Cost O(d·n log n) once, then per
//!   level O(d·rows of the smaller children + d·256·nodes). Histograms and split search run over
//!   `threads` scoped threads by feature range when a level has enough work.
//!
//! The rows of the nodes being grown live in one index array: a split partitions its node's
//! range in place (stably, branch-free); the children's gradient sums are added over their
//! rows in row order as the partition moves them (`Exact`, as XGBoost `exact`), or taken from
//! the split's histogram sums (`Hist`, as XGBoost `hist`'s `left_sum`, so its partition only
//! moves rows; the sums are added in bin order, which can move an f64 sum by an ulp, not the
//! f32 leaves of the fixtures); after each tree the training margins are updated from the
//! leaves' ranges instead of walking the tree per row (sampled trees walk it).
//!
//! Prediction walks blocks of 64 rows through one tree at a time (the trees stay in cache) on a
//! copy of the nodes in which every leaf loops to itself, so each row takes exactly the tree's
//! depth in steps, with a conditional move instead of a branch per step; the row blocks are
//! split over the model's `threads` (those of the fit, 2 after loading) when there are many.
//!
//! Sampling: `subsample < 1` keeps each row for a tree with that probability,
//! `colsample_bytree < 1` draws `max(1, ⌊colsample·d⌋)` features per tree, both from
//! `Rng::derive(seed, tree)`: reproducible, but not XGBoost's random stream. Early stopping
//! (`early_stopping_rounds`): the last `validation_fraction` of the rows (a time-ordered tail,
//! never shuffled) is held out, the RMSE on it is measured after every tree, and training stops
//! after that many trees without a new best; the model keeps the trees up to the best one.
//! `base_score = None` uses the mean of the training target, as XGBoost ≥ 2.0 estimates it.
//!
//! Memory of the fitted model: 12 bytes per node (feature `u32`, threshold or leaf `f32`, right
//! child `u32`, preorder) plus 4 bytes per tree; a depth-6 tree has at most 127 nodes, so 100
//! trees take at most ≈ 152 KB. While fitting: the `f32` copy of `x` (4·d·n bytes), the row
//! indices and a partition scratch (8·n bytes), and either the sorted features (8·d·n bytes,
//! `Exact`) or the bin indices (d·n bytes, row-major) and one level of histograms (16 bytes ×
//! bins × nodes in the level, `Hist`). Prediction copies the nodes once per call.
//!
//! Defaults (XGBoost `XGBRegressor()` 2.x): n_trees 100, eta 0.3, max_depth 6, lambda 1,
//! alpha 0, gamma 0, min_child_weight 1, subsample 1, colsample_bytree 1, base_score = mean of
//! y, tree_method hist, max_bin 256, no early stopping; threads 2, seed 0.
//!
//! Files: `model.rs` (the fitted [`Gbdt`], its packed nodes, the checks on load), `predict.rs`
//! (one row, and the branch-free block walk), `bins.rs` (quantile cuts and row bins, or the
//! sorted columns of `Exact`), `split.rs` (gradient sums, XGBoost's gain, the exact and
//! histogram searches of one level), `grow.rs` (one tree level by level, the in-place row
//! partition, pruning, preorder), `boost.rs` (the boosting rounds, sampling, early stopping).
//!
//! Reference: T. Chen and C. Guestrin, "XGBoost: A Scalable Tree Boosting System", KDD 2016;
//! XGBoost 2.1 `src/tree/param.h`, `split_evaluator.h`, `updater_colmaker.cc`,
//! `updater_prune.cc`.

mod bins;
mod boost;
mod grow;
mod model;
mod predict;
mod split;
mod state;

use serde::{Deserialize, Serialize};

use super::FitError;
pub use model::{Gbdt, TreeNode};

/// How split candidates are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TreeMethod {
    /// Every distinct value (XGBoost `tree_method="exact"`), for parity.
    Exact,
    /// At most `max_bin` quantile bins per feature (XGBoost `tree_method="hist"`), for speed.
    Hist,
}

/// Hyperparameters (XGBoost `XGBRegressor()` 2.x defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct GbdtParams {
    /// Boosting rounds (XGBoost `n_estimators`).
    pub n_trees: usize,
    /// Learning rate: leaves are scaled by it.
    pub eta: f64,
    pub max_depth: usize,
    /// L2 regularization of leaf weights (XGBoost `reg_lambda`).
    pub lambda: f64,
    /// L1 regularization of leaf weights (XGBoost `reg_alpha`).
    pub alpha: f64,
    /// Minimum loss change to keep a split (XGBoost `min_split_loss`).
    pub gamma: f64,
    /// Minimum hessian sum (here: row count) in each child.
    pub min_child_weight: f64,
    /// Probability that a row is used by a tree, in (0, 1].
    pub subsample: f64,
    /// Fraction of features drawn per tree, in (0, 1].
    pub colsample_bytree: f64,
    /// The initial prediction; `None` = mean of the training target.
    pub base_score: Option<f64>,
    pub tree_method: TreeMethod,
    /// Bins per feature for `Hist`, 2..=256.
    pub max_bin: usize,
    /// Stop after this many trees without a better validation RMSE; `None` = no early stopping.
    pub early_stopping_rounds: Option<usize>,
    /// Fraction of the rows, taken from the end, held out for early stopping, in (0, 1).
    pub validation_fraction: f64,
    /// Worker threads (std::thread::scope); results do not depend on it.
    pub threads: usize,
    pub seed: u64,
    /// Fit on `(y − mean) / std` of the training target and scale predictions back (like
    /// [`super::svr::SvrParams::standardize_target`]): the f32 arithmetic and the absolute
    /// thresholds (`kRtEps`, `lambda`, `min_child_weight`) then see a unit-variance target
    /// instead of log returns of ~1e-3. Not an XGBoost parameter; off by default (parity).
    pub standardize_target: bool,
}

impl Default for GbdtParams {
    fn default() -> Self {
        GbdtParams {
            n_trees: 100,
            eta: 0.3,
            max_depth: 6,
            lambda: 1.0,
            alpha: 0.0,
            gamma: 0.0,
            min_child_weight: 1.0,
            subsample: 1.0,
            colsample_bytree: 1.0,
            base_score: None,
            tree_method: TreeMethod::Hist,
            max_bin: 256,
            early_stopping_rounds: None,
            validation_fraction: 0.1,
            threads: 2,
            seed: 0,
            standardize_target: false,
        }
    }
}

impl GbdtParams {
    /// Checks every hyperparameter, naming the first bad one.
    pub fn validate(&self) -> Result<(), FitError> {
        let bad = |param, value: String, expected| {
            Err(FitError::BadParam {
                model: "gbdt",
                param,
                value,
                expected,
            })
        };
        let unit = |v: f64| v > 0.0 && v <= 1.0;
        if self.n_trees == 0 {
            return bad("n_trees", "0".into(), "at least 1");
        }
        if !(self.eta > 0.0 && self.eta.is_finite()) {
            return bad(
                "eta",
                self.eta.to_string(),
                "a finite number > 0 (e.g. 0.3)",
            );
        }
        if self.max_depth == 0 || self.max_depth > 30 {
            return bad("max_depth", self.max_depth.to_string(), "1..=30 (e.g. 6)");
        }
        if !(self.lambda >= 0.0 && self.lambda.is_finite()) {
            return bad("lambda", self.lambda.to_string(), "a finite number >= 0");
        }
        if !(self.alpha >= 0.0 && self.alpha.is_finite()) {
            return bad("alpha", self.alpha.to_string(), "a finite number >= 0");
        }
        if !(self.gamma >= 0.0 && self.gamma.is_finite()) {
            return bad("gamma", self.gamma.to_string(), "a finite number >= 0");
        }
        if !(self.min_child_weight >= 0.0 && self.min_child_weight.is_finite()) {
            return bad(
                "min_child_weight",
                self.min_child_weight.to_string(),
                "a finite number >= 0",
            );
        }
        if !unit(self.subsample) {
            return bad("subsample", self.subsample.to_string(), "in (0, 1]");
        }
        if !unit(self.colsample_bytree) {
            return bad(
                "colsample_bytree",
                self.colsample_bytree.to_string(),
                "in (0, 1]",
            );
        }
        if let Some(b) = self.base_score {
            if !(b as f32).is_finite() {
                return bad(
                    "base_score",
                    b.to_string(),
                    "a finite f32 number, or none for the target mean",
                );
            }
        }
        if !(2..=256).contains(&self.max_bin) {
            return bad("max_bin", self.max_bin.to_string(), "2..=256");
        }
        if self.early_stopping_rounds == Some(0) {
            return bad(
                "early_stopping_rounds",
                "0".into(),
                "at least 1, or none to train every tree",
            );
        }
        if !(self.validation_fraction > 0.0 && self.validation_fraction < 1.0) {
            return bad(
                "validation_fraction",
                self.validation_fraction.to_string(),
                "in (0, 1)",
            );
        }
        if self.threads == 0 {
            return bad("threads", "0".into(), "at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
