//! `summary.json`: the run in one document for machines (CI dashboards, scripts), versioned and
//! documented in `reports/summary.schema.json`. Also the model the HTML, Markdown and JUnit
//! outputs are written from.

use super::renderer::{Renderer, Report};
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::judge::{Delta, GateOutcome, Judgement};
use crate::results::store::{PlannedCell, RunInfo, RunOutcome};
use crate::results::{CellResult, Verdict};

/// Bumped when a field changes meaning or disappears; additions keep the version.
pub const SUMMARY_SCHEMA: &str = "cachegate.summary/1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub schema: String,
    pub run_id: String,
    pub generated_at: chrono::DateTime<chrono::Utc>,
    /// The command that produced the run, to reproduce it.
    pub command: Vec<String>,
    pub matrices: Vec<String>,
    /// Cells (repeats counted) per verdict.
    pub verdicts: BTreeMap<String, u64>,
    pub cells: Vec<CellSummary>,
    /// Failure signatures with the cells they hit.
    pub signatures: Vec<SignatureGroup>,
    pub gates: Vec<GateOutcome>,
    /// Against a baseline run, when one was given.
    pub comparison: Option<Vec<Delta>>,
    /// What `cachegate run` exited with for this run (128 + the signal's number when one
    /// interrupted it).
    pub exit_code: i32,
    /// How the run ended, in words: "completed", "interrupted by SIGTERM", "failed: ...", or
    /// "incomplete: ..." when it recorded no end (still running, or the harness was killed).
    #[serde(default)]
    pub run_end: String,
    /// Did every planned cell run and the run record its end as completed?
    #[serde(default)]
    pub complete: bool,
    /// Planned cells that never ran.
    #[serde(default)]
    pub not_run: Vec<PlannedCell>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellSummary {
    pub cell_id: String,
    pub repeat: u32,
    pub axes: BTreeMap<String, String>,
    pub scenario: String,
    pub verdict: Verdict,
    pub reason: String,
    pub server_version: Option<String>,
    /// How the server ran: runtime, PID or container, image and its id, network path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<crate::results::ran::RuntimeIdentity>,
    pub stack: Option<String>,
    /// All operations together.
    pub throughput: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub errors: u64,
    /// cache-ops lookups (GET, DEL, EXPIRE): hits / (hits + misses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hit_ratio: Option<f64>,
    /// The verification scenarios' outcome in words (empty for load scenarios).
    pub check: String,
    /// The failure signature, for failed cells.
    pub signature: Option<String>,
    /// The cell's failed gates, "metric = value, needs condition" (gates are judged on the
    /// median of the repeats, so each repeat carries them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_gates: Vec<String>,
    /// Every exception the app logged in this cell (the signature shows only the first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exceptions: Vec<ExceptionCount>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExceptionCount {
    pub signature: String,
    /// Requests it hit.
    pub count: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignatureGroup {
    pub signature: String,
    pub cells: Vec<String>,
    /// Requests (or operations) it hit across those cells.
    pub hits: u64,
    /// What it means, its usual cause and what to change, when an explanation matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<crate::config::report_section::Explanation>,
}

/// `summary.json`: the machine-readable summary (its schema is checked in).
pub struct SummaryJson;

impl Renderer for SummaryJson {
    fn render(&self, r: &Report) -> String {
        serde_json::to_string_pretty(r.summary).expect("summary serializes")
    }
}

/// The failure signature of a cell: the app's exception if it logged one, else the most
/// frequent error kind, else the infrastructure error.
pub fn signature_of(r: &CellResult) -> Option<String> {
    if matches!(r.verdict, Verdict::Pass | Verdict::Xpass) {
        return None;
    }
    r.app_exceptions
        .first()
        .map(|e| e.signature.clone())
        .or_else(|| {
            r.errors
                .first()
                .map(|e| format!("{}: {}", e.kind, e.example.lines().next().unwrap_or("")))
        })
        .or_else(|| r.infra_error.clone())
        .or_else(|| Some(r.verdict_reason.clone()))
}

fn hits_of(r: &CellResult, signature: &str) -> u64 {
    r.app_exceptions
        .iter()
        .find(|e| e.signature == signature)
        .map(|e| e.count)
        .or_else(|| r.errors.first().map(|e| e.count))
        .unwrap_or(1)
}

pub fn build(results: &[CellResult], info: Option<&RunInfo>, judgement: &Judgement) -> Summary {
    let mut verdicts = BTreeMap::new();
    for r in results {
        *verdicts
            .entry(format!("{:?}", r.verdict).to_uppercase())
            .or_insert(0) += 1;
    }
    let explainer = super::explain::Explainer::new(info.map(|i| &i.report));
    let mut groups: Vec<SignatureGroup> = Vec::new();
    for r in results {
        if let Some(sig) = signature_of(r) {
            let hits = hits_of(r, &sig);
            match groups.iter_mut().find(|g| g.signature == sig) {
                Some(g) => {
                    if !g.cells.contains(&r.cell_id) {
                        g.cells.push(r.cell_id.clone());
                    }
                    g.hits += hits;
                }
                None => groups.push(SignatureGroup {
                    cells: vec![r.cell_id.clone()],
                    hits,
                    explanation: explainer.explain(&sig).cloned(),
                    signature: sig,
                }),
            }
        }
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.cells.len()));
    let cells = results
        .iter()
        .map(|r| {
            let total = r.total();
            CellSummary {
                cell_id: r.cell_id.clone(),
                repeat: r.repeat,
                axes: r.axes.clone(),
                scenario: r.scenario_kind.clone(),
                verdict: r.verdict,
                reason: r.verdict_reason.clone(),
                server_version: r.server.as_ref().map(|s| s.version.clone()),
                runtime: r
                    .server
                    .as_ref()
                    .map(|s| s.identity.clone())
                    .filter(|i| !i.runtime.is_empty()),
                stack: r.stack.as_ref().map(|s| s.summary.clone()),
                throughput: total.map_or(0.0, |t| t.throughput),
                p50_us: total.map_or(0.0, |t| t.waited().p50_us),
                p99_us: total.map_or(0.0, |t| t.waited().p99_us),
                p999_us: total.map_or(0.0, |t| t.waited().p999_us),
                errors: total.map_or(0, |t| t.errors),
                hit_ratio: total.and_then(|t| t.hit_ratio()),
                check: super::model::check(r),
                signature: signature_of(r),
                failed_gates: super::model::view(r, judgement).failed_gates,
                exceptions: r
                    .app_exceptions
                    .iter()
                    .map(|e| ExceptionCount {
                        signature: e.signature.clone(),
                        count: e.count,
                    })
                    .collect(),
            }
        })
        .collect();
    let end = info.and_then(|i| i.end.as_ref());
    let not_run = info.map(|i| i.not_run(results)).unwrap_or_default();
    let run_end = match end {
        Some(e) => e.describe(),
        None => "incomplete: the run recorded no end (it is still running, or the harness was \
                 killed)"
            .to_string(),
    };
    let complete = end.is_some_and(|e| e.outcome == RunOutcome::Completed) && not_run.is_empty();
    Summary {
        schema: SUMMARY_SCHEMA.to_string(),
        run_id: results
            .first()
            .map(|r| r.run_id.clone())
            .or(info.map(|i| i.run_id.clone()))
            .unwrap_or_default(),
        generated_at: chrono::Utc::now(),
        command: info.map(|i| i.command.clone()).unwrap_or_default(),
        matrices: info.map(|i| i.matrices.clone()).unwrap_or_default(),
        verdicts,
        cells,
        signatures: groups,
        gates: judgement.gates.clone(),
        comparison: judgement.comparison.clone(),
        exit_code: judgement.run_exit_code,
        run_end,
        complete,
        not_run,
    }
}

/// "N of M planned cells never ran: a, b, ..." when some did not run.
pub fn not_run_note(s: &Summary) -> Option<String> {
    if s.not_run.is_empty() {
        return None;
    }
    let names: Vec<String> = s.not_run.iter().map(planned_name).collect();
    Some(format!(
        "{} of {} planned cells never ran: {}",
        s.not_run.len(),
        s.not_run.len() + s.cells.len(),
        names.join(", ")
    ))
}

/// A cell's id with its repeat, as the table shows it.
pub fn planned_name(p: &PlannedCell) -> String {
    if p.repeat > 0 {
        format!("{} #{}", p.cell_id, p.repeat + 1)
    } else {
        p.cell_id.clone()
    }
}
