//! Reads the last rows of a kline CSV without loading the whole file: the ensembler's warm-up
//! history comes from the tail of a store that may hold years of klines. Read-only; the store
//! module owns writing (and has already repaired a torn last line when this runs).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::Error;
use crate::kline::{Kline, CSV_HEADER};

/// The last `n` klines of the CSV at `path`, ascending (fewer when the file is shorter).
pub fn read_tail(path: &Path, n: usize) -> Result<Vec<Kline>, Error> {
    let ctx = || format!("reading the tail of {}", path.display());
    let mut file = File::open(path).map_err(|e| Error::io(ctx(), e))?;
    let len = file.metadata().map_err(|e| Error::io(ctx(), e))?.len();
    if n == 0 || len == 0 {
        return Ok(Vec::new());
    }
    // Grow the window from the end until it holds n + 1 newlines (or the whole file).
    let mut chunk: u64 = (n as u64 + 2) * 128;
    let bytes = loop {
        let start = len.saturating_sub(chunk);
        file.seek(SeekFrom::Start(start))
            .map_err(|e| Error::io(ctx(), e))?;
        let mut buf = Vec::with_capacity((len - start) as usize);
        file.read_to_end(&mut buf)
            .map_err(|e| Error::io(ctx(), e))?;
        let newlines = buf.iter().filter(|&&b| b == b'\n').count();
        if start == 0 {
            break buf;
        }
        if newlines > n + 1 {
            // Drop the partial first line.
            let first = buf.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
            break buf[first..].to_vec();
        }
        chunk = chunk.saturating_mul(2);
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.is_empty() && *l != CSV_HEADER)
        .collect();
    let skip = lines.len().saturating_sub(n);
    lines[skip..]
        .iter()
        .map(|line| {
            Kline::from_csv_line(line).map_err(|e| {
                Error::Data(format!(
                    "{}: bad row {line:?}: {e}; run `klinecast collect` to check the store",
                    path.display()
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn kline(i: i64) -> Kline {
        Kline {
            open_time: i * 60_000,
            open: "1.5".into(),
            high: "2".into(),
            low: "1".into(),
            close: format!("1.{i}"),
            volume: "10".into(),
            close_time: i * 60_000 + 59_999,
            quote_volume: "15".into(),
            trades: 3,
            taker_buy_base: "5".into(),
            taker_buy_quote: "7.5".into(),
        }
    }

    #[test]
    fn tail_of_short_and_long_files() {
        let dir = std::env::temp_dir().join(format!("klinecast-tail-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("X_1m.csv");
        let mut text = format!("{CSV_HEADER}\n");
        for i in 0..500 {
            text.push_str(&kline(i).to_csv_line());
            text.push('\n');
        }
        fs::write(&path, &text).expect("write");
        let tail = read_tail(&path, 3).expect("tail");
        assert_eq!(tail, vec![kline(497), kline(498), kline(499)]);
        assert_eq!(read_tail(&path, 10_000).expect("all").len(), 500);
        assert_eq!(read_tail(&path, 500).expect("exact")[0], kline(0));
        assert!(read_tail(&path, 0).expect("none").is_empty());
        fs::write(&path, format!("{CSV_HEADER}\n")).expect("header only");
        assert!(read_tail(&path, 5).expect("empty").is_empty());
        let _ = fs::remove_dir_all(&dir);
    }
}
