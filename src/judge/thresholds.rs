//! Thresholds: each cell's `[gates]` (recorded in its results) checked on the median of its
//! repeats.

use serde::{Deserialize, Serialize};

use super::{by_cell, median};
use crate::config::gates::{Metric, CHECK_METRICS};
use crate::results::CellResult;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateOutcome {
    pub cell_id: String,
    pub metric: String,
    pub condition: String,
    /// Median over the cell's repeats.
    pub value: f64,
    pub passed: bool,
}

/// A metric's value in a cell, if the cell has it.
pub fn value(metric: &Metric, r: &CellResult) -> Option<f64> {
    if CHECK_METRICS.contains(&metric.name.as_str()) {
        return r.check.as_ref().and_then(|c| c.metric(&metric.name));
    }
    let op = r
        .ops
        .iter()
        .find(|o| o.op == metric.op.as_deref().unwrap_or("all"))?;
    // `failed_*`: the failed operations only (0 when none was timed); `waited_*`: every one.
    let (l, name) = if let Some(name) = metric.name.strip_prefix("failed_") {
        (op.failed_latency.clone().unwrap_or_default(), name)
    } else if let Some(name) = metric.name.strip_prefix("waited_") {
        (op.waited().clone(), name)
    } else {
        (op.latency.clone(), metric.name.as_str())
    };
    Some(match name {
        "p50" => l.p50_us,
        "p90" => l.p90_us,
        "p99" => l.p99_us,
        "p999" => l.p999_us,
        "max" => l.max_us,
        "mean" => l.mean_us,
        "throughput" => op.throughput,
        _ => op.errors as f64,
    })
}

/// Check every cell's gates (recorded in its results) on the median of its repeats.
pub fn check_gates(results: &[CellResult]) -> Vec<GateOutcome> {
    let mut out = Vec::new();
    for (id, runs) in by_cell(results) {
        for (metric, cond) in &runs[0].gates {
            let values: Vec<f64> = runs.iter().filter_map(|r| value(metric, r)).collect();
            if values.is_empty() {
                continue;
            }
            let value = median(values);
            out.push(GateOutcome {
                cell_id: id.clone(),
                metric: metric.to_string(),
                condition: String::from(cond.clone()),
                value,
                passed: cond.holds(metric, value),
            });
        }
    }
    out
}
