//! A Markdown summary for a CI job summary page: verdict counts, failing cells with their
//! signatures, gates and regressions, and the result table.

use std::fmt::Write;

use super::summary::Summary;
use super::table::fmt_us;
use crate::judge::Change;

pub fn render(s: &Summary) -> String {
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
    let _ = writeln!(out, "| cell | verdict | ops/s | p50 | p99 | p99.9 | errors | check |\n|---|---|---:|---:|---:|---:|---:|---|");
    for c in &s.cells {
        let id = if c.repeat > 0 {
            format!("{} #{}", c.cell_id, c.repeat + 1)
        } else {
            c.cell_id.clone()
        };
        let _ = writeln!(
            out,
            "| `{id}` | {:?} | {:.0} | {} | {} | {} | {} | {} |",
            c.verdict,
            c.throughput,
            fmt_us(c.p50_us),
            fmt_us(c.p99_us),
            fmt_us(c.p999_us),
            c.errors,
            c.check.replace('|', "/")
        );
    }
    out
}
