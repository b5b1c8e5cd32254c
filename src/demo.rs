//! `klinecast demo` (STUB).

use crate::cli::DemoArgs;
use crate::error::Error;

pub fn run(args: &DemoArgs) -> Result<(), Error> {
    let _ = args;
    Err(Error::Config("demo is not built yet".to_string()))
}
