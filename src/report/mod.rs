//! Everything rendered from `results.jsonl` (and, for deltas, a baseline's): the console table,
//! `results.csv`, `summary.json`, `junit.xml`, `summary.md` and the self-contained `index.html`.

pub mod changes;
pub mod charts;
pub mod explain;
pub mod html;
pub mod junit;
pub mod markdown;
pub mod model;
pub mod pivot;
pub mod renderer;
pub mod summary;
pub mod table;

use crate::error::{Error, Result};
use crate::judge::{self, CompareOptions, Judgement};
use crate::results::RunDir;
use renderer::Renderer;

/// What rendering a run produced.
pub struct Rendered {
    pub table: String,
    pub summary: summary::Summary,
    /// What the outputs show and the commands exit with.
    pub judgement: Judgement,
    /// Said on stderr: a results file's last line that was cut off mid-write and left out.
    pub warnings: Vec<String>,
}

/// Re-render every derived output of a run folder from its `results.jsonl`, comparing against
/// `baseline` (another run folder) when given.
pub fn render_all(
    run_dir: &RunDir,
    baseline: Option<&RunDir>,
    opts: CompareOptions,
) -> Result<Rendered> {
    let read = run_dir.read_results()?;
    let baseline = baseline.map(RunDir::read_results).transpose()?;
    let warnings: Vec<String> = [&read.cut_off]
        .into_iter()
        .chain(baseline.as_ref().map(|b| &b.cut_off))
        .flatten()
        .cloned()
        .collect();
    let results = read.results;
    let baseline = baseline.map(|b| b.results);
    let info = run_dir.read_info();
    let judgement = judge::judge(&results, info.as_ref(), baseline.as_deref(), opts);
    run_dir.rewrite_csv(&results)?;
    let summary = summary::build(&results, info.as_ref(), &judgement);
    let write = |name: &str, text: String| {
        std::fs::write(run_dir.path.join(name), text)
            .map_err(|e| Error::io(format!("writing {name}"), e))
    };
    let cells = model::cells(&results, &judgement);
    let changes = changes::along_axes(&results, &cells);
    let report = renderer::Report {
        results: &results,
        cells: &cells,
        changes: &changes,
        summary: &summary,
        info: info.as_ref(),
    };
    for (name, output) in renderer::FILES {
        write(name, output.render(&report))?;
    }
    Ok(Rendered {
        table: table::Table.render(&report),
        summary,
        judgement,
        warnings,
    })
}
