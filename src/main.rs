//! The `cachegate` command line. Only argument handling lives here; the work is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use cachegate::config::load_matrix;
use cachegate::error::Error;
use cachegate::exit_code;
use cachegate::gate::{Change, CompareOptions};
use cachegate::report;
use cachegate::results::RunDir;
use cachegate::runner::{self, RunOptions};
use cachegate::server::catalog::CATALOG;
use cachegate::server::provision::short_ref;
use cachegate::server::{Provisioner, ServerRef};

const EXIT_CODES: &str = "Exit codes:
  0    every cell met its expectation
  1    a cell did not meet its expectation (FAIL or XPASS)
  2    bad input: malformed matrix/scenario file or command-line usage
  3    infrastructure failure: a server could not be provisioned or started
  130  interrupted by Ctrl-C (everything started was stopped)";

#[derive(Parser)]
#[command(name = "cachegate", version, about = "Load-testing and compatibility conformance harness for web-session and cache stacks", after_help = EXIT_CODES)]
struct Cli {
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run matrices (default: matrices/quick.toml) and write a run folder under --out.
    #[command(after_help = EXIT_CODES)]
    Run {
        /// Matrix files to run.
        matrices: Vec<PathBuf>,
        /// Folder that receives the run folder.
        #[arg(long, default_value = "reports")]
        out: PathBuf,
        /// Run only cells matching every term: `axis=value` (server=redis@7, persistence=none,
        /// variant=p16, runtime=process) or a substring of the cell id. Repeatable.
        #[arg(long)]
        filter: Vec<String>,
        /// Never draw the progress bar.
        #[arg(long)]
        no_progress: bool,
        /// Compare against this earlier run folder (deltas in the report; a regression exits 1).
        #[arg(long)]
        baseline: Option<PathBuf>,
        #[command(flatten)]
        compare: CompareArgs,
        /// Threads driving the load (default: half the CPUs, at least 1, leaving the rest to the
        /// server under test; on 2 cores one thread beats two, see `cargo bench --bench compare`).
        #[arg(long, env = "CACHEGATE_THREADS")]
        threads: Option<usize>,
    },
    /// Validate matrix files and list their cells without running anything.
    Check {
        #[arg(required = true)]
        matrices: Vec<PathBuf>,
        #[arg(long)]
        filter: Vec<String>,
    },
    /// Re-render a run folder's outputs (CSV, summary.json, junit.xml, summary.md, index.html)
    /// from its results.jsonl and print its table.
    #[command(after_help = EXIT_CODES)]
    Report {
        run_dir: PathBuf,
        /// Show deltas against this earlier run folder.
        #[arg(long)]
        baseline: Option<PathBuf>,
        #[command(flatten)]
        compare: CompareArgs,
    },
    /// Compare a run against a baseline run (medians of repeats, noise-aware); exits 1 on a
    /// regression. Re-renders CURRENT's report with the deltas.
    #[command(after_help = EXIT_CODES)]
    Compare {
        baseline: PathBuf,
        current: PathBuf,
        #[command(flatten)]
        compare: CompareArgs,
    },
    /// Server binaries: what is known, where each comes from, what is installed.
    Servers {
        #[command(subcommand)]
        command: ServersCommand,
    },
}

/// How much change counts as a regression.
#[derive(clap::Args, Clone, Copy)]
struct CompareArgs {
    /// Relative throughput drop tolerated (or the run-to-run spread, if larger).
    #[arg(long, default_value_t = 0.10)]
    throughput_threshold: f64,
    /// Relative p99 rise tolerated (or the run-to-run spread, if larger).
    #[arg(long, default_value_t = 0.25)]
    latency_threshold: f64,
    /// Cells whose repeats spread more than this are UNSTABLE, not judged.
    #[arg(long, default_value_t = 0.30)]
    max_noise: f64,
}

impl From<CompareArgs> for CompareOptions {
    fn from(a: CompareArgs) -> Self {
        CompareOptions {
            throughput_threshold: a.throughput_threshold,
            latency_threshold: a.latency_threshold,
            max_noise: a.max_noise,
        }
    }
}

#[derive(Subcommand)]
enum ServersCommand {
    /// List known server versions, their source, and whether they are ready.
    List,
    /// Download and verify servers, e.g. `redis@7.4 valkey@9`.
    Install {
        #[arg(required = true)]
        servers: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match cli.verbose {
        0 => "warn",
        1 => "cachegate=debug",
        _ => "trace",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| filter.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let code = match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            let code = e
                .downcast_ref::<Error>()
                .map_or(exit_code::INFRA, Error::exit_code);
            eprintln!("error: {e:#}");
            code
        }
    };
    ExitCode::from(code as u8)
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
        } => {
            // Check the baseline before spending minutes on the run.
            let baseline = baseline.map(|b| RunDir::open(&b)).transpose()?;
            let matrices = if matrices.is_empty() {
                vec![PathBuf::from("matrices/quick.toml")]
            } else {
                matrices
            };
            let loaded = matrices
                .iter()
                .map(|m| load_matrix(m))
                .collect::<Result<Vec<_>, _>>()?;
            let opts = RunOptions {
                out,
                filters: filter,
                command: std::env::args().collect(),
                progress: !no_progress,
            };
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            let runtime = cachegate::load_runtime(threads.unwrap_or(cpus / 2).max(1))
                .context("starting the async runtime")?;
            let cancel = CancellationToken::new();
            let on_ctrl_c = cancel.clone();
            // Installed before any goose attack: goose then finds a handler in place and keeps
            // out of the way, and scenarios stop through `cancel` (which pulls goose's killswitch).
            ctrlc::set_handler(move || {
                if on_ctrl_c.is_cancelled() {
                    // A second Ctrl-C exits at once; children still die with us (PDEATHSIG).
                    std::process::exit(exit_code::INTERRUPTED);
                }
                eprintln!("\ninterrupted: stopping the current cell and everything it started...");
                on_ctrl_c.cancel();
            })
            .context("installing the Ctrl-C handler")?;
            let summary = runtime.block_on(runner::run(&loaded, &opts, cancel))?;
            let run_dir = RunDir::open(&summary.run_dir)?;
            let rendered = report::render_all(&run_dir, baseline.as_ref(), compare.into())?;
            print!("{}", rendered.table);
            print_gates_and_deltas(&rendered.summary);
            println!(
                "results: {}  (report: {})",
                summary.run_dir.display(),
                summary.run_dir.join("index.html").display()
            );
            Ok(if summary.interrupted {
                exit_code::INTERRUPTED
            } else {
                rendered.summary.exit_code
            })
        }
        Command::Check { matrices, filter } => {
            let loaded = matrices
                .iter()
                .map(|m| load_matrix(m))
                .collect::<Result<Vec<_>, _>>()?;
            let cells = runner::select_cells(&loaded, &filter)?;
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
            print!("{}", rendered.table);
            print_gates_and_deltas(&rendered.summary);
            Ok(exit_code::OK)
        }
        Command::Compare {
            baseline,
            current,
            compare,
        } => {
            let baseline = RunDir::open(&baseline)?;
            let current = RunDir::open(&current)?;
            let rendered = report::render_all(&current, Some(&baseline), compare.into())?;
            print_gates_and_deltas(&rendered.summary);
            let regressions = rendered
                .summary
                .comparison
                .iter()
                .flatten()
                .any(|d| d.status == Change::Regression);
            Ok(if regressions {
                exit_code::EXPECTATION_FAILED
            } else {
                exit_code::OK
            })
        }
        Command::Servers { command } => servers(command),
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
            println!(
                "  {:<11} {}  {}: {} -> {} ({}, tolerance {:.1}%)",
                format!("{:?}", d.status).to_uppercase(),
                d.cell_id,
                d.metric,
                f(d.baseline),
                f(d.current),
                d.change
                    .map_or("-".to_string(), |c| format!("{:+.1}%", c * 100.0)),
                d.tolerance * 100.0
            );
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
