//! A small SVG plotter: linear or logarithmic value axes, UTC time axes, ticks at round numbers,
//! lines, bands (filled areas between two curves), bars, horizontal rules and a
//! legend. Pure: it turns numbers into a string of well-formed SVG (every attribute value and
//! text node escaped with [`escape`]); no I/O, no clock.
//!
//! Every chart is drawn in a fixed `viewBox` (user units), so a page that sets
//! `svg { width: 100%; height: auto }` scales it to any screen. The root `<svg>` and each mark's
//! `<g>` carry `data-*` attributes with the values they were drawn from (axis ranges; a mark's
//! label, point count and extreme values), so tests can check a chart against its data without
//! inverting pixel coordinates.

use std::fmt::Write as _;

use crate::time;

/// Escapes text for XML content and attribute values (`& < > " '`).
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters other than tab/newline are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// The palette: distinguishable on white, in print and for most colour-blind readers.
pub(crate) const PALETTE: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#bcbd22", "#7f7f7f",
];

/// Colour `i` of [`PALETTE`], cycling.
pub(crate) fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// How an axis maps its values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scale {
    Linear,
    /// Base-10 logarithmic; the range must be positive.
    Log,
    /// Milliseconds since the Unix epoch, labelled in UTC.
    Time,
}

/// One axis: its range, scale and label.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Axis {
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) scale: Scale,
    pub(crate) label: String,
}

impl Axis {
    pub(crate) fn new(min: f64, max: f64, scale: Scale, label: &str) -> Axis {
        let (mut min, mut max) = if min.is_finite() && max.is_finite() && min <= max {
            (min, max)
        } else {
            (0.0, 1.0)
        };
        if scale == Scale::Log {
            min = min.max(f64::MIN_POSITIVE);
            max = max.max(min);
        }
        if max - min <= 0.0 {
            let pad = if min == 0.0 { 1.0 } else { min.abs() * 0.01 };
            if scale == Scale::Log {
                max = min * 10.0;
            } else {
                min -= pad;
                max += pad;
            }
        }
        Axis {
            min,
            max,
            scale,
            label: label.to_string(),
        }
    }

    /// A linear axis covering `values` with a 4 % margin (never crossing zero when the data
    /// does not), or `[0, 1]` when there are none.
    pub(crate) fn fit(values: impl IntoIterator<Item = f64>, label: &str) -> Axis {
        let (lo, hi) = extent(values);
        let pad = (hi - lo) * 0.04;
        let lo2 = if lo >= 0.0 && lo - pad < 0.0 {
            0.0
        } else {
            lo - pad
        };
        Axis::new(lo2, hi + pad, Scale::Linear, label)
    }

    /// Position of `v` in `[0, 1]` along the axis.
    fn frac(&self, v: f64) -> f64 {
        match self.scale {
            Scale::Log => {
                let v = v.max(self.min);
                (v.log10() - self.min.log10()) / (self.max.log10() - self.min.log10())
            }
            _ => (v - self.min) / (self.max - self.min),
        }
    }

    /// Ticks inside the range: value and label.
    pub(crate) fn ticks(&self, target: usize) -> Vec<(f64, String)> {
        match self.scale {
            Scale::Linear => nice_ticks(self.min, self.max, target),
            Scale::Log => log_ticks(self.min, self.max),
            Scale::Time => time_ticks(self.min as i64, self.max as i64, target)
                .into_iter()
                .map(|(t, l)| (t as f64, l))
                .collect(),
        }
    }
}

/// Smallest and largest finite value, or `(0, 1)` when there is none.
pub(crate) fn extent(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for v in values.into_iter().filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        (0.0, 1.0)
    } else {
        (lo, hi)
    }
}

/// The step of about `target` ticks over `span`: 1, 2 or 5 times a power of ten.
pub(crate) fn nice_step(span: f64, target: usize) -> f64 {
    let raw = span / target.max(1) as f64;
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// Ticks at multiples of a round step inside `[min, max]`, labelled with just enough decimals.
pub(crate) fn nice_ticks(min: f64, max: f64, target: usize) -> Vec<(f64, String)> {
    let step = nice_step(max - min, target);
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    let first = (min / step).ceil() as i64;
    let last = (max / step).floor() as i64;
    (first..=last)
        .take(100)
        .map(|i| {
            let v = i as f64 * step;
            // -0.0 prints as "-0".
            let v = if v == 0.0 { 0.0 } else { v };
            (v, format_tick(v, decimals))
        })
        .collect()
}

fn format_tick(v: f64, decimals: usize) -> String {
    let a = v.abs();
    if a >= 1e6 && decimals == 0 {
        let m = v / 1e6;
        return if (m - m.round()).abs() < 1e-9 {
            format!("{m:.0}M")
        } else {
            format!("{m:.1}M")
        };
    }
    format!("{v:.decimals$}")
}

/// Powers of ten inside `[min, max]` (and 2× and 5× when there are few).
pub(crate) fn log_ticks(min: f64, max: f64) -> Vec<(f64, String)> {
    let lo = min.log10().floor() as i32;
    let hi = max.log10().ceil() as i32;
    let few = hi - lo <= 2;
    let mut out = Vec::new();
    for e in lo..=hi {
        for m in [1.0, 2.0, 5.0] {
            if m != 1.0 && !few {
                continue;
            }
            let v = m * 10f64.powi(e);
            if v >= min * (1.0 - 1e-9) && v <= max * (1.0 + 1e-9) {
                let label = if e >= 0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.*}", (-e) as usize)
                };
                out.push((v, label));
            }
        }
    }
    out
}

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// UTC ticks at round times (minutes, hours, days, months or years) inside `[min, max]` ms.
/// Labels: `HH:MM` within a day, `MM-DD HH:MM` across days, `YYYY-MM-DD` for day steps,
/// `YYYY-MM` for month steps.
pub(crate) fn time_ticks(min: i64, max: i64, target: usize) -> Vec<(i64, String)> {
    let span = (max - min).max(1);
    let target = target.max(2) as i64;
    const STEPS: [i64; 14] = [
        MINUTE,
        5 * MINUTE,
        15 * MINUTE,
        30 * MINUTE,
        HOUR,
        2 * HOUR,
        3 * HOUR,
        6 * HOUR,
        12 * HOUR,
        DAY,
        2 * DAY,
        7 * DAY,
        14 * DAY,
        0, // sentinel: months
    ];
    let step = STEPS
        .iter()
        .copied()
        .find(|&s| s > 0 && span / s <= target)
        .unwrap_or(0);
    if step == 0 {
        return month_ticks(min, max, target);
    }
    let multi_day = time::format_ms(min).get(..10) != time::format_ms(max).get(..10);
    let first = min.div_euclid(step) * step + if min.rem_euclid(step) == 0 { 0 } else { step };
    let mut out = Vec::new();
    let mut t = first;
    while t <= max && out.len() < 200 {
        let full = time::format_ms(t);
        let label = if step >= DAY {
            full.get(..10).unwrap_or_default().to_string()
        } else if multi_day {
            full.get(5..16).unwrap_or_default().to_string()
        } else {
            full.get(11..16).unwrap_or_default().to_string()
        };
        out.push((t, label));
        t += step;
    }
    out
}

fn month_ticks(min: i64, max: i64, target: i64) -> Vec<(i64, String)> {
    let (y0, m0, _) = time::civil_from_days(min.div_euclid(DAY));
    let months = (max - min) / (30 * DAY) + 1;
    let every = [1i64, 2, 3, 6, 12, 24, 60]
        .into_iter()
        .find(|&k| months / k <= target)
        .unwrap_or(120);
    let mut out = Vec::new();
    let mut index = y0 * 12 + i64::from(m0) - 1;
    loop {
        let (y, m) = (index.div_euclid(12), index.rem_euclid(12) as u32 + 1);
        let t = time::days_from_civil(y, m, 1) * DAY;
        if t > max || out.len() > 200 {
            break;
        }
        if t >= min && (index % every) == 0 {
            let label = if every >= 12 {
                format!("{y}")
            } else {
                format!("{y}-{m:02}")
            };
            out.push((t, label));
        }
        index += 1;
    }
    out
}

/// Per pixel column, the first x, the smallest and largest y of the points falling in it:
/// a million points reduce to `columns` triples, and the drawn extremes are the data's own.
/// `xs` must be ascending.
pub(crate) fn min_max_columns(xs: &[f64], ys: &[f64], columns: usize) -> Vec<(f64, f64, f64)> {
    let n = xs.len().min(ys.len());
    if n == 0 || columns == 0 {
        return Vec::new();
    }
    if n <= columns {
        return (0..n).map(|i| (xs[i], ys[i], ys[i])).collect();
    }
    let (x0, x1) = (xs[0], xs[n - 1]);
    let width = (x1 - x0).max(f64::MIN_POSITIVE);
    let mut out: Vec<(f64, f64, f64)> = Vec::with_capacity(columns);
    let mut current: Option<(usize, f64, f64, f64)> = None;
    for i in 0..n {
        let col = (((xs[i] - x0) / width) * columns as f64).floor() as usize;
        let col = col.min(columns - 1);
        match &mut current {
            Some((c, _, lo, hi)) if *c == col => {
                *lo = lo.min(ys[i]);
                *hi = hi.max(ys[i]);
            }
            _ => {
                if let Some((_, x, lo, hi)) = current.take() {
                    out.push((x, lo, hi));
                }
                current = Some((col, xs[i], ys[i], ys[i]));
            }
        }
    }
    if let Some((_, x, lo, hi)) = current {
        out.push((x, lo, hi));
    }
    out
}

/// What a chart draws.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Mark {
    /// A polyline; non-finite y values break it.
    Line {
        label: String,
        color: String,
        xs: Vec<f64>,
        ys: Vec<f64>,
        width: f64,
        dashed: bool,
    },
    /// The area between `lo` and `hi` (a min/max envelope, an interval).
    Band {
        label: String,
        color: String,
        xs: Vec<f64>,
        lo: Vec<f64>,
        hi: Vec<f64>,
        opacity: f64,
    },
    /// Bars from the axis floor (0, or the axis minimum on a log axis) to `ys`, centred on
    /// `xs`, each `width` x-units wide.
    Bars {
        label: String,
        color: String,
        xs: Vec<f64>,
        ys: Vec<f64>,
        width: f64,
    },
    /// A horizontal rule at `y` across the plot.
    Rule {
        label: String,
        color: String,
        y: f64,
        dashed: bool,
    },
}

impl Mark {
    pub(crate) fn line(label: &str, color: &str, xs: Vec<f64>, ys: Vec<f64>) -> Mark {
        Mark::Line {
            label: label.to_string(),
            color: color.to_string(),
            xs,
            ys,
            width: 1.5,
            dashed: false,
        }
    }

    fn label(&self) -> &str {
        match self {
            Mark::Line { label, .. }
            | Mark::Band { label, .. }
            | Mark::Bars { label, .. }
            | Mark::Rule { label, .. } => label,
        }
    }

    fn color(&self) -> &str {
        match self {
            Mark::Line { color, .. }
            | Mark::Band { color, .. }
            | Mark::Bars { color, .. }
            | Mark::Rule { color, .. } => color,
        }
    }
}

/// A chart: two axes and the marks drawn on them, in a `width` × `height` viewBox.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Chart {
    pub(crate) x: Axis,
    pub(crate) y: Axis,
    pub(crate) marks: Vec<Mark>,
    pub(crate) width: f64,
    pub(crate) height: f64,
    /// Optional `id` attribute of the root element (tests find charts by it).
    pub(crate) id: String,
}

/// Font size of tick labels and the legend, in viewBox units.
const FONT: f64 = 13.0;
const LEFT: f64 = 62.0;
const RIGHT: f64 = 14.0;
const BOTTOM: f64 = 40.0;

impl Chart {
    pub(crate) fn new(id: &str, x: Axis, y: Axis) -> Chart {
        Chart {
            x,
            y,
            marks: Vec::new(),
            width: 640.0,
            height: 300.0,
            id: id.to_string(),
        }
    }

    pub(crate) fn add(&mut self, mark: Mark) -> &mut Chart {
        self.marks.push(mark);
        self
    }

    /// The legend's rows: labels laid out left to right, wrapping at the plot's width.
    fn legend_rows(&self) -> Vec<Vec<(usize, f64)>> {
        let avail = self.width - LEFT - RIGHT;
        let mut rows: Vec<Vec<(usize, f64)>> = vec![Vec::new()];
        let mut x = 0.0;
        for (i, m) in self.marks.iter().enumerate() {
            if m.label().is_empty() {
                continue;
            }
            let w = 22.0 + m.label().chars().count() as f64 * FONT * 0.6 + 14.0;
            if x + w > avail && x > 0.0 {
                rows.push(Vec::new());
                x = 0.0;
            }
            if let Some(row) = rows.last_mut() {
                row.push((i, x));
            }
            x += w;
        }
        rows.retain(|r| !r.is_empty());
        rows
    }

    /// The SVG element: the grid and axes, the marks clipped to the plot, the legend on top.
    pub(crate) fn render(&self) -> String {
        let legend = self.legend_rows();
        let top = 10.0 + legend.len() as f64 * (FONT + 6.0);
        let (w, h) = (self.width, self.height + top - 10.0);
        let frame = Frame {
            x: &self.x,
            y: &self.y,
            px0: LEFT,
            px1: w - RIGHT,
            py0: h - BOTTOM,
            py1: top,
        };
        let mut s = String::new();
        let _ = write!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w:.0} {h:.0}\" \
             id=\"{}\" data-x-min=\"{}\" data-x-max=\"{}\" data-y-min=\"{}\" data-y-max=\"{}\" \
             font-family=\"sans-serif\" font-size=\"{FONT}\" role=\"img\">",
            escape(&self.id),
            self.x.min,
            self.x.max,
            self.y.min,
            self.y.max
        );
        let (yt, xt) = (self.y.ticks(6), self.x.ticks(6));
        frame.grid(&mut s, &yt, &xt);
        frame.tick_labels(&mut s, &yt, &xt, h);
        // Marks, clipped to the plot.
        let clip = format!("clip-{}", escape(&self.id));
        let _ = write!(
            s,
            "<defs><clipPath id=\"{clip}\"><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" \
             height=\"{:.1}\"/></clipPath></defs><g clip-path=\"url(#{clip})\">",
            frame.px0,
            frame.py1,
            frame.px1 - frame.px0,
            frame.py0 - frame.py1
        );
        for mark in &self.marks {
            frame.mark(&mut s, mark);
        }
        s.push_str("</g>");
        self.render_legend(&mut s, &legend, frame.px0);
        s.push_str("</svg>");
        s
    }

    /// The legend's group: a swatch and the label of each mark, at the rows' positions.
    fn render_legend(&self, s: &mut String, legend: &[Vec<(usize, f64)>], px0: f64) {
        s.push_str("<g class=\"legend\">");
        for (r, row) in legend.iter().enumerate() {
            let y = 8.0 + r as f64 * (FONT + 6.0);
            for &(i, x) in row {
                let m = &self.marks[i];
                let x = px0 + x;
                let _ = write!(
                    s,
                    "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"16\" height=\"{:.1}\" fill=\"{}\"/>\
                     <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                    y + 2.0,
                    FONT - 4.0,
                    escape(m.color()),
                    x + 21.0,
                    y + FONT - 1.0,
                    escape(m.label())
                );
            }
        }
        s.push_str("</g>");
    }
}

/// Where a chart's plot sits in its viewBox (`px0..px1` across, `py0` its bottom and `py1`
/// its top), and the axes that map values onto it.
struct Frame<'a> {
    x: &'a Axis,
    y: &'a Axis,
    px0: f64,
    px1: f64,
    py0: f64,
    py1: f64,
}

/// The opening of a mark's group, with the data tests read: its kind, label, number of points
/// and the extent of its values. [`Frame::mark`] closes it.
fn mark_open(s: &mut String, kind: &str, label: &str, n: usize, vals: impl Iterator<Item = f64>) {
    let (lo, hi) = extent(vals);
    let _ = write!(
        s,
        "<g class=\"mark {kind}\" data-label=\"{}\" data-n=\"{n}\" data-min=\"{lo}\" \
         data-max=\"{hi}\">",
        escape(label)
    );
}

/// ` stroke-dasharray` for a dashed line, nothing for a solid one.
fn dash(dashed: bool) -> &'static str {
    if dashed {
        " stroke-dasharray=\"5 4\""
    } else {
        ""
    }
}

impl Frame<'_> {
    fn sx(&self, v: f64) -> f64 {
        self.px0 + self.x.frac(v) * (self.px1 - self.px0)
    }

    fn sy(&self, v: f64) -> f64 {
        self.py0 - self.y.frac(v) * (self.py0 - self.py1)
    }

    /// The grid lines at the ticks and the plot's frame.
    fn grid(&self, s: &mut String, yt: &[(f64, String)], xt: &[(f64, String)]) {
        let (px0, px1, py0, py1) = (self.px0, self.px1, self.py0, self.py1);
        s.push_str("<g class=\"axes\" stroke=\"#ddd\" stroke-width=\"1\">");
        for (v, _) in yt {
            let y = self.sy(*v);
            let _ = write!(
                s,
                "<line x1=\"{px0:.1}\" y1=\"{y:.1}\" x2=\"{px1:.1}\" y2=\"{y:.1}\"/>"
            );
        }
        for (v, _) in xt {
            let x = self.sx(*v);
            let _ = write!(
                s,
                "<line x1=\"{x:.1}\" y1=\"{py1:.1}\" x2=\"{x:.1}\" y2=\"{py0:.1}\"/>"
            );
        }
        let _ = write!(
            s,
            "<rect x=\"{px0:.1}\" y=\"{py1:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" \
             stroke=\"#999\"/></g>",
            px1 - px0,
            py0 - py1
        );
    }

    /// The tick labels and the axis labels (`time (UTC)` for an unlabelled time axis), in a
    /// viewBox `h` high.
    fn tick_labels(&self, s: &mut String, yt: &[(f64, String)], xt: &[(f64, String)], h: f64) {
        s.push_str("<g class=\"ticks\" fill=\"#333\">");
        for (v, label) in yt {
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                self.px0 - 5.0,
                self.sy(*v) + FONT * 0.35,
                escape(label)
            );
        }
        for (v, label) in xt {
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                self.sx(*v),
                self.py0 + FONT + 4.0,
                escape(label)
            );
        }
        let x_label = if self.x.scale == Scale::Time && self.x.label.is_empty() {
            "time (UTC)".to_string()
        } else {
            self.x.label.clone()
        };
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#666\">{}</text>",
            self.px1,
            h - 4.0,
            escape(&x_label)
        );
        if !self.y.label.is_empty() {
            let _ = write!(
                s,
                "<text x=\"4\" y=\"{:.1}\" fill=\"#666\">{}</text>",
                h - 4.0,
                escape(&self.y.label)
            );
        }
        s.push_str("</g>");
    }

    /// One mark as a group: its data attributes, then its shapes.
    fn mark(&self, s: &mut String, mark: &Mark) {
        let label = mark.label();
        match mark {
            Mark::Line {
                color,
                xs,
                ys,
                width,
                dashed,
                ..
            } => {
                let n = xs.len().min(ys.len());
                mark_open(s, "line", label, n, ys[..n].iter().copied());
                self.polylines(s, color, &xs[..n], &ys[..n], *width, *dashed);
            }
            Mark::Band {
                color,
                xs,
                lo,
                hi,
                opacity,
                ..
            } => {
                let n = xs.len().min(lo.len()).min(hi.len());
                let vals = lo[..n].iter().chain(hi[..n].iter()).copied();
                mark_open(s, "band", label, n, vals);
                self.band(s, color, &xs[..n], (&lo[..n], &hi[..n]), *opacity);
            }
            Mark::Bars {
                color,
                xs,
                ys,
                width,
                ..
            } => {
                let n = xs.len().min(ys.len());
                mark_open(s, "bars", label, n, ys[..n].iter().copied());
                self.bars(s, color, &xs[..n], &ys[..n], *width);
            }
            Mark::Rule {
                color, y, dashed, ..
            } => {
                mark_open(s, "rule", label, 1, std::iter::once(*y));
                let yy = self.sy(*y);
                let _ = write!(
                    s,
                    "<line x1=\"{:.1}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" \
                     stroke=\"{}\" stroke-width=\"1.2\"{}/>",
                    self.px0,
                    self.px1,
                    escape(color),
                    dash(*dashed)
                );
            }
        }
        s.push_str("</g>");
    }

    /// A line as polylines, broken wherever a point is not finite.
    fn polylines(
        &self,
        s: &mut String,
        color: &str,
        xs: &[f64],
        ys: &[f64],
        width: f64,
        dashed: bool,
    ) {
        let dash = dash(dashed);
        let mut run: Vec<String> = Vec::new();
        let flush = |s: &mut String, run: &mut Vec<String>| {
            if !run.is_empty() {
                let _ = write!(
                    s,
                    "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"{width}\" \
                     stroke-linejoin=\"round\"{dash} points=\"{}\"/>",
                    escape(color),
                    run.join(" ")
                );
                run.clear();
            }
        };
        for (&x, &y) in xs.iter().zip(ys) {
            if x.is_finite() && y.is_finite() {
                run.push(format!("{:.1},{:.1}", self.sx(x), self.sy(y)));
            } else {
                flush(s, &mut run);
            }
        }
        flush(s, &mut run);
    }

    /// A band as one polygon along `hi` and back along `lo`, over the points where all three
    /// are finite.
    fn band(
        &self,
        s: &mut String,
        color: &str,
        xs: &[f64],
        (lo, hi): (&[f64], &[f64]),
        opacity: f64,
    ) {
        let ok: Vec<usize> = (0..xs.len())
            .filter(|&i| xs[i].is_finite() && lo[i].is_finite() && hi[i].is_finite())
            .collect();
        if ok.is_empty() {
            return;
        }
        let mut pts: Vec<String> = ok
            .iter()
            .map(|&i| format!("{:.1},{:.1}", self.sx(xs[i]), self.sy(hi[i])))
            .collect();
        pts.extend(
            ok.iter()
                .rev()
                .map(|&i| format!("{:.1},{:.1}", self.sx(xs[i]), self.sy(lo[i]))),
        );
        let _ = write!(
            s,
            "<polygon fill=\"{}\" fill-opacity=\"{opacity}\" stroke=\"{}\" \
             stroke-width=\"0.8\" stroke-opacity=\"{opacity}\" points=\"{}\"/>",
            escape(color),
            escape(color),
            pts.join(" ")
        );
    }

    /// Bars `width` x-units wide from the axis floor (0, or the minimum of a log axis), at
    /// least half a unit wide on screen; points not finite, or not positive on a log axis,
    /// are skipped.
    fn bars(&self, s: &mut String, color: &str, xs: &[f64], ys: &[f64], width: f64) {
        let floor = if self.y.scale == Scale::Log {
            self.y.min
        } else {
            0.0f64.clamp(self.y.min, self.y.max)
        };
        let _ = write!(s, "<g fill=\"{}\">", escape(color));
        for (&x, &y) in xs.iter().zip(ys) {
            if !(x.is_finite() && y.is_finite()) {
                continue;
            }
            if self.y.scale == Scale::Log && y <= 0.0 {
                continue;
            }
            let (xa, xb) = (self.sx(x - width / 2.0), self.sx(x + width / 2.0));
            let (ya, yb) = (self.sy(y), self.sy(floor));
            let _ = write!(
                s,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.2}\" height=\"{:.1}\"/>",
                xa.min(xb),
                ya.min(yb),
                ((xb - xa).abs() * 0.9).max(0.5),
                (yb - ya).abs()
            );
        }
        s.push_str("</g>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape("<a href=\"x\">R&D 'q'</a>\u{1}"),
            "&lt;a href=&quot;x&quot;&gt;R&amp;D &#39;q&#39;&lt;/a&gt;\u{FFFD}"
        );
    }

    #[test]
    fn nice_ticks_are_round() {
        let t: Vec<String> = nice_ticks(0.13, 0.91, 5).into_iter().map(|t| t.1).collect();
        assert_eq!(t, ["0.2", "0.4", "0.6", "0.8"]);
        let t: Vec<String> = nice_ticks(6812.0, 8450.0, 5)
            .into_iter()
            .map(|t| t.1)
            .collect();
        assert_eq!(t, ["7000", "7500", "8000"]);
        let t: Vec<String> = nice_ticks(-0.003, 0.003, 4)
            .into_iter()
            .map(|t| t.1)
            .collect();
        assert_eq!(t, ["-0.002", "0.000", "0.002"]);
        assert_eq!(nice_ticks(0.0, 3e6, 3)[1].1, "1M");
    }

    #[test]
    fn time_ticks_are_round_utc() {
        // 2020-01-01 00:00 .. 2020-01-12 00:00: two-day steps at midnight.
        let t = time_ticks(1_577_836_800_000, 1_578_787_200_000, 6);
        assert_eq!(t[0].1, "2020-01-01");
        assert_eq!(t[1].1, "2020-01-03");
        assert_eq!(t.len(), 6);
        // 90 minutes inside one day: 15-minute steps labelled HH:MM.
        let t = time_ticks(
            1_577_836_800_000 + 7 * 60_000,
            1_577_836_800_000 + 97 * 60_000,
            6,
        );
        let labels: Vec<&str> = t.iter().map(|x| x.1.as_str()).collect();
        assert_eq!(
            labels,
            ["00:15", "00:30", "00:45", "01:00", "01:15", "01:30"]
        );
        // Eight months: monthly ticks on the first of the month.
        let t = time_ticks(1_586_732_400_000, 1_606_546_800_000, 8);
        assert_eq!(t[0].1, "2020-05");
        assert!(t.iter().all(|x| x.1.len() == 7));
        assert_eq!(time::format_ms(t[0].0), "2020-05-01 00:00:00");
    }

    #[test]
    fn log_ticks_are_powers_of_ten() {
        let t: Vec<String> = log_ticks(0.5, 2000.0).into_iter().map(|t| t.1).collect();
        assert_eq!(t, ["1", "10", "100", "1000"]);
    }

    #[test]
    fn min_max_columns_keeps_the_extremes() {
        let xs: Vec<f64> = (0..1000).map(f64::from).collect();
        let ys: Vec<f64> = (0..1000).map(|i| ((i * 37) % 101) as f64).collect();
        let cols = min_max_columns(&xs, &ys, 10);
        assert_eq!(cols.len(), 10);
        let lo = cols.iter().map(|c| c.1).fold(f64::INFINITY, f64::min);
        let hi = cols.iter().map(|c| c.2).fold(f64::NEG_INFINITY, f64::max);
        assert_eq!((lo, hi), (0.0, 100.0));
        assert_eq!(cols[0].0, 0.0);
        assert_eq!(cols[9].0, 900.0);
        // Fewer points than columns: every point is its own column.
        assert_eq!(min_max_columns(&xs[..3], &ys[..3], 10).len(), 3);
    }

    #[test]
    fn chart_renders_marks_with_their_data() {
        let mut c = Chart::new(
            "t<1>",
            Axis::new(0.0, 10.0, Scale::Linear, "x"),
            Axis::fit([1.0, 5.0], "y"),
        );
        c.add(Mark::line(
            "a&b",
            color(0),
            vec![0.0, 5.0, f64::NAN, 10.0],
            vec![1.0, 5.0, 2.0, 3.0],
        ));
        c.add(Mark::Rule {
            label: String::new(),
            color: "#000".into(),
            y: 2.0,
            dashed: true,
        });
        let svg = c.render();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains("id=\"t&lt;1&gt;\""));
        assert!(svg.contains("data-label=\"a&amp;b\" data-n=\"4\" data-min=\"1\" data-max=\"5\""));
        // The NaN x splits the line in two polylines.
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains(">a&amp;b</text>"));
        assert!(svg.ends_with("</svg>"));
    }
}
