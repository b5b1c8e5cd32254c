//! The overview page of several symbols' runs (`report --symbols A,B --html FILE`): one row per
//! symbol with its last forecast and interval, the interval coverage over the run, the
//! ensemble's RMSE ÷ naive pooled over all windows and how long ago its store was written,
//! linking to the symbol's own page. Pure: facts in, a string out.

use std::collections::HashMap;

use super::html::Page;
use super::num;
use super::run::scoreboard_rows;
use crate::run_files::RunFiles;
use crate::time::format_ms;

/// One symbol's row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    /// `BTCUSDT 1m`.
    pub(crate) label: String,
    /// The symbol's page, relative to the overview (`None`: no page, see `error`).
    pub(crate) href: Option<String>,
    /// `(target open time, forecast, lower, upper)` of the last forecast.
    pub(crate) last_forecast: Option<(i64, f64, f64, f64)>,
    /// Share of the scored forecasts whose close fell inside the interval, and how many.
    pub(crate) coverage: Option<(f64, usize)>,
    /// The ensemble's RMSE ÷ naive over every logged window.
    pub(crate) rmse_vs_naive: Option<f64>,
    /// Seconds since the store was last written (wall clock).
    pub(crate) store_age_s: Option<f64>,
    /// Why this symbol could not be read.
    pub(crate) error: Option<String>,
}

impl Row {
    /// The row of a run read whole.
    pub(crate) fn of(label: &str, files: &RunFiles, href: &str, store_age_s: Option<f64>) -> Row {
        Row {
            label: label.to_string(),
            href: Some(href.to_string()),
            last_forecast: files
                .forecasts
                .last()
                .map(|p| (p.target_open_time, p.forecast, p.lower, p.upper)),
            coverage: coverage(files),
            rmse_vs_naive: scoreboard_rows(&files.windows)
                .into_iter()
                .find(|r| r.label == "ensemble")
                .and_then(|r| r.rmse_vs_naive),
            store_age_s,
            error: None,
        }
    }

    /// The row of a symbol whose files could not be read.
    pub(crate) fn failed(label: &str, error: &str) -> Row {
        Row {
            label: label.to_string(),
            href: None,
            last_forecast: None,
            coverage: None,
            rmse_vs_naive: None,
            store_age_s: None,
            error: Some(error.to_string()),
        }
    }
}

/// Coverage counted from the forecasts with a finite interval whose kline is stored.
fn coverage(files: &RunFiles) -> Option<(f64, usize)> {
    let closes: HashMap<i64, f64> = files.closes.iter().copied().collect();
    let (mut inside, mut n) = (0usize, 0usize);
    for p in &files.forecasts {
        let Some(close) = closes.get(&p.target_open_time) else {
            continue;
        };
        if !(p.lower.is_finite() && p.upper.is_finite()) {
            continue;
        }
        n += 1;
        inside += usize::from(p.lower <= *close && *close <= p.upper);
    }
    (n > 0).then(|| (inside as f64 / n as f64, n))
}

/// `42 s`, `3 min`, `2 h 10 min`, `3 d 4 h` ago.
fn age(s: f64) -> String {
    let s = s.max(0.0) as u64;
    match s {
        0..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h {} min ago", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h ago", s / 86_400, s % 86_400 / 3600),
    }
}

/// The overview page; `title` names the data directory.
pub(crate) fn html(rows: &[Row], title: &str) -> String {
    let mut page = Page::new(
        "klinecast: every symbol",
        &format!(
            "{title}: {} symbols; each symbol's name links to its page",
            rows.len()
        ),
    );
    let cells: Vec<(Option<String>, Vec<String>)> = rows
        .iter()
        .map(|r| {
            let (target, forecast, interval) = r.last_forecast.map_or_else(
                || ("-".to_string(), "-".to_string(), "-".to_string()),
                |(t, f, lo, hi)| {
                    (
                        format_ms(t).get(..16).unwrap_or_default().to_string(),
                        num(f),
                        format!("{} .. {}", num(lo), num(hi)),
                    )
                },
            );
            let cells = vec![
                r.label.clone(),
                target,
                forecast,
                interval,
                r.coverage.map_or("-".to_string(), |(c, n)| {
                    format!("{:.1} % of {n}", c * 100.0)
                }),
                r.rmse_vs_naive
                    .map_or("-".to_string(), |v| format!("{v:.5}")),
                r.store_age_s.map_or("-".to_string(), age),
                r.error.clone().unwrap_or_default(),
            ];
            (r.href.clone(), cells)
        })
        .collect();
    page.heading("Symbols").linked_table(
        "symbols",
        &[
            "symbol",
            "last forecast for (UTC)",
            "forecast",
            "interval",
            "coverage",
            "RMSE ÷ naive",
            "store written",
            "problem",
        ],
        &cells,
    );
    page.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::predictions::PredictionRow;

    #[test]
    fn a_row_counts_coverage_and_the_page_links_each_symbol() {
        let row = |t: i64, lower: f64, upper: f64| PredictionRow {
            target_open_time: t,
            forecast: 10.0,
            naive: 10.0,
            ensemble_version: 1,
            made_after_open_time: t - 60_000,
            lower,
            upper,
        };
        let files = RunFiles {
            symbol: "ETHUSDT".to_string(),
            interval_ms: 60_000,
            closes: vec![(0, 10.0), (60_000, 12.0), (120_000, 9.5)],
            // Inside, outside, inside, and one whose kline is not stored yet.
            forecasts: vec![
                row(0, 9.0, 11.0),
                row(60_000, 9.0, 11.0),
                row(120_000, 9.0, 11.0),
                row(180_000, 8.0, 13.0),
            ],
            ..RunFiles::default()
        };
        let r = Row::of("ETHUSDT 1m", &files, "r-ETHUSDT_1m.html", Some(125.0));
        assert_eq!(r.coverage, Some((2.0 / 3.0, 3)));
        assert_eq!(r.last_forecast, Some((180_000, 10.0, 8.0, 13.0)));
        let page = html(&[r, Row::failed("XRPUSDT 1m", "no <store>")], "data");
        assert!(page.contains("<td><a href=\"r-ETHUSDT_1m.html\">ETHUSDT 1m</a></td>"));
        assert!(page.contains("<td>66.7 % of 3</td>") && page.contains("<td>2 min ago</td>"));
        assert!(page.contains("<td>XRPUSDT 1m</td>") && page.contains("no &lt;store&gt;"));
    }
}
