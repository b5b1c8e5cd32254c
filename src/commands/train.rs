//! `klinecast train`: fits every model on a kline file ([`crate::train`]), then replaces the
//! saved model files, and prints the holdout scores (a table, or JSON with `--json`). With
//! several symbols (`--symbols A,B`) each symbol's store is trained into its own folder, one
//! after the other; one symbol's failure is reported with its name and the others still train.

use std::time::Instant;

use crate::cli::{TrainArgs, TrainSet};
use crate::error::Error;
use crate::models::ModelKind;
use crate::settings::LearnSettings;
use crate::train::{train_series, TrainOptions};
use crate::{persist, settings, store};

/// Runs `klinecast train`: each set in turn. One set's error is returned as it is; with several,
/// each failure is printed with the set's name, the others go on, and the error at the end
/// names every set that failed.
pub(crate) fn run(args: &TrainArgs) -> Result<(), Error> {
    if let [set] = args.sets.as_slice() {
        return train_set(args, set);
    }
    let mut failed = Vec::new();
    for set in &args.sets {
        eprintln!("== {} ({}) ==", set.label, set.data.display());
        if let Err(e) = train_set(args, set) {
            eprintln!("klinecast: error: {}: {e}", set.label);
            failed.push(set.label.clone());
        }
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(Error::Data(format!(
        "training failed for {} of {} symbols: {} (each error is above); the others' models were \
         saved; fix what is named and train those again with --symbols",
        failed.len(),
        args.sets.len(),
        failed.join(", ")
    )))
}

/// Trains one set: loads its file, fits, saves `<models>/Trained` whole, prints the scores.
fn train_set(args: &TrainArgs, set: &TrainSet) -> Result<(), Error> {
    let data_file = set.data.file_name().map_or_else(
        || set.data.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let clock = Instant::now();
    let mut series = store::load_series(&set.data)?;
    if let Some(max_rows) = args.max_rows {
        series.keep_last(max_rows);
    }
    crate::corr::attach(&mut series, &set.corr)?;
    // Features never read these columns: free them before the matrices are built.
    series.quote_volume = Vec::new();
    series.taker_buy_quote = Vec::new();
    eprintln!(
        "loaded {} klines from {} in {:.1} s",
        series.len(),
        set.data.display(),
        clock.elapsed().as_secs_f64()
    );
    let learn = LearnSettings {
        threads: settings::fit_threads(),
        ..args.learn.clone()
    };
    let opts = TrainOptions::new(
        &learn,
        args.holdout,
        ModelKind::ALL.to_vec(),
        data_file.clone(),
    );
    let outcome = train_series(series, &opts, &mut |msg| eprintln!("{msg}"))?;
    // Only now, with every fit done, replace the set of model files as a whole.
    for path in persist::save_trained_set(&set.models, &outcome.models)? {
        eprintln!("saved {}", path.display());
    }
    if args.json {
        let mut json = outcome.report.to_json();
        if let Some(object) = json.as_object_mut() {
            object.insert("series".to_string(), set.label.clone().into());
        }
        println!("{json}");
    } else {
        if args.sets.len() > 1 {
            println!("{}:", set.label);
        }
        print!("{}", outcome.report.to_table());
    }
    Ok(())
}
