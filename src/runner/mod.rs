//! Runs cells one after another: provision → start → scenario → stop → append the result.
//! A cell that cannot run is recorded as ERROR with its cause and the run goes on; Ctrl-C stops
//! the current cell, records it, and ends the run after cleaning up.

mod cell;
mod progress;

use std::collections::HashMap;
use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use crate::config::LoadedMatrix;
use crate::error::Result;
use crate::host::HostInfo;
use crate::matrix::{self, Cell};
use crate::results::store::RunInfo;
use crate::results::{CellResult, RunDir};
use crate::server::{ProvisionedServer, Provisioner};
use crate::stack::{self, ProvisionedStack};

pub use cell::slug;

pub struct RunOptions {
    /// Folder the run folder is created in.
    pub out: PathBuf,
    pub filters: Vec<String>,
    /// The command line, recorded for reproduction.
    pub command: Vec<String>,
    /// Show a progress bar (only drawn on a terminal anyway).
    pub progress: bool,
}

pub struct RunSummary {
    pub run_dir: PathBuf,
    pub results: Vec<CellResult>,
    pub interrupted: bool,
}

/// Expand and filter the cells of these matrices.
pub fn select_cells(matrices: &[LoadedMatrix], filters: &[String]) -> Result<Vec<Cell>> {
    let mut cells = Vec::new();
    for m in matrices {
        for cell in matrix::expand(m)? {
            if matrix::filter_matches(&cell, filters)? {
                cells.push(cell);
            }
        }
    }
    Ok(cells)
}

/// Provisioning is done once per run for each server and stack; failures are remembered too,
/// so every cell that needs a broken one says why without trying again.
#[derive(Default)]
struct Provisioned {
    servers: HashMap<String, std::result::Result<ProvisionedServer, String>>,
    stacks: HashMap<String, std::result::Result<ProvisionedStack, String>>,
}

impl Provisioned {
    fn server(
        &mut self,
        matrix: &LoadedMatrix,
        cell: &Cell,
    ) -> std::result::Result<ProvisionedServer, String> {
        let key = format!("{}|{}", matrix.path.display(), cell.spec.server);
        self.servers
            .entry(key)
            .or_insert_with(|| {
                let mut p = Provisioner::with_default_cache();
                for (server, path) in &matrix.file.server_paths {
                    p.add_user_path(server.clone(), path.clone());
                }
                p.provision(&cell.spec.server).map_err(|e| e.to_string())
            })
            .clone()
    }

    fn stack(
        &mut self,
        matrix: &LoadedMatrix,
        cell: &Cell,
    ) -> Option<std::result::Result<ProvisionedStack, String>> {
        let (name, spec) = cell.stack.as_ref()?;
        let key = format!("{}|{name}", matrix.path.display());
        let cache = crate::server::provision::default_cache_dir();
        Some(
            self.stacks
                .entry(key)
                .or_insert_with(|| stack::provision(name, spec, &cache).map_err(|e| e.to_string()))
                .clone(),
        )
    }
}

pub async fn run(
    matrices: &[LoadedMatrix],
    opts: &RunOptions,
    cancel: CancellationToken,
) -> Result<RunSummary> {
    let cells = select_cells(matrices, &opts.filters)?;
    let name = match matrices {
        [one] => one.file.matrix.name.clone(),
        _ => "multi".to_string(),
    };
    let run_dir = RunDir::create(&opts.out, &name)?;
    let host = HostInfo::detect();
    run_dir.write_info(&RunInfo {
        run_id: run_dir.id(),
        started_at: chrono::Utc::now(),
        command: opts.command.clone(),
        matrices: matrices
            .iter()
            .map(|m| m.path.display().to_string())
            .collect(),
        cells: cells.len(),
        cachegate_version: env!("CARGO_PKG_VERSION").to_string(),
        host: host.clone(),
    })?;
    eprintln!(
        "run folder: {}  ({} cells)",
        run_dir.path.display(),
        cells.len()
    );

    let mut provisioned = Provisioned::default();
    let mut results = Vec::new();
    for (index, cell) in cells.iter().enumerate() {
        if cancel.is_cancelled() {
            break;
        }
        let matrix = matrices
            .iter()
            .find(|m| m.file.matrix.name == cell.matrix)
            .expect("cell comes from one of the matrices");
        let binary = provisioned.server(matrix, cell);
        let stack = provisioned.stack(matrix, cell);
        let label = format!(
            "[{}/{}] {}{}",
            index + 1,
            cells.len(),
            cell.id,
            cell::repeat_suffix(cell)
        );
        let ctx = cell::CellContext {
            run_dir: &run_dir,
            host: &host,
            key_prefix: format!("cg:{}:{index}:", run_dir.id()),
            user_tag: format!("cg{index}x{}", std::process::id()),
            cancel: cancel.clone(),
            label: label.clone(),
            progress: opts.progress,
        };
        let result = cell::run_cell(cell, binary, stack, &ctx).await;
        eprintln!("{label}  {}", cell::one_line(&result));
        run_dir.append(&result)?;
        results.push(result);
    }
    Ok(RunSummary {
        run_dir: run_dir.path.clone(),
        results,
        interrupted: cancel.is_cancelled(),
    })
}
