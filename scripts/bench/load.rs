//! Benchmark of `store::load_series`: writes a 1.5 M-row kline CSV (the real sample's rows
//! repeated with shifted times, so the text looks like real data) into a temp dir, loads it a
//! few times and prints rows/s and the peak RSS (VmHWM). Run: `cargo bench --bench load`.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use klinecast::kline::CSV_HEADER;
use klinecast::store;

const ROWS: usize = 1_500_000;

fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User + system CPU seconds of this process so far (from /proc/self/stat, 100 ticks/s).
fn cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn main() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/AVAXUSDT_1m.csv");
    let klines = match store::load_klines(&sample) {
        Ok(k) if !k.is_empty() => k,
        Ok(_) => return eprintln!("the sample {} is empty", sample.display()),
        Err(e) => return eprintln!("cannot read the sample: {e}"),
    };
    let dir = std::env::temp_dir().join(format!("klinecast-bench-load-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return eprintln!("cannot create {}: {e}", dir.display());
    }
    let path = dir.join("BENCH_1m.csv");
    let span = klines.len() as i64 * 60_000;
    let mut text = String::with_capacity(ROWS * 100);
    text.push_str(CSV_HEADER);
    text.push('\n');
    for i in 0..ROWS {
        let mut k = klines[i % klines.len()].clone();
        let shift = (i / klines.len()) as i64 * span;
        k.open_time += shift;
        k.close_time += shift;
        text.push_str(&k.to_csv_line());
        text.push('\n');
    }
    let written = std::fs::File::create(&path).and_then(|mut f| f.write_all(text.as_bytes()));
    if let Err(e) = written {
        return eprintln!("cannot write {}: {e}", path.display());
    }
    let bytes = text.len();
    drop(text);
    drop(klines);
    let rss_before = vm_hwm_kib().unwrap_or(0);
    println!(
        "file: {ROWS} rows, {:.1} MB; VmHWM before loading: {:.1} MB",
        bytes as f64 / 1e6,
        rss_before as f64 / 1024.0
    );
    for run in 1..=3 {
        let t = Instant::now();
        let cpu0 = cpu_secs().unwrap_or(0.0);
        match store::load_series(&path) {
            Ok(series) => {
                let secs = t.elapsed().as_secs_f64();
                let cpu = cpu_secs().unwrap_or(0.0) - cpu0;
                println!(
                    "run {run}: load_series {} rows in {:.3} s wall = {:.2} M rows/s \
                     ({:.0} MB/s); {:.2} s CPU (both threads); VmHWM {:.1} MB",
                    series.len(),
                    secs,
                    series.len() as f64 / secs / 1e6,
                    bytes as f64 / secs / 1e6,
                    cpu,
                    vm_hwm_kib().unwrap_or(0) as f64 / 1024.0
                );
            }
            Err(e) => eprintln!("load_series failed: {e}"),
        }
    }
    let t = Instant::now();
    match store::load_klines(&path) {
        Ok(k) => println!(
            "for comparison: load_klines {} rows in {:.3} s",
            k.len(),
            t.elapsed().as_secs_f64()
        ),
        Err(e) => eprintln!("load_klines failed: {e}"),
    }
    if let Some(kib) = vm_hwm_kib() {
        println!(
            "peak RSS (VmHWM) after load_klines too: {:.1} MB",
            kib as f64 / 1024.0
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
