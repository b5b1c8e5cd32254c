//! CART regression tree, like scikit-learn's `DecisionTreeRegressor()`, and the tree grower the
//! random forest reuses. Pure code: no I/O, no clock; randomness only from the seed in the params.
//!
//! Algorithm (scikit-learn's `BestSplitter` with the squared-error criterion): grow depth first.
//! A node becomes a leaf when `depth >= max_depth`, it has fewer than `min_samples_split` or
//! `2·min_samples_leaf` samples, or its impurity (weighted variance of y) is `<= f64::EPSILON`.
//! Otherwise features are drawn in scikit-learn's random order (a Fisher–Yates draw over its
//! persistent `features` array with `rand_int`/`our_rand_r`, skipping features known constant in
//! an ancestor) until `max_features` non-constant ones were scanned, in sorted order; a candidate
//! split lies between consecutive values more than 1e-7 apart (scikit-learn's
//! `FEATURE_THRESHOLD`, added in `f32`; a feature whose range is within it is constant) and must
//! leave `min_samples_leaf` samples on each side. The split maximising the proxy
//! `S_left²/W_left + S_right²/W_right` (S: weighted sum of y, W: total weight) wins, the first one
//! drawn on exact ties. Such ties are common even on tie-free data: at a two-sample node every
//! feature that separates the pair gives the same proxy, so the feature order decides which one
//! splits it (and so the predictions between the pair). The threshold is `a/2 + b/2` of the two
//! values around the gap (`a` if that rounds to `b`); `x <= threshold` goes left. A leaf predicts
//! the weighted mean of its y. A split whose exact impurity improvement is below `-EPSILON`
//! makes a leaf, and a child's impurity is the one its parent's split computed, as in
//! scikit-learn. As in scikit-learn, features are used as `f32` (fit and predict), thresholds
//! are `f64`.
//!
//! Bit-exact parity: all sums run in the order of scikit-learn's `samples` array, which this
//! module tracks: at a split it is sorted by the last feature scikit-learn looked at, then
//! partitioned with its two-pointer swap (`partition_samples_final`). `seed` is scikit-learn's
//! `random_state`: the splitter state is `RandomState(seed).randint(0, 2**31 - 1)` (MT19937).
//! Parity with scikit-learn 1.5 is then exact on data without feature-value ties; with ties it
//! may differ because scikit-learn sorts samples with an unstable introsort.
//!
//! Implementation: each feature is sorted once at the root into `(f32 value, sample)` entries; a
//! split stably partitions every feature's segment in place, so there are no per-node copies of
//! the data and no per-node sorts. Weighted samples (forest bootstraps: weight = draw count, as
//! scikit-learn does) count once for `min_samples_leaf`/`min_samples_split`, like scikit-learn.
//!
//! Cost: fit O(d·n log n) for the root sort plus O(d·n) per tree level, memory 8·d·n bytes of
//! sorted entries plus the f32 columns (4·d·n bytes); predict O(depth) per row. The fitted tree is
//! a preorder array of 16-byte nodes (left child = next node; kept as an 8-byte step the walk
//! reads and the exact f64 value beside it), about 2 nodes per distinct
//! training sample when fully grown.
//!
//! Defaults (scikit-learn): max_depth None, min_samples_split 2, min_samples_leaf 1,
//! max_features None (all), seed 0.
//!
//! Reference: L. Breiman, J. Friedman, R. Olshen and C. Stone, *Classification and Regression
//! Trees*, Wadsworth, 1984; scikit-learn `sklearn/tree/_splitter.pyx` and `_criterion.pyx`.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::{check_xy, FitError, Regressor};

/// Hyperparameters (scikit-learn `DecisionTreeRegressor()` defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct CartParams {
    pub max_depth: Option<usize>,
    pub min_samples_split: usize,
    pub min_samples_leaf: usize,
    /// Features considered per split; `None` = all.
    pub max_features: Option<usize>,
    /// scikit-learn's `random_state` (seeds above `u32::MAX` are folded into 32 bits).
    pub seed: u64,
    /// Memory bound: at most this many leaves (so at most `2·max_leaves − 1` nodes of 16 bytes),
    /// whatever the number of rows. Applied as a leaf size ([`leaf_size_for_budget`]), so the
    /// tree stays depth-first and balanced in the same way. `None`: unbounded, like
    /// scikit-learn.
    pub max_leaves: Option<usize>,
}

impl Default for CartParams {
    fn default() -> Self {
        CartParams {
            max_depth: None,
            min_samples_split: 2,
            min_samples_leaf: 1,
            max_features: None,
            seed: 0,
            max_leaves: None,
        }
    }
}

/// The `min_samples_leaf` that keeps a tree grown on `rows` distinct rows within `max_leaves`
/// leaves: `max(min_samples_leaf, ⌈rows / max_leaves⌉)`. Every leaf then holds at least that
/// many distinct rows and the leaves partition the rows, so there are at most
/// `rows / ⌈rows / max_leaves⌉ ≤ max_leaves` of them.
pub(crate) fn leaf_size_for_budget(
    model: &'static str,
    min_samples_leaf: usize,
    max_leaves: Option<usize>,
    rows: usize,
) -> Result<usize, FitError> {
    match max_leaves {
        None => Ok(min_samples_leaf),
        Some(0) => Err(FitError::BadParam {
            model,
            param: "max_leaves",
            value: "0".to_string(),
            expected: "at least 1, or none",
        }),
        Some(budget) => Ok(min_samples_leaf.max(rows.div_ceil(budget))),
    }
}

/// A fitted regression tree, stored as a preorder array of nodes.
///
/// Serialised as `n_features` and the nodes packed into one byte string (16 little-endian bytes
/// each), so loading a forest of millions of nodes is a copy, not millions of decodes (model
/// files are loaded on every cron start). Loading checks every node ([`CartWire`]): a tree
/// from a damaged file is refused instead of indexing out of bounds or looping at predict time.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "CartWire", into = "CartWire")]
pub struct Cart {
    pub(crate) n_features: usize,
    /// What the walk reads, 8 bytes a node ([`Step`]), so twice as many nodes share a cache
    /// line as with the 16-byte [`Node`]s.
    steps: Vec<Step>,
    /// Each node's exact value ([`Node::value`]): the leaf predictions (read once per row, at
    /// the leaf) and the f64 thresholds (kept so that a saved tree is the tree that was grown).
    values: Vec<f64>,
}

/// One node as the walk reads it: the threshold rounded down to f32 ([`f32_at_or_below`]) and
/// `link` = right child << 8 | split feature, or [`LEAF_STEP`] for a leaf. For an f32 value `v`,
/// `v <= threshold` exactly when `f64::from(v) <= value`, so the walk takes scikit-learn's path.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Step {
    threshold: f32,
    link: u32,
}

/// `Step::link` of a leaf: feature 255 (a tree splits on features 0..=254).
const LEAF_STEP: u32 = 0xFF;

/// Features a tree can split on ([`Step::link`]'s low 8 bits; 255 marks a leaf).
pub(crate) const MAX_TREE_FEATURES: usize = 255;

/// Nodes a tree can hold ([`Step::link`]'s high 24 bits are the right child).
const MAX_TREE_NODES: usize = 1 << 24;

/// Training rows a tree can be grown on: a tree has at most 2·rows − 1 nodes.
pub(crate) const MAX_TREE_ROWS: usize = MAX_TREE_NODES / 2;

/// The largest f32 at or below `v` (`v` not NaN): for every f32 `x`,
/// `x <= f32_at_or_below(v)` exactly when `f64::from(x) <= v`.
fn f32_at_or_below(v: f64) -> f32 {
    let t = v as f32;
    if f64::from(t) > v {
        t.next_down()
    } else {
        t
    }
}

/// One tree node, as grown, checked and saved (16 bytes; the tree keeps it as a [`Step`] and
/// a value). The left child of an internal node is the next node.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Node {
    /// The threshold of an internal node, the prediction of a leaf.
    value: f64,
    /// The split feature, or [`LEAF`].
    feature: u32,
    /// The right child of an internal node ([`LEAF`] for a leaf).
    right: u32,
}

const LEAF: u32 = u32::MAX;

/// Rows that descend a tree at once in [`Cart::add_predictions`] (its lanes).
const WALK_GROUP: usize = 32;

/// Bytes of one packed node: value (f64), feature (u32), right (u32), little-endian.
const NODE_BYTES: usize = 16;

/// The serialised form of [`Cart`].
#[derive(Serialize, Deserialize)]
struct CartWire {
    n_features: usize,
    #[serde(with = "packed")]
    nodes: Vec<u8>,
}

impl From<Cart> for CartWire {
    fn from(tree: Cart) -> CartWire {
        let mut nodes = Vec::with_capacity(tree.node_count() * NODE_BYTES);
        for n in tree.nodes() {
            nodes.extend_from_slice(&n.value.to_le_bytes());
            nodes.extend_from_slice(&n.feature.to_le_bytes());
            nodes.extend_from_slice(&n.right.to_le_bytes());
        }
        CartWire {
            n_features: tree.n_features,
            nodes,
        }
    }
}

impl TryFrom<CartWire> for Cart {
    type Error = String;

    /// Unpacks and checks the tree: a non-empty preorder array where an internal node splits
    /// on a feature below `n_features`, its left child is the next node and its right child
    /// comes after it, and every leaf value is finite.
    fn try_from(wire: CartWire) -> Result<Cart, String> {
        if wire.nodes.is_empty() || !wire.nodes.len().is_multiple_of(NODE_BYTES) {
            return Err(format!(
                "cart: {} node bytes is not a whole tree",
                wire.nodes.len()
            ));
        }
        let count = wire.nodes.len() / NODE_BYTES;
        if count > MAX_TREE_NODES {
            return Err(format!(
                "cart: {count} nodes is more than a tree holds ({MAX_TREE_NODES})"
            ));
        }
        let mut nodes = Vec::with_capacity(count);
        for (id, b) in wire.nodes.chunks_exact(NODE_BYTES).enumerate() {
            let value = f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            let feature = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
            let right = u32::from_le_bytes([b[12], b[13], b[14], b[15]]);
            let ok = if feature == LEAF {
                right == LEAF && value.is_finite()
            } else {
                (feature as usize) < wire.n_features.min(MAX_TREE_FEATURES)
                    && id + 1 < count
                    && (right as usize) > id + 1
                    && (right as usize) < count
                    && !value.is_nan()
            };
            if !ok {
                return Err(format!(
                    "cart: node {id} of {count} is not a valid tree node"
                ));
            }
            nodes.push(Node {
                value,
                feature,
                right,
            });
        }
        Ok(Cart::pack(wire.n_features, &nodes))
    }
}

/// Serde for a byte vector as one byte string (postcard: a length and a copy).
pub(super) mod packed {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        struct Bytes;
        impl<'de> Visitor<'de> for Bytes {
            type Value = Vec<u8>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string")
            }

            fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }

            fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                // Self-describing formats (JSON) may hand bytes over as a sequence.
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        deserializer.deserialize_bytes(Bytes)
    }
}

/// scikit-learn's `FEATURE_THRESHOLD`: values closer than this are treated as equal.
const FEATURE_THRESHOLD: f64 = 1e-7;

impl CartParams {
    pub fn fit(&self, x: &DMatrix<f64>, y: &DVector<f64>) -> Result<Cart, FitError> {
        check_xy("cart", x, y, 1)?;
        let config = TreeConfig::new(
            "cart",
            x.ncols(),
            self.max_depth,
            self.min_samples_split,
            leaf_size_for_budget("cart", self.min_samples_leaf, self.max_leaves, x.nrows())?,
            self.max_features,
        )?;
        let data = TrainData::new("cart", x, y)?;
        let samples: Vec<u32> = (0..x.nrows() as u32).collect();
        let weights = vec![1.0; x.nrows()];
        // scikit-learn rejects random_state >= 2^32; fold larger seeds into 32 bits.
        let random_state = (self.seed ^ (self.seed >> 32)) as u32;
        let rand_r_state = SkRand::from_random_state(random_state).state;
        Ok(grow(&data, &samples, &weights, &config, rand_r_state))
    }
}

impl Cart {
    /// Number of leaves.
    #[cfg(test)]
    pub(crate) fn leaf_count(&self) -> usize {
        self.steps.iter().filter(|s| s.link == LEAF_STEP).count()
    }

    /// Number of nodes (internal and leaves).
    pub fn node_count(&self) -> usize {
        self.steps.len()
    }

    /// The tree of `nodes` (a preorder array, not checked here: see [`Cart::check`]); every
    /// split feature is below [`MAX_TREE_FEATURES`] and there are at most [`MAX_TREE_NODES`]
    /// nodes, as [`TreeConfig::new`] and [`TrainData::new`] (for grown trees) and
    /// [`CartWire`]'s check (for loaded ones) ensure.
    fn pack(n_features: usize, nodes: &[Node]) -> Cart {
        debug_assert!(nodes.len() <= MAX_TREE_NODES);
        let steps = nodes
            .iter()
            .map(|n| {
                if n.feature == LEAF {
                    Step {
                        threshold: 0.0,
                        link: LEAF_STEP,
                    }
                } else {
                    debug_assert!((n.feature as usize) < MAX_TREE_FEATURES);
                    Step {
                        threshold: f32_at_or_below(n.value),
                        link: n.right << 8 | n.feature,
                    }
                }
            })
            .collect();
        Cart {
            n_features,
            steps,
            values: nodes.iter().map(|n| n.value).collect(),
        }
    }

    /// Node `id` as it was grown.
    fn node(&self, id: usize) -> Node {
        let link = self.steps[id].link;
        if link == LEAF_STEP {
            Node {
                value: self.values[id],
                feature: LEAF,
                right: LEAF,
            }
        } else {
            Node {
                value: self.values[id],
                feature: link & 0xFF,
                right: link >> 8,
            }
        }
    }

    /// The nodes in preorder, as grown.
    fn nodes(&self) -> impl Iterator<Item = Node> + '_ {
        (0..self.steps.len()).map(|id| self.node(id))
    }

    /// Length of the longest root-to-leaf path (a single leaf has depth 0).
    pub fn depth(&self) -> usize {
        let mut max_depth = 0;
        let mut stack = vec![(0usize, 0usize)];
        while let Some((id, depth)) = stack.pop() {
            let node = self.node(id);
            if node.feature == LEAF {
                max_depth = max_depth.max(depth);
            } else {
                stack.push((id + 1, depth + 1));
                stack.push((node.right as usize, depth + 1));
            }
        }
        max_depth
    }

    /// Adds the tree's prediction of every row to `sums` (one per row): `rows` holds the rows
    /// back to back, `stride` values each, already rounded through f32 (so `f64::from(v)`
    /// compares as [`Cart::leaf_of`] does). Bit-identical to `predict_row` per row.
    ///
    /// [`WALK_GROUP`] rows descend at once, each in its lane, one level per pass over the
    /// lanes, so their node loads are independent and overlap (a deep tree does not fit in
    /// cache: the walk waits on memory, not on arithmetic); each step picks the child with a
    /// conditional move, not with a branch whose direction is unpredictable, and reads only the
    /// 8-byte [`Step`]s. A lane whose row reaches its leaf adds the leaf's value and takes the
    /// next row at the root, so every lane does useful work until the rows run out: the cost is
    /// the sum of the rows' depths, not a group's deepest row times the group (the lockstep
    /// walk this replaced was 1.6× slower on 30,000-row forests, whose leaves lie 10 to 100
    /// levels deep).
    pub(crate) fn add_predictions(&self, rows: &[f32], stride: usize, sums: &mut [f64]) {
        debug_assert!(stride >= 1 && rows.len() >= sums.len() * stride);
        let steps = &self.steps[..];
        let values = &self.values[..];
        let n = sums.len();
        let mut lane_row = [0usize; WALK_GROUP];
        let mut lane_id = [0u32; WALK_GROUP];
        let mut active = n.min(WALK_GROUP);
        for (lane, row) in lane_row.iter_mut().enumerate().take(active) {
            *row = lane;
        }
        let mut next_row = active;
        while active > 0 {
            let mut lane = 0;
            while lane < active {
                let id = lane_id[lane];
                let step = steps[id as usize];
                let row = lane_row[lane];
                if step.link == LEAF_STEP {
                    sums[row] += values[id as usize];
                    if next_row < n {
                        lane_row[lane] = next_row;
                        lane_id[lane] = 0;
                        next_row += 1;
                    } else {
                        active -= 1;
                        lane_row[lane] = lane_row[active];
                        lane_id[lane] = lane_id[active];
                        continue;
                    }
                } else {
                    let f = (step.link & 0xFF) as usize;
                    let left = rows[row * stride + f] <= step.threshold;
                    lane_id[lane] = std::hint::select_unpredictable(left, id + 1, step.link >> 8);
                }
                lane += 1;
            }
        }
    }

    /// The id of the leaf that `x` falls into.
    pub(crate) fn leaf_of(&self, x: &[f64]) -> usize {
        let mut id = 0;
        loop {
            let step = self.steps[id];
            if step.link == LEAF_STEP {
                return id;
            }
            // Features are compared as f32, like scikit-learn (which casts X to float32).
            if x[(step.link & 0xFF) as usize] as f32 <= step.threshold {
                id += 1;
            } else {
                id = (step.link >> 8) as usize;
            }
        }
    }
}

impl Cart {
    /// Checks that a deserialized tree is one that [`CartParams::fit`] could have grown for
    /// `n_features` features: at least one node, split features in range, and the nodes a
    /// preorder tree (left child next, right child right after the left subtree). Prediction
    /// on a checked tree cannot index out of bounds or loop.
    pub(crate) fn check(&self, n_features: usize) -> Result<(), String> {
        if self.n_features != n_features {
            return Err(format!(
                "the tree has {} features, expected {n_features}",
                self.n_features
            ));
        }
        if self.steps.is_empty() {
            return Err("the tree has no nodes".to_string());
        }
        // Walk the ids in order as a preorder traversal: after a leaf comes the right child of
        // the nearest ancestor whose right subtree has not started yet.
        let mut pending_right: Vec<u32> = Vec::new();
        let count = self.node_count();
        for (id, node) in self.nodes().enumerate() {
            if node.feature != LEAF {
                if node.feature as usize >= n_features {
                    return Err(format!("node {id} splits on feature {}", node.feature));
                }
                pending_right.push(node.right);
                continue;
            }
            let next = id + 1;
            match pending_right.pop() {
                Some(_) if next == count => {
                    return Err("the tree ends inside a subtree".to_string())
                }
                Some(right) if right as usize == next => {}
                Some(right) => {
                    return Err(format!(
                        "a right child is node {right}, expected node {next}"
                    ))
                }
                None if next == count => {}
                None => return Err(format!("nodes after the end of the tree at node {next}")),
            }
        }
        if !pending_right.is_empty() {
            return Err("the tree ends inside a subtree".to_string());
        }
        Ok(())
    }
}

impl Regressor for Cart {
    fn name(&self) -> &'static str {
        "cart"
    }

    fn predict_row(&self, x: &[f64]) -> f64 {
        self.values[self.leaf_of(x)]
    }
}

/// Validated growth limits, shared with the forest.
#[derive(Debug, Clone)]
pub(crate) struct TreeConfig {
    max_depth: usize,
    min_samples_split: usize,
    min_samples_leaf: usize,
    max_features: usize,
}

impl TreeConfig {
    /// Checks the hyperparameters (scikit-learn's ranges) and resolves the `None`s.
    pub(crate) fn new(
        model: &'static str,
        n_features: usize,
        max_depth: Option<usize>,
        min_samples_split: usize,
        min_samples_leaf: usize,
        max_features: Option<usize>,
    ) -> Result<TreeConfig, FitError> {
        let bad = |param, value: String, expected| FitError::BadParam {
            model,
            param,
            value,
            expected,
        };
        if max_depth == Some(0) {
            return Err(bad("max_depth", "0".into(), "at least 1, or none"));
        }
        if min_samples_split < 2 {
            return Err(bad(
                "min_samples_split",
                min_samples_split.to_string(),
                "at least 2",
            ));
        }
        if min_samples_leaf == 0 {
            return Err(bad("min_samples_leaf", "0".into(), "at least 1"));
        }
        let max_features = match max_features {
            None => n_features,
            Some(m) if (1..=n_features).contains(&m) => m,
            Some(m) => {
                return Err(bad(
                    "max_features",
                    m.to_string(),
                    "1..=number of features, or none for all",
                ))
            }
        };
        Ok(TreeConfig {
            max_depth: max_depth.unwrap_or(usize::MAX),
            min_samples_split,
            min_samples_leaf,
            max_features,
        })
    }
}

/// Training data as trees read it: one `f32` column per feature (scikit-learn's float32 cast)
/// and the targets.
pub(crate) struct TrainData {
    columns: Vec<Vec<f32>>,
    targets: Vec<f64>,
}

impl TrainData {
    pub(crate) fn new(
        model: &'static str,
        x: &DMatrix<f64>,
        y: &DVector<f64>,
    ) -> Result<TrainData, FitError> {
        if x.nrows() > MAX_TREE_ROWS {
            return Err(FitError::Shape {
                model,
                detail: format!(
                    "{} rows is more than a tree is grown on ({MAX_TREE_ROWS}); train on fewer rows",
                    x.nrows()
                ),
            });
        }
        if x.ncols() > MAX_TREE_FEATURES {
            return Err(FitError::Shape {
                model,
                detail: format!(
                    "{} features is more than a tree splits on ({MAX_TREE_FEATURES})",
                    x.ncols()
                ),
            });
        }
        let columns = (0..x.ncols())
            .map(|j| x.column(j).iter().map(|v| *v as f32).collect())
            .collect();
        Ok(TrainData {
            columns,
            targets: y.iter().copied().collect(),
        })
    }

    pub(crate) fn n_rows(&self) -> usize {
        self.targets.len()
    }
}

/// One sorted entry: a sample's value in the feature the array is sorted by.
#[derive(Debug, Clone, Copy)]
struct Entry {
    value: f32,
    sample: u32,
}

/// scikit-learn's splitter random numbers: `our_rand_r` (a 32-bit xorshift) and `rand_int`.
#[derive(Debug, Clone)]
pub(crate) struct SkRand {
    state: u32,
}

impl SkRand {
    /// The state `DecisionTreeRegressor(random_state=seed)` gives its splitter:
    /// `numpy.random.RandomState(seed).randint(0, 2**31 - 1)` (MT19937, masked rejection).
    pub(crate) fn from_random_state(seed: u32) -> SkRand {
        const RAND_R_MAX: u32 = 0x7FFF_FFFF;
        let mut mt = Mt19937::new(seed);
        loop {
            let v = mt.next_u32() & RAND_R_MAX;
            if v < RAND_R_MAX {
                return SkRand { state: v };
            }
        }
    }

    pub(crate) fn from_state(state: u32) -> SkRand {
        SkRand { state }
    }

    fn next(&mut self) -> u32 {
        if self.state == 0 {
            self.state = 1;
        }
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        self.state % 0x8000_0000
    }

    /// A number in `low..high` (`high > low`), as scikit-learn's `rand_int`.
    fn int(&mut self, low: usize, high: usize) -> usize {
        low + self.next() as usize % (high - low)
    }
}

/// The Mersenne Twister MT19937 with numpy's legacy integer seeding (`init_genrand`).
struct Mt19937 {
    state: [u32; 624],
    index: usize,
}

impl Mt19937 {
    fn new(seed: u32) -> Mt19937 {
        let mut state = [0u32; 624];
        state[0] = seed;
        for i in 1..624 {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        Mt19937 { state, index: 624 }
    }

    fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            for i in 0..624 {
                let y = (self.state[i] & 0x8000_0000) | (self.state[(i + 1) % 624] & 0x7FFF_FFFF);
                let mut v = self.state[(i + 397) % 624] ^ (y >> 1);
                if y & 1 != 0 {
                    v ^= 0x9908_B0DF;
                }
                self.state[i] = v;
            }
            self.index = 0;
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9D2C_5680;
        y ^= (y << 15) & 0xEFC6_0000;
        y ^= y >> 18;
        y
    }
}

/// A pending node: positions `start..end` of `order` and of every feature's sorted segment.
struct Task {
    start: usize,
    end: usize,
    depth: usize,
    /// The parent whose `right` must point at this node, if this is a right child.
    parent_of_right: Option<usize>,
    /// The impurity the parent's split computed for this node (`None` at the root).
    impurity: Option<f64>,
    /// scikit-learn's `n_constant_features`: the first entries of `features` known constant.
    n_constant: usize,
}

/// The weighted totals of a node, summed in scikit-learn's sample order.
#[derive(Debug, Clone, Copy)]
struct Totals {
    weight: f64,
    sum: f64,
    sq_sum: f64,
}

/// The best split found at a node.
struct Split {
    feature: usize,
    /// Number of samples going left.
    n_left: usize,
    threshold: f64,
    improvement: f64,
    impurity_left: f64,
    impurity_right: f64,
}

/// The grower's state: scikit-learn's `BestSplitter` with the presorted columns.
struct Grower<'a> {
    data: &'a TrainData,
    weights: &'a [f64],
    config: &'a TreeConfig,
    /// Every feature's entries, sorted at the root, partitioned in place at every split.
    sorted: Vec<Entry>,
    /// Number of samples (segment length per feature).
    m: usize,
    /// scikit-learn's `samples` array, in its exact order (fixes the summation order).
    order: Vec<u32>,
    /// scikit-learn's `features` and `constant_features` arrays (persist across nodes).
    features: Vec<usize>,
    constant_features: Vec<usize>,
    rand: SkRand,
    /// Total weight of all samples (scikit-learn's `weighted_n_samples`).
    weight_all: f64,
    goes_left: Vec<bool>,
    scratch: Vec<Entry>,
}

/// Grows one tree on `samples` (distinct, increasing sample ids, each with `weights[id] > 0`),
/// drawing feature orders from scikit-learn's splitter state `rand_r_state`.
pub(crate) fn grow(
    data: &TrainData,
    samples: &[u32],
    weights: &[f64],
    config: &TreeConfig,
    rand_r_state: u32,
) -> Cart {
    let n_features = data.columns.len();
    let m = samples.len();
    let mut grower = Grower::new(data, samples, weights, config, rand_r_state);
    let mut nodes: Vec<Node> = Vec::new();
    let mut stack = vec![Task {
        start: 0,
        end: m,
        depth: 0,
        parent_of_right: None,
        impurity: None,
        n_constant: 0,
    }];
    while let Some(task) = stack.pop() {
        let node_id = nodes.len();
        if let Some(parent) = task.parent_of_right {
            nodes[parent].right = node_id as u32;
        }
        let (start, end) = (task.start, task.end);
        let n_node = end - start;
        let totals = grower.totals(start, end);
        let impurity = task.impurity.unwrap_or_else(|| {
            let mean = totals.sum / totals.weight;
            totals.sq_sum / totals.weight - mean * mean
        });
        let leaf = Node {
            value: totals.sum / totals.weight,
            feature: LEAF,
            right: LEAF,
        };
        if task.depth >= config.max_depth
            || n_node < config.min_samples_split
            || n_node < 2 * config.min_samples_leaf
            || impurity <= f64::EPSILON
        {
            nodes.push(leaf);
            continue;
        }

        let (split, n_constant) = grower.node_split(start, end, totals, impurity, task.n_constant);
        let Some(split) = split.filter(|s| s.improvement + f64::EPSILON >= 0.0) else {
            nodes.push(leaf);
            continue;
        };
        grower.partition_sorted(start, end, &split);

        nodes.push(Node {
            value: split.threshold,
            feature: split.feature as u32,
            right: LEAF,
        });
        let middle = start + split.n_left;
        stack.push(Task {
            start: middle,
            end,
            depth: task.depth + 1,
            parent_of_right: Some(node_id),
            impurity: Some(split.impurity_right),
            n_constant,
        });
        stack.push(Task {
            start,
            end: middle,
            depth: task.depth + 1,
            parent_of_right: None,
            impurity: Some(split.impurity_left),
            n_constant,
        });
    }
    Cart::pack(n_features, &nodes)
}

/// scikit-learn's `FEATURE_THRESHOLD` test, in `f32` as scikit-learn computes it: `b` is within
/// the threshold of `a` (`a <= b`).
fn close(a: f32, b: f32) -> bool {
    b <= a + FEATURE_THRESHOLD as f32
}

impl<'a> Grower<'a> {
    /// The grower at the root: every feature's column of `samples` sorted once by value (ties
    /// by sample id), the samples in their given order, no feature known constant.
    fn new(
        data: &'a TrainData,
        samples: &[u32],
        weights: &'a [f64],
        config: &'a TreeConfig,
        rand_r_state: u32,
    ) -> Grower<'a> {
        let n_features = data.columns.len();
        let m = samples.len();
        let mut sorted: Vec<Entry> = Vec::with_capacity(n_features * m);
        for column in &data.columns {
            let from = sorted.len();
            sorted.extend(samples.iter().map(|&s| Entry {
                value: column[s as usize],
                sample: s,
            }));
            sorted[from..]
                .sort_unstable_by(|a, b| a.value.total_cmp(&b.value).then(a.sample.cmp(&b.sample)));
        }
        Grower {
            data,
            weights,
            config,
            sorted,
            m,
            order: samples.to_vec(),
            features: (0..n_features).collect(),
            constant_features: vec![0; n_features],
            rand: SkRand::from_state(rand_r_state),
            weight_all: samples.iter().map(|&s| weights[s as usize]).sum(),
            goes_left: vec![false; data.n_rows()],
            scratch: Vec::with_capacity(m),
        }
    }
}

impl Grower<'_> {
    /// scikit-learn's `criterion.init` on `order[start..end]`: the node's weighted totals,
    /// summed in the order of its samples array.
    fn totals(&self, start: usize, end: usize) -> Totals {
        let mut totals = Totals {
            weight: 0.0,
            sum: 0.0,
            sq_sum: 0.0,
        };
        for &s in &self.order[start..end] {
            let w = self.weights[s as usize];
            let wy = w * self.data.targets[s as usize];
            totals.sum += wy;
            totals.sq_sum += wy * self.data.targets[s as usize];
            totals.weight += w;
        }
        totals
    }

    fn entry_target(&self, sample: u32) -> (f64, f64) {
        (
            self.weights[sample as usize],
            self.data.targets[sample as usize],
        )
    }

    /// scikit-learn's `node_split_best` on `order[start..end]`: the best split (with the
    /// children's impurities, after reordering `order` like scikit-learn's partitioner) and
    /// the updated number of known constant features.
    fn node_split(
        &mut self,
        start: usize,
        end: usize,
        totals: Totals,
        impurity: f64,
        n_known: usize,
    ) -> (Option<Split>, usize) {
        let n = end - start;
        let m = self.m;
        let mut f_i = self.features.len();
        let (mut n_visited, mut n_found, mut n_drawn) = (0, 0, 0);
        let mut n_total = n_known;
        let mut best: Option<Split> = None;
        let mut best_proxy = f64::NEG_INFINITY;
        // The feature scikit-learn sorted its samples array by last.
        let mut last_sorted = None;
        while f_i > n_total
            && (n_visited < self.config.max_features || n_visited <= n_found + n_drawn)
        {
            n_visited += 1;
            let mut f_j = self.rand.int(n_drawn, f_i - n_found);
            if f_j < n_known {
                self.features.swap(n_drawn, f_j);
                n_drawn += 1;
                continue;
            }
            f_j += n_found;
            let feature = self.features[f_j];
            last_sorted = Some(feature);
            let segment = &self.sorted[feature * m + start..feature * m + end];
            if close(segment[0].value, segment[n - 1].value) {
                self.features.swap(f_j, n_total);
                n_found += 1;
                n_total += 1;
                continue;
            }
            f_i -= 1;
            self.features.swap(f_i, f_j);
            if let Some((proxy, split)) =
                self.best_threshold(feature, start, end, totals, best_proxy)
            {
                best_proxy = proxy;
                best = Some(split);
            }
        }

        if let (Some(split), Some(last)) = (best.as_mut(), last_sorted) {
            self.partition_order(start, end, last, split);
            self.children_impurity(start, end, totals, impurity, split);
        }

        // Keep the known constant features first, in their order; remember the new ones.
        self.features[..n_known].copy_from_slice(&self.constant_features[..n_known]);
        let found = n_known..n_known + n_found;
        self.constant_features[found.clone()].copy_from_slice(&self.features[found]);
        (best, n_total)
    }

    /// scikit-learn's `criterion.reset`, `update(p)` and `proxy_impurity_improvement` over the
    /// thresholds of `feature` on the node `start..end`: the best split there (its children's
    /// impurities still to be computed) with its proxy, if its proxy beats `best_proxy`.
    fn best_threshold(
        &self,
        feature: usize,
        start: usize,
        end: usize,
        totals: Totals,
        mut best_proxy: f64,
    ) -> Option<(f64, Split)> {
        let n = end - start;
        let min_leaf = self.config.min_samples_leaf;
        let segment = &self.sorted[feature * self.m + start..feature * self.m + end];
        let mut best = None;
        let (mut pos, mut weight_left, mut sum_left) = (0, 0.0, 0.0);
        let mut p = 0;
        while p < n {
            while p + 1 < n && close(segment[p].value, segment[p + 1].value) {
                p += 1;
            }
            let p_prev = p;
            p += 1;
            if p >= n || p < min_leaf || n - p < min_leaf {
                continue;
            }
            if p - pos <= n - p {
                for entry in &segment[pos..p] {
                    let (w, y) = self.entry_target(entry.sample);
                    sum_left += w * y;
                    weight_left += w;
                }
            } else {
                sum_left = totals.sum;
                weight_left = totals.weight;
                for entry in segment[p..].iter().rev() {
                    let (w, y) = self.entry_target(entry.sample);
                    sum_left -= w * y;
                    weight_left -= w;
                }
            }
            pos = p;
            let weight_right = totals.weight - weight_left;
            let sum_right = totals.sum - sum_left;
            let proxy = sum_left * sum_left / weight_left + sum_right * sum_right / weight_right;
            if proxy > best_proxy {
                best_proxy = proxy;
                let here = f64::from(segment[p_prev].value);
                let next = f64::from(segment[p].value);
                let mut threshold = here / 2.0 + next / 2.0;
                if threshold == next || threshold.is_infinite() {
                    threshold = here;
                }
                best = Some(Split {
                    feature,
                    n_left: p,
                    threshold,
                    improvement: f64::NEG_INFINITY,
                    impurity_left: f64::INFINITY,
                    impurity_right: f64::INFINITY,
                });
            }
        }
        best.map(|split| (best_proxy, split))
    }

    /// Reorders `order[start..end]` as scikit-learn leaves its samples array: sorted by the
    /// `last` feature it looked at, then `partition_samples_final` swaps the samples going
    /// right of `split` to the end.
    fn partition_order(&mut self, start: usize, end: usize, last: usize, split: &Split) {
        let m = self.m;
        for (slot, entry) in self.order[start..end]
            .iter_mut()
            .zip(&self.sorted[last * m + start..last * m + end])
        {
            *slot = entry.sample;
        }
        let column = &self.data.columns[split.feature];
        let (mut p, mut partition_end) = (start, end - 1);
        while p < partition_end {
            if f64::from(column[self.order[p] as usize]) <= split.threshold {
                p += 1;
            } else {
                self.order.swap(p, partition_end);
                partition_end -= 1;
            }
        }
    }

    /// scikit-learn's `reset`, `update(pos)`, `children_impurity` and `impurity_improvement`
    /// on the partitioned `order[start..end]`.
    fn children_impurity(
        &self,
        start: usize,
        end: usize,
        totals: Totals,
        impurity: f64,
        split: &mut Split,
    ) {
        let pos = start + split.n_left;
        let (mut weight_left, mut sum_left) = (0.0, 0.0);
        if pos - start <= end - pos {
            for &s in &self.order[start..pos] {
                let (w, y) = self.entry_target(s);
                sum_left += w * y;
                weight_left += w;
            }
        } else {
            sum_left = totals.sum;
            weight_left = totals.weight;
            for &s in self.order[pos..end].iter().rev() {
                let (w, y) = self.entry_target(s);
                sum_left -= w * y;
                weight_left -= w;
            }
        }
        let weight_right = totals.weight - weight_left;
        let sum_right = totals.sum - sum_left;
        let mut sq_sum_left = 0.0;
        for &s in &self.order[start..pos] {
            let (w, y) = self.entry_target(s);
            sq_sum_left += w * y * y;
        }
        let sq_sum_right = totals.sq_sum - sq_sum_left;
        let mean_left = sum_left / weight_left;
        let mean_right = sum_right / weight_right;
        split.impurity_left = sq_sum_left / weight_left - mean_left * mean_left;
        split.impurity_right = sq_sum_right / weight_right - mean_right * mean_right;
        split.improvement = (totals.weight / self.weight_all)
            * (impurity
                - weight_right / totals.weight * split.impurity_right
                - weight_left / totals.weight * split.impurity_left);
    }

    /// Stable partition of every other feature's segment by the split's side.
    fn partition_sorted(&mut self, start: usize, end: usize, split: &Split) {
        let m = self.m;
        let left = start..start + split.n_left;
        for &s in &self.order[left.clone()] {
            self.goes_left[s as usize] = true;
        }
        for f in 0..self.features.len() {
            if f == split.feature {
                continue;
            }
            let segment = &mut self.sorted[f * m + start..f * m + end];
            self.scratch.clear();
            let mut write = 0;
            for read in 0..segment.len() {
                let entry = segment[read];
                if self.goes_left[entry.sample as usize] {
                    segment[write] = entry;
                    write += 1;
                } else {
                    self.scratch.push(entry);
                }
            }
            segment[write..].copy_from_slice(&self.scratch);
        }
        for &s in &self.order[left] {
            self.goes_left[s as usize] = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use crate::testutil::assert_postcard_round_trip;

    fn fit(params: &CartParams, x: &DMatrix<f64>, y: &DVector<f64>) -> Cart {
        params.fit(x, y).expect("fit")
    }

    /// The default parameters with a depth limit.
    fn max_depth(depth: usize) -> CartParams {
        CartParams {
            max_depth: Some(depth),
            ..CartParams::default()
        }
    }

    #[test]
    fn check_accepts_grown_trees_and_refuses_malformed_ones() {
        let x = DMatrix::from_fn(40, 2, |i, j| ((i * 7 + j * 3) % 11) as f64);
        let y = DVector::from_fn(40, |i, _| (i % 5) as f64);
        let tree = fit(&CartParams::default(), &x, &y);
        assert!(tree.node_count() > 3);
        assert_eq!(tree.check(2), Ok(()));
        assert!(tree.check(3).is_err(), "feature count differs");
        let leaf = Node {
            value: 1.0,
            feature: LEAF,
            right: LEAF,
        };
        let split = |right: u32| Node {
            value: 0.5,
            feature: 0,
            right,
        };
        let tree_of = |nodes: Vec<Node>| Cart::pack(2, &nodes);
        assert_eq!(tree_of(vec![split(2), leaf, leaf]).check(2), Ok(()));
        for (what, nodes) in [
            ("empty", vec![]),
            ("right child loops back", vec![split(0), leaf, leaf]),
            ("right child is the left one", vec![split(1), leaf, leaf]),
            ("right child out of range", vec![split(9), leaf, leaf]),
            ("ends inside a subtree", vec![split(2), leaf]),
            ("trailing nodes", vec![leaf, leaf]),
            // A DAG (both children share a subtree): exponential to walk, not a tree.
            (
                "shared subtree",
                vec![split(2), split(3), split(3), leaf, leaf],
            ),
        ] {
            assert!(tree_of(nodes).check(2).is_err(), "{what} accepted");
        }
        let mut bad_feature = vec![split(2), leaf, leaf];
        bad_feature[0].feature = 2;
        assert!(tree_of(bad_feature).check(2).is_err());
    }

    #[test]
    fn step_function_gives_exact_leaves() {
        let x = DMatrix::from_fn(10, 1, |i, _| i as f64);
        let y = DVector::from_fn(10, |i, _| if i < 5 { -1.5 } else { 2.25 });
        let tree = fit(&CartParams::default(), &x, &y);
        assert_eq!(tree.node_count(), 3);
        assert_eq!(tree.node(0).value, 4.5);
        assert_eq!(tree.predict_row(&[4.5]), -1.5);
        assert_eq!(tree.predict_row(&[4.6]), 2.25);
        assert_eq!(tree.predict_row(&[-100.0]), -1.5);
        assert_eq!(tree.predict_row(&[100.0]), 2.25);
    }

    #[test]
    fn hand_computed_two_level_tree() {
        // Proxies at the root (total 90): after x=1: 1620, 2: 2025, 3: 2166.7, 4: 2550, 5: 2100,
        // so the root splits at 4.5; the left child [0,0,10,10] splits at 2.5, the right [30,40]
        // at 5.5.
        let x = DMatrix::from_column_slice(6, 1, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let y = DVector::from_vec(vec![0.0, 0.0, 10.0, 10.0, 30.0, 40.0]);
        let tree = fit(&CartParams::default(), &x, &y);
        assert_eq!(tree.node_count(), 7);
        assert_eq!(tree.depth(), 2);
        let thresholds: Vec<(u32, f64)> = tree.nodes().map(|n| (n.feature, n.value)).collect();
        assert_eq!(
            thresholds,
            vec![
                (0, 4.5),
                (0, 2.5),
                (LEAF, 0.0),
                (LEAF, 10.0),
                (0, 5.5),
                (LEAF, 30.0),
                (LEAF, 40.0)
            ]
        );
        let stump = fit(&max_depth(1), &x, &y);
        assert_eq!(stump.node_count(), 3);
        assert_eq!(stump.predict_row(&[2.0]), 5.0);
        assert_eq!(stump.predict_row(&[6.0]), 35.0);
    }

    #[test]
    fn chooses_the_informative_feature() {
        // Feature 0 is noise, feature 1 decides y.
        let x = DMatrix::from_row_slice(4, 2, &[0.3, 1.0, 0.1, 2.0, 0.4, 10.0, 0.2, 11.0]);
        let y = DVector::from_vec(vec![1.0, 1.0, 7.0, 7.0]);
        let tree = fit(&CartParams::default(), &x, &y);
        assert_eq!(tree.node_count(), 3);
        assert_eq!((tree.node(0).feature, tree.node(0).value), (1, 6.0));
    }

    /// A direct transcription of scikit-learn's `node_split_best` on tie-free data: keeps its
    /// `samples` array, sorts it by every visited feature at every node, partitions it with the
    /// two-pointer swap, and draws features with the same `rand_int` calls.
    struct Reference<'a> {
        x: &'a DMatrix<f64>,
        y: &'a DVector<f64>,
        min_leaf: usize,
        rand: SkRand,
        features: Vec<usize>,
        constant: Vec<usize>,
    }

    impl Reference<'_> {
        fn value(&self, i: usize, f: usize) -> f32 {
            self.x[(i, f)] as f32
        }

        /// Predicts `query` with the subtree grown on `rows` (in scikit-learn's order).
        fn predict(&mut self, rows: &mut [usize], n_known: usize, query: &[f64]) -> f64 {
            let n = rows.len() as f64;
            let sum = rows.iter().fold(0.0, |acc, &i| acc + self.y[i]);
            let sq = rows.iter().fold(0.0, |acc, &i| acc + self.y[i] * self.y[i]);
            let impurity = sq / n - (sum / n) * (sum / n);
            if rows.len() < 2 || rows.len() < 2 * self.min_leaf || impurity <= f64::EPSILON {
                return sum / n;
            }
            let d = self.features.len();
            let (mut f_i, mut n_drawn, mut n_found) = (d, 0, 0);
            let mut best: Option<(f64, usize, f64)> = None;
            while f_i > n_known + n_found {
                let mut f_j = self.rand.int(n_drawn, f_i - n_found);
                if f_j < n_known {
                    self.features.swap(n_drawn, f_j);
                    n_drawn += 1;
                    continue;
                }
                f_j += n_found;
                let f = self.features[f_j];
                rows.sort_by(|a, b| self.value(*a, f).total_cmp(&self.value(*b, f)));
                let first = self.value(rows[0], f);
                if self.value(rows[rows.len() - 1], f) <= first + FEATURE_THRESHOLD as f32 {
                    self.features.swap(f_j, n_known + n_found);
                    n_found += 1;
                    continue;
                }
                f_i -= 1;
                self.features.swap(f_i, f_j);
                let mut left = 0.0;
                for p in 1..rows.len() {
                    left += self.y[rows[p - 1]];
                    if p < self.min_leaf || rows.len() - p < self.min_leaf {
                        continue;
                    }
                    let right = sum - left;
                    let proxy = left * left / p as f64 + right * right / (n - p as f64);
                    if best.is_none_or(|(bp, _, _)| proxy > bp) {
                        let (a, b) = (self.value(rows[p - 1], f), self.value(rows[p], f));
                        best = Some((proxy, f, f64::from(a) / 2.0 + f64::from(b) / 2.0));
                    }
                }
            }
            self.features[..n_known].copy_from_slice(&self.constant[..n_known]);
            let found = n_known..n_known + n_found;
            self.constant[found.clone()].copy_from_slice(&self.features[found]);
            let Some((_, f, threshold)) = best else {
                return sum / n;
            };
            let (mut p, mut end) = (0, rows.len() - 1);
            while p < end {
                if f64::from(self.value(rows[p], f)) <= threshold {
                    p += 1;
                } else {
                    rows.swap(p, end);
                    end -= 1;
                }
            }
            let n_left = rows
                .iter()
                .filter(|&&i| f64::from(self.value(i, f)) <= threshold)
                .count();
            let (left_rows, right_rows) = rows.split_at_mut(n_left);
            // Grow both children in scikit-learn's order (left first), keep the query's side.
            let go_left = f64::from(query[f] as f32) <= threshold;
            let n_known = n_known + n_found;
            let left = self.predict(left_rows, n_known, query);
            let right = self.predict(right_rows, n_known, query);
            if go_left {
                left
            } else {
                right
            }
        }
    }

    fn reference_predict(
        x: &DMatrix<f64>,
        y: &DVector<f64>,
        min_leaf: usize,
        query: &[f64],
    ) -> f64 {
        let mut reference = Reference {
            x,
            y,
            min_leaf,
            rand: SkRand::from_random_state(0),
            features: (0..x.ncols()).collect(),
            constant: vec![0; x.ncols()],
        };
        reference.predict(&mut (0..x.nrows()).collect::<Vec<_>>(), 0, query)
    }

    #[test]
    fn matches_reference_transcription_on_random_data() {
        let mut rng = Rng::new(21);
        let (n, d) = (300, 3);
        let x = DMatrix::from_fn(n, d, |_, _| rng.next_f64() * 4.0 - 2.0);
        let y = DVector::from_fn(n, |i, _| {
            (x[(i, 0)] * 2.0).sin() + x[(i, 1)] * x[(i, 2)] + 0.3 * rng.next_f64()
        });
        for min_leaf in [1, 5] {
            let params = CartParams {
                min_samples_leaf: min_leaf,
                ..CartParams::default()
            };
            let tree = fit(&params, &x, &y);
            for _ in 0..100 {
                let query: Vec<f64> = (0..d).map(|_| rng.next_f64() * 4.0 - 2.0).collect();
                let want = reference_predict(&x, &y, min_leaf, &query);
                assert_eq!(tree.predict_row(&query).to_bits(), want.to_bits());
            }
        }
        // Fully grown on tie-free data: every training row is predicted exactly.
        let tree = fit(&CartParams::default(), &x, &y);
        let fitted = tree.predict(&x);
        assert!(fitted.iter().zip(y.iter()).all(|(p, q)| p == q));
    }

    #[test]
    fn limits_are_respected() {
        let mut rng = Rng::new(4);
        let x = DMatrix::from_fn(500, 2, |_, _| rng.next_f64());
        let y = DVector::from_fn(500, |_, _| rng.next_f64());
        let params = CartParams {
            min_samples_leaf: 7,
            ..CartParams::default()
        };
        let tree = fit(&params, &x, &y);
        let mut counts = vec![0usize; tree.node_count()];
        for i in 0..500 {
            counts[tree.leaf_of(&[x[(i, 0)], x[(i, 1)]])] += 1;
        }
        let leaf_counts: Vec<usize> = (0..tree.node_count())
            .filter(|&id| tree.node(id).feature == LEAF)
            .map(|id| counts[id])
            .collect();
        assert!(leaf_counts.iter().all(|&c| c >= 7), "{leaf_counts:?}");
        let shallow = fit(&max_depth(3), &x, &y);
        assert_eq!(shallow.depth(), 3);
        assert_eq!(shallow.node_count(), 15);
        let split_limited = fit(
            &CartParams {
                min_samples_split: 500,
                ..CartParams::default()
            },
            &x,
            &y,
        );
        assert_eq!(split_limited.node_count(), 3);
    }

    #[test]
    fn constant_input_gives_a_single_leaf() {
        let x = DMatrix::from_element(20, 2, 1.0);
        let y = DVector::from_fn(20, |i, _| i as f64);
        let tree = fit(&CartParams::default(), &x, &y);
        assert_eq!(tree.node_count(), 1);
        assert_eq!(tree.predict_row(&[0.0, 0.0]), 9.5);
    }

    #[test]
    fn max_features_is_seeded_and_deterministic() {
        let mut rng = Rng::new(8);
        let x = DMatrix::from_fn(400, 4, |_, _| rng.next_f64());
        let y = DVector::from_fn(400, |i, _| x[(i, 0)] + x[(i, 3)] + 0.1 * rng.next_f64());
        let params = |seed| CartParams {
            max_features: Some(2),
            seed,
            ..CartParams::default()
        };
        let queries = DMatrix::from_fn(200, 4, |_, _| rng.next_f64());
        let a = fit(&params(1), &x, &y).predict(&queries);
        let b = fit(&params(1), &x, &y).predict(&queries);
        let c = fit(&params(2), &x, &y).predict(&queries);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn bad_params_and_input_are_rejected() {
        let x = DMatrix::from_column_slice(3, 1, &[1.0, 2.0, 3.0]);
        let y = DVector::from_vec(vec![1.0, 2.0, 3.0]);
        let cases = [
            (
                CartParams {
                    min_samples_leaf: 0,
                    ..CartParams::default()
                },
                "min_samples_leaf",
            ),
            (
                CartParams {
                    min_samples_split: 1,
                    ..CartParams::default()
                },
                "min_samples_split",
            ),
            (max_depth(0), "max_depth"),
            (
                CartParams {
                    max_features: Some(2),
                    ..CartParams::default()
                },
                "max_features",
            ),
        ];
        for (params, name) in cases {
            let err = params.fit(&x, &y).expect_err("bad param");
            assert!(
                matches!(err, FitError::BadParam { model: "cart", param, .. } if param == name),
                "{err:?}"
            );
        }
        let short = DVector::from_vec(vec![1.0]);
        let err = CartParams::default().fit(&x, &short).expect_err("shape");
        assert!(matches!(err, FitError::Shape { model: "cart", .. }));
        let nan = DMatrix::from_column_slice(3, 1, &[1.0, f64::NAN, 3.0]);
        let err = CartParams::default().fit(&nan, &y).expect_err("nan");
        assert_eq!(err, FitError::NonFinite { model: "cart" });
    }

    /// The walk compares f32 features with f32 thresholds: `f32_at_or_below` must make that the
    /// same test as scikit-learn's f32-value-against-f64-threshold, on every kind of threshold.
    #[test]
    fn f32_threshold_takes_the_same_side_as_the_f64_one() {
        let mut rng = Rng::new(5);
        let mut thresholds = vec![
            0.0,
            -0.0,
            1.0,
            0.1,
            -0.1,
            1e-45,
            -1e-45,
            f64::from(f32::MAX),
            f64::from(f32::MAX) * 1.5,
            f64::from(f32::MIN) * 1.5,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        for _ in 0..2_000 {
            // Midpoints of two nearby f32s, as the splitter makes them, and plain f64s.
            let a = (rng.next_f64() * 20.0 - 10.0) as f32;
            let b = a.next_up();
            thresholds.push((f64::from(a) + f64::from(b)) / 2.0);
            thresholds.push(rng.next_f64() * 2e6 - 1e6);
        }
        for &v in &thresholds {
            let t = f32_at_or_below(v);
            let near = v.clamp(-3e38, 3e38) as f32;
            let mut probes = vec![
                t,
                t.next_up(),
                t.next_down(),
                near,
                near.next_up(),
                f32::NAN,
            ];
            probes.extend([0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY]);
            for x in probes {
                assert_eq!(x <= t, f64::from(x) <= v, "x {x:e}, threshold {v:e}");
            }
        }
    }

    /// The 8-byte step holds a feature in 8 bits and a right child in 24: a tree beyond that is
    /// refused when fitted and when loaded, never packed wrongly.
    #[test]
    fn trees_beyond_the_step_limits_are_refused() {
        let x = DMatrix::from_fn(10, MAX_TREE_FEATURES + 1, |i, j| ((i + j) % 3) as f64);
        let y = DVector::from_fn(10, |i, _| i as f64);
        let err = CartParams::default()
            .fit(&x, &y)
            .expect_err("256 features accepted");
        assert!(err.to_string().contains("256 features"), "{err}");
        let ok = DMatrix::from_fn(10, MAX_TREE_FEATURES, |i, j| ((i * (j + 1)) % 7) as f64);
        let tree = fit(&CartParams::default(), &ok, &y);
        assert_eq!(tree.check(MAX_TREE_FEATURES), Ok(()));
        // A saved tree that splits on feature 255 (of 300) is refused on load.
        let mut wire = CartWire::from(fit(
            &CartParams::default(),
            &x.columns(0, 2).into_owned(),
            &y,
        ));
        wire.n_features = 300;
        wire.nodes[8..12].copy_from_slice(&255u32.to_le_bytes());
        let bytes = postcard::to_allocvec(&wire).expect("serialize");
        assert!(postcard::from_bytes::<Cart>(&bytes).is_err());
        wire.nodes[8..12].copy_from_slice(&254u32.to_le_bytes());
        let bytes = postcard::to_allocvec(&wire).expect("serialize");
        assert!(postcard::from_bytes::<Cart>(&bytes).is_ok());
    }

    #[test]
    fn postcard_round_trip_predicts_identically() {
        let mut rng = Rng::new(12);
        let x = DMatrix::from_fn(500, 3, |_, _| rng.next_f64());
        let y = DVector::from_fn(500, |_, _| rng.next_f64());
        let tree = fit(&CartParams::default(), &x, &y);
        let queries = DMatrix::from_fn(300, 3, |_, _| rng.next_f64());
        assert_postcard_round_trip(&tree, &queries);
    }

    #[test]
    fn damaged_trees_are_refused_on_load() {
        let x = DMatrix::from_column_slice(4, 1, &[1.0, 2.0, 3.0, 4.0]);
        let y = DVector::from_vec(vec![1.0, 1.0, 5.0, 5.0]);
        let tree = fit(&CartParams::default(), &x, &y);
        assert_eq!(tree.node_count(), 3);
        let wire = |mutate: &dyn Fn(&mut CartWire)| {
            let mut w = CartWire::from(tree.clone());
            mutate(&mut w);
            postcard::to_allocvec(&w).expect("serialize")
        };
        let refused = |bytes: Vec<u8>| postcard::from_bytes::<Cart>(&bytes).is_err();
        assert!(!refused(wire(&|_| {})));
        // No nodes; a torn node; a split on a feature the tree does not have; a right child
        // that points back (a loop at predict time) or past the end; a NaN leaf.
        assert!(refused(wire(&|w| w.nodes.clear())));
        assert!(refused(wire(&|w| w.nodes.truncate(40))));
        assert!(refused(wire(&|w| w.n_features = 0)));
        assert!(refused(wire(
            &|w| w.nodes[12..16].copy_from_slice(&0u32.to_le_bytes())
        )));
        assert!(refused(wire(
            &|w| w.nodes[12..16].copy_from_slice(&9u32.to_le_bytes())
        )));
        assert!(refused(wire(
            &|w| w.nodes[16..24].copy_from_slice(&f64::NAN.to_le_bytes())
        )));
    }

    #[test]
    fn splitter_state_matches_numpy_random_state() {
        // numpy.random.RandomState(seed).randint(0, 2**31 - 1), numpy 2 / scikit-learn 1.5.2.
        for (seed, state) in [
            (0u32, 209_652_396u32),
            (1, 1_791_095_845),
            (42, 1_608_637_542),
            (12345, 1_845_187_042),
            (u32::MAX, 419_326_371),
        ] {
            assert_eq!(SkRand::from_random_state(seed).state, state, "seed {seed}");
        }
    }

    /// Backs README claim [C16]: Every trained member's size is bounded whatever the history.
    #[test]
    fn max_leaves_bounds_the_tree_whatever_the_rows() {
        let mut rng = Rng::new(21);
        let data = |n: usize, rng: &mut Rng| {
            let x = DMatrix::from_fn(n, 3, |_, _| rng.next_f64());
            let y = DVector::from_fn(n, |i, _| x[(i, 0)] * 3.0 + rng.next_f64());
            (x, y)
        };
        let params = CartParams {
            max_leaves: Some(64),
            ..CartParams::default()
        };
        for n in [50, 64, 1_000, 20_000] {
            let (x, y) = data(n, &mut rng);
            let tree = fit(&params, &x, &y);
            assert!(
                tree.leaf_count() <= 64,
                "{n} rows: {} leaves",
                tree.leaf_count()
            );
            assert_eq!(tree.node_count(), 2 * tree.leaf_count() - 1);
            assert_eq!(tree.check(3), Ok(()));
            // The unbounded tree on the same rows is fully grown.
            if n >= 1_000 {
                assert!(fit(&CartParams::default(), &x, &y).leaf_count() > n / 2);
                // The bound is exactly a leaf size of ⌈n / 64⌉.
                let same = fit(
                    &CartParams {
                        min_samples_leaf: n.div_ceil(64),
                        ..CartParams::default()
                    },
                    &x,
                    &y,
                );
                assert!(same.nodes().eq(tree.nodes()));
            }
        }
        assert_eq!(leaf_size_for_budget("cart", 1, Some(64), 20_000), Ok(313));
        assert_eq!(leaf_size_for_budget("cart", 500, Some(64), 20_000), Ok(500));
        assert_eq!(leaf_size_for_budget("cart", 2, None, 20_000), Ok(2));
        let (x, y) = data(10, &mut rng);
        let err = CartParams {
            max_leaves: Some(0),
            ..CartParams::default()
        }
        .fit(&x, &y)
        .expect_err("zero leaves");
        assert!(
            matches!(
                err,
                FitError::BadParam {
                    param: "max_leaves",
                    ..
                }
            ),
            "{err}"
        );
    }
}
