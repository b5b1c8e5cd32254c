//! Calibration of the prediction intervals on real klines, month by month: the volatility scale
//! and ACI of `ensemble::interval`, against the static baseline (the same ACI on raw, unscaled
//! residuals) and against a plain EWMA scale (√EWMA₆₀(r²)), with the naive forecast as the point
//! forecast (the ensemble's residuals are within parts in 10⁴ of naive's; `backtest` reports the
//! same figures for the ensemble itself). Prints realised coverage, coverage per third of the
//! klines ranked by the interval's own volatility estimate (the static baseline's thirds are
//! ranked by our estimate, since it has none), and the mean Winkler interval score.
//! Run: `cargo bench --bench intervals -- FILE...` (default: every 1m file in ../shared/data).
//! It also times the aggregation and interval work per kline for a pool of 11 experts (the
//! naive, 5 trained and 5 window families): ML-Poly weights, combination and record update, two
//! ACI states and the volatility model (goal ≤ 50 µs per kline).
//! With `--variants [--centre DIR]` it prints instead the gains of the rejected variants and of
//! the non-causal ceilings over the static baseline (`interval_variants.rs`).

mod interval_variants;

use std::path::{Path, PathBuf};

use klinecast::ensemble::aggregate::{self, PolyRecord};
use klinecast::ensemble::interval::{
    interval_score, Aci, Bar, Volatility, DEFAULT_COVERAGE, DEFAULT_GAMMA, DEFAULT_SCORE_WINDOW,
};
use klinecast::kline::Series;
use klinecast::store;

/// One scale's results over a month.
#[derive(Default)]
struct Tally {
    /// (σ, covered, interval score) per forecast.
    rows: Vec<(f64, bool, f64)>,
}

impl Tally {
    fn coverage(rows: &[(f64, bool, f64)]) -> f64 {
        100.0 * rows.iter().filter(|r| r.1).count() as f64 / rows.len().max(1) as f64
    }

    fn summary(&self) -> (f64, [f64; 3], f64) {
        let mut sorted: Vec<(f64, bool, f64)> = self.rows.clone();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let k = sorted.len() / 3;
        let thirds = [
            Tally::coverage(&sorted[..k]),
            Tally::coverage(&sorted[k..2 * k]),
            Tally::coverage(&sorted[2 * k..]),
        ];
        let score = self.rows.iter().map(|r| r.2).sum::<f64>() / self.rows.len().max(1) as f64;
        (Tally::coverage(&self.rows), thirds, score)
    }
}

/// ACI over one scale: records a forecast with scale `sigma` and outcome `y` (forecast 0);
/// `rank` is the volatility estimate the thirds are ranked by.
fn step(aci: &mut Aci, tally: &mut Tally, sigma: f64, rank: f64, y: f64, keep: bool) {
    let q = aci.multiplier();
    let half = sigma * q;
    let covered = aci.record(q, y.abs() / sigma);
    if keep && half.is_finite() {
        let alpha = 1.0 - DEFAULT_COVERAGE;
        tally
            .rows
            .push((rank, covered, interval_score(-half, half, y, alpha)));
    }
}

/// Row `t` of a month as the volatility model reads it.
fn bar(s: &Series, t: usize, log_return: f64) -> Bar {
    Bar {
        open_time: s.open_time[t],
        high: s.high[t],
        low: s.low[t],
        log_return,
        trades: s.trades[t],
    }
}

fn evaluate(path: &Path) -> Option<String> {
    let s = store::load_series(path).ok()?;
    let interval_ms = s.open_time.windows(2).map(|w| w[1] - w[0]).min()?;
    let mut vol = Volatility::new(interval_ms);
    let aci = || Aci::new(DEFAULT_COVERAGE, DEFAULT_GAMMA, DEFAULT_SCORE_WINDOW);
    let (mut a_vol, mut a_flat, mut a_ewma) = (aci(), aci(), aci());
    let (mut t_vol, mut t_flat, mut t_ewma) =
        (Tally::default(), Tally::default(), Tally::default());
    let mut ewma_r2: f64 = 0.0;
    let d = 0.5f64.powf(1.0 / 60.0);
    for t in 0..s.close.len() {
        let r = if t == 0 {
            0.0
        } else {
            (s.close[t] / s.close[t - 1]).ln()
        };
        // The forecast for kline t was made after kline t − 1, with the scale for kline t.
        if let (true, Some(sigma)) = (t > 1, vol.sigma(s.open_time[t])) {
            let keep = t > 60;
            let ewma = ewma_r2.max(1e-18).sqrt();
            step(&mut a_vol, &mut t_vol, sigma, sigma, r, keep);
            step(&mut a_flat, &mut t_flat, 1.0, sigma, r, keep);
            step(&mut a_ewma, &mut t_ewma, ewma, ewma, r, keep);
            vol.learn(s.open_time[t], r);
        }
        ewma_r2 = if t <= 1 {
            r * r
        } else {
            d * ewma_r2 + (1.0 - d) * r * r
        };
        vol.observe(&bar(&s, t, r));
    }
    let (cov, thirds, score) = t_vol.summary();
    let (fcov, fthirds, fscore) = t_flat.summary();
    let (_, ethirds, escore) = t_ewma.summary();
    let gain = |x: f64| 100.0 * (1.0 - x / fscore);
    Some(format!(
        "| {} | {} | {cov:.2} | {:.1} / {:.1} / {:.1} | {:+.1} % | {fcov:.2} | {:.1} / {:.1} / {:.1} | {:.1} / {:.1} / {:.1} | {:+.1} % |",
        path.file_name()?.to_string_lossy(),
        t_vol.rows.len(),
        thirds[0],
        thirds[1],
        thirds[2],
        gain(score),
        fthirds[0],
        fthirds[1],
        fthirds[2],
        ethirds[0],
        ethirds[1],
        ethirds[2],
        gain(escore),
    ))
}

/// Per-kline cost of the aggregation and intervals for 11 experts, in µs (median of 5 runs).
fn aggregation_cost() -> f64 {
    const K: usize = 11;
    const N: usize = 20_000;
    let mut runs = Vec::new();
    for _ in 0..5 {
        let mut records = vec![PolyRecord::default(); K];
        let mut vol = Volatility::new(60_000);
        let mut aci = Aci::new(DEFAULT_COVERAGE, DEFAULT_GAMMA, DEFAULT_SCORE_WINDOW);
        let mut flat = Aci::new(DEFAULT_COVERAGE, DEFAULT_GAMMA, DEFAULT_SCORE_WINDOW);
        let awake = [true; K];
        let mut x = 0.37f64;
        let started = std::time::Instant::now();
        for t in 0..N {
            // A cheap deterministic pseudo-random stream (no allocation in the loop body).
            let mut next = || {
                x = (x * 3.9 * (1.0 - x)).clamp(1e-9, 1.0 - 1e-9);
                (x - 0.5) * 2e-3
            };
            let open_time = t as i64 * 60_000;
            let sigma = vol.sigma(open_time).unwrap_or(1e-3);
            let forecasts: [(usize, f64); K] = std::array::from_fn(|k| (k, next() * 0.1));
            let w = aggregate::weights(&records, &awake, 0, 2.5); // the default z as the evidence margin
            let p = aggregate::combine(&w, &forecasts);
            let (q, qf) = (aci.multiplier(), flat.multiplier());
            let y = next();
            let scaled: [(usize, f64); K] = std::array::from_fn(|k| (k, forecasts[k].1 / sigma));
            aggregate::record(&mut records, &scaled, p / sigma, y / sigma, 2.5);
            aci.record(q, (y - p).abs() / sigma);
            flat.record(qf, (y - p).abs());
            vol.learn(open_time, y - p);
            vol.observe(&Bar {
                open_time,
                high: 100.0 * (1.0 + y.abs()),
                low: 100.0,
                log_return: y,
                trades: 100.0,
            });
        }
        runs.push(started.elapsed().as_secs_f64() * 1e6 / N as f64);
    }
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let variants = args.iter().any(|a| a == "--variants");
    let centre_dir = args
        .iter()
        .position(|a| a == "--centre")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    let mut files: Vec<PathBuf> = args
        .iter()
        .filter(|a| !a.starts_with("--") && centre_dir.as_deref() != Some(Path::new(a)))
        .map(PathBuf::from)
        .collect();
    if files.is_empty() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            files = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().contains("-1m-"))
                .collect();
            files.sort();
        }
    }
    if variants {
        println!("| month | {} |", interval_variants::NAMES.join(" | "));
        println!("|---|{}", "---|".repeat(interval_variants::NAMES.len()));
        for f in files {
            let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
            let centre = match (&centre_dir, &name) {
                (Some(dir), Some(name)) => {
                    let csv = dir.join(name);
                    match interval_variants::centres(&csv) {
                        Some(c) => Some(c),
                        None => {
                            eprintln!("{}: no forecasts, skipped", csv.display());
                            continue;
                        }
                    }
                }
                _ => None,
            };
            match (interval_variants::evaluate(&f, centre.as_ref()), name) {
                (Some(gains), Some(name)) => {
                    let cells: Vec<String> = gains.iter().map(|g| format!("{g:+.1}")).collect();
                    println!("| {name} | {} |", cells.join(" | "));
                }
                _ => eprintln!("{}: cannot evaluate", f.display()),
            }
        }
        return;
    }
    println!(
        "| month | n | coverage % | by σ third, low / mid / high | interval score vs static | \
         static coverage % | static by third | EWMA scale by third | EWMA vs static |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for f in files {
        match evaluate(&f) {
            Some(line) => println!("{line}"),
            None => eprintln!("{}: cannot evaluate", f.display()),
        }
    }
    println!(
        "\naggregation + intervals per kline, 11 experts: {:.2} µs (goal ≤ 50 µs)",
        aggregation_cost()
    );
}
