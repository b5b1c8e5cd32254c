//! `klinecast train`: fits every model on a kline file ([`crate::train`]), then replaces the
//! saved model files, and prints the holdout scores (a table, or JSON with `--json`).

use std::time::Instant;

use crate::cli::TrainArgs;
use crate::error::Error;
use crate::models::ModelKind;
use crate::settings::LearnSettings;
use crate::train::{train_series, TrainOptions};
use crate::{persist, settings, store};

/// Runs `klinecast train`.
pub(crate) fn run(args: &TrainArgs) -> Result<(), Error> {
    let data_file = args.data.file_name().map_or_else(
        || args.data.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let clock = Instant::now();
    let mut series = store::load_series(&args.data)?;
    if let Some(max_rows) = args.max_rows {
        series.keep_last(max_rows);
    }
    // Features never read these columns: free them before the matrices are built.
    series.quote_volume = Vec::new();
    series.taker_buy_quote = Vec::new();
    eprintln!(
        "loaded {} klines from {} in {:.1} s",
        series.len(),
        args.data.display(),
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
    for path in persist::save_trained_set(&args.models_dir, &outcome.models)? {
        eprintln!("saved {}", path.display());
    }
    if args.json {
        println!("{}", outcome.report.to_json());
    } else {
        print!("{}", outcome.report.to_table());
    }
    Ok(())
}
