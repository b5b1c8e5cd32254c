//! `klinecast stream`: the streaming thread and the ensembling thread (STUB in progress).

pub mod lock;
pub mod predictions;

use crate::cli::StreamArgs;
use crate::error::Error;

pub fn run(args: &StreamArgs) -> Result<(), Error> {
    let _ = args;
    Err(Error::Config("stream is not built yet".to_string()))
}
