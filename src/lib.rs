//! cachegate: load-testing and compatibility conformance harness for web-session and cache stacks.
//!
//! Data moves one way: matrix files expand into cells, each cell provisions and starts a server,
//! runs a scenario, and appends a `CellResult` to `results.jsonl`; reports are rendered only from
//! that file. See `README.md` for the tour.

pub mod child;
pub mod cli;
pub mod config;
pub mod error;
pub mod fd_limit;
#[doc(hidden)]
pub mod fuzz_entry;
pub mod host;
pub mod judge;
pub mod matrix;
pub mod net;
pub mod report;
pub mod results;
pub mod runner;
pub mod scenario;
pub mod scratch;
pub mod server;
pub mod stack;
pub mod target;

/// Process exit codes, shared by the CLI and documented in `--help` and the README.
pub mod exit_code {
    /// Every cell met its expectation.
    pub const OK: i32 = 0;
    /// At least one cell did not meet its expectation (FAIL or XPASS).
    pub const EXPECTATION_FAILED: i32 = 1;
    /// Bad input: a malformed matrix/scenario file or wrong command-line usage.
    pub const BAD_INPUT: i32 = 2;
    /// Infrastructure failure: a server could not be provisioned or started, disk errors, ...
    pub const INFRA: i32 = 3;
    /// Interrupted by Ctrl-C (128 + SIGINT), after cleaning up.
    pub const INTERRUPTED: i32 = 130;

    /// The exit code of a run a signal stopped: 128 + its number, as shells report it
    /// (SIGHUP 129, SIGINT 130, SIGTERM 143).
    pub fn for_signal(name: &str) -> i32 {
        128 + match name {
            "SIGHUP" => libc::SIGHUP,
            "SIGTERM" => libc::SIGTERM,
            _ => libc::SIGINT,
        }
    }
}

/// Can this process start `n` more threads? Ask the OS before tokio does: tokio panics when a
/// worker thread cannot be spawned, and then hangs joining the workers it already started
/// (seen with `--threads 5000` under a process limit).
fn can_start_threads(n: usize) -> std::io::Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let release = std::sync::Arc::new(AtomicBool::new(false));
    let mut started = Vec::with_capacity(n);
    let mut failure = None;
    for _ in 0..n {
        let release = release.clone();
        let spawned = std::thread::Builder::new().spawn(move || {
            while !release.load(Ordering::Acquire) {
                std::thread::park();
            }
        });
        match spawned {
            Ok(handle) => started.push(handle),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    release.store(true, Ordering::Release);
    let count = started.len();
    for handle in started {
        handle.thread().unpark();
        let _ = handle.join();
    }
    match failure {
        None => Ok(()),
        Some(e) => Err(std::io::Error::new(
            e.kind(),
            format!("the system allows only {count} more threads ({e})"),
        )),
    }
}

/// The async runtime that drives the load. With one thread it is tokio's current-thread
/// scheduler: measured in the side-by-side benchmark (tests/bench/compare.rs), it spends less CPU
/// per operation than the multi-thread scheduler with one worker.
pub fn load_runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    can_start_threads(threads)?;
    if threads <= 1 && std::env::var_os("CACHEGATE_MULTI_THREAD").is_none() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .enable_all()
            .build()
    }
}
