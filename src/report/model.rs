//! What every output shows about a cell, shaped once: its verdict together with the gates it
//! failed, the numbers that head its row (chosen by what the cell is about), the verification
//! outcome in words, and its failure signature. The console table, Markdown, JUnit and the
//! HTML verdict matrix render these views, so they cannot disagree.

use crate::judge::Judgement;
use crate::results::checks::GridCell;
use crate::results::{CellResult, Verdict};

/// One cell run (a repeat is its own view).
#[derive(Debug, Clone, PartialEq)]
pub struct CellView {
    pub cell_id: String,
    /// The id, with `#N` for repeats after the first.
    pub name: String,
    pub scenario: String,
    pub verdict: Verdict,
    /// The cell's failed gates, each as "metric = value, needs condition". Gates are judged on
    /// the median of the repeats, so every repeat of the cell carries them.
    pub failed_gates: Vec<String>,
    pub headline: Headline,
    /// The verification scenarios' outcome in words (empty for load scenarios).
    pub check: String,
    /// The failure signature, for cells that did not pass.
    pub signature: Option<String>,
    pub reason: String,
    /// How the server ran: process, or container with image and network path.
    pub ran_as: String,
    /// Its place in a transition grid (from × to), for checks about a transition.
    pub grid: Option<GridCell>,
}

/// The numbers at the head of a cell's row; `None` where a number does not describe what the
/// cell is about (shown as "-"; the details keep every number).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Headline {
    pub throughput: Option<f64>,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub p999_us: Option<f64>,
    /// Failed requests that are not the outcome under test.
    pub errors: Option<u64>,
    /// The latencies include failed requests (what users waited), not only successful ones.
    pub latency_with_failures: bool,
}

impl CellView {
    /// "PASS", "XFAIL", ... and ", GATE FAILED" when the cell missed a gate: the verdict of
    /// the scenario and the gate together explain the exit code where a reviewer looks.
    pub fn verdict_label(&self) -> String {
        let v = verdict_name(self.verdict);
        if self.failed_gates.is_empty() {
            v
        } else {
            format!("{v}, GATE FAILED")
        }
    }

    /// Does this cell count against the run (an unexpected verdict or a failed gate)?
    pub fn failed(&self) -> bool {
        self.verdict.is_unexpected() || !self.failed_gates.is_empty()
    }
}

pub fn verdict_name(v: Verdict) -> String {
    format!("{v:?}").to_uppercase()
}

/// A cell's id with its repeat, as every output names it.
pub fn run_name(cell_id: &str, repeat: u32) -> String {
    if repeat > 0 {
        format!("{cell_id} #{}", repeat + 1)
    } else {
        cell_id.to_string()
    }
}

/// The views of all results, in order.
pub fn cells(results: &[CellResult], judgement: &Judgement) -> Vec<CellView> {
    results.iter().map(|r| view(r, judgement)).collect()
}

pub fn view(r: &CellResult, judgement: &Judgement) -> CellView {
    CellView {
        cell_id: r.cell_id.clone(),
        name: run_name(&r.cell_id, r.repeat),
        scenario: r.scenario_kind.clone(),
        verdict: r.verdict,
        failed_gates: judgement
            .failed_gates(&r.cell_id)
            .map(|g| format!("{} = {:.3}, needs {}", g.metric, g.value, g.condition))
            .collect(),
        headline: headline(r),
        check: check(r),
        signature: super::summary::signature_of(r),
        reason: r.verdict_reason.clone(),
        ran_as: r
            .server
            .as_ref()
            .map(|s| s.identity.describe())
            .unwrap_or_default(),
        grid: r.check.as_ref().and_then(|c| c.grid()),
    }
}

/// A transition table: `from` rows × `to` columns, each cell the outcomes (one per repeat)
/// with their verdicts; rows and columns in the order the cells ran.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    pub title: &'static str,
    pub group: String,
    pub rows: Vec<String>,
    pub cols: Vec<String>,
    pub cells: std::collections::BTreeMap<(String, String), Vec<(String, String)>>,
}

impl Grid {
    /// (outcome, verdict label) of every run of `row` → `col`.
    pub fn at(&self, row: &str, col: &str) -> &[(String, String)] {
        self.cells
            .get(&(row.to_string(), col.to_string()))
            .map_or(&[], Vec::as_slice)
    }
}

/// The transition grids of a run, one per title and group, in the order the cells ran.
pub fn grids(cells: &[CellView]) -> Vec<Grid> {
    let mut out: Vec<Grid> = Vec::new();
    for (c, g) in cells.iter().filter_map(|c| c.grid.as_ref().map(|g| (c, g))) {
        let i = match out
            .iter()
            .position(|x| x.title == g.title && x.group == g.group)
        {
            Some(i) => i,
            None => {
                out.push(Grid {
                    title: g.title,
                    group: g.group.clone(),
                    rows: vec![],
                    cols: vec![],
                    cells: Default::default(),
                });
                out.len() - 1
            }
        };
        let grid = &mut out[i];
        if !grid.rows.contains(&g.row) {
            grid.rows.push(g.row.clone());
        }
        if !grid.cols.contains(&g.col) {
            grid.cols.push(g.col.clone());
        }
        grid.cells
            .entry((g.row.clone(), g.col.clone()))
            .or_default()
            .push((g.text.clone(), c.verdict_label()));
    }
    out
}

/// Which numbers head the row depends on what the cell is about, as its check says
/// (`CheckView::shows_load`, `outcome_failures`): eviction shows none (the fill is traffic the
/// cell makes, not what it measures); lost sessions across a restart are the outcome, not
/// errors; everything else shows all operations together.
fn headline(r: &CellResult) -> Headline {
    let Some(t) = r.total() else {
        return Headline::default();
    };
    if r.verdict == Verdict::Error && t.ok == 0 {
        return Headline::default();
    }
    if r.check.as_ref().is_some_and(|c| !c.shows_load()) {
        return Headline::default();
    }
    let outcome = r.check.as_ref().map_or(0, |c| c.outcome_failures());
    Headline {
        throughput: Some(t.throughput),
        p50_us: Some(t.waited().p50_us),
        p99_us: Some(t.waited().p99_us),
        p999_us: Some(t.waited().p999_us),
        errors: Some(t.errors.saturating_sub(outcome)),
        latency_with_failures: t.latency_with_failures.is_some(),
    }
}

/// One phrase for what a verification scenario found.
pub fn check(r: &CellResult) -> String {
    r.check.as_ref().map(|c| c.summary()).unwrap_or_default()
}

/// A headline number, or "-" where none applies.
pub fn or_dash<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| "-".to_string(), f)
}
