//! The ensembling thread: one [`Ensembler`] per symbol, and the order in which they work.
//!
//! Start-up, local first: every symbol's saved ensemble and trained models are loaded and
//! checked ([`Ensembler::prepare`]) before the streaming thread writes anything; a symbol whose
//! checks fail is not streamed (named in `stream.log` and on stderr), a symbol whose checks
//! found a bad file runs degraded without it (named in `stream.log`), and the others go on.
//! Only when no symbol can start does the run stop, with the first symbol's error.
//!
//! Then the klines, forecasts first: the thread takes every kline waiting in the channel (a
//! batch: at the top of a minute, one per symbol), steps each symbol's learner and writes its
//! forecast at once, also for a kline that ends its symbol's window (that forecast is made by
//! the pool before the window's refit, and it is the one scored; see
//! [`crate::ensemble::learner`]). So every forecast of a minute is written before any refit of
//! that minute. The refits wait in a queue and run one per pass, between batches, oldest first.
//! A symbol's waiting refit must run before that symbol's next kline, so what is computed does
//! not depend on timing (the files are those of the same symbol streamed alone); in a batch the
//! symbols with no refit waiting go first, so only a symbol whose own refit is still waiting
//! (when the refits of a minute take longer than the interval) has its forecast delayed: by its
//! own refit and those of the waiting symbols before it in the batch.
//!
//! With `--corr`, every kline first passes the waiting rule ([`super::corr_gate`]): a
//! symbol's kline waits for its correlated symbols' klines of its minute (at most
//! [`CORR_WAIT`] after it arrived) and goes to its learner with their closes; the feeds after
//! the forecast symbols' are correlated symbols only (their klines are stored by the streaming
//! thread and only read here). Without `--corr` every kline goes through at once.
//!
//! A symbol whose files fail while streaming (a disk error) is stopped and named; the others
//! go on. The run fails only when every symbol has failed.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::kline::{Kline, Series};
use crate::log::SharedLogger;

use super::corr_gate::{CorrGate, CORR_WAIT};
use super::ensembler::{Ensembler, EnsemblerConfig, EnsemblerSummary, LiveEvent, Prepared};
use super::stream_thread::ClosedKline;

/// Longest the ensembling thread waits for the start-up requests before its local checks.
const ASKED_WAIT: Duration = Duration::from_millis(100);

/// The ensembling thread's side of the start-up handshake (the streaming thread's is
/// [`super::stream_thread::Handshake`]).
pub(crate) struct Startup {
    /// The start-up requests to REST were answered (or failed).
    pub asked: Receiver<()>,
    /// Per symbol, how many stored klines its ensembler needs (`None`: not streamed).
    pub go: Sender<Vec<Option<usize>>>,
    /// The newest stored klines of each symbol streamed.
    pub history: Receiver<Vec<(usize, Vec<Kline>)>>,
}

/// The ensembling thread's channels and log.
pub(crate) struct Wiring {
    pub startup: Startup,
    pub klines: Receiver<ClosedKline>,
    pub events: Sender<LiveEvent>,
    /// `stream.log`: a symbol skipped, degraded or stopped is named there.
    pub notes: SharedLogger,
}

/// The body of the ensembling thread over the symbols of `configs` (their places are the
/// symbols' numbers in [`ClosedKline::symbol`]); `feeds` counts the stream's feeds, the ones
/// after `configs.len()` being correlated symbols only (`--corr`). Returns each symbol's
/// summary (`None` for a symbol that did not run to the end).
pub(crate) fn ensembling_thread(
    configs: &[EnsemblerConfig],
    feeds: usize,
    wiring: Wiring,
) -> Result<Vec<Option<EnsemblerSummary>>, Error> {
    let Wiring {
        startup,
        klines,
        events,
        notes,
    } = wiring;
    let mut trouble = Trouble::new(&notes, configs.len());
    // Let the first request go out before loading the models (CPU-bound: on two busy cores
    // it would delay that request); a slow network delays the local checks by 100 ms at most.
    let _ = startup.asked.recv_timeout(ASKED_WAIT);
    let mut prepared = prepare_all(configs, &events, &notes, &mut trouble);
    if prepared.iter().all(Option::is_none) {
        // Dropping `go` stops the streaming thread before it writes anything.
        return Err(trouble.into_error());
    }
    let mut rows: Vec<Option<usize>> = prepared
        .iter()
        .map(|p| p.as_ref().map(|p| p.rows_needed()))
        .collect();
    // A correlated symbol's history covers the longest of the forecast symbols'.
    let most = rows.iter().flatten().max().copied();
    rows.resize(feeds.max(configs.len()), most);
    if startup.go.send(rows.clone()).is_err() {
        return Ok(vec![None; configs.len()]);
    }
    drop(startup.go);
    // No history: the streaming thread stopped first (deadline), nothing to learn.
    let Ok(histories) = startup.history.recv() else {
        return Ok(vec![None; configs.len()]);
    };
    let mut by_feed: Vec<Option<Vec<Kline>>> = vec![None; rows.len()];
    for (id, history) in histories {
        if let Some(slot) = by_feed.get_mut(id) {
            *slot = Some(history);
        }
    }
    // Each symbol's correlated symbols' stored klines, before any history is moved.
    let neighbours: Vec<Vec<Series>> = configs
        .iter()
        .map(|c| {
            c.corr_feeds
                .iter()
                .map(|f| {
                    f.and_then(|f| by_feed.get(f))
                        .and_then(Option::as_ref)
                        .map(|klines| series_of(klines))
                        .unwrap_or_default()
                })
                .collect()
        })
        .collect();
    let mut ensemblers: Vec<Option<Ensembler>> = (0..configs.len()).map(|_| None).collect();
    for (id, history) in by_feed.iter_mut().enumerate().take(configs.len()) {
        let Some(history) = history.take() else {
            continue;
        };
        let Some(p) = prepared.get_mut(id).and_then(Option::take) else {
            continue;
        };
        let started = p
            .finish(history, &neighbours[id])
            .and_then(|(mut e, replay)| e.feed_again(replay).map(|()| e));
        match started {
            Ok(e) => ensemblers[id] = Some(e),
            Err(e) => trouble.failed(&configs[id].name, "not streamed", e),
        }
    }
    if ensemblers.iter().all(Option::is_none) {
        return Err(trouble.into_error());
    }
    // The waiting rule; a correlated symbol that is not streamed is a gap on every row.
    let streamed = |f: &Option<usize>| f.filter(|&f| rows.get(f).is_some_and(Option::is_some));
    let mut gate = CorrGate::new(
        configs
            .iter()
            .map(|c| c.corr_feeds.iter().map(streamed).collect())
            .collect(),
        rows.len(),
        CORR_WAIT,
    );
    forecasts_first(&mut ensemblers, &klines, configs, &mut gate, &mut trouble)?;
    Ok(ensemblers
        .into_iter()
        .map(|e| e.map(Ensembler::stop))
        .collect())
}

/// Each symbol's local start-up checks ([`Ensembler::prepare`]): a symbol whose checks fail is
/// named in `trouble` and gets `None`; one that runs degraded has its problems in `notes`.
fn prepare_all(
    configs: &[EnsemblerConfig],
    events: &Sender<LiveEvent>,
    notes: &SharedLogger,
    trouble: &mut Trouble<'_>,
) -> Vec<Option<Prepared>> {
    let mut prepared = Vec::with_capacity(configs.len());
    for config in configs {
        match Ensembler::prepare(config, events.clone()) {
            Ok(p) => {
                for problem in p.problems() {
                    notes.info(&format!("{}: runs degraded: {problem}", config.name));
                }
                prepared.push(Some(p));
            }
            Err(e) => {
                trouble.failed(&config.name, "not streamed", e);
                prepared.push(None);
            }
        }
    }
    prepared
}

/// The symbols' failures: each named in `stream.log` (and on stderr when there are several
/// symbols; one symbol's error is the run's, printed once by `main`); the first is kept.
struct Trouble<'a> {
    notes: &'a SharedLogger,
    several: bool,
    first: Option<Error>,
}

impl<'a> Trouble<'a> {
    fn new(notes: &'a SharedLogger, symbols: usize) -> Trouble<'a> {
        Trouble {
            notes,
            several: symbols > 1,
            first: None,
        }
    }

    fn failed(&mut self, name: &str, what: &str, e: Error) {
        let line = format!("{name}: {what}: {e}");
        if self.several {
            self.notes.warn(&line);
        } else {
            self.notes.info(&line);
        }
        self.first.get_or_insert(e);
    }

    fn into_error(self) -> Error {
        self.first
            .unwrap_or_else(|| Error::Data("no symbol could be streamed".to_string()))
    }
}

/// A series of `klines`' values (no correlated columns).
fn series_of(klines: &[Kline]) -> Series {
    let mut series = Series::with_capacity(klines.len());
    for k in klines {
        series.push(&k.values());
    }
    series
}

/// The klines until the streaming thread hangs up: each through the waiting rule (`gate`),
/// forecasts of a batch first, then one waiting refit per pass (see the module doc); the refits
/// still waiting at the end run then, and the klines still waiting for their correlated
/// symbols go ahead without them.
fn forecasts_first(
    ensemblers: &mut [Option<Ensembler>],
    klines: &Receiver<ClosedKline>,
    configs: &[EnsemblerConfig],
    gate: &mut CorrGate<ClosedKline>,
    trouble: &mut Trouble<'_>,
) -> Result<(), Error> {
    let mut waiting: VecDeque<usize> = VecDeque::new();
    let mut open = true;
    while open || !waiting.is_empty() || gate.has_parked() {
        if open {
            // Block for klines only when no refit waits, and only until the first waiting
            // kline's bound.
            let first = if !waiting.is_empty() {
                match klines.try_recv() {
                    Ok(msg) => Some(msg),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => {
                        open = false;
                        None
                    }
                }
            } else if let Some(deadline) = gate.next_deadline() {
                match klines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(msg) => Some(msg),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => {
                        open = false;
                        None
                    }
                }
            } else {
                match klines.recv() {
                    Ok(msg) => Some(msg),
                    Err(_) => {
                        open = false;
                        None
                    }
                }
            };
            if let Some(msg) = first {
                for msg in std::iter::once(msg).chain(klines.try_iter()) {
                    let close = msg.kline.values().close;
                    gate.arrive(msg.symbol, msg.kline.open_time, close, msg.arrived, msg);
                }
            }
        }
        let mut batch = if open {
            gate.release(Instant::now())
        } else {
            gate.flush()
        };
        // Symbols whose refit still waits go last (stable: each symbol's klines stay in order).
        batch.sort_by_key(|r| waiting.contains(&r.id));
        for released in batch {
            let id = released.id;
            let msg = released.item;
            let Some(e) = ensemblers.get_mut(id).and_then(Option::as_mut) else {
                continue;
            };
            // `step` runs this symbol's waiting refit first.
            waiting.retain(|&w| w != id);
            match e.step_corr(
                msg.kline,
                msg.from_rest,
                Some(msg.arrived),
                &released.corr,
                &released.late,
            ) {
                Ok(()) if e.window_pending() => waiting.push_back(id),
                Ok(()) => {}
                Err(err) => stop_symbol(ensemblers, id, configs, trouble, err)?,
            }
        }
        if let Some(id) = waiting.pop_front() {
            if let Some(e) = ensemblers.get_mut(id).and_then(Option::as_mut) {
                if let Err(err) = e.close_window() {
                    stop_symbol(ensemblers, id, configs, trouble, err)?;
                }
            }
        }
    }
    Ok(())
}

/// Stops symbol `id` after `err`; an error when it was the last one running.
fn stop_symbol(
    ensemblers: &mut [Option<Ensembler>],
    id: usize,
    configs: &[EnsemblerConfig],
    trouble: &mut Trouble<'_>,
    err: Error,
) -> Result<(), Error> {
    ensemblers[id] = None;
    if ensemblers.iter().all(Option::is_none) {
        return Err(err);
    }
    trouble.failed(&configs[id].name, "stopped", err);
    Ok(())
}
