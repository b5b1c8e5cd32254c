//! `klinecast describe`: the data description of a kline store ([`crate::stats`]) as text
//! tables on stdout and, with `--html`, a page of charts ([`crate::page::describe`], written
//! atomically; the data file is only read).

use std::path::Path;

use crate::cli::DescribeArgs;
use crate::error::Error;
use crate::kline::{Interval, Series};
use crate::page::describe::{
    acf_rows, column_rows, gap_line, return_rows, to_html, ACF_HEADER, COLUMN_HEADER, RETURN_HEADER,
};
use crate::stats::{describe, Description};
use crate::{page, store, time};

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
pub(crate) fn to_text(name: &str, symbol: &str, interval: &str, d: &Description) -> String {
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

/// Symbol and interval from a `<SYMBOL>_<interval>.csv` name, or else the interval inferred
/// from the smallest step between open times.
pub(crate) fn name_parts(path: &Path, s: &Series) -> (String, Interval) {
    if let Ok((sym, iv)) = store::parse_file_name(path) {
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
pub(crate) fn run(args: &DescribeArgs) -> Result<(), Error> {
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
        page::write(out, &html)?;
        println!("\nwrote {}", out.display());
    }
    Ok(())
}
