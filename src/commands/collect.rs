//! `klinecast collect`: REST backfill into the kline store. It first checks the newest stored
//! klines against REST and repairs a difference ([`backfill::check_tail`]), then resumes after
//! the last stored kline with the backfill core that the stream's gap fill uses too
//! ([`backfill::Pager`]: forward pages of 1000, only provably closed klines, the exchange's own
//! gaps counted, never filled). Each page is appended crash-safely, so a killed run followed by
//! a rerun leaves the same bytes as one uninterrupted run. No maths here.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use crate::backfill::{self, EmptyStart, FillRange, FillReport, Pager, Rest};
use crate::binance::rest::RestClient;
use crate::binance::BinanceError;
use crate::cli::{CollectArgs, Start};
use crate::error::Error;
use crate::kline::{Interval, Symbol};
use crate::store::{self, KlineStore};

use crate::time::{format_ms, DAY_MS};

/// Where a fill stands, handed to the progress callback after every page.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Progress {
    /// Open time the fill started from.
    pub(crate) from_ms: i64,
    /// Where it is headed (the end, or the server's time).
    pub(crate) to_ms: i64,
    /// The next open time to fetch.
    pub(crate) cursor_ms: i64,
    pub(crate) rows_added: usize,
    pub(crate) elapsed: Duration,
}

impl Progress {
    /// Share of the time range done, 0 to 100.
    pub(crate) fn percent(&self) -> f64 {
        let span = (self.to_ms - self.from_ms).max(1) as f64;
        ((self.cursor_ms - self.from_ms) as f64 / span * 100.0).clamp(0.0, 100.0)
    }

    /// Rows added per second so far.
    pub(crate) fn rows_per_sec(&self) -> f64 {
        self.rows_added as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }

    /// Estimated time left, from the pace so far.
    pub(crate) fn eta(&self) -> Option<Duration> {
        let done = self.percent();
        (done > 0.0 && done < 100.0).then(|| self.elapsed.mul_f64((100.0 - done) / done))
    }
}

/// Backfills `store` with closed klines: from after its last row, or from `start_ms` (floored
/// to the interval) when it is empty, up to `end_ms` (exclusive) or the server's present. The
/// paging and the proof that each kline is closed are [`backfill::Pager`]'s; this adds the
/// appends and the progress callback.
pub(crate) fn fill<R: Rest + ?Sized>(
    client: &mut R,
    store: &mut KlineStore,
    symbol: &Symbol,
    interval: Interval,
    start_ms: i64,
    end_ms: Option<i64>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<FillReport, Error> {
    let started = Instant::now();
    let range = FillRange {
        symbol: symbol.clone(),
        interval,
        after: store.last_open_time(),
        empty_start: EmptyStart::At(start_ms),
        before: end_ms,
    };
    let mut pager = Pager::start(client, range)?;
    let mut rows_added = 0;
    while let Some(page) = pager.next_page(client)? {
        rows_added += store.append(&page.klines)?;
        progress(&Progress {
            from_ms: page.from_ms,
            to_ms: page.to_ms,
            cursor_ms: page.cursor_ms,
            rows_added,
            elapsed: started.elapsed(),
        });
    }
    Ok(pager.report().clone())
}

/// Checks the newest stored klines against REST and repairs a difference (see
/// [`backfill::check_tail`]), saying what it did on stderr.
fn check_store<R: Rest + ?Sized>(
    client: &mut R,
    store: &mut KlineStore,
    symbol: &Symbol,
    interval: Interval,
) -> Result<(), Error> {
    let check = backfill::check_tail(client, store, symbol, interval).map_err(|e| match e {
        backfill::CheckError::Rest(e) => Error::Binance(e),
        backfill::CheckError::Store(e) => Error::Store(e),
    })?;
    for line in check.messages(store.path()) {
        eprintln!("klinecast: {line}");
    }
    Ok(())
}

/// Runs `klinecast collect`: each symbol in turn through one REST client, so every request
/// counts against the one request-weight budget the client keeps (Binance counts weight per IP,
/// whatever the symbol). One symbol's error is returned as it is; with several, a symbol's
/// failure is printed with its name and the next symbol goes on, except a ban (HTTP 418), which
/// holds for every symbol and stops the run; the error at the end names each symbol that failed.
pub(crate) fn run(args: &CollectArgs) -> Result<(), Error> {
    let mut client = RestClient::new(&args.rest_url).map_err(|e| match e {
        BinanceError::BadUrl { .. } => {
            Error::Config(format!("{e} (set with --rest-url or KLINECAST_REST_URL)"))
        }
        other => Error::Binance(other),
    })?;
    if let [symbol] = args.symbols.as_slice() {
        return collect_symbol(&mut client, args, symbol);
    }
    let mut failed = Vec::new();
    for symbol in &args.symbols {
        match collect_symbol(&mut client, args, symbol) {
            Ok(()) => {}
            Err(e @ Error::Binance(BinanceError::Banned { .. })) => return Err(e),
            Err(e) => {
                eprintln!("klinecast: error: {symbol} {}: {e}", args.interval);
                failed.push(symbol.to_string());
            }
        }
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(Error::Data(format!(
        "collect failed for {} of {} symbols: {} (each error is above); the other stores are \
         filled; fix what is named and run collect again (it resumes each store where it ends)",
        failed.len(),
        args.symbols.len(),
        failed.join(", ")
    )))
}

/// Checks and backfills one symbol's store, and prints its summary.
fn collect_symbol(
    client: &mut RestClient,
    args: &CollectArgs,
    symbol: &Symbol,
) -> Result<(), Error> {
    let path = store::kline_path(&args.data_dir, symbol, args.interval);
    let (mut store, opened) = KlineStore::open(&path)?;
    if let Some(msg) = opened.repair_message(&path) {
        eprintln!("klinecast: {msg}");
    }
    let label = format!("{symbol} {}", args.interval);
    let mut printer = ProgressPrinter::new(&label);
    let started = Instant::now();
    let filled = (|| {
        check_store(client, &mut store, symbol, args.interval)?;
        let start_ms = match args.start {
            Start::Date(ms) => ms,
            Start::Days(days) => client.server_time()? - i64::from(days) * DAY_MS,
        };
        fill(
            client,
            &mut store,
            symbol,
            args.interval,
            start_ms,
            args.end,
            &mut |p| printer.update(p),
        )
    })();
    printer.finish();
    let report = match filled {
        Ok(report) => report,
        Err(e) => {
            // A store this run created and never filled (an unknown symbol, a ban at once) is
            // not left behind as a header-only file that `status` and `report` would list.
            if opened.created && store.rows() == Some(0) {
                drop(store);
                let _ = std::fs::remove_file(&path);
            }
            return Err(e);
        }
    };
    println!(
        "{}",
        summary(
            &label,
            &path,
            &store,
            &report,
            started.elapsed(),
            args.interval
        )
    );
    Ok(())
}

fn summary(
    label: &str,
    path: &std::path::Path,
    store: &KlineStore,
    report: &FillReport,
    elapsed: Duration,
    interval: Interval,
) -> String {
    let mut text = format!(
        "{label}: added {} rows in {:.1} s ({} pages); {} now holds {}",
        report.rows,
        elapsed.as_secs_f64(),
        report.pages,
        path.display(),
        store
            .rows()
            .map_or("its rows".to_string(), |n| format!("{n} rows"))
    );
    if let Some(last) = store.last_open_time() {
        text.push_str(&format!(" up to {} UTC", format_ms(last)));
    }
    if report.gaps > 0 {
        let biggest = report
            .biggest_gap
            .map(|g| {
                format!(
                    "; the biggest is {} klines after {} UTC",
                    g.missing,
                    format_ms(g.after_ms + interval.ms())
                        .get(..16)
                        .unwrap_or_default()
                )
            })
            .unwrap_or_default();
        text.push_str(&format!(
            "\nexchange gaps (no klines exist there, none were invented): {} gaps, {} klines \
             missing{biggest}",
            report.gaps, report.missing_klines
        ));
    }
    text
}

/// Progress on stderr: a line rewritten in place on a terminal (at most every 0.5 s), a new
/// line every 10 s otherwise (cron logs).
struct ProgressPrinter {
    label: String,
    tty: bool,
    last: Option<Instant>,
    pending: bool,
}

impl ProgressPrinter {
    fn new(label: &str) -> ProgressPrinter {
        let tty = std::io::stderr().is_terminal();
        ProgressPrinter {
            label: label.to_string(),
            tty,
            // In logs, the first line comes after 10 s: short runs only print the summary.
            last: (!tty).then(Instant::now),
            pending: false,
        }
    }

    fn update(&mut self, p: &Progress) {
        let every = if self.tty {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(10)
        };
        if self.last.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        self.last = Some(Instant::now());
        let eta = p
            .eta()
            .map(|d| format!(", ETA {}", crate::time::format_duration(d)))
            .unwrap_or_default();
        let line = format!(
            "{}: {:5.1}% {} rows, {:.0} rows/s{eta}, at {} UTC",
            self.label,
            p.percent(),
            p.rows_added,
            p.rows_per_sec(),
            format_ms(p.cursor_ms).get(..16).unwrap_or_default()
        );
        if self.tty {
            eprint!("\r{line}\x1b[K");
            self.pending = true;
        } else {
            eprintln!("{line}");
        }
    }

    fn finish(&mut self) {
        if self.pending {
            eprintln!();
            self.pending = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backfill::Gap;
    use crate::binance::rest::tests::{client, Reply, Scripted};
    use crate::kline::Kline;
    use crate::testutil::TempDir;
    use std::path::Path;
    use std::sync::{Arc, Mutex};

    const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/AVAXUSDT_1m.csv");

    fn to_json(klines: &[Kline]) -> String {
        let rows: Vec<String> = klines.iter().map(crate::replay::market::rest_row).collect();
        format!("[{}]", rows.join(","))
    }

    fn query(target: &str, key: &str) -> Option<i64> {
        let q = target.split_once('?')?.1;
        q.split('&')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
    }

    /// A fake Binance serving `klines` (with holes) at server time `now`: rows that have not
    /// opened yet are hidden, and the still-open one is served with a partial close.
    fn kline_server(klines: Vec<Kline>, now: Arc<Mutex<i64>>) -> Scripted {
        Scripted::start(Box::new(move |target| {
            let now = *now.lock().expect("lock");
            if target.starts_with("/api/v3/time") {
                return Reply::ok(&format!(r#"{{"serverTime":{now}}}"#));
            }
            let start = query(target, "startTime").unwrap_or(0);
            let end = query(target, "endTime").unwrap_or(i64::MAX);
            let limit = query(target, "limit").unwrap_or(500) as usize;
            let page: Vec<Kline> = klines
                .iter()
                .filter(|k| k.open_time >= start && k.open_time <= end && k.open_time <= now)
                .take(limit)
                .map(|k| {
                    let mut k = k.clone();
                    if k.close_time >= now {
                        k.close = k.open.clone();
                        k.trades = 1;
                    }
                    k
                })
                .collect();
            Reply::ok(&to_json(&page)).header("X-MBX-USED-WEIGHT-1M", "2")
        }))
    }

    /// 2,600 real klines with two exchange holes: 25 klines after row 1499, 3 after row 2199.
    fn data() -> (Vec<Kline>, Vec<Kline>) {
        let all = store::load_klines(Path::new(SAMPLE)).expect("sample");
        let mut served = all[..2600].to_vec();
        served.drain(2200..2203);
        served.drain(1500..1525);
        (all, served)
    }

    fn symbol() -> Symbol {
        Symbol::parse("AVAXUSDT").expect("valid")
    }

    fn run_fill(
        url: &str,
        path: &Path,
        start: i64,
        end: Option<i64>,
    ) -> (FillReport, Vec<Progress>) {
        let (mut c, _, _) = client(url);
        let (mut store, _) = KlineStore::open(path).expect("open store");
        let mut seen = Vec::new();
        let report = fill(
            &mut c,
            &mut store,
            &symbol(),
            Interval::ONE_MINUTE,
            start,
            end,
            &mut |p| seen.push(p.clone()),
        )
        .expect("fill");
        (report, seen)
    }

    #[test]
    fn pages_across_gaps_and_never_stores_the_open_candle() {
        let dir = TempDir::new("gaps");
        let (all, served) = data();
        // The server's clock is 30 s into the candle at row 2500.
        let now = Arc::new(Mutex::new(all[2500].open_time + 30_000));
        let server = kline_server(served.clone(), now);
        let path = dir.join("AVAXUSDT_1m.csv");
        // Start in the middle of a minute: floored to the interval.
        let (report, seen) = run_fill(&server.url, &path, all[0].open_time + 5_000, None);
        let expected: Vec<Kline> = served
            .iter()
            .filter(|k| k.open_time < all[2500].open_time)
            .cloned()
            .collect();
        assert_eq!(expected.len(), 2500 - 25 - 3);
        assert_eq!(store::load_klines(&path).expect("load"), expected);
        assert_eq!(report.rows, expected.len());
        assert_eq!((report.gaps, report.missing_klines), (2, 28));
        assert_eq!(
            report.biggest_gap,
            Some(Gap {
                after_ms: all[1499].open_time,
                missing: 25
            })
        );
        assert_eq!(report.pages, 3);
        assert_eq!(
            store::load_klines(&path)
                .expect("load")
                .last()
                .map(|k| k.open_time),
            Some(all[2499].open_time)
        );
        // Cursors advanced from the last open time returned, not by a fixed step.
        let log = server.request_log();
        let starts: Vec<i64> = log.iter().filter_map(|t| query(t, "startTime")).collect();
        assert_eq!(
            starts,
            vec![
                all[0].open_time,
                expected[999].open_time + 60_000,
                expected[1999].open_time + 60_000
            ]
        );
        assert_eq!(seen.len(), 3);
        assert_eq!(seen.last().map(|p| p.percent()), Some(100.0));
        assert!(
            seen[0].percent() > 30.0 && seen[0].percent() < 50.0,
            "{seen:?}"
        );
    }

    /// Backs README claim [C4]: A collect killed at any moment and rerun leaves the same bytes as one uninterrupted run.
    #[test]
    fn interrupted_runs_resume_to_identical_bytes() {
        let dir = TempDir::new("resume");
        let (all, served) = data();
        let now = Arc::new(Mutex::new(all[2000].open_time + 5_000));
        let server = kline_server(served, now.clone());
        let start = all[0].open_time;
        let whole = dir.join("whole.csv");
        run_fill(&server.url, &whole, start, None);
        // Stopped early by an end date, then killed mid-append (a torn line), then rerun.
        let parts = dir.join("parts.csv");
        let (first, _) = run_fill(&server.url, &parts, start, Some(all[700].open_time));
        assert_eq!(first.rows, 700);
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&parts)
                .expect("open");
            f.write_all(b"1782906060000,6.6,6.7").expect("tear");
        }
        let (second, _) = run_fill(&server.url, &parts, start, None);
        assert_eq!(first.rows + second.rows, 2000 - 25);
        assert_eq!(
            std::fs::read(&parts).expect("parts"),
            std::fs::read(&whole).expect("whole")
        );
        // Nothing new: a rerun adds nothing and changes nothing.
        let (third, _) = run_fill(&server.url, &parts, start, None);
        assert_eq!((third.rows, third.pages), (0, 1));
        // Time moves on: the rest arrives, still identical to one uninterrupted run.
        *now.lock().expect("lock") = all[2300].open_time + 59_000;
        let (fourth, _) = run_fill(&server.url, &parts, start, None);
        assert_eq!(fourth.rows, 300 - 3);
        assert_eq!((fourth.gaps, fourth.missing_klines), (1, 3));
        let (_, _) = run_fill(&server.url, &whole, start, None);
        assert_eq!(
            std::fs::read(&parts).expect("parts"),
            std::fs::read(&whole).expect("whole")
        );
    }

    #[test]
    fn errors_stop_the_fill_and_keep_what_was_stored() {
        let dir = TempDir::new("ban");
        let (all, served) = data();
        let served = served[..1000].to_vec();
        let now = all[2000].open_time;
        let mut calls = 0;
        let server = Scripted::start(Box::new(move |target| {
            calls += 1;
            if target.starts_with("/api/v3/time") {
                return Reply::ok(&format!(r#"{{"serverTime":{now}}}"#));
            }
            if calls == 2 {
                Reply::ok(&to_json(&served))
            } else {
                Reply::status(418, "{}").header("Retry-After", "300")
            }
        }));
        let path = dir.join("x.csv");
        let (mut c, _, _) = client(&server.url);
        let (mut store, _) = KlineStore::open(&path).expect("open");
        let err = fill(
            &mut c,
            &mut store,
            &symbol(),
            Interval::ONE_MINUTE,
            all[0].open_time,
            None,
            &mut |_| {},
        )
        .expect_err("banned");
        assert!(err.to_string().contains("banned for 300 s"), "{err}");
        assert_eq!(err.exit_code(), 1);
        assert_eq!(store.rows(), Some(1000));
        assert_eq!(store::load_klines(&path).expect("load").len(), 1000);
    }

    #[test]
    fn progress_maths() {
        let p = Progress {
            from_ms: 0,
            to_ms: 1000,
            cursor_ms: 250,
            rows_added: 500,
            elapsed: Duration::from_secs(10),
        };
        assert_eq!(p.percent(), 25.0);
        assert_eq!(p.rows_per_sec(), 50.0);
        assert_eq!(p.eta(), Some(Duration::from_secs(30)));
    }
}
