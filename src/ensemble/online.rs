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
pub(crate) const ONLINE_STEPS: usize = 3;

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
    pub(crate) fn online_update(
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

#[cfg(test)]
mod tests {
    use super::super::testutil::{synthetic, MINUTE};
    use super::super::{EnsembleConfig, SpecFeatures};
    use super::*;
    use crate::features::Scaler;
    use crate::models::linear::Linear;
    use crate::models::rnn::{Rnn, RnnParams};
    use crate::models::AnyModel;

    const SEQ: usize = 5;

    /// A small GRU fitted on the first 300 klines, its spec and scaler.
    fn small_gru(series: &Series) -> (FeatureSpec, Scaler, AnyModel) {
        let spec = FeatureSpec::default();
        let part = series.slice(0..300);
        let data = spec.dataset(&part, spec.row_range(part.len(), 0..part.len()));
        let scaler = Scaler::fit(&data.x);
        let x = scaler.transform(&data.x);
        let rnn = RnnParams {
            hidden: 4,
            seq_len: SEQ,
            max_epochs: 1,
            threads: 1,
            seed: 3,
            ..RnnParams::gru()
        }
        .fit(&x, &data.y)
        .expect("fit");
        (spec, scaler, AnyModel::Gru(rnn))
    }

    fn scaled_rows(spec: &FeatureSpec, scaler: &Scaler, s: &Series, r: Range<usize>) -> Vec<f64> {
        r.flat_map(|i| scaler.transform_row(&spec.row(s, i).expect("row")))
            .collect()
    }

    fn ensemble(spec: &FeatureSpec, scaler: &Scaler, model: &AnyModel) -> Ensemble {
        let linear = AnyModel::Linear(Linear {
            coef: vec![1e-4; spec.n_features()],
            intercept: 0.0,
        });
        let trained = vec![
            Member::trained(spec.clone(), Some(scaler.clone()), model.clone()).with_source("s"),
            Member::trained(spec.clone(), Some(scaler.clone()), linear).with_source("s"),
        ];
        Ensemble::new(EnsembleConfig::default(), trained, MINUTE).expect("ensemble")
    }

    fn gru_of(ens: &Ensemble) -> &Rnn {
        ens.members
            .iter()
            .find_map(|m| m.model.as_ref().and_then(|a| a.as_rnn()))
            .expect("a gru member")
    }

    /// Backs "a trained GRU/LSTM forecasts from the last seq_len scaled feature rows" and its
    /// warm-up.
    #[test]
    fn a_recurrent_member_forecasts_from_its_scaled_sequence() {
        let series = synthetic(400, 0.3, 0.001, 5);
        let (spec, scaler, model) = small_gru(&series);
        let ens = ensemble(&spec, &scaler, &model);
        let t = 350;
        let forecast = ens.forecast(&series, t, MINUTE);
        let flat = scaled_rows(&spec, &scaler, &series, t + 1 - SEQ..t + 1);
        let want = model.as_rnn().expect("gru").predict_sequence(&flat);
        let got = forecast
            .members
            .iter()
            .find(|m| m.label == "trained/gru")
            .expect("the gru forecasts")
            .log_return;
        assert_eq!(got.to_bits(), want.to_bits());
        // It needs the feature warm-up plus SEQ − 1 earlier rows; the linear member does not.
        let w = spec.warmup();
        assert_eq!(ens.max_warmup(&SpecFeatures), w + SEQ - 1);
        let labels = |t: usize| -> Vec<String> {
            ens.forecast(&series, t, MINUTE)
                .members
                .into_iter()
                .map(|m| m.label)
                .collect()
        };
        assert_eq!(labels(w + SEQ - 2), ["naive", "trained/linear"]);
        assert_eq!(
            labels(w + SEQ - 1),
            ["naive", "trained/gru", "trained/linear"]
        );
    }

    /// Backs "after each window the GRU/LSTM take a few Adam steps on the window's new
    /// sequences, and the updated weights are saved with the ensemble".
    #[test]
    fn online_updates_learn_the_new_rows_and_are_saved() {
        let series = synthetic(400, 0.3, 0.001, 6);
        let (spec, scaler, model) = small_gru(&series);
        let mut ens = ensemble(&spec, &scaler, &model);
        let version = ens.version;
        assert_eq!(ens.online_update(&series, 340..355, &SpecFeatures), 1);
        assert_eq!(ens.version, version + 1);
        // Exactly Rnn::update on rows 336..355 (4 rows of context) with their targets.
        let mut want = model.as_rnn().expect("gru").clone();
        let flat = scaled_rows(&spec, &scaler, &series, 336..355);
        let x = DMatrix::from_row_slice(19, spec.n_features(), &flat);
        let y = DVector::from_fn(19, |i, _| spec.target(&series, 336 + i).expect("target"));
        want.update(&x, &y, ONLINE_STEPS).expect("update");
        assert_eq!(gru_of(&ens), &want);
        assert_ne!(
            gru_of(&ens).net.theta,
            model.as_rnn().expect("gru").net.theta
        );
        // Row 399's target is not in the series: nothing learns, nothing changes.
        assert_eq!(ens.online_update(&series, 390..400, &SpecFeatures), 0);
        assert_eq!(ens.online_update(&series, 10..10, &SpecFeatures), 0);
        assert_eq!(ens.version, version + 1);

        // Saved: the updated GRU with its Adam state; the trained linear model is left out.
        let bytes = postcard::to_allocvec(&ens).expect("encode");
        let mut back: Ensemble = postcard::from_bytes(&bytes).expect("decode");
        back.check().expect("valid");
        assert_eq!(gru_of(&back), &want);
        let linear = |e: &Ensemble| {
            e.members
                .iter()
                .find(|m| m.label == "trained/linear")
                .and_then(|m| m.model.clone())
        };
        assert!(linear(&back).is_none());
        // Re-attaching the same trained models keeps the online-updated weights.
        let (_, _, original) = small_gru(&series);
        let fresh = ensemble(&spec, &scaler, &original);
        let trained: Vec<Member> = fresh.members.into_iter().skip(1).collect();
        assert!(back.attach_trained(trained).expect("attach"));
        assert_eq!(gru_of(&back), &want);
        assert!(linear(&back).is_some());
    }
}
