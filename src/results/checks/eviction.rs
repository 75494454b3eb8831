//! `eviction`: what memory pressure did to sessions and to new logins.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{CheckView, Expectation, Field, Section};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvictionReport {
    pub policy: String,
    pub maxmemory: String,
    pub sessions_before: u64,
    pub sessions_kept: u64,
    pub sessions_lost: u64,
    pub sessions_unknown: u64,
    /// New users (sign up, log in, read as themselves) tried while the cache was being filled,
    /// and how many of them the login step refused.
    pub logins_tried: u64,
    pub logins_refused: u64,
    /// Those new users that failed, by the step they failed at (csrf, register, login, me: the
    /// read right after the login).
    #[serde(default)]
    pub failed_at: BTreeMap<String, u64>,
    /// The same right after the fill (its keys still there, its client buffers gone).
    #[serde(default)]
    pub logins_after_tried: u64,
    #[serde(default)]
    pub logins_after_refused: u64,
    #[serde(default)]
    pub failed_at_after: BTreeMap<String, u64>,
    pub fill_ok: u64,
    pub fill_errors: u64,
    /// From INFO stats.
    pub evicted_keys: u64,
    pub expected: Expectation,
    pub matches: bool,
}

impl EvictionReport {
    /// "login 2, me 6 of 14", or "none of 14": new users during the fill.
    pub fn failed_during(&self) -> String {
        failed_steps(&self.failed_at, self.logins_refused, self.logins_tried)
    }

    /// The same for the new users right after the fill.
    pub fn failed_after(&self) -> String {
        failed_steps(
            &self.failed_at_after,
            self.logins_after_refused,
            self.logins_after_tried,
        )
    }
}

fn failed_steps(failed_at: &BTreeMap<String, u64>, refused: u64, tried: u64) -> String {
    let steps: Vec<String> = failed_at.iter().map(|(s, n)| format!("{s} {n}")).collect();
    match (steps.is_empty(), refused) {
        (false, _) => format!("{} of {tried}", steps.join(", ")),
        (true, 0) => format!("none of {tried}"),
        // Results written before steps were recorded counted every failure as refused.
        (true, n) => format!("{n} of {tried} (step not recorded)"),
    }
}

impl CheckView for EvictionReport {
    const SECTION: Section = Section {
        title: "Eviction",
        headers: &[
            "policy",
            "maxmemory",
            "sessions kept",
            "new users failed at step (during · after the fill)",
            "fill ok / errors",
            "evicted keys",
            "expected",
        ],
    };

    fn summary(&self) -> String {
        format!(
            "{}/{} sessions kept, new users failed at {}, {} evicted; fill {} written, {} refused",
            self.sessions_kept,
            self.sessions_before,
            self.failed_during(),
            self.evicted_keys,
            self.fill_ok,
            self.fill_errors
        )
    }

    fn metric(&self, name: &str) -> Option<f64> {
        match name {
            "lost" | "sessions_lost" => Some(self.sessions_lost as f64),
            "logins_refused" => Some(self.logins_refused as f64),
            _ => None,
        }
    }

    fn row(&self) -> Vec<Field> {
        vec![
            Field::text(&self.policy),
            Field::text(&self.maxmemory),
            Field::num(format!("{}/{}", self.sessions_kept, self.sessions_before)),
            Field::num(format!(
                "{} · {}",
                self.failed_during(),
                self.failed_after()
            )),
            Field::num(format!("{} / {}", self.fill_ok, self.fill_errors)),
            Field::num(self.evicted_keys),
            Field::text(format!(
                "{:?}: {}",
                self.expected.promise, self.expected.because
            )),
        ]
    }

    /// The fill's throughput and refused writes are traffic the cell makes, not what it
    /// measures; the check column states the sessions.
    fn shows_load(&self) -> bool {
        false
    }
}
