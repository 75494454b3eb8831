//! The command line carried out: what each subcommand does, the async runtime and signal
//! handling around a run, the default matrix, and what is printed on the console. `main.rs`
//! only parses the arguments and calls `run`, so tests can run the CLI in-process.

mod args;
mod images;
pub mod init;
mod list;
pub mod schema;
pub mod shell;
mod signals;

use std::path::PathBuf;

use anyhow::Context;

pub use args::{Cli, Command, CompareArgs, ImagesCommand, ServersCommand, EXIT_CODES};

use crate::config::open_matrix;
use crate::error::Error;
use crate::exit_code;
use crate::judge::Verb;
use crate::report;
use crate::results::RunDir;
use crate::runner::{self, Interrupt, RunOptions};
use crate::server::catalog::CATALOG;
use crate::server::provision::short_ref;
use crate::server::{Provisioner, ServerRef};

/// The matrix `cachegate run` runs when given none: `matrices/quick.toml` in the current folder
/// if there is one (the source tree), else the bundled `quick`.
pub const DEFAULT_MATRIX: &str = "quick";

/// Carry out a parsed command line and return the process's exit code. Errors are printed here.
pub fn run(cli: Cli) -> i32 {
    let filter = match cli.verbose {
        0 => "warn",
        1 => "cachegate=debug",
        _ => "trace",
    };
    // Already set when called twice in one process (tests); the first setting stays.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| filter.into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not into CI logs or files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            let code = e
                .downcast_ref::<Error>()
                .map_or(exit_code::INFRA, Error::exit_code);
            eprintln!("error: {e:#}");
            code
        }
    }
}

fn dispatch(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Run {
            matrices,
            out,
            filter,
            no_progress,
            baseline,
            compare,
            threads,
            resume,
            shard,
            generator,
            start_at,
        } => {
            // Check the baseline before spending minutes on the run.
            let baseline = baseline.map(|b| RunDir::open(&b)).transpose()?;
            let matrices = if matrices.is_empty() {
                vec![PathBuf::from(DEFAULT_MATRIX)]
            } else {
                matrices
            };
            let loaded = match resume {
                Some(_) => vec![],
                None => matrices
                    .iter()
                    .map(|m| open_matrix(m))
                    .collect::<Result<Vec<_>, _>>()?,
            };
            let opts = RunOptions {
                out,
                filters: filter,
                command: std::env::args().collect(),
                progress: !no_progress,
                matrix_args: matrices.iter().map(|m| m.display().to_string()).collect(),
                shard,
                generator,
                start_at,
            };
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            let threads = threads.unwrap_or(cpus / 2).max(1);
            // More threads than the system lets this process start is a --threads to lower.
            let runtime = crate::load_runtime(threads).map_err(|e| {
                Error::Usage(format!(
                    "--threads {threads}: cannot start the load threads: {e}; lower --threads"
                ))
            })?;
            let interrupt = Interrupt::new();
            // Before any goose attack (see signals.rs) and before the run folder exists.
            signals::route_to(&interrupt).context("installing the signal handlers")?;
            let outcome = runtime.block_on(async {
                match &resume {
                    Some(run_dir) => runner::resume(run_dir, &opts, &interrupt).await,
                    None => runner::run(&loaded, &opts, &interrupt).await,
                }
            });
            let code = outcome.and_then(|summary| finish_run(&summary, baseline.as_ref(), compare));
            signals::release();
            Ok(code?)
        }
        Command::Check {
            matrices,
            filter,
            shard,
        } => {
            let loaded = matrices
                .iter()
                .map(|m| open_matrix(m))
                .collect::<Result<Vec<_>, _>>()?;
            let all = runner::select_cells(&loaded, &filter)?;
            let mine = runner::cells_of_this_part(&all, shard);
            let cells: Vec<_> = mine.iter().map(|&i| all[i].clone()).collect();
            if let Some(shard) = shard {
                let seconds: u64 = cells.iter().map(runner::shard::expected_seconds).sum();
                println!(
                    "shard {shard}: {} of {} cells, about {seconds} s",
                    cells.len(),
                    all.len()
                );
            }
            for cell in &cells {
                let expect = format!("{:?}", cell.expected).to_lowercase();
                println!(
                    "{}  [{} #{}] expect {expect}",
                    cell.id,
                    cell.matrix,
                    cell.repeat + 1
                );
            }
            println!("{} cells OK", cells.len());
            Ok(exit_code::OK)
        }
        Command::Report {
            run_dir,
            baseline,
            compare,
        } => {
            let run_dir = RunDir::open(&run_dir)?;
            let baseline = baseline.map(|b| RunDir::open(&b)).transpose()?;
            let rendered = report::render_all(&run_dir, baseline.as_ref(), compare.into())?;
            print_warnings(&rendered);
            print!("{}", rendered.table);
            print_gates_and_deltas(&rendered.summary);
            print_run_end(&rendered.summary);
            Ok(rendered.judgement.exit_code(Verb::Report))
        }
        Command::Compare {
            baseline,
            current,
            compare,
        } => {
            let baseline = RunDir::open(&baseline)?;
            let current = RunDir::open(&current)?;
            let rendered = report::render_all(&current, Some(&baseline), compare.into())?;
            print_warnings(&rendered);
            print_gates_and_deltas(&rendered.summary);
            Ok(rendered.judgement.exit_code(Verb::Compare))
        }
        Command::Merge {
            runs,
            out,
            baseline,
            compare,
        } => {
            let baseline = baseline.map(|b| RunDir::open(&b)).transpose()?;
            let merged = crate::results::merge::merge(&runs, &out, std::env::args().collect())?;
            for w in &merged.warnings {
                eprintln!("warning: {w}");
            }
            let summary = runner::RunSummary {
                end: merged
                    .run_dir
                    .read_info()
                    .and_then(|i| i.end)
                    .expect("merge records the end"),
                run_dir: merged.run_dir.path,
            };
            Ok(finish_run(&summary, baseline.as_ref(), compare)?)
        }
        Command::Servers { command } => servers(command),
        Command::Images { command } => images::run(command),
        Command::List => list::run(),
        Command::Init(opts) => Ok(init::run(&opts)?),
        Command::Schema { of } => schema::run(of),
        Command::Completions { shell } => shell::completions(shell),
        Command::Man { subcommand } => shell::man(subcommand.as_deref()),
    }
}

/// Render a finished run's outputs and print its table. The exit code is the judge's (which
/// accounts for how the run ended); if the outputs cannot be written, the run's results are
/// still on the console and the exit code says infrastructure failure.
fn finish_run(
    summary: &runner::RunSummary,
    baseline: Option<&RunDir>,
    compare: CompareArgs,
) -> crate::error::Result<i32> {
    let run_dir = RunDir::open(&summary.run_dir)?;
    let rendered = match report::render_all(&run_dir, baseline, compare.into()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: writing the report: {e}");
            return Ok(exit_code::INFRA);
        }
    };
    print_warnings(&rendered);
    print!("{}", rendered.table);
    print_gates_and_deltas(&rendered.summary);
    print_run_end(&rendered.summary);
    println!(
        "results: {}  (report: {})",
        summary.run_dir.display(),
        summary.run_dir.join("index.html").display()
    );
    Ok(rendered.judgement.exit_code(Verb::Run))
}

/// What was read around rather than refused (a results file's cut-off last line).
fn print_warnings(rendered: &report::Rendered) {
    for w in &rendered.warnings {
        eprintln!("warning: {w}");
    }
}

/// Say when a run did not complete, and which cells never ran.
fn print_run_end(summary: &report::summary::Summary) {
    if !summary.complete {
        println!("run incomplete: {}", summary.run_end);
        if let Some(note) = report::summary::not_run_note(summary) {
            println!("  {note}");
        }
    }
}

/// Failed gates and the baseline comparison, after the table.
fn print_gates_and_deltas(summary: &report::summary::Summary) {
    for g in summary.gates.iter().filter(|g| !g.passed) {
        println!(
            "  GATE FAILED {}: {} = {:.3}, needs {}",
            g.cell_id, g.metric, g.value, g.condition
        );
    }
    if let Some(deltas) = &summary.comparison {
        println!("against the baseline:");
        for d in deltas {
            let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
            if let Some(note) = &d.note {
                println!("  {:<14} {}: {note}", d.status.label(), d.cell_id);
                continue;
            }
            println!(
                "  {:<14} {}  {}: {} -> {} ({}, tolerance {:.1}%)",
                d.status.label(),
                d.cell_id,
                d.metric,
                f(d.baseline),
                f(d.current),
                d.change
                    .map_or("-".to_string(), |c| format!("{:+.1}%", c * 100.0)),
                d.tolerance * 100.0
            );
        }
        for problem in crate::judge::comparison_problems(deltas) {
            println!("  COMPARISON FAILED: {problem}");
        }
    }
}

fn servers(command: ServersCommand) -> anyhow::Result<i32> {
    let provisioner = Provisioner::with_default_cache();
    match command {
        ServersCommand::List => {
            println!("cache: {}", provisioner.cache_dir().display());
            println!("{:<12} {:<8} {:<10} source", "server", "version", "status");
            for entry in CATALOG {
                let status = match provisioner.installed(entry) {
                    Some(_) => "ready",
                    None => "not yet",
                };
                println!(
                    "{:<12} {:<8} {:<10} {}",
                    short_ref(entry),
                    entry.version,
                    status,
                    entry.source.describe()
                );
            }
            Ok(exit_code::OK)
        }
        ServersCommand::Install { servers } => {
            let mut code = exit_code::OK;
            for s in servers {
                let server: ServerRef = s.parse().map_err(Error::Usage)?;
                match provisioner.provision(&server) {
                    Ok(p) => println!(
                        "{server}: {} {} ({})",
                        p.version,
                        p.binary.display(),
                        p.source
                    ),
                    Err(e) => {
                        eprintln!("error: {e}");
                        code = e.exit_code();
                    }
                }
            }
            Ok(code)
        }
    }
}
