//! The backtest: trains the chosen models on the first part of a kline series (like `train`,
//! but writes no file), then replays the rest kline by kline through the very same window
//! learner the live stream uses ([`crate::ensemble::learner::Learner`]): score first, then
//! refit every window. Gives the summary (`klinecast backtest` prints it, `--json` as one
//! object) and the series its page draws; progress goes to stderr. The maths lives in
//! `ensemble` and `models::fit`; this module only loops, times and collects.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::corr::CORR_KINDS;
use crate::ensemble::learner::{Learner, Step};
use crate::ensemble::report::{ExpertWeight, Refit, ScoreRow, WindowReport};
use crate::ensemble::{Ensemble, Member};
use crate::error::Error;
use crate::features::{FeatureSpec, Scaler};
use crate::kline::Series;
use crate::live::predictions::PredictionRow;
use crate::models::fit::fit_models;
use crate::models::ModelKind;
use crate::run_files::{RunFiles, Window};
use crate::settings::{self, LearnSettings};
use crate::store;

/// What a backtest runs on.
#[derive(Debug, Clone)]
pub(crate) struct BacktestConfig {
    /// The kline file (named in the summary and the page).
    pub(crate) data: PathBuf,
    /// Share of the rows the offline models are trained on; the rest is replayed.
    pub(crate) train_frac: f64,
    /// Share of that first part held out of the offline fit and replayed, unscored, to warm
    /// the ensemble up ([`Learner::warm_up`]), as `stream` warms up on `train`'s holdout.
    pub(crate) holdout: f64,
    pub(crate) learn: LearnSettings,
    /// The offline models to train.
    pub(crate) models: Vec<ModelKind>,
}

/// Fewest training rows (with a full feature row and a target) the backtest accepts.
pub(crate) const MIN_TRAIN_ROWS: usize = 100;

/// The result of a backtest, printed as one JSON object with `--json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct BacktestSummary {
    pub(crate) data: String,
    pub(crate) rows: usize,
    pub(crate) interval_ms: i64,
    /// Klines the offline models were trained on (the first part of the file).
    pub(crate) train_rows: usize,
    /// Klines after those replayed to warm the ensemble up, unscored (`--holdout`); the
    /// replay starts after them.
    #[serde(default)]
    pub(crate) warm_up_rows: usize,
    /// Klines replayed through the learner.
    pub(crate) replay_rows: usize,
    pub(crate) window: usize,
    pub(crate) refit_rows: usize,
    pub(crate) generations: usize,
    /// Klines ahead each forecast targets (`--horizon`).
    pub(crate) horizon: usize,
    /// The correlated symbols (`--corr`), empty without.
    #[serde(default)]
    pub(crate) corr: Vec<String>,
    pub(crate) seed: u64,
    pub(crate) windows: u64,
    pub(crate) failed_refits: u64,
    /// Klines that followed a gap in open times, and forecasts dropped because of gaps.
    pub(crate) gaps: u64,
    pub(crate) dropped_forecasts: u64,
    pub(crate) pool_size: usize,
    /// Size of the final ensemble as postcard bytes (what the live stream saves every window).
    pub(crate) ensemble_bytes: usize,
    /// `ensemble`, `naive`, `trained/<kind>`, `generations/<kind>` over the whole replay.
    pub(crate) scoreboard: Vec<ScoreRow>,
    /// The combiner the ensemble used, and both combiners scored on every forecast.
    pub(crate) combiner: String,
    pub(crate) combiners: Vec<ScoreRow>,
    /// The experts' final ML-Poly records and weights.
    pub(crate) experts: Vec<ExpertWeight>,
    /// The prediction intervals, beside the static baseline.
    pub(crate) intervals: IntervalSummary,
}

/// Interval figures of a backtest (price units; thirds of the klines ranked by the interval's
/// own volatility estimate, low to high).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct IntervalSummary {
    pub(crate) nominal: f64,
    pub(crate) n: u64,
    pub(crate) coverage: Option<f64>,
    pub(crate) coverage_by_third: Vec<f64>,
    pub(crate) mean_width: Option<f64>,
    pub(crate) interval_score: Option<f64>,
    pub(crate) static_coverage: Option<f64>,
    pub(crate) static_coverage_by_third: Vec<f64>,
    pub(crate) static_mean_width: Option<f64>,
    pub(crate) static_interval_score: Option<f64>,
    /// `1 − score / static score`: the interval score's gain over the static baseline.
    pub(crate) gain_vs_static: Option<f64>,
}

/// What a backtest gives: the summary (`--json`) and the series its page draws (every scored
/// forecast with its interval, every window's scores and weights, the closes).
#[derive(Debug, Clone)]
pub(crate) struct Backtest {
    pub(crate) summary: BacktestSummary,
    pub(crate) run: RunFiles,
}

/// Coverage per third of `(sigma, covered)` ranked by sigma.
fn coverage_by_third(rows: &[(f64, bool)]) -> Vec<f64> {
    let mut sorted = rows.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let k = sorted.len() / 3;
    if k == 0 {
        return Vec::new();
    }
    [&sorted[..k], &sorted[k..2 * k], &sorted[2 * k..]]
        .iter()
        .map(|part| part.iter().filter(|r| r.1).count() as f64 / part.len() as f64)
        .collect()
}

/// Runs the backtest on `series` (already cut to `--max-rows`).
pub(crate) fn backtest(
    args: &BacktestConfig,
    series: &Series,
    progress: &mut Progress,
) -> Result<Backtest, Error> {
    let data = args.data.display().to_string();
    let interval_ms = infer_interval(series).ok_or_else(|| {
        Error::Data(format!(
            "{data}: needs at least 2 klines in ascending open_time order"
        ))
    })?;
    let n = series.len();
    let split = (n as f64 * args.train_frac).floor() as usize;
    if n - split < args.learn.window {
        return Err(Error::Data(format!(
            "{data}: {n} rows leave {} to replay with --train-frac {}, fewer than one window of \
             {}; use a lower --train-frac or a longer file",
            n - split,
            args.train_frac,
            args.learn.window
        )));
    }
    let settings = LearnSettings {
        threads: settings::fit_threads(),
        ..args.learn.clone()
    };
    let fit_end = split - (split as f64 * args.holdout).round() as usize;
    let train = series.slice(0..fit_end);
    let ensemble = train_offline(args, &settings, &train, interval_ms, progress)?;
    let mut learner = Learner::new(ensemble, train, interval_ms);
    if fit_end < split {
        progress.note(&format!(
            "warming up on {} klines (--holdout {})",
            split - fit_end,
            args.holdout
        ));
        learner.warm_up(series, fit_end..split);
    }
    let mut replay = Replay::default();
    progress.start(((n - split) / args.learn.window) as u64);
    let refit_config = settings.refit_config();
    for i in split..n {
        let step = learner.on_kline_corr(&series.values(i, interval_ms), &series.corr_values(i));
        replay.on_step(&step, args.learn.horizon as i64 * interval_ms);
        if step.window_done {
            let report = learner.end_window(&refit_config);
            replay.on_window(&report, progress);
        }
    }
    progress.finish(replay.windows);
    let ensemble = learner.into_ensemble();
    let run = RunFiles {
        store_path: args.data.clone(),
        symbol: store::parse_file_name(&args.data)
            .map_or("?".to_string(), |(symbol, _)| symbol.to_string()),
        interval_ms,
        closes: series.closes(),
        forecasts: std::mem::take(&mut replay.forecasts),
        windows: std::mem::take(&mut replay.windows_seen),
        log: Vec::new(),
    };
    let summary = BacktestSummary {
        data,
        rows: n,
        interval_ms,
        train_rows: fit_end,
        warm_up_rows: split - fit_end,
        replay_rows: n - split,
        window: args.learn.window,
        refit_rows: args.learn.refit_rows,
        generations: args.learn.generations,
        horizon: args.learn.horizon,
        corr: series.corr.iter().map(|c| c.symbol.clone()).collect(),
        seed: args.learn.seed,
        windows: replay.windows,
        failed_refits: replay.failed,
        gaps: replay.gaps,
        dropped_forecasts: replay.dropped,
        pool_size: ensemble.members.len(),
        ensemble_bytes: postcard::to_allocvec(&ensemble).map_or(0, |b| b.len()),
        scoreboard: ensemble.scoreboard(),
        combiner: ensemble.config().combiner.name().to_string(),
        combiners: ensemble.combiner_scores(),
        experts: ensemble.expert_weights(),
        intervals: interval_summary(&ensemble, &replay),
    };
    Ok(Backtest { summary, run })
}

/// The starting ensemble: `args.models` trained on the first rows (`train`), standardised by a
/// scaler fitted there, before any generation.
fn train_offline(
    args: &BacktestConfig,
    settings: &LearnSettings,
    train: &Series,
    interval_ms: i64,
    progress: &mut Progress,
) -> Result<Ensemble, Error> {
    let config = settings.ensemble_config();
    let spec = config.spec.clone();
    let split = train.len();
    let dataset = spec.dataset(train, 0..split);
    if dataset.x.nrows() < MIN_TRAIN_ROWS {
        return Err(Error::Data(format!(
            "{}: the first {split} rows give {} training rows, fewer than {MIN_TRAIN_ROWS}; \
             use a higher --train-frac or a longer file",
            args.data.display(),
            dataset.x.nrows()
        )));
    }
    let scaler = Scaler::fit(&dataset.x);
    let x = scaler.transform(&dataset.x);
    let fitted = fit_models(
        &args.models,
        &x,
        &dataset.y,
        &settings.fit_config(),
        &mut |kind| progress.note(&format!("training {} on {} rows", kind.name(), x.nrows())),
    )?;
    let mut trained: Vec<Member> = fitted
        .into_iter()
        .map(|f| Member::trained(spec.clone(), Some(scaler.clone()), f.model))
        .collect();
    // With --corr, the cheap kinds again on the own and the correlated columns (src/README.md,
    // "Correlated pairs"); the own-only members stay, so the ensemble can choose.
    if !train.corr.is_empty() {
        let corr_spec = FeatureSpec::new(
            spec.horizon,
            train.corr.iter().map(|c| c.symbol.clone()).collect(),
        );
        let kinds: Vec<ModelKind> = CORR_KINDS
            .into_iter()
            .filter(|k| args.models.contains(k))
            .collect();
        let dataset = corr_spec.dataset(train, 0..split);
        let scaler = Scaler::fit(&dataset.x);
        let x = scaler.transform(&dataset.x);
        let fitted = fit_models(
            &kinds,
            &x,
            &dataset.y,
            &settings.fit_config(),
            &mut |kind| {
                progress.note(&format!(
                    "training {}+corr on {} rows, {} features",
                    kind.name(),
                    x.nrows(),
                    x.ncols()
                ))
            },
        )?;
        trained.extend(
            fitted
                .into_iter()
                .map(|f| Member::trained(corr_spec.clone(), Some(scaler.clone()), f.model)),
        );
    }
    Ensemble::new(config, trained, interval_ms).map_err(|e| Error::Config(e.to_string()))
}

/// What the replay collects, kline by kline and window by window.
#[derive(Default)]
struct Replay {
    windows: u64,
    failed: u64,
    gaps: u64,
    dropped: u64,
    /// `(σ, covered)` of every bounded interval, and the same with the static baseline's
    /// coverage.
    thirds: Vec<(f64, bool)>,
    static_thirds: Vec<(f64, bool)>,
    /// Every scored forecast, and every window's scores and weights (for the page).
    forecasts: Vec<PredictionRow>,
    windows_seen: Vec<Window>,
}

impl Replay {
    /// Takes one kline's step: its scored forecast (made `ahead_ms` before its target), gap
    /// and dropped forecasts.
    fn on_step(&mut self, step: &Step, ahead_ms: i64) {
        if let Some(sc) = &step.scored {
            let bounded = sc.upper_price.is_finite();
            self.forecasts.push(PredictionRow {
                target_open_time: sc.target_open_time,
                forecast: sc.ensemble_price,
                naive: sc.naive_price,
                ensemble_version: sc.forecast_version,
                made_after_open_time: sc.target_open_time - ahead_ms,
                lower: if bounded { sc.lower_price } else { 0.0 },
                upper: if bounded {
                    sc.upper_price
                } else {
                    f64::INFINITY
                },
            });
            if let Some(sd) = sc.sigma.filter(|_| sc.upper_price.is_finite()) {
                self.thirds.push((sd, sc.covered));
                self.static_thirds.push((sd, sc.static_covered));
            }
        }
        self.gaps += u64::from(step.gap);
        self.dropped += step.dropped as u64;
    }

    /// Takes a finished window's report, noting a failed refit.
    fn on_window(&mut self, report: &WindowReport, progress: &mut Progress) {
        self.windows_seen.push(Window::from_report(report));
        self.windows += 1;
        if let Refit::Failed { error } = &report.refit {
            self.failed += 1;
            progress.note(&format!("window {}: refit failed: {error}", report.window));
        }
        progress.window(self.windows);
    }
}

/// The interval figures of the final ensemble, with the coverage per volatility third of the
/// replay's bounded intervals.
fn interval_summary(ensemble: &Ensemble, replay: &Replay) -> IntervalSummary {
    let iv = &ensemble.intervals;
    let (score, static_score) = (iv.total.mean_score(), iv.static_total.mean_score());
    IntervalSummary {
        nominal: ensemble.config().coverage,
        n: iv.total.n,
        coverage: iv.total.coverage(),
        coverage_by_third: coverage_by_third(&replay.thirds),
        mean_width: iv.total.mean_width(),
        interval_score: score,
        static_coverage: iv.static_total.coverage(),
        static_coverage_by_third: coverage_by_third(&replay.static_thirds),
        static_mean_width: iv.static_total.mean_width(),
        static_interval_score: static_score,
        gain_vs_static: score
            .zip(static_score)
            .filter(|(_, b)| *b > 0.0)
            .map(|(a, b)| 1.0 - a / b),
    }
}

/// The kline interval: the median step between the first open times (robust to a few gaps).
fn infer_interval(series: &Series) -> Option<i64> {
    let times = &series.open_time[..series.len().min(1001)];
    let mut steps: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    if steps.is_empty() {
        return None;
    }
    steps.sort_unstable();
    let median = steps[steps.len() / 2];
    (median > 0).then_some(median)
}

/// Progress on stderr: at most one line every few seconds, with an ETA.
pub(crate) struct Progress {
    started: Instant,
    last: Instant,
    total: u64,
}

impl Progress {
    pub(crate) fn new() -> Progress {
        let now = Instant::now();
        Progress {
            started: now,
            last: now,
            total: 0,
        }
    }

    pub(crate) fn note(&self, msg: &str) {
        eprintln!("backtest: {msg}");
    }

    fn start(&mut self, total: u64) {
        self.total = total;
        self.started = Instant::now();
        self.last = self.started;
        eprintln!("backtest: replaying {total} windows");
    }

    fn window(&mut self, done: u64) {
        let now = Instant::now();
        if now.duration_since(self.last) < Duration::from_secs(5) {
            return;
        }
        self.last = now;
        let elapsed = now.duration_since(self.started);
        let eta = if done > 0 && self.total > done {
            elapsed.mul_f64((self.total - done) as f64 / done as f64)
        } else {
            Duration::ZERO
        };
        eprintln!(
            "backtest: window {done}/{} ({:.0}%), elapsed {}, eta {}",
            self.total,
            100.0 * done as f64 / self.total.max(1) as f64,
            fmt_duration(elapsed),
            fmt_duration(eta)
        );
    }

    fn finish(&self, done: u64) {
        eprintln!(
            "backtest: {done} windows in {}",
            fmt_duration(self.started.elapsed())
        );
    }
}

fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s / 60 % 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::kline::KlineValues;

    fn series(times: &[i64]) -> Series {
        let mut s = Series::default();
        for &t in times {
            s.push(&KlineValues {
                open_time: t,
                open: 1.0,
                high: 1.0,
                low: 1.0,
                close: 1.0,
                volume: 0.0,
                close_time: t + 59_999,
                quote_volume: 0.0,
                trades: 0.0,
                taker_buy_base: 0.0,
                taker_buy_quote: 0.0,
            });
        }
        s
    }

    #[test]
    fn interval_is_the_median_step() {
        assert_eq!(
            infer_interval(&series(&[0, 60_000, 120_000, 600_000, 660_000])),
            Some(60_000)
        );
        assert_eq!(infer_interval(&series(&[0])), None);
        assert_eq!(infer_interval(&series(&[60_000, 0, -60_000])), None);
        let s = series(&[0, 60_000]);
        assert_eq!(s.values(1, 60_000).close_time, 119_999);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(fmt_duration(Duration::from_secs(65)), "1m05s");
        assert_eq!(fmt_duration(Duration::from_secs(3 * 3600 + 120)), "3h02m");
    }

    pub(crate) fn sample_summary() -> BacktestSummary {
        let mut a = crate::metrics::Accum::default();
        a.add(10.0, 10.0, 11.0);
        BacktestSummary {
            data: "x.csv".to_string(),
            rows: 100,
            interval_ms: 60_000,
            train_rows: 40,
            warm_up_rows: 10,
            replay_rows: 50,
            window: 15,
            refit_rows: 300,
            generations: 8,
            horizon: 1,
            corr: Vec::new(),
            seed: 1,
            windows: 3,
            failed_refits: 1,
            gaps: 0,
            dropped_forecasts: 0,
            pool_size: 6,
            ensemble_bytes: 1000,
            scoreboard: vec![ScoreRow::new("naive", &a, Some(1.0))],
            combiner: "ml-poly".to_string(),
            combiners: vec![ScoreRow::new("combiner/lcb", &a, Some(1.0))],
            experts: vec![ExpertWeight {
                label: "naive".to_string(),
                rounds: 1,
                regret: 0.0,
                weight: 1.0,
            }],
            intervals: IntervalSummary {
                nominal: 0.9,
                n: 1,
                coverage: Some(1.0),
                coverage_by_third: Vec::new(),
                mean_width: Some(2.0),
                interval_score: Some(2.0),
                static_coverage: Some(1.0),
                static_coverage_by_third: Vec::new(),
                static_mean_width: Some(2.5),
                static_interval_score: Some(2.5),
                gain_vs_static: Some(0.2),
            },
        }
    }
}
