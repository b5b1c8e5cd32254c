//! The upgrade from the single-symbol layout ([`Legacy`]: `models/Trained`, `models/Ensembled`,
//! `data/Buffer_<window>.csv`, `data/predictions.csv`, `log/ensemble.jsonl`, `log/ensemble.log`)
//! to the many-symbols one ([`SymbolLayout`]): the old files are moved into one symbol's
//! folders, once. I/O only; which symbol owns the old files is decided by the pure
//! [`choose_owner`].
//!
//! **Crash safety.** Every move is one `rename` within the same directory tree (atomic), so a
//! file or folder is either at its old place or at its new one, whole. A run cut between two
//! moves leaves the rest at the old places, and the next [`adopt_legacy`] moves those: the
//! upgrade completes on the next start. Nothing is overwritten: an old file whose new place is
//! already taken (a symbol trained or streamed in the new layout meanwhile) stays where it is,
//! and the returned line says so.
//!
//! **Which symbol owns the old files** ([`legacy_owner`]): the one symbol when one is given;
//! with several, the symbol the old trained models record (the `<SYMBOL>_<interval>.csv` they
//! were trained on) when it is one of them; else the only kline store of the given symbols in
//! the data directory; else nobody (the old files stay, and the reason says to start once with
//! `--symbol X`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::kline::{Interval, Symbol};
use crate::layout::{Dirs, Legacy, SymbolLayout};
use crate::models::ModelKind;
use crate::{fsutil, log, persist, store};

/// The per-window text log beside `ensemble.jsonl` (one per symbol, like it).
const ENSEMBLE_LOG_FILE: &str = "ensemble.log";
const TRAINED_DIR: &str = "Trained";
const ENSEMBLED_DIR: &str = "Ensembled";

/// One old path and its new place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub from: PathBuf,
    pub to: PathBuf,
}

/// Every move of the upgrade for `layout` (a buffer of `window` klines), whether or not the old
/// file exists. The logs move with their rotated copies (`.1`, `.2`).
pub fn moves(dirs: &Dirs, layout: &SymbolLayout, window: usize) -> Vec<Move> {
    let legacy = Legacy::new(dirs);
    let mv = |from: PathBuf, to: PathBuf| Move { from, to };
    let mut list = vec![
        mv(
            legacy.models.join(TRAINED_DIR),
            layout.models.join(TRAINED_DIR),
        ),
        mv(
            legacy.models.join(ENSEMBLED_DIR),
            layout.models.join(ENSEMBLED_DIR),
        ),
        mv(legacy.buffer(window), layout.buffer(window)),
        mv(legacy.predictions.clone(), layout.predictions()),
    ];
    let logs = [
        (legacy.window_log.clone(), layout.window_log()),
        (
            dirs.log.join(ENSEMBLE_LOG_FILE),
            layout.log.join(ENSEMBLE_LOG_FILE),
        ),
    ];
    for (from, to) in logs {
        for n in (1..=log::DEFAULT_KEEP).rev() {
            list.push(mv(log::numbered(&from, n), log::numbered(&to, n)));
        }
        list.push(mv(from, to));
    }
    list
}

/// Moves the single-symbol installation in `dirs` into `layout`'s folders (see the module doc),
/// keeping a buffer of `window` klines. Returns the line to log when anything was moved or left
/// in place, `None` when there was nothing of the old layout (every start after the first).
/// An error names the file that could not be moved and what to do; whatever was moved before it
/// stays moved, and the next call goes on from there.
pub fn adopt_legacy(
    dirs: &Dirs,
    layout: &SymbolLayout,
    window: usize,
) -> Result<Option<String>, Error> {
    // A `train` cut between its two renames left `Trained.old` without `Trained`: make it whole
    // first, so that the set moves as one folder (and a leftover `Trained.new` goes).
    persist::recover_trained_set(&dirs.models).map_err(|e| {
        Error::io(
            format!(
                "repairing the old trained set in {} before moving it",
                dirs.models.display()
            ),
            e,
        )
    })?;
    let mut moved = Vec::new();
    let mut kept = Vec::new();
    for Move { from, to } in moves(dirs, layout, window) {
        if fs::symlink_metadata(&from).is_err() {
            continue;
        }
        if fs::symlink_metadata(&to).is_ok() {
            kept.push(format!("{} ({} exists)", from.display(), to.display()));
            continue;
        }
        move_one(&from, &to).map_err(|e| {
            Error::io(
                format!(
                    "moving {} to {} (the upgrade to one folder per symbol; the next start goes \
                     on from here, or move it yourself)",
                    from.display(),
                    to.display()
                ),
                e,
            )
        })?;
        moved.push(format!("{} -> {}", from.display(), to.display()));
    }
    if moved.is_empty() && kept.is_empty() {
        return Ok(None);
    }
    let mut line = format!(
        "upgrade to one folder per symbol: {} {}'s files",
        if moved.is_empty() { "kept" } else { "moved" },
        folder_label(layout)
    );
    if !moved.is_empty() {
        line.push_str(&format!(": {}", moved.join(", ")));
    }
    if !kept.is_empty() {
        line.push_str(&format!(
            "; left in place, their new place being taken: {} (move or delete them yourself)",
            kept.join(", ")
        ));
    }
    Ok(Some(line))
}

fn folder_label(layout: &SymbolLayout) -> String {
    format!("{} {}", layout.symbol, layout.interval)
}

/// Renames `from` to `to` (creating `to`'s folder) and makes both directory entries durable.
fn move_one(from: &Path, to: &Path) -> io::Result<()> {
    let to_dir = fsutil::parent_dir(to);
    fs::create_dir_all(&to_dir)?;
    fs::rename(from, to)?;
    fsutil::sync_dir(&to_dir)?;
    fsutil::sync_dir(&fsutil::parent_dir(from))
}

/// Who owns the old single-symbol files, as [`legacy_owner`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// No file of the old layout is there.
    Nothing,
    Symbol(Symbol),
    /// Old files are there, but none of the given symbols can be told to own them: why.
    Undecided(String),
}

/// True when any file or folder of the old layout is in `dirs`.
pub(crate) fn has_legacy(dirs: &Dirs) -> bool {
    let legacy = Legacy::new(dirs);
    let buffers = fs::read_dir(&dirs.data).ok().is_some_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("Buffer_") && name.ends_with(".csv")
        })
    });
    buffers
        || [
            legacy.models.join(TRAINED_DIR),
            legacy.models.join("Trained.old"),
            legacy.models.join(ENSEMBLED_DIR),
            legacy.predictions,
            legacy.window_log,
        ]
        .iter()
        .any(|p| p.exists())
}

/// The symbol that owns the old files in `dirs`, among `symbols` at `interval` (see the module
/// doc for the rule). Only reads.
pub fn legacy_owner(dirs: &Dirs, symbols: &[Symbol], interval: Interval) -> Owner {
    if !has_legacy(dirs) {
        return Owner::Nothing;
    }
    let stores: Vec<Symbol> = symbols
        .iter()
        .filter(|s| store::kline_path(&dirs.data, s, interval).is_file())
        .cloned()
        .collect();
    match choose_owner(symbols, recorded_symbol(dirs, interval), &stores) {
        Ok(symbol) => Owner::Symbol(symbol),
        Err(why) => Owner::Undecided(why),
    }
}

/// The symbol the old trained models were trained on, from the first model file that loads
/// (`<SYMBOL>_<interval>.csv` at `interval`).
fn recorded_symbol(dirs: &Dirs, interval: Interval) -> Option<Symbol> {
    let set = persist::read_trained_set(&dirs.models, |dir| {
        ModelKind::ALL
            .iter()
            .find_map(|kind| persist::load_trained(&persist::trained_file(dir, *kind)).ok())
    })?;
    let (symbol, at) = store::parse_file_name(Path::new(&set.meta.data_file)).ok()?;
    (at == interval).then_some(symbol)
}

/// The owner from the facts: the one `given` symbol; else `recorded` (the old models' symbol)
/// if given; else the only given symbol with a store (`stores`). The error says why none is.
pub(crate) fn choose_owner(
    given: &[Symbol],
    recorded: Option<Symbol>,
    stores: &[Symbol],
) -> Result<Symbol, String> {
    if let [one] = given {
        return Ok(one.clone());
    }
    if let Some(symbol) = recorded.filter(|s| given.contains(s)) {
        return Ok(symbol);
    }
    match stores {
        [one] => Ok(one.clone()),
        _ => Err(format!(
            "the files of the single-symbol layout (models/Trained, data/predictions.csv, …) do \
             not say which of {} they belong to{}; start once with --symbol SYMBOL to move them \
             into that symbol's folders",
            given
                .iter()
                .map(Symbol::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            if stores.is_empty() {
                ", and none of them has a kline store".to_string()
            } else {
                format!(" ({} have kline stores)", stores.len())
            }
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(s: &str) -> Symbol {
        Symbol::parse(s).expect("symbol")
    }

    #[test]
    fn the_owner_is_the_one_symbol_then_the_recorded_one_then_the_only_store() {
        let (btc, eth, xrp) = (sym("BTCUSDT"), sym("ETHUSDT"), sym("XRPUSDT"));
        assert_eq!(
            choose_owner(std::slice::from_ref(&eth), Some(btc.clone()), &[]),
            Ok(eth.clone())
        );
        let both = [btc.clone(), eth.clone()];
        assert_eq!(
            choose_owner(&both, Some(eth.clone()), &[btc.clone(), eth.clone()]),
            Ok(eth.clone())
        );
        // A recorded symbol that is not streamed owns nothing here: the only store decides.
        assert_eq!(
            choose_owner(&both, Some(xrp.clone()), std::slice::from_ref(&btc)),
            Ok(btc.clone())
        );
        let err = choose_owner(&both, None, &[btc.clone(), eth.clone()]).expect_err("undecided");
        assert!(
            err.contains("BTCUSDT, ETHUSDT") && err.contains("--symbol"),
            "{err}"
        );
        assert!(choose_owner(&both, None, &[]).is_err());
    }

    #[test]
    fn moves_cover_every_per_symbol_file_of_the_old_layout() {
        let dirs = Dirs {
            data: PathBuf::from("d"),
            models: PathBuf::from("m"),
            log: PathBuf::from("l"),
        };
        let layout = SymbolLayout::new(&dirs, &sym("ETHUSDT"), Interval::ONE_MINUTE);
        let list: Vec<(String, String)> = moves(&dirs, &layout, 15)
            .into_iter()
            .map(|m| (m.from.display().to_string(), m.to.display().to_string()))
            .collect();
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        for expected in [
            pair("m/Trained", "m/ETHUSDT_1m/Trained"),
            pair("m/Ensembled", "m/ETHUSDT_1m/Ensembled"),
            pair("d/Buffer_15.csv", "d/ETHUSDT_1m/Buffer_15.csv"),
            pair("d/predictions.csv", "d/ETHUSDT_1m/predictions.csv"),
            pair("l/ensemble.jsonl", "l/ETHUSDT_1m/ensemble.jsonl"),
            pair("l/ensemble.jsonl.2", "l/ETHUSDT_1m/ensemble.jsonl.2"),
            pair("l/ensemble.log.1", "l/ETHUSDT_1m/ensemble.log.1"),
        ] {
            assert!(list.contains(&expected), "{expected:?} in {list:?}");
        }
        assert_eq!(list.len(), 10);
    }
}
