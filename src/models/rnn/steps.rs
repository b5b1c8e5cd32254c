//! The time loops both cells share: the forward pass over T steps with one unit update per
//! (unit, sample), and backpropagation through time with one gate-gradient update per
//! (unit, sample). The cells ([`super::gru`], [`super::lstm`]) supply only that per-unit
//! arithmetic, as closures, so their maths stays exactly PyTorch's.
//!
//! Storage (column-major): the input pre-activations `a = X W_ihᵀ + b_ih` are (T·B)×G·H with
//! row `t·B + b`, the recurrent ones `u = h W_hhᵀ + b_hh` are B×G·H; unit j of gate g is column
//! `g·H + j`. Per-step B×H matrices are indexed `k = j·B + b`.

use nalgebra::DMatrix;

use super::{add_bias, add_column_sums, add_matrix, project, stack_hidden, Batch, Layout, Weights};

/// Runs a cell with `G` gate blocks over the batch from h = 0 and returns the last hidden state
/// (B×H). For every step, unit j and sample b, `unit(k, a, u, h_prev)` gets the input and
/// recurrent pre-activations of the G gates and `h_{t−1}[k]`, and returns `h_t[k]` and the `S`
/// values to keep on the tape. With a tape, each step pushes `h_{t−1}` (B×H) then those values
/// (B×S·H, value s of unit k at `s·H·B + k`).
pub(crate) fn forward<const G: usize, const S: usize>(
    w: &Weights,
    batch: &Batch,
    h: usize,
    mut tape: Option<&mut Vec<DMatrix<f64>>>,
    mut unit: impl FnMut(usize, [f64; G], [f64; G], f64) -> (f64, [f64; S]),
) -> DMatrix<f64> {
    let (bsz, steps) = (batch.batch, batch.steps);
    let rows = bsz * steps;
    let mut a = &batch.xs * &w.wih_t;
    add_bias(&mut a, &w.b_ih);
    let a = a.as_slice();
    let mut hprev = DMatrix::<f64>::zeros(bsz, h);
    let mut u = DMatrix::<f64>::zeros(bsz, G * h);
    for t in 0..steps {
        project(&mut u, &hprev, &w.whh_t);
        add_bias(&mut u, &w.b_hh);
        let us = u.as_slice();
        let mut hnew = DMatrix::<f64>::zeros(bsz, h);
        let mut act = DMatrix::<f64>::zeros(bsz, if tape.is_some() { S * h } else { 0 });
        {
            let hp = hprev.as_slice();
            let hn_out = hnew.as_mut_slice();
            let act_s = act.as_mut_slice();
            each_unit(h, bsz, t, |j, b, k, row| {
                let pre_a = std::array::from_fn(|g| a[(g * h + j) * rows + row]);
                let pre_u = std::array::from_fn(|g| us[(g * h + j) * bsz + b]);
                let (out, keep) = unit(k, pre_a, pre_u, hp[k]);
                hn_out[k] = out;
                if !act_s.is_empty() {
                    for (slot, v) in keep.into_iter().enumerate() {
                        act_s[slot * h * bsz + k] = v;
                    }
                }
            });
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

/// Calls `f(j, b, k, row)` for every unit j and sample b of step t, with `k = j·B + b` (in a
/// B×H matrix) and `row = t·B + b` (in a (T·B)×G·H one).
fn each_unit(h: usize, bsz: usize, t: usize, mut f: impl FnMut(usize, usize, usize, usize)) {
    for j in 0..h {
        for b in 0..bsz {
            f(j, b, j * bsz + b, t * bsz + b);
        }
    }
}

/// What one (unit, sample) of a backward step gives: the gradients of the G input
/// pre-activations, of the G recurrent ones, and of `h_{t−1}` through paths other than `W_hh`.
pub(crate) struct UnitGrad<const G: usize> {
    pub(crate) da: [f64; G],
    pub(crate) du: [f64; G],
    pub(crate) dh_direct: f64,
}

/// Where a cell's recurrent gradient goes (see [`backward`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recurrent {
    /// `du = da` and `h_{t−1}` reaches the loss only through `W_hh` (the LSTM).
    SameAsInput,
    /// `du` has its own values and `dh_direct` is added to `du · W_hh` (the GRU).
    Own,
}

/// The per-unit backward step of a cell with `G` gate blocks (see [`backward`]).
pub(crate) trait UnitBackward<const G: usize>:
    FnMut(&[f64], Option<&[f64]>, &[f64], usize, f64) -> UnitGrad<G>
{
}

impl<const G: usize, F> UnitBackward<G> for F where
    F: FnMut(&[f64], Option<&[f64]>, &[f64], usize, f64) -> UnitGrad<G>
{
}

/// Backpropagation through time from `dh` (gradient of the loss w.r.t. the last hidden state)
/// over the tape of [`forward`]; adds the cell's parameter gradients to `grad` (layout `l`).
/// For every step (last first), unit j and sample b, `unit(act, prev_act, h_prev, k, g)` gets
/// the step's tape values, the previous step's (none at t = 0), `h_{t−1}` and the incoming
/// gradient `dh[k]`.
#[allow(clippy::too_many_arguments)] // Reason: the cell's weights, tape and gradient, all needed.
pub(crate) fn backward<const G: usize>(
    w: &Weights,
    batch: &Batch,
    h: usize,
    tape: &[DMatrix<f64>],
    mut dh: DMatrix<f64>,
    l: &Layout,
    grad: &mut [f64],
    recurrent: Recurrent,
    mut unit: impl UnitBackward<G>,
) {
    let (bsz, steps) = (batch.batch, batch.steps);
    let rows = bsz * steps;
    let own = recurrent == Recurrent::Own;
    let mut da_all = DMatrix::<f64>::zeros(rows, G * h);
    let mut du = DMatrix::<f64>::zeros(bsz, G * h);
    let mut du_all = DMatrix::<f64>::zeros(if own { rows } else { 0 }, G * h);
    let mut dh_direct = DMatrix::<f64>::zeros(bsz, h);
    let hb = h * bsz;
    for t in (0..steps).rev() {
        let act = tape[2 * t + 1].as_slice();
        let prev_act = (t > 0).then(|| tape[2 * t - 1].as_slice());
        {
            let hp = tape[2 * t].as_slice();
            let g_in = dh.as_slice();
            let da = da_all.as_mut_slice();
            let dus = du.as_mut_slice();
            let du_all_s = du_all.as_mut_slice();
            let dd = dh_direct.as_mut_slice();
            each_unit(h, bsz, t, |j, _, k, row| {
                let UnitGrad {
                    da: ga,
                    du: gu,
                    dh_direct: direct,
                } = unit(act, prev_act, hp, k, g_in[k]);
                for gate in 0..G {
                    da[(gate * h + j) * rows + row] = ga[gate];
                    dus[gate * hb + k] = gu[gate];
                    if own {
                        du_all_s[(gate * h + j) * rows + row] = gu[gate];
                    }
                }
                dd[k] = direct;
            });
        }
        if t > 0 {
            if own {
                dh.copy_from(&dh_direct);
                dh.gemm(1.0, &du, &w.whh, 1.0);
            } else {
                dh.gemm(1.0, &du, &w.whh, 0.0);
            }
        }
    }
    let du_all = if own { &du_all } else { &da_all };
    let gwih_t = batch.xs.tr_mul(&da_all);
    add_matrix(&gwih_t, &mut grad[l.w_ih()]);
    let gwhh_t = stack_hidden(tape, bsz, h, steps).tr_mul(du_all);
    add_matrix(&gwhh_t, &mut grad[l.w_hh()]);
    add_column_sums(&da_all, &mut grad[l.b_ih()]);
    add_column_sums(du_all, &mut grad[l.b_hh()]);
}
