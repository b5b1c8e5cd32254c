//! Shared by the side-by-side benches (`gbdt.rs`, `parity.rs`; included with `#[path]`): the
//! CSV reader (a header line, then numeric rows whose last column is the target) and the
//! request loop through which the Python drivers interleave our runs with the reference's and
//! read our CPU clock between phases (`scripts/bench_side.py`).

use std::io::{BufRead, Write};
use std::path::Path;

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

/// The driver of a `--serve` run, told where each timed phase ends so that it can read our
/// process's CPU clock at that moment (`scripts/bench_side.py`, through Linux's
/// `clock_gettime` on this process's CPU clock, which counts to the nanosecond, running
/// slice included). Measured from outside because the only clock of a thread that safe Rust
/// can read here, `/proc/thread-self/schedstat`, moves only at scheduler ticks and context
/// switches: a few ms out, and any correction of that came out negative under load.
pub struct Driver {
    io: Option<(std::io::StdinLock<'static>, std::io::Stdout)>,
}

impl Driver {
    /// No driver (a one-shot run): marks do nothing and only wall times are reported.
    pub fn none() -> Driver {
        Driver { io: None }
    }

    /// Tells the driver that `phase` just ended (`{"phase": ...}` on its own line) and waits
    /// for its acknowledgement (an empty line), sent once it has read our CPU clock: while we
    /// wait we use no CPU, so the reading falls exactly between two phases.
    pub fn mark(&mut self, phase: &str) {
        let Some((stdin, stdout)) = &mut self.io else {
            return;
        };
        if writeln!(stdout, "{}", json!({ "phase": phase }))
            .and_then(|()| stdout.flush())
            .is_ok()
        {
            let mut ack = String::new();
            let _ = stdin.read_line(&mut ack);
        }
    }
}

/// Answers requests until stdin closes: each line is split on whitespace and handed to
/// `handle` with the [`Driver`] (for the marks between timed phases), whose JSON object (or
/// `{"error": ...}`) is printed as one line and flushed, so a driver can alternate single runs
/// of ours with single runs of the reference.
pub fn serve(mut handle: impl FnMut(&[&str], &mut Driver) -> Result<Value, String>) {
    let mut driver = Driver {
        io: Some((std::io::stdin().lock(), std::io::stdout())),
    };
    loop {
        let mut line = String::new();
        let read = match &mut driver.io {
            Some((stdin, _)) => stdin.read_line(&mut line),
            None => return,
        };
        if !matches!(read, Ok(n) if n > 0) {
            return;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() {
            continue;
        }
        let answer = handle(&words, &mut driver).unwrap_or_else(|e| json!({ "error": e }));
        let Some((_, stdout)) = &mut driver.io else {
            return;
        };
        if writeln!(stdout, "{answer}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return;
        }
    }
}
