//! Parity with PyTorch for the hand-written GRU and LSTM (`src/models/rnn/`): reads the golden
//! values that `scripts/torch_fixtures.py` wrote with PyTorch (float64, committed in
//! tests/fixtures/rnn.json; no Python needed) for D = 4, H = 5, T = 7, batch 3. Tolerances
//! (absolute, on values of order 1) are a small factor above the worst differences measured
//! (x86_64): forward outputs and last states ≤ 1e-15 (measured 1.1e-16), the loss and the
//! gradients of the MSE loss ≤ 2e-15 (measured 2.2e-16), the 20-step Adam trajectory (losses,
//! clipped norms and parameters after step 20, with and without clip_grad_norm_) ≤ 1e-14
//! (measured 1.6e-15). A single wrong rounding order in a gate would exceed them. Each test
//! prints its worst difference.

mod common;

use klinecast::models::rnn::{clip_grad_norm, Adam, Batch, Cell, Layout, Net};
use serde_json::Value;

use common::fixtures::{load, num};

/// Forward outputs and states (measured worst 1.1e-16).
const FORWARD_TOL: f64 = 1e-15;
/// Loss and gradients (measured worst 2.2e-16).
const GRAD_TOL: f64 = 2e-15;
/// The 20-step Adam trajectory (measured worst 1.6e-15).
const ADAM_TOL: f64 = 1e-14;

fn fixtures() -> Value {
    load("rnn.json")
}

fn flat(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(items) => items.iter().flat_map(flat).collect(),
        other => vec![num(other)],
    }
}

fn nested3(v: &Value) -> Vec<Vec<Vec<f64>>> {
    let rows =
        |v: &Value| -> Vec<Vec<f64>> { v.as_array().expect("array").iter().map(flat).collect() };
    v.as_array().expect("array").iter().map(rows).collect()
}

const NAMES: [&str; 6] = [
    "rnn.weight_ih_l0",
    "rnn.weight_hh_l0",
    "rnn.bias_ih_l0",
    "rnn.bias_hh_l0",
    "head.weight",
    "head.bias",
];

fn layout(cell: Cell) -> Layout {
    Layout {
        cell,
        inputs: 4,
        hidden: 5,
    }
}

fn params_of(layout: Layout, dict: &Value) -> Net {
    let parts: Vec<Vec<f64>> = NAMES.iter().map(|n| flat(&dict[*n])).collect();
    Net::from_parts(
        layout,
        [
            &parts[0], &parts[1], &parts[2], &parts[3], &parts[4], &parts[5],
        ],
    )
    .expect("fixture parameters have PyTorch's shapes")
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f64::max)
}

fn cases() -> Vec<(Cell, Value)> {
    let all = fixtures();
    vec![
        (Cell::Gru, all["gru"].clone()),
        (Cell::Lstm, all["lstm"].clone()),
    ]
}

/// Backs "the forward pass is exactly nn.GRU / nn.LSTM + nn.Linear": head outputs and the last
/// hidden (and cell) state within 1e-15 of PyTorch's.
#[test]
fn forward_matches_torch() {
    for (cell, case) in cases() {
        let net = params_of(layout(cell), &case["state_dict"]);
        let batch = Batch::from_nested(&nested3(&case["x"]));
        let (out, h, c) = net.forward(&batch);
        let d_out = max_diff(&out, &flat(&case["output"]));
        let h_rows: Vec<f64> = (0..3)
            .flat_map(|b| (0..5).map(move |j| (b, j)))
            .map(|(b, j)| h[(b, j)])
            .collect();
        let d_h = max_diff(&h_rows, &flat(&case["h_n"]));
        let mut d_c = 0.0;
        if let Some(c) = c {
            let c_rows: Vec<f64> = (0..3)
                .flat_map(|b| (0..5).map(move |j| (b, j)))
                .map(|(b, j)| c[(b, j)])
                .collect();
            d_c = max_diff(&c_rows, &flat(&case["c_n"]));
        } else {
            assert!(cell == Cell::Gru);
        }
        println!("{cell:?} forward: output {d_out:.1e}, h_n {d_h:.1e}, c_n {d_c:.1e}");
        assert!(
            d_out <= FORWARD_TOL && d_h <= FORWARD_TOL && d_c <= FORWARD_TOL,
            "{cell:?}: {d_out:e} {d_h:e} {d_c:e}"
        );
    }
}

/// Backs "BPTT gives PyTorch's gradients": the MSE loss and the gradient of every parameter (all
/// six tensors) within 2e-15 of autograd's.
#[test]
fn gradients_match_torch() {
    for (cell, case) in cases() {
        let l = layout(cell);
        let net = params_of(l, &case["state_dict"]);
        let batch = Batch::from_nested(&nested3(&case["x"]));
        let y = flat(&case["y"]);
        let (loss, grad) = net.loss_grad(&batch, &y, 1);
        let d_loss = (loss - num(&case["loss"])).abs();
        assert!(d_loss <= GRAD_TOL, "{cell:?} loss: {d_loss:e}");
        for (name, range) in l.named() {
            let d = max_diff(&grad[range], &flat(&case["grad"][name]));
            println!("{cell:?} grad {name}: {d:.1e}");
            assert!(d <= GRAD_TOL, "{cell:?} {name}: {d}");
        }
    }
}

/// Backs "Adam and clip_grad_norm_ are exactly PyTorch's": 20 steps (lr 0.01) from the same
/// weights over the same batches give the same loss at every step and the same parameters after
/// step 20 within 1e-14, with and without clipping (max_norm 0.05, so every step is clipped);
/// the gradient norms that clipping reports agree too.
#[test]
fn adam_trajectory_matches_torch() {
    let lr = num(&fixtures()["lr"]);
    for (cell, case) in cases() {
        let l = layout(cell);
        let xs: Vec<Batch> = case["train_x"]
            .as_array()
            .expect("batches")
            .iter()
            .map(|b| Batch::from_nested(&nested3(b)))
            .collect();
        let ys: Vec<Vec<f64>> = case["train_y"]
            .as_array()
            .expect("targets")
            .iter()
            .map(flat)
            .collect();
        for label in ["plain", "clipped"] {
            let run = &case["adam"][label];
            let clip = run["clip"]
                .as_str()
                .map(|v| v.parse::<f64>().expect("clip"));
            let mut net = params_of(l, &case["state_dict"]);
            let mut adam = Adam::new(l.len(), lr, 0.9, 0.999, 1e-8);
            let mut losses = Vec::new();
            let mut norms = Vec::new();
            for step in 0..20 {
                let (loss, mut grad) = net.loss_grad(&xs[step % 4], &ys[step % 4], 1);
                if let Some(c) = clip {
                    norms.push(clip_grad_norm(&mut grad, c));
                }
                adam.step(&mut net.theta, &grad);
                losses.push(loss);
            }
            let d_loss = max_diff(&losses, &flat(&run["losses"]));
            let d_norm = max_diff(&norms, &flat(&run["norms"]));
            let mut d_param = 0.0_f64;
            for (name, range) in l.named() {
                d_param = d_param.max(max_diff(&net.theta[range], &flat(&run["params"][name])));
            }
            println!(
                "{cell:?} adam {label}: losses {d_loss:.1e}, norms {d_norm:.1e}, params {d_param:.1e}"
            );
            assert!(
                d_loss <= ADAM_TOL && d_norm <= ADAM_TOL && d_param <= ADAM_TOL,
                "{cell:?} {label}: losses {d_loss:e}, norms {d_norm:e}, params {d_param:e}"
            );
            assert_eq!(adam.step, 20);
        }
        // The trajectory really moves: the first and last loss of the plain run differ.
        let losses = flat(&case["adam"]["plain"]["losses"]);
        assert!((losses[0] - losses[19]).abs() > 1e-3);
    }
}
