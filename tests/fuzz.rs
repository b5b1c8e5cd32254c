//! In-repo fuzzing of every parser that reads outside input: a small coverage-less mutation
//! fuzzer (seeded, so every run is reproducible) over the kline WebSocket event parser, the REST
//! klines parser, the CSV line parser, both CSV file loaders (which must agree on every input),
//! the trained-model file loader (every kind, gbdt, GRU and LSTM included: raw frames, and
//! payloads re-framed with a valid checksum so the postcard decoder and the compatibility checks
//! are reached), the ensemble file (v4 and the v3 fixture: raw frames and re-framed payloads),
//! `predictions.csv` with its `lower,upper` columns (as `stream` opens it and `report` reads
//! it) and `ensemble.jsonl` (as `report` and `status` read it). Every target runs inside
//! `catch_unwind`: a panic saves the input to `tests/fuzz-regressions/<target>/<hash>.bin` and
//! fails the test; every saved input is replayed by `regressions_do_not_panic`.
//!
//! Budget: `KLINECAST_FUZZ_ITERS` iterations per target (default 20 000, a few seconds), or
//! `KLINECAST_FUZZ_SECONDS` per target when set; `KLINECAST_FUZZ_SEED` picks the run (default 1).
//! `scripts/fuzz.sh` runs long budgets in release mode. This file is test code only: nothing of
//! it ships in the binary.

use std::collections::HashSet;
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use klinecast::binance::wire::{self, WsEvent};
use klinecast::ensemble::learner::Learner;
use klinecast::ensemble::{Ensemble, EnsembleConfig, Member};
use klinecast::kline::{Interval, Kline, Series, Symbol, CSV_HEADER};
use klinecast::live::predictions::{PredictionLog, HEADER as PREDICTIONS_HEADER};
use klinecast::models::fit::FitConfig;
use klinecast::models::gbdt::GbdtParams;
use klinecast::models::rnn::RnnParams;
use klinecast::models::{AnyModel, ModelKind, Regressor};
use klinecast::page::run as run_page;
use klinecast::persist::{
    self, SavedEnsemble, TrainedModel, TAG_ENSEMBLE, TAG_TRAINED, TRAINED_VERSION,
};
use klinecast::replay::market;
use klinecast::rng::Rng;
use klinecast::run_files::{self, RunFiles, Window};
use klinecast::store;
use klinecast::train::{self, TrainOptions};

mod common;

use common::TempDir;

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/AVAXUSDT_1m.csv");
const REGRESSIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz-regressions");

/// What a target made of one input: `Ok` (accepted) or `Err` (refused), each with a short
/// signature of the outcome (used to keep inputs that reach a new outcome in the corpus).
type Verdict = Result<String, String>;

// ---------------------------------------------------------------------------------------------
// Targets. Each checks its own invariants with `assert!`, so a broken invariant is a "panic" and
// is saved like a crash.
// ---------------------------------------------------------------------------------------------

/// Anything the wire parsers accept must be a valid kline that the store can write and load back.
fn assert_storable(k: &Kline) {
    assert_eq!(k.validate(), Ok(()), "accepted kline fails validate: {k:?}");
    let line = k.to_csv_line();
    assert_eq!(
        Kline::from_csv_line(&line).as_ref(),
        Ok(k),
        "accepted kline does not round-trip through CSV: {line}"
    );
}

fn target_ws_event(input: &[u8]) -> Verdict {
    let text = String::from_utf8_lossy(input);
    match wire::parse_ws_event(&text) {
        Ok(WsEvent::Kline {
            kline, is_final, ..
        }) => {
            assert_storable(&kline);
            Ok(format!("kline final={is_final}"))
        }
        Ok(other) => Ok(format!("{other:?}").chars().take(16).collect()),
        Err(e) => Err(signature(&e.to_string())),
    }
}

fn target_rest_klines(input: &[u8]) -> Verdict {
    let text = String::from_utf8_lossy(input);
    match wire::parse_klines(&text) {
        Ok(klines) => {
            klines.iter().for_each(assert_storable);
            Ok(format!("{} klines", klines.len().min(3)))
        }
        Err(e) => Err(signature(&e.to_string())),
    }
}

fn target_csv_line(input: &[u8]) -> Verdict {
    let text = String::from_utf8_lossy(input);
    match Kline::from_csv_line(&text) {
        Ok(k) => {
            assert_storable(&k);
            Ok("line".to_string())
        }
        Err(e) => Err(signature(&e.to_string())),
    }
}

/// A whole kline file: `load_klines` and `load_series` must give the same verdict, the same
/// message and the same numbers; a file that `KlineStore::open` accepts (after cutting a torn
/// last line) must then load with the row count it reported.
fn target_csv_file(input: &[u8], path: &Path, try_open: bool) -> Verdict {
    fs::write(path, input).expect("write the fuzz input file");
    let klines = store::load_klines(path);
    let series = store::load_series(path);
    let verdict = match (&klines, &series) {
        (Ok(k), Ok(s)) => {
            let mut expected = Series::with_capacity(k.len());
            for kline in k {
                expected.push(&kline.values());
            }
            assert!(
                same_series(&expected, s),
                "load_series and load_klines give different numbers"
            );
            Ok(format!("{} rows", k.len().min(3)))
        }
        (Err(a), Err(b)) => {
            assert_eq!(
                a.to_string(),
                b.to_string(),
                "load_klines and load_series refuse with different messages"
            );
            Err(signature(&a.to_string()))
        }
        (a, b) => panic!(
            "loaders disagree: load_klines {:?}, load_series {:?}",
            a.as_ref().map(Vec::len).map_err(ToString::to_string),
            b.as_ref().map(Series::len).map_err(ToString::to_string)
        ),
    };
    if try_open {
        if let Ok((store, report)) = store::KlineStore::open(path) {
            drop(store);
            let reloaded = store::load_klines(path)
                .unwrap_or_else(|e| panic!("KlineStore::open accepted a file that loads not: {e}"));
            assert_eq!(
                reloaded.len(),
                report.rows,
                "open and load count differently"
            );
        }
    }
    verdict
}

/// Equal, with NaN never expected (loaded values are finite) and bit-exact floats.
fn same_series(a: &Series, b: &Series) -> bool {
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    a.open_time == b.open_time
        && [
            (&a.open, &b.open),
            (&a.high, &b.high),
            (&a.low, &b.low),
            (&a.close, &b.close),
            (&a.volume, &b.volume),
            (&a.quote_volume, &b.quote_volume),
            (&a.trades, &b.trades),
            (&a.taker_buy_base, &b.taker_buy_base),
            (&a.taker_buy_quote, &b.taker_buy_quote),
        ]
        .iter()
        .all(|(x, y)| bits(x) == bits(y))
}

/// A model file as read from disk. A model that loads must also predict without panicking.
fn target_model_file(input: &[u8]) -> Verdict {
    match persist::decode_trained(Path::new("fuzz/model.bin"), input) {
        Ok(model) => {
            use_model(&model);
            Ok(model.kind.name().to_string())
        }
        Err(e) => Err(signature(&e.to_string())),
    }
}

/// A postcard payload framed with a correct length and checksum, so that the decoder and the
/// compatibility checks see it.
fn target_model_payload(input: &[u8]) -> Verdict {
    target_model_file(&frame(input))
}

fn use_model(model: &TrainedModel) {
    let d = model.spec.n_features();
    // A recurrent model reads `seq_len` rows (bounded by its check).
    let n = model.model.seq_len();
    for value in [0.0, 1.0, -3.5, 1e300] {
        let row = vec![value; d];
        let _ = model.model.predict_row(&row);
        let _ = model.scaler.transform_row(&row);
        let _ = model.model.predict_sequence(&vec![value; n * d], d);
    }
}

/// An ensemble file (`EnsembleModel.bin`) payload, framed with a valid checksum and loaded the
/// way `stream` loads it; an ensemble that loads must then run: a learner over it forecasts and
/// scores a few klines (no refit) without panicking.
fn target_ensemble_payload(input: &[u8], klines: &Series) -> Verdict {
    let bytes = frame_as(TAG_ENSEMBLE, persist::ENSEMBLE_FILE_VERSION, input);
    target_ensemble_file(&bytes, klines)
}

/// A whole `EnsembleModel.bin` as read from disk (frame, version, checksum, payload).
fn target_ensemble_file(bytes: &[u8], klines: &Series) -> Verdict {
    match persist::decode_ensemble(Path::new("fuzz/EnsembleModel.bin"), bytes) {
        Ok(saved) => {
            let members = saved.ensemble.members.len();
            let history = klines.slice(0..klines.len() - 8);
            let mut learner = Learner::new(saved.ensemble, history, 60_000);
            for t in klines.len() - 8..klines.len() {
                let row = klines.slice(t..t + 1);
                let _ = learner.on_kline(&row.values(0, 60_000));
            }
            let _ = learner.ensemble().scoreboard();
            Ok(format!("{} members", members.min(4)))
        }
        Err(e) => Err(signature(&e.to_string())),
    }
}

/// `predictions.csv` as `stream` opens it (a torn last line cut; a version 1 file, or anything
/// else it cannot append to, moved aside whole and a new file started) and as `report` reads
/// and draws it. Invariants: `open` accepts every input; it keeps every complete line of the
/// input, or moves the input aside byte for byte.
fn target_predictions_file(input: &[u8], dir: &Path, base: &RunFiles, draw: bool) -> Verdict {
    let path = dir.join("predictions.csv");
    for entry in fs::read_dir(dir).expect("list the fuzz directory") {
        fs::remove_file(entry.expect("entry").path()).expect("clean the fuzz directory");
    }
    fs::write(&path, input).expect("write the fuzz input file");
    // `report` reads the text whatever `stream` makes of it.
    let text = String::from_utf8_lossy(input);
    let (forecasts, warning) = run_files::read_predictions(&path, &text);
    if let Some(w) = &warning {
        assert!(
            w.contains("predictions.csv"),
            "warning without the file: {w}"
        );
    }
    if draw {
        let files = RunFiles {
            forecasts,
            ..base.clone()
        };
        let _ = run_page::html(&files, 24.0, "fuzz");
    }
    let complete = match input.iter().rposition(|&b| b == b'\n') {
        Some(i) => &input[..=i],
        None => &[][..],
    };
    let log = match PredictionLog::open(&path) {
        Ok(log) => log,
        Err(e) => panic!("open refused a file instead of moving it aside: {e}"),
    };
    let now = fs::read(&path).expect("read back");
    if let Some(moved) = log.moved_aside() {
        assert_eq!(
            fs::read(&moved.to).expect("moved file"),
            input,
            "moved aside whole"
        );
        assert_eq!(now, format!("{PREDICTIONS_HEADER}\n").into_bytes());
    } else if complete.is_empty() {
        assert_eq!(now, format!("{PREDICTIONS_HEADER}\n").into_bytes());
    } else {
        assert_eq!(now, complete, "open kept the complete lines");
    }
    let last = log.last_target();
    let moved = log.moved_aside().map(|m| signature(&m.why));
    drop(log);
    Ok(format!(
        "opened last={} moved={} report={}",
        last.is_some(),
        moved.unwrap_or_else(|| "no".to_string()),
        warning.map_or("clean".to_string(), |w| signature(&w))
    ))
}

/// `ensemble.jsonl` as `report` reads it (every line, drawn on the page with the scoreboard)
/// and as `status` reads it (the last line). Lines that are not window reports are skipped
/// with a warning naming the file.
fn target_ensemble_jsonl(input: &[u8], base: &RunFiles, draw: bool) -> Verdict {
    let path = Path::new("log/ensemble.jsonl");
    let text = String::from_utf8_lossy(input);
    let (windows, warning) = run_files::read_windows(path, &text);
    if let Some(last) = text.lines().last() {
        let _ = Window::parse(last);
    }
    let n = windows.len();
    let files = RunFiles {
        windows,
        ..base.clone()
    };
    let _ = run_page::scoreboard_rows(&files.windows);
    if draw {
        let _ = run_page::html(&files, 24.0, "fuzz");
    }
    match warning {
        None => Ok(format!("{} windows", n.min(3))),
        Some(w) => {
            assert!(
                w.contains("ensemble.jsonl"),
                "warning without the file: {w}"
            );
            Err(signature(&w))
        }
    }
}

/// Frames a payload as a trained-model file with a valid checksum.
fn frame(payload: &[u8]) -> Vec<u8> {
    frame_as(TAG_TRAINED, TRAINED_VERSION, payload)
}

/// Frames a payload with a valid checksum.
fn frame_as(tag: [u8; 4], version: u32, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(payload.len() + 28);
    bytes.extend_from_slice(&persist::MAGIC);
    bytes.extend_from_slice(&tag);
    bytes.extend_from_slice(&version.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(payload);
    bytes.extend_from_slice(&persist::crc32(payload).to_le_bytes());
    bytes
}

/// A verdict signature: the message up to its first quote (quoted input text would make every
/// message unique), with words holding a digit (numbers, checksums) and member labels masked.
fn signature(msg: &str) -> String {
    let head: String = msg
        .split('"')
        .next()
        .unwrap_or("")
        .chars()
        .take(100)
        .collect();
    let mut previous = "";
    head.split(' ')
        .map(|w| {
            let masked = previous == "member" || w.bytes().any(|b| b.is_ascii_digit());
            previous = w;
            if masked {
                "#"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------------------------
// The engine.
// ---------------------------------------------------------------------------------------------

/// Tokens that parsers of JSON, CSV and decimals tend to trip on.
const DICT: &[&str] = &[
    "\"x\":true",
    "\"x\":false",
    "\"x\":null",
    "\"n\":-1",
    "\"e\":\"kline\"",
    "\"e\":\"serverShutdown\"",
    "\"stream\":\"a\",\"data\":",
    "\"k\":{}",
    "\"result\":null,\"id\":1",
    "\"code\":-1121,\"msg\":\"x\"",
    "-1",
    "-0",
    "0",
    "1e309",
    "-1e309",
    "1e-400",
    "1.5e3",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "Infinity",
    "\"",
    ",",
    ",,",
    "\n",
    "\r\n",
    "{",
    "}",
    "[",
    "]",
    ":",
    ".",
    "..",
    " ",
    "+1",
    "0x10",
    "\\",
    "\\u0000",
    "\\ud800",
    "null",
    "true",
    "false",
    "\"\"",
    "[]",
    "{}",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "4294967295",
    "4294967296",
    "99999999999999999999999999999999999999999",
    "0.00000000",
    "0.000000000000000000000000000000000000001",
    "1.7976931348623157e308",
    "\u{0}",
    "\u{ff}",
    "\u{feff}",
    "é",
];

/// Byte values worth trying.
const INTERESTING: &[u8] = &[
    0, 1, 0x7f, 0x80, 0xff, b'0', b'9', b'-', b'.', b',', b'"', b'\n',
];

struct Engine {
    rng: Rng,
    max_len: usize,
}

impl Engine {
    fn new(seed: u64, max_len: usize) -> Engine {
        Engine {
            rng: Rng::new(seed),
            max_len,
        }
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.below(items.len())]
    }

    /// 1 to 6 stacked mutations of a random corpus item.
    fn mutate(&mut self, corpus: &[Vec<u8>]) -> Vec<u8> {
        let mut data = self.pick(corpus).clone();
        let rounds = 1 + self.rng.below(6);
        for _ in 0..rounds {
            self.mutate_once(&mut data, corpus);
        }
        data.truncate(self.max_len);
        data
    }

    fn pos(&mut self, data: &[u8]) -> usize {
        self.rng.below(data.len() + 1)
    }

    fn mutate_once(&mut self, data: &mut Vec<u8>, corpus: &[Vec<u8>]) {
        match self.rng.below(13) {
            // Bit flip.
            0 if !data.is_empty() => {
                let i = self.rng.below(data.len());
                data[i] ^= 1 << self.rng.below(8);
            }
            // Interesting byte.
            1 if !data.is_empty() => {
                let i = self.rng.below(data.len());
                data[i] = *self.pick(INTERESTING);
            }
            // Random byte inserted.
            2 => {
                let i = self.pos(data);
                data.insert(i, self.rng.next_u64() as u8);
            }
            // A run of bytes deleted.
            3 if !data.is_empty() => {
                let i = self.rng.below(data.len());
                let n = 1 + self.rng.below((data.len() - i).min(16));
                data.drain(i..i + n);
            }
            // A chunk duplicated somewhere else.
            4 if !data.is_empty() => {
                let i = self.rng.below(data.len());
                let n = 1 + self.rng.below((data.len() - i).min(64));
                let chunk = data[i..i + n].to_vec();
                let at = self.pos(data);
                data.splice(at..at, chunk);
            }
            // Splice: our prefix, another item's suffix.
            5 => {
                let other = self.pick(corpus).clone();
                let cut = self.pos(data);
                let from = self.rng.below(other.len() + 1);
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            // A dictionary token inserted.
            6 | 7 => {
                let token = self.pick(DICT).as_bytes().to_vec();
                let at = self.pos(data);
                data.splice(at..at, token);
            }
            // A dictionary token overwriting the bytes at a position.
            8 if !data.is_empty() => {
                let token = self.pick(DICT).as_bytes();
                let at = self.rng.below(data.len());
                let end = (at + token.len()).min(data.len());
                data.splice(at..end, token.iter().copied());
            }
            // A number (a run of digits) replaced by a dictionary token or a long digit run.
            9 => {
                let starts: Vec<usize> = (0..data.len())
                    .filter(|&i| {
                        data[i].is_ascii_digit() && (i == 0 || !data[i - 1].is_ascii_digit())
                    })
                    .collect();
                if starts.is_empty() {
                    return;
                }
                let start = *self.pick(&starts);
                let end = start
                    + data[start..]
                        .iter()
                        .position(|b| !b.is_ascii_digit())
                        .unwrap_or(data.len() - start);
                let replacement = if self.rng.below(2) == 0 {
                    self.pick(DICT).as_bytes().to_vec()
                } else {
                    let n = 1 + self.rng.below(48);
                    (0..n).map(|_| b'0' + self.rng.below(10) as u8).collect()
                };
                data.splice(start..end, replacement);
            }
            // Truncation.
            10 => {
                let cut = self.pos(data);
                data.truncate(cut);
            }
            // A little-endian integer overwritten with an extreme value (binary formats).
            11 if data.len() >= 8 => {
                let at = self.rng.below(data.len() - 7);
                let value: u64 = *self.pick(&[
                    0,
                    1,
                    0x7f,
                    0x80,
                    0xff,
                    u64::from(u32::MAX),
                    1 << 40,
                    1 << 60,
                    u64::MAX,
                ]);
                let width = *self.pick(&[1usize, 2, 4, 8]);
                data[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
            }
            // A postcard varint with a huge value inserted (length prefixes).
            12 => {
                let mut value = self.rng.next_u64() >> self.rng.below(64);
                let mut bytes = Vec::new();
                loop {
                    let byte = (value & 0x7f) as u8;
                    value >>= 7;
                    if value == 0 {
                        bytes.push(byte);
                        break;
                    }
                    bytes.push(byte | 0x80);
                }
                let at = self.pos(data);
                data.splice(at..at, bytes);
            }
            _ => {
                let i = self.pos(data);
                data.insert(i, *self.pick(INTERESTING));
            }
        }
    }
}

/// How long each target runs.
#[derive(Debug, Clone, Copy)]
enum Budget {
    Iterations(u64),
    Time(Duration),
}

fn budget() -> Budget {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<f64>().ok());
    if let Some(secs) = env("KLINECAST_FUZZ_SECONDS").filter(|s| *s > 0.0) {
        return Budget::Time(Duration::from_secs_f64(secs));
    }
    Budget::Iterations(env("KLINECAST_FUZZ_ITERS").map_or(20_000, |n| n.max(1.0) as u64))
}

fn base_seed() -> u64 {
    std::env::var("KLINECAST_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// FNV-1a, for regression file names.
fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Runs `check` on one input; a panic is saved as a regression and returned as its path.
fn run_one(
    target: &str,
    input: &[u8],
    check: &mut dyn FnMut(&[u8]) -> Verdict,
) -> Result<Verdict, PathBuf> {
    // Hang hunting: `KLINECAST_FUZZ_TRACE=<file>` writes every input there before running it,
    // so the input a stuck run is working on can be read back.
    if let Some(trace) = std::env::var_os("KLINECAST_FUZZ_TRACE") {
        fs::write(trace, input).expect("write the trace file");
    }
    match panic::catch_unwind(AssertUnwindSafe(|| check(input))) {
        Ok(verdict) => Ok(verdict),
        Err(_) => {
            let dir = Path::new(REGRESSIONS).join(target);
            fs::create_dir_all(&dir).expect("create the regression directory");
            let path = dir.join(format!("{:016x}.bin", fnv64(input)));
            fs::write(&path, input).expect("save the crashing input");
            Err(path)
        }
    }
}

/// Fuzzes one target: first every seed and every truncation of each seed (up to
/// `truncate_limit` bytes long), then mutations until the budget is spent. Inputs that reach a
/// new verdict signature join the corpus. Fails listing the saved inputs if anything panicked.
fn fuzz(
    target: &str,
    seeds: Vec<Vec<u8>>,
    truncate_limit: usize,
    check: &mut dyn FnMut(&[u8]) -> Verdict,
) {
    assert!(!seeds.is_empty(), "{target}: no seeds");
    let max_len = seeds.iter().map(Vec::len).max().unwrap_or(0) * 2 + 256;
    let index = fnv64(target.as_bytes());
    let mut engine = Engine::new(Rng::derive(base_seed(), index).next_u64(), max_len);
    let mut crashes: Vec<PathBuf> = Vec::new();
    let mut seen: HashSet<Verdict> = HashSet::new();
    let mut corpus = seeds.clone();
    let clock = Instant::now();
    let mut runs = 0u64;
    let mut record = |result: Result<Verdict, PathBuf>, crashes: &mut Vec<PathBuf>| match result {
        Ok(v) => seen.insert(v),
        Err(path) => {
            crashes.push(path);
            false
        }
    };
    for seed in &seeds {
        runs += 1;
        let verdict = run_one(target, seed, check);
        if let Ok(Err(e)) = &verdict {
            panic!("{target}: a seed is refused: {e}");
        }
        record(verdict, &mut crashes);
        if seed.len() <= truncate_limit {
            for cut in 0..seed.len() {
                runs += 1;
                record(run_one(target, &seed[..cut], check), &mut crashes);
            }
        }
    }
    let budget = budget();
    let mut mutations = 0u64;
    loop {
        let done = match budget {
            Budget::Iterations(n) => mutations >= n,
            Budget::Time(d) => mutations.is_multiple_of(64) && clock.elapsed() >= d,
        };
        if done || crashes.len() >= 8 {
            break;
        }
        let input = engine.mutate(&corpus);
        mutations += 1;
        let result = run_one(target, &input, check);
        if record(result, &mut crashes) && corpus.len() < 512 {
            corpus.push(input);
        }
    }
    runs += mutations;
    let secs = clock.elapsed().as_secs_f64();
    eprintln!(
        "fuzz {target}: {runs} inputs in {secs:.1} s ({:.0}/s), {} outcomes, corpus {}, {} panics",
        runs as f64 / secs.max(1e-9),
        seen.len(),
        corpus.len(),
        crashes.len()
    );
    assert!(
        crashes.is_empty(),
        "{target}: {} inputs panicked, saved as {crashes:?}",
        crashes.len()
    );
}

// ---------------------------------------------------------------------------------------------
// Seed corpora from real data.
// ---------------------------------------------------------------------------------------------

fn sample_lines() -> Vec<String> {
    let text = fs::read_to_string(SAMPLE).expect("read data/AVAXUSDT_1m.csv");
    text.lines().skip(1).map(str::to_string).collect()
}

fn sample_klines(rows: std::ops::Range<usize>) -> Vec<Kline> {
    sample_lines()[rows]
        .iter()
        .map(|l| Kline::from_csv_line(l).expect("sample line is valid"))
        .collect()
}

/// A no-trade kline (zero volume and trades, one price), as Binance sends for a quiet minute.
fn no_trade(k: &Kline) -> Kline {
    Kline {
        open: k.close.clone(),
        high: k.close.clone(),
        low: k.close.clone(),
        volume: "0".to_string(),
        quote_volume: "0.0000".to_string(),
        trades: 0,
        taker_buy_base: "0".to_string(),
        taker_buy_quote: "0.0000".to_string(),
        ..k.clone()
    }
}

fn ws_seeds() -> Vec<Vec<u8>> {
    let symbol = Symbol::parse("AVAXUSDT").expect("symbol");
    let klines = sample_klines(1000..1004);
    let mut seeds = Vec::new();
    for (i, k) in klines.iter().enumerate() {
        let event = market::kline_event(
            &symbol,
            Interval::ONE_MINUTE,
            k,
            5_000_000 + i as i64 * 400,
            k.close_time + 1,
            i % 2 == 0,
        );
        seeds.push(format!(r#"{{"stream":"avaxusdt@kline_1m","data":{event}}}"#).into_bytes());
        seeds.push(event.into_bytes());
    }
    let quiet = no_trade(&klines[0]);
    seeds.push(
        market::kline_event(
            &symbol,
            Interval::ONE_MINUTE,
            &quiet,
            0,
            quiet.close_time + 1,
            true,
        )
        .into_bytes(),
    );
    seeds.push(market::shutdown_event(1_782_900_000_000).into_bytes());
    seeds.push(br#"{"result":null,"id":1}"#.to_vec());
    seeds.push(br#"{"code":2,"msg":"Invalid request"}"#.to_vec());
    seeds.push(br#"{"e":"trade","E":1}"#.to_vec());
    seeds
}

fn rest_seeds() -> Vec<Vec<u8>> {
    let klines = sample_klines(2000..2006);
    let mut with_quiet = klines.clone();
    with_quiet.push(no_trade(&klines[5]));
    vec![
        market::rest_body(&klines, 0..1, i64::MAX).into_bytes(),
        market::rest_body(&klines, 0..6, i64::MAX).into_bytes(),
        market::rest_body(&with_quiet, 4..7, i64::MAX).into_bytes(),
        // The last row still open at `now`: a partial kline as the replay server sends it.
        market::rest_body(&klines, 0..3, klines[2].open_time + 30_000).into_bytes(),
        b"[]".to_vec(),
    ]
}

fn csv_line_seeds() -> Vec<Vec<u8>> {
    let lines = sample_lines();
    let mut seeds: Vec<Vec<u8>> = [0, 1, 777, 15_000, lines.len() - 1]
        .iter()
        .map(|&i| lines[i].clone().into_bytes())
        .collect();
    seeds.push(no_trade(&sample_klines(3..4)[0]).to_csv_line().into_bytes());
    seeds
}

fn csv_file_seeds() -> Vec<Vec<u8>> {
    let lines = sample_lines();
    let file = |from: usize, n: usize| {
        let mut text = format!("{CSV_HEADER}\n");
        for line in &lines[from..from + n] {
            text.push_str(line);
            text.push('\n');
        }
        text.into_bytes()
    };
    vec![
        format!("{CSV_HEADER}\n").into_bytes(),
        file(0, 1),
        file(100, 3),
        file(5000, 8),
        file(lines.len() - 6, 6),
    ]
}

/// One small trained model of each kind, fitted on 300 real klines (the forest cut to three
/// trees, the gbdt refitted with 4 shallow trees and the GRU and LSTM with 3 hidden units and
/// sequences of 6 rows, so that mutating them stays fast).
fn trained_models() -> Vec<TrainedModel> {
    static MODELS: OnceLock<Vec<TrainedModel>> = OnceLock::new();
    MODELS.get_or_init(fit_trained_models).clone()
}

fn fit_trained_models() -> Vec<TrainedModel> {
    let series = store::load_series(Path::new(SAMPLE)).expect("sample loads");
    let series = series.slice(20_000..20_300);
    let opts = TrainOptions {
        holdout: 0.2,
        horizon: 1,
        svr_rows: 300,
        seed: 7,
        threads: 1,
        kinds: ModelKind::ALL.to_vec(),
        data_file: "AVAXUSDT_1m.csv".to_string(),
    };
    let outcome =
        train::train_series(series.clone(), &opts, &mut |_| {}).expect("small training run");
    outcome
        .models
        .into_iter()
        .map(|mut m| {
            let data = m
                .spec
                .dataset(&series, m.spec.row_range(series.len(), 0..series.len()));
            let x = m.scaler.transform(&data.x);
            let small_rnn = |base: RnnParams| RnnParams {
                hidden: 3,
                seq_len: 6,
                max_epochs: 1,
                threads: 1,
                seed: 7,
                ..base
            };
            match &mut m.model {
                AnyModel::Forest(forest) => forest.trees.truncate(3),
                AnyModel::Gbdt(_) => {
                    let params = GbdtParams {
                        n_trees: 4,
                        max_depth: 3,
                        threads: 1,
                        standardize_target: true,
                        ..GbdtParams::default()
                    };
                    m.model = AnyModel::Gbdt(params.fit(&x, &data.y).expect("small gbdt"));
                }
                AnyModel::Gru(_) => {
                    let params = small_rnn(RnnParams::gru());
                    m.model = AnyModel::Gru(params.fit(&x, &data.y).expect("small gru"));
                }
                AnyModel::Lstm(_) => {
                    let params = small_rnn(RnnParams::lstm());
                    m.model = AnyModel::Lstm(params.fit(&x, &data.y).expect("small lstm"));
                }
                _ => {}
            }
            m
        })
        .collect()
}

fn model_file_seeds() -> Vec<Vec<u8>> {
    trained_models()
        .iter()
        .map(|m| persist::encode_framed(TAG_TRAINED, TRAINED_VERSION, m).expect("encode"))
        .collect()
}

fn model_payload_seeds() -> Vec<Vec<u8>> {
    trained_models()
        .iter()
        .map(|m| postcard::to_allocvec(m).expect("encode"))
        .collect()
}

/// Klines around the training slice (history for the ensemble target's learner).
fn ensemble_klines() -> Series {
    store::load_series(Path::new(SAMPLE))
        .expect("sample loads")
        .slice(20_100..20_400)
}

/// A real ensemble as `stream` saves it: the trained members (their models are left out of the
/// file) plus two window generations fitted by the learner on real klines, forests cut to three
/// trees so that mutating the payload stays fast.
fn ensemble_payload_seeds() -> Vec<Vec<u8>> {
    learned_ensembles().0.clone()
}

/// The v4 ensemble files of [`ensemble_payload_seeds`], and the committed v3 fixture (a v3
/// writer's file, see tests/fixtures/README.md).
fn ensemble_file_seeds() -> Vec<Vec<u8>> {
    // The committed v3 fixture is refused by this build (v5 reads v5 only): its refusal is
    // tested in tests/stream.rs, and a refused file cannot seed a fuzzer that wants loads.
    ensemble_payload_seeds()
        .iter()
        .map(|p| frame_as(TAG_ENSEMBLE, persist::ENSEMBLE_FILE_VERSION, p))
        .collect()
}

/// `ensemble.jsonl` files as `stream` writes them: the learner's window reports of
/// [`learned_ensembles`] with the fields the ensembler adds.
fn ensemble_jsonl_seeds() -> Vec<Vec<u8>> {
    let lines = &learned_ensembles().1;
    vec![
        format!("{}\n", lines[0]).into_bytes(),
        format!("{}\n{}\n", lines[0], lines[1]).into_bytes(),
        Vec::new(),
    ]
}

/// `predictions.csv` files as `stream` writes them: the header, rows with finite and unbounded
/// intervals; and a version 1 file (moved aside).
fn predictions_seeds() -> Vec<Vec<u8>> {
    let closes = ensemble_klines();
    let row = |i: usize, lower: f64, upper: f64| {
        format!(
            "{},{},{},{},{},{lower},{upper}\n",
            closes.open_time[i + 1],
            closes.close[i] * 1.0001,
            closes.close[i],
            3,
            closes.open_time[i]
        )
    };
    let header = format!("{PREDICTIONS_HEADER}\n");
    let c = |i: usize| closes.close[i];
    vec![
        header.clone().into_bytes(),
        format!("{header}{}", row(0, 0.0, f64::INFINITY)).into_bytes(),
        format!(
            "{header}{}{}{}",
            row(0, c(0) * 0.99, c(0) * 1.01),
            row(1, c(1) * 0.995, c(1) * 1.005),
            row(2, c(2) * 0.99, c(2) * 1.01)
        )
        .into_bytes(),
        format!(
            "target_open_time,forecast,naive,ensemble_version,made_after_open_time\n{},{},{},1,{}\n",
            closes.open_time[1],
            c(0),
            c(0),
            closes.open_time[0]
        )
        .into_bytes(),
    ]
}

/// What `report` reads besides the file under test: the klines around the ensemble's.
fn report_base() -> RunFiles {
    let series = ensemble_klines();
    RunFiles {
        store_path: PathBuf::from("data/AVAXUSDT_1m.csv"),
        symbol: "AVAXUSDT".to_string(),
        interval_ms: 60_000,
        closes: series.closes(),
        ..RunFiles::default()
    }
}

/// The ensemble payloads (see [`learned_ensembles_uncached`]) and the window report lines.
fn learned_ensembles() -> &'static (Vec<Vec<u8>>, Vec<String>) {
    static LEARNED: OnceLock<(Vec<Vec<u8>>, Vec<String>)> = OnceLock::new();
    LEARNED.get_or_init(learned_ensembles_uncached)
}

fn learned_ensembles_uncached() -> (Vec<Vec<u8>>, Vec<String>) {
    let config = EnsembleConfig {
        window: 5,
        refit_rows: 120,
        generations: 2,
        ..EnsembleConfig::default()
    };
    let trained: Vec<Member> = trained_models()
        .into_iter()
        .map(|t| Member::trained(t.spec, Some(t.scaler), t.model).with_source("fuzz"))
        .collect();
    let ensemble = Ensemble::new(config, trained, 60_000).expect("ensemble");
    let series = ensemble_klines();
    let mut learner = Learner::new(ensemble, series.slice(0..200), 60_000);
    let fit = FitConfig {
        seed: 3,
        svr_rows: 120,
        threads: 1,
        forest_min_samples_leaf: Some(5),
    };
    let mut windows = 0;
    let mut lines = Vec::new();
    for t in 200..series.len() {
        let step = learner.on_kline(&series.values(t, 60_000));
        if step.window_done {
            let report = learner.end_window(&fit);
            let mut value = serde_json::to_value(&report).expect("report as JSON");
            let obj = value.as_object_mut().expect("a JSON object");
            obj.insert(
                "logged_at".into(),
                klinecast::log::stamp(1_782_900_000_000 + t as i64).into(),
            );
            obj.insert("refit_save_seconds".into(), 0.25.into());
            obj.insert("peak_rss_kib".into(), 40_960.into());
            lines.push(value.to_string());
            windows += 1;
            if windows == 2 {
                break;
            }
        }
    }
    assert_eq!(windows, 2, "two windows closed");
    let mut ensemble = learner.into_ensemble();
    for member in &mut ensemble.members {
        if let Some(AnyModel::Forest(forest)) = &mut member.model {
            forest.trees.truncate(3);
        }
    }
    // The trained GRU and LSTM learnt online at each window and are saved with the ensemble.
    let recurrent = ensemble
        .members
        .iter()
        .filter(|m| m.model.as_ref().is_some_and(|a| a.as_rnn().is_some()))
        .count();
    assert_eq!(recurrent, 2, "trained gru and lstm in the ensemble");
    let fresh = Ensemble::new(ensemble.config().clone(), Vec::new(), 60_000).expect("naive only");
    let payloads = [(Some(series.open_time[210]), ensemble), (None, fresh)]
        .into_iter()
        .map(|(as_of, ensemble)| {
            postcard::to_allocvec(&SavedEnsemble {
                as_of_open_time: as_of,
                ensemble,
            })
            .expect("encode")
        })
        .collect();
    (payloads, lines)
}

// ---------------------------------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------------------------------

#[test]
fn fuzz_ws_event() {
    fuzz("ws_event", ws_seeds(), 4096, &mut target_ws_event);
}

#[test]
fn fuzz_rest_klines() {
    fuzz("rest_klines", rest_seeds(), 4096, &mut target_rest_klines);
}

#[test]
fn fuzz_csv_line() {
    fuzz("csv_line", csv_line_seeds(), 4096, &mut target_csv_line);
}

#[test]
fn fuzz_csv_file() {
    let dir = TempDir::new_in_memory("fuzz-csv");
    let path = dir.join("AVAXUSDT_1m.csv");
    let mut n = 0u64;
    fuzz("csv_file", csv_file_seeds(), 1024, &mut |input| {
        n += 1;
        // Opening takes a lock and may fsync: every 16th input is enough.
        target_csv_file(input, &path, n.is_multiple_of(16))
    });
}

#[test]
fn fuzz_model_file() {
    fuzz("model_file", model_file_seeds(), 0, &mut target_model_file);
}

#[test]
fn fuzz_model_payload() {
    fuzz(
        "model_payload",
        model_payload_seeds(),
        0,
        &mut target_model_payload,
    );
}

#[test]
fn fuzz_ensemble_payload() {
    let klines = ensemble_klines();
    fuzz(
        "ensemble_payload",
        ensemble_payload_seeds(),
        0,
        &mut |input| target_ensemble_payload(input, &klines),
    );
}

#[test]
fn fuzz_ensemble_file() {
    let klines = ensemble_klines();
    fuzz("ensemble_file", ensemble_file_seeds(), 0, &mut |input| {
        target_ensemble_file(input, &klines)
    });
}

#[test]
fn fuzz_predictions_file() {
    let dir = TempDir::new_in_memory("fuzz-predictions");
    let base = report_base();
    let mut n = 0u64;
    fuzz(
        "predictions_file",
        predictions_seeds(),
        1024,
        &mut |input| {
            n += 1;
            // Drawing the page takes milliseconds: every 8th input is enough.
            target_predictions_file(input, dir.path(), &base, n.is_multiple_of(8))
        },
    );
}

#[test]
fn fuzz_ensemble_jsonl() {
    let base = report_base();
    let mut n = 0u64;
    fuzz("ensemble_jsonl", ensemble_jsonl_seeds(), 0, &mut |input| {
        n += 1;
        // Drawing the page takes milliseconds: every 8th input is enough.
        target_ensemble_jsonl(input, &base, n.is_multiple_of(8))
    });
}

/// The regression inputs committed per target (tests/fuzz-regressions/<target>/*.bin): the
/// replay must find at least these, so a moved or emptied folder fails instead of passing.
const COMMITTED_REGRESSIONS: [(&str, usize); 6] = [
    ("csv_file", 8),
    ("ensemble_jsonl", 3),
    ("ensemble_payload", 10),
    ("model_payload", 4),
    ("rest_klines", 3),
    ("ws_event", 3),
];

/// Targets whose saved inputs may be accepted: `report` reads what it can of `ensemble.jsonl`
/// and `predictions.csv` (a line with an unreadable time stamp is still a window report).
const LENIENT: [&str; 2] = ["ensemble_jsonl", "predictions_file"];

/// Saved inputs of strict targets that load once fixed: an ensemble payload whose scores count
/// more "no change" forecasts than moves (`directional` overflowed; metrics now clamp).
const ACCEPTED: [&str; 1] = ["ensemble_payload/97f510558edeeeaa"];

/// The refusal each committed ensemble payload meets (a signature substring, see [`signature`]),
/// not just any refusal. These inputs were saved in the v2/v3 payload layout: since the v3
/// (intervals), v4 (generations as rows) and v5 (the experts' two-scale gate and combination
/// records) changes, all nine stop at the decoder, so they no longer reach the checks they were
/// saved for;
/// `ensemble_checks_refuse_what_the_fuzzer_found` rebuilds those cases in today's layout.
const EXPECTED_REFUSALS: &[(&str, &str)] = &[
    (
        "ensemble_payload/0f7b8ed9f1d4a7fd",
        "payload does not decode",
    ),
    (
        "ensemble_payload/12c5ad503621dd87",
        "payload does not decode",
    ),
    (
        "ensemble_payload/18fac3040b825e82",
        "payload does not decode",
    ),
    (
        "ensemble_payload/2222faa9020e9394",
        "payload does not decode",
    ),
    (
        "ensemble_payload/239ab01a9d7addfb",
        "payload does not decode",
    ),
    (
        "ensemble_payload/4788742d8d603208",
        "payload does not decode",
    ),
    (
        "ensemble_payload/876e1c7f7946db72",
        "payload does not decode",
    ),
    (
        "ensemble_payload/8954784575449230",
        "payload does not decode",
    ),
    (
        "ensemble_payload/8b4fb7d7b8ec335d",
        "payload does not decode",
    ),
];

/// Backs the README (Fuzzing): crashing inputs "are kept in `tests/fuzz-regressions/` and
/// replayed", and each of the bugs found is kept as a regression input. Every saved input is
/// replayed: no panic, and each is refused (they are all garbage); the folder must exist and
/// hold at least the committed inputs of every target.
#[test]
fn regressions_do_not_panic() {
    let dir = TempDir::new_in_memory("fuzz-regressions");
    let csv_path = dir.join("AVAXUSDT_1m.csv");
    let pred_dir = TempDir::new_in_memory("fuzz-regressions-predictions");
    let mut replayed_per_target: Vec<(String, usize)> = Vec::new();
    let mut checked: Vec<String> = Vec::new();
    let mut wrong: Vec<String> = Vec::new();
    let targets = fs::read_dir(REGRESSIONS)
        .unwrap_or_else(|e| panic!("the regression folder {REGRESSIONS} is missing: {e}"));
    for target in targets {
        let target = target.expect("list regressions").path();
        if !target.is_dir() {
            continue;
        }
        let name = target
            .file_name()
            .and_then(|n| n.to_str())
            .expect("target directory name")
            .to_string();
        let mut files: Vec<PathBuf> = fs::read_dir(&target)
            .expect("list regression files")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "bin"))
            .collect();
        files.sort();
        replayed_per_target.push((name.clone(), files.len()));
        for file in files {
            let input = fs::read(&file).expect("read regression input");
            let verdict = panic::catch_unwind(AssertUnwindSafe(|| match name.as_str() {
                "ws_event" => target_ws_event(&input),
                "rest_klines" => target_rest_klines(&input),
                "csv_line" => target_csv_line(&input),
                "csv_file" => target_csv_file(&input, &csv_path, true),
                "model_file" => target_model_file(&input),
                "model_payload" => target_model_payload(&input),
                "ensemble_payload" => target_ensemble_payload(&input, &ensemble_klines()),
                "ensemble_file" => target_ensemble_file(&input, &ensemble_klines()),
                "predictions_file" => {
                    target_predictions_file(&input, pred_dir.path(), &report_base(), true)
                }
                "ensemble_jsonl" => target_ensemble_jsonl(&input, &report_base(), true),
                other => panic!("unknown fuzz target directory {other}"),
            }));
            let stem = file
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            match verdict {
                Ok(Err(why)) => {
                    if let Some((_, expected)) = EXPECTED_REFUSALS
                        .iter()
                        .find(|(input, _)| *input == format!("{name}/{stem}"))
                    {
                        if !why.contains(expected) {
                            wrong.push(format!(
                                "{}: refused with {why:?}, expected {expected:?}",
                                file.display()
                            ));
                        }
                        checked.push(format!("{name}/{stem}"));
                    }
                }
                // The lenient readers of `report` keep what they can read of a damaged file.
                Ok(Ok(_)) if LENIENT.contains(&name.as_str()) => {}
                // Checksummed files with inconsistent scores load and run (their figures stay
                // in range) rather than being refused.
                Ok(Ok(_)) if ACCEPTED.contains(&format!("{name}/{stem}").as_str()) => {}
                Ok(Ok(v)) => panic!("{} is accepted ({v}), expected a refusal", file.display()),
                Err(_) => panic!("{} still panics", file.display()),
            }
        }
    }
    for (target, committed) in COMMITTED_REGRESSIONS {
        let replayed = replayed_per_target
            .iter()
            .find(|(name, _)| name == target)
            .map_or(0, |(_, n)| *n);
        assert!(
            replayed >= committed,
            "{target}: replayed {replayed} regression inputs, {committed} are committed"
        );
    }
    assert!(
        wrong.is_empty(),
        "regression inputs refused for another reason than the check they guard:\n{}",
        wrong.join("\n")
    );
    for (input, _) in EXPECTED_REFUSALS {
        assert!(
            checked.iter().any(|c| c == input),
            "{input}: the committed regression input was not replayed"
        );
    }
    eprintln!("replayed regression inputs: {replayed_per_target:?}");
}

/// The ensemble checks the fuzzer once found missing, rebuilt on a real v4 payload (the
/// committed regression inputs predate the v4 layout): a configuration whose buffer sizes
/// overflow the learner, and a member whose model is of another kind (the GRU's network in the
/// LSTM member, which would read its parameters with the wrong layout). Each is refused with
/// its own message, naming the file and what to do.
#[test]
fn ensemble_checks_refuse_what_the_fuzzer_found() {
    let path = Path::new("models/Ensembled/EnsembleModel.bin");
    let decode = |saved: &SavedEnsemble| {
        let payload = postcard::to_allocvec(saved).expect("encode");
        let bytes = frame_as(TAG_ENSEMBLE, persist::ENSEMBLE_FILE_VERSION, &payload);
        persist::decode_ensemble(path, &bytes)
    };
    let seed = &ensemble_payload_seeds()[0];
    let load = || {
        let bytes = frame_as(TAG_ENSEMBLE, persist::ENSEMBLE_FILE_VERSION, seed);
        persist::decode_ensemble(path, &bytes).expect("the seed loads")
    };
    decode(&load()).expect("re-encoded unchanged, it loads");
    let refused = |saved: &SavedEnsemble, needle: &str| {
        let err = decode(saved).expect_err(needle).to_string();
        for part in [needle, "EnsembleModel.bin", "klinecast stream"] {
            assert!(err.contains(part), "{part:?} missing from {err}");
        }
    };
    for huge in [usize::MAX, 1 << 40, 10_000_001] {
        // The configuration changes only through a validating call, so the bad one is written
        // into the payload: postcard writes the fields in order, `as_of_open_time` and then the
        // ensemble, whose first field is its configuration.
        let saved = load();
        let head = postcard::to_allocvec(&saved.as_of_open_time).expect("encode");
        let config = postcard::to_allocvec(saved.ensemble.config()).expect("encode");
        let payload = postcard::to_allocvec(&saved).expect("encode");
        assert_eq!(
            &payload[head.len()..head.len() + config.len()],
            &config[..],
            "the configuration follows as_of_open_time"
        );
        let bad = EnsembleConfig {
            refit_rows: huge,
            ..saved.ensemble.config().clone()
        };
        let mut edited = head.clone();
        edited.extend(postcard::to_allocvec(&bad).expect("encode"));
        edited.extend(&payload[head.len() + config.len()..]);
        let bytes = frame_as(TAG_ENSEMBLE, persist::ENSEMBLE_FILE_VERSION, &edited);
        let err = persist::decode_ensemble(path, &bytes)
            .expect_err("an out-of-range configuration")
            .to_string();
        for part in [
            "the configuration is out of range",
            "EnsembleModel.bin",
            "klinecast stream",
        ] {
            assert!(err.contains(part), "{part:?} missing from {err}");
        }
    }
    let mut saved = load();
    let recurrent: Vec<usize> = (0..saved.ensemble.members.len())
        .filter(|&i| {
            saved.ensemble.members[i]
                .model
                .as_ref()
                .is_some_and(|m| m.as_rnn().is_some())
        })
        .collect();
    assert_eq!(recurrent.len(), 2, "the GRU and the LSTM");
    let gru = saved.ensemble.members[recurrent[0]].model.clone();
    saved.ensemble.members[recurrent[1]].model = gru;
    refused(&saved, "its kind and its model differ");
}

/// Length prefixes far beyond the input (a payload length of 2^60 in the frame, a Vec length of
/// 2^28 and 2^40 inside a payload with a valid checksum) are refused without allocating for
/// them: the check runs in a child process whose address space is capped at 1 GiB, where a 2 GiB
/// allocation would abort it.
#[test]
fn huge_length_prefixes_are_refused_without_allocating() {
    // Under emulation (the aarch64 suite under qemu-user, see tests/common) the host cannot
    // exec this test binary through `sh`, and qemu itself reserves more than 1 GiB of address
    // space: the same refusals are checked in-process there, without the cap.
    let emulated = std::env::var("KLINECAST_TEST_RUNNER").is_ok_and(|r| !r.trim().is_empty());
    if std::env::var_os("KLINECAST_FUZZ_ALLOC_CHILD").is_some() || emulated {
        huge_length_checks();
        return;
    }
    let exe = std::env::current_exe().expect("test executable");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 1048576 && exec \"$0\" --exact huge_length_prefixes_are_refused_without_allocating --test-threads=1")
        .arg(&exe)
        .env("KLINECAST_FUZZ_ALLOC_CHILD", "1")
        .output()
        .expect("run the capped child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the capped child failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // `--exact` with a name that matches nothing runs 0 tests and succeeds: the child must
    // have run this very test.
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "the capped child did not run the check: {stdout}"
    );
}

fn huge_length_checks() {
    let path = Path::new("huge.bin");
    let good = model_file_seeds().swap_remove(0);
    // Frame length field: 2^60.
    let mut bytes = good.clone();
    bytes[16..24].copy_from_slice(&(1u64 << 60).to_le_bytes());
    let err = persist::decode_trained(path, &bytes).expect_err("2^60 payload length refused");
    assert!(
        matches!(err, persist::PersistError::Truncated { .. }),
        "{err}"
    );
    // Payload: kind Linear (0), spec {version 1, horizon 1}, then the scaler's `mean` length.
    for len in [1u64 << 28, 1 << 40, u64::MAX] {
        let mut payload = vec![0u8, 1, 1];
        let mut value = len;
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                payload.push(byte);
                break;
            }
            payload.push(byte | 0x80);
        }
        payload.extend_from_slice(&[0u8; 64]);
        let err =
            persist::decode_trained(path, &frame(&payload)).expect_err("huge vec length refused");
        assert!(
            matches!(err, persist::PersistError::Corrupt { .. }),
            "{len}: {err}"
        );
    }
}
