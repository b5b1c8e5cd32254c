//! `klinecast collect`: REST backfill into the kline store (STUB).

use crate::cli::CollectArgs;
use crate::error::Error;

pub fn run(args: &CollectArgs) -> Result<(), Error> {
    let _ = args;
    Err(Error::Config("collect is not built yet".to_string()))
}
