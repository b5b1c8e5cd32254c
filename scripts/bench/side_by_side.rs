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

/// The calling thread's CPU seconds and seconds spent waiting for a CPU (the first two fields
/// of Linux's `/proc/thread-self/schedstat`, in nanoseconds), or NaN elsewhere: on one thread
/// the first is the work done, whatever else shares the machine.
fn schedstat() -> (f64, f64) {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let mut fields = text
        .split_whitespace()
        .map(|v| v.parse::<f64>().map_or(f64::NAN, |ns| ns * 1e-9));
    let cpu = fields.next().unwrap_or(f64::NAN);
    (cpu, fields.next().unwrap_or(f64::NAN))
}

/// A wall clock and the calling thread's CPU clock started together.
///
/// The kernel adds to the thread's CPU total only at a scheduler tick or a context switch
/// (every few ms), so a plain difference of two readings is off by up to a tick: too coarse
/// for runs of a few ms. Both ends are therefore aligned on an update: `start` spins until
/// the total moves (the count is exact from there), and `read` spins until it moves again and
/// takes off the spin's own CPU time: its wall time less the time the thread waited for a CPU
/// meanwhile (the second schedstat field; under load the spin may be switched out).
pub struct Clocks {
    wall: Instant,
    cpu: f64,
}

/// The longest end spin [`Clocks::read`] trusts: a few scheduler ticks.
const MAX_SPIN_S: f64 = 0.012;

/// Spins until the thread's CPU total changes from `from` (at most a second): the new total,
/// the wait total then, and when it was seen.
fn next_cpu_update(from: f64) -> (f64, f64, Instant) {
    let limit = Instant::now();
    loop {
        let (cpu, wait) = schedstat();
        if cpu != from || cpu.is_nan() || limit.elapsed().as_secs() >= 1 {
            return (cpu, wait, Instant::now());
        }
    }
}

impl Clocks {
    pub fn start() -> Clocks {
        let (cpu, _, wall) = next_cpu_update(schedstat().0);
        Clocks { wall, cpu }
    }

    /// (wall seconds, CPU seconds of the calling thread) since [`Clocks::start`].
    pub fn read(&self) -> (f64, f64) {
        let (wall, before) = (self.wall.elapsed().as_secs_f64(), Instant::now());
        let (from, wait0) = schedstat();
        let (cpu, wait1, seen) = next_cpu_update(from);
        let spin = seen.duration_since(before).as_secs_f64() - (wait1 - wait0);
        // A spin longer than a few ticks means the wait was not accounted (the thread was
        // switched out and the total moved late): no CPU reading rather than a wrong one.
        if spin > MAX_SPIN_S {
            return (wall, f64::NAN);
        }
        (wall, cpu - self.cpu - spin.max(0.0))
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
