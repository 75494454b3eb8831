//! One interface for every output format (as hyperfine has one exporter per format): each
//! renderer reads the same `Report` (the results and the views shaped from them once) and
//! returns its text. Adding a format is one file and one entry in `FILES`.

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
    /// The file it is written to in the run folder; `None` for what is only printed.
    fn file_name(&self) -> Option<&'static str>;
    fn render(&self, report: &Report) -> String;
}

/// The formats written into the run folder, in the order they are written (`results.csv` is
/// appended cell by cell by the store, so it is not among them; the console table is printed).
pub const FILES: [&dyn Renderer; 4] = [
    &super::summary::SummaryJson,
    &super::junit::Junit,
    &super::markdown::Markdown,
    &super::html::Html,
];
