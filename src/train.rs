//! `klinecast train` (STUB).

use crate::cli::TrainArgs;
use crate::error::Error;

pub fn run(args: &TrainArgs) -> Result<(), Error> {
    let _ = args;
    Err(Error::Config("train is not built yet".to_string()))
}
