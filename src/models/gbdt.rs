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
//! range in place (stably, branch-free), the children's gradient sums are then added over their
//! ranges in row order, and after each tree the training margins are updated from the leaves'
//! ranges instead of walking the tree per row (sampled trees walk it).
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
//! Reference: T. Chen and C. Guestrin, "XGBoost: A Scalable Tree Boosting System", KDD 2016;
//! XGBoost 2.1 `src/tree/param.h`, `split_evaluator.h`, `updater_colmaker.cc`,
//! `updater_prune.cc`.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::{check_xy, split_rows, FitError, Regressor};
use crate::rng::Rng;

/// XGBoost's `kRtEps`: a split must reduce the loss by more than this.
const RT_EPS: f32 = 1e-6;

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

/// A fitted boosted model: `base_score` plus the sum of its trees.
///
/// Serialised as `n_features`, `base_score`, the first node of each tree and the nodes packed
/// into one byte string (12 little-endian bytes each); loading checks every tree
/// ([`GbdtWire`]), so a damaged file cannot make prediction index out of bounds or loop.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "GbdtWire", into = "GbdtWire")]
pub struct Gbdt {
    pub n_features: usize,
    base_score: f32,
    /// Predictions are `target_mean + target_scale · (f32 sum)`; (0, 1) unless fitted with
    /// [`GbdtParams::standardize_target`].
    target_mean: f64,
    target_scale: f64,
    /// Index of each tree's root in `nodes`; tree t ends where tree t+1 starts.
    roots: Vec<u32>,
    nodes: Vec<Node>,
    /// Threads [`Regressor::predict`] may use: the fit's `threads`, 2 for a loaded model
    /// ([`Gbdt::set_threads`] changes it); not saved, and results do not depend on it.
    threads: usize,
}

/// One node, 12 bytes, trees in preorder: the left child of an internal node is the next node.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Node {
    /// The split feature, or [`LEAF`].
    feature: u32,
    /// The threshold of an internal node (`x < value` goes left), the value of a leaf.
    value: f32,
    /// The right child of an internal node, [`LEAF`] for a leaf.
    right: u32,
}

const LEAF: u32 = u32::MAX;
const NODE_BYTES: usize = 12;

/// One node of a fitted tree, as [`Gbdt::tree`] shows it (preorder, left subtree first).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TreeNode {
    /// `x[feature] < threshold` (in `f32`) goes to the next node, otherwise to `right`.
    Split {
        feature: usize,
        threshold: f32,
        right: usize,
    },
    Leaf(f32),
}

/// The serialised form of [`Gbdt`].
#[derive(Serialize, Deserialize)]
struct GbdtWire {
    n_features: usize,
    base_score: f32,
    target_mean: f64,
    target_scale: f64,
    roots: Vec<u32>,
    #[serde(with = "super::cart::packed")]
    nodes: Vec<u8>,
}

impl From<Gbdt> for GbdtWire {
    fn from(m: Gbdt) -> GbdtWire {
        let mut nodes = Vec::with_capacity(m.nodes.len() * NODE_BYTES);
        for n in &m.nodes {
            nodes.extend_from_slice(&n.feature.to_le_bytes());
            nodes.extend_from_slice(&n.value.to_le_bytes());
            nodes.extend_from_slice(&n.right.to_le_bytes());
        }
        GbdtWire {
            n_features: m.n_features,
            base_score: m.base_score,
            target_mean: m.target_mean,
            target_scale: m.target_scale,
            roots: m.roots,
            nodes,
        }
    }
}

impl TryFrom<GbdtWire> for Gbdt {
    type Error = String;

    /// Unpacks the nodes and checks the model with [`Gbdt::check_trees`].
    fn try_from(wire: GbdtWire) -> Result<Gbdt, String> {
        if !wire.nodes.len().is_multiple_of(NODE_BYTES) {
            return Err(format!(
                "gbdt: {} node bytes is not a whole number of nodes",
                wire.nodes.len()
            ));
        }
        let nodes = wire
            .nodes
            .chunks_exact(NODE_BYTES)
            .map(|b| Node {
                feature: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                value: f32::from_le_bytes([b[4], b[5], b[6], b[7]]),
                right: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            })
            .collect();
        let model = Gbdt {
            n_features: wire.n_features,
            base_score: wire.base_score,
            target_mean: wire.target_mean,
            target_scale: wire.target_scale,
            roots: wire.roots,
            nodes,
            threads: 2,
        };
        model.check_trees().map_err(|e| format!("gbdt: {e}"))?;
        Ok(model)
    }
}

impl Gbdt {
    /// Number of trees.
    pub fn n_trees(&self) -> usize {
        self.roots.len()
    }

    /// Total number of nodes over all trees.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Bytes taken by the trees (nodes and tree starts), without the struct itself.
    pub fn tree_bytes(&self) -> usize {
        self.nodes.len() * std::mem::size_of::<Node>() + self.roots.len() * 4
    }

    /// Sets the threads [`Regressor::predict`] may use (at least 1).
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads.max(1);
    }

    /// The initial prediction every tree adds to.
    pub fn base_score(&self) -> f32 {
        self.base_score
    }

    /// Tree `t` in preorder (`right` indices are relative to the tree's first node).
    pub fn tree(&self, t: usize) -> Vec<TreeNode> {
        let (start, end) = self.tree_range(t);
        self.nodes[start..end]
            .iter()
            .map(|n| {
                if n.feature == LEAF {
                    TreeNode::Leaf(n.value)
                } else {
                    TreeNode::Split {
                        feature: n.feature as usize,
                        threshold: n.value,
                        right: n.right as usize - start,
                    }
                }
            })
            .collect()
    }

    fn tree_range(&self, t: usize) -> (usize, usize) {
        let start = self.roots[t] as usize;
        let end = self
            .roots
            .get(t + 1)
            .map_or(self.nodes.len(), |&r| r as usize);
        (start, end)
    }

    /// Checks that a deserialized model is one that [`GbdtParams::fit`] could have built for
    /// `n_features` features.
    pub fn check(&self, n_features: usize) -> Result<(), String> {
        if self.n_features != n_features {
            return Err(format!(
                "the model has {} features, expected {n_features}",
                self.n_features
            ));
        }
        self.check_trees()
    }

    /// At least one tree; tree starts increasing from 0; every tree a preorder tree (left
    /// child next, right child after it and inside the tree) whose internal nodes split on a
    /// feature below `n_features` with a non-NaN threshold and whose leaves are finite.
    fn check_trees(&self) -> Result<(), String> {
        if !self.base_score.is_finite() {
            return Err("the base score is not finite".to_string());
        }
        if !(self.target_mean.is_finite()
            && self.target_scale.is_finite()
            && self.target_scale > 0.0)
        {
            return Err("the target scaling is not finite and positive".to_string());
        }
        if self.roots.first() != Some(&0) {
            return Err("the model has no trees".to_string());
        }
        if self.nodes.len() >= LEAF as usize {
            return Err("too many nodes".to_string());
        }
        for t in 0..self.roots.len() {
            let start = self.roots[t] as usize;
            let end = self
                .roots
                .get(t + 1)
                .map_or(self.nodes.len(), |&r| r as usize);
            if start >= end || end > self.nodes.len() {
                return Err(format!("tree {t} has no nodes"));
            }
            // Preorder walk: after a leaf comes the pending right child of the nearest split.
            let mut pending: Vec<u32> = Vec::new();
            for id in start..end {
                let node = self.nodes[id];
                if node.feature == LEAF {
                    if node.right != LEAF || !node.value.is_finite() {
                        return Err(format!("tree {t}: node {id} is not a valid leaf"));
                    }
                    if id + 1 < end {
                        match pending.pop() {
                            Some(r) if r as usize == id + 1 => {}
                            _ => return Err(format!("tree {t}: node {id} is not preorder")),
                        }
                    } else if !pending.is_empty() {
                        return Err(format!("tree {t} ends inside a subtree"));
                    }
                } else {
                    if node.feature as usize >= self.n_features || node.value.is_nan() {
                        return Err(format!("tree {t}: node {id} is not a valid split"));
                    }
                    if node.right as usize <= id + 1 || node.right as usize >= end {
                        return Err(format!("tree {t}: node {id} has a bad right child"));
                    }
                    pending.push(node.right);
                }
            }
        }
        Ok(())
    }
}

/// Below this many query rows `predict` stays on the calling thread.
const PARALLEL_MIN_ROWS: usize = 2000;

impl Regressor for Gbdt {
    fn name(&self) -> &'static str {
        "gbdt"
    }

    fn predict_row(&self, x: &[f64]) -> f64 {
        let mut sum = self.base_score;
        for &root in &self.roots {
            let mut id = root as usize;
            loop {
                let node = self.nodes[id];
                if node.feature == LEAF {
                    sum += node.value;
                    break;
                }
                id = if (x[node.feature as usize] as f32) < node.value {
                    id + 1
                } else {
                    node.right as usize
                };
            }
        }
        self.unscale(sum)
    }

    /// Tree by tree over blocks of rows (the trees stay in cache), the row blocks split over
    /// `threads` scoped threads when there are many rows; each row's sum runs in the same
    /// order as `predict_row`, so the results are bit-identical to it.
    fn predict(&self, x: &DMatrix<f64>) -> DVector<f64> {
        let n = x.nrows();
        let flat = self.flatten();
        // Whole blocks per thread, contiguous ranges of rows.
        let blocks = n.div_ceil(PREDICT_BLOCK);
        let min_blocks = PARALLEL_MIN_ROWS.div_ceil(PREDICT_BLOCK);
        DVector::from_vec(split_rows(blocks, min_blocks, self.threads, |from, to| {
            let (first, end) = (from * PREDICT_BLOCK, (to * PREDICT_BLOCK).min(n));
            let mut part = vec![0f64; end - first];
            self.predict_rows(&flat, x, first, &mut part);
            part
        }))
    }
}

/// Rows per block in [`Gbdt::predict_rows`].
const PREDICT_BLOCK: usize = 64;

/// The trees as [`Gbdt::predict_rows`] walks them: the nodes with every leaf turned into a
/// node that loops to itself (feature `n_features`, a column of NaN in the block, so the test
/// always fails and `right` is the leaf itself), and each tree's root and depth. A row then
/// takes exactly `depth` steps in every tree, without a branch on the node kind.
struct Flat {
    nodes: Vec<Node>,
    trees: Vec<(u32, u32)>,
}

impl Gbdt {
    /// The prediction from the f32 sum of the base score and the leaves.
    fn unscale(&self, sum: f32) -> f64 {
        if self.target_scale == 1.0 && self.target_mean == 0.0 {
            f64::from(sum)
        } else {
            self.target_mean + self.target_scale * f64::from(sum)
        }
    }

    /// The self-looping copy of the trees for [`Gbdt::predict_rows`].
    fn flatten(&self) -> Flat {
        let pad = self.n_features as u32;
        let mut nodes = self.nodes.clone();
        let mut trees = Vec::with_capacity(self.roots.len());
        // Depth of each node on the way down (preorder: a node's children come after it).
        let mut depth = vec![0u32; nodes.len()];
        for t in 0..self.roots.len() {
            let (start, end) = self.tree_range(t);
            let mut max = 0;
            for id in start..end {
                let node = nodes[id];
                if node.feature == LEAF {
                    nodes[id] = Node {
                        feature: pad,
                        value: node.value,
                        right: id as u32,
                    };
                    max = max.max(depth[id]);
                } else {
                    depth[id + 1] = depth[id] + 1;
                    depth[node.right as usize] = depth[id] + 1;
                }
            }
            trees.push((start as u32, max));
        }
        Flat { nodes, trees }
    }

    /// Predicts rows `from..from + out.len()` of `x` into `out`.
    fn predict_rows(&self, flat: &Flat, x: &DMatrix<f64>, from: usize, out: &mut [f64]) {
        // The model's features only: the leaves test column `n_features`.
        let (n, d) = (x.nrows(), self.n_features);
        let xs = x.as_slice();
        // Column-major block of f32 features, plus the NaN column the leaves test.
        let mut block = vec![f32::NAN; PREDICT_BLOCK * (d + 1)];
        let mut sums = [0f32; PREDICT_BLOCK];
        let mut ids = [0u32; PREDICT_BLOCK];
        for (b, out) in out.chunks_mut(PREDICT_BLOCK).enumerate() {
            let start = from + b * PREDICT_BLOCK;
            let m = out.len();
            for j in 0..d {
                let col = &xs[j * n + start..j * n + start + m];
                for (v, &xv) in block[j * PREDICT_BLOCK..j * PREDICT_BLOCK + m]
                    .iter_mut()
                    .zip(col)
                {
                    *v = xv as f32;
                }
            }
            sums[..m].fill(self.base_score);
            // All rows of the block descend one level at a time: independent loads overlap.
            for &(root, depth) in &flat.trees {
                ids[..m].fill(root);
                for _ in 0..depth {
                    for (r, id) in ids[..m].iter_mut().enumerate() {
                        let node = flat.nodes[*id as usize];
                        let left = block[node.feature as usize * PREDICT_BLOCK + r] < node.value;
                        // A conditional move, not a branch: the direction is unpredictable.
                        *id = std::hint::select_unpredictable(left, *id + 1, node.right);
                    }
                }
                for (sum, &id) in sums[..m].iter_mut().zip(&ids[..m]) {
                    *sum += flat.nodes[id as usize].value;
                }
            }
            for (o, &s) in out.iter_mut().zip(&sums[..m]) {
                *o = self.unscale(s);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fitting

/// Gradient and hessian sums (XGBoost's `GradStats`, in f64).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Stats {
    g: f64,
    h: f64,
}

impl Stats {
    fn add(&mut self, g: f32) {
        self.g += f64::from(g);
        self.h += 1.0;
    }

    fn sub(self, o: Stats) -> Stats {
        Stats {
            g: self.g - o.g,
            h: self.h - o.h,
        }
    }
}

/// The regularization terms, as XGBoost holds them (f32 parameters promoted to f64).
#[derive(Debug, Clone, Copy)]
struct Reg {
    lambda: f64,
    alpha: f64,
    min_child_weight: f64,
}

impl Reg {
    fn threshold_l1(&self, g: f64) -> f64 {
        if g > self.alpha {
            g - self.alpha
        } else if g < -self.alpha {
            g + self.alpha
        } else {
            0.0
        }
    }

    /// `CalcWeight`: −T(G)/(H+λ), rounded to f32.
    fn weight(&self, s: Stats) -> f32 {
        if s.h <= 0.0 {
            return 0.0;
        }
        (-self.threshold_l1(s.g) / (s.h + self.lambda)) as f32
    }

    /// `CalcGain`: T(G)²/(H+λ), rounded to f32.
    fn score(&self, s: Stats) -> f32 {
        if s.h <= 0.0 {
            return 0.0;
        }
        let t = self.threshold_l1(s.g);
        (t * t / (s.h + self.lambda)) as f32
    }
}

/// The best split found for a node (XGBoost's `SplitEntry`).
#[derive(Debug, Clone, Copy)]
struct Split {
    loss_chg: f32,
    feature: u32,
    threshold: f32,
    /// `Hist`: the lowest bin that goes right.
    bin: u32,
}

impl Split {
    const NONE: Split = Split {
        loss_chg: 0.0,
        feature: 0,
        threshold: 0.0,
        bin: 0,
    };

    /// XGBoost's `NeedReplace`: a strictly better loss change wins; on a tie the lower
    /// feature index.
    fn update(&mut self, c: Split) {
        let replace = if c.loss_chg.is_infinite() {
            false
        } else if self.feature <= c.feature {
            c.loss_chg > self.loss_chg
        } else {
            // XGBoost's `!(loss_chg > new)`: also true when either is NaN.
            self.loss_chg.partial_cmp(&c.loss_chg) != Some(std::cmp::Ordering::Greater)
        };
        if replace {
            *self = c;
        }
    }
}

/// Per-feature data for the split finder, built once per fit.
enum Finder {
    /// Per feature, `(value, row)` sorted by value.
    Exact(Vec<Vec<(f32, u32)>>),
    Hist(Bins),
}

/// Quantile bins: `cuts[f]` ascending; a value's bin is the number of cuts `<= value`, so bins
/// `< b` are exactly the values `< cuts[f][b-1]`.
struct Bins {
    cuts: Vec<Vec<f32>>,
    /// Bin indices, row-major (`bins[row·d + f]`): building a histogram reads each row's
    /// gradient once and its bins from one cache line.
    bins: Vec<u8>,
    d: usize,
    /// Offset of feature f's bins in a node histogram.
    offsets: Vec<usize>,
}

/// XGBoost's split value between adjacent values `a < b`: the f32 midpoint, or `b` if that
/// rounds to `a`.
fn midpoint(a: f32, b: f32) -> f32 {
    let m = (a + b) * 0.5;
    if m == a {
        b
    } else {
        m
    }
}

impl Bins {
    fn new(xf: &[f32], n: usize, d: usize, max_bin: usize) -> Bins {
        let mut cuts = Vec::with_capacity(d);
        let mut bins = vec![0u8; n * d];
        let mut offsets = Vec::with_capacity(d + 1);
        offsets.push(0);
        for f in 0..d {
            let col = &xf[f * n..(f + 1) * n];
            let mut sorted = col.to_vec();
            sorted.sort_unstable_by(f32::total_cmp);
            let mut distinct = sorted.clone();
            distinct.dedup();
            let c: Vec<f32> = if distinct.len() <= max_bin {
                distinct.windows(2).map(|w| midpoint(w[0], w[1])).collect()
            } else {
                // Cut below the value at each rank k·n/max_bin (weighted quantiles: every row
                // counts once), at the midpoint from the next smaller distinct value.
                let mut c: Vec<f32> = Vec::with_capacity(max_bin - 1);
                for k in 1..max_bin {
                    let v = sorted[k * n / max_bin];
                    let p = distinct.partition_point(|&u| u < v);
                    if p == 0 {
                        continue;
                    }
                    let cut = midpoint(distinct[p - 1], v);
                    if c.last().is_none_or(|&last| cut > last) {
                        c.push(cut);
                    }
                }
                c
            };
            for (i, &v) in col.iter().enumerate() {
                bins[i * d + f] = c.partition_point(|&cut| cut <= v) as u8;
            }
            offsets.push(offsets[f] + c.len() + 1);
            cuts.push(c);
        }
        Bins {
            cuts,
            bins,
            d,
            offsets,
        }
    }

    fn total_bins(&self) -> usize {
        self.offsets[self.offsets.len() - 1]
    }
}

/// A tree under construction, in XGBoost's node order (children allocated in pairs).
struct BuildNode {
    stats: Stats,
    weight: f32,
    score: f32,
    split: Option<Split>,
    loss_chg: f32,
    children: (usize, usize),
    parent: usize,
    leaf: f32,
}

/// One grown tree and where the training rows ended.
struct Grown {
    /// Preorder, child indices relative to the tree.
    tree: Vec<Node>,
    /// The rows grown on, grouped by leaf.
    rows: Vec<u32>,
    /// `(start, end, value)`: `rows[start..end]` reach a leaf of that value.
    leaves: Vec<(usize, usize, f32)>,
}

/// Everything one boosting round needs besides the gradients.
struct Grower<'a> {
    reg: Reg,
    eta: f32,
    gamma: f32,
    max_depth: usize,
    threads: usize,
    n: usize,
    xf: &'a [f32],
    finder: &'a Finder,
}

/// Below this much work (rows × features) a level is searched on one thread.
const PARALLEL_MIN_WORK: usize = 1 << 16;

impl Grower<'_> {
    /// Grows one tree on `rows` (ascending) with gradients `grad`, considering `features`
    /// (ascending). Returns the tree in preorder and, for every leaf, the rows that reach it
    /// (the permuted `rows` and `(start, end, leaf value)` ranges of it).
    fn grow(&self, grad: &[f32], rows: Vec<u32>, features: &[usize]) -> Grown {
        let mut idx = rows;
        // Rows of each node: `idx[start..end]`, ascending; a split partitions its range in
        // place (left rows first), so no node allocates.
        let mut ranges = vec![(0usize, idx.len())];
        let mut nodes = vec![self.new_node(row_stats(&idx, grad), 0)];
        let mut expand = vec![0usize];
        let mut scratch: Vec<u32> = Vec::new();
        // Hist: the histogram of each node in `expand` that the next level subtracts from.
        let mut hists: Vec<Vec<Stats>> = Vec::new();
        for _depth in 0..self.max_depth {
            let bests = {
                let node_rows: Vec<&[u32]> = ranges.iter().map(|&(a, b)| &idx[a..b]).collect();
                match self.finder {
                    Finder::Exact(sorted) => {
                        self.find_exact(sorted, grad, &expand, &nodes, &node_rows, features)
                    }
                    Finder::Hist(bins) => {
                        let (b, h) = self
                            .find_hist(bins, grad, &expand, &nodes, &node_rows, features, hists);
                        hists = h;
                        b
                    }
                }
            };
            let mut next = Vec::new();
            let mut next_hists = Vec::new();
            let old_hists = std::mem::take(&mut hists);
            let mut old_hists = old_hists.into_iter();
            for (k, &nid) in expand.iter().enumerate() {
                let hist = old_hists.next();
                let best = bests[k];
                if best.loss_chg > RT_EPS {
                    let (a, b) = ranges[nid];
                    let (mid, left, right) =
                        self.partition(&mut idx[a..b], &mut scratch, grad, best);
                    let (l, r) = (nodes.len(), nodes.len() + 1);
                    nodes.push(self.new_node(left, nid));
                    nodes.push(self.new_node(right, nid));
                    ranges.push((a, a + mid));
                    ranges.push((a + mid, b));
                    nodes[nid].split = Some(best);
                    nodes[nid].loss_chg = best.loss_chg;
                    nodes[nid].children = (l, r);
                    next.push(l);
                    next.push(r);
                    if let Some(h) = hist {
                        next_hists.push(h);
                    }
                } else {
                    nodes[nid].leaf = nodes[nid].weight * self.eta;
                    nodes[nid].loss_chg = best.loss_chg;
                }
            }
            hists = next_hists;
            expand = next;
            if expand.is_empty() {
                break;
            }
        }
        for &nid in &expand {
            nodes[nid].leaf = nodes[nid].weight * self.eta;
        }
        self.prune(&mut nodes);
        // Every node that ended growth as a leaf; after pruning its rows get the value of its
        // highest pruned ancestor.
        let mut leaves = Vec::new();
        for (id, node) in nodes.iter().enumerate() {
            if node.children != (0, 0) {
                continue; // split while growing
            }
            let mut value = node.leaf;
            let mut a = id;
            while a != 0 {
                a = nodes[a].parent;
                if nodes[a].split.is_none() {
                    value = nodes[a].leaf;
                }
            }
            let (start, end) = ranges[id];
            leaves.push((start, end, value));
        }
        Grown {
            tree: to_preorder(&nodes),
            rows: idx,
            leaves,
        }
    }

    fn new_node(&self, stats: Stats, parent: usize) -> BuildNode {
        BuildNode {
            stats,
            weight: self.reg.weight(stats),
            score: self.reg.score(stats),
            split: None,
            loss_chg: 0.0,
            children: (0, 0),
            parent,
            leaf: 0.0,
        }
    }

    /// Partitions `rows` (ascending) in place, stably: the rows going left first, then those
    /// going right. Returns the number going left and the gradient sums of both sides (each
    /// summed in ascending row order).
    fn partition(
        &self,
        rows: &mut [u32],
        scratch: &mut Vec<u32>,
        grad: &[f32],
        split: Split,
    ) -> (usize, Stats, Stats) {
        let f = split.feature as usize;
        match self.finder {
            Finder::Hist(bins) => {
                let (bin, d, b) = (split.bin, bins.d, &bins.bins[..]);
                partition_rows(rows, scratch, grad, |r| {
                    u32::from(b[r as usize * d + f]) < bin
                })
            }
            Finder::Exact(_) => {
                let col = &self.xf[f * self.n..(f + 1) * self.n];
                partition_rows(rows, scratch, grad, |r| col[r as usize] < split.threshold)
            }
        }
    }

    /// XGBoost's `prune` updater: a split whose children are both leaves and whose loss change
    /// is below `gamma` becomes a leaf, repeatedly, from the leaves up.
    fn prune(&self, nodes: &mut [BuildNode]) {
        if self.gamma <= 0.0 {
            return; // every kept split has loss change > kRtEps > 0
        }
        let is_leaf = |n: &BuildNode| n.split.is_none();
        for id in 0..nodes.len() {
            if !is_leaf(&nodes[id]) || id == 0 {
                continue;
            }
            let mut nid = id;
            while nid != 0 {
                let p = nodes[nid].parent;
                let (l, r) = nodes[p].children;
                if nodes[p].split.is_none() {
                    break; // already pruned through a sibling
                }
                if is_leaf(&nodes[l]) && is_leaf(&nodes[r]) && nodes[p].loss_chg < self.gamma {
                    nodes[p].split = None;
                    nodes[p].leaf = nodes[p].weight * self.eta;
                    nid = p;
                } else {
                    break;
                }
            }
        }
    }

    /// Splits `features` into at most `threads` contiguous chunks when the work is large.
    fn chunks<'f>(&self, features: &'f [usize], work: usize) -> Vec<&'f [usize]> {
        let t = if work >= PARALLEL_MIN_WORK {
            self.threads.min(features.len()).max(1)
        } else {
            1
        };
        let size = features.len().div_ceil(t);
        features.chunks(size.max(1)).collect()
    }

    /// Exact search for every node in `expand` (XGBoost `ColMaker::EnumerateSplit`, dense
    /// backward enumeration).
    fn find_exact(
        &self,
        sorted: &[Vec<(f32, u32)>],
        grad: &[f32],
        expand: &[usize],
        nodes: &[BuildNode],
        node_rows: &[&[u32]],
        features: &[usize],
    ) -> Vec<Split> {
        // Row → index in `expand`, or u32::MAX for rows of finished nodes or not sampled.
        let mut slot = vec![u32::MAX; self.n];
        let mut active = 0;
        for (k, &nid) in expand.iter().enumerate() {
            for &r in node_rows[nid] {
                slot[r as usize] = k as u32;
            }
            active += node_rows[nid].len();
        }
        let search = |feats: &[usize]| -> Vec<Split> {
            let mut best = vec![Split::NONE; expand.len()];
            let mut acc = vec![(Stats::default(), 0f32); expand.len()];
            for &f in feats {
                acc.iter_mut().for_each(|a| *a = (Stats::default(), 0.0));
                for &(v, r) in sorted[f].iter().rev() {
                    let k = slot[r as usize];
                    if k == u32::MAX {
                        continue;
                    }
                    let k = k as usize;
                    let (right, last) = &mut acc[k];
                    if right.h != 0.0 && v != *last && right.h >= self.reg.min_child_weight {
                        let node = &nodes[expand[k]];
                        let left = node.stats.sub(*right);
                        if left.h >= self.reg.min_child_weight {
                            let gain = self.reg.score(left) + self.reg.score(*right);
                            best[k].update(Split {
                                loss_chg: gain - node.score,
                                feature: f as u32,
                                threshold: midpoint(v, *last),
                                bin: 0,
                            });
                        }
                    }
                    right.add(grad[r as usize]);
                    *last = v;
                }
            }
            best
        };
        self.run_chunks(features, active * features.len(), expand.len(), search)
    }

    /// Runs `search` over feature chunks (threads when large) and merges the per-node bests.
    fn run_chunks<F>(
        &self,
        features: &[usize],
        work: usize,
        n_nodes: usize,
        search: F,
    ) -> Vec<Split>
    where
        F: Fn(&[usize]) -> Vec<Split> + Sync,
    {
        let chunks = self.chunks(features, work);
        let parts: Vec<Vec<Split>> = if chunks.len() == 1 {
            vec![search(chunks[0])]
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = chunks[1..]
                    .iter()
                    .map(|c| {
                        let search = &search;
                        s.spawn(move || search(c))
                    })
                    .collect();
                let mut parts = vec![search(chunks[0])];
                for h in handles {
                    match h.join() {
                        Ok(p) => parts.push(p),
                        Err(panic) => std::panic::resume_unwind(panic),
                    }
                }
                parts
            })
        };
        let mut best = vec![Split::NONE; n_nodes];
        for part in parts {
            for (b, c) in best.iter_mut().zip(part) {
                b.update(c);
            }
        }
        best
    }

    /// Histogram search for every node in `expand`. `parent_hists[i]` is the histogram of the
    /// parent of the pair `expand[2i], expand[2i+1]` (empty at the root). Returns the bests
    /// and the histograms of the nodes in `expand`.
    #[allow(clippy::too_many_arguments)]
    fn find_hist(
        &self,
        bins: &Bins,
        grad: &[f32],
        expand: &[usize],
        nodes: &[BuildNode],
        node_rows: &[&[u32]],
        features: &[usize],
        parent_hists: Vec<Vec<Stats>>,
    ) -> (Vec<Split>, Vec<Vec<Stats>>) {
        let total = bins.total_bins();
        // For each node: its histogram buffer and whether it must be built from rows (else it
        // is the parent's histogram, from which the built sibling is subtracted).
        let mut hists: Vec<Vec<Stats>> = Vec::with_capacity(expand.len());
        let mut build: Vec<bool> = Vec::with_capacity(expand.len());
        let mut sibling: Vec<usize> = Vec::with_capacity(expand.len());
        let mut work = 0;
        if parent_hists.is_empty() {
            for &nid in expand {
                hists.push(vec![Stats::default(); total]);
                build.push(true);
                sibling.push(usize::MAX);
                work += node_rows[nid].len();
            }
        } else {
            for (i, parent) in parent_hists.into_iter().enumerate() {
                let (l, r) = (expand[2 * i], expand[2 * i + 1]);
                let small_left = node_rows[l].len() <= node_rows[r].len();
                work += node_rows[l].len().min(node_rows[r].len());
                let fresh = vec![Stats::default(); total];
                if small_left {
                    hists.push(fresh);
                    hists.push(parent);
                } else {
                    hists.push(parent);
                    hists.push(fresh);
                }
                build.push(small_left);
                build.push(!small_left);
                sibling.push(2 * i + 1);
                sibling.push(2 * i);
            }
        }
        let chunks = self.chunks(features, work * features.len());
        // Each chunk owns the bins of a contiguous feature range in every histogram.
        let mut ranges: Vec<(usize, usize)> = Vec::with_capacity(chunks.len());
        for (i, c) in chunks.iter().enumerate() {
            let lo = if i == 0 { 0 } else { bins.offsets[c[0]] };
            let hi = if i + 1 == chunks.len() {
                total
            } else {
                bins.offsets[chunks[i + 1][0]]
            };
            ranges.push((lo, hi));
        }
        let mut slices: Vec<Vec<&mut [Stats]>> = (0..chunks.len()).map(|_| Vec::new()).collect();
        for h in hists.iter_mut() {
            let mut rest: &mut [Stats] = h;
            let mut at = 0;
            for (i, &(lo, hi)) in ranges.iter().enumerate() {
                let (mine, tail) = std::mem::take(&mut rest).split_at_mut(hi - at);
                debug_assert_eq!(lo, at);
                slices[i].push(mine);
                rest = tail;
                at = hi;
            }
        }
        let run = |feats: &[usize], base: usize, mut hs: Vec<&mut [Stats]>| -> Vec<Split> {
            // Build the fresh histograms, then subtract them from their siblings.
            for (k, &nid) in expand.iter().enumerate() {
                if !build[k] {
                    continue;
                }
                let h = &mut hs[k];
                let offs: Vec<usize> = feats.iter().map(|&f| bins.offsets[f] - base).collect();
                for &r in node_rows[nid] {
                    let g = f64::from(grad[r as usize]);
                    let row = &bins.bins[r as usize * bins.d..(r as usize + 1) * bins.d];
                    for (&f, &off) in feats.iter().zip(&offs) {
                        let s = &mut h[off + row[f] as usize];
                        s.g += g;
                        s.h += 1.0;
                    }
                }
            }
            for k in 0..expand.len() {
                if build[k] || sibling[k] == usize::MAX {
                    continue;
                }
                let (a, b) = if k < sibling[k] {
                    let (x, y) = hs.split_at_mut(sibling[k]);
                    (&mut x[k], &y[0])
                } else {
                    let (x, y) = hs.split_at_mut(k);
                    (&mut y[0], &x[sibling[k]])
                };
                for &f in feats {
                    let lo = bins.offsets[f] - base;
                    let hi = bins.offsets[f + 1] - base;
                    for (p, c) in a[lo..hi].iter_mut().zip(&b[lo..hi]) {
                        *p = p.sub(*c);
                    }
                }
            }
            let mut best = vec![Split::NONE; expand.len()];
            for (k, &nid) in expand.iter().enumerate() {
                let node = &nodes[nid];
                let h = &hs[k];
                for &f in feats {
                    let lo = bins.offsets[f] - base;
                    let hi = bins.offsets[f + 1] - base;
                    // Upward, like XGBoost hist's forward enumeration: the split after the
                    // highest non-empty bin of the left side, at that bin's upper cut.
                    let mut left = Stats::default();
                    for b in 0..hi - lo - 1 {
                        let s = h[lo + b];
                        if s.h == 0.0 {
                            continue;
                        }
                        left.g += s.g;
                        left.h += s.h;
                        if left.h >= self.reg.min_child_weight {
                            let right = node.stats.sub(left);
                            if right.h >= self.reg.min_child_weight {
                                let gain = self.reg.score(left) + self.reg.score(right);
                                best[k].update(Split {
                                    loss_chg: gain - node.score,
                                    feature: f as u32,
                                    threshold: bins.cuts[f][b],
                                    bin: b as u32 + 1,
                                });
                            }
                        }
                    }
                }
            }
            best
        };
        let parts: Vec<Vec<Split>> = if chunks.len() == 1 {
            let hs = slices.pop().unwrap_or_default();
            vec![run(chunks[0], 0, hs)]
        } else {
            std::thread::scope(|s| {
                let mut handles = Vec::new();
                let mut first = None;
                for (i, hs) in slices.into_iter().enumerate() {
                    let (feats, base) = (chunks[i], ranges[i].0);
                    if i == 0 {
                        first = Some(hs);
                    } else {
                        let run = &run;
                        handles.push(s.spawn(move || run(feats, base, hs)));
                    }
                }
                let mut parts = vec![run(chunks[0], 0, first.unwrap_or_default())];
                for h in handles {
                    match h.join() {
                        Ok(p) => parts.push(p),
                        Err(panic) => std::panic::resume_unwind(panic),
                    }
                }
                parts
            })
        };
        let mut best = vec![Split::NONE; expand.len()];
        for part in parts {
            for (b, c) in best.iter_mut().zip(part) {
                b.update(c);
            }
        }
        (best, hists)
    }
}

/// [`Grower::partition`] for the test `goes_left`. Branch-free (the side is unpredictable):
/// every row is written to both places and only its side's count advances. The sides' sums
/// are then taken over their (ascending) rows, as [`Stats::add`] would.
fn partition_rows(
    rows: &mut [u32],
    scratch: &mut Vec<u32>,
    grad: &[f32],
    goes_left: impl Fn(u32) -> bool,
) -> (usize, Stats, Stats) {
    let (mut nl, mut nr) = (0usize, 0usize);
    scratch.clear();
    scratch.resize(rows.len(), 0);
    for i in 0..rows.len() {
        let r = rows[i];
        let left = goes_left(r);
        rows[nl] = r;
        scratch[nr] = r;
        nl += usize::from(left);
        nr += usize::from(!left);
    }
    rows[nl..].copy_from_slice(&scratch[..nr]);
    let (l, r) = rows.split_at(nl);
    (nl, row_stats(l, grad), row_stats(r, grad))
}

/// The gradient sums of `rows`, added in their order.
fn row_stats(rows: &[u32], grad: &[f32]) -> Stats {
    // The hessian sum is the count (h = 1 per row, exact in f64).
    let mut g = 0f64;
    for &r in rows {
        g += f64::from(grad[r as usize]);
    }
    Stats {
        g,
        h: rows.len() as f64,
    }
}

/// Converts a grown tree (XGBoost node order) to packed preorder nodes.
fn to_preorder(nodes: &[BuildNode]) -> Vec<Node> {
    let mut out = Vec::new();
    // (build id, index in `out` of the split whose right child this is)
    let mut stack = vec![(0usize, usize::MAX)];
    while let Some((id, parent_slot)) = stack.pop() {
        let at = out.len();
        if parent_slot != usize::MAX {
            out[parent_slot] = Node {
                right: at as u32,
                ..out[parent_slot]
            };
        }
        let n = &nodes[id];
        match n.split {
            Some(s) => {
                out.push(Node {
                    feature: s.feature,
                    value: s.threshold,
                    right: 0,
                });
                // The right child is placed after the whole left subtree.
                stack.push((n.children.1, at));
                stack.push((n.children.0, usize::MAX));
            }
            None => out.push(Node {
                feature: LEAF,
                value: n.leaf,
                right: LEAF,
            }),
        }
    }
    out
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

    pub fn fit(&self, x: &DMatrix<f64>, y: &DVector<f64>) -> Result<Gbdt, FitError> {
        check_xy("gbdt", x, y, 1)?;
        self.validate()?;
        if self.standardize_target {
            // Mean and std of the rows the trees are fitted on (not the early-stopping tail).
            let n_fit = match self.early_stopping_rounds {
                None => y.len(),
                Some(_) => y.len() - (y.len() as f64 * self.validation_fraction).ceil() as usize,
            }
            .max(1);
            let fit_y = y.rows(0, n_fit);
            let mean = fit_y.mean();
            let std = fit_y.variance().sqrt();
            let scale = if std > 0.0 && std.is_finite() {
                std
            } else {
                1.0
            };
            let y_std = y.map(|v| (v - mean) / scale);
            let mut model = GbdtParams {
                standardize_target: false,
                ..self.clone()
            }
            .fit(x, &y_std)?;
            model.target_mean = mean;
            model.target_scale = scale;
            return Ok(model);
        }
        let (n_all, d) = x.shape();
        if d >= LEAF as usize {
            return Err(FitError::Shape {
                model: "gbdt",
                detail: format!("{d} features is too many"),
            });
        }
        // Hold out the time-ordered tail for early stopping.
        let n = match self.early_stopping_rounds {
            None => n_all,
            Some(_) => {
                let held = (n_all as f64 * self.validation_fraction).ceil() as usize;
                if held == 0 || held >= n_all {
                    return Err(FitError::Shape {
                        model: "gbdt",
                        detail: format!(
                            "early stopping holds out {held} of {n_all} rows; needs at least \
                             one row on each side (more rows or another validation_fraction)"
                        ),
                    });
                }
                n_all - held
            }
        };
        let to_f32 = |v: f64, what: &str, i: usize| -> Result<f32, FitError> {
            let f = v as f32;
            if f.is_finite() {
                Ok(f)
            } else {
                Err(FitError::Range {
                    model: "gbdt",
                    detail: format!(
                        "{what} {v} in row {i} does not fit in f32 (|v| <= 3.4e38); rescale it"
                    ),
                })
            }
        };
        // Column-major f32 copies (XGBoost holds features as f32).
        let mut xf = Vec::with_capacity(n_all * d);
        for j in 0..d {
            for i in 0..n_all {
                xf.push(to_f32(x[(i, j)], "feature value", i)?);
            }
        }
        let yf: Vec<f32> = (0..n_all)
            .map(|i| to_f32(y[i], "target", i))
            .collect::<Result<_, _>>()?;
        let base = match self.base_score {
            Some(b) => b as f32,
            None => (y.rows(0, n).sum() / n as f64) as f32,
        };
        let train_x: Vec<f32>;
        let xf_train: &[f32] = if n == n_all {
            &xf
        } else {
            train_x = (0..d)
                .flat_map(|j| xf[j * n_all..j * n_all + n].iter().copied())
                .collect();
            &train_x
        };
        let finder = match self.tree_method {
            TreeMethod::Exact => Finder::Exact(
                (0..d)
                    .map(|f| {
                        let mut col: Vec<(f32, u32)> = xf_train[f * n..(f + 1) * n]
                            .iter()
                            .enumerate()
                            .map(|(i, &v)| (v, i as u32))
                            .collect();
                        col.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                        col
                    })
                    .collect(),
            ),
            TreeMethod::Hist => Finder::Hist(Bins::new(xf_train, n, d, self.max_bin)),
        };
        let grower = Grower {
            reg: Reg {
                lambda: f64::from(self.lambda as f32),
                alpha: f64::from(self.alpha as f32),
                min_child_weight: f64::from(self.min_child_weight as f32),
            },
            eta: self.eta as f32,
            gamma: self.gamma as f32,
            max_depth: self.max_depth,
            threads: self.threads,
            n,
            xf: xf_train,
            finder: &finder,
        };
        let mut model = Gbdt {
            n_features: d,
            base_score: base,
            target_mean: 0.0,
            target_scale: 1.0,
            roots: Vec::new(),
            nodes: Vec::new(),
            threads: self.threads,
        };
        let mut margin = vec![base; n];
        let mut grad = vec![0f32; n];
        let mut val_margin = vec![base; n_all - n];
        let mut best: Option<(f64, usize, usize)> = None; // (rmse, trees, nodes)
        let n_cols = ((self.colsample_bytree * d as f64) as usize).clamp(1, d);
        for t in 0..self.n_trees {
            for ((g, &m), &yv) in grad.iter_mut().zip(&margin).zip(&yf[..n]) {
                *g = m - yv;
            }
            let mut rng = Rng::derive(self.seed, t as u64);
            let rows: Vec<u32> = if self.subsample < 1.0 {
                (0..n as u32)
                    .filter(|_| rng.next_f64() < self.subsample)
                    .collect()
            } else {
                (0..n as u32).collect()
            };
            let features: Vec<usize> = if n_cols < d {
                let mut all: Vec<usize> = (0..d).collect();
                for i in 0..n_cols {
                    let j = i + rng.below(d - i);
                    all.swap(i, j);
                }
                let mut picked = all[..n_cols].to_vec();
                picked.sort_unstable();
                picked
            } else {
                (0..d).collect()
            };
            let Grown { tree, rows, leaves } = grower.grow(&grad, rows, &features);
            if rows.len() == n {
                // Every row's leaf is known from the partition.
                for (start, end, value) in leaves {
                    for &r in &rows[start..end] {
                        margin[r as usize] += value;
                    }
                }
            } else {
                for (i, m) in margin.iter_mut().enumerate() {
                    *m += leaf_value(&tree, |f| xf[f * n_all + i]);
                }
            }
            let root = model.nodes.len();
            model.roots.push(root as u32);
            model.nodes.extend(tree.iter().map(|nd| Node {
                right: if nd.feature == LEAF {
                    LEAF
                } else {
                    nd.right + root as u32
                },
                ..*nd
            }));
            if let Some(rounds) = self.early_stopping_rounds {
                let mut sq = 0.0;
                for (k, m) in val_margin.iter_mut().enumerate() {
                    let i = n + k;
                    *m += leaf_value(&tree, |f| xf[f * n_all + i]);
                    let e = f64::from(*m) - y[i];
                    sq += e * e;
                }
                let rmse = (sq / (n_all - n) as f64).sqrt();
                if best.is_none_or(|(b, _, _)| rmse < b) {
                    best = Some((rmse, model.roots.len(), model.nodes.len()));
                } else if best.is_some_and(|(_, trees, _)| t + 1 - trees >= rounds) {
                    break;
                }
            }
        }
        if let Some((_, trees, nodes)) = best {
            model.roots.truncate(trees);
            model.nodes.truncate(nodes);
        }
        Ok(model)
    }
}

/// The leaf value a row reaches in one preorder tree; `value(f)` is the row's f32 feature f.
fn leaf_value(tree: &[Node], value: impl Fn(usize) -> f32) -> f32 {
    let mut id = 0;
    loop {
        let node = tree[id];
        if node.feature == LEAF {
            return node.value;
        }
        id = if value(node.feature as usize) < node.value {
            id + 1
        } else {
            node.right as usize
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, d: usize, seed: u64) -> (DMatrix<f64>, DVector<f64>) {
        let mut rng = Rng::new(seed);
        let x = DMatrix::from_fn(n, d, |_, _| rng.next_f64() * 2.0 - 1.0);
        let y = DVector::from_fn(n, |i, _| {
            (3.0 * x[(i, 0)]).sin() + x[(i, 1)] * x[(i, d - 1)] + 0.3 * rng.next_f64()
        });
        (x, y)
    }

    /// Backs "gbdt fits log returns of ~1e-3 through a standardised target": the fit equals
    /// the unit-scale fit mapped back, and survives a serde round trip.
    #[test]
    fn a_standardised_target_learns_tiny_returns() {
        let (x, y_unit) = data(400, 3, 9);
        let y = y_unit.map(|v| 2e-4 + 1e-3 * v);
        let mut row = vec![0.0; 3];
        let spread = |m: &Gbdt, row: &mut Vec<f64>| {
            let p: Vec<f64> = (0..x.nrows())
                .map(|i| {
                    for (j, v) in row.iter_mut().enumerate() {
                        *v = x[(i, j)];
                    }
                    m.predict_row(row)
                })
                .collect();
            let mean = p.iter().sum::<f64>() / p.len() as f64;
            (p.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / p.len() as f64).sqrt()
        };
        let scaled = GbdtParams {
            standardize_target: true,
            ..GbdtParams::default()
        };
        let m = scaled.fit(&x, &y).expect("fit");
        let (mean, std) = (y.mean(), y.variance().sqrt());
        let unit = GbdtParams::default()
            .fit(&x, &y.map(|v| (v - mean) / std))
            .expect("fit");
        assert_eq!(m.n_trees(), unit.n_trees());
        let want = unit.predict(&x).map(|v| mean + std * v);
        assert_eq!(m.predict(&x), want);
        assert!(spread(&m, &mut row) > 3e-4);
        let back: Gbdt =
            postcard::from_bytes(&postcard::to_allocvec(&m).expect("encode")).expect("decode");
        assert_eq!(back.predict(&x), want);
        let mut bad = m.clone();
        bad.target_scale = 0.0;
        assert!(bad.check(3).is_err());
    }

    #[test]
    fn one_split_by_hand() {
        // y = 0,0,1,1, base 0.5: g = ±0.5, root G = 0. The split between x = 2 and 3 has loss
        // change (1)²/(2+1) + (−1)²/(2+1) − 0 = 2/3; leaves −eta·1/3 and +eta·1/3.
        let x = DMatrix::from_column_slice(4, 1, &[1.0, 2.0, 3.0, 4.0]);
        let y = DVector::from_vec(vec![0.0, 0.0, 1.0, 1.0]);
        for method in [TreeMethod::Exact, TreeMethod::Hist] {
            let m = GbdtParams {
                n_trees: 1,
                tree_method: method,
                ..GbdtParams::default()
            }
            .fit(&x, &y)
            .expect("fit");
            assert_eq!(m.base_score(), 0.5);
            let w = (-(1.0f64 / 3.0)) as f32 * 0.3f32;
            assert_eq!(
                m.tree(0),
                vec![
                    TreeNode::Split {
                        feature: 0,
                        threshold: 2.5,
                        right: 2
                    },
                    TreeNode::Leaf(w),
                    TreeNode::Leaf(-w),
                ]
            );
            assert_eq!(m.predict_row(&[0.0]), f64::from(0.5f32 + w));
            assert_eq!(m.predict_row(&[2.5]), f64::from(0.5f32 - w));
        }
    }

    #[test]
    fn gamma_prunes_bottom_up_and_min_child_weight_limits_leaves() {
        let (x, y) = data(300, 3, 1);
        let all = GbdtParams {
            n_trees: 3,
            gamma: 1e9,
            ..GbdtParams::default()
        }
        .fit(&x, &y)
        .expect("fit");
        // Every split's loss change is below gamma: each tree is pruned to its root leaf.
        assert_eq!(all.node_count(), 3);
        let heavy = GbdtParams {
            n_trees: 1,
            min_child_weight: 100.0,
            ..GbdtParams::default()
        }
        .fit(&x, &y)
        .expect("fit");
        // Leaves hold at least 100 of 300 rows: at most 3 leaves.
        let leaves = heavy
            .tree(0)
            .iter()
            .filter(|n| matches!(n, TreeNode::Leaf(_)))
            .count();
        assert!((2..=3).contains(&leaves), "{leaves}");
    }

    #[test]
    fn predict_matches_predict_row_and_threads_do_not_change_the_model() {
        let (x, y) = data(6000, 14, 2);
        let fit = |threads| {
            GbdtParams {
                n_trees: 10,
                threads,
                ..GbdtParams::default()
            }
            .fit(&x, &y)
            .expect("fit")
        };
        let (a, b) = (fit(1), fit(2));
        let pa = a.predict(&x);
        assert_eq!(pa, b.predict(&x));
        // Uneven row ranges over three threads, and a query with an extra column.
        let mut c = a.clone();
        c.set_threads(3);
        assert_eq!(pa, c.predict(&x));
        let wide = x.clone().insert_column(14, 5.0);
        assert_eq!(pa, c.predict(&wide));
        assert_eq!(a.node_count(), b.node_count());
        for i in (0..6000).step_by(97) {
            let row: Vec<f64> = (0..14).map(|j| x[(i, j)]).collect();
            assert_eq!(a.predict_row(&row).to_bits(), pa[i].to_bits());
        }
        // Boosting fits the training data better than the mean.
        let mean = y.mean();
        let base = y.iter().map(|v| (v - mean).powi(2)).sum::<f64>();
        assert!((pa - &y).norm_squared() < 0.2 * base);
    }

    #[test]
    fn sampling_is_seeded() {
        let (x, y) = data(400, 6, 3);
        let fit = |seed| {
            GbdtParams {
                n_trees: 5,
                subsample: 0.7,
                colsample_bytree: 0.5,
                seed,
                ..GbdtParams::default()
            }
            .fit(&x, &y)
            .expect("fit")
            .predict(&x)
        };
        assert_eq!(fit(1), fit(1));
        assert_ne!(fit(1), fit(2));
    }

    #[test]
    fn early_stopping_keeps_the_best_prefix() {
        // Pure noise: validation RMSE is best after very few trees.
        let mut rng = Rng::new(5);
        let x = DMatrix::from_fn(500, 3, |_, _| rng.next_f64());
        let y = DVector::from_fn(500, |_, _| rng.next_f64());
        let params = GbdtParams {
            early_stopping_rounds: Some(5),
            validation_fraction: 0.2,
            ..GbdtParams::default()
        };
        let m = params.fit(&x, &y).expect("fit");
        assert!(m.n_trees() < 20, "{}", m.n_trees());
        // The kept trees are exactly the first trees of an unstopped fit on the same 400 rows.
        let head = GbdtParams {
            n_trees: m.n_trees(),
            base_score: Some(y.rows(0, 400).mean()),
            ..GbdtParams::default()
        }
        .fit(&x.rows(0, 400).into_owned(), &y.rows(0, 400).into_owned())
        .expect("fit");
        assert_eq!(m.predict(&x), head.predict(&x));
        let tiny = DMatrix::from_column_slice(1, 1, &[1.0]);
        let err = params
            .fit(&tiny, &DVector::from_vec(vec![1.0]))
            .expect_err("no validation rows");
        assert!(
            matches!(err, FitError::Shape { model: "gbdt", .. }),
            "{err}"
        );
    }

    #[test]
    fn bad_params_and_input_are_rejected() {
        let x = DMatrix::from_column_slice(3, 1, &[1.0, 2.0, 3.0]);
        let y = DVector::from_vec(vec![1.0, 2.0, 3.0]);
        let d = GbdtParams::default;
        let cases: Vec<(GbdtParams, &str)> = vec![
            (GbdtParams { n_trees: 0, ..d() }, "n_trees"),
            (GbdtParams { eta: 0.0, ..d() }, "eta"),
            (GbdtParams { eta: -0.1, ..d() }, "eta"),
            (
                GbdtParams {
                    eta: f64::NAN,
                    ..d()
                },
                "eta",
            ),
            (
                GbdtParams {
                    max_depth: 0,
                    ..d()
                },
                "max_depth",
            ),
            (
                GbdtParams {
                    max_depth: 31,
                    ..d()
                },
                "max_depth",
            ),
            (
                GbdtParams {
                    lambda: -1.0,
                    ..d()
                },
                "lambda",
            ),
            (GbdtParams { alpha: -1.0, ..d() }, "alpha"),
            (
                GbdtParams {
                    gamma: f64::INFINITY,
                    ..d()
                },
                "gamma",
            ),
            (
                GbdtParams {
                    min_child_weight: -1.0,
                    ..d()
                },
                "min_child_weight",
            ),
            (
                GbdtParams {
                    subsample: 0.0,
                    ..d()
                },
                "subsample",
            ),
            (
                GbdtParams {
                    subsample: 1.5,
                    ..d()
                },
                "subsample",
            ),
            (
                GbdtParams {
                    colsample_bytree: 0.0,
                    ..d()
                },
                "colsample_bytree",
            ),
            (
                GbdtParams {
                    base_score: Some(1e39),
                    ..d()
                },
                "base_score",
            ),
            (GbdtParams { max_bin: 1, ..d() }, "max_bin"),
            (
                GbdtParams {
                    max_bin: 257,
                    ..d()
                },
                "max_bin",
            ),
            (
                GbdtParams {
                    early_stopping_rounds: Some(0),
                    ..d()
                },
                "early_stopping_rounds",
            ),
            (
                GbdtParams {
                    validation_fraction: 1.0,
                    ..d()
                },
                "validation_fraction",
            ),
            (GbdtParams { threads: 0, ..d() }, "threads"),
        ];
        for (params, name) in cases {
            let err = params.fit(&x, &y).expect_err(name);
            assert!(
                matches!(err, FitError::BadParam { model: "gbdt", param, .. } if param == name),
                "{name}: {err:?}"
            );
            assert!(err.to_string().contains("expected"), "{err}");
        }
        let short = DVector::from_vec(vec![1.0]);
        let err = d().fit(&x, &short).expect_err("shape");
        assert!(matches!(err, FitError::Shape { model: "gbdt", .. }));
        let nan = DMatrix::from_column_slice(3, 1, &[1.0, f64::NAN, 3.0]);
        assert_eq!(
            d().fit(&nan, &y).expect_err("nan"),
            FitError::NonFinite { model: "gbdt" }
        );
        let huge = DMatrix::from_column_slice(3, 1, &[1.0, 1e300, 3.0]);
        let err = d().fit(&huge, &y).expect_err("f32 overflow");
        assert!(
            matches!(err, FitError::Range { model: "gbdt", .. }),
            "{err}"
        );
        assert!(err.to_string().contains("rescale"), "{err}");
    }

    #[test]
    fn postcard_round_trip_predicts_identically() {
        let (x, y) = data(500, 4, 6);
        let m = GbdtParams {
            n_trees: 20,
            ..GbdtParams::default()
        }
        .fit(&x, &y)
        .expect("fit");
        let bytes = postcard::to_allocvec(&m).expect("serialize");
        // 12 bytes per node and 4 per tree, plus a few header bytes.
        assert!(bytes.len() <= m.tree_bytes() + 64, "{}", bytes.len());
        assert_eq!(m.tree_bytes(), 12 * m.node_count() + 4 * m.n_trees());
        let back: Gbdt = postcard::from_bytes(&bytes).expect("deserialize");
        assert!(back.check(4).is_ok());
        assert!(back.check(5).is_err());
        let a = m.predict(&x);
        let b = back.predict(&x);
        assert!(a
            .iter()
            .zip(b.iter())
            .all(|(p, q)| p.to_bits() == q.to_bits()));
    }

    #[test]
    fn damaged_models_are_refused_on_load() {
        let x = DMatrix::from_column_slice(4, 1, &[1.0, 2.0, 3.0, 4.0]);
        let y = DVector::from_vec(vec![0.0, 0.0, 1.0, 1.0]);
        let m = GbdtParams {
            n_trees: 2,
            ..GbdtParams::default()
        }
        .fit(&x, &y)
        .expect("fit");
        assert_eq!(m.node_count(), 6);
        let wire = |mutate: &dyn Fn(&mut GbdtWire)| {
            let mut w = GbdtWire::from(m.clone());
            mutate(&mut w);
            postcard::to_allocvec(&w).expect("serialize")
        };
        let refused = |bytes: Vec<u8>| postcard::from_bytes::<Gbdt>(&bytes).is_err();
        assert!(!refused(wire(&|_| {})));
        // No trees; a torn node; a feature the model does not have; a right child pointing
        // back or into the next tree; a NaN leaf; a tree start past the end; a NaN base score.
        assert!(refused(wire(&|w| w.roots.clear())));
        assert!(refused(wire(&|w| w.nodes.truncate(70))));
        assert!(refused(wire(&|w| w.n_features = 0)));
        assert!(refused(wire(
            &|w| w.nodes[8..12].copy_from_slice(&0u32.to_le_bytes())
        )));
        assert!(refused(wire(
            &|w| w.nodes[8..12].copy_from_slice(&3u32.to_le_bytes())
        )));
        assert!(refused(wire(
            &|w| w.nodes[16..20].copy_from_slice(&f32::NAN.to_le_bytes())
        )));
        assert!(refused(wire(&|w| w.roots[1] = 9)));
        assert!(refused(wire(&|w| w.base_score = f32::NAN)));
    }
}
