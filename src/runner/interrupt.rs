//! How a run is asked to stop. The first signal (SIGINT, SIGTERM or SIGHUP) stops the running
//! cell gracefully and ends the run after recording it; a second one abandons the running cell at
//! once (its processes are killed) and still records it and writes the report; a third exits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How long the run may still take after the second signal before the process exits anyway.
/// Recording the abandoned cell and rendering the report take well under a second; this bounds a
/// stuck disk or a blocked call.
pub const AFTER_SECOND_SIGNAL: Duration = Duration::from_secs(10);

#[derive(Clone, Default)]
pub struct Interrupt {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Stop the running cell gracefully and start no other.
    stop: CancellationToken,
    /// Abandon the running cell now.
    hurry: CancellationToken,
    /// The first signal's name.
    signal: Mutex<Option<&'static str>>,
    /// The process is exiting by itself; the watchdog must not race it.
    finished: AtomicBool,
}

impl Interrupt {
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancelled by the first signal; scenarios stop through it.
    pub fn stop_token(&self) -> CancellationToken {
        self.inner.stop.clone()
    }

    /// Cancelled by the second signal.
    pub fn hurry_token(&self) -> CancellationToken {
        self.inner.hurry.clone()
    }

    pub fn is_interrupted(&self) -> bool {
        self.inner.stop.is_cancelled()
    }

    /// The first signal received, if any.
    pub fn signal(&self) -> Option<&'static str> {
        *self.inner.signal.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The run is over; a late signal changes nothing.
    pub fn finish(&self) {
        self.inner.finished.store(true, Ordering::SeqCst);
    }

    /// React to a signal (called from the signal-handling threads).
    pub fn on_signal(&self, name: &'static str) {
        if self.inner.finished.load(Ordering::SeqCst) {
            return;
        }
        if !self.inner.stop.is_cancelled() {
            *self.inner.signal.lock().unwrap_or_else(|e| e.into_inner()) = Some(name);
            eprintln!(
                "\n{name}: stopping the current cell and everything it started, then writing the \
                 report (send it again to stop at once)..."
            );
            self.inner.stop.cancel();
        } else if !self.inner.hurry.is_cancelled() {
            eprintln!(
                "\n{name} (second signal): abandoning the running cell now (its processes are killed); \
                 recording it and writing the report..."
            );
            self.inner.hurry.cancel();
            let code = crate::exit_code::for_signal(self.signal().unwrap_or(name));
            let me = self.clone();
            // Bounded: whatever blocks the run, the process ends. Children die with it
            // (PR_SET_PDEATHSIG), so nothing is left running.
            std::thread::spawn(move || {
                std::thread::sleep(AFTER_SECOND_SIGNAL);
                if !me.inner.finished.load(Ordering::SeqCst) {
                    eprintln!(
                        "could not finish within {}s of the second signal; exiting",
                        AFTER_SECOND_SIGNAL.as_secs()
                    );
                    std::process::exit(code);
                }
            });
        } else {
            eprintln!("\n{name} (third signal): exiting now");
            std::process::exit(crate::exit_code::for_signal(self.signal().unwrap_or(name)));
        }
    }
}
