//! Model files under `<models-dir>/`: one framed, checksummed postcard format for every kind of
//! model file, written atomically. I/O only: no maths beyond the checksum.
//!
//! # Frame
//!
//! ```text
//! offset  size  field
//!      0     8  magic b"KLCAST\0\0"
//!      8     4  kind tag: b"TRND" trained model, b"ENSM" ensemble
//!     12     4  format version, u32 little-endian
//!     16     8  payload length, u64 little-endian
//!     24     n  payload: postcard
//!   24+n     4  CRC-32 (IEEE) of the payload, u32 little-endian
//! ```
//!
//! Loading refuses a missing, truncated or foreign file, another format version, a checksum
//! mismatch, a payload that does not decode, and trailing bytes; every refusal names the file and
//! says what to do (for trained models: run `klinecast train` again).
//!
//! Two formats use the frame: trained models, in `<models-dir>/Trained/<kind>.bin`
//! (`linear.bin`, `svr.bin`, …, this file), and the live ensemble,
//! `<models-dir>/Ensembled/EnsembleModel.bin` ([`ensemble`]).

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::features::{
    FeatureSpec, Scaler, CORR_FEATURE_VERSION, FEATURE_VERSION, MAX_CORR, MAX_HORIZON,
};
use crate::fsutil;
use crate::kline::Series;
use crate::models::{AnyModel, ModelKind};

pub(crate) mod ensemble;

pub(crate) use ensemble::save_ensemble;
pub use ensemble::{
    decode_ensemble, ensemble_path, load_ensemble, SavedEnsemble, ENSEMBLE_FILE_VERSION,
};

/// The first 8 bytes of every klinecast model file.
pub const MAGIC: [u8; 8] = *b"KLCAST\0\0";
/// Kind tag of a trained model file.
pub const TAG_TRAINED: [u8; 4] = *b"TRND";
/// Kind tag of an ensemble file.
pub const TAG_ENSEMBLE: [u8; 4] = *b"ENSM";
/// Format version of trained model files this build reads and writes.
/// v2: SVR target standardisation fields, CART nodes packed as bytes.
/// v3: gbdt, gru and lstm models (and gbdt target scaling).
pub const TRAINED_VERSION: u32 = 3;
/// Sub-directory of the models directory that holds trained models.
pub const TRAINED_DIR: &str = "Trained";

const HEADER_LEN: usize = 24;
const CHECKSUM_LEN: usize = 4;

/// Errors loading or saving a trained model file or the ensemble file; `kind` names the file in
/// the message and says what to do about it (see [`FileKind`]).
#[derive(Debug)]
pub enum PersistError {
    /// The file does not exist.
    NotFound { path: PathBuf, kind: FileKind },
    /// The file ends before its frame does.
    Truncated {
        path: PathBuf,
        len: u64,
        needed: u64,
        kind: FileKind,
    },
    /// Not a klinecast model file, or one of another kind.
    Foreign {
        path: PathBuf,
        what: String,
        kind: FileKind,
    },
    /// A klinecast file of another format version.
    Version {
        path: PathBuf,
        found: u32,
        expected: u32,
        kind: FileKind,
    },
    /// Checksum mismatch, undecodable payload, trailing bytes.
    Corrupt {
        path: PathBuf,
        detail: String,
        kind: FileKind,
    },
    /// The file decodes but cannot be used by this build (feature set, model kind).
    Incompatible {
        path: PathBuf,
        detail: String,
        kind: FileKind,
    },
    /// Reading or listing failed.
    Io { path: PathBuf, source: io::Error },
    /// Writing the file failed (disk full, permissions); the previous file is unchanged.
    Save {
        path: PathBuf,
        kind: FileKind,
        source: io::Error,
    },
    /// Writing or switching in a new set of trained models failed (at `path`); the set in
    /// `dir` is the previous one, whole.
    SaveSet {
        dir: PathBuf,
        path: PathBuf,
        source: io::Error,
    },
}

impl fmt::Display for PersistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PersistError::NotFound { path, kind } => {
                write!(
                    f,
                    "{kind} {} does not exist; {}",
                    path.display(),
                    kind.hint()
                )
            }
            PersistError::Truncated {
                path,
                len,
                needed,
                kind,
            } => write!(
                f,
                "{kind} {} is truncated ({len} bytes, the frame needs {needed}); {}",
                path.display(),
                kind.hint()
            ),
            PersistError::Foreign { path, what, kind } => {
                write!(f, "{} is {what}; {}", path.display(), kind.hint())
            }
            PersistError::Version {
                path,
                found,
                expected,
                kind,
            } => write!(
                f,
                "{kind} {} is format v{found}, this build reads v{expected}; {}",
                path.display(),
                kind.hint()
            ),
            PersistError::Corrupt { path, detail, kind } => write!(
                f,
                "{kind} {} is corrupt ({detail}); {}",
                path.display(),
                kind.hint()
            ),
            PersistError::Incompatible { path, detail, kind } => write!(
                f,
                "{kind} {} cannot be used: {detail}; {}",
                path.display(),
                kind.hint()
            ),
            PersistError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            PersistError::Save { path, kind, source } => write!(
                f,
                "saving {kind} {} failed ({source}); the previous file, if any, is \
                 unchanged: free some disk space or fix the permissions and try again",
                path.display()
            ),
            PersistError::SaveSet { dir, path, source } => write!(
                f,
                "saving model file {} failed ({source}); the previous models in {}, if any, are \
                 unchanged (all of them: a set is replaced whole): free some disk space or fix \
                 the permissions and try again",
                path.display(),
                dir.display()
            ),
        }
    }
}

impl std::error::Error for PersistError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PersistError::Io { source, .. }
            | PersistError::Save { source, .. }
            | PersistError::SaveSet { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The two kinds of framed file: a trained model file (tag `TRND`) and the ensemble file (tag
/// `ENSM`). Errors name a file by its kind ("model file", "ensemble file", the display) and
/// say what to do about a bad one ([`FileKind::hint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Trained,
    Ensemble,
}

impl FileKind {
    /// The kind whose frame tag is `tag`.
    pub(crate) fn of_tag(tag: [u8; 4]) -> FileKind {
        if tag == TAG_ENSEMBLE {
            FileKind::Ensemble
        } else {
            FileKind::Trained
        }
    }

    /// What to do about a bad file of this kind.
    pub(crate) fn hint(self) -> &'static str {
        match self {
            FileKind::Ensemble => "delete it so that `klinecast stream` starts a fresh ensemble from the trained models (run `klinecast train` first if those are missing)",
            FileKind::Trained => "run `klinecast train` again to rebuild it",
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Trained => "model file",
            FileKind::Ensemble => "ensemble file",
        })
    }
}

/// A trained model with everything needed to use it on new klines.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainedModel {
    pub kind: ModelKind,
    pub spec: FeatureSpec,
    pub scaler: Scaler,
    pub model: AnyModel,
    pub meta: TrainMeta,
}

/// How and on what a model was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainMeta {
    /// Open time (ms) of the kline of the first training row.
    pub(crate) train_first_open_time: i64,
    /// Open time (ms) of the kline of the last training row.
    pub(crate) train_last_open_time: i64,
    pub train_rows: usize,
    pub(crate) holdout_rows: usize,
    pub(crate) seed: u64,
    pub(crate) fit_seconds: f64,
    pub holdout: HoldoutScores,
    /// File name of the kline CSV it was trained on, such as `BTCUSDT_1m.csv`.
    pub data_file: String,
    /// The klinecast version that trained it.
    pub(crate) klinecast_version: String,
}

/// Holdout accuracy on the close price (see [`crate::metrics::Accum`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HoldoutScores {
    pub rmse: f64,
    pub(crate) mae: f64,
    /// Percent.
    pub(crate) mape: f64,
    /// Share of moves whose direction was forecast, in [0, 1] (NaN when nothing moved).
    pub(crate) directional: f64,
    /// RMSE of the naive forecast (next close = last close) on the same rows.
    pub(crate) naive_rmse: f64,
}

impl TrainedModel {
    /// The forecast close of kline `t + h` made at kline `t`: raw row → scale → predict →
    /// `close[t] · exp(prediction)`. A recurrent model reads the last `seq_len` rows
    /// `t−seq_len+1 ..= t`. `None` before the feature warm-up (of every row read) or past the
    /// series.
    pub fn predict_price(&self, series: &Series, t: usize) -> Option<f64> {
        let n = self.model.seq_len();
        let first = (t + 1).checked_sub(n)?;
        let mut rows = Vec::with_capacity(n * self.spec.n_features());
        for i in first..=t {
            rows.extend(self.scaler.transform_row(&self.spec.row(series, i)?));
        }
        let p = self.model.predict_sequence(&rows, self.spec.n_features());
        Some(series.close[t] * p.exp())
    }
}

/// Frames `value` (see the module doc) as bytes.
pub fn encode_framed<T: Serialize>(
    tag: [u8; 4],
    version: u32,
    value: &T,
) -> Result<Vec<u8>, postcard::Error> {
    let payload = postcard::to_allocvec(value)?;
    let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len() + CHECKSUM_LEN);
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&tag);
    bytes.extend_from_slice(&version.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&payload);
    bytes.extend_from_slice(&crc32(&payload).to_le_bytes());
    Ok(bytes)
}

/// Checks the frame of `bytes` (read from `path`, named in errors) and decodes its payload.
pub(crate) fn decode_framed<T: DeserializeOwned>(
    path: &Path,
    bytes: &[u8],
    tag: [u8; 4],
    version: u32,
) -> Result<T, PersistError> {
    decode_framed_since(path, bytes, tag, version, version)
}

/// [`decode_framed`], accepting every version from `oldest` to `version` (for a format whose
/// payload layout did not change between them, only what is left out of it).
pub(crate) fn decode_framed_since<T: DeserializeOwned>(
    path: &Path,
    bytes: &[u8],
    tag: [u8; 4],
    oldest: u32,
    version: u32,
) -> Result<T, PersistError> {
    let kind = FileKind::of_tag(tag);
    let path = || path.to_path_buf();
    let len = bytes.len() as u64;
    let truncated = |needed: u64| PersistError::Truncated {
        path: path(),
        len,
        needed,
        kind,
    };
    // A prefix of the magic is a truncated klinecast file; anything else is foreign.
    let magic_len = bytes.len().min(MAGIC.len());
    if bytes[..magic_len] != MAGIC[..magic_len] {
        return Err(PersistError::Foreign {
            path: path(),
            what: format!("not a klinecast {kind}"),
            kind,
        });
    }
    if bytes.len() < HEADER_LEN {
        return Err(truncated(HEADER_LEN as u64));
    }
    let found_tag = &bytes[8..12];
    if found_tag != tag {
        return Err(PersistError::Foreign {
            path: path(),
            what: format!(
                "a klinecast {} file, not {}",
                tag_name(found_tag),
                tag_name(&tag)
            ),
            kind,
        });
    }
    let found_version = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    if !(oldest..=version).contains(&found_version) {
        return Err(PersistError::Version {
            path: path(),
            found: found_version,
            expected: version,
            kind,
        });
    }
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&bytes[16..24]);
    let payload_len = u64::from_le_bytes(len_bytes);
    let needed = payload_len.saturating_add((HEADER_LEN + CHECKSUM_LEN) as u64);
    if len < needed {
        return Err(truncated(needed));
    }
    if len > needed {
        return Err(PersistError::Corrupt {
            path: path(),
            detail: format!("{} unexpected bytes after the checksum", len - needed),
            kind,
        });
    }
    // len == needed, so the payload length fits in usize.
    let end = HEADER_LEN + payload_len as usize;
    let payload = &bytes[HEADER_LEN..end];
    let stored = u32::from_le_bytes([bytes[end], bytes[end + 1], bytes[end + 2], bytes[end + 3]]);
    let computed = crc32(payload);
    if stored != computed {
        return Err(PersistError::Corrupt {
            path: path(),
            detail: format!("checksum {computed:08x} does not match the stored {stored:08x}"),
            kind,
        });
    }
    match postcard::take_from_bytes::<T>(payload) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(PersistError::Corrupt {
            path: path(),
            detail: format!("{} undecoded payload bytes", rest.len()),
            kind,
        }),
        Err(e) => Err(PersistError::Corrupt {
            path: path(),
            detail: format!("payload does not decode: {e}"),
            kind,
        }),
    }
}

/// Writes `value` framed to `path`, atomically (creates the directory).
pub(crate) fn save_framed<T: Serialize>(
    path: &Path,
    tag: [u8; 4],
    version: u32,
    value: &T,
) -> Result<(), PersistError> {
    let bytes = encode_framed(tag, version, value).map_err(|e| PersistError::Io {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidData, format!("encoding failed: {e}")),
    })?;
    fsutil::write_atomic(path, &bytes).map_err(|source| PersistError::Save {
        path: path.to_path_buf(),
        kind: FileKind::of_tag(tag),
        source,
    })
}

/// Reads and decodes a framed file written by [`save_framed`].
pub(crate) fn load_framed<T: DeserializeOwned>(
    path: &Path,
    tag: [u8; 4],
    version: u32,
) -> Result<T, PersistError> {
    decode_framed(path, &read_file(path, tag)?, tag, version)
}

/// The bytes of the file at `path`, a missing file being [`PersistError::NotFound`] with the
/// hint for the kind of `tag`, and a file larger than [`MAX_FILE_BYTES`] [`PersistError::Corrupt`] without reading it.
pub(crate) fn read_file(path: &Path, tag: [u8; 4]) -> Result<Vec<u8>, PersistError> {
    let io_error = |source: io::Error| {
        if source.kind() == io::ErrorKind::NotFound {
            PersistError::NotFound {
                path: path.to_path_buf(),
                kind: FileKind::of_tag(tag),
            }
        } else {
            PersistError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    };
    let file = fs::File::open(path).map_err(io_error)?;
    let len = file.metadata().map_err(io_error)?.len();
    if len > MAX_FILE_BYTES {
        return Err(PersistError::Corrupt {
            path: path.to_path_buf(),
            detail: format!(
                "{len} bytes, more than any klinecast file can be ({MAX_FILE_BYTES} at most)"
            ),
            kind: FileKind::of_tag(tag),
        });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // The file may grow after the size check: read no more than the cap (plus one byte, so
    // that the frame check sees the extra bytes).
    io::Read::read_to_end(&mut io::Read::take(file, MAX_FILE_BYTES + 1), &mut bytes)
        .map_err(io_error)?;
    Ok(bytes)
}

/// Largest model or ensemble file read (256 MiB). The largest files written are a few MB (a
/// bounded forest of 100 trees is 1.6 MB, a v3 ensemble with its generations a few MB): a
/// larger file is damage, and reading it whole could exhaust a Pi's memory.
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// `<models_dir>/Trained/<kind>.bin`.
pub fn trained_path(models_dir: &Path, kind: ModelKind) -> PathBuf {
    trained_file(&models_dir.join(TRAINED_DIR), kind)
}

/// Saves a trained model to `<models_dir>/Trained/<kind>.bin`, atomically; returns the path.
/// (Tests; `train` replaces the whole set with [`save_trained_set`].)
#[cfg(test)]
pub(crate) fn save_trained(
    models_dir: &Path,
    model: &TrainedModel,
) -> Result<PathBuf, PersistError> {
    let path = trained_path(models_dir, model.kind);
    save_framed(&path, TAG_TRAINED, TRAINED_VERSION, model)?;
    Ok(path)
}

/// Loads one trained model file and checks that this build can use it.
pub fn load_trained(path: &Path) -> Result<TrainedModel, PersistError> {
    let model: TrainedModel = load_framed(path, TAG_TRAINED, TRAINED_VERSION)?;
    check_trained(path, model)
}

/// [`load_trained`] on bytes already read from `path` (named in errors): the frame, the
/// payload and the compatibility checks, without touching the file system.
pub fn decode_trained(path: &Path, bytes: &[u8]) -> Result<TrainedModel, PersistError> {
    let model: TrainedModel = decode_framed(path, bytes, TAG_TRAINED, TRAINED_VERSION)?;
    check_trained(path, model)
}

/// Checks that this build can use a decoded trained model.
fn check_trained(path: &Path, model: TrainedModel) -> Result<TrainedModel, PersistError> {
    let incompatible = |detail: String| PersistError::Incompatible {
        path: path.to_path_buf(),
        detail,
        kind: FileKind::Trained,
    };
    if !model.spec.supported() {
        return Err(incompatible(format!(
            "it uses feature set v{} with correlated symbols {}, this build computes \
             v{FEATURE_VERSION} without them and v{CORR_FEATURE_VERSION} with 1 to {MAX_CORR}",
            model.spec.version,
            model.spec.corr_list()
        )));
    }
    if model.model.kind() != model.kind {
        return Err(incompatible(format!(
            "it is labelled {} but holds a {} model",
            model.kind.name(),
            model.model.kind().name()
        )));
    }
    if !(1..=MAX_HORIZON).contains(&model.spec.horizon) {
        return Err(incompatible(format!(
            "its horizon is {} klines, this build supports 1 to {MAX_HORIZON}",
            model.spec.horizon
        )));
    }
    if model.scaler.mean.len() != model.spec.n_features()
        || model.scaler.std.len() != model.spec.n_features()
    {
        return Err(incompatible(format!(
            "its scaler has {} columns, the features have {}",
            model.scaler.mean.len(),
            model.spec.n_features()
        )));
    }
    model
        .model
        .check(model.spec.n_features())
        .map_err(|detail| PersistError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("malformed {} model: {detail}", model.kind.name()),
            kind: FileKind::Trained,
        })?;
    Ok(model)
}

/// `<models_dir>/Trained.new`: where `train` writes a new set before switching it in.
const STAGING_DIR: &str = "Trained.new";
/// `<models_dir>/Trained.old`: the previous set, between the two renames of a switch.
const PREVIOUS_DIR: &str = "Trained.old";

/// Replaces the whole set of trained models in `<models_dir>/Trained` by `models`, so that a
/// kill, a power cut or a full disk at any instant leaves either the whole old set or the whole
/// new one, and a reader ([`read_trained_set`]) never loads a mix:
/// 1. every file is written (and fsynced) into `Trained.new`; a failure removes it, and
///    `Trained` was never touched;
/// 2. `Trained` is renamed to `Trained.old`, `Trained.new` to `Trained` (the directory is
///    fsynced), and `Trained.old` is removed.
///
/// Between the two renames there is no `Trained`: readers then use `Trained.old` (whole), and
/// the next `train` renames it back first if the switch was cut there. A leftover `Trained.new`
/// (a cut write) or `Trained.old` (a cut clean-up) is removed by the next `train`. Returns the
/// final paths of the files.
pub(crate) fn save_trained_set(
    models_dir: &Path,
    models: &[TrainedModel],
) -> Result<Vec<PathBuf>, PersistError> {
    let live = models_dir.join(TRAINED_DIR);
    let staging = models_dir.join(STAGING_DIR);
    let previous = models_dir.join(PREVIOUS_DIR);
    let failed = |path: &Path| {
        let (dir, path) = (live.clone(), path.to_path_buf());
        move |source| PersistError::SaveSet { dir, path, source }
    };
    // Trouble with the directories is reported on the first file that cannot be saved.
    let first = models
        .first()
        .map_or_else(|| live.clone(), |m| trained_path(models_dir, m.kind));
    fs::create_dir_all(models_dir).map_err(failed(&first))?;
    recover_trained_set(models_dir).map_err(failed(&first))?;
    let written = (|| {
        fs::create_dir(&staging).map_err(failed(&staging))?;
        let mut names = Vec::with_capacity(models.len());
        for model in models {
            let path = trained_file_of(&live, model);
            let name = path.file_name().map(PathBuf::from).unwrap_or_default();
            let bytes = encode_framed(TAG_TRAINED, TRAINED_VERSION, model).map_err(|e| {
                PersistError::Io {
                    path: path.clone(),
                    source: io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("encoding failed: {e}"),
                    ),
                }
            })?;
            let at = staging.join(&name);
            fsutil::write_atomic(&at, &bytes).map_err(failed(&at))?;
            names.push(name);
        }
        fsutil::sync_dir(&staging).map_err(failed(&staging))?;
        Ok(names)
    })();
    let names = match written {
        Ok(names) => names,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    if live.exists() {
        fs::rename(&live, &previous).map_err(failed(&live))?;
    }
    if let Err(source) = fs::rename(&staging, &live) {
        // Put the old set back; the next `train` does so if this fails too.
        let _ = fs::rename(&previous, &live);
        let _ = fs::remove_dir_all(&staging);
        return Err(failed(&live)(source));
    }
    fsutil::sync_dir(models_dir).map_err(failed(models_dir))?;
    let _ = fs::remove_dir_all(&previous);
    Ok(names.into_iter().map(|n| live.join(n)).collect())
}

/// Brings `<models_dir>` back to one whole set after a cut [`save_trained_set`]: a `Trained.old`
/// without `Trained` is renamed back, a leftover `Trained.old` or `Trained.new` is removed.
pub(crate) fn recover_trained_set(models_dir: &Path) -> io::Result<()> {
    let live = models_dir.join(TRAINED_DIR);
    let previous = models_dir.join(PREVIOUS_DIR);
    if previous.exists() {
        if live.exists() {
            fs::remove_dir_all(&previous)?;
        } else {
            fs::rename(&previous, &live)?;
        }
    }
    let staging = models_dir.join(STAGING_DIR);
    if staging.exists() {
        fs::remove_dir_all(&staging)?;
    }
    Ok(())
}

/// The directory a reader loads the trained set from: `<models_dir>/Trained`, or
/// `Trained.old` while a switch is between its two renames (see [`save_trained_set`]).
fn trained_set_dir(models_dir: &Path) -> PathBuf {
    let live = models_dir.join(TRAINED_DIR);
    let previous = models_dir.join(PREVIOUS_DIR);
    if !live.exists() && previous.is_dir() {
        previous
    } else {
        live
    }
}

/// What identifies a directory (device and inode): a switch of the trained set changes it.
#[cfg(unix)]
fn dir_identity(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn dir_identity(dir: &Path) -> Option<(u64, u64)> {
    fs::metadata(dir).ok().map(|_| (0, 0))
}

/// Runs `read` on the directory of the current trained set (model files named as in
/// [`trained_path`]) and runs it again if a `train` switched the set in meanwhile (at most
/// three times), so the result comes from one set, never a mix of two.
pub(crate) fn read_trained_set<T>(models_dir: &Path, mut read: impl FnMut(&Path) -> T) -> T {
    let mut tries = 0;
    loop {
        tries += 1;
        let dir = trained_set_dir(models_dir);
        let before = dir_identity(&dir);
        let value = read(&dir);
        if tries >= 3 || (dir_identity(&dir) == before && trained_set_dir(models_dir) == dir) {
            return value;
        }
    }
}

/// Every trained model of the current set (see [`read_trained_set`]), in [`ModelKind::ALL`]
/// order. A missing directory or file is skipped (empty vec when nothing was trained); a bad
/// file is an error naming it.
pub fn load_all_trained(models_dir: &Path) -> Result<Vec<TrainedModel>, PersistError> {
    read_trained_set(models_dir, |dir| {
        let mut models = Vec::new();
        for path in trained_files(dir) {
            match load_trained(&path) {
                Ok(model) => models.push(model),
                Err(PersistError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(models)
    })
}

/// `<set_dir>/<kind>.bin`: a model's file in the set directory `set_dir`.
pub(crate) fn trained_file(set_dir: &Path, kind: ModelKind) -> PathBuf {
    set_dir.join(format!("{}.bin", kind.name()))
}

/// The file of `model` in the set directory: [`trained_file`], or `<kind>+corr.bin` for a model
/// that reads correlated symbols (`--corr`), which sits beside its own-only kind.
pub(crate) fn trained_file_of(set_dir: &Path, model: &TrainedModel) -> PathBuf {
    if model.spec.corr.is_empty() {
        trained_file(set_dir, model.kind)
    } else {
        set_dir.join(format!("{}+corr.bin", model.kind.name()))
    }
}

/// Every file a trained set may hold, in load order: each kind's own-only file
/// ([`ModelKind::ALL`] order), then each kind's `+corr` file.
pub(crate) fn trained_files(set_dir: &Path) -> Vec<PathBuf> {
    let own = ModelKind::ALL.map(|kind| trained_file(set_dir, kind));
    let corr = ModelKind::ALL.map(|kind| set_dir.join(format!("{}+corr.bin", kind.name())));
    own.into_iter().chain(corr).collect()
}

fn tag_name(tag: &[u8]) -> String {
    match tag {
        b"TRND" => "trained-model (TRND)".to_string(),
        b"ENSM" => "ensemble (ENSM)".to_string(),
        other => format!("{:?}", String::from_utf8_lossy(other)),
    }
}

/// CRC-32/ISO-HDLC (the zlib / PNG CRC), slicing-by-8: eight table lookups per 8 bytes, about
/// 5× faster than one lookup per byte. Model files are checked on every (cron) start, so this
/// is on the cold-start path.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let low = crc ^ u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        crc = CRC_TABLES[7][(low & 0xff) as usize]
            ^ CRC_TABLES[6][((low >> 8) & 0xff) as usize]
            ^ CRC_TABLES[5][((low >> 16) & 0xff) as usize]
            ^ CRC_TABLES[4][(low >> 24) as usize]
            ^ CRC_TABLES[3][c[4] as usize]
            ^ CRC_TABLES[2][c[5] as usize]
            ^ CRC_TABLES[1][c[6] as usize]
            ^ CRC_TABLES[0][c[7] as usize];
    }
    for &b in chunks.remainder() {
        crc = CRC_TABLES[0][((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// `CRC_TABLES[0]` is the classic byte table; `CRC_TABLES[k][i]` is the CRC of byte `i`
/// followed by `k` zero bytes.
const CRC_TABLES: [[u32; 256]; 8] = crc_tables();

const fn crc_tables() -> [[u32; 256]; 8] {
    let mut tables = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        tables[0][i] = c;
        i += 1;
    }
    let mut t = 1;
    while t < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = tables[t - 1][i];
            tables[t][i] = tables[0][(prev & 0xff) as usize] ^ (prev >> 8);
            i += 1;
        }
        t += 1;
    }
    tables
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::linear::Linear;
    use crate::models::Regressor;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir()
                .join(format!("klinecast-persist-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("create temp dir");
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn sample(kind_seed: u64) -> TrainedModel {
        let spec = FeatureSpec::default();
        let d = spec.n_features();
        TrainedModel {
            kind: ModelKind::Linear,
            scaler: Scaler {
                mean: (0..d).map(|i| i as f64 * 0.5).collect(),
                std: vec![2.0; d],
            },
            spec,
            model: AnyModel::Linear(Linear {
                coef: (0..d).map(|i| (i as f64 - 6.0) * 1e-4).collect(),
                intercept: 1e-5,
            }),
            meta: TrainMeta {
                train_first_open_time: 1_700_000_000_000,
                train_last_open_time: 1_700_000_600_000,
                train_rows: 10,
                holdout_rows: 3,
                seed: kind_seed,
                fit_seconds: 0.25,
                holdout: HoldoutScores {
                    rmse: 0.1,
                    mae: 0.05,
                    mape: 0.3,
                    directional: f64::NAN,
                    naive_rmse: 0.2,
                },
                data_file: "AVAXUSDT_1m.csv".to_string(),
                klinecast_version: "0.1.0".to_string(),
            },
        }
    }

    fn assert_hint(err: &PersistError) {
        let msg = err.to_string();
        assert!(msg.contains("klinecast train"), "{msg}");
    }

    #[test]
    fn crc32_reference_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        // Slicing-by-8 equals the bytewise definition at every length and alignment.
        let bytewise = |bytes: &[u8]| {
            let mut crc = !0u32;
            for &b in bytes {
                crc = CRC_TABLES[0][((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
            }
            !crc
        };
        let data: Vec<u8> = (0..300u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for start in 0..9 {
            for end in start..data.len() {
                assert_eq!(
                    crc32(&data[start..end]),
                    bytewise(&data[start..end]),
                    "{start}..{end}"
                );
            }
        }
    }

    #[test]
    fn trained_model_round_trips() {
        let dir = TempDir::new("round");
        assert!(load_all_trained(&dir.0.join("nothing"))
            .expect("empty")
            .is_empty());
        let model = sample(7);
        let path = save_trained(&dir.0, &model).expect("save");
        assert_eq!(path, dir.0.join("Trained").join("linear.bin"));
        let back = load_trained(&path).expect("load");
        assert_eq!(back.kind, model.kind);
        assert_eq!(back.spec, model.spec);
        assert_eq!(back.scaler, model.scaler);
        assert_eq!(back.meta.seed, 7);
        assert!(back.meta.holdout.directional.is_nan());
        assert_eq!(back.meta.data_file, model.meta.data_file);
        let x: Vec<f64> = (0..14).map(|i| i as f64).collect();
        assert_eq!(
            back.model.predict_row(&x).to_bits(),
            model.model.predict_row(&x).to_bits()
        );
        let all = load_all_trained(&dir.0).expect("load all");
        assert_eq!(all.len(), 1);
        // Saving again replaces the file and leaves no temporary behind.
        save_trained(&dir.0, &sample(8)).expect("save again");
        assert_eq!(load_trained(&path).expect("load").meta.seed, 8);
        assert_eq!(
            fs::read_dir(dir.0.join("Trained")).expect("list").count(),
            1
        );
    }

    /// The entries of `dir`, sorted.
    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn seeds(models_dir: &Path) -> Vec<u64> {
        load_all_trained(models_dir)
            .expect("the set loads")
            .iter()
            .map(|m| m.meta.seed)
            .collect()
    }

    /// Issue 19: `train` replaces the set whole. A switch cut at any point leaves one whole set
    /// for readers (a leftover staging directory is ignored; between the two renames the old
    /// set is read from `Trained.old`), the next save cleans up, and a reader that a switch
    /// overtook reads again rather than mixing two sets.
    /// Backs README claim [C18]: No trained model file is changed by a failed train, a bad input or a full disk; `train` replaces the set whole, and a reader never loads a mix.
    #[test]
    fn the_trained_set_is_replaced_whole_and_cut_switches_recover() {
        let dir = TempDir::new("set");
        let m = &dir.0;
        let paths = save_trained_set(m, &[sample(1)]).expect("save");
        assert_eq!(paths, [m.join("Trained").join("linear.bin")]);
        assert_eq!(
            (seeds(m), entries(m)),
            (vec![1], vec!["Trained".to_string()])
        );
        // Cut while writing: a partial staging directory, ignored by readers, removed next time.
        fs::create_dir_all(m.join(STAGING_DIR)).expect("mkdir");
        fs::write(m.join(STAGING_DIR).join("linear.bin"), b"KLNC").expect("partial");
        assert_eq!(seeds(m), [1]);
        save_trained_set(m, &[sample(2)]).expect("save 2");
        assert_eq!(
            (seeds(m), entries(m)),
            (vec![2], vec!["Trained".to_string()])
        );
        // Cut between the two renames: no `Trained`; readers use the old set whole, and the
        // next save puts it back before switching.
        fs::rename(m.join(TRAINED_DIR), m.join(PREVIOUS_DIR)).expect("cut");
        assert_eq!(seeds(m), [2]);
        recover_trained_set(m).expect("recover");
        assert_eq!(
            (seeds(m), entries(m)),
            (vec![2], vec!["Trained".to_string()])
        );
        // Cut before the clean-up: both there; readers use the new set.
        fs::create_dir_all(m.join(PREVIOUS_DIR)).expect("old");
        assert_eq!(seeds(m), [2]);
        save_trained_set(m, &[sample(3)]).expect("save 3");
        assert_eq!(
            (seeds(m), entries(m)),
            (vec![3], vec!["Trained".to_string()])
        );
        // A reader overtaken by a switch reads again: never the old file with the new set.
        let mut calls = 0;
        let seen = read_trained_set(m, |set| {
            calls += 1;
            let seed = load_trained(&trained_file(set, ModelKind::Linear))
                .expect("load")
                .meta
                .seed;
            if calls == 1 {
                save_trained_set(m, &[sample(4)]).expect("switch meanwhile");
            }
            seed
        });
        assert_eq!((seen, calls), (4, 2));
    }

    #[test]
    fn every_truncation_is_refused() {
        let dir = TempDir::new("trunc");
        let bytes = encode_framed(TAG_TRAINED, TRAINED_VERSION, &sample(1)).expect("encode");
        for cut in 0..bytes.len() {
            let err =
                decode_framed::<TrainedModel>(&dir.0, &bytes[..cut], TAG_TRAINED, TRAINED_VERSION)
                    .err()
                    .unwrap_or_else(|| panic!("prefix of {cut} bytes accepted"));
            assert!(
                matches!(err, PersistError::Truncated { .. }),
                "cut {cut}: {err}"
            );
            assert_hint(&err);
        }
        // Through the file system as well, for a few lengths.
        let path = dir.0.join("t.bin");
        for cut in [0, 5, 24, bytes.len() - 1] {
            fs::write(&path, &bytes[..cut]).expect("write");
            let err = load_trained(&path).expect_err("refused");
            assert!(matches!(err, PersistError::Truncated { .. }), "{err}");
        }
    }

    #[test]
    fn foreign_version_and_corrupt_files_are_refused() {
        let dir = TempDir::new("bad");
        let path = dir.0.join("m.bin");
        let good = encode_framed(TAG_TRAINED, TRAINED_VERSION, &sample(1)).expect("encode");

        let err = load_trained(&path).expect_err("missing");
        assert!(matches!(err, PersistError::NotFound { .. }), "{err}");
        assert_hint(&err);

        fs::write(&path, b"open_time,open,high\n1,2,3\n").expect("write");
        let err = load_trained(&path).expect_err("foreign");
        assert!(matches!(err, PersistError::Foreign { .. }), "{err}");
        assert!(err.to_string().contains("not a klinecast model file"));
        assert_hint(&err);

        let ensemble = encode_framed(TAG_ENSEMBLE, TRAINED_VERSION, &sample(1)).expect("encode");
        fs::write(&path, &ensemble).expect("write");
        let err = load_trained(&path).expect_err("other tag");
        assert!(matches!(err, PersistError::Foreign { .. }), "{err}");
        assert!(err.to_string().contains("ensemble"), "{err}");

        // An older file (v2, before gbdt/gru/lstm) and a newer one are refused by version.
        for old in [2, 4] {
            let other = encode_framed(TAG_TRAINED, old, &sample(1)).expect("encode");
            fs::write(&path, &other).expect("write");
            let err = load_trained(&path).expect_err("other version");
            assert!(
                matches!(
                    err,
                    PersistError::Version {
                        found,
                        expected: 3,
                        ..
                    } if found == old
                ),
                "{err}"
            );
            assert!(
                err.to_string()
                    .contains(&format!("format v{old}, this build reads v3")),
                "{err}"
            );
            assert_hint(&err);
        }

        // Every single flipped payload or checksum byte is caught by the checksum.
        for i in HEADER_LEN..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            let err = decode_framed::<TrainedModel>(&path, &bad, TAG_TRAINED, TRAINED_VERSION)
                .expect_err("flipped byte refused");
            assert!(
                matches!(err, PersistError::Corrupt { .. }),
                "byte {i}: {err}"
            );
            assert!(err.to_string().contains("checksum"), "{err}");
            assert_hint(&err);
        }

        let mut longer = good.clone();
        longer.push(0);
        let err = decode_framed::<TrainedModel>(&path, &longer, TAG_TRAINED, TRAINED_VERSION)
            .expect_err("trailing byte refused");
        assert!(matches!(err, PersistError::Corrupt { .. }), "{err}");

        // A well-framed payload that is not a trained model.
        let junk = encode_framed(TAG_TRAINED, TRAINED_VERSION, &(1u8, 2u8)).expect("encode");
        let err = decode_framed::<TrainedModel>(&path, &junk, TAG_TRAINED, TRAINED_VERSION)
            .expect_err("undecodable");
        assert!(matches!(err, PersistError::Corrupt { .. }), "{err}");
        assert_hint(&err);

        // Huge payload length in the header: truncated, no allocation, no panic.
        let mut huge = good.clone();
        huge[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        let err = decode_framed::<TrainedModel>(&path, &huge, TAG_TRAINED, TRAINED_VERSION)
            .expect_err("huge length");
        assert!(matches!(err, PersistError::Truncated { .. }), "{err}");
    }

    #[test]
    fn load_all_names_the_bad_file() {
        let dir = TempDir::new("all");
        save_trained(&dir.0, &sample(1)).expect("save");
        let bad = trained_path(&dir.0, ModelKind::Forest);
        fs::write(&bad, b"KLCAST\0\0TRND").expect("write");
        let err = load_all_trained(&dir.0).expect_err("bad file");
        assert!(err.to_string().contains("forest.bin"), "{err}");
        assert_hint(&err);
        // A model labelled with the wrong kind is refused.
        let mut wrong = sample(1);
        wrong.kind = ModelKind::Svr;
        let path = save_trained(&dir.0, &wrong).expect("save");
        let err = load_trained(&path).expect_err("mislabelled");
        assert!(matches!(err, PersistError::Incompatible { .. }), "{err}");
        let mut other_features = sample(1);
        other_features.spec.version = 99;
        let path = save_trained(&dir.0, &other_features).expect("save");
        let err = load_trained(&path).expect_err("feature version");
        assert!(err.to_string().contains("feature set v99"), "{err}");
    }

    /// Every error about the ensemble file calls it the "ensemble file" (never a "model file")
    /// and says to delete it so that `stream` starts afresh; the same damage to a trained model
    /// file is a "model file" to rebuild with `train`.
    #[test]
    fn ensemble_files_are_named_as_such_with_their_own_hint() {
        let dir = TempDir::new("file-kinds");
        let path = dir.0.join("EnsembleModel.bin");
        let good = encode_framed(TAG_ENSEMBLE, 1, &7u32).expect("encode");
        let mut flipped = good.clone();
        flipped[HEADER_LEN] ^= 1;
        let shown = path.display();
        let decode = |bytes: &[u8], version| {
            decode_framed::<u32>(&path, bytes, TAG_ENSEMBLE, version)
                .expect_err("refused")
                .to_string()
        };
        let blocker = dir.0.join("a file");
        fs::write(&blocker, b"").expect("write");
        let cases = [
            (
                decode(b"nope", 1),
                format!("{shown} is not a klinecast ensemble file;"),
            ),
            (
                decode(&good[..20], 1),
                format!("ensemble file {shown} is truncated"),
            ),
            (
                decode(&good, 2),
                format!("ensemble file {shown} is format v1, this build reads v2;"),
            ),
            (
                decode(&flipped, 1),
                format!("ensemble file {shown} is corrupt (checksum"),
            ),
            (
                read_file(&path, TAG_ENSEMBLE)
                    .expect_err("missing")
                    .to_string(),
                format!("ensemble file {shown} does not exist;"),
            ),
            (
                save_framed(&blocker.join("x.bin"), TAG_ENSEMBLE, 1, &7u32)
                    .expect_err("a file is in the way")
                    .to_string(),
                "saving ensemble file".to_string(),
            ),
        ];
        for (text, needle) in &cases {
            assert!(text.contains(needle.as_str()), "{needle:?} missing: {text}");
            assert!(!text.contains("model file"), "{text}");
        }
        for (text, _) in &cases[..5] {
            assert!(text.ends_with(FileKind::Ensemble.hint()), "{text}");
            assert!(text.contains("klinecast stream"), "{text}");
        }
        let trained = decode_framed::<u32>(&path, &good, TAG_TRAINED, 1)
            .expect_err("foreign")
            .to_string();
        assert!(
            trained.starts_with(&format!("{shown} is a klinecast ensemble (ENSM) file"))
                && trained.contains("run `klinecast train` again"),
            "{trained}"
        );
        let trained = decode_framed::<u32>(&path, b"nope", TAG_TRAINED, 1)
            .expect_err("foreign")
            .to_string();
        assert!(
            trained.contains("is not a klinecast model file; run `klinecast train` again"),
            "{trained}"
        );
    }
}
