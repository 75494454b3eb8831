//! `index.html`: one self-contained page per run (inline CSS and SVG; no script, no network),
//! readable on a laptop and printable. Rendered only from the results (and a baseline's).

use super::renderer::{Renderer, Report};
use std::collections::BTreeMap;
use std::fmt::Write;

mod checks;
mod verdicts;

use super::changes::AxisChanges;
use super::charts::{self, Series};
use super::model::CellView;
use super::summary::Summary;
use super::table::fmt_us;
use crate::judge::Change;
use crate::results::latency::decode;
use crate::results::store::RunInfo;
use crate::results::{CellResult, Verdict};

const CSS: &str = r#"
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1400px;padding:0 16px;color:#222}
h1{font-size:1.5em;margin-bottom:4px} h2{font-size:1.2em;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0;font-size:13px} th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3} td.num{text-align:right;font-variant-numeric:tabular-nums}
.v{font-weight:bold;padding:2px 6px;border-radius:3px;display:inline-block}
.PASS{background:#d4f4d4;color:#14551b}.FAIL{background:#f9d0d0;color:#8a1010}.XFAIL{background:#e3e3f9;color:#2d2d84}
.XPASS{background:#fbe6c2;color:#7a4a00}.GATE{background:#f9d0d0;color:#8a1010}.ERROR,.NOTRUN,.UNSUPPORTED{background:#e6e6e6;color:#444}
.REGRESSION{background:#f9d0d0}.IMPROVED{background:#d4f4d4}.UNSTABLE{background:#fbe6c2}
.sig{font-family:ui-monospace,monospace;font-size:12px;color:#6a1b1b} .muted{color:#666;font-size:12px} .incomplete{background:#fff3cd;border:1px solid #e0b84c;padding:6px 10px}
code,pre{font-family:ui-monospace,monospace;font-size:12px;background:#f6f6f6;padding:1px 3px}
pre{padding:8px;white-space:pre-wrap;word-break:break-all}
.chips span{margin-right:8px} .chart{margin:12px 0;overflow-x:auto} svg{max-width:100%;height:auto}
table.verdicts{table-layout:fixed;width:100%} table.verdicts td,table.verdicts th{overflow-wrap:anywhere} th.rowhead{width:22%}
table.verdicts td a,table.changes td a{text-decoration:none} table.changes{width:100%;table-layout:fixed} table.changes td{overflow-wrap:anywhere}
.explain{font-size:12px;color:#333} .explain b{color:#555} .windows{font-size:12px;color:#7a2020;margin:2px 0 0 60px}
.shade{display:inline-block;width:12px;height:12px;background:rgb(253,218,218);border:1px solid #e3b0b0;vertical-align:middle;margin-right:4px}
details{margin:6px 0} .legend{font-size:12px;margin:2px 0 0 60px} summary{cursor:pointer}
@media print{body{margin:0;max-width:none} .chart{break-inside:avoid} details{display:block} h2{break-after:avoid}}
"#;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        // Also inside single-quoted attributes (the SVG charts' own markup uses them).
        .replace('\'', "&#39;")
}

fn verdict_badge(v: &str) -> String {
    format!("<span class=\"v {v}\">{v}</span>")
}

fn vname(v: Verdict) -> String {
    format!("{v:?}").to_uppercase()
}

/// The name a cell is plotted under: its id with repeats numbered.
fn label(r: &CellResult) -> String {
    if r.repeat > 0 {
        format!("{} #{}", r.cell_id, r.repeat + 1)
    } else {
        r.cell_id.clone()
    }
}

/// `index.html`.
pub struct Html;

impl Renderer for Html {
    fn render(&self, r: &Report) -> String {
        render(r.results, r.cells, r.changes, r.summary, r.info)
    }
}

fn render(
    results: &[CellResult],
    cells: &[CellView],
    changes: &[AxisChanges],
    summary: &Summary,
    info: Option<&RunInfo>,
) -> String {
    let mut h = String::new();
    let title = info
        .map(|i| i.run_id.clone())
        .unwrap_or_else(|| summary.run_id.clone());
    let _ = write!(h, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>cachegate {}</title><style>{CSS}</style></head><body>", esc(&title));
    let _ = write!(h, "<h1>cachegate run {}</h1>", esc(&title));
    let chips: Vec<String> = summary
        .verdicts
        .iter()
        .map(|(k, v)| format!("<span>{} {v}</span>", verdict_badge(k)))
        .collect();
    let _ = write!(
        h,
        "<p class=\"chips\">{} <span class=\"muted\">exit code {}</span></p>",
        chips.join(""),
        summary.exit_code
    );
    if !summary.complete {
        let _ = write!(
            h,
            "<p class=\"incomplete\"><b>Incomplete run</b>: {}{}</p>",
            esc(&summary.run_end),
            super::summary::not_run_note(summary)
                .map(|n| format!(" · {}", esc(&n)))
                .unwrap_or_default()
        );
    }
    if let Some(i) = info {
        let _ = write!(
            h,
            "<p class=\"muted\">started {} · matrices {} · {} cells</p>",
            i.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
            esc(&i.matrices.join(", ")),
            i.cells
        );
    }
    // When the run spans versions, what changes between them is what a reviewer asks first.
    verdicts::what_changes(&mut h, changes);
    verdicts::matrix(&mut h, results, cells, info);
    signatures(&mut h, summary);
    gates_and_baseline(&mut h, summary);
    charts_section(&mut h, results);
    checks::sections(&mut h, results, cells);
    cell_details(&mut h, results, info);
    environment(&mut h, results, info);
    h.push_str("</body></html>\n");
    h
}

fn signatures(h: &mut String, s: &Summary) {
    if s.signatures.is_empty() {
        return;
    }
    let _ = write!(
        h,
        "<h2>Failure signatures</h2><table><tr><th>signature</th><th>what it means</th><th>cells</th><th>hits</th></tr>"
    );
    for g in &s.signatures {
        let explanation = g.explanation.as_ref().map_or(
            "<span class=\"muted\">no explanation matches (add one with the matrix's [report] explanations)</span>".to_string(),
            |e| {
                format!(
                    "<div class=\"explain\">{}<br><b>usual cause:</b> {}<br><b>what to change:</b> {}</div>",
                    esc(&e.means),
                    esc(&e.cause),
                    esc(&e.fix)
                )
            },
        );
        let _ = write!(
            h,
            "<tr><td class=\"sig\">{}</td><td>{explanation}</td><td>{} cell(s): {}</td><td class=\"num\">{}</td></tr>",
            esc(&g.signature),
            g.cells.len(),
            esc(&g.cells.join(", ")),
            g.hits
        );
    }
    h.push_str("</table>");
}

fn gates_and_baseline(h: &mut String, s: &Summary) {
    if !s.gates.is_empty() {
        let _ = write!(h, "<h2>Gates</h2><table><tr><th>cell</th><th>metric</th><th>condition</th><th>value (median)</th><th>result</th></tr>");
        for g in &s.gates {
            let v = if g.passed { "PASS" } else { "FAIL" };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{:.3}</td><td>{}</td></tr>",
                esc(&g.cell_id),
                esc(&g.metric),
                esc(&g.condition),
                g.value,
                verdict_badge(v)
            );
        }
        h.push_str("</table>");
    }
    if let Some(cmp) = &s.comparison {
        let _ = write!(h, "<h2>Against the baseline</h2><p class=\"muted\">Medians of repeats; a change is a regression only beyond max(threshold, 2 × run-to-run spread); cells whose repeats spread too much are UNSTABLE.</p><table><tr><th>cell</th><th>metric</th><th>baseline</th><th>current</th><th>change</th><th>noise</th><th>tolerance</th><th>status</th></tr>");
        for d in cmp {
            let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
            let status = d.status.label();
            let class = match d.status {
                Change::Improved | Change::Unstable => status,
                c if c.fails() => "REGRESSION",
                _ => "",
            };
            let _ = write!(
                h,
                "<tr class=\"{class}\"><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{:.1}%</td><td class=\"num\">{:.1}%</td><td>{status}</td></tr>",
                esc(&d.cell_id),
                esc(d.note.as_deref().unwrap_or(&d.metric)),
                f(d.baseline),
                f(d.current),
                d.change.map_or("-".into(), |c| format!("{:+.1}%", c * 100.0)),
                d.noise * 100.0,
                d.tolerance * 100.0
            );
        }
        h.push_str("</table>");
    }
}

/// A cell's fault windows (from its check), for the timelines.
fn fault_windows(r: &CellResult) -> Vec<crate::results::checks::FaultWindow> {
    r.check
        .as_ref()
        .map(|c| c.fault_windows())
        .unwrap_or_default()
}

fn charts_section(h: &mut String, results: &[CellResult]) {
    let measured: Vec<&CellResult> = results
        .iter()
        .filter(|r| r.total().is_some_and(|t| t.ok > 0))
        .collect();
    if measured.is_empty() {
        return;
    }
    // A cell whose scenario failed measured its failures (7 ops/s of 500s): it is not put
    // beside cells that worked.
    let (compared, failed): (Vec<&CellResult>, Vec<&CellResult>) =
        measured.iter().partition(|r| !r.verdict.is_failure());
    h.push_str("<h2>Throughput and p99</h2>");
    if !failed.is_empty() {
        let ids: Vec<String> = failed.iter().map(|r| label(r)).collect();
        let _ = write!(
            h,
            "<p class=\"muted\">Not compared (the scenario failed, so its numbers measure failures): {}</p>",
            esc(&ids.join(", "))
        );
    }
    if !compared.is_empty() {
        // One bar per cell (median of its repeats), in the order the cells ran.
        let mut ids: Vec<&str> = Vec::new();
        for r in &compared {
            if !ids.contains(&r.cell_id.as_str()) {
                ids.push(&r.cell_id);
            }
        }
        let bars = |f: &dyn Fn(&CellResult) -> Option<f64>| -> Vec<(String, f64)> {
            ids.iter()
                .map(|id| {
                    let v: Vec<f64> = compared
                        .iter()
                        .filter(|r| r.cell_id == *id)
                        .filter_map(|r| f(r))
                        .collect();
                    (id.to_string(), crate::judge::median(v))
                })
                .collect()
        };
        let tput = bars(&|r| r.total().map(|t| t.throughput));
        let p99 = bars(&|r| r.total().map(|t| t.waited().p99_us / 1000.0));
        let _ = write!(
            h,
            "<div class=\"chart\">{}</div><div class=\"chart\">{}</div>",
            charts::horizontal_bars("Throughput (ops/s, median of repeats)", "ops/s", &tput),
            charts::horizontal_bars("p99 latency (ms, median of repeats)", "ms", &p99)
        );

        // HDR percentile distribution, at most 10 cells (one colour each) per chart.
        h.push_str("<h2>Latency percentile distribution</h2><p class=\"muted\">From each cell's full HDR histogram (all operations, warm-up excluded); both axes logarithmic; cells that failed are left out.</p>");
        for chunk in compared.chunks(10) {
            let series: Vec<Series> = chunk
                .iter()
                .filter_map(|r| {
                    let hist = decode(&r.total()?.histogram).ok()?;
                    let points = [
                        0.0, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 0.99999,
                    ]
                    .iter()
                    .map(|q| (1.0 / (1.0 - q), hist.value_at_quantile(*q) as f64 / 1e6))
                    .collect();
                    Some(Series {
                        name: label(r),
                        points,
                    })
                })
                .collect();
            let names: Vec<String> = series.iter().map(|s| s.name.clone()).collect();
            let _ = write!(
                h,
                "<div class=\"chart\">{}{}</div>",
                charts::percentile_curves("latency by percentile", &series),
                charts::legend(&names)
            );
        }
    }

    // Per-second timelines, to see stalls and restarts, with the faults shaded.
    h.push_str("<h2>Timelines</h2><p class=\"muted\">Per second of each cell's scenario (warm-up included; the last, partial second left out); throughput counts successful operations. <span class=\"shade\"></span>shaded: when a fault was in force (server down, restart, switch-over).</p>");
    for chunk in measured.chunks(10) {
        let names: Vec<String> = chunk.iter().map(|r| label(r)).collect();
        // One series per cell of `f` over its full seconds.
        let series = |f: &dyn Fn(&crate::results::TimelinePoint) -> f64| -> Vec<Series> {
            chunk
                .iter()
                .map(|r| Series {
                    name: label(r),
                    points: r.timeline[..r.timeline.len().saturating_sub(1)]
                        .iter()
                        .map(|p| (p.second as f64, f(p)))
                        .collect(),
                })
                .collect()
        };
        let windows: Vec<(String, crate::results::checks::FaultWindow)> = chunk
            .iter()
            .flat_map(|r| fault_windows(r).into_iter().map(|w| (label(r), w)))
            .collect();
        let spans: Vec<(f64, f64)> = windows
            .iter()
            .map(|(_, w)| (w.from_seconds, w.to_seconds))
            .collect();
        let listed = if windows.is_empty() {
            String::new()
        } else {
            let items: Vec<String> = windows
                .iter()
                .map(|(cell, w)| {
                    format!(
                        "{}: {} {:.1}–{:.1} s",
                        esc(cell),
                        esc(&w.label),
                        w.from_seconds,
                        w.to_seconds
                    )
                })
                .collect();
            format!(
                "<div class=\"windows\"><span class=\"shade\"></span>{}</div>",
                items.join(" · ")
            )
        };
        let tp = series(&|p| p.ok as f64);
        let lat = series(&|p| p.p99_us / 1000.0);
        let errs = series(&|p| p.errors as f64);
        let legend = charts::legend(&names);
        let _ = write!(
            h,
            "<div class=\"chart\">{}{legend}{listed}</div>",
            charts::timeline("throughput per second", "ops/s", &tp, false, &spans)
        );
        let _ = write!(
            h,
            "<div class=\"chart\">{}{legend}{listed}</div>",
            charts::timeline("p99 per second", "ms", &lat, true, &spans)
        );
        if chunk
            .iter()
            .any(|r| r.timeline.iter().any(|p| p.errors > 0))
        {
            let _ = write!(
                h,
                "<div class=\"chart\">{}{legend}{listed}</div>",
                charts::timeline("errors per second", "errors", &errs, false, &spans)
            );
        }
    }
}

/// The nodes of a replica, Sentinel or cluster cell: roles as started and as reported at the end
/// (a failover shows here), where each listened, what ran it, its log; and what was faulted.
fn topology_table(h: &mut String, r: &CellResult) {
    let Some(server) = r.server.as_ref() else {
        return;
    };
    let Some(t) = server.topology.as_ref() else {
        return;
    };
    let _ = write!(
        h,
        "<p>topology <b>{}</b> of {} {}, formed in {:.1} s</p>",
        esc(&t.topology),
        esc(&server.family),
        esc(&server.version),
        t.formed_ms / 1000.0
    );
    h.push_str("<table><tr><th>node</th><th>role</th><th>role at the end</th><th>port</th><th>ran as</th><th>log</th></tr>");
    for n in &t.nodes {
        let log = n.log.as_deref().unwrap_or("");
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"muted\">{}</td><td><a href=\"{}\">{}</a></td></tr>",
            esc(&n.name),
            esc(&n.role),
            esc(n.role_at_end.as_deref().unwrap_or("-")),
            n.port,
            esc(&n.identity.describe()),
            esc(log),
            esc(log)
        );
    }
    h.push_str("</table>");
    if let Some(check) = &r.check {
        let _ = write!(h, "<p>what happened: {}</p>", esc(&check.summary()));
    }
}

/// The command that runs this one cell again: the run's matrices, filtered to its axis values.
fn reproduce_command(r: &CellResult, info: Option<&RunInfo>) -> String {
    let quote = |s: &str| {
        if s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "@._:/=-+".contains(c))
        {
            s.to_string()
        } else {
            format!("'{}'", s.replace('\'', "'\\''"))
        }
    };
    let matrices = info.map_or_else(|| vec![r.matrix.clone()], |i| i.matrices.clone());
    let mut words = vec!["cachegate".to_string(), "run".to_string()];
    words.extend(matrices.iter().map(|m| quote(m)));
    for (axis, value) in &r.axes {
        words.push("--filter".into());
        words.push(quote(&format!("{axis}={value}")));
    }
    words.join(" ")
}

fn cell_details(h: &mut String, results: &[CellResult], info: Option<&RunInfo>) {
    h.push_str("<h2>Cells</h2>");
    for r in results {
        // The matrix and the "what changes" tables link to the first repeat's details.
        let id = if r.repeat == 0 {
            format!(" id=\"{}\"", esc(&verdicts::anchor(&r.cell_id)))
        } else {
            String::new()
        };
        let _ = write!(
            h,
            "<details{id}><summary>{} {} <span class=\"muted\">{}</span></summary>",
            verdict_badge(&vname(r.verdict)),
            esc(&label(r)),
            esc(&r.verdict_reason)
        );
        let ran_as = r
            .server
            .as_ref()
            .map(|s| s.identity.describe())
            .unwrap_or_default();
        if !ran_as.is_empty() {
            let _ = write!(h, "<p class=\"muted\">ran as: {}</p>", esc(&ran_as));
        }
        if let Some(g) = &r.generators {
            let _ = write!(h, "<p class=\"muted\">load: {}</p>", esc(&g.describe()));
        }
        if let Some(source) = &r.source_run {
            let _ = write!(h, "<p class=\"muted\">from run {}</p>", esc(source));
        }
        let _ = write!(
            h,
            "<p>Reproduce this cell: <code class=\"repro\">{}</code></p>",
            esc(&reproduce_command(r, info))
        );
        if let Some(stack) = &r.stack {
            let packages: Vec<String> = stack
                .packages
                .iter()
                .map(|(k, v)| format!("{} {}", esc(k), esc(v)))
                .collect();
            let _ = write!(
                h,
                "<p class=\"muted\">stack {} (Python {}), resolved: {}</p>",
                esc(&stack.name),
                esc(&stack.python),
                packages.join(", ")
            );
        }
        topology_table(h, r);
        if !r.ops.is_empty() {
            h.push_str("<table><tr><th>operation</th><th>ok</th><th>errors</th><th>ops/s</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>");
            for o in &r.ops {
                let l = &o.latency;
                let _ = write!(h, "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{:.0}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>", esc(&o.op), o.ok, o.errors, o.throughput, fmt_us(l.p50_us), fmt_us(l.p90_us), fmt_us(l.p99_us), fmt_us(l.p999_us), fmt_us(l.max_us));
                if let Some(f) = &o.failed_latency {
                    let _ = write!(h, "<tr class=\"muted\"><td>{} — failed requests</td><td></td><td class=\"num\">{}</td><td></td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>", esc(&o.op), f.count, fmt_us(f.p50_us), fmt_us(f.p90_us), fmt_us(f.p99_us), fmt_us(f.p999_us), fmt_us(f.max_us));
                }
            }
            h.push_str("</table>");
        }
        if !r.errors.is_empty() {
            h.push_str("<table><tr><th>error</th><th>count</th><th>example</th></tr>");
            for e in &r.errors {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"sig\">{}</td></tr>",
                    esc(&e.kind),
                    e.count,
                    esc(&e.example)
                );
            }
            h.push_str("</table>");
        }
        for e in &r.app_exceptions {
            let _ = write!(
                h,
                "<p class=\"sig\">{} ×{} (first at {} {})</p><pre>{}</pre>",
                esc(&e.signature),
                e.count,
                esc(&e.first_step),
                esc(&e.first_path),
                esc(&e.chain.join("\n"))
            );
            if !e.frames.is_empty() {
                let _ = write!(
                    h,
                    "<p class=\"muted\">innermost frames (where it was raised last)</p><pre>{}</pre>",
                    esc(&e.frames.join("\n"))
                );
            }
        }
        if !r.server_log_tail.is_empty() {
            let _ = write!(
                h,
                "<p class=\"muted\">server log (last lines)</p><pre>{}</pre>",
                esc(&r.server_log_tail.join("\n"))
            );
        }
        if let Some(s) = &r.app_settings {
            let _ = write!(
                h,
                "<p class=\"muted\">Django settings of this cell, as sent to the app (secrets redacted)</p><pre>{}</pre>",
                esc(&serde_json::to_string_pretty(&crate::results::redact::settings(s)).unwrap_or_default())
            );
        }
        let _ = write!(
            h,
            "<p class=\"muted\">scenario: <code>{}</code></p></details>",
            esc(&r.scenario.to_string())
        );
    }
}

fn environment(h: &mut String, results: &[CellResult], info: Option<&RunInfo>) {
    h.push_str("<h2>Environment and reproduction</h2>");
    if let Some(i) = info {
        let _ = write!(
            h,
            "<p>Reproduce: <code>{}</code></p>",
            esc(&i.command.join(" "))
        );
        let host = &i.host;
        let _ = write!(
            h,
            "<p class=\"muted\">host {} · {} CPUs ({}) · {} GiB · kernel {} · cachegate {}</p>",
            esc(&host.hostname),
            host.cpus,
            esc(&host.cpu_model),
            host.memory_gib,
            esc(&host.kernel),
            esc(&i.cachegate_version)
        );
    }
    let mut servers: BTreeMap<String, String> = BTreeMap::new();
    let mut stacks: BTreeMap<String, String> = BTreeMap::new();
    for r in results {
        if let Some(s) = &r.server {
            servers.insert(format!("{} {}", s.family, s.version), s.source.clone());
        }
        if let Some(s) = &r.stack {
            stacks.insert(s.name.clone(), s.summary.clone());
        }
    }
    h.push_str("<table><tr><th>server</th><th>from</th></tr>");
    for (k, v) in &servers {
        let _ = write!(h, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(v));
    }
    h.push_str("</table>");
    if !stacks.is_empty() {
        h.push_str("<table><tr><th>stack</th><th>versions</th></tr>");
        for (k, v) in &stacks {
            let _ = write!(h, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(v));
        }
        h.push_str("</table>");
    }
}
