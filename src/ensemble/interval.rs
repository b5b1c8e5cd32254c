//! Calibrated prediction intervals: Adaptive Conformal Inference (Gibbs and Candès 2021) on
//! volatility-normalised residuals, and the online volatility estimate that normalises them.
//! Pure: no I/O, no clock.
//!
//! # The interval
//! The forecast is a log return `ŷ`; the volatility estimate for the target kline is `σ`
//! ([`Volatility::sigma`]). The score of a past forecast is `s = |y − ŷ| / σ`. The interval is
//!
//! ```text
//! ŷ ± σ · q_t,    q_t = the ⌈(1 − α_t)(n + 1)⌉-th smallest of the last n scores (n ≤ window)
//! α_{t+1} = α_t + γ · (α − err_t)        err_t = 1 when y_t fell outside its interval
//! ```
//!
//! with `q_t = +∞` when `α_t ≤ 0` (or no score is known yet) and `0` when `α_t ≥ 1`. Whatever the
//! data, ACI's long-run miscoverage obeys `|(1/T) Σ err_t − α| ≤ (max(α_1, 1 − α_1) + γ) / (γ T)`
//! (Gibbs and Candès 2021, Prop. 4.1); the unit tests check it. The static baseline of `backtest`
//! is the same rule with `σ ≡ 1` (an empirical quantile of raw residuals under the same online
//! coverage control).
//!
//! # The volatility scale
//! Range-based and log-linear. Per closed kline: the Parkinson variance
//! `P = ln(high/low)² / (4 ln 2)`, which uses the whole bar rather than one close-to-close
//! return, the squared return `r²` and the trade count. With `L = EWMA₂₄₀(P)` the long level and
//! `f(v) = ln((v + 0.05 L) / L)`, the model is
//!
//! ```text
//! ln σ²/L = β · [1, f(P_t), f(EWMA₅(P)), f(EWMA₆₀(P)), f(hour-of-day P), ln((n_t+1)/(EWMA₆₀(n)+1)), f(r_t²)]
//! ```
//!
//! learnt online by recursive least squares on `f(e²)` of the realised residuals (forgetting
//! with a half-life of a week of klines), starting from β = "EWMA₆₀(P)". Fitting in logs shrinks
//! each component by its own evidence: a plain EWMA scale over-reacts (its calm third
//! under-covers and its busy third over-covers), a fitted exponent below 1 does not. Memory is
//! fixed: a few averages, 24 hourly averages and a 7×7 matrix. `scripts/bench/intervals.rs`
//! compares it month by month with the static baseline (README, "Intervals").

use serde::{Deserialize, Serialize};

/// Default nominal coverage of the intervals.
pub const DEFAULT_COVERAGE: f64 = 0.9;
/// ACI step size γ (Gibbs and Candès use 0.005): small enough that α_t moves by at most 0.5 %
/// per miss, large enough to re-calibrate within a few hundred klines.
pub const DEFAULT_GAMMA: f64 = 0.005;
/// Scores kept for the quantile: one day of 1m klines.
pub const DEFAULT_SCORE_WINDOW: usize = 1440;

/// The last `capacity` scores, in arrival order and sorted (for the quantile).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ScoreWindow {
    capacity: usize,
    /// Arrival order (oldest first), as a ring: `ring[start..] ++ ring[..start]`.
    ring: Vec<f64>,
    start: usize,
    sorted: Vec<f64>,
}

impl ScoreWindow {
    pub(crate) fn new(capacity: usize) -> ScoreWindow {
        ScoreWindow {
            capacity: capacity.max(1),
            ring: Vec::new(),
            start: 0,
            sorted: Vec::new(),
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Checks a deserialized window (a damaged or foreign file must not make `push` panic):
    /// at most `capacity` finite scores, the ring and the sorted copy holding the same ones.
    pub(crate) fn check(&self) -> Result<(), String> {
        let ok = self.capacity >= 1
            && self.capacity <= 1_000_000
            && self.ring.len() <= self.capacity
            && self.sorted.len() == self.ring.len()
            && (self.ring.is_empty() || self.start < self.ring.len())
            && (self.ring.len() == self.capacity || self.start == 0)
            && self.ring.iter().all(|v| v.is_finite())
            && self.sorted.windows(2).all(|w| w[0] <= w[1]);
        if !ok {
            return Err("the conformal score window is inconsistent".to_string());
        }
        let mut ring = self.ring.clone();
        ring.sort_by(f64::total_cmp);
        if ring != self.sorted {
            return Err("the conformal score window is inconsistent".to_string());
        }
        Ok(())
    }

    /// Adds a score (non-finite scores are ignored), dropping the oldest beyond the capacity.
    pub(crate) fn push(&mut self, score: f64) {
        if !score.is_finite() {
            return;
        }
        if self.ring.len() < self.capacity {
            self.ring.push(score);
        } else {
            let old = std::mem::replace(&mut self.ring[self.start], score);
            self.start = (self.start + 1) % self.capacity;
            let at = self.sorted.partition_point(|&v| v < old);
            if at < self.sorted.len() {
                self.sorted.remove(at);
            }
        }
        let at = self.sorted.partition_point(|&v| v < score);
        self.sorted.insert(at, score);
    }

    /// The ⌈level·(n + 1)⌉-th smallest score (1-based), `+∞` past the largest or when empty.
    pub(crate) fn quantile(&self, level: f64) -> f64 {
        if level <= 0.0 {
            return 0.0;
        }
        let n = self.sorted.len();
        let rank = (level * (n as f64 + 1.0)).ceil();
        if n == 0 || !rank.is_finite() || rank > n as f64 {
            return f64::INFINITY;
        }
        self.sorted[(rank as usize).max(1) - 1]
    }
}

/// Adaptive Conformal Inference over normalised scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aci {
    /// Target miscoverage α = 1 − coverage.
    pub(crate) alpha: f64,
    pub(crate) gamma: f64,
    /// The current working level α_t.
    pub(crate) alpha_t: f64,
    pub(crate) scores: ScoreWindow,
    /// Forecasts scored, and how many fell outside their interval.
    pub(crate) scored: u64,
    pub(crate) misses: u64,
}

impl Aci {
    /// `coverage` in (0, 1), `gamma` > 0.
    pub fn new(coverage: f64, gamma: f64, window: usize) -> Aci {
        let alpha = 1.0 - coverage;
        Aci {
            alpha,
            gamma,
            alpha_t: alpha,
            scores: ScoreWindow::new(window),
            scored: 0,
            misses: 0,
        }
    }

    /// The half-width multiplier `q_t` for the next forecast (in units of σ).
    pub fn multiplier(&self) -> f64 {
        if self.alpha_t <= 0.0 {
            return f64::INFINITY;
        }
        if self.alpha_t >= 1.0 {
            return 0.0;
        }
        self.scores.quantile(1.0 - self.alpha_t)
    }

    /// Records the outcome of a forecast whose interval was `q` (its multiplier) and whose
    /// normalised score is `score = |y − ŷ| / σ`. Returns whether it was covered.
    ///
    /// While `α_t ≥ 1` the interval is empty, so the outcome is a miss even when the score is 0.
    /// On a price grid a residual of exactly 0 is common (a coin that did not move a tick, under
    /// the naive forecast), and counting it as covered would let α_t climb past 1 for good: the
    /// miscoverage bound rests on every forecast made at `α_t ≥ 1` being a miss.
    pub fn record(&mut self, q: f64, score: f64) -> bool {
        let covered = self.alpha_t < 1.0 && score <= q;
        self.scored += 1;
        if !covered {
            self.misses += 1;
        }
        let err = if covered { 0.0 } else { 1.0 };
        self.alpha_t += self.gamma * (self.alpha - err);
        self.scores.push(score);
        covered
    }

    /// Checks a deserialized state.
    pub(crate) fn check(&self) -> Result<(), String> {
        let ok = self.alpha > 0.0
            && self.alpha < 1.0
            && self.gamma > 0.0
            && self.gamma.is_finite()
            && self.alpha_t.is_finite()
            && self.misses <= self.scored;
        if !ok {
            return Err("the conformal state is out of range".to_string());
        }
        self.scores.check()
    }

    /// Realised miscoverage so far.
    #[cfg(test)]
    pub(crate) fn miscoverage(&self) -> Option<f64> {
        (self.scored > 0).then(|| self.misses as f64 / self.scored as f64)
    }
}

/// Winkler's interval score of one central (1 − α) interval: its width plus (2/α) times the
/// distance by which `y` falls outside it. Lower is better.
pub fn interval_score(lower: f64, upper: f64, y: f64, alpha: f64) -> f64 {
    let outside = if y < lower {
        lower - y
    } else if y > upper {
        y - upper
    } else {
        0.0
    };
    (upper - lower) + 2.0 / alpha * outside
}

/// What the volatility estimate is built from, per closed kline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    pub open_time: i64,
    pub high: f64,
    pub low: f64,
    /// Log return from the previous close (0 for the first bar).
    pub log_return: f64,
    pub trades: f64,
}

/// Number of regressors of the log-volatility model (intercept included).
const FEATURES: usize = 7;
/// Ms per hour, for the hour-of-day profile.
const HOUR_MS: i64 = 3_600_000;
/// Floor added to every variance before its log, as a share of the long average (a zero-range
/// or zero-return minute must not send the log to −∞).
const FLOOR: f64 = 0.05;

/// The online volatility scale (see the module doc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Volatility {
    /// The last bar's Parkinson variance, squared return and trade count.
    last_pk: f64,
    last_r2: f64,
    last_trades: f64,
    /// EWMAs of the Parkinson variance: half-lives 5, 60 and 240 bars.
    pk: [f64; 3],
    /// EWMA of the trade count, half-life 60 bars.
    trades: f64,
    /// EWMA of P per UTC hour of day (over days: a half-life of 7 days of that hour's bars).
    hourly: Vec<f64>,
    /// RLS weights and inverse-covariance matrix (row-major, FEATURES²).
    beta: Vec<f64>,
    p: Vec<f64>,
    bars: u64,
    interval_ms: i64,
}

/// EWMA weight for a half-life of `h` updates.
fn decay(h: f64) -> f64 {
    0.5f64.powf(1.0 / h)
}

impl Volatility {
    pub fn new(interval_ms: i64) -> Volatility {
        let mut p = vec![0.0; FEATURES * FEATURES];
        for i in 0..FEATURES {
            // A weak prior: the weights move within a few hundred residuals.
            p[i * FEATURES + i] = 10.0;
        }
        let mut beta = vec![0.0; FEATURES];
        // Start as "the scale is the hour's EWMA of P": the log of EWMA₆₀(P) with weight 1.
        beta[3] = 1.0;
        Volatility {
            last_pk: 0.0,
            last_r2: 0.0,
            last_trades: 0.0,
            pk: [0.0; 3],
            trades: 0.0,
            hourly: vec![0.0; 24],
            beta,
            p,
            bars: 0,
            interval_ms: interval_ms.max(1),
        }
    }

    fn hour(&self, open_time: i64) -> usize {
        open_time.div_euclid(HOUR_MS).rem_euclid(24) as usize
    }

    /// Feeds one closed kline.
    pub fn observe(&mut self, bar: &Bar) {
        let range = if bar.high > 0.0 && bar.low > 0.0 && bar.high >= bar.low {
            (bar.high / bar.low).ln()
        } else {
            0.0
        };
        let pk = range * range / (4.0 * std::f64::consts::LN_2);
        let r2 = bar.log_return * bar.log_return;
        if !pk.is_finite() || !r2.is_finite() || !bar.trades.is_finite() {
            return;
        }
        let first = self.bars == 0;
        let ew = |old: f64, new: f64, h: f64| {
            if first {
                new
            } else {
                let d = decay(h);
                d * old + (1.0 - d) * new
            }
        };
        self.last_pk = pk;
        self.last_r2 = r2;
        self.last_trades = bar.trades;
        self.pk = [
            ew(self.pk[0], pk, 5.0),
            ew(self.pk[1], pk, 60.0),
            ew(self.pk[2], pk, 240.0),
        ];
        self.trades = ew(self.trades, bar.trades, 60.0);
        let per_hour = (HOUR_MS / self.interval_ms).max(1) as f64;
        let h = self.hour(bar.open_time);
        let old = self.hourly[h];
        self.hourly[h] = if old == 0.0 {
            pk
        } else {
            let d = decay(7.0 * per_hour);
            d * old + (1.0 - d) * pk
        };
        self.bars += 1;
    }

    /// The long average every feature is relative to (so the model is scale-free).
    fn level(&self) -> f64 {
        if self.pk[2] > 0.0 && self.pk[2].is_finite() {
            self.pk[2]
        } else {
            // A market with no range yet (all bars flat): a tiny positive level.
            1e-18
        }
    }

    fn features(&self, target_open_time: i64) -> [f64; FEATURES] {
        let l = self.level();
        let f = |v: f64| ((v + FLOOR * l) / l).ln();
        let hour = self.hourly[self.hour(target_open_time)];
        let hour = if hour > 0.0 { hour } else { self.pk[1] };
        [
            1.0,
            f(self.last_pk),
            f(self.pk[0]),
            f(self.pk[1]),
            f(hour),
            ((self.last_trades + 1.0) / (self.trades + 1.0)).ln(),
            f(self.last_r2),
        ]
    }

    /// The volatility scale for the kline opening at `target_open_time` (proportional to a
    /// log-return standard deviation; the conformal layer calibrates the constant); `None`
    /// before any bar was seen.
    pub fn sigma(&self, target_open_time: i64) -> Option<f64> {
        if self.bars == 0 {
            return None;
        }
        let x = self.features(target_open_time);
        let log_v: f64 = x.iter().zip(&self.beta).map(|(a, b)| a * b).sum();
        let v = self.level() * log_v.clamp(-50.0, 50.0).exp();
        (v > 0.0 && v.is_finite()).then(|| v.sqrt())
    }

    /// Learns from the realised residual `e` (log return minus forecast) of the kline opening at
    /// `target_open_time`, whose scale was computed before that kline arrived. Call before
    /// [`Volatility::observe`] of that kline.
    pub fn learn(&mut self, target_open_time: i64, e: f64) {
        if self.bars == 0 || !e.is_finite() {
            return;
        }
        let l = self.level();
        let x = self.features(target_open_time);
        let y = ((e * e + FLOOR * l) / l).ln();
        // RLS with forgetting λ: a half-life of one week of klines.
        let per_week = (7 * 24 * HOUR_MS / self.interval_ms).max(1) as f64;
        let lambda = decay(per_week);
        let n = FEATURES;
        let px: Vec<f64> = (0..n)
            .map(|i| (0..n).map(|j| self.p[i * n + j] * x[j]).sum())
            .collect();
        let denom = lambda + x.iter().zip(&px).map(|(a, b)| a * b).sum::<f64>();
        if !(denom > 0.0 && denom.is_finite() && y.is_finite()) {
            return;
        }
        let fit: f64 = x.iter().zip(&self.beta).map(|(a, b)| a * b).sum();
        let err = y - fit;
        for (b, p) in self.beta.iter_mut().zip(&px) {
            *b += p / denom * err;
        }
        for i in 0..n {
            for j in 0..n {
                self.p[i * n + j] = (self.p[i * n + j] - px[i] * px[j] / denom) / lambda;
            }
        }
    }

    /// Checks a deserialized model: the vectors have their sizes and the numbers are finite.
    pub(crate) fn check(&self) -> Result<(), String> {
        let ok = self.hourly.len() == 24
            && self.beta.len() == FEATURES
            && self.p.len() == FEATURES * FEATURES
            && self.interval_ms >= 1
            && self
                .beta
                .iter()
                .chain(&self.p)
                .chain(&self.hourly)
                .chain(&self.pk)
                .all(|v| v.is_finite());
        if ok {
            Ok(())
        } else {
            Err("the volatility model is malformed".to_string())
        }
    }

    /// Bars seen so far.
    pub(crate) fn bars(&self) -> u64 {
        self.bars
    }

    /// The current weights of the log-volatility model (for reports and tests).
    #[cfg(test)]
    pub(crate) fn weights(&self) -> &[f64] {
        &self.beta
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn score_window_keeps_the_last_scores_sorted() {
        let mut w = ScoreWindow::new(4);
        assert_eq!(w.quantile(0.5), f64::INFINITY);
        for s in [5.0, 1.0, 4.0, 2.0, 3.0, f64::NAN] {
            w.push(s);
        }
        // 5.0 left (oldest); NaN ignored.
        assert_eq!(w.sorted, vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(w.len(), 4);
        // ⌈0.5·5⌉ = 3rd smallest; ⌈0.8·5⌉ = 4th; ⌈0.9·5⌉ = 5th > n: +∞.
        assert_eq!(w.quantile(0.5), 3.0);
        assert_eq!(w.quantile(0.8), 4.0);
        assert_eq!(w.quantile(0.9), f64::INFINITY);
        assert_eq!(w.quantile(0.0), 0.0);
        for s in [9.0, 9.0] {
            w.push(s);
        }
        assert_eq!(w.sorted, vec![2.0, 3.0, 9.0, 9.0]);
    }

    /// Backs the README claim "the interval's long-run miscoverage obeys the ACI bound
    /// |miscoverage − α| ≤ (max(α₁, 1 − α₁) + γ)/(γT)": on a sequence whose scale jumps by
    /// 10× (a regime change no static rule could follow) and on adversarial outcomes that
    /// alternate between tiny and huge, at every T.
    /// Backs README claim [C11]: The intervals' long-run miscoverage obeys the ACI bound.
    #[test]
    fn aci_obeys_its_miscoverage_bound_at_every_t() {
        for case in 0..2 {
            let mut rng = Rng::new(3 + case);
            let mut aci = Aci::new(0.9, DEFAULT_GAMMA, 500);
            let a1 = aci.alpha_t;
            for t in 1..=30_000u64 {
                let scale = if case == 0 {
                    if (t / 5000) % 2 == 0 {
                        1.0
                    } else {
                        10.0
                    }
                } else if t % 7 == 0 {
                    1e6
                } else {
                    1e-6
                };
                let score = (rng.normal() * scale).abs();
                let q = aci.multiplier();
                aci.record(q, score);
                let mis = aci.misses as f64 / t as f64;
                let bound = (a1.max(1.0 - a1) + aci.gamma) / (aci.gamma * t as f64);
                assert!(
                    (mis - aci.alpha).abs() <= bound + 1e-12,
                    "case {case}, t {t}: {mis} vs {}",
                    aci.alpha
                );
            }
            // The bound at 30,000 is 0.0067: the realised miscoverage is within it of 0.1.
            let mis = aci.miscoverage().unwrap_or(0.0);
            assert!((mis - 0.1).abs() < 0.007, "{mis}");
        }
    }

    /// Regression: at `α_t ≥ 1` the interval is empty, so a zero score (a price that did not
    /// move a tick) is a miss and α_t comes back down; counting it as covered let α_t grow
    /// without bound on a series of zero scores, and the miscoverage bound with it.
    #[test]
    fn aci_at_alpha_one_misses_even_a_zero_score() {
        let mut aci = Aci::new(0.9, DEFAULT_GAMMA, 100);
        aci.alpha_t = 1.0 + DEFAULT_GAMMA * 0.5;
        assert_eq!(aci.multiplier(), 0.0);
        for _ in 0..1000 {
            let before = aci.alpha_t;
            let q = aci.multiplier();
            let covered = aci.record(q, 0.0);
            if before >= 1.0 {
                assert!(!covered, "α_t {before}: the interval is empty");
                assert!(aci.alpha_t < before);
            }
            assert!(aci.alpha_t <= 1.0 + DEFAULT_GAMMA, "α_t {}", aci.alpha_t);
        }
        // Zero scores are always covered once α_t < 1 (q ≥ 0): α_t settled just below 1.
        assert!(aci.alpha_t < 1.0 && aci.alpha_t > 1.0 - 2.0 * DEFAULT_GAMMA);
    }

    /// The ACI bound on a discrete grid: scores that are whole numbers of ticks, a third of them
    /// exactly 0 (as on a coarse-tick coin), stay within the bound at every T.
    #[test]
    fn aci_obeys_its_bound_on_grid_scores() {
        let mut rng = Rng::new(11);
        let mut aci = Aci::new(0.9, DEFAULT_GAMMA, 1440);
        let a1 = aci.alpha_t;
        for t in 1..=20_000u64 {
            let ticks = (rng.normal() * 1.3).round().abs();
            let q = aci.multiplier();
            aci.record(q, ticks);
            let mis = aci.misses as f64 / t as f64;
            let bound = (a1.max(1.0 - a1) + aci.gamma) / (aci.gamma * t as f64);
            assert!((mis - aci.alpha).abs() <= bound + 1e-12, "t {t}: {mis}");
        }
    }

    #[test]
    fn winkler_interval_score() {
        assert_eq!(interval_score(-1.0, 1.0, 0.0, 0.1), 2.0);
        assert_eq!(interval_score(-1.0, 1.0, 1.5, 0.1), 2.0 + 20.0 * 0.5);
        assert_eq!(interval_score(-1.0, 1.0, -3.0, 0.5), 2.0 + 4.0 * 2.0);
    }

    /// The volatility scale follows a regime change within a few hundred bars.
    #[test]
    fn volatility_tracks_a_regime_change() {
        let mut rng = Rng::new(1);
        let mut vol = Volatility::new(60_000);
        assert_eq!(vol.sigma(0), None);
        let mut t = 0i64;
        let feed = |vol: &mut Volatility, t: &mut i64, sd: f64, n: usize, rng: &mut Rng| {
            for _ in 0..n {
                let r = sd * rng.normal();
                // A bar whose range reflects the bar's own volatility.
                let range = sd * (1.5 + 0.3 * rng.normal().abs());
                if vol.sigma(*t).is_some() {
                    vol.learn(*t, r);
                }
                vol.observe(&Bar {
                    open_time: *t,
                    high: 100.0 * (range / 2.0).exp(),
                    low: 100.0 * (-range / 2.0).exp(),
                    log_return: r,
                    trades: 100.0,
                });
                *t += 60_000;
            }
        };
        feed(&mut vol, &mut t, 1e-3, 3000, &mut rng);
        let calm = vol.sigma(t).unwrap_or(0.0);
        feed(&mut vol, &mut t, 4e-3, 300, &mut rng);
        let busy = vol.sigma(t).unwrap_or(0.0);
        // A scale (the conformal layer calibrates the constant): it must move with the true
        // standard deviation, 4× here, within a few hundred bars.
        let ratio = busy / calm;
        assert!((3.0..5.5).contains(&ratio), "{calm} -> {busy}");
        assert!(vol.weights().iter().all(|w| w.is_finite()));
    }
}
