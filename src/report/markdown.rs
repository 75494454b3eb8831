//! A Markdown summary for a CI job summary page: verdict counts, failing cells with their
//! signatures, gates and regressions, and the result table.

use std::fmt::Write;

use super::model::{or_dash, CellView};
use super::summary::Summary;
use super::table::fmt_us;
use crate::judge::Change;

pub fn render(s: &Summary, cells: &[CellView]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## cachegate run `{}`\n", s.run_id);
    let counts: Vec<String> = s
        .verdicts
        .iter()
        .map(|(k, v)| format!("**{k}** {v}"))
        .collect();
    let _ = writeln!(out, "{} · exit code {}\n", counts.join(" · "), s.exit_code);
    if !s.complete {
        let _ = writeln!(out, "**Incomplete run**: {}\n", s.run_end);
        if let Some(note) = super::summary::not_run_note(s) {
            let _ = writeln!(out, "{note}\n");
        }
    }
    if !s.signatures.is_empty() {
        let _ = writeln!(out, "### Failure signatures\n");
        for g in &s.signatures {
            let _ = writeln!(
                out,
                "- `{}` — {} cell(s), {} hit(s): {}",
                g.signature.replace('`', "'"),
                g.cells.len(),
                g.hits,
                g.cells.join(", ")
            );
        }
        out.push('\n');
    }
    let failed_gates: Vec<_> = s.gates.iter().filter(|g| !g.passed).collect();
    if !s.gates.is_empty() {
        let _ = writeln!(
            out,
            "### Gates: {} of {} passed\n",
            s.gates.len() - failed_gates.len(),
            s.gates.len()
        );
        for g in failed_gates {
            let _ = writeln!(
                out,
                "- ❌ `{}` {} = {:.3}, needs {}",
                g.cell_id, g.metric, g.value, g.condition
            );
        }
        out.push('\n');
    }
    if let Some(cmp) = &s.comparison {
        let bad: Vec<_> = cmp
            .iter()
            .filter(|d| matches!(d.status, Change::Regression | Change::Unstable))
            .collect();
        let _ = writeln!(
            out,
            "### Against the baseline: {} regression(s), {} unstable\n",
            bad.iter()
                .filter(|d| d.status == Change::Regression)
                .count(),
            bad.iter().filter(|d| d.status == Change::Unstable).count()
        );
        for d in bad {
            let _ = writeln!(
                out,
                "- {:?} `{}` {}: {} → {} ({:+.1}%, tolerance {:.1}%)",
                d.status,
                d.cell_id,
                d.metric,
                d.baseline.map_or("-".into(), |v| format!("{v:.1}")),
                d.current.map_or("-".into(), |v| format!("{v:.1}")),
                d.change.unwrap_or(0.0) * 100.0,
                d.tolerance * 100.0
            );
        }
        out.push('\n');
    }
    let with_exceptions: Vec<_> = s
        .cells
        .iter()
        .filter(|c| !c.exceptions.is_empty())
        .collect();
    if !with_exceptions.is_empty() {
        let _ = writeln!(out, "### App exceptions per cell\n");
        for c in with_exceptions {
            let name = super::model::run_name(&c.cell_id, c.repeat);
            let _ = writeln!(out, "- `{name}`");
            for e in &c.exceptions {
                let _ = writeln!(out, "  - `{}` × {}", e.signature.replace('`', "'"), e.count);
            }
        }
        out.push('\n');
    }
    let _ = writeln!(out, "| cell | verdict | ops/s | p50 | p99 | p99.9 | errors | check |\n|---|---|---:|---:|---:|---:|---:|---|");
    for c in cells {
        let h = &c.headline;
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} | {} | {} |",
            c.name,
            c.verdict_label(),
            or_dash(h.throughput, |t| format!("{t:.0}")),
            or_dash(h.p50_us, fmt_us),
            or_dash(h.p99_us, fmt_us),
            or_dash(h.p999_us, fmt_us),
            or_dash(h.errors, |e| e.to_string()),
            c.check.replace('|', "/")
        );
    }
    out
}
