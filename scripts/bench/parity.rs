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
//! scikit-learn's single-threaded forest, and predicts every model's rows on the calling
//! thread). `cargo bench --bench parity -- --serve` answers one request per stdin line,
//! `DIR MODEL THREADS SVR_ROWS [FIT_REPS PREDICT_REPS]`, with one run of that model as a JSON
//! line (the data of each DIR read once; a phase repeated REPS times and its time reported per
//! call): how `bench_vs_sklearn.py` interleaves our runs with scikit-learn's. A served
//! run marks the end of its fit and of its predict to the driver, which reads this process's
//! CPU clock there (`fit_cpu_s`, `predict_cpu_s`; see `side_by_side::Driver`).

use std::collections::HashMap;
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

#[path = "side_by_side.rs"]
mod side_by_side;
use side_by_side::{read_csv, serve, Driver};

fn rmse(a: &DVector<f64>, b: &DVector<f64>) -> f64 {
    ((a - b).norm_squared() / a.len().max(1) as f64).sqrt()
}

type Fit = dyn Fn(&DMatrix<f64>, &DVector<f64>) -> Result<AnyModel, FitError>;

fn run_model(
    fit: &Fit,
    x: &DMatrix<f64>,
    y: &DVector<f64>,
    (xt, yt): (&DMatrix<f64>, &DVector<f64>),
    threads: usize,
    reps: Reps,
    driver: &mut Driver,
) -> Value {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        driver.mark("start");
        let clock = Instant::now();
        let mut model = fit(x, y);
        for _ in 1..reps.fit {
            model = fit(x, y);
        }
        let fit_s = clock.elapsed().as_secs_f64() / reps.fit as f64;
        driver.mark("fit");
        let model = match model {
            Ok(m) => m,
            Err(e) => return json!({ "error": e.to_string() }),
        };
        let clock = Instant::now();
        let mut pred = predict(&model, xt, threads);
        for _ in 1..reps.predict {
            pred = predict(&model, xt, threads);
        }
        let predict_s = clock.elapsed().as_secs_f64() / reps.predict as f64;
        driver.mark("predict");
        let mut v = json!({
            "fit_s": fit_s,
            "predict_s": predict_s,
            "fit_reps": reps.fit,
            "predict_reps": reps.predict,
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

/// Calls per timed phase of one run: a phase much shorter than a scheduler tick is timed over
/// many calls (the time reported is per call), so that a run is not one sample of noise.
#[derive(Clone, Copy)]
struct Reps {
    fit: usize,
    predict: usize,
}

/// The test-row predictions of `model`.
fn predict(model: &AnyModel, xt: &DMatrix<f64>, threads: usize) -> DVector<f64> {
    match model {
        AnyModel::Forest(f) => f.predict_on(xt, threads),
        // One thread: every row on the calling thread (the models' batch predicts may
        // split rows over two).
        AnyModel::Svr(_) | AnyModel::Knn(_) if threads == 1 => {
            let mut row = vec![0.0; xt.ncols()];
            DVector::from_fn(xt.nrows(), |i, _| {
                row.iter_mut()
                    .zip(xt.row(i).iter())
                    .for_each(|(r, v)| *r = *v);
                model.predict_row(&row)
            })
        }
        other => other.predict(xt),
    }
}

/// The fit of model `name` with its defaults (the forest on `threads`), or `None`.
fn fitter(name: &str, threads: usize) -> Option<Box<Fit>> {
    Some(match name {
        "linear" => Box::new(|x, y| LinearParams::default().fit(x, y).map(AnyModel::Linear)),
        "svr" => Box::new(|x, y| SvrParams::default().fit(x, y).map(AnyModel::Svr)),
        "knn" => Box::new(|x, y| KnnParams::default().fit(x, y).map(AnyModel::Knn)),
        "cart" => Box::new(|x, y| CartParams::default().fit(x, y).map(AnyModel::Cart)),
        "forest" => Box::new(move |x, y| {
            ForestParams {
                threads,
                ..ForestParams::default()
            }
            .fit(x, y)
            .map(AnyModel::Forest)
        }),
        _ => return None,
    })
}

const MODELS: [&str; 5] = ["linear", "svr", "knn", "cart", "forest"];

type Xy = (DMatrix<f64>, DVector<f64>);

/// Train and test rows of `dir`.
fn load(dir: &Path) -> Result<(Xy, Xy), String> {
    Ok((
        read_csv(&dir.join("train.csv"), SCRIPT)?,
        read_csv(&dir.join("test.csv"), SCRIPT)?,
    ))
}

/// One run of `name` on the data: SVR on the last `svr_rows` training rows.
fn run_one(
    name: &str,
    data: &(Xy, Xy),
    threads: usize,
    svr_rows: usize,
    reps: Reps,
    driver: &mut Driver,
) -> Value {
    let Some(fit) = fitter(name, threads) else {
        return json!({ "error": format!("unknown model {name}; one of {MODELS:?}") });
    };
    let ((x, y), (xt, yt)) = data;
    if name == "svr" {
        let n = x.nrows();
        let from = n.saturating_sub(svr_rows);
        let xs = x.rows(from, n - from).into_owned();
        let ys = y.rows(from, n - from).into_owned();
        run_model(fit.as_ref(), &xs, &ys, (xt, yt), threads, reps, driver)
    } else {
        run_model(fit.as_ref(), x, y, (xt, yt), threads, reps, driver)
    }
}

/// `--serve`: `DIR MODEL THREADS SVR_ROWS [FIT_REPS PREDICT_REPS]` per line.
fn serve_requests() {
    let mut cache: HashMap<String, (Xy, Xy)> = HashMap::new();
    serve(|words, driver| {
        let (dir, model, threads, svr_rows, reps) = match words {
            [d, m, t, s] => (d, m, t, s, ["1", "1"]),
            [d, m, t, s, f, p] => (d, m, t, s, [*f, *p]),
            _ => return Err("expected DIR MODEL THREADS SVR_ROWS [FIT_REPS PREDICT_REPS]".into()),
        };
        let number = |v: &str| match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{v} is not a positive integer")),
        };
        let (threads, svr_rows) = (number(threads)?, number(svr_rows)?);
        let reps = Reps {
            fit: number(reps[0])?,
            predict: number(reps[1])?,
        };
        if !cache.contains_key(*dir) {
            cache.insert((*dir).to_string(), load(Path::new(dir))?);
        }
        let data = &cache[*dir];
        Ok(run_one(model, data, threads, svr_rows, reps, driver))
    });
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    // Silence the default panic message of stub models; the JSON carries it.
    std::panic::set_hook(Box::new(|_| {}));
    if args.first().map(String::as_str) == Some("--serve") {
        serve_requests();
        return ExitCode::SUCCESS;
    }
    let Some(dir) = args.first() else {
        eprintln!(
            "usage: cargo bench --bench parity -- DIR [--svr-rows N] [--threads T] | --serve"
        );
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
    let data = match load(Path::new(dir)) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let mut out = Map::new();
    for name in MODELS {
        let once = Reps { fit: 1, predict: 1 };
        let v = run_one(name, &data, threads, svr_rows, once, &mut Driver::none());
        eprintln!("klinecast {name}: {v}");
        out.insert(name.to_string(), v);
    }
    println!("{}", Value::Object(out));
    ExitCode::SUCCESS
}
