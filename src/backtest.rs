//! `klinecast backtest`: trains the five models on the first part of a kline CSV (like `train`,
//! but writes no file), then replays the rest kline by kline through the very same window
//! learner the live stream uses ([`crate::ensemble::learner::Learner`]): score first, then
//! refit every window. Prints the final scoreboard (text, or one JSON object with `--json`);
//! progress goes to stderr. No network; the only file written is the `--html` page. The maths
//! lives in `ensemble` and `models::fit`; this module only loads, loops, times and prints. The
//! page draws the series the replay collects ([`Backtest::run`]) with the `report` page's charts.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::chart::html::Page;
use crate::cli::BacktestArgs;
use crate::ensemble::learner::Learner;
use crate::ensemble::report::{scoreboard_table, ExpertWeight, Refit, ScoreRow};
use crate::ensemble::{Ensemble, Member};
use crate::error::Error;
use crate::features::Scaler;
use crate::fsutil;
use crate::kline::Series;
use crate::live::predictions::{self, PredictionRow};
use crate::models::fit::fit_models;
use crate::report::{self, RunFiles, Window};
use crate::settings::{self, LearnSettings};
use crate::{describe, store};

/// Fewest training rows (with a full feature row and a target) the backtest accepts.
pub const MIN_TRAIN_ROWS: usize = 100;

/// The result of a backtest, printed as one JSON object with `--json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacktestSummary {
    pub data: String,
    pub rows: usize,
    pub interval_ms: i64,
    /// Klines the offline models were trained on (the first part of the file).
    pub train_rows: usize,
    /// Klines replayed through the learner.
    pub replay_rows: usize,
    pub window: usize,
    pub refit_rows: usize,
    pub generations: usize,
    /// Klines ahead each forecast targets (`--horizon`).
    pub horizon: usize,
    pub seed: u64,
    pub windows: u64,
    pub failed_refits: u64,
    /// Klines that followed a gap in open times, and forecasts dropped because of gaps.
    pub gaps: u64,
    pub dropped_forecasts: u64,
    pub pool_size: usize,
    /// Size of the final ensemble as postcard bytes (what the live stream saves every window).
    pub ensemble_bytes: usize,
    /// `ensemble`, `naive`, `trained/<kind>`, `generations/<kind>` over the whole replay.
    pub scoreboard: Vec<ScoreRow>,
    /// The combiner the ensemble used, and both combiners scored on every forecast.
    pub combiner: String,
    pub combiners: Vec<ScoreRow>,
    /// The experts' final ML-Poly records and weights.
    pub experts: Vec<ExpertWeight>,
    /// The prediction intervals, beside the static baseline.
    pub intervals: IntervalSummary,
}

/// Interval figures of a backtest (price units; thirds of the klines ranked by the interval's
/// own volatility estimate, low to high).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntervalSummary {
    pub nominal: f64,
    pub n: u64,
    pub coverage: Option<f64>,
    pub coverage_by_third: Vec<f64>,
    pub mean_width: Option<f64>,
    pub interval_score: Option<f64>,
    pub static_coverage: Option<f64>,
    pub static_coverage_by_third: Vec<f64>,
    pub static_mean_width: Option<f64>,
    pub static_interval_score: Option<f64>,
    /// `1 − score / static score`: the interval score's gain over the static baseline.
    pub gain_vs_static: Option<f64>,
}

/// What a backtest gives: the summary (`--json`) and the series its page draws (every scored
/// forecast with its interval, every window's scores and weights, the closes).
#[derive(Debug, Clone)]
pub struct Backtest {
    pub summary: BacktestSummary,
    pub run: RunFiles,
    /// Every scored forecast in the `predictions.csv` layout (`--predictions`).
    pub predictions: Vec<PredictionRow>,
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

pub fn run(args: &BacktestArgs) -> Result<(), Error> {
    let mut series = store::load_series(&args.data)?;
    if let Some(max) = args.max_rows {
        let n = series.len();
        if n > max {
            series = series.slice(n - max..n);
        }
    }
    let mut progress = Progress::new();
    let Backtest {
        summary,
        run,
        predictions: rows,
    } = backtest(args, &series, &mut progress)?;
    if let Some(out) = &args.predictions {
        std::fs::create_dir_all(fsutil::parent_dir(out))
            .and_then(|()| fsutil::write_atomic(out, predictions::to_csv(&rows).as_bytes()))
            .map_err(|e| Error::io(format!("writing {}", out.display()), e))?;
        progress.note(&format!("wrote {}", out.display()));
    }
    if let Some(out) = &args.html {
        describe::write_page(out, &page(&summary, &run, args.hours))?;
        progress.note(&format!("wrote {}", out.display()));
    }
    if args.json {
        let json = serde_json::to_string(&summary)
            .map_err(|e| Error::Data(format!("cannot format the result as JSON: {e}")))?;
        println!("{json}");
    } else {
        print!("{}", summary_text(&summary));
    }
    Ok(())
}

/// Runs the backtest on `series` (already cut to `--max-rows`).
fn backtest(
    args: &BacktestArgs,
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
    let config = settings.ensemble_config();
    let spec = config.spec.clone();
    let train = series.slice(0..split);
    let dataset = spec.dataset(&train, 0..split);
    if dataset.x.nrows() < MIN_TRAIN_ROWS {
        return Err(Error::Data(format!(
            "{data}: the first {split} rows give {} training rows, fewer than {MIN_TRAIN_ROWS}; \
             use a higher --train-frac or a longer file",
            dataset.x.nrows()
        )));
    }
    let scaler = Scaler::fit(&dataset.x);
    let x = scaler.transform(&dataset.x);
    let train_config = settings.fit_config();
    let fitted = fit_models(&args.models, &x, &dataset.y, &train_config, &mut |kind| {
        progress.note(&format!("training {} on {} rows", kind.name(), x.nrows()))
    })?;
    let trained = fitted
        .into_iter()
        .map(|f| Member::trained(spec.clone(), Some(scaler.clone()), f.model))
        .collect();
    let ensemble =
        Ensemble::new(config, trained, interval_ms).map_err(|e| Error::Config(e.to_string()))?;
    let mut learner = Learner::new(ensemble, train, interval_ms);
    let refit_config = settings.refit_config();
    let total_windows = ((n - split) / args.learn.window) as u64;
    let (mut windows, mut failed, mut gaps, mut dropped) = (0u64, 0u64, 0u64, 0u64);
    // (σ, covered) and (σ, covered by the static baseline) of every bounded interval.
    let (mut thirds, mut static_thirds) = (Vec::new(), Vec::new());
    let (mut forecasts, mut window_series, mut rows) = (Vec::new(), Vec::new(), Vec::new());
    let ahead = args.learn.horizon as i64 * interval_ms;
    progress.start(total_windows);
    for i in split..n {
        let step = learner.on_kline(&series.values(i, interval_ms));
        if let Some(sc) = &step.scored {
            let bounded = sc.upper_price.is_finite();
            forecasts.push(report::Forecast {
                target_open_time: sc.target_open_time,
                forecast: sc.ensemble_price,
                naive: sc.naive_price,
                lower: bounded.then_some(sc.lower_price),
                upper: bounded.then_some(sc.upper_price),
            });
            rows.push(PredictionRow {
                target_open_time: sc.target_open_time,
                forecast: sc.ensemble_price,
                naive: sc.naive_price,
                ensemble_version: sc.forecast_version,
                made_after_open_time: sc.target_open_time - ahead,
                lower: sc.lower_price,
                upper: sc.upper_price,
            });
            if let Some(sd) = sc.sigma.filter(|_| sc.upper_price.is_finite()) {
                thirds.push((sd, sc.covered));
                static_thirds.push((sd, sc.static_covered));
            }
        }
        gaps += u64::from(step.gap);
        dropped += step.dropped as u64;
        if step.window_done {
            let report = learner.end_window(&refit_config);
            window_series.push(Window::from_report(&report));
            windows += 1;
            if let Refit::Failed { error } = &report.refit {
                failed += 1;
                progress.note(&format!("window {}: refit failed: {error}", report.window));
            }
            progress.window(windows);
        }
    }
    progress.finish(windows);
    let ensemble = learner.into_ensemble();
    let ensemble_bytes = postcard::to_allocvec(&ensemble).map_or(0, |b| b.len());
    let iv = &ensemble.intervals;
    let (score, static_score) = (iv.total.mean_score(), iv.static_total.mean_score());
    let intervals = IntervalSummary {
        nominal: ensemble.config().coverage,
        n: iv.total.n,
        coverage: iv.total.coverage(),
        coverage_by_third: coverage_by_third(&thirds),
        mean_width: iv.total.mean_width(),
        interval_score: score,
        static_coverage: iv.static_total.coverage(),
        static_coverage_by_third: coverage_by_third(&static_thirds),
        static_mean_width: iv.static_total.mean_width(),
        static_interval_score: static_score,
        gain_vs_static: score
            .zip(static_score)
            .filter(|(_, b)| *b > 0.0)
            .map(|(a, b)| 1.0 - a / b),
    };
    let run = RunFiles {
        store_path: args.data.clone(),
        symbol: store::parse_file_name(&args.data)
            .map_or("?".to_string(), |(symbol, _)| symbol.to_string()),
        interval_ms,
        closes: series
            .open_time
            .iter()
            .copied()
            .zip(series.close.iter().copied())
            .collect(),
        forecasts,
        windows: window_series,
        log: Vec::new(),
    };
    let summary = BacktestSummary {
        data,
        rows: n,
        interval_ms,
        train_rows: split,
        replay_rows: n - split,
        window: args.learn.window,
        refit_rows: args.learn.refit_rows,
        generations: args.learn.generations,
        horizon: args.learn.horizon,
        seed: args.learn.seed,
        windows,
        failed_refits: failed,
        gaps,
        dropped_forecasts: dropped,
        pool_size: ensemble.members.len(),
        ensemble_bytes,
        scoreboard: ensemble.scoreboard(),
        combiner: ensemble.config().combiner.name().to_string(),
        combiners: ensemble.combiner_scores(),
        experts: ensemble.expert_weights(),
        intervals,
    };
    Ok(Backtest {
        summary,
        run,
        predictions: rows,
    })
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

/// The readable result.
fn summary_text(s: &BacktestSummary) -> String {
    let mut out = format!(
        "backtest {}: {} rows ({} ms klines); trained on the first {}, replayed {} in {} \
         windows of {} (refit on {} rows, {} generations, seed {})\n",
        s.data,
        s.rows,
        s.interval_ms,
        s.train_rows,
        s.replay_rows,
        s.windows,
        s.window,
        s.refit_rows,
        s.generations,
        s.seed
    );
    out.push_str(&format!(
        "final pool: {} members, {:.1} MB saved\n",
        s.pool_size,
        s.ensemble_bytes as f64 / 1e6
    ));
    if s.failed_refits > 0 || s.gaps > 0 {
        out.push_str(&format!(
            "{} refits failed; {} gaps, {} forecasts dropped\n",
            s.failed_refits, s.gaps, s.dropped_forecasts
        ));
    }
    out.push_str(&scoreboard_table(&s.scoreboard));
    out.push_str(&format!(
        "\ncombiners (the ensemble uses {}), each scored on every forecast:\n",
        s.combiner
    ));
    out.push_str(&scoreboard_table(&s.combiners));
    out.push_str("\nexperts (ML-Poly): rounds, regret, weight\n");
    for e in &s.experts {
        out.push_str(&format!(
            "  {:<22} {:>7} {:>+12.4e} {:>7.3}\n",
            e.label, e.rounds, e.regret, e.weight
        ));
    }
    let iv = &s.intervals;
    out.push_str(&format!(
        "\nintervals ({:.0} % nominal, {} forecasts): coverage {} (by volatility third {}), \
         mean width {}, interval score {}\nstatic baseline: coverage {} (by third {}), mean \
         width {}, interval score {}; gain {}\n",
        100.0 * iv.nominal,
        iv.n,
        pct(iv.coverage),
        thirds(&iv.coverage_by_third),
        price(iv.mean_width),
        price(iv.interval_score),
        pct(iv.static_coverage),
        thirds(&iv.static_coverage_by_third),
        price(iv.static_mean_width),
        price(iv.static_interval_score),
        pct(iv.gain_vs_static),
    ));
    out
}

/// A share as a percentage with two decimals, `-` when unknown.
fn pct(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{:.2} %", 100.0 * v))
}

/// A price-unit figure with six decimals, `-` when unknown.
fn price(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.6}"))
}

/// Coverage per volatility third, `low / mid / high` in percent.
fn thirds(v: &[f64]) -> String {
    v.iter()
        .map(|c| format!("{:.1}", 100.0 * c))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// The `--html` page: the `report` page's charts over the replay (the last `hours` of
/// forecasts, cumulative RMSE ÷ naive, weights, coverage per window), then the run, the
/// scoreboard, both combiners, the experts and the intervals as tables. Pure.
fn page(s: &BacktestSummary, run: &RunFiles, hours: f64) -> String {
    let mut page = Page::new(
        &format!("{}: backtest", run.symbol),
        &format!(
            "{}: trained on the first {} klines, replayed {} in {} windows of {} (seed {})",
            s.data, s.train_rows, s.replay_rows, s.windows, s.window, s.seed
        ),
    );
    let bar_ms = (s.window as i64 * s.interval_ms) as f64 * 0.8;
    report::run_charts(&mut page, run, hours, bar_ms);
    page.heading("Scoreboard, whole replay");
    report::score_table(&mut page, "scoreboard", &s.scoreboard);
    report::score_table(&mut page, "combiners", &s.combiners);
    let iv = &s.intervals;
    page.table(
        "intervals",
        &[
            &format!("{:.0} % interval", 100.0 * iv.nominal),
            "coverage",
            "by σ third",
            "width",
            "score",
        ],
        &[
            vec![
                format!("ensemble (n {})", iv.n),
                pct(iv.coverage),
                thirds(&iv.coverage_by_third),
                price(iv.mean_width),
                price(iv.interval_score),
            ],
            vec![
                "static baseline".to_string(),
                pct(iv.static_coverage),
                thirds(&iv.static_coverage_by_third),
                price(iv.static_mean_width),
                price(iv.static_interval_score),
            ],
            vec![
                "score gain".to_string(),
                String::new(),
                String::new(),
                String::new(),
                pct(iv.gain_vs_static),
            ],
        ],
    );
    page.table(
        "experts",
        &["expert (ML-Poly)", "rounds", "regret", "weight"],
        &s.experts
            .iter()
            .map(|e| {
                vec![
                    e.label.clone(),
                    e.rounds.to_string(),
                    format!("{:+.4e}", e.regret),
                    format!("{:.3}", e.weight),
                ]
            })
            .collect::<Vec<_>>(),
    );
    let count = |n: u64| n.to_string();
    page.table(
        "run",
        &["run", ""],
        &[
            ("rows", count(s.rows as u64)),
            ("kline interval (ms)", s.interval_ms.to_string()),
            ("horizon (klines)", count(s.horizon as u64)),
            ("refit rows", count(s.refit_rows as u64)),
            ("generations kept", count(s.generations as u64)),
            ("failed refits", count(s.failed_refits)),
            ("gaps", count(s.gaps)),
            ("dropped forecasts", count(s.dropped_forecasts)),
            ("final pool (members)", count(s.pool_size as u64)),
            ("ensemble size (bytes)", count(s.ensemble_bytes as u64)),
            ("combiner", s.combiner.clone()),
        ]
        .map(|(k, v)| vec![k.to_string(), v]),
    );
    page.finish()
}

/// Progress on stderr: at most one line every few seconds, with an ETA.
struct Progress {
    started: Instant,
    last: Instant,
    total: u64,
}

impl Progress {
    fn new() -> Progress {
        let now = Instant::now();
        Progress {
            started: now,
            last: now,
            total: 0,
        }
    }

    fn note(&self, msg: &str) {
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
mod tests {
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

    fn sample_summary() -> BacktestSummary {
        let mut a = crate::metrics::Accum::default();
        a.add(10.0, 10.0, 11.0);
        BacktestSummary {
            data: "x.csv".to_string(),
            rows: 100,
            interval_ms: 60_000,
            train_rows: 50,
            replay_rows: 50,
            window: 15,
            refit_rows: 300,
            generations: 8,
            horizon: 1,
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

    #[test]
    fn summary_text_lists_the_scoreboard() {
        let summary = sample_summary();
        let text = summary_text(&summary);
        assert!(text.starts_with(
            "backtest x.csv: 100 rows (60000 ms klines); trained on the first 50, replayed 50 in \
             3 windows of 15 (refit on 300 rows, 8 generations, seed 1)\nfinal pool: 6 members, \
             0.0 MB saved\n1 refits failed"
        ));
        assert!(text.contains("\nnaive "), "{text}");
        assert!(
            text.contains("combiners (the ensemble uses ml-poly)"),
            "{text}"
        );
        assert!(text.contains("coverage 100.00 %"), "{text}");
        assert!(text.contains("gain 20.00 %"), "{text}");
        let json = serde_json::to_string(&summary).expect("json");
        let back: BacktestSummary = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, summary);
    }

    #[test]
    fn page_escapes_names_and_holds_the_tables() {
        let mut summary = sample_summary();
        summary.data = "a&b<c>.csv".to_string();
        let run = RunFiles {
            symbol: "X<Y".to_string(),
            interval_ms: 60_000,
            ..RunFiles::default()
        };
        let html = page(&summary, &run, 24.0);
        assert!(html.contains("<title>X&lt;Y: backtest</title>"), "{html}");
        assert!(html.contains("a&amp;b&lt;c&gt;.csv: trained on the first 50 klines"));
        assert!(!html.contains("a&b<c>"));
        for id in ["forecast", "ratio", "weights", "coverage"] {
            assert!(html.contains(&format!("id=\"{id}\"")), "chart {id}");
        }
        for id in ["scoreboard", "combiners", "intervals", "experts", "run"] {
            assert!(html.contains(&format!("<table id=\"{id}\">")), "table {id}");
        }
        assert!(html.contains("<td>ensemble (n 1)</td><td>100.00 %</td>"));
        assert!(html.contains("<td>score gain</td><td></td><td></td><td></td><td>20.00 %</td>"));
    }
}
