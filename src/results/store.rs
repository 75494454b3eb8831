//! A run folder: `results.jsonl` (the source of truth, one `CellResult` per line, appended and
//! synced as each cell finishes), `results.csv` (one row per cell and operation, appended alongside),
//! `run.json` (how the run was started) and `logs/` (server logs).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::CellResult;
use crate::error::{Error, Result};

pub const RESULTS_JSONL: &str = "results.jsonl";
pub const RESULTS_CSV: &str = "results.csv";
pub const RUN_JSON: &str = "run.json";

/// How a run was started, written once at the start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    pub run_id: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// The exact command line, to reproduce the run.
    pub command: Vec<String>,
    pub matrices: Vec<String>,
    pub cells: usize,
    pub cachegate_version: String,
    pub host: crate::host::HostInfo,
    /// Every cell the run meant to run, in order, so a report can list those that never ran.
    #[serde(default)]
    pub planned: Vec<PlannedCell>,
    /// How the run ended; absent while it runs, and forever if the harness was killed (SIGKILL).
    #[serde(default)]
    pub end: Option<RunEnd>,
    /// The matrices' `[report]`: the verdict matrix's layout and their signature explanations.
    #[serde(default)]
    pub report: crate::config::report_section::ReportOptions,
    /// What `--resume` needs to plan the same cells again: the matrix arguments as given, the
    /// `--filter` terms, and the folder they were given in.
    #[serde(default)]
    pub resume: Option<ResumeFrom>,
    /// `--shard K/N`: this run holds part K of the cells; `planned` lists its own, `whole` all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardPlan>,
    /// `--generator I/G`: this run is one of G generators driving the same cells at one target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<super::part::Part>,
    /// `cachegate merge`: the run folders (ids) this run was combined from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<String>,
}

/// Which part of the whole plan a shard run holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardPlan {
    pub part: super::part::Part,
    /// Every cell of the unsharded run, in its order, so `merge` can tell a shard of another
    /// plan and restore the whole run's order.
    pub whole: Vec<PlannedCell>,
}

/// How to expand the run's cells again (`cachegate run --resume`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeFrom {
    pub matrix_args: Vec<String>,
    pub filters: Vec<String>,
    pub cwd: String,
    /// When the run was resumed, each time.
    #[serde(default)]
    pub resumed_at: Vec<chrono::DateTime<chrono::Utc>>,
    /// `--shard` and `--generator` as given, so a resumed part plans the same cells.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<super::part::Part>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<super::part::Part>,
}

/// One cell (and repeat) the run meant to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedCell {
    pub cell_id: String,
    pub repeat: u32,
    /// sha256 of everything the cell was expanded to (server spec, scenario, settings, stack,
    /// gates): `--resume` refuses a run whose matrix changed since.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fingerprint: String,
}

/// How a run ended, recorded in `run.json` once nothing more will be appended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEnd {
    pub outcome: RunOutcome,
    /// The signal that interrupted the run (`SIGINT`, `SIGTERM`, `SIGHUP`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// Why a failed run stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub finished_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunOutcome {
    /// Every planned cell ran and was recorded.
    Completed,
    /// A signal stopped the run; the running cell is recorded as interrupted.
    Interrupted,
    /// The harness could not go on (the output became unwritable, ...).
    Failed,
}

impl RunEnd {
    /// The exit code of a run that ended this way, when the end alone decides it.
    pub fn exit_code(&self) -> Option<i32> {
        match self.outcome {
            RunOutcome::Completed => None,
            RunOutcome::Interrupted => Some(crate::exit_code::for_signal(
                self.signal.as_deref().unwrap_or("SIGINT"),
            )),
            RunOutcome::Failed => Some(crate::exit_code::INFRA),
        }
    }

    /// One line for people: "completed", "interrupted by SIGTERM", "failed: ...".
    pub fn describe(&self) -> String {
        match (self.outcome, &self.signal, &self.message) {
            (RunOutcome::Completed, ..) => "completed".into(),
            (RunOutcome::Interrupted, Some(sig), _) => format!("interrupted by {sig}"),
            (RunOutcome::Interrupted, None, _) => "interrupted".into(),
            (RunOutcome::Failed, _, Some(m)) => format!("failed: {m}"),
            (RunOutcome::Failed, _, None) => "failed".into(),
        }
    }
}

impl RunInfo {
    /// "shard 2/3", "generator 1/2", or "a whole run", for messages about split runs.
    pub fn part_label(&self) -> String {
        match (&self.shard, self.generator) {
            (Some(shard), _) => format!("shard {}", shard.part),
            (None, Some(g)) => format!("generator {g}"),
            (None, None) => "a whole run".to_string(),
        }
    }

    /// Planned cells with no result in `results`, in planned order.
    pub fn not_run(&self, results: &[CellResult]) -> Vec<PlannedCell> {
        self.planned
            .iter()
            .filter(|p| {
                !results
                    .iter()
                    .any(|r| r.cell_id == p.cell_id && r.repeat == p.repeat)
            })
            .cloned()
            .collect()
    }
}

pub struct RunDir {
    pub path: PathBuf,
}

/// One CSV row: a cell and one of its operations.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct CsvRow {
    pub run_id: String,
    pub matrix: String,
    pub cell_id: String,
    pub repeat: u32,
    pub verdict: String,
    pub server: String,
    pub server_version: String,
    pub persistence: String,
    pub runtime: String,
    /// Container image and network path (empty for processes).
    pub image: String,
    pub network: String,
    pub variant: String,
    pub scenario: String,
    pub op: String,
    pub ok: u64,
    pub errors: u64,
    pub throughput: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub measured_seconds: f64,
    pub infra_error: String,
}

/// A file-name-safe form of a user string (a matrix name, a cell id): ASCII letters, digits, `.`
/// and `-` kept, everything else `_`, so no `/` can make it a path. Used after a prefix, so `..`
/// never stands alone.
pub fn slug(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl RunDir {
    /// A new folder `OUT/YYYYmmdd-HHMMSS-NAME` (suffixed `-2`, `-3`, ... if taken). Each name is
    /// claimed with one `mkdir`, which fails if the folder exists, so two runs started in the
    /// same second never share a folder.
    pub fn create(out: &Path, name: &str) -> Result<RunDir> {
        std::fs::create_dir_all(out)
            .map_err(|e| Error::io(format!("creating {}", out.display()), e))?;
        let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
        // The name is the matrix's: `../x` or `a/b` must not leave `out` or nest folders.
        let base = format!("{stamp}-{}", slug(name));
        for n in 1.. {
            let path = match n {
                1 => out.join(&base),
                n => out.join(format!("{base}-{n}")),
            };
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    std::fs::create_dir(path.join("logs")).map_err(|e| {
                        Error::io(format!("creating {}", path.join("logs").display()), e)
                    })?;
                    return Ok(RunDir { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(Error::io(
                        format!("creating run folder {}", path.display()),
                        e,
                    ))
                }
            }
        }
        unreachable!("the loop returns")
    }

    pub fn open(path: &Path) -> Result<RunDir> {
        if !path.join(RESULTS_JSONL).exists() {
            return Err(Error::Usage(format!(
                "{} is not a run folder: it has no {RESULTS_JSONL}",
                path.display()
            )));
        }
        Ok(RunDir {
            path: path.to_path_buf(),
        })
    }

    pub fn id(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Write `run.json` whole or not at all (a temp file renamed over it), so a crash while
    /// recording the run's end never leaves it half-written.
    pub fn write_info(&self, info: &RunInfo) -> Result<()> {
        let text = serde_json::to_string_pretty(info).expect("run info serializes");
        let tmp = self.path.join(format!("{RUN_JSON}.tmp"));
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, self.path.join(RUN_JSON)))
            .map_err(|e| Error::io("writing run.json", e))
    }

    /// Record how the run ended in `run.json`.
    pub fn record_end(&self, end: RunEnd) -> Result<()> {
        let mut info = self.read_info().ok_or_else(|| {
            Error::Usage(format!(
                "{} has no readable {RUN_JSON}",
                self.path.display()
            ))
        })?;
        info.end = Some(end);
        self.write_info(&info)
    }

    /// Cut `results.jsonl` back to its last complete line (a killed append left a partial one),
    /// so that results appended next start on a line of their own.
    pub fn drop_cut_off_line(&self) -> Result<()> {
        let jsonl = self.path.join(RESULTS_JSONL);
        let bytes = read_bytes(&jsonl)?;
        let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if keep == bytes.len() {
            return Ok(());
        }
        OpenOptions::new()
            .write(true)
            .open(&jsonl)
            .and_then(|f| f.set_len(keep as u64))
            .map_err(|e| Error::io(format!("truncating {}", jsonl.display()), e))
    }

    pub fn read_info(&self) -> Option<RunInfo> {
        let text = std::fs::read_to_string(self.path.join(RUN_JSON)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Append one finished cell to `results.jsonl` and `results.csv`, and sync it to disk, so a
    /// crash later in the run loses nothing already measured.
    pub fn append(&self, result: &CellResult) -> Result<()> {
        let jsonl = self.path.join(RESULTS_JSONL);
        let mut file = open_append(&jsonl)?;
        let mut line = serde_json::to_string(result).expect("results serialize");
        line.push('\n');
        file.write_all(line.as_bytes())
            .and_then(|_| file.sync_data())
            .map_err(|e| Error::io(format!("appending to {}", jsonl.display()), e))?;

        let csv_path = self.path.join(RESULTS_CSV);
        let new = !csv_path.exists();
        let file = open_append(&csv_path)?;
        let writer = csv::WriterBuilder::new().has_headers(new).from_writer(file);
        write_csv_rows(writer, csv_rows(result))
    }

    /// All results of the run, in the order they finished; a last line cut off mid-write is
    /// left out and reported.
    pub fn read_results(&self) -> Result<ResultsRead> {
        read_jsonl_allowing_a_cut_off_end(&self.path.join(RESULTS_JSONL))
    }

    /// Rewrite `results.csv` from `results.jsonl`.
    pub fn rewrite_csv(&self, results: &[CellResult]) -> Result<()> {
        let writer = csv::Writer::from_path(self.path.join(RESULTS_CSV))
            .map_err(|e| Error::io("writing results.csv", e.into()))?;
        write_csv_rows(writer, results.iter().flat_map(csv_rows))
    }
}

fn write_csv_rows<W: std::io::Write, R: serde::Serialize>(
    mut writer: csv::Writer<W>,
    rows: impl IntoIterator<Item = R>,
) -> Result<()> {
    for row in rows {
        writer
            .serialize(row)
            .map_err(|e| Error::io("writing results.csv", e.into()))?;
    }
    writer
        .flush()
        .map_err(|e| Error::io("writing results.csv", e))
}

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))
}

/// The results of a `results.jsonl`, and the last line if it was cut off mid-write.
#[derive(Debug, Default)]
pub struct ResultsRead {
    pub results: Vec<CellResult>,
    /// `FILE:LINE: ...`: the final line, with no newline after it, is not a whole result (the
    /// harness was killed during the append). Every complete cell before it was read.
    pub cut_off: Option<String>,
}

/// Every result in a `results.jsonl`. A line that is not UTF-8 or not a whole result (a writer
/// killed mid-line, a hand edit) is bad input named by file, line and column.
pub fn read_jsonl(path: &Path) -> Result<Vec<CellResult>> {
    let bytes = read_bytes(path)?;
    let mut out = Vec::new();
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        out.extend(parse_line(path, i, line)?);
    }
    Ok(out)
}

/// As [`read_jsonl`], except that a last line cut off mid-write (it has no newline: results are
/// appended a whole line at a time, so only a killed append leaves one) is left out and
/// reported, so that `report`, `compare` and `--resume` keep every complete cell.
pub fn read_jsonl_allowing_a_cut_off_end(path: &Path) -> Result<ResultsRead> {
    parse_results(path, &read_bytes(path)?)
}

/// The results in the bytes of a `results.jsonl` (named `path` in errors), as
/// [`read_jsonl_allowing_a_cut_off_end`] reads them.
pub fn parse_results(path: &Path, bytes: &[u8]) -> Result<ResultsRead> {
    let mut lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    // After a final newline `split` yields an empty piece; without one, the last piece is a
    // line the writer did not finish.
    let unfinished = lines.pop().filter(|rest| !rest.is_empty());
    let mut out = ResultsRead::default();
    for (i, line) in lines.iter().enumerate() {
        out.results.extend(parse_line(path, i, line)?);
    }
    if let Some(rest) = unfinished {
        match parse_line(path, lines.len(), rest) {
            Ok(r) => out.results.extend(r),
            Err(e) => {
                out.cut_off = Some(format!(
                    "{e} (the last line, with no newline: the harness was stopped while \
                     appending it); left out, {} complete cell result(s) read",
                    out.results.len()
                ))
            }
        }
    }
    Ok(out)
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Usage(format!("cannot read {}: {e}", path.display())))
}

/// Line `i` (0-based) of a results file: a result, nothing (blank), or bad input.
fn parse_line(path: &Path, i: usize, line: &[u8]) -> Result<Option<CellResult>> {
    let at = |column: usize, message: String| Error::Input {
        location: format!("{}:{}:{column}", path.display(), i + 1),
        message,
    };
    let line = std::str::from_utf8(line).map_err(|e| {
        let valid = e.valid_up_to();
        at(
            valid + 1,
            format!("not valid UTF-8 (byte 0x{:02x})", line[valid]),
        )
    })?;
    if line.trim().is_empty() {
        return Ok(None);
    }
    let bad = |e: serde_json::Error| at(e.column(), format!("not a cell result: {e}"));
    let mut value = serde_json::from_str(line).map_err(bad)?;
    super::checks::upgrade_legacy(&mut value);
    Ok(Some(serde_json::from_value(value).map_err(bad)?))
}

pub fn csv_rows(r: &CellResult) -> Vec<CsvRow> {
    let axis = |k: &str| r.axes.get(k).cloned().unwrap_or_default();
    let identity = r.server.as_ref().map(|s| &s.identity);
    let base = |op: &str| CsvRow {
        run_id: r.run_id.clone(),
        matrix: r.matrix.clone(),
        cell_id: r.cell_id.clone(),
        repeat: r.repeat,
        verdict: format!("{:?}", r.verdict).to_uppercase(),
        server: axis("server"),
        server_version: r
            .server
            .as_ref()
            .map(|s| s.version.clone())
            .unwrap_or_default(),
        persistence: axis("persistence"),
        runtime: axis("runtime"),
        image: identity.and_then(|i| i.image.clone()).unwrap_or_default(),
        network: identity.and_then(|i| i.network.clone()).unwrap_or_default(),
        variant: axis("variant"),
        scenario: r.scenario_kind.clone(),
        op: op.to_string(),
        ok: 0,
        errors: 0,
        throughput: 0.0,
        p50_us: 0.0,
        p90_us: 0.0,
        p99_us: 0.0,
        p999_us: 0.0,
        max_us: 0.0,
        measured_seconds: r.measured_seconds,
        infra_error: r.infra_error.clone().unwrap_or_default(),
    };
    if r.ops.is_empty() {
        return vec![base("all")];
    }
    r.ops
        .iter()
        .map(|o| {
            let l = &o.latency;
            CsvRow {
                ok: o.ok,
                errors: o.errors,
                throughput: o.throughput,
                p50_us: l.p50_us,
                p90_us: l.p90_us,
                p99_us: l.p99_us,
                p999_us: l.p999_us,
                max_us: l.max_us,
                ..base(&o.op)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::RunDir;

    /// Runs created at the same moment (same second, same name) each get a folder of their own.
    #[test]
    fn concurrent_creates_get_distinct_folders() {
        let out = tempfile::tempdir().unwrap();
        let paths: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| RunDir::create(out.path(), "same").unwrap().path))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let distinct: std::collections::HashSet<_> = paths.iter().collect();
        assert_eq!(distinct.len(), 8, "{paths:?}");
        assert!(paths.iter().all(|p| p.join("logs").is_dir()));
    }

    /// A matrix name cannot place the run folder outside `out` or nest it.
    #[test]
    fn matrix_names_that_are_paths_stay_one_folder_inside_out() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("a").join("out");
        for name in ["../../escaped-dir", "a/b", "/etc", "..", "x\\..\\y"] {
            let dir = RunDir::create(&out, name).unwrap();
            assert_eq!(dir.path.parent(), Some(out.as_path()), "{name}");
            assert!(!dir.id().contains('/'), "{name}: {}", dir.id());
        }
        // Nothing was created beside `out`.
        let beside: Vec<_> = std::fs::read_dir(root.path().join("a")).unwrap().collect();
        assert_eq!(beside.len(), 1);
        assert!(!root.path().join("escaped-dir").exists());
    }
}
