//! A run folder: `results.jsonl` (the source of truth, one `CellResult` per line, appended and
//! synced as each cell finishes), `results.csv` (one row per cell and operation, appended alongside),
//! `run.json` (how the run was started) and `logs/` (server logs).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
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

impl RunDir {
    /// A new folder `OUT/YYYYmmdd-HHMMSS-NAME` (suffixed if it exists).
    pub fn create(out: &Path, name: &str) -> Result<RunDir> {
        let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
        let base = out.join(format!("{stamp}-{name}"));
        let mut path = base.clone();
        let mut n = 1;
        while path.exists() {
            n += 1;
            path = PathBuf::from(format!("{}-{n}", base.display()));
        }
        std::fs::create_dir_all(path.join("logs"))
            .map_err(|e| Error::io(format!("creating run folder {}", path.display()), e))?;
        Ok(RunDir { path })
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

    pub fn write_info(&self, info: &RunInfo) -> Result<()> {
        let text = serde_json::to_string_pretty(info).expect("run info serializes");
        std::fs::write(self.path.join(RUN_JSON), text).map_err(|e| Error::io("writing run.json", e))
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

    /// All results of the run, in the order they finished.
    pub fn read_results(&self) -> Result<Vec<CellResult>> {
        read_jsonl(&self.path.join(RESULTS_JSONL))
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

pub fn read_jsonl(path: &Path) -> Result<Vec<CellResult>> {
    let file = File::open(path)
        .map_err(|e| Error::Usage(format!("cannot read {}: {e}", path.display())))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        if line.trim().is_empty() {
            continue;
        }
        let result = serde_json::from_str(&line).map_err(|e| Error::Input {
            location: format!("{}:{}:{}", path.display(), i + 1, e.column()),
            message: format!("not a cell result: {e}"),
        })?;
        out.push(result);
    }
    Ok(out)
}

pub fn csv_rows(r: &CellResult) -> Vec<CsvRow> {
    let axis = |k: &str| r.axes.get(k).cloned().unwrap_or_default();
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
