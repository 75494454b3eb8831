//! "What changes when we upgrade": along each axis, in the order the matrix lists its values,
//! every pair of neighbouring values (django-4.2 → django-5.2, redis@6.2 → redis@7.4) and the
//! cells that differ between them with everything else equal: a verdict or failure signature
//! that changes, or throughput / p99 that moves beyond the noise band a baseline comparison
//! uses (its threshold, or twice the repeats' spread when that is larger).

use super::model::CellView;
use super::pivot;
use crate::config::report_section::AXES;
use crate::judge::{self, CompareOptions};
use crate::results::CellResult;

/// One axis's neighbouring pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct AxisChanges {
    pub axis: String,
    pub pairs: Vec<PairChanges>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PairChanges {
    pub from: String,
    pub to: String,
    /// Cells with a counterpart on the other side (everything else equal).
    pub compared: usize,
    pub changes: Vec<CellChange>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CellChange {
    /// The other axes' values, shared by both cells.
    pub context: String,
    pub from: Side,
    pub to: Side,
    /// What changed, in words ("verdict PASS → XFAIL", "p99 +41%").
    pub what: Vec<String>,
}

/// One cell (its repeats together) as the comparison sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Side {
    pub cell_id: String,
    /// The worst repeat's verdict label.
    pub verdict: String,
    pub signature: Option<String>,
    pub throughput: Option<f64>,
    pub p99_us: Option<f64>,
}

struct Cell<'a> {
    id: &'a str,
    axes: &'a std::collections::BTreeMap<String, String>,
    views: Vec<&'a CellView>,
    results: Vec<&'a CellResult>,
}

fn cells<'a>(results: &'a [CellResult], views: &'a [CellView]) -> Vec<Cell<'a>> {
    let mut out: Vec<Cell> = Vec::new();
    for (r, v) in results.iter().zip(views) {
        match out.iter_mut().find(|c| c.id == r.cell_id) {
            Some(c) => {
                c.views.push(v);
                c.results.push(r);
            }
            None => out.push(Cell {
                id: &r.cell_id,
                axes: &r.axes,
                views: vec![v],
                results: vec![r],
            }),
        }
    }
    out
}

/// Numbers of repeats whose scenario passed: a failed cell's throughput measures its errors.
fn numbers(c: &Cell, f: impl Fn(&CellView) -> Option<f64>) -> Vec<f64> {
    c.views
        .iter()
        .filter(|v| !v.verdict.is_failure())
        .filter_map(|v| f(v))
        .collect()
}

fn side(c: &Cell) -> Side {
    let worst = c
        .views
        .iter()
        .max_by_key(|v| v.verdict.severity())
        .expect("a cell has a run");
    let median = |v: Vec<f64>| (!v.is_empty()).then(|| judge::median(v));
    Side {
        cell_id: c.id.to_string(),
        verdict: worst.verdict_label(),
        signature: worst.signature.clone(),
        throughput: median(numbers(c, |v| v.headline.throughput)),
        p99_us: median(numbers(c, |v| v.headline.p99_us)),
    }
}

/// What differs between `a` and `b`, whose sides are `sa` and `sb`.
fn compare(a: &Cell, b: &Cell, sa: &Side, sb: &Side) -> Vec<String> {
    let mut what = Vec::new();
    if sa.verdict != sb.verdict {
        what.push(format!("verdict {} → {}", sa.verdict, sb.verdict));
    }
    if sa.signature.is_some() && sb.signature.is_some() && sa.signature != sb.signature {
        what.push("failure signature".into());
    }
    // Numbers of different scenario kinds (a restart beside an outage) measure different things.
    if a.results[0].scenario_kind != b.results[0].scenario_kind {
        return what;
    }
    let opts = CompareOptions::default();
    for (name, f, threshold) in [
        (
            "throughput",
            (|v: &CellView| v.headline.throughput) as fn(&CellView) -> Option<f64>,
            opts.throughput_threshold,
        ),
        (
            "p99",
            |v: &CellView| v.headline.p99_us,
            opts.latency_threshold,
        ),
    ] {
        let (x, y) = (numbers(a, f), numbers(b, f));
        if x.is_empty() || y.is_empty() {
            continue;
        }
        if let Some(change) = judge::baseline::change_beyond_noise(&x, &y, threshold) {
            what.push(format!("{name} {:+.0}%", change * 100.0));
        }
    }
    what
}

pub fn along_axes(results: &[CellResult], views: &[CellView]) -> Vec<AxisChanges> {
    let cells = cells(results, views);
    let mut out = Vec::new();
    for axis in AXES {
        let values = pivot::values(results, axis);
        if values.len() < 2 {
            continue;
        }
        let others: Vec<String> = AXES
            .iter()
            .filter(|a| *a != axis)
            .map(|a| a.to_string())
            .collect();
        let context = |c: &Cell| -> Vec<Option<String>> {
            others.iter().map(|a| c.axes.get(a).cloned()).collect()
        };
        let mut pairs = Vec::new();
        for w in values.windows(2) {
            let (from, to) = (&w[0], &w[1]);
            let mut compared = 0;
            let mut changes = Vec::new();
            for a in cells.iter().filter(|c| c.axes.get(*axis) == Some(from)) {
                let Some(b) = cells
                    .iter()
                    .find(|c| c.axes.get(*axis) == Some(to) && context(c) == context(a))
                else {
                    continue;
                };
                compared += 1;
                let (sa, sb) = (side(a), side(b));
                let what = compare(a, b, &sa, &sb);
                if !what.is_empty() {
                    changes.push(CellChange {
                        context: pivot::key(a.results[0], &others_present(a, &others)),
                        from: sa,
                        to: sb,
                        what,
                    });
                }
            }
            if compared == 0 {
                continue;
            }
            pairs.push(PairChanges {
                from: from.clone(),
                to: to.clone(),
                compared,
                changes,
            });
        }
        if pairs.is_empty() {
            continue;
        }
        out.push(AxisChanges {
            axis: axis.to_string(),
            pairs,
        });
    }
    out
}

/// The other axes this cell has, for its context label.
fn others_present(c: &Cell, others: &[String]) -> Vec<String> {
    others
        .iter()
        .filter(|a| c.axes.contains_key(*a))
        .cloned()
        .collect()
}
