//! `persistence`: data written before a restart (sessions or acknowledged writes), checked
//! after it against what the mode promises (session-persistence, durability).

use serde::{Deserialize, Serialize};

use super::{CheckView, Expectation, Field, Promise, Section};
use crate::config::scenario_file::RestartKind;

/// Data written before a restart, checked after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersistenceCheck {
    /// "sessions" or "acknowledged writes".
    pub subject: String,
    pub restart: RestartKind,
    /// Seconds between the last write and the stop.
    pub delay_seconds: f64,
    pub persistence: String,
    pub restarted_with: String,
    /// Items written (and acknowledged) before the restart.
    pub before: u64,
    pub kept: u64,
    pub lost: u64,
    /// Items that could not be checked (the app failed to answer): neither kept nor lost.
    pub unknown: u64,
    /// Checks that failed at first and passed on a retry (e.g. a stale pooled connection).
    pub transient_errors: u64,
    pub expected: Expectation,
    /// Keep when nothing was lost, Lose otherwise.
    pub observed: Promise,
    /// Does what happened agree with the promise? (`Either` agrees with anything.)
    pub matches: bool,
    /// Durability: when the lost writes were acknowledged, in ms relative to the stop
    /// (negative: before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_window_ms: Option<[f64; 2]>,
    /// From the stop until the server answered again.
    pub downtime_ms: f64,
    /// Seconds into the scenario when the server was stopped (absent in results recorded
    /// before it was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_at_seconds: Option<f64>,
    /// Durability on a topology with replicas: the primary was not restarted; the writes were
    /// read back from the node that took over ("replica-1, promoted by the Sentinels").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<String>,
}

impl PersistenceCheck {
    pub fn judge(expected: &Expectation, before: u64, lost: u64, unknown: u64) -> (Promise, bool) {
        let observed = if lost == 0 {
            Promise::Keep
        } else {
            Promise::Lose
        };
        let matches = unknown == 0
            && before > 0
            && match expected.promise {
                Promise::Keep => lost == 0,
                Promise::Lose => lost > 0,
                Promise::Either => true,
            };
        (observed, matches)
    }
}

impl CheckView for PersistenceCheck {
    fn fault_windows(&self) -> Vec<super::FaultWindow> {
        self.restart_at_seconds
            .map(|at| super::FaultWindow {
                label: format!(
                    "restart ({})",
                    serde_json::to_value(self.restart)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                ),
                from_seconds: at,
                to_seconds: at + self.downtime_ms / 1000.0,
            })
            .into_iter()
            .collect()
    }

    const SECTION: Section = Section {
        title: "Persistence: expected vs observed",
        headers: &[
            "subject", "restart", "before", "kept", "lost", "unknown", "expected", "observed",
            "why",
        ],
    };

    fn summary(&self) -> String {
        let note = if self.expected.not_separable.is_some() {
            ", fsync not separable"
        } else {
            ""
        };
        format!(
            "{}/{} {} kept (expect {:?}{note})",
            self.kept, self.before, self.subject, self.expected.promise
        )
        .to_lowercase()
    }

    fn metric(&self, name: &str) -> Option<f64> {
        match name {
            "lost" => Some(self.lost as f64),
            "sessions_lost" if self.subject == "sessions" => Some(self.lost as f64),
            _ => None,
        }
    }

    fn row(&self) -> Vec<Field> {
        let delay = if self.delay_seconds > 0.0 {
            format!(" after {:.1}s", self.delay_seconds)
        } else {
            String::new()
        };
        let changed = if let Some(to) = &self.failover {
            format!(", failover to {to}")
        } else if self.restarted_with != self.persistence {
            format!(" → {}", self.restarted_with)
        } else {
            String::new()
        };
        let mut why = Field::text(&self.expected.because);
        if let Some(n) = &self.expected.not_separable {
            why = why.note(Some("Not separable here:"), n);
        }
        if let Some(w) = self.lost_window_ms {
            why = why.note(
                None,
                format!(
                    "lost writes acknowledged {:.0}…{:.0} ms from the stop",
                    w[0], w[1]
                ),
            );
        }
        vec![
            Field::text(&self.subject),
            Field::text(format!("{:?}{delay}{changed}", self.restart)),
            Field::num(self.before),
            Field::num(self.kept),
            Field::num(self.lost),
            Field::num(self.unknown),
            Field::text(format!("{:?}", self.expected.promise)),
            Field::text(format!("{:?}", self.observed)),
            why,
        ]
    }

    /// Lost sessions are the outcome under test (in the check column), not errors.
    fn outcome_failures(&self) -> u64 {
        if self.subject == "sessions" {
            self.lost
        } else {
            0
        }
    }
}
