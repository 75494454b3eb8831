//! Results of the verification scenarios: what survived a restart (sessions or acknowledged
//! writes) against what the mode promises, what an outage did to the app, and what memory
//! pressure did to sessions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::scenario_file::RestartKind;

/// What should happen to data written before the restart (which mode promises what, and why:
/// `scenario::promise`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Promise {
    /// Everything acknowledged survives.
    Keep,
    /// Data written since the last snapshot (or all of it) is gone.
    Lose,
    /// The mode makes no promise either way for this restart (a save point may or may not have
    /// fired in between; a changed config): observed, not judged.
    Either,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expectation {
    pub promise: Promise,
    /// Why, in words, for the report.
    pub because: String,
    /// Set when this test cannot tell apart what the modes promise (e.g. fsync policies under a
    /// process kill): the report shows it instead of implying a difference was tested.
    pub not_separable: Option<String>,
}

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

/// One flow step while the server was down.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepDuringOutage {
    pub step: String,
    pub ok: u64,
    pub errors: u64,
    /// Slowest answer, ok or not: retrying clients make users wait.
    pub max_latency_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutageReport {
    /// Seconds into the flow when the server was stopped, and for how long it stayed down.
    pub down_at_seconds: f64,
    pub down_for_seconds: f64,
    pub during: Vec<StepDuringOutage>,
    /// HTTP status codes answered while the server was down ("error" for no answer).
    pub statuses_during: BTreeMap<String, u64>,
    /// Did every request during the outage succeed (a working fallback)?
    pub available_during: bool,
    /// Seconds from the server's return until the last failed request; 0 if none failed after.
    pub recovery_seconds: f64,
    pub recovered: bool,
    /// Users logged in before the server went down, reading as themselves throughout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logged_in: Option<LoggedInUsers>,
}

/// What users who were already logged in got from authenticated reads around an outage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedInUsers {
    pub users: u64,
    /// Reads that started before the server went down, while it was down, after it returned.
    pub before: ReadsSeen,
    pub during: ReadsSeen,
    pub after: ReadsSeen,
    /// By second since the flow started (the server went down at `down_at_seconds`).
    pub per_second: Vec<ReadsInSecond>,
}

/// Authenticated reads by what the user got.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReadsSeen {
    /// The app still knew the user.
    pub ok: u64,
    /// The app answered as if the user were not logged in (401/403/302, or a 2xx without the
    /// user): a silent logout.
    pub logged_out: u64,
    /// The app failed (5xx, other status, no answer).
    pub failed: u64,
    /// HTTP status codes ("no answer" when there was none).
    pub statuses: BTreeMap<String, u64>,
    pub max_latency_ms: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReadsInSecond {
    pub second: u64,
    pub ok: u64,
    pub logged_out: u64,
    pub failed: u64,
}

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
