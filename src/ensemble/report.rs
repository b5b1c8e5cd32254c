//! What the ensemble reports: per-window scores ([`WindowReport`], one JSON line per window in
//! log/ensemble.jsonl and one readable line in log/ensemble.log) and the lifetime scoreboard
//! ([`ScoreRow`]). Pure: builds values and strings, writes nothing and reads no clock (the
//! caller prefixes a timestamp).

use serde::{Deserialize, Serialize};

use crate::metrics::Accum;
use crate::time;

/// One forecaster's errors over a window, in price units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ForecasterScore {
    /// `ensemble`, `naive`, `trained/<kind>` or `gen<N>/<kind>`.
    pub(crate) label: String,
    pub(crate) n: u64,
    /// `None` when nothing was scored.
    pub(crate) rmse: Option<f64>,
    pub(crate) mae: Option<f64>,
    /// Share of price moves whose direction was forecast; `None` when the price never moved.
    pub(crate) directional: Option<f64>,
}

impl ForecasterScore {
    pub(crate) fn from_accum(label: &str, a: &Accum) -> ForecasterScore {
        ForecasterScore {
            label: label.to_string(),
            n: a.n,
            rmse: finite(a.rmse()),
            mae: finite(a.mae()),
            directional: finite(a.directional()),
        }
    }
}

/// A member's weight when every member forecasts, with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct MemberWeight {
    pub(crate) label: String,
    pub(crate) weight: f64,
    /// `1 − MSE / naive MSE` over the member's discounted history; `None` before any score.
    pub(crate) skill: Option<f64>,
    pub(crate) n_scored: u64,
}

/// An expert's standing after a window: its ML-Poly record and weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ExpertWeight {
    pub(crate) label: String,
    /// Rounds it was awake and scored.
    pub(crate) rounds: u64,
    /// Cumulative linearised regret of the aggregate against it (> 0: it would have helped).
    pub(crate) regret: f64,
    /// Its ML-Poly weight when every expert with a model forecasts.
    pub(crate) weight: f64,
}

/// The prediction intervals over a window (price units), beside the static baseline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct IntervalReport {
    pub(crate) nominal: f64,
    pub(crate) n: u64,
    /// Realised coverage.
    pub(crate) realised: Option<f64>,
    pub(crate) mean_width: Option<f64>,
    /// Mean Winkler interval score.
    pub(crate) interval_score: Option<f64>,
    pub(crate) static_realised: Option<f64>,
    pub(crate) static_mean_width: Option<f64>,
    pub(crate) static_interval_score: Option<f64>,
}

/// What the refit at the end of a window did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Refit {
    /// A generation was fitted on `rows` rows and added; `evicted` generations left the pool.
    Added {
        generation: u64,
        rows: usize,
        evicted: Vec<u64>,
    },
    /// The fit failed (the pool is unchanged); the message says why.
    Failed { error: String },
}

/// One line of the ensemble log: a window's scores (made before the window's own generation
/// was added) and the pool after the update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowReport {
    /// 0-based window index.
    pub(crate) window: u64,
    /// Target open times of the first and last forecast scored in the window.
    pub(crate) first_open_time: i64,
    pub(crate) last_open_time: i64,
    /// `ensemble`, then the naive and every member that was in the pool during the window.
    pub(crate) forecasters: Vec<ForecasterScore>,
    /// Weights after the update, in pool order.
    pub(crate) weights: Vec<MemberWeight>,
    /// The experts' records and weights after the update (absent from lines logged before
    /// the experts existed).
    #[serde(default)]
    pub(crate) experts: Vec<ExpertWeight>,
    /// The window's prediction intervals (absent from lines logged before they existed).
    #[serde(default)]
    pub(crate) coverage: IntervalReport,
    pub(crate) refit: Refit,
    pub(crate) trained: usize,
    /// Generations in the pool after the update.
    pub(crate) generations: usize,
    pub(crate) pool_size: usize,
    /// Ensemble version after the update.
    pub(crate) version: u64,
}

impl WindowReport {
    /// A readable one-line summary (no timestamp: the caller prefixes one).
    pub(crate) fn to_log_line(&self) -> String {
        let score = |label: &str| self.forecasters.iter().find(|f| f.label == label);
        let mut line = format!(
            "window {} {}..{}",
            self.window,
            time::format_ms(self.first_open_time),
            time::format_ms(self.last_open_time)
        );
        let ens = score("ensemble");
        let naive = score("naive");
        if let Some(e) = ens {
            line.push_str(&format!(" n={} | ensemble {}", e.n, fmt_score(e)));
            if let (Some(er), Some(nr)) = (e.rmse, naive.and_then(|n| n.rmse)) {
                if nr > 0.0 {
                    line.push_str(&format!(" ({:.4}x naive)", er / nr));
                }
            }
        }
        if let Some(n) = naive {
            line.push_str(&format!(" | naive {}", fmt_score(n)));
        }
        if let (Some(c), Some(sc)) = (self.coverage.realised, self.coverage.static_realised) {
            line.push_str(&format!(
                " | interval {:.0}%: covered {:.3} (static {:.3})",
                self.coverage.nominal * 100.0,
                c,
                sc
            ));
        }
        let best = self
            .forecasters
            .iter()
            .filter(|f| f.label != "ensemble" && f.label != "naive")
            .filter_map(|f| f.rmse.map(|r| (r, f)))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((_, f)) = best {
            line.push_str(&format!(" | best {} rmse={}", f.label, fmt_num(f.rmse)));
        }
        let mut voting: Vec<&MemberWeight> =
            self.weights.iter().filter(|w| w.weight > 0.0).collect();
        voting.sort_by(|a, b| b.weight.total_cmp(&a.weight));
        let shown: Vec<String> = voting
            .iter()
            .take(5)
            .map(|w| format!("{} {:.3}", w.label, w.weight))
            .collect();
        line.push_str(&format!(" | weights {}", shown.join(", ")));
        if voting.len() > 5 {
            line.push_str(&format!(" (+{} more)", voting.len() - 5));
        }
        line.push_str(&format!(
            " | pool {} trained + {} gens = {} members",
            self.trained, self.generations, self.pool_size
        ));
        match &self.refit {
            Refit::Added {
                generation,
                rows,
                evicted,
            } => {
                line.push_str(&format!(" | refit gen{generation} on {rows} rows"));
                if !evicted.is_empty() {
                    let ev: Vec<String> = evicted.iter().map(|g| format!("gen{g}")).collect();
                    line.push_str(&format!(", evicted {}", ev.join(", ")));
                }
            }
            Refit::Failed { error } => line.push_str(&format!(" | refit failed: {error}")),
        }
        line
    }
}

/// One row of the lifetime scoreboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreRow {
    /// `ensemble`, `naive`, `trained/<kind>` or `generations/<kind>`.
    pub(crate) label: String,
    pub(crate) n: u64,
    pub(crate) rmse: Option<f64>,
    pub(crate) mae: Option<f64>,
    /// In percent.
    pub(crate) mape: Option<f64>,
    pub(crate) directional: Option<f64>,
    /// RMSE divided by the naive forecast's RMSE on the same forecasts.
    pub(crate) rmse_vs_naive: Option<f64>,
    /// The expert's current ML-Poly weight (`None` for rows that are not experts).
    #[serde(default)]
    pub(crate) weight: Option<f64>,
}

impl ScoreRow {
    pub(crate) fn new(label: &str, a: &Accum, naive_rmse: Option<f64>) -> ScoreRow {
        let rmse = finite(a.rmse());
        ScoreRow {
            label: label.to_string(),
            n: a.n,
            rmse,
            mae: finite(a.mae()),
            mape: finite(a.mape()),
            directional: finite(a.directional()),
            rmse_vs_naive: match (rmse, naive_rmse) {
                (Some(r), Some(n)) if n > 0.0 => Some(r / n),
                _ => None,
            },
            weight: None,
        }
    }
}

/// Formats rows as an aligned text table.
pub(crate) fn scoreboard_table(rows: &[ScoreRow]) -> String {
    let width = rows
        .iter()
        .map(|r| r.label.len())
        .max()
        .unwrap_or(5)
        .max(10);
    let mut out = format!(
        "{:<width$} {:>7} {:>12} {:>12} {:>9} {:>8} {:>10} {:>7}\n",
        "forecaster", "n", "rmse", "mae", "mape%", "dir%", "rmse/naive", "weight"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<width$} {:>7} {:>12} {:>12} {:>9} {:>8} {:>10} {:>7}\n",
            r.label,
            r.n,
            fmt_num(r.rmse),
            fmt_num(r.mae),
            r.mape.map_or("-".to_string(), |v| format!("{v:.4}")),
            r.directional
                .map_or("-".to_string(), |v| format!("{:.2}", 100.0 * v)),
            r.rmse_vs_naive
                .map_or("-".to_string(), |v| format!("{v:.5}")),
            r.weight.map_or("-".to_string(), |v| format!("{v:.3}")),
        ));
    }
    out
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

fn fmt_num(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.6}"))
}

fn fmt_score(f: &ForecasterScore) -> String {
    format!(
        "rmse={} mae={} dir={}",
        fmt_num(f.rmse),
        fmt_num(f.mae),
        f.directional
            .map_or("-".to_string(), |d| format!("{:.1}%", 100.0 * d))
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A window report with every kind of field (shared with `crate::report`'s tests).
    pub(crate) fn report() -> WindowReport {
        let mut ens = Accum::default();
        ens.add(10.0, 10.5, 11.0);
        ens.add(11.0, 11.0, 10.0);
        let mut naive = Accum::default();
        naive.add(10.0, 10.0, 11.0);
        naive.add(11.0, 11.0, 10.0);
        WindowReport {
            window: 3,
            first_open_time: 60_000,
            last_open_time: 120_000,
            forecasters: vec![
                ForecasterScore::from_accum("ensemble", &ens),
                ForecasterScore::from_accum("naive", &naive),
                ForecasterScore::from_accum("gen2/knn", &Accum::default()),
            ],
            experts: vec![ExpertWeight {
                label: "naive".to_string(),
                rounds: 2,
                regret: 0.0,
                weight: 1.0,
            }],
            coverage: IntervalReport {
                nominal: 0.9,
                n: 2,
                realised: Some(0.5),
                mean_width: Some(1.0),
                interval_score: Some(11.0),
                static_realised: Some(1.0),
                static_mean_width: Some(2.0),
                static_interval_score: Some(2.0),
            },
            weights: vec![
                MemberWeight {
                    label: "naive".to_string(),
                    weight: 0.75,
                    skill: Some(0.0),
                    n_scored: 2,
                },
                MemberWeight {
                    label: "trained/forest".to_string(),
                    weight: 0.25,
                    skill: Some(0.01),
                    n_scored: 2,
                },
                MemberWeight {
                    label: "gen2/knn".to_string(),
                    weight: 0.0,
                    skill: None,
                    n_scored: 0,
                },
            ],
            refit: Refit::Added {
                generation: 4,
                rows: 300,
                evicted: vec![1],
            },
            trained: 1,
            generations: 1,
            pool_size: 3,
            version: 9,
        }
    }

    #[test]
    fn log_line_is_exact() {
        assert_eq!(
            report().to_log_line(),
            "window 3 1970-01-01 00:01:00..1970-01-01 00:02:00 n=2 | ensemble \
             rmse=0.790569 mae=0.750000 dir=100.0% (0.7906x naive) | naive rmse=1.000000 \
             mae=1.000000 dir=- | interval 90%: covered 0.500 (static 1.000) | weights naive 0.750, trained/forest 0.250 | pool 1 \
             trained + 1 gens = 3 members | refit gen4 on 300 rows, evicted gen1"
        );
        let mut failed = report();
        failed.refit = Refit::Failed {
            error: "knn: needs at least 5 rows, got 2".to_string(),
        };
        assert!(failed
            .to_log_line()
            .ends_with("| refit failed: knn: needs at least 5 rows, got 2"));
    }

    #[test]
    fn json_round_trip_keeps_empty_scores_as_null() {
        let r = report();
        let json = serde_json::to_string(&r).expect("serialises");
        assert!(json
            .contains(r#"{"label":"gen2/knn","n":0,"rmse":null,"mae":null,"directional":null}"#));
        assert!(json.contains(r#""refit":{"added":{"generation":4,"rows":300,"evicted":[1]}}"#));
        let back: WindowReport = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, r);
    }

    #[test]
    fn scoreboard_rows_compare_with_naive() {
        let mut a = Accum::default();
        a.add(10.0, 10.0, 12.0);
        let row = ScoreRow::new("ensemble", &a, Some(4.0));
        assert_eq!(row.rmse, Some(2.0));
        assert_eq!(row.rmse_vs_naive, Some(0.5));
        assert_eq!(row.directional, None);
        let empty = ScoreRow::new("naive", &Accum::default(), None);
        assert_eq!((empty.rmse, empty.rmse_vs_naive), (None, None));
        let table = scoreboard_table(&[row, empty]);
        assert_eq!(table.lines().count(), 3);
        assert!(table.lines().nth(1).expect("row").contains("0.50000"));
    }
}
