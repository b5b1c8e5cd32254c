//! Prediction: one row, and blocks of rows walking the trees branch-free.

use nalgebra::{DMatrix, DVector};

use super::model::{Gbdt, Node, LEAF};
use crate::models::{split_rows, Regressor};

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
