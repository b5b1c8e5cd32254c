//! The description of a kline series (the original project's data notebook): column
//! summaries, gaps, moments and autocorrelations of the returns, per-hour figures. Pure
//! statistics over a [`Series`]; `klinecast describe` prints them and draws them.
//!
//! Returns are log returns of the close, `r = ln(c_t / c_{t−1})`, taken only between klines
//! that follow each other without a gap (a return across a maintenance window would be a
//! different kind of number). Autocorrelations are the usual sample ACF of that sequence.

use crate::kline::Series;
use crate::time;

/// Lags of the autocorrelation charts (the table shows the first 5).
pub(crate) const MAX_LAG: usize = 60;

/// min, max, mean and quartiles of one column.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ColumnSummary {
    pub(crate) name: &'static str,
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) mean: f64,
    pub(crate) q25: f64,
    pub(crate) median: f64,
    pub(crate) q75: f64,
}

/// Holes in the open times, counted as `collect` counts them.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Gaps {
    pub(crate) count: usize,
    pub(crate) missing: i64,
    /// The biggest: open time of its first missing kline, and how many are missing.
    pub(crate) biggest: Option<(i64, i64)>,
}

/// Moments of the returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ReturnStats {
    pub(crate) n: usize,
    pub(crate) mean: f64,
    /// Sample standard deviation (n − 1).
    pub(crate) std: f64,
    /// Moment skewness m3 / m2^1.5.
    pub(crate) skew: f64,
    /// m4 / m2² − 3.
    pub(crate) excess_kurtosis: f64,
    /// Share of returns exactly 0 (the close did not move).
    pub(crate) zero_share: f64,
}

/// Per hour of day (UTC): returns counted, their standard deviation, the mean volume.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct HourStat {
    pub(crate) n: usize,
    pub(crate) volatility: f64,
    pub(crate) mean_volume: f64,
}

/// Everything `describe` prints and draws.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Description {
    pub(crate) rows: usize,
    pub(crate) first_open_time: i64,
    pub(crate) last_open_time: i64,
    pub(crate) gaps: Gaps,
    pub(crate) columns: Vec<ColumnSummary>,
    pub(crate) returns: Vec<f64>,
    pub(crate) return_stats: ReturnStats,
    /// `acf[k − 1]` is the lag-k autocorrelation of returns, k = 1..=MAX_LAG.
    pub(crate) acf: Vec<f64>,
    pub(crate) acf_abs: Vec<f64>,
    pub(crate) hours: [HourStat; 24],
}

/// Linear-interpolated quantile of sorted values (numpy's default).
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let i = pos.floor() as usize;
    let frac = pos - i as f64;
    match sorted.get(i + 1) {
        Some(next) => sorted[i] + frac * (next - sorted[i]),
        None => sorted[i],
    }
}

fn summary(name: &'static str, values: &[f64]) -> ColumnSummary {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
    ColumnSummary {
        name,
        min: sorted.first().copied().unwrap_or(f64::NAN),
        max: sorted.last().copied().unwrap_or(f64::NAN),
        mean,
        q25: quantile(&sorted, 0.25),
        median: quantile(&sorted, 0.5),
        q75: quantile(&sorted, 0.75),
    }
}

/// Gaps in ascending open times for klines of `interval_ms`.
pub(crate) fn gaps(open_times: &[i64], interval_ms: i64) -> Gaps {
    let mut g = Gaps::default();
    for w in open_times.windows(2) {
        let missing = (w[1] - w[0]) / interval_ms - 1;
        if missing > 0 {
            g.count += 1;
            g.missing += missing;
            if g.biggest.is_none_or(|(_, m)| missing > m) {
                g.biggest = Some((w[0] + interval_ms, missing));
            }
        }
    }
    g
}

/// Moments of `r`.
pub(crate) fn return_stats(r: &[f64]) -> ReturnStats {
    let n = r.len();
    if n == 0 {
        return ReturnStats::default();
    }
    let nf = n as f64;
    let mean = r.iter().sum::<f64>() / nf;
    let (mut m2, mut m3, mut m4) = (0.0, 0.0, 0.0);
    for &x in r {
        let d = x - mean;
        m2 += d * d;
        m3 += d * d * d;
        m4 += d * d * d * d;
    }
    let (m2p, m3p, m4p) = (m2 / nf, m3 / nf, m4 / nf);
    ReturnStats {
        n,
        mean,
        std: if n > 1 { (m2 / (nf - 1.0)).sqrt() } else { 0.0 },
        skew: if m2p > 0.0 { m3p / m2p.powf(1.5) } else { 0.0 },
        excess_kurtosis: if m2p > 0.0 {
            m4p / (m2p * m2p) - 3.0
        } else {
            0.0
        },
        zero_share: r.iter().filter(|&&x| x == 0.0).count() as f64 / nf,
    }
}

/// Sample autocorrelations of `x` at lags 1..=max_lag (NaN where undefined).
pub(crate) fn acf(x: &[f64], max_lag: usize) -> Vec<f64> {
    let n = x.len();
    let mean = x.iter().sum::<f64>() / n.max(1) as f64;
    let d: Vec<f64> = x.iter().map(|v| v - mean).collect();
    let denom: f64 = d.iter().map(|v| v * v).sum();
    (1..=max_lag)
        .map(|k| {
            if k >= n || denom <= 0.0 {
                return f64::NAN;
            }
            d[..n - k]
                .iter()
                .zip(&d[k..])
                .map(|(a, b)| a * b)
                .sum::<f64>()
                / denom
        })
        .collect()
}

/// Describes a series of klines of `interval_ms`.
pub(crate) fn describe(s: &Series, interval_ms: i64) -> Description {
    let n = s.len();
    let columns = vec![
        summary("open", &s.open),
        summary("high", &s.high),
        summary("low", &s.low),
        summary("close", &s.close),
        summary("volume", &s.volume),
        summary("quote_volume", &s.quote_volume),
        summary("trades", &s.trades),
        summary("taker_buy_base", &s.taker_buy_base),
        summary("taker_buy_quote", &s.taker_buy_quote),
    ];
    let mut returns = Vec::with_capacity(n);
    let mut hour_sums = [(0usize, 0.0f64, 0.0f64); 24];
    let mut hour_volume = [(0usize, 0.0f64); 24];
    for i in 0..n {
        let hour = (s.open_time[i].rem_euclid(time::DAY_MS) / 3_600_000) as usize;
        hour_volume[hour].0 += 1;
        hour_volume[hour].1 += s.volume[i];
        if i > 0 && s.open_time[i] - s.open_time[i - 1] == interval_ms {
            let (a, b) = (s.close[i - 1], s.close[i]);
            if a > 0.0 && b > 0.0 {
                let r = (b / a).ln();
                returns.push(r);
                hour_sums[hour].0 += 1;
                hour_sums[hour].1 += r;
                hour_sums[hour].2 += r * r;
            }
        }
    }
    let mut hours = [HourStat::default(); 24];
    for (h, out) in hours.iter_mut().enumerate() {
        let (k, sum, sq) = hour_sums[h];
        out.n = k;
        out.volatility = if k > 1 {
            let m = sum / k as f64;
            ((sq - k as f64 * m * m) / (k as f64 - 1.0)).max(0.0).sqrt()
        } else {
            f64::NAN
        };
        out.mean_volume = if hour_volume[h].0 > 0 {
            hour_volume[h].1 / hour_volume[h].0 as f64
        } else {
            f64::NAN
        };
    }
    let abs: Vec<f64> = returns.iter().map(|r| r.abs()).collect();
    Description {
        rows: n,
        first_open_time: s.open_time.first().copied().unwrap_or(0),
        last_open_time: s.open_time.last().copied().unwrap_or(0),
        gaps: gaps(&s.open_time, interval_ms),
        columns,
        return_stats: return_stats(&returns),
        acf: acf(&returns, MAX_LAG),
        acf_abs: acf(&abs, MAX_LAG),
        returns,
        hours,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.25), 1.75);
        assert_eq!(quantile(&v, 0.5), 2.5);
        assert_eq!(quantile(&v, 1.0), 4.0);
    }

    #[test]
    fn gaps_are_counted_like_collect() {
        let t = [0, 60, 120, 300, 360, 420, 900];
        let g = gaps(&t, 60);
        assert_eq!((g.count, g.missing, g.biggest), (2, 9, Some((480, 7))));
        assert_eq!(gaps(&t[..3], 60), Gaps::default());
    }

    #[test]
    fn moments_of_a_known_sample() {
        let s = return_stats(&[0.0, 0.0, 1.0, -1.0, 2.0]);
        assert_eq!(s.n, 5);
        assert!((s.mean - 0.4).abs() < 1e-15);
        // Sum of squared deviations 5.2 over 4.
        assert!((s.std - 1.3f64.sqrt()).abs() < 1e-12);
        assert_eq!(s.zero_share, 0.4);
        // m2 = 1.04, m3 = 0.4032 / 5... computed by hand:
        let d: Vec<f64> = [0.0, 0.0, 1.0, -1.0, 2.0].iter().map(|x| x - 0.4).collect();
        let m2 = d.iter().map(|x| x * x).sum::<f64>() / 5.0;
        let m3 = d.iter().map(|x| x * x * x).sum::<f64>() / 5.0;
        let m4 = d.iter().map(|x| x.powi(4)).sum::<f64>() / 5.0;
        assert!((s.skew - m3 / m2.powf(1.5)).abs() < 1e-12);
        assert!((s.excess_kurtosis - (m4 / (m2 * m2) - 3.0)).abs() < 1e-12);
    }

    #[test]
    fn acf_of_an_alternating_series_is_minus_one_then_one() {
        let x: Vec<f64> = (0..1000)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        let a = acf(&x, 2);
        assert!((a[0] + 0.999).abs() < 1e-9, "{a:?}");
        assert!((a[1] - 0.998).abs() < 1e-9, "{a:?}");
    }

    #[test]
    fn returns_skip_gaps_and_hours_are_utc() {
        let mut s = Series::default();
        for (t, c) in [
            (0i64, 100.0),
            (3_600_000, 110.0),
            (10_800_000, 99.0),
            (14_400_000, 99.0),
        ] {
            s.open_time.push(t);
            s.open.push(c);
            s.high.push(c);
            s.low.push(c);
            s.close.push(c);
            s.volume.push(t as f64 / 3_600_000.0);
            s.quote_volume.push(0.0);
            s.trades.push(1.0);
            s.taker_buy_base.push(0.0);
            s.taker_buy_quote.push(0.0);
        }
        let d = describe(&s, 3_600_000);
        assert_eq!(d.returns, vec![(1.1f64).ln(), 0.0]);
        assert_eq!(d.gaps.count, 1);
        assert_eq!(d.hours[1].n, 1);
        assert_eq!(d.hours[3].mean_volume, 3.0);
        assert_eq!(d.columns[3].max, 110.0);
        assert_eq!(d.return_stats.zero_share, 0.5);
    }
}
