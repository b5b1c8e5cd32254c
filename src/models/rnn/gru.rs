//! The GRU cell, exactly PyTorch's `nn.GRU` (one layer): with gate rows r, z, n in
//! `weight_ih_l0` / `weight_hh_l0` / the biases,
//!
//! ```text
//! r  = σ(W_ir x + b_ir + W_hr h + b_hr)
//! z  = σ(W_iz x + b_iz + W_hz h + b_hz)
//! n  = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
//! h' = (1 − z) ⊙ n + z ⊙ h
//! ```
//!
//! Forward: the input projections of all T steps are one (T·B)×D by D×3H product; each step adds
//! one B×H by H×3H product. Backward (BPTT) with `a = W_i· x + b_i·`, `u = W_h· h + b_h·`:
//! `dn̂ = dh'(1−z)(1−n²)`, `dẑ = dh'(h−n) z(1−z)`, `dr̂ = dn̂ (W_hn h + b_hn) r(1−r)`;
//! `da = [dr̂, dẑ, dn̂]`, `du = [dr̂, dẑ, dn̂ ⊙ r]`, `dh = dh' ⊙ z + du W_hh`.
//!
//! The tape holds, per step t, `h_{t−1}` (B×H) then `[r, z, n, W_hn h + b_hn]` (B×4H).

use nalgebra::DMatrix;

use super::steps::{self, UnitBackward, UnitGrad};
use super::{sigmoid, Batch, Weights};
#[cfg(doc)]
use steps::Recurrent;

/// Runs the cell over the batch from h = 0; returns the last hidden state (B×H) and, with a
/// tape, records what [`backward_unit`] needs.
pub(crate) fn forward(
    w: &Weights,
    batch: &Batch,
    h: usize,
    tape: Option<&mut Vec<DMatrix<f64>>>,
) -> DMatrix<f64> {
    steps::forward(w, batch, h, tape, |_, a: [f64; 3], u: [f64; 3], hp| {
        let r = sigmoid(a[0] + u[0]);
        let z = sigmoid(a[1] + u[1]);
        let uhn = u[2];
        let n = (a[2] + r * uhn).tanh();
        ((1.0 - z) * n + z * hp, [r, z, n, uhn])
    })
}

/// The per-unit backward step for [`steps::backward`] (with [`Recurrent::Own`]); `hb` = H·B.
pub(crate) fn backward_unit(hb: usize) -> impl UnitBackward<3> {
    move |act: &[f64], _: Option<&[f64]>, hp: &[f64], k: usize, g: f64| {
        let (r, z, n, uhn) = (act[k], act[hb + k], act[2 * hb + k], act[3 * hb + k]);
        let dn = g * (1.0 - z) * (1.0 - n * n);
        let dz = g * (hp[k] - n) * z * (1.0 - z);
        let dr = dn * uhn * r * (1.0 - r);
        UnitGrad {
            da: [dr, dz, dn],
            du: [dr, dz, dn * r],
            dh_direct: g * z,
        }
    }
}
