//! The results model: one `CellResult` per finished cell, appended to `results.jsonl` as soon as
//! the cell ends. Reports and gates read only this.

pub mod checks;
pub mod failure;
pub mod latency;
pub mod merge;
pub mod part;
pub mod ran;
pub mod recorder;
pub mod redact;
pub mod store;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use latency::LatencySummary;
pub use store::RunDir;

/// Bumped when a field changes meaning or disappears; additions keep the version.
/// 2: the verification fields `persistence`, `outage`, `eviction` became one tagged `check`.
pub const SCHEMA: &str = "cachegate.cell/2";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    /// Expected to pass and did.
    Pass,
    /// Expected to pass and did not.
    Fail,
    /// Expected to fail and did.
    Xfail,
    /// Expected to fail and passed.
    Xpass,
    /// Could not run (provisioning, server start-up, ...): never counted as passed.
    Error,
    /// Not run because the server build lacks what the cell needs (a server without TLS on the
    /// `tls` transport), as probed: a fact about the build, not a failure of the cell's settings
    /// or of the harness, so it does not change the exit code; JUnit reports it as skipped.
    Unsupported,
}

impl Verdict {
    /// Does this verdict break the run (exit code 1)?
    pub fn is_unexpected(self) -> bool {
        matches!(self, Verdict::Fail | Verdict::Xpass)
    }

    /// Did the scenario itself fail (whatever was expected)? Its numbers then measure
    /// failures, and are not compared with those of cells that worked.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Verdict::Fail | Verdict::Xfail | Verdict::Error | Verdict::Unsupported
        )
    }

    /// Order for "the worst of several repeats".
    pub fn severity(self) -> u8 {
        match self {
            Verdict::Pass => 0,
            Verdict::Unsupported => 0,
            Verdict::Xfail => 1,
            Verdict::Xpass => 2,
            Verdict::Fail => 3,
            Verdict::Error => 4,
        }
    }

    pub fn from_outcome(expected_pass: bool, passed: bool) -> Verdict {
        match (expected_pass, passed) {
            (true, true) => Verdict::Pass,
            (true, false) => Verdict::Fail,
            (false, false) => Verdict::Xfail,
            (false, true) => Verdict::Xpass,
        }
    }
}

/// Statistics of one operation (or "all") over the measured window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpStats {
    pub op: String,
    /// Successful operations measured.
    pub ok: u64,
    pub errors: u64,
    /// Successful operations per second of the measured window.
    pub throughput: f64,
    /// Successful operations' latency.
    pub latency: LatencySummary,
    /// The full HDR histogram (V2 deflate, base64), for re-rendering and merging.
    pub histogram: String,
    /// Failed operations that took time (an error answer, a timeout), kept apart; absent when
    /// none did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_latency: Option<LatencySummary>,
    /// Every timed operation, successful or failed: what users waited. Absent when no failure
    /// was timed (then it equals `latency`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_with_failures: Option<LatencySummary>,
    /// Lookups (cache-ops GET, DEL, EXPIRE): successful replies that found the key, and that
    /// did not. Their latencies are also in the rows "<op>:hit" and "<op>:miss".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hits: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub misses: Option<u64>,
}

impl OpStats {
    /// hits / (hits + misses), for lookups that completed.
    pub fn hit_ratio(&self) -> Option<f64> {
        let (h, m) = (self.hits?, self.misses?);
        (h + m > 0).then(|| h as f64 / (h + m) as f64)
    }

    /// What users waited: failed operations included where any were timed.
    pub fn waited(&self) -> &LatencySummary {
        self.latency_with_failures.as_ref().unwrap_or(&self.latency)
    }
}

/// One exception signature seen in a cell's app log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppException {
    /// `Type: first line of message`, normalized: what cells are grouped by.
    pub signature: String,
    /// The exception that escaped the request.
    pub exception_type: String,
    pub message: String,
    /// The innermost explicit cause (`raise ... from`), often the exception itself.
    pub innermost_type: String,
    pub innermost_message: String,
    /// Every linked exception, outermost first (evidence).
    pub chain: Vec<String>,
    /// The flow step of the first request it hit.
    pub first_step: String,
    pub first_path: String,
    /// The HTTP status the app answered with (500 unhandled; 4xx when Django turned the
    /// exception into a client error). Absent in results recorded before it was logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Requests it hit.
    pub count: u64,
    /// The innermost exception's last stack frames, outermost first ("django_redis/cache.py:
    /// 85 in get"), paths from site-packages on. Absent in results recorded before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<String>,
}

/// Errors of one kind, with the first message seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCount {
    pub kind: String,
    pub count: u64,
    pub example: String,
}

/// One second of the run (warm-up included, marked), for timelines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// Seconds since the scenario started.
    pub second: u64,
    pub warmup: bool,
    pub ok: u64,
    pub errors: u64,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// Operation accounting: every op the harness issued ends as ok or error, in or before the window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpCounts {
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    /// Ops that completed during warm-up (in `sent`, not in ok/errors).
    pub warmup: u64,
}

/// The client stack of an HTTP cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackInfo {
    pub name: String,
    pub python: String,
    /// e.g. "Python 3.11.7, django 5.2.19, redis 5.2.1, gunicorn 23.0.0"
    pub summary: String,
    pub packages: BTreeMap<String, String>,
}

/// What the server was, where it came from, and how it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    pub family: String,
    /// Version the binary reported.
    pub version: String,
    pub source: String,
    pub binary: String,
    pub runtime: String,
    /// PID, or container, image and network path: what exactly ran.
    #[serde(default)]
    pub identity: ran::RuntimeIdentity,
    pub persistence: String,
    pub config: crate::server::ServerSettings,
    /// Milliseconds from spawn to first PONG.
    pub start_ms: f64,
    /// Saved server log, relative to the run folder.
    pub log: Option<String>,
    /// Every node of a replica, Sentinel or cluster deployment (absent for one server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<TopologyInfo>,
}

/// The nodes of a cell's deployment, for the report's topology table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopologyInfo {
    /// `replica:1`, `sentinel`, `cluster:3`, ...
    pub topology: String,
    /// Milliseconds from the first node's start until the topology was formed.
    pub formed_ms: f64,
    pub nodes: Vec<ran::NodeInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    pub schema: String,
    pub run_id: String,
    pub matrix: String,
    pub cell_id: String,
    /// 0-based repetition of this cell.
    pub repeat: u32,
    pub axes: BTreeMap<String, String>,
    pub verdict: Verdict,
    /// Why the verdict: what failed, or what the expectation said.
    pub verdict_reason: String,
    pub expected: crate::config::matrix_file::ExpectedOutcome,
    /// Set when the cell could not run to completion (then verdict is ERROR).
    pub infra_error: Option<String>,
    pub server: Option<ServerInfo>,
    pub scenario_kind: String,
    /// Resolved scenario parameters, as run.
    pub scenario: serde_json::Value,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: chrono::DateTime<chrono::Utc>,
    /// Length of the measured window in seconds (warm-up excluded).
    pub measured_seconds: f64,
    pub counts: OpCounts,
    /// Per operation, then "all".
    pub ops: Vec<OpStats>,
    pub errors: Vec<ErrorCount>,
    pub timeline: Vec<TimelinePoint>,
    /// Last lines of the server log when something went wrong.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_log_tail: Vec<String>,
    /// HTTP scenarios: the client stack the app ran on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<StackInfo>,
    /// HTTP scenarios: where requests went ("bundled django app" or the external URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// HTTP scenarios: the Django settings of the cell, as sent to the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_settings: Option<serde_json::Value>,
    /// Exceptions the app logged, grouped by signature, most frequent first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app_exceptions: Vec<AppException>,
    /// HTTP responses by status code.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub http_status: BTreeMap<String, u64>,
    /// CPU seconds (user + system) the harness process spent while the scenario ran.
    #[serde(default)]
    pub harness_cpu_seconds: f64,
    /// Verification scenarios: what they found against what was promised, tagged by `kind`
    /// (schema 1 had one field per kind instead: see `checks::upgrade_legacy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<checks::Check>,
    /// The matrix's `[gates]`, recorded so gates can be checked from results alone.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gates: crate::config::gates::Gates,
    pub cachegate_version: String,
    pub host: crate::host::HostInfo,
    /// `--generator` runs: this host's clock minus the target server's (`TIME`, halfway through
    /// the round trip), so `merge` can say how far apart the generators' clocks were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_offset_ms: Option<f64>,
    /// A cell merged from several generators' results (`cachegate merge`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generators: Option<merge::Generators>,
    /// Merged runs: the run folder (id) the result came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_run: Option<String>,
}

impl CellResult {
    /// The "all operations" row.
    pub fn total(&self) -> Option<&OpStats> {
        self.ops.iter().find(|o| o.op == "all")
    }
}
