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

use super::{
    add_bias, add_column_sums, add_matrix, project, sigmoid, stack_hidden, Batch, Layout, Weights,
};

/// Runs the cell over the batch from h = c = 0; returns the last hidden and cell states (B×H)
/// and, with a tape, records what [`backward`] needs.
pub(crate) fn forward(
    w: &Weights,
    batch: &Batch,
    h: usize,
    mut tape: Option<&mut Vec<DMatrix<f64>>>,
) -> (DMatrix<f64>, DMatrix<f64>) {
    let (bsz, steps) = (batch.batch, batch.steps);
    let rows = bsz * steps;
    let mut a = &batch.xs * &w.wih_t;
    add_bias(&mut a, &w.b_ih);
    let a = a.as_slice();
    let mut hprev = DMatrix::<f64>::zeros(bsz, h);
    let mut c = DMatrix::<f64>::zeros(bsz, h);
    let mut u = DMatrix::<f64>::zeros(bsz, 4 * h);
    for t in 0..steps {
        project(&mut u, &hprev, &w.whh_t);
        add_bias(&mut u, &w.b_hh);
        let us = u.as_slice();
        let mut hnew = DMatrix::<f64>::zeros(bsz, h);
        let mut act = DMatrix::<f64>::zeros(bsz, if tape.is_some() { 6 * h } else { 0 });
        {
            let hn_out = hnew.as_mut_slice();
            let cs = c.as_mut_slice();
            let act_s = act.as_mut_slice();
            for j in 0..h {
                for b in 0..bsz {
                    let row = t * bsz + b;
                    let pre =
                        |gate: usize| a[(gate * h + j) * rows + row] + us[(gate * h + j) * bsz + b];
                    let i = sigmoid(pre(0));
                    let f = sigmoid(pre(1));
                    let g = pre(2).tanh();
                    let o = sigmoid(pre(3));
                    let k = j * bsz + b;
                    let cn = f * cs[k] + i * g;
                    let tc = cn.tanh();
                    cs[k] = cn;
                    hn_out[k] = o * tc;
                    if !act_s.is_empty() {
                        for (slot, v) in [i, f, g, o, cn, tc].into_iter().enumerate() {
                            act_s[slot * h * bsz + k] = v;
                        }
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
    (hprev, c)
}

/// Backpropagation through time from `dh` (gradient of the loss w.r.t. the last hidden state;
/// the last cell state has none); adds the cell's parameter gradients to `grad` (layout `l`).
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
    let mut da_all = DMatrix::<f64>::zeros(rows, 4 * h);
    let mut du = DMatrix::<f64>::zeros(bsz, 4 * h);
    let mut dc = vec![0.0; bsz * h];
    for t in (0..steps).rev() {
        let act = tape[2 * t + 1].as_slice();
        let prev_act = if t > 0 {
            Some(tape[2 * t - 1].as_slice())
        } else {
            None
        };
        {
            let g_in = dh.as_slice();
            let da = da_all.as_mut_slice();
            let dus = du.as_mut_slice();
            let hb = h * bsz;
            for j in 0..h {
                for b in 0..bsz {
                    let k = j * bsz + b;
                    let row = t * bsz + b;
                    let (i, f, g, o, tc) = (
                        act[k],
                        act[hb + k],
                        act[2 * hb + k],
                        act[3 * hb + k],
                        act[5 * hb + k],
                    );
                    let c_prev = prev_act.map_or(0.0, |p| p[4 * hb + k]);
                    let gh = g_in[k];
                    let dcv = dc[k] + gh * o * (1.0 - tc * tc);
                    let pre = [
                        dcv * g * i * (1.0 - i),
                        dcv * c_prev * f * (1.0 - f),
                        dcv * i * (1.0 - g * g),
                        gh * tc * o * (1.0 - o),
                    ];
                    dc[k] = dcv * f;
                    for (gate, v) in pre.into_iter().enumerate() {
                        da[(gate * h + j) * rows + row] = v;
                        dus[gate * hb + k] = v;
                    }
                }
            }
        }
        if t > 0 {
            dh.gemm(1.0, &du, &w.whh, 0.0);
        }
    }
    let gwih_t = batch.xs.tr_mul(&da_all);
    add_matrix(&gwih_t, &mut grad[l.w_ih()]);
    // The recurrent pre-activations have the same gradient as the input ones.
    let gwhh_t = stack_hidden(tape, bsz, h, steps).tr_mul(&da_all);
    add_matrix(&gwhh_t, &mut grad[l.w_hh()]);
    add_column_sums(&da_all, &mut grad[l.b_ih()]);
    add_column_sums(&da_all, &mut grad[l.b_hh()]);
}
