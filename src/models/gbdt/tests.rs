//! Unit tests of the gradient-boosted trees (the XGBoost parity tests are tests/gbdt_parity.rs).

use nalgebra::{DMatrix, DVector};

use super::model::GbdtWire;
use super::*;
use crate::models::{FitError, Regressor};
use crate::rng::Rng;

fn data(n: usize, d: usize, seed: u64) -> (DMatrix<f64>, DVector<f64>) {
    let mut rng = Rng::new(seed);
    let x = DMatrix::from_fn(n, d, |_, _| rng.next_f64() * 2.0 - 1.0);
    let y = DVector::from_fn(n, |i, _| {
        (3.0 * x[(i, 0)]).sin() + x[(i, 1)] * x[(i, d - 1)] + 0.3 * rng.next_f64()
    });
    (x, y)
}

/// Backs "gbdt fits log returns of ~1e-3 through a standardised target": the fit equals
/// the unit-scale fit mapped back, and survives a serde round trip.
#[test]
fn a_standardised_target_learns_tiny_returns() {
    let (x, y_unit) = data(400, 3, 9);
    let y = y_unit.map(|v| 2e-4 + 1e-3 * v);
    let mut row = vec![0.0; 3];
    let spread = |m: &Gbdt, row: &mut Vec<f64>| {
        let p: Vec<f64> = (0..x.nrows())
            .map(|i| {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = x[(i, j)];
                }
                m.predict_row(row)
            })
            .collect();
        let mean = p.iter().sum::<f64>() / p.len() as f64;
        (p.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / p.len() as f64).sqrt()
    };
    let scaled = GbdtParams {
        standardize_target: true,
        ..GbdtParams::default()
    };
    let m = scaled.fit(&x, &y).expect("fit");
    let (mean, std) = (y.mean(), y.variance().sqrt());
    let unit = GbdtParams::default()
        .fit(&x, &y.map(|v| (v - mean) / std))
        .expect("fit");
    assert_eq!(m.n_trees(), unit.n_trees());
    let want = unit.predict(&x).map(|v| mean + std * v);
    assert_eq!(m.predict(&x), want);
    assert!(spread(&m, &mut row) > 3e-4);
    let back: Gbdt =
        postcard::from_bytes(&postcard::to_allocvec(&m).expect("encode")).expect("decode");
    assert_eq!(back.predict(&x), want);
    let mut bad = m.clone();
    bad.target_scale = 0.0;
    assert!(bad.check(3).is_err());
}

#[test]
fn one_split_by_hand() {
    // y = 0,0,1,1, base 0.5: g = ±0.5, root G = 0. The split between x = 2 and 3 has loss
    // change (1)²/(2+1) + (−1)²/(2+1) − 0 = 2/3; leaves −eta·1/3 and +eta·1/3.
    let x = DMatrix::from_column_slice(4, 1, &[1.0, 2.0, 3.0, 4.0]);
    let y = DVector::from_vec(vec![0.0, 0.0, 1.0, 1.0]);
    for method in [TreeMethod::Exact, TreeMethod::Hist] {
        let m = GbdtParams {
            n_trees: 1,
            tree_method: method,
            ..GbdtParams::default()
        }
        .fit(&x, &y)
        .expect("fit");
        assert_eq!(m.base_score(), 0.5);
        let w = (-(1.0f64 / 3.0)) as f32 * 0.3f32;
        assert_eq!(
            m.tree(0),
            vec![
                TreeNode::Split {
                    feature: 0,
                    threshold: 2.5,
                    right: 2
                },
                TreeNode::Leaf(w),
                TreeNode::Leaf(-w),
            ]
        );
        assert_eq!(m.predict_row(&[0.0]), f64::from(0.5f32 + w));
        assert_eq!(m.predict_row(&[2.5]), f64::from(0.5f32 - w));
    }
}

#[test]
fn gamma_prunes_bottom_up_and_min_child_weight_limits_leaves() {
    let (x, y) = data(300, 3, 1);
    let all = GbdtParams {
        n_trees: 3,
        gamma: 1e9,
        ..GbdtParams::default()
    }
    .fit(&x, &y)
    .expect("fit");
    // Every split's loss change is below gamma: each tree is pruned to its root leaf.
    assert_eq!(all.node_count(), 3);
    let heavy = GbdtParams {
        n_trees: 1,
        min_child_weight: 100.0,
        ..GbdtParams::default()
    }
    .fit(&x, &y)
    .expect("fit");
    // Leaves hold at least 100 of 300 rows: at most 3 leaves.
    let leaves = heavy
        .tree(0)
        .iter()
        .filter(|n| matches!(n, TreeNode::Leaf(_)))
        .count();
    assert!((2..=3).contains(&leaves), "{leaves}");
}

#[test]
fn predict_matches_predict_row_and_threads_do_not_change_the_model() {
    let (x, y) = data(6000, 14, 2);
    let fit = |threads| {
        GbdtParams {
            n_trees: 10,
            threads,
            ..GbdtParams::default()
        }
        .fit(&x, &y)
        .expect("fit")
    };
    let (a, b) = (fit(1), fit(2));
    let pa = a.predict(&x);
    assert_eq!(pa, b.predict(&x));
    // Uneven row ranges over three threads, and a query with an extra column.
    let mut c = a.clone();
    c.set_threads(3);
    assert_eq!(pa, c.predict(&x));
    let wide = x.clone().insert_column(14, 5.0);
    assert_eq!(pa, c.predict(&wide));
    assert_eq!(a.node_count(), b.node_count());
    for i in (0..6000).step_by(97) {
        let row: Vec<f64> = (0..14).map(|j| x[(i, j)]).collect();
        assert_eq!(a.predict_row(&row).to_bits(), pa[i].to_bits());
    }
    // Boosting fits the training data better than the mean.
    let mean = y.mean();
    let base = y.iter().map(|v| (v - mean).powi(2)).sum::<f64>();
    assert!((pa - &y).norm_squared() < 0.2 * base);
}

#[test]
fn sampling_is_seeded() {
    let (x, y) = data(400, 6, 3);
    let fit = |seed| {
        GbdtParams {
            n_trees: 5,
            subsample: 0.7,
            colsample_bytree: 0.5,
            seed,
            ..GbdtParams::default()
        }
        .fit(&x, &y)
        .expect("fit")
        .predict(&x)
    };
    assert_eq!(fit(1), fit(1));
    assert_ne!(fit(1), fit(2));
}

#[test]
fn early_stopping_keeps_the_best_prefix() {
    // Pure noise: validation RMSE is best after very few trees.
    let mut rng = Rng::new(5);
    let x = DMatrix::from_fn(500, 3, |_, _| rng.next_f64());
    let y = DVector::from_fn(500, |_, _| rng.next_f64());
    let params = GbdtParams {
        early_stopping_rounds: Some(5),
        validation_fraction: 0.2,
        ..GbdtParams::default()
    };
    let m = params.fit(&x, &y).expect("fit");
    assert!(m.n_trees() < 20, "{}", m.n_trees());
    // The kept trees are exactly the first trees of an unstopped fit on the same 400 rows.
    let head = GbdtParams {
        n_trees: m.n_trees(),
        base_score: Some(y.rows(0, 400).mean()),
        ..GbdtParams::default()
    }
    .fit(&x.rows(0, 400).into_owned(), &y.rows(0, 400).into_owned())
    .expect("fit");
    assert_eq!(m.predict(&x), head.predict(&x));
    let tiny = DMatrix::from_column_slice(1, 1, &[1.0]);
    let err = params
        .fit(&tiny, &DVector::from_vec(vec![1.0]))
        .expect_err("no validation rows");
    assert!(
        matches!(err, FitError::Shape { model: "gbdt", .. }),
        "{err}"
    );
}

/// `GbdtParams::default()` with one change.
fn params_with(change: impl FnOnce(&mut GbdtParams)) -> GbdtParams {
    let mut p = GbdtParams::default();
    change(&mut p);
    p
}

#[test]
fn bad_params_are_rejected() {
    let x = DMatrix::from_column_slice(3, 1, &[1.0, 2.0, 3.0]);
    let y = DVector::from_vec(vec![1.0, 2.0, 3.0]);
    let cases: Vec<(GbdtParams, &str)> = vec![
        (params_with(|p| p.n_trees = 0), "n_trees"),
        (params_with(|p| p.eta = 0.0), "eta"),
        (params_with(|p| p.eta = -0.1), "eta"),
        (params_with(|p| p.eta = f64::NAN), "eta"),
        (params_with(|p| p.max_depth = 0), "max_depth"),
        (params_with(|p| p.max_depth = 31), "max_depth"),
        (params_with(|p| p.lambda = -1.0), "lambda"),
        (params_with(|p| p.alpha = -1.0), "alpha"),
        (params_with(|p| p.gamma = f64::INFINITY), "gamma"),
        (
            params_with(|p| p.min_child_weight = -1.0),
            "min_child_weight",
        ),
        (params_with(|p| p.subsample = 0.0), "subsample"),
        (params_with(|p| p.subsample = 1.5), "subsample"),
        (
            params_with(|p| p.colsample_bytree = 0.0),
            "colsample_bytree",
        ),
        (params_with(|p| p.base_score = Some(1e39)), "base_score"),
        (params_with(|p| p.max_bin = 1), "max_bin"),
        (params_with(|p| p.max_bin = 257), "max_bin"),
        (
            params_with(|p| p.early_stopping_rounds = Some(0)),
            "early_stopping_rounds",
        ),
        (
            params_with(|p| p.validation_fraction = 1.0),
            "validation_fraction",
        ),
        (params_with(|p| p.threads = 0), "threads"),
    ];
    for (params, name) in cases {
        let err = params.fit(&x, &y).expect_err(name);
        assert!(
            matches!(err, FitError::BadParam { model: "gbdt", param, .. } if param == name),
            "{name}: {err:?}"
        );
        assert!(err.to_string().contains("expected"), "{err}");
    }
}

#[test]
fn bad_input_is_rejected() {
    let x = DMatrix::from_column_slice(3, 1, &[1.0, 2.0, 3.0]);
    let y = DVector::from_vec(vec![1.0, 2.0, 3.0]);
    let d = GbdtParams::default;
    let short = DVector::from_vec(vec![1.0]);
    let err = d().fit(&x, &short).expect_err("shape");
    assert!(matches!(err, FitError::Shape { model: "gbdt", .. }));
    let nan = DMatrix::from_column_slice(3, 1, &[1.0, f64::NAN, 3.0]);
    assert_eq!(
        d().fit(&nan, &y).expect_err("nan"),
        FitError::NonFinite { model: "gbdt" }
    );
    let huge = DMatrix::from_column_slice(3, 1, &[1.0, 1e300, 3.0]);
    let err = d().fit(&huge, &y).expect_err("f32 overflow");
    assert!(
        matches!(err, FitError::Range { model: "gbdt", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("rescale"), "{err}");
}

#[test]
fn postcard_round_trip_predicts_identically() {
    let (x, y) = data(500, 4, 6);
    let m = GbdtParams {
        n_trees: 20,
        ..GbdtParams::default()
    }
    .fit(&x, &y)
    .expect("fit");
    let bytes = postcard::to_allocvec(&m).expect("serialize");
    // 12 bytes per node and 4 per tree, plus a few header bytes.
    assert!(bytes.len() <= m.tree_bytes() + 64, "{}", bytes.len());
    assert_eq!(m.tree_bytes(), 12 * m.node_count() + 4 * m.n_trees());
    let back: Gbdt = postcard::from_bytes(&bytes).expect("deserialize");
    assert!(back.check(4).is_ok());
    assert!(back.check(5).is_err());
    let a = m.predict(&x);
    let b = back.predict(&x);
    assert!(a
        .iter()
        .zip(b.iter())
        .all(|(p, q)| p.to_bits() == q.to_bits()));
}

#[test]
fn damaged_models_are_refused_on_load() {
    let x = DMatrix::from_column_slice(4, 1, &[1.0, 2.0, 3.0, 4.0]);
    let y = DVector::from_vec(vec![0.0, 0.0, 1.0, 1.0]);
    let m = GbdtParams {
        n_trees: 2,
        ..GbdtParams::default()
    }
    .fit(&x, &y)
    .expect("fit");
    assert_eq!(m.node_count(), 6);
    let wire = |mutate: &dyn Fn(&mut GbdtWire)| {
        let mut w = GbdtWire::from(m.clone());
        mutate(&mut w);
        postcard::to_allocvec(&w).expect("serialize")
    };
    let refused = |bytes: Vec<u8>| postcard::from_bytes::<Gbdt>(&bytes).is_err();
    assert!(!refused(wire(&|_| {})));
    // No trees; a torn node; a feature the model does not have; a right child pointing
    // back or into the next tree; a NaN leaf; a tree start past the end; a NaN base score.
    assert!(refused(wire(&|w| w.roots.clear())));
    assert!(refused(wire(&|w| w.nodes.truncate(70))));
    assert!(refused(wire(&|w| w.n_features = 0)));
    assert!(refused(wire(
        &|w| w.nodes[8..12].copy_from_slice(&0u32.to_le_bytes())
    )));
    assert!(refused(wire(
        &|w| w.nodes[8..12].copy_from_slice(&3u32.to_le_bytes())
    )));
    assert!(refused(wire(
        &|w| w.nodes[16..20].copy_from_slice(&f32::NAN.to_le_bytes())
    )));
    assert!(refused(wire(&|w| w.roots[1] = 9)));
    assert!(refused(wire(&|w| w.base_score = f32::NAN)));
}

/// The partition's one-pass side sums equal the sums of each side's rows in ascending order
/// (`row_stats`), bit for bit, and the sides keep their rows ascending: the exact trees depend
/// on that order (gradients of mixed signs and magnitudes, so the order shows in the bits).
/// Without sums (hist) it moves the rows the same way and returns zero gradient sums.
#[test]
fn partition_sums_each_side_in_row_order() {
    use super::grow::{partition_rows, row_stats};
    use super::state::Stats;
    let mut rng = Rng::new(5);
    let n = 1000;
    let grad: Vec<f32> = (0..n)
        .map(|_| ((rng.next_f64() - 0.5) * 10f64.powi(rng.below(16) as i32 - 8)) as f32)
        .collect();
    let goes: Vec<bool> = (0..n).map(|_| rng.below(3) == 0).collect();
    let mut rows: Vec<u32> = (0..n as u32).filter(|r| r % 7 != 3).collect();
    let (left, right): (Vec<u32>, Vec<u32>) = rows.iter().partition(|&&r| goes[r as usize]);
    let mut scratch = Vec::new();
    let mut unsummed = rows.clone();
    let (nu, lu, ru) =
        partition_rows::<false>(&mut unsummed, &mut scratch, &[], |r| goes[r as usize]);
    let counts = |n: usize| Stats {
        g: 0.0,
        h: n as f64,
    };
    assert_eq!(
        (nu, lu, ru),
        (left.len(), counts(left.len()), counts(right.len()))
    );
    let (nl, l, r) = partition_rows::<true>(&mut rows, &mut scratch, &grad, |r| goes[r as usize]);
    assert_eq!(unsummed, rows);
    assert_eq!(
        (nl, &rows[..nl], &rows[nl..]),
        (left.len(), &left[..], &right[..])
    );
    let (want_l, want_r) = (row_stats(&left, &grad), row_stats(&right, &grad));
    assert_eq!((l.g.to_bits(), l.h), (want_l.g.to_bits(), want_l.h));
    assert_eq!((r.g.to_bits(), r.h), (want_r.g.to_bits(), want_r.h));
}
