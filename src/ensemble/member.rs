//! The pool's members (naive, trained, window generations) and the experts they are grouped
//! into.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::features::{FeatureSpec, Scaler};
use crate::models::{AnyModel, ModelKind, Regressor};

use super::aggregate;
use super::config::EnsembleConfig;
use super::stats::MemberStats;

/// The feature rows a window generation was fitted on: `rows` consecutive series rows, the
/// first with open time `first_open_time`, the last with `last_open_time`. Kept in the
/// generation members' `source` (`rows <first>..=<last> (<rows>)`), so a loaded ensemble can
/// refit them from the same klines ([`learner::restore_generations`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GenerationRows {
    pub first_open_time: i64,
    pub last_open_time: i64,
    pub rows: usize,
}

impl GenerationRows {
    /// The text kept in [`Member::source`].
    pub(crate) fn to_source(self) -> String {
        format!(
            "rows {}..={} ({})",
            self.first_open_time, self.last_open_time, self.rows
        )
    }

    /// The inverse of [`GenerationRows::to_source`]; `None` for any other text.
    pub fn parse(source: &str) -> Option<GenerationRows> {
        let rest = source.strip_prefix("rows ")?;
        let (range, count) = rest.split_once(" (")?;
        let (first, last) = range.split_once("..=")?;
        let rows = count.strip_suffix(')')?.parse().ok()?;
        Some(GenerationRows {
            first_open_time: first.parse().ok()?,
            last_open_time: last.parse().ok()?,
            rows,
        })
    }
}

/// Where a member comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Origin {
    /// Fitted offline by `klinecast train` (models/Trained/).
    Trained,
    /// Fitted at the end of window generation N.
    Generation(u64),
    /// The naive forecast: next close = last close.
    Naive,
}

/// One forecaster in the pool.
///
/// Serialised without the model of a trained member: those live in `models/Trained/` and can
/// be large (a forest on a year of klines is tens of megabytes), so the saved ensemble keeps
/// only their identity (`source`) and statistics, and [`Ensemble::attach_trained`] puts the
/// models back after loading. A window generation is serialised without its model too: its
/// `source` names the feature rows it was fitted on ([`GenerationRows`]), and
/// [`learner::restore_generations`] refits it from the kline store after loading (eight
/// generations of six kinds are megabytes; rewriting them every window would cost the SD card
/// hundreds of megabytes a day). The saved file therefore stays small however big the models
/// are, and is cheap to rewrite every window. Only the recurrent trained members, which learn
/// online, are saved with their model.
#[derive(Debug, Clone, Deserialize)]
pub struct Member {
    /// Unique within its ensemble; forecasts refer to members by id.
    pub(crate) id: u64,
    /// `naive`, `trained/<kind>` or `gen<N>/<kind>`.
    pub(crate) label: String,
    pub(crate) origin: Origin,
    pub(crate) kind: Option<ModelKind>,
    pub(crate) spec: FeatureSpec,
    /// `None`: the model reads raw features.
    pub(crate) scaler: Option<Scaler>,
    /// `None` for the naive member, and for a trained member between loading a saved ensemble
    /// and [`Ensemble::attach_trained`] (it abstains until then).
    pub model: Option<AnyModel>,
    pub(crate) stats: MemberStats,
    /// What a trained member was built from (its model file's training range, rows and seed),
    /// so a re-attached model is known to be the same one; empty for other members.
    pub(crate) source: String,
}

/// The serialised form of a [`Member`]: field for field, with a trained member's model left out.
#[derive(Serialize)]
struct MemberOut<'a> {
    id: u64,
    label: &'a str,
    origin: &'a Origin,
    kind: &'a Option<ModelKind>,
    spec: &'a FeatureSpec,
    scaler: &'a Option<Scaler>,
    model: Option<&'a AnyModel>,
    stats: &'a MemberStats,
    source: &'a str,
}

impl Serialize for Member {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        MemberOut {
            id: self.id,
            label: &self.label,
            origin: &self.origin,
            kind: &self.kind,
            spec: &self.spec,
            scaler: &self.scaler,
            // A trained recurrent member learns online: its model is saved (see `online`).
            model: match self.origin {
                Origin::Trained if self.model.as_ref().is_some_and(|m| m.as_rnn().is_some()) => {
                    self.model.as_ref()
                }
                _ => None,
            },
            stats: &self.stats,
            source: &self.source,
        }
        .serialize(serializer)
    }
}

impl Member {
    /// A member trained offline; its id is assigned by [`Ensemble::new`].
    pub fn trained(spec: FeatureSpec, scaler: Option<Scaler>, model: AnyModel) -> Member {
        let kind = model.kind();
        let group = if spec.corr.is_empty() {
            ExpertGroup::Trained(kind)
        } else {
            ExpertGroup::TrainedCorr(kind)
        };
        Member {
            id: 0,
            label: group.to_string(),
            origin: Origin::Trained,
            kind: Some(kind),
            spec,
            scaler,
            model: Some(model),
            stats: MemberStats::default(),
            source: String::new(),
        }
    }

    /// Records what a trained member was built from (see [`Member::source`]).
    pub fn with_source(mut self, source: impl Into<String>) -> Member {
        self.source = source.into();
        self
    }

    pub(super) fn naive(spec: FeatureSpec) -> Member {
        Member {
            id: 0,
            label: "naive".to_string(),
            origin: Origin::Naive,
            kind: None,
            spec,
            scaler: None,
            model: None,
            stats: MemberStats::default(),
            source: String::new(),
        }
    }

    /// The expert the member belongs to, whose scoreboard group its lifetime errors add to;
    /// `None` only for a member without a kind that is not the naive (which no valid
    /// ensemble holds: such a member never forecasts).
    pub(crate) fn group(&self) -> Option<ExpertGroup> {
        match self.origin {
            Origin::Naive => Some(ExpertGroup::Naive),
            Origin::Trained if !self.spec.corr.is_empty() => {
                self.kind.map(ExpertGroup::TrainedCorr)
            }
            Origin::Trained => self.kind.map(ExpertGroup::Trained),
            Origin::Generation(_) => self.kind.map(ExpertGroup::Generations),
        }
    }

    /// The member's forecast of the log return from its raw feature row.
    pub(super) fn predict(&self, raw: Option<&[f64]>) -> Option<f64> {
        let Some(model) = &self.model else {
            // The naive member forecasts no change; a trained member whose model is not
            // attached (yet) abstains.
            return (self.origin == Origin::Naive).then_some(0.0);
        };
        let raw = raw?;
        let p = match &self.scaler {
            Some(scaler) => model.predict_row(&scaler.transform_row(raw)),
            None => model.predict_row(raw),
        };
        p.is_finite().then_some(p)
    }
}

/// One expert: a forecasting rule whose record accumulates across refits (`naive`,
/// `trained/<kind>`, `generations/<kind>`: the kind refitted every window, its forecast the mean
/// of the generations in the pool).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Expert {
    #[serde(rename = "label")]
    pub(crate) group: ExpertGroup,
    pub(crate) record: aggregate::PolyRecord,
    /// The expert's paired record against the naive (the LCB gate's statistics) with the
    /// gate's short memory, kept on every forecast it makes, awake or not: with `long_stats`
    /// it decides when the expert is awake ([`Expert::awake`]).
    pub(crate) stats: MemberStats,
    /// The same record with the gate's long memory ([`EnsembleConfig::gate_lambdas`]).
    pub(crate) long_stats: MemberStats,
    /// Its record in the combination expert's own ML-Poly, in which every expert that
    /// forecasts takes part, gate or no gate (the combination's own entry stays empty).
    pub(crate) all_record: aggregate::PolyRecord,
}

impl Expert {
    pub(crate) fn new(group: ExpertGroup) -> Expert {
        Expert {
            group,
            record: aggregate::PolyRecord::default(),
            stats: MemberStats::default(),
            long_stats: MemberStats::default(),
            all_record: aggregate::PolyRecord::default(),
        }
    }

    /// The gate on two time scales: the expert beats the naive by `z` standard errors of its
    /// paired record with the day's memory (a strong edge, seen within hours) or with the
    /// week's (a weak edge, 1–3 %, which needs thousands of forecasts). The naive is always
    /// awake. Whatever the gate says, ML-Poly's bound against the naive holds (a sleeping
    /// expert's regret does not move): the gate only keeps noise from costing regret.
    pub(crate) fn awake(&self, c: &EnsembleConfig) -> bool {
        self.group == ExpertGroup::Naive
            || self.stats.votes(c.z, c.min_scored)
            || self.long_stats.votes(c.z, c.min_scored)
    }

    /// Records one scored forecast of the expert: squared log-return errors of its forecast
    /// and of the naive, in both gate memories.
    pub(crate) fn record_gate(&mut self, c: &EnsembleConfig, sq_err: f64, naive_sq_err: f64) {
        let [short, long] = c.gate_lambdas;
        self.stats.record(short, sq_err, naive_sq_err);
        self.long_stats.record(long, sq_err, naive_sq_err);
    }
}

/// An expert's group: the naive forecast, one offline-trained kind, the window generations
/// of one kind (the kind refitted every window), or the combination of all the others.
/// `combination` is ML-Poly over every expert that forecasts, without the gate, with records
/// of its own ([`Expert::all_record`]): a mix of experts may beat the naive where none of them
/// does alone, and it is gated and weighed like any other expert. Its [`Display`](fmt::Display) is its label in
/// every file and report (`naive`, `trained/<kind>`, `generations/<kind>`); it is serialised
/// as that label, and text is parsed back ([`ExpertGroup::parse`]) only where it comes back
/// from a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExpertGroup {
    Naive,
    Trained(ModelKind),
    Generations(ModelKind),
    Combination,
    /// A trained member that also reads correlated symbols' features (`--corr`), beside its
    /// own-only kind in `Trained`.
    TrainedCorr(ModelKind),
}

impl ExpertGroup {
    /// The inverse of the label (`Display`); `None` for any other text.
    pub(crate) fn parse(text: &str) -> Option<ExpertGroup> {
        if text == "naive" {
            return Some(ExpertGroup::Naive);
        }
        if text == "combination" {
            return Some(ExpertGroup::Combination);
        }
        let (group, kind) = text.split_once('/')?;
        let kind = ModelKind::ALL.into_iter().find(|k| k.name() == kind)?;
        match group {
            "trained" => Some(ExpertGroup::Trained(kind)),
            "trained+corr" => Some(ExpertGroup::TrainedCorr(kind)),
            "generations" => Some(ExpertGroup::Generations(kind)),
            _ => None,
        }
    }

    /// The group of a member label read back from a file: `gen<N>/<kind>` is in
    /// `generations/<kind>`, `naive` and `trained/<kind>` are their own group.
    pub(crate) fn of_member_label(label: &str) -> Option<ExpertGroup> {
        match label.split_once('/') {
            Some((g, kind))
                if g.starts_with("gen") && g[3..].chars().all(|c| c.is_ascii_digit()) =>
            {
                ExpertGroup::parse(&format!("generations/{kind}"))
            }
            _ => ExpertGroup::parse(label),
        }
    }
}

impl fmt::Display for ExpertGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpertGroup::Naive => f.write_str("naive"),
            ExpertGroup::Trained(kind) => write!(f, "trained/{}", kind.name()),
            ExpertGroup::Generations(kind) => write!(f, "generations/{}", kind.name()),
            ExpertGroup::Combination => f.write_str("combination"),
            ExpertGroup::TrainedCorr(kind) => write!(f, "trained+corr/{}", kind.name()),
        }
    }
}

impl Serialize for ExpertGroup {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ExpertGroup {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        ExpertGroup::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown expert group {text:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gate on two time scales ([`Expert::awake`]): a weak edge (2 % of the naive's MSE,
    /// with a paired difference of standard deviation 0.48) is invisible to the day's memory
    /// (at most 2,000 forecasts: 2.5 standard errors are 0.027) but seen by the week's after
    /// 6,000 forecasts (0.016 < 0.02); a strong edge wakes its expert with the day's memory
    /// as soon as it may vote; the naive is always awake; and a worse expert never is.
    #[test]
    fn the_gate_sees_a_weak_edge_on_the_long_scale_only() {
        let c = EnsembleConfig::default();
        assert_eq!(c.gate_lambdas, [0.999, 0.9999]);
        let mut weak = Expert::new(ExpertGroup::Trained(ModelKind::Linear));
        for k in 0..6_000 {
            // d = e − a² alternates −0.5 and +0.46: mean −0.02.
            weak.record_gate(&c, if k % 2 == 0 { 0.5 } else { 1.46 }, 1.0);
            if k == 2_999 {
                assert!(!weak.awake(&c), "too early for either memory");
            }
        }
        assert!(
            !weak.stats.votes(c.z, c.min_scored),
            "the day cannot see 2 %"
        );
        assert!(weak.long_stats.votes(c.z, c.min_scored), "the week can");
        assert!(weak.awake(&c));
        let mut strong = Expert::new(ExpertGroup::Generations(ModelKind::Forest));
        for k in 0..c.min_scored {
            assert!(!strong.awake(&c), "{k}: not before min_scored");
            strong.record_gate(&c, if k % 2 == 0 { 0.4 } else { 0.6 }, 1.0);
        }
        assert!(strong.stats.votes(c.z, c.min_scored) && strong.awake(&c));
        let mut worse = Expert::new(ExpertGroup::Combination);
        for _ in 0..6_000 {
            worse.record_gate(&c, 1.1, 1.0);
        }
        assert!(!worse.awake(&c));
        assert!(Expert::new(ExpertGroup::Naive).awake(&c));
    }

    fn every_group() -> Vec<ExpertGroup> {
        let mut groups = vec![ExpertGroup::Naive, ExpertGroup::Combination];
        for kind in ModelKind::ALL {
            groups.push(ExpertGroup::Trained(kind));
            groups.push(ExpertGroup::Generations(kind));
        }
        groups
    }

    #[test]
    fn expert_group_labels_parse_back_and_serialise_as_the_label_text() {
        assert_eq!(ExpertGroup::Naive.to_string(), "naive");
        for group in every_group() {
            let label = group.to_string();
            assert_eq!(ExpertGroup::parse(&label), Some(group), "{label}");
            // The files hold the label text exactly as a `String` field did.
            assert_eq!(
                serde_json::to_string(&group).expect("json"),
                serde_json::to_string(&label).expect("json")
            );
            assert_eq!(
                postcard::to_allocvec(&group).expect("postcard"),
                postcard::to_allocvec(&label).expect("postcard")
            );
            let bytes = postcard::to_allocvec(&label).expect("postcard");
            assert_eq!(postcard::from_bytes::<ExpertGroup>(&bytes), Ok(group));
        }
        for text in [
            "",
            "ensemble",
            "combiner/lcb",
            "trained/",
            "generations/nope",
            "gen1/linear",
        ] {
            assert_eq!(ExpertGroup::parse(text), None, "{text}");
        }
        assert!(serde_json::from_str::<ExpertGroup>("\"trained/nope\"").is_err());
    }

    #[test]
    fn member_labels_map_to_their_group() {
        let linear = ModelKind::ALL
            .into_iter()
            .find(|k| k.name() == "linear")
            .expect("linear");
        assert_eq!(
            ExpertGroup::of_member_label("gen12/linear"),
            Some(ExpertGroup::Generations(linear))
        );
        assert_eq!(
            ExpertGroup::of_member_label("trained/linear"),
            Some(ExpertGroup::Trained(linear))
        );
        assert_eq!(
            ExpertGroup::of_member_label("naive"),
            Some(ExpertGroup::Naive)
        );
        assert_eq!(ExpertGroup::of_member_label("general/linear"), None);
        assert_eq!(ExpertGroup::of_member_label("ensemble"), None);
    }
}
