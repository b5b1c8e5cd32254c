//! `klinecast report`: the scoreboard of a stream's run on stdout and, with `--html`, a page of
//! charts ([`crate::page::run`]) from the files the stream wrote ([`RunFiles`], only read). With
//! several symbols, each symbol's scoreboard, and with `--html FILE` an overview page at FILE
//! ([`crate::page::overview`]) linking to each symbol's page, written beside it as
//! `<FILE stem>-<SYMBOL>_<interval>.html`.

use std::path::{Path, PathBuf};

use crate::cli::ReportArgs;
use crate::ensemble::report::scoreboard_table;
use crate::error::Error;
use crate::layout::folder_name;
use crate::log::wall_clock_ms;
use crate::page::{self, overview, run::scoreboard_rows};
use crate::run_files::{age_ms, series_to_read, RunFiles, SeriesFiles};

/// Runs `klinecast report`.
pub(crate) fn run(args: &ReportArgs) -> Result<(), Error> {
    let series = series_to_read(&args.dirs, &args.symbols, args.interval);
    let title = args.dirs.data.display().to_string();
    match series.as_slice() {
        [] => Err(Error::Data(format!(
            "{}: no kline store (<SYMBOL>_<interval>.csv) found; give the --data-dir of a \
             stream",
            args.dirs.data.display()
        ))),
        [one] => {
            let files = read(args, one)?;
            if let Some(out) = &args.html {
                page::write(out, &page::run::html(&files, args.hours, &title))?;
                println!("\nwrote {}", out.display());
            }
            Ok(())
        }
        several => report_several(args, several, &title),
    }
}

/// Reads one series, prints its warnings (stderr) and its scoreboard (stdout).
fn read(args: &ReportArgs, series: &SeriesFiles) -> Result<RunFiles, Error> {
    let (files, warnings) = RunFiles::read_with_warnings(series, &args.dirs.log)?;
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
        series.window_log.display()
    );
    print!("{}", scoreboard_table(&scoreboard_rows(&files.windows)));
    Ok(files)
}

/// Each series' report, one after the other; one that cannot be read is named and the others
/// go on. With `--html FILE`, each series' page beside FILE and the overview at FILE.
fn report_several(args: &ReportArgs, series: &[SeriesFiles], title: &str) -> Result<(), Error> {
    let now = wall_clock_ms();
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    for s in series {
        println!("\n== {} ==", s.label());
        let files = match read(args, s) {
            Ok(files) => files,
            Err(e) => {
                eprintln!("klinecast: error: {}: {e}", s.label());
                rows.push(overview::Row::failed(&s.label(), &e.to_string()));
                failed.push(s.label());
                continue;
            }
        };
        if let Some(out) = &args.html {
            let path = symbol_page(out, s);
            page::write(&path, &page::run::html(&files, args.hours, title))?;
            println!("wrote {}", path.display());
            let href = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            rows.push(overview::Row::of(
                &s.label(),
                &files,
                &href,
                age_ms(&s.store, now).map(|a| a as f64 / 1000.0),
            ));
        }
    }
    if let Some(out) = &args.html {
        page::write(out, &overview::html(&rows, title))?;
        println!("\nwrote {}", out.display());
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(Error::Data(format!(
        "report failed for {} of {} symbols: {} (each error is above)",
        failed.len(),
        series.len(),
        failed.join(", ")
    )))
}

/// `<dir>/<stem>-<SYMBOL>_<interval>.html` beside the overview `out`.
fn symbol_page(out: &Path, series: &SeriesFiles) -> PathBuf {
    let stem = out.file_stem().map_or_else(
        || "report".to_string(),
        |s| s.to_string_lossy().into_owned(),
    );
    out.with_file_name(format!(
        "{stem}-{}.html",
        folder_name(&series.symbol, series.interval)
    ))
}
