//! `upgrade`: a server stopped on its data and another version (or family) started on the same
//! data: did it start, and what did it keep of the sessions and keys written before?

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{CheckView, Expectation, Field, GridCell, Promise, Section};
use crate::config::scenario_file::RestartKind;

/// What the new server did with the old one's data, as observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpgradeOutcome {
    /// Every session and key as written.
    Kept,
    /// Some of them.
    PartiallyKept,
    /// It started and answered, holding none of them, without an error: silent data loss.
    StartedWithoutData,
    /// It did not start on the data (`signature`: its own log line saying why).
    RefusedToStart,
}

impl UpgradeOutcome {
    pub fn words(self) -> &'static str {
        match self {
            UpgradeOutcome::Kept => "kept",
            UpgradeOutcome::PartiallyKept => "partially kept",
            UpgradeOutcome::StartedWithoutData => "started without the data",
            UpgradeOutcome::RefusedToStart => "refused to start",
        }
    }

    /// Classify from counts: `kept` of `written` items came back.
    pub fn of(written: u64, kept: u64) -> UpgradeOutcome {
        match kept {
            0 if written > 0 => UpgradeOutcome::StartedWithoutData,
            k if k >= written => UpgradeOutcome::Kept,
            _ => UpgradeOutcome::PartiallyKept,
        }
    }
}

/// Items written before the switch and what the new server gave back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Items {
    pub written: u64,
    /// Back exactly as written (value, and whether it has a TTL).
    pub kept: u64,
    /// There, but different (another value, or its TTL gone).
    pub changed: u64,
    pub lost: u64,
    /// Could not be checked (the app or the server failed to answer).
    pub unknown: u64,
}

impl Items {
    /// The sum of several counts (all kinds of a cell together).
    pub fn total<'a>(parts: impl IntoIterator<Item = &'a Items>) -> Items {
        let mut all = Items::default();
        for p in parts {
            all.add(p);
        }
        all
    }

    pub fn add(&mut self, other: &Items) {
        self.written += other.written;
        self.kept += other.kept;
        self.changed += other.changed;
        self.lost += other.lost;
        self.unknown += other.unknown;
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpgradeCheck {
    /// Family and version the binaries reported, e.g. "redis 7.4.1".
    pub from: String,
    pub to: String,
    pub persistence: String,
    /// How `from` was stopped.
    pub restart: RestartKind,
    pub outcome: UpgradeOutcome,
    /// `to`'s own log line saying why it did not start (the last warning it logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Sessions logged in through the app before the switch, checked through the app after.
    pub sessions: Items,
    /// Raw keys by type ("string", "string+ttl", "hash", ...), written and read by the harness.
    pub keys: BTreeMap<String, Items>,
    /// What the persistence mode promises for the keys (and, given the session engine, for
    /// the sessions) across this stop, on the same server.
    pub expected: Expectation,
    pub sessions_expected: Expectation,
    /// Does what happened agree with the promises?
    pub matches: bool,
    /// From the stop until `to` answered (or gave up).
    pub downtime_ms: f64,
}

impl UpgradeCheck {
    pub fn all_keys(&self) -> Items {
        let mut all = Items::default();
        for items in self.keys.values() {
            all.add(items);
        }
        all
    }

    /// Sessions and keys together.
    pub fn total(&self) -> Items {
        let mut all = self.all_keys();
        all.add(&self.sessions);
        all
    }

    /// Does `lost` (changed counts as lost) of `written` agree with `promise`?
    pub fn agrees(promise: Promise, items: &Items) -> bool {
        let lost = items.lost + items.changed;
        items.unknown == 0
            && match promise {
                Promise::Keep => lost == 0,
                Promise::Lose => items.written == 0 || lost > 0,
                Promise::Either => true,
            }
    }

    /// "kept 45/45", "refused to start: <signature>".
    pub fn short(&self) -> String {
        let t = self.total();
        match self.outcome {
            UpgradeOutcome::RefusedToStart => format!(
                "refused to start: {}",
                self.signature.as_deref().unwrap_or("no log line")
            ),
            o => format!("{} {}/{}", o.words(), t.kept, t.written),
        }
    }
}

impl CheckView for UpgradeCheck {
    const SECTION: Section = Section {
        title: "Server upgrades: the same data under another version",
        headers: &[
            "from",
            "to",
            "stop",
            "outcome",
            "sessions kept",
            "keys kept (changed)",
            "expected",
        ],
    };

    fn summary(&self) -> String {
        let promise = format!("{:?}", self.expected.promise).to_lowercase();
        format!(
            "{} → {}: {} (expect {promise})",
            self.from,
            self.to,
            self.short()
        )
    }

    fn metric(&self, name: &str) -> Option<f64> {
        let lost = |i: &Items| (i.lost + i.changed) as f64;
        match name {
            "lost" => Some(lost(&self.total())),
            "sessions_lost" => Some(lost(&self.sessions)),
            _ => None,
        }
    }

    fn row(&self) -> Vec<Field> {
        let keys = self.all_keys();
        let by_type: Vec<String> = self
            .keys
            .iter()
            .map(|(t, i)| format!("{t} {}/{}", i.kept, i.written))
            .collect();
        let mut outcome = Field::text(self.outcome.words());
        if let Some(s) = &self.signature {
            outcome = outcome.note(Some("log:"), s);
        }
        let mut expected = Field::text(format!(
            "keys {:?}, sessions {:?}",
            self.expected.promise, self.sessions_expected.promise
        ))
        .note(None, &self.expected.because);
        if self.sessions_expected.because != self.expected.because {
            expected = expected.note(None, &self.sessions_expected.because);
        }
        vec![
            Field::text(&self.from),
            Field::text(&self.to),
            Field::text(format!("{:?}", self.restart)),
            outcome,
            Field::num(format!("{}/{}", self.sessions.kept, self.sessions.written)),
            Field::num(format!("{}/{} ({})", keys.kept, keys.written, keys.changed))
                .note(None, by_type.join(", ")),
            expected,
        ]
    }

    /// Lost sessions are the outcome under test, not errors.
    fn outcome_failures(&self) -> u64 {
        self.sessions.lost
    }

    fn grid(&self) -> Option<GridCell> {
        Some(GridCell {
            title: "Upgrade paths",
            group: format!("{}, {:?} stop", self.persistence, self.restart).to_lowercase(),
            row: self.from.clone(),
            col: self.to.clone(),
            text: self.short(),
        })
    }
}
