//! The ensemble file, `<models-dir>/Ensembled/EnsembleModel.bin`: the live ensemble and the
//! open time of the last kline it has learnt from, in the common frame (tag `ENSM`, see
//! [`super`]). Trained members are saved without their model (they are re-attached from
//! `Trained/` on load, see [`Ensemble::attach_trained`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{decode_framed_since, read_file, save_framed, FileKind, PersistError, TAG_ENSEMBLE};
use crate::ensemble::{Ensemble, Forecast};

/// Format version of `EnsembleModel.bin` (the frame tag is `ENSM`).
/// v2: trained members saved without their model, CART nodes packed as bytes.
/// v4: window generations saved without their models, as the rows they were fitted on (they
/// are refitted from the kline store at start, see `ensemble::learner::restore_generations`):
/// the file shrinks from megabytes to the recurrent members' state and the records.
/// v5: each expert keeps its gate record on two time scales and its record in the combination
/// expert's ML-Poly; the configuration holds the gate's two discounts (issue 20).
/// v6: the forecasts in flight at the save (`in_flight`, issue 22): the forecast made after a
/// window's last kline is made and written before the window's refit, so the pool that a
/// restart loads (refit included) cannot make it again; the restart scores the saved one. And
/// each ML-Poly record keeps whether its expert has cleared the evidence margin once
/// (`cleared`, see `ensemble::aggregate`; issue 20).
pub const ENSEMBLE_FILE_VERSION: u32 = 6;

/// Oldest version still read. A v3, v4 or v5 file lacks fields of the current records (the
/// postcard layout has no optional fields), so it is refused with the file format error, whose
/// hint says to delete the file: the stream then starts a fresh ensemble from the trained
/// models (and moves the old file aside).
pub(crate) const ENSEMBLE_FILE_OLDEST: u32 = 6;

/// `<models-dir>/Ensembled/EnsembleModel.bin`.
pub fn ensemble_path(models_dir: &Path) -> PathBuf {
    models_dir.join("Ensembled").join("EnsembleModel.bin")
}

/// What `EnsembleModel.bin` holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedEnsemble {
    /// The open time of the last kline the ensemble has learnt from (`None`: no kline yet).
    pub as_of_open_time: Option<i64>,
    pub ensemble: Ensemble,
    /// The forecasts made and not yet scored at the save, oldest first (at most the horizon
    /// of them, each made on or before `as_of_open_time` for a later kline).
    pub in_flight: Vec<Forecast>,
}

#[derive(Serialize)]
struct SavedEnsembleRef<'a> {
    as_of_open_time: Option<i64>,
    ensemble: &'a Ensemble,
    in_flight: &'a [Forecast],
}

/// Loads `EnsembleModel.bin` and checks it ([`Ensemble::check`]).
pub fn load_ensemble(path: &Path) -> Result<SavedEnsemble, PersistError> {
    let bytes = read_file(path, TAG_ENSEMBLE)?;
    decode_ensemble(path, &bytes)
}

/// [`load_ensemble`] on bytes already read from `path` (named in errors).
pub fn decode_ensemble(path: &Path, bytes: &[u8]) -> Result<SavedEnsemble, PersistError> {
    let saved = decode_framed_since(
        path,
        bytes,
        TAG_ENSEMBLE,
        ENSEMBLE_FILE_OLDEST,
        ENSEMBLE_FILE_VERSION,
    )?;
    check_saved(path, saved)
}

fn check_saved(path: &Path, saved: SavedEnsemble) -> Result<SavedEnsemble, PersistError> {
    let corrupt = |detail: String| PersistError::Corrupt {
        path: path.to_path_buf(),
        detail,
        kind: FileKind::Ensemble,
    };
    saved
        .ensemble
        .check()
        .map_err(|detail| corrupt(format!("malformed ensemble: {detail}")))?;
    let horizon = saved.ensemble.config().spec.horizon;
    let as_of = saved.as_of_open_time;
    let misplaced = saved
        .in_flight
        .iter()
        .any(|f| as_of.is_none_or(|t| f.as_of_open_time > t || f.target_open_time <= t));
    if saved.in_flight.len() > horizon || misplaced {
        return Err(corrupt(format!(
            "{} forecasts in flight that do not follow the save (at most {horizon}, made by \
             then, for later klines)",
            saved.in_flight.len()
        )));
    }
    Ok(saved)
}

/// Saves `EnsembleModel.bin` atomically.
pub(crate) fn save_ensemble(
    path: &Path,
    as_of: Option<i64>,
    ensemble: &Ensemble,
    in_flight: &[Forecast],
) -> Result<(), PersistError> {
    let value = SavedEnsembleRef {
        as_of_open_time: as_of,
        ensemble,
        in_flight,
    };
    save_framed(path, TAG_ENSEMBLE, ENSEMBLE_FILE_VERSION, &value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::encode_framed;

    /// The forecasts in flight round-trip (v6); forecasts that do not follow the save (made
    /// later, or for a kline already learnt) are refused, naming the file.
    #[test]
    fn forecasts_in_flight_round_trip_and_misplaced_ones_are_refused() {
        use crate::ensemble::learner::Learner;
        use crate::ensemble::EnsembleConfig;
        use crate::kline::Series;
        let dir = crate::testutil::TempDir::new("persist-in-flight");
        let path = ensemble_path(dir.path());
        let mut history = Series::default();
        for i in 0..30 {
            history.push(&crate::testutil::kline(i).values());
        }
        let ensemble = Ensemble::new(EnsembleConfig::default(), Vec::new(), 60_000).expect("naive");
        let learner = Learner::new(ensemble, history, 60_000);
        let in_flight = learner.in_flight();
        assert_eq!(in_flight.len(), 1);
        let as_of = Some(29 * 60_000);
        save_ensemble(&path, as_of, learner.ensemble(), &in_flight).expect("saves");
        let back = load_ensemble(&path).expect("loads");
        assert_eq!((back.as_of_open_time, &back.in_flight), (as_of, &in_flight));
        for bad_as_of in [Some(28 * 60_000), Some(30 * 60_000), None] {
            save_ensemble(&path, bad_as_of, learner.ensemble(), &in_flight).expect("saves");
            let err = load_ensemble(&path).expect_err("refused").to_string();
            assert!(err.contains("forecasts in flight"), "{err}");
            assert!(err.contains("EnsembleModel.bin"), "{err}");
        }
    }

    /// An ensemble file of an older format (v3–v5, before the records' `cleared` flag) is
    /// refused by version, naming the file, both versions and what to do.
    #[test]
    fn an_older_ensemble_file_is_refused_with_what_to_do() {
        let path = Path::new("models/Ensembled/EnsembleModel.bin");
        for old in [3, 4, 5] {
            let bytes = encode_framed(TAG_ENSEMBLE, old, &(Some(1i64), 7u8)).expect("encode");
            let err = decode_ensemble(path, &bytes).expect_err("refused");
            let text = err.to_string();
            assert!(
                text.contains(&format!("format v{old}, this build reads v6")),
                "{text}"
            );
            assert!(text.contains("EnsembleModel.bin"), "{text}");
            assert!(text.contains("delete it"), "{text}");
        }
    }
}
