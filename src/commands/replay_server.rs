//! `klinecast replay-server`: the project's fake Binance ([`crate::replay`]) as a command, for
//! tests and demos on 127.0.0.1.

use std::io::{self, Write};
use std::thread;

use crate::cli::ReplayArgs;
use crate::error::Error;
use crate::replay::{Faults, ReplayConfig, ReplayServer};
use crate::store::{self, TornLastLine};

/// The `replay-server` command: loads the CSV, starts the server at `--start-row` (default: half
/// the rows), prints the `listening rest=… ws=…` line and serves until the process is killed.
pub(crate) fn run(args: &ReplayArgs) -> Result<(), Error> {
    let faults = Faults::parse(&args.faults).map_err(Error::Usage)?;
    let (symbol, interval) = store::parse_file_name(&args.data)?;
    let origin = args.data.display().to_string();
    // A collector may be appending to the file: a torn last line is not an error here.
    let klines = store::load_klines_with(&args.data, TornLastLine::IgnoreIfBad)?;
    if klines.is_empty() {
        return Err(Error::Data(format!("{origin}: no kline rows to replay")));
    }
    let start_row = args.start_row.unwrap_or(klines.len() / 2);
    if start_row >= klines.len() {
        return Err(Error::Config(format!(
            "--start-row {start_row} is past the last row of {origin} ({} rows): use 0 to {}",
            klines.len(),
            klines.len() - 1
        )));
    }
    let server = ReplayServer::start(ReplayConfig {
        klines,
        symbol,
        interval,
        start_row,
        speed: args.speed,
        faults,
        port: args.port,
    })
    .map_err(|e| {
        Error::io(
            format!("starting the replay server on port {}", args.port),
            e,
        )
    })?;
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "listening rest={} ws={}",
        server.rest_url(),
        server.ws_url()
    )
    .and_then(|()| out.flush())
    .map_err(|e| Error::io("writing to stdout", e))?;
    drop(out);
    loop {
        thread::park();
    }
}
