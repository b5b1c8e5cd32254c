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

use super::{
    add_bias, add_column_sums, add_matrix, project, sigmoid, stack_hidden, Batch, Layout, Weights,
};

/// Runs the cell over the batch from h = 0; returns the last hidden state (B×H) and, with a
/// tape, records what [`backward`] needs.
pub(crate) fn forward(
    w: &Weights,
    batch: &Batch,
    h: usize,
    mut tape: Option<&mut Vec<DMatrix<f64>>>,
) -> DMatrix<f64> {
    let (bsz, steps) = (batch.batch, batch.steps);
    let rows = bsz * steps;
    let mut a = &batch.xs * &w.wih_t;
    add_bias(&mut a, &w.b_ih);
    let a = a.as_slice();
    let mut hprev = DMatrix::<f64>::zeros(bsz, h);
    let mut u = DMatrix::<f64>::zeros(bsz, 3 * h);
    for t in 0..steps {
        project(&mut u, &hprev, &w.whh_t);
        add_bias(&mut u, &w.b_hh);
        let us = u.as_slice();
        let mut hnew = DMatrix::<f64>::zeros(bsz, h);
        let mut act = DMatrix::<f64>::zeros(bsz, if tape.is_some() { 4 * h } else { 0 });
        {
            let hp = hprev.as_slice();
            let hn_out = hnew.as_mut_slice();
            let act_s = act.as_mut_slice();
            for j in 0..h {
                for b in 0..bsz {
                    let row = t * bsz + b;
                    let r = sigmoid(a[j * rows + row] + us[j * bsz + b]);
                    let z = sigmoid(a[(h + j) * rows + row] + us[(h + j) * bsz + b]);
                    let uhn = us[(2 * h + j) * bsz + b];
                    let n = (a[(2 * h + j) * rows + row] + r * uhn).tanh();
                    hn_out[j * bsz + b] = (1.0 - z) * n + z * hp[j * bsz + b];
                    if !act_s.is_empty() {
                        act_s[j * bsz + b] = r;
                        act_s[(h + j) * bsz + b] = z;
                        act_s[(2 * h + j) * bsz + b] = n;
                        act_s[(3 * h + j) * bsz + b] = uhn;
                    }
                }
            }
        }
        if let Some(tape) = tape.as_deref_mut() {
            tape.push(std::mem::replace(&mut hprev, hnew));
            tape.push(act);
        } else {
            hprev = hnew;
        }
    }
    hprev
}

/// Backpropagation through time from `dh` (gradient of the loss w.r.t. the last hidden state);
/// adds the parameter gradients of the cell to `grad` (layout `l`).
pub(crate) fn backward(
    w: &Weights,
    batch: &Batch,
    h: usize,
    tape: &[DMatrix<f64>],
    mut dh: DMatrix<f64>,
    l: &Layout,
    grad: &mut [f64],
) {
    let (bsz, steps) = (batch.batch, batch.steps);
    let rows = bsz * steps;
    let mut da_all = DMatrix::<f64>::zeros(rows, 3 * h);
    let mut du = DMatrix::<f64>::zeros(bsz, 3 * h);
    let mut du_all = DMatrix::<f64>::zeros(rows, 3 * h);
    let mut dh_direct = DMatrix::<f64>::zeros(bsz, h);
    for t in (0..steps).rev() {
        let hprev = &tape[2 * t];
        let act = tape[2 * t + 1].as_slice();
        {
            let hp = hprev.as_slice();
            let g_in = dh.as_slice();
            let da = da_all.as_mut_slice();
            let dus = du.as_mut_slice();
            let du_all_s = du_all.as_mut_slice();
            let dd = dh_direct.as_mut_slice();
            for j in 0..h {
                for b in 0..bsz {
                    let k = j * bsz + b;
                    let row = t * bsz + b;
                    let r = act[k];
                    let z = act[h * bsz + k];
                    let n = act[2 * h * bsz + k];
                    let uhn = act[3 * h * bsz + k];
                    let g = g_in[k];
                    let dn = g * (1.0 - z) * (1.0 - n * n);
                    let dz = g * (hp[k] - n) * z * (1.0 - z);
                    let dr = dn * uhn * r * (1.0 - r);
                    da[j * rows + row] = dr;
                    da[(h + j) * rows + row] = dz;
                    da[(2 * h + j) * rows + row] = dn;
                    dus[k] = dr;
                    dus[h * bsz + k] = dz;
                    dus[2 * h * bsz + k] = dn * r;
                    du_all_s[j * rows + row] = dr;
                    du_all_s[(h + j) * rows + row] = dz;
                    du_all_s[(2 * h + j) * rows + row] = dn * r;
                    dd[k] = g * z;
                }
            }
        }
        if t > 0 {
            dh.copy_from(&dh_direct);
            dh.gemm(1.0, &du, &w.whh, 1.0);
        }
    }
    let gwih_t = batch.xs.tr_mul(&da_all);
    add_matrix(&gwih_t, &mut grad[l.w_ih()]);
    let gwhh_t = stack_hidden(tape, bsz, h, steps).tr_mul(&du_all);
    add_matrix(&gwhh_t, &mut grad[l.w_hh()]);
    add_column_sums(&da_all, &mut grad[l.b_ih()]);
    add_column_sums(&du_all, &mut grad[l.b_hh()]);
}
