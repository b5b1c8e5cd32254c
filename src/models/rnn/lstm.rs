//! The LSTM cell, exactly PyTorch's `nn.LSTM` (one layer, two bias vectors): with gate rows
//! i, f, g, o in `weight_ih_l0` / `weight_hh_l0` / the biases,
//!
//! ```text
//! i  = σ(W_ii x + b_ii + W_hi h + b_hi)
//! f  = σ(W_if x + b_if + W_hf h + b_hf)
//! g  = tanh(W_ig x + b_ig + W_hg h + b_hg)
//! o  = σ(W_io x + b_io + W_ho h + b_ho)
//! c' = f ⊙ c + i ⊙ g
//! h' = o ⊙ tanh(c')
//! ```
//!
//! Backward (BPTT), with `dc` carried from the next step: `dô = dh' tanh(c') o(1−o)`,
//! `dc̄ = dc + dh' o (1 − tanh²c')`, `dî = dc̄ g i(1−i)`, `df̂ = dc̄ c f(1−f)`,
//! `dĝ = dc̄ i (1−g²)`; `dc ← dc̄ f`, `dh ← [dî, df̂, dĝ, dô] W_hh`. Both bias vectors get the
//! same gradient.
//!
//! The tape holds, per step t, `h_{t−1}` (B×H) then `[i, f, g, o, c_t, tanh c_t]` (B×6H).

use nalgebra::DMatrix;

use super::steps::{self, UnitBackward, UnitGrad};
use super::{sigmoid, Batch, Weights};
#[cfg(doc)]
use steps::Recurrent;

/// Runs the cell over the batch from h = c = 0; returns the last hidden and cell states (B×H)
/// and, with a tape, records what [`backward_unit`] needs.
pub(crate) fn forward(
    w: &Weights,
    batch: &Batch,
    h: usize,
    tape: Option<&mut Vec<DMatrix<f64>>>,
) -> (DMatrix<f64>, DMatrix<f64>) {
    let bsz = batch.batch;
    let mut c = vec![0.0; bsz * h];
    let last = steps::forward(w, batch, h, tape, |k, a: [f64; 4], u: [f64; 4], _| {
        let i = sigmoid(a[0] + u[0]);
        let f = sigmoid(a[1] + u[1]);
        let g = (a[2] + u[2]).tanh();
        let o = sigmoid(a[3] + u[3]);
        let cn = f * c[k] + i * g;
        let tc = cn.tanh();
        c[k] = cn;
        (o * tc, [i, f, g, o, cn, tc])
    });
    (last, DMatrix::from_vec(bsz, h, c))
}

/// The per-unit backward step for [`steps::backward`] (with [`Recurrent::SameAsInput`]: the
/// recurrent pre-activations have the same gradient as the input ones, and the last cell state
/// has none); `hb` = H·B.
pub(crate) fn backward_unit(hb: usize) -> impl UnitBackward<4> {
    let mut dc = vec![0.0; hb];
    move |act: &[f64], prev_act: Option<&[f64]>, _: &[f64], k: usize, gh: f64| {
        let (i, f, g, o, tc) = (
            act[k],
            act[hb + k],
            act[2 * hb + k],
            act[3 * hb + k],
            act[5 * hb + k],
        );
        let c_prev = prev_act.map_or(0.0, |p| p[4 * hb + k]);
        let dcv = dc[k] + gh * o * (1.0 - tc * tc);
        let pre = [
            dcv * g * i * (1.0 - i),
            dcv * c_prev * f * (1.0 - f),
            dcv * i * (1.0 - g * g),
            gh * tc * o * (1.0 - o),
        ];
        dc[k] = dcv * f;
        UnitGrad {
            da: pre,
            du: pre,
            dh_direct: 0.0,
        }
    }
}
