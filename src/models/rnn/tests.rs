use super::*;

fn random_batch(rng: &mut Rng, batch: usize, steps: usize, d: usize) -> Batch {
    Batch {
        xs: DMatrix::from_fn(batch * steps, d, |_, _| rng.next_f64() * 2.0 - 1.0),
        batch,
        steps,
    }
}

/// Backs the claim "BPTT gradients are the exact derivative of the MSE loss": every analytic
/// gradient of both cells agrees with a central difference (eps 1e-6) within
/// 1e-8 + 1e-6·|gradient|.
#[test]
fn gradients_match_central_differences() {
    for cell in [Cell::Gru, Cell::Lstm] {
        let mut rng = Rng::new(17);
        let layout = Layout {
            cell,
            inputs: 3,
            hidden: 4,
        };
        // Larger weights than the default init so that every gate is far from linear.
        let mut net = Net::new(layout, &mut rng);
        for p in net.theta.iter_mut() {
            *p *= 3.0;
        }
        let batch = random_batch(&mut rng, 5, 6, 3);
        let targets: Vec<f64> = (0..5).map(|_| rng.next_f64() - 0.5).collect();
        let (_, grad) = net.loss_grad(&batch, &targets, 1);
        let eps = 1e-6;
        let mut worst = 0.0_f64;
        for (k, &analytic) in grad.iter().enumerate() {
            let mut plus = net.clone();
            plus.theta[k] += eps;
            let mut minus = net.clone();
            minus.theta[k] -= eps;
            let lp = plus.loss_grad(&batch, &targets, 1).0;
            let lm = minus.loss_grad(&batch, &targets, 1).0;
            let numeric = (lp - lm) / (2.0 * eps);
            // Rounding in the difference quotient is ≈ 1e-16 · loss / eps ≈ 1e-10 here.
            let err = (numeric - analytic).abs();
            worst = worst.max(err);
            assert!(
                err <= 1e-8 + 1e-6 * analytic.abs(),
                "{cell:?} param {k}: analytic {analytic} numeric {numeric}"
            );
        }
        assert!(
            worst > 0.0,
            "a difference check that never differs is suspicious"
        );
    }
}

/// Backs the claim "the gradient of a batch does not depend on the thread count": 70 samples
/// (3 shards) on 1, 2 and 3 threads give bit-identical losses and gradients.
#[test]
fn gradients_are_identical_for_any_thread_count() {
    for cell in [Cell::Gru, Cell::Lstm] {
        let mut rng = Rng::new(5);
        let layout = Layout {
            cell,
            inputs: 2,
            hidden: 3,
        };
        let net = Net::new(layout, &mut rng);
        let batch = random_batch(&mut rng, 70, 4, 2);
        let targets: Vec<f64> = (0..70).map(|_| rng.next_f64()).collect();
        let one = net.loss_grad(&batch, &targets, 1);
        for threads in [2, 3] {
            let other = net.loss_grad(&batch, &targets, threads);
            assert_eq!(one.0.to_bits(), other.0.to_bits());
            assert!(one
                .1
                .iter()
                .zip(&other.1)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
        // The sharded gradient equals the one-shard gradient up to summation order.
        let (_, single) = {
            let mut sum = vec![0.0; layout.len()];
            let mut sse = 0.0;
            for b in 0..70 {
                let sub = sub_batch(&batch, b..b + 1);
                let (l, g) = net.loss_grad(&sub, &targets[b..b + 1], 1);
                sse += l;
                for (s, v) in sum.iter_mut().zip(g) {
                    *s += v / 70.0;
                }
            }
            (sse, sum)
        };
        for (a, b) in one.1.iter().zip(&single) {
            assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} vs {b}");
        }
    }
}

/// Synthetic rows whose target depends on a row several steps back (only a model with memory
/// can learn it).
fn lagged_data(n: usize, seed: u64) -> (DMatrix<f64>, DVector<f64>) {
    let mut rng = Rng::new(seed);
    let x = DMatrix::from_fn(n, 2, |_, _| rng.next_f64() * 2.0 - 1.0);
    let y = DVector::from_fn(n, |i, _| if i >= 3 { 0.5 * x[(i - 3, 0)] } else { 0.0 });
    (x, y)
}

fn small_params(cell: Cell) -> RnnParams {
    RnnParams {
        cell,
        hidden: 8,
        seq_len: 6,
        batch_size: 16,
        max_epochs: 25,
        patience: 5,
        learning_rate: 1e-2,
        ..RnnParams::gru()
    }
}

/// Backs "fit learns from the sequence, not just the last row": on a target that equals a
/// feature 3 rows back, both cells reach a holdout MSE far below the target variance, and
/// training is deterministic for a seed.
#[test]
fn fit_learns_a_lagged_signal_deterministically() {
    let (x, y) = lagged_data(1200, 3);
    let (xt, yt) = lagged_data(300, 4);
    for cell in [Cell::Gru, Cell::Lstm] {
        let params = small_params(cell);
        let model = params.fit(&x, &y).expect("fit");
        let pred = model.predict(&xt);
        let rows = sequence_rows(300, 6);
        let mse: f64 =
            rows.clone().map(|i| (pred[i] - yt[i]).powi(2)).sum::<f64>() / rows.len() as f64;
        let var: f64 = rows.clone().map(|i| yt[i] * yt[i]).sum::<f64>() / rows.len() as f64;
        assert!(mse < 0.1 * var, "{cell:?}: mse {mse} vs variance {var}");
        let again = params.fit(&x, &y).expect("fit");
        assert_eq!(model, again);
        assert!(model.val_loss.is_some());
        assert!(model.best_epoch >= 1 && model.best_epoch <= model.epochs_run);
    }
}

/// Backs "online updates resume exactly after a save and load": updating a postcard round
/// trip gives bit-identical parameters and Adam state to updating the original, and the
/// update changes the model.
#[test]
fn update_resumes_after_serde_round_trip() {
    let (x, y) = lagged_data(400, 8);
    let params = RnnParams {
        max_epochs: 2,
        ..small_params(Cell::Lstm)
    };
    let mut model = params.fit(&x, &y).expect("fit");
    let bytes = postcard::to_allocvec(&model).expect("serialize");
    let mut back: Rnn = postcard::from_bytes(&bytes).expect("deserialize");
    assert_eq!(model, back);
    let (xn, yn) = lagged_data(20, 9);
    let before = model.net.theta.clone();
    let steps_before = model.adam.step;
    let la = model.update(&xn, &yn, 3).expect("update");
    let lb = back.update(&xn, &yn, 3).expect("update");
    assert_eq!(la, lb);
    assert_eq!(model, back);
    assert_eq!(model.adam.step, steps_before + 3);
    assert_ne!(model.net.theta, before);
    assert!(model.check(2).is_ok());
    assert!(model.check(3).is_err());
}

/// Backs "predict, predict_sequence and the per-kline Forecaster agree": the Forecaster equals
/// predict_sequence on the same window bit for bit, and the batched predict agrees to 1e-12
/// (matrix products of other shapes may sum in another order).
#[test]
fn forecaster_matches_batched_predict() {
    let (x, y) = lagged_data(300, 1);
    let params = RnnParams {
        max_epochs: 1,
        ..small_params(Cell::Gru)
    };
    let model = params.fit(&x, &y).expect("fit");
    let (xt, _) = lagged_data(20, 2);
    let all = model.predict(&xt);
    let mut forecaster = Forecaster::new(model.seq_len);
    for i in 0..20 {
        let row: Vec<f64> = (0..2).map(|j| xt[(i, j)]).collect();
        let f = forecaster.push(&model, &row);
        let start = i.saturating_sub(5);
        let window: Vec<f64> = (start..=i)
            .flat_map(|r| (0..2).map(move |j| (r, j)))
            .map(|(r, j)| xt[(r, j)])
            .collect();
        assert_eq!(f.to_bits(), model.predict_sequence(&window).to_bits());
        assert!(
            (f - all[i]).abs() <= 1e-12 * f.abs().max(1e-3),
            "row {i}: {f} vs {}",
            all[i]
        );
    }
    assert_eq!(forecaster.len(), 6);
}

/// The batched predict runs its batches on `threads` threads: 1 and 3 threads give the same
/// forecasts bit for bit, over more rows than one batch holds.
#[test]
fn batched_predict_is_the_same_on_any_thread_count() {
    let (x, y) = lagged_data(300, 1);
    let params = RnnParams {
        max_epochs: 1,
        ..small_params(Cell::Lstm)
    };
    let mut model = params.fit(&x, &y).expect("fit");
    let (xt, _) = lagged_data(3 * PREDICT_BATCH + 17, 2);
    model.threads = 1;
    let one = model.predict(&xt);
    model.threads = 3;
    let three = model.predict(&xt);
    assert_eq!(one.len(), xt.nrows());
    assert!(one
        .iter()
        .zip(three.iter())
        .all(|(a, b)| a.to_bits() == b.to_bits()));
}

/// Backs "bad hyperparameters and too little data are typed errors".
#[test]
fn bad_params_and_shapes_are_rejected() {
    let (x, y) = lagged_data(50, 1);
    let err = RnnParams {
        hidden: 0,
        ..RnnParams::lstm()
    }
    .fit(&x, &y)
    .expect_err("hidden 0");
    assert!(matches!(
        err,
        FitError::BadParam {
            model: "lstm",
            param: "hidden",
            ..
        }
    ));
    let err = RnnParams {
        validation_fraction: 1.0,
        ..RnnParams::gru()
    }
    .validate()
    .expect_err("fraction");
    assert!(matches!(
        err,
        FitError::BadParam {
            param: "validation_fraction",
            ..
        }
    ));
    let err = RnnParams::gru().fit(&x, &y).expect_err("50 rows < 61");
    assert!(matches!(err, FitError::Shape { model: "gru", .. }));
}

/// Backs "clip_grad_norm matches PyTorch's formula": factor max/(norm+1e-6), never above 1.
#[test]
fn clip_scales_to_max_norm() {
    let mut g = vec![3.0, 4.0];
    let norm = clip_grad_norm(&mut g, 1.0);
    assert_eq!(norm, 5.0);
    assert_eq!(g, vec![3.0 / (5.0 + 1e-6), 4.0 / (5.0 + 1e-6)]);
    let mut small = vec![0.1, 0.0];
    clip_grad_norm(&mut small, 1.0);
    assert_eq!(small, vec![0.1, 0.0]);
}

/// Backs "a model file's sizes are checked before anything is allocated from them": hidden
/// size, sequence length and threads out of range, and bad optimiser state, are refused.
#[test]
fn check_caps_sizes_from_foreign_files() {
    let (x, y) = lagged_data(60, 2);
    let params = RnnParams {
        max_epochs: 1,
        ..small_params(Cell::Gru)
    };
    let model = params.fit(&x, &y).expect("fit");
    model.check(2).expect("a fitted model passes");
    assert!(model.check(3).is_err());
    let mut cases: Vec<Rnn> = Vec::new();
    for seq_len in [0, MAX_SEQ_LEN + 1, usize::MAX] {
        cases.push(Rnn {
            seq_len,
            ..model.clone()
        });
    }
    for hidden in [0, MAX_HIDDEN + 1, usize::MAX / 2] {
        let mut m = model.clone();
        m.net.layout.hidden = hidden;
        cases.push(m);
    }
    for threads in [0, MAX_THREADS + 1] {
        cases.push(Rnn {
            threads,
            ..model.clone()
        });
    }
    for scale in [0.0, -1.0, f64::NAN] {
        cases.push(Rnn {
            target_scale: scale,
            ..model.clone()
        });
    }
    let mut short = model.clone();
    short.adam.v.pop();
    cases.push(short);
    let mut lr = model.clone();
    lr.adam.lr = f64::INFINITY;
    cases.push(lr);
    for (i, m) in cases.iter().enumerate() {
        assert!(m.check(2).is_err(), "case {i} accepted");
    }
    // The same bounds are typed errors at fit time.
    for (p, name) in [
        (
            RnnParams {
                seq_len: MAX_SEQ_LEN + 1,
                ..RnnParams::gru()
            },
            "seq_len",
        ),
        (
            RnnParams {
                hidden: MAX_HIDDEN + 1,
                ..RnnParams::gru()
            },
            "hidden",
        ),
        (
            RnnParams {
                seq_len: 0,
                ..RnnParams::gru()
            },
            "seq_len",
        ),
        (
            RnnParams {
                learning_rate: f64::NAN,
                ..RnnParams::gru()
            },
            "learning_rate",
        ),
        (
            RnnParams {
                learning_rate: 0.0,
                ..RnnParams::gru()
            },
            "learning_rate",
        ),
        (
            RnnParams {
                clip_norm: Some(-1.0),
                ..RnnParams::gru()
            },
            "clip_norm",
        ),
    ] {
        let err = p.validate().expect_err(name);
        assert!(
            matches!(err, FitError::BadParam { param, .. } if param == name),
            "{name}: {err}"
        );
    }
}
