//! The page of `klinecast backtest --html`: the `report` page's charts over the replay
//! ([`super::run::run_charts`]), then the run, the scoreboard, both combiners, the experts and
//! the intervals as tables. Builds strings only.

use super::html::Page;
use super::run::{run_charts, score_table};
use crate::backtest::BacktestSummary;
use crate::run_files::RunFiles;

/// A share as a percentage with two decimals, `-` when unknown.
pub(crate) fn pct(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{:.2} %", 100.0 * v))
}

/// A price-unit figure with six decimals, `-` when unknown.
pub(crate) fn price(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.6}"))
}

/// Coverage per volatility third, `low / mid / high` in percent.
pub(crate) fn thirds(v: &[f64]) -> String {
    v.iter()
        .map(|c| format!("{:.1}", 100.0 * c))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// The `--html` page: the `report` page's charts over the replay (the last `hours` of
/// forecasts, cumulative RMSE ÷ naive, the experts awake and their weights, rolling coverage),
/// then the run, the
/// scoreboard, both combiners, the experts and the intervals as tables. Pure.
pub(crate) fn page(s: &BacktestSummary, run: &RunFiles, hours: f64) -> String {
    let mut page = Page::new(
        &format!("{}: backtest", run.symbol),
        &format!(
            "{}: trained on the first {} klines, warmed up on {}, replayed {} in {} windows of {} \
             (seed {})",
            s.data, s.train_rows, s.warm_up_rows, s.replay_rows, s.windows, s.window, s.seed
        ),
    );
    run_charts(&mut page, run, hours);
    page.heading("Scoreboard, whole replay");
    score_table(&mut page, "scoreboard", &s.scoreboard);
    score_table(&mut page, "combiners", &s.combiners);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backtest::tests::sample_summary;

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
        assert!(
            html.contains("a&amp;b&lt;c&gt;.csv: trained on the first 40 klines, warmed up on 10,")
        );
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
