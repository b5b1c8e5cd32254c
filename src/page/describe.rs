//! The page of `klinecast describe`: the description's tables (shared with the text the
//! command prints) and its charts: the close price, the return histogram against a normal, the
//! autocorrelations and the hours of the day. Builds strings only.

use super::html::Page;
use super::num;
use super::svg::{self, Axis, Chart, Mark, Scale};
use crate::kline::Series;
use crate::stats::{quantile, Description, Gaps, MAX_LAG};
use crate::time;

/// Gap text in `collect`'s words.
pub(crate) fn gap_line(g: &Gaps) -> String {
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

pub(crate) const COLUMN_HEADER: [&str; 7] =
    ["column", "min", "max", "mean", "q25", "median", "q75"];

pub(crate) fn column_rows(d: &Description) -> Vec<Vec<String>> {
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

pub(crate) fn return_rows(d: &Description) -> Vec<Vec<String>> {
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

pub(crate) const RETURN_HEADER: [&str; 6] = [
    "returns",
    "mean",
    "std",
    "skew",
    "excess kurtosis",
    "zero share",
];

pub(crate) fn acf_rows(d: &Description) -> Vec<Vec<String>> {
    let row = |name: &str, v: &[f64]| {
        let mut r = vec![name.to_string()];
        r.extend(v.iter().take(5).map(|x| format!("{x:.4}")));
        r
    };
    vec![row("returns", &d.acf), row("|returns|", &d.acf_abs)]
}

pub(crate) const ACF_HEADER: [&str; 6] = [
    "autocorrelation",
    "lag 1",
    "lag 2",
    "lag 3",
    "lag 4",
    "lag 5",
];

/// Width in viewBox units of a chart's plot area: the price chart draws one min/max pair per
/// unit.
pub(crate) const PRICE_COLUMNS: usize = 564;

/// The HTML page: the same tables and four kinds of chart.
pub(crate) fn to_html(
    name: &str,
    symbol: &str,
    interval: &str,
    s: &Series,
    d: &Description,
) -> String {
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
    price_section(&mut page, s, d);
    returns_section(&mut page, d);
    hours_section(&mut page, d);
    page.finish()
}

/// The price section: the close over the whole file, min/max per pixel column, and the
/// columns' table.
fn price_section(page: &mut Page, s: &Series, d: &Description) {
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
}

/// The returns section: the histogram against a normal, the returns' and autocorrelations'
/// tables, and the autocorrelation chart.
fn returns_section(page: &mut Page, d: &Description) {
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
}

/// The hour-of-day section: volatility and mean volume per UTC hour, as bars.
fn hours_section(page: &mut Page, d: &Description) {
    page.heading("Hour of day (UTC)");
    let vol: Vec<f64> = d.hours.iter().map(|h| h.volatility).collect();
    let volume: Vec<f64> = d.hours.iter().map(|h| h.mean_volume).collect();
    page.figure(
        "Volatility by hour",
        &hour_bars("hour-volatility", "std of returns", "volatility", 3, vol).render(),
        "Standard deviation of returns of klines opening in each UTC hour.",
    );
    page.figure(
        "Volume by hour",
        &hour_bars("hour-volume", "mean volume", "volume", 2, volume).render(),
        "Mean base-asset volume per kline opening in each UTC hour.",
    );
}

/// A bar per UTC hour 0..23 of `ys`, in palette colour `color`, on an axis from 0.
fn hour_bars(id: &str, axis: &str, label: &str, color: usize, ys: Vec<f64>) -> Chart {
    let mut c = Chart::new(
        id,
        Axis::new(-0.5, 23.5, Scale::Linear, "hour (UTC)"),
        Axis::fit(ys.iter().copied().chain([0.0]), axis),
    );
    c.add(Mark::Bars {
        label: label.to_string(),
        color: svg::color(color).to_string(),
        xs: (0..24).map(f64::from).collect(),
        ys,
        width: 1.0,
    });
    c
}

/// Bins of the return histogram: centres, counts, and the normal's expected counts.
pub(crate) fn histogram_bins(d: &Description, bins: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
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
