//! The short text table printed at the end of a run: one row per cell with the numbers its
//! scenario kind puts at the head (`model::Headline`), the verdict with any failed gate, and
//! the verification scenarios' outcome in a last column.

use super::model::{or_dash, CellView};
use super::renderer::{Renderer, Report};
use crate::results::Verdict;

const HEADER: [&str; 8] = [
    "cell", "verdict", "ops/s", "p50", "p99", "p99.9", "errors", "check",
];

/// The console table printed at the end of a run and by `report`.
pub struct Table;

impl Renderer for Table {
    fn render(&self, r: &Report) -> String {
        render(r.cells)
    }
}

fn render(cells: &[CellView]) -> String {
    let rows: Vec<[String; 8]> = cells.iter().map(row).collect();
    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i < 2 || i == 7 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(&HEADER.map(String::from))];
    out.extend(rows.iter().map(|r| line(r)));
    if cells.iter().any(|c| c.headline.latency_with_failures) {
        out.push(
            "  latency: every timed request, failed ones included (the details split them)".into(),
        );
    }
    for c in cells.iter().filter(|c| c.verdict != Verdict::Pass) {
        out.push(format!(
            "  {} {}: {}",
            super::model::verdict_name(c.verdict),
            c.cell_id,
            c.reason
        ));
    }
    out.join("\n") + "\n"
}

fn row(c: &CellView) -> [String; 8] {
    let h = &c.headline;
    [
        c.name.clone(),
        c.verdict_label(),
        or_dash(h.throughput, |t| format!("{t:.0}")),
        or_dash(h.p50_us, fmt_us),
        or_dash(h.p99_us, fmt_us),
        or_dash(h.p999_us, fmt_us),
        or_dash(h.errors, |e| e.to_string()),
        c.check.clone(),
    ]
}

/// Microseconds, shown in µs below 10 ms and in ms above.
pub fn fmt_us(us: f64) -> String {
    if us < 10_000.0 {
        format!("{us:.0}µs")
    } else {
        format!("{:.1}ms", us / 1000.0)
    }
}
