//! The verdict matrix's shape: which axes become rows and which columns. Axes with one value
//! are the same for every cell and are said once above the table; of the others, columns take
//! the set whose values multiply to the most columns that still fit the page (`MAX_COLUMNS`),
//! preferring the axes cell ids name last (stack, settings, variant), and rows take the rest.
//! A matrix's `[report] rows`/`columns` choose instead.

use crate::config::report_section::{ReportOptions, AXES};
use crate::results::CellResult;

/// Columns that fit 1280 px beside a row header, with a verdict and a short signature each.
pub const MAX_COLUMNS: usize = 6;

#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub rows: Vec<String>,
    pub columns: Vec<String>,
    /// Axes with one value across the run, with it.
    pub constant: Vec<(String, String)>,
}

/// The distinct values of `axis`, in the order the cells ran (the order the matrix lists them).
pub fn values(results: &[CellResult], axis: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in results {
        if let Some(v) = r.axes.get(axis) {
            if !out.contains(v) {
                out.push(v.clone());
            }
        }
    }
    out
}

/// A cell's label along `axes` ("redis@6.2 · django-4.2"); "all cells" along none.
pub fn key(r: &CellResult, axes: &[String]) -> String {
    if axes.is_empty() {
        return "all cells".into();
    }
    axes.iter()
        .map(|a| r.axes.get(a).map_or("-", String::as_str))
        .collect::<Vec<_>>()
        .join(" · ")
}

pub fn layout(results: &[CellResult], options: Option<&ReportOptions>) -> Layout {
    let mut varying: Vec<String> = Vec::new();
    let mut constant = Vec::new();
    for axis in AXES {
        let v = values(results, axis);
        match v.len() {
            0 => {}
            1 => constant.push((axis.to_string(), v[0].clone())),
            _ => varying.push(axis.to_string()),
        }
    }
    let count = |axes: &[String]| -> usize {
        let mut seen: Vec<String> = Vec::new();
        for r in results {
            let k = key(r, axes);
            if !seen.contains(&k) {
                seen.push(k);
            }
        }
        seen.len()
    };
    if let Some(o) = options.filter(|o| !o.rows.is_empty() || !o.columns.is_empty()) {
        let columns: Vec<String> = o
            .columns
            .iter()
            .filter(|a| varying.contains(a))
            .cloned()
            .collect();
        let mut rows: Vec<String> = o
            .rows
            .iter()
            .filter(|a| varying.contains(a))
            .cloned()
            .collect();
        // Axes the matrix did not place go to rows, so every cell still has its own place.
        let unplaced: Vec<String> = varying
            .iter()
            .filter(|a| !rows.contains(a) && !columns.contains(a))
            .cloned()
            .collect();
        rows.extend(unplaced);
        return Layout {
            rows,
            columns,
            constant,
        };
    }
    // Every subset of the varying axes (at most 2^8), the best one by (fits, columns, later axes).
    let n = varying.len();
    let mut best: Option<(usize, usize, Vec<String>)> = None;
    for mask in 0u32..(1 << n) {
        let cols: Vec<String> = (0..n)
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| varying[i].clone())
            .collect();
        let width = count(&cols);
        if width > MAX_COLUMNS {
            continue;
        }
        // Later axes weigh more: prefer stack/settings in columns, server in rows.
        let lateness: usize = (0..n)
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| 1 << i)
            .sum();
        if best
            .as_ref()
            .is_none_or(|(w, l, _)| (width, lateness) > (*w, *l))
        {
            best = Some((width, lateness, cols));
        }
    }
    let columns = best.map(|b| b.2).unwrap_or_default();
    let rows = varying
        .into_iter()
        .filter(|a| !columns.contains(a))
        .collect();
    Layout {
        rows,
        columns,
        constant,
    }
}

/// `label` cut to `max` characters, keeping its start and end ("djredis-opt…builtin").
pub fn abbreviate(label: &str, max: usize) -> String {
    let chars: Vec<char> = label.chars().collect();
    if chars.len() <= max {
        return label.to_string();
    }
    let tail = (max - 1) / 3;
    let head = max - 1 - tail;
    let mut out: String = chars[..head].iter().collect();
    out.push('…');
    out.extend(&chars[chars.len() - tail..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(axes: &[(&str, &str)]) -> CellResult {
        let mut r: CellResult = serde_json::from_str(
            include_str!("../../tests/fixtures/run/results.jsonl")
                .lines()
                .next()
                .unwrap(),
        )
        .unwrap();
        r.axes = axes
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        r
    }

    fn grid(servers: &[&str], stacks: &[&str], settings: &[&str]) -> Vec<CellResult> {
        let mut out = Vec::new();
        for s in servers {
            for st in stacks {
                for se in settings {
                    out.push(cell(&[
                        ("server", s),
                        ("persistence", "none"),
                        ("stack", st),
                        ("settings", se),
                    ]));
                }
            }
        }
        out
    }

    #[test]
    fn a_27_cell_upgrade_matrix_fits_and_the_server_goes_to_rows() {
        let r = grid(
            &["redis@6.2", "redis@7.4", "valkey@9.1"],
            &["django-4.2", "django-5.2", "django-6.0"],
            &["a", "b", "c"],
        );
        let l = layout(&r, None);
        assert_eq!(l.columns, vec!["settings"], "{l:?}");
        assert_eq!(l.rows, vec!["server", "stack"]);
        assert_eq!(l.constant, vec![("persistence".into(), "none".into())]);
    }

    #[test]
    fn two_small_axes_share_the_columns_and_a_matrix_can_choose() {
        let r = grid(
            &["redis@6.2", "redis@7.4", "valkey@9.1"],
            &["x", "y"],
            &["a", "b", "c"],
        );
        assert_eq!(layout(&r, None).columns, vec!["stack", "settings"]);
        let chosen = ReportOptions {
            columns: vec!["server".into()],
            ..Default::default()
        };
        let l = layout(&r, Some(&chosen));
        assert_eq!(l.columns, vec!["server"]);
        assert_eq!(
            l.rows,
            vec!["stack", "settings"],
            "unplaced axes go to rows"
        );
    }

    #[test]
    fn a_hundred_cells_keep_at_most_six_columns() {
        let servers = ["s1", "s2", "s3", "s4"];
        let stacks = ["k1", "k2", "k3", "k4", "k5"];
        let settings = ["t1", "t2", "t3", "t4", "t5"];
        let r = grid(&servers, &stacks, &settings);
        assert_eq!(r.len(), 100);
        let l = layout(&r, None);
        let width: usize = l.columns.iter().map(|a| values(&r, a).len()).product();
        assert!((5..=MAX_COLUMNS).contains(&width), "{l:?}");
    }

    #[test]
    fn long_labels_keep_both_ends() {
        assert_eq!(abbreviate("short", 10), "short");
        let a = abbreviate("djredis-options-on-builtin", 16);
        assert_eq!(a.chars().count(), 16);
        assert!(a.starts_with("djredis-o") && a.ends_with("iltin"), "{a}");
    }
}
