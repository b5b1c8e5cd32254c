//! `klinecast backtest`: loads a kline CSV (its last `--max-rows`), runs the backtest
//! ([`crate::backtest`]) and prints the final scoreboard (text, or one JSON object with
//! `--json`); with `--html`, writes its page ([`crate::page::backtest`]), and with
//! `--predictions` every scored forecast in the `predictions.csv` layout. No network; those two
//! are the only files written.

use crate::backtest::{backtest, Backtest, BacktestConfig, BacktestSummary, Progress};
use crate::cli::BacktestArgs;
use crate::ensemble::report::scoreboard_table;
use crate::error::Error;
use crate::fsutil;
use crate::live::predictions;
use crate::page::backtest::{pct, price, thirds};
use crate::{page, store};

/// Runs `klinecast backtest`.
pub(crate) fn run(args: &BacktestArgs) -> Result<(), Error> {
    let mut series = store::load_series(&args.data)?;
    if let Some(max) = args.max_rows {
        let n = series.len();
        if n > max {
            series = series.slice(n - max..n);
        }
    }
    crate::corr::attach(&mut series, &args.corr)?;
    let mut progress = Progress::new();
    let config = BacktestConfig {
        data: args.data.clone(),
        train_frac: args.train_frac,
        holdout: args.holdout,
        learn: args.learn.clone(),
        models: args.models.clone(),
    };
    let Backtest { summary, run } = backtest(&config, &series, &mut progress)?;
    if let Some(out) = &args.predictions {
        std::fs::create_dir_all(fsutil::parent_dir(out))
            .and_then(|()| {
                fsutil::write_atomic(out, predictions::to_csv(&run.forecasts).as_bytes())
            })
            .map_err(|e| Error::io(format!("writing {}", out.display()), e))?;
        progress.note(&format!("wrote {}", out.display()));
    }
    if let Some(out) = &args.html {
        page::write(out, &page::backtest::page(&summary, &run, args.hours))?;
        progress.note(&format!("wrote {}", out.display()));
    }
    if args.json {
        let json = serde_json::to_string(&summary)
            .map_err(|e| Error::Data(format!("cannot format the result as JSON: {e}")))?;
        println!("{json}");
    } else {
        print!("{}", summary_text(&summary));
    }
    Ok(())
}

/// The readable result.
fn summary_text(s: &BacktestSummary) -> String {
    let mut out = format!(
        "backtest {}: {} rows ({} ms klines); trained on the first {}, warmed up on {}, \
         replayed {} in {} windows of {} (refit on {} rows, {} generations, seed {})\n",
        s.data,
        s.rows,
        s.interval_ms,
        s.train_rows,
        s.warm_up_rows,
        s.replay_rows,
        s.windows,
        s.window,
        s.refit_rows,
        s.generations,
        s.seed
    );
    out.push_str(&format!(
        "final pool: {} members, {:.1} MB saved\n",
        s.pool_size,
        s.ensemble_bytes as f64 / 1e6
    ));
    if s.failed_refits > 0 || s.gaps > 0 {
        out.push_str(&format!(
            "{} refits failed; {} gaps, {} forecasts dropped\n",
            s.failed_refits, s.gaps, s.dropped_forecasts
        ));
    }
    out.push_str(&scoreboard_table(&s.scoreboard));
    out.push_str(&format!(
        "\ncombiners (the ensemble uses {}), each scored on every forecast:\n",
        s.combiner
    ));
    out.push_str(&scoreboard_table(&s.combiners));
    out.push_str("\nexperts (ML-Poly): rounds, regret, weight\n");
    for e in &s.experts {
        out.push_str(&format!(
            "  {:<22} {:>7} {:>+12.4e} {:>7.3}\n",
            e.label, e.rounds, e.regret, e.weight
        ));
    }
    let iv = &s.intervals;
    out.push_str(&format!(
        "\nintervals ({:.0} % nominal, {} forecasts): coverage {} (by volatility third {}), \
         mean width {}, interval score {}\nstatic baseline: coverage {} (by third {}), mean \
         width {}, interval score {}; gain {}\n",
        100.0 * iv.nominal,
        iv.n,
        pct(iv.coverage),
        thirds(&iv.coverage_by_third),
        price(iv.mean_width),
        price(iv.interval_score),
        pct(iv.static_coverage),
        thirds(&iv.static_coverage_by_third),
        price(iv.static_mean_width),
        price(iv.static_interval_score),
        pct(iv.gain_vs_static),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backtest::tests::sample_summary;

    #[test]
    fn summary_text_lists_the_scoreboard() {
        let summary = sample_summary();
        let text = summary_text(&summary);
        assert!(text.starts_with(
            "backtest x.csv: 100 rows (60000 ms klines); trained on the first 40, warmed up on 10, \
             replayed 50 in 3 windows of 15 (refit on 300 rows, 8 generations, seed 1)\nfinal pool: 6 members, \
             0.0 MB saved\n1 refits failed"
        ));
        assert!(text.contains("\nnaive "), "{text}");
        assert!(
            text.contains("combiners (the ensemble uses ml-poly)"),
            "{text}"
        );
        assert!(text.contains("coverage 100.00 %"), "{text}");
        assert!(text.contains("gain 20.00 %"), "{text}");
        let json = serde_json::to_string(&summary).expect("json");
        let back: BacktestSummary = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, summary);
    }
}
