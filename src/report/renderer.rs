//! One interface for every output format (as hyperfine has one exporter per format): each
//! renderer reads the same `Report` (the results and the views shaped from them once) and
//! returns its text. Adding a format is its own file (with its `pub mod` line in report/mod.rs)
//! and one entry in `FILES`.

use super::changes::AxisChanges;
use super::model::CellView;
use super::summary::Summary;
use crate::results::store::RunInfo;
use crate::results::CellResult;

/// What every renderer reads.
pub struct Report<'a> {
    pub results: &'a [CellResult],
    pub cells: &'a [CellView],
    pub changes: &'a [AxisChanges],
    pub summary: &'a Summary,
    pub info: Option<&'a RunInfo>,
}

/// One output format.
pub trait Renderer {
    fn render(&self, report: &Report) -> String;
}

/// The files written into the run folder and what renders each, in the order they are written
/// (`results.csv` is appended cell by cell by the store, so it is not among them; the console
/// table, `table::Table`, is printed).
pub const FILES: [(&str, &dyn Renderer); 4] = [
    ("summary.json", &super::summary::SummaryJson),
    ("junit.xml", &super::junit::Junit),
    ("summary.md", &super::markdown::Markdown),
    ("index.html", &super::html::Html),
];
