//! Shared by the side-by-side benches (`gbdt.rs`, `parity.rs`; included with `#[path]`): the
//! CSV reader (a header line, then numeric rows whose last column is the target), the calling
//! thread's CPU clock, and the request loop through which the Python drivers interleave our runs
//! with the reference's (`scripts/bench_side.py`).

use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Instant;

use serde_json::{json, Value};

use nalgebra::{DMatrix, DVector};

/// Reads `path` into the feature matrix and the target; `script` names the Python script that
/// writes the file, for the message when it is missing.
pub fn read_csv(path: &Path, script: &str) -> Result<(DMatrix<f64>, DVector<f64>), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}; run {script}", path.display()))?;
    let mut values = Vec::new();
    let mut cols = 0;
    for (n, line) in text.lines().enumerate().skip(1) {
        if line.is_empty() {
            continue;
        }
        let row: Result<Vec<f64>, _> = line.split(',').map(str::parse::<f64>).collect();
        let row = row.map_err(|e| format!("{} line {}: {e}", path.display(), n + 1))?;
        if cols == 0 {
            cols = row.len();
        }
        if row.len() != cols || cols < 2 {
            return Err(format!(
                "{} line {}: expected {cols} columns",
                path.display(),
                n + 1
            ));
        }
        values.extend(row);
    }
    let rows = values.len() / cols.max(1);
    let all = DMatrix::from_row_slice(rows, cols, &values);
    Ok((
        all.columns(0, cols - 1).into_owned(),
        all.column(cols - 1).into_owned(),
    ))
}

/// Seconds the calling thread has spent on a CPU (Linux `/proc/thread-self/schedstat`, in
/// nanoseconds), or NaN elsewhere: on one thread this is the work done, whatever else shares
/// the machine.
pub fn thread_cpu_s() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns * 1e-9)
}

/// A wall clock and the calling thread's CPU clock started together.
pub struct Clocks {
    wall: Instant,
    cpu: f64,
}

impl Clocks {
    pub fn start() -> Clocks {
        Clocks {
            wall: Instant::now(),
            cpu: thread_cpu_s(),
        }
    }

    /// (wall seconds, CPU seconds of the calling thread) since [`Clocks::start`].
    pub fn read(&self) -> (f64, f64) {
        (self.wall.elapsed().as_secs_f64(), thread_cpu_s() - self.cpu)
    }
}

/// Answers requests until stdin closes: each line is split on whitespace and handed to
/// `handle`, whose JSON object (or `{"error": ...}`) is printed as one line and flushed, so a
/// driver can alternate single runs of ours with single runs of the reference.
pub fn serve(mut handle: impl FnMut(&[&str]) -> Result<Value, String>) {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { return };
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() {
            continue;
        }
        let answer = handle(&words).unwrap_or_else(|e| json!({ "error": e }));
        if writeln!(stdout, "{answer}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return;
        }
    }
}
