//! Comparison against a baseline run that tolerates noise: cells are compared by the median of
//! their repeats, a change counts as a regression only beyond max(relative threshold, twice the
//! run-to-run spread seen in either run), and cells whose spread is too large to judge a smaller
//! change are UNSTABLE rather than failed. A comparison that judged nothing, or whose current run
//! lacks or broke a baseline cell, fails: silence is not a pass. Cells whose scenario parameters
//! changed between the runs are NOT COMPARABLE and not judged.

use serde::{Deserialize, Serialize};

use super::thresholds::value;
use super::{by_cell, median};
use crate::config::gates::Metric;
use crate::results::CellResult;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Change {
    Ok,
    Improved,
    Regression,
    /// Too noisy to judge.
    Unstable,
    /// Only in the current run.
    New,
    /// Only in the baseline: the current run lost a cell (fails the comparison).
    Missing,
    /// ERROR in the current run: nothing to judge (fails the comparison).
    Broken,
    /// The two runs ran the cell with different scenario parameters, or the baseline has no
    /// measurement of it: reported, not judged.
    #[serde(rename = "NOT COMPARABLE")]
    NotComparable,
}

impl Change {
    /// As printed and serialized ("NOT COMPARABLE", "REGRESSION", ...).
    pub fn label(self) -> &'static str {
        match self {
            Change::Ok => "OK",
            Change::Improved => "IMPROVED",
            Change::Regression => "REGRESSION",
            Change::Unstable => "UNSTABLE",
            Change::New => "NEW",
            Change::Missing => "MISSING",
            Change::Broken => "BROKEN",
            Change::NotComparable => "NOT COMPARABLE",
        }
    }

    /// Does this outcome fail the comparison?
    pub fn fails(self) -> bool {
        matches!(self, Change::Regression | Change::Missing | Change::Broken)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    pub cell_id: String,
    pub metric: String,
    pub baseline: Option<f64>,
    pub current: Option<f64>,
    /// (current - baseline) / baseline.
    pub change: Option<f64>,
    /// The larger relative spread of the repeats in either run.
    pub noise: f64,
    /// The change needed to call a regression: max(threshold, 2 x noise).
    pub tolerance: f64,
    pub status: Change,
    /// Why a cell was not judged: what broke it, or which parameters differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Delta {
    /// A line about the whole cell (no metric judged).
    fn cell(cell_id: &str, status: Change, note: Option<String>) -> Delta {
        Delta {
            cell_id: cell_id.to_string(),
            metric: "-".into(),
            baseline: None,
            current: None,
            change: None,
            noise: 0.0,
            tolerance: 0.0,
            status,
            note,
        }
    }

    /// Was a metric actually judged on both runs?
    pub fn judged(&self) -> bool {
        self.baseline.is_some() && self.current.is_some() && self.status != Change::NotComparable
    }
}

/// Did the comparison judge any metric on both runs?
pub fn compared_anything(deltas: &[Delta]) -> bool {
    deltas.iter().any(Delta::judged)
}

/// Why a comparison fails beyond its regressions: cells missing from or broken in the current
/// run, and a comparison that judged nothing at all. Empty when only regressions (or nothing)
/// count against it.
pub fn comparison_problems(deltas: &[Delta]) -> Vec<String> {
    let mut out: Vec<String> = deltas
        .iter()
        .filter_map(|d| match d.status {
            Change::Missing => Some(format!("{} is missing from the current run", d.cell_id)),
            Change::Broken => Some(format!(
                "{} is ERROR in the current run: {}",
                d.cell_id,
                d.note.as_deref().unwrap_or("no measurement")
            )),
            _ => None,
        })
        .collect();
    if !compared_anything(deltas) {
        out.push(
            "nothing was compared: no cell was measured with the same parameters in both runs"
                .into(),
        );
    }
    out
}

#[derive(Debug, Clone, Copy)]
pub struct CompareOptions {
    /// Relative change tolerated in throughput.
    pub throughput_threshold: f64,
    /// Relative change tolerated in p99 (latency tails are noisier).
    pub latency_threshold: f64,
    /// A cell whose repeats spread more than this is UNSTABLE (unless it changed by even more).
    pub max_noise: f64,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            throughput_threshold: 0.10,
            latency_threshold: 0.25,
            max_noise: 0.30,
        }
    }
}

/// Relative spread of repeats: (max - min) / median (0 for one run).
fn spread(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let max = values.iter().cloned().fold(f64::MIN, f64::max);
    let min = values.iter().cloned().fold(f64::MAX, f64::min);
    let m = median(values.to_vec());
    if m.abs() < f64::EPSILON {
        0.0
    } else {
        (max - min) / m.abs()
    }
}

/// How many times the observed spread a change must exceed to count. The spread is the range
/// of a few back-to-back repeats; two runs made at different times also drift apart (other
/// load on the machine, CPU frequency), and the difference of two medians of three varies by
/// about 1.7 ranges at three standard deviations. Measured on the 2-core CI machine: two
/// identical runs of a 1 s cell differed by 14.5% with a 10% spread.
const NOISE_MARGIN: f64 = 2.0;

/// The verdict on one metric of one cell, from the repeats of both runs.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Judged {
    baseline: f64,
    current: f64,
    change: f64,
    noise: f64,
    tolerance: f64,
    status: Change,
}

fn judge_change(
    base: &[f64],
    cur: &[f64],
    threshold: f64,
    higher_is_better: bool,
    opts: CompareOptions,
) -> Judged {
    let baseline = median(base.to_vec());
    let current = median(cur.to_vec());
    let noise = spread(base).max(spread(cur));
    let tolerance = threshold.max(NOISE_MARGIN * noise);
    let change = if baseline.abs() > f64::EPSILON {
        (current - baseline) / baseline
    } else {
        0.0
    };
    let worse = if higher_is_better { -change } else { change };
    // A change beyond both the threshold and the observed spread is real however noisy the
    // cell; only smaller changes of a too-noisy cell cannot be judged.
    let status = if worse > tolerance {
        Change::Regression
    } else if noise > opts.max_noise {
        Change::Unstable
    } else if -worse > tolerance {
        Change::Improved
    } else {
        Change::Ok
    };
    Judged {
        baseline,
        current,
        change,
        noise,
        tolerance,
        status,
    }
}

/// The relative change from `base` to `cur` (repeats of one metric), when it is beyond both
/// `threshold` and twice the repeats' spread, as a baseline comparison would judge it; `None`
/// within that noise band.
pub fn change_beyond_noise(base: &[f64], cur: &[f64], threshold: f64) -> Option<f64> {
    let j = judge_change(base, cur, threshold, true, CompareOptions::default());
    (j.change.abs() > j.tolerance).then_some(j.change)
}

/// Differences between two cells' scenario parameters, "path: baseline vs current".
fn parameter_differences(base: &CellResult, cur: &CellResult) -> Vec<String> {
    let mut out = Vec::new();
    if base.scenario_kind != cur.scenario_kind {
        out.push(format!(
            "scenario: {} vs {}",
            base.scenario_kind, cur.scenario_kind
        ));
        return out;
    }
    diff_json("", &base.scenario, &cur.scenario, &mut out);
    out
}

fn diff_json(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let null = Value::Null;
                diff_json(
                    &p,
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    out,
                );
            }
        }
        _ if a != b => out.push(format!("{path}: {a} vs {b}")),
        _ => {}
    }
}

/// Compare throughput and p99 (all operations) of every cell against the baseline.
pub fn compare(
    baseline: &[CellResult],
    current: &[CellResult],
    opts: CompareOptions,
) -> Vec<Delta> {
    let base = by_cell(baseline);
    let cur = by_cell(current);
    let metrics: [(Metric, f64); 2] = [
        (
            "throughput".parse().expect("known metric"),
            opts.throughput_threshold,
        ),
        ("p99".parse().expect("known metric"), opts.latency_threshold),
    ];
    let mut out = Vec::new();
    for (id, runs) in &cur {
        let b = base.iter().find(|(bid, _)| bid == id).map(|(_, r)| r);
        // A broken repeat leaves the cell without an honest measurement to compare.
        let broken: Vec<&&CellResult> = runs.iter().filter(|r| r.infra_error.is_some()).collect();
        if let Some(first) = broken.first() {
            let cause = first.infra_error.as_deref().unwrap_or_default();
            let note = if broken.len() == runs.len() {
                cause.to_string()
            } else {
                format!("{} of {} repeats: {cause}", broken.len(), runs.len())
            };
            out.push(Delta::cell(id, Change::Broken, Some(note)));
            continue;
        }
        if let Some(b) = b {
            let Some(b_first) = b.iter().find(|r| r.infra_error.is_none()) else {
                let note = "the baseline has no measurement of this cell (ERROR there)";
                out.push(Delta::cell(id, Change::NotComparable, Some(note.into())));
                continue;
            };
            let differences = parameter_differences(b_first, runs[0]);
            if !differences.is_empty() {
                let note = format!("parameters differ: {}", differences.join(", "));
                out.push(Delta::cell(id, Change::NotComparable, Some(note)));
                continue;
            }
        }
        for (metric, threshold) in &metrics {
            let cv: Vec<f64> = runs.iter().filter_map(|r| value(metric, r)).collect();
            if cv.is_empty() {
                continue;
            }
            let current = median(cv.clone());
            let Some(b) = b else {
                out.push(Delta {
                    cell_id: id.clone(),
                    metric: metric.to_string(),
                    baseline: None,
                    current: Some(current),
                    change: None,
                    noise: spread(&cv),
                    tolerance: *threshold,
                    status: Change::New,
                    note: None,
                });
                continue;
            };
            let bv: Vec<f64> = b
                .iter()
                .filter(|r| r.infra_error.is_none())
                .filter_map(|r| value(metric, r))
                .collect();
            if bv.is_empty() {
                continue;
            }
            let j = judge_change(&bv, &cv, *threshold, metric.higher_is_better(), opts);
            out.push(Delta {
                cell_id: id.clone(),
                metric: metric.to_string(),
                baseline: Some(j.baseline),
                current: Some(j.current),
                change: Some(j.change),
                noise: j.noise,
                tolerance: j.tolerance,
                status: j.status,
                note: None,
            });
        }
    }
    for (id, _) in &base {
        if !cur.iter().any(|(cid, _)| cid == id) {
            out.push(Delta::cell(id, Change::Missing, None));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_and_median() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!((spread(&[90.0, 100.0, 110.0]) - 0.2).abs() < 1e-9);
        assert_eq!(spread(&[5.0]), 0.0);
    }

    #[test]
    fn changes_are_judged_against_threshold_and_noise() {
        let opts = CompareOptions::default();
        let judge = |b: &[f64], c: &[f64]| judge_change(b, c, 0.10, true, opts);
        // Quiet cell: 5% is within the 10% threshold, 20% is not.
        assert_eq!(judge(&[100.0; 3], &[95.0; 3]).status, Change::Ok);
        assert_eq!(judge(&[100.0; 3], &[80.0; 3]).status, Change::Regression);
        assert_eq!(judge(&[100.0; 3], &[130.0; 3]).status, Change::Improved);
        // What CI saw between two identical runs: -14.5% with a 10% spread is not a regression.
        let j = judge(&[99.0, 100.0, 109.0], &[85.0, 86.0, 90.0]);
        assert!((j.tolerance - 0.2).abs() < 1e-9, "{j:?}");
        assert_eq!(j.status, Change::Ok, "{j:?}");
        // A noisy cell (40% spread) cannot judge a 30% drop, but a 95% drop is real.
        let noisy = [80.0, 100.0, 120.0];
        assert_eq!(judge(&noisy, &[70.0; 3]).status, Change::Unstable);
        assert_eq!(judge(&noisy, &[5.0; 3]).status, Change::Regression);
        // Latency: higher is worse.
        let p99 = |b: &[f64], c: &[f64]| judge_change(b, c, 0.25, false, opts).status;
        assert_eq!(p99(&[100.0; 3], &[200.0; 3]), Change::Regression);
        assert_eq!(p99(&[100.0; 3], &[50.0; 3]), Change::Improved);
    }
}
