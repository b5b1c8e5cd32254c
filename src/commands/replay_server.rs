//! `klinecast replay-server`: the project's fake Binance ([`crate::replay`]) as a command, for
//! tests and demos on 127.0.0.1.

use std::io::{self, Write};
use std::thread;

use crate::binance::ws;
use crate::cli::ReplayArgs;
use crate::error::Error;
use crate::replay::{Faults, ReplayServer, ReplaySetup, Series};
use crate::store::{self, TornLastLine};

/// The `replay-server` command: loads the CSV files (`--data A.csv,B.csv`; each file's symbol
/// and interval come from its name), starts the server at `--start-row` of the first file
/// (default: half its rows), prints the `listening rest=… ws=…` line and serves until the
/// process is killed.
pub(crate) fn run(args: &ReplayArgs) -> Result<(), Error> {
    let faults = Faults::parse(&args.faults).map_err(Error::Usage)?;
    // The streams one connection may ask for: Binance's 1024, or fewer for tests.
    let max_streams = ws::max_streams_from(std::env::var(ws::MAX_STREAMS_ENV).ok().as_deref())
        .map_err(Error::Config)?;
    let mut series: Vec<Series> = Vec::with_capacity(args.data.len());
    for path in &args.data {
        let (symbol, interval) = store::parse_file_name(path)?;
        let origin = path.display().to_string();
        if series
            .iter()
            .any(|s| s.symbol == symbol && s.interval == interval)
        {
            return Err(Error::Config(format!(
                "{origin}: {} {interval} is given twice in --data: list each file once",
                symbol.as_str()
            )));
        }
        // A collector may be appending to the file: a torn last line is not an error here.
        let klines = store::load_klines_with(path, TornLastLine::IgnoreIfBad)?;
        if klines.is_empty() {
            return Err(Error::Data(format!("{origin}: no kline rows to replay")));
        }
        series.push(Series {
            symbol,
            interval,
            klines,
        });
    }
    let Some(first) = series.first() else {
        return Err(Error::Usage("replay-server needs --data FILE".to_string()));
    };
    let rows = first.klines.len();
    let start_row = args.start_row.unwrap_or(rows / 2);
    if start_row >= rows {
        return Err(Error::Config(format!(
            "--start-row {start_row} is past the last row of {} ({rows} rows): use 0 to {}",
            args.data[0].display(),
            rows - 1
        )));
    }
    let server = ReplayServer::start_setup(ReplaySetup {
        series,
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
    server.set_max_streams(max_streams);
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
