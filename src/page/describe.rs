//! `klinecast describe`: the data description of a kline store (the original project's data
//! notebook, as a command). [`describe`] is pure statistics over a [`Series`]; [`run`] loads
//! the file, prints the tables and, with `--html`, writes a page of charts (atomically; the
//! data file is only read).
//!
//! Returns are log returns of the close, `r = ln(c_t / c_{t−1})`, taken only between klines
//! that follow each other without a gap (a return across a maintenance window would be a
//! different kind of number). Autocorrelations are the usual sample ACF of that sequence.

use std::path::Path;

use crate::chart::html::Page;
use crate::chart::svg::{self, Axis, Chart, Mark, Scale};
use crate::cli::DescribeArgs;
use crate::error::Error;
use crate::kline::{Interval, Series};
use crate::{fsutil, store, time};

/// Lags of the autocorrelation charts (the table shows the first 5).
pub const MAX_LAG: usize = 60;

/// min, max, mean and quartiles of one column.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSummary {
    pub name: &'static str,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub q25: f64,
    pub median: f64,
    pub q75: f64,
}

/// Holes in the open times, counted as `collect` counts them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gaps {
    pub count: usize,
    pub missing: i64,
    /// The biggest: open time of its first missing kline, and how many are missing.
    pub biggest: Option<(i64, i64)>,
}

/// Moments of the returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReturnStats {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n − 1).
    pub std: f64,
    /// Moment skewness m3 / m2^1.5.
    pub skew: f64,
    /// m4 / m2² − 3.
    pub excess_kurtosis: f64,
    /// Share of returns exactly 0 (the close did not move).
    pub zero_share: f64,
}

/// Per hour of day (UTC): returns counted, their standard deviation, the mean volume.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HourStat {
    pub n: usize,
    pub volatility: f64,
    pub mean_volume: f64,
}

/// Everything `describe` prints and draws.
#[derive(Debug, Clone, PartialEq)]
pub struct Description {
    pub rows: usize,
    pub first_open_time: i64,
    pub last_open_time: i64,
    pub gaps: Gaps,
    pub columns: Vec<ColumnSummary>,
    pub returns: Vec<f64>,
    pub return_stats: ReturnStats,
    /// `acf[k − 1]` is the lag-k autocorrelation of returns, k = 1..=MAX_LAG.
    pub acf: Vec<f64>,
    pub acf_abs: Vec<f64>,
    pub hours: [HourStat; 24],
}

/// Linear-interpolated quantile of sorted values (numpy's default).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
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
pub fn gaps(open_times: &[i64], interval_ms: i64) -> Gaps {
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
pub fn return_stats(r: &[f64]) -> ReturnStats {
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
pub fn acf(x: &[f64], max_lag: usize) -> Vec<f64> {
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
pub fn describe(s: &Series, interval_ms: i64) -> Description {
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

/// A number with 6 significant digits, without exponent for everyday magnitudes.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "-".to_string();
    }
    let a = v.abs();
    if a == 0.0 {
        "0".to_string()
    } else if (1e-4..1e12).contains(&a) {
        let decimals = (5 - a.log10().floor() as i32).clamp(0, 10) as usize;
        format!("{v:.decimals$}")
    } else {
        format!("{v:.4e}")
    }
}

/// Gap text in `collect`'s words.
pub fn gap_line(g: &Gaps) -> String {
    if g.count == 0 {
        return "gaps: none".to_string();
    }
    let biggest = g
        .biggest
        .map(|(first, missing)| {
            format!(
                "; the biggest is {missing} klines after {} UTC",
                time::format_ms(first).get(..16).unwrap_or_default()
            )
        })
        .unwrap_or_default();
    format!(
        "gaps (no klines exist there, none were invented): {} gaps, {} klines missing{biggest}",
        g.count, g.missing
    )
}

const COLUMN_HEADER: [&str; 7] = ["column", "min", "max", "mean", "q25", "median", "q75"];

fn column_rows(d: &Description) -> Vec<Vec<String>> {
    d.columns
        .iter()
        .map(|c| {
            vec![
                c.name.to_string(),
                num(c.min),
                num(c.max),
                num(c.mean),
                num(c.q25),
                num(c.median),
                num(c.q75),
            ]
        })
        .collect()
}

fn return_rows(d: &Description) -> Vec<Vec<String>> {
    let r = &d.return_stats;
    vec![vec![
        r.n.to_string(),
        num(r.mean),
        num(r.std),
        format!("{:.4}", r.skew),
        format!("{:.4}", r.excess_kurtosis),
        format!("{:.4}", r.zero_share),
    ]]
}

const RETURN_HEADER: [&str; 6] = [
    "returns",
    "mean",
    "std",
    "skew",
    "excess kurtosis",
    "zero share",
];

fn acf_rows(d: &Description) -> Vec<Vec<String>> {
    let row = |name: &str, v: &[f64]| {
        let mut r = vec![name.to_string()];
        r.extend(v.iter().take(5).map(|x| format!("{x:.4}")));
        r
    };
    vec![row("returns", &d.acf), row("|returns|", &d.acf_abs)]
}

const ACF_HEADER: [&str; 6] = [
    "autocorrelation",
    "lag 1",
    "lag 2",
    "lag 3",
    "lag 4",
    "lag 5",
];

fn text_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut width = vec![0; header.len()];
    for (i, h) in header.iter().enumerate() {
        width[i] = h.len();
    }
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = width.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == 0 {
                out.push_str(&format!("{c:<w$}", w = width[0]));
            } else {
                out.push_str(&format!("  {c:>w$}", w = width[i]));
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// The text `describe` prints.
pub fn to_text(name: &str, symbol: &str, interval: &str, d: &Description) -> String {
    let mut out = format!(
        "{name}: {symbol} {interval}, {} rows, {} .. {} UTC\n{}\n\n",
        d.rows,
        time::format_ms(d.first_open_time),
        time::format_ms(d.last_open_time),
        gap_line(&d.gaps)
    );
    out.push_str(&text_table(&COLUMN_HEADER, &column_rows(d)));
    out.push('\n');
    out.push_str(&text_table(&RETURN_HEADER, &return_rows(d)));
    out.push('\n');
    out.push_str(&text_table(&ACF_HEADER, &acf_rows(d)));
    out
}

/// Width in viewBox units of a chart's plot area: the price chart draws one min/max pair per
/// unit.
pub const PRICE_COLUMNS: usize = 564;

/// The HTML page: the same tables and four kinds of chart.
pub fn to_html(name: &str, symbol: &str, interval: &str, s: &Series, d: &Description) -> String {
    let mut page = Page::new(
        &format!("{symbol} {interval}: data description"),
        &format!(
            "{name}: {} rows, {} .. {} UTC. {}",
            d.rows,
            time::format_ms(d.first_open_time),
            time::format_ms(d.last_open_time),
            gap_line(&d.gaps)
        ),
    );
    // Close price: min/max per pixel column.
    let xs: Vec<f64> = s.open_time.iter().map(|&t| t as f64).collect();
    let cols = svg::min_max_columns(&xs, &s.close, PRICE_COLUMNS);
    let (lo, hi) = svg::extent(s.close.iter().copied());
    let mut price = Chart::new(
        "price",
        Axis::new(
            xs.first().copied().unwrap_or(0.0),
            xs.last().copied().unwrap_or(1.0),
            Scale::Time,
            "",
        ),
        Axis::fit([lo, hi], "close"),
    );
    price.add(Mark::Band {
        label: "close (min..max per pixel)".to_string(),
        color: svg::color(0).to_string(),
        xs: cols.iter().map(|c| c.0).collect(),
        lo: cols.iter().map(|c| c.1).collect(),
        hi: cols.iter().map(|c| c.2).collect(),
        opacity: 1.0,
    });
    page.heading("Price").figure(
        "Close price, whole file",
        &price.render(),
        &format!(
            "{} klines drawn as {} pixel columns, each spanning the lowest and highest close in \
             it. Lowest close {}, highest {}.",
            d.rows,
            cols.len(),
            num(lo),
            num(hi)
        ),
    );
    page.table("table-columns", &COLUMN_HEADER, &column_rows(d));

    // Returns.
    page.heading("Returns");
    page.figure(
        "Return histogram against a normal of the same variance",
        &histogram(d).render(),
        "Log-scale counts of close-to-close log returns (between consecutive klines); the line \
         is a normal distribution with the returns' mean and standard deviation. Fat tails show \
         as bars far above the line.",
    );
    page.table("table-returns", &RETURN_HEADER, &return_rows(d));
    page.table("table-acf", &ACF_HEADER, &acf_rows(d));
    page.figure(
        "Autocorrelation of returns and of |returns|, lags 1..60",
        &acf_chart(d).render(),
        &format!(
            "Dashed lines: ±1.96/√n = ±{:.4} (n = {}), the 95 % band of a series without \
             autocorrelation.",
            1.96 / (d.return_stats.n.max(1) as f64).sqrt(),
            d.return_stats.n
        ),
    );

    // Hour of day.
    page.heading("Hour of day (UTC)");
    let hx: Vec<f64> = (0..24).map(f64::from).collect();
    let vol: Vec<f64> = d.hours.iter().map(|h| h.volatility).collect();
    let volume: Vec<f64> = d.hours.iter().map(|h| h.mean_volume).collect();
    let mut c = Chart::new(
        "hour-volatility",
        Axis::new(-0.5, 23.5, Scale::Linear, "hour (UTC)"),
        Axis::fit(vol.iter().copied().chain([0.0]), "std of returns"),
    );
    c.add(Mark::Bars {
        label: "volatility".to_string(),
        color: svg::color(3).to_string(),
        xs: hx.clone(),
        ys: vol,
        width: 1.0,
    });
    page.figure(
        "Volatility by hour",
        &c.render(),
        "Standard deviation of returns of klines opening in each UTC hour.",
    );
    let mut c = Chart::new(
        "hour-volume",
        Axis::new(-0.5, 23.5, Scale::Linear, "hour (UTC)"),
        Axis::fit(volume.iter().copied().chain([0.0]), "mean volume"),
    );
    c.add(Mark::Bars {
        label: "volume".to_string(),
        color: svg::color(2).to_string(),
        xs: hx,
        ys: volume,
        width: 1.0,
    });
    page.figure(
        "Volume by hour",
        &c.render(),
        "Mean base-asset volume per kline opening in each UTC hour.",
    );
    page.finish()
}

/// Bins of the return histogram: centres, counts, and the normal's expected counts.
pub fn histogram_bins(d: &Description, bins: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let r = &d.return_stats;
    let mut sorted = d.returns.clone();
    sorted.sort_by(f64::total_cmp);
    let edge = quantile(&sorted, 0.999)
        .abs()
        .max(quantile(&sorted, 0.001).abs())
        .max(r.std * 4.0);
    if !(edge.is_finite() && edge > 0.0) {
        return (Vec::new(), Vec::new(), Vec::new());
    }
    let width = 2.0 * edge / bins as f64;
    let mut counts = vec![0.0; bins];
    for &x in &d.returns {
        let i = ((x + edge) / width).floor();
        if i >= 0.0 && (i as usize) < bins {
            counts[i as usize] += 1.0;
        }
    }
    let centres: Vec<f64> = (0..bins)
        .map(|i| -edge + (i as f64 + 0.5) * width)
        .collect();
    let normal: Vec<f64> = centres
        .iter()
        .map(|&x| {
            let z = (x - r.mean) / r.std;
            r.n as f64 * width * (-0.5 * z * z).exp()
                / (r.std * (2.0 * std::f64::consts::PI).sqrt())
        })
        .collect();
    (centres, counts, normal)
}

fn histogram(d: &Description) -> Chart {
    let (xs, counts, normal) = histogram_bins(d, 61);
    let width = if xs.len() > 1 { xs[1] - xs[0] } else { 1.0 };
    let top = counts.iter().copied().fold(1.0, f64::max) * 2.0;
    let (x0, x1) = svg::extent(xs.iter().copied());
    let mut c = Chart::new(
        "histogram",
        Axis::new(x0 - width, x1 + width, Scale::Linear, "log return"),
        Axis::new(0.5, top, Scale::Log, "count"),
    );
    c.add(Mark::Bars {
        label: "returns".to_string(),
        color: svg::color(0).to_string(),
        xs: xs.clone(),
        ys: counts,
        width,
    });
    // The normal below half a count is off the log axis: cut it there.
    let ys: Vec<f64> = normal
        .iter()
        .map(|&v| if v >= 0.5 { v } else { f64::NAN })
        .collect();
    c.add(Mark::Line {
        label: "normal, same variance".to_string(),
        color: svg::color(1).to_string(),
        xs,
        ys,
        width: 2.0,
        dashed: false,
    });
    c
}

fn acf_chart(d: &Description) -> Chart {
    let band = 1.96 / (d.return_stats.n.max(1) as f64).sqrt();
    let lags: Vec<f64> = (1..=MAX_LAG).map(|k| k as f64).collect();
    let mut c = Chart::new(
        "acf",
        Axis::new(0.0, MAX_LAG as f64 + 1.0, Scale::Linear, "lag"),
        Axis::fit(
            d.acf
                .iter()
                .chain(&d.acf_abs)
                .copied()
                .chain([band, -band, 0.0]),
            "autocorrelation",
        ),
    );
    c.add(Mark::Bars {
        label: "returns".to_string(),
        color: svg::color(0).to_string(),
        xs: lags.iter().map(|k| k - 0.2).collect(),
        ys: d.acf.clone(),
        width: 0.4,
    });
    c.add(Mark::Bars {
        label: "|returns|".to_string(),
        color: svg::color(3).to_string(),
        xs: lags.iter().map(|k| k + 0.2).collect(),
        ys: d.acf_abs.clone(),
        width: 0.4,
    });
    for y in [band, -band] {
        c.add(Mark::Rule {
            label: if y > 0.0 {
                "±1.96/√n".to_string()
            } else {
                String::new()
            },
            color: "#555".to_string(),
            y,
            dashed: true,
        });
    }
    c
}

/// Symbol and interval from a `<SYMBOL>_<interval>.csv` name, or else the interval inferred
/// from the smallest step between open times.
pub fn name_parts(path: &Path, s: &Series) -> (String, Interval) {
    if let Ok((sym, iv)) = crate::store::parse_file_name(path) {
        return (sym.to_string(), iv);
    }
    let step = s
        .open_time
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|&d| d > 0)
        .min()
        .unwrap_or(60_000);
    let iv = [
        "1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d",
    ]
    .iter()
    .filter_map(|t| Interval::parse(t).ok())
    .find(|iv| iv.ms() == step)
    .unwrap_or(Interval::ONE_MINUTE);
    ("?".to_string(), iv)
}

/// Runs `klinecast describe`.
pub fn run(args: &DescribeArgs) -> Result<(), Error> {
    let series = store::load_series(&args.data)?;
    if series.len() < 2 {
        return Err(Error::Data(format!(
            "{}: {} klines; describe needs at least 2",
            args.data.display(),
            series.len()
        )));
    }
    let (symbol, interval) = name_parts(&args.data, &series);
    let d = describe(&series, interval.ms());
    let name = args.data.display().to_string();
    print!("{}", to_text(&name, &symbol, interval.as_str(), &d));
    if let Some(out) = &args.html {
        let html = to_html(&name, &symbol, interval.as_str(), &series, &d);
        write_page(out, &html)?;
        println!("\nwrote {}", out.display());
    }
    Ok(())
}

/// Writes a page atomically, creating its directory.
pub fn write_page(path: &Path, html: &str) -> Result<(), Error> {
    let dir = fsutil::parent_dir(path);
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    fsutil::write_atomic(path, html.as_bytes())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
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
