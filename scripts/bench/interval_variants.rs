//! `cargo bench --bench intervals -- --variants [--centre DIR]`: interval variants that were
//! measured against today's scale and rejected, and the non-causal ceilings (scripts/README.md,
//! "Intervals on every real month"). Every variant has the nominal 90 % and the ACI of
//! `ensemble::interval` (γ 0.005, one day of scores); the gains are `1 − score / static score`
//! of the mean Winkler score (log-return units), in %. The centre is the naive forecast, scored
//! from kline 61 on; with `--centre DIR` it is the ensemble's forecast that
//! `scripts/bench_vs_garch.py --out DIR` left in `DIR/<month>.csv` (the month cut to its last
//! 43,200 klines as that script's `--max-rows 43200` does), scored on those forecasts only.
//!
//! - `ours`: today's log-RLS scale (`Volatility`) in one symmetric ACI;
//! - `garch`: a GARCH(1,1) recursion with persistence fixed by reasoning, not fitted:
//!   σ²_t = (1 − a − b)·L + a·r²_{t−1} + b·σ²_{t−1}, a = 0.05, b = 0.93, L = EWMA(r²) with a
//!   half-life of one day (variance targeting);
//! - `oriented`: two one-sided ACIs at α/2 on the residual oriented by the last return's sign,
//!   each scaled by ours (both tails' own quantile: reversal and continuation);
//! - `ml-poly`: the four above (static, ours, garch, oriented) aggregated endpoint by endpoint by
//!   ML-Poly on the pinball loss of that endpoint (the Winkler score is `(2/α)` times the sum of
//!   the two endpoints' pinball losses at α/2 and 1 − α/2, so each endpoint has its own
//!   weights), in σ units of ours; the combined interval `[l, u]` then goes through an outer
//!   ACI on the score `max(l − y, y − u) / ((u − l)/2)`, which keeps the coverage guarantee;
//! - `bounce`: ours, shifted by `s·β·clamp(r_{t−1}/σ, ±1)·σ`, β the discounted least-squares
//!   slope (half-life one week) of the scaled residual on that regressor (the bid-ask bounce of
//!   a coarse grid), shrunk by its own evidence, `s = max(0, 1 − 4/t²)` with t its t-statistic
//!   (no shift below |t| = 2);
//! - not causal, ceilings of a scale: `pk±5`, σ from the mean Parkinson variance of the five
//!   klines on each side of the target (the target excluded); `q±30`, σ = the 90 % quantile of
//!   the absolute residual over the thirty klines on each side (the target excluded; the local
//!   distribution of the residual, on the grid too); `ours×pk±5`, the geometric mean of ours
//!   and `pk±5`.

use std::collections::HashMap;
use std::path::Path;

use klinecast::ensemble::interval::{interval_score, Aci, Volatility};
use klinecast::store;

use super::Tally;

const ALPHA: f64 = 0.1;

fn aci(coverage: f64) -> Aci {
    use klinecast::ensemble::interval::{DEFAULT_GAMMA, DEFAULT_SCORE_WINDOW};
    Aci::new(coverage, DEFAULT_GAMMA, DEFAULT_SCORE_WINDOW)
}

/// One symmetric ACI over a scale.
struct Symmetric(Aci);

impl Symmetric {
    fn new() -> Symmetric {
        Symmetric(aci(1.0 - ALPHA))
    }

    fn band(&self, sigma: f64) -> (f64, f64) {
        let h = sigma * self.0.multiplier();
        (-h, h)
    }

    fn learn(&mut self, sigma: f64, e: f64) {
        let q = self.0.multiplier();
        self.0.record(q, e.abs() / sigma);
    }
}

/// Two one-sided ACIs on the residual oriented by the last return's sign `d`.
struct Oriented {
    continuation: Aci,
    reversal: Aci,
}

impl Oriented {
    fn new() -> Oriented {
        Oriented {
            continuation: aci(1.0 - ALPHA / 2.0),
            reversal: aci(1.0 - ALPHA / 2.0),
        }
    }

    fn band(&self, sigma: f64, d: f64) -> (f64, f64) {
        let c = sigma * self.continuation.multiplier();
        let r = sigma * self.reversal.multiplier();
        if d >= 0.0 {
            (-r, c)
        } else {
            (-c, r)
        }
    }

    fn learn(&mut self, sigma: f64, d: f64, e: f64) {
        let o = if d >= 0.0 { e } else { -e };
        let (qc, qr) = (self.continuation.multiplier(), self.reversal.multiplier());
        self.continuation.record(qc, o / sigma);
        self.reversal.record(qr, -o / sigma);
    }
}

/// ML-Poly on a linearised loss (the rule of `ensemble::aggregate`, whose `record` is for the
/// square loss only): `r_k = g·(p − x_k)`, `w_k ∝ max(R_k, 0)/(1 + V_k)`.
struct Poly {
    regret: Vec<f64>,
    variation: Vec<f64>,
    fallback: usize,
}

impl Poly {
    fn new(k: usize, fallback: usize) -> Poly {
        Poly {
            regret: vec![0.0; k],
            variation: vec![0.0; k],
            fallback,
        }
    }

    fn combine(&self, xs: &[f64]) -> f64 {
        let raw: Vec<f64> = self
            .regret
            .iter()
            .zip(&self.variation)
            .map(|(r, v)| r.max(0.0) / (1.0 + v))
            .collect();
        let total: f64 = raw.iter().sum();
        if total > 0.0 && total.is_finite() {
            raw.iter().zip(xs).map(|(w, x)| w / total * x).sum()
        } else {
            xs[self.fallback]
        }
    }

    fn record(&mut self, xs: &[f64], p: f64, g: f64) {
        for (k, x) in xs.iter().enumerate() {
            let r = g * (p - x);
            if r.is_finite() {
                self.regret[k] += r;
                self.variation[k] += r * r;
            }
        }
    }
}

/// Endpoint-wise ML-Poly on the pinball losses, then an outer ACI.
struct Aggregate {
    lower: Poly,
    upper: Poly,
    outer: Aci,
}

impl Aggregate {
    fn new(k: usize, fallback: usize) -> Aggregate {
        Aggregate {
            lower: Poly::new(k, fallback),
            upper: Poly::new(k, fallback),
            outer: aci(1.0 - ALPHA),
        }
    }

    /// The combined band in units of `sigma`, and its half-width.
    fn inner(&self, bands: &[(f64, f64)], sigma: f64) -> (f64, f64, f64) {
        let lo: Vec<f64> = bands.iter().map(|b| b.0 / sigma).collect();
        let up: Vec<f64> = bands.iter().map(|b| b.1 / sigma).collect();
        let (l, u) = (self.lower.combine(&lo), self.upper.combine(&up));
        (l, u, ((u - l) / 2.0).max(1e-9))
    }

    fn band(&self, bands: &[(f64, f64)], sigma: f64) -> (f64, f64) {
        let (l, u, w) = self.inner(bands, sigma);
        let q = self.outer.multiplier();
        ((l - q * w) * sigma, (u + q * w) * sigma)
    }

    fn learn(&mut self, bands: &[(f64, f64)], sigma: f64, e: f64) {
        let (l, u, w) = self.inner(bands, sigma);
        let y = e / sigma;
        let q = self.outer.multiplier();
        self.outer.record(q, (l - y).max(y - u) / w);
        // d/dx of the pinball loss ρ_τ(y − x) is 1{y < x} − τ.
        let step = |x: f64| if y < x { 1.0 } else { 0.0 };
        let lo: Vec<f64> = bands.iter().map(|b| b.0 / sigma).collect();
        let up: Vec<f64> = bands.iter().map(|b| b.1 / sigma).collect();
        self.lower.record(&lo, l, step(l) - ALPHA / 2.0);
        self.upper.record(&up, u, step(u) - (1.0 - ALPHA / 2.0));
    }
}

/// Prefix sums, for the two-sided windows of the oracles.
fn prefix(v: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(v.len() + 1);
    out.push(0.0);
    for x in v {
        out.push(out[out.len() - 1] + x);
    }
    out
}

pub(crate) const NAMES: [&str; 9] = [
    "ours",
    "garch",
    "oriented",
    "ml-poly",
    "bounce",
    "pk±5",
    "q±30",
    "ours×pk±5",
    "best causal",
];

/// The ensemble's forecasts (log returns by target open time) from a `backtest --predictions`
/// file.
pub(crate) fn centres(path: &Path) -> Option<HashMap<i64, f64>> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut out = HashMap::new();
    for line in text.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        let target: i64 = cells.first()?.parse().ok()?;
        let forecast: f64 = cells.get(1)?.parse().ok()?;
        let naive: f64 = cells.get(2)?.parse().ok()?;
        out.insert(target, (forecast / naive).ln());
    }
    Some(out)
}

/// One month's row: the gain over static of every variant, in the order of [`NAMES`], around
/// the naive forecast or around `centre` (see the module doc).
pub(crate) fn evaluate(path: &Path, centre: Option<&HashMap<i64, f64>>) -> Option<Vec<f64>> {
    let mut s = store::load_series(path).ok()?;
    if centre.is_some() && s.close.len() > 43_200 {
        s = s.slice(s.close.len() - 43_200..s.close.len());
    }
    let n = s.close.len();
    let interval_ms = s.open_time.windows(2).map(|w| w[1] - w[0]).min()?;
    let r: Vec<f64> = (0..n)
        .map(|t| {
            let ok = t > 0 && s.open_time[t] - s.open_time[t - 1] == interval_ms;
            let x = if ok {
                (s.close[t] / s.close[t - 1]).ln()
            } else {
                0.0
            };
            if x.is_finite() {
                x
            } else {
                0.0
            }
        })
        .collect();
    let pk: Vec<f64> = (0..n)
        .map(|t| {
            let x = (s.high[t] / s.low[t]).ln();
            x * x / (4.0 * std::f64::consts::LN_2)
        })
        .collect();
    let pk_sum = prefix(&pk);
    let smallest = r
        .iter()
        .map(|x| x.abs())
        .filter(|x| *x > 0.0)
        .fold(f64::INFINITY, f64::min);
    let pk_oracle = |t: usize, h: usize| {
        let (a, b) = (t.saturating_sub(h), (t + h + 1).min(n));
        let mean = (pk_sum[b] - pk_sum[a] - pk[t]) / (b - a - 1).max(1) as f64;
        mean.max(1e-16).sqrt()
    };
    // The residuals around the centre, for the quantile oracle.
    let res: Vec<f64> = (0..n)
        .map(|t| {
            let c = centre.and_then(|c| c.get(&s.open_time[t]).copied());
            r[t] - c.unwrap_or(0.0)
        })
        .collect();
    let q_oracle = |t: usize, h: usize| {
        let (a, b) = (t.saturating_sub(h), (t + h + 1).min(n));
        let mut v: Vec<f64> = (a..b).filter(|&i| i != t).map(|i| res[i].abs()).collect();
        v.sort_by(f64::total_cmp);
        let k = ((0.9 * v.len() as f64) as usize).min(v.len().saturating_sub(1));
        v.get(k).copied().unwrap_or(smallest).max(smallest)
    };

    let mut vol = Volatility::new(interval_ms);
    // static, ours, garch, bounce, pk±5, q±30, ours×pk±5
    let mut sym: Vec<Symmetric> = (0..7).map(|_| Symmetric::new()).collect();
    let mut oriented = Oriented::new();
    let mut agg = Aggregate::new(4, 1);
    // The static baseline, then the eight variants before "best causal".
    let mut tallies: Vec<Tally> = (0..NAMES.len()).map(|_| Tally::default()).collect();
    let (a, b) = (0.05, 0.93);
    let day = 0.5f64.powf(1.0 / 1440.0);
    let week = 0.5f64.powf(1.0 / 10080.0);
    let (mut g_var, mut g_long) = (0.0f64, 0.0f64);
    // The bounce's discounted sums: x·e, x², e², count (e the scaled residual).
    let mut sums = [0.0f64; 4];
    for t in 0..n {
        let y = r[t];
        let forecast = centre.and_then(|c| c.get(&s.open_time[t]).copied());
        // The residual every interval is about (the bands are relative to the centre).
        let e = y - forecast.unwrap_or(0.0);
        let kept = if centre.is_some() {
            forecast.is_some()
        } else {
            t > 60
        };
        if let (true, Some(sigma)) = (t > 1, vol.sigma(s.open_time[t])) {
            let d = r[t - 1].signum();
            let x1 = (r[t - 1] / sigma).clamp(-1.0, 1.0);
            let [sxy, sxx, syy, count] = sums;
            let shift = if sxx > 0.0 && count > 10.0 {
                let beta = sxy / sxx;
                let s2 = ((syy - beta * beta * sxx) / count).max(1e-12);
                let shrink = (1.0 - 4.0 / (beta * beta * sxx / s2)).max(0.0);
                shrink * beta * x1 * sigma
            } else {
                0.0
            };
            let scales = [
                1.0,
                sigma,
                g_var.max(1e-18).sqrt(),
                sigma,
                pk_oracle(t, 5),
                q_oracle(t, 30),
                (sigma * pk_oracle(t, 5)).sqrt(),
            ];
            let b: Vec<(f64, f64)> = scales.iter().zip(&sym).map(|(x, a)| a.band(*x)).collect();
            let members = [b[0], b[1], b[2], oriented.band(sigma, d)];
            let bounce = (shift + b[3].0, shift + b[3].1);
            let bands = [
                b[0],
                b[1],
                b[2],
                members[3],
                agg.band(&members, sigma),
                bounce,
                b[4],
                b[5],
                b[6],
            ];
            if kept {
                for (tally, band) in tallies.iter_mut().zip(&bands) {
                    if band.0.is_finite() && band.1.is_finite() {
                        let covered = band.0 <= e && e <= band.1;
                        let score = interval_score(band.0, band.1, e, ALPHA);
                        tally.rows.push((sigma, covered, score));
                    }
                }
            }
            agg.learn(&members, sigma, e);
            oriented.learn(sigma, d, e);
            for (k, (x, a)) in scales.iter().zip(sym.iter_mut()).enumerate() {
                a.learn(*x, if k == 3 { e - shift } else { e });
            }
            let z = e / sigma;
            for (sum, add) in sums.iter_mut().zip([x1 * z, x1 * x1, z * z, 1.0]) {
                *sum = week * *sum + add;
            }
            vol.learn(s.open_time[t], e);
        }
        if t <= 1 {
            (g_var, g_long) = (y * y, y * y);
        } else {
            g_long = day * g_long + (1.0 - day) * y * y;
            g_var = (1.0 - a - b) * g_long + a * y * y + b * g_var;
        }
        vol.observe(&super::bar(&s, t, y));
    }
    let base = tallies[0].summary().2;
    let mut gains: Vec<f64> = tallies[1..]
        .iter()
        .map(|t| 100.0 * (1.0 - t.summary().2 / base))
        .collect();
    let best_causal = gains[..5].iter().copied().fold(f64::NEG_INFINITY, f64::max);
    gains.push(best_causal);
    Some(gains)
}
