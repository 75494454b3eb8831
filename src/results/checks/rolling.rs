//! `rolling-upgrade`: a new server version attached as a replica of the running one, then the
//! app's service address switched over to it under login traffic: did it sync, what did the
//! users keep, and how long did logins fail?

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::upgrade::Items;
use super::{CheckView, Field, GridCell, Section};

/// How far the switch-over got, as observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RollingOutcome {
    /// `to` synced, was promoted and serves the app.
    SwitchedOver,
    /// `to` did not finish the initial sync from `from` (`signature`: its own log lines).
    SyncFailed,
    /// `to` did not start as a replica at all.
    RefusedToStart,
}

impl RollingOutcome {
    pub fn words(self) -> &'static str {
        match self {
            RollingOutcome::SwitchedOver => "switched over",
            RollingOutcome::SyncFailed => "did not sync",
            RollingOutcome::RefusedToStart => "refused to start",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollingUpgradeCheck {
    /// As the servers report themselves ("redis 6.2.14").
    pub from: String,
    pub to: String,
    pub persistence: String,
    pub outcome: RollingOutcome,
    /// `to`'s log lines saying why it did not start or sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// From `to`'s start until it reported `master_link_status:up` with `from`'s key count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_ms: Option<f64>,
    /// Keys in `from` and in `to` when the switch began (the docs' "same number of keys" check).
    pub keys_on_from: u64,
    pub keys_on_to: u64,
    /// Seconds into the login traffic when the service address moved.
    pub switch_at_seconds: f64,
    /// Sessions logged in before the switch, read through the app after it.
    pub sessions: Items,
    /// Raw keys written to `from` before the sync, read from `to` after the switch, by type.
    pub keys: BTreeMap<String, Items>,
    /// From the first failed login after the switch to the end of the last one.
    pub logins_failed_seconds: f64,
    /// Requests of the login traffic that failed after the switch began.
    pub failed_after_switch: u64,
    pub requests_after_switch: u64,
    /// Exceptions the app logged, by signature.
    pub app_exceptions: Vec<String>,
    /// What the documented procedure promises, with its source.
    pub promise: String,
    /// Did what happened keep that promise?
    pub matches: bool,
}

impl RollingUpgradeCheck {
    pub fn all_keys(&self) -> Items {
        Items::total(self.keys.values())
    }
}

impl CheckView for RollingUpgradeCheck {
    fn fault_windows(&self) -> Vec<super::FaultWindow> {
        vec![super::FaultWindow {
            label: "switch-over".into(),
            from_seconds: self.switch_at_seconds,
            to_seconds: self.switch_at_seconds + self.logins_failed_seconds,
        }]
    }

    const SECTION: Section = Section {
        title: "Rolling upgrades through replication: attach, sync, switch over under traffic",
        headers: &[
            "from",
            "to",
            "outcome",
            "sync",
            "sessions kept",
            "keys kept",
            "logins failed for",
            "failed after switch",
        ],
    };

    fn summary(&self) -> String {
        let keys = self.all_keys();
        match self.outcome {
            RollingOutcome::SwitchedOver => format!(
                "{} → {} switched over: sessions {}/{} kept, keys {}/{}, logins failed for \
                 {:.2}s, {} of {} requests failed after the switch",
                self.from,
                self.to,
                self.sessions.kept,
                self.sessions.written,
                keys.kept,
                keys.written,
                self.logins_failed_seconds,
                self.failed_after_switch,
                self.requests_after_switch
            ),
            outcome => format!(
                "{} → {} {}: {}",
                self.from,
                self.to,
                outcome.words(),
                self.signature.as_deref().unwrap_or("no log line")
            ),
        }
    }

    fn metric(&self, name: &str) -> Option<f64> {
        let keys = self.all_keys();
        match name {
            "lost" => Some((keys.lost + keys.changed + self.sessions.lost) as f64),
            "sessions_lost" => Some(self.sessions.lost as f64),
            _ => None,
        }
    }

    fn row(&self) -> Vec<Field> {
        let keys = self.all_keys();
        let mut outcome = Field::text(self.outcome.words());
        if let Some(s) = &self.signature {
            outcome = outcome.note(Some("log"), s.clone());
        }
        if !self.app_exceptions.is_empty() {
            outcome = outcome.note(Some("app"), self.app_exceptions.join("; "));
        }
        vec![
            Field::text(&self.from),
            Field::text(&self.to),
            outcome,
            Field::num(
                self.sync_ms
                    .map_or("-".to_string(), |ms| format!("{:.2}s", ms / 1000.0)),
            ),
            Field::num(format!("{}/{}", self.sessions.kept, self.sessions.written)),
            Field::num(format!("{}/{}", keys.kept, keys.written)),
            Field::num(format!("{:.2}s", self.logins_failed_seconds)),
            Field::num(format!(
                "{}/{}",
                self.failed_after_switch, self.requests_after_switch
            )),
        ]
    }

    fn outcome_failures(&self) -> u64 {
        self.sessions.lost
    }

    fn grid(&self) -> Option<GridCell> {
        let text = match self.outcome {
            RollingOutcome::SwitchedOver => format!(
                "sessions {}/{}, logins failed {:.1}s",
                self.sessions.kept, self.sessions.written, self.logins_failed_seconds
            ),
            other => other.words().to_string(),
        };
        Some(GridCell {
            title: "Rolling upgrades through replication",
            group: self.persistence.clone(),
            row: self.from.clone(),
            col: self.to.clone(),
            text,
        })
    }
}
