//! The state a tree grows with: gradient statistics, the regularisation and gain of XGBoost, a
//! split, one level's nodes, the tree under construction and the grower's settings. Shared by
//! the split search (`split.rs`) and the growth of a tree (`grow.rs`), which import it and not
//! each other.

use super::bins::Finder;

/// XGBoost's `kRtEps`: a split must reduce the loss by more than this.
pub(super) const RT_EPS: f32 = 1e-6;

/// Gradient and hessian sums (XGBoost's `GradStats`, in f64).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Stats {
    pub(super) g: f64,
    pub(super) h: f64,
}

impl Stats {
    pub(super) fn add(&mut self, g: f32) {
        self.g += f64::from(g);
        self.h += 1.0;
    }

    pub(super) fn sub(self, o: Stats) -> Stats {
        Stats {
            g: self.g - o.g,
            h: self.h - o.h,
        }
    }
}

/// The regularization terms, as XGBoost holds them (f32 parameters promoted to f64).
#[derive(Debug, Clone, Copy)]
pub(super) struct Reg {
    pub(super) lambda: f64,
    pub(super) alpha: f64,
    pub(super) min_child_weight: f64,
}

impl Reg {
    pub(super) fn threshold_l1(&self, g: f64) -> f64 {
        if g > self.alpha {
            g - self.alpha
        } else if g < -self.alpha {
            g + self.alpha
        } else {
            0.0
        }
    }

    /// `CalcWeight`: −T(G)/(H+λ), rounded to f32.
    pub(super) fn weight(&self, s: Stats) -> f32 {
        if s.h <= 0.0 {
            return 0.0;
        }
        (-self.threshold_l1(s.g) / (s.h + self.lambda)) as f32
    }

    /// `CalcGain`: T(G)²/(H+λ), rounded to f32.
    pub(super) fn score(&self, s: Stats) -> f32 {
        if s.h <= 0.0 {
            return 0.0;
        }
        let t = self.threshold_l1(s.g);
        (t * t / (s.h + self.lambda)) as f32
    }
}

/// The best split found for a node (XGBoost's `SplitEntry`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Split {
    pub(super) loss_chg: f32,
    pub(super) feature: u32,
    pub(super) threshold: f32,
    /// `Hist`: the lowest bin that goes right.
    pub(super) bin: u32,
    /// `Hist`: the gradient sums of the rows going left, added up over the node's histogram
    /// bins below `bin` (XGBoost hist's `left_sum`, from which it sets the children's
    /// statistics; the right child's are the node's less these). `Exact` does not use it: its
    /// partition sums each side's rows, as XGBoost `exact` does.
    pub(super) left: Stats,
}

impl Split {
    pub(super) const NONE: Split = Split {
        loss_chg: 0.0,
        feature: 0,
        threshold: 0.0,
        bin: 0,
        left: Stats { g: 0.0, h: 0.0 },
    };

    /// XGBoost's `NeedReplace`: a strictly better loss change wins; on a tie the lower
    /// feature index.
    pub(super) fn update(&mut self, c: Split) {
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

/// One level of the tree being grown: the nodes to split and what their searches read.
pub(super) struct Level<'a> {
    pub(super) grad: &'a [f32],
    /// The features to consider (ascending).
    pub(super) features: &'a [usize],
    /// The ids of the nodes to split, in build order (sibling pairs together below the root).
    pub(super) expand: &'a [usize],
    /// Every node built so far, by id.
    pub(super) nodes: &'a [BuildNode],
    /// The rows of every node, by id.
    pub(super) node_rows: &'a [&'a [u32]],
}

impl Level<'_> {
    /// The rows of the `k`-th node of the level.
    pub(super) fn rows(&self, k: usize) -> &[u32] {
        self.node_rows[self.expand[k]]
    }
}

/// A tree under construction, in XGBoost's node order (children allocated in pairs).
pub(super) struct BuildNode {
    pub(super) stats: Stats,
    pub(super) weight: f32,
    pub(super) score: f32,
    pub(super) split: Option<Split>,
    pub(super) loss_chg: f32,
    pub(super) children: (usize, usize),
    pub(super) parent: usize,
    pub(super) leaf: f32,
}

/// Everything one boosting round needs besides the gradients.
pub(super) struct Grower<'a> {
    pub(super) reg: Reg,
    pub(super) eta: f32,
    pub(super) gamma: f32,
    pub(super) max_depth: usize,
    pub(super) threads: usize,
    pub(super) n: usize,
    pub(super) xf: &'a [f32],
    pub(super) finder: &'a Finder,
}
