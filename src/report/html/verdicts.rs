//! The verdict matrix, pivoted by the run's shape (`pivot`), and the "what changes" section
//! (`changes`): the two views a reviewer reads first.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{esc, verdict_badge};
use crate::report::changes::{AxisChanges, Side};
use crate::report::model::{verdict_name, CellView};
use crate::report::pivot::{self, abbreviate};
use crate::results::store::RunInfo;
use crate::results::CellResult;

/// Header labels longer than this are abbreviated (full text on hover).
const HEADER_CHARS: usize = 22;
/// Signatures in a matrix cell are cut to this (the full one on hover and in the details).
const SIGNATURE_CHARS: usize = 90;

/// Where a cell's details are on the page.
pub fn anchor(cell_id: &str) -> String {
    format!("cell-{cell_id}")
}

fn header(label: &str) -> String {
    format!(
        "<span title=\"{}\">{}</span>",
        esc(label),
        esc(&abbreviate(label, HEADER_CHARS))
    )
}

pub fn matrix(h: &mut String, results: &[CellResult], views: &[CellView], info: Option<&RunInfo>) {
    let layout = pivot::layout(results, info.map(|i| &i.report));
    let mut rows: Vec<String> = Vec::new();
    let mut cols: Vec<String> = Vec::new();
    let mut cells: BTreeMap<(String, String), Vec<(&CellResult, &CellView)>> = BTreeMap::new();
    for (r, v) in results.iter().zip(views) {
        let (row, col) = (pivot::key(r, &layout.rows), pivot::key(r, &layout.columns));
        if !rows.contains(&row) {
            rows.push(row.clone());
        }
        if !cols.contains(&col) {
            cols.push(col.clone());
        }
        cells.entry((row, col)).or_default().push((r, v));
    }
    let axes_label = |axes: &[String]| {
        if axes.is_empty() {
            "cells".to_string()
        } else {
            axes.join(" · ")
        }
    };
    h.push_str("<h2>Verdicts</h2>");
    let constant: Vec<String> = layout
        .constant
        .iter()
        .map(|(a, v)| format!("{a} {}", esc(v)))
        .collect();
    let _ = write!(
        h,
        "<p class=\"muted\">rows: {} · columns: {}{}</p>",
        esc(&axes_label(&layout.rows)),
        esc(&axes_label(&layout.columns)),
        if constant.is_empty() {
            String::new()
        } else {
            format!(" · every cell: {}", constant.join(", "))
        }
    );
    let _ = write!(
        h,
        "<table class=\"verdicts\"><tr><th class=\"rowhead\">{}</th>",
        esc(&axes_label(&layout.rows))
    );
    for c in &cols {
        let _ = write!(h, "<th>{}</th>", header(c));
    }
    h.push_str("</tr>");
    for row in &rows {
        let _ = write!(h, "<tr><th class=\"rowhead\">{}</th>", header(row));
        for col in &cols {
            match cells.get(&(row.clone(), col.clone())) {
                None => {
                    h.push_str("<td class=\"muted\">no cell</td>");
                }
                Some(runs) => cell(h, runs),
            }
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
}

fn cell(h: &mut String, runs: &[(&CellResult, &CellView)]) {
    let (r, c) = runs[0];
    let worst = runs
        .iter()
        .map(|(_, v)| v.verdict)
        .max_by_key(|v| v.severity())
        .expect("at least one run");
    let reps = if runs.len() > 1 {
        let all: Vec<String> = runs.iter().map(|(_, v)| verdict_name(v.verdict)).collect();
        format!(" <span class=\"muted\">{}</span>", all.join(" "))
    } else {
        String::new()
    };
    let detail = match &c.signature {
        Some(sig) => format!(
            "<div class=\"sig\" title=\"{}\">{}</div>",
            esc(sig),
            esc(&abbreviate(sig, SIGNATURE_CHARS))
        ),
        None => format!(
            "<div class=\"muted\">{}</div>",
            esc(&abbreviate(&c.check, SIGNATURE_CHARS))
        ),
    };
    // A failed gate shows on the cell, whatever the scenario's verdict.
    let gates = if c.failed_gates.is_empty() {
        String::new()
    } else {
        format!(
            " {}<div class=\"sig\">gate failed: {}</div>",
            verdict_badge("GATE").replace(">GATE<", ">GATE FAILED<"),
            esc(&c.failed_gates.join("; "))
        )
    };
    let _ = write!(
        h,
        "<td title=\"{id}\"><a href=\"#{}\">{}</a>{reps}{gates}{detail}</td>",
        esc(&anchor(&r.cell_id)),
        verdict_badge(&verdict_name(worst)),
        id = esc(&r.cell_id)
    );
}

fn side(s: &Side) -> String {
    let numbers = match (s.throughput, s.p99_us) {
        (Some(t), Some(p)) => format!(
            "<div class=\"muted\">{} ops/s · p99 {}</div>",
            crate::report::charts::short_number(t),
            crate::report::table::fmt_us(p)
        ),
        _ => String::new(),
    };
    let sig = s.signature.as_ref().map_or(String::new(), |sig| {
        format!(
            "<div class=\"sig\" title=\"{}\">{}</div>",
            esc(sig),
            esc(&abbreviate(sig, SIGNATURE_CHARS))
        )
    });
    let verdict = s.verdict.split(',').next().unwrap_or("");
    format!(
        "<a href=\"#{}\">{}</a>{}{numbers}{sig}",
        esc(&anchor(&s.cell_id)),
        verdict_badge(verdict),
        if s.verdict.contains("GATE") {
            " gate failed"
        } else {
            ""
        }
    )
}

/// Along each axis, what differs between neighbouring values, everything else equal.
pub fn what_changes(h: &mut String, axes: &[AxisChanges]) {
    if axes.is_empty() {
        return;
    }
    h.push_str("<h2 id=\"what-changes\">What changes</h2><p class=\"muted\">Along each axis, from each value to the next in the order the matrix lists them: the cells that differ with every other axis equal — in verdict, in failure signature, or in throughput or p99 beyond the noise band (the baseline comparison's threshold, or twice the repeats' spread when larger). Failed cells' numbers are not compared.</p>");
    for a in axes {
        let _ = write!(h, "<h3>{}</h3>", esc(&a.axis));
        for p in &a.pairs {
            let _ = write!(
                h,
                "<p class=\"pair\"><b>{} → {}</b>: {} of {} compared cell(s) change</p>",
                esc(&p.from),
                esc(&p.to),
                p.changes.len(),
                p.compared
            );
            if p.changes.is_empty() {
                continue;
            }
            let _ = write!(
                h,
                "<table class=\"changes\"><tr><th>with</th><th>{}</th><th>{}</th><th>what changed</th></tr>",
                esc(&abbreviate(&p.from, HEADER_CHARS)),
                esc(&abbreviate(&p.to, HEADER_CHARS))
            );
            for c in &p.changes {
                let _ = write!(
                    h,
                    "<tr class=\"change\" data-from=\"{}\" data-to=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&c.from.cell_id),
                    esc(&c.to.cell_id),
                    esc(&c.context),
                    side(&c.from),
                    side(&c.to),
                    esc(&c.what.join("; "))
                );
            }
            h.push_str("</table>");
        }
    }
}
