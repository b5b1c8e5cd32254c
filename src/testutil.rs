//! Test support shared by the unit tests inside `src/` (process tests in `tests/` use
//! `tests/common`, which unit tests cannot reach): a self-removing temp directory, the
//! synthetic kline fixture and the models' postcard round trip. Compiled only for tests.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use nalgebra::{DMatrix, DVector};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::kline::Kline;
use crate::models::Regressor;

/// A fresh, empty directory under the system temp dir, removed with everything in it on drop.
pub(crate) struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<temp>/klinecast-unit-<name>-<pid>-<n>`; `name` should be the test's name.
    pub(crate) fn new(name: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("klinecast-unit-{name}-{}-{n}", std::process::id()));
        // A leftover from a killed run with the same pid would make the test see stale files.
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("creating the test's temp dir");
        TempDir { path }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// `<dir>/<name>` (not created).
    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `text` to `<dir>/<name>` and returns its path.
    pub(crate) fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path.join(name);
        fs::write(&p, text).expect("write fixture");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// One minute in ms.
const MIN: i64 = 60_000;

/// The synthetic closed 1-minute kline number `i` (open time `i` minutes, close `10.<i>`).
pub(crate) fn kline(i: i64) -> Kline {
    Kline {
        open_time: i * MIN,
        open: "10.5".into(),
        high: "11".into(),
        low: "10".into(),
        close: format!("10.{i}"),
        volume: "100".into(),
        close_time: i * MIN + MIN - 1,
        quote_volume: "1050".into(),
        trades: 7,
        taker_buy_base: "50".into(),
        taker_buy_quote: "525".into(),
    }
}

/// Serializes `model` with postcard, reads it back, and asserts that the copy predicts every
/// row of `queries` to the bit; returns the copy (the model files' round trip, per model).
pub(crate) fn assert_postcard_round_trip<M>(model: &M, queries: &DMatrix<f64>) -> M
where
    M: Regressor + Serialize + DeserializeOwned,
{
    let bytes = postcard::to_allocvec(model).expect("serialize");
    let back: M = postcard::from_bytes(&bytes).expect("deserialize");
    let bits = |v: DVector<f64>| v.iter().map(|p| p.to_bits()).collect::<Vec<u64>>();
    assert_eq!(bits(model.predict(queries)), bits(back.predict(queries)));
    back
}
