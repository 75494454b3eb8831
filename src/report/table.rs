//! The short text table printed at the end of a run: one row per cell (all operations), with
//! the verification scenarios' outcome in a last column.

use crate::results::{CellResult, Verdict};

const HEADER: [&str; 8] = [
    "cell", "verdict", "ops/s", "p50", "p99", "p99.9", "errors", "check",
];

pub fn render(results: &[CellResult]) -> String {
    let rows: Vec<[String; 8]> = results.iter().map(row).collect();
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
    for r in results.iter().filter(|r| r.verdict != Verdict::Pass) {
        out.push(format!(
            "  {} {}: {}",
            format!("{:?}", r.verdict).to_uppercase(),
            r.cell_id,
            r.verdict_reason
        ));
    }
    out.join("\n") + "\n"
}

fn row(r: &CellResult) -> [String; 8] {
    let id = if r.repeat > 0 {
        format!("{} #{}", r.cell_id, r.repeat + 1)
    } else {
        r.cell_id.clone()
    };
    let verdict = format!("{:?}", r.verdict).to_uppercase();
    let dash = || "-".to_string();
    match r.total() {
        Some(t) if r.verdict != Verdict::Error || t.ok > 0 => [
            id,
            verdict,
            format!("{:.0}", t.throughput),
            fmt_us(t.latency.p50_us),
            fmt_us(t.latency.p99_us),
            fmt_us(t.latency.p999_us),
            t.errors.to_string(),
            check(r),
        ],
        _ => [
            id,
            verdict,
            dash(),
            dash(),
            dash(),
            dash(),
            dash(),
            check(r),
        ],
    }
}

/// One phrase for what a verification scenario found.
pub fn check(r: &CellResult) -> String {
    if let Some(p) = &r.persistence {
        let note = if p.expected.not_separable.is_some() {
            ", fsync not separable"
        } else {
            ""
        };
        return format!(
            "{}/{} {} kept (expect {:?}{note})",
            p.kept, p.before, p.subject, p.expected.promise
        )
        .to_lowercase();
    }
    if let Some(o) = &r.outage {
        let failed: u64 = o.during.iter().map(|s| s.errors).sum();
        let served: u64 = o.during.iter().map(|s| s.ok).sum();
        let back = if o.recovered {
            format!("login back in {:.2}s", o.recovery_seconds)
        } else {
            "did not recover".into()
        };
        let logged_in = o
            .logged_in
            .as_ref()
            .map(|l| {
                let d = &l.during;
                format!(
                    "; logged-in users while down: {} ok, {} logged out, {} failed",
                    d.ok, d.logged_out, d.failed
                )
            })
            .unwrap_or_default();
        return format!(
            "down {:.1}s: {served} ok, {failed} failed; {back}{logged_in}",
            o.down_for_seconds
        );
    }
    if let Some(e) = &r.eviction {
        return format!(
            "{}/{} sessions kept, new users failed at {}, {} evicted",
            e.sessions_kept,
            e.sessions_before,
            e.failed_during(),
            e.evicted_keys
        );
    }
    String::new()
}

/// Microseconds, shown in µs below 10 ms and in ms above.
pub fn fmt_us(us: f64) -> String {
    if us < 10_000.0 {
        format!("{us:.0}µs")
    } else {
        format!("{:.1}ms", us / 1000.0)
    }
}
