//! Model files under `models/`: postcard with a magic tag and format version, written
//! atomically (STUB: to be written).

use std::fmt;
use std::path::PathBuf;

/// Errors loading or saving a model file.
#[derive(Debug)]
pub enum PersistError {
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl fmt::Display for PersistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PersistError::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for PersistError {}
