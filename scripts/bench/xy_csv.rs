//! The CSV reader shared by the side-by-side benches (`gbdt.rs`, `parity.rs`; included with
//! `#[path]`): a header line, then numeric rows whose last column is the target.

use std::path::Path;

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
