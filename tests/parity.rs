//! Parity with scikit-learn: fits klinecast's five models on the golden fixtures written by
//! `scripts/sklearn_fixtures.py` (scikit-learn 1.5.2, committed in tests/fixtures/) and compares
//! with scikit-learn's answers. Needs no Python. Tolerances:
//! - linear: coefficients and intercept within 1e-9 relative, |ours − sk| ≤ 1e-9 · max(|sk|, s)
//!   with s = 1e-2 · max_k |sk coef_k| (so a coefficient near 0 is judged against the vector);
//! - KNN and CART: predictions exactly equal (==), the data have no distance or impurity ties;
//! - SVR: every prediction |ours − sk| ≤ 1e-3 · max(|sk|, 0.1) (0.1 = epsilon, the scale below
//!   which the fit itself is loose), the number of support vectors within 2 %, gamma equal to
//!   1e-12 relative, intercept within 1e-3 absolute;
//! - random forest: test RMSE within 5 % of scikit-learn's (different random streams).
//!
//! Fixture floats are decimal strings (Python repr) parsed with `str::parse::<f64>`, which is
//! correctly rounded, so the inputs are bit-identical to the float64 scikit-learn used.

use std::path::PathBuf;

use klinecast::models::cart::CartParams;
use klinecast::models::forest::ForestParams;
use klinecast::models::knn::KnnParams;
use klinecast::models::linear::LinearParams;
use klinecast::models::svr::{Kernel, SvrParams};
use klinecast::models::Regressor;
use nalgebra::{DMatrix, DVector};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", name]
        .iter()
        .collect();
    let text = std::fs::read_to_string(&path).expect("fixture file is readable");
    serde_json::from_str(&text).expect("fixture is valid JSON")
}

fn num(v: &Value) -> f64 {
    v.as_str()
        .expect("fixture floats are strings")
        .parse()
        .expect("fixture float parses")
}

fn vector(v: &Value) -> DVector<f64> {
    let items = v.as_array().expect("fixture vector is an array");
    DVector::from_iterator(items.len(), items.iter().map(num))
}

fn matrix(v: &Value) -> DMatrix<f64> {
    let rows = v.as_array().expect("fixture matrix is an array of rows");
    let d = rows[0].as_array().expect("row is an array").len();
    let flat: Vec<f64> = rows
        .iter()
        .flat_map(|r| r.as_array().expect("row is an array").iter().map(num))
        .collect();
    DMatrix::from_row_slice(rows.len(), d, &flat)
}

struct Data {
    x_train: DMatrix<f64>,
    y_train: DVector<f64>,
    x_test: DMatrix<f64>,
}

fn data(f: &Value) -> Data {
    Data {
        x_train: matrix(&f["x_train"]),
        y_train: vector(&f["y_train"]),
        x_test: matrix(&f["x_test"]),
    }
}

fn rmse(a: &DVector<f64>, b: &DVector<f64>) -> f64 {
    ((a - b).norm_squared() / a.len() as f64).sqrt()
}

fn assert_linear(coef: &[f64], intercept: f64, expected: &Value, what: &str) {
    let sk_coef = vector(&expected["coef"]);
    let sk_intercept = num(&expected["intercept"]);
    assert_eq!(coef.len(), sk_coef.len(), "{what}: number of coefficients");
    let floor = 1e-2 * sk_coef.amax();
    for (k, (a, b)) in coef.iter().zip(sk_coef.iter()).enumerate() {
        assert!(
            (a - b).abs() <= 1e-9 * b.abs().max(floor),
            "{what}: coef[{k}] = {a}, scikit-learn {b}"
        );
    }
    assert!(
        (intercept - sk_intercept).abs() <= 1e-9 * sk_intercept.abs().max(floor),
        "{what}: intercept = {intercept}, scikit-learn {sk_intercept}"
    );
}

#[test]
fn linear_matches_sklearn() {
    let f = load("linear.json");
    let d = data(&f);
    let m = LinearParams::default()
        .fit(&d.x_train, &d.y_train)
        .expect("linear fits");
    assert_linear(&m.coef, m.intercept, &f, "linear");
    let pred = m.predict(&d.x_test);
    let sk = vector(&f["predictions"]);
    for (a, b) in pred.iter().zip(sk.iter()) {
        assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{a} vs {b}");
    }
}

#[test]
fn linear_matches_sklearn_on_real_klines() {
    let f = load("klines.json");
    let d = data(&f);
    let m = LinearParams::default()
        .fit(&d.x_train, &d.y_train)
        .expect("linear fits");
    assert_linear(&m.coef, m.intercept, &f["linear"], "linear on klines");
}

#[test]
fn knn_predictions_equal_sklearn_exactly() {
    let f = load("knn.json");
    let d = data(&f);
    let m = KnnParams::default()
        .fit(&d.x_train, &d.y_train)
        .expect("knn fits");
    let pred = m.predict(&d.x_test);
    let sk = vector(&f["predictions"]);
    for (i, (a, b)) in pred.iter().zip(sk.iter()).enumerate() {
        assert!(a == b, "knn row {i}: {a} vs scikit-learn {b}");
    }
}

fn assert_exact(pred: &DVector<f64>, sk: &DVector<f64>, what: &str) {
    assert_eq!(pred.len(), sk.len());
    for (i, (a, b)) in pred.iter().zip(sk.iter()).enumerate() {
        assert!(a == b, "{what} row {i}: {a} vs scikit-learn {b}");
    }
}

#[test]
fn cart_predictions_equal_sklearn_exactly() {
    let f = load("cart.json");
    let d = data(&f);
    let full = CartParams {
        seed: 0,
        ..CartParams::default()
    }
    .fit(&d.x_train, &d.y_train)
    .expect("cart fits");
    assert_exact(&full.predict(&d.x_test), &vector(&f["predictions"]), "cart");
    let small = CartParams {
        max_depth: Some(4),
        min_samples_leaf: 5,
        seed: 0,
        ..CartParams::default()
    }
    .fit(&d.x_train, &d.y_train)
    .expect("cart fits");
    assert_exact(
        &small.predict(&d.x_test),
        &vector(&f["predictions_depth4"]),
        "cart depth 4",
    );
}

#[test]
fn forest_rmse_is_within_five_percent_of_sklearn() {
    let f = load("forest.json");
    let d = data(&f);
    let y_test = vector(&f["y_test"]);
    let m = ForestParams {
        seed: 0,
        ..ForestParams::default()
    }
    .fit(&d.x_train, &d.y_train)
    .expect("forest fits");
    let ours = rmse(&m.predict(&d.x_test), &y_test);
    let sk = num(&f["rmse"]);
    assert!(
        (ours - sk).abs() <= 0.05 * sk,
        "forest rmse {ours} vs scikit-learn {sk}"
    );
}

/// Fits SVR with `kernel` on (x, y) and checks it against a fixture's svr block.
fn check_svr(
    kernel: Kernel,
    x: &DMatrix<f64>,
    y: &DVector<f64>,
    x_test: &DMatrix<f64>,
    sk: &Value,
) {
    let what = format!("svr {kernel:?}");
    let m = SvrParams {
        kernel,
        ..SvrParams::default()
    }
    .fit(x, y)
    .expect("svr fits");
    let sk_gamma = num(&sk["gamma"]);
    assert!(
        (m.gamma - sk_gamma).abs() <= 1e-12 * sk_gamma,
        "{what}: gamma {} vs {sk_gamma}",
        m.gamma
    );
    let sk_nsv = sk["n_support"].as_u64().expect("n_support") as f64;
    let nsv = m.n_support() as f64;
    assert!(
        (nsv - sk_nsv).abs() <= 0.02 * sk_nsv,
        "{what}: {nsv} support vectors vs scikit-learn {sk_nsv}"
    );
    let sk_intercept = num(&sk["intercept"]);
    assert!(
        (m.intercept - sk_intercept).abs() <= 1e-3,
        "{what}: intercept {} vs {sk_intercept}",
        m.intercept
    );
    let pred = m.predict(x_test);
    let sk_pred = vector(&sk["predictions"]);
    let mut worst: f64 = 0.0;
    for (i, (a, b)) in pred.iter().zip(sk_pred.iter()).enumerate() {
        let rel = (a - b).abs() / b.abs().max(0.1);
        worst = worst.max(rel);
        assert!(rel <= 1e-3, "{what} row {i}: {a} vs scikit-learn {b}");
    }
    eprintln!(
        "{what}: n_sv {nsv} (sk {sk_nsv}), intercept {} (sk {sk_intercept}), worst rel diff {worst:.3e}",
        m.intercept
    );
}

#[test]
fn svr_rbf_matches_sklearn() {
    let f = load("svr.json");
    let d = data(&f);
    check_svr(Kernel::Rbf, &d.x_train, &d.y_train, &d.x_test, &f["rbf"]);
}

#[test]
fn svr_linear_matches_sklearn() {
    let f = load("svr.json");
    let d = data(&f);
    check_svr(
        Kernel::Linear,
        &d.x_train,
        &d.y_train,
        &d.x_test,
        &f["linear"],
    );
}

#[test]
fn svr_rbf_matches_sklearn_on_real_klines() {
    let f = load("klines.json");
    let d = data(&f);
    let z = vector(&f["svr"]["z_train"]);
    check_svr(Kernel::Rbf, &d.x_train, &z, &d.x_test, &f["svr"]);
}
