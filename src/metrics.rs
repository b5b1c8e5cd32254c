//! Forecast accuracy on prices: RMSE, MAE, MAPE and directional accuracy, accumulated one
//! forecast at a time. Pure.
//!
//! Directional accuracy counts only steps where the price moved (actual ≠ last) and the forecast
//! called a direction (forecast ≠ last); a hit is a forecast on the same side of the last close
//! as the actual. A forecast of "no change" is its own case, counted in `flat`: the naive
//! forecast never calls a direction, so its directional accuracy is undefined (shown as –), not
//! 0 %.

use serde::{Deserialize, Serialize};

/// Running sums for one forecaster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Accum {
    pub n: u64,
    pub(crate) sum_sq: f64,
    pub(crate) sum_abs: f64,
    pub(crate) sum_ape: f64,
    pub moves: u64,
    pub hits: u64,
    /// Moves for which the forecast was "no change".
    #[serde(default)]
    pub flat: u64,
}

impl Accum {
    /// Adds one forecast of `actual`, made when the last known close was `last`.
    ///
    /// Counts saturate: an accumulator read back from a saved ensemble may hold any value.
    pub fn add(&mut self, last: f64, forecast: f64, actual: f64) {
        let err = forecast - actual;
        self.n = self.n.saturating_add(1);
        self.sum_sq += err * err;
        self.sum_abs += err.abs();
        if actual != 0.0 {
            self.sum_ape += (err / actual).abs();
        }
        if actual != last {
            self.moves = self.moves.saturating_add(1);
            if forecast == last {
                self.flat = self.flat.saturating_add(1);
            } else if (forecast - last) * (actual - last) > 0.0 {
                self.hits = self.hits.saturating_add(1);
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn merge(&mut self, other: &Accum) {
        self.n = self.n.saturating_add(other.n);
        self.sum_sq += other.sum_sq;
        self.sum_abs += other.sum_abs;
        self.sum_ape += other.sum_ape;
        self.moves = self.moves.saturating_add(other.moves);
        self.hits = self.hits.saturating_add(other.hits);
        self.flat = self.flat.saturating_add(other.flat);
    }

    pub fn rmse(&self) -> f64 {
        self.ratio(self.sum_sq).sqrt()
    }

    pub fn mae(&self) -> f64 {
        self.ratio(self.sum_abs)
    }

    /// Mean absolute percentage error, in percent.
    pub fn mape(&self) -> f64 {
        100.0 * self.ratio(self.sum_ape)
    }

    /// Share of the moves whose direction the forecast called correctly, among the moves for
    /// which it called one, in [0, 1]; NaN when it never called a direction on a move.
    pub fn directional(&self) -> f64 {
        // Clamped: counts read back from a damaged (checksummed) file need not be consistent.
        let called = self.moves.saturating_sub(self.flat);
        if called == 0 {
            f64::NAN
        } else {
            self.hits.min(called) as f64 / called as f64
        }
    }

    #[cfg(test)]
    /// Share of the moves for which the forecast was "no change", in [0, 1].
    pub(crate) fn flat_share(&self) -> f64 {
        if self.moves == 0 {
            f64::NAN
        } else {
            self.flat.min(self.moves) as f64 / self.moves as f64
        }
    }

    fn ratio(&self, sum: f64) -> f64 {
        if self.n == 0 {
            f64::NAN
        } else {
            sum / self.n as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (fuzz target ensemble_payload, tests/fuzz-regressions/ensemble_payload/
    /// 97f510558edeeeaa.bin): a checksummed ensemble file whose scores hold more "no change"
    /// forecasts than moves made `directional` subtract with overflow. Inconsistent or extreme
    /// counts give values in range, never a panic.
    #[test]
    fn inconsistent_or_extreme_counts_stay_in_range() {
        let odd = Accum {
            n: u64::MAX,
            moves: 3,
            flat: 5,
            hits: 9,
            ..Accum::default()
        };
        assert!(odd.directional().is_nan());
        assert_eq!(odd.flat_share(), 1.0);
        let many_hits = Accum {
            moves: 4,
            flat: 1,
            hits: 9,
            ..Accum::default()
        };
        assert_eq!(many_hits.directional(), 1.0);
        let mut sum = odd;
        sum.merge(&odd);
        sum.add(1.0, 2.0, 3.0);
        assert_eq!((sum.n, sum.moves, sum.hits), (u64::MAX, 7, 19));
    }

    #[test]
    fn exact_values() {
        let mut a = Accum::default();
        a.add(100.0, 101.0, 102.0); // err -1, up & up: hit
        a.add(102.0, 103.0, 101.0); // err +2, up vs down: miss
        a.add(101.0, 101.0, 101.0); // err 0, no move
        assert_eq!(a.n, 3);
        assert!((a.rmse() - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((a.mae() - 1.0).abs() < 1e-12);
        let mape = 100.0 * (1.0 / 102.0 + 2.0 / 101.0) / 3.0;
        assert!((a.mape() - mape).abs() < 1e-12);
        assert_eq!((a.moves, a.hits), (2, 1));
        assert_eq!(a.directional(), 0.5);
        let mut b = Accum::default();
        b.merge(&a);
        assert_eq!(a, b);
        assert!(Accum::default().rmse().is_nan());
    }

    /// Regression: a forecast of "no change" is its own case. The naive forecast calls no
    /// direction, so its directional accuracy is undefined (shown as –), not 0 %, and a
    /// forecaster that is sometimes flat is judged on the moves it called.
    #[test]
    fn no_change_is_its_own_case() {
        let mut a = Accum::default();
        for (last, actual) in [(1.0, 2.0), (2.0, 1.5), (1.5, 1.6)] {
            a.add(last, last, actual);
        }
        assert!(a.directional().is_nan());
        assert_eq!((a.moves, a.flat, a.flat_share()), (3, 3, 1.0));
        a.add(1.6, 1.7, 1.8); // called up, went up: a hit
        a.add(1.8, 1.7, 1.9); // called down, went up: a miss
        assert_eq!(a.directional(), 0.5);
        assert_eq!(a.flat_share(), 0.6);
    }
}
