//! Recurrent members (GRU, LSTM) in the ensemble: their forecasts from sequences of feature
//! rows, and their online learning. Pure: no I/O, no clock.
//!
//! A row model forecasts from the feature row at `t`; a recurrent model (see
//! [`crate::models::rnn`]) from the last `seq_len` rows `t−seq_len+1 ..= t`, each scaled by the
//! member's scaler ([`sequence_forecast`]; rows come from [`FeatureSource::rows`]). A member
//! abstains until all of them exist (feature warm-up plus `seq_len − 1` klines), and
//! [`Ensemble::max_warmup`] counts those rows so the learner's history always holds them.
//!
//! Recurrent members are never refitted per window (a fit takes tens of seconds, see
//! [`crate::models::ModelKind::GENERATION`]). Instead, after each window
//! ([`super::learner::Learner::end_window_with`]) [`Ensemble::online_update`] takes
//! [`ONLINE_STEPS`] Adam steps ([`crate::models::rnn::Rnn::update`]) on the sequences ending at
//! the window's new rows, whose targets have just become known (prequential: each of those
//! forecasts was scored before its close was learnt from).
//!
//! Persistence: a trained recurrent member keeps learning, so unlike the other trained members
//! its model (weights and Adam state, ≈ 110–145 KiB) is saved in the ensemble file (see the
//! `Serialize` impl of [`Member`]). On load, [`Ensemble::attach_trained`] leaves it in place as
//! long as `Trained/` holds the model it started from (same `source`); after a new
//! `klinecast train` it is replaced like every trained member.

use std::ops::Range;

use nalgebra::{DMatrix, DVector};

use super::{Ensemble, FeatureSource, Member};
use crate::features::FeatureSpec;
use crate::kline::Series;

/// Adam steps per window on the window's new sequences.
pub const ONLINE_STEPS: usize = 3;

/// Raw feature rows already built during one forecast, per (spec, length).
pub(super) type SequenceCache<'a> = Vec<(&'a FeatureSpec, usize, Option<Vec<Vec<f64>>>)>;

/// Member `m`'s forecast at `t` when its model is recurrent: its scaled rows
/// `t−seq_len+1 ..= t`, flattened oldest first. `None` before all of them exist, or for a
/// non-finite output. The raw rows are shared through `cache` with the other members of the
/// same feature spec.
pub(super) fn sequence_forecast<'a>(
    m: &'a Member,
    series: &Series,
    t: usize,
    features: &dyn FeatureSource,
    cache: &mut SequenceCache<'a>,
) -> Option<f64> {
    let model = m.model.as_ref()?;
    let n = model.seq_len();
    let pos = match cache
        .iter()
        .position(|(s, len, _)| *s == &m.spec && *len == n)
    {
        Some(pos) => pos,
        None => {
            cache.push((&m.spec, n, features.rows(&m.spec, series, t, n)));
            cache.len() - 1
        }
    };
    let raw = cache[pos].2.as_ref()?;
    let d = m.spec.n_features();
    let mut flat = Vec::with_capacity(n * d);
    for row in raw {
        match &m.scaler {
            Some(scaler) => flat.extend(scaler.transform_row(row)),
            None => flat.extend_from_slice(row),
        }
    }
    let p = model.predict_sequence(&flat, d);
    p.is_finite().then_some(p)
}

impl Ensemble {
    /// Online learning of the recurrent members: for each one, [`ONLINE_STEPS`] Adam steps on
    /// the sequences that end at series rows `rows` (rows whose target is known in `series`;
    /// typically the window's newly scored rows), the earlier `seq_len − 1` rows serving as
    /// context. A member whose rows or targets are not all available is skipped, and an update
    /// that would leave non-finite weights is undone. Returns the number of members updated
    /// (the ensemble's version increases when it is not 0).
    pub fn online_update(
        &mut self,
        series: &Series,
        rows: Range<usize>,
        features: &dyn FeatureSource,
    ) -> usize {
        let mut updated = 0;
        for m in &mut self.members {
            if update_member(m, series, rows.clone(), features) {
                updated += 1;
            }
        }
        if updated > 0 {
            self.version += 1;
        }
        updated
    }
}

/// [`Ensemble::online_update`] for one member; true when it learnt.
fn update_member(
    m: &mut Member,
    series: &Series,
    rows: Range<usize>,
    features: &dyn FeatureSource,
) -> bool {
    let Some(seq_len) = m.model.as_ref().and_then(|a| a.as_rnn()).map(|r| r.seq_len) else {
        return false;
    };
    if rows.is_empty() || rows.end > series.len() {
        return false;
    }
    let first = rows.start.saturating_sub(seq_len - 1);
    // Context rows before the feature warm-up are skipped; every end needs a full sequence.
    let raw: Vec<Option<Vec<f64>>> = (first..rows.end)
        .map(|i| features.row(&m.spec, series, i))
        .collect();
    let Some(skip) = raw.iter().position(Option::is_some) else {
        return false;
    };
    let raw: Vec<Vec<f64>> = match raw[skip..].iter().cloned().collect::<Option<Vec<_>>>() {
        Some(raw) => raw,
        None => return false,
    };
    let start = first + skip;
    if raw.len() < seq_len {
        return false;
    }
    let d = m.spec.n_features();
    let mut x = DMatrix::<f64>::zeros(raw.len(), d);
    for (i, row) in raw.iter().enumerate() {
        let scaled = match &m.scaler {
            Some(scaler) => scaler.transform_row(row),
            None => row.clone(),
        };
        if scaled.len() != d {
            return false;
        }
        for (j, v) in scaled.into_iter().enumerate() {
            x[(i, j)] = v;
        }
    }
    // Targets of the sequence ends (rows start+seq_len−1 ..); context rows get 0 (unused).
    let mut y = DVector::<f64>::zeros(raw.len());
    for i in seq_len - 1..raw.len() {
        match m.spec.target(series, start + i) {
            Some(v) => y[i] = v,
            None => return false,
        }
    }
    let Some(rnn) = m.model.as_mut().and_then(|a| a.as_rnn_mut()) else {
        return false;
    };
    let before = rnn.clone();
    match rnn.update(&x, &y, ONLINE_STEPS) {
        Ok(_) if rnn.net.theta.iter().all(|v| v.is_finite()) => true,
        _ => {
            *rnn = before;
            false
        }
    }
}
