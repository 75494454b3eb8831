//! Runs cells one after another: provision → start → scenario → stop → append the result.
//! A cell that cannot run is recorded as ERROR with its cause and the run goes on; a signal
//! (SIGINT, SIGTERM, SIGHUP) stops the current cell, records it, and ends the run after cleaning
//! up; `run.json` records how the run ended.

mod cell;
mod interrupt;
mod progress;
pub mod shard;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use crate::config::gates::CHECK_METRICS;
use crate::config::report_section::ReportOptions;
use crate::config::LoadedMatrix;
use crate::error::{Error, Result};
use crate::host::HostInfo;
use crate::matrix::{self, Cell};
use crate::results::part::Part;
use crate::results::store::{PlannedCell, ResumeFrom, RunEnd, RunInfo, RunOutcome, ShardPlan};
use crate::results::{CellResult, RunDir};
use crate::scenario;
use crate::server::{ProvisionedServer, Provisioner};
use crate::stack::{self, ProvisionedStack};

pub use cell::slug;
pub use interrupt::{Interrupt, AFTER_SECOND_SIGNAL};

#[derive(Clone)]
pub struct RunOptions {
    /// Folder the run folder is created in.
    pub out: PathBuf,
    pub filters: Vec<String>,
    /// The command line, recorded for reproduction.
    pub command: Vec<String>,
    /// Show a progress bar (only drawn on a terminal anyway).
    pub progress: bool,
    /// The matrix arguments as given (paths or bundled names), recorded for `--resume`.
    pub matrix_args: Vec<String>,
    /// `--shard K/N`: run only part K of the cells.
    pub shard: Option<Part>,
    /// `--generator I/G`: one of G runs driving the same cells at one external target.
    pub generator: Option<Part>,
    /// `--start-at`: wait for this before the first cell.
    pub start_at: Option<shard::StartAt>,
}

pub struct RunSummary {
    pub run_dir: PathBuf,
    /// How it ended (also recorded in the folder's `run.json`).
    pub end: RunEnd,
}

/// Expand and filter the cells of these matrices. Selecting no cell is bad input: the error says
/// which values each axis has, so a mistyped `--filter` is easy to fix.
pub fn select_cells(matrices: &[LoadedMatrix], filters: &[String]) -> Result<Vec<Cell>> {
    let mut all = Vec::new();
    let mut cells = Vec::new();
    for m in matrices {
        check_gate_metrics(m)?;
        let expanded = matrix::expand(m)?;
        let mut ids = HashMap::new();
        for cell in &expanded {
            if let Some(first) = ids.insert((&cell.id, cell.repeat), cell) {
                return Err(Error::input_file(
                    &m.path,
                    format!(
                        "two cells have the id `{}` (an axis lists the same value twice, or an \
                         [[include]] repeats a cell); their results and logs would be confused",
                        first.id
                    ),
                ));
            }
        }
        for cell in expanded {
            if matrix::filter_matches(&cell, filters)? {
                cells.push(cell.clone());
            }
            all.push(cell);
        }
    }
    if cells.is_empty() {
        return Err(Error::Usage(no_cell_selected(&all, filters)));
    }
    Ok(cells)
}

/// Every `[gates]` metric names something the matrix's scenario produces.
fn check_gate_metrics(m: &LoadedMatrix) -> Result<()> {
    let Some(kind) = m
        .scenario
        .kind
        .as_ref()
        .and_then(|k| scenario::kind_info(k.name()))
    else {
        return Ok(());
    };
    let (ops, checks) = (kind.ops, kind.check_metrics);
    for metric in m.file.gates.keys() {
        let problem = if CHECK_METRICS.contains(&metric.name.as_str()) {
            (!checks.contains(&metric.name.as_str())).then(|| {
                format!(
                    "{} reports {}",
                    kind.name,
                    if checks.is_empty() {
                        "no verification metric".to_string()
                    } else {
                        checks.join(", ")
                    }
                )
            })
        } else {
            match (&metric.op, ops) {
                (Some(op), Some(ops)) if op != "all" && !ops.contains(&op.as_str()) => {
                    Some(format!(
                        "{} measures the operations {} (and `all`)",
                        kind.name,
                        ops.join(", ")
                    ))
                }
                _ => None,
            }
        };
        if let Some(why) = problem {
            let range =
                crate::config::table_range(&m.text, "[gates]", 0).unwrap_or(0..m.text.len());
            let offset = crate::config::key_offset(&m.text, range.clone(), &metric.to_string())
                .unwrap_or(range.start);
            return Err(Error::input_at(
                &m.path,
                &m.text,
                offset,
                format!("gate `{metric}`: no cell of this matrix produces it; {why}"),
            ));
        }
    }
    Ok(())
}

fn no_cell_selected(all: &[Cell], filters: &[String]) -> String {
    if all.is_empty() {
        return "the matrices have no cell to run".into();
    }
    let mut values: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for cell in all {
        for (axis, value) in cell.axes.as_map() {
            values.entry(axis).or_default().insert(value);
        }
    }
    let axes: Vec<String> = values
        .iter()
        .map(|(axis, v)| {
            format!(
                "  {axis}: {}",
                v.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    format!(
        "--filter {} matched none of the {} cells; the axes' values are:\n{}",
        filters.join(" --filter "),
        all.len(),
        axes.join("\n")
    )
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
        if let Some(addr) = &cell.target.server {
            return self
                .servers
                .entry(key)
                .or_insert_with(|| external_server(cell, addr))
                .clone();
        }
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
                .or_insert_with(|| {
                    let requirements = crate::target::project::requirements_for(&cell.target, spec)
                        .map_err(|e| format!("stack `{name}`: {e}"))?;
                    stack::provision(name, spec, &cache, requirements).map_err(|e| e.to_string())
                })
                .clone(),
        )
    }
}

/// `[target] server`: what the server already running there is, checked against the cell's
/// server axis (a run recorded as redis@7.4 must have loaded a 7.4).
fn external_server(cell: &Cell, addr: &str) -> std::result::Result<ProvisionedServer, String> {
    let wanted = &cell.spec.server;
    let parsed: std::net::SocketAddr = addr
        .parse()
        .map_err(|_| format!("[target] server `{addr}` is not an address"))?;
    let version =
        crate::server::control::reported_version(&cell.spec.harness_endpoint(parsed.port()))
            .ok_or_else(|| {
                format!(
                    "the external server at {addr} ([target] server) does not answer INFO/version"
                )
            })?;
    let numbers: Vec<u32> = version.split('.').map_while(|p| p.parse().ok()).collect();
    if !wanted.matches(&numbers) {
        return Err(format!(
            "the external server at {addr} reports version {version}, the cell's server axis \
             says {wanted}"
        ));
    }
    Ok(ProvisionedServer {
        family: wanted.family,
        version,
        binary: std::path::PathBuf::new(),
        lib_dir: None,
        loader: None,
        source: format!("external server at {addr} ([target] server), not started by cachegate"),
    })
}

/// The `[report]` of the run: the first matrix's layout that sets one, every matrix's
/// explanations (in order, so the first matrix's are tried first).
fn report_options(matrices: &[LoadedMatrix]) -> ReportOptions {
    let mut out = ReportOptions::default();
    for m in matrices {
        if out.rows.is_empty() && out.columns.is_empty() {
            out.rows = m.report.rows.clone();
            out.columns = m.report.columns.clone();
        }
        out.explanations
            .extend(m.report.explanations.iter().cloned());
    }
    out
}

/// Run the cells of `matrices` into a new run folder under `opts.out`. Once the folder exists the
/// run always ends with its end recorded in `run.json` (completed, interrupted by which signal,
/// or failed), and every finished cell's result is kept: appended to `results.jsonl`, or, when
/// that fails, printed with the error.
pub async fn run(
    matrices: &[LoadedMatrix],
    opts: &RunOptions,
    interrupt: &Interrupt,
) -> Result<RunSummary> {
    let cells = select_cells(matrices, &opts.filters)?;
    if opts.generator.is_some() {
        check_generator_cells(&cells)?;
    }
    let mine = cells_of_this_part(&cells, opts.shard);
    let name = match matrices {
        [one] => one.file.matrix.name.clone(),
        _ => "multi".to_string(),
    };
    let part = match (opts.shard, opts.generator) {
        (Some(s), _) => format!("-shard{}of{}", s.index, s.of),
        (None, Some(g)) => format!("-gen{}of{}", g.index, g.of),
        (None, None) => String::new(),
    };
    let run_dir = RunDir::create(&opts.out, &format!("{name}{part}"))?;
    let host = HostInfo::detect();
    run_dir.write_info(&RunInfo {
        run_id: run_dir.id(),
        started_at: chrono::Utc::now(),
        command: opts.command.clone(),
        matrices: matrices
            .iter()
            .map(|m| m.path.display().to_string())
            .collect(),
        cells: mine.len(),
        cachegate_version: env!("CARGO_PKG_VERSION").to_string(),
        host: host.clone(),
        planned: mine.iter().map(|&i| planned(&cells[i])).collect(),
        end: None,
        report: report_options(matrices),
        resume: Some(ResumeFrom {
            matrix_args: opts.matrix_args.clone(),
            filters: opts.filters.clone(),
            cwd: current_dir(),
            resumed_at: vec![],
            shard: opts.shard,
            generator: opts.generator,
        }),
        shard: opts.shard.map(|part| ShardPlan {
            part,
            whole: cells.iter().map(planned).collect(),
        }),
        generator: opts.generator,
        merged_from: vec![],
    })?;
    let of = match opts.shard {
        Some(s) => format!(" of {}, shard {s}", cells.len()),
        None => String::new(),
    };
    eprintln!(
        "run folder: {}  ({} cells{of})",
        run_dir.path.display(),
        mine.len()
    );
    if let Some(start) = &opts.start_at {
        start.wait(&interrupt.stop_token()).await?;
    }
    run_cells(matrices, &cells, &mine, run_dir, opts, interrupt).await
}

/// The cells (indices) a run with `--shard` (or without) runs, in plan order.
pub fn cells_of_this_part(cells: &[Cell], shard: Option<Part>) -> Vec<usize> {
    match shard {
        Some(part) => shard::cells_of(cells, part),
        None => (0..cells.len()).collect(),
    }
}

/// Generators share one target: each cell must name an external one, or every generator would
/// load a server of its own.
fn check_generator_cells(cells: &[Cell]) -> Result<()> {
    match cells
        .iter()
        .find(|c| c.target.server.is_none() && c.target.url.is_none())
    {
        Some(c) => Err(Error::Usage(format!(
            "--generator: cell {} starts its own server; generators drive one external target: \
             set `[target] server = \"127.0.0.1:PORT\"` (cache-ops, login-flow) or `[target] url`",
            c.id
        ))),
        None => Ok(()),
    }
}

/// What the run plans for a cell, with the fingerprint `--resume` compares.
fn planned(cell: &Cell) -> PlannedCell {
    use sha2::{Digest, Sha256};
    // Debug shows every field the cell was expanded to, in a fixed order (BTreeMaps); the
    // fingerprint only has to match between two expansions by the same cachegate.
    let digest = Sha256::digest(format!("{cell:?}").as_bytes());
    PlannedCell {
        cell_id: cell.id.clone(),
        repeat: cell.repeat,
        fingerprint: format!("{digest:x}"),
    }
}

fn current_dir() -> String {
    std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default()
}

/// Continue an interrupted run in its own folder with exactly the planned cells that have no
/// result yet. Refused, with what differs, when the matrices (or files they use) no longer
/// expand to the cells the run planned, when it was started by another cachegate version or
/// from another folder, or when it completed.
pub async fn resume(
    path: &std::path::Path,
    opts: &RunOptions,
    interrupt: &Interrupt,
) -> Result<RunSummary> {
    let run_dir = RunDir::open(path)?;
    let here = path.display();
    let mut info = run_dir
        .read_info()
        .ok_or_else(|| Error::Usage(format!("--resume {here}: it has no readable run.json")))?;
    let refuse = |why: String| Error::Usage(format!("--resume {here}: {why}"));
    if let Some(end) = info
        .end
        .as_ref()
        .filter(|e| e.outcome == RunOutcome::Completed)
    {
        return Err(refuse(format!(
            "the run {}: nothing to resume",
            end.describe()
        )));
    }
    let version = env!("CARGO_PKG_VERSION");
    if info.cachegate_version != version {
        return Err(refuse(format!(
            "it was started by cachegate {}, this is {version}",
            info.cachegate_version
        )));
    }
    let Some(from) = info.resume.clone() else {
        return Err(refuse(
            "its run.json does not say how it was started (a run from before --resume)".into(),
        ));
    };
    if from.cwd != current_dir() {
        return Err(refuse(format!(
            "run it from {}, where the run was started (its matrix paths are relative to it)",
            from.cwd
        )));
    }
    let matrices = from
        .matrix_args
        .iter()
        .map(|m| crate::config::matrix_file::open_matrix(std::path::Path::new(m)))
        .collect::<Result<Vec<_>>>()?;
    let cells = select_cells(&matrices, &from.filters)?;
    let mine = cells_of_this_part(&cells, from.shard);
    let now: Vec<PlannedCell> = mine.iter().map(|&i| planned(&cells[i])).collect();
    if now != info.planned {
        let changed = now
            .iter()
            .zip(&info.planned)
            .find(|(a, b)| a != b)
            .map(|(a, _)| format!("cell {} is not what it was", a.cell_id))
            .unwrap_or_else(|| {
                format!(
                    "the matrices now give {} cells, the run planned {}",
                    now.len(),
                    info.planned.len()
                )
            });
        return Err(refuse(format!(
            "{} changed since the run started ({changed}); start a new run",
            from.matrix_args.join(", ")
        )));
    }
    let read = run_dir.read_results()?;
    if let Some(cut) = &read.cut_off {
        eprintln!("warning: {cut}");
        run_dir.drop_cut_off_line()?;
    }
    let done: std::collections::HashSet<(&str, u32)> = read
        .results
        .iter()
        .map(|r| (r.cell_id.as_str(), r.repeat))
        .collect();
    let todo: Vec<usize> = mine
        .iter()
        .copied()
        .filter(|&i| !done.contains(&(cells[i].id.as_str(), cells[i].repeat)))
        .collect();
    eprintln!(
        "resuming {}: {} of {} cells done, {} to run",
        run_dir.path.display(),
        mine.len() - todo.len(),
        mine.len(),
        todo.len()
    );
    info.end = None;
    let mut from = from;
    from.resumed_at.push(chrono::Utc::now());
    let opts = RunOptions {
        shard: from.shard,
        generator: from.generator,
        ..opts.clone()
    };
    info.resume = Some(from);
    run_dir.write_info(&info)?;
    run_cells(&matrices, &cells, &todo, run_dir, &opts, interrupt).await
}

/// Run `cells[i]` for each `i` in `todo` into `run_dir`, then record how the run ended.
async fn run_cells(
    matrices: &[LoadedMatrix],
    cells: &[Cell],
    todo: &[usize],
    run_dir: RunDir,
    opts: &RunOptions,
    interrupt: &Interrupt,
) -> Result<RunSummary> {
    let host = HostInfo::detect();

    let swept = crate::scratch::sweep();
    if !swept.is_empty() {
        eprintln!(
            "removed {} temp folder(s) that killed runs left in {}",
            swept.len(),
            std::env::temp_dir().display()
        );
    }
    let uses_containers = cells
        .iter()
        .any(|c| c.axes.runtime == crate::config::matrix_file::RuntimeKind::Container);
    if uses_containers {
        sweep_containers(None).await;
    }
    let mut provisioned = Provisioned::default();
    let mut failure = None;
    let log_names = cell::log_names(cells);
    for &index in todo {
        let cell = &cells[index];
        if interrupt.is_interrupted() {
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
        // Generators of one cell share its keys (one workload over one keyspace, as one bigger
        // generator would) and register distinct users.
        let (key_prefix, user_tag) = match opts.generator {
            Some(g) => (
                format!("cg:gen:{}:{}:", slug(&cell.id), cell.repeat),
                format!("cg{index}g{}x{}", g.index, std::process::id()),
            ),
            None => (
                format!("cg:{}:{index}:", run_dir.id()),
                format!("cg{index}x{}", std::process::id()),
            ),
        };
        let ctx = cell::CellContext {
            run_dir: &run_dir,
            host: &host,
            key_prefix,
            user_tag,
            cancel: interrupt.stop_token(),
            interrupt,
            log_base: format!("logs/{}", log_names[index]),
            label: label.clone(),
            progress: opts.progress,
        };
        let hurry = interrupt.hurry_token();
        // A second signal drops the running cell's future: everything it started is killed by
        // its owner's drop (processes by PID, temp folders removed), and the cell is recorded.
        let clock_offset_ms = opts
            .generator
            .and(cell.target.server.as_deref())
            .and_then(|addr| clock_offset_ms(cell, addr));
        tracing::debug!(cell = %cell.id, repeat = cell.repeat, "cell starts");
        let mut result = tokio::select! {
            result = cell::run_cell(cell, binary, stack, &ctx) => result,
            _ = hurry.cancelled() => cell::abandoned(cell, &ctx),
        };
        result.clock_offset_ms = clock_offset_ms;
        eprintln!("{label}  {}", cell::one_line(&result));
        if let Err(e) = keep(&run_dir, &result).await {
            failure = Some(format!("the output stopped being writable: {e}"));
            break;
        }
    }
    let end = RunEnd {
        outcome: match (&failure, interrupt.signal()) {
            (Some(_), _) => RunOutcome::Failed,
            (None, Some(_)) => RunOutcome::Interrupted,
            (None, None) => RunOutcome::Completed,
        },
        signal: interrupt.signal().map(str::to_string),
        message: failure.clone(),
        finished_at: chrono::Utc::now(),
    };
    if let Err(e) = run_dir.record_end(end.clone()) {
        eprintln!(
            "error: recording how the run ended ({}): {e}",
            end.describe()
        );
    }
    if uses_containers {
        // Normally empty: every cell removes what it created. This catches what a panic left.
        sweep_containers(Some(&run_dir.id())).await;
    }
    Ok(RunSummary {
        run_dir: run_dir.path.clone(),
        end,
    })
}

/// A generator's clock against the external server's (`TIME`), in milliseconds, so `merge`
/// can say how far apart the generators' clocks were. Redis protocol only (memcached's `time`
/// stat has whole seconds).
fn clock_offset_ms(cell: &Cell, addr: &str) -> Option<f64> {
    if cell.spec.server.family.protocol() != crate::server::spec::Protocol::Resp {
        return None;
    }
    let addr: std::net::SocketAddr = addr.parse().ok()?;
    let endpoint = cell.spec.harness_endpoint(addr.port());
    // The best of a few exchanges: the one with the shortest round trip errs least.
    (0..5)
        .filter_map(|_| crate::server::control::clock_offset_us(&endpoint))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(offset, _)| offset / 1000.0)
}

/// Append a finished cell to the run folder, retrying once; if it cannot be written, print it
/// whole (one JSON line on stdout) so the measurement is never lost, and return the error.
async fn keep(run_dir: &RunDir, result: &CellResult) -> Result<()> {
    let first = match run_dir.append(result) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    eprintln!("error: {first}; retrying in 1s");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    match run_dir.append(result) {
        Ok(()) => Ok(()),
        Err(e) => {
            eprintln!(
                "error: {e}\nthe cell's result could not be written; here it is (one results.jsonl line):"
            );
            println!(
                "{}",
                serde_json::to_string(result).expect("results serialize")
            );
            Err(e)
        }
    }
}

/// Remove containers, volumes and networks of harnesses that are gone (`None`) or of this run,
/// and say so. Without a Docker engine there is nothing to sweep: the container cells will
/// report that themselves.
async fn sweep_containers(run: Option<&str>) {
    use crate::server::container;
    let Ok(docker) = container::connect().await else {
        return;
    };
    match container::sweep(&docker, run).await {
        Ok(swept) if !swept.is_empty() => eprintln!(
            "removed what {} left behind: {} containers, {} volumes, {} networks",
            if run.is_some() {
                "this run"
            } else {
                "an earlier run"
            },
            swept.containers.len(),
            swept.volumes.len(),
            swept.networks.len()
        ),
        Ok(_) => {}
        Err(e) => eprintln!("warning: {e}"),
    }
}
