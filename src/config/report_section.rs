//! `[report]` of a matrix: how the HTML report lays out its verdict matrix, and the team's own
//! failure-signature explanations, added to the ones cachegate ships in
//! `reports/explanations.toml`. Both are recorded in `run.json` (`ReportOptions`), so a report
//! re-rendered later from the run folder alone shows the same.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::{Error, Result};

/// The axes a cell has, in the order cell ids name them.
pub const AXES: &[&str] = &[
    "server",
    "persistence",
    "runtime",
    "topology",
    "transport",
    "policy",
    "stack",
    "settings",
    "variant",
];

#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportSection {
    /// Axes the verdict matrix shows as rows, e.g. ["server", "persistence"]. Unset: chosen
    /// from the matrix's shape so the table fits the page.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub rows: Vec<Spanned<String>>,
    /// Axes the verdict matrix shows as columns, e.g. ["stack"].
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub columns: Vec<Spanned<String>>,
    /// A TOML file of `[[explanation]]` entries (pattern, means, cause, fix), relative to the
    /// matrix; its entries are tried before the bundled ones.
    #[serde(default)]
    #[schemars(with = "Option<PathBuf>")]
    pub explanations: Option<Spanned<PathBuf>>,
}

/// What a failure signature means, its usual cause and what to change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Explanation {
    /// A regular expression (Rust `regex` syntax) searched for in the signature.
    pub pattern: String,
    pub means: String,
    pub cause: String,
    pub fix: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExplanationFile {
    #[serde(default)]
    explanation: Vec<Explanation>,
}

/// The report's layout and the user's explanations, as the run records them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportOptions {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// The matrix's own explanations (tried first), copied in from its file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub explanations: Vec<Explanation>,
}

const BUNDLED: &str = include_str!("../../reports/explanations.toml");

/// The explanations shipped with cachegate.
pub fn bundled_explanations() -> Vec<Explanation> {
    parse_explanations(Path::new("reports/explanations.toml"), BUNDLED)
        .expect("the bundled explanations parse (tested)")
}

/// Parse an explanations file; a bad pattern is named with its file, line and field.
pub fn parse_explanations(path: &Path, text: &str) -> Result<Vec<Explanation>> {
    let file: ExplanationFile = super::parse_toml_text(path, text)?;
    // Each entry has one `pattern` key: the i-th such line is entry i's (toml gives no span
    // for a table inside an array of tables).
    let pattern_lines: Vec<usize> = text
        .split_inclusive('\n')
        .scan(0, |offset, line| {
            let at = *offset;
            *offset += line.len();
            Some((at, line))
        })
        .filter(|(_, line)| line.trim_start().starts_with("pattern"))
        .map(|(at, _)| at)
        .collect();
    file.explanation
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let at = pattern_lines.get(i).copied().unwrap_or(0);
            regex::Regex::new(&e.pattern).map_err(|err| {
                Error::input_at(
                    path,
                    text,
                    at,
                    format!("field `explanation.pattern`: not a regular expression: {err}"),
                )
            })?;
            Ok(e)
        })
        .collect()
}

impl ReportSection {
    /// Check the axis names and read the explanations file (relative to the matrix at `path`).
    pub fn resolve(&self, path: &Path, text: &str) -> Result<ReportOptions> {
        let mut seen: Vec<&str> = Vec::new();
        for (field, names) in [("rows", &self.rows), ("columns", &self.columns)] {
            for name in names {
                let n = name.get_ref().as_str();
                if !AXES.contains(&n) {
                    return Err(Error::input_at(
                        path,
                        text,
                        name.span().start,
                        format!(
                            "field `report.{field}`: no axis `{n}` (axes: {})",
                            AXES.join(", ")
                        ),
                    ));
                }
                if seen.contains(&n) {
                    return Err(Error::input_at(
                        path,
                        text,
                        name.span().start,
                        format!("field `report.{field}`: axis `{n}` is listed twice"),
                    ));
                }
                seen.push(n);
            }
        }
        let explanations = match &self.explanations {
            None => Vec::new(),
            Some(file) => {
                let resolved = path.parent().unwrap_or(Path::new(".")).join(file.get_ref());
                let body = std::fs::read_to_string(&resolved).map_err(|e| {
                    Error::input_at(
                        path,
                        text,
                        file.span().start,
                        format!(
                            "field `report.explanations`: cannot read {}: {e}",
                            resolved.display()
                        ),
                    )
                })?;
                parse_explanations(&resolved, &body)?
            }
        };
        Ok(ReportOptions {
            rows: self.rows.iter().map(|s| s.get_ref().clone()).collect(),
            columns: self.columns.iter().map(|s| s.get_ref().clone()).collect(),
            explanations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_explanations_parse_and_compile() {
        let all = bundled_explanations();
        assert!(all.len() >= 10, "{}", all.len());
        for e in &all {
            assert!(!e.means.is_empty() && !e.cause.is_empty() && !e.fix.is_empty());
        }
    }

    #[test]
    fn a_bad_pattern_names_its_line() {
        let text =
            "[[explanation]]\nmeans = \"m\"\npattern = \"(unclosed\"\ncause = \"c\"\nfix = \"f\"\n";
        let e = parse_explanations(Path::new("x.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("x.toml:3") && e.contains("explanation.pattern"),
            "{e}"
        );
    }
}
