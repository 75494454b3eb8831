//! The judge: what a run's results mean for CI. It checks the gates (`thresholds`), compares with
//! a baseline run (`baseline`) and decides the exit code, in one place for `run`, `report` and
//! `compare`. Renderers show a `Judgement`; none of them decides anything.

pub mod baseline;
pub mod thresholds;

use serde::{Deserialize, Serialize};

use crate::exit_code::{EXPECTATION_FAILED, INFRA, OK};
use crate::results::store::RunInfo;
use crate::results::{CellResult, Verdict};

pub use baseline::{
    compare, compared_anything, comparison_problems, Change, CompareOptions, Delta,
};
pub use thresholds::{check_gates, GateOutcome};

/// The command a judgement is asked an exit code for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `cachegate run`: the run's own outcome.
    Run,
    /// `cachegate report`: re-rendering; the outcome is in the outputs, the command succeeded.
    Report,
    /// `cachegate compare`: only the comparison with the baseline counts (a regression, a cell
    /// missing or broken in the current run, or nothing compared at all).
    Compare,
}

/// Gates, deltas and the run's outcome, decided once from the results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    pub gates: Vec<GateOutcome>,
    /// Against a baseline run, when one was given.
    pub comparison: Option<Vec<Delta>>,
    /// What `cachegate run` exits with: how the run ended when that decides it (a signal, a
    /// failure, no recorded end: 3); else 3 if a cell could not run; 1 if a cell missed its
    /// expectation, a gate failed, or the baseline comparison failed (see `comparison_failed`);
    /// else 0.
    pub run_exit_code: i32,
}

/// Judge `results` of the run described by `info`, against `baseline`'s results when given.
pub fn judge(
    results: &[CellResult],
    info: Option<&RunInfo>,
    baseline: Option<&[CellResult]>,
    opts: CompareOptions,
) -> Judgement {
    let mut j = Judgement {
        gates: check_gates(results),
        comparison: baseline.map(|b| compare(b, results, opts)),
        run_exit_code: OK,
    };
    let judged = if results.iter().any(|r| r.verdict == Verdict::Error) {
        INFRA
    } else if results.iter().any(|r| r.verdict.is_unexpected())
        || j.gates.iter().any(|g| !g.passed)
        || j.comparison_failed()
    {
        EXPECTATION_FAILED
    } else {
        OK
    };
    j.run_exit_code = match info.and_then(|i| i.end.as_ref()) {
        Some(end) => end.exit_code().unwrap_or(judged),
        None => INFRA,
    };
    j
}

impl Judgement {
    /// The exit code of `verb` for this judgement.
    pub fn exit_code(&self, verb: Verb) -> i32 {
        match verb {
            Verb::Run => self.run_exit_code,
            Verb::Report => OK,
            Verb::Compare => {
                if self.comparison_failed() {
                    EXPECTATION_FAILED
                } else {
                    OK
                }
            }
        }
    }

    /// Did the baseline comparison find a regression?
    pub fn regressed(&self) -> bool {
        self.comparison
            .iter()
            .flatten()
            .any(|d| d.status == Change::Regression)
    }

    /// Why the baseline comparison fails besides regressions (missing or broken cells, nothing
    /// compared); empty without a baseline.
    pub fn comparison_problems(&self) -> Vec<String> {
        self.comparison
            .as_deref()
            .map(comparison_problems)
            .unwrap_or_default()
    }

    /// Did the baseline comparison fail: a regression, or any of `comparison_problems`?
    pub fn comparison_failed(&self) -> bool {
        self.comparison.iter().flatten().any(|d| d.status.fails())
            || !self.comparison_problems().is_empty()
    }

    /// The gates `cell_id` failed (each cell shows its own).
    pub fn failed_gates<'a>(&'a self, cell_id: &'a str) -> impl Iterator<Item = &'a GateOutcome> {
        self.gates
            .iter()
            .filter(move |g| g.cell_id == cell_id && !g.passed)
    }
}

/// Group results by cell id (repeats together), in first-seen order.
pub fn by_cell(results: &[CellResult]) -> Vec<(String, Vec<&CellResult>)> {
    let mut order: Vec<(String, Vec<&CellResult>)> = Vec::new();
    for r in results {
        match order.iter_mut().find(|(id, _)| *id == r.cell_id) {
            Some((_, v)) => v.push(r),
            None => order.push((r.cell_id.clone(), vec![r])),
        }
    }
    order
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}
