//! Helpers shared by the `rnn` and `train` benchmarks: command-line flags and seeded synthetic
//! 1m klines.

use klinecast::kline::{KlineValues, Series};
use klinecast::rng::Rng;

/// A random walk with volume, like 1m klines (the shape matters, not realism). The columns the
/// features never read (`quote_volume`, `taker_buy_quote`) are dropped, as `klinecast train`
/// does.
pub fn synthetic(n: usize, seed: u64) -> Series {
    let mut rng = Rng::new(seed);
    let mut series = Series::with_capacity(n);
    let mut close = 30_000.0;
    for i in 0..n {
        let open = close;
        close *= (0.002 * (rng.next_f64() - 0.5)).exp();
        let volume = (rng.next_f64() * 200.0).round() / 10.0;
        series.push(&KlineValues {
            open_time: 1_600_000_000_000 + i as i64 * 60_000,
            open,
            high: open.max(close) * (1.0 + 0.0005 * rng.next_f64()),
            low: open.min(close) * (1.0 - 0.0005 * rng.next_f64()),
            close,
            volume,
            close_time: 1_600_000_000_000 + i as i64 * 60_000 + 59_999,
            quote_volume: volume * close,
            trades: (rng.next_f64() * 300.0).floor(),
            taker_buy_base: volume * rng.next_f64(),
            taker_buy_quote: 0.0,
        });
    }
    series.quote_volume = Vec::new();
    series.taker_buy_quote = Vec::new();
    series
}

/// The command-line arguments after the program name.
pub struct Args(Vec<String>);

impl Args {
    pub fn from_env() -> Args {
        Args(std::env::args().skip(1).collect())
    }

    /// The argument after `flag`, if both are there.
    pub fn value(&self, flag: &str) -> Option<String> {
        self.0
            .iter()
            .position(|a| a == flag)
            .and_then(|i| self.0.get(i + 1))
            .cloned()
    }
}
