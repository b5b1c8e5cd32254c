//! Rust half of the side-by-side benchmark against scikit-learn (`scripts/bench_vs_sklearn.py`
//! drives it): reads `train.csv` and `test.csv` (header, then feature columns and the target in
//! the last column) from the directory given as the first argument, fits each of the five
//! models with its defaults, predicts the test rows, and prints one JSON object with fit and
//! predict seconds and test RMSE per model. A model that fails or panics (for example a stub)
//! is reported with an "error" field and the others still run. Does not build features: the
//! Python script does, so both sides see the same numbers.
//!
//! Usage: `cargo bench --bench parity -- DIR [--svr-rows N] [--threads T]` (SVR is fitted on
//! the last N training rows, default 3000, as `klinecast train` does; the forest fits and
//! predicts on T threads, default 2, its default: `--threads 1` compares it per thread with
//! scikit-learn's single-threaded forest).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use klinecast::models::cart::CartParams;
use klinecast::models::forest::ForestParams;
use klinecast::models::knn::KnnParams;
use klinecast::models::linear::LinearParams;
use klinecast::models::svr::SvrParams;
use klinecast::models::{AnyModel, FitError, Regressor};
use nalgebra::{DMatrix, DVector};
use serde_json::{json, Map, Value};

/// The script that writes the CSV files this bench reads.
const SCRIPT: &str = "scripts/bench_vs_sklearn.py";

#[path = "xy_csv.rs"]
mod xy_csv;
use xy_csv::read_csv;

fn rmse(a: &DVector<f64>, b: &DVector<f64>) -> f64 {
    ((a - b).norm_squared() / a.len().max(1) as f64).sqrt()
}

type Fit = dyn Fn(&DMatrix<f64>, &DVector<f64>) -> Result<AnyModel, FitError>;

fn run_model(
    fit: &Fit,
    x: &DMatrix<f64>,
    y: &DVector<f64>,
    xt: &DMatrix<f64>,
    yt: &DVector<f64>,
    threads: usize,
) -> Value {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let t0 = Instant::now();
        let model = fit(x, y);
        let fit_s = t0.elapsed().as_secs_f64();
        let model = match model {
            Ok(m) => m,
            Err(e) => return json!({ "error": e.to_string() }),
        };
        let t1 = Instant::now();
        let pred = match &model {
            AnyModel::Forest(f) => f.predict_on(xt, threads),
            other => other.predict(xt),
        };
        let predict_s = t1.elapsed().as_secs_f64();
        let mut v = json!({
            "fit_s": fit_s,
            "predict_s": predict_s,
            "rmse": rmse(&pred, yt),
            "train_rows": x.nrows(),
        });
        if let AnyModel::Svr(s) = &model {
            v["n_support"] = json!(s.n_support());
        }
        v
    }));
    outcome.unwrap_or_else(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panicked".to_string());
        json!({ "error": format!("panicked: {msg}") })
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let Some(dir) = args.first() else {
        eprintln!("usage: cargo bench --bench parity -- DIR [--svr-rows N] [--threads T]");
        return ExitCode::from(2);
    };
    let flag = |name: &str, default: usize| -> Result<usize, String> {
        match args.iter().position(|a| a == name) {
            None => Ok(default),
            Some(pos) => match args.get(pos + 1).map(|v| v.parse::<usize>()) {
                Some(Ok(n)) if n > 0 => Ok(n),
                _ => Err(format!("{name} needs a positive integer")),
            },
        }
    };
    let (svr_rows, threads) = match (flag("--svr-rows", 3000), flag("--threads", 2)) {
        (Ok(s), Ok(t)) => (s, t),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let dir = Path::new(dir);
    let loaded = read_csv(&dir.join("train.csv"), SCRIPT)
        .and_then(|tr| Ok((tr, read_csv(&dir.join("test.csv"), SCRIPT)?)));
    let ((x, y), (xt, yt)) = match loaded {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    // Silence the default panic message of stub models; the JSON carries it.
    std::panic::set_hook(Box::new(|_| {}));

    let n = x.nrows();
    let from = n.saturating_sub(svr_rows);
    let xs = x.rows(from, n - from).into_owned();
    let ys = y.rows(from, n - from).into_owned();

    let mut out = Map::new();
    let models: [(&str, Box<Fit>); 5] = [
        (
            "linear",
            Box::new(|x, y| LinearParams::default().fit(x, y).map(AnyModel::Linear)),
        ),
        (
            "svr",
            Box::new(|x, y| SvrParams::default().fit(x, y).map(AnyModel::Svr)),
        ),
        (
            "knn",
            Box::new(|x, y| KnnParams::default().fit(x, y).map(AnyModel::Knn)),
        ),
        (
            "cart",
            Box::new(|x, y| CartParams::default().fit(x, y).map(AnyModel::Cart)),
        ),
        (
            "forest",
            Box::new(move |x, y| {
                ForestParams {
                    threads,
                    ..ForestParams::default()
                }
                .fit(x, y)
                .map(AnyModel::Forest)
            }),
        ),
    ];
    for (name, fit) in models.iter() {
        let (tx, ty) = if *name == "svr" { (&xs, &ys) } else { (&x, &y) };
        let v = run_model(fit.as_ref(), tx, ty, &xt, &yt, threads);
        eprintln!("klinecast {name}: {v}");
        out.insert((*name).to_string(), v);
    }
    println!("{}", Value::Object(out));
    ExitCode::SUCCESS
}
