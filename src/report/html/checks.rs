//! The verification sections: a grid per group for checks about a transition (from × to), and
//! one table per kind of check (its rows come from the check itself, `CheckView`).

use std::fmt::Write;

use super::{esc, label, verdict_badge, vname};
use crate::report::model::{self, CellView};
use crate::results::checks::{Check, Field, Section};
use crate::results::CellResult;

/// Every transition grid, then every section some cell's check belongs to, in the registry's
/// order.
pub(super) fn sections(h: &mut String, results: &[CellResult], cells: &[CellView]) {
    for g in model::grids(cells) {
        let _ = write!(
            h,
            "<h2>{} ({})</h2><table><tr><th>from ↓ · to →</th>",
            esc(g.title),
            esc(&g.group)
        );
        for col in &g.cols {
            let _ = write!(h, "<th>{}</th>", esc(col));
        }
        h.push_str("</tr>");
        for row in &g.rows {
            let _ = write!(h, "<tr><th>{}</th>", esc(row));
            for col in &g.cols {
                h.push_str("<td>");
                for (text, verdict) in g.at(row, col) {
                    let badge = verdict.split(',').next().unwrap_or(verdict);
                    let _ = write!(h, "<div>{} {}</div>", verdict_badge(badge), esc(text));
                }
                h.push_str("</td>");
            }
            h.push_str("</tr>");
        }
        h.push_str("</table>");
    }
    for section in Check::SECTIONS {
        table(h, section, results);
    }
}

/// One row per cell whose check belongs to `section`; nothing when none does.
fn table(h: &mut String, section: &Section, results: &[CellResult]) {
    let rows: Vec<(&CellResult, &Check)> = results
        .iter()
        .filter_map(|r| r.check.as_ref().map(|c| (r, c)))
        .filter(|(_, c)| c.section() == section)
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = write!(h, "<h2>{}</h2><table><tr><th>cell</th>", section.title);
    for head in section.headers {
        let _ = write!(h, "<th>{head}</th>");
    }
    h.push_str("<th>verdict</th></tr>");
    for (r, c) in rows {
        let _ = write!(h, "<tr><td>{}</td>", esc(&label(r)));
        for field in c.row() {
            td(h, &field);
        }
        let _ = write!(h, "<td>{}</td></tr>", verdict_badge(&vname(r.verdict)));
    }
    h.push_str("</table>");
}

fn td(h: &mut String, f: &Field) {
    let class = if f.num { " class=\"num\"" } else { "" };
    let _ = write!(h, "<td{class}>{}", esc(&f.text));
    for n in &f.notes {
        h.push_str("<div class=\"muted\">");
        if let Some(l) = n.label {
            let _ = write!(h, "<b>{}</b> ", esc(l));
        }
        let _ = write!(h, "{}</div>", esc(&n.text));
    }
    h.push_str("</td>");
}
