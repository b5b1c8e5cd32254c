//! Causal features and the forecast target, computed from a [`Series`]. Pure: no I/O, no clock.
//! Every feature of row `t` reads klines `..= t` only (a test proves it by rewriting the future).
//!
//! # Target
//!
//! `y_t = ln(close[t+h] / close[t])` with `h` = [`FeatureSpec::horizon`] (default 1). A model's
//! prediction `p` becomes the price forecast `close[t] · exp(p)`; the naive forecast is `p = 0`.
//!
//! # Features (version 1, in column order)
//!
//! With `r_t = ln(close_t / close_{t-1})`, `c` = close, `o` = open, `v` = volume, `n` = trades:
//!
//! | # | name              | formula                                                              |
//! |---|-------------------|----------------------------------------------------------------------|
//! | 0 | `ret_0`           | `r_t`                                                                |
//! | 1 | `ret_1`           | `r_{t-1}`                                                            |
//! | 2 | `ret_2`           | `r_{t-2}`                                                            |
//! | 3 | `ret_3`           | `r_{t-3}`                                                            |
//! | 4 | `ret_4`           | `r_{t-4}`                                                            |
//! | 5 | `ret_sum_15`      | `ln(c_t / c_{t-15})` (= `r_{t-14} + … + r_t`)                        |
//! | 6 | `ret_sum_60`      | `ln(c_t / c_{t-60})` (= `r_{t-59} + … + r_t`)                        |
//! | 7 | `range`           | `(high_t − low_t) / c_t`                                             |
//! | 8 | `body`            | `(c_t − o_t) / o_t`                                                  |
//! | 9 | `volume_rel_60`   | `ln(max(v_t, m/100) / m)`, `m` = mean of `v_{t-59..=t}`; 0 if `m = 0` |
//! |10 | `trades_rel_60`   | same with trades `n` instead of volume                               |
//! |11 | `taker_buy_share` | `clamp(taker_buy_base_t / v_t, 0, 1)`; 0.5 when `v_t = 0`            |
//! |12 | `volatility_15`   | population std of `r_{t-14..=t}`                                     |
//! |13 | `volatility_60`   | population std of `r_{t-59..=t}`                                     |
//!
//! # Correlated pairs (version 2, `--corr`)
//!
//! A spec with correlated symbols (`corr`, at most [`MAX_CORR`]) is version 2: the 14 columns
//! above, then 5 per correlated symbol `s`, in the order of `corr`, from its closes aligned to
//! this series' rows (`Series::corr`, built by [`align_corr`] or pushed live), `a_t`:
//!
//! | # | name                | formula                                                   |
//! |---|---------------------|-----------------------------------------------------------|
//! | 0 | `<s>_ret_0`         | `ln(a_t / a_{t-1})`                                       |
//! | 1 | `<s>_ret_1`         | `ln(a_{t-1} / a_{t-2})`                                   |
//! | 2 | `<s>_ret_2`         | `ln(a_{t-2} / a_{t-3})`                                   |
//! | 3 | `<s>_ret_sum_15`    | `ln(a_t / a_{t-15})`                                      |
//! | 4 | `<s>_stale`         | 1 when row t's minute has no kline of `s` (carried), else 0 |
//!
//! The gap rule: a minute without the symbol's kline (a gap in its store, a kline that came too
//! late live) carries its last close, so its return there is 0 and `stale` is 1; the next kline
//! that comes makes up the move in one return. A series without the symbol's column at all gives
//! 0 returns and `stale` 1 on every row. Row t reads `a_{..=t}` only, and `a_t` reads the
//! symbol's klines with open time ≤ row t's only, so the features stay causal.
//!
//! Warm-up: the first full row is `t = 60` (it reads `close_0`). Divisions are guarded as shown;
//! prices are positive in every series the store loads, and any value that would still not be
//! finite (a hand-built series with a zero price) becomes 0, so rows never hold NaN or inf.
//!
//! Time gaps (missing minutes) are not interpolated: a return across a gap is computed as-is
//! from the two neighbouring rows, and windows count rows, not minutes.
//!
//! # Exactness
//!
//! [`FeatureSpec::dataset`] builds all rows in one pass with rolling window sums (O(n·d), no
//! allocation per row). So that a rolling sum equals the direct sum of [`FeatureSpec::row`] bit
//! for bit, the windowed sums are kept in exact integer fixed point: returns are quantised to
//! 2⁻⁴⁰ (about 1e-12) for the volatilities, volumes and trade counts to 2⁻³² for their means.
//! Integer sums do not depend on the order of additions, so both paths give identical rows.

use std::ops::Range;

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use crate::kline::{CorrColumn, Series};

/// The feature-set version of a spec without correlated symbols (stored in every model file).
pub(crate) const FEATURE_VERSION: u32 = 1;
/// The feature-set version of a spec with correlated symbols (`--corr`).
pub(crate) const CORR_FEATURE_VERSION: u32 = 2;
/// Most correlated symbols a spec takes (`--corr`); model files outside it are refused.
pub(crate) const MAX_CORR: usize = 8;
/// Columns per correlated symbol (the table in the module doc).
pub(crate) const CORR_COLUMNS: usize = 5;

/// Default horizon (`--horizon`): forecast the close this many klines ahead.
pub(crate) const DEFAULT_HORIZON: usize = 1;
/// Largest horizon (a day of 1m klines): `--horizon` is refused above it, and so are saved
/// models and ensembles outside 1..=this.
pub(crate) const MAX_HORIZON: usize = 1440;

/// Which features are built, and the horizon; saved with every model. Serialised as
/// `version, horizon` and, from version 2 on, `corr`: a version 1 spec keeps the bytes it always
/// had, so model files from before `--corr` still load.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSpec {
    pub version: u32,
    pub horizon: usize,
    /// The correlated symbols whose columns follow the own ones (empty in version 1).
    pub corr: Vec<String>,
}

impl Default for FeatureSpec {
    fn default() -> Self {
        FeatureSpec {
            version: FEATURE_VERSION,
            horizon: DEFAULT_HORIZON,
            corr: Vec::new(),
        }
    }
}

impl Serialize for FeatureSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let with_corr = self.version >= CORR_FEATURE_VERSION;
        let mut out = serializer.serialize_struct("FeatureSpec", 2 + usize::from(with_corr))?;
        out.serialize_field("version", &self.version)?;
        out.serialize_field("horizon", &self.horizon)?;
        if with_corr {
            out.serialize_field("corr", &self.corr)?;
        }
        out.end()
    }
}

impl<'de> Deserialize<'de> for FeatureSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_struct("FeatureSpec", &["version", "horizon", "corr"], SpecVisitor)
    }
}

/// Reads `version`, `horizon`, then `corr` only from version 2 on (see [`FeatureSpec`]).
struct SpecVisitor;

impl<'de> serde::de::Visitor<'de> for SpecVisitor {
    type Value = FeatureSpec;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a feature spec")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<FeatureSpec, A::Error> {
        use serde::de::Error;
        let version: u32 = seq
            .next_element()?
            .ok_or_else(|| A::Error::invalid_length(0, &self))?;
        let horizon = seq
            .next_element()?
            .ok_or_else(|| A::Error::invalid_length(1, &self))?;
        let corr = if version >= CORR_FEATURE_VERSION {
            seq.next_element()?
                .ok_or_else(|| A::Error::invalid_length(2, &self))?
        } else {
            Vec::new()
        };
        Ok(FeatureSpec {
            version,
            horizon,
            corr,
        })
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<FeatureSpec, A::Error> {
        use serde::de::Error;
        let mut spec = FeatureSpec::default();
        let (mut version, mut horizon) = (None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "version" => version = Some(map.next_value()?),
                "horizon" => horizon = Some(map.next_value()?),
                "corr" => spec.corr = map.next_value()?,
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        spec.version = version.ok_or_else(|| A::Error::missing_field("version"))?;
        spec.horizon = horizon.ok_or_else(|| A::Error::missing_field("horizon"))?;
        Ok(spec)
    }
}

/// Standardisation statistics learnt on training rows only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

/// Feature rows and targets for a range of the series.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// n×d raw (unscaled) features.
    pub x: DMatrix<f64>,
    /// n log-return targets ln(close[t+h] / close[t]).
    pub y: DVector<f64>,
    /// Series index t of each row (the last kline the row may read).
    pub t: Vec<usize>,
}

/// Column names, in order (see the table in the module doc).
const NAMES: [&str; N_FEATURES] = [
    "ret_0",
    "ret_1",
    "ret_2",
    "ret_3",
    "ret_4",
    "ret_sum_15",
    "ret_sum_60",
    "range",
    "body",
    "volume_rel_60",
    "trades_rel_60",
    "taker_buy_share",
    "volatility_15",
    "volatility_60",
];

const N_FEATURES: usize = 14;
/// Name suffixes of each correlated symbol's columns (the second table in the module doc).
const CORR_NAMES: [&str; CORR_COLUMNS] = ["ret_0", "ret_1", "ret_2", "ret_sum_15", "stale"];
const N_LAGS: usize = 5;
const SHORT: usize = 15;
const LONG: usize = 60;
/// Fixed-point scale of quantised returns: 2^40.
const RET_SCALE: f64 = 1_099_511_627_776.0;
/// |quantised return| is clamped to 2^50 (|r| ≤ 1024) so that window sums of squares fit in i128.
const RET_CLAMP: i64 = 1 << 50;
/// Fixed-point scale of quantised volumes and trade counts: 2^32.
const VAL_SCALE: f64 = 4_294_967_296.0;
/// Quantised volumes are clamped to 2^100 so that a 60-row sum fits in u128.
const VAL_CLAMP: u128 = 1 << 100;
/// 2^64 as f64.
const U64_LIMIT: f64 = 18_446_744_073_709_551_616.0;
/// Ring size of [`Window`]: at least LONG + 1.
const RING: usize = 64;

/// Integer window sums of one row: exact, so rolling and direct sums agree.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Sums {
    ret_short: i128,
    ret_sq_short: i128,
    ret_long: i128,
    ret_sq_long: i128,
    volume_long: u128,
    trades_long: u128,
}

impl FeatureSpec {
    /// A spec of `horizon` with the correlated symbols `corr` (version 2 when there are any).
    pub(crate) fn new(horizon: usize, corr: Vec<String>) -> FeatureSpec {
        FeatureSpec {
            version: if corr.is_empty() {
                FEATURE_VERSION
            } else {
                CORR_FEATURE_VERSION
            },
            horizon,
            corr,
        }
    }

    /// Whether this build computes the spec's features: version 1 without correlated symbols,
    /// or version 2 with 1 to [`MAX_CORR`] of them, each named once.
    pub(crate) fn supported(&self) -> bool {
        let distinct = self
            .corr
            .iter()
            .enumerate()
            .all(|(i, s)| !s.is_empty() && !self.corr[..i].contains(s));
        match self.version {
            FEATURE_VERSION => self.corr.is_empty(),
            CORR_FEATURE_VERSION => (1..=MAX_CORR).contains(&self.corr.len()) && distinct,
            _ => false,
        }
    }

    /// The correlated symbols as a list for messages: `FIL,NEAR`, or `none`.
    pub(crate) fn corr_list(&self) -> String {
        if self.corr.is_empty() {
            "none".to_string()
        } else {
            self.corr.join(",")
        }
    }

    /// Feature names, in column order.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = NAMES.iter().map(|n| n.to_string()).collect();
        for symbol in &self.corr {
            for suffix in CORR_NAMES {
                names.push(format!("{symbol}_{suffix}"));
            }
        }
        names
    }

    pub fn n_features(&self) -> usize {
        N_FEATURES + CORR_COLUMNS * self.corr.len()
    }

    /// The series' column of each correlated symbol, in spec order (`None`: the series has none).
    fn corr_columns<'a>(&self, series: &'a Series) -> Vec<Option<&'a CorrColumn>> {
        self.corr
            .iter()
            .map(|s| series.corr.iter().find(|c| &c.symbol == s))
            .collect()
    }

    /// The first series index t that has a full feature row.
    pub(crate) fn warmup(&self) -> usize {
        LONG
    }

    /// The raw feature row at series index `t` (reads rows ..= t only), or `None` before warm-up.
    pub fn row(&self, series: &Series, t: usize) -> Option<Vec<f64>> {
        if t < self.warmup() || t >= series.len() {
            return None;
        }
        let window = Window::direct(series, t);
        let mut out = [0.0; N_FEATURES];
        fill_row(series, t, &window.lags(t), &window.sums, &mut out);
        let mut row = out.to_vec();
        let mut corr = [0.0; CORR_COLUMNS];
        for column in self.corr_columns(series) {
            fill_corr(column, t, &mut corr);
            row.extend_from_slice(&corr);
        }
        Some(row)
    }

    /// The target at `t`: ln(close[t+h] / close[t]), or `None` when t+h is past the end.
    pub fn target(&self, series: &Series, t: usize) -> Option<f64> {
        let ahead = t.checked_add(self.horizon)?;
        if ahead >= series.len() {
            return None;
        }
        Some((series.close[ahead] / series.close[t]).ln())
    }

    /// The series indices `t` that [`FeatureSpec::dataset`] turns into rows for `range`: every t
    /// in `range` with a full feature row (`t ≥ warmup`) and a target (`t + h < len`).
    pub fn row_range(&self, series_len: usize, range: Range<usize>) -> Range<usize> {
        let start = range.start.max(self.warmup());
        let end = range.end.min(series_len.saturating_sub(self.horizon));
        start..end.max(start)
    }

    /// Rows for every t in `range` that has both a full feature row and a target.
    pub fn dataset(&self, series: &Series, range: Range<usize>) -> Dataset {
        let rows = self.row_range(series.len(), range);
        let n_rows = rows.len();
        let mut x = DMatrix::<f64>::zeros(n_rows, self.n_features());
        let mut y = DVector::<f64>::zeros(n_rows);
        let mut ts = Vec::with_capacity(n_rows);
        if n_rows == 0 {
            return Dataset { x, y, t: ts };
        }
        let close = &series.close;
        let data = x.as_mut_slice();
        let mut window = Window::direct(series, rows.start);
        let mut out = [0.0; N_FEATURES];
        let mut corr = [0.0; CORR_COLUMNS];
        let columns = self.corr_columns(series);
        for (i, t) in rows.enumerate() {
            if i > 0 {
                window.advance(series, t);
            }
            fill_row(series, t, &window.lags(t), &window.sums, &mut out);
            for (j, value) in out.iter().enumerate() {
                data[j * n_rows + i] = *value;
            }
            for (k, column) in columns.iter().enumerate() {
                fill_corr(*column, t, &mut corr);
                for (j, value) in corr.iter().enumerate() {
                    data[(N_FEATURES + k * CORR_COLUMNS + j) * n_rows + i] = *value;
                }
            }
            y[i] = (close[t + self.horizon] / close[t]).ln();
            ts.push(t);
        }
        Dataset { x, y, t: ts }
    }
}

impl Scaler {
    /// Learns column means and population standard deviations (a zero std becomes 1).
    pub fn fit(x: &DMatrix<f64>) -> Scaler {
        let n = x.nrows();
        let mut mean = Vec::with_capacity(x.ncols());
        let mut std = Vec::with_capacity(x.ncols());
        for column in x.column_iter() {
            if n == 0 {
                mean.push(0.0);
                std.push(1.0);
                continue;
            }
            let m = column.iter().sum::<f64>() / n as f64;
            let var = column.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n as f64;
            let s = var.sqrt();
            mean.push(m);
            std.push(if s > 0.0 && s.is_finite() { s } else { 1.0 });
        }
        Scaler { mean, std }
    }

    pub fn transform(&self, x: &DMatrix<f64>) -> DMatrix<f64> {
        let mut out = x.clone();
        self.transform_in_place(&mut out);
        out
    }

    /// Standardises `x` without a copy (training matrices are large).
    pub fn transform_in_place(&self, x: &mut DMatrix<f64>) {
        for (j, mut column) in x.column_iter_mut().enumerate() {
            let (m, s) = (self.mean[j], self.std[j]);
            for v in column.iter_mut() {
                *v = (*v - m) / s;
            }
        }
    }

    pub fn transform_row(&self, row: &[f64]) -> Vec<f64> {
        row.iter()
            .zip(self.mean.iter().zip(&self.std))
            .map(|(v, (m, s))| (v - m) / s)
            .collect()
    }
}

/// `r_t = ln(close_t / close_{t-1})` (t ≥ 1).
fn ret(close: &[f64], t: usize) -> f64 {
    (close[t] / close[t - 1]).ln()
}

/// A return in exact fixed point (NaN quantises to 0).
fn quant_ret(r: f64) -> i64 {
    ((r * RET_SCALE).round() as i64).clamp(-RET_CLAMP, RET_CLAMP)
}

/// A non-negative value in exact fixed point (NaN and negatives quantise to 0).
fn quant_val(value: f64) -> u128 {
    let scaled = (value * VAL_SCALE).round();
    if scaled < U64_LIMIT {
        // The common case, through a hardware conversion.
        scaled as u64 as u128
    } else {
        (scaled as u128).min(VAL_CLAMP)
    }
}

/// The last [`RING`] returns (raw and quantised), quantised volumes and trade counts, and the
/// window sums at the current row `t`.
struct Window {
    ret: [f64; RING],
    q_ret: [i64; RING],
    q_volume: [u128; RING],
    q_trades: [u128; RING],
    sums: Sums,
}

impl Window {
    /// The window at `t` computed directly (t ≥ LONG).
    fn direct(series: &Series, t: usize) -> Window {
        let mut window = Window {
            ret: [0.0; RING],
            q_ret: [0; RING],
            q_volume: [0; RING],
            q_trades: [0; RING],
            sums: Sums::default(),
        };
        for i in t + 1 - LONG..=t {
            let (q, v, n) = window.store(series, i);
            let q = q as i128;
            let sums = &mut window.sums;
            sums.ret_long += q;
            sums.ret_sq_long += q * q;
            if i + SHORT > t {
                sums.ret_short += q;
                sums.ret_sq_short += q * q;
            }
            sums.volume_long += v;
            sums.trades_long += n;
        }
        window
    }

    /// Computes and remembers the values of row `i`.
    fn store(&mut self, series: &Series, i: usize) -> (i64, u128, u128) {
        let r = ret(&series.close, i);
        let q = quant_ret(r);
        let v = quant_val(series.volume[i]);
        let n = quant_val(series.trades[i]);
        let slot = i % RING;
        self.ret[slot] = r;
        self.q_ret[slot] = q;
        self.q_volume[slot] = v;
        self.q_trades[slot] = n;
        (q, v, n)
    }

    /// Moves the window from `t - 1` to `t` (t > LONG).
    fn advance(&mut self, series: &Series, t: usize) {
        let q_short_out = self.q_ret[(t - SHORT) % RING] as i128;
        let q_long_out = self.q_ret[(t - LONG) % RING] as i128;
        let v_out = self.q_volume[(t - LONG) % RING];
        let n_out = self.q_trades[(t - LONG) % RING];
        let (q_in, v_in, n_in) = self.store(series, t);
        let q_in = q_in as i128;
        let sums = &mut self.sums;
        sums.ret_short += q_in - q_short_out;
        sums.ret_sq_short += q_in * q_in - q_short_out * q_short_out;
        sums.ret_long += q_in - q_long_out;
        sums.ret_sq_long += q_in * q_in - q_long_out * q_long_out;
        sums.volume_long = sums.volume_long + v_in - v_out;
        sums.trades_long = sums.trades_long + n_in - n_out;
    }

    /// `r_t, r_{t-1}, …, r_{t-4}` (t is the current row).
    fn lags(&self, t: usize) -> [f64; N_LAGS] {
        std::array::from_fn(|lag| self.ret[(t - lag) % RING])
    }
}

/// Population std of `n` quantised returns from their exact sums.
fn window_std(sum: i128, sum_sq: i128, n: usize) -> f64 {
    let n_i = n as i128;
    // n·Σq² − (Σq)² is an exact non-negative integer (Cauchy–Schwarz).
    let scaled_var = (n_i * sum_sq - sum * sum).max(0);
    (scaled_var as f64).sqrt() / (n as f64 * RET_SCALE)
}

/// `ln(max(v, m/100) / m)` with `m` the window mean from a fixed-point sum; 0 when m = 0.
fn relative_to_mean(value: f64, sum: u128, n: usize) -> f64 {
    let mean = sum as f64 / (n as f64 * VAL_SCALE);
    if mean > 0.0 {
        (value.max(mean / 100.0) / mean).ln()
    } else {
        0.0
    }
}

/// Writes the feature row at `t` given its window sums.
fn fill_row(
    series: &Series,
    t: usize,
    lags: &[f64; N_LAGS],
    sums: &Sums,
    out: &mut [f64; N_FEATURES],
) {
    let close = &series.close;
    let c = close[t];
    out[..N_LAGS].copy_from_slice(lags);
    out[5] = (c / close[t - SHORT]).ln();
    out[6] = (c / close[t - LONG]).ln();
    out[7] = (series.high[t] - series.low[t]) / c;
    out[8] = (c - series.open[t]) / series.open[t];
    out[9] = relative_to_mean(series.volume[t], sums.volume_long, LONG);
    out[10] = relative_to_mean(series.trades[t], sums.trades_long, LONG);
    let volume = series.volume[t];
    out[11] = if volume > 0.0 {
        (series.taker_buy_base[t] / volume).clamp(0.0, 1.0)
    } else {
        0.5
    };
    out[12] = window_std(sums.ret_short, sums.ret_sq_short, SHORT);
    out[13] = window_std(sums.ret_long, sums.ret_sq_long, LONG);
    for v in out.iter_mut() {
        if !v.is_finite() {
            *v = 0.0;
        }
    }
}

/// Writes a correlated symbol's columns at `t` (t ≥ SHORT) from its aligned closes; a missing or
/// short column is the gap rule on every row: returns 0, stale 1.
fn fill_corr(column: Option<&CorrColumn>, t: usize, out: &mut [f64; CORR_COLUMNS]) {
    let usable = column.filter(|c| c.close.len() > t && c.fresh.len() > t);
    let Some(c) = usable else {
        *out = [0.0, 0.0, 0.0, 0.0, 1.0];
        return;
    };
    let a = &c.close;
    out[0] = (a[t] / a[t - 1]).ln();
    out[1] = (a[t - 1] / a[t - 2]).ln();
    out[2] = (a[t - 2] / a[t - 3]).ln();
    out[3] = (a[t] / a[t - SHORT]).ln();
    out[4] = if c.fresh[t] { 0.0 } else { 1.0 };
    for v in out.iter_mut() {
        if !v.is_finite() {
            *v = 0.0;
        }
    }
}

/// Aligns a correlated symbol's klines (`neighbour`, ascending) to the rows of `series`: row t
/// gets the close of the neighbour's newest kline with open time ≤ row t's open time, `fresh`
/// when that open time is row t's own. So row t never reads a neighbour kline that opened after
/// it, and a neighbour's gap is carried (the gap rule in the module doc). O(n + m).
pub fn align_corr(series: &Series, symbol: &str, neighbour: &Series) -> CorrColumn {
    let mut column = CorrColumn::new(symbol);
    column.close.reserve(series.len());
    column.fresh.reserve(series.len());
    let mut j = 0;
    let mut last: Option<(i64, f64)> = None;
    for &open_time in &series.open_time {
        while j < neighbour.len() && neighbour.open_time[j] <= open_time {
            last = Some((neighbour.open_time[j], neighbour.close[j]));
            j += 1;
        }
        column.close.push(last.map_or(0.0, |(_, c)| c));
        column.fresh.push(last.is_some_and(|(o, _)| o == open_time));
    }
    column
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kline::KlineValues;
    use crate::rng::Rng;

    /// A random-walk series with some zero-volume rows and a price gap.
    fn synthetic(n: usize, seed: u64) -> Series {
        let mut rng = Rng::new(seed);
        let mut s = Series::with_capacity(n);
        let mut close = 100.0;
        for i in 0..n {
            let open = close;
            close *= (0.002 * (rng.next_f64() - 0.5)).exp();
            let high = open.max(close) * (1.0 + 0.001 * rng.next_f64());
            let low = open.min(close) * (1.0 - 0.001 * rng.next_f64());
            let volume = if i % 17 == 3 {
                0.0
            } else {
                (1000.0 * rng.next_f64()).round() / 10.0
            };
            s.push(&KlineValues {
                open_time: i as i64 * 60_000,
                open,
                high,
                low,
                close,
                volume,
                close_time: i as i64 * 60_000 + 59_999,
                quote_volume: volume * close,
                trades: if volume > 0.0 {
                    (rng.next_f64() * 50.0).floor() + 1.0
                } else {
                    0.0
                },
                taker_buy_base: volume * rng.next_f64(),
                taker_buy_quote: 0.0,
            });
        }
        s
    }

    fn bits(row: &[f64]) -> Vec<u64> {
        row.iter().map(|v| v.to_bits()).collect()
    }

    /// A tiny hand-made series: close grows 1 % per row, volume alternates 2, 1 (0 at the end).
    fn tiny() -> Series {
        let mut s = Series::with_capacity(62);
        for i in 0..62 {
            let close = 10.0 * (1.01f64).powi(i);
            s.push(&KlineValues {
                open_time: i as i64 * 60_000,
                open: close / 1.01,
                high: close * 1.02,
                low: close / 1.01,
                close,
                volume: if i == 61 { 0.0 } else { (i % 2 + 1) as f64 },
                close_time: i as i64 * 60_000 + 59_999,
                quote_volume: 0.0,
                trades: 4.0,
                taker_buy_base: if i % 2 == 0 { 0.25 } else { 1.5 },
                taker_buy_quote: 0.0,
            });
        }
        s
    }

    fn close_to(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * (1.0 + b.abs())
    }

    #[test]
    fn exact_values_on_a_hand_made_series() {
        let s = tiny();
        let spec = FeatureSpec::default();
        assert_eq!(spec.warmup(), 60);
        assert_eq!(spec.n_features(), 14);
        assert_eq!(spec.names().len(), 14);
        assert_eq!(spec.row(&s, 59), None);
        assert_eq!(spec.row(&s, 62), None);
        let r = (1.01f64).ln();
        let row = spec.row(&s, 60).expect("row at warm-up");
        let want = [
            r,
            r,
            r,
            r,
            r,
            15.0 * r,
            60.0 * r,
            // (1.02 − 1/1.01)·c / c
            1.02 - 1.0 / 1.01,
            // (c − c/1.01) / (c/1.01)
            0.01,
            // volume 1 (t = 60 is even), window mean of 1,2,1,2,… = 1.5
            (1.0f64 / 1.5).ln(),
            // trades constant
            0.0,
            // 0.25 / 1
            0.25,
            // constant returns: std 0 (up to fixed-point rounding)
            0.0,
            0.0,
        ];
        for (j, (got, want)) in row.iter().zip(want).enumerate() {
            assert!(close_to(*got, want), "{}: {got} vs {want}", NAMES[j]);
        }
        assert!(row[12].abs() < 1e-11 && row[13].abs() < 1e-11);
        // t = 61: volume 0 → clamped to m/100, taker share 0.5 by definition.
        let row = spec.row(&s, 61).expect("row 61");
        // window 2..=61: thirty 1s, twenty-nine 2s and one 0 → mean 88/60.
        let mean: f64 = 88.0 / 60.0;
        assert!(close_to(row[9], (mean / 100.0 / mean).ln()));
        assert_eq!(row[11], 0.5);
        assert!(close_to(spec.target(&s, 60).expect("target"), r));
        assert_eq!(spec.target(&s, 61), None);
        let ds = spec.dataset(&s, 0..62);
        assert_eq!(ds.t, vec![60]);
        assert_eq!(ds.x.nrows(), 1);
        assert!(close_to(ds.y[0], r));
    }

    #[test]
    fn volatility_matches_a_plain_std() {
        let s = synthetic(300, 5);
        let spec = FeatureSpec::default();
        let t = 200;
        let row = spec.row(&s, t).expect("row");
        let rets: Vec<f64> = (t - 59..=t)
            .map(|i| (s.close[i] / s.close[i - 1]).ln())
            .collect();
        let std = |xs: &[f64]| {
            let m = xs.iter().sum::<f64>() / xs.len() as f64;
            (xs.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / xs.len() as f64).sqrt()
        };
        assert!(
            (row[13] - std(&rets)).abs() < 1e-10,
            "{} {}",
            row[13],
            std(&rets)
        );
        assert!((row[12] - std(&rets[45..])).abs() < 1e-10);
        let sum15: f64 = rets[45..].iter().sum();
        assert!((row[5] - sum15).abs() < 1e-12);
        let vmean = s.volume[t - 59..=t].iter().sum::<f64>() / 60.0;
        assert!((row[9] - (s.volume[t].max(vmean / 100.0) / vmean).ln()).abs() < 1e-9);
    }

    #[test]
    fn dataset_rows_equal_single_rows_bit_for_bit() {
        let s = synthetic(2_000, 1);
        for horizon in [1, 3] {
            let spec = FeatureSpec {
                horizon,
                ..FeatureSpec::default()
            };
            let ds = spec.dataset(&s, 0..s.len());
            assert_eq!(ds.x.nrows(), s.len() - 60 - horizon);
            assert_eq!(ds.t.first(), Some(&60));
            for (i, &t) in ds.t.iter().enumerate() {
                let row = spec.row(&s, t).expect("row");
                let from_ds: Vec<f64> = ds.x.row(i).iter().copied().collect();
                assert_eq!(bits(&row), bits(&from_ds), "t = {t}");
                assert_eq!(
                    ds.y[i].to_bits(),
                    spec.target(&s, t).expect("target").to_bits()
                );
                assert!(row.iter().all(|v| v.is_finite()));
            }
            // A sub-range starts its rolling sums anywhere and still agrees.
            let part = spec.dataset(&s, 777..901);
            assert_eq!(part.t, (777..901).collect::<Vec<_>>());
            for (i, &t) in part.t.iter().enumerate() {
                let from_ds: Vec<f64> = part.x.row(i).iter().copied().collect();
                assert_eq!(bits(&spec.row(&s, t).expect("row")), bits(&from_ds));
            }
        }
    }

    /// Backs README claim [C1]: Every feature of row t reads klines ..= t only (no leakage).
    #[test]
    fn no_feature_reads_the_future() {
        let s = synthetic(400, 2);
        let spec = FeatureSpec::default();
        let mut rng = Rng::new(9);
        for t in [60, 61, 75, 120, 250, 398] {
            let before = spec.row(&s, t).expect("row");
            let mut garbage = s.clone();
            for i in t + 1..s.len() {
                garbage.open[i] = 1e6 * rng.next_f64() + 1.0;
                garbage.high[i] = 1e-3 * rng.next_f64();
                garbage.low[i] = 0.0;
                garbage.close[i] = rng.next_f64() * 7.0 + 1e-9;
                garbage.volume[i] = 1e9 * rng.next_f64();
                garbage.trades[i] = 0.0;
                garbage.taker_buy_base[i] = -5.0;
                garbage.open_time[i] = -1;
            }
            let after = spec.row(&garbage, t).expect("row");
            assert_eq!(bits(&before), bits(&after), "t = {t}");
            // Dataset rows of a truncated series equal those of the full one.
            let truncated = s.slice(0..t + 2);
            let full = spec.dataset(&s, 0..t + 1);
            let short = spec.dataset(&truncated, 0..t + 1);
            assert_eq!(full.t, short.t);
            assert_eq!(full.x, short.x);
            assert_eq!(full.y, short.y);
        }
    }

    #[test]
    fn zero_volume_and_gaps_give_finite_rows() {
        let mut s = synthetic(200, 3);
        for i in 0..200 {
            s.volume[i] = 0.0;
            s.trades[i] = 0.0;
        }
        s.close[150] = s.close[149] * 3.0; // a gap with a big jump
        let spec = FeatureSpec::default();
        let ds = spec.dataset(&s, 0..200);
        assert!(ds.x.iter().all(|v| v.is_finite()));
        let row = spec.row(&s, 150).expect("row");
        assert_eq!(row[9], 0.0);
        assert_eq!(row[10], 0.0);
        assert_eq!(row[11], 0.5);
        assert!(close_to(row[0], 3.0f64.ln()));
    }

    #[test]
    fn empty_and_short_ranges() {
        let s = synthetic(100, 4);
        let spec = FeatureSpec::default();
        assert_eq!(spec.dataset(&s, 0..60).x.nrows(), 0);
        assert_eq!(spec.dataset(&s, 99..100).x.nrows(), 0);
        assert_eq!(spec.dataset(&Series::default(), 0..10).x.nrows(), 0);
        assert_eq!(spec.dataset(&s, 0..1000).t.last(), Some(&98));
        assert_eq!(spec.row_range(100, 0..1000), 60..99);
        assert_eq!(spec.row_range(10, 0..1000), 60..60);
    }

    #[test]
    fn scaler_uses_population_std_and_guards_zero() {
        let x = DMatrix::from_row_slice(
            4,
            3,
            &[
                1.0, 5.0, 2.0, //
                2.0, 5.0, 4.0, //
                3.0, 5.0, 6.0, //
                4.0, 5.0, 8.0,
            ],
        );
        let scaler = Scaler::fit(&x);
        assert_eq!(scaler.mean, vec![2.5, 5.0, 5.0]);
        assert!(close_to(scaler.std[0], 1.25f64.sqrt()));
        assert_eq!(scaler.std[1], 1.0);
        assert!(close_to(scaler.std[2], 5.0f64.sqrt()));
        let z = scaler.transform(&x);
        assert!(close_to(z[(0, 0)], -1.5 / 1.25f64.sqrt()));
        assert_eq!(z[(2, 1)], 0.0);
        for c in [0, 2] {
            let col = z.column(c);
            assert!(col.sum().abs() < 1e-12);
            assert!(close_to(col.iter().map(|v| v * v).sum::<f64>() / 4.0, 1.0));
        }
        let row: Vec<f64> = x.row(3).iter().copied().collect();
        let scaled: Vec<f64> = z.row(3).iter().copied().collect();
        assert_eq!(bits(&scaler.transform_row(&row)), bits(&scaled));
        let empty = Scaler::fit(&DMatrix::<f64>::zeros(0, 2));
        assert_eq!((empty.mean, empty.std), (vec![0.0, 0.0], vec![1.0, 1.0]));
    }

    /// `n` klines of a one-minute series with closes `close(i)` at rows `rows`.
    fn closes(rows: impl Iterator<Item = usize>, close: impl Fn(usize) -> f64) -> Series {
        let mut s = Series::default();
        for i in rows {
            let c = close(i);
            s.push(&KlineValues {
                open_time: i as i64 * 60_000,
                open: c,
                high: c,
                low: c,
                close: c,
                volume: 1.0,
                close_time: i as i64 * 60_000 + 59_999,
                quote_volume: 0.0,
                trades: 1.0,
                taker_buy_base: 0.5,
                taker_buy_quote: 0.0,
            });
        }
        s
    }

    /// The hand-made 3-symbol series: the main symbol (70 rows), AUSDT without its kline of
    /// row 65, BUSDT from row 50 to row 68.
    fn three_symbols() -> (Series, FeatureSpec) {
        let mut s = closes(0..70, |i| 100.0 * 1.01f64.powi(i as i32));
        let a = closes((0..70).filter(|&i| i != 65), |i| {
            50.0 * 1.02f64.powi(i as i32)
        });
        let b = closes(50..69, |i| 20.0 * 0.99f64.powi(i as i32));
        s.corr = vec![align_corr(&s, "AUSDT", &a), align_corr(&s, "BUSDT", &b)];
        let spec = FeatureSpec::new(1, vec!["AUSDT".to_string(), "BUSDT".to_string()]);
        (s, spec)
    }

    /// Backs README claim [C23]: the correlated columns' exact values on a hand-made 3-symbol
    /// series, with a missing kline (carried: return 0, stale 1, the next return makes up the
    /// move), a symbol that starts late (returns reaching before it are 0) and one that ends
    /// early; the own 14 columns are unchanged and the dataset equals the rows bit for bit.
    #[test]
    fn corr_columns_exact_on_three_symbols() {
        let (s, spec) = three_symbols();
        assert_eq!(spec.version, CORR_FEATURE_VERSION);
        assert!(spec.supported());
        assert_eq!(spec.n_features(), 24);
        assert_eq!(spec.names()[14], "AUSDT_ret_0");
        assert_eq!(spec.names()[23], "BUSDT_stale");
        let (a, b) = (1.02f64.ln(), 0.99f64.ln());
        let want = |t: usize| -> [f64; 10] {
            match t {
                60 => [a, a, a, 15.0 * a, 0.0, b, b, b, 0.0, 0.0],
                // BUSDT's 15-bar return reads row 49, before its first kline.
                64 => [a, a, a, 15.0 * a, 0.0, b, b, b, 0.0, 0.0],
                65 => [0.0, a, a, 14.0 * a, 1.0, b, b, b, 15.0 * b, 0.0],
                66 => [2.0 * a, 0.0, a, 15.0 * a, 0.0, b, b, b, 15.0 * b, 0.0],
                69 => [a, a, a, 15.0 * a, 0.0, 0.0, b, b, 14.0 * b, 1.0],
                _ => unreachable!(),
            }
        };
        let own = FeatureSpec::default();
        let ds = spec.dataset(&s, 0..s.len());
        for t in [60, 64, 65, 66, 69] {
            let row = spec.row(&s, t).expect("row");
            assert_eq!(bits(&row[..14]), bits(&own.row(&s, t).expect("own row")));
            for (j, (got, want)) in row[14..].iter().zip(want(t)).enumerate() {
                assert!(
                    close_to(*got, want),
                    "t {t} column {}: {got} vs {want}",
                    14 + j
                );
            }
        }
        for (i, &t) in ds.t.iter().enumerate() {
            let from_ds: Vec<f64> = ds.x.row(i).iter().copied().collect();
            assert_eq!(
                bits(&spec.row(&s, t).expect("row")),
                bits(&from_ds),
                "t = {t}"
            );
        }
        // Pushing the same rows one by one (as backtest and the learner do) gives the same
        // series, and slicing keeps the columns aligned.
        let mut pushed = s.slice(0..10);
        for i in 10..s.len() {
            pushed.push_with_corr(&s.values(i, 60_000), &s.corr_values(i));
        }
        assert_eq!(pushed, s);
        let mut kept = s.clone();
        kept.keep_last(20);
        assert_eq!(kept, s.slice(50..70));
    }

    /// Backs README claim [C23]: a series without a correlated symbol's column gives that
    /// symbol the gap rule on every row (returns 0, stale 1), never a crash.
    #[test]
    fn a_missing_corr_column_is_the_gap_rule() {
        let s = synthetic(100, 8);
        let spec = FeatureSpec::new(1, vec!["XUSDT".to_string()]);
        let row = spec.row(&s, 80).expect("row");
        assert_eq!(row[14..], [0.0, 0.0, 0.0, 0.0, 1.0]);
        let ds = spec.dataset(&s, 0..100);
        assert!(ds.x.column(18).iter().all(|v| *v == 1.0));
    }

    /// Backs README claims [C1] and [C23] for the correlated columns: garbage in the neighbours' klines
    /// after row t (values, and extra klines opened between row t and t + 1) changes nothing at
    /// row t, bit for bit.
    #[test]
    fn corr_columns_never_read_the_future() {
        let s = synthetic(400, 2);
        let n1 = synthetic(400, 5);
        let n2 = synthetic(380, 6);
        let spec = FeatureSpec::new(1, vec!["AUSDT".to_string(), "BUSDT".to_string()]);
        let aligned = |a: &Series, b: &Series| {
            let mut s = s.clone();
            s.corr = vec![align_corr(&s, "AUSDT", a), align_corr(&s, "BUSDT", b)];
            s
        };
        let clean = aligned(&n1, &n2);
        let mut rng = Rng::new(4);
        for t in [60, 61, 120, 250, 379, 398] {
            let before = spec.row(&clean, t).expect("row");
            let mut garbage = |n: &Series| {
                let mut g = n.clone();
                let cut = g.open_time.partition_point(|&o| o <= s.open_time[t]);
                for i in cut..g.len() {
                    g.close[i] = rng.next_f64() * 1e6 + 1e-9;
                }
                // An extra kline opened 30 s after row t.
                let mut with_extra = g.slice(0..cut);
                let mut odd = g.values(cut.min(g.len() - 1), 60_000);
                odd.open_time = s.open_time[t] + 30_000;
                odd.close = 1e-6;
                with_extra.push(&odd);
                for i in cut..g.len() {
                    with_extra.push(&g.values(i, 60_000));
                }
                with_extra
            };
            let (g1, g2) = (garbage(&n1), garbage(&n2));
            let dirty = aligned(&g1, &g2);
            assert_eq!(
                bits(&before),
                bits(&spec.row(&dirty, t).expect("row")),
                "t = {t}"
            );
            let full = spec.dataset(&clean, 0..t + 1);
            let short = spec.dataset(&dirty, 0..t + 1);
            assert_eq!(full.x, short.x, "t = {t}");
        }
    }

    /// Backs README claim [C23]: a version 1 spec keeps the bytes it always had (model files
    /// from before `--corr` load), a version 2 spec round trips, a malformed one is refused.
    #[test]
    fn a_spec_without_corr_keeps_its_bytes_and_v2_round_trips() {
        let own = FeatureSpec::default();
        let old = postcard::to_allocvec(&(1u32, 1usize)).expect("bytes");
        assert_eq!(postcard::to_allocvec(&own).expect("bytes"), old);
        let back: FeatureSpec = postcard::from_bytes(&old).expect("reads");
        assert_eq!(back, own);
        let corr = FeatureSpec::new(5, vec!["ETHUSDT".to_string(), "BTCUSDT".to_string()]);
        let bytes = postcard::to_allocvec(&(corr.clone(), 7u8)).expect("bytes");
        let (back, next): (FeatureSpec, u8) = postcard::from_bytes(&bytes).expect("reads");
        assert_eq!((back, next), (corr.clone(), 7));
        let json = serde_json::to_string(&corr).expect("json");
        assert_eq!(
            serde_json::from_str::<FeatureSpec>(&json).expect("json"),
            corr
        );
        let bad = [
            FeatureSpec {
                corr: vec!["A".to_string()],
                ..FeatureSpec::default()
            },
            FeatureSpec::new(1, vec!["A".to_string(), "A".to_string()]),
            FeatureSpec::new(1, vec!["A".to_string(); MAX_CORR + 1]),
            FeatureSpec {
                version: CORR_FEATURE_VERSION,
                ..FeatureSpec::default()
            },
        ];
        assert!(bad.iter().all(|s| !s.supported()));
        assert!(own.supported());
    }
}
