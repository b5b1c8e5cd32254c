//! Growing one tree: level by level, rows partitioned in place, pruning, and the conversion to
//! preorder nodes.

use super::bins::Finder;
use super::model::{Node, LEAF};
use super::state::{BuildNode, Grower, Level, Split, Stats, RT_EPS};

/// One grown tree and where the training rows ended.
pub(super) struct Grown {
    /// Preorder, child indices relative to the tree.
    pub(super) tree: Vec<Node>,
    /// The rows grown on, grouped by leaf.
    pub(super) rows: Vec<u32>,
    /// `(start, end, value)`: `rows[start..end]` reach a leaf of that value.
    pub(super) leaves: Vec<(usize, usize, f32)>,
}

impl Grower<'_> {
    /// Grows one tree on `rows` (ascending) with gradients `grad`, considering `features`
    /// (ascending). Returns the tree in preorder and, for every leaf, the rows that reach it
    /// (the permuted `rows` and `(start, end, leaf value)` ranges of it).
    pub(super) fn grow(&self, grad: &[f32], rows: Vec<u32>, features: &[usize]) -> Grown {
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
                let level = Level {
                    grad,
                    features,
                    expand: &expand,
                    nodes: &nodes,
                    node_rows: &node_rows,
                };
                match self.finder {
                    Finder::Exact(sorted) => self.find_exact(sorted, &level),
                    Finder::Hist(bins) => {
                        let (b, h) = self.find_hist(bins, &level, hists);
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
                    let parent = nodes[nid].stats;
                    let (mid, left, right) =
                        self.partition(&mut idx[a..b], &mut scratch, grad, best, parent);
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

    pub(super) fn new_node(&self, stats: Stats, parent: usize) -> BuildNode {
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

    /// Partitions `rows` (ascending) of a node with statistics `parent` in place, stably: the
    /// rows going left first, then those going right. Returns the number going left and the
    /// gradient sums of both sides: `Exact` sums each side's rows in ascending row order
    /// (XGBoost `exact`), `Hist` takes the split's histogram sums (XGBoost hist's `left_sum`
    /// and `parent − left_sum`), so its partition only moves rows.
    pub(super) fn partition(
        &self,
        rows: &mut [u32],
        scratch: &mut Vec<u32>,
        grad: &[f32],
        split: Split,
        parent: Stats,
    ) -> (usize, Stats, Stats) {
        let f = split.feature as usize;
        match self.finder {
            Finder::Hist(bins) => {
                let (bin, d, b) = (split.bin, bins.d, &bins.bins[..]);
                let (mid, _, _) = partition_rows::<false>(rows, scratch, grad, |r| {
                    u32::from(b[r as usize * d + f]) < bin
                });
                (mid, split.left, parent.sub(split.left))
            }
            Finder::Exact(_) => {
                let col = &self.xf[f * self.n..(f + 1) * self.n];
                partition_rows::<true>(rows, scratch, grad, |r| col[r as usize] < split.threshold)
            }
        }
    }

    /// XGBoost's `prune` updater: a split whose children are both leaves and whose loss change
    /// is below `gamma` becomes a leaf, repeatedly, from the leaves up.
    pub(super) fn prune(&self, nodes: &mut [BuildNode]) {
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
}

/// [`Grower::partition`] for the test `goes_left`. Branch-free (the side is unpredictable):
/// every row is written to both places and only its side's count advances. With `SUMS`, its
/// gradient is added to its side's sum (0.0 to the other's, which changes no sum: a sum that
/// starts at +0.0 is never −0.0), so each side's sum is taken over its rows in ascending
/// order, as [`Stats::add`] would; without, `grad` is not read and both sides' gradient
/// sums are 0 (their counts are still counted). Kept out of line so that its sums and counts
/// stay in registers (inlined into `grow`, the sums were added through the stack, at twice
/// the cost).
#[inline(never)]
pub(super) fn partition_rows<const SUMS: bool>(
    rows: &mut [u32],
    scratch: &mut Vec<u32>,
    grad: &[f32],
    goes_left: impl Fn(u32) -> bool,
) -> (usize, Stats, Stats) {
    let (mut nl, mut nr) = (0usize, 0usize);
    let (mut gl, mut gr) = (0f64, 0f64);
    scratch.clear();
    scratch.resize(rows.len(), 0);
    for i in 0..rows.len() {
        let r = rows[i];
        let left = goes_left(r);
        rows[nl] = r;
        scratch[nr] = r;
        if SUMS {
            let g = f64::from(grad[r as usize]);
            gl += if left { g } else { 0.0 };
            gr += if left { 0.0 } else { g };
        }
        nl += usize::from(left);
        nr += usize::from(!left);
    }
    rows[nl..].copy_from_slice(&scratch[..nr]);
    // The hessian sum is the count (h = 1 per row, exact in f64).
    let side = |g, n: usize| Stats { g, h: n as f64 };
    (nl, side(gl, nl), side(gr, nr))
}

/// The gradient sums of `rows`, added in their order.
pub(super) fn row_stats(rows: &[u32], grad: &[f32]) -> Stats {
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
pub(super) fn to_preorder(nodes: &[BuildNode]) -> Vec<Node> {
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
