//! The boosting loop: data checks, the f32 copies, sampling, early stopping.

use std::borrow::Cow;

use nalgebra::{DMatrix, DVector};

use super::bins::{Bins, Finder};
use super::grow::Grown;
use super::model::{leaf_value, Gbdt, Node, LEAF};
use super::state::{Grower, Reg};

use super::{GbdtParams, TreeMethod};
use crate::models::{check_xy, FitError};
use crate::rng::Rng;

/// The training data as XGBoost holds it: f32 features (column-major) and targets.
struct Data {
    /// Every row, the early-stopping tail included: `xf[f·n_all + i]`.
    xf: Vec<f32>,
    yf: Vec<f32>,
    n_all: usize,
    /// Rows the trees are grown on (the first `n`).
    n: usize,
    d: usize,
}

impl Data {
    fn new(x: &DMatrix<f64>, y: &DVector<f64>, n: usize) -> Result<Data, FitError> {
        let (n_all, d) = x.shape();
        if d >= LEAF as usize {
            return Err(FitError::Shape {
                model: "gbdt",
                detail: format!("{d} features is too many"),
            });
        }
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
        let mut xf = Vec::with_capacity(n_all * d);
        for j in 0..d {
            for i in 0..n_all {
                xf.push(to_f32(x[(i, j)], "feature value", i)?);
            }
        }
        let yf = (0..n_all)
            .map(|i| to_f32(y[i], "target", i))
            .collect::<Result<_, _>>()?;
        Ok(Data {
            xf,
            yf,
            n_all,
            n,
            d,
        })
    }

    /// The features of the training rows only, column-major (`n` per column).
    fn train_columns(&self) -> Cow<'_, [f32]> {
        if self.n == self.n_all {
            Cow::Borrowed(&self.xf)
        } else {
            let (n, n_all) = (self.n, self.n_all);
            Cow::Owned(
                (0..self.d)
                    .flat_map(|j| self.xf[j * n_all..j * n_all + n].iter().copied())
                    .collect(),
            )
        }
    }

    /// The leaf of `tree` that row `i` reaches.
    fn leaf(&self, tree: &[Node], i: usize) -> f32 {
        leaf_value(tree, |f| self.xf[f * self.n_all + i])
    }
}

/// Early stopping's state: the held-out tail's margins and the best prefix so far.
struct EarlyStop {
    rounds: usize,
    margin: Vec<f32>,
    /// (validation RMSE, trees, nodes) of the best prefix.
    best: Option<(f64, usize, usize)>,
}

impl EarlyStop {
    /// Adds `tree` to the tail's margins; true when `rounds` trees in a row brought no new
    /// best (tree `t` is the latest of `model`'s).
    fn stop_after(&mut self, data: &Data, y: &DVector<f64>, tree: &[Node], model: &Gbdt) -> bool {
        let mut sq = 0.0;
        for (k, m) in self.margin.iter_mut().enumerate() {
            let i = data.n + k;
            *m += data.leaf(tree, i);
            let e = f64::from(*m) - y[i];
            sq += e * e;
        }
        let rmse = (sq / (data.n_all - data.n) as f64).sqrt();
        let trees = model.roots.len();
        if self.best.is_none_or(|(b, _, _)| rmse < b) {
            self.best = Some((rmse, trees, model.nodes.len()));
            false
        } else {
            self.best
                .is_some_and(|(_, at, _)| trees - at >= self.rounds)
        }
    }
}

impl GbdtParams {
    /// Fits the model (module doc: XGBoost's `hist` or `exact` boosting, bit for bit).
    pub fn fit(&self, x: &DMatrix<f64>, y: &DVector<f64>) -> Result<Gbdt, FitError> {
        check_xy("gbdt", x, y, 1)?;
        self.validate()?;
        let n = y.len() - self.held_out(y.len())?;
        if self.standardize_target {
            return self.fit_standardized(x, y, n);
        }
        let data = Data::new(x, y, n)?;
        let base = match self.base_score {
            Some(b) => b as f32,
            None => (y.rows(0, n).sum() / n as f64) as f32,
        };
        let xf_train = data.train_columns();
        let finder = self.finder(&xf_train, n, data.d);
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
            xf: &xf_train,
            finder: &finder,
        };
        Ok(self.boost(&data, y, base, &grower))
    }

    /// Rows held out from the end for early stopping (0 without it).
    fn held_out(&self, n_all: usize) -> Result<usize, FitError> {
        if self.early_stopping_rounds.is_none() {
            return Ok(0);
        }
        let held = (n_all as f64 * self.validation_fraction).ceil() as usize;
        if held == 0 || held >= n_all {
            return Err(FitError::Shape {
                model: "gbdt",
                detail: format!(
                    "early stopping holds out {held} of {n_all} rows; needs at least one row on \
                     each side (more rows or another validation_fraction)"
                ),
            });
        }
        Ok(held)
    }

    /// [`GbdtParams::standardize_target`]: the fit on `(y − mean) / std` of the first `n`
    /// rows (those the trees are fitted on, not the early-stopping tail), scaled back.
    fn fit_standardized(
        &self,
        x: &DMatrix<f64>,
        y: &DVector<f64>,
        n: usize,
    ) -> Result<Gbdt, FitError> {
        let fit_y = y.rows(0, n.max(1));
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
        Ok(model)
    }

    /// The split finder's per-feature data for the `n` training rows.
    fn finder(&self, xf_train: &[f32], n: usize, d: usize) -> Finder {
        match self.tree_method {
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
        }
    }

    /// The rows and the features (both ascending) tree `t` is grown on.
    fn sample(&self, t: usize, n: usize, d: usize) -> (Vec<u32>, Vec<usize>) {
        let mut rng = Rng::derive(self.seed, t as u64);
        let rows: Vec<u32> = if self.subsample < 1.0 {
            (0..n as u32)
                .filter(|_| rng.next_f64() < self.subsample)
                .collect()
        } else {
            (0..n as u32).collect()
        };
        let n_cols = ((self.colsample_bytree * d as f64) as usize).clamp(1, d);
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
        (rows, features)
    }

    /// The boosting rounds: each tree fits the gradients of the margins so far.
    fn boost(&self, data: &Data, y: &DVector<f64>, base: f32, grower: &Grower) -> Gbdt {
        let n = data.n;
        let mut model = Gbdt {
            n_features: data.d,
            base_score: base,
            target_mean: 0.0,
            target_scale: 1.0,
            roots: Vec::new(),
            nodes: Vec::new(),
            threads: self.threads,
        };
        let mut margin = vec![base; n];
        let mut grad = vec![0f32; n];
        let mut early = self.early_stopping_rounds.map(|rounds| EarlyStop {
            rounds,
            margin: vec![base; data.n_all - n],
            best: None,
        });
        for t in 0..self.n_trees {
            for ((g, &m), &yv) in grad.iter_mut().zip(&margin).zip(&data.yf[..n]) {
                *g = m - yv;
            }
            let (rows, features) = self.sample(t, n, data.d);
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
                    *m += data.leaf(&tree, i);
                }
            }
            let root = model.nodes.len() as u32;
            model.roots.push(root);
            model.nodes.extend(tree.iter().map(|nd| Node {
                right: if nd.feature == LEAF {
                    LEAF
                } else {
                    nd.right + root
                },
                ..*nd
            }));
            if early
                .as_mut()
                .is_some_and(|e| e.stop_after(data, y, &tree, &model))
            {
                break;
            }
        }
        if let Some((_, trees, nodes)) = early.and_then(|e| e.best) {
            model.roots.truncate(trees);
            model.nodes.truncate(nodes);
        }
        model
    }
}
