//! The kline domain type, the validated symbol and interval, and the columnar series that
//! pure code (features, models) reads. No I/O here: the CSV store and the Binance client convert
//! to and from these types.

use std::fmt;

/// The kline CSV header, exactly as stored in `<data-dir>/<SYMBOL>_<interval>.csv`.
pub const CSV_HEADER: &str =
    "open_time,open,high,low,close,volume,close_time,quote_volume,trades,taker_buy_base,taker_buy_quote";

/// One closed kline. Prices and volumes are kept as the decimal text Binance sent, byte for
/// byte, so that stored files round-trip exactly; [`Kline::values`] parses them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kline {
    pub open_time: i64,
    pub open: String,
    pub high: String,
    pub low: String,
    pub close: String,
    pub volume: String,
    pub close_time: i64,
    pub quote_volume: String,
    pub trades: u64,
    pub taker_buy_base: String,
    pub taker_buy_quote: String,
}

/// The numeric view of a kline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KlineValues {
    pub open_time: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
    pub close_time: i64,
    pub quote_volume: f64,
    pub trades: f64,
    pub taker_buy_base: f64,
    pub taker_buy_quote: f64,
}

/// Why a kline (from a CSV line or the wire) was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KlineError {
    /// The line does not have exactly 11 comma-separated fields.
    FieldCount(usize),
    /// A field is not a valid number of its kind.
    BadField { field: &'static str, text: String },
    /// A price or volume is not finite and non-negative, or high/low do not bracket open/close.
    Inconsistent(String),
}

impl fmt::Display for KlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KlineError::FieldCount(n) => write!(f, "expected 11 comma-separated fields, found {n}"),
            KlineError::BadField { field, text } => {
                write!(f, "field `{field}` is not a valid number: {text:?}")
            }
            KlineError::Inconsistent(why) => write!(f, "inconsistent kline: {why}"),
        }
    }
}

impl std::error::Error for KlineError {}

/// The CSV column names, in order (the store's fast loader reports errors with them too).
pub(crate) const FIELD_NAMES: [&str; 11] = [
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "trades",
    "taker_buy_base",
    "taker_buy_quote",
];

/// True when `text` is a plain non-negative decimal as Binance sends it: digits with at most
/// one dot, nothing else (no sign, exponent, NaN, inf, spaces or commas).
pub(crate) fn is_plain_decimal(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() > 40 {
        return false;
    }
    let mut dots = 0;
    let mut digits = 0;
    for &b in bytes {
        match b {
            b'0'..=b'9' => digits += 1,
            b'.' => dots += 1,
            _ => return false,
        }
    }
    dots <= 1 && digits > 0
}

fn parse_int(field: &'static str, text: &str) -> Result<i64, KlineError> {
    let ok = !text.is_empty()
        && text.len() <= 19
        && text
            .bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_digit() || (i == 0 && b == b'-' && text.len() > 1));
    match ok.then(|| text.parse::<i64>().ok()).flatten() {
        Some(v) => Ok(v),
        None => Err(KlineError::BadField {
            field,
            text: text.to_string(),
        }),
    }
}

fn decimal(field: &'static str, text: &str) -> Result<String, KlineError> {
    if is_plain_decimal(text) {
        Ok(text.to_string())
    } else {
        Err(KlineError::BadField {
            field,
            text: text.to_string(),
        })
    }
}

impl Kline {
    /// Parses one CSV data line (no trailing newline) in the store's column order.
    pub fn from_csv_line(line: &str) -> Result<Kline, KlineError> {
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != 11 {
            return Err(KlineError::FieldCount(fields.len()));
        }
        let trades = parse_int(FIELD_NAMES[8], fields[8])?;
        if trades < 0 {
            return Err(KlineError::BadField {
                field: FIELD_NAMES[8],
                text: fields[8].to_string(),
            });
        }
        let kline = Kline {
            open_time: parse_int(FIELD_NAMES[0], fields[0])?,
            open: decimal(FIELD_NAMES[1], fields[1])?,
            high: decimal(FIELD_NAMES[2], fields[2])?,
            low: decimal(FIELD_NAMES[3], fields[3])?,
            close: decimal(FIELD_NAMES[4], fields[4])?,
            volume: decimal(FIELD_NAMES[5], fields[5])?,
            close_time: parse_int(FIELD_NAMES[6], fields[6])?,
            quote_volume: decimal(FIELD_NAMES[7], fields[7])?,
            trades: trades as u64,
            taker_buy_base: decimal(FIELD_NAMES[9], fields[9])?,
            taker_buy_quote: decimal(FIELD_NAMES[10], fields[10])?,
        };
        kline.validate()?;
        Ok(kline)
    }

    /// True when both klines have the same open and close times, trade count and decimal
    /// values (compared as numbers, so `"1.50"` equals `"1.5"`): the REST and WebSocket APIs may
    /// format the same closed kline differently, but a closed kline never changes its values.
    pub(crate) fn same_values(&self, other: &Kline) -> bool {
        let a = self.values();
        let b = other.values();
        self.open_time == other.open_time
            && self.close_time == other.close_time
            && self.trades == other.trades
            && [
                (a.open, b.open),
                (a.high, b.high),
                (a.low, b.low),
                (a.close, b.close),
                (a.volume, b.volume),
                (a.quote_volume, b.quote_volume),
                (a.taker_buy_base, b.taker_buy_base),
                (a.taker_buy_quote, b.taker_buy_quote),
            ]
            .iter()
            .all(|(x, y)| x == y)
    }

    /// The CSV data line for this kline, without a trailing newline.
    pub fn to_csv_line(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{},{},{},{}",
            self.open_time,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
            self.close_time,
            self.quote_volume,
            self.trades,
            self.taker_buy_base,
            self.taker_buy_quote
        )
    }

    /// Checks the decimal fields and basic consistency (times ordered, prices positive and
    /// finite). Used for every kline that enters the program, from a file or the wire.
    pub fn validate(&self) -> Result<(), KlineError> {
        let texts = [
            (FIELD_NAMES[1], &self.open),
            (FIELD_NAMES[2], &self.high),
            (FIELD_NAMES[3], &self.low),
            (FIELD_NAMES[4], &self.close),
            (FIELD_NAMES[5], &self.volume),
            (FIELD_NAMES[7], &self.quote_volume),
            (FIELD_NAMES[9], &self.taker_buy_base),
            (FIELD_NAMES[10], &self.taker_buy_quote),
        ];
        for (field, text) in texts {
            if !is_plain_decimal(text) {
                return Err(KlineError::BadField {
                    field,
                    text: text.to_string(),
                });
            }
        }
        // The CSV store reads counts as i64: a larger count could be stored but never loaded.
        if i64::try_from(self.trades).is_err() {
            return Err(KlineError::BadField {
                field: FIELD_NAMES[8],
                text: self.trades.to_string(),
            });
        }
        if self.open_time < 0 || self.close_time < self.open_time {
            return Err(KlineError::Inconsistent(format!(
                "close_time {} before open_time {}",
                self.close_time, self.open_time
            )));
        }
        let v = self.values();
        let finite = [
            v.open,
            v.high,
            v.low,
            v.close,
            v.volume,
            v.quote_volume,
            v.taker_buy_base,
            v.taker_buy_quote,
        ]
        .iter()
        .all(|x| x.is_finite());
        if !finite {
            return Err(KlineError::Inconsistent(
                "a value is not finite".to_string(),
            ));
        }
        if v.open <= 0.0 || v.close <= 0.0 || v.high <= 0.0 || v.low <= 0.0 {
            return Err(KlineError::Inconsistent("a price is zero".to_string()));
        }
        if v.high < v.low {
            return Err(KlineError::Inconsistent(format!(
                "high {} below low {}",
                self.high, self.low
            )));
        }
        Ok(())
    }

    /// The numeric values. Decimal text that passed [`Kline::validate`] always parses.
    pub fn values(&self) -> KlineValues {
        let p = |s: &str| s.parse::<f64>().unwrap_or(f64::NAN);
        KlineValues {
            open_time: self.open_time,
            open: p(&self.open),
            high: p(&self.high),
            low: p(&self.low),
            close: p(&self.close),
            volume: p(&self.volume),
            close_time: self.close_time,
            quote_volume: p(&self.quote_volume),
            trades: self.trades as f64,
            taker_buy_base: p(&self.taker_buy_base),
            taker_buy_quote: p(&self.taker_buy_quote),
        }
    }
}

/// The decimal places a market quotes its prices at, read from the klines' own decimal text:
/// the most decimals, trailing zeros dropped, of any open, high, low or close (Binance pads
/// BTCUSDT's `7186.68` to `7186.68000000`, so that is 2, and AVAXUSDT's `6.5340` is 3). At most
/// 8, Binance's widest.
pub fn price_decimals(klines: &[Kline]) -> usize {
    let decimals = |text: &str| {
        text.split_once('.')
            .map_or(0, |(_, frac)| frac.trim_end_matches('0').len())
    };
    klines
        .iter()
        .flat_map(|k| [&k.open, &k.high, &k.low, &k.close])
        .map(|t| decimals(t))
        .max()
        .unwrap_or(0)
        .min(8)
}

/// A trading pair such as `BTCUSDT`: 2 to 20 ASCII uppercase letters or digits. It becomes part
/// of a file name, so nothing else is accepted (`../x`, `a/b` are refused).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Symbol(String);

impl Symbol {
    /// Validates a symbol; lowercase input is upper-cased (REST wants uppercase).
    pub fn parse(text: &str) -> Result<Symbol, String> {
        let upper = text.to_ascii_uppercase();
        let ok = (2..=20).contains(&upper.len())
            && upper
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if ok {
            Ok(Symbol(upper))
        } else {
            Err(format!(
                "invalid symbol {text:?}: use 2 to 20 letters or digits, such as BTCUSDT"
            ))
        }
    }

    /// Uppercase, as REST wants it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Lowercase, as WebSocket stream names want it.
    pub fn lower(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Binance kline interval of fixed length (`1M`, the calendar month, is not supported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interval {
    text: &'static str,
    ms: i64,
}

const INTERVALS: [(&str, i64); 15] = [
    ("1s", 1_000),
    ("1m", 60_000),
    ("3m", 180_000),
    ("5m", 300_000),
    ("15m", 900_000),
    ("30m", 1_800_000),
    ("1h", 3_600_000),
    ("2h", 7_200_000),
    ("4h", 14_400_000),
    ("6h", 21_600_000),
    ("8h", 28_800_000),
    ("12h", 43_200_000),
    ("1d", 86_400_000),
    ("3d", 259_200_000),
    ("1w", 604_800_000),
];

impl Interval {
    /// The 1-minute interval.
    pub const ONE_MINUTE: Interval = Interval {
        text: "1m",
        ms: 60_000,
    };

    /// Parses a Binance interval name (case-sensitive: `1m` is a minute).
    pub fn parse(text: &str) -> Result<Interval, String> {
        match INTERVALS.iter().find(|(name, _)| *name == text) {
            Some(&(name, ms)) => Ok(Interval { text: name, ms }),
            None => Err(format!(
                "invalid interval {text:?}: use one of {}",
                INTERVALS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    pub fn as_str(&self) -> &'static str {
        self.text
    }

    /// Length in milliseconds.
    pub fn ms(&self) -> i64 {
        self.ms
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text)
    }
}

/// Klines as columns of numbers, ascending by open time: what features and models read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub open_time: Vec<i64>,
    pub open: Vec<f64>,
    pub high: Vec<f64>,
    pub low: Vec<f64>,
    pub close: Vec<f64>,
    pub volume: Vec<f64>,
    pub quote_volume: Vec<f64>,
    pub trades: Vec<f64>,
    pub taker_buy_base: Vec<f64>,
    pub taker_buy_quote: Vec<f64>,
    /// The correlated symbols' closes aligned to these rows (`--corr`, issue 23); empty
    /// without `--corr`. Each column has one entry per row.
    pub corr: Vec<CorrColumn>,
}

/// A correlated symbol's klines aligned to a series' rows by open time (see
/// `features::align_corr` for the rule): at row t, the close of its newest kline whose open time
/// is ≤ row t's (carried over a gap or a late kline, so its return is 0 there), and whether that
/// kline is row t's own minute (`fresh`). Before its first kline the close is 0 (its returns are
/// then 0 by the features' finite-value rule) and `fresh` is false.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CorrColumn {
    pub symbol: String,
    pub close: Vec<f64>,
    pub fresh: Vec<bool>,
}

impl CorrColumn {
    /// An empty column for `symbol`.
    pub fn new(symbol: &str) -> CorrColumn {
        CorrColumn {
            symbol: symbol.to_string(),
            ..CorrColumn::default()
        }
    }

    /// Appends one row: `Some(close)` is the symbol's kline of that row's minute; `None` carries
    /// the last close (the gap rule).
    pub fn push(&mut self, close: Option<f64>) {
        let carried = self.close.last().copied().unwrap_or(0.0);
        self.close.push(close.unwrap_or(carried));
        self.fresh.push(close.is_some());
    }
}

impl Series {
    pub fn with_capacity(n: usize) -> Series {
        Series {
            open_time: Vec::with_capacity(n),
            open: Vec::with_capacity(n),
            high: Vec::with_capacity(n),
            low: Vec::with_capacity(n),
            close: Vec::with_capacity(n),
            volume: Vec::with_capacity(n),
            quote_volume: Vec::with_capacity(n),
            trades: Vec::with_capacity(n),
            taker_buy_base: Vec::with_capacity(n),
            taker_buy_quote: Vec::with_capacity(n),
            corr: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.open_time.len()
    }

    /// `(open_time, close)` of every kline, ascending: what the pages draw as the price line.
    pub fn closes(&self) -> Vec<(i64, f64)> {
        self.open_time
            .iter()
            .copied()
            .zip(self.close.iter().copied())
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.open_time.is_empty()
    }

    pub fn push(&mut self, v: &KlineValues) {
        self.open_time.push(v.open_time);
        self.open.push(v.open);
        self.high.push(v.high);
        self.low.push(v.low);
        self.close.push(v.close);
        self.volume.push(v.volume);
        self.quote_volume.push(v.quote_volume);
        self.trades.push(v.trades);
        self.taker_buy_base.push(v.taker_buy_base);
        self.taker_buy_quote.push(v.taker_buy_quote);
        for column in &mut self.corr {
            column.push(None);
        }
    }

    /// [`Series::push`] with the correlated symbols' closes of the same minute, one per
    /// [`Series::corr`] column in order (`None`, or a missing entry: not there, carried).
    pub fn push_with_corr(&mut self, v: &KlineValues, corr: &[Option<f64>]) {
        let columns = std::mem::take(&mut self.corr);
        self.push(v);
        self.corr = columns;
        for (i, column) in self.corr.iter_mut().enumerate() {
            column.push(corr.get(i).copied().flatten());
        }
    }

    /// The correlated closes of row `i` as [`Series::push_with_corr`] takes them.
    pub fn corr_values(&self, i: usize) -> Vec<Option<f64>> {
        self.corr
            .iter()
            .map(|c| c.fresh[i].then_some(c.close[i]))
            .collect()
    }

    /// Row `i` as one kline's values; `close_time` is derived from the interval.
    pub fn values(&self, i: usize, interval_ms: i64) -> KlineValues {
        KlineValues {
            open_time: self.open_time[i],
            open: self.open[i],
            high: self.high[i],
            low: self.low[i],
            close: self.close[i],
            volume: self.volume[i],
            close_time: self.open_time[i] + interval_ms - 1,
            quote_volume: self.quote_volume[i],
            trades: self.trades[i],
            taker_buy_base: self.taker_buy_base[i],
            taker_buy_quote: self.taker_buy_quote[i],
        }
    }

    /// Rows `range` as a new series.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Series {
        Series {
            open_time: self.open_time[range.clone()].to_vec(),
            open: self.open[range.clone()].to_vec(),
            high: self.high[range.clone()].to_vec(),
            low: self.low[range.clone()].to_vec(),
            close: self.close[range.clone()].to_vec(),
            volume: self.volume[range.clone()].to_vec(),
            quote_volume: self.quote_volume[range.clone()].to_vec(),
            trades: self.trades[range.clone()].to_vec(),
            taker_buy_base: self.taker_buy_base[range.clone()].to_vec(),
            taker_buy_quote: self.taker_buy_quote[range.clone()].to_vec(),
            corr: self
                .corr
                .iter()
                .map(|c| CorrColumn {
                    symbol: c.symbol.clone(),
                    close: c.close[range.clone()].to_vec(),
                    fresh: c.fresh[range.clone()].to_vec(),
                })
                .collect(),
        }
    }

    /// Drops the oldest rows so that at most `keep` remain.
    pub(crate) fn keep_last(&mut self, keep: usize) {
        let n = self.len();
        if n <= keep {
            return;
        }
        let cut = n - keep;
        self.open_time.drain(..cut);
        self.open.drain(..cut);
        self.high.drain(..cut);
        self.low.drain(..cut);
        self.close.drain(..cut);
        self.volume.drain(..cut);
        self.quote_volume.drain(..cut);
        self.trades.drain(..cut);
        self.taker_buy_base.drain(..cut);
        self.taker_buy_quote.drain(..cut);
        for column in &mut self.corr {
            column.close.drain(..cut);
            column.fresh.drain(..cut);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn price_decimals_ignore_binance_padding() {
        let mut a = Kline::from_csv_line(LINE).expect("a kline");
        (a.open, a.high, a.low, a.close) = (
            "7186.68000000".into(),
            "7190.1".into(),
            "7180.00000000".into(),
            "7186.60000000".into(),
        );
        assert_eq!(price_decimals(std::slice::from_ref(&a)), 2);
        let mut b = a.clone();
        b.low = "7180.005".into();
        assert_eq!(price_decimals(&[a.clone(), b]), 3);
        a.close = "7186".into();
        (a.open, a.high, a.low) = ("7186".into(), "7186".into(), "7186".into());
        assert_eq!(price_decimals(&[a]), 0);
        assert_eq!(price_decimals(&[]), 0);
    }

    use super::*;

    const LINE: &str = "1780272000000,8.9810,8.9820,8.9710,8.9740,17315,1780272059999,155466.8640,397,7701,69159.0090";

    #[test]
    fn csv_line_round_trips_byte_for_byte() {
        let k = Kline::from_csv_line(LINE).expect("valid line");
        assert_eq!(k.to_csv_line(), LINE);
        assert_eq!(k.values().close, 8.974);
        assert_eq!(k.trades, 397);
    }

    #[test]
    fn bad_lines_are_refused() {
        assert_eq!(
            Kline::from_csv_line("1,2,3"),
            Err(KlineError::FieldCount(3))
        );
        let nan = LINE.replace("8.9740", "NaN");
        assert!(matches!(
            Kline::from_csv_line(&nan),
            Err(KlineError::BadField { field: "close", .. })
        ));
        let inf = LINE.replace("17315", "inf");
        assert!(Kline::from_csv_line(&inf).is_err());
        // A trade count the CSV store could not read back is refused everywhere.
        let mut huge = Kline::from_csv_line(LINE).expect("valid line");
        huge.trades = 1 << 63;
        assert!(matches!(
            huge.validate(),
            Err(KlineError::BadField {
                field: "trades",
                ..
            })
        ));
        let neg = LINE.replace("8.9740", "-8.9740");
        assert!(Kline::from_csv_line(&neg).is_err());
        let exp = LINE.replace("8.9740", "8.9e0");
        assert!(Kline::from_csv_line(&exp).is_err());
        let zero = LINE.replace("8.9740", "0.0000");
        assert!(Kline::from_csv_line(&zero).is_err());
        let swapped = LINE.replace("8.9820,8.9710", "8.9710,8.9820");
        assert!(Kline::from_csv_line(&swapped).is_err());
    }

    #[test]
    fn symbols_that_could_escape_a_path_are_refused() {
        for bad in [
            "../x",
            "a/b",
            "",
            "B",
            "BTC USDT",
            "BTC.USDT",
            "ABCDEFGHIJKLMNOPQRSTU",
            "..",
            "BTC\0",
        ] {
            assert!(Symbol::parse(bad).is_err(), "{bad:?} must be refused");
        }
        assert_eq!(
            Symbol::parse("btcusdt").map(|s| s.to_string()),
            Ok("BTCUSDT".to_string())
        );
        assert_eq!(
            Symbol::parse("BTCUSDT").map(|s| s.lower()),
            Ok("btcusdt".to_string())
        );
    }

    #[test]
    fn intervals_are_case_sensitive() {
        assert_eq!(Interval::parse("1m").map(|i| i.ms()), Ok(60_000));
        assert!(Interval::parse("1M").is_err());
        assert!(Interval::parse("2m").is_err());
        assert!(Interval::parse("../1m").is_err());
        assert_eq!(Interval::parse("1h").map(|i| i.ms()), Ok(3_600_000));
    }

    #[test]
    fn series_keeps_last_rows() {
        let k = Kline::from_csv_line(LINE).expect("valid").values();
        let mut s = Series::default();
        for i in 0..5 {
            let mut v = k;
            v.open_time += i * 60_000;
            s.push(&v);
        }
        s.keep_last(2);
        assert_eq!(s.len(), 2);
        assert_eq!(s.open_time[0], k.open_time + 3 * 60_000);
        assert_eq!(s.slice(1..2).open_time, vec![k.open_time + 4 * 60_000]);
    }
}
