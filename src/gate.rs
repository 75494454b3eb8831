//! Gates: thresholds on measured metrics (`[gates]` in a matrix, e.g. `"get.p99" = "< 2ms"`), and
//! comparison against a baseline run that tolerates noise: cells are compared by the median of
//! their repeats, a change counts as a regression only beyond max(relative threshold, twice the
//! run-to-run spread seen in either run), and cells whose spread is too large to judge a smaller
//! change are UNSTABLE rather than failed.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::results::CellResult;

/// A metric of a cell: `[OP.]p50|p90|p99|p999|max|mean|throughput|errors`, or a verification
/// outcome: `lost` (sessions or writes lost), `sessions_lost`, `logins_refused`, `recovery_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Metric {
    pub op: Option<String>,
    pub name: String,
}

const OP_METRICS: &[&str] = &[
    "p50",
    "p90",
    "p99",
    "p999",
    "max",
    "mean",
    "throughput",
    "errors",
];
const CHECK_METRICS: &[&str] = &[
    "lost",
    "sessions_lost",
    "logins_refused",
    "recovery_seconds",
];

impl FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (op, name) = match s.rsplit_once('.') {
            Some((op, name)) => (Some(op.to_string()), name),
            None => (None, s),
        };
        let known = OP_METRICS.contains(&name) || (op.is_none() && CHECK_METRICS.contains(&name));
        if !known {
            return Err(format!(
                "unknown metric `{s}`: use [OP.]{} or one of {}",
                OP_METRICS.join("|"),
                CHECK_METRICS.join(", ")
            ));
        }
        Ok(Metric {
            op,
            name: name.to_string(),
        })
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.op {
            Some(op) => write!(f, "{op}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl TryFrom<String> for Metric {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Metric> for String {
    fn from(m: Metric) -> String {
        m.to_string()
    }
}

impl Metric {
    /// Latencies are in µs; higher is worse for everything but throughput.
    pub fn higher_is_better(&self) -> bool {
        self.name == "throughput"
    }

    fn is_latency(&self) -> bool {
        matches!(
            self.name.as_str(),
            "p50" | "p90" | "p99" | "p999" | "max" | "mean"
        )
    }

    /// The metric's value in a cell, if the cell has it.
    pub fn value(&self, r: &CellResult) -> Option<f64> {
        if CHECK_METRICS.contains(&self.name.as_str()) {
            return match self.name.as_str() {
                "lost" => r
                    .persistence
                    .as_ref()
                    .map(|p| p.lost as f64)
                    .or(r.eviction.as_ref().map(|e| e.sessions_lost as f64)),
                "sessions_lost" => r
                    .persistence
                    .as_ref()
                    .filter(|p| p.subject == "sessions")
                    .map(|p| p.lost as f64)
                    .or(r.eviction.as_ref().map(|e| e.sessions_lost as f64)),
                "logins_refused" => r.eviction.as_ref().map(|e| e.logins_refused as f64),
                _ => r.outage.as_ref().map(|o| o.recovery_seconds),
            };
        }
        let op = r
            .ops
            .iter()
            .find(|o| o.op == self.op.as_deref().unwrap_or("all"))?;
        let l = &op.latency;
        Some(match self.name.as_str() {
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cmp {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "==")]
    Eq,
}

/// A condition like `< 2ms`, `> 50000`, `== 0`. Durations are converted to µs (latency metrics)
/// or seconds (recovery_seconds) when the gate is checked; a bare number is taken as is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Condition {
    pub cmp: Cmp,
    /// The number as written, and its duration in µs if it had a unit.
    pub number: f64,
    pub duration_us: Option<f64>,
    text: String,
}

impl FromStr for Condition {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let (cmp, rest) = [
            ("<=", Cmp::Le),
            (">=", Cmp::Ge),
            ("==", Cmp::Eq),
            ("<", Cmp::Lt),
            (">", Cmp::Gt),
        ]
        .iter()
        .find_map(|(p, c)| t.strip_prefix(p).map(|r| (*c, r.trim())))
        .ok_or_else(|| {
            format!("bad condition `{s}`: start with <, <=, >, >= or ==, e.g. \"< 2ms\"")
        })?;
        let rest = rest.trim_end_matches("/s").trim();
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
            .unwrap_or(rest.len());
        let (num, unit) = rest.split_at(split);
        let number: f64 = num
            .replace('_', "")
            .parse()
            .map_err(|_| format!("bad condition `{s}`: `{num}` is not a number"))?;
        let duration_us = match unit.trim() {
            "" => None,
            "us" | "µs" => Some(number),
            "ms" => Some(number * 1e3),
            "s" => Some(number * 1e6),
            other => {
                return Err(format!(
                    "bad condition `{s}`: unknown unit `{other}` (us, ms, s)"
                ))
            }
        };
        Ok(Condition {
            cmp,
            number,
            duration_us,
            text: t.to_string(),
        })
    }
}

impl TryFrom<String> for Condition {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Condition> for String {
    fn from(c: Condition) -> String {
        c.text
    }
}

impl Condition {
    /// The threshold in the metric's unit.
    fn threshold(&self, metric: &Metric) -> f64 {
        match self.duration_us {
            Some(us) if metric.is_latency() => us,
            Some(us) if metric.name == "recovery_seconds" => us / 1e6,
            _ => self.number,
        }
    }

    pub fn holds(&self, metric: &Metric, value: f64) -> bool {
        let t = self.threshold(metric);
        match self.cmp {
            Cmp::Lt => value < t,
            Cmp::Le => value <= t,
            Cmp::Gt => value > t,
            Cmp::Ge => value >= t,
            Cmp::Eq => (value - t).abs() < 1e-9,
        }
    }
}

/// `[gates]` of a matrix: metric → condition.
pub type Gates = BTreeMap<Metric, Condition>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateOutcome {
    pub cell_id: String,
    pub metric: String,
    pub condition: String,
    /// Median over the cell's repeats.
    pub value: f64,
    pub passed: bool,
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

/// Check every cell's gates (recorded in its results) on the median of its repeats.
pub fn check_gates(results: &[CellResult]) -> Vec<GateOutcome> {
    let mut out = Vec::new();
    for (id, runs) in by_cell(results) {
        for (metric, cond) in &runs[0].gates {
            let values: Vec<f64> = runs.iter().filter_map(|r| metric.value(r)).collect();
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
    /// Only in the baseline.
    Missing,
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
        for (metric, threshold) in &metrics {
            let cv: Vec<f64> = runs
                .iter()
                .filter(|r| r.infra_error.is_none())
                .filter_map(|r| metric.value(r))
                .collect();
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
                });
                continue;
            };
            let bv: Vec<f64> = b
                .iter()
                .filter(|r| r.infra_error.is_none())
                .filter_map(|r| metric.value(r))
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
            });
        }
    }
    for (id, _) in &base {
        if !cur.iter().any(|(cid, _)| cid == id) {
            out.push(Delta {
                cell_id: id.clone(),
                metric: "-".into(),
                baseline: None,
                current: None,
                change: None,
                noise: 0.0,
                tolerance: 0.0,
                status: Change::Missing,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_and_metrics_parse() {
        let c: Condition = "< 2ms".parse().unwrap();
        let p99: Metric = "get.p99".parse().unwrap();
        assert!(c.holds(&p99, 1999.0) && !c.holds(&p99, 2000.0));
        let t: Metric = "throughput".parse().unwrap();
        assert!(">= 50_000/s"
            .parse::<Condition>()
            .unwrap()
            .holds(&t, 50_000.0));
        assert!("== 0"
            .parse::<Condition>()
            .unwrap()
            .holds(&"errors".parse().unwrap(), 0.0));
        assert!("<2 parsecs".parse::<Condition>().is_err());
        assert!("about 5".parse::<Condition>().is_err());
        assert!("get.lost".parse::<Metric>().is_err());
        assert!("p98".parse::<Metric>().is_err());
        let r: Metric = "recovery_seconds".parse().unwrap();
        assert!("< 5s".parse::<Condition>().unwrap().holds(&r, 4.0));
    }

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
