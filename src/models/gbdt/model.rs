//! The fitted model: its nodes, the serialised form and the checks on load.

use serde::{Deserialize, Serialize};

/// A fitted boosted model: `base_score` plus the sum of its trees.
///
/// Serialised as `n_features`, `base_score`, the first node of each tree and the nodes packed
/// into one byte string (12 little-endian bytes each); loading checks every tree
/// ([`GbdtWire`]), so a damaged file cannot make prediction index out of bounds or loop.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "GbdtWire", into = "GbdtWire")]
pub struct Gbdt {
    pub n_features: usize,
    pub(super) base_score: f32,
    /// Predictions are `target_mean + target_scale · (f32 sum)`; (0, 1) unless fitted with
    /// [`GbdtParams::standardize_target`].
    pub(super) target_mean: f64,
    pub(super) target_scale: f64,
    /// Index of each tree's root in `nodes`; tree t ends where tree t+1 starts.
    pub(super) roots: Vec<u32>,
    pub(super) nodes: Vec<Node>,
    /// Threads [`Regressor::predict`] may use: the fit's `threads`, 2 for a loaded model
    /// ([`Gbdt::set_threads`] changes it); not saved, and results do not depend on it.
    pub(super) threads: usize,
}

/// One node, 12 bytes, trees in preorder: the left child of an internal node is the next node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Node {
    /// The split feature, or [`LEAF`].
    pub(super) feature: u32,
    /// The threshold of an internal node (`x < value` goes left), the value of a leaf.
    pub(super) value: f32,
    /// The right child of an internal node, [`LEAF`] for a leaf.
    pub(super) right: u32,
}

pub(super) const LEAF: u32 = u32::MAX;
pub(super) const NODE_BYTES: usize = 12;

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
pub(super) struct GbdtWire {
    pub(super) n_features: usize,
    pub(super) base_score: f32,
    pub(super) target_mean: f64,
    pub(super) target_scale: f64,
    pub(super) roots: Vec<u32>,
    #[serde(with = "crate::models::cart::packed")]
    pub(super) nodes: Vec<u8>,
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

    pub(super) fn tree_range(&self, t: usize) -> (usize, usize) {
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

/// The leaf value a row reaches in one preorder tree; `value(f)` is the row's f32 feature f.
pub(super) fn leaf_value(tree: &[Node], value: impl Fn(usize) -> f32) -> f32 {
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
