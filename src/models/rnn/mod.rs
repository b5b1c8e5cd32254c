//! One-layer GRU and LSTM regressors written by hand on nalgebra, learning online. Pure code: no
//! I/O, no clock; randomness only from the seed in the params.
//!
//! # Model
//!
//! Sample `i` is the causal sequence of feature rows `i−T+1 ..= i` (T = `seq_len`, default 60;
//! see [`sequence_rows`] and [`gather_sequences`]). A one-layer recurrent cell (zero initial
//! state) reads it oldest first, and a linear head on the last hidden state forecasts the same
//! target as the other models (the next log return, see `features.rs`):
//! `ŷ = s · (w · h_T + b)`, where `s` is the target scale learnt at fit time (the std of the
//! training targets, so the network works on unit-variance targets).
//!
//! The cells are exactly PyTorch's `nn.GRU` / `nn.LSTM` (one layer, `batch_first`), with the same
//! parameter layout (`weight_ih_l0` [G·H×D], `weight_hh_l0` [G·H×H], `bias_ih_l0`, `bias_hh_l0`,
//! gate rows in PyTorch's order: r, z, n for the GRU ([`gru`]), i, f, g, o for the LSTM
//! ([`lstm`])) followed by the head's `nn.Linear(H, 1)` weight and bias. All parameters live in one
//! flat vector in that order ([`Layout`]); every weight is initialised U(−1/√H, 1/√H) as
//! PyTorch does (from our seeded [`Rng`], so the values differ from PyTorch's stream).
//! The time loops of both passes are shared (`steps.rs`); each cell supplies only its per-unit
//! gate arithmetic.
//!
//! # Training
//!
//! Backpropagation through time over the whole sequence, MSE loss (mean over the batch, like
//! `nn.MSELoss()`), gradient-norm clipping exactly like `torch.nn.utils.clip_grad_norm_` (total
//! L2 norm over all parameters, factor `max_norm / (norm + 1e-6)` capped at 1), and Adam exactly
//! like `torch.optim.Adam` (bias-corrected moments, eps added after the square root, no weight
//! decay). Mini-batches are drawn from the training samples in a seeded shuffle every epoch; the
//! last `validation_fraction` of the samples (in time, never shuffled) is the validation tail for
//! early stopping: after each epoch its MSE is measured, the best weights are kept, and training
//! stops after `patience` epochs without improvement.
//!
//! Determinism: a batch is cut into shards of [`SHARD_ROWS`] samples; each shard's gradient is
//! computed independently (on `threads` scoped threads) and the shard gradients are summed in
//! shard order, so the result is bit-identical for any thread count.
//!
//! Online learning: [`Rnn::update`] takes new rows and targets and does a few Adam steps on the
//! new sequences (one batch). The Adam moments and step count are part of the fitted model (and
//! of its serde form), so updating resumes exactly after a save and load.
//!
//! # Cost and memory
//!
//! Per sample and time step the forward pass costs G·H·(D+H) multiply-adds (G = 3 for the GRU,
//! 4 for the LSTM), the backward pass about twice that. With D = 14, H = 32, T = 60 a GRU
//! sample is ≈ 0.27 M multiply-adds forward (LSTM ≈ 0.35 M). The fitted model holds the
//! parameters plus Adam's two moments, 3 × 8 bytes per parameter: GRU 4,641 parameters ≈ 109 KiB, LSTM
//! 6,177 parameters ≈ 145 KiB (D = 14, H = 32). [`Forecaster`] adds T·D·8 bytes (6.6 KiB).
//! Training keeps the activations and their gradients for one batch: ≈ B·T·16·H·8 bytes
//! (≈ 15 MiB for B = 64, T = 60, H = 32, either cell), plus one copy of the model for the best
//! weights of early stopping; the feature matrix itself is only borrowed (sequences are gathered
//! batch by batch, never materialised for the whole data set).
//!
//! # Defaults
//!
//! hidden 32, seq_len 60, batch 64, max_epochs 4, patience 2, validation_fraction 0.1, Adam lr
//! 1e-3, betas (0.9, 0.999), eps 1e-8 (PyTorch's), clip_norm 1.0, threads 2, seed 0. Hidden 32
//! and 4 epochs were chosen by measurement (README "GRU and LSTM", `cargo bench --bench rnn`):
//! on a 2-core x86-64, H = 32 fits 200k rows in 3–5 minutes, updates in ≤ 25 ms and forecasts
//! a kline in ≤ 0.9 ms; H = 64 triples the cost and passes 1 ms per forecast. Not yet measured
//! on a Raspberry Pi (expect a few times slower).
//!
//! References: K. Cho et al., "Learning Phrase Representations using RNN Encoder-Decoder",
//! EMNLP 2014 (GRU); S. Hochreiter and J. Schmidhuber, "Long Short-Term Memory", Neural
//! Computation 9(8), 1997; D. P. Kingma and J. Ba, "Adam", ICLR 2015; PyTorch documentation
//! of `nn.GRU`, `nn.LSTM`, `optim.Adam` and `nn.utils.clip_grad_norm_`.

use std::collections::VecDeque;
use std::ops::Range;

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::{check_xy, split_rows, FitError, Regressor};
use crate::rng::Rng;

pub(crate) mod gru;
pub(crate) mod lstm;
mod steps;

use steps::Recurrent;

/// Largest hidden size `fit` accepts and a loaded model may have (a GRU of 1024 units on 14
/// features has 3.2M parameters; the default is 32).
pub(crate) const MAX_HIDDEN: usize = 1024;
/// Longest sequence `fit` accepts and a loaded model may have (one day of 1m klines; the
/// default is 60). The ensemble gathers `seq_len` feature rows per forecast.
pub const MAX_SEQ_LEN: usize = 1440;
/// Most worker threads a loaded model may ask for.
pub(crate) const MAX_THREADS: usize = 256;

/// Samples per gradient shard: the unit of parallel work, fixed so results never depend on the
/// thread count.
pub(crate) const SHARD_ROWS: usize = 32;

/// Which recurrent cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cell {
    Gru,
    Lstm,
}

impl Cell {
    /// Gate blocks per weight matrix (3 for the GRU, 4 for the LSTM).
    pub(crate) fn gates(self) -> usize {
        match self {
            Cell::Gru => 3,
            Cell::Lstm => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Cell::Gru => "gru",
            Cell::Lstm => "lstm",
        }
    }
}

/// Where each PyTorch parameter sits in the flat parameter vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub cell: Cell,
    /// Input size D.
    pub inputs: usize,
    /// Hidden size H.
    pub hidden: usize,
}

impl Layout {
    fn gh(&self) -> usize {
        self.cell.gates() * self.hidden
    }

    /// `weight_ih_l0`, row-major [G·H × D].
    pub(crate) fn w_ih(&self) -> Range<usize> {
        0..self.gh() * self.inputs
    }

    /// `weight_hh_l0`, row-major [G·H × H].
    pub(crate) fn w_hh(&self) -> Range<usize> {
        let start = self.w_ih().end;
        start..start + self.gh() * self.hidden
    }

    /// `bias_ih_l0` [G·H].
    pub(crate) fn b_ih(&self) -> Range<usize> {
        let start = self.w_hh().end;
        start..start + self.gh()
    }

    /// `bias_hh_l0` [G·H].
    pub(crate) fn b_hh(&self) -> Range<usize> {
        let start = self.b_ih().end;
        start..start + self.gh()
    }

    /// The head's `weight` [1 × H].
    pub(crate) fn head_w(&self) -> Range<usize> {
        let start = self.b_hh().end;
        start..start + self.hidden
    }

    /// The head's `bias` [1].
    pub(crate) fn head_b(&self) -> usize {
        self.head_w().end
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.head_b() + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// PyTorch names and ranges, in `named_parameters()` order of `rnn` then `head`.
    pub fn named(&self) -> [(&'static str, Range<usize>); 6] {
        let hb = self.head_b();
        [
            ("rnn.weight_ih_l0", self.w_ih()),
            ("rnn.weight_hh_l0", self.w_hh()),
            ("rnn.bias_ih_l0", self.b_ih()),
            ("rnn.bias_hh_l0", self.b_hh()),
            ("head.weight", self.head_w()),
            ("head.bias", hb..hb + 1),
        ]
    }
}

/// A recurrent network: layout plus flat parameters (see [`Layout`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Net {
    pub layout: Layout,
    pub theta: Vec<f64>,
}

/// The weights as matrices for one pass (column-major copies of the flat vector).
pub(crate) struct Weights {
    /// W_ihᵀ, D × G·H.
    pub(crate) wih_t: DMatrix<f64>,
    /// W_hhᵀ, H × G·H.
    pub(crate) whh_t: DMatrix<f64>,
    /// W_hh, G·H × H.
    pub(crate) whh: DMatrix<f64>,
    pub(crate) b_ih: Vec<f64>,
    pub(crate) b_hh: Vec<f64>,
    pub(crate) head_w: Vec<f64>,
    pub(crate) head_b: f64,
}

/// A batch of B sequences of length T: row `t·B + b` of `xs` is step t of sequence b.
#[derive(Debug, Clone)]
pub struct Batch {
    pub xs: DMatrix<f64>,
    pub batch: usize,
    pub steps: usize,
}

impl Batch {
    /// From sequences given as `seqs[b][t][j]` (all of one length and width).
    pub fn from_nested(seqs: &[Vec<Vec<f64>>]) -> Batch {
        let batch = seqs.len();
        let steps = seqs.first().map_or(0, |s| s.len());
        let d = seqs.first().and_then(|s| s.first()).map_or(0, |r| r.len());
        let xs = DMatrix::from_fn(batch * steps, d, |row, j| seqs[row % batch][row / batch][j]);
        Batch { xs, batch, steps }
    }
}

/// Rows of a feature matrix with `n_rows` rows that end a full sequence of `seq_len` rows: the
/// samples of [`RnnParams::fit`] and [`Rnn::update`].
pub(crate) fn sequence_rows(n_rows: usize, seq_len: usize) -> Range<usize> {
    let start = seq_len.saturating_sub(1);
    start..n_rows.max(start)
}

/// The batch of sequences ending at rows `ends` of `x`: sequence b is rows
/// `ends[b]+1−seq_len ..= ends[b]` (causal: nothing after `ends[b]`). Every end must be at least
/// `seq_len − 1` (see [`sequence_rows`]).
pub fn gather_sequences(x: &DMatrix<f64>, ends: &[usize], seq_len: usize) -> Batch {
    let batch = ends.len();
    let d = x.ncols();
    let mut xs = DMatrix::<f64>::zeros(batch * seq_len, d);
    let rows = batch * seq_len;
    {
        let out = xs.as_mut_slice();
        for j in 0..d {
            let column = x.column(j);
            let column = column.as_slice();
            let dst = &mut out[j * rows..(j + 1) * rows];
            for t in 0..seq_len {
                for (b, &end) in ends.iter().enumerate() {
                    dst[t * batch + b] = column[end + 1 + t - seq_len];
                }
            }
        }
    }
    Batch {
        xs,
        batch,
        steps: seq_len,
    }
}

impl Net {
    /// A network with every parameter drawn from U(−1/√H, 1/√H) (PyTorch's init for the cell
    /// and for `nn.Linear(H, 1)`), from `rng`.
    pub fn new(layout: Layout, rng: &mut Rng) -> Net {
        let k = 1.0 / (layout.hidden as f64).sqrt();
        let theta = (0..layout.len())
            .map(|_| (rng.next_f64() * 2.0 - 1.0) * k)
            .collect();
        Net { layout, theta }
    }

    /// A network from PyTorch tensors (flattened row-major), as in a `state_dict`.
    pub fn from_parts(layout: Layout, parts: [&[f64]; 6]) -> Result<Net, String> {
        let mut theta = vec![0.0; layout.len()];
        for ((name, range), part) in layout.named().into_iter().zip(parts) {
            if part.len() != range.len() {
                return Err(format!(
                    "{name} has {} values, expected {}",
                    part.len(),
                    range.len()
                ));
            }
            theta[range].copy_from_slice(part);
        }
        Ok(Net { layout, theta })
    }

    pub(crate) fn weights(&self) -> Weights {
        let l = &self.layout;
        let (d, h, gh) = (l.inputs, l.hidden, l.gh());
        let wih_t = DMatrix::from_column_slice(d, gh, &self.theta[l.w_ih()]);
        let whh_t = DMatrix::from_column_slice(h, gh, &self.theta[l.w_hh()]);
        let whh = whh_t.transpose();
        Weights {
            wih_t,
            whh_t,
            whh,
            b_ih: self.theta[l.b_ih()].to_vec(),
            b_hh: self.theta[l.b_hh()].to_vec(),
            head_w: self.theta[l.head_w()].to_vec(),
            head_b: self.theta[l.head_b()],
        }
    }

    /// Forward pass: head outputs (B), last hidden state (B×H) and, for the LSTM, last cell
    /// state (B×H).
    pub fn forward(&self, batch: &Batch) -> (Vec<f64>, DMatrix<f64>, Option<DMatrix<f64>>) {
        let w = self.weights();
        let (h_last, c_last) = match self.layout.cell {
            Cell::Gru => (gru::forward(&w, batch, self.layout.hidden, None), None),
            Cell::Lstm => {
                let (h, c) = lstm::forward(&w, batch, self.layout.hidden, None);
                (h, Some(c))
            }
        };
        (head(&w, &h_last), h_last, c_last)
    }

    /// MSE loss of the batch and its gradient with respect to every parameter (flat, in
    /// [`Layout`] order). Shards of [`SHARD_ROWS`] samples run on up to `threads` threads; the
    /// result does not depend on `threads`.
    pub fn loss_grad(&self, batch: &Batch, targets: &[f64], threads: usize) -> (f64, Vec<f64>) {
        let w = self.weights();
        let n = batch.batch;
        let shards: Vec<Range<usize>> = (0..n)
            .step_by(SHARD_ROWS)
            .map(|s| s..(s + SHARD_ROWS).min(n))
            .collect();
        let run = |range: &Range<usize>| -> (f64, Vec<f64>) {
            let sub = if shards.len() == 1 {
                None
            } else {
                Some(sub_batch(batch, range.clone()))
            };
            let shard = sub.as_ref().unwrap_or(batch);
            shard_grad(self, &w, shard, &targets[range.clone()], n)
        };
        let results: Vec<(f64, Vec<f64>)> = if threads <= 1 || shards.len() <= 1 {
            shards.iter().map(run).collect()
        } else {
            let per = shards.len().div_ceil(threads.min(shards.len()));
            std::thread::scope(|scope| {
                let handles: Vec<_> = shards
                    .chunks(per)
                    .map(|group| scope.spawn(|| group.iter().map(run).collect::<Vec<_>>()))
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|handle| match handle.join() {
                        Ok(values) => values,
                        Err(panic) => std::panic::resume_unwind(panic),
                    })
                    .collect()
            })
        };
        let mut grad = vec![0.0; self.layout.len()];
        let mut sse = 0.0;
        for (s, g) in results {
            sse += s;
            for (a, b) in grad.iter_mut().zip(&g) {
                *a += b;
            }
        }
        (sse / n as f64, grad)
    }
}

/// Head outputs `w · h_b + bias` for every row of `h` (B×H).
fn head(w: &Weights, h: &DMatrix<f64>) -> Vec<f64> {
    (0..h.nrows())
        .map(|b| {
            let mut s = 0.0;
            for (j, wj) in w.head_w.iter().enumerate() {
                s += h[(b, j)] * wj;
            }
            s + w.head_b
        })
        .collect()
}

/// Samples `range` of a batch.
fn sub_batch(batch: &Batch, range: Range<usize>) -> Batch {
    let sb = range.len();
    let xs = DMatrix::from_fn(sb * batch.steps, batch.xs.ncols(), |row, j| {
        let (t, b) = (row / sb, row % sb);
        batch.xs[(t * batch.batch + range.start + b, j)]
    });
    Batch {
        xs,
        batch: sb,
        steps: batch.steps,
    }
}

/// Sum of squared errors of one shard and the gradient of (SSE / `divisor`).
fn shard_grad(
    net: &Net,
    w: &Weights,
    batch: &Batch,
    targets: &[f64],
    divisor: usize,
) -> (f64, Vec<f64>) {
    let h = net.layout.hidden;
    let mut grad = vec![0.0; net.layout.len()];
    let mut tape = Vec::new();
    let h_last = match net.layout.cell {
        Cell::Gru => gru::forward(w, batch, h, Some(&mut tape)),
        Cell::Lstm => lstm::forward(w, batch, h, Some(&mut tape)).0,
    };
    let out = head(w, &h_last);
    let mut sse = 0.0;
    let mut dh = DMatrix::<f64>::zeros(batch.batch, h);
    let l = &net.layout;
    let hw = l.head_w();
    for (b, (&o, &y)) in out.iter().zip(targets).enumerate() {
        let e = o - y;
        sse += e * e;
        let dy = 2.0 * e / divisor as f64;
        grad[l.head_b()] += dy;
        for j in 0..h {
            grad[hw.start + j] += dy * h_last[(b, j)];
            dh[(b, j)] = dy * w.head_w[j];
        }
    }
    match net.layout.cell {
        Cell::Gru => {
            let unit = gru::backward_unit(h * batch.batch);
            steps::backward(w, batch, h, &tape, dh, l, &mut grad, Recurrent::Own, unit);
        }
        Cell::Lstm => {
            let unit = lstm::backward_unit(h * batch.batch);
            let shape = Recurrent::SameAsInput;
            steps::backward(w, batch, h, &tape, dh, l, &mut grad, shape, unit);
        }
    }
    (sse, grad)
}

/// Adds the bias `b` to every row of `m` (columns = units).
pub(crate) fn add_bias(m: &mut DMatrix<f64>, b: &[f64]) {
    for (j, mut column) in m.column_iter_mut().enumerate() {
        let bj = b[j];
        for v in column.iter_mut() {
            *v += bj;
        }
    }
}

/// Adds the column sums of `m` to `out`, rows in order.
pub(crate) fn add_column_sums(m: &DMatrix<f64>, out: &mut [f64]) {
    for (j, column) in m.column_iter().enumerate() {
        out[j] += column.iter().sum::<f64>();
    }
}

/// Adds `m` (column-major, so a [G·H×·] transposed weight's storage is PyTorch's row-major
/// layout) to `out`.
pub(crate) fn add_matrix(m: &DMatrix<f64>, out: &mut [f64]) {
    for (a, b) in out.iter_mut().zip(m.as_slice()) {
        *a += b;
    }
}

/// `u = h · W_hhᵀ` (B×G·H). One sequence (B = 1, the per-kline forecast) takes contiguous dot
/// products with the rows of W_hh; larger batches use nalgebra's blocked product.
pub(crate) fn project(u: &mut DMatrix<f64>, h: &DMatrix<f64>, whh_t: &DMatrix<f64>) {
    if h.nrows() == 1 {
        let hs = h.as_slice();
        for (k, column) in whh_t.column_iter().enumerate() {
            u[k] = column.iter().zip(hs).map(|(w, v)| w * v).sum();
        }
    } else {
        u.gemm(1.0, h, whh_t, 0.0);
    }
}

/// The hidden states before each step from a tape (entries 0, 2, 4, …), stacked as a (T·B)×H
/// matrix with row `t·B + b`, so the recurrent weight gradient is one product over all steps.
pub(crate) fn stack_hidden(
    tape: &[DMatrix<f64>],
    bsz: usize,
    h: usize,
    steps: usize,
) -> DMatrix<f64> {
    let rows = bsz * steps;
    let mut out = DMatrix::<f64>::zeros(rows, h);
    let o = out.as_mut_slice();
    for t in 0..steps {
        let hp = tape[2 * t].as_slice();
        for j in 0..h {
            o[j * rows + t * bsz..j * rows + (t + 1) * bsz]
                .copy_from_slice(&hp[j * bsz..(j + 1) * bsz]);
        }
    }
    out
}

pub(crate) fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Scales `grad` like `torch.nn.utils.clip_grad_norm_(params, max_norm)`: total L2 norm over
/// all parameters, factor `max_norm / (norm + 1e-6)` capped at 1 (applied even when it is 1).
/// Returns the norm before clipping.
pub fn clip_grad_norm(grad: &mut [f64], max_norm: f64) -> f64 {
    let norm = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
    let coef = (max_norm / (norm + 1e-6)).min(1.0);
    for g in grad.iter_mut() {
        *g *= coef;
    }
    norm
}

/// Adam exactly as `torch.optim.Adam` (no weight decay, no amsgrad), with its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Adam {
    pub lr: f64,
    pub(crate) beta1: f64,
    pub(crate) beta2: f64,
    pub(crate) eps: f64,
    /// Steps taken so far.
    pub step: u64,
    /// First moments (exp_avg).
    pub m: Vec<f64>,
    /// Second moments (exp_avg_sq).
    pub v: Vec<f64>,
}

impl Adam {
    pub fn new(n_params: usize, lr: f64, beta1: f64, beta2: f64, eps: f64) -> Adam {
        Adam {
            lr,
            beta1,
            beta2,
            eps,
            step: 0,
            m: vec![0.0; n_params],
            v: vec![0.0; n_params],
        }
    }

    /// One step: `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
    /// `θ ← θ − (lr / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + eps)`.
    pub fn step(&mut self, theta: &mut [f64], grad: &[f64]) {
        self.step += 1;
        let t = self.step as i32;
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2_sqrt = (1.0 - self.beta2.powi(t)).sqrt();
        let step_size = self.lr / bc1;
        for (((p, g), m), v) in theta
            .iter_mut()
            .zip(grad)
            .zip(self.m.iter_mut())
            .zip(self.v.iter_mut())
        {
            *m += (g - *m) * (1.0 - self.beta1);
            *v = *v * self.beta2 + (1.0 - self.beta2) * g * g;
            let denom = v.sqrt() / bc2_sqrt + self.eps;
            *p -= step_size * *m / denom;
        }
    }
}

/// Hyperparameters (see the module doc for the defaults and why).
#[derive(Debug, Clone, PartialEq)]
pub struct RnnParams {
    pub cell: Cell,
    pub hidden: usize,
    pub seq_len: usize,
    pub batch_size: usize,
    pub max_epochs: usize,
    /// Epochs without a better validation loss before stopping.
    pub patience: usize,
    /// Share of the samples (the most recent ones) held out for early stopping; 0 = none (then
    /// all `max_epochs` run and the last weights are kept).
    pub validation_fraction: f64,
    pub learning_rate: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Gradient-norm clipping threshold; `None` = no clipping.
    pub clip_norm: Option<f64>,
    pub threads: usize,
    pub seed: u64,
}

impl RnnParams {
    /// The GRU defaults.
    pub fn gru() -> RnnParams {
        RnnParams {
            cell: Cell::Gru,
            hidden: 32,
            seq_len: 60,
            batch_size: 64,
            max_epochs: 4,
            patience: 2,
            validation_fraction: 0.1,
            learning_rate: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            clip_norm: Some(1.0),
            threads: 2,
            seed: 0,
        }
    }

    /// The LSTM defaults (the same as the GRU's).
    pub fn lstm() -> RnnParams {
        RnnParams {
            cell: Cell::Lstm,
            ..RnnParams::gru()
        }
    }

    pub(crate) fn validate(&self) -> Result<(), FitError> {
        let model = self.cell.name();
        let bad = |param, value: String, expected| {
            Err(FitError::BadParam {
                model,
                param,
                value,
                expected,
            })
        };
        let positive = [
            ("hidden", self.hidden),
            ("seq_len", self.seq_len),
            ("batch_size", self.batch_size),
            ("max_epochs", self.max_epochs),
            ("threads", self.threads),
        ];
        for (name, value) in positive {
            if value == 0 {
                return bad(name, "0".into(), "at least 1");
            }
        }
        if self.hidden > MAX_HIDDEN {
            return bad("hidden", self.hidden.to_string(), "at most 1024 (e.g. 32)");
        }
        if self.seq_len > MAX_SEQ_LEN {
            return bad(
                "seq_len",
                self.seq_len.to_string(),
                "at most 1440 (e.g. 60)",
            );
        }
        if !(0.0..1.0).contains(&self.validation_fraction) {
            return bad(
                "validation_fraction",
                self.validation_fraction.to_string(),
                "in [0, 1)",
            );
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(
                "learning_rate",
                self.learning_rate.to_string(),
                "a positive number",
            );
        }
        for (name, beta) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return bad(name, beta.to_string(), "in [0, 1)");
            }
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return bad("eps", self.eps.to_string(), "a positive number");
        }
        if let Some(c) = self.clip_norm {
            if !(c.is_finite() && c > 0.0) {
                return bad("clip_norm", c.to_string(), "a positive number, or none");
            }
        }
        Ok(())
    }

    /// Fits on feature rows `x` (n×D, already scaled) and targets `y` (n): the samples are the
    /// rows `i ≥ seq_len − 1` (see [`sequence_rows`]), each with target `y[i]`; earlier rows only
    /// feed the first sequences.
    pub fn fit(&self, x: &DMatrix<f64>, y: &DVector<f64>) -> Result<Rnn, FitError> {
        self.validate()?;
        let model = self.cell.name();
        check_xy(model, x, y, self.seq_len + 1)?;
        let samples: Vec<usize> = sequence_rows(x.nrows(), self.seq_len).collect();
        let n_val = (samples.len() as f64 * self.validation_fraction).floor() as usize;
        let n_train = samples.len() - n_val;
        if n_train == 0 || (self.validation_fraction > 0.0 && n_val == 0) {
            return Err(FitError::Shape {
                model,
                detail: format!(
                    "{} sequences of {} rows leave no training or no validation sequence; \
                     give more rows",
                    samples.len(),
                    self.seq_len
                ),
            });
        }
        let (train, val) = samples.split_at(n_train);
        let target_scale = {
            let ys: Vec<f64> = train.iter().map(|&i| y[i]).collect();
            let mean = ys.iter().sum::<f64>() / ys.len() as f64;
            let var = ys.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / ys.len() as f64;
            let s = var.sqrt();
            if s > 0.0 && s.is_finite() {
                s
            } else {
                1.0
            }
        };
        let layout = Layout {
            cell: self.cell,
            inputs: x.ncols(),
            hidden: self.hidden,
        };
        let mut rng = Rng::new(self.seed);
        let net = Net::new(layout, &mut rng);
        let adam = Adam::new(
            layout.len(),
            self.learning_rate,
            self.beta1,
            self.beta2,
            self.eps,
        );
        let mut rnn = Rnn {
            net,
            adam,
            seq_len: self.seq_len,
            target_scale,
            clip_norm: self.clip_norm,
            threads: self.threads,
            epochs_run: 0,
            best_epoch: 0,
            val_loss: None,
        };
        let mut order = train.to_vec();
        let mut best: Option<(f64, Net, Adam, usize)> = None;
        let mut since_best = 0;
        for epoch in 1..=self.max_epochs {
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i + 1));
            }
            for chunk in order.chunks(self.batch_size) {
                rnn.step_on(x, y, chunk);
            }
            rnn.epochs_run = epoch;
            if val.is_empty() {
                continue;
            }
            let loss = rnn.scaled_mse(x, y, val);
            if best.as_ref().is_none_or(|(b, ..)| loss < *b) {
                best = Some((loss, rnn.net.clone(), rnn.adam.clone(), epoch));
                since_best = 0;
            } else {
                since_best += 1;
                if since_best >= self.patience {
                    break;
                }
            }
        }
        match best {
            Some((loss, net, adam, epoch)) => {
                rnn.net = net;
                rnn.adam = adam;
                rnn.best_epoch = epoch;
                rnn.val_loss = Some(loss);
            }
            None => rnn.best_epoch = rnn.epochs_run,
        }
        Ok(rnn)
    }
}

impl Default for RnnParams {
    fn default() -> Self {
        RnnParams::gru()
    }
}

/// Sequences per batch when predicting many rows.
const PREDICT_BATCH: usize = 256;

/// A fitted GRU or LSTM regressor with its optimiser state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rnn {
    pub net: Net,
    pub adam: Adam,
    pub seq_len: usize,
    /// Targets are divided by this before training; predictions are multiplied by it.
    pub(crate) target_scale: f64,
    pub(crate) clip_norm: Option<f64>,
    pub threads: usize,
    /// Epochs run by `fit`, and the one whose weights were kept.
    pub epochs_run: usize,
    pub best_epoch: usize,
    /// Validation MSE (on scaled targets) of the kept weights, if there was a validation tail.
    pub val_loss: Option<f64>,
}

impl Rnn {
    /// One Adam step on the sequences ending at rows `ends`.
    fn step_on(&mut self, x: &DMatrix<f64>, y: &DVector<f64>, ends: &[usize]) -> f64 {
        let batch = gather_sequences(x, ends, self.seq_len);
        let targets: Vec<f64> = ends.iter().map(|&i| y[i] / self.target_scale).collect();
        let (loss, mut grad) = self.net.loss_grad(&batch, &targets, self.threads);
        if let Some(c) = self.clip_norm {
            clip_grad_norm(&mut grad, c);
        }
        self.adam.step(&mut self.net.theta, &grad);
        loss
    }

    /// MSE on scaled targets of the sequences ending at `ends`.
    fn scaled_mse(&self, x: &DMatrix<f64>, y: &DVector<f64>, ends: &[usize]) -> f64 {
        let mut sse = 0.0;
        for chunk in ends.chunks(PREDICT_BATCH) {
            let (out, ..) = self.net.forward(&gather_sequences(x, chunk, self.seq_len));
            for (o, &i) in out.iter().zip(chunk) {
                let e = o - y[i] / self.target_scale;
                sse += e * e;
            }
        }
        sse / ends.len().max(1) as f64
    }

    /// Online learning: `steps` Adam steps, each on all the sequences that end at rows
    /// `i ≥ seq_len − 1` of `x` (one batch), with targets `y[i]`. Typically `x` holds the last
    /// `seq_len − 1 + k` scaled feature rows for k new targets. Returns the loss (on scaled
    /// targets) before each step.
    pub fn update(
        &mut self,
        x: &DMatrix<f64>,
        y: &DVector<f64>,
        steps: usize,
    ) -> Result<Vec<f64>, FitError> {
        let model = self.net.layout.cell.name();
        check_xy(model, x, y, self.seq_len)?;
        if x.ncols() != self.net.layout.inputs {
            return Err(FitError::Shape {
                model,
                detail: format!(
                    "x has {} columns but the model was fitted on {}",
                    x.ncols(),
                    self.net.layout.inputs
                ),
            });
        }
        let ends: Vec<usize> = sequence_rows(x.nrows(), self.seq_len).collect();
        Ok((0..steps).map(|_| self.step_on(x, y, &ends)).collect())
    }

    /// Forecast from one sequence of rows (`rows.len()` a multiple of D, oldest row first; any
    /// length ≥ 1 row, normally `seq_len`).
    pub fn predict_sequence(&self, rows: &[f64]) -> f64 {
        let d = self.net.layout.inputs;
        let steps = rows.len() / d;
        let batch = Batch {
            xs: DMatrix::from_row_slice(steps, d, &rows[..steps * d]),
            batch: 1,
            steps,
        };
        self.net.forward(&batch).0[0] * self.target_scale
    }

    /// Checks a deserialized model for `n_features` features, before anything is allocated
    /// from its sizes: hidden size in 1..=[`MAX_HIDDEN`], sequence length in
    /// 1..=[`MAX_SEQ_LEN`], threads in 1..=[`MAX_THREADS`] (so [`Layout::len`] cannot overflow
    /// and a forecast gathers a bounded number of rows), parameter and Adam vectors of the
    /// layout's length, a finite positive target scale and sane Adam settings.
    pub(crate) fn check(&self, n_features: usize) -> Result<(), String> {
        let l = &self.net.layout;
        if l.inputs != n_features {
            return Err(format!("{} inputs, expected {n_features}", l.inputs));
        }
        if !(1..=MAX_HIDDEN).contains(&l.hidden) {
            return Err(format!(
                "hidden size {} is outside 1..={MAX_HIDDEN}",
                l.hidden
            ));
        }
        if !(1..=MAX_SEQ_LEN).contains(&self.seq_len) {
            return Err(format!(
                "sequence length {} is outside 1..={MAX_SEQ_LEN}",
                self.seq_len
            ));
        }
        if !(1..=MAX_THREADS).contains(&self.threads) {
            return Err(format!(
                "{} threads is outside 1..={MAX_THREADS}",
                self.threads
            ));
        }
        let n = l.len();
        if self.net.theta.len() != n || self.adam.m.len() != n || self.adam.v.len() != n {
            return Err(format!("parameter vectors are not {n} long"));
        }
        if !(self.target_scale.is_finite() && self.target_scale > 0.0) {
            return Err("the target scale is not finite and positive".to_string());
        }
        let a = &self.adam;
        let unit = |b: f64| (0.0..1.0).contains(&b);
        let optimiser_ok = a.lr.is_finite()
            && a.lr > 0.0
            && a.eps.is_finite()
            && a.eps > 0.0
            && unit(a.beta1)
            && unit(a.beta2)
            && self.clip_norm.is_none_or(|c| c.is_finite() && c > 0.0);
        if !optimiser_ok {
            return Err("the optimiser settings are out of range".to_string());
        }
        Ok(())
    }
}

impl Regressor for Rnn {
    fn name(&self) -> &'static str {
        self.net.layout.cell.name()
    }

    /// `x` is one sequence flattened row by row (oldest first), as [`Rnn::predict_sequence`].
    fn predict_row(&self, x: &[f64]) -> f64 {
        self.predict_sequence(x)
    }

    /// Row i of the result forecasts from rows `max(0, i−T+1) ..= i` of `x` (causal; the first
    /// T−1 rows use the shorter sequences available).
    fn predict(&self, x: &DMatrix<f64>) -> DVector<f64> {
        let n = x.nrows();
        let d = x.ncols();
        let mut out = DVector::zeros(n);
        let full = sequence_rows(n, self.seq_len);
        for i in 0..full.start.min(n) {
            let rows: Vec<f64> = (0..=i)
                .flat_map(|r| (0..d).map(move |j| (r, j)))
                .map(|(r, j)| x[(r, j)])
                .collect();
            out[i] = self.predict_sequence(&rows);
        }
        let ends: Vec<usize> = full.collect();
        // Fixed batches of PREDICT_BATCH sequences, on up to `threads` threads: each forecast
        // depends only on its own sequence and batch, so the result does not depend on the
        // thread count.
        let batches: Vec<&[usize]> = ends.chunks(PREDICT_BATCH).collect();
        let values = split_rows(batches.len(), 2, self.threads, |from, to| {
            batches[from..to]
                .iter()
                .flat_map(|chunk| {
                    let (o, ..) = self.net.forward(&gather_sequences(x, chunk, self.seq_len));
                    o.iter().map(|v| v * self.target_scale).collect::<Vec<_>>()
                })
                .collect()
        });
        for (&i, v) in ends.iter().zip(values) {
            out[i] = v;
        }
        out
    }
}

/// Per-kline forecaster: keeps the last `seq_len` feature rows and forecasts after each one.
#[derive(Debug, Clone)]
pub struct Forecaster {
    rows: VecDeque<Vec<f64>>,
    seq_len: usize,
}

impl Forecaster {
    pub fn new(seq_len: usize) -> Forecaster {
        Forecaster {
            rows: VecDeque::with_capacity(seq_len),
            seq_len: seq_len.max(1),
        }
    }

    /// Appends one (scaled) feature row and forecasts from the last ≤ `seq_len` rows.
    pub fn push(&mut self, model: &Rnn, row: &[f64]) -> f64 {
        if self.rows.len() == self.seq_len {
            self.rows.pop_front();
        }
        self.rows.push_back(row.to_vec());
        let flat: Vec<f64> = self.rows.iter().flatten().copied().collect();
        model.predict_sequence(&flat)
    }

    /// Rows held (at most `seq_len`).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

#[cfg(test)]
mod tests;
