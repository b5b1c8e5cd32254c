//! One symbol's ensembler, run by the ensembling thread ([`super::schedule`] holds one per
//! symbol): owns the window [`Learner`] and the files it produces. For every
//! closed kline from the streaming thread it lets the learner score the pending forecast and
//! forecast the next close, appends that forecast to `predictions.csv`, and keeps
//! `Buffer_<window>.csv` (the klines of the window being collected). When a window is done it
//! closes it (scores, refit, pool update inside the learner), saves the ensemble atomically to
//! `<models-dir>/Ensembled/EnsembleModel.bin`, and writes the window to `ensemble.log` and
//! `ensemble.jsonl`. No socket, no store writes, no maths beyond calling the learner.
//!
//! Restart rule: the saved ensemble records the open time of the last kline it has learnt from
//! (`as_of_open_time`, always a window end or the start). On start the klines after it are
//! read back from the store and fed again, so a kill at any instant resumes the same window
//! with the same result; forecasts already in `predictions.csv` are not written twice.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender};
use std::time::Instant;

use crate::ensemble::learner::{restore_generations, Learner, StandardFitter};
use crate::ensemble::report::ScoreRow;
use crate::ensemble::{Ensemble, EnsembleConfig, Forecast, Member, ScoredForecast, SpecFeatures};
use crate::error::Error;
use crate::features::{self, FeatureSpec};
use crate::fsutil;
use crate::kline::{Kline, Series, CSV_HEADER};
use crate::log::{stamp, wall_clock_ms, Logger};
use crate::models::fit::FitConfig;
use crate::persist::{self, ensemble_path, load_ensemble, save_ensemble, PersistError};

use super::predictions::{PredictionLog, PredictionRow};
use super::stream_thread::ClosedKline;
use super::window_log::LoggedWindow;

/// Most klines after the saved ensemble that are fed again on start; older ones only warm the
/// history (a day of 1m klines; each window of them costs one refit).
pub(crate) const MAX_REPLAY: usize = 1440;

/// Most klines a new ensemble warms up on ([`Learner::warm_up`]): the newest stored klines
/// after the trained models' last training kline (`train`'s holdout and anything collected
/// since), at most a week of 1-minute klines, the gate's long memory (λ = 0.9999: ≈ 10,000
/// forecasts; older evidence would be mostly forgotten). Once per new ensemble, on the ensembling
/// thread: 13.5 s for 10,090 klines and the eight trained models on one x86 core, the stream's
/// own per-kline path (scripts/README.md, "Warm-up of a new ensemble").
pub(crate) const WARM_UP_ROWS: usize = 10_080;

/// `<data-dir>/Buffer_<window>.csv`.
pub(crate) fn buffer_path(data_dir: &Path, window: usize) -> PathBuf {
    data_dir.join(format!("Buffer_{window}.csv"))
}

/// What the ensembler reports to the main thread (for `demo` output).
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// One closed kline went through the learner.
    Kline(Box<KlineEvent>),
    /// A window closed: its readable log line and the seconds the refit + save took.
    Window { line: String, seconds: f64 },
}

/// One closed kline that went through the learner.
#[derive(Debug, Clone)]
pub struct KlineEvent {
    pub kline: Kline,
    pub from_rest: bool,
    /// Fed again from the store on start (already seen before a restart).
    pub replayed: bool,
    /// The forecast of this kline's close, scored now.
    pub scored: Option<ScoredForecast>,
    /// The forecast of the next close.
    pub forecast: Option<Forecast>,
}

/// Settings of the ensembling thread.
#[derive(Debug, Clone)]
pub struct EnsemblerConfig {
    /// `<SYMBOL> <interval>`: how its stderr lines and problems name the symbol.
    pub name: String,
    /// The symbol's folders: `predictions.csv` and the buffer; `Trained/` and `Ensembled/`;
    /// `ensemble.log` and `ensemble.jsonl`.
    pub data_dir: PathBuf,
    pub models_dir: PathBuf,
    pub log_dir: PathBuf,
    pub interval_ms: i64,
    pub ensemble: EnsembleConfig,
    pub fit: FitConfig,
    /// Save the ensemble every this many windows (1 = every window). More means fewer writes
    /// of a file that can be tens of MB, and more klines fed again after a restart.
    pub save_every: u64,
    /// The correlated symbols the stream gives this symbol's features (`--corr`, issue 23,
    /// without the symbol itself): a trained model made with another non-empty list is
    /// refused. Empty without `--corr`: models trained with `--corr` are then refused.
    pub corr: Vec<String>,
    /// The stream's feed of each of `corr` (its place in the stream's list, as in
    /// [`ClosedKline::symbol`]), `None` for one that is not streamed (its store did not open):
    /// where the ensembling thread takes the neighbours' closes from.
    pub corr_feeds: Vec<Option<usize>>,
}

/// The klines fed again on start, each with its correlated symbols' closes of its minute from
/// their stores (`None`: not there, the gap rule), in [`EnsemblerConfig::corr`] order.
pub type Replay = Vec<(Kline, Vec<Option<f64>>)>;

/// What the ensembling thread did, returned when it ends.
#[derive(Debug, Clone, Default)]
pub struct EnsemblerSummary {
    pub klines: u64,
    pub replayed: u64,
    pub windows: u64,
    pub predictions_written: u64,
    pub scoreboard: Vec<ScoreRow>,
    /// Seconds per window refit + save.
    pub window_seconds: Vec<f64>,
    /// Seconds per kline (learner step + files), excluding window closes.
    pub kline_seconds: Vec<f64>,
    /// Seconds from a live kline's arrival in the streaming thread to its forecast written
    /// (window closes and waiting behind other symbols included).
    pub forecast_latency: Vec<f64>,
    /// Forecasts that went ahead without some correlated symbol's kline of their minute after
    /// waiting [`super::corr_gate::CORR_WAIT`] (`stream --corr`).
    pub corr_late: u64,
}

impl EnsemblerSummary {
    /// Adds `other`'s counts and timings to these (the scoreboard is left as it is).
    pub(crate) fn absorb(&mut self, other: &EnsemblerSummary) {
        self.klines += other.klines;
        self.replayed += other.replayed;
        self.windows += other.windows;
        self.predictions_written += other.predictions_written;
        self.window_seconds.extend(&other.window_seconds);
        self.kline_seconds.extend(&other.kline_seconds);
        self.forecast_latency.extend(&other.forecast_latency);
        self.corr_late += other.corr_late;
    }
}

/// A kline the learner has stepped through, its forecast written.
struct KlineDone {
    kline: Kline,
    from_rest: bool,
    /// When the streaming thread had it; `None` for a kline fed again from the store.
    arrived: Option<Instant>,
    scored: Option<ScoredForecast>,
}

/// The ensembling thread's state.
pub struct Ensembler {
    learner: Learner,
    fit: FitConfig,
    preds: PredictionLog,
    buffer: Vec<Kline>,
    buffer_path: PathBuf,
    /// `Buffer_<window>.csv` opened for appending, after the last rewrite.
    buffer_file: Option<std::fs::File>,
    ensemble_path: PathBuf,
    log: Logger,
    jsonl: Logger,
    events: Sender<LiveEvent>,
    save_every: u64,
    summary: EnsemblerSummary,
    /// The open time of the kline that ended a window, its refit waiting for
    /// [`Ensembler::close_window`].
    pending: Option<i64>,
    /// The correlated symbols (`--corr`), for the lines about late ones.
    corr: Vec<String>,
    /// The klines since the last window's close whose forecast went ahead without some
    /// correlated symbol's kline of its minute (logged with the window as `corr_late`).
    corr_late: Vec<i64>,
}

/// The ensembler after its local checks ([`Ensembler::prepare`]): the saved ensemble and the
/// trained models loaded and checked, nothing written yet but the logs; waiting for the newest
/// klines of the store ([`Prepared::finish`]).
pub(crate) struct Prepared {
    ensemble: Ensemble,
    as_of: Option<i64>,
    /// The forecasts in flight at the save (see [`Learner::resume_in_flight`]).
    in_flight: Vec<Forecast>,
    loaded: bool,
    /// A new ensemble with trained members: the open time of their newest training kline (the
    /// klines after it are out of sample for every one of them and warm the ensemble up).
    warm_from: Option<i64>,
    rows: usize,
    /// What the local checks found wrong and worked around (a model file skipped, a saved
    /// ensemble moved aside): the symbol runs degraded.
    problems: Vec<String>,
    path: PathBuf,
    log: Logger,
    jsonl: Logger,
    events: Sender<LiveEvent>,
    config: EnsemblerConfig,
}

impl Prepared {
    /// How many of the newest stored klines [`Prepared::finish`] needs.
    pub(crate) fn rows_needed(&self) -> usize {
        self.rows
    }

    /// What the local checks found wrong and worked around (empty when all was well).
    pub(crate) fn problems(&self) -> &[String] {
        &self.problems
    }
}

impl Ensembler {
    /// Builds the learner: the saved ensemble if it loads, else a new one from the trained
    /// models (or none). `tail` reads the last n klines of the store. Returns the ensembler and
    /// the klines to feed again before the live ones. [`Ensembler::prepare`] then
    /// [`Prepared::finish`].
    pub fn start(
        config: &EnsemblerConfig,
        tail: &mut dyn FnMut(usize) -> Result<Vec<Kline>, Error>,
        events: Sender<LiveEvent>,
    ) -> Result<(Ensembler, Replay), Error> {
        let prepared = Ensembler::prepare(config, events)?;
        let klines = tail(prepared.rows_needed())?;
        prepared.finish(klines, &[])
    }

    /// The local checks, quick and before any kline is needed: opens the logs, loads the saved
    /// ensemble and the trained models and checks them (a horizon mismatch is an error; a bad
    /// file is reported at once, mirrored to stderr). Writes no data file (a saved ensemble
    /// that cannot be read is moved aside, as [`Ensembler::start`] always did).
    pub(crate) fn prepare(
        config: &EnsemblerConfig,
        events: Sender<LiveEvent>,
    ) -> Result<Prepared, Error> {
        let tag = format!("klinecast stream {}", config.name);
        let mut log = Logger::open(&config.log_dir.join("ensemble.log"), &tag)
            .map_err(|e| Error::io("opening ensemble.log", e))?;
        let jsonl = Logger::open(&config.log_dir.join("ensemble.jsonl"), &tag)
            .map_err(|e| Error::io("opening ensemble.jsonl", e))?;
        let mut problems = Vec::new();
        let path = ensemble_path(&config.models_dir);
        // A new ensemble (none saved, or the saved one unreadable) warms up from the trained
        // models' last training kline; a loaded one carries its forecasts in flight instead.
        let (mut ensemble, as_of, loaded, in_flight, warm_from) = match load_ensemble(&path) {
            Ok(saved) => {
                log.info(&format!(
                    "loaded {} (version {}, {} windows, {} members, as of {})",
                    path.display(),
                    saved.ensemble.version,
                    saved.ensemble.windows_done,
                    saved.ensemble.members.len(),
                    saved.as_of_open_time.map_or("start".to_string(), stamp)
                ));
                let mut ensemble = saved.ensemble;
                check_horizon(&path, ensemble.config().spec.horizon, config, "forecasts")?;
                // Trained models are not in the saved file: put them back from models/Trained.
                let kept = ensemble
                    .attach_trained(trained_members(config, &mut log, &mut problems)?.members)
                    .map_err(|e| Error::Config(format!("cannot use the trained models: {e}")))?;
                if !kept {
                    log.info(
                        "the trained models changed since the ensemble was saved: \
                         the trained members start afresh, the window generations are kept",
                    );
                }
                (ensemble, saved.as_of_open_time, true, saved.in_flight, None)
            }
            Err(e) => {
                if !matches!(e, PersistError::NotFound { .. }) {
                    let aside = path.with_extension("bin.bad");
                    let moved = std::fs::rename(&path, &aside).is_ok();
                    let problem = format!(
                        "cannot use the saved ensemble: {e}; {}starting a new one",
                        if moved {
                            format!("moved it to {}, ", aside.display())
                        } else {
                            String::new()
                        }
                    );
                    log.warn(&problem);
                    problems.push(problem);
                }
                let (ensemble, last_trained) = new_ensemble(config, &mut log, &mut problems)?;
                (ensemble, None, false, Vec::new(), last_trained)
            }
        };
        // The command line may change these between runs; the pool adapts at the next window.
        ensemble
            .reconfigure(EnsembleConfig {
                window: config.ensemble.window,
                refit_rows: config.ensemble.refit_rows,
                generations: config.ensemble.generations,
                ..ensemble.config().clone()
            })
            .map_err(|e| Error::Config(format!("cannot apply the settings: {e}")))?;
        let capacity = ensemble.history_capacity(&SpecFeatures);
        // The window generations were saved as the rows they were fitted on: read back far
        // enough for the oldest (`generations + 1` windows before the save) to be refitted.
        let c = ensemble.config();
        let restore_rows = capacity + (c.generations + 1) * c.window;
        Ok(Prepared {
            ensemble,
            as_of,
            in_flight,
            loaded,
            warm_from,
            rows: restore_rows + MAX_REPLAY + warm_from.map_or(0, |_| WARM_UP_ROWS),
            problems,
            path,
            log,
            jsonl,
            events,
            config: config.clone(),
        })
    }
}

impl Prepared {
    /// The rest of the start, given the newest stored `klines` (at most
    /// [`Prepared::rows_needed`], oldest first) and the correlated symbols' newest stored
    /// klines (`neighbours`, in [`EnsemblerConfig::corr`] order; a missing one has none): the
    /// history with its correlated columns aligned as `train` aligns them
    /// ([`features::align_corr`]), the refit of the saved window generations (seconds on a
    /// Pi), the prediction and buffer files. Returns the ensembler and the klines to feed again
    /// before the live ones, with their neighbours' stored closes.
    pub fn finish(
        self,
        mut klines: Vec<Kline>,
        neighbours: &[Series],
    ) -> Result<(Ensembler, Replay), Error> {
        let Prepared {
            mut ensemble,
            as_of,
            in_flight,
            loaded,
            warm_from,
            rows: _,
            problems: _,
            path,
            mut log,
            jsonl,
            events,
            config,
        } = self;
        let config = &config;
        let split = match as_of {
            Some(t) if loaded => klines.partition_point(|k| k.open_time <= t),
            _ => klines.len(),
        };
        let split = split.max(klines.len().saturating_sub(MAX_REPLAY));
        let mut all = Series::with_capacity(klines.len());
        for k in &klines {
            all.push(&k.values());
        }
        let empty = Series::default();
        all.corr = config
            .corr
            .iter()
            .enumerate()
            .map(|(i, symbol)| {
                features::align_corr(&all, symbol, neighbours.get(i).unwrap_or(&empty))
            })
            .collect();
        let replay_corr: Vec<Vec<Option<f64>>> =
            (split..klines.len()).map(|i| all.corr_values(i)).collect();
        let replay: Replay = klines
            .split_off(split)
            .into_iter()
            .zip(replay_corr)
            .collect();
        if loaded
            && replay.is_empty()
            && as_of.is_some_and(|t| klines.last().is_some_and(|k| k.open_time < t))
        {
            log.warn("the saved ensemble is newer than the kline store; its history is rebuilt from the store");
        }
        // A new ensemble's history ends at the first kline after the trained models' training
        // rows (its forecast targets a close no model was fitted on); the klines after it warm
        // the ensemble up.
        let warm = warm_up_range(&klines, warm_from, WARM_UP_ROWS);
        let history = all.slice(0..warm.start);
        if loaded {
            refit_saved_generations(&mut ensemble, &history, config, &mut log);
        }
        let mut learner = Learner::new(ensemble, history, config.interval_ms);
        // The forecast made after the save's kline predates the save's refit: the saved one.
        learner.resume_in_flight(in_flight);
        if !warm.is_empty() {
            let started = Instant::now();
            let scored = learner.warm_up(&all, warm.clone());
            log.info(&format!(
                "warmed the new ensemble up on {} klines after the trained models' training \
                 rows ({} forecasts scored, not published) in {:.1} s",
                warm.len(),
                scored,
                started.elapsed().as_secs_f64()
            ));
        }
        drop(all);
        let as_of_now = klines.last().map(|k| k.open_time);
        if !loaded {
            save_ensemble(&path, as_of_now, learner.ensemble(), &learner.in_flight())?;
        }
        let preds = PredictionLog::open(&config.data_dir.join("predictions.csv"))
            .map_err(|e| Error::io("opening predictions.csv", e))?;
        if let Some(moved) = preds.moved_aside() {
            log.warn(&format!(
                "predictions.csv {}: moved it to {} and started a new file",
                moved.why,
                moved.to.display()
            ));
        }
        log.info(&format!(
            "ensembler start: history {} klines (up to {}), {} to feed again, pool {} members",
            klines.len(),
            as_of_now.map_or("none".to_string(), stamp),
            replay.len(),
            learner.ensemble().members.len()
        ));
        let mut ensembler = Ensembler {
            learner,
            fit: config.fit.clone(),
            preds,
            buffer: Vec::new(),
            buffer_path: buffer_path(&config.data_dir, config.ensemble.window),
            buffer_file: None,
            ensemble_path: path,
            log,
            jsonl,
            events,
            save_every: config.save_every.max(1),
            summary: EnsemblerSummary::default(),
            pending: None,
            corr: config.corr.clone(),
            corr_late: Vec::new(),
        };
        // The forecast made from the history (after a window end or at the very start).
        ensembler.write_latest_prediction(as_of_now)?;
        ensembler.write_buffer()?;
        Ok((ensembler, replay))
    }
}

/// Refits the saved ensemble's window generations on `history` (seconds on a Pi) and logs what
/// was refitted and what was dropped.
fn refit_saved_generations(
    ensemble: &mut Ensemble,
    history: &Series,
    config: &EnsemblerConfig,
    log: &mut Logger,
) {
    let started = Instant::now();
    let mut fitter = StandardFitter {
        config: config.fit.clone(),
        kinds: ensemble.config().kinds.clone(),
    };
    let restored = restore_generations(ensemble, history, &mut fitter, &SpecFeatures);
    if !restored.refitted.is_empty() {
        log.info(&format!(
            "refitted {} window generations from the kline store in {:.2} s",
            restored.refitted.len(),
            started.elapsed().as_secs_f64()
        ));
    }
    for (generation, reason) in &restored.dropped {
        log.warn(&format!(
            "window generation {generation} is dropped: {reason}; the next window adds \
             a new one"
        ));
    }
}

impl Ensembler {
    /// Feeds `replay`, then every kline from the channel until the streaming thread hangs up
    /// (one symbol; [`super::schedule`] runs several).
    pub fn run(
        mut self,
        replay: Replay,
        rx: Receiver<ClosedKline>,
    ) -> Result<EnsemblerSummary, Error> {
        self.feed_again(replay)?;
        for msg in rx {
            self.on_kline(msg.kline, msg.from_rest, Some(msg.arrived))?;
        }
        Ok(self.stop())
    }

    /// Feeds the klines read back from the store at start (already seen before a restart).
    pub(crate) fn feed_again(&mut self, replay: Replay) -> Result<(), Error> {
        for (kline, corr) in replay {
            self.summary.replayed += 1;
            self.step_corr(kline, true, None, &corr, &[])?;
            self.close_window()?;
        }
        Ok(())
    }

    /// Logs the end and returns what this ensembler did.
    pub fn stop(mut self) -> EnsemblerSummary {
        self.summary.scoreboard = self.learner.ensemble().scoreboard();
        self.log.info(&format!(
            "ensembler stop: {} klines ({} fed again), {} windows; the {} klines of the window \
             in progress are in {} and are fed again on the next start",
            self.summary.klines,
            self.summary.replayed,
            self.summary.windows,
            self.buffer.len(),
            self.buffer_path.display()
        ));
        self.summary
    }

    /// One live kline, its window closed at once if it ends one.
    fn on_kline(
        &mut self,
        kline: Kline,
        from_rest: bool,
        arrived: Option<Instant>,
    ) -> Result<(), Error> {
        self.step(kline, from_rest, arrived)?;
        self.close_window()
    }

    /// Whether a kline that ended a window waits for [`Ensembler::close_window`].
    pub(crate) fn window_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// A kline's forecast: the learner scores the pending forecast and forecasts the next
    /// close, which is written at once, also when the kline ends a window (the forecast is
    /// then the pool's before the refit, the one scored later). A kline that ends a window
    /// leaves its refit waiting for [`Ensembler::close_window`], which must run before this
    /// ensembler's next kline (`step` runs it first if it was not). `arrived`: when the
    /// streaming thread had it (`None` for a kline fed again from the store).
    pub fn step(
        &mut self,
        kline: Kline,
        from_rest: bool,
        arrived: Option<Instant>,
    ) -> Result<(), Error> {
        self.step_corr(kline, from_rest, arrived, &[], &[])
    }

    /// [`Ensembler::step`] with the correlated symbols' closes of the kline's minute (`corr`,
    /// in [`EnsemblerConfig::corr`] order; `None`: the gap rule) and the ones that were still
    /// missing when the waiting rule's bound passed (`late`, indices into that list: the
    /// forecast is marked, see [`super::corr_gate`]).
    pub(crate) fn step_corr(
        &mut self,
        kline: Kline,
        from_rest: bool,
        arrived: Option<Instant>,
        corr: &[Option<f64>],
        late: &[usize],
    ) -> Result<(), Error> {
        self.close_window()?;
        let started = Instant::now();
        let step = self.learner.on_kline_corr(&kline.values(), corr);
        if step.ignored {
            return Ok(());
        }
        self.summary.klines += 1;
        if !late.is_empty() {
            let names: Vec<&str> = late
                .iter()
                .filter_map(|&i| self.corr.get(i).map(String::as_str))
                .collect();
            self.log.info(&format!(
                "kline {}: forecast made without the kline of its minute of {} (not there {} s \
                 after it): their last close is carried (stale)",
                stamp(kline.open_time),
                names.join(","),
                super::corr_gate::CORR_WAIT.as_secs()
            ));
            self.corr_late.push(kline.open_time);
            self.summary.corr_late += 1;
        }
        if step.gap {
            self.log.info(&format!(
                "kline {} follows a gap: {} pending forecasts could not be scored",
                stamp(kline.open_time),
                step.dropped
            ));
        }
        self.buffer.push(kline.clone());
        self.append_buffer()?;
        self.write_latest_prediction(Some(kline.open_time))?;
        self.summary
            .kline_seconds
            .push(started.elapsed().as_secs_f64());
        if step.window_done {
            self.pending = Some(kline.open_time);
        }
        self.finish_kline(KlineDone {
            kline,
            from_rest,
            arrived,
            scored: step.scored,
        });
        Ok(())
    }

    /// The refit of a kline that ended a window (nothing when none waits): closes the window
    /// (scores, refit, pool update inside the learner), saves the ensemble with the forecast
    /// in flight (a kill before the save: the restart feeds the kline again, finds its forecast
    /// written and refits), logs the window and restarts the buffer.
    pub(crate) fn close_window(&mut self) -> Result<(), Error> {
        let Some(open_time) = self.pending.take() else {
            return Ok(());
        };
        let started = Instant::now();
        let report = self.learner.end_window(&self.fit);
        // Save first: a kill between the save and the log lines loses a log line at worst,
        // never a window of learning. The buffer restarts at each save.
        let saved = self
            .learner
            .ensemble()
            .windows_done
            .is_multiple_of(self.save_every);
        if saved {
            save_ensemble(
                &self.ensemble_path,
                Some(open_time),
                self.learner.ensemble(),
                &self.learner.in_flight(),
            )?;
            self.buffer.clear();
        }
        let seconds = started.elapsed().as_secs_f64();
        let line = report.to_log_line();
        self.log
            .info(&format!("{line} | refit+save {seconds:.3} s"));
        let logged = LoggedWindow {
            report,
            logged_at: Some(stamp(wall_clock_ms())),
            refit_save_seconds: Some(seconds),
            peak_rss_kib: crate::live::peak_rss_kib(),
            corr_late: std::mem::take(&mut self.corr_late),
        };
        match logged.to_line() {
            Ok(json) => self.jsonl.raw(&json),
            Err(e) => self
                .log
                .warn(&format!("cannot encode the window report: {e}")),
        }
        self.summary.windows += 1;
        self.summary.window_seconds.push(seconds);
        let _ = self.events.send(LiveEvent::Window { line, seconds });
        if saved {
            self.write_buffer()?;
        }
        Ok(())
    }

    /// The forecast of a kline is written: its latency, and the event for the observer.
    fn finish_kline(&mut self, done: KlineDone) {
        if let Some(arrived) = done.arrived {
            self.summary
                .forecast_latency
                .push(arrived.elapsed().as_secs_f64());
        }
        let _ = self.events.send(LiveEvent::Kline(Box::new(KlineEvent {
            kline: done.kline,
            from_rest: done.from_rest,
            replayed: done.arrived.is_none(),
            scored: done.scored,
            forecast: self.learner.latest_forecast().cloned(),
        })));
    }

    /// Appends the learner's newest forecast if it was made after `as_of` and its target is
    /// not in the file yet.
    fn write_latest_prediction(&mut self, as_of: Option<i64>) -> Result<(), Error> {
        let Some(f) = self.learner.latest_forecast() else {
            return Ok(());
        };
        if as_of != Some(f.as_of_open_time) || !f.ensemble_price.is_finite() {
            return Ok(());
        }
        let row = PredictionRow {
            target_open_time: f.target_open_time,
            forecast: f.ensemble_price,
            naive: f.naive_price,
            ensemble_version: f.version,
            made_after_open_time: f.as_of_open_time,
            lower: f.lower_price,
            upper: f.upper_price,
        };
        if self
            .preds
            .append(&row)
            .map_err(|e| Error::io(format!("appending to {}", self.preds.path().display()), e))?
        {
            self.summary.predictions_written += 1;
        }
        Ok(())
    }

    /// Rewrites `Buffer_<window>.csv` atomically with the klines of the window in progress (at
    /// start and after every save), and opens it for [`Ensembler::append_buffer`].
    fn write_buffer(&mut self) -> Result<(), Error> {
        let mut text = String::with_capacity(64 + self.buffer.len() * 100);
        text.push_str(CSV_HEADER);
        text.push('\n');
        for k in &self.buffer {
            text.push_str(&k.to_csv_line());
            text.push('\n');
        }
        let io = |e| Error::io(format!("writing {}", self.buffer_path.display()), e);
        self.buffer_file = None;
        fsutil::write_atomic(&self.buffer_path, text.as_bytes()).map_err(io)?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.buffer_path)
            .map_err(io)?;
        self.buffer_file = Some(file);
        Ok(())
    }

    /// Appends the newest buffered kline to `Buffer_<window>.csv` as one whole line, without an
    /// fsync: the file is a view of the window in progress, whose klines the store holds (and
    /// fsyncs); every start rewrites it atomically from the store, so a torn or lost line after
    /// a kill or a power cut is repaired then. Saves a rename and two fsyncs per kline.
    fn append_buffer(&mut self) -> Result<(), Error> {
        let (Some(file), Some(k)) = (self.buffer_file.as_mut(), self.buffer.last()) else {
            return self.write_buffer();
        };
        let line = format!("{}\n", k.to_csv_line());
        std::io::Write::write_all(file, line.as_bytes())
            .map_err(|e| Error::io(format!("appending to {}", self.buffer_path.display()), e))
    }
}

/// The klines a new ensemble warms up on: after the first kline newer than `last_trained`
/// (the trained models' newest training kline; the history ends on that first kline, so its
/// forecast already targets a close no model was fitted on), the newest `cap` of them. Empty
/// without trained models or when the store holds nothing newer.
fn warm_up_range(klines: &[Kline], last_trained: Option<i64>, cap: usize) -> Range<usize> {
    let n = klines.len();
    let Some(t) = last_trained else {
        return n..n;
    };
    let first = (klines.partition_point(|k| k.open_time <= t) + 1).min(n);
    first.max(n.saturating_sub(cap))..n
}

/// A new ensemble from the trained models in `<models-dir>/Trained` (possibly none), and
/// the open time of their newest training kline (`None` without trained models).
fn new_ensemble(
    config: &EnsemblerConfig,
    log: &mut Logger,
    problems: &mut Vec<String>,
) -> Result<(Ensemble, Option<i64>), Error> {
    let trained = trained_members(config, log, problems)?;
    let ensemble = Ensemble::new(config.ensemble.clone(), trained.members, config.interval_ms)
        .map_err(|e| Error::Config(format!("cannot build the ensemble: {e}")))?;
    Ok((ensemble, trained.last_trained))
}

/// The trained models as ensemble members ([`trained_members`]).
struct TrainedMembers {
    members: Vec<Member>,
    /// The open time of the newest training kline of any of them (`None` without any).
    last_trained: Option<i64>,
}

/// A configuration error unless the model file at `path`, made for `horizon`, suits the
/// horizon the stream runs with (`what`: "was trained for" or "forecasts").
fn check_horizon(
    path: &Path,
    horizon: usize,
    config: &EnsemblerConfig,
    what: &str,
) -> Result<(), Error> {
    let runs = config.ensemble.spec.horizon;
    if horizon == runs {
        return Ok(());
    }
    let fix = if what == "forecasts" {
        format!("move {} aside to start a new ensemble", path.display())
    } else {
        format!("run `klinecast train --horizon {runs}`")
    };
    Err(Error::Config(format!(
        "{} {what} --horizon {horizon} but stream runs with --horizon {runs}: {fix} or start \
         stream with --horizon {horizon}",
        path.display()
    )))
}

/// A configuration error unless the model file at `path`, made with `spec`, reads no
/// correlated symbols or exactly the stream's (`--corr`); the message names both lists.
fn check_corr(path: &Path, spec: &FeatureSpec, config: &EnsemblerConfig) -> Result<(), Error> {
    if spec.corr.is_empty() || spec.corr == config.corr {
        return Ok(());
    }
    let runs = FeatureSpec::new(spec.horizon, config.corr.clone());
    Err(Error::Config(format!(
        "{} was trained with --corr {} but stream runs with --corr {}: start stream with the \
         same correlated symbols, or train again with --corr {} (or move the file aside)",
        path.display(),
        spec.corr_list(),
        runs.corr_list(),
        runs.corr_list()
    )))
}

/// The trained models in `<models-dir>/Trained` as ensemble members (possibly none), each
/// tagged with what it was trained on so a saved ensemble can tell whether they changed. A
/// model trained for another horizon than the stream's is a configuration error.
/// The warnings (a file that cannot be loaded) are also added to `problems`.
fn trained_members(
    config: &EnsemblerConfig,
    log: &mut Logger,
    problems: &mut Vec<String>,
) -> Result<TrainedMembers, Error> {
    // Each file on its own: a bad one is skipped (and named), the others are still used. All
    // from one set: loaded again if `train` switched in a new set meanwhile.
    let (trained, warnings) = persist::read_trained_set(&config.models_dir, |dir| {
        let mut trained = Vec::new();
        let mut warnings = Vec::new();
        for path in persist::trained_files(dir) {
            match persist::load_trained(&path) {
                Ok(t) => trained.push((path, t)),
                Err(PersistError::NotFound { .. }) => {}
                Err(e) => warnings.push(format!(
                    "cannot load a trained model: {e}; starting without it"
                )),
            }
        }
        (trained, warnings)
    });
    for warning in &warnings {
        log.warn(warning);
    }
    problems.extend(warnings);
    let trained: Vec<persist::TrainedModel> = trained
        .into_iter()
        .map(|(path, t)| {
            check_horizon(&path, t.spec.horizon, config, "was trained for")?;
            check_corr(&path, &t.spec, config)?;
            Ok(t)
        })
        .collect::<Result<_, Error>>()?;
    if trained.is_empty() {
        log.warn(&format!(
            "no trained models in {}: starting from the naive forecast and the window \
             generations (run `klinecast train` to add trained members)",
            config.models_dir.join(persist::TRAINED_DIR).display()
        ));
    } else {
        let names: Vec<&str> = trained.iter().map(|t| t.kind.name()).collect();
        log.info(&format!("trained members: {}", names.join(", ")));
    }
    let last_trained = trained.iter().map(|t| t.meta.train_last_open_time).max();
    let members = trained
        .into_iter()
        .map(|t| {
            let source = format!(
                "{} {}..{} rows {} seed {}",
                t.meta.data_file,
                t.meta.train_first_open_time,
                t.meta.train_last_open_time,
                t.meta.train_rows,
                t.meta.seed
            );
            Member::trained(t.spec, Some(t.scaler), t.model).with_source(source)
        })
        .collect();
    Ok(TrainedMembers {
        members,
        last_trained,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn sample(n: usize) -> Vec<Kline> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/AVAXUSDT_1m.csv");
        let mut k = crate::store::load_klines(&path).expect("sample data");
        k.truncate(n);
        k
    }

    fn config(root: &Path, save_every: u64) -> EnsemblerConfig {
        EnsemblerConfig {
            name: "AVAXUSDT 1m".to_string(),
            data_dir: root.join("data"),
            models_dir: root.join("models"),
            log_dir: root.join("log"),
            interval_ms: 60_000,
            ensemble: EnsembleConfig {
                window: 5,
                refit_rows: 150,
                generations: 2,
                ..EnsembleConfig::default()
            },
            fit: FitConfig::new(9, 150, 2),
            save_every,
            corr: Vec::new(),
            corr_feeds: Vec::new(),
        }
    }

    /// Runs the ensembler over `live` with the store holding `stored` before it starts.
    fn session(root: &Path, save_every: u64, stored: &[Kline], live: &[Kline]) -> EnsemblerSummary {
        let (ev_tx, _ev_rx) = mpsc::channel();
        let mut tail = |n: usize| Ok(stored[stored.len().saturating_sub(n)..].to_vec());
        let (ens, replay) =
            Ensembler::start(&config(root, save_every), &mut tail, ev_tx).expect("start");
        let (tx, rx) = mpsc::channel();
        for k in live {
            tx.send(ClosedKline {
                symbol: 0,
                kline: k.clone(),
                from_rest: false,
                arrived: Instant::now(),
            })
            .expect("send");
        }
        drop(tx);
        ens.run(replay, rx).expect("run")
    }

    /// A fresh directory under the system's temp dir for one test (`tag` names the test).
    fn scratch(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "klinecast-ensembler-{tag}-{}-{}",
            std::process::id(),
            wall_clock_ms()
        ))
    }

    #[test]
    fn a_stop_mid_window_and_restart_gives_the_same_files_as_one_run() {
        for (save_every, replayed, buffered) in [(1, 3u64, 0usize), (3, 8, 0), (5, 23, 10)] {
            let base = scratch(&format!("stop-{save_every}"));
            let (a, b) = (base.join("a"), base.join("b"));
            let src = sample(560);
            let (start, cut) = (500, 523);
            // One uninterrupted run.
            let one = session(&a, save_every, &src[..start], &src[start..]);
            assert_eq!((one.klines, one.windows), (60, 12));
            // Stopped after 23 klines (mid-window), then restarted on the store as it was left.
            let first = session(&b, save_every, &src[..start], &src[start..cut]);
            assert_eq!(first.windows, 4);
            let second = session(&b, save_every, &src[..cut], &src[cut..]);
            assert_eq!(
                second.replayed, replayed,
                "the klines after the last save are fed again (save every {save_every})"
            );
            assert_eq!(second.windows, 8 + replayed / 5);
            for file in ["data/predictions.csv", "models/Ensembled/EnsembleModel.bin"] {
                assert!(
                    std::fs::read(a.join(file)).expect("a")
                        == std::fs::read(b.join(file)).expect("b"),
                    "{file} differs after a restart (save every {save_every})"
                );
            }
            let buffer = crate::store::load_klines(&b.join("data/Buffer_5.csv")).expect("buffer");
            assert_eq!(buffer.len(), buffered, "klines since the last save");
            assert_eq!(buffer[..], src[560 - buffered..]);
            let saved = load_ensemble(&ensemble_path(&b.join("models"))).expect("loads");
            assert_eq!(saved.as_of_open_time, Some(src[559 - buffered].open_time));
            assert_eq!(saved.ensemble.windows_done, 12 - buffered as u64 / 5);
            let _ = std::fs::remove_dir_all(&base);
        }
    }

    /// The window numbers in `<root>/log/ensemble.jsonl`, in order.
    fn logged_windows(root: &Path) -> Vec<u64> {
        std::fs::read_to_string(root.join("log/ensemble.jsonl"))
            .expect("ensemble.jsonl")
            .lines()
            .filter_map(LoggedWindow::parse)
            .map(|w| w.report.window)
            .collect()
    }

    /// A kline that ends a window has its forecast written before the window's refit (made by
    /// the pool before the refit). A kill between the two: the restart feeds the kline again,
    /// finds its forecast written, and refits the window once; the files are those of one run.
    #[test]
    fn a_kill_between_a_window_end_forecast_and_its_refit_refits_it_once_on_restart() {
        let base = scratch("kill");
        let (a, b) = (base.join("a"), base.join("b"));
        let src = sample(560);
        let one = session(&a, 1, &src[..500], &src[500..]);
        assert_eq!(one.windows, 12);
        // Klines 500..=509: windows end at 504 and 509 (the start's forecast is scored by 500).
        let (ev_tx, _ev_rx) = mpsc::channel();
        let mut tail = |n: usize| Ok(src[500usize.saturating_sub(n)..500].to_vec());
        let (mut ens, replay) = Ensembler::start(&config(&b, 1), &mut tail, ev_tx).expect("start");
        ens.feed_again(replay).expect("nothing to feed");
        for (i, k) in src[500..510].iter().enumerate() {
            ens.step(k.clone(), false, Some(Instant::now()))
                .expect("step");
            if i < 9 {
                ens.close_window().expect("refit");
            }
        }
        assert!(ens.window_pending(), "kline 509 ends a window");
        let text = std::fs::read_to_string(b.join("data/predictions.csv")).expect("predictions");
        let rows = super::super::predictions::read_rows(&text);
        let last = rows.last().expect("a forecast");
        assert_eq!(
            (last.made_after_open_time, last.target_open_time),
            (src[509].open_time, src[510].open_time),
            "the window-end forecast is written before the refit"
        );
        drop(ens); // killed before the refit of 509's window
        assert_eq!(logged_windows(&b), vec![0]);
        let second = session(&b, 1, &src[..510], &src[510..]);
        assert_eq!(
            second.replayed, 5,
            "509 and the 4 klines since the save at 504"
        );
        assert_eq!(second.windows, 11);
        assert_eq!(logged_windows(&b), (0..12).collect::<Vec<u64>>());
        assert_eq!(logged_windows(&b), logged_windows(&a));
        for file in ["data/predictions.csv", "models/Ensembled/EnsembleModel.bin"] {
            assert!(
                std::fs::read(a.join(file)).expect("a") == std::fs::read(b.join(file)).expect("b"),
                "{file} differs after a kill between a forecast and its refit"
            );
        }
        let _ = std::fs::remove_dir_all(&base);
    }

    /// Saves a trained linear model fitted on `klines` into `<root>/models/Trained`.
    fn save_trained_linear(root: &Path, klines: &[Kline], seed: u64) {
        use crate::features::{FeatureSpec, Scaler};
        use crate::models::{linear::LinearParams, AnyModel, ModelKind};
        let mut series = Series::default();
        for k in klines {
            series.push(&k.values());
        }
        let spec = FeatureSpec::default();
        let data = spec.dataset(&series, 0..series.len());
        let scaler = Scaler::fit(&data.x);
        let model = LinearParams::default()
            .fit(&scaler.transform(&data.x), &data.y)
            .expect("linear fits");
        let trained = persist::TrainedModel {
            kind: ModelKind::Linear,
            spec,
            scaler,
            model: AnyModel::Linear(model),
            meta: persist::TrainMeta {
                train_first_open_time: klines[0].open_time,
                train_last_open_time: klines[klines.len() - 1].open_time,
                train_rows: data.y.len(),
                holdout_rows: 0,
                seed,
                fit_seconds: 0.0,
                holdout: persist::HoldoutScores {
                    rmse: f64::NAN,
                    mae: f64::NAN,
                    mape: f64::NAN,
                    directional: f64::NAN,
                    naive_rmse: f64::NAN,
                },
                data_file: "AVAXUSDT_1m.csv".to_string(),
                klinecast_version: "test".to_string(),
            },
        };
        persist::save_trained(&root.join("models"), &trained).expect("saves");
    }

    fn trained_member(root: &Path) -> crate::ensemble::Member {
        let saved = load_ensemble(&ensemble_path(&root.join("models"))).expect("loads");
        saved
            .ensemble
            .members
            .into_iter()
            .find(|m| m.label == "trained/linear")
            .expect("a trained member")
    }

    #[test]
    fn the_warm_up_is_the_newest_klines_after_the_training_rows_but_one() {
        let k = sample(20);
        let t = |i: usize| Some(k[i].open_time);
        assert_eq!(warm_up_range(&k, None, 100), 20..20);
        assert_eq!(warm_up_range(&k, t(9), 100), 11..20);
        assert_eq!(warm_up_range(&k, t(9), 5), 15..20);
        assert_eq!(warm_up_range(&k, t(18), 100), 20..20);
        assert_eq!(warm_up_range(&k, t(19), 100), 20..20);
        assert_eq!(warm_up_range(&k, Some(k[19].open_time + 1), 100), 20..20);
        assert_eq!(warm_up_range(&k, Some(k[0].open_time - 1), 100), 1..20);
    }

    /// A new ensemble warms up on the stored klines after its trained models' training rows:
    /// the trained member's record holds them, the scoreboard and predictions.csv only the
    /// published forecasts; a restart that loads the saved ensemble does not warm up again.
    #[test]
    fn a_new_ensemble_warms_up_on_the_klines_after_the_training_rows() {
        let root = scratch("warm");
        let src = sample(560);
        save_trained_linear(&root, &src[..400], 1);
        session(&root, 1, &src[..500], &src[500..520]);
        let log = || std::fs::read_to_string(root.join("log/ensemble.log")).expect("log");
        let warmed = "warmed the new ensemble up on 99 klines after the trained models' training \
                      rows (99 forecasts scored, not published) in ";
        assert_eq!(log().matches(warmed).count(), 1, "{}", log());
        // 99 warm-up forecasts (made on klines 400..499) and 20 published ones.
        assert_eq!(trained_member(&root).stats.n_scored, 119);
        let saved = load_ensemble(&ensemble_path(&root.join("models"))).expect("loads");
        let board = saved.ensemble.scoreboard();
        let naive = board
            .iter()
            .find(|r| r.label == "naive")
            .expect("naive row");
        assert_eq!(naive.n, 20);
        let preds = std::fs::read_to_string(root.join("data/predictions.csv")).expect("preds");
        let first_target = preds
            .lines()
            .skip(1)
            .filter_map(|l| l.split(',').next()?.parse::<i64>().ok())
            .min();
        // The first published forecast is the one made on the last warm-up kline.
        assert_eq!(first_target, Some(src[500].open_time), "{preds}");
        session(&root, 1, &src[..520], &src[520..540]);
        assert_eq!(log().matches("warmed the new ensemble").count(), 1);
        assert_eq!(trained_member(&root).stats.n_scored, 139);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn trained_models_are_left_out_of_the_saved_ensemble_and_reattached_on_restart() {
        let root = scratch("trained");
        let src = sample(600);
        save_trained_linear(&root, &src[..400], 1);
        session(&root, 1, &src[..500], &src[500..540]);
        let saved = trained_member(&root);
        assert!(
            saved.model.is_none(),
            "the trained model lives in models/Trained only"
        );
        let scored = saved.stats.n_scored;
        assert!(scored > 0);
        // A restart with the same trained model re-attaches it: its statistics carry on.
        let second = session(&root, 1, &src[..540], &src[540..560]);
        assert!(second.windows > 0);
        assert!(trained_member(&root).stats.n_scored > scored);
        // After a new `klinecast train`, the trained member starts afresh.
        save_trained_linear(&root, &src[..420], 2);
        session(&root, 1, &src[..560], &src[560..575]);
        let retrained = trained_member(&root);
        assert!(retrained.source.ends_with("seed 2"), "{}", retrained.source);
        assert!(
            retrained.stats.n_scored <= 15,
            "{}",
            retrained.stats.n_scored
        );
        let _ = std::fs::remove_dir_all(&root);
    }
}
