//! Golden fixture files in `tests/fixtures/` (written by the scripts in `scripts/`, committed;
//! no Python is run by the tests).

use std::path::PathBuf;

use serde_json::Value;

/// `tests/fixtures/NAME`, parsed as JSON.
pub fn load(name: &str) -> Value {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", name]
        .iter()
        .collect();
    let text = std::fs::read_to_string(&path).expect("fixture file is readable");
    serde_json::from_str(&text).expect("fixture is valid JSON")
}

/// A float stored as its decimal string (Python repr), parsed with `str::parse::<f64>`, which
/// rounds correctly, so the value is bit-identical to the float64 the script wrote.
pub fn num(v: &Value) -> f64 {
    v.as_str()
        .expect("fixture floats are strings")
        .parse()
        .expect("fixture float parses")
}
