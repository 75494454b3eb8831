//! A Markdown summary for a CI job summary page: verdict counts, failing cells with their
//! signatures, gates and regressions, and the result table. Every value from a run (cell ids,
//! signatures, reasons) goes through `code` or `text`, so no `|`, backtick, `*` or newline in one
//! can break a table or the page.

use super::renderer::{Renderer, Report};
use std::fmt::Write;

use super::changes::{AxisChanges, Side};
use super::model::{or_dash, CellView};
use super::summary::Summary;
use super::table::fmt_us;
use crate::judge::Change;

/// `value` as an inline code span that is safe inside a table row: one line, `|` escaped (GFM
/// splits cells on it even in code), fenced by more backticks than any run inside it.
pub fn code(value: &str) -> String {
    let one_line = value.replace(['\r', '\n'], " ").replace('|', "\\|");
    let longest = one_line
        .split(|c| c != '`')
        .map(str::len)
        .max()
        .unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    // A span that starts or ends with a backtick needs a space so the fence is not extended.
    let pad = if one_line.starts_with('`') || one_line.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{one_line}{pad}{fence}")
}

/// `value` as plain Markdown text: one line, every punctuation character that Markdown or
/// inline HTML could read as syntax escaped.
pub fn text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\r' | '\n' => out.push(' '),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '~' | '!' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// One side of a change: verdict, with throughput and p99 when the cell measured them (as the
/// HTML's comparison shows them).
fn side(s: &Side) -> String {
    match (s.throughput, s.p99_us) {
        (Some(t), Some(p)) => format!(
            "{} ({} ops/s, p99 {})",
            s.verdict,
            super::charts::short_number(t),
            fmt_us(p)
        ),
        _ => s.verdict.clone(),
    }
}

/// Along each axis, the cells that differ between neighbouring values (the HTML's first section).
fn what_changes(out: &mut String, axes: &[AxisChanges]) {
    if axes.is_empty() {
        return;
    }
    let _ = writeln!(out, "### What changes\n");
    for a in axes {
        for p in &a.pairs {
            let _ = writeln!(
                out,
                "- {} {} → {}: {} of {} compared cell(s) change",
                text(&a.axis),
                code(&p.from),
                code(&p.to),
                p.changes.len(),
                p.compared
            );
            for c in &p.changes {
                let _ = writeln!(
                    out,
                    "  - with {}: {} → {} ({})",
                    code(&c.context),
                    side(&c.from),
                    side(&c.to),
                    text(&c.what.join("; "))
                );
            }
        }
    }
    out.push('\n');
}

/// `summary.md`.
pub struct Markdown;

impl Renderer for Markdown {
    fn render(&self, r: &Report) -> String {
        render(r.summary, r.cells, r.changes)
    }
}

fn render(s: &Summary, cells: &[CellView], changes: &[AxisChanges]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## cachegate run {}\n", code(&s.run_id));
    let counts: Vec<String> = s
        .verdicts
        .iter()
        .map(|(k, v)| format!("**{k}** {v}"))
        .collect();
    let _ = writeln!(out, "{} · exit code {}\n", counts.join(" · "), s.exit_code);
    if !s.complete {
        let _ = writeln!(out, "**Incomplete run**: {}\n", text(&s.run_end));
        if let Some(note) = super::summary::not_run_note(s) {
            let _ = writeln!(out, "{}\n", text(&note));
        }
    }
    what_changes(&mut out, changes);
    if !s.signatures.is_empty() {
        let _ = writeln!(out, "### Failure signatures\n");
        for g in &s.signatures {
            let _ = writeln!(
                out,
                "- {} — {} cell(s), {} hit(s): {}",
                code(&g.signature),
                g.cells.len(),
                g.hits,
                g.cells
                    .iter()
                    .map(|c| text(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if let Some(e) = &g.explanation {
                let _ = writeln!(
                    out,
                    "  - means: {}\n  - usual cause: {}\n  - what to change: {}",
                    text(&e.means),
                    text(&e.cause),
                    text(&e.fix)
                );
            }
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
                "- ❌ {} {} = {:.3}, needs {}",
                code(&g.cell_id),
                text(&g.metric),
                g.value,
                code(&g.condition)
            );
        }
        out.push('\n');
    }
    if let Some(cmp) = &s.comparison {
        let shown: Vec<_> = cmp
            .iter()
            .filter(|d| !matches!(d.status, Change::Ok | Change::Improved | Change::New))
            .collect();
        let count = |c: Change| cmp.iter().filter(|d| d.status == c).count();
        let _ = writeln!(
            out,
            "### Against the baseline: {} regression(s), {} unstable, {} missing, {} broken, {} not comparable\n",
            count(Change::Regression),
            count(Change::Unstable),
            count(Change::Missing),
            count(Change::Broken),
            count(Change::NotComparable),
        );
        if !crate::judge::compared_anything(cmp) {
            let _ = writeln!(out, "- ❌ nothing was compared: no cell was measured with the same parameters in both runs");
        }
        for d in shown {
            if let Some(note) = &d.note {
                let _ = writeln!(
                    out,
                    "- {} {}: {}",
                    d.status.label(),
                    code(&d.cell_id),
                    text(note)
                );
                continue;
            }
            let _ = writeln!(
                out,
                "- {} {} {}: {} → {} ({:+.1}%, tolerance {:.1}%)",
                d.status.label(),
                code(&d.cell_id),
                text(&d.metric),
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
            let _ = writeln!(out, "- {}", code(&name));
            for e in &c.exceptions {
                let _ = writeln!(out, "  - {} × {}", code(&e.signature), e.count);
            }
        }
        out.push('\n');
    }
    let _ = writeln!(out, "| cell | verdict | ops/s | p50 | p99 | p99.9 | errors | check |\n|---|---|---:|---:|---:|---:|---:|---|");
    for c in cells {
        let h = &c.headline;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            code(&c.name),
            text(&c.verdict_label()),
            or_dash(h.throughput, |t| format!("{t:.0}")),
            or_dash(h.p50_us, fmt_us),
            or_dash(h.p99_us, fmt_us),
            or_dash(h.p999_us, fmt_us),
            or_dash(h.errors, |e| e.to_string()),
            text(&c.check)
        );
    }
    for g in super::model::grids(cells) {
        let _ = writeln!(out, "\n### {} ({})\n", g.title, g.group);
        let _ = writeln!(
            out,
            "| from ↓ to → | {} |\n|---|{}",
            g.cols.join(" | "),
            "---|".repeat(g.cols.len())
        );
        for row in &g.rows {
            let runs: Vec<String> = g
                .cols
                .iter()
                .map(|col| {
                    let seen: Vec<String> = g
                        .at(row, col)
                        .iter()
                        .map(|(text, verdict)| format!("{verdict}: {text}"))
                        .collect();
                    if seen.is_empty() {
                        "-".to_string()
                    } else {
                        seen.join("; ").replace('|', "/")
                    }
                })
                .collect();
            let _ = writeln!(out, "| {row} | {} |", runs.join(" | "));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{code, text};

    /// Count the `|` that end table cells: those not escaped by a backslash.
    fn cell_separators(row: &str) -> usize {
        let b = row.as_bytes();
        (0..b.len())
            .filter(|&i| b[i] == b'|' && (i == 0 || b[i - 1] != b'\\'))
            .count()
    }

    #[test]
    fn hostile_values_stay_inside_their_cell() {
        let hostile = "a|b *bold* `tick` ``two``\nnext | line";
        let row = format!("| {} | {} |", code(hostile), text(hostile));
        assert_eq!(cell_separators(&row), 3, "{row}");
        assert!(!row.contains('\n'));
        // The code span is fenced by more backticks than the longest run inside it.
        assert!(code(hostile).starts_with("```") && !code(hostile).starts_with("````"));
        assert_eq!(code("`x`"), "`` `x` ``");
        assert_eq!(code("plain/id"), "`plain/id`");
        assert_eq!(text("*x* <b>"), "\\*x\\* &lt;b&gt;");
    }
}
