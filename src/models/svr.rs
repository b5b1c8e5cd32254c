//! Epsilon-support-vector regression solved by SMO, written to follow libsvm step by step so
//! that it reproduces scikit-learn's `SVR()` (which wraps libsvm). Pure code: no I/O, no clock.
//!
//! Algorithm (libsvm `solve_epsilon_svr`, Chang & Lin 2011, "LIBSVM: a library for support
//! vector machines", ACM TIST 2(3)): with n training rows the dual has 2n variables
//! `a = (alpha, alpha*)`,
//!
//! ```text
//! min ½ aᵀ Q a + pᵀ a   s.t.  sᵀ a = 0,  0 ≤ a_k ≤ C,
//! s_k = +1, p_k = ε − y_k (k < n);   s_k = −1, p_k = ε + y_{k−n} (k ≥ n);
//! Q_kl = s_k s_l K(x_{k mod n}, x_{l mod n}).
//! ```
//!
//! SMO picks two variables per iteration with the second-order working-set selection of Fan,
//! Chen & Lin 2005 ("Working set selection using second order information for training SVM",
//! JMLR 6; libsvm `select_working_set`), solves the two-variable sub-problem in closed form and
//! clips it to the box exactly as libsvm `Solver::Solve` does, and stops when the maximal
//! violation `m(a) − M(a)` falls below `tol`. Shrinking (libsvm `do_shrinking`, with the
//! gradient reconstruction and the one-time unshrink at 10·tol) is done as in libsvm, so the
//! sequence of working sets is the same as scikit-learn's up to floating-point rounding.
//! `rho` is libsvm `calculate_rho`: the mean of `s_k G_k` over free variables, else the midpoint
//! of the bounds. The model is `f(x) = Σ coef_i K(sv_i, x) − rho` with `coef_i = alpha_i −
//! alpha*_i`; the support vectors are the rows with a non-zero coefficient.
//!
//! Kernels: RBF `exp(−γ‖x−z‖²)` (training uses precomputed squared norms, as libsvm does) and
//! linear `x·z`. `Gamma::Scale` is scikit-learn's `1 / (d · Var(X))` over all entries of X
//! (Var computed with numpy's pairwise summation so γ matches to the last bit in practice).
//!
//! Cost: each SMO iteration is O(n) plus at most two kernel rows of O(n·d) when they are not
//! cached; the number of iterations grows roughly like n to n², so training is O(n²)-ish kernel
//! evaluations: fit on a few thousand rows (train.rs caps the SVR rows). Memory: the data, six
//! 2n-vectors, and the LRU cache of kernel rows (f32, n entries per row) bounded by `cache_mb`
//! (at least two rows). Prediction is O(n_sv · d) per row.
//!
//! Defaults (`SvrParams::default()`) are scikit-learn's `SVR()`: RBF kernel, C = 1, ε = 0.1,
//! γ = "scale", tol = 1e-3, cache 200 MB, shrinking on, no iteration limit.
//!
//! Precision: kernel values are cached as f32 exactly like libsvm's `Qfloat` (everything else,
//! gradients, alphas, rho, prediction kernels, is f64). That is deliberate: with the same
//! rounding SMO takes the same working sets as scikit-learn, and on the golden fixtures the
//! predictions agree to ~1e-12 relative and the support-vector counts are equal; f64 caching
//! gives an equally valid optimum (within tol) that differs from scikit-learn by up to ~1e-3.
//! The f32 rounding (~6e-8 relative) is far below the stopping tolerance, and halves the cache.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::{check_xy, predict_split, FitError, Regressor};

const MODEL: &str = "svr";

/// libsvm's TAU: the curvature used when the quadratic coefficient is not positive.
const TAU: f64 = 1e-12;

/// Storage type of cached kernel values (libsvm's `Qfloat`).
type Qfloat = f32;

/// Kernel choice. `gamma` for RBF is resolved at fit time ("scale" = 1 / (d · Var(x))).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Kernel {
    Linear,
    Rbf,
}

/// Gamma setting for the RBF kernel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Gamma {
    /// scikit-learn's "scale": 1 / (n_features · X.var()).
    Scale,
    Value(f64),
}

/// Hyperparameters (scikit-learn `SVR()` defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct SvrParams {
    pub kernel: Kernel,
    pub c: f64,
    pub epsilon: f64,
    pub gamma: Gamma,
    pub tol: f64,
    /// Kernel row cache size in megabytes (libsvm's cache_size, default 200).
    pub cache_mb: usize,
    pub max_iter: Option<usize>,
    /// Fit on `(y − mean) / std` and map predictions back (not in scikit-learn; default off).
    /// One-minute log returns (~1e-3) all lie inside `epsilon = 0.1`, which would leave no
    /// support vectors: `models::fit::fit_models` turns this on so epsilon is in units of the
    /// target's standard deviation.
    pub standardize_target: bool,
}

impl Default for SvrParams {
    fn default() -> Self {
        SvrParams {
            kernel: Kernel::Rbf,
            c: 1.0,
            epsilon: 0.1,
            gamma: Gamma::Scale,
            tol: 1e-3,
            cache_mb: 200,
            max_iter: None,
            standardize_target: false,
        }
    }
}

/// A fitted SVR: `f(x) = Σ coef_i K(sv_i, x) + intercept`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Svr {
    pub(crate) kernel: Kernel,
    pub gamma: f64,
    /// Support vectors, row-major, `n_sv × n_features`.
    pub support_vectors: Vec<f64>,
    pub(crate) n_features: usize,
    /// Dual coefficients (alpha_i - alpha_i*) of each support vector.
    pub dual_coef: Vec<f64>,
    pub intercept: f64,
    /// Target standardisation undone at predict time: `mean + scale · f(x)` (0 and 1 when off).
    pub(crate) target_mean: f64,
    pub(crate) target_scale: f64,
}

impl SvrParams {
    fn check(&self) -> Result<(), FitError> {
        let bad = |param: &'static str, value: f64, expected: &'static str| {
            Err(FitError::BadParam {
                model: MODEL,
                param,
                value: value.to_string(),
                expected,
            })
        };
        if !(self.c > 0.0 && self.c.is_finite()) {
            return bad("c", self.c, "a finite number > 0");
        }
        if !(self.epsilon >= 0.0 && self.epsilon.is_finite()) {
            return bad("epsilon", self.epsilon, "a finite number >= 0");
        }
        if !(self.tol > 0.0 && self.tol.is_finite()) {
            return bad("tol", self.tol, "a finite number > 0");
        }
        if let Gamma::Value(g) = self.gamma {
            if !(g > 0.0 && g.is_finite()) {
                return bad("gamma", g, "a finite number > 0");
            }
        }
        if self.cache_mb == 0 {
            return Err(FitError::BadParam {
                model: MODEL,
                param: "cache_mb",
                value: "0".to_string(),
                expected: "at least 1 megabyte",
            });
        }
        Ok(())
    }

    /// Fits epsilon-SVR on the rows of `x` (n×d) and targets `y`.
    pub fn fit(&self, x: &DMatrix<f64>, y: &DVector<f64>) -> Result<Svr, FitError> {
        self.check()?;
        check_xy(MODEL, x, y, 1)?;
        let n = x.nrows();
        let d = x.ncols();
        // Row-major copy: kernel rows read whole samples.
        let mut data = Vec::with_capacity(n * d);
        for i in 0..n {
            data.extend(x.row(i).iter());
        }
        let gamma = match self.gamma {
            Gamma::Value(g) => g,
            Gamma::Scale => scale_gamma(&data, d),
        };
        let kernel = KernelData::new(&data, d, self.kernel, gamma);
        let (target_mean, target_scale) = if self.standardize_target {
            let mean = y.mean();
            let std = y.variance().sqrt();
            (mean, if std > 0.0 { std } else { 1.0 })
        } else {
            (0.0, 1.0)
        };
        let y_fit: Vec<f64> = y.iter().map(|v| (v - target_mean) / target_scale).collect();
        let mut solver = Solver::new(
            kernel,
            &y_fit,
            self.c,
            self.epsilon,
            self.tol,
            self.cache_mb,
        );
        let (alpha, rho) = solver.solve(true, self.max_iter);

        let mut support_vectors = Vec::new();
        let mut dual_coef = Vec::new();
        for i in 0..n {
            let coef = alpha[i] - alpha[i + n];
            if coef != 0.0 {
                dual_coef.push(coef);
                support_vectors.extend_from_slice(&data[i * d..(i + 1) * d]);
            }
        }
        Ok(Svr {
            kernel: self.kernel,
            gamma,
            support_vectors,
            n_features: d,
            dual_coef,
            intercept: -rho,
            target_mean,
            target_scale,
        })
    }
}

/// scikit-learn's `gamma="scale"`: `1 / (d · X.var())`, or 1 when the variance is zero.
fn scale_gamma(data: &[f64], d: usize) -> f64 {
    let count = data.len() as f64;
    let mean = pairwise_sum(data) / count;
    let sq: Vec<f64> = data
        .iter()
        .map(|v| {
            let c = v - mean;
            c * c
        })
        .collect();
    let var = pairwise_sum(&sq) / count;
    if var != 0.0 {
        1.0 / (d as f64 * var)
    } else {
        1.0
    }
}

/// numpy's pairwise summation (`pairwise_sum` in umath loops): 8 accumulators below 128
/// values, recursive halving above, so `X.var()` is reproduced to the bit.
fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for v in a {
            res += v;
        }
        res
    } else if n <= 128 {
        let mut r = [a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]];
        let mut i = 8;
        while i < n - (n % 8) {
            for (k, acc) in r.iter_mut().enumerate() {
                *acc += a[i + k];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for v in &a[i..] {
            res += v;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(&a[..n2]) + pairwise_sum(&a[n2..])
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut sum = 0.0;
    for (u, v) in a.iter().zip(b) {
        sum += u * v;
    }
    sum
}

/// Training samples and the kernel between them (libsvm `Kernel`).
struct KernelData<'a> {
    data: &'a [f64],
    d: usize,
    kind: Kernel,
    gamma: f64,
    /// Squared norms (RBF only).
    sq: Vec<f64>,
}

impl<'a> KernelData<'a> {
    fn new(data: &'a [f64], d: usize, kind: Kernel, gamma: f64) -> Self {
        let sq = match kind {
            Kernel::Rbf => data.chunks_exact(d).map(|r| dot(r, r)).collect(),
            Kernel::Linear => Vec::new(),
        };
        KernelData {
            data,
            d,
            kind,
            gamma,
            sq,
        }
    }

    fn n(&self) -> usize {
        self.data.len() / self.d
    }

    fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.d..(i + 1) * self.d]
    }

    fn eval(&self, i: usize, j: usize) -> f64 {
        let dt = dot(self.row(i), self.row(j));
        match self.kind {
            Kernel::Linear => dt,
            Kernel::Rbf => (-self.gamma * (self.sq[i] + self.sq[j] - 2.0 * dt)).exp(),
        }
    }

    /// Fills `out` (length n) with K(x_i, x_j) for every j.
    fn fill_row(&self, i: usize, out: &mut [Qfloat]) {
        for (j, v) in out.iter_mut().enumerate() {
            *v = self.eval(i, j) as Qfloat;
        }
    }
}

/// LRU cache of full kernel rows, keyed by training row (libsvm `Cache`, as `SVR_Q` uses it:
/// always whole rows, never swapped).
struct RowCache {
    rows: Vec<Vec<Qfloat>>,
    /// Doubly linked LRU list over row indices; index `n` is the sentinel.
    prev: Vec<usize>,
    next: Vec<usize>,
    capacity: usize,
    used: usize,
}

impl RowCache {
    fn new(n: usize, cache_mb: usize) -> Self {
        // libsvm: bytes / sizeof(Qfloat), minus the row headers, at least two rows.
        let entry = std::mem::size_of::<Qfloat>();
        let entries = (cache_mb.saturating_mul(1 << 20) / entry).saturating_sub(n * 32 / entry);
        let entries = entries.max(2 * n);
        let capacity = (entries / n.max(1)).clamp(2, n.max(2));
        RowCache {
            rows: vec![Vec::new(); n],
            prev: vec![n; n + 1],
            next: vec![n; n + 1],
            capacity,
            used: 0,
        }
    }

    fn unlink(&mut self, i: usize) {
        let (p, nx) = (self.prev[i], self.next[i]);
        self.next[p] = nx;
        self.prev[nx] = p;
    }

    fn push_back(&mut self, i: usize) {
        let head = self.rows.len();
        let last = self.prev[head];
        self.next[last] = i;
        self.prev[i] = last;
        self.next[i] = head;
        self.prev[head] = i;
    }

    /// Makes row `i` present and most recently used.
    fn ensure(&mut self, i: usize, kernel: &KernelData) {
        if !self.rows[i].is_empty() {
            self.unlink(i);
            self.push_back(i);
            return;
        }
        let mut buf = Vec::new();
        if self.used == self.capacity {
            let head = self.rows.len();
            let old = self.next[head];
            self.unlink(old);
            buf = std::mem::take(&mut self.rows[old]);
            self.used -= 1;
        }
        buf.resize(kernel.n(), 0.0);
        kernel.fill_row(i, &mut buf);
        self.rows[i] = buf;
        self.push_back(i);
        self.used += 1;
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Lower,
    Upper,
    Free,
}

/// libsvm `Solver` specialised to `SVR_Q` (2n variables, one C for all).
struct Solver<'a> {
    /// Number of variables, 2n.
    l: usize,
    active_size: usize,
    /// ±1 (libsvm keeps `y` in the solver and `sign` in SVR_Q; they are always equal).
    y: Vec<f64>,
    g: Vec<f64>,
    g_bar: Vec<f64>,
    alpha: Vec<f64>,
    status: Vec<Status>,
    p: Vec<f64>,
    active_set: Vec<usize>,
    /// Q_kk.
    qd: Vec<f64>,
    /// Training row of each variable (k mod n before shrinking permutes them).
    index: Vec<usize>,
    c: f64,
    eps: f64,
    unshrink: bool,
    kernel: KernelData<'a>,
    cache: RowCache,
}

impl<'a> Solver<'a> {
    fn new(
        kernel: KernelData<'a>,
        y: &[f64],
        c: f64,
        epsilon: f64,
        tol: f64,
        cache_mb: usize,
    ) -> Self {
        let n = y.len();
        let l = 2 * n;
        let mut sign = vec![1.0; l];
        let mut p = vec![0.0; l];
        let mut index = vec![0; l];
        let mut qd = vec![0.0; l];
        for k in 0..n {
            sign[k + n] = -1.0;
            p[k] = epsilon - y[k];
            p[k + n] = epsilon + y[k];
            index[k] = k;
            index[k + n] = k;
            qd[k] = kernel.eval(k, k);
            qd[k + n] = qd[k];
        }
        Solver {
            l,
            active_size: l,
            y: sign,
            // alpha starts at 0, so G = p and G_bar = 0.
            g: p.clone(),
            g_bar: vec![0.0; l],
            alpha: vec![0.0; l],
            status: vec![Status::Lower; l],
            p,
            active_set: (0..l).collect(),
            qd,
            index,
            c,
            eps: tol,
            unshrink: false,
            cache: RowCache::new(n, cache_mb),
            kernel,
        }
    }

    fn is_upper(&self, i: usize) -> bool {
        self.status[i] == Status::Upper
    }

    fn is_lower(&self, i: usize) -> bool {
        self.status[i] == Status::Lower
    }

    fn is_free(&self, i: usize) -> bool {
        self.status[i] == Status::Free
    }

    fn update_status(&mut self, i: usize) {
        self.status[i] = if self.alpha[i] >= self.c {
            Status::Upper
        } else if self.alpha[i] <= 0.0 {
            Status::Lower
        } else {
            Status::Free
        };
    }

    /// Loads the kernel row of variable `i`; returns its training row index.
    fn load(&mut self, i: usize) -> usize {
        let r = self.index[i];
        self.cache.ensure(r, &self.kernel);
        r
    }

    fn swap_index(&mut self, i: usize, j: usize) {
        self.y.swap(i, j);
        self.g.swap(i, j);
        self.status.swap(i, j);
        self.alpha.swap(i, j);
        self.p.swap(i, j);
        self.active_set.swap(i, j);
        self.g_bar.swap(i, j);
        self.qd.swap(i, j);
        self.index.swap(i, j);
    }

    /// Runs SMO; returns alpha in the original variable order and rho.
    fn solve(&mut self, shrinking: bool, max_iter: Option<usize>) -> (Vec<f64>, f64) {
        let l = self.l;
        let mut iter = 0usize;
        let mut counter = l.min(1000) + 1;
        loop {
            if max_iter.is_some_and(|m| iter >= m) {
                break;
            }
            counter -= 1;
            if counter == 0 {
                counter = l.min(1000);
                if shrinking {
                    self.do_shrinking();
                }
            }
            let (i, j) = match self.select_working_set() {
                Some(pair) => pair,
                None => {
                    self.reconstruct_gradient();
                    self.active_size = l;
                    match self.select_working_set() {
                        Some(pair) => {
                            counter = 1;
                            pair
                        }
                        None => break,
                    }
                }
            };
            iter += 1;
            self.take_step(i, j);
        }
        let rho = self.calculate_rho();
        let mut alpha = vec![0.0; l];
        for k in 0..l {
            alpha[self.active_set[k]] = self.alpha[k];
        }
        (alpha, rho)
    }

    /// Solves the two-variable sub-problem on (i, j) and updates G and G_bar.
    fn take_step(&mut self, i: usize, j: usize) {
        let ri = self.load(i);
        let rj = self.load(j);
        let c = self.c;
        let (yi, yj) = (self.y[i], self.y[j]);
        let kij = f64::from(self.cache.rows[ri][self.index[j]]);
        let old_ai = self.alpha[i];
        let old_aj = self.alpha[j];
        let mut ai = old_ai;
        let mut aj = old_aj;
        // Q_ij = yi yj K; both branches' curvature is QD_i + QD_j − 2K.
        let mut quad = self.qd[i] + self.qd[j] - 2.0 * kij;
        if quad <= 0.0 {
            quad = TAU;
        }
        if yi != yj {
            let delta = (-self.g[i] - self.g[j]) / quad;
            let diff = ai - aj;
            ai += delta;
            aj += delta;
            if diff > 0.0 {
                if aj < 0.0 {
                    aj = 0.0;
                    ai = diff;
                }
            } else if ai < 0.0 {
                ai = 0.0;
                aj = -diff;
            }
            if diff > 0.0 {
                // C_i − C_j = 0 for SVR.
                if ai > c {
                    ai = c;
                    aj = c - diff;
                }
            } else if aj > c {
                aj = c;
                ai = c + diff;
            }
        } else {
            let delta = (self.g[i] - self.g[j]) / quad;
            let sum = ai + aj;
            ai -= delta;
            aj += delta;
            // libsvm's two clips, the second with the roles of i and j swapped.
            (ai, aj) = clip_fixed_sum(ai, aj, sum, c);
            (aj, ai) = clip_fixed_sum(aj, ai, sum, c);
        }
        self.alpha[i] = ai;
        self.alpha[j] = aj;

        let dai = (ai - old_ai) * yi;
        let daj = (aj - old_aj) * yj;
        {
            let row_i = &self.cache.rows[ri];
            let row_j = &self.cache.rows[rj];
            let active = self.active_size;
            for ((gk, &yk), &ik) in self.g[..active]
                .iter_mut()
                .zip(&self.y[..active])
                .zip(&self.index[..active])
            {
                *gk += yk * (f64::from(row_i[ik]) * dai + f64::from(row_j[ik]) * daj);
            }
        }

        let ui = self.is_upper(i);
        let uj = self.is_upper(j);
        self.update_status(i);
        self.update_status(j);
        for (k, was_upper) in [(i, ui), (j, uj)] {
            if was_upper != self.is_upper(k) {
                let rk = self.load(k);
                let row = &self.cache.rows[rk];
                // ± C · Q_k, with Q_k[m] = y_k y_m K.
                let ck = if was_upper { -c } else { c } * self.y[k];
                for ((gb, &ym), &im) in self.g_bar.iter_mut().zip(&self.y).zip(&self.index) {
                    *gb += ym * (f64::from(row[im]) * ck);
                }
            }
        }
    }

    /// WSS3 (Fan, Chen & Lin 2005): i maximises −y_i G_i over I_up, j minimises the
    /// second-order objective decrease over I_low. `None` when optimal within `eps`.
    fn select_working_set(&mut self) -> Option<(usize, usize)> {
        let active = self.active_size;
        let mut gmax = f64::NEG_INFINITY;
        let mut gmax2 = f64::NEG_INFINITY;
        let mut gmax_idx = None;
        let mut gmin_idx = None;
        let mut obj_diff_min = f64::INFINITY;

        for t in 0..active {
            if self.y[t] > 0.0 {
                if !self.is_upper(t) && -self.g[t] >= gmax {
                    gmax = -self.g[t];
                    gmax_idx = Some(t);
                }
            } else if !self.is_lower(t) && self.g[t] >= gmax {
                gmax = self.g[t];
                gmax_idx = Some(t);
            }
        }

        if let Some(i) = gmax_idx {
            let ri = self.load(i);
            let row_i = &self.cache.rows[ri];
            let qdi = self.qd[i];
            for j in 0..active {
                let grad_diff = if self.y[j] > 0.0 {
                    if self.status[j] == Status::Lower {
                        continue;
                    }
                    if self.g[j] >= gmax2 {
                        gmax2 = self.g[j];
                    }
                    gmax + self.g[j]
                } else {
                    if self.status[j] == Status::Upper {
                        continue;
                    }
                    if -self.g[j] >= gmax2 {
                        gmax2 = -self.g[j];
                    }
                    gmax - self.g[j]
                };
                if grad_diff > 0.0 {
                    let quad = qdi + self.qd[j] - 2.0 * f64::from(row_i[self.index[j]]);
                    let obj_diff = if quad > 0.0 {
                        -(grad_diff * grad_diff) / quad
                    } else {
                        -(grad_diff * grad_diff) / TAU
                    };
                    if obj_diff <= obj_diff_min {
                        gmin_idx = Some(j);
                        obj_diff_min = obj_diff;
                    }
                }
            }
        } else {
            // No i: gmax stays −inf, only gmax2 is gathered (as libsvm does).
            for j in 0..active {
                if self.y[j] > 0.0 {
                    if !self.is_lower(j) && self.g[j] >= gmax2 {
                        gmax2 = self.g[j];
                    }
                } else if !self.is_upper(j) && -self.g[j] >= gmax2 {
                    gmax2 = -self.g[j];
                }
            }
        }

        match (gmax_idx, gmin_idx) {
            (Some(i), Some(j)) if gmax + gmax2 >= self.eps => Some((i, j)),
            _ => None,
        }
    }

    fn be_shrunk(&self, i: usize, gmax1: f64, gmax2: f64) -> bool {
        match self.status[i] {
            Status::Upper => {
                if self.y[i] > 0.0 {
                    -self.g[i] > gmax1
                } else {
                    -self.g[i] > gmax2
                }
            }
            Status::Lower => {
                if self.y[i] > 0.0 {
                    self.g[i] > gmax2
                } else {
                    self.g[i] > gmax1
                }
            }
            Status::Free => false,
        }
    }

    fn do_shrinking(&mut self) {
        let mut gmax1 = f64::NEG_INFINITY; // max { −y_i G_i | i in I_up }
        let mut gmax2 = f64::NEG_INFINITY; // max { y_i G_i | i in I_low }
        for i in 0..self.active_size {
            let g = self.g[i];
            if self.y[i] > 0.0 {
                if !self.is_upper(i) && -g >= gmax1 {
                    gmax1 = -g;
                }
                if !self.is_lower(i) && g >= gmax2 {
                    gmax2 = g;
                }
            } else {
                if !self.is_upper(i) && -g >= gmax2 {
                    gmax2 = -g;
                }
                if !self.is_lower(i) && g >= gmax1 {
                    gmax1 = g;
                }
            }
        }
        if !self.unshrink && gmax1 + gmax2 <= self.eps * 10.0 {
            self.unshrink = true;
            self.reconstruct_gradient();
            self.active_size = self.l;
        }
        let mut i = 0;
        while i < self.active_size {
            if self.be_shrunk(i, gmax1, gmax2) {
                self.active_size -= 1;
                while self.active_size > i {
                    if !self.be_shrunk(self.active_size, gmax1, gmax2) {
                        self.swap_index(i, self.active_size);
                        break;
                    }
                    self.active_size -= 1;
                }
            }
            i += 1;
        }
    }

    /// Rebuilds G of the inactive variables from G_bar and the free variables.
    fn reconstruct_gradient(&mut self) {
        let l = self.l;
        let active = self.active_size;
        if active == l {
            return;
        }
        for j in active..l {
            self.g[j] = self.g_bar[j] + self.p[j];
        }
        let nr_free = (0..active).filter(|&j| self.is_free(j)).count();
        if nr_free * l > 2 * active * (l - active) {
            for i in active..l {
                let ri = self.load(i);
                let row = &self.cache.rows[ri];
                let yi = self.y[i];
                let mut gi = self.g[i];
                for j in 0..active {
                    if self.status[j] == Status::Free {
                        gi += self.alpha[j] * (yi * self.y[j] * f64::from(row[self.index[j]]));
                    }
                }
                self.g[i] = gi;
            }
        } else {
            for i in 0..active {
                if !self.is_free(i) {
                    continue;
                }
                let ri = self.load(i);
                let row = &self.cache.rows[ri];
                let yi = self.y[i];
                let ai = self.alpha[i];
                for j in active..l {
                    self.g[j] += ai * (yi * self.y[j] * f64::from(row[self.index[j]]));
                }
            }
        }
    }

    fn calculate_rho(&self) -> f64 {
        let mut nr_free = 0usize;
        let mut ub = f64::INFINITY;
        let mut lb = f64::NEG_INFINITY;
        let mut sum_free = 0.0;
        for i in 0..self.active_size {
            let yg = self.y[i] * self.g[i];
            match self.status[i] {
                Status::Upper => {
                    if self.y[i] < 0.0 {
                        ub = ub.min(yg);
                    } else {
                        lb = lb.max(yg);
                    }
                }
                Status::Lower => {
                    if self.y[i] > 0.0 {
                        ub = ub.min(yg);
                    } else {
                        lb = lb.max(yg);
                    }
                }
                Status::Free => {
                    nr_free += 1;
                    sum_free += yg;
                }
            }
        }
        if nr_free > 0 {
            sum_free / nr_free as f64
        } else {
            (ub + lb) / 2.0
        }
    }
}

/// One clip of an SMO pair whose sum `a + b` is fixed (equal labels): when the sum exceeds the
/// box `c`, `a` is capped at `c`; otherwise `b` is lifted to 0; the other takes the rest.
fn clip_fixed_sum(a: f64, b: f64, sum: f64, c: f64) -> (f64, f64) {
    if sum > c {
        if a > c {
            return (c, sum - c);
        }
    } else if b < 0.0 {
        return (sum, 0.0);
    }
    (a, b)
}

impl Svr {
    pub fn n_support(&self) -> usize {
        self.dual_coef.len()
    }

    fn kernel_value(&self, x: &[f64], sv: &[f64]) -> f64 {
        match self.kernel {
            Kernel::Linear => dot(x, sv),
            Kernel::Rbf => {
                let mut sum = 0.0;
                for (a, b) in x.iter().zip(sv) {
                    let d = a - b;
                    sum += d * d;
                }
                (-self.gamma * sum).exp()
            }
        }
    }
}

/// Rows × support vectors above which `predict` uses two threads.
const PARALLEL_WORK: usize = 200_000;

impl Svr {
    /// Checks a deserialized model: `n_features` columns and one full support vector per dual
    /// coefficient.
    pub(crate) fn check(&self, n_features: usize) -> Result<(), String> {
        if self.n_features != n_features {
            return Err(format!(
                "{} features, expected {n_features}",
                self.n_features
            ));
        }
        if Some(self.support_vectors.len()) != self.dual_coef.len().checked_mul(n_features) {
            return Err(format!(
                "{} support-vector values for {} dual coefficients of {n_features} features",
                self.support_vectors.len(),
                self.dual_coef.len()
            ));
        }
        Ok(())
    }
}

impl Regressor for Svr {
    fn name(&self) -> &'static str {
        "svr"
    }

    fn predict_row(&self, x: &[f64]) -> f64 {
        let d = self.n_features.max(1);
        let mut sum = 0.0;
        for (coef, sv) in self
            .dual_coef
            .iter()
            .zip(self.support_vectors.chunks_exact(d))
        {
            sum += coef * self.kernel_value(x, sv);
        }
        self.target_mean + self.target_scale * (sum + self.intercept)
    }

    fn predict(&self, x: &DMatrix<f64>) -> DVector<f64> {
        // Two threads once rows × support vectors reach PARALLEL_WORK.
        let min_rows = match self.n_support() {
            0 => usize::MAX,
            n_support => PARALLEL_WORK.div_ceil(n_support),
        };
        predict_split(self, x, min_rows, 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use crate::testutil::assert_postcard_round_trip;

    fn random_problem(n: usize, d: usize, seed: u64) -> (DMatrix<f64>, DVector<f64>) {
        let mut rng = Rng::new(seed);
        let x = DMatrix::from_fn(n, d, |_, _| rng.next_f64() * 4.0 - 2.0);
        let y = DVector::from_fn(n, |i, _| {
            (x[(i, 0)]).sin() + 0.5 * x[(i, d - 1)] * x[(i, 0)] + 0.1 * (rng.next_f64() - 0.5)
        });
        (x, y)
    }

    #[test]
    fn targets_inside_the_tube_give_no_support_vectors_and_the_midrange() {
        // alpha = 0 is optimal when max(y) − min(y) < 2ε; libsvm's rho is then the midpoint of
        // ub = ε − max(y) and lb = −ε − min(y), so the prediction is (max y + min y) / 2.
        let x = DMatrix::from_row_slice(4, 1, &[0.0, 1.0, 2.0, 3.0]);
        let y = DVector::from_vec(vec![0.05, -0.02, 0.01, 0.03]);
        let m = SvrParams::default().fit(&x, &y).expect("fit");
        assert_eq!(m.n_support(), 0);
        let expected = (0.05 + -0.02) / 2.0;
        assert!((m.intercept - expected).abs() < 1e-15, "{}", m.intercept);
        assert!((m.predict_row(&[7.0]) - expected).abs() < 1e-15);
    }

    #[test]
    fn standardized_target_learns_return_sized_signals() {
        // Regression: targets of ~1e-3 (one-minute log returns) all lie inside epsilon = 0.1,
        // so plain SVR has no support vectors and predicts a constant. With the target
        // standardised, the same data is learnt, and predictions come back in target units.
        let (x, y) = random_problem(300, 3, 5);
        let small = y.map(|v| 1e-3 * v + 2e-4);
        let plain = SvrParams::default().fit(&x, &small).expect("fit");
        assert_eq!(plain.n_support(), 0);
        let scaled = SvrParams {
            standardize_target: true,
            ..SvrParams::default()
        }
        .fit(&x, &small)
        .expect("fit");
        assert!(scaled.n_support() > 10, "{}", scaled.n_support());
        let reference = SvrParams::default()
            .fit(&x, &y.map(|v| (v - y.mean()) / y.variance().sqrt()))
            .expect("fit");
        let row = [0.3, -1.2, 0.7];
        let std = small.variance().sqrt();
        let expected = small.mean() + std * reference.predict_row(&row);
        let got = scaled.predict_row(&row);
        // The same problem up to rounding (the kernel cache is f32, as in libsvm): 1e-3
        // relative, the parity tolerance.
        assert!(
            (got - expected).abs() <= 1e-3 * expected.abs(),
            "{got} vs {expected}"
        );
        let rmse = |pred: &DVector<f64>| (pred - &small).norm() / (small.len() as f64).sqrt();
        assert!(rmse(&scaled.predict(&x)) < 0.5 * rmse(&plain.predict(&x)));
    }

    #[test]
    fn linear_kernel_recovers_a_slope() {
        let n = 41;
        let x = DMatrix::from_fn(n, 1, |i, _| -1.0 + 2.0 * i as f64 / (n - 1) as f64);
        let y = x.map(|v| 2.0 * v).column(0).into_owned();
        let params = SvrParams {
            kernel: Kernel::Linear,
            c: 100.0,
            epsilon: 0.001,
            tol: 1e-6,
            ..SvrParams::default()
        };
        let m = params.fit(&x, &y).expect("fit");
        let slope = m.predict_row(&[1.0]) - m.predict_row(&[0.0]);
        assert!((slope - 2.0).abs() < 1e-3, "slope {slope}");
        assert!(
            m.predict_row(&[0.0]).abs() < 2e-3,
            "{}",
            m.predict_row(&[0.0])
        );
        // Every training point lies within ε (+ tolerance) of the fit.
        for i in 0..n {
            assert!((m.predict_row(&[x[(i, 0)]]) - y[i]).abs() < 0.001 + 1e-3);
        }
    }

    #[test]
    fn two_points_rbf_has_the_closed_form_solution() {
        // Two samples, K12 = exp(−γ·1). With C large the optimum interpolates to within ε:
        // f(x1) = y1 − ε, f(x2) = y2 + ε for y1 > y2 and coef = ±β with
        // β (1 − K12) = (y1 − y2 − 2ε) / 2, rho = −(y1 + y2)/2.
        let x = DMatrix::from_row_slice(2, 1, &[0.0, 1.0]);
        let y = DVector::from_vec(vec![1.0, -1.0]);
        let params = SvrParams {
            c: 100.0,
            gamma: Gamma::Value(0.5),
            tol: 1e-9,
            ..SvrParams::default()
        };
        let m = params.fit(&x, &y).expect("fit");
        // The solver sees K12 rounded to f32 (libsvm's Qfloat); prediction uses the f64 kernel.
        let k12 = f64::from((-0.5f64).exp() as f32);
        let beta = (2.0 - 0.2) / 2.0 / (1.0 - k12);
        assert_eq!(m.n_support(), 2);
        assert!((m.dual_coef[0] - beta).abs() < 1e-9, "{:?}", m.dual_coef);
        assert!((m.dual_coef[1] + beta).abs() < 1e-9);
        assert!(m.intercept.abs() < 1e-9);
        assert!((m.predict_row(&[0.0]) - 0.9).abs() < 1e-6);
        assert!((m.predict_row(&[1.0]) + 0.9).abs() < 1e-6);
    }

    #[test]
    fn scale_gamma_matches_numpy_var() {
        // X = [[1, 2], [3, 4]]: mean 2.5, var 1.25, gamma = 1 / (2 · 1.25) = 0.4.
        assert_eq!(scale_gamma(&[1.0, 2.0, 3.0, 4.0], 2), 0.4);
        assert_eq!(scale_gamma(&[3.0, 3.0, 3.0], 1), 1.0);
        // Pairwise summation equals plain summation on exactly representable data.
        let v: Vec<f64> = (0..1000).map(|i| i as f64).collect();
        assert_eq!(pairwise_sum(&v), 499_500.0);
    }

    #[test]
    fn kkt_conditions_hold_at_the_solution() {
        let (x, y) = random_problem(150, 3, 7);
        let params = SvrParams::default();
        let m = params.fit(&x, &y).expect("fit");
        assert!(m.n_support() > 10);
        let pred = m.predict(&x);
        let (c, eps) = (params.c, params.epsilon);
        // Training-row coefficients, 0 for non-support rows.
        let mut coef = vec![0.0; x.nrows()];
        let mut k = 0;
        for (i, ci) in coef.iter_mut().enumerate() {
            let row: Vec<f64> = x.row(i).iter().copied().collect();
            let is_sv = m
                .support_vectors
                .chunks_exact(3)
                .nth(k)
                .is_some_and(|sv| sv == row.as_slice());
            if is_sv {
                *ci = m.dual_coef[k];
                k += 1;
            }
        }
        assert_eq!(k, m.n_support());
        let slack = 2.0 * params.tol;
        for i in 0..x.nrows() {
            let r = y[i] - pred[i];
            let a = coef[i].abs();
            assert!(a <= c + 1e-12);
            if a == 0.0 {
                assert!(r.abs() <= eps + slack, "row {i}: r {r}");
            } else if a < c {
                assert!(
                    (r.abs() - eps).abs() <= slack,
                    "row {i}: r {r} coef {}",
                    coef[i]
                );
                assert_eq!(r.signum(), coef[i].signum());
            } else {
                assert!(r.abs() >= eps - slack, "row {i}: r {r}");
            }
        }
        // Σ coef = 0 (the equality constraint).
        assert!(m.dual_coef.iter().sum::<f64>().abs() < 1e-9);
    }

    #[test]
    fn shrinking_and_cache_size_do_not_change_the_answer() {
        let (x, y) = random_problem(300, 4, 11);
        let data: Vec<f64> = (0..300)
            .flat_map(|i| x.row(i).iter().copied().collect::<Vec<_>>())
            .collect();
        let gamma = scale_gamma(&data, 4);
        let run = |shrinking: bool, rows: Option<usize>| {
            let kernel = KernelData::new(&data, 4, Kernel::Rbf, gamma);
            let mut s = Solver::new(kernel, y.as_slice(), 1.0, 0.1, 1e-3, 200);
            if let Some(r) = rows {
                s.cache.capacity = r;
            }
            s.solve(shrinking, None)
        };
        let (a1, rho1) = run(true, None);
        let (_, rho2) = run(false, None);
        // A two-row cache evicts constantly but computes the same rows: identical result.
        let (a3, rho3) = run(true, Some(2));
        assert!((rho1 - rho2).abs() < 1e-2, "{rho1} {rho2}");
        assert_eq!(a1, a3);
        assert_eq!(rho1.to_bits(), rho3.to_bits());
    }

    #[test]
    fn fitting_is_deterministic_and_postcard_round_trips_bit_identically() {
        let (x, y) = random_problem(120, 3, 3);
        let a = SvrParams::default().fit(&x, &y).expect("fit");
        let b = SvrParams::default().fit(&x, &y).expect("fit");
        assert_eq!(a.dual_coef, b.dual_coef);
        assert_eq!(a.support_vectors, b.support_vectors);
        assert_eq!(a.intercept.to_bits(), b.intercept.to_bits());

        let c = assert_postcard_round_trip(&a, &x);
        assert_eq!(c.dual_coef, a.dual_coef);
        assert_eq!(c.support_vectors, a.support_vectors);
        assert_eq!(c.intercept.to_bits(), a.intercept.to_bits());
        assert_eq!(c.gamma.to_bits(), a.gamma.to_bits());
        assert_eq!(c.kernel, a.kernel);
    }

    #[test]
    fn parallel_predict_equals_row_by_row() {
        let (x, y) = random_problem(400, 2, 5);
        let m = SvrParams {
            epsilon: 0.01,
            ..SvrParams::default()
        }
        .fit(&x, &y)
        .expect("fit");
        let (xt, _) = random_problem(900, 2, 6);
        assert!(xt.nrows() * m.n_support() >= PARALLEL_WORK);
        let p = m.predict(&xt);
        for i in 0..xt.nrows() {
            let row: Vec<f64> = xt.row(i).iter().copied().collect();
            assert_eq!(p[i].to_bits(), m.predict_row(&row).to_bits());
        }
    }

    #[test]
    fn bad_params_and_bad_data_are_rejected() {
        let (x, y) = random_problem(10, 2, 1);
        let cases = [
            (
                SvrParams {
                    c: 0.0,
                    ..SvrParams::default()
                },
                "c",
            ),
            (
                SvrParams {
                    c: -1.0,
                    ..SvrParams::default()
                },
                "c",
            ),
            (
                SvrParams {
                    epsilon: -0.1,
                    ..SvrParams::default()
                },
                "epsilon",
            ),
            (
                SvrParams {
                    gamma: Gamma::Value(0.0),
                    ..SvrParams::default()
                },
                "gamma",
            ),
            (
                SvrParams {
                    gamma: Gamma::Value(-2.0),
                    ..SvrParams::default()
                },
                "gamma",
            ),
            (
                SvrParams {
                    tol: 0.0,
                    ..SvrParams::default()
                },
                "tol",
            ),
            (
                SvrParams {
                    c: f64::NAN,
                    ..SvrParams::default()
                },
                "c",
            ),
        ];
        for (params, name) in cases {
            match params.fit(&x, &y) {
                Err(FitError::BadParam { model, param, .. }) => {
                    assert_eq!(model, "svr");
                    assert_eq!(param, name);
                }
                other => panic!("expected BadParam for {name}, got {other:?}"),
            }
        }
        let short = DVector::from_vec(vec![1.0; 9]);
        assert!(matches!(
            SvrParams::default().fit(&x, &short),
            Err(FitError::Shape { .. })
        ));
        let mut xn = x.clone();
        xn[(3, 1)] = f64::NAN;
        assert_eq!(
            SvrParams::default().fit(&xn, &y).map(|m| m.n_support()),
            Err(FitError::NonFinite { model: "svr" })
        );
    }
}
