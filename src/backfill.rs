//! The one REST backfill core, shared by `collect` and the stream's gap fill, and the start-up
//! check of the newest stored klines against Binance. I/O orchestration only, no maths: the
//! caller owns the store and decides what to do with each page (append and show progress, or
//! append and hand each kline to the ensembler).
//!
//! # Proof that a kline is closed
//! A kline is handed on only if the server time taken **before** its page was requested is past
//! its close time by [`SETTLE_MS`]. The page's still-open candle, served with partial values,
//! fails this test whatever happens after the page was served: a retried time request, a slow
//! answer or a paused process cannot make it pass. (Asking the time *after* the page, as
//! versions before 0.1.1 did, let a partial candle through whenever anything delayed that second
//! request across the candle's close.) The margin follows Binance's note that klines come from a
//! database that may lag the matching engine by a second or two.
//!
//! # Paging
//! Forward from the cursor, 1000 klines a page; the next cursor is the last open time returned
//! plus one interval, so exchange holes are jumped, never filled. The server time is asked again
//! only when a page may reach klines not yet known to be closed, so a three-year backfill costs
//! one extra request of weight 1, not one per page. The fill ends when a page holds a kline that
//! is not yet provably closed, when it is short (the exchange has nothing more), or when the
//! cursor reaches the end asked for.

use crate::binance::rest::{RestClient, MAX_LIMIT};
use crate::binance::BinanceError;
use crate::kline::{Interval, Kline, Symbol};
use crate::store::{KlineStore, StoreError};

/// Largest page asked of the REST klines endpoint.
pub(crate) const PAGE_LIMIT: usize = MAX_LIMIT as usize;

/// A kline counts as closed only when the server time taken before its page is at least this
/// many ms past its close time (Binance serves klines from a database that may lag by 1–2 s).
pub const SETTLE_MS: i64 = 2_000;

/// How many of the newest stored klines are checked against REST at start-up (one request).
pub(crate) const CHECK_ROWS: usize = PAGE_LIMIT;

/// True when `kline` is provably closed by a server time `server_now` taken before it was served.
pub(crate) fn is_closed(kline: &Kline, server_now: i64) -> bool {
    kline.close_time.saturating_add(SETTLE_MS) < server_now
}

/// One page request of the REST klines endpoint: at most `limit` klines of `symbol` at
/// `interval` with open times from `start_ms` to `end_ms` (inclusive, when given).
#[derive(Debug, Clone, Copy)]
pub(crate) struct KlinesRequest<'a> {
    pub(crate) symbol: &'a Symbol,
    pub(crate) interval: Interval,
    pub(crate) start_ms: i64,
    pub(crate) end_ms: Option<i64>,
    pub(crate) limit: usize,
}

impl KlinesRequest<'_> {
    /// The page the endpoint would serve from `klines` (sorted by open time): the fake
    /// exchanges' answer.
    #[cfg(test)]
    pub(crate) fn serve(&self, klines: impl Iterator<Item = Kline>) -> Vec<Kline> {
        klines
            .filter(|k| {
                k.open_time >= self.start_ms && self.end_ms.is_none_or(|e| k.open_time <= e)
            })
            .take(self.limit)
            .collect()
    }
}

/// The REST calls a backfill needs (the real client, or a fake in tests).
pub(crate) trait Rest {
    fn server_time(&mut self) -> Result<i64, BinanceError>;
    fn klines(&mut self, request: &KlinesRequest<'_>) -> Result<Vec<Kline>, BinanceError>;
    /// Notices the client collected (retries, waits), to be logged.
    fn notes(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// One attempt per request, no retry (`true`), or the client's usual retries (`false`).
    fn single_attempt(&mut self, _on: bool) {}
}

impl Rest for RestClient {
    fn single_attempt(&mut self, on: bool) {
        RestClient::set_single_attempt(self, on);
    }

    fn server_time(&mut self) -> Result<i64, BinanceError> {
        RestClient::server_time(self)
    }

    fn klines(&mut self, request: &KlinesRequest<'_>) -> Result<Vec<Kline>, BinanceError> {
        let limit = u16::try_from(request.limit).unwrap_or(MAX_LIMIT);
        let KlinesRequest {
            symbol,
            interval,
            start_ms,
            end_ms,
            ..
        } = *request;
        RestClient::klines(self, symbol, interval, start_ms, end_ms, limit)
    }
}

/// Where a backfill starts when the store is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EmptyStart {
    /// At this open time (floored to the interval).
    At(i64),
    /// This many klines before the server's present.
    RowsBeforeNow(usize),
}

/// What to backfill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FillRange {
    pub symbol: Symbol,
    pub interval: Interval,
    /// The newest stored open time: the fill starts one interval after it.
    pub after: Option<i64>,
    /// Where to start when nothing is stored.
    pub(crate) empty_start: EmptyStart,
    /// Only klines opening before this time (exclusive); `None`: up to the present.
    pub before: Option<i64>,
}

/// A hole in the exchange's data: no kline between two consecutive open times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gap {
    /// Open time of the last kline before the hole.
    pub(crate) after_ms: i64,
    /// Klines missing.
    pub missing: i64,
}

/// What a backfill did so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FillReport {
    /// Closed klines handed on.
    pub rows: usize,
    /// Requests for klines made.
    pub pages: usize,
    /// Number of holes met (between stored rows and the new ones, or among the new ones).
    pub gaps: usize,
    /// Klines missing in all those holes.
    pub(crate) missing_klines: i64,
    pub(crate) biggest_gap: Option<Gap>,
    /// The newest server time asked.
    pub server_time: i64,
}

impl FillReport {
    fn note_gap(&mut self, prev: i64, next: i64, interval_ms: i64) {
        let missing = (next - prev) / interval_ms - 1;
        if missing <= 0 {
            return;
        }
        self.gaps += 1;
        self.missing_klines += missing;
        if self.biggest_gap.is_none_or(|g| missing > g.missing) {
            self.biggest_gap = Some(Gap {
                after_ms: prev,
                missing,
            });
        }
    }
}

/// One page of new, closed klines, ascending and all newer than anything handed on before.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Page {
    pub klines: Vec<Kline>,
    /// The open time the fill started from.
    pub(crate) from_ms: i64,
    /// Where it is headed (the end asked for, or the server's time).
    pub(crate) to_ms: i64,
    /// The next open time to fetch (`to_ms` once caught up).
    pub(crate) cursor_ms: i64,
}

/// The backfill loop as a pager: each [`Pager::next_page`] makes the requests for one page and
/// returns its closed klines, so that the caller can append them, report progress or stop
/// (the pager does not hold the client, so the caller keeps full use of its own state).
#[derive(Debug)]
pub(crate) struct Pager {
    range: FillRange,
    from: i64,
    cursor: i64,
    prev: Option<i64>,
    /// Server time taken before any page still to be requested: the proof of closure.
    now: i64,
    done: bool,
    report: FillReport,
}

impl Pager {
    /// Starts a backfill: asks the server's time (the first proof, and the start when the store
    /// is empty).
    pub(crate) fn start<R: Rest + ?Sized>(
        rest: &mut R,
        range: FillRange,
    ) -> Result<Pager, BinanceError> {
        let step = range.interval.ms();
        let now = rest.server_time()?;
        let from = match (range.after, range.empty_start) {
            (Some(last), _) => last + step,
            (None, EmptyStart::At(ms)) => ms.max(0) - ms.max(0) % step,
            (None, EmptyStart::RowsBeforeNow(n)) => (now.div_euclid(step) - n as i64).max(0) * step,
        };
        Ok(Pager {
            prev: range.after,
            range,
            from,
            cursor: from,
            now,
            done: false,
            report: FillReport {
                server_time: now,
                ..FillReport::default()
            },
        })
    }

    /// Open times up to (excluding) this are the goal for a server time `now`.
    fn target(&self, now: i64) -> i64 {
        self.range.before.map_or(now, |b| b.min(now))
    }

    /// The next page of closed klines (possibly empty when a page held only known or open
    /// klines); `None` once the fill has caught up.
    pub(crate) fn next_page<R: Rest + ?Sized>(
        &mut self,
        rest: &mut R,
    ) -> Result<Option<Page>, BinanceError> {
        let step = self.range.interval.ms();
        if self.done {
            return Ok(None);
        }
        // A page that may reach past the last proven time needs a newer proof, taken now,
        // before the page is requested.
        let page_end = self.cursor.saturating_add(PAGE_LIMIT as i64 * step);
        if page_end > self.now - SETTLE_MS {
            self.now = rest.server_time()?;
            self.report.server_time = self.now;
        }
        let now = self.now;
        if self.cursor >= self.target(now) {
            self.done = true;
            return Ok(None);
        }
        let end_time = self.range.before.map(|b| b - 1);
        let page = rest.klines(&KlinesRequest {
            symbol: &self.range.symbol,
            interval: self.range.interval,
            start_ms: self.cursor,
            end_ms: end_time,
            limit: PAGE_LIMIT,
        })?;
        self.report.pages += 1;
        let Some(last_returned) = page.last().map(|k| k.open_time) else {
            self.done = true;
            return Ok(None);
        };
        let cursor = self.cursor;
        let before = self.range.before;
        let prev = self.prev;
        let mut reached_open = false;
        let mut klines = Vec::with_capacity(page.len());
        for k in page.iter() {
            let in_range = k.open_time >= cursor
                && before.is_none_or(|b| k.open_time < b)
                && prev.is_none_or(|p| k.open_time > p);
            if !in_range {
                continue;
            }
            if !is_closed(k, now) {
                reached_open = true;
                break;
            }
            klines.push(k.clone());
        }
        for k in &klines {
            if let Some(p) = self.prev {
                self.report.note_gap(p, k.open_time, step);
            }
            self.prev = Some(k.open_time);
        }
        self.report.rows += klines.len();
        self.done = reached_open || page.len() < PAGE_LIMIT;
        self.cursor = last_returned + step;
        let to_ms = self.target(now).max(self.from);
        Ok(Some(Page {
            klines,
            from_ms: self.from,
            to_ms,
            cursor_ms: if self.done { to_ms } else { self.cursor },
        }))
    }

    /// What the fill did so far.
    pub(crate) fn report(&self) -> &FillReport {
        &self.report
    }
}

/// One stored row that differed from Binance's closed kline, and what replaced it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RowFix {
    pub stored: Kline,
    /// Binance's closed kline at that open time; `None` when REST has no closed kline there.
    pub binance: Option<Kline>,
}

/// What the start-up check of the store's newest rows found and did.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct TailCheck {
    /// Stored rows compared with REST.
    pub checked: usize,
    /// Rows that differed, oldest first (empty when the store agreed with Binance).
    pub fixes: Vec<RowFix>,
    /// Rows removed from the store (from the first difference on).
    pub removed: usize,
    /// Rows written in their place.
    pub written: usize,
}

impl TailCheck {
    /// Log lines naming each differing row in both versions, or nothing when all agreed.
    pub(crate) fn messages(&self, store: &std::path::Path) -> Vec<String> {
        let mut lines = Vec::new();
        if self.fixes.is_empty() {
            return lines;
        }
        lines.push(format!(
            "{}: {} of the newest {} stored klines differ from Binance's closed klines (a \
             still-open candle stored as closed by an older version?); replaced {} rows by {} \
             from REST",
            store.display(),
            self.fixes.len(),
            self.checked,
            self.removed,
            self.written
        ));
        for fix in &self.fixes {
            lines.push(format!(
                "  stored:  {}\n  binance: {}",
                fix.stored.to_csv_line(),
                fix.binance
                    .as_ref()
                    .map_or("(no closed kline at this open time)".to_string(), |k| k
                        .to_csv_line())
            ));
        }
        lines
    }
}

/// Why a start-up check failed.
#[derive(Debug)]
pub(crate) enum CheckError {
    Rest(BinanceError),
    Store(StoreError),
}

impl std::fmt::Display for CheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckError::Rest(e) => e.fmt(f),
            CheckError::Store(e) => e.fmt(f),
        }
    }
}

/// Compares the newest [`CHECK_ROWS`] stored klines with REST (one request) and repairs the
/// store from the first difference on. A closed kline never changes on Binance, so any
/// difference is a row that was stored before it closed. Only rows the server's time proves
/// closed (past [`SETTLE_MS`]) are compared; newer ones are checked at a later start.
/// [`probe_tail`] then [`TailProbe::apply`].
pub(crate) fn check_tail<R: Rest + ?Sized>(
    rest: &mut R,
    store: &mut KlineStore,
    symbol: &Symbol,
    interval: Interval,
) -> Result<TailCheck, CheckError> {
    let probe = probe_tail(rest, store, symbol, interval)?;
    probe.apply(store).map_err(CheckError::Store)
}

/// What REST said about the newest stored klines, not yet applied to the store: the requests
/// of [`check_tail`] without its writes (the stream asks as soon as it starts, and writes only
/// once the local checks have passed).
#[derive(Debug, Clone, Default)]
pub(crate) struct TailProbe {
    /// The newest stored klines, as read.
    stored: Vec<Kline>,
    /// REST's closed klines over the same open times.
    closed: Vec<Kline>,
    /// The server time taken before the page.
    now: i64,
}

/// Reads the newest [`CHECK_ROWS`] stored klines and asks REST for the same open times (a time
/// request and one page; nothing when the store is empty). Writes nothing.
pub(crate) fn probe_tail<R: Rest + ?Sized>(
    rest: &mut R,
    store: &mut KlineStore,
    symbol: &Symbol,
    interval: Interval,
) -> Result<TailProbe, CheckError> {
    let stored = store.tail(CHECK_ROWS).map_err(CheckError::Store)?;
    let (Some(first), Some(last)) = (stored.first(), stored.last()) else {
        return Ok(TailProbe::default());
    };
    let now = rest.server_time().map_err(CheckError::Rest)?;
    let page = rest
        .klines(&KlinesRequest {
            symbol,
            interval,
            start_ms: first.open_time,
            end_ms: Some(last.open_time),
            limit: CHECK_ROWS,
        })
        .map_err(CheckError::Rest)?;
    let closed: Vec<Kline> = page.into_iter().filter(|k| is_closed(k, now)).collect();
    Ok(TailProbe {
        stored,
        closed,
        now,
    })
}

impl TailProbe {
    /// Repairs `store` from the first stored row that differs from REST's closed kline (the
    /// store must not have changed since the probe: the stream thread, its only writer, applies
    /// before it appends).
    pub(crate) fn apply(self, store: &mut KlineStore) -> Result<TailCheck, StoreError> {
        let TailProbe {
            stored,
            closed,
            now,
        } = self;
        if stored.is_empty() {
            return Ok(TailCheck::default());
        }
        let binance_at = |t: i64| {
            closed
                .binary_search_by_key(&t, |k| k.open_time)
                .ok()
                .map(|i| &closed[i])
        };
        // Only rows the server's time proves closed can be compared: a newer row (stored from
        // the socket's final a moment ago) is left for the next start.
        let provable = stored.iter().take_while(|s| is_closed(s, now)).count();
        let mut check = TailCheck {
            checked: provable,
            ..TailCheck::default()
        };
        let Some(bad) = stored[..provable]
            .iter()
            .position(|s| binance_at(s.open_time).is_none_or(|b| !b.same_values(s)))
        else {
            return Ok(check);
        };
        for s in &stored[bad..provable] {
            let b = binance_at(s.open_time);
            if b.is_none_or(|b| !b.same_values(s)) {
                check.fixes.push(RowFix {
                    stored: s.clone(),
                    binance: b.cloned(),
                });
            }
        }
        let from = stored[bad].open_time;
        let replacement: Vec<Kline> = closed
            .iter()
            .filter(|k| k.open_time >= from)
            .cloned()
            .collect();
        let removed = store.replace_tail(from, CHECK_ROWS, &replacement)?;
        check.removed = removed.len();
        check.written = replacement.len();
        Ok(check)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{kline, TempDir};
    use std::collections::VecDeque;

    const MIN: i64 = 60_000;

    /// The still-open candle `i` as the exchange serves it: open = high = low = close.
    fn partial(i: i64) -> Kline {
        let k = kline(i);
        Kline {
            high: k.open.clone(),
            low: k.open.clone(),
            close: k.open.clone(),
            volume: "0".into(),
            quote_volume: "0".into(),
            trades: 0,
            taker_buy_base: "0".into(),
            taker_buy_quote: "0".into(),
            ..k
        }
    }

    /// An exchange of klines 0..n whose clock is `now` when a page is *served*, but moves on to
    /// `later` (e.g. a retried or slow request) before the next time request is answered: the
    /// situation in which versions before 0.1.1 stored a partial candle.
    struct Exchange {
        n: i64,
        times: VecDeque<i64>,
        now: i64,
        log: Vec<String>,
    }

    impl Exchange {
        fn new(n: i64, times: &[i64]) -> Exchange {
            Exchange {
                n,
                times: times.iter().copied().collect(),
                now: times[0],
                log: Vec::new(),
            }
        }
    }

    impl Rest for Exchange {
        fn server_time(&mut self) -> Result<i64, BinanceError> {
            if let Some(t) = self.times.pop_front() {
                self.now = t;
            }
            self.log.push(format!("time {}", self.now));
            Ok(self.now)
        }

        fn klines(&mut self, request: &KlinesRequest<'_>) -> Result<Vec<Kline>, BinanceError> {
            self.log.push(format!("klines {}", request.start_ms));
            let now = self.now;
            let served = (0..self.n)
                .map(kline)
                .filter(|k| k.open_time <= now)
                .map(|k| {
                    if k.close_time >= now {
                        partial(k.open_time / MIN)
                    } else {
                        k
                    }
                });
            Ok(request.serve(served))
        }
    }

    fn range(after: Option<i64>, start: EmptyStart, before: Option<i64>) -> FillRange {
        FillRange {
            symbol: Symbol::parse("AVAXUSDT").expect("symbol"),
            interval: Interval::ONE_MINUTE,
            after,
            empty_start: start,
            before,
        }
    }

    fn drain(rest: &mut Exchange, range: FillRange) -> (Vec<Kline>, FillReport) {
        let mut pager = Pager::start(rest, range).expect("start");
        let mut got = Vec::new();
        while let Some(page) = pager.next_page(rest).expect("page") {
            got.extend(page.klines);
        }
        (got, pager.report().clone())
    }

    /// Regression (issue "collect stores a still-open candle"): the server time that proves a
    /// kline closed is taken before its page, so a clock that moves past the candle's close
    /// between the page and the next time request cannot let the partial candle through.
    /// Backs README claim [C2]: A kline is stored only if the server time taken before its page proves it closed, even with a 429 on the time request or a slow answer across the minute boundary.
    #[test]
    fn the_open_candle_never_passes_however_late_the_next_time_request() {
        // 2,500 klines exist; the clock is 30 s into candle 2400 when its page is served, and
        // 10 minutes later at every later time request.
        let serve = 2400 * MIN + 30_000;
        let mut ex = Exchange::new(2500, &[serve, serve, serve + 10 * MIN]);
        let (got, report) = drain(&mut ex, range(None, EmptyStart::At(0), None));
        assert_eq!(got, (0..2400).map(kline).collect::<Vec<_>>());
        assert_eq!((report.rows, report.pages, report.gaps), (2400, 3, 0));
        // The time was asked before the first page and again before the last one, which may
        // reach the present (and never after a page).
        assert_eq!(
            ex.log,
            [
                format!("time {serve}"),
                "klines 0".to_string(),
                format!("klines {}", 1000 * MIN),
                format!("time {serve}"),
                format!("klines {}", 2000 * MIN),
            ]
        );
    }

    #[test]
    fn a_kline_closed_less_than_the_settle_margin_ago_waits() {
        // Candle 99 closed 1 ms before the server time (inside SETTLE_MS): not stored yet.
        let mut ex = Exchange::new(200, &[100 * MIN]);
        let (got, _) = drain(&mut ex, range(Some(49 * MIN), EmptyStart::At(0), None));
        assert_eq!(got, (50..99).map(kline).collect::<Vec<_>>());
        let mut ex = Exchange::new(200, &[100 * MIN + SETTLE_MS + 1]);
        let (got, _) = drain(&mut ex, range(Some(49 * MIN), EmptyStart::At(0), None));
        assert_eq!(got, (50..100).map(kline).collect::<Vec<_>>());
    }

    #[test]
    fn rows_before_now_and_an_end_bound() {
        let mut ex = Exchange::new(3000, &[2500 * MIN + 5_000]);
        let (got, _) = drain(&mut ex, range(None, EmptyStart::RowsBeforeNow(100), None));
        assert_eq!(got, (2400..2500).map(kline).collect::<Vec<_>>());
        let mut ex = Exchange::new(3000, &[2500 * MIN + 5_000]);
        let (got, report) = drain(
            &mut ex,
            range(Some(9 * MIN), EmptyStart::At(0), Some(20 * MIN)),
        );
        assert_eq!(got, (10..20).map(kline).collect::<Vec<_>>());
        assert_eq!(report.pages, 1);
    }

    fn temp_store(name: &str, klines: &[Kline]) -> (TempDir, KlineStore) {
        let dir = TempDir::new(&format!("backfill-{name}"));
        let (mut store, _) = KlineStore::open(&dir.join("AVAXUSDT_1m.csv")).expect("store");
        store.append(klines).expect("seed");
        (dir, store)
    }

    /// Backs the README's "collect and stream check the newest stored klines against REST at
    /// start and repair a partial candle stored by an older version".
    /// Backs README claim [C3]: collect and stream check the newest stored klines against REST at start and repair a difference, logging both versions.
    #[test]
    fn check_tail_repairs_a_planted_partial_row_and_leaves_good_stores_alone() {
        let mut rows: Vec<Kline> = (0..50).map(kline).collect();
        rows[49] = partial(49);
        let (_dir, mut store) = temp_store("check", &rows);
        let symbol = Symbol::parse("AVAXUSDT").expect("symbol");
        let mut ex = Exchange::new(60, &[55 * MIN]);
        let check = check_tail(&mut ex, &mut store, &symbol, Interval::ONE_MINUTE).expect("check");
        assert_eq!(
            check.fixes,
            vec![RowFix {
                stored: partial(49),
                binance: Some(kline(49)),
            }]
        );
        assert_eq!((check.checked, check.removed, check.written), (50, 1, 1));
        let msgs = check.messages(store.path());
        assert!(msgs[1].contains(&partial(49).to_csv_line()), "{msgs:?}");
        assert!(msgs[1].contains(&kline(49).to_csv_line()), "{msgs:?}");
        assert_eq!(
            store.tail(100).expect("tail"),
            (0..50).map(kline).collect::<Vec<_>>()
        );
        // Again: nothing differs, nothing is written.
        let check = check_tail(&mut ex, &mut store, &symbol, Interval::ONE_MINUTE).expect("again");
        assert_eq!(
            check,
            TailCheck {
                checked: 50,
                ..TailCheck::default()
            }
        );
        // Regression (a stream restarted right after a kline closed cut that kline): a stored
        // row the server's time cannot yet prove closed is left alone, and checked at a later
        // start, when it can be.
        store.append(&[partial(50)]).expect("plant");
        let mut ex = Exchange::new(60, &[50 * MIN + 30_000]);
        let check = check_tail(&mut ex, &mut store, &symbol, Interval::ONE_MINUTE).expect("open");
        assert_eq!((check.checked, check.removed, check.written), (50, 0, 0));
        assert_eq!(store.last_open_time(), Some(50 * MIN));
        let mut ex = Exchange::new(60, &[55 * MIN]);
        let check = check_tail(&mut ex, &mut store, &symbol, Interval::ONE_MINUTE).expect("later");
        assert_eq!((check.removed, check.written), (1, 1));
        assert_eq!(check.fixes[0].binance, Some(kline(50)));
        assert_eq!(store.tail(1).expect("tail"), vec![kline(50)]);
    }
}
