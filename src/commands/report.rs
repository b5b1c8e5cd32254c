//! `klinecast report`: the scoreboard of a stream's run on stdout and, with `--html`, a page of
//! charts ([`crate::page::run`]) from the files the stream wrote ([`RunFiles`], only read).

use crate::cli::ReportArgs;
use crate::ensemble::report::scoreboard_table;
use crate::error::Error;
use crate::page::{self, run::scoreboard_rows};
use crate::run_files::RunFiles;

/// Runs `klinecast report`.
pub(crate) fn run(args: &ReportArgs) -> Result<(), Error> {
    let (files, warnings) = RunFiles::read_with_warnings(&args.dirs.data, &args.dirs.log)?;
    for warning in &warnings {
        eprintln!("klinecast report: warning: {warning}");
    }
    println!(
        "{}: {} klines stored, {} forecasts, {} windows",
        files.store_path.display(),
        files.closes.len(),
        files.forecasts.len(),
        files.windows.len()
    );
    println!(
        "\nscoreboard (price errors over all windows in {}):",
        args.dirs.log.display()
    );
    print!("{}", scoreboard_table(&scoreboard_rows(&files.windows)));
    if let Some(out) = &args.html {
        let html = page::run::html(&files, args.hours, &args.dirs.data.display().to_string());
        page::write(out, &html)?;
        println!("\nwrote {}", out.display());
    }
    Ok(())
}
