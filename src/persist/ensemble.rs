//! The ensemble file, `<models-dir>/Ensembled/EnsembleModel.bin`: the live ensemble and the
//! open time of the last kline it has learnt from, in the common frame (tag `ENSM`, see
//! [`super`]). Trained members are saved without their model (they are re-attached from
//! `Trained/` on load, see [`Ensemble::attach_trained`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{decode_framed_since, read_file, save_framed, FileKind, PersistError, TAG_ENSEMBLE};
use crate::ensemble::Ensemble;

/// Format version of `EnsembleModel.bin` (the frame tag is `ENSM`).
/// v2: trained members saved without their model, CART nodes packed as bytes.
/// v4: window generations saved without their models, as the rows they were fitted on (they
/// are refitted from the kline store at start, see `ensemble::learner::restore_generations`):
/// the file shrinks from megabytes to the recurrent members' state and the records.
/// v5: each expert keeps its gate record on two time scales and its record in the combination
/// expert's ML-Poly; the configuration holds the gate's two discounts (issue 20).
/// v6: each ML-Poly record keeps whether its expert has cleared the evidence margin once
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
}

#[derive(Serialize)]
struct SavedEnsembleRef<'a> {
    as_of_open_time: Option<i64>,
    ensemble: &'a Ensemble,
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
    match saved.ensemble.check() {
        Ok(()) => Ok(saved),
        Err(detail) => Err(PersistError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("malformed ensemble: {detail}"),
            kind: FileKind::Ensemble,
        }),
    }
}

/// Saves `EnsembleModel.bin` atomically.
pub(crate) fn save_ensemble(
    path: &Path,
    as_of: Option<i64>,
    ensemble: &Ensemble,
) -> Result<(), PersistError> {
    let value = SavedEnsembleRef {
        as_of_open_time: as_of,
        ensemble,
    };
    save_framed(path, TAG_ENSEMBLE, ENSEMBLE_FILE_VERSION, &value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::encode_framed;

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
