//! CART regression tree, like scikit-learn's `DecisionTreeRegressor()`, and the tree grower the
//! random forest reuses. Pure code: no I/O, no clock; randomness only from the seed in the params.
//!
//! Algorithm (scikit-learn's `BestSplitter` with the squared-error criterion): grow depth first.
//! A node becomes a leaf when `depth >= max_depth`, it has fewer than `min_samples_split` or
//! `2·min_samples_leaf` samples, or its impurity (weighted variance of y) is `<= f64::EPSILON`.
//! Otherwise every feature (or `max_features` of them, drawn in a seeded random order) is scanned
//! in sorted order; a candidate split lies between consecutive values more than 1e-7 apart
//! (scikit-learn's `FEATURE_THRESHOLD`; a feature whose range is within it is constant) and must
//! leave `min_samples_leaf` samples on each side. The split maximising the proxy
//! `S_left²/W_left + S_right²/W_right` (S: weighted sum of y, W: total weight) wins, the first one
//! found on exact ties. The threshold is `a/2 + b/2` of the two values around the gap (`a` if that
//! rounds to `b`); `x <= threshold` goes left. A leaf predicts the weighted mean of its y.
//! As in scikit-learn, features are used as `f32` (fit and predict), thresholds are `f64`.
//! Parity with scikit-learn is exact on data without ties; with ties it may differ because
//! scikit-learn visits features in a random order and sorts samples with an unstable sort.
//!
//! Implementation: each feature is sorted once at the root into `(f32 value, sample)` entries; a
//! split stably partitions every feature's segment in place, so there are no per-node copies of
//! the data and no per-node sorts. Weighted samples (forest bootstraps: weight = draw count, as
//! scikit-learn does) count once for `min_samples_leaf`/`min_samples_split`, like scikit-learn.
//!
//! Cost: fit O(d·n log n) for the root sort plus O(d·n) per tree level, memory 8·d·n bytes of
//! sorted entries plus the f32 columns (4·d·n bytes); predict O(depth) per row. The fitted tree is
//! a preorder array of 16-byte nodes (left child = next node), about 2 nodes per distinct
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
use crate::rng::Rng;

/// Hyperparameters (scikit-learn `DecisionTreeRegressor()` defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct CartParams {
    pub max_depth: Option<usize>,
    pub min_samples_split: usize,
    pub min_samples_leaf: usize,
    /// Features considered per split; `None` = all.
    pub max_features: Option<usize>,
    pub seed: u64,
}

impl Default for CartParams {
    fn default() -> Self {
        CartParams {
            max_depth: None,
            min_samples_split: 2,
            min_samples_leaf: 1,
            max_features: None,
            seed: 0,
        }
    }
}

/// A fitted regression tree, stored as a preorder array of nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cart {
    pub n_features: usize,
    nodes: Vec<Node>,
}

/// One tree node: 16 bytes. The left child of an internal node is the next node.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Node {
    /// The threshold of an internal node, the prediction of a leaf.
    value: f64,
    /// The split feature, or [`LEAF`].
    feature: u32,
    /// The right child of an internal node ([`LEAF`] for a leaf).
    right: u32,
}

const LEAF: u32 = u32::MAX;

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
            self.min_samples_leaf,
            self.max_features,
        )?;
        let data = TrainData::new("cart", x, y)?;
        let samples: Vec<u32> = (0..x.nrows() as u32).collect();
        let weights = vec![1.0; x.nrows()];
        let mut rng = Rng::new(self.seed);
        Ok(grow(&data, &samples, &weights, &config, &mut rng))
    }
}

impl Cart {
    /// Number of nodes (internal and leaves).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Length of the longest root-to-leaf path (a single leaf has depth 0).
    pub fn depth(&self) -> usize {
        let mut max_depth = 0;
        let mut stack = vec![(0usize, 0usize)];
        while let Some((id, depth)) = stack.pop() {
            let node = self.nodes[id];
            if node.feature == LEAF {
                max_depth = max_depth.max(depth);
            } else {
                stack.push((id + 1, depth + 1));
                stack.push((node.right as usize, depth + 1));
            }
        }
        max_depth
    }

    /// The id of the leaf that `x` falls into.
    pub fn leaf_of(&self, x: &[f64]) -> usize {
        let mut id = 0;
        loop {
            let node = self.nodes[id];
            if node.feature == LEAF {
                return id;
            }
            // Features are compared as f32, like scikit-learn (which casts X to float32).
            if f64::from(x[node.feature as usize] as f32) <= node.value {
                id += 1;
            } else {
                id = node.right as usize;
            }
        }
    }
}

impl Regressor for Cart {
    fn name(&self) -> &'static str {
        "cart"
    }

    fn predict_row(&self, x: &[f64]) -> f64 {
        self.nodes[self.leaf_of(x)].value
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
        if x.nrows() >= u32::MAX as usize {
            return Err(FitError::Shape {
                model,
                detail: format!("{} rows is more than a tree supports", x.nrows()),
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

/// A pending node: positions `start..end` of every feature's sorted segment.
struct Task {
    start: usize,
    end: usize,
    depth: usize,
    /// The parent whose `right` must point at this node, if this is a right child.
    parent_of_right: Option<usize>,
}

/// The best split found at a node.
struct Split {
    feature: usize,
    /// Number of entries going left.
    n_left: usize,
    threshold: f64,
}

/// Grows one tree on `samples` (distinct sample ids, each with `weights[id] > 0`).
pub(crate) fn grow(
    data: &TrainData,
    samples: &[u32],
    weights: &[f64],
    config: &TreeConfig,
    rng: &mut Rng,
) -> Cart {
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
    let mut scratch: Vec<Entry> = Vec::with_capacity(m);
    let mut goes_left = vec![false; data.n_rows()];
    let mut features: Vec<usize> = (0..n_features).collect();
    let targets = &data.targets;

    let mut nodes: Vec<Node> = Vec::new();
    let mut stack = vec![Task {
        start: 0,
        end: m,
        depth: 0,
        parent_of_right: None,
    }];
    while let Some(task) = stack.pop() {
        let node_id = nodes.len();
        if let Some(parent) = task.parent_of_right {
            nodes[parent].right = node_id as u32;
        }
        let (start, end) = (task.start, task.end);
        let n_node = end - start;

        let mut weight_total = 0.0;
        let mut sum_total = 0.0;
        let mut sq_sum_total = 0.0;
        for entry in &sorted[start..end] {
            let w = weights[entry.sample as usize];
            let y = targets[entry.sample as usize];
            weight_total += w;
            sum_total += w * y;
            sq_sum_total += w * y * y;
        }
        let mean = sum_total / weight_total;
        let impurity = sq_sum_total / weight_total - mean * mean;
        let leaf = Node {
            value: mean,
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

        let Some(split) = best_split(
            &sorted,
            m,
            start,
            end,
            weights,
            targets,
            (weight_total, sum_total),
            config,
            &mut features,
            rng,
        ) else {
            nodes.push(leaf);
            continue;
        };

        // Stable partition of every other feature's segment by the split's side.
        let split_segment = split.feature * m + start;
        for entry in &sorted[split_segment..split_segment + split.n_left] {
            goes_left[entry.sample as usize] = true;
        }
        for f in 0..n_features {
            if f == split.feature {
                continue;
            }
            let segment = &mut sorted[f * m + start..f * m + end];
            scratch.clear();
            let mut write = 0;
            for read in 0..segment.len() {
                let entry = segment[read];
                if goes_left[entry.sample as usize] {
                    segment[write] = entry;
                    write += 1;
                } else {
                    scratch.push(entry);
                }
            }
            segment[write..].copy_from_slice(&scratch);
        }
        for entry in &sorted[split_segment..split_segment + split.n_left] {
            goes_left[entry.sample as usize] = false;
        }

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
        });
        stack.push(Task {
            start,
            end: middle,
            depth: task.depth + 1,
            parent_of_right: None,
        });
    }
    Cart { n_features, nodes }
}

/// scikit-learn's best-split search at one node; `None` if no valid split exists.
#[allow(clippy::too_many_arguments)]
fn best_split(
    sorted: &[Entry],
    m: usize,
    start: usize,
    end: usize,
    weights: &[f64],
    targets: &[f64],
    (weight_total, sum_total): (f64, f64),
    config: &TreeConfig,
    features: &mut [usize],
    rng: &mut Rng,
) -> Option<Split> {
    let n_features = features.len();
    let n_node = end - start;
    let mut best: Option<Split> = None;
    let mut best_proxy = f64::NEG_INFINITY;
    let mut n_constant = 0;
    for visited in 0..n_features {
        // Like scikit-learn: stop after max_features draws, unless all drawn were constant.
        if visited >= config.max_features && visited > n_constant {
            break;
        }
        let feature = if config.max_features >= n_features {
            visited
        } else {
            let pick = visited + rng.below(n_features - visited);
            features.swap(visited, pick);
            features[visited]
        };
        let segment = &sorted[feature * m + start..feature * m + end];
        if f64::from(segment[n_node - 1].value) <= f64::from(segment[0].value) + FEATURE_THRESHOLD {
            n_constant += 1;
            continue;
        }
        let mut weight_left = 0.0;
        let mut sum_left = 0.0;
        for i in 0..n_node - 1 {
            let sample = segment[i].sample as usize;
            let w = weights[sample];
            weight_left += w;
            sum_left += w * targets[sample];
            let here = f64::from(segment[i].value);
            let next = f64::from(segment[i + 1].value);
            if next <= here + FEATURE_THRESHOLD {
                continue;
            }
            let n_left = i + 1;
            if n_left < config.min_samples_leaf || n_node - n_left < config.min_samples_leaf {
                continue;
            }
            let weight_right = weight_total - weight_left;
            let sum_right = sum_total - sum_left;
            let proxy = sum_left * sum_left / weight_left + sum_right * sum_right / weight_right;
            if proxy > best_proxy {
                best_proxy = proxy;
                let mut threshold = here / 2.0 + next / 2.0;
                if threshold == next || threshold.is_infinite() {
                    threshold = here;
                }
                best = Some(Split {
                    feature,
                    n_left,
                    threshold,
                });
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit(params: &CartParams, x: &DMatrix<f64>, y: &DVector<f64>) -> Cart {
        params.fit(x, y).expect("fit")
    }

    #[test]
    fn step_function_gives_exact_leaves() {
        let x = DMatrix::from_fn(10, 1, |i, _| i as f64);
        let y = DVector::from_fn(10, |i, _| if i < 5 { -1.5 } else { 2.25 });
        let tree = fit(&CartParams::default(), &x, &y);
        assert_eq!(tree.node_count(), 3);
        assert_eq!(tree.nodes[0].value, 4.5);
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
        let thresholds: Vec<(u32, f64)> = tree.nodes.iter().map(|n| (n.feature, n.value)).collect();
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
        let stump = fit(
            &CartParams {
                max_depth: Some(1),
                ..CartParams::default()
            },
            &x,
            &y,
        );
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
        assert_eq!((tree.nodes[0].feature, tree.nodes[0].value), (1, 6.0));
    }

    /// A direct transcription of the algorithm: sorts every feature at every node.
    fn reference_predict(
        x: &DMatrix<f64>,
        y: &DVector<f64>,
        rows: Vec<usize>,
        min_leaf: usize,
        query: &[f64],
    ) -> f64 {
        let value = |i: usize, f: usize| f64::from(x[(i, f)] as f32);
        // Node sums in feature-0 order, as `grow` does.
        let mut by_first = rows.clone();
        by_first.sort_by(|a, b| value(*a, 0).total_cmp(&value(*b, 0)).then(a.cmp(b)));
        let n = rows.len() as f64;
        let sum: f64 = by_first.iter().map(|&i| y[i]).sum();
        let sq: f64 = by_first.iter().map(|&i| y[i] * y[i]).sum();
        let impurity = sq / n - (sum / n) * (sum / n);
        if rows.len() < 2 || rows.len() < 2 * min_leaf || impurity <= f64::EPSILON {
            return sum / n;
        }
        let mut best: Option<(f64, usize, f64)> = None;
        for f in 0..x.ncols() {
            let mut order = rows.clone();
            order.sort_by(|a, b| value(*a, f).total_cmp(&value(*b, f)).then(a.cmp(b)));
            let mut left = 0.0;
            for p in 1..order.len() {
                left += y[order[p - 1]];
                let (a, b) = (value(order[p - 1], f), value(order[p], f));
                if b <= a + FEATURE_THRESHOLD || p < min_leaf || order.len() - p < min_leaf {
                    continue;
                }
                let right = sum - left;
                let proxy = left * left / p as f64 + right * right / (n - p as f64);
                if best.is_none_or(|(bp, _, _)| proxy > bp) {
                    best = Some((proxy, f, a / 2.0 + b / 2.0));
                }
            }
        }
        let Some((_, f, threshold)) = best else {
            return sum / n;
        };
        let side: Vec<usize> = rows
            .into_iter()
            .filter(|&i| (value(i, f) <= threshold) == (f64::from(query[f] as f32) <= threshold))
            .collect();
        reference_predict(x, y, side, min_leaf, query)
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
                let want = reference_predict(&x, &y, (0..n).collect(), min_leaf, &query);
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
            .filter(|&id| tree.nodes[id].feature == LEAF)
            .map(|id| counts[id])
            .collect();
        assert!(leaf_counts.iter().all(|&c| c >= 7), "{leaf_counts:?}");
        let shallow = fit(
            &CartParams {
                max_depth: Some(3),
                ..CartParams::default()
            },
            &x,
            &y,
        );
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
            (
                CartParams {
                    max_depth: Some(0),
                    ..CartParams::default()
                },
                "max_depth",
            ),
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

    #[test]
    fn postcard_round_trip_predicts_identically() {
        let mut rng = Rng::new(12);
        let x = DMatrix::from_fn(500, 3, |_, _| rng.next_f64());
        let y = DVector::from_fn(500, |_, _| rng.next_f64());
        let tree = fit(&CartParams::default(), &x, &y);
        let bytes = postcard::to_allocvec(&tree).expect("serialize");
        let back: Cart = postcard::from_bytes(&bytes).expect("deserialize");
        let queries = DMatrix::from_fn(300, 3, |_, _| rng.next_f64());
        let a = tree.predict(&queries);
        let b = back.predict(&queries);
        assert!(a
            .iter()
            .zip(b.iter())
            .all(|(p, q)| p.to_bits() == q.to_bits()));
    }
}
