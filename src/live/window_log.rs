//! `<log-dir>/ensemble.jsonl`: one JSON object per closed window, the ensemble's
//! [`WindowReport`] plus when it was logged and what the window cost. Written by the ensembler,
//! read back (typed, through the same struct) by `report` and `status`. Lines written before a
//! field existed still read: fields added later default when absent.

use serde::{Deserialize, Serialize};

use crate::ensemble::report::WindowReport;
use crate::log;

/// One line of `ensemble.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LoggedWindow {
    #[serde(flatten)]
    pub report: WindowReport,
    /// Wall-clock time of logging, a [`log::stamp`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logged_at: Option<String>,
    /// Seconds the refit and the save at the end of the window took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refit_save_seconds: Option<f64>,
    /// The stream's peak resident memory (KiB) when the window closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_kib: Option<u64>,
    /// `stream --corr`: the open times of the window's klines whose forecast went ahead
    /// without some correlated symbol's kline of its minute, after waiting
    /// [`super::corr_gate::CORR_WAIT`] (their columns carried the last close, `stale` 1).
    /// Absent when there were none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub corr_late: Vec<i64>,
}

impl LoggedWindow {
    /// The line to append (keys in alphabetical order, as the file has always had them).
    pub(crate) fn to_line(&self) -> Result<String, serde_json::Error> {
        Ok(serde_json::to_value(self)?.to_string())
    }

    /// Reads one line; `None` for a line that is not a window (or is torn).
    pub(crate) fn parse(line: &str) -> Option<LoggedWindow> {
        serde_json::from_str(line).ok()
    }

    /// [`LoggedWindow::logged_at`] in ms.
    pub(crate) fn logged_at_ms(&self) -> Option<i64> {
        self.logged_at.as_deref().and_then(log::parse_stamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_reads_back_as_written() {
        let w = LoggedWindow {
            report: crate::ensemble::report::tests::report(),
            logged_at: Some(log::stamp(1_700_000_000_123)),
            refit_save_seconds: Some(0.25),
            peak_rss_kib: Some(20_480),
            corr_late: vec![1_700_000_040_000],
        };
        let line = w.to_line().expect("encodes");
        assert!(
            line.starts_with("{\"corr_late\":[1700000040000],\"coverage\":"),
            "{line}"
        );
        assert!(!line.contains('\n'));
        assert_eq!(LoggedWindow::parse(&line), Some(w.clone()));
        assert_eq!(w.logged_at_ms(), Some(1_700_000_000_123));
        assert_eq!(LoggedWindow::parse(&line[..line.len() - 1]), None);
        assert_eq!(LoggedWindow::parse("not json"), None);
    }

    /// A line from before the experts and the intervals were logged (their fields absent)
    /// still reads, with empty experts and no coverage.
    #[test]
    fn an_old_line_without_later_fields_reads() {
        let old = r#"{"first_open_time":60000,"forecasters":[{"directional":0.5,"label":"ensemble","mae":1.0,"n":10,"rmse":2.0}],"generations":1,"last_open_time":600000,"pool_size":2,"refit":{"added":{"evicted":[],"generation":1,"rows":100}},"trained":1,"version":3,"weights":[{"label":"naive","n_scored":10,"skill":null,"weight":1.0}],"window":0}"#;
        let w = LoggedWindow::parse(old).expect("an old line reads");
        assert_eq!(w.report.first_open_time, 60_000);
        assert!(w.report.experts.is_empty());
        assert_eq!(w.report.coverage.realised, None);
        assert_eq!(w.logged_at, None);
    }
}
