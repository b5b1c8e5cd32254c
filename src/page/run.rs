//! The page of a run's files, for `report` and for `backtest --html`: the forecast, score,
//! weight and coverage charts ([`run_charts`]), the health charts and the scoreboard table
//! ([`score_table`]) of [`html`], and the pooling of the windows' scores they draw
//! ([`scoreboard_rows`], [`cumulative_ratios`], [`weight_shares`]). Generation members
//! (`gen7/knn`) are grouped by kind (`generations/knn`), as on the scoreboard. Builds strings
//! only; the files are read by [`crate::run_files`].

use std::collections::BTreeMap;

use super::html::Page;
use super::svg::{self, Axis, Chart, Mark, Scale};
use crate::ensemble::report::ScoreRow;
use crate::ensemble::ExpertGroup;
use crate::kline::Interval;
use crate::live::events::LogEvent;
use crate::live::predictions::PredictionRow;
use crate::run_files::{RunFiles, Window};
use crate::time;

/// The group of a member label read from `ensemble.jsonl`: `generations/<kind>` for
/// `gen<N>/<kind>`, the label itself otherwise.
pub(crate) fn group(label: &str) -> String {
    ExpertGroup::of_member_label(label).map_or_else(|| label.to_string(), |g| g.to_string())
}

/// The per-window coverage and the number of forecasts behind it: the logged figure and its `n`
/// when logged (`n` 1 when a logged figure comes without it), else the share of the window's
/// forecasts with an interval whose `lower ≤ actual close ≤ upper`, and their number.
pub(crate) fn window_coverage_counted(
    w: &Window,
    forecasts: &[PredictionRow],
    closes: &BTreeMap<i64, f64>,
) -> Option<(f64, f64)> {
    if let Some(c) = w.coverage {
        let n = w.coverage_n.filter(|&n| n > 0).map_or(1.0, |n| n as f64);
        return Some((c, n));
    }
    let (mut n, mut hit) = (0u32, 0u32);
    for f in forecasts.iter().filter(|f| {
        f.target_open_time >= w.first_open_time && f.target_open_time <= w.last_open_time
    }) {
        if let (Some((lo, hi)), Some(&c)) = (f.interval(), closes.get(&f.target_open_time)) {
            n += 1;
            hit += u32::from(lo <= c && c <= hi);
        }
    }
    (n > 0).then(|| (f64::from(hit) / f64::from(n), f64::from(n)))
}

/// Member groups of the ratio chart with a line of their own (the rest share one band).
pub(crate) const BEST_GROUPS: usize = 6;
/// Experts of the weights chart with a line of their own, naive included.
pub(crate) const MAX_EXPERT_LINES: usize = 7;
/// The colour of "the others" in a chart: a grey no palette colour uses.
const OTHERS_COLOR: &str = "#b0b0b0";

/// Points of a line over time: `(open time, value)`.
pub(crate) type TimeSeries = Vec<(i64, f64)>;

/// Windows pooled by the rolling coverage line.
pub(crate) const ROLLING_WINDOWS: usize = 20;

/// Rolling and cumulative coverage from per-window `(time, coverage, n)`: after each window,
/// the share of covered forecasts over the last `k` windows and over all so far (each window
/// weighted by its `n`).
pub(crate) fn rolling_coverage(points: &[(i64, f64, f64)], k: usize) -> (TimeSeries, TimeSeries) {
    let mut rolling = Vec::with_capacity(points.len());
    let mut cumulative = Vec::with_capacity(points.len());
    let (mut hits, mut n) = (0.0, 0.0);
    for (i, &(t, c, m)) in points.iter().enumerate() {
        hits += c * m;
        n += m;
        cumulative.push((t, hits / n));
        let recent = &points[(i + 1).saturating_sub(k.max(1))..=i];
        let rh: f64 = recent.iter().map(|p| p.1 * p.2).sum();
        let rn: f64 = recent.iter().map(|p| p.2).sum();
        rolling.push((t, rh / rn));
    }
    (rolling, cumulative)
}

/// One expert over the run: where it was awake and its weight there.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ExpertLane {
    pub(crate) label: String,
    /// Per window: `(first, last open time, weight)` when awake in it, `None` when asleep.
    pub(crate) windows: Vec<Option<(i64, i64, f64)>>,
    /// Forecasts it was awake for, over the run.
    pub(crate) awake_rounds: u64,
}

/// The experts' lanes from the windows' logged records: an expert was awake in a window when
/// its record gained rounds (a record that shrank was reset by a retrain: its rounds count
/// afresh). Without logged experts (older logs), the member weights grouped by kind stand in: a
/// group counts as awake where it holds weight. Naive first, then by rounds awake, most first.
pub(crate) fn expert_lanes(windows: &[Window]) -> Vec<ExpertLane> {
    let mut lanes: Vec<ExpertLane> = Vec::new();
    let mut last_rounds: BTreeMap<String, u64> = BTreeMap::new();
    for (i, w) in windows.iter().enumerate() {
        let states: Vec<(String, Option<u64>, f64)> = if w.experts.is_empty() {
            let mut grouped: Vec<(String, Option<u64>, f64)> = Vec::new();
            let total: f64 = w.weights.iter().map(|(_, v)| v.max(0.0)).sum();
            for (l, v) in &w.weights {
                let g = group(l);
                let share = if total > 0.0 { v.max(0.0) / total } else { 0.0 };
                match grouped.iter_mut().find(|e| e.0 == g) {
                    Some(e) => e.2 += share,
                    None => grouped.push((g, None, share)),
                }
            }
            grouped
        } else {
            w.experts
                .iter()
                .map(|e| (e.label.clone(), Some(e.rounds), e.weight))
                .collect()
        };
        for (label, rounds, weight) in states {
            let gained = match rounds {
                Some(r) => {
                    let before = last_rounds.insert(label.clone(), r).unwrap_or(0);
                    if r >= before {
                        r - before
                    } else {
                        r
                    }
                }
                None => u64::from(weight > 0.0),
            };
            let k = match lanes.iter().position(|l| l.label == label) {
                Some(k) => k,
                None => {
                    lanes.push(ExpertLane {
                        label: label.clone(),
                        windows: vec![None; windows.len()],
                        awake_rounds: 0,
                    });
                    lanes.len() - 1
                }
            };
            if gained > 0 {
                lanes[k].windows[i] = Some((w.first_open_time, w.last_open_time, weight));
                lanes[k].awake_rounds += gained;
            }
        }
    }
    lanes.sort_by_key(|l| (l.label != "naive", std::cmp::Reverse(l.awake_rounds)));
    lanes
}

/// Groups of the ratio chart drawn as their own line: the `k` with the lowest final RMSE ÷
/// naive (ties by name); the rest are drawn together as one band.
pub(crate) fn best_groups(ratios: &BTreeMap<String, Vec<(i64, f64)>>, k: usize) -> Vec<String> {
    let mut finals: Vec<(&String, f64)> = ratios
        .iter()
        .filter(|(l, _)| l.as_str() != "ensemble")
        .filter_map(|(l, pts)| pts.last().map(|p| (l, p.1)))
        .collect();
    finals.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(b.0)));
    finals.into_iter().take(k).map(|(l, _)| l.clone()).collect()
}

/// Cumulative RMSE ÷ naive per group after each window, on the windows where the group was
/// scored: `sqrt(Σ n·rmse² / Σ n·rmse_naive²)`.
pub(crate) fn cumulative_ratios(windows: &[Window]) -> BTreeMap<String, Vec<(i64, f64)>> {
    let mut sums: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    let mut out: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for w in windows {
        let Some(naive) = w
            .scores
            .iter()
            .find(|s| s.label == "naive")
            .and_then(|s| s.rmse)
        else {
            continue;
        };
        let mut touched: Vec<String> = Vec::new();
        for s in &w.scores {
            let (Some(r), true) = (s.rmse, s.n > 0) else {
                continue;
            };
            if s.label == "naive" {
                continue;
            }
            let g = group(&s.label);
            let e = sums.entry(g.clone()).or_insert((0.0, 0.0));
            e.0 += s.n as f64 * r * r;
            e.1 += s.n as f64 * naive * naive;
            if !touched.contains(&g) {
                touched.push(g);
            }
        }
        for g in touched {
            if let Some(&(a, b)) = sums.get(&g) {
                if b > 0.0 {
                    out.entry(g)
                        .or_default()
                        .push((w.last_open_time, (a / b).sqrt()));
                }
            }
        }
    }
    out
}

/// The scoreboard over all windows: rows per group, pooled.
pub fn scoreboard_rows(windows: &[Window]) -> Vec<ScoreRow> {
    #[derive(Default)]
    struct Acc {
        n: u64,
        sse: f64,
        sae: f64,
        dir: f64,
        naive_sse: f64,
    }
    let mut acc: Vec<(String, Acc)> = Vec::new();
    for w in windows {
        let naive = w
            .scores
            .iter()
            .find(|s| s.label == "naive")
            .and_then(|s| s.rmse);
        for s in &w.scores {
            let Some(r) = s.rmse.filter(|_| s.n > 0) else {
                continue;
            };
            let g = group(&s.label);
            let i = match acc.iter().position(|(l, _)| *l == g) {
                Some(i) => i,
                None => {
                    acc.push((g, Acc::default()));
                    acc.len() - 1
                }
            };
            let a = &mut acc[i].1;
            let nf = s.n as f64;
            // Saturating: `n` comes from the file (a damaged line may hold any count).
            a.n = a.n.saturating_add(s.n);
            a.sse += nf * r * r;
            a.sae += nf * s.mae.unwrap_or(f64::NAN);
            a.dir += nf * s.directional.unwrap_or(f64::NAN);
            a.naive_sse += nf * naive.map_or(f64::NAN, |x| x * x);
        }
    }
    acc.into_iter()
        .map(|(label, a)| {
            let nf = a.n as f64;
            let fin = |v: f64| v.is_finite().then_some(v);
            ScoreRow {
                label,
                n: a.n,
                rmse: fin((a.sse / nf).sqrt()),
                mae: fin(a.sae / nf),
                mape: None,
                directional: fin(a.dir / nf),
                rmse_vs_naive: fin((a.sse / a.naive_sse).sqrt()),
                weight: None,
            }
        })
        .collect()
}

fn time_axis(xs: impl IntoIterator<Item = f64>) -> Axis {
    let (a, b) = svg::extent(xs);
    Axis::new(a, b, Scale::Time, "")
}

/// Cumulative count of `event` in the log, as a step line over wall time.
fn cumulative(log: &[(i64, LogEvent)], event: fn(&LogEvent) -> bool) -> (Vec<f64>, Vec<f64>) {
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    let mut k = 0.0;
    for &(t, _) in log.iter().filter(|(_, e)| event(e)) {
        xs.push(t as f64);
        ys.push(k);
        k += 1.0;
        xs.push(t as f64);
        ys.push(k);
    }
    (xs, ys)
}

/// The interval of a run's klines (1 minute when unknown).
fn interval_of(files: &RunFiles) -> i64 {
    if files.interval_ms > 0 {
        files.interval_ms
    } else {
        Interval::parse("1m").map_or(60_000, |i| i.ms())
    }
}

/// The charts `report` and `backtest --html` share, added to `page`: the last `hours` of
/// closes with the forecast, its interval and the naive forecast; cumulative RMSE ÷ naive of
/// the ensemble and the best member groups (the rest as one band); the experts awake in each
/// window at their weight; the realised coverage, rolling and cumulative, against the nominal
/// level. No chart has more than 8 series or one colour twice.
pub(crate) fn run_charts(page: &mut Page, files: &RunFiles, hours: f64) {
    let closes: BTreeMap<i64, f64> = files.closes.iter().copied().collect();
    forecast_figure(page, files, &closes, hours);
    page.heading("Scores and weights, whole run");
    ratio_figure(page, files);
    weights_figure(page, files);
    coverage_figure(page, files, &closes);
}

/// The first chart: close, forecast, interval and naive over the last `hours`, under its heading.
fn forecast_figure(page: &mut Page, files: &RunFiles, closes: &BTreeMap<i64, f64>, hours: f64) {
    let last = files
        .forecasts
        .last()
        .map(|f| f.target_open_time)
        .or_else(|| files.closes.last().map(|c| c.0))
        .unwrap_or(0);
    // Saturating: the times come from the files (a damaged row may hold any number).
    let from = last.saturating_sub((hours * 3_600_000.0) as i64);
    let recent: Vec<&PredictionRow> = files
        .forecasts
        .iter()
        .filter(|f| f.target_open_time > from)
        .collect();
    let actual: Vec<(i64, f64)> = closes
        .range(from + 1..=last)
        .map(|(&t, &c)| (t, c))
        .collect();
    let with_interval = recent.iter().filter(|f| f.interval().is_some()).count();
    page.heading(&format!("The last {hours} hours"));
    page.figure(
        "Close, ensemble forecast and naive forecast",
        &forecast_chart(&recent, &actual).render(),
        &format!(
            "{} forecasts of the next close (each drawn at the kline it forecasts) and {} closes, \
             up to {} UTC; {} with a prediction interval.",
            recent.len(),
            actual.len(),
            time::format_ms(last),
            with_interval
        ),
    );
}

/// The forecast chart: the interval band (where forecasts have one), the actual closes, and
/// the naive and ensemble forecasts drawn at the klines they forecast.
fn forecast_chart(recent: &[&PredictionRow], actual: &[(i64, f64)]) -> Chart {
    let xs_f: Vec<f64> = recent.iter().map(|f| f.target_open_time as f64).collect();
    let values = actual
        .iter()
        .map(|a| a.1)
        .chain(recent.iter().map(|f| f.forecast))
        .chain(recent.iter().filter_map(|f| f.interval().map(|i| i.0)))
        .chain(recent.iter().filter_map(|f| f.interval().map(|i| i.1)));
    let mut c = Chart::new(
        "forecast",
        time_axis(
            xs_f.iter()
                .copied()
                .chain(actual.iter().map(|a| a.0 as f64)),
        ),
        Axis::fit(values, "price"),
    );
    let with_interval: Vec<&&PredictionRow> =
        recent.iter().filter(|f| f.interval().is_some()).collect();
    if !with_interval.is_empty() {
        c.add(Mark::Band {
            label: "interval".to_string(),
            color: svg::color(3).to_string(),
            xs: with_interval
                .iter()
                .map(|f| f.target_open_time as f64)
                .collect(),
            lo: with_interval
                .iter()
                .map(|f| f.interval().map_or(f64::NAN, |i| i.0))
                .collect(),
            hi: with_interval
                .iter()
                .map(|f| f.interval().map_or(f64::NAN, |i| i.1))
                .collect(),
            opacity: 0.2,
        });
    }
    c.add(Mark::line(
        "close",
        "#222",
        actual.iter().map(|a| a.0 as f64).collect(),
        actual.iter().map(|a| a.1).collect(),
    ));
    c.add(Mark::Line {
        label: "naive".to_string(),
        color: svg::color(9).to_string(),
        xs: xs_f.clone(),
        ys: recent.iter().map(|f| f.naive).collect(),
        width: 1.2,
        dashed: true,
    });
    c.add(Mark::line(
        "forecast",
        svg::color(0),
        xs_f,
        recent.iter().map(|f| f.forecast).collect(),
    ));
    c
}

/// A line through `(time, value)` points.
fn time_line(label: &str, color: &str, pts: &[(i64, f64)], width: f64, dashed: bool) -> Mark {
    Mark::Line {
        label: label.to_string(),
        color: color.to_string(),
        xs: pts.iter().map(|p| p.0 as f64).collect(),
        ys: pts.iter().map(|p| p.1).collect(),
        width,
        dashed,
    }
}

/// Cumulative RMSE ÷ naive: the ensemble, the best groups by their final ratio, and the
/// other groups together as one band (at most 8 series, no colour twice).
fn ratio_figure(page: &mut Page, files: &RunFiles) {
    let ratios = cumulative_ratios(&files.windows);
    let best = best_groups(&ratios, BEST_GROUPS);
    let all = ratios.values().flatten();
    let mut c = Chart::new(
        "ratio",
        time_axis(all.clone().map(|p| p.0 as f64)),
        Axis::fit(all.map(|p| p.1).chain([1.0]), "RMSE / naive"),
    );
    c.add(Mark::Rule {
        label: String::new(),
        color: "#888".to_string(),
        y: 1.0,
        dashed: true,
    });
    let others: Vec<&String> = ratios
        .keys()
        .filter(|l| l.as_str() != "ensemble" && !best.contains(l))
        .collect();
    if !others.is_empty() {
        c.add(others_band(&ratios, &others));
    }
    for (k, label) in best.iter().enumerate() {
        c.add(time_line(label, svg::color(k), &ratios[label], 1.3, false));
    }
    if let Some(pts) = ratios.get("ensemble") {
        c.add(time_line("ensemble", "#000", pts, 2.5, false));
    }
    let others_note = if others.is_empty() {
        String::new()
    } else {
        format!(
            "; the grey band spans the other {} ({})",
            others.len(),
            others
                .iter()
                .map(|l| l.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    page.figure(
        "Cumulative RMSE ÷ naive",
        &c.render(),
        &format!(
            "After each window, the RMSE of all forecasts so far divided by the naive forecast's \
             RMSE on the same klines; below 1 beats naive. Generations are pooled by kind. The \
             {} groups with the lowest final ratio have their own line{others_note}.",
            best.len(),
        ),
    );
}

/// The grey band of the ratio chart: at each time, the lowest and highest ratio of `others`.
fn others_band(ratios: &BTreeMap<String, Vec<(i64, f64)>>, others: &[&String]) -> Mark {
    let mut envelope: BTreeMap<i64, (f64, f64)> = BTreeMap::new();
    for label in others {
        for &(t, v) in &ratios[*label] {
            let e = envelope.entry(t).or_insert((v, v));
            *e = (e.0.min(v), e.1.max(v));
        }
    }
    Mark::Band {
        label: format!("{} others: range", others.len()),
        color: OTHERS_COLOR.to_string(),
        xs: envelope.keys().map(|&t| t as f64).collect(),
        lo: envelope.values().map(|e| e.0).collect(),
        hi: envelope.values().map(|e| e.1).collect(),
        opacity: 0.45,
    }
}

/// The points of a weights-chart line over `n` windows: a flat segment across each window
/// where `at` gives `(first, last open time, weight)`, a break where it gives `None`.
fn lane_points(n: usize, at: impl Fn(usize) -> Option<(i64, i64, f64)>) -> (Vec<f64>, Vec<f64>) {
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for i in 0..n {
        match at(i) {
            Some((a, b, w)) => {
                xs.extend([a as f64, b as f64]);
                ys.extend([w, w]);
            }
            None => {
                xs.push(f64::NAN);
                ys.push(f64::NAN);
            }
        }
    }
    (xs, ys)
}

/// Which experts were awake, and their weight: a line per expert for the most awake
/// (naive first), the rest summed as one grey line.
fn weights_figure(page: &mut Page, files: &RunFiles) {
    let lanes = expert_lanes(&files.windows);
    let awake: Vec<&ExpertLane> = lanes.iter().filter(|l| l.awake_rounds > 0).collect();
    let (shown, rest) = awake.split_at(awake.len().min(MAX_EXPERT_LINES));
    let n = files.windows.len();
    let mut c = Chart::new(
        "weights",
        time_axis(
            files
                .windows
                .iter()
                .flat_map(|w| [w.first_open_time as f64, w.last_open_time as f64]),
        ),
        // Headroom above 1, so that a weight of 1 is not hidden by the frame.
        Axis::new(0.0, 1.06, Scale::Linear, "weight while awake"),
    );
    let mut k = 0;
    for lane in shown {
        let (xs, ys) = lane_points(n, |i| lane.windows[i]);
        let color = if lane.label == "naive" {
            svg::color(9)
        } else {
            k += 1;
            svg::color(k - 1)
        };
        c.add(Mark::Line {
            label: lane.label.clone(),
            color: color.to_string(),
            xs,
            ys,
            width: if lane.label == "naive" { 2.5 } else { 1.6 },
            dashed: false,
        });
    }
    if !rest.is_empty() {
        let (xs, ys) = lane_points(n, |i| {
            let awake: Vec<(i64, i64, f64)> = rest.iter().filter_map(|l| l.windows[i]).collect();
            let (a, b, _) = *awake.first()?;
            Some((a, b, awake.iter().map(|x| x.2).sum()))
        });
        c.add(Mark::Line {
            label: format!("{} others awake: sum", rest.len()),
            color: OTHERS_COLOR.to_string(),
            xs,
            ys,
            width: 1.6,
            dashed: false,
        });
    }
    page.figure(
        "Experts awake, and their weight",
        &c.render(),
        &weights_caption(&lanes, &awake),
    );
}

/// The caption of the weights chart: what a line means, the experts awake at least once with
/// their share of the forecasts, and how many never woke.
fn weights_caption(lanes: &[ExpertLane], awake: &[&ExpertLane]) -> String {
    let forecasts: u64 = lanes
        .iter()
        .find(|l| l.label == "naive")
        .map_or(0, |l| l.awake_rounds);
    let experts_awake: Vec<String> = awake
        .iter()
        .filter(|l| l.label != "naive")
        .map(|l| {
            if forecasts > 0 {
                format!(
                    "{} ({:.0} % of forecasts)",
                    l.label,
                    100.0 * l.awake_rounds as f64 / forecasts as f64
                )
            } else {
                l.label.clone()
            }
        })
        .collect();
    let asleep = lanes.len() - awake.len();
    format!(
        "A line is an expert in the windows where it was awake (its forecasts beat naive's on \
         the same klines by its gate's margin), drawn at its ML-Poly weight after the window; \
         a gap is a window asleep. Naive is always awake. {}{}",
        if experts_awake.is_empty() {
            "No other expert was awake in any window: the ensemble forecast was the naive \
             one throughout."
                .to_string()
        } else {
            format!("Awake at least once: {}.", experts_awake.join(", "))
        },
        if asleep > 0 {
            format!(" Never awake: {asleep} experts.")
        } else {
            String::new()
        }
    )
}

/// Coverage: rolling over the last windows and cumulative, against the nominal level.
fn coverage_figure(page: &mut Page, files: &RunFiles, closes: &BTreeMap<i64, f64>) {
    let points: Vec<(i64, f64, f64)> = files
        .windows
        .iter()
        .filter_map(|w| {
            window_coverage_counted(w, &files.forecasts, closes)
                .map(|(c, n)| (w.last_open_time, c, n))
        })
        .collect();
    let (rolling, cumulative) = rolling_coverage(&points, ROLLING_WINDOWS);
    let nominal = files.windows.iter().rev().find_map(|w| w.nominal);
    let (lo, hi) = svg::extent(
        rolling
            .iter()
            .chain(&cumulative)
            .map(|p| p.1)
            .chain(nominal),
    );
    let pad = ((hi - lo) * 0.1).max(0.01);
    let mut c = Chart::new(
        "coverage",
        time_axis(points.iter().map(|p| p.0 as f64)),
        Axis::new(
            (lo - pad).max(0.0),
            (hi + pad).min(1.0),
            Scale::Linear,
            "coverage",
        ),
    );
    if let Some(nominal) = nominal {
        c.add(Mark::Rule {
            label: format!("nominal {:.0} %", 100.0 * nominal),
            color: "#888".to_string(),
            y: nominal,
            dashed: true,
        });
    }
    // The whole-run line dashed and below, so that the rolling one shows where they agree.
    c.add(time_line(
        "whole run",
        svg::color(3),
        &cumulative,
        2.2,
        true,
    ));
    let rolling_label = format!("last {ROLLING_WINDOWS} windows");
    c.add(time_line(
        &rolling_label,
        svg::color(0),
        &rolling,
        1.6,
        false,
    ));
    let summary = match (cumulative.last(), nominal) {
        (None, _) => "no interval yet".to_string(),
        (Some(&(_, c)), Some(nominal)) => format!(
            "whole run {:.2} % against the nominal {:.0} %",
            100.0 * c,
            100.0 * nominal
        ),
        (Some(&(_, c)), None) => format!("whole run {:.2} %", 100.0 * c),
    };
    page.figure(
        "Realised interval coverage",
        &c.render(),
        &format!(
            "After each window, the share of forecasts whose close fell inside its interval, over \
             the last {ROLLING_WINDOWS} windows and over the whole run; {} windows with \
             intervals; {summary}.",
            points.len()
        ),
    );
}

/// Builds the page for a run's files: the last `hours` of forecasts, and the whole run's
/// scores, weights, coverage and health. `title` names the source.
pub fn html(files: &RunFiles, hours: f64, title: &str) -> String {
    let mut page = Page::new(
        &format!("{}: forecasts and health", files.symbol),
        &format!(
            "{title}: {} forecasts, {} windows; store {}",
            files.forecasts.len(),
            files.windows.len(),
            files.store_path.display()
        ),
    );
    run_charts(&mut page, files, hours);
    page.heading("Health");
    klines_per_hour_figure(&mut page, files);
    events_figure(&mut page, files);
    refit_figure(&mut page, files);
    memory_figure(&mut page, files);
    page.heading("Scoreboard");
    score_table(&mut page, "scoreboard", &scoreboard_rows(&files.windows));
    page.finish()
}

/// Health: the klines scored per wall-clock hour, against the full-speed rate.
fn klines_per_hour_figure(page: &mut Page, files: &RunFiles) {
    let mut per_hour: BTreeMap<i64, f64> = BTreeMap::new();
    for w in &files.windows {
        if let (Some(t), Some(e)) = (w.logged_at, w.scores.iter().find(|s| s.label == "ensemble")) {
            *per_hour
                .entry(t.div_euclid(3_600_000) * 3_600_000)
                .or_default() += e.n as f64;
        }
    }
    let mut c = Chart::new(
        "klines-per-hour",
        time_axis(
            per_hour
                .keys()
                .map(|&t| t as f64)
                .chain(per_hour.keys().map(|&t| (t + 3_600_000) as f64)),
        ),
        Axis::fit(per_hour.values().copied().chain([0.0]), "klines"),
    );
    c.add(Mark::Bars {
        label: "klines scored per hour".to_string(),
        color: svg::color(0).to_string(),
        xs: per_hour.keys().map(|&t| (t + 1_800_000) as f64).collect(),
        ys: per_hour.values().copied().collect(),
        width: 3_600_000.0,
    });
    page.figure(
        "Klines per hour (wall clock)",
        &c.render(),
        &format!(
            "Expected at full speed: {} per hour.",
            3_600_000 / interval_of(files).max(1)
        ),
    );
}

/// Health: connects, gap fills and errors of `stream.log`, each as a cumulative count.
fn events_figure(page: &mut Page, files: &RunFiles) {
    let (cx, cy) = cumulative(&files.log, |e| matches!(e, LogEvent::Connected { .. }));
    let (gx, gy) = cumulative(&files.log, |e| *e == LogEvent::GapFill);
    let (ex, ey) = cumulative(&files.log, |e| e.is_error());
    let mut c = Chart::new(
        "events",
        time_axis(files.log.iter().map(|e| e.0 as f64)),
        Axis::fit(
            cy.iter().chain(&gy).chain(&ey).copied().chain([0.0, 1.0]),
            "count",
        ),
    );
    c.add(Mark::line("connects", svg::color(0), cx, cy));
    c.add(Mark::line("gap fills", svg::color(2), gx, gy));
    c.add(Mark::line("errors", svg::color(1), ex, ey));
    page.figure(
        "Connects, gap fills and errors (cumulative)",
        &c.render(),
        "From stream.log: every connect after the first is a reconnect.",
    );
}

/// A chart of one line over the windows' log times, from 0 up.
fn logged_chart(id: &str, unit: &str, label: &str, color: &str, pts: &[(f64, f64)]) -> Chart {
    let mut c = Chart::new(
        id,
        time_axis(pts.iter().map(|p| p.0)),
        Axis::fit(pts.iter().map(|p| p.1).chain([0.0]), unit),
    );
    c.add(Mark::line(
        label,
        color,
        pts.iter().map(|p| p.0).collect(),
        pts.iter().map(|p| p.1).collect(),
    ));
    c
}

/// Health: the refit and save time of every window.
fn refit_figure(page: &mut Page, files: &RunFiles) {
    let refit: Vec<(f64, f64)> = files
        .windows
        .iter()
        .filter_map(|w| Some((w.logged_at? as f64, w.refit_seconds?)))
        .collect();
    let c = logged_chart(
        "refit",
        "seconds",
        "refit + save per window",
        svg::color(3),
        &refit,
    );
    page.figure("Refit time per window", &c.render(), "");
}

/// Health: the stream's peak resident memory after every window.
fn memory_figure(page: &mut Page, files: &RunFiles) {
    let mem: Vec<(f64, f64)> = files
        .windows
        .iter()
        .filter_map(|w| Some((w.logged_at? as f64, w.peak_rss_kib? / 1024.0)))
        .collect();
    let c = logged_chart("memory", "MiB", "peak resident memory", svg::color(4), &mem);
    page.figure(
        "Peak memory",
        &c.render(),
        &match mem.iter().map(|p| p.1).reduce(f64::max) {
            Some(m) => format!("VmHWM of the stream process; at most {m:.1} MiB."),
            None => "not logged by this stream".to_string(),
        },
    );
}

/// A scoreboard as a page table: n, RMSE, MAE, directional accuracy and RMSE ÷ naive per row.
pub(crate) fn score_table(page: &mut Page, id: &str, rows: &[ScoreRow]) {
    page.table(
        id,
        &["forecaster", "n", "rmse", "mae", "dir %", "rmse / naive"],
        &rows
            .iter()
            .map(|r| {
                vec![
                    r.label.clone(),
                    r.n.to_string(),
                    super::num(r.rmse.unwrap_or(f64::NAN)),
                    super::num(r.mae.unwrap_or(f64::NAN)),
                    r.directional
                        .map_or("-".to_string(), |d| format!("{:.2}", 100.0 * d)),
                    r.rmse_vs_naive
                        .map_or("-".to_string(), |v| format!("{v:.5}")),
                ]
            })
            .collect::<Vec<_>>(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_generations_by_kind() {
        assert_eq!(group("gen12/knn"), "generations/knn");
        assert_eq!(group("trained/knn"), "trained/knn");
        assert_eq!(group("general/x"), "general/x");
    }

    use crate::run_files::{ExpertState, Score};

    fn window(t: i64, scores: &[(&str, u64, f64)]) -> Window {
        Window {
            first_open_time: t,
            last_open_time: t,
            logged_at: None,
            scores: scores
                .iter()
                .map(|&(l, n, r)| Score {
                    label: l.to_string(),
                    n,
                    rmse: Some(r),
                    mae: Some(r),
                    directional: Some(0.5),
                })
                .collect(),
            weights: vec![
                ("naive".into(), 0.75),
                ("gen1/knn".into(), 0.125),
                ("gen2/knn".into(), 0.125),
            ],
            refit_seconds: None,
            peak_rss_kib: None,
            coverage: None,
            coverage_n: None,
            nominal: None,
            experts: Vec::new(),
        }
    }

    #[test]
    fn cumulative_ratio_pools_squared_errors() {
        let w = [
            window(1, &[("ensemble", 10, 1.0), ("naive", 10, 2.0)]),
            window(
                2,
                &[
                    ("ensemble", 10, 3.0),
                    ("naive", 10, 2.0),
                    ("gen1/knn", 10, 4.0),
                ],
            ),
        ];
        let r = cumulative_ratios(&w);
        assert_eq!(r["ensemble"], vec![(1, 0.5), (2, (100.0f64 / 80.0).sqrt())]);
        assert_eq!(r["generations/knn"], vec![(2, 2.0)]);
        let rows = scoreboard_rows(&w);
        assert_eq!(rows[0].label, "ensemble");
        assert_eq!(rows[0].rmse, Some(5f64.sqrt()));
        assert_eq!(rows[1].rmse_vs_naive, Some(1.0));
    }

    #[test]
    fn coverage_from_intervals_when_not_logged() {
        let w = window(60_000, &[]);
        let f = [
            PredictionRow {
                target_open_time: 60_000,
                forecast: 1.0,
                naive: 1.0,
                ensemble_version: 1,
                made_after_open_time: 0,
                lower: 0.5,
                upper: 1.5,
            },
            PredictionRow {
                target_open_time: 120_000,
                forecast: 1.0,
                naive: 1.0,
                ensemble_version: 1,
                made_after_open_time: 60_000,
                lower: 0.5,
                upper: 1.5,
            },
        ];
        let closes: BTreeMap<i64, f64> = [(60_000, 2.0), (120_000, 1.0)].into_iter().collect();
        assert_eq!(window_coverage_counted(&w, &f, &closes), Some((0.0, 1.0)));
        let mut w2 = w.clone();
        w2.last_open_time = 120_000;
        assert_eq!(window_coverage_counted(&w2, &f, &closes), Some((0.5, 2.0)));
        w2.coverage = Some(0.9);
        assert_eq!(window_coverage_counted(&w2, &f, &closes), Some((0.9, 1.0)));
        w2.coverage_n = Some(15);
        assert_eq!(window_coverage_counted(&w2, &f, &closes), Some((0.9, 15.0)));
    }

    #[test]
    fn rolling_and_cumulative_coverage_pool_by_count() {
        let pts = [(1, 1.0, 10.0), (2, 0.5, 10.0), (3, 0.0, 20.0)];
        let (rolling, cumulative) = rolling_coverage(&pts, 2);
        assert_eq!(rolling, vec![(1, 1.0), (2, 0.75), (3, 5.0 / 30.0)]);
        assert_eq!(cumulative, vec![(1, 1.0), (2, 0.75), (3, 15.0 / 40.0)]);
    }

    #[test]
    fn expert_lanes_mark_the_windows_an_expert_was_awake() {
        let expert = |label: &str, rounds: u64, weight: f64| ExpertState {
            label: label.into(),
            rounds,
            weight,
        };
        let mut w = [window(0, &[]), window(0, &[]), window(0, &[])];
        for (i, w) in w.iter_mut().enumerate() {
            (w.first_open_time, w.last_open_time) = (100 * i as i64, 100 * i as i64 + 90);
        }
        w[0].experts = vec![expert("naive", 15, 1.0), expert("trained/linear", 0, 0.0)];
        w[1].experts = vec![expert("naive", 30, 0.4), expert("trained/linear", 10, 0.6)];
        // A retrain reset linear's record: 5 rounds afresh count as awake.
        w[2].experts = vec![expert("naive", 45, 0.9), expert("trained/linear", 5, 0.1)];
        let lanes = expert_lanes(&w);
        assert_eq!(lanes.len(), 2);
        assert_eq!(lanes[0].label, "naive");
        assert_eq!(lanes[0].awake_rounds, 45);
        assert_eq!(
            lanes[0].windows,
            vec![
                Some((0, 90, 1.0)),
                Some((100, 190, 0.4)),
                Some((200, 290, 0.9))
            ]
        );
        assert_eq!(lanes[1].awake_rounds, 15);
        assert_eq!(
            lanes[1].windows,
            vec![None, Some((100, 190, 0.6)), Some((200, 290, 0.1))]
        );
        // Without logged experts, the grouped member weights stand in.
        let lanes = expert_lanes(&[window(7, &[])]);
        assert_eq!(lanes[0].label, "naive");
        assert_eq!(lanes[0].windows, vec![Some((7, 7, 0.75))]);
        assert_eq!(lanes[1].label, "generations/knn");
        assert_eq!(lanes[1].windows, vec![Some((7, 7, 0.25))]);
    }

    #[test]
    fn best_groups_are_the_lowest_final_ratios() {
        let r: BTreeMap<String, Vec<(i64, f64)>> = [
            ("ensemble", 0.5),
            ("a", 1.2),
            ("b", 0.9),
            ("c", 1.0),
            ("d", 0.9),
        ]
        .into_iter()
        .map(|(l, v)| (l.to_string(), vec![(0, 5.0), (1, v)]))
        .collect();
        assert_eq!(best_groups(&r, 3), ["b", "d", "c"]);
        assert_eq!(best_groups(&r, 9).len(), 4);
    }
}
