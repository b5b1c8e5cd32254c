//! Training on a kline series, for `klinecast train` and `demo`. The models are fitted by [`crate::models::fit`] (the one place their
//! defaults live, shared with `backtest` and the live refits).
//!
//! `train` loads a kline CSV, builds causal features ([`crate::features`]), holds out the most
//! recent fraction of rows in time (never shuffled), fits the scaler and the models on the rest,
//! scores every model and the naive forecast on the holdout (close-price RMSE, MAE, MAPE,
//! directional accuracy) and gives the report (a table or JSON); the command saves
//! `<models-dir>/Trained/<model>.bin` ([`crate::persist`]) only once every fit has succeeded.
//!
//! Split: with rows `t ∈ [warmup, n − h)`, the last `round(rows · holdout)` rows are the holdout;
//! the `h − 1` rows just before it are dropped from training (their targets would read closes
//! inside the holdout), so no training target sees a close the holdout forecasts.
//!
//! The GRU and LSTM forecast holdout row t from the sequence of rows `t−seq_len+1 ..= t`
//! (causal): the holdout's first rows take their context from the feature rows just before
//! the holdout (features only, never a target), so every holdout row is scored on a full
//! sequence as the live stream would forecast it.
//!
//! Memory (3 years of 1m klines, 1.5M rows, must fit in 2 GB): the series is dropped as soon as
//! the two feature matrices are built, the scaler works in place, and the forest draws at most
//! [`crate::models::fit::FOREST_MAX_SAMPLES`] rows per tree. The wall clock is read here only to
//! report fit times.

use std::ops::Range;
use std::time::Instant;

use nalgebra::{DMatrix, DVector};
use serde_json::json;

use crate::corr::CORR_KINDS;
use crate::error::Error;
use crate::features::{Dataset, FeatureSpec, Scaler};
use crate::kline::Series;
use crate::metrics::Accum;
use crate::models::fit::{bound_note, fit_models, predict_rows, FitConfig};
use crate::models::rnn::MAX_SEQ_LEN;
use crate::models::{AnyModel, FitError, ModelKind, Regressor};
use crate::persist::{HoldoutScores, TrainMeta, TrainedModel};
use crate::settings::LearnSettings;

/// Fewest feature rows `train` accepts.
pub(crate) const MIN_ROWS: usize = 100;
/// Fewest training rows left after the holdout.
pub(crate) const MIN_TRAIN_ROWS: usize = 50;

/// What `train` does, apart from where the klines come from and where models go.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    /// Fraction of feature rows held out at the end, in (0, 1).
    pub holdout: f64,
    pub horizon: usize,
    pub svr_rows: usize,
    pub seed: u64,
    pub threads: usize,
    pub kinds: Vec<ModelKind>,
    /// File name of the kline CSV (stored in each model's metadata).
    pub data_file: String,
}

impl TrainOptions {
    /// Options that fit the models as `learn` says (horizon, SVR rows, seed, threads).
    pub fn new(
        learn: &LearnSettings,
        holdout: f64,
        kinds: Vec<ModelKind>,
        data_file: String,
    ) -> TrainOptions {
        TrainOptions {
            holdout,
            horizon: learn.horizon,
            svr_rows: learn.svr_rows,
            seed: learn.seed,
            threads: learn.threads,
            kinds,
            data_file,
        }
    }

    /// The memory bound [`fit_models`] applies to `kind` on `rows` training rows, as a line.
    fn bound_note(&self, kind: ModelKind, rows: usize) -> Option<String> {
        let config = FitConfig::new(self.seed, self.svr_rows, self.threads);
        match kind {
            // The svr line already says how many rows it uses.
            ModelKind::Svr => None,
            _ => bound_note(kind, rows, &config),
        }
    }
}

/// Holdout accuracy of one forecaster (a model, or `naive`).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelScore {
    pub model: &'static str,
    /// 0 for the naive forecast.
    pub fit_seconds: f64,
    pub accum: Accum,
}

/// The result table of one `train` run; `models` ends with the naive row.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainReport {
    /// Klines used (after `--max-rows`).
    pub rows: usize,
    pub train_rows: usize,
    pub holdout_rows: usize,
    pub horizon: usize,
    pub seed: u64,
    pub features: usize,
    pub models: Vec<ModelScore>,
}

/// A finished training run: the report and the models to save.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub report: TrainReport,
    pub models: Vec<TrainedModel>,
}

/// Series indices `t` of the training and holdout rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub train: Range<usize>,
    pub holdout: Range<usize>,
}

/// Splits the feature rows of an `n_klines` series in time (see the module doc), or explains
/// why there are too few.
pub fn split_rows(
    spec: &FeatureSpec,
    n_klines: usize,
    holdout: f64,
    data_file: &str,
) -> Result<Split, Error> {
    let rows = spec.row_range(n_klines, 0..n_klines);
    let needed = spec.warmup() + spec.horizon + MIN_ROWS;
    if rows.len() < MIN_ROWS {
        return Err(Error::Data(format!(
            "{data_file} has {n_klines} klines; training needs at least {needed} \
             ({} of feature warm-up + {} of horizon + {MIN_ROWS} rows); collect more with \
             `klinecast collect`",
            spec.warmup(),
            spec.horizon
        )));
    }
    let n_rows = rows.len();
    let n_holdout = ((n_rows as f64 * holdout).round() as usize).clamp(1, n_rows);
    let holdout_start = rows.end - n_holdout;
    // Training targets read close[t + h]: keep t + h ≤ holdout_start.
    let train_end = (holdout_start + 1)
        .saturating_sub(spec.horizon)
        .max(rows.start);
    let n_train = train_end - rows.start;
    if n_train < MIN_TRAIN_ROWS {
        return Err(Error::Data(format!(
            "{data_file}: {n_rows} feature rows minus a holdout of {n_holdout} (--holdout \
             {holdout}) and {} rows before it leave {n_train} training rows, at least \
             {MIN_TRAIN_ROWS} are needed; use a smaller --holdout or --horizon, or more data",
            spec.horizon - 1
        )));
    }
    Ok(Split {
        train: rows.start..train_end,
        holdout: holdout_start..rows.end,
    })
}

/// Trains `opts.kinds` on `series` with [`fit_models`]; `log` receives progress lines.
pub fn train_series(
    series: Series,
    opts: &TrainOptions,
    log: &mut dyn FnMut(&str),
) -> Result<TrainOutcome, Error> {
    let config = FitConfig::new(opts.seed, opts.svr_rows, opts.threads);
    let mut fit = |kind: ModelKind, x: &DMatrix<f64>, y: &DVector<f64>| {
        fit_models(&[kind], x, y, &config, &mut |_| {}).map(|mut fitted| fitted.remove(0).model)
    };
    train_series_with(series, opts, &mut fit, log)
}

/// The model-fitting step of [`train_series_with`].
pub(crate) type Fitter<'a> =
    dyn FnMut(ModelKind, &DMatrix<f64>, &DVector<f64>) -> Result<AnyModel, FitError> + 'a;

/// [`train_series`] with the fitting step injected (tests use simple fixed models; the bounds
/// benchmark, `scripts/bench/bounds.rs`, fits each model with several memory bounds).
pub fn train_series_with(
    series: Series,
    opts: &TrainOptions,
    fit: &mut Fitter<'_>,
    log: &mut dyn FnMut(&str),
) -> Result<TrainOutcome, Error> {
    let clock = Instant::now();
    let mut log = |msg: String| log(&format!("[{:7.1} s] {msg}", clock.elapsed().as_secs_f64()));
    let spec = FeatureSpec::new(opts.horizon, Vec::new());
    let n_klines = series.len();
    let split = split_rows(&spec, n_klines, opts.holdout, &opts.data_file)?;
    // With correlated symbols, their variants are fitted after the own-only models, on a copy
    // of the series (the own rows are dropped first; see the module doc's memory note).
    let corr_series = (!series.corr.is_empty()).then(|| series.clone());
    let rows = Prepared::new(series, spec, &split, opts);
    log(format!(
        "{n_klines} klines: {} training rows, {} holdout rows, {} features, horizon {}",
        rows.train.x.nrows(),
        rows.hold_x.nrows(),
        rows.spec.n_features(),
        rows.spec.horizon
    ));

    let mut naive = Accum::default();
    for (&last, &actual) in rows.last_close.iter().zip(&rows.actual_close) {
        naive.add(last, last, actual);
    }
    let mut scores = Vec::with_capacity(opts.kinds.len() + 1);
    let mut fitted = Vec::with_capacity(opts.kinds.len());
    for &kind in &opts.kinds {
        let (score, model) = rows.fit_and_score(kind, opts, naive.rmse(), fit, &mut log)?;
        scores.push(score);
        fitted.push(model);
    }
    let report = TrainReport {
        rows: n_klines,
        train_rows: rows.train.x.nrows(),
        holdout_rows: rows.hold_x.nrows(),
        horizon: rows.spec.horizon,
        seed: opts.seed,
        features: rows.spec.n_features(),
        models: Vec::new(),
    };
    drop(rows);
    if let Some(series) = corr_series {
        let symbols = series.corr.iter().map(|c| c.symbol.clone()).collect();
        let corr_spec = FeatureSpec::new(opts.horizon, symbols);
        let rows = Prepared::new(series, corr_spec, &split, opts);
        log(format!(
            "correlated symbols {}: {} features for {}",
            rows.spec.corr_list(),
            rows.spec.n_features(),
            CORR_KINDS.map(|k| k.name()).join(", ")
        ));
        for kind in CORR_KINDS.into_iter().filter(|k| opts.kinds.contains(k)) {
            let (mut score, model) = rows.fit_and_score(kind, opts, naive.rmse(), fit, &mut log)?;
            score.model = corr_name(kind);
            scores.push(score);
            fitted.push(model);
        }
    }
    scores.push(ModelScore {
        model: "naive",
        fit_seconds: 0.0,
        accum: naive,
    });
    Ok(TrainOutcome {
        report: TrainReport {
            models: scores,
            ..report
        },
        models: fitted,
    })
}

/// The report's name of a kind's variant on the correlated symbols' columns.
fn corr_name(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::Linear => "linear+corr",
        ModelKind::Svr => "svr+corr",
        ModelKind::Knn => "knn+corr",
        ModelKind::Cart => "cart+corr",
        ModelKind::Forest => "forest+corr",
        ModelKind::Gbdt => "gbdt+corr",
        ModelKind::Gru => "gru+corr",
        ModelKind::Lstm => "lstm+corr",
    }
}

/// The rows `train` fits and scores on, scaled by the scaler fitted on the training rows; the
/// series they came from is gone (see the module doc's memory note).
struct Prepared {
    spec: FeatureSpec,
    scaler: Scaler,
    /// Training features and targets.
    train: Dataset,
    /// Holdout features (their targets are scored as closes, below).
    hold_x: DMatrix<f64>,
    /// The feature rows just before the holdout, for the recurrent models' sequences (empty
    /// when no recurrent model is trained).
    context: DMatrix<f64>,
    /// Per holdout row: the close it forecasts from, and the close `horizon` klines later.
    last_close: Vec<f64>,
    actual_close: Vec<f64>,
    /// Open times of the first and last training rows.
    first_open: i64,
    last_open: i64,
}

impl Prepared {
    /// Builds the feature rows of `split` from `series`, and drops the series.
    fn new(series: Series, spec: FeatureSpec, split: &Split, opts: &TrainOptions) -> Prepared {
        let n_klines = series.len();
        let mut train = spec.dataset(&series, split.train.clone());
        let hold = spec.dataset(&series, split.holdout.clone());
        // Sequence context for the recurrent models: the feature rows just before the holdout.
        let first_row = spec.row_range(n_klines, 0..n_klines).start;
        let context_rows = if opts.kinds.iter().any(|k| k.is_recurrent()) {
            split
                .holdout
                .start
                .saturating_sub(MAX_SEQ_LEN - 1)
                .max(first_row)..split.holdout.start
        } else {
            split.holdout.start..split.holdout.start
        };
        let mut context = spec.dataset(&series, context_rows).x;
        let last_close: Vec<f64> = hold.t.iter().map(|&t| series.close[t]).collect();
        let actual_close: Vec<f64> = hold
            .t
            .iter()
            .map(|&t| series.close[t + spec.horizon])
            .collect();
        let first_open = series.open_time[split.train.start];
        let last_open = series.open_time[split.train.end - 1];
        drop(series);
        drop(hold.t);
        drop(hold.y);
        let mut hold_x = hold.x;
        let scaler = Scaler::fit(&train.x);
        scaler.transform_in_place(&mut train.x);
        scaler.transform_in_place(&mut hold_x);
        scaler.transform_in_place(&mut context);
        Prepared {
            spec,
            scaler,
            train,
            hold_x,
            context,
            last_close,
            actual_close,
            first_open,
            last_open,
        }
    }

    /// Fits `kind` on the training rows and scores it on the holdout: its score row and the
    /// model to save (with its metadata; `naive_rmse` is the naive forecast's on the holdout).
    fn fit_and_score(
        &self,
        kind: ModelKind,
        opts: &TrainOptions,
        naive_rmse: f64,
        fit: &mut Fitter<'_>,
        log: &mut dyn FnMut(String),
    ) -> Result<(ModelScore, TrainedModel), Error> {
        let rows = self.train.x.nrows();
        match kind {
            ModelKind::Svr => log(format!(
                "fitting svr on the last {} rows…",
                opts.svr_rows.min(rows)
            )),
            _ => log(format!("fitting {} on {rows} rows…", kind.name())),
        }
        if let Some(note) = opts.bound_note(kind, rows) {
            log(note);
        }
        let started = Instant::now();
        let model = fit(kind, &self.train.x, &self.train.y)?;
        let fit_seconds = started.elapsed().as_secs_f64();
        log(format!(
            "{} fitted in {fit_seconds:.2} s; predicting the holdout…",
            kind.name()
        ));
        let predictions = match model.as_rnn() {
            Some(rnn) => predict_with_context(rnn, &self.context, &self.hold_x),
            None => predict_rows(&model, &self.hold_x, opts.threads),
        };
        let mut accum = Accum::default();
        for ((&last, &actual), &p) in self
            .last_close
            .iter()
            .zip(&self.actual_close)
            .zip(&predictions)
        {
            accum.add(last, last * p.exp(), actual);
        }
        let meta = TrainMeta {
            train_first_open_time: self.first_open,
            train_last_open_time: self.last_open,
            train_rows: rows,
            holdout_rows: self.hold_x.nrows(),
            seed: opts.seed,
            fit_seconds,
            holdout: HoldoutScores {
                rmse: accum.rmse(),
                mae: accum.mae(),
                mape: accum.mape(),
                directional: accum.directional(),
                naive_rmse,
            },
            data_file: opts.data_file.clone(),
            klinecast_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let score = ModelScore {
            model: kind.name(),
            fit_seconds,
            accum,
        };
        let trained = TrainedModel {
            kind,
            spec: self.spec.clone(),
            scaler: self.scaler.clone(),
            model,
            meta,
        };
        Ok((score, trained))
    }
}

/// A recurrent model's forecasts of the rows of `x`, each from its sequence of `seq_len` rows,
/// the first ones reaching back into `context` (the rows just before `x`; the last
/// `seq_len − 1` of them are used).
fn predict_with_context(
    rnn: &crate::models::rnn::Rnn,
    context: &DMatrix<f64>,
    x: &DMatrix<f64>,
) -> DVector<f64> {
    let keep = rnn.seq_len.saturating_sub(1).min(context.nrows());
    let d = x.ncols();
    let joined = DMatrix::from_fn(keep + x.nrows(), d, |i, j| {
        if i < keep {
            context[(context.nrows() - keep + i, j)]
        } else {
            x[(i - keep, j)]
        }
    });
    let all = rnn.predict(&joined);
    all.rows(keep, x.nrows()).clone_owned()
}

impl TrainReport {
    fn naive_rmse(&self) -> f64 {
        self.models
            .iter()
            .find(|m| m.model == "naive")
            .map_or(f64::NAN, |m| m.accum.rmse())
    }

    /// The human table printed by `train`.
    pub fn to_table(&self) -> String {
        let naive = self.naive_rmse();
        let mut out = format!(
            "{} klines, {} training rows, {} holdout rows, horizon {}, seed {}\n",
            self.rows, self.train_rows, self.holdout_rows, self.horizon, self.seed
        );
        out.push_str(&format!(
            "{:<8} {:>8} {:>12} {:>12} {:>8} {:>9} {:>10}\n",
            "model", "fit s", "RMSE", "MAE", "MAPE %", "dir. acc.", "RMSE/naive"
        ));
        for m in &self.models {
            let fit = if m.model == "naive" {
                "-".to_string()
            } else {
                format!("{:.2}", m.fit_seconds)
            };
            out.push_str(&format!(
                "{:<8} {:>8} {:>12.6} {:>12.6} {:>8.4} {:>9} {:>10.4}\n",
                m.model,
                fit,
                m.accum.rmse(),
                m.accum.mae(),
                m.accum.mape(),
                // The naive forecast calls no direction: shown as "-", not NaN or 0.
                Some(m.accum.directional())
                    .filter(|d| d.is_finite())
                    .map_or("-".to_string(), |d| format!("{d:.4}")),
                m.accum.rmse() / naive
            ));
        }
        out
    }

    /// The same as one JSON object (non-finite numbers become `null`).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let naive = self.naive_rmse();
        let models: Vec<serde_json::Value> = self
            .models
            .iter()
            .map(|m| {
                json!({
                    "model": m.model,
                    "fit_seconds": m.fit_seconds,
                    "rmse": m.accum.rmse(),
                    "mae": m.accum.mae(),
                    "mape": m.accum.mape(),
                    "directional": m.accum.directional(),
                    "rmse_vs_naive": m.accum.rmse() / naive,
                })
            })
            .collect();
        json!({
            "rows": self.rows,
            "train_rows": self.train_rows,
            "holdout_rows": self.holdout_rows,
            "horizon": self.horizon,
            "seed": self.seed,
            "features": self.features,
            "models": models,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kline::KlineValues;
    use crate::models::linear::Linear;
    use crate::rng::Rng;

    fn synthetic(n: usize, seed: u64) -> Series {
        let mut rng = Rng::new(seed);
        let mut s = Series::with_capacity(n);
        let mut close = 50.0;
        for i in 0..n {
            let open = close;
            close *= (0.004 * (rng.next_f64() - 0.5)).exp();
            let volume = 10.0 + 100.0 * rng.next_f64();
            s.push(&KlineValues {
                open_time: 1_000_000_000_000 + i as i64 * 60_000,
                open,
                high: open.max(close) * 1.0005,
                low: open.min(close) * 0.9995,
                close,
                volume,
                close_time: 1_000_000_000_000 + i as i64 * 60_000 + 59_999,
                quote_volume: volume * close,
                trades: 10.0 + (rng.next_f64() * 20.0).floor(),
                taker_buy_base: volume * rng.next_f64(),
                taker_buy_quote: 0.0,
            });
        }
        s
    }

    fn options(kinds: Vec<ModelKind>) -> TrainOptions {
        TrainOptions {
            holdout: 0.2,
            horizon: 1,
            svr_rows: 3000,
            seed: 42,
            threads: 2,
            kinds,
            data_file: "TESTUSDT_1m.csv".to_string(),
        }
    }

    /// A fitter that returns a fixed linear model: `bias` for every row.
    fn constant_fitter(
        bias: f64,
    ) -> impl FnMut(ModelKind, &DMatrix<f64>, &DVector<f64>) -> Result<AnyModel, FitError> {
        move |_, x, y| {
            assert_eq!(x.nrows(), y.len());
            Ok(AnyModel::Linear(Linear {
                coef: vec![0.0; x.ncols()],
                intercept: bias,
            }))
        }
    }

    #[test]
    fn split_is_in_time_with_a_purge() {
        let spec = FeatureSpec::default();
        let split = split_rows(&spec, 1061, 0.2, "x.csv").expect("split");
        // 1000 rows t = 60..1060; 200 held out.
        assert_eq!(
            split,
            Split {
                train: 60..860,
                holdout: 860..1060
            }
        );
        let spec3 = FeatureSpec {
            horizon: 3,
            ..spec.clone()
        };
        let split = split_rows(&spec3, 1063, 0.2, "x.csv").expect("split");
        assert_eq!(
            split,
            Split {
                train: 60..858,
                holdout: 860..1060
            }
        );
        // Training targets read close[t + 3] ≤ close[860], the holdout's first "last close".
        assert_eq!(split.train.end - 1 + 3, 860);
    }

    #[test]
    fn too_few_rows_is_a_data_error_that_says_how_many() {
        let spec = FeatureSpec::default();
        for n in [0, 1, 60, 160] {
            let err = split_rows(&spec, n, 0.2, "x.csv").expect_err("too few");
            assert!(matches!(err, Error::Data(_)), "{err}");
            let msg = err.to_string();
            assert!(msg.contains("at least 161"), "{msg}");
            assert!(msg.contains(&format!("has {n} klines")), "{msg}");
            assert_eq!(err.exit_code(), 1);
        }
        assert!(split_rows(&spec, 161, 0.2, "x.csv").is_ok());
        let err = split_rows(&spec, 161, 0.6, "x.csv").expect_err("holdout too big");
        assert!(err.to_string().contains("smaller --holdout"), "{err}");
        let mut fit = constant_fitter(0.0);
        let err = train_series_with(synthetic(100, 1), &options(vec![]), &mut fit, &mut |_| {})
            .expect_err("too few rows");
        assert!(err.to_string().contains("at least 161"), "{err}");
    }

    #[test]
    fn report_scores_models_against_the_naive_forecast() {
        let series = synthetic(1061, 3);
        let closes = series.close.clone();
        let mut fit = constant_fitter(0.001);
        let mut lines = Vec::new();
        let outcome = train_series_with(
            series,
            &options(vec![ModelKind::Linear]),
            &mut fit,
            &mut |l| lines.push(l.to_string()),
        )
        .expect("train");
        let report = &outcome.report;
        assert_eq!(
            (report.rows, report.train_rows, report.holdout_rows),
            (1061, 800, 200)
        );
        assert_eq!(report.models.len(), 2);
        assert_eq!(report.models[0].model, "linear");
        assert_eq!(report.models[1].model, "naive");
        // Exact values, recomputed by hand over holdout t = 860..1060.
        let (mut naive, mut model) = (Accum::default(), Accum::default());
        for t in 860..1060 {
            naive.add(closes[t], closes[t], closes[t + 1]);
            model.add(closes[t], closes[t] * 0.001f64.exp(), closes[t + 1]);
        }
        assert_eq!(report.models[1].accum, naive);
        assert_eq!(report.models[0].accum, model);
        assert!(
            lines
                .iter()
                .any(|l| l.contains("fitting linear on 800 rows")),
            "{lines:?}"
        );

        let json = report.to_json();
        assert_eq!(json["rows"], 1061);
        assert_eq!(json["train_rows"], 800);
        assert_eq!(json["holdout_rows"], 200);
        assert_eq!(json["horizon"], 1);
        assert_eq!(json["seed"], 42);
        let models = json["models"].as_array().expect("models array");
        assert_eq!(models.len(), 2);
        for (m, name) in models.iter().zip(["linear", "naive"]) {
            assert_eq!(m["model"], name);
            for key in [
                "fit_seconds",
                "rmse",
                "mae",
                "mape",
                "directional",
                "rmse_vs_naive",
            ] {
                assert!(m.get(key).is_some(), "{key} missing in {m}");
            }
        }
        assert_eq!(models[1]["rmse_vs_naive"], 1.0);
        assert!(
            models[1]["directional"].is_null(),
            "naive calls no direction"
        );
        assert_eq!(models[0]["rmse"].as_f64(), Some(model.rmse()));

        let table = report.to_table();
        let rows: Vec<&str> = table.lines().collect();
        assert_eq!(rows.len(), 4, "{table}");
        assert!(
            rows[1].starts_with("model") && rows[1].contains("RMSE/naive"),
            "{table}"
        );
        assert!(rows[2].starts_with("linear"), "{table}");
        assert!(
            rows[3].starts_with("naive") && rows[3].ends_with("1.0000"),
            "{table}"
        );

        // The trained model carries its metadata and forecasts through predict_price.
        let trained = &outcome.models[0];
        assert_eq!(trained.meta.train_rows, 800);
        assert_eq!(
            trained.meta.train_first_open_time,
            1_000_000_000_000 + 60 * 60_000
        );
        assert_eq!(
            trained.meta.train_last_open_time,
            1_000_000_000_000 + 859 * 60_000
        );
        assert_eq!(trained.meta.holdout.naive_rmse, naive.rmse());
        assert_eq!(trained.scaler.mean.len(), 14);
        let series = synthetic(1061, 3);
        let price = trained.predict_price(&series, 900).expect("forecast");
        assert_eq!(price, series.close[900] * 0.001f64.exp());
        assert_eq!(trained.predict_price(&series, 10), None);
    }

    /// Backs "the holdout's first rows use training rows as sequence context".
    #[test]
    fn recurrent_holdout_rows_read_the_rows_before_them() {
        use crate::models::rnn::RnnParams;
        let mut rng = Rng::new(8);
        let all = DMatrix::from_fn(120, 2, |_, _| rng.next_f64() - 0.5);
        let y = DVector::from_fn(120, |i, _| all[(i, 0)]);
        let rnn = RnnParams {
            hidden: 3,
            seq_len: 5,
            max_epochs: 1,
            threads: 1,
            ..RnnParams::gru()
        }
        .fit(&all, &y)
        .expect("fit");
        let context = all.rows(0, 100).clone_owned();
        let hold = all.rows(100, 20).clone_owned();
        let got = predict_with_context(&rnn, &context, &hold);
        let full = rnn.predict(&all);
        assert_eq!(got.as_slice(), &full.as_slice()[100..]);
        // Row 100 reads rows 96..=100 (4 of them from the context).
        let flat: Vec<f64> = (96..=100)
            .flat_map(|i| [all[(i, 0)], all[(i, 1)]])
            .collect();
        assert_eq!(got[0], rnn.predict_sequence(&flat));
        // Without context the first rows fall back to shorter sequences.
        let alone = predict_with_context(&rnn, &DMatrix::zeros(0, 2), &hold);
        assert_eq!(alone[0], rnn.predict_sequence(&flat[8..]));
        assert_eq!(alone[19], got[19]);
    }

    #[test]
    fn only_naive_and_fit_errors() {
        let mut fit = constant_fitter(0.0);
        let outcome = train_series_with(synthetic(500, 4), &options(vec![]), &mut fit, &mut |_| {})
            .expect("naive only");
        assert_eq!(outcome.report.models.len(), 1);
        assert!(outcome.models.is_empty());
        let mut failing = |_: ModelKind, _: &DMatrix<f64>, _: &DVector<f64>| {
            Err(FitError::NonFinite { model: "linear" })
        };
        let err = train_series_with(
            synthetic(500, 4),
            &options(vec![ModelKind::Linear]),
            &mut failing,
            &mut |_| {},
        )
        .expect_err("fit error");
        assert!(matches!(err, Error::Fit(_)), "{err}");
    }
}
