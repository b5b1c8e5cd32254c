//! The upgrade from the single-symbol layout: an installation written by the real binary
//! (`train` into `models/Trained`) plus the stream's files at their old places is moved into
//! one symbol's folders once, byte for byte; an upgrade cut between two moves completes on the
//! next call; a new file already at its place is never overwritten.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

mod common;

use common::TempDir;

use klinecast::kline::{Interval, Symbol};
use klinecast::layout::{Dirs, SymbolLayout};
use klinecast::persist;
use klinecast::upgrade::{self, Owner};

/// Every file under `dir`, by path relative to it, with its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in fs::read_dir(&d).expect("list").flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let rel = path.strip_prefix(dir).expect("inside").to_path_buf();
                out.insert(rel, fs::read(&path).expect("read"));
            }
        }
    }
    out
}

/// A single-symbol installation of AVAXUSDT under `root`: its store, models trained by the
/// binary into `models/Trained`, and the stream's files at their old places.
fn old_installation(root: &Path) -> Dirs {
    let dirs = Dirs {
        data: root.join("data"),
        models: root.join("models"),
        log: root.join("log"),
    };
    fs::create_dir_all(&dirs.data).expect("mkdir");
    fs::create_dir_all(&dirs.log).expect("mkdir");
    let text = fs::read_to_string(common::SAMPLE).expect("sample");
    let store: String = text.lines().take(401).map(|l| format!("{l}\n")).collect();
    let store_path = dirs.data.join("AVAXUSDT_1m.csv");
    fs::write(&store_path, store).expect("write store");
    common::train(&store_path, &dirs.models, &["--svr-rows", "100"]);
    fs::create_dir_all(dirs.models.join("Ensembled")).expect("mkdir");
    fs::write(dirs.models.join("Ensembled/EnsembleModel.bin"), b"ensemble").expect("write");
    fs::write(dirs.data.join("Buffer_15.csv"), b"buffer").expect("write");
    fs::write(dirs.data.join("predictions.csv"), b"predictions").expect("write");
    fs::write(dirs.log.join("ensemble.jsonl"), b"{}\n").expect("write");
    fs::write(dirs.log.join("ensemble.jsonl.1"), b"{}\n{}\n").expect("write");
    fs::write(dirs.log.join("ensemble.log"), b"window 0\n").expect("write");
    fs::write(dirs.log.join("stream.log"), b"connected\n").expect("write");
    dirs
}

/// Where each old file is expected after the upgrade into `folder` (`AVAXUSDT_1m`).
fn expected_after(before: &BTreeMap<PathBuf, Vec<u8>>, folder: &str) -> BTreeMap<PathBuf, Vec<u8>> {
    before
        .iter()
        .map(|(path, bytes)| {
            let text = path.display().to_string();
            let moved = match text.split_once('/') {
                Some(("models", rest)) => format!("models/{folder}/{rest}"),
                Some(("data", "AVAXUSDT_1m.csv")) | Some(("log", "stream.log")) => text.clone(),
                Some((top, rest)) => format!("{top}/{folder}/{rest}"),
                None => text.clone(),
            };
            (PathBuf::from(moved), bytes.clone())
        })
        .collect()
}

/// Backs README claim [C21]: the single-symbol layout is moved into the symbol's folders once, byte for byte, and a cut upgrade completes on the next start.
#[test]
fn the_old_layout_is_moved_once_and_a_cut_upgrade_completes() {
    let tmp = TempDir::new("upgrade");
    let dirs = old_installation(tmp.path());
    let before = files(tmp.path());
    let symbol = Symbol::parse("AVAXUSDT").expect("symbol");
    let layout = SymbolLayout::new(&dirs, &symbol, Interval::ONE_MINUTE);
    // With several symbols the old models' own record (AVAXUSDT_1m.csv) names the owner.
    let eth = Symbol::parse("ETHUSDT").expect("symbol");
    assert_eq!(
        upgrade::legacy_owner(&dirs, &[eth.clone(), symbol.clone()], Interval::ONE_MINUTE),
        Owner::Symbol(symbol.clone())
    );

    let line = upgrade::adopt_legacy(&dirs, &layout, 15)
        .expect("upgrade")
        .expect("a line for the log");
    assert!(
        line.starts_with("upgrade to one folder per symbol: moved AVAXUSDT 1m's files: "),
        "{line}"
    );
    assert!(line.contains("Trained -> "), "{line}");
    let after = files(tmp.path());
    assert_eq!(after, expected_after(&before, "AVAXUSDT_1m"));
    assert_eq!(
        persist::load_all_trained(&layout.models)
            .expect("load")
            .len(),
        8
    );
    // Once: the next start finds nothing of the old layout.
    assert_eq!(
        upgrade::adopt_legacy(&dirs, &layout, 15).expect("again"),
        None
    );
    assert_eq!(
        upgrade::legacy_owner(&dirs, &[eth, symbol.clone()], Interval::ONE_MINUTE),
        Owner::Nothing
    );
    assert_eq!(files(tmp.path()), after);

    // Cut: a fresh old installation where the run stopped after its first two moves (each move
    // is one rename, so a cut leaves exactly such a state), and a train cut between its two
    // renames (Trained.old without Trained).
    let tmp = TempDir::new("upgrade-cut");
    let dirs = old_installation(tmp.path());
    let before = files(tmp.path());
    let layout = SymbolLayout::new(&dirs, &symbol, Interval::ONE_MINUTE);
    for m in upgrade::moves(&dirs, &layout, 15).iter().skip(1).take(2) {
        fs::create_dir_all(m.to.parent().expect("parent")).expect("mkdir");
        fs::rename(&m.from, &m.to).expect("first moves");
    }
    fs::rename(dirs.models.join("Trained"), dirs.models.join("Trained.old")).expect("cut train");
    let line = upgrade::adopt_legacy(&dirs, &layout, 15)
        .expect("upgrade")
        .expect("a line for the log");
    assert!(!line.contains("Ensembled ->"), "already moved: {line}");
    assert_eq!(files(tmp.path()), expected_after(&before, "AVAXUSDT_1m"));
    assert!(!dirs.models.join("Trained.old").exists());

    // A new file at its place is never overwritten: the old one stays and the line says so.
    fs::write(dirs.data.join("predictions.csv"), b"old again").expect("write");
    let line = upgrade::adopt_legacy(&dirs, &layout, 15)
        .expect("upgrade")
        .expect("a line");
    assert!(
        line.contains("left in place") && line.contains("predictions.csv"),
        "{line}"
    );
    assert_eq!(
        fs::read(layout.predictions()).expect("read"),
        b"predictions"
    );
    assert_eq!(
        fs::read(dirs.data.join("predictions.csv")).expect("read"),
        b"old again"
    );
}
