//! Process test of `klinecast demo`, the main job (README, "On a fresh machine"), on a small
//! slice of the real sample so that it stays quick in a debug build and under qemu: it runs
//! the real binary with the repository as its working directory and checks what it prints and
//! where its files go.

use std::collections::BTreeMap;
use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use klinecast::kline::CSV_HEADER;
use klinecast::store;

mod common;

use common::{klinecast_command, TempDir};

/// Rows of the slice: the demo's clock is at 2/3 of them (row 1000), the minimum it accepts.
const ROWS: usize = 1500;
/// Klines streamed: one window of 15, so one window refit and save happen.
const KLINES: usize = 15;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every file under `dir` (recursively): relative path -> (length, modification time, hash of
/// the content). An absent directory gives an empty map.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, Option<SystemTime>, u64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let meta = fs::symlink_metadata(&path).expect("metadata");
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            let mut hasher = DefaultHasher::new();
            fs::read(&path).expect("read a file").hash(&mut hasher);
            let rel = path.strip_prefix(dir).expect("under dir").to_path_buf();
            out.insert(rel, (meta.len(), meta.modified().ok(), hasher.finish()));
        }
    }
    out
}

/// The names at the top of the repository (a stray `log/` or `models/` would show here).
fn top_level() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(repo())
        .expect("list the repository")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Backs the README claims of "On a fresh machine": `demo` (the main job, offline, on the real
/// data) trains the five models on the history before its clock, runs the real `stream` code
/// against the replay server on 127.0.0.1, "prints each forecast as it is made and a
/// scoreboard at the end" with naive beside the ensemble, and "Its files go to a temporary
/// work directory, so `data/` and `models/` are left untouched". Run from the repository
/// root with its default work directory (under TMPDIR, pointed at this test's temp dir).
/// Backs README claim [C14]: demo, the main job, runs offline and leaves data/ and models/ untouched.
#[test]
fn demo_streams_prints_forecasts_and_a_scoreboard_and_leaves_the_repo_alone() {
    let tmp = TempDir::new("demo");
    let sample = store::load_klines(&repo().join("data/AVAXUSDT_1m.csv")).expect("the sample");
    let slice = &sample[..ROWS];
    let mut text = format!("{CSV_HEADER}\n");
    for k in slice {
        text.push_str(&k.to_csv_line());
        text.push('\n');
    }
    let input = tmp.path().join("input").join("AVAXUSDT_1m.csv");
    fs::create_dir_all(input.parent().expect("parent")).expect("mkdir");
    fs::write(&input, text).expect("write the slice");
    let scratch = tmp.path().join("tmp");
    fs::create_dir_all(&scratch).expect("mkdir");

    let (data_before, models_before, top_before) = (
        snapshot(&repo().join("data")),
        snapshot(&repo().join("models")),
        top_level(),
    );
    let out = klinecast_command()
        .current_dir(repo())
        .env("TMPDIR", &scratch)
        .args(["demo", "--data"])
        .arg(&input)
        .args(["--klines", &KLINES.to_string(), "--speed", "6000"])
        .output()
        .expect("run klinecast demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {stderr}"
    );

    // The repository's data/ and models/ (and its top level) are exactly as before.
    assert_eq!(snapshot(&repo().join("data")), data_before);
    assert_eq!(snapshot(&repo().join("models")), models_before);
    assert_eq!(top_level(), top_before);

    // Its files are in the default work directory, under TMPDIR.
    let work = stdout
        .lines()
        .find_map(|l| l.strip_prefix("work directory: "))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no work directory line: {stdout}"));
    assert!(work.starts_with(&scratch), "{}", work.display());
    let stored = store::load_klines(&work.join("data/AVAXUSDT_1m.csv")).expect("the demo store");
    assert_eq!(
        stored[..],
        slice[..1000 + KLINES],
        "the store: history + streamed"
    );
    for file in [
        "data/predictions.csv",
        "data/Buffer_15.csv",
        "models/Trained/linear.bin",
        "models/Trained/svr.bin",
        "models/Trained/knn.bin",
        "models/Trained/cart.bin",
        "models/Trained/forest.bin",
        "models/Trained/gbdt.bin",
        "models/Trained/gru.bin",
        "models/Trained/lstm.bin",
        "models/Ensembled/EnsembleModel.bin",
        "log/stream.log",
        "log/ensemble.log",
        "log/ensemble.jsonl",
    ] {
        assert!(
            work.join(file).is_file(),
            "{file} missing in {}",
            work.display()
        );
    }
    assert!(stdout.contains(&format!("remove them with: rm -r {}", work.display())));

    // One line per forecast, as it is scored: the streamed klines in order, with their close,
    // in columns aligned under one header, every price at the market's precision (AVAXUSDT's
    // klines are quoted to 3 decimals in the slice, padded to 4 in its text).
    let decimals = klinecast::kline::price_decimals(&slice[..1000]);
    assert_eq!(decimals, 3);
    let header = stdout
        .lines()
        .find(|l| l.starts_with("kline (UTC)"))
        .unwrap_or_else(|| panic!("no header: {stdout}"));
    let header_fields: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(
        header_fields,
        [
            "kline", "(UTC)", "close", "forecast", "naive", "90%", "lower", "90%", "upper", "in",
            "|", "rmse", "ens", "rmse", "naive"
        ]
    );
    let raw_lines: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            l.contains(" | ") && !l.starts_with("kline (UTC)") && !l.starts_with("  -- window")
        })
        .collect();
    // Aligned: every column ends where its header ends.
    let ends = |l: &str| -> Vec<usize> {
        let b = l.as_bytes();
        (1..=b.len())
            .filter(|&i| b[i - 1] != b' ' && (i == b.len() || b[i] == b' '))
            .collect()
    };
    let header_ends = ends(header);
    for l in &raw_lines {
        let e = ends(l);
        // The header's two-word names end once; a row's date and time end at 10 and 19.
        assert_eq!(e[..2], [10, 19], "{l}");
        assert_eq!(l.len(), header.len(), "{l}\n{header}");
        for end in &e[2..] {
            assert!(header_ends.contains(end), "{l}\n{header}");
        }
    }
    let forecast_lines: Vec<Vec<&str>> = raw_lines
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(forecast_lines.len(), KLINES, "{stdout}");
    for (fields, k) in forecast_lines.iter().zip(&slice[1000..]) {
        // date, time, close, forecast, naive, lower, upper, in/out, |, rmse ens, rmse naive
        assert_eq!(fields.len(), 11, "{fields:?}");
        assert_eq!(
            format!("{} {}", fields[0], fields[1]),
            klinecast::time::format_ms(k.open_time)
        );
        let close: f64 = k.close.parse().expect("the close");
        assert_eq!(fields[2], format!("{close:.3}"), "{fields:?}");
        for price in &fields[2..7] {
            let (_, frac) = price.split_once('.').expect("a decimal point");
            assert_eq!(frac.len(), decimals, "{fields:?}");
        }
        for v in [fields[3], fields[4], fields[9], fields[10]] {
            let v: f64 = v.parse().expect("a number");
            assert!(v.is_finite() && v >= 0.0, "{fields:?}");
        }
        // The prediction interval brackets the forecast, and says whether the close fell in it.
        let (lower, upper): (f64, f64) = (
            fields[5].parse().expect("lower"),
            fields[6].parse().expect("upper"),
        );
        let forecast: f64 = fields[3].parse().expect("forecast");
        let close: f64 = fields[2].parse().expect("close");
        assert!(lower <= forecast && forecast <= upper, "{fields:?}");
        let inside = close >= lower && close <= upper;
        assert_eq!(fields[7], if inside { "in" } else { "out" }, "{fields:?}");
    }
    assert!(
        stdout.contains(&format!("streamed {KLINES} klines")),
        "{stdout}"
    );
    assert!(stdout.contains("(1 windows)"), "{stdout}");

    // The scoreboard, with naive beside the ensemble and the five trained models.
    let board: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("scoreboard"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(
        board.first().is_some_and(|h| h.starts_with("forecaster")),
        "{stdout}"
    );
    let row = |label: &str| -> Vec<&str> {
        board
            .iter()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.first() == Some(&label))
            .unwrap_or_else(|| panic!("no {label} row in {board:#?}"))
    };
    let (ens, naive) = (row("ensemble"), row("naive"));
    assert_eq!(ens[1], KLINES.to_string());
    assert_eq!(naive[1], KLINES.to_string());
    assert_eq!(naive[6], "1.00000", "naive against itself");
    // The scoreboard's RMSEs (6 decimals) are the ones the last forecast line showed (at the
    // price decimals + 2).
    let last = forecast_lines.last().expect("a forecast line");
    for (board_rmse, line_rmse) in [(naive[2], last[10]), (ens[2], last[9])] {
        let (_, frac) = line_rmse.split_once('.').expect("a decimal point");
        assert_eq!(frac.len(), decimals + 2, "{line_rmse}");
        let (a, b): (f64, f64) = (
            board_rmse.parse().expect("a number"),
            line_rmse.parse().expect("a number"),
        );
        // Each is rounded once: they differ by at most the two half-units.
        let tol = 0.5e-6 + 0.5 * 10f64.powi(-(decimals as i32 + 2));
        assert!((a - b).abs() <= tol * 1.000_001, "{a} {b} {board:#?}");
    }
    for kind in ["linear", "svr", "knn", "cart", "forest"] {
        row(&format!("trained/{kind}"));
    }
}
