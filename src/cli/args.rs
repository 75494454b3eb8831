//! The command line's arguments (clap). `main.rs` parses them; `cli::run` carries them out.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::judge::CompareOptions;
use crate::results::part::Part;
use crate::runner::shard::StartAt;

// Help texts as macros, so `concat!` can join them.
macro_rules! exit_codes {
    () => {
        "Exit codes:
  0    every cell met its expectation
  1    a cell did not meet its expectation (FAIL or XPASS)
  2    bad input: malformed matrix/scenario file or command-line usage
  3    infrastructure failure: a server could not be provisioned or started
  129  interrupted by SIGHUP, 130 by SIGINT (Ctrl-C), 143 by SIGTERM: everything started was
       stopped, the running cell recorded, the report written (a second signal hurries this)"
    };
}

macro_rules! matrix_args {
    () => {
        "Matrices:
  A path (it has a `/` or a `.`: ./mine.toml, matrices/quick.toml) is that file. A bare name
  (quick, upgrade) is matrices/NAME.toml in the current folder if that file exists, else the
  matrix of that name bundled into cachegate (`cachegate list` shows them)."
    };
}

pub const EXIT_CODES: &str = exit_codes!();

const MATRIX_ARGS: &str = matrix_args!();

const RUN_HELP: &str = concat!(matrix_args!(), " With none: quick.\n\n", exit_codes!());

/// The most load threads `--threads` accepts: more only contend with each other and the server
/// for the CPUs, and each one is an OS thread the process may not be allowed to create.
pub const MAX_THREADS: usize = 256;

fn parse_threads(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number of threads"))?;
    if !(1..=MAX_THREADS).contains(&n) {
        return Err(format!(
            "{n} threads: must be between 1 and {MAX_THREADS} (load threads beyond the CPUs only contend)"
        ));
    }
    Ok(n)
}

#[derive(Parser)]
#[command(name = "cachegate", version, about = "Load-testing and compatibility conformance harness for web-session and cache stacks", after_help = EXIT_CODES)]
pub struct Cli {
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run matrices (default: quick) and write a run folder under --out.
    #[command(after_help = RUN_HELP)]
    Run {
        /// Matrix files (a path) or bundled matrices (a bare name, see `cachegate list`).
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
        #[arg(long, env = "CACHEGATE_THREADS", value_parser = parse_threads)]
        threads: Option<usize>,
        /// Continue this interrupted run folder with the planned cells it has no result for
        /// (the same matrices and filters; refused if they changed). Run from the folder the
        /// run was started in.
        #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["matrices", "filter", "out", "shard", "generator"])]
        resume: Option<PathBuf>,
        /// Run part K of N of the cells (1-based), split by expected duration the same way on
        /// every machine; `cachegate merge` combines the N run folders into one run.
        #[arg(long, value_name = "K/N")]
        shard: Option<Part>,
        /// This run is generator I of G driving the same cells at one external target
        /// (`[target] server` or `url`); `cachegate merge` adds their histograms and throughput.
        #[arg(long, value_name = "I/G", conflicts_with = "shard")]
        generator: Option<Part>,
        /// Start the first cell at this instant (RFC 3339, e.g. 2026-12-07T10:00:00Z) or once a
        /// barrier file exists (file:PATH), so generators on several hosts start together.
        #[arg(long, value_name = "WHEN")]
        start_at: Option<StartAt>,
    },
    /// Validate matrices and list their cells without running anything.
    #[command(after_help = MATRIX_ARGS)]
    Check {
        /// Matrix files (a path) or bundled matrices (a bare name, see `cachegate list`).
        #[arg(required = true)]
        matrices: Vec<PathBuf>,
        #[arg(long)]
        filter: Vec<String>,
        /// List only the cells `run --shard K/N` would run.
        #[arg(long, value_name = "K/N")]
        shard: Option<Part>,
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
    /// Combine run folders of `run --shard K/N` (each holds some cells) or of `run --generator
    /// I/G` (each drove the same cells) into one run folder with one report, gates and baseline
    /// comparison. A missing part makes the run fail (exit 3), naming it.
    #[command(after_help = EXIT_CODES)]
    Merge {
        /// The parts' run folders.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Folder that receives the merged run folder.
        #[arg(long, default_value = "reports")]
        out: PathBuf,
        /// Compare the merged run against this earlier run folder.
        #[arg(long)]
        baseline: Option<PathBuf>,
        #[command(flatten)]
        compare: CompareArgs,
    },
    /// The bundled matrices and scenarios, each with what it is for, and which are shadowed by
    /// files in the current folder.
    List,
    /// Start using cachegate in this repository: write a commented login-flow matrix for the
    /// stack the flags name (matrices/NAME.toml), a nightly CI workflow that gates on it with a
    /// baseline (.github/workflows/), and a .gitignore entry for run folders. Never overwrites.
    Init(super::init::InitOptions),
    /// Print the JSON Schema of matrix files (default) or scenario files, for editors: point a
    /// TOML language server at it (`#:schema` on a file's first line, or taplo's config).
    Schema {
        #[arg(value_enum, default_value = "matrix")]
        of: super::schema::SchemaOf,
    },
    /// Print a shell completion script, e.g. `cachegate completions bash >
    /// ~/.local/share/bash-completion/completions/cachegate`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) of cachegate or of one subcommand, e.g.
    /// `cachegate man > ~/.local/share/man/man1/cachegate.1`, `cachegate man run | man -l -`.
    Man {
        /// A subcommand's page instead (`cachegate-run(1)`).
        subcommand: Option<String>,
    },
    /// Server binaries: what is known, where each comes from, what is installed.
    Servers {
        #[command(subcommand)]
        command: ServersCommand,
    },
    /// Container images of the servers, built locally from the provisioned binaries (no
    /// registry needed); container cells build the ones they need on first use.
    Images {
        #[command(subcommand)]
        command: ImagesCommand,
    },
}

#[derive(Subcommand)]
pub enum ImagesCommand {
    /// Build `cachegate/<family>:<version>` for these servers (default: every server already
    /// installed), provisioning them first; an image with the same contents is kept.
    Build { servers: Vec<String> },
    /// Images cachegate built, with their ids and sizes.
    List,
}

/// How much change counts as a regression.
#[derive(clap::Args, Clone, Copy)]
pub struct CompareArgs {
    /// Relative throughput drop tolerated (or the run-to-run spread, if larger).
    #[arg(long, default_value_t = 0.10)]
    pub throughput_threshold: f64,
    /// Relative p99 rise tolerated (or the run-to-run spread, if larger).
    #[arg(long, default_value_t = 0.25)]
    pub latency_threshold: f64,
    /// Cells whose repeats spread more than this are UNSTABLE, not judged.
    #[arg(long, default_value_t = 0.30)]
    pub max_noise: f64,
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
pub enum ServersCommand {
    /// List known server versions, their source, and whether they are ready.
    List,
    /// Download and verify servers, e.g. `redis@7.4 valkey@9`.
    Install {
        #[arg(required = true)]
        servers: Vec<String>,
    },
}
