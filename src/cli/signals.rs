//! SIGINT, SIGTERM and SIGHUP (what a terminal, a CI system's cancel or timeout, and a closed
//! session send) all stop a run the same way, through the current run's `Interrupt`.
//!
//! SIGINT goes through the `ctrlc` crate on purpose: goose installs a `ctrlc` handler at each
//! attack unless one is already set; ours, installed first, keeps goose from taking Ctrl-C, and
//! scenarios stop goose through the run's cancellation instead. SIGTERM and SIGHUP are watched by
//! a small runtime on a thread of their own, so they are handled even while the load runtime is
//! busy or blocked.

use std::sync::Mutex;

use tokio::signal::unix::{signal, SignalKind};

use crate::runner::Interrupt;

/// The run that signals go to (handlers are process-wide and installed once).
static CURRENT: Mutex<Option<Interrupt>> = Mutex::new(None);
static INSTALLED: Mutex<bool> = Mutex::new(false);

fn deliver(name: &'static str) {
    let current = CURRENT.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match current {
        Some(interrupt) => interrupt.on_signal(name),
        // Between runs (in-process use): behave like the default action.
        None => std::process::exit(crate::exit_code::for_signal(name)),
    }
}

/// Send SIGINT, SIGTERM and SIGHUP to `interrupt` from now on. Returns once the handlers are in
/// place, so no signal between here and the end of the run takes the default action.
pub fn route_to(interrupt: &Interrupt) -> std::io::Result<()> {
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(interrupt.clone());
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if *installed {
        return Ok(());
    }
    ctrlc::set_handler(|| deliver("SIGINT")).map_err(std::io::Error::other)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut term, mut hup) = {
        let _context = runtime.enter();
        (
            signal(SignalKind::terminate())?,
            signal(SignalKind::hangup())?,
        )
    };
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            runtime.block_on(async move {
                loop {
                    tokio::select! {
                        Some(()) = term.recv() => deliver("SIGTERM"),
                        Some(()) = hup.recv() => deliver("SIGHUP"),
                        else => break,
                    }
                }
            })
        })?;
    *installed = true;
    Ok(())
}

/// The run is over: signals no longer go to it.
pub fn release() {
    if let Some(interrupt) = CURRENT.lock().unwrap_or_else(|e| e.into_inner()).take() {
        interrupt.finish();
    }
}
