//! K-nearest-neighbours regression, like scikit-learn's `KNeighborsRegressor()`. Pure code: no
//! I/O, no clock, no randomness.
//!
//! Algorithm: the training rows are put in a k-d tree (each node split at the median of its
//! widest-spread dimension, leaves of at most 30 points, like scikit-learn's `leaf_size=30`).
//! A query walks the tree nearer child first and prunes a node when the squared distance to its
//! bounding box exceeds the k-th best squared distance, so the answer is exact. The prediction
//! is the mean of the k neighbours' targets: summed left to right in ascending-distance order,
//! then divided by k, which is what `np.mean(_y[neigh_ind], axis=1)` computes for k < 8, so
//! predictions equal scikit-learn's bit for bit whenever no two distances tie exactly.
//! Squared distances are `Σ_j (q_j − p_j)²` summed over j in order (scikit-learn's `rdist`).
//! Ties: equidistant neighbours are ranked by lower training-row index; scikit-learn's order
//! among exact ties is an implementation detail and may differ (then the k-th neighbour, or
//! only the summation order, can differ).
//!
//! Cost: fit O(n log n · d) (median selection per level); predict O(log n · d) per row on
//! well-spread low-dimensional data (worst case O(n·d)). Memory: the training data (n·d + n
//! f64, n u32 indices) plus about n/15 nodes of 2·d bounds each. `predict` over many rows uses
//! two threads; results do not depend on it.
//!
//! Defaults (scikit-learn): k = 5, uniform weights, Euclidean distance.
//!
//! Reference: J. H. Friedman, J. L. Bentley and R. A. Finkel, "An algorithm for finding best
//! matches in logarithmic expected time", ACM TOMS 3(3), 1977.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::{check_xy, predict_split, FitError, Regressor};

/// Hyperparameters (scikit-learn `KNeighborsRegressor()` defaults: k = 5, uniform weights,
/// Euclidean distance, every training row kept).
#[derive(Debug, Clone, PartialEq)]
pub struct KnnParams {
    pub k: usize,
    /// Memory bound: keep only the last `max_rows` training rows (rows are in time order, so
    /// the most recent ones). `None` keeps every row, like scikit-learn. The fitted model then
    /// holds at most `max_rows · (d + 1)` f64 values, whatever the history length.
    pub max_rows: Option<usize>,
}

impl Default for KnnParams {
    fn default() -> Self {
        KnnParams {
            k: 5,
            max_rows: None,
        }
    }
}

/// A fitted KNN model: the training data, reordered into k-d tree order, and the tree itself.
/// Everything is serialized, so a reloaded model answers bit-identically.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Knn {
    pub(crate) k: usize,
    n_features: usize,
    /// Training rows in tree order, row-major (`n_features` values per row).
    points: Vec<f64>,
    /// Targets in tree order.
    targets: Vec<f64>,
    /// Index among the kept training rows of each tree position (the tie-breaker).
    index: Vec<u32>,
    nodes: Vec<KdNode>,
    /// Per node: `n_features` lower bounds followed by `n_features` upper bounds.
    bounds: Vec<f64>,
}

/// One k-d tree node: the tree positions `start..end` it covers; children only if internal.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct KdNode {
    start: u32,
    end: u32,
    /// `u32::MAX` for a leaf.
    left: u32,
    right: u32,
}

/// Maximum points in a leaf (scikit-learn's `leaf_size`).
const LEAF_SIZE: usize = 30;

/// Below this many query rows `predict` stays on the calling thread.
const PARALLEL_MIN_ROWS: usize = 2_000;

impl KnnParams {
    pub fn fit(&self, x: &DMatrix<f64>, y: &DVector<f64>) -> Result<Knn, FitError> {
        check_xy("knn", x, y, 1)?;
        if self.max_rows == Some(0) {
            return Err(FitError::BadParam {
                model: "knn",
                param: "max_rows",
                value: "0".to_string(),
                expected: "at least 1, or none",
            });
        }
        let (all_rows, n_features) = x.shape();
        let n_rows = self.max_rows.map_or(all_rows, |m| m.min(all_rows));
        // The kept rows are the last n_rows; `first` is the offset of the first kept one.
        let first = all_rows - n_rows;
        if self.k == 0 || self.k > n_rows {
            return Err(FitError::BadParam {
                model: "knn",
                param: "k",
                value: self.k.to_string(),
                expected: "1..=number of training rows",
            });
        }
        if n_rows >= u32::MAX as usize {
            return Err(FitError::Shape {
                model: "knn",
                detail: format!("{n_rows} rows is more than this k-d tree supports"),
            });
        }
        // Row-major copy, so a distance reads one contiguous row.
        let mut rows = vec![0.0; n_rows * n_features];
        for j in 0..n_features {
            for (i, v) in x.column(j).iter().skip(first).enumerate() {
                rows[i * n_features + j] = *v;
            }
        }
        let mut builder = Builder {
            rows: &rows,
            d: n_features,
            order: (0..n_rows as u32).collect(),
            nodes: Vec::new(),
            bounds: Vec::new(),
        };
        builder.build(0, n_rows);
        let Builder {
            order,
            nodes,
            bounds,
            ..
        } = builder;
        let mut points = Vec::with_capacity(rows.len());
        let mut targets = Vec::with_capacity(n_rows);
        for &i in &order {
            let i = i as usize;
            points.extend_from_slice(&rows[i * n_features..(i + 1) * n_features]);
            targets.push(y[first + i]);
        }
        Ok(Knn {
            k: self.k,
            n_features,
            points,
            targets,
            index: order,
            nodes,
            bounds,
        })
    }
}

impl Knn {
    /// Training rows the model holds (at most `max_rows` of its params).
    #[cfg(test)]
    pub(crate) fn n_rows(&self) -> usize {
        self.targets.len()
    }

    /// The k nearest training rows of `query` as `(squared distance, training-row index)`,
    /// nearest first, ties by lower index.
    #[cfg(test)]
    pub(crate) fn neighbours(&self, query: &[f64]) -> Vec<(f64, u32)> {
        let mut best = Best::new(self.k);
        self.search(0, query, &mut best);
        best.items.into_iter().map(|(d, i, _)| (d, i)).collect()
    }

    fn search(&self, node_id: usize, query: &[f64], best: &mut Best) {
        let node = self.nodes[node_id];
        if node.left == u32::MAX {
            for pos in node.start as usize..node.end as usize {
                let point = &self.points[pos * self.n_features..(pos + 1) * self.n_features];
                if let Some(dist) = squared_distance_within(query, point, best.limit()) {
                    best.offer(dist, self.index[pos], self.targets[pos]);
                }
            }
            return;
        }
        let (left, right) = (node.left as usize, node.right as usize);
        let left_bound = self.box_distance(left, query);
        let right_bound = self.box_distance(right, query);
        let (near, near_bound, far, far_bound) = if left_bound <= right_bound {
            (left, left_bound, right, right_bound)
        } else {
            (right, right_bound, left, left_bound)
        };
        if best.admits(near_bound) {
            self.search(near, query, best);
        }
        if best.admits(far_bound) {
            self.search(far, query, best);
        }
    }

    /// Squared distance from `query` to node `node_id`'s bounding box. Each term is at most the
    /// matching term of any point in the box (floating subtraction and squaring are monotone),
    /// so the bound never prunes a true neighbour.
    fn box_distance(&self, node_id: usize, query: &[f64]) -> f64 {
        let d = self.n_features;
        let bounds = &self.bounds[node_id * 2 * d..(node_id + 1) * 2 * d];
        let (lo, hi) = bounds.split_at(d);
        let mut sum = 0.0;
        for j in 0..d {
            let q = query[j];
            // lo − q when below the box, q − hi when above, else 0 (and for NaN), without a
            // branch whose direction is unpredictable.
            let gap = (lo[j] - q).max(q - hi[j]).max(0.0);
            sum += gap * gap;
        }
        sum
    }
}

impl Knn {
    /// Checks that a deserialized model has the shape [`KnnParams::fit`] builds for
    /// `n_features` features: `1 ≤ k ≤ n` training rows, consistent array lengths, and a k-d
    /// tree whose nodes split their ranges in halves (children after their parent), so a search
    /// cannot index out of bounds, loop, or recurse deeper than log2(n).
    pub(crate) fn check(&self, n_features: usize) -> Result<(), String> {
        let d = n_features;
        let n = self.targets.len();
        if self.n_features != d {
            return Err(format!("{} features, expected {d}", self.n_features));
        }
        if self.k == 0 || self.k > n {
            return Err(format!("k = {} with {n} training rows", self.k));
        }
        let nodes = self.nodes.len();
        if Some(self.points.len()) != n.checked_mul(d)
            || self.index.len() != n
            || nodes == 0
            || Some(self.bounds.len()) != nodes.checked_mul(2 * d)
        {
            return Err("inconsistent array lengths".to_string());
        }
        let root = self.nodes[0];
        if (root.start, root.end as usize) != (0, n) {
            return Err("the root does not cover every training row".to_string());
        }
        for (id, node) in self.nodes.iter().enumerate() {
            let (start, end) = (node.start as usize, node.end as usize);
            let len = end.saturating_sub(start);
            if node.left == u32::MAX {
                if len > LEAF_SIZE {
                    return Err(format!("leaf {id} holds {len} rows"));
                }
                continue;
            }
            let (left, right) = (node.left as usize, node.right as usize);
            if len <= LEAF_SIZE || left <= id || right <= id || left >= nodes || right >= nodes {
                return Err(format!("node {id} has bad children"));
            }
            let mid = start + len / 2;
            let (l, r) = (self.nodes[left], self.nodes[right]);
            if (
                l.start as usize,
                l.end as usize,
                r.start as usize,
                r.end as usize,
            ) != (start, mid, mid, end)
            {
                return Err(format!("node {id} does not split its rows in halves"));
            }
        }
        Ok(())
    }
}

impl Regressor for Knn {
    fn name(&self) -> &'static str {
        "knn"
    }

    fn predict_row(&self, x: &[f64]) -> f64 {
        let mut best = Best::new(self.k);
        self.search(0, x, &mut best);
        let mut sum = 0.0;
        for (_, _, target) in &best.items {
            sum += target;
        }
        sum / self.k as f64
    }

    /// Like the default, but splits the rows over two threads when there are many.
    fn predict(&self, x: &DMatrix<f64>) -> DVector<f64> {
        predict_split(self, x, PARALLEL_MIN_ROWS, 2)
    }
}

/// `Σ_j (a_j − b_j)²` summed in dimension order, or `None` when it exceeds `limit`. Equal to
/// `limit` is kept, as the index may still win the tie. The whole sum is computed before the
/// one test: a test per term (stopping early) costs a mispredicted branch on most points and
/// made predicts twice as slow at 6 features.
fn squared_distance_within(a: &[f64], b: &[f64], limit: f64) -> Option<f64> {
    let mut sum = 0.0;
    for (p, q) in a.iter().zip(b) {
        let diff = p - q;
        sum += diff * diff;
    }
    if sum > limit {
        None
    } else {
        Some(sum)
    }
}

/// The k best candidates so far, sorted by (squared distance, index).
struct Best {
    k: usize,
    items: Vec<(f64, u32, f64)>,
}

impl Best {
    fn new(k: usize) -> Best {
        Best {
            k,
            items: Vec::with_capacity(k + 1),
        }
    }

    /// Whether a node whose points are all at squared distance >= `bound` may hold a better
    /// candidate. Equal distances are still visited, as a lower index may win the tie.
    fn admits(&self, bound: f64) -> bool {
        self.items.len() < self.k || bound <= self.items[self.k - 1].0
    }

    /// The squared distance a candidate must not exceed to be considered.
    fn limit(&self) -> f64 {
        if self.items.len() < self.k {
            f64::INFINITY
        } else {
            self.items[self.k - 1].0
        }
    }

    fn offer(&mut self, dist: f64, index: u32, target: f64) {
        let before = |item: &(f64, u32, f64)| (item.0, item.1) < (dist, index);
        if self.items.len() == self.k && before(&self.items[self.k - 1]) {
            return;
        }
        let pos = self.items.partition_point(before);
        self.items.insert(pos, (dist, index, target));
        self.items.truncate(self.k);
    }
}

/// Builds the tree over `order` (training-row indices, permuted in place).
struct Builder<'a> {
    rows: &'a [f64],
    d: usize,
    order: Vec<u32>,
    nodes: Vec<KdNode>,
    bounds: Vec<f64>,
}

impl Builder<'_> {
    fn value(&self, row: u32, j: usize) -> f64 {
        self.rows[row as usize * self.d + j]
    }

    /// Adds the node for positions `start..end` and its subtree; returns its id.
    fn build(&mut self, start: usize, end: usize) -> u32 {
        let d = self.d;
        let node_id = self.nodes.len();
        let mut lo = vec![f64::INFINITY; d];
        let mut hi = vec![f64::NEG_INFINITY; d];
        for &row in &self.order[start..end] {
            for j in 0..d {
                let v = self.value(row, j);
                lo[j] = lo[j].min(v);
                hi[j] = hi[j].max(v);
            }
        }
        self.bounds.extend_from_slice(&lo);
        self.bounds.extend_from_slice(&hi);
        self.nodes.push(KdNode {
            start: start as u32,
            end: end as u32,
            left: u32::MAX,
            right: u32::MAX,
        });
        if end - start <= LEAF_SIZE {
            return node_id as u32;
        }
        // Widest spread; the first such dimension on ties.
        let mut split_dim = 0;
        for j in 1..d {
            if hi[j] - lo[j] > hi[split_dim] - lo[split_dim] {
                split_dim = j;
            }
        }
        let mid = (end - start) / 2;
        let rows = self.rows;
        self.order[start..end].select_nth_unstable_by(mid, |a, b| {
            let va = rows[*a as usize * d + split_dim];
            let vb = rows[*b as usize * d + split_dim];
            va.total_cmp(&vb).then(a.cmp(b))
        });
        let left = self.build(start, start + mid);
        let right = self.build(start + mid, end);
        self.nodes[node_id].left = left;
        self.nodes[node_id].right = right;
        node_id as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use crate::testutil::assert_postcard_round_trip;

    /// `Σ_j (a_j − b_j)²`, summed in dimension order.
    fn squared_distance(a: &[f64], b: &[f64]) -> f64 {
        let mut sum = 0.0;
        for (p, q) in a.iter().zip(b) {
            let diff = p - q;
            sum += diff * diff;
        }
        sum
    }

    fn brute_force(x: &DMatrix<f64>, y: &DVector<f64>, k: usize, query: &[f64]) -> f64 {
        let mut all: Vec<(f64, usize)> = (0..x.nrows())
            .map(|i| {
                let row: Vec<f64> = (0..x.ncols()).map(|j| x[(i, j)]).collect();
                (squared_distance(query, &row), i)
            })
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut sum = 0.0;
        for (_, i) in &all[..k] {
            sum += y[*i];
        }
        sum / k as f64
    }

    #[test]
    fn check_accepts_fitted_models_and_refuses_malformed_ones() {
        let x = DMatrix::from_fn(100, 3, |i, j| ((i * 13 + j * 7) % 17) as f64);
        let y = DVector::from_fn(100, |i, _| i as f64);
        let model = KnnParams {
            k: 5,
            ..KnnParams::default()
        }
        .fit(&x, &y)
        .expect("fit");
        assert!(model.nodes.len() > 1);
        assert_eq!(model.check(3), Ok(()));
        assert!(model.check(2).is_err(), "feature count differs");
        let tamper = |f: &dyn Fn(&mut Knn)| {
            let mut m = model.clone();
            f(&mut m);
            m.check(3)
        };
        assert!(tamper(&|m| m.k = 0).is_err(), "k = 0");
        assert!(tamper(&|m| m.k = 101).is_err(), "k > n");
        assert!(tamper(&|m| {
            m.targets.pop();
        })
        .is_err());
        assert!(
            tamper(&|m| m.nodes[0].left = 0).is_err(),
            "child loops back"
        );
        assert!(
            tamper(&|m| m.nodes[0].right = 99).is_err(),
            "child out of range"
        );
        assert!(tamper(&|m| m.nodes[0].end = 60).is_err(), "root range");
        assert!(tamper(&|m| m.nodes.clear()).is_err(), "no nodes");
        assert!(tamper(&|m| {
            let last = m.nodes.len() - 1;
            m.nodes[last].end += 40;
        })
        .is_err());
    }

    #[test]
    fn matches_brute_force_exactly() {
        let mut rng = Rng::new(42);
        let (n, d) = (2_000, 4);
        let x = DMatrix::from_fn(n, d, |_, _| rng.next_f64() * 10.0 - 5.0);
        let y = DVector::from_fn(n, |_, _| rng.next_f64());
        for k in [1, 5, 31] {
            let model = KnnParams {
                k,
                ..KnnParams::default()
            }
            .fit(&x, &y)
            .expect("fit");
            for _ in 0..200 {
                let query: Vec<f64> = (0..d).map(|_| rng.next_f64() * 12.0 - 6.0).collect();
                let got = model.predict_row(&query);
                let want = brute_force(&x, &y, k, &query);
                assert_eq!(got.to_bits(), want.to_bits(), "k={k} query={query:?}");
            }
        }
    }

    #[test]
    fn batch_predict_on_two_threads_equals_row_by_row() {
        let mut rng = Rng::new(7);
        let x = DMatrix::from_fn(3_000, 3, |_, _| rng.next_f64());
        let y = DVector::from_fn(3_000, |i, _| x[(i, 0)] + x[(i, 2)]);
        let model = KnnParams::default().fit(&x, &y).expect("fit");
        let queries = DMatrix::from_fn(2_500, 3, |_, _| rng.next_f64());
        let batch = model.predict(&queries);
        for i in 0..queries.nrows() {
            let row: Vec<f64> = (0..3).map(|j| queries[(i, j)]).collect();
            assert_eq!(batch[i].to_bits(), model.predict_row(&row).to_bits());
        }
    }

    #[test]
    fn hand_computed_neighbours_and_tie_break_by_index() {
        // Points on a line; query at 2.5 has 2 and 3 at equal distance.
        let x = DMatrix::from_column_slice(6, 1, &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        let y = DVector::from_vec(vec![0.0, 10.0, 20.0, 30.0, 40.0, 50.0]);
        let model = KnnParams {
            k: 3,
            ..KnnParams::default()
        }
        .fit(&x, &y)
        .expect("fit");
        assert_eq!(
            model.neighbours(&[2.5]),
            vec![(0.25, 2), (0.25, 3), (2.25, 1)]
        );
        assert_eq!(model.predict_row(&[2.5]), (20.0 + 30.0 + 10.0) / 3.0);
        assert_eq!(model.predict_row(&[10.0]), (50.0 + 40.0 + 30.0) / 3.0);
        // Duplicated training points: the lower index wins.
        let x = DMatrix::from_column_slice(4, 1, &[1.0, 1.0, 1.0, 1.0]);
        let y = DVector::from_vec(vec![1.0, 2.0, 3.0, 4.0]);
        let model = KnnParams {
            k: 2,
            ..KnnParams::default()
        }
        .fit(&x, &y)
        .expect("fit");
        assert_eq!(model.neighbours(&[0.0]), vec![(1.0, 0), (1.0, 1)]);
        assert_eq!(model.predict_row(&[0.0]), 1.5);
    }

    #[test]
    fn duplicates_across_leaves_still_tie_break_by_index() {
        // 200 identical points force many leaves with equal bounds: pruning must keep ties.
        let x = DMatrix::from_element(200, 2, 3.0);
        let y = DVector::from_fn(200, |i, _| i as f64);
        let model = KnnParams {
            k: 5,
            ..KnnParams::default()
        }
        .fit(&x, &y)
        .expect("fit");
        let idx: Vec<u32> = model.neighbours(&[0.0, 0.0]).iter().map(|p| p.1).collect();
        assert_eq!(idx, vec![0, 1, 2, 3, 4]);
        assert_eq!(model.predict_row(&[0.0, 0.0]), 2.0);
    }

    #[test]
    fn bad_params_and_input_are_rejected() {
        let x = DMatrix::from_column_slice(3, 1, &[1.0, 2.0, 3.0]);
        let y = DVector::from_vec(vec![1.0, 2.0, 3.0]);
        for k in [0, 4] {
            let err = KnnParams {
                k,
                ..KnnParams::default()
            }
            .fit(&x, &y)
            .expect_err("bad k");
            assert!(
                matches!(err, FitError::BadParam { param: "k", .. }),
                "{err:?}"
            );
        }
        let short = DVector::from_vec(vec![1.0, 2.0]);
        let err = KnnParams {
            k: 1,
            ..KnnParams::default()
        }
        .fit(&x, &short)
        .expect_err("shape");
        assert!(matches!(err, FitError::Shape { model: "knn", .. }));
        let nan = DMatrix::from_column_slice(3, 1, &[1.0, f64::INFINITY, 3.0]);
        let err = KnnParams {
            k: 1,
            ..KnnParams::default()
        }
        .fit(&nan, &y)
        .expect_err("non-finite");
        assert_eq!(err, FitError::NonFinite { model: "knn" });
    }

    #[test]
    fn postcard_round_trip_predicts_identically() {
        let mut rng = Rng::new(3);
        let x = DMatrix::from_fn(1_000, 3, |_, _| rng.next_f64());
        let y = DVector::from_fn(1_000, |_, _| rng.next_f64());
        let model = KnnParams::default().fit(&x, &y).expect("fit");
        let queries = DMatrix::from_fn(300, 3, |_, _| rng.next_f64());
        assert_postcard_round_trip(&model, &queries);
    }

    /// Backs README claim [C16]: Every trained member's size is bounded whatever the history.
    #[test]
    fn max_rows_keeps_only_the_most_recent_rows_and_bounds_the_size() {
        let mut rng = Rng::new(11);
        let x = DMatrix::from_fn(3_000, 3, |_, _| rng.next_f64());
        let y = DVector::from_fn(3_000, |_, _| rng.next_f64());
        let params = KnnParams {
            k: 5,
            max_rows: Some(500),
        };
        let bounded = params.fit(&x, &y).expect("fit");
        assert_eq!(bounded.n_rows(), 500);
        assert_eq!(bounded.check(3), Ok(()));
        // Exactly the model fitted on the last 500 rows alone.
        let last = KnnParams::default()
            .fit(
                &x.rows(2_500, 500).clone_owned(),
                &y.rows(2_500, 500).clone_owned(),
            )
            .expect("fit");
        let queries = DMatrix::from_fn(200, 3, |_, _| rng.next_f64());
        assert_eq!(bounded.predict(&queries), last.predict(&queries));
        assert_eq!(
            bounded.predict(&queries)[0],
            brute_force(
                &x.rows(2_500, 500).clone_owned(),
                &y.rows(2_500, 500).clone_owned(),
                5,
                &[queries[(0, 0)], queries[(0, 1)], queries[(0, 2)]]
            )
        );
        // Ten times the rows: the same serialized size.
        let size = |n: usize| {
            let x = DMatrix::from_fn(n, 3, |i, j| ((i * 7 + j * 3) % 101) as f64);
            let y = DVector::from_fn(n, |i, _| i as f64);
            postcard::to_allocvec(&params.fit(&x, &y).expect("fit"))
                .expect("serialize")
                .len()
        };
        let small = size(600);
        assert_eq!(size(6_000), small);
        assert!(small < 40_000, "{small} bytes");
        // Fewer rows than the bound: every row is kept.
        assert_eq!(
            params
                .fit(&x.rows(0, 100).clone_owned(), &y.rows(0, 100).clone_owned())
                .expect("fit")
                .n_rows(),
            100
        );
        let zero = KnnParams {
            k: 1,
            max_rows: Some(0),
        }
        .fit(&x, &y)
        .expect_err("zero");
        assert!(
            matches!(
                zero,
                FitError::BadParam {
                    param: "max_rows",
                    ..
                }
            ),
            "{zero}"
        );
    }
}
